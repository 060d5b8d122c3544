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

# --- passt's scenarios (f0-net-user, a0-jail-net-user) --------------------

# passt_route TAP: passt takes a host interface with a default route as its
# template, and L1 has none: a tap TAP with an address and a default route
# stands in (no packet goes through it: the guest's connections are
# passt's to the loopback). Nothing is done when L1 has a default route.
passt_route() {
	ip route | grep -q '^default' && return 0
	[ -c /dev/net/tun ] || skip "no default route and no /dev/net/tun to make one for passt"
	tunctl -t "$1" >/dev/null || fail "cannot create tap $1"
	TAPS="$TAPS $1"
	ip addr add 192.0.2.1/24 dev "$1" && ip link set "$1" up &&
		ip route add default via 192.0.2.254 dev "$1" || fail "cannot give $1 a default route"
}

# serve_www PREFIX: a busybox httpd on L1's loopback port 8080 serving
# hello.txt (the line $marker, PREFIX and random hex) and big (1 MiB of
# random bytes, whose sha256 is $want_big), killed at exit; returns once
# it answers.
serve_www() {
	mkdir -p "$T/www"
	marker="$1-$(head -c 12 /dev/urandom | md5sum | cut -c1-16)"
	echo "$marker" >"$T/www/hello.txt"
	head -c 1048576 /dev/urandom >"$T/www/big"
	want_big=$(sha256sum <"$T/www/big" | cut -d' ' -f1)
	busybox httpd -f -p 127.0.0.1:8080 -h "$T/www" &
	bg $!
	for _ in $(seq 50); do
		nc -z 127.0.0.1 8080 2>/dev/null && break
		sleep 0.1
	done
}

# moved_root DIR: L1's root is its initramfs (rootfs), under which
# pivot_root always fails, and passt sandboxes itself with pivot_root (and
# a user namespace, which a chrooted process may not make); on a host
# whose root is a real file system it just works. DIR becomes a tmpfs
# holding L1's directories (bind mounts), unmounted at exit; in_moved_root
# runs a command in a mount namespace where DIR is moved over / as
# switch_root does, as such a root.
moved_root() {
	NR=$1
	mkdir -p "$NR" && mount -t tmpfs "$(basename "$NR")" "$NR" ||
		fail "cannot mount a tmpfs on $NR"
	trap 'umount -R -l "$NR" 2>/dev/null; rmdir "$NR" 2>/dev/null; cleanup_net' EXIT
	for d in /*; do
		[ "$d" = "$NR" ] && continue
		if [ -L "$d" ]; then
			cp -P "$d" "$NR/"
		elif [ -d "$d" ]; then
			mkdir "$NR$d" && mount --rbind "$d" "$NR$d" || fail "cannot bind $d into $NR"
		fi
	done
}

# in_moved_root CMD ARGS...: CMD run with moved_root's DIR as its /.
in_moved_root() {
	unshare -m sh -c 'mount --make-rprivate / && cd "$0" && mount --move . / &&
		exec chroot . "$@"' "$NR" "$@"
}
