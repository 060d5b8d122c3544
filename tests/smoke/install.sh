# make install and make uninstall, and where `flint run` looks for its
# guest: $FLINT_HOME, beside the binary, then PREFIX/share/flint. Host only,
# no KVM needed: the lookup happens before flint opens /dev/kvm, and
# --verbose names the files it chose. Stand-in guest files are installed
# (INSTALL_KERNEL, INSTALL_ROOTFS), so no guest kernel is built for this.
# Sourced by run.sh, which provides FLINT, BUILD_DIR, OUT and report().

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# Absolute: flint names the directory beside its binary by its absolute
# path, and the expectations below name the same directories.
mkdir -p "$OUT"
I=$(cd "$OUT" && pwd)/install
rm -rf "$I"
mkdir -p "$I/build/rootfs" "$I/guest" "$I/empty" "$I/beside"
printf 'stand-in kernel\n' >"$I/guest/vmlinux"
printf 'stand-in root file system\n' >"$I/guest/rootfs.ext4"
# A copy of the build's objects: a PREFIX other than the build's rebuilds
# the one object it is compiled into there, not in the build under test.
for d in runner virtio jail rootfs/agent; do
	[ -d "$BUILD_DIR/$d" ] && cp -a "$BUILD_DIR/$d" "$I/build/$d"
done

# install_make TARGET VAR=VALUE...: make in the repository, on the copy.
install_make() {
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$REPO" BUILD="$I/build" \
		INSTALL_KERNEL="$I/guest/vmlinux" INSTALL_ROOTFS="$I/guest/rootfs.ext4" "$@" \
		>"$I/make.log" 2>&1
}

# run_flint NAME BINARY FLINT_HOME ARGS...: flint run with FLINT_HOME set
# (or unset when ""), stderr to $I/NAME.err; sets $got.
run_flint() {
	name=$1 bin=$2 home=$3
	shift 3
	if [ -n "$home" ]; then
		FLINT_HOME=$home timeout 20 "$bin" run "$@" </dev/null >/dev/null 2>"$I/$name.err"
	else
		env -u FLINT_HOME timeout 20 "$bin" run "$@" </dev/null >/dev/null 2>"$I/$name.err"
	fi
	got=$?
}

# expect_err NAME STRING: the last run's status was 125 and its stderr
# holds STRING; reports NAME.
expect_err() {
	why=""
	[ "$got" = 125 ] || why="status $got, expected 125"
	[ -z "$why" ] && ! grep -qF -- "$2" "$I/$1.err" && why="stderr lacks '$2'"
	report "$1" "$why" "$I/$1.err"
}

DEST=$I/dest
why=""
install_make install DESTDIR="$DEST" PREFIX=/usr || why="make install failed"
for f in bin/flint bin/flint-jail; do
	[ -z "$why" ] && [ ! -x "$DEST/usr/$f" ] && why="no executable $DEST/usr/$f"
done
for f in vmlinux rootfs.ext4; do
	[ -z "$why" ] && ! cmp -s "$I/guest/$f" "$DEST/usr/share/flint/$f" &&
		why="$DEST/usr/share/flint/$f is not the guest's $f"
done
[ -z "$why" ] && ! "$DEST/usr/bin/flint" --version | grep -q '^flint ' &&
	why="the installed flint does not run"
report install-destdir "$why" "$I/make.log"

if [ -e /usr/share/flint/vmlinux ]; then
	echo "SKIP install-lookup-none: /usr/share/flint/vmlinux exists on this host"
else
	run_flint install-lookup-none "$DEST/usr/bin/flint" "$I/empty" -- true
	expect_err install-lookup-none "flint run: no guest kernel vmlinux in $I/empty (FLINT_HOME), $DEST/usr/bin (beside flint) or /usr/share/flint; set FLINT_HOME to a directory that holds vmlinux and rootfs.ext4, or use --kernel FILE"
fi
run_flint install-lookup-home "$DEST/usr/bin/flint" "$I/guest" --verbose -- true
expect_err install-lookup-home "flint run: kernel $I/guest/vmlinux, root file system $I/guest/rootfs.ext4"

# Beside the binary (a build tree); $FLINT_HOME, when set, first, file by file.
cp "$DEST/usr/bin/flint" "$I/beside/flint"
cp "$I/guest/vmlinux" "$I/guest/rootfs.ext4" "$I/beside/"
run_flint install-lookup-beside "$I/beside/flint" "" --verbose -- true
expect_err install-lookup-beside "flint run: kernel $I/beside/vmlinux, root file system $I/beside/rootfs.ext4"
mkdir -p "$I/kernel-only"
cp "$I/guest/vmlinux" "$I/kernel-only/"
run_flint install-lookup-per-file "$I/beside/flint" "$I/kernel-only" --verbose -- true
expect_err install-lookup-per-file "flint run: kernel $I/kernel-only/vmlinux, root file system $I/beside/rootfs.ext4"

# Installed under a prefix, nothing beside the binary: PREFIX/share/flint.
why=""
install_make install PREFIX="$I/prefix" || why="make install PREFIX=$I/prefix failed"
report install-prefix "$why" "$I/make.log"
run_flint install-lookup-prefix "$I/prefix/bin/flint" "" --verbose -- true
expect_err install-lookup-prefix "flint run: kernel $I/prefix/share/flint/vmlinux, root file system $I/prefix/share/flint/rootfs.ext4"

why=""
install_make uninstall DESTDIR="$DEST" PREFIX=/usr || why="make uninstall failed"
for f in bin/flint bin/flint-jail share/flint; do
	[ -z "$why" ] && [ -e "$DEST/usr/$f" ] && why="$DEST/usr/$f is still there"
done
report uninstall "$why" "$I/make.log"
