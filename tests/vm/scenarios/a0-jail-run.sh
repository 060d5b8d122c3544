# flint run under flint-jail, in a new pid namespace: the kernel and the
# root image are staged into the jail, the agent's vsock socket lives in the
# jail's /tmp, and the command's output and status come back through the
# jailer, which waits for flint; nothing stays mounted.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-jail.sh"
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

# flint run must work outside a jail first, or the jail is not to blame.
status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" -- true </dev/null >"$OUT" 2>"$ERR" || status=$?
[ "$status" = 0 ] || fail "flint run fails outside a jail too (status $status): the jail is not to blame, but it is a failure"

status=0
jail run --new-pid-ns -- run --kernel "$KERNEL" --rootfs "$ROOTFS" -- \
	sh -c 'echo sum=$((40+2)); exit 3' </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint-jail ... -- run ... -> status $status"
expect_status 3 "the command's 'exit 3', through flint and the jailer"
[ "$(cat "$OUT")" = sum=42 ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'sum=42'"
pidfile=$BASE/flint/run/root/flint.pid
[ -s "$pidfile" ] || fail "no pid file at $pidfile"
[ -d "$BASE/flint/run/root/tmp" ] || fail "no /tmp in the jail for flint run's socket"
expect_unmounted
rm -rf "$BASE/flint/run" || fail "the jail cannot be removed"
