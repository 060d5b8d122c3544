#!/usr/bin/env python3
"""A stand-in for a running flint VM's vsock device and guest agent, for
tests/smoke/attach.sh: listens on the Unix socket argv[1], takes
"CONNECT 52\\n", answers "OK <port>\\n" and serves one agent request per
connection (rootfs/agent/proto.h): it writes back what it was asked (argv,
environment, working directory, stdin) on STDOUT and exits with the status
the command "exit N" names (0 otherwise). argv[2] "drop": close each
connection after the OK line instead (a VM gone); "exec": run the command
in this host's shell, as the real agent runs it in the guest (stdin, stdout,
stderr, status, the request's timeout), for tests/smoke/serve.sh's
stand-in VMs. Touches argv[1] + ".ready" once it listens (but in "exec"
mode, whose VM sockets flint serve removes); serves until killed, each
connection on a thread of its own."""
import os
import socket
import struct
import subprocess
import sys
import threading

REQUEST, STDIN, STDIN_EOF, STDOUT, STDERR, EXIT = 1, 2, 3, 16, 17, 18


def frame(kind, payload):
    return struct.pack("<BBHI", kind, 0, 1, len(payload)) + payload


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        got = conn.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def read_frame(conn):
    kind, _, _, length = struct.unpack("<BBHI", read_exact(conn, 8))
    return kind, read_exact(conn, length) if length else b""


def run(conn, argv, env, cwd, timeout_ms, flags):
    """The "exec" mode: the command for real, its streams and status."""
    data = b""
    if flags & 1:
        while True:
            kind, chunk = read_frame(conn)
            if kind == STDIN_EOF:
                break
            data += chunk
    environ = dict(os.environ)
    for e in env:
        k, _, v = e.decode().partition("=")
        environ[k] = v
    try:
        p = subprocess.run([a.decode() for a in argv], input=data, capture_output=True,
                           cwd=cwd.decode() or "/", env=environ,
                           timeout=timeout_ms / 1000 if timeout_ms else None)
    except subprocess.TimeoutExpired:
        conn.sendall(frame(EXIT, struct.pack("<Ii", 2, 0)))
        return
    for kind, out in ((STDOUT, p.stdout), (STDERR, p.stderr)):
        for i in range(0, len(out), 65536):  # AGENT_DATA_MAX a frame
            conn.sendall(frame(kind, out[i:i + 65536]))
    if p.returncode < 0:
        conn.sendall(frame(EXIT, struct.pack("<Ii", 1, -p.returncode)))
    else:
        conn.sendall(frame(EXIT, struct.pack("<Ii", 0, p.returncode)))


def serve(conn, mode):
    drop = mode == "drop"
    line = b""
    while not line.endswith(b"\n"):
        line += read_exact(conn, 1)
    if line != b"CONNECT 52\n":
        return
    conn.sendall(b"OK 1073741824\n")
    if drop:
        return
    kind, p = read_frame(conn)
    if kind != REQUEST:
        return
    timeout_ms, flags, argc, envc = struct.unpack("<IIII", p[:16])
    words = p[16:].split(b"\0")[: argc + envc + 1]
    argv, env, cwd = words[:argc], words[argc:argc + envc], words[-1]
    if mode == "exec":
        run(conn, argv, env, cwd, timeout_ms, flags)
        return
    out = b"argv=%s env=%s cwd=%s timeout_ms=%d\n" % (
        b",".join(argv), b",".join(env), cwd, timeout_ms)
    conn.sendall(frame(STDOUT, out))
    if flags & 1:
        while True:
            kind, data = read_frame(conn)
            if kind == STDIN_EOF:
                break
            conn.sendall(frame(STDOUT, b"stdin=" + data))
    status = int(argv[1]) if len(argv) == 2 and argv[0] == b"exit" else 0
    conn.sendall(frame(EXIT, struct.pack("<Ii", 0, status)))


def one(conn, mode):
    try:
        serve(conn, mode)
    except (EOFError, OSError):
        pass
    conn.close()


def main():
    path, mode = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    if mode != "exec":
        open(path + ".ready", "w").close()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=one, args=(conn, mode), daemon=True).start()


if __name__ == "__main__":
    main()
