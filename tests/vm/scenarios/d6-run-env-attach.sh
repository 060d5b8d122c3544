# flint run --env and --workdir reach the command (a boot, a restore and
# an attach), the agent's PATH staying unless replaced; a --workdir that is
# not there is 127. --save-after: a prepare command runs at boot, and only
# when it exits 0 is the VM saved (a restore sees the file it wrote in
# /tmp); a failing prepare exits with its status and leaves no snapshot
# files. --attach: a VM restored by plain `flint --restore ...
# --vsock-override UDS` in the background runs several --attach commands
# in turn (the second sees the file the first wrote in /tmp; stdin, the
# status, --timeout; a copy-in through a job's symlink refused, a --user
# one made as the user), and runs
# on after each; an --attach to a socket
# nobody serves exits 123 within its 10 s bound and a little more.
# timeout: 400
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

# run ARGS...: flint run ARGS, stdin from /dev/null; stdout in $OUT, stderr
# in $ERR; sets $status and $took (seconds, 1 decimal).
run() {
	status=0
	t0=$(cs)
	"$FLINT" run "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	t1=$(cs)
	took=$((t1 - t0))
	took="$((took / 100)).$((took % 100 / 10))"
	echo "flint run $* -> status $status in $took s"
	if [ "${RIG_VERBOSE:-0}" = 1 ]; then
		sed 's/^/  out: /' "$OUT"
		sed 's/^/  err: /' "$ERR"
	fi
}

# expect_stdout TEXT WHAT: stdout is exactly TEXT (lines joined by "|").
expect_stdout() {
	got=$(tr '\n' '|' <"$OUT")
	[ "$got" = "$1" ] || fail "$2: stdout is '$(head -c 300 "$OUT" | tr '\n' '|')', expected '$1'"
}

P='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# 1. A prepare command at boot, with --env and --workdir: it runs in /tmp
# with FOO and a replaced HOME, PATH as the agent sets it, and writes a
# file; it exits 0, so the VM is saved after it.
run --kernel "$KERNEL" --rootfs "$ROOTFS" --timings --save-snapshot "$T/p.state" \
	--save-mem "$T/p.mem" --save-after --env 'FOO=a b' --env HOME=/root/h --workdir /tmp -- \
	sh -c 'echo "$FOO|$HOME|$PATH"; pwd; echo "$FOO" >prepared'
grep -q 'unknown option --save-after' "$ERR" && fail "this flint has no --save-after"
expect_status 0 "a prepare command that exits 0"
expect_stdout "a b|/root/h|$P|/tmp|" "the prepare command's --env and --workdir"
[ -s "$T/p.state" ] && [ -s "$T/p.mem" ] || fail "--save-after made no snapshot after a prepare that exited 0"
grep -E 'snapshot [0-9.]+ ms' "$ERR" || fail "--timings did not report the snapshot's time"

# 2. A restore sees what the prepare wrote; --env and --workdir again.
run --restore "$T/p.state" --mem-file "$T/p.mem" --env BAR=1 --env PATH=/bin:/usr/bin --workdir /tmp -- \
	sh -c 'cat prepared; echo "$BAR|$PATH|$FOO"; pwd'
expect_status 0 "a command in a VM restored from the prepared snapshot"
expect_stdout "a b|1|/bin:/usr/bin||/tmp|" "the restored command (the prepare's file, its own --env and --workdir)"
# Without them: "/" and the agent's defaults.
run --restore "$T/p.state" --mem-file "$T/p.mem" -- sh -c 'pwd; echo "$PATH"'
expect_status 0 "a restored command without --env or --workdir"
expect_stdout "/|$P|" "the defaults"
# A working directory that is not there: the command does not start.
run --restore "$T/p.state" --mem-file "$T/p.mem" --workdir /no/such/dir -- true
expect_status 127 "a --workdir that is not there"
expect_err "/no/such/dir" "the directory named"

# 3. A prepare that fails: its status, a message, no snapshot files.
run --kernel "$KERNEL" --rootfs "$ROOTFS" --save-snapshot "$T/f.state" --save-mem "$T/f.mem" \
	--save-after -- sh -c 'echo half; echo broken >&2; exit 4'
expect_status 4 "a prepare command that exits 4"
expect_stdout "half|" "the failing prepare's stdout"
expect_err "broken" "the prepare's stderr"
expect_err "no snapshot saved" "the message that nothing was saved"
[ ! -e "$T/f.state" ] && [ ! -e "$T/f.mem" ] || fail "a failed prepare left snapshot files: $(ls -l "$T"/f.*)"

# 4. --attach: a VM that runs on its own, restored by plain flint with its
# vsock device on $T/vm.sock.
"$FLINT" --restore "$T/p.state" --mem-file "$T/p.mem" --vsock-override "$T/vm.sock" \
	--console none </dev/null >"$T/vm.out" 2>"$T/vm.err" &
vmpid=$!
stop_vm() {
	kill -TERM "$vmpid" 2>/dev/null
	wait "$vmpid" 2>/dev/null
}
i=0
while [ ! -S "$T/vm.sock" ] && [ $i -lt 100 ]; do
	kill -0 "$vmpid" 2>/dev/null || { cat "$T/vm.err"; fail "flint --restore --vsock-override ended early"; }
	sleep 0.1
	i=$((i + 1))
done
[ -S "$T/vm.sock" ] || { stop_vm; fail "no vsock socket at $T/vm.sock after 10 s"; }

run --attach "$T/vm.sock" --timings -- sh -c 'cat /tmp/prepared; echo one >/tmp/attach1'
[ "$status" = 0 ] || stop_vm
expect_status 0 "the first --attach command"
expect_stdout "a b|" "the first --attach (the prepare's file)"
expect_err "attached; launch to agent ready" "--timings' attach line"
kill -0 "$vmpid" 2>/dev/null || fail "the VM ended after the first --attach"

run --attach "$T/vm.sock" --env X=2 --workdir /tmp -- sh -c 'cat attach1; echo "$X"; pwd; exit 9'
[ "$status" = 9 ] || stop_vm
expect_status 9 "the second --attach command's 'exit 9'"
expect_stdout "one|2|/tmp|" "the second --attach (the first's file, --env, --workdir)"

status=0
printf 'abc\n' | "$FLINT" run --attach "$T/vm.sock" -- sh -c 'read x; echo got:$x' >"$OUT" 2>"$ERR" || status=$?
echo "flint run --attach (stdin from a pipe) -> status $status"
[ "$status" = 0 ] || stop_vm
expect_status 0 "an --attach command reading its stdin"
expect_stdout "got:abc|" "the --attach command's stdin"

run --attach "$T/vm.sock" --timeout 1 -- sleep 30
[ "$status" = 124 ] || stop_vm
expect_status 124 "--attach --timeout 1 of 'sleep 30'"
expect_quick 15

# A copy-in after commands follows no symlink to its destination that a
# user other than root could have made: a --user job's link in the path
# cannot have root write where it leads; root's own link is followed.
mkdir -p "$T/ws" && echo ws >"$T/ws/f"
run --attach "$T/vm.sock" --user 1000 -- sh -c 'mkdir -p /tmp/job /tmp/elsewhere && ln -s /tmp/elsewhere /tmp/job/bin'
[ "$status" = 0 ] || stop_vm
run --attach "$T/vm.sock" --copy-in "$T/ws:/tmp/job/bin/ws" -- sh -c 'ls /tmp/elsewhere'
[ "$status" = 125 ] || stop_vm
expect_status 125 "an --attach copy-in through a --user job's symlink"
expect_err "/tmp/job/bin: a symlink on the way" "the refusal"
run --attach "$T/vm.sock" -- sh -c 'mkdir -p /tmp/rootjob/real && ln -s real /tmp/rootjob/bin'
run --attach "$T/vm.sock" --copy-in "$T/ws:/tmp/rootjob/bin/ws" -- cat /tmp/rootjob/real/ws/f
[ "$status" = 0 ] || stop_vm
expect_status 0 "an --attach copy-in through root's own symlink"
expect_stdout "ws|" "the file copied in through root's link"
run --attach "$T/vm.sock" --copy-in "$T/ws:/tmp/job/real/ws" -- cat /tmp/job/real/ws/f
[ "$status" = 0 ] || stop_vm
expect_status 0 "an --attach copy-in to a real path"
expect_stdout "ws|" "the file copied in"
# After commands a --user copy-in is made by the user: into /tmp (1777)
# its own files, into /run (root's 0755) nothing.
run --attach "$T/vm.sock" --user 1000 --copy-in "$T/ws:/tmp/u/ws" -- stat -c '%u %n' /tmp/u /tmp/u/ws/f
[ "$status" = 0 ] || stop_vm
expect_status 0 "an --attach --user copy-in into /tmp"
expect_stdout "1000 /tmp/u|1000 /tmp/u/ws/f|" "the user's copy-in, its own"
run --attach "$T/vm.sock" --user 1000 --copy-in "$T/ws:/run/ws" -- true
[ "$status" = 125 ] || stop_vm
expect_status 125 "an --attach --user copy-in where only root may write"
expect_err "Can't create" "the refusal"

kill -0 "$vmpid" 2>/dev/null || fail "the VM ended during the --attach commands: $(tail -3 "$T/vm.err")"
stop_vm

# 5. Nobody serves the socket: 123 within the 10 s bound (and a margin).
run --attach "$T/nobody.sock" -- true
expect_status 123 "--attach to a socket nobody serves"
expect_err "did not answer" "the reason"
expect_quick 20
# The stopped VM's socket: nothing answers there either.
run --attach "$T/vm.sock" -- true
expect_status 123 "--attach to the socket of a VM that has stopped"
expect_quick 20
echo "flint run --env, --workdir, --save-after and --attach work"
