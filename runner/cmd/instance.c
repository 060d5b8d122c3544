#include "cmd/instance.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <jansson.h>
#include <unistd.h>

#include "api/controller.h"
#include "api/http.h"
#include "cmd/run.h"
#include "config/config_json.h"
#include "config/vm_config_cli.h"
#include "core/seccomp.h"
#include "core/util.h"

/* A config file larger than this is refused (Firecracker's are a few KiB). */
#define CONFIG_FILE_MAX (1 << 20)

/* The instance: the VM once it exists, and the hand-over of InstanceStart
 * from the API thread to the main thread, which builds and runs the VM. */
struct instance {
	const struct config *cfg;
	struct vm_opts opts;
	struct vm *_Atomic vm;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake_fd;			/* eventfd: a start was asked for */
	const struct vm_config *start;	/* the API thread's request, NULL for none */
	bool start_done;
	bool closing; /* the main thread has stopped taking requests */
	int start_r;
	struct vm_err start_err;
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
	    .seccomp_log = cfg->seccomp_log,
	    .seccomp_test = cfg->seccomp_test,
	};
}

/* --- what the API asks of the VM (struct api_vm_ops) ---------------------
 * On the API thread, under its seccomp filter: each hands its work to the
 * VM's control thread (the mailbox) or to the main thread, and waits. */

static int op_start(void *ctx, const struct vm_config *c, struct vm_err *err)
{
	struct instance *in = ctx;

	pthread_mutex_lock(&in->lock);
	if (in->closing) {
		pthread_mutex_unlock(&in->lock);
		return vm_err_set(err, -ESHUTDOWN, "flint is shutting down");
	}
	in->start = c;
	in->start_done = false;
	if (eventfd_write(in->wake_fd, 1) < 0) {
		in->start = NULL;
		pthread_mutex_unlock(&in->lock);
		return vm_err_set(err, -EIO, "cannot reach the VM's main thread");
	}
	while (!in->start_done && !in->closing)
		pthread_cond_wait(&in->cond, &in->lock);
	in->start = NULL;
	int r = in->start_done ? in->start_r : -ESHUTDOWN;
	if (in->start_done)
		*err = in->start_err;
	else
		vm_err_set(err, r, "flint is shutting down");
	pthread_mutex_unlock(&in->lock);
	return r;
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

static int op_update_drive(void *ctx, const struct vmc_drive *d, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);
	return vm ? vm_update_drive(vm, d, err) : err->code;
}

static int op_update_net(void *ctx, const struct vmc_net *n, struct vm_err *err)
{
	struct vm *vm = started_vm(ctx, err);
	return vm ? vm_update_net(vm, n, err) : err->code;
}

static const char *op_state(void *ctx)
{
	struct instance *in = ctx;
	struct vm *vm = atomic_load(&in->vm);
	return vm ? vm_state_name(vm_state(vm)) : "Not started";
}

static const struct api_vm_ops vm_ops = {
    .start = op_start,
    .pause = op_pause,
    .resume = op_resume,
    .ctrl_alt_del = op_ctrl_alt_del,
    .update_drive = op_update_drive,
    .update_net = op_update_net,
    .state = op_state,
};

/* --- the main thread ----------------------------------------------------- */

/* Read and parse --config-file into c. 0 or -errno, logged. */
static int load_config_file(const char *path, struct vm_config *c)
{
	const uint8_t *buf;
	uint64_t len;
	char err[512];
	int r = map_file(path, CONFIG_FILE_MAX, &buf, &len);

	if (r < 0) {
		pr_err("config file %s: %s", path,
		       r == -EFBIG ? "larger than 1 MiB" : r == -EINVAL ? "not a regular file"
								 : strerror(-r));
		return r;
	}
	r = config_json_parse_file((const char *)buf, len, c, err, sizeof(err));
	unmap_file(buf, len);
	if (r < 0)
		pr_err("config file %s: %s", path, r == -ENOMEM ? "out of memory" : err);
	return r;
}

/* Wait for InstanceStart and build the VM it asks for, answering the API
 * thread; on to the next request when that fails. Returns 0 with in->vm
 * set, or 128+N for a signal that ends the wait. */
static int wait_for_start(struct instance *in)
{
	sigset_t sigs;
	int sfd, status = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		pr_err("signalfd: %s", strerror(errno));
		return EXIT_FLINT_ERROR;
	}
	while (!atomic_load(&in->vm)) {
		struct pollfd p[2] = {{.fd = in->wake_fd, .events = POLLIN},
				      {.fd = sfd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("poll: %s", strerror(errno));
			status = EXIT_FLINT_ERROR;
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				pr_info("stopped by signal %u before the microVM started",
					si.ssi_signo);
				status = 128 + (int)si.ssi_signo;
				break;
			}
		}
		if (!(p[0].revents & POLLIN))
			continue;
		eventfd_t v;
		(void)eventfd_read(in->wake_fd, &v);
		pthread_mutex_lock(&in->lock);
		if (in->start && !in->start_done) {
			struct vm *vm = NULL;
			in->start_err = (struct vm_err){0};
			in->start_r = vm_create(&vm, in->start, &in->opts);
			if (in->start_r < 0)
				vm_err_set(&in->start_err, in->start_r,
					   "Cannot start the microVM: %s (flint's log says more)",
					   strerror(-in->start_r));
			atomic_store(&in->vm, vm);
			in->start_done = true;
			pthread_cond_broadcast(&in->cond);
		}
		pthread_mutex_unlock(&in->lock);
	}
	close(sfd);
	return status;
}

int instance_main(const struct config *cfg)
{
	struct instance in = {.cfg = cfg, .wake_fd = -1};
	struct api_ctl *ctl = NULL;
	struct api_http *http = NULL;
	struct vm_config c;
	struct vm *vm = NULL;
	char err[512];
	int status = EXIT_FLINT_ERROR;
	/* A machine from the file or the command line boots at once; the API
	 * is served unless --no-api, and beside a command-line machine only
	 * when --api-sock asks for it. */
	bool preset = cfg->config_file || cfg->kernel;
	bool serve = !cfg->no_api && (cfg->api_sock || !cfg->kernel);

	vm_config_init(&c);
	pthread_mutex_init(&in.lock, NULL);
	pthread_cond_init(&in.cond, NULL);
	instance_vm_opts(cfg, &in.opts);
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
	/* The API thread applies its filter as it starts: the policy first. */
	const char *test = cfg->seccomp_test;
	if (seccomp_configure(cfg->seccomp_log, test ? seccomp_thread_by_name(test) : -1) < 0)
		goto out;
	if (preset) {
		if (vm_create(&vm, &c, &in.opts) < 0)
			goto out;
		atomic_store(&in.vm, vm);
	}
	if (serve) {
		const char *sock = cfg->api_sock ? cfg->api_sock : API_DEFAULT_SOCK;
		if (api_ctl_create(&ctl, cfg->id, preset ? &c : NULL, &vm_ops, &in) < 0) {
			pr_err("out of memory");
			goto out;
		}
		if (preset)
			api_ctl_mark_started(ctl);
		/* What the API thread's libraries would otherwise open under its
		 * filter: jansson's hash seed (/dev/urandom) and the time zone
		 * libmicrohttpd's Date header reads (/etc/localtime). */
		json_object_seed(0);
		tzset();
		if (api_http_start(&http, sock, ctl, err, sizeof(err)) < 0) {
			pr_err("API socket %s: %s", sock, err);
			goto out;
		}
		pr_debug("API listening on %s %llu us after launch", sock,
			 (unsigned long long)us_since_launch());
	}
	if (!vm && (status = wait_for_start(&in)) != 0)
		goto out;
	vm = atomic_load(&in.vm);
	struct vm_exit how;
	vm_run(vm, &how);
	status = instance_exit_status(&how);
out:
	/* The API thread may be waiting for InstanceStart's answer: give it
	 * one, then stop the thread before the VM goes. */
	pthread_mutex_lock(&in.lock);
	in.closing = true;
	pthread_cond_broadcast(&in.cond);
	pthread_mutex_unlock(&in.lock);
	api_http_stop(http);
	vm_destroy(atomic_load(&in.vm));
	api_ctl_destroy(ctl);
	vm_config_free(&c);
	if (in.wake_fd >= 0)
		close(in.wake_fd);
	pthread_cond_destroy(&in.cond);
	pthread_mutex_destroy(&in.lock);
	return status;
}
