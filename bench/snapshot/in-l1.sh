# bench/snapshot, the part that runs inside the rig's L1 (or on a host with
# hardware KVM): the same guest under flint and QEMU -M microvm, booted,
# paused and saved, then restored to its first response, runs interleaved.
# Usage: sh in-l1.sh SNAPBENCH [RUNS [MULTI-RUNS]]
#   RUNS        boots and snapshots, then restores of each kind (default 10)
#   MULTI-RUNS  rounds of $NVMS VMs restored at once, per VMM (default 3)
# Prints each run ("run mode=... vmm=..."), then the tables
# (summarize.awk); the run lines also go to $RIG_OUT/snapshot-runs.txt.
#
# The guest (build/vmlinux, build/initramfs.cpio.gz, 128 MiB, 1 vCPU)
# prints "bench-ready", then answers every line on its console with
# "pong LINE". Phases:
#  1. RUNS rounds of, for each VMM (alternating which goes first): a cold
#     boot, launch to "bench-ready" and, "x" sent then, to "pong x"; then
#     the same boot with the control socket, paused after its pong, and a
#     full snapshot timed (flint: PUT /snapshot/create; QEMU: migrate to a
#     file).
#  2. one flint restore of the last snapshot records a loading set: it
#     answers one pong, then SIGTERM (flint writes the set as it stops).
#  3. restore, RUNS rounds of: flint File, flint Uffd (flint-uffd started
#     first, not timed), flint File with the loading set, QEMU -incoming;
#     QEMU first in odd rounds, last in even ones. Launch to "pong x" with
#     "x" sent once the VMM says its VM runs, exits by reason up to the pong
#     (kvm_exit histogram, reset before each run), RSS/PSS at the pong.
#  4. MULTI-RUNS rounds of NVMS VMs restored at once from one snapshot,
#     flint (File) and QEMU alternating: time to the last pong, memory.
#
# Environment (the selftest sets these; the defaults are the benchmark's):
#   KERNEL, INITRD, FLINT   as the rig sets them; QEMU_KERNEL (default
#   $KERNEL), QEMU_ACCEL (default "-accel kvm -cpu host"), QEMU_MIG (fd, the
#   default: QEMU writes and reads the file itself, migrate "fd:" and
#   -incoming fd:3; or exec: "exec:cat > FILE" and "exec:cat FILE"), NVMS
#   (default 10), NO_EXITS=1 (no kvm_exit histogram), UFFD (flint-uffd,
#   default $TOOLS/flint-uffd).
set -u
SB=$1
RUNS=${2:-10}
MULTI=${3:-3}
NVMS=${NVMS:-10}
MEM=128
DIR=$(dirname "$0")
UFFD=${UFFD:-${TOOLS:-build/tools}/flint-uffd}
QEMU_KERNEL=${QEMU_KERNEL:-$KERNEL}
QEMU_ACCEL=${QEMU_ACCEL:--accel kvm -cpu host}
QEMU_MIG=${QEMU_MIG:-fd}
# As bench/boot runs QEMU (reboot=t: see bench/boot/README.md); the
# migration's global state left out, so that the restored QEMU runs at once
# although the saved one was stopped (QEMU otherwise restores it stopped).
QEMU_MACHINE="-M microvm,x-option-roms=off,rtc=off $QEMU_ACCEL -m $MEM -smp 1 -nodefaults
 -no-user-config -display none -serial stdio -no-reboot -global migration.store-global-state=off"
# No "=" and no double quote in it: it goes through the kernel command line.
# shellcheck disable=SC2016 # $l is the guest shell's
GUEST='stty -echo; echo bench-ready; while read l; do echo pong $l; done'
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet -- sh -c \"$GUEST\""
T_BOOT=120    # seconds for a boot and its snapshot
T_RESTORE=60  # for one restore
T_MULTI=300   # for NVMS restores at once
OUT=${RIG_OUT:-/tmp}/snapshot-runs.txt

die() {
	echo "bench: $*"
	exit 2
}
[ -x "$SB" ] || die "no snapbench at $SB"
[ -x "$FLINT" ] || die "no flint at $FLINT"
[ -f "$KERNEL" ] || die "no guest kernel at $KERNEL"
[ -f "$INITRD" ] || die "no guest initramfs at $INITRD"
[ -x "$UFFD" ] || die "no flint-uffd at $UFFD (make \$BUILD/tools/flint-uffd)"
case $QEMU_MIG in fd | exec) ;; *) die "QEMU_MIG is fd or exec, not $QEMU_MIG" ;; esac
if [ "${NO_EXITS:-0}" = 1 ]; then
	command -v qemu-system-x86_64 >/dev/null || die "QEMU is not here"
	HIST=
else
	. "$DIR/../exits.sh"
	exits_setup
fi

D=$(mktemp -d /tmp/snapbench.XXXXXX) || die "mktemp failed"
upid=
cleanup() {
	[ -n "$upid" ] && kill "$upid" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT

# A fresh exit histogram before a single restore; none for the others.
hist_on() {
	[ -n "$HIST" ] || return 0
	exits_reset
	H=$HIST
}
hist_off() {
	[ -n "$HIST" ] && exits_stop
	H=
}
H=

boot_flint() {
	"$SB" boot -v flint -t $T_BOOT -- "$FLINT" --kernel "$KERNEL" --initrd "$INITRD" \
		--mem ${MEM}M --vcpus 1 --cmdline "$CMDLINE"
}

boot_qemu() {
	# shellcheck disable=SC2086 # QEMU_MACHINE is words
	"$SB" boot -v qemu -t $T_BOOT -- qemu-system-x86_64 $QEMU_MACHINE -kernel "$QEMU_KERNEL" \
		-initrd "$INITRD" -append "$CMDLINE"
}

create_flint() {
	rm -f "$D/f.state" "$D/f.mem"
	"$SB" create -v flint -S "$D/api.sock" -s "$D/f.state" -m "$D/f.mem" -t $T_BOOT -- \
		"$FLINT" --api-sock "$D/api.sock" --kernel "$KERNEL" --initrd "$INITRD" \
		--mem ${MEM}M --vcpus 1 --cmdline "$CMDLINE" --level Debug
}

create_qemu() {
	rm -f "$D/q.mig"
	# shellcheck disable=SC2086 # QEMU_MACHINE is words
	"$SB" create -v qemu -S "$D/qmp.sock" -o "$D/q.mig" -x "$QEMU_MIG" -t $T_BOOT -- \
		qemu-system-x86_64 $QEMU_MACHINE -kernel "$QEMU_KERNEL" -initrd "$INITRD" \
		-append "$CMDLINE" -qmp "unix:$D/qmp.sock,server=on,wait=off"
}

# restore_flint MODE COUNT TIMEOUT FLINT-ARGS...: COUNT flint restores of
# the snapshot at once (-k TERM in MODE record).
restore_flint() {
	mode=$1 count=$2 t=$3
	shift 3
	stop=
	[ "$mode" = record ] && stop="-k TERM"
	# shellcheck disable=SC2086 # $stop and ${H:+-h $H} are words
	"$SB" restore -v flint -m "$mode" -n "$count" ${H:+-h "$H"} $stop -t "$t" -- \
		"$FLINT" --restore "$D/f.state" --level Debug "$@"
}

# restore_qemu MODE COUNT TIMEOUT
restore_qemu() {
	mode=$1 count=$2 t=$3
	if [ "$QEMU_MIG" = fd ]; then
		set -- -i "$D/q.mig"
		incoming=fd:3
	else
		set --
		incoming="exec:cat $D/q.mig"
	fi
	# shellcheck disable=SC2086
	"$SB" restore -v qemu -m "$mode" -n "$count" ${H:+-h "$H"} -S "$D/qmp{i}.sock" "$@" -t "$t" -- \
		qemu-system-x86_64 $QEMU_MACHINE -kernel "$QEMU_KERNEL" -initrd "$INITRD" \
		-append "$CMDLINE" -qmp "unix:$D/qmp{i}.sock,server=on,wait=off" -incoming "$incoming"
}

# flint-uffd serving f.mem on uffd.sock (one VM per start), up within 10 s.
start_uffd() {
	rm -f "$D/uffd.sock"
	"$UFFD" "$D/uffd.sock" "$D/f.mem" >"$D/uffd.log" 2>&1 &
	upid=$!
	n=0
	while [ ! -S "$D/uffd.sock" ] && [ $n -lt 200 ]; do
		kill -0 "$upid" 2>/dev/null || break
		sleep 0.05
		n=$((n + 1))
	done
	[ -S "$D/uffd.sock" ] && return 0
	echo "# flint-uffd did not listen on $D/uffd.sock within 10 s: $(tail -n 3 "$D/uffd.log")"
	stop_uffd
	return 1
}

# The handler ends once its VM is gone; killed if it has not within 5 s.
stop_uffd() {
	n=0
	while kill -0 "$upid" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.05
		n=$((n + 1))
	done
	if kill -0 "$upid" 2>/dev/null; then
		echo "# flint-uffd (pid $upid) outlived its VM; killing it"
		kill "$upid"
	fi
	wait "$upid" 2>/dev/null
	upid=
}

restore_one() {
	hist_on
	case $1 in
	file) restore_flint file 1 $T_RESTORE --mem-file "$D/f.mem" ;;
	uffd)
		if start_uffd; then
			restore_flint uffd 1 $T_RESTORE --uffd-sock "$D/uffd.sock"
			stop_uffd
		else
			echo "run mode=uffd vmm=flint n=1 ok=0 pong_ms=-1"
		fi
		;;
	ws) restore_flint ws 1 $T_RESTORE --mem-file "$D/f.mem" --workset "$D/ws" ;;
	qemu) restore_qemu restore 1 $T_RESTORE ;;
	esac
	hist_off
}

{
	echo "# $(qemu-system-x86_64 --version | head -n 1); QEMU migration: $QEMU_MIG"
	echo "# $(uname -sr), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"
	i=1
	while [ $i -le "$RUNS" ]; do
		if [ $((i % 2)) = 1 ]; then
			boot_flint; create_flint; boot_qemu; create_qemu
		else
			boot_qemu; create_qemu; boot_flint; create_flint
		fi
		i=$((i + 1))
	done
	flint_ok=1 qemu_ok=1
	[ -s "$D/f.state" ] && [ -s "$D/f.mem" ] || { flint_ok=0; echo "# bench: no flint snapshot: its restores are skipped"; }
	[ -s "$D/q.mig" ] || { qemu_ok=0; echo "# bench: no QEMU migration file: its restores are skipped"; }
	if [ $flint_ok = 1 ]; then
		echo "# snapshots: flint state $(wc -c <"$D/f.state") B, memory $(du -k "$D/f.mem" | cut -f1) KiB allocated"
		rm -f "$D/ws"
		restore_flint record 1 $T_RESTORE --mem-file "$D/f.mem" --record-workset "$D/ws"
		[ -s "$D/ws" ] && echo "# loading set: $(wc -c <"$D/ws") B" ||
			echo "# bench: no loading set recorded: the File+set restores will fail"
	fi
	[ $qemu_ok = 1 ] && echo "# snapshots: QEMU migration file $(du -k "$D/q.mig" | cut -f1) KiB"
	i=1
	while [ $i -le "$RUNS" ]; do
		[ $((i % 2)) = 1 ] && [ $qemu_ok = 1 ] && restore_one qemu
		if [ $flint_ok = 1 ]; then
			restore_one file
			restore_one uffd
			restore_one ws
		fi
		[ $((i % 2)) = 0 ] && [ $qemu_ok = 1 ] && restore_one qemu
		i=$((i + 1))
	done
	i=1
	while [ $i -le "$MULTI" ]; do
		if [ $((i % 2)) = 1 ]; then
			[ $flint_ok = 1 ] && restore_flint multi "$NVMS" $T_MULTI --mem-file "$D/f.mem"
			[ $qemu_ok = 1 ] && restore_qemu multi "$NVMS" $T_MULTI
		else
			[ $qemu_ok = 1 ] && restore_qemu multi "$NVMS" $T_MULTI
			[ $flint_ok = 1 ] && restore_flint multi "$NVMS" $T_MULTI --mem-file "$D/f.mem"
		fi
		i=$((i + 1))
	done
} 2>&1 | tee "$OUT"
awk -v nvms="$NVMS" -f "$DIR/summarize.awk" "$OUT"
