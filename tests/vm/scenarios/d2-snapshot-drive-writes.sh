# A snapshot taken while the guest writes to a drive loses no acknowledged
# write: the guest writes numbered records, one 512-byte block each with
# fsync, and prints "acked N" after each; it is saved mid-stream and
# SIGKILLed, restored, and writes on. Every record up to the last one
# acknowledged (before the snapshot, and after the restore) is on the image,
# in order.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

dd if=/dev/zero of="$T/data.img" bs=1M count=4 2>/dev/null
writer='i=0; while [ $i -lt 4000 ]; do printf rec%06d $i | dd of=/dev/vda bs=512 seek=$i conv=notrunc,sync,fsync 2>/dev/null && echo acked $i; i=$((i+1)); done'
start_api --kernel "$KERNEL" --initrd "$INITRD" --mem 128M --console stdio \
	--drive "path=$T/data.img,id=data" -- sh -c "$writer"
wait_for '^acked 50$' 90 || { kill_bg; fail "the guest did not write"; }
pause_and_snapshot w
sleep 0.5
kill_bg
cp "$OUT" "$T/before"
[ -z "$(tail -c 1 "$T/before")" ] || echo "the snapshot fell inside a line: '$(tail -n 1 "$T/before")'"
acked1=$(whole_lines "$T/before" | grep '^acked [0-9]*$' | tail -n 1 | cut -d' ' -f2)

# check_records LAST WHEN: records 0..LAST are on the image, in order.
check_records() {
	tr -d '\000' <"$T/data.img" | grep -o 'rec[0-9]*' | sed 's/^rec0*//; s/^$/0/' |
		awk -v last="$1" 'BEGIN { n = 0 } { if ($1 != n) { print "record " n " missing (found " $1 ")"; exit 1 } n++ }
			END { if (n <= last) { print "records end at " n - 1 ", acked " last; exit 1 } }' >"$T/check" ||
		fail "$2: $(cat "$T/check")"
}
check_records "$acked1" "after the snapshot"

start_bg --restore "$T/w.state" --mem-file "$T/w.mem"
ok=1
wait_for "^acked $((acked1 + 30))\$" 90 || ok=0
kill_bg
# The console across the snapshot: the guest's output before it, then the
# restored guest's (which finishes a line the snapshot cut) but for a line
# the kill cut.
{ cat "$T/before"; whole_lines "$OUT"; } | grep '^acked [0-9]*$' | cut -d' ' -f2 >"$T/acks"
acked2=$(tail -n 1 "$T/acks")
[ $ok = 1 ] || fail "the restored guest did not write on: acked $acked1 before the snapshot," \
	"up to $acked2 after the restore"
echo "acked $acked1 before the snapshot, $acked2 after the restore"
# Each record acknowledged once, in order, across the restore.
awk '$1 != NR - 1 { print "acked " $1 " after " NR - 2; exit 1 }' "$T/acks" >"$T/order" ||
	fail "the restored guest did not go on where it was: $(cat "$T/order")"
check_records "$acked2" "after the restore"
