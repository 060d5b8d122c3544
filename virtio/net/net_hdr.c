/* TX header checks; see net_hdr.h. */
#include "net/net_hdr.h"

#include <endian.h>
#include <stdbool.h>

#include "core/util.h"

static bool has(uint64_t features, unsigned bit)
{
	return features & 1ull << bit;
}

/* The GSO types the negotiated features allow. No ECN (HOST_ECN is not
 * offered) and no UFO (HOST_UFO neither). */
static bool gso_type_ok(uint8_t type, uint64_t features)
{
	switch (type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return has(features, VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return has(features, VIRTIO_NET_F_HOST_TSO6);
	default:
		return false;
	}
}

enum net_hdr_err net_hdr_check(const struct virtio_net_hdr_v1 *h, uint32_t frame_len,
			       uint64_t features)
{
	const uint8_t known = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	bool csum = h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;

	if (frame_len < NET_FRAME_MIN)
		return NET_HDR_SHORT;
	if (frame_len > NET_FRAME_MAX)
		return NET_HDR_LONG;
	if (h->flags & ~known)
		return NET_HDR_FLAGS;
	if (csum && !has(features, VIRTIO_NET_F_CSUM))
		return NET_HDR_CSUM_NOT_OURS;
	/* 32-bit sum of two 16-bit fields: no overflow. */
	if (csum && (uint32_t)le16toh(h->csum_start) + le16toh(h->csum_offset) + 2 > frame_len)
		return NET_HDR_CSUM_RANGE;
	if (!gso_type_ok(h->gso_type, features))
		return NET_HDR_GSO_TYPE;
	if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		/* 5.1.6.2.1: a GSO packet also asks for checksum offload. */
		if (!csum)
			return NET_HDR_GSO_NO_CSUM;
		if (le16toh(h->gso_size) == 0)
			return NET_HDR_GSO_SIZE;
	}
	if (le16toh(h->hdr_len) > frame_len)
		return NET_HDR_HDR_LEN;
	return NET_HDR_OK;
}

const char *net_hdr_strerror(enum net_hdr_err e)
{
	static const char *const what[] = {
	    [NET_HDR_OK] = "valid",
	    [NET_HDR_SHORT] = "frame shorter than an Ethernet header",
	    [NET_HDR_LONG] = "frame longer than 65550 bytes",
	    [NET_HDR_FLAGS] = "unknown header flags",
	    [NET_HDR_CSUM_NOT_OURS] = "NEEDS_CSUM without checksum offload negotiated",
	    [NET_HDR_CSUM_RANGE] = "checksum field past the frame",
	    [NET_HDR_GSO_TYPE] = "GSO type unknown or not negotiated",
	    [NET_HDR_GSO_NO_CSUM] = "GSO without NEEDS_CSUM",
	    [NET_HDR_GSO_SIZE] = "GSO with gso_size 0",
	    [NET_HDR_HDR_LEN] = "hdr_len past the frame",
	};

	return (unsigned)e < ARRAY_SIZE(what) ? what[e] : "?";
}
