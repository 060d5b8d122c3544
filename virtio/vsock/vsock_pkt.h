/* virtio-vsock packets (virtio 1.2 section 5.10.6): a 44-byte header,
 * struct virtio_vsock_hdr (little-endian), then the payload, in one chain.
 * Parsing checks every header field of a packet the guest sent (TX queue);
 * the rest lays out packets for the guest (RX queue). No state and no I/O:
 * the device (vsock.c) and the tests call these on popped chains, and the
 * payload stays in guest memory (iovecs into it). */
#ifndef FLINT_VSOCK_PKT_H
#define FLINT_VSOCK_PKT_H

#include <linux/virtio_vsock.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"
#include "vq.h"

#define VSOCK_PKT_HDR_SIZE ((uint32_t)sizeof(struct virtio_vsock_hdr))
/* Largest payload of one packet, either way: Linux's
 * VIRTIO_VSOCK_MAX_PKT_BUF_SIZE, the most it ever puts in a packet. */
#define VSOCK_PKT_MAX_PAYLOAD (64u * 1024)

/* One packet: its header as on the ring, and where its payload is. */
struct vsock_pkt {
	struct virtio_vsock_hdr hdr; /* little-endian */
	struct iovec *iov;	     /* caller's storage for the payload segments */
	unsigned cap;		     /* entries in iov */
	unsigned niov;		     /* segments used */
	uint32_t room;		     /* RX: payload bytes the chain can take */
};

/* Why a guest packet was refused, in the order the checks run. */
enum vsock_pkt_err {
	VSOCK_PKT_OK = 0,
	VSOCK_PKT_WRITABLE, /* device-writable buffers in a TX chain */
	VSOCK_PKT_SHORT,    /* fewer readable bytes than a header */
	VSOCK_PKT_SRC_CID,  /* src_cid is not the guest's CID */
	VSOCK_PKT_DST_CID,  /* dst_cid is not VMADDR_CID_HOST */
	VSOCK_PKT_TYPE,	    /* not VIRTIO_VSOCK_TYPE_STREAM (no SEQPACKET) */
	VSOCK_PKT_OP,	    /* not an op of enum virtio_vsock_op */
	VSOCK_PKT_FLAGS,    /* flags on an op other than SHUTDOWN, or unknown ones */
	VSOCK_PKT_LEN,	    /* len past the chain, over the maximum, or not 0 on a non-RW op */
	VSOCK_PKT_SEGS,	    /* more payload segments than p->cap */
};

/* Parse the TX chain c from guest guest_cid into p (p->iov and p->cap set by
 * the caller): copy the header out (it may span buffers; the copy is what
 * gets checked, so a guest rewriting it meanwhile changes nothing), check
 * it, and point p->iov at exactly hdr.len payload bytes after it. Returns
 * VSOCK_PKT_OK or the first check that failed; p->hdr then holds the header
 * bytes there were (zeros past them). */
enum vsock_pkt_err vsock_pkt_parse(const struct vq_chain *c, uint64_t guest_cid,
				   struct vsock_pkt *p) WARN_UNUSED;

/* Whether a packet refused with err may be answered with a RST: its header
 * was complete and addressed from this guest to the host (so its ports name
 * a connection), and it is not a RST itself (no reset loops). */
bool vsock_pkt_can_reset(enum vsock_pkt_err err, const struct vsock_pkt *p);

/* Short name of err, for logs. */
const char *vsock_pkt_strerror(enum vsock_pkt_err err);

/* Map an RX chain: the header goes in its first VSOCK_PKT_HDR_SIZE bytes,
 * the payload after (p->iov, p->niov; p->room bytes, at most
 * VSOCK_PKT_MAX_PAYLOAD). Returns 0; -EINVAL when the chain has readable
 * buffers or no room past a header; -E2BIG when p->cap segments are too few. */
int vsock_pkt_rx_map(const struct vq_chain *c, struct vsock_pkt *p) WARN_UNUSED;

/* Copy h into the first VSOCK_PKT_HDR_SIZE bytes of an RX chain that
 * vsock_pkt_rx_map accepted (the header may span buffers). */
void vsock_pkt_rx_put_hdr(const struct vq_chain *c, const struct virtio_vsock_hdr *h);

/* A header from the host (VMADDR_CID_HOST, host_port) to the guest
 * (guest_cid, guest_port): STREAM, op, flags; len, buf_alloc and fwd_cnt 0. */
void vsock_pkt_init(struct virtio_vsock_hdr *h, uint64_t guest_cid, uint32_t host_port,
		    uint32_t guest_port, uint16_t op, uint32_t flags);

#endif
