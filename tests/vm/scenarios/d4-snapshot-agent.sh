# flint run --save-snapshot boots the guest to its agent, saves it and stops
# (exit 0, nothing on stdout); flint run --restore runs a command in a VM
# restored from those files, reaching the agent over a connection of its
# own (its boot connection did not survive the snapshot): stdout and the
# exit status are the command's. Two restores in a row from one snapshot
# each run, and neither sees the other's /tmp. With a command,
# --save-snapshot saves and then runs it in the same VM. A corrupt or
# missing state file is refused with 125 and a message.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

# run ARGS...: flint run ARGS, stdin from /dev/null; stdout in $OUT, stderr
# in $ERR; sets $status and $took (seconds, 1 decimal).
run() {
	status=0
	t0=$(cs)
	"$FLINT" run "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	t1=$(cs)
	took=$((t1 - t0))
	took="$((took / 100)).$((took % 100 / 10))"
	echo "flint run $* -> status $status in $took s"
	if [ "${RIG_VERBOSE:-0}" = 1 ]; then
		sed 's/^/  out: /' "$OUT"
		sed 's/^/  err: /' "$ERR"
	fi
}

# Boot to the agent, save, stop.
run --kernel "$KERNEL" --rootfs "$ROOTFS" --timings --save-snapshot "$T/s.state" --save-mem "$T/s.mem"
expect_status 0 "flint run --save-snapshot without a command"
[ ! -s "$OUT" ] || fail "unexpected stdout from a snapshot-only run: $(head -c 300 "$OUT")"
[ -s "$T/s.state" ] || fail "no state file at $T/s.state"
[ -s "$T/s.mem" ] || fail "no memory file at $T/s.mem"
grep -E 'snapshot [0-9.]+ ms' "$ERR" || fail "--timings did not report the snapshot's time"
echo "memory file: $(du -k "$T/s.mem" | cut -f1) KiB on disk"

# A command in the restored VM: its stdout, its status.
run --restore "$T/s.state" --mem-file "$T/s.mem" --timings -- sh -c 'echo hello; exit 3'
expect_status 3 "the restored guest's 'exit 3'"
[ "$(cat "$OUT")" = hello ] || fail "stdout is '$(head -c 300 "$OUT")', expected exactly 'hello'"
grep 'restored; launch to agent ready' "$ERR" || fail "--timings printed no restore line"

# Two restores in a row from the same files: each runs, and a file the
# first writes in the guest's /tmp (a tmpfs) is not there for the second.
for k in 1 2; do
	run --restore "$T/s.state" --mem-file "$T/s.mem" -- sh -c 'test ! -e /tmp/x && touch /tmp/x && echo fresh'
	[ "$status" = 0 ] || fail "restore $k: status $status; the first restore's /tmp/x was seen, or the command failed"
	[ "$(cat "$OUT")" = fresh ] || fail "restore $k: stdout is '$(head -c 300 "$OUT")', expected 'fresh'"
done
# The check can fail: in one VM, the second touch finds the first's file.
run --restore "$T/s.state" --mem-file "$T/s.mem" -- sh -c 'touch /tmp/x; test ! -e /tmp/x'
expect_status 1 "a file made in the same VM is there"

# stdin reaches a restored guest's command.
status=0
printf 'abc\n' | "$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" -- sh -c 'read x; echo got:$x' >"$OUT" 2>"$ERR" || status=$?
echo "flint run --restore (stdin from a pipe) -> status $status"
expect_status 0 "the restored command reading its stdin"
[ "$(cat "$OUT")" = got:abc ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'got:abc'"

# With a command, --save-snapshot saves, resumes and runs it in that VM.
run --kernel "$KERNEL" --rootfs "$ROOTFS" --save-snapshot "$T/c.state" --save-mem "$T/c.mem" -- \
	sh -c 'echo sum=$((40+2)); exit 5'
expect_status 5 "the command after the snapshot"
[ "$(cat "$OUT")" = sum=42 ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'sum=42'"
[ -s "$T/c.state" ] && [ -s "$T/c.mem" ] || fail "--save-snapshot with a command made no files"
run --restore "$T/c.state" --mem-file "$T/c.mem" -- sh -c 'echo again'
expect_status 0 "a restore of the snapshot taken before a command"
[ "$(cat "$OUT")" = again ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'again'"
rm -f "$T/c.state" "$T/c.mem"

# Refusals: nothing runs, 125 and the reason.
cp "$T/s.state" "$T/corrupt.state"
printf 'X' | dd of="$T/corrupt.state" bs=1 seek=200 conv=notrunc 2>/dev/null
run --restore "$T/corrupt.state" --mem-file "$T/s.mem" -- echo never
expect_status 125 "a corrupt state file"
expect_err "corrupt" "the reason: corrupt"
[ ! -s "$OUT" ] || fail "a command ran from a corrupt snapshot: $(head -c 300 "$OUT")"
run --restore "$T/none.state" --mem-file "$T/s.mem" -- echo never
expect_status 125 "a missing state file"
expect_err "none.state: No such file" "the missing file named"
