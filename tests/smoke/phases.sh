# flint's phase events for `flint bench` (--phase-fd N, bench/phase.h)
# with the tiny guest: the boot's phases to init, each once and in order,
# and KVM's exit counters at the end, written from the main and vCPU
# threads under their seccomp filters; with four vCPUs, all of them
# (vcpus-started too); a restore, its own phases and none of a boot's;
# flint run --attach (the stand-in agent, no VM): process, agent-ready and
# first-output from the run thread; a descriptor that is not open: 125.
# A Linux guest's (agent, first output with counters, restore):
# tests/vm/scenarios/g0-bench-phases.sh.
# Sourced by run.sh, which provides FLINT, OUT, report(), the tiny guests
# and, when python3 is here, fake_agent().

# phases_ok FILE EXITS NAME...: FILE's lines are phase or exits lines,
# each NAME there once and no earlier than the NAME before it, each of
# $UNORDERED there once, no other phase; EXITS=1: one exits line, exits >
# 0; EXITS=0: none. Sets why.
phases_ok() {
	f=$1 exits=$2
	shift 2
	why=$(awk -v want="$*" -v exits="$exits" -v any="${UNORDERED:-}" '
		BEGIN {
			n = split(want, w, " "); for (i = 1; i <= n; i++) pos[w[i]] = i
			na = split(any, a, " "); for (i = 1; i <= na; i++) pos[a[i]] = 0
		}
		/^phase [a-z-]+ [0-9]+$/ {
			if (!($2 in pos)) { print "unexpected phase " $2; exit 1 }
			if ($2 in t) { print "phase " $2 " twice"; exit 1 }
			t[$2] = $3 + 0; next
		}
		/^exits( [a-z_]+=[0-9]+)+$/ { nex++; split($2, kv, "="); total = kv[2] + 0; next }
		{ print "malformed line: " $0; exit 1 }
		END {
			for (i = 1; i <= na; i++)
				if (!(a[i] in t)) { print "no phase " a[i]; exit 1 }
			for (i = 1; i <= n; i++) {
				if (!(w[i] in t)) { print "no phase " w[i]; exit 1 }
				if (i > 1 && t[w[i]] < t[w[i - 1]]) { print w[i] " before " w[i - 1]; exit 1 }
			}
			if (exits && (nex != 1 || !(total > 0))) { print "no exits line with exits > 0"; exit 1 }
			if (!exits && nex) { print "an exits line without a VM"; exit 1 }
		}' "$f")
}

# phase_run NAME STATUS EXITS PHASES -- FLINT-ARGS: flint with fd 3 on
# $OUT/NAME.ph; its status and phases_ok's verdict.
phase_run() {
	name=$1 want=$2 exits=$3 phases=$4
	shift 5
	timeout 20 "$FLINT" "$@" 3>"$OUT/$name.ph" </dev/null >"$OUT/$name.out" 2>"$OUT/$name.err"
	got=$?
	why=""
	[ "$got" = "$want" ] || why="status $got, expected $want"
	# shellcheck disable=SC2086 # the phases are words
	[ -z "$why" ] && phases_ok "$OUT/$name.ph" "$exits" $phases
	[ -n "$why" ] && cat "$OUT/$name.ph" >>"$OUT/$name.err"
	report "$name" "$why" "$OUT/$name.err"
}

phase_run phases-boot 42 1 "process vm-created vcpus-started kernel-entry init" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --phase-fd 3
# Four vCPUs, a guest that stays (the exit device's guest ends before the
# last vCPUs start): every phase, vcpus-started out of the order checked
# (the boot vCPU's first exit may come before the last vCPU's first
# KVM_RUN); SIGTERM ends it, the counters then.
"$FLINT" --kernel "$OUT/tiny-HANG.elf" --vcpus 4 --phase-fd 3 3>"$OUT/phases-smp.ph" </dev/null \
	>"$OUT/phases-smp.out" 2>"$OUT/phases-smp.err" &
smp=$!
n=0
while ! grep -q '^phase vcpus-started ' "$OUT/phases-smp.ph" && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
kill -TERM "$smp"
wait "$smp"
got=$?
why=""
[ $got = 143 ] || why="status $got, expected 143 (SIGTERM)"
UNORDERED=vcpus-started
[ -z "$why" ] && phases_ok "$OUT/phases-smp.ph" 1 process vm-created kernel-entry init
UNORDERED=
[ -n "$why" ] && cat "$OUT/phases-smp.ph" >>"$OUT/phases-smp.err"
report phases-smp "$why" "$OUT/phases-smp.err"
# A restore of snapshot.sh's counting guest: its own phases in order and
# none of a boot's; SIGTERM ends it, the counters then.
if [ -f "$OUT/snap/full.state" ]; then
	"$FLINT" --restore "$OUT/snap/full.state" --mem-file "$OUT/snap/full.mem" --phase-fd 3 \
		3>"$OUT/phases-restore.ph" </dev/null >"$OUT/phases-restore.out" \
		2>"$OUT/phases-restore.err" &
	rst=$!
	n=0
	while ! grep -q '^phase resumed ' "$OUT/phases-restore.ph" && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	sleep 0.2
	kill -TERM "$rst"
	wait "$rst"
	got=$?
	why=""
	[ $got = 143 ] || why="status $got, expected 143 (SIGTERM)"
	[ -z "$why" ] && phases_ok "$OUT/phases-restore.ph" 1 process state-read memory-mapped resumed
	[ -n "$why" ] && cat "$OUT/phases-restore.ph" >>"$OUT/phases-restore.err"
	report phases-restore "$why" "$OUT/phases-restore.err"
else
	echo "SKIP phases-restore: no snapshot from snapshot.sh (no curl)"
fi
check phases-closed-fd 125 "" "--phase-fd 77: Bad file descriptor" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --phase-fd 77
if command -v python3 >/dev/null 2>&1; then
	fake_agent phases
	phase_run phases-attach 0 0 "process agent-ready first-output" -- \
		run --attach "$OUT/phases.sock" --phase-fd 3 -- echo hi
	kill "$fake_pid" 2>/dev/null
	wait "$fake_pid" 2>/dev/null
	rm -f "$OUT/phases.sock" "$OUT/phases.sock.ready"
else
	echo "SKIP phases-attach: no python3 for the stand-in agent"
fi
