# Sourced by run.sh: machine-config's smt, track_dirty_pages and huge_pages
# "2M", a root drive's partuuid, and PUT /serial's serial_out_path and
# rate_limiter, through --config-file with the tiny guest.

# machine_json NAME MACHINE-CONFIG [MORE]: $OUT/NAME.json booting the tiny
# guest that reports 42; MORE adds sections (drives: none unless it says).
machine_json() {
	case "${3:-}" in *'"drives"'*) drives="" ;; *) drives=', "drives": []' ;; esac
	printf '{"boot-source": {"kernel_image_path": "%s"}, "machine-config": {%s}%s%s}\n' \
		"$OUT/tiny-EXIT_STATUS.elf" "$2" "$drives" "${3:-}" >"$OUT/$1.json"
}

machine_json smt '"vcpu_count": 2, "mem_size_mib": 64, "smt": true'
check machine-smt 42 "hello from the tiny guest" "guest boot time" -- \
	--config-file "$OUT/smt.json" --no-api
machine_json dirty '"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": true'
check machine-dirty-pages 42 "hello from the tiny guest" "guest boot time" -- \
	--config-file "$OUT/dirty.json" --no-api

# The root drive by PARTUUID, ro as the drive is, on the kernel command line.
truncate -s 1M "$OUT/root.img"
machine_json partuuid '"vcpu_count": 1, "mem_size_mib": 64' ', "drives": [{"drive_id": "rootfs",
  "path_on_host": "'"$OUT"'/root.img", "is_root_device": true, "is_read_only": true,
  "partuuid": "0ea7c1e2-02"}]'
check machine-partuuid 42 "hello from the tiny guest" \
	"kernel command line: .*root=PARTUUID=0ea7c1e2-02 ro " -- \
	--config-file "$OUT/partuuid.json" --no-api --level Debug

# The console to a file instead of stdout; with a rate limiter of 5 bytes
# that refills in 100 s, only "hello" of the guest's line gets there.
rm -f "$OUT/serial.out" "$OUT/serial-rl.out"
machine_json serial '"vcpu_count": 1, "mem_size_mib": 64' \
	', "serial": {"serial_out_path": "'"$OUT"'/serial.out"}'
check machine-serial-out 42 "" "guest boot time" -- --config-file "$OUT/serial.json" --no-api
grep -q "hello from the tiny guest" "$OUT/serial.out" 2>/dev/null && why="" ||
	why="serial_out_path lacks the guest's line"
report machine-serial-out-file "$why" "$OUT/machine-serial-out.err"
machine_json serial-rl '"vcpu_count": 1, "mem_size_mib": 64' \
	', "serial": {"serial_out_path": "'"$OUT"'/serial-rl.out",
	  "rate_limiter": {"size": 5, "refill_time": 100000}}'
check machine-serial-rate-limit 42 "" "guest boot time" -- \
	--config-file "$OUT/serial-rl.json" --no-api
[ "$(cat "$OUT/serial-rl.out" 2>/dev/null)" = hello ] && why="" ||
	why="expected 'hello' alone, got '$(head -c 80 "$OUT/serial-rl.out" 2>/dev/null)'"
report machine-serial-rate-limit-file "$why" "$OUT/machine-serial-rate-limit.err"

# Huge pages: more than the host's free pool is refused at once with a
# message naming nr_hugepages; with enough (added here as root, then given
# back) the guest runs.
hp_free() {
	awk '/^HugePages_Free:/ {f = $2} /^HugePages_Rsvd:/ {r = $2} END {print f - r}' \
		/proc/meminfo
}
mib=$(($(hp_free) * 2 + 16))
machine_json huge-refused '"vcpu_count": 1, "mem_size_mib": '$mib', "huge_pages": "2M"'
check machine-huge-pages-refused 125 "" "/proc/sys/vm/nr_hugepages" -- \
	--config-file "$OUT/huge-refused.json" --no-api
nr=$(cat /proc/sys/vm/nr_hugepages)
if [ "$(hp_free)" -lt 32 ] && ! echo $((nr + 32)) >/proc/sys/vm/nr_hugepages 2>/dev/null; then
	echo "SKIP machine-huge-pages: cannot add 32 huge pages (not root?)"
else
	machine_json huge '"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "2M"'
	check machine-huge-pages 42 "hello from the tiny guest" "guest boot time" -- \
		--config-file "$OUT/huge.json" --no-api
	echo "$nr" >/proc/sys/vm/nr_hugepages 2>/dev/null
fi
