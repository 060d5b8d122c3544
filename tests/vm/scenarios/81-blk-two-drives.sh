# Two drives: the guest sees /dev/vda and /dev/vdb in --drive order, with
# their sizes, their contents and the second one's id as its serial.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive

# 8 MiB and 3 MiB (16384 and 6144 sectors), each starting with its own name.
truncate -s 8M "$T/first.img"
truncate -s 3M "$T/second.img"
printf 'first-drive.....' | dd of="$T/first.img" conv=notrunc 2>/dev/null
printf 'second-drive....' | dd of="$T/second.img" conv=notrunc 2>/dev/null

boot --drive "path=$T/first.img" --drive "path=$T/second.img,id=scratch" \
	-- sh -c "$LIST_DISKS; for d in vda vdb; do echo \$d size=\$(cat /sys/block/\$d/size) head=\$(head -c 16 /dev/\$d) serial=\$(cat /sys/block/\$d/serial); done"
expect_status 0 "the command succeeded"
expect_disks vda vdb
expect_out '^vda size=16384 head=first-drive\.+ ' "vda: 16384 sectors (8 MiB), starting 'first-drive'"
expect_out '^vdb size=6144 head=second-drive\.+ ' "vdb: 6144 sectors (3 MiB), starting 'second-drive'"
expect_out '^vdb .* serial=scratch$' "vdb's serial 'scratch' (id=scratch)"
