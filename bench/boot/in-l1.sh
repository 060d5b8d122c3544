# bench/boot, the part that runs inside the rig's L1 (or on a host with
# hardware KVM): boots flint and QEMU -M microvm alternately, the same guest
# kernel, initramfs, memory and command line, and measures for each run
#  - launch to the init's marker line on the console (launch-to-marker), and
#  - VM exits by SVM exit reason up to that line, from KVM's kvm_exit
#    tracepoint histogram read at the moment the marker appears.
# Usage: sh in-l1.sh LAUNCH-TO-MARKER RUNS SCRUB MIB [FILES...]
# (SCRUB "none" for no scrubbing: the rig passes the files it carries into
# L1 as the arguments that follow, so SCRUB and MIB are always given)
# Prints one "run vmm=... ms=... total=... npf=..." line per run, then the
# table (bench/boot/summarize.awk).
# With SCRUB (bench/boot/scrub, static) and MIB: the runs are made twice, in
# blocks of 4 rounds that take turns, as above and with `scrub MIB` before
# each VM (README.md, "What a VM leaves behind in the rig"); a table each.
set -u
LTM=$1
RUNS=${2:-10}
SCRUB=${3:-none}
SCRUB_MIB=${4:-0}
[ "$SCRUB" = none ] && SCRUB=""
MEM=128
# reboot=t: QEMU microvm has no i8042, and a keyboard-controller reboot
# there spins through 655k port reads before it gives up; flint's init ends
# the VM through flint's exit device before any reboot.
# The other words are flint's default ones (its --cmdline default), the
# same for both: noreplace-smp, and the i8042 words as Firecracker's, which
# QEMU microvm, without an i8042, ignores.
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
MARKER="flint-init: ready"
DIR=$(dirname "$0")
. "$DIR/../exits.sh"

exits_setup

# One run: a fresh histogram, the VMM under launch-to-marker, one result line.
run_one() {
	vmm=$1
	[ "$scrub_now" = 1 ] && "$SCRUB" "$SCRUB_MIB" 2>>/tmp/scrub.log
	exits_reset
	if [ "$vmm" = flint ]; then
		"$LTM" -t 60 -h "$HIST" "$MARKER" -- "$FLINT" --kernel "$KERNEL" \
			--initrd "$INITRD" --mem ${MEM}M --vcpus 1 --cmdline "$CMDLINE" --stats \
			-- true >/tmp/ltm.out 2>/tmp/ltm.err
	else
		"$LTM" -t 60 -h "$HIST" "$MARKER" -- qemu-system-x86_64 \
			-M microvm,x-option-roms=off,rtc=off -accel kvm -cpu host -m $MEM -smp 1 \
			-nodefaults -no-user-config -display none -serial stdio -no-reboot \
			-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE -- true" \
			>/tmp/ltm.out 2>/tmp/ltm.err
	fi
	exits_stop
	boot=$(sed -n 's/.*KVM exits until the boot timer: \([0-9]*\).*/\1/p' /tmp/ltm.err)
	awk -v vmm="$vmm" -v own="${boot:--}" -f "$DIR/parse-run.awk" /tmp/ltm.out
	grep -q '^ms=-1' /tmp/ltm.out && sed 's/^/# stderr: /' /tmp/ltm.err | tail -5
}

# RUNS rounds of both VMMs, alternating which goes first so neither always
# runs on a warm cache; each line prefixed with $1.
rounds() {
	i=1
	while [ $i -le "$2" ]; do
		if [ $((i % 2)) = 1 ]; then run_one flint; run_one qemu; else run_one qemu; run_one flint; fi
		i=$((i + 1))
	done | sed "s/^/$1/"
}

scrub_now=0
if [ -z "$SCRUB" ]; then
	rounds "" "$RUNS" | tee /tmp/bench-runs.txt
	awk -f "$DIR/summarize.awk" /tmp/bench-runs.txt
	exit 0
fi
: >/tmp/scrub.log
left=$RUNS
while [ "$left" -gt 0 ]; do
	n=$((left < 4 ? left : 4))
	for scrub_now in 0 1; do
		rounds "scrub=$scrub_now " $n
	done
	left=$((left - n))
done | tee /tmp/bench-runs.txt
for m in 0 1; do
	[ $m = 0 ] && echo "== as they come (the last VM's pages as it left them)" ||
		echo "== with scrub $SCRUB_MIB before each VM"
	sed -n "s/^scrub=$m //p" /tmp/bench-runs.txt | awk -f "$DIR/summarize.awk"
done
awk '{ n++; s += $5 } END { if (n) printf "scrub: %d times, %.0f ms on average\n", n, s / n }' /tmp/scrub.log
