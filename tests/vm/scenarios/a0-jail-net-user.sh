# flint run --net user under flint-jail: flint in the jail cannot start
# passt (it is not there, and must run in the host's namespaces), so the
# jailer starts it outside the jail, as the jail's user, and passes its
# socket to flint as --net user,fd=N. The guest (10.0.2.15) fetches a small
# file and 1 MiB from a busybox httpd on L1's loopback through passt's
# gateway 10.0.2.2, and their contents match; passt ran as the jail's uid
# (the jailer says so) and is gone once flint has exited.
# As in f0-net-user: passt needs a default route (a tap with one stands in)
# and a root it can pivot_root from (L1's is its initramfs): the jailer runs
# in a mount namespace whose root is a tmpfs of L1's directories, moved
# over / as switch_root does.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-net.sh"
. "$(dirname "$0")/../lib-jail.sh"
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
"$SFLINT" --help 2>&1 | grep -q 'user\[,mac' || skip "the static flint has no --net user"
command -v passt >/dev/null || skip "no passt in L1 (the rig copies /usr/bin/passt: apt-get install passt)"

passt_route ju0
serve_www jail-user-net

moved_root /a0-net-root

# jailed ID ARGS...: flint-jail (flint run, a new pid namespace) from that
# root; stdin closed; sets $status.
jailed() {
	id=$1
	shift
	status=0
	in_moved_root "$JAIL" --id "$id" --exec-file "$SFLINT" --uid $JUID \
		--gid $JUID --chroot-base-dir "$BASE" --new-pid-ns -- run --kernel "$KERNEL" \
		--rootfs "$ROOTFS" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint-jail --id $id ... -- run $* -> status $status"
}

jailed net --net user -- sh -c 'ip -4 addr show eth0; ip route;
	wget -q -O - http://10.0.2.2:8080/hello.txt;
	echo big=$(wget -q -O - http://10.0.2.2:8080/big | sha256sum)'
keep_logs jail-net-user
expect_status 0 "the guest's fetches through the jailer's passt"
expect_err "flint-jail: passt \(pid [0-9]+\) for --net user \(interface net0\), as uid $JUID gid $JUID, on flint's descriptor 3" \
	"the jailer starting passt as the jail's user"
grep -q "^$marker\$" "$OUT" || fail "the guest did not get hello.txt ($marker)"
got_big=$(sed -n 's/^big=\([0-9a-f]\{64\}\).*/\1/p' "$OUT")
[ "$got_big" = "$want_big" ] || fail "1 MiB from the host: sha256 $got_big in the guest, $want_big sent"
grep -q 'inet 10\.0\.2\.15/24' "$OUT" || fail "eth0 has not 10.0.2.15/24"
grep -q 'default via 10\.0\.2\.2' "$OUT" || fail "no default route via 10.0.2.2"
passt=$(sed -n 's/^flint-jail: passt (pid \([0-9]*\)).*/\1/p' "$ERR")

# passt ends with flint (its socket's end): not running, or a zombie
# L1's init has not reaped yet.
passt_alive() {
	[ -n "$passt" ] && [ -d "/proc/$passt" ] &&
		! sed -n 's/^State:[[:space:]]*//p' "/proc/$passt/status" | grep -q '^Z'
}
for _ in $(seq 50); do
	passt_alive || break
	sleep 0.1
done
! passt_alive || fail "passt $passt still runs after flint"

# A passt that cannot start: refused naming it, nothing left in the base.
export FLINT_PASST=/nonexistent/passt
jailed net-bad --net user -- true
unset FLINT_PASST
expect_status 125 "the jailer's refusal"
expect_err "flint-jail: start passt: for --net user \(interface net0\)" "the step that failed"
expect_err "FLINT_PASST=/nonexistent/passt" "passt named"
[ ! -e "$BASE/flint/net-bad" ] || fail "the failed launch left $BASE/flint/net-bad"
rm -rf "$BASE/flint/net" || fail "the jail cannot be removed"
echo "hello.txt and 1 MiB fetched through passt (pid $passt, uid $JUID) started by flint-jail"
