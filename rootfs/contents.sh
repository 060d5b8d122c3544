#!/bin/bash
# What goes into flint's guest root file system, as a gen_init_cpio list on
# stdout (the kernel's usr/gen_init_cpio format: dir, file, slink, nod). Both
# images read this one list, so they hold the same files:
#   mkinitramfs.sh  packs it into the initramfs (cpio)
#   mkext4.sh       copies it into an ext4 image (root=/dev/vda); it skips the
#                   device nodes, which devtmpfs provides on a real root
#
#   rootfs/contents.sh INIT BUSYBOX AGENT
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 INIT BUSYBOX AGENT" >&2; exit 1; }
INIT=$1 BUSYBOX=$2 AGENT=$3
HERE=$(cd "$(dirname "$0")" && pwd)

for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /tmp /run \
	/root /mnt /etc; do
	echo "dir $d 0755 0 0"
done
echo "nod /dev/console 0600 0 0 c 5 1"
echo "nod /dev/null 0666 0 0 c 1 3"
echo "file /init $INIT 0755 0 0"
# Booted from a disk without init=, the kernel tries /sbin/init first: make
# that flint's init rather than busybox's.
echo "slink /sbin/init /init 0777 0 0"
# The guest agent of `flint run`, which /init starts on `flint.agent`.
echo "file /sbin/flint-agent $AGENT 0755 0 0"
echo "file /bin/busybox $BUSYBOX 0755 0 0"
# One symlink per applet, where busybox itself would install it.
"$BUSYBOX" --list-full | sort -u | while read -r applet; do
	case $applet in bin/busybox | sbin/init) continue ;; esac
	echo "slink /$applet /bin/busybox 0777 0 0"
done
for f in passwd group hostname; do
	echo "file /etc/$f $HERE/etc/$f 0644 0 0"
done
# Resolvers read the DNS server the kernel's ip= names (flint's --net user
# gives 10.0.2.3, passt's forwarder) from /proc/net/pnp: a read-only root
# needs no file of its own. Without ip= it names none.
echo "slink /etc/resolv.conf /proc/net/pnp 0777 0 0"
