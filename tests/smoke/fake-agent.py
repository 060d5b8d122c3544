#!/usr/bin/env python3
"""A stand-in for a running flint VM's vsock device and guest agent, for
tests/smoke/attach.sh: listens on the Unix socket argv[1], takes
"CONNECT 52\\n", answers "OK <port>\\n" and serves one agent request per
connection (rootfs/agent/proto.h): it writes back what it was asked (argv,
environment, working directory, stdin) on STDOUT and exits with the status
the command "exit N" names (0 otherwise). argv[2] "drop": close each
connection after the OK line instead (a VM gone). Touches argv[1] + ".ready"
once it listens; serves until killed."""
import os
import socket
import struct
import sys

REQUEST, STDIN, STDIN_EOF, STDOUT, EXIT = 1, 2, 3, 16, 18


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


def serve(conn, drop):
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


def main():
    path, drop = sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "drop"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    open(path + ".ready", "w").close()
    while True:
        conn, _ = s.accept()
        try:
            serve(conn, drop)
        except (EOFError, OSError):
            pass
        conn.close()


if __name__ == "__main__":
    main()
