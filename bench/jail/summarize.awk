# Reads "run variant=V ms=M vm_us=U" lines (variants bare, jail, jail-cg);
# prints per variant the median and spread (min-max) of both figures, and
# the time relative to the bare launch. -v what=... vm=...: column names.
function median(arr, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
function spread(arr, n,    i, lo, hi) {
	lo = hi = arr[1]
	for (i = 2; i <= n; i++) { if (arr[i] < lo) lo = arr[i]; if (arr[i] > hi) hi = arr[i] }
	return lo "-" hi
}
/^run / {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); val[kv[1]] = kv[2] }
	v = val["variant"]
	if (val["ms"] < 0) { failed[v]++; next }
	k = ++n[v]
	ms[v, k] = val["ms"] + 0
	vm[v, k] = val["vm_us"] + 0
}
END {
	printf "\n%-10s %5s %26s %26s %9s\n", "variant", "runs", what, vm, "vs bare"
	nv = split("bare jail jail-cg", order, " ")
	for (i = 1; i <= nv; i++) {
		v = order[i]
		if (!n[v]) continue
		for (k = 1; k <= n[v]; k++) { a[k] = ms[v, k]; b[k] = vm[v, k] }
		m = median(a, n[v]); s = spread(a, n[v])
		if (v == "bare") base = m
		mv = median(b, n[v]); sv = spread(b, n[v])
		printf "%-10s %5d %12.1f (%11s) %12d (%11s) %8.3f%s\n", v, n[v], m, s, mv, sv, \
			base ? m / base : 0, failed[v] ? "  " failed[v] " failed" : ""
	}
}
