/* Token-bucket rate limiter; see ratelimit.h.
 *
 * Overflow: every config field is at most INT64_MAX < 2^63, so a bucket's
 * refill time in ns, R = refill_time_ms * 1e6, is below 2^83, and the refill
 * sum elapsed * size + frac is below 2^64 * 2^63 + 2^83 < 2^128: it is
 * computed in 128 bits and cannot wrap. Request sizes are any uint64_t; a
 * debt is at most one request. The one product that can exceed 128 bits,
 * deficit * R in the wait, is checked and saturates. */
#include "core/ratelimit.h"

#include <errno.h>
#include <string.h>

typedef unsigned __int128 u128;

#define NS_PER_MS 1000000u

static bool limits(const struct ratelimit_bucket_cfg *c)
{
	return c->size && c->refill_time_ms;
}

static u128 refill_ns(const struct ratelimit_bucket *b)
{
	return (u128)b->cfg.refill_time_ms * NS_PER_MS;
}

static bool cfg_valid(const struct ratelimit_cfg *cfg)
{
	const struct ratelimit_bucket_cfg *c[] = {&cfg->bandwidth, &cfg->ops};

	for (unsigned i = 0; i < ARRAY_SIZE(c); i++)
		if (c[i]->size > INT64_MAX || c[i]->one_time_burst > INT64_MAX ||
		    c[i]->refill_time_ms > INT64_MAX)
			return false;
	return true;
}

/* Full, with the whole burst, refilling from now. */
static void bucket_reset(struct ratelimit_bucket *b, const struct ratelimit_bucket_cfg *c,
			 uint64_t now)
{
	memset(b, 0, sizeof(*b));
	b->cfg = *c;
	b->tokens = c->size;
	b->burst = c->one_time_burst;
	b->last = now;
}

/* Add the tokens earned since b->last. Time that went backwards earns
 * nothing and refilling goes on from the earlier time, so a clock that
 * jumps back neither underflows nor stalls the bucket. A full bucket earns
 * nothing either: its refill restarts when something is taken. */
static void refill(struct ratelimit_bucket *b, uint64_t now)
{
	uint64_t elapsed = now > b->last ? now - b->last : 0;

	b->last = now;
	if (!b->debt && b->tokens == b->cfg.size) {
		b->frac = 0;
		return;
	}
	if (!elapsed)
		return;

	u128 r = refill_ns(b);
	u128 units = (u128)elapsed * b->cfg.size + b->frac;
	u128 earned = units / r;
	u128 need = (u128)b->debt + (b->cfg.size - b->tokens);

	if (earned >= need) {
		b->tokens = b->cfg.size;
		b->debt = 0;
		b->frac = 0;
		return;
	}
	b->frac = units % r;
	if (earned <= b->debt) {
		b->debt -= (uint64_t)earned;
	} else {
		b->tokens += (uint64_t)(earned - b->debt);
		b->debt = 0;
	}
}

/* How many tokens short the bucket is of passing n tokens now (0: it
 * passes). Call after refill(). */
static u128 shortfall(const struct ratelimit_bucket *b, uint64_t n)
{
	uint64_t m;

	if (!limits(&b->cfg) || n <= b->burst)
		return 0;
	m = n - b->burst;
	if (m > b->cfg.size) /* oversized: passes once nothing is owed */
		return b->debt;
	if (b->debt)
		return (u128)b->debt + m;
	return m > b->tokens ? m - b->tokens : 0;
}

static void take(struct ratelimit_bucket *b, uint64_t n)
{
	uint64_t m;

	if (!limits(&b->cfg))
		return;
	if (n <= b->burst) {
		b->burst -= n;
		return;
	}
	m = n - b->burst;
	b->burst = 0;
	if (m <= b->tokens) {
		b->tokens -= m;
	} else {
		b->debt = m - b->tokens;
		b->tokens = 0;
	}
}

/* The least t with (t * size + frac) / R >= short: the first nanosecond at
 * which refill() has earned `short` more tokens. */
static uint64_t wait_for(const struct ratelimit_bucket *b, u128 short_by)
{
	u128 units, t;

	if (!short_by)
		return 0;
	if (__builtin_mul_overflow(short_by, refill_ns(b), &units))
		return UINT64_MAX;
	units -= b->frac; /* short_by >= 1, so units >= R > frac */
	t = units / b->cfg.size + (units % b->cfg.size != 0);
	return t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

int ratelimit_init(struct ratelimit *rl, const struct ratelimit_cfg *cfg, uint64_t now)
{
	if (!cfg_valid(cfg))
		return -EINVAL;
	bucket_reset(&rl->bandwidth, &cfg->bandwidth, now);
	bucket_reset(&rl->ops, &cfg->ops, now);
	rl->throttled = 0;
	return 0;
}

bool ratelimit_enabled(const struct ratelimit *rl)
{
	return limits(&rl->bandwidth.cfg) || limits(&rl->ops.cfg);
}

static void refill_all(struct ratelimit *rl, uint64_t now)
{
	if (limits(&rl->bandwidth.cfg))
		refill(&rl->bandwidth, now);
	if (limits(&rl->ops.cfg))
		refill(&rl->ops, now);
}

bool ratelimit_consume(struct ratelimit *rl, uint64_t now, uint64_t bytes, uint64_t ops)
{
	if (!ratelimit_enabled(rl))
		return true;
	refill_all(rl, now);
	if (shortfall(&rl->bandwidth, bytes) || shortfall(&rl->ops, ops)) {
		rl->throttled++;
		return false;
	}
	take(&rl->bandwidth, bytes);
	take(&rl->ops, ops);
	return true;
}

uint64_t ratelimit_wait_ns(struct ratelimit *rl, uint64_t now, uint64_t bytes, uint64_t ops)
{
	uint64_t a, b;

	if (!ratelimit_enabled(rl))
		return 0;
	refill_all(rl, now);
	/* The buckets refill independently and nothing is taken meanwhile:
	 * the request passes when the later of the two has enough. */
	a = wait_for(&rl->bandwidth, shortfall(&rl->bandwidth, bytes));
	b = wait_for(&rl->ops, shortfall(&rl->ops, ops));
	return a > b ? a : b;
}

static void bucket_update(struct ratelimit_bucket *b, const struct ratelimit_bucket_cfg *c,
			  uint64_t now)
{
	if (!limits(&b->cfg) || !limits(c)) {
		bucket_reset(b, c, now);
		return;
	}
	refill(b, now); /* earned at the old rate */
	/* Progress towards the next token is in the old rate's units: drop
	 * it (under one token). */
	if (c->size != b->cfg.size || c->refill_time_ms != b->cfg.refill_time_ms)
		b->frac = 0;
	if (b->tokens >= c->size) { /* full: no progress towards more */
		b->tokens = c->size;
		b->frac = 0;
	}
	if (b->burst > c->one_time_burst)
		b->burst = c->one_time_burst;
	b->cfg = *c;
}

int ratelimit_update(struct ratelimit *rl, const struct ratelimit_cfg *cfg, uint64_t now)
{
	if (!cfg_valid(cfg))
		return -EINVAL;
	bucket_update(&rl->bandwidth, &cfg->bandwidth, now);
	bucket_update(&rl->ops, &cfg->ops, now);
	return 0;
}

static void bucket_save(const struct ratelimit_bucket *b, struct ratelimit_bucket_state *s)
{
	s->tokens = b->tokens;
	s->debt = b->debt;
	s->burst = b->burst;
	s->frac_hi = (uint64_t)(b->frac >> 64);
	s->frac_lo = (uint64_t)b->frac;
}

void ratelimit_save(const struct ratelimit *rl, uint64_t now, struct ratelimit_state *st)
{
	struct ratelimit at = *rl;

	memset(st, 0, sizeof(*st));
	refill_all(&at, now);
	st->cfg.bandwidth = at.bandwidth.cfg;
	st->cfg.ops = at.ops.cfg;
	bucket_save(&at.bandwidth, &st->bandwidth);
	bucket_save(&at.ops, &st->ops);
	st->throttled = at.throttled;
}

/* Whether s is a state a bucket configured as c can be in. */
static bool state_valid(const struct ratelimit_bucket_cfg *c,
			const struct ratelimit_bucket_state *s)
{
	u128 frac = (u128)s->frac_hi << 64 | s->frac_lo;

	if (!limits(c))
		return true;
	/* A burst left beside a bucket that is not full is a state: a PATCH
	 * that raised the size keeps the tokens (ratelimit_update). */
	return s->tokens <= c->size && s->burst <= c->one_time_burst && !(s->debt && s->tokens) &&
	       !(s->burst && s->debt) && frac < (u128)c->refill_time_ms * NS_PER_MS;
}

static void bucket_restore(struct ratelimit_bucket *b, const struct ratelimit_bucket_cfg *c,
			   const struct ratelimit_bucket_state *s, uint64_t now)
{
	bucket_reset(b, c, now);
	if (!limits(c))
		return;
	b->tokens = s->tokens;
	b->debt = s->debt;
	b->burst = s->burst;
	b->frac = (u128)s->frac_hi << 64 | s->frac_lo;
}

int ratelimit_restore(struct ratelimit *rl, const struct ratelimit_state *st, uint64_t now)
{
	if (!cfg_valid(&st->cfg) || !state_valid(&st->cfg.bandwidth, &st->bandwidth) ||
	    !state_valid(&st->cfg.ops, &st->ops))
		return -EINVAL;
	bucket_restore(&rl->bandwidth, &st->cfg.bandwidth, &st->bandwidth, now);
	bucket_restore(&rl->ops, &st->cfg.ops, &st->ops, now);
	rl->throttled = st->throttled;
	return 0;
}

bool ratelimit_bucket_cfg_eq(const struct ratelimit_bucket_cfg *a,
			     const struct ratelimit_bucket_cfg *b)
{
	return a->size == b->size && a->one_time_burst == b->one_time_burst &&
	       a->refill_time_ms == b->refill_time_ms;
}

bool ratelimit_cfg_eq(const struct ratelimit_cfg *a, const struct ratelimit_cfg *b)
{
	return ratelimit_bucket_cfg_eq(&a->bandwidth, &b->bandwidth) &&
	       ratelimit_bucket_cfg_eq(&a->ops, &b->ops);
}

int ratelimit_resume(struct ratelimit *rl, const struct ratelimit_state *st, uint64_t now)
{
	const struct ratelimit_cfg own = {.bandwidth = rl->bandwidth.cfg, .ops = rl->ops.cfg};
	struct ratelimit next;

	if (!st) {
		if (ratelimit_init(&next, &own, now) < 0)
			return -EINVAL;
	} else if (ratelimit_restore(&next, st, now) < 0 ||
		   ratelimit_update(&next, &own, now) < 0) {
		return -EINVAL;
	}
	next.throttled = rl->throttled;
	*rl = next;
	return 0;
}

static void put_bucket(struct wbuf *w, const struct ratelimit_bucket_cfg *c,
		       const struct ratelimit_bucket_state *s)
{
	const uint64_t v[] = {c->size, c->one_time_burst, c->refill_time_ms, s->tokens,
			      s->debt, s->burst,	  s->frac_hi,	     s->frac_lo};

	for (unsigned i = 0; i < ARRAY_SIZE(v); i++)
		wput_u64(w, v[i]);
}

static void get_bucket(struct rbuf *r, struct ratelimit_bucket_cfg *c,
		       struct ratelimit_bucket_state *s)
{
	uint64_t *v[] = {&c->size, &c->one_time_burst, &c->refill_time_ms, &s->tokens,
			 &s->debt, &s->burst,	       &s->frac_hi,	   &s->frac_lo};

	for (unsigned i = 0; i < ARRAY_SIZE(v); i++)
		*v[i] = rget_u64(r);
}

void ratelimit_state_put(struct wbuf *w, const struct ratelimit_state *st)
{
	put_bucket(w, &st->cfg.bandwidth, &st->bandwidth);
	put_bucket(w, &st->cfg.ops, &st->ops);
}

void ratelimit_state_get(struct rbuf *r, struct ratelimit_state *st)
{
	memset(st, 0, sizeof(*st));
	get_bucket(r, &st->cfg.bandwidth, &st->bandwidth);
	get_bucket(r, &st->cfg.ops, &st->ops);
}
