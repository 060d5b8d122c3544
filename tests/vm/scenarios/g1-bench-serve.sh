# flint bench serve (runner/cmd/bench.c, runner/bench/serve.c): requests
# through a flint serve the bench starts itself (its own socket and state
# directory), the default function (sh -c 'read l; echo pong $l', with a
# prepare) registered and its warm pool awaited. Twice: the default
# isolation (VMs reset in place) at --concurrency 2 with --peer qemu, which
# is reported missing (no serve mode) and never silently dropped; then
# --isolation restore at concurrency 1. The JSON: schema flint-bench
# version 1, mode serve, the runs asked, config.isolation; flint's row with
# every request answered (one failure let pass, as g1-bench-boot does),
# its launch-to-first-response and launch-to-response with n = runs less
# the failed, first-response's p50 not after response's; a record per
# request; throughput.flint.requests_per_s above 0. After each bench no
# flint serve, flint run or restored flint is left, nor its directory.
# Checked with awk (no python3 in L1).
# timeout: 900
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
export TMPDIR="$T" # the bench's directory, and so flint serve's state, in it

# bench ISOLATION RUNS CONCURRENCY [OPTIONS...]: one bench and its checks.
bench() {
	iso=$1 runs=$2 conc=$3
	shift 3
	J=$T/serve-$iso.json
	status=0
	"$FLINT" bench serve --runs "$runs" --concurrency "$conc" --kernel "$KERNEL" \
		--rootfs "$ROOTFS" --json "$J" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint bench serve --isolation $iso --runs $runs --concurrency $conc $* -> status $status"
	cat "$OUT"
	[ -s "$ERR" ] && sed 's/^/  stderr: /' "$ERR" | tail -n 5
	# 2: a counted request failed (the outputs written); one is let pass below.
	[ $status = 2 ] || expect_status 0 "the bench ($iso)"
	[ -s "$J" ] || fail "no JSON written ($iso)"
	awk -v iso="$iso" -v runs="$runs" -v peer="$*" '
		/^    \{$/ { vmm = "" }
		/^      "name": / { vmm = $2; gsub(/[",]/, "", vmm) }
		/^      "status": / { st = $2; gsub(/[",]/, "", st); status[vmm] = st }
		/^      "runs": [0-9]/ { n = $2; gsub(/,/, "", n); nruns[vmm] = n + 0 }
		/^      "failed": [0-9]/ { n = $2; gsub(/,/, "", n); failed[vmm] = n + 0 }
		/^      "why": / { why[vmm] = $0 }
		/^      "phases": \{/ { inph = 1; next }
		/^      \},?$/ { inph = 0 }
		inph && /^        "launch-to-[a-z-]+": \{/ { ph = $1; gsub(/[":]/, "", ph); seen[vmm, ph] = 1 }
		inph && /^          "n": / { v = $2; gsub(/,/, "", v); n_of[vmm, ph] = v + 0 }
		inph && /^          "p50": / { v = $2; gsub(/,/, "", v); p50[vmm, ph] = v + 0 }
		/^      "vmm": "flint",$/ { recs++ }
		/^      "requests_per_s": / { v = $2; gsub(/,/, "", v); rps = v + 0 }
		/^  "schema": "flint-bench",$/ { schema = 1 }
		/^  "version": 1,$/ { version = 1 }
		/^  "mode": "serve",$/ { mode = 1 }
		$0 ~ "^    \"runs\": " runs ",$" { asked = 1 }
		$0 ~ "^    \"isolation\": \"" iso "\"" { isol = 1 }
		END {
			if (!schema || !version || !mode || !asked || !isol) {
				print "header: schema " schema " version " version " mode " mode \
					" runs " asked " isolation " isol; exit 1
			}
			f = failed["flint"]
			if (status["flint"] != "ok" || nruns["flint"] != runs || f > 1) {
				print "flint: status " status["flint"] ", " nruns["flint"] " requests, " \
					f " failed"; exit 1
			}
			if (f) print "flint: 1 of " runs " requests failed (let pass)"
			a = "launch-to-first-response"; b = "launch-to-response"
			if (n_of["flint", a] != runs - f || n_of["flint", b] != runs - f) {
				print "flint: n " n_of["flint", a] " and " n_of["flint", b] ", expected " runs - f
				exit 1
			}
			if (p50["flint", a] > p50["flint", b]) { print "flint: first byte after the answer"; exit 1 }
			if (("flint", "launch-to-init") in seen) { print "flint: a boot phase in serve"; exit 1 }
			if (recs != runs) { print "flint: " recs + 0 " records, expected " runs; exit 1 }
			if (!(rps > 0)) { print "no requests_per_s"; exit 1 }
			printf "flint %s: p50 %.3f ms to the answer, %.2f requests/s\n", iso,
				p50["flint", b] / 1000, rps
			if (peer ~ /qemu/) {
				if (status["qemu"] != "missing" || why["qemu"] !~ /no serve mode/) {
					print "qemu: status " status["qemu"] ", " why["qemu"]; exit 1
				}
				print "qemu missing: " why["qemu"]
			}
		}' "$J" >"$T/verdict"
	v=$?
	cat "$T/verdict"
	[ $v = 0 ] || fail "JSON ($iso): $(tail -n 1 "$T/verdict")"
	grep -q '^throughput flint .* requests/s' "$OUT" || fail "no throughput line ($iso)"
	left=$(ps -o pid,args 2>/dev/null | grep -c '[f]lint serve\|[f]lint run\|[f]lint --restore' || true)
	[ "$left" = 0 ] || { ps -o pid,args | grep '[f]lint'; fail "$left flint processes left ($iso)"; }
	ls -d "$T"/flint-bench.* 2>/dev/null && fail "the bench's directory left ($iso)"
	return 0
}

bench reset 6 2 --peer qemu
bench restore 3 1 --isolation restore
echo "flint bench serve: reset and restore, JSON checked, nothing left"
