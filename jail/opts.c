#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/cache.h"

#ifndef FLINT_VERSION
#define FLINT_VERSION "0.1.0"
#endif

void opts_usage(void)
{
	printf("usage: flint-jail --id ID --exec-file FILE --uid UID --gid GID [options]\n"
	       "                  [-- FLINT-ARGS...]\n"
	       "Launch flint confined: its own mount namespace with the jail directory as\n"
	       "its root, cgroups, resource limits, an unprivileged uid and gid, no\n"
	       "capabilities and no_new_privs (Firecracker's jailer, for flint).\n\n"
	       "  --id ID                letters, digits and '-', at most %d\n"
	       "  --exec-file FILE       the flint binary, statically linked (the jail holds\n"
	       "                         no shared libraries)\n"
	       "  --uid UID, --gid GID   who flint runs as; never 0\n"
	       "  --chroot-base-dir DIR  where jails are made (default %s); the jail's\n"
	       "                         root is DIR/<exec file name>/ID/root\n"
	       "  --netns PATH           join this network namespace (e.g. /var/run/netns/NAME)\n"
	       "  --cgroup FILE=VALUE    write VALUE to FILE of the jail's cgroup\n"
	       "                         (e.g. memory.max=512M, cpu.max=\"50000 100000\");\n"
	       "                         repeatable\n"
	       "  --cgroup-version 1|2   cgroup hierarchy to use (default: v2 when it offers\n"
	       "                         every controller named, else v1)\n"
	       "  --parent-cgroup PATH   the jail's cgroup is PATH/ID in each hierarchy\n"
	       "                         (default: the exec file's name)\n"
	       "  --resource-limit fsize=N|no-file=N\n"
	       "                         rlimits, repeatable (no-file defaults to %d)\n"
	       "  --image-limit bytes=N|entries=N|cache=N\n"
	       "                         bounds of an image built from flint run's --image\n"
	       "                         directory or tar archive: bytes of any file of the\n"
	       "                         build, entries of the archive; and bytes on disk of\n"
	       "                         the cache's images, the least recently used removed\n"
	       "                         past it (0: no limit); repeatable (defaults %llu,\n"
	       "                         %llu and %llu)\n"
	       "  --daemonize            new session, standard streams on /dev/null\n"
	       "  --new-pid-ns           run flint as pid 1 of a new pid namespace\n"
	       "  --help, --version\n\n"
	       "Files flint's arguments name (--kernel, --initrd, --drive path=, --rootfs,\n"
	       "--image, --metadata, --config-file and the files it names, --restore's\n"
	       "state and memory files; flint run's default kernel and root image) are\n"
	       "hard-linked, or copied, into the jail and the arguments rewritten; the\n"
	       "--vsock socket's directory is made in the jail, owned by UID. Exit\n"
	       "status: flint's, or 125 when the jail could not be set up (nothing is\n"
	       "left behind then).\n",
	       JAIL_ID_MAX, JAIL_DEFAULT_BASE, JAIL_DEFAULT_NOFILE, JAIL_DEFAULT_IMAGE_BYTES,
	       JAIL_DEFAULT_IMAGE_ENTRIES, IMAGE_CACHE_DEFAULT_MAX);
}

static enum opts_result bad(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);
static enum opts_result bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return OPTS_ERROR;
}

int opts_check_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > JAIL_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-')
			return -EINVAL;
	return 0;
}

/* Decimal, no sign, no leading junk; at most max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno || *end || n > max)
		return -EINVAL;
	*v = n;
	return 0;
}

int opts_parse_cgroup(const char *s, struct jail_cgroup_setting *c, char *err, size_t errlen)
{
	const char *eq = strchr(s, '=');
	size_t flen = eq ? (size_t)(eq - s) : 0;

	*c = (struct jail_cgroup_setting){0};
	if (!eq || flen == 0) {
		snprintf(err, errlen, "--cgroup %s: expected FILE=VALUE, e.g. memory.max=512M", s);
		return -EINVAL;
	}
	if (flen >= sizeof(c->file)) {
		snprintf(err, errlen, "--cgroup %s: file name longer than %zu bytes", s,
			 sizeof(c->file) - 1);
		return -EINVAL;
	}
	const char *dot = memchr(s, '.', flen);
	for (size_t i = 0; i < flen; i++) {
		char ch = s[i];
		/* Controllers are lower case; file names may not be
		 * (hugetlb.2MB.max). */
		if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '_' ||
		      ch == '.' || (dot && s + i > dot && isupper((unsigned char)ch)))) {
			snprintf(err, errlen,
				 "--cgroup %s: '%.*s' is not a cgroup file name (CONTROLLER.NAME: "
				 "letters, digits, '_' and '.')",
				 s, (int)flen, s);
			return -EINVAL;
		}
	}
	if (!dot || dot == s || dot == s + flen - 1) {
		snprintf(err, errlen, "--cgroup %s: expected CONTROLLER.NAME=VALUE, e.g. cpu.max",
			 s);
		return -EINVAL;
	}
	/* cgroup.procs, cgroup.subtree_control...: membership and delegation
	 * are the jailer's business, not a setting. */
	if ((size_t)(dot - s) == 6 && !memcmp(s, "cgroup", 6)) {
		snprintf(err, errlen,
			 "--cgroup %s: the cgroup core's files are managed by flint-jail", s);
		return -EINVAL;
	}
	const char *v = eq + 1;
	size_t vlen = strlen(v);
	if (vlen == 0 || vlen >= JAIL_CGROUP_VALUE_MAX) {
		snprintf(err, errlen, "--cgroup %s: the value must be 1 to %d bytes", s,
			 JAIL_CGROUP_VALUE_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < vlen; i++) {
		if (!isprint((unsigned char)v[i])) {
			snprintf(err, errlen, "--cgroup %s: the value must be one line of text", s);
			return -EINVAL;
		}
	}
	memcpy(c->file, s, flen);
	memcpy(c->controller, s, dot - s);
	c->value = v;
	return 0;
}

static int parse_rlimit(const char *s, struct jail_opts *o, char *err, size_t errlen)
{
	uint64_t v;

	if (!strncmp(s, "fsize=", 6) && parse_u64(s + 6, UINT64_MAX, &v) == 0) {
		o->has_fsize = true;
		o->fsize = v;
		return 0;
	}
	if (!strncmp(s, "no-file=", 8) && parse_u64(s + 8, UINT64_MAX, &v) == 0 && v > 0) {
		o->nofile = v;
		return 0;
	}
	snprintf(err, errlen,
		 "--resource-limit %s: expected fsize=N (bytes, 0 or more) or no-file=N (N > 0)",
		 s);
	return -EINVAL;
}

static int parse_image_limit(const char *s, struct jail_opts *o, char *err, size_t errlen)
{
	uint64_t v;

	if (!strncmp(s, "bytes=", 6) && parse_u64(s + 6, UINT64_MAX, &v) == 0 && v > 0) {
		o->image_bytes = v;
		return 0;
	}
	if (!strncmp(s, "entries=", 8) && parse_u64(s + 8, UINT64_MAX, &v) == 0 && v > 0) {
		o->image_entries = v;
		return 0;
	}
	if (!strncmp(s, "cache=", 6) && parse_u64(s + 6, UINT64_MAX, &v) == 0) {
		o->image_cache = v;
		return 0;
	}
	snprintf(err, errlen,
		 "--image-limit %s: expected bytes=N or entries=N (N > 0), or cache=N (0: no "
		 "limit)",
		 s);
	return -EINVAL;
}

/* A relative path of plain names: no "..", no empty parts; letters,
 * digits and "._-@" (systemd's delegated user cgroups hold an "@":
 * user@1000.service). */
static bool plain_relative(const char *p)
{
	if (*p == '\0' || *p == '/' || strlen(p) > 1024)
		return false;
	for (const char *part = p; part;) {
		const char *slash = strchr(part, '/');
		size_t n = slash ? (size_t)(slash - part) : strlen(part);
		if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && !memcmp(part, "..", 2)))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)part[i]) && !strchr("._-@", part[i]))
				return false;
		part = slash ? slash + 1 : NULL;
	}
	return true;
}

/* An absolute path without "." or ".." parts. */
static bool clean_absolute(const char *p)
{
	if (*p != '/')
		return false;
	for (const char *part = p + 1; part;) {
		const char *slash = strchr(part, '/');
		size_t n = slash ? (size_t)(slash - part) : strlen(part);
		if ((n == 1 && part[0] == '.') || (n == 2 && !memcmp(part, "..", 2)))
			return false;
		part = slash ? slash + 1 : NULL;
	}
	return true;
}

static enum opts_result parse_id_opt(const char *name, const char *s, uint32_t *out, char *err,
				     size_t errlen)
{
	uint64_t v;

	if (parse_u64(s, UINT32_MAX - 1, &v) < 0)
		return bad(err, errlen, "--%s %s: expected a number, 1 to %u", name, s,
			   UINT32_MAX - 1);
	if (v == 0)
		return bad(err, errlen, "--%s 0: flint-jail never runs flint as root", name);
	*out = v;
	return OPTS_RUN;
}

enum opts_result opts_parse(int argc, char **argv, struct jail_opts *o, char *err, size_t errlen)
{
	enum {
		O_ID = 256,
		O_EXEC,
		O_UID,
		O_GID,
		O_BASE,
		O_NETNS,
		O_CGROUP,
		O_CGVER,
		O_PARENT,
		O_RLIMIT,
		O_IMGLIMIT,
		O_DAEMON,
		O_PIDNS,
		O_HELP,
		O_VERSION
	};
	static const struct option longopts[] = {
	    {"id", required_argument, NULL, O_ID},
	    {"exec-file", required_argument, NULL, O_EXEC},
	    {"uid", required_argument, NULL, O_UID},
	    {"gid", required_argument, NULL, O_GID},
	    {"chroot-base-dir", required_argument, NULL, O_BASE},
	    {"netns", required_argument, NULL, O_NETNS},
	    {"cgroup", required_argument, NULL, O_CGROUP},
	    {"cgroup-version", required_argument, NULL, O_CGVER},
	    {"parent-cgroup", required_argument, NULL, O_PARENT},
	    {"resource-limit", required_argument, NULL, O_RLIMIT},
	    {"image-limit", required_argument, NULL, O_IMGLIMIT},
	    {"daemonize", no_argument, NULL, O_DAEMON},
	    {"new-pid-ns", no_argument, NULL, O_PIDNS},
	    {"help", no_argument, NULL, O_HELP},
	    {"version", no_argument, NULL, O_VERSION},
	    {0},
	};
	bool have_uid = false, have_gid = false, have_base = false;
	int c;

	*o = (struct jail_opts){.base = JAIL_DEFAULT_BASE,
				.nofile = JAIL_DEFAULT_NOFILE,
				.image_bytes = JAIL_DEFAULT_IMAGE_BYTES,
				.image_entries = JAIL_DEFAULT_IMAGE_ENTRIES,
				.image_cache = IMAGE_CACHE_DEFAULT_MAX};
	opterr = 0;
	optind = 1;
	/* "+": stop at the first word that is not an option; "--" ends ours. */
	while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
		const char *once = NULL;
		switch (c) {
		case O_ID:
			if (o->id)
				once = "--id";
			o->id = optarg;
			if (opts_check_id(optarg) < 0)
				return bad(err, errlen,
					   "--id %s: expected letters, digits and '-', at most %d",
					   optarg, JAIL_ID_MAX);
			break;
		case O_EXEC:
			if (o->exec_file)
				once = "--exec-file";
			o->exec_file = optarg;
			break;
		case O_UID:
		case O_GID: {
			uint32_t v = 0;
			if ((c == O_UID && have_uid) || (c == O_GID && have_gid))
				once = c == O_UID ? "--uid" : "--gid";
			if (parse_id_opt(c == O_UID ? "uid" : "gid", optarg, &v, err, errlen))
				return OPTS_ERROR;
			if (c == O_UID) {
				o->uid = v;
				have_uid = true;
			} else {
				o->gid = v;
				have_gid = true;
			}
			break;
		}
		case O_BASE:
			if (have_base)
				once = "--chroot-base-dir";
			have_base = true;
			o->base = optarg;
			if (!clean_absolute(optarg))
				return bad(
				    err, errlen,
				    "--chroot-base-dir %s: expected an absolute path without "
				    "'.' or '..'",
				    optarg);
			break;
		case O_NETNS:
			if (o->netns)
				once = "--netns";
			o->netns = optarg;
			if (!*optarg)
				return bad(err, errlen, "--netns: expected a path");
			break;
		case O_CGROUP:
			if (o->ncgroups == JAIL_MAX_CGROUPS)
				return bad(err, errlen, "--cgroup: at most %d", JAIL_MAX_CGROUPS);
			if (opts_parse_cgroup(optarg, &o->cgroups[o->ncgroups], err, errlen))
				return OPTS_ERROR;
			for (unsigned i = 0; i < o->ncgroups; i++)
				if (!strcmp(o->cgroups[i].file, o->cgroups[o->ncgroups].file))
					return bad(err, errlen, "--cgroup: %s is given twice",
						   o->cgroups[i].file);
			o->ncgroups++;
			break;
		case O_CGVER:
			if (o->cgroup_version)
				once = "--cgroup-version";
			if (strcmp(optarg, "1") && strcmp(optarg, "2"))
				return bad(err, errlen, "--cgroup-version %s: expected 1 or 2",
					   optarg);
			o->cgroup_version = optarg[0] - '0';
			break;
		case O_PARENT:
			if (o->parent_cgroup)
				once = "--parent-cgroup";
			o->parent_cgroup = optarg;
			if (!plain_relative(optarg))
				return bad(err, errlen,
					   "--parent-cgroup %s: expected a relative path of names "
					   "(letters, digits, '.', '_', '-', '@'), no '..'",
					   optarg);
			break;
		case O_RLIMIT:
			if (parse_rlimit(optarg, o, err, errlen))
				return OPTS_ERROR;
			break;
		case O_IMGLIMIT:
			if (parse_image_limit(optarg, o, err, errlen))
				return OPTS_ERROR;
			break;
		case O_DAEMON:
			o->daemonize = true;
			break;
		case O_PIDNS:
			o->new_pid_ns = true;
			break;
		case O_HELP:
			opts_usage();
			return OPTS_EXIT_OK;
		case O_VERSION:
			printf("flint-jail %s\n", FLINT_VERSION);
			return OPTS_EXIT_OK;
		case ':':
			return bad(err, errlen, "%s needs a value", argv[optind - 1]);
		default:
			return bad(err, errlen, "unknown option %s (see --help)", argv[optind - 1]);
		}
		if (once)
			return bad(err, errlen, "%s is given twice", once);
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
		return bad(err, errlen, "unexpected argument %s; put flint's arguments after --",
			   argv[optind]);
	o->flint_argv = &argv[optind];
	o->flint_argc = argc - optind;
	if (!o->id || !o->exec_file || !have_uid || !have_gid)
		return bad(err, errlen,
			   "--id, --exec-file, --uid and --gid are required (see --help)");
	const char *name = opts_exec_name(o);
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return bad(err, errlen, "--exec-file %s: expected a file's path", o->exec_file);
	return OPTS_RUN;
}

const char *opts_exec_name(const struct jail_opts *o)
{
	const char *slash = strrchr(o->exec_file, '/');
	return slash ? slash + 1 : o->exec_file;
}

const char *opts_parent_cgroup(const struct jail_opts *o)
{
	return o->parent_cgroup ? o->parent_cgroup : opts_exec_name(o);
}

int opts_jail_dir(const struct jail_opts *o, char *out, size_t len)
{
	size_t bl = strlen(o->base);

	/* "/srv/jailer/" and "/" end in a slash the join must not double. */
	while (bl > 0 && o->base[bl - 1] == '/')
		bl--;
	if ((size_t)snprintf(out, len, "%.*s/%s/%s", (int)bl, o->base, opts_exec_name(o), o->id) >=
	    len)
		return -ENAMETOOLONG;
	return 0;
}

int opts_jail_root(const struct jail_opts *o, char *out, size_t len)
{
	int r = opts_jail_dir(o, out, len);
	size_t n = strlen(out);

	if (r < 0)
		return r;
	if (n + sizeof("/root") > len)
		return -ENAMETOOLONG;
	memcpy(out + n, "/root", sizeof("/root"));
	return 0;
}
