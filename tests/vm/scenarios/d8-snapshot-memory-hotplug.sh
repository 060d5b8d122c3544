# Snapshots of a VM with memory hot-plug (PUT /hotplug/memory), as
# Firecracker takes them: a 128 MiB guest is given 256 of 512 MiB and puts
# a file of random data in a tmpfs, in the movable zone the plugged memory
# makes (it says how much of that zone it uses). A Full snapshot; then 64
# MiB more plugged (KVM slots made after it) and a second file written;
# a Diff snapshot. Each is restored in a new flint:
# - the Full one with the File backend: GET /hotplug/memory shows the 256
#   MiB plugged, the guest reads its file back with the same checksum, and
#   PATCH 0 unplugs it all (the restored slots go);
# - the Full one again, reset in place (--control-fd) after the guest
#   unplugged it all: 256 MiB plugged again, the file intact;
# - the Full one with the Diff laid over it: 320 MiB plugged, both files
#   intact;
# - the Full one with the Uffd backend (flint-uffd), loaded through PUT
#   /snapshot/load: 256 MiB plugged, the file intact; the handler killed,
#   flint says so.
# timeout: 420
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# wait_plugged MIB SECONDS: until the guest's driver has MIB MiB plugged.
wait_plugged() {
	wait_json /hotplug/memory plugged_size_mib "$1" "$2" "what the guest's driver plugged (MiB)"
}
# last_line PREFIX: the guest's last whole console line starting so.
last_line() {
	whole_lines "$T/raw" | grep "^$1 " | tail -n 1
}

# (No double quotes: the script goes in a JSON string.) Each round the guest prints the checksums of its files (f: written once
# it has over 290 MiB, 256 plugged; g: over 410 MiB, 320 plugged) and a tick.
guest=$(
	cat <<'EOS'
mkdir -p /hot; i=0; while [ $i -lt 900 ]; do
t=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo);
if [ $t -gt 300000 ] && [ ! -e /hot/f ]; then mount -t tmpfs -o size=300m hot /hot;
dd if=/dev/urandom of=/hot/f bs=1M count=24 2>/dev/null;
echo f-written $(md5sum </hot/f | cut -c1-32) $(awk '/zone +Movable/ { m = 1; next } /^Node/ { m = 0 } m && /pages free/ { f = $3 } m && /managed/ { n = $2 } END { print n - f }' /proc/zoneinfo); fi;
if [ $t -gt 420000 ] && [ ! -e /hot/g ]; then dd if=/dev/urandom of=/hot/g bs=1M count=16 2>/dev/null;
echo g-written $(md5sum </hot/g | cut -c1-32); fi;
[ -e /hot/f ] && echo sums $(md5sum </hot/f | cut -c1-32) $({ md5sum </hot/g; } 2>/dev/null | cut -c1-32);
echo tick $i $t; sleep 1; i=$((i+1)); done
EOS
)
start_api
boot_source "$(echo "$guest" | tr '\n' ' ')"
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 128, "track_dirty_pages": true}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body hotplug <<EOB
{"total_size_mib": 512}
EOB
api PUT /hotplug/memory hotplug
expect_code 204 "PUT /hotplug/memory"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^tick ' 60 || { kill_bg; fail "the guest did not tick"; }

body want256 <<EOB
{"requested_size_mib": 256}
EOB
api PATCH /hotplug/memory want256
expect_code 204 "PATCH /hotplug/memory to 256 MiB"
wait_plugged 256 60
wait_for '^f-written ' 90 || { kill_bg; fail "the guest did not write its file"; }
set -- $(last_line f-written)
sum_f=$2 movable_used=$3
echo "the guest's file: md5 $sum_f; pages used in its movable zone: $movable_used"
[ "$movable_used" -ge 4096 ] ||
	fail "the guest uses $movable_used pages of the hot-plugged memory: its file is not there"

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
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused"
api PUT /snapshot/create full
expect_code 204 "PUT /snapshot/create Full, 256 MiB plugged"
size=$(stat -c %s "$T/full.mem")
[ "$size" = $(((128 + 512) << 20)) ] ||
	fail "the memory file has $size bytes, not RAM's and the hot-plug region's $(((128 + 512) << 20))"
echo "full memory file: $(du -k "$T/full.mem" | cut -f1) KiB on disk of $((size >> 10))"
api PATCH /vm resume
expect_code 204 "PATCH /vm Resumed"

body want320 <<EOB
{"requested_size_mib": 320}
EOB
api PATCH /hotplug/memory want320
expect_code 204 "PATCH /hotplug/memory to 320 MiB"
wait_plugged 320 60
wait_for '^g-written ' 90 || { kill_bg; fail "the guest did not write its second file"; }
set -- $(last_line g-written)
sum_g=$2
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused again"
api PUT /snapshot/create diff
expect_code 204 "PUT /snapshot/create Diff, 320 MiB plugged"
kill_bg
echo "diff memory file: $(du -k "$T/diff.mem" | cut -f1) KiB on disk"
rm -f "$API_SOCK"

# restored NAME SUMS SECONDS: the restored guest printed "sums SUMS" from a
# round that began after the restore (the second sums line it printed).
restored() {
	n=$(($3 * 2))
	while [ $n -gt 0 ]; do
		[ "$(whole_lines "$T/raw" | grep -c '^sums ')" -ge 2 ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
		n=$((n - 1))
	done
	got=$(whole_lines "$T/raw" | grep '^sums ' | sed -n 2p)
	[ "$got" = "sums $2" ] || {
		kill_bg
		fail "$1: the restored guest read '${got:-nothing}', not 'sums $2'"
	}
	echo "$1: the restored guest's files are intact ($got)"
}

start_api --restore "$T/full.state" --mem-file "$T/full.mem"
api GET /hotplug/memory
expect_code 200 "GET /hotplug/memory, restored"
[ "$(json_num plugged_size_mib)" = 256 ] && [ "$(json_num requested_size_mib)" = 256 ] ||
	fail "the restored device: $(cat "$T/resp")"
restored "File backend" "$sum_f" 90
body none <<EOB
{"requested_size_mib": 0}
EOB
api PATCH /hotplug/memory none
expect_code 204 "PATCH /hotplug/memory to 0, restored"
wait_plugged 0 120
kill_bg
rm -f "$API_SOCK"

# Reset in place (--control-fd, under ctlpair: the console and flint's
# stderr in $T/raw): the guest unplugs everything, the reset plugs back
# the snapshot's 256 MiB with the file in them.
[ -x "$TOOLS/ctlpair" ] || fail "no $TOOLS/ctlpair (make test-tools)"
mkfifo "$T/ctl"
"$TOOLS/ctlpair" -- "$FLINT" --api-sock "$API_SOCK" --restore "$T/full.state" \
	--mem-file "$T/full.mem" --control-fd 3 <"$T/ctl" >"$T/ans" 2>"$T/raw" &
pid=$!
exec 7>"$T/ctl"
n=50
until [ -S "$API_SOCK" ]; do
	n=$((n - 1))
	[ $n -gt 0 ] || { kill_bg; fail "the API socket of the VM to reset did not come"; }
	sleep 0.2
done
api PATCH /hotplug/memory none
expect_code 204 "PATCH /hotplug/memory to 0, before a reset"
wait_plugged 0 120
before=$(whole_lines "$T/raw" | grep -c '^sums ')
echo reset >&7
n=120
until grep -q '^ok ' "$T/ans"; do
	n=$((n - 1))
	[ $n -gt 0 ] && ! grep -q '^error' "$T/ans" || { kill_bg; fail "the reset: $(cat "$T/ans")"; }
	sleep 0.5
done
api GET /hotplug/memory
[ "$(json_num plugged_size_mib)" = 256 ] || { kill_bg; fail "after the reset: $(cat "$T/resp")"; }
n=180
while [ "$(whole_lines "$T/raw" | grep -c '^sums ')" -lt $((before + 2)) ] && [ $n -gt 0 ]; do
	sleep 0.5
	n=$((n - 1))
done
got=$(whole_lines "$T/raw" | grep '^sums ' | tail -n 1)
[ "$got" = "sums $sum_f" ] || { kill_bg; fail "after the reset the guest read '$got', not 'sums $sum_f'"; }
echo "reset in place ($(cat "$T/ans")): 256 MiB plugged again, the file intact"
exec 7>&-
st=0
wait "$pid" || st=$?
[ $st = 0 ] || fail "flint (under ctlpair) ended with $st at the control socket's end: $(tail -n 5 "$T/raw")"
rm -f "$API_SOCK"

start_api --restore "$T/diff.state" --mem-file "$T/full.mem" --mem-diff "$T/diff.mem"
api GET /hotplug/memory
[ "$(json_num plugged_size_mib)" = 320 ] || fail "restored from the diff: $(cat "$T/resp")"
restored "Full and Diff" "$sum_f $sum_g" 90
kill_bg
rm -f "$API_SOCK"

start_uffd "$T/full.mem"
start_api
body load <<EOB
{"snapshot_path": "$T/full.state", "resume_vm": true,
 "mem_backend": {"backend_type": "Uffd", "backend_path": "$T/handler.sock"}}
EOB
api PUT /snapshot/load load
expect_code 204 "PUT /snapshot/load, Uffd backend"
api GET /hotplug/memory
[ "$(json_num plugged_size_mib)" = 256 ] || fail "loaded through the API: $(cat "$T/resp")"
restored "Uffd backend" "$sum_f" 90
# A handler that dies: flint says that nothing serves the guest's memory
# any more (what the guest has not touched yet would wait forever).
kill -KILL "$upid"
wait "$upid" 2>/dev/null
n=50
until grep -q "the Uffd handler closed its connection" "$ERR"; do
	n=$((n - 1))
	[ $n -gt 0 ] || { kill_bg; fail "flint said nothing when its Uffd handler died: $(tail -n 3 "$ERR")"; }
	sleep 0.2
done
kill_bg
echo "Uffd handler killed: $(grep -m1 'the Uffd handler closed' "$ERR")"
echo "memory hot-plug: plugged memory went through Full and Diff snapshots, File and Uffd"
