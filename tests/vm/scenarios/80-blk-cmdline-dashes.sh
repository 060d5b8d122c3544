# A drive and a --cmdline whose " -- " hands words to init (issue 10): flint
# puts its virtio_mmio.device= arguments before the user's "--", so the
# kernel finds /dev/vda and mounts it as root (it used to panic with "Unable
# to mount root fs"), and init gets the words after the "--", followed by
# flint's own "-- ARGS".
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive
need_rootfs

cp "$ROOTFS" "$T/root.ext4"

# The issue's case: the shell as init, its arguments in --cmdline. No
# panic=: should the root not mount, flint still ends (122) on the panic.
flint --kernel "$KERNEL" --mem 128M --console stdio --drive "path=$T/root.ext4" \
	--cmdline 'console=ttyS0 reboot=k root=/dev/vda rw init=/bin/sh -- -c "mount -t proc proc /proc; echo sum=$((40+2)); grep ext4 /proc/mounts; reboot -f"'
! grep -q 'Unable to mount root' "$OUT" ||
	fail "the kernel did not find /dev/vda (flint's device arguments went after the user's --)"
expect_out '^sum=42$' "'sum=42' from the shell run as init with the words after --"
expect_out '^/dev/root / ext4 rw' "the root mounted from /dev/vda as ext4, read-write"
expect_status 0 "the shell's 'reboot -f'"

# flint's init: its command is the user's words after "--", then flint's own
# words after its "--" ($0 and $1 of sh -c), then it reports the status.
flint --kernel "$KERNEL" --mem 128M --console stdio --drive "path=$T/root.ext4" \
	--cmdline 'console=ttyS0 reboot=k panic=-1 root=/dev/vda rw -- sh -c "echo sum=$((40+2)) $0 $1; exit 7"' \
	--append quiet -- zero one
expect_out '^sum=42 zero one$' "'sum=42 zero one': the --cmdline words, then flint's, for init"
expect_status 7 "the command's 'exit 7', reported by flint's init"
