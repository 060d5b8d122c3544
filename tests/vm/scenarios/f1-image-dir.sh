# flint run --image DIR: a userland from a directory (static busybox and a
# marker file) made into an ext4 image in flint's cache; the job sees it as
# /, with flint's agent at /.flint and its own /sbin/init never run; / is
# writable (an overlay) and nothing written reaches the image: its checksum
# is the same after, the next run does not see the write, and it reuses the
# image without building it again.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-image.sh"

img=$T/userland
mkdir -p "$img/sbin" "$img/etc"
busybox_userland "$img" sh cat echo ls rm test grep
echo from-the-image >"$img/etc/marker"
# Would break the boot if it ran.
printf '#!/bin/sh\necho USER-INIT-RAN; exit 1\n' >"$img/sbin/init"
chmod 755 "$img/sbin/init"

run --image "$img" -- sh -c 'cat /etc/marker; echo job >/written && cat /written;
	echo more >>/etc/marker && echo appended; test -x /.flint/sbin/flint-agent && echo agent-at-.flint'
expect_status 0 "a job in the directory's userland"
grep -qx from-the-image "$OUT" || fail "the job did not see the image's /etc/marker"
grep -qx job "$OUT" || fail "/ was not writable"
grep -qx appended "$OUT" || fail "a file of the image could not be changed"
grep -qx agent-at-.flint "$OUT" || fail "flint's root is not at /.flint"
! grep -q USER-INIT-RAN "$OUT" "$ERR" || fail "the image's /sbin/init ran"
expect_err "building an ext4 image from the directory" "the image being built"
set -- "$FLINT_CACHE"/images/*.ext4
[ $# = 1 ] && [ -f "$1" ] || fail "expected one image in the cache, found: $*"
sum=$(sha256sum "$1" | cut -d' ' -f1)

run --image "$img" -- sh -c 'test -e /written && echo kept || echo fresh; cat /etc/marker'
expect_status 0 "the second run"
grep -qx fresh "$OUT" || fail "the last run's write was still there"
[ "$(grep -c . "$OUT")" = 2 ] || fail "the image's /etc/marker changed"
! grep -q "building an ext4 image" "$ERR" || fail "the image was built again"
[ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sum" ] || fail "the image file changed"
echo "image $1 unchanged ($sum)"

# An ext4 image the guest cannot mount (the superblock's magic and nothing
# else): 125, with init's reason on stderr, not a bare status.
bad=$T/bad.ext4
head -c 1048576 /dev/zero >"$bad"
printf '\123\357' | dd of="$bad" bs=1 seek=1080 conv=notrunc 2>/dev/null
run --image "$bad" -- true
expect_status 125 "an image the guest cannot mount"
expect_err "the guest's init stopped with status 125 before the command ran: flint-init: mount /dev/vd" \
	"init's reason"
