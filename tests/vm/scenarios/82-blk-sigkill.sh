# Data the guest wrote and flushed survives flint being killed: the guest
# writes 64 MiB of random data to a scratch drive, syncs and prints the
# data's checksum, then idles; the scenario SIGKILLs flint at that line and
# checks the image file holds exactly those bytes.
# timeout: 150
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive

truncate -s 64M "$T/scratch.img"
start_bg --kernel "$KERNEL" --initrd "$INITRD" --mem 256M --drive "path=$T/scratch.img" \
	-- sh -c "$LIST_DISKS; head -c 67108864 /dev/urandom >/tmp/data && dd if=/tmp/data of=/dev/vda bs=1M conv=fsync 2>/dev/null && sync && echo synced md5=\$(md5sum </tmp/data) && sleep 600"
if ! wait_for '^synced md5=[0-9a-f]{32}' 120; then
	kill_bg
	expect_disks vda
	fail "the guest never reported its 64 MiB written and synced (flint status $status)"
fi
kill_bg
[ "$status" = 137 ] || fail "flint ended with status $status before the SIGKILL (expected 137)"
want=$(sed -n 's/^synced md5=\([0-9a-f]*\).*/\1/p' "$OUT")
got=$(md5sum <"$T/scratch.img" | cut -d' ' -f1)
[ "$got" = "$want" ] ||
	fail "after SIGKILL the image's md5 is $got, the guest wrote $want"
echo "image md5 $got matches what the guest wrote"
