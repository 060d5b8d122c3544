# bench/boot/trace: one boot's kvm_entry/kvm_exit trace (ftrace text, mono
# clock) as an account: flint's set-up (launch to the first VMRUN), time in
# the guest (entry to exit), and time handling exits (exit to the next
# entry: in KVM, or through flint) by kind; nested page faults on guest RAM
# (a 2 MiB page allocated and cleared) apart from MMIO ones (virtio-mmio
# 0xd0000000 and up, the I/O APIC at 0xfec00000, the local APIC at
# 0xfee00000). Events from launch to init only (the boot timer), so the
# three add up to launch to init. One vCPU (flint run's default): the
# events of several would be taken as one stream.
#   awk -v launch_ns=N -v init_us=N -f trace.awk TRACE
BEGIN {
	L = launch_ns / 1e9
	I = L + init_us / 1e6
}
{
	ev = ""
	for (i = 1; i <= NF; i++)
		if ($i ~ /^[0-9]+\.[0-9]+:$/) {
			t = substr($i, 1, length($i) - 1) + 0
			ev = $(i + 1)
			break
		}
	if (ev == "" || t > I)
		next
	if (ev == "kvm_entry:") {
		if (!first) first = t
		if (exit_t) {
			h = t - exit_t
			handled[kind] += h
			count[kind]++
			if (h > slowest_h) { slowest_h = h; slowest_k = kind }
		}
		entry_t = t
		exit_t = 0
	} else if (ev == "kvm_exit:") {
		r = ""; a = ""
		for (j = i + 2; j <= NF; j++) {
			if ($j == "reason") r = $(j + 1)
			if ($j == "info2") a = $(j + 1)
		}
		kind = r == "hlt" ? "hlt (the guest idle until an interrupt)" : r
		if (r == "npf") {
			if (a ~ /^0x00000000(d|e|f)/)
				kind = a ~ /^0x00000000fec/ ? "npf I/O APIC" : a ~ /^0x00000000fee/ ? "npf local APIC" : "npf virtio-mmio"
			else
				kind = "npf guest RAM"
		}
		if (entry_t) guest += t - entry_t
		exit_t = t
		last = t
	}
}
END {
	if (!first) { print "trace: no kvm_entry in the trace"; exit 1 }
	# Up to init: the guest ran on from the last entry, or the last exit
	# (the boot timer's write, often) was being handled.
	if (!exit_t)
		guest += I - entry_t
	else {
		handled[kind] += I - exit_t
		count[kind]++
	}
	for (k in handled) total += handled[k]
	printf "launch to init %.1f ms: launch to the first VMRUN %.1f ms, in the guest %.1f ms, handling exits %.1f ms (the longest: %.1f ms, %s)\n", (I - L) * 1000, (first - L) * 1000, guest * 1000, total * 1000, slowest_h * 1000, slowest_k
	fflush()
	for (k in handled)
		printf "  %8.1f ms handling %5d exits (%6.0f us each): %s\n", handled[k] * 1000, count[k], handled[k] / count[k] * 1e6, k | "sort -rn"
	close("sort -rn")
}
