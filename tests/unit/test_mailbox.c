/* The control mailbox: a control thread of the test's own runs the actions
 * that other threads submit; they must run one at a time in submission
 * order, each caller getting its own answer, and a close must answer
 * everything still queued. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/mailbox.h"

enum { ACT_ECHO, ACT_FAIL, ACT_GATE, ACT_CALL_SELF };

#define LOG_MAX 4096

static struct {
	struct mailbox *mb;
	pthread_t thread;
	atomic_bool quit;
	atomic_int running; /* actions inside exec at once */
	atomic_int max_running;
	sem_t gate_entered, gate_open;
	pthread_mutex_t lock;
	long log[LOG_MAX];
	unsigned nlog;
	int self_call; /* what mailbox_call answered on the control thread */
} c;

static void exec(void *ctx, int action, long arg, struct vm_err *err)
{
	int now = atomic_fetch_add(&c.running, 1) + 1;
	int max = atomic_load(&c.max_running);

	(void)ctx;
	while (now > max && !atomic_compare_exchange_weak(&c.max_running, &max, now))
		;
	pthread_mutex_lock(&c.lock);
	if (c.nlog < LOG_MAX)
		c.log[c.nlog++] = arg;
	pthread_mutex_unlock(&c.lock);
	switch (action) {
	case ACT_ECHO:
		vm_err_set(err, 0, "echo %ld", arg);
		break;
	case ACT_FAIL:
		vm_err_set(err, -EPERM, "refused %ld", arg);
		break;
	case ACT_GATE:
		sem_post(&c.gate_entered);
		sem_wait(&c.gate_open);
		vm_err_set(err, 0, "gate passed");
		break;
	case ACT_CALL_SELF: {
		struct vm_err inner;
		c.self_call = mailbox_call(c.mb, ACT_ECHO, 0, &inner);
		break;
	}
	}
	atomic_fetch_sub(&c.running, 1);
}

/* The control thread: poll the mailbox as vm_run does. */
static void *control_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&c.quit)) {
		struct pollfd p = {.fd = mailbox_fd(c.mb), .events = POLLIN};
		if (poll(&p, 1, 10) > 0 && (p.revents & POLLIN))
			mailbox_run(c.mb, exec, NULL);
	}
	return NULL;
}

static void setup(void)
{
	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	sem_init(&c.gate_entered, 0, 0);
	sem_init(&c.gate_open, 0, 0);
	cr_assert_eq(mailbox_create(&c.mb), 0);
	cr_assert_eq(pthread_create(&c.thread, NULL, control_thread, NULL), 0);
}

static void teardown(void)
{
	atomic_store(&c.quit, true);
	pthread_join(c.thread, NULL);
	mailbox_destroy(c.mb);
}

TestSuite(mailbox, .init = setup, .fini = teardown, .timeout = 20);

Test(mailbox, each_call_gets_its_own_answer_in_order)
{
	struct vm_err err;

	for (long i = 0; i < 50; i++) {
		int act = i % 3 == 2 ? ACT_FAIL : ACT_ECHO;
		char want[64];
		int r = mailbox_call(c.mb, act, i, &err);
		snprintf(want, sizeof(want), "%s %ld", act == ACT_FAIL ? "refused" : "echo", i);
		cr_assert_eq(r, act == ACT_FAIL ? -EPERM : 0);
		cr_assert_eq(err.code, r);
		cr_assert_str_eq(err.msg, want);
	}
	cr_assert_eq(c.nlog, 50);
	for (unsigned i = 0; i < c.nlog; i++)
		cr_assert_eq(c.log[i], (long)i);
}

#define THREADS 8
#define CALLS	200

static void *submitter(void *arg)
{
	long t = (long)arg;
	struct vm_err err;

	for (long i = 0; i < CALLS; i++) {
		char want[64];
		long v = t * 1000 + i;
		snprintf(want, sizeof(want), "echo %ld", v);
		if (mailbox_call(c.mb, ACT_ECHO, v, &err) != 0 || strcmp(err.msg, want))
			return (void *)1;
	}
	return NULL;
}

Test(mailbox, many_threads_one_action_at_a_time_each_in_its_order)
{
	pthread_t th[THREADS];

	for (long t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, submitter, (void *)t), 0);
	for (int t = 0; t < THREADS; t++) {
		void *ret;
		pthread_join(th[t], &ret);
		cr_assert_null(ret, "thread %d got an answer not its own", t);
	}
	cr_assert_eq(c.nlog, THREADS * CALLS);
	cr_assert_eq(atomic_load(&c.max_running), 1, "actions overlapped");
	/* Each thread's actions ran in the order it submitted them. */
	long next[THREADS] = {0};
	for (unsigned i = 0; i < c.nlog; i++) {
		long t = c.log[i] / 1000, n = c.log[i] % 1000;
		cr_assert_eq(n, next[t], "thread %ld: action %ld ran before %ld", t, n, next[t]);
		next[t]++;
	}
}

struct queued {
	pthread_t th;
	long arg;
	int r;
	struct vm_err err;
};

static void *queue_one(void *arg)
{
	struct queued *q = arg;
	q->r = mailbox_call(c.mb, ACT_ECHO, q->arg, &q->err);
	return NULL;
}

static void *call_gate(void *arg)
{
	struct queued *q = arg;
	q->r = mailbox_call(c.mb, ACT_GATE, -1, &q->err);
	return NULL;
}

/* Read the eventfd until n wake-ups were counted: the submitters that write
 * them have queued their actions by then. */
static void wait_for_wakeups(unsigned n)
{
	uint64_t total = 0;
	while (total < n) {
		eventfd_t v;
		if (eventfd_read(mailbox_fd(c.mb), &v) == 0)
			total += v;
		else
			usleep(1000);
	}
}

/* The VM stops while a long action runs and others wait behind it: those
 * are answered with the stop at once, the running one gets its own answer,
 * and later calls are refused without waiting. */
Test(mailbox, a_close_answers_what_is_queued_and_refuses_what_comes_later)
{
	struct queued gate = {0}, q[5];
	struct vm_err err;

	cr_assert_eq(pthread_create(&gate.th, NULL, call_gate, &gate), 0);
	/* The control thread is inside the gate, and took its wake-up. */
	sem_wait(&c.gate_entered);
	for (long i = 0; i < 5; i++) {
		q[i] = (struct queued){.arg = i};
		cr_assert_eq(pthread_create(&q[i].th, NULL, queue_one, &q[i]), 0);
	}
	wait_for_wakeups(5);
	cr_assert_not(mailbox_closed(c.mb));
	mailbox_close(c.mb, -ESHUTDOWN, "the VM has stopped");
	cr_assert(mailbox_closed(c.mb));
	for (int i = 0; i < 5; i++) {
		pthread_join(q[i].th, NULL);
		cr_assert_eq(q[i].r, -ESHUTDOWN);
		cr_assert_eq(q[i].err.code, -ESHUTDOWN);
		cr_assert_str_eq(q[i].err.msg, "the VM has stopped");
	}
	/* A later call, and a second close, change nothing. */
	mailbox_close(c.mb, -EIO, "another reason");
	cr_assert_eq(mailbox_call(c.mb, ACT_ECHO, 99, &err), -ESHUTDOWN);
	cr_assert_str_eq(err.msg, "the VM has stopped");
	/* The action that was running gets its own answer. */
	sem_post(&c.gate_open);
	pthread_join(gate.th, NULL);
	cr_assert_eq(gate.r, 0);
	cr_assert_str_eq(gate.err.msg, "gate passed");
	cr_assert_eq(c.nlog, 1, "only the gate ran");
	cr_assert_eq(c.log[0], -1);
}

Test(mailbox, the_control_thread_cannot_wait_for_itself)
{
	struct vm_err err;

	cr_assert_eq(mailbox_call(c.mb, ACT_CALL_SELF, 7, &err), 0);
	cr_assert_eq(c.self_call, -EDEADLK);
	cr_assert_eq(c.nlog, 1, "the inner call did not run");
}

Test(mailbox, a_wake_up_alone_runs_nothing)
{
	struct mailbox *mb;
	struct pollfd p;

	cr_assert_eq(mailbox_create(&mb), 0);
	p = (struct pollfd){.fd = mailbox_fd(mb), .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 0), 0);
	mailbox_wake(mb);
	cr_assert_eq(poll(&p, 1, 0), 1, "a wake-up makes the fd readable");
	cr_assert_eq(mailbox_run(mb, exec, NULL), 0);
	cr_assert_eq(poll(&p, 1, 0), 0, "mailbox_run took it");
	mailbox_destroy(mb);
	mailbox_destroy(NULL);
}

Test(mailbox, vm_err_set_formats_and_truncates)
{
	struct vm_err e;
	char big[sizeof(e.msg) + 100];

	cr_assert_eq(vm_err_set(&e, -EINVAL, "vcpu_count: %d is not 1 to %d", 0, 32), -EINVAL);
	cr_assert_eq(e.code, -EINVAL);
	cr_assert_str_eq(e.msg, "vcpu_count: 0 is not 1 to 32");
	cr_assert_eq(vm_err_set(&e, 0, NULL), 0);
	cr_assert_str_eq(e.msg, "");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vm_err_set(&e, -E2BIG, "%s", big);
	cr_assert_eq(strlen(e.msg), sizeof(e.msg) - 1);
}
