#!/bin/bash
# bench/api/selftest.sh APIBENCH: checks apibench's cli, api and table logic
# on any host, against fakes (python3 for the API server): a canned
# command-line boot, an API-driven boot whose numbers are known, a refused
# InstanceStart and a flint that never logs its launch instant.
set -u
A=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # NAME EXPECTED-REGEX OUTPUT
	if printf '%s\n' "$3" | grep -Eq "$2"; then echo "ok   $1"; else
		echo "FAIL $1: expected /$2/ in:"; printf '%s\n' "$3"; fail=1; fi
}

# cli: the boot time is the "guest boot time" line flint prints on stderr.
out=$("$A" cli -- sh -c 'echo "flint: guest boot time: 123456 us (123 ms) since launch" >&2' 2>&1)
check "cli parses the boot time" '^run mode=cli ms=123\.456 status=0$' "$out"
out=$("$A" cli -- sh -c 'echo "flint: no KVM" >&2; exit 125' 2>&1)
check "cli reports a boot without the line" 'run mode=cli ms=-1\.000 status=125' "$out"
check "cli shows flint's stderr" 'flint: no KVM' "$out"

# api: a fake flint that answers every PUT with 204 (or 400 for
# InstanceStart when FAKE_REFUSE is set), logs a launch instant 5 ms before
# its InstanceStart and a guest boot time of 105 ms: the API boot is then
# 100 ms (to the fake's clock; the tool's t_send is taken a little earlier).
cat >"$T/fake-flint" <<'EOF'
#!/usr/bin/env python3
import os, socket, sys, time
sock = sys.argv[sys.argv.index("--api-sock") + 1]
s = socket.socket(socket.AF_UNIX); s.bind(sock); s.listen(1)
c, _ = s.accept(); f = c.makefile("rb")
while True:
    line = f.readline()
    if not line: sys.exit(1)
    method, path, _ = line.decode().split(" ", 2)
    n = 0
    while (h := f.readline()) not in (b"\r\n", b""):
        if h.lower().startswith(b"content-length:"): n = int(h.split(b":")[1])
    body = f.read(n).decode()
    if path == "/actions":
        if os.environ.get("FAKE_REFUSE"):
            m = b'{"fault_message":"no KVM here"}'
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(m) + m)
            time.sleep(30)
        t = time.monotonic_ns()
        c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        if not os.environ.get("FAKE_QUIET"):
            print(f"flint: launched at monotonic {t - 5000000} ns", file=sys.stderr)
        print("flint: guest boot time: 105000 us (105 ms) since launch", file=sys.stderr)
        sys.exit(0)
    assert ("kernel_image_path" in body) if path == "/boot-source" else True
    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
EOF
chmod +x "$T/fake-flint"
out=$("$A" api -t 10 -k /k -i /i -- "$T/fake-flint" 2>&1)
check "api computes InstanceStart to init" '^run mode=api ms=100\.[0-9]+ start_ms=[0-9.]+ status=0$' "$out"
out=$(FAKE_REFUSE=1 "$A" api -t 10 -k /k -- "$T/fake-flint" 2>&1)
check "api reports a refused InstanceStart" 'PUT /actions answered 400: .*no KVM here' "$out"
check "api marks the refused run failed" 'run mode=api ms=-1\.000' "$out"
out=$(FAKE_QUIET=1 "$A" api -t 10 -k /k -- "$T/fake-flint" 2>&1)
check "api asks for --verbose" 'no "launched at monotonic" line: run flint with --verbose' "$out"

# table: medians and the ratio; a failed run counted, not summarized.
printf 'run mode=cli ms=100 status=0\nrun mode=api ms=90 start_ms=1 status=0\nrun mode=cli ms=200 status=0\nrun mode=api ms=110 start_ms=3 status=0\nrun mode=cli ms=300 status=0\nrun mode=api ms=-1 start_ms=-1 status=1\n' >"$T/runs"
out=$("$A" table "$T/runs")
check "table: cli median" 'boot ms +cli +3 runs +median +200\.00' "$out"
check "table: api median" 'boot ms +api +2 runs +median +100\.00' "$out"
check "table: ratio" 'api/cli of the medians: 0\.500' "$out"
check "table: failed runs" '1 runs failed' "$out"
exit $fail
