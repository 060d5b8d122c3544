#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct bus_range {
	uint64_t base, len;
	const struct bus_ops *ops;
	void *opaque;
};

/* Sorted by base, non-overlapping: lookups are a binary search. */
struct bus {
	struct bus_range *r;
	size_t n, cap;
};

int bus_create(struct bus **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void bus_destroy(struct bus *b)
{
	if (!b)
		return;
	free(b->r);
	free(b);
}

/* Index of the first range whose base is > addr. */
static size_t upper(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->r[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	if (len == 0 || base + len - 1 < base)
		return -EINVAL;
	size_t i = upper(b, base);
	/* The range before must end before base; the one after must start after
	 * our last byte. */
	if (i > 0 && base - b->r[i - 1].base < b->r[i - 1].len)
		return -EEXIST;
	if (i < b->n && b->r[i].base <= base + len - 1)
		return -EEXIST;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct bus_range *r = realloc(b->r, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		b->r = r;
		b->cap = cap;
	}
	memmove(&b->r[i + 1], &b->r[i], (b->n - i) * sizeof(*b->r));
	b->r[i] = (struct bus_range){.base = base, .len = len, .ops = ops, .opaque = opaque};
	b->n++;
	return 0;
}

/* The range holding all of [addr, addr+len), or NULL. */
static const struct bus_range *find(const struct bus *b, uint64_t addr, uint32_t len)
{
	size_t i = upper(b, addr);
	if (i == 0 || len == 0)
		return NULL;
	const struct bus_range *r = &b->r[i - 1];
	uint64_t off = addr - r->base;
	if (off >= r->len || len > r->len - off)
		return NULL;
	return r;
}

bool bus_read(const struct bus *b, uint64_t addr, void *data, uint32_t len)
{
	const struct bus_range *r = find(b, addr, len);
	memset(data, 0xff, len);
	if (!r)
		return false;
	if (r->ops->read)
		r->ops->read(r->opaque, addr - r->base, data, len);
	return true;
}

bool bus_write(const struct bus *b, uint64_t addr, const void *data, uint32_t len)
{
	const struct bus_range *r = find(b, addr, len);
	if (!r)
		return false;
	if (r->ops->write)
		r->ops->write(r->opaque, addr - r->base, data, len);
	return true;
}
