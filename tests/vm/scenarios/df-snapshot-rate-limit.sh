# A drive's rate limiter is saved with the snapshot, as Firecracker saves
# it: a guest that emptied its 1 MiB bucket (refilled at 64 KiB/s) before
# the snapshot reads at 64 KiB/s right after the restore too, instead of
# getting a full bucket (16 reads of 64 KiB at once) again.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

dd if=/dev/zero of="$T/data.img" bs=1M count=64 2>/dev/null
start_api
# One 64 KiB read each time round (O_DIRECT: each costs its 64 KiB of
# tokens, none comes from the page cache), numbered.
boot_source 'i=0; while [ $i -lt 1000 ]; do dd if=/dev/vda of=/dev/null bs=64k count=1 skip=$i iflag=direct 2>/dev/null || echo read-failed; echo chunk $i; i=$((i+1)); done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body drive <<EOB
{"drive_id": "limited", "path_on_host": "$T/data.img", "is_root_device": false, "is_read_only": true,
 "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 16000}}}
EOB
api PUT /drives/limited drive
expect_code 204 "PUT /drives/limited with a rate limiter"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
# 16 reads empty the bucket; from then on one a second.
wait_for '^chunk 19$' 90 || { kill_bg; fail "the guest did not read 20 chunks"; }
pause_and_snapshot s
kill_bg
grep -q '^read-failed' "$OUT" && fail "a read failed before the snapshot"
last=$(grep '^chunk [0-9]*$' "$OUT" | tail -n 1 | cut -d' ' -f2)
echo "snapshot after chunk $last"

# Restored: the bucket is as empty as it was, so the reads go on at one a
# second; 3 s after the first one, at most a few more (a full bucket would
# have let 16 through at once).
start_bg --restore "$T/s.state" --mem-file "$T/s.mem"
wait_for '^chunk [0-9]+$' 90 || { kill_bg; fail "the restored guest did not read"; }
sleep 3
kill_bg
grep -q '^read-failed' "$OUT" && fail "a read failed after the restore"
n=$(grep -c '^chunk [0-9]*$' "$OUT")
first=$(grep '^chunk [0-9]*$' "$OUT" | head -n 1 | cut -d' ' -f2)
echo "restored: $n chunks in the first 3 s, from chunk $first"
[ "$first" -gt "$last" ] || fail "the restored guest read chunk $first again (saved after $last)"
[ "$n" -le 8 ] || fail "$n chunks of 64 KiB within 3 s of the restore: the bucket came back full"
