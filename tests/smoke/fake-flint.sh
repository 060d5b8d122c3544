#!/bin/sh
# A stand-in for flint run, for tests/smoke/serve.sh: flint serve's logic
# (HTTP, the registry, the pool, statuses, draining, metrics, stopping)
# without a guest. It takes flint run's options as flint serve passes them:
#   run --save-snapshot S --save-mem M ...  writes S and M (registering)
#   run --restore S --mem-file M [--wait-fd 3] [--status-fd 4] [--timeout T]
#       ... -- COMMAND   waits for the go byte on fd 3 (its end: exit 0),
#       runs COMMAND (in this host's shell: the "guest"), writes flint
#       run's status line on fd 4, "tears down" for FAKE_TEARDOWN seconds,
#       exits with the command's status; a status of 122 or 123 from the
#       command stands for a guest crash (named on stderr) or a lost
#       agent, as flint's own.
#       With FAKE_CRASH_ONCE=F: the first restore (after its go byte) to
#       remove F "crashes" before the command instead, as flint does when
#       a restored guest dies before the request reaches it: a message,
#       the status line with sent=0, exit 122.
#   --restore ... --vsock-override U [--control-fd N] (a VM that runs on,
#       for reuse or a per-request VM reset in place)   serves U as the
#       VM's vsock device and agent would (fake-agent.py exec: commands run
#       in this host's shell), answers "ok 1" to each "reset" line on fd N
#       and exits 0 at its end; without one, serves until killed; with
#       FAKE_CRASH_ONCE=F, the first to remove F "crashes" instead before
#       its agent ever answers (exit 122, the reason on stderr)
# A registration fails when the prepare command does.
wait=; sfd=; save=; mem=; timeout=; vm=; cfd=; uds=
[ "${1:-}" = run ] && shift || vm=1
while [ $# -gt 0 ]; do
	case $1 in
	--wait-fd) wait=$2; shift ;;
	--status-fd) sfd=$2; shift ;;
	--save-snapshot) save=$2; shift ;;
	--save-mem) mem=$2; shift ;;
	--timeout) timeout=$2; shift ;;
	--control-fd) cfd=$2; shift ;;
	--vsock-override) uds=$2; shift ;;
	--) shift; break ;;
	esac
	shift
done
# crashes_once: this flint is the first to remove FAKE_CRASH_ONCE's file;
# it then says a triple fault, as flint does, and should exit 122.
crashes_once() {
	[ -n "${FAKE_CRASH_ONCE:-}" ] && rm "$FAKE_CRASH_ONCE" 2>/dev/null || return 1
	echo "flint: guest triple fault on vCPU 0 (KVM_EXIT_SHUTDOWN)" >&2
}
if [ -n "$vm" ]; then
	if crashes_once; then
		sleep 0.2
		exit 122
	fi
	[ -n "$cfd" ] || exec python3 "$(dirname "$0")/fake-agent.py" "$uds" exec
	python3 "$(dirname "$0")/fake-agent.py" "$uds" exec &
	agent=$!
	while eval "read -r line <&$cfd"; do
		[ "$line" = reset ] && eval "echo 'ok 1' >&$cfd"
	done
	kill $agent
	exit 0
fi
if [ -n "$save" ]; then
	if [ $# -gt 0 ]; then "$@" </dev/null >/dev/null || exit $?; fi
	: >"$save" && : >"$mem"
	exit 0
fi
if [ -n "$wait" ]; then
	b=$(dd bs=1 count=1 <&3 2>/dev/null)
	[ -n "$b" ] || exit 0
fi
exec 3<&-
if crashes_once; then
	[ -n "$sfd" ] && eval "printf 'status=122 ready_ms=-1.0 command_ms=-1.0 sent=0\\n' >&$sfd"
	exit 122
fi
if [ -n "$timeout" ]; then
	timeout -s KILL "$timeout" "$@" 4>&-
	st=$?
	[ $st = 137 ] && st=124
else
	"$@" 4>&-
	st=$?
fi
[ $st = 122 ] && echo "flint: guest kernel panic: Kernel panic - not syncing: fake" >&2
[ -n "$sfd" ] && eval "printf 'status=%d ready_ms=1.0 command_ms=2.0 sent=1\\n' $st >&$sfd"
sleep "${FAKE_TEARDOWN:-0}"
exit $st
