#!/bin/bash
# bench/serve/selftest.sh SERVEBENCH: checks servebench's http and exec
# modes on any host, against a fake flint serve (python3, on a Unix
# socket): answers counted and compared, connections kept alive, a latency
# that runs to the whole answer, refused and wrong answers counted as
# errors.
set -u
S=$1
T=$(mktemp -d)
fpid=
trap '[ -n "$fpid" ] && kill $fpid 2>/dev/null; rm -rf "$T"' EXIT
fail=0
check() { # NAME EXPECTED-REGEX OUTPUT
	if printf '%s\n' "$3" | grep -Eq "$2"; then echo "ok   $1"; else
		echo "FAIL $1: expected /$2/ in:"; printf '%s\n' "$3"; fail=1; fi
}

# The fake: every POST answered "pong " and its body, or as FAKE says:
# wrong (pong y), 500, slow (the body 60 ms after the headers), chunked
# (as flint serve streams), close (Connection: close, then closed). Each
# connection and request logged, one line each, in $T/log.
cat >"$T/fake-serve" <<'EOF'
#!/usr/bin/env python3
import os, socketserver, sys, threading, time
mode, log = os.environ.get("FAKE", ""), open(sys.argv[2], "a", buffering=1)
lock = threading.Lock()
def note(s):
    with lock: log.write(s + "\n")
class H(socketserver.StreamRequestHandler):
    def handle(self):
        note("conn")
        while (line := self.rfile.readline()):
            method, path, _ = line.decode().split(" ", 2)
            n = 0
            while (h := self.rfile.readline()) not in (b"\r\n", b""):
                if h.lower().startswith(b"content-length:"): n = int(h.split(b":")[1])
            body = self.rfile.read(n)
            note(f"req {method} {path} {body!r}")
            out, status = b"pong " + body, b"200 OK"
            if mode == "wrong": out = b"pong y\n"
            if mode == "500": status = b"500 Internal Server Error"
            head = b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(out)
            if mode == "slow":
                self.wfile.write(head); self.wfile.flush(); time.sleep(0.06); head = b""
            if mode == "chunked":
                head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (out[:3], out[3:]))
                out += b"0\r\nX-Flint-Exit-Status: 0\r\n\r\n"
            if mode == "close":
                head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
            self.wfile.write(head + out); self.wfile.flush()
            if mode == "close": return
class Srv(socketserver.ThreadingUnixStreamServer): daemon_threads = True
Srv(sys.argv[1], H).serve_forever()
EOF
chmod +x "$T/fake-serve"
fake() { # MODE: a fresh fake on $T/s.sock, its log emptied
	[ -n "$fpid" ] && kill $fpid && wait $fpid 2>/dev/null
	rm -f "$T/s.sock"
	: >"$T/log"
	FAKE=$1 "$T/fake-serve" "$T/s.sock" "$T/log" &
	fpid=$!
	for _ in $(seq 100); do [ -S "$T/s.sock" ] && return; sleep 0.05; done
	echo "FAIL the fake did not start"
	exit 1
}
http() { "$S" http -s "$T/s.sock" -u /functions/f/invoke -b 'x
' "$@" 2>&1; }

fake ok
out=$(http -c 2 -n 10 -w 2 -e 'pong x
')
check "http: all answered" '^mode=http c=2 n=10 ok=10 errors=0 wall_s=[0-9.]+ rps=[0-9.]+ p50_ms=[0-9.]+ p90_ms=[0-9.]+ p99_ms=[0-9.]+ min_ms=[0-9.]+ max_ms=[0-9.]+$' "$out"
check "http: each POST to the path with the body" "^12$" "$(grep -c "^req POST /functions/f/invoke b'x\\\\n'$" "$T/log")"
# A lane that took no request (the other took them all first) opened none.
check "http: a connection a lane a phase at most, kept alive" '^[234]$' "$(grep -c '^conn$' "$T/log")"
out=$(http -n 3 -e 'pong') # the whole body, not a part of it
check "http: EXPECT is the whole body" 'ok=0 errors=3' "$out"
check "http: the whole body said" "servebench: status 200, body 'pong x" "$out"

fake wrong
out=$(http -n 4 -e 'pong x
')
check "http: a wrong body is an error" 'ok=0 errors=4' "$out"
check "http: the wrong body said" "servebench: status 200, body 'pong y" "$out"

fake 500
out=$(http -n 3)
check "http: a 500 is an error" 'ok=0 errors=3' "$out"
check "http: the status said" 'servebench: status 500' "$out"

fake slow
out=$(http -n 3 -e 'pong x
')
check "http: slow answers all answered" 'ok=3 errors=0' "$out"
check "http: latency runs to the whole answer" ' min_ms=(6[0-9]|[7-9][0-9]|[1-9][0-9][0-9])\.[0-9] ' "$out"

fake chunked
out=$(http -n 3 -e 'pong x
')
check "http: chunked answers read" 'ok=3 errors=0' "$out"

fake close
out=$(http -n 4 -e 'pong x
')
check "http: Connection: close, connected again" 'ok=4 errors=0' "$out"
check "http: a connection an answer" '^4$' "$(grep -c '^conn$' "$T/log")"

kill $fpid && wait $fpid 2>/dev/null
fpid=
out=$(http -n 2)
check "http: no server counted" 'ok=0 errors=2' "$out"
check "http: no server said" "servebench: cannot connect to $T/s.sock" "$out"

# exec: a process per request, {n} its number (after the warm-up's).
# shellcheck disable=SC2016 # $l is the command's
out=$("$S" exec -n 3 -w 1 -b 'x
' -e 'pong x' -- sh -c 'read l; echo pong $l; echo {n} >>'"$T"'/ns' 2>&1)
check "exec: all answered" '^mode=exec c=1 n=3 ok=3 errors=0 ' "$out"
check "exec: {n} numbered" '^0 1 2 3 $' "$(sort -n "$T/ns" | tr '\n' ' ')"
out=$("$S" exec -n 2 -- sh -c 'exit 3' 2>&1)
check "exec: a failed command is an error" 'ok=0 errors=2' "$out"
check "exec: its status said" 'servebench: sh: status 3' "$out"
exit $fail
