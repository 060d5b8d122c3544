# A Uffd-backed restore whose handler dies, and a vCPU whose own thread
# then waits on a page it never served: the tiny WALK guest writes the
# page a byte on its UART names with interrupts off, where KVM cannot
# hand the fault to its async page-fault worker and takes it in the vCPU
# thread. Before Linux 6.2 (the rig's L1 runs 6.1) only a fatal signal
# ends that wait, so the stop's kick does not: flint used to hang in the
# vCPU's join (CI saw db do this now and then). Now flint gives up on the
# vCPU a second after the stop, says so, and ends with 125; the guest
# runs no further. From 6.2 on the kick ends the fault itself.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api
# With metrics: their last line, written as flint ends, must not wait on
# the stuck vCPU either.
walk_restored --metrics-path "$T/metrics"
kill -KILL "$upid"
wait "$upid" 2>/dev/null
sleep 0.5
printf b >&8 # 32 MiB + 0x62 pages: never served
wait_gone_or_show $pid 30 "the guest touched a page nobody serves"
kill_bg
exec 8>&-
echo "flint after the guest touched a page nobody serves -> status $status"
grep -E 'Uffd|userfaultfd' "$ERR" | sed 's/^/  err: /'
expect_status 125 "flint stops the VM whose Uffd handler is gone"
grep -q 'has not served (guest-physical address 0x2062000)' "$ERR" ||
	fail "stderr does not name the page nobody serves, 0x2062000"
[ "$(grep -c '^walked$' "$OUT")" = 1 ] || fail "the guest walked on past the page nobody serves"
[ -s "$T/metrics" ] || fail "no metrics line written"
release=$(uname -r)
major=${release%%.*}
minor=${release#*.}
minor=${minor%%.*}
if [ "$major" -lt 6 ] || { [ "$major" = 6 ] && [ "$minor" -lt 2 ]; }; then
	grep -q 'vCPU 0 waits on guest memory the Uffd handler never served: it ends with flint' "$ERR" ||
		fail "on Linux $release the vCPU's fault outlasts the kick, and stderr does not say so"
fi
