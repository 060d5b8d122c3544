# flint bench (runner/cmd/bench.c), sourced by run.sh (FLINT, OUT,
# check(), report()):
#  - with a stand-in flint (--flint fake-bench-flint.py, python3): boot's
#    runs counted after the warm-up, the JSON's and the CSV's fields, a
#    missing peer listed with its reason, --svg well-formed (gnuplot),
#    --baseline's exit status 1 on a regression and 0 within it, restore
#    with both memory backends from a snapshot made once, and --backend uffd
#    its own baseline;
#  - SIGTERM: the VMMs running killed, 143, no output left;
#  - options refused with 125 and a message naming them; serve not there;
#  - with /dev/kvm, the real flint booting the tiny guest: no agent there,
#    so its runs fail (exit status 2), but each one's boot phases to init
#    are in the JSON, in order.
# A Linux guest's, with QEMU beside it: tests/vm/scenarios/g1-bench-boot.sh.

BFAKE=$(dirname "$0")/fake-bench-flint.py
B=$OUT/bench
mkdir -p "$B"
truncate -s 1M "$B/root.img"
: >"$B/vmlinux"

# bench_json NAME FILE PYTHON: the Python expression's checks on the JSON
# document d (each a failed assert with its reason); sets why.
bench_json() {
	why=$(python3 - "$2" "$3" <<'EOF' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[2])
EOF
	) || why="JSON: $(echo "$why" | tail -n 1)"
}

# bench_run NAME WANT-STATUS ARGS...: flint bench ARGS, stdout and stderr
# in $B/NAME.out and .err; sets why on a wrong status.
bench_run() {
	name=$1 want=$2
	shift 2
	timeout 120 "$FLINT" bench "$@" </dev/null >"$B/$name.out" 2>"$B/$name.err"
	got=$?
	why=""
	[ "$got" = "$want" ] || why="status $got, expected $want"
}

if command -v python3 >/dev/null 2>&1; then
	: >"$B/log"
	FAKE_BENCH_LOG=$B/log bench_run bench-boot 0 boot --flint "$BFAKE" --runs 3 --warmup 2 \
		--kernel "$B/vmlinux" --rootfs "$B/root.img" --peer lkvm=/nonexistent/lkvm \
		--json "$B/boot.json" --csv "$B/boot.csv"
	[ -z "$why" ] && bench_json bench-boot "$B/boot.json" '
assert d["schema"] == "flint-bench" and d["version"] == 1 and d["mode"] == "boot", "header"
assert d["config"]["runs"] == 3 and d["config"]["warmup"] == 2, "config %s" % d["config"]
assert d["config"]["flint_launch"] == "flint", "config %s" % d["config"]
names = [v["name"] for v in d["vmms"]]
assert names == ["flint", "lkvm"], "vmms %s" % names
f, l = d["vmms"]
assert f["status"] == "ok" and f["runs"] == 3 and f["failed"] == 0, "flint %s" % f
assert l["status"] == "missing" and "/nonexistent/lkvm not found" in l["why"], "lkvm %s" % l
order = ["launch-to-process", "launch-to-vm-created", "launch-to-vcpus-started",
         "launch-to-kernel-entry", "launch-to-init", "launch-to-first-output"]
p50 = [f["phases"][p]["p50"] for p in order]
assert all(f["phases"][p]["n"] == 3 for p in order), "not 3 runs of each phase"
assert p50 == sorted(p50), "phases out of order: %s" % p50
assert "launch-to-agent-ready" not in f["phases"], "an agent, booting as the peers"
assert all(r["exits"]["exits"] == 100 for r in d["runs"]), "the exits line at the end"
assert len(d["runs"]) == 3 and all(r["ok"] and r["vmm"] == "flint" for r in d["runs"]), "runs"
'
	# The warm-up's runs ran (2 + 3 launches), their records dropped;
	# booting as the peers do: no flint run, the command on --cmdline.
	[ -z "$why" ] && [ "$(grep -c -- '--phase-fd 3' "$B/log")" != 5 ] &&
		why="$(grep -c -- '--phase-fd 3' "$B/log") launches, expected 5 (2 warm-up + 3)"
	[ -z "$why" ] && grep -q '^run ' "$B/log" && why="a flint run launch without --agent"
	[ -z "$why" ] && ! grep -q -- '--drive path=.*root.img,ro .*-- echo flint-bench-output$' \
		"$B/log" && why="not the peers' launch: $(head -n 1 "$B/log")"
	[ -z "$why" ] && [ "$(wc -l <"$B/boot.csv")" != 5 ] &&
		why="$(wc -l <"$B/boot.csv") CSV lines, expected a header, 3 runs and lkvm's"
	[ -z "$why" ] && ! grep -q '^launch-to-init  *flint  *3 ' "$B/bench-boot.out" &&
		why="no launch-to-init row of flint's 3 runs in the table"
	report bench-boot "$why" "$B/bench-boot.err"

	# --agent: through flint run, its agent's phase too.
	: >"$B/log"
	FAKE_BENCH_LOG=$B/log bench_run bench-boot-agent 0 boot --flint "$BFAKE" --agent --runs 2 \
		--warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" --json "$B/agent.json"
	[ -z "$why" ] && bench_json bench-boot-agent "$B/agent.json" '
assert d["config"]["flint_launch"] == "flint run", "config %s" % d["config"]
f = d["vmms"][0]
order = ["launch-to-init", "launch-to-agent-ready", "launch-to-first-output"]
p50 = [f["phases"][p]["p50"] for p in order]
assert p50 == sorted(p50), "phases out of order: %s" % p50
'
	[ -z "$why" ] && [ "$(grep -c '^run --phase-fd 3 ' "$B/log")" != 2 ] &&
		why="not 2 flint run launches: $(head -n 1 "$B/log")"
	report bench-boot-agent "$why" "$B/bench-boot-agent.err"
	# A baseline of the other launch has other phases: refused first.
	check bench-baseline-other-launch 125 "" \
		"flint was launched as \"flint\" then and is as \"flint run\" now" -- \
		bench boot --flint "$BFAKE" --agent --runs 1 --kernel "$B/vmlinux" \
		--rootfs "$B/root.img" --baseline "$B/boot.json" --max-regress 50

	# Interleaved: flint, the peer, flint again (the peer's launches fail
	# at once: missing), with --concurrency 2 each time twice.
	bench_run bench-concurrency 0 boot --flint "$BFAKE" --runs 2 --warmup 0 --concurrency 2 \
		--kernel "$B/vmlinux" --rootfs "$B/root.img" --json "$B/conc.json"
	[ -z "$why" ] && bench_json bench-concurrency "$B/conc.json" '
assert d["vmms"][0]["runs"] == 4, "%d runs, expected 4" % d["vmms"][0]["runs"]
t = d["throughput"]["flint"]
assert t["ok"] == 4 and t["concurrency"] == 2 and t["vms_per_s"] > 0, "throughput %s" % t
'
	[ -z "$why" ] && ! grep -q '^throughput flint [0-9.]* VMs/s' "$B/bench-concurrency.out" &&
		why="no VMs/s line"
	report bench-concurrency "$why" "$B/bench-concurrency.err"

	if command -v gnuplot >/dev/null 2>&1; then
		bench_run bench-svg 0 boot --flint "$BFAKE" --runs 2 --warmup 0 \
			--kernel "$B/vmlinux" --rootfs "$B/root.img" --svg "$B/boot.svg"
		[ -z "$why" ] && why=$(python3 -c '
import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
assert r.tag.endswith("svg"), r.tag' "$B/boot.svg" 2>&1 | tail -n 1)
		report bench-svg "$why" "$B/bench-svg.err"
	else
		echo "SKIP bench-svg: no gnuplot (gnuplot-nox)"
	fi

	# --baseline: phases 80 ms apart instead of 1 is far over 50%.
	FAKE_BENCH_STEP_MS=80 bench_run bench-regressed 1 boot --flint "$BFAKE" --runs 2 \
		--warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" \
		--baseline "$B/boot.json" --max-regress 50
	[ -z "$why" ] && ! grep -q 'REGRESSED' "$B/bench-regressed.out" &&
		why="no REGRESSED line"
	report bench-regressed "$why" "$B/bench-regressed.err"
	bench_run bench-within 0 boot --flint "$BFAKE" --runs 2 --warmup 0 \
		--kernel "$B/vmlinux" --rootfs "$B/root.img" \
		--baseline "$B/boot.json" --max-regress 1000
	report bench-within "$why" "$B/bench-within.err"

	# restore: the snapshot made once, then both backends interleaved
	# (a stand-in handler that only makes its socket).
	printf '#!/bin/sh\n: >"$1"\nexec sleep 60\n' >"$B/uffd"
	chmod +x "$B/uffd"
	: >"$B/log"
	FAKE_BENCH_LOG=$B/log bench_run bench-restore 0 restore --flint "$BFAKE" --runs 2 \
		--warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" --uffd-handler "$B/uffd" \
		--json "$B/restore.json"
	[ -z "$why" ] && bench_json bench-restore "$B/restore.json" '
assert [v["name"] for v in d["vmms"]] == ["flint", "flint-uffd"], "vmms"
for v in d["vmms"]:
    assert v["runs"] == 2 and "launch-to-first-response" in v["phases"], v["name"]
assert "launch-to-init" not in d["vmms"][0]["phases"], "a boot phase in a restore"
assert [r["vmm"] for r in d["runs"]] == ["flint", "flint-uffd", "flint-uffd", "flint"], "not interleaved, every other round reversed"
'
	[ -z "$why" ] && [ "$(grep -c -- '--save-snapshot' "$B/log")" != 1 ] && why="not one snapshot"
	[ -z "$why" ] && [ "$(grep -c -- '--uffd-sock' "$B/log")" != 2 ] && why="not 2 uffd runs"
	report bench-restore "$why" "$B/bench-restore.err"

	# restore --backend uffd, flint-uffd its only row of flint's: its own
	# --json is a baseline (once refused: "no results of flint").
	bench_run bench-restore-uffd 0 restore --flint "$BFAKE" --backend uffd --runs 1 \
		--warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" --uffd-handler "$B/uffd" \
		--json "$B/restore-uffd.json"
	[ -z "$why" ] && bench_run bench-restore-uffd 0 restore --flint "$BFAKE" --backend uffd \
		--runs 1 --warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" \
		--uffd-handler "$B/uffd" --baseline "$B/restore-uffd.json" --max-regress 1000
	[ -z "$why" ] && ! grep -q '^flint-uffd   launch-to-first-response' "$B/bench-restore-uffd.out" &&
		why="flint-uffd not compared"
	report bench-restore-uffd "$why" "$B/bench-restore-uffd.err"
else
	echo "SKIP flint bench with a stand-in flint: no python3"
fi

# term_bench PID: SIGTERM to the bench at PID, which must end within 5 s
# (else why says so and it is killed) with 143 (else why says its status,
# unless why already holds a reason).
term_bench() {
	kill -TERM "$1"
	if ! wait_gone "$1" 5; then
		why="still running 5 s after SIGTERM"
		kill -KILL "$1"
	fi
	wait "$1"
	got=$?
	[ -z "$why" ] && [ $got != 143 ] && why="status $got, expected 143"
}

# SIGTERM mid-run: the VMMs running (three stand-ins that would sleep
# 30 s, each in a process group of its own) killed, 143 at once, no
# output left behind.
printf '#!/bin/sh\necho $$ >>"%s"\nexec sleep 30\n' "$B/pids" >"$B/slow"
chmod +x "$B/slow"
: >"$B/pids"
"$FLINT" bench boot --flint "$B/slow" --kernel "$B/vmlinux" --rootfs "$B/root.img" \
	--concurrency 3 --json "$B/stopped.json" </dev/null >"$B/bench-stopped.out" \
	2>"$B/bench-stopped.err" &
bp=$!
n=0
while [ "$(wc -l <"$B/pids")" -lt 3 ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
why=""
term_bench $bp
for p in $(cat "$B/pids"); do
	kill -0 "$p" 2>/dev/null && why="${why:-stand-in $p left running}" && kill "$p"
done
[ -z "$why" ] && [ -e "$B/stopped.json" ] && why="an empty --json left behind"
[ -z "$why" ] && ! grep -q 'stopped by signal 15' "$B/bench-stopped.err" && why="no message"
report bench-stopped "$why" "$B/bench-stopped.err"

# SIGTERM mid-restore with the Uffd backend: the page-fault handler goes
# too, all of it (a stand-in that is a shell with a child of its own, as a
# wrapper script would be: killing its pid alone left the child).
if command -v python3 >/dev/null 2>&1; then
	printf '#!/bin/sh\n: >"$1"\nsleep 60 &\necho $$ $! >>"%s"\nwait\n' "$B/uffd-pids" \
		>"$B/uffd-fork"
	chmod +x "$B/uffd-fork"
	: >"$B/uffd-pids"
	FAKE_BENCH_STEP_MS=30000 "$FLINT" bench restore --flint "$BFAKE" --backend uffd \
		--runs 1 --warmup 0 --kernel "$B/vmlinux" --rootfs "$B/root.img" \
		--uffd-handler "$B/uffd-fork" </dev/null >"$B/bench-uffd-stopped.out" \
		2>"$B/bench-uffd-stopped.err" &
	bp=$!
	n=0
	while [ ! -s "$B/uffd-pids" ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	sleep 0.2 # the restore's VMM started after the handler's socket
	why=""
	[ -s "$B/uffd-pids" ] || why="the handler never started"
	term_bench $bp
	# Orphaned, the handler's child is reaped by init, maybe not at once:
	# a zombie is gone.
	for p in $(cat "$B/uffd-pids"); do
		s=$(ps -o stat= -p "$p" 2>/dev/null)
		[ -n "$s" ] && [ "${s#Z}" = "$s" ] &&
			why="${why:-handler process $p left running ($s)}" && kill "$p"
	done
	report bench-uffd-stopped "$why" "$B/bench-uffd-stopped.err"
fi

check bench-bad-runs 125 "" "flint bench: --runs 0: expected a number from 1" -- \
	bench boot --runs 0
check bench-bad-peer 125 "" "flint bench: --peer xen: expected qemu, firecracker or lkvm" -- \
	bench boot --peer xen
check bench-restore-peer 125 "" "flint bench restore: --peer: only boot has peers" -- \
	bench restore --peer qemu
check bench-no-max-regress 125 "" "--baseline FILE and --max-regress PCT go together" -- \
	bench boot --baseline x.json
check bench-serve-isolation 125 "" "flint bench: --isolation bogus: expected reset, restore or reuse" -- \
	bench serve --isolation bogus
check bench-isolation-not-serve 125 "" "flint bench boot: --isolation is serve's" -- \
	bench boot --isolation reset
check bench-serve-image 125 "" "flint bench serve: --image: flint serve's functions take a kernel" -- \
	bench serve --image /tmp
check bench-no-kernel 125 "" "flint bench: --kernel /nonexistent/vmlinux: No such file" -- \
	bench boot --kernel /nonexistent/vmlinux --rootfs /dev/null
# A FIFO nobody reads as an output, nobody writes as the baseline: said at
# once (the open waited for ever, and the bench took no signal yet).
rm -f "$B/fifo" && mkfifo "$B/fifo"
check bench-json-fifo-no-reader 125 "" "flint bench: --json $B/fifo: a FIFO with no reader" -- \
	bench boot --kernel "$B/vmlinux" --rootfs "$B/root.img" --json "$B/fifo"
check bench-baseline-fifo-no-writer 125 "" "baseline $B/fifo: not JSON" -- \
	bench boot --kernel "$B/vmlinux" --rootfs "$B/root.img" --baseline "$B/fifo" \
	--max-regress 10

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none -DEXIT_STATUS \
		-o "$B/tiny.elf" "$(dirname "$0")/tiny-guest.S" || exit 1
	# The tiny guest runs no init: it writes the boot timer and ends with
	# status 42, printing neither init's line (flint's launch-to-init as
	# the peers') nor the command's output.
	bench_run bench-tiny 2 boot --runs 2 --warmup 1 --kernel "$B/tiny.elf" \
		--rootfs "$B/root.img" --json "$B/tiny.json" --csv "$B/tiny.csv"
	if [ -z "$why" ] && command -v python3 >/dev/null 2>&1; then
		bench_json bench-tiny "$B/tiny.json" '
assert d["vmms"][0]["name"] == "flint" and d["vmms"][0]["failed"] == 2, "flint %s" % d["vmms"][0]
assert len(d["runs"]) == 2, "%d runs" % len(d["runs"])
order = ["launch-to-process", "launch-to-vm-created", "launch-to-vcpus-started",
         "launch-to-kernel-entry"]
for r in d["runs"]:
    assert not r["ok"] and r["why"].startswith("exit status 42"), r["why"]
    t = [r["phases_us"][p] for p in order]
    assert None not in t and t == sorted(t), "phases %s" % t
    assert r["phases_us"].get("launch-to-init") is None, "init from the boot timer"
    assert r["exits"]["exits"] > 0, "no exit counters"
'
	fi
	[ -z "$why" ] && [ "$(wc -l <"$B/tiny.csv")" != 3 ] && why="not 3 CSV lines"
	report bench-tiny "$why" "$B/bench-tiny.err"
else
	echo "SKIP bench-tiny: no usable /dev/kvm"
fi
