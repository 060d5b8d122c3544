# Reads bench/blk's "res vmm=... run=... name=WORKLOAD ops= reqs= bytes= us=
# irqs= total= r<REASON>=..." lines; prints, per workload, the median and the
# spread (min-max) over the runs of IOPS, MiB/s, VM exits and virtio
# interrupts per request, for flint and QEMU side by side, and their ratio.
# "Request" is a block-layer request the guest completed (/sys/block/vda/stat),
# which is one virtio-blk request; a 1 MiB I/O may take more than one.
# Run with awk -f bench/table.awk -f bench/blk/summarize.awk.
# Exit reasons are AMD SVM codes: 0x400 nested page fault (MMIO to the
# device's registers, including queue notifications, and first touches of
# guest memory), 0x78 HLT, 0x60 physical interrupt, 0x64 virtual interrupt
# window, 0x7c MSR (x2APIC EOI, timer), 0x7b port I/O (the UART).
function fmt(k, x) {
	if (k == "iops") return sprintf("%.0f", x)
	if (k == "mibs") return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
BEGIN {
	nk = split("iops mibs epr npf hlt intr vintr msr ioio other ipr rpo", order, " ")
	label["iops"] = "IOPS"; label["mibs"] = "MiB/s"; label["epr"] = "VM exits / request"
	label["ipr"] = "interrupts / request"
	label["rpo"] = "requests / I/O"
}
/^res / {
	read_fields()
	vmm = f["vmm"]; w = f["name"]
	if ($0 ~ / failed$/ || f["us"] <= 0 || f["reqs"] <= 0) { failed[vmm]++; next }
	if (!(w in seen)) { seen[w] = 1; works[++nw] = w }
	vmms[vmm] = 1
	r = ++n[vmm, w]
	v[vmm, w, "iops", r] = f["ops"] * 1e6 / f["us"]
	v[vmm, w, "mibs", r] = f["bytes"] / f["us"] * 1e6 / 1048576
	v[vmm, w, "epr", r] = f["total"] / f["reqs"]
	v[vmm, w, "ipr", r] = f["irqs"] / f["reqs"]
	v[vmm, w, "rpo", r] = f["reqs"] / f["ops"]
	exits_by_reason(vmm, w, r, f["reqs"])
}
END {
	if (!nw) { print "bench/blk: no results"; exit 1 }
	printf "\nbench/blk: median (min-max) over runs, %s s per workload; per request = per virtio-blk request\n", secs
	table_head(works[1])
	for (wi = 1; wi <= nw; wi++) {
		w = works[wi]
		printf "%s\n", w
		for (ki = 1; ki <= nk; ki++)
			table_row(w, order[ki], label[order[ki]])
	}
	for (m in failed) printf "%s: %d failed run(s)\n", m, failed[m]
}
