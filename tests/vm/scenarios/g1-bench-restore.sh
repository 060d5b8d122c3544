# flint bench restore (runner/cmd/bench.c): the snapshot made once by
# flint run --save-snapshot, then 3 restores of each memory backend,
# interleaved: rows flint (File) and flint-uffd (Uffd, $TOOLS/flint-uffd
# started for each restore). Each row: 3 runs, a restore's phases
# (process, state-read, memory-mapped, resumed, first-response) with p50s
# in that order, none of a boot's. Without flint-uffd in L1, flint-uffd
# is "missing" and the bench exits 2. Checked with awk (no python3 in L1).
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
J=$T/out.json

status=0
"$FLINT" bench restore --runs 3 --kernel "$KERNEL" --rootfs "$ROOTFS" \
	--uffd-handler "$TOOLS/flint-uffd" --json "$J" </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint bench restore --runs 3 -> status $status"
cat "$OUT"
if [ -x "$TOOLS/flint-uffd" ]; then
	uffd=1
	expect_status 0 "the bench"
else
	uffd=0
	expect_status 2 "flint-uffd missing"
fi
[ -s "$J" ] || fail "no JSON written"

awk -v uffd=$uffd '
	/^    \{$/ { vmm = "" }
	/^      "name": / { vmm = $2; gsub(/[",]/, "", vmm) }
	/^      "status": / { st = $2; gsub(/[",]/, "", st); status[vmm] = st }
	/^      "runs": [0-9]/ { n = $2; gsub(/,/, "", n); runs[vmm] = n }
	/^      "failed": [0-9]/ { n = $2; gsub(/,/, "", n); failed[vmm] = n + 0 }
	/^      "phases": \{/ { inph = 1; next }
	/^      \},?$/ { inph = 0 }
	inph && /^        "launch-to-[a-z-]+": \{/ { ph = $1; gsub(/[":]/, "", ph); seen[vmm, ph] = 1 }
	inph && /^          "p50": / { v = $2; gsub(/,/, "", v); p50[vmm, ph] = v + 0 }
	/^  "mode": "restore",$/ { mode = 1 }
	END {
		if (!mode) { print "not a restore bench"; exit 1 }
		nv = split(uffd ? "flint flint-uffd" : "flint", vm, " ")
		n = split("process state-read memory-mapped resumed first-response", w, " ")
		for (j = 1; j <= nv; j++) {
			m = vm[j]
			if (status[m] != "ok" || runs[m] != 3 || failed[m]) {
				print m ": status " status[m] ", " runs[m] " runs, " failed[m] " failed"; exit 1
			}
			for (i = 1; i <= n; i++) {
				k = "launch-to-" w[i]
				if (!((m, k) in p50)) { print m ": no " k; exit 1 }
				if (i > 1 && p50[m, k] < p50[m, "launch-to-" w[i - 1]]) {
					print m ": " k " before launch-to-" w[i - 1]; exit 1
				}
			}
			if ((m, "launch-to-init") in seen) { print m ": a boot phase in a restore"; exit 1 }
			printf "%s launch-to-first-response p50 %.3f ms\n", m,
				p50[m, "launch-to-first-response"] / 1000
		}
		if (!uffd && status["flint-uffd"] != "missing") { print "flint-uffd not missing"; exit 1 }
	}' "$J" >"$T/verdict"
v=$?
cat "$T/verdict"
[ $v = 0 ] || fail "JSON: $(tail -n 1 "$T/verdict")"
echo "flint bench restore: $([ $uffd = 1 ] && echo both backends || echo File, Uffd missing), phases in order"
