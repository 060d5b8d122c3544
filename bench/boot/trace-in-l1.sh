#!/bin/sh
# bench/boot/trace inside L1: RUNS boots of `flint run -- true`, each with
# kvm_entry and kvm_exit traced on CLOCK_MONOTONIC (flint's clock), then
# trace.awk's account of it.
#   trace-in-l1.sh RUNS TRACE-AWK
RUNS=${1:-2}
AWK=$2
OUT=${RIG_OUT:-/tmp}
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T || { echo "trace: no tracefs"; exit 2; }
[ -d $T/events/kvm ] || { echo "trace: no kvm tracepoints"; exit 2; }
echo 0 >$T/tracing_on
echo 16384 >$T/buffer_size_kb
echo mono >$T/trace_clock
echo 1 >$T/events/kvm/kvm_exit/enable
echo 1 >$T/events/kvm/kvm_entry/enable
i=1
while [ $i -le "$RUNS" ]; do
	echo >$T/trace
	echo 1 >$T/tracing_on
	"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --verbose --timings -- true >/dev/null 2>"$OUT/trace-$i.err"
	echo 0 >$T/tracing_on
	cat $T/trace >"$OUT/trace-$i.txt"
	launch=$(sed -n 's/^flint: launched at monotonic \([0-9]*\) ns.*/\1/p' "$OUT/trace-$i.err")
	init=$(sed -n 's/^flint: guest boot time: \([0-9]*\) us.*/\1/p' "$OUT/trace-$i.err")
	if [ -z "$launch" ] || [ -z "$init" ]; then
		echo "trace: boot $i: no launch or init time from flint:"
		tail -n 5 "$OUT/trace-$i.err"
		exit 1
	fi
	lost=$(sed -n 's/^# entries-in-buffer\/entries-written: \([0-9]*\)\/\([0-9]*\).*/\1 \2/p' "$OUT/trace-$i.txt")
	[ "${lost% *}" = "${lost#* }" ] || echo "trace: boot $i: the trace buffer overflowed ($lost): the first events are gone"
	echo "--- boot $i: $(grep -E 'starting|launch to init' "$OUT/trace-$i.err" | sed -E 's/^flint( run)?: //' | tr '\n' ';')"
	awk -v launch_ns="$launch" -v init_us="$init" -f "$AWK" "$OUT/trace-$i.txt"
	i=$((i + 1))
done
