#!/bin/bash
# tests/vm/debian-tar.sh OUT: a Debian userland as an xz-compressed tar
# archive, for the f3-image-debian scenario (flint run --image OUT -- dpkg -l).
# With debootstrap installed and DEBIAN_MIRROR (default deb.debian.org)
# reachable: debootstrap --variant=minbase bookworm. Otherwise the files this
# host's own packages installed (coreutils, dpkg, libc6, bash and what they
# depend on), their dpkg status entries, and the /usr-merge links, owned by
# root. Runs on the host, where dpkg is: the rig carries OUT into L1.
set -euo pipefail
out=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if command -v debootstrap >/dev/null && [[ $(id -u) == 0 ]] &&
	curl -sfm 5 -o /dev/null "$mirror/dists/bookworm/Release" &&
	debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$tmp/log" 2>&1; then
	tar -C "$tmp/root" --numeric-owner -cf - . | xz -T2 -3 >"$out.tmp"
	mv "$out.tmp" "$out"
	echo "debian-tar: $out from debootstrap ($mirror)"
	exit 0
fi

# The packages and their dependencies (the first installed alternative).
declare -A seen=()
queue=(coreutils dpkg libc6 bash)
while ((${#queue[@]})); do
	p=${queue[0]} queue=("${queue[@]:1}")
	[[ -n ${seen[$p]:-} ]] && continue
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || continue
	seen[$p]=1
	for d in $(dpkg-query -W -f='${Depends},${Pre-Depends}' "$p" | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g'); do
		queue+=("$d")
	done
done

r=$tmp/root
mkdir -p "$r/etc" "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/root" "$r/tmp"
chmod 1777 "$r/tmp"
: >"$r/var/lib/dpkg/available"
for p in "${!seen[@]}"; do
	dpkg-query -s "$p"
	echo
	for f in /var/lib/dpkg/info/"$p".list /var/lib/dpkg/info/"$p":*.list; do
		[[ -f $f ]] && cp "$f" "$r/var/lib/dpkg/info/"
	done
done >"$r/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
# /usr merged: the top-level links, and each file by its real directory.
for l in bin sbin lib lib64 lib32 libx32; do
	[[ -L /$l ]] && ln -s "$(readlink "/$l")" "$r/$l"
done
for p in "${!seen[@]}"; do dpkg -L "$p"; done | sort -u | while read -r f; do
	[[ -L $f || -f $f ]] || continue
	printf '%s/%s\n' "$(readlink -f "$(dirname "$f")")" "$(basename "$f")"
done | sed 's|^/||' | sort -u >"$tmp/list"
tar --numeric-owner --owner=0 --group=0 -cf - -C "$r" . -C / --no-recursion -T "$tmp/list" |
	xz -T2 -3 >"$out.tmp"
mv "$out.tmp" "$out"
echo "debian-tar: $out from this host's packages: ${!seen[*]}"
