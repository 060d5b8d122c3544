# Guest-initiated vsock: 32 guest connections to CID 2 port 6000 at the same
# time, each relayed by flint to the host listener at "<uds>_6000"; 16 MiB
# both ways per stream, checked byte by byte at both ends.
# Measured in the rig (TCG-nested KVM): ~50-60 s, about 10 MiB/s each way
# over the 32 streams together, and up to 140 s while another rig ran on the
# same 2 cores; the limits leave room for that.
# timeout: 420
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-vsock.sh"
need_vstream

N=32 SIZE=16M
"$TOOLS/vstream" -t 400 unix-listen "$T/v.sock_6000" $N $SIZE >"$T/host" 2>&1 &
host=$!
# The listener is up once it says so; the guest takes seconds to boot anyway.
i=0
until grep -q listening "$T/host" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
boot_vsock -- vstream -t 400 vsock-connect 2 6000 $N $SIZE
check_streams $N $host
expect_err "vsock: connections host=0 guest=$N open=0" "$N guest connections, all closed"
