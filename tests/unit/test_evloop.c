/* The io_uring event loop against real eventfds and temporary files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/seccomp.h"

TestSuite(evloop, .timeout = 5);

/* Ops that stop the loop once the last of them has completed. */
struct batch {
	struct evloop *l;
	int left;
};

/* One operation and what became of it. */
struct io {
	struct ev_op op;
	struct batch *b;
	int res;   /* last result */
	int calls; /* done() calls */
	struct iovec iov[2];
	uint8_t buf[4096];
};

static void record(struct ev_op *op, int res)
{
	struct io *io = container_of(op, struct io, op);
	io->res = res;
	io->calls++;
	if (io->b && --io->b->left == 0)
		evloop_stop(io->b->l);
}

/* An io in batch b (NULL: none), with a result no completion gives. */
static struct io io_in(struct batch *b)
{
	return (struct io){.op = {.done = record}, .b = b, .res = 1};
}

static struct evloop *new_loop(unsigned entries)
{
	struct evloop *l;
	int r = evloop_create(&l, entries);
	cr_assert_eq(r, 0, "evloop_create: %s", strerror(-r));
	return l;
}

static int tmpfile_fd(void)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "O_TMPFILE: %s", strerror(errno));
	return fd;
}

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(fd, 0);
	return fd;
}

static void kick(int efd)
{
	uint64_t one = 1;
	cr_assert_eq(write(efd, &one, sizeof(one)), sizeof(one));
}

Test(evloop, destroy_null_and_empty)
{
	evloop_destroy(NULL);
	evloop_destroy(new_loop(8));
}

/* Each write to the eventfd makes one done() call; the handler reads the
 * eventfd and writes it again until it has seen five. */
struct ticker {
	struct ev_op op;
	struct evloop *l;
	int efd, ticks, final;
};

static void tick(struct ev_op *op, int res)
{
	struct ticker *t = container_of(op, struct ticker, op);
	uint64_t v;

	if (res < 0) {
		t->final = res;
		return;
	}
	cr_assert(res & POLLIN);
	cr_assert_eq(read(t->efd, &v, sizeof(v)), sizeof(v));
	cr_assert_eq(v, 1);
	if (++t->ticks == 5)
		evloop_stop(t->l);
	else
		kick(t->efd);
}

Test(evloop, multishot_poll_fires_once_per_write)
{
	struct ticker t = {.op = {.done = tick}, .l = new_loop(8), .efd = new_eventfd()};
	struct evloop_stats s;

	cr_assert_eq(evloop_poll(t.l, &t.op, t.efd, POLLIN), 0);
	kick(t.efd);
	cr_assert_eq(evloop_run(t.l), 0);
	cr_assert_eq(t.ticks, 5);
	/* Cancelled on the way out, and told so. */
	cr_assert_eq(t.final, -ECANCELED);
	cr_assert_not(evloop_pending(&t.op));
	evloop_get_stats(t.l, &s);
	/* One poll SQE for five events (the rest: the wake poll, two cancels). */
	cr_assert_eq(s.submitted, 4);
	cr_assert_geq(s.completed, 5);
	cr_assert_geq(s.iterations, 1);
	evloop_destroy(t.l);
	close(t.efd);
}

/* Writes in flight at once, each of two segments given in reverse order
 * and at its own offset: both the offsets and the order of the segments
 * count. */
Test(evloop, writev_segments_and_offsets)
{
	enum { N = 8 };
	static struct io w[N];
	static uint8_t back[N * 4096];
	struct batch b = {.l = new_loop(16), .left = N};
	int fd = tmpfile_fd();

	for (int i = 0; i < N; i++) {
		w[i] = io_in(&b);
		memset(w[i].buf, 'A' + i, 2048);
		memset(w[i].buf + 2048, 'a' + i, 2048);
		w[i].iov[0] = (struct iovec){w[i].buf + 2048, 2048};
		w[i].iov[1] = (struct iovec){w[i].buf, 2048};
		cr_assert_eq(evloop_writev(b.l, &w[i].op, fd, w[i].iov, 2, (N - 1 - i) * 4096ULL),
			     0);
	}
	cr_assert_eq(evloop_run(b.l), 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(w[i].calls, 1);
		cr_assert_eq(w[i].res, 4096, "write %d: %d", i, w[i].res);
	}
	cr_assert_eq(pread(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
	for (int i = 0; i < N; i++)
		for (int k = 0; k < 4096; k++)
			cr_assert_eq(back[i * 4096 + k], (k < 2048 ? 'a' : 'A') + (N - 1 - i),
				     "block %d byte %d", i, k);
	evloop_destroy(b.l);
	close(fd);
}

/* A poll that never fires, cancelled from the handler of one that does. */
struct canceller {
	struct ev_op op;
	struct evloop *l;
	struct io *victim;
	int efd, cancel_res, again_res;
};

static void cancel_victim(struct ev_op *op, int res)
{
	struct canceller *c = container_of(op, struct canceller, op);
	uint64_t v;

	if (res < 0)
		return;
	cr_assert_eq(read(c->efd, &v, sizeof(v)), sizeof(v));
	c->cancel_res = evloop_cancel(c->l, &c->victim->op);
	c->again_res = evloop_cancel(c->l, &c->victim->op);
}

Test(evloop, cancel_a_pending_poll)
{
	static struct io quiet;
	struct batch b = {.l = new_loop(8), .left = 1};
	struct canceller c = {.op = {.done = cancel_victim}, .l = b.l, .victim = &quiet};
	int quiet_fd = new_eventfd();

	c.efd = new_eventfd();
	quiet = io_in(&b);
	cr_assert_eq(evloop_cancel(b.l, &quiet.op), -ENOENT);
	cr_assert_eq(evloop_poll(b.l, &quiet.op, quiet_fd, POLLIN), 0);
	cr_assert_eq(evloop_poll(b.l, &c.op, c.efd, POLLIN), 0);
	kick(c.efd);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(c.cancel_res, 0);
	cr_assert_eq(c.again_res, 0);
	cr_assert_eq(quiet.calls, 1);
	cr_assert_eq(quiet.res, -ECANCELED);
	cr_assert_not(evloop_pending(&quiet.op));
	cr_assert_not(evloop_pending(&c.op));
	evloop_destroy(b.l);
	close(quiet_fd);
	close(c.efd);
}

/* A loop with one poll pending on an eventfd nobody writes. */
static struct evloop *quiet_loop(struct io *quiet, int efd)
{
	struct evloop *l = new_loop(8);

	*quiet = io_in(NULL);
	cr_assert_eq(evloop_poll(l, &quiet->op, efd, POLLIN), 0);
	return l;
}

static void assert_cancelled_once(const struct io *io)
{
	cr_assert_eq(io->calls, 1);
	cr_assert_eq(io->res, -ECANCELED);
	cr_assert_not(evloop_pending(&io->op));
}

Test(evloop, stop_from_another_thread)
{
	static struct io quiet;
	int efd = new_eventfd();
	struct evloop *l = quiet_loop(&quiet, efd);

	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_start(l), -EBUSY);
	usleep(20 * 1000);
	cr_assert_eq(quiet.calls, 0);
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	/* Once joined, nothing is left in the kernel's hands. */
	assert_cancelled_once(&quiet);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(efd);
}

/* evloop_try_join: false at once while the thread runs; once it has
 * ended, the join, with its result; then nothing left to join. */
Test(evloop, try_join_waits_for_nothing)
{
	static struct io quiet;
	int efd = new_eventfd(), r = -1;
	struct evloop *l = quiet_loop(&quiet, efd);

	cr_assert(evloop_try_join(l, &r), "no thread: nothing to wait for");
	cr_assert_eq(r, 0);
	cr_assert_eq(evloop_start(l), 0);
	usleep(20 * 1000);
	cr_assert_not(evloop_try_join(l, &r), "joined a running loop");
	evloop_stop(l);
	int n = 0;
	while (!evloop_try_join(l, &r) && n++ < 500)
		usleep(10 * 1000);
	cr_assert_lt(n, 500, "the stopped loop's thread did not end within 5 s");
	cr_assert_eq(r, 0);
	assert_cancelled_once(&quiet);
	cr_assert_eq(evloop_join(l), 0, "joined twice");
	evloop_destroy(l);
	close(efd);
}

Test(evloop, destroy_stops_the_thread_and_cancels)
{
	static struct io quiet;
	int efd = new_eventfd();
	struct evloop *l = quiet_loop(&quiet, efd);

	cr_assert_eq(evloop_start(l), 0);
	evloop_destroy(l);
	assert_cancelled_once(&quiet);
	close(efd);
}

Test(evloop, destroy_without_run_cancels_pending)
{
	static struct io quiet;
	int efd = new_eventfd();

	evloop_destroy(quiet_loop(&quiet, efd));
	assert_cancelled_once(&quiet);
	close(efd);
}

Test(evloop, stop_before_run_returns_at_once_and_run_again)
{
	static struct io s;
	struct batch b = {.l = new_loop(8), .left = 1};
	int fd = tmpfile_fd();

	evloop_stop(b.l);
	cr_assert_eq(evloop_run(b.l), 0);
	s = io_in(&b);
	s.iov[0] = (struct iovec){s.buf, 1};
	cr_assert_eq(evloop_writev(b.l, &s.op, fd, s.iov, 1, 0), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.res, 1);
	evloop_destroy(b.l);
	close(fd);
}

/* write, then a timer, then another write: each step submitted by the
 * previous step's handler, on the same op, and each waits for the one
 * before (the second write lands after the first, over part of it). */
struct chain {
	struct ev_op op;
	struct evloop *l;
	int fd, step, res[3];
	struct iovec iov;
	struct __kernel_timespec ts;
	char out[16], out2[8];
};

static void chain_next(struct ev_op *op, int res)
{
	struct chain *c = container_of(op, struct chain, op);
	int r = 0;

	c->res[c->step++] = res;
	if (c->step == 1) {
		c->ts = (struct __kernel_timespec){.tv_nsec = 1000 * 1000};
		r = evloop_timeout(c->l, &c->op, &c->ts);
	} else if (c->step == 2) {
		c->iov = (struct iovec){c->out2, sizeof(c->out2)};
		r = evloop_writev(c->l, &c->op, c->fd, &c->iov, 1, 108);
	} else {
		evloop_stop(c->l);
	}
	cr_assert_eq(r, 0);
}

Test(evloop, handlers_chain_new_io)
{
	static struct chain c;
	char in[16];

	c = (struct chain){.op = {.done = chain_next}, .l = new_loop(8), .fd = tmpfile_fd()};
	strcpy(c.out, "chained write");
	memcpy(c.out2, "WRITTEN", 8);
	c.iov = (struct iovec){c.out, sizeof(c.out)};
	cr_assert_eq(evloop_writev(c.l, &c.op, c.fd, &c.iov, 1, 100), 0);
	cr_assert_eq(evloop_run(c.l), 0);
	cr_assert_eq(c.step, 3);
	cr_assert_eq(c.res[0], 16);
	cr_assert_eq(c.res[1], -ETIME);
	cr_assert_eq(c.res[2], 8);
	cr_assert_eq(pread(c.fd, in, sizeof(in), 100), (ssize_t)sizeof(in));
	cr_assert_str_eq(in, "chained WRITTEN", "the second write came first");
	evloop_destroy(c.l);
	close(c.fd);
}

Test(evloop, more_submissions_than_ring_entries)
{
	enum { N = 100 };
	static struct io w[N];
	struct batch b = {.l = new_loop(4), .left = N};
	struct evloop_stats s;
	int fd = tmpfile_fd();
	uint8_t back[N];

	for (int i = 0; i < N; i++) {
		w[i] = io_in(&b);
		w[i].buf[0] = (uint8_t)i;
		w[i].iov[0] = (struct iovec){w[i].buf, 1};
		cr_assert_eq(evloop_writev(b.l, &w[i].op, fd, w[i].iov, 1, i), 0, "write %d", i);
	}
	cr_assert_eq(evloop_run(b.l), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(w[i].res, 1, "write %d: %d", i, w[i].res);
	cr_assert_eq(pread(fd, back, N, 0), N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(back[i], i);
	evloop_get_stats(b.l, &s);
	cr_assert_geq(s.submitted, N);
	cr_assert_geq(s.completed, N);
	evloop_destroy(b.l);
	close(fd);
}

Test(evloop, opcodes_outside_the_table_are_refused)
{
	static struct io open_op, async_op, ok;
	struct batch b = {.l = new_loop(8), .left = 3};
	struct io_uring_sqe sqe = {0};
	int fd = tmpfile_fd();

	open_op = io_in(&b);
	io_uring_prep_openat(&sqe, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0);
	cr_assert_eq(evloop_submit_sqe(b.l, &open_op.op, &sqe), 0);
	/* An allowed opcode with an SQE flag is refused too. */
	async_op = io_in(&b);
	async_op.iov[0] = (struct iovec){async_op.buf, 1};
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_writev(&sqe, fd, async_op.iov, 1, 0);
	sqe.flags = IOSQE_ASYNC;
	cr_assert_eq(evloop_submit_sqe(b.l, &async_op.op, &sqe), 0);
	/* And the SQE after them still goes through. */
	ok = io_in(&b);
	ok.iov[0] = (struct iovec){ok.buf, 1};
	cr_assert_eq(evloop_writev(b.l, &ok.op, fd, ok.iov, 1, 0), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(open_op.res, -EACCES);
	cr_assert_eq(async_op.res, -EACCES);
	cr_assert_eq(ok.res, 1);
	evloop_destroy(b.l);
	close(fd);
}

/* The drives' opcodes are theirs (virtio/blk/blk_ring.c): the loop's ring,
 * which no drive uses, refuses reads, syncs and fallocate. */
Test(evloop, no_read_sync_or_fallocate_on_the_loop)
{
	static struct io rd, fsync_op, fdsync_op, punch;
	struct batch b = {.l = new_loop(8), .left = 4};
	struct io_uring_sqe sqe;
	int fd = tmpfile_fd();

	cr_assert_eq(pwrite(fd, "data", 4, 0), 4);
	rd = io_in(&b);
	rd.iov[0] = (struct iovec){rd.buf, 4};
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_readv(&sqe, fd, rd.iov, 1, 0);
	cr_assert_eq(evloop_submit_sqe(b.l, &rd.op, &sqe), 0);
	fsync_op = io_in(&b);
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_fsync(&sqe, fd, 0);
	cr_assert_eq(evloop_submit_sqe(b.l, &fsync_op.op, &sqe), 0);
	fdsync_op = io_in(&b);
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_fsync(&sqe, fd, IORING_FSYNC_DATASYNC);
	cr_assert_eq(evloop_submit_sqe(b.l, &fdsync_op.op, &sqe), 0);
	punch = io_in(&b);
	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_fallocate(&sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4);
	cr_assert_eq(evloop_submit_sqe(b.l, &punch.op, &sqe), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(rd.res, -EACCES, "readv: %d", rd.res);
	cr_assert_eq(fsync_op.res, -EACCES, "fsync: %d", fsync_op.res);
	cr_assert_eq(fdsync_op.res, -EACCES, "fdatasync: %d", fdsync_op.res);
	cr_assert_eq(punch.res, -EACCES, "fallocate: %d", punch.res);
	cr_assert_eq(rd.buf[0], 0, "read anyway");
	cr_assert_eq(pread(fd, rd.buf, 4, 0), 4);
	cr_assert_eq(memcmp(rd.buf, "data", 4), 0, "punched anyway");
	evloop_destroy(b.l);
	close(fd);
}

Test(evloop, errors_go_to_the_handler_and_the_loop_goes_on)
{
	static struct io bad, good;
	struct batch b = {.l = new_loop(8), .left = 2};
	int fd = tmpfile_fd();

	bad = io_in(&b);
	bad.iov[0] = (struct iovec){bad.buf, 16};
	cr_assert_eq(evloop_writev(b.l, &bad.op, -1, bad.iov, 1, 0), 0);
	good = io_in(&b);
	good.iov[0] = (struct iovec){good.buf, 16};
	cr_assert_eq(evloop_writev(b.l, &good.op, fd, good.iov, 1, 0), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(bad.res, -EBADF);
	cr_assert_eq(good.res, 16);
	evloop_destroy(b.l);
	close(fd);
}

Test(evloop, misuse_is_refused)
{
	static struct io io, nodone;
	struct evloop *l = new_loop(8);
	int efd = new_eventfd();

	io = io_in(NULL);
	cr_assert_eq(evloop_poll(l, &io.op, efd, POLLIN), 0);
	cr_assert(evloop_pending(&io.op));
	cr_assert_eq(evloop_poll(l, &io.op, efd, POLLIN), -EBUSY);
	io.iov[0] = (struct iovec){io.buf, 8};
	cr_assert_eq(evloop_writev(l, &io.op, efd, io.iov, 1, 0), -EBUSY);
	cr_assert_eq(evloop_poll_once(l, &io.op, efd, POLLIN), -EBUSY);
	nodone = (struct io){0};
	cr_assert_eq(evloop_poll(l, &nodone.op, efd, POLLIN), -EINVAL);
	evloop_destroy(l);
	close(efd);
}

/* More readiness than the CQ holds: the kernel ends multishot polls it
 * cannot post to the CQ; the loop re-arms them and no event is lost. Every
 * eventfd is written twice, the second time once all have fired once. */
enum { FLOOD = 16 };
static struct flood {
	struct ev_op op;
	struct batch *b;
	int efd, events, final;
} flood[FLOOD];

static void flood_event(struct ev_op *op, int res)
{
	struct flood *f = container_of(op, struct flood, op);
	uint64_t v;

	if (res < 0) {
		f->final = res;
		return;
	}
	if (read(f->efd, &v, sizeof(v)) != sizeof(v))
		return;
	f->events++;
	if (--f->b->left == FLOOD)
		for (int i = 0; i < FLOOD; i++)
			kick(flood[i].efd);
	if (f->b->left == 0)
		evloop_stop(f->b->l);
}

Test(evloop, multishot_polls_survive_a_full_cq)
{
	struct batch b = {.l = new_loop(1), .left = 2 * FLOOD};
	struct evloop_stats s;

	for (int i = 0; i < FLOOD; i++) {
		flood[i] =
		    (struct flood){.op = {.done = flood_event}, .b = &b, .efd = new_eventfd()};
		kick(flood[i].efd);
		cr_assert_eq(evloop_poll(b.l, &flood[i].op, flood[i].efd, POLLIN), 0);
	}
	cr_assert_eq(evloop_run(b.l), 0);
	for (int i = 0; i < FLOOD; i++) {
		cr_assert_eq(flood[i].events, 2, "poll %d", i);
		cr_assert_eq(flood[i].final, -ECANCELED);
	}
	evloop_get_stats(b.l, &s);
	cr_log_info("%d polls, %llu SQEs", FLOOD, (unsigned long long)s.submitted);
	evloop_destroy(b.l);
	for (int i = 0; i < FLOOD; i++)
		close(flood[i].efd);
}

/* Completions that each defer the same call: it runs once per batch, after
 * all the batch's handlers, and it may defer itself again. */
struct deferrer {
	struct io ios[4];
	struct ev_op after;
	struct evloop *l;
	int completions_seen_by_after[4];
	int afters, handled;
};

static struct deferrer dfr;

static void deferred_done(struct ev_op *op, int res)
{
	struct deferrer *d = container_of(op, struct deferrer, after);
	cr_assert_eq(res, 0);
	d->completions_seen_by_after[d->afters++] = d->handled;
	if (d->handled == 4)
		evloop_stop(d->l);
}

static void handled_then_defer(struct ev_op *op, int res)
{
	cr_assert_geq(res, 0);
	dfr.handled++;
	cr_assert_eq(evloop_defer(dfr.l, &dfr.after), 0);
	cr_assert_eq(evloop_defer(dfr.l, &dfr.after), 0, "deferring twice is a no-op");
	(void)op;
}

Test(evloop, deferred_call_runs_once_after_the_batch)
{
	int fd = tmpfile_fd();
	dfr = (struct deferrer){.l = new_loop(16), .after = {.done = deferred_done}};
	/* Four writes submitted together complete in one batch (or a few). */
	for (int i = 0; i < 4; i++) {
		dfr.ios[i] = (struct io){.op = {.done = handled_then_defer}};
		dfr.ios[i].iov[0] = (struct iovec){dfr.ios[i].buf, 512};
		cr_assert_eq(evloop_writev(dfr.l, &dfr.ios[i].op, fd, dfr.ios[i].iov, 1, i * 512),
			     0);
	}
	cr_assert_eq(evloop_run(dfr.l), 0);
	cr_assert_eq(dfr.handled, 4);
	/* At most one deferred call per batch, each after its batch's handlers:
	 * fewer calls than completions when completions batch up. */
	cr_assert_geq(dfr.afters, 1);
	cr_assert_leq(dfr.afters, 4);
	cr_assert_eq(dfr.completions_seen_by_after[dfr.afters - 1], 4);
	for (int i = 1; i < dfr.afters; i++)
		cr_assert_gt(dfr.completions_seen_by_after[i],
			     dfr.completions_seen_by_after[i - 1]);
	/* A pending op cannot be deferred. */
	struct io p = io_in(NULL);
	int efd = new_eventfd();
	cr_assert_eq(evloop_poll(dfr.l, &p.op, efd, POLLIN), 0);
	cr_assert_eq(evloop_defer(dfr.l, &p.op), -EBUSY);
	evloop_destroy(dfr.l);
	close(efd);
	close(fd);
}

/* A one-shot poll completes once with the ready events and is free again;
 * a second write to the eventfd goes unnoticed until it is re-armed. */
Test(evloop, poll_once_fires_once_then_is_free)
{
	struct batch b = {.l = new_loop(8), .left = 1};
	struct io p = io_in(&b);
	int efd = new_eventfd();

	cr_assert_eq(evloop_poll_once(b.l, &p.op, efd, POLLIN), 0);
	cr_assert_eq(evloop_poll_once(b.l, &p.op, efd, POLLIN), -EBUSY);
	kick(efd);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(p.calls, 1);
	cr_assert(p.res & POLLIN);
	cr_assert_not(evloop_pending(&p.op));
	/* Still readable: re-armed, it fires at once. */
	b.left = 1;
	cr_assert_eq(evloop_poll_once(b.l, &p.op, efd, POLLIN), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(p.calls, 2);
	cr_assert(p.res & POLLIN);
	evloop_destroy(b.l);
	close(efd);
}

Test(evloop, timeout_fires_after_its_time_and_can_be_cancelled)
{
	static struct io t, c;
	struct batch b = {.l = new_loop(8), .left = 1};
	struct __kernel_timespec ts = {.tv_nsec = 20 * 1000 * 1000};
	uint64_t t0 = now_ns();

	t = io_in(&b);
	cr_assert_eq(evloop_timeout(b.l, &t.op, &ts), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(t.res, -ETIME);
	cr_assert_geq(now_ns() - t0, 20 * 1000 * 1000);
	/* A long timer, cancelled: done() with -ECANCELED, long before it is due. */
	ts = (struct __kernel_timespec){.tv_sec = 60};
	b.left = 1;
	c = io_in(&b);
	cr_assert_eq(evloop_timeout(b.l, &c.op, &ts), 0);
	cr_assert_eq(evloop_cancel(b.l, &c.op), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(c.res, -ECANCELED);
	cr_assert_lt(now_ns() - t0, 5ull * 1000 * 1000 * 1000);
	evloop_destroy(b.l);
}

/* ---- pausing (a snapshot parks the loop between batches) ----------------- */

/* Counts the readiness of an eventfd, which it consumes. done() runs on the
 * loop thread, the test thread reads the counts. */
struct counter {
	struct ev_op op;
	int efd;
	atomic_int calls;     /* readiness seen */
	atomic_int cancelled; /* final -ECANCELED */
};

static void count_done(struct ev_op *op, int res)
{
	struct counter *c = container_of(op, struct counter, op);
	uint64_t v;

	if (res < 0) {
		atomic_fetch_add(&c->cancelled, 1);
		return;
	}
	if (read(c->efd, &v, sizeof(v)) == sizeof(v))
		atomic_fetch_add(&c->calls, 1);
}

/* A loop polling c's new eventfd. No assertion: also used in a child. */
static struct evloop *counting_loop(struct counter *c)
{
	struct evloop *l = NULL;

	c->op = (struct ev_op){.done = count_done};
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	atomic_init(&c->calls, 0);
	atomic_init(&c->cancelled, 0);
	if (c->efd < 0 || evloop_create(&l, 8) < 0 || evloop_poll(l, &c->op, c->efd, POLLIN) < 0)
		return NULL;
	return l;
}

/* Whether c->calls reaches n within 2 s. */
static bool calls_reach(struct counter *c, int n)
{
	uint64_t end = now_ns() + 2000ull * 1000 * 1000;

	while (atomic_load(&c->calls) < n && now_ns() < end)
		usleep(50);
	return atomic_load(&c->calls) >= n;
}

static void poke(int efd)
{
	uint64_t one = 1;
	(void)!write(efd, &one, sizeof(one));
}

/* An eventfd written while the loop is paused: its done() runs only after
 * the resume. */
Test(evloop, paused_loop_runs_no_handler_until_resumed)
{
	static struct counter c;
	struct evloop *l = counting_loop(&c);

	cr_assert_not_null(l);
	cr_assert_eq(evloop_start(l), 0);
	poke(c.efd);
	cr_assert(calls_reach(&c, 1), "the running loop saw nothing");
	cr_assert_eq(evloop_pause(l), 0);
	poke(c.efd);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&c.calls), 1, "a done() ran while paused");
	cr_assert_eq(atomic_load(&c.cancelled), 0);
	evloop_resume(l);
	cr_assert(calls_reach(&c, 2), "the write made while paused was lost");
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	cr_assert_eq(atomic_load(&c.cancelled), 1);
	evloop_destroy(l);
	close(c.efd);
}

static void stop_on_timer(struct ev_op *op, int res)
{
	struct io *io = container_of(op, struct io, op);

	io->res = res;
	io->calls++;
	evloop_stop(io->b->l);
}

/* No loop thread (never started, or stopped and joined): a no-op that
 * returns 0, and leaves nothing behind that would park a later run. */
Test(evloop, pause_without_a_running_loop_is_a_noop)
{
	static struct io t;
	struct batch b = {.l = new_loop(8)};
	struct __kernel_timespec ts = {.tv_nsec = 1000 * 1000};

	cr_assert_eq(evloop_pause(b.l), 0);
	evloop_resume(b.l);
	cr_assert_eq(evloop_start(b.l), 0);
	evloop_stop(b.l);
	cr_assert_eq(evloop_join(b.l), 0);
	cr_assert_eq(evloop_pause(b.l), 0);
	/* A run in this thread now is not parked (the suite's timeout would
	 * catch it). */
	t = (struct io){.op = {.done = stop_on_timer}, .b = &b, .res = 1};
	cr_assert_eq(evloop_timeout(b.l, &t.op, &ts), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(t.res, -ETIME);
	evloop_resume(b.l);
	evloop_destroy(b.l);
}

/* Stop while paused: the loop ends (its way out cancels what is pending)
 * and join returns. */
Test(evloop, stop_while_paused_ends_the_loop)
{
	static struct counter c;
	struct evloop *l = counting_loop(&c);

	cr_assert_not_null(l);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	poke(c.efd);
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	cr_assert_eq(atomic_load(&c.cancelled), 1);
	cr_assert_not(evloop_pending(&c.op));
	cr_assert_eq(evloop_pause(l), 0, "a stopped loop cannot be paused: a no-op");
	evloop_resume(l);
	evloop_destroy(l);
	close(c.efd);
}

/* Many pauses and resumes in a row: each pause holds the loop (a write
 * made inside it is not handled), each resume lets it go on. */
Test(evloop, pause_and_resume_many_times)
{
	static struct counter c;
	struct evloop *l = counting_loop(&c);

	cr_assert_not_null(l);
	cr_assert_eq(evloop_start(l), 0);
	for (int i = 0; i < 500; i++) {
		int n;

		cr_assert_eq(evloop_pause(l), 0);
		n = atomic_load(&c.calls);
		poke(c.efd);
		for (int j = 0; j < 20; j++)
			sched_yield();
		cr_assert_eq(atomic_load(&c.calls), n, "round %d: a done() ran while paused", i);
		evloop_resume(l);
		cr_assert(calls_reach(&c, n + 1), "round %d: not resumed", i);
	}
	/* Two pauses in a row do not nest: one resume ends them. */
	cr_assert_eq(evloop_pause(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	evloop_resume(l);
	poke(c.efd);
	cr_assert(calls_reach(&c, 501));
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(c.efd);
}

static void pause_from_handler(struct ev_op *op, int res)
{
	struct io *io = container_of(op, struct io, op);

	(void)res;
	io->res = evloop_pause(io->b->l);
	io->calls++;
	evloop_stop(io->b->l);
}

/* The loop's own handlers cannot pause it: they would wait for themselves. */
Test(evloop, pause_from_the_loop_thread_is_refused)
{
	static struct io t;
	struct batch b = {.l = new_loop(8)};
	struct __kernel_timespec ts = {.tv_nsec = 1000 * 1000};

	t = (struct io){.op = {.done = pause_from_handler}, .b = &b, .res = 1};
	cr_assert_eq(evloop_timeout(b.l, &t.op, &ts), 0);
	cr_assert_eq(evloop_run(b.l), 0);
	cr_assert_eq(t.calls, 1);
	cr_assert_eq(t.res, -EDEADLK);
	evloop_destroy(b.l);
}

static void timer_counted(struct ev_op *op, int res)
{
	struct io *io = container_of(op, struct io, op);

	io->res = res;
	__atomic_add_fetch(&io->calls, 1, __ATOMIC_RELEASE);
}

/* While paused, the pausing thread stands in for the loop thread: it may
 * submit and cancel (a quiesce disarms a timer); the loop takes it up
 * after the resume. */
Test(evloop, the_pauser_submits_and_cancels_while_paused)
{
	static struct counter c;
	static struct io t;
	struct __kernel_timespec ts = {.tv_nsec = 1000 * 1000};
	struct evloop *l = counting_loop(&c);

	cr_assert_not_null(l);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	t = (struct io){.op = {.done = timer_counted}, .res = 1};
	cr_assert_eq(evloop_timeout(l, &t.op, &ts), 0);
	cr_assert_eq(evloop_cancel(l, &c.op), 0);
	usleep(20 * 1000);
	cr_assert_eq(__atomic_load_n(&t.calls, __ATOMIC_ACQUIRE), 0);
	cr_assert_eq(atomic_load(&c.cancelled), 0);
	evloop_resume(l);
	for (int i = 0; i < 2000 && !__atomic_load_n(&t.calls, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	cr_assert_eq(__atomic_load_n(&t.calls, __ATOMIC_ACQUIRE), 1);
	cr_assert_eq(t.res, -ETIME);
	for (int i = 0; i < 2000 && !atomic_load(&c.cancelled); i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&c.cancelled), 1);
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(c.efd);
}

static int slow_init(void *ctx)
{
	usleep(30 * 1000);
	return *(int *)ctx;
}

/* A pause right after evloop_start, while the thread is still in its init:
 * it waits for the thread to park before its first turn. */
Test(evloop, pause_right_after_start_waits_for_the_thread)
{
	static struct counter c;
	static int ok = 0;
	struct evloop *l = counting_loop(&c);

	cr_assert_not_null(l);
	poke(c.efd);
	evloop_set_thread_init(l, slow_init, &ok);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	usleep(60 * 1000); /* past the init */
	cr_assert_eq(atomic_load(&c.calls), 0, "the loop ran after the pause returned");
	evloop_resume(l);
	cr_assert(calls_reach(&c, 1));
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(c.efd);
}

/* A thread whose init fails never runs a loop: a pause waiting for it to
 * park returns when it ends. */
Test(evloop, pause_returns_when_the_thread_ends_without_a_loop)
{
	static int refuse = -EPERM;
	struct evloop *l = new_loop(8);

	evloop_set_thread_init(l, slow_init, &refuse);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	cr_assert_eq(evloop_join(l), -EPERM);
	evloop_destroy(l);
}

static int evloop_filter(void *ctx)
{
	(void)ctx;
	return seccomp_install(SECCOMP_EVLOOP, false);
}

/* In flint the loop thread runs under its seccomp filter: parking and
 * waking must need nothing the filter refuses (it kills the process). In a
 * child, with plain exit codes. */
Test(evloop, parks_under_the_evloop_seccomp_filter)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static struct counter c;
		struct evloop *l = counting_loop(&c);

		if (!l)
			_exit(2);
		evloop_set_thread_init(l, evloop_filter, NULL);
		if (evloop_start(l) < 0)
			_exit(3);
		poke(c.efd);
		if (!calls_reach(&c, 1))
			_exit(4);
		for (int i = 0; i < 20; i++) {
			if (evloop_pause(l) < 0)
				_exit(5);
			poke(c.efd);
			usleep(1000);
			evloop_resume(l);
			if (!calls_reach(&c, i + 2))
				_exit(6);
		}
		if (evloop_pause(l) < 0)
			_exit(7);
		evloop_stop(l);
		_exit(evloop_join(l) == 0 ? 0 : 8);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_not(WIFSIGNALED(st), "the loop thread was killed by signal %d (%s)", WTERMSIG(st),
		      WTERMSIG(st) == SIGSYS ? "its filter refuses a call" : "?");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d", WEXITSTATUS(st));
}

struct parked_call {
	pthread_t thread;
	struct counter *c;
	uint64_t calls_seen;
	int runs;
};

static void on_parked(void *ctx)
{
	struct parked_call *pc = ctx;

	pc->thread = pthread_self();
	pc->runs++;
	/* A done() would count here if the loop were not parked. */
	usleep(20 * 1000);
	pc->calls_seen = atomic_load(&pc->c->calls);
}

/* evloop_call_parked runs the function on the loop's own thread, the loop
 * parked around it (no done() runs, though work waits), and only while
 * paused; with no loop thread, on the caller's. */
Test(evloop, a_call_runs_on_the_parked_loop_thread)
{
	static struct counter c;
	struct evloop *l = counting_loop(&c);
	struct parked_call pc = {.c = &c};

	cr_assert_not_null(l);
	cr_assert_eq(evloop_call_parked(l, on_parked, &pc), 0, "no loop: the caller runs it");
	cr_assert(pthread_equal(pc.thread, pthread_self()));
	cr_assert_eq(evloop_start(l), 0);
	poke(c.efd);
	cr_assert(calls_reach(&c, 1));
	cr_assert_eq(evloop_call_parked(l, on_parked, &pc), -EINVAL, "not paused");
	cr_assert_eq(pc.runs, 1);
	cr_assert_eq(evloop_pause(l), 0);
	poke(c.efd);
	cr_assert_eq(evloop_call_parked(l, on_parked, &pc), 0);
	cr_assert_eq(pc.runs, 2);
	cr_assert_not(pthread_equal(pc.thread, pthread_self()), "it ran on the caller's thread");
	cr_assert_eq(pc.calls_seen, 1, "a done() ran during the parked call");
	cr_assert_eq(atomic_load(&c.calls), 1, "a done() ran while paused");
	evloop_resume(l);
	cr_assert(calls_reach(&c, 2));
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(c.efd);
}

/* A call after a stop of the parked loop: -ESHUTDOWN, fn run nowhere (the
 * loop may have left its park, or ended, before the call: not on the
 * caller's thread either). */
Test(evloop, a_call_the_stop_overtakes_is_not_reported_done)
{
	static struct counter c;
	struct evloop *l = counting_loop(&c);
	struct parked_call pc = {.c = &c};

	cr_assert_not_null(l);
	cr_assert_eq(evloop_start(l), 0);
	cr_assert_eq(evloop_pause(l), 0);
	evloop_stop(l);
	cr_assert_eq(evloop_call_parked(l, on_parked, &pc), -ESHUTDOWN);
	cr_assert_eq(pc.runs, 0, "the stopped loop ran the call");
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(c.efd);
}

/* A done() held up (a device's copy from guest memory the Uffd handler
 * does not serve): evloop_pause_until gives up at its deadline, the
 * request standing, and a later call finds the loop parked once the
 * done() returns. */
static atomic_bool held, release_held;

static void held_done(struct ev_op *op, int res)
{
	(void)op;
	if (res < 0)
		return;
	atomic_store(&held, true);
	while (!atomic_load(&release_held))
		usleep(1000);
}

Test(evloop, pause_until_gives_up_on_a_loop_held_up)
{
	static struct ev_op op = {.done = held_done};
	struct evloop *l = new_loop(8);
	int efd = new_eventfd();

	atomic_store(&held, false);
	atomic_store(&release_held, false);
	cr_assert_eq(evloop_poll_once(l, &op, efd, POLLIN), 0);
	cr_assert_eq(evloop_start(l), 0);
	kick(efd);
	while (!atomic_load(&held))
		usleep(1000);
	uint64_t t0 = now_ns();
	cr_assert_eq(evloop_pause_until(l, t0 + 200000000ull), -ETIMEDOUT);
	cr_assert_geq(now_ns() - t0, 200000000ull);
	atomic_store(&release_held, true);
	cr_assert_eq(evloop_pause_until(l, now_ns() + 2000000000ull), 0);
	evloop_resume(l);
	evloop_stop(l);
	cr_assert_eq(evloop_join(l), 0);
	evloop_destroy(l);
	close(efd);
}
