# bench/snapshot: reads snapbench's "run mode=M vmm=V KEY=VALUE ..." lines
# and prints, per mode and VMM, the median (min-max) of each figure, then
# the ratios the benchmark has targets for. A run whose pong (restore) or
# snapshot (create) never came is counted as failed and left out.
#   awk [-v nvms=10] -f summarize.awk RUNS-FILE
function median(arr, cnt,    i, j, t) {
	for (i = 2; i <= cnt; i++)
		for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
			t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t
		}
	return (cnt % 2) ? arr[(cnt + 1) / 2] : (arr[cnt / 2] + arr[cnt / 2 + 1]) / 2
}

# The median of figure k over series s's runs ("" when none has it); the
# spread in lo_ and hi_. div divides each value (KiB to MiB, a sum per VM).
function stat(s, k, div,    r, c, a, x) {
	c = 0; lo_ = ""; hi_ = ""
	for (r = 1; r <= n[s]; r++)
		if ((s, k, r) in v) {
			x = v[s, k, r] / div
			a[++c] = x
			if (lo_ == "" || x < lo_) lo_ = x
			if (hi_ == "" || x > hi_) hi_ = x
		}
	return c ? median(a, c) : ""
}

# One cell: "median (min-max)" in format f, or "-".
function cell(s, k, div, f,    m) {
	m = stat(s, k, div)
	if (m == "") return "-"
	return sprintf(f " (" f "-" f ")", m, lo_, hi_)
}

# One row of figure k: a cell per series; with two series, the ratio of
# their medians after them.
function row(label, k, div, f, s1, s2, s3, s4,    line, m1, m2) {
	line = sprintf("  %-30s %24s %24s", label, cell(s1, k, div, f), cell(s2, k, div, f))
	if (s3 != "") line = line sprintf(" %24s", cell(s3, k, div, f))
	if (s4 != "") line = line sprintf(" %24s", cell(s4, k, div, f))
	if (s3 == "") {
		m1 = stat(s1, k, div); m2 = stat(s2, k, div)
		line = line sprintf(" %10s", m1 != "" && m2 != "" && m2 > 0 ? sprintf("%.3f", m1 / m2) : "-")
	}
	print line
}

# Medians a/b, with the target when there is one.
function ratio(label, sa, ka, sb, kb, target,    a, b, r, verdict) {
	a = stat(sa, ka, 1); b = stat(sb, kb, 1)
	if (a == "" || b == "" || b <= 0) {
		printf "  %-58s %8s\n", label, "-"
		return
	}
	r = a / b
	verdict = target == "" ? "" : (r <= target ? "  (target <= " target ": met)" : "  (target <= " target ": MISSED)")
	printf "  %-58s %8.3f%s\n", label, r, verdict
}

/^run / {
	delete f
	for (i = 2; i <= NF; i++) {
		p = index($i, "=")
		if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
	s = f["mode"] "," f["vmm"]
	key = f["mode"] == "create" ? "create_ms" : "pong_ms"
	if (f[key] + 0 < 0) { failed[s]++; seen[s] = 1; next }
	r = ++n[s]; seen[s] = 1
	for (k in f) {
		if (k == "mode" || k == "vmm" || f[k] == "-") continue
		if (k ~ /_ms$/ && f[k] + 0 < 0) continue
		if (k ~ /_kib$/ && f[k] + 0 < 0) continue
		v[s, k, r] = f[k] + 0
	}
	if (f["mode"] == "multi" && f["n"] > 0)
		for (k in f)
			if (k ~ /_kib$/ && f[k] + 0 >= 0) v[s, "per_" k, r] = f[k] / f["n"]
}

END {
	if (nvms == "") nvms = 10
	printf "\nmedian (min-max) of %d runs each unless said\n", n["boot,flint"]
	printf "\ncold boot (ms)\n"
	printf "  %-30s %24s %24s %10s\n", "", "flint", "qemu microvm", "flint/qemu"
	row("launch to ready", "ready_ms", 1, "%.1f", "boot,flint", "boot,qemu")
	row("launch to first pong", "pong_ms", 1, "%.1f", "boot,flint", "boot,qemu")
	printf "\nthe same boot with the API or QMP socket, then a full snapshot of the paused VM (ms)\n"
	printf "  %-30s %24s %24s %10s\n", "", "flint", "qemu microvm", "flint/qemu"
	row("launch to ready", "ready_ms", 1, "%.1f", "create,flint", "create,qemu")
	row("pause (PATCH /vm; stop)", "pause_ms", 1, "%.2f", "create,flint", "create,qemu")
	row("snapshot create / migrate", "create_ms", 1, "%.1f", "create,flint", "create,qemu")
	row("  the VMM's own figure", "own_ms", 1, "%.1f", "create,flint", "create,qemu")

	printf "\nrestore to the first response, one VM\n"
	printf "  %-30s %24s %24s %24s %24s\n", "", "flint File", "flint Uffd", "flint File+set", "qemu -incoming"
	a = "file,flint"; b = "uffd,flint"; c = "ws,flint"; d = "restore,qemu"
	row("launch to pong (ms)", "pong_ms", 1, "%.1f", a, b, c, d)
	row("launch to VM running (ms)", "resumed_ms", 1, "%.1f", a, b, c, d)
	row("flint's restore (ms)", "load_ms", 1, "%.1f", a, b, c, d)
	row("loading set prefetch (ms)", "ws_ms", 1, "%.2f", a, b, c, d)
	row("nested page faults", "r1024", 1, "%d", a, b, c, d)
	row("port I/O exits", "r123", 1, "%d", a, b, c, d)
	row("MSR exits", "r124", 1, "%d", a, b, c, d)
	row("HLT exits", "r120", 1, "%d", a, b, c, d)
	row("all exits", "total", 1, "%d", a, b, c, d)
	row("RSS (MiB)", "rss_kib", 1024, "%.1f", a, b, c, d)
	row("PSS (MiB)", "pss_kib", 1024, "%.1f", a, b, c, d)
	row("anonymous (MiB)", "anon_kib", 1024, "%.1f", a, b, c, d)

	printf "\n%d VMs restored at once from one snapshot (%d runs each)\n", nvms, n["multi,flint"]
	printf "  %-30s %24s %24s %10s\n", "", "flint File", "qemu -incoming", "flint/qemu"
	a = "multi,flint"; d = "multi,qemu"
	row("launch to the last pong (ms)", "pong_ms", 1, "%.1f", a, d)
	row("RSS, all (MiB)", "rss_kib", 1024, "%.1f", a, d)
	row("RSS per VM (MiB)", "per_rss_kib", 1024, "%.1f", a, d)
	row("PSS, all (MiB)", "pss_kib", 1024, "%.1f", a, d)
	row("PSS per VM (MiB)", "per_pss_kib", 1024, "%.1f", a, d)
	row("anonymous, all (MiB)", "anon_kib", 1024, "%.1f", a, d)

	printf "\nratios of the medians\n"
	ratio("restore to pong, flint File / flint boot to ready", "file,flint", "pong_ms", "boot,flint", "ready_ms", 0.05)
	ratio("restore to pong, flint File / QEMU", "file,flint", "pong_ms", "restore,qemu", "pong_ms", 0.25)
	ratio("restore to pong, flint Uffd / QEMU", "uffd,flint", "pong_ms", "restore,qemu", "pong_ms", "")
	ratio("restore to pong, flint File+set / QEMU", "ws,flint", "pong_ms", "restore,qemu", "pong_ms", "")
	ratio("snapshot create, flint / QEMU migrate", "create,flint", "create_ms", "create,qemu", "create_ms", 0.5)
	ratio(nvms " VMs, PSS all, flint / QEMU", "multi,flint", "pss_kib", "multi,qemu", "pss_kib", "")
	for (s in failed)
		printf "%s: %d runs failed\n", s, failed[s]
}
