# virtio-pmem (PUT /pmem/{id}, the config file's "pmem"): the guest sees
# each file as /dev/pmem<N>, sized to the next 2 MiB; what it writes and
# syncs is in the host's file, and its sync reaches the device as a flush;
# what it writes to a read-only device is dropped (its file never
# changes, the VM runs on); a PATCH of the rate limiter after boot; a
# snapshot restores the devices where the guest had them; a reset in
# place of a VM with a writable device is refused; a root pmem device
# boots (root=/dev/pmem0), and what it writes is there at the next boot.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api
need_rootfs
[ -x "$TOOLS/ctlpair" ] || skip "no $TOOLS/ctlpair (make test-tools)"

dd if=/dev/zero of="$T/data.pmem" bs=1M count=3 2>/dev/null
printf PMEMDATA | dd of="$T/data.pmem" conv=notrunc 2>/dev/null
dd if=/dev/zero of="$T/ro.pmem" bs=1M count=1 2>/dev/null
printf READONLY | dd of="$T/ro.pmem" conv=notrunc 2>/dev/null
ro_sum=$(md5sum <"$T/ro.pmem")

start_api
boot_source 'echo sizes $(cat /sys/block/pmem0/size) $(cat /sys/block/pmem1/size); echo heads $(head -c 8 /dev/pmem0) $(head -c 8 /dev/pmem1); printf XXXXXXXX | dd of=/dev/pmem1 bs=512 seek=10 conv=notrunc,fsync 2>/dev/null; printf GUESTWROTE | dd of=/dev/pmem0 bs=512 seek=2048 conv=notrunc,fsync 2>/dev/null && echo wrote; i=0; while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body missing <<EOB
{"id": "data", "path_on_host": "$T/no-such.pmem"}
EOB
api PUT /pmem/data missing
expect_fault "PUT /pmem with a missing file"
expect_resp 'no-such.pmem' "the message names the file"
body data <<EOB
{"id": "data", "path_on_host": "$T/data.pmem"}
EOB
api PUT /pmem/data data
expect_code 204 "PUT /pmem/data"
body ro <<EOB
{"id": "ro", "path_on_host": "$T/ro.pmem", "read_only": true}
EOB
api PUT /pmem/ro ro
expect_code 204 "PUT /pmem/ro"
body patch <<EOB
{"id": "data", "rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}}
EOB
api PATCH /pmem/data patch
expect_fault "PATCH /pmem before the start"
body metrics <<EOB
{"metrics_path": "$T/metrics.json"}
EOB
api PUT /metrics metrics
expect_code 204 "PUT /metrics"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^wrote' 60 || { kill_bg; fail "the guest did not write to /dev/pmem0"; }
tr -d '\r' <"$T/raw" | grep -q '^sizes 8192 4096$' ||
	{ kill_bg; fail "the guest's pmem sizes (512-byte sectors) are not 3 MiB -> 4 MiB and 1 MiB -> 2 MiB: $(tr -d '\r' <"$T/raw" | grep '^sizes')"; }
tr -d '\r' <"$T/raw" | grep -q '^heads PMEMDATA READONLY$' ||
	{ kill_bg; fail "the guest does not read the files' contents: $(tr -d '\r' <"$T/raw" | grep '^heads')"; }
got=$(dd if="$T/data.pmem" bs=1 skip=1048576 count=10 2>/dev/null)
[ "$got" = GUESTWROTE ] || { kill_bg; fail "the host's file lacks what the guest wrote and synced: '$got'"; }
body flush <<EOB
{"action_type": "FlushMetrics"}
EOB
api PUT /actions flush
expect_code 204 "FlushMetrics"
grep -Eq '"pmem_data" *: *\{[^}]*"flush_count" *: *[1-9]' "$T/metrics.json" ||
	{ kill_bg; fail "the metrics show no flush the guest's fsync sent: $(grep -o '"pmem_data"[^}]*' "$T/metrics.json")"; }
api PATCH /pmem/data patch
expect_code 204 "PATCH /pmem/data after the start"
api GET /vm/config
expect_resp '"pmem" *: *\[\{"id" *: *"data"' "GET /vm/config lists the pmem devices"
expect_resp '"refill_time" *: *1000' "with the PATCHed rate limiter"

# A snapshot, restored in a new flint: the devices come back on their
# files, where the guest had them; it reads them again.
body pause <<EOB
{"state": "Paused"}
EOB
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused"
body snap <<EOB
{"snapshot_type": "Full", "snapshot_path": "$T/p.state", "mem_file_path": "$T/p.mem"}
EOB
api PUT /snapshot/create snap
expect_code 204 "PUT /snapshot/create"
kill_bg
last=$(grep '^tick' "$OUT" | tail -n 1 | cut -d' ' -f2)
[ "$(md5sum <"$T/ro.pmem")" = "$ro_sum" ] || fail "the read-only device's file changed"
rm -f "$API_SOCK"
start_api --restore "$T/p.state" --mem-file "$T/p.mem"
body resume <<EOB
{"state": "Resumed"}
EOB
api PATCH /vm resume
expect_code 204 "PATCH /vm Resumed"
wait_for "^tick $((last + 3))" 30 || { kill_bg; fail "the restored guest does not count on from tick $last"; }
api GET /vm/config
expect_resp '"path_on_host" *: *"[^"]*data.pmem"' "the restored VM's pmem device"
kill_bg

# A reset in place (--control-fd's "reset") is refused: the writable
# device's file keeps what the guest wrote, which its restored memory
# would not know. The VM runs on; the control socket's end stops it.
mkfifo "$T/r.ctl"
"$TOOLS/ctlpair" -- "$FLINT" --restore "$T/p.state" --mem-file "$T/p.mem" --console none \
	--control-fd 3 <"$T/r.ctl" >"$T/r.ans" 2>"$T/r.err" &
rpid=$!
exec 7>"$T/r.ctl"
echo reset >&7
n=100
until [ -s "$T/r.ans" ] || [ $n = 0 ]; do
	sleep 0.2
	n=$((n - 1))
done
exec 7>&-
wait "$rpid" || true
grep -q '^error .*pmem device data is writable' "$T/r.ans" ||
	fail "the reset of a VM with a writable pmem device was not refused: $(cat "$T/r.ans") $(tail -n 3 "$T/r.err")"

# A snapshot whose device's file has another size is refused, naming it.
dd if=/dev/zero of="$T/data.pmem" bs=1M count=5 2>/dev/null
rm -f "$API_SOCK"
flint --restore "$T/p.state" --mem-file "$T/p.mem"
expect_failure "a restore whose pmem file changed size"
expect_err 'pmem:data.*must be the size it was' "a message naming the device and the size"

# A root pmem device: the guest boots from it, read-write, and what it
# writes is there at the next boot.
cp "$ROOTFS" "$T/root.pmem"
# root_config CMD: a config file booting from the pmem root, running CMD.
root_config() {
	cat >"$T/root.json" <<EOB
{"boot-source": {"kernel_image_path": "$KERNEL",
                 "boot_args": "console=ttyS0 reboot=k panic=-1 -- sh -c \"$1\""},
 "drives": [],
 "pmem": [{"id": "root", "path_on_host": "$T/root.pmem", "root_device": true}]}
EOB
}
root_config 'mount; echo pm=$((40+2)) >/root/pm; echo rootdone'
flint --config-file "$T/root.json" --no-api
expect_status 0 "the guest's command on the pmem root"
expect_out '^/dev/root on / type ext4 \(rw' "/ mounted from the pmem device, read-write"
expect_out '^rootdone$' "the command ran"
root_config 'cat /root/pm'
flint --config-file "$T/root.json" --no-api
expect_status 0 "the second boot's command"
expect_out '^pm=42$' "the file written at the first boot"
