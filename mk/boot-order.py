#!/usr/bin/env python3
"""mk/boot-order.py: write the linker script that places the input sections
a flint launch touches first (mk/boot-order.sh runs it).

    boot-order.py MAP OBJDIR TIER1 [TIER2 ...]

MAP is the link map of the profiled flint, whose .text and .rodata input
sections each start a page (SUBALIGN(4096)); OBJDIR the prefix of its
objects' copies, taken off their names; each TIER a comma-separated list of
pagemap dumps (a "base 0xADDR" line, then one 64-bit /proc/PID/pagemap
entry per page of the image, in hex). A section is touched when a page it
covers is resident. Tier 1's sections come first, then what each further
tier adds; within a tier, in link order.
"""
import re
import sys

OUTPUTS = ((".text", ".boot.text", "INSERT BEFORE .text;"),
           # After .rodata, not before: before it would be in the
           # executable segment, ahead of the page alignment that opens
           # the read-only one.
           (".rodata", ".boot.rodata", "INSERT AFTER .rodata;"))
PRESENT = 1 << 63


def input_sections(path):
    """(output section, input section, address, size, file) of the map's
    memory map part."""
    with open(path) as f:
        lines = f.read().split("\n")
    try:
        lines = lines[lines.index("Linker script and memory map"):]
    except ValueError:
        sys.exit("boot-order.py: %s is not a GNU ld map" % path)
    out, found = None, []
    for i, line in enumerate(lines):
        m = re.match(r"^(\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
        if m:
            out = m.group(1)
            continue
        # An input section: " NAME ADDR SIZE FILE", or a long NAME alone
        # with the rest on the next line.
        m = re.match(r"^ (\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", line)
        if not m:
            n = re.match(r"^ (\.\S+)$", line)
            r = i + 1 < len(lines) and re.match(
                r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", lines[i + 1])
            if not (n and r):
                continue
            name, addr, size, file = n.group(1), r.group(1), r.group(2), r.group(3)
        else:
            name, addr, size, file = m.groups()
        found.append((out, name, int(addr, 16), int(size, 16), file))
    return found


def resident(paths):
    pages = set()
    for path in paths:
        with open(path) as f:
            words = f.read().split()
        if len(words) < 2 or words[0] != "base":
            sys.exit("boot-order.py: %s: no base line" % path)
        base = int(words[1], 16)
        for i, w in enumerate(words[2:]):
            if int(w, 16) & PRESENT:
                pages.add(base + i * 4096)
    return pages


def pattern(file, objdir):
    """The input file as the real link's script matches it."""
    m = re.match(r"^(.*/)?([^/]+\.a)\((.+)\)$", file)
    if m:
        return "*/%s:%s" % (m.group(2), m.group(3))
    if file.startswith(objdir):
        return "*/" + file[len(objdir):]
    return "*/" + file.rsplit("/", 1)[-1]


def touched(sec, pages):
    _, _, addr, size, _ = sec
    page = addr & ~4095
    while page < addr + size:
        if page in pages:
            return True
        page += 4096
    return False


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    secs = [s for s in input_sections(sys.argv[1]) if s[3] > 0]
    objdir = sys.argv[2]
    tiers = [resident(t.split(",")) for t in sys.argv[3:]]
    print("/* mk/boot-order.ld: written by mk/boot-order.sh (make boot-order);")
    print(" * do not edit. The input sections a flint launch touches, placed first")
    print(" * so that fault-around maps fewer pages of flint's image. */")
    for out, boot, insert in OUTPUTS:
        taken = set()
        print("SECTIONS\n{\n  %s :\n  {" % boot)
        for n, pages in enumerate(tiers, 1):
            print("    /* tier %d */" % n)
            for s in secs:
                key = (s[1], s[4])
                if s[0] == out and key not in taken and touched(s, pages):
                    taken.add(key)
                    print("    %s(%s)" % (pattern(s[4], objdir), s[1]))
        print("  }\n}\n%s" % insert)


main()
