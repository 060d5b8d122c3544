# A cgroup memory limit too small for the guest fails the launch with a
# clear message, from flint-jail (which sees the cgroup; flint in the jail
# cannot) and from flint itself outside a jail, instead of an OOM kill
# mid-boot; the failed launch leaves no jail and no cgroup behind.
# timeout: 60
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-jail.sh"

flint_jail() {
	status=0
	jail "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint-jail $* -> status $status"
}

flint_jail small --cgroup "$MEMFILE=64M" -- --kernel "$KERNEL" --initrd "$INITRD" --mem 128M
expect_status 125 "flint-jail's"
grep -qF "flint-jail: cgroup memory limit: guest memory 128 MiB does not fit the cgroup memory limit 64 MiB ($CGMEM/flint-test/small/$MEMFILE)" "$ERR" ||
	fail "no clear message about the memory limit"
[ ! -e "$BASE/flint/small" ] || fail "the failed launch left $BASE/flint/small"
[ ! -e "$CGMEM/flint-test/small" ] || fail "the failed launch left its cgroup"
expect_unmounted

# flint on its own, in a cgroup with the same limit. On cgroup v2 the
# memory controller is enabled down to it here: the refused jail above
# enabled nothing, and this scenario must not depend on an earlier one's.
mkdir -p "$CGMEM/flint-test/own"
if [ "$MEMFILE" = memory.max ]; then
	echo +memory >"$CGMEM/cgroup.subtree_control" &&
		echo +memory >"$CGMEM/flint-test/cgroup.subtree_control" ||
		fail "cannot enable the memory controller for $CGMEM/flint-test"
fi
echo 64M >"$CGMEM/flint-test/own/$MEMFILE" || fail "cannot set $CGMEM/flint-test/own/$MEMFILE"
status=0
sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGMEM/flint-test/own" \
	"$FLINT" --kernel "$KERNEL" --initrd "$INITRD" --mem 128M </dev/null >"$OUT" 2>"$ERR" ||
	status=$?
rmdir "$CGMEM/flint-test/own"
expect_status 125 "flint's"
expect_err "flint: guest memory 128 MiB does not fit the cgroup memory limit 64 MiB \($CGMEM/flint-test/own/$MEMFILE\)" \
	"flint's message about the memory limit"
