# Helpers for the virtio-net scenarios (scenarios/9N-net-*.sh), sourced after
# lib.sh and lib-blk.sh (start_bg, wait_for). L1 is the host end: a tap with
# 172.16.0.1/24, the guest 172.16.0.2 on eth0, set by the kernel's ip=.

GUEST_IP=ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off
GUEST_MAC=06:00:ac:10:00:02
TAPS=
BG=

need_net() {
	need_guest
	"$FLINT" --help 2>&1 | grep -q -- '--net' || skip "flint has no --net option"
	[ -c /dev/net/tun ] || skip "no /dev/net/tun (tun module not loaded)"
}

cleanup_net() {
	for p in $BG; do kill "$p" 2>/dev/null; done
	for t in $TAPS; do tunctl -d "$t" >/dev/null 2>&1; done
	rm -rf "$T"
}
trap cleanup_net EXIT

# tap_up NAME: a tap in L1 with 172.16.0.1/24, up; deleted at exit.
tap_up() {
	tunctl -t "$1" >/dev/null || fail "cannot create tap $1 (tunctl -t $1)"
	TAPS="$TAPS $1"
	ip addr add 172.16.0.1/24 dev "$1" && ip link set "$1" up ||
		fail "cannot give tap $1 its address"
}

# bg PID: kill it at exit if it still runs.
bg() {
	BG="$BG $1"
}

# wait_bg: wait for the background flint (start_bg) to end by itself;
# sets $status and $OUT as flint() does.
wait_bg() {
	status=0
	wait "$pid" || status=$?
	tr -d '\r' <"$T/raw" >"$OUT"
}

# net_stats: flint's --stats line for eth0 (from $ERR).
net_stats() {
	grep -o 'eth0: rx packets=.*' "$ERR" | tail -n1
}

# stat_of NAME: a number from that line ("rx packets=12" -> stat_of 'rx packets').
stat_of() {
	net_stats | sed -n "s/.*$1=\([0-9]*\).*/\1/p"
}

# keep_logs NAME: flint's stderr and console into $RIG_OUT, when there is one.
keep_logs() {
	[ -n "${RIG_OUT:-}" ] || return 0
	cp "$ERR" "$RIG_OUT/$1-stderr.log" 2>/dev/null
	cp "$OUT" "$RIG_OUT/$1-console.log" 2>/dev/null
	return 0
}
