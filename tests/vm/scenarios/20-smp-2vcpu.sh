# Boot with 2 vCPUs: both CPUs come online in the guest.
# timeout: 90
. "$(dirname "$0")/../lib.sh"
need_guest

boot --vcpus 2 -- sh -c 'echo cpus=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)'
expect_out 'flint-init: ready' "'flint-init: ready'"
expect_status 0 "the command succeeded"
grep -Eq 'cpus=0-1( |$)|nproc=2( |$)' "$OUT" ||
	fail "guest does not see 2 CPUs online: $(grep -E 'cpus=|nproc=' "$OUT" | tail -n1)"
