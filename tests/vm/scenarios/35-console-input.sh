# Host stdin reaches the guest through the emulated UART (input interrupts go
# in through an irqfd): the guest command reads a line and echoes it back.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

# The guest's 8250 driver clears the receive FIFO when the console opens, as
# real hardware does, which can cut a line short: keep offering the line, and
# have the guest read until it gets a whole one.
status=0
(for i in $(seq 120); do echo hello-from-host; sleep 0.5; done) 2>/dev/null |
	"$FLINT" --kernel "$KERNEL" --initrd "$INITRD" --mem 128M \
		-- sh -c 'while read line; do case $line in hello-from-host) break;; esac; done; echo guest read: $line' >"$T/raw" 2>"$ERR" || status=$?
tr -d '\r' <"$T/raw" >"$OUT"
expect_status 0 "after the guest read its line"
expect_out '^guest read: hello-from-host$' "the guest echoing the host's line"
