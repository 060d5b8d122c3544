/* flint --control-fd's requests (runner/cmd/ctlfd.c): each line's answer,
 * with a stand-in for vm_reset; the thread on a socketpair with stand-ins
 * for the VM. The thread and the fd are exercised by the smoke test
 * (tests/smoke/reset.sh) against a real restored VM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd/ctlfd.h"

struct fake {
	int ret;
	const char *msg;
	unsigned calls, wheres;
};

static int fake_reset(void *ctx, struct vm_err *err)
{
	struct fake *f = ctx;

	f->calls++;
	if (f->ret < 0)
		return vm_err_set(err, f->ret, "%s", f->msg);
	return 0;
}

static void fake_where(void *ctx)
{
	struct fake *f = ctx;

	f->wheres++;
}

static void fake_stop(void *ctx, int status, const char *why)
{
	(void)ctx;
	(void)status;
	(void)why;
}

static const struct ctlfd_ops fake_ops = {
    .reset = fake_reset, .where = fake_where, .stop = fake_stop};

Test(ctlfd, reset_ok_gives_the_time)
{
	struct fake f = {0};
	char ans[600];
	unsigned long long us;

	cr_assert(ctlfd_answer("reset", &fake_ops, &f, ans, sizeof(ans)));
	cr_assert_eq(f.calls, 1);
	cr_assert_eq(sscanf(ans, "ok %llu\n", &us), 1, "%s", ans);
	cr_assert_eq(ans[strlen(ans) - 1], '\n');
	cr_assert_eq(strchr(ans, '\n'), ans + strlen(ans) - 1, "one line");
}

Test(ctlfd, reset_error_is_one_line_with_the_message)
{
	struct fake f = {.ret = -EOPNOTSUPP, .msg = "this VM cannot be reset: Uffd\nsecond line"};
	char ans[600];

	cr_assert(ctlfd_answer("reset", &fake_ops, &f, ans, sizeof(ans)));
	cr_assert_str_eq(ans, "error this VM cannot be reset: Uffd\n");
	f.msg = "";
	cr_assert(ctlfd_answer("reset", &fake_ops, &f, ans, sizeof(ans)));
	cr_assert_str_eq(ans, "error Operation not supported\n");
}

Test(ctlfd, unknown_requests_touch_nothing)
{
	struct fake f = {0};
	char ans[600];
	static const char *const bad[] = {"", "Reset", "reset now", "stop", " reset", "where?"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_not(ctlfd_answer(bad[i], &fake_ops, &f, ans, sizeof(ans)));
		cr_assert(!strncmp(ans, "error unknown request", 21), "%s", ans);
		cr_assert_eq(ans[strlen(ans) - 1], '\n');
	}
	cr_assert_eq(f.calls, 0);
	cr_assert_eq(f.wheres, 0);
}

/* "where": the VM will say where its vCPUs were when it stops. */
Test(ctlfd, where_asks_for_the_vcpus_at_the_stop)
{
	struct fake f = {0};
	char ans[600];

	cr_assert(ctlfd_answer("where", &fake_ops, &f, ans, sizeof(ans)));
	cr_assert_str_eq(ans, "ok\n");
	cr_assert_eq(f.wheres, 1);
	cr_assert_eq(f.calls, 0);
}

/* A peer that sends requests and reads no answer: the thread, its answers
 * refused, still ends at ctlfd_stop (it waited in write(), and flint's
 * exit in the join, for good). */
Test(ctlfd, a_peer_that_reads_no_answer_does_not_hold_the_stop, .timeout = 20)
{
	struct fake f = {0};
	struct ctlfd *c;
	int s[2];
	static const char req[] = "where\n";

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	cr_assert_eq(ctlfd_start_ops(&c, s[1], &fake_ops, &f), 0);
	/* Requests until the thread, stuck on answers nobody reads, takes no
	 * more of them. */
	for (int quiet = 0; quiet < 20;) {
		if (send(s[0], req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
			quiet = 0;
			continue;
		}
		cr_assert_eq(errno, EAGAIN);
		quiet++;
		usleep(10000);
	}
	cr_assert_gt(f.wheres, 0);
	ctlfd_stop(c);
	close(s[0]);
}
