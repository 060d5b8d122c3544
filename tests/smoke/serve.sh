# flint serve on this host with a stand-in for the VMs (fake-flint.sh:
# each "VM" runs its command in the host's shell), so that its own logic
# is checked without a guest: registration and its refusals, invocations
# and their statuses and headers (200, 422, 504, 502, 429, 404, 409, 413,
# 405, 503 past --max-bodies), stdin and stdout, ?stderr=inline and the kept stderr, a streamed
# answer past --out-buffer with its trailers, the global VM limit (503, for
# an invocation and for a registration),
# DELETE draining, reuse, metrics, and a stop that leaves no process and
# no state directory; per-request VMs reset in place (the default) and
# restored per request (--per-request restore). The real thing, VMs and all:
# tests/vm/scenarios/e0-serve.sh. Sourced by run.sh (FLINT, OUT, report()).

S=$OUT/serve
rm -rf "$S"
mkdir -p "$S"
FAKE=$(cd "$(dirname "$0")" && pwd)/fake-flint.sh
FAKE_TEARDOWN=1 FAKE_CRASH_ONCE=$S/crash-once "$FLINT" serve --listen "unix:$S/s.sock" --state-dir "$S/st" --flint "$FAKE" \
	--fn-queue 1 --max-vms 3 --out-buffer 4K --max-body 1M --max-bodies 1500K --queue-timeout 2 --idle 1 \
	>"$S/serve.out" 2>"$S/serve.err" &
serve_pid=$!
i=0
while [ ! -S "$S/s.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done

# call NAME METHOD PATH [BODY-FILE]: $code, $S/NAME.body, $S/NAME.hdr
call() {
	code=$(curl -s --unix-socket "$S/s.sock" -X "$2" -o "$S/$1.body" -D "$S/$1.hdr" \
		-w '%{http_code}' ${4:+--data-binary @"$4"} "http://flint$3" 2>/dev/null) || code=000
}
# expect NAME METHOD PATH BODY-FILE|"" STATUS [BODY-PATTERN [HEADER-PATTERN]]
expect() {
	call "$1" "$2" "$3" "$4"
	why=
	[ "$code" = "$5" ] || why="status $code, expected $5"
	[ -z "$why" ] && [ -n "${6:-}" ] && ! grep -q -- "$6" "$S/$1.body" &&
		why="body lacks '$6'"
	[ -z "$why" ] && [ -n "${7:-}" ] && ! tr -d '\r' <"$S/$1.hdr" | grep -qi -- "$7" &&
		why="headers lack '$7'"
	[ -n "$why" ] && cat "$S/$1.body" >>"$S/$1.hdr"
	report "serve-$1" "$why" "$S/$1.hdr"
}
fn() { # NAME JSON
	printf '%s' "$2" >"$S/fn-$1.json"
}

if ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then
	echo "SKIP serve: no curl or no python3 (the stand-in VMs' agent)"
elif [ ! -S "$S/s.sock" ]; then
	report serve-start "flint serve did not listen" "$S/serve.err"
else
	fn echo '{"command": ["sh", "-c", "read l; echo got:$l; echo note >&2"], "min_warm": 1}'
	expect register PUT /functions/echo "$S/fn-echo.json" 201 '"min_warm":1'
	expect register-again PUT /functions/echo "$S/fn-echo.json" 200
	fn echo2 '{"command": ["true"]}'
	expect register-other PUT /functions/echo "$S/fn-echo2.json" 409 'DELETE it first'
	fn bad '{"command": ["true"], "mem_mib": 1}'
	expect register-bad-field PUT /functions/bad "$S/fn-bad.json" 400 'mem_mib'
	fn badprep '{"command": ["true"], "prepare": ["false"]}'
	expect register-bad-prepare PUT /functions/badprep "$S/fn-badprep.json" 422 'prepare command failed'
	# A guest that crashes while the function's VM boots to its snapshot
	# (the stand-in's status 122): the message names flint's reason, not
	# the timings line flint prints after it.
	fn crashprep '{"command": ["true"], "prepare": ["sh", "-c", "echo \"flint: guest triple fault on vCPU 0 (KVM_EXIT_SHUTDOWN)\" >&2; echo \"flint run: launch to init 0.0 ms\" >&2; exit 122"]}'
	expect register-crash-prepare PUT /functions/crashprep "$S/fn-crashprep.json" 422 \
		'the guest crashed (kernel panic, triple fault or KVM error): guest triple fault on vCPU 0'
	expect register-bad-name PUT /functions/a.b "$S/fn-echo2.json" 400
	printf 'hello\n' >"$S/in"
	expect invoke POST /functions/echo/invoke "$S/in" 200 '^got:hello$' 'x-flint-exit-status: 0'
	expect invoke-warm POST /functions/echo/invoke "$S/in" 200 '^got:hello$' 'x-flint-warm: true'
	id=$(tr -d '\r' <"$S/invoke-warm.hdr" | sed -n 's/^x-flint-invocation-id: //Ip')
	expect stderr GET "/functions/echo/invocations/$id/stderr" "" 200 '^note$'
	expect stderr-unknown GET /functions/echo/invocations/999999/stderr "" 404
	expect inline POST '/functions/echo/invoke?stderr=inline' "$S/in" 200 '"stderr":"note\\n"'
	expect unknown POST /functions/nope/invoke "" 404 'no function nope'
	expect method GET /functions/echo/invoke "" 405 '' 'allow: POST'
	head -c 2000000 /dev/zero >"$S/big"
	expect too-big POST /functions/echo/invoke "$S/big" 413
	# --max-bodies (1500K): a request's body is held until it is answered;
	# a second of 1 MB meanwhile is refused, and taken once the first is.
	fn sit '{"command": ["sleep", "1"], "max_concurrency": 2}'
	expect register-sit PUT /functions/sit "$S/fn-sit.json" 201
	head -c 1000000 /dev/zero >"$S/mb"
	curl -s --unix-socket "$S/s.sock" -X POST -o /dev/null --data-binary @"$S/mb" \
		http://flint/functions/sit/invoke &
	sit=$!
	sleep 0.5
	expect bodies-full POST /functions/sit/invoke "$S/mb" 503 'max-bodies' 'retry-after: 1'
	wait $sit
	expect bodies-given-back POST /functions/sit/invoke "$S/mb" 200

	fn fail '{"command": ["sh", "-c", "echo out; exit 3"]}'
	expect register-fail PUT /functions/fail "$S/fn-fail.json" 201
	expect exit-3 POST /functions/fail/invoke "" 422 '^out$' 'x-flint-exit-status: 3'
	fn slow '{"command": ["sleep", "30"], "timeout_s": 1}'
	expect register-slow PUT /functions/slow "$S/fn-slow.json" 201
	expect timeout POST /functions/slow/invoke "" 504 'timeout_s (1 s)' 'x-flint-outcome: timeout'
	# A VM gone mid-command (its agent killed): 502, and serving goes on.
	fn crash '{"command": ["sh", "-c", "kill -9 $PPID; sleep 5"]}'
	expect register-crash PUT /functions/crash "$S/fn-crash.json" 201
	expect crash POST /functions/crash/invoke "" 502 'guest'
	fn big '{"command": ["sh", "-c", "head -c 100000 /dev/zero | tr \\\\0 a; exit 5"]}'
	expect register-big PUT /functions/big "$S/fn-big.json" 201
	call stream POST /functions/big/invoke
	why=
	[ "$code" = 200 ] || why="status $code"
	[ -z "$why" ] && [ "$(wc -c <"$S/stream.body")" = 100000 ] || why="${why:-$(wc -c <"$S/stream.body") bytes}"
	[ -z "$why" ] && ! tr -d '\r' <"$S/stream.hdr" | grep -qi 'transfer-encoding: chunked' && why="not chunked"
	[ -z "$why" ] && ! tr -d '\r' <"$S/stream.hdr" | grep -qi 'x-flint-exit-status: 5' && why="no exit-status trailer"
	report serve-stream "$why" "$S/stream.hdr"
	# A client that reads a streamed answer slower than it comes (256
	# bytes each 0.2 s, what the sockets hold taking minutes) would hold
	# the VM: its connection is cut at the command's start + timeout_s +
	# 15 s, and with max_concurrency 1 the next request runs then (held,
	# it would wait out --queue-timeout's 2 s and be refused).
	fn trickle '{"command": ["head", "-c", "3000000", "/dev/zero"], "timeout_s": 1, "max_concurrency": 1}'
	expect register-trickle PUT /functions/trickle "$S/fn-trickle.json" 201
	python3 - "$S/s.sock" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b"POST /functions/trickle/invoke HTTP/1.1\r\nHost: flint\r\nContent-Length: 0\r\n\r\n")
t0 = time.monotonic()
while time.monotonic() - t0 < 40 and s.recv(256):
    time.sleep(0.2)
EOF
	trickle=$!
	sleep 17
	expect stream-slow-client-cut POST /functions/trickle/invoke "" 200
	kill "$trickle" 2>/dev/null
	wait "$trickle"
	why=
	grep -q 'request [0-9]*: its client had not taken the streamed answer 16 s after' \
		"$S/serve.err" || why="no message"
	report serve-stream-slow-client-said "$why" "$S/serve.err"

	# One at a time, one waiting: a third is refused. DELETE drains: the
	# running and the queued one answer, a new one meanwhile gets 409.
	fn hold '{"command": ["sh", "-c", "sleep 1; echo held"], "max_concurrency": 1}'
	expect register-hold PUT /functions/hold "$S/fn-hold.json" 201
	curl -s --unix-socket "$S/s.sock" -X POST -o "$S/h1" http://flint/functions/hold/invoke &
	h1=$!
	sleep 0.3
	curl -s --unix-socket "$S/s.sock" -X POST -o "$S/h2" http://flint/functions/hold/invoke &
	h2=$!
	sleep 0.3
	expect fn-full POST /functions/hold/invoke "" 429 'max_concurrency' 'retry-after: 1'
	call drain DELETE /functions/hold &
	d=$!
	sleep 0.2
	expect draining POST /functions/hold/invoke "" 409 'being removed'
	wait $d $h1 $h2
	why=
	[ "$(cat "$S/h1" "$S/h2" 2>/dev/null)" = "held
held" ] || why="the drained function's requests answered '$(cat "$S/h1" "$S/h2" 2>/dev/null)'"
	report serve-delete-drains "$why" "$S/serve.err"
	expect deleted GET /functions/hold "" 404

	# A queued request whose client hangs up gives its place up: with one
	# running and --fn-queue 1, the next request waits (not 429).
	fn one '{"command": ["sh", "-c", "sleep 2.5; echo one"], "max_concurrency": 1}'
	expect register-one PUT /functions/one "$S/fn-one.json" 201
	curl -s --unix-socket "$S/s.sock" -X POST -o /dev/null http://flint/functions/one/invoke &
	o1=$!
	sleep 0.3
	curl -s --max-time 0.4 --unix-socket "$S/s.sock" -X POST -o /dev/null \
		http://flint/functions/one/invoke
	sleep 0.8
	expect queued-client-gone POST /functions/one/invoke "" 200 '^one$'
	wait $o1

	# The global limit, 3 VMs: three busy ones (echo's warm VM given up
	# for the third), and another function's request waits
	# --queue-timeout (2 s), then 503.
	fn busy '{"command": ["sleep", "4"], "max_concurrency": 3}'
	expect register-busy PUT /functions/busy "$S/fn-busy.json" 201
	fn other '{"command": ["true"]}'
	expect register-other-fn PUT /functions/other "$S/fn-other.json" 201
	for k in 1 2 3; do
		curl -s --unix-socket "$S/s.sock" -X POST -o /dev/null http://flint/functions/busy/invoke &
		eval "b$k=\$!"
		sleep 0.2
	done
	# A registration's VM counts too: it waits as long, then 503, and
	# the name is free again.
	fn late '{"command": ["true"]}'
	curl -s --unix-socket "$S/s.sock" -X PUT -o "$S/register-limits.body" \
		-D "$S/register-limits.hdr" -w '%{http_code}' --data-binary @"$S/fn-late.json" \
		http://flint/functions/late >"$S/register-limits.code" 2>/dev/null &
	rl=$!
	expect limits POST /functions/other/invoke "" 503 'no VM became free' 'retry-after: 1'
	wait $rl
	why=
	[ "$(cat "$S/register-limits.code")" = 503 ] || why="status $(cat "$S/register-limits.code"), expected 503"
	[ -z "$why" ] && ! grep -q "no room to boot the function's VM to its snapshot: no VM became free" \
		"$S/register-limits.body" && why="body lacks the reason"
	[ -z "$why" ] && ! tr -d '\r' <"$S/register-limits.hdr" | grep -qi 'retry-after: 1' &&
		why="no retry-after"
	[ -n "$why" ] && cat "$S/register-limits.body" >>"$S/register-limits.hdr"
	report serve-register-limits "$why" "$S/register-limits.hdr"
	expect register-limits-gone GET /functions/late "" 404
	wait $b1 $b2 $b3

	fn keep '{"command": ["sh", "-c", "echo kept"], "isolation": "reuse"}'
	expect register-reuse PUT /functions/keep "$S/fn-keep.json" 201 '"reuse_max":100'
	expect reuse POST /functions/keep/invoke "" 200 '^kept$'
	expect reuse-again POST /functions/keep/invoke "" 200 '^kept$'
	# A reuse VM whose command timed out serves no more requests: what
	# escaped the command (here the sleep its shell left) would run on
	# into the next one. The next request gets another VM.
	# (An absolute path: the stand-in agent runs commands in /.)
	once=$(cd "$S" && pwd)/reto-once
	fn reto "{\"command\": [\"sh\", \"-c\", \"if [ ! -e $once ]; then touch $once; sleep 30; fi; echo ok\"], \"isolation\": \"reuse\", \"timeout_s\": 1}"
	expect register-reuse-timeout PUT /functions/reto "$S/fn-reto.json" 201
	expect reuse-timeout POST /functions/reto/invoke "" 504 'timeout_s (1 s)'
	vm1=$(tr -d '\r' <"$S/reuse-timeout.hdr" | sed -n 's/^x-flint-vm-id: *//Ip')
	expect reuse-after-timeout POST /functions/reto/invoke "" 200 '^ok$'
	vm2=$(tr -d '\r' <"$S/reuse-after-timeout.hdr" | sed -n 's/^x-flint-vm-id: *//Ip')
	why=
	[ -n "$vm1" ] && [ -n "$vm2" ] || why="no X-Flint-VM-Id ('$vm1', '$vm2')"
	[ -z "$why" ] && [ "$vm1" = "$vm2" ] && why="VM $vm1, whose command timed out, served the next request"
	report serve-reuse-timeout-retires "$why" "$S/reuse-after-timeout.hdr"
	# A reuse VM that dies under its command: 502 with the reason, told
	# in the log too.
	fn lose '{"command": ["sh", "-c", "kill -9 $PPID"], "isolation": "reuse"}'
	expect register-lose PUT /functions/lose "$S/fn-lose.json" 201
	expect reuse-lost POST /functions/lose/invoke "" 502 \
		'connection was lost: lost the connection to the guest agent'
	why=
	grep -q "lose: request [0-9]*: the guest agent was not reached or its connection was lost: lost the connection" \
		"$S/serve.err" || why="no warning naming the lost agent in the log"
	report serve-reuse-lost-log "$why" "$S/serve.err"
	# A VM reset in place that crashes before its agent answers (its flint
	# gone, nothing sent): the request gets a fresh VM and its answer.
	fn again '{"command": ["sh", "-c", "echo again"], "min_warm": 0}'
	expect register-again-fn PUT /functions/again "$S/fn-again.json" 201
	: >"$S/crash-once"
	expect vm-restarted POST /functions/again/invoke "" 200 '^again$'
	why=
	[ -e "$S/crash-once" ] && why="no VM crashed"
	[ -z "$why" ] && ! grep -q "again: request [0-9]*: its VM crashed before the request reached it (guest triple fault" \
		"$S/serve.err" && why="no warning naming the crash in the log"
	report serve-vm-restart-log "$why" "$S/serve.err"
	expect vm-restart-metrics GET /metrics "" 200 \
		'^flint_serve_restarts_total{function="again",outcome="crash"} 1$'
	expect list GET /functions "" 200 '"name":"keep"'
	expect show GET /functions/echo "" 200 '"completed":3'
	expect metrics GET /metrics "" 200 'flint_serve_invocations_total{function="echo",outcome="ok"} 3'
	expect metrics-refused GET /metrics "" 200 'flint_serve_refused_total{function="other",reason="timeout"} 1'
	expect info GET / "" 200 '"per_request":"reset"'

	kill "$serve_pid"
	wait "$serve_pid"
	st=$?
	sleep 0.2
	why=
	[ "$st" = 0 ] || why="flint serve exited $st"
	left=$(pgrep -f "$FAKE" || true)
	[ -z "$why" ] && [ -n "$left" ] && why="processes left: $left"
	[ -z "$why" ] && [ -e "$S/st" ] && why="the state directory is still there"
	[ -z "$why" ] && [ -e "$S/s.sock" ] && why="the socket is still there"
	report serve-stop "$why" "$S/serve.err"

	# --per-request restore: a VM restored per request (a warm one first).
	FAKE_CRASH_ONCE=$S/crash-once "$FLINT" serve --listen "unix:$S/s.sock" \
		--state-dir "$S/st" --flint "$FAKE" --per-request restore \
		>"$S/serve2.out" 2>"$S/serve2.err" &
	serve_pid=$!
	i=0
	while [ ! -S "$S/s.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	expect restore-register PUT /functions/echo "$S/fn-echo.json" 201
	expect restore-warm POST /functions/echo/invoke "$S/in" 200 '^got:hello$' 'x-flint-warm: true'
	expect restore-cold POST /functions/echo/invoke "$S/in" 200 '^got:hello$' 'x-flint-exit-status: 0'
	expect restore-exit-3 POST /functions/nope/invoke "" 404
	expect restore-info GET / "" 200 '"per_request":"restore"'
	# A restored VM that crashes before the request reaches it (sent=0):
	# the request gets a fresh restore and its answer; one whose command
	# ran (the command's own 122, sent=1) is a 502, not run again.
	: >"$S/crash-once"
	expect restore-restarted POST /functions/echo/invoke "$S/in" 200 '^got:hello$' 'x-flint-warm: false'
	why=
	[ -e "$S/crash-once" ] && why="no VM crashed"
	[ -z "$why" ] && ! grep -q "its VM crashed before the request reached it (guest triple fault" \
		"$S/serve2.err" && why="no warning naming the crash in the log"
	report serve-restore-restart-log "$why" "$S/serve2.err"
	fn crash '{"command": ["sh", "-c", "echo ran >>'"$S"'/crash-runs; exit 122"]}'
	expect restore-crash-register PUT /functions/crash "$S/fn-crash.json" 201
	expect restore-crash POST /functions/crash/invoke "" 502 \
		'guest crashed (kernel panic, triple fault or KVM error): guest kernel panic: Kernel panic - not syncing: fake'
	why=
	[ "$(cat "$S/crash-runs")" = ran ] || why="the command ran $(wc -l <"$S/crash-runs") times"
	report serve-restore-crash-once "$why" "$S/serve2.err"
	expect restore-metrics GET /metrics "" 200 \
		'^flint_serve_restarts_total{function="echo",outcome="crash"} 1$'
	kill "$serve_pid"
	wait "$serve_pid"
	why=
	[ -z "$(pgrep -f "$FAKE" || true)" ] || why="processes left"
	report serve-restore-stop "$why" "$S/serve2.err"

	# A client that never reads its answer (held whole: 3 MB under an
	# --out-buffer of 8M, more than the socket takes) holds neither the VM
	# nor its place: with max_concurrency 1 the next request is answered
	# meanwhile, its VM reset while the first answer waits to be read.
	# Its --state-dir holds what a killed server left (bulk.1, the name
	# the first registration had there): the registration is not refused.
	mkdir -p "$S/st/bulk.1"
	"$FLINT" serve --listen "unix:$S/s.sock" --state-dir "$S/st" --flint "$FAKE" \
		--out-buffer 8M --queue-timeout 5 >"$S/serve3.out" 2>"$S/serve3.err" &
	serve_pid=$!
	i=0
	while [ ! -S "$S/s.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	fn bulk '{"command": ["head", "-c", "3000000", "/dev/zero"], "max_concurrency": 1}'
	expect slow-register PUT /functions/bulk "$S/fn-bulk.json" 201
	python3 - "$S/s.sock" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b"POST /functions/bulk/invoke HTTP/1.1\r\nHost: flint\r\nContent-Length: 0\r\n\r\n")
time.sleep(30)
EOF
	slow=$!
	sleep 1
	expect slow-reader-holds-no-vm POST /functions/bulk/invoke "" 200
	kill "$slow"
	kill "$serve_pid"
	wait "$serve_pid" "$slow"

	# A server killed outright (SIGKILL, the OOM killer) leaves no VM
	# running: a reuse VM too ends when its control socket's other end
	# goes.
	"$FLINT" serve --listen "unix:$S/s.sock" --state-dir "$S/st4" --flint "$FAKE" \
		>"$S/serve4.out" 2>"$S/serve4.err" &
	serve_pid=$!
	i=0
	while [ ! -S "$S/s.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	expect killed-register PUT /functions/keep "$S/fn-keep.json" 201
	expect killed-reuse POST /functions/keep/invoke "" 200 '^kept$'
	kill -KILL "$serve_pid"
	wait "$serve_pid" 2>/dev/null
	i=0
	while pgrep -f "$S/st4/" >/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	why=
	pgrep -f "$S/st4/" >/dev/null && why="VMs left running: $(pgrep -af "$S/st4/")"
	pkill -KILL -f "$S/st4/"
	report serve-killed-leaves-no-vm "$why" "$S/serve4.err"
fi

# --listen where something else is: a file is refused and kept; a live
# server's socket is neither replaced by a second server nor removed by
# one that fails before it listens (--jail missing), and its own server
# removes it when it stops.
listen_refused() { # NAME MESSAGE ARGS...: exit 125 with MESSAGE
	name=$1 msg=$2
	shift 2
	st=0
	"$FLINT" serve --state-dir "$S/lst" --flint "$FAKE" "$@" >/dev/null 2>"$S/l.err" || st=$?
	why=
	[ "$st" = 125 ] || why="exit $st, expected 125"
	[ -z "$why" ] && ! grep -qF -- "$msg" "$S/l.err" && why="stderr lacks '$msg'"
}
echo keep >"$S/notes.txt"
listen_refused file "notes.txt: the file exists and is not a socket" --listen "unix:$S/notes.txt"
[ -z "$why" ] && [ "$(cat "$S/notes.txt" 2>/dev/null)" != keep ] && why="the file was removed"
report serve-listen-file-kept "$why" "$S/l.err"
"$FLINT" serve --listen "unix:$S/a.sock" --state-dir "$S/ast" --flint "$FAKE" \
	>/dev/null 2>"$S/a.err" &
a_pid=$!
i=0
while [ ! -S "$S/a.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
listen_refused live "a.sock: another program is listening on it" --listen "unix:$S/a.sock"
[ -z "$why" ] && [ ! -S "$S/a.sock" ] && why="the live server's socket went"
report serve-listen-live-kept "$why" "$S/l.err"
listen_refused failed-start "--jail /nonexistent/flint-jail" --listen "unix:$S/a.sock" \
	--jail /nonexistent/flint-jail --uid-range 100-200
[ -z "$why" ] && [ ! -S "$S/a.sock" ] && why="a server that never listened removed the socket"
[ -z "$why" ] && command -v curl >/dev/null &&
	! curl -s --unix-socket "$S/a.sock" -o /dev/null http://flint/functions &&
	why="the live server no longer answers"
report serve-listen-failed-start-kept "$why" "$S/l.err"
# A port out of range (getaddrinfo took 99999 for 34463, and the log said
# 99999), an option at the end without its value (called unknown), a
# state directory that is a file (accepted, every registration failed).
listen_refused port "--listen 127.0.0.1:99999: the port is a number from 0 to 65535" \
	--listen 127.0.0.1:99999
report serve-listen-port-out-of-range "$why" "$S/l.err"
listen_refused novalue "flint serve: --listen needs a value" --listen
report serve-option-needs-a-value "$why" "$S/l.err"
listen_refused statefile "--state-dir $S/notes.txt: not a directory" --listen "unix:$S/b.sock" \
	--state-dir "$S/notes.txt"
report serve-state-dir-not-a-directory "$why" "$S/l.err"
kill "$a_pid"
wait "$a_pid"
why=
[ -e "$S/a.sock" ] && why="the server left its socket"
report serve-listen-own-removed "$why" "$S/a.err"

# --jail's options: refused, naming the problem, before anything starts.
# serve_refused NAME MESSAGE ARGS...: exit 125 with MESSAGE on stderr.
serve_refused() {
	name=$1 msg=$2
	shift 2
	st=0
	"$FLINT" serve --listen "unix:$S/j.sock" --state-dir "$S/jst" "$@" >"$S/j.out" 2>"$S/j.err" ||
		st=$?
	why=
	[ "$st" = 125 ] || why="exit $st, expected 125"
	[ -z "$why" ] && ! grep -qF -- "$msg" "$S/j.err" && why="stderr lacks '$msg'"
	[ -z "$why" ] && [ -e "$S/jst" ] && why="the state directory was made"
	report "serve-$name" "$why" "$S/j.err"
}
serve_refused jail-no-range "--jail needs --uid-range FIRST-LAST" --jail /bin/true
serve_refused jail-bad-range "--uid-range 5-4: expected FIRST-LAST" --jail /bin/true --uid-range 5-4
serve_refused jail-zero-uid "--uid-range 0-9: expected FIRST-LAST" --jail /bin/true --uid-range 0-9
serve_refused jail-only "--cgroup go with --jail" --uid-range 100-200
serve_refused max-vms-plus "--max-vms +3: expected a number from 1 to 100000" --max-vms +3
serve_refused max-vms-space "--max-vms  3: expected a number from 1 to 100000" --max-vms " 3"
serve_refused jail-cgroup "--cgroup memory: expected FILE=VALUE" --jail /bin/true \
	--uid-range 100-200 --cgroup memory
serve_refused jail-small-range "holds 2 uids: one per VM needs --max-vms (64) + 1" \
	--jail /bin/true --uid-range 100-101
serve_refused jail-missing "--jail /nonexistent/flint-jail: No such file or directory" \
	--jail /nonexistent/flint-jail --uid-range 100-200
