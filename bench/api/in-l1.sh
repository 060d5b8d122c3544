# bench/api, the part that runs inside the rig's L1 (or on a host with
# hardware KVM): boots the same guest alternately from flint's command line
# and through its API, and prints one "run mode=cli|api ms=..." line per
# boot, then the table (apibench table).
#  - cli: flint --kernel ... -- true; boot = the "guest boot time" flint logs
#    (launch to the init's boot-timer write).
#  - api: flint --api-sock S, PUT /boot-source and /machine-config, then
#    InstanceStart at t_send; boot = flint's launch instant + its guest boot
#    time - t_send, so the process start and the PUTs before it are not in it.
# Both run with --verbose (the api run needs its "launched at" line), so both
# log the same lines.
# Usage: sh in-l1.sh APIBENCH RUNS
set -u
AB=$1
RUNS=${2:-10}
MEM=128
CMDLINE="console=ttyS0 reboot=k panic=-1 quiet"

run_one() {
	if [ "$1" = cli ]; then
		"$AB" cli -t 60 -- "$FLINT" --kernel "$KERNEL" --initrd "$INITRD" --mem ${MEM}M \
			--vcpus 1 --cmdline "$CMDLINE" --console none --verbose -- true
	else
		"$AB" api -t 60 -k "$KERNEL" -i "$INITRD" -m $MEM -c 1 -b "$CMDLINE -- true" \
			-- "$FLINT" --console none --verbose
	fi
}

i=1
while [ $i -le "$RUNS" ]; do
	# Alternate which goes first so neither always runs on a warm cache.
	if [ $((i % 2)) = 1 ]; then run_one cli; run_one api; else run_one api; run_one cli; fi
	i=$((i + 1))
done 2>&1 | tee /tmp/bench-runs.txt
"$AB" table /tmp/bench-runs.txt
