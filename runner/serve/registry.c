/* registry: flint serve's functions, the VMs alive, the pool's actions
 * and the manager thread (see server_int.h).
 *
 * Registering a function boots its VM once with `flint run
 * --save-snapshot` (its prepare command first, with --save-after) into a
 * directory of its own under --state-dir, then adds it to the pool. That VM
 * takes room in the pool first (pool_reg_submit), as a request's does, so
 * that --max-vms and --max-mem bound registrations too. The
 * manager thread lets the pool's time pass (queue deadlines, idle warm
 * VMs, retries), notices warm VMs whose flint died, and kills and reaps
 * the VMs the pool stopped, outside the lock. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/home.h"
#include "core/logger.h"
#include "serve/agentc.h"
#include "serve/server_int.h"

char *serve_fault(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote a guest's stderr: bytes over 0x7f become '?'. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			*p = (unsigned char)*p >= 0x80 ? '?' : ' ';
	o = json_pack("{s:s}", "fault_message", msg);
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

unsigned serve_refuse_status(enum pool_refuse r)
{
	switch (r) {
	case POOL_REFUSE_UNKNOWN:
		return 404;
	case POOL_REFUSE_DRAINING:
		return 409;
	case POOL_REFUSE_FN_FULL:
		return 429;
	default:
		return 503;
	}
}

const char *serve_refuse_text(enum pool_refuse r)
{
	switch (r) {
	case POOL_REFUSE_UNKNOWN:
		return "no such function";
	case POOL_REFUSE_DRAINING:
		return "the function is being removed";
	case POOL_REFUSE_FN_FULL:
		return "the function's max_concurrency is in use and its queue is full";
	case POOL_REFUSE_LIMITS:
		return "the server's limits on VMs or guest memory are reached and the queue is "
		       "full";
	case POOL_REFUSE_TIMEOUT:
		return "no VM became free within the queue timeout";
	default:
		return "refused";
	}
}

struct serve_fn *serve_fn_find(struct server *s, const char *name)
{
	for (struct serve_fn *f = s->fns; f; f = f->next)
		if (!strcmp(f->cfg.name, name))
			return f;
	return NULL;
}

static void fn_unlist(struct server *s, struct serve_fn *fn)
{
	for (struct serve_fn **p = &s->fns; *p; p = &(*p)->next)
		if (*p == fn) {
			*p = fn->next;
			break;
		}
	fn->listed = false;
}

/* Removes the function's snapshot and directory. */
static void fn_remove_files(struct serve_fn *fn)
{
	if (!fn->dir[0])
		return;
	unlink(fn->state_path);
	unlink(fn->mem_path);
	if (rmdir(fn->dir) < 0 && errno != ENOENT)
		pr_err("flint serve: cannot remove %s: %s", fn->dir, strerror(errno));
}

void serve_fn_put(struct server *s, struct serve_fn *fn)
{
	if (!fn || --fn->refs || fn->listed)
		return;
	fn_remove_files(fn);
	jailing_fn_gone(s->jail, fn->cfg.name);
	fn_config_free(&fn->cfg);
	pthread_cond_destroy(&fn->gone);
	free(fn);
}

struct serve_vm *serve_vm_find(struct server *s, uint64_t id)
{
	for (struct serve_vm *v = s->vms; v; v = v->next)
		if (v->id == id)
			return v;
	return NULL;
}

void serve_vm_unlink(struct server *s, struct serve_vm *v)
{
	for (struct serve_vm **p = &s->vms; *p; p = &(*p)->next)
		if (*p == v) {
			*p = v->next;
			break;
		}
	v->next = NULL;
}

void serve_vm_free(struct server *s, struct serve_vm *v)
{
	serve_vm_unlink(s, v);
	worker_destroy(v->w);
	worker_destroy(v->vmw);
	if (v->uds[0] && !v->jail)
		unlink(v->uds);
	serve_fn_put(s, v->fn);
	free(v);
}

void serve_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* --jail's restores: the snapshot names the root image by its path in the
 * registration's jail, so each restore's jail stages the host's, as drive0
 * (flint run's root drive): the value of --drive-override. */
#define DRIVE_OVERRIDE_MAX (PATH_MAX + 8)
static void jail_drive_override(const struct serve_fn *fn, char out[DRIVE_OVERRIDE_MAX])
{
	snprintf(out, DRIVE_OVERRIDE_MAX, "drive0=%s", fn->rootfs);
}

char **serve_worker_opts(const struct server *s, const struct serve_fn *fn, bool registering)
{
	char **v = calloc(12, sizeof(*v));
	const char *kernel = s->jail ? fn->kernel : fn->cfg.kernel;
	const char *rootfs = s->jail ? fn->rootfs : fn->cfg.rootfs;
	char num[32], drive[DRIVE_OVERRIDE_MAX];
	int n = 0;

	if (!v)
		return NULL;
	if (registering) {
		if (kernel && (!(v[n++] = strdup("--kernel")) || !(v[n++] = strdup(kernel))))
			goto oom;
		if (rootfs && (!(v[n++] = strdup("--rootfs")) || !(v[n++] = strdup(rootfs))))
			goto oom;
		snprintf(num, sizeof(num), "%u", fn->cfg.mem_mib);
		if (!(v[n++] = strdup("--mem")) || !(v[n++] = strdup(num)))
			goto oom;
		snprintf(num, sizeof(num), "%u", fn->cfg.vcpus);
		if (!(v[n++] = strdup("--vcpus")) || !(v[n++] = strdup(num)))
			goto oom;
	} else if (s->jail) {
		jail_drive_override(fn, drive);
		if (!(v[n++] = strdup("--drive-override")) || !(v[n++] = strdup(drive)))
			goto oom;
	}
	if (!(v[n++] = strdup("--timings")))
		goto oom;
	return v;
oom:
	serve_strv_free(v);
	return NULL;
}

uint64_t serve_uid_deadline(const struct server *s, uint64_t since_ns)
{
	return since_ns + (uint64_t)s->o.queue_timeout_s * 1000000000u;
}

int serve_jail_params(struct server *s, const struct serve_fn *fn, struct worker_params *p,
		      uint64_t deadline_ns, struct jail_slot **slot)
{
	int r;

	*slot = NULL;
	if (!s->jail)
		return 0;
	if ((r = jail_take(s->jail, fn->cfg.name, fn->cfg.mem_mib, deadline_ns, slot)) < 0)
		return r;
	p->launcher = (*slot)->launcher;
	p->launcher_runs_flint = true;
	p->gone = jail_give;
	p->gone_ctx = *slot;
	return 0;
}

int serve_jail_open_uds(void *ctx, const char *uds)
{
	struct stat st;
	int fd = jail_open_beneath(ctx, uds, O_PATH | O_NOFOLLOW);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		close(fd);
		return -ENOTSOCK;
	}
	return fd;
}

struct worker_params serve_worker_params(const struct server *s, const struct serve_fn *fn,
					 enum worker_kind kind, char *const *opts)
{
	return (struct worker_params){
	    .kind = kind,
	    .flint = s->o.flint,
	    .state = fn->state_path,
	    .mem = fn->mem_path,
	    .timeout_s = fn->cfg.timeout_s,
	    .opts = opts,
	    .argv = fn->cfg.command,
	    .env = fn->cfg.env,
	    .workdir = fn->cfg.workdir,
	    .early_status = true,
	};
}

bool serve_fn_resets(const struct server *s, const struct serve_fn *fn)
{
	return s->o.reset && fn->cfg.isolation == FN_PER_REQUEST;
}

bool serve_fn_attached(const struct server *s, const struct serve_fn *fn)
{
	return fn->cfg.isolation == FN_REUSE || serve_fn_resets(s, fn);
}

int serve_vm_spawn(struct server *s, struct serve_vm *v, uint64_t deadline_ns)
{
	struct serve_fn *fn = v->fn;
	char **opts = serve_worker_opts(s, fn, false);
	struct worker_params p = serve_worker_params(s, fn, WORKER_WARM, opts);
	struct jail_slot *jail;
	int r;

	if (!opts)
		return -ENOMEM;
	if ((r = serve_jail_params(s, fn, &p, deadline_ns, &jail)) < 0) {
		serve_strv_free(opts);
		pr_err("flint serve: %s: cannot jail a VM: %s", fn->cfg.name,
		       r == -EAGAIN || r == -ETIMEDOUT ? "no uid of --uid-range free"
						       : strerror(-r));
		return r;
	}
	if (serve_fn_attached(s, fn)) {
		/* A jailed VM's socket is in its jail, reached beneath it. */
		int n = jail ? snprintf(v->uds, sizeof(v->uds), "/run/v.sock")
			     : snprintf(v->uds, sizeof(v->uds), "%s/v%" PRIu64 ".sock",
					s->o.state_dir, v->id);
		char drive[DRIVE_OVERRIDE_MAX], *vm_opts[] = {"--drive-override", drive, NULL};
		if ((size_t)n >= sizeof(v->uds)) {
			v->uds[0] = '\0';
			serve_strv_free(opts);
			jail_give(jail);
			return -ENAMETOOLONG;
		}
		p.kind = WORKER_VM;
		p.uds = v->uds;
		/* Every VM a control socket: its reset, when it resets, and
		 * its end when the server's end closes, so that a server that
		 * dies (killed, out of memory) leaves no VM running. */
		p.control = true;
		p.early_status = false;
		/* flint itself takes none of flint run's options but the
		 * jail's root image override. */
		if (jail)
			jail_drive_override(fn, drive);
		p.opts = jail ? vm_opts : NULL;
		p.argv = NULL;
		if ((r = worker_spawn(&v->vmw, &p)) == 0) {
			v->pid = worker_pid(v->vmw);
			v->jail = jail;
		}
	} else if ((r = worker_spawn(&v->w, &p)) == 0) {
		v->pid = worker_pid(v->w);
	}
	serve_strv_free(opts);
	if (r < 0) {
		/* No flint made the socket; and a jail's path must never be
		 * unlinked on the host (serve_vm_free). */
		v->uds[0] = '\0';
		pr_err("flint serve: %s: cannot start a VM: %s", fn->cfg.name, strerror(-r));
	}
	return r;
}

/* A WARM action: the VM's flint started now; the pool hears at once that
 * it is ready, since its go byte waits in the pipe while it restores (a
 * warm VM that dies is noticed by the manager). */
static void start_warm(struct server *s, const struct pool_act *a)
{
	struct serve_vm *v = calloc(1, sizeof(*v));
	struct serve_fn *fn = a->fn_ctx;

	if (!v || (v->id = a->vm, v->fn = fn, fn->refs++, serve_vm_spawn(s, v, 0) < 0)) {
		if (v) {
			v->fn = NULL;
			fn->refs--;
			free(v);
		}
		serve_ignore(pool_vm_failed(s->pool, a->vm, now_ns()));
		return;
	}
	v->next = s->vms;
	s->vms = v;
	if (pool_vm_set_ctx(s->pool, v->id, v) < 0 || pool_vm_ready(s->pool, v->id, now_ns()) < 0)
		pr_err("flint serve: warm VM %" PRIu64 " unknown to the pool", v->id);
}

void serve_do_acts(struct server *s)
{
	struct pool_act a;

	while (pool_next_act(s->pool, &a)) {
		struct serve_wait *w = a.req_ctx;
		struct serve_vm *v;
		struct serve_fn *fn = a.fn_ctx;

		switch (a.kind) {
		case POOL_ACT_RUN:
		case POOL_ACT_REFUSE:
			w->decided = true;
			w->run = a.kind == POOL_ACT_RUN;
			w->vm = a.vm;
			w->warm = a.warm;
			w->wait_ns = a.wait_ns;
			w->reason = a.reason;
			pthread_cond_signal(&w->cv);
			break;
		case POOL_ACT_WARM:
			if (!s->stopping)
				start_warm(s, &a);
			else
				serve_ignore(pool_vm_failed(s->pool, a.vm, now_ns()));
			break;
		case POOL_ACT_STOP:
			v = a.vm_ctx ? a.vm_ctx : serve_vm_find(s, a.vm);
			if (!v)
				break;
			serve_vm_unlink(s, v);
			v->next = s->reap;
			s->reap = v;
			pthread_cond_signal(&s->manager_cv);
			break;
		case POOL_ACT_GONE:
			fn->state = SFN_GONE;
			pthread_cond_broadcast(&fn->gone);
			break;
		}
	}
}

/* The last line of a flint's stderr (len bytes at e) into out: a
 * registering flint's for the answer, a lost warm VM's for the log. */
static void last_line(const char *e, size_t len, char *out, size_t outlen)
{
	const char *end = e + len, *start;

	while (end > e && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (start = end; start > e && start[-1] != '\n'; start--)
		;
	snprintf(out, outlen, "%.*s", (int)(end - start), start);
}

/* How a warm VM's flint that ended by itself ended: its outcome, and the
 * last line of what it wrote on stderr (flint's own message, if any). Only
 * for one whose flint has exited (check_warm): worker_wait then reaps at
 * once; on a live warm worker it would wait up to WORKER_DISCARD_S. */
static void tell_lost(const struct serve_vm *v)
{
	struct worker *w = v->w ? v->w : v->vmw;
	struct worker_result res;
	char line[300];

	if (!w || worker_wait(w, &res) < 0)
		return;
	last_line(res.err ? res.err : "", res.err_len, line, sizeof(line));
	pr_warn("flint serve: %s: warm VM %" PRIu64 ": its flint ended: %s %d%s%s%s",
		v->fn->cfg.name, v->id, worker_outcome_name(res.outcome), res.status,
		line[0] ? "; a last line of its stderr" : ", nothing on its stderr",
		line[0] ? (res.err_truncated ? " (past the part kept): " : ": ") : "", line);
}

/* Stuck VMs' flints: their time to say where they were and exit. The
 * manager asks them all, then waits that long at most for all of them
 * together, outside the lock. */
#define STUCK_STOP_MS 2000

/* A VM reset in place or reused whose guest stopped answering, once its
 * flint was asked (worker_ask_where): where its vCPUs were, as its flint
 * logs it at the stop (their rip and local APIC), into the log. */
static void tell_stuck(const struct serve_vm *v)
{
	static const char where[] = "flint: vCPUs left the guest at:", apic[] = "'s local APIC: ";
	struct worker_result res;
	const char *p, *nl;

	if (!v->vmw || worker_wait(v->vmw, &res) < 0 || !res.err)
		return;
	pr_warn("flint serve: %s: VM %" PRIu64 ": its guest did not answer a request in time; "
		"where it was:",
		v->fn->cfg.name, v->id);
	/* Only the lines flint wrote at the stop. */
	for (p = res.err; *p; p = *nl ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		size_t len = (size_t)(nl - p);
		if ((len >= sizeof(where) - 1 && !memcmp(p, where, sizeof(where) - 1)) ||
		    (!strncmp(p, "flint: vCPU ", 12) && memmem(p, len, apic, sizeof(apic) - 1)))
			pr_warn("flint serve: %s: VM %" PRIu64 ":   %.*s", v->fn->cfg.name, v->id,
				(int)len, p);
	}
}

/* Kills and reaps the VMs on the reap list (outside the lock). */
static void reap(struct server *s)
{
	struct serve_vm *list = s->reap, *v;
	uint64_t stuck_deadline = now_ns() + STUCK_STOP_MS * 1000000ULL;

	s->reap = NULL;
	pthread_mutex_unlock(&s->lock);
	for (v = list; v; v = v->next)
		if (!v->lost && v->stuck && v->vmw && worker_ask_where(v->vmw, stuck_deadline) < 0)
			pr_warn("flint serve: %s: VM %" PRIu64
				": cannot ask its flint where it was",
				v->fn->cfg.name, v->id);
	for (v = list; v; v = v->next)
		if (v->lost)
			tell_lost(v);
		else if (v->stuck)
			tell_stuck(v);
	for (v = list; v; v = v->next) {
		worker_kill(v->w);
		worker_kill(v->vmw);
	}
	/* Reaped, and their jails removed, outside the lock: a flint that
	 * cannot die at once (in uninterruptible sleep in the kernel) holds
	 * up this thread only, not every request. */
	for (v = list; v; v = v->next) {
		worker_destroy(v->w);
		worker_destroy(v->vmw);
		v->w = v->vmw = NULL;
	}
	pthread_mutex_lock(&s->lock);
	while ((v = list)) {
		list = v->next;
		serve_vm_free(s, v);
	}
}

#define EXITING_GRACE_NS (10 * 1000000000ULL) /* a VM's teardown, at most */

void serve_exiting_add(struct server *s, struct worker *w)
{
	struct serve_exiting *e = calloc(1, sizeof(*e));

	if (!e) {
		/* No room to wait for it: end it now. */
		worker_destroy(w);
		return;
	}
	e->w = w;
	e->kill_ns = now_ns() + EXITING_GRACE_NS;
	e->next = s->exiting;
	s->exiting = e;
}

/* Early-answered flints that have exited (or overstayed): reaped, outside
 * the lock. all: every one, now (the server stops). */
static void reap_exiting(struct server *s, bool all)
{
	struct serve_exiting **p = &s->exiting, *e, *done = NULL;
	uint64_t now = now_ns();

	while ((e = *p)) {
		if (all || now >= e->kill_ns || worker_exited(e->w)) {
			*p = e->next;
			e->next = done;
			done = e;
		} else {
			p = &e->next;
		}
	}
	if (!done)
		return;
	pthread_mutex_unlock(&s->lock);
	while ((e = done)) {
		done = e->next;
		worker_destroy(e->w); /* kills what is left, reaps */
		free(e);
	}
	pthread_mutex_lock(&s->lock);
}

/* Warm VMs whose flint is gone: the pool replaces them. */
static void check_warm(struct server *s)
{
	struct serve_vm *v, *next;

	for (v = s->vms; v; v = next) {
		struct worker *w;
		next = v->next;
		/* A busy VM's workers are its request's thread's to change. */
		if (v->busy)
			continue;
		w = v->w ? v->w : v->vmw;
		if (!w || !worker_exited(w))
			continue;
		/* Only a VM the pool lets go of here is reaped here: one it has
		 * stopped meanwhile (-ENOENT) comes as a STOP action, and one it
		 * has just given a request (-EBUSY) ends with that request. */
		if (pool_vm_failed(s->pool, v->id, now_ns()) < 0)
			continue;
		pr_warn("flint serve: %s: warm VM %" PRIu64 " ended before a request took it",
			v->fn->cfg.name, v->id);
		serve_vm_unlink(s, v);
		v->lost = true;
		v->next = s->reap;
		s->reap = v;
	}
}

static void expire_errs(struct server *s, uint64_t now)
{
	struct serve_err **p = &s->errs, *e;

	while ((e = *p)) {
		if (e->expires_ns <= now) {
			*p = e->next;
			free(e->text);
			free(e);
			s->nerrs--;
		} else {
			p = &e->next;
		}
	}
}

void serve_stream_add(struct server *s, struct serve_stream *st)
{
	st->next = s->streams;
	s->streams = st;
}

void serve_stream_del(struct server *s, struct serve_stream *st)
{
	struct serve_stream **p;

	for (p = &s->streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			return;
		}
}

/* Shut down the connections of streamed answers past their deadline (the
 * manager's tick bounds how late). */
static void cut_slow_streams(struct server *s, uint64_t now)
{
	for (struct serve_stream *st = s->streams; st; st = st->next) {
		if (st->cut || now < st->deadline_ns)
			continue;
		st->cut = true;
		if (shutdown(st->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
			pr_warn("flint serve: cannot shut a slow client's connection down: %s",
				strerror(errno));
	}
}

#define MANAGER_TICK_NS 100000000ULL /* warm VMs checked this often */

static void *manager(void *arg)
{
	struct server *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		uint64_t now = now_ns(), next;

		pool_tick(s->pool, now);
		check_warm(s);
		serve_do_acts(s);
		reap(s);
		reap_exiting(s, false);
		expire_errs(s, now);
		cut_slow_streams(s, now);
		next = pool_next_deadline(s->pool);
		if (next > now + MANAGER_TICK_NS)
			next = now + MANAGER_TICK_NS;
		if (!s->reap)
			cond_wait_until(&s->manager_cv, &s->lock, next);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int serve_manager_start(struct server *s)
{
	int r = -pthread_create(&s->manager, NULL, manager, s);

	s->manager_started = r == 0;
	return r;
}

/* Stops the manager, then kills and reaps every VM and registering flint. */
void serve_manager_stop(struct server *s)
{
	struct serve_vm *v;

	jailing_stop(s->jail); /* a request waiting for a uid gives up */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->manager_cv);
	for (struct serve_fn *f = s->fns; f; f = f->next) {
		worker_kill(f->saving);
		pthread_cond_broadcast(&f->gone);
	}
	for (v = s->vms; v; v = v->next) {
		worker_kill(v->w);
		worker_kill(v->vmw);
		worker_kill(v->run_w);
		agentc_kill(v->run_ac);
	}
	for (struct serve_exiting *e = s->exiting; e; e = e->next)
		worker_kill(e->w);
	pthread_mutex_unlock(&s->lock);
	if (s->manager_started)
		pthread_join(s->manager, NULL);
	s->manager_started = false;
}

/* Idle VMs and leftovers once no connection runs: all freed. */
void serve_registry_free(struct server *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->vms) {
		struct serve_vm *v = s->vms;
		serve_vm_unlink(s, v);
		v->next = s->reap;
		s->reap = v;
	}
	reap(s);
	reap_exiting(s, true);
	while (s->fns) {
		struct serve_fn *f = s->fns;
		fn_unlist(s, f);
		f->refs++;
		serve_fn_put(s, f);
	}
	expire_errs(s, UINT64_MAX);
	pthread_mutex_unlock(&s->lock);
}

/* ---- registering and removing functions ---- */

/* A registering flint's stdout (the prepare command's) is dropped. */
static int sink(void *ctx, const void *buf, size_t len)
{
	(void)ctx, (void)buf, (void)len;
	return 0;
}

/* A path of the configuration is a file the server can read. */
static int check_path(const char *what, const char *path, char *msg, size_t len)
{
	struct stat st;
	const char *why = NULL;

	if (!path)
		return 0;
	if (stat(path, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (access(path, R_OK) < 0)
		why = strerror(errno);
	if (why) {
		snprintf(msg, len, "%s %s: %s", what, path, why);
		return -EINVAL;
	}
	return 0;
}

static char *json_text(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

/* In a registration's jail: where its flint saves the snapshot, which
 * the server then copies out into the function's directory. */
#define JAIL_STATE "/snapshot/state"
#define JAIL_MEM   "/snapshot/mem"

/* The kernel and root image a jailed registration boots, by their host
 * paths: the function's, or flint run's defaults as this server's own
 * flint finds them (config/home.h). 0, or 400 with msg. */
static unsigned jail_defaults(struct serve_fn *fn, char *msg, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct home h;

	if (n > 0)
		exe[n] = '\0';
	home_init(&h, getenv("FLINT_HOME"), n > 0 ? exe : NULL);
	if (fn->cfg.kernel)
		snprintf(fn->kernel, sizeof(fn->kernel), "%s", fn->cfg.kernel);
	else if (home_find(&h, "vmlinux", fn->kernel, sizeof(fn->kernel)) < 0)
		return snprintf(msg, len, "no kernel given and flint's own vmlinux not found"), 400;
	if (fn->cfg.rootfs)
		snprintf(fn->rootfs, sizeof(fn->rootfs), "%s", fn->cfg.rootfs);
	else if (home_find(&h, "rootfs.ext4", fn->rootfs, sizeof(fn->rootfs)) < 0)
		return snprintf(msg, len, "no rootfs given and flint's own rootfs.ext4 not found"),
		       400;
	return 0;
}

/* Room in the pool for fn's registration VM (under the lock, which a wait
 * lets go of): 0 with *req, its request, to pool_complete() once the VM
 * has ended; or an HTTP status with msg. */
static unsigned reg_place(struct server *s, struct serve_fn *fn, uint64_t *req, char *msg,
			  size_t len)
{
	struct serve_wait w = {.decided = false, .client_fd = -1};
	enum pool_refuse why = POOL_REFUSE_LIMITS;
	struct pool_admit a;
	bool run;
	int r;

	*req = 0;
	pthread_cond_init(&w.cv, NULL);
	if ((r = pool_reg_submit(s->pool, fn->cfg.mem_mib, &w, now_ns(), &a)) < 0) {
		pthread_cond_destroy(&w.cv);
		snprintf(msg, len, "the pool refused the registration: %s", strerror(-r));
		return 500;
	}
	run = serve_admitted(s, &w, &a, &why);
	if (run && s->stopping) {
		/* Given the room of a VM the stop just ended: boot nothing. */
		serve_ignore(pool_complete(s->pool, w.req, false, now_ns()));
		serve_do_acts(s);
		run = false;
	}
	if (!run) {
		snprintf(msg, len, "no room to boot the function's VM to its snapshot: %s",
			 s->stopping ? "the server is stopping" : serve_refuse_text(why));
		return s->stopping ? 503 : serve_refuse_status(why);
	}
	*req = w.req;
	return 0;
}

/* Boots fn to its snapshot. 0, or an HTTP status with msg. */
static unsigned save_snapshot(struct server *s, struct serve_fn *fn, char *msg, size_t len)
{
	char **opts;
	struct worker_params p = {
	    .kind = WORKER_SAVE,
	    .flint = s->o.flint,
	    .state = fn->state_path,
	    .mem = fn->mem_path,
	    .timeout_s = fn->cfg.prepare ? fn->cfg.timeout_s : 0,
	    .deadline_s = s->o.register_timeout_s,
	    .argv = fn->cfg.prepare,
	    .env = fn->cfg.prepare ? fn->cfg.env : NULL,
	    .workdir = fn->cfg.prepare ? fn->cfg.workdir : NULL,
	    .save_after = fn->cfg.prepare != NULL,
	};
	struct worker_result res;
	struct worker *w = NULL;
	struct jail_slot *jail = NULL;
	char line[300], why[256];
	uint64_t t0 = now_ns();
	unsigned st;
	int r;

	if (s->jail && (st = jail_defaults(fn, msg, len)))
		return st;
	if (!(opts = serve_worker_opts(s, fn, true)))
		return snprintf(msg, len, "out of memory"), 500;
	p.opts = opts;
	if ((r = serve_jail_params(s, fn, &p, 0, &jail)) < 0) {
		serve_strv_free(opts);
		snprintf(msg, len, "cannot jail the function's VM: %s",
			 r == -EAGAIN ? "no uid of --uid-range free" : strerror(-r));
		return r == -EAGAIN ? 503 : 500;
	}
	if (jail) {
		p.state = JAIL_STATE;
		p.mem = JAIL_MEM;
	}
	r = worker_spawn(&w, &p);
	serve_strv_free(opts);
	if (r < 0) {
		snprintf(msg, len, "cannot run %.300s: %s", s->o.flint, strerror(-r));
		return 500;
	}
	pthread_mutex_lock(&s->lock);
	fn->saving = w;
	if (s->stopping)
		worker_kill(w);
	pthread_mutex_unlock(&s->lock);
	r = worker_pump(w, NULL, sink, NULL);
	if (worker_wait(w, &res) < 0)
		res.outcome = WORKER_KILLED;
	pthread_mutex_lock(&s->lock);
	fn->saving = NULL;
	pthread_mutex_unlock(&s->lock);
	last_line(res.err ? res.err : "", res.err_len, line, sizeof(line));
	/* Out of the jail before the worker removes it. */
	if (jail && res.outcome == WORKER_OK &&
	    ((r = jail_collect(jail, JAIL_STATE, fn->state_path)) < 0 ||
	     (r = jail_collect(jail, JAIL_MEM, fn->mem_path)) < 0)) {
		snprintf(line, sizeof(line), "cannot take the snapshot out of the jail %.200s: %s",
			 jail->root, strerror(-r));
		res.outcome = WORKER_FLINT_ERROR;
	}
	fn->save_ms = (double)(now_ns() - t0) / 1e6;
	worker_destroy(w);
	if (res.outcome == WORKER_OK)
		return 0;
	if (res.outcome == WORKER_EXIT || res.outcome == WORKER_SIGNAL)
		snprintf(msg, len, "the prepare command failed (flint run exit status %d): %s",
			 res.outcome == WORKER_SIGNAL ? 128 + res.status : res.status, line);
	else if (res.outcome == WORKER_CRASH)
		/* flint's reason, not its stderr's last line (the timings). */
		snprintf(msg, len,
			 "booting the function's VM to its snapshot failed: " WORKER_CRASH_TEXT
			 "%s%.250s",
			 worker_flint_said(&res, why, sizeof(why))[0] ? ": " : "", why);
	else
		snprintf(msg, len, "booting the function's VM to its snapshot failed (%s): %s",
			 worker_outcome_name(res.outcome), line);
	return 422;
}

/* fn's directory (the seq'th registration's), and its snapshot in it. 0,
 * or an HTTP status with msg. */
static unsigned make_snapshot(struct server *s, struct serve_fn *fn, uint64_t seq, char *msg,
			      size_t len)
{
	/* --state-dir is short (server.c): these fit. A unique suffix: a
	 * reused --state-dir may hold what a server that was killed left. */
	snprintf(fn->dir, sizeof(fn->dir), "%.100s/%s.%" PRIu64 ".XXXXXX", s->o.state_dir,
		 fn->cfg.name, seq);
	bool made = mkdtemp(fn->dir);
	if (!made || (s->jail && chmod(fn->dir, 0711) < 0)) {
		snprintf(msg, len, "cannot make %.300s: %s", fn->dir, strerror(errno));
		if (made)
			rmdir(fn->dir);
		fn->dir[0] = '\0';
		return 500;
	}
	snprintf(fn->state_path, sizeof(fn->state_path), "%.200s/state", fn->dir);
	snprintf(fn->mem_path, sizeof(fn->mem_path), "%.200s/mem", fn->dir);
	return save_snapshot(s, fn, msg, len);
}

unsigned serve_fn_register(struct server *s, const char *name, const char *body, size_t len,
			   char **out)
{
	struct serve_fn *fn = calloc(1, sizeof(*fn)), *old;
	char msg[600];
	unsigned st = 0;
	int r;

	if (!fn)
		return *out = serve_fault("out of memory"), 500;
	if (fn_config_parse(name, body, len, &fn->cfg, msg, sizeof(msg)) < 0) {
		free(fn);
		return *out = serve_fault("%s", msg), 400;
	}
	if (check_path("kernel", fn->cfg.kernel, msg, sizeof(msg)) < 0 ||
	    check_path("rootfs", fn->cfg.rootfs, msg, sizeof(msg)) < 0) {
		fn_config_free(&fn->cfg);
		free(fn);
		return *out = serve_fault("%s", msg), 400;
	}
	if (fn->cfg.mem_mib > s->o.max_mem_mib) {
		st = 400;
		snprintf(msg, sizeof(msg),
			 "mem_mib %u is over the server's --max-mem (%" PRIu64 " MiB)",
			 fn->cfg.mem_mib, s->o.max_mem_mib);
		fn_config_free(&fn->cfg);
		free(fn);
		return *out = serve_fault("%s", msg), st;
	}
	pthread_cond_init(&fn->gone, NULL);
	pthread_mutex_lock(&s->lock);
	old = serve_fn_find(s, name);
	if (old) {
		bool same = old->state == SFN_READY && fn_config_equal(&old->cfg, &fn->cfg);
		if (same)
			*out = json_text(fn_config_json(&old->cfg));
		else
			*out = serve_fault("function %s exists (%s)%s", name,
					   old->state == SFN_REGISTERING ? "being registered"
					   : old->state == SFN_READY ? "with another configuration"
								     : "being removed",
					   old->state == SFN_READY ? ": DELETE it first" : "");
		pthread_mutex_unlock(&s->lock);
		pthread_cond_destroy(&fn->gone);
		fn_config_free(&fn->cfg);
		free(fn);
		return same ? 200 : 409;
	}
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		pthread_cond_destroy(&fn->gone);
		fn_config_free(&fn->cfg);
		free(fn);
		return *out = serve_fault("the server is stopping"), 503;
	}
	fn->state = SFN_REGISTERING;
	fn->refs = 1; /* this thread's */
	fn->listed = true;
	fn->next = s->fns;
	s->fns = fn;
	uint64_t seq = ++s->dir_seq, req;
	/* Listed first, so that the same name meanwhile is a 409. */
	st = reg_place(s, fn, &req, msg, sizeof(msg));
	pthread_mutex_unlock(&s->lock);

	if (!st)
		st = make_snapshot(s, fn, seq, msg, sizeof(msg));
	pthread_mutex_lock(&s->lock);
	/* Its VM has ended (save_snapshot reaped it): its room goes back,
	 * before the function's own VMs want it. */
	if (req && pool_complete(s->pool, req, false, now_ns()) < 0)
		pr_err("flint serve: %s: registration %" PRIu64 " unknown to the pool", name, req);
	if (!st) {
		struct pool_fn_cfg pc = {
		    .max_concurrency = fn->cfg.max_concurrency,
		    .mem_mib = fn->cfg.mem_mib,
		    .min_warm = fn->cfg.min_warm,
		    /* A VM reset after each request serves many, one at a time,
		     * as a reuse VM does. */
		    .isolation = serve_fn_attached(s, fn) ? POOL_REUSE : POOL_PER_REQUEST,
		    .reuse_max = serve_fn_resets(s, fn) ? SERVE_RESET_MAX : fn->cfg.reuse_max,
		    .queue_max = s->o.fn_queue,
		    .queue_timeout_ns = (uint64_t)s->o.queue_timeout_s * 1000000000ULL,
		};
		if (s->stopping) {
			st = 503;
			snprintf(msg, sizeof(msg), "the server is stopping");
		} else if ((r = pool_fn_add(s->pool, &pc, fn, now_ns(), &fn->pool_id)) < 0) {
			st = r == -ENOMEM ? 500 : 400;
			snprintf(msg, sizeof(msg), "the pool refused the function: %s",
				 r == -E2BIG ? "mem_mib over --max-mem" : strerror(-r));
		}
	}
	if (st) {
		serve_do_acts(s); /* what the room given back let run */
		fn_unlist(s, fn);
		serve_fn_put(s, fn);
		pthread_mutex_unlock(&s->lock);
		return *out = serve_fault("%s", msg), st;
	}
	fn->state = SFN_READY;
	*out = json_text(fn_config_json(&fn->cfg));
	serve_do_acts(s);
	serve_fn_put(s, fn);
	pthread_mutex_unlock(&s->lock);
	pr_info("flint serve: registered %s (%.0f ms to its snapshot)", name, fn->save_ms);
	return 201;
}

/* A removed function's series go (a server that registers many
 * functions over its life keeps no series for each). */
static void metrics_forget(struct server *s, const char *name)
{
	const char *l1[] = {name};

	serve_ignore(prom_series_remove(s->m.queue_wait, l1));
	serve_ignore(prom_series_remove(s->m.run, l1));
	serve_ignore(prom_series_remove(s->m.total, l1));
	serve_ignore(prom_series_remove(s->m.reset, l1));
	serve_ignore(prom_series_remove(s->m.queued, l1));
	for (int i = 0; i < 2; i++) {
		const char *lv[] = {name, i ? "busy" : "warm"};
		const char *lw[] = {name, i ? "true" : "false"};
		serve_ignore(prom_series_remove(s->m.vms, lv));
		serve_ignore(prom_series_remove(s->m.restore, lw));
	}
	for (int o = WORKER_OK; o <= WORKER_CLIENT_GONE; o++) {
		const char *lo[] = {name, worker_outcome_name((enum worker_outcome)o)};
		serve_ignore(prom_series_remove(s->m.invocations, lo));
	}
	for (int r = 0; r < POOL_REFUSE_COUNT; r++) {
		const char *lr[] = {name, pool_refuse_name((enum pool_refuse)r)};
		serve_ignore(prom_series_remove(s->m.refused, lr));
	}
	const char *lc[] = {name, worker_outcome_name(WORKER_CRASH)};
	const char *ll[] = {name, worker_outcome_name(WORKER_LOST)};
	serve_ignore(prom_series_remove(s->m.restarts, lc));
	serve_ignore(prom_series_remove(s->m.restarts, ll));
}

unsigned serve_fn_delete(struct server *s, const char *name, char **out)
{
	struct serve_fn *fn;
	int r;

	pthread_mutex_lock(&s->lock);
	fn = serve_fn_find(s, name);
	if (!fn || fn->state == SFN_REGISTERING) {
		pthread_mutex_unlock(&s->lock);
		*out = serve_fault(fn ? "function %s is still being registered" : "no function %s",
				   name);
		return fn ? 409 : 404;
	}
	fn->refs++;
	if (fn->state == SFN_READY) {
		fn->state = SFN_DRAINING;
		r = pool_fn_remove(s->pool, fn->pool_id, now_ns());
		if (r < 0 && r != -EALREADY)
			pr_err("flint serve: %s: pool_fn_remove: %s", name, strerror(-r));
		serve_do_acts(s);
	}
	while (fn->state != SFN_GONE && !s->stopping)
		pthread_cond_wait(&fn->gone, &s->lock);
	if (fn->state == SFN_GONE && fn->listed) {
		fn_unlist(s, fn);
		metrics_forget(s, name);
	}
	bool gone = fn->state == SFN_GONE;
	serve_fn_put(s, fn);
	pthread_mutex_unlock(&s->lock);
	if (!gone)
		return *out = serve_fault("the server is stopping"), 503;
	*out = NULL;
	return 204;
}

static json_t *stats_json(const struct pool_stats *st)
{
	json_t *refused = json_object();

	for (int i = 0; i < POOL_REFUSE_COUNT; i++)
		json_object_set_new(refused, pool_refuse_name((enum pool_refuse)i),
				    json_integer((json_int_t)st->refused[i]));
	return json_pack("{s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I}",
			 "submitted", (json_int_t)st->submitted, "admitted",
			 (json_int_t)st->admitted, "admitted_warm", (json_int_t)st->admitted_warm,
			 "queued", (json_int_t)st->queued, "refused", refused, "cancelled",
			 (json_int_t)st->cancelled, "completed", (json_int_t)st->completed,
			 "vms_started", (json_int_t)st->vms_started, "warm_started",
			 (json_int_t)st->warm_started, "vms_failed", (json_int_t)st->vms_failed,
			 "evicted", (json_int_t)st->evicted, "retired", (json_int_t)st->retired,
			 "running", (json_int_t)st->running, "queue_len", (json_int_t)st->queue_len,
			 "warm", (json_int_t)st->warm, "starting", (json_int_t)st->starting, "vms",
			 (json_int_t)st->vms, "mem_mib", (json_int_t)st->mem_mib);
}

static const char *state_name(enum serve_fn_state st)
{
	static const char *const names[] = {"registering", "ready", "draining", "gone"};

	return names[st];
}

static json_t *fn_json(struct server *s, struct serve_fn *fn, bool full)
{
	struct pool_stats st = {0};
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "name", json_string(fn->cfg.name));
	json_object_set_new(o, "state", json_string(state_name(fn->state)));
	if (fn->state == SFN_READY || fn->state == SFN_DRAINING) {
		if (pool_fn_stats(s->pool, fn->pool_id, &st) == 0)
			json_object_set_new(o, "pool", stats_json(&st));
		json_object_set_new(o, "snapshot_ms", json_real(fn->save_ms));
	}
	if (full)
		json_object_set_new(o, "config", fn_config_json(&fn->cfg));
	return o;
}

unsigned serve_fn_list(struct server *s, char **out)
{
	json_t *a = json_array();

	pthread_mutex_lock(&s->lock);
	for (struct serve_fn *f = s->fns; f && a; f = f->next)
		json_array_append_new(a, fn_json(s, f, false));
	pthread_mutex_unlock(&s->lock);
	*out = json_text(a);
	return *out ? 200 : 500;
}

unsigned serve_fn_show(struct server *s, const char *name, char **out)
{
	struct serve_fn *fn;

	pthread_mutex_lock(&s->lock);
	fn = serve_fn_find(s, name);
	*out = fn ? json_text(fn_json(s, fn, true)) : serve_fault("no function %s", name);
	pthread_mutex_unlock(&s->lock);
	return fn ? 200 : 404;
}

unsigned serve_info(struct server *s, char **out)
{
	struct pool_stats st;
	json_t *o;

	pthread_mutex_lock(&s->lock);
	pool_stats(s->pool, &st);
	o = json_pack("{s:s,s:s,s:{s:I,s:I,s:I,s:I,s:I},s:o}", "state_dir", s->o.state_dir,
		      "per_request", s->o.reset ? "reset" : "restore", "limits", "max_vms",
		      (json_int_t)s->o.max_vms, "max_mem_mib", (json_int_t)s->o.max_mem_mib,
		      "max_queue", (json_int_t)s->o.max_queue, "fn_queue",
		      (json_int_t)s->o.fn_queue, "queue_timeout_s",
		      (json_int_t)s->o.queue_timeout_s, "pool", stats_json(&st));
	pthread_mutex_unlock(&s->lock);
	*out = json_text(o);
	return *out ? 200 : 500;
}

/* ---- stderr kept ---- */

void serve_err_keep(struct server *s, uint64_t id, const char *fn, const char *text, size_t len,
		    size_t total)
{
	struct serve_err *e, **p;

	if (!s->o.stderr_keep_n)
		return;
	while (s->nerrs >= s->o.stderr_keep_n) {
		/* The oldest is last. */
		for (p = &s->errs; (*p)->next; p = &(*p)->next)
			;
		e = *p;
		*p = NULL;
		free(e->text);
		free(e);
		s->nerrs--;
	}
	if (!(e = calloc(1, sizeof(*e))) || !(e->text = malloc(len + 1))) {
		free(e);
		return;
	}
	memcpy(e->text, text ? text : "", len);
	e->text[len] = '\0';
	e->len = len;
	e->total = total;
	e->id = id;
	snprintf(e->fn, sizeof(e->fn), "%s", fn);
	e->expires_ns = now_ns() + (uint64_t)s->o.stderr_keep_s * 1000000000ULL;
	e->next = s->errs;
	s->errs = e;
	s->nerrs++;
}

unsigned serve_err_get(struct server *s, const char *fn, uint64_t id, char **out, size_t *len)
{
	struct serve_err *e;

	pthread_mutex_lock(&s->lock);
	for (e = s->errs; e; e = e->next)
		if (e->id == id && !strcmp(e->fn, fn))
			break;
	if (e && (*out = malloc(e->len + 1))) {
		memcpy(*out, e->text, e->len + 1);
		*len = e->len;
	}
	pthread_mutex_unlock(&s->lock);
	if (!e) {
		*out = serve_fault("no stderr kept for invocation %" PRIu64 " of %s", id, fn);
		*len = *out ? strlen(*out) : 0;
		return 404;
	}
	return *out ? 200 : 500;
}

/* ---- metrics ---- */

static const double time_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				     0.5,   1,	    2.5,   5,	 10,	30,   60};
#define NB (sizeof(time_bounds) / sizeof(time_bounds[0]))

int serve_metrics_init(struct serve_metrics *m)
{
	static const char *const fn_l[] = {"function", NULL};
	static const char *const out_l[] = {"function", "outcome", NULL};
	static const char *const why_l[] = {"function", "reason", NULL};
	static const char *const warm_l[] = {"function", "warm", NULL};
	static const char *const st_l[] = {"function", "state", NULL};
	int r;

	if ((r = prom_registry_create(&m->reg)) < 0)
		return r;
	if ((r = prom_family_add(m->reg, PROM_COUNTER, "flint_serve_invocations_total",
				 "Invocations that ran on a VM, by how they ended", out_l, NULL, 0,
				 &m->invocations)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_COUNTER, "flint_serve_refused_total",
				 "Invocations refused without running, by reason", why_l, NULL, 0,
				 &m->refused)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_COUNTER, "flint_serve_restarts_total",
				 "Invocations given another VM because theirs crashed or lost its "
				 "agent before the request reached it",
				 out_l, NULL, 0, &m->restarts)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_HISTOGRAM, "flint_serve_queue_wait_seconds",
				 "Time an invocation waited for a VM", fn_l, time_bounds, NB,
				 &m->queue_wait)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_HISTOGRAM, "flint_serve_restore_seconds",
				 "From flint's start (warm: its release) to the guest agent ready",
				 warm_l, time_bounds, NB, &m->restore)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_HISTOGRAM, "flint_serve_run_seconds",
				 "The command's time in the VM", fn_l, time_bounds, NB, &m->run)) <
		0 ||
	    (r = prom_family_add(m->reg, PROM_HISTOGRAM, "flint_serve_request_seconds",
				 "From the request's body received to the command's end", fn_l,
				 time_bounds, NB, &m->total)) < 0 ||
	    (r = prom_family_add(
		 m->reg, PROM_HISTOGRAM, "flint_serve_reset_seconds",
		 "A VM's reset in place to its snapshot after a request (--per-request "
		 "reset), as the server waited for it",
		 fn_l, time_bounds, NB, &m->reset)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_vms",
				 "VMs alive by function and state (warm, busy)", st_l, NULL, 0,
				 &m->vms)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_queued",
				 "Invocations waiting for a VM", fn_l, NULL, 0, &m->queued)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_vms_alive",
				 "VMs alive, all functions", NULL, NULL, 0, &m->vms_alive)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_guest_memory_bytes",
				 "Guest memory of the VMs alive (their mem_mib)", NULL, NULL, 0,
				 &m->guest_mem)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_vm_rss_bytes",
				 "Resident memory of the VMs' flint processes", NULL, NULL, 0,
				 &m->rss)) < 0 ||
	    (r = prom_family_add(m->reg, PROM_GAUGE, "flint_serve_functions",
				 "Functions registered", NULL, NULL, 0, &m->functions)) < 0)
		return r;
	return 0;
}

/* A process's resident bytes, from /proc/PID/statm; 0 when gone. */
static uint64_t rss_of(pid_t pid)
{
	char path[64];
	unsigned long size, res = 0;
	FILE *f;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

unsigned serve_metrics_render(struct server *s, char **out, size_t *len)
{
	struct pool_stats st;
	uint64_t rss = 0;
	unsigned nfn = 0;

	pthread_mutex_lock(&s->lock);
	pool_stats(s->pool, &st);
	serve_ignore(prom_gauge_set(s->m.vms_alive, NULL, st.vms));
	serve_ignore(prom_gauge_set(s->m.guest_mem, NULL, (double)st.mem_mib * 1048576.0));
	for (struct serve_fn *f = s->fns; f; f = f->next) {
		struct pool_stats fs;
		nfn++;
		if (f->state == SFN_REGISTERING || pool_fn_stats(s->pool, f->pool_id, &fs) < 0)
			continue;
		const char *lw[] = {f->cfg.name, "warm"}, *lb[] = {f->cfg.name, "busy"};
		const char *l1[] = {f->cfg.name};
		serve_ignore(prom_gauge_set(s->m.vms, lw, fs.warm));
		serve_ignore(prom_gauge_set(s->m.vms, lb, fs.running));
		serve_ignore(prom_gauge_set(s->m.queued, l1, fs.queue_len));
	}
	for (struct serve_vm *v = s->vms; v; v = v->next)
		rss += rss_of(v->pid);
	serve_ignore(prom_gauge_set(s->m.rss, NULL, (double)rss));
	serve_ignore(prom_gauge_set(s->m.functions, NULL, nfn));
	pthread_mutex_unlock(&s->lock);
	return prom_render(s->m.reg, out, len) < 0 ? 500 : 200;
}
