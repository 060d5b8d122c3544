/* invoke: one POST /functions/{name}/invoke, from the pool's decision to
 * the answer. The connection's thread (libmicrohttpd's, one per
 * connection) waits for a VM, drives the VM's worker and answers:
 *
 * - its stdout is held up to --out-buffer bytes, so that the status can say
 *   how the command ended (200, 422, 504, 502, 500) with the headers;
 * - beyond that it streams (200, chunked), and how the command ended comes
 *   in trailers (X-Flint-Exit-Status, X-Flint-Outcome); a client too slow
 *   to take it by the command's start + timeout_s + WORKER_MARGIN_S is cut
 *   off (struct serve_stream);
 * - ?stderr=inline answers a JSON object with stdout and stderr instead.
 *
 * Per-request isolation: a warm VM (restored paused) is released, or a VM
 * is restored for the request; either way its flint exits with the
 * command, and the VM with it. Reuse: the function's VM runs on in its own
 * flint process, and each request is a `flint run --attach` to its vsock
 * socket. Per-request with --per-request reset: as reuse, and once the
 * answer is sent, the VM is reset in place to its snapshot (worker_reset)
 * before it takes another request; one that cannot be is given up. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/logger.h"
#include "serve/agentc.h"
#include "serve/invoke.h"
#include "serve/server_int.h"

/* One invocation: owned by the connection's thread, then by the streamed
 * response (freed by its free callback). */
struct call {
	struct server *s;
	struct serve_fn *fn; /* a reference */
	struct serve_vm *vm;
	/* The request's: the VM's own flint (per-request, restored), or a
	 * session with the agent of a VM that runs on (reuse, reset). */
	struct worker *w;
	struct agentc *ac;
	int client_fd; /* the client's connection, watched for its hang-up */
	uint64_t req, vm_id, wait_ns, t0;
	uint64_t run_t0; /* its VM's command started (show_running) */
	/* Streamed: its deadline, listed in server.streams (fd >= 0). */
	struct serve_stream stream;
	bool warm, inline_err, finished, streamed;
	bool restarted;	    /* given a second VM (restart) */
	char why[160];	    /* a crash or a lost agent: flint's reason */
	bool crashed_first; /* restart_vm found no VM: the first one crashed */
	bool reset_pending; /* its VM to be reset once the answer is sent */
	bool reset_started; /* on reset_tid, which call_free joins */
	pthread_t reset_tid;
	bool abandoned; /* its streamed answer given up, the server running */
	char *body;
	size_t body_len, body_off;
	char *out;
	size_t out_len, out_cap, out_off;
	bool out_truncated; /* inline: stdout beyond the buffer dropped */
	struct worker_result res;
	double restore_ms, run_ms; /* from flint run --timings; < 0: unknown */
	char *err_text;		   /* stderr without the timings line */
	size_t err_len;
	struct MHD_Response *resp; /* streamed: for the trailers */
};

/* Free the request body, its bytes no longer held against --max-bodies. */
static void free_body(struct call *c)
{
	if (c->body)
		serve_bodies_give(c->s, c->body_len);
	free(c->body);
	c->body = NULL;
}

static ssize_t body_in(void *ctx, void *buf, size_t len)
{
	struct call *c = ctx;
	size_t n = c->body_len - c->body_off;

	if (n > len)
		n = len;
	memcpy(buf, c->body + c->body_off, n);
	c->body_off += n;
	return (ssize_t)n;
}

/* The next piece of the command's stdout, the body going in meanwhile. */
static ssize_t call_read(struct call *c, void *buf, size_t len)
{
	return c->ac ? agentc_read(c->ac, body_in, c, buf, len)
		     : worker_read(c->w, body_in, c, buf, len);
}

/* The request's own flint: a restore of the function's snapshot. */
static int spawn(struct call *c, enum worker_kind kind)
{
	struct serve_fn *fn = c->fn;
	char **opts = serve_worker_opts(c->s, fn, false);
	struct worker_params p = serve_worker_params(c->s, fn, kind, opts);
	struct jail_slot *jail;
	int r = !opts ? -ENOMEM
		      : serve_jail_params(c->s, fn, &p, serve_uid_deadline(c->s, c->t0), &jail);

	if (r == 0)
		r = worker_spawn(&c->w, &p);
	serve_strv_free(opts);
	return r;
}

/* flint run --timings' last line: "... agent ready X ms, command Y ms".
 * Takes the numbers and cuts the line from the stderr kept. */
static void take_timings(struct call *c)
{
	const char *e = c->res.err ? c->res.err : "";
	size_t len = c->res.err_len;
	const char *line = NULL, *p;

	c->restore_ms = c->run_ms = -1;
	for (p = e; p < e + len; p++)
		if ((p == e || p[-1] == '\n') && !strncmp(p, "flint run: ", 11) &&
		    (strstr(p, "agent ready") || strstr(p, "attached")))
			line = p;
	c->err_len = line ? (size_t)(line - e) : len;
	c->err_text = malloc(c->err_len + 1);
	if (c->err_text) {
		memcpy(c->err_text, e, c->err_len);
		c->err_text[c->err_len] = '\0';
	} else {
		c->err_len = 0;
	}
	if (c->res.ready_ms >= 0 || c->res.command_ms >= 0) {
		c->restore_ms = c->res.ready_ms;
		c->run_ms = c->res.command_ms;
		return;
	}
	if (!line)
		return;
	if ((p = strstr(line, "agent ready ")))
		c->restore_ms = strtod(p + 12, NULL);
	if ((p = strstr(line, "command ")) && p[8] >= '0' && p[8] <= '9')
		c->run_ms = strtod(p + 8, NULL);
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* Whether the VM can take another request (reuse, or a reset in place):
 * the command ended and the VM's own flint runs on. Not after a command
 * cut short (killed, its client gone, past the deadline): the guest's
 * state is nobody's to know. A command the agent ended at timeout_s is
 * one a reset undoes, but not a reuse VM, whose files and processes live
 * on: what escaped the command's process group would run into the next
 * request. */
static bool reusable(const struct call *c)
{
	enum worker_outcome o = c->res.outcome;

	if (!serve_fn_attached(c->s, c->fn) || !c->vm->vmw || worker_exited(c->vm->vmw))
		return false;
	if (o == WORKER_TIMEOUT)
		return !c->res.deadline && serve_fn_resets(c->s, c->fn);
	return o == WORKER_OK || o == WORKER_EXIT || o == WORKER_SIGNAL;
}

#define CRASH_WAIT_MS 1000 /* a VM whose agent connection broke: its flint's end */

/* Whether a VM's flint has ended, or does within CRASH_WAIT_MS. */
static bool ended_soon(struct worker *vmw)
{
	for (int i = 0; i < CRASH_WAIT_MS / 50 && !worker_exited(vmw); i++)
		usleep(50000);
	return worker_exited(vmw);
}

/* A VM that runs on by itself (reuse, reset) and whose agent connection
 * broke: if its flint ends soon, with a guest crash, the request says so
 * rather than "lost". */
static void crash_of_vm(struct call *c)
{
	struct worker *vmw = c->vm ? c->vm->vmw : NULL;
	struct worker_result vr;

	if (c->res.outcome != WORKER_LOST || !vmw)
		return;
	if (ended_soon(vmw) && worker_wait(vmw, &vr) == 0 && vr.outcome == WORKER_CRASH) {
		c->res.outcome = WORKER_CRASH;
		worker_flint_said(&vr, c->why, sizeof(c->why));
	}
}

/* The guest crashed or its agent was lost. */
static bool gone_wrong(enum worker_outcome o)
{
	return o == WORKER_CRASH || o == WORKER_LOST;
}

/* What a client is told of a command that did not end by itself. */
static const char *outcome_text(const struct call *c, char *buf, size_t len)
{
	switch (c->res.outcome) {
	case WORKER_TIMEOUT:
		snprintf(buf, len, "the function ran past its timeout_s (%u s): its VM was killed",
			 c->fn->cfg.timeout_s);
		break;
	case WORKER_CRASH:
		snprintf(buf, len, WORKER_CRASH_TEXT "%s%s", c->why[0] ? ": " : "", c->why);
		break;
	case WORKER_LOST:
		snprintf(buf, len, "the guest agent was not reached or its connection was lost%s%s",
			 c->why[0] ? ": " : "", c->why);
		break;
	case WORKER_KILLED:
		snprintf(buf, len, "the VM's flint was killed by signal %d", c->res.status);
		break;
	case WORKER_FLINT_ERROR:
		snprintf(buf, len, "flint could not run the VM (exit status 125); see its stderr");
		break;
	default:
		snprintf(buf, len, "the command exited with status %d", c->res.status);
	}
	return buf;
}

/* The command is over: reap its worker, give the VM back to the pool (or
 * end it), count, keep stderr. Once. */
static void finish(struct call *c)
{
	struct server *s = c->s;
	const char *outcome, *fn = c->fn->cfg.name;
	bool again;

	if (c->finished)
		return;
	c->finished = true;
	/* The command is over: its stdin goes back to --max-bodies now, not
	 * once a client slow to read the answer has it all. */
	free_body(c);
	/* Its status line came with the end of its output: the answer need
	 * not wait for flint to tear the VM down; the manager reaps it. */
	bool early = false;
	if (c->ac) {
		agentc_result(c->ac, &c->res);
	} else if (c->w) {
		/* Not for a guest gone wrong: its flint's exit is near, and
		 * with it the rest of its stderr, which says why. */
		early = worker_early(c->w, &c->res) && !gone_wrong(c->res.outcome);
		if (!early && worker_wait(c->w, &c->res) < 0)
			c->res.outcome = WORKER_KILLED;
	}
	/* Killed for a streamed answer libmicrohttpd gave up (call_free):
	 * its client went away as it read, the same end as one gone while
	 * the command was quiet. */
	if (c->abandoned && c->res.outcome == WORKER_KILLED)
		c->res.outcome = WORKER_CLIENT_GONE;
	pr_debug("flint serve: %s: request %" PRIu64 " ended (%s) %.1f ms after its VM's start%s",
		 fn, c->req, worker_outcome_name(c->res.outcome), (double)c->res.run_ns / 1e6,
		 early ? ", before its flint's exit" : "");
	/* Cut off: however the command ended, its answer did not arrive
	 * (its flint may have exited by itself just before, or the cut
	 * raced the command's end). */
	pthread_mutex_lock(&s->lock);
	bool cut = c->stream.cut;
	pthread_mutex_unlock(&s->lock);
	if (cut && (c->res.outcome == WORKER_OK || c->res.outcome == WORKER_EXIT ||
		    c->res.outcome == WORKER_SIGNAL || c->res.outcome == WORKER_KILLED))
		c->res.outcome = WORKER_CLIENT_GONE;
	if (c->res.outcome == WORKER_CLIENT_GONE && cut)
		pr_warn("flint serve: %s: request %" PRIu64 ": its client had not taken the "
			"streamed answer %u s after the command's start (timeout_s + %u s): cut "
			"off, its command ended",
			fn, c->req, c->fn->cfg.timeout_s + WORKER_MARGIN_S, WORKER_MARGIN_S);
	else if (c->res.outcome == WORKER_CLIENT_GONE)
		pr_info("flint serve: %s: request %" PRIu64 ": the client went away %.1f s in; "
			"its command was ended",
			fn, c->req, secs(now_ns() - c->t0));
	/* (No worker: a restart that found no VM; c->res and c->why are
	 * the first VM's.) */
	if (c->w)
		worker_flint_said(&c->res, c->why, sizeof(c->why));
	else if (c->ac)
		snprintf(c->why, sizeof(c->why), "%s", agentc_said(c->ac));
	take_timings(c);
	crash_of_vm(c);
	if (c->crashed_first && c->res.outcome == WORKER_LOST)
		c->res.outcome = WORKER_CRASH;
	outcome = worker_outcome_name(c->res.outcome);
	if (gone_wrong(c->res.outcome)) {
		char text[320];
		pr_warn("flint serve: %s: request %" PRIu64 ": %s", fn, c->req,
			outcome_text(c, text, sizeof(text)));
	}

	/* Counted before the pool hears of it: a DELETE waiting for the
	 * function's last request removes its series once it has. */
	const char *lv[] = {fn, outcome};
	serve_ignore(prom_counter_add(s->m.invocations, lv, 1));
	const char *l1[] = {fn};
	if (c->restore_ms >= 0) {
		const char *lw[] = {fn, c->warm ? "true" : "false"};
		serve_ignore(prom_histogram_observe(s->m.restore, lw, c->restore_ms / 1e3));
	}
	serve_ignore(prom_histogram_observe(
	    s->m.run, l1, c->run_ms >= 0 ? c->run_ms / 1e3 : secs(c->res.run_ns)));
	serve_ignore(prom_histogram_observe(s->m.total, l1, secs(now_ns() - c->t0)));

	pthread_mutex_lock(&s->lock);
	c->vm->run_w = NULL;
	c->vm->run_ac = NULL;
	/* Its agent gave no status past the timeout: a guest stuck. */
	c->vm->stuck = c->ac && c->res.outcome == WORKER_TIMEOUT && c->res.deadline;
	again = reusable(c);
	if (again)
		worker_log_rewind(c->vm->vmw); /* its stderr, between requests */
	if (again && serve_fn_resets(s, c->fn)) {
		/* Its VM stays busy, its request running, until the reset
		 * after the answer (reset_vm). */
		c->reset_pending = true;
	} else if (pool_complete(s->pool, c->req, again, now_ns()) < 0) {
		pr_err("flint serve: request %" PRIu64 " was not running", c->req);
	}
	/* What is left of a streamed answer holds no VM now, and is not cut
	 * off, but for one whose VM is reset once it is sent. */
	if (c->stream.fd >= 0 && !c->reset_pending)
		serve_stream_del(s, &c->stream);
	if (c->reset_pending) {
		/* nothing more until the reset */
	} else if (!again) {
		/* Per-request, or a reuse VM that cannot go on: it ends. */
		serve_vm_unlink(s, c->vm);
		c->vm->next = s->reap;
		s->reap = c->vm;
		pthread_cond_signal(&s->manager_cv);
	} else {
		c->vm->busy = false;
	}
	if (!c->reset_pending)
		c->vm = NULL;
	if (early) {
		serve_exiting_add(s, c->w);
		c->w = NULL;
	}
	serve_err_keep(s, c->req, fn, c->err_text, c->err_len, c->res.err_total);
	serve_do_acts(s);
	pthread_mutex_unlock(&s->lock);
}

/* --per-request reset, once the answer is sent: the VM back to its
 * snapshot, then free for the next request; given up if that fails. */
static void reset_vm(struct call *c)
{
	struct server *s = c->s;
	struct serve_vm *vm = c->vm;
	char err[256] = "";
	uint64_t t0 = now_ns();
	int r = worker_reset(vm->vmw, SERVE_RESET_TIMEOUT_MS, NULL, err, sizeof(err));
	const char *l1[] = {c->fn->cfg.name};

	if (r < 0)
		pr_warn("flint serve: %s: VM %" PRIu64 " could not be reset (%s): given up",
			c->fn->cfg.name, vm->id, err[0] ? err : strerror(-r));
	else
		serve_ignore(prom_histogram_observe(s->m.reset, l1, secs(now_ns() - t0)));
	pthread_mutex_lock(&s->lock);
	if (pool_complete(s->pool, c->req, r == 0, now_ns()) < 0)
		pr_err("flint serve: request %" PRIu64 " was not running", c->req);
	if (r < 0) {
		serve_vm_unlink(s, vm);
		vm->next = s->reap;
		s->reap = vm;
		pthread_cond_signal(&s->manager_cv);
	} else {
		vm->busy = false;
	}
	c->vm = NULL;
	c->reset_pending = false;
	serve_do_acts(s);
	pthread_mutex_unlock(&s->lock);
}

static void *reset_thread(void *arg)
{
	reset_vm(arg);
	return NULL;
}

/* An answer held whole is queued: reset its VM now, on a thread of its own,
 * rather than once the client has read it all (call_free): a client slow
 * to read would hold the VM and its place in the pool for as long as it
 * liked. */
static void reset_now(struct call *c)
{
	int r = thread_start_unsignalled(&c->reset_tid, NULL, reset_thread, c);

	if (r)
		pr_warn("flint serve: no thread for a reset (%s); it waits for the answer's end",
			strerror(r));
	c->reset_started = !r;
}

static void call_free(struct call *c)
{
	struct server *s = c->s;

	if (c->stream.fd >= 0) { /* (finish has, if it ran, but for a reset) */
		pthread_mutex_lock(&s->lock);
		serve_stream_del(s, &c->stream);
		bool cut = c->stream.cut;
		pthread_mutex_unlock(&s->lock);
		if (cut && c->finished && c->res.outcome != WORKER_CLIENT_GONE)
			pr_warn("flint serve: %s: request %" PRIu64 ": its client had not taken "
				"the rest of the streamed answer by timeout_s + %u s: cut off",
				c->fn->cfg.name, c->req, WORKER_MARGIN_S);
	}
	if (c->reset_started)
		pthread_join(c->reset_tid, NULL);
	else if (c->reset_pending)
		reset_vm(c);
	if ((c->w || c->ac) && !c->finished) {
		/* A streamed answer libmicrohttpd gave up: its client went
		 * away (a write failed, or it hung up), or the server is
		 * stopping; or none was queued (out of memory). */
		worker_kill(c->w);
		agentc_kill(c->ac);
		pthread_mutex_lock(&s->lock);
		c->abandoned = c->resp && !s->stopping;
		pthread_mutex_unlock(&s->lock);
		finish(c);
	}
	worker_destroy(c->w);
	agentc_destroy(c->ac);
	pthread_mutex_lock(&s->lock);
	if (c->vm) /* never ran: placed, then the spawn failed */
		serve_vm_free(s, c->vm);
	serve_fn_put(s, c->fn);
	pthread_mutex_unlock(&s->lock);
	free_body(c);
	free(c->out);
	free(c->err_text);
	close_fd(&c->stream.fd);
	free(c);
}

/* The HTTP status for how the command ended. */
static unsigned outcome_status(enum worker_outcome o)
{
	switch (o) {
	case WORKER_OK:
		return 200;
	case WORKER_EXIT:
	case WORKER_SIGNAL:
		return 422;
	case WORKER_TIMEOUT:
		return 504;
	case WORKER_FLINT_ERROR:
		return 500;
	case WORKER_CRASH:
	case WORKER_LOST:
	case WORKER_KILLED:
	case WORKER_CLIENT_GONE: /* never sent: nobody to send it to */
		break;
	}
	return 502;
}

/* The exit status a client sees: the command's, 128+N for a signal. */
static bool exit_status(const struct call *c, int *st)
{
	switch (c->res.outcome) {
	case WORKER_OK:
		*st = 0;
		return true;
	case WORKER_EXIT:
		*st = c->res.status;
		return true;
	case WORKER_SIGNAL:
		*st = 128 + c->res.status;
		return true;
	default:
		return false;
	}
}

static void add_header(struct MHD_Response *r, enum MHD_ValueKind kind, const char *name,
		       const char *fmt, ...) PRINTF(4, 5);
static void add_header(struct MHD_Response *r, enum MHD_ValueKind kind, const char *name,
		       const char *fmt, ...)
{
	char v[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (kind == MHD_FOOTER_KIND)
		MHD_add_response_footer(r, name, v);
	else
		MHD_add_response_header(r, name, v);
}

/* The headers known before the command ends. */
static void start_headers(struct MHD_Response *r, const struct call *c)
{
	add_header(r, MHD_HEADER_KIND, "X-Flint-Invocation-Id", "%" PRIu64, c->req);
	add_header(r, MHD_HEADER_KIND, "X-Flint-VM-Id", "%" PRIu64, c->vm_id);
	add_header(r, MHD_HEADER_KIND, "X-Flint-Queue-Ms", "%.3f", c->wait_ns / 1e6);
	add_header(r, MHD_HEADER_KIND, "X-Flint-Warm", "%s", c->warm ? "true" : "false");
}

/* The headers (or trailers) of how it ended. */
static void end_headers(struct MHD_Response *r, const struct call *c, enum MHD_ValueKind kind)
{
	int st;

	add_header(r, kind, "X-Flint-Outcome", "%s", worker_outcome_name(c->res.outcome));
	if (exit_status(c, &st))
		add_header(r, kind, "X-Flint-Exit-Status", "%d", st);
	if (c->run_ms >= 0)
		add_header(r, kind, "X-Flint-Run-Ms", "%.3f", c->run_ms);
	if (c->restore_ms >= 0)
		add_header(r, kind, "X-Flint-Restore-Ms", "%.3f", c->restore_ms);
	add_header(r, kind, "X-Flint-Stderr-Bytes", "%zu", c->res.err_total);
}

static json_t *text_json(const char *p, size_t len)
{
	json_t *j = json_stringn(p, len);
	char *copy;

	if (j || !len)
		return j ? j : json_string("");
	/* Not UTF-8: bytes over 0x7f become '?'. */
	if (!(copy = malloc(len)))
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
	j = json_stringn(copy, len);
	free(copy);
	return j;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
			      char *body, size_t len, struct call *c)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (c) {
		start_headers(r, c);
		if (c->finished)
			end_headers(r, c, MHD_HEADER_KIND);
	}
	if (status == 429 || status == 503)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result fault(struct MHD_Connection *conn, unsigned status, struct call *c,
			     const char *msg)
{
	char *b = serve_fault("%s", msg);

	return b ? answer(conn, status, "application/json", b, strlen(b), c) : MHD_NO;
}

/* ?stderr=inline: everything as one JSON object. */
static enum MHD_Result answer_inline(struct MHD_Connection *conn, struct call *c)
{
	json_t *o = json_object();
	char *text;
	int st;

	if (!o)
		return MHD_NO;
	json_object_set_new(o, "invocation_id", json_integer((json_int_t)c->req));
	json_object_set_new(o, "vm_id", json_integer((json_int_t)c->vm_id));
	json_object_set_new(o, "outcome", json_string(worker_outcome_name(c->res.outcome)));
	json_object_set_new(o, "exit_status", exit_status(c, &st) ? json_integer(st) : json_null());
	json_object_set_new(o, "stdout", text_json(c->out ? c->out : "", c->out_len));
	json_object_set_new(o, "stdout_truncated", json_boolean(c->out_truncated));
	json_object_set_new(o, "stderr", text_json(c->err_text ? c->err_text : "", c->err_len));
	json_object_set_new(o, "stderr_truncated", json_boolean(c->res.err_truncated));
	json_object_set_new(o, "queue_ms", json_real(c->wait_ns / 1e6));
	json_object_set_new(o, "restore_ms",
			    c->restore_ms >= 0 ? json_real(c->restore_ms) : json_null());
	json_object_set_new(o, "run_ms", c->run_ms >= 0 ? json_real(c->run_ms) : json_null());
	json_object_set_new(o, "warm", json_boolean(c->warm));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return MHD_NO;
	return answer(conn, outcome_status(c->res.outcome), "application/json", text, strlen(text),
		      c);
}

/* The streamed part: what was held, then the rest as it comes; at its
 * end the trailers. */
static ssize_t stream_more(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct call *c = cls;
	ssize_t n;

	(void)pos;
	if (c->out_off < c->out_len) {
		size_t k = c->out_len - c->out_off;
		if (k > max)
			k = max;
		memcpy(buf, c->out + c->out_off, k);
		c->out_off += k;
		return (ssize_t)k;
	}
	if (!c->finished) {
		n = call_read(c, buf, max);
		if (n > 0)
			return n;
		finish(c);
		/* No trailers for a client gone: the connection is closed. */
		if (c->res.outcome == WORKER_CLIENT_GONE)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		end_headers(c->resp, c, MHD_FOOTER_KIND);
	}
	return MHD_CONTENT_READER_END_OF_STREAM;
}

/* A streamed answer is given up at its deadline, however slowly its
 * client goes on reading (struct serve_stream). */
static void watch_stream(struct call *c)
{
	if (c->client_fd < 0)
		return;
	if ((c->stream.fd = fcntl(c->client_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		pr_warn("flint serve: %s: request %" PRIu64 ": no deadline for its streamed "
			"answer: %s",
			c->fn->cfg.name, c->req, strerror(errno));
		return;
	}
	c->stream.deadline_ns =
	    c->run_t0 + (uint64_t)(c->fn->cfg.timeout_s + WORKER_MARGIN_S) * 1000000000ULL;
	pthread_mutex_lock(&c->s->lock);
	serve_stream_add(c->s, &c->stream);
	pthread_mutex_unlock(&c->s->lock);
}

static void stream_free(void *cls)
{
	call_free(cls);
}

/* Reads stdout into c->out until its end or the buffer is full. 0 at
 * the end, 1 when full (more may come). */
static int fill(struct call *c)
{
	while (c->out_len < c->out_cap) {
		ssize_t n = call_read(c, c->out + c->out_len, c->out_cap - c->out_len);
		if (n <= 0)
			return 0;
		c->out_len += (size_t)n;
	}
	return 1;
}

/* Drops the rest of stdout (inline answers hold only the buffer). */
static void drain(struct call *c)
{
	char sink[4096];

	while (call_read(c, sink, sizeof(sink)) > 0)
		c->out_truncated = true;
}

/* Whether the client on fd (-1: none) has hung up, as the workers tell. */
static bool client_gone(int fd)
{
	struct pollfd pf = {fd, POLLRDHUP, 0};

	return fd >= 0 && poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Waits for the pool's decision on a queued request. false: refused
 * (w->wait_ns and *why set), the client gone (w->client_gone) or the
 * server stopping. */
static bool wait_turn(struct server *s, struct serve_wait *w, enum pool_refuse *why)
{
	/* Timed: a stop wakes no one here (the server does not list its
	 * waiters), nor does a client's hang-up, so the wait looks again now
	 * and then. */
	while (!w->decided && !s->stopping && !(w->client_gone = client_gone(w->client_fd))) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000L;
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_sec++, ts.tv_nsec -= 1000000000L;
		pthread_cond_timedwait(&w->cv, &s->lock, &ts);
	}
	if (!w->decided) {
		/* The cancel lets the pool's time pass first, which may decide
		 * this very request (its deadline, or a VM free): its action
		 * must be taken while w still lives. */
		int r = pool_cancel(s->pool, w->req, now_ns());
		serve_do_acts(s);
		if (r == 0 || !w->decided) {
			*why = POOL_REFUSE_LIMITS;
			return false;
		}
	}
	*why = w->reason;
	return w->run;
}

bool serve_admitted(struct server *s, struct serve_wait *w, const struct pool_admit *a,
		    enum pool_refuse *why)
{
	bool run;

	w->req = a->req;
	if (a->kind == POOL_RUN) {
		w->vm = a->vm;
		w->warm = a->warm;
	}
	serve_do_acts(s);
	run = a->kind == POOL_RUN || (a->kind == POOL_QUEUED && wait_turn(s, w, why));
	if (a->kind == POOL_REFUSED)
		*why = a->reason;
	pthread_cond_destroy(&w->cv);
	return run;
}

/* Places the request (under the lock): 0 with c->vm set, or an HTTP
 * status with msg. */
static unsigned place(struct call *c, char *msg, size_t len)
{
	struct server *s = c->s;
	struct serve_wait w = {.decided = false, .client_fd = c->client_fd};
	struct pool_admit a;
	enum pool_refuse why = POOL_REFUSE_UNKNOWN;
	struct serve_vm *vm;
	bool run;

	pthread_cond_init(&w.cv, NULL);
	if (pool_submit(s->pool, c->fn->pool_id, &w, now_ns(), &a) < 0) {
		pthread_cond_destroy(&w.cv);
		snprintf(msg, len, "out of memory");
		return 503;
	}
	run = serve_admitted(s, &w, &a, &why);
	const char *lv[] = {c->fn->cfg.name, pool_refuse_name(why)};
	if (!run && w.client_gone) {
		/* Its place given up: nobody to answer. */
		snprintf(msg, len, "the client went away while its request waited");
		return 503;
	}
	if (!run) {
		serve_ignore(prom_counter_add(s->m.refused, lv, 1));
		snprintf(msg, len, "%s",
			 s->stopping ? "the server is stopping" : serve_refuse_text(why));
		return serve_refuse_status(why);
	}
	c->req = w.req;
	c->warm = w.warm;
	c->wait_ns = w.wait_ns;
	const char *l1[] = {c->fn->cfg.name};
	serve_ignore(prom_histogram_observe(s->m.queue_wait, l1, secs(w.wait_ns)));
	if (w.warm && (vm = serve_vm_find(s, w.vm))) {
		vm->busy = true;
	} else {
		/* A new VM, which the request's own thread spawns. */
		if (!(vm = calloc(1, sizeof(*vm)))) {
			if (pool_complete(s->pool, c->req, false, now_ns()) == 0)
				serve_do_acts(s);
			snprintf(msg, len, "out of memory");
			return 503;
		}
		vm->id = w.vm;
		vm->fn = c->fn;
		c->fn->refs++;
		vm->busy = true;
		vm->next = s->vms;
		s->vms = vm;
		serve_ignore(pool_vm_set_ctx(s->pool, vm->id, vm));
		c->warm = false;
	}
	c->vm = vm;
	c->vm_id = vm->id;
	return 0;
}

static bool vm_gone(void *vmw)
{
	return worker_exited(vmw);
}

/* Gets the request a running worker: releases the warm VM (per-request),
 * starts the reuse VM if new, then --attach; or restores one. 0 or
 * -errno. */
static int start(struct call *c)
{
	struct serve_vm *vm = c->vm;
	int ret;

	if (serve_fn_attached(c->s, c->fn)) {
		if (!vm->vmw &&
		    (ret = serve_vm_spawn(c->s, vm, serve_uid_deadline(c->s, c->t0))) < 0)
			return ret;
		struct agentc_params ap = {
		    .uds = vm->uds,
		    .argv = c->fn->cfg.command,
		    .env = c->fn->cfg.env,
		    .workdir = c->fn->cfg.workdir,
		    .timeout_s = c->fn->cfg.timeout_s,
		    .connect_ms = SERVE_AGENT_CONNECT_MS,
		    .open_uds = vm->jail ? serve_jail_open_uds : NULL,
		    .open_ctx = vm->jail,
		    .vm_gone = vm_gone,
		    .gone_ctx = vm->vmw,
		};
		return agentc_start(&c->ac, &ap);
	}
	if (vm->w) {
		/* A warm VM: the go byte. If its flint died meanwhile, restore
		 * one afresh. */
		pthread_mutex_lock(&c->s->lock); /* a stop kills what it sees */
		c->w = vm->w;
		vm->w = NULL;
		pthread_mutex_unlock(&c->s->lock);
		if (worker_release(c->w) == 0)
			return 0;
		worker_destroy(c->w);
		c->w = NULL;
		c->warm = false;
	}
	if ((ret = spawn(c, WORKER_RESTORE)) == 0)
		vm->pid = worker_pid(c->w);
	return ret;
}

/* The request's worker (or session, and its VM) started: it watches the
 * client's connection, so that a client that hangs up ends the command
 * rather than leave it to run on for nobody (one that shuts only its
 * sending side counts: libmicrohttpd closes such a connection at its
 * next read too). The server may have begun to
 * stop meanwhile: it kills what it can see, so let it see them, and if it
 * has begun, kill them here. */
static void show_running(struct call *c)
{
	struct server *s = c->s;

	c->run_t0 = now_ns();
	worker_watch_client(c->w, c->client_fd);
	agentc_watch_client(c->ac, c->client_fd);
	pthread_mutex_lock(&s->lock);
	c->vm->run_w = c->w;
	c->vm->run_ac = c->ac;
	if (s->stopping) {
		worker_kill(c->w);
		agentc_kill(c->ac);
		worker_kill(c->vm->vmw);
	}
	pthread_mutex_unlock(&s->lock);
}

static void tell_restart(struct call *c, enum worker_outcome o, const char *why)
{
	const char *lo[] = {c->fn->cfg.name, worker_outcome_name(o)};

	pr_warn("flint serve: %s: request %" PRIu64 ": its VM %s before the request reached it "
		"(%s); restoring another",
		c->fn->cfg.name, c->req, o == WORKER_CRASH ? "crashed" : "lost its agent",
		why[0] ? why : "no message");
	serve_ignore(prom_counter_add(c->s->m.restarts, lo, 1));
}

/* Per-request restore: the request's own flint reported a guest crash,
 * and its status line says sent=0 (the one witness that nothing was
 * sent): a fresh restore takes the request. (An agent not reached is not
 * restarted: a snapshot whose agent never answers would double every
 * request's wait.) Its reaped flint is given up first, its jail with it,
 * so that the new one needs no uid more; if no new one can be had, the
 * first's outcome is the answer (c->res, c->w NULL). */
static bool restart_restore(struct call *c)
{
	struct server *s = c->s;
	struct worker *old = c->w;
	struct worker_result r;
	bool stopping;
	int ret;

	if (!worker_early(old, &r) || !r.unsent || r.outcome != WORKER_CRASH)
		return false;
	/* Its flint is ending: reaped, for all of its stderr. */
	if (worker_wait(old, &r) < 0 || r.outcome != WORKER_CRASH)
		return false;
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	if (!stopping)
		c->vm->run_w = NULL;
	pthread_mutex_unlock(&s->lock);
	if (stopping)
		return false;
	c->restarted = true;
	worker_flint_said(&r, c->why, sizeof(c->why));
	r.err = NULL;
	r.err_len = 0;
	c->res = r;
	c->w = NULL;
	worker_destroy(old);
	c->body_off = 0;
	if ((ret = start(c)) < 0) {
		pr_warn("flint serve: %s: request %" PRIu64 ": its VM crashed before the request "
			"reached it (%s), and no other VM: %s",
			c->fn->cfg.name, c->req, c->why[0] ? c->why : "no message", strerror(-ret));
		return false;
	}
	tell_restart(c, WORKER_CRASH, c->why);
	c->warm = false;
	show_running(c);
	return true;
}

/* A VM that runs on (reset in place, reuse) whose flint ended, within
 * CRASH_WAIT_MS, before anything of the request was written to its agent
 * (a VM alive whose agent did not answer is not restarted): its slot
 * gets a fresh VM from the snapshot, and the request a session with it. */
static bool restart_vm(struct call *c)
{
	struct server *s = c->s;
	struct serve_vm *vm = c->vm;
	struct agentc *old_ac = c->ac;
	struct worker_result r, vr = {.outcome = WORKER_CRASH};
	struct worker *old = NULL;
	char why[200] = "", old_uds[sizeof(vm->uds)] = "";
	bool stopping, jailed = false;
	int ret;

	agentc_result(old_ac, &r);
	if (!r.unsent || !gone_wrong(r.outcome) || !vm->vmw || !ended_soon(vm->vmw))
		return false;
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	if (!stopping) {
		/* Its jail and socket (a path in that jail, or the server's
		 * own) go with it: nothing names them once it is destroyed. */
		old = vm->vmw;
		jailed = vm->jail != NULL;
		snprintf(old_uds, sizeof(old_uds), "%s", vm->uds);
		vm->vmw = NULL;
		vm->run_ac = NULL;
		vm->jail = NULL;
		vm->uds[0] = '\0';
		vm->pid = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (stopping)
		return false;
	if (worker_wait(old, &vr) == 0)
		worker_flint_said(&vr, why, sizeof(why));
	worker_destroy(old); /* its jail too, before the next one's */
	if (!jailed && old_uds[0])
		unlink(old_uds);
	if (vr.outcome == WORKER_KILLED)
		return false; /* not a crash: the server's stop, or the OOM killer */
	c->restarted = true;
	c->ac = NULL;
	c->body_off = 0;
	if ((ret = start(c)) < 0) {
		pr_warn("flint serve: %s: request %" PRIu64 ": its VM ended before the request "
			"reached it (%s), and no other VM: %s",
			c->fn->cfg.name, c->req, why[0] ? why : "no message", strerror(-ret));
		agentc_destroy(c->ac);
		c->ac = old_ac;
		/* The answer is the first VM's end (finish: crashed_first). */
		snprintf(c->why, sizeof(c->why), "%s", why);
		c->crashed_first = vr.outcome == WORKER_CRASH;
		return false;
	}
	agentc_destroy(old_ac);
	c->warm = false;
	tell_restart(c, vr.outcome == WORKER_CRASH ? WORKER_CRASH : WORKER_LOST, why);
	show_running(c);
	return true;
}

/* The request's VM crashed, or lost its agent, before anything of the
 * request reached the guest: nothing of it ran, so it gets one more VM
 * (restart_restore, restart_vm), and a restore gone wrong costs it a
 * restore's time rather than its answer. false when not so, or when the
 * new VM cannot be had (the first one's outcome stands). */
static bool restart(struct call *c)
{
	if (c->restarted || c->out_len)
		return false;
	return c->ac ? restart_vm(c) : c->w && restart_restore(c);
}

void serve_invoke_after(void *call)
{
	call_free(call);
}

enum MHD_Result serve_invoke(struct server *s, struct MHD_Connection *conn, const char *name,
			     char *body, size_t len, bool inline_err, void **after)
{
	struct call *c = calloc(1, sizeof(*c));
	char msg[256];
	unsigned st;
	int r;

	if (!c) {
		free(body);
		serve_bodies_give(s, body ? len : 0);
		return MHD_NO;
	}
	c->s = s;
	c->body = body;
	c->body_len = len;
	c->inline_err = inline_err;
	c->t0 = now_ns();
	c->restore_ms = c->run_ms = -1;
	c->stream.fd = -1;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->client_fd = ci ? ci->connect_fd : -1;
	pthread_mutex_lock(&s->lock);
	c->fn = serve_fn_find(s, name);
	if (!c->fn || c->fn->state == SFN_REGISTERING) {
		pthread_mutex_unlock(&s->lock);
		st = c->fn ? 409 : 404;
		snprintf(msg, sizeof(msg),
			 c->fn ? "function %s is still being registered" : "no function %s", name);
		c->fn = NULL;
		free_body(c);
		free(c);
		return fault(conn, st, NULL, msg);
	}
	c->fn->refs++;
	st = place(c, msg, sizeof(msg));
	pthread_mutex_unlock(&s->lock);
	if (st) {
		call_free(c);
		return fault(conn, st, NULL, msg);
	}

	c->out_cap = s->o.out_buffer;
	if (!(c->out = malloc(c->out_cap)) || (r = start(c)) < 0) {
		/* Every uid of --uid-range held still past --queue-timeout (VMs
		 * that ended, not reaped yet): busy, as a full queue. */
		bool busy = c->out && r == -ETIMEDOUT && s->jail;
		if (busy)
			snprintf(msg, sizeof(msg),
				 "no uid of --uid-range came free within --queue-timeout (%u s)",
				 s->o.queue_timeout_s);
		else
			snprintf(msg, sizeof(msg), "cannot start the function's VM: %s",
				 strerror(c->out ? -r : ENOMEM));
		pthread_mutex_lock(&s->lock);
		if (pool_complete(s->pool, c->req, false, now_ns()) == 0)
			serve_do_acts(s);
		pthread_mutex_unlock(&s->lock);
		enum MHD_Result ret = fault(conn, busy ? 503 : 500, NULL, msg);
		call_free(c);
		return ret;
	}
	show_running(c);
	int more;
	while ((more = fill(c)) == 0 && restart(c))
		;
	if (more == 0 || inline_err) {
		if (inline_err)
			drain(c);
		finish(c);
		enum MHD_Result ret;
		if (c->res.outcome == WORKER_CLIENT_GONE) {
			ret = MHD_NO; /* nobody to answer: the connection is closed */
		} else if (inline_err) {
			ret = answer_inline(conn, c);
		} else if (c->res.outcome == WORKER_OK || c->res.outcome == WORKER_EXIT ||
			   c->res.outcome == WORKER_SIGNAL) {
			char *out = c->out;
			c->out = NULL;
			ret = answer(conn, outcome_status(c->res.outcome),
				     "application/octet-stream", out, c->out_len, c);
		} else {
			ret = fault(conn, outcome_status(c->res.outcome), c,
				    outcome_text(c, msg, sizeof(msg)));
		}
		if (c->reset_pending) {
			if (ret == MHD_YES)
				reset_now(c);
			*after = c;
		} else {
			call_free(c);
		}
		return ret;
	}
	/* More than the buffer: stream it. */
	c->streamed = true;
	c->resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 << 10, stream_more, c,
						    stream_free);
	if (!c->resp) {
		call_free(c);
		return MHD_NO;
	}
	MHD_add_response_header(c->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(c->resp, MHD_HTTP_HEADER_TRAILER,
				"X-Flint-Outcome, X-Flint-Exit-Status, X-Flint-Run-Ms, "
				"X-Flint-Restore-Ms, X-Flint-Stderr-Bytes");
	start_headers(c->resp, c);
	/* libmicrohttpd's idle timeout also runs while stream_more waits for
	 * the command's next output: past it the answer would be cut off and
	 * the VM killed. The command may be quiet as long as it may run. */
	unsigned quiet_s = c->fn->cfg.timeout_s + WORKER_MARGIN_S;
	if (quiet_s > SERVE_IDLE_TIMEOUT_S)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, quiet_s);
	watch_stream(c);
	struct MHD_Response *resp = c->resp;
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}
