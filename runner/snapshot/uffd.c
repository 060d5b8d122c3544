#include "snapshot/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* How long connecting to the handler and handing it the list may take: a
 * handler that listens but never accepts must not hang a restore. */
#define SEND_TIMEOUT_S 10

#define PAGE_MIN (4096ULL)
#define PAGE_MAX (1ULL << 30)

int uffd_regions_of(const struct gmem *g, const struct gmem_layout *l, struct uffd_region *r,
		    size_t *n, char *err, size_t errlen)
{
	size_t nr = gmem_nregions(g);
	uint64_t ps = gmem_page_size(g);

	*n = 0;
	if (l->nregions != nr)
		return err_set(err, errlen, -EINVAL,
			       "uffd: the layout has %u memory regions, guest memory %zu",
			       l->nregions, nr);
	for (size_t i = 0; i < nr; i++) {
		const struct gmem_region *gr = gmem_region(g, i);
		const struct gmem_layout_region *lr = &l->r[i];

		if (lr->gpa != gr->gpa || lr->size != gr->size)
			return err_set(err, errlen, -EINVAL,
				       "uffd: region %zu is at 0x%llx (%llu bytes) in the layout, "
				       "0x%llx (%llu bytes) in guest memory",
				       i, (unsigned long long)lr->gpa, (unsigned long long)lr->size,
				       (unsigned long long)gr->gpa, (unsigned long long)gr->size);
		if (lr->offset % ps || lr->offset > UINT64_MAX - lr->size)
			return err_set(err, errlen, -EINVAL,
				       "uffd: region %zu's file offset 0x%llx is not page-aligned "
				       "or wraps",
				       i, (unsigned long long)lr->offset);
		r[i] = (struct uffd_region){.base = (uintptr_t)gr->host,
					    .size = gr->size,
					    .offset = lr->offset,
					    .page_size = ps};
	}
	const struct gmem_region *h = gmem_hotplug_region(g);
	if (!h != !l->hot.size || (h && (h->gpa != l->hot.gpa || h->size != l->hot.size)))
		return err_set(err, errlen, -EINVAL,
			       "uffd: the layout's hot-plug region is not guest memory's");
	if (h && (l->hot.offset % 4096 || l->hot.offset > UINT64_MAX - h->size))
		return err_set(err, errlen, -EINVAL,
			       "uffd: the hot-plug region's file offset 0x%llx is not page-aligned "
			       "or wraps",
			       (unsigned long long)l->hot.offset);
	/* The hot-plug region last, all of it (its unplugged blocks are
	 * holes in the file), in 4 KiB pages: it is never hugetlbfs. */
	if (h)
		r[nr++] = (struct uffd_region){.base = (uintptr_t)h->host,
					       .size = h->size,
					       .offset = l->hot.offset,
					       .page_size = 4096};
	*n = nr;
	return 0;
}

int uffd_regions_encode(const struct uffd_region *r, size_t n, char **out)
{
	json_t *a = json_array();
	int e = -ENOMEM;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (r[i].base > INT64_MAX || r[i].size > INT64_MAX || r[i].offset > INT64_MAX ||
		    r[i].page_size > INT64_MAX) {
			e = -EOVERFLOW;
			goto out;
		}
		/* Firecracker's field order; page_size_kib holds bytes as
		 * Firecracker's does. */
		json_t *o = json_pack(
		    "{s:I,s:I,s:I,s:I,s:I}", "base_host_virt_addr", (json_int_t)r[i].base, "size",
		    (json_int_t)r[i].size, "offset", (json_int_t)r[i].offset, "page_size",
		    (json_int_t)r[i].page_size, "page_size_kib", (json_int_t)r[i].page_size);
		if (!o || json_array_append_new(a, o))
			goto out;
	}
	*out = json_dumps(a, JSON_COMPACT);
	e = *out ? 0 : -ENOMEM;
out:
	json_decref(a);
	return e;
}

/* An optional non-negative integer field of region i's object. */
static int get_u64(const json_t *o, const char *key, size_t i, uint64_t *v, bool *have, char *err,
		   size_t errlen)
{
	const json_t *x = json_object_get(o, key);

	*have = x != NULL;
	if (!x)
		return 0;
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return err_set(err, errlen, -EINVAL,
			       "uffd region %zu: %s is not an integer from 0 to 2^63 - 1", i, key);
	*v = (uint64_t)json_integer_value(x);
	return 0;
}

static int parse_one(const json_t *o, size_t i, struct uffd_region *r, char *err, size_t errlen)
{
	static const char *const need[] = {"base_host_virt_addr", "size", "offset"};
	uint64_t *dst[] = {&r->base, &r->size, &r->offset};
	uint64_t kib = 0;
	bool have, have_ps, have_kib;
	int e;

	if (!json_is_object(o))
		return err_set(err, errlen, -EINVAL, "uffd region %zu is not a JSON object", i);
	for (size_t k = 0; k < ARRAY_SIZE(need); k++) {
		e = get_u64(o, need[k], i, dst[k], &have, err, errlen);
		if (e)
			return e;
		if (!have)
			return err_set(err, errlen, -EINVAL, "uffd region %zu has no %s", i,
				       need[k]);
	}
	e = get_u64(o, "page_size", i, &r->page_size, &have_ps, err, errlen);
	if (!e)
		e = get_u64(o, "page_size_kib", i, &kib, &have_kib, err, errlen);
	if (e)
		return e;
	if (!have_ps && !have_kib)
		return err_set(err, errlen, -EINVAL, "uffd region %zu has no page_size", i);
	if (!have_ps)
		r->page_size = kib;
	else if (have_kib && kib != r->page_size)
		return err_set(err, errlen, -EINVAL,
			       "uffd region %zu: page_size %llu and page_size_kib %llu differ", i,
			       (unsigned long long)r->page_size, (unsigned long long)kib);

	uint64_t ps = r->page_size;
	if (ps < PAGE_MIN || ps > PAGE_MAX || (ps & (ps - 1)))
		return err_set(err, errlen, -EINVAL,
			       "uffd region %zu: page_size %llu is not a power of two from 4 KiB "
			       "to 1 GiB",
			       i, (unsigned long long)ps);
	if (r->size == 0)
		return err_set(err, errlen, -EINVAL, "uffd region %zu: size is 0", i);
	if (r->base % ps || r->size % ps || r->offset % ps)
		return err_set(err, errlen, -EINVAL,
			       "uffd region %zu: base_host_virt_addr, size and offset must be "
			       "multiples of page_size %llu",
			       i, (unsigned long long)ps);
	/* Each at most 2^63 - 1: their sums cannot wrap. */
	return 0;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int uffd_regions_parse(const char *buf, size_t len, struct uffd_region *r, size_t max, size_t *n,
		       char *err, size_t errlen)
{
	json_error_t je;
	json_t *a = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	size_t cnt;
	int e = 0;

	*n = 0;
	if (!a)
		return err_set(err, errlen, -EBADMSG, "uffd region list: not JSON: %s", je.text);
	if (!json_is_array(a)) {
		e = err_set(err, errlen, -EINVAL, "uffd region list is not a JSON array");
		goto out;
	}
	cnt = json_array_size(a);
	if (cnt == 0) {
		e = err_set(err, errlen, -EINVAL, "uffd region list is empty");
		goto out;
	}
	if (cnt > max) {
		e = err_set(err, errlen, -E2BIG, "uffd region list has %zu regions, at most %zu",
			    cnt, max);
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		e = parse_one(json_array_get(a, i), i, &r[i], err, errlen);
		if (e)
			goto out;
	}
	for (size_t i = 0; i < cnt; i++)
		for (size_t j = i + 1; j < cnt; j++) {
			if (overlap(r[i].base, r[i].size, r[j].base, r[j].size))
				e = err_set(err, errlen, -EINVAL,
					    "uffd regions %zu and %zu overlap in memory", i, j);
			else if (overlap(r[i].offset, r[i].size, r[j].offset, r[j].size))
				e = err_set(err, errlen, -EINVAL,
					    "uffd regions %zu and %zu overlap in the file", i, j);
			if (e)
				goto out;
		}
	*n = cnt;
out:
	json_decref(a);
	return e;
}

const struct uffd_region *uffd_region_find(const struct uffd_region *r, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (addr >= r[i].base && addr - r[i].base < r[i].size)
			return &r[i];
	return NULL;
}

int uffd_send(int sock, const void *msg, size_t len, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	struct cmsghdr *h;
	ssize_t k;

	if (len == 0)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(fd));
	do
		k = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	for (size_t off = (size_t)k; off < len; off += (size_t)k) {
		k = send(sock, (const char *)msg + off, len - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			k = 0;
		else if (k < 0)
			return -errno;
	}
	return 0;
}

int uffd_recv(int sock, void *buf, size_t cap, size_t *len, int *fd)
{
	/* Room for a few fds, so that a sender passing more is seen and
	 * refused rather than silently cut to one. */
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} c;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	int first = -1;
	size_t nfd = 0;
	ssize_t k;

	*fd = -1;
	*len = 0;
	do
		k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t j = 0; j < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); j++, nfd++) {
			int x;

			memcpy(&x, CMSG_DATA(h) + j * sizeof(int), sizeof(x));
			if (nfd == 0)
				first = x;
			else
				close(x);
		}
	}
	if (nfd > 1 || (mh.msg_flags & MSG_CTRUNC)) {
		close_fd(&first);
		return -EPROTO;
	}
	if (nfd == 0)
		return k == 0 ? -ECONNRESET : -ENOMSG;
	*fd = first;
	*len = (size_t)k;
	return 0;
}

/* Through /dev/userfaultfd (Linux 6.1+), whose file mode decides who may. */
static int uffd_from_dev(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

int uffd_create(int *uffd, char *err, size_t errlen)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), e;

	*uffd = -1;
	if (fd < 0) {
		e = -errno;
		if (e == -EPERM || e == -ENOSYS)
			fd = uffd_from_dev();
		if (fd < 0)
			return err_set(err, errlen, e,
				       "userfaultfd unavailable: %s (it needs CAP_SYS_PTRACE, "
				       "vm.unprivileged_userfaultfd = 1 or access to "
				       "/dev/userfaultfd)",
				       strerror(-e));
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		e = -errno;
		close(fd);
		return err_set(err, errlen, e,
			       "userfaultfd: UFFDIO_API with UFFD_FEATURE_EVENT_REMOVE: %s",
			       strerror(-e));
	}
	*uffd = fd;
	return 0;
}

/* -EBUSY when a page of a region is already there: it would never fault,
 * so the guest would see what it holds instead of the file's data. */
static int check_untouched(const struct uffd_region *r, size_t n, char *err, size_t errlen)
{
	unsigned char vec[4096];
	const uint64_t psz = (uint64_t)sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < n; i++)
		for (uint64_t off = 0; off < r[i].size;) {
			uint64_t len = r[i].size - off < sizeof(vec) * psz ? r[i].size - off
									   : sizeof(vec) * psz;

			if (mincore((void *)(uintptr_t)(r[i].base + off), len, vec) < 0)
				return err_set(err, errlen, -errno,
					       "uffd: mincore on region %zu: %s", i,
					       strerror(errno));
			for (uint64_t p = 0; p < (len + psz - 1) / psz; p++)
				if (vec[p] & 1)
					return err_set(err, errlen, -EBUSY,
						       "uffd: region %zu already has a page at "
						       "offset 0x%llx: guest memory must not be "
						       "touched before the handler has it",
						       i, (unsigned long long)(off + p * psz));
			off += len;
		}
	return 0;
}

static int connect_to(const char *path, int *out, char *err, size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
	int fd, e;

	*out = -1;
	if (strlen(path) >= sizeof(a.sun_path))
		return err_set(err, errlen, -ENAMETOOLONG,
			       "uffd socket path %s is too long (at most %zu bytes)", path,
			       sizeof(a.sun_path) - 1);
	memcpy(a.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, errlen, -errno, "uffd: socket: %s", strerror(errno));
	/* A Unix socket's connect waits for a full backlog with the send
	 * timeout; the list's send too. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (const struct sockaddr *)&a, sizeof(a)) < 0) {
		e = -errno;
		close(fd);
		if (e == -ENOENT)
			return err_set(err, errlen, e, "no uffd handler socket at %s", path);
		if (e == -ECONNREFUSED)
			return err_set(err, errlen, e, "no uffd handler listens on %s", path);
		if (e == -EAGAIN)
			e = -ETIMEDOUT;
		return err_set(err, errlen, e, "connecting to the uffd handler at %s: %s", path,
			       strerror(-e));
	}
	*out = fd;
	return 0;
}

int uffd_backend_open(struct gmem *g, const struct gmem_layout *l, const char *sock_path,
		      struct uffd_backend *b, char *err, size_t errlen)
{
	struct uffd_region r[UFFD_GMEM_REGIONS];
	char *msg = NULL;
	size_t n;
	int e;

	b->uffd = b->conn = -1;
	e = uffd_regions_of(g, l, r, &n, err, errlen);
	if (!e)
		e = check_untouched(r, n, err, errlen);
	if (e)
		return e;
	e = uffd_create(&b->uffd, err, errlen);
	if (e)
		return e;
	for (size_t i = 0; i < n; i++) {
		struct uffdio_register reg = {.range = {.start = r[i].base, .len = r[i].size},
					      .mode = UFFDIO_REGISTER_MODE_MISSING};

		if (ioctl(b->uffd, UFFDIO_REGISTER, &reg) < 0) {
			e = err_set(
			    err, errlen, -errno,
			    "uffd: registering region %zu (%llu bytes) with userfaultfd: %s", i,
			    (unsigned long long)r[i].size, strerror(errno));
			goto err_close;
		}
		if (!(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
			e = err_set(err, errlen, -EOPNOTSUPP,
				    "uffd: region %zu takes no UFFDIO_COPY", i);
			goto err_close;
		}
	}
	e = uffd_regions_encode(r, n, &msg);
	if (e) {
		err_set(err, errlen, e, "uffd: encoding the region list: %s", strerror(-e));
		goto err_close;
	}
	e = connect_to(sock_path, &b->conn, err, errlen);
	if (e)
		goto err_close;
	e = uffd_send(b->conn, msg, strlen(msg), b->uffd);
	if (e == -EAGAIN)
		e = -ETIMEDOUT;
	if (e) {
		err_set(err, errlen, e, "uffd: sending the region list to %s: %s", sock_path,
			strerror(-e));
		goto err_close;
	}
	free(msg);
	gmem_set_lazy(g);
	return 0;

err_close:
	free(msg);
	/* Closing the userfaultfd unregisters its ranges. */
	uffd_backend_close(b);
	return e;
}

bool uffd_handler_gone(int conn)
{
	struct pollfd p = {.fd = conn, .events = POLLRDHUP};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* The i-th region uffd_backend_open registers: RAM's, then the hot-plug
 * region; NULL past them. */
static const struct gmem_region *registered(const struct gmem *g, size_t i)
{
	return i < gmem_nregions(g)    ? gmem_region(g, i)
	       : i == gmem_nregions(g) ? gmem_hotplug_region(g)
				       : NULL;
}

/* The guest-physical address of host address a in g, or UINT64_MAX. */
static uint64_t gpa_of(const struct gmem *g, uint64_t a)
{
	const struct gmem_region *r;

	for (size_t i = 0; (r = registered(g, i)) != NULL; i++) {
		uint64_t base = (uint64_t)(uintptr_t)r->host;

		if (a >= base && a - base < r->size)
			return r->gpa + (a - base);
	}
	return UINT64_MAX;
}

int uffd_wake_all(int uffd, const struct gmem *g)
{
	const struct gmem_region *r;

	for (size_t i = 0; (r = registered(g, i)) != NULL; i++) {
		struct uffdio_range w = {.start = (uint64_t)(uintptr_t)r->host, .len = r->size};

		if (ioctl(uffd, UFFDIO_WAKE, &w) < 0)
			return -errno;
	}
	return 0;
}

int uffd_nonblock(int uffd)
{
	return fcntl(uffd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
}

int uffd_orphan_event(int uffd, const struct gmem *g, char *why, size_t len)
{
	struct uffd_msg m;
	ssize_t n;
	int r;

	if ((r = uffd_nonblock(uffd)) < 0)
		return r;
	n = read(uffd, &m, sizeof(m));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n != sizeof(m))
		return -EIO;
	if (m.event == UFFD_EVENT_REMOVE)
		return 0;
	if (m.event != UFFD_EVENT_PAGEFAULT) {
		snprintf(why, len, "userfaultfd event %u", m.event);
		return 1;
	}
	uint64_t gpa = gpa_of(g, m.arg.pagefault.address);
	if (gpa == UINT64_MAX)
		snprintf(why, len, "host address 0x%llx, outside guest memory",
			 (unsigned long long)m.arg.pagefault.address);
	else
		snprintf(why, len, "guest-physical address 0x%llx", (unsigned long long)gpa);
	return 1;
}

void uffd_backend_close(struct uffd_backend *b)
{
	if (!b)
		return;
	close_fd(&b->conn);
	close_fd(&b->uffd);
}
