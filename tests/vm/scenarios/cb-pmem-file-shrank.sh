# A pmem device's file truncated by a host program while the guest reads
# it: the guest's next touch of what was cut off would wait in KVM for
# ever (before, the guest went silent and flint said nothing). flint
# stops the VM within its 100 ms check with 125, naming the device and
# both sizes.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api
dd if=/dev/zero of="$T/data.pmem" bs=1M count=4 2>/dev/null
printf PMEMDATA | dd of="$T/data.pmem" conv=notrunc 2>/dev/null
start_api
boot_source 'i=0; while [ $i -lt 300 ]; do echo tick $i $(dd if=/dev/pmem0 bs=4096 skip=768 count=1 2>/dev/null | wc -c) $(head -c 8 /dev/pmem0); i=$((i+1)); sleep 0.1; done; echo done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body data <<EOB
{"id": "data", "path_on_host": "$T/data.pmem"}
EOB
api PUT /pmem/data data
expect_code 204 "PUT /pmem/data"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^tick 3 4096 PMEMDATA' 60 || { kill_bg; fail "the guest did not read /dev/pmem0"; }
truncate -s 0 "$T/data.pmem"
wait_gone $pid 10
kill_bg
echo "flint after its pmem file was truncated -> status $status"
expect_status 125 "flint stops the VM whose pmem file shrank"
grep -q 'pmem device data: its file shrank from 4194304 to 0 bytes while the guest ran on it' "$ERR" ||
	fail "stderr does not name the pmem device and both sizes"
