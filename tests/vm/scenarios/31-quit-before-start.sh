# SIGQUIT before the guest runs (a terminal's ^\, or flint serve asking a
# stuck VM where it is) neither kills flint nor dumps core: there is no
# guest to say anything of yet, and the launch goes on. flint runs under
# $TOOLS/ctlpair, which starts it with its signals at their defaults as
# flint serve starts a worker (a shell's background job would have SIGQUIT
# ignored), and is held before its VM runs by a kernel path that is a
# named pipe: opening it waits for a writer.
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

mkfifo "$T/kernel"
"$TOOLS/ctlpair" -- "$FLINT" --kernel "$T/kernel" --initrd "$INITRD" --mem 128M \
	--console stdio -- true </dev/null >/dev/null 2>"$ERR" &
pair=$!
pid=
n=100
while :; do
	[ -n "$pid" ] || pid=$(cat "/proc/$pair/task/$pair/children" 2>/dev/null | cut -d' ' -f1)
	[ -n "$pid" ] && grep -q -E "fifo|partner|pipe" "/proc/$pid/wchan" 2>/dev/null && break
	kill -0 "$pair" 2>/dev/null || fail "flint ended before it opened the kernel's pipe"
	n=$((n - 1))
	[ $n -gt 0 ] || {
		w=$(cat "/proc/${pid:-$pair}/wchan" 2>/dev/null)
		kill -KILL "$pair" $pid
		fail "flint did not wait on the kernel's pipe within 10 s (pid ${pid:-none}, in ${w:-?})"
	}
	sleep 0.1
done
kill -QUIT "$pid"
sleep 0.5
kill -0 "$pid" 2>/dev/null || {
	wait "$pair"
	fail "SIGQUIT before the VM ran ended flint (status $?)"
}
# The launch goes on: the pipe is not a kernel file, which flint says.
: >"$T/kernel"
wait "$pair"
status=$?
[ $status -ne $((128 + 3)) ] || fail "flint died of SIGQUIT (status $status)"
expect_status 125 "a kernel path that is not a regular file"
expect_err "is not a regular file"
echo "SIGQUIT before the VM ran: flint went on and refused the pipe (status $status)"
