/* server: `flint serve`'s process (see server.h): its options, its
 * listening sockets, libmicrohttpd's handler dispatching to the
 * registry (registry.c) and to invocations (invoke.c), and a clean stop
 * on SIGINT or SIGTERM: no connection is taken any more, every VM is
 * killed and reaped, the state directory removed. */
#include "serve/server.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logger.h"
#include "core/usock.h"
#include "serve/invoke.h"
#include "serve/route.h"
#include "serve/server_int.h"

#define SERVE_EXIT_ERROR      125
#define SERVE_MAX_CONNECTIONS 1024u

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flint serve --listen ADDR:PORT|unix:PATH [options]\n"
		"Per-request function execution: each request runs a registered function in\n"
		"a microVM restored from the function's snapshot (see README.md).\n\n"
		"  --listen ADDR:PORT   serve HTTP on this TCP address (127.0.0.1:8080,\n"
		"                       [::1]:8080); unix:PATH for a Unix socket;\n"
		"                       repeatable, up to %d\n"
		"  --state-dir DIR      where functions' snapshots live, at most 79 bytes\n"
		"                       (default: a new directory under $TMPDIR or /tmp,\n"
		"                       removed at exit)\n"
		"  --flint PATH         the flint binary the VMs run (default: this one)\n"
		"  --max-vms N          VMs alive at once, all functions (1 to 100000,\n"
		"                       default 64)\n"
		"  --max-mem SIZE       guest memory of the VMs alive (16M to 1048576G,\n"
		"                       default 8G; a SIZE is bytes, or K, M or G)\n"
		"  --max-queue N        requests waiting, all functions (0 to 1000000,\n"
		"                       default 1024)\n"
		"  --fn-queue N         requests and registrations waiting per function (0\n"
		"                       to 1000000, default 64; 0: a registration does not\n"
		"                       wait either)\n"
		"  --queue-timeout S    the longest a request waits for a VM (1 to 86400,\n"
		"                       default 30)\n"
		"  --idle S             stop warm VMs above min_warm after S idle (1 to\n"
		"                       2592000, default 60; 0: never)\n"
		"  --max-body SIZE      a request body's cap (0 to 4G, default 16M): 413\n"
		"                       beyond\n"
		"  --max-bodies SIZE    request bodies held at once, queued ones included\n"
		"                       (default 256M, or --max-body if larger): 503 beyond\n"
		"  --out-buffer SIZE    stdout held to choose the status (4K to 1G, default\n"
		"                       1M); more streams with status 200 and trailers\n"
		"  --stderr-keep N      invocations whose stderr is kept (0 to 1000000,\n"
		"                       default 1024)\n"
		"  --stderr-ttl S       for this long (1 to 2592000, default 600)\n"
		"  --register-timeout S boot, prepare and snapshot a function (1 to 86400,\n"
		"                       default 300)\n"
		"  --per-request MODE   how per-request isolation gets each request a VM as\n"
		"                       its snapshot left it: reset (default), a VM reset in\n"
		"                       place after each request; restore, a VM restored\n"
		"                       for each request (its own flint process)\n"
		"  --jail PATH          run each VM's flint under this flint-jail, in a jail\n"
		"                       of its own (--flint must then be a static flint)\n"
		"  --uid-range A-B      with --jail: each VM runs as a uid of A..B no other\n"
		"                       VM holds (at least --max-vms + 1 of them)\n"
		"  --gid G              with --jail: every VM's gid, 1 to 4294967294\n"
		"                       (default: its uid)\n"
		"  --chroot-base-dir D  with --jail: the jails' base (default %s)\n"
		"  --parent-cgroup P    with --jail: a VM's cgroup is P/FUNCTION/JAIL-ID\n"
		"                       (default %s)\n"
		"  --cgroup FILE=VALUE  with --jail: set in each VM's cgroup (repeatable, up\n"
		"                       to %d; default: a memory limit of the guest's memory\n"
		"                       plus %d MiB)\n"
		"  --verbose            log more\n"
		"  --help\n",
		SERVE_MAX_LISTEN, JAILING_DEFAULT_BASE, JAILING_DEFAULT_PARENT, JAILING_MAX_CGROUPS,
		JAILING_OVERHEAD_MIB);
}

enum {
	O_LISTEN = 256,
	O_STATE_DIR,
	O_FLINT,
	O_MAX_VMS,
	O_MAX_MEM,
	O_MAX_QUEUE,
	O_FN_QUEUE,
	O_QUEUE_TIMEOUT,
	O_IDLE,
	O_MAX_BODY,
	O_MAX_BODIES,
	O_OUT_BUFFER,
	O_STDERR_KEEP,
	O_STDERR_TTL,
	O_REGISTER_TIMEOUT,
	O_PER_REQUEST,
	O_JAIL,
	O_UID_RANGE,
	O_GID,
	O_BASE,
	O_PARENT_CGROUP,
	O_CGROUP,
	O_VERBOSE,
	O_HELP,
};

static int number(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !isdigit((unsigned char)*s) || *end || v < min || v > max) {
		pr_err("flint serve: %s %s: expected a number from %" PRIu64 " to %" PRIu64, opt, s,
		       min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* A size: bytes, or with a K, M or G suffix (binary). */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int size_opt(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (parse_bytes(s, out) < 0 || *out < min || *out > max) {
		pr_err("flint serve: %s %s: expected a size from %" PRIu64 " to %" PRIu64
		       " bytes (or with a K, M or G suffix)",
		       opt, s, min, max);
		return -EINVAL;
	}
	return 0;
}

/* 0, 1 for --help, or -EINVAL (said). */
static int parse_opts(int argc, char **argv, struct serve_opts *o)
{
	static const struct option longs[] = {
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"state-dir", required_argument, NULL, O_STATE_DIR},
	    {"flint", required_argument, NULL, O_FLINT},
	    {"max-vms", required_argument, NULL, O_MAX_VMS},
	    {"max-mem", required_argument, NULL, O_MAX_MEM},
	    {"max-queue", required_argument, NULL, O_MAX_QUEUE},
	    {"fn-queue", required_argument, NULL, O_FN_QUEUE},
	    {"queue-timeout", required_argument, NULL, O_QUEUE_TIMEOUT},
	    {"idle", required_argument, NULL, O_IDLE},
	    {"max-body", required_argument, NULL, O_MAX_BODY},
	    {"max-bodies", required_argument, NULL, O_MAX_BODIES},
	    {"out-buffer", required_argument, NULL, O_OUT_BUFFER},
	    {"stderr-keep", required_argument, NULL, O_STDERR_KEEP},
	    {"stderr-ttl", required_argument, NULL, O_STDERR_TTL},
	    {"register-timeout", required_argument, NULL, O_REGISTER_TIMEOUT},
	    {"per-request", required_argument, NULL, O_PER_REQUEST},
	    {"jail", required_argument, NULL, O_JAIL},
	    {"uid-range", required_argument, NULL, O_UID_RANGE},
	    {"gid", required_argument, NULL, O_GID},
	    {"chroot-base-dir", required_argument, NULL, O_BASE},
	    {"parent-cgroup", required_argument, NULL, O_PARENT_CGROUP},
	    {"cgroup", required_argument, NULL, O_CGROUP},
	    {"verbose", no_argument, NULL, O_VERBOSE},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int c;

	*o = (struct serve_opts){
	    .max_vms = 64,
	    .max_mem_mib = 8192,
	    .max_queue = 1024,
	    .fn_queue = 64,
	    .queue_timeout_s = 30,
	    .idle_s = 60,
	    .max_body = 16 << 20,
	    .max_bodies = SIZE_MAX, /* the default, once --max-body is known */
	    .out_buffer = 1 << 20,
	    .stderr_keep_n = 1024,
	    .stderr_keep_s = 600,
	    .register_timeout_s = 300,
	    .reset = true,
	    .jail.gid = -1,
	};
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case O_LISTEN:
			if (o->nlisten == SERVE_MAX_LISTEN) {
				pr_err("flint serve: at most %d --listen", SERVE_MAX_LISTEN);
				return -EINVAL;
			}
			o->listen[o->nlisten++] = optarg;
			break;
		case O_STATE_DIR:
			if (snprintf(o->state_dir, sizeof(o->state_dir), "%s", optarg) >= 80) {
				pr_err("flint serve: --state-dir %s: at most 79 bytes (VM sockets "
				       "live there)",
				       optarg);
				return -EINVAL;
			}
			break;
		case O_FLINT:
			snprintf(o->flint, sizeof(o->flint), "%s", optarg);
			break;
		case O_MAX_VMS:
			r = number("--max-vms", optarg, 1, 100000, &v);
			o->max_vms = (uint32_t)v;
			break;
		case O_MAX_MEM:
			r = size_opt("--max-mem", optarg, 16 << 20, 1ULL << 50, &v);
			o->max_mem_mib = v >> 20;
			break;
		case O_MAX_QUEUE:
			r = number("--max-queue", optarg, 0, 1000000, &v);
			o->max_queue = (uint32_t)v;
			break;
		case O_FN_QUEUE:
			r = number("--fn-queue", optarg, 0, 1000000, &v);
			o->fn_queue = (uint32_t)v;
			break;
		case O_QUEUE_TIMEOUT:
			r = number("--queue-timeout", optarg, 1, 86400, &v);
			o->queue_timeout_s = (unsigned)v;
			break;
		case O_IDLE:
			r = number("--idle", optarg, 0, 86400 * 30, &v);
			o->idle_s = (unsigned)v;
			break;
		case O_MAX_BODY:
			r = size_opt("--max-body", optarg, 0, 1ULL << 32, &v);
			o->max_body = (size_t)v;
			break;
		case O_MAX_BODIES:
			r = size_opt("--max-bodies", optarg, 0, 1ULL << 40, &v);
			o->max_bodies = (size_t)v;
			break;
		case O_OUT_BUFFER:
			r = size_opt("--out-buffer", optarg, 4096, 1ULL << 30, &v);
			o->out_buffer = (size_t)v;
			break;
		case O_STDERR_KEEP:
			r = number("--stderr-keep", optarg, 0, 1000000, &v);
			o->stderr_keep_n = (unsigned)v;
			break;
		case O_STDERR_TTL:
			r = number("--stderr-ttl", optarg, 1, 86400 * 30, &v);
			o->stderr_keep_s = (unsigned)v;
			break;
		case O_REGISTER_TIMEOUT:
			r = number("--register-timeout", optarg, 1, 86400, &v);
			o->register_timeout_s = (unsigned)v;
			break;
		case O_PER_REQUEST:
			if (strcmp(optarg, "reset") && strcmp(optarg, "restore")) {
				pr_err("flint serve: --per-request %s: reset or restore", optarg);
				return -EINVAL;
			}
			o->reset = !strcmp(optarg, "reset");
			break;
		case O_JAIL:
			o->jail.jailer = optarg;
			break;
		case O_UID_RANGE:
			if (jailing_parse_range(optarg, &o->jail.uid_first, &o->jail.uid_last) <
			    0) {
				pr_err(
				    "flint serve: --uid-range %s: expected FIRST-LAST, 0 < FIRST "
				    "<= LAST",
				    optarg);
				return -EINVAL;
			}
			break;
		case O_GID:
			r = number("--gid", optarg, 1, UINT32_MAX - 1, &v);
			o->jail.gid = (int64_t)v;
			break;
		case O_BASE:
			o->jail.base = optarg;
			break;
		case O_PARENT_CGROUP:
			o->jail.parent = optarg;
			break;
		case O_CGROUP:
			if (o->jail.ncgroups == JAILING_MAX_CGROUPS) {
				pr_err("flint serve: at most %d --cgroup", JAILING_MAX_CGROUPS);
				return -EINVAL;
			}
			if (!strchr(optarg, '=')) {
				pr_err("flint serve: --cgroup %s: expected FILE=VALUE", optarg);
				return -EINVAL;
			}
			o->jail.cgroups[o->jail.ncgroups++] = optarg;
			break;
		case O_VERBOSE:
			log_verbose = 1;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		case ':':
			pr_err("flint serve: %s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			pr_err("flint serve: unknown option %s (see flint serve --help)",
			       argv[optind - 1]);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	if (optind < argc) {
		pr_err("flint serve: unexpected argument %s", argv[optind]);
		return -EINVAL;
	}
	if (!o->nlisten) {
		pr_err("flint serve: --listen ADDR:PORT or --listen unix:PATH is needed");
		return -EINVAL;
	}
	if (o->max_bodies == SIZE_MAX)
		o->max_bodies = o->max_body > SERVE_MAX_BODIES ? o->max_body : SERVE_MAX_BODIES;
	if (o->max_bodies < o->max_body) {
		pr_err("flint serve: --max-bodies %zu is below --max-body %zu: no body that large "
		       "would be taken",
		       o->max_bodies, o->max_body);
		return -EINVAL;
	}
	if (!o->jail.jailer && (o->jail.uid_first || o->jail.gid >= 0 || o->jail.base ||
				o->jail.parent || o->jail.ncgroups)) {
		pr_err("flint serve: --uid-range, --gid, --chroot-base-dir, --parent-cgroup and "
		       "--cgroup go with --jail");
		return -EINVAL;
	}
	if (o->jail.jailer && !o->jail.uid_first) {
		pr_err("flint serve: --jail needs --uid-range FIRST-LAST");
		return -EINVAL;
	}
	return 0;
}

/* A listening socket for spec: "unix:PATH" or "HOST:PORT" ("[V6]:PORT").
 * A Unix socket's file goes to *made (dev 0 for none), which alone is
 * removed at the end. */
static int listen_on(const char *spec, struct usock_made *made)
{
	int fd = -1, r;

	*made = (struct usock_made){0};
	if (!strncmp(spec, "unix:", 5)) {
		if ((fd = usock_listen(spec + 5, 0, 128, 0, made)) < 0)
			pr_err("flint serve: --listen %s: %s", spec, usock_why(fd));
		return fd;
	}

	char host[256];
	const char *colon = strrchr(spec, ':'), *h = spec;
	size_t hl;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;

	if (!colon || colon == spec || !colon[1]) {
		pr_err("flint serve: --listen %s: expected ADDR:PORT or unix:PATH", spec);
		return -EINVAL;
	}
	hl = (size_t)(colon - spec);
	if (*h == '[' && colon[-1] == ']')
		h++, hl -= 2;
	if (hl >= sizeof(host)) {
		pr_err("flint serve: --listen %s: address too long", spec);
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	/* A port by number, 0 to 65535 (getaddrinfo would take 99999 as
	 * 34463); 0: one the kernel picks, which "listening on" names. */
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port > 65535 || !isdigit((unsigned char)colon[1])) {
		pr_err("flint serve: --listen %s: the port is a number from 0 to 65535", spec);
		return -EINVAL;
	}
	hints.ai_flags |= AI_NUMERICSERV;
	if ((r = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		pr_err("flint serve: --listen %s: %s", spec, gai_strerror(r));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		pr_err("flint serve: --listen %s: %s", spec, strerror(errno));
		close_fd(&fd);
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	return fd;
}

/* What a --listen socket is bound to, for the log: ADDR:PORT as the kernel
 * has it (the port it picked for 0), else the spec as given. */
static void bound_name(int fd, const char *spec, char *out, size_t len)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	snprintf(out, len, "%s", spec);
	if (strncmp(spec, "unix:", 5) && getsockname(fd, (struct sockaddr *)&a, &al) == 0 &&
	    getnameinfo((struct sockaddr *)&a, al, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(out, len, a.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* A request's body as it comes; past the cap it is counted, not kept. */
struct body {
	char *buf;
	size_t len, total;
	bool over_bodies; /* past --max-bodies: dropped, answered 503 */
	void *after;	  /* serve_invoke's work for once the answer is sent */
};

bool serve_bodies_take(struct server *s, size_t n)
{
	size_t held = atomic_load(&s->bodies_held);

	do
		if (n > s->o.max_bodies - held)
			return false;
	while (!atomic_compare_exchange_weak(&s->bodies_held, &held, held + n));
	return true;
}

void serve_bodies_give(struct server *s, size_t n)
{
	atomic_fetch_sub(&s->bodies_held, n);
}

/* Drop what b holds (its bytes no longer counted). */
static void body_drop(struct server *s, struct body *b)
{
	if (b->buf)
		serve_bodies_give(s, b->len);
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *body,
				 const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body && status != 204)
		body = serve_fault("out of memory"), status = 500;
	r = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
		 : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	/* A registration with no room for its VM, or a server stopping: as an
	 * invocation refused, worth a try again (on another host). */
	if (status == 503)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *body, size_t len,
				 const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (status != 200)
		return send_json(c, status, body, NULL);
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

struct pool_cfg serve_pool_cfg(const struct serve_opts *o)
{
	return (struct pool_cfg){
	    .max_vms = o->max_vms,
	    .max_mem_mib = o->max_mem_mib,
	    .max_queued = o->max_queue,
	    .idle_ns = (uint64_t)o->idle_s * 1000000000ULL,
	    .warm_retry_ns = 500000000ULL,
	    .warm_retry_max_ns = 30000000000ULL,
	    /* A registration waits as its function's one request would. */
	    .reg_timeout_ns = o->fn_queue ? (uint64_t)o->queue_timeout_s * 1000000000ULL : 0,
	};
}

/* Once the body is in: the endpoint's answer. */
static enum MHD_Result dispatch(struct server *s, struct MHD_Connection *c, const char *method,
				const char *url, struct body *b)
{
	struct serve_route rt;
	char *out = NULL;
	size_t len = 0;
	unsigned st;

	if (serve_route(method, url, &rt) == SERVE_EP_NONE)
		return send_json(c, rt.status, serve_fault("%s", rt.err), rt.allow);
	if (b->total > s->o.max_body)
		return send_json(
		    c, 413,
		    serve_fault("the request body is over --max-body (%zu bytes)", s->o.max_body),
		    NULL);
	if (b->over_bodies)
		return send_json(c, 503,
				 serve_fault("the request bodies the server holds are at "
					     "--max-bodies (%zu bytes); try again",
					     s->o.max_bodies),
				 NULL);
	if (rt.ep != SERVE_EP_INVOKE && rt.ep != SERVE_EP_FN_PUT && b->total)
		return send_json(c, 400, serve_fault("%s %s takes no body", method, url), NULL);
	switch (rt.ep) {
	case SERVE_EP_INVOKE: {
		const char *e = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stderr");
		char *body = b->buf;
		if (e && strcmp(e, "inline") != 0)
			return send_json(c, 400, serve_fault("stderr=%s: only stderr=inline", e),
					 NULL);
		b->buf = NULL; /* its bytes stay counted until the call frees it */
		return serve_invoke(s, c, rt.name, body, b->len, e != NULL, &b->after);
	}
	case SERVE_EP_FN_PUT:
		st = serve_fn_register(s, rt.name, b->buf ? b->buf : "", b->len, &out);
		return send_json(c, st, out, NULL);
	case SERVE_EP_FN_DELETE:
		st = serve_fn_delete(s, rt.name, &out);
		return send_json(c, st, out, NULL);
	case SERVE_EP_FN_GET:
		st = serve_fn_show(s, rt.name, &out);
		return send_json(c, st, out, NULL);
	case SERVE_EP_FN_LIST:
		st = serve_fn_list(s, &out);
		return send_json(c, st, out, NULL);
	case SERVE_EP_INFO:
		st = serve_info(s, &out);
		return send_json(c, st, out, NULL);
	case SERVE_EP_STDERR:
		st = serve_err_get(s, rt.name, rt.id, &out, &len);
		return send_text(c, st, out, len, "text/plain; charset=utf-8");
	case SERVE_EP_METRICS:
		st = serve_metrics_render(s, &out, &len);
		return send_text(c, st, out, len, PROM_CONTENT_TYPE);
	case SERVE_EP_NONE:
		break;
	}
	return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct server *s = cls;
	struct body *b = *con_cls;

	(void)version;
	if (!b) {
		if (!(b = calloc(1, sizeof(*b))))
			return MHD_NO;
		*con_cls = b;
		/* A body announced beyond the cap is refused unread. */
		const char *cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		char *end;
		unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
		if (cl && *cl >= '0' && *cl <= '9' && !*end && n > s->o.max_body) {
			b->total = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
			return dispatch(s, c, method, url, b);
		}
		return MHD_YES;
	}
	if (*size) {
		size_t n = *size;
		b->total = b->total > SIZE_MAX - n ? SIZE_MAX : b->total + n;
		if (b->total <= s->o.max_body && !b->over_bodies && !serve_bodies_take(s, n)) {
			b->over_bodies = true;
			body_drop(s, b);
		}
		if (b->total <= s->o.max_body && !b->over_bodies) {
			char *nb = realloc(b->buf, b->len + n + 1);
			if (!nb) {
				serve_bodies_give(s, n);
				return MHD_NO;
			}
			b->buf = nb;
			memcpy(b->buf + b->len, data, n);
			b->len += n;
			b->buf[b->len] = '\0';
		}
		*size = 0;
		return MHD_YES;
	}
	return dispatch(s, c, method, url, b);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct body *b = *con_cls;

	(void)toe;
	/* A streamed invocation may have raised it (serve_invoke). */
	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, SERVE_IDLE_TIMEOUT_S);
	if (b) {
		if (b->after)
			serve_invoke_after(b->after);
		body_drop(s, b);
		free(b);
		*con_cls = NULL;
	}
}

/* The flint binary the VMs run: --flint, or this process's own. */
static int find_flint(struct serve_opts *o)
{
	ssize_t n;

	if (!o->flint[0]) {
		n = readlink("/proc/self/exe", o->flint, sizeof(o->flint) - 1);
		if (n < 0) {
			pr_err("flint serve: cannot find flint's own binary: %s", strerror(errno));
			return -errno;
		}
		o->flint[n] = '\0';
	}
	if (access(o->flint, X_OK) < 0) {
		pr_err("flint serve: --flint %s: %s", o->flint, strerror(errno));
		return -errno;
	}
	return 0;
}

/* The state directory: the jails' uids open the snapshots in it (as
 * flint-jail stages them), so with --jail others may search it. */
static int make_state_dir(struct serve_opts *o)
{
	mode_t mode = o->jail.jailer ? 0711 : 0700;

	if (o->state_dir[0]) {
		struct stat st;

		if (mkdir(o->state_dir, mode) == 0)
			o->state_dir_made = true;
		else if (errno != EEXIST) {
			pr_err("flint serve: --state-dir %s: %s", o->state_dir, strerror(errno));
			return -errno;
		} else if (stat(o->state_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			pr_err("flint serve: --state-dir %s: not a directory", o->state_dir);
			return -ENOTDIR;
		}
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(o->state_dir, sizeof(o->state_dir), "%s/flint-serve.XXXXXX",
		 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(o->state_dir) || chmod(o->state_dir, mode) < 0) {
		pr_err("flint serve: cannot make %s: %s", o->state_dir, strerror(errno));
		return -errno;
	}
	o->state_dir_made = true;
	return 0;
}

int serve_main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	struct MHD_Daemon *d[SERVE_MAX_LISTEN] = {NULL};
	struct usock_made made[SERVE_MAX_LISTEN] = {{0}};
	int fds[SERVE_MAX_LISTEN], status = SERVE_EXIT_ERROR, sig = 0;
	sigset_t set;
	unsigned i;
	int r;

	for (i = 0; i < SERVE_MAX_LISTEN; i++)
		fds[i] = -1;
	if ((r = parse_opts(argc, argv, &s->o)) != 0)
		return r > 0 ? 0 : SERVE_EXIT_ERROR;
	if (find_flint(&s->o) < 0)
		return SERVE_EXIT_ERROR;
	/* Signals: SIGINT and SIGTERM are taken by sigwait below, so every
	 * thread blocks them; a client gone mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	pthread_mutex_init(&s->lock, NULL);
	cond_init_monotonic(&s->manager_cv);
	struct pool_cfg pc = serve_pool_cfg(&s->o);
	if ((r = pool_create(&pc, now_ns(), &s->pool)) < 0) {
		pr_err("flint serve: cannot make the pool: %s", strerror(-r));
		goto out;
	}
	if ((r = serve_metrics_init(&s->m)) < 0) {
		pr_err("flint serve: cannot make the metrics: %s", strerror(-r));
		goto out;
	}
	if (make_state_dir(&s->o) < 0)
		goto out;
	if (s->o.jail.jailer) {
		char err[300];
		if (access(s->o.jail.jailer, X_OK) < 0) {
			pr_err("flint serve: --jail %s: %s", s->o.jail.jailer, strerror(errno));
			goto out;
		}
		if (jailing_new(&s->jail, &s->o.jail, s->o.flint, s->o.max_vms, err, sizeof(err)) <
		    0) {
			pr_err("flint serve: %s", err);
			goto out;
		}
	}
	for (i = 0; i < s->o.nlisten; i++)
		if ((fds[i] = listen_on(s->o.listen[i], &made[i])) < 0)
			goto out;
	if ((r = serve_manager_start(s)) < 0) {
		pr_err("flint serve: cannot start a thread: %s", strerror(-r));
		goto out;
	}
	for (i = 0; i < s->o.nlisten; i++) {
		d[i] = MHD_start_daemon(
		    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL,
		    0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, fds[i],
		    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
		    SERVE_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, SERVE_IDLE_TIMEOUT_S,
		    MHD_OPTION_END);
		if (!d[i]) {
			pr_err("flint serve: cannot serve HTTP on %s", s->o.listen[i]);
			goto out;
		}
		char where[NI_MAXHOST + NI_MAXSERV + 8];
		bound_name(fds[i], s->o.listen[i], where, sizeof(where));
		fds[i] = -1; /* the daemon's now */
		pr_info("flint serve: listening on %s", where);
	}
	fprintf(stderr, "flint serve: ready (state in %s)\n", s->o.state_dir);
	if (sigwait(&set, &sig) == 0)
		pr_info("flint serve: %s: stopping", strsignal(sig));
	status = 0;
out:
	/* Kill every VM first: a connection's thread waiting on its worker
	 * then sees it end and answers, so the daemons' stop can join it. */
	serve_manager_stop(s);
	for (i = 0; i < SERVE_MAX_LISTEN; i++) {
		if (d[i])
			MHD_stop_daemon(d[i]);
		close_fd(&fds[i]);
	}
	serve_registry_free(s);
	/* Only the sockets made here: not a file --listen named that was
	 * refused, nor another server's socket. */
	for (i = 0; i < s->o.nlisten; i++)
		if (made[i].dev || made[i].ino)
			usock_remove(s->o.listen[i] + 5, &made[i]);
	if (s->o.state_dir_made && rmdir(s->o.state_dir) < 0)
		pr_err("flint serve: cannot remove %s: %s", s->o.state_dir, strerror(errno));
	jailing_free(s->jail);
	pool_destroy(s->pool);
	prom_registry_destroy(s->m.reg);
	return status;
}
