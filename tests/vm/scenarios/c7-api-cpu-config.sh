# A custom CPU template (Firecracker's cpu-config), from a config file
# naming the template's file, as Firecracker's does: a guest booted with
# it does not see the CPUID features the template clears (leaf 1 ECX's
# movbe and popcnt) that the same guest sees without it, on both of its
# vCPUs; an MSR modifier KVM takes boots; one on an MSR KVM does not have,
# a leaf the host does not list, or a KVM capability it lacks stop the
# start, naming it.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# vm NAME CPU-CONFIG: a config file booting the guest, which prints each
# vCPU's flags line, with "cpu-config": CPU-CONFIG (JSON, or null).
vm() {
	cat >"$T/$1.json" <<EOB
{
  "boot-source": {"kernel_image_path": "$KERNEL", "initrd_path": "$INITRD",
                  "boot_args": "console=ttyS0 reboot=k panic=-1 -- sh -c \"grep ^flags /proc/cpuinfo\""},
  "drives": [],
  "machine-config": {"vcpu_count": 2, "mem_size_mib": 128},
  "cpu-config": $2
}
EOB
}
has() { # FLAG: how many vCPUs' flags lines in $OUT list FLAG
	grep '^flags' "$OUT" | grep -c -w -- "$1"
}

vm plain null
flint --config-file "$T/plain.json" --no-api
expect_status 0 "the guest without a template"
[ "$(grep -c '^flags' "$OUT")" = 2 ] || fail "not two flags lines: $(cat "$OUT")"
base_movbe=$(has movbe)
base_popcnt=$(has popcnt)
echo "without a template: movbe on $base_movbe vCPUs, popcnt on $base_popcnt"
[ $((base_movbe + base_popcnt)) -gt 0 ] ||
	fail "the host's CPU shows neither movbe nor popcnt: nothing for the template to clear"

cat >"$T/template.json" <<EOB
{"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0,
   "modifiers": [{"register": "ecx", "bitmap": "0bxxxxxxxx_00xxxxxx_xxxxxxxx_xxxxxxxx"}]}],
 "msr_modifiers": [{"addr": "0xc0000103", "bitmap": "0b00000000000000000000000000000101"}]}
EOB
vm cleared "\"$T/template.json\""
flint --config-file "$T/cleared.json" --no-api
expect_status 0 "the guest with the template"
[ "$(grep -c '^flags' "$OUT")" = 2 ] || fail "not two flags lines: $(cat "$OUT")"
[ "$(has movbe)" = 0 ] && [ "$(has popcnt)" = 0 ] ||
	fail "the template cleared movbe and popcnt, the guest sees them: $(grep -m1 '^flags' "$OUT")"
[ "$(has sse2)" = 2 ] || fail "the template took more than it cleared: $(grep -m1 '^flags' "$OUT")"

vm bad_msr '{"msr_modifiers": [{"addr": "0x12345",
   "bitmap": "0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1"}]}'
flint --config-file "$T/bad_msr.json" --no-api
expect_status 125 "a template on an MSR KVM does not have"
expect_err "cpu-config's MSR 0x12345: KVM has no such MSR" "the MSR named"
vm bad_leaf '{"cpuid_modifiers": [{"leaf": "0x4ffffff0", "subleaf": "0", "flags": 0,
   "modifiers": [{"register": "eax", "bitmap": "1"}]}]}'
flint --config-file "$T/bad_leaf.json" --no-api
expect_status 125 "a template on a leaf the host does not list"
expect_err "cpu-config's CPUID leaf 0x4ffffff0 subleaf 0: this host's KVM does not have it" \
	"the leaf named"
vm bad_cap '{"kvm_capabilities": ["4000000"]}'
flint --config-file "$T/bad_cap.json" --no-api
expect_status 125 "a KVM capability the host lacks"
expect_err "kvm_capabilities: this host's KVM lacks capability 4000000" "the capability named"

# Through the API: GET /vm/config gives the template back.
start_api
body cpu <<EOB
{"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0,
  "modifiers": [{"register": "ecx", "bitmap": "0bxxxxxxxx00xxxxxxxxxxxxxxxxxxxxxx"}]}]}
EOB
api PUT /cpu-config cpu
expect_code 204 "PUT /cpu-config"
api GET /vm/config
expect_resp '"cpu-config" *: *\{"cpuid_modifiers"' "the template in /vm/config"
kill_bg
echo "the template cleared what it named and nothing else"
