# --config-file with --no-api boots at once from Firecracker's JSON (a
# top-level member it has no field for passed over, as Firecracker does,
# with a warning); with the API on, the same file boots and the API answers
# Running; a bad file is refused naming the field.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

cat >"$T/vm.json" <<EOB
{
  "boot-source": {"kernel_image_path": "$KERNEL", "initrd_path": "$INITRD",
                  "boot_args": "console=ttyS0 reboot=k panic=-1 -- sh -c \"echo from-config-file \$(nproc); sleep 2\""},
  "drives": [],
  "machine-config": {"vcpu_count": 2, "mem_size_mib": 96},
  "comment": "a member Firecracker's file has no field for: passed over"
}
EOB
flint --config-file "$T/vm.json" --no-api
expect_status 0 "the guest command's status"
expect_out '^from-config-file 2$' "the guest's command with 2 vCPUs"
expect_err "unknown top-level field 'comment' ignored" "a warning naming the unknown member"

start_api --config-file "$T/vm.json" --stats
api GET /
expect_code 200 "GET / beside a config-file boot"
expect_resp '"state" *: *"Running"' "state Running"
api GET /machine-config
expect_resp '"mem_size_mib" *: *96' "the file's machine-config"
# The guest ends by itself in about 3 s. One that hangs is stopped and
# looked at: the rig's emulated SVM now and then hangs a guest
# (rig_fault says so, and the runner then runs the scenario once more).
if ! wait_gone "$pid" 60; then
	kill -TERM "$pid" 2>/dev/null
	wait_gone "$pid" 5
	kill_bg
	rig_fault "$ERR"
	fail "the guest with the API on did not end within 60 s"
fi
wait_bg
expect_status 0 "the guest command's status with the API on"

cat >"$T/bad.json" <<EOB
{"boot-source": {"kernel_image_path": "$KERNEL"}, "drives": [], "machine-config": {"vcpu_count": 0, "mem_size_mib": 128}}
EOB
flint --config-file "$T/bad.json" --no-api
expect_status 125 "a bad config file"
expect_err 'vcpu_count' "a message naming vcpu_count"
