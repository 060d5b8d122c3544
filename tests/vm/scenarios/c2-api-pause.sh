# PATCH /vm Paused stops the guest: no tick while paused, and its clock
# stands still (uptime advances by less than the pause); Resumed goes on.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

start_api
boot_source 'i=0; while [ $i -lt 120 ]; do echo tick $i $(cut -d. -f1 /proc/uptime); i=$((i+1)); sleep 0.25; done'
api PUT /boot-source boot
expect_code 204 "PUT /boot-source"
body start <<EOB
{"action_type": "InstanceStart"}
EOB
api PUT /actions start
expect_code 204 "InstanceStart"
wait_for '^tick 8 ' 60 || { kill_bg; fail "the guest did not tick"; }

body pause <<EOB
{"state": "Paused"}
EOB
body resume <<EOB
{"state": "Resumed"}
EOB
api PATCH /vm pause
expect_code 204 "PATCH /vm Paused"
api GET /
expect_resp '"state" *: *"Paused"' "state Paused"
# Whole lines only: the part of a line the pause cut may reach the file
# a moment later (the console writes a partial line on its next tick).
before=$(whole_lines "$T/raw" | grep -c '^tick ')
sleep 3
after=$(whole_lines "$T/raw" | grep -c '^tick ')
[ "$before" = "$after" ] || { kill_bg; fail "the guest ticked while paused ($before then $after ticks)"; }
last=$(whole_lines "$T/raw" | grep '^tick ' | tail -n 1)
# A line the pause cut read the uptime before it: compare with the next.
cut=0
[ -n "$(tail -c 1 "$T/raw")" ] && cut=1
api PATCH /vm resume
expect_code 204 "PATCH /vm Resumed"
api GET /
expect_resp '"state" *: *"Running"' "state Running after the resume"
n=${last#tick }
n=${n%% *}
wait_for "^tick $((n + 8)) " 60 || { kill_bg; fail "no ticks after the resume"; }
next=$(tr -d '\r' <"$T/raw" | grep "^tick $((n + 1 + cut)) ")
up0=${last##* }
up1=${next##* }
[ $((up1 - up0)) -le 1 ] ||
	{ kill_bg; fail "the guest's uptime went from $up0 to $up1 across a 3 s pause: its clock ran on"; }
kill_bg
