# Firecracker's getting-started sequence over the API with curl: boot-source,
# a drive, machine-config (a vsock in a missing directory refused at its
# PUT), InstanceStart; the guest runs. Then the wrong calls
# (boot-source after the start, vcpu_count 0, an unknown field, an unknown
# path, an oversized body) each get 400 with a fault_message, and flint runs on.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

dd if=/dev/zero of="$T/data.img" bs=1M count=8 2>/dev/null
start_api

api GET /
expect_code 200 "GET / before the start"
expect_resp '"state" *: *"Not started"' "state Not started"
expect_resp '"app_name" *: *"flint"' "app_name"
api GET /version
expect_code 200 "GET /version"

boot_source 'echo api-guest-up; ls /sys/block; cat /sys/block/vda/serial; echo; sleep 4; echo api-guest-done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body drive <<EOB
{"drive_id": "data", "path_on_host": "$T/data.img", "is_root_device": false, "is_read_only": false}
EOB
api PUT /drives/data drive
expect_code 204 "PUT /drives/data"
body machine <<EOB
{"vcpu_count": 2, "mem_size_mib": 128}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
# A vsock socket that cannot be made there is the PUT's 400, as in
# Firecracker (which binds it at the PUT), not InstanceStart's.
body vsock <<EOB
{"guest_cid": 3, "uds_path": "$T/no-such-dir/v.sock"}
EOB
api PUT /vsock vsock
expect_fault "PUT /vsock in a missing directory"
expect_resp "Cannot create backend for vsock device: .*no-such-dir/v.sock: No such file" \
	"the vsock fault names the directory"
api GET /machine-config
expect_resp '"vcpu_count" *: *2' "GET /machine-config shows 2 vCPUs"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
api GET /
expect_resp '"state" *: *"Running"' "state Running after InstanceStart"
wait_for '^api-guest-up' 60 || { kill_bg; fail "the guest did not run its command"; }

# Wrong calls: 400 with a fault_message, and flint runs on.
api PUT /boot-source boot
expect_fault "PUT /boot-source after the start"
expect_resp 'not supported after starting' "the phase rule's message"
body zero <<EOB
{"vcpu_count": 0, "mem_size_mib": 128}
EOB
api PATCH /machine-config zero
expect_fault "vcpu_count 0"
body unknown <<EOB
{"vcpu_count": 1, "mem_size_mib": 128, "turbo": true}
EOB
api PUT /machine-config unknown
expect_fault "an unknown field"
api GET /no/such/path
expect_fault "an unknown path"
head -c 60000 /dev/zero | tr '\0' 'x' | sed 's/^/{"a":"/; s/$/"}/' | body big
api PUT /machine-config big
expect_fault "a body over 51200 bytes"
api PUT /actions start
expect_fault "a second InstanceStart"
api GET /vm/config
expect_code 200 "GET /vm/config"
expect_resp '"drive_id" *: *"data"' "the drive in /vm/config"
api GET /
expect_resp '"state" *: *"Running"' "still running after the wrong calls"

wait_for '^api-guest-done' 60 || { kill_bg; fail "the guest did not finish its command"; }
wait_bg
expect_status 0 "the guest command's status"
expect_out '^vda$' "the API's drive as vda"
expect_out '^data$' "its serial, the drive_id"
