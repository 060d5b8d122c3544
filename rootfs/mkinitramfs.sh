#!/bin/bash
# Pack flint's guest initramfs without needing root: write a gen_init_cpio
# list (the kernel's usr/gen_init_cpio can add device nodes such as
# /dev/console, which the kernel opens for init's stdio before /init runs)
# and gzip it (the guest kernel has RD_GZIP only).
#
#   rootfs/mkinitramfs.sh OUT.cpio.gz GEN_INIT_CPIO INIT BUSYBOX
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: $0 OUT.cpio.gz GEN_INIT_CPIO INIT BUSYBOX" >&2; exit 1; }
OUT=$1 GEN=$2 INIT=$3 BUSYBOX=$4
HERE=$(cd "$(dirname "$0")" && pwd)
LIST=$OUT.list

{
	for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /tmp /run \
		/root /etc; do
		echo "dir $d 0755 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /init $INIT 0755 0 0"
	echo "file /bin/busybox $BUSYBOX 0755 0 0"
	# One symlink per applet, where busybox itself would install it.
	"$BUSYBOX" --list-full | sort -u | while read -r applet; do
		[ "$applet" = bin/busybox ] && continue
		echo "slink /$applet /bin/busybox 0777 0 0"
	done
	for f in passwd group hostname; do
		echo "file /etc/$f $HERE/etc/$f 0644 0 0"
	done
} >"$LIST"

# -t: a fixed mtime for dirs, nodes and links; -n: no name or time in gzip.
"$GEN" -t 0 "$LIST" | gzip -9 -n >"$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
echo "rootfs: $OUT ($(stat -c %s "$OUT") bytes, $(grep -c '^slink' "$LIST") applets)"
