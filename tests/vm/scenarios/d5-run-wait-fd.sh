# flint run --restore --wait-fd N: a warm VM, restored paused, waits for
# one byte on fd N (here a FIFO the scenario holds open): nothing runs and
# hardly any CPU goes to it meanwhile; the byte resumes it and the command
# runs with its stdin, stdout and exit status; --timings shows the restore,
# the wait and go-to-agent apart. The FIFO's end without a byte stops the
# VM, exit 0, nothing run. --timeout counts from the byte. Three warm VMs
# wait at once and each runs once released, in any order. A --wait-fd that
# is not open is refused with 125.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --save-snapshot "$T/s.state" \
	--save-mem "$T/s.mem" </dev/null >"$OUT" 2>"$ERR" || status=$?
expect_status 0 "flint run --save-snapshot"

# warm K [FLINT-RUN-ARGS...] -- COMMAND: a flint run --restore --wait-fd 3
# in the background (K from 1 to 6), fd 3 the read end of FIFO $T/goK,
# which this shell holds open read-write as fd 3+K (so that neither open
# blocks); the child gets none of the shell's FIFO fds, or it would hold
# its own FIFO open. stdin from $T/inK (empty unless written), stdout and
# stderr in $T/outK, $T/errK. Its pid in $wpidK.
warm() {
	k=$1
	shift
	rm -f "$T/go$k"
	mkfifo "$T/go$k"
	eval "exec $((3 + k))<>\"\$T/go$k\""
	[ -f "$T/in$k" ] || : >"$T/in$k"
	"$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" --wait-fd 3 "$@" \
		3<"$T/go$k" 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- <"$T/in$k" >"$T/out$k" 2>"$T/err$k" &
	eval "wpid$k=$!"
}

# put K [BYTES]: write BYTES (one "g" by default) into FIFO K.
put() {
	printf '%s' "${2-g}" >&"$((3 + $1))"
}

# shut K: close this shell's end of FIFO K.
shut() {
	eval "exec $((3 + $1))>&-"
}

# go K: the go byte, and the FIFO closed.
go() {
	put "$1"
	shut "$1"
}

# finish K: wait for warm VM K; its status in $status, its files as $OUT
# and $ERR for fail().
finish() {
	status=0
	eval "wait \$wpid$1" || status=$?
	cp "$T/out$1" "$OUT"
	cp "$T/err$1" "$ERR"
	echo "warm VM $1 -> status $status"
	if [ "${RIG_VERBOSE:-0}" = 1 ]; then
		sed 's/^/  out: /' "$OUT"
		sed 's/^/  err: /' "$ERR"
	fi
}

# CPU time (clock ticks) a process has used so far: utime + stime.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# 1. Released after 2 s: nothing ran before, and the restored VM took
# hardly any CPU while it waited (paused vCPUs sleep).
printf 'abc\n' >"$T/in1"
warm 1 --timings -- sh -c 'echo hello; read x; echo got:$x; exit 7'
sleep 1
kill -0 "$wpid1" 2>/dev/null || { finish 1; fail "the warm flint run ended before its go byte (status $status)"; }
c0=$(cpu_ticks "$wpid1")
sleep 2
c1=$(cpu_ticks "$wpid1")
[ ! -s "$T/out1" ] || fail "the command ran before the go byte: $(head -c 300 "$T/out1")"
echo "the waiting flint used $((c1 - c0)) clock ticks in 2 s"
[ $((c1 - c0)) -lt 50 ] || fail "a warm VM waiting for its go byte used $((c1 - c0)) clock ticks in 2 s"
go 1
finish 1
expect_status 7 "the released warm VM's 'exit 7'"
[ "$(cat "$OUT")" = "hello
got:abc" ] || fail "stdout is '$(head -c 300 "$OUT")', expected hello and got:abc"
line=$(grep 'flint run: restored paused; launch to restored' "$ERR") ||
	fail "--timings printed no line for the wait"
echo "$line"
echo "$line" | grep -Eq 'waited [0-9.]+ ms, go to agent ready [0-9.]+ ms, command [0-9.]+ ms' ||
	fail "the --timings line lacks the wait, go-to-agent and command times: $line"
waited=$(echo "$line" | sed 's/.*waited \([0-9]*\).*/\1/')
[ "$waited" -ge 2500 ] || fail "--timings says the VM waited $waited ms, it waited 3 s"

# 2. Given up: the FIFO's end without a byte stops the VM, exit 0 at once,
# nothing run.
warm 2 --timings -- sh -c 'echo never'
sleep 1
t0=$(cs)
shut 2
finish 2
t1=$(cs)
expect_status 0 "a warm VM given up"
[ ! -s "$OUT" ] || fail "a given-up warm VM ran its command: $(head -c 300 "$OUT")"
expect_err 'given up \(no go byte\)' "the timings saying it was given up"
[ $((t1 - t0)) -lt 500 ] || fail "a given-up warm VM took $(((t1 - t0) / 100)) s to stop"

# 3. Only the first byte is the go: the rest stays the parent's. And
# --timeout counts from the byte: 3 s of waiting, then a 2 s limit, is
# no timeout for a quick command.
warm 3 --timeout 2 -- sh -c 'echo quick'
sleep 3
put 3 gxyz
finish 3
rest=$(dd bs=16 count=1 <&6 2>/dev/null)
shut 3
expect_status 0 "a quick command under --timeout 2 after 3 s of waiting"
[ "$(cat "$OUT")" = quick ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'quick'"
[ "$rest" = xyz ] || fail "after the go byte the FIFO held '$rest', expected 'xyz'"

# 4. Three warm VMs at once, released in another order than started: each
# runs its own command, once.
for k in 4 5 6; do
	warm $k -- sh -c "echo vm$k; test ! -e /tmp/m && touch /tmp/m"
done
sleep 2
for k in 6 4 5; do
	go $k
	finish $k
	expect_status 0 "warm VM $k (a fresh /tmp each)"
	[ "$(cat "$OUT")" = "vm$k" ] || fail "warm VM $k's stdout is '$(head -c 300 "$OUT")', expected vm$k"
done

# 5. A --wait-fd that is not open: 125, nothing run.
status=0
"$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" --wait-fd 9 -- echo never \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint run --wait-fd 9 (not open) -> status $status"
expect_status 125 "--wait-fd on a closed fd"
expect_err 'wait-fd 9: not an open file descriptor' "the fd named"
[ ! -s "$OUT" ] || fail "a command ran: $(head -c 300 "$OUT")"
echo "warm VMs waited, ran once released, and stopped when given up"
