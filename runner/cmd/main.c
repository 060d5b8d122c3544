/* flint: boot a Linux microVM with KVM. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/proto.h"
#include "cmd/bench.h"
#include "cmd/copy.h"
#include "cmd/instance.h"
#include "cmd/run.h"
#include "config/cli.h"
#include "config/home.h"
#include "config/vm_config_cli.h"
#include "core/control.h"
#include "core/kvm.h"
#include "core/logger.h"
#include "core/phases.h"
#include "core/seccomp.h"
#include "core/util.h"
#include "core/vm.h"
#include "image/build.h"
#include "image/cache.h"
#include "image/image.h"
#include "serve/server.h"
#include "snapshot/snapfile.h"

/* How long flint run waits for the guest agent (to connect after a boot,
 * to answer after a restore): generous, since a loaded or nested host
 * boots slowly; a crashed guest ends the wait sooner. */
#define RUN_BOOT_TIMEOUT_S 60
/* flint run --attach: the VM runs already, so its agent answers at once
 * unless it is gone or stuck. */
#define RUN_ATTACH_TIMEOUT_S 10

static int check_kvm(void)
{
	char err[512];
	int fd;

	if (kvm_open(&fd, err, sizeof(err)) < 0) {
		pr_err("%s", err);
		return 1;
	}
	close_fd(&fd);
	printf("flint: /dev/kvm is usable\n");
	return 0;
}

/* One --copy-in (out false) or --copy-out for the helper: from where to
 * where, and the run's --user. */
static struct copy_item copy_item_of(const struct config *cfg, const struct copy_cfg *c, bool out)
{
	return (struct copy_item){.src = out ? c->guest : c->host,
				  .dst = out ? c->host : c->guest,
				  .contents = c->contents,
				  .user = cfg->user,
				  .uid = cfg->uid,
				  .gid = cfg->gid};
}

/* --copy-in and --copy-out: the helper process that does them, started
 * here, before any thread (copy.h); *c stays NULL without copies. The
 * copy-ins are read from now on, while the guest boots, except where the
 * run waits for a go byte: then the host's tree is read once it came. */
static int start_copies(const struct config *cfg, const char *uds, struct copier **c)
{
	struct copy_item in[MAX_COPIES], out[MAX_COPIES];

	*c = NULL;
	if (!cfg->n_copy_in && !cfg->n_copy_out)
		return 0;
	for (unsigned i = 0; i < cfg->n_copy_in; i++)
		in[i] = copy_item_of(cfg, &cfg->copy_in[i], false);
	for (unsigned i = 0; i < cfg->n_copy_out; i++)
		out[i] = copy_item_of(cfg, &cfg->copy_out[i], true);
	struct copy_bounds b = {.timeout_ms = cfg->copy_timeout_s * 1000,
				.out_limit = cfg->copy_out_limit};

	return copy_start(c, in, cfg->n_copy_in, out, cfg->n_copy_out, uds, STDERR_FILENO,
			  !cfg->wait_fd, &b);
}

/* What `flint run` adds to the user's configuration, and cleans up:
 * allocated strings, NULL when not set (run_setup_free). */
struct run_setup {
	char *kernel;
	char *append;
	char *dir;	   /* private directory of the vsock socket */
	char *listen_path; /* where the agent's connection arrives */
	char *scratch;	   /* --scratch's disk, removed once opened */
	/* The cache's images the VM boots from (root image, --image), held
	 * (image/cache.h) until flint ends, and --save-snapshot's pin of
	 * them: descriptors, nholds of them (at most those three). */
	int holds[3];
	unsigned nholds;
	char *cached[2]; /* those images' paths, for the pin */
	unsigned ncached;
};

/* The longest kernel command line flint run composes. */
#define RUN_APPEND_MAX 4095

static void run_setup_free(struct run_setup *rs)
{
	free(rs->kernel);
	free(rs->append);
	free(rs->dir);
	free(rs->listen_path);
	free(rs->scratch);
	for (unsigned i = 0; i < rs->nholds; i++)
		close(rs->holds[i]);
	for (unsigned i = 0; i < rs->ncached; i++)
		free(rs->cached[i]);
	*rs = (struct run_setup){0};
}

/* Find a default guest file `name` where h says; if none, say where flint
 * looked and how to point it elsewhere (FLINT_HOME, or the option `opt`). */
static int find_default(const struct home *h, const char *what, const char *name, const char *opt,
			char *out, size_t len)
{
	char where[3 * PATH_MAX + 80];
	int r = home_find(h, name, out, len);

	if (r == -ENOENT) {
		home_describe(h, where, sizeof(where));
		pr_err("flint run: no %s %s in %s; set FLINT_HOME to a directory that holds "
		       "vmlinux and rootfs.ext4, or use %s",
		       what, name, where, opt);
	} else if (r < 0) {
		pr_err("flint run: cannot look for %s: %s", name, strerror(-r));
	}
	return r;
}

/* The vsock device's socket in a private directory: cfg->vsock.uds is
 * "<rs->dir>/vsock". */
static int private_socket(struct config *cfg, struct run_setup *rs)
{
	const char *tmp = getenv("TMPDIR");
	int r;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (asprintf(&rs->dir, "%s/flint-run.XXXXXX", tmp) < 0) {
		rs->dir = NULL;
		return -ENOMEM;
	}
	if (!mkdtemp(rs->dir)) {
		r = -errno;
		pr_err("flint run: cannot create a directory in %s: %s", tmp, strerror(errno));
		free(rs->dir);
		rs->dir = NULL;
		return r;
	}
	/* A Unix socket path fits in 108 bytes, with "_<port>" after it. */
	if (strlen(rs->dir) > 80) {
		pr_err("flint run: %s is too long a path for a Unix socket; set TMPDIR", rs->dir);
		return -ENAMETOOLONG;
	}
	free(cfg->vsock.uds);
	if (asprintf(&cfg->vsock.uds, "%s/vsock", rs->dir) < 0) {
		cfg->vsock.uds = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Add a drive for flint run (after the user's), and say which /dev/vdX
 * the guest sees it as in dev. */
static int add_run_drive(struct config *cfg, const char *path, bool read_only, char *dev,
			 size_t len)
{
	if (cfg->ndrives == MAX_DRIVES) {
		pr_err("flint run: at most %d drives with --image and --scratch", MAX_DRIVES);
		return -EINVAL;
	}
	/* the writable one is the scratch disk, whose blocks it keeps */
	cfg->drives[cfg->ndrives] = (struct drive_cfg){
	    .path = strdup(path), .read_only = read_only, .keep_blocks = !read_only};
	if (!cfg->drives[cfg->ndrives].path)
		return -ENOMEM;
	snprintf(dev, len, "/dev/vd%c", 'a' + cfg->ndrives++);
	return 0;
}

/* Whether the directory dir holds flint's init at /init (an executable
 * file, or a symlink, which is the guest's to resolve): without it the
 * guest's kernel falls back to a userland's /sbin/init, and flint run
 * waits for an agent that never comes. */
static bool holds_flint_init(const char *dir)
{
	struct stat st;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok = fd >= 0 && fstatat(fd, "init", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		  (S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && (st.st_mode & 0111)));

	if (fd >= 0)
		close(fd);
	return ok;
}

/* --rootfs keeps taking any file as it is (the drive says what is wrong
 * with it); a directory or tar archive is made into an ext4 image in
 * flint's cache as for --image, its path in rootfs. */
/* flint run's image builder (image/build.h), its cache trimmed to
 * FLINT_CACHE_MAX (default IMAGE_CACHE_DEFAULT_MAX, 0: no limit). 0, or
 * -errno with err. */
static int run_builder(struct image_builder *b, char *cache, size_t len, char *err, size_t errlen)
{
	const char *v = getenv("FLINT_CACHE_MAX");
	int r = image_builder_default(b, cache, len, err, errlen);

	if (r < 0)
		return r;
	b->cache_max = IMAGE_CACHE_DEFAULT_MAX;
	if (!v || !*v)
		return 0;
	if (!strcmp(v, "0"))
		b->cache_max = 0;
	else if (cli_parse_size(v, &b->cache_max) < 0)
		return err_set(err, errlen, -EINVAL,
			       "FLINT_CACHE_MAX=%s: expected the image cache's limit, a size "
			       "from 16M to 1T in whole 4 KiB (suffix K, M, G or T; a number "
			       "alone MiB), or 0 for none",
			       v);
	return 0;
}

/* A cached image the VM boots from: held until flint ends, and named for
 * --save-snapshot's pin. hold is image_prepare's (-1: an ext4 image of
 * the user's, neither). */
static int keep_cached(struct run_setup *rs, int hold, const char *path)
{
	if (hold < 0)
		return 0;
	rs->holds[rs->nholds++] = hold;
	if (!(rs->cached[rs->ncached] = strdup(path)))
		return -ENOMEM;
	rs->ncached++;
	return 0;
}

static int run_root_image(const struct config *cfg, struct run_setup *rs, char *rootfs, size_t len)
{
	char cache[PATH_MAX], err[PATH_MAX + 256] = "";
	struct image_builder b;
	enum image_kind k;
	int r, hold;

	if (!cfg->rootfs || image_detect(cfg->rootfs, &k, NULL, 0) < 0 || k == IMAGE_EXT4)
		return 0;
	if (k == IMAGE_DIR && !holds_flint_init(cfg->rootfs)) {
		pr_err("flint run: --rootfs %s: no executable /init in it: flint run's root file "
		       "system holds flint's init and agent (make rootfs-img builds one); to run "
		       "a command in a userland of your own, name it with --image",
		       cfg->rootfs);
		return -EINVAL;
	}
	if ((r = run_builder(&b, cache, sizeof(cache), err, sizeof(err))) < 0 ||
	    (r = image_prepare(&b, cfg->rootfs, rootfs, len, &hold, NULL, err, sizeof(err))) < 0) {
		pr_err("flint run: --rootfs %s", err);
		return r;
	}
	return keep_cached(rs, hold, rootfs);
}

/* --image PATH and --scratch SIZE: the image (ext4, or a directory or tar
 * archive made into one in flint's cache) as a read-only drive and the
 * scratch disk (in the cache directory, not a tmpfs /tmp) as a writable
 * one, after the user's drives, named on the kernel command line in args
 * (" flint.image=/dev/vdX flint.scratch=/dev/vdY") for the guest init,
 * which lays an overlay over them (rootfs/init.c). */
static int run_user_image(struct config *cfg, struct run_setup *rs, char *args, size_t len)
{
	char cache[PATH_MAX], path[PATH_MAX + 16], err[PATH_MAX + 256] = "", dev[16];
	char scratch[PATH_MAX], abs[PATH_MAX];
	struct image_builder b;
	int r, n, hold = -1;

	args[0] = '\0';
	if (!cfg->image)
		return 0;
	/* An ext4 image needs no cache (flint-jail's flint has none). */
	bool ext4 = image_is_ext4(cfg->image);
	if ((!ext4 || cfg->scratch) &&
	    (r = run_builder(&b, cache, sizeof(cache), err, sizeof(err))) < 0) {
		pr_err("flint run: %s %s", ext4 ? "--scratch:" : "--image", err);
		return r;
	}
	if (ext4)
		snprintf(path, sizeof(path), "%s", cfg->image);
	else if ((r = image_prepare(&b, cfg->image, path, sizeof(path), &hold, NULL, err,
				    sizeof(err))) < 0) {
		pr_err("flint run: --image %s", err);
		return r;
	}
	/* A snapshot names it, and a restore may run in another directory
	 * (a relative --image, or FLINT_CACHE), as the root image's below. */
	if (cfg->save_snapshot && realpath(path, abs))
		snprintf(path, sizeof(path), "%s", abs);
	if ((r = keep_cached(rs, hold, path)) < 0)
		return r;
	if ((r = add_run_drive(cfg, path, true, dev, sizeof(dev))) < 0)
		return r;
	n = snprintf(args, len, " flint.image=%s", dev);
	/* flint-jail's, made in the jail: it goes with the jail. */
	if (cfg->scratch_file) {
		if ((r = add_run_drive(cfg, cfg->scratch_file, false, dev, sizeof(dev))) < 0)
			return r;
		snprintf(args + n, len - (size_t)n, " flint.scratch=%s", dev);
		return 0;
	}
	if (!cfg->scratch)
		return 0;
	snprintf(path, sizeof(path), "%s/scratch", cache);
	if ((r = image_make_scratch(&b, path, cfg->scratch, scratch, sizeof(scratch), err,
				    sizeof(err))) < 0) {
		pr_err("flint run: --scratch: %s%s", err,
		       r == -ENOSPC ? " (a smaller --scratch, or FLINT_CACHE on a larger disk)"
				    : "");
		return r;
	}
	if (!(rs->scratch = strdup(scratch))) {
		(void)unlink(scratch);
		return -ENOMEM;
	}
	if ((r = add_run_drive(cfg, rs->scratch, false, dev, sizeof(dev))) < 0)
		return r;
	snprintf(args + n, len - (size_t)n, " flint.scratch=%s", dev);
	return 0;
}

/* --save-snapshot of a VM booting from the cache's images: pinned
 * (image/cache.h) for as long as the snapshot is there, since it names
 * them by their paths in the cache. A pin that cannot be made (a cache on
 * a read-only file system) is only said: a trim may then take the image,
 * and the snapshot's restore is refused rather than run on another. */
static void pin_for_snapshot(const struct config *cfg, struct run_setup *rs)
{
	char images[PATH_MAX], err[3 * PATH_MAX];
	int lock;

	if (!cfg->save_snapshot || !rs->ncached)
		return;
	snprintf(images, sizeof(images), "%s", rs->cached[0]);
	*strrchr(images, '/') = '\0'; /* <cache>/images/<key>.ext4 */
	if (image_pin(images, cfg->save_snapshot, (const char *const *)rs->cached, rs->ncached,
		      &lock, err, sizeof(err)) < 0)
		pr_warn("flint run: --save-snapshot: %s; a trim of the cache may remove the "
			"images the snapshot needs",
			err);
	else
		rs->holds[rs->nholds++] = lock;
}

/* Fill in flint run's defaults: kernel and root image from FLINT_HOME,
 * beside the binary or under the install prefix (home.h), the root image as
 * a read-only /dev/vda (by its absolute path when a snapshot is saved: a
 * restore may run elsewhere), the agent on, and a vsock device with a
 * socket in a private directory unless the user gave --vsock. Not inlined:
 * its paths (some 50 KiB of frames with its callees') then sit below the
 * frame that runs the VM, where vm_run gives them back. */
static __attribute__((noinline)) int run_prepare(struct config *cfg, struct run_setup *rs)
{
	char rootfs[PATH_MAX], exe[PATH_MAX], abs[PATH_MAX], images[128], kernel[PATH_MAX];
	struct home h;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int r;

	if (n > 0)
		exe[n] = '\0';
	home_init(&h, getenv("FLINT_HOME"), n > 0 ? exe : NULL);
	if (!cfg->kernel) {
		if ((r = find_default(&h, "guest kernel", "vmlinux", "--kernel FILE", kernel,
				      sizeof(kernel))) < 0)
			return r;
		if (!(rs->kernel = strdup(kernel)))
			return -ENOMEM;
		cfg->kernel = rs->kernel;
	}
	if (cfg->rootfs)
		snprintf(rootfs, sizeof(rootfs), "%s", cfg->rootfs);
	else if ((r = find_default(&h, "root file system", "rootfs.ext4", "--rootfs IMG", rootfs,
				   sizeof(rootfs))) < 0)
		return r;
	if ((r = run_root_image(cfg, rs, rootfs, sizeof(rootfs))) < 0)
		return r;
	if (cfg->save_snapshot && realpath(rootfs, abs))
		snprintf(rootfs, sizeof(rootfs), "%s", abs);
	pr_debug("flint run: kernel %s, root file system %s", cfg->kernel, rootfs);
	if (cfg->ndrives == MAX_DRIVES) {
		pr_err("flint run: at most %d drives besides the root image", MAX_DRIVES - 1);
		return -EINVAL;
	}
	/* The root image is /dev/vda: the user's drives follow it. */
	memmove(&cfg->drives[1], &cfg->drives[0], cfg->ndrives * sizeof(cfg->drives[0]));
	cfg->drives[0] = (struct drive_cfg){.path = strdup(rootfs), .read_only = true};
	cfg->ndrives++;
	if (!cfg->drives[0].path)
		return -ENOMEM;
	if ((r = run_user_image(cfg, rs, images, sizeof(images))) < 0)
		return r;
	pin_for_snapshot(cfg, rs);
	/* An ext4 root is named so: the kernel would otherwise try it as ext3
	 * and ext2 first (ext4 registers those names before its own). */
	bool ext4 = image_is_ext4(rootfs);
	int len = asprintf(&rs->append, "root=/dev/vda ro%s flint.agent%s%s%s",
			   ext4 ? " rootfstype=ext4" : "", images, cfg->append ? " " : "",
			   cfg->append ? cfg->append : "");
	if (len < 0) {
		rs->append = NULL;
		return -ENOMEM;
	}
	if (len > RUN_APPEND_MAX) {
		pr_err("flint run: --append is too long");
		return -E2BIG;
	}
	cfg->append = rs->append;
	if (!cfg->vsock.enabled) {
		if ((r = private_socket(cfg, rs)) < 0)
			return r;
		cfg->vsock.cid = RUN_GUEST_CID;
		cfg->vsock.enabled = true;
	}
	if (asprintf(&rs->listen_path, "%s_%u", cfg->vsock.uds, AGENT_VSOCK_PORT) < 0) {
		rs->listen_path = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The VM the command line describes: its vm_config (vm_config_cli.h) and
 * the process's policy for it. */
static int create_from_cli(struct vm **vm, const struct config *cfg)
{
	struct vm_opts o;
	struct vm_config c;
	char err[256];
	int r;

	*vm = NULL;
	instance_vm_opts(cfg, &o);
	if ((r = vm_config_from_cli(&c, cfg, err, sizeof(err))) < 0) {
		pr_err("%s", r == -ENOMEM ? "out of memory" : err);
		return r;
	}
	r = vm_create(vm, &c, &o);
	vm_config_free(&c);
	return r;
}

/* flint run --restore: the VM from the snapshot, its vsock device on
 * flint run's private socket (cfg->vsock.uds); running at once, or with
 * --wait-fd paused until the run thread's go() resumes it. */
static int restore_for_run(struct vm **vm, const struct config *cfg)
{
	struct restore_overrides ov;
	struct vm_restore_args a;
	struct vm_opts o;

	instance_restore_args(cfg, &a, &ov);
	a.resume_vm = !cfg->wait_fd;
	a.vsock_uds_path = cfg->vsock.uds; /* flint run's private socket */
	instance_vm_opts(cfg, &o);
	return vm_restore(vm, &a, &o);
}

/* What the run thread's callbacks work on. */
struct run_ctx {
	struct vm *vm;
	const struct config *cfg;
	uint64_t snap_us;     /* --save-snapshot: pausing and saving took this long */
	uint64_t restored_us; /* --restore: launch to the VM restored */
};

/* --save-snapshot, on the run thread: pause the VM and save it (Full), at
 * the agent's first connection, or with --save-after once the command
 * has exited 0 (its connection closed: the end need not have reached the
 * guest, as a restore resets every vsock connection, and the agent's
 * listener is what a restored VM's commands use). Returns 0, or
 * EXIT_FLINT_ERROR with a reason in msg. */
static int save_full(struct run_ctx *rc, char *msg, size_t len)
{
	struct vm_snapshot_args a = {
	    .type = VM_SNAPSHOT_FULL,
	    .snapshot_path = rc->cfg->save_snapshot,
	    .mem_file_path = rc->cfg->save_mem,
	};
	struct vm_err err = {0};
	uint64_t t0 = now_ns();

	if (vm_act(rc->vm, VM_ACTION_PAUSE, 0, &err) < 0 || vm_snapshot(rc->vm, &a, &err) < 0) {
		snprintf(msg, len, "flint run: cannot save the snapshot: %s",
			 err.msg[0] ? err.msg : strerror(-err.code));
		return EXIT_FLINT_ERROR;
	}
	rc->snap_us = (now_ns() - t0) / 1000;
	return 0;
}

/* The guest stopped answering (no agent, or a command not stopped at its
 * timeout): at the stop, say where it was. */
static void run_stuck(void *ctx)
{
	struct run_ctx *rc = ctx;

	vm_describe_at_stop(rc->vm);
}

static void run_finish(void *ctx, int status, const char *msg)
{
	struct run_ctx *rc = ctx;
	char why[640]; /* cut to the stop message's 255 bytes (control.h) */

	if (rc->cfg->save_after) {
		if (status == 0) {
			why[0] = '\0';
			status = save_full(rc, why, sizeof(why));
		} else if (msg) {
			snprintf(why, sizeof(why), "%s; no snapshot saved", msg);
		} else {
			snprintf(why, sizeof(why),
				 "flint run --save-after: the command exited with status %d: no "
				 "snapshot saved",
				 status);
		}
		msg = why[0] ? why : NULL;
	}
	vm_request_stop(rc->vm, status, msg);
}

/* --save-snapshot, on the run thread once the agent's boot connection is
 * in: pause the VM and save it (Full). Then, for a command, resume it: the
 * command goes over a new connection, as the snapshot reset every vsock
 * connection (the agent's listener survives); without one, flint stops
 * with 0. */
static int save_when_ready(void *ctx, char *msg, size_t len)
{
	struct run_ctx *rc = ctx;
	struct vm_err err = {0};

	if (save_full(rc, msg, len) != 0)
		return EXIT_FLINT_ERROR;
	if (rc->cfg->guest_argc == 0)
		return 0;
	if (vm_act(rc->vm, VM_ACTION_RESUME, 0, &err) < 0) {
		snprintf(msg, len, "flint run: cannot resume the VM after the snapshot: %s",
			 err.msg[0] ? err.msg : strerror(-err.code));
		return EXIT_FLINT_ERROR;
	}
	return RUN_READY_RECONNECT;
}

/* --wait-fd, on the run thread once the go byte came: the VM restored
 * paused runs; then the command goes as for any restore. */
static int resume_on_go(void *ctx, char *msg, size_t len)
{
	struct run_ctx *rc = ctx;
	struct vm_err err = {0};

	if (vm_act(rc->vm, VM_ACTION_RESUME, 0, &err) < 0) {
		snprintf(msg, len, "flint run: cannot resume the restored VM: %s",
			 err.msg[0] ? err.msg : strerror(-err.code));
		return EXIT_FLINT_ERROR;
	}
	return 0;
}

/* The descriptors --control-fd, --wait-fd and --status-fd name: open
 * (else said, and false), made CLOEXEC. Before flint opens anything: a log
 * or metrics file opened first would take the number of one not open, and
 * pass for it (the go byte read from the log, control lines from it). */
static bool take_inherited_fds(const struct config *cfg)
{
	const struct {
		const char *opt;
		int fd;
	} fds[] = {{"--control-fd", cfg->control_fd},
		   {"--wait-fd", cfg->wait_fd},
		   {"--status-fd", cfg->status_fd}}; /* --phase-fd: phases_open's */

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		int fl = fds[i].fd ? fcntl(fds[i].fd, F_GETFD) : 0;

		if (fl < 0 || (fds[i].fd && fcntl(fds[i].fd, F_SETFD, fl | FD_CLOEXEC) < 0)) {
			pr_err("%s %d: not an open file descriptor (%s)", fds[i].opt, fds[i].fd,
			       strerror(errno));
			return false;
		}
	}
	return true;
}

/* The logger from the command line's options (--level, --log-path,
 * --show-level, --show-log-origin, --module, --id), when any is given, for
 * flint and flint run alike (a config file's logger section comes after
 * and updates it, as Firecracker's: its level wins, Info when it gives
 * none; what it leaves out stays the command line's, --log-path too). Before any seccomp filter: it
 * opens the log file. 0, or -errno, said. */
static int cli_logger(const struct config *cfg)
{
	struct vmc_logger l = {.enabled = true,
			       .log_path = (char *)cfg->log_path,
			       .level = cfg->has_level ? cfg->level : VMC_LOG_INFO,
			       .show_level = cfg->show_level,
			       .show_log_origin = cfg->show_log_origin,
			       .has_show_level = cfg->show_level,
			       .has_show_log_origin = cfg->show_log_origin,
			       .module = (char *)cfg->module};
	char why[256];
	int r;

	if (!cfg->has_level && !cfg->log_path && !cfg->show_level && !cfg->show_log_origin &&
	    !cfg->id && !cfg->module)
		return 0;
	if ((r = logger_configure(&l, cfg->id, why, sizeof(why))) < 0)
		pr_err("%s", why);
	return r;
}

/* --restore --wait-fd: the restore, the wait for the go byte, and from it
 * to the agent, apart. */
static void print_wait_timings(const struct run_ctx *rc, const struct run_timings *t,
			       const char *cmd)
{
	uint64_t end = t->go_us ? t->go_us : us_since_launch();

	fprintf(stderr, "flint run: restored paused; launch to restored %.1f ms, waited %.1f ms",
		rc->restored_us / 1000.0, (end - rc->restored_us) / 1000.0);
	if (t->given_up || !t->go_us)
		fprintf(stderr, ", %s\n", t->given_up ? "given up (no go byte)" : "no go byte");
	else if (t->agent_ready_us)
		fprintf(stderr, ", go to agent ready %.1f ms, command %s\n",
			(t->agent_ready_us - t->go_us) / 1000.0, cmd);
	else
		fprintf(stderr, ", the agent not reached\n");
}

/* --timings' "command N ms", and the copies' times where there were any:
 * "command N ms, copy-in N ms, copy-out N ms" ("-" for what did not end). */
static void command_timings(const struct run_timings *t, char *buf, size_t len)
{
	const uint64_t *c[2] = {t->copy_in_us, t->copy_out_us};
	int n = t->cmd_end_us
		    ? snprintf(buf, len, "%.1f ms", (t->cmd_end_us - t->cmd_start_us) / 1000.0)
		    : snprintf(buf, len, "-");

	for (int i = 0; i < 2; i++) {
		if (!c[i][0] || n < 0 || (size_t)n >= len)
			continue;
		n += c[i][1] ? snprintf(buf + n, len - (size_t)n, ", copy-%s %.1f ms",
					i ? "out" : "in", (c[i][1] - c[i][0]) / 1000.0)
			     : snprintf(buf + n, len - (size_t)n, ", copy-%s -", i ? "out" : "in");
	}
}

static void print_timings(const struct run_ctx *rc, const struct run *r)
{
	struct run_timings t;
	char cmd[96], snap[48] = "";

	run_get_timings(r, &t);
	command_timings(&t, cmd, sizeof(cmd));
	if (rc->cfg->wait_fd) {
		print_wait_timings(rc, &t, cmd);
		return;
	}
	if (rc->cfg->restore) {
		fprintf(stderr, "flint run: restored; launch to agent ready %.1f ms, command %s\n",
			t.agent_ready_us / 1000.0, cmd);
		return;
	}
	if (rc->snap_us)
		snprintf(snap, sizeof(snap), ", snapshot %.1f ms", rc->snap_us / 1000.0);
	fprintf(stderr,
		"flint run: launch to init %.1f ms, launch to agent ready %.1f ms, command %s%s\n",
		vm_boot_us(rc->vm) / 1000.0, t.agent_ready_us / 1000.0, cmd, snap);
}

/* flint run: boot (or restore), hand the command to the agent, exit with
 * its status; with --save-snapshot, save the VM once the agent is ready
 * (--save-after: once the command has exited 0);
 * with --restore --wait-fd, the VM restored paused runs the command once a
 * byte comes on the fd, or stops with 0 at its end without one. */
static int run_command(struct config *cfg)
{
	struct run_setup rs = {0};
	struct run_ctx rc = {.cfg = cfg};
	struct run *r = NULL;
	struct copier *copy = NULL;
	int status = EXIT_FLINT_ERROR;

	if (cfg->restore ? private_socket(cfg, &rs) < 0 || restore_for_run(&rc.vm, cfg) < 0
			 : run_prepare(cfg, &rs) < 0 || create_from_cli(&rc.vm, cfg) < 0)
		goto out;
	/* The drive holds the scratch disk open: nothing is left of it when
	 * flint ends, however it ends. */
	if (rs.scratch && unlink(rs.scratch) == 0) {
		free(rs.scratch);
		rs.scratch = NULL;
	}
	rc.restored_us = us_since_launch();
	if (start_copies(cfg, cfg->vsock.uds, &copy) < 0)
		goto out;
	/* A restored agent made its one connection to the host long ago: flint
	 * opens one to the port it listens on. */
	struct run_params p = {
	    .mode = cfg->restore ? RUN_CONNECT : RUN_ACCEPT,
	    .listen_path = cfg->restore ? NULL : rs.listen_path,
	    .uds_path = cfg->vsock.uds,
	    .argv = cfg->guest_argv,
	    .argc = cfg->guest_argc,
	    .envp = cfg->env,
	    .envc = (int)cfg->nenv,
	    .cwd = cfg->workdir,
	    .timeout_s = cfg->timeout_s,
	    .boot_timeout_s = RUN_BOOT_TIMEOUT_S,
	    .in_fd = STDIN_FILENO,
	    .out_fd = STDOUT_FILENO,
	    .err_fd = STDERR_FILENO,
	    .finish = run_finish,
	    .stuck = run_stuck,
	    /* --save-after saves in run_finish, once the command is done. */
	    .ready = cfg->save_snapshot && !cfg->save_after ? save_when_ready : NULL,
	    .go = cfg->wait_fd ? resume_on_go : NULL,
	    .go_fd = cfg->wait_fd,
	    .status_fd = cfg->status_fd,
	    .copy = copy,
	    .user = cfg->user,
	    .uid = cfg->uid,
	    .gid = cfg->gid,
	    .ctx = &rc,
	};
	if (run_start(&r, &p) < 0)
		goto out;
	struct vm_exit how;
	vm_run(rc.vm, &how);
	status = instance_exit_status(&how);
	if (!run_finished(r) && status == 0) {
		pr_err("flint run: the guest stopped before the command finished");
		status = RUN_EXIT_NO_AGENT;
	} else if (!run_finished(r) && how.reason == STOP_GUEST_EXIT) {
		/* flint's init gave up before the agent ran (an image it could
		 * not mount): its message is on the console, shown only with
		 * --verbose. */
		struct run_timings t;
		char said[256];

		run_get_timings(r, &t);
		if (!t.agent_ready_us && vm_init_said(rc.vm, said, sizeof(said)))
			pr_err("flint run: the guest's init stopped with status %d before the "
			       "command ran: %s",
			       status, said);
		else
			pr_err("flint run: the guest stopped with status %d before the command "
			       "finished (--verbose shows its console)",
			       status);
	}
	run_vm_ended(r, status);
	if (cfg->timings)
		print_timings(&rc, r);
out:
	run_stop(r);
	copy_stop(copy);
	vm_destroy(rc.vm);
	if (rs.scratch && unlink(rs.scratch) < 0)
		pr_err("flint run: cannot remove %s: %s", rs.scratch, strerror(errno));
	if (rs.dir && rmdir(rs.dir) < 0)
		pr_err("flint run: cannot remove %s: %s", rs.dir, strerror(errno));
	run_setup_free(&rs);
	return status;
}

/* flint run --attach: the run thread's outcome, for the main thread. */
struct attach_ctx {
	int done_fd; /* eventfd: finish() was called */
	int status;
	char msg[640];
};

static void attach_finish(void *ctx, int status, const char *msg)
{
	struct attach_ctx *ac = ctx;

	ac->status = status;
	snprintf(ac->msg, sizeof(ac->msg), "%s", msg ? msg : "");
	/* The eventfd's write orders the two stores above before the main
	 * thread's read. */
	if (eventfd_write(ac->done_fd, 1) < 0)
		abort();
}

/* flint run --attach UDS: no VM of flint's own. The run thread reaches the
 * agent of a VM that runs already through its vsock device's socket
 * (RUN_CONNECT, giving up after RUN_ATTACH_TIMEOUT_S), runs the command
 * and relays its streams; this thread waits for its status. The same
 * seccomp filters as a VM's flint run: the run thread's own, and the main
 * thread's once the run thread has started (it only waits, then tears
 * down). */
static int attach_command(const struct config *cfg)
{
	struct attach_ctx ac = {.done_fd = -1, .status = EXIT_FLINT_ERROR};
	const char *test = cfg->seccomp_test;
	struct copier *copy = NULL;
	struct run *r = NULL;
	eventfd_t v;
	int err;

	ac.done_fd = eventfd(0, EFD_CLOEXEC);
	if (ac.done_fd < 0) {
		pr_err("flint run: eventfd: %s", strerror(errno));
		return EXIT_FLINT_ERROR;
	}
	if ((err = seccomp_configure(cfg->seccomp, test ? seccomp_thread_by_name(test) : -1)) < 0) {
		pr_err("flint run: seccomp: %s", strerror(-err));
		goto out;
	}
	if (start_copies(cfg, cfg->attach, &copy) < 0)
		goto out;
	struct run_params p = {
	    .mode = RUN_CONNECT,
	    .uds_path = cfg->attach,
	    .argv = cfg->guest_argv,
	    .argc = cfg->guest_argc,
	    .envp = cfg->env,
	    .envc = (int)cfg->nenv,
	    .cwd = cfg->workdir,
	    .timeout_s = cfg->timeout_s,
	    .boot_timeout_s = RUN_ATTACH_TIMEOUT_S,
	    .in_fd = STDIN_FILENO,
	    .out_fd = STDOUT_FILENO,
	    .err_fd = STDERR_FILENO,
	    .finish = attach_finish,
	    .status_fd = cfg->status_fd,
	    .copy = copy,
	    .user = cfg->user,
	    .uid = cfg->uid,
	    .gid = cfg->gid,
	    .ctx = &ac,
	};
	if (run_start(&r, &p) < 0)
		goto out;
	if ((err = seccomp_enter(SECCOMP_MAIN)) < 0) {
		pr_err("flint run: seccomp filter: %s", strerror(-err));
		goto out;
	}
	while (eventfd_read(ac.done_fd, &v) < 0)
		if (errno != EINTR) {
			pr_err("flint run: eventfd: %s", strerror(errno));
			goto out;
		}
	if (ac.msg[0])
		pr_err("%s", ac.msg);
	if (cfg->timings) {
		struct run_timings t;
		char cmd[96];

		run_get_timings(r, &t);
		command_timings(&t, cmd, sizeof(cmd));
		fprintf(stderr, "flint run: attached; launch to agent ready %.1f ms, command %s\n",
			t.agent_ready_us / 1000.0, cmd);
	}
	err = ac.status;
	run_stop(r);
	copy_stop(copy);
	close_fd(&ac.done_fd);
	return err;
out:
	run_stop(r);
	copy_stop(copy);
	close_fd(&ac.done_fd);
	return EXIT_FLINT_ERROR;
}

/* --snapshot-version (path NULL): the state file format this flint
 * writes; --describe-snapshot FILE: the one FILE is in. Firecracker's
 * options, printed as it prints them, "v" and a semantic version (flint's
 * format has one number, the major). */
static int print_snapshot_version(const char *path)
{
	uint32_t v = SNAP_FORMAT_VERSION;
	char err[PATH_MAX + 128];

	if (path && snap_describe_file(path, &v, err, sizeof(err)) < 0) {
		pr_err("--describe-snapshot: %s", err);
		return EXIT_FLINT_ERROR;
	}
	printf("v%u.0.0\n", v);
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	char err[256];

	launch_ns = now_ns();
	/* A parent that ignores SIGCHLD hands that on through exec, and the
	 * kernel would then reap flint's children (passt, the copy helper, an
	 * image's tar and mke2fs, the bench's VMMs) before a waitpid could
	 * say how they ended. */
	signal(SIGCHLD, SIG_DFL);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	/* Before any seccomp filter: the bench forks VMMs and gnuplot. */
	if (argc >= 2 && strcmp(argv[1], "bench") == 0)
		return bench_main(argc - 1, argv + 1);
	switch (cli_parse(argc, argv, &cfg, err, sizeof(err))) {
	case CLI_EXIT_OK:
		return 0;
	case CLI_ERROR:
		pr_err("%s", err);
		return EXIT_FLINT_ERROR;
	case CLI_RUN:
		break;
	}
	if (cfg.snapshot_version || cfg.describe_snapshot) {
		int status = print_snapshot_version(cfg.describe_snapshot);
		cli_config_free(&cfg);
		return status;
	}
	/* Under a jailer, the launch began when the jailer did. */
	if (cfg.has_start_time) {
		if (cfg.start_time_us > launch_ns / 1000) {
			pr_err("--start-time-us %llu: later than now (%llu us on CLOCK_MONOTONIC)",
			       (unsigned long long)cfg.start_time_us,
			       (unsigned long long)(launch_ns / 1000));
			cli_config_free(&cfg);
			return EXIT_FLINT_ERROR;
		}
		launch_ns = cfg.start_time_us * 1000;
	}
	/* For bench/api: an API-driven boot's time runs from its InstanceStart
	 * to launch_ns + the guest's boot time (--verbose: the logger is not
	 * configured yet). */
	pr_debug("launched at monotonic %llu ns", (unsigned long long)launch_ns);
	if (!take_inherited_fds(&cfg) || cli_logger(&cfg) < 0) {
		cli_config_free(&cfg);
		return EXIT_FLINT_ERROR;
	}
	int perr = phases_open(cfg.phase_fd, launch_ns);
	if (perr < 0) {
		pr_err("--phase-fd %d: %s", cfg.phase_fd, strerror(-perr));
		cli_config_free(&cfg);
		return EXIT_FLINT_ERROR;
	}
	if (cfg.check_kvm) {
		cli_config_free(&cfg);
		return check_kvm();
	}
	/* SIGQUIT (a terminal's ^\, flint serve asking where a stuck VM is)
	 * before vm_run takes it through its signalfd: there is no guest to
	 * say anything of yet, and its default action would dump core.
	 * Ignored until then; the wait for InstanceStart (instance.c) and
	 * vm_run block it, so it is queued for their signalfd even so (a
	 * blocked signal is never discarded). */
	signal(SIGQUIT, SIG_IGN);
	if (cfg.run) {
		/* Read here, not by cli_parse, which flint-jail shares. */
		if (cli_load_env_files(&cfg, err, sizeof(err)) < 0) {
			pr_err("%s", err);
			cli_config_free(&cfg);
			return EXIT_FLINT_ERROR;
		}
		int status = cfg.attach ? attach_command(&cfg) : run_command(&cfg);
		cli_config_free(&cfg);
		return status;
	}
	int status = instance_main(&cfg);
	cli_config_free(&cfg);
	return status;
}
