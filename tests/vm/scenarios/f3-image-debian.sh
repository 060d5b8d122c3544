# flint run --image on a real distribution's userland: a Debian root (made
# on the host by tests/vm/debian-tar.sh: debootstrap, or the host's own
# coreutils, dpkg, libc6 and bash) from an xz tar archive; dpkg -l and bash
# run in it with its own dynamic loader and libraries.
# timeout: 420
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-image.sh"
deb=${VM_IMAGES:-}/debian.tar.xz
[ -f "$deb" ] || skip "no Debian userland at $deb (make \$BUILD/vm-images/debian.tar.xz)"
RUN_OPTS="--mem 256M"

run --image "$deb" -- dpkg -l
expect_status 0 "dpkg -l in the Debian userland"
grep -q '^ii  coreutils' "$OUT" || fail "dpkg -l does not list coreutils"
grep -q '^ii  libc6' "$OUT" || fail "dpkg -l does not list libc6"

run --image "$deb" -- bash -c 'echo "bash $BASH_VERSION"; ls -l /bin/ls; touch /usr/new && echo writable'
expect_status 0 "bash in the Debian userland"
grep -q '^bash 5' "$OUT" || fail "not Debian's bash"
grep -qx writable "$OUT" || fail "/usr was not writable"
