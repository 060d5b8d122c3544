# Ten VMs restored at once from one snapshot all run, and share its memory
# file's pages: their private memory together stays far below ten guests'
# worth (File backend, a private mapping of the memory file).
# timeout: 400
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

start_api --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio -- sh -c \
	'dd if=/dev/urandom of=/tmp/fill bs=1M count=24 2>/dev/null; i=0; while [ $i -lt 5000 ]; do echo tick $i; i=$((i+1)); sleep 0.5; done'
wait_for '^tick 2$' 90 || { kill_bg; fail "the guest did not count"; }
pause_and_snapshot s
kill_bg

pids=""
for k in 0 1 2 3 4 5 6 7 8 9; do
	"$FLINT" --restore "$T/s.state" --mem-file "$T/s.mem" --stats </dev/null \
		>"$T/vm$k.out" 2>"$T/vm$k.err" &
	pids="$pids $!"
done
n=150
while [ $n -gt 0 ]; do
	ok=0
	for k in 0 1 2 3 4 5 6 7 8 9; do
		[ "$(grep -c '^tick' "$T/vm$k.out")" -ge 2 ] && ok=$((ok + 1))
	done
	[ $ok = 10 ] && break
	sleep 0.2
	n=$((n - 1))
done
# Private memory: what each flint has of its own (its copies of the guest
# pages the guest wrote, and its own heap: anonymous memory, from
# smaps_rollup); the memory file's pages in the page cache are shared.
total=0
for p in $pids; do
	priv=$(awk '/^Anonymous:/ { s += $2 } END { print s + 0 }' /proc/$p/smaps_rollup 2>/dev/null)
	total=$((total + ${priv:-0}))
done
i=0
for p in $pids; do
	# A VM that did not count: whether its flint was still there, where
	# its threads wait, and (stopped with SIGTERM) its exit counts: whether
	# its vCPU ran at all, what it did and where it was left.
	if [ "$(grep -c '^tick' "$T/vm$i.out")" -lt 2 ]; then
		echo "vm$i (pid $p): $(kill -0 "$p" 2>/dev/null && echo running || echo gone)," \
			"$(grep -c '^tick' "$T/vm$i.out") ticks"
		for t in /proc/$p/task/*; do
			[ -d "$t" ] || continue
			echo "  thread $(cat "$t/comm" 2>/dev/null):" \
				"$(awk '/^State/ { print $2 }' "$t/status" 2>/dev/null)" \
				"in $(cat "$t/wchan" 2>/dev/null)"
		done
		kill -TERM "$p" 2>/dev/null
		wait_gone "$p" 10
		tail -n 5 "$T/vm$i.out"
		tail -n 12 "$T/vm$i.err" # --stats: exits, where the vCPU was, devices
		rig_fault "$T/vm$i.err"
	fi
	i=$((i + 1))
done
for p in $pids; do kill -KILL "$p" 2>/dev/null; done
wait 2>/dev/null
echo "$ok of 10 restored VMs counted; their private memory: $((total / 1024)) MiB in all (10 guests: 1280 MiB)"
# With one that did not: what L1 says of its TSC (marked unstable in the rig).
[ $ok = 10 ] || dmesg 2>/dev/null | grep -i -E 'tsc|clocksource' | tail -n 3
[ $ok = 10 ] || fail "only $ok of 10 restored VMs counted on"
[ $total -lt $((256 * 1024)) ] || fail "10 restored VMs hold $((total / 1024)) MiB of private memory"
