# flint run relays its stdin to the command (a pipe, a file), and large
# streams arrive intact both ways.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

status=0
printf 'abc\nline 2\n' | "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" -- \
	sh -c 'read x; echo got:$x; cat' >"$OUT" 2>"$ERR" || status=$?
echo "flint run (stdin from a pipe) -> status $status"
expect_status 0 "the command reading its stdin"
[ "$(cat "$OUT")" = "got:abc
line 2" ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'got:abc' then 'line 2'"

# 2 MiB through the guest and back: stdin to cat, cat's stdout to us.
head -c 2097152 /dev/urandom >"$T/big"
status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" -- cat <"$T/big" >"$T/back" 2>"$ERR" || status=$?
echo "flint run -- cat (2 MiB from a file) -> status $status"
expect_status 0 "cat"
cmp -s "$T/big" "$T/back" || fail "2 MiB through 'cat' came back as $(wc -c <"$T/back") different bytes"
