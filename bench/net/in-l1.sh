# bench/net and bench/vsock, the part that runs inside the rig's L1 (or on a
# host with hardware KVM): flint and QEMU -M microvm take turns booting the
# same guest (kernel, initramfs with nbench, memory, vCPU, command line) with
# a virtio-net device on the tap $TAP and/or a vsock device, and the same
# workloads run against each: nbench serves in the guest, and nbench clients
# in L1 stream to it, from it, and do request/response.
#
#  - TCP: the guest is $GUEST_IP on eth0 (the kernel's ip= option); L1 is
#    $HOST_IP on the tap. QEMU's virtio-net-device uses the tap with
#    vhost=off, so both VMMs move the packets in user space.
#  - vsock: QEMU's vhost-vsock-device (guest CID 3; L1 connects with AF_VSOCK);
#    flint's hybrid vsock (L1 connects to its Unix socket and sends CONNECT).
#
# Exits: the client reads KVM's kvm_exit histogram at the start and the end
# of each measured interval; interrupts: the guest server's /proc/interrupts
# virtio lines over the same interval (peer_irqs).
#
# Usage: sh in-l1.sh RUNS SECONDS "tcp vsock"
# Prints one "res vmm=... run=... name=... " line per workload and run, then
# the table (bench/net/summarize.awk).
set -u
RUNS=${1:-3}
SECS=${2:-3}
TRANSPORTS=${3:-tcp}
NB=$TOOLS/nbench
MEM=256
TAP=tapnb
HOST_IP=172.30.0.1
GUEST_IP=172.30.0.2
MAC=52:54:00:12:34:56
CID=3
PORT=5201
UDS=/tmp/nbench-vsock.sock
# reboot=t: QEMU microvm has no i8042 (see bench/boot/in-l1.sh). ip=: eth0
# configured by the kernel, before init.
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet"
# A VM's limit: boot, then 3 workloads a transport, each its warm-up, SECS
# and the client's 30 s I/O timeout at worst.
VM_LIMIT=$((120 + $(echo $TRANSPORTS | wc -w) * 3 * (SECS + 31)))
DIR=$(dirname "$0")
. "$DIR/../exits.sh"

exits_setup
[ -x "$NB" ] && [ -f "$TEST_INITRD" ] || { echo "bench: no $NB or $TEST_INITRD (make test-tools)"; exit 2; }

has() { case " $TRANSPORTS " in *" $1 "*) return 0 ;; esac; return 1; }

# The guest's listeners and the VMMs' devices, for the transports asked for.
# QEMU's auto-kernel-cmdline would put its virtio_mmio.device= arguments
# after the "--", where flint's init takes them for the command: they are
# given here instead. QEMU places devices from microvm's last virtio-mmio
# slot down, in command-line order (slot 7 at 0xfeb00e00, IRQ 12, then 6).
LISTEN=
QEMU_DEVS=
QEMU_MMIO=
FLINT_DEVS=
slot=7
if has tcp; then
	CMDLINE="$CMDLINE ip=$GUEST_IP::$HOST_IP:255.255.255.0::eth0:off"
	LISTEN="$LISTEN tcp::$PORT"
	QEMU_DEVS="$QEMU_DEVS -netdev tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off"
	QEMU_DEVS="$QEMU_DEVS -device virtio-net-device,netdev=n0,mac=$MAC"
	FLINT_DEVS="$FLINT_DEVS --net tap=$TAP,mac=$MAC"
	QEMU_MMIO="$QEMU_MMIO virtio_mmio.device=512@$(printf 0x%x $((0xfeb00000 + slot * 512))):$((5 + slot))"
	slot=$((slot - 1))
	# A persistent tap both VMMs attach to in turn; L1's end of the link.
	tunctl -t $TAP >/dev/null || { echo "bench: cannot create tap $TAP"; exit 2; }
	ip addr add $HOST_IP/24 dev $TAP && ip link set $TAP up || exit 2
fi
if has vsock; then
	LISTEN="$LISTEN vsock::$PORT"
	QEMU_DEVS="$QEMU_DEVS -device vhost-vsock-device,guest-cid=$CID"
	FLINT_DEVS="$FLINT_DEVS --vsock cid=$CID,uds=$UDS"
	QEMU_MMIO="$QEMU_MMIO virtio_mmio.device=512@$(printf 0x%x $((0xfeb00000 + slot * 512))):$((5 + slot))"
	[ -c /dev/vhost-vsock ] || echo "bench: no /dev/vhost-vsock in L1 (vhost_vsock not loaded?)"
fi

# flint takes part when it has the options (and, from its --help, the
# devices) for every transport asked for.
vmms="flint qemu"
for t in $TRANSPORTS; do
	case $t in tcp) opt=--net ;; vsock) opt=--vsock ;; *) echo "bench: unknown transport $t"; exit 2 ;; esac
	"$FLINT" --help 2>&1 | grep -q -- "$opt" || vmms=qemu
done
[ "$vmms" = qemu ] && echo "bench: flint lacks an option for '$TRANSPORTS': QEMU only"

# Waits for the guest's "nbench: server ready", or the VMM's end.
await_ready() {
	# (not $i: sh has no local variables, and the caller's loop uses i)
	tries=0
	while [ $tries -lt 1200 ]; do
		grep -q '^nbench: server ready' /tmp/nb.out 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.1
		tries=$((tries + 1))
	done
	return 1
}

# One VM: boot it, run every workload against it, stop it.
run_one() {
	vmm=$1 run=$2
	rm -f "$UDS"
	exits_reset
	if [ "$vmm" = flint ]; then
		# shellcheck disable=SC2086
		timeout $VM_LIMIT "$FLINT" --kernel "$KERNEL" --initrd "$TEST_INITRD" --mem ${MEM}M \
			--vcpus 1 --cmdline "$CMDLINE" $FLINT_DEVS --stats \
			-- nbench server $LISTEN </dev/null >/tmp/nb.out 2>/tmp/nb.err &
	else
		# shellcheck disable=SC2086
		timeout $VM_LIMIT qemu-system-x86_64 \
			-M microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off \
			-global virtio-mmio.force-legacy=false \
			-accel kvm -cpu host -m $MEM -smp 1 -nodefaults -no-user-config \
			-display none -serial stdio -no-reboot -kernel "$KERNEL" -initrd "$TEST_INITRD" \
			$QEMU_DEVS -append "$CMDLINE$QEMU_MMIO -- nbench server$LISTEN" \
			</dev/null >/tmp/nb.out 2>/tmp/nb.err &
	fi
	pid=$!
	ok=0
	if await_ready $pid; then
		ok=1
		for t in $TRANSPORTS; do
			if [ $t = tcp ]; then
				addr=tcp:$GUEST_IP:$PORT
			elif [ $vmm = flint ]; then
				addr=unix:$UDS:$PORT
			else
				addr=vsock:$CID:$PORT
			fi
			# g2h: the guest sends (client mode recv); h2g: L1 sends.
			for w in g2h:recv h2g:send rr:rr; do
				if line=$("$NB" client -H "$HIST" -n "$t-${w%:*}" -t "$SECS" -r 5 \
					"$addr" "${w#*:}" 2>>/tmp/nb-client.err); then
					echo "res vmm=$vmm run=$run ${line#nbench: }"
				else
					ok=0
				fi
			done
		done
		"$NB" client -r 5 "$addr" quit 2>>/tmp/nb-client.err
	fi
	[ $ok = 1 ] || kill $pid 2>/dev/null
	wait $pid
	rc=$?
	exits_stop
	if [ $ok != 1 ] || [ $rc != 0 ]; then
		echo "res vmm=$vmm run=$run failed"
		echo "# $vmm run $run: status $rc; console, stderr and client stderr tails:"
		tr -d '\r' </tmp/nb.out | tail -n 8 | sed 's/^/# out: /'
		tail -n 8 /tmp/nb.err | sed 's/^/# err: /'
		tail -n 4 /tmp/nb-client.err 2>/dev/null | sed 's/^/# client: /'
	fi
	{ echo "=== $vmm run $run"; tr -d '\r' </tmp/nb.out; } >>/tmp/nb-console.log
	{ echo "=== $vmm run $run"; cat /tmp/nb.err; } >>/tmp/nb-stderr.log
	rm -f /tmp/nb-client.err
}

t0=$(cut -d' ' -f1 /proc/uptime)
i=1
while [ $i -le "$RUNS" ]; do
	# Alternate which goes first, as bench/blk does.
	if [ $((i % 2)) = 1 ]; then order=$vmms; else order=$(echo $vmms | awk '{ for (j = NF; j; j--) printf "%s ", $j }'); fi
	for v in $order; do run_one "$v" $i; done
	i=$((i + 1))
done | tee /tmp/nb-runs.txt
echo "bench: $RUNS runs in $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.0f", b - a }') s in L1"
awk -v secs="$SECS" -f "$DIR/../table.awk" -f "$DIR/summarize.awk" /tmp/nb-runs.txt | tee /tmp/nb-table.txt
if [ -n "${RIG_OUT:-}" ]; then
	cp /tmp/nb-runs.txt /tmp/nb-table.txt /tmp/nb-console.log /tmp/nb-stderr.log "$RIG_OUT/" 2>/dev/null
fi
