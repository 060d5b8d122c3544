# The guest command's exit status becomes flint's exit status.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

boot -- sh -c 'exit 3'
expect_status 3 "the guest command's 'exit 3'"
boot -- false
expect_status 1 "the guest command 'false'"
