#!/bin/sh
# The jail's user against flint-jail (issue 10). While a jail is being made,
# a process of the jail's uid on the host (tests/jail/racer.c) swaps names
# in it. Whatever it does, no host file changes owner, mode or content,
# nothing appears in a host directory, and the user never gets a copy of a
# file only root may read:
#   - step by step: the test build of the jailer (flint-jail-pause) stops
#     after each step; at each stop the racer attacks once: symlinks planted
#     at run, tmp, dev; every entry made exchanged with a symlink to a
#     root-only file (device nodes: to an image hard-linked into the jail);
#     a staged hard link renamed to the pid file; a staged source in the
#     user's directory swapped for a symlink to a root-only file; dev
#     swapped before the undo of a failure; after the handover, the exec
#     file renamed away (the jailer execs the descriptor it opened before).
#     Until the handover (the "before exec" step) no attack on the jail may
#     even succeed. The racer reaches the jail past <id> (root's, 0700)
#     with CAP_DAC_READ_SEARCH, as a running flint's /proc/PID/root lets a
#     process of its uid; it can read and search, never write;
#   - racing: the real jailer launched RACE_LAUNCHES times (default 150;
#     vsock, flint run's /tmp, pid files, failures, copies) while the racer
#     runs every attack as fast as it can.
# Root only (else SKIP). Usage: races.sh BUILD-DIR. FLINT_JAIL and
# FLINT_JAIL_PAUSE name other jailers to test (an older build, say);
# RACES_KEEP=DIR keeps each case's stderr and host changes there.
set -u
BUILD=$1
JAIL=${FLINT_JAIL:-$BUILD/flint-jail}
PJAIL=${FLINT_JAIL_PAUSE:-$BUILD/jail/flint-jail-pause}
RACER=$BUILD/jail/racer
LAUNCHES=${RACE_LAUNCHES:-150}
pass=0 fail=0

if [ "$(id -u)" != 0 ]; then
	echo "SKIP jail races: flint-jail needs root"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

T=$(mktemp -d /tmp/flint-jail-races.XXXXXX) || exit 1
chmod 755 "$T" # the jail's user walks to the jails and to its source
U=54322
BASE=$T/base
H=$T/host   # root's, on the jail's file system
TFS=$T/tfs  # another file system: what is staged from it is copied
HT=$TFS/host # root's, there
SRC=$TFS/src/disk.img
OUT=$T/out
ERR=$T/err
rpid=
cleanup() {
	[ -n "$rpid" ] && kill "$rpid" 2>/dev/null
	umount "$TFS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

mkdir "$T/bin" "$TFS" && cp "$BUILD/jail/probe" "$T/bin/probe" || exit 1
mount -t tmpfs -o mode=755,size=16m flint-jail-races "$TFS" || exit 1
# The root-only file starts with SECRET and is longer than the user's
# source: a copy of it made in place of the source (st_size bytes) holds it.
SECRET="secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# What a swapped name could reach: a root-only file (on another file
# system than the jail, so that the old staging copied it), an image
# hard-linked into the jails, an empty directory, files named like the
# device nodes; and a source directory of the user's own.
setup() {
	rm -rf "$BASE" "$H" "$HT" "$TFS/src"
	mkdir -p "$H/victim" "$H/devs/net" "$HT" "$TFS/src"
	{ echo "$SECRET"; head -c 8192 /dev/zero | tr '\0' s; } >"$HT/secret"
	chmod 600 "$HT/secret"
	echo "shared image" >"$H/shared.img"
	chmod 644 "$H/shared.img"
	for f in kvm urandom net/tun; do
		echo "$f" >"$H/devs/$f"
		chmod 600 "$H/devs/$f"
	done
	echo "the user's disk, longer than the secret's first line" >"$SRC"
	chown -R "$U:$U" "$TFS/src"
	snapshot >"$T/before"
}
snapshot() {
	for d in "$H" "$HT"; do
		(cd "$d" && find . -printf "$d/%P %y %u:%g %m\n" | LC_ALL=C sort &&
			find . -type f -exec sha256sum {} + | LC_ALL=C sort)
	done
}
# verdict NAME WHY: the host's files as they were, no copy of the secret.
verdict() {
	name=$1 why=$2
	snapshot >"$T/after"
	if [ -n "${RACES_KEEP:-}" ]; then
		cp "$ERR" "$RACES_KEEP/$name.err"
		diff "$T/before" "$T/after" >"$RACES_KEEP/$name.diff"
	fi
	cmp -s "$T/before" "$T/after" ||
		why="${why}host files changed: $(diff "$T/before" "$T/after" | grep '^[<>]' |
			head -8 | tr '\n' ';') "
	leaks=$(grep -rlF -- "$SECRET" "$BASE" "$TFS/src" 2>/dev/null | head -3 | tr '\n' ' ')
	[ -n "$leaks" ] && why="${why}the root-only file's content is in $leaks"
	if [ -z "$why" ]; then
		echo "PASS $name"
		pass=$((pass + 1))
	else
		echo "FAIL $name ($why)"
		grep -E '^(flint-jail|racer):' "$ERR" | grep -v ': test pause: \|: EALREADY\|Permission denied' |
			head -12 | sed 's/^/    /'
		fail=$((fail + 1))
	fi
}

ATTACK="$RACER -u $U -g $U -b $BASE -e probe -f $HT/secret -d $H/victim -v $H/devs -j /shared.img -s $SRC"
ID="--exec-file $T/bin/probe --uid $U --gid $U --chroot-base-dir $BASE"

# paused ID ATTACKS PATTERN JAILER-ARGS...: the test build, attacked at each
# pause whose step matches PATTERN.
paused() {
	id=$1 attacks=$2 pattern=$3
	shift 3
	setup
	# shellcheck disable=SC2086
	$ATTACK -l "$ERR" drive "$attacks" "$pattern" -- "$PJAIL" --id "$id" $ID "$@" \
		</dev/null >"$OUT" 2>"$ERR"
	why=
	grep -q '^racer: matched [1-9]' "$ERR" || why="no pause matched '$pattern'; "
	# Before the handover the jail is root's: no name in it can change.
	early=$(awk '/^flint-jail: test pause: before exec$/ { h = 1 }
		!h && /^racer: .*: (swap|plant|dev|pid|exec) .*: done$/ { print; exit }' "$ERR")
	[ -n "$early" ] && why="${why}before the handover: '$early'; "
	# The exec file renamed after the handover ("x" ids): flint starts
	# all the same (the probe, in its place, says who it runs as).
	case $id in x*) grep -q '^uid=' "$OUT" ||
		why="${why}the exec file renamed after the handover: flint did not start; " ;;
	esac
	verdict "paused-$id" "$why"
}

if [ ! -x "$PJAIL" ] || [ ! -x "$RACER" ]; then
	echo "FAIL races (no $PJAIL or $RACER: make $PJAIL $RACER)"
	exit 1
fi
VSOCK="--vsock cid=3,uds=/run/v/sock"
# 1. Directories and nodes made, then chowned (the vsock socket's, flint
# run's /tmp, /dev): each exchanged with a symlink the moment it exists.
paused swap-vsock swap '*' -- --kernel "$H/shared.img" $VSOCK
paused swap-run-tmp swap '*' -- run --kernel "$H/shared.img" --rootfs "$SRC" -- true
# Symlinks planted at run, run/v, tmp before the jailer makes them.
paused plant-vsock plant '*' -- --kernel "$H/shared.img" $VSOCK
paused plant-run-tmp plant '*' -- run --kernel "$H/shared.img" --rootfs "$SRC" -- true
# 2. The pid file: a staged hard link of the shared image renamed to it.
paused pid-file pid '*' --new-pid-ns -- --kernel "$H/shared.img"
# 3. The source swapped for a symlink to the root-only file once it was
# checked (the jail on another file system: a copy).
paused source-swap source 'opened *disk.img' -- --kernel "$H/shared.img" --drive "path=$SRC"
# 4. A failure after entering the jail (--netns /dev/null is no namespace);
# dev swapped for a symlink to a host directory before the undo.
paused undo-dev dev 'undo' --netns /dev/null -- --kernel "$H/shared.img"
# After the handover the user may rename anything in the jail (reached, as
# a running flint's /proc/PID/root would let them, past <id>: the racer
# keeps CAP_DAC_READ_SEARCH for it): dev, run and the rest, and the exec
# file, which flint still starts from: the jailer opened it while the root
# was root's alone, and execs that descriptor, not a name the user could
# have put their own program behind.
paused x-handover exec,plant,dev,swap 'before exec' --new-pid-ns -- \
	--kernel "$H/shared.img" $VSOCK

# --- racing ----------------------------------------------------------------
setup
: >"$ERR"
$ATTACK race swap,plant,dev,pid,source,exec 120 2>"$T/racer.log" &
rpid=$!
i=0 ok=0 failed=0 leaked=
t0=$(date +%s)
while [ $i -lt "$LAUNCHES" ]; do
	i=$((i + 1))
	case $((i % 5)) in
	0) set -- --id "v$i" -- --kernel "$H/shared.img" $VSOCK ;;
	1) set -- --id "t$i" -- run --kernel "$H/shared.img" --rootfs "$SRC" -- true ;;
	2) set -- --id "p$i" --new-pid-ns -- --kernel "$H/shared.img" --drive "path=$SRC" ;;
	3) set -- --id "f$i" --netns /dev/null -- --kernel "$H/shared.img" $VSOCK ;;
	4) set -- --id "x$i" --new-pid-ns -- --kernel "$H/shared.img" $VSOCK \
		--drive "path=$SRC" ;;
	esac
	# shellcheck disable=SC2086
	if timeout 10 "$JAIL" $ID "$@" </dev/null >/dev/null 2>>"$ERR"; then
		ok=$((ok + 1))
	else
		failed=$((failed + 1))
	fi
	# A copy of the secret is looked for before the jail goes.
	grep -rqF -- "$SECRET" "$BASE" 2>/dev/null && leaked="$leaked $2"
	rm -rf "$BASE/probe/$2" 2>/dev/null
done
kill "$rpid"
wait "$rpid"
rpid=
echo "race: $LAUNCHES launches in $(($(date +%s) - t0)) s ($ok ran, $failed failed); $(cat "$T/racer.log")"
why=
[ -n "$leaked" ] && why="the root-only file's content was in the jails$leaked; "
verdict race "$why"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
