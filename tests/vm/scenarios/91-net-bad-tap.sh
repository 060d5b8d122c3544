# A --net tap that does not exist, or an interface that is not a tap: flint
# says so, naming it, and exits 125 without booting.
# timeout: 60
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-net.sh"
need_net

boot --net tap=ftnone91 -- echo booted
expect_status 125 "flint failed"
expect_err 'tap ftnone91: no such device' "'tap ftnone91: no such device'"
grep -q '^booted' "$OUT" && fail "the guest booted"

boot --net tap=lo -- echo booted
expect_status 125 "flint failed"
expect_err 'tap lo: not a tap' "'tap lo: not a tap'"
echo "missing tap and non-tap refused with exit 125"
