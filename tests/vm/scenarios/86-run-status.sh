# flint run: the command's stdout and stderr kept apart and its exit status
# as flint's; 127 for a command that does not exist, 128+N for one killed by
# signal N.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

# run ARGS...: flint run on the built guest, stdin from /dev/null.
run() {
	status=0
	"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
}

run -- sh -c 'echo out; echo err >&2; exit 3'
expect_status 3 "the command's 'exit 3'"
[ "$(cat "$OUT")" = out ] || fail "stdout is '$(head -c 300 "$OUT")', expected exactly 'out'"
expect_err '^err$' "the command's 'err' on stderr"
! grep -q '^out$' "$ERR" || fail "the command's stdout went to stderr"

run -- no-such-command
expect_status 127 "a command that does not exist"
expect_err "cannot run 'no-such-command'" "the reason it did not start"

run -- sh -c 'kill -9 $$'
expect_status 137 "128 + SIGKILL"
[ ! -s "$OUT" ] || fail "unexpected stdout: $(head -c 300 "$OUT")"
