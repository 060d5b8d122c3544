#!/usr/bin/env python3
"""A stand-in for the flint that `flint bench --flint PATH` launches, for
tests/smoke/bench.sh: flint bench's logic (options, the interleaved loop,
warm-up, the outputs, --baseline's exit status) without a guest. It takes
flint's options as bench/vmm.c writes them:
  run --kernel K ... --save-snapshot S --save-mem M   writes S and M, exits 0
  run --phase-fd 3 --kernel K ... -- COMMAND          a boot's phases on fd 3,
                                                      the agent's included
  run --phase-fd 3 --restore S --mem-file M|--uffd-sock U -- COMMAND
                                                      a restore's phases
  --phase-fd 3 --kernel K --drive ... --cmdline "... -- COMMAND"
                                                      a boot as the peers':
      its phases to init on fd 3, then init's line and the command's
      words on the console (stdout), as real flint's guest init prints them
Phases come FAKE_BENCH_STEP_MS (default 1) apart, CLOCK_MONOTONIC in
microseconds as flint's own; then an exits line (a boot as the peers':
after the output, at the VM's end), the command's output on stdout (echo's
words, any other command's own words), exit 0.
Each call appends its argv to $FAKE_BENCH_LOG if set."""
import os
import sys
import time

BOOT = ["process", "vm-created", "vcpus-started", "kernel-entry", "init", "agent-ready",
        "first-output"]
BOOT_AS_PEERS = BOOT[:5]
RESTORE = ["process", "state-read", "memory-mapped", "resumed", "first-response"]


def main():
    args = sys.argv[1:]
    log = os.environ.get("FAKE_BENCH_LOG")
    if log:
        with open(log, "a") as f:
            f.write(" ".join(args) + "\n")
    cmd = args[args.index("--") + 1:] if "--" in args else []
    opts = args[:args.index("--")] if "--" in args else args
    if "--save-snapshot" in opts:
        for o in ("--save-snapshot", "--save-mem"):
            open(opts[opts.index(o) + 1], "w").close()
        return 0
    if "--phase-fd" not in opts:
        print("fake flint: no --phase-fd", file=sys.stderr)
        return 125
    as_peers = not args or args[0] != "run"
    if as_peers:
        line = opts[opts.index("--cmdline") + 1]
        cmd = line.split(" -- ", 1)[1].split() if " -- " in line else []
    step = float(os.environ.get("FAKE_BENCH_STEP_MS", "1")) / 1000
    ph = os.fdopen(int(opts[opts.index("--phase-fd") + 1]), "w")
    for p in RESTORE if "--restore" in opts else BOOT_AS_PEERS if as_peers else BOOT:
        time.sleep(step)
        ph.write("phase %s %d\n" % (p, time.monotonic_ns() // 1000))
        ph.flush()
    exits = "exits exits=100 io_exits=40 mmio_exits=30\n"
    if not as_peers:
        ph.write(exits)
        ph.flush()
    if as_peers:
        print("flint-init: ready", flush=True)
    time.sleep(step)
    # What the command prints: echo's words, else the words themselves.
    print(" ".join(cmd[1:] if cmd[:1] == ["echo"] else cmd), flush=True)
    if as_peers:
        ph.write(exits)
    ph.close()
    return 0


sys.exit(main())
