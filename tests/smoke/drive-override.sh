# Sourced by snapshot.sh after reset.sh, which saved $S/dev.state: the
# counting tiny guest with a read-only drive "d" ($S/drive.img), vsock and
# entropy. --drive-override d=OTHER restores it with OTHER as the drive's
# image: flint holds OTHER open, not the image the snapshot recorded, and the
# guest counts on from the snapshot. A drive the snapshot lacks is refused,
# naming it.

if [ -f "$S/dev.state" ]; then
	cp "$S/drive.img" "$S/other.img"
	rm -f "$S/ovr-v.sock"
	"$FLINT" --restore "$S/dev.state" --mem-file "$S/dev.mem" --vsock-override "$S/ovr-v.sock" \
		--drive-override "d=$S/other.img" >"$OUT/drive-override.out" \
		2>"$OUT/drive-override.err" </dev/null &
	opid=$!
	sleep 0.5
	open=$(for f in /proc/$opid/fd/*; do readlink "$f"; done 2>/dev/null | sort | tr '\n' ' ')
	kill -KILL $opid 2>/dev/null
	wait $opid 2>/dev/null
	why=""
	# The links name absolute paths; $S may be relative (BUILD=build).
	abs=$(cd "$S" && pwd -P)
	case " $open" in
	*" $abs/other.img "*) ;;
	*) why="flint does not hold $abs/other.img open (its fds: $open)" ;;
	esac
	case " $open" in
	*" $abs/drive.img "*) why="flint holds the snapshot's own image $abs/drive.img open" ;;
	esac
	t=$(first_tick "$OUT/drive-override.out")
	[ -n "$why" ] || [ "$t" -gt "$t_dev" ] ||
		why="the restored guest counted from $t, the snapshot was at $t_dev"
	report snapshot-drive-override "$why" "$OUT/drive-override.err"

	check snapshot-drive-override-unknown 125 "" \
		"--drive-override: the snapshot has no drive 'data'" -- \
		--restore "$S/dev.state" --mem-file "$S/dev.mem" --vsock-override "$S/ovr-v.sock" \
		--drive-override "d=$S/other.img" --drive-override "data=$S/other.img"
fi
