# flint run --timings: launch to init, launch to agent ready and the
# command's time on stderr, in that order of magnitude; with copies, each
# side's time after the command's.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --timings -- sh -c 'sleep 0.3; echo sum=$((40+2))' </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint run --timings -> status $status"
expect_status 0 "the command"
[ "$(cat "$OUT")" = sum=42 ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'sum=42'"
line=$(grep -E 'launch to init [0-9.]+ ms, launch to agent ready [0-9.]+ ms, command [0-9.]+ ms' "$ERR") ||
	fail "no timings line on stderr"
echo "$line"
init=$(echo "$line" | sed -E 's/.*launch to init ([0-9]+).*/\1/')
ready=$(echo "$line" | sed -E 's/.*agent ready ([0-9]+).*/\1/')
cmd=$(echo "$line" | sed -E 's/.*command ([0-9]+).*/\1/')
[ "$init" -gt 0 ] && [ "$ready" -ge "$init" ] || fail "agent ready ($ready ms) before init ($init ms)"
[ "$cmd" -ge 300 ] || fail "the command's time ($cmd ms) is under its 0.3 s sleep"

# With copies: each side's time after the command's.
mkdir -p "$T/in" && echo 42 >"$T/in/n"
status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --timings --copy-in "$T/in:/tmp/in" \
	--copy-out "/tmp/in:$T/back" -- cat /tmp/in/n </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint run --timings --copy-in --copy-out -> status $status"
expect_status 0 "the command with copies"
[ "$(cat "$T/back/n" 2>/dev/null)" = 42 ] || fail "the copy-out did not bring back /tmp/in/n"
line=$(grep -E 'command [0-9.]+ ms, copy-in [0-9.]+ ms, copy-out [0-9.]+ ms$' "$ERR") ||
	fail "no copy times on the timings line: $(tail -n 3 "$ERR")"
echo "$line"
