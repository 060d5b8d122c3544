# flint serve --jail: every VM's flint (and the registration's) runs under
# flint-jail as a uid of the range that no other live VM holds, in a cgroup
# under one per function with its memory limit; invocations answer right
# and stay isolated; the snapshot came out of the registration's jail as
# the server's file; per-request restores (flint run under the jail, its
# --wait-fd and --status-fd descriptors passed through) answer too; and
# stopping the server leaves no flint process, no jail and no cgroup.
# timeout: 900
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-jail.sh"
[ -f "${ROOTFS:-}" ] || skip "no ext4 root image at ${ROOTFS:-\$ROOTFS} (make rootfs-img)"
command -v curl >/dev/null || skip "no curl in L1"

# The jails' uids open the snapshots, kernel and root image: none of them
# may sit below a directory only root can search ($T is 0700).
ST=/tmp/e1-state.$$
rm -rf "$ST"
CG=flint-serve-e1
. "$(dirname "$0")/../lib-serve.sh"
start_jailed() { # MODE
	start_server --state-dir "$ST" --per-request "$1" --jail "$JAIL" --flint "$SFLINT" \
		--uid-range 2000-2099 --max-vms 8 --chroot-base-dir "$BASE" --parent-cgroup "$CG"
}
register_ok() { # NAME JSON
	register "$1" "$2"
	[ "$code" = 201 ] || die "registering $1 gave $code"
}
# The VMs' flint processes (every flint but the server): "UID PID" lines.
vm_flints() {
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = "$spid" ] && continue
		tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q -- '--restore' || continue
		u=$(awk '/^Uid:/ { print $2 }' "$d/status" 2>/dev/null) || continue
		[ -n "$u" ] && echo "$u $p"
	done
}
invoke_many() { # N: N invocations, 4 at a time, each answering its own input
	n=$1
	lanes=
	for lane in 0 1 2 3; do
		(k=$lane; while [ $k -lt "$n" ]; do
			c=$(printf 'req%s\n' $k | curl -s --unix-socket "$SOCK" -o "$T/r$k" -D "$T/h$k" \
				-w '%{http_code}' --data-binary @- http://flint/functions/echo/invoke) || c=000
			echo "$c" >"$T/c$k"
			k=$((k + 4))
		done) &
		lanes="$lanes $!"
	done
	for j in $lanes; do wait "$j"; done
	bad=0 seen=0
	k=0
	while [ $k -lt "$n" ]; do
		if [ "$(cat "$T/c$k")" != 200 ] || [ "$(cat "$T/r$k")" != "got:req$k" ]; then
			echo "invocation $k: status $(cat "$T/c$k"), body '$(head -c 200 "$T/r$k")'"
			tell_invocation echo "$T/h$k"
			bad=$((bad + 1))
			grep -q SEEN "$T/r$k" && seen=$((seen + 1))
		fi
		k=$((k + 1))
	done
	[ $seen = 0 ] || die "$seen of $n jailed invocations saw another's marker (SEEN)"
	[ $bad = 0 ] || die "$bad of $n jailed invocations answered wrong (above)"
}
cmd="[\"sh\", \"-c\", \"read x; echo got:\$x; if [ -e /tmp/mark ]; then echo SEEN; fi; touch /tmp/mark\"]"
fn="{\"command\": $cmd, \"kernel\": \"$KERNEL\", \"rootfs\": \"$ROOTFS\", \"mem_mib\": 128, \"max_concurrency\": 4, \"min_warm\": 2}"

# 1. Reset in place (the default): register, then 20 invocations.
start_jailed reset
register_ok echo "$fn"
st=$(ls "$ST"/echo.*/state)
[ "$(stat -c '%u %a' "$st")" = "0 644" ] ||
	die "the snapshot out of the jail is $(stat -c '%u %a' "$st"), not the server's 0644"
invoke_many 20
echo "20 jailed invocations answered, none saw another's marker"

# 2. The live VMs: each a uid of the range no other holds, in its cgroup
# under the function's, with the memory limit; a jail directory each.
vm_flints >"$T/vms"
cat "$T/vms"
nvm=$(wc -l <"$T/vms")
[ "$nvm" -ge 1 ] || die "no jailed VM alive after the invocations (min_warm 2)"
awk '$1 < 2000 || $1 > 2099 { bad = 1 } END { exit bad }' "$T/vms" ||
	die "a VM's flint runs outside the uid range: $(cat "$T/vms")"
[ "$(cut -d' ' -f1 "$T/vms" | sort -u | wc -l)" = "$nvm" ] || die "two VMs share a uid: $(cat "$T/vms")"
while read -r u p; do
	cg=$(grep -m1 -o "/$CG/echo/fs-[0-9a-f]*-[0-9]*" "/proc/$p/cgroup") ||
		die "VM $p is not in a cgroup under $CG/echo: $(cat "/proc/$p/cgroup")"
	lim=$(cat "$CGMEM$cg/$MEMFILE")
	[ "$lim" = $(((128 + 64) * 1024 * 1024)) ] || die "VM $p's memory limit is $lim"
	[ -d "$BASE/flint/${cg##*/}/root" ] || die "VM $p's jail ${cg##*/} is not in $BASE/flint"
done <"$T/vms"
echo "$nvm live VMs: distinct uids in the range, a cgroup each under $CG/echo, a jail each"

# 3. Stop: nothing left.
stop_server
sleep 0.5
[ -z "$(vm_flints)" ] || fail "flint processes left after the server stopped: $(vm_flints)"
[ -z "$(ls -A "$BASE/flint" 2>/dev/null)" ] || fail "jails left: $(ls "$BASE/flint")"
[ ! -e "$CGMEM/$CG" ] || fail "the functions' cgroup is left: $(ls "$CGMEM/$CG")"
[ ! -e "$ST" ] || [ -z "$(ls -A "$ST")" ] || fail "the state directory holds $(ls "$ST")"

# 4. A VM restored per request: flint run under the jail.
rm -rf "$ST"
start_jailed restore
register_ok echo "$fn"
invoke_many 8
stop_server
sleep 0.5
[ -z "$(vm_flints)" ] || fail "flint processes left after the second server: $(vm_flints)"
[ -z "$(ls -A "$BASE/flint" 2>/dev/null)" ] || fail "jails left: $(ls "$BASE/flint")"
rm -rf "$ST"
echo "jailed VMs answered (reset in place and restored per request) and left nothing behind"
