# A snapshot records what its drives' images were: a restore onto a root
# image whose file system was made again (another UUID: here its bytes
# changed in place) is refused with 125 and a message naming both UUIDs,
# before the guest runs; with the image it was saved with, it restores.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

cp "$ROOTFS" "$T/root.ext4" || fail "cannot copy $ROOTFS"
"$FLINT" run --kernel "$KERNEL" --rootfs "$T/root.ext4" --save-snapshot "$T/s.state" \
	--save-mem "$T/s.mem" </dev/null >"$OUT" 2>"$ERR" || fail "the save failed ($?): $(tail -n 3 "$ERR")"
cp "$T/root.ext4" "$T/saved.ext4"

# s_uuid, 1024 + 104 bytes into the image.
printf '\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020' |
	dd of="$T/root.ext4" bs=1 seek=1128 conv=notrunc 2>/dev/null || fail "cannot change the UUID"
status=0
"$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" -- echo restored </dev/null \
	>"$OUT" 2>"$ERR" || status=$?
echo "restore onto another file system -> status $status"
[ "$status" = 125 ] || fail "status $status, expected 125: $(tail -n 3 "$ERR")"
grep -q "holds another file system (UUID 01020304-0506-0708-090a-0b0c0d0e0f10) than the one the snapshot was saved with" "$ERR" ||
	fail "stderr lacks the two UUIDs: $(tail -n 3 "$ERR")"
! grep -qx restored "$OUT" || fail "the guest ran"

cp "$T/saved.ext4" "$T/root.ext4"
"$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" -- echo restored </dev/null \
	>"$OUT" 2>"$ERR" || fail "the restore with the saved image failed ($?): $(tail -n 3 "$ERR")"
grep -qx restored "$OUT" || fail "the restored guest did not answer"
