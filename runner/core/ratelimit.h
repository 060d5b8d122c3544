/* A device's I/O rate limiter, as Firecracker's API defines one: two
 * independent token buckets, one counting bytes (bandwidth) and one counting
 * operations (ops). Pure arithmetic: the caller passes the time in
 * (CLOCK_MONOTONIC nanoseconds, now_ns()), so there is no clock, thread,
 * lock or allocation here, and tests are deterministic. One thread at a
 * time: a device's on its event loop, the I/O APIC's under its lock.
 *
 * A bucket holds up to `size` tokens and refills at size tokens per
 * refill_time_ms, continuously and exactly (integer arithmetic, the fraction
 * of a token carried from call to call, so no drift over any run). It starts
 * full, plus `one_time_burst` tokens on top that are spent first and never
 * come back; the bucket only starts to refill once the burst is spent. A
 * bucket with size 0 or refill_time_ms 0 does not limit.
 *
 * A request larger than the bucket (after what is left of the burst) is not
 * refused for its size: once the bucket owes nothing it passes, empties the
 * bucket, and the shortfall becomes a debt that the refill repays before any
 * later request passes; so the rate holds over time and nothing waits
 * forever (Firecracker lets such a request through and then blocks the
 * limiter for as long as the excess takes to refill).
 *
 * Use: ratelimit_consume() before doing a request; when it refuses, keep the
 * request, arm one timer for ratelimit_wait_ns() and try again when it
 * fires. */
#ifndef FLINT_RATELIMIT_H
#define FLINT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"
#include "core/wire.h"

/* One bucket as the API gives it (TokenBucket: size, one_time_burst,
 * refill_time). Each field is at most INT64_MAX, the API's int64. */
struct ratelimit_bucket_cfg {
	uint64_t size, one_time_burst, refill_time_ms;
};

/* The API's RateLimiter. All zero: no limit. */
struct ratelimit_cfg {
	struct ratelimit_bucket_cfg bandwidth, ops;
};

/* A bucket's state. Private to ratelimit.c; plain data, so a device embeds
 * the limiter and snapshots go through ratelimit_save/restore. */
struct ratelimit_bucket {
	struct ratelimit_bucket_cfg cfg;
	uint64_t tokens; /* in the bucket: <= cfg.size */
	uint64_t debt;	 /* owed by an oversized request; tokens is 0 while > 0 */
	uint64_t burst;	 /* one_time_burst not yet spent; no debt while > 0 */
	uint64_t last;	 /* when the tokens were last brought up to date */
	/* Refill progress towards the next token, in token-nanoseconds
	 * (tokens = elapsed * size / refill_ns): < refill_time_ms * 1e6. */
	unsigned __int128 frac;
};

struct ratelimit {
	struct ratelimit_bucket bandwidth, ops;
	uint64_t throttled; /* requests refused, for metrics */
};

/* Set rl up from cfg at time now: both buckets full, with their whole
 * one_time_burst, throttled 0. Returns 0, or -EINVAL (rl untouched) when a
 * field is over INT64_MAX. */
int ratelimit_init(struct ratelimit *rl, const struct ratelimit_cfg *cfg, uint64_t now) WARN_UNUSED;

/* Whether any bucket limits: a device whose limiter does not can skip the
 * calls. */
bool ratelimit_enabled(const struct ratelimit *rl);

/* A request of `bytes` bytes and `ops` operations at time now: take both
 * from their buckets and return true, or take neither, count one throttled
 * and return false. A bucket that does not limit always agrees; so does any
 * bucket for 0 tokens. */
bool ratelimit_consume(struct ratelimit *rl, uint64_t now, uint64_t bytes, uint64_t ops);

/* How many nanoseconds from now until ratelimit_consume() of the same
 * request would pass, if nothing else is taken meanwhile: 0 if it would pass
 * now; exactly the first nanosecond it passes (at now + wait - 1 it would
 * still be refused). UINT64_MAX when further away than that (refill times of
 * centuries). Takes nothing and counts nothing. */
uint64_t ratelimit_wait_ns(struct ratelimit *rl, uint64_t now, uint64_t bytes, uint64_t ops);

/* Change the limits of a running limiter (PATCH after boot), at time now.
 * cfg is complete: a PATCH that leaves out a bucket passes its current
 * config (rl->bandwidth.cfg, rl->ops.cfg). Each bucket first earns its
 * refill up to now at the old rate; then what it holds is kept, capped by
 * the new limits: tokens at the new size, the burst left at the new
 * one_time_burst (a PATCH grants no new burst), and any debt is still owed,
 * repaid at the new rate. (Not Firecracker's way: its update_buckets puts a
 * new bucket in, full and with its whole burst, and calls that a TODO; the
 * README states flint's.) A bucket that did not limit before
 * starts full with its whole burst; one that no longer limits forgets its
 * state. A bucket whose config is unchanged is left exactly as it was. The
 * throttled count is kept. A caller waiting on a timer computed before the
 * update asks ratelimit_wait_ns() again. Returns 0 or -EINVAL (rl
 * untouched), as ratelimit_init(). */
int ratelimit_update(struct ratelimit *rl, const struct ratelimit_cfg *cfg,
		     uint64_t now) WARN_UNUSED;

/* A limiter's state for a snapshot: its config and what its buckets held at
 * the time of the save. No timestamps: the buckets are brought up to date
 * when saved, and a restored limiter goes on from the time it is restored,
 * so the time in between earns nothing (a paused VM's buckets, whose time
 * goes on, refill meanwhile). */
struct ratelimit_bucket_state {
	uint64_t tokens, debt, burst;
	uint64_t frac_hi, frac_lo; /* struct ratelimit_bucket's frac */
};

struct ratelimit_state {
	struct ratelimit_cfg cfg;
	struct ratelimit_bucket_state bandwidth, ops;
	uint64_t throttled;
};

/* Fill *st with rl's state as of time now (its buckets brought up to now
 * in the state; rl itself is left as it is, so a device's save needs no
 * lock on a limiter nothing else uses meanwhile). */
void ratelimit_save(const struct ratelimit *rl, uint64_t now, struct ratelimit_state *st);

/* Set rl to the saved state *st, going on from time now. A snapshot is
 * input from outside: returns -EINVAL (rl untouched) unless the config is
 * valid and each limiting bucket's state is one a limiter can be in (tokens
 * within size, burst within one_time_burst, no tokens while in debt, no
 * debt while burst is left, frac below the refill time); a bucket that does not
 * limit ignores its state. Returns 0 otherwise. */
int ratelimit_restore(struct ratelimit *rl, const struct ratelimit_state *st,
		      uint64_t now) WARN_UNUSED;

/* ratelimit_restore for a device restored from a snapshot, keeping the
 * limits and the throttled count rl has: where st was saved under other
 * limits (a device PATCHed since, then reset in place to the snapshot),
 * what st's buckets held is brought to rl's limits as ratelimit_update
 * does. st NULL (a snapshot that holds no limiter state): the buckets full,
 * with their whole burst, as at boot. 0, or -EINVAL (rl untouched) as
 * ratelimit_restore. */
int ratelimit_resume(struct ratelimit *rl, const struct ratelimit_state *st,
		     uint64_t now) WARN_UNUSED;

/* Whether two configs set the same limits, field by field. */
bool ratelimit_bucket_cfg_eq(const struct ratelimit_bucket_cfg *a,
			     const struct ratelimit_bucket_cfg *b);
bool ratelimit_cfg_eq(const struct ratelimit_cfg *a, const struct ratelimit_cfg *b);

/* A state in a snapshot: its config and both buckets, 16 u64s.
 * The throttled count is not written: a device restored in a new process
 * counts from 0, as all its metrics do, and one reset in place keeps its
 * count (ratelimit_resume). get reads into *st (throttled 0) and leaves
 * the checks to ratelimit_restore; a short input is the reader's error. */
void ratelimit_state_put(struct wbuf *w, const struct ratelimit_state *st);
void ratelimit_state_get(struct rbuf *r, struct ratelimit_state *st);

#endif
