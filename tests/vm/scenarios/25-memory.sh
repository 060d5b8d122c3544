# --mem sizes the guest's RAM: with 256M the guest's MemTotal is a little
# under 256 MiB (the kernel keeps its own image and reservations).
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

boot --mem 256M -- grep MemTotal /proc/meminfo
expect_status 0 "the command succeeded"
kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' "$OUT" | tail -n1)
[ -n "$kb" ] || fail "no MemTotal line in the guest's output"
[ "$kb" -gt 204800 ] && [ "$kb" -le 262144 ] ||
	fail "guest MemTotal is $kb kB with --mem 256M (expected 200-256 MiB)"
