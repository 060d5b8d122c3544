#!/bin/bash
# bench/snapshot/selftest.sh SNAPBENCH: runs in-l1.sh on this host, whose
# KVM need not boot Linux, so that the benchmark's scripts and snapbench are
# checked before a rig run: flint restores a tiny guest that answers the
# same way (pong-guest.S) on /dev/kvm (kvm_pvm too), QEMU runs the real
# guest under TCG, and no exits are counted. Then snapbench's refusals and
# its exit histogram, and summarize.awk on canned runs.
# Environment: BUILD (default build); KERNEL for QEMU (default
# $BUILD/vmlinux), INITRD (default $BUILD/initramfs.cpio.gz).
set -u
SB=$1
BUILD=${BUILD:-build}
T=$(mktemp -d /tmp/snapbench-selftest.XXXXXX)
trap 'rm -rf "$T"' EXIT
export FLINT_ALLOW_PVM=1 # kvm_pvm runs the tiny guest (tests/smoke does the same)
fail=0
check() { # NAME EXPECTED-REGEX OUTPUT
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then echo "ok   $1"; else
		echo "FAIL $1: expected /$2/ in:"; printf '%s\n' "$3" | tail -n 40; fail=1; fi
}
check_count() { # NAME N REGEX OUTPUT: N lines of OUTPUT match REGEX
	c=$(printf '%s\n' "$4" | grep -Ec -- "$3")
	if [ "$c" = "$2" ]; then echo "ok   $1"; else
		echo "FAIL $1: $c lines, not $2, match /$3/ in:"; printf '%s\n' "$4" | tail -n 40; fail=1; fi
}

cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none \
	-o "$T/pong.elf" bench/snapshot/pong-guest.S || exit 1
QK=${KERNEL:-$BUILD/vmlinux}
INITRD=${INITRD:-$BUILD/initramfs.cpio.gz}
F=$BUILD/flint
U=$BUILD/tools/flint-uffd
[ -x "$F" ] && [ -x "$U" ] && [ -f "$QK" ] && [ -f "$INITRD" ] ||
	{ echo "selftest: needs $F, $U, $QK and $INITRD"; exit 2; }

# The whole benchmark, small: 2 runs, 2 rounds of 3 VMs at once.
bench() { # RUNS MULTI [VAR=VALUE...]
	r=$1 m=$2
	shift 2
	env KERNEL="$T/pong.elf" INITRD="$INITRD" FLINT="$F" QEMU_KERNEL="$QK" \
		QEMU_ACCEL="-accel tcg -cpu max" NO_EXITS=1 NVMS=3 UFFD="$U" RIG_OUT="$T" "$@" \
		sh bench/snapshot/in-l1.sh "$SB" "$r" "$m" 2>&1
}
out=$(bench 2 2)
ok='pong_ms=[0-9]'
check_count "flint: 2 cold boots" 2 "^run mode=boot vmm=flint ready_ms=[0-9.]+ pong_ms=[0-9.]+ status=137$" "$out"
check_count "qemu: 2 cold boots" 2 "^run mode=boot vmm=qemu ready_ms=[0-9.]+ pong_ms=[0-9.]+ status=137$" "$out"
figs="ready_ms=[0-9.]+ pong_ms=[0-9.]+ pause_ms=[0-9.]+ create_ms=[0-9.]+ own_ms=[0-9.]+"
check_count "flint: 2 creates with every figure" 2 "^run mode=create vmm=flint $figs" "$out"
check_count "qemu: 2 creates with every figure" 2 "^run mode=create vmm=qemu $figs" "$out"
check "a loading set recorded" "^run mode=record vmm=flint n=1 ok=1 $ok.* status=(0|143) *$" "$out"
check "the loading set's size" "^# loading set: [0-9]+ B" "$out"
for m in file uffd ws; do
	check_count "flint $m: 2 restores with their figures" 2 \
		"^run mode=$m vmm=flint n=1 ok=1 $ok.*resumed_ms=[0-9].*load_ms=[0-9].*rss_kib=[1-9].*pss_kib=[1-9]" "$out"
done
check "flint ws: prefetch time" "^run mode=ws vmm=flint .*ws_ms=[0-9]" "$out"
check_count "qemu: 2 restores with their figures" 2 \
	"^run mode=restore vmm=qemu n=1 ok=1 $ok.*resumed_ms=[0-9].*load_ms=-1.*rss_kib=[1-9]" "$out"
check_count "2 rounds of 3 VMs at once for each" 4 "^run mode=multi vmm=(flint|qemu) n=3 ok=3 $ok" "$out"
check "qemu first in odd restore rounds, last in even ones" \
	"^record qemu file uffd ws file uffd ws qemu multi multi multi multi$" \
	"$(printf '%s\n' "$out" | awk '/^run/ && $2 != "mode=create" && $2 != "mode=boot" { split($2, m, "="); split($3, w, "=");
		printf "%s%s", sep, (m[2] == "restore" ? w[2] : m[2]); sep = " " } END { print "" }')"
check "the table: restores" "launch to pong \(ms\) +[0-9.]+ \([0-9.]+-[0-9.]+\) +[0-9.]+ \(.*\) +[0-9.]+ \(.*\) +[0-9.]+ \(" "$out"
check "the table: 3 VMs" "PSS per VM \(MiB\) +[0-9.]+ \(" "$out"
check "the ratio to boot" "flint File / flint boot to ready +[0-9.]+  \(target <= 0.05: (met|MISSED)\)" "$out"
check "the ratio to QEMU" "flint File / QEMU +[0-9.]+  \(target <= 0.25" "$out"
check "the create ratio" "snapshot create, flint / QEMU migrate +[0-9.]+  \(target" "$out"
check "no failed runs" "^never$" "$(printf '%s\n' "$out" | grep -E 'runs failed|^snapbench:|^bench:' || echo never)"
check "the runs file" "^run mode=multi" "$(cat "$T/snapshot-runs.txt")"

# QEMU through "exec:cat", one run, no rounds at once.
out=$(bench 1 0 QEMU_MIG=exec)
check "exec: QEMU migration" "^# QEMU .*; QEMU migration: exec" "$out"
check "exec: qemu create" "^run mode=create vmm=qemu .*create_ms=[0-9]" "$out"
check "exec: qemu restore" "^run mode=restore vmm=qemu n=1 ok=1 $ok" "$out"

# Refusals: flint without --level Debug never says its VM runs; a VMM
# that ends at once; a QMP socket that never comes.
flint_snap() {
	"$SB" create -v flint -S "$T/a.sock" -s "$T/s.state" -m "$T/s.mem" -t 20 -- \
		"$F" --api-sock "$T/a.sock" --kernel "$T/pong.elf"
}
out=$(flint_snap 2>&1)
check "create on its own" "^run mode=create vmm=flint .*create_ms=[0-9]" "$out"
out=$("$SB" restore -v flint -m file -t 3 -- "$F" --restore "$T/s.state" --mem-file "$T/s.mem" 2>&1)
check "restore without Debug fails" "pong_ms=-1" "$out"
check "and says why" 'line: run it with --level Debug' "$out"
out=$("$SB" restore -v flint -m file -t 10 -- sh -c 'echo gone >&2; exit 3' 2>&1)
check "a VMM that ends: its status" "ok=0 pong_ms=-1.* status=3" "$out"
check "a VMM that ends: its stderr" "#   gone" "$out"
out=$("$SB" restore -v qemu -m restore -S "$T/none{i}.sock" -t 2 -- sleep 30 2>&1)
check "no QMP socket: timed out" "snapbench: qemu 0 never said its VM runs \(its QMP socket never accepted\)" "$out"
out=$("$SB" create -v flint -S "$T/a.sock" -s "$T/s.state" -m "$T/s.mem" -t 20 -- \
	"$F" --api-sock "$T/a.sock" --kernel "$T/pong.elf" --restore "$T/s.state" 2>&1)
check "create: a VMM that never gets ready" "ready_ms=-1.* create_ms=-1" "$out"
out=$("$SB" create -v qemu -S "$T/q.sock" -o "$T/q.mig" -t 20 -- "$F" --api-sock "$T/q.sock" \
	--kernel "$T/pong.elf" 2>&1)
check "create: no QMP greeting" "snapbench: QMP set-up" "$out"

# The exit histogram at the pong, from a file in its format.
printf '# event histogram\n{ exit_reason:       1024 } hitcount:        700\n{ exit_reason:        123 } hitcount:         50\n\nTotals:\n' >"$T/hist"
out=$("$SB" restore -v flint -m file -h "$T/hist" -t 20 -- "$F" --restore "$T/s.state" \
	--mem-file "$T/s.mem" --level Debug 2>&1)
check "the histogram's reasons" "ok=1 .* total=750 r1024=700 r123=50$" "$out"
out=$("$SB" restore -v flint -m multi -n 2 -h "$T/hist" -t 20 -- "$F" --restore "$T/s.state" \
	--mem-file "$T/s.mem" --level Debug 2>&1)
check "no histogram for several at once" "^run mode=multi vmm=flint n=2 ok=2 .*status=137$" "$out"

# summarize.awk: medians, spreads, per-VM memory, a failed run.
cat >"$T/runs" <<'EOF'
run mode=boot vmm=flint ready_ms=1000 pong_ms=1010 status=137
run mode=boot vmm=flint ready_ms=3000 pong_ms=3010 status=137
run mode=boot vmm=qemu ready_ms=2000 pong_ms=2010 status=137
run mode=create vmm=flint ready_ms=1000 pong_ms=1010 pause_ms=1 create_ms=20 own_ms=19 status=137
run mode=create vmm=flint ready_ms=3000 pong_ms=3010 pause_ms=1 create_ms=40 own_ms=39 status=137
run mode=create vmm=qemu ready_ms=2000 pong_ms=2010 pause_ms=1 create_ms=100 own_ms=99 status=137
run mode=create vmm=qemu ready_ms=2000 pong_ms=2010 pause_ms=1 create_ms=-1 own_ms=-1 status=137
run mode=file vmm=flint n=1 ok=1 pong_ms=50 resumed_ms=40 load_ms=30 ws_ms=-1 rss_kib=10240 pss_kib=5120 anon_kib=1024 status=137 total=100 r1024=60
run mode=file vmm=flint n=1 ok=1 pong_ms=70 resumed_ms=40 load_ms=30 ws_ms=-1 rss_kib=10240 pss_kib=5120 anon_kib=1024 status=137 total=100 r1024=80
run mode=restore vmm=qemu n=1 ok=1 pong_ms=400 resumed_ms=300 load_ms=-1 ws_ms=-1 rss_kib=65536 pss_kib=65536 anon_kib=60000 status=137 total=900 r1024=500
run mode=multi vmm=flint n=10 ok=10 pong_ms=900 resumed_ms=40 load_ms=30 ws_ms=-1 rss_kib=102400 pss_kib=20480 anon_kib=10240 status=137
run mode=multi vmm=qemu n=10 ok=10 pong_ms=4000 resumed_ms=300 load_ms=-1 ws_ms=-1 rss_kib=655360 pss_kib=655360 anon_kib=600000 status=137
EOF
out=$(awk -f bench/snapshot/summarize.awk "$T/runs")
check "awk: boot medians" "launch to ready +2000.0 \(1000.0-3000.0\) +2000.0 \(2000.0-2000.0\) +1.000" "$out"
check "awk: create medians" "snapshot create / migrate +30.0 \(20.0-40.0\) +100.0 \(100.0-100.0\) +0.300" "$out"
check "awk: restore" "launch to pong \(ms\) +60.0 \(50.0-70.0\) +- +- +400.0 \(400.0-400.0\)" "$out"
check "awk: exits" "nested page faults +70 \(60-80\) +- +- +500 \(500-500\)" "$out"
check "awk: PSS per VM" "PSS per VM \(MiB\) +2.0 \(2.0-2.0\) +64.0 \(64.0-64.0\)" "$out"
check "awk: ratio to boot" "flint File / flint boot to ready +0.030  \(target <= 0.05: met\)" "$out"
check "awk: a ratio without a target" "10 VMs, PSS all, flint / QEMU +0.031$" "$out"
check "awk: ratio to QEMU" "flint File / QEMU +0.150  \(target <= 0.25: met\)" "$out"
check "awk: create ratio" "flint / QEMU migrate +0.300  \(target <= 0.5: met\)" "$out"
check "awk: a failed run" "create,qemu: 1 runs failed" "$out"
out=$(sed 's/^run mode=file vmm=flint n=1 ok=1 pong_ms=[0-9]*/&0/' "$T/runs" | awk -f bench/snapshot/summarize.awk)
check "awk: a missed target" "flint File / QEMU +1.500  \(target <= 0.25: MISSED\)" "$out"
exit $fail
