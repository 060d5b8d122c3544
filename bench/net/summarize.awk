# Reads bench/net's "res vmm=... run=... name=WORKLOAD mode=send|recv|rr ...
# bytes= us= total= r<REASON>= peer_irqs= [mibs=] [count= mean_us= p50_us=
# p99_us=]" lines (tests/tools/nbench.c: the client in L1 counted the exits,
# the guest server the interrupts) and prints, per workload, the median and
# the spread (min-max) over the runs for flint and QEMU side by side, and
# their ratio:
#  - streams (NAME-g2h: the guest sends; NAME-h2g: it receives): MiB/s as the
#    receiver saw them, VM exits per MiB (total and by reason), virtio
#    interrupts per MiB;
#  - request/response (NAME-rr): round trips per second, latency mean, p50
#    and p99 in microseconds, exits and interrupts per round trip.
# Exit reasons are AMD SVM codes: 0x400 nested page fault (MMIO to the
# devices' registers, queue notifications included, and first touches of
# guest memory), 0x78 HLT, 0x60 physical interrupt, 0x64 virtual interrupt
# window, 0x7c MSR (x2APIC EOI and ICR, timer), 0x7b port I/O (the UART).
# Run with awk -f bench/table.awk -f bench/net/summarize.awk.
function fmt(k, x) {
	if (k == "rps" || k == "mibs" || k ~ /_us$/) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
BEGIN {
	nks = split("mibs epu npf hlt intr vintr msr ioio other ipu", ks, " ")
	nkr = split("rps mean_us p50_us p99_us epu npf hlt intr vintr msr ioio other ipu", kr, " ")
	label["mibs"] = "MiB/s"; label["rps"] = "round trips / s"
	label["mean_us"] = "latency mean (us)"; label["p50_us"] = "latency p50 (us)"
	label["p99_us"] = "latency p99 (us)"
}
/^res / {
	read_fields()
	vmm = f["vmm"]; w = f["name"]
	if ($0 ~ / failed$/) { failed[vmm]++; next }
	rr = f["mode"] == "rr"
	# Per MiB for streams, per round trip for rr.
	unit = rr ? f["count"] : f["bytes"] / 1048576
	if (f["us"] <= 0 || unit <= 0) { failed[vmm]++; next }
	if (!(w in seen)) { seen[w] = 1; works[++nw] = w; isrr[w] = rr }
	r = ++n[vmm, w]
	if (rr) {
		v[vmm, w, "rps", r] = f["count"] * 1e6 / f["us"]
		v[vmm, w, "mean_us", r] = f["mean_us"]
		v[vmm, w, "p50_us", r] = f["p50_us"]
		v[vmm, w, "p99_us", r] = f["p99_us"]
	} else {
		v[vmm, w, "mibs", r] = f["mibs"]
	}
	v[vmm, w, "epu", r] = f["total"] / unit
	v[vmm, w, "ipu", r] = f["peer_irqs"] / unit
	exits_by_reason(vmm, w, r, unit)
}
END {
	if (!nw) { print "bench/net: no results"; exit 1 }
	printf "\nmedian (min-max) over runs, %s s per workload\n", secs
	table_head(works[1])
	for (wi = 1; wi <= nw; wi++) {
		w = works[wi]
		printf "%s\n", w
		unit = isrr[w] ? "round trip" : "MiB"
		nk = isrr[w] ? nkr : nks
		for (ki = 1; ki <= nk; ki++) {
			k = isrr[w] ? kr[ki] : ks[ki]
			lab = label[k]
			if (k == "epu") lab = "VM exits / " unit
			if (k == "ipu") lab = "interrupts / " unit
			table_row(w, k, lab)
		}
	}
	for (m in failed) printf "%s: %d failed run(s) or workload(s)\n", m, failed[m]
}
