# bench/run: reads in-l1.sh's "res way=W job=J run=R KEY=VALUE... ok=0|1"
# lines (and its "gvisor: ..." lines saying why gVisor did not run) and
# prints, as Markdown tables: each job's end-to-end time per way (p50, p90,
# min over the runs that were right; failed runs counted), the phases of
# flint against QEMU, and the ratios the benchmark has a target for
# (flint end to end <= 0.5x QEMU's).
#   awk -f summarize.awk RUNS-FILE
# Phases: ready = launch to the agent's connection (flint's also split at
# init's boot marker, which QEMU ignores); cmd = the request to
# the command's status; rest = everything after the agent was ready but
# the command (the copies and the VM's end): total - ready - cmd, for both.
# The rest is split as copyin, copyout and stop: QEMU's by runbench,
# flint's by --timings' copy times (its stop is what is left).
$1 == "gvisor:" {
	sub(/^gvisor: /, "")
	notes[++nnotes] = $0
	next
}
$1 == "res" {
	delete f
	for (i = 2; i <= NF; i++) {
		p = index($i, "=")
		if (p)
			f[substr($i, 1, p - 1)] = substr($i, p + 1)
	}
	w = f["way"]; j = f["job"]
	if (!((w) in seenw)) { seenw[w] = 1; ways[++nw] = w }
	if (!((j) in seenj)) { seenj[j] = 1; jobs[++nj] = j }
	if (f["ok"] != 1) { failed[w, j]++; next }
	k = ++n[w, j]
	v[w, j, "total", k] = f["total_ms"]
	if ("ready_ms" in f) {
		v[w, j, "ready", k] = f["ready_ms"]
		v[w, j, "cmd", k] = f["cmd_ms"]
		v[w, j, "rest", k] = f["total_ms"] - f["ready_ms"] - f["cmd_ms"]
		has[w, j, "ready"] = has[w, j, "cmd"] = has[w, j, "rest"] = 1
	}
	if ("init_ms" in f) {
		v[w, j, "init", k] = f["init_ms"]
		has[w, j, "init"] = 1
	}
	if ("copyin_ms" in f) {
		v[w, j, "copyin", k] = f["copyin_ms"]
		v[w, j, "copyout", k] = f["copyout_ms"]
		v[w, j, "stop", k] = ("stop_ms" in f) ? f["stop_ms"] : \
			f["total_ms"] - f["ready_ms"] - f["cmd_ms"] - f["copyin_ms"] - f["copyout_ms"]
		has[w, j, "copyin"] = has[w, j, "copyout"] = has[w, j, "stop"] = 1
	}
}

# Sorts the values of (w, j, m) into s[1..cnt]; returns cnt.
function sorted(w, j, m,    cnt, i, k, t) {
	cnt = n[w, j] + 0
	for (i = 1; i <= cnt; i++)
		s[i] = v[w, j, m, i] + 0
	for (i = 2; i <= cnt; i++)
		for (k = i; k > 1 && s[k - 1] > s[k]; k--) {
			t = s[k]; s[k] = s[k - 1]; s[k - 1] = t
		}
	return cnt
}
function p50(w, j, m,    c) {
	c = sorted(w, j, m)
	if (!c) return ""
	return (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
}
# Nearest rank.
function p90(w, j, m,    c, r) {
	c = sorted(w, j, m)
	if (!c) return ""
	r = int(0.9 * c); if (r < 0.9 * c) r++
	return s[r]
}
function pmin(w, j, m) { return sorted(w, j, m) ? s[1] : "" }
function num(x) { return x == "" ? "-" : sprintf("%.0f", x) }
function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-" }
function three(w, j, m) {
	if (!n[w, j]) return "-"
	return num(p50(w, j, m)) " (" num(p90(w, j, m)) ", " num(pmin(w, j, m)) ")"
}

END {
	label["true"] = "`true`"; label["job"] = "job (copy in, sha256sum, copy out)"
	plabel["init"] = "  launch to init (flint's marker)"
	plabel["ready"] = "launch to agent ready"; plabel["cmd"] = "command"
	plabel["rest"] = "copies and the end (rest)"; plabel["copyin"] = "  copy-in"
	plabel["copyout"] = "  copy-out"; plabel["stop"] = "  end (VM stopped, VMM gone)"
	print "| job | way | runs (failed) | p50 ms | p90 ms | min ms | flint / way, p50 |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (a = 1; a <= nj; a++) {
		j = jobs[a]
		for (b = 1; b <= nw; b++) {
			w = ways[b]
			if (!n[w, j] && !failed[w, j]) continue
			printf "| %s | %s | %d (%d) | %s | %s | %s | %s |\n", label[j], w, n[w, j],
				failed[w, j], num(p50(w, j, "total")), num(p90(w, j, "total")),
				num(pmin(w, j, "total")),
				w == "flint" ? "1" : ratio(p50("flint", j, "total"), p50(w, j, "total"))
		}
	}
	for (i = 1; i <= nnotes; i++)
		print "\ngVisor: " notes[i]
	print "\nPhases, p50 (p90, min) ms:\n"
	print "| job | phase | flint | qemu | flint / qemu, p50 |"
	print "| --- | --- | --- | --- | --- |"
	split("ready init cmd rest copyin copyout stop", ph, " ")
	for (a = 1; a <= nj; a++) {
		j = jobs[a]
		for (b = 1; b <= 7; b++) {
			m = ph[b]
			if (!has["qemu", j, m] && !has["flint", j, m]) continue
			if (j == "true" && (m == "copyin" || m == "copyout")) continue
			printf "| %s | %s | %s | %s | %s |\n", label[j], plabel[m],
				has["flint", j, m] ? three("flint", j, m) : "-",
				has["qemu", j, m] ? three("qemu", j, m) : "-",
				(has["flint", j, m] && has["qemu", j, m]) ? ratio(p50("flint", j, m), p50("qemu", j, m)) : "-"
		}
	}
	print ""
	for (a = 1; a <= nj; a++) {
		j = jobs[a]
		fp = p50("flint", j, "total")
		qp = p50("qemu", j, "total")
		r = ratio(fp, qp)
		# The verdict on the ratio itself, not on its two decimals (0.503
		# shows as 0.50 and is not met).
		printf "flint / QEMU end to end, %s: p50 %s, p90 %s, min %s (target <= 0.5: %s)\n",
			label[j], r, ratio(p90("flint", j, "total"), p90("qemu", j, "total")),
			ratio(pmin("flint", j, "total"), pmin("qemu", j, "total")),
			r == "-" ? "no data" : (fp / qp <= 0.5 ? "met" : "not met")
	}
}
