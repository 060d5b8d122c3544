# seccomp: a guest with a drive, a network device on a tap and a vsock
# device runs with every thread's filter on (the default: a call outside a
# table kills flint with SIGSYS, status 159). The guest reads the drive,
# serves TCP and vsock streams and request/response to L1, and connects out
# over vsock to a server in L1; flint must end with the guest's status 0.
# A client that fails says whether the guest's kernel still answered a
# ping, and flint, stopped with SIGTERM, reports its open vsock connections
# (--stats): whether a stall was the guest's or flint's, and rig_fault
# names a guest the rig's emulated nested SVM stopped (retried once).
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
need_guest
NB=$TOOLS/nbench
[ -x "$NB" ] && [ -f "$TEST_INITRD" ] || skip "no $NB or $TEST_INITRD (make test-tools)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun in L1"

TAP=tapsc0
HOST_IP=172.31.0.1
GUEST_IP=172.31.0.2
UDS=$T/v.sock
tunctl -t $TAP >/dev/null && ip addr add $HOST_IP/24 dev $TAP && ip link set $TAP up ||
	fail "cannot set up the tap $TAP"
trap 'kill $hpid $pid 2>/dev/null; tunctl -d $TAP >/dev/null 2>&1; rm -rf "$T"' EXIT

printf 'drive-marker-%s' $((6 * 7)) >"$T/disk"
truncate -s 1M "$T/disk"

# The guest's outgoing connection (CID 2, port 5202) arrives at <uds>_5202.
"$NB" server "unix:${UDS}_5202" >"$T/host-server" 2>&1 &
hpid=$!

# The guest: read the drive, serve L1 until it says quit, then be a client.
GUEST_OUT="nbench client -t 1 -w 100 vsock:2:5202 rr && nbench client vsock:2:5202 quit"
start_bg --kernel "$KERNEL" --initrd "$TEST_INITRD" --mem 128M --console stdio \
	--cmdline "console=ttyS0 reboot=k panic=-1 quiet ip=$GUEST_IP::$HOST_IP:255.255.255.0::eth0:off" \
	--drive "path=$T/disk,ro" --net "tap=$TAP" --vsock "cid=3,uds=$UDS" --stats -- \
	sh -c "echo drive=\$(head -c 15 /dev/vda); nbench server tcp::5201 vsock::5201 && $GUEST_OUT"
wait_for '^nbench: server ready' 90 || {
	kill_bg
	fail "the guest's nbench server did not start (status $status)"
}

# client_failed ADDR MODE: the guest's kernel answers a ping or not; flint
# ends on SIGTERM, printing its statistics, within 5 s, else is killed.
client_failed() {
	alive="did not answer"
	ping -c 2 -W 1 $GUEST_IP >/dev/null 2>&1 && alive="answered"
	kill -TERM $pid 2>/dev/null
	wait_gone $pid 5
	kill_bg
	cat "$T/clients"
	grep '^flint: vsock' "$ERR"
	rig_fault "$ERR"
	fail "nbench client $1 $2 failed; the guest's kernel $alive a ping"
}

# Both directions of a stream and request/response, on each transport; the
# host's vsock connections go through the muxer's CONNECT line. 0.2 s each
# (tens of MB a stream) reaches every call the device threads make; what
# more buys is time at 200 MB/s, where the rig's emulated SVM hangs or
# kills L2 guests whichever VMM runs them: the same guest, devices and
# clients, 1 s each, stopped answering in 1 of 6 VMs under flint (36
# rounds) and in 2 of 5 under QEMU microvm (about 30), as here after a
# stream, with the VMM still running (tests/vm/README.md).
for addr in "tcp:$GUEST_IP:5201" "unix:$UDS:5201"; do
	for mode in rr send recv; do
		"$NB" client -t 0.2 -w 100 -r 10 "$addr" $mode >>"$T/clients" 2>&1 ||
			client_failed "$addr" $mode
	done
done
"$NB" client -r 10 "unix:$UDS:5201" quit >>"$T/clients" 2>&1

# The guest now connects out, then its command ends and so does flint.
wait_gone $pid 120
kill_bg
echo "flint with a drive, a tap and vsock -> status $status"
[ "$status" != 159 ] || fail "flint was killed by SIGSYS: a thread made a call outside its seccomp table (run with --seccomp-log and read dmesg)"
expect_out '^drive=drive-marker-42$' "the drive's contents read in the guest (drive=drive-marker-42)"
expect_status 0 "the guest's command: its server and its outgoing vsock client succeeded"
grep -q 'mode=rr' "$T/host-server" || fail "L1's server saw no request/response from the guest: $(cat "$T/host-server")"
[ "$(grep -c 'mode=' "$T/clients")" = 6 ] || fail "not all six L1 clients reported: $(cat "$T/clients")"
