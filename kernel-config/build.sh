#!/bin/bash
# Build flint's guest kernel (an ELF vmlinux) from Debian's linux-source-6.1.
#
#   kernel-config/build.sh OUT      build (or reuse) vmlinux, copy it to OUT
#   kernel-config/build.sh src      unpack the source if needed, print its dir
#
# The result is cached in ${FLINT_CACHE:-$HOME/.cache/flint}/kernel-<hash>/
# where <hash> covers the config fragment, the list of required options,
# this script, the linux-source package version and the compiler, so a
# machine builds each configuration once. The tarball is unpacked once per
# package version under the cache (never into the repo) and kernels are built
# out of tree (O=) so several configurations can share it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
FRAGMENT=$HERE/flint.config
REQUIRED=$HERE/required.txt
TARBALL=${LINUX_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
CACHE=${FLINT_CACHE:-$HOME/.cache/flint}
JOBS=${JOBS:-$(nproc)}

say() { echo "kernel: $*"; }
die() { echo "kernel: error: $*" >&2; exit 1; }

[ -r "$TARBALL" ] || die "$TARBALL not found (apt-get install linux-source-6.1)"
PKGVER=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s-%Y "$TARBALL")
SRC=$CACHE/linux-source-$PKGVER
mkdir -p "$CACHE"

# Unpack once; a lock keeps concurrent builds (other checkouts) from racing.
unpack() {
	exec 8>"$CACHE/linux-source-$PKGVER.lock"
	flock 8
	if [ ! -e "$SRC/.flint-unpacked" ]; then
		say "unpacking $TARBALL into $SRC (~20 s)"
		rm -rf "$SRC" "$SRC.tmp"
		mkdir -p "$SRC.tmp"
		tar -xJf "$TARBALL" -C "$SRC.tmp" --strip-components=1
		touch "$SRC.tmp/.flint-unpacked"
		mv "$SRC.tmp" "$SRC"
	fi
	flock -u 8
}

if [ "${1:-}" = src ]; then
	unpack >&2
	echo "$SRC"
	exit 0
fi
[ $# -eq 1 ] || die "usage: $0 OUT-vmlinux | src"
OUT=$1

HASH=$({
	cat "$FRAGMENT" "$REQUIRED" "$0"
	echo "$PKGVER"
	${CC:-gcc} --version | head -1
} | sha256sum | cut -c1-16)
DIR=$CACHE/kernel-$HASH

install_out() {
	mkdir -p "$(dirname "$OUT")"
	cp -f "$DIR/vmlinux" "$OUT.tmp" && mv -f "$OUT.tmp" "$OUT"
	say "$OUT <- $DIR/vmlinux ($(stat -c %s "$OUT") bytes)"
}

if [ -e "$DIR/vmlinux" ]; then
	say "cached build $HASH"
	install_out
	exit 0
fi

exec 9>"$DIR.lock"
if ! flock -n 9; then
	say "another build of $HASH is running; waiting for it"
	flock 9
fi
if [ -e "$DIR/vmlinux" ]; then
	install_out
	exit 0
fi
unpack

OBJ=$DIR/obj
LOG=$DIR/build.log
mkdir -p "$OBJ"
: >"$LOG"
say "building config $HASH from linux-source $PKGVER (log: $LOG)"

# Show the last lines of the log when a step fails.
fail() {
	echo "---- last lines of $LOG ----" >&2
	tail -n 40 "$LOG" >&2
	die "$1"
}

say "configuring: tinyconfig + $(basename "$FRAGMENT")"
{
	make -C "$SRC" O="$OBJ" ARCH=x86_64 tinyconfig &&
		(cd "$OBJ" && "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" \
			"$OBJ/.config" "$FRAGMENT") &&
		make -C "$SRC" O="$OBJ" ARCH=x86_64 olddefconfig
} >>"$LOG" 2>&1 || fail "configuration failed"

# Dependencies drop options silently: check that every required one survived.
missing=()
while read -r line; do
	case "$line" in
	'' | '#'*) ;;
	'!'*)
		opt=${line#!}
		if grep -q "^$opt=" "$OBJ/.config"; then
			missing+=("$opt should be off but is $(grep "^$opt=" "$OBJ/.config")")
		fi
		;;
	*'>='*)
		opt=${line%%>=*} min=${line#*>=}
		val=$(sed -n "s/^$opt=//p" "$OBJ/.config")
		if [ -z "$val" ] || [ "$val" -lt "$min" ]; then
			missing+=("$opt must be >= $min (got ${val:-unset})")
		fi
		;;
	*)
		grep -qx "$line" "$OBJ/.config" ||
			missing+=("$line (got: $(grep "^${line%%=*}[= ]" "$OBJ/.config" ||
				grep "# ${line%%=*} is not set" "$OBJ/.config" || echo unset))")
		;;
	esac
done <"$REQUIRED"
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do echo "kernel: required option lost: $m" >&2; done
	die "the final .config ($OBJ/.config) lacks required options"
fi
# Every value the fragment asks for must hold too: an option whose prompt
# depends on another (CPU_SUP_HYGON on PROCESSOR_SELECT), or that another
# selects (CPU_FREQ by SCHED_MC_PRIO), keeps its default without a word.
# The fragment as merge_config.sh reads it: `# CONFIG_X is not set` is
# CONFIG_X=n, trailing blanks go, and the last line for an option wins.
wanted=$(sed -n -e 's/\r$//' -e 's/[[:space:]]*$//' \
	-e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1=n/' \
	-e '/^CONFIG_[A-Za-z0-9_]*=/p' "$FRAGMENT" | tac | awk -F= '!seen[$1]++' | tac)
ignored=()
while IFS='=' read -r opt want; do
	got=$(sed -n "s/^$opt=//p" "$OBJ/.config")
	if [ "$want" = n ]; then
		[ -z "$got" ] || ignored+=("$opt=n (got $opt=$got)")
	elif [ "$got" != "$want" ]; then
		ignored+=("$opt=$want (got ${got:-unset})")
	fi
done <<<"$wanted"
if [ ${#ignored[@]} -gt 0 ]; then
	for m in "${ignored[@]}"; do echo "kernel: $(basename "$FRAGMENT") asks $m" >&2; done
	die "olddefconfig overrode the fragment: make the options above hold (their dependencies, or what selects them)"
fi
say "config checked: all $(grep -cv '^\(#\|$\)' "$REQUIRED") required options present, the fragment's $(grep -c . <<<"$wanted") values hold"

# The kernel's own output goes to the log; a ticker prints progress.
start=$(date +%s)
say "compiling vmlinux with -j$JOBS (~7 min on 2 cores; a line every 30 s)"
make -C "$SRC" O="$OBJ" ARCH=x86_64 -j"$JOBS" vmlinux >>"$LOG" 2>&1 &
mkpid=$!
# The previous build's count of compiled files, if any, gives a rough total.
total=$(cat "$CACHE/kernel-cc-count" 2>/dev/null || true)
(
	while sleep 30; do
		n=$(grep -c '^  CC ' "$LOG" || true)
		last=$(grep '^  [A-Z]' "$LOG" | tail -n 1 | sed 's/^ *//')
		say "$(($(date +%s) - start)) s: $n${total:+ of ~$total} files compiled; last: $last"
	done
) &
ticker=$!
trap 'kill $ticker $mkpid 2>/dev/null' EXIT
trap 'exit 130' INT TERM
status=0
wait $mkpid || status=$?
kill $ticker 2>/dev/null || true
trap - EXIT
[ $status -eq 0 ] || fail "make vmlinux failed (status $status)"

grep -c '^  CC ' "$LOG" >"$CACHE/kernel-cc-count" || true
# Keep the kernel, its config and symbol map; the object tree (~100 MB) goes.
cp "$OBJ/vmlinux" "$DIR/vmlinux.tmp"
cp "$OBJ/.config" "$DIR/config"
cp "$OBJ/System.map" "$DIR/System.map"
mv "$DIR/vmlinux.tmp" "$DIR/vmlinux"
rm -rf "$OBJ"
say "built in $(($(date +%s) - start)) s"
install_out
