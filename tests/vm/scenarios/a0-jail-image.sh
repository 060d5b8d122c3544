# flint run --image DIR --scratch 64M under flint-jail: the jailer builds
# the directory's ext4 image in its own cache ($FLINT_CACHE) from what the
# jail's user can read (tar -c as that user), stages it read-only in the
# jail and makes the scratch disk there; the static flint in the jail boots
# with them, and the job sees the userland as /, writes to / (the overlay's
# layer on the 64 MiB scratch disk, not a tmpfs), and cannot read root's
# file through a symlink the tree holds. The image in the cache is the
# staged file and is unchanged by the job; a second jail reuses it without
# building; the scratch disk is the jail's and goes with it.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-jail.sh"
. "$(dirname "$0")/../lib-image.sh"

# The jail's user reaches the userland through $T (mktemp's 0700).
chmod 755 "$T" || fail "cannot open $T to the jail's user"
img=$T/userland
mkdir -p "$img/etc"
busybox_userland "$img" sh cat echo df grep test tail true
echo from-the-image >"$img/etc/marker"
echo "root only" >"$T/secret" && chmod 600 "$T/secret"
ln -s "$T/secret" "$img/etc/secret"
chmod -R a+rX "$img"

# flint run --image must work outside a jail first, or the jail is not to
# blame (its own cache: the jailer's keys are its own).
status=0
FLINT_CACHE=$T/cache0 "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --image "$img" -- true \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
[ "$status" = 0 ] || fail "flint run --image fails outside a jail too (status $status): the jail is not to blame, but it is a failure"

job='cat /etc/marker; echo job >/written && cat /written;
	echo "root=$(df -k / | tail -n 1)"; cat /etc/secret 2>/dev/null || echo no-secret'
# jailed ID: flint run of the job under the jail, stdin closed; sets $status.
jailed() {
	status=0
	jail "$1" --new-pid-ns -- run --kernel "$KERNEL" --rootfs "$ROOTFS" --image "$img" \
		--scratch 64M -- sh -c "$job" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint-jail --id $1 ... -- run --image $img --scratch 64M -> status $status"
}

jailed img
expect_status 0 "the job in the directory's userland, under the jail"
grep -qx from-the-image "$OUT" || fail "the job did not see the image's /etc/marker"
grep -qx job "$OUT" || fail "/ was not writable"
grep -qx no-secret "$OUT" || fail "root's file reached the guest through the tree's symlink"
# The overlay's layer is the scratch disk: about 64 MiB, not half of the
# guest's memory in a tmpfs.
kb=$(sed -n 's/^root=[^ ]* *\([0-9]*\) .*/\1/p' "$OUT")
[ -n "$kb" ] && [ "$kb" -gt 40000 ] && [ "$kb" -le 65536 ] ||
	fail "/ is ${kb:-?} KiB, expected the 64 MiB scratch disk ($(grep '^root=' "$OUT"))"
expect_err "flint-jail: image: $img: a directory, read as uid $JUID gid $JUID" "the jailer's build"
set -- "$FLINT_CACHE"/images/*.ext4
[ $# = 1 ] && [ -f "$1" ] || fail "expected one image in the jailer's cache, found: $*"
cached=$1
R=$BASE/flint/img/root
[ "$(stat -c %i "$R/userland")" = "$(stat -c %i "$cached")" ] ||
	[ "$(sha256sum <"$R/userland")" = "$(sha256sum <"$cached")" ] ||
	fail "the jail's /userland is not the cached image"
[ "$(stat -c '%u %a' "$R/userland")" = "0 644" ] || fail "the staged image is not root's 0644"
[ "$(stat -c '%u %a' "$R/scratch.ext4")" = "$JUID 600" ] ||
	fail "the scratch disk is not uid $JUID's 0600: $(stat -c '%u %a' "$R/scratch.ext4")"
sum=$(sha256sum "$cached" | cut -d' ' -f1)
expect_unmounted

# A second jail: the same image from the cache, nothing built, the last
# job's write gone.
job='test -e /written && echo kept || echo fresh; cat /etc/marker'
jailed img2
expect_status 0 "the second jailed run"
grep -qx fresh "$OUT" || fail "the last run's write was still there"
grep -qx from-the-image "$OUT" || fail "the image's /etc/marker changed"
! grep -q "building an ext4 image" "$ERR" || fail "the image was built again"
[ "$(sha256sum "$cached" | cut -d' ' -f1)" = "$sum" ] || fail "the cached image changed"
for f in "$FLINT_CACHE"/images/.jail-*; do
	[ -e "$f" ] && fail "the jailer left $f in its cache"
done
expect_unmounted
rm -rf "$BASE/flint/img" "$BASE/flint/img2" || fail "the jails cannot be removed"
echo "jailed --image built once ($cached), reused; / on the 64 MiB scratch disk ($kb KiB)"
