/* Tap interfaces for virtio-net; see tap.h. */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Why TUNSETIFF refused an existing interface, in words a user can act on. */
static const char *setiff_hint(int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
		return "permission denied: needs CAP_NET_ADMIN, or a tap owned by this user "
		       "(ip tuntap add dev NAME mode tap user UID)";
	case -EBUSY:
		return "busy: another process has it open";
	case -EINVAL:
		return "not a tap interface (a tun, a multiqueue tap, or another kind of device)";
	default:
		return strerror(-err);
	}
}

int tap_open(const char *name, int *fd)
{
	int hdr_len = sizeof(struct virtio_net_hdr_v1);
	size_t len = strlen(name);
	unsigned features = 0;
	struct ifreq ifr;
	int err;

	*fd = -1;
	if (len == 0 || len >= IFNAMSIZ) {
		pr_err("tap %s: an interface name has 1 to %d characters", name, IFNAMSIZ - 1);
		return -EINVAL;
	}
	/* TUNSETIFF would create a missing tap rather than fail: look first.
	 * (An interface deleted in between is created anew, with no address;
	 * the guest then reaches nothing, which is what the user asked.) */
	if (if_nametoindex(name) == 0) {
		pr_err("tap %s: no such device (create it first: ip tuntap add dev %s mode tap)",
		       name, name);
		return -ENODEV;
	}
	/* O_NONBLOCK: io_uring then reads and writes the tap inline (tun does
	 * not set FMODE_NOWAIT, so a blocking fd would send every read to an
	 * io-wq thread), and an empty tap answers a read with -EAGAIN. */
	*fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0) {
		err = -errno;
		pr_err("tap %s: cannot open /dev/net/tun: %s%s", name, strerror(-err),
		       err == -ENOENT ? " (is the tun module loaded?)" : "");
		*fd = -1;
		return err;
	}
	if (ioctl(*fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		pr_err("tap %s: this kernel's tun has no IFF_VNET_HDR, which virtio-net needs",
		       name);
		err = -EOPNOTSUPP;
		goto err_close;
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, len);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(*fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		pr_err("tap %s: %s", name, setiff_hint(err));
		goto err_close;
	}
	/* The guest's header is always 12 bytes (VERSION_1), so it passes
	 * through unchanged. Its fields are little-endian, as tun's are on
	 * the little-endian hosts flint runs on. */
	if (ioctl(*fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		err = -errno;
		pr_err("tap %s: TUNSETVNETHDRSZ %d: %s", name, hdr_len, strerror(-err));
		goto err_close;
	}
	/* No offloads until a guest accepts some: a previous user's settings
	 * would hand us packets no guest has agreed to take. */
	if ((err = tap_set_offloads(*fd, 0)) < 0) {
		pr_err("tap %s: TUNSETOFFLOAD: %s", name, strerror(-err));
		goto err_close;
	}
	return 0;

err_close:
	close_fd(fd);
	return err;
}

unsigned tap_offloads(uint64_t features)
{
	unsigned o = 0;

	/* TSO without checksum offload means nothing to tun (it refuses it). */
	if (!(features & 1ull << VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	o |= TUN_F_CSUM;
	if (features & 1ull << VIRTIO_NET_F_GUEST_TSO4)
		o |= TUN_F_TSO4;
	if (features & 1ull << VIRTIO_NET_F_GUEST_TSO6)
		o |= TUN_F_TSO6;
	return o;
}

int tap_set_offloads(int fd, unsigned offloads)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0 ? -errno : 0;
}

bool tap_is_tap(int fd)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	return ioctl(fd, TUNGETIFF, &ifr) == 0;
}
