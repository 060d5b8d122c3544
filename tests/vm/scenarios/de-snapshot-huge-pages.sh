# Snapshots of a VM on 2 MiB huge pages with dirty-page tracking, both of
# Firecracker's machine-config options at once: a Full snapshot, then a
# Diff one after the guest wrote a second file (it holds that file's pages,
# not all of RAM); the Full one restored (Uffd backend, flint-uffd; PUT
# /serial before PUT /snapshot/load, its console to that file) reads its
# file intact. KVM's
# dirty log counts 4 KiB pages whatever backs a slot (a log sized in 2 MiB
# pages overran its buffer and failed every snapshot).
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# 128 MiB of guest RAM: 64 huge pages, and a few over; the pool goes back
# as it was at the end (L1's memory serves the scenarios after this one).
want=72
have=$(cat /proc/sys/vm/nr_hugepages)
trap 'echo $have >/proc/sys/vm/nr_hugepages; rm -rf "$T"' EXIT
[ "$have" -ge $want ] || echo $want >/proc/sys/vm/nr_hugepages 2>/dev/null ||
	skip "cannot set vm.nr_hugepages"
free=$(awk '/^HugePages_Free/ { print $2 }' /proc/meminfo)
[ "$free" -ge 64 ] || skip "only $free free 2 MiB huge pages"

# (No double quotes: the script goes in a JSON string.) The guest writes f
# in its third second and g in its thirteenth (after the Full snapshot,
# taken once f is there), and prints both files' sums each second.
guest='i=0; while [ $i -lt 600 ]; do
[ $i = 2 ] && dd if=/dev/urandom of=/tmp/f bs=1M count=8 2>/dev/null && echo f-written $(md5sum </tmp/f | cut -c1-32);
[ $i = 12 ] && dd if=/dev/urandom of=/tmp/g bs=1M count=8 2>/dev/null && echo g-written $(md5sum </tmp/g | cut -c1-32);
[ -e /tmp/f ] && echo sums $(md5sum </tmp/f | cut -c1-32) $({ md5sum </tmp/g; } 2>/dev/null | cut -c1-32);
echo tick $i; sleep 1; i=$((i+1)); done'
start_api
boot_source "$(echo "$guest" | tr '\n' ' ')"
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body machine <<EOB
{"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "2M", "track_dirty_pages": true}
EOB
api PUT /machine-config machine
expect_code 204 "PUT /machine-config"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^f-written ' 90 || { kill_bg; fail "the guest did not write its file"; }
sum_f=$(whole_lines "$T/raw" | grep '^f-written ' | cut -d' ' -f2)

pause_and_snapshot full # Full: $T/full.state and .mem
body resume <<EOB
{"state": "Resumed"}
EOB
body diff <<EOB
{"snapshot_type": "Diff", "snapshot_path": "$T/diff.state", "mem_file_path": "$T/diff.mem"}
EOB
api PATCH /vm resume
expect_code 204 "PATCH /vm Resumed"
wait_for '^g-written ' 90 || { kill_bg; fail "the guest did not write its second file"; }
sum_g=$(whole_lines "$T/raw" | grep '^g-written ' | cut -d' ' -f2)
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused again"
api PUT /snapshot/create diff
expect_code 204 "PUT /snapshot/create Diff"
kill_bg
rm -f "$API_SOCK"
full_k=$(du -k "$T/full.mem" | cut -f1)
diff_k=$(du -k "$T/diff.mem" | cut -f1)
echo "memory files on disk: full $full_k KiB, diff $diff_k KiB"
# The diff holds what was written after the Full one: g's 8 MiB and
# the guest's own, not all that the full one holds.
[ "$diff_k" -ge 8192 ] || fail "the diff memory file holds $diff_k KiB: not g's 8 MiB"
[ "$diff_k" -lt "$full_k" ] || fail "the diff memory file ($diff_k KiB) is not smaller than the full one"

# Memory on huge pages is restored through a page-fault handler (the File
# backend's private file mapping cannot be hugetlbfs, as in Firecracker).
# PUT /serial first, as in Firecracker no boot resource: the restored
# guest's console goes to its file.
start_uffd "$T/full.mem"
start_api
body ser <<EOB
{"serial_out_path": "$T/loaded-console"}
EOB
api PUT /serial ser
expect_code 204 "PUT /serial before the load"
body load <<EOB
{"snapshot_path": "$T/full.state", "resume_vm": true,
 "mem_backend": {"backend_type": "Uffd", "backend_path": "$T/handler.sock"}}
EOB
api PUT /snapshot/load load
expect_code 204 "PUT /snapshot/load after PUT /serial, Uffd backend"
n=120
while [ $n -gt 0 ]; do
	[ "$(whole_lines "$T/loaded-console" | grep -c '^sums ')" -ge 2 ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.5
	n=$((n - 1))
done
got=$(whole_lines "$T/loaded-console" | grep '^sums ' | sed -n 2p)
kill_bg
kill "$upid" 2>/dev/null
[ "$got" = "sums $sum_f" ] ||
	fail "the guest restored from the Full snapshot read '${got:-nothing}', not 'sums $sum_f'"
echo "the guest restored from the Full snapshot reads its file intact ($got)"
