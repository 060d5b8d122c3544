# Free page hinting, as a Firecracker user runs it before a snapshot: a
# 256 MiB guest with a balloon made with free_page_hinting fills and frees
# 160 MiB; PATCH /balloon/hinting/start (no body: acknowledged on stop)
# starts a run, the guest's driver hints its free memory and ends the run,
# GET /balloon/hinting/status shows DONE (host_cmd 1) after the guest's
# STOP (guest_cmd 0), and flint's resident memory has fallen. The guest
# fills and frees its memory again; a second run, with acknowledge_on_stop
# false, gives it back too and stays the host's (host_cmd 3) until PATCH
# /balloon/hinting/stop. The guest, its memory back, writes 32 MiB and
# reads the same data twice.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# wait_status HOST GUEST SECONDS: until the hinting status is HOST, GUEST.
wait_status() {
	n=$(($3 * 2))
	while [ $n -gt 0 ]; do
		api GET /balloon/hinting/status >/dev/null
		[ "$(json_num host_cmd)" = "$1" ] && [ "$(json_num guest_cmd)" = "$2" ] && return 0
		sleep 0.5
		n=$((n - 1))
	done
	api GET /balloon/hinting/status
	kill_bg
	fail "the hinting status did not come to host_cmd $1, guest_cmd $2 within $3 s"
}

start_api
boot_source 'dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; rm /fill; echo guest-freed; sleep 15; dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; rm /fill; echo guest-freed-again; sleep 20; dd if=/dev/urandom of=/f2 bs=1M count=32 2>/dev/null; a=$(sha256sum </f2 | cut -c1-64); sleep 1; b=$(sha256sum </f2 | cut -c1-64); [ $a = $b ] && echo sums-match; sleep 400'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 256}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body balloon <<EOB
{"amount_mib": 0, "deflate_on_oom": false, "free_page_hinting": true}
EOB
api PUT /balloon balloon
expect_code 204 "PUT /balloon with free_page_hinting"
api PATCH /balloon/hinting/start
expect_fault "a hinting run before the start"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^guest-freed' 120 || { kill_bg; fail "the guest did not fill and free its memory"; }
api GET /balloon/hinting/status
expect_code 200 "the status before any run"
expect_resp '"host_cmd" *: *0' "no run asked yet"
full=$(rss_kib)

api PATCH /balloon/hinting/start
expect_code 204 "PATCH /balloon/hinting/start, no body"
wait_status 1 0 60
after=$(rss_kib)
echo "flint's RSS $full KiB with the guest's 160 MiB freed, $after KiB after the run"
[ $((full - after)) -ge 65536 ] ||
	fail "flint's RSS fell by $((full - after)) KiB: the hinted memory did not go back"

wait_for '^guest-freed-again' 60 || { kill_bg; fail "the guest did not fill and free again"; }
full=$(rss_kib)
body noack <<EOB
{"acknowledge_on_stop": false}
EOB
api PATCH /balloon/hinting/start noack
expect_code 204 "a run without acknowledge_on_stop"
wait_rss_fall "$full" 65536 30
fell=$?
echo "flint's RSS $full KiB with the guest's memory freed again, $after KiB in the second run"
[ $fell = 0 ] || fail "flint's RSS fell by $((full - after)) KiB in the second run"
sleep 2 # the guest ends its run: not acknowledged, it stays the host's
wait_status 3 0 10
api PATCH /balloon/hinting/stop
expect_code 204 "PATCH /balloon/hinting/stop"
wait_status 1 0 10
grep -q "not given back" "$ERR" && fail "hints not given back: $(grep 'not given back' "$ERR")"

# The guest's own memory after the runs: its data holds.
wait_for '^sums-match' 120 || {
	kill_bg
	fail "the guest's 32 MiB did not read back the same after the hinting runs"
}
kill_bg
echo "two hinting runs gave the guest's free memory back, and its data held"
