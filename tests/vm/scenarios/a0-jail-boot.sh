# flint-jail boots the guest and it runs a command; meanwhile flint, seen
# from outside, runs as the given uid and gid with no capabilities at all,
# no_new_privs, in its cgroup with the limit in force, and sees only the
# jail's files; afterwards nothing is mounted and the jail can be removed.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-jail.sh"

t0=$(cs)
# (not through the jail function: $! must be flint-jail's pid, which becomes flint's)
"$JAIL" --id boot --exec-file "$SFLINT" --uid $JUID --gid $JUID --chroot-base-dir "$BASE" \
	--parent-cgroup flint-test --cgroup "$MEMFILE=256M" -- --kernel "$KERNEL" --initrd "$INITRD" --mem 128M \
	--console stdio -- sh -c 'sleep 3; echo sum=$((40+2))' </dev/null >"$T/raw" 2>"$ERR" &
pid=$!
i=0
while ! grep -q 'flint-init: ready' "$T/raw" && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
tr -d '\r' <"$T/raw" >"$OUT"
grep -q 'flint-init: ready' "$OUT" || { wait $pid; fail "the guest did not reach init under flint-jail"; }
st=/proc/$pid/status
why=
for f in "Name:	flint" "Uid:	$JUID	$JUID	$JUID	$JUID" "Gid:	$JUID	$JUID	$JUID	$JUID" \
	"CapEff:	0000000000000000" "CapPrm:	0000000000000000" "CapInh:	0000000000000000" \
	"CapBnd:	0000000000000000" "CapAmb:	0000000000000000" "NoNewPrivs:	1"; do
	grep -qxF "$f" "$st" || why="$why '$f'"
done
cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
[ "$MEMFILE" = memory.max ] || cg=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*://p' "/proc/$pid/cgroup")
limit=$(cat "$CGMEM/flint-test/boot/$MEMFILE")
seen=$(ls -A "/proc/$pid/root/" | tr '\n' ' ')
want="dev flint flint.pid $(basename "$INITRD") $(basename "$KERNEL") "
pidfile=$(cat "/proc/$pid/root/flint.pid" 2>&1)
kill -0 $pid 2>/dev/null || fail "flint ended before it could be inspected"
wait $pid || status=$?
tr -d '\r' <"$T/raw" >"$OUT"
echo "flint-jail ... -> status $status in $(( ($(cs) - t0) / 100 )) s"
[ -z "$why" ] || fail "/proc/$pid/status lacks$why"
[ "$cg" = /flint-test/boot ] || fail "flint is in cgroup '$cg', expected /flint-test/boot"
[ "$limit" = 268435456 ] || fail "its $MEMFILE is '$limit', expected 256 MiB"
[ "$seen" = "$want" ] || fail "flint's / holds '$seen', expected '$want'"
[ "$pidfile" = "$pid" ] || fail "the pid file says '$pidfile', flint is $pid"
expect_status 0 "the guest command's"
expect_out 'sum=42' "the command's output 'sum=42'"
expect_unmounted
rm -rf "$BASE/flint/boot" || fail "the jail cannot be removed"
rmdir "$CGMEM/flint-test/boot" || fail "the cgroup cannot be removed"
