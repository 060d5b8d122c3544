# MMDS, as a Firecracker user drives it: an interface on a tap, PUT
# /mmds/config naming it, PUT /mmds before the start. The guest, with a
# route to 169.254.169.254 on eth0 (so that it asks MMDS's own ARP), reads
# its metadata with busybox wget, in IMDS's text form and as JSON; a PATCH
# /mmds after the start shows in what it reads next. Nothing of it reaches
# the tap. A snapshot restores MMDS on the interface with an empty store,
# which --metadata fills at the restored flint's start.
# Then version 2: a GET without a token is refused (401), a token from PUT
# /latest/api/token (with nc) opens it.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
. "$(dirname "$0")/../lib-net.sh"
need_net
need_api

M=http://169.254.169.254/latest/meta-data
ROUTE='ip route add 169.254.169.254 dev eth0'
# The guest's reads, each a line, every half second.
READS="$ROUTE; i=0; while [ \$i -lt 600 ]; do echo ami=\$(wget -q -O - $M/ami-id); echo list=\$(wget -q -O - $M/ | tr '\\\\n' ,); echo json=\$(wget -q -O - --header 'Accept: application/json' $M/placement); sleep 0.5; i=\$((i+1)); done"

# tap_packets: packets the guest sent onto the tap (L1's RX count).
tap_packets() {
	cat "/sys/class/net/$1/statistics/rx_packets"
}

tap_up fc8a
start_api
boot_source "$READS" "" "$GUEST_IP "
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body eth0 <<EOB
{"iface_id": "eth0", "host_dev_name": "fc8a", "guest_mac": "$GUEST_MAC"}
EOB
api PUT /network-interfaces/eth0 eth0
expect_code 204 "PUT /network-interfaces/eth0"
body bad_cfg <<EOB
{"network_interfaces": ["eth1"]}
EOB
api PUT /mmds/config bad_cfg
expect_fault "an interface that is not configured"
expect_resp "does not correspond to any existing network interface" "the reason"
body cfg <<EOB
{"network_interfaces": ["eth0"]}
EOB
api PUT /mmds/config cfg
expect_code 204 "PUT /mmds/config"
body data <<EOB
{"latest": {"meta-data": {"ami-id": "ami-flint", "hostname": "vm1",
 "placement": {"zone": "z1"}}}}
EOB
api PUT /mmds data
expect_code 204 "PUT /mmds"
api GET /vm/config
expect_resp '"mmds-config" *: *\{"version" *: *"V1"' "GET /vm/config's mmds-config"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
tap0=$(tap_packets fc8a)
wait_for '^ami=ami-flint$' 90 || { kill_bg; fail "the guest did not read its ami-id from MMDS"; }
wait_for '^list=ami-id,hostname,placement/$' 30 || { kill_bg; fail "the guest's listing of meta-data"; }
wait_for '^json={"zone":"z1"}$' 30 || { kill_bg; fail "the guest's JSON read"; }

body patch <<EOB
{"latest": {"meta-data": {"ami-id": "ami-patched", "hostname": null}}}
EOB
api PATCH /mmds patch
expect_code 204 "PATCH /mmds after the start"
wait_for '^ami=ami-patched$' 30 || { kill_bg; fail "the guest did not see the PATCH"; }
wait_for '^list=ami-id,placement/$' 30 || { kill_bg; fail "hostname stayed after PATCH null"; }
api GET /mmds
expect_resp '^\{"latest":\{"meta-data":\{"ami-id":"ami-patched","placement":\{"zone":"z1"\}\}\}\}$' \
	"GET /mmds"
tap1=$(tap_packets fc8a)
echo "packets on the tap while the guest read MMDS: $((tap1 - tap0))"
# A few from the guest's own start-up (IPv6 router solicitations and the
# like) may reach the tap; a wget a half second over the tap would be
# hundreds by now.
[ $((tap1 - tap0)) -lt 40 ] || fail "$((tap1 - tap0)) packets reached the tap: MMDS's went there"

# A snapshot: MMDS is on eth0 again after the restore, the store empty
# until --metadata fills it.
pause_and_snapshot m
kill_bg
cat >"$T/meta.json" <<EOB
{"latest": {"meta-data": {"ami-id": "ami-restored", "placement": {"zone": "z2"}}}}
EOB
rm -f "$API_SOCK"
start_api --restore "$T/m.state" --mem-file "$T/m.mem" --metadata "$T/meta.json"
wait_for '^ami=ami-restored$' 60 || { kill_bg; fail "the restored guest did not read --metadata's ami-id"; }
api GET /vm/config
expect_resp '"mmds-config" *: *\{"version" *: *"V1"' "the restored GET /vm/config's mmds-config"
kill_bg

# Version 2: tokens.
echo '{"latest": {"meta-data": {"ami-id": "ami-v2"}}}' >"$T/meta2.json"
TOKEN_PUT="printf 'PUT /latest/api/token HTTP/1.1\\\\r\\\\nX-metadata-token-ttl-seconds: 60\\\\r\\\\nConnection: close\\\\r\\\\n\\\\r\\\\n'"
V2="$ROUTE; sleep 1; wget -q -O - $M/ami-id; echo notoken=\$?; t=\$( ($TOKEN_PUT; sleep 5) | nc 169.254.169.254 80 | tail -n 1); echo token-length=\${#t}; echo ami=\$(wget -q -O - --header 'X-metadata-token: '\$t $M/ami-id); echo forged=\$(wget -q -O - --header 'X-metadata-token: x'\$t $M/ami-id); sleep 600"
rm -f "$API_SOCK"
start_api --metadata "$T/meta2.json"
boot_source "$V2" "" "$GUEST_IP "
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
api PUT /network-interfaces/eth0 eth0
expect_code 204 "PUT /network-interfaces/eth0"
body cfg2 <<EOB
{"network_interfaces": ["eth0"], "version": "V2"}
EOB
api PUT /mmds/config cfg2
expect_code 204 "PUT /mmds/config V2"
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^notoken=1$' 90 || { kill_bg; fail "a GET without a token was not refused"; }
wait_for '^token-length=44$' 30 || { kill_bg; fail "no token from PUT /latest/api/token"; }
wait_for '^ami=ami-v2$' 30 || { kill_bg; fail "the token did not open the GET"; }
wait_for '^forged=$' 30 || { kill_bg; fail "a forged token opened the GET"; }
kill_bg
