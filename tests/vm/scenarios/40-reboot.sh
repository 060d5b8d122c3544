# A guest reboot ends flint cleanly with status 0.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

boot -- reboot -f
expect_out 'flint-init: ready' "'flint-init: ready'"
expect_status 0 "guest 'reboot -f'"
