# Helpers for the flint-jail scenarios (scenarios/a0-jail-*.sh), sourced
# after lib.sh. The rig carries the static jailer and the static flint it
# runs in $TOOLS (mk/jail.mk). L1 mounts no cgroup file system: mount
# cgroup2, with every controller, where nothing is mounted.

need_guest
JAIL=${TOOLS:-}/flint-jail
SFLINT=${TOOLS:-}/flint
[ -x "$JAIL" ] && [ -x "$SFLINT" ] ||
	skip "no flint-jail or static flint in \$TOOLS (make $JAIL $SFLINT)"
[ "$(id -u)" = 0 ] || skip "flint-jail needs root"
# Any unprivileged ids: the jail needs no passwd entry.
JUID=1000
BASE=$T/jail
if ! grep -qE ' cgroup2? ' /proc/mounts; then
	mount -t cgroup2 none /sys/fs/cgroup || fail "cannot mount cgroup2 on /sys/fs/cgroup"
fi
# Where the memory controller is, and what its limit file is called there
# (the jailer picks v2 when it offers the controllers, as here).
CGV2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
if [ -n "$CGV2" ] && grep -qw memory "$CGV2/cgroup.controllers"; then
	CGMEM=$CGV2 MEMFILE=memory.max
else
	CGMEM=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
	MEMFILE=memory.limit_in_bytes
fi
[ -n "$CGMEM" ] || skip "no memory cgroup controller here"

# jail ID ARGS...: flint-jail with the jail's ids and base directory; the
# caller adds its options, then -- and flint's arguments.
jail() {
	id=$1
	shift
	"$JAIL" --id "$id" --exec-file "$SFLINT" --uid $JUID --gid $JUID \
		--chroot-base-dir "$BASE" --parent-cgroup flint-test "$@"
}

# Nothing of the jail is mounted, in this namespace, any more.
expect_unmounted() {
	! grep -q " $BASE" /proc/self/mountinfo || fail "still mounted: $(grep " $BASE" /proc/self/mountinfo)"
}
