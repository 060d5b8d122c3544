# virtio-net on a tap: the guest (172.16.0.2) pings L1's tap address
# (172.16.0.1), then 16 MiB go each way over TCP and their sha256 sums match
# on both ends; --stats counts the packets, and no TX packet was malformed.
# Busybox nc sends reliably only as a listener, so the sending end listens;
# a receiving nc quits when its stdin ends, so L1's reads a FIFO it holds.
# timeout: 400
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-net.sh"
need_net
tap_up ft90

head -c 16777216 /dev/urandom >"$T/h2g"
want_h2g=$(sha256sum <"$T/h2g" | cut -d' ' -f1)
nc -l -p 5001 <"$T/h2g" &
bg $!
# Fetch the guest's data once it listens (refused until then).
mkfifo "$T/in"
(for i in $(seq 600); do
	nc 172.16.0.2 5000 <>"$T/in" >"$T/g2h" 2>/dev/null && [ -s "$T/g2h" ] && exit 0
	sleep 0.5
done) &
fetch=$!
bg $fetch

boot --mem 256M --net "tap=ft90,mac=$GUEST_MAC" --stats --append "$GUEST_IP" -- sh -c "ping -c 3 172.16.0.1 && dd if=/dev/urandom of=/tmp/g bs=1M count=16 2>/dev/null && echo g2h=\$(sha256sum </tmp/g) && nc -l -p 5000 </tmp/g && nc 172.16.0.1 5001 >/tmp/h && echo h2g=\$(sha256sum </tmp/h) && echo net-done"
keep_logs net-90
expect_out '3 packets transmitted, 3 packets received' "3 of 3 pings answered"
expect_out '^net-done$' "'net-done' (both transfers finished in the guest)"
expect_status 0 "the guest command succeeded"
wait $fetch || fail "L1 never got the guest's data"
got_g2h=$(sha256sum <"$T/g2h" | cut -d' ' -f1)
sent_g2h=$(sed -n 's/^g2h=\([0-9a-f]\{64\}\).*/\1/p' "$OUT")
got_h2g=$(sed -n 's/^h2g=\([0-9a-f]\{64\}\).*/\1/p' "$OUT")
[ "$got_g2h" = "$sent_g2h" ] ||
	fail "guest to host: the guest sent sha256 $sent_g2h, L1 got $got_g2h ($(wc -c <"$T/g2h") bytes)"
[ "$got_h2g" = "$want_h2g" ] || fail "host to guest: L1 sent sha256 $want_h2g, the guest got $got_h2g"
stats=$(net_stats)
[ -n "$stats" ] || fail "no eth0 line in --stats"
# Both ways at least the 16 MiB, in at least 256 packets (64 KiB TSO).
for dir in rx tx; do
	pk=$(echo "$stats" | sed -n "s/.*$dir packets=\([0-9]*\) bytes=.*/\1/p")
	by=$(echo "$stats" | sed -n "s/.*$dir packets=[0-9]* bytes=\([0-9]*\).*/\1/p")
	[ "${pk:-0}" -ge 256 ] && [ "${by:-0}" -ge 16777216 ] ||
		fail "--stats: $dir counted $pk packets, $by bytes: $stats"
done
[ "$(stat_of malformed)" = 0 ] || fail "--stats: malformed TX packets: $stats"
echo "16 MiB each way, sums match; $stats; KVM $(grep -o ' exits=[0-9]*' "$ERR" | head -n1)"
