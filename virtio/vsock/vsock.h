/* virtio-vsock (virtio 1.2 section 5.10): the device side of the guest's
 * AF_VSOCK. Queues rx (0), tx (1) and event (2); the configuration space is
 * struct virtio_vsock_config (the guest's CID); no feature bits (streams
 * only, no SEQPACKET). The device moves packets and nothing more: it checks
 * every packet the guest sends (vsock_pkt.c) and hands it to a backend, and
 * asks the backend for packets whenever it has them and the guest has given
 * receive buffers. Connections, credit and host sockets are the backend's
 * (vsock_mux.c), behind struct vsock_backend.
 *
 * Packets are handled in place: a TX packet's payload is passed as iovecs
 * into guest memory, and the backend writes an RX packet's payload straight
 * into the guest's buffer.
 *
 * Threads: notify() (the vdev's ioeventfds) and vsock_dev_kick run on the
 * event-loop thread, vsock_dev_quiesce on a thread standing in for it
 * while it is parked; activate() and reset() on vCPU threads. A mutex
 * serialises them. The backend's tx, tx_bad, rx_pending and rx callbacks run
 * on the loop thread with that mutex held, so they must not call back into
 * the device (vsock_dev_kick): a backend defers that with evloop_defer.
 * changed runs on a vCPU thread.
 *
 * Errors: a malformed packet is dropped and counted, and reported to the
 * backend when it names a connection (which answers with a RST); a broken
 * ring (vq_pop failing) or an RX chain with no room past a header sets
 * DEVICE_NEEDS_RESET, logged once. */
#ifndef FLINT_VSOCK_H
#define FLINT_VSOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/util.h"
#include "core/wire.h"
#include "virtio.h"
#include "vsock/vsock_pkt.h"

/* Largest queue the device takes. */
#define VSOCK_QUEUE_MAX 256

enum { VSOCK_RXQ = 0, VSOCK_TXQ = 1, VSOCK_EVQ = 2 };

/* What the device needs from the host side. be is passed back to each. */
struct vsock_backend {
	/* A checked packet from the guest; p->iov points at its payload in
	 * guest memory, valid during the call only. */
	void (*tx)(void *be, const struct vsock_pkt *p);
	/* A refused packet that names a connection (vsock_pkt_can_reset):
	 * p->hdr as sent; reset that connection. */
	void (*tx_bad)(void *be, const struct vsock_pkt *p);
	/* Whether the backend has a packet for the guest. */
	bool (*rx_pending)(void *be);
	/* Build the next packets for the guest in p[0..n) (n >= 1), in order:
	 * each p[i].hdr (little-endian), and hdr.len (<= p[i].room) payload
	 * bytes written to p[i].iov. Return how many were built; 0 only when
	 * nothing is pending any more (rx_pending false). The device keeps
	 * the buffers of the rest for the next packets. */
	unsigned (*rx)(void *be, struct vsock_pkt *p, unsigned n);
	/* The driver activated or reset the device (vsock_dev_resets tells
	 * which); from a vCPU thread: wake the loop, do nothing else. */
	void (*changed)(void *be);
	void *be;
};

struct vsock_dev;

/* Counters for --stats, cumulative since vsock_dev_create. */
struct vsock_dev_stats {
	uint64_t tx_packets, tx_bytes; /* guest to host: checked packets, payload bytes */
	uint64_t rx_packets, rx_bytes; /* host to guest */
	uint64_t bad_packets;	       /* malformed guest packets dropped */
	uint64_t rx_waits;	       /* times packets waited for guest RX buffers */
	uint64_t protocol_errors;      /* broken rings: DEVICE_NEEDS_RESET */
};

/* A device for guest guest_cid (>= 3) with backend be (copied). loop must
 * outlive it. Returns 0, -EINVAL or -ENOMEM. */
int vsock_dev_create(struct vsock_dev **out, uint64_t guest_cid, struct evloop *loop,
		     const struct vsock_backend *be) WARN_UNUSED;

/* Free. The loop and the vCPUs must have stopped. NULL ok. */
void vsock_dev_destroy(struct vsock_dev *d);

/* The backend has packets for the guest: deliver as many as the guest's RX
 * buffers take (the rest when it adds buffers). Loop thread, outside the
 * backend callbacks. */
void vsock_dev_kick(struct vsock_dev *d);

/* Resets the driver has done so far. Any thread. A backend that sees it
 * change drops every connection it opened with the guest before. */
uint64_t vsock_dev_resets(const struct vsock_dev *d);

/* Copy the counters. Any thread. */
void vsock_dev_get_stats(struct vsock_dev *d, struct vsock_dev_stats *out);

/* Snapshot (devices.h's quiesce), with the event loop parked (evloop_pause)
 * or not running; the backend closes its host connections after it
 * (vsock_mux_quiesce). The TX chains the guest has queued go to the
 * backend first, as a notification would send them; the RX chains held for
 * the backend's next packets are given back (vq_discard: the avail ring
 * offers them again); and the guest's next event buffer gets a
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, used and signalled through the
 * host's used(), so that the guest drops every connection it has (its
 * listening sockets stay). Returns whether the event went out: not without
 * a running driver, on a device that needs a reset, or when the guest gave
 * no event buffer (said at debug level). When it did, the device awaits the
 * guest's handling of it (vsock_dev_awaiting_reset). The device works on
 * afterwards. */
bool vsock_dev_quiesce(struct vsock_dev *d);

/* Whether the device awaits the guest's handling of the TRANSPORT_RESET it
 * sent (vsock_dev_quiesce): until then a connection the host opens could
 * be reset by the late event (Linux handles events in a work item that may
 * run after the RX work that accepted the connection), so the backend
 * holds back its REQUESTs. It ends when the guest gives the event buffer
 * back (its refill after the handling: the event queue's avail idx moves)
 * and kicks the event queue, the device then runs RX as for a kick of the
 * RX queue; at a driver reset or activation; or at
 * vsock_dev_stop_awaiting_reset. Any thread, lock-free: backend callbacks
 * may ask. */
bool vsock_dev_awaiting_reset(const struct vsock_dev *d);

/* Stop awaiting it: the guest took too long (the backend bounds the wait,
 * so that a guest that never kicks holds no host program for ever). Any
 * thread, lock-free; the backend then sends what it held itself. */
void vsock_dev_stop_awaiting_reset(struct vsock_dev *d);

/* Snapshot state (devices.h's save/restore): the device's own u32 version,
 * whether it awaits the guest's reset and the event queue's index it waits
 * to see move. Save with the loop parked; 0 or w's error. Restore on a
 * device activated with the restored queues, before the loop runs: all is
 * decoded and checked before anything changes; -EBADMSG (truncated,
 * another version, a flag not 0 or 1) or -EINVAL (an index with no wait, a
 * wait with no event queue), err naming the field. Bytes after the state
 * are left in r. */
int vsock_dev_save(const struct vsock_dev *d, struct wbuf *w) WARN_UNUSED;
int vsock_dev_restore(struct vsock_dev *d, struct rbuf *r, char *err, size_t errlen) WARN_UNUSED;

/* VIRTIO_ID_VSOCK, three queues; dev is a struct vsock_dev. */
extern const struct virtio_dev_ops vsock_ops;

#endif
