# A drive with Firecracker's rate limiter reads at its configured rate:
# 2 MiB/s (a 1 MiB bucket refilled every 500 ms, starting full), so 8 MiB
# take (8 - 1) / 2 = 3.5 s; within 10%.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

dd if=/dev/zero of="$T/data.img" bs=1M count=16 2>/dev/null
start_api --metrics-path "$T/metrics.json"
boot_source 'read t0 x </proc/uptime; dd if=/dev/vda of=/dev/null bs=64k count=128 2>/dev/null; read t1 x </proc/uptime; echo read-took $t0 $t1'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body drive <<EOB
{"drive_id": "limited", "path_on_host": "$T/data.img", "is_root_device": false, "is_read_only": true,
 "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 500}}}
EOB
api PUT /drives/limited drive
expect_code 204 "PUT /drives/limited with a rate limiter"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_bg
expect_status 0 "the guest's read"
line=$(grep '^read-took' "$OUT") || fail "the guest did not report its read"
took=$(echo "$line" | awk '{ printf "%d", ($3 - $2) * 100 + 0.5 }')
echo "8 MiB read in $took cs (expected 350 cs at 2 MiB/s)"
[ "$took" -ge 315 ] && [ "$took" -le 385 ] ||
	fail "8 MiB read in $took cs: not within 10% of the limiter's 350 cs"

# The metrics line flint writes at exit: the drive's section and the
# aggregate "block" count the 8 MiB and the limiter's refusals.
for sec in block_limited block; do
	m=$(grep -o "\"$sec\":{[^}]*}" "$T/metrics.json" | tail -n 1)
	bytes=$(echo "$m" | grep -o '"read_bytes":[0-9]*' | cut -d: -f2)
	throttled=$(echo "$m" | grep -o '"rate_limiter_throttled_events":[0-9]*' | cut -d: -f2)
	[ "${bytes:-0}" -ge 8388608 ] || fail "metrics $sec: read_bytes ${bytes:-none}, expected at least 8 MiB: $m"
	[ "${throttled:-0}" -gt 0 ] || fail "metrics $sec: no rate_limiter_throttled_events: $m"
done
