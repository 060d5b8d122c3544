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
function median(arr, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function fmt(k, x) {
	if (k == "rps" || k == "mibs") return sprintf("%.1f", x)
	if (k ~ /_us$/) return sprintf("%.1f", x)
	return sprintf("%.2f", x)
}
BEGIN {
	reason["npf"] = 1024; reason["hlt"] = 120; reason["intr"] = 96
	reason["vintr"] = 100; reason["msr"] = 124; reason["ioio"] = 123
	nks = split("mibs epu npf hlt intr vintr msr ioio other ipu", ks, " ")
	nkr = split("rps mean_us p50_us p99_us epu npf hlt intr vintr msr ioio other ipu", kr, " ")
	label["mibs"] = "MiB/s"; label["rps"] = "round trips / s"
	label["mean_us"] = "latency mean (us)"; label["p50_us"] = "latency p50 (us)"
	label["p99_us"] = "latency p99 (us)"
	label["npf"] = "  npf (MMIO, faults)"; label["hlt"] = "  hlt"; label["intr"] = "  intr"
	label["vintr"] = "  vintr"; label["msr"] = "  msr"; label["ioio"] = "  ioio"
	label["other"] = "  other"
}
/^res / {
	delete f
	for (i = 2; i <= NF; i++) {
		p = index($i, "=")
		if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
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
	known = 0
	for (k in reason) {
		c = f["r" reason[k]] + 0
		v[vmm, w, k, r] = c / unit
		known += c
	}
	v[vmm, w, "other", r] = (f["total"] - known) / unit
}
END {
	if (!nw) { print "bench/net: no results"; exit 1 }
	printf "\nmedian (min-max) over runs, %s s per workload\n", secs
	printf "%-24s %26s %26s %10s\n", "", "flint (" n["flint", works[1]] + 0 " runs)", "qemu microvm (" n["qemu", works[1]] + 0 " runs)", "flint/qemu"
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
			printf "  %-22s", lab
			for (j = 1; j <= 2; j++) {
				m = j == 1 ? "flint" : "qemu"; cnt = n[m, w] + 0
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
	for (m in failed) printf "%s: %d failed run(s) or workload(s)\n", m, failed[m]
}
