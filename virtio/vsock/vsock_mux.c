/* The hybrid-vsock muxer: the virtio-vsock device's backend, mapping guest
 * connections to Unix sockets; see vsock_mux.h. Every function here runs on
 * the event-loop thread except vsock_mux_create/destroy/get_stats and
 * be_changed, vsock_mux_quiesce, on a thread standing in for the loop's
 * while it is parked, and vsock_mux_hand_over, once the loop has ended. */
#include "vsock/vsock_mux.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/time_types.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/evwait.h"
#include "core/usock.h"
#include "vsock/vsock.h"
#include "vsock/vsock_conn.h"
#include "vsock/vsock_table.h"
#include "vsock/vsock_uds.h"

/* Connections with ports at most (a guest cannot make us hold more
 * sockets), and host programs still writing their CONNECT line, apart. */
#define MAX_CONNS 1024
#define MAX_LINES 128
/* Descriptors under RLIMIT_NOFILE that guest-initiated connections leave
 * to the rest of flint: the API's connections, a drive swapped in, a
 * snapshot's files, host programs (flint run's connection to the agent
 * among them). The jailer gives 2048, room for MAX_CONNS and these, as
 * Firecracker's gives its 1023 connections; a flint started from a shell
 * has the shell's soft limit, often 1024, which MAX_CONNS alone would
 * let the guest use up. Under a limit below twice it, half the limit is
 * kept instead: a jail's small no-file must not leave the guest none. */
#define FD_RESERVE 256
/* A connection's receive buffer (buf_alloc), at most: Linux's default for
 * its own vsock sockets, enough to keep a stream going. At least BUF_MIN,
 * a page; BUF_SHARED is shared out above that. BUF_BOUND is flint's
 * buffered guest data per VM at most (see vsock_mux.h). */
#define BUF_MAX	   (256u * 1024)
#define BUF_MIN	   4096u
#define BUF_SHARED (4u << 20)
#define BUF_BOUND  ((uint64_t)MAX_CONNS * BUF_MIN + BUF_SHARED)
/* How long the guest has to answer a REQUEST (Firecracker: 2 s), and a host
 * program to write its CONNECT line (Firecracker reads the line when the
 * socket first turns readable and keeps no half lines; flint lets it come
 * in pieces, for as long as the guest gets to answer). */
#define CONNECT_TIMEOUT_NS (2000ull * 1000 * 1000)
#define LINE_TIMEOUT_NS	   CONNECT_TIMEOUT_NS
/* How long the guest has to close its end once the host program has closed
 * its socket altogether, before the connection is reset (Firecracker's
 * kill timer is 2 s too). A host program that only half-closed is still
 * waiting for the guest's data: no bound then. */
#define LINGER_NS     CONNECT_TIMEOUT_NS
#define TIMER_TICK_NS (250ull * 1000 * 1000)
/* Ticks a connection waits for the guest's credit before asking for it:
 * 250 to 500 ms, far longer than a Linux reader takes to send it unasked. */
#define CREDIT_ASK_TICKS 2
/* How long host connections wait for the guest to take up a transport
 * reset (vsock_dev_awaiting_reset), from the first one held, unless the
 * params say: Linux does as soon as its event work item runs; the bound is
 * for a guest that never gives the event buffer back. Generous, since
 * that work item can take long to run: in a VM restored with its memory
 * from a Uffd handler it waits for every page it touches (200-400 ms in
 * the rig, up to 1.7 s with a build running beside it: a bound of 1 s
 * then let 4 restores in 20 lose their agent connection to the late
 * reset). */
#define RESET_WAIT_MS_DEFAULT 10000u
_Static_assert(MAX_CONNS + 64 <= VSOCK_TABLE_RSTS, "a RST for every connection");
_Static_assert(BUF_BOUND == 8u << 20, "the bound the README states");

struct mconn {
	struct vsock_conn c;
	struct vsock_mux *m;
	int fd;
	struct ev_op rd_op, wr_op; /* one-shot POLLIN / POLLOUT */
	bool line;		   /* reading the CONNECT line: in m->lines, no ports yet */
	bool exposed;		   /* the guest knows of it: a reset drops it */
	bool dead;		   /* closed; freed once rd_op and wr_op are idle */
	bool held;		   /* its REQUEST waits for the guest's reset (m->nheld) */
	uint64_t deadline;	   /* the line, or the guest's answer to our REQUEST, by then */
	unsigned credit_ticks;	   /* timer ticks seen waiting for the guest's credit */
	size_t line_len;
	char linebuf[VSOCK_UDS_LINE_MAX];
	struct vsock_entry e;	   /* in m->t once it has its ports */
	struct mconn *prev, *next; /* in m->lines, m->conns, or m->zombies once dead */
};

/* A list of connections, oldest first. */
struct mlist {
	struct mconn *head, *tail;
};

struct vsock_mux {
	char *path;
	struct usock_made made; /* its socket file, which alone destroy removes */
	uint64_t cid;
	struct evloop *loop;
	struct vsock_dev *dev;
	int listen_fd;
	struct ev_op listen_op;	       /* multishot poll */
	struct ev_kick wake;	       /* be_changed, from the device (core/evwait.h) */
	struct ev_op kick_op, reap_op; /* deferred calls */
	struct ev_op timer_op;
	struct __kernel_timespec tick;
	uint64_t resets_seen; /* vsock_dev_resets() when we last looked */
	/* Host connections held back while the device awaits the guest's
	 * reset, and when they go anyway (0: none held in this wait yet). */
	unsigned nheld;
	uint64_t hold_deadline;
	uint64_t reset_wait_ns; /* the bound on that wait */
	struct mlist lines, conns, zombies;
	unsigned nlines, nconns;
	int fd_cap;	    /* a guest connection's socket below this, or refused */
	uint32_t buf_extra; /* sum of (buf_alloc - BUF_MIN) over m->conns */
	struct vsock_table t;
	/* A read's buffers: the payloads of the packets be_rx fills. */
	struct iovec rx_iov[2 * VSOCK_QUEUE_MAX];
	bool listen_logged;
	pthread_mutex_t stats_lock;
	struct vsock_mux_stats stats;
};

static void count(struct vsock_mux *m, uint64_t *field, int64_t n)
{
	pthread_mutex_lock(&m->stats_lock);
	*field += (uint64_t)n;
	pthread_mutex_unlock(&m->stats_lock);
}

/* ---- lists ------------------------------------------------------------ */

static void list_add(struct mlist *l, struct mconn *mc)
{
	mc->next = NULL;
	mc->prev = l->tail;
	if (l->tail)
		l->tail->next = mc;
	else
		l->head = mc;
	l->tail = mc;
}

static void list_del(struct mlist *l, struct mconn *mc)
{
	if (mc->prev)
		mc->prev->next = mc->next;
	else
		l->head = mc->next;
	if (mc->next)
		mc->next->prev = mc->prev;
	else
		l->tail = mc->prev;
	mc->prev = mc->next = NULL;
}

static struct mconn *lookup(struct vsock_mux *m, uint32_t local_port, uint32_t peer_port)
{
	struct vsock_entry *e = vsock_table_find(&m->t, local_port, peer_port);
	return e ? container_of(e, struct mconn, e) : NULL;
}

static void arm_timer(struct vsock_mux *m);
static void release_held(struct vsock_mux *m);

/* Whether a REQUEST must wait for the guest to take up the TRANSPORT_RESET
 * the device sent: it awaits that, and the wait has not passed its bound
 * (past it, stop awaiting: host programs go on, at the risk the reset was
 * there to avoid). */
static bool awaiting_guest(struct vsock_mux *m)
{
	if (!vsock_dev_awaiting_reset(m->dev))
		return false;
	if (!m->hold_deadline || now_ns() < m->hold_deadline)
		return true;
	pr_warn("vsock %s: the guest has not taken up the transport reset in %llu ms; "
		"connecting anyway (its late reset may end the connection)",
		m->path, (unsigned long long)(m->reset_wait_ns / 1000000));
	vsock_dev_stop_awaiting_reset(m->dev);
	return false;
}

/* Queue mc to send the guest what it owes; a REQUEST while the guest owes
 * us its reset waits, off the queue (release_held). */
static void rxq_add(struct vsock_mux *m, struct mconn *mc)
{
	if (mc->dead || !mc->c.pending)
		return;
	if (mc->c.pending & VSOCK_CONN_REQUEST) {
		if (awaiting_guest(m)) {
			if (!mc->held) {
				mc->held = true;
				m->nheld++;
			}
			if (!m->hold_deadline)
				m->hold_deadline = now_ns() + m->reset_wait_ns;
			arm_timer(m);
			return;
		}
		release_held(m); /* those held before go first */
	}
	vsock_table_queue(&m->t, &mc->e);
}

/* ---- closing ------------------------------------------------------------ */

/* Run op's call once after this batch of events. Only ever deferred,
 * never submitted, so evloop_defer cannot refuse it. */
static void defer(struct vsock_mux *m, struct ev_op *op)
{
	if (evloop_defer(m->loop, op) < 0)
		pr_err("vsock: cannot defer a call");
}

/* Have the device ask us for packets, once after this batch of events. */
static void kick(struct vsock_mux *m)
{
	defer(m, &m->kick_op);
}

static void queue_rst(struct vsock_mux *m, uint32_t local_port, uint32_t peer_port)
{
	if (!vsock_table_push_rst(&m->t, local_port, peer_port)) {
		pr_debug("vsock: RST queue full; not resetting %u -> %u", local_port, peer_port);
		return;
	}
	count(m, &m->stats.resets, 1);
	kick(m);
}

/* Close the Unix socket and forget the connection, answering the guest
 * with a RST if rst. The struct lives on, dead, until its polls have
 * completed (see reap): handlers that hold it stay safe. */
static void conn_close(struct vsock_mux *m, struct mconn *mc, bool rst)
{
	if (mc->dead)
		return;
	vsock_table_del(&m->t, &mc->e);
	vsock_table_unqueue(&m->t, &mc->e);
	if (rst)
		queue_rst(m, mc->c.local_port, mc->c.peer_port);
	vsock_conn_release(&mc->c);
	/* The polls hold the socket until cancelled, in this loop turn. */
	if (evloop_pending(&mc->rd_op) && evloop_cancel(m->loop, &mc->rd_op) < 0)
		pr_err("vsock: cannot cancel a poll; a socket leaks");
	if (evloop_pending(&mc->wr_op) && evloop_cancel(m->loop, &mc->wr_op) < 0)
		pr_err("vsock: cannot cancel a poll; a socket leaks");
	close_fd(&mc->fd);
	mc->dead = true;
	if (mc->held) {
		mc->held = false;
		m->nheld--;
	}
	if (mc->line) {
		list_del(&m->lines, mc);
		m->nlines--;
	} else {
		list_del(&m->conns, mc);
		m->nconns--;
		m->buf_extra -= mc->c.buf_alloc - BUF_MIN;
	}
	list_add(&m->zombies, mc);
	count(m, &m->stats.conns_open, -1);
	defer(m, &m->reap_op);
}

/* Deferred: free the dead connections no poll holds any more. */
static void reap(struct ev_op *op, int res)
{
	struct vsock_mux *m = container_of(op, struct vsock_mux, reap_op);
	struct mconn *mc = m->zombies.head, *next;

	(void)res;
	for (; mc; mc = next) {
		next = mc->next;
		if (!evloop_pending(&mc->rd_op) && !evloop_pending(&mc->wr_op)) {
			list_del(&m->zombies, mc);
			free(mc);
		}
	}
}

/* The guest has taken up the reset (or the wait is over): the held
 * connections send their REQUESTs, in the order they came. */
static void release_held(struct vsock_mux *m)
{
	if (vsock_dev_awaiting_reset(m->dev))
		return;
	if (m->nheld)
		pr_debug("vsock %s: %u host connection(s) held %llu ms for the guest's reset",
			 m->path, m->nheld,
			 (unsigned long long)((now_ns() + m->reset_wait_ns - m->hold_deadline) /
					      1000000));
	m->hold_deadline = 0;
	if (!m->nheld)
		return;
	m->nheld = 0;
	for (struct mconn *mc = m->conns.head; mc; mc = mc->next) {
		if (mc->held) {
			mc->held = false;
			rxq_add(m, mc);
		}
	}
	kick(m);
}

/* The driver was reset since we last looked: the guest has forgotten its
 * connections, so close every one it knew of. Host programs whose REQUEST
 * has not gone out yet keep waiting for the driver. And the guest may have
 * taken up a transport reset: send what waited for that. Called first
 * thing by every handler. */
static void catch_up(struct vsock_mux *m)
{
	uint64_t resets = vsock_dev_resets(m->dev);
	struct mconn *mc, *next;

	if (resets != m->resets_seen) {
		m->resets_seen = resets;
		vsock_table_clear_rsts(&m->t);
		for (mc = m->conns.head; mc; mc = next) {
			next = mc->next;
			if (mc->exposed)
				conn_close(m, mc, false);
		}
	}
	release_held(m);
}

/* ---- the Unix side ------------------------------------------------------ */

static void rd_done(struct ev_op *op, int res);
static void wr_done(struct ev_op *op, int res);

static int arm(struct vsock_mux *m, struct ev_op *op, int fd, unsigned events)
{
	return evloop_pending(op) ? 0 : evloop_poll_once(m->loop, op, fd, events);
}

/* sendmsg without SIGPIPE or blocking. Returns bytes or -errno. */
static ssize_t send_iov(int fd, const struct iovec *iov, unsigned n)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
	ssize_t r;

	do
		r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* After guest data moved or the guest shut a direction down: half-close the
 * socket, finish the connection, or queue what it owes the guest. */
static void settle(struct vsock_mux *m, struct mconn *mc)
{
	if (mc->dead)
		return;
	if (vsock_conn_should_shut_wr(&mc->c)) {
		if (shutdown(mc->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
			conn_close(m, mc, true);
			return;
		}
		mc->c.shut_wr = true;
	}
	if (vsock_conn_finished(&mc->c)) {
		conn_close(m, mc, true);
		return;
	}
	if (mc->c.pending) {
		rxq_add(m, mc);
		kick(m);
	}
}

/* Write out what the socket did not take before. */
static void flush(struct vsock_mux *m, struct mconn *mc)
{
	struct iovec iov[2];
	unsigned n = vsock_conn_buffered(&mc->c, iov);
	ssize_t w;

	if (!n)
		return;
	w = send_iov(mc->fd, iov, n);
	if (w < 0 && w != -EAGAIN) {
		conn_close(m, mc, true);
		return;
	}
	if (w > 0)
		vsock_conn_forwarded(&mc->c, (uint32_t)w);
	if (mc->c.buf_len && arm(m, &mc->wr_op, mc->fd, POLLOUT) < 0)
		conn_close(m, mc, true);
}

/* The start of a socket poll's handler: whether to go on. Not when the
 * connection was closed meanwhile, or is closed by a reset the loop has
 * only now seen, or the loop is cancelling everything. */
static bool poll_live(struct mconn *mc, int res)
{
	struct vsock_mux *m = mc->m;

	if (mc->dead || res == -ECANCELED) {
		defer(m, &m->reap_op); /* the struct may be free now */
		return false;
	}
	catch_up(m);
	return !mc->dead;
}

static void wr_done(struct ev_op *op, int res)
{
	struct mconn *mc = container_of(op, struct mconn, wr_op);

	if (!poll_live(mc, res))
		return;
	flush(mc->m, mc);
	settle(mc->m, mc);
}

/* A guest RW's payload: straight to the socket when nothing is queued
 * before it, and what the socket does not take into the buffer. */
static void forward(struct vsock_mux *m, struct mconn *mc, const struct vsock_pkt *p)
{
	size_t len = le32toh(p->hdr.len), done = 0;
	ssize_t w;

	if (!len)
		return;
	if (!mc->c.buf_len) {
		w = send_iov(mc->fd, p->iov, p->niov);
		if (w < 0 && w != -EAGAIN) {
			conn_close(m, mc, true);
			return;
		}
		if (w > 0) {
			done = (size_t)w;
			vsock_conn_forwarded(&mc->c, (uint32_t)w);
		}
	}
	if (done < len && (vsock_conn_buffer(&mc->c, p->iov, p->niov, done) < 0 ||
			   arm(m, &mc->wr_op, mc->fd, POLLOUT) < 0))
		conn_close(m, mc, true);
}

/* Host-initiated: the guest accepted; tell the host program its port. */
static void established(struct vsock_mux *m, struct mconn *mc)
{
	char ok[VSOCK_UDS_LINE_MAX];
	size_t n = vsock_uds_ok_line(ok, sizeof(ok), mc->c.local_port);
	struct iovec iov = {ok, n};

	mc->deadline = 0;
	/* Nothing was written to this socket before: its buffer takes a line. */
	if (send_iov(mc->fd, &iov, 1) != (ssize_t)n)
		conn_close(m, mc, true);
}

/* ---- host-initiated connections ---------------------------------------- */

static void arm_timer(struct vsock_mux *m)
{
	if (!evloop_pending(&m->timer_op) && evloop_timeout(m->loop, &m->timer_op, &m->tick) < 0)
		pr_err("vsock: cannot arm its timer (connect deadlines, credit waits, closes)");
}

/* ---- the host program's close ------------------------------------------ */

/* After the socket's EOF: whether the host program has closed it altogether
 * and will read nothing more, rather than shut its write side down: a send
 * of nothing fails with EPIPE then, and succeeds after a half-close. (Our
 * own shutdown(SHUT_WR) makes it fail too; such a connection ends as soon
 * as its SHUTDOWN is out, so it is not asked.) */
static bool host_closed(struct mconn *mc)
{
	return !mc->c.shut_wr && send_iov(mc->fd, NULL, 0) == -EPIPE;
}

/* The socket's EOF was read. If the host program closed the socket, the
 * guest hears that neither end will send or read, and has LINGER_NS to
 * close its end (deadline_tick resets it then); if it only half-closed,
 * each tick looks again (close_tick). Whether the guest's reader has taken
 * everything or not, the data went out before the EOF was read. */
static void watch_close(struct vsock_mux *m, struct mconn *mc)
{
	if (host_closed(mc)) {
		vsock_conn_host_gone(&mc->c);
		mc->deadline = now_ns() + LINGER_NS;
	}
	arm_timer(m);
}

/* A connection whose host program half-closed: whether to keep ticking for
 * it, until the program closes the socket or the guest the connection. */
static bool close_tick(struct vsock_mux *m, struct mconn *mc)
{
	if (!mc->c.local_eof || mc->c.host_gone || mc->c.shut_wr)
		return false;
	watch_close(m, mc);
	if (mc->c.host_gone) {
		rxq_add(m, mc);
		kick(m);
	}
	return true;
}

/* A connection waiting for the guest's credit: whether to keep ticking for
 * it. After CREDIT_ASK_TICKS ticks, ask the guest once. */
static bool credit_tick(struct vsock_mux *m, struct mconn *mc)
{
	if (!mc->c.want_credit || mc->c.credit_asked)
		return false;
	if (++mc->credit_ticks < CREDIT_ASK_TICKS)
		return true;
	if (vsock_conn_ask_credit(&mc->c)) {
		rxq_add(m, mc);
		kick(m);
	}
	return false;
}

/* A connection with a deadline: whether it is still to come (keep
 * ticking). Past it, close the connection: a host program that has not
 * finished its CONNECT line, a REQUEST the guest has not answered, or a
 * guest that has not closed its end since the host program closed. */
static bool deadline_tick(struct vsock_mux *m, struct mconn *mc, uint64_t now)
{
	if (!mc->deadline)
		return false;
	if (now < mc->deadline)
		return true;
	if (mc->line) {
		pr_debug("vsock %s: a host program sent no CONNECT line in time", m->path);
		conn_close(m, mc, false);
	} else if (mc->c.host_gone) {
		pr_debug("vsock: guest port %u kept its end open after the host program "
			 "closed; resetting it",
			 mc->c.peer_port);
		conn_close(m, mc, true);
	} else {
		pr_debug("vsock: guest port %u did not answer in time", mc->c.peer_port);
		conn_close(m, mc, true);
	}
	return false;
}

/* Close what has passed its deadline, ask for credit the guest has kept us
 * waiting for, and look for host programs that closed after a half-close. */
static void timer_done(struct ev_op *op, int res)
{
	struct vsock_mux *m = container_of(op, struct vsock_mux, timer_op);
	uint64_t now = now_ns();
	bool waiting = false;
	struct mconn *mc, *next;

	if (res == -ECANCELED)
		return;
	catch_up(m);
	for (mc = m->lines.head; mc; mc = next) {
		next = mc->next;
		if (deadline_tick(m, mc, now))
			waiting = true;
	}
	for (mc = m->conns.head; mc; mc = next) {
		next = mc->next;
		if (credit_tick(m, mc))
			waiting = true;
		if (close_tick(m, mc))
			waiting = true;
		if (deadline_tick(m, mc, now))
			waiting = true;
	}
	/* Held connections: tick until the guest takes up its reset or the
	 * wait's bound passes (awaiting_guest gives up then). */
	if (m->nheld) {
		if (awaiting_guest(m))
			waiting = true;
		else
			release_held(m);
	}
	if (waiting)
		arm_timer(m);
}

/* Read the CONNECT line, no further than its "\n": the stream after it
 * stays in the socket for the guest. */
static void read_line(struct vsock_mux *m, struct mconn *mc)
{
	char buf[VSOCK_UDS_LINE_MAX];
	uint32_t port;
	ssize_t n, take;
	bool done;

	for (;;) {
		n = recv(mc->fd, buf, sizeof(buf) - mc->line_len, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (arm(m, &mc->rd_op, mc->fd, POLLIN) < 0)
				conn_close(m, mc, false);
			return;
		}
		if (n <= 0) { /* closed before a whole line */
			conn_close(m, mc, false);
			return;
		}
		take = vsock_uds_line_scan(buf, (size_t)n, mc->line_len, &done);
		if (take < 0 ||
		    recv(mc->fd, mc->linebuf + mc->line_len, (size_t)take, MSG_DONTWAIT) != take) {
			pr_debug("vsock: %s: CONNECT line too long", m->path);
			conn_close(m, mc, false);
			return;
		}
		mc->line_len += (size_t)take;
		if (done)
			break;
	}
	if (vsock_uds_parse_connect(mc->linebuf, mc->line_len - 1, &port) < 0) {
		pr_debug("vsock: %s: not a CONNECT line: \"%.*s\"", m->path, (int)mc->line_len - 1,
			 mc->linebuf);
		conn_close(m, mc, false);
		return;
	}
	if (m->nconns >= MAX_CONNS) {
		pr_debug("vsock %s: too many connections; closing a new one", m->path);
		conn_close(m, mc, false);
		return;
	}
	/* From the lines to the connections: it counts as one now. */
	list_del(&m->lines, mc);
	m->nlines--;
	mc->line = false;
	mc->deadline = 0; /* the REQUEST may wait for the driver */
	list_add(&m->conns, mc);
	m->nconns++;
	vsock_conn_connect(&mc->c, vsock_table_new_port(&m->t), port, BUF_MIN);
	vsock_table_add(&m->t, &mc->e, mc->c.local_port, port);
	count(m, &m->stats.conns_host, 1);
	rxq_add(m, mc);
	kick(m);
}

static void rd_done(struct ev_op *op, int res)
{
	struct mconn *mc = container_of(op, struct mconn, rd_op);
	struct vsock_mux *m = mc->m;

	if (!poll_live(mc, res))
		return;
	if (mc->line) {
		read_line(m, mc);
		return;
	}
	/* Errors and hang-ups too: the read reports them. */
	vsock_conn_readable(&mc->c);
	rxq_add(m, mc);
	kick(m);
}

/* A connection on fd: a host program's that has its CONNECT line to read
 * (line), or a guest's. */
static struct mconn *new_conn(struct vsock_mux *m, int fd, bool line)
{
	struct mconn *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return NULL;
	mc->m = m;
	mc->fd = fd;
	mc->rd_op = (struct ev_op){.done = rd_done};
	mc->wr_op = (struct ev_op){.done = wr_done};
	mc->line = line;
	if (line) {
		list_add(&m->lines, mc);
		m->nlines++;
	} else {
		list_add(&m->conns, mc);
		m->nconns++;
	}
	count(m, &m->stats.conns_open, 1);
	return mc;
}

static void accepted(struct ev_op *op, int res)
{
	struct vsock_mux *m = container_of(op, struct vsock_mux, listen_op);
	struct mconn *mc;
	int fd;

	if (res < 0) {
		if (res != -ECANCELED && !m->listen_logged)
			pr_err("vsock %s: polling the socket: %s", m->path, strerror(-res));
		m->listen_logged = true;
		return;
	}
	catch_up(m);
	while ((fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		/* Clients that connect and say nothing push each other out,
		 * and nothing else. */
		if (m->nlines >= MAX_LINES) {
			pr_debug("vsock %s: %u host programs owe their CONNECT line; "
				 "closing the oldest",
				 m->path, m->nlines);
			conn_close(m, m->lines.head, false);
		}
		if (!(mc = new_conn(m, fd, true))) {
			pr_debug("vsock %s: out of memory; closing a new connection", m->path);
			close_fd(&fd);
			continue;
		}
		mc->deadline = now_ns() + LINE_TIMEOUT_NS;
		arm_timer(m);
		read_line(m, mc);
	}
	if (errno != EAGAIN && errno != EINTR && !m->listen_logged) {
		pr_err("vsock %s: accept: %s", m->path, strerror(errno));
		m->listen_logged = true;
	}
}

/* ---- guest-initiated connections ---------------------------------------- */

static void guest_connect(struct vsock_mux *m, const struct vsock_pkt *p)
{
	uint32_t port = le32toh(p->hdr.dst_port);
	struct mconn *mc = NULL;
	int fd = -1, r;

	r = m->nconns >= MAX_CONNS ? -EMFILE : vsock_uds_connect(m->path, port, &fd);
	/* A new descriptor is the lowest free one: all below it are open. */
	if (r == 0 && fd >= m->fd_cap) {
		close_fd(&fd);
		r = -EMFILE;
	}
	if (r == 0 && !(mc = new_conn(m, fd, false))) {
		close_fd(&fd);
		r = -ENOMEM;
	}
	if (r < 0) {
		pr_debug("vsock: guest connection to %s_%u: %s", m->path, port, strerror(-r));
		queue_rst(m, port, le32toh(p->hdr.src_port));
		return;
	}
	vsock_conn_accept(&mc->c, &p->hdr, BUF_MIN);
	mc->exposed = true;
	vsock_table_add(&m->t, &mc->e, port, le32toh(p->hdr.src_port));
	count(m, &m->stats.conns_guest, 1);
	rxq_add(m, mc);
}

/* ---- the device's backend ------------------------------------------------ */

static void be_tx(void *be, const struct vsock_pkt *p)
{
	struct vsock_mux *m = be;
	uint32_t local = le32toh(p->hdr.dst_port), peer = le32toh(p->hdr.src_port);
	uint16_t op = le16toh(p->hdr.op);
	struct mconn *mc;

	catch_up(m);
	mc = lookup(m, local, peer);
	if (!mc) {
		if (op == VIRTIO_VSOCK_OP_REQUEST)
			guest_connect(m, p);
		else if (op != VIRTIO_VSOCK_OP_RST)
			queue_rst(m, local, peer);
		return;
	}
	switch (vsock_conn_recv(&mc->c, &p->hdr)) {
	case VSOCK_CONN_GONE:
		count(m, &m->stats.resets, 1);
		conn_close(m, mc, false);
		return;
	case VSOCK_CONN_RESET:
		pr_debug("vsock: guest broke connection %u -> %u (op %u); resetting it", peer,
			 local, op);
		conn_close(m, mc, true);
		return;
	case VSOCK_CONN_ESTABLISHED:
		established(m, mc);
		break;
	case VSOCK_CONN_KEEP:
		if (op == VIRTIO_VSOCK_OP_RW)
			forward(m, mc, p);
		else if (op == VIRTIO_VSOCK_OP_SHUTDOWN &&
			 le32toh(p->hdr.flags) & VIRTIO_VSOCK_SHUTDOWN_RCV)
			/* The host program's writes fail from now on, as the
			 * guest's would. */
			(void)shutdown(mc->fd, SHUT_RD);
		break;
	}
	settle(m, mc);
}

static void be_tx_bad(void *be, const struct vsock_pkt *p)
{
	struct vsock_mux *m = be;
	uint32_t local = le32toh(p->hdr.dst_port), peer = le32toh(p->hdr.src_port);
	struct mconn *mc;

	catch_up(m);
	if ((mc = lookup(m, local, peer)))
		conn_close(m, mc, true);
	else
		queue_rst(m, local, peer);
}

static bool be_rx_pending(void *be)
{
	struct vsock_mux *m = be;

	catch_up(m);
	return vsock_table_pending(&m->t);
}

/* Read the socket into the payload buffers of p[0..n), in order: no more
 * than the guest's credit. Returns bytes, 0 at EOF, or -errno. */
static ssize_t read_into(struct vsock_mux *m, struct mconn *mc, struct vsock_pkt *p, unsigned n)
{
	uint32_t left = vsock_conn_credit(&mc->c);
	unsigned niov = 0;
	ssize_t r;

	/* The first packet's segments always fit: rx_iov holds a queue's
	 * worth of them twice over. */
	for (unsigned i = 0; i < n && left; i++) {
		if (niov + p[i].niov > ARRAY_SIZE(m->rx_iov))
			break;
		for (unsigned k = 0; k < p[i].niov && left; k++) {
			size_t len = p[i].iov[k].iov_len < left ? p[i].iov[k].iov_len : left;
			m->rx_iov[niov++] = (struct iovec){p[i].iov[k].iov_base, len};
			left -= (uint32_t)len;
		}
	}
	if (!niov)
		return -ENOBUFS; /* no credit or no room: the caller checked both */
	do
		r = readv(mc->fd, m->rx_iov, (int)niov);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* Size mc's buffer for the header about to go out (vsock_mux.h): its floor
 * and an equal part of the shared budget, as far as the budget has room,
 * and never below what the guest was already let send. A buffer that holds
 * data keeps its size (its host reader is behind: more room would only
 * hold more). */
static void size_buf(struct vsock_mux *m, struct mconn *mc)
{
	uint32_t old = mc->c.buf_alloc;
	uint32_t share = BUF_MIN + ((BUF_SHARED / m->nconns) & ~(BUF_MIN - 1));
	uint32_t room = old + (BUF_SHARED - m->buf_extra);
	uint32_t floor = (vsock_conn_promised(&mc->c) + BUF_MIN - 1) & ~(BUF_MIN - 1);
	uint32_t size = share < BUF_MAX ? share : BUF_MAX;

	if (size > room)
		size = room;
	if (size < floor)
		size = floor;
	if (size == old || vsock_conn_resize(&mc->c, size) < 0)
		return;
	m->buf_extra = m->buf_extra + size - old; /* old - BUF_MIN was in it */
}

/* Build the next packets mc owes the guest in p[0..n): one control packet,
 * or as much data as one read brings, a packet per buffer it fills. Returns
 * how many, 0 when it turned out to owe nothing (mc has left the queue, or
 * was closed). */
static unsigned conn_rx(struct vsock_mux *m, struct mconn *mc, struct vsock_pkt *p, unsigned n)
{
	uint32_t flags;
	uint16_t op;
	ssize_t got = 0;
	unsigned k = 1;

	for (;;) {
		bool had_credit = !mc->c.want_credit;
		op = vsock_conn_next(&mc->c, &flags);
		if (had_credit && mc->c.want_credit) {
			/* Out of credit: the guest's update should come unasked. */
			mc->credit_ticks = 0;
			arm_timer(m);
		}
		if (!op) {
			vsock_table_unqueue(&m->t, &mc->e);
			return 0;
		}
		if (op != VIRTIO_VSOCK_OP_RW)
			break;
		got = read_into(m, mc, p, n);
		if (got > 0)
			break;
		if (got == 0) {
			vsock_conn_eof(&mc->c);
			watch_close(m, mc);
		} else if (got == -EAGAIN) {
			vsock_conn_drained(&mc->c);
			if (arm(m, &mc->rd_op, mc->fd, POLLIN) < 0) {
				conn_close(m, mc, true);
				return 0;
			}
		} else {
			conn_close(m, mc, true);
			return 0;
		}
	}
	size_buf(m, mc);
	if (op == VIRTIO_VSOCK_OP_RW) {
		uint32_t left = (uint32_t)got;
		for (k = 0; left; k++) {
			uint32_t len = left < p[k].room ? left : p[k].room;
			vsock_conn_emit(&mc->c, &p[k].hdr, m->cid, op, 0, len);
			left -= len;
		}
	} else {
		vsock_conn_emit(&mc->c, &p->hdr, m->cid, op, flags, 0);
	}
	if (op == VIRTIO_VSOCK_OP_REQUEST) {
		mc->exposed = true;
		mc->deadline = now_ns() + CONNECT_TIMEOUT_NS;
		arm_timer(m);
	}
	/* To the back of the queue: connections take turns. */
	vsock_table_unqueue(&m->t, &mc->e);
	rxq_add(m, mc);
	if (op == VIRTIO_VSOCK_OP_SHUTDOWN)
		settle(m, mc);
	return k;
}

static unsigned be_rx(void *be, struct vsock_pkt *p, unsigned n)
{
	struct vsock_mux *m = be;
	unsigned k = 0;

	catch_up(m);
	while (k < n) {
		struct vsock_entry *e;
		struct vsock_rst r;

		if (vsock_table_pop_rst(&m->t, &r)) {
			vsock_pkt_init(&p[k].hdr, m->cid, r.local_port, r.peer_port,
				       VIRTIO_VSOCK_OP_RST, 0);
			k++;
			continue;
		}
		if (!(e = vsock_table_first(&m->t)))
			break;
		k += conn_rx(m, container_of(e, struct mconn, e), p + k, n - k);
	}
	return k;
}

static void be_changed(void *be)
{
	struct vsock_mux *m = be;
	int r = ev_kick_send(&m->wake);

	if (r < 0)
		pr_err("vsock: cannot wake the event loop: %s", strerror(-r));
}

/* On the loop thread after be_changed: drop what a reset ended, and send
 * what waited for the driver. */
static void woken(struct ev_op *op, int res)
{
	struct vsock_mux *m = container_of(op, struct vsock_mux, wake.op);

	if (ev_kick_take(&m->wake, res) < 0)
		return;
	catch_up(m);
	kick(m);
}

static void kicked(struct ev_op *op, int res)
{
	struct vsock_mux *m = container_of(op, struct vsock_mux, kick_op);

	(void)res;
	vsock_dev_kick(m->dev);
}

/* ---- snapshot -------------------------------------------------------------- */

/* Bytes c holds for its host socket. */
static size_t held_bytes(const struct vsock_conn *c)
{
	struct iovec iov[2];
	unsigned n = vsock_conn_buffered(c, iov);
	size_t len = 0;

	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

/* What the guest sent that no host program took: bytes on conns
 * connections. */
struct dropped {
	size_t bytes;
	unsigned conns;
};

/* Counts what mc still holds for its host socket into d. */
static void add_held(struct dropped *d, const struct mconn *mc)
{
	size_t n = held_bytes(&mc->c);

	d->bytes += n;
	d->conns += n != 0;
}

/* The dropped bytes, said once, naming the moment. (The guest saw them
 * taken.) */
static void warn_dropped(const struct dropped *d, const char *when)
{
	if (d->bytes)
		pr_warn("vsock: %zu bytes the guest sent on %u connection(s) were not taken by "
			"their host program%s %s, and are dropped",
			d->bytes, d->conns, d->conns == 1 ? "" : "s", when);
}

/* Hand the host program what the guest sent that its socket has not taken
 * yet, as far as the socket takes it now without waiting. */
static void hand_over(struct mconn *mc)
{
	struct iovec iov[2];
	unsigned n = vsock_conn_buffered(&mc->c, iov);
	ssize_t w;

	if (n && (w = send_iov(mc->fd, iov, n)) > 0)
		vsock_conn_forwarded(&mc->c, (uint32_t)w);
}

void vsock_mux_quiesce(struct vsock_mux *m)
{
	struct mlist *lists[] = {&m->lines, &m->conns};
	struct dropped lost = {0};

	catch_up(m);
	vsock_dev_quiesce(m->dev);
	/* A new wait for the guest's reset, if the event went out: its bound
	 * runs from the first connection it holds. */
	m->hold_deadline = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(lists); i++) {
		while (lists[i]->head) {
			struct mconn *mc = lists[i]->head;

			if (!mc->line) {
				hand_over(mc);
				add_held(&lost, mc);
			}
			/* The peer's EOF now: the socket itself is released
			 * only once the loop has cancelled its polls, after
			 * the resume. */
			(void)shutdown(mc->fd, SHUT_RDWR);
			conn_close(m, mc, false);
		}
	}
	warn_dropped(&lost, "when the VM was quiesced (a snapshot or a reset)");
	/* The guest forgets every connection at the event: it is owed no
	 * RST. */
	vsock_table_clear_rsts(&m->t);
}

/* Write what mc's socket takes now. Returns whether bytes remain that it
 * may take later: it is full, not gone. write, not send_iov: the control
 * thread's seccomp table has no sendmsg; vm_run ignores SIGPIPE, so a host
 * program gone away is an EPIPE here. */
static bool hand_over_some(struct mconn *mc)
{
	struct iovec iov[2];

	while (vsock_conn_buffered(&mc->c, iov) > 0) {
		ssize_t w = write(mc->fd, iov[0].iov_base, iov[0].iov_len);

		if (w > 0) {
			vsock_conn_forwarded(&mc->c, (uint32_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return w < 0 && errno == EAGAIN;
	}
	return false;
}

void vsock_mux_hand_over(struct vsock_mux *m, uint64_t deadline_ns)
{
	/* Every connection at once: a host program that never reads holds
	 * up the others only as long as the deadline, and takes none of
	 * their time before it. (A connection on the list is never dead:
	 * conn_close moves it to the zombies.) */
	struct pollfd *p = calloc(m->nconns ? m->nconns : 1, sizeof(*p));
	struct dropped lost = {0};
	struct mconn *mc;

	for (;;) {
		unsigned n = 0;
		uint64_t now;

		for (mc = m->conns.head; mc; mc = mc->next)
			if (hand_over_some(mc) && p)
				p[n++] = (struct pollfd){.fd = mc->fd, .events = POLLOUT};
		now = now_ns();
		if (!n || now >= deadline_ns)
			break;
		if (poll(p, n, (int)((deadline_ns - now + 999999) / 1000000)) < 0 && errno != EINTR)
			break;
	}
	free(p);
	for (mc = m->conns.head; mc; mc = mc->next)
		add_held(&lost, mc);
	warn_dropped(&lost, "before the VM's end");
}

int vsock_mux_save(const struct vsock_mux *m, struct wbuf *w)
{
	return vsock_dev_save(m->dev, w);
}

int vsock_mux_restore(struct vsock_mux *m, struct rbuf *r, char *err, size_t errlen)
{
	return vsock_dev_restore(m->dev, r, err, errlen);
}

/* ---- life cycle ---------------------------------------------------------- */

int vsock_mux_create(struct vsock_mux **out, const struct vsock_mux_params *p)
{
	struct vsock_backend be = {.tx = be_tx,
				   .tx_bad = be_tx_bad,
				   .rx_pending = be_rx_pending,
				   .rx = be_rx,
				   .changed = be_changed};
	struct vsock_mux *m;
	struct rlimit nofile;
	int r;

	*out = NULL;
	/* Its port table and read vector are sized for the most there can be. */
	m = lazy_zalloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->listen_fd = m->wake.fd = -1;
	/* Read now: the loop thread's seccomp filter has no getrlimit. */
	m->fd_cap = INT_MAX;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < INT_MAX)
		/* Under a small limit (a jail's --resource-limit no-file),
		 * half of it: the guest keeps room to connect at all. */
		m->fd_cap = (int)(nofile.rlim_cur >= 2 * FD_RESERVE ? nofile.rlim_cur - FD_RESERVE
								    : nofile.rlim_cur / 2);
	m->cid = p->guest_cid;
	m->reset_wait_ns =
	    (p->reset_wait_ms ? p->reset_wait_ms : RESET_WAIT_MS_DEFAULT) * 1000000ull;
	m->loop = p->loop;
	vsock_table_init(&m->t);
	m->tick = (struct __kernel_timespec){.tv_nsec = TIMER_TICK_NS};
	m->listen_op = (struct ev_op){.done = accepted};
	m->kick_op = (struct ev_op){.done = kicked};
	m->reap_op = (struct ev_op){.done = reap};
	m->timer_op = (struct ev_op){.done = timer_done};
	pthread_mutex_init(&m->stats_lock, NULL);
	be.be = m;
	if (!(m->path = strdup(p->uds_path))) {
		r = -ENOMEM;
		goto err;
	}
	if ((r = m->listen_fd = usock_listen(m->path, SOCK_NONBLOCK, 128, 0, &m->made)) < 0) {
		m->listen_fd = -1;
		pr_err("vsock %s: cannot listen: %s", m->path, usock_why(r));
		free(m->path);
		m->path = NULL; /* not ours to unlink */
		goto err;
	}
	if ((r = ev_kick_init(&m->wake, woken)) < 0) {
		pr_err("vsock %s: eventfd: %s", m->path, strerror(-r));
		goto err;
	}
	if ((r = vsock_dev_create(&m->dev, p->guest_cid, p->loop, &be)) < 0 ||
	    (r = ev_kick_arm(&m->wake, p->loop)) < 0) {
		pr_err("vsock %s: %s", m->path, strerror(-r));
		goto err;
	}
	m->resets_seen = vsock_dev_resets(m->dev);
	*out = m;
	if ((r = evloop_poll(p->loop, &m->listen_op, m->listen_fd, POLLIN)) < 0) {
		/* The wake is polled: m must outlive the loop (see the header). */
		pr_err("vsock %s: %s", m->path, strerror(-r));
		return r;
	}
	return 0;
err:
	vsock_mux_destroy(m);
	return r;
}

void vsock_mux_device(struct vsock_mux *m, const struct virtio_dev_ops **ops, void **dev)
{
	*ops = &vsock_ops;
	*dev = m->dev;
}

void vsock_mux_get_stats(struct vsock_mux *m, struct vsock_mux_stats *out)
{
	struct vsock_dev_stats d;

	pthread_mutex_lock(&m->stats_lock);
	*out = m->stats;
	pthread_mutex_unlock(&m->stats_lock);
	vsock_dev_get_stats(m->dev, &d);
	out->rx_bytes = d.rx_bytes;
	out->tx_bytes = d.tx_bytes;
	out->bad_packets = d.bad_packets;
}

void vsock_mux_print_open(const struct vsock_mux *m)
{
	static const char *const states[] = {"connecting", "open", "closed"};

	for (const struct mconn *mc = m->conns.head; mc; mc = mc->next) {
		const struct vsock_conn *c = &mc->c;

		pr_info("vsock: still open: host port %u, guest port %u, %s%s%s%s; owes the guest "
			"0x%x%s%s; to the guest sent=%u credit=%u%s%s; from the guest got=%u "
			"forwarded=%u buffered=%u (told fwd_cnt=%u buf_alloc=%u)",
			c->local_port, c->peer_port, states[c->state],
			c->peer_no_send ? ", guest sends no more" : "",
			c->peer_no_recv ? ", guest receives no more" : "",
			c->local_eof ? ", host program's EOF read" : "", c->pending,
			mc->e.queued ? " (queued)" : "", mc->held ? " (held)" : "", c->tx_cnt,
			vsock_conn_credit(c), c->want_credit ? " (waiting)" : "",
			c->credit_asked ? " (asked)" : "", c->rx_cnt, c->fwd_cnt, c->buf_len,
			c->told_fwd_cnt, c->told_buf_alloc);
	}
}

static void free_all(struct mlist *list)
{
	while (list->head) {
		struct mconn *mc = list->head;
		list_del(list, mc);
		vsock_conn_release(&mc->c);
		close_fd(&mc->fd);
		free(mc);
	}
}

void vsock_mux_destroy(struct vsock_mux *m)
{
	if (!m)
		return;
	free_all(&m->lines);
	free_all(&m->conns);
	free_all(&m->zombies);
	close_fd(&m->listen_fd);
	ev_kick_close(&m->wake);
	if (m->path)
		usock_remove(m->path, &m->made);
	vsock_dev_destroy(m->dev);
	pthread_mutex_destroy(&m->stats_lock);
	free(m->path);
	lazy_free(m, sizeof(*m));
}
