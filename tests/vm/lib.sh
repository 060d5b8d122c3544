# Helpers for tests/vm/scenarios/*.sh (POSIX sh; busybox in L1, dash on
# hosts). Source with:  . "$(dirname "$0")/../lib.sh"
#
# Conventions: exit 0 = pass, 77 = skip, anything else = fail; the last line
# printed is the reason the runner shows. The runner provides FLINT, KERNEL,
# INITRD and BZIMAGE.

T=$(mktemp -d /tmp/flint-scenario.XXXXXX) || exit 2
trap 'rm -rf "$T"' EXIT
OUT=$T/out
ERR=$T/err
status=0

# wait_gone PID SECONDS: until PID has ended, or SECONDS have passed
# (looked at every 0.1 s); fails if it still runs.
wait_gone() {
	wait_n=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null && [ $wait_n -gt 0 ]; do
		sleep 0.1
		wait_n=$((wait_n - 1))
	done
	! kill -0 "$1" 2>/dev/null
}

# wait_gone_or_show PID SECONDS WHAT: wait_gone, and if PID still runs,
# each of its threads' name, state and wait channel (where a hang is).
wait_gone_or_show() {
	wait_gone "$1" "$2" && return 0
	echo "flint still runs $2 s after $3; its threads:"
	for t in /proc/$1/task/*; do
		echo "  $(cat "$t/comm") $(sed 's/.*) //; s/ .*//' "$t/stat") $(cat "$t/wchan")"
	done
	return 1
}

# start_uffd MEMFILE: flint-uffd serving MEMFILE on $T/handler.sock, in the
# background ($upid), its output in $T/uffd.out and .err; waits until it
# listens.
start_uffd() {
	[ -x "$TOOLS/flint-uffd" ] || fail "no $TOOLS/flint-uffd (make test-tools)"
	rm -f "$T/handler.sock"
	"$TOOLS/flint-uffd" "$T/handler.sock" "$1" >"$T/uffd.out" 2>"$T/uffd.err" 7>&- &
	upid=$!
	i=0
	while [ ! -S "$T/handler.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$T/handler.sock" ] || fail "flint-uffd did not listen: $(cat "$T/uffd.err")"
}

# whole_lines FILE: FILE's lines, carriage returns removed, without a last
# line the guest had not finished. A pause or a snapshot can fall inside a
# line of the console: a restored guest prints the rest of it.
whole_lines() {
	if [ -n "$(tail -c 1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi | tr -d '\r'
}

# rig_fault FILE: succeeds, printing why, when FILE (the stderr of a flint
# that ran with --stats and has ended) shows one of the two ways the rig's
# emulated nested SVM stops a guest (tests/vm/README.md; snapshots of both
# in bench/nested/README.md, 2026-12-05). The line says "emulation error",
# which run-scenarios retries once in the rig.
# - L1's own state resumed as the guest's: the vCPU left the guest in L1's
#   module area (0xffffffffc...; the guest kernel has no modules) after at
#   least 100000 emulated instructions (a healthy guest emulates a handful).
# - A timer interrupt taken at the guest's idle `hlt` itself (after `sti`,
#   before `hlt`: its shadow; a sound CPU takes it before `sti` or after
#   `hlt`): it woke a task and stopped the tick, then `hlt` ran anyway. The
#   guest halts for good with its LAPIC timer masked, nothing pending.
rig_fault() {
	rf_n=$(sed -n 's/.*insn_emulation=\([0-9]*\).*/\1/p' "$1" | tail -n 1)
	rf_halts=$(sed -n 's/.*halt_exits=\([0-9]*\).*/\1/p' "$1" | tail -n 1)
	rf_rip=$(sed -n 's/.*left the guest at: .*rip=\(0x[0-9a-f]*\).*/\1/p' "$1" | tail -n 1)
	case $rf_rip in
	0xffffffffc*)
		[ "${rf_n:-0}" -ge 100000 ] || return 1
		echo "emulation error: the vCPU looped in KVM's instruction emulator at" \
			"rip=$rf_rip, in L1's module area ($rf_n emulated instructions):" \
			"L1's own state resumed as the guest's"
		;;
	*)
		[ "${rf_halts:-0}" -ge 1 ] &&
			grep -q "local APIC: .*, masked, no TSC deadline, in service none, pending none" "$1" ||
			return 1
		echo "emulation error: the guest halted at rip=$rf_rip for good, its LAPIC" \
			"timer masked and nothing pending: a timer interrupt taken at its idle hlt"
		;;
	esac
}

# Centiseconds since boot.
cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}" | sed 's/^0*//; s/^$/0/'
}

skip() {
	echo "$*"
	exit 77
}

# Shows the tail of the last flint run's stdout and stderr, then the reason.
fail() {
	if [ -s "$OUT" ] || [ -s "$ERR" ]; then
		echo "--- flint stdout (last 15 lines):"
		tr -d '\r' <"$OUT" | tail -n 15
		echo "--- flint stderr (last 15 lines):"
		tail -n 15 "$ERR"
	fi
	echo "$*"
	exit 1
}

need_flint() {
	[ -x "$FLINT" ] || skip "no flint binary at $FLINT (make build/flint)"
}

need_guest() {
	need_flint
	[ -f "$KERNEL" ] || skip "no guest kernel at $KERNEL (make kernel)"
	[ -f "$INITRD" ] || skip "no guest initramfs at $INITRD (make rootfs)"
}

# flint ARGS...: runs flint with stdin closed; stdout (console, CRs removed)
# goes to $OUT, stderr to $ERR; sets $status and $took (seconds, 1 decimal).
flint() {
	status=0
	t0=$(cs)
	"$FLINT" "$@" </dev/null >"$T/raw" 2>"$ERR" || status=$?
	t1=$(cs)
	tr -d '\r' <"$T/raw" >"$OUT"
	took=$(($t1 - $t0))
	took="$((took / 100)).$((took % 100 / 10))"
	echo "flint $* -> status $status in $took s"
	if [ "${RIG_VERBOSE:-0}" = 1 ]; then
		sed 's/^/  out: /' "$OUT"
		sed 's/^/  err: /' "$ERR"
	fi
}

# boot ARGS...: flint with the default guest: 128M, console on stdout.
boot() {
	flint --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio "$@"
}

expect_status() {
	[ "$status" = "$1" ] || fail "expected exit status $1${2:+ ($2)}, got $status"
}

expect_failure() {
	[ "$status" != 0 ] || fail "expected a non-zero exit status${1:+ ($1)}, got 0"
}

# expect_out REGEX [WHAT]: the console output has a line matching REGEX.
expect_out() {
	grep -Eq -- "$1" "$OUT" || fail "console output lacks ${2:-/$1/}"
}

# expect_err REGEX [WHAT]: stderr matches REGEX (case-insensitive).
expect_err() {
	grep -Eiq -- "$1" "$ERR" || fail "stderr lacks ${2:-/$1/}"
}

# expect_quick SECONDS: the last run finished within SECONDS.
expect_quick() {
	[ "${took%.*}" -lt "$1" ] || fail "took $took s, expected under $1 s"
}
