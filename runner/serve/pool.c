/* flint serve's admission, queueing and warm-pool state machine; see
 * pool.h.
 *
 * Every public call that changes something runs settle() before and after
 * its change: refuse the queued requests past their deadline, stop surplus
 * warm VMs idle too long, admit what can be admitted (dispatch), stop what
 * draining functions no longer need and remove the drained ones, and start
 * warm VMs. Each step is idempotent, so a settle() after a settle() does
 * nothing, and between calls the pool is at a fixed point: no queued
 * request could be placed now, no warm VM could be started now.
 *
 * Objects (functions, requests, VMs) live in one hash table by id, and in
 * intrusive lists: a function's queue, running requests, starting and
 * ready VMs; the pool's functions, its idle VMs (starting or ready, least
 * recently idle first: the eviction order) and its actions. An object has
 * at most one action pending, so actions are a list of objects and never
 * need memory of their own. An object that ended with an action pending
 * (a refused request, a stopped VM, a gone function) is out of the hash and
 * every other list, and is freed when its action is taken. */
#include "serve/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct link {
	struct link *prev, *next;
};

static void l_init(struct link *l)
{
	l->prev = l->next = l;
}

static bool l_empty(const struct link *h)
{
	return h->next == h;
}

static void l_add_tail(struct link *h, struct link *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Unlink n and leave it linked to itself, so that l_empty(n) tells whether
 * it is in a list. */
static void l_del(struct link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	l_init(n);
}

#define l_entry(l, type, member) container_of(l, type, member)
#define l_for_each_safe(pos, nxt, head)                                                            \
	for (pos = (head)->next, nxt = pos->next; pos != (head); pos = nxt, nxt = pos->next)

enum obj_kind { OBJ_FN, OBJ_REQ, OBJ_VM };

struct obj {
	struct obj *hnext; /* hash chain */
	uint64_t id;
	enum obj_kind kind;
	bool hashed;
	bool dead;	 /* ended: freed once its action is taken */
	struct link act; /* in pool.acts while an action is pending */
	enum pool_act_kind ak;
};

struct fnc {
	struct obj o;
	struct pool_fn_cfg cfg;
	void *ctx;
	struct link node;	     /* pool.fns */
	struct link queue, running;  /* struct req, oldest first */
	struct link starting, ready; /* struct vm, least recently idle first */
	bool draining;
	uint64_t retry_at, retry_ns; /* warm VM start back-off */
	uint64_t stuck;		     /* dispatch pass in which its head could not be placed */
	struct pool_stats st;	     /* gauges kept up to date */
};

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_REFUSED };

struct req {
	struct obj o;
	struct fnc *f;
	void *ctx;
	enum req_state state;
	uint64_t seq; /* arrival order across the pool */
	uint64_t submitted, deadline, wait_ns;
	struct link node; /* f->queue or f->running */
	uint32_t mem_mib; /* its VM's: its function's, or its registration's */
	struct vm *vm;
	bool warm;
	enum pool_refuse reason;
};

enum vm_state { VM_STARTING, VM_READY, VM_BUSY, VM_ENDED };

struct vm {
	struct obj o;
	struct fnc *f;
	void *ctx;
	enum vm_state state;
	struct link fnode; /* f->starting or f->ready */
	struct link gnode; /* pool.idle */
	uint64_t idle_since;
	uint32_t uses;
	uint32_t mem_mib; /* counted against max_mem_mib while it lives */
	enum pool_stop why;
};

struct pool {
	struct pool_cfg cfg;
	uint64_t now;
	uint64_t next_id, next_seq, pass;
	struct obj **buckets;
	size_t nbuckets, nobjs;
	struct link fns;  /* struct fnc, in replenishing turn */
	struct link idle; /* struct vm starting or ready, least recently idle first */
	struct link acts; /* struct obj with an action pending, oldest first */
	/* Registrations: a function of no id (never found by one), in fns
	 * so that its queue takes its turn in arrival order with the
	 * others', whose requests each carry their VM's size. */
	struct fnc *reg;
	struct pool_stats st;
};

#define HASH_MIN 64

/* Objects are freed through their struct obj. */
_Static_assert(offsetof(struct fnc, o) == 0 && offsetof(struct req, o) == 0 &&
		   offsetof(struct vm, o) == 0,
	       "struct obj first");

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- ids ----------------------------------------------------------------- */

static size_t slot(const struct pool *p, uint64_t id)
{
	return (size_t)(id * 0x9e3779b97f4a7c15ull >> 32) & (p->nbuckets - 1);
}

/* Double the table when it is crowded; a failed allocation only keeps the
 * chains longer. */
static void hash_grow(struct pool *p)
{
	size_t n = p->nbuckets * 2;
	struct obj **b;

	if (p->nobjs <= p->nbuckets * 2)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	struct obj **old = p->buckets;
	size_t oldn = p->nbuckets;

	p->buckets = b;
	p->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		for (struct obj *o = old[i], *nx; o; o = nx) {
			nx = o->hnext;
			o->hnext = p->buckets[slot(p, o->id)];
			p->buckets[slot(p, o->id)] = o;
		}
	}
	free(old);
}

/* Give o the next id and make it findable. */
static void obj_init(struct pool *p, struct obj *o, enum obj_kind kind)
{
	o->id = p->next_id++;
	o->kind = kind;
	l_init(&o->act);
	o->hnext = p->buckets[slot(p, o->id)];
	p->buckets[slot(p, o->id)] = o;
	o->hashed = true;
	p->nobjs++;
	hash_grow(p);
}

static void obj_unhash(struct pool *p, struct obj *o)
{
	if (!o->hashed)
		return;
	for (struct obj **pp = &p->buckets[slot(p, o->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == o) {
			*pp = o->hnext;
			break;
		}
	}
	o->hashed = false;
	p->nobjs--;
}

static struct obj *find(const struct pool *p, uint64_t id, enum obj_kind kind)
{
	for (struct obj *o = p->buckets[slot(p, id)]; o; o = o->hnext)
		if (o->id == id)
			return o->kind == kind ? o : NULL;
	return NULL;
}

static void act_push(struct pool *p, struct obj *o, enum pool_act_kind k)
{
	o->ak = k;
	l_add_tail(&p->acts, &o->act);
}

/* Counters of both the pool and the function. */
#define BUMP(p, f, field)                                                                          \
	do {                                                                                       \
		(p)->st.field++;                                                                   \
		(f)->st.field++;                                                                   \
	} while (0)
#define GAUGE(p, f, field, d)                                                                      \
	do {                                                                                       \
		(p)->st.field += (d);                                                              \
		(f)->st.field += (d);                                                              \
	} while (0)

/* ---- VMs ----------------------------------------------------------------- */

/* Whether one more VM of mem_mib fits, free_vms VMs of free_mem fewer. */
static bool fits(const struct pool *p, uint32_t mem_mib, uint32_t free_vms, uint64_t free_mem)
{
	return p->st.vms - free_vms + 1 <= p->cfg.max_vms &&
	       p->st.mem_mib - free_mem + mem_mib <= p->cfg.max_mem_mib;
}

/* Take v out of the warm lists, if it is in them. */
static void idle_unlink(struct pool *p, struct vm *v)
{
	if (v->state != VM_STARTING && v->state != VM_READY)
		return;
	l_del(&v->fnode);
	l_del(&v->gnode);
	GAUGE(p, v->f, warm, -1);
	if (v->state == VM_STARTING)
		GAUGE(p, v->f, starting, -1);
}

/* v, just allocated, becomes a VM of f of mem_mib alive in state s
 * (starting or busy). */
static void vm_new(struct pool *p, struct vm *v, struct fnc *f, uint32_t mem_mib, enum vm_state s)
{
	obj_init(p, &v->o, OBJ_VM);
	v->f = f;
	v->state = s;
	v->mem_mib = mem_mib;
	l_init(&v->fnode);
	l_init(&v->gnode);
	GAUGE(p, f, vms, 1);
	GAUGE(p, f, mem_mib, mem_mib);
	BUMP(p, f, vms_started);
	if (s == VM_STARTING) {
		v->idle_since = p->now;
		l_add_tail(&f->starting, &v->fnode);
		l_add_tail(&p->idle, &v->gnode);
		GAUGE(p, f, warm, 1);
		GAUGE(p, f, starting, 1);
	}
}

static void vm_to_ready(struct pool *p, struct vm *v)
{
	idle_unlink(p, v);
	v->state = VM_READY;
	v->idle_since = p->now;
	l_add_tail(&v->f->ready, &v->fnode);
	l_add_tail(&p->idle, &v->gnode);
	GAUGE(p, v->f, warm, 1);
}

/* v no longer counts against anything. */
static void vm_end(struct pool *p, struct vm *v)
{
	idle_unlink(p, v);
	GAUGE(p, v->f, vms, -1);
	GAUGE(p, v->f, mem_mib, -(uint64_t)v->mem_mib);
	obj_unhash(p, &v->o);
	v->state = VM_ENDED;
}

/* The caller ends v itself (it failed, or its request's end took it): no
 * action, and a WARM not taken yet is dropped. */
static void vm_forget(struct pool *p, struct vm *v)
{
	vm_end(p, v);
	l_del(&v->o.act);
	free(v);
}

/* The caller is to stop v: a STOP action, unless the caller never heard of
 * v (its WARM not taken yet), which then simply goes. */
static void vm_stop(struct pool *p, struct vm *v, enum pool_stop why)
{
	struct fnc *f = v->f;

	switch (why) {
	case POOL_STOP_EVICTED:
		BUMP(p, f, evicted);
		break;
	case POOL_STOP_RETIRED:
		BUMP(p, f, retired);
		break;
	case POOL_STOP_IDLE:
		BUMP(p, f, idle_stopped);
		break;
	case POOL_STOP_DRAINED:
		BUMP(p, f, drained);
		break;
	}
	if (!l_empty(&v->o.act)) {
		vm_forget(p, v);
		return;
	}
	vm_end(p, v);
	v->why = why;
	v->o.dead = true;
	act_push(p, &v->o, POOL_ACT_STOP);
}

static bool surplus(const struct fnc *f)
{
	return f->draining || f->st.warm > f->cfg.min_warm;
}

/* Make room for one more VM of f of mem_mib by evicting warm VMs of other
 * functions, surplus ones first, least recently idle first; nothing is
 * evicted unless evicting them all would do. Whether f's VM fits now. */
static bool make_room(struct pool *p, struct fnc *f, uint32_t mem_mib)
{
	struct link *l, *nx;
	uint32_t n = 0;
	uint64_t mem = 0;

	if (fits(p, mem_mib, 0, 0))
		return true;
	l_for_each_safe(l, nx, &p->idle)
	{
		struct vm *v = l_entry(l, struct vm, gnode);

		if (v->f != f) {
			n++;
			mem += v->mem_mib;
		}
	}
	if (!fits(p, mem_mib, n, mem))
		return false;
	for (int pass = 0; pass < 2; pass++) {
		l_for_each_safe(l, nx, &p->idle)
		{
			struct vm *v = l_entry(l, struct vm, gnode);

			if (v->f == f || (pass == 0 && !surplus(v->f)))
				continue;
			vm_stop(p, v, POOL_STOP_EVICTED);
			if (fits(p, mem_mib, 0, 0))
				return true;
		}
	}
	return fits(p, mem_mib, 0, 0);
}

/* ---- requests ------------------------------------------------------------ */

static struct req *head(const struct fnc *f)
{
	return l_empty(&f->queue) ? NULL : l_entry(f->queue.next, struct req, node);
}

static void unqueue(struct pool *p, struct req *r)
{
	l_del(&r->node);
	GAUGE(p, r->f, queue_len, -1);
	r->wait_ns = p->now - r->submitted;
}

/* Queued request r runs on v (of its function, already busy). */
static void admit(struct pool *p, struct req *r, struct vm *v, bool warm)
{
	struct fnc *f = r->f;

	unqueue(p, r);
	r->state = REQ_RUNNING;
	r->vm = v;
	r->warm = warm;
	v->uses++;
	l_add_tail(&f->running, &r->node);
	GAUGE(p, f, running, 1);
	BUMP(p, f, admitted);
	if (warm)
		BUMP(p, f, admitted_warm);
	act_push(p, &r->o, POOL_ACT_RUN);
}

/* Queued request r will not run. */
static void refuse(struct pool *p, struct req *r, enum pool_refuse why)
{
	unqueue(p, r);
	r->state = REQ_REFUSED;
	r->reason = why;
	BUMP(p, r->f, refused[why]);
	obj_unhash(p, &r->o);
	r->o.dead = true;
	act_push(p, &r->o, POOL_ACT_REFUSE);
}

static void req_free(struct pool *p, struct req *r)
{
	obj_unhash(p, &r->o);
	l_del(&r->o.act);
	free(r);
}

/* Place the head of f's queue: on a ready VM of f, or (allow_new) on a new
 * VM, evicting if need be. Whether it was. */
static bool place(struct pool *p, struct fnc *f, bool allow_new)
{
	struct req *r = head(f);
	struct vm *v;

	if (!l_empty(&f->ready)) {
		/* The most recently idle: the others age towards idle_ns. */
		v = l_entry(f->ready.prev, struct vm, fnode);
		idle_unlink(p, v);
		v->state = VM_BUSY;
		admit(p, r, v, true);
		return true;
	}
	if (!allow_new)
		return false;
	v = calloc(1, sizeof(*v));
	if (!v)
		return false;
	if (!make_room(p, f, r->mem_mib)) {
		free(v);
		return false;
	}
	vm_new(p, v, f, r->mem_mib, VM_BUSY);
	admit(p, r, v, false);
	return true;
}

/* Admit queued requests, oldest first among the functions with a free
 * slot. Once one cannot be placed, younger ones may only take ready VMs
 * of their own function, so that nothing overtakes it for VMs or memory. */
static void dispatch(struct pool *p)
{
	bool blocked = false;
	struct link *l, *nx;

	p->pass++;
	for (;;) {
		struct fnc *best = NULL;

		l_for_each_safe(l, nx, &p->fns)
		{
			struct fnc *f = l_entry(l, struct fnc, node);
			struct req *r = head(f);

			if (!r || f->st.running >= f->cfg.max_concurrency || f->stuck == p->pass)
				continue;
			if (blocked && l_empty(&f->ready))
				continue;
			if (!best || r->seq < head(best)->seq)
				best = f;
		}
		if (!best)
			return;
		if (!place(p, best, !blocked)) {
			best->stuck = p->pass;
			blocked = true;
		}
	}
}

/* Whether a queued request waits for VMs or memory (after dispatch: a head
 * with a free slot in its function). */
static bool waiting_on_limits(const struct pool *p)
{
	const struct link *l;

	for (l = p->fns.next; l != &p->fns; l = l->next) {
		const struct fnc *f = l_entry(l, struct fnc, node);

		if (!l_empty(&f->queue) && f->st.running < f->cfg.max_concurrency)
			return true;
	}
	return false;
}

/* ---- settling ------------------------------------------------------------ */

static void expire(struct pool *p)
{
	struct link *l, *nx;

	l_for_each_safe(l, nx, &p->fns)
	{
		struct fnc *f = l_entry(l, struct fnc, node);
		struct req *r;

		/* One timeout per function and time never going back: the
		 * queue is in deadline order. */
		while ((r = head(f)) && r->deadline <= p->now)
			refuse(p, r, POOL_REFUSE_TIMEOUT);
	}
}

static uint64_t idle_until(const struct pool *p, const struct fnc *f)
{
	const struct vm *v;

	if (!p->cfg.idle_ns || f->st.warm <= f->cfg.min_warm || l_empty(&f->ready))
		return UINT64_MAX;
	v = l_entry(f->ready.next, struct vm, fnode);
	return sat_add(v->idle_since, p->cfg.idle_ns);
}

static void idle_stop(struct pool *p)
{
	struct link *l, *nx;

	l_for_each_safe(l, nx, &p->fns)
	{
		struct fnc *f = l_entry(l, struct fnc, node);

		while (idle_until(p, f) <= p->now)
			vm_stop(p, l_entry(f->ready.next, struct vm, fnode), POOL_STOP_IDLE);
	}
}

/* Draining functions keep no more warm VMs than they have queued requests,
 * and go once nothing of them is left. */
static void drain(struct pool *p)
{
	struct link *l, *nx;

	l_for_each_safe(l, nx, &p->fns)
	{
		struct fnc *f = l_entry(l, struct fnc, node);

		if (!f->draining)
			continue;
		while (f->st.warm > f->st.queue_len) {
			struct link *w = l_empty(&f->starting) ? f->ready.next : f->starting.next;

			vm_stop(p, l_entry(w, struct vm, fnode), POOL_STOP_DRAINED);
		}
		if (f->st.queue_len || f->st.running || f->st.vms)
			continue;
		l_del(&f->node);
		obj_unhash(p, &f->o);
		f->o.dead = true;
		act_push(p, &f->o, POOL_ACT_GONE);
	}
}

static bool wants_warm(const struct pool *p, const struct fnc *f)
{
	return !f->draining && f->st.warm < f->cfg.min_warm && f->retry_at <= p->now;
}

/* Start warm VMs where they are missing, one at a time, the function served
 * going to the back of the line; never while a request waits for room. */
static void replenish(struct pool *p)
{
	if (waiting_on_limits(p))
		return;
	for (;;) {
		struct fnc *f = NULL;
		struct link *l;
		struct vm *v;

		for (l = p->fns.next; l != &p->fns; l = l->next) {
			struct fnc *c = l_entry(l, struct fnc, node);

			if (wants_warm(p, c) && fits(p, c->cfg.mem_mib, 0, 0)) {
				f = c;
				break;
			}
		}
		if (!f)
			return;
		v = calloc(1, sizeof(*v));
		if (!v)
			return;
		vm_new(p, v, f, f->cfg.mem_mib, VM_STARTING);
		BUMP(p, f, warm_started);
		act_push(p, &v->o, POOL_ACT_WARM);
		l_del(&f->node);
		l_add_tail(&p->fns, &f->node);
	}
}

static void advance(struct pool *p, uint64_t now)
{
	if (now > p->now)
		p->now = now;
}

static void settle(struct pool *p)
{
	expire(p);
	idle_stop(p);
	dispatch(p);
	drain(p);
	replenish(p);
}

/* ---- the API ------------------------------------------------------------- */

/* A function of cfg, its lists empty, in no list and with no id yet. */
static struct fnc *fn_new(const struct pool_fn_cfg *cfg)
{
	struct fnc *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->cfg = *cfg;
	if (f->cfg.isolation == POOL_PER_REQUEST)
		f->cfg.reuse_max = 1;
	l_init(&f->queue);
	l_init(&f->running);
	l_init(&f->starting);
	l_init(&f->ready);
	l_init(&f->o.act);
	return f;
}

int pool_create(const struct pool_cfg *cfg, uint64_t now, struct pool **out)
{
	struct pool *p;

	if (!cfg->max_vms || !cfg->max_mem_mib || cfg->warm_retry_max_ns < cfg->warm_retry_ns)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->nbuckets = HASH_MIN;
	p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
	if (!p->buckets) {
		free(p);
		return -ENOMEM;
	}
	p->cfg = *cfg;
	p->now = now;
	p->next_id = 1;
	p->next_seq = 1;
	l_init(&p->fns);
	l_init(&p->idle);
	l_init(&p->acts);
	if (!(p->reg = fn_new(&(struct pool_fn_cfg){
		  /* Bounded by the global limits and queue only. */
		  .max_concurrency = UINT32_MAX,
		  .isolation = POOL_PER_REQUEST,
		  .reuse_max = 1,
		  .queue_max = cfg->reg_timeout_ns ? UINT32_MAX : 0,
		  .queue_timeout_ns = cfg->reg_timeout_ns,
	      }))) {
		free(p->buckets);
		free(p);
		return -ENOMEM;
	}
	l_add_tail(&p->fns, &p->reg->node);
	*out = p;
	return 0;
}

static void fn_free(struct fnc *f)
{
	struct link *heads[] = {&f->queue, &f->running};
	struct link *vheads[] = {&f->starting, &f->ready};
	struct link *l, *nx;

	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		l_for_each_safe(l, nx, heads[i])
		{
			struct req *r = l_entry(l, struct req, node);

			if (r->state == REQ_RUNNING)
				free(r->vm);
			free(r);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(vheads); i++)
		l_for_each_safe(l, nx, vheads[i]) free(l_entry(l, struct vm, fnode));
	free(f);
}

void pool_destroy(struct pool *p)
{
	struct link *l, *nx;

	if (!p)
		return;
	/* Ended objects are only on the action list; the others are freed
	 * through their functions. */
	l_for_each_safe(l, nx, &p->acts)
	{
		struct obj *o = l_entry(l, struct obj, act);

		l_del(l);
		if (o->dead)
			free(o);
	}
	l_for_each_safe(l, nx, &p->fns) fn_free(l_entry(l, struct fnc, node));
	free(p->buckets);
	free(p);
}

int pool_fn_add(struct pool *p, const struct pool_fn_cfg *cfg, void *ctx, uint64_t now,
		uint64_t *id)
{
	struct fnc *f;

	if (!cfg->max_concurrency || !cfg->mem_mib ||
	    (cfg->isolation != POOL_PER_REQUEST && cfg->isolation != POOL_REUSE) ||
	    (cfg->isolation == POOL_REUSE && !cfg->reuse_max) ||
	    (cfg->queue_max && !cfg->queue_timeout_ns))
		return -EINVAL;
	if (cfg->mem_mib > p->cfg.max_mem_mib)
		return -E2BIG;
	f = fn_new(cfg);
	if (!f)
		return -ENOMEM;
	f->ctx = ctx;
	advance(p, now);
	settle(p);
	obj_init(p, &f->o, OBJ_FN);
	l_add_tail(&p->fns, &f->node);
	*id = f->o.id;
	settle(p);
	return 0;
}

static struct fnc *find_fn(const struct pool *p, uint64_t id)
{
	struct obj *o = find(p, id, OBJ_FN);

	return o ? container_of(o, struct fnc, o) : NULL;
}

static struct req *find_req(const struct pool *p, uint64_t id)
{
	struct obj *o = find(p, id, OBJ_REQ);

	return o ? container_of(o, struct req, o) : NULL;
}

static struct vm *find_vm(const struct pool *p, uint64_t id)
{
	struct obj *o = find(p, id, OBJ_VM);

	return o ? container_of(o, struct vm, o) : NULL;
}

/* Each call lets time pass first (pool_tick), then looks its object up:
 * settling may have admitted, refused or stopped it meanwhile. */

int pool_fn_remove(struct pool *p, uint64_t fn, uint64_t now)
{
	struct fnc *f;

	advance(p, now);
	settle(p);
	f = find_fn(p, fn);
	if (!f)
		return -ENOENT;
	if (f->draining)
		return -EALREADY;
	f->draining = true;
	f->st.draining = true;
	settle(p);
	return 0;
}

/* Request r (allocated) for a VM of mem_mib of f, with ctx: it runs now,
 * waits or is refused (*out), the pool settled. */
static void submit(struct pool *p, struct fnc *f, struct req *r, uint32_t mem_mib, void *ctx,
		   struct pool_admit *out)
{
	f->st.submitted++;
	obj_init(p, &r->o, OBJ_REQ);
	r->f = f;
	r->ctx = ctx;
	r->mem_mib = mem_mib;
	r->state = REQ_QUEUED;
	r->seq = p->next_seq++;
	r->submitted = p->now;
	r->deadline = sat_add(p->now, f->cfg.queue_timeout_ns);
	l_add_tail(&f->queue, &r->node);
	GAUGE(p, f, queue_len, 1);
	/* Everything older was settled: only r can be admitted now. */
	dispatch(p);
	if (r->state == REQ_RUNNING) {
		l_del(&r->o.act); /* told here, not by an action */
		*out = (struct pool_admit){
		    .kind = POOL_RUN, .req = r->o.id, .vm = r->vm->o.id, .warm = r->warm};
	} else if (f->st.queue_len > f->cfg.queue_max || p->st.queue_len > p->cfg.max_queued) {
		bool slots = f->st.running >= f->cfg.max_concurrency;

		out->kind = POOL_REFUSED;
		out->reason = slots && f->st.queue_len > f->cfg.queue_max ? POOL_REFUSE_FN_FULL
									  : POOL_REFUSE_LIMITS;
		unqueue(p, r);
		BUMP(p, f, refused[out->reason]);
		req_free(p, r);
	} else {
		BUMP(p, f, queued);
		*out = (struct pool_admit){.kind = POOL_QUEUED, .req = r->o.id};
	}
	settle(p);
}

/* A submission's start: *out cleared, the pool's time let pass and the
 * pool settled, one more submitted. */
static void submit_begin(struct pool *p, uint64_t now, struct pool_admit *out)
{
	memset(out, 0, sizeof(*out));
	advance(p, now);
	settle(p);
	p->st.submitted++;
}

int pool_submit(struct pool *p, uint64_t fn, void *ctx, uint64_t now, struct pool_admit *out)
{
	struct req *r = calloc(1, sizeof(*r));
	struct fnc *f;

	if (!r)
		return -ENOMEM;
	submit_begin(p, now, out);
	f = find_fn(p, fn);
	if (!f || f->draining) {
		out->kind = POOL_REFUSED;
		out->reason = f ? POOL_REFUSE_DRAINING : POOL_REFUSE_UNKNOWN;
		p->st.refused[out->reason]++;
		if (f) {
			f->st.submitted++;
			f->st.refused[out->reason]++;
		}
		free(r);
		return 0;
	}
	submit(p, f, r, f->cfg.mem_mib, ctx, out);
	return 0;
}

int pool_reg_submit(struct pool *p, uint32_t mem_mib, void *ctx, uint64_t now,
		    struct pool_admit *out)
{
	struct req *r;

	if (!mem_mib || mem_mib > p->cfg.max_mem_mib)
		return -EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	submit_begin(p, now, out);
	submit(p, p->reg, r, mem_mib, ctx, out);
	return 0;
}

int pool_complete(struct pool *p, uint64_t req, bool vm_reusable, uint64_t now)
{
	struct req *r;
	struct fnc *f;
	struct vm *v;

	advance(p, now);
	settle(p);
	r = find_req(p, req);
	if (!r || r->state != REQ_RUNNING)
		return -ENOENT;
	f = r->f;
	v = r->vm;
	l_del(&r->node);
	GAUGE(p, f, running, -1);
	BUMP(p, f, completed);
	req_free(p, r);
	if (!vm_reusable || f == p->reg)
		vm_forget(p, v);
	else if (f->cfg.isolation == POOL_REUSE && v->uses < f->cfg.reuse_max)
		vm_to_ready(p, v);
	else
		vm_stop(p, v, POOL_STOP_RETIRED);
	settle(p);
	return 0;
}

int pool_cancel(struct pool *p, uint64_t req, uint64_t now)
{
	struct req *r;

	advance(p, now);
	settle(p); /* a deadline passed is a timeout, not a cancel */
	r = find_req(p, req);
	if (!r || r->state != REQ_QUEUED)
		return -ENOENT;
	unqueue(p, r);
	BUMP(p, r->f, cancelled);
	req_free(p, r);
	settle(p);
	return 0;
}

int pool_vm_ready(struct pool *p, uint64_t vm, uint64_t now)
{
	struct vm *v;

	advance(p, now);
	settle(p);
	v = find_vm(p, vm);
	if (!v)
		return -ENOENT;
	if (v->state != VM_STARTING)
		return -EINVAL;
	vm_to_ready(p, v);
	BUMP(p, v->f, warm_ready);
	v->f->retry_ns = 0;
	settle(p);
	return 0;
}

int pool_vm_failed(struct pool *p, uint64_t vm, uint64_t now)
{
	struct vm *v;
	struct fnc *f;

	advance(p, now);
	settle(p);
	v = find_vm(p, vm);
	if (!v)
		return -ENOENT;
	if (v->state == VM_BUSY)
		return -EBUSY;
	f = v->f;
	if (v->state == VM_STARTING && p->cfg.warm_retry_ns) {
		f->retry_ns = f->retry_ns ? min_u64(f->retry_ns * 2, p->cfg.warm_retry_max_ns)
					  : p->cfg.warm_retry_ns;
		f->retry_at = sat_add(p->now, f->retry_ns);
	}
	BUMP(p, f, vms_failed);
	vm_forget(p, v);
	settle(p);
	return 0;
}

int pool_vm_set_ctx(struct pool *p, uint64_t vm, void *ctx)
{
	struct vm *v = find_vm(p, vm);

	if (!v)
		return -ENOENT;
	v->ctx = ctx;
	return 0;
}

void pool_tick(struct pool *p, uint64_t now)
{
	advance(p, now);
	settle(p);
}

uint64_t pool_next_deadline(const struct pool *p)
{
	uint64_t t = UINT64_MAX;
	const struct link *l;

	for (l = p->fns.next; l != &p->fns; l = l->next) {
		const struct fnc *f = l_entry(l, struct fnc, node);
		const struct req *r = head(f);

		if (r)
			t = min_u64(t, r->deadline);
		t = min_u64(t, idle_until(p, f));
		if (!f->draining && f->st.warm < f->cfg.min_warm && f->retry_at > p->now)
			t = min_u64(t, f->retry_at);
	}
	return t;
}

bool pool_next_act(struct pool *p, struct pool_act *act)
{
	struct obj *o;

	if (l_empty(&p->acts))
		return false;
	o = l_entry(p->acts.next, struct obj, act);
	l_del(&o->act);
	memset(act, 0, sizeof(*act));
	act->kind = o->ak;
	switch (o->kind) {
	case OBJ_FN: {
		struct fnc *f = container_of(o, struct fnc, o);

		act->fn = o->id;
		act->fn_ctx = f->ctx;
		break;
	}
	case OBJ_REQ: {
		struct req *r = container_of(o, struct req, o);

		act->fn = r->f->o.id;
		act->fn_ctx = r->f->ctx;
		act->req = o->id;
		act->req_ctx = r->ctx;
		act->wait_ns = r->wait_ns;
		if (r->state == REQ_RUNNING) {
			act->vm = r->vm->o.id;
			act->warm = r->warm;
		} else {
			act->reason = r->reason;
		}
		break;
	}
	case OBJ_VM: {
		struct vm *v = container_of(o, struct vm, o);

		act->fn = v->f->o.id;
		act->fn_ctx = v->f->ctx;
		act->vm = o->id;
		act->vm_ctx = v->ctx;
		act->why = v->why;
		break;
	}
	}
	if (o->dead)
		free(o);
	return true;
}

void pool_stats(const struct pool *p, struct pool_stats *st)
{
	*st = p->st;
}

int pool_fn_stats(const struct pool *p, uint64_t fn, struct pool_stats *st)
{
	struct fnc *f = find_fn(p, fn);

	if (!f)
		return -ENOENT;
	*st = f->st;
	return 0;
}

const char *pool_refuse_name(enum pool_refuse r)
{
	static const char *const names[] = {
	    [POOL_REFUSE_UNKNOWN] = "unknown", [POOL_REFUSE_DRAINING] = "draining",
	    [POOL_REFUSE_FN_FULL] = "fn_full", [POOL_REFUSE_LIMITS] = "limits",
	    [POOL_REFUSE_TIMEOUT] = "timeout",
	};

	return (unsigned)r < ARRAY_SIZE(names) ? names[r] : "?";
}

const char *pool_stop_name(enum pool_stop s)
{
	static const char *const names[] = {
	    [POOL_STOP_EVICTED] = "evicted",
	    [POOL_STOP_RETIRED] = "retired",
	    [POOL_STOP_IDLE] = "idle",
	    [POOL_STOP_DRAINED] = "drained",
	};

	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "?";
}
