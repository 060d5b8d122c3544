# vsock errors, and flint carries on after each: a guest connection to a host
# port nobody listens on is reset (the guest's connect fails ECONNRESET); a
# host CONNECT to a guest port nothing listens on, a garbage line and an
# overlong one each get the Unix connection closed without "OK"; then a
# stream through the same socket still works.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-vsock.sh"
need_vstream

V=$T/v.sock
(
	# Once flint listens: each line on its own connection, then a real stream.
	i=0
	until [ -S "$V" ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
	for line in 'CONNECT 6000\n' 'GARBAGE 5000\n' 'CONNECT 000000000000000000000000000000000005000\n'; do
		"$TOOLS/vstream" -t 60 unix-line "$V" "$line"
		echo "line=$? $line"
	done
	"$TOOLS/vstream" -t 100 unix-connect "$V" 5000 1 1M
	echo "stream=$?"
) >"$T/host" 2>&1 &
host=$!
boot_vsock -- sh -c 'vstream vsock-probe 2 7000; echo probe=$?; vstream -t 100 vsock-listen 5000 1 1M; echo listen=$?'
wait $host || true
show_host
expect_status 0 "the guest command"
expect_out '^vstream: connect to 2:7000: reset$' "the guest's connect to port 7000 reset"
expect_out '^probe=0$' "vsock-probe's status 0 (ECONNRESET)"
grep -q '^line=0 CONNECT 6000' "$T/host" || fail "CONNECT to a guest port nobody listens on was not just closed"
grep -q '^line=0 GARBAGE' "$T/host" || fail "a garbage line was not just closed"
grep -q '^line=0 CONNECT 0000' "$T/host" || fail "an overlong line was not just closed"
grep -q '^stream=0$' "$T/host" || fail "the stream after the errors failed"
expect_out '^listen=0$' "the guest's end of that stream"
expect_err 'vsock: connections host=[0-9]+ guest=0 open=0 resets=[1-9]' "host connections, all closed, resets counted"
