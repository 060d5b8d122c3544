# Kernel files that are not kernels: a clear error naming the file, quickly.
# timeout: 60
. "$(dirname "$0")/../lib.sh"
need_flint
[ -f "$INITRD" ] || skip "no guest initramfs at $INITRD (make rootfs)"

check() {
	flint --kernel "$1" --initrd "$INITRD" --mem 128M --console stdio -- true
	expect_failure "$2"
	expect_quick 10
	grep -Fq -- "$1" "$ERR" || fail "stderr does not name $1 ($2)"
}

dd if=/dev/urandom of="$T/random-kernel" bs=4096 count=1 2>/dev/null
check "$T/random-kernel" "4 KiB of random bytes"
: >"$T/empty-kernel"
check "$T/empty-kernel" "an empty file"
check "$T/no-such-kernel" "a missing file"
