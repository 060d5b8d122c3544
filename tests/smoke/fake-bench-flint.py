#!/usr/bin/env python3
"""A stand-in for the flint that `flint bench --flint PATH` launches, for
tests/smoke/bench.sh: flint bench's logic (options, the interleaved loop,
warm-up, the outputs, --baseline's exit status) without a guest. It takes
flint run's options as bench/vmm.c writes them:
  run --kernel K ... --save-snapshot S --save-mem M   writes S and M, exits 0
  run --phase-fd 3 --kernel K ... -- COMMAND          a boot's phases on fd 3
  run --phase-fd 3 --restore S --mem-file M|--uffd-sock U -- COMMAND
                                                      a restore's phases
Phases come FAKE_BENCH_STEP_MS (default 1) apart, CLOCK_MONOTONIC in
microseconds as flint's own; then an exits line, the command's words on
stdout, exit 0. Each call appends its argv to $FAKE_BENCH_LOG if set."""
import os
import sys
import time

BOOT = ["process", "vm-created", "vcpus-started", "kernel-entry", "init", "agent-ready",
        "first-output"]
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
    step = float(os.environ.get("FAKE_BENCH_STEP_MS", "1")) / 1000
    lines = []
    for p in RESTORE if "--restore" in opts else BOOT:
        time.sleep(step)
        lines.append("phase %s %d\n" % (p, time.monotonic_ns() // 1000))
    lines.append("exits exits=100 io_exits=40 mmio_exits=30\n")
    with os.fdopen(int(opts[opts.index("--phase-fd") + 1]), "w") as ph:
        ph.write("".join(lines))
    print(" ".join(cmd))
    return 0


sys.exit(main())
