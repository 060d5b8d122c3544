/* The virtio-pmem device kind (PUT /pmem/{id}): each device's file mapped
 * into the guest above RAM, where the guest reads and writes it directly,
 * and its flush queue (virtio/pmem). /dev/pmem0 is the first configured. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/device_kinds.h"
#include "pmem/pmem.h"

#define ULL(x) ((unsigned long long)(x))

/* One device: its file, the mapping the guest sees, and the queue. */
struct pmem_dev {
	struct pmem *q;
	int fd;
	void *map;
	uint64_t map_len;  /* the file's size rounded up to DEVICE_MEMMAP_ALIGN */
	uint64_t file_len; /* the file's size when mapped */
	uint64_t gpa;
	char id[VMC_MAX_ID + 1];
};

static unsigned pmem_count(const struct vm_config *c)
{
	return c->npmem;
}

static char *pmem_id(const struct vm_config *c, unsigned i)
{
	return strdup(c->pmem[i].id);
}

static void pmem_dev_free(struct pmem_dev *p)
{
	pmem_destroy(p->q);
	if (p->map)
		munmap(p->map, p->map_len);
	close_fd(&p->fd);
	free(p);
}

/* Open and lock the file (shared when read-only, else exclusive, as a
 * drive's image), and map it: shared, so the guest's stores reach the
 * file; the tail of the last DEVICE_MEMMAP_ALIGN block past the file's end
 * is anonymous memory whose writes reach nothing (as Firecracker's). */
static int map_backing(struct pmem_dev *p, const struct vmc_pmem *c)
{
	int prot = PROT_READ | (c->read_only ? 0 : PROT_WRITE);
	struct stat st;
	int holder, r;

	if ((r = open_regular(c->path_on_host, c->read_only ? O_RDONLY : O_RDWR, &st)) == -EINVAL) {
		pr_err("pmem %s: %s is not a regular file", c->id, c->path_on_host);
		return r;
	}
	if (r < 0) {
		pr_err("pmem %s: cannot open %s: %s", c->id, c->path_on_host, strerror(-r));
		return r;
	}
	p->fd = r;
	if (st.st_size == 0) {
		pr_err("pmem %s: %s is empty", c->id, c->path_on_host);
		return -EINVAL;
	}
	if ((r = lock_file(p->fd, !c->read_only, &holder)) == -EAGAIN) {
		pr_err("pmem %s: %s is in use %s by another device or process", c->id,
		       c->path_on_host, holder == F_WRLCK ? "read-write" : "read-only");
		return -EBUSY;
	}
	if (r < 0)
		pr_warn("pmem %s: cannot lock %s: %s", c->id, c->path_on_host, strerror(-r));
	p->file_len = (uint64_t)st.st_size;
	if (p->file_len > UINT64_MAX - DEVICE_MEMMAP_ALIGN)
		return -EFBIG;
	p->map_len = (p->file_len + DEVICE_MEMMAP_ALIGN - 1) & ~(DEVICE_MEMMAP_ALIGN - 1);
	/* At a 2 MiB boundary of flint's address space too, so that a file
	 * on hugetlbfs maps and one the host backs with huge pages reaches
	 * the guest in huge pages: one more block reserved, the slack
	 * either side given back. */
	uint8_t *res = mmap(NULL, p->map_len + DEVICE_MEMMAP_ALIGN, prot,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		r = -errno;
		pr_err("pmem %s: cannot reserve %llu bytes: %s", c->id, ULL(p->map_len),
		       strerror(errno));
		return r;
	}
	uint8_t *at = (uint8_t *)(((uintptr_t)res + DEVICE_MEMMAP_ALIGN - 1) &
				  ~(uintptr_t)(DEVICE_MEMMAP_ALIGN - 1));
	if (at > res)
		munmap(res, (size_t)(at - res));
	munmap(at + p->map_len, (size_t)(res + DEVICE_MEMMAP_ALIGN - at));
	p->map = at;
	if (mmap(p->map, p->file_len, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, p->fd, 0) ==
	    MAP_FAILED) {
		r = -errno;
		pr_err("pmem %s: cannot map %s: %s", c->id, c->path_on_host, strerror(errno));
		return r;
	}
	return 0;
}

static int pmem_kind_create(const struct vm_config *c, unsigned i, const char *id,
			    const struct device_env *env, struct device_new *out)
{
	const struct vmc_pmem *cfg = &c->pmem[i];
	struct pmem_dev *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->fd = -1;
	snprintf(p->id, sizeof(p->id), "%s", id);
	if (!env->memmap) {
		pr_err("pmem %s: this VM cannot map memory for devices", id);
		r = -EOPNOTSUPP;
		goto err;
	}
	if ((r = map_backing(p, cfg)) < 0 ||
	    (r = env->memmap->map(env->memmap->ctx, p->map, p->map_len, cfg->read_only, &p->gpa)) <
		0)
		goto err;
	struct pmem_params pp = {.id = id,
				 .start = p->gpa,
				 .size = p->map_len,
				 .fd = p->fd,
				 .file_bytes = p->file_len,
				 .rate_limiter = cfg->rate_limiter,
				 .loop = env->loop};
	if ((r = pmem_create(&p->q, &pp)) < 0)
		goto err;
	*out = (struct device_new){.priv = p, .ops = &pmem_ops, .front = p->q};
	return 0;
err:
	pmem_dev_free(p);
	return r;
}

static void pmem_kind_destroy(void *dev)
{
	pmem_dev_free(dev);
}

static void pmem_print_stats(const struct device *d)
{
	struct pmem_dev *p = device_priv(d);
	struct virtio_mmio_queue_stats q;
	struct pmem_stats s;

	device_queue_stats(d, 0, &q);
	pmem_get_stats(p->q, &s);
	pr_info("pmem%u (%s): %llu MiB at %#llx; flushes=%llu syncs=%llu throttled=%llu "
		"errors=%llu; queue: notifications=%llu interrupts=%llu",
		device_index(d), device_id(d), ULL(p->map_len >> 20), ULL(p->gpa), ULL(s.requests),
		ULL(s.syncs), ULL(s.rate_limiter_throttled), ULL(s.errors + s.protocol_errors),
		ULL(q.notifications), ULL(q.interrupts));
}

/* Firecracker's pmem metric names, and flint's flush counts. */
static void pmem_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	struct virtio_mmio_queue_stats q;
	struct pmem_stats s;

	device_queue_stats(d, 0, &q);
	pmem_get_stats(((struct pmem_dev *)device_priv(d))->q, &s);
	emit(ctx, "activate_fails", s.activate_fails);
	emit(ctx, "cfg_fails", s.cfg_fails);
	emit(ctx, "event_fails", s.errors + s.protocol_errors);
	emit(ctx, "queue_event_count", q.notifications);
	emit(ctx, "rate_limiter_throttled_events", s.rate_limiter_throttled);
	emit(ctx, "flush_count", s.requests);
	emit(ctx, "sync_count", s.syncs);
}

/* PATCH /pmem/{id}: the rate limiter, the only thing that changes. */
static int pmem_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		       struct vm_err *err)
{
	struct pmem_dev *p = dev;
	int r;

	if ((changes & DEVICE_CHANGE_LIMITS) &&
	    (r = pmem_set_ratelimit(p->q, &c->pmem[i].rate_limiter)) < 0)
		return vm_err_set(err, r, "pmem %s: rate limiter: %s", c->pmem[i].id, strerror(-r));
	return 0;
}

/* Snapshot: a sync under way ends and is answered; a batch the limiter
 * holds goes back to the guest. */
static int pmem_kind_drain(void *dev, uint64_t deadline_ns, struct vm_err *err)
{
	struct pmem_dev *p = dev;

	if (pmem_drain(p->q, deadline_ns) < 0)
		return vm_err_set(
		    err, -ETIMEDOUT,
		    "pmem device %s: the sync of its file (%llu MiB) did not end in time", p->id,
		    ULL(p->file_len >> 20));
	return 0;
}

/* A host program that shrinks the file takes away what the guest maps:
 * its next touch past the new end would wait in KVM for ever. */
static int pmem_kind_check(void *dev, char *err, size_t errlen)
{
	const struct pmem_dev *p = dev;
	struct stat st;

	if (fstat(p->fd, &st) < 0 || (uint64_t)st.st_size >= p->file_len)
		return 0;
	snprintf(err, errlen,
		 "its file shrank from %llu to %llu bytes while the guest ran on it: a host "
		 "program truncated it, and what the guest maps past the new end is gone",
		 ULL(p->file_len), ULL(st.st_size));
	return -EIO;
}

static void pmem_kind_quiesce(void *dev)
{
	pmem_quiesce(((struct pmem_dev *)dev)->q);
}

#define PMEM_STATE_VERSION 2

/* Where the guest found the device: a restore must put it at the same
 * place with the same size, or the guest's page tables and its driver
 * point at the wrong memory. The file's contents are the file's. Version
 * 2 adds the rate limiter's state (ratelimit_state_put); a version 1
 * device's buckets start full. */
static int pmem_kind_save(const void *dev, struct wbuf *w)
{
	const struct pmem_dev *p = dev;
	struct ratelimit_state rl;

	pmem_save_limits(p->q, &rl);
	wput_u32(w, PMEM_STATE_VERSION);
	wput_u64(w, p->gpa);
	wput_u64(w, p->map_len);
	ratelimit_state_put(w, &rl);
	return wbuf_err(w);
}

static int pmem_kind_restore(void *dev, struct rbuf *r, char *err, size_t errlen)
{
	const struct pmem_dev *p = dev;
	struct ratelimit_state rl;
	uint32_t version = rget_u32(r);
	uint64_t gpa, size;

	if (rbuf_err(r) == 0 && (version < 1 || version > PMEM_STATE_VERSION))
		return err_set(err, errlen, -EBADMSG, "its state is of another version");
	gpa = rget_u64(r);
	size = rget_u64(r);
	if (version >= 2)
		ratelimit_state_get(r, &rl);
	if (rbuf_err(r) < 0)
		return err_set(err, errlen, -EBADMSG, "its state is truncated");
	if (size != p->map_len) {
		snprintf(err, errlen,
			 "its file now maps %llu bytes, the snapshot's %llu: it must be the "
			 "size it was",
			 ULL(p->map_len), ULL(size));
		return -EINVAL;
	}
	if (gpa != p->gpa) {
		snprintf(err, errlen, "it now lies at %#llx, in the snapshot at %#llx", ULL(p->gpa),
			 ULL(gpa));
		return -EINVAL;
	}
	return kind_limits_restored(pmem_restore_limits(p->q, version < 2 ? NULL : &rl),
				    "its rate limiter", err, errlen);
}

const struct device_kind pmem_kind = {
    .name = "pmem",
    .label = "pmem device",
    .metrics_section = "pmem_",
    .count = pmem_count,
    .id = pmem_id,
    .create = pmem_kind_create,
    .destroy = pmem_kind_destroy,
    .print_stats = pmem_print_stats,
    .counters = pmem_counters,
    .update = pmem_update,
    .drain = pmem_kind_drain,
    .quiesce = pmem_kind_quiesce,
    .check = pmem_kind_check,
    .save = pmem_kind_save,
    .restore = pmem_kind_restore,
};
