# PUT /actions SendCtrlAltDel: refused before the start; after it the
# i8042's keyboard types Ctrl-Alt-Del, the guest kernel hands it to init as
# SIGINT, init shuts down and resets (reboot=k), and flint ends with 0.
# Twice: with the keyboard probed, and with flint's default i8042 words
# (i8042.dumbkbd and others: no probe, the keys still read).
# timeout: 240
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-blk.sh"
. "$(dirname "$0")/../lib-api.sh"
need_api

# cad_once WORDS: one VM with WORDS on its command line, Ctrl-Alt-Del sent.
cad_once() {
	rm -f "$API_SOCK"
	start_api
	body cad <<-EOB
	{"action_type": "SendCtrlAltDel"}
	EOB
	api PUT /actions cad
	expect_fault "SendCtrlAltDel before InstanceStart"

	boot_source 'echo cad-guest-up; sleep 60; echo cad-guest-not-rebooted' "" "$1"
	api PUT /boot-source boot
	expect_code 204 "PUT /boot-source"
	body start <<-EOB
	{"action_type": "InstanceStart"}
	EOB
	api PUT /actions start
	expect_code 204 "InstanceStart"
	wait_for '^cad-guest-up' 60 || { kill_bg; fail "the guest did not start its command"; }
	# The keyboard is probed before init runs; atkbd names it once it answered.
	wait_for 'input: AT .*keyboard' 10 ||
		{ kill_bg; fail "the guest kernel found no keyboard behind the i8042"; }

	api PUT /actions cad
	expect_code 204 "SendCtrlAltDel"
	# flint should end by itself; a watchdog ends it (status 137) if not.
	# (Short sleeps: once killed it leaves no long sleep holding the output.)
	(
		n=150
		while [ $n -gt 0 ]; do
			sleep 0.2
			n=$((n - 1))
		done
		kill -KILL "$pid"
	) >/dev/null 2>&1 </dev/null &
	watchdog=$!
	wait_bg
	kill "$watchdog" 2>/dev/null
	[ "$status" != 137 ] || fail "flint still ran 30 s after SendCtrlAltDel"
	expect_status 0 "the guest's reset after Ctrl-Alt-Del"
	expect_out 'flint-init: Ctrl-Alt-Del, rebooting' "init's Ctrl-Alt-Del line"
	grep -q '^cad-guest-not-rebooted' "$OUT" && fail "the guest's command ran to its end"
	echo "Ctrl-Alt-Del rebooted the guest (words: ${1:-none}); flint ended with 0"
}

cad_once ""
cad_once "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
