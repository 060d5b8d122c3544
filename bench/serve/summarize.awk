# bench/serve: reads servebench's "row NAME mode=... c=C ... KEY=VALUE"
# lines and prints a table per concurrency (requests/s, p50, p99, errors),
# then the ratios the benchmark has targets for: flint serve per-request
# (VMs reset in place, the default; and restored per request) against a
# cold flint run and against QEMU's restore per request, and its p99/p50
# at concurrency 4.
#   awk -f summarize.awk RUNS-FILE
$1 == "row" {
	name = $2
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		f[kv[1]] = kv[2]
	}
	c = f["c"]
	if (!(c in seen)) { seen[c] = 1; cs[++nc] = c }
	if (!(name in known)) { known[name] = 1; names[++nn] = name }
	rps[name, c] = f["rps"]; p50[name, c] = f["p50_ms"]; p99[name, c] = f["p99_ms"]
	err[name, c] = f["errors"]; ok[name, c] = f["ok"]
}
function ratio(a, b) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%.3f", a / b) : "-" }
END {
	for (k = 1; k <= nc; k++) {
		c = cs[k]
		printf "\nconcurrency %s\n  %-14s %10s %10s %10s %8s\n", c, "", "req/s", "p50 ms", "p99 ms", "errors"
		for (j = 1; j <= nn; j++) {
			s = names[j]
			if ((s, c) in rps)
				printf "  %-14s %10s %10s %10s %8s\n", s, rps[s, c], p50[s, c], p99[s, c], err[s, c]
		}
	}
	print "\nratios, flint serve per-request (reset in place; restored per request):"
	for (k = 1; k <= nc; k++) {
		c = cs[k]
		printf "  c=%s: p50 / cold flint run %s; %s (target <= 0.1)\n", c, \
			ratio(p50["serve-reset", c], p50["run-cold", c]), ratio(p50["serve-restore", c], p50["run-cold", c])
		printf "        req/s x cold flint run %s; %s (target >= 10)\n", \
			ratio(rps["serve-reset", c], rps["run-cold", c]), ratio(rps["serve-restore", c], rps["run-cold", c])
		printf "        p50 / QEMU restore %s; %s (target < 1)\n", \
			ratio(p50["serve-reset", c], p50["qemu-restore", c]), ratio(p50["serve-restore", c], p50["qemu-restore", c])
		printf "        req/s / QEMU restore %s; %s (target > 1)\n", \
			ratio(rps["serve-reset", c], rps["qemu-restore", c]), ratio(rps["serve-restore", c], rps["qemu-restore", c])
		printf "        reuse: p50 / cold flint run %s, req/s x %s\n", \
			ratio(p50["serve-reuse", c], p50["run-cold", c]), ratio(rps["serve-reuse", c], rps["run-cold", c])
	}
	if (("serve-jail", 1) in p50) {
		print "\n--jail (each VM's flint under flint-jail) against the same unjailed:"
		for (k = 1; k <= nc; k++) {
			c = cs[k]
			printf "  c=%s: p50 jailed / unjailed: reset %s, restored per request %s; req/s %s, %s\n", c, \
				ratio(p50["serve-jail", c], p50["serve-reset", c]), \
				ratio(p50["serve-restore-jail", c], p50["serve-restore", c]), \
				ratio(rps["serve-jail", c], rps["serve-reset", c]), \
				ratio(rps["serve-restore-jail", c], rps["serve-restore", c])
		}
	}
	if (("serve-reset", 4) in p99)
		printf "  p99 / p50 at concurrency 4: %s; %s (target <= 3)\n", \
			ratio(p99["serve-reset", 4], p50["serve-reset", 4]), ratio(p99["serve-restore", 4], p50["serve-restore", 4])
}
