#include "plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* flint's options (runner/config/cli.c) and what their values are to the
 * jail. An option added to flint without an entry here passes through
 * unchanged. */
enum kind { K_FLAG, K_VALUE, K_PATH, K_DRIVE, K_VSOCK, K_MEM, K_SOCKET };

static const struct {
	const char *name;
	enum kind kind;
} flint_opts[] = {
    {"kernel", K_PATH},	 {"initrd", K_PATH},   {"rootfs", K_PATH},     {"drive", K_DRIVE},
    {"vsock", K_VSOCK},	 {"mem", K_MEM},       {"vcpus", K_VALUE},     {"cmdline", K_VALUE},
    {"append", K_VALUE}, {"console", K_VALUE}, {"net", K_VALUE},       {"timeout", K_VALUE},
    {"timings", K_FLAG}, {"stats", K_FLAG},    {"verbose", K_FLAG},    {"check-kvm", K_FLAG},
    {"help", K_FLAG},	 {"version", K_FLAG},  {"api-sock", K_SOCKET}, {"no-api", K_FLAG},
};

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) PRINTF(4, 5);
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

/* getopt_long's matching: the exact name, else a unique prefix. */
static int lookup(const char *name, size_t len)
{
	int found = -1;

	for (size_t i = 0; i < ARRAY_SIZE(flint_opts); i++) {
		if (strncmp(flint_opts[i].name, name, len) != 0)
			continue;
		if (flint_opts[i].name[len] == '\0')
			return i;
		found = found == -1 ? (int)i : -2;
	}
	return found;
}

static bool name_taken(const struct plan *p, const char *name)
{
	for (unsigned i = 0; i < p->nfiles; i++)
		if (!strcmp(p->files[i].name, name))
			return true;
	return false;
}

/* Stage src under its own name at the jail's top level; returns the file's
 * index. The same path named twice is staged once, with the wider access. */
static int add_file(struct plan *p, const char *src, enum plan_access access, char *err,
		    size_t errlen)
{
	const char *slash = strrchr(src, '/'), *base = slash ? slash + 1 : src;

	for (unsigned i = 0; i < p->nfiles; i++) {
		if (strcmp(p->files[i].src, src) != 0)
			continue;
		if (access == PLAN_READ_WRITE)
			p->files[i].access = access;
		return i;
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return fail(err, errlen, -EINVAL, "%s does not name a file", src);
	if (p->nfiles == PLAN_MAX_FILES)
		return fail(err, errlen, -EINVAL, "more than %d files to stage", PLAN_MAX_FILES);
	struct plan_file *f = &p->files[p->nfiles];
	if (snprintf(f->name, sizeof(f->name), "%s", base) >= (int)sizeof(f->name))
		return fail(err, errlen, -EINVAL, "%s: name too long", src);
	for (unsigned n = 2; name_taken(p, f->name); n++)
		if (snprintf(f->name, sizeof(f->name), "%u-%s", n, base) >= (int)sizeof(f->name))
			return fail(err, errlen, -EINVAL, "%s: name too long", src);
	if (!(f->src = strdup(src)))
		return fail(err, errlen, -ENOMEM, "out of memory");
	f->access = access;
	return p->nfiles++;
}

static int push(char **out, int *n, char *s)
{
	if (!s)
		return -ENOMEM;
	out[(*n)++] = s;
	return 0;
}

/* In-jail path of a socket (--vsock uds=, --api-sock): absolute (flint's
 * working directory in the jail is its root), with no way up, naming a
 * file (not "", ".", or a path ending in '/'). */
static int jail_socket_path(const char *uds, char *out, size_t len)
{
	const char *base;

	if ((size_t)snprintf(out, len, "%s%s", *uds == '/' ? "" : "/", uds) >= len)
		return -ENAMETOOLONG;
	for (const char *part = out + 1; part;) {
		const char *slash = strchr(part, '/');
		size_t n = slash ? (size_t)(slash - part) : strlen(part);
		if (n == 2 && !memcmp(part, "..", 2))
			return -EINVAL;
		part = slash ? slash + 1 : NULL;
	}
	base = strrchr(out, '/') + 1;
	return !*base || !strcmp(base, ".") ? -EINVAL : 0;
}

/* A --drive or --vsock value with its path= or uds= rewritten. */
static char *rewrite_spec(struct plan *p, enum kind kind, const char *spec, char *err,
			  size_t errlen)
{
	const char *key = kind == K_DRIVE ? "path=" : "uds=";
	size_t klen = strlen(key), cap = strlen(spec) + PATH_MAX + 2, len = 0;
	char *copy = strdup(spec), *parts = strdup(spec), *out = malloc(cap), *save = NULL;
	char *path = NULL, jailed[PATH_MAX];
	bool ro = false;

	if (!copy || !parts || !out)
		goto nomem;
	for (char *kv = strtok_r(parts, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (!strncmp(kv, key, klen) && !path)
			path = kv + klen;
		else if (!strcmp(kv, "ro"))
			ro = true;
	}
	if (path && kind == K_DRIVE) {
		int i = add_file(p, path, ro ? PLAN_READ : PLAN_READ_WRITE, err, errlen);
		if (i < 0)
			goto bad;
		snprintf(jailed, sizeof(jailed), "/%s", p->files[i].name);
	} else if (path) {
		if (jail_socket_path(path, jailed, sizeof(jailed)) < 0) {
			fail(err, errlen, -EINVAL,
			     "--vsock uds=%s: expected a socket path without '..'", path);
			goto bad;
		}
		snprintf(p->vsock_path, sizeof(p->vsock_path), "%s", jailed);
	}
	save = NULL;
	bool done = false;
	out[0] = '\0';
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (path && !done && !strncmp(kv, key, klen)) {
			done = true;
			len +=
			    snprintf(out + len, cap - len, "%s%s%s", len ? "," : "", key, jailed);
			continue;
		}
		len += snprintf(out + len, cap - len, "%s%s", len ? "," : "", kv);
	}
	free(copy);
	free(parts);
	return out;
nomem:
	fail(err, errlen, -ENOMEM, "out of memory");
bad:
	free(copy);
	free(parts);
	free(out);
	return NULL;
}

/* --mem as flint reads it (cli_parse_size: MiB by default, K, M or G
 * suffixes), only to check it against the cgroup's memory limit; a value
 * flint will refuse counts as flint's default. The jail does not link
 * flint's command line, which pulls in the rest of flint. */
static uint64_t guest_mem(const char *s)
{
	char *end;
	unsigned shift;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-' || *s == '+')
		return DEFAULT_MEM;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		shift = 20;
		break;
	}
	return v > (1ULL << 40) >> shift ? DEFAULT_MEM : v << shift;
}

/* One option with its value: the value as flint will see it in the jail. */
static char *rewrite_value(struct plan *p, enum kind kind, const char *name, const char *val,
			   char *err, size_t errlen)
{
	switch (kind) {
	case K_PATH: {
		int i = add_file(p, val, PLAN_READ, err, errlen);
		char *s = NULL;
		if (i < 0)
			return NULL;
		if (asprintf(&s, "/%s", p->files[i].name) < 0)
			fail(err, errlen, -ENOMEM, "out of memory");
		return s;
	}
	case K_DRIVE:
	case K_VSOCK:
		return rewrite_spec(p, kind, val, err, errlen);
	case K_SOCKET: {
		char *s;
		if (jail_socket_path(val, p->api_sock_path, sizeof(p->api_sock_path)) < 0) {
			fail(err, errlen, -EINVAL, "--%s %s: expected a socket path without '..'",
			     name, val);
			return NULL;
		}
		if (!(s = strdup(p->api_sock_path)))
			fail(err, errlen, -ENOMEM, "out of memory");
		return s;
	}
	case K_MEM:
		p->mem = guest_mem(val);
		break;
	default:
		break;
	}
	(void)name;
	char *s = strdup(val);
	if (!s)
		fail(err, errlen, -ENOMEM, "out of memory");
	return s;
}

/* flint run's default kernel or root image: the first of h's places that
 * has it (as flint itself looks, runner/config/home.h), else beside the exec
 * file when no places are given. */
static int add_default(struct plan *p, const struct home *h, const char *exec_file,
		       const char *file, const char *opt, char **extra, int *nextra, char *err,
		       size_t errlen)
{
	const char *slash = strrchr(exec_file, '/');
	char path[PATH_MAX], where[3 * PATH_MAX];

	if (h) {
		int r = home_find(h, file, path, sizeof(path));
		if (r == -ENOENT) {
			home_describe(h, where, sizeof(where));
			return fail(err, errlen, r,
				    "flint run: no %s in %s; set FLINT_HOME to the directory "
				    "holding it, or give %s FILE",
				    file, where, opt);
		}
		if (r < 0)
			return fail(err, errlen, r, "flint run: %s: path too long", file);
	} else if (slash) {
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - exec_file), exec_file, file);
	} else {
		snprintf(path, sizeof(path), "%s", file);
	}
	int i = add_file(p, path, PLAN_READ, err, errlen);
	if (i < 0)
		return i;
	char *s = NULL;
	if (push(extra, nextra, strdup(opt)) < 0 || asprintf(&s, "/%s", p->files[i].name) < 0 ||
	    push(extra, nextra, s) < 0)
		return fail(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

int plan_build(struct plan *p, const char *exec_file, const struct home *h, int argc,
	       char *const *argv, char *err, size_t errlen)
{
	bool run = argc > 0 && !strcmp(argv[0], "run"), kernel = false, rootfs = false,
	     vsock = false, api_sock = false, no_api = false;
	char *extra[4];
	int nextra = 0, i = run ? 1 : 0, r;

	*p = (struct plan){.mem = DEFAULT_MEM};
	/* exec name, "run", flint run's two defaults, the arguments, NULL */
	p->argv = calloc(argc + 6, sizeof(char *));
	if (!p->argv)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if ((r = add_file(p, exec_file, PLAN_EXEC, err, errlen)) < 0)
		return r;
	if (asprintf(&p->argv[p->argc], "/%s", p->files[0].name) < 0)
		return fail(err, errlen, -ENOMEM, "out of memory");
	p->argc++;
	if (run && push(p->argv, &p->argc, strdup("run")) < 0)
		return fail(err, errlen, -ENOMEM, "out of memory");
	int insert_at = p->argc;
	for (; i < argc; i++) {
		const char *a = argv[i];
		/* After "--": words for the guest. */
		if (!strcmp(a, "--"))
			break;
		/* flint takes no word before "--" but an option's value: this is
		 * the value of an option the table does not know. */
		if (strncmp(a, "--", 2) != 0) {
			if (push(p->argv, &p->argc, strdup(a)) < 0)
				return fail(err, errlen, -ENOMEM, "out of memory");
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		int k = lookup(a + 2, nlen);
		enum kind kind = k >= 0 ? flint_opts[k].kind : K_FLAG;
		no_api |= k >= 0 && !strcmp(flint_opts[k].name, "no-api");
		if (kind == K_FLAG || (!eq && i + 1 == argc)) {
			if (push(p->argv, &p->argc, strdup(a)) < 0)
				return fail(err, errlen, -ENOMEM, "out of memory");
			continue;
		}
		const char *name = flint_opts[k].name, *val = eq ? eq + 1 : argv[++i];
		kernel |= !strcmp(name, "kernel");
		rootfs |= !strcmp(name, "rootfs");
		vsock |= kind == K_VSOCK;
		api_sock |= kind == K_SOCKET;
		char *nv = rewrite_value(p, kind, name, val, err, errlen), *s = NULL;
		if (!nv)
			return -EINVAL;
		if (eq) {
			r = asprintf(&s, "%.*s=%s", (int)(eq - a), a, nv);
			free(nv);
			if (r < 0 || push(p->argv, &p->argc, s) < 0)
				return fail(err, errlen, -ENOMEM, "out of memory");
		} else if (push(p->argv, &p->argc, strdup(a)) < 0 ||
			   push(p->argv, &p->argc, nv) < 0) {
			return fail(err, errlen, -ENOMEM, "out of memory");
		}
	}
	for (; i < argc; i++)
		if (push(p->argv, &p->argc, strdup(argv[i])) < 0)
			return fail(err, errlen, -ENOMEM, "out of memory");
	if ((run && !kernel &&
	     (r = add_default(p, h, exec_file, "vmlinux", "--kernel", extra, &nextra, err, errlen)) <
		 0) ||
	    (run && !rootfs &&
	     (r = add_default(p, h, exec_file, "rootfs.ext4", "--rootfs", extra, &nextra, err,
			      errlen)) < 0)) {
		while (nextra > 0)
			free(extra[--nextra]);
		return r;
	}
	/* The defaults go right after "run", before any "--". */
	memmove(&p->argv[insert_at + nextra], &p->argv[insert_at],
		(p->argc - insert_at) * sizeof(char *));
	memcpy(&p->argv[insert_at], extra, nextra * sizeof(char *));
	p->argc += nextra;
	p->argv[p->argc] = NULL;
	p->run_tmp = run && !vsock;
	/* flint serves the API (runner/cmd/instance.c) unless it runs a
	 * command, boots a --kernel without --api-sock, or has --no-api; on
	 * its default socket without --api-sock, whose directory is then made
	 * as --api-sock's would be. */
	if (run || no_api || (kernel && !api_sock))
		p->api_sock_path[0] = '\0';
	else if (!api_sock)
		snprintf(p->api_sock_path, sizeof(p->api_sock_path), "%s", PLAN_DEFAULT_API_SOCK);
	if (p->api_sock_path[0] && !strcmp(p->api_sock_path, p->vsock_path))
		return fail(err, errlen, -EINVAL, "the API socket and the vsock socket are both %s",
			    p->vsock_path);
	return 0;
}

void plan_free(struct plan *p)
{
	if (p->argv)
		for (int i = 0; i < p->argc; i++)
			free(p->argv[i]);
	free(p->argv);
	for (unsigned i = 0; i < p->nfiles; i++)
		free(p->files[i].src);
	*p = (struct plan){0};
}
