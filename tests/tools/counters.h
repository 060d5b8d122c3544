/* The counters the benchmarks read around a measured interval, shared by the
 * static tools (tests/tools, bench/blk): in a guest, the virtio interrupts in
 * /proc/interrupts; in the host (the rig's L1), KVM's exits by SVM exit
 * reason from the kvm_exit tracepoint histogram that bench/exits.sh sets up
 * (keys=exit_reason). Header only: each tool is one static program. */
#ifndef FLINT_TOOLS_COUNTERS_H
#define FLINT_TOOLS_COUNTERS_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KVM_EXITS_MAX_REASONS 128

/* One reading of the histogram. */
struct kvm_exits {
	int n;
	long reason[KVM_EXITS_MAX_REASONS];
	unsigned long long count[KVM_EXITS_MAX_REASONS];
};

/* The sum over CPUs of the /proc/interrupts lines naming virtio; 0 when
 * the file cannot be read. */
static inline uint64_t virtio_irqs(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[1024];
	uint64_t sum = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!p || !strstr(line, "virtio"))
			continue;
		for (p++;;) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

/* Reads the histogram file: lines "{ exit_reason: 1024 } hitcount: 1226".
 * Returns 0 or -errno (h is then empty). */
static inline int kvm_exits_read(const char *path, struct kvm_exits *h)
{
	static char text[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);

	if (n < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	text[n > 0 ? n : 0] = '\0';
	h->n = 0;
	for (char *l = strtok(text, "\n"); l && h->n < KVM_EXITS_MAX_REASONS;
	     l = strtok(NULL, "\n")) {
		char *r = strstr(l, "exit_reason:"), *c = strstr(l, "hitcount:");

		if (!r || !c)
			continue;
		h->reason[h->n] = strtol(r + strlen("exit_reason:"), NULL, 10);
		h->count[h->n] = strtoull(c + strlen("hitcount:"), NULL, 10);
		h->n++;
	}
	return err;
}

/* Exits of reason b->reason[i] between readings a and b. */
static inline unsigned long long kvm_exits_delta(const struct kvm_exits *a,
						 const struct kvm_exits *b, int i)
{
	for (int j = 0; j < a->n; j++)
		if (a->reason[j] == b->reason[i])
			return b->count[i] - a->count[j];
	return b->count[i];
}

/* Writes " total=N r<REASON>=N..." (decimal reasons, non-zero ones) for the
 * exits between a and b into out, truncated to len. */
static inline void kvm_exits_format(char *out, size_t len, const struct kvm_exits *a,
				    const struct kvm_exits *b)
{
	unsigned long long total = 0;
	size_t n;

	for (int i = 0; i < b->n; i++)
		total += kvm_exits_delta(a, b, i);
	n = (size_t)snprintf(out, len, " total=%llu", total);
	for (int i = 0; i < b->n && n < len; i++) {
		unsigned long long d = kvm_exits_delta(a, b, i);

		if (d)
			n += (size_t)snprintf(out + n, len - n, " r%ld=%llu", b->reason[i], d);
	}
}

#endif
