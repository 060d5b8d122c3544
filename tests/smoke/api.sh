# Sourced by run.sh once the tiny guests are built: Firecracker's API on the
# host, driven with curl --unix-socket as its getting-started guide does.
# The tiny guests need no Linux, so these run where the VM scenarios cannot.

# api_req METHOD PATH [BODY]: one request on $SOCK; $code is the HTTP status,
# the answer in $OUT/api.resp.
api_req() {
	code=$(curl -sS --max-time 10 --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
		-o "$OUT/api.resp" -w '%{http_code}' "http://localhost$2" 2>>"$OUT/api.curl") ||
		code="curl-failed"
}

# api_start NAME ARGS...: flint --api-sock $SOCK ARGS in the background, until
# the socket answers; its stdout and stderr in $OUT/NAME.out (or $api_out,
# when set) and .err.
api_start() {
	name=$1
	shift
	SOCK=$OUT/$name.sock
	rm -f "$SOCK"
	"$FLINT" --api-sock "$SOCK" "$@" >"${api_out:-$OUT/$name.out}" 2>"$OUT/$name.err" </dev/null &
	api_pid=$!
	n=0
	until [ -S "$SOCK" ] && api_req GET / && [ "$code" = 200 ]; do
		n=$((n + 1))
		[ $n -lt 100 ] && kill -0 $api_pid 2>/dev/null || return 1
		sleep 0.05
	done
}

# api_wait: wait (at most 10 s) for the background flint; its status in $got.
api_wait() {
	wait_gone $api_pid 10
	kill -KILL $api_pid 2>/dev/null
	got=0
	wait $api_pid || got=$?
}

# expect_api CODE REGEX WHAT: the last answer (why is set on a mismatch).
expect_api() {
	[ -n "$why" ] && return
	if [ "$code" != "$1" ]; then
		why="$3: HTTP $code, expected $1: $(cat "$OUT/api.resp")"
	elif [ -n "$2" ] && ! grep -Eq -- "$2" "$OUT/api.resp"; then
		why="$3: the answer lacks /$2/: $(cat "$OUT/api.resp")"
	fi
}

if ! command -v curl >/dev/null; then
	echo "SKIP the API tests: no curl (apt-get install curl)"
else
	TINY=$OUT/tiny-EXIT_STATUS.elf

	# A command-line machine with the API beside it: it runs and ends as
	# without, and the socket is removed at the end.
	check api-beside-cli 42 "hello from the tiny guest" "guest boot time" -- \
		--kernel "$TINY" --api-sock "$OUT/beside.sock"
	[ -e "$OUT/beside.sock" ] && report api-socket-removed "the socket was left" /dev/null ||
		report api-socket-removed "" /dev/null

	# Getting started: configure, InstanceStart, the guest runs and flint
	# ends with its status; the wrong calls get 400 and change nothing.
	why=""
	api_start getting-started || why="the API socket did not answer"
	api_req GET /
	expect_api 200 '"state":"Not started"' "GET / before the start"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 'kernel configuration' "InstanceStart without a boot source"
	# A file that does not open is the PUT's 400, as in Firecracker...
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/no-such-kernel\"}"
	expect_api 400 "The kernel file cannot be opened: $OUT/no-such-kernel: No such file" \
		"PUT /boot-source (a missing kernel)"
	api_req PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$OUT/no-such-disk\",
		\"is_root_device\": true, \"is_read_only\": true}"
	expect_api 400 "The drive's file cannot be opened: $OUT/no-such-disk: No such file" \
		"PUT /drives (a missing image)"
	api_req PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "flintnotap0"}'
	expect_api 400 "Could not create the network device: tap flintnotap0: no such device" \
		"PUT /network-interfaces (a missing tap)"
	# ...and one gone since is InstanceStart's.
	cp "$TINY" "$OUT/gone-kernel"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/gone-kernel\"}"
	expect_api 204 "" "PUT /boot-source (a kernel removed after)"
	rm -f "$OUT/gone-kernel"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 "gone-kernel: No such file" "InstanceStart names the kernel gone since its PUT"
	api_req GET /
	expect_api 200 '"state":"Not started"' "still not started after the failed start"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$TINY\"}"
	expect_api 204 "" "PUT /boot-source"
	api_req PUT /machine-config '{"vcpu_count": 0, "mem_size_mib": 64}'
	expect_api 400 'vcpu_count' "vcpu_count 0"
	api_req PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64, "turbo": 1}'
	expect_api 400 'turbo' "an unknown field"
	api_req PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64}'
	expect_api 204 "" "PUT /machine-config"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 204 "" "InstanceStart"
	api_wait
	[ -n "$why" ] || [ "$got" = 42 ] || why="status $got, expected the guest's 42"
	[ -n "$why" ] || grep -q "hello from the tiny guest" "$OUT/getting-started.out" ||
		why="the guest's output is missing"
	report api-getting-started "$why" "$OUT/getting-started.err"

	# A client still connected when the guest ends: the teardown's stop of
	# libmicrohttpd shuts that connection down (shutdown(2), on the main
	# thread) and flint exits with the guest's status, not SIGSYS's 159.
	why=""
	api_start open-client || why="the API socket did not answer"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$TINY\"}"
	expect_api 204 "" "PUT /boot-source"
	if command -v python3 >/dev/null; then
		python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
s.recv(4096)
time.sleep(5)' "$SOCK" &
		client=$!
		sleep 0.3
		api_req PUT /actions '{"action_type": "InstanceStart"}'
		expect_api 204 "" "InstanceStart"
		api_wait
		kill $client 2>/dev/null
		wait $client 2>/dev/null
		[ -n "$why" ] || [ "$got" = 42 ] || why="status $got with a client connected, expected the guest's 42"
		report api-client-connected-at-the-end "$why" "$OUT/open-client.err"
	else
		echo "SKIP api-client-connected-at-the-end: no python3"
		kill $api_pid 2>/dev/null
	fi

	# Pause and resume through PATCH /vm, a counting guest; metrics flushed
	# on FlushMetrics; SIGTERM ends flint with 143.
	why=""
	api_start pause || why="the API socket did not answer"
	api_req PUT /metrics "{\"metrics_path\": \"$OUT/pause.metrics\"}"
	expect_api 204 "" "PUT /metrics"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/tiny-COUNT.elf\"}"
	expect_api 204 "" "PUT /boot-source"
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 400 'before starting' "PATCH /vm before the start"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 204 "" "InstanceStart"
	sleep 0.3
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused"
	api_req GET /
	expect_api 200 '"state":"Paused"' "GET / while paused"
	# The console flushes what the guest printed before the pause on its
	# next 100 ms tick: let that land before counting.
	sleep 0.3
	t1=$(grep -c tick "$OUT/pause.out")
	sleep 0.5
	t2=$(grep -c tick "$OUT/pause.out")
	[ -n "$why" ] || [ "$t1" = "$t2" ] || why="ticks went on while paused ($t1, then $t2)"
	api_req PATCH /vm '{"state": "Resumed"}'
	expect_api 204 "" "PATCH /vm Resumed"
	sleep 0.3
	t3=$(grep -c tick "$OUT/pause.out")
	[ -n "$why" ] || [ "$t3" -gt "$t2" ] || why="no ticks after the resume ($t2, then $t3)"
	api_req PUT /actions '{"action_type": "FlushMetrics"}'
	expect_api 204 "" "FlushMetrics"
	[ -n "$why" ] || grep -q '"patch_api_requests":{[^}]*"vm_count":[1-9]' "$OUT/pause.metrics" ||
		why="the metrics line lacks the PATCH /vm count: $(cat "$OUT/pause.metrics")"
	[ -n "$why" ] || grep -q '"latencies_us":{[^}]*"pause_vm"' "$OUT/pause.metrics" ||
		why="the metrics line lacks the pause latency"
	kill -TERM $api_pid
	api_wait
	[ -n "$why" ] || [ "$got" = 143 ] || why="status $got after SIGTERM, expected 143"
	# An orderly stop (the signal reached the main thread's signalfd, not
	# the API thread): a last metrics line at exit, the socket removed.
	[ -n "$why" ] || [ "$(wc -l <"$OUT/pause.metrics")" -ge 2 ] ||
		why="no metrics line at exit after SIGTERM (flint died of the signal?)"
	[ -n "$why" ] || [ ! -e "$SOCK" ] || why="the API socket was left after SIGTERM"
	report api-pause-metrics "$why" "$OUT/pause.err"

	# A console whose reader stopped reading (a log collector's full pipe)
	# stalls neither the guest nor the API: a vCPU never waits in write().
	# A guest printing as fast as it can fills the pipe, then the console's
	# backlog; what is beyond both is lost and counted in the metrics'
	# uart section (missed_write_count), and the pause is answered. Before,
	# the vCPU blocked in write() and the main thread on the console's lock.
	why=""
	rm -f "$OUT/stall.fifo" "$OUT/stall.metrics"
	mkfifo "$OUT/stall.fifo"
	sleep 60 <"$OUT/stall.fifo" & # holds the pipe's read end, never reads
	reader=$!
	api_out=$OUT/stall.fifo
	api_start stall --kernel "$OUT/tiny-FLOOD.elf" --metrics-path "$OUT/stall.metrics" ||
		why="the API socket did not answer"
	api_out=
	n=0
	until [ -n "$why" ] ||
		grep -q '"uart":{[^}]*"missed_write_count":[1-9]' "$OUT/stall.metrics" 2>/dev/null; do
		n=$((n + 1))
		[ $n -le 100 ] || why="no console output lost after 20 s: $(tail -n 1 "$OUT/stall.metrics")"
		sleep 0.2
		api_req PUT /actions '{"action_type": "FlushMetrics"}'
		expect_api 204 "" "FlushMetrics while the console's reader stalls"
	done
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused while the console's reader stalls"
	api_req GET /
	expect_api 200 '"state":"Paused"' "GET / while paused"
	kill -TERM $api_pid
	api_wait
	[ -n "$why" ] || [ "$got" = 143 ] || why="status $got after SIGTERM, expected 143"
	kill $reader 2>/dev/null
	wait $reader 2>/dev/null
	report api-console-reader-stalled "$why" "$OUT/stall.err"

	# The same pipe taking stderr too (2>&1, as under docker or journald):
	# log lines its reader does not take are dropped as well, so flint's
	# "stopped by signal" line cannot hold it either. Before, with the
	# pipe full, it waited in write() for ever.
	why=""
	sleep 60 <"$OUT/stall.fifo" &
	reader=$!
	"$FLINT" --kernel "$OUT/tiny-FLOOD.elf" >"$OUT/stall.fifo" 2>&1 </dev/null &
	spid=$!
	sleep 2 # the pipe fills in well under a second
	kill -TERM $spid
	wait_gone $spid 10 || why="flint did not end within 10 s of SIGTERM"
	kill -KILL $spid 2>/dev/null
	got=0
	wait $spid || got=$?
	[ -n "$why" ] || [ "$got" = 143 ] || why="status $got after SIGTERM, expected 143"
	kill $reader 2>/dev/null
	wait $reader 2>/dev/null
	report api-console-and-stderr-stalled "$why" /dev/null

	# stdout and stderr a socket (a service's under systemd, journald's
	# stream): the console and the log lines go out with
	# send(MSG_DONTWAIT), which every thread's seccomp table allows; the
	# guest's line, the vCPU's boot-time line and the main thread's
	# --stats arrive, and the status is the guest's.
	why=""
	if command -v python3 >/dev/null; then
		got=0
		python3 - "$FLINT" "$OUT/tiny-EXIT_STATUS.elf" >"$OUT/socket.out" 2>&1 <<'EOPY' || got=$?
import socket, subprocess, sys
a, b = socket.socketpair()
p = subprocess.Popen([sys.argv[1], "--kernel", sys.argv[2], "--stats"],
                     stdin=subprocess.DEVNULL, stdout=b, stderr=b)
b.close()
got = b""
while True:
    d = a.recv(65536)
    if not d:
        break
    got += d
sys.stdout.write(got.decode(errors="replace"))
sys.exit(p.wait())
EOPY
		[ "$got" = 42 ] || why="status $got, expected the guest's 42"
		for want in "hello from the tiny guest" "guest boot time" "KVM exits"; do
			[ -n "$why" ] || grep -q "$want" "$OUT/socket.out" || why="the socket lacks '$want'"
		done
		report api-output-to-a-socket "$why" "$OUT/socket.out"
	else
		echo "SKIP api-output-to-a-socket: no python3"
	fi

	# SIGTERM while waiting for InstanceStart: an orderly stop too; and
	# --metrics-path counts as the metrics configuration (PUT /metrics
	# would be a second one). FlushMetrics waits for the start, as in
	# Firecracker.
	why=""
	api_start waiting --metrics-path "$OUT/waiting.metrics" || why="the API socket did not answer"
	api_req PUT /actions '{"action_type": "FlushMetrics"}'
	expect_api 400 "not supported before starting" "FlushMetrics before the start"
	api_req PUT /metrics "{\"metrics_path\": \"$OUT/other.metrics\"}"
	expect_api 400 "Reinitialization" "PUT /metrics after --metrics-path"
	kill -TERM $api_pid
	api_wait
	[ -n "$why" ] || [ "$got" = 143 ] || why="status $got after SIGTERM, expected 143"
	[ -n "$why" ] || grep -q 'stopped by signal 15 before the microVM started' "$OUT/waiting.err" ||
		why="no 'stopped by signal' line: flint died of the signal"
	[ -n "$why" ] || [ ! -e "$SOCK" ] || why="the API socket was left after SIGTERM"
	report api-sigterm-waiting "$why" "$OUT/waiting.err"

	# Firecracker's jailer's timing arguments: the metrics' api_server
	# section counts from the jailer's start (2 s ago here) and adds the
	# parent's CPU time. A start in the future is refused.
	why=""
	start=$(python3 -c 'import time; print(int(time.monotonic() * 1e6) - 2000000)')
	rm -f "$OUT/times.metrics"
	api_start jailtimes --kernel "$OUT/tiny-COUNT.elf" --metrics-path "$OUT/times.metrics" \
		--start-time-us "$start" --start-time-cpu-us 0 --parent-cpu-time-us 5000 --boot-timer ||
		why="the API socket did not answer"
	api_req PUT /actions '{"action_type": "FlushMetrics"}'
	expect_api 204 "" "FlushMetrics"
	kill -TERM $api_pid
	api_wait
	line=$(tail -n 1 "$OUT/times.metrics")
	us=$(echo "$line" | sed -n 's/.*"process_startup_time_us":\([0-9]*\).*/\1/p')
	cpu=$(echo "$line" | sed -n 's/.*"process_startup_time_cpu_us":\([0-9]*\).*/\1/p')
	[ -n "$why" ] || { [ "${us:-0}" -ge 2000000 ] && [ "$us" -lt 60000000 ]; } ||
		why="process_startup_time_us '$us' for a start 2 s before: $line"
	[ -n "$why" ] || [ "${cpu:-0}" -gt 5000 ] ||
		why="process_startup_time_cpu_us '$cpu', not flint's own CPU time plus the parent's 5000: $line"
	report api-jailer-start-times "$why" "$OUT/jailtimes.err"
	# --http-api-max-payload-size: the cap on a body, as Firecracker's.
	why=""
	api_start smallcap --http-api-max-payload-size 20 || why="the API socket did not answer"
	api_req PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 400 "larger than the limit of 20 allowed" "a 37-byte body over a cap of 20"
	api_req PUT /machine-config '{"vcpu_count": 1}'
	expect_api 400 "mem_size_mib" "a 17-byte body under it"
	kill -TERM $api_pid
	api_wait
	report api-http-max-payload "$why" "$OUT/smallcap.err"
	check api-start-time-future 125 "" "later than now" -- \
		--start-time-us 99999999999999 --api-sock "$OUT/future.sock"

	# Metrics from devices: a section per drive and Firecracker's
	# aggregate "block" over all of them.
	why=""
	truncate -s 1M "$OUT/m-disk0" "$OUT/m-disk1"
	api_start devmetrics --kernel "$OUT/tiny-COUNT.elf" --metrics-path "$OUT/dev.metrics" \
		--drive "path=$OUT/m-disk0,id=first" --drive "path=$OUT/m-disk1" ||
		why="the API socket did not answer"
	api_req PUT /actions '{"action_type": "FlushMetrics"}'
	expect_api 204 "" "FlushMetrics"
	for sec in block_first block_drive1 block vcpu latencies_us put_api_requests; do
		[ -n "$why" ] || grep -q "\"$sec\":{" "$OUT/dev.metrics" ||
			why="no $sec section in $(cat "$OUT/dev.metrics")"
	done
	kill -TERM $api_pid
	api_wait
	report api-device-metrics "$why" "$OUT/devmetrics.err"

	# A config file, with and without the API.
	printf '{"boot-source": {"kernel_image_path": "%s"}, "drives": [],
	  "machine-config": {"vcpu_count": 2, "mem_size_mib": 64}}\n' "$TINY" >"$OUT/vm.json"
	check api-config-file-no-api 42 "hello from the tiny guest" "guest boot time" -- \
		--config-file "$OUT/vm.json" --no-api
	# A pmem file a host program truncates under the running guest: flint
	# stops the VM at once with 125, naming the device and both sizes,
	# where the guest's next touch of what was cut off would have waited in
	# KVM for ever (seen in the rig: the guest silent, flint saying nothing).
	why=""
	dd if=/dev/zero of="$OUT/shrink.pmem" bs=1M count=2 2>/dev/null
	printf '{"boot-source": {"kernel_image_path": "%s"}, "drives": [],
	  "pmem": [{"id": "data", "path_on_host": "%s"}]}\n' \
		"$OUT/tiny-COUNT.elf" "$OUT/shrink.pmem" >"$OUT/shrink.json"
	"$FLINT" --config-file "$OUT/shrink.json" --no-api >/dev/null 2>"$OUT/shrink.err" </dev/null &
	spid=$!
	n=0
	until grep -q "guest boot time" "$OUT/shrink.err" || [ $n -ge 100 ]; do
		n=$((n + 1))
		sleep 0.05
	done
	truncate -s 1M "$OUT/shrink.pmem"
	wait_gone $spid 10
	kill -KILL $spid 2>/dev/null
	got=0
	wait $spid || got=$?
	[ "$got" = 125 ] || why="status $got after the pmem file shrank, expected 125"
	[ -n "$why" ] || grep -q "pmem device data: its file shrank from 2097152 to 1048576 bytes" \
		"$OUT/shrink.err" || why="no message naming the pmem device and both sizes"
	report api-pmem-file-shrank "$why" "$OUT/shrink.err"
	# --module: the logger keeps only the lines of source files under it.
	check api-module-kept 42 "hello from the tiny guest" "guest boot time" -- \
		--config-file "$OUT/vm.json" --no-api --module runner/legacy
	why=""
	timeout 20 "$FLINT" --config-file "$OUT/vm.json" --no-api --module runner/virtio \
		>/dev/null 2>"$OUT/module.err" </dev/null
	grep -q "guest boot time" "$OUT/module.err" &&
		why="runner/legacy's boot-time line logged under --module runner/virtio"
	report api-module-filtered "$why" "$OUT/module.err"
	printf '{"boot-source": {"kernel_image_path": "%s"}, "drives": [], "balloon": {}}\n' \
		"$TINY" >"$OUT/bad.json"
	check api-config-file-bad 125 "" "balloon" -- --config-file "$OUT/bad.json" --no-api
	# boot_args a config file gives are checked at its load, as Firecracker
	# does: printable ASCII.
	printf '{"boot-source": {"kernel_image_path": "%s", "boot_args": "quiet\\tx"},
	  "drives": []}\n' "$TINY" >"$OUT/tab.json"
	check api-config-file-boot-args 125 "" "boot-source: boot_args: .*byte 0x09" -- \
		--config-file "$OUT/tab.json" --no-api
	# Metrics are configured once, as in Firecracker: the file's after
	# --metrics-path is refused, naming both.
	printf '{"boot-source": {"kernel_image_path": "%s"}, "drives": [],
	  "metrics": {"metrics_path": "%s"}}\n' "$TINY" "$OUT/file.metrics" >"$OUT/metrics.json"
	check api-metrics-twice 125 "" "metrics are configured once" -- \
		--config-file "$OUT/metrics.json" --no-api --metrics-path "$OUT/cli.metrics"
fi
