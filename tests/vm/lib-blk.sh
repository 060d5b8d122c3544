# Helpers for the virtio-blk scenarios (scenarios/8N-blk-*.sh), sourced after
# lib.sh. The rig provides ROOTFS, the ext4 root image (make rootfs-img).

# Skips until flint has --drive; after that the scenarios must pass.
need_drive() {
	need_guest
	"$FLINT" --help 2>&1 | grep -q -- '--drive' ||
		skip "flint has no --drive option yet (virtio-blk)"
}

need_rootfs() {
	[ -n "${ROOTFS:-}" ] && [ -f "$ROOTFS" ] ||
		skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
}

# expect_disks NAME...: the guest printed "disks: ..." (from `list_disks`)
# naming these block devices; a clear failure otherwise.
LIST_DISKS='echo disks: $(ls /sys/block | grep ^vd)'
expect_disks() {
	got=$(sed -n 's/^disks: *//p' "$OUT" | tail -n1)
	[ "$got" = "$*" ] ||
		fail "guest sees virtio disks '${got:-none}', expected '$*' (flint attached no virtio-blk device, or not in --drive order?)"
}

# boot_disk IMAGE ARGS...: flint booting from IMAGE as /dev/vda (ext4 root,
# read-write, no initrd); more --drive options may follow in ARGS.
boot_disk() {
	img=$1
	shift
	flint --kernel "$KERNEL" --mem 128M --console stdio --drive "path=$img" \
		--append "root=/dev/vda rw" "$@"
}

# start_bg ARGS...: flint in the background (pid in $pid), output to $T/raw.
start_bg() {
	"$FLINT" "$@" </dev/null >"$T/raw" 2>"$ERR" &
	pid=$!
}

# wait_for REGEX SECONDS: until flint's console shows REGEX; 1 if flint
# ended first or time ran out.
wait_for() {
	n=$(($2 * 5))
	while [ $n -gt 0 ]; do
		tr -d '\r' <"$T/raw" | grep -Eq -- "$1" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

# kill_bg: SIGKILL the background flint, collect its status and output.
kill_bg() {
	kill -KILL "$pid" 2>/dev/null
	status=0
	wait "$pid" 2>/dev/null || status=$?
	tr -d '\r' <"$T/raw" >"$OUT"
}

# Allocated 512-byte blocks of a file (what discard gives back).
blocks() {
	stat -c %b "$1"
}

# Whether an ext4 image's journal needs replaying (the file system was left
# mounted): the RECOVER flag (0x4) of s_feature_incompat, offset 1024+0x60.
ext4_needs_recovery() {
	incompat=$(od -A n -t u4 -j 1120 -N 4 "$1" | tr -d ' ')
	[ $((incompat & 4)) != 0 ]
}
