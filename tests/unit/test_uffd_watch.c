/* uffd_watch: the main thread's watch over the Uffd backend, against a
 * real userfaultfd over a gmem's memory, a socketpair as the handler's
 * connection and threads that fault on its pages. A handler that clears
 * O_NONBLOCK on the file it shares neither spins nor blocks the watch,
 * which still finds the fault nobody answers. Skipped where the host gives
 * no userfaultfd. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/util.h"
#include "snapshot/uffd.h"
#include "snapshot/uffd_watch.h"

#define PG     4096ull
#define SIZE   (4ull << 20)
#define SECOND 1000000000ull

static struct gmem *g;
static int fd = -1, sv[2] = {-1, -1};
static char err[512], why[128];
static unsigned lost_calls;
static struct uffd_watch w;

static void lost(void *ctx, const char *what)
{
	(void)ctx;
	lost_calls++;
	snprintf(why, sizeof(why), "%s", what);
}

/* g's memory registered with a new userfaultfd, and a connected
 * socketpair: sv[0] the VMM's end, sv[1] the handler's. */
static void setup(void)
{
	int e;

	cr_assert_eq(gmem_create(&g, SIZE), 0);
	e = uffd_create(&fd, err, sizeof(err));
	if (e == -EPERM || e == -ENOSYS || e == -EACCES)
		cr_skip_test("%s", err);
	cr_assert_eq(e, 0, "%s", err);
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)gmem_region(g, 0)->host, .len = gmem_region(g, 0)->size},
	    .mode = UFFDIO_REGISTER_MODE_MISSING};
	cr_assert_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0, "%s", strerror(errno));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	lost_calls = 0;
	why[0] = '\0';
	uffd_watch_init(&w, fd, sv[0], g, lost, NULL);
}

static void teardown(void)
{
	close_fd(&sv[0]);
	close_fd(&sv[1]);
	close_fd(&fd);
	gmem_destroy(g);
}

TestSuite(uffd_watch, .init = setup, .fini = teardown, .timeout = 40);

/* A thread that reads one byte of the page at gpa, and says when done. */
struct toucher {
	pthread_t t;
	uint64_t gpa;
	atomic_bool done;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	(void)*(volatile uint8_t *)gmem_ptr(g, t->gpa, 1);
	atomic_store(&t->done, true);
	return NULL;
}

static void start_touch(struct toucher *t, uint64_t gpa)
{
	t->gpa = gpa;
	atomic_store(&t->done, false);
	cr_assert_eq(pthread_create(&t->t, NULL, touch, t), 0);
}

/* Serve the toucher's page as zeros (the test's part, once the watch has
 * said its word) and join it. */
static void end_touch(struct toucher *t)
{
	struct uffdio_zeropage z = {
	    .range = {.start = (uintptr_t)gmem_ptr(g, t->gpa, PG), .len = PG}};

	if (ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0)
		cr_assert_eq(errno, EEXIST, "%s", strerror(errno));
	cr_assert_eq(pthread_join(t->t, NULL), 0);
}

/* The main loop's part for up to ms milliseconds, or until a fault is
 * found that nobody answers; how many polls it took. */
static unsigned main_loop(unsigned ms)
{
	uint64_t end = now_ns() + ms * 1000000ull;
	unsigned polls = 0;

	while (!lost_calls && now_ns() < end) {
		struct pollfd p = uffd_watch_pollfd(&w);
		int n = poll(&p, 1, 100);

		polls++;
		if (n > 0 || uffd_watch_due(&w))
			uffd_watch_step(&w, n > 0 ? p.revents : 0);
	}
	return polls;
}

static void expect_lost(uint64_t gpa)
{
	char want[64];

	cr_assert_eq(lost_calls, 1);
	snprintf(want, sizeof(want), "guest-physical address 0x%llx", (unsigned long long)gpa);
	cr_assert_str_eq(why, want);
}

/* The handler hangs up, having cleared O_NONBLOCK on the userfaultfd:
 * each poll then says POLLERR at once. The watch sets the flag again, so
 * the fault nobody reads is found within the unread rule's second,
 * without spinning, and reading it does not wait. */
Test(uffd_watch, a_handler_that_makes_the_uffd_blocking)
{
	struct toucher t;

	close_fd(&sv[1]);
	main_loop(200);
	cr_assert_eq(w.state, UFFD_QUIET);
	cr_assert_eq(fcntl(fd, F_SETFL, 0), 0);
	start_touch(&t, 5 * PG);
	unsigned polls = main_loop(5000);
	expect_lost(5 * PG);
	cr_assert_eq(w.state, UFFD_ORPHAN);
	cr_assert_lt(polls, 100, "%u polls: the loop spun", polls);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	end_touch(&t);
}
