# A counting guest is paused and saved (PUT /snapshot/create, Full), runs
# on, and is saved again as a Diff; flint is SIGKILLed. A new flint restores
# each (--restore): the count goes on from where it was saved, the file it
# wrote in its tmpfs is there, and its wall clock is right although seconds
# passed. A corrupt state file is refused with a message, as are state
# left over in a section and a section nothing restores; a FIFO as the
# memory file, or one path for both files, at once.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# The guest writes a file in its tmpfs, then counts; each line carries the
# file's content and the guest's wall clock.
start_api
boot_source 'echo kept-in-tmpfs >/tmp/marker; i=0; while [ $i -lt 3000 ]; do echo tick $i $(cat /tmp/marker) $(date +%s); i=$((i+1)); sleep 0.2; done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 128, "track_dirty_pages": true}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^tick 5 ' 60 || { kill_bg; fail "the guest did not count"; }

body pause <<EOB
{"state": "Paused"}
EOB
body resume <<EOB
{"state": "Resumed"}
EOB
body full <<EOB
{"snapshot_type": "Full", "snapshot_path": "$T/full.state", "mem_file_path": "$T/full.mem"}
EOB
body diff <<EOB
{"snapshot_type": "Diff", "snapshot_path": "$T/diff.state", "mem_file_path": "$T/diff.mem"}
EOB
# last_tick: the count of the last whole line the guest printed.
last_tick() {
	whole_lines "$T/raw" | grep '^tick [0-9]* kept-in-tmpfs [0-9]*$' | tail -n 1 | cut -d' ' -f2
}

api PUT /snapshot/create full
expect_fault "PUT /snapshot/create while running"
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused"
# A FIFO as the memory file is refused at once, not opened: the open
# would wait for a reader with the VM paused and the API held.
mkfifo "$T/fifo.mem"
body fifo <<EOB
{"snapshot_type": "Full", "snapshot_path": "$T/fifo.state", "mem_file_path": "$T/fifo.mem"}
EOB
api PUT /snapshot/create fifo
expect_fault "PUT /snapshot/create to a FIFO"
expect_resp "fifo.mem: not a regular file" "PUT /snapshot/create to a FIFO"
# One path for both files: the state file's rename would replace the
# memory it was saved with; refused before anything is written.
body same <<EOB
{"snapshot_type": "Full", "snapshot_path": "$T/same", "mem_file_path": "$T/same"}
EOB
api PUT /snapshot/create same
expect_fault "PUT /snapshot/create with one path for both files"
expect_resp "it is the snapshot's state file too" "PUT /snapshot/create with one path for both"
[ -s "$T/same" ] && fail "the refused snapshot wrote $T/same"
api PUT /snapshot/create full
expect_code 204 "PUT /snapshot/create Full"
sleep 0.5 # the console's last line
n1=$(last_tick)
api PATCH /vm resume
expect_code 204 "PATCH /vm Resumed"
wait_for "^tick $((n1 + 10)) " 60 || { kill_bg; fail "no ticks after the first snapshot"; }
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused again"
api PUT /snapshot/create diff
expect_code 204 "PUT /snapshot/create Diff"
sleep 0.5
n2=$(last_tick)
kill_bg
echo "full snapshot at tick $n1, diff at tick $n2"
full_kib=$(du -k "$T/full.mem" | cut -f1)
diff_kib=$(du -k "$T/diff.mem" | cut -f1)
echo "memory files: full $full_kib KiB on disk, diff $diff_kib KiB (guest 131072 KiB)"
[ "$full_kib" -lt 100000 ] || fail "the full memory file takes $full_kib KiB: never-touched pages were written"
[ "$diff_kib" -lt "$full_kib" ] || fail "the diff ($diff_kib KiB) is not smaller than the full file"

# restore NAME ARGS: flint --restore ARGS in the background until the guest
# prints a new tick, then killed; $first is the first count it printed.
restore() {
	name=$1
	shift
	start_bg --restore "$@"
	wait_for '^tick [0-9]+ kept-in-tmpfs [0-9]+$' 60 ||
		{ kill_bg; fail "$name: the restored guest did not count"; }
	sleep 1
	kill_bg
	first=$(grep '^tick [0-9]* kept-in-tmpfs [0-9]*$' "$OUT" | head -n 1 | cut -d' ' -f2)
	guest_now=$(grep '^tick [0-9]* kept-in-tmpfs [0-9]*$' "$OUT" | tail -n 1 | cut -d' ' -f4)
	host_now=$(date +%s)
	echo "$name: the guest counted on from $first; its clock $guest_now, L1's $host_now"
}

sleep 5 # the wall clock moves on while nothing runs
restore full "$T/full.state" --mem-file "$T/full.mem"
[ "$first" -gt "$n1" ] && [ "$first" -le $((n1 + 2)) ] ||
	fail "restored from the full snapshot at tick $n1, the guest counted from $first"
[ $((host_now - guest_now)) -le 3 ] && [ $((guest_now - host_now)) -le 3 ] ||
	fail "the restored guest's wall clock says $guest_now, L1's $host_now"

restore diff "$T/diff.state" --mem-file "$T/full.mem" --mem-diff "$T/diff.mem"
[ "$first" -gt "$n2" ] && [ "$first" -le $((n2 + 2)) ] ||
	fail "restored from the diff at tick $n2, the guest counted from $first"

# --keep-clock: Firecracker's default, the clock goes on from the snapshot.
restore keep-clock "$T/full.state" --mem-file "$T/full.mem" --keep-clock
[ $((host_now - guest_now)) -ge 4 ] ||
	fail "with --keep-clock the guest's clock ($guest_now) should lag L1's ($host_now)"

cp "$T/full.state" "$T/corrupt.state"
printf 'X' | dd of="$T/corrupt.state" bs=1 seek=200 conv=notrunc 2>/dev/null
flint --restore "$T/corrupt.state" --mem-file "$T/full.mem"
expect_status 125 "a corrupt state file"
expect_err "corrupt" "the reason: corrupt"

# Checksums that hold over state this flint did not write: a vCPU's
# section a byte longer than its state, a section for a vCPU the machine
# does not have. Each is named, not restored around.
[ -x "$TOOLS/snapedit" ] || fail "no $TOOLS/snapedit (make test-tools)"
"$TOOLS/snapedit" "$T/full.state" "$T/padded.state" pad vcpu0 || fail "snapedit pad"
flint --restore "$T/padded.state" --mem-file "$T/full.mem"
expect_status 125 "a vCPU section with a byte after its state"
expect_err "vcpu0: 1 bytes left over after its state" "the section and the bytes left over"
"$TOOLS/snapedit" "$T/full.state" "$T/extra.state" add vcpu7 || fail "snapedit add"
flint --restore "$T/extra.state" --mem-file "$T/full.mem"
expect_status 125 "a section for a vCPU the machine has not"
expect_err "holds state for vcpu7, which nothing in its configuration restores" \
	"the section nothing restores"
