# Boot the default guest with 1 vCPU: init comes up and runs the command.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

# The guest computes the marker, so a kernel echoing its command line
# cannot fake it.
boot --vcpus 1 -- sh -c 'echo sum=$((40+2))'
expect_out 'flint-init: ready' "'flint-init: ready'"
expect_out 'sum=42' "the command's output 'sum=42'"
expect_status 0 "the command succeeded"
