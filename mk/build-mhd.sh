#!/bin/bash
# A static libmicrohttpd for the jailed flint ($(BUILD)/jail/flint, -static).
#
#   mk/build-mhd.sh OUTDIR    OUTDIR/lib/libmicrohttpd.a, OUTDIR/include/microhttpd.h
#
# Debian's own libmicrohttpd.a is built with HTTPS and needs gnutls, whose
# static link needs libp11-kit.a, which Debian does not ship. So this builds
# the library from Debian's source package, the same version as the
# installed libmicrohttpd-dev (whose header flint's objects are compiled
# against) with Debian's patches and hardening flags, without HTTPS: it then
# needs nothing but libc. flint's API speaks plain HTTP on a Unix socket.
#
# The source (~1 MB) is fetched once with `apt-get source` through a private
# deb-src list (the host's apt sources, lists kept apart from the system's)
# into ${FLINT_CACHE:-$HOME/.cache/flint}/libmicrohttpd-<version>/; the
# built library is cached in .../mhd-<hash>/, <hash> covering this script,
# the version, the flags and the compiler. Warm, no network is used and the
# script only copies (~10 s to configure and build when cold).
set -euo pipefail

CACHE=${FLINT_CACHE:-$HOME/.cache/flint}
CC=${CC:-cc}
HEADER=/usr/include/microhttpd.h
# No HTTPS (gnutls, libgcrypt); no curl tests, examples, docs or gettext.
CONFIGURE_FLAGS=(--enable-static --disable-shared --disable-https --without-gnutls
	--disable-curl --disable-doc --disable-examples --disable-nls
	--disable-dependency-tracking)

say() { echo "mhd: $*"; }
die() {
	echo "mhd: error: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUT=$1

VER=$(dpkg-query -W -f='${Version}' libmicrohttpd-dev 2>/dev/null) ||
	die "libmicrohttpd-dev is not installed (apt-get install libmicrohttpd-dev): the static library is built from the same version as the header flint compiles against"
[ -r "$HEADER" ] || die "$HEADER not found (libmicrohttpd-dev)"
UPVER=${VER#*:}
UPVER=${UPVER%-*}
SRC=$CACHE/libmicrohttpd-$VER
mkdir -p "$CACHE"

# Sets DSC to the source package's .dsc in $SRC, fetching it if needed.
fetch() {
	DSC=$SRC/libmicrohttpd_${VER#*:}.dsc
	[ -e "$SRC/.flint-complete" ] && return
	command -v apt-get >/dev/null || die "apt-get not found: cannot fetch the source of libmicrohttpd $VER"
	local tmp
	tmp=$(mktemp -d "$CACHE/libmicrohttpd-fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/dl"
	# The host's sources, as deb-src: one-line lists and deb822 files.
	local f
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' >"$tmp/sources.list" || true
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		sed 's/^Types:.*$/Types: deb-src/' "$f" >"$tmp/parts/${f##*/}"
	done
	local apt=(apt-get -q -o Dir::Etc::sourcelist="$tmp/sources.list"
		-o Dir::Etc::sourceparts="$tmp/parts" -o Dir::State::Lists="$tmp/lists"
		-o Dir::Cache="$tmp/cache")
	say "fetching the source of libmicrohttpd $VER into $SRC (apt-get source, ~11 MB of indexes + 1 MB)"
	# apt's sandbox user cannot write into the private directory: not an error.
	if ! "${apt[@]}" update >"$tmp/apt.log" 2>&1 ||
		! (cd "$tmp/dl" && "${apt[@]}" source --download-only "libmicrohttpd=$VER") >>"$tmp/apt.log" 2>&1 ||
		[ ! -e "$tmp/dl/${DSC##*/}" ]; then
		grep -v 'unsandboxed as root' "$tmp/apt.log" | tail -n 15 >&2
		die "cannot fetch the source of libmicrohttpd $VER (network? deb-src of this version?).
  Without network: put libmicrohttpd_${VER#*:}.dsc, libmicrohttpd_$UPVER.orig.tar.xz and
  libmicrohttpd_${VER#*:}.debian.tar.xz (https://deb.debian.org/debian/pool/main/libm/libmicrohttpd/
  or snapshot.debian.org) in $SRC/ and touch $SRC/.flint-complete"
	fi
	rm -rf "$SRC"
	mkdir -p "$SRC"
	mv "$tmp"/dl/* "$SRC/"
	touch "$SRC/.flint-complete"
	rm -rf "$tmp"
	trap - EXIT
}

# Debian's build flags for this package (hardening=+all in its debian/rules),
# and a section for each function and object, as flint's own: its link
# drops what flint never calls, and mk/boot-order.ld can place what a
# launch runs by function.
FLAGS=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS 2>/dev/null |
	sed 's/-ffile-prefix-map=[^ ]*//') || FLAGS="-g -O2 -fstack-protector-strong"
FLAGS="$FLAGS -ffunction-sections -fdata-sections"
CPPFLAGS_MHD=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS 2>/dev/null) ||
	CPPFLAGS_MHD="-D_FORTIFY_SOURCE=2"

HASH=$({
	cat "$0"
	echo "$VER $FLAGS $CPPFLAGS_MHD ${CONFIGURE_FLAGS[*]}"
	$CC --version | head -1
} | sha256sum | cut -c1-16)
DIR=$CACHE/mhd-$HASH

install_out() {
	mkdir -p "$OUT/lib" "$OUT/include"
	cp -f "$DIR/include/microhttpd.h" "$OUT/include/microhttpd.h"
	cp -f "$DIR/lib/libmicrohttpd.a" "$OUT/lib/libmicrohttpd.a.tmp"
	mv -f "$OUT/lib/libmicrohttpd.a.tmp" "$OUT/lib/libmicrohttpd.a"
	say "$OUT/lib/libmicrohttpd.a <- $DIR (libmicrohttpd $VER, no HTTPS)"
}

if [ -e "$DIR/lib/libmicrohttpd.a" ]; then
	install_out
	exit 0
fi

# One build per hash at a time: other checkouts share the cache.
exec 9>"$DIR.lock"
flock 9
if [ -e "$DIR/lib/libmicrohttpd.a" ]; then
	install_out
	exit 0
fi
fetch

start=$(date +%s)
work=$DIR/work
LOG=$DIR/build.log
rm -rf "$work"
mkdir -p "$work/obj"
: >"$LOG"
fail() {
	echo "---- last lines of $LOG ----" >&2
	tail -n 30 "$LOG" >&2
	die "$1"
}
say "building libmicrohttpd $VER without HTTPS (log: $LOG)"
# The .dsc's checksums are checked; its signature cannot be without the
# Debian keyring, but apt fetched the files against the signed Release.
dpkg-source -x "$DSC" "$work/src" >>"$LOG" 2>&1 || fail "dpkg-source -x $DSC failed"
(cd "$work/obj" && "$work/src/configure" "${CONFIGURE_FLAGS[@]}" CC="$CC" \
	CFLAGS="$FLAGS" CPPFLAGS="$CPPFLAGS_MHD") >>"$LOG" 2>&1 || fail "configure failed"
grep -q '^#define HTTPS_SUPPORT' "$work/obj/MHD_config.h" && fail "configure enabled HTTPS"
make -C "$work/obj/src/microhttpd" -j"${JOBS:-2}" >>"$LOG" 2>&1 || fail "make failed"

# flint's objects are compiled against the installed header: it must be the
# header of this library.
cmp -s "$HEADER" "$work/src/src/include/microhttpd.h" ||
	fail "$HEADER differs from libmicrohttpd $VER's src/include/microhttpd.h"
mkdir -p "$DIR/lib" "$DIR/include"
cp "$work/src/src/include/microhttpd.h" "$DIR/include/"
cp "$work/obj/src/microhttpd/.libs/libmicrohttpd.a" "$DIR/lib/libmicrohttpd.a.tmp"
mv "$DIR/lib/libmicrohttpd.a.tmp" "$DIR/lib/libmicrohttpd.a"
rm -rf "$work"
say "built in $(($(date +%s) - start)) s"
install_out
