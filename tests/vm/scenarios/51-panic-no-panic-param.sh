# A guest kernel panic ends flint with 122 and the panic line whatever the
# command line says (issue 10). Without panic= the kernel prints its whole
# report, ends it with "---[ end Kernel panic ...", and spins for ever (flint
# used to wait for ever); with panic=N it says "Rebooting in N seconds.." and
# waits. Either line is flint's cue to stop.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_guest

# No initramfs and no drive: "VFS: Unable to mount root fs", and no panic=.
flint --kernel "$KERNEL" --mem 128M --console stdio --cmdline "console=ttyS0 quiet"
expect_status 122 "a guest panic without panic= on the command line"
expect_err 'guest kernel panic: .*Kernel panic - not syncing: VFS: Unable to mount root fs' \
	"the panic line"
expect_out 'end Kernel panic - not syncing: VFS' "the kernel's report to its end marker on the console"
expect_quick 30

# A crash from init (the 50-panic way) with panic=30: flint does not wait the
# 30 s before the kernel would reset.
boot --cmdline "console=ttyS0 quiet panic=30" -- \
	sh -c 'test -w /proc/sysrq-trigger || { echo NO-SYSRQ; exit 99; }; echo c > /proc/sysrq-trigger'
if grep -q '^NO-SYSRQ' "$OUT"; then
	skip "guest kernel has no /proc/sysrq-trigger (needs CONFIG_MAGIC_SYSRQ)"
fi
expect_status 122 "a guest panic with panic=30"
expect_err 'guest kernel panic: .*Kernel panic - not syncing: sysrq triggered crash' "the panic line"
expect_out 'Rebooting in 30 seconds' "the kernel's 'Rebooting in 30 seconds..'"
expect_quick 25
