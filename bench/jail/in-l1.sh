# bench/jail, the part that runs inside the rig's L1 (or on a host with
# hardware KVM): boots the same guest with flint alone, through flint-jail
# without cgroups, and through flint-jail with cgroup v2 limits, taking
# turns, and measures launch to the init's marker line (launch-to-marker)
# and flint's "VM set up" step; then the launcher alone: launch to the first
# line of a program that only opens /dev/kvm.
# Usage: sh in-l1.sh LAUNCH-TO-MARKER CREATE-VM RUNS
set -u
LTM=$1
CVM=$2
RUNS=${3:-10}
JAIL=$TOOLS/flint-jail
SFLINT=$TOOLS/flint
DIR=$(dirname "$0")
BASE=/tmp/bench-jail
CMDLINE="console=ttyS0 reboot=t panic=-1 quiet"
MARKER="flint-init: ready"
# The jail's options; the cgroup variant adds limits the guest fits in.
JAILOPTS="--uid 1000 --gid 1000 --chroot-base-dir $BASE"
CGOPTS="--parent-cgroup bench --cgroup memory.max=512M --cgroup pids.max=64 --cgroup cpu.weight=100"

grep -qE ' cgroup2? ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
CG=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)

# variant_cmd VARIANT N: the launcher's words, before the program's.
variant_cmd() {
	case $1 in
	bare) ;;
	jail) echo "$JAIL --id j$2 --exec-file" ;;
	jail-cg) echo "$JAIL --id c$2 $CGOPTS --exec-file" ;;
	esac
}

# run_one VARIANT N: one guest launch, one "run variant=... ms=... vm_us=..."
# line.
run_one() {
	v=$1 i=$2
	# shellcheck disable=SC2046
	set -- $(variant_cmd "$v" "$i") "$SFLINT"
	[ "$v" = bare ] || set -- "$@" $JAILOPTS --
	"$LTM" -t 60 "$MARKER" -- "$@" --kernel "$KERNEL" --initrd "$INITRD" --mem 128M \
		--vcpus 1 --cmdline "$CMDLINE" --verbose -- true >/tmp/ltm.out 2>/tmp/ltm.err
	ms=$(sed -n 's/^ms=\([-0-9.]*\).*/\1/p' /tmp/ltm.out)
	vm=$(sed -n 's/.*VM set up in \([0-9]*\) us.*/\1/p' /tmp/ltm.err)
	echo "run variant=$v ms=${ms:--1} vm_us=${vm:-0}"
	grep -q '^ms=-1' /tmp/ltm.out && sed 's/^/# stderr: /' /tmp/ltm.err | tail -5
	clean "$i"
}

# setup_one VARIANT N: the launcher alone: launch to the first line of
# create-vm 0, which only opens /dev/kvm. (KVM_CREATE_VM is in flint's "VM
# set up" above: creating VMs back to back has frozen L1 under QEMU's TCG.)
setup_one() {
	v=$1 i=$2
	# shellcheck disable=SC2046
	set -- $(variant_cmd "$v" "$i") "$CVM"
	[ "$v" = bare ] || set -- "$@" $JAILOPTS --
	"$LTM" -t 60 create_vm_us -- "$@" 0 >/tmp/ltm.out 2>/tmp/ltm.err
	ms=$(sed -n 's/^ms=\([-0-9.]*\).*/\1/p' /tmp/ltm.out)
	echo "run variant=$v ms=${ms:--1} vm_us=0"
	clean "$i"
}

clean() {
	rm -rf "$BASE"
	[ -d "$CG/bench/c$1" ] && rmdir "$CG/bench/c$1"
}

# Rotate which goes first so none always runs on a warm cache.
rounds() {
	fn=$1 n=$2 i=1
	while [ $i -le "$n" ]; do
		case $((i % 3)) in
		1) $fn bare $i; $fn jail $i; $fn jail-cg $i ;;
		2) $fn jail $i; $fn jail-cg $i; $fn bare $i ;;
		0) $fn jail-cg $i; $fn bare $i; $fn jail $i ;;
		esac
		i=$((i + 1))
	done
}

echo "launch to init, $RUNS rounds:"
rounds run_one "$RUNS" | tee /tmp/bench-jail-runs.txt
awk -v what="launch-to-init ms" -v vm="VM set-up us" -f "$DIR/summarize.awk" /tmp/bench-jail-runs.txt
echo
echo "the launcher alone, $((RUNS * 2)) rounds: launch to the first line of a program"
rounds setup_one $((RUNS * 2)) >/tmp/bench-jail-setup.txt
awk -v what="launch-to-line ms" -v vm="-" -f "$DIR/summarize.awk" /tmp/bench-jail-setup.txt
rmdir "$CG/bench" 2>/dev/null
true
