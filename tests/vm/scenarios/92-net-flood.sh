# A guest that stops taking packets never stalls flint: the guest sets eth0
# down while L1 floods it with pings; flint runs out of the guest's RX
# buffers and waits (--stats rx-waits), the guest keeps running, and once
# eth0 is up again the guest pings L1 and ends normally.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-net.sh"
need_net
tap_up ft92

# The first ping teaches L1 the guest's MAC, so the flood needs no ARP.
start_bg --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --net "tap=ft92,mac=$GUEST_MAC" \
	--stats --append "$GUEST_IP" -- sh -c "ping -c 1 172.16.0.1 >/dev/null && ip link set eth0 down && echo eth0-down && sleep 10 && echo slept && ip link set eth0 up && sleep 2 && ping -c 3 -W 20 172.16.0.1 && echo back"
bg $pid
if ! wait_for '^eth0-down' 120; then
	kill_bg
	fail "the guest never set eth0 down (status $status)"
fi
for i in 1 2 3 4; do
	ping -q -i 0.001 -s 1400 -w 6 172.16.0.2 >/dev/null 2>&1 &
	bg $!
done
wait_for '^back$' 120 || true
wait_bg
keep_logs net-92
expect_out '^slept$' "'slept' (the guest ran on during the flood)"
expect_out '^back$' "'back' (the guest reached L1 again after the flood)"
expect_status 0 "the guest command succeeded"
stats=$(net_stats)
[ "$(stat_of rx-waits)" -ge 1 ] || fail "--stats: flint never ran out of RX buffers: $stats"
[ "$(stat_of 'rx packets')" -ge 256 ] || fail "--stats: the flood did not arrive: $stats"
echo "flooded while down, recovered: $stats"
