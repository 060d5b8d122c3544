/* virtio-net (virtio 1.2 section 5.1) on a host tap device, or on passt
 * (--net user: passt.h, frames over a stream socket, stream.h): one RX and
 * one TX queue, no control queue. Tap first; how the stream backend differs
 * is said at the end. RX packets move straight from the tap into
 * guest memory, with readv() when an io_uring poll finds the tap readable.
 * TX packets are copied, header and frame, out of guest memory into buffers
 * of the device's own, checked there and written to the tap from there with
 * io_uring: the tap gets the header that was checked, and no write in flight
 * reads guest memory (none does after a reset). The tap speaks the same
 * 12-byte virtio-net header (IFF_VNET_HDR), so headers cross unchanged and
 * checksum and segmentation offloads cost nothing here.
 *
 * Threads: notify() and the I/O completions run on the event-loop thread;
 * activate(), reset() and config reads on vCPU threads (see virtio.h). A
 * guest that stops taking packets never blocks flint (the tap queues and
 * then drops); a malformed TX chain drops that packet and is counted.
 *
 * Rate limiting, per direction: a TX frame the limiter refuses stays in its
 * slot, copied and checked, and the TX queue is left alone (notifications
 * off); an RX frame already read into the guest's buffers is held there,
 * not yet in the used ring, and the tap is not read. One loop timer per
 * direction, armed for as long as the tokens take, lets the frame go. A
 * change of limits from another thread (net_set_ratelimit) wakes the loop
 * through an eventfd.
 *
 * The stream backend (NET_BACKEND_USER): frames cross without a virtio-net
 * header, so the device offers no checksum or segmentation offloads (the
 * guest sends and takes whole frames with their checksums) and writes
 * none. RX reads the socket into a buffer of the device's (a read may hold
 * many frames, or part of one) and copies each frame into the held chains
 * behind a zeroed header. TX writes each checked copy behind its length,
 * one write on the socket at a time, in order, a short write continued
 * where it stopped (a reset or a snapshot never cuts a frame: the stream
 * would be lost). A length over the largest frame, the socket's end, or a
 * failed write break the stream: logged once, counted, and no more frames
 * go that way.
 *
 * Life cycle: net_create before the loop runs; net_destroy after it has
 * stopped. */
#ifndef FLINT_NET_H
#define FLINT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/evloop.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "net/passt.h"
#include "virtio.h"

struct net;

/* passt's default MTU: the largest 802.3 frame less its header, in whole
 * 32-bit words. */
#define NET_USER_MTU 65520

enum net_backend {
	NET_BACKEND_TAP,  /* a host tap: packets with a virtio-net header */
	NET_BACKEND_USER, /* passt: frames over a stream socket */
};

/* A local endpoint on the interface (MMDS: mmds/port.h), which sees the
 * guest's frames before the backend does and whose frames reach the guest
 * before the backend's. Called on the event-loop thread with the device's
 * lock held (reset and destroy: as the device's). The endpoint's frames
 * pass the RX limiter and count in rx_*; the frames it takes pass no
 * limiter and count in tx_detoured only, as Firecracker's MMDS frames. */
struct net_detour {
	/* A TX frame (no virtio-net header): true when it was for the
	 * endpoint, which keeps it, false to send it on. */
	bool (*take)(void *ctx, const uint8_t *frame, size_t len);
	/* Whether give has a frame now; *due_ns: when it will by itself
	 * (now_ns()'s clock; 0: not), for the device's timer. */
	bool (*owed)(void *ctx, uint64_t *due_ns);
	/* The next frame for the guest into buf (cap bytes): its length, or
	 * 0 for none. */
	size_t (*give)(void *ctx, uint8_t *buf, size_t cap);
	/* The device was reset (NULL: nothing to do). */
	void (*reset)(void *ctx);
	/* The device owns ctx once net_create succeeds: net_destroy calls
	 * this (NULL: nothing to do). */
	void (*destroy)(void *ctx);
	void *ctx;
};

/* The largest frame a detour gives. */
#define NET_DETOUR_FRAME_MAX 1600

struct net_params {
	enum net_backend backend;
	const char *tap; /* TAP: host interface; opened IFF_TAP|IFF_NO_PI|IFF_VNET_HDR */
	/* USER: the addresses passt gives the guest (net_create starts it). */
	struct passt_net user;
	/* USER: passt's end of a socket pair, inherited and ready (--net
	 * user,fd=N: flint-jail started passt); net_create then starts none.
	 * 0: none. */
	int user_fd;
	const char *id;	    /* name for messages and stats ("net0") */
	const uint8_t *mac; /* 6 bytes, offered with VIRTIO_NET_F_MAC; NULL for none */
	/* The MTU the guest is told to use (VIRTIO_NET_F_MTU), 68 to 65535; 0:
	 * none (the guest's default, 1500), or with USER passt's, NET_USER_MTU.
	 * The host tap's own MTU is the user's to set, as with Firecracker. */
	unsigned mtu;
	struct evloop *loop; /* must outlive the device */
	/* Firecracker's rx_rate_limiter and tx_rate_limiter: each frame costs
	 * one op and its bytes (the frame, not the virtio-net header). All
	 * zero: no limit. */
	struct ratelimit_cfg rx_rate_limiter, tx_rate_limiter;
	/* NULL take: none; else take, owed and give are all given. */
	struct net_detour detour;
};

/* Counters for --stats, cumulative since net_create. Any thread. */
struct net_stats {
	uint64_t rx_packets, rx_bytes; /* tap -> guest */
	uint64_t tx_packets, tx_bytes; /* guest -> tap */
	uint64_t tx_malformed;	       /* TX chains dropped as malformed */
	uint64_t tx_errors, rx_errors; /* tap (or stream) read/write failures */
	uint64_t rx_no_buffers;	       /* times RX waited for guest buffers */
	/* Packets read but not delivered: larger than the guest's buffers,
	 * or held back by the limiter when a snapshot gave the buffers back. */
	uint64_t rx_dropped;
	uint64_t rx_bad_buffers;    /* RX chains given back unused (readable, or too small) */
	uint64_t tx_inflight_max;   /* most writes in flight at once */
	uint64_t protocol_errors;   /* broken rings: DEVICE_NEEDS_RESET */
	uint64_t stale_completions; /* writes that finished after a reset */
	/* Frames the limiters refused (a frame refused again counts again). */
	uint64_t rx_rate_limiter_throttled, tx_rate_limiter_throttled;
	uint64_t tx_detoured; /* TX frames the detour kept (not in tx_packets) */
};

/* Open the tap, or start passt, and build the device. Errors are logged
 * naming the tap ("no such device", "permission denied: needs CAP_NET_ADMIN
 * or a tap owned by this user") or passt (not installed, exited, and what
 * it said). Returns 0 or -errno; *out owned by the caller. A passt started
 * here quits when net_destroy closes its socket, or when flint dies. */
int net_create(struct net **out, const struct net_params *p) WARN_UNUSED;

/* The same on an fd the caller opened, which the device owns from here
 * (closed on failure too): with NET_BACKEND_TAP a tap from tap_open, or for
 * tests any packet-preserving fd (an AF_UNIX SOCK_SEQPACKET socket), on
 * which the tap ioctls are skipped; with NET_BACKEND_USER a stream socket
 * speaking QEMU's stream protocol (passt's, or a test's). Non-blocking,
 * like the tap. Returns 0 or -errno. */
int net_create_fd(struct net **out, const struct net_params *p, int fd) WARN_UNUSED;

/* Close the tap and free the device. The loop must have stopped. NULL ok. */
void net_destroy(struct net *n);

void net_get_stats(struct net *n, struct net_stats *out);

/* Change the limiters of a running device (PATCH /network-interfaces after
 * boot); NULL leaves that direction as it is. Each cfg is complete (what a
 * PATCH leaves out, the caller takes from net_get_ratelimit). What the
 * buckets hold is kept (ratelimit_update), and a frame waiting for tokens
 * is looked at again at once. Any thread; does not wait for the loop.
 * Returns 0, or -EINVAL (a field over INT64_MAX) with neither changed. */
int net_set_ratelimit(struct net *n, const struct ratelimit_cfg *rx,
		      const struct ratelimit_cfg *tx) WARN_UNUSED;

/* The limiters' configs now; NULL: not wanted. */
void net_get_ratelimit(struct net *n, struct ratelimit_cfg *rx, struct ratelimit_cfg *tx);

/* The RX and TX limiters' states for a snapshot (the loop parked and the
 * vCPUs paused: no lock taken), and back into an interface restored from
 * one or reset in place to it (its loop parked or not yet started): 0, or
 * -EINVAL (both unchanged) as ratelimit_resume says
 * (NULL: the buckets full, as at boot). */
void net_save_limits(const struct net *n, struct ratelimit_state *rx, struct ratelimit_state *tx);
int net_restore_limits(struct net *n, const struct ratelimit_state *rx,
		       const struct ratelimit_state *tx) WARN_UNUSED;

/* Snapshot, first step (devices.h's drain), with the event loop running:
 * wait, until deadline_ns (now_ns()'s clock), for the TX writes in flight
 * to finish and their chains to be used. Control thread. 0, or -ETIMEDOUT
 * with err (errlen bytes) naming the interface, its tap and what is left. */
int net_drain(struct net *n, uint64_t deadline_ns, char *err, size_t errlen) WARN_UNUSED;

/* Snapshot (devices.h's quiesce), with the event loop parked (evloop_pause)
 * or not running: leave no chain popped and not used, so that the saved
 * queues describe everything. The held RX chains are given back
 * (vq_discard: the avail ring offers them again), and with them a packet
 * the RX limiter held back in them, which is lost (counted in rx_dropped);
 * the frame the TX limiter holds is given back too, to be taken, checked
 * and limited again after the resume; a TX write still in flight has its
 * chain used at once (the write reads only the device's copy). Interrupts
 * owed are signalled. Afterwards the device works on as before: a kick, or
 * the tap turning readable, starts it again. */
void net_quiesce(struct net *n);

/* VIRTIO_ID_NET, queues 0 (RX) and 1 (TX); dev is a struct net. */
extern const struct virtio_dev_ops net_ops;

#endif
