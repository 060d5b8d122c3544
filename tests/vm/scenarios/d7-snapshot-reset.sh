# Reset in place: a VM restored by plain `flint --restore ... --vsock-override
# UDS --control-fd 3` (the control socket made by $TOOLS/ctlpair, its
# requests from a FIFO this shell holds) is taken back to its snapshot in
# the same process by each "reset" line, answered "ok <us>". Three rounds:
# through `flint run --attach UDS` the guest writes a file in /tmp (tmpfs)
# and in a directory it makes there, starts a background process, and a host attach holds a
# vsock connection open (`sleep 100`); after the reset the files and the
# process are gone, the held attach has lost its connection (123), the
# snapshot's own file (written by --save-after's prepare step) is still
# there, and new attaches work. A Uffd-backed VM's reset is refused with
# "error ..." and the VM serves on. The socket's end stops the VM: exit 0.
# timeout: 400
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
[ -x "$TOOLS/ctlpair" ] || skip "no $TOOLS/ctlpair (make test-tools)"

# run ARGS...: flint run ARGS, stdin from /dev/null; stdout in $OUT, stderr
# in $ERR; sets $status and $took (seconds, 1 decimal).
run() {
	status=0
	t0=$(cs)
	"$FLINT" run "$@" </dev/null >"$OUT" 2>"$ERR" 7>&- || status=$?
	t1=$(cs)
	took=$((t1 - t0))
	took="$((took / 100)).$((took % 100 / 10))"
	echo "flint run $* -> status $status in $took s"
	if [ "${RIG_VERBOSE:-0}" = 1 ]; then
		sed 's/^/  out: /' "$OUT"
		sed 's/^/  err: /' "$ERR"
	fi
}

# expect_stdout TEXT WHAT: stdout is exactly TEXT (lines joined by "|").
expect_stdout() {
	got=$(tr '\n' '|' <"$OUT")
	[ "$got" = "$1" ] || fail "$2: stdout is '$(head -c 300 "$OUT" | tr '\n' '|')', expected '$1'"
}

# 1. The snapshot, after a prepare step that leaves /tmp/base.
run --kernel "$KERNEL" --rootfs "$ROOTFS" --save-snapshot "$T/s.state" --save-mem "$T/s.mem" \
	--save-after -- sh -c 'echo base >/tmp/base'
expect_status 0 "flint run --save-snapshot --save-after"
[ -s "$T/s.state" ] && [ -s "$T/s.mem" ] || fail "no snapshot files after the prepare step"

# vm NAME ARGS...: flint ARGS --vsock-override $T/NAME.sock --console none
# --control-fd 3 under ctlpair in the background, its requests from FIFO
# $T/NAME.ctl held open by this shell as fd 7, its answers in $T/NAME.ans,
# its stderr in $T/NAME.err; waits for the vsock socket. $vmpid: ctlpair's.
vm() {
	name=$1
	shift
	rm -f "$T/$name.ctl" "$T/$name.sock"
	mkfifo "$T/$name.ctl"
	: >"$T/$name.ans"
	"$TOOLS/ctlpair" -- "$FLINT" "$@" --vsock-override "$T/$name.sock" --console none \
		--control-fd 3 <"$T/$name.ctl" >"$T/$name.ans" 2>"$T/$name.err" &
	vmpid=$!
	exec 7>"$T/$name.ctl"
	nres=0
	i=0
	while [ ! -S "$T/$name.sock" ] && [ $i -lt 100 ]; do
		kill -0 "$vmpid" 2>/dev/null || fail "flint --restore --control-fd ended early: $(tail -5 "$T/$name.err")"
		sleep 0.1
		i=$((i + 1))
	done
	[ -S "$T/$name.sock" ] || { stop_vm; fail "no vsock socket at $T/$name.sock after 10 s"; }
	sock=$T/$name.sock
	ans=$T/$name.ans
}

# stop_vm: the control socket's end; flint stops the VM and exits 0.
# $vm_status: its status.
stop_vm() {
	exec 7>&-
	vm_status=0
	wait "$vmpid" || vm_status=$?
}

# do_reset: one "reset" line, and its answer (10 s at most) in $answer.
do_reset() {
	nres=$((nres + 1))
	echo reset >&7
	i=0
	while [ "$(wc -l <"$ans")" -lt $nres ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	answer=$(sed -n "${nres}p" "$ans")
	echo "reset $nres: '${answer:-no answer}'"
}

vm main --restore "$T/s.state" --mem-file "$T/s.mem"
for round in 1 2 3; do
	# 2. Leave traces: files in tmpfs and in a directory made there, a
	# background process (its own session: it outlives the command), and
	# the guest's view of them (busybox's ps: the guest has no pgrep); the
	# patterns are bracketed so that grep does not find itself.
	run --attach "$sock" -- sh -c 'cat /tmp/base; echo dirty >/tmp/dirty; mkdir /tmp/d; echo d >/tmp/d/x;
		setsid sleep 1001 </dev/null >/dev/null 2>&1 &
		sleep 0.2; ps -o args | grep -q "^slee[p] 1001" && echo running'
	[ "$status" = 0 ] || stop_vm
	expect_status 0 "round $round: the attach that leaves traces"
	expect_stdout "base|running|" "round $round: the snapshot's file, then the background process"
	# A host program holding a vsock connection: an attach that sleeps.
	"$FLINT" run --attach "$sock" -- sleep 100 </dev/null >"$T/held.out" 2>"$T/held.err" 7>&- &
	heldpid=$!
	run --attach "$sock" -- sh -c 'test -e /tmp/dirty && test -e /tmp/d/x && echo kept;
		i=0; while ! ps -o args | grep -q "^slee[p] 100$" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		ps -o args | grep -q "^slee[p] 100$" && echo held'
	[ "$status" = 0 ] || stop_vm
	expect_stdout "kept|held|" "round $round: before the reset, the traces and the held attach's command"
	kill -0 "$heldpid" 2>/dev/null || { stop_vm; fail "round $round: the held attach ended before the reset: $(cat "$T/held.err")"; }

	# 3. Reset.
	do_reset
	case $answer in
	"ok "[0-9]*) echo "round $round: reset in ${answer#ok } us" ;;
	*) stop_vm; fail "round $round: reset answered '$answer'; flint: $(tail -5 "$T/main.err")" ;;
	esac
	kill -0 "$vmpid" 2>/dev/null || fail "round $round: flint ended at the reset: $(tail -5 "$T/main.err")"

	# 4. The held connection was closed: the attach ends (123: the agent's
	# connection lost), within its bounds.
	if ! wait_gone "$heldpid" 15; then
		kill "$heldpid"
		stop_vm
		fail "round $round: the attach holding a connection still runs 15 s after the reset"
	fi
	held=0
	wait "$heldpid" || held=$?
	echo "round $round: the held attach ended with $held: $(tail -1 "$T/held.err")"
	[ "$held" = 123 ] || { stop_vm; fail "round $round: the held attach exited $held, expected 123 (connection lost)"; }

	# 5. Nothing survived; the snapshot's state is there; attaches work.
	run --attach "$sock" -- sh -c 'cat /tmp/base; test -e /tmp/dirty && echo tmp-survived;
		test -e /tmp/d && echo dir-survived;
		ps -o args | grep -q "^slee[p] 100" && echo process-survived; echo end'
	[ "$status" = 0 ] || stop_vm
	expect_status 0 "round $round: an attach after the reset"
	expect_stdout "base|end|" "round $round: after the reset (only the snapshot's /tmp/base)"
	run --attach "$sock" -- sh -c 'echo again'
	expect_status 0 "round $round: a second attach after the reset"
done

# 6. The socket's end: the VM stops, flint exits 0.
stop_vm
echo "flint --control-fd after its socket closed -> status $vm_status"
[ "$vm_status" = 0 ] || fail "flint exited $vm_status at the end of its control socket: $(tail -5 "$T/main.err")"
grep -i 'seccomp\|bad system call' "$T/main.err" && fail "a seccomp report in flint's stderr"

# 7. The Uffd backend: refused, the VM serves on as it was.
if [ -x "$TOOLS/flint-uffd" ]; then
	start_uffd "$T/s.mem"
	vm uffd --restore "$T/s.state" --uffd-sock "$T/handler.sock"
	run --attach "$sock" -- sh -c 'echo u >/tmp/u'
	expect_status 0 "an attach to the Uffd-backed VM"
	do_reset
	case $answer in
	"error "*Uffd*) ;;
	*) stop_vm; fail "a Uffd-backed VM's reset answered '$answer', expected an error naming Uffd" ;;
	esac
	run --attach "$sock" -- sh -c 'cat /tmp/u'
	[ "$status" = 0 ] || stop_vm
	expect_stdout "u|" "the refused VM serves on, unreset"
	stop_vm
	[ "$vm_status" = 0 ] || fail "the Uffd-backed flint exited $vm_status"
	wait "$upid" 2>/dev/null
else
	echo "no $TOOLS/flint-uffd: the Uffd refusal is not checked here (the smoke test checks it)"
fi
echo "reset in place: three rounds, nothing survived, the held connection closed, the snapshot's state kept"
