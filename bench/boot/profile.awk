# bench/boot/trace's guest profile: where the guest's own time goes, up to
# init, from the RIPs of its exits for the host's interrupts (reason
# "interrupt": mostly L1's timer tick). Those come whatever the guest is
# doing, so they sample it with nothing in the guest; each RIP is named
# from the kernel's symbols. Code that runs before the guest enables
# paging reports a physical RIP, named as the kernel's mapping of it;
# samples in user space (init) are counted as one. Only the low 32 bits
# of kernel addresses are compared: the kernel's text is in one 2 GiB
# window, and awk's numbers are doubles.
#   nm -n vmlinux | awk -v ends="S1 S2 ..." -v top=N -f profile.awk - TRACE1 TRACE2 ...
# ends: each trace's init time (its boot timer), in the trace's clock (s).
function hex32(s,    n, i, c) {
	sub(/^0x/, "", s)
	if (length(s) > 8)
		s = substr(s, length(s) - 7)
	n = 0
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", tolower(substr(s, i, 1)))
		if (c == 0)
			return -1
		n = n * 16 + c - 1
	}
	return n
}
# The symbol at or below address a (binary search of the sorted text).
function name(a,    lo, hi, mid) {
	if (a < 2147483648)
		a += 2147483648
	lo = 1; hi = nsym
	if (nsym == 0 || a < addr[1])
		return "?"
	while (lo < hi) {
		mid = int((lo + hi + 1) / 2)
		if (addr[mid] <= a) lo = mid; else hi = mid - 1
	}
	return sym[lo]
}
# A RIP's function: the kernel's mapping (ffffffff...), the kernel's
# physical copy before paging (16 MiB up to 1 GiB), or else user space
# (init and the programs it starts before it writes the boot timer).
function where(rip,    h) {
	h = rip
	sub(/^0x/, "", h)
	if (length(h) == 16 && h ~ /^ffffffff/)
		return name(hex32(h))
	if (length(h) <= 8 && hex32(h) >= 16777216 && hex32(h) < 1073741824)
		return name(hex32(h))
	return "(user space)"
}
BEGIN {
	split(ends, end_s, " ")
	LABEL = "^(_stext|_text|__[a-z_]*_(start|end))$"
	# Each file's place among the arguments, the symbols first: counting
	# files as they start would skip an empty one and shift the ends.
	for (i = 1; i < ARGC; i++)
		if (!(ARGV[i] in argpos))
			argpos[ARGV[i]] = i
	ntrace = ARGC - 2
}
FILENAME != cur {
	cur = FILENAME
	nfile = (FILENAME in argpos) ? argpos[FILENAME] : 1
}
nfile == 1 {
	if (NF >= 3 && $2 ~ /^[tTwW]$/ && $1 ~ /^ffffffff/) {
		a = hex32($1)
		if (nsym == 0 || a > addr[nsym]) { nsym++; addr[nsym] = a; sym[nsym] = $3 }
		else if (a == addr[nsym] && sym[nsym] ~ LABEL && $3 !~ LABEL)
			sym[nsym] = $3	# a function over a section's label
	}
	next
}
# SVM's name for the exit (trace.awk, like the rig, is AMD's); VMX calls
# it EXTERNAL_INTERRUPT.
/kvm_exit:/ && / reason interrupt / {
	for (i = 1; i <= NF; i++)
		if ($i ~ /^[0-9]+\.[0-9]+:$/) { t = substr($i, 1, length($i) - 1) + 0; break }
	if (t > end_s[nfile - 1] + 0)
		next
	for (j = i; j < NF; j++)
		if ($j == "rip") { hits[where($(j + 1))]++; total++; break }
}
END {
	if (total == 0) { print "profile: no timer exits before init in the traces"; exit 1 }
	printf "guest profile, %d timer-exit samples up to init over %d boot(s):\n", total, ntrace
	n = 0
	for (s in hits) { n++; key[n] = s }
	for (i = 1; i <= n; i++)          # insertion sort by count, few hundred names
		for (j = i; j > 1 && hits[key[j]] > hits[key[j - 1]]; j--) { k = key[j]; key[j] = key[j - 1]; key[j - 1] = k }
	for (i = 1; i <= n && i <= top; i++)
		printf "  %5.1f%%  %4d  %s\n", 100 * hits[key[i]] / total, hits[key[i]], key[i]
}
