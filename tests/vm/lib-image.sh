# Helpers for the flint run --image scenarios (scenarios/f1 to f4),
# sourced after lib.sh: a guest, e2fsprogs' mke2fs (L1's busybox has one
# without -d), and an image cache of the scenario's own.

need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
/usr/sbin/mke2fs -V 2>&1 | grep -q 'EXT2FS Library' || skip "no e2fsprogs mke2fs here (the rig carries it)"
export FLINT_CACHE=$T/cache

# run ARGS...: flint run on the built guest ($RUN_OPTS first), stdin from
# /dev/null; sets $status.
run() {
	status=0
	# shellcheck disable=SC2086 # RUN_OPTS is words
	"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" ${RUN_OPTS:-} "$@" </dev/null >"$OUT" \
		2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
}

# busybox_userland DIR APPLET...: DIR/bin holding a static busybox and a
# link to it for each applet.
busybox_userland() {
	d=$1
	shift
	mkdir -p "$d/bin"
	# busybox's own sh answers "busybox" for its applets' command -v.
	bb=$(command -v busybox)
	case $bb in /*) ;; *) bb=/bin/busybox ;; esac
	cp "$bb" "$d/bin/busybox" || fail "cannot copy $bb"
	for a in "$@"; do ln -s busybox "$d/bin/$a"; done
}
