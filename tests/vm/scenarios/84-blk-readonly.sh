# A read-only drive: the guest sees it read-only, reads it correctly, cannot
# write it, and the image file stays byte-identical. An ext4 root on a
# read-only drive boots and cannot be written either.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive

dd if=/dev/urandom of="$T/ro.img" bs=1M count=4 2>/dev/null
before=$(sha256sum <"$T/ro.img")
want=$(md5sum <"$T/ro.img" | cut -d' ' -f1)
boot --drive "path=$T/ro.img,ro" -- sh -c "$LIST_DISKS; echo ro=\$(cat /sys/block/vda/ro) md5=\$(md5sum </dev/vda); if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then echo write=accepted; else echo write=refused; fi"
expect_status 0 "the command succeeded"
expect_disks vda
expect_out '^ro=1 ' "the drive read-only in the guest (/sys/block/vda/ro = 1)"
expect_out "^ro=1 md5=$want " "the guest reading the image's contents (md5 $want)"
expect_out '^write=refused$' "the guest's write to the read-only drive failing"
[ "$(sha256sum <"$T/ro.img")" = "$before" ] || fail "the read-only image changed"

if [ -n "${ROOTFS:-}" ] && [ -f "$ROOTFS" ]; then
	cp "$ROOTFS" "$T/root.ext4"
	before=$(sha256sum <"$T/root.ext4")
	flint --kernel "$KERNEL" --mem 128M --console stdio --drive "path=$T/root.ext4,ro" \
		--append "root=/dev/vda ro" -- sh -c 'mount; touch /root/x 2>/dev/null && echo touch=ok || echo touch=refused'
	expect_status 0 "the command succeeded on a read-only root"
	expect_out '^/dev/root on / type ext4 \(ro' "the ext4 root mounted read-only"
	expect_out '^touch=refused$' "writing a file on the read-only root failing"
	[ "$(sha256sum <"$T/root.ext4")" = "$before" ] || fail "the read-only root image changed"
fi
