# The memory file of a File-backed restore truncated by a host program
# while the restored guest runs (say, a new snapshot written over the old
# one's files): the guest's pages it had not written since the restore are
# gone. Its next touch of one fails KVM_RUN (EFAULT: "Bad address", all
# flint said before), or flint's 100 ms check sees it first: either way
# flint ends with 125 and says the memory file shrank.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

ticking_snapshot s

start_bg --restore "$T/s.state" --mem-file "$T/s.mem"
wait_for "^tick $((last + 5))\$" 90 || { kill_bg; fail "the restored guest did not tick on from $last"; }
truncate -s 0 "$T/s.mem"
wait_gone $pid 10
kill_bg
echo "flint after its memory file was truncated -> status $status"
expect_status 125 "flint stops the VM whose memory file shrank"
grep -q 'the memory file shrank to 0 bytes while the guest ran on it' "$ERR" ||
	fail "stderr does not say that the memory file shrank"
