#!/bin/sh
# bench/serve, inside the rig's L1 (or on a host with hardware KVM): one
# small function (a line in, "pong LINE" out) served five ways, each at
# concurrency 1, 4 and 8, N requests each (after a warm-up), timed by
# servebench from the request sent to its whole answer:
#   serve-reset   flint serve, per-request isolation (--per-request reset,
#                 the default), min_warm 8: VMs restored ahead, each reset
#                 in place to its snapshot after every request
#   serve-restore flint serve --per-request restore, min_warm 8: a VM
#                 restored paused ahead, released for the request, gone after
#   serve-reuse   flint serve, "reuse": VMs serve requests in turn
#   serve-jail, serve-restore-jail
#                 the first two with --jail, after the others (their
#                 servers stopped): every VM's flint under flint-jail as a
#                 uid of its own, in its cgroup (when the static flint and
#                 flint-jail are in $TOOLS)
#   run-cold      a cold `flint run` per request (boot, agent, command)
#   qemu-restore  QEMU -M microvm restored from its migration file per
#                 request (the same kernel, flint's initramfs, the function
#                 a shell loop on its console), driven by snapbench
#   in-l1.sh SERVEBENCH SNAPBENCH [N]
# Environment: KERNEL, INITRD, ROOTFS, FLINT as the rig sets them;
# QEMU_ACCEL (default "-accel kvm -cpu host").
set -u
SVB=$1
SB=$2
N=${3:-20}
CS=${CS:-1 4 8}
MEM=128
QEMU_ACCEL=${QEMU_ACCEL:--accel kvm -cpu host}
OUT=${RIG_OUT:-/tmp}/serve-runs.txt

die() {
	echo "bench: $*"
	exit 2
}
for f in "$SVB" "$SB" "$FLINT"; do [ -x "$f" ] || die "not executable: $f"; done
for f in "$KERNEL" "$INITRD" "$ROOTFS"; do [ -f "$f" ] || die "no file $f"; done
command -v qemu-system-x86_64 >/dev/null || die "QEMU is not here"

D=$(mktemp -d /tmp/servebench.XXXXXX) || die "mktemp failed"
spid=
cleanup() {
	# shellcheck disable=SC2086 # pids
	[ -n "$spid" ] && kill $spid 2>/dev/null && wait $spid 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
: >"$OUT"

# The function. No "=" and no double quote: QEMU's copy goes through the
# kernel command line.
# shellcheck disable=SC2016 # $l is the guest shell's
FN='read l; echo pong $l'
# shellcheck disable=SC2016
QGUEST='stty -echo; echo bench-ready; while read l; do echo pong $l; done'
QEMU_MACHINE="-M microvm,x-option-roms=off,rtc=off $QEMU_ACCEL -m $MEM -smp 1 -nodefaults
 -no-user-config -display none -serial stdio -no-reboot -global migration.store-global-state=off"
QCMDLINE="console=ttyS0 reboot=t panic=-1 quiet -- sh -c \"$QGUEST\""

# row NAME C http|exec SERVEBENCH-ARGS...: one measurement, its line kept.
row() {
	name=$1 c=$2 mode=$3
	shift 3
	line=$("$SVB" "$mode" -c "$c" -n "$N" -w 2 "$@" 2>"$D/err") || true
	[ -n "$line" ] || line="mode=? c=$c ok=0 errors=$N"
	echo "row $name $line" | tee -a "$OUT"
	[ -s "$D/err" ] && sed 's/^/  /' "$D/err" | head -n 3
}

# Two flint serves: the default (per-request VMs reset in place) with a
# per-request and a reuse function, and --per-request restore with one.
start_serve() { # NAME OPTIONS...
	n=$1
	shift
	"$FLINT" serve --listen "unix:$D/$n.sock" --state-dir "$D/st-$n" --max-vms 24 \
		--fn-queue 16 "$@" >"$D/$n.out" 2>"$D/$n.err" &
	eval "pid_$n=\$!"
	i=0
	while [ ! -S "$D/$n.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	[ -S "$D/$n.sock" ] || { cat "$D/$n.err"; die "flint serve $n did not start"; }
}
start_serve a
start_serve b --per-request restore
spid="$pid_a $pid_b"
# Every function is registered with a prepare that runs the shell once, so
# that its snapshot's page cache holds it, as QEMU's running loop does;
# without one each request of a VM reset or restored from the snapshot
# reads the shell from the disk again (in the rig about 75 ms a request
# instead of 30).
register() { # SERVER NAME EXTRA-JSON
	printf '{"command": ["sh", "-c", "%s"], "prepare": ["sh", "-c", "true"], "kernel": "%s", "rootfs": "%s", "mem_mib": %d, "max_concurrency": 8%s}' \
		"$FN" "$KERNEL" "$ROOTFS" $MEM "$3" >"$D/fn.json"
	code=$(curl -s --unix-socket "$D/$1.sock" -X PUT -o "$D/body" -w '%{http_code}' \
		--data-binary @"$D/fn.json" "http://flint/functions/$2")
	[ "$code" = 201 ] || { cat "$D/body"; tail -n 5 "$D/$1.err"; die "registering $2 gave $code"; }
	echo "registered $2: $(sed -n 's/.*registered '"$2"' (\(.*\)).*/\1/p' "$D/$1.err")"
}
register a reset ', "min_warm": 8'
register a reuse ', "isolation": "reuse"'
register b restore ', "min_warm": 8'
sleep 5 # the warm pools fill

# QEMU's saved state: booted once to the function's loop, migrated to a file.
"$SB" create -v qemu -S "$D/qmp.sock" -o "$D/q.mig" -x fd -t 120 -- \
	qemu-system-x86_64 $QEMU_MACHINE -kernel "$KERNEL" -initrd "$INITRD" \
	-append "$QCMDLINE" -qmp "unix:$D/qmp.sock,server=on,wait=off" >"$D/qcreate" 2>&1 ||
	{ cat "$D/qcreate"; die "QEMU's snapshot failed"; }
echo "QEMU saved: $(cat "$D/qcreate")"

# flint serve's rows warm up with 16 requests, C at a time, so that the
# warm VMs have each taken one: a VM's first request after its restore
# pays for the restore's lazy start (its memory faulted in from the file,
# vsock's reset; about 0.4 s more in the rig), which a VM reset in place
# pays once in up to 1000 requests; N requests against 8 fresh VMs would
# count it far more often than a server that runs on does.
serve_rows() { # C SERVER:FUNCTION...
	c=$1
	shift
	for fn in "$@"; do
		row "serve-${fn#*:}" "$c" http -s "$D/${fn%%:*}.sock" -u "/functions/${fn#*:}/invoke" -b 'x
' -e 'pong x
' -w 16
	done
}
for c in $CS; do
	serve_rows "$c" a:reset b:restore a:reuse
	row run-cold "$c" exec -b 'x
' -e 'pong x' -- "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --mem ${MEM}M -- sh -c "$FN"
	# shellcheck disable=SC2086 # QEMU_MACHINE is words
	row qemu-restore "$c" exec -e 'vmm=qemu' -- "$SB" restore -v qemu -m restore \
		-S "$D/qmp{n}.sock" -i "$D/q.mig" -t 60 -- qemu-system-x86_64 $QEMU_MACHINE \
		-kernel "$KERNEL" -initrd "$INITRD" -append "$QCMDLINE" \
		-qmp "unix:$D/qmp{n}.sock,server=on,wait=off" -incoming fd:3
done

# stop_servers NAME...: metrics, then stop them; nothing may be left.
stop_servers() {
	for n in "$@"; do
		curl -s --unix-socket "$D/$n.sock" http://flint/metrics |
			grep -E '^flint_serve_(invocations_total|vm_rss_bytes|vms_alive|reset_seconds_(sum|count))' |
			sed "s/^/metrics $n: /"
	done
	# shellcheck disable=SC2086 # the servers' pids
	kill $spid
	# shellcheck disable=SC2086
	wait $spid
	spid=
	left=$(ps -o pid,args 2>/dev/null | grep -c "[f]lint run\|[f]lint --restore" || true)
	echo "flint processes left after flint serve $* stopped: $left"
}
stop_servers a b

# Then the same two per-request ways with --jail, alone as the first two
# ran: every VM's flint under flint-jail as a uid of its own, in its
# cgroup (when the static flint and flint-jail are here).
if [ -x "${TOOLS:-}/flint-jail" ] && [ -x "${TOOLS:-}/flint" ]; then
	# The jails' uids read the snapshots: not under $D (0700).
	JST=/tmp/servebench-jail.$$
	grep -qE ' cgroup2? ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
	for n in c d; do
		mode=reset
		[ $n = d ] && mode=restore
		start_serve $n --state-dir "$JST-$n" --per-request $mode --jail "$TOOLS/flint-jail" \
			--flint "$TOOLS/flint" --uid-range 3000-3099 --chroot-base-dir "$D/jail-$n" \
			--parent-cgroup servebench-$n
	done
	spid="$pid_c $pid_d"
	register c jail ', "min_warm": 8'
	register d restore-jail ', "min_warm": 8'
	sleep 5
	for c in $CS; do
		serve_rows "$c" c:jail d:restore-jail
	done
	stop_servers c d
	echo "jails left: $(ls "$D/jail-c/flint" "$D/jail-d/flint" 2>/dev/null | grep -c fs-)"
fi
awk -f "$(dirname "$0")/summarize.awk" "$OUT"
