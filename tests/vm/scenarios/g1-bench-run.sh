# flint bench run (runner/cmd/bench.c): a whole flint run, launch to
# exit, twice. The JSON: mode run, config.command the default ["true"],
# flint's row with both runs ok, and each run's startup_us its
# launch-to-exit (a run's start-up is the whole process, not its first
# output). Its own JSON is its baseline (exit 0, the comparison printed);
# a bench of another command is refused against it before any run (125).
# Checked with awk (no python3 in L1).
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
J=$T/run.json

status=0
"$FLINT" bench run --runs 2 --kernel "$KERNEL" --rootfs "$ROOTFS" --json "$J" \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint bench run --runs 2 -> status $status"
cat "$OUT"
expect_status 0 "the bench"
[ -s "$J" ] || fail "no JSON written"

awk '
	/^  "mode": "run",$/ { mode = 1 }
	/^    "command": \[$/ { incmd = 1; next }
	incmd && /^    \],?$/ { incmd = 0 }
	incmd { w = $1; gsub(/[",]/, "", w); cmd = cmd " " w }
	/^  "vmms": \[/ { part = "vmms" }
	/^  "runs": \[/ { part = "runs" }
	part == "vmms" && /^      "status": / { st = $2; gsub(/[",]/, "", st) }
	part == "runs" && /^    \{$/ { ok = ""; ex = ""; su = "" }
	part == "runs" && /^      "ok": / { ok = $2; gsub(/,/, "", ok) }
	part == "runs" && /^        "launch-to-exit": / { ex = $2; gsub(/,/, "", ex) }
	part == "runs" && /^      "startup_us": / { su = $2; gsub(/,/, "", su) }
	part == "runs" && /^    \},?$/ {
		n++
		if (ok != "true" || ex == "" || ex == "null" || su != ex) {
			print "run " n ": ok " ok ", launch-to-exit " ex ", startup_us " su; bad = 1
		}
		printf "run %d: launch to exit %.3f ms\n", n, ex / 1000
	}
	END {
		if (!mode) { print "not a run bench"; exit 1 }
		if (cmd != " true") { print "config.command:" cmd; exit 1 }
		if (st != "ok") { print "flint: status " st; exit 1 }
		if (n != 2 || bad) { print n " runs checked"; exit 1 }
	}' "$J" >"$T/verdict"
v=$?
cat "$T/verdict"
[ $v = 0 ] || fail "JSON: $(tail -n 1 "$T/verdict")"

# Its own result as the baseline: compared, nothing regressed by 1000%.
cp "$J" "$T/base.json"
status=0
"$FLINT" bench run --runs 1 --warmup 0 --kernel "$KERNEL" --rootfs "$ROOTFS" \
	--baseline "$T/base.json" --max-regress 1000 </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint bench run --baseline (itself) -> status $status"
cat "$OUT"
expect_status 0 "against its own baseline"
grep -q "^flint within +1000.0% of the baseline" "$OUT" || fail "no comparison printed"

# Another command: its figures do not compare, refused before any run.
status=0
"$FLINT" bench run --runs 1 --kernel "$KERNEL" --rootfs "$ROOTFS" \
	--baseline "$T/base.json" --max-regress 10 -- sh -c 'sleep 1' \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint bench run --baseline ... -- sh -c 'sleep 1' -> status $status"
cat "$ERR"
expect_status 125 "another command against the baseline"
grep -q "made with command" "$ERR" || fail "the refusal does not name the command"
grep -q "launch-to-exit" "$OUT" && fail "a run was made before the refusal"
echo "flint bench run: start-up to the exit, its baseline held to its command"
