# SIGQUIT before the guest runs (a terminal's ^\, or flint serve asking a
# stuck VM where it is) neither kills flint nor dumps core: there is no
# guest to say anything of yet, and the launch goes on. flint runs under
# $TOOLS/ctlpair, which starts it with its signals at their defaults as
# flint serve starts a worker (a shell's background job would have SIGQUIT
# ignored), and is held before its VM runs by its API socket, waiting for
# InstanceStart.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest
[ -x "$TOOLS/ctlpair" ] || skip "no $TOOLS/ctlpair (make test-tools)"

# The premise: what ctlpair starts has SIGQUIT at its default.
"$TOOLS/ctlpair" -- sleep 5 </dev/null >/dev/null 2>&1 &
pair=$!
sleep 0.5
kid=$(cut -d' ' -f1 "/proc/$pair/task/$pair/children" 2>/dev/null)
ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/${kid:-none}/status" 2>/dev/null)
kill "$pair" $kid 2>/dev/null
case $ign in
'') fail "could not read the SigIgn of a program ctlpair started" ;;
*[4567cdef]) fail "ctlpair started a program with SIGQUIT ignored (SigIgn $ign)" ;;
esac

# Held before its VM runs by its API: no InstanceStart yet. (A named pipe
# as the kernel held it once; flint now refuses one unopened.)
"$TOOLS/ctlpair" -- "$FLINT" --api-sock "$T/api.sock" </dev/null >/dev/null 2>"$ERR" &
pair=$!
pid=
n=100
while :; do
	[ -n "$pid" ] || pid=$(cat "/proc/$pair/task/$pair/children" 2>/dev/null | cut -d' ' -f1)
	# Its socket is there, and SIGQUIT blocked for the signalfd of its
	# wait (SigBlk bit 3): sent before, it would be ignored unsaid.
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/${pid:-none}/status" 2>/dev/null)
	[ -n "$pid" ] && [ -S "$T/api.sock" ] && [ -n "$blk" ] &&
		[ $((0x$blk & 4)) -ne 0 ] && break
	kill -0 "$pair" 2>/dev/null || fail "flint ended before its API socket was there"
	n=$((n - 1))
	[ $n -gt 0 ] || {
		kill -KILL "$pair" $pid
		fail "flint made no API socket within 10 s (pid ${pid:-none})"
	}
	sleep 0.1
done
kill -QUIT "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null || {
	wait "$pair"
	fail "SIGQUIT before the VM ran ended flint (status $?)"
}
# It goes on waiting for its API; a SIGTERM ends it, as itself.
kill -TERM "$pid"
wait "$pair"
status=$?
[ $status -ne $((128 + 3)) ] || fail "flint died of SIGQUIT (status $status)"
expect_status $((128 + 15)) "SIGTERM before the VM ran"
expect_err "SIGQUIT: no microVM has started yet"
expect_err "stopped by signal 15 before the microVM started"
echo "SIGQUIT before the VM ran: flint went on waiting for its API (status $status after SIGTERM)"
