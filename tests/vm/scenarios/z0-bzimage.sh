# A distribution bzImage (Debian's generic kernel, L1's own) boots to the
# flint initramfs and runs a command. Slow under nested virtualisation.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
need_flint
[ -f "$INITRD" ] || skip "no guest initramfs at $INITRD (make rootfs)"
[ -f "$BZIMAGE" ] || skip "no distribution bzImage at $BZIMAGE"

flint --kernel "$BZIMAGE" --initrd "$INITRD" --mem 512M --console stdio \
	--append quiet -- sh -c 'echo bz=$(uname -r)'
expect_out 'flint-init: ready' "'flint-init: ready'"
expect_out '^bz=6\.1\.0-[0-9]+-amd64' "the Debian kernel's release 'bz=6.1.0-NN-amd64'"
expect_status 0 "the command succeeded"
