/* The pause smoke test: flint's own objects boot the tiny guest's COUNT
 * variant (a "tick N" line about every 25 ms) with two vCPUs under the
 * seccomp filters, and a second thread drives the VM through vm_act() as
 * the API will: pause (the ticks stop), pause again, resume (they go on
 * from where they stopped), pause, then stop while paused. The guest's
 * console goes to OUT. Prints PASS or FAIL lines like run.sh; exits 0 when
 * all passed.
 * Usage: vm-pause-test TINY-COUNT.ELF OUT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/cli.h"
#include "config/vm_config_cli.h"
#include "core/vm.h"

static int failed;
static FILE *verdicts;

static void check(bool ok, const char *what, const char *fmt, ...) PRINTF(3, 4);
static void check(bool ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		fprintf(verdicts, "PASS %s\n", what);
		return;
	}
	failed++;
	fprintf(verdicts, "FAIL %s (", what);
	va_start(ap, fmt);
	vfprintf(verdicts, fmt, ap);
	va_end(ap);
	fprintf(verdicts, ")\n");
}

static const char *out_path;

/* The last tick the guest printed (0 for none), and whether the ticks so
 * far count 1, 2, 3... without a gap. */
static unsigned long last_tick(bool *consecutive)
{
	char line[128];
	unsigned long last = 0, n;
	FILE *f = fopen(out_path, "r");

	*consecutive = true;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "tick %lx", &n) == 1) {
			if (n != last + 1)
				*consecutive = false;
			last = n;
		}
	fclose(f);
	return last;
}

/* Wait up to 10 s for a tick past `past`; the last tick seen. */
static unsigned long wait_tick_past(unsigned long past)
{
	bool consecutive;
	unsigned long t = 0;

	for (int i = 0; i < 1000 && (t = last_tick(&consecutive)) <= past; i++)
		usleep(10 * 1000);
	return t;
}

static const char *state(struct vm *vm)
{
	return vm_state_name(vm_state(vm));
}

struct runner {
	struct vm *vm;
	struct vm_exit how;
};

static void *run_vm(void *arg)
{
	struct runner *r = arg;
	vm_run(r->vm, &r->how);
	return NULL;
}

int main(int argc, char **argv)
{
	char *args[] = {"flint", "--kernel", NULL, "--vcpus", "2", "--mem", "32M", NULL};
	struct config cfg;
	struct runner r = {0};
	struct vm_err err;
	pthread_t th;
	char why[256];
	bool consecutive;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s TINY-COUNT.ELF OUT\n", argv[0]);
		return 2;
	}
	launch_ns = now_ns();
	args[2] = argv[1];
	out_path = argv[2];
	if (cli_parse(ARRAY_SIZE(args) - 1, args, &cfg, why, sizeof(why)) != CLI_RUN) {
		fprintf(stderr, "%s\n", why);
		return 2;
	}
	/* The guest's console is flint's stdout: make that OUT, and print
	 * the verdicts on the original stdout. */
	int verdict_fd = dup(STDOUT_FILENO);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (verdict_fd < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
	    !(verdicts = fdopen(verdict_fd, "w")) || !freopen("/dev/null", "r", stdin)) {
		perror(out_path);
		return 2;
	}
	close(fd);
	setvbuf(verdicts, NULL, _IOLBF, 0);

	struct vm_opts o = {.console_out = STDOUT_FILENO};
	struct vm_config c;
	if (vm_config_from_cli(&c, &cfg, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s\n", why);
		return 2;
	}
	if (vm_create(&r.vm, &c, &o) < 0)
		return 2;
	vm_config_free(&c);
	check(vm_state(r.vm) == VM_STATE_NOT_STARTED, "state before vm_run", "%s", state(r.vm));
	if (pthread_create(&th, NULL, run_vm, &r))
		return 2;
	unsigned long t = wait_tick_past(2);
	check(t > 2, "the guest ticks", "last tick %lu", t);
	check(vm_state(r.vm) == VM_STATE_RUNNING, "state running", "%s", state(r.vm));

	int rc = vm_act(r.vm, VM_ACTION_PAUSE, 0, &err);
	check(rc == 0, "pause answered", "%d %s", rc, err.msg);
	check(vm_state(r.vm) == VM_STATE_PAUSED, "state paused", "%s", state(r.vm));
	unsigned long paused = last_tick(&consecutive);
	usleep(500 * 1000); /* 20 ticks' time */
	t = last_tick(&consecutive);
	check(t == paused, "no tick while paused", "tick %lu at the pause, %lu 0.5 s later", paused,
	      t);
	rc = vm_act(r.vm, VM_ACTION_PAUSE, 0, &err);
	check(rc == 0 && vm_state(r.vm) == VM_STATE_PAUSED, "a second pause succeeds", "%d %s", rc,
	      err.msg);

	rc = vm_act(r.vm, VM_ACTION_RESUME, 0, &err);
	check(rc == 0, "resume answered", "%d %s", rc, err.msg);
	check(vm_state(r.vm) == VM_STATE_RUNNING, "state running again", "%s", state(r.vm));
	t = wait_tick_past(paused + 5);
	check(t > paused + 5, "ticks after the resume", "tick %lu at the pause, %lu after", paused,
	      t);
	rc = vm_act(r.vm, VM_ACTION_RESUME, 0, &err);
	check(rc == 0, "a second resume succeeds", "%d %s", rc, err.msg);

	rc = vm_act(r.vm, VM_ACTION_PAUSE, 0, &err);
	check(rc == 0, "pause again", "%d %s", rc, err.msg);
	rc = vm_act(r.vm, VM_ACTION_STOP, 7, &err);
	check(rc == 0, "stop while paused answered", "%d %s", rc, err.msg);
	pthread_join(th, NULL);
	check(r.how.reason == STOP_REQUESTED && r.how.value == 7,
	      "vm_run says the stop action stopped it, with its value", "reason %d value %d",
	      r.how.reason, r.how.value);
	check(vm_state(r.vm) == VM_STATE_STOPPED, "state stopped", "%s", state(r.vm));
	rc = vm_act(r.vm, VM_ACTION_RESUME, 0, &err);
	check(rc == -ESHUTDOWN && !strcmp(err.msg, "the VM has stopped"),
	      "actions after the stop are refused", "%d %s", rc, err.msg);
	t = last_tick(&consecutive);
	check(consecutive, "the ticks count on without a gap", "last tick %lu", t);

	vm_destroy(r.vm);
	cli_config_free(&cfg);
	return failed ? 1 : 0;
}
