# A Uffd-backed restore whose handler stays connected but stops serving
# (SIGSTOP: its socket stays open, it reads nothing): the tiny WALK guest
# then touches a page it never served, and a SIGTERM asks flint to stop.
# flint used to wait for ever for the vCPU in its join (the handler never
# hung up, so nothing gave up on it); now an event the connected handler
# leaves unread for 3 s while the threads end makes flint read the
# userfaultfd itself, name the page, and give the vCPU up a second later.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api
walk_restored
kill -STOP "$upid"
printf b >&8 # 32 MiB + 0x62 pages: never served
# Until a thread of flint's waits on that page (its wchan), at most 10 s.
n=100
until grep -qs handle_userfault /proc/$pid/task/*/wchan || [ $n = 0 ]; do
	n=$((n - 1))
	sleep 0.1
done
[ $n -gt 0 ] || echo "no thread of flint's seen waiting on the page: SIGTERM all the same"
kill -TERM $pid
wait_gone_or_show $pid 30 "SIGTERM with a stalled Uffd handler"
kill_bg
exec 8>&-
kill -KILL "$upid"
wait "$upid" 2>/dev/null
echo "flint stopped with a stalled Uffd handler -> status $status"
grep -E 'Uffd|userfaultfd' "$ERR" | sed 's/^/  err: /'
kill -0 $pid 2>/dev/null && fail "flint still runs with a stalled Uffd handler"
[ "$(grep -c '^walked$' "$OUT")" = 1 ] || fail "the guest walked on past the page nobody serves"
# From Linux 6.2 on the stop's kick ends the vCPU's fault itself (dc).
release=$(uname -r)
major=${release%%.*}
minor=${release#*.}
minor=${minor%%.*}
if [ "$major" -lt 6 ] || { [ "$major" = 6 ] && [ "$minor" -lt 2 ]; }; then
	grep -q 'the Uffd handler has left an event unread for 3 s while the VM stops' "$ERR" ||
		fail "stderr does not say the connected handler left the fault unread"
	grep -q 'vCPU 0 waits on guest memory the Uffd handler never served: it ends with flint' "$ERR" ||
		fail "stderr does not say the vCPU was given up"
fi
