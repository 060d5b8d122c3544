# flint run --timeout: the agent kills the command when time is up; flint
# exits 124 with a message saying so.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

status=0
t0=$(cs)
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --timeout 2 -- sleep 30 </dev/null >"$OUT" 2>"$ERR" || status=$?
t1=$(cs)
echo "flint run --timeout 2 -- sleep 30 -> status $status in $(((t1 - t0) / 100)) s"
expect_status 124 "the timeout"
expect_err 'the command timed out after 2 s' "the timeout message"
[ $((t1 - t0)) -lt 2500 ] || fail "took $(((t1 - t0) / 100)) s: the command was not stopped at 2 s"

# Within the limit, the command's own status.
status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --timeout 30 -- sh -c 'exit 5' </dev/null >"$OUT" 2>"$ERR" || status=$?
expect_status 5 "a command well within its --timeout"
