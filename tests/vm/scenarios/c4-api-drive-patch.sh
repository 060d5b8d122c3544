# PATCH /drives/{id} after boot swaps the drive's image and tells the guest
# its capacity changed (Kata's use): the guest sees the new size and data
# without a reboot; a PATCH naming a missing file is refused and the drive
# keeps its image.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

dd if=/dev/zero of="$T/old.img" bs=1M count=8 2>/dev/null
printf OLDIMAGE | dd of="$T/old.img" conv=notrunc 2>/dev/null
dd if=/dev/zero of="$T/new.img" bs=1M count=16 2>/dev/null
printf NEWIMAGE | dd of="$T/new.img" conv=notrunc 2>/dev/null

start_api
boot_source 'i=0; while [ $i -lt 80 ]; do echo 3 >/proc/sys/vm/drop_caches; echo disk $i $(cat /sys/block/vda/size) $(head -c 8 /dev/vda); i=$((i+1)); sleep 0.5; done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body drive <<EOB
{"drive_id": "scratch", "path_on_host": "$T/old.img", "is_root_device": false, "is_read_only": false}
EOB
api PUT /drives/scratch drive
expect_code 204 "PUT /drives/scratch"
body patch_early <<EOB
{"drive_id": "scratch", "path_on_host": "$T/new.img"}
EOB
api PATCH /drives/scratch patch_early
expect_fault "PATCH /drives before the start"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^disk [0-9]+ 16384 OLDIMAGE' 60 || { kill_bg; fail "the guest did not show the old image (8 MiB, OLDIMAGE)"; }

body patch <<EOB
{"drive_id": "scratch", "path_on_host": "$T/new.img"}
EOB
api PATCH /drives/scratch patch
expect_code 204 "PATCH /drives/scratch with a new image"
wait_for '^disk [0-9]+ 32768 NEWIMAGE' 30 ||
	{ kill_bg; fail "the guest did not see the new image's size (16 MiB) and data after the PATCH"; }

body missing <<EOB
{"drive_id": "scratch", "path_on_host": "$T/no-such.img"}
EOB
api PATCH /drives/scratch missing
expect_fault "PATCH to a missing image"
expect_resp 'no-such.img' "the message names the file"
api GET /vm/config
expect_resp "new.img" "the VM's configuration has the new image"
kill_bg
