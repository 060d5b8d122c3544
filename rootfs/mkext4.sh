#!/bin/bash
# Build flint's guest root file system as an ext4 image, for booting from a
# virtio-blk drive (root=/dev/vda rw, no initrd). Same files as the initramfs
# (contents.sh); no root privileges or loop mounts: mke2fs -d copies a staging
# folder in, debugfs then pins owners and times.
#
#   rootfs/mkext4.sh OUT.ext4 INIT BUSYBOX AGENT [SIZE]      (SIZE default 64M)
#
# Reproducible: the same inputs give the same bytes. The UUID and the
# directory hash seed are fixed, every inode's owner is 0:0 and its times are
# SOURCE_DATE_EPOCH (default 0), and E2FSPROGS_FAKE_TIME fixes the
# superblock's (to the same, or 1 s). Device nodes are left out: the kernel mounts devtmpfs on /dev
# of a disk root (CONFIG_DEVTMPFS_MOUNT), and /init mounts it otherwise.
set -euo pipefail

[ $# -ge 4 ] && [ $# -le 5 ] || { echo "usage: $0 OUT.ext4 INIT BUSYBOX AGENT [SIZE]" >&2; exit 1; }
OUT=$1 INIT=$2 BUSYBOX=$3 AGENT=$4 SIZE=${5:-64M}
HERE=$(cd "$(dirname "$0")" && pwd)
EPOCH=${SOURCE_DATE_EPOCH:-0}
# libext2fs takes E2FSPROGS_FAKE_TIME=0 for unset (the clock's time).
FAKE_TIME=$((EPOCH > 0 ? EPOCH : 1))
# Fixed, so two builds of the same content are byte-identical.
UUID=f11e7000-0000-4000-8000-000000000001
HASH_SEED=f11e7000-0000-4000-8000-000000000002
STAGE=$OUT.d
CMDS=$OUT.debugfs

for t in mke2fs debugfs e2fsck; do
	command -v $t >/dev/null || PATH=$PATH:/sbin:/usr/sbin
	command -v $t >/dev/null || { echo "rootfs: $t not found (apt-get install e2fsprogs)" >&2; exit 1; }
done

rm -rf "$STAGE"
mkdir -p "$STAGE"
: >"$CMDS"
# pin PATH: owner root and fixed times for one inode, in debugfs's syntax.
pin() {
	printf 'sif "%s" %s\n' "$1" "uid 0" "$1" "gid 0" "$1" "atime $EPOCH" "$1" "mtime $EPOCH" \
		"$1" "ctime $EPOCH" "$1" "crtime $EPOCH" >>"$CMDS"
}
pin /
pin /lost+found
"$HERE/contents.sh" "$INIT" "$BUSYBOX" "$AGENT" | while read -r kind path a b _; do
	case $kind in
	dir) # dir PATH MODE UID GID
		mkdir -p "$STAGE$path"
		chmod "$a" "$STAGE$path"
		;;
	file) # file PATH SOURCE MODE UID GID
		cp "$a" "$STAGE$path"
		chmod "$b" "$STAGE$path"
		;;
	slink) # slink PATH TARGET MODE UID GID
		ln -s "$a" "$STAGE$path" ;;
	nod) continue ;;
	*) echo "rootfs: unknown entry '$kind' in contents.sh" >&2; exit 1 ;;
	esac
	pin "$path"
done

rm -f "$OUT.tmp"
# mke2fs discards (punches) an existing file, then knows the inode tables
# read as zeros and marks them so (ITABLE_ZEROED); on a file it creates
# itself it does not, and the guest kernel would zero them at first mount.
truncate -s "$SIZE" "$OUT.tmp"
# -T default -b 4096: mke2fs would pick 1 KiB blocks ("small") for a file
# system this size; 4 KiB ones match the guest's pages. -m 0: no blocks
# reserved for root (the guest runs everything as root).
E2FSPROGS_FAKE_TIME=$FAKE_TIME mke2fs -q -F -t ext4 -T default -b 4096 -L flint-root -m 0 -U "$UUID" \
	-E root_owner=0:0,hash_seed=$HASH_SEED -d "$STAGE" "$OUT.tmp"
# (debugfs reports errors on stderr but exits 0: treat any as fatal.)
if E2FSPROGS_FAKE_TIME=$FAKE_TIME debugfs -w -f "$CMDS" "$OUT.tmp" 2>&1 >/dev/null |
	grep -v '^debugfs [0-9]' | grep .; then
	echo "rootfs: debugfs could not pin owners and times (above)" >&2
	exit 1
fi
e2fsck -fn "$OUT.tmp" >"$OUT.fsck" 2>&1 || {
	cat "$OUT.fsck" >&2
	echo "rootfs: e2fsck finds errors in the new image" >&2
	exit 1
}
mv -f "$OUT.tmp" "$OUT"
rm -rf "$STAGE" "$CMDS" "$OUT.fsck"
echo "rootfs: $OUT ($SIZE ext4, $(du -k "$OUT" | cut -f1) KiB allocated, sha256 $(sha256sum "$OUT" | cut -c1-16))"
