# bench/blk, the part that runs inside the rig's L1 (or on a host with
# hardware KVM): the same guest I/O workload (blkbench) against flint and
# QEMU -M microvm, alternately, on the same 256 MiB preallocated image, with
# the same kernel, initramfs, memory, vCPUs and command line.
#
# Both VMMs serve the drive from the host page cache with io_uring: flint's
# default (no ,direct) and QEMU's cache=writeback,aio=io_uring. The image
# lives in L1's /tmp, a tmpfs, so this measures the virtio-blk path (exits,
# interrupts, request handling) at memory speed, not a disk; tmpfs on 6.1
# refuses O_DIRECT, so cache=none is not an option here anyway. QEMU's
# virtio-mmio is made modern (virtio 1.0, as flint's) instead of its legacy
# default; the request path (split ring, EVENT_IDX, indirect descriptors,
# interrupt status read and acknowledge) is the same either way.
#
# Usage: sh in-l1.sh DRIVE INITRD RUNS SECONDS
# Prints one "res vmm=... name=... ops=... exits..." line per workload and
# run, then the table (bench/blk/summarize.awk).
set -u
DRIVE=$1
BINITRD=$2
RUNS=${3:-3}
SECS=${4:-3}
MEM=256
IMG=/tmp/blk.img
# reboot=t: QEMU microvm has no i8042 (see bench/boot/in-l1.sh).
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet"
# QEMU puts the first virtio-mmio device on microvm's last slot; its own
# kernel arguments would land after the "--" (auto-kernel-cmdline=off).
QEMU_MMIO="virtio_mmio.device=512@0xfeb00e00:12"
DIR=$(dirname "$0")
. "$DIR/../exits.sh"

exits_setup
"$FLINT" --help 2>&1 | grep -q -- --drive || echo "bench: flint has no --drive yet: QEMU only"

# Written in full, so every read hits allocated pages, never a hole.
dd if=/dev/zero of=$IMG bs=1M count=256 2>/dev/null || { echo "bench: cannot create $IMG"; exit 2; }

# One VM: a fresh histogram, drive, one "res" line per workload.
run_one() {
	vmm=$1 run=$2
	exits_reset
	if [ "$vmm" = flint ]; then
		"$DRIVE" -t 600 -h "$HIST" -- "$FLINT" --kernel "$KERNEL" --initrd "$BINITRD" \
			--mem ${MEM}M --vcpus 1 --cmdline "$CMDLINE" --drive path=$IMG --stats \
			-- blkbench /dev/vda "$SECS" >/tmp/blk.out 2>/tmp/blk.err
	else
		"$DRIVE" -t 600 -h "$HIST" -- qemu-system-x86_64 \
			-M microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off \
			-global virtio-mmio.force-legacy=false \
			-accel kvm -cpu host -m $MEM -smp 1 -nodefaults -no-user-config \
			-display none -serial stdio -no-reboot -kernel "$KERNEL" -initrd "$BINITRD" \
			-drive id=d0,file=$IMG,format=raw,if=none,cache=writeback,aio=io_uring \
			-device virtio-blk-device,drive=d0 \
			-append "$CMDLINE $QEMU_MMIO -- blkbench /dev/vda $SECS" \
			>/tmp/blk.out 2>/tmp/blk.err
	fi
	rc=$?
	exits_stop
	# Pairs each workload's "exits" line with its "bench:" line.
	awk -v vmm="$vmm" -v run="$run" '
		/^exits name=/ { sub(/^exits /, ""); split($1, a, "="); ex[a[2]] = $0; next }
		/^bench: name=/ {
			sub(/^bench: /, ""); split($1, a, "=")
			print "res vmm=" vmm " run=" run " " $0 " " ex[a[2]]
			n++
		}
		END { if (!n) print "res vmm=" vmm " run=" run " failed" }' /tmp/blk.out
	if [ "$rc" != 0 ] || ! grep -q '^bench: name=write' /tmp/blk.out; then
		echo "# $vmm run $run: status $rc; console and stderr tails:"
		tail -n 8 /tmp/blk.out | sed 's/^/# out: /'
		tail -n 8 /tmp/blk.err | sed 's/^/# err: /'
	fi
	cat /tmp/blk.out >>/tmp/blk-console.log
	cat /tmp/blk.err >>/tmp/blk-stderr.log
}

vmms="flint qemu"
"$FLINT" --help 2>&1 | grep -q -- --drive || vmms=qemu
i=1
while [ $i -le "$RUNS" ]; do
	# Alternate which goes first so neither always runs on a warm cache.
	if [ $((i % 2)) = 1 ]; then order=$vmms; else order=$(echo $vmms | awk '{ for (j = NF; j; j--) printf "%s ", $j }'); fi
	for v in $order; do run_one "$v" $i; done
	i=$((i + 1))
done | tee /tmp/blk-runs.txt
awk -v secs="$SECS" -f "$DIR/../table.awk" -f "$DIR/summarize.awk" /tmp/blk-runs.txt | tee /tmp/blk-table.txt
if [ -n "${RIG_OUT:-}" ]; then
	cp /tmp/blk-runs.txt /tmp/blk-table.txt /tmp/blk-console.log /tmp/blk-stderr.log "$RIG_OUT/" 2>/dev/null
fi
