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

# A guest that does not stop the command: its agent's server for this
# request is frozen (SIGSTOP from the command itself), so no status comes.
# RUN_GUARD_S (10 s) past the timeout flint gives up with 124, and says
# where the guest's vCPU was: its rip and its local APIC.
status=0
t0=$(cs)
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --timeout 1 -- sh -c 'kill -STOP $PPID; sleep 30' \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
t1=$(cs)
echo "flint run --timeout 1, the agent frozen -> status $status in $(((t1 - t0) / 100)) s"
expect_status 124 "a guest that did not stop the command"
expect_err 'the command timed out after 1 s .the guest did not stop it.' "the guard's message"
expect_err 'vCPUs left the guest at: 0:rip=0x' "where the vCPU was"
expect_err "vCPU 0's local APIC: timer" "its local APIC"
[ $((t1 - t0)) -lt 2500 ] || fail "took $(((t1 - t0) / 100)) s: flint did not give up at 1 + 10 s"
