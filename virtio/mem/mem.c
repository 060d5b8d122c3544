/* virtio-mem; see mem.h. A bitmap, one bit per block of the region (set:
 * plugged), allocated at creation, and a count of the bits set. Requests
 * are taken whole as they come: each is copied out of the guest's buffers
 * once, checked against the bitmap, carried out through the host, and
 * answered.
 *
 * Threads and locking as balloon.c: one mutex (lock) over everything that
 * changes; the vmem_host callbacks and host->used, host->needs_reset and
 * host->config_changed are called with it held (they take no lock of the
 * device's, virtio.h), but for an unplug: the host gives the memory back
 * (madvise(MADV_DONTNEED)), which with the Uffd backend waits until
 * somebody reads its UFFD_EVENT_REMOVE, once the handler is gone the main
 * thread, which takes lock for the metrics and the API. So an unplug runs
 * with lock let go and work held: work, taken before lock by whoever
 * processes the queue or calls the host, keeps the queue, the chain being
 * taken (segs) and the bitmap that thread's meanwhile (a reset cannot come
 * either: the transport runs it and notify under its dev_lock). A save
 * takes lock only: it runs with the loop parked and the vCPUs paused, so
 * no queue is being processed. */
#include "mem/mem.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SAVE_VERSION 1u
/* The smallest block: Linux's driver wants at least its pageblock (2 MiB
 * on x86-64), and so does Firecracker. */
#define MIN_BLOCK (2ull << 20)
/* No region ends past the widest guest-physical address space (52 bits):
 * it bounds the bitmap (at most 2^31 bits, 256 MiB, for 2 MiB blocks). */
#define GPA_LIMIT (1ull << 52)

#define WORD_BITS 64u

struct vmem {
	uint64_t addr, region_size, block_size;
	unsigned block_shift;
	uint64_t nblocks; /* region_size / block_size */
	struct vmem_host mh;

	pthread_mutex_t work; /* the queue, segs and map: their processing */
	pthread_mutex_t lock; /* everything below */
	bool active;	      /* activated, not reset */
	bool broken;	      /* needs_reset asked: take nothing more */
	bool logged_ring, logged_req, logged_host;
	bool logged_features; /* activate's, which the transport serializes */
	uint64_t *map;	      /* nblocks bits: plugged */
	uint64_t plugged;     /* bits set in map */
	uint64_t requested;   /* bytes */
	struct vq *vq;
	struct virtio_host host;
	struct vq_seg segs[VQ_MAX_INDIRECT];
	struct vmem_counters n;
};

static void protocol_error(struct vmem *m, struct virtio_after *a, int err)
{
	m->n.protocol_errors++;
	m->broken = true;
	a->reset = true;
	if (!m->logged_ring)
		pr_err("virtio-mem: guest broke the queue (%s); device needs reset",
		       strerror(-err));
	m->logged_ring = true;
}

static void push(struct vmem *m, struct virtio_after *a, uint16_t head, uint32_t len)
{
	if (vq_push(m->vq, head, len) == 0)
		a->used = 1; /* queue 0 */
}

/* The bitmap. Block numbers are relative to the region's start. */

static uint64_t words(uint64_t nbits)
{
	return (nbits + WORD_BITS - 1) / WORD_BITS;
}

/* The mask of n bits (1..64) from bit b of a word, b + n <= 64. */
static uint64_t mask_of(unsigned b, uint64_t n)
{
	return (n == WORD_BITS ? ~0ull : (1ull << n) - 1) << b;
}

/* Walk [first, first + count) a word at a time: set or clear its bits
 * (count_on false), or count those set. */
static uint64_t walk_bits(uint64_t *map, uint64_t first, uint64_t count, bool on, bool count_on)
{
	uint64_t i = first, end = first + count, n_on = 0;

	while (i < end) {
		unsigned b = i % WORD_BITS;
		uint64_t n = WORD_BITS - b < end - i ? WORD_BITS - b : end - i;
		uint64_t mask = mask_of(b, n);

		if (count_on)
			n_on += (uint64_t)__builtin_popcountll(map[i / WORD_BITS] & mask);
		else if (on)
			map[i / WORD_BITS] |= mask;
		else
			map[i / WORD_BITS] &= ~mask;
		i += n;
	}
	return n_on;
}

static void set_bits(uint64_t *map, uint64_t first, uint64_t count, bool on)
{
	walk_bits(map, first, count, on, false);
}

/* The first block at or after i whose bit is `on`, or nbits. Skips whole
 * words: the region may hold millions of blocks. */
static uint64_t find_bit(const uint64_t *map, uint64_t nbits, uint64_t i, bool on)
{
	while (i < nbits) {
		uint64_t w = map[i / WORD_BITS];

		if (!on)
			w = ~w;
		w &= ~0ull << (i % WORD_BITS);
		if (w) {
			i = i / WORD_BITS * WORD_BITS + (uint64_t)__builtin_ctzll(w);
			return i < nbits ? i : nbits;
		}
		i = (i / WORD_BITS + 1) * WORD_BITS;
	}
	return nbits;
}

/* The plugged blocks of [first, first + count). */
static uint64_t count_plugged(struct vmem *m, uint64_t first, uint64_t count)
{
	return walk_bits(m->map, first, count, false, true);
}

static uint64_t block_gpa(const struct vmem *m, uint64_t block)
{
	return m->addr + (block << m->block_shift);
}

/* Copy n bytes of the chain's readable bytes (write false) or to its
 * writable bytes (write true), from their start, across segments. The
 * caller has checked that there are that many. */
static void chain_copy(const struct vq_chain *c, bool write, void *buf, size_t n)
{
	uint8_t *p = buf;

	for (uint32_t i = 0; i < c->nseg && n; i++) {
		const struct vq_seg *s = &c->seg[i];
		size_t k = s->len < n ? s->len : n;

		if (s->write != write)
			continue;
		if (write)
			memcpy(s->host, p, k);
		else
			memcpy(p, s->host, k);
		p += k;
		n -= k;
	}
}

static void request_error(struct vmem *m, const char *what, uint64_t addr, uint16_t nb)
{
	m->n.errors++;
	if (!m->logged_req)
		pr_err("virtio-mem: %s (0x%llx, %u blocks); answered ERROR", what,
		       (unsigned long long)addr, nb);
	m->logged_req = true;
}

static void host_error(struct vmem *m, const char *what, uint64_t gpa, uint64_t len, int err)
{
	m->n.errors++;
	if (!m->logged_host)
		pr_err("virtio-mem: cannot %s 0x%llx-0x%llx: %s; answered ERROR", what,
		       (unsigned long long)gpa, (unsigned long long)(gpa + len - 1),
		       strerror(-err));
	m->logged_host = true;
}

/* A request's range as block numbers: false (an error counted) when it is
 * not nb > 0 blocks from a block-aligned addr wholly inside the usable
 * region. Overflow-safe: nb_blocks is 16 bits, but addr is the guest's. */
static bool range(struct vmem *m, uint64_t addr, uint16_t nb, uint64_t *first)
{
	uint64_t off = addr - m->addr;

	if (nb == 0 || addr < m->addr || off >= m->region_size || off & (m->block_size - 1) ||
	    nb > m->nblocks - (off >> m->block_shift)) {
		request_error(m, "a request for a bad range", addr, nb);
		return false;
	}
	*first = off >> m->block_shift;
	return true;
}

static uint16_t do_plug(struct vmem *m, uint64_t addr, uint16_t nb)
{
	uint64_t first, len = (uint64_t)nb << m->block_shift;
	int err;

	m->n.plug++;
	if (!range(m, addr, nb, &first))
		return VIRTIO_MEM_RESP_ERROR;
	if (count_plugged(m, first, nb)) {
		request_error(m, "a plug request with a plugged block", addr, nb);
		return VIRTIO_MEM_RESP_ERROR;
	}
	if (((m->plugged + nb) << m->block_shift) > m->requested) {
		m->n.nacks++;
		return VIRTIO_MEM_RESP_NACK;
	}
	if ((err = m->mh.plug(m->mh.ctx, addr, len)) < 0) {
		host_error(m, "plug", addr, len, err);
		return VIRTIO_MEM_RESP_ERROR;
	}
	set_bits(m->map, first, nb, true);
	m->plugged += nb;
	return VIRTIO_MEM_RESP_ACK;
}

/* The host's unplug, with lock let go (see the top). work and lock held. */
static int host_unplug(struct vmem *m, uint64_t gpa, uint64_t len)
{
	int err;

	pthread_mutex_unlock(&m->lock);
	err = m->mh.unplug(m->mh.ctx, gpa, len);
	pthread_mutex_lock(&m->lock);
	return err;
}

static uint16_t do_unplug(struct vmem *m, uint64_t addr, uint16_t nb)
{
	uint64_t first, len = (uint64_t)nb << m->block_shift;
	int err;

	m->n.unplug++;
	if (!range(m, addr, nb, &first))
		return VIRTIO_MEM_RESP_ERROR;
	if (count_plugged(m, first, nb) != nb) {
		request_error(m, "an unplug request with an unplugged block", addr, nb);
		return VIRTIO_MEM_RESP_ERROR;
	}
	if ((err = host_unplug(m, addr, len)) < 0) {
		host_error(m, "unplug", addr, len, err);
		return VIRTIO_MEM_RESP_ERROR;
	}
	set_bits(m->map, first, nb, false);
	m->plugged -= nb;
	return VIRTIO_MEM_RESP_ACK;
}

static uint16_t do_unplug_all(struct vmem *m)
{
	uint64_t i = 0;

	m->n.unplug_all++;
	while ((i = find_bit(m->map, m->nblocks, i, true)) < m->nblocks) {
		uint64_t end = find_bit(m->map, m->nblocks, i, false);
		uint64_t gpa = block_gpa(m, i), len = (end - i) << m->block_shift;
		int err = host_unplug(m, gpa, len);

		if (err < 0) {
			host_error(m, "unplug", gpa, len, err);
			return VIRTIO_MEM_RESP_ERROR;
		}
		set_bits(m->map, i, end - i, false);
		m->plugged -= end - i;
		i = end;
	}
	return VIRTIO_MEM_RESP_ACK;
}

static uint16_t do_state(struct vmem *m, uint64_t addr, uint16_t nb, uint16_t *state)
{
	uint64_t first, n;

	m->n.state++;
	if (!range(m, addr, nb, &first))
		return VIRTIO_MEM_RESP_ERROR;
	n = count_plugged(m, first, nb);
	*state = n == nb  ? VIRTIO_MEM_STATE_PLUGGED
		 : n == 0 ? VIRTIO_MEM_STATE_UNPLUGGED
			  : VIRTIO_MEM_STATE_MIXED;
	return VIRTIO_MEM_RESP_ACK;
}

/* Answer one chain. work and lock held. */
static void take(struct vmem *m, struct virtio_after *a, const struct vq_chain *c)
{
	struct virtio_mem_req req;
	struct virtio_mem_resp resp;
	uint16_t type, ans, state = 0;
	uint64_t addr;
	uint16_t nb;

	if (c->readable < sizeof(req) || c->writable < sizeof(resp)) {
		m->n.errors++;
		if (!m->logged_req)
			pr_err("virtio-mem: a request with %s; given back empty",
			       c->readable < sizeof(req) ? "a short request"
							 : "no room for the response");
		m->logged_req = true;
		push(m, a, c->head, 0);
		return;
	}
	chain_copy(c, false, &req, sizeof(req));
	type = le16toh(req.type);
	/* plug, unplug and state lay out addr and nb_blocks alike. */
	addr = le64toh(req.u.plug.addr);
	nb = le16toh(req.u.plug.nb_blocks);

	switch (type) {
	case VIRTIO_MEM_REQ_PLUG:
		ans = do_plug(m, addr, nb);
		break;
	case VIRTIO_MEM_REQ_UNPLUG:
		ans = do_unplug(m, addr, nb);
		break;
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		ans = do_unplug_all(m);
		break;
	case VIRTIO_MEM_REQ_STATE:
		ans = do_state(m, addr, nb, &state);
		break;
	default:
		m->n.errors++;
		if (!m->logged_req)
			pr_err("virtio-mem: a request of unknown type %u; answered ERROR", type);
		m->logged_req = true;
		ans = VIRTIO_MEM_RESP_ERROR;
		break;
	}
	memset(&resp, 0, sizeof(resp));
	resp.type = htole16(ans);
	resp.u.state.state = htole16(state);
	chain_copy(c, true, &resp, sizeof(resp));
	push(m, a, c->head, sizeof(resp));
}

/* Answer every chain available, up to VIRTIO_BUDGET (then ask to be
 * notified again). work and lock held. */
static void process(struct vmem *m, struct virtio_after *a)
{
	for (unsigned k = 0;; k++) {
		struct vq_chain c = {.seg = m->segs, .cap = ARRAY_SIZE(m->segs)};
		int n;

		if (virtio_budget_spent(a, 0, k))
			return;
		n = vq_pop(m->vq, &c);

		if (n < 0) {
			protocol_error(m, a, n);
			return;
		}
		if (n == 0) {
			vq_enable_notify(m->vq);
			if (!vq_has_work(m->vq))
				return;
			vq_disable_notify(m->vq);
			continue;
		}
		take(m, a, &c);
	}
}

static uint64_t vmem_features(void *dev)
{
	(void)dev;
	return 1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE;
}

static void vmem_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct vmem *m = dev;
	struct virtio_mem_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.block_size = htole64(m->block_size);
	cfg.addr = htole64(m->addr);
	cfg.region_size = htole64(m->region_size);
	cfg.usable_region_size = htole64(m->region_size);
	pthread_mutex_lock(&m->lock);
	cfg.plugged_size = htole64(m->plugged << m->block_shift);
	cfg.requested_size = htole64(m->requested);
	pthread_mutex_unlock(&m->lock);
	virtio_config_copy(&cfg, sizeof(cfg), off, data, len);
}

/* Read-only for the driver. */
static void vmem_config_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	(void)dev, (void)off, (void)data, (void)len;
}

static int vmem_activate(void *dev, uint64_t features, struct vq *queues,
			 const struct virtio_host *host)
{
	struct vmem *m = dev;

	if (!queues[0].ready || queues[0].size > VMEM_QUEUE_MAX)
		return -EINVAL;
	if (!(features & 1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE)) {
		/* Once: a driver resets and tries again as often as it likes. */
		if (!m->logged_features)
			pr_err("virtio-mem: the driver does not accept UNPLUGGED_INACCESSIBLE "
			       "(Linux before 5.16?); device needs reset");
		m->logged_features = true;
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	m->vq = &queues[0];
	m->host = *host;
	m->active = true;
	m->broken = false;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* The queue is forgotten; what is plugged and requested stays. */
static void vmem_reset(void *dev)
{
	struct vmem *m = dev;

	pthread_mutex_lock(&m->lock);
	m->active = m->broken = false;
	m->vq = NULL;
	m->host = (struct virtio_host){0};
	pthread_mutex_unlock(&m->lock);
}

static void vmem_notify(void *dev, unsigned q)
{
	struct vmem *m = dev;
	struct virtio_after a = {.used = 0};

	if (q != 0)
		return;
	pthread_mutex_lock(&m->work);
	pthread_mutex_lock(&m->lock);
	if (m->active && !m->broken) {
		a.host = m->host;
		process(m, &a);
		virtio_after_run(&a);
	}
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&m->work);
}

const struct virtio_dev_ops vmem_ops = {
    .device_id = VIRTIO_ID_MEM,
    .num_queues = 1,
    .queue_max = VMEM_QUEUE_MAX,
    .features = vmem_features,
    .config_read = vmem_config_read,
    .config_write = vmem_config_write,
    .activate = vmem_activate,
    .reset = vmem_reset,
    .notify = vmem_notify,
};

int vmem_create(struct vmem **out, const struct vmem_params *p)
{
	struct vmem *m;
	uint64_t bs = p->block_size;

	*out = NULL;
	if (bs < MIN_BLOCK || bs & (bs - 1) || !p->region_size || p->region_size % bs ||
	    p->addr % bs || p->addr >= GPA_LIMIT || p->region_size > GPA_LIMIT - p->addr ||
	    !p->host.plug || !p->host.unplug)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->addr = p->addr;
	m->region_size = p->region_size;
	m->block_size = bs;
	m->block_shift = (unsigned)__builtin_ctzll(bs);
	m->nblocks = p->region_size >> m->block_shift;
	m->mh = p->host;
	m->map = calloc(words(m->nblocks), sizeof(*m->map));
	if (!m->map) {
		free(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->work, NULL);
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void vmem_destroy(struct vmem *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->work);
	free(m->map);
	free(m);
}

int vmem_set_requested(struct vmem *m, uint64_t bytes)
{
	if (bytes % m->block_size || bytes > m->region_size)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	m->requested = bytes;
	if (m->active)
		virtio_config_changed(&m->host);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void vmem_get_info(struct vmem *m, struct vmem_info *out)
{
	pthread_mutex_lock(&m->lock);
	*out = (struct vmem_info){
	    .addr = m->addr,
	    .region_size = m->region_size,
	    .block_size = m->block_size,
	    .plugged = m->plugged << m->block_shift,
	    .requested = m->requested,
	};
	pthread_mutex_unlock(&m->lock);
}

void vmem_get_counters(struct vmem *m, struct vmem_counters *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->n;
	pthread_mutex_unlock(&m->lock);
}

void vmem_plugged_ranges(struct vmem *m, void (*fn)(void *ctx, uint64_t gpa, uint64_t len),
			 void *ctx)
{
	uint64_t i = 0;

	pthread_mutex_lock(&m->work);
	pthread_mutex_lock(&m->lock);
	while ((i = find_bit(m->map, m->nblocks, i, true)) < m->nblocks) {
		uint64_t end = find_bit(m->map, m->nblocks, i, false);

		fn(ctx, block_gpa(m, i), (end - i) << m->block_shift);
		i = end;
	}
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&m->work);
}

/* The state: u32 version; u64 addr, region_size, block_size (checked
 * against the device restored into); u64 requested; u64 the number of
 * runs, then each maximal run of plugged blocks, in address order, as u64
 * first block and u64 block count. Runs rather than the bitmap: a few of
 * them describe any region a driver fills from its start. */
int vmem_save(const struct vmem *m, struct wbuf *w)
{
	struct vmem *mm = (struct vmem *)m; /* the lock only */
	uint64_t runs = 0, i = 0;

	pthread_mutex_lock(&mm->lock);
	wput_u32(w, SAVE_VERSION);
	wput_u64(w, m->addr);
	wput_u64(w, m->region_size);
	wput_u64(w, m->block_size);
	wput_u64(w, m->requested);
	while ((i = find_bit(m->map, m->nblocks, i, true)) < m->nblocks) {
		runs++;
		i = find_bit(m->map, m->nblocks, i, false);
	}
	wput_u64(w, runs);
	i = 0;
	while ((i = find_bit(m->map, m->nblocks, i, true)) < m->nblocks) {
		uint64_t end = find_bit(m->map, m->nblocks, i, false);

		wput_u64(w, i);
		wput_u64(w, end - i);
		i = end;
	}
	pthread_mutex_unlock(&mm->lock);
	return wbuf_err(w);
}

int vmem_restore(struct vmem *m, struct rbuf *r, char *err, size_t errlen)
{
	uint32_t version = rget_u32(r);
	uint64_t addr = rget_u64(r), region = rget_u64(r), bs = rget_u64(r);
	uint64_t requested = rget_u64(r), runs = rget_u64(r), next = 0, plugged = 0;
	uint64_t *map;

	if (rbuf_err(r) < 0)
		return err_set(err, errlen, -EBADMSG, "virtio-mem: truncated state");
	if (version != SAVE_VERSION)
		return err_set(err, errlen, -EPROTONOSUPPORT,
			       "virtio-mem: state version %u, this flint reads %u", version,
			       SAVE_VERSION);
	if (addr != m->addr || region != m->region_size || bs != m->block_size)
		return err_set(err, errlen, -EINVAL,
			       "virtio-mem: saved for a region of 0x%llx bytes at 0x%llx in "
			       "blocks of 0x%llx, configured 0x%llx at 0x%llx in 0x%llx",
			       (unsigned long long)region, (unsigned long long)addr,
			       (unsigned long long)bs, (unsigned long long)m->region_size,
			       (unsigned long long)m->addr, (unsigned long long)m->block_size);
	if (requested % bs || requested > region)
		return err_set(err, errlen, -EBADMSG,
			       "virtio-mem: a requested size of 0x%llx bytes, not whole blocks "
			       "of the region",
			       (unsigned long long)requested);
	/* Runs are separated by at least one unplugged block. */
	if (runs > (m->nblocks + 1) / 2)
		return err_set(err, errlen, -EBADMSG, "virtio-mem: %llu runs of plugged blocks",
			       (unsigned long long)runs);
	map = calloc(words(m->nblocks), sizeof(*map));
	if (!map)
		return err_set(err, errlen, -ENOMEM, "virtio-mem: no memory for the bitmap");
	for (uint64_t k = 0; k < runs; k++) {
		uint64_t first = rget_u64(r), count = rget_u64(r);

		if (rbuf_err(r) < 0) {
			free(map);
			return err_set(err, errlen, -EBADMSG, "virtio-mem: truncated state");
		}
		/* In order, apart, non-empty and inside the region. */
		if (first < next || (k && first == next) || count == 0 || first >= m->nblocks ||
		    count > m->nblocks - first) {
			free(map);
			return err_set(err, errlen, -EBADMSG,
				       "virtio-mem: a bad run of plugged blocks (%llu, %llu)",
				       (unsigned long long)first, (unsigned long long)count);
		}
		set_bits(map, first, count, true);
		plugged += count;
		next = first + count;
	}
	pthread_mutex_lock(&m->work);
	pthread_mutex_lock(&m->lock);
	free(m->map);
	m->map = map;
	m->plugged = plugged;
	m->requested = requested;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&m->work);
	return 0;
}
