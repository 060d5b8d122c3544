# Sourced by snapshot.sh once $S/full.state (the counting tiny guest) and
# its diff exist: reset in place (flint --restore ... --control-fd N). A
# restored guest counts on; each "reset" on the control socket takes it back
# to the snapshot in the same process, so its count starts again from the
# snapshot's (the first tick after it appears once more per reset), under
# the seccomp filters, and is answered "ok <us>". A VM whose memory cannot
# be read from the file again (the Uffd backend, a diff laid over it) is
# refused with "error ..." and counts on untouched. The socket's end stops
# the VM: exit 0. With virtio devices too; a writable drive is refused.
# tests/tools/ctlpair makes the socketpair for the shell.

cc -std=gnu11 -O2 -Wall -Werror -o "$OUT/ctlpair" "$(dirname "$0")/../tools/ctlpair.c" || exit 1

# ctl_run NAME RESETS FLINT-ARGS...: flint FLINT-ARGS --control-fd 3 with
# RESETS "reset" lines 0.3 s apart after 0.5 s (and $ctl_before, a shell
# command, if set), each waited for (its answer in $OUT/NAME.ans, the
# guest's output and flint's stderr in $OUT/NAME.out); then the socket
# closed. $ctl_status: flint's exit status.
ctl_run() {
	name=$1 n=$2
	shift 2
	rm -f "$OUT/$name.fifo"
	mkfifo "$OUT/$name.fifo"
	timeout 30 "$OUT/ctlpair" -- "$FLINT" "$@" --control-fd 3 <"$OUT/$name.fifo" \
		>"$OUT/$name.ans" 2>"$OUT/$name.out" &
	cpid=$!
	exec 7>"$OUT/$name.fifo"
	sleep 0.5
	[ -z "${ctl_before:-}" ] || eval "$ctl_before"
	i=0
	while [ $i -lt "$n" ]; do
		echo reset >&7
		k=0
		while [ "$(wc -l <"$OUT/$name.ans")" -le $i ] && [ $k -lt 100 ]; do
			sleep 0.05
			k=$((k + 1))
		done
		sleep 0.3
		i=$((i + 1))
	done
	exec 7>&-
	wait $cpid
	ctl_status=$?
}

# whole_ticks FILE: the "tick N" the guest printed whole: a reset cuts the
# line it was printing ("tick 1" of "tick 10", then the snapshot's count
# again), which would read as a count below the snapshot's.
whole_ticks() {
	grep -a -o 'tick [0-9a-f]*$' "$1"
}

# first_hex FILE: the first whole tick's count as the guest printed it.
first_hex() {
	whole_ticks "$1" | head -1 | cut -d' ' -f2
}

# times_counted FILE HEX: how often the guest printed tick HEX.
times_counted() {
	whole_ticks "$1" | grep -c -x "tick $2"
}

# Three resets: each answered ok, the count back to the snapshot's each
# time, never below it; the end of the socket stops the VM (exit 0).
ctl_run reset-in-place 3 --restore "$S/full.state" --mem-file "$S/full.mem"
why=""
first=$(first_hex "$OUT/reset-in-place.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || [ "$(grep -c '^ok [0-9][0-9]*$' "$OUT/reset-in-place.ans")" = 3 ] ||
	why="answers: $(tr '\n' '|' <"$OUT/reset-in-place.ans")"
[ -n "$why" ] || [ $((0x${first:-0})) -gt "$t_full" ] ||
	why="the restored guest counted from ${first:-nothing}, the snapshot was at $t_full"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-in-place.out" "$first")" = 4 ] ||
	why="tick $first counted $(times_counted "$OUT/reset-in-place.out" "$first") times, not 4 (once, then after each of 3 resets)"
for h in $(whole_ticks "$OUT/reset-in-place.out" | cut -d' ' -f2); do
	[ -n "$why" ] || [ $((0x$h)) -ge $((0x${first:-0})) ] ||
		why="the guest counted $h, below the snapshot's $first"
done
report reset-in-place "$why" "$OUT/reset-in-place.out"
echo "    reset in place (tiny guest): $(sed 's/^ok //' "$OUT/reset-in-place.ans" | tr '\n' ' ')us"

# The Uffd backend: refused, the VM counts on as it was.
why=""
rm -f "$S/uffd-r.sock"
"$BUILD_DIR/flint-uffd" "$S/uffd-r.sock" "$S/full.mem" >"$OUT/uffd-r.out" 2>"$OUT/uffd-r.err" &
upid=$!
n=0
while [ ! -S "$S/uffd-r.sock" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
ctl_run reset-uffd 1 --restore "$S/full.state" --uffd-sock "$S/uffd-r.sock"
wait $upid 2>/dev/null
first=$(first_hex "$OUT/reset-uffd.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || grep -q "^error this VM cannot be reset to its snapshot: its memory is the Uffd backend's" \
	"$OUT/reset-uffd.ans" || why="answer: $(cat "$OUT/reset-uffd.ans")"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-uffd.out" "$first")" = 1 ] ||
	why="the refused VM counted tick $first again"
report reset-refused-uffd "$why" "$OUT/reset-uffd.out"

# A diff laid over the memory file: refused, naming --mem-diff.
why=""
ctl_run reset-diff 1 --restore "$S/diff.state" --mem-file "$S/full.mem" --mem-diff "$S/diff.mem"
first=$(first_hex "$OUT/reset-diff.out")
[ "$ctl_status" = 0 ] || why="status $ctl_status"
[ -n "$why" ] || grep -q '^error .*--mem-diff' "$OUT/reset-diff.ans" ||
	why="answer: $(cat "$OUT/reset-diff.ans")"
[ -n "$why" ] || [ "$(times_counted "$OUT/reset-diff.out" "$first")" = 1 ] ||
	why="the refused VM counted tick $first again"
report reset-refused-diff "$why" "$OUT/reset-diff.out"

check reset-needs-restore 125 "" "--control-fd needs --restore" -- \
	--kernel "$OUT/tiny-COUNT.elf" --control-fd 3

# With virtio devices (a read-only drive, vsock, entropy; the tiny guest
# never drives them): each reset also pauses the event loop, quiesces and
# resets the devices and restores them, under the loop's and the main
# thread's seccomp filters. A writable drive is refused: its image is not
# in the snapshot.
# dev_snapshot NAME DRIVE-JSON: the counting guest with those devices,
# saved to $S/NAME.state and .mem; $why set on a failure.
dev_snapshot() {
	api_start "$1-src" || why="the API socket did not answer"
	api_req PUT /boot-source "{\"kernel_image_path\": \"$OUT/tiny-COUNT.elf\"}"
	expect_api 204 "" "$1: PUT /boot-source"
	api_req PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 "" "$1: PUT /machine-config"
	api_req PUT /drives/d "$2"
	expect_api 204 "" "$1: PUT /drives/d"
	api_req PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$S/$1-v.sock\"}"
	expect_api 204 "" "$1: PUT /vsock"
	api_req PUT /entropy '{}'
	expect_api 204 "" "$1: PUT /entropy"
	api_req PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 204 "" "$1: InstanceStart"
	sleep 0.3
	api_req PATCH /vm '{"state": "Paused"}'
	expect_api 204 "" "$1: PATCH /vm Paused"
	api_req PUT /snapshot/create "{\"snapshot_path\": \"$S/$1.state\", \"mem_file_path\": \"$S/$1.mem\"}"
	expect_api 204 "" "$1: PUT /snapshot/create"
	kill -KILL $api_pid
	api_wait
}

why=""
head -c 1048576 /dev/zero >"$S/drive.img"
dev_snapshot dev "{\"drive_id\": \"d\", \"path_on_host\": \"$S/drive.img\", \"is_root_device\": false, \"is_read_only\": true}"
t_dev=$(last_tick "$OUT/dev-src.out")
report reset-devices-snapshot "$why" "$OUT/dev-src.err"
if [ -z "$why" ]; then
	ctl_run reset-devices 2 --restore "$S/dev.state" --mem-file "$S/dev.mem" \
		--vsock-override "$S/dev-r.sock"
	first=$(first_hex "$OUT/reset-devices.out")
	[ "$ctl_status" = 0 ] || why="status $ctl_status"
	[ -n "$why" ] || [ "$(grep -c '^ok [0-9][0-9]*$' "$OUT/reset-devices.ans")" = 2 ] ||
		why="answers: $(tr '\n' '|' <"$OUT/reset-devices.ans")"
	[ -n "$why" ] || [ $((0x${first:-0})) -gt "$t_dev" ] ||
		why="the restored guest counted from ${first:-nothing}, the snapshot was at $t_dev"
	[ -n "$why" ] || [ "$(times_counted "$OUT/reset-devices.out" "$first")" = 3 ] ||
		why="tick $first counted $(times_counted "$OUT/reset-devices.out" "$first") times, not 3"
	report reset-with-devices "$why" "$OUT/reset-devices.out"

	# A drive given another image (PATCH /drives) since the restore:
	# refused before anything changes, not failed on the drive's check
	# once the guest's memory is gone (which stops the VM).
	why=""
	head -c 1048576 /dev/zero >"$S/drive2.img"
	SOCK=$OUT/reset-patched.sock
	rm -f "$SOCK"
	ctl_before='api_req PATCH /drives/d "{\"drive_id\": \"d\", \"path_on_host\": \"$S/drive2.img\"}"'
	ctl_run reset-patched 1 --restore "$S/dev.state" --mem-file "$S/dev.mem" \
		--vsock-override "$S/dp-r.sock" --api-sock "$SOCK"
	ctl_before=
	first=$(first_hex "$OUT/reset-patched.out")
	[ "$code" = 204 ] || why="PATCH /drives/d: $code $(cat "$OUT/api.resp" 2>/dev/null)"
	[ -n "$why" ] || [ "$ctl_status" = 0 ] || why="status $ctl_status"
	[ -n "$why" ] ||
		grep -q '^error .*drive d had its image changed (PATCH /drives) since the restore' \
			"$OUT/reset-patched.ans" || why="answer: $(cat "$OUT/reset-patched.ans")"
	[ -n "$why" ] || [ "$(times_counted "$OUT/reset-patched.out" "$first")" = 1 ] ||
		why="the refused VM counted tick $first again"
	report reset-refused-patched-drive "$why" "$OUT/reset-patched.out"
fi

why=""
dev_snapshot rw "{\"drive_id\": \"d\", \"path_on_host\": \"$S/drive.img\", \"is_root_device\": false, \"is_read_only\": false}"
if [ -z "$why" ]; then
	ctl_run reset-rw 1 --restore "$S/rw.state" --mem-file "$S/rw.mem" --vsock-override "$S/rw-r.sock"
	first=$(first_hex "$OUT/reset-rw.out")
	[ "$ctl_status" = 0 ] || why="status $ctl_status"
	[ -n "$why" ] || grep -q '^error .*drive d is writable' "$OUT/reset-rw.ans" ||
		why="answer: $(cat "$OUT/reset-rw.ans")"
	[ -n "$why" ] || [ "$(times_counted "$OUT/reset-rw.out" "$first")" = 1 ] ||
		why="the refused VM counted tick $first again"
fi
report reset-refused-writable-drive "$why" "$OUT/reset-rw.out"
