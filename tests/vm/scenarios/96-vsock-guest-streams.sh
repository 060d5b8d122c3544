# Guest-initiated vsock: 32 guest connections to CID 2 port 6000 at the same
# time, each relayed by flint to the host listener at "<uds>_6000"; 16 MiB
# both ways per stream, checked byte by byte at both ends.
# Measured in the rig (TCG-nested KVM), with one or two other rigs on the same
# 2 cores: 18-29 s of streaming, 17-28 MiB/s each way over the 32 streams.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-vsock.sh"
need_vstream

N=32 SIZE=16M
"$TOOLS/vstream" -t 160 unix-listen "$T/v.sock_6000" $N $SIZE >"$T/host" 2>&1 &
host=$!
# The listener is up once it says so; the guest takes seconds to boot anyway.
i=0
until grep -q listening "$T/host" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
boot_vsock -- vstream -t 160 vsock-connect 2 6000 $N $SIZE
check_streams $N $host
expect_err "vsock: connections host=0 guest=$N open=0" "$N guest connections, all closed"
