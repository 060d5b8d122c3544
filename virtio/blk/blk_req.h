/* virtio-blk request parsing (virtio 1.2 section 5.2.6): a popped chain in,
 * what to do with the image out. Pure: it reads the request header and the
 * discard/write-zeroes range through the chain's host pointers (copied to
 * locals, sizeof(local) bytes, so a guest rewriting them mid-parse changes
 * nothing), writes no guest memory and does no I/O.
 *
 * Framing is free (2.6.4 Message Framing; VERSION_1 implies ANY_LAYOUT): the
 * 16-byte header is the first 16 readable bytes wherever the segment
 * boundaries fall, the status is the last writable byte, and the data is
 * what lies between, as an iovec straight into guest memory. */
#ifndef FLINT_BLK_REQ_H
#define FLINT_BLK_REQ_H

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/util.h"
#include "vq.h"

#define BLK_SECTOR_SHIFT 9
#define BLK_SECTOR_SIZE	 (1u << BLK_SECTOR_SHIFT)

/* What the parser needs to know about the disk and the negotiation. */
struct blk_geom {
	uint64_t capacity; /* 512-byte sectors */
	bool read_only;	   /* VIRTIO_BLK_F_RO offered */
	/* Negotiated: a request type whose feature is not gets UNSUPP. */
	bool flush, discard, write_zeroes;
	uint32_t max_discard_sectors, max_write_zeroes_sectors;
	/* A read's or a write's data at most (0: no bound): what seg_max and
	 * size_max let a driver send; a chain may name one guest buffer
	 * again and again, and make a request of 4 GiB from a little RAM. */
	uint64_t max_rw_bytes;
};

enum blk_op {
	BLK_OP_NONE, /* answer at once with status, no I/O */
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_GET_ID,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* A parsed request. For BLK_OP_NONE, status is the answer (OK for a no-op
 * such as a zero-length read, IOERR or UNSUPP otherwise). For the others
 * the request is valid and status is VIRTIO_BLK_S_OK until the I/O says
 * otherwise. */
struct blk_req {
	uint32_t type; /* header type; BLK_TYPE_NONE when the header is short */
	enum blk_op op;
	uint8_t status;
	uint8_t *status_byte; /* last writable byte of the chain, in guest RAM */
	uint64_t off, len;    /* image bytes: READ/WRITE/DISCARD/WRITE_ZEROES */
	bool unmap;	      /* WRITE_ZEROES: the guest allows deallocation */
	/* READ: the writable data area; WRITE: the readable data area; GET_ID:
	 * the first min(20, area) writable bytes. Caller's storage. */
	struct iovec *iov;
	unsigned niov;
};

#define BLK_TYPE_NONE UINT32_MAX

/* Parse chain c against g, filling r and iov[] (cap entries; c->nseg is
 * always enough, since slicing segments never adds any). Returns 0 with
 * r->status_byte set, or -EPROTO when the chain has no writable byte to hold
 * a status: it cannot be answered, the guest broke the protocol. */
int blk_parse(const struct blk_geom *g, const struct vq_chain *c, struct blk_req *r,
	      struct iovec *iov, unsigned cap) WARN_UNUSED;

/* Copy len bytes of src into the iovec, in order, stopping when it is full.
 * Returns the bytes copied. */
size_t blk_iov_fill(const struct iovec *iov, unsigned niov, const void *src, size_t len);

#endif
