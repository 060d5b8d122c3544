#!/bin/sh
# bench/run, inside the rig's L1 (or on a host with hardware KVM): a job
# in a small busybox userland (a directory image) three ways, N times each,
# interleaved (flint, QEMU, gVisor in every iteration), timed from launch
# to the end:
#   true  the command `true`, end to end
#   job   a source tree (the tar given, ~4 MiB) copied in to /work, its
#         checksums (`find . -type f | sort | xargs sha256sum` in /work)
#         written to /tmp/out/sums, /tmp/out copied out; the sums are
#         checked against L1's own every run
# The ways:
#   flint   flint run --image DIR [--copy-in SRC:/work --copy-out
#           /tmp/out:RES] --timings -- CMD (timed by runbench exec)
#   qemu    QEMU -M microvm booting the same kernel, flint's root image
#           (init and agent) and the same ext4 that flint made of DIR (the
#           file in flint's cache), with flint's kernel command line and
#           a vhost-vsock-device; runbench qemu plays flint's part (the
#           agent's ready connection, copy_session for the copies, the
#           request, QEMU killed at the end)
#   gvisor  runsc do -root DIR -cwd / CMD (the tree in and the result out
#           as tar streams on its stdin and stdout), on each platform that
#           runs here (ptrace interleaved with the others; kvm probed
#           after them), or a line saying why it does not
#   in-l1.sh RUNBENCH SRC-TAR [N] [RUNSC]
# Environment: KERNEL, ROOTFS, FLINT as the rig sets them; QEMU_ACCEL
# (default "-accel kvm -cpu host"); GVISOR_PLATFORMS (interleaved, default
# "ptrace"), GVISOR_LATE (probed and run after the rest, default "kvm").
set -u
RB=$1
SRCTAR=$2
N=${3:-20}
RUNSC=${4:-$(command -v runsc || true)}
MEM=128
QEMU_ACCEL=${QEMU_ACCEL:--accel kvm -cpu host}
GVISOR_PLATFORMS=${GVISOR_PLATFORMS-ptrace}
GVISOR_LATE=${GVISOR_LATE-kvm}
OUT=${RIG_OUT:-/tmp}/run-runs.txt
DIR=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "bench: $*"
	exit 2
}

# runsc's sandbox pivot_roots, which L1's initramfs root (rootfs) always
# refuses: the whole bench (all three ways alike) then runs in a mount
# namespace whose root is a tmpfs holding L1's directories (bind mounts),
# moved over / as switch_root does (as tests/vm/scenarios/f0-net-user.sh
# runs passt).
if [ -z "${RUNBENCH_ROOTED:-}" ] && [ -n "$RUNSC" ] &&
	[ "$(awk '$2 == "/" { print $3; exit }' /proc/mounts)" = rootfs ]; then
	NR=/runbench-root
	mkdir -p "$NR" && mount -t tmpfs runbench-root "$NR" || die "cannot mount a tmpfs on $NR"
	for d in /*; do
		[ "$d" = "$NR" ] && continue
		if [ -L "$d" ]; then
			cp -P "$d" "$NR/"
		elif [ -d "$d" ]; then
			mkdir "$NR$d" && mount --rbind "$d" "$NR$d" || die "cannot bind $d into $NR"
		fi
	done
	st=0
	RUNBENCH_ROOTED=1 unshare -m sh -c 'mount --make-rprivate / && cd "$0" && mount --move . / &&
		exec chroot . sh -c "cd \"\$0\" && exec sh \"\$@\"" "$@"' "$NR" "$PWD" "$0" "$@" || st=$?
	umount -R -l "$NR" 2>/dev/null
	rmdir "$NR" 2>/dev/null
	exit $st
fi

for f in "$RB" "$FLINT"; do [ -x "$f" ] || die "not executable: $f"; done
for f in "$KERNEL" "$ROOTFS" "$SRCTAR"; do [ -f "$f" ] || die "no file $f"; done
command -v qemu-system-x86_64 >/dev/null || die "QEMU is not here"
[ -c /dev/vhost-vsock ] || die "no /dev/vhost-vsock (vhost_vsock not loaded?)"
/usr/sbin/mke2fs -V 2>&1 | grep -q 'EXT2FS Library' ||
	die "no e2fsprogs mke2fs (flint run --image needs mke2fs -d; the rig carries it)"

D=$(mktemp -d /tmp/runbench.XXXXXX) || die "mktemp failed"
trap 'rm -rf "$D"' EXIT
: >"$OUT"
export FLINT_CACHE=$D/cache

# The userland: a static busybox and the applets the jobs use; a marker
# that says the image is the guest's /.
U=$D/userland
mkdir -p "$U/bin" "$U/etc"
bb=$(command -v busybox)
case $bb in /*) ;; *) bb=/bin/busybox ;; esac
cp "$bb" "$U/bin/busybox" || die "cannot copy $bb"
for a in sh true cat echo ls mkdir find sort xargs sha256sum tar test; do
	ln -s busybox "$U/bin/$a"
done
echo runbench-image >"$U/etc/marker"

# The tree and the checksums the job must give, made here with the same
# busybox applets.
SRC=$D/src
mkdir -p "$SRC" && tar -C "$SRC" -xf "$SRCTAR" || die "cannot unpack $SRCTAR"
(cd "$SRC" && find . -type f | sort | xargs sha256sum) >"$D/want" || die "checksums failed"
echo "tree: $(wc -l <"$D/want") files, $(du -sk "$SRC" | cut -f1) KiB (du), $(wc -c <"$SRCTAR") bytes as tar"

JOB='cd /work && mkdir -p /tmp/out && find . -type f | sort | xargs sha256sum >/tmp/out/sums'
CHECK='cat /proc/cmdline; cat /etc/marker; test -x /.flint/sbin/flint-agent && echo agent-at-.flint'

# flint's first run makes the ext4 image of the userland (in its cache);
# QEMU boots that very file. Its kernel command line, without flint's
# virtio_mmio.device= words, is QEMU's.
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --image "$U" -- sh -c "$CHECK" \
	</dev/null >"$D/fcheck" 2>"$D/ferr" || { cat "$D/ferr"; die "flint run --image failed"; }
grep -qx agent-at-.flint "$D/fcheck" && grep -qx runbench-image "$D/fcheck" ||
	{ cat "$D/fcheck" "$D/ferr"; die "flint's guest did not see the image and the agent"; }
set -- "$FLINT_CACHE"/images/*.ext4
[ $# = 1 ] && [ -f "$1" ] || die "expected one image in flint's cache, found: $*"
IMG=$1
FCMDLINE=$(head -n 1 "$D/fcheck")
echo "flint's kernel command line: $FCMDLINE"
echo "image: $IMG, $(wc -c <"$IMG") bytes, sha256 $(sha256sum "$IMG" | cut -c1-16)"
IMGSUM=$(sha256sum "$IMG" | cut -d' ' -f1)
BASE=
for w in $FCMDLINE; do
	case $w in virtio_mmio.device=*) ;; *) BASE="$BASE${BASE:+ }$w" ;; esac
done
# QEMU places virtio-mmio devices from microvm's last slot down in
# command-line order (slot 7 at 0xfeb00e00, IRQ 12; then 6, 5); its own
# kernel arguments are given here in that order (auto-kernel-cmdline=off),
# so that the root image is /dev/vda and the userland /dev/vdb as in flint.
QMMIO="virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11"
QMMIO="$QMMIO virtio_mmio.device=512@0xfeb00a00:10"
QAPPEND="$BASE $QMMIO"
echo "QEMU's kernel command line: $QAPPEND"
CID=100
# run_qemu RUNBENCH-OPTIONS...: runbench qemu with QEMU's command line and
# guest CID $CID (the caller takes a new one for each VM: a CID is free
# again only once vhost has let go of it).
run_qemu() {
	# shellcheck disable=SC2086 # QEMU_ACCEL is words
	"$RB" qemu -g $CID "$@" -- qemu-system-x86_64 \
		-M microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off \
		$QEMU_ACCEL -m $MEM -smp 1 -nodefaults -no-user-config -display none -serial stdio \
		-no-reboot -kernel "$KERNEL" -append "$QAPPEND" \
		-drive id=root,file="$ROOTFS",format=raw,if=none,readonly=on \
		-device virtio-blk-device,drive=root \
		-drive id=img,file="$IMG",format=raw,if=none,readonly=on \
		-device virtio-blk-device,drive=img \
		-device vhost-vsock-device,guest-cid=$CID
}

# QEMU's check: the same guest sees the image at / and flint's root at
# /.flint.
run_qemu -t 120 -O "$D/qcheck" -l "$D/qlog" -x sh -x -c -x "$CHECK" >"$D/qline" ||
	{ cat "$D/qline" "$D/qlog"; die "QEMU's check run failed"; }
CID=$((CID + 1))
grep -qx agent-at-.flint "$D/qcheck" && grep -qx runbench-image "$D/qcheck" ||
	{ cat "$D/qcheck" "$D/qlog"; die "QEMU's guest did not see the image and the agent"; }
echo "QEMU's guest /proc/cmdline: $(head -n 1 "$D/qcheck")"

# probe_gvisor PLATFORM: whether runsc do runs here on it (then added to
# $GV, with --ignore-cgroups in GVOPT_PLATFORM when it needs that), else a
# line saying why, for the table, and the fatal lines of its logs.
GV=
probe_gvisor() {
	p=$1
	rs="$RUNSC --root=$D/runsc-$p --platform=$p --network=none"
	# (not $CHECK: there is no flint root at /.flint here)
	# shellcheck disable=SC2086 # rs is words
	if out=$(timeout 90 $rs "do" -root "$U" -cwd / cat /etc/marker </dev/null 2>"$D/gerr") &&
		echo "$out" | grep -qx runbench-image; then
		GV="$GV $p"
		echo "gvisor-$p: runs"
		return 0
	fi
	# Once more with --ignore-cgroups: L1 mounts no cgroup controller.
	# shellcheck disable=SC2086
	if out=$(timeout 90 $rs --ignore-cgroups "do" -root "$U" -cwd / cat /etc/marker \
		</dev/null 2>"$D/gerr2") && echo "$out" | grep -qx runbench-image; then
		GV="$GV $p"
		eval "GVOPT_$p=--ignore-cgroups"
		echo "gvisor-$p: runs with --ignore-cgroups (without: $(tail -n 1 "$D/gerr"))"
		return 0
	fi
	# Its logs, once more with --debug: runsc's own error, the sandbox's
	# fatal lines.
	# shellcheck disable=SC2086
	timeout 90 $rs --ignore-cgroups --debug --debug-log="$D/rlog-$p/" "do" -root "$U" -cwd / true \
		</dev/null >/dev/null 2>&1
	why=$(cat "$D/rlog-$p"/*do* 2>/dev/null | sed -n 's/.*FATAL ERROR: //p' | head -n 1)
	[ -n "$why" ] || why=$(grep . "$D/gerr2" | tail -n 2 | tr '\n' ' ')
	why=$(echo "${why:-nothing on stderr}" | cut -c1-300)
	fatal=$(cat "$D/rlog-$p"/*boot* 2>/dev/null | grep -m 1 -E 'fatal error|panic:')
	echo "gvisor: $p does not run in the rig: $why${fatal:+ (the sandbox: $fatal)}" | tee -a "$OUT"
	for l in "$D/rlog-$p"/*; do
		echo "  $(basename "$l"):"
		grep -E -m 6 -A 2 'FATAL|fatal error|^\[signal|^signal|panic:|unexpected' "$l" |
			cut -c1-240 | sed 's/^/    /'
	done
	return 1
}
if [ -z "$RUNSC" ] || [ ! -x "$RUNSC" ]; then
	echo "gvisor: not run: no runsc here" | tee -a "$OUT"
	GVISOR_PLATFORMS=
	GVISOR_LATE=
else
	echo "runsc: $("$RUNSC" --version 2>&1 | head -n 1)"
	for p in $GVISOR_PLATFORMS; do probe_gvisor "$p"; done
fi

ok_all=1
# rec WAY JOB RUN LINE: keeps a result line; a failed run fails the bench.
# Run 0 is the warm-up: shown, not kept.
rec() {
	if [ "$3" = 0 ]; then
		echo "warm-up way=$1 job=$2 $4"
		return
	fi
	echo "res way=$1 job=$2 run=$3 $4" | tee -a "$OUT"
	case " $4 " in *" ok=1 "*) ;; *) ok_all=0 ;; esac
}

# check_sums FILE: the job's result is right.
check_sums() {
	if [ -f "$1" ] && cmp -s "$1" "$D/want"; then
		echo 1
	else
		echo 0
	fi
}

# flint JOB RUN: one flint run; its launch to agent ready, command and
# copy times from --timings, the rest (the end) what is left.
flint_run() {
	rm -rf "$D/res"
	if [ "$1" = true ]; then
		line=$("$RB" exec -E "$D/ferr" -- "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" \
			--image "$U" --timings -- true)
	else
		line=$("$RB" exec -E "$D/ferr" -- "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" \
			--image "$U" --timings --copy-in "$SRC:/work" --copy-out "/tmp/out:$D/res" \
			-- sh -c "$JOB")
	fi
	t=$(sed -n 's/.*launch to init \([0-9.]*\) ms, launch to agent ready \([0-9.]*\) ms, command \([0-9.]*\) ms.*/init_ms=\1 ready_ms=\2 cmd_ms=\3/p' "$D/ferr")
	[ "$1" = job ] && [ -n "$t" ] &&
		t="$t $(sed -n 's/.*, copy-in \([0-9.]*\) ms, copy-out \([0-9.]*\) ms.*/copyin_ms=\1 copyout_ms=\2/p' "$D/ferr")"
	ok=0
	case $line in *" status=0") ok=1 ;; esac
	[ "$1" = job ] && [ "$ok" = 1 ] && ok=$(check_sums "$D/res/sums")
	[ -n "$t" ] || ok=0
	rec flint "$1" "$2" "$line $t ok=$ok"
	[ "$ok" = 1 ] || sed 's/^/  flint: /' "$D/ferr" | tail -n 5
}

qemu_run() {
	rm -rf "$D/res"
	if [ "$1" = true ]; then
		line=$(run_qemu -t 300 -l "$D/qlog" -x true 2>"$D/qerr")
	else
		line=$(run_qemu -t 300 -l "$D/qlog" -i "$SRC:/work" -o "/tmp/out:$D/res" \
			-x sh -x -c -x "$JOB" 2>"$D/qerr")
	fi
	CID=$((CID + 1))
	ok=0
	case $line in *" status=0") ok=1 ;; esac
	[ "$1" = job ] && [ "$ok" = 1 ] && ok=$(check_sums "$D/res/sums")
	rec qemu "$1" "$2" "$line ok=$ok"
	[ "$ok" = 1 ] || { sed 's/^/  qemu: /' "$D/qerr"; tail -n 5 "$D/qlog" | sed 's/^/  qemu console: /'; }
}

# The tree goes in as a tar on runsc's stdin, the result comes out as one
# on its stdout.
GJOB='mkdir -p /work /tmp/out && cd /work && tar -xf - && find . -type f | sort | xargs sha256sum >/tmp/out/sums && tar -C /tmp -cf - out'
gvisor_run() { # PLATFORM JOB RUN
	rm -rf "$D/res" && mkdir -p "$D/res"
	opt=
	eval "opt=\${GVOPT_$1:-}"
	rs="$RUNSC --root=$D/runsc-$1 --platform=$1 --network=none $opt"
	if [ "$2" = true ]; then
		# shellcheck disable=SC2086 # rs is words
		line=$("$RB" exec -E "$D/gerr" -- $rs "do" -root "$U" -cwd / true)
	else
		# shellcheck disable=SC2016 # the inner shell's
		line=$("$RB" exec -E "$D/gerr" -- sh -c 'set -o pipefail; tar -C "$1" -cf - . |
			$2 do -root "$3" -cwd / sh -c "$4" | tar -C "$5" -xf -' sh "$SRC" "$rs" "$U" \
			"$GJOB" "$D/res")
	fi
	ok=0
	case $line in *" status=0") ok=1 ;; esac
	[ "$2" = job ] && [ "$ok" = 1 ] && ok=$(check_sums "$D/res/out/sums")
	rec "gvisor-$1" "$2" "$3" "$line ok=$ok"
	[ "$ok" = 1 ] || sed 's/^/  gvisor: /' "$D/gerr" | tail -n 5
}

# A warm-up of each way and job (not counted), then N iterations, the
# ways interleaved in each. A run's time in the rig depends on what ran
# just before it (L1 recycles the pages the last VM or sandbox freed, and
# what ran there costs the next one to clear: bench/run/README.md), so
# flint and QEMU swap places from one iteration to the next, and between
# the two jobs of an iteration: in each job, each way then follows each of
# the others equally often (with gVisor: flint, QEMU, gVisor, then QEMU,
# flint, gVisor). Measured: a run right after gVisor's was 250 ms faster
# than one right after a VM's.
iteration() { # RUN
	swap=$(($1 % 2))
	for job in true job; do
		if [ $swap = 0 ]; then
			flint_run $job "$1"
			qemu_run $job "$1"
		else
			qemu_run $job "$1"
			flint_run $job "$1"
		fi
		swap=$((1 - swap))
		for p in $GV; do gvisor_run "$p" $job "$1"; done
	done
}
iteration 0
echo "$N runs each"
i=1
while [ $i -le "$N" ]; do
	iteration $i
	i=$((i + 1))
done
# The late platforms (KVM, nested once more inside L1's KVM) are probed
# only now: their failure must not disturb the runs above. One that runs
# gets its N runs here, after the others, not interleaved.
for p in $GVISOR_LATE; do
	GV=
	probe_gvisor "$p" || continue
	i=0
	while [ $i -le "$N" ]; do
		for job in true job; do gvisor_run "$p" $job $i; done
		i=$((i + 1))
	done
done
[ "$(sha256sum "$IMG" | cut -d' ' -f1)" = "$IMGSUM" ] || { echo "bench: the image changed"; ok_all=0; }
awk -f "$DIR/summarize.awk" "$OUT"
[ $ok_all = 1 ] || { echo "bench: FAILED: some runs failed or gave a wrong result (see above)"; exit 1; }
