# Host-initiated vsock: 32 host programs connect through flint's Unix socket
# ("CONNECT 5000\n", Firecracker's hybrid vsock) to a guest listener at the
# same time, and each stream carries 16 MiB both ways, checked byte by byte
# at both ends (tests/tools/vstream.c).
# Measured in the rig (TCG-nested KVM), with one or two other rigs on the same
# 2 cores: 18-29 s of streaming, 17-28 MiB/s each way over the 32 streams.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-vsock.sh"
need_vstream

N=32 SIZE=16M
# The host end retries until flint's socket is there and the guest listens.
"$TOOLS/vstream" -t 160 unix-connect "$T/v.sock" 5000 $N $SIZE >"$T/host" 2>&1 &
host=$!
boot_vsock -- vstream -t 160 vsock-listen 5000 $N $SIZE
check_streams $N $host
# host= counts the tries made before the guest listened too.
expect_err "vsock: connections host=[0-9]+ guest=0 open=0" "host connections only, all closed"
