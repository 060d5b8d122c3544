# Discard gives space back: the guest fills 16 MiB of a sparse scratch drive,
# then discards the whole drive, and the image file's allocated blocks on
# the host drop back to about nothing.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive

truncate -s 32M "$T/scratch.img"
boot --drive "path=$T/scratch.img" -- sh -c "$LIST_DISKS; dd if=/dev/urandom of=/dev/vda bs=1M count=16 conv=fsync 2>/dev/null && echo filled"
expect_status 0 "the command succeeded"
expect_disks vda
expect_out '^filled$' "'filled' (16 MiB written)"
full=$(blocks "$T/scratch.img")
[ "$full" -ge 32768 ] || fail "the image has $full blocks allocated after 16 MiB were written (expected >= 32768)"

boot --drive "path=$T/scratch.img" -- sh -c 'echo max=$(cat /sys/block/vda/queue/discard_max_bytes); blkdiscard /dev/vda && sync && echo discarded'
expect_status 0 "the command succeeded"
expect_out '^max=[1-9]' "discard offered to the guest (discard_max_bytes > 0)"
expect_out '^discarded$' "'discarded' (blkdiscard /dev/vda succeeded)"
after=$(blocks "$T/scratch.img")
# Allow 1 MiB of blocks still allocated.
[ "$after" -le 2048 ] ||
	fail "after blkdiscard the image still has $after of $full blocks allocated"
echo "allocated 512-byte blocks: $full after writing, $after after discard"
