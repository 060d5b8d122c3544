# Sourced by the benchmarks' scripts inside L1: VM exits by SVM exit reason,
# from KVM's kvm_exit tracepoint histogram, the same for every VMM.
T=/sys/kernel/tracing
HIST=$T/events/kvm/kvm_exit/hist
TRIG=$T/events/kvm/kvm_exit/trigger

# Mount tracefs; check the trigger and QEMU are there (exit 2 if not).
exits_setup() {
	mountpoint -q $T 2>/dev/null || mount -t tracefs none $T 2>/dev/null
	[ -w "$TRIG" ] || { echo "bench: no kvm_exit tracepoint trigger at $TRIG"; exit 2; }
	command -v qemu-system-x86_64 >/dev/null || { echo "bench: QEMU is not in L1"; exit 2; }
}

# Start counting from zero ($HIST then holds the counts since).
exits_reset() {
	echo '!hist:keys=exit_reason:sort=hitcount' >"$TRIG" 2>/dev/null
	echo 'hist:keys=exit_reason:sort=hitcount' >"$TRIG"
}

exits_stop() {
	echo '!hist:keys=exit_reason:sort=hitcount' >"$TRIG"
}
