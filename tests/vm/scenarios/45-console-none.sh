# --console none: nothing of the guest on stdout, and the exit status still
# comes through (it travels by the exit device, not the console).
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

flint --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console none -- sh -c 'exit 4'
expect_status 4 "the guest command's 'exit 4'"
! grep -q 'flint-init: ready' "$OUT" || fail "guest console reached stdout with --console none"
