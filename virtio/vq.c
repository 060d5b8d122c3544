/* Split virtqueue, device side. Rules from virtio 1.x 2.7 and Linux vringh.c;
 * memory ordering as in Linux vhost and Firecracker queue.rs.
 *
 * Guest memory is little-endian x86 and so is the host: ring fields are read
 * in place. Fields the guest writes concurrently are read with __atomic loads
 * (relaxed unless said otherwise) so the compiler fetches each exactly once;
 * descriptors are copied to a local before they are looked at, so a guest
 * rewriting one mid-check cannot slip a different value past the check. */
#include "vq.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "rings are read in place");

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/* The bytes of a queue's three rings (descriptors, available, used) of
 * size entries; with event_idx each of the last two has one more u16. */
struct ring_lens {
	uint64_t desc, avail, used;
};

static struct ring_lens ring_lens(uint32_t size, bool event_idx)
{
	uint64_t ev = event_idx ? sizeof(uint16_t) : 0;

	return (struct ring_lens){
	    .desc = (uint64_t)size * sizeof(struct vring_desc),
	    .avail = sizeof(struct vring_avail) + (uint64_t)size * sizeof(uint16_t) + ev,
	    .used =
		sizeof(struct vring_used) + (uint64_t)size * sizeof(struct vring_used_elem) + ev,
	};
}

/* The checks a queue's placement must pass, whoever gives it (the guest's
 * set-up, a restored snapshot): q is reset, then set up and ready, or left
 * reset with *why saying what failed. */
static int place(struct vq *q, struct gmem *g, uint32_t size, uint64_t desc, uint64_t avail,
		 uint64_t used, bool event_idx, const char **why)
{
	struct ring_lens len = ring_lens(size, event_idx);

	vq_reset(q);
	*why = "size not a power of two in 1..32768";
	if (!is_pow2(size) || size > VQ_MAX_SIZE)
		return -EINVAL;
	*why = "a ring misaligned";
	if (desc % VRING_DESC_ALIGN_SIZE || avail % VRING_AVAIL_ALIGN_SIZE ||
	    used % VRING_USED_ALIGN_SIZE)
		return -EINVAL;
	/* Guest RAM regions are page aligned on the host too, so a ring aligned
	 * in guest-physical space is aligned for the host loads below. */
	q->desc = gmem_ptr(g, desc, len.desc);
	q->avail = gmem_ptr(g, avail, len.avail);
	q->used = gmem_ptr(g, used, len.used);
	if (!q->desc || !q->avail || !q->used) {
		vq_reset(q);
		*why = "a ring not wholly in guest memory";
		return -EINVAL;
	}
	q->gmem = g;
	q->size = size;
	q->event_idx = event_idx;
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	q->ready = true;
	*why = NULL;
	return 0;
}

int vq_activate(struct vq *q, struct gmem *g, uint32_t size, uint64_t desc, uint64_t avail,
		uint64_t used, bool event_idx)
{
	const char *why;

	return place(q, g, size, desc, avail, used, event_idx, &why);
}

void vq_reset(struct vq *q)
{
	memset(q, 0, sizeof(*q));
}

/* used_event (avail->ring[size]) and avail_event (after used->ring[size]);
 * activation checked both lie in RAM when event_idx is set. */
static uint16_t *used_event(const struct vq *q)
{
	return &q->avail->ring[q->size];
}

static uint16_t *avail_event(const struct vq *q)
{
	return (uint16_t *)&q->used->ring[q->size];
}

/* Totals of a chain being walked, kept in 64 bits so they cannot wrap. */
struct walk {
	uint64_t tot[2]; /* readable, writable */
	bool seen_write;
};

/* Add descriptor d to the chain: readable never after writable, totals at
 * most UINT32_MAX, the buffer wholly in RAM. */
static int add_seg(const struct vq *q, struct vq_chain *c, struct walk *w,
		   const struct vring_desc *d)
{
	bool write = d->flags & VRING_DESC_F_WRITE;
	void *host;

	if (!write && w->seen_write)
		return -EINVAL;
	w->seen_write |= write;
	/* Order is judged on every descriptor, but one with no bytes has nothing
	 * to map (QEMU rejects these; Firecracker and vringh take them). */
	if (d->len == 0)
		return 0;
	w->tot[write] += d->len;
	if (w->tot[write] > UINT32_MAX)
		return -EOVERFLOW;
	if (c->nseg == c->cap)
		return -E2BIG;
	/* A writable buffer is marked dirty for snapshots now, before the
	 * device fills it (gmem_ptr_w). */
	host = write ? gmem_ptr_w(q->gmem, d->addr, d->len) : gmem_ptr(q->gmem, d->addr, d->len);
	if (!host)
		return -EFAULT;
	c->seg[c->nseg++] =
	    (struct vq_seg){.gpa = d->addr, .len = d->len, .write = write, .host = host};
	return 0;
}

/* Walk the chain starting at head: the queue's table first, then at most one
 * indirect table, which must end the chain (2.7.5.3: zero or more direct
 * descriptors followed by one INDIRECT). ttl is the current table's size: a
 * chain that visits more entries than the table has must loop. */
static int walk_chain(const struct vq *q, uint16_t head, struct vq_chain *c)
{
	/* Bytes, not descriptors: an indirect table need not be aligned. */
	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t num = q->size, ttl = q->size, i = head;
	struct walk w = {{0, 0}, false};
	bool in_indirect = false;
	struct vring_desc d;
	int err;

	c->nseg = 0;
	c->head = head;
	c->readable = c->writable = 0;
	for (;;) {
		if (ttl-- == 0)
			return -ELOOP;
		memcpy(&d, table + (size_t)i * sizeof(d), sizeof(d)); /* one fetch; see the top */
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect || (d.flags & VRING_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % sizeof(d) || d.len / sizeof(d) > VQ_MAX_INDIRECT)
				return -EINVAL;
			table = gmem_ptr(q->gmem, d.addr, d.len);
			if (!table)
				return -EFAULT;
			in_indirect = true;
			num = ttl = d.len / sizeof(d);
			i = 0;
			continue;
		}
		err = add_seg(q, c, &w, &d);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= num)
			return -EINVAL;
		i = d.next;
	}
	c->readable = w.tot[0];
	c->writable = w.tot[1];
	return 0;
}

int vq_pop(struct vq *q, struct vq_chain *c)
{
	uint16_t avail_idx, pending, head;
	int err;

	if (!q->ready || q->broken)
		return -EIO;
	/* Acquire pairs with the guest's write barrier between filling a ring
	 * entry and bumping idx: entries up to idx are visible after this. */
	avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	pending = avail_idx - q->last_avail;
	if (pending == 0)
		return 0;
	if (pending > q->size) {
		err = -EIO;
		goto err_broken;
	}
	head = __atomic_load_n(&q->avail->ring[q->last_avail & (q->size - 1)], __ATOMIC_RELAXED);
	if (head >= q->size) {
		err = -EINVAL;
		goto err_broken;
	}
	err = walk_chain(q, head, c);
	if (err)
		goto err_broken;
	q->last_avail++;
	q->pops++;
	return 1;

err_broken:
	c->nseg = 0;
	q->broken = true;
	q->errors++;
	return err;
}

int vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e;

	if (!q->ready || head >= q->size)
		return -EINVAL;
	e = &q->used->ring[q->next_used & (q->size - 1)];
	__atomic_store_n(&e->id, head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	q->next_used++;
	/* Release: the guest that sees the new idx sees the element too. */
	__atomic_store_n(&q->used->idx, q->next_used, __ATOMIC_RELEASE);
	gmem_mark_dirty_host(q->gmem, e, sizeof(*e));
	gmem_mark_dirty_host(q->gmem, &q->used->idx, sizeof(q->used->idx));
	return 0;
}

int vq_discard(struct vq *q, uint16_t n)
{
	if ((uint16_t)(q->last_avail - q->next_used) < n)
		return -EINVAL;
	q->last_avail -= n;
	return 0;
}

bool vq_need_interrupt(struct vq *q)
{
	bool need;

	if (!q->ready)
		return false;
	/* Full fence: our used->idx store must be visible before we read the
	 * guest's used_event / flags, or we race with a guest that re-enables
	 * interrupts and re-checks used->idx (it pairs with the guest's mb()). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		uint16_t old = q->signalled_used, event;
		bool valid = q->signalled_valid;

		q->signalled_used = q->next_used;
		q->signalled_valid = true;
		event = __atomic_load_n(used_event(q), __ATOMIC_RELAXED);
		need = !valid || vring_need_event(event, q->next_used, old);
	} else {
		uint16_t flags = __atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED);
		need = !(flags & VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (need)
		q->interrupts++;
	else
		q->notifications_suppressed++;
	return need;
}

static void set_no_notify(struct vq *q, bool on)
{
	uint16_t f = __atomic_load_n(&q->used->flags, __ATOMIC_RELAXED);

	f = on ? f | VRING_USED_F_NO_NOTIFY : f & ~VRING_USED_F_NO_NOTIFY;
	__atomic_store_n(&q->used->flags, f, __ATOMIC_RELAXED);
	gmem_mark_dirty_host(q->gmem, &q->used->flags, sizeof(f));
}

void vq_enable_notify(struct vq *q)
{
	if (!q->ready)
		return;
	if (q->event_idx) {
		__atomic_store_n(avail_event(q), q->last_avail, __ATOMIC_RELAXED);
		gmem_mark_dirty_host(q->gmem, avail_event(q), sizeof(uint16_t));
	} else
		set_no_notify(q, false);
	/* Full fence: the store above must be visible before the caller reads
	 * avail->idx in vq_has_work, or a guest that added a buffer meanwhile
	 * and still saw notifications off would never kick. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void vq_disable_notify(struct vq *q)
{
	if (q->ready && !q->event_idx)
		set_no_notify(q, true);
}

bool vq_has_work(const struct vq *q)
{
	if (!q->ready || q->broken)
		return false;
	return __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) != q->last_avail;
}

uint16_t vq_avail_idx(const struct vq *q)
{
	return q->ready ? __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) : 0;
}

uint16_t vq_notify_next(struct vq *q)
{
	uint16_t idx;

	if (!q->ready)
		return 0;
	idx = vq_avail_idx(q);
	if (q->event_idx) {
		__atomic_store_n(avail_event(q), idx, __ATOMIC_RELAXED);
		gmem_mark_dirty_host(q->gmem, avail_event(q), sizeof(uint16_t));
	} else
		set_no_notify(q, false);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return idx;
}

/* Snapshot state, version 1: ready; for a ready queue its placement, then
 * the indexes and the EVENT_IDX decision state. The counters are stats and
 * are not saved. */
#define VQ_STATE_V1 1

bool vq_in_memory(const struct vq *q)
{
	struct ring_lens len = ring_lens(q->size, q->event_idx);

	return !q->ready || (gmem_ptr(q->gmem, q->desc_gpa, len.desc) &&
			     gmem_ptr(q->gmem, q->avail_gpa, len.avail) &&
			     gmem_ptr(q->gmem, q->used_gpa, len.used));
}

int vq_save(const struct vq *q, struct wbuf *w)
{
	wput_u32(w, VQ_STATE_V1);
	wput_u8(w, q->ready);
	if (q->ready) {
		wput_u8(w, q->event_idx);
		wput_u8(w, q->broken);
		wput_u32(w, q->size);
		wput_u64(w, q->desc_gpa);
		wput_u64(w, q->avail_gpa);
		wput_u64(w, q->used_gpa);
		wput_u16(w, q->last_avail);
		wput_u16(w, q->next_used);
		wput_u16(w, q->signalled_used);
		wput_u8(w, q->signalled_valid);
	}
	return wbuf_err(w);
}

/* A refusal: -errno, err saying which field (fmt is a literal). */
#define refuse(e, err, errlen, ...) err_set(err, errlen, e, "vq: " __VA_ARGS__)

int vq_restore(struct vq *q, struct gmem *g, struct rbuf *r, char *err, size_t errlen)
{
	bool ready, event_idx = false, broken = false, signalled_valid = false, bad = false;
	uint16_t last_avail = 0, next_used = 0, signalled_used = 0, in_flight;
	uint64_t desc = 0, avail = 0, used = 0;
	uint32_t version, size = 0;
	const char *why;
	struct vq n;

	version = rget_u32(r);
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated before its version");
	if (version != VQ_STATE_V1)
		return refuse(-EBADMSG, err, errlen, "state version %u, this flint reads %u",
			      version, VQ_STATE_V1);
	ready = rget_bool(r, &bad);
	if (ready) {
		event_idx = rget_bool(r, &bad);
		broken = rget_bool(r, &bad);
		size = rget_u32(r);
		desc = rget_u64(r);
		avail = rget_u64(r);
		used = rget_u64(r);
		last_avail = rget_u16(r);
		next_used = rget_u16(r);
		signalled_used = rget_u16(r);
		signalled_valid = rget_bool(r, &bad);
	}
	if (rbuf_err(r))
		return refuse(-EBADMSG, err, errlen, "state truncated");
	if (bad)
		return refuse(-EBADMSG, err, errlen, "a flag neither 0 nor 1");
	if (!ready) {
		vq_reset(q);
		return 0;
	}
	/* The very checks a guest's own set-up goes through. */
	if (place(&n, g, size, desc, avail, used, event_idx, &why))
		return refuse(-EINVAL, err, errlen,
			      "size %u, desc %#llx, avail %#llx, used %#llx refused: %s", size,
			      (unsigned long long)desc, (unsigned long long)avail,
			      (unsigned long long)used, why);
	/* Every chain pushed was popped first, so the device holds at most a
	 * ring's worth. (avail->idx is in guest memory, which may not be
	 * loaded yet: vq_pop checks it against last_avail as always.) */
	in_flight = (uint16_t)(last_avail - next_used);
	if (in_flight > size)
		return refuse(-EINVAL, err, errlen,
			      "%u chains in flight (last_avail %u, used idx %u) on a queue of %u",
			      in_flight, last_avail, next_used, size);
	n.broken = broken;
	n.last_avail = last_avail;
	n.next_used = next_used;
	n.signalled_used = signalled_used;
	n.signalled_valid = signalled_valid;
	*q = n;
	return 0;
}
