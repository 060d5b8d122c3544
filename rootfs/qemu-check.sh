#!/bin/bash
# Check the guest artefacts without flint: boot vmlinux + initramfs in QEMU's
# microvm machine (TCG, so it needs no working /dev/kvm) and look for what
# /init and the kernel must print.
#
#   rootfs/qemu-check.sh VMLINUX INITRAMFS
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: $0 VMLINUX INITRAMFS" >&2; exit 1; }
KERNEL=$1 INITRD=$2
QEMU=${QEMU:-qemu-system-x86_64}
failed=0

# boot NAME CMDLINE-TAIL EXPECTED-REGEX...: every regex must match the output.
boot() {
	local name=$1 tail=$2 out rc
	shift 2
	out=$(timeout 120 "$QEMU" -M microvm,acpi=off -accel tcg -m 128 -smp 2 \
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 panic=-1 quiet $tail" </dev/null 2>&1 | tr -d '\r')
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
exit $failed
