#!/bin/sh
# Host tests of flint-jail: everything that needs no Linux guest. A probe
# program (tests/jail/probe.c) stands in for flint and reports what a jailed
# process sees; /proc/<pid> of the jailed process is read from outside; the
# static flint boots the smoke tests' tiny guest inside the jail (the jail
# has no /sys, so flint does not see this host's kvm_pvm and lets the tiny
# guest run, as FLINT_ALLOW_PVM would). They need root; without it they say
# SKIP. Usage: run.sh BUILD-DIR
set -u
BUILD=$1
# Absolute: one check runs the jailer from another working directory.
JAIL=$(cd "$BUILD" && pwd)/flint-jail
pass=0 fail=0 skipped=0

if [ "$(id -u)" != 0 ]; then
	echo "SKIP jail-test: flint-jail needs root"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

T=$(mktemp -d /tmp/flint-jail-test.XXXXXX) || exit 1
# The jailer opens every file it stages as the jail's user, through its
# whole path: the files, and the binaries (copied, wherever the checkout
# is), are where that user can reach them.
chmod 755 "$T"
mkdir "$T/bin" "$T/dyn"
# A dynamically linked exec file, which the jail refuses (flint itself is
# static): coreutils' true under flint's name.
cp "$BUILD/jail/probe" "$BUILD/jail/flint" "$T/bin/" && cp /bin/true "$T/dyn/flint" || exit 1
PROBE=$T/bin/probe
SFLINT=$T/bin/flint
BASE=$T/base
U=54321
OUT=$T/out
ERR=$T/err
MEMCG=
TMPFS=
cleanup() {
	[ -n "$TMPFS" ] && umount "$TMPFS" 2>/dev/null
	[ -n "$MEMCG" ] && find "$MEMCG" -depth -type d -exec rmdir {} + 2>/dev/null
	rmdir /sys/fs/cgroup/pids/flint-jail-test/* /sys/fs/cgroup/pids/flint-jail-test 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() {
	echo "PASS $1"
	pass=$((pass + 1))
}
bad() {
	echo "FAIL $1 ($2)"
	sed 's/^/    err: /' "$ERR" | head -5
	fail=$((fail + 1))
}
skip() {
	echo "SKIP $1 ($2)"
	skipped=$((skipped + 1))
}

# jail ARGS...: flint-jail with stdin closed; sets $status.
jail() {
	status=0
	timeout 20 "$JAIL" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
}
# The timing arguments the jailer gave (as Firecracker's): the launch's
# start before the probe's now and within 20 s of it, the parent's CPU
# time $1 ("0", or "some" for more than 0) and --start-time-cpu-us $2
# ("0" or "any").
timing() {
	local start cpu parent now
	start=$(sed -n '/^arg=--start-time-us$/{n;s/^arg=//p}' "$OUT")
	cpu=$(sed -n '/^arg=--start-time-cpu-us$/{n;s/^arg=//p}' "$OUT")
	parent=$(sed -n '/^arg=--parent-cpu-time-us$/{n;s/^arg=//p}' "$OUT")
	now=$(sed -n 's/^mono_us=//p' "$OUT")
	case "$start$cpu$parent" in '' | *[!0-9]*)
		why="timing arguments '$start' '$cpu' '$parent'"
		return 1 ;;
	esac
	if [ "$start" -gt "$now" ] || [ $((now - start)) -gt 20000000 ]; then
		why="--start-time-us $start, the probe's CLOCK_MONOTONIC $now"
		return 1
	fi
	if { [ "$1" = 0 ] && [ "$parent" != 0 ]; } || { [ "$1" = some ] && [ "$parent" = 0 ]; }; then
		why="--parent-cpu-time-us $parent, expected $1"
		return 1
	fi
	if [ "$2" = 0 ] && [ "$cpu" != 0 ]; then
		why="--start-time-cpu-us $cpu, expected 0"
		return 1
	fi
}

# Lines the probe printed must all be there.
has() {
	for l in "$@"; do grep -qxF -- "$l" "$OUT" || {
		why="output lacks '$l'"
		return 1
	}; done
}
# Nothing under the base directory but what is named, nothing mounted.
left() {
	find "$BASE" -mindepth 1 2>/dev/null | sort | tr '\n' ' '
}
mounted() {
	grep -c " $BASE" /proc/self/mountinfo
}

ID="--uid $U --gid $U --chroot-base-dir $BASE"

# The probe, started in the background with "wait", has printed everything.
wait_end() {
	for _ in $(seq 50); do
		grep -q '^end$' "$OUT" && return
		sleep 0.1
	done
}

# --- option checks: nothing is created -----------------------------------
for c in "bad-id:--id a/b:--id a/b" \
	"long-id:--id $(printf '%065d' 0):expected letters" \
	"unknown-option:--id a --frob:unknown option --frob" \
	"bad-cgroup:--id a --cgroup memory:expected FILE=VALUE" \
	"cgroup-core-file:--id a --cgroup cgroup.procs=1:managed by flint-jail" \
	"uid-0:--id a --uid 0:--uid 0: flint-jail never runs flint as root"; do
	name=${c%%:*} rest=${c#*:}
	args=${rest%%:*} want=${rest#*:}
	# shellcheck disable=SC2086
	jail --exec-file "$PROBE" $ID $args
	why=
	[ "$status" = 125 ] || why="status $status"
	[ -z "$why" ] && ! grep -q -- "^flint-jail: options: .*$want" "$ERR" && why="no '$want'"
	[ -z "$why" ] && [ -n "$(left)" ] && why="left $(left)"
	[ -z "$why" ] && ok "options-$name" || bad "options-$name" "$why"
done

# --- a jailed process: ids, capabilities, view, rlimits ------------------
mkdir -p "$T/files"
echo kernel >"$T/files/vmlinux"
echo disk >"$T/files/disk.img"
chmod 644 "$T/files/vmlinux"
chown "$U:$U" "$T/files/disk.img"
jail --id view --exec-file "$PROBE" $ID --resource-limit no-file=100 \
	--resource-limit fsize=1048576 -- --kernel "$T/files/vmlinux" \
	--drive "path=$T/files/disk.img,id=d" --vsock "cid=3,uds=/run/v/sock" -- exit 7 x
R=$BASE/probe/view/root
# The jail's /dev/kvm opens where the host's does (some hosts have none).
kvm=fails
[ -c /dev/kvm ] && kvm=opens
why=
[ "$status" = 7 ] || why="status $status, expected the probe's 7"
[ -z "$why" ] && has "uid=$U $U $U" "gid=$U $U $U" groups=0 capeff=000000000 \
	capprm=000000000 capinh=000000000 capbnd=0 nnp=1 nofile=100 fsize=1048576 env=0 \
	"fds=0 1 2 " argv0=/probe kvm=$kvm
[ -z "$why" ] && has "arg=--id" "arg=view" "arg=--kernel" "arg=/vmlinux" "arg=path=/disk.img,id=d" \
	"arg=cid=3,uds=/run/v/sock" "arg=x"
# The jailer became the probe: its CPU time since the start is the
# process's own, none a parent's.
[ -z "$why" ] && timing 0 any
files=$(sed -n 's/^file=//p' "$OUT" | sort | tr '\n' ';')
want="/dev d 0:0 755;/dev/kvm c $U:$U 600;/dev/net d 0:0 755;/dev/net/tun c $U:$U 600;\
/dev/urandom c $U:$U 600;/disk.img f $U:$U 644;/probe f 0:0 755;/probe.pid f 0:0 644;\
/run d $U:$U 755;/run/v d $U:$U 755;/vmlinux f 0:0 644;"
[ -z "$why" ] && [ "$files" != "$want" ] && why="sees $files"
# The root is the tenant's and closed to other users, as Firecracker's.
[ -z "$why" ] && [ "$(stat -c %u:%g:%a "$R")" != "$U:$U:700" ] &&
	why="the jail's root is $(stat -c %u:%g:%a "$R")"
# Its path is root's alone: the tenant's other processes cannot walk to it.
[ -z "$why" ] && [ "$(stat -c %u:%g:%a "${R%/root}")" != "0:0:700" ] &&
	why="the jail's <id> is $(stat -c %u:%g:%a "${R%/root}")"
# Landlock (ABI 4+): the probe may not bind a TCP socket, which it could
# in the host's network namespace otherwise.
abi=$(sed -n 's/^landlock_abi=//p' "$OUT")
if [ -z "$why" ] && [ "${abi:--1}" -ge 4 ]; then
	has "tcpbind=Permission denied"
elif [ -z "$why" ]; then
	echo "    (the kernel's Landlock ABI is ${abi:-unknown}: no TCP confinement to check)"
	grep -q "^flint-jail: Landlock: the kernel has none" "$ERR" || [ "${abi:--1}" -ge 1 ] ||
		why="no Landlock and no word of it"
fi
# The jailer became the probe, whose pid is in the pid file all the same.
[ -z "$why" ] && [ "$(cat "$R/probe.pid")" != "$(sed -n 's/^pid=//p' "$OUT")" ] &&
	why="pid file '$(cat "$R/probe.pid")', the probe said $(sed -n 's/^pid=//p' "$OUT")"
# Only a --restore gets a /proc.
[ -z "$why" ] && has "proc=No such file or directory"
[ -z "$why" ] && ! grep -qx "flint-jail: vsock socket at $R/run/v/sock" "$ERR" &&
	why="no host path of the vsock socket"
# A --kernel boot without --api-sock serves no API.
[ -z "$why" ] && grep -q "API socket" "$ERR" && why="an API socket announced"
[ -z "$why" ] && [ "$(stat -c %h "$T/files/vmlinux")" != 2 ] && why="kernel not hard-linked"
# The exec file is a copy of its own: no two jails share its pages.
[ -z "$why" ] && [ "$(stat -c %i "$R/probe")" = "$(stat -L -c %i "$PROBE")" ] &&
	why="the exec file hard-linked"
[ -z "$why" ] && ! cmp -s "$R/probe" "$PROBE" && why="the exec file's copy differs"
[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="$BASE still mounted"
[ -z "$why" ] && ! rm -rf "$BASE/probe/view" && why="the jail cannot be removed"
[ -z "$why" ] && ok "jailed-view" || bad "jailed-view" "$why"

# --- --api-sock: passed through, the socket inside the jail -------------
# The probe binds the socket flint would; the host finds it where the
# jailer says.
jail --id api --exec-file "$PROBE" $ID -- --api-sock api/flint.sock --kernel "$T/files/vmlinux"
R=$BASE/probe/api/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "arg=--api-sock" "arg=/api/flint.sock" "arg=/vmlinux" bind=ok \
	"file=/api d $U:$U 755" "file=/api/flint.sock s $U:$U 755"
[ -z "$why" ] && grep -q "^file=/run" "$OUT" && why="/run made besides --api-sock's directory"
host=$(sed -n 's/^flint-jail: API socket at //p' "$ERR")
[ -z "$why" ] && [ "$host" != "$R/api/flint.sock" ] && why="API socket at '$host'"
[ -z "$why" ] && [ ! -S "$host" ] && why="no socket at $host"
rm -rf "$BASE/probe/api"
[ -z "$why" ] && ok api-sock || bad api-sock "$why"

# No --api-sock, no --kernel: flint's default socket, whose directory /run
# is made (and shared with a vsock socket's, from a config file).
cat >"$T/files/vsock.json" <<EOF
{"boot-source": {"kernel_image_path": "$T/files/vmlinux"}, "drives": [],
 "vsock": {"guest_cid": 3, "uds_path": "/run/v/sock"}}
EOF
echo "{\"boot-source\": {\"kernel_image_path\": \"$T/files/vmlinux\"}, \"drives\": []}" \
	>"$T/files/plain.json"
chmod 644 "$T/files/vsock.json" "$T/files/plain.json"
jail --id apidef --exec-file "$PROBE" $ID -- --config-file "$T/files/vsock.json"
R=$BASE/probe/apidef/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "file=/run d $U:$U 755" "file=/run/v d $U:$U 755"
[ -z "$why" ] && ! grep -qx "flint-jail: API socket at $R/run/flint.socket" "$ERR" &&
	why="no host path of the default API socket"
rm -rf "$BASE/probe/apidef"
[ -z "$why" ] && ok api-sock-default || bad api-sock-default "$why"

# flint run and --no-api: no API socket, no directory for it.
for c in "no-api:--no-api --config-file $T/files/plain.json" \
	"run:run --kernel $T/files/vmlinux --rootfs $T/files/disk.img -- true"; do
	name=${c%%:*}
	# shellcheck disable=SC2086
	jail --id "$name" --exec-file "$PROBE" $ID -- ${c#*:}
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && grep -q "^file=/run" "$OUT" && why="/run made"
	[ -z "$why" ] && grep -q "API socket" "$ERR" && why="an API socket announced"
	rm -rf "$BASE/probe/$name"
	[ -z "$why" ] && ok "api-sock-$name" || bad "api-sock-$name" "$why"
done

# --- a config file: the files it names staged, a copy for flint ---------
# The copy (root's, 0644) names the in-jail paths; its log file is made
# (flint's logger does not create one), the metrics file's and the serial
# output's directories too.
echo ro >"$T/files/ro.img"
chmod 644 "$T/files/ro.img"
cat >"$T/files/vm.json" <<EOF
{"boot-source": {"kernel_image_path": "$T/files/vmlinux"},
 "drives": [{"drive_id": "rootfs", "path_on_host": "$T/files/ro.img", "is_root_device": true,
             "is_read_only": true},
            {"drive_id": "data", "path_on_host": "$T/files/disk.img", "is_root_device": false}],
 "logger": {"log_path": "/logs/fc.log"}, "metrics": {"metrics_path": "/logs/m.json"},
 "serial": {"serial_out_path": "/serial/out.log"}}
EOF
chmod 644 "$T/files/vm.json"
jail --id cfg --exec-file "$PROBE" $ID -- --config-file "$T/files/vm.json" --no-api
R=$BASE/probe/cfg/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "arg=--config-file" "arg=/vm.json" "file=/vm.json f 0:0 644" \
	"file=/vmlinux f 0:0 644" "file=/ro.img f 0:0 644" "file=/disk.img f $U:$U 644" \
	"file=/logs d $U:$U 755" "file=/logs/fc.log f $U:$U 600" "file=/serial d $U:$U 755"
[ -z "$why" ] && grep -q "^file=/serial/" "$OUT" && why="the serial output made (flint makes it)"
[ -z "$why" ] && [ "$(stat -c %h "$T/files/disk.img")" != 2 ] && why="drive not hard-linked"
if [ -z "$why" ]; then
	for w in '"kernel_image_path": "/vmlinux"' '"path_on_host": "/ro.img"' \
		'"path_on_host": "/disk.img"' '"log_path": "/logs/fc.log"' \
		'"metrics_path": "/logs/m.json"' '"serial_out_path": "/serial/out.log"'; do
		grep -qF -- "$w" "$R/vm.json" || why="${why}the copy lacks '$w'; "
	done
	grep -qF "$T" "$R/vm.json" && why="${why}the copy names host paths; "
fi
[ -z "$why" ] && ! grep -qx "flint-jail: log file at $R/logs/fc.log" "$ERR" &&
	why="no host path of the log file"
[ -z "$why" ] && ! grep -qx "flint-jail: metrics file at $R/logs/m.json" "$ERR" &&
	why="no host path of the metrics file"
[ -z "$why" ] && ! grep -qx "flint-jail: serial output file at $R/serial/out.log" "$ERR" &&
	why="no host path of the serial output"
rm -rf "$BASE/probe/cfg"
[ -z "$why" ] && ok config-file || bad config-file "$why"

# A file the user may read but could not hard-link themselves, set-user-ID
# root or with file capabilities, named through their own directory (or
# their config file): staged as a copy without those, never as the host's
# inode. A link in a root they own would keep the binary, and its
# privileges, after the host replaces it (say, for a security fix).
mkdir -p "$T/own"
cp /bin/true "$T/files/suid" && chmod 4755 "$T/files/suid"
cp /bin/true "$T/files/capped" && chmod 755 "$T/files/capped"
setcap cap_net_raw+ep "$T/files/capped" 2>/dev/null
ln -sf "$T/files/suid" "$T/own/a.img"
ln -sf "$T/files/capped" "$T/own/b.img"
chown -R "$U:$U" "$T/own"
jail --id suid --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
	--drive "path=$T/own/a.img,ro" --drive "path=$T/own/b.img,ro"
R=$BASE/probe/suid/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "file=/a.img f 0:0 755" "file=/b.img f 0:0 755"
[ -z "$why" ] && [ "$(stat -c %i "$R/a.img")" = "$(stat -c %i "$T/files/suid")" ] &&
	why="the set-user-ID file hard-linked into the jail"
[ -z "$why" ] && [ "$(stat -c %i "$R/b.img")" = "$(stat -c %i "$T/files/capped")" ] &&
	why="the file with capabilities hard-linked into the jail"
[ -z "$why" ] && [ -n "$(getcap "$R/b.img" 2>/dev/null)" ] && why="the copy has capabilities"
[ -z "$why" ] && ! cmp -s "$R/a.img" "$T/files/suid" && why="the copy differs"
rm -rf "$BASE/probe/suid"
[ -z "$why" ] && ok staged-privileged-copied || bad staged-privileged-copied "$why"

# A file whose contents depend on its opener, staged from another file
# system (a copy): sysfs's PCI config space, 64 bytes to a user and 256 or
# 4096 to root. The copy is read as the user: the jail never holds root's
# view (the launch is refused, as the file ends before its size).
pci=$(ls -d /sys/bus/pci/devices/* 2>/dev/null | head -1)
if [ -z "$pci" ] || [ "$(wc -c <"$pci/config")" -le 64 ]; then
	skip staged-copy-read-as-user "no PCI device in /sys whose config root reads whole"
else
	jail --id pci --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
		--drive "path=$pci/config,ro"
	why=
	got=$(wc -c <"$BASE/probe/pci/root/config" 2>/dev/null || echo 0)
	[ "$got" -gt 64 ] && why="$got bytes of the config space staged, the user reads 64"
	[ -z "$why" ] && [ "$status" != 125 ] && why="status $status"
	[ -z "$why" ] && ! grep -q "it ended at byte 64 of the" "$ERR" && why="no message"
	rm -rf "$BASE/probe/pci"
	[ -z "$why" ] && ok staged-copy-read-as-user || bad staged-copy-read-as-user "$why"
fi

# A sparse file of the user's that is copied (executable, so never linked):
# its holes stay holes, where a whole copy would write 64 GiB as root.
truncate -s 64G "$T/own/sparse.img"
printf data | dd of="$T/own/sparse.img" bs=1 seek=$((1 << 30)) conv=notrunc 2>/dev/null
chmod 755 "$T/own/sparse.img"
chown "$U:$U" "$T/own/sparse.img"
jail --id sparse --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
	--drive "path=$T/own/sparse.img,ro"
R=$BASE/probe/sparse/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && [ "$(stat -c %i "$R/sparse.img")" = "$(stat -c %i "$T/own/sparse.img")" ] &&
	why="linked, not copied: the test shows nothing"
[ -z "$why" ] && [ "$(stat -c %s "$R/sparse.img")" != $((64 << 30)) ] && why="the copy's size"
[ -z "$why" ] && [ "$(du -k "$R/sparse.img" | cut -f1)" -gt 1024 ] &&
	why="the copy takes $(du -k "$R/sparse.img" | cut -f1) KiB"
[ -z "$why" ] && [ "$(dd if="$R/sparse.img" bs=1 skip=$((1 << 30)) count=4 2>/dev/null)" != data ] &&
	why="the copy's data"
rm -rf "$BASE/probe/sparse" "$T/own/sparse.img"
[ -z "$why" ] && ok staged-sparse-copy-stays-sparse || bad staged-sparse-copy-stays-sparse "$why"

# --log-path and --metrics-path: paths in the jail, as --api-sock's.
jail --id logs --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
	--log-path log/flint.log --metrics-path=/m/metrics.json
R=$BASE/probe/logs/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "arg=--log-path" "arg=/log/flint.log" "arg=--metrics-path=/m/metrics.json" \
	"file=/log d $U:$U 755" "file=/log/flint.log f $U:$U 600" "file=/m d $U:$U 755"
[ -z "$why" ] && grep -q "^file=/m/" "$OUT" && why="the metrics file made (flint makes it)"
[ -z "$why" ] && ! grep -qx "flint-jail: log file at $R/log/flint.log" "$ERR" &&
	why="no host path of the log file"
[ -z "$why" ] && ! grep -qx "flint-jail: metrics file at $R/m/metrics.json" "$ERR" &&
	why="no host path of the metrics file"
rm -rf "$BASE/probe/logs"
[ -z "$why" ] && ok log-metrics-paths || bad log-metrics-paths "$why"

# --- from outside: /proc/<pid>/status, cgroup, root, rlimits ------------
OWN=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
MEMCG=/sys/fs/cgroup/memory${OWN%/}/flint-jail-test
if [ ! -d /sys/fs/cgroup/memory ] || [ -z "$OWN" ]; then
	skip proc-status "no cgroup v1 memory hierarchy"
else
	mkfifo "$T/hold"
	: >"$OUT"
	PARENT=${OWN#/}
	PARENT=${PARENT:+$PARENT/}flint-jail-test
	"$JAIL" --id outside --exec-file "$PROBE" $ID --parent-cgroup "$PARENT" \
		--cgroup memory.limit_in_bytes=200M -- --kernel "$T/files/vmlinux" \
		--api-sock /run/flint.socket -- wait >"$OUT" 2>"$ERR" <"$T/hold" &
	pid=$!
	exec 8>"$T/hold"
	wait_end
	st=/proc/$pid/status
	why=
	for f in "Uid:	$U	$U	$U	$U" "Gid:	$U	$U	$U	$U" \
		"CapInh:	0000000000000000" "CapPrm:	0000000000000000" \
		"CapEff:	0000000000000000" "CapBnd:	0000000000000000" \
		"CapAmb:	0000000000000000" "NoNewPrivs:	1"; do
		grep -qxF "$f" "$st" || why="${why}no '$f' in $st; "
	done
	cg=$(sed -n 's/^[0-9]*:memory://p' "/proc/$pid/cgroup")
	[ "$cg" = "${OWN%/}/flint-jail-test/outside" ] || why="${why}memory cgroup $cg; "
	lim=$(cat "$MEMCG/outside/memory.limit_in_bytes" 2>/dev/null)
	[ "$lim" = $((200 << 20)) ] || why="${why}memory.limit_in_bytes $lim; "
	grep -q "^Max open files *2048 *2048" "/proc/$pid/limits" || why="${why}no-file not 2048; "
	seen=$(ls -A "/proc/$pid/root/" | tr '\n' ' ')
	# run: the API socket's directory.
	[ "$seen" = "dev probe probe.pid run vmlinux " ] || why="${why}its / holds $seen; "
	[ "$(cat "/proc/$pid/root/probe.pid")" = "$pid" ] || why="${why}pid file not $pid; "
	exec 8>&-
	wait $pid
	[ "$(mounted)" = 0 ] || why="${why}still mounted; "
	rm -rf "$BASE/probe/outside"
	rmdir "$MEMCG/outside" || why="${why}cgroup not removable; "
	[ -z "$why" ] && ok proc-status || bad proc-status "$why"

	# A limit too small for the guest: the jailer refuses and undoes all.
	rm -rf "$BASE"
	jail --id small --exec-file "$PROBE" $ID --parent-cgroup "$PARENT" \
		--cgroup memory.limit_in_bytes=64M -- --kernel "$T/files/vmlinux" --mem 128M
	why=
	[ "$status" = 125 ] || why="status $status"
	want="flint-jail: cgroup memory limit: guest memory 128 MiB does not fit the cgroup memory \
limit 64 MiB ($MEMCG/small/memory.limit_in_bytes)"
	[ -z "$why" ] && ! grep -qF "$want" "$ERR" && why="no '$want'"
	[ -z "$why" ] && [ -d "$MEMCG/small" ] && why="cgroup left behind"
	[ -z "$why" ] && [ -n "$(left)" ] && why="left $(left)"
	[ -z "$why" ] && ok memory-limit-refused || bad memory-limit-refused "$why"

	# flint's own check, outside any jail, from /proc/self/cgroup: made
	# once it has opened /dev/kvm, which some hosts do not have.
	if [ ! -c /dev/kvm ]; then
		skip flint-memory-limit "no /dev/kvm"
	else
		cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none \
			-DEXIT_STATUS -o "$T/tiny.elf" "$(dirname "$0")/../smoke/tiny-guest.S" || exit 1
		mkdir "$MEMCG/flint"
		echo 64M >"$MEMCG/flint/memory.limit_in_bytes"
		status=0
		FLINT_ALLOW_PVM=1 sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$MEMCG/flint" \
			"$BUILD/flint" --kernel "$T/tiny.elf" --mem 128M >"$OUT" 2>"$ERR" || status=$?
		rmdir "$MEMCG/flint"
		why=
		want="flint: guest memory 128 MiB does not fit the cgroup memory limit 64 MiB \
($MEMCG/flint/memory.limit_in_bytes)"
		[ "$status" = 125 ] || why="status $status"
		[ -z "$why" ] && ! grep -qF "$want" "$ERR" && why="no '$want'"
		[ -z "$why" ] && ok flint-memory-limit || bad flint-memory-limit "$why"
	fi
fi

# --- a VM under the jail: the tiny guest on this host's /dev/kvm --------
[ -f "$T/tiny.elf" ] || cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 \
	-Wl,--build-id=none -DEXIT_STATUS -o "$T/tiny.elf" "$(dirname "$0")/../smoke/tiny-guest.S"
if [ ! -c /dev/kvm ]; then
	skip tiny-guest "no /dev/kvm"
else
	jail --id vm --exec-file "$SFLINT" $ID --cgroup pids.max=64 \
		--parent-cgroup flint-jail-test -- --kernel "$T/tiny.elf" --mem 64M
	why=
	if grep -q "kvm_pvm" "$ERR"; then
		skip tiny-guest "flint saw kvm_pvm from inside the jail"
	else
		[ "$status" = 42 ] || why="status $status, expected the guest's 42"
		[ -z "$why" ] && ! grep -q "hello from the tiny guest" "$OUT" && why="no guest output"
		[ -z "$why" ] && ! grep -q "guest boot time" "$ERR" && why="no boot time"
		[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
		rm -rf "$BASE/flint/vm"
		rmdir /sys/fs/cgroup/pids/flint-jail-test/vm 2>/dev/null ||
			why="${why:-pids cgroup vm not made or not removable}"
		[ -z "$why" ] && ok tiny-guest || bad tiny-guest "$why"
	fi
fi

# The same guest from a config file: flint reads the jailer's copy, which
# names the staged kernel.
if [ -c /dev/kvm ] && ! grep -q "kvm_pvm" "$ERR"; then
	echo "{\"boot-source\": {\"kernel_image_path\": \"$T/tiny.elf\"}, \"drives\": []," \
		"\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}" >"$T/tiny.json"
	chmod 644 "$T/tiny.json" "$T/tiny.elf"
	jail --id vmcfg --exec-file "$SFLINT" $ID -- --config-file "$T/tiny.json" --no-api
	why=
	[ "$status" = 42 ] || why="status $status, expected the guest's 42"
	[ -z "$why" ] && ! grep -q "hello from the tiny guest" "$OUT" && why="no guest output"
	rm -rf "$BASE/flint/vmcfg"
	[ -z "$why" ] && ok tiny-guest-config-file || bad tiny-guest-config-file "$why"

	# Its serial output to a file: a path in the jail, whose directory the
	# jailer makes and the jail's user gets; flint creates the file there.
	echo "{\"boot-source\": {\"kernel_image_path\": \"$T/tiny.elf\"}, \"drives\": []," \
		"\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}," \
		"\"serial\": {\"serial_out_path\": \"/serial/out.log\"}}" >"$T/tiny-serial.json"
	chmod 644 "$T/tiny-serial.json"
	jail --id vmser --exec-file "$SFLINT" $ID -- --config-file "$T/tiny-serial.json" --no-api
	R=$BASE/flint/vmser/root
	why=
	[ "$status" = 42 ] || why="status $status, expected the guest's 42"
	[ -z "$why" ] && ! grep -q "hello from the tiny guest" "$R/serial/out.log" 2>/dev/null &&
		why="no guest output in $R/serial/out.log"
	[ -z "$why" ] && [ "$(stat -c %u:%a "$R/serial/out.log")" != "$U:600" ] &&
		why="serial output $(stat -c %u:%a "$R/serial/out.log"), not flint's"
	[ -z "$why" ] && ! grep -qx "flint-jail: serial output file at $R/serial/out.log" "$ERR" &&
		why="no host path of the serial output"
	rm -rf "$BASE/flint/vmser"
	[ -z "$why" ] && ok tiny-guest-serial-file || bad tiny-guest-serial-file "$why"
fi

# --- the jailed flint's API: GET / on the socket inside the jail ---------
# The static flint (libmicrohttpd built without HTTPS, mk/build-mhd.sh)
# answers on <root>/api.sock, where the jailer says. Skipped when flint
# outside the jail does not answer either: not the jail's doing.
# get SOCK: HTTP status of GET / on SOCK in $code, the body in $T/body.
get() {
	for _ in $(seq 50); do
		[ -S "$1" ] && break
		sleep 0.1
	done
	code=$(curl -sS --max-time 5 -o "$T/body" -w '%{http_code}' --unix-socket "$1" \
		http://localhost/ 2>>"$ERR")
}
if ! command -v curl >/dev/null; then
	skip api-get "no curl"
elif ! "$SFLINT" --help 2>&1 | grep -q -- --api-sock; then
	skip api-get "flint has no API"
else
	: >"$ERR"
	"$BUILD/flint" --api-sock "$T/dyn.sock" </dev/null >"$OUT" 2>>"$ERR" &
	pid=$!
	get "$T/dyn.sock"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ "$code" != 200 ]; then
		skip api-get "flint's API answers GET / with '$code' outside the jail too"
	else
		"$JAIL" --id api-get --exec-file "$SFLINT" $ID -- --api-sock api.sock \
			</dev/null >"$OUT" 2>"$ERR" &
		pid=$!
		R=$BASE/flint/api-get/root
		why=
		get "$R/api.sock"
		[ "$code" = 200 ] || why="GET / answered '$code'"
		[ -z "$why" ] && ! grep -q '"state"' "$T/body" && why="body $(cat "$T/body")"
		[ -z "$why" ] && ! grep -qx "flint-jail: API socket at $R/api.sock" "$ERR" &&
			why="no host path of the API socket"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rm -rf "$BASE/flint/api-get"
		[ -z "$why" ] && ok api-get || bad api-get "$why"
	fi
fi

# --- failures name the step and the path, and leave nothing --------------
# check-fails NAME WANT ARGS...: status 125, WANT in stderr, nothing left.
check_fails() {
	name=$1 want=$2
	shift 2
	jail "$@"
	why=
	[ "$status" = 125 ] || why="status $status"
	[ -z "$why" ] && ! grep -qF -- "$want" "$ERR" && why="no '$want'"
	[ -z "$why" ] && [ -n "$(left)" ] && why="left $(left)"
	[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
	[ -z "$why" ] && ok "fails-$name" || bad "fails-$name" "$why"
}
rm -rf "$BASE"
check_fails dynamic-exec "flint-jail: stage: $T/dyn/flint: dynamically linked" \
	--id d --exec-file "$T/dyn/flint" $ID
check_fails missing-kernel "flint-jail: stage: $T/nope: No such file or directory" \
	--id m --exec-file "$PROBE" $ID -- --kernel "$T/nope"
chmod 600 "$T/files/vmlinux"
check_fails unreadable "flint-jail: stage: $T/files/vmlinux: uid $U gid $U may not read it" \
	--id u --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux"
chmod 644 "$T/files/vmlinux"
check_fails rw-drive "may not read and write it" \
	--id w --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
	--drive "path=$T/files/vmlinux"
# A file the user may read, but in a directory they may not search: the
# jailer opens it as them, so they get nothing they could not open.
mkdir -m 700 "$T/closed"
echo kernel >"$T/closed/vmlinux"
chmod 644 "$T/closed/vmlinux"
check_fails unreachable "flint-jail: stage: $T/closed/vmlinux: uid $U gid $U cannot reach it" \
	--id c --exec-file "$PROBE" $ID -- --kernel "$T/closed/vmlinux"
# A searchable directory in that one, through a root process's
# /proc/PID/cwd there: the kernel asks CAP_SYS_PTRACE, not the fsuid,
# before it follows that link past the closed directory, so the jailer
# keeps no such capability while it walks the user's paths.
mkdir -m 755 "$T/closed/open"
cp "$T/closed/vmlinux" "$T/closed/open/vmlinux"
(cd "$T/closed/open" && exec sleep 120) &
holder=$!
check_fails unreachable-proc-link \
	"flint-jail: stage: /proc/$holder/cwd/vmlinux: uid $U gid $U cannot reach it" \
	--id cp --exec-file "$PROBE" $ID -- --kernel "/proc/$holder/cwd/vmlinux"
kill "$holder"
wait "$holder" 2>/dev/null || true
# And through the jailer's own /proc/self/cwd, which the kernel lets a
# process follow with no capability at all: no /proc link is followed.
cd "$T/closed/open"
check_fails unreachable-self-link \
	"flint-jail: stage: /proc/self/cwd/vmlinux: a /proc link (such as /proc/self/cwd)" \
	--id cs --exec-file "$PROBE" $ID -- --kernel /proc/self/cwd/vmlinux
cd - >/dev/null
check_fails api-sock-in-dev "flint-jail: API socket directory: $BASE/probe/a/root/dev: \
already in the jail" --id a --exec-file "$PROBE" $ID -- --api-sock /dev/api.sock
rm -rf "$BASE/probe/a"
check_fails api-sock-up "flint-jail: flint arguments: --api-sock ../api.sock: expected a \
socket path" --id a --exec-file "$PROBE" $ID -- --api-sock ../api.sock
rm -rf "$BASE/probe/a"
# An output at a staged file's name: flint would append its metrics to the
# read-write drive's hard link, the host's image.
cp "$T/files/disk.img" "$T/files/disk.before"
check_fails metrics-at-staged-drive "flint-jail: flint arguments: the metrics file /disk.img: \
/disk.img is where $T/files/disk.img is staged" --id ms --exec-file "$SFLINT" $ID -- \
	--kernel "$T/tiny.elf" --mem 64M --drive "path=$T/files/disk.img" --metrics-path /disk.img
cmp -s "$T/files/disk.img" "$T/files/disk.before" ||
	bad fails-metrics-at-staged-drive-image "the host image changed"
rm -rf "$BASE/flint"
# flint's own parser: what flint would refuse the jailer refuses, with
# flint's message, before making anything.
check_fails unknown-flint-option "flint-jail: flint arguments: unknown option --frob (see --help)" \
	--id f --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" --frob
check_fails mem-as-flint-reads-it "flint-jail: flint arguments: --mem 2T: expected a size" \
	--id f --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" --mem 2T
check_fails mem-whole-mib "flint-jail: flint arguments: --mem: 16388 KiB is not a whole number" \
	--id f --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" --mem 16388K
# The config file is read as the jail's user, as flint would read it.
cp "$T/files/vm.json" "$T/files/secret.json"
chmod 600 "$T/files/secret.json"
check_fails config-unreadable "flint-jail: flint arguments: config file $T/files/secret.json: \
uid $U gid $U cannot read it" --id f --exec-file "$PROBE" $ID -- --config-file "$T/files/secret.json"
echo '{"boot-source": {}, "drives": []}' >"$T/files/bad.json"
chmod 644 "$T/files/bad.json"
check_fails config-invalid "flint-jail: flint arguments: config file $T/files/bad.json: " \
	--id f --exec-file "$PROBE" $ID -- --config-file "$T/files/bad.json"
check_fails netns-path "flint-jail: open network namespace: $T/nope: No such file" \
	--id n --exec-file "$PROBE" $ID --netns "$T/nope" --cgroup pids.max=10 \
	--parent-cgroup flint-jail-test
[ -d /sys/fs/cgroup/pids/flint-jail-test/n ] && bad fails-netns-cgroup "pids cgroup left"
# /dev/null opens but is no namespace: setns fails after pivot_root and the
# device nodes, inside the jail's mount namespace.
check_fails after-pivot "flint-jail: join network namespace: /dev/null: Invalid argument" \
	--id p --exec-file "$PROBE" $ID --netns /dev/null
check_fails v2-controller "controller memory is not available in cgroup v2 here" \
	--id v --exec-file "$PROBE" $ID --cgroup-version 2 --cgroup memory.max=1G \
	--parent-cgroup flint-jail-test

jail --id twice --exec-file "$PROBE" $ID
jail --id twice --exec-file "$PROBE" $ID
why=
[ "$status" = 125 ] || why="status $status"
[ -z "$why" ] && ! grep -qF "flint-jail: create jail: $BASE/probe/twice: already exists" "$ERR" &&
	why="no 'already exists'"
[ -z "$why" ] && [ ! -f "$BASE/probe/twice/root/probe" ] && why="the first jail was touched"
[ -z "$why" ] && ok fails-reused-id || bad fails-reused-id "$why"
rm -rf "$BASE"

# --- descriptors flint's arguments name: kept, every other one closed ----
# (flint serve hands a VM --control-fd, --wait-fd and --status-fd.)
jail --id fds --exec-file "$PROBE" $ID -- run --kernel "$T/files/vmlinux" \
	--rootfs "$T/files/disk.img" --status-fd 4 -- x 4>"$T/status" 5</dev/null
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "fds=0 1 2 4 " "arg=--status-fd" "arg=4"
rm -rf "$BASE"
[ -z "$why" ] && ok keep-status-fd || bad keep-status-fd "$why"
check_fails status-fd-not-open "flint-jail: flint arguments: --status-fd 6: descriptor 6 is \
not open in flint-jail" --id f --exec-file "$PROBE" $ID -- run --kernel "$T/files/vmlinux" \
	--rootfs "$T/files/disk.img" --status-fd 6 -- x 6<&-
# A directory would be a way out: openat through it reaches the host.
check_fails status-fd-directory "flint-jail: flint arguments: --status-fd 4: descriptor 4 is \
a directory" --id f --exec-file "$PROBE" $ID -- run --kernel "$T/files/vmlinux" \
	--rootfs "$T/files/disk.img" --status-fd 4 -- x 4<"$T"
check_fails uffd-sock "flint-jail: flint arguments: --uffd-sock is not supported under \
flint-jail" --id f --exec-file "$PROBE" $ID -- --restore "$T/none.state" --uffd-sock /u.sock

# --- flint run --save-snapshot: flint writes both files in the jail -----
# The probe writes them as flint run would; the caller collects them from
# the jail's root, where the jailer says.
jail --id save --exec-file "$PROBE" $ID -- run --kernel "$T/files/vmlinux" \
	--rootfs "$T/files/disk.img" --save-snapshot snap/fn.state --save-mem /snap/fn.mem
R=$BASE/probe/save/root
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && has "arg=/snap/fn.state" "arg=/snap/fn.mem" "file=/snap d $U:$U 755" saved=ok
[ -z "$why" ] && ! grep -qx "flint-jail: snapshot state file at $R/snap/fn.state" "$ERR" &&
	why="no host path of the state file"
[ -z "$why" ] && ! grep -qx "flint-jail: snapshot memory file at $R/snap/fn.mem" "$ERR" &&
	why="no host path of the memory file"
[ -z "$why" ] && [ "$(cat "$R/snap/fn.state" "$R/snap/fn.mem" 2>/dev/null)" != "state
memory" ] && why="not written at the documented place"
[ -z "$why" ] && [ "$(stat -c %u:%a "$R/snap/fn.state")" != "$U:600" ] &&
	why="state file $(stat -c %u:%a "$R/snap/fn.state")"
rm -rf "$BASE"
[ -z "$why" ] && ok save-snapshot || bad save-snapshot "$why"

# --- --restore: a snapshot made outside, restored inside -----------------
# The counting tiny guest with a read-only drive "d" and vsock, saved
# through the API of flint outside any jail; then restored by the static
# flint in a jail with --drive-override (the image the snapshot recorded is
# not in the jail), its vsock socket in the jail and --control-fd 3 (a
# socketpair, tests/tools/ctlpair.c): the guest counts on from the
# snapshot, a reset is answered through the kept descriptor, the memory
# file is the host's inode (a hard link: one page cache for every jail).
# api PATH METHOD BODY: curl on the source flint's API socket.
api() {
	curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$T/snap/api.sock" \
		-X "$2" -H 'Content-Type: application/json' -d "$3" "http://localhost$1" 2>>"$ERR"
}
# ticks FILE: the "tick N" counts the guest printed, in decimal.
ticks() {
	for h in $(grep -a -o 'tick [0-9a-f]*' "$1" | cut -d' ' -f2); do echo $((0x$h)); done
}
# snap_source NAME [devices]: a source VM, the counting tiny guest with
# 64 MiB, made through its API, paused and snapshotted to $T/snap/NAME.state
# and NAME.mem; with "devices", a read-only drive d ($T/snap/drive.img) and
# a vsock device too. Sets $codes (each answer's) and $t_snap (the last
# tick it printed, in $T/snap/NAME.out).
snap_source() {
	: >"$ERR"
	rm -f "$T/snap/api.sock"
	FLINT_ALLOW_PVM=1 "$BUILD/flint" --api-sock "$T/snap/api.sock" </dev/null \
		>"$T/snap/$1.out" 2>>"$ERR" &
	spid=$!
	for _ in $(seq 50); do
		[ -S "$T/snap/api.sock" ] && break
		sleep 0.1
	done
	codes=$(api /boot-source PUT "{\"kernel_image_path\": \"$T/snap/count.elf\"}")
	codes="$codes $(api /machine-config PUT '{"vcpu_count": 1, "mem_size_mib": 64}')"
	if [ "${2:-}" = devices ]; then
		codes="$codes $(api /drives/d PUT "{\"drive_id\": \"d\", \"path_on_host\": \
\"$T/snap/drive.img\", \"is_root_device\": false, \"is_read_only\": true}")"
		codes="$codes $(api /vsock PUT "{\"guest_cid\": 3, \"uds_path\": \"$T/snap/v.sock\"}")"
	fi
	codes="$codes $(api /actions PUT '{"action_type": "InstanceStart"}')"
	sleep 0.3
	codes="$codes $(api /vm PATCH '{"state": "Paused"}')"
	codes="$codes $(api /snapshot/create PUT "{\"snapshot_path\": \"$T/snap/$1.state\", \
\"mem_file_path\": \"$T/snap/$1.mem\"}")"
	kill -KILL $spid 2>/dev/null
	wait $spid 2>/dev/null
	t_snap=$(ticks "$T/snap/$1.out" | tail -1)
}

# The API's Uffd backend in a jail, as Firecracker users restore: a
# snapshot without drives, its state file put in the jail, a page-fault
# handler (flint-uffd, as root on the host) listening on a socket in the
# jail; PUT /snapshot/load there. flint, without privileges, gets its
# userfaultfd through the jail's /dev/userfaultfd (made where the host has
# one), and the guest counts on from the snapshot.
uffd_in_jail() {
	if [ ! -c /dev/userfaultfd ]; then
		skip uffd-in-jail "the host has no /dev/userfaultfd (Linux 6.1+)"
		return
	fi
	snap_source u
	if [ "$codes" != "204 204 204 204 204" ] || [ -z "$t_snap" ]; then
		bad uffd-in-jail "the source VM's API answered $codes, ticks to ${t_snap:-none}"
		return
	fi
	R=$BASE/flint/uffd/root
	"$JAIL" --id uffd --exec-file "$SFLINT" $ID -- --api-sock /run/api.sock \
		</dev/null >"$T/uffd.out" 2>"$T/uffd.err" &
	jpid=$!
	for _ in $(seq 50); do
		[ -S "$R/run/api.sock" ] && break
		sleep 0.1
	done
	why=
	[ -S "$R/run/api.sock" ] || why="no API socket at $R/run/api.sock"
	[ -z "$why" ] && [ "$(stat -c %t:%T:%u "$R/dev/userfaultfd" 2>&1)" != \
		"$(stat -c %t:%T /dev/userfaultfd):$U" ] &&
		why="the jail's /dev/userfaultfd: $(stat -c %t:%T:%u "$R/dev/userfaultfd" 2>&1)"
	cp "$T/snap/u.state" "$R/u.state" && chmod 644 "$R/u.state"
	"$BUILD/flint-uffd" "$R/uffd.sock" "$T/snap/u.mem" >"$T/uffd-h.log" 2>&1 &
	hpid=$!
	for _ in $(seq 50); do
		[ -S "$R/uffd.sock" ] && break
		sleep 0.1
	done
	chmod 666 "$R/uffd.sock" 2>/dev/null
	code=$(curl -sS --max-time 10 -o "$T/uffd.resp" -w '%{http_code}' \
		--unix-socket "$R/run/api.sock" -X PUT -H 'Content-Type: application/json' \
		-d '{"snapshot_path": "/u.state", "mem_backend": {"backend_type": "Uffd", "backend_path": "/uffd.sock"}, "resume_vm": true}' \
		http://localhost/snapshot/load 2>>"$T/uffd.err")
	[ -z "$why" ] && [ "$code" != 204 ] && why="PUT /snapshot/load answered $code: $(cat "$T/uffd.resp")"
	sleep 0.5
	kill -TERM $jpid 2>/dev/null
	wait $jpid
	kill $hpid 2>/dev/null
	wait $hpid 2>/dev/null
	last=$(ticks "$T/uffd.out" | tail -1)
	[ -z "$why" ] && { [ -z "$last" ] || [ "$last" -le "$t_snap" ]; } &&
		why="the restored guest did not count on from $t_snap (last tick ${last:-none}): $(tail -3 "$T/uffd.err")"
	[ -z "$why" ] && ! grep -q "pages copied\|served" "$T/uffd-h.log" &&
		why="the handler served nothing: $(tail -2 "$T/uffd-h.log")"
	[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
	rm -rf "$BASE"
	[ -z "$why" ] && ok uffd-in-jail || bad uffd-in-jail "$why"
}

if [ ! -c /dev/kvm ] || ! command -v curl >/dev/null; then
	skip restore "no /dev/kvm or no curl"
else
	mkdir -m 755 "$T/snap"
	cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none -DCOUNT \
		-o "$T/snap/count.elf" "$(dirname "$0")/../smoke/tiny-guest.S" || exit 1
	cc -std=gnu11 -O2 -Wall -Werror -o "$T/ctlpair" "$(dirname "$0")/../tools/ctlpair.c" ||
		exit 1
	head -c 1048576 /dev/zero >"$T/snap/drive.img"
	cp "$T/snap/drive.img" "$T/snap/other.img"
	chmod 644 "$T/snap/other.img"
	snap_source fn devices
	chmod 644 "$T/snap/fn.state" "$T/snap/fn.mem"
	if [ "$codes" != "204 204 204 204 204 204 204" ] || [ -z "$t_snap" ]; then
		bad restore-snapshot "the source VM's API answered $codes, ticks to ${t_snap:-none}"
	else
		rm -f "$T/ctl.fifo"
		mkfifo "$T/ctl.fifo"
		timeout 30 "$T/ctlpair" -- "$JAIL" --id restore --exec-file "$SFLINT" $ID -- \
			--restore "$T/snap/fn.state" --mem-file "$T/snap/fn.mem" \
			--vsock-override /run/v.sock --drive-override "d=$T/snap/other.img" \
			--control-fd 3 <"$T/ctl.fifo" >"$T/ctl.ans" 2>"$ERR" &
		cpid=$!
		exec 7>"$T/ctl.fifo"
		R=$BASE/flint/restore/root
		why=
		for _ in $(seq 50); do
			[ -S "$R/run/v.sock" ] && break
			sleep 0.1
		done
		sleep 0.3
		[ -S "$R/run/v.sock" ] || why="no vsock socket at $R/run/v.sock"
		# (flint gone already: the write fails, SIGPIPE must not end the script)
		trap '' PIPE
		echo reset >&7 2>/dev/null
		trap - PIPE
		for _ in $(seq 50); do
			[ -s "$T/ctl.ans" ] && break
			sleep 0.1
		done
		sleep 0.3
		exec 7>&-
		wait $cpid
		status=$?
		first=$(ticks "$ERR" | head -1)
		[ -z "$why" ] && [ "$status" != 0 ] && why="status $status (the control socket's end stops the VM: 0)"
		[ -z "$why" ] && ! grep -q '^ok [0-9][0-9]*$' "$T/ctl.ans" &&
			why="the reset through --control-fd 3 answered '$(cat "$T/ctl.ans")'"
		[ -z "$why" ] && { [ -z "$first" ] || [ "$first" -le "$t_snap" ] ||
			[ "$first" -gt $((t_snap + 2)) ]; } &&
			why="the restored guest counted from ${first:-nothing}, the snapshot was at $t_snap"
		[ -z "$why" ] && [ "$(ticks "$ERR" | grep -c -x "$first")" != 2 ] &&
			why="tick $first not counted again after the reset"
		# The reset found the pages the guest wrote in the jail's
		# /proc/self/pagemap: it did not drop every page (flint says so
		# when it does, as it did in a jail without /proc).
		[ -z "$why" ] && grep -aq "every private page of guest memory dropped\|/proc: " "$ERR" &&
			why="the reset had no pagemap: $(grep -a "pagemap\|/proc: " "$ERR" | head -1)"
		[ -z "$why" ] && ! grep -qx "flint-jail: vsock socket at $R/run/v.sock" "$ERR" &&
			why="no host path of the vsock socket"
		[ -z "$why" ] && [ "$(stat -c %i "$R/fn.mem")" != "$(stat -c %i "$T/snap/fn.mem")" ] &&
			why="the memory file in the jail is not the host's inode"
		[ -z "$why" ] && [ "$(stat -c %i "$R/fn.state")" != "$(stat -c %i "$T/snap/fn.state")" ] &&
			why="the state file in the jail is not the host's inode"
		[ -z "$why" ] && [ "$(stat -c %i "$R/other.img")" != "$(stat -c %i "$T/snap/other.img")" ] &&
			why="the drive override's image in the jail is not the host's inode"
		[ -z "$why" ] && [ -e "$R/drive.img" ] && why="the snapshot's own image staged"
		[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
		rm -rf "$BASE"
		[ -z "$why" ] && ok restore || bad restore "$why"

		# Every image drive of the snapshot must be given: the path it
		# recorded is not in the jail.
		check_fails restore-drive-not-given "flint-jail: flint arguments: --restore \
$T/snap/fn.state: the snapshot's drive 'd' is the image $T/snap/drive.img, which is not in the \
jail; give it with --drive-override d=PATH" --id r --exec-file "$SFLINT" $ID -- \
			--restore "$T/snap/fn.state" --mem-file "$T/snap/fn.mem"
		check_fails restore-drive-unknown "flint-jail: flint arguments: --drive-override \
data=$T/snap/other.img: the snapshot $T/snap/fn.state has no drive of that id" --id r \
			--exec-file "$SFLINT" $ID -- --restore "$T/snap/fn.state" \
			--mem-file "$T/snap/fn.mem" --drive-override "d=$T/snap/other.img" \
			--drive-override "data=$T/snap/other.img"
		# The memory check reads the guest's memory from the state file.
		if [ -d /sys/fs/cgroup/memory ] && [ -n "$OWN" ]; then
			PARENT=${OWN#/}
			PARENT=${PARENT:+$PARENT/}flint-jail-test
			check_fails restore-memory-limit "flint-jail: cgroup memory limit: guest \
memory 64 MiB does not fit the cgroup memory limit 64 MiB" --id rm --exec-file "$SFLINT" $ID \
				--parent-cgroup "$PARENT" --cgroup memory.limit_in_bytes=64M -- \
				--restore "$T/snap/fn.state" --mem-file "$T/snap/fn.mem" \
				--drive-override "d=$T/snap/other.img"
		else
			skip restore-memory-limit "no cgroup v1 memory hierarchy"
		fi

		# A --restore's /proc, as the probe sees it in flint's place: its
		# own pagemap opens and reads; no process but its own (not init,
		# root's), no system-wide file; nothing can be made in it; proc,
		# nosuid, nodev, noexec; the directory under it root's, 0555; not
		# on the host.
		for c in "proc::" "proc-pidns:--new-pid-ns:1"; do
			name=${c%%:*} rest=${c#*:}
			opt=${rest%%:*} want_pid=${rest#*:}
			# shellcheck disable=SC2086
			echo outside >"$T/outside"
			jail --id "$name" --exec-file "$PROBE" $ID $opt -- --restore "$T/snap/fn.state" \
				--mem-file "$T/snap/fn.mem" --drive-override "d=$T/snap/other.img" \
				--control-fd 3 3<"$T/outside"
			R=$BASE/probe/$name/root
			why=
			[ "$status" = 0 ] || why="status $status"
			pid=$(sed -n 's/^pid=//p' "$OUT")
			[ -z "$why" ] && [ -n "$want_pid" ] && [ "$pid" != "$want_pid" ] && why="pid $pid"
			# In its own pid namespace, /proc/1 is the probe itself.
			p1=invisible
			[ -n "$want_pid" ] && p1=visible
			[ -z "$why" ] && has proc=yes "procself=$pid" "pagemap=reads present" "proc1=$p1" \
				"procglobal=" "procmount=proc nosuid nodev noexec" "file=/proc d 0:0 555"
			ents=$(sed -n 's/^procent=//p' "$OUT" | sort | tr '\n' ' ')
			[ -z "$why" ] && [ "$ents" != "$(printf '%s\n' self thread-self "$pid" | sort |
				tr '\n' ' ')" ] && why="/proc holds $ents"
			[ -z "$why" ] && grep -q '^procmkdir=made' "$OUT" && why="made a directory in /proc"
			# Landlock: the file outside the jail does not open anew through
			# the inherited descriptor's magic link (without Landlock it would).
			if [ -z "$why" ] && [ "$(sed -n 's/^landlock_abi=//p' "$OUT")" -ge 1 ]; then
				has "reopen=Permission denied"
			elif [ -z "$why" ]; then
				has "reopen=ok"
			fi
			[ -z "$why" ] && [ "$(stat -c %u:%g:%a "$R/proc" 2>&1)" != 0:0:555 ] &&
				why="the jail's /proc is $(stat -c %u:%g:%a "$R/proc" 2>&1)"
			[ -z "$why" ] && [ -n "$(ls -A "$R/proc" 2>&1)" ] && why="/proc not empty on the host"
			[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
			[ -z "$why" ] && grep -q "warning" "$ERR" && why="$(grep warning "$ERR" | head -1)"
			rm -rf "$BASE"
			[ -z "$why" ] && ok "$name" || bad "$name" "$why"
		done
		# A kernel that refuses subset=pid (fsconfig failing, as before
		# Linux 5.8): the jail goes on without /proc, and says so.
		cc -std=gnu11 -O2 -Wall -Werror -o "$T/nofsconfig" "$(dirname "$0")/nofsconfig.c" \
			-lseccomp || exit 1
		status=0
		# shellcheck disable=SC2086
		timeout 20 "$T/nofsconfig" "$JAIL" --id proc-refused --exec-file "$PROBE" $ID -- \
			--restore "$T/snap/fn.state" --mem-file "$T/snap/fn.mem" \
			--drive-override "d=$T/snap/other.img" </dev/null >"$OUT" 2>"$ERR" || status=$?
		why=
		[ "$status" = 0 ] || why="status $status"
		[ -z "$why" ] && has "proc=No such file or directory"
		want="flint-jail: warning: /proc: the kernel refuses subset=pid (Linux 5.8 or later has \
it): Invalid argument; the jail has no /proc, and a reset of flint's drops every page of guest \
memory"
		[ -z "$why" ] && ! grep -qxF "$want" "$ERR" && why="no '$want'"
		rm -rf "$BASE"
		[ -z "$why" ] && ok proc-refused || bad proc-refused "$why"

		uffd_in_jail
	fi
fi
rm -rf "$BASE"

# --- the base directory: every name on the way only root can change ------
# (the jail's user could otherwise swap one and have the jail, and its
# root handed to them, made anywhere)
mkdir -m 777 "$T/open"
jail --id o --exec-file "$PROBE" --uid $U --gid $U --chroot-base-dir "$T/open/base"
why=
[ "$status" = 125 ] || why="status $status"
[ -z "$why" ] && ! grep -qF "flint-jail: create jail: $T/open: writable by users other than root" \
	"$ERR" && why="no 'writable by users other than root'"
[ -z "$why" ] && [ -n "$(ls -A "$T/open")" ] && why="left $(ls -A "$T/open")"
[ -z "$why" ] && ok fails-open-base || bad fails-open-base "$why"
# A symlink of the user's on the way: refused, nothing made where it points.
mkdir -p "$T/theirs" "$T/target"
ln -s "$T/target" "$T/theirs/link"
chown -h "$U:$U" "$T/theirs" "$T/theirs/link"
jail --id l --exec-file "$PROBE" --uid $U --gid $U --chroot-base-dir "$T/theirs/link/base"
why=
[ "$status" = 125 ] || why="status $status"
[ -z "$why" ] && ! grep -qF "flint-jail: create jail: $T/theirs/link: in a directory users other than root may write" \
	"$ERR" && why="no 'in a directory users other than root may write'"
[ -z "$why" ] && [ -n "$(ls -A "$T/target")" ] && why="made $(ls -A "$T/target")"
[ -z "$why" ] && ok fails-users-symlink-base || bad fails-users-symlink-base "$why"
# root's own symlink (like /var/run) is followed.
ln -s "$BASE" "$T/baselink"
jail --id s --exec-file "$PROBE" --uid $U --gid $U --chroot-base-dir "$T/baselink"
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && [ ! -f "$BASE/probe/s/root/probe" ] && why="no jail at $BASE/probe/s"
[ -z "$why" ] && ok base-through-roots-symlink || bad base-through-roots-symlink "$why"
rm -rf "$BASE"

# --- network namespace, pid namespace, daemonize ------------------------
if touch "$T/netns" && unshare --net="$T/netns" true 2>/dev/null; then
	mkfifo "$T/hold2"
	: >"$OUT"
	"$JAIL" --id net --exec-file "$PROBE" $ID --netns "$T/netns" -- \
		--kernel "$T/files/vmlinux" -- wait \
		>"$OUT" 2>"$ERR" <"$T/hold2" &
	pid=$!
	exec 8>"$T/hold2"
	wait_end
	want=$(readlink "$T/netns" 2>/dev/null || stat -L -c 'net:[%i]' "$T/netns")
	got=$(readlink "/proc/$pid/ns/net")
	exec 8>&-
	wait $pid
	umount "$T/netns"
	[ "$got" = "$want" ] && ok netns || bad netns "in $got, expected $want"
else
	skip netns "unshare --net=FILE does not work here"
fi

jail --id pidns --exec-file "$PROBE" $ID --new-pid-ns -- --kernel "$T/files/vmlinux" -- exit 3
why=
[ "$status" = 3 ] || why="status $status, expected 3"
[ -z "$why" ] && has pid=1 "uid=$U $U $U" capbnd=0 nnp=1
# A child, whose CPU clock starts at 0: the jailer's CPU time before the
# fork is the parent's.
[ -z "$why" ] && timing some 0
hostpid=$(cat "$BASE/probe/pidns/root/probe.pid" 2>/dev/null)
[ -z "$why" ] && [ -z "$hostpid" ] && why="no pid file"
[ -z "$why" ] && [ "$(mounted)" != 0 ] && why="still mounted"
[ -z "$why" ] && ok new-pid-ns || bad new-pid-ns "$why"

status=0
setsid "$JAIL" --id daemon --exec-file "$PROBE" $ID --daemonize -- \
	--kernel "$T/files/vmlinux" -- sleep 3 \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
why=
[ "$status" = 0 ] || why="status $status"
dpid=$(cat "$BASE/probe/daemon/root/probe.pid" 2>/dev/null)
[ -z "$why" ] && [ -z "$dpid" ] && why="no pid file"
if [ -z "$why" ]; then
	sid=$(cut -d' ' -f6 "/proc/$dpid/stat" 2>/dev/null)
	[ "$sid" = "$dpid" ] || why="session $sid, not its own"
	[ "$(readlink "/proc/$dpid/fd/1")" = /dev/null ] || why="stdout not /dev/null"
	grep -qxF "Uid:	$U	$U	$U	$U" "/proc/$dpid/status" || why="wrong uid"
	kill "$dpid" 2>/dev/null
fi
[ -z "$why" ] && ok daemonize || bad daemonize "$why"

# --daemonize from a process that does not lead its group (a script's
# child): the jailer still returns at once, flint runs on.
status=0
t0=$(date +%s)
"$JAIL" --id daemon2 --exec-file "$PROBE" $ID --daemonize -- \
	--kernel "$T/files/vmlinux" -- sleep 5 \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
t1=$(date +%s)
why=
[ "$status" = 0 ] || why="status $status"
[ -z "$why" ] && [ $((t1 - t0)) -ge 4 ] && why="the jailer waited $((t1 - t0)) s for flint"
dpid=$(cat "$BASE/probe/daemon2/root/probe.pid" 2>/dev/null)
[ -z "$why" ] && [ -z "$dpid" ] && why="no pid file"
if [ -z "$why" ]; then
	sid=$(cut -d' ' -f6 "/proc/$dpid/stat" 2>/dev/null)
	[ "$sid" = "$dpid" ] || why="session $sid, not its own"
	kill "$dpid" 2>/dev/null
fi
[ -z "$why" ] && ok daemonize-not-a-leader || bad daemonize-not-a-leader "$why"

# --- flint run --image: staged, or built by the jailer as uid:gid read it -
# The probe stands in for flint; run's kernel and root image are dummies.
IMG=$T/img
CACHE=$T/cache
mkdir -p "$IMG/tree/etc" "$IMG/tree/bin" "$CACHE"
chmod 755 "$IMG"
echo "hello from the image" >"$IMG/tree/etc/hi"
# root's secret: a symlink in the tree reaches it only as a symlink.
echo "root only" >"$T/secret" && chmod 600 "$T/secret"
ln -s "$T/secret" "$IMG/tree/etc/secret"
chmod -R a+rX "$IMG/tree"
RUNARGS="run --kernel $T/files/vmlinux --rootfs $T/files/vmlinux"
# Whether the file system of directory $1 has fallocate (tmpfs and ext4 do).
falloc_ok() {
	fallocate -l 4096 "$1/.falloc-probe" 2>/dev/null
	set -- $? "$1/.falloc-probe"
	rm -f "$2"
	return "$1"
}

# imgcat FILE PATH: PATH's content in the ext4 image FILE.
imgcat() {
	debugfs -R "cat $2" "$1" 2>/dev/null
}
# cache_images: what the image cache holds, one line.
cache_images() {
	ls -A "$CACHE/images" | sort | tr '\n' ' '
}
# image_refused TEST JAIL-ID PATTERN BEFORE: the last launch was refused
# with 125 and PATTERN on stderr, made no jail JAIL-ID, and left the cache
# as BEFORE (cache_images).
image_refused() {
	why=
	[ "$status" = 125 ] || why="status $status"
	[ -z "$why" ] && ! grep -q "$3" "$ERR" && why="no '$3'"
	[ -z "$why" ] && [ -d "$BASE/probe/$2" ] && why="made the jail"
	[ -z "$why" ] && [ "$(cache_images)" != "$4" ] &&
		why="the cache changed: $(ls -A "$CACHE/images")"
	[ -z "$why" ] && ok "$1" || bad "$1" "$why"
}
if ! command -v mke2fs >/dev/null || ! command -v debugfs >/dev/null; then
	skip image "no e2fsprogs"
else
	: >"$IMG/u.ext4"
	mke2fs -q -F -t ext4 -d "$IMG/tree" "$IMG/u.ext4" 8M && chmod 644 "$IMG/u.ext4"
	jail --id img-ext4 --exec-file "$PROBE" $ID -- $RUNARGS --image "$IMG/u.ext4" -- true
	R=$BASE/probe/img-ext4/root
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=--image" "arg=/u.ext4" "file=/u.ext4 f 0:0 644"
	[ -z "$why" ] && [ "$(stat -c %i "$R/u.ext4")" != "$(stat -c %i "$IMG/u.ext4")" ] &&
		why="not the host's inode"
	[ -z "$why" ] && [ -n "$(ls -A "$CACHE")" ] && why="built something: $(ls -A "$CACHE")"
	[ -z "$why" ] && ok image-ext4-staged || bad image-ext4-staged "$why"

	# A directory: built into the jailer's cache from what uid:gid can
	# read, staged root's and read-only, found in the cache the next time.
	FLINT_CACHE=$CACHE jail --id img-dir --exec-file "$PROBE" $ID -- $RUNARGS \
		--image "$IMG/tree" -- true
	R=$BASE/probe/img-dir/root
	built=$(ls "$CACHE/images/"*.ext4 2>/dev/null)
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=--image" "arg=/tree" "file=/tree f 0:0 644"
	[ -z "$why" ] && [ "$(echo "$built" | wc -w)" != 1 ] && why="cache holds '$built'"
	[ -z "$why" ] && [ "$(stat -c %i "$R/tree")" != "$(stat -c %i "$built")" ] &&
		why="not the cache's image"
	[ -z "$why" ] && [ "$(imgcat "$R/tree" /etc/hi)" != "hello from the image" ] &&
		why="the image lacks /etc/hi"
	[ -z "$why" ] && imgcat "$R/tree" /etc/secret | grep -q "root only" &&
		why="root's secret reached the image"
	[ -z "$why" ] && [ -n "$(ls -A "$CACHE/images" | grep -v '\.ext4$')" ] &&
		why="left $(ls -A "$CACHE/images")"
	[ -z "$why" ] && ok image-dir-built || bad image-dir-built "$why"
	FLINT_CACHE=$CACHE jail --id img-dir2 --exec-file "$PROBE" $ID -- $RUNARGS \
		--image "$IMG/tree" -- true
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && grep -q "building an ext4 image" "$ERR" && why="built again"
	[ -z "$why" ] && [ "$(stat -c %i "$BASE/probe/img-dir2/root/tree")" != \
		"$(stat -c %i "$built")" ] && why="not the cached image"
	[ -z "$why" ] && ok image-dir-cached || bad image-dir-cached "$why"

	# A tar archive: the same, from a copy read through the descriptor.
	tar -C "$IMG/tree" -czf "$IMG/tree.tar.gz" . && chmod 644 "$IMG/tree.tar.gz"
	FLINT_CACHE=$CACHE jail --id img-tar --exec-file "$PROBE" $ID -- $RUNARGS \
		--image "$IMG/tree.tar.gz" -- true
	R=$BASE/probe/img-tar/root
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=/tree.tar.gz" "file=/tree.tar.gz f 0:0 644"
	[ -z "$why" ] && [ "$(imgcat "$R/tree.tar.gz" /etc/hi)" != "hello from the image" ] &&
		why="the image lacks /etc/hi"
	[ -z "$why" ] && ok image-tar-built || bad image-tar-built "$why"

	# The cache's limit (--image-limit cache=N): a build trims the images
	# used longest ago, but not one a jail still links (img-dir's, used a
	# day ago too) nor the one it built.
	orphan=$CACHE/images/$(printf '%064d' 0).ext4
	head -c 65536 /dev/zero >"$orphan" && touch -d '-1 day' "$orphan" "$built"
	mkdir -p "$IMG/tree2/etc" && echo "another image" >"$IMG/tree2/etc/hi"
	chmod -R a+rX "$IMG/tree2"
	FLINT_CACHE=$CACHE jail --id img-trim --exec-file "$PROBE" $ID --image-limit cache=1 \
		-- $RUNARGS --image "$IMG/tree2" -- true
	R=$BASE/probe/img-trim/root
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && [ -e "$orphan" ] && why="the image used longest ago is still there"
	[ -z "$why" ] && ! grep -q "image cache: removed $orphan" "$ERR" && why="no word of its removal"
	[ -z "$why" ] && [ ! -e "$built" ] && why="img-dir's image, linked into its jail, was removed"
	[ -z "$why" ] && [ "$(imgcat "$R/tree2" /etc/hi)" != "another image" ] &&
		why="the new image lacks /etc/hi"
	[ -z "$why" ] && ok image-cache-trimmed || bad image-cache-trimmed "$why"

	# Refused, naming why, leaving nothing: a file in the tree uid:gid
	# cannot read, an unreachable image, no cache, not an image.
	mkdir -p "$IMG/closed/etc" && echo x >"$IMG/closed/etc/shadow"
	chmod 755 "$IMG/closed" "$IMG/closed/etc" && chmod 600 "$IMG/closed/etc/shadow"
	echo "not an image" >"$IMG/junk" && chmod 644 "$IMG/junk"
	# A FIFO, whose open through /proc/self/fd would block the jailer.
	mkfifo -m 644 "$IMG/fifo"
	for c in "closed:$IMG/closed:$CACHE:tar, reading the directory as uid $U gid $U, failed" \
		"fifo:$IMG/fifo:$CACHE:$IMG/fifo: not a file or a directory" \
		"unreachable:$T/secret:$CACHE:$T/secret: uid $U gid $U cannot read it" \
		"no-cache:$IMG/tree::set FLINT_CACHE (or HOME) for it, or give an ext4 image" \
		"junk:$IMG/junk:$CACHE:$IMG/junk: not an image flint knows"; do
		name=${c%%:*} rest=${c#*:}
		src=${rest%%:*} rest=${rest#*:}
		cache=${rest%%:*} want=${rest#*:}
		before=$(cache_images)
		FLINT_CACHE=$cache HOME= jail --id "img-$name" --exec-file "$PROBE" $ID -- \
			$RUNARGS --image "$src" -- true
		image_refused "image-refused-$name" "img-$name" "^flint-jail: image: .*$want" "$before"
	done
	# Bounded builds (--image-limit): a bomb (a small tar.gz of 64 MiB of
	# zeros, over bytes=1 MiB), an archive of more entries than allowed,
	# a directory whose copy is over the limit: each refused before the
	# jail is made, naming the image and the limit, the cache as it was
	# (no work copy, no image).
	mkdir -p "$IMG/bomb" "$IMG/many" "$IMG/bigdir"
	truncate -s 64M "$IMG/bomb/zeros"
	tar -C "$IMG/bomb" -czf "$IMG/bomb.tar.gz" . && rm "$IMG/bomb/zeros"
	for i in $(seq 20); do : >"$IMG/many/f$i"; done
	tar -C "$IMG/many" -cf "$IMG/many.tar" .
	head -c 2097152 /dev/urandom >"$IMG/bigdir/data"
	chmod -R a+rX "$IMG/bomb.tar.gz" "$IMG/many.tar" "$IMG/bigdir"
	L="limit of 1048576 bytes"
	H="(flint-jail's --image-limit: bytes="
	for c in "bomb:$IMG/bomb.tar.gz:bytes=1048576:decompressed, over the $L.*${H}1048576," \
		"many:$IMG/many.tar:entries=10:at least 11 entries, the directories their names imply included: over the limit of 10 ${H}8589934592, entries=10)" \
		"bigdir:$IMG/bigdir:bytes=1048576:over the $L for its copy ${H}1048576,"; do
		name=${c%%:*} rest=${c#*:}
		src=${rest%%:*} rest=${rest#*:}
		lim=${rest%%:*} want=${rest#*:}
		before=$(cache_images)
		FLINT_CACHE=$CACHE jail --id "img-$name" --exec-file "$PROBE" $ID --image-limit "$lim" \
			-- $RUNARGS --image "$src" -- true
		image_refused "image-limit-$name" "img-$name" "^flint-jail: image: $src: $want" "$before"
	done
	# --scratch: made in the jail by the jailer (flint there has no
	# mke2fs), ext4 of the size asked with its blocks reserved (where the
	# base's file system has fallocate), uid:gid's, 0600; flint gets
	# its in-jail path. A launch failing later removes it with the rest.
	jail --id img-scratch --exec-file "$PROBE" $ID -- $RUNARGS --image "$IMG/u.ext4" \
		--scratch 64M -- true
	S=$BASE/probe/img-scratch/root/scratch.ext4
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=--scratch" "arg=/scratch.ext4" "file=/scratch.ext4 f $U:$U 600"
	[ -z "$why" ] && [ "$(stat -c %s "$S")" != 67108864 ] && why="size $(stat -c %s "$S")"
	[ -z "$why" ] && falloc_ok "$BASE" && [ $(($(stat -c '%b * %B' "$S"))) -lt 67108864 ] &&
		why="its blocks not reserved: $(($(stat -c '%b * %B' "$S"))) bytes held"
	[ -z "$why" ] && ! dumpe2fs -h "$S" 2>/dev/null | grep -q "^Filesystem magic number" &&
		why="not an ext4 file system"
	[ -z "$why" ] && ok scratch-made-in-jail || bad scratch-made-in-jail "$why"
	rm -rf "$BASE"
	jail --id img-scratch-fail --exec-file "$PROBE" $ID --netns "$T/nonexistent" -- $RUNARGS \
		--image "$IMG/u.ext4" --scratch 64M -- true
	why=
	[ "$status" = 125 ] || why="status $status"
	[ -z "$why" ] && ! grep -q "^flint-jail: open network namespace" "$ERR" && why="no netns error"
	[ -z "$why" ] && [ -n "$(left)" ] && why="left $(left)"
	[ -z "$why" ] && ok scratch-removed-on-failure || bad scratch-removed-on-failure "$why"

	# The static flint takes the staged image and scratch disk as they
	# are: it has no cache to build in, nor mke2fs (the tiny guest exits
	# 42 without an agent).
	if [ -c /dev/kvm ]; then
		FLINT_CACHE=$CACHE jail --id img-flint --exec-file "$SFLINT" $ID -- run \
			--kernel "$T/tiny.elf" --rootfs "$IMG/u.ext4" --image "$IMG/tree" \
			--scratch 64M -- true
		why=
		if grep -q "kvm_pvm" "$ERR"; then
			skip image-flint "flint saw kvm_pvm from inside the jail"
		else
			[ "$status" = 42 ] || why="status $status, expected the guest's 42"
			[ -z "$why" ] && grep -q -- "--image\|--scratch" "$ERR" &&
				why="flint refused: $(grep -- '--image\|--scratch' "$ERR" | head -1)"
			[ -z "$why" ] && ok image-flint || bad image-flint "$why"
		fi
	fi
	rm -rf "$BASE"
fi

# --- --net user: passt started by the jailer outside the jail, its socket
# passed to flint as fd=N (the probe checks passt answers an ARP request).
# passts PARENT: the pids of the passts whose parent is PARENT.
passts() {
	for d in /proc/[0-9]*; do
		[ "$(awk '/^PPid:/ {print $2}' "$d/status" 2>/dev/null)" = "$1" ] &&
			grep -q passt "$d/comm" 2>/dev/null && echo "${d#/proc/}"
	done
}
# gone PID...: each has ended (gone, or a zombie nobody reaps) within 5 s.
gone() {
	for _ in $(seq 50); do
		live=
		for p in "$@"; do
			st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
			[ -n "$st" ] && [ "$st" != Z ] && live="$live $p"
		done
		[ -z "$live" ] && return 0
		sleep 0.1
	done
	return 1
}
if ! command -v passt >/dev/null; then
	skip net-user "passt is not installed"
elif ! passt --version >/dev/null 2>&1; then
	skip net-user "passt does not run here"
else
	mkfifo "$T/hold3"
	: >"$OUT"
	"$JAIL" --id netuser --exec-file "$PROBE" $ID -- --kernel "$T/files/vmlinux" \
		--net user --net user,id=two -- wait >"$OUT" 2>"$ERR" <"$T/hold3" &
	pid=$!
	exec 8>"$T/hold3"
	wait_end
	ps=$(passts "$pid")
	why=
	has "arg=user,fd=3" "arg=user,id=two,fd=4" "fds=0 1 2 3 4 " "netfd=3 passt answers" \
		"netfd=4 passt answers"
	[ -z "$why" ] && [ "$(echo $ps | wc -w)" != 2 ] && why="passts '$ps' under flint $pid"
	for p in $ps; do
		[ -n "$why" ] && break
		grep -qxF "Uid:	$U	$U	$U	$U" "/proc/$p/status" || why="passt $p not uid $U"
		[ "$(readlink "/proc/$p/ns/net")" = "$(readlink /proc/self/ns/net)" ] ||
			why="passt $p not in the host's network namespace"
		[ "$(readlink "/proc/$p/ns/mnt")" = "$(readlink "/proc/$pid/ns/mnt")" ] &&
			why="passt $p in the jail's mount namespace"
		grep -q "^NoNewPrivs:	1" "/proc/$p/status" || why="passt $p may gain privileges"
	done
	exec 8>&-
	wait $pid
	# shellcheck disable=SC2086
	[ -z "$why" ] && ! gone $ps && why="passt still running after flint"
	[ -z "$why" ] && ok net-user-passt || bad net-user-passt "$why"

	# The descriptors kept for flint come first; passt's is the next free.
	jail --id netfd --exec-file "$PROBE" $ID -- $RUNARGS --status-fd 3 --net user -- true \
		3>/dev/null
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=--status-fd" "arg=3" "arg=user,fd=4" "fds=0 1 2 3 4 " \
		"netfd=4 passt answers"
	[ -z "$why" ] && ok net-user-after-kept-fds || bad net-user-after-kept-fds "$why"

	# --daemonize from a group leader: the jailer's parent exits at once,
	# passt lives on with flint (its socket), and ends with it.
	setsid "$JAIL" --id netd --exec-file "$PROBE" $ID --daemonize -- \
		--kernel "$T/files/vmlinux" --net user -- sleep 2 \
		</dev/null >"$OUT" 2>"$ERR" || status=$?
	why=
	dpid=$(cat "$BASE/probe/netd/root/probe.pid" 2>/dev/null)
	[ -z "$dpid" ] && why="no pid file"
	sleep 0.5
	dps=
	for d in /proc/[0-9]*; do
		grep -q passt "$d/comm" 2>/dev/null && grep -qxF "Uid:	$U	$U	$U	$U" \
			"$d/status" 2>/dev/null && [ "$(awk '{print $3}' "$d/stat")" != Z ] &&
			dps="$dps ${d#/proc/}"
	done
	[ -z "$why" ] && [ -z "$dps" ] && why="no passt while flint runs"
	# shellcheck disable=SC2086
	[ -z "$why" ] && ! { sleep 2 && gone $dps; } && why="passt outlived flint"
	[ -z "$why" ] && ok net-user-daemonize || bad net-user-daemonize "$why"

	# Refused: passt that cannot start (the launch leaves nothing, no
	# passt).
	rm -rf "$BASE"
	FLINT_PASST=/nonexistent/passt jail --id netbad --exec-file "$PROBE" $ID -- \
		--kernel "$T/files/vmlinux" --net user
	why=
	[ "$status" = 125 ] || why="status $status"
	[ -z "$why" ] && ! grep -q "^flint-jail: start passt: for --net user (interface net0)" \
		"$ERR" && why="no 'start passt'"
	[ -z "$why" ] && ! grep -q "FLINT_PASST=/nonexistent/passt" "$ERR" && why="passt not named"
	[ -z "$why" ] && [ -n "$(left)" ] && why="left $(left)"
	[ -z "$why" ] && ok net-user-refused-no-passt || bad net-user-refused-no-passt "$why"
	# A config file's user interface gets a passt too: "fd": N in its copy.
	echo "{\"boot-source\": {\"kernel_image_path\": \"$T/files/vmlinux\"}, \"drives\": []," \
		"\"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"user\"}]}" \
		>"$T/user.json"
	chmod 644 "$T/user.json"
	jail --id netcfg --exec-file "$PROBE" $ID -- --config-file "$T/user.json" --no-api
	why=
	[ "$status" = 0 ] || why="status $status"
	[ -z "$why" ] && has "arg=/user.json" "fds=0 1 2 3 "
	[ -z "$why" ] && ! grep -q '"fd": 3' "$BASE/probe/netcfg/root/user.json" &&
		why="the copy has no \"fd\": 3: $(tr -d '\n' <"$BASE/probe/netcfg/root/user.json")"
	[ -z "$why" ] && ! grep -q "^flint-jail: passt (pid [0-9]*) for --net user (interface eth0)" \
		"$ERR" && why="no passt for eth0"
	[ -z "$why" ] && ok net-user-config-file || bad net-user-config-file "$why"

	# The static flint takes the socket: the tiny guest boots with a user
	# interface on it and exits 42.
	if [ -c /dev/kvm ]; then
		jail --id netvm --exec-file "$SFLINT" $ID -- --kernel "$T/tiny.elf" --mem 64M \
			--net user
		why=
		if grep -q "kvm_pvm" "$ERR"; then
			skip net-user-flint "flint saw kvm_pvm from inside the jail"
		else
			[ "$status" = 42 ] || why="status $status, expected the guest's 42"
			[ -z "$why" ] && grep -q "passt\|net0:" "$ERR" && ! grep -q \
				"^flint-jail: passt" "$ERR" && why="flint complained"
			[ -z "$why" ] && grep "^flint: " "$ERR" | grep -q "passt\|net0" &&
				why="flint: $(grep '^flint: ' "$ERR" | grep 'passt\|net0' | head -1)"
			[ -z "$why" ] && ok net-user-flint || bad net-user-flint "$why"
		fi
		echo "{\"boot-source\": {\"kernel_image_path\": \"$T/tiny.elf\"}, \"drives\": []," \
			"\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}," \
			"\"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"user\"}]}" \
			>"$T/tiny-user.json"
		chmod 644 "$T/tiny-user.json"
		jail --id netvmcfg --exec-file "$SFLINT" $ID -- --config-file "$T/tiny-user.json" \
			--no-api
		why=
		if ! grep -q "kvm_pvm" "$ERR"; then
			[ "$status" = 42 ] || why="status $status, expected the guest's 42"
			[ -z "$why" ] && grep "^flint: " "$ERR" | grep -q "passt\|eth0" &&
				why="flint: $(grep '^flint: ' "$ERR" | grep 'passt\|eth0' | head -1)"
			[ -z "$why" ] && ok net-user-flint-config-file ||
				bad net-user-flint-config-file "$why"
		fi
	fi
	rm -rf "$BASE"
fi

echo "$pass passed, $fail failed${skipped:+, $skipped skipped}"
[ "$fail" = 0 ]
