#include "cmd/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api/controller.h"
#include "api/http.h"
#include "cmd/ctlfd.h"
#include "cmd/run.h"
#include "config/config_json.h"
#include "config/vm_config_cli.h"
#include "core/device_kinds.h"
#include "core/devices.h"
#include "core/logger.h"
#include "core/metrics.h"
#include "core/seccomp.h"
#include "core/util.h"
#include "mmds/mmds.h"

/* A config file larger than this is refused (Firecracker's are a few KiB). */
#define CONFIG_FILE_MAX (1 << 20)

/* Work the API thread hands to the main thread, which is not under a
 * seccomp filter before the VM starts: building the VM (InstanceStart),
 * opening the log and metrics files (PUT /logger, PUT /metrics). */
struct instance;
typedef int (*main_fn)(struct instance *in, const void *arg, struct vm_err *err);

/* The instance: the VM once it exists, and the calls the API thread hands
 * to the main thread while it waits for InstanceStart. */
struct instance {
	const struct config *cfg;
	struct vm_opts opts; /* opts.metrics: the instance's metrics writer */
	struct vm *_Atomic vm;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake_fd;	 /* eventfd: a call is waiting */
	int sig_fd;	 /* signalfd of the signals that end the wait for a VM */
	main_fn call;	 /* the waiting call, NULL for none */
	const void *arg; /* its argument */
	bool call_done;
	int call_r;
	struct vm_err call_err;
	bool closing; /* the main thread takes no more calls */
	/* From the launch's start to the instance's API serving (or, with
	 * --no-api, its VM built), from the jailer's timing arguments, 0
	 * without them: Firecracker's api_server metrics. Read by flushes. */
	_Atomic uint64_t startup_us, startup_cpu_us;
	struct mmds *mmds; /* the MMDS data store, opts.mmds */
};

int instance_exit_status(const struct vm_exit *how)
{
	if (how->msg[0])
		pr_err("%s", how->msg);
	switch (how->reason) {
	case STOP_GUEST_RESET:
		return 0;
	case STOP_GUEST_EXIT:
	case STOP_REQUESTED:
		return how->value;
	case STOP_GUEST_PANIC:
	case STOP_GUEST_CRASH:
		return EXIT_GUEST_CRASH;
	case STOP_HOST_SIGNAL:
		return 128 + how->value;
	default:
		return EXIT_FLINT_ERROR;
	}
}

void instance_vm_opts(const struct config *cfg, struct vm_opts *o)
{
	/* flint run keeps stdout for the command; --verbose shows the guest's
	 * console on stderr instead. */
	*o = (struct vm_opts){
	    .console_out = cfg->console == CONSOLE_STDIO ? STDOUT_FILENO
			   : cfg->run && log_verbose	 ? STDERR_FILENO
							 : -1,
	    .console_in = cfg->console == CONSOLE_STDIO,
	    .stats = cfg->stats,
	    .seccomp = cfg->seccomp,
	    .seccomp_test = cfg->seccomp_test,
	};
}

/* --- what the API asks of the VM (struct api_vm_ops) ---------------------
 * On the API thread, under its seccomp filter: each hands its work to the
 * VM's control thread (the mailbox) or to the main thread, and waits. */

/* On the API thread: run fn(arg) on the main thread and wait for it. */
static int run_on_main(struct instance *in, main_fn fn, const void *arg, struct vm_err *err)
{
	int r;

	pthread_mutex_lock(&in->lock);
	if (in->closing || atomic_load(&in->vm)) {
		pthread_mutex_unlock(&in->lock);
		return vm_err_set(err, -ESHUTDOWN, "%s",
				  in->closing ? "flint is shutting down"
					      : "the microVM has started");
	}
	in->call = fn;
	in->arg = arg;
	in->call_done = false;
	if (eventfd_write(in->wake_fd, 1) < 0) {
		in->call = NULL;
		pthread_mutex_unlock(&in->lock);
		return vm_err_set(err, -EIO, "cannot reach flint's main thread");
	}
	while (!in->call_done && !in->closing)
		pthread_cond_wait(&in->cond, &in->lock);
	in->call = NULL;
	if (in->call_done) {
		r = in->call_r;
		*err = in->call_err;
	} else {
		r = vm_err_set(err, -ESHUTDOWN, "flint is shutting down");
	}
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int do_start(struct instance *in, const void *arg, struct vm_err *err)
{
	struct vm *vm = NULL;
	char why[sizeof(err->msg) - 32];
	int r;

	/* The step's own message is the answer's, as well as the log's. */
	pr_capture(why, sizeof(why));
	r = vm_create(&vm, arg, &in->opts);
	pr_capture(NULL, 0);
	if (r < 0)
		return vm_err_set(err, r, "Cannot start the microVM: %s",
				  why[0] ? why : strerror(-r));
	atomic_store(&in->vm, vm);
	return 0;
}

static int do_logger(struct instance *in, const void *arg, struct vm_err *err)
{
	char why[256];
	int r = logger_configure(arg, in->cfg->id, why, sizeof(why));

	return r < 0 ? vm_err_set(err, r, "%s", why) : 0;
}

static int do_metrics(struct instance *in, const void *arg, struct vm_err *err)
{
	char why[256];
	int r = metrics_configure(in->opts.metrics, arg, why, sizeof(why));

	return r < 0 ? vm_err_set(err, r, "%s", why) : 0;
}

static int op_start(void *ctx, const struct vm_config *c, struct vm_err *err)
{
	return run_on_main(ctx, do_start, c, err);
}

/* PUT /snapshot/load's work on the main thread: the VM from the snapshot. */
struct load_call {
	const struct vm_restore_args *a;
	struct vm_config *loaded;
};

static int do_load(struct instance *in, const void *arg, struct vm_err *err)
{
	const struct load_call *l = arg;
	struct vm *vm = NULL;
	char why[sizeof(err->msg) - 32];
	int r;

	pr_capture(why, sizeof(why));
	r = vm_restore(&vm, l->a, &in->opts);
	pr_capture(NULL, 0);
	if (r < 0)
		return vm_err_set(err, r, "Cannot load the snapshot: %s",
				  why[0] ? why : strerror(-r));
	if (vm_config_copy(l->loaded, vm_get_config(vm)) < 0) {
		vm_destroy(vm);
		return vm_err_set(err, -ENOMEM, "out of memory");
	}
	atomic_store(&in->vm, vm);
	return 0;
}

static int op_snapshot_load(void *ctx, const struct vm_restore_args *a, struct vm_config *loaded,
			    struct vm_err *err)
{
	struct load_call l = {.a = a, .loaded = loaded};

	return run_on_main(ctx, do_load, &l, err);
}

static int op_set_logger(void *ctx, const struct vmc_logger *l, struct vm_err *err)
{
	return run_on_main(ctx, do_logger, l, err);
}

static int op_set_metrics(void *ctx, const struct vmc_metrics *m, struct vm_err *err)
{
	return run_on_main(ctx, do_metrics, m, err);
}

struct check_call {
	const char *path;
	bool write;
};

static int do_check_file(struct instance *in, const void *arg, struct vm_err *err)
{
	const struct check_call *c = arg;
	/* O_NONBLOCK: a FIFO named there must not hold the main thread. */
	int fd = open(c->path, (c->write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	(void)in;
	if (fd < 0)
		return vm_err_set(err, -errno, "%s: %s", c->path, strerror(errno));
	close(fd);
	return 0;
}

static int op_check_file(void *ctx, const char *path, bool write, struct vm_err *err)
{
	struct check_call c = {.path = path, .write = write};

	return run_on_main(ctx, do_check_file, &c, err);
}

/* check(name), what it logs as the answer's message. */
static int check_captured(int (*check)(const char *), const char *name, struct vm_err *err)
{
	char why[256] = "";
	int r;

	pr_capture(why, sizeof(why));
	r = check(name);
	pr_capture(NULL, 0);
	return r < 0 ? vm_err_set(err, r, "%s", why[0] ? why : strerror(-r)) : 0;
}

static int do_check_tap(struct instance *in, const void *arg, struct vm_err *err)
{
	(void)in;
	return check_captured(net_kind_check_tap, arg, err);
}

static int op_check_tap(void *ctx, const char *name, struct vm_err *err)
{
	return run_on_main(ctx, do_check_tap, name, err);
}

static int do_check_uds(struct instance *in, const void *arg, struct vm_err *err)
{
	(void)in;
	return check_captured(vsock_kind_check_uds, arg, err);
}

static int op_check_uds(void *ctx, const char *path, struct vm_err *err)
{
	return run_on_main(ctx, do_check_uds, path, err);
}

static struct vm *started_vm(struct instance *in, struct vm_err *err)
{
	struct vm *vm = atomic_load(&in->vm);

	if (!vm)
		vm_err_set(err, -EPERM, "the microVM has not started");
	return vm;
}

static int op_act(struct instance *in, enum vm_action a, struct vm_err *err)
{
	struct vm *vm = started_vm(in, err);
	return vm ? vm_act(vm, a, 0, err) : err->code;
}

static int op_pause(void *ctx, struct vm_err *err)
{
	return op_act(ctx, VM_ACTION_PAUSE, err);
}

static int op_resume(void *ctx, struct vm_err *err)
{
	return op_act(ctx, VM_ACTION_RESUME, err);
}

static int op_ctrl_alt_del(void *ctx, struct vm_err *err)
{
	return op_act(ctx, VM_ACTION_CTRL_ALT_DEL, err);
}

/* PATCH /drives/{id}: the entry takes d's image and rate limiter. */
static int edit_drive(struct vm_config *next, const void *arg, struct vm_err *err)
{
	const struct vmc_drive *d = arg;
	int i = vm_config_find_drive(next, d->drive_id);
	char *path;

	if (i < 0)
		return vm_err_set(err, -ENOENT, "no drive '%s' in this VM", d->drive_id);
	if (!(path = strdup(d->path_on_host)))
		return vm_err_set(err, -ENOMEM, "out of memory");
	free(next->drives[i].path_on_host);
	next->drives[i].path_on_host = path;
	next->drives[i].rate_limiter = d->rate_limiter;
	return 0;
}

/* PATCH /network-interfaces/{id}: the entry takes n's rate limiters. */
static int edit_net(struct vm_config *next, const void *arg, struct vm_err *err)
{
	const struct vmc_net *n = arg;
	int i = vm_config_find_net(next, n->iface_id);

	if (i < 0)
		return vm_err_set(err, -ENOENT, "no network interface '%s' in this VM",
				  n->iface_id);
	next->nets[i].rx_rate_limiter = n->rx_rate_limiter;
	next->nets[i].tx_rate_limiter = n->tx_rate_limiter;
	return 0;
}

/* PATCH /pmem/{id}: the entry takes p's rate limiter. */
static int edit_pmem(struct vm_config *next, const void *arg, struct vm_err *err)
{
	const struct vmc_pmem *p = arg;
	int i = vm_config_find_pmem(next, p->id);

	if (i < 0)
		return vm_err_set(err, -ENOENT, "no pmem device '%s' in this VM", p->id);
	next->pmem[i].rate_limiter = p->rate_limiter;
	return 0;
}

/* A drive's image is opened anew only when the PATCH named one (even the
 * same path: the file may have grown). */
static int op_update_drive(void *ctx, const struct vmc_drive *d, bool new_image, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);
	unsigned changes = DEVICE_CHANGE_LIMITS | (new_image ? DEVICE_CHANGE_BACKING : 0);

	return vm ? vm_update_device(vm, "blk", d->drive_id, changes, edit_drive, d, err)
		  : err->code;
}

static int op_update_pmem(void *ctx, const struct vmc_pmem *p, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_update_device(vm, "pmem", p->id, DEVICE_CHANGE_LIMITS, edit_pmem, p, err)
		  : err->code;
}

static int op_update_net(void *ctx, const struct vmc_net *n, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_update_device(vm, "net", n->iface_id, DEVICE_CHANGE_LIMITS, edit_net, n, err)
		  : err->code;
}

/* PATCH /balloon, /balloon/statistics: the entry becomes b (checked by
 * the controller). */
static int edit_balloon(struct vm_config *next, const void *arg, struct vm_err *err)
{
	(void)err;
	next->balloon = *(const struct vmc_balloon *)arg;
	return 0;
}

static int op_update_balloon(void *ctx, const struct vmc_balloon *b, unsigned changes,
			     struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_update_device(vm, "balloon", "balloon", changes, edit_balloon, b, err)
		  : err->code;
}

static int op_balloon_report(void *ctx, void (*emit)(void *e, const char *name, uint64_t v),
			     void *e, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_device_report(vm, "balloon", "balloon", emit, e, err) : err->code;
}

static int op_balloon_command(void *ctx, unsigned cmd, uint64_t arg,
			      void (*emit)(void *e, const char *name, uint64_t v), void *e,
			      struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_device_command(vm, "balloon", "balloon", cmd, arg, emit, e, err) : err->code;
}

/* PATCH /hotplug/memory: the device's new target, kept in the config as
 * the VM's (the controller checked it against the device's geometry). */
static int edit_hotplug(struct vm_config *next, const void *arg, struct vm_err *err)
{
	(void)err;
	next->memory_hotplug.requested_size_mib = *(const uint32_t *)arg;
	return 0;
}

static int op_update_memory_hotplug(void *ctx, uint32_t requested_size_mib, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_update_device(vm, "mem", "memory-hotplug", DEVICE_CHANGE_REQUESTED,
				     edit_hotplug, &requested_size_mib, err)
		  : err->code;
}

struct hotplug_figures {
	uint32_t plugged, requested;
};

static void take_hotplug_figure(void *e, const char *name, uint64_t v)
{
	struct hotplug_figures *f = e;

	if (!strcmp(name, "plugged_size_mib"))
		f->plugged = (uint32_t)v;
	else if (!strcmp(name, "requested_size_mib"))
		f->requested = (uint32_t)v;
}

static int op_memory_hotplug_status(void *ctx, uint32_t *plugged_size_mib,
				    uint32_t *requested_size_mib, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);
	struct hotplug_figures f = {0};
	int r;

	if (!vm)
		return err->code;
	if ((r = vm_device_report(vm, "mem", "memory-hotplug", take_hotplug_figure, &f, err)) < 0)
		return r;
	*plugged_size_mib = f.plugged;
	*requested_size_mib = f.requested;
	return 0;
}

static int op_snapshot_create(void *ctx, const struct vm_snapshot_args *a, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);

	return vm ? vm_snapshot(vm, a, err) : err->code;
}

/* FlushMetrics: on the VM's control thread once it runs, else here. */
static int op_flush_metrics(void *ctx, struct vm_err *err)
{
	struct instance *in = ctx;
	struct vm *vm = atomic_load(&in->vm);
	char why[256];
	int r;

	if (vm)
		return vm_act(vm, VM_ACTION_FLUSH_METRICS, 0, err);
	if ((r = metrics_flush(in->opts.metrics, why, sizeof(why))) < 0)
		return vm_err_set(err, r, "%s", why);
	return 0;
}

static const char *op_state(void *ctx)
{
	struct instance *in = ctx;
	struct vm *vm = atomic_load(&in->vm);

	if (!vm)
		return "Not started";
	/* Between InstanceStart's answer and vm_run starting the vCPUs: the
	 * start was accepted, so the VM runs as far as the API can tell. */
	enum vm_state s = vm_state(vm);
	return vm_state_name(s == VM_STATE_NOT_STARTED ? VM_STATE_RUNNING : s);
}

static const struct api_vm_ops vm_ops = {
    .start = op_start,
    .pause = op_pause,
    .resume = op_resume,
    .ctrl_alt_del = op_ctrl_alt_del,
    .update_drive = op_update_drive,
    .update_net = op_update_net,
    .update_pmem = op_update_pmem,
    .update_balloon = op_update_balloon,
    .balloon_report = op_balloon_report,
    .balloon_command = op_balloon_command,
    .update_memory_hotplug = op_update_memory_hotplug,
    .memory_hotplug_status = op_memory_hotplug_status,
    .flush_metrics = op_flush_metrics,
    .snapshot_create = op_snapshot_create,
    .snapshot_load = op_snapshot_load,
    .set_logger = op_set_logger,
    .set_metrics = op_set_metrics,
    .check_file = op_check_file,
    .check_tap = op_check_tap,
    .check_uds = op_check_uds,
    .state = op_state,
};

/* --- the main thread ----------------------------------------------------- */

/* config_json_read_fn for the files a config file names (a CPU template):
 * of at most max bytes, a named pipe's too, as the config file's. */
static int read_named_file(void *ctx, const char *path, size_t max, char **text, size_t *len,
			   char *why, size_t whylen)
{
	int r = read_named_file_max(path, max, text, len);

	(void)ctx;
	if (r < 0)
		return err_set(why, whylen, r, "%s", r == -EFBIG ? "too large" : strerror(-r));
	return 0;
}

/* Read and parse --config-file into c: a file, a named pipe or /dev/stdin
 * (the operator's own path; Firecracker reads it with read_to_string).
 * 0 or -errno, logged. */
static int load_config_file(const char *path, struct vm_config *c)
{
	char *buf, err[512];
	size_t len;
	int r = read_named_file_max(path, CONFIG_FILE_MAX, &buf, &len);

	if (r < 0) {
		pr_err("config file %s: %s", path,
		       r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
		return r;
	}
	r = config_json_parse_file_read(buf, len, c, read_named_file, NULL, err, sizeof(err));
	free(buf);
	if (r < 0) {
		pr_err("config file %s: %s", path, r == -ENOMEM ? "out of memory" : err);
		return r;
	}
	if (r > 0)
		pr_warn("config file %s: %s", path, err);
	if ((r = vmc_boot_args_check(&c->boot, err, sizeof(err))) < 0) {
		pr_err("config file %s: boot-source: %s", path, err);
		vm_config_free(c);
	}
	return r;
}

/* The signals that end (or, SIGQUIT, are answered in) the wait for
 * InstanceStart, blocked and taken through a signalfd. Opened before the
 * API socket is there and its thread starts: a SIGQUIT sent once the
 * socket is there (which is how a client knows flint waits) must be
 * answered, not go to main.c's SIG_IGN, even while the thread's start
 * briefly blocks every signal (a blocked signal stays pending until
 * unblocked). */
static int open_wait_signals(void)
{
	sigset_t sigs;
	int sfd;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0)
		pr_err("signalfd: %s", strerror(errno));
	return sfd;
}

/* Carry out the API thread's calls until one of them (InstanceStart) has
 * built the VM. Returns 0 with in->vm set, or 128+N for a signal that ends
 * the wait. */
static int wait_for_start(struct instance *in)
{
	int sfd = in->sig_fd, status = 0;

	while (!atomic_load(&in->vm)) {
		struct pollfd p[3] = {{.fd = in->wake_fd, .events = POLLIN},
				      {.fd = sfd, .events = POLLIN},
				      {.fd = metrics_timer_fd(in->opts.metrics), .events = POLLIN}};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("poll: %s", strerror(errno));
			status = EXIT_FLINT_ERROR;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
				/* nothing read */
			} else if (si.ssi_signo == SIGQUIT) {
				/* Where the guest is: there is none yet (as
				 * before vm_run on the command line). */
				pr_info("SIGQUIT: no microVM has started yet");
			} else {
				pr_info("stopped by signal %u before the microVM started",
					si.ssi_signo);
				status = 128 + (int)si.ssi_signo;
				break;
			}
		}
		if (p[2].revents & POLLIN)
			metrics_on_timer(in->opts.metrics);
		if (!(p[0].revents & POLLIN))
			continue;
		eventfd_t v;
		(void)eventfd_read(in->wake_fd, &v);
		pthread_mutex_lock(&in->lock);
		if (in->call && !in->call_done) {
			in->call_err = (struct vm_err){0};
			in->call_r = in->call(in, in->arg, &in->call_err);
			in->call_done = true;
			pthread_cond_broadcast(&in->cond);
		}
		pthread_mutex_unlock(&in->lock);
	}
	return status;
}

/* The API's request counters, in Firecracker's three metrics sections. */
struct api_section {
	json_t *obj;
	const char *prefix; /* "put_api_requests." */
};

static void put_api_counter(void *ctx, const char *name, uint64_t v)
{
	struct api_section *s = ctx;
	size_t n = strlen(s->prefix);

	if (!strncmp(name, s->prefix, n))
		metrics_put(s->obj, name + n, v);
}

#define API_SECTION_FILL(kind)                                                                     \
	static void fill_##kind(void *ctx, json_t *obj)                                            \
	{                                                                                          \
		struct api_section s = {obj, #kind "."};                                           \
		api_ctl_counters(ctx, put_api_counter, &s);                                        \
	}
API_SECTION_FILL(get_api_requests)
API_SECTION_FILL(put_api_requests)
API_SECTION_FILL(patch_api_requests)

static void fill_api_server(void *ctx, json_t *obj)
{
	struct instance *in = ctx;

	metrics_put(obj, "process_startup_time_us", atomic_load(&in->startup_us));
	metrics_put(obj, "process_startup_time_cpu_us", atomic_load(&in->startup_cpu_us));
}

/* Firecracker's "mmds" section. */
static void fill_mmds(void *ctx, json_t *obj)
{
	struct mmds_stack_stats *s = mmds_stats(ctx);

	metrics_put(obj, "rx_accepted", s->rx_accepted);
	metrics_put(obj, "rx_accepted_err", s->rx_accepted_err);
	metrics_put(obj, "rx_accepted_unusual", s->rx_accepted_unusual);
	metrics_put(obj, "rx_bad_eth", s->rx_bad_eth);
	metrics_put(obj, "rx_invalid_token", s->rx_invalid_token);
	metrics_put(obj, "rx_no_token", s->rx_no_token);
	metrics_put(obj, "rx_count", s->rx_count);
	metrics_put(obj, "tx_bytes", s->tx_bytes);
	metrics_put(obj, "tx_count", s->tx_count);
	metrics_put(obj, "tx_frames", s->tx_count);
	metrics_put(obj, "connections_created", s->connections_created);
	metrics_put(obj, "connections_destroyed", s->connections_destroyed);
}

/* The instance's MMDS data store, limited by --mmds-size-limit or else the
 * API's body cap, holding --metadata's document: before the config file
 * and the API, as Firecracker. 0 or -errno, logged. */
static int setup_mmds(struct instance *in)
{
	const struct config *cfg = in->cfg;
	size_t limit = cfg->mmds_size_limit ? cfg->mmds_size_limit
		       : cfg->http_max_body ? cfg->http_max_body
					    : API_MAX_BODY;
	char *buf;
	json_error_t je;
	size_t len;
	char err[512];
	json_t *v;
	int r;

	if ((r = mmds_create(&in->mmds, limit)) < 0) {
		pr_err("MMDS: %s", strerror(-r));
		return r;
	}
	in->opts.mmds = in->mmds;
	if (metrics_add_source(in->opts.metrics, "mmds", fill_mmds, in->mmds) < 0) {
		pr_err("cannot set up the metrics: out of memory");
		return -ENOMEM;
	}
	if (!cfg->metadata)
		return 0;
	/* The operator's own path, read as --config-file is. */
	if ((r = read_named_file_max(cfg->metadata, CLI_MMDS_MAX_LIMIT, &buf, &len)) < 0) {
		pr_err("--metadata %s: %s", cfg->metadata,
		       r == -EFBIG ? "too large" : strerror(-r));
		return r;
	}
	v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!v) {
		pr_err("--metadata %s: not valid JSON: %s (line %d, column %d)", cfg->metadata,
		       je.text, je.line, je.column);
		return -EINVAL;
	}
	r = mmds_put(in->mmds, v, err, sizeof(err));
	json_decref(v);
	if (r < 0)
		pr_err("--metadata %s: populating MMDS from the file failed: %s", cfg->metadata,
		       err);
	return r;
}

/* As Firecracker reports them, once the API is served (or the VM built
 * without it): wall time since --start-time-us; this process's CPU time
 * since --start-time-cpu-us plus --parent-cpu-time-us. */
static void measure_startup(struct instance *in)
{
	const struct config *cfg = in->cfg;
	uint64_t cpu = process_cpu_us();

	if (cfg->has_start_time)
		atomic_store(&in->startup_us, now_us() - cfg->start_time_us);
	if (cfg->has_start_time_cpu)
		atomic_store(&in->startup_cpu_us,
			     (cpu > cfg->start_time_cpu_us ? cpu - cfg->start_time_cpu_us : 0) +
				 cfg->parent_cpu_time_us);
}

/* The config file's logger and the metrics file (the file's, else the
 * command line's). Before any seccomp filter: both open files. */
static int setup_output(struct instance *in, const struct vm_config *c)
{
	const struct config *cfg = in->cfg;
	char why[256];
	int r;

	/* The command line's logger is main's (cli_logger); the file's
	 * section updates it: the level, and the members the section gives. */
	if (c->logger.enabled && (r = logger_configure(&c->logger, cfg->id, why, sizeof(why))) < 0)
		goto fail;
	/* Firecracker initialises its metrics once: the file's section after
	 * --metrics-path is a reinitialisation, which it refuses. */
	if (c->metrics.metrics_path && cfg->metrics_path) {
		pr_err("--metrics-path %s and the config file's metrics (%s): metrics are "
		       "configured once",
		       cfg->metrics_path, c->metrics.metrics_path);
		return -EINVAL;
	}
	const char *path = c->metrics.metrics_path ? c->metrics.metrics_path : cfg->metrics_path;
	if (path) {
		struct vmc_metrics m = {.metrics_path = (char *)path};
		if ((r = metrics_configure(in->opts.metrics, &m, why, sizeof(why))) < 0)
			goto fail;
	}
	return 0;
fail:
	pr_err("%s", why);
	return r;
}

void instance_restore_args(const struct config *cfg, struct vm_restore_args *a,
			   struct restore_overrides *ov)
{
	*a = (struct vm_restore_args){
	    .snapshot_path = cfg->restore,
	    .backend = cfg->uffd_sock ? VM_MEM_UFFD : VM_MEM_FILE,
	    .backend_path = cfg->uffd_sock ? cfg->uffd_sock : cfg->mem_file,
	    .mem_diff_path = cfg->mem_diff,
	    .track_dirty_pages = cfg->track_dirty_pages,
	    .resume_vm = !cfg->restore_paused,
	    .clock_realtime = !cfg->keep_clock,
	    .net_overrides = ov->net,
	    .n_net_overrides = cfg->n_net_override,
	    .vsock_uds_path = cfg->vsock_override,
	    .drive_overrides = ov->drive,
	    .n_drive_overrides = cfg->n_drive_override,
	    .workset_path = cfg->workset,
	    .record_workset_path = cfg->record_workset,
	};
	/* IFACE=TAP, checked by cli_parse. */
	for (unsigned i = 0; i < cfg->n_net_override; i++) {
		const char *spec = cfg->net_override[i], *eq = strchr(spec, '=');
		snprintf(ov->names[i], sizeof(ov->names[i]), "%.*s", (int)(eq - spec), spec);
		ov->net[i] =
		    (struct vm_net_override){.iface_id = ov->names[i], .host_dev_name = eq + 1};
	}
	/* ID=PATH, ID at most VMC_MAX_ID bytes (cli_parse). */
	for (unsigned i = 0; i < cfg->n_drive_override; i++) {
		const char *spec = cfg->drive_override[i], *eq = strchr(spec, '=');
		snprintf(ov->drive_ids[i], sizeof(ov->drive_ids[i]), "%.*s", (int)(eq - spec),
			 spec);
		ov->drive[i] = (struct vm_drive_override){.drive_id = ov->drive_ids[i],
							  .path_on_host = eq + 1};
	}
}

/* --restore: the VM from a snapshot, as PUT /snapshot/load would build it;
 * its configuration into *c (for the API beside it). 0 or -errno, logged. */
static int restore_from_cli(const struct config *cfg, const struct vm_opts *o, struct vm **vm,
			    struct vm_config *c)
{
	struct restore_overrides ov;
	struct vm_restore_args a;
	int r;

	instance_restore_args(cfg, &a, &ov);
	if ((r = vm_restore(vm, &a, o)) < 0)
		return r;
	vm_config_free(c);
	if ((r = vm_config_copy(c, vm_get_config(*vm))) < 0) {
		pr_err("out of memory");
		vm_destroy(*vm);
		*vm = NULL;
	}
	return r;
}

int instance_main(const struct config *cfg)
{
	struct instance in = {.cfg = cfg, .wake_fd = -1, .sig_fd = -1};
	struct api_ctl *ctl = NULL;
	struct api_http *http = NULL;
	struct ctlfd *control = NULL;
	struct vm_config c;
	struct vm *vm = NULL;
	char err[512];
	int status = EXIT_FLINT_ERROR;
	/* A machine from the file or the command line boots at once; the API
	 * is served unless --no-api, and beside a command-line machine only
	 * when --api-sock asks for it. */
	bool preset = cfg->config_file || cfg->kernel || cfg->restore;
	bool serve = !cfg->no_api && (cfg->api_sock || !(cfg->kernel || cfg->restore));

	vm_config_init(&c);
	pthread_mutex_init(&in.lock, NULL);
	pthread_cond_init(&in.cond, NULL);
	instance_vm_opts(cfg, &in.opts);
	logger_thread_name("main");
	if (metrics_create(&in.opts.metrics) < 0 ||
	    metrics_add_gauges(in.opts.metrics, "api_server", fill_api_server, &in) < 0) {
		pr_err("cannot set up the metrics: out of memory");
		goto out;
	}
	if (setup_mmds(&in) < 0)
		goto out;
	if (cfg->config_file && load_config_file(cfg->config_file, &c) < 0)
		goto out;
	if (cfg->kernel) {
		int r = vm_config_from_cli(&c, cfg, err, sizeof(err));
		if (r < 0) {
			pr_err("%s", r == -ENOMEM ? "out of memory" : err);
			goto out;
		}
	}
	if ((in.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		pr_err("eventfd: %s", strerror(errno));
		goto out;
	}
	if (setup_output(&in, &c) < 0)
		goto out;
	/* --metrics-path is the instance's metrics configuration, as if PUT:
	 * FlushMetrics works, a PUT /metrics is a reinitialisation. */
	if (cfg->metrics_path && !c.metrics.metrics_path) {
		struct vmc_metrics m = {.metrics_path = strdup(cfg->metrics_path)};
		if (!m.metrics_path) {
			pr_err("out of memory");
			goto out;
		}
		vm_config_set_metrics(&c, &m);
	}
	/* The API thread applies its filter as it starts: the policy first. */
	const char *test = cfg->seccomp_test;
	if (seccomp_configure(cfg->seccomp, test ? seccomp_thread_by_name(test) : -1) < 0)
		goto out;
	if (preset) {
		if ((cfg->restore ? restore_from_cli(cfg, &in.opts, &vm, &c)
				  : vm_create(&vm, &c, &in.opts)) < 0)
			goto out;
		atomic_store(&in.vm, vm);
	}
	if (!vm && (in.sig_fd = open_wait_signals()) < 0)
		goto out;
	if (serve) {
		const char *sock = cfg->api_sock ? cfg->api_sock : API_DEFAULT_SOCK;
		if (api_ctl_create(&ctl, cfg->id, &c, &vm_ops, &in) < 0) {
			pr_err("out of memory");
			goto out;
		}
		if (cfg->http_max_body)
			api_ctl_set_max_body(ctl, cfg->http_max_body);
		api_ctl_set_mmds(ctl, in.mmds);
		if (preset)
			api_ctl_mark_started(ctl);
		if (metrics_add_source(in.opts.metrics, "get_api_requests", fill_get_api_requests,
				       ctl) < 0 ||
		    metrics_add_source(in.opts.metrics, "put_api_requests", fill_put_api_requests,
				       ctl) < 0 ||
		    metrics_add_source(in.opts.metrics, "patch_api_requests",
				       fill_patch_api_requests, ctl) < 0) {
			pr_err("cannot set up the metrics: out of memory");
			goto out;
		}
		if (api_http_start(&http, sock, ctl, err, sizeof(err)) < 0) {
			pr_err("API socket %s: %s", sock, err);
			goto out;
		}
		pr_debug("API listening on %s %llu us after launch", sock,
			 (unsigned long long)us_since_launch());
	}
	measure_startup(&in);
	if (!vm && (status = wait_for_start(&in)) != 0)
		goto out;
	if (in.sig_fd >= 0) {
		/* vm_run takes the signals through its own. */
		close(in.sig_fd);
		in.sig_fd = -1;
	}
	vm = atomic_load(&in.vm);
	/* Before vm_run's seccomp filter: the thread gets none from this one. */
	if (cfg->control_fd && ctlfd_start(&control, cfg->control_fd, vm) < 0)
		goto out;
	struct vm_exit how;
	vm_run(vm, &how);
	status = instance_exit_status(&how);
	/* A last line, as Firecracker writes when it exits. */
	if (metrics_flush(in.opts.metrics, err, sizeof(err)) < 0)
		pr_warn("metrics: %s", err);
out:
	/* The API thread may be waiting for InstanceStart's answer: give it
	 * one, then stop the thread before the VM goes. */
	pthread_mutex_lock(&in.lock);
	in.closing = true;
	pthread_cond_broadcast(&in.cond);
	pthread_mutex_unlock(&in.lock);
	/* A VM that never ran (--control-fd's thread did not start) answers
	 * the API's calls queued for it, or the thread's join would wait. */
	vm_refuse_actions(atomic_load(&in.vm));
	api_http_stop(http);
	ctlfd_stop(control);
	vm_destroy(atomic_load(&in.vm));
	if (in.opts.metrics && ctl)
		metrics_remove_sources(in.opts.metrics, ctl);
	api_ctl_destroy(ctl);
	metrics_destroy(in.opts.metrics);
	mmds_destroy(in.mmds);
	vm_config_free(&c);
	if (in.wake_fd >= 0)
		close(in.wake_fd);
	if (in.sig_fd >= 0)
		close(in.sig_fd);
	pthread_cond_destroy(&in.cond);
	pthread_mutex_destroy(&in.lock);
	return status;
}
