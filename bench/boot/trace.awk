# bench/boot/trace: one boot's kvm_entry/kvm_exit trace (ftrace text, mono
# clock) as an account: flint's set-up (launch to the first VMRUN), time in
# the guest (entry to exit), and time handling exits (exit to the next
# entry: in KVM, or through flint) by kind; nested page faults on guest RAM
# (a 2 MiB page allocated and cleared) apart from MMIO ones (virtio-mmio
# 0xd0000000 and up, the I/O APIC at 0xfec00000, the local APIC at
# 0xfee00000).
#   awk -v launch_ns=N -f trace.awk TRACE
{
	ev = ""
	for (i = 1; i <= NF; i++)
		if ($i ~ /^[0-9]+\.[0-9]+:$/) {
			t = substr($i, 1, length($i) - 1) + 0
			ev = $(i + 1)
			break
		}
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
	L = launch_ns / 1e9
	printf "launch to the first VMRUN %.1f ms; to the last exit %.1f ms\n", (first - L) * 1000, (last - L) * 1000
	for (k in handled) total += handled[k]
	printf "in the guest %.1f ms; handling exits %.1f ms (the longest: %.1f ms, %s)\n", guest * 1000, total * 1000, slowest_h * 1000, slowest_k
	for (k in handled)
		printf "  %8.1f ms handling %5d exits (%6.0f us each): %s\n", handled[k] * 1000, count[k], handled[k] / count[k] * 1e6, k | "sort -rn"
	close("sort -rn")
}
