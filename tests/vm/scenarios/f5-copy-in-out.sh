# flint run --copy-in and --copy-out: a tree with modes, owners, symlinks
# and an empty directory arrives intact in the guest's /tmp (a tmpfs: the
# root is read-only without --image); a file the guest builds comes back
# with the same checksum, also after a failing command and after --timeout
# (124); a '..' escape is refused naming it; a copy-out's symlinks that lead
# outside what it copied are removed and named. --user runs the command as the
# uid and gid given, owns what it copied in and copies out as itself;
# --env-file's lines reach it.
# timeout: 300
. "$(dirname "$0")/../lib.sh"
need_guest
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"

# run ARGS...: flint run on the built guest, stdin from /dev/null.
run() {
	status=0
	"$FLINT" run --kernel "$KERNEL" --rootfs "$ROOTFS" "$@" </dev/null >"$OUT" 2>"$ERR" || status=$?
	echo "flint run $* -> status $status"
}

expect_line() {
	grep -Fxq -- "$1" "$OUT" || fail "the guest's output lacks the line '$1'"
}

# The tree: modes, owners (flint runs as root in the rig), a relative and
# an absolute symlink, an empty directory.
mkdir -p "$T/src/sub" "$T/src/empty"
printf 'alpha\n' >"$T/src/a.txt"
printf '#!/bin/sh\necho tool\n' >"$T/src/sub/tool"
chmod 0640 "$T/src/a.txt"
chmod 0751 "$T/src/sub/tool"
chmod 0700 "$T/src/empty"
chmod 0750 "$T/src/sub"
chown 1234:5678 "$T/src/a.txt"
ln -s sub/tool "$T/src/link"
ln -s /etc/hostname "$T/src/abs"

# 1. Into a directory that does not exist yet: made, the tree becomes it.
run --copy-in "$T/src:/tmp/w" -- sh -c 'cd /tmp/w && stat -c "%n %a %u:%g %F" a.txt sub sub/tool empty &&
	echo "link $(readlink link)" && echo "abs $(readlink abs)" && ./link && ls -ln /tmp/w'
expect_status 0 "the copy-in and the listing"
expect_line "a.txt 640 1234:5678 regular file"
expect_line "sub 750 0:0 directory"
expect_line "sub/tool 751 0:0 regular file"
expect_line "empty 700 0:0 directory"
expect_line "link sub/tool"
expect_line "abs /etc/hostname"
expect_line "tool"

# 2. Into an existing directory (/tmp): under the source's name; DIR/.:
# the contents.
run --copy-in "$T/src:/tmp" --copy-in "$T/src/.:/tmp/flat" -- \
	sh -c 'cat /tmp/src/a.txt /tmp/flat/a.txt'
expect_status 0 "copy-ins into /tmp and of src/."
[ "$(cat "$OUT")" = "alpha
alpha" ] || fail "expected /tmp/src/a.txt and /tmp/flat/a.txt, got '$(cat "$OUT")'"

# 3. The guest builds a file; --copy-out brings it back, same checksum.
mkdir "$T/res"
run --copy-in "$T/src:/tmp/w" --copy-out "/tmp/w/out.bin:$T/res/" -- \
	sh -c 'head -c 3000000 /dev/urandom >/tmp/w/out.bin && sha256sum /tmp/w/out.bin'
expect_status 0 "building out.bin"
want=$(cut -d' ' -f1 "$OUT")
[ -f "$T/res/out.bin" ] || fail "--copy-out left no $T/res/out.bin"
got=$(sha256sum "$T/res/out.bin" | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "out.bin's checksum: guest $want, host $got"
# A whole directory out, modes kept; its absolute symlink (abs ->
# /etc/hostname) leads outside what was copied: removed, the copy-out
# fails naming it, the rest is there.
run --copy-in "$T/src:/tmp/w" --copy-out "/tmp/w:$T/back" -- true
expect_status 125 "a directory out with a symlink leading out of it"
expect_err "entry 'w/abs': a symlink to '/etc/hostname', which leads outside" \
	"the symlink leading out, named"
[ ! -L "$T/back/abs" ] || fail "the guest's absolute symlink was left on the host"
[ "$(stat -c %a "$T/back/sub/tool")" = 751 ] || fail "back/sub/tool lost its mode"
[ -d "$T/back/empty" ] || fail "the empty directory did not come back"
[ "$(readlink "$T/back/link")" = sub/tool ] || fail "the symlink did not come back"
# One climbing out with '..' through another link (dot -> .): the kernel's
# walk finds it; the copy-out's top is the name asked for.
run --copy-out "/tmp/v:$T/back2" -- sh -c 'mkdir -p /tmp/v && echo x >/tmp/v/f &&
	ln -s . /tmp/v/dot && ln -s dot/dot/../etc /tmp/v/up && ln -s f /tmp/v/in'
expect_status 125 "a symlink out through another"
expect_err "entry 'v/up': a symlink to 'dot/dot/../etc'" "the '..' symlink named"
[ ! -L "$T/back2/up" ] && [ -L "$T/back2/dot" ] && [ "$(cat "$T/back2/in")" = x ] ||
	fail "back2: up kept, or dot or in lost"

# 4. After a failing command, and after --timeout: still copied out.
run --copy-out "/tmp/f:$T/failed" -- sh -c 'echo failed-run >/tmp/f; exit 3'
expect_status 3 "the command's own status"
[ "$(cat "$T/failed" 2>/dev/null)" = failed-run ] || fail "no copy-out after a failing command"
run --timeout 3 --copy-out "/tmp/t:$T/timed" -- sh -c 'echo timed-run >/tmp/t; sleep 60'
expect_status 124 "--timeout"
[ "$(cat "$T/timed" 2>/dev/null)" = timed-run ] || fail "no copy-out after --timeout"
# A copy-out of nothing: named; a command that exited 0 then gives 125.
run --copy-out "/tmp/nothing:$T/none" -- true
expect_status 125 "a copy-out that failed after exit 0"
expect_err "--copy-out /tmp/nothing" "the failed --copy-out named"

# 5. Escapes refused before anything runs, naming the option.
run --copy-in "$T/src:/tmp/../etc" -- true
expect_status 125 "a '..' in --copy-in's guest path"
expect_err "--copy-in .*'\.\.'" "the refusal naming --copy-in and '..'"
run --copy-out "/tmp/../etc/passwd:$T/pw" -- true
expect_status 125 "a '..' in --copy-out's guest path"
expect_err "--copy-out .*'\.\.'" "the refusal naming --copy-out and '..'"
[ ! -e "$T/pw" ] || fail "the escaping copy-out wrote $T/pw"

# 6. --user.
run --user 1000:1001 -- sh -c 'id -u; id -g'
expect_status 0 "--user"
[ "$(cat "$OUT")" = "1000
1001" ] || fail "--user 1000:1001: the command said '$(cat "$OUT")'"
# What a --user run copies in is the user's (no set-id bits), so that it
# may work on it; its copy-out reads as the user: a file only root may
# read is refused, where a root run's copy-out takes it.
chmod 4751 "$T/src/sub/tool"
run --user 1000:1001 --copy-in "$T/src:/tmp/w" --copy-out "/tmp/w/a.txt:$T/a-user" -- \
	sh -c 'echo x >/tmp/w/a.txt && cd /tmp/w && stat -c "%n %a %u:%g" . a.txt sub/tool'
expect_status 0 "uid 1000 writing its copied-in a.txt, and copying it out"
expect_line ". 755 1000:1001"
expect_line "a.txt 640 1000:1001"
expect_line "sub/tool 751 1000:1001"
[ "$(cat "$T/a-user")" = x ] || fail "the --user copy-out of the job's own file"
chmod 0751 "$T/src/sub/tool"
run --user 1000 --copy-out "/proc/1/environ:$T/env-user" -- true
expect_status 125 "a --user copy-out of a file only root may read"
expect_err "--copy-out /proc/1/environ.*Permission denied" "the refused --copy-out named"
run --copy-out "/proc/1/environ:$T/env-root" -- true
expect_status 0 "a root run's copy-out of the same file"

# 7. --env-file.
printf '# a comment\nA=1\n\nB=two words\nC=from file\n' >"$T/env"
run --env-file "$T/env" --env C=from-option -- sh -c 'echo "$A|$B|$C"'
expect_status 0 "--env-file"
[ "$(cat "$OUT")" = "1|two words|from-option" ] || fail "--env-file: got '$(cat "$OUT")'"
echo "copy-in and copy-out, --user and --env-file work"
