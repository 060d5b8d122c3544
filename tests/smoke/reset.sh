# Sourced by snapshot.sh once $S/full.state (the counting tiny guest) and
# its diff exist: reset in place (flint --restore ... --control-fd N). A
# restored guest counts on; each "reset" on the control socket takes it back
# to the snapshot in the same process, so its count starts again from the
# snapshot's (the first tick after it appears once more per reset), under
# the seccomp filters, and is answered "ok <us>". A VM whose memory cannot
# be read from the file again (the Uffd backend, a diff laid over it) is
# refused with "error ..." and counts on untouched. The socket's end stops
# the VM: exit 0. tests/tools/ctlpair makes the socketpair for the shell.

cc -std=gnu11 -O2 -Wall -Werror -o "$OUT/ctlpair" "$(dirname "$0")/../tools/ctlpair.c" || exit 1

# ctl_run NAME RESETS FLINT-ARGS...: flint FLINT-ARGS --control-fd 3 with
# RESETS "reset" lines 0.3 s apart after 0.5 s, each waited for (its
# answer in $OUT/NAME.ans, the guest's output and flint's stderr in
# $OUT/NAME.out); then the socket closed. $ctl_status: flint's exit status.
ctl_run() {
	name=$1 n=$2
	shift 2
	rm -f "$OUT/$name.fifo"
	mkfifo "$OUT/$name.fifo"
	timeout 30 "$OUT/ctlpair" -- "$FLINT" "$@" --control-fd 3 <"$OUT/$name.fifo" \
		>"$OUT/$name.ans" 2>"$OUT/$name.out" &
	cpid=$!
	exec 7>"$OUT/$name.fifo"
	sleep 0.5
	i=0
	while [ $i -lt "$n" ]; do
		echo reset >&7
		k=0
		while [ "$(wc -l <"$OUT/$name.ans")" -le $i ] && [ $k -lt 100 ]; do
			sleep 0.05
			k=$((k + 1))
		done
		sleep 0.3
		i=$((i + 1))
	done
	exec 7>&-
	wait $cpid
	ctl_status=$?
}

# first_hex FILE: the first whole tick's count as the guest printed it.
first_hex() {
	grep -a -o 'tick [0-9a-f]*' "$1" | head -1 | cut -d' ' -f2
}

# times_counted FILE HEX: how often the guest printed tick HEX.
times_counted() {
	grep -a -o 'tick [0-9a-f]*' "$1" | grep -c -x "tick $2"
}

# Three resets: each answered ok, the count back to the snapshot's each
# time, never below it; the end of the socket stops the VM (exit 0).
ctl_run reset-in-place 3 --restore "$S/full.state" --mem-file "$S/full.mem"
why=""
first=$(first_hex "$OUT/reset-in-place.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || [ "$(grep -c '^ok [0-9][0-9]*$' "$OUT/reset-in-place.ans")" = 3 ] ||
	why="answers: $(tr '\n' '|' <"$OUT/reset-in-place.ans")"
[ -n "$why" ] || [ $((0x${first:-0})) -gt "$t_full" ] ||
	why="the restored guest counted from ${first:-nothing}, the snapshot was at $t_full"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-in-place.out" "$first")" = 4 ] ||
	why="tick $first counted $(times_counted "$OUT/reset-in-place.out" "$first") times, not 4 (once, then after each of 3 resets)"
for h in $(grep -a -o 'tick [0-9a-f]*' "$OUT/reset-in-place.out" | cut -d' ' -f2); do
	[ -n "$why" ] || [ $((0x$h)) -ge $((0x${first:-0})) ] ||
		why="the guest counted $h, below the snapshot's $first"
done
report reset-in-place "$why" "$OUT/reset-in-place.out"
echo "    reset in place (tiny guest): $(sed 's/^ok //' "$OUT/reset-in-place.ans" | tr '\n' ' ')us"

# The Uffd backend: refused, the VM counts on as it was.
why=""
rm -f "$S/uffd-r.sock"
"$BUILD_DIR/flint-uffd" "$S/uffd-r.sock" "$S/full.mem" >"$OUT/uffd-r.out" 2>"$OUT/uffd-r.err" &
upid=$!
n=0
while [ ! -S "$S/uffd-r.sock" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
ctl_run reset-uffd 1 --restore "$S/full.state" --uffd-sock "$S/uffd-r.sock"
wait $upid 2>/dev/null
first=$(first_hex "$OUT/reset-uffd.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || grep -q "^error this VM cannot be reset to its snapshot: its memory is the Uffd backend's" \
	"$OUT/reset-uffd.ans" || why="answer: $(cat "$OUT/reset-uffd.ans")"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-uffd.out" "$first")" = 1 ] ||
	why="the refused VM counted tick $first again"
report reset-refused-uffd "$why" "$OUT/reset-uffd.out"

# A diff laid over the memory file: refused, naming --mem-diff.
why=""
ctl_run reset-diff 1 --restore "$S/diff.state" --mem-file "$S/full.mem" --mem-diff "$S/diff.mem"
first=$(first_hex "$OUT/reset-diff.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || grep -q '^error .*--mem-diff' "$OUT/reset-diff.ans" ||
	why="answer: $(cat "$OUT/reset-diff.ans")"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-diff.out" "$first")" = 1 ] ||
	why="the refused VM counted tick $first again"
report reset-refused-diff "$why" "$OUT/reset-diff.out"

check reset-needs-restore 125 "" "--control-fd needs --restore" -- \
	--kernel "$OUT/tiny-COUNT.elf" --control-fd 3
