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

/* ---- the threads' end (uffd_watch_wait) ----------------------------------- */

static bool touched(void *ctx)
{
	return atomic_load(&((struct toucher *)ctx)->done);
}

/* The handler's part, on a thread of its own: from read_after_ms on, it
 * reads each event; a page fault it answers with zeros answer_after_ms
 * after the first (or never, with answer false). */
struct handler {
	pthread_t t;
	unsigned read_after_ms, answer_after_ms;
	bool answer;
	uint64_t page; /* the first fault's */
	atomic_bool stop;
	atomic_uint faults;
};

static void *handle(void *arg)
{
	struct handler *h = arg;
	uint64_t answer_at = 0;

	usleep(h->read_after_ms * 1000);
	while (!atomic_load(&h->stop)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct uffd_msg m;

		if (poll(&p, 1, 10) == 1 && read(fd, &m, sizeof(m)) == sizeof(m) &&
		    m.event == UFFD_EVENT_PAGEFAULT && !atomic_fetch_add(&h->faults, 1)) {
			answer_at = now_ns() + h->answer_after_ms * 1000000ull;
			h->page = m.arg.pagefault.address & ~(PG - 1);
		}
		if (h->answer && answer_at && now_ns() >= answer_at) {
			struct uffdio_zeropage z = {.range = {.start = h->page, .len = PG}};
			if (ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0)
				cr_assert_eq(errno, EEXIST, "%s", strerror(errno));
			answer_at = 0;
		}
	}
	return NULL;
}

static void start_handler(struct handler *h)
{
	atomic_store(&h->stop, false);
	atomic_store(&h->faults, 0);
	cr_assert_eq(pthread_create(&h->t, NULL, handle, h), 0);
}

static void stop_handler(struct handler *h)
{
	atomic_store(&h->stop, true);
	cr_assert_eq(pthread_join(h->t, NULL), 0);
}

/* uffd_watch_wait for t, with how long it took in *ns. */
static bool wait_for(struct toucher *t, uint64_t *ns)
{
	uint64_t t0 = now_ns();
	bool r = uffd_watch_wait(&w, touched, t);

	*ns = now_ns() - t0;
	return r;
}

/* A handler that took the connection and never reads: the VM's stop gave
 * up on nothing and waited for ever. An event it leaves unread for the
 * rule's seconds makes the watch read the userfaultfd, and name the fault
 * nothing answers; a second later the thread is given up. */
Test(uffd_watch, the_stop_gives_up_on_a_handler_that_never_reads)
{
	struct toucher t;
	uint64_t ns;

	start_touch(&t, 3 * PG);
	cr_assert_not(wait_for(&t, &ns));
	expect_lost(3 * PG);
	cr_assert_geq(ns, UFFD_HANDLER_UNREAD_NS);
	cr_assert_lt(ns, UFFD_HANDLER_UNREAD_NS + 3 * SECOND, "%llu ms",
		     (unsigned long long)(ns / 1000000));
	end_touch(&t);
}

/* A handler that reads each fault and never answers: woken each second,
 * the fault comes again and is read again. The stop gives up after
 * UFFD_STOP_MAX_NS. */
Test(uffd_watch, the_stop_gives_up_on_a_handler_that_never_answers)
{
	struct handler h = {.answer = false};
	struct toucher t;
	uint64_t ns;

	start_handler(&h);
	start_touch(&t, 0);
	cr_assert_not(wait_for(&t, &ns));
	cr_assert_eq(lost_calls, 0);
	cr_assert_geq(ns, UFFD_STOP_MAX_NS);
	cr_assert_lt(ns, UFFD_STOP_MAX_NS + 2 * SECOND);
	cr_assert_gt(atomic_load(&h.faults), 1, "the fault did not come again");
	stop_handler(&h);
	end_touch(&t);
}

/* A slow handler that serves is waited for: one that reads a fault only
 * after two seconds, and one that answers it after five. */
Test(uffd_watch, the_stop_waits_for_a_slow_handler_that_serves)
{
	struct handler late = {.read_after_ms = 2000, .answer = true},
		       slow = {.answer_after_ms = 5000, .answer = true};
	struct toucher t;
	uint64_t ns;

	start_handler(&late);
	start_touch(&t, 0);
	cr_assert(wait_for(&t, &ns));
	cr_assert_geq(ns, 1900000000ull);
	stop_handler(&late);
	cr_assert_eq(pthread_join(t.t, NULL), 0);

	start_handler(&slow);
	start_touch(&t, PG);
	cr_assert(wait_for(&t, &ns));
	cr_assert_geq(ns, 4900000000ull);
	stop_handler(&slow);
	cr_assert_eq(pthread_join(t.t, NULL), 0);
	cr_assert_eq(lost_calls, 0);
	cr_assert_eq(w.state, UFFD_HANDLER);
}
