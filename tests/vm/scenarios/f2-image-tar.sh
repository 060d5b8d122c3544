# flint run --image TAR: a userland from a tar archive, plain and gzip (the
# kind judged by content: the names say nothing), extracted and made into an
# ext4 image; modes and symlinks survive; the archive is not touched.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-image.sh"

src=$T/src
mkdir -p "$src/etc" "$src/srv"
busybox_userland "$src" sh cat ls stat readlink
echo from-the-tar >"$src/etc/marker"
chmod 640 "$src/etc/marker"
ln -s ../etc/marker "$src/srv/link"
tar -C "$src" -cf "$T/plain.img" .
gzip -c "$T/plain.img" >"$T/packed.img"
sum=$(sha256sum "$T/packed.img" | cut -d' ' -f1)

for a in plain packed; do
	run --image "$T/$a.img" -- sh -c 'cat /srv/link; stat -c %a /etc/marker; echo w >/w && echo writable'
	expect_status 0 "a job from the $a tar archive"
	grep -qx from-the-tar "$OUT" || fail "$a: the symlink to /etc/marker did not lead to it"
	grep -qx 640 "$OUT" || fail "$a: /etc/marker lost its mode 640"
	grep -qx writable "$OUT" || fail "$a: / was not writable"
done
expect_err "gzip-compressed tar archive" "the gzip archive recognised"
[ "$(sha256sum "$T/packed.img" | cut -d' ' -f1)" = "$sum" ] || fail "the archive changed"
