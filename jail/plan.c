#include "plan.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "config/vm_config.h"
#include "config/vm_config_cli.h"
#include "snapshot/snapfile.h"

/* The values of flint's arguments the plan rewrites, as struct config holds
 * them (field_value). */
enum field {
	F_KERNEL,
	F_INITRD,
	F_ROOTFS,
	F_CONFIG,
	F_API_SOCK,
	F_LOG,
	F_METRICS,
	F_VSOCK,
	F_RESTORE,
	F_MEM_FILE,
	F_MEM_DIFF,
	F_WORKSET,
	F_RECORD_WORKSET,
	F_VSOCK_OVERRIDE,
	F_SAVE_SNAPSHOT,
	F_SAVE_MEM,
	F_IMAGE,
	F_SCRATCH,
	F_METADATA,
	F_DRIVE0, /* F_DRIVE0 + k: the k-th --drive's path */
	/* F_OVERRIDE0 + k: the PATH of the k-th --drive-override ID=PATH */
	F_OVERRIDE0 = F_DRIVE0 + MAX_DRIVES,
	F_COUNT = F_OVERRIDE0 + MAX_DRIVES,
	/* F_NET0 + k: ",fd=N" after the k-th --net (no path: verify checks
	 * the descriptors apart). */
	F_NET0 = F_COUNT,
	F_EDITS = F_NET0 + MAX_NETS,
};

/* One value rewritten: element i of the arguments keeps its first off
 * bytes and ends in val; flint then reads `jailed` for field f. i -1: the
 * option is inserted (flint run's defaults). */
struct edit {
	enum field f;
	int i;
	size_t off;
	char *val;    /* malloc'd */
	char *jailed; /* malloc'd */
};

/* flint's arguments as cli_parse sees them ("flint" first), and the edits
 * to make to them. */
struct rewrite {
	char **av; /* malloc'd copies */
	int n;
	int end; /* the first guest word: nothing from here on is flint's */
	struct edit edits[F_EDITS];
	unsigned nedits;
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

static int nomem(char *err, size_t errlen)
{
	return fail(err, errlen, -ENOMEM, "out of memory");
}

static const char *field_value(const struct config *c, enum field f)
{
	switch (f) {
	case F_KERNEL:
		return c->kernel;
	case F_INITRD:
		return c->initrd;
	case F_ROOTFS:
		return c->rootfs;
	case F_CONFIG:
		return c->config_file;
	case F_METADATA:
		return c->metadata;
	case F_API_SOCK:
		return c->api_sock;
	case F_LOG:
		return c->log_path;
	case F_METRICS:
		return c->metrics_path;
	case F_VSOCK:
		return c->vsock.enabled ? c->vsock.uds : NULL;
	case F_RESTORE:
		return c->restore;
	case F_MEM_FILE:
		return c->mem_file;
	case F_MEM_DIFF:
		return c->mem_diff;
	case F_WORKSET:
		return c->workset;
	case F_RECORD_WORKSET:
		return c->record_workset;
	case F_VSOCK_OVERRIDE:
		return c->vsock_override;
	case F_SAVE_SNAPSHOT:
		return c->save_snapshot;
	case F_SAVE_MEM:
		return c->save_mem;
	case F_IMAGE:
		return c->image;
	case F_SCRATCH:
		return c->scratch_file;
	default:
		break;
	}
	if (f >= F_OVERRIDE0)
		/* ID=PATH, '=' checked by cli_parse. */
		return (unsigned)(f - F_OVERRIDE0) < c->n_drive_override
			   ? strchr(c->drive_override[f - F_OVERRIDE0], '=') + 1
			   : NULL;
	return (unsigned)(f - F_DRIVE0) < c->ndrives ? c->drives[f - F_DRIVE0].path : NULL;
}

/* Whether name is taken at the jail's top level: by a staged file, or by
 * a directory the jailer makes there for flint (a file called "dev" or
 * "proc" is staged as "2-dev", "2-proc"). */
static bool name_taken(const struct plan *p, const char *name)
{
	if (!strcmp(name, "dev") || !strcmp(name, "proc") || !strcmp(name, p->scratch_name))
		return true;
	for (unsigned i = 0; i < p->nfiles; i++)
		if (!strcmp(p->files[i].name, name))
			return true;
	return false;
}

/* Stage src under its own name at the jail's top level; returns the file's
 * index. The same path named twice is staged once, with the wider access;
 * the config file's rewritten copy (copy) is never merged with a file
 * staged from the same path: a drive that names the config file gets the
 * file, not the copy. */
static int add_file(struct plan *p, const char *src, enum plan_access access, bool copy, char *err,
		    size_t errlen)
{
	const char *slash = strrchr(src, '/'), *base = slash ? slash + 1 : src;

	for (unsigned i = 0; i < p->nfiles && !copy; i++) {
		if (strcmp(p->files[i].src, src) != 0 || p->files[i].copy || p->files[i].image)
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
		return nomem(err, errlen);
	f->access = access;
	f->copy = copy;
	return p->nfiles++;
}

/* add_file, and the staged file's path in the jail in jailed. */
static int stage(struct plan *p, const char *src, enum plan_access access, char *jailed, char *err,
		 size_t errlen)
{
	int i = add_file(p, src, access, false, err, errlen);

	if (i < 0)
		return i;
	snprintf(jailed, PATH_MAX, "/%s", p->files[i].name);
	return 0;
}

/* flint run's --image or --rootfs, staged read-only, a file of its own
 * (never merged: a directory or tar archive there is replaced by the ext4
 * image the jailer builds, plan_built). */
static int stage_image(struct plan *p, const char *src, bool rootfs, char *jailed, char *err,
		       size_t errlen)
{
	int i = add_file(p, src, PLAN_READ, true, err, errlen);

	if (i < 0)
		return i;
	p->files[i].copy = false;
	p->files[i].image = true;
	p->files[i].rootfs = rootfs;
	snprintf(jailed, PATH_MAX, "/%s", p->files[i].name);
	return 0;
}

/* In-jail path of a socket or an output (--vsock uds=, --api-sock,
 * --log-path): absolute (flint's working directory in the jail is its
 * root), with no way up, naming a file (not "", ".", or a path ending in
 * '/'). Written in one way only ("//" and "." parts dropped), so that paths
 * naming the same file compare equal (check_distinct). */
static int jail_path(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t n = 0;

	if (!*base || !strcmp(base, "."))
		return -EINVAL;
	for (const char *part = path; *part;) {
		size_t k = strcspn(part, "/");
		if (k == 2 && !memcmp(part, "..", 2))
			return -EINVAL;
		if (k && !(k == 1 && *part == '.')) {
			if (n + 1 + k >= len)
				return -ENAMETOOLONG;
			out[n++] = '/';
			memcpy(out + n, part, k);
			n += k;
		}
		part += k + (part[k] == '/');
	}
	out[n] = '\0';
	return 0;
}

static int socket_path(const char *opt, const char *path, char *out, char *err, size_t errlen)
{
	if (jail_path(path, out, PATH_MAX) < 0)
		return fail(err, errlen, -EINVAL, "%s%s: expected a socket path without '..'", opt,
			    path);
	return 0;
}

/* A file flint writes (opt names it in messages), its in-jail path in
 * jailed. The same path twice is one output. */
static int add_output(struct plan *p, const char *opt, const char *what, const char *path,
		      bool make, char *jailed, char *err, size_t errlen)
{
	if (jail_path(path, jailed, PATH_MAX) < 0)
		return fail(err, errlen, -EINVAL,
			    "%s%s: expected a path inside the jail without '..', naming a file",
			    opt, path);
	for (unsigned i = 0; i < p->noutputs; i++)
		if (!strcmp(p->outputs[i].path, jailed)) {
			p->outputs[i].make |= make;
			return 0;
		}
	if (p->noutputs == PLAN_MAX_OUTPUTS)
		return fail(err, errlen, -EINVAL, "more than %d output files", PLAN_MAX_OUTPUTS);
	struct plan_output *o = &p->outputs[p->noutputs++];
	memcpy(o->path, jailed, strlen(jailed) + 1);
	o->what = what;
	o->make = make;
	return 0;
}

static int add_edit(struct rewrite *w, enum field f, int i, size_t off, char *val,
		    const char *jailed, char *err, size_t errlen)
{
	struct edit *e = &w->edits[w->nedits];
	char *j = strdup(jailed);

	if (!val || !j) {
		free(val);
		free(j);
		return nomem(err, errlen);
	}
	*e = (struct edit){.f = f, .i = i, .off = off, .val = val, .jailed = j};
	w->nedits++;
	return 0;
}

static const struct edit *find_edit(const struct rewrite *w, enum field f)
{
	for (unsigned k = 0; k < w->nedits; k++)
		if (w->edits[k].f == f)
			return &w->edits[k];
	return NULL;
}

/* Rewrite field f, whose value cli_parse left pointing into the arguments
 * (kernel, initrd, rootfs, sockets, outputs, config file): the element
 * holding it, found by address, keeps what precedes the value ("--kernel="
 * or nothing) and gets jailed. */
static int edit_in_place(struct rewrite *w, enum field f, const char *value, const char *jailed,
			 char *err, size_t errlen)
{
	uintptr_t a = (uintptr_t)value;

	for (int i = 1; i < w->end; i++) {
		uintptr_t b = (uintptr_t)w->av[i];
		if (a >= b && a <= b + strlen(w->av[i]))
			return add_edit(w, f, i, a - b, strdup(jailed), jailed, err, errlen);
	}
	return fail(err, errlen, -EINVAL, "%s: not found in flint's arguments", value);
}

/* elem with the value of its first `key`= item set to val: elem is an option
 * value (path=A,ro) or an option with its value (--drive=path=A,ro).
 * NULL when it has no such item, or (*oom set) out of memory. */
static char *with_item(const char *elem, const char *key, const char *val, bool *oom)
{
	const char *v = elem, *eq = strchr(elem, '=');
	size_t klen = strlen(key);
	char *s;

	if (!strncmp(elem, "--", 2) && eq)
		v = eq + 1;
	for (const char *item = v; item;) {
		const char *comma = strchr(item, ',');
		if (!strncmp(item, key, klen) && item[klen] == '=') {
			int pre = item + klen + 1 - elem;
			if (asprintf(&s, "%.*s%s%s", pre, elem, val, comma ? comma : "") < 0) {
				*oom = true;
				return NULL;
			}
			return s;
		}
		item = comma ? comma + 1 : NULL;
	}
	return NULL;
}

/* Rewrite field f, a --drive path or the --vsock uds, which cli_parse
 * copies, so its element cannot be found by address: the element whose
 * `key` item, set to a marker, makes flint's parser read the marker for f
 * is the one, and its item becomes jailed. Words flint reads as anything
 * else (an --append value holding "path=") are left alone. */
static int edit_by_probe(struct rewrite *w, enum field f, const char *key, const char *jailed,
			 char *err, size_t errlen)
{
	static const char marker[] = "/flint-jail-probe";
	bool oom = false;

	for (int i = 1; i < w->end; i++) {
		bool taken = false;
		for (unsigned k = 0; k < w->nedits; k++)
			taken |= w->edits[k].i == i;
		char *s = taken ? NULL : with_item(w->av[i], key, marker, &oom), *saved = w->av[i];
		if (!s) {
			if (oom)
				return nomem(err, errlen);
			continue;
		}
		struct config t;
		char why[64];
		w->av[i] = s;
		enum cli_result r = cli_parse(w->n, w->av, &t, why, sizeof(why));
		const char *got = r == CLI_RUN ? field_value(&t, f) : NULL;
		bool hit = got && !strcmp(got, marker);
		cli_config_free(&t);
		w->av[i] = saved;
		free(s);
		if (hit)
			return add_edit(w, f, i, 0, with_item(saved, key, jailed, &oom), jailed,
					err, errlen);
	}
	return fail(err, errlen, -EINVAL, "%s: not found in flint's arguments",
		    f == F_VSOCK ? "--vsock" : "--drive");
}

/* flint run --scratch SIZE: the jailer makes the disk in the jail as
 * scratch.ext4 (numbered when taken), and the option's value becomes its
 * in-jail path: the element (or the part after "--opt=") that, set to a
 * marker path, makes flint's parser read the marker as the scratch file. */
static int plan_scratch(struct plan *p, struct rewrite *w, uint64_t size, char *err, size_t errlen)
{
	static const char marker[] = "/flint-jail-probe";
	char name[NAME_MAX + 1] = "scratch.ext4", jailed[PATH_MAX];

	for (unsigned n = 2; name_taken(p, name); n++)
		snprintf(name, sizeof(name), "%u-scratch.ext4", n);
	for (int i = 1; i < w->end; i++) {
		const char *eq = strchr(w->av[i], '=');
		size_t off = !strncmp(w->av[i], "--", 2) && eq ? (size_t)(eq + 1 - w->av[i]) : 0;
		char *s = NULL, *saved = w->av[i];
		bool taken = false, hit;
		for (unsigned e = 0; e < w->nedits; e++)
			taken |= w->edits[e].i == i;
		if (taken)
			continue;
		if (asprintf(&s, "%.*s%s", (int)off, saved, marker) < 0)
			return nomem(err, errlen);
		struct config t;
		char why[64];
		w->av[i] = s;
		hit = cli_parse(w->n, w->av, &t, why, sizeof(why)) == CLI_RUN && t.scratch_file &&
		      !strcmp(t.scratch_file, marker);
		cli_config_free(&t);
		w->av[i] = saved;
		free(s);
		if (!hit)
			continue;
		snprintf(jailed, sizeof(jailed), "/%s", name);
		memcpy(p->scratch_name, name, sizeof(name));
		p->scratch = size;
		return add_edit(w, F_SCRATCH, i, off, strdup(jailed), jailed, err, errlen);
	}
	return fail(err, errlen, -EINVAL, "--scratch: not found in flint's arguments");
}

/* flint run's default kernel or root image: the first of h's places that
 * has it (as flint itself looks, runner/config/home.h), else beside the exec
 * file when no places are given; passed as `opt FILE` right after "run". */
static int add_default(struct plan *p, struct rewrite *w, enum field f, const struct home *h,
		       const char *exec_file, const char *file, const char *opt, char *err,
		       size_t errlen)
{
	const char *slash = strrchr(exec_file, '/');
	char path[PATH_MAX], where[3 * PATH_MAX], jailed[PATH_MAX];
	int r;

	if (h) {
		r = home_find(h, file, path, sizeof(path));
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
	if ((r = stage(p, path, PLAN_READ, jailed, err, errlen)) < 0)
		return r;
	return add_edit(w, f, -1, 0, strdup(opt), jailed, err, errlen);
}

/* The machine on the command line: its files staged, its values rewritten. */
static int from_cli(struct plan *p, struct rewrite *w, const struct config *cfg,
		    const struct home *h, const char *exec_file, char *err, size_t errlen)
{
	struct vm_config c;
	char jailed[PATH_MAX];
	int r;

	/* flint's own checks of the machine (whole MiB of memory, drive ids,
	 * the kernel command line); the paths are cfg's, as given. */
	if ((r = vm_config_from_cli(&c, cfg, err, errlen)) < 0)
		return r == -ENOMEM ? nomem(err, errlen) : r;
	p->mem = c.machine.mem_size_mib << 20;
	vm_config_free(&c);
	if (cfg->kernel) {
		if ((r = stage(p, cfg->kernel, PLAN_READ, jailed, err, errlen)) == 0)
			r = edit_in_place(w, F_KERNEL, cfg->kernel, jailed, err, errlen);
	} else {
		r = add_default(p, w, F_KERNEL, h, exec_file, "vmlinux", "--kernel", err, errlen);
	}
	if (r < 0)
		return r;
	if (cfg->initrd && ((r = stage(p, cfg->initrd, PLAN_READ, jailed, err, errlen)) < 0 ||
			    (r = edit_in_place(w, F_INITRD, cfg->initrd, jailed, err, errlen)) < 0))
		return r;
	if (cfg->run) {
		if (!cfg->rootfs)
			r = add_default(p, w, F_ROOTFS, h, exec_file, "rootfs.ext4", "--rootfs",
					err, errlen);
		else if ((r = stage_image(p, cfg->rootfs, true, jailed, err, errlen)) == 0)
			r = edit_in_place(w, F_ROOTFS, cfg->rootfs, jailed, err, errlen);
		if (r < 0)
			return r;
	}
	if (cfg->image && ((r = stage_image(p, cfg->image, false, jailed, err, errlen)) < 0 ||
			   (r = edit_in_place(w, F_IMAGE, cfg->image, jailed, err, errlen)) < 0))
		return r;
	if (cfg->scratch && (r = plan_scratch(p, w, cfg->scratch, err, errlen)) < 0)
		return r;
	for (unsigned k = 0; k < cfg->ndrives; k++) {
		const struct drive_cfg *d = &cfg->drives[k];
		if ((r = stage(p, d->path, d->read_only ? PLAN_READ : PLAN_READ_WRITE, jailed, err,
			       errlen)) < 0 ||
		    (r = edit_by_probe(w, F_DRIVE0 + k, "path", jailed, err, errlen)) < 0)
			return r;
	}
	if (cfg->vsock.enabled &&
	    ((r = socket_path("--vsock uds=", cfg->vsock.uds, p->vsock_path, err, errlen)) < 0 ||
	     (r = edit_by_probe(w, F_VSOCK, "uds", p->vsock_path, err, errlen)) < 0))
		return r;
	return 0;
}

/* *s = a copy of jailed, the old string freed. */
static int replace(char **s, const char *jailed, char *err, size_t errlen)
{
	char *n = strdup(jailed);

	if (!n)
		return nomem(err, errlen);
	free(*s);
	*s = n;
	return 0;
}

static bool fd_taken(const struct plan *p, int fd);

/* The descriptor for a passt's socket: the lowest from 3 on that no kept
 * one and no other passt has. */
static int next_fd(const struct plan *p)
{
	int fd = 3;

	while (fd_taken(p, fd))
		fd++;
	return fd;
}

/* The config file's copy with "fd": N on each user interface c has one for
 * (given, or the jailer's passt's): config_json_encode writes no "fd", as
 * a snapshot keeps none. */
static int set_net_fds(const struct vm_config *c, char **content, char *err, size_t errlen)
{
	json_t *root, *nets;
	bool any = false;
	char *out;

	for (unsigned k = 0; k < c->nnets; k++)
		any |= c->nets[k].fd != 0;
	if (!any)
		return 0;
	if (!(root = json_loads(*content, 0, NULL)))
		return fail(err, errlen, -EINVAL, "the config file's copy: not JSON");
	nets = json_object_get(root, "network-interfaces");
	for (unsigned k = 0; k < c->nnets; k++) {
		if (!c->nets[k].fd)
			continue;
		json_t *n = NULL;
		for (size_t i = 0; i < json_array_size(nets) && !n; i++) {
			const char *id =
			    json_string_value(json_object_get(json_array_get(nets, i), "iface_id"));
			if (id && !strcmp(id, c->nets[k].iface_id))
				n = json_array_get(nets, i);
		}
		if (!n) {
			json_decref(root);
			return fail(err, errlen, -EINVAL,
				    "the config file's copy lacks interface %s",
				    c->nets[k].iface_id);
		}
		if (json_object_set_new(n, "fd", json_integer(c->nets[k].fd)) < 0) {
			json_decref(root);
			return nomem(err, errlen);
		}
	}
	out = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!out)
		return nomem(err, errlen);
	free(*content);
	*content = out;
	return 0;
}

/* The machine in the config file: read as the jail's user, its files
 * staged, and a copy with the in-jail paths (config_json_encode) written
 * into the jail for flint. Firecracker's jailer leaves a config file alone,
 * so its paths must already be the jail's; here they are the host's, as on
 * flint's command line. */
static int from_file(struct plan *p, struct rewrite *w, const char *path, plan_read_fn *read,
		     void *ctx, char *err, size_t errlen)
{
	struct vm_config c;
	char why[512], jailed[PATH_MAX], *text = NULL;
	size_t len = 0;
	int r, cf;

	if (!read)
		return fail(err, errlen, -EINVAL, "config file %s: cannot be read here", path);
	if ((r = read(ctx, path, PLAN_CONFIG_MAX, &text, &len, why, sizeof(why))) < 0)
		return fail(err, errlen, r, "config file %s: %s", path, why);
	/* A template file it names is read as the jail's user too. */
	r = config_json_parse_file_read(text, len, &c, read, ctx, why, sizeof(why));
	free(text);
	if (r < 0)
		return r == -ENOMEM ? nomem(err, errlen)
				    : fail(err, errlen, r, "config file %s: %s", path, why);
	if (r > 0)
		fprintf(stderr, "flint-jail: warning: config file %s: %s\n", path, why);
	p->mem = c.machine.mem_size_mib << 20;
	/* A user interface gets a passt the jailer starts, its descriptor in
	 * the copy's "fd". The file itself may name none: it is read as the
	 * jail's user, who would then pick which of the jailer's inherited
	 * descriptors (--control-fd's, --status-fd's: the orchestrator's)
	 * flint takes for passt's socket and feeds the guest's frames. */
	for (unsigned k = 0; k < c.nnets; k++)
		if (c.nets[k].fd) {
			r = fail(err, errlen, -EINVAL,
				 "config file %s: interface '%s' names a descriptor (\"fd\": %d): "
				 "flint-jail starts its passt itself; leave \"fd\" out",
				 path, c.nets[k].iface_id, c.nets[k].fd);
			goto out;
		}
	for (unsigned k = 0; k < c.nnets; k++) {
		if (!c.nets[k].user)
			continue;
		struct plan_passt *ps = &p->passt[p->npasst];
		*ps = (struct plan_passt){.net = k, .fd = next_fd(p)};
		snprintf(ps->id, sizeof(ps->id), "%s", c.nets[k].iface_id);
		p->npasst++;
		c.nets[k].fd = ps->fd;
	}
	/* The copy first: the files it names are numbered after it. */
	if ((r = cf = add_file(p, path, PLAN_READ, true, err, errlen)) < 0)
		goto out;
	if (c.boot.kernel_image_path &&
	    ((r = stage(p, c.boot.kernel_image_path, PLAN_READ, jailed, err, errlen)) < 0 ||
	     (r = replace(&c.boot.kernel_image_path, jailed, err, errlen)) < 0))
		goto out;
	if (c.boot.initrd_path &&
	    ((r = stage(p, c.boot.initrd_path, PLAN_READ, jailed, err, errlen)) < 0 ||
	     (r = replace(&c.boot.initrd_path, jailed, err, errlen)) < 0))
		goto out;
	for (unsigned k = 0; k < c.ndrives; k++) {
		struct vmc_drive *d = &c.drives[k];
		/* A vhost-user-blk socket is flint's to refuse. */
		if (d->path_on_host &&
		    ((r = stage(p, d->path_on_host, d->is_read_only ? PLAN_READ : PLAN_READ_WRITE,
				jailed, err, errlen)) < 0 ||
		     (r = replace(&d->path_on_host, jailed, err, errlen)) < 0))
			goto out;
	}
	for (unsigned k = 0; k < c.npmem; k++) {
		struct vmc_pmem *d = &c.pmem[k];
		if ((r = stage(p, d->path_on_host, d->read_only ? PLAN_READ : PLAN_READ_WRITE,
			       jailed, err, errlen)) < 0 ||
		    (r = replace(&d->path_on_host, jailed, err, errlen)) < 0)
			goto out;
	}
	if (c.vsock.enabled && c.vsock.uds_path &&
	    ((r = socket_path("vsock uds_path ", c.vsock.uds_path, p->vsock_path, err, errlen)) <
		 0 ||
	     (r = replace(&c.vsock.uds_path, p->vsock_path, err, errlen)) < 0))
		goto out;
	if (c.logger.enabled && c.logger.log_path &&
	    ((r = add_output(p, "logger log_path ", "log", c.logger.log_path, true, jailed, err,
			     errlen)) < 0 ||
	     (r = replace(&c.logger.log_path, jailed, err, errlen)) < 0))
		goto out;
	if (c.metrics.metrics_path &&
	    ((r = add_output(p, "metrics metrics_path ", "metrics", c.metrics.metrics_path, false,
			     jailed, err, errlen)) < 0 ||
	     (r = replace(&c.metrics.metrics_path, jailed, err, errlen)) < 0))
		goto out;
	/* flint opens it with O_CREAT (runner/core/vm.c), as the metrics file. */
	if (c.serial.enabled && c.serial.serial_out_path &&
	    ((r = add_output(p, "serial serial_out_path ", "serial output",
			     c.serial.serial_out_path, false, jailed, err, errlen)) < 0 ||
	     (r = replace(&c.serial.serial_out_path, jailed, err, errlen)) < 0))
		goto out;
	if (!(p->files[cf].content = config_json_encode(&c, true))) {
		r = fail(err, errlen, -EINVAL, "config file %s: cannot write it back as JSON",
			 path);
		goto out;
	}
	if ((r = set_net_fds(&c, &p->files[cf].content, err, errlen)) < 0)
		goto out;
	snprintf(jailed, sizeof(jailed), "/%s", p->files[cf].name);
	r = edit_in_place(w, F_CONFIG, path, jailed, err, errlen);
out:
	vm_config_free(&c);
	return r;
}

/* The state file of a --restore, decoded by flint's own reader
 * (snapshot/snapfile.h) from what read(ctx, ...) gives: read as the jail's
 * user, as flint will read it. */
static int read_snapshot(const char *path, plan_read_fn *read, void *ctx, struct snap *s, char *err,
			 size_t errlen)
{
	char why[512], *text = NULL;
	size_t len = 0;
	int r;

	if (!read)
		return fail(err, errlen, -EINVAL, "--restore %s: cannot be read here", path);
	if ((r = read(ctx, path, SNAP_MAX_FILE, &text, &len, why, sizeof(why))) < 0)
		return fail(err, errlen, r, "--restore %s: %s", path, why);
	r = snap_read((const uint8_t *)text, len, s, why, sizeof(why));
	free(text);
	if (r < 0)
		return r == -ENOMEM ? nomem(err, errlen)
				    : fail(err, errlen, r, "--restore %s: %s", path, why);
	return 0;
}

/* Drive id's index in the snapshot's machine; id ends at end. -1: none. */
static int snapshot_drive(const struct vm_config *c, const char *id, const char *end)
{
	for (unsigned i = 0; i < c->ndrives; i++)
		if (strlen(c->drives[i].drive_id) == (size_t)(end - id) &&
		    !memcmp(c->drives[i].drive_id, id, end - id))
			return i;
	return -1;
}

/* --restore: the snapshot's files staged read-only (the state file, the
 * memory file and a diff over it, a loading set), each --drive-override
 * image staged as the snapshot's drive uses it, every image drive of the
 * snapshot overridden (the path it recorded is nowhere in a new jail), the
 * sockets and the loading set to record made in the jail. The snapshot's
 * machine gives the memory size for the cgroup check. */
static int from_restore(struct plan *p, struct rewrite *w, const struct config *cfg,
			plan_read_fn *read, void *ctx, char *err, size_t errlen)
{
	const struct {
		enum field f;
		const char *path;
	} inputs[] = {{F_RESTORE, cfg->restore},
		      {F_MEM_FILE, cfg->mem_file},
		      {F_MEM_DIFF, cfg->mem_diff},
		      {F_WORKSET, cfg->workset}};
	bool overridden[VMC_MAX_DRIVES] = {false};
	char jailed[PATH_MAX];
	struct snap s = {0};
	int r;

	if (cfg->uffd_sock)
		return fail(err, errlen, -EOPNOTSUPP,
			    "--uffd-sock is not supported under flint-jail: the page-fault "
			    "handler's socket is outside the jail; give the memory file with "
			    "--mem-file");
	if ((r = read_snapshot(cfg->restore, read, ctx, &s, err, errlen)) < 0)
		return r;
	p->mem = s.config.machine.mem_size_mib << 20;
	for (size_t k = 0; k < ARRAY_SIZE(inputs); k++)
		if (inputs[k].path &&
		    ((r = stage(p, inputs[k].path, PLAN_READ, jailed, err, errlen)) < 0 ||
		     (r = edit_in_place(w, inputs[k].f, inputs[k].path, jailed, err, errlen)) < 0))
			goto out;
	for (unsigned k = 0; k < cfg->n_drive_override; k++) {
		const char *spec = cfg->drive_override[k], *eq = strchr(spec, '=');
		int i = snapshot_drive(&s.config, spec, eq);
		if (i < 0 || !s.config.drives[i].path_on_host) {
			r = fail(err, errlen, -EINVAL,
				 "--drive-override %s: the snapshot %s has %s", spec, cfg->restore,
				 i < 0 ? "no drive of that id" : "a vhost-user-blk socket there");
			goto out;
		}
		overridden[i] = true;
		/* flint opens it as the snapshot says: read-write unless
		 * is_read_only. A read-only one is taken as flint run takes its
		 * root image: a directory or tar archive there (a jailed flint
		 * serve function's rootfs) is made into its ext4 image, found in
		 * the cache by its key (the image the snapshot's jail booted,
		 * whose UUID the restore checks), never staged as the disk. */
		if ((r = s.config.drives[i].is_read_only
			     ? stage_image(p, eq + 1, true, jailed, err, errlen)
			     : stage(p, eq + 1, PLAN_READ_WRITE, jailed, err, errlen)) < 0 ||
		    (r = edit_in_place(w, F_OVERRIDE0 + k, eq + 1, jailed, err, errlen)) < 0)
			goto out;
	}
	for (unsigned i = 0; i < s.config.nnets; i++) {
		const struct vmc_net *n = &s.config.nets[i];
		size_t len = strlen(n->iface_id);
		bool tap = !n->user || n->host_dev_name;
		for (unsigned k = 0; k < cfg->n_net_override && !tap; k++)
			tap = !strncmp(cfg->net_override[k], n->iface_id, len) &&
			      cfg->net_override[k][len] == '=';
		if (!tap) {
			r = fail(err, errlen, -EOPNOTSUPP,
				 "--restore %s: the snapshot's interface '%s' is a user interface "
				 "(passt), which flint in a jail cannot start; give it a tap with "
				 "--net-override %s=TAP",
				 cfg->restore, n->iface_id, n->iface_id);
			goto out;
		}
	}
	for (unsigned i = 0; i < s.config.ndrives; i++)
		if (s.config.drives[i].path_on_host && !overridden[i]) {
			r = fail(
			    err, errlen, -EINVAL,
			    "--restore %s: the snapshot's drive '%s' is the image %s, which is "
			    "not in the jail; give it with --drive-override %s=PATH",
			    cfg->restore, s.config.drives[i].drive_id,
			    s.config.drives[i].path_on_host, s.config.drives[i].drive_id);
			goto out;
		}
	if (s.config.npmem) {
		r = fail(err, errlen, -EOPNOTSUPP,
			 "--restore %s: the snapshot's pmem device '%s' is the file %s, which "
			 "flint-jail has no way to bring into the jail",
			 cfg->restore, s.config.pmem[0].id, s.config.pmem[0].path_on_host);
		goto out;
	}
	/* flint run's vsock socket is its own, in /tmp; flint binds the
	 * override's or else the one the snapshot recorded, a path inside the
	 * jail then. */
	if (cfg->vsock_override) {
		if ((r = socket_path("--vsock-override ", cfg->vsock_override, p->vsock_path, err,
				     errlen)) < 0 ||
		    (r = edit_in_place(w, F_VSOCK_OVERRIDE, cfg->vsock_override, p->vsock_path, err,
				       errlen)) < 0)
			goto out;
	} else if (!cfg->run && s.config.vsock.enabled && s.config.vsock.uds_path &&
		   (r = socket_path("the snapshot's vsock uds_path ", s.config.vsock.uds_path,
				    p->vsock_path, err, errlen)) < 0) {
		goto out;
	}
	if (cfg->record_workset &&
	    ((r = add_output(p, "--record-workset ", "loading set", cfg->record_workset, false,
			     jailed, err, errlen)) < 0 ||
	     (r = edit_in_place(w, F_RECORD_WORKSET, cfg->record_workset, jailed, err, errlen)) <
		 0))
		goto out;
	r = 0;
out:
	snap_free(&s);
	return r;
}

/* The descriptors flint's arguments name, inherited through the jailer. */
static int keep_fds(struct plan *p, const struct config *cfg, char *err, size_t errlen)
{
	struct {
		const char *opt;
		int fd;
	} named[4 + MAX_NETS] = {{"--control-fd", cfg->control_fd},
				 {"--wait-fd", cfg->wait_fd},
				 {"--status-fd", cfg->status_fd},
				 {"--phase-fd", cfg->phase_fd}};

	for (unsigned k = 0; k < cfg->nnets; k++)
		named[4 + k] = (typeof(named[0])){"--net user,fd=", cfg->nets[k].fd};
	for (size_t k = 0; k < ARRAY_SIZE(named); k++) {
		if (!named[k].fd)
			continue;
		if (p->nkeep == PLAN_MAX_KEEP)
			return fail(err, errlen, -EINVAL, "more than %d descriptors to keep",
				    PLAN_MAX_KEEP);
		p->keep[p->nkeep++] = (struct plan_fd){.fd = named[k].fd, .opt = named[k].opt};
	}
	return 0;
}

static bool fd_taken(const struct plan *p, int fd)
{
	for (unsigned i = 0; i < p->nkeep; i++)
		if (p->keep[i].fd == fd)
			return true;
	for (unsigned i = 0; i < p->npasst; i++)
		if (p->passt[i].fd == fd)
			return true;
	return false;
}

/* Each --net user without fd=: a passt for the jailer to start, its socket
 * flint's fd N (the lowest number from 3 on that no kept descriptor has),
 * ",fd=N" appended to the interface's argument. That argument is the one
 * that, given a marker fd, makes flint's parser read the marker for this
 * interface. */
static int plan_passts(struct plan *p, struct rewrite *w, const struct config *cfg, char *err,
		       size_t errlen)
{
	static const int marker = WAIT_FD_MAX;
	char val[32];
	int r;

	for (unsigned k = 0; k < cfg->nnets; k++) {
		if (!cfg->nets[k].user || cfg->nets[k].fd)
			continue;
		int fd = next_fd(p), at = -1;
		for (int i = 1; i < w->end && at < 0; i++) {
			bool taken = false;
			for (unsigned e = 0; e < w->nedits; e++)
				taken |= w->edits[e].i == i;
			char *s = NULL, *saved = w->av[i];
			if (taken)
				continue;
			if (asprintf(&s, "%s,fd=%d", saved, marker) < 0)
				return nomem(err, errlen);
			struct config t;
			char why[64];
			w->av[i] = s;
			if (cli_parse(w->n, w->av, &t, why, sizeof(why)) == CLI_RUN &&
			    t.nnets == cfg->nnets && t.nets[k].fd == marker)
				at = i;
			cli_config_free(&t);
			w->av[i] = saved;
			free(s);
		}
		if (at < 0)
			return fail(err, errlen, -EINVAL,
				    "--net user: not found in flint's arguments");
		snprintf(val, sizeof(val), ",fd=%d", fd);
		if ((r = add_edit(w, F_NET0 + k, at, strlen(w->av[at]), strdup(val), val, err,
				  errlen)) < 0)
			return r;
		struct plan_passt *ps = &p->passt[p->npasst++];
		*ps = (struct plan_passt){.net = k, .fd = fd};
		if (cfg->nets[k].id)
			snprintf(ps->id, sizeof(ps->id), "%s", cfg->nets[k].id);
		else
			snprintf(ps->id, sizeof(ps->id), "net%u", k);
	}
	return 0;
}

/* The arguments for flint in the jail: the exec file's in-jail path, then
 * each element with its edit applied, flint run's defaults right after
 * "run". */
static int build_argv(struct plan *p, const struct rewrite *w, bool run, char *err, size_t errlen)
{
	if (!(p->argv = calloc(w->n + 6, sizeof(char *))) ||
	    asprintf(&p->argv[0], "/%s", p->files[0].name) < 0)
		return nomem(err, errlen);
	p->argc = 1;
	for (int i = 1; i < w->n; i++) {
		const struct edit *e = NULL;
		for (unsigned k = 0; k < w->nedits; k++)
			if (w->edits[k].i == i)
				e = &w->edits[k];
		if (e && asprintf(&p->argv[p->argc], "%.*s%s", (int)e->off, w->av[i], e->val) < 0)
			return nomem(err, errlen);
		if (!e && !(p->argv[p->argc] = strdup(w->av[i])))
			return nomem(err, errlen);
		p->argc++;
		for (unsigned k = 0; run && i == 1 && k < w->nedits; k++) {
			if (w->edits[k].i != -1)
				continue;
			if (!(p->argv[p->argc++] = strdup(w->edits[k].val)) ||
			    !(p->argv[p->argc++] = strdup(w->edits[k].jailed)))
				return nomem(err, errlen);
		}
	}
	p->argv[p->argc] = NULL;
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* flint's parser must read the rewritten arguments as the machine given,
 * every path the in-jail one the plan stages or makes. */
static int verify(const struct plan *p, const struct rewrite *w, const struct config *cfg,
		  char *err, size_t errlen)
{
	struct config v;
	char why[256];
	int r = 0;

	if (cli_parse(p->argc, p->argv, &v, why, sizeof(why)) != CLI_RUN) {
		r = fail(err, errlen, -EINVAL, "the rewritten arguments: %s", why);
		goto out;
	}
	for (enum field f = 0; f < F_COUNT; f++) {
		const struct edit *e = find_edit(w, f);
		const char *want = e ? e->jailed : field_value(cfg, f);
		if (!str_eq(field_value(&v, f), want)) {
			r = fail(err, errlen, -EINVAL,
				 "the rewritten arguments give flint %s where %s was meant",
				 field_value(&v, f) ? field_value(&v, f) : "nothing",
				 want ? want : "nothing");
			goto out;
		}
	}
	for (unsigned k = 0; k < cfg->nnets && k < v.nnets; k++) {
		int want = cfg->nets[k].fd;
		for (unsigned i = 0; i < p->npasst; i++)
			if (p->passt[i].net == k)
				want = p->passt[i].fd;
		if (v.nets[k].user != cfg->nets[k].user || v.nets[k].fd != want) {
			r = fail(err, errlen, -EINVAL,
				 "the rewritten arguments give flint's interface %u fd %d where %d "
				 "was meant",
				 k, v.nets[k].fd, want);
			goto out;
		}
	}
	if (v.ndrives != cfg->ndrives || v.nnets != cfg->nnets || v.guest_argc != cfg->guest_argc ||
	    v.run != cfg->run || v.n_drive_override != cfg->n_drive_override ||
	    v.control_fd != cfg->control_fd || v.wait_fd != cfg->wait_fd ||
	    v.status_fd != cfg->status_fd || v.phase_fd != cfg->phase_fd)
		r = fail(err, errlen, -EINVAL, "the rewritten arguments are another machine");
out:
	cli_config_free(&v);
	return r;
}

/* A socket or output at (or under) a staged file's name: flint would
 * write to that file (the metrics appended to a read-write drive's hard
 * link, the host's image) or bind over it. path is jail_path's. */
static int check_staged(const struct plan *p, const char *what, const char *path, char *err,
			size_t errlen)
{
	size_t n = strcspn(path + 1, "/");

	if (!*path)
		return 0;
	if (p->scratch && strlen(p->scratch_name) == n && !memcmp(p->scratch_name, path + 1, n))
		return fail(err, errlen, -EINVAL,
			    "the %s %s: /%s is the scratch disk; give the %s a path of its own",
			    what, path, p->scratch_name, what);
	for (unsigned i = 0; i < p->nfiles; i++) {
		const struct plan_file *f = &p->files[i];
		if (strlen(f->name) != n || memcmp(f->name, path + 1, n) != 0)
			continue;
		return fail(err, errlen, -EINVAL,
			    "the %s %s: /%s is where %s%s is staged; give the %s a path of its "
			    "own",
			    what, path, f->name, f->copy ? "the copy of " : "", f->src, what);
	}
	return 0;
}

/* The sockets and outputs flint makes must be distinct, and none may be a
 * file staged in the jail. */
static int check_distinct(const struct plan *p, char *err, size_t errlen)
{
	const char *api = p->api_sock_path, *vs = p->vsock_path;
	char what[32];
	int r;

	if (*api && !strcmp(api, vs))
		return fail(err, errlen, -EINVAL, "the API socket and the vsock socket are both %s",
			    vs);
	for (unsigned i = 0; i < p->noutputs; i++) {
		if ((*api && !strcmp(p->outputs[i].path, api)) ||
		    (*vs && !strcmp(p->outputs[i].path, vs)))
			return fail(err, errlen, -EINVAL, "the %s file and a socket are both %s",
				    p->outputs[i].what, p->outputs[i].path);
		snprintf(what, sizeof(what), "%s file", p->outputs[i].what);
		if ((r = check_staged(p, what, p->outputs[i].path, err, errlen)) < 0)
			return r;
	}
	if ((r = check_staged(p, "API socket", api, err, errlen)) < 0 ||
	    (r = check_staged(p, "vsock socket", vs, err, errlen)) < 0)
		return r;
	return 0;
}

int plan_build(struct plan *p, const char *exec_file, const struct home *h, plan_read_fn *read,
	       void *ctx, int argc, char *const *argv, char *err, size_t errlen)
{
	struct rewrite w = {.n = argc + 1};
	struct config cfg;
	bool parsed = false;
	char jailed[PATH_MAX];
	int r;

	*p = (struct plan){.mem = DEFAULT_MEM};
	if (!(w.av = calloc(w.n + 1, sizeof(char *)))) {
		r = nomem(err, errlen);
		goto out;
	}
	for (int i = 0; i < w.n; i++)
		if (!(w.av[i] = strdup(i ? argv[i - 1] : "flint"))) {
			r = nomem(err, errlen);
			goto out;
		}
	/* flint's own parser: what it refuses is refused, with its message. */
	enum cli_result res = cli_parse(w.n, w.av, &cfg, err, errlen);
	parsed = true;
	if (res != CLI_RUN) {
		r = res == CLI_EXIT_OK ? PLAN_PRINTED : -EINVAL;
		goto out;
	}
	w.end = cfg.guest_argv - w.av;
	p->has_id = cfg.id != NULL;
	p->has_start_time = cfg.has_start_time || cfg.has_start_time_cpu || cfg.has_parent_cpu_time;
	if ((r = add_file(p, exec_file, PLAN_EXEC, false, err, errlen)) < 0 ||
	    (r = keep_fds(p, &cfg, err, errlen)) < 0)
		goto out;
	if (cfg.config_file)
		r = from_file(p, &w, cfg.config_file, read, ctx, err, errlen);
	else if (cfg.restore)
		r = from_restore(p, &w, &cfg, read, ctx, err, errlen);
	else if (cfg.kernel || cfg.run)
		r = from_cli(p, &w, &cfg, h, exec_file, err, errlen);
	if (r < 0 || (r = plan_passts(p, &w, &cfg, err, errlen)) < 0)
		goto out;
	/* --metadata: MMDS's first document, staged read-only as a kernel. */
	if (cfg.metadata &&
	    ((r = stage(p, cfg.metadata, PLAN_READ, jailed, err, errlen)) < 0 ||
	     (r = edit_in_place(&w, F_METADATA, cfg.metadata, jailed, err, errlen)) < 0))
		goto out;
	/* flint run --save-snapshot: both written by flint in the jail, for
	 * the caller to collect from its root once flint has exited. */
	if (cfg.save_snapshot &&
	    ((r = add_output(p, "--save-snapshot ", "snapshot state", cfg.save_snapshot, false,
			     jailed, err, errlen)) < 0 ||
	     (r = edit_in_place(&w, F_SAVE_SNAPSHOT, cfg.save_snapshot, jailed, err, errlen)) < 0 ||
	     (r = add_output(p, "--save-mem ", "snapshot memory", cfg.save_mem, false, jailed, err,
			     errlen)) < 0 ||
	     (r = edit_in_place(&w, F_SAVE_MEM, cfg.save_mem, jailed, err, errlen)) < 0))
		goto out;
	if (cfg.log_path && ((r = add_output(p, "--log-path ", "log", cfg.log_path, true, jailed,
					     err, errlen)) < 0 ||
			     (r = edit_in_place(&w, F_LOG, cfg.log_path, jailed, err, errlen)) < 0))
		goto out;
	if (cfg.metrics_path &&
	    ((r = add_output(p, "--metrics-path ", "metrics", cfg.metrics_path, false, jailed, err,
			     errlen)) < 0 ||
	     (r = edit_in_place(&w, F_METRICS, cfg.metrics_path, jailed, err, errlen)) < 0))
		goto out;
	/* flint serves the API (runner/cmd/instance.c) unless it runs a
	 * command, checks KVM, boots a --kernel without --api-sock, or has
	 * --no-api; on its default socket without --api-sock, whose directory
	 * is then made as --api-sock's would be. */
	if (cfg.api_sock &&
	    ((r = socket_path("--api-sock ", cfg.api_sock, p->api_sock_path, err, errlen)) < 0 ||
	     (r = edit_in_place(&w, F_API_SOCK, cfg.api_sock, p->api_sock_path, err, errlen)) < 0))
		goto out;
	if (cfg.run || cfg.no_api || cfg.check_kvm ||
	    ((cfg.kernel || cfg.restore) && !cfg.api_sock))
		p->api_sock_path[0] = '\0';
	else if (!cfg.api_sock)
		snprintf(p->api_sock_path, sizeof(p->api_sock_path), "%s", PLAN_DEFAULT_API_SOCK);
	p->run_tmp = cfg.run && !cfg.vsock.enabled;
	p->proc = cfg.restore != NULL;
	if ((r = check_distinct(p, err, errlen)) < 0 ||
	    (r = build_argv(p, &w, cfg.run, err, errlen)) < 0 ||
	    (r = verify(p, &w, &cfg, err, errlen)) < 0)
		goto out;
out:
	if (parsed)
		cli_config_free(&cfg);
	for (unsigned k = 0; k < w.nedits; k++) {
		free(w.edits[k].val);
		free(w.edits[k].jailed);
	}
	for (int i = 0; w.av && i < w.n; i++)
		free(w.av[i]);
	free(w.av);
	return r;
}

/* Insert the n strings of add (taken: freed on failure) first among
 * flint's arguments, after "run". 0 or -ENOMEM. */
static int insert_args(struct plan *p, char **add, int n)
{
	char **v = realloc(p->argv, (p->argc + n + 1) * sizeof(char *));
	int r = 0;

	for (int i = 0; i < n; i++)
		if (!add[i])
			r = -ENOMEM;
	if (v)
		p->argv = v;
	if (!v || r < 0) {
		for (int i = 0; i < n; i++)
			free(add[i]);
		return -ENOMEM;
	}
	int at = p->argc > 1 && !strcmp(v[1], "run") ? 2 : 1;
	memmove(&v[at + n], &v[at], (p->argc + 1 - at) * sizeof(char *));
	memcpy(&v[at], add, n * sizeof(char *));
	p->argc += n;
	return 0;
}

int plan_set_id(struct plan *p, const char *id)
{
	if (p->has_id)
		return 0;
	char *add[] = {strdup("--id"), strdup(id)};
	int r = insert_args(p, add, 2);
	if (r == 0)
		p->has_id = true;
	return r;
}

int plan_set_start_times(struct plan *p)
{
	if (p->has_start_time)
		return 0;
	char *add[] = {strdup("--start-time-us"),      calloc(1, PLAN_US_LEN),
		       strdup("--start-time-cpu-us"),  calloc(1, PLAN_US_LEN),
		       strdup("--parent-cpu-time-us"), calloc(1, PLAN_US_LEN)};
	char *val[] = {add[1], add[3], add[5]};
	int r = insert_args(p, add, 6);
	if (r == 0) {
		memcpy(p->start_val, val, sizeof(val));
		plan_start_times(p, 0, 0, 0);
		p->has_start_time = true;
	}
	return r;
}

void plan_start_times(struct plan *p, uint64_t start_us, uint64_t start_cpu_us,
		      uint64_t parent_cpu_us)
{
	const uint64_t v[] = {start_us, start_cpu_us, parent_cpu_us};

	for (int i = 0; i < 3; i++)
		if (p->start_val[i])
			snprintf(p->start_val[i], PLAN_US_LEN, "%llu", (unsigned long long)v[i]);
}

int plan_built(struct plan *p, unsigned i, const char *ext4)
{
	char *s = strdup(ext4);

	if (!s)
		return -ENOMEM;
	free(p->files[i].src);
	p->files[i].src = s;
	p->files[i].built = true;
	return 0;
}

void plan_free(struct plan *p)
{
	if (p->argv)
		for (int i = 0; i < p->argc; i++)
			free(p->argv[i]);
	free(p->argv);
	for (unsigned i = 0; i < p->nfiles; i++) {
		free(p->files[i].src);
		free(p->files[i].content);
	}
	*p = (struct plan){0};
}
