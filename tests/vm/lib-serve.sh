# Helpers for the flint serve scenarios (scenarios/e*), sourced after
# lib.sh: one server on the Unix socket $SOCK, its output in
# $T/serve.out and $T/serve.err, its pid in $spid.

SOCK=$T/serve.sock

# start_server OPTIONS...: flint serve on $SOCK, until it listens.
start_server() {
	"$FLINT" serve --listen "unix:$SOCK" "$@" >"$T/serve.out" 2>"$T/serve.err" &
	spid=$!
	i=0
	while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$SOCK" ] || { cat "$T/serve.err"; fail "flint serve did not listen"; }
}
# api METHOD PATH [BODY-FILE]: the status in $code, the body in $T/body,
# the headers in $T/hdr.
api() {
	code=$(curl -s --unix-socket "$SOCK" -X "$1" -o "$T/body" -D "$T/hdr" \
		-w '%{http_code}' ${3:+--data-binary @"$3"} "http://flint$2") || code=000
}
# register NAME JSON: PUT /functions/NAME, said; $code as api's.
register() {
	printf '%s' "$2" >"$T/fn.json"
	api PUT "/functions/$1" "$T/fn.json"
	echo "PUT /functions/$1 -> $code $(head -c 300 "$T/body")"
}
# tell_invocation FN HEADERS-FILE: what there is to go on for a wrong
# answer: its X-Flint-* headers, and the stderr its flint left (flint's own
# lines among it: a guest that stopped answering says where its vCPUs were,
# their rip and local APIC). Overwrites $code and $T/body.
tell_invocation() {
	tr -d '\r' <"$2" 2>/dev/null | grep -i '^x-flint' | sed 's/^/    /'
	id=$(tr -d '\r' <"$2" 2>/dev/null | sed -n 's/^x-flint-invocation-id: //Ip' | head -n 1)
	[ -n "$id" ] || return 0
	api GET "/functions/$1/invocations/$id/stderr"
	echo "    its kept stderr ($code):"
	tail -n 20 "$T/body" | sed 's/^/    | /'
}
stop_server() {
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
}
# die MESSAGE: the server's last words, the server stopped, fail.
die() {
	echo "--- flint serve stderr (last 20 lines):"
	tail -n 20 "$T/serve.err"
	# A VM of the server's that stopped in L1's module area (the guest
	# kernel has none): the rig's emulated nested SVM resumed L1's own
	# state as the guest's (lib.sh's rig_fault), which run-scenarios
	# retries once on these words.
	rf_rip=$(sed -n 's/.*vCPUs left the guest at: .*rip=\(0xffffffffc[0-9a-f]*\).*/\1/p' \
		"$T/serve.err" | head -n 1)
	[ -z "$rf_rip" ] || echo "emulation error: a VM of flint serve's left the guest at" \
		"rip=$rf_rip, in L1's module area: L1's own state resumed as the guest's"
	stop_server
	fail "$*"
}
