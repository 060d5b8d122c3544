#!/bin/bash
# Pack flint's guest initramfs without needing root: contents.sh writes a
# gen_init_cpio list (the kernel's usr/gen_init_cpio can add device nodes such
# as /dev/console, which the kernel opens for init's stdio before /init runs)
# and this gzips the archive (the guest kernel has RD_GZIP only).
#
#   rootfs/mkinitramfs.sh OUT.cpio.gz GEN_INIT_CPIO INIT BUSYBOX AGENT
set -euo pipefail

[ $# -eq 5 ] || { echo "usage: $0 OUT.cpio.gz GEN_INIT_CPIO INIT BUSYBOX AGENT" >&2; exit 1; }
OUT=$1 GEN=$2 INIT=$3 BUSYBOX=$4 AGENT=$5
HERE=$(cd "$(dirname "$0")" && pwd)
LIST=$OUT.list

"$HERE/contents.sh" "$INIT" "$BUSYBOX" "$AGENT" >"$LIST"

# -t: a fixed mtime for dirs, nodes and links; -n: no name or time in gzip.
"$GEN" -t 0 "$LIST" | gzip -9 -n >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
echo "rootfs: $OUT ($(stat -c %s "$OUT") bytes, $(grep -c '^slink' "$LIST") applets)"
