# --net user: rootless networking through passt. A busybox httpd listens on
# L1's loopback only; the guest (10.0.2.15, from the kernel's ip= that flint
# adds) fetches a small file and 1 MiB of random bytes from passt's gateway
# address 10.0.2.2, which passt maps to the host's loopback, and their
# contents match. The guest's address, route and DNS server are the ones
# flint gave, and a name it looks up is answered through passt (which
# forwards its DNS address to the host's resolver), then fetched by name. passt is gone once flint has exited; a passt flint cannot find
# is an error naming it.
# passt needs a host interface with a default route to take as its template,
# and L1 has none: a tap with an address and a default route stands in (no
# packet goes through it: the guest's connection is passt's to the
# loopback).
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-net.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
"$FLINT" --help 2>&1 | grep -q 'user\[,mac' || skip "flint has no --net user"
command -v passt >/dev/null || skip "no passt in L1 (the rig copies /usr/bin/passt: apt-get install passt)"

passt_route fu0
serve_www user-net

# passt cannot sandbox itself under L1's initramfs root: flint runs from a
# tmpfs root moved over / (lib-net.sh's moved_root).
moved_root /f0-root

# L1 has no resolver: a DNS server with one answer (tests/tools/dnsone,
# every name is 10.0.2.2) on its loopback stands in for the host's, named
# by a resolv.conf bound over the moved root's /etc/resolv.conf (L1's own
# is left as it was, or made empty if it had none: the bind needs a file
# there; L1's mounts are private, so the bind stays in the moved root).
# passt forwards the guest's queries to 10.0.2.3 to it.
[ -x "${TOOLS:-}/dnsone" ] || fail "no dnsone in \$TOOLS (make test-tools)"
echo "nameserver 127.0.0.1" >"$T/resolv.conf"
[ -e /f0-root/etc/resolv.conf ] || : >/f0-root/etc/resolv.conf
mount --bind "$T/resolv.conf" /f0-root/etc/resolv.conf || fail "cannot bind a resolv.conf for passt"
"$TOOLS/dnsone" 127.0.0.1 10.0.2.2 2>"$T/dns.log" &
bg $!

run() {
	status=0
	in_moved_root "$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" "$@" \
		</dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
}

run --net user --stats -- sh -c 'ip -4 addr show eth0; ip route; cat /proc/net/pnp; wget -q -O - http://10.0.2.2:8080/hello.txt; echo big=$(wget -q -O - http://10.0.2.2:8080/big | sha256sum); nslookup www.flint.test; wget -q -O - http://www.flint.test:8080/hello.txt | sed s/^/byname:/'
keep_logs net-f0
cat "$T/dns.log"
expect_status 0 "the guest's fetches succeeded"
grep -q "^dnsone: www.flint.test" "$T/dns.log" || fail "the guest's DNS query did not reach the host's resolver through passt"
grep -q "^Address: *10\.0\.2\.2" "$OUT" || fail "the guest's nslookup got no answer through passt"
grep -q "^byname:$marker\$" "$OUT" || fail "the guest did not fetch hello.txt by name"
grep -q "^$marker\$" "$OUT" || fail "the guest did not get hello.txt ($marker)"
got_big=$(sed -n 's/^big=\([0-9a-f]\{64\}\).*/\1/p' "$OUT")
[ "$got_big" = "$want_big" ] || fail "1 MiB from the host: sha256 $got_big in the guest, $want_big sent"
grep -q 'inet 10\.0\.2\.15/24' "$OUT" || fail "eth0 has not 10.0.2.15/24"
grep -q 'default via 10\.0\.2\.2' "$OUT" || fail "no default route via 10.0.2.2"
grep -q 'nameserver 10\.0\.2\.3' "$OUT" || fail "the kernel has no DNS server 10.0.2.3 (/proc/net/pnp)"

stats=$(net_stats)

# passt quits with flint (its socket's end): none left but zombies (L1's
# init reaps orphans as it pleases).
passt_alive() {
	for p in /proc/[0-9]*; do
		case $(sed -n 's/^Name:[[:space:]]*//p' "$p/status" 2>/dev/null) in
		passt*) sed -n 's/^State:[[:space:]]*//p' "$p/status" | grep -qv '^Z' && return 0 ;;
		esac
	done
	return 1
}
for i in $(seq 50); do
	passt_alive || break
	sleep 0.1
done
! passt_alive || fail "a passt is still running after flint: $(ps | grep '[p]asst')"

# No passt: an error naming it, and no guest started for nothing.
export FLINT_PASST=/nonexistent/passt
run --net user -- true
unset FLINT_PASST
expect_failure "no passt"
expect_err 'passt' "a message naming passt"

# A passt that fails says how, even under a parent that ignores SIGCHLD
# (which exec hands on: the kernel would reap passt before flint's
# waitpid, and flint said "killed by signal 32").
printf '#!/bin/sh\nexit 1\n' >"$T/passt-fails" && chmod +x "$T/passt-fails"
export FLINT_PASST="$T/passt-fails"
status=0
in_moved_root sh -c 'trap "" CHLD; exec "$0" run --kernel "$1" --rootfs "$2" --net user -- true' \
	"$FLINT" "$KERNEL" "$ROOTFS" </dev/null >"$OUT" 2>"$ERR" || status=$?
unset FLINT_PASST
echo "flint run --net user with SIGCHLD ignored and a passt that exits 1 -> status $status"
expect_failure "a passt that exits at once"
expect_err 'passt exited with status 1 before it was ready' "passt's status"
echo "hello.txt and 1 MiB fetched through passt from L1's loopback; ${stats:-no --stats line}"
