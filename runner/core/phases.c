/* phases: flint's phase events for `flint bench`. See phases.h; the lines'
 * format is bench/phase.h's. */
#include "core/phases.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/phase.h"
#include "core/vcpu.h"

/* Where one vCPU's counters are: one pread of [pos, pos + len) of its
 * statistics fd, counter e at at[e] in it (-1: KVM has no such one). */
#define STATS_SPAN_MAX 4096
struct stat_span {
	int fd; /* the vCPU's, not ours */
	uint64_t pos;
	size_t len;
	int at[BE_COUNT];
};

enum { KIND_UNKNOWN, KIND_BOOT, KIND_RESTORE };

atomic_bool phases_entry_pending;

static int out_fd = -1;
static atomic_int kind;
static atomic_uint done;     /* a bit per phase written */
static atomic_uint entering; /* vCPU threads at their first KVM_RUN */
static unsigned nvcpus;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* spans, exits_done */
static struct stat_span *spans;
static unsigned nspans;
static bool exits_done;

static void put_line(const char *line, int n)
{
	if (n <= 0 || n >= PHASE_LINE_MAX)
		return;
	/* Non-blocking: a full pipe loses the line rather than stall. */
	ssize_t w = write(out_fd, line, (size_t)n);
	(void)w;
}

static void put_phase(enum bench_phase p, uint64_t us)
{
	char line[PHASE_LINE_MAX];

	put_line(line, snprintf(line, sizeof(line), "phase %s %llu\n", phase_wire_name(p),
				(unsigned long long)us));
}

int phases_open(int fd, uint64_t launch)
{
	int fl;

	if (fd <= 0)
		return 0;
	if ((fl = fcntl(fd, F_GETFD)) < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0 ||
	    (fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	out_fd = fd;
	atomic_store(&kind, KIND_UNKNOWN);
	atomic_store(&done, 1u << BP_PROCESS);
	atomic_store(&entering, 0);
	exits_done = false;
	put_phase(BP_PROCESS, launch / 1000);
	return 0;
}

void phases_close(void)
{
	phases_end();
	atomic_store(&phases_entry_pending, false);
	out_fd = -1;
}

bool phases_on(void)
{
	return out_fd >= 0;
}

void phases_mark(enum bench_phase p)
{
	if (out_fd < 0 || (unsigned)p >= BP_COUNT || !phase_wire_name(p))
		return;
	if (p != BP_PROCESS) {
		int want = phase_is_restore(p) ? KIND_RESTORE : KIND_BOOT, k = KIND_UNKNOWN;

		if (!atomic_compare_exchange_strong(&kind, &k, want) && k != want)
			return;
	}
	if (atomic_fetch_or(&done, 1u << p) & (1u << p))
		return;
	put_phase(p, now_us());
}

/* Where vCPU v's counters are in its statistics (main thread, once). */
static void locate(struct vcpu *v, struct stat_span *s)
{
	struct kvm_stats_header h;
	uint64_t pos[BE_COUNT], lo = UINT64_MAX, hi = 0;
	uint8_t *descs = NULL;
	size_t dsz;

	s->fd = -1;
	for (int e = 0; e < BE_COUNT; e++)
		s->at[e] = -1, pos[e] = UINT64_MAX;
	if (v->stats_fd < 0 || pread(v->stats_fd, &h, sizeof(h), 0) != sizeof(h) ||
	    h.num_desc == 0 || h.num_desc > 4096 || h.name_size == 0 || h.name_size > 4096)
		return;
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	if (!(descs = malloc(dsz * h.num_desc)) ||
	    pread(v->stats_fd, descs, dsz * h.num_desc, h.desc_offset) !=
		(ssize_t)(dsz * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsz);

		for (int e = 0; e < BE_COUNT; e++)
			if (d->size == 1 && !strncmp(d->name, bench_exit_name(e), h.name_size)) {
				pos[e] = h.data_offset + d->offset;
				lo = pos[e] < lo ? pos[e] : lo;
				hi = pos[e] + 8 > hi ? pos[e] + 8 : hi;
			}
	}
	if (lo == UINT64_MAX || hi - lo > STATS_SPAN_MAX)
		goto out;
	s->fd = v->stats_fd;
	s->pos = lo;
	s->len = hi - lo;
	for (int e = 0; e < BE_COUNT; e++)
		s->at[e] = pos[e] == UINT64_MAX ? -1 : (int)(pos[e] - lo);
out:
	free(descs);
}

void phases_arm(struct vcpu *vcpus, unsigned n)
{
	if (out_fd < 0)
		return;
	pthread_mutex_lock(&lock);
	free(spans);
	nspans = 0;
	spans = n ? calloc(n, sizeof(*spans)) : NULL;
	for (unsigned i = 0; spans && i < n; i++)
		locate(&vcpus[i], &spans[i]);
	nspans = spans ? n : 0;
	pthread_mutex_unlock(&lock);
	nvcpus = n;
	atomic_store(&entering, 0);
	if (atomic_load(&kind) != KIND_RESTORE)
		atomic_store(&phases_entry_pending, true);
}

void phases_vcpu_entering(void)
{
	if (out_fd >= 0 && atomic_fetch_add(&entering, 1) + 1 == nvcpus)
		phases_mark(BP_VCPUS_STARTED);
}

void phases_kernel_entry(void)
{
	if (atomic_exchange(&phases_entry_pending, false))
		phases_mark(BP_KERNEL_ENTRY);
}

/* The exits line, once: one pread per vCPU. Under lock. */
static void put_exits(void)
{
	uint64_t sum[BE_COUNT] = {0};
	bool have[BE_COUNT] = {0};
	uint8_t buf[STATS_SPAN_MAX];
	char line[PHASE_LINE_MAX];
	int n;

	if (exits_done || !nspans)
		return;
	exits_done = true;
	for (unsigned i = 0; i < nspans; i++) {
		const struct stat_span *s = &spans[i];

		if (s->fd < 0 || pread(s->fd, buf, s->len, (off_t)s->pos) != (ssize_t)s->len)
			continue;
		for (int e = 0; e < BE_COUNT; e++) {
			uint64_t v;

			if (s->at[e] < 0)
				continue;
			memcpy(&v, buf + s->at[e], sizeof(v));
			sum[e] += v;
			have[e] = true;
		}
	}
	n = snprintf(line, sizeof(line), "exits");
	for (int e = 0; e < BE_COUNT; e++)
		if (have[e] && n > 0 && (size_t)n < sizeof(line))
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu",
				      bench_exit_name(e), (unsigned long long)sum[e]);
	if (n > 5 && (size_t)n + 1 < sizeof(line)) {
		line[n++] = '\n';
		put_line(line, n);
	}
}

void phases_output(void)
{
	if (out_fd < 0)
		return;
	phases_mark(atomic_load(&kind) == KIND_RESTORE ? BP_FIRST_RESPONSE : BP_FIRST_OUTPUT);
	pthread_mutex_lock(&lock);
	put_exits();
	pthread_mutex_unlock(&lock);
}

void phases_end(void)
{
	if (out_fd < 0)
		return;
	pthread_mutex_lock(&lock);
	put_exits();
	free(spans);
	spans = NULL;
	nspans = 0;
	pthread_mutex_unlock(&lock);
	atomic_store(&phases_entry_pending, false);
}
