# An ext4 root survives flint being killed: the guest writes a file on its
# disk root, syncs, prints the file's checksum and idles; the scenario
# SIGKILLs flint, boots the image again (the kernel replays the journal) and
# the file reads back with the same checksum.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_drive
need_rootfs

cp "$ROOTFS" "$T/root.ext4"
start_bg --kernel "$KERNEL" --mem 128M --drive "path=$T/root.ext4" --append "root=/dev/vda rw" \
	-- sh -c "head -c 8388608 /dev/urandom >/root/data && sync && echo synced md5=\$(md5sum </root/data) && sleep 600"
if ! wait_for '^synced md5=[0-9a-f]{32}' 90; then
	kill_bg
	fail "the guest never reported its file written and synced (flint status $status)"
fi
kill_bg
[ "$status" = 137 ] || fail "flint ended with status $status before the SIGKILL (expected 137)"
want=$(sed -n 's/^synced md5=\([0-9a-f]*\).*/\1/p' "$OUT")
ext4_needs_recovery "$T/root.ext4" ||
	fail "the image does not need journal recovery after the kill: was the file system mounted read-write?"

boot_disk "$T/root.ext4" -- sh -c 'echo again md5=$(md5sum </root/data)'
expect_status 0 "the command succeeded"
expect_out "^again md5=$want " "the file's md5 after the kill and a reboot to match what was written ($want)"
