# Sourced by run.sh after api.sh (its api_* helpers): snapshots with the
# counting tiny guest. It is paused, saved with PUT /snapshot/create and
# killed; a new flint restores it (--restore, and PUT /snapshot/load) and
# its count goes on from where it was. A diff snapshot laid over the full
# one restores the later count; a corrupt or truncated state file, a
# missing memory file and the API's phase rules are refused with messages.
# Then reset in place (reset.sh).

# last_tick FILE: the last "tick N" count in FILE, in decimal (0: none), of
# its complete lines (the guest may have been stopped half-way through one).
last_tick() {
	if [ -n "$(tail -c1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi >"$1.complete"
	n=$(grep -a -o 'tick [0-9a-f]*' "$1.complete" | tail -1 | cut -d' ' -f2)
	echo $((0x${n:-0}))
}

# first_tick FILE: the first whole one (a restored guest may first finish
# the line it was saved in the middle of).
first_tick() {
	n=$(grep -a -o 'tick [0-9a-f]*' "$1" 2>/dev/null | head -1 | cut -d' ' -f2)
	echo $((0x${n:-0}))
}

# restored NAME ARGS...: flint ARGS for a second, then killed (with
# $SIG, KILL by default); its output in $OUT/NAME.out and .err.
restored() {
	name=$1
	shift
	"$FLINT" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null &
	rpid=$!
	sleep 1
	kill -"${SIG:-KILL}" $rpid 2>/dev/null
	wait $rpid 2>/dev/null
}

if command -v curl >/dev/null; then
	S=$OUT/snap
	rm -rf "$S"
	mkdir -p "$S"
	why=""
	api_start snap-src || why="the API socket did not answer"
	api_req PUT /snapshot/load "{\"snapshot_path\": \"$S/none\",
	  \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$S/none\"}}"
	expect_api 400 'none' "PUT /snapshot/load of a missing file"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/tiny-COUNT.elf\"}"
	expect_api 204 "" "PUT /boot-source"
	api_req PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": true}'
	expect_api 204 "" "PUT /machine-config"
	api_req PUT /snapshot/load "{\"snapshot_path\": \"$S/x\", \"mem_file_path\": \"$S/x\"}"
	expect_api 400 'not allowed after configuring boot-specific resources' \
		"PUT /snapshot/load after PUT /machine-config"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/x\", \"mem_file_path\": \"$S/x\"}"
	expect_api 400 'not supported before starting' "PUT /snapshot/create before the start"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 204 "" "InstanceStart"
	sleep 0.3
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/full.state\", \"mem_file_path\": \"$S/full.mem\"}"
	expect_api 400 'must be paused' "PUT /snapshot/create while running"
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/full.state\", \"mem_file_path\": \"$S/full.mem\", \"snapshot_type\": \"Full\"}"
	expect_api 204 "" "PUT /snapshot/create Full"
	sleep 0.3 # the console's last partial line
	t_full=$(last_tick "$OUT/snap-src.out")
	# Resume, count on, and take a diff of what changed since.
	api_req PATCH /vm '{"state": "Resumed"}'
	expect_api 204 "" "PATCH /vm Resumed"
	sleep 0.5
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused again"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/diff.state\", \"mem_file_path\": \"$S/diff.mem\", \"snapshot_type\": \"Diff\"}"
	expect_api 204 "" "PUT /snapshot/create Diff"
	sleep 0.3
	t_diff=$(last_tick "$OUT/snap-src.out")
	kill -KILL $api_pid
	api_wait
	[ -n "$why" ] || [ "$t_full" -gt 0 ] || why="the guest did not count before the snapshot"
	[ -n "$why" ] || [ "$t_diff" -gt "$t_full" ] ||
		why="no ticks between the snapshots ($t_full, then $t_diff)"
	report snapshot-create "$why" "$OUT/snap-src.err"

	# The full snapshot in a new process: the count goes on from there.
	restored snap-restore --restore "$S/full.state" --mem-file "$S/full.mem"
	t=$(first_tick "$OUT/snap-restore.out")
	why=""
	[ "$t" -gt "$t_full" ] && [ "$t" -le $((t_full + 2)) ] ||
		why="the restored guest counted from $t, the snapshot was at $t_full"
	report snapshot-restore-cli "$why" "$OUT/snap-restore.err"

	# The diff over the full one: the later count.
	restored snap-diff --restore "$S/diff.state" --mem-file "$S/full.mem" --mem-diff "$S/diff.mem"
	t=$(first_tick "$OUT/snap-diff.out")
	why=""
	[ "$t" -gt "$t_diff" ] && [ "$t" -le $((t_diff + 2)) ] ||
		why="the guest restored from the diff counted from $t, the diff was at $t_diff"
	report snapshot-restore-diff "$why" "$OUT/snap-diff.err"

	# The Uffd backend: flint's own page-fault handler serves the memory
	# file (Firecracker's protocol).
	why=""
	rm -f "$S/uffd.sock"
	"$BUILD_DIR/flint-uffd" "$S/uffd.sock" "$S/full.mem" >"$OUT/uffd.out" 2>"$OUT/uffd.err" &
	upid=$!
	n=0
	while [ ! -S "$S/uffd.sock" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
	restored snap-uffd --restore "$S/full.state" --uffd-sock "$S/uffd.sock"
	t=$(first_tick "$OUT/snap-uffd.out")
	[ "$t" -gt "$t_full" ] && [ "$t" -le $((t_full + 2)) ] ||
		why="restored through flint-uffd, the guest counted from $t, the snapshot was at $t_full"
	# The handler ends once the VM is gone.
	wait_gone $upid 5 || { kill $upid; why=${why:-"flint-uffd outlived its VM"}; }
	wait $upid 2>/dev/null
	report snapshot-restore-uffd "$why" "$OUT/snap-uffd.err"
	check snapshot-uffd-no-handler 125 "" "Uffd backend $S/none.sock" -- \
		--restore "$S/full.state" --uffd-sock "$S/none.sock"

	# The handler killed while its VM runs: a guest that needs no page it
	# has not served runs on, and a Full snapshot, which would read every
	# page, is refused; a page it has not served stops flint with 125.
	why=""
	api_start snap-walk-src || why="the API socket did not answer"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/tiny-WALK.elf\"}"
	expect_api 204 "" "PUT /boot-source (WALK)"
	api_req PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 "" "PUT /machine-config (WALK)"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 204 "" "InstanceStart (WALK)"
	sleep 0.3
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused (WALK)"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/walk.state\", \"mem_file_path\": \"$S/walk.mem\"}"
	expect_api 204 "" "PUT /snapshot/create (WALK)"
	kill -KILL $api_pid 2>/dev/null
	wait $api_pid 2>/dev/null
	rm -f "$S/uffd-walk.sock" "$S/walk.in" "$S/walk.sock"
	"$BUILD_DIR/flint-uffd" "$S/uffd-walk.sock" "$S/walk.mem" >"$OUT/uffd-walk.out" \
		2>"$OUT/uffd-walk.err" &
	upid=$!
	n=0
	while [ ! -S "$S/uffd-walk.sock" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
	mkfifo "$S/walk.in"
	"$FLINT" --api-sock "$S/walk.sock" --restore "$S/walk.state" \
		--uffd-sock "$S/uffd-walk.sock" <"$S/walk.in" >"$OUT/snap-walk.out" \
		2>"$OUT/snap-walk.err" &
	fpid=$!
	exec 8>"$S/walk.in"
	SOCK=$S/walk.sock
	n=0
	until [ -n "$why" ] || { [ -S "$SOCK" ] && api_req GET / && [ "$code" = 200 ]; }; do
		n=$((n + 1))
		[ $n -lt 100 ] && kill -0 $fpid 2>/dev/null || why="the restored VM's API did not answer"
		sleep 0.05
	done
	# feed BYTE: one byte to the guest's UART (not into a FIFO nobody
	# reads any more, which would end this script with SIGPIPE).
	feed() {
		kill -0 $fpid 2>/dev/null && (trap '' PIPE && printf "$1" >&8) 2>/dev/null ||
			why=${why:-"flint ended: $(tail -n 2 "$OUT/snap-walk.err")"}
	}
	# walked N: wait (5 s at most) for the guest's Nth "walked".
	walked() {
		n=0
		while [ -z "$why" ] && [ "$(grep -c walked "$OUT/snap-walk.out")" != "$1" ]; do
			n=$((n + 1))
			[ $n -lt 100 ] || why="the restored guest did not take byte $1"
			sleep 0.05
		done
	}
	feed a # one page touched with the handler there
	walked 1
	kill -KILL $upid 2>/dev/null
	wait $upid 2>/dev/null
	sleep 0.5
	[ -n "$why" ] || kill -0 $fpid 2>/dev/null ||
		why="flint ended when the handler went, with no page needed"
	grep -q 'the Uffd handler closed its connection' "$OUT/snap-walk.err" ||
		why=${why:-"flint did not say that the handler hung up"}
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "PATCH /vm Paused, the handler gone"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/w2.state\", \"mem_file_path\": \"$S/w2.mem\"}"
	expect_api 400 "Uffd handler has hung up" "a snapshot, the handler gone"
	api_req PATCH /vm '{"state": "Resumed"}'
	expect_api 204 "" "PATCH /vm Resumed, the handler gone"
	feed a # the page it took before: no fault
	walked 2
	# A page the handler never served (WALK writes 32 MiB + 'b' pages):
	# read unanswered for 1 s, it stops the VM (a vCPU still in its fault
	# 1 s later is left to flint's exit).
	feed b
	n=0
	while kill -0 $fpid 2>/dev/null && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
	kill -KILL $fpid 2>/dev/null
	wait $fpid 2>/dev/null
	st=$?
	[ -n "$why" ] || [ $st = 125 ] ||
		why="flint's status was $st, not 125, 10 s after the guest touched a page nobody serves"
	grep -q 'has not served (guest-physical address 0x2062000)' "$OUT/snap-walk.err" ||
		why=${why:-"flint did not name the page nobody serves, 0x2062000"}
	[ "$(grep -c walked "$OUT/snap-walk.out")" = 2 ] ||
		why=${why:-"the guest walked on past the page nobody serves"}
	exec 8>&-
	report snapshot-uffd-handler-gone "$why" "$OUT/snap-walk.err"

	# A loading set recorded by one restore (written when flint stops:
	# SIGTERM) and prefetched by the next.
	rm -f "$S/ws"
	SIG=TERM restored snap-ws-record --restore "$S/full.state" --mem-file "$S/full.mem" \
		--record-workset "$S/ws"
	why=""
	[ -s "$S/ws" ] || why="no loading set written"
	report snapshot-workset-record "$why" "$OUT/snap-ws-record.err"
	restored snap-ws --restore "$S/full.state" --mem-file "$S/full.mem" --workset "$S/ws" \
		--level Debug
	t=$(first_tick "$OUT/snap-ws.out")
	why=""
	grep -q "loading set $S/ws: [1-9][0-9]* pages" "$OUT/snap-ws.err" ||
		why="no pages prefetched from the loading set"
	[ -n "$why" ] || { [ "$t" -gt "$t_full" ] && [ "$t" -le $((t_full + 2)) ]; } ||
		why="restored with the loading set, the guest counted from $t, the snapshot was at $t_full"
	report snapshot-workset-prefetch "$why" "$OUT/snap-ws.err"
	printf 'junk' >"$S/bad.ws"
	check snapshot-workset-bad 125 "" "loading set $S/bad.ws" -- \
		--restore "$S/full.state" --mem-file "$S/full.mem" --workset "$S/bad.ws"

	# PUT /snapshot/load in a fresh instance, paused until PATCH /vm.
	why=""
	api_start snap-load || why="the API socket did not answer"
	api_req PUT /snapshot/load "{\"snapshot_path\": \"$S/full.state\",
	  \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$S/full.mem\"}}"
	expect_api 204 "" "PUT /snapshot/load"
	api_req GET /
	expect_api 200 '"state":"Paused"' "GET / after a load without resume_vm"
	api_req GET /vm/config
	expect_api 200 '"mem_size_mib":64' "GET /vm/config after the load"
	sleep 0.3
	[ -n "$why" ] || [ "$(last_tick "$OUT/snap-load.out")" = 0 ] ||
		why="the loaded guest ran before PATCH /vm Resumed"
	api_req PATCH /vm '{"state": "Resumed"}'
	expect_api 204 "" "PATCH /vm Resumed after the load"
	sleep 0.5
	t=$(first_tick "$OUT/snap-load.out")
	[ -n "$why" ] || [ "$t" -gt "$t_full" ] ||
		why="the loaded guest counted from $t, the snapshot was at $t_full"
	api_req PUT /snapshot/load "{\"snapshot_path\": \"$S/full.state\", \"mem_file_path\": \"$S/full.mem\"}"
	expect_api 400 'not supported after starting' "a second PUT /snapshot/load"
	kill -KILL $api_pid
	api_wait
	report snapshot-load-api "$why" "$OUT/snap-load.err"

	# Refusals, each naming what is wrong; nothing runs.
	cp "$S/full.state" "$S/corrupt.state"
	printf 'X' | dd of="$S/corrupt.state" bs=1 seek=100 conv=notrunc 2>/dev/null
	check snapshot-corrupt 125 "" "corrupt" -- --restore "$S/corrupt.state" --mem-file "$S/full.mem"
	head -c 60 "$S/full.state" >"$S/short.state"
	check snapshot-truncated 125 "" "truncated" -- --restore "$S/short.state" --mem-file "$S/full.mem"
	check snapshot-not-flint 125 "" "not a flint snapshot" -- --restore "$S/full.mem" --mem-file "$S/full.mem"
	# Firecracker's --snapshot-version and --describe-snapshot: the format
	# flint writes, and the one a state file is in (a corrupt one too).
	check snapshot-version 0 '^v1\.0\.0$' "" -- --snapshot-version
	check describe-snapshot 0 '^v1\.0\.0$' "" -- --describe-snapshot "$S/corrupt.state"
	check describe-not-flint 125 "" "snapshot $S/full.mem: not a flint snapshot" -- \
		--describe-snapshot "$S/full.mem"
	check snapshot-no-mem-file 125 "" "$S/nothing: No such file" -- \
		--restore "$S/full.state" --mem-file "$S/nothing"
	head -c 4096 "$S/full.mem" >"$S/short.mem"
	check snapshot-short-mem-file 125 "" "memory file" -- \
		--restore "$S/full.state" --mem-file "$S/short.mem"

	# Reset in place (--control-fd), with the snapshots above.
	. "$(dirname "$0")/reset.sh"
	# --drive-override, with reset.sh's snapshot of a guest with a drive.
	. "$(dirname "$0")/drive-override.sh"
fi
