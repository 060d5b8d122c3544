# Helpers for the API scenarios (scenarios/cN-api-*.sh), sourced after lib.sh
# and lib-blk.sh: flint in the background serving Firecracker's API on
# $API_SOCK, driven with curl --unix-socket as Firecracker's getting-started
# guide does.

API_SOCK=$T/api.sock

need_api() {
	need_guest
	command -v curl >/dev/null || skip "no curl in this environment (the rig copies the host's)"
	"$FLINT" --help 2>&1 | grep -q -- '--api-sock' || skip "flint has no --api-sock yet"
}

# start_api ARGS...: flint --api-sock $API_SOCK ARGS in the background (pid
# in $pid), until its socket answers; fails when it does not within 10 s.
start_api() {
	start_bg --api-sock "$API_SOCK" "$@"
	n=50
	until [ -S "$API_SOCK" ] && curl -s --max-time 2 --unix-socket "$API_SOCK" \
		-o /dev/null http://localhost/; do
		kill -0 "$pid" 2>/dev/null || { kill_bg; fail "flint ended before its API socket answered"; }
		n=$((n - 1))
		[ $n -gt 0 ] || { kill_bg; fail "the API socket $API_SOCK did not answer within 10 s"; }
		sleep 0.2
	done
}

# body NAME: stdin becomes the request body file $T/NAME.json.
body() {
	cat >"$T/$1.json"
}

# api METHOD PATH [BODY-NAME]: one request; sets $code to the HTTP status,
# the answer is in $T/resp.
api() {
	code=$(curl -sS --max-time 15 --unix-socket "$API_SOCK" -X "$1" \
		-H 'Accept: application/json' -H 'Content-Type: application/json' \
		${3:+--data-binary "@$T/$3.json"} -o "$T/resp" -w '%{http_code}' \
		"http://localhost$2" 2>"$T/curl.err") || code="curl failed: $(cat "$T/curl.err")"
	echo "$1 $2${3:+ ($3)} -> $code $(head -c 300 "$T/resp" 2>/dev/null)"
}

# pause_and_snapshot NAME: PATCH /vm Paused, then a full snapshot to
# $T/NAME.state and $T/NAME.mem; each must answer 204.
pause_and_snapshot() {
	body pause <<EOB
{"state": "Paused"}
EOB
	body snap <<EOB
{"snapshot_path": "$T/$1.state", "mem_file_path": "$T/$1.mem"}
EOB
	api PATCH /vm pause
	expect_code 204 "PATCH /vm Paused"
	api PUT /snapshot/create snap
	expect_code 204 "PUT /snapshot/create"
}

# ticking_snapshot NAME [CMD]: a guest (the initrd's shell) printing "tick
# N" every 0.1 s (and running CMD each time), snapshotted
# (pause_and_snapshot NAME) once it has printed tick 5, then killed;
# $last: the last tick it printed.
ticking_snapshot() {
	start_api --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio \
		-- sh -c 'i=0; while [ $i -lt 3000 ]; do echo tick $i; i=$((i+1)); '"${2:-}"' sleep 0.1; done'
	wait_for '^tick 5$' 90 || { kill_bg; fail "the guest did not tick"; }
	pause_and_snapshot "$1"
	kill_bg
	last=$(whole_lines "$OUT" | grep '^tick [0-9]*$' | tail -n 1 | cut -d' ' -f2)
}

# rss_kib: the background flint's resident memory, in KiB.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}

# wait_rss_fall FROM KIB SECONDS: until flint's resident memory is KIB KiB
# below FROM (looked at every half second), at most SECONDS; $after is
# what it was then. 1 if it did not fall that far.
wait_rss_fall() {
	n=$(($3 * 2))
	while [ $n -gt 0 ] && [ $(($1 - $(rss_kib))) -lt "$2" ]; do
		sleep 0.5
		n=$((n - 1))
	done
	after=$(rss_kib)
	[ $(($1 - after)) -ge "$2" ]
}

# expect_code CODE WHAT: the last answer's HTTP status.
expect_code() {
	[ "$code" = "$1" ] || fail "$2: expected HTTP $1, got $code: $(cat "$T/resp" 2>/dev/null)"
}

# expect_resp REGEX WHAT: the last answer's body.
expect_resp() {
	grep -Eq -- "$1" "$T/resp" || fail "$2: the answer lacks /$1/: $(cat "$T/resp")"
}

# json_num NAME: a number of the last answer ("" when it lacks NAME).
json_num() {
	sed -n "s/.*\"$1\" *: *\([0-9]*\).*/\1/p" "$T/resp"
}

# wait_json PATH NAME VALUE SECONDS WHAT: GET PATH every half second until
# its NAME is VALUE; else flint is killed and the scenario fails, saying
# WHAT did not come to VALUE.
wait_json() {
	n=$(($4 * 2))
	while [ $n -gt 0 ]; do
		api GET "$1" >/dev/null
		[ "$(json_num "$2")" = "$3" ] && return 0
		sleep 0.5
		n=$((n - 1))
	done
	api GET "$1"
	kill_bg
	fail "$5 did not come to $3 within $4 s"
}

# expect_fault WHAT: a 400 with Firecracker's {"fault_message": "..."}.
expect_fault() {
	expect_code 400 "$1"
	expect_resp '"fault_message" *: *"[^"]+' "$1: a fault_message"
}

# wait_bg: wait for the background flint to end; its status in $status.
wait_bg() {
	status=0
	wait "$pid" 2>/dev/null || status=$?
	tr -d '\r' <"$T/raw" >"$OUT"
}

# A boot-source body for the test guest, with the guest command $1 for
# init (a string without double quotes), the initrd $2 (default $INITRD)
# and more kernel words $3.
boot_source() {
	body boot <<EOB
{"kernel_image_path": "$KERNEL", "initrd_path": "${2:-$INITRD}",
 "boot_args": "console=ttyS0 reboot=k panic=-1 ${3:-}-- sh -c \"$1\""}
EOB
}

# walk_restored [ARGS...]: the tiny WALK guest (a byte on its UART names
# the page it writes) snapshotted, then restored with the Uffd backend
# (flint-uffd, $upid) and ARGS, its UART fed from fd 8 (a FIFO), flint's
# pid in $pid; it has walked one page the handler served.
walk_restored() {
	WALK=$TOOLS/tiny-walk
	[ -f "$WALK" ] || fail "no $WALK (make test-tools)"
	start_api --kernel "$WALK" --mem 64M
	sleep 0.5
	pause_and_snapshot s
	kill_bg
	start_uffd "$T/s.mem"
	mkfifo "$T/in"
	"$FLINT" --restore "$T/s.state" --uffd-sock "$T/handler.sock" "$@" \
		<"$T/in" >"$T/raw" 2>"$ERR" &
	pid=$!
	exec 8>"$T/in"
	printf a >&8 # a page the handler serves
	wait_for '^walked$' 30 || {
		kill_bg
		kill "$upid"
		fail "the restored guest did not walk with its handler there"
	}
}
