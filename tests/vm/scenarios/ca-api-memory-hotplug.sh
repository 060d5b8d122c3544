# Memory hot-plug (PUT /hotplug/memory, a virtio-mem device), as a
# Firecracker user drives it: a 128 MiB guest with 512 MiB it may plug, in
# blocks of 2 MiB and KVM slots of 128 MiB. Bad sizes are refused, naming
# the limit; GET shows nothing plugged before the start. PATCH asks for 256
# MiB: the guest's driver plugs them (GET's plugged_size_mib, the guest's
# MemTotal grows by 256 MiB), the guest fills 200 MiB with them (flint's
# resident memory grows) and frees them; PATCH 0: the driver unplugs them
# (MemTotal back, flint's resident memory falls: the memory went back to
# the host). GET /vm/config shows the section (snapshots: d8).
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# wait_plugged MIB SECONDS: until the guest's driver has MIB MiB plugged.
wait_plugged() {
	wait_json /hotplug/memory plugged_size_mib "$1" "$2" "what the guest's driver plugged (MiB)"
}
memtotal() { # the guest's last MemTotal line, in KiB
	tr -d '\r' <"$T/raw" | sed -n 's/^MemTotal \([0-9]*\)$/\1/p' | tail -n 1
}
# wait_memtotal OP KIB SECONDS: until the guest's MemTotal is OP (-ge, -le) KIB.
wait_memtotal() {
	n=$(($3 * 2))
	while [ $n -gt 0 ]; do
		m=$(memtotal)
		[ -n "$m" ] && [ "$m" "$1" "$2" ] && return 0
		sleep 0.5
		n=$((n - 1))
	done
	kill_bg
	fail "the guest's MemTotal stayed at $(memtotal) KiB, not $1 $2"
}

start_api
# The guest prints its MemTotal every second; once it has over 300 MiB it
# fills 200 MiB of a tmpfs (its own: the root's is sized at boot) and frees
# them.
boot_source 'mkdir -p /hot; i=0; while [ $i -lt 400 ]; do t=$(awk '"'"'/^MemTotal/ { print $2 }'"'"' /proc/meminfo); echo MemTotal $t; if [ $t -gt 300000 ] && [ ! -e /done ]; then mount -t tmpfs -o size=300m hot /hot; dd if=/dev/zero of=/hot/fill bs=1M count=200 2>&1 && echo guest-filled; rm -f /hot/fill; umount /hot; touch /done; echo guest-freed; fi; sleep 1; i=$((i+1)); done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 128}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body odd <<EOB
{"total_size_mib": 500}
EOB
api PUT /hotplug/memory odd
expect_fault "a total that is not a multiple of the slot size"
body block3 <<EOB
{"total_size_mib": 512, "block_size_mib": 3}
EOB
api PUT /hotplug/memory block3
expect_fault "a block size that is not a power of two"
body hot <<EOB
{"total_size_mib": 512}
EOB
api PUT /hotplug/memory hot
expect_code 204 "PUT /hotplug/memory"
api GET /hotplug/memory
expect_code 200 "GET /hotplug/memory before the start"
for kv in total_size_mib:512 slot_size_mib:128 block_size_mib:2 plugged_size_mib:0 \
	requested_size_mib:0; do
	[ "$(json_num "${kv%%:*}")" = "${kv#*:}" ] || fail "GET /hotplug/memory: ${kv%%:*} is not ${kv#*:}: $(cat "$T/resp")"
done
body want256 <<EOB
{"requested_size_mib": 256}
EOB
api PATCH /hotplug/memory want256
expect_fault "PATCH /hotplug/memory before the start"

body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^MemTotal' 60 || { kill_bg; fail "the guest printed no MemTotal"; }
total0=$(memtotal)
rss0=$(rss_kib)

api PATCH /hotplug/memory want256
expect_code 204 "PATCH /hotplug/memory to 256 MiB"
wait_plugged 256 60
[ "$(json_num requested_size_mib)" = 256 ] || fail "requested_size_mib is not 256: $(cat "$T/resp")"
wait_memtotal -ge $((total0 + 250000)) 30
wait_for '^guest-filled' 60 || { kill_bg; fail "the guest did not fill 200 MiB"; }
rss1=$(rss_kib)
wait_for '^guest-freed' 30 || { kill_bg; fail "the guest did not free them"; }
echo "guest MemTotal $total0 -> $(memtotal) KiB; flint's RSS $rss0 -> $rss1 KiB"
[ $((rss1 - rss0)) -ge 102400 ] ||
	fail "flint's RSS grew by $((rss1 - rss0)) KiB while the guest filled 200 MiB"

body over <<EOB
{"requested_size_mib": 640}
EOB
api PATCH /hotplug/memory over
expect_fault "a requested size over the total"
body odd_req <<EOB
{"requested_size_mib": 3}
EOB
api PATCH /hotplug/memory odd_req
expect_fault "a requested size that is not a multiple of the block size"

body none <<EOB
{"requested_size_mib": 0}
EOB
api PATCH /hotplug/memory none
expect_code 204 "PATCH /hotplug/memory to 0"
wait_plugged 0 120
wait_memtotal -le $((total0 + 4096)) 30
rss2=$(rss_kib)
echo "after the unplug: guest MemTotal $(memtotal) KiB; flint's RSS $rss2 KiB"
[ $((rss1 - rss2)) -ge 102400 ] ||
	fail "flint's RSS fell by $((rss1 - rss2)) KiB: the unplugged memory did not go back"

api GET /vm/config
expect_resp '"memory-hotplug" *: *\{[^}]*"total_size_mib" *: *512' "memory-hotplug in /vm/config"
kill_bg
echo "memory hot-plug: plugged, used, unplugged and given back"
