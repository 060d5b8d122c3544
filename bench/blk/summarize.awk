# Reads bench/blk's "res vmm=... run=... name=WORKLOAD ops= reqs= bytes= us=
# irqs= total= r<REASON>=..." lines; prints, per workload, the median and the
# spread (min-max) over the runs of IOPS, MiB/s, VM exits and virtio
# interrupts per request, for flint and QEMU side by side, and their ratio.
# "Request" is a block-layer request the guest completed (/sys/block/vda/stat),
# which is one virtio-blk request; a 1 MiB I/O may take more than one.
# Exit reasons are AMD SVM codes: 0x400 nested page fault (MMIO to the
# device's registers, including queue notifications, and first touches of
# guest memory), 0x78 HLT, 0x60 physical interrupt, 0x64 virtual interrupt
# window, 0x7c MSR (x2APIC EOI, timer), 0x7b port I/O (the UART).
function median(arr, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function fmt(k, x) {
	if (k == "iops") return sprintf("%.0f", x)
	if (k == "mibs") return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
BEGIN {
	reason["npf"] = 1024; reason["hlt"] = 120; reason["intr"] = 96
	reason["vintr"] = 100; reason["msr"] = 124; reason["ioio"] = 123
	nk = split("iops mibs epr npf hlt intr vintr msr ioio other ipr rpo", order, " ")
	label["iops"] = "IOPS"; label["mibs"] = "MiB/s"; label["epr"] = "VM exits / request"
	label["npf"] = "  npf (MMIO, faults)"; label["hlt"] = "  hlt"; label["intr"] = "  intr"
	label["vintr"] = "  vintr"; label["msr"] = "  msr"; label["ioio"] = "  ioio"
	label["other"] = "  other"; label["ipr"] = "interrupts / request"
	label["rpo"] = "requests / I/O"
}
/^res / {
	delete f
	for (i = 2; i <= NF; i++) {
		p = index($i, "=")
		if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
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
	known = 0
	for (k in reason) {
		c = f["r" reason[k]] + 0
		v[vmm, w, k, r] = c / f["reqs"]
		known += c
	}
	v[vmm, w, "other", r] = (f["total"] - known) / f["reqs"]
}
END {
	if (!nw) { print "bench/blk: no results"; exit 1 }
	printf "\nbench/blk: median (min-max) over runs, %s s per workload; per request = per virtio-blk request\n", secs
	printf "%-24s %26s %26s %10s\n", "", "flint (" n["flint", works[1]] + 0 " runs)", "qemu microvm (" n["qemu", works[1]] + 0 " runs)", "flint/qemu"
	for (wi = 1; wi <= nw; wi++) {
		w = works[wi]
		printf "%s\n", w
		for (ki = 1; ki <= nk; ki++) {
			k = order[ki]
			printf "  %-22s", label[k]
			split("flint qemu", ms_, " ")
			for (j = 1; j <= 2; j++) {
				m = ms_[j]; cnt = n[m, w] + 0
				if (!cnt) { med[m] = ""; printf " %26s", "-"; continue }
				delete a
				lo = ""; hi = ""
				for (r = 1; r <= cnt; r++) {
					x = v[m, w, k, r]; a[r] = x
					if (lo == "" || x < lo) lo = x
					if (hi == "" || x > hi) hi = x
				}
				med[m] = median(a, cnt)
				printf " %26s", fmt(k, med[m]) " (" fmt(k, lo) "-" fmt(k, hi) ")"
			}
			if (med["flint"] != "" && med["qemu"] != "" && med["qemu"] > 0)
				printf " %10.2f", med["flint"] / med["qemu"]
			else
				printf " %10s", "-"
			printf "\n"
		}
	}
	for (m in failed) printf "%s: %d failed run(s)\n", m, failed[m]
}
