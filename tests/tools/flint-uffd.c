/* flint-uffd: a page-fault handler for the Uffd memory backend (issue 12),
 * for flint's tests and benches. It speaks Firecracker's protocol
 * (runner/snapshot/uffd.h), so one of Firecracker's example handlers could
 * take its place, and it could serve a Firecracker restore.
 *
 *   flint-uffd SOCKET MEMFILE
 *
 * Listens on SOCKET (the path appears once it listens: it is bound under a
 * temporary name and renamed), accepts one VM and removes SOCKET: one VM
 * per invocation, start one per restore (a second VMM finds no socket
 * rather than waiting on a handler that will never serve it). It then
 * receives the region list and the userfaultfd (within 10 s) and serves
 * the VM's page faults from MEMFILE, mapped read-only and shared with
 * every other reader of the file through the page cache:
 *   - a page that holds data in MEMFILE is copied in (UFFDIO_COPY);
 *   - a page in a hole of MEMFILE (SEEK_DATA), or in a range the VM gave
 *     back (UFFD_EVENT_REMOVE after its madvise(MADV_DONTNEED)), is served
 *     as zeros (UFFDIO_ZEROPAGE; for huge pages a copy of zeros);
 *   - EEXIST (the page got there first: two vCPUs faulting on one page)
 *     wakes the waiters and goes on; EAGAIN (a REMOVE event waits to be
 *     read) reads the events and tries again; ENOENT (the range went
 *     away meanwhile) drops the fault.
 * Refused, with a message and exit status 1 (the handler closes its end,
 * so the VMM can see the hang-up; the VM cannot go on without it):
 *   - a region list uffd_regions_parse refuses, or not sent with exactly
 *     one fd that is a userfaultfd;
 *   - a MEMFILE shorter than the regions' extent: a short memory file is
 *     refused whole rather than served as zeros past its end, since a
 *     truncated snapshot would otherwise resume with zeros where the guest
 *     had data;
 *   - a fault outside every region of the list (the VMM registered memory
 *     it did not describe);
 *   - any other failure of the userfaultfd.
 * Exits 0 when the VM is gone: its connection hung up (the VMM keeps it
 * open for the VM's life; the userfaultfd itself never reports its peer's
 * exit), or the userfaultfd answers ESRCH (the VM's memory is gone). The
 * last line on stderr then gives the pages copied and zeroed. Exit status
 * 2 for bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "snapshot/uffd.h"

#define RECV_TIMEOUT_S 10
/* serve()'s answer when the VM is gone (errors are -errno). */
#define GONE 1
#define BITS (8 * sizeof(unsigned long))

struct server {
	int uffd, conn, memfd;
	const uint8_t *map; /* MEMFILE, file_size bytes, read-only */
	uint64_t file_size;
	uint64_t sys_page;
	struct uffd_region r[UFFD_MAX_REGIONS];
	size_t n;
	/* Per region, a bit per page given back (UFFD_EVENT_REMOVE): served
	 * as zeros from then on. Allocated at the first such event. */
	unsigned long *removed[UFFD_MAX_REGIONS];
	/* Zeros for a page size UFFDIO_ZEROPAGE does not fill (huge pages). */
	const uint8_t *zeros;
	uint64_t zeros_len;
	/* The last extent of MEMFILE found to be data or hole. */
	uint64_t ext_lo, ext_hi;
	bool ext_data;
	/* Fault addresses read and not yet served. */
	uint64_t *q;
	size_t qn, qcap;
	uint64_t copied, zeroed;
	bool said_data;
};

static void PRINTF(1, 2) say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int k = snprintf(line, sizeof(line), "flint-uffd: ");

	va_start(ap, fmt);
	k += vsnprintf(line + k, sizeof(line) - (size_t)k - 1, fmt, ap);
	va_end(ap);
	if (k > (int)sizeof(line) - 2)
		k = (int)sizeof(line) - 2;
	line[k++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)k) < 0)
		return;
}

/* Bound at a temporary name and renamed once listening, so that a VMM
 * that finds SOCKET can connect at once. */
static int listen_at(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s.%d", path, (int)getpid()) >=
	    (int)sizeof(a.sun_path)) {
		say("%s: socket path too long", path);
		return -1;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		say("%s exists and is not a socket", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say("socket: %s", strerror(errno));
		return -1;
	}
	unlink(a.sun_path);
	if (bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
	    rename(a.sun_path, path) < 0) {
		say("listening on %s: %s", path, strerror(errno));
		unlink(a.sun_path);
		close(fd);
		return -1;
	}
	return fd;
}

static bool is_userfaultfd(int fd)
{
	char link[64], target[64];
	ssize_t k;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	k = readlink(link, target, sizeof(target) - 1);
	if (k < 0)
		return false;
	target[k] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

/* The region list and the userfaultfd, checked against MEMFILE. */
static int take_vm(struct server *s)
{
	struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
	char *buf = malloc(UFFD_MAX_MSG), err[256];
	uint64_t max_page = 0;
	size_t len;
	int e, fl;

	if (!buf)
		return -ENOMEM;
	if (setsockopt(s->conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		e = -errno;
		goto out;
	}
	e = uffd_recv(s->conn, buf, UFFD_MAX_MSG, &len, &s->uffd);
	if (e == -EAGAIN)
		say("no region list came within %d s", RECV_TIMEOUT_S);
	else if (e == -ENOMSG)
		say("the region list came without a userfaultfd");
	else if (e == -EPROTO)
		say("more than one fd came with the region list (Firecracker's guest_memfd "
		    "variant is not served)");
	else if (e == -ECONNRESET)
		say("the VMM hung up before sending its region list");
	else if (e)
		say("receiving the region list: %s", strerror(-e));
	if (e)
		goto out;
	if (!is_userfaultfd(s->uffd)) {
		say("the fd that came with the region list is not a userfaultfd");
		e = -EINVAL;
		goto out;
	}
	e = uffd_regions_parse(buf, len, s->r, UFFD_MAX_REGIONS, &s->n, err, sizeof(err));
	if (e) {
		say("%s", err);
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->r[i].offset + s->r[i].size > s->file_size) {
			say("the memory file is %llu bytes, region %zu needs %llu: "
			    "refusing a short memory file",
			    (unsigned long long)s->file_size, i,
			    (unsigned long long)(s->r[i].offset + s->r[i].size));
			e = -EINVAL;
			goto out;
		}
		if (s->r[i].page_size > max_page)
			max_page = s->r[i].page_size;
	}
	if (max_page > s->sys_page) {
		void *z = mmap(NULL, max_page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (z == MAP_FAILED) {
			e = -errno;
			goto out;
		}
		s->zeros = z;
		s->zeros_len = max_page;
	}
	/* poll() reports only an error on a blocking userfaultfd. The VMM
	 * made it non-blocking already; this is the same open file. */
	fl = fcntl(s->uffd, F_GETFL);
	if (fl < 0 || fcntl(s->uffd, F_SETFL, fl | O_NONBLOCK) < 0)
		e = -errno;
out:
	free(buf);
	return e;
}

static int queue_fault(struct server *s, uint64_t addr)
{
	if (s->qn == s->qcap) {
		size_t cap = s->qcap ? 2 * s->qcap : 64;
		uint64_t *q = realloc(s->q, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		s->q = q;
		s->qcap = cap;
	}
	s->q[s->qn++] = addr;
	return 0;
}

/* Pages of [start, end) are given back: zeros from now on. */
static int mark_removed(struct server *s, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < s->n && start < end; i++) {
		const struct uffd_region *r = &s->r[i];
		uint64_t lo = start > r->base ? start - r->base : 0;
		uint64_t hi = end - r->base < r->size ? end - r->base : r->size;

		if (end <= r->base || lo >= r->size)
			continue;
		uint64_t pages = r->size / r->page_size;
		if (!s->removed[i]) {
			s->removed[i] = calloc((pages + BITS - 1) / BITS, sizeof(unsigned long));
			if (!s->removed[i])
				return -ENOMEM;
		}
		for (uint64_t p = lo / r->page_size; p < (hi + r->page_size - 1) / r->page_size;
		     p++)
			s->removed[i][p / BITS] |= 1UL << (p % BITS);
	}
	return 0;
}

/* Read every event waiting: faults are queued, removals applied now. */
static int read_events(struct server *s)
{
	struct uffd_msg m[32];

	for (;;) {
		ssize_t k = read(s->uffd, m, sizeof(m));
		int e = 0;

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (k == 0 || k % sizeof(m[0]))
			return -EIO;
		for (size_t i = 0; i < (size_t)k / sizeof(m[0]) && !e; i++) {
			switch (m[i].event) {
			case UFFD_EVENT_PAGEFAULT:
				e = queue_fault(s, m[i].arg.pagefault.address);
				break;
			case UFFD_EVENT_REMOVE:
			case UFFD_EVENT_UNMAP:
				e = mark_removed(s, m[i].arg.remove.start, m[i].arg.remove.end);
				break;
			case UFFD_EVENT_FORK:
				/* Not asked for; the new fd it installed here. */
				close((int)m[i].arg.fork.ufd);
				break;
			default:
				break; /* REMAP: not asked for, nothing to serve */
			}
		}
		if (e)
			return e;
	}
}

/* Whether [off, off + len) of MEMFILE is all hole (SEEK_DATA). A file
 * system that cannot say gets its pages read. */
static bool is_hole(struct server *s, uint64_t off, uint64_t len)
{
	off_t d, h;

	if (off >= s->ext_lo && off + len <= s->ext_hi)
		return !s->ext_data;
	d = lseek(s->memfd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		d = (off_t)s->file_size;
	else if (d < 0)
		return false;
	if ((uint64_t)d >= off + len) {
		s->ext_lo = off;
		s->ext_hi = (uint64_t)d;
		s->ext_data = false;
		return true;
	}
	if ((uint64_t)d == off) {
		h = lseek(s->memfd, (off_t)off, SEEK_HOLE);
		if (h > d) {
			s->ext_lo = off;
			s->ext_hi = (uint64_t)h;
			s->ext_data = true;
		}
	}
	return false;
}

/* UFFDIO_COPY of src (NULL: zeros) to [dst, dst + len): 0 or -errno. */
static int fill(struct server *s, uint64_t dst, const uint8_t *src, uint64_t len)
{
	int r;

	if (!src && len == s->sys_page) {
		struct uffdio_zeropage z = {.range = {.start = dst, .len = len}};
		r = ioctl(s->uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy c = {
		    .dst = dst, .src = (uintptr_t)(src ? src : s->zeros), .len = len};
		r = ioctl(s->uffd, UFFDIO_COPY, &c);
	}
	return r < 0 ? -errno : 0;
}

static void wake(struct server *s, uint64_t start, uint64_t len)
{
	struct uffdio_range w = {.start = start, .len = len};

	if (ioctl(s->uffd, UFFDIO_WAKE, &w) < 0 && errno != ENOENT)
		say("UFFDIO_WAKE at 0x%llx: %s", (unsigned long long)start, strerror(errno));
}

/* Serve the fault at addr: 0, GONE, -EAGAIN (read the events and try
 * again) or a fatal -errno. */
static int serve_fault(struct server *s, uint64_t addr)
{
	const struct uffd_region *r = uffd_region_find(s->r, s->n, addr);
	uint64_t ps, pg, dst, off;
	const uint8_t *src;
	bool zero;
	size_t i;
	int e;

	if (!r) {
		say("fault at 0x%llx outside every region the VM described",
		    (unsigned long long)addr);
		return -EFAULT;
	}
	i = (size_t)(r - s->r);
	ps = r->page_size;
	pg = (addr - r->base) & ~(ps - 1);
	dst = r->base + pg;
	off = r->offset + pg;
	zero = (s->removed[i] && (s->removed[i][pg / ps / BITS] >> (pg / ps % BITS) & 1)) ||
	       is_hole(s, off, ps);
	src = zero ? NULL : s->map + off;
	e = fill(s, dst, src, ps);
	if (e == -EEXIST && ps > s->sys_page) {
		/* A unit of several base pages, partly there already: a copy
		 * stops at the first page present, so fill the faulting base
		 * page itself. EINVAL: the mapping's pages are that big (huge
		 * pages), so the unit is there whole. */
		uint64_t in = (addr - dst) & ~(s->sys_page - 1);
		e = fill(s, dst + in, src ? src + in : NULL, s->sys_page);
		if (e == -EINVAL)
			e = -EEXIST;
	}
	switch (e) {
	case 0:
		if (zero)
			s->zeroed++;
		else
			s->copied++;
		return 0;
	case -EEXIST:
		/* Another fault on the page was served first; its waiters
		 * were woken then, but wake to be sure. */
		wake(s, dst, ps);
		return 0;
	case -ENOENT:
		return 0; /* the range was unmapped meanwhile */
	case -ESRCH:
		return GONE;
	case -EAGAIN:
		return -EAGAIN;
	default:
		say("serving 0x%llx (file offset 0x%llx): %s", (unsigned long long)addr,
		    (unsigned long long)off, strerror(-e));
		return e;
	}
}

static int handle_uffd(struct server *s)
{
	size_t i = 0;
	int e = read_events(s);

	while (!e && i < s->qn) {
		e = serve_fault(s, s->q[i]);
		if (e == -EAGAIN) {
			/* A REMOVE is queued behind: read it, then retry. */
			e = read_events(s);
			continue;
		}
		if (!e)
			i++;
	}
	if (!e)
		s->qn = 0;
	return e;
}

static int serve(struct server *s)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN},
				      {.fd = s->conn, .events = POLLIN | POLLRDHUP}};
		int e;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents & POLLIN) {
			e = handle_uffd(s);
			if (e)
				return e;
		}
		if (p[0].revents & (POLLERR | POLLNVAL)) {
			say("the userfaultfd reports an error");
			return -EIO;
		}
		if (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
			return GONE;
		if (p[1].revents & POLLIN) {
			char junk[256];
			ssize_t k = recv(s->conn, junk, sizeof(junk), MSG_DONTWAIT);

			if (k == 0)
				return GONE;
			if (k > 0 && !s->said_data) {
				say("ignoring what the VMM sends after its region list");
				s->said_data = true;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct server s = {.uffd = -1, .conn = -1, .memfd = -1};
	struct stat st;
	int l, e;

	if (argc != 3) {
		fprintf(stderr, "usage: flint-uffd SOCKET MEMFILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	s.sys_page = (uint64_t)sysconf(_SC_PAGESIZE);
	s.memfd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (s.memfd < 0 || fstat(s.memfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		say("%s: %s", argv[2], s.memfd < 0 ? strerror(errno) : "not a regular file");
		return 1;
	}
	s.file_size = (uint64_t)st.st_size;
	if (s.file_size) {
		void *m = mmap(NULL, s.file_size, PROT_READ, MAP_PRIVATE, s.memfd, 0);
		if (m == MAP_FAILED) {
			say("mapping %s: %s", argv[2], strerror(errno));
			return 1;
		}
		s.map = m;
	}
	l = listen_at(argv[1]);
	if (l < 0)
		return 1;
	do
		s.conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	while (s.conn < 0 && errno == EINTR);
	e = s.conn < 0 ? -errno : 0;
	close(l);
	unlink(argv[1]);
	if (e) {
		say("accept: %s", strerror(-e));
		return 1;
	}
	e = take_vm(&s);
	if (!e)
		e = serve(&s);
	if (e != GONE)
		return 1;
	say("the VM is gone: %llu pages copied, %llu zero pages", (unsigned long long)s.copied,
	    (unsigned long long)s.zeroed);
	return 0;
}
