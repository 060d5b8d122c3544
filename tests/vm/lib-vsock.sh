# Helpers for the vsock scenarios (95-97): the guest boots from
# $TEST_INITRD, which has the test tools in /bin, with a vsock device whose
# Unix socket is $T/v.sock; the host end runs $TOOLS/vstream.

need_vstream() {
	need_guest
	[ -x "${TOOLS:-}/vstream" ] && [ -f "${TEST_INITRD:-}" ] ||
		skip "no vstream in \$TOOLS or no \$TEST_INITRD (make test-tools)"
}

# boot_vsock ARGS...: boot with the test initramfs and the vsock device.
boot_vsock() {
	boot --initrd "$TEST_INITRD" --mem 256M --stats --vsock "cid=3,uds=$T/v.sock" "$@"
}

# The host end's output, for the log.
show_host() {
	sed 's/^/  host: /' "$T/host" | grep -v ': stream [0-9]*: .* ok$' || true
}

# check_streams N HOST_PID: the host end (HOST_PID, output in $T/host) and
# the guest end (the last boot) each report N of N streams matched.
check_streams() {
	host_status=0
	wait "$2" || host_status=$?
	show_host
	expect_status 0 "every stream matched in the guest"
	expect_out "^vstream: $1 of $1 streams ok" "the guest's '$1 of $1 streams ok'"
	[ $host_status = 0 ] || fail "the host end failed (status $host_status)"
	grep -q "^vstream: $1 of $1 streams ok" "$T/host" || fail "the host end lacks '$1 of $1 streams ok'"
	echo "guest: $(grep '^vstream: [0-9]* of' "$OUT")"
}
