# A guest kernel panic: flint exits non-zero and says "panic" on stderr.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

boot -- sh -c 'test -w /proc/sysrq-trigger || { echo NO-SYSRQ; exit 99; }; echo c > /proc/sysrq-trigger'
if grep -q '^NO-SYSRQ' "$OUT"; then
	skip "guest kernel has no /proc/sysrq-trigger (needs CONFIG_MAGIC_SYSRQ)"
fi
expect_out 'flint-init: ready' "'flint-init: ready'"
expect_failure "after a guest panic"
expect_err 'panic' "a message mentioning the panic"
