# bench/nested: a table from "nest cfg=... result=... exits=..." lines: per
# configuration the VMs, each outcome, the crash rate (every outcome but ok)
# and, against flint and against QEMU, the two-sided Fisher exact test's p
# for "the same crash rate" (left out with -v nofisher=1: busybox awk, as in
# L1, has no log() or exp()).
function lf(n,   i, s) { s = 0; for (i = 2; i <= n; i++) s += log(i); return s }
function hyp(x, r1, r2, c1, n) { return exp(lf(r1) - lf(x) - lf(r1 - x) + lf(r2) - lf(c1 - x) - lf(r2 - c1 + x) - lf(n) + lf(c1) + lf(n - c1)) }
# p of the table [a b; c d] (a crashes of a+b, c of c+d), two-sided.
function fisher(a, b, c, d,   r1, r2, c1, n, p0, p, x, lo, hi) {
	r1 = a + b; r2 = c + d; c1 = a + c; n = r1 + r2
	if (r1 == 0 || r2 == 0) return -1
	p0 = hyp(a, r1, r2, c1, n); p = 0
	lo = c1 - r2 > 0 ? c1 - r2 : 0; hi = c1 < r1 ? c1 : r1
	for (x = lo; x <= hi; x++) if (hyp(x, r1, r2, c1, n) <= p0 * (1 + 1e-7)) p += hyp(x, r1, r2, c1, n)
	return p > 1 ? 1 : p
}
function pfmt(p) { return p < 0 ? "-" : sprintf("%.3g", p) }
/^nest cfg=/ {
	cfg = res = ""; ex = 0
	for (i = 2; i <= NF; i++) {
		split($i, kv, "=")
		if (kv[1] == "cfg") cfg = substr($i, 5)
		else if (kv[1] == "result") res = kv[2]
		else if (kv[1] == "exits") ex = kv[2]
	}
	if (!(cfg in vms)) order[++ncfg] = cfg
	vms[cfg]++; n[cfg, res]++; exits[cfg] += ex
	if (res != "ok") bad[cfg]++
}
END {
	split("ok triple emulation panic hung other", outs, " ")
	printf "| configuration | VMs | ok | triple fault | emulation | panic | hung | other | crashed | rate | exits / VM (k) | crashes / M exits | p vs flint | p vs QEMU |\n"
	printf "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
	for (k = 1; k <= ncfg; k++) {
		c = order[k]; b = bad[c] + 0
		printf "| %s | %d", c, vms[c]
		for (j = 1; j <= 6; j++) printf " | %d", n[c, outs[j]]
		printf " | %d | %.1f%% | %.1f | %s", b, 100 * b / vms[c], exits[c] / vms[c] / 1e3,
			exits[c] ? sprintf("%.2f", b / (exits[c] / 1e6)) : "-"
		pf = pq = -1
		if (!nofisher && ("flint" in vms) && c != "flint")
			pf = fisher(b, vms[c] - b, bad["flint"] + 0, vms["flint"] - bad["flint"])
		if (!nofisher && ("qemu" in vms) && c != "qemu")
			pq = fisher(b, vms[c] - b, bad["qemu"] + 0, vms["qemu"] - bad["qemu"])
		printf " | %s | %s |\n", pfmt(pf), pfmt(pq)
	}
}
