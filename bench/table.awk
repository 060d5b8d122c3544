# Shared by bench/*/summarize.awk (awk -f bench/table.awk -f summarize.awk):
# the side-by-side table of a benchmark's runs. The script fills the global
# arrays n[VMM, WORKLOAD] (runs) and v[VMM, WORKLOAD, METRIC, RUN] (values)
# for VMM flint and qemu, and defines fmt(METRIC, X), the number's format.

function median(arr, cnt,    i, j, t) {
	for (i = 2; i <= cnt; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (cnt % 2) ? arr[(cnt + 1) / 2] : (arr[cnt / 2] + arr[cnt / 2 + 1]) / 2
}

# The column heads; w names a workload whose run counts they show.
function table_head(w) {
	printf "%-24s %26s %26s %10s\n", "", "flint (" n["flint", w] + 0 " runs)",
		"qemu microvm (" n["qemu", w] + 0 " runs)", "flint/qemu"
}

# One row: label, then per VMM the median (min-max) of metric k of workload
# w over its runs, then the ratio of the medians.
function table_row(w, k, label,    j, m, cnt, a, lo, hi, r, x, med) {
	printf "  %-22s", label
	for (j = 1; j <= 2; j++) {
		m = j == 1 ? "flint" : "qemu"; cnt = n[m, w] + 0
		if (!cnt) { med[m] = ""; printf " %26s", "-"; continue }
		lo = ""; hi = ""
		for (r = 1; r <= cnt; r++) {
			x = v[m, w, k, r] + 0; a[r] = x
			if (lo == "" || x < lo) lo = x
			if (hi == "" || x > hi) hi = x
		}
		med[m] = median(a, cnt)
		printf " %26s", fmt(k, med[m]) " (" fmt(k, lo) "-" fmt(k, hi) ")"
	}
	if (med["flint"] != "" && med["qemu"] != "" && med["qemu"] > 0)
		printf " %10.2f\n", med["flint"] / med["qemu"]
	else
		printf " %10s\n", "-"
}

# The exit reasons the tables name, as AMD SVM exit codes; the rest is
# "other". Their rows' labels.
BEGIN {
	reason["npf"] = 1024; reason["hlt"] = 120; reason["intr"] = 96
	reason["vintr"] = 100; reason["msr"] = 124; reason["ioio"] = 123
	label["npf"] = "  npf (MMIO, faults)"; label["hlt"] = "  hlt"; label["intr"] = "  intr"
	label["vintr"] = "  vintr"; label["msr"] = "  msr"; label["ioio"] = "  ioio"
	label["other"] = "  other"
}

# Splits a result line's KEY=VALUE words into the global array f.
function read_fields(    i, p) {
	delete f
	for (i = 2; i <= NF; i++) {
		p = index($i, "=")
		if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
}

# Stores run r's exits by reason (f's r<CODE>= words, out of total=) per
# unit of work as v[vmm, w, REASON, r].
function exits_by_reason(vmm, w, r, unit,    k, c, known) {
	known = 0
	for (k in reason) {
		c = f["r" reason[k]] + 0
		v[vmm, w, k, r] = c / unit
		known += c
	}
	v[vmm, w, "other", r] = (f["total"] - known) / unit
}
