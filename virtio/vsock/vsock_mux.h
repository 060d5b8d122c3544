/* Firecracker-compatible hybrid vsock: the guest's AF_VSOCK, through a
 * virtio-vsock device, mapped to AF_UNIX sockets on the host.
 *
 *  - Host-initiated: a host program connects to the Unix socket `uds_path`
 *    and writes "CONNECT <port>\n"; flint opens a connection to the guest's
 *    port and answers "OK <host_port>\n", then relays the stream, or closes
 *    the Unix connection when the guest refuses (nothing listening).
 *  - Guest-initiated: a guest connection to CID 2 port P is relayed to a
 *    connection to the Unix socket "<uds_path>_<P>"; the guest gets a reset
 *    when nothing listens there.
 *
 * The packet handling (virtio side, vsock.c and vsock_pkt.c) is separate
 * from this muxer (host side, the device's backend); this header is the one
 * the VM glue uses. Pieces: vsock_conn.c (one connection's state and credit),
 * vsock_uds.c (the CONNECT line, the Unix sockets), vsock_table.c (the
 * connections by port, the queue of those owing the guest a packet, RSTs
 * owed), this file (the sockets' events, the device's backend).
 *
 * I/O: sockets are served by the VM's io_uring event loop, as readiness:
 * one-shot io_uring polls (POLLIN while a connection may send to the guest
 * and its socket ran dry, POLLOUT while guest data waits for the socket),
 * then plain non-blocking readv/sendmsg on the loop thread. Readiness rather
 * than io_uring reads and writes because the data moves straight between
 * the socket and guest memory: a read goes into an RX buffer only once
 * there is data to fill it, so no chain is taken from the guest for a read
 * that may not come back for minutes, and packets leave in the order the
 * guest must see them; a TX payload is written from guest memory during the
 * notification, and only what the socket refuses is copied to the
 * connection's buffer, so TX chains go back at once. One connection never
 * has two writes in flight, so partial writes cannot reorder the stream.
 *
 * Limits, so that neither the guest nor a host program can make flint hold
 * without bound what the VM's cgroup pays for:
 *  - Connections: 1024 with ports (either side's), and apart from them 128
 *    host programs that have not finished their CONNECT line. A line gets
 *    2 s (the time the guest gets to answer a REQUEST); when 128 are
 *    pending, a new client pushes out the oldest. So clients that connect
 *    and say nothing can neither hold a slot for long nor take one from a
 *    connection, guest- or host-initiated (the agent's port 52 included).
 *    The guest's own connections also stop 256 descriptors short of
 *    RLIMIT_NOFILE (at half of it, under a limit below 512), which a flint
 *    started from a shell may have at 1024:
 *    the rest of flint (the API, drives, snapshots, host programs) keeps
 *    room to open what it needs.
 *  - Buffered guest data: what host sockets have not taken is held by flint,
 *    up to 8 MiB per VM (4 KiB for each of the 1024 connections, so that
 *    every one of them can always move, plus 4 MiB shared: 16 streams at
 *    the full 256 KiB window that keeps one going at speed). The credit
 *    scheme carries the bound: a connection's buf_alloc, in every header,
 *    is its share of the budget (its floor plus up to an equal part of the
 *    shared 4 MiB, at most 256 KiB), its buffer is exactly that big, and
 *    it changes between headers without ever promising less than the guest
 *    was already let send (vsock_conn.h). The sum of buf_alloc over the
 *    connections never passes the budget, so a guest filling connections
 *    whose host readers stall is held back by its own credit, and whatever
 *    it was allowed to send is kept and delivered. Credit cannot be taken
 *    back, so a connection gives up a share it no longer needs only as its
 *    data is forwarded; with 64 busy streams each gets about 68 KiB.
 *
 * Life cycle: vsock_mux_create before the loop runs (it binds and listens on
 * uds_path, refusing an existing non-socket file or a live socket);
 * vsock_mux_destroy after the loop has stopped (it unlinks uds_path). */
#ifndef FLINT_VSOCK_MUX_H
#define FLINT_VSOCK_MUX_H

#include <stdint.h>

#include "core/evloop.h"
#include "core/util.h"
#include "core/wire.h"
#include "virtio.h"

struct vsock_mux;

struct vsock_mux_params {
	uint32_t guest_cid;   /* >= 3 */
	const char *uds_path; /* fits sun_path with "_<port>" appended */
	struct evloop *loop;  /* must outlive the muxer */
	/* How long host connections wait at most for the guest to take up a
	 * transport reset; 0: 10 s. */
	uint32_t reset_wait_ms;
};

struct vsock_mux_stats {
	uint64_t conns_host, conns_guest; /* connections opened by each side */
	uint64_t conns_open;		  /* open now */
	uint64_t resets;		  /* RST sent or received */
	uint64_t rx_bytes, tx_bytes;	  /* payload to / from the guest */
	uint64_t bad_packets;		  /* malformed guest packets dropped */
};

/* Returns 0 or -errno with the error logged naming the path. On an error
 * after the event loop was given work (extremely unlikely: the SQ could not
 * take a poll), *out is set anyway, to be destroyed after the loop. */
int vsock_mux_create(struct vsock_mux **out, const struct vsock_mux_params *p) WARN_UNUSED;

/* The virtio device to attach (VIRTIO_ID_VSOCK: rx, tx and event queues). */
void vsock_mux_device(struct vsock_mux *m, const struct virtio_dev_ops **ops, void **dev);

void vsock_mux_get_stats(struct vsock_mux *m, struct vsock_mux_stats *out);

/* One log line per connection still open: its state, what it owes the
 * guest, credit and bytes both ways, what it holds. What --stats adds at
 * exit, to find out why a stream stood still. Loop stopped. */
void vsock_mux_print_open(const struct vsock_mux *m);

/* Snapshot (devices.h's quiesce), with the event loop parked by
 * evloop_pause (this thread stands in for the loop's) or not running. The
 * device first sends the muxer what the guest has queued, gives back the
 * RX buffers it holds and tells the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
 * (vsock_dev_quiesce); then every host-side connection is closed, without
 * a RST to the guest, which drops its own at the event: guest data its
 * socket had not taken goes out as far as the socket takes it at once, and
 * the host program reads EOF. Host programs still writing their CONNECT
 * line are closed too. The listening socket at uds_path stays: host
 * programs connect again once the VM runs (here, or restored elsewhere).
 *
 * Connecting again: until the guest has taken up the event (Linux does it
 * in a work item that may come after the one that accepts a new
 * connection, and would then reset it), a host program's CONNECT waits
 * with its REQUEST held back (vsock_dev_awaiting_reset); the held ones go,
 * in order, once the guest gives its event buffer back, or after 1 s
 * without, whichever comes first. The guest's 2 s to answer a REQUEST
 * start when it is sent. Guest-initiated connections do not wait. */
void vsock_mux_quiesce(struct vsock_mux *m);

/* The VM has stopped and the event loop has ended: each connection's
 * guest data that its host socket had not taken yet goes to it, with plain
 * writes and polls for room on every such socket at once (the calling
 * thread's seccomp table has those) until deadline_ns (now_ns()'s clock).
 * What is left then, or what a host program gone away did not take, is
 * dropped and logged. The guest saw
 * those bytes taken: without this, a guest that writes its last output and
 * powers off would lose what a slower reader had not yet read. */
void vsock_mux_hand_over(struct vsock_mux *m, uint64_t deadline_ns);

/* Snapshot state (devices.h's save/restore): the device's
 * (vsock_dev_save/restore: whether the guest's reset is still awaited, so
 * that a restored VM holds host connections back as the saved one would).
 * The muxer adds nothing: quiesce left it no connection. */
int vsock_mux_save(const struct vsock_mux *m, struct wbuf *w) WARN_UNUSED;
int vsock_mux_restore(struct vsock_mux *m, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

/* Close every connection, unlink uds_path, free. Loop stopped. NULL ok. */
void vsock_mux_destroy(struct vsock_mux *m);

#endif
