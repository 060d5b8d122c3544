# Turns launch-to-marker's output for one run into one line:
#   run vmm=NAME ms=T status=S total=N npf=N cpuid=N msr=N ioio=N intr=N vintr=N hlt=N other=N own=N
# (SVM exit codes: 0x400 nested page fault, 0x72 CPUID, 0x7c MSR, 0x7b IOIO,
# 0x60 physical interrupt, 0x64 virtual interrupt window, 0x78 HLT.)
BEGIN {
	name[1024] = "npf"; name[114] = "cpuid"; name[124] = "msr"; name[123] = "ioio"
	name[96] = "intr"; name[100] = "vintr"; name[120] = "hlt"
}
/^ms=/ {
	split($1, a, "="); ms = a[2]
	split($2, b, "="); status = b[2]
}
/hitcount/ {
	# { exit_reason:       1024 } hitcount:       1226
	line = $0
	gsub(/[{}:]/, " ", line)
	n = split(line, f, " ")
	reason = f[2]; count = f[4]
	k = (reason in name) ? name[reason] : "other"
	c[k] += count; total += count
}
END {
	printf "run vmm=%s ms=%s status=%s total=%d", vmm, ms, status, total
	split("npf cpuid msr ioio intr vintr hlt other", ks, " ")
	for (i = 1; i <= 8; i++)
		printf " %s=%d", ks[i], c[ks[i]]
	printf " own=%s\n", own
}
