# Proves L1 and its /dev/kvm work without flint: QEMU -M microvm boots the
# guest (build/vmlinux + build/initramfs.cpio.gz; L1's own bzImage and a tiny
# busybox initramfs where those are missing) and runs a command in it. The
# kernel splits its command line on spaces and honours only double quotes.
# Runs inside L1: tests/vm/rig selftest
set -u
command -v qemu-system-x86_64 >/dev/null || { echo "selftest: no QEMU in L1 (rig --qemu)"; exit 2; }

kernel=$KERNEL initrd=$INITRD
if [ ! -f "$kernel" ]; then
	echo "selftest: no $KERNEL yet; using L1's bzImage as the guest kernel"
	kernel=$BZIMAGE
fi
if [ ! -f "$initrd" ]; then
	echo "selftest: no $INITRD yet; using a tiny busybox initramfs"
	r=/tmp/selftest-root
	mkdir -p $r/bin $r/proc $r/sys $r/dev
	cp /bin/busybox $r/bin/busybox
	for a in sh echo cat mount poweroff reboot; do ln -s busybox $r/bin/$a; done
	cat >$r/init <<'EOI'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "flint-init: ready"
echo "selftest: guest sees cpus $(cat /sys/devices/system/cpu/online)"
sh -c "echo sum=\$((40+2))"
reboot -f
EOI
	chmod 755 $r/init
	(cd $r && find . | cpio -o -H newc --quiet | gzip -1) >/tmp/selftest-initrd.gz
	initrd=/tmp/selftest-initrd.gz
fi

read -r t0 _ </proc/uptime
qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 128 -smp 1 \
	-nodefaults -no-user-config -nographic -serial stdio -no-reboot \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 reboot=t quiet -- sh -c \"echo sum=\$((40+2))\"" \
	</dev/null >/tmp/selftest.out 2>&1
rc=$?
read -r t1 _ </proc/uptime
tr -d '\r' </tmp/selftest.out | tail -n 20 | sed 's/^/    | /'
t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "selftest: QEMU microvm ran for $t s, exit status $rc"
if grep -q 'flint-init: ready' /tmp/selftest.out && grep -q '^sum=42' /tmp/selftest.out; then
	echo "selftest: PASS (guest reached init and ran a command on L1's /dev/kvm)"
	exit 0
fi
echo "selftest: FAIL (no 'flint-init: ready' and 'sum=42' on the guest console)"
exit 1
