# flint run --user: the job runs as that user, and the agent, which runs as
# root and serves the host over vsock, serves nobody else. The guest's
# kernel has the vsock loopback (CONFIG_VSOCKETS_LOOPBACK), so a process in
# the guest reaches the agent's port at CID 1 or at the guest's own CID (3
# under flint run); a
# request from there, without a user, would run as root. The job asks the
# agent for `id -u` both ways and must get no answer; the same tool run as
# root is refused too (the agent checks the peer, not the asker's user).
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
[ -x "${TOOLS:-}/agentprobe" ] || fail "no \$TOOLS/agentprobe (make test-tools)"

run() {
	status=0
	"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
	sed 's/^/  /' "$OUT" "$ERR" | head -20
}

probe='for c in local 3; do /tmp/agentprobe $c id -u; echo "$c: $?"; done'
run --user 1000 --copy-in "$TOOLS/agentprobe:/tmp/agentprobe" -- sh -c "id -u; $probe"
expect_status 0 "the --user job"
grep -qx 1000 "$OUT" || fail "the job did not run as 1000"
! grep -qx 0 "$OUT" || fail "a --user job had the agent run a command as root"
for c in local 3; do
	grep -qx "$c: 3" "$OUT" || fail "the agent at CID $c did not close an asker in the guest unanswered"
done

run --copy-in "$TOOLS/agentprobe:/tmp/agentprobe" -- sh -c "$probe"
expect_status 0 "the root job"
for c in local 3; do
	grep -qx "$c: 3" "$OUT" || fail "the agent at CID $c served a process in the guest"
done
echo "the agent serves the host only"
