/* What the jail must hold for flint's arguments, and the arguments rewritten
 * for flint's view from inside it.
 *
 * flint's own parser decides what the arguments mean: they are parsed with
 * cli_parse (runner/config/cli.h), so an argument flint would refuse is
 * refused here with flint's message, and sizes and paths are read as flint
 * reads them. The machine they describe comes from vm_config_from_cli, or
 * from the --config-file through config_json_parse_file, and names every
 * file flint will open:
 * - the kernel, the initrd, each drive's image, flint run's root image and
 *   its defaults (vmlinux, rootfs.ext4, found where flint would look for
 *   them outside the jail, runner/config/home.h, and passed explicitly: flint
 *   cannot find them from inside a jail with no /proc or environment) are
 *   staged at the jail's top level under their own names (numbered when two
 *   collide) and the arguments point there;
 * - the sockets flint binds (--vsock uds= or the file's vsock uds_path, the
 *   API socket: --api-sock or flint's default when flint serves the API)
 *   and the files it writes (--log-path, --metrics-path, the file's logger,
 *   metrics and serial output paths) are paths inside the jail, as with
 *   Firecracker's jailer: their directories are made there; none may be, or
 *   be under, a staged file's name;
 * - a --config-file is read as the jail's user and written into the jail
 *   rewritten (config_json_encode) with the in-jail paths;
 * - a --restore's state file is read as the jail's user and decoded with
 *   flint's reader (snapshot/snapfile.h): its machine gives the memory size;
 *   the state, memory, diff and loading set files are staged read-only,
 *   each --drive-override image as the snapshot's drive uses it (every
 *   image drive must have one: the path the snapshot recorded is not in
 *   the jail); --uffd-sock is refused;
 * - flint run's --image (and a --rootfs given) is staged read-only as a
 *   drive; one that is a directory or tar archive is first built by the
 *   jailer (jimage.h) and the ext4 image staged instead (plan_built);
 * - flint run's --scratch SIZE is made by the jailer in the jail (flint
 *   there has no mke2fs) and given to flint as --scratch /<name>;
 * - --save-snapshot and --save-mem are outputs, as --metrics-path;
 * - --control-fd, --wait-fd, --status-fd, --phase-fd and --net user,fd= name
 *   descriptors to keep;
 * - each --net user without fd= gets a passt the jailer starts outside the
 *   jail (plan.passt), its socket passed as fd=N, and so does each of a
 *   config file's user interfaces ("fd": N in the copy); a snapshot's user
 *   interface is refused (flint could not start passt) unless
 *   --net-override makes it a tap;
 * - a --restore gets a /proc restricted to processes (plan.proc): its reset
 *   in place and its loading set read /proc/self/pagemap.
 * The rewritten arguments are parsed again and must give the same machine
 * with the in-jail paths, or the launch is refused. Pure but for flint run's
 * defaults (looked for) and the config file (read through the caller's
 * function). */
#ifndef FLINT_JAIL_PLAN_H
#define FLINT_JAIL_PLAN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cli.h"
#include "config/config_json.h"
#include "config/home.h"
#include "core/util.h"

/* flint's API socket when --api-sock is not given. */
#define PLAN_DEFAULT_API_SOCK API_DEFAULT_SOCK

/* The exec file, the config file, kernel, initrd, flint run's root image
 * and the drives; or the exec file, a snapshot's state, memory, diff and
 * loading set files and its drives' images. */
#define PLAN_MAX_FILES (MAX_DRIVES + 5)
/* --log-path, --metrics-path, the config file's logger, metrics and serial
 * output, --record-workset, --save-snapshot and --save-mem. */
#define PLAN_MAX_OUTPUTS 8
/* --control-fd, --wait-fd, --status-fd, --phase-fd, and a --net user,fd=N
 * given. */
#define PLAN_MAX_KEEP (4 + MAX_NETS)
/* Largest config file: flint's own limit (runner/cmd/instance.c). */
#define PLAN_CONFIG_MAX (1 << 20)
/* plan_build's result when flint's parser printed --help or --version:
 * nothing is to be launched. */
#define PLAN_PRINTED 1

enum plan_access { PLAN_READ, PLAN_READ_WRITE, PLAN_EXEC };

struct plan_file {
	char *src;		 /* host path, malloc'd */
	char name[NAME_MAX + 1]; /* at the jail's top level */
	enum plan_access access;
	/* The rewritten config file: written into the jail (root's, 0644)
	 * instead of staged from src; malloc'd. NULL for a staged file. */
	char *content;
	/* The config file's copy (content is set only once every path in it
	 * is rewritten): never merged with a file staged from the same src. */
	bool copy;
	/* flint run's --image or --rootfs: a directory or tar archive there is
	 * made into an ext4 image by the jailer before the jail is filled
	 * (jimage.h), and that image is staged instead (plan_built). Never
	 * merged with a file staged from the same src. */
	bool image;
	/* The image is --rootfs's: a file that is neither a directory nor a
	 * tar archive is staged as it is, as flint takes it. */
	bool rootfs;
	/* src is the jailer's own build in its cache (plan_built), root's and
	 * out of uid:gid's reach: opened as root, not as uid:gid. */
	bool built;
};

/* An inherited descriptor flint's arguments name: kept open for flint. */
struct plan_fd {
	int fd;
	const char *opt; /* "--control-fd": for messages */
};

/* A --net user interface's passt, which the jailer starts (flint, in the
 * jail, cannot: passt is not there, and must run in the host's network
 * namespace and mount namespace) and passes to flint as fd: its argument
 * becomes user,...,fd=N. */
struct plan_passt {
	unsigned net; /* the interface: flint's --net (or the config file's), from 0 */
	int fd;	      /* the descriptor flint gets (its number reserved early) */
	char id[65];  /* the interface's id, as flint names it: for messages */
};

/* A file flint writes, at a path inside the jail. */
struct plan_output {
	char path[PATH_MAX]; /* absolute, in the jail */
	/* "log", "metrics", "serial output", "loading set", "snapshot state",
	 * "snapshot memory": for messages */
	const char *what;
	/* Made empty by the jailer: flint's logger opens its file but does
	 * not create it (as Firecracker's); the metrics file flint creates. */
	bool make;
};

struct plan {
	char **argv; /* "/<exec name>", the rewritten arguments, NULL; malloc'd */
	int argc;
	bool has_id;	     /* flint's arguments name its --id */
	bool has_start_time; /* ... any of its timing arguments (--start-time-us...) */
	/* The values of the timing arguments plan_set_start_times put in
	 * argv (each PLAN_US_LEN bytes, filled by plan_start_times), or NULL. */
	char *start_val[3];
	struct plan_file files[PLAN_MAX_FILES]; /* files[0] is the exec file */
	unsigned nfiles;
	char vsock_path[PATH_MAX]; /* in-jail socket path, "" without vsock */
	/* In-jail path of the API socket: --api-sock's, else flint's default;
	 * "" when flint serves no API (flint run, --no-api, --check-kvm,
	 * --kernel without --api-sock). */
	char api_sock_path[PATH_MAX];
	struct plan_output outputs[PLAN_MAX_OUTPUTS];
	unsigned noutputs;
	bool run_tmp; /* flint run makes its private socket directory in /tmp */
	/* flint run --scratch SIZE: the scratch disk, a sparse ext4 file of
	 * this many bytes the jailer makes at the jail's top level under
	 * scratch_name (uid:gid's, 0600); flint gets --scratch /<name>, which
	 * it uses and leaves: it goes with the jail. 0: none. */
	uint64_t scratch;
	char scratch_name[NAME_MAX + 1];
	/* A procfs of processes only at /proc (subset=pid, hidepid=invisible):
	 * a --restore's reset in place finds the pages its guest wrote in
	 * /proc/self/pagemap (without it every page is dropped and faults
	 * again), as --record-workset does. Nothing else flint does in a jail
	 * needs /proc, so nothing else gets one. */
	bool proc;
	/* Guest memory as flint reads it (--mem, the config file's, a
	 * snapshot's machine), or flint's default. */
	uint64_t mem;
	/* The inherited descriptors flint is to get (every other one above 2
	 * is closed). */
	struct plan_fd keep[PLAN_MAX_KEEP];
	unsigned nkeep;
	/* The passts to start, their descriptors the lowest numbers from 3 on
	 * that keep does not hold. */
	struct plan_passt passt[MAX_NETS];
	unsigned npasst;
};

/* Read the file at path for plan_build (the --config-file, a CPU template
 * it names, a --restore state file), as the jail's user will: its content,
 * NUL-terminated, in a malloc'd *text of *len bytes (at most max). 0 or
 * -errno with a message in err. The config file's reader, which
 * config_json_parse_file_read takes. */
typedef config_json_read_fn plan_read_fn;

/* Build the plan for exec_file (host path) and flint's arguments (the words
 * after flint-jail's "--"). flint run's defaults come from the first of h's
 * places that has them (h built with home_init for $FLINT_HOME and
 * exec_file), or, with h NULL, from beside exec_file; a config file is read
 * with read(ctx, ...). 0; PLAN_PRINTED when flint's parser printed its
 * --help or --version; or -EINVAL / -ENOMEM / -ENOENT with a message in err
 * (flint's own for arguments flint refuses). plan_free in every case. */
int plan_build(struct plan *p, const char *exec_file, const struct home *h, plan_read_fn *read,
	       void *ctx, int argc, char *const *argv, char *err, size_t errlen) WARN_UNUSED;

/* flint's --id is the jail's (as Firecracker's jailer passes its --id on),
 * unless flint's arguments name one: "--id", id go first among them (after
 * "run"). 0 or -ENOMEM. */
int plan_set_id(struct plan *p, const char *id) WARN_UNUSED;

/* Firecracker's jailer's timing arguments for flint, unless flint's
 * own arguments name one of them: "--start-time-us",
 * "--start-time-cpu-us", "--parent-cpu-time-us", their values to be given
 * by plan_start_times before the exec. 0 or -ENOMEM. */
#define PLAN_US_LEN 24
int plan_set_start_times(struct plan *p) WARN_UNUSED;

/* The values: the launch's start (CLOCK_MONOTONIC us), the CPU time of
 * the process that execs flint at that start, and the CPU time a parent
 * spent before forking it. No-op without plan_set_start_times. */
void plan_start_times(struct plan *p, uint64_t start_us, uint64_t start_cpu_us,
		      uint64_t parent_cpu_us);

/* The image file i (files[i].image) is staged from ext4, the jailer's
 * build in its cache, instead of the directory or tar archive named: its
 * in-jail name stays. 0 or -ENOMEM. */
int plan_built(struct plan *p, unsigned i, const char *ext4) WARN_UNUSED;

void plan_free(struct plan *p);

#endif
