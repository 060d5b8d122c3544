# flint run --env, --workdir, --save-after and --attach without a guest:
# their refusals (exit 125, naming the option), and --attach end to end
# against a stand-in for a running VM's vsock device and agent
# (fake-agent.py): the CONNECT line, the request with the environment and
# working directory, stdin, the status, a lost connection (123), and the
# seccomp filters flint installs on the way. No KVM needed. The real agent
# in a real VM: tests/vm/scenarios/d6-run-env-attach.sh.
# Sourced by run.sh, which provides FLINT, OUT, check() and report().

check run-env-bad-name 125 "" "--env 1A=x: expected NAME=VALUE" -- \
	run --env 1A=x -- true
check run-env-no-equals 125 "" "--env FOO: expected NAME=VALUE" -- \
	run --env FOO -- true
check run-workdir-relative 125 "" "--workdir tmp: expected an absolute path" -- \
	run --workdir tmp -- true
check run-save-after-no-command 125 "" "--save-after needs --save-snapshot FILE" -- \
	run --save-snapshot "$OUT/s" --save-mem "$OUT/m" --save-after
check run-save-after-no-snapshot 125 "" "--save-after needs --save-snapshot FILE" -- \
	run --save-after -- true
check run-attach-machine 125 "" "flint run --attach: the VM is running already" -- \
	run --attach "$OUT/none.sock" --mem 256 -- true
check run-attach-restore 125 "" "--restore and the snapshot options cannot be combined" -- \
	run --attach "$OUT/none.sock" --restore s --mem-file m -- true
check run-attach-no-command 125 "" "flint run --attach: no command" -- \
	run --attach "$OUT/none.sock"
check env-not-flint-run 125 "" "--env is an option of flint run" -- \
	--kernel k --env A=1

# fake_agent NAME [drop]: a stand-in listening on $OUT/NAME.sock.
fake_agent() {
	rm -f "$OUT/$1.sock" "$OUT/$1.sock.ready"
	python3 "$(dirname "$0")/fake-agent.py" "$OUT/$1.sock" ${2:-} &
	fake_pid=$!
	i=0
	while [ ! -e "$OUT/$1.sock.ready" ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP flint run --attach against a stand-in agent: no python3"
else
	fake_agent attach
	# --timings, so that stderr has one line, this one, and nothing else.
	attached="^flint run: attached; launch to agent ready [0-9.]* ms, command [0-9.]* ms$"
	check run-attach-env-workdir 0 \
		"argv=sh,-c,echo \$FOO env=FOO=a b,HOME=/tmp cwd=/srv timeout_ms=7000" "$attached" -- \
		run --attach "$OUT/attach.sock" --timings --timeout 7 --env "FOO=a b" --env HOME=/tmp \
		--workdir /srv -- sh -c 'echo $FOO'
	check run-attach-default-cwd 0 "env= cwd=/ timeout_ms=0" "$attached" -- \
		run --attach "$OUT/attach.sock" --timings -- true
	check run-attach-status 7 "argv=exit,7" "$attached" -- \
		run --attach "$OUT/attach.sock" --timings -- exit 7
	# stdin relayed (check gives /dev/null, so by hand).
	printf 'abc' | timeout 20 "$FLINT" run --attach "$OUT/attach.sock" -- cat \
		>"$OUT/run-attach-stdin.out" 2>"$OUT/run-attach-stdin.err"
	st=$?
	why=""
	[ $st = 0 ] || why="status $st, expected 0"
	[ -z "$why" ] && ! grep -q "^stdin=abc" "$OUT/run-attach-stdin.out" && why="no stdin=abc"
	report run-attach-stdin "$why" "$OUT/run-attach-stdin.err"
	# The filters of a VM's flint run: the run thread's, and the main
	# thread's once it only waits.
	for t in main run; do
		check run-attach-seccomp-$t 159 - "seccomp test hook: execve on the $t thread$" -- \
			run --attach "$OUT/attach.sock" --seccomp-test-forbidden $t -- true
	done
	kill "$fake_pid" 2>/dev/null
	wait "$fake_pid" 2>/dev/null

	fake_agent dropped drop
	check run-attach-connection-lost 123 "" "lost the connection to the guest agent" -- \
		run --attach "$OUT/dropped.sock" -- true
	kill "$fake_pid" 2>/dev/null
	wait "$fake_pid" 2>/dev/null
	rm -f "$OUT/attach.sock" "$OUT/attach.sock.ready" "$OUT/dropped.sock" \
		"$OUT/dropped.sock.ready"
fi
