# flint run --image --scratch SIZE: the writable layer on a scratch disk of
# SIZE instead of memory. A job that fills it gets ENOSPC in the guest and
# goes on (the file removed, writes work again); the host is unharmed: flint
# exits with the job's status and leaves no scratch file behind. Without
# --scratch the memory-backed layer (half the guest's memory) fills the same
# way; with a scratch disk larger than memory the same write fits. The
# scratch disk offers the guest no discard (its blocks are reserved).
# timeout: 420
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-image.sh"

RUN_OPTS="--mem 128M"

img=$T/userland
busybox_userland "$img" sh dd rm cat echo grep df
# 80 MiB into /: more than a 32 MiB scratch disk or 64 MiB of tmpfs hold.
# (dd's message straight to the agent: a file for it would be on the full
# disk.)
job='dd if=/dev/zero of=/big bs=1M count=80 2>&1; echo "dd $?";
	rm -f /big; echo after >/small && cat /small; df -k /'

# The scratch disk's blocks are reserved on the host and kept: the guest
# is offered no discard on it (its fstrim would hand them back).
disc='for w in $(cat /proc/cmdline); do case $w in flint.scratch=/dev/*)
	d=${w#flint.scratch=/dev/}; echo "discard $d $(cat /sys/block/$d/queue/discard_max_bytes)";;
	esac; done; '
run --image "$img" --scratch 32M -- sh -c "$disc$job"
expect_status 0 "the job goes on after its write failed"
grep -q '^discard vd[a-z] 0$' "$OUT" || fail "discard offered on the scratch disk: $(grep '^discard' "$OUT")"
grep -q 'No space left on device' "$OUT" || fail "no ENOSPC in the guest"
grep -qx 'dd 1' "$OUT" || fail "dd did not fail"
grep -qx after "$OUT" || fail "no writes after the disk was emptied again"
[ -z "$(ls -A "$FLINT_CACHE/scratch" 2>/dev/null)" ] || fail "scratch files left: $(ls "$FLINT_CACHE/scratch")"

run --image "$img" -- sh -c "$job"
expect_status 0 "the memory-backed layer"
grep -q 'No space left on device' "$OUT" || fail "no ENOSPC from the tmpfs layer"

run --image "$img" --scratch 256M -- sh -c "$job"
expect_status 0 "a scratch disk larger than memory"
grep -qx 'dd 0' "$OUT" || fail "80 MiB did not fit a 256 MiB scratch disk"
[ -z "$(ls -A "$FLINT_CACHE/scratch" 2>/dev/null)" ] || fail "scratch files left"
