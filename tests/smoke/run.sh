#!/bin/sh
# Smoke tests that need /dev/kvm but no Linux guest: a tiny hand-written
# long-mode guest checks flint's VM set-up, entry state, UART, boot timer,
# exit device, i8042 reset, triple-fault handling and error messages. They
# run in milliseconds, even on a nested kvm_pvm host (which only emulates
# guest ring 0 slowly: these guests run a few dozen instructions). Before
# them, host-only tests of `make install` and of where `flint run` finds its
# guest (install.sh), which need no KVM.
# Usage: run.sh FLINT BUILD-DIR
set -u
FLINT=$1
BUILD_DIR=$2
OUT=$2/smoke
mkdir -p "$OUT"
pass=0 fail=0
export FLINT_ALLOW_PVM=1

# wait_gone PID SECONDS: until PID has ended, or SECONDS have passed
# (looked at every 0.1 s); fails if it still runs.
wait_gone() {
	wait_n=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null && [ $wait_n -gt 0 ]; do
		sleep 0.1
		wait_n=$((wait_n - 1))
	done
	! kill -0 "$1" 2>/dev/null
}

# check NAME EXPECTED-STATUS STDOUT-PATTERN STDERR-PATTERN -- FLINT-ARGS
# (STDOUT-PATTERN "-": stdout is not checked; an empty pattern: the stream
# must be empty)
check() {
	name=$1 want=$2 outpat=$3 errpat=$4
	shift 5
	timeout 20 "$FLINT" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null
	got=$?
	why=""
	[ "$got" = "$want" ] || why="status $got, expected $want"
	# An empty pattern means the stream must be empty.
	if [ -z "$why" ] && [ "$outpat" = - ]; then
		:
	elif [ -z "$why" ] && [ -z "$outpat" ] && [ -s "$OUT/$name.out" ]; then
		why="unexpected output on stdout"
	elif [ -z "$why" ] && [ -n "$outpat" ] && ! grep -q -- "$outpat" "$OUT/$name.out"; then
		why="stdout lacks '$outpat'"
	fi
	if [ -z "$why" ] && [ -z "$errpat" ] && [ -s "$OUT/$name.err" ]; then
		why="unexpected output on stderr"
	elif [ -z "$why" ] && [ -n "$errpat" ] && ! grep -q -- "$errpat" "$OUT/$name.err"; then
		why="stderr lacks '$errpat'"
	fi
	report "$name" "$why" "$OUT/$name.err"
}

# report NAME WHY LOG: PASS when WHY is empty, else FAIL with LOG's head.
report() {
	if [ -z "$2" ]; then
		echo "PASS $1"
		pass=$((pass + 1))
	else
		echo "FAIL $1 ($2)"
		sed 's/^/    /' "$3" | head -5
		fail=$((fail + 1))
	fi
}

# Host only: make install and where flint run finds its guest.
. "$(dirname "$0")/install.sh"
# Host only: flint run's --env, --workdir, --save-after and --attach.
. "$(dirname "$0")/attach.sh"
# Host only: flint serve with a stand-in for its VMs.
. "$(dirname "$0")/serve.sh"
# flint bench: a stand-in flint; with /dev/kvm, the tiny guest's phases.
. "$(dirname "$0")/bench.sh"

# Host only: flint's static TLS, which every thread of a static flint has
# paged in, stays small (a 64 KiB static __thread buffer cost 196 KiB of RSS
# a thread: bench's rss_overhead_kib). Read from the binary's TLS segment.
tls=$(readelf -lW "$FLINT" 2>/dev/null | awk '$1 == "TLS" { print $6 }')
if [ -z "$tls" ]; then
	report tls-small "no TLS segment read from $FLINT (readelf -lW)" /dev/null
elif [ $((tls)) -gt 16384 ]; then
	report tls-small "TLS of $((tls)) bytes a thread, more than 16384" /dev/null
else
	report tls-small "" /dev/null
fi

# Host only: mk/boot-order.ld took effect. The code a launch runs is in
# .boot.text, ahead of .text: flint's own functions and the libraries'
# (matched by archive member), which a launch calls.
section() { # NAME: "0xADDR 0xSIZE" of flint's section NAME
	readelf -SW "$FLINT" 2>/dev/null |
		awk -v n="$1" '{ sub(/^ *\[ *[0-9]+\] */, "") } $1 == n { print "0x" $3, "0x" $5 }'
}
read -r bt_at bt_size <<EOF
$(section .boot.text)
EOF
read -r text_at _ <<EOF
$(section .text)
EOF
if [ -z "$bt_at" ] || [ -z "$text_at" ]; then
	report boot-order "no .boot.text or .text in $FLINT (readelf -SW)" /dev/null
elif [ $((bt_size)) -lt 131072 ] || [ $((bt_at + bt_size)) -gt $((text_at)) ]; then
	report boot-order ".boot.text of $((bt_size)) bytes at $bt_at, .text at $text_at" /dev/null
else
	out=
	for sym in main vm_run vcpu_thread evloop_run malloc pthread_create seccomp_load \
		io_uring_queue_init_params; do
		a=$(nm "$FLINT" | awk -v s="$sym" '$3 == s && $2 ~ /[TtWw]/ { print "0x" $1; exit }')
		if [ -z "$a" ] || [ $((a)) -lt $((bt_at)) ] || [ $((a)) -ge $((bt_at + bt_size)) ]; then
			out="$out $sym(${a:-missing})"
		fi
	done
	[ -z "$out" ] || out="outside .boot.text:$out"
	report boot-order "$out" /dev/null
fi

# Host only: a --rootfs directory without flint's /init is refused before
# any image is built (the guest would boot a userland's /sbin/init and
# flint run wait for an agent that never comes).
mkdir -p "$OUT/no-init/sbin" && : >"$OUT/no-init/sbin/init"
rm -rf "$OUT/no-init-cache"
cache_was=${FLINT_CACHE-}
export FLINT_CACHE="$OUT/no-init-cache"
check rootfs-dir-no-init 125 "" \
	"--rootfs $OUT/no-init: no executable /init in it.*name it with --image" -- \
	run --kernel "$OUT/no-init/sbin/init" --rootfs "$OUT/no-init" -- true
# And a cache limit that is no size is named before any image is built.
max_was=${FLINT_CACHE_MAX-}
export FLINT_CACHE_MAX=10X
check run-cache-max-bad 125 "" "FLINT_CACHE_MAX=10X: expected the image cache's limit" -- \
	run --kernel "$OUT/no-init/sbin/init" --rootfs "$OUT/no-init/sbin/init" \
	--image "$OUT/no-init" -- true
if [ -n "$max_was" ]; then FLINT_CACHE_MAX=$max_was; else unset FLINT_CACHE_MAX; fi
if [ -n "$cache_was" ]; then FLINT_CACHE=$cache_was; else unset FLINT_CACHE; fi
[ ! -e "$OUT/no-init-cache/images" ] ||
	report rootfs-dir-no-init-builds-nothing "an image was built in $OUT/no-init-cache" /dev/null

# Host only: flint run takes the logger's options (a log file that is not
# there is named before anything is booted) and refuses flint's metrics
# file, naming it, where it ignored it.
check run-log-path-missing 125 "" "cannot open log_path '$OUT/nope/log'" -- \
	run --log-path "$OUT/nope/log" --kernel "$OUT/nope/vmlinux" -- true
check run-metrics-path-refused 125 "" "--metrics-path is not an option of flint run" -- \
	run --metrics-path "$OUT/metrics" -- true
# --attach too (it ignored them), and no log file passes for a --wait-fd
# that is not open (the lowest free number: the log's, opened first).
check attach-log-path-missing 125 "" "cannot open log_path '$OUT/nope/log'" -- \
	run --attach "$OUT/nope.sock" --log-path "$OUT/nope/log" -- true
: >"$OUT/wait-fd.log"
timeout 20 "$FLINT" run --restore "$OUT/nope.state" --mem-file "$OUT/nope.mem" --wait-fd 3 \
	--log-path "$OUT/wait-fd.log" -- true >"$OUT/run-wait-fd-closed.out" \
	2>"$OUT/run-wait-fd-closed.err" </dev/null 3<&-
got=$? why=""
[ "$got" = 125 ] && grep -q -- "--wait-fd 3: not an open file descriptor" "$OUT/run-wait-fd-closed.err" ||
	why="status $got, expected 125 and --wait-fd 3 refused"
report run-wait-fd-closed "$why" "$OUT/run-wait-fd-closed.err"
# And flint's --control-fd, the same way (a metrics or log file opened
# first would take its number).
timeout 20 "$FLINT" --restore "$OUT/nope.state" --mem-file "$OUT/nope.mem" --control-fd 3 \
	--log-path "$OUT/wait-fd.log" >"$OUT/control-fd-closed.out" \
	2>"$OUT/control-fd-closed.err" </dev/null 3<&-
got=$? why=""
[ "$got" = 125 ] && grep -q -- "--control-fd 3: not an open file descriptor" "$OUT/control-fd-closed.err" ||
	why="status $got, expected 125 and --control-fd 3 refused"
report control-fd-closed "$why" "$OUT/control-fd-closed.err"

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP the tests with a guest: no usable /dev/kvm on this host"
	echo "$pass passed, $fail failed, 1 skipped"
	[ "$fail" = 0 ]
	exit
fi

for v in EXIT_STATUS RESET TRIPLE PANIC PANIC_LINE HANG COUNT WALK FLOOD; do
	cc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,--build-id=none \
		-D$v -o "$OUT/tiny-$v.elf" "$(dirname "$0")/tiny-guest.S" || exit 1
done

check exit-status 42 "hello from the tiny guest" "guest boot time" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf"
check exit-status-smp 42 "hello from the tiny guest" "KVM exits" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --vcpus 4 --mem 64M --stats
check console-none 42 "" "guest boot time" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --console none
check i8042-reset 0 "hello from the tiny guest" "guest boot time" -- \
	--kernel "$OUT/tiny-RESET.elf"
check triple-fault 122 "hello from the tiny guest" "triple fault.*; \(rip 0x[0-9a-f]* rsp 0x\|its registers are lost\)" -- \
	--kernel "$OUT/tiny-TRIPLE.elf"
# A panic without panic=: the kernel prints its end marker and spins; flint
# stops it there (not at the 20 s timeout) with the panic line. A panic line
# alone, with no end marker after it, stops nothing.
check panic-spins 122 "end Kernel panic - not syncing: tiny guest test panic" \
	"guest kernel panic: .*Kernel panic - not syncing: tiny guest test panic$" -- \
	--kernel "$OUT/tiny-PANIC.elf"
check panic-console-none 122 "" "guest kernel panic: .*tiny guest test panic$" -- \
	--kernel "$OUT/tiny-PANIC.elf" --console none
check panic-line-only 42 "only a line of text" "guest boot time" -- \
	--kernel "$OUT/tiny-PANIC_LINE.elf"
head -c 4096 /dev/urandom >"$OUT/garbage"
: >"$OUT/empty"
check garbage-kernel 125 "" "kernel $OUT/garbage: not an ELF or bzImage" -- \
	--kernel "$OUT/garbage"
check empty-kernel 125 "" "kernel $OUT/empty:" -- --kernel "$OUT/empty"
check missing-kernel 125 "" "cannot read kernel $OUT/nope: No such file" -- \
	--kernel "$OUT/nope"
check missing-initrd 125 "" "cannot read initrd $OUT/nope" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --initrd "$OUT/nope"
truncate -s 20M "$OUT/big"
check kernel-too-big 125 "" "kernel $OUT/big is larger than guest memory" -- \
	--kernel "$OUT/big" --mem 16M
check initrd-not-a-file 125 "" "initrd /dev/null is not a regular file" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --initrd /dev/null
check bad-option 125 "" "unknown option --frob" -- --frob

. "$(dirname "$0")/api.sh"
. "$(dirname "$0")/snapshot.sh"
. "$(dirname "$0")/machine.sh"
. "$(dirname "$0")/phases.sh"

# Pause and resume, driven as the API will (tests/smoke/pause.c): the
# guest's ticks stop while it is paused and go on after; a stop while paused
# ends it. Each of its checks is a PASS or FAIL line of its own.
timeout 30 "$BUILD_DIR/vm-pause-test" "$OUT/tiny-COUNT.elf" "$OUT/pause.out" \
	>"$OUT/pause.verdicts" 2>"$OUT/pause.err"
got=$?
cat "$OUT/pause.verdicts"
pass=$((pass + $(grep -c '^PASS' "$OUT/pause.verdicts")))
fail=$((fail + $(grep -c '^FAIL' "$OUT/pause.verdicts")))
why=""
[ $got = 0 ] || why="status $got"
grep -q '^PASS' "$OUT/pause.verdicts" || why="no verdicts${why:+, $why}"
[ -z "$why" ] || report pause-test "$why" "$OUT/pause.err"

# seccomp: every run above had the filters on (the default). A drive, which
# the tiny guest ignores, starts the event-loop thread; --stats makes the
# main thread read KVM statistics under its filter.
truncate -s 1M "$OUT/disk"
check seccomp-evloop-stats 42 "hello from the tiny guest" "vda: reads=0" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --vcpus 2 --drive "path=$OUT/disk" --stats
# SIGQUIT stops the VM (128+3) and says where each vCPU was, its RIP and
# its local APIC (a hung guest's post-mortem), without --stats.
why=""
timeout 20 "$FLINT" --kernel "$OUT/tiny-COUNT.elf" --vcpus 2 >"$OUT/quit.out" 2>"$OUT/quit.err" \
	</dev/null &
quit_pid=$!
n=0
until grep -q tick "$OUT/quit.out" 2>/dev/null || [ $n -ge 100 ]; do
	sleep 0.05
	n=$((n + 1))
done
kill -QUIT $quit_pid
got=0
wait $quit_pid || got=$?
[ "$got" = 131 ] || why="status $got, expected 131"
[ -n "$why" ] || grep -q "stopped by signal 3" "$OUT/quit.err" || why="no 'stopped by signal 3'"
[ -n "$why" ] || grep -q "vCPUs left the guest at: 0:rip=0x[0-9a-f]* 1:" "$OUT/quit.err" ||
	why="no vCPU RIPs"
[ -n "$why" ] || grep -q "vCPU 1's local APIC: timer" "$OUT/quit.err" || why="no local APIC line"
[ -n "$why" ] || ! grep -q "KVM exits" "$OUT/quit.err" || why="--stats' counts without --stats"
report sigquit-says-where "$why" "$OUT/quit.err"
# The hidden test hook makes a forbidden call (execve) on one thread once its
# filter is on: SIGSYS kills flint (status 128+31), or, with --seccomp-log,
# the call is only logged and the guest runs to its end, as it does with
# --no-seccomp, where no filter is on to see the call. The vCPU's call
# comes before its first KVM_RUN, so the guest prints nothing.
for t in main vcpu evloop; do
	[ $t = vcpu ] && out="" || out=-
	check seccomp-hook-$t 159 "$out" "seccomp test hook: execve on the $t thread$" -- \
		--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$OUT/disk" \
		--seccomp-test-forbidden $t
	check seccomp-hook-$t-log 42 "hello from the tiny guest" \
		"execve on the $t thread returned -1 (No such file or directory): logged" -- \
		--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$OUT/disk" \
		--seccomp-test-forbidden $t --seccomp-log
	check seccomp-hook-$t-none 42 "hello from the tiny guest" \
		"execve on the $t thread returned -1 (No such file or directory): no filter" -- \
		--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$OUT/disk" \
		--seccomp-test-forbidden $t --no-seccomp
done
# --no-seccomp says, once, that there are no filters.
[ "$(grep -c 'seccomp: no filters (--no-seccomp)' "$OUT/seccomp-hook-main-none.err")" = 1 ]
report no-seccomp-warns-once "$([ $? = 0 ] || echo "not one warning line")" \
	"$OUT/seccomp-hook-main-none.err"

# Image locks: one writer or any number of readers per image. A first flint
# holds the image (its guest halts for ever), a second one is refused with a
# message naming the image and the conflict, or shares it read-only.
# hold SPEC: a flint with drive SPEC in the background, once its guest runs.
hold() {
	# Emptied here, not by the background job's own redirection, which
	# may come after the first grep: a holder.out left by an earlier
	# holder would then say this one runs before it holds the image.
	: >"$OUT/holder.out"
	"$FLINT" --kernel "$OUT/tiny-HANG.elf" --drive "$1" </dev/null >"$OUT/holder.out" \
		2>"$OUT/holder.err" &
	holder=$!
	n=0
	while ! grep -q "hello from the tiny guest" "$OUT/holder.out" && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
}
release() {
	kill -TERM "$holder"
	wait "$holder"
}
IMG=$OUT/locked.img
truncate -s 1M "$IMG"
hold "path=$IMG"
check lock-second-writer 125 "" \
	"drive $IMG: cannot open read-write: in use read-write by another process" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$IMG"
check lock-reader-beside-writer 125 "" \
	"drive $IMG: cannot open read-only: in use read-write by another process" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$IMG,ro"
release
hold "path=$IMG,ro"
check lock-readers-share 42 "hello from the tiny guest" "guest boot time" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$IMG,ro"
check lock-writer-beside-readers 125 "" \
	"drive $IMG: cannot open read-write: in use read-only by another process" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$IMG"
release
check lock-released 42 "hello from the tiny guest" "guest boot time" -- \
	--kernel "$OUT/tiny-EXIT_STATUS.elf" --drive "path=$IMG"

# On a terminal, flint sets it raw and gives it back its settings at exit,
# under the main thread's filter (script(1) provides the terminal).
if command -v script >/dev/null; then
	timeout 20 script -qec "$FLINT --kernel $OUT/tiny-EXIT_STATUS.elf" /dev/null \
		</dev/null >"$OUT/seccomp-tty.out" 2>&1
	got=$?
	why=""
	[ $got = 42 ] || why="status $got, expected 42"
	[ -z "$why" ] && ! grep -q "hello from the tiny guest" "$OUT/seccomp-tty.out" &&
		why="no guest output"
	report seccomp-tty "$why" "$OUT/seccomp-tty.out"
else
	echo "SKIP seccomp-tty: no script(1) for a terminal"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
