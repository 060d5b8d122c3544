# flint run's image cache under FLINT_CACHE_MAX: a build trims the images
# used longest ago, but never one a saved snapshot boots from (pinned while
# the snapshot is there): the snapshot still restores after the trim. Once
# the snapshot is removed, the next build's trim takes its image too, and
# a run of that directory builds it again. A snapshot of a VM booted
# from a relative --image restores from another directory.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-image.sh"

# userland DIR MARKER: a busybox userland whose /etc/marker says MARKER.
userland() {
	mkdir -p "$1/etc"
	busybox_userland "$1" sh cat echo
	echo "$2" >"$1/etc/marker"
}
# used_ago FILE SECONDS: FILE last used (its mtime) SECONDS ago.
used_ago() {
	touch -d "@$(($(date +%s) - $2))" "$1" || fail "cannot set the time of $1"
}
# filler DIGIT SECONDS: a 20 MiB file under a key of its own, last used
# SECONDS ago, standing for another job's image.
filler() {
	f=$FLINT_CACHE/images/$(printf '%064d' 0 | tr 0 "$1").ext4
	head -c 20971520 /dev/zero >"$f" || fail "cannot write $f"
	used_ago "$f" "$2"
	echo "$f"
}
userland "$T/a" image-a
userland "$T/b" image-b
userland "$T/c" image-c

# A snapshot of a VM booted from a's image.
run --image "$T/a" --save-snapshot "$T/s.state" --save-mem "$T/s.mem"
expect_status 0 "saving a snapshot of a VM booted from a directory's image"
set -- "$FLINT_CACHE"/images/*.ext4
[ $# = 1 ] && [ -f "$1" ] || fail "expected one image in the cache, found: $*"
img_a=$1
used_ago "$img_a" 86400
old=$(filler 1 172800)

# b's build, with a limit the cache is over: the filler goes, a's pinned
# image stays.
export FLINT_CACHE_MAX=16M
run --image "$T/b" -- cat /etc/marker
expect_status 0 "a job whose build trims the cache"
grep -qx image-b "$OUT" || fail "the job did not see b's marker"
[ ! -e "$old" ] || fail "the image used longest ago ($old) is still there"
expect_err "image cache: removed $old" "the trim's word of the removal"
[ -e "$img_a" ] || fail "the snapshot's image $img_a was trimmed"

# The snapshot restores, on a's image.
"$FLINT" run --restore "$T/s.state" --mem-file "$T/s.mem" -- cat /etc/marker </dev/null \
	>"$OUT" 2>"$ERR" || fail "the restore failed ($?): $(tail -n 3 "$ERR")"
grep -qx image-a "$OUT" || fail "the restored VM did not see a's marker"

# The snapshot gone: the next build's trim unpins a's image and takes it
# (used before the filler, which goes too).
rm "$T/s.state" "$T/s.mem"
newer=$(filler 2 3600)
run --image "$T/c" -- cat /etc/marker
expect_status 0 "a job whose build trims the cache again"
expect_err "unpinning the images of a snapshot that is gone" "the pin's removal"
[ ! -e "$img_a" ] || fail "a's image stayed, its snapshot gone"
[ ! -e "$newer" ] || fail "the filler used an hour ago stayed"

# a again: built anew, and it runs.
run --image "$T/a" -- cat /etc/marker
expect_status 0 "a job on a's directory after its image was trimmed"
grep -qx image-a "$OUT" || fail "the job did not see a's marker"
expect_err "building an ext4 image from the directory" "a's image built again"
echo "cache now: $(ls "$FLINT_CACHE/images" | tr '\n' ' ')"

# A relative --image with --save-snapshot: the snapshot names the image
# by its absolute path, so a restore run from another directory boots it.
img=$(ls -t "$FLINT_CACHE"/images/*.ext4 | head -n 1)
cp "$img" "$T/rel.ext4" || fail "cannot copy $img"
cd "$T" || fail "cannot enter $T"
run --image rel.ext4 --save-snapshot rel.state --save-mem rel.mem
cd - >/dev/null || fail "cannot leave $T"
expect_status 0 "saving a snapshot of a VM booted from a relative --image"
(cd / && "$FLINT" run --restore "$T/rel.state" --mem-file "$T/rel.mem" -- cat /etc/marker \
	</dev/null >"$OUT" 2>"$ERR") || fail "the restore from / failed: $(tail -n 3 "$ERR")"
grep -qx image-a "$OUT" || fail "the VM restored from / did not see a's marker"
echo "a relative --image's snapshot restored from another directory"
