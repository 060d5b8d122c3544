# The network after a restore onto another tap (network_overrides): a guest
# that pings L1 once a round is saved while its interface is on tap fd1a;
# the tap is deleted and the snapshot restored with --net-override onto
# fd1b, which has L1's address and fd1a's MAC now (the guest's ARP cache
# still has it, as Firecracker's clones rely on): the guest's pings go on
# answered at once.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
. "$(dirname "$0")/../lib-net.sh"
need_net
need_api
tap_up fd1a

start_api --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio \
	--net "tap=fd1a,mac=$GUEST_MAC,id=eth0" --append "$GUEST_IP" -- sh -c \
	'i=0; while [ $i -lt 2000 ]; do if ping -c 1 -W 1 172.16.0.1 >/dev/null 2>&1; then echo pingok $i; else echo pingfail $i; fi; i=$((i+1)); sleep 0.3; done'
wait_for '^pingok 3$' 90 || { kill_bg; fail "the guest's pings were not answered before the snapshot"; }
pause_and_snapshot net
sleep 0.5
# (not $n: wait_for counts down in it)
saved=$(whole_lines "$T/raw" | grep -E '^ping(ok|fail) [0-9]+$' | tail -n 1 | cut -d' ' -f2)
kill_bg
mac=$(cat /sys/class/net/fd1a/address)
tunctl -d fd1a >/dev/null 2>&1
tap_up fd1b
ip link set fd1b address "$mac" || fail "cannot give fd1b the MAC $mac"

start_bg --restore "$T/net.state" --mem-file "$T/net.mem" --net-override eth0=fd1b
wait_for '^pingok [0-9]+$' 60 || { kill_bg; fail "after the restore onto fd1b no ping was answered"; }
sleep 2
kill_bg
first=$(grep -E '^ping(ok|fail) [0-9]+$' "$OUT" | head -n 1 | cut -d' ' -f2)
ok=$(grep '^pingok [0-9]*$' "$OUT" | head -n 1 | cut -d' ' -f2)
echo "saved at round $saved; restored, the guest went on from round $first, its first answered ping in round $ok"
[ "$first" -gt "$saved" ] && [ "$first" -le $((saved + 2)) ] || fail "restored at round $saved, the guest went on from round $first"
[ "$ok" -le $((first + 2)) ] || fail "after the restore the pings of rounds $first to $((ok - 1)) were not answered"

# An override naming no interface of the snapshot is refused.
flint --restore "$T/net.state" --mem-file "$T/net.mem" --net-override eth9=fd1b
expect_status 125 "an override of an interface the snapshot lacks"
expect_err "no network interface 'eth9'" "the reason"
