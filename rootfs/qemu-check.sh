#!/bin/bash
# Check the guest artefacts without flint: boot vmlinux + initramfs in QEMU's
# microvm machine (TCG, so it needs no working /dev/kvm) and look for what
# /init and the kernel must print. Given the ext4 root image too, boot from it
# on a virtio-blk drive (root=/dev/vda, no initrd) and check the image after.
#
#   rootfs/qemu-check.sh VMLINUX INITRAMFS [ROOTFS.ext4]
set -uo pipefail

[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 VMLINUX INITRAMFS [ROOTFS.ext4]" >&2; exit 1; }
KERNEL=$1 INITRD=$2 ROOTFS=${3:-}
QEMU=${QEMU:-qemu-system-x86_64}
failed=0
# How the guest gets its root: the initramfs, or (boot_disk) a drive.
MEDIA=(-initrd "$INITRD")
ROOT_ARGS=

# boot NAME CMDLINE-TAIL EXPECTED-REGEX...: every regex must match the output.
boot() {
	local name=$1 tail=$2 out rc
	shift 2
	# auto-kernel-cmdline=off: QEMU would append virtio_mmio.device= after
	# the "--", where it would reach the guest command instead of the kernel.
	out=$(timeout 120 "$QEMU" -M microvm,acpi=off,auto-kernel-cmdline=off -accel tcg \
		-m 128 -smp 2 -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
		-kernel "$KERNEL" "${MEDIA[@]}" \
		-append "console=ttyS0 panic=-1 quiet $ROOT_ARGS $tail" </dev/null 2>&1 | tr -d '\r')
	rc=$?
	for re in "$@"; do
		if ! grep -qE -- "$re" <<<"$out"; then
			echo "guest-check: FAIL $name: no line matching '$re' (qemu status $rc); output:"
			sed 's/^/    /' <<<"$out" | tail -n 30
			failed=1
			return
		fi
	done
	if [ $rc -ne 0 ]; then
		echo "guest-check: FAIL $name: qemu status $rc (124: timed out)"
		failed=1
		return
	fi
	echo "guest-check: ok   $name"
}

boot "command and exit status" '-- sh -c "echo hi from $(uname -s); exit 3"' \
	'^flint-init: ready' '^hi from Linux' 'exit status 3'
boot "default demo" '' '^Hello from the flint guest' '^2$' 'exit status 0'
boot "missing command" '-- /no/such/cmd' "cannot run '/no/such/cmd'" \
	'exit status 127'
boot "killed by a signal" '-- sh -c "kill -9 $$"' 'exit status 137'
boot "busybox poweroff" '-- sh -c "poweroff; sleep 30"' 'reboot: Restarting'
boot "busybox reboot" '-- sh -c "sleep 30 & reboot; sleep 30"' 'reboot: Restarting'
boot "sysrq panic" '-- sh -c "echo c > /proc/sysrq-trigger"' \
	'Kernel panic - not syncing: sysrq triggered crash'

# boot_disk NAME CMDLINE-TAIL REGEX...: boot() from a copy of the ext4 image on
# a virtio-blk drive, no initrd. QEMU puts the first device on microvm's last
# virtio-mmio slot (0xfeb00e00, IRQ 12).
boot_disk() {
	cp "$ROOTFS" "$DISK"
	MEDIA=(-drive "id=d0,file=$DISK,format=raw,if=none" -device virtio-blk-device,drive=d0)
	ROOT_ARGS="virtio_mmio.device=512@0xfeb00e00:12 root=/dev/vda rw"
	boot "$@"
	MEDIA=(-initrd "$INITRD")
	ROOT_ARGS=
}

if [ -n "$ROOTFS" ]; then
	DISK=$(mktemp /tmp/flint-guest-check.XXXXXX.ext4)
	trap 'rm -f "$DISK"' EXIT
	# No init=: the kernel finds /sbin/init, a link to /init.
	boot_disk "ext4 root on virtio-blk" \
		'-- sh -c "mount; echo sum=$((40+2)) >/root/written; cat /root/written"' \
		'^flint-init: ready' '^/dev/root on / type ext4 \(rw' '^devtmpfs on /dev ' \
		'^sum=42' 'exit status 0'
	# /init left the file system clean (remounted read-only), and what the
	# guest wrote is in the image.
	if [ -f "$DISK" ]; then
		# (A file system the guest left mounted still says "clean", but has
		# needs_recovery set: the journal holds metadata not yet in place.)
		state=$(dumpe2fs -h "$DISK" 2>/dev/null | sed -n 's/^Filesystem state: *//p')
		grep -q needs_recovery <(dumpe2fs -h "$DISK" 2>/dev/null) && state+=", needs_recovery"
		written=$(debugfs -R 'cat /root/written' "$DISK" 2>/dev/null)
		if [ "$state" != clean ] || [ "$written" != sum=42 ]; then
			echo "guest-check: FAIL ext4 image after the run: state '$state', /root/written '$written'"
			failed=1
		else
			echo "guest-check: ok   ext4 image clean after the run, the guest's file in it"
		fi
	fi
	boot_disk "ext4 root, kernel does not mount devtmpfs" \
		'devtmpfs.mount=0 -- sh -c "mount; test -b /dev/vda && echo vda ok"' \
		'^devtmpfs on /dev ' '^vda ok' 'exit status 0'
	boot_disk "ext4 root mounted read-only" \
		'ro -- sh -c "mount; touch /x || echo ro ok"' \
		'^/dev/root on / type ext4 \(ro' '^ro ok' 'exit status 0'
fi
exit $failed
