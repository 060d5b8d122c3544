# seccomp: flint's hidden test hook (--seccomp-test-forbidden THREAD) makes
# a forbidden call (execve) on one kind of thread right after that thread
# installed its filter. By default SIGSYS kills flint (status 128+31); with
# --seccomp-log the call is only logged, in the kernel log under the
# thread's name, and the guest runs to its end. Main, vCPU and event-loop
# threads on a booted guest with a drive, the relay thread in flint run.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
need_guest

truncate -s 1M "$T/disk"

# Kernel log lines of seccomp's log action for execve (59) by thread COMM.
logged() {
	dmesg | grep 'type=1326' | grep "comm=\"$1\"" | grep -c ' syscall=59 '
}

# hook THREAD COMM [run] ARGS...: the hook on THREAD kills flint, and only
# logs (as COMM) with --seccomp-log.
hook() {
	t=$1 comm=$2 sub=
	shift 2
	[ "$1" = run ] && sub=run && shift
	flint $sub --seccomp-test-forbidden $t "$@"
	expect_status 159 "SIGSYS from the forbidden call on the $t thread"
	expect_err "seccomp test hook: execve on the $t thread\$" "the hook's line for the $t thread"
	before=$(logged "$comm")
	flint $sub --seccomp-test-forbidden $t --seccomp-log "$@"
	expect_err "execve on the $t thread returned -1 \(No such file or directory\): logged" \
		"the hook's call on the $t thread going through in log mode"
	[ "$(logged "$comm")" -gt "$before" ] ||
		fail "no kernel log line for execve by $comm: $(dmesg | grep 'type=1326' | tail -n 3)"
}

guest="--kernel $KERNEL --initrd $INITRD --mem 128M --console stdio --drive path=$T/disk"
# shellcheck disable=SC2086
{
	hook main flint $guest -- sh -c 'echo sum=$((40+2))'
	expect_status 0 "the guest's command, the main thread's call only logged"
	expect_out '^sum=42$' "the guest's output (sum=42)"
	hook vcpu vcpu0 $guest -- sh -c 'echo sum=$((40+2))'
	expect_status 0 "the guest's command, the vCPU's call only logged"
	expect_out '^sum=42$' "the guest's output (sum=42)"
	hook evloop evloop $guest -- sh -c 'echo sum=$((40+2)) && head -c 4 /dev/vda | wc -c'
	expect_status 0 "the guest's command, the event loop's call only logged"
	expect_out '^ *4$' "4 bytes read from the drive through the event loop"
}

if [ -f "${ROOTFS:-}" ]; then
	hook run run run --kernel "$KERNEL" --rootfs "$ROOTFS" -- sh -c 'echo sum=$((40+2))'
	expect_status 0 "flint run's command, the relay thread's call only logged"
	expect_out '^sum=42$' "the command's output through the agent (sum=42)"
else
	fail "no ext4 root image at ${ROOTFS:-\$ROOTFS} for the flint run thread (make rootfs-img)"
fi
