/* flint-jail's command line (Firecracker's jailer options), parsed and
 * validated with no side effects, and the jail's paths built from it. */
#ifndef FLINT_JAIL_OPTS_H
#define FLINT_JAIL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

#define JAIL_DEFAULT_BASE     "/srv/jailer"
#define JAIL_ID_MAX	      64
#define JAIL_MAX_CGROUPS      32
#define JAIL_CGROUP_FILE_MAX  64
#define JAIL_CGROUP_VALUE_MAX 256
/* RLIMIT_NOFILE when --resource-limit no-file is not given (Firecracker's). */
#define JAIL_DEFAULT_NOFILE 2048
/* The bounds of an image the jailer builds from a tenant's directory or
 * tar archive (jimage.h) when --image-limit does not say: 8 GiB for any
 * file of the build (the archive decompressed, the image), 1,000,000
 * entries in the archive. */
#define JAIL_DEFAULT_IMAGE_BYTES   (8ULL << 30)
#define JAIL_DEFAULT_IMAGE_ENTRIES 1000000ULL

/* One --cgroup FILE=VALUE; the controller is FILE up to its first dot. */
struct jail_cgroup_setting {
	char file[JAIL_CGROUP_FILE_MAX];
	char controller[JAIL_CGROUP_FILE_MAX];
	const char *value; /* points into argv */
};

struct jail_opts {
	const char *id;
	const char *exec_file;
	uid_t uid;
	gid_t gid;
	const char *base;	   /* --chroot-base-dir */
	const char *netns;	   /* NULL: stay in the current network namespace */
	const char *parent_cgroup; /* NULL: the exec file's name */
	struct jail_cgroup_setting cgroups[JAIL_MAX_CGROUPS];
	unsigned ncgroups;
	int cgroup_version; /* 1 or 2; 0: v2 where it offers every controller named, else v1 */
	bool has_fsize;
	uint64_t fsize;
	uint64_t nofile;
	uint64_t image_bytes, image_entries; /* --image-limit */
	uint64_t image_cache;		     /* --image-limit cache=N, 0: none */
	bool daemonize;
	bool new_pid_ns;
	char **flint_argv; /* the words after "--" */
	int flint_argc;
};

enum opts_result { OPTS_RUN, OPTS_EXIT_OK, OPTS_ERROR };

/* Parse argv. OPTS_EXIT_OK after --help or --version; OPTS_ERROR with a
 * message naming the option in err. The result points into argv. */
enum opts_result opts_parse(int argc, char **argv, struct jail_opts *o, char *err, size_t errlen);

/* An id: letters, digits and '-', 1 to JAIL_ID_MAX of them. 0 or -EINVAL. */
int opts_check_id(const char *id) WARN_UNUSED;

/* Parse one --cgroup FILE=VALUE into c (value points into s). FILE is
 * CONTROLLER.NAME of letters, digits, '_' and '.' (the controller in lower
 * case), never the cgroup core's own files (cgroup.*), which the jailer manages; VALUE is
 * one line of printable text. 0 or -EINVAL with err set. */
int opts_parse_cgroup(const char *s, struct jail_cgroup_setting *c, char *err,
		      size_t errlen) WARN_UNUSED;

/* The exec file's name: its last path component. */
const char *opts_exec_name(const struct jail_opts *o);

/* The parent cgroup: --parent-cgroup, or the exec file's name. */
const char *opts_parent_cgroup(const struct jail_opts *o);

/* <base>/<exec name>/<id>, with one slash between parts. 0 or
 * -ENAMETOOLONG. */
int opts_jail_dir(const struct jail_opts *o, char *out, size_t len) WARN_UNUSED;

/* <base>/<exec name>/<id>/root, the jail's root. 0 or -ENAMETOOLONG. */
int opts_jail_root(const struct jail_opts *o, char *out, size_t len) WARN_UNUSED;

void opts_usage(void);

#endif
