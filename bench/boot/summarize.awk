# Reads "run vmm=... key=value ..." lines; prints, per VMM, the median and
# the spread (min-max) of each figure, and the ratio of flint's median
# launch-to-init time to QEMU's.
function median(arr, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
/^run / {
	vmm = ""
	for (i = 2; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == "vmm") { vmm = kv[2]; continue }
		val[kv[1]] = kv[2]
	}
	if (val["ms"] < 0) { failed[vmm]++; next }
	n[vmm]++
	for (k in val) {
		if (val[k] == "-") continue
		v[vmm, k, n[vmm]] = val[k] + 0
		keys[k] = 1
	}
	vmms[vmm] = 1
}
END {
	split("ms total npf cpuid msr ioio intr vintr hlt other own", order, " ")
	label["ms"] = "launch-to-init (ms)"; label["own"] = "exits at boot timer (flint's count)"
	printf "\n%-36s %24s %24s %7s\n", "median (min-max)", "flint (" n["flint"] " runs)", "qemu microvm (" n["qemu"] " runs)", "ratio"
	for (i = 1; i <= 11; i++) {
		k = order[i]
		printf "%-36s", (k in label) ? label[k] : k " exits"
		split("flint qemu", ms_, " ")
		for (j = 1; j <= 2; j++) {
			m = ms_[j]; cnt = 0; lo = ""; hi = ""
			delete a
			for (r = 1; r <= n[m]; r++)
				if ((m, k, r) in v) {
					x = v[m, k, r]; a[++cnt] = x
					if (lo == "" || x < lo) lo = x
					if (hi == "" || x > hi) hi = x
				}
			if (!cnt) { printf " %24s", "-"; continue }
			med[m, k] = median(a, cnt)
			printf " %24s", sprintf(k == "ms" ? "%.1f (%.1f-%.1f)" : "%d (%d-%d)", med[m, k], lo, hi)
		}
		if ((("flint", k) in med) && (("qemu", k) in med) && med["qemu", k] > 0)
			printf " %7.2f", med["flint", k] / med["qemu", k]
		printf "\n"
	}
	for (m in failed)
		printf "%s: %d runs never reached init\n", m, failed[m]
}
