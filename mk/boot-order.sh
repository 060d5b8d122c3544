#!/bin/bash
# mk/boot-order.sh: profile which code and read-only data a flint launch
# touches, and write mk/boot-order.ld, the linker script that puts them
# first (make boot-order; needs the rig, tests/vm/rig, and python3).
#
#   mk/boot-order.sh BUILD 'LINK COMMAND' 'INPUTS'
#
# Why: flint is one static binary of some 2 MB of code, and the kernel maps
# a file's pages 64 KiB at a time around each fault (fault-around). A launch
# runs only about a sixth of the code, but spread over the whole binary, so
# nearly all of it ended up mapped: the RSS outside guest RAM that flint
# bench reports. With what a launch touches placed together, the rest stays
# unmapped.
#
# How:
#  1. Every input of flint's link (its objects, the static libraries, and
#     libc, libgcc and libgcc_eh, which the compiler adds) is copied with
#     objcopy clearing the "mergeable" flag of read-only data, so that the
#     linker keeps each object's strings where they came from instead of
#     pooling them all.
#  2. That copy is linked with every input section of .text and .rodata on
#     a page of its own (SUBALIGN(4096) in the default linker script).
#  3. In the rig, with fault-around off (fault_around_bytes 4096), the
#     profiled flint runs the launches below; the pages resident in its
#     image at a steady point name exactly the sections it touched.
#  4. mk/boot-order.py turns the link map and those pages into
#     mk/boot-order.ld: the sections of tier 1 (flint run with a root file
#     system, flint booting from a drive as flint bench boot launches it,
#     and flint booting an initramfs) first, then those tier 2 adds (a
#     snapshot restore, a boot from a Firecracker config file, one through
#     the API socket).
#
# The script only orders; a section it names that no longer exists matches
# nothing, so a stale profile costs pages, never a build. Run it again when
# flint bench shows the RSS outside guest RAM grown.
set -euo pipefail

BUILD=$1
LINK=$2
INPUTS=$3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CC=${CC:-cc}
OUT=$ROOT/mk/boot-order.ld

fail() {
	echo "boot-order: $*" >&2
	exit 1
}
command -v python3 >/dev/null || fail "needs python3"
[ -d "$BUILD" ] || fail "no build directory $BUILD"
BUILD=$(cd "$BUILD" && pwd)
WORK=$BUILD/boot-order
rm -rf "$WORK"
mkdir -p "$WORK/lib" "$WORK/obj"

# 1. Unmerged copies. The profiled link names each input by its copy; the
# map is read back with $WORK/obj/ taken off, and archives by their base
# name, as the real link's map names them.
unmerge() { # SRC DST
	objcopy --set-section-flags '.rodata*=alloc,load,readonly,data,contents' "$1" "$2" ||
		fail "objcopy could not copy $1"
}
args=()
for w in $INPUTS; do
	case $w in
	-l*)
		lib=$($CC -print-file-name="lib${w#-l}.a")
		[ -f "$lib" ] || fail "no static library for $w"
		unmerge "$lib" "$WORK/lib/lib${w#-l}.a"
		args+=("$w")
		;;
	*.a)
		unmerge "$w" "$WORK/lib/$(basename "$w")"
		args+=("$WORK/lib/$(basename "$w")")
		;;
	*.o)
		rel=${w#"$BUILD"/}
		rel=${rel#./}
		mkdir -p "$(dirname "$WORK/obj/$rel")"
		unmerge "$w" "$WORK/obj/$rel"
		args+=("$WORK/obj/$rel")
		;;
	*) args+=("$w") ;;
	esac
done
for lib in libc.a libgcc.a libgcc_eh.a; do
	unmerge "$($CC -print-file-name=$lib)" "$WORK/lib/$lib"
done

# 2. Every input section of .text and .rodata on a page of its own.
ld --verbose | sed -n '/^=====/,/^=====/p' | sed '1d;$d' |
	sed -e 's/^  \.text  *:/  .text : SUBALIGN(4096)/' \
	    -e 's/^  \.rodata  *:/  .rodata : SUBALIGN(4096)/' >"$WORK/spread.ld"
[ "$(grep -c SUBALIGN "$WORK/spread.ld")" = 2 ] || fail "unexpected default linker script (ld --verbose)"
# shellcheck disable=SC2086 # LINK is a command line
$LINK -L"$WORK/lib" -Wl,-T,"$WORK/spread.ld" -Wl,-Map="$WORK/flint.map" \
	-o "$WORK/flint-spread" "${args[@]}" 2> >(grep -v getaddrinfo >&2) ||
	fail "the profiled link failed"

# 3. The launches, in the rig. Each guest command prints a marker and
# sleeps; the image's resident pages are read from /proc/PID/pagemap once
# the marker is out.
cat >"$WORK/profile.sh" <<'EOF'
#!/bin/sh
F=$1
mount -t debugfs none /sys/kernel/debug 2>/dev/null
echo 4096 >/sys/kernel/debug/fault_around_bytes || exit 1
sample() { # NAME PID
	lo=$(grep flint-spread /proc/$2/maps | head -1 | cut -d- -f1)
	hi=$(grep flint-spread /proc/$2/maps | tail -1 | cut -d' ' -f1 | cut -d- -f2)
	n=$(( (0x$hi - 0x$lo) / 4096 ))
	{ echo "base 0x$lo"
	  dd if=/proc/$2/pagemap bs=8 skip=$((0x$lo / 4096)) count=$n 2>/dev/null | od -An -tx8 -v
	} >$RIG_OUT/$1.pagemap
}
launch() { # NAME ARGS...
	name=$1; shift
	: >/tmp/$name.out
	"$F" "$@" >>/tmp/$name.out 2>&1 &
	pid=$!
	profile $name $pid
}
profile() { # NAME PID: once the guest's marker is out, sample; then the end
	name=$1 pid=$2
	i=0
	until grep -q flint-profile-ready /tmp/$name.out; do
		i=$((i + 1)); [ $i -lt 300 ] || { echo "$name: no marker"; cat /tmp/$name.out; exit 1; }
		sleep 0.1
	done
	sleep 0.5
	sample $name $pid
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill $pid 2>/dev/null
	wait $pid
}
CMD='echo flint-profile-ready; sleep 2'
# As flint bench boot --agent and bench run launch it (flint run, its
# options, the phase pipe), and with 2 vCPUs.
launch run-rootfs run --phase-fd 3 --kernel $KERNEL --rootfs $ROOTFS --mem 128M --vcpus 1 \
	--cmdline "console=ttyS0 reboot=t panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd" \
	-- sh -c "$CMD" 3>/tmp/phases
launch run-smp run --kernel $KERNEL --rootfs $ROOTFS --mem 256M --vcpus 2 -- sh -c "$CMD"
# As flint bench boot launches it beside its peers: no flint run, the root
# a read-only drive, the command on the kernel command line.
launch boot-drive --phase-fd 3 --kernel $KERNEL --drive path=$ROOTFS,ro --mem 128M --vcpus 1 \
	--cmdline "console=ttyS0 reboot=t panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd root=/dev/vda ro rootfstype=ext4 -- sh -c \"$CMD\"" \
	3>/tmp/phases
launch run-initrd --kernel $KERNEL --initrd $INITRD -- sh -c "$CMD"
"$F" run --kernel $KERNEL --rootfs $ROOTFS --save-snapshot /tmp/s.state --save-mem /tmp/s.mem ||
	exit 1
launch restore run --restore /tmp/s.state --mem-file /tmp/s.mem -- sh -c "$CMD"
cat >/tmp/vm.json <<JSON
{"boot-source": {"kernel_image_path": "$KERNEL",
  "boot_args": "console=ttyS0 reboot=k panic=-1 quiet -- sh -c \\"echo flint-profile-ready; sleep 2\\""},
 "drives": [{"drive_id": "root", "path_on_host": "$ROOTFS", "is_root_device": true,
  "is_read_only": true}],
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}
JSON
launch config-file --config-file /tmp/vm.json --no-api
# Through the API socket: Firecracker's getting-started sequence, by curl
# (the rig carries the host's).
command -v curl >/dev/null || { echo "api: no curl in L1 (install curl on the host)"; exit 1; }
put() { # PATH JSON
	curl -sf --unix-socket /tmp/api.sock -X PUT -H 'Content-Type: application/json' \
		-d "$2" "http://localhost$1" >/dev/null || { echo "api: PUT $1 failed"; exit 1; }
}
: >/tmp/api.out
"$F" --api-sock /tmp/api.sock >>/tmp/api.out 2>&1 &
pid=$!
i=0
until curl -sf --unix-socket /tmp/api.sock -o /dev/null http://localhost/; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "api: no socket"; cat /tmp/api.out; exit 1; }
	sleep 0.1
done
put /boot-source "{\"kernel_image_path\": \"$KERNEL\", \"boot_args\": \"console=ttyS0 reboot=k panic=-1 quiet -- sh -c \\\"$CMD\\\"\"}"
put /drives/root "{\"drive_id\": \"root\", \"path_on_host\": \"$ROOTFS\", \"is_root_device\": true, \"is_read_only\": true}"
put /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}'
put /actions '{"action_type": "InstanceStart"}'
profile api $pid
EOF
BUILD=$BUILD "$ROOT/tests/vm/rig" exec "$WORK/profile.sh" "$WORK/flint-spread" ||
	fail "the profile run in the rig failed"
for s in run-rootfs run-smp boot-drive run-initrd restore config-file api; do
	cp "$BUILD/rig/out/$s.pagemap" "$WORK/" || fail "the rig brought back no $s.pagemap"
done

# 4. The script.
python3 "$ROOT/mk/boot-order.py" "$WORK/flint.map" "$WORK/obj/" \
	"$WORK/run-rootfs.pagemap,$WORK/run-smp.pagemap,$WORK/boot-drive.pagemap,$WORK/run-initrd.pagemap" \
	"$WORK/restore.pagemap,$WORK/config-file.pagemap,$WORK/api.pagemap" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "boot-order: wrote $OUT"
