# bench/nested, the part that runs inside the rig's L1: how often a guest
# crashes under nested virtualization, flint against QEMU -M microvm, and
# flint with one of its study switches (FLINT_STUDY, runner/core/study.h) each.
#
# ROUNDS rounds; in each, one VM per configuration, in an order that rotates
# from round to round. Every VM boots the bench/net guest (build/vmlinux, the
# test initramfs with nbench, 256 MiB, 1 vCPU, virtio-net on the tap $TAP),
# runs tcp-g2h, tcp-h2g and tcp-rr for SECONDS each against an nbench client
# in L1, is told to quit, and is classified:
#
#   ok         every workload ran, the VMM exited 0 (QEMU: after the guest's
#              "reboot: Restarting system")
#   triple     flint: status 122 "triple fault"; QEMU: it exited (the guest
#              reset, -no-reboot) before the guest asked for it
#   emulation  KVM could not emulate an instruction (flint: status 122; QEMU
#              pauses the VM and says "emulation failure")
#   panic      the guest's kernel panicked
#   hung       the guest stopped answering (no "server ready", or the client
#              timed out) with the VMM still running: killed
#   other      anything else (the tails are printed)
#
# Configurations (CONFIGS, space separated): qemu, flint, and flint:SWITCHES
# (FLINT_STUDY=SWITCHES, e.g. flint:no-thp or flint:no-thp,no-msrs).
#
# TRANSPORTS "tcp" (default) or "tcp vsock": the latter also gives every VM
# a vsock device (flint: hybrid vsock on a Unix socket; QEMU:
# vhost-vsock-device) and runs vsock-g2h, -h2g and -rr after the TCP ones,
# bench/net's `run N S "tcp vsock"`. FLINT_OPTS: more flint options (bench/net
# passes --stats).
#
# Usage: sh in-l1.sh ROUNDS SECONDS "CONFIGS" [BUDGET [TRANSPORTS [FLINT_OPTS]]]
# Starts no new VM after BUDGET seconds (0: no limit). Prints one
# "nest cfg=... round=... result=..." line per VM as soon as it is known, so
# an L1 that freezes loses only the VM under way, then a table
# (bench/nested/summarize.awk).
set -u
ROUNDS=${1:-10}
SECS=${2:-2}
CONFIGS=${3:-flint qemu}
BUDGET=${4:-0}
TRANSPORTS=${5:-tcp}
FLINT_OPTS=${6:-}
NB=$TOOLS/nbench
MEM=256
TAP=tapnb
HOST_IP=172.30.0.1
GUEST_IP=172.30.0.2
MAC=52:54:00:12:34:56
PORT=5201
CID=3
UDS=/tmp/nested-vsock.sock
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet ip=$GUEST_IP::$HOST_IP:255.255.255.0::eth0:off"
# QEMU's microvm: virtio-mmio slot 7, then 6 (see bench/net/in-l1.sh).
QEMU_MMIO="virtio_mmio.device=512@0xfeb00e00:12"
QEMU_VSOCK=
FLINT_VSOCK=
LISTEN=tcp::$PORT
WORKLOADS="tcp:g2h:recv tcp:h2g:send tcp:rr:rr"
case " $TRANSPORTS " in
*" vsock "*)
	QEMU_MMIO="$QEMU_MMIO virtio_mmio.device=512@0xfeb00c00:11"
	QEMU_VSOCK="-device vhost-vsock-device,guest-cid=$CID"
	FLINT_VSOCK="--vsock cid=$CID,uds=$UDS"
	LISTEN="$LISTEN vsock::$PORT"
	WORKLOADS="$WORKLOADS vsock:g2h:recv vsock:h2g:send vsock:rr:rr"
	;;
esac
NW=$(echo $WORKLOADS | wc -w)
# Boot, the workloads (warm-up, SECONDS, and the client's 30 s silence
# limit at worst), quit.
VM_LIMIT=$((90 + NW * (SECS + 31)))
DIR=$(dirname "$0")
. "$DIR/../exits.sh"

exits_setup
[ -x "$NB" ] && [ -f "$TEST_INITRD" ] || { echo "nested: no $NB or $TEST_INITRD (make test-tools)"; exit 2; }
tunctl -t $TAP >/dev/null || { echo "nested: cannot create tap $TAP"; exit 2; }
ip addr add $HOST_IP/24 dev $TAP && ip link set $TAP up || exit 2

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Waits for the guest's "nbench: server ready" (0), the VMM's end (1) or
# 60 s (2).
await_ready() {
	tries=0
	while [ $tries -lt 600 ]; do
		grep -q '^nbench: server ready' /tmp/ne.out 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.1
		tries=$((tries + 1))
	done
	return 2
}

# One VM of configuration $1 in round $2: boot, load, quit, classify.
run_one() {
	cfg=$1 round=$2
	t0=$(uptime_s)
	exits_reset
	case $cfg in
	qemu)
		timeout $VM_LIMIT qemu-system-x86_64 \
			-M microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off \
			-global virtio-mmio.force-legacy=false \
			-accel kvm -cpu host -m $MEM -smp 1 -nodefaults -no-user-config \
			-display none -serial stdio -no-reboot -kernel "$KERNEL" -initrd "$TEST_INITRD" \
			-netdev tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off \
			-device virtio-net-device,netdev=n0,mac=$MAC $QEMU_VSOCK \
			-append "$CMDLINE $QEMU_MMIO -- nbench server $LISTEN" \
			</dev/null >/tmp/ne.out 2>/tmp/ne.err &
		;;
	flint*)
		study=
		case $cfg in flint:*) study=${cfg#flint:} ;; esac
		rm -f "$UDS"
		# shellcheck disable=SC2086
		FLINT_STUDY=$study timeout $VM_LIMIT "$FLINT" --kernel "$KERNEL" --initrd "$TEST_INITRD" \
			--mem ${MEM}M --vcpus 1 --cmdline "$CMDLINE" --net tap=$TAP,mac=$MAC $FLINT_VSOCK \
			$FLINT_OPTS -- nbench server $LISTEN </dev/null >/tmp/ne.out 2>/tmp/ne.err &
		;;
	*)
		echo "nested: unknown configuration $cfg"
		return
		;;
	esac
	pid=$!
	done=0 alive=1
	await_ready $pid
	ready=$?
	if [ $ready = 0 ]; then
		for w in $WORKLOADS; do
			t=${w%%:*}
			if [ $t = tcp ]; then
				addr=tcp:$GUEST_IP:$PORT
			elif [ $cfg = qemu ]; then
				addr=vsock:$CID:$PORT
			else
				addr=unix:$UDS:$PORT
			fi
			w=${w#*:}
			"$NB" client -n "$t-${w%:*}" -t "$SECS" -r 5 "$addr" "${w#*:}" \
				>/dev/null 2>>/tmp/ne-client.err || break
			done=$((done + 1))
		done
		[ $done = $NW ] && "$NB" client -r 5 "tcp:$GUEST_IP:$PORT" quit 2>>/tmp/ne-client.err
	fi
	# Whatever did not end by itself within 20 s of the last workload is
	# killed; a guest that stopped answering is "hung" if its VMM was
	# still there when the load gave up.
	if [ $done != $NW ] && kill -0 $pid 2>/dev/null; then
		sleep 2
		kill -0 $pid 2>/dev/null && { alive=1; kill $pid 2>/dev/null; } || alive=0
	else
		n=0
		while kill -0 $pid 2>/dev/null && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
		kill -0 $pid 2>/dev/null && kill $pid 2>/dev/null
		alive=0
	fi
	wait $pid
	rc=$?
	cp "$HIST" /tmp/ne.hist 2>/dev/null
	exits=$(sed -n 's/^ *Hits: *//p' /tmp/ne.hist 2>/dev/null)
	exits_stop
	tr -d '\r' </tmp/ne.out >/tmp/ne.con
	if grep -q 'failed to emulate\|emulation failure\|internal error' /tmp/ne.err; then
		res=emulation
	elif grep -q 'Kernel panic' /tmp/ne.con; then
		res=panic
	elif [ $done = $NW ] && [ $rc = 0 ]; then
		if [ $cfg = qemu ] && ! grep -q 'Restarting system' /tmp/ne.con; then res=other; else res=ok; fi
	elif [ $rc = 124 ] || [ $alive = 1 ] || [ $ready = 2 ]; then
		res=hung
	elif grep -q 'triple fault' /tmp/ne.err; then
		res=triple
	elif [ $cfg = qemu ] && [ $rc = 0 ] && ! grep -q 'Restarting system' /tmp/ne.con; then
		res=triple # a reset nobody asked for: -no-reboot ends QEMU with 0
	else
		res=other
	fi
	dt=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')
	echo "nest cfg=$cfg round=$round result=$res rc=$rc workloads=$done exits=${exits:-0} s=$dt"
	if [ $res != ok ]; then
		tail -n 6 /tmp/ne.con | sed 's/^/# out: /'
		tail -n 3 /tmp/ne.err | sed 's/^/# err: /'
		tail -n 2 /tmp/ne-client.err 2>/dev/null | sed 's/^/# client: /'
		# The VM's exits by SVM exit code, most frequent last: a guest
		# looping in L1's instruction emulator shows here.
		grep 'exit_reason' /tmp/ne.hist 2>/dev/null | tail -n 4 | sed 's/^/# exits: /'
	fi
	{ echo "=== $cfg round $round: $res"; cat /tmp/ne.con; cat /tmp/ne.err; } >>/tmp/ne-console.log
	rm -f /tmp/ne-client.err
}

[ "$TRANSPORTS" = tcp ] || echo "nested: transports $TRANSPORTS; flint options: ${FLINT_OPTS:-none}"
start=$(uptime_s)
ncfg=$(echo $CONFIGS | wc -w)
i=1
while [ $i -le "$ROUNDS" ]; do
	# Rotate the order by one each round: every configuration runs right
	# after every other, at every position, equally often.
	k=0
	while [ $k -lt $ncfg ]; do
		idx=$(((i + k) % ncfg + 1))
		cfg=$(echo $CONFIGS | cut -d' ' -f$idx)
		if [ "$BUDGET" != 0 ] && awk -v a="$start" -v b="$(uptime_s)" -v l="$BUDGET" 'BEGIN { exit !(b - a > l) }'; then
			echo "nested: budget of $BUDGET s spent after round $((i - 1))"
			i=$ROUNDS
			break
		fi
		run_one "$cfg" $i
		k=$((k + 1))
	done
	i=$((i + 1))
done | tee /tmp/ne-runs.txt
echo "nested: done in $(awk -v a="$start" -v b="$(uptime_s)" 'BEGIN { printf "%.0f", b - a }') s in L1"
awk -v nofisher=1 -f "$DIR/summarize.awk" /tmp/ne-runs.txt
if [ -n "${RIG_OUT:-}" ]; then
	cp /tmp/ne-runs.txt /tmp/ne-console.log "$RIG_OUT/" 2>/dev/null
fi
