/* libFuzzer harness for virtio/net/net.c: the fuzzer plays a hostile guest
 * that writes the whole of guest RAM (descriptor tables, rings, buffers and TX
 * headers) and picks the features, and a host that sends one packet of its
 * choosing. The device runs for real: both queues notified, its reads and
 * writes submitted to a real io_uring event loop on an AF_UNIX
 * SOCK_SEQPACKET pair standing in for the tap, completions run. ASan and
 * UBSan are the oracle; the checks below hold whatever the guest does.
 *
 * Input layout:
 *   0      negotiated features: bit 0 MRG_RXBUF, 1 CSUM, 2 GUEST_CSUM,
 *          3 HOST_TSO4, 4 HOST_TSO6, 5 GUEST_TSO4, 6 GUEST_TSO6, 7 EVENT_IDX
 *   1      queue size log2 (mod 5: 1 to 16 entries)
 *   2..3   length of the host's packet (u16, header included; 0: none)
 *   then   the packet, then guest RAM from address 0 (zeros past the input)
 * The RX queue's rings are at 0x0/0x100/0x200, the TX queue's at
 * 0x400/0x500/0x600; buffers may be anywhere in the 64 KiB of RAM. A
 * detour (MMDS's way in) takes the TX frames that begin with 0xee and
 * answers each with a frame as long as the taken one's second byte says,
 * for the RX side to place ahead of the tap's. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/gmem.h"
#include "fuzz.h"
#include "net/net.h"
#include "vq.h"

#define RAM 0x10000
#define HDR 4

static struct gmem *g;
static struct evloop *loop;
static struct net *n;
static int dev_fd = -1, peer = -1;
static struct vq vqs[2];
static unsigned resets;

static void host_used(void *t, unsigned q)
{
	(void)t;
	CHECK(q < 2);
}

static void host_needs_reset(void *t)
{
	(void)t;
	resets++;
}

static const struct virtio_host host = {.used = host_used, .needs_reset = host_needs_reset};

static size_t owed; /* the detour's answer's length; 0: none */

static bool dt_take(void *ctx, const uint8_t *frame, size_t len)
{
	(void)ctx;
	if (!len || frame[0] != 0xee)
		return false;
	owed = 42 + (len > 1 ? frame[1] * 6u : 0);
	return true;
}

static bool dt_owed(void *ctx, uint64_t *due)
{
	(void)ctx;
	*due = 0;
	return owed != 0;
}

static size_t dt_give(void *ctx, uint8_t *buf, size_t cap)
{
	size_t len = owed;

	(void)ctx;
	CHECK(cap <= NET_DETOUR_FRAME_MAX);
	if (!len || len > cap)
		return 0;
	memset(buf, 0xab, len);
	owed = 0;
	return len;
}

static void setup(void)
{
	struct net_params p = {.id = "fuzz",
			       .detour = {.take = dt_take, .owed = dt_owed, .give = dt_give}};
	int sv[2];

	log_verbose = 0;
	if (gmem_create(&g, RAM) || evloop_create(&loop, 64) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		__builtin_trap();
	dev_fd = sv[0];
	peer = sv[1];
	p.loop = loop;
	if (net_create_fd(&n, &p, dev_fd))
		__builtin_trap();
}

/* Empty both ends, so nothing carries over to the next input. */
static void drain(int fd)
{
	static uint8_t buf[70000];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static uint64_t features(uint8_t b)
{
	static const unsigned bits[] = {VIRTIO_NET_F_MRG_RXBUF,	 VIRTIO_NET_F_CSUM,
					VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4,
					VIRTIO_NET_F_HOST_TSO6,	 VIRTIO_NET_F_GUEST_TSO4,
					VIRTIO_NET_F_GUEST_TSO6};
	uint64_t f = 0;

	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (b & 1u << i)
			f |= 1ull << bits[i];
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t qsize, pkt;
	uint8_t *ram;
	size_t img;

	if (size < HDR)
		return 0;
	if (!n)
		setup();
	qsize = 1u << (data[1] % 5);
	pkt = (uint32_t)(data[2] | data[3] << 8);
	if (size < HDR + pkt)
		return 0;
	ram = gmem_ptr(g, 0, RAM);
	img = size - HDR - pkt < RAM ? size - HDR - pkt : RAM;
	memset(ram, 0, RAM);
	memcpy(ram, data + HDR + pkt, img);

	net_ops.reset(n);
	owed = 0;
	for (unsigned q = 0; q < 2; q++) {
		vq_reset(&vqs[q]);
		CHECK(vq_activate(&vqs[q], g, qsize, 0x400u * q, 0x400u * q + 0x100,
				  0x400u * q + 0x200, data[0] & 0x80) == 0);
	}
	CHECK(net_ops.activate(n, features(data[0]), vqs, &host) == 0);
	if (pkt && write(peer, data + HDR, pkt) < 0)
		CHECK(errno == EAGAIN || errno == EINVAL);
	net_ops.notify(n, 1);
	net_ops.notify(n, 0);
	/* A run asked to stop submits what is queued, cancels what waits, and
	 * runs every completion before it returns. */
	evloop_stop(loop);
	CHECK(evloop_run(loop) == 0);
	drain(peer);
	drain(dev_fd);
	return 0;
}
