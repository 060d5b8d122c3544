# A Uffd-backed restore whose page-fault handler dies (SIGKILL) while the
# guest runs: the guest's next touch of a page the handler had not served
# (its tick loop adds 1 MiB to a file in its tmpfs each turn, in pages it
# never had) waits on a fault nobody reads. flint used to warn and wait
# for ever; now, once the fault has stayed unread for a second, it reads
# it itself and ends with 125, naming the page's guest-physical address.
# The fault is mostly KVM's async page-fault worker's; now and then (1 run
# in 8) the vCPU's own, taken in KVM, which the stop's kick does not end
# before Linux 6.2 (the rig's L1 runs 6.1): that vCPU is left to flint's
# exit a second later, with a warning.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

ticking_snapshot s 'dd if=/dev/zero bs=1M count=1 2>/dev/null >>/tmp/fill;'

start_uffd "$T/s.mem"
start_bg --restore "$T/s.state" --uffd-sock "$T/handler.sock"
wait_for "^tick $((last + 5))\$" 90 || {
	kill_bg
	kill "$upid"
	fail "the restored guest did not tick on from $last"
}
kill -KILL "$upid"
wait "$upid" 2>/dev/null
wait_gone_or_show $pid 30 "its handler was killed"
kill_bg
echo "flint after its Uffd handler was killed -> status $status"
grep 'Uffd' "$ERR" | sed 's/^/  err: /'
expect_status 125 "flint stops the VM whose Uffd handler is gone"
grep -q 'closed its connection' "$ERR" || fail "stderr does not say the handler hung up"
grep -q 'nobody has read the userfaultfd' "$ERR" || fail "stderr does not say nobody read it"
grep -Eq 'has not served \(guest-physical address 0x[0-9a-f]+\)' "$ERR" ||
	fail "stderr does not name the page nobody can serve"
