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

start_api --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio \
	-- sh -c 'i=0; while [ $i -lt 3000 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done'
wait_for '^tick 5$' 90 || { kill_bg; fail "the guest did not tick"; }
pause_and_snapshot s
kill_bg
last=$(whole_lines "$OUT" | grep '^tick [0-9]*$' | tail -n 1 | cut -d' ' -f2)

start_bg --restore "$T/s.state" --mem-file "$T/s.mem"
wait_for "^tick $((last + 5))\$" 90 || { kill_bg; fail "the restored guest did not tick on from $last"; }
truncate -s 0 "$T/s.mem"
wait_gone $pid 10
kill_bg
echo "flint after its memory file was truncated -> status $status"
expect_status 125 "flint stops the VM whose memory file shrank"
grep -q 'the memory file shrank to 0 bytes while the guest ran on it' "$ERR" ||
	fail "stderr does not say that the memory file shrank"
