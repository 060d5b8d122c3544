# flint's phase events for `flint bench` (--phase-fd N, bench/phase.h):
# a boot through flint run reports process, vm-created, vcpus-started,
# kernel-entry, init, agent-ready and first-output, each once, in that
# order (one vCPU), and KVM's exit counters (> 0) at the first output; a
# plain flint boot (bench/boot's guest and command line) reports the boot's
# phases to init and its counters at the end; with two vCPUs every boot
# phase still comes; a restore reports process, state-read,
# memory-mapped, resumed and first-response in order, and none of a
# boot's. The command's output and status are unchanged by the option.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
PH=$T/phases

# phases_in_order FILE NAME...: every line of FILE is a phase or exits
# line; each NAME is there once, at a time no earlier than the NAME
# before it; no other phase is there; the exits line has exits > 0.
phases_in_order() {
	f=$1
	shift
	echo "phase lines:"
	sed 's/^/  /' "$f"
	awk -v want="$*" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) pos[w[i]] = i }
		/^phase [a-z-]+ [0-9]+$/ {
			if (!($2 in pos)) { print "unexpected phase " $2; bad = 1; next }
			if ($2 in t) { print "phase " $2 " twice"; bad = 1 }
			t[$2] = $3 + 0; next
		}
		/^exits( [a-z_]+=[0-9]+)+$/ {
			nexits++
			for (i = 2; i <= NF; i++) { split($i, kv, "="); ex[kv[1]] = kv[2] + 0 }
			next
		}
		{ print "malformed line: " $0; bad = 1 }
		END {
			for (i = 1; i <= n; i++) {
				if (!(w[i] in t)) { print "no phase " w[i]; bad = 1; continue }
				if (i > 1 && (w[i - 1] in t) && t[w[i]] < t[w[i - 1]]) {
					print "phase " w[i] " before " w[i - 1]; bad = 1
				}
			}
			if (nexits != 1) { print nexits + 0 " exits lines, expected 1"; bad = 1 }
			else if (!(ex["exits"] > 0)) { print "exits=" ex["exits"] ", expected > 0"; bad = 1 }
			else print "exits=" ex["exits"] " io_exits=" ex["io_exits"] " mmio_exits=" ex["mmio_exits"]
			exit bad
		}' "$f" >"$T/verdict"
	v=$?
	cat "$T/verdict"
	[ $v = 0 ] || fail "phase lines: $(grep -v '^exits=' "$T/verdict" | head -n 1)"
}

# runp ARGS...: flint run ARGS with the phase lines on fd 3 into $PH.
runp() {
	status=0
	"$FLINT" run "$@" 3>"$PH" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
}

# A boot through flint run, the command's output and status kept.
runp --kernel "$KERNEL" --rootfs "$ROOTFS" --phase-fd 3 -- sh -c 'echo bench-out; exit 7'
expect_status 7 "the command's"
[ "$(cat "$OUT")" = bench-out ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'bench-out'"
phases_in_order "$PH" process vm-created vcpus-started kernel-entry init agent-ready first-output

# Two vCPUs: every phase still comes (kernel entry may precede the second
# vCPU's first KVM_RUN, so only presence and the chain past it).
runp --kernel "$KERNEL" --rootfs "$ROOTFS" --vcpus 2 --phase-fd 3 -- echo two
expect_status 0 "two vCPUs"
for ph in process vm-created vcpus-started kernel-entry init agent-ready first-output; do
	[ "$(grep -c "^phase $ph [0-9]*\$" "$PH")" = 1 ] || fail "two vCPUs: not one $ph line"
done
grep -Eq '^exits exits=[1-9]' "$PH" || fail "two vCPUs: no exits line with exits > 0"
awk '$1 == "phase" { t[$2] = $3 + 0 } END { exit !(t["kernel-entry"] >= t["vm-created"] &&
	t["vcpus-started"] >= t["vm-created"] && t["init"] >= t["kernel-entry"] &&
	t["agent-ready"] >= t["init"] && t["first-output"] >= t["agent-ready"]) }' "$PH" ||
	fail "two vCPUs: the phases out of order"

# A plain flint boot, bench/boot's guest and command line: the phases to
# init, the counters at the end (no first output: no agent).
status=0
"$FLINT" --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --cmdline "console=ttyS0 reboot=t panic=-1 quiet" \
	--phase-fd 3 -- true 3>"$PH" </dev/null >"$OUT" 2>"$ERR" || status=$?
echo "flint --kernel ... --phase-fd 3 -- true -> status $status"
expect_status 0 "a plain boot"
grep -q 'flint-init: ready' "$OUT" || fail "no init line on the console"
phases_in_order "$PH" process vm-created vcpus-started kernel-entry init

# A restore: its own phases only.
status=0
"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" --save-snapshot "$T/s.state" --save-mem "$T/s.mem" \
	</dev/null >"$OUT" 2>"$ERR" || status=$?
expect_status 0 "the snapshot"
runp --restore "$T/s.state" --mem-file "$T/s.mem" --phase-fd 3 -- echo restored
expect_status 0 "the restored command"
[ "$(cat "$OUT")" = restored ] || fail "stdout is '$(head -c 300 "$OUT")', expected 'restored'"
phases_in_order "$PH" process state-read memory-mapped resumed first-response

# The option refuses what is not a descriptor to write to.
runp --kernel "$KERNEL" --rootfs "$ROOTFS" --phase-fd 77 -- true
expect_status 125 "--phase-fd on a closed descriptor"
grep -q 'phase-fd 77' "$ERR" || fail "no message naming --phase-fd 77"
echo "phase events: boot, two vCPUs, plain boot, restore"
