# Boot from the ext4 root image on a virtio-blk drive (root=/dev/vda, no
# initrd): init runs the command on the disk root, what it writes is there at
# the next boot, and init leaves the file system clean.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive
need_rootfs

cp "$ROOTFS" "$T/root.ext4"
boot_disk "$T/root.ext4" -- sh -c "$LIST_DISKS; mount; echo sum=\$((40+2)) >/root/hello; echo wrote"
expect_disks vda
expect_out '^/dev/root on / type ext4 \(rw' "the root mounted from /dev/vda as ext4, read-write"
expect_out '^wrote$' "'wrote' (the guest wrote /root/hello)"
expect_status 0 "the command succeeded"
! ext4_needs_recovery "$T/root.ext4" ||
	fail "the image needs journal recovery after a clean exit (init did not remount / read-only, or its writes were lost)"

boot_disk "$T/root.ext4" -- cat /root/hello
expect_out '^sum=42$' "the file written at the first boot ('sum=42')"
expect_status 0 "the command succeeded"
