# The balloon device (PUT /balloon), as a Firecracker user drives it: a
# 256 MiB guest fills and frees 160 MiB, then PATCH /balloon asks it for
# 128 MiB. The guest's driver gives them (its MemTotal falls by 128 MiB),
# GET /balloon/statistics shows the target and what it holds beside the
# guest's own statistics, which keep coming (its total follows), and flint's resident memory falls: the pages went
# back to the host. The interval changes but cannot be turned off. A
# snapshot taken with the balloon inflated restores with it (GET /balloon,
# the statistics), the restored guest's driver deflates it when asked, and
# its statistics go on; restored with the Uffd backend, its driver gives
# and takes back pages under flint-uffd.
# Then a guest with free_page_reporting frees 160 MiB and flint's resident
# memory falls without any inflation: the guest reported the free memory.
# timeout: 420
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# wait_actual MIB SECONDS: until the guest's driver holds MIB MiB.
wait_actual() {
	wait_json /balloon/statistics actual_mib "$1" "$2" "what the guest's driver holds (MiB)"
}
memtotal() { # the guest's last MemTotal line, in KiB
	tr -d '\r' <"$T/raw" | sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' | tail -n 1
}

start_api
boot_source 'dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; rm /fill; echo guest-filled; i=0; while [ $i -lt 400 ]; do grep MemTotal /proc/meminfo; sleep 1; i=$((i+1)); done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 256}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body too_big <<EOB
{"amount_mib": 257, "deflate_on_oom": false}
EOB
api PUT /balloon too_big
expect_fault "a balloon larger than the guest"
body balloon <<EOB
{"amount_mib": 0, "deflate_on_oom": false, "stats_polling_interval_s": 1}
EOB
api PUT /balloon balloon
expect_code 204 "PUT /balloon"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^guest-filled' 120 || { kill_bg; fail "the guest did not fill its memory"; }
wait_for '^MemTotal' 30 || { kill_bg; fail "the guest printed no MemTotal"; }
total0=$(memtotal)
rss0=$(rss_kib)

body inflate <<EOB
{"amount_mib": 128}
EOB
api PATCH /balloon inflate
expect_code 204 "PATCH /balloon to 128 MiB"
wait_actual 128 120
expect_resp '"target_pages" *: *32768' "the target in pages"
expect_resp '"target_mib" *: *128' "the target in MiB"
expect_resp '"actual_pages" *: *32768' "what the guest holds, in pages"
expect_resp '"free_memory" *: *[0-9]+' "the guest's free memory"
expect_resp '"total_memory" *: *[0-9]+' "the guest's total memory"
# The statistics keep coming: total_memory follows the inflation.
n=40
while [ $n -gt 0 ]; do
	api GET /balloon/statistics >/dev/null
	[ "$(json_num total_memory)" -lt $(((total0 - 120000) * 1024)) ] && break
	sleep 0.5
	n=$((n - 1))
done
[ $n -gt 0 ] || fail "the guest's statistics did not follow the inflation: $(cat "$T/resp")"
# The guest prints MemTotal once a second, its statistics come as often:
# the console's last line may still be the one from before they showed it.
n=20
while [ $n -gt 0 ]; do
	total1=$(memtotal)
	[ $((total0 - total1)) -ge 120000 ] && break
	sleep 0.5
	n=$((n - 1))
done
rss1=$(rss_kib)
echo "guest MemTotal $total0 -> $total1 KiB; flint's RSS $rss0 -> $rss1 KiB"
[ $((total0 - total1)) -ge 120000 ] ||
	fail "the guest's MemTotal fell by $((total0 - total1)) KiB, not by the 128 MiB it gave"
[ $((rss0 - rss1)) -ge 49152 ] ||
	fail "flint's RSS fell by $((rss0 - rss1)) KiB: the pages did not go back to the host"
api GET /balloon
expect_resp '"amount_mib" *: *128' "GET /balloon's amount_mib"

body interval <<EOB
{"stats_polling_interval_s": 2}
EOB
api PATCH /balloon/statistics interval
expect_code 204 "a new statistics interval"
body off <<EOB
{"stats_polling_interval_s": 0}
EOB
api PATCH /balloon/statistics off
expect_fault "turning statistics off after the start"
body big_patch <<EOB
{"amount_mib": 257}
EOB
api PATCH /balloon big_patch
expect_fault "PATCH /balloon over the guest's memory"
expect_resp 'more than the guest' "the reason: more than the guest's memory"
api GET /balloon/hinting/status
expect_fault "free page hinting"
api GET /vm/config
expect_resp '"balloon" *: *\{[^}]*"amount_mib" *: *128' "the balloon in /vm/config"

# A snapshot with 64 MiB in the balloon.
body half <<EOB
{"amount_mib": 64}
EOB
api PATCH /balloon half
expect_code 204 "PATCH /balloon to 64 MiB"
wait_actual 64 120
body pause <<EOB
{"state": "Paused"}
EOB
api PATCH /vm pause
expect_code 204 "pause"
body snap <<EOB
{"snapshot_type": "Full", "snapshot_path": "$T/b.state", "mem_file_path": "$T/b.mem"}
EOB
api PUT /snapshot/create snap
expect_code 204 "PUT /snapshot/create with a balloon"
kill_bg
rm -f "$API_SOCK"

start_api --restore "$T/b.state" --mem-file "$T/b.mem"
api GET /balloon
expect_resp '"amount_mib" *: *64' "the restored balloon's amount_mib"
expect_resp '"stats_polling_interval_s" *: *2' "its statistics interval"
api GET /balloon/statistics
expect_resp '"actual_mib" *: *64' "what the restored guest holds"
api PATCH /balloon/statistics interval
expect_code 204 "the restored balloon's statistics asked for"
body empty <<EOB
{"amount_mib": 0}
EOB
api PATCH /balloon empty
expect_code 204 "PATCH /balloon to 0 after the restore"
wait_actual 0 120
# The restored device's statistics chain cycles: total_memory comes back.
n=40
while [ $n -gt 0 ]; do
	api GET /balloon/statistics >/dev/null
	[ "$(json_num total_memory)" -gt $(((total0 - 8192) * 1024)) ] && break
	sleep 0.5
	n=$((n - 1))
done
[ $n -gt 0 ] || fail "the restored guest's statistics did not follow the deflation: $(cat "$T/resp")"
kill_bg
echo "the balloon inflated, reported, went through a snapshot and deflated"
rm -f "$API_SOCK"

# The same snapshot restored with the Uffd backend (flint-uffd, speaking
# Firecracker's protocol): the pages the guest gives are removed from
# under the handler, which serves zeros there when the guest takes them
# back.
start_uffd "$T/b.mem"
start_api --restore "$T/b.state" --uffd-sock "$T/handler.sock"
body more <<EOB
{"amount_mib": 160}
EOB
api PATCH /balloon more
expect_code 204 "PATCH /balloon to 160 MiB, Uffd-backed"
wait_actual 160 120
api PATCH /balloon empty
expect_code 204 "PATCH /balloon to 0, Uffd-backed"
wait_actual 0 120
kill_bg
wait "$upid" || fail "flint-uffd failed: $(tail -n 3 "$T/uffd.err")"
grep -q "not given back" "$ERR" && fail "pages not given back: $(grep 'not given back' "$ERR")"
echo "Uffd-backed: $(tail -n 1 "$T/uffd.err")"
rm -f "$API_SOCK"

# Free page reporting: no target at all.
start_api
boot_source 'dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; echo guest-filled; sleep 4; rm /fill; echo guest-freed; sleep 400'
api PUT /boot-source boot
api PUT /machine-config machine
body reporting <<EOB
{"amount_mib": 0, "deflate_on_oom": false, "free_page_reporting": true}
EOB
api PUT /balloon reporting
expect_code 204 "PUT /balloon with free_page_reporting"
api PUT /actions start
expect_code 204 "InstanceStart with free page reporting"
wait_for '^guest-filled' 120 || { kill_bg; fail "the guest did not fill its memory"; }
full=$(rss_kib)
wait_for '^guest-freed' 30 || { kill_bg; fail "the guest did not free its memory"; }
wait_rss_fall "$full" 65536 30
fell=$?
echo "flint's RSS $full KiB with the guest's 160 MiB, $after KiB once it freed them"
[ $fell = 0 ] ||
	fail "flint's RSS fell by $((full - after)) KiB within 30 s of the guest freeing 160 MiB"
api GET /balloon/statistics
expect_fault "statistics of a balloon without them"
kill_bg
echo "free page reporting gave the guest's freed memory back"
