#include "config/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"
#include "config/cmdline.h"
#include "core/seccomp.h"
#include "core/version.h"

void cli_usage(void)
{
	printf("usage: flint --kernel FILE [options] [-- GUEST-COMMAND ARGS...]\n"
	       "       flint [--api-sock PATH | --config-file FILE [--no-api]] [options]\n"
	       "       flint run [options] -- COMMAND ARGS...\n"
	       "       flint run --save-snapshot FILE --save-mem FILE [options] [-- COMMAND...]\n"
	       "       flint run --restore FILE --mem-file FILE [options] -- COMMAND ARGS...\n"
	       "       flint run --restore FILE --mem-file FILE --wait-fd N [options] -- COMMAND\n"
	       "       flint run --save-snapshot FILE --save-mem FILE --save-after [options]\n"
	       "                 -- COMMAND ARGS...\n"
	       "       flint run --attach UDS [options] -- COMMAND ARGS...\n"
	       "       flint serve --listen ADDR:PORT [options]     (see flint serve --help)\n"
	       "       flint bench boot|restore|run|serve [options] (see flint bench --help)\n"
	       "Boot a Linux microVM with KVM.\n\n"
	       "  --kernel FILE      guest kernel: uncompressed ELF vmlinux or bzImage\n"
	       "  --initrd FILE      initramfs (cpio, optionally compressed)\n"
	       "  --mem SIZE         guest memory: 128M (default), 1G, or MiB as a number;\n"
	       "                     16M to 1024G, in whole MiB\n"
	       "  --vcpus N          vCPUs, 1-%d (default 1)\n"
	       "  --cmdline STR      replace the kernel command line (default below);\n"
	       "                     words after a \"--\" in it go to init, flint's device\n"
	       "                     arguments before it. The default:\n"
	       "                     %s\n"
	       "  --append STR       add to the kernel command line (before its \"--\")\n"
	       "  --console MODE     stdio (default): guest serial on stdin/stdout; none\n"
	       "  --drive SPEC       virtio-blk drive: path=FILE[,ro][,id=NAME][,direct]\n"
	       "                     (NAME 1 to 20 bytes); repeatable, up to %d: the guest\n"
	       "                     sees /dev/vda, /dev/vdb, ...\n"
	       "  --net SPEC         virtio-net on a host tap: tap=NAME[,mac=MAC][,id=NAME];\n"
	       "                     or, without root, through passt: user[,mac=MAC][,id=NAME]\n"
	       "                     [,fd=N] (fd=N: a passt started already, its socket\n"
	       "                     inherited as fd N, as flint-jail passes it; the guest's\n"
	       "                     first user interface gets 10.0.2.15/24, gateway\n"
	       "                     10.0.2.2 = the host's loopback, DNS 10.0.2.3);\n"
	       "                     repeatable, up to %d: the guest sees eth0, eth1, ...\n"
	       "  --vsock SPEC       virtio-vsock: cid=N,uds=PATH (N 3 to 4294967294); host\n"
	       "                     programs connect to PATH and send \"CONNECT <port>\\n\";\n"
	       "                     guest connections to CID 2 port P go to PATH_P\n"
	       "                     (Firecracker's model)\n"
	       "  --stats            print VM exit counts by reason on exit\n"
	       "  --seccomp-log      log system calls outside a thread's seccomp allow list\n"
	       "                     (in the kernel log) instead of killing flint\n"
	       "  --verbose          log more\n"
	       "  --check-kvm        say whether this host's KVM can boot a guest; exit 0 if so\n"
	       "\nFirecracker's process options (its API and config file):\n"
	       "  --api-sock PATH    serve Firecracker's REST API on this Unix socket; without\n"
	       "                     --kernel or --config-file flint waits there to be\n"
	       "                     configured (default %s)\n"
	       "  --config-file FILE boot the machine Firecracker's JSON file describes\n"
	       "  --no-api           with --config-file: serve no API\n"
	       "  --id ID            instance id, 1 to 64 letters, digits, '-' or '_'\n"
	       "                     (default anonymous-instance)\n"
	       "  --level LEVEL      log level: Error, Warning, Info (default), Debug, Trace\n"
	       "                     or Off\n"
	       "  --log-path PATH    log to this file or named pipe (errors still on stderr)\n"
	       "  --show-level, --show-log-origin  add the level, the source file and line\n"
	       "  --metrics-path PATH  write metrics (JSON lines) here every 60 s\n"
	       "  --module PREFIX    log only lines from source files starting with PREFIX\n"
	       "  --start-time-us N, --start-time-cpu-us N, --parent-cpu-time-us N\n"
	       "                     the launch's start (CLOCK_MONOTONIC) and CPU time, as\n"
	       "                     Firecracker's jailer (and flint-jail) passes them\n"
	       "  --boot-timer       accepted: flint's boot timer device is always on\n"
	       "  --http-api-max-payload-size N  the API's cap on a request body, 1 to\n"
	       "                     67108864 bytes (default 51200)\n"
	       "  --no-seccomp       no seccomp filters at all (not recommended)\n"
	       "  --snapshot-version print the snapshot format version flint writes\n"
	       "  --describe-snapshot FILE  print the format version of state file FILE\n"
	       "  --metadata FILE    MMDS's data store starts with this JSON document\n"
	       "  --mmds-size-limit N  the largest MMDS document, 1 to 67108864 bytes\n"
	       "                     (default: --http-api-max-payload-size's)\n"
	       "\nRestoring a snapshot (as PUT /snapshot/load; make one with PUT\n"
	       "/snapshot/create):\n"
	       "  --restore FILE     the snapshot's state file; the VM runs at once\n"
	       "  --mem-file FILE    its memory file, mapped privately (File backend), or\n"
	       "  --uffd-sock PATH   a page-fault handler's socket (Uffd backend)\n"
	       "  --mem-diff FILE    a diff snapshot's memory file laid over --mem-file\n"
	       "  --paused           stay paused until PATCH /vm resumes it (needs --api-sock)\n"
	       "  --track-dirty-pages  track dirty pages (for diff snapshots of it)\n"
	       "  --keep-clock       the guest clock goes on from the snapshot's time (default:\n"
	       "                     on by the time since, so the guest's wall clock is right)\n"
	       "  --net-override IFACE=TAP  give interface IFACE this tap (repeatable)\n"
	       "  --vsock-override PATH     the vsock device's host socket\n"
	       "  --drive-override ID=PATH  drive ID opens PATH instead of the image the\n"
	       "                     snapshot recorded (its other settings, read-only\n"
	       "                     included, kept); repeatable\n"
	       "  --workset FILE     fault in this loading set before the guest runs\n"
	       "  --record-workset FILE  write the pages the guest touched when flint ends\n"
	       "  --control-fd N     read lines on inherited fd N: \"reset\" takes the VM back\n"
	       "                     to the snapshot in place (answer \"ok <us>\" or \"error\n"
	       "                     <message>\"; File backend only), \"where\" has flint\n"
	       "                     log where each vCPU was when the VM stops; its end\n"
	       "                     stops the VM\n"
	       "  --help, --version\n\n"
	       "Words after -- are passed to the guest init, which runs them as a command.\n"
	       "Exit status: the guest command's status; 0 on a guest reboot; 122 when the\n"
	       "guest crashed (kernel panic, triple fault, KVM error); 125 when flint failed.\n\n"
	       "flint run boots a microVM, runs COMMAND through the guest agent over vsock,\n"
	       "relays stdin, stdout and stderr, and exits with the command's status\n"
	       "(128+N when a signal killed it). Besides the options above:\n"
	       "  --rootfs IMG       root file system image, read-only (default: rootfs.ext4\n"
	       "                     from $FLINT_HOME, else next to flint, else the install's\n"
	       "                     share/flint; --kernel defaults to vmlinux from there);\n"
	       "                     a directory or tar archive is made into one, as for\n"
	       "                     --image, and must hold flint's /init and agent\n"
	       "  --image PATH       run COMMAND in this userland: a directory, a tar archive\n"
	       "                     (plain, gzip, xz or zstd) or an ext4 image; the first two\n"
	       "                     are made into an ext4 image kept in flint's cache\n"
	       "                     ($FLINT_CACHE, trimmed to $FLINT_CACHE_MAX, default\n"
	       "                     10G). The guest's / is an overlay of it, writable, the\n"
	       "                     image never written\n"
	       "  --scratch SIZE     with --image: the overlay's writable layer on a disk of\n"
	       "                     SIZE (e.g. 4G; 16M to 1T, suffix K, M, G or T) that flint\n"
	       "                     makes and removes, not in memory\n"
	       "  --timeout S        kill the command after S seconds (1 to 604800): exit\n"
	       "                     status 124\n"
	       "  --timings          print launch-to-init, launch-to-agent and command times\n"
	       "  --save-snapshot FILE  once the agent is ready, pause and save a Full\n"
	       "  --save-mem FILE    snapshot: the state file and the memory file; then run\n"
	       "                     COMMAND, or without one stop and exit 0\n"
	       "  --restore FILE     with --mem-file (or --uffd-sock) and the snapshot options\n"
	       "                     above but --paused, --vsock-override and --control-fd:\n"
	       "                     run COMMAND in a VM restored from such a snapshot\n"
	       "                     instead of booting one (no machine options: the\n"
	       "                     snapshot has them)\n"
	       "  --wait-fd N        with --restore: restore the VM paused, wait for one byte\n"
	       "                     on the inherited fd N (3 or more), then resume it and run\n"
	       "                     COMMAND; the fd's end without a byte stops the VM and\n"
	       "                     exits 0 with nothing run (a warm VM given up)\n"
	       "  --status-fd N      write \"status=S ready_ms=R command_ms=C sent=B\n"
	       "                     command=K\" on the inherited fd N (3 or more) the\n"
	       "                     moment the command ends, all its output written,\n"
	       "                     before the VM is torn down, or when the VM ends first\n"
	       "                     (sent=0: the command never reached the guest;\n"
	       "                     command=1: S is the command's own status)\n"
	       "  --env NAME=VALUE   set NAME in the command's environment (repeatable; the\n"
	       "                     agent's PATH and HOME stay unless replaced)\n"
	       "  --workdir DIR      the command's working directory, an absolute guest path\n"
	       "                     (default /)\n"
	       "  --save-after       with --save-snapshot, --save-mem and COMMAND: run COMMAND\n"
	       "                     first and save only if it exits 0 (then stop and exit 0);\n"
	       "                     otherwise save nothing and exit with its status\n"
	       "  --copy-in HOST:GUEST  before COMMAND, copy the file or directory HOST into\n"
	       "                     the guest (repeatable): into GUEST if it is a directory,\n"
	       "                     else as GUEST (missing directories made; HOST/. : its\n"
	       "                     contents); owners, modes, symlinks kept\n"
	       "  --copy-out GUEST:HOST  after COMMAND, however it ended, copy GUEST out\n"
	       "                     to HOST by the same rules (repeatable)\n"
	       "  --copy-timeout S   the copy-ins together, and the copy-outs together, must\n"
	       "                     be done within S seconds (1 to 604800, default 600)\n"
	       "  --copy-out-limit SIZE  the copy-outs together write at most SIZE of file\n"
	       "                     data (16M to 1T, suffix K, M, G or T; default 4G)\n"
	       "  --env-file FILE    NAME=VALUE lines for the command's environment ('#'\n"
	       "                     comments; --env wins)\n"
	       "  --user UID[:GID]   run COMMAND as this user and group (default GID: the\n"
	       "                     user's in the guest's /etc/passwd)\n"
	       "  --attach UDS       no VM of its own: run COMMAND through the guest agent of\n"
	       "                     a running flint VM, reached through its vsock device's\n"
	       "                     socket UDS (--vsock-override of a restored VM); no\n"
	       "                     machine, --restore, --save-*, --wait-fd or --stats\n"
	       "                     options\n"
	       "It exits 123 when the guest did not boot to its agent (or, restored, its agent\n"
	       "did not answer; attached, within 10 s), or the connection to it was lost.\n",
	       MAX_VCPUS, DEFAULT_CMDLINE, MAX_DRIVES, MAX_NETS, API_DEFAULT_SOCK);
}

/* A descriptor number given to flint (--wait-fd, --status-fd,
 * --control-fd, --phase-fd, --net user's fd=): decimal, 3 to WAIT_FD_MAX
 * (0-2 are stdin, stdout and stderr). The number, or -1 for anything else. */
static int fd_number(const char *s)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end || errno || fd < 3 || fd > WAIT_FD_MAX)
		return -1;
	return (int)fd;
}

static enum cli_result bad(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);
static enum cli_result bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return CLI_ERROR;
}

int cli_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	uint64_t shift = 20;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1] &&
	    !(toupper((unsigned char)end[1]) == 'I' && end[2] == 'B' && !end[3]) &&
	    !(toupper((unsigned char)end[1]) == 'B' && !end[2]))
		return -EINVAL;
	if (v > (1ULL << 40) >> shift)
		return -EINVAL;
	v <<= shift;
	if (v < (16ULL << 20) || v % 4096)
		return -EINVAL;
	*bytes = v;
	return 0;
}

/* Firecracker's instance id: 1 to 64 of [A-Za-z0-9_-]. */
static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* A count (of microseconds, of bytes): decimal digits only. */
static int parse_count(const char *s, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A log level by Firecracker's name, any case ("info", "Warn" too). */
static int parse_level(const char *s, enum vmc_log_level *out)
{
	static const enum vmc_log_level all[] = {VMC_LOG_ERROR, VMC_LOG_WARNING, VMC_LOG_INFO,
						 VMC_LOG_DEBUG, VMC_LOG_TRACE,	 VMC_LOG_OFF};

	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (!strcasecmp(s, vmc_log_level_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	if (!strcasecmp(s, "warn")) {
		*out = VMC_LOG_WARNING;
		return 0;
	}
	return -EINVAL;
}

/* flint run's options together: a command, unless it only saves a
 * snapshot; with --restore, the snapshot's machine and the snapshot
 * options flint run can honour (its vsock socket is its own, and it
 * resumes the VM itself). */
/* A shell variable's name, as the whole of [s, end). */
static bool shell_name(const char *s, const char *end)
{
	if (s == end || isdigit((unsigned char)*s))
		return false;
	for (; s < end; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* --drive-override ID=PATH: an ID a drive can have (vm_config.h's limit),
 * each once, and a path. 0 or -EINVAL with err set. */
static int drive_override(struct config *cfg, const char *val, char *err, size_t errlen)
{
	const char *eq = strchr(val, '=');

	if (!eq || eq == val || !eq[1] || eq - val > VMC_MAX_ID) {
		bad(err, errlen,
		    "--drive-override %.80s: expected ID=PATH, ID the snapshot's drive id (1 to "
		    "%d bytes)",
		    val, VMC_MAX_ID);
		return -EINVAL;
	}
	for (unsigned i = 0; i < cfg->n_drive_override; i++)
		if (!strncmp(cfg->drive_override[i], val, eq - val + 1)) {
			bad(err, errlen, "--drive-override: drive '%.*s' given twice",
			    (int)(eq - val), val);
			return -EINVAL;
		}
	if (cfg->n_drive_override == MAX_DRIVES) {
		bad(err, errlen, "--drive-override: at most %d", MAX_DRIVES);
		return -EINVAL;
	}
	cfg->drive_override[cfg->n_drive_override++] = val;
	return 0;
}

enum run_opt { RUN_OPT_ENV, RUN_OPT_WORKDIR, RUN_OPT_ATTACH };

/* The first of list's n whose name is entry e's, or n for none. */
static size_t name_index(const char *e, char *const *list, size_t n)
{
	size_t k = strcspn(e, "=") + 1, i;

	for (i = 0; i < n && strncmp(list[i], e, k); i++)
		;
	return i;
}

static bool same_name(const char *e, char *const *list, size_t n)
{
	return name_index(e, list, n) < n;
}

/* flint run's --env NAME=VALUE (repeatable), --workdir DIR and --attach
 * UDS. argc bounds how many --env there can be. 0 or -EINVAL with err. */
static int run_string_option(struct config *cfg, enum run_opt o, const char *val, int argc,
			     char *err, size_t errlen)
{
	const char *eq = strchr(val, '=');

	switch (o) {
	case RUN_OPT_ENV:
		if (!eq || !shell_name(val, eq)) {
			bad(err, errlen,
			    "--env %.64s%s: expected NAME=VALUE, NAME a shell variable name "
			    "(letters, digits and '_', not starting with a digit)",
			    val, strlen(val) > 64 ? "..." : "");
			return -EINVAL;
		}
		if (cfg->nenv == AGENT_ENVC_MAX) {
			bad(err, errlen, "--env: at most %u entries", AGENT_ENVC_MAX);
			return -EINVAL;
		}
		if (!cfg->env && !(cfg->env = calloc((size_t)argc + 1, sizeof(*cfg->env)))) {
			bad(err, errlen, "out of memory");
			return -ENOMEM;
		}
		/* The last of one name's entries wins, as for --env-file (the
		 * guest's programs would otherwise read one or another). */
		size_t i = name_index(val, cfg->env, cfg->nenv);
		if (i < cfg->nenv) {
			cfg->env[i] = (char *)val;
			return 0;
		}
		/* Each --env takes at least one of the argc words. */
		cfg->env[cfg->nenv++] = (char *)val;
		return 0;
	case RUN_OPT_WORKDIR:
		if (val[0] != '/') {
			bad(err, errlen,
			    "--workdir %.64s: expected an absolute path in the guest (starting "
			    "with /)",
			    val);
			return -EINVAL;
		}
		cfg->workdir = val;
		return 0;
	case RUN_OPT_ATTACH:
		/* sun_path holds 108 bytes with its NUL. */
		if (!*val || strlen(val) > 107) {
			bad(err, errlen,
			    "--attach %.64s: expected the path of a vsock device's Unix "
			    "socket, 1 to 107 bytes",
			    val);
			return -EINVAL;
		}
		cfg->attach = val;
		return 0;
	}
	return -EINVAL;
}

/* A size of flint run's (--scratch, --copy-out-limit: opt) into *out. 0,
 * or -EINVAL with err saying what it takes. */
static int run_size_option(const char *opt, const char *val, uint64_t *out, char *err,
			   size_t errlen)
{
	if (!cli_parse_size(val, out))
		return 0;
	bad(err, errlen,
	    "--%s %.64s: expected a size such as 512M or 4G (suffix K, M, G or T; "
	    "a number alone is MiB), from 16M to 1T and a multiple of 4K",
	    opt, val);
	return -EINVAL;
}

/* flint run's --image PATH (what PATH holds is judged when the VM is made)
 * and --scratch SIZE. 0 or -EINVAL with err. */
static int run_image_option(struct config *cfg, bool image, const char *val, char *err,
			    size_t errlen)
{
	if (image) {
		if (!*val) {
			bad(err, errlen,
			    "--image: expected a directory, a tar archive or an ext4 "
			    "image");
			return -EINVAL;
		}
		cfg->image = val;
	} else if (*val == '/') {
		/* A scratch disk made by the caller (flint-jail), kept. */
		cfg->scratch_file = val;
	} else {
		return run_size_option("scratch", val, &cfg->scratch, err, errlen);
	}
	return 0;
}

/* Whether an absolute path has a "." or ".." component. */
static bool has_dots(const char *p)
{
	for (const char *c = p; *c;) {
		size_t n;

		c += strspn(c, "/");
		n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && !strncmp(c, "..", 2)))
			return true;
		c += n;
	}
	return false;
}

/* Whether two options name one inherited descriptor (--phase-fd,
 * --wait-fd, --status-fd, --control-fd, --net user,fd=N): a message in err
 * then. Each reads or writes its own: two sharing one would each take
 * half of what comes, or mix their writes. */
static bool fds_shared(const struct config *cfg, char *err, size_t errlen)
{
	struct {
		const char *opt;
		int fd;
	} v[4 + MAX_NETS];
	size_t n = 0;

	v[n++] = (typeof(v[0])){"--phase-fd", cfg->phase_fd};
	v[n++] = (typeof(v[0])){"--wait-fd", cfg->wait_fd};
	v[n++] = (typeof(v[0])){"--status-fd", cfg->status_fd};
	v[n++] = (typeof(v[0])){"--control-fd", cfg->control_fd};
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (cfg->nets[i].user)
			v[n++] = (typeof(v[0])){"--net user,fd", cfg->nets[i].fd};
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (v[i].fd > 0 && v[i].fd == v[j].fd) {
				bad(err, errlen, "%s %d: that descriptor is %s's too", v[j].opt,
				    v[j].fd, v[i].opt);
				return true;
			}
	return false;
}

int cli_parse_copy(const char *s, bool out, struct copy_cfg *c, char *err, size_t errlen)
{
	const char *opt = out ? "--copy-out" : "--copy-in",
		   *colon = out ? strchr(s, ':') : strrchr(s, ':');
	const char *form = out ? "GUEST:HOST" : "HOST:GUEST";
	char *src, *dst, *guest;
	size_t n;

	*c = (struct copy_cfg){0};
	if (!colon || colon == s || !colon[1]) {
		bad(err, errlen, "%s %.200s: expected %s, neither part empty", opt, s, form);
		return -EINVAL;
	}
	src = strndup(s, (size_t)(colon - s));
	dst = strdup(colon + 1);
	if (!src || !dst) {
		free(src);
		free(dst);
		bad(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* "DIR/.": the contents of DIR ("." alone is a directory too). */
	n = strlen(src);
	if (n >= 2 && !strcmp(src + n - 2, "/.")) {
		c->contents = true;
		src[n - 2 > 0 ? n - 2 : 1] = '\0';
	}
	c->host = out ? dst : src;
	c->guest = guest = out ? src : dst;
	if (guest[0] != '/') {
		bad(err, errlen, "%s %.200s: the guest's path %.200s is not absolute", opt, s,
		    guest);
		goto bad;
	}
	if (strlen(guest) >= 4096 || has_dots(guest)) {
		bad(err, errlen,
		    "%s %.200s: the guest's path has a '.' or '..' component, or is too "
		    "long: a path escaping its place is refused",
		    opt, s);
		goto bad;
	}
	if (out && guest[strspn(guest, "/")] == '\0') {
		bad(err, errlen, "%s %.200s: name a directory under /, not / itself", opt, s);
		goto bad;
	}
	return 0;
bad:
	free(c->host);
	free(c->guest);
	*c = (struct copy_cfg){0};
	return -EINVAL;
}

int cli_parse_user(const char *s, uint32_t *uid, uint32_t *gid)
{
	unsigned long long v[2] = {0, AGENT_GID_DEFAULT};
	const char *p = s;

	for (int i = 0; i < 2; i++) {
		char *end;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		errno = 0;
		v[i] = strtoull(p, &end, 10);
		if (errno || v[i] >= UINT32_MAX)
			return -EINVAL;
		if (*end == '\0')
			break;
		if (*end != ':' || i == 1)
			return -EINVAL;
		p = end + 1;
	}
	*uid = (uint32_t)v[0];
	*gid = (uint32_t)v[1];
	return 0;
}

/* One --env-file's lines into out (their NAME=VALUE strings, pointing into
 * data, which the lines are cut in), as Docker reads one: a UTF-8 byte
 * order mark, a line's leading blanks and its CR before the newline (a
 * file saved on Windows) left out; blank lines and comments ('#' first)
 * skipped; a value as it stands, quotes too. Returns how many, or
 * -errno. */
static int env_lines(const char *file, char *data, size_t len, char **out, char *err, size_t errlen)
{
	int n = 0, line = 0;
	char *c = data;

	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		c += 3;
	while (c < data + len) {
		char *nl = memchr(c, '\n', (size_t)(data + len - c)), *eq;

		if (!nl)
			nl = data + len;
		*nl = '\0';
		if (nl > c && nl[-1] == '\r')
			nl[-1] = '\0';
		line++;
		c += strspn(c, " \t");
		if (*c && *c != '#') {
			eq = strchr(c, '=');
			if (!eq || !shell_name(c, eq)) {
				bad(err, errlen,
				    "--env-file %.200s: line %d: expected NAME=VALUE, NAME a shell "
				    "variable name",
				    file, line);
				return -EINVAL;
			}
			if (strlen(c) >= AGENT_STR_MAX) {
				bad(err, errlen,
				    "--env-file %.200s: line %d: %.*s is longer than the guest "
				    "agent "
				    "takes (%u bytes)",
				    file, line, (int)(eq - c), c, AGENT_STR_MAX - 1);
				return -E2BIG;
			}
			out[n++] = c;
		}
		c = nl + 1;
	}
	return n;
}

static enum cli_result check_request(const struct config *cfg, char *err, size_t errlen);

int cli_load_env_files(struct config *cfg, char *err, size_t errlen)
{
	size_t total = 0, n = 0;
	char **lines = NULL, **env;
	int ret = 0;

	for (unsigned i = 0; i < cfg->n_env_files; i++) {
		const char *f = cfg->env_files[i];
		FILE *fp = fopen(f, "re");
		size_t got;
		char **more;

		if (!fp || !(cfg->env_data[i] = malloc(ENV_FILE_MAX + 1))) {
			ret = fp ? -ENOMEM : -errno;
			bad(err, errlen, "--env-file %.200s: %s", f, strerror(-ret));
			if (fp)
				fclose(fp);
			goto out;
		}
		errno = 0;
		got = fread(cfg->env_data[i], 1, ENV_FILE_MAX + 1, fp);
		ret = ferror(fp) ? (errno ? -errno : -EIO) : got > ENV_FILE_MAX ? -EFBIG : 0;
		fclose(fp);
		if (ret < 0) {
			/* a directory opens, and its read says EISDIR */
			bad(err, errlen, "--env-file %.200s: %s", f,
			    ret == -EFBIG ? "larger than 1 MiB" : strerror(-ret));
			goto out;
		}
		/* At most one entry per two bytes ("A=" and its newline: three). */
		if (!(more = realloc(lines, (total + got / 2 + 1) * sizeof(*lines)))) {
			ret = -ENOMEM;
			bad(err, errlen, "out of memory");
			goto out;
		}
		lines = more;
		ret = env_lines(f, cfg->env_data[i], got, lines + total, err, errlen);
		if (ret < 0)
			goto out;
		total += (size_t)ret;
		ret = 0;
	}
	if (!total)
		goto out;
	if (!(env = calloc(total + cfg->nenv + 1, sizeof(*env)))) {
		ret = -ENOMEM;
		bad(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < total; i++)
		if (!same_name(lines[i], lines + i + 1, total - i - 1) &&
		    !same_name(lines[i], cfg->env, cfg->nenv))
			env[n++] = lines[i];
	for (unsigned i = 0; i < cfg->nenv; i++)
		env[n++] = cfg->env[i];
	if (n > AGENT_ENVC_MAX) {
		free(env);
		ret = -E2BIG;
		bad(err, errlen, "--env-file: at most %u environment entries", AGENT_ENVC_MAX);
		goto out;
	}
	free(cfg->env);
	cfg->env = env;
	cfg->nenv = (unsigned)n;
	/* All of them with the command and --workdir in one agent request. */
	if (check_request(cfg, err, errlen) != CLI_RUN)
		ret = -E2BIG;
out:
	free(lines);
	return ret;
}

enum run_copy_opt { RUN_OPT_COPY_IN, RUN_OPT_COPY_OUT, RUN_OPT_ENV_FILE, RUN_OPT_USER };

/* flint run's --copy-in, --copy-out, --env-file and --user. 0 or -errno
 * with err. */
static int run_copy_option(struct config *cfg, enum run_copy_opt o, const char *val, char *err,
			   size_t errlen)
{
	bool out = o == RUN_OPT_COPY_OUT;
	unsigned *n = out ? &cfg->n_copy_out : &cfg->n_copy_in;

	switch (o) {
	case RUN_OPT_COPY_IN:
	case RUN_OPT_COPY_OUT:
		if (*n == MAX_COPIES) {
			bad(err, errlen, "--copy-%s: at most %d", out ? "out" : "in", MAX_COPIES);
			return -EINVAL;
		}
		if (cli_parse_copy(val, out, &(out ? cfg->copy_out : cfg->copy_in)[*n], err,
				   errlen) < 0)
			return -EINVAL;
		(*n)++;
		return 0;
	case RUN_OPT_ENV_FILE:
		if (!*val || cfg->n_env_files == MAX_ENV_FILES) {
			bad(err, errlen, "--env-file: %s", *val ? "at most 16" : "expected a file");
			return -EINVAL;
		}
		cfg->env_files[cfg->n_env_files++] = val;
		return 0;
	case RUN_OPT_USER:
		if (cli_parse_user(val, &cfg->uid, &cfg->gid) < 0) {
			bad(err, errlen,
			    "--user %.64s: expected UID or UID:GID, numbers from 0 to 4294967294 "
			    "(names are the guest's to know)",
			    val);
			return -EINVAL;
		}
		cfg->user = true;
		return 0;
	}
	return -EINVAL;
}

/* The command, --env and --workdir go to the agent in one request: refuse
 * here, naming them, what agent_request_encode would refuse later. */
static enum cli_result check_request(const struct config *cfg, char *err, size_t errlen)
{
	size_t total = AGENT_REQ_FIXED;
	const char *wd = cfg->workdir ? cfg->workdir : "/";

	if (cfg->guest_argc > (int)AGENT_ARGC_MAX)
		return bad(err, errlen, "flint run: at most %u words in the command",
			   AGENT_ARGC_MAX);
	if (cfg->guest_argc && !cfg->guest_argv[0][0])
		return bad(err, errlen, "flint run: the command's name is empty");
	for (int i = 0; i < cfg->guest_argc; i++)
		total += strlen(cfg->guest_argv[i]) + 1;
	for (unsigned i = 0; i < cfg->nenv; i++) {
		size_t n = strlen(cfg->env[i]);

		if (n >= AGENT_STR_MAX)
			return bad(err, errlen,
				   "--env %.*s: longer than the guest agent takes (%u bytes)",
				   (int)(strchr(cfg->env[i], '=') - cfg->env[i]), cfg->env[i],
				   AGENT_STR_MAX - 1);
		total += n + 1;
	}
	if (strlen(wd) >= AGENT_STR_MAX)
		return bad(err, errlen, "--workdir: longer than the guest agent takes (%u bytes)",
			   AGENT_STR_MAX - 1);
	total += strlen(wd) + 1;
	if (total > AGENT_REQUEST_MAX)
		return bad(err, errlen,
			   "flint run: the command's words, --env entries and --workdir take %zu "
			   "bytes; the guest agent takes at most %u in one request",
			   total, AGENT_REQUEST_MAX);
	return CLI_RUN;
}

/* flint run --attach: the agent of a VM that runs elsewhere; nothing here
 * makes or restores a machine. */
static enum cli_result check_attach(const struct config *cfg, bool machine, bool restoring,
				    char *err, size_t errlen)
{
	const char *what = machine ? "machine options (--kernel, --rootfs, --mem, ...)"
			   : cfg->restore || restoring ? "--restore and the snapshot options"
			   : cfg->save_snapshot || cfg->save_mem || cfg->save_after
			       ? "--save-snapshot, --save-mem and --save-after"
			   : cfg->wait_fd ? "--wait-fd"
			   : cfg->stats	  ? "--stats"
					  : NULL;

	if (what)
		return bad(err, errlen,
			   "flint run --attach: the VM is running already: %s cannot "
			   "be combined with --attach",
			   what);
	if (cfg->guest_argc == 0)
		return bad(err, errlen,
			   "flint run --attach: no command; usage: flint run --attach "
			   "UDS [options] -- COMMAND ARGS...");
	return check_request(cfg, err, errlen);
}

static enum cli_result check_run(const struct config *cfg, char *err, size_t errlen)
{
	bool machine = cfg->kernel || cfg->initrd || cfg->cmdline || cfg->append || cfg->ndrives ||
		       cfg->nnets || cfg->vsock.enabled || cfg->rootfs || cfg->image ||
		       cfg->scratch || cfg->mem != DEFAULT_MEM || cfg->vcpus != 1 ||
		       cfg->config_file;
	bool restoring = cfg->mem_file || cfg->uffd_sock || cfg->mem_diff ||
			 cfg->track_dirty_pages || cfg->keep_clock || cfg->n_net_override ||
			 cfg->n_drive_override || cfg->workset || cfg->record_workset;

	if (!cfg->save_snapshot != !cfg->save_mem)
		return bad(err, errlen,
			   "flint run: --save-snapshot FILE and --save-mem FILE go "
			   "together (the state file and the memory file)");
	if (cfg->restore_paused || cfg->vsock_override)
		return bad(err, errlen,
			   "flint run: %s is not an option of flint run, which "
			   "resumes the VM itself on a vsock socket of its own",
			   cfg->restore_paused ? "--paused" : "--vsock-override");
	/* Accepted by the parser for flint alone: flint run would ignore
	 * them, and run another machine than the one asked for (with
	 * --restore or --attach, --config-file is a machine option, refused
	 * below as the others are), or write no metrics and serve no MMDS. */
	const char *api_only = cfg->config_file && !cfg->restore && !cfg->attach ? "--config-file"
			       : cfg->api_sock					 ? "--api-sock"
			       : cfg->no_api					 ? "--no-api"
			       : cfg->http_max_body   ? "--http-api-max-payload-size"
			       : cfg->metrics_path    ? "--metrics-path"
			       : cfg->metadata	      ? "--metadata"
			       : cfg->mmds_size_limit ? "--mmds-size-limit"
						      : NULL;
	if (api_only)
		return bad(err, errlen,
			   "flint run: %s is not an option of flint run, which makes its "
			   "machine from its own options and serves no API, metrics file or "
			   "MMDS (--stats prints its counters at the end)",
			   api_only);
	if (cfg->attach)
		return check_attach(cfg, machine, restoring, err, errlen);
	if (cfg->save_after && (!cfg->save_snapshot || cfg->guest_argc == 0))
		return bad(err, errlen,
			   "flint run: --save-after needs --save-snapshot FILE, "
			   "--save-mem FILE and a command: it saves the VM once the "
			   "command has exited 0");
	if (restoring && !cfg->restore)
		return bad(err, errlen, "the snapshot options need --restore FILE");
	if (cfg->restore) {
		if (cfg->save_snapshot)
			return bad(err, errlen,
				   "flint run: --restore and --save-snapshot cannot "
				   "be combined");
		if (machine)
			return bad(err, errlen,
				   "flint run --restore: the snapshot describes the "
				   "whole machine: it cannot be combined with machine "
				   "options (--kernel, --rootfs, --mem, --drive, ...)");
		if (!cfg->mem_file == !cfg->uffd_sock)
			return bad(err, errlen,
				   "--restore needs exactly one of --mem-file FILE "
				   "and --uffd-sock PATH");
		if (cfg->mem_diff && !cfg->mem_file)
			return bad(err, errlen, "--mem-diff needs --mem-file");
		if (cfg->guest_argc == 0)
			return bad(err, errlen,
				   "flint run --restore: no command; usage: flint run "
				   "--restore FILE --mem-file FILE -- COMMAND ARGS...");
	} else if (cfg->wait_fd) {
		return bad(err, errlen,
			   "flint run: --wait-fd needs --restore FILE: only a "
			   "restored VM waits, paused, for its go");
	}
	if ((cfg->scratch || cfg->scratch_file) && !cfg->image)
		return bad(err, errlen,
			   "flint run: --scratch is the writable layer over --image's "
			   "userland: it needs --image PATH");
	if ((cfg->scratch || cfg->scratch_file) && cfg->save_snapshot)
		return bad(err, errlen,
			   "flint run: --scratch and --save-snapshot cannot be "
			   "combined: the scratch disk is removed when flint ends");
	if (cfg->guest_argc == 0 && !cfg->save_snapshot)
		return bad(err, errlen,
			   "flint run: no command; usage: flint run [options] -- "
			   "COMMAND ARGS...");
	if (cfg->status_fd && cfg->guest_argc == 0)
		return bad(err, errlen,
			   "flint run: --status-fd is for the command's status, and there is no "
			   "command");
	if (cfg->guest_argc == 0 && (cfg->nenv || cfg->workdir || cfg->n_env_files || cfg->user ||
				     cfg->n_copy_in || cfg->n_copy_out))
		return bad(err, errlen, "flint run: %s is for the command, and there is none",
			   cfg->nenv	      ? "--env"
			   : cfg->workdir     ? "--workdir"
			   : cfg->n_env_files ? "--env-file"
			   : cfg->user	      ? "--user"
			   : cfg->n_copy_in   ? "--copy-in"
					      : "--copy-out");
	return check_request(cfg, err, errlen);
}

/* Why flint refuses one of Firecracker's options. */
static const char *fc_refused(const char *name)
{
	if (!strcmp(name, "seccomp-filter"))
		return "flint's seccomp filters are built in, one per kind of flint thread; "
		       "a Firecracker filter file names Firecracker's threads and calls, not "
		       "flint's (--no-seccomp turns flint's off, --seccomp-log logs instead "
		       "of killing)";
	return "flint's devices are on virtio-mmio only, no PCI";
}

static enum cli_result parse(int argc, char **argv, struct config *cfg, char *err, size_t errlen)
{
	enum {
		O_KERNEL = 256,
		O_INITRD,
		O_MEM,
		O_VCPUS,
		O_CMDLINE,
		O_APPEND,
		O_CONSOLE,
		O_DRIVE,
		O_NET,
		O_VSOCK,
		O_STATS,
		O_VERBOSE,
		O_CHECK,
		O_HELP,
		O_VERSION,
		O_ROOTFS,
		O_TIMEOUT,
		O_TIMINGS,
		O_SECCOMP_LOG,
		O_SECCOMP_TEST,
		O_API_SOCK,
		O_CONFIG_FILE,
		O_NO_API,
		O_ID,
		O_LEVEL,
		O_LOG_PATH,
		O_METRICS_PATH,
		O_SHOW_LEVEL,
		O_SHOW_ORIGIN,
		O_RESTORE,
		O_MEM_FILE,
		O_UFFD_SOCK,
		O_MEM_DIFF,
		O_PAUSED,
		O_TRACK_DIRTY,
		O_KEEP_CLOCK,
		O_NET_OVERRIDE,
		O_VSOCK_OVERRIDE,
		O_WORKSET,
		O_RECORD_WORKSET,
		O_SAVE_SNAPSHOT,
		O_SAVE_MEM,
		O_WAIT_FD,
		O_STATUS_FD,
		O_ENV,
		O_WORKDIR,
		O_SAVE_AFTER,
		O_ATTACH,
		O_CONTROL_FD,
		O_DRIVE_OVERRIDE,
		O_IMAGE,
		O_SCRATCH,
		O_COPY_IN,
		O_COPY_OUT,
		O_COPY_TIMEOUT,
		O_COPY_OUT_LIMIT,
		O_ENV_FILE,
		O_USER,
		O_PHASE_FD,
		O_MODULE,
		O_START_TIME,
		O_START_CPU,
		O_PARENT_CPU,
		O_BOOT_TIMER,
		O_HTTP_MAX,
		O_NO_SECCOMP,
		O_SNAPSHOT_VERSION,
		O_DESCRIBE_SNAPSHOT,
		O_FC_REFUSED,
		O_METADATA,
		O_MMDS_LIMIT,
	};
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, O_KERNEL},
	    {"initrd", required_argument, NULL, O_INITRD},
	    {"mem", required_argument, NULL, O_MEM},
	    {"vcpus", required_argument, NULL, O_VCPUS},
	    {"cmdline", required_argument, NULL, O_CMDLINE},
	    {"append", required_argument, NULL, O_APPEND},
	    {"console", required_argument, NULL, O_CONSOLE},
	    {"drive", required_argument, NULL, O_DRIVE},
	    {"net", required_argument, NULL, O_NET},
	    {"vsock", required_argument, NULL, O_VSOCK},
	    {"rootfs", required_argument, NULL, O_ROOTFS},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"timings", no_argument, NULL, O_TIMINGS},
	    {"save-snapshot", required_argument, NULL, O_SAVE_SNAPSHOT},
	    {"save-mem", required_argument, NULL, O_SAVE_MEM},
	    {"wait-fd", required_argument, NULL, O_WAIT_FD},
	    {"status-fd", required_argument, NULL, O_STATUS_FD},
	    {"stats", no_argument, NULL, O_STATS},
	    {"verbose", no_argument, NULL, O_VERBOSE},
	    {"check-kvm", no_argument, NULL, O_CHECK},
	    {"seccomp-log", no_argument, NULL, O_SECCOMP_LOG},
	    /* Not in --help: for tests of the filters only. */
	    {"seccomp-test-forbidden", required_argument, NULL, O_SECCOMP_TEST},
	    /* Not in --help: flint bench's (core/phases.h). */
	    {"phase-fd", required_argument, NULL, O_PHASE_FD},
	    {"api-sock", required_argument, NULL, O_API_SOCK},
	    {"config-file", required_argument, NULL, O_CONFIG_FILE},
	    {"no-api", no_argument, NULL, O_NO_API},
	    {"id", required_argument, NULL, O_ID},
	    {"level", required_argument, NULL, O_LEVEL},
	    {"log-path", required_argument, NULL, O_LOG_PATH},
	    {"metrics-path", required_argument, NULL, O_METRICS_PATH},
	    {"show-level", no_argument, NULL, O_SHOW_LEVEL},
	    {"show-log-origin", no_argument, NULL, O_SHOW_ORIGIN},
	    {"module", required_argument, NULL, O_MODULE},
	    {"start-time-us", required_argument, NULL, O_START_TIME},
	    {"start-time-cpu-us", required_argument, NULL, O_START_CPU},
	    {"parent-cpu-time-us", required_argument, NULL, O_PARENT_CPU},
	    {"boot-timer", no_argument, NULL, O_BOOT_TIMER},
	    {"http-api-max-payload-size", required_argument, NULL, O_HTTP_MAX},
	    {"no-seccomp", no_argument, NULL, O_NO_SECCOMP},
	    {"snapshot-version", no_argument, NULL, O_SNAPSHOT_VERSION},
	    {"describe-snapshot", required_argument, NULL, O_DESCRIBE_SNAPSHOT},
	    /* Firecracker's, for what flint does not have: refused, saying so
	     * (fc_refused). */
	    {"seccomp-filter", required_argument, NULL, O_FC_REFUSED},
	    {"enable-pci", no_argument, NULL, O_FC_REFUSED},
	    {"metadata", required_argument, NULL, O_METADATA},
	    {"mmds-size-limit", required_argument, NULL, O_MMDS_LIMIT},
	    {"restore", required_argument, NULL, O_RESTORE},
	    {"mem-file", required_argument, NULL, O_MEM_FILE},
	    {"uffd-sock", required_argument, NULL, O_UFFD_SOCK},
	    {"mem-diff", required_argument, NULL, O_MEM_DIFF},
	    {"paused", no_argument, NULL, O_PAUSED},
	    {"track-dirty-pages", no_argument, NULL, O_TRACK_DIRTY},
	    {"keep-clock", no_argument, NULL, O_KEEP_CLOCK},
	    {"net-override", required_argument, NULL, O_NET_OVERRIDE},
	    {"vsock-override", required_argument, NULL, O_VSOCK_OVERRIDE},
	    {"workset", required_argument, NULL, O_WORKSET},
	    {"record-workset", required_argument, NULL, O_RECORD_WORKSET},
	    {"control-fd", required_argument, NULL, O_CONTROL_FD},
	    {"drive-override", required_argument, NULL, O_DRIVE_OVERRIDE},
	    {"env", required_argument, NULL, O_ENV},
	    {"workdir", required_argument, NULL, O_WORKDIR},
	    {"save-after", no_argument, NULL, O_SAVE_AFTER},
	    {"attach", required_argument, NULL, O_ATTACH},
	    {"image", required_argument, NULL, O_IMAGE},
	    {"scratch", required_argument, NULL, O_SCRATCH},
	    {"copy-in", required_argument, NULL, O_COPY_IN},
	    {"copy-out", required_argument, NULL, O_COPY_OUT},
	    {"copy-timeout", required_argument, NULL, O_COPY_TIMEOUT},
	    {"copy-out-limit", required_argument, NULL, O_COPY_OUT_LIMIT},
	    {"env-file", required_argument, NULL, O_ENV_FILE},
	    {"user", required_argument, NULL, O_USER},
	    {"help", no_argument, NULL, O_HELP},
	    {"version", no_argument, NULL, O_VERSION},
	    {0},
	};
	int c, li = 0;

	*cfg = (struct config){.mem = DEFAULT_MEM, .vcpus = 1, .console = CONSOLE_STDIO};
	opterr = 0;
	optind = 1;
	if (argc > 1 && !strcmp(argv[1], "run")) {
		cfg->run = true;
		cfg->console = CONSOLE_NONE;
		optind = 2;
	}
	/* "+" stops at the first non-option so guest words are never parsed. */
	while ((c = getopt_long(argc, argv, "+:", opts, &li)) != -1) {
		/* getopt takes the next word as a value, "--" too: an option
		 * left without one before the guest's words. */
		if (optarg && !strcmp(optarg, "--") && optind >= 2 &&
		    !strcmp(argv[optind - 1], "--"))
			return bad(err, errlen,
				   "%s needs a value (it took '--', which starts the "
				   "guest's words)",
				   argv[optind - 2]);
		switch (c) {
		case O_KERNEL:
			cfg->kernel = optarg;
			break;
		case O_INITRD:
			cfg->initrd = optarg;
			break;
		case O_MEM:
			if (cli_parse_size(optarg, &cfg->mem))
				return bad(err, errlen,
					   "--mem %s: expected a size such as 128M or 2G, "
					   "from 16M to 1024G in whole MiB",
					   optarg);
			break;
		case O_VCPUS: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || n < 1 || n > MAX_VCPUS)
				return bad(err, errlen, "--vcpus %s: expected 1 to %d", optarg,
					   MAX_VCPUS);
			cfg->vcpus = n;
			break;
		}
		case O_CMDLINE:
			cfg->cmdline = optarg;
			break;
		case O_APPEND:
			cfg->append = optarg;
			break;
		case O_CONSOLE:
			if (!strcmp(optarg, "stdio"))
				cfg->console = CONSOLE_STDIO;
			else if (!strcmp(optarg, "none"))
				cfg->console = CONSOLE_NONE;
			else
				return bad(err, errlen, "--console %s: expected stdio or none",
					   optarg);
			break;
		case O_DRIVE:
			if (cfg->ndrives == MAX_DRIVES)
				return bad(err, errlen, "--drive: at most %d drives", MAX_DRIVES);
			if (cli_parse_drive(optarg, &cfg->drives[cfg->ndrives], err, errlen))
				return CLI_ERROR;
			cfg->ndrives++;
			break;
		case O_NET:
			if (cfg->nnets == MAX_NETS)
				return bad(err, errlen, "--net: at most %d network devices",
					   MAX_NETS);
			if (cli_parse_net(optarg, &cfg->nets[cfg->nnets], err, errlen))
				return CLI_ERROR;
			cfg->nnets++;
			break;
		case O_VSOCK:
			if (cfg->vsock.enabled)
				return bad(err, errlen, "--vsock: at most one vsock device");
			if (cli_parse_vsock(optarg, &cfg->vsock, err, errlen))
				return CLI_ERROR;
			break;
		case O_ROOTFS:
		case O_TIMEOUT:
		case O_TIMINGS:
		case O_SAVE_SNAPSHOT:
		case O_SAVE_MEM:
		case O_WAIT_FD:
		case O_STATUS_FD:
		case O_ENV:
		case O_WORKDIR:
		case O_SAVE_AFTER:
		case O_ATTACH:
		case O_IMAGE:
		case O_SCRATCH:
		case O_COPY_IN:
		case O_COPY_OUT:
		case O_COPY_TIMEOUT:
		case O_COPY_OUT_LIMIT:
		case O_ENV_FILE:
		case O_USER:
			/* By its name: argv[optind - 1] may be its value. */
			if (!cfg->run)
				return bad(err, errlen, "--%s is an option of flint run",
					   opts[li].name);
			if (c == O_COPY_IN || c == O_COPY_OUT || c == O_ENV_FILE || c == O_USER) {
				if (run_copy_option(cfg,
						    c == O_COPY_IN    ? RUN_OPT_COPY_IN
						    : c == O_COPY_OUT ? RUN_OPT_COPY_OUT
						    : c == O_ENV_FILE ? RUN_OPT_ENV_FILE
								      : RUN_OPT_USER,
						    optarg, err, errlen) < 0)
					return CLI_ERROR;
			} else if (c == O_ENV || c == O_WORKDIR || c == O_ATTACH) {
				if (run_string_option(cfg,
						      c == O_ENV       ? RUN_OPT_ENV
						      : c == O_WORKDIR ? RUN_OPT_WORKDIR
								       : RUN_OPT_ATTACH,
						      optarg, argc, err, errlen) < 0)
					return CLI_ERROR;
			} else if (c == O_IMAGE || c == O_SCRATCH) {
				if (run_image_option(cfg, c == O_IMAGE, optarg, err, errlen) < 0)
					return CLI_ERROR;
			} else if (c == O_COPY_OUT_LIMIT) {
				if (run_size_option("copy-out-limit", optarg, &cfg->copy_out_limit,
						    err, errlen) < 0)
					return CLI_ERROR;
			} else if (c == O_SAVE_AFTER)
				cfg->save_after = true;
			else if (c == O_ROOTFS)
				cfg->rootfs = optarg;
			else if (c == O_SAVE_SNAPSHOT)
				cfg->save_snapshot = optarg;
			else if (c == O_SAVE_MEM)
				cfg->save_mem = optarg;
			else if (c == O_TIMINGS)
				cfg->timings = true;
			else if (c == O_WAIT_FD || c == O_STATUS_FD) {
				int fd = fd_number(optarg);
				if (fd < 0)
					return bad(
					    err, errlen,
					    "--%s %s: expected a file descriptor, 3 to %d "
					    "(0-2 are the command's stdin, stdout and stderr)",
					    opts[li].name, optarg, WAIT_FD_MAX);
				if (c == O_WAIT_FD)
					cfg->wait_fd = fd;
				else
					cfg->status_fd = fd;
			} else {
				char *end;
				errno = 0;
				unsigned long t = strtoul(optarg, &end, 10);
				if (!isdigit((unsigned char)*optarg) || *end || errno || t == 0 ||
				    t > 7 * 24 * 3600)
					return bad(err, errlen,
						   "--%s %s: expected whole seconds, 1 to 604800",
						   opts[li].name, optarg);
				if (c == O_COPY_TIMEOUT)
					cfg->copy_timeout_s = t;
				else
					cfg->timeout_s = t;
			}
			break;
		case O_STATS:
			cfg->stats = true;
			break;
		case O_VERBOSE:
			log_verbose = 1;
			break;
		case O_CHECK:
			cfg->check_kvm = true;
			break;
		case O_SECCOMP_LOG:
			if (cfg->seccomp == SECCOMP_OFF)
				return bad(err, errlen,
					   "--seccomp-log: there are no filters to log "
					   "with --no-seccomp");
			cfg->seccomp = SECCOMP_LOG;
			break;
		case O_NO_SECCOMP:
			if (cfg->seccomp == SECCOMP_LOG)
				return bad(err, errlen,
					   "--no-seccomp: there are no filters to log "
					   "with --seccomp-log");
			cfg->seccomp = SECCOMP_OFF;
			break;
		case O_SNAPSHOT_VERSION:
			cfg->snapshot_version = true;
			break;
		case O_DESCRIBE_SNAPSHOT:
			cfg->describe_snapshot = optarg;
			break;
		case O_FC_REFUSED:
			return bad(err, errlen, "--%s: %s", opts[li].name,
				   fc_refused(opts[li].name));
		case O_METADATA:
			cfg->metadata = optarg;
			break;
		case O_MMDS_LIMIT: {
			uint64_t n;
			if (parse_count(optarg, &n) < 0 || n < 1 || n > CLI_MMDS_MAX_LIMIT)
				return bad(err, errlen,
					   "--mmds-size-limit %s: expected bytes, 1 to %u", optarg,
					   CLI_MMDS_MAX_LIMIT);
			cfg->mmds_size_limit = n;
			break;
		}
		case O_SECCOMP_TEST:
			if (seccomp_thread_by_name(optarg) < 0)
				return bad(err, errlen,
					   "--seccomp-test-forbidden %s: expected main, vcpu, "
					   "evloop, api, control or run",
					   optarg);
			cfg->seccomp_test = optarg;
			break;
		case O_API_SOCK:
			if (!*optarg)
				return bad(err, errlen, "--api-sock: empty path");
			cfg->api_sock = optarg;
			break;
		case O_CONFIG_FILE:
			cfg->config_file = optarg;
			break;
		case O_NO_API:
			cfg->no_api = true;
			break;
		case O_ID:
			if (!valid_id(optarg))
				return bad(err, errlen,
					   "--id %s: expected 1 to 64 letters, digits, '-' or '_'",
					   optarg);
			cfg->id = optarg;
			break;
		case O_LEVEL:
			if (parse_level(optarg, &cfg->level) < 0)
				return bad(
				    err, errlen,
				    "--level %s: expected Error, Warning, Info, Debug, Trace "
				    "or Off",
				    optarg);
			cfg->has_level = true;
			break;
		case O_LOG_PATH:
			cfg->log_path = optarg;
			break;
		case O_METRICS_PATH:
			cfg->metrics_path = optarg;
			break;
		case O_SHOW_LEVEL:
			cfg->show_level = true;
			break;
		case O_SHOW_ORIGIN:
			cfg->show_log_origin = true;
			break;
		case O_MODULE:
			if (!*optarg)
				return bad(err, errlen, "--module: expected a source file prefix");
			cfg->module = optarg;
			break;
		case O_START_TIME:
		case O_START_CPU:
		case O_PARENT_CPU: {
			uint64_t *at = c == O_START_TIME  ? &cfg->start_time_us
				       : c == O_START_CPU ? &cfg->start_time_cpu_us
							  : &cfg->parent_cpu_time_us;
			if (parse_count(optarg, at) < 0)
				return bad(err, errlen,
					   "--%s %s: expected microseconds (0 or more)",
					   opts[li].name, optarg);
			*(c == O_START_TIME  ? &cfg->has_start_time
			  : c == O_START_CPU ? &cfg->has_start_time_cpu
					     : &cfg->has_parent_cpu_time) = true;
			break;
		}
		case O_BOOT_TIMER:
			break;
		case O_HTTP_MAX: {
			uint64_t n;
			if (parse_count(optarg, &n) < 0 || n < 1 || n > CLI_HTTP_MAX_BODY)
				return bad(
				    err, errlen,
				    "--http-api-max-payload-size %s: expected bytes, 1 to %u",
				    optarg, CLI_HTTP_MAX_BODY);
			cfg->http_max_body = n;
			break;
		}
		case O_RESTORE:
			cfg->restore = optarg;
			break;
		case O_MEM_FILE:
			cfg->mem_file = optarg;
			break;
		case O_UFFD_SOCK:
			cfg->uffd_sock = optarg;
			break;
		case O_MEM_DIFF:
			cfg->mem_diff = optarg;
			break;
		case O_PAUSED:
			cfg->restore_paused = true;
			break;
		case O_TRACK_DIRTY:
			cfg->track_dirty_pages = true;
			break;
		case O_KEEP_CLOCK:
			cfg->keep_clock = true;
			break;
		case O_NET_OVERRIDE: {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || !eq[1])
				return bad(err, errlen, "--net-override %s: expected IFACE=TAP",
					   optarg);
			if (cfg->n_net_override == MAX_NETS)
				return bad(err, errlen, "--net-override: at most %d", MAX_NETS);
			cfg->net_override[cfg->n_net_override++] = optarg;
			break;
		}
		case O_VSOCK_OVERRIDE:
			cfg->vsock_override = optarg;
			break;
		case O_DRIVE_OVERRIDE:
			if (drive_override(cfg, optarg, err, errlen) < 0)
				return CLI_ERROR;
			break;
		case O_WORKSET:
			cfg->workset = optarg;
			break;
		case O_RECORD_WORKSET:
			cfg->record_workset = optarg;
			break;
		case O_CONTROL_FD:
			if (cfg->run)
				return bad(err, errlen,
					   "--control-fd is an option of flint --restore, "
					   "not of flint run");
			if ((cfg->control_fd = fd_number(optarg)) < 0)
				return bad(err, errlen,
					   "--control-fd %s: expected a file descriptor, 3 to %d",
					   optarg, WAIT_FD_MAX);
			break;
		case O_PHASE_FD:
			if ((cfg->phase_fd = fd_number(optarg)) < 0)
				return bad(err, errlen,
					   "--phase-fd %s: expected a file descriptor, 3 to %d",
					   optarg, WAIT_FD_MAX);
			break;
		case O_HELP:
			cli_usage();
			return CLI_EXIT_OK;
		case O_VERSION:
			printf("flint %s\n", FLINT_VERSION);
			return CLI_EXIT_OK;
		case ':':
			return bad(err, errlen, "%s needs a value", argv[optind - 1]);
		default:
			return bad(err, errlen, "unknown option %s (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
		return bad(err, errlen, "unexpected argument %s; put guest commands after --",
			   argv[optind]);
	cfg->guest_argv = &argv[optind];
	cfg->guest_argc = argc - optind;
	if (fds_shared(cfg, err, errlen))
		return CLI_ERROR;
	if (cfg->run)
		return check_run(cfg, err, errlen);
	bool machine = cfg->kernel || cfg->initrd || cfg->cmdline || cfg->append || cfg->ndrives ||
		       cfg->nnets || cfg->vsock.enabled || cfg->mem != DEFAULT_MEM ||
		       cfg->vcpus != 1 || cfg->guest_argc;
	if (!cfg->kernel && !cfg->config_file && machine)
		return bad(err, errlen,
			   "no kernel given: use --kernel FILE, or describe the "
			   "machine with --config-file or through the API (see --help)");
	if (cfg->no_api && !cfg->config_file)
		return bad(err, errlen,
			   "--no-api needs --config-file: without the API, the file "
			   "is the only way to describe the machine");
	bool restoring = cfg->mem_file || cfg->uffd_sock || cfg->mem_diff || cfg->restore_paused ||
			 cfg->track_dirty_pages || cfg->keep_clock || cfg->n_net_override ||
			 cfg->n_drive_override || cfg->vsock_override || cfg->workset ||
			 cfg->record_workset;
	if (cfg->control_fd && !cfg->restore)
		return bad(err, errlen,
			   "--control-fd needs --restore FILE: only a VM restored "
			   "from a snapshot can be reset to it");
	if (restoring && !cfg->restore)
		return bad(err, errlen, "the snapshot options need --restore FILE");
	if (cfg->restore) {
		if (machine || cfg->config_file)
			return bad(err, errlen,
				   "--restore: the snapshot describes the whole machine: "
				   "it cannot be combined with --config-file or machine "
				   "options (--kernel, --mem, --drive, ...)");
		if (!cfg->mem_file == !cfg->uffd_sock)
			return bad(err, errlen,
				   "--restore needs exactly one of --mem-file FILE and "
				   "--uffd-sock PATH");
		if (cfg->mem_diff && !cfg->mem_file)
			return bad(err, errlen, "--mem-diff needs --mem-file");
		if (cfg->restore_paused && (cfg->no_api || !cfg->api_sock))
			return bad(err, errlen,
				   "--paused needs --api-sock: nothing else can resume "
				   "the VM");
	}
	if (cfg->config_file && machine)
		return bad(err, errlen,
			   "--config-file describes the whole machine: it cannot be "
			   "combined with --kernel, --initrd, --cmdline, --append, --mem, "
			   "--vcpus, --drive, --net, --vsock or guest words after --");
	return CLI_RUN;
}

enum cli_result cli_parse(int argc, char **argv, struct config *cfg, char *err, size_t errlen)
{
	enum cli_result r = parse(argc, argv, cfg, err, errlen);

	if (r != CLI_RUN)
		cli_config_free(cfg);
	return r;
}

char *cli_guest_cmdline(const struct config *cfg, const char *devices, size_t max, char *err,
			size_t errlen)
{
	struct cmdline_parts p = {
	    .base = cfg->cmdline ? cfg->cmdline : DEFAULT_CMDLINE,
	    .append = cfg->append,
	    .devices = devices,
	    .words = cfg->guest_argv,
	    /* flint run hands its command to the agent, not to init. */
	    .nwords = cfg->run ? 0 : cfg->guest_argc,
	};
	return cmdline_build(&p, max, err, errlen);
}

/* One KEY[=VALUE] item of an option value (val NULL without '='): 0 when
 * taken; -EINVAL when not, with why set, or left "" for "unexpected". */
typedef int (*kv_fn)(void *out, const char *key, const char *val, char *why, size_t whylen);

/* Split option value s at commas and hand each item to fn. Returns 0, or
 * -errno with err set: "OPT S: WHY", or that the item was unexpected. */
static int parse_kv(const char *opt, const char *s, const char *usage, kv_fn fn, void *out,
		    char *err, size_t errlen)
{
	char *copy = strdup(s), *save = NULL, why[128];
	int r = 0;

	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (char *kv = strtok_r(copy, ",", &save); kv && !r; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = '\0';
		why[0] = '\0';
		if ((r = fn(out, kv, val, why, sizeof(why))) == 0)
			continue;
		if (why[0])
			snprintf(err, errlen, "%s %s: %s", opt, s, why);
		else
			snprintf(err, errlen, "%s %s: unexpected '%s'; expected %s", opt, s, kv,
				 usage);
	}
	free(copy);
	return r;
}

static int set_str(char **dst, const char *val, char *why, size_t whylen)
{
	if (!(*dst = strdup(val))) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int drive_kv(void *out, const char *key, const char *val, char *why, size_t whylen)
{
	struct drive_cfg *d = out;

	if (!strcmp(key, "path") && val && *val && !d->path)
		return set_str(&d->path, val, why, whylen);
	if (!strcmp(key, "id") && val && !d->id) {
		if (strlen(val) > 20) {
			snprintf(why, whylen, "id is longer than 20 bytes");
			return -EINVAL;
		}
		return set_str(&d->id, val, why, whylen);
	}
	if (!strcmp(key, "ro") && !val)
		d->read_only = true;
	else if (!strcmp(key, "direct") && !val)
		d->direct = true;
	else
		return -EINVAL;
	return 0;
}

int cli_parse_drive(const char *s, struct drive_cfg *d, char *err, size_t errlen)
{
	int r;

	*d = (struct drive_cfg){0};
	r = parse_kv("--drive", s, "path=FILE[,ro][,id=NAME][,direct]", drive_kv, d, err, errlen);
	if (!r && !d->path) {
		snprintf(err, errlen, "--drive %s: no path=FILE", s);
		r = -EINVAL;
	}
	if (r) {
		free(d->path);
		free(d->id);
		*d = (struct drive_cfg){0};
	}
	return r;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
				      &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -EINVAL;
		mac[i] = v[i];
	}
	/* A multicast address cannot be a station's. */
	return mac[0] & 1 ? -EINVAL : 0;
}

static int net_kv(void *out, const char *key, const char *val, char *why, size_t whylen)
{
	struct net_cfg *n = out;

	if (!strcmp(key, "tap") && val && *val && !n->tap) {
		/* IFNAMSIZ is 16 with the NUL. */
		if (strlen(val) > 15 || strchr(val, '/')) {
			snprintf(why, whylen, "'%.32s' is not a valid interface name", val);
			return -EINVAL;
		}
		return set_str(&n->tap, val, why, whylen);
	}
	if (!strcmp(key, "user") && !val && !n->user) {
		n->user = true;
		return 0;
	}
	/* user's passt, started by flint-jail: its socket inherited as fd. */
	if (!strcmp(key, "fd") && val && !n->fd) {
		if ((n->fd = fd_number(val)) < 0) {
			snprintf(why, whylen, "fd '%.32s' is not a descriptor number from 3 to %d",
				 val, WAIT_FD_MAX);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "id") && val && *val && !n->id)
		return set_str(&n->id, val, why, whylen);
	if (!strcmp(key, "mac") && val && !n->has_mac) {
		if (parse_mac(val, n->mac)) {
			snprintf(why, whylen,
				 "mac '%.32s' is not a unicast address like 06:00:ac:10:00:02",
				 val);
			return -EINVAL;
		}
		n->has_mac = true;
		return 0;
	}
	return -EINVAL;
}

int cli_parse_net(const char *s, struct net_cfg *n, char *err, size_t errlen)
{
	int r;

	*n = (struct net_cfg){0};
	r = parse_kv("--net", s, "tap=NAME[,mac=MAC][,id=NAME] or user[,mac=MAC][,id=NAME][,fd=N]",
		     net_kv, n, err, errlen);
	if (!r && (!n->tap == !n->user || (n->fd && !n->user))) {
		snprintf(err, errlen, "--net %s: %s", s,
			 n->fd	   ? "fd=N is passt's socket, for user"
			 : n->user ? "tap=NAME and user are two kinds of interface: one of them"
				   : "no tap=NAME (or user)");
		r = -EINVAL;
	}
	if (r) {
		free(n->tap);
		free(n->id);
		*n = (struct net_cfg){0};
	}
	return r;
}

static int vsock_kv(void *out, const char *key, const char *val, char *why, size_t whylen)
{
	struct vsock_cfg *v = out;

	if (!strcmp(key, "cid") && val && !v->cid) {
		char *end;
		errno = 0;
		unsigned long long cid = strtoull(val, &end, 10);
		/* 0-2 are the hypervisor, local and host; -1 is VMADDR_CID_ANY. */
		if (!isdigit((unsigned char)*val) || *end || errno || cid < 3 ||
		    cid >= 0xffffffffULL) {
			snprintf(why, whylen, "cid must be 3 to 4294967294");
			return -EINVAL;
		}
		v->cid = cid;
		return 0;
	}
	if (!strcmp(key, "uds") && val && *val && !v->uds) {
		/* sun_path holds 108 bytes; PATH_<port> must fit too. */
		if (strlen(val) > 96) {
			snprintf(why, whylen, "uds path longer than 96 bytes");
			return -EINVAL;
		}
		return set_str(&v->uds, val, why, whylen);
	}
	return -EINVAL;
}

int cli_parse_vsock(const char *s, struct vsock_cfg *v, char *err, size_t errlen)
{
	int r;

	*v = (struct vsock_cfg){0};
	r = parse_kv("--vsock", s, "cid=N,uds=PATH", vsock_kv, v, err, errlen);
	if (!r && (!v->cid || !v->uds)) {
		snprintf(err, errlen, "--vsock %s: expected cid=N,uds=PATH", s);
		r = -EINVAL;
	}
	if (r) {
		free(v->uds);
		*v = (struct vsock_cfg){0};
		return r;
	}
	v->enabled = true;
	return 0;
}

void cli_config_free(struct config *cfg)
{
	for (unsigned i = 0; i < cfg->ndrives; i++) {
		free(cfg->drives[i].path);
		free(cfg->drives[i].id);
	}
	cfg->ndrives = 0;
	for (unsigned i = 0; i < cfg->nnets; i++) {
		free(cfg->nets[i].tap);
		free(cfg->nets[i].id);
	}
	cfg->nnets = 0;
	free(cfg->vsock.uds);
	cfg->vsock = (struct vsock_cfg){0};
	free(cfg->env);
	cfg->env = NULL;
	cfg->nenv = 0;
	for (unsigned i = 0; i < cfg->n_copy_in; i++) {
		free(cfg->copy_in[i].host);
		free(cfg->copy_in[i].guest);
	}
	cfg->n_copy_in = 0;
	for (unsigned i = 0; i < cfg->n_copy_out; i++) {
		free(cfg->copy_out[i].host);
		free(cfg->copy_out[i].guest);
	}
	cfg->n_copy_out = 0;
	for (unsigned i = 0; i < MAX_ENV_FILES; i++) {
		free(cfg->env_data[i]);
		cfg->env_data[i] = NULL;
	}
}
