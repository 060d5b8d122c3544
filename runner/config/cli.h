/* flint's command line: parsed into a config, checked, and turned into the
 * guest kernel command line. No side effects, so it is unit tested. */
#ifndef FLINT_CLI_H
#define FLINT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vm_config.h"
#include "core/seccomp.h"
#include "core/util.h"

#define DEFAULT_MEM	(128ULL << 20)
#define DEFAULT_CMDLINE VMC_DEFAULT_BOOT_ARGS
#define MAX_VCPUS	32
#define MAX_DRIVES	16
#define MAX_NETS	8
/* `flint run`: the guest CID and the default command timeout (none). */
#define RUN_GUEST_CID 3
/* `flint run --wait-fd`: the highest fd number taken (the kernel's
 * default nr_open is 1048576). */
#define WAIT_FD_MAX 1048575
/* flint run: at most this many --copy-in and as many --copy-out, and
 * --env-file. */
#define MAX_COPIES    32
#define MAX_ENV_FILES 16
/* flint run --env-file: one file's size at most. */
#define ENV_FILE_MAX (1u << 20)
/* Where the API listens when --api-sock is not given. */
#define API_DEFAULT_SOCK "/run/flint.socket"

struct drive_cfg {
	char *path; /* image file */
	char *id;   /* GET_ID serial, NULL for none */
	bool read_only;
	bool direct; /* O_DIRECT: bypass the host page cache */
	/* flint run's scratch disk, its blocks reserved: no discard offered
	 * (a guest's fstrim would hand them back to the host) */
	bool keep_blocks;
};

struct net_cfg {
	char *tap; /* host tap device name; NULL with user */
	bool user; /* user: passt, rootless (no tap) */
	int fd;	   /* user: passt's socket, inherited (flint-jail's); 0: flint starts it */
	char *id;  /* for messages and stats; NULL: "net<N>" */
	uint8_t mac[6];
	bool has_mac; /* offer VIRTIO_NET_F_MAC; else the guest picks one */
};

struct vsock_cfg {
	bool enabled;
	uint32_t cid; /* guest CID, >= 3 */
	char *uds;    /* host Unix socket path (Firecracker's hybrid vsock) */
};

/* flint run --copy-in HOST:GUEST or --copy-out GUEST:HOST, split (both
 * malloc'd). A source "DIR/." is DIR with contents set: its contents, not
 * itself, go into the target. */
struct copy_cfg {
	char *host, *guest;
	bool contents;
};

enum console_mode { CONSOLE_STDIO, CONSOLE_NONE };

/* The largest --http-api-max-payload-size: a body is held in memory. */
#define CLI_HTTP_MAX_BODY (64u << 20)
/* --mmds-size-limit's most: the API takes no larger body to fill it. */
#define CLI_MMDS_MAX_LIMIT CLI_HTTP_MAX_BODY

struct config {
	const char *kernel;
	const char *initrd;  /* NULL for none */
	const char *cmdline; /* replaces DEFAULT_CMDLINE when set */
	const char *append;  /* added after the base command line */
	uint64_t mem;	     /* bytes */
	unsigned vcpus;
	enum console_mode console;
	bool stats;
	bool check_kvm;
	bool snapshot_version;	       /* --snapshot-version: print it, exit */
	const char *describe_snapshot; /* --describe-snapshot FILE: its version */
	enum seccomp_mode seccomp;     /* --seccomp-log, --no-seccomp */
	const char *seccomp_test;      /* hidden test hook: thread kind that makes a
					  forbidden call (seccomp.h), NULL for none */
	char *const *guest_argv;       /* words after "--", passed to the guest init */
	int guest_argc;
	struct drive_cfg drives[MAX_DRIVES]; /* virtio-blk, /dev/vda, vdb, ... */
	unsigned ndrives;
	struct net_cfg nets[MAX_NETS]; /* virtio-net, eth0, eth1, ... */
	unsigned nnets;
	struct vsock_cfg vsock;

	/* Firecracker's process options (issue 11). With neither --kernel nor
	 * --config-file, flint serves the API and waits to be configured. */
	const char *api_sock;	  /* --api-sock; NULL: API_DEFAULT_SOCK when served */
	const char *config_file;  /* --config-file: the machine as Firecracker's JSON */
	bool no_api;		  /* --no-api: with --config-file, no API socket */
	const char *id;		  /* --id: the instance id, NULL for the default */
	bool has_level;		  /* --level given */
	enum vmc_log_level level; /* --level */
	const char *log_path;	  /* --log-path */
	bool show_level;	  /* --show-level */
	bool show_log_origin;	  /* --show-log-origin */
	const char *metrics_path; /* --metrics-path */
	const char *module;	  /* --module: log only lines from files with this prefix */
	/* Firecracker's jailer's timing arguments (flint-jail passes them
	 * too): --start-time-us, when the launch began (CLOCK_MONOTONIC),
	 * which becomes flint's launch_ns; --start-time-cpu-us, this
	 * process's CPU time then; --parent-cpu-time-us, CPU time a parent
	 * spent on the launch before forking this process. The metrics'
	 * api_server section reports from them. --boot-timer is taken as
	 * Firecracker's: flint's boot timer is always on. */
	/* --http-api-max-payload-size, 1 to CLI_HTTP_MAX_BODY; 0: the API's
	 * default, Firecracker's 51200 */
	size_t http_max_body;
	/* Firecracker's MMDS options: --metadata FILE, the data store's first
	 * contents (JSON), as if PUT /mmds; --mmds-size-limit, the store's
	 * limit in bytes of compact JSON (0: the API's body cap). */
	const char *metadata;
	size_t mmds_size_limit;
	bool has_start_time;	  /* --start-time-us given */
	bool has_start_time_cpu;  /* --start-time-cpu-us given */
	bool has_parent_cpu_time; /* --parent-cpu-time-us given */
	uint64_t start_time_us, start_time_cpu_us, parent_cpu_time_us;

	/* Restoring a snapshot without the API (issue 12): --restore STATE
	 * with --mem-file FILE or --uffd-sock PATH, as PUT /snapshot/load. */
	const char *restore;		    /* --restore: the state file */
	const char *mem_file;		    /* --mem-file: File backend */
	const char *uffd_sock;		    /* --uffd-sock: Uffd backend */
	const char *mem_diff;		    /* --mem-diff: a diff snapshot's memory over it */
	bool restore_paused;		    /* --paused: do not resume (the API resumes) */
	bool track_dirty_pages;		    /* --track-dirty-pages */
	bool keep_clock;		    /* --keep-clock: not clock_realtime */
	const char *net_override[MAX_NETS]; /* --net-override IFACE=TAP, as given */
	unsigned n_net_override;
	/* --drive-override ID=PATH, as given (ID checked: 1 to VMC_MAX_ID
	 * bytes, each ID once): drive ID of the snapshot opens PATH instead
	 * of the image it recorded, its other settings kept. */
	const char *drive_override[MAX_DRIVES];
	unsigned n_drive_override;
	const char *vsock_override; /* --vsock-override PATH */
	const char *workset;	    /* --workset FILE: prefetch this loading set */
	const char *record_workset; /* --record-workset FILE: write one at exit */
	/* --restore: an inherited fd (>= 3) on which flint reads lines,
	 * "reset" taking the VM back to its snapshot in place (vm_reset) and
	 * answering "ok <us>" or "error <message>"; its end stops the VM, exit
	 * 0. 0 for none. */
	int control_fd; /* --control-fd */
	/* flint and flint run: an inherited fd (>= 3) on which flint writes
	 * its phase events for `flint bench` (core/phases.h). 0 for none. */
	int phase_fd; /* --phase-fd, not in --help */
	/* `flint run`: guest_argv is the command for the guest agent, not for
	 * init; the root file system is a read-only drive. */
	bool run;
	const char *rootfs; /* run: root image (default: home.h finds it) */
	unsigned timeout_s; /* run: command time limit, 0 for none */
	bool timings;	    /* run: print launch-to-init/agent and command times */
	/* run: once the agent is ready, pause and save a Full snapshot to
	 * these two files; then the command runs, or without one flint stops.
	 * `flint run --restore` runs a command in a VM restored from them. */
	const char *save_snapshot; /* --save-snapshot: the state file */
	const char *save_mem;	   /* --save-mem: the memory file */
	/* run --restore: restore paused and wait for one byte on this
	 * inherited fd (>= 3) before running the command; its end without
	 * one stops the VM, exit 0 (a warm VM given up). 0 for none. */
	int wait_fd; /* --wait-fd */
	/* run: an inherited fd (>= 3) on which the command's status line goes
	 * the moment it is known, before the VM is torn down (flint serve
	 * answers then). 0 for none. */
	int status_fd; /* --status-fd */
	/* run: the command's environment, "NAME=value" each (pointers into
	 * argv, in a malloc'd NULL-terminated array, cli_config_free), beside
	 * the agent's defaults; and its working directory (NULL: "/"). */
	char **env; /* --env, repeatable */
	unsigned nenv;
	const char *workdir; /* --workdir: an absolute guest path */
	/* run --save-snapshot with a command: run it first, and save only
	 * when it exits 0 (a prepared runtime); else exit with its status and
	 * save nothing. */
	bool save_after; /* --save-after */
	/* run: no VM of flint's own: reach the guest agent of a running flint
	 * VM through its vsock device's socket (Firecracker's hybrid vsock,
	 * "CONNECT 52"), and run the command there. */
	const char *attach; /* --attach UDS */
	/* run: the user's userland, a directory, tar archive or ext4 image
	 * (image/image.h), as the guest's root: an overlay of it, read-only,
	 * under a writable layer in memory, or on a scratch disk of this many
	 * bytes (0: none) that flint makes and removes. */
	const char *image; /* --image PATH */
	uint64_t scratch;  /* --scratch SIZE */
	/* --scratch FILE (absolute): an ext4 file the caller made (flint-jail,
	 * in the jail) as the scratch disk; flint neither makes nor removes it. */
	const char *scratch_file;
	/* run: trees copied into the guest before the command and out of it
	 * after (cmd/copy.h). */
	struct copy_cfg copy_in[MAX_COPIES]; /* --copy-in HOST:GUEST */
	unsigned n_copy_in;
	struct copy_cfg copy_out[MAX_COPIES]; /* --copy-out GUEST:HOST */
	unsigned n_copy_out;
	/* run: the copies' bounds (cmd/copy.h copy_bounds), 0 for its
	 * defaults. */
	unsigned copy_timeout_s; /* --copy-timeout S: each phase of copies */
	uint64_t copy_out_limit; /* --copy-out-limit SIZE: the copy-outs' file data */
	/* run: files of NAME=VALUE lines for the command's environment,
	 * read by cli_load_env_files; what they held (malloc'd). */
	const char *env_files[MAX_ENV_FILES]; /* --env-file FILE */
	unsigned n_env_files;
	char *env_data[MAX_ENV_FILES];
	/* run: the command's user and group (gid AGENT_GID_DEFAULT: the
	 * user's in the guest's /etc/passwd). */
	bool user; /* --user UID[:GID] */
	uint32_t uid, gid;
};

enum cli_result { CLI_RUN, CLI_EXIT_OK, CLI_ERROR };

/* Parse argv; argv[1] == "run" selects `flint run`, whose defaults
 * (kernel and root image from $FLINT_HOME, beside the binary or under the
 * install prefix, see home.h; a vsock device with a private socket) are
 * filled in by the caller. flint run needs a command, except with
 * --save-snapshot alone; with --restore, the snapshot replaces the machine
 * options; with --attach, there is no machine at all. The command's words,
 * --env entries and --workdir must fit one agent request
 * (AGENT_REQUEST_MAX). CLI_EXIT_OK after printing --help or --version;
 * CLI_ERROR with a message in err (naming the option) for bad input; what
 * was allocated is freed then, and cli_config_free stays safe to call. */
enum cli_result cli_parse(int argc, char **argv, struct config *cfg, char *err, size_t errlen);

/* Parse a memory size: "128" (MiB), "512M", "2G", "65536K". Must be a whole
 * number of 4 KiB pages, at least 16 MiB, at most 1 TiB. 0 or -EINVAL. */
int cli_parse_size(const char *s, uint64_t *bytes) WARN_UNUSED;

/* Parse one --drive value: path=FILE[,ro][,id=NAME][,direct]. Fills d with
 * malloc'd strings (see cli_config_free). 0 or -EINVAL with err set. */
int cli_parse_drive(const char *s, struct drive_cfg *d, char *err, size_t errlen) WARN_UNUSED;

/* Parse one --net value: tap=NAME[,mac=MAC][,id=NAME] or
 * user[,mac=MAC][,id=NAME]. 0 or -EINVAL. */
int cli_parse_net(const char *s, struct net_cfg *n, char *err, size_t errlen) WARN_UNUSED;

/* Parse the --vsock value: cid=N,uds=PATH (cid 3 to 2^32-2). 0 or -EINVAL. */
int cli_parse_vsock(const char *s, struct vsock_cfg *v, char *err, size_t errlen) WARN_UNUSED;

/* Parse one --copy-in (out false: HOST:GUEST, split at the last ':') or
 * --copy-out (GUEST:HOST, split at the first ':') value into c: neither
 * part empty, the guest's path absolute, under 4096 bytes and without a
 * "." or ".." component (but the source's final "/."), not "/" as a
 * --copy-out source. Fills c with malloc'd strings. 0, or -EINVAL or
 * -ENOMEM with err set. */
int cli_parse_copy(const char *s, bool out, struct copy_cfg *c, char *err,
		   size_t errlen) WARN_UNUSED;

/* Parse --user UID[:GID] (decimal, 0 to 4294967294; without GID *gid is
 * AGENT_GID_DEFAULT). 0 or -EINVAL. */
int cli_parse_user(const char *s, uint32_t *uid, uint32_t *gid) WARN_UNUSED;

/* Read --env-file's files (NAME=VALUE lines; blank lines and lines
 * starting with '#' skipped; NAME a shell name; the value the rest of the
 * line, as it is) into cfg->env: their entries first, each name once (a
 * later line wins, an --env of the same name wins over them all), then
 * --env's. 0, or -errno with err naming the file and line. */
int cli_load_env_files(struct config *cfg, char *err, size_t errlen) WARN_UNUSED;

/* Free what cli_parse allocated (drive, net and vsock strings, the --env
 * array). Safe to call twice. */
void cli_config_free(struct config *cfg);

/* The guest kernel command line for cfg (cmdline.h): the base line and
 * --append, with the VMM's device arguments (`devices`, may be NULL) before
 * the first "--" of either, then the guest words for init. Returns a
 * malloc'd string, or NULL with err set (a word the kernel cannot carry, or
 * over max bytes with the NUL). */
char *cli_guest_cmdline(const struct config *cfg, const char *devices, size_t max, char *err,
			size_t errlen);

void cli_usage(void);

#endif
