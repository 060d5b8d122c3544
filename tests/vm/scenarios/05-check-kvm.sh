# Where the rig runs the scenarios, KVM can boot Linux: flint --check-kvm
# must agree (exit 0, quickly), or every other result is suspect.
# timeout: 30
. "$(dirname "$0")/../lib.sh"
need_flint

flint --check-kvm
expect_status 0 "flint --check-kvm on a KVM that boots Linux"
expect_quick 10
