/* The virtio-net header of a transmitted packet (virtio 1.2 section
 * 5.1.6.2), checked before the packet goes to the tap: the tap would refuse
 * some bad headers itself, but a device that relies on that cannot tell a
 * guest's mistake from a host error, nor count it. */
#ifndef FLINT_NET_HDR_H
#define FLINT_NET_HDR_H

#include <linux/virtio_net.h>
#include <stdint.h>

/* The header as the guest lays it out: VERSION_1 makes it 12 bytes, with
 * num_buffers, whether or not MRG_RXBUF was negotiated (5.1.6). */
#define NET_HDR_LEN sizeof(struct virtio_net_hdr_v1)
/* Largest frame after the header: 5.1.6.3.1 sizes receive buffers for GSO
 * packets at 65562 bytes, header included. */
#define NET_FRAME_MAX (65562u - NET_HDR_LEN)
/* Smallest: an Ethernet header. */
#define NET_FRAME_MIN 14u

enum net_hdr_err {
	NET_HDR_OK,
	NET_HDR_SHORT,	       /* frame shorter than an Ethernet header */
	NET_HDR_LONG,	       /* frame over NET_FRAME_MAX */
	NET_HDR_FLAGS,	       /* flags beyond NEEDS_CSUM and DATA_VALID */
	NET_HDR_CSUM_NOT_OURS, /* NEEDS_CSUM without VIRTIO_NET_F_CSUM */
	NET_HDR_CSUM_RANGE,    /* csum_start + csum_offset + 2 past the frame */
	NET_HDR_GSO_TYPE,      /* gso_type unknown, or its feature not negotiated */
	NET_HDR_GSO_NO_CSUM,   /* GSO without NEEDS_CSUM */
	NET_HDR_GSO_SIZE,      /* GSO with gso_size 0 */
	NET_HDR_HDR_LEN,       /* hdr_len past the frame */
};

/* Check the header of a TX packet whose frame (what follows the header) is
 * frame_len bytes, against the negotiated features. Returns NET_HDR_OK or
 * the first problem found. */
enum net_hdr_err net_hdr_check(const struct virtio_net_hdr_v1 *h, uint32_t frame_len,
			       uint64_t features);

/* A few words for the log. */
const char *net_hdr_strerror(enum net_hdr_err e);

#endif
