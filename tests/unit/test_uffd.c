/* uffd (issue 12): the Uffd backend's region list is Firecracker's JSON,
 * field for field and byte for byte; the parser takes what Firecracker
 * sends (and an older sender's page_size_kib) and refuses every lie; the
 * userfaultfd travels as SCM_RIGHTS and a receiver refuses none or too
 * many fds; uffd_backend_open refuses a layout that is not g's, touched
 * memory and a missing handler, leaving nothing registered; a handler
 * receives g's list and a userfaultfd that serves g. Tests that need a
 * userfaultfd skip, saying why, where the host gives none. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/gmem_snap.h"
#include "snapshot/uffd.h"
#include "x86/layout.h"

#define PG 4096ULL

static char err[512];

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

/* ---- the region list ------------------------------------------------- */

Test(uffd, encode_is_firecrackers_json)
{
	/* serde_json's compact output of Firecracker's Vec<GuestRegionUffdMapping>
	 * for these regions. */
	static const char want[] =
	    "[{\"base_host_virt_addr\":140737488351232,\"size\":134217728,\"offset\":0,"
	    "\"page_size\":4096,\"page_size_kib\":4096},"
	    "{\"base_host_virt_addr\":140737622568960,\"size\":2097152,\"offset\":134217728,"
	    "\"page_size\":4096,\"page_size_kib\":4096}]";
	const struct uffd_region r[] = {
	    {.base = 140737488351232ULL, .size = 128 << 20, .offset = 0, .page_size = 4096},
	    {.base = 140737622568960ULL, .size = 2 << 20, .offset = 128 << 20, .page_size = 4096}};
	char *s;

	cr_assert_eq(uffd_regions_encode(r, 2, &s), 0);
	cr_assert_str_eq(s, want);
	free(s);

	const struct uffd_region big = {.base = 1ULL << 63, .size = PG, .page_size = PG};
	cr_assert_eq(uffd_regions_encode(&big, 1, &s), -EOVERFLOW);
	cr_assert_null(s);
}

/* The list flint sends for a two-region guest: the fields in
 * Firecracker's order, the values g's mapping, the layout's offsets and
 * the page size in bytes (page_size_kib too). */
Test(uffd, regions_of_two_region_guest)
{
	const uint64_t size = MMIO_GAP_START + (4 << 20);
	static const char *const keys[] = {"base_host_virt_addr", "size", "offset", "page_size",
					   "page_size_kib"};
	struct uffd_region r[GMEM_MAX_REGIONS];
	struct gmem_layout l;
	struct gmem *g;
	json_error_t je;
	size_t n;
	char *s;

	cr_assert_eq(gmem_create(&g, size), 0);
	gmem_layout_for_size(size, &l);
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(uffd_regions_encode(r, n, &s), 0);
	json_t *a = json_loads(s, 0, &je);
	cr_assert_not_null(a, "%s", je.text);
	cr_assert_eq(json_array_size(a), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *o = json_array_get(a, i);
		const struct gmem_region *gr = gmem_region(g, i);
		const uint64_t want[] = {(uintptr_t)gr->host, gr->size, i ? MMIO_GAP_START : 0, PG,
					 PG};
		size_t k = 0;

		cr_assert_eq(json_object_size(o), ARRAY_SIZE(keys));
		for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it), k++) {
			cr_assert_str_eq(json_object_iter_key(it), keys[k]);
			cr_assert_eq((uint64_t)json_integer_value(json_object_iter_value(it)),
				     want[k], "region %zu %s", i, keys[k]);
		}
	}
	json_decref(a);

	/* What goes out parses back the same. */
	struct uffd_region back[UFFD_MAX_REGIONS];
	size_t nb;
	cr_assert_eq(
	    uffd_regions_parse(s, strlen(s), back, UFFD_MAX_REGIONS, &nb, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(nb, 2);
	cr_assert_arr_eq(back, r, sizeof(r));
	free(s);
	gmem_destroy(g);
}

Test(uffd, regions_of_refuses_another_layout)
{
	struct uffd_region r[GMEM_MAX_REGIONS];
	struct gmem_layout l;
	struct gmem *g;
	size_t n;

	cr_assert_eq(gmem_create(&g, 8 << 20), 0);
	gmem_layout_for_size(16 << 20, &l);
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("region 0");
	cr_assert_eq(n, 0);
	gmem_layout_for_size(MMIO_GAP_START + PG, &l);
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("2 memory regions");
	gmem_layout_for_size(8 << 20, &l);
	l.r[0].offset = 100;
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("offset");
	gmem_destroy(g);
}

static int parse(const char *s, struct uffd_region *r, size_t *n)
{
	err[0] = '\0';
	return uffd_regions_parse(s, strlen(s), r, 4, n, err, sizeof(err));
}

Test(uffd, parse_takes_what_firecracker_sends)
{
	struct uffd_region r[4];
	size_t n;

	/* Firecracker 1.x with huge pages, pretty-printed, a field it may add
	 * one day. */
	cr_assert_eq(parse(" [ {\"base_host_virt_addr\": 1073741824, \"size\": 4194304, "
			   "\"offset\": 0, \"page_size\": 2097152, \"page_size_kib\": 2097152, "
			   "\"future\": [1, 2]} ]\n",
			   r, &n),
		     0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_eq(r[0].base, 1ULL << 30);
	cr_assert_eq(r[0].size, 4 << 20);
	cr_assert_eq(r[0].offset, 0);
	cr_assert_eq(r[0].page_size, 2 << 20);
	/* An older sender: page_size_kib only (bytes despite the name). */
	cr_assert_eq(parse("[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":8192,"
			   "\"page_size_kib\":4096},"
			   "{\"base_host_virt_addr\":65536,\"size\":4096,\"offset\":0,"
			   "\"page_size\":4096}]",
			   r, &n),
		     0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].page_size, PG);
	cr_assert_eq(r[1].base, 65536);
}

Test(uffd, parse_refuses_lies)
{
#define REG(b, s, o, p)                                                                            \
	"{\"base_host_virt_addr\":" b ",\"size\":" s ",\"offset\":" o ",\"page_size\":" p "}"
	static const struct {
		const char *json, *says;
		int e;
	} bad[] = {
	    {"", "not JSON", -EBADMSG},
	    {"[" REG("4096", "4096", "0", "4096") "", "not JSON", -EBADMSG},
	    {"[" REG("4096", "4096", "0", "4096") "] x", "not JSON", -EBADMSG},
	    {"[{\"base_host_virt_addr\":1,\"base_host_virt_addr\":2}]", "not JSON", -EBADMSG},
	    {"[" REG("18446744073709551616", "4096", "0", "4096") "]", "not JSON", -EBADMSG},
	    {REG("4096", "4096", "0", "4096"), "not a JSON array", -EINVAL},
	    {"[]", "empty", -EINVAL},
	    {"[1]", "region 0 is not a JSON object", -EINVAL},
	    {"[" REG("0", "4096", "0", "4096") "," REG("8192", "4096", "4096", "4096") "," REG(
		 "16384", "4096", "8192", "4096") "," REG("24576", "4096", "12288",
							  "4096") "," REG("32768", "4096", "16384",
									  "4096") "]",
	     "at most 4", -E2BIG},
	    {"[{\"size\":4096,\"offset\":0,\"page_size\":4096}]", "no base_host_virt_addr",
	     -EINVAL},
	    {"[{\"base_host_virt_addr\":0,\"offset\":0,\"page_size\":4096}]", "no size", -EINVAL},
	    {"[{\"base_host_virt_addr\":0,\"size\":4096,\"page_size\":4096}]", "no offset",
	     -EINVAL},
	    {"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0}]", "no page_size", -EINVAL},
	    {"[" REG("-4096", "4096", "0", "4096") "]", "base_host_virt_addr is not an integer",
	     -EINVAL},
	    {"[" REG("4096", "\"4096\"", "0", "4096") "]", "size is not an integer", -EINVAL},
	    {"[" REG("4096", "4096", "0.0", "4096") "]", "offset is not an integer", -EINVAL},
	    {"[" REG("4096", "4096", "0", "null") "]", "page_size is not an integer", -EINVAL},
	    {"[" REG("4096", "4096", "0", "0") "]", "power of two", -EINVAL},
	    {"[" REG("4096", "4096", "0", "2048") "]", "power of two", -EINVAL},
	    {"[" REG("0", "12288", "0", "12288") "]", "power of two", -EINVAL},
	    {"[" REG("0", "2147483648", "0", "2147483648") "]", "power of two", -EINVAL},
	    {"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096,"
	     "\"page_size_kib\":4}]",
	     "differ", -EINVAL},
	    {"[" REG("4096", "0", "0", "4096") "]", "size is 0", -EINVAL},
	    {"[" REG("4097", "4096", "0", "4096") "]", "multiples", -EINVAL},
	    {"[" REG("4096", "6144", "0", "4096") "]", "multiples", -EINVAL},
	    {"[" REG("4096", "4096", "512", "4096") "]", "multiples", -EINVAL},
	    {"[" REG("4096", "8192", "0", "4096") "," REG("8192", "4096", "65536", "4096") "]",
	     "regions 0 and 1 overlap in memory", -EINVAL},
	    {"[" REG("4096", "4096", "0", "4096") "," REG("65536", "8192", "0", "4096") "]",
	     "regions 0 and 1 overlap in the file", -EINVAL},
	    {"[" REG("4096", "4096", "0", "4096") "," REG("9223372036854771712", "4096", "4096",
							  "4096") "," REG("4096", "4096", "8192",
									  "4096") "]",
	     "regions 0 and 2 overlap in memory", -EINVAL},
	};
#undef REG
	struct uffd_region r[4];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = 99;

		cr_assert_eq(parse(bad[i].json, r, &n), bad[i].e, "%s: got '%s'", bad[i].json, err);
		cr_assert_eq(n, 0, "%s", bad[i].json);
		cr_assert_not_null(strstr(err, bad[i].says), "%s: '%s' not in '%s'", bad[i].json,
				   bad[i].says, err);
	}
}

Test(uffd, region_find)
{
	const struct uffd_region r[] = {{.base = 0x10000, .size = 0x2000, .page_size = PG},
					{.base = 0x40000, .size = 0x1000, .page_size = PG}};

	cr_assert_null(uffd_region_find(r, 2, 0xffff));
	cr_assert_eq(uffd_region_find(r, 2, 0x10000), &r[0]);
	cr_assert_eq(uffd_region_find(r, 2, 0x11fff), &r[0]);
	cr_assert_null(uffd_region_find(r, 2, 0x12000));
	cr_assert_eq(uffd_region_find(r, 2, 0x40fff), &r[1]);
	cr_assert_null(uffd_region_find(r, 2, 0x41000));
	cr_assert_null(uffd_region_find(r, 2, UINT64_MAX));
}

/* ---- the fd passing ---------------------------------------------------- */

static int open_fds(void)
{
	int n = 0;
	char p[64];

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		n += access(p, F_OK) == 0;
	}
	return n;
}

Test(uffd, send_recv_passes_one_fd)
{
	int sv[2], pfd[2], got;
	char buf[64];
	size_t len;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(uffd_send(sv[0], "[1,2]", 5, pfd[1]), 0);
	cr_assert_eq(uffd_recv(sv[1], buf, sizeof(buf), &len, &got), 0);
	cr_assert_eq(len, 5);
	cr_assert_arr_eq(buf, "[1,2]", 5);
	cr_assert_neq(got, pfd[1]);
	cr_assert(fcntl(got, F_GETFD) & FD_CLOEXEC);
	/* The fd is the pipe's write end. */
	cr_assert_eq(write(got, "x", 1), 1);
	cr_assert_eq(read(pfd[0], buf, 1), 1);
	cr_assert_eq(buf[0], 'x');
	close(got);

	cr_assert_eq(uffd_send(sv[0], "", 0, pfd[1]), -EINVAL);
	/* Bytes without an fd. */
	cr_assert_eq(write(sv[0], "[]", 2), 2);
	cr_assert_eq(uffd_recv(sv[1], buf, sizeof(buf), &len, &got), -ENOMSG);
	cr_assert_eq(got, -1);

	/* Two fds (Firecracker's guest_memfd variant sends three): refused,
	 * and none of them stays open here. */
	int before = open_fds();
	int two[2] = {pfd[0], pfd[1]};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(two))];
	} c = {0};
	struct iovec iov = {.iov_base = "[]", .iov_len = 2};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(two));
	memcpy(CMSG_DATA(h), two, sizeof(two));
	cr_assert_eq(sendmsg(sv[0], &mh, 0), 2);
	cr_assert_eq(uffd_recv(sv[1], buf, sizeof(buf), &len, &got), -EPROTO);
	cr_assert_eq(got, -1);
	cr_assert_eq(open_fds(), before);

	/* The peer gone: the receiver says so, the sender gets no SIGPIPE. */
	close(sv[0]);
	cr_assert_eq(uffd_recv(sv[1], buf, sizeof(buf), &len, &got), -ECONNRESET);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	cr_assert_eq(uffd_send(sv[0], "[]", 2, pfd[1]), -EPIPE);
	close(sv[0]);
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- userfaultfd --------------------------------------------------------- */

/* Skip the test where the host gives no userfaultfd. */
static void need_uffd(void)
{
	int fd, e = uffd_create(&fd, err, sizeof(err));

	if (e == -EPERM || e == -ENOSYS || e == -EACCES)
		cr_skip_test("%s", err);
	cr_assert_eq(e, 0, "%s", err);
	close(fd);
}

Test(uffd, create_gives_a_nonblocking_cloexec_userfaultfd)
{
	char link[64], target[64];
	int fd;

	need_uffd();
	cr_assert_eq(uffd_create(&fd, err, sizeof(err)), 0, "%s", err);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t k = readlink(link, target, sizeof(target) - 1);
	cr_assert_gt(k, 0);
	target[k] = '\0';
	cr_assert_str_eq(target, "anon_inode:[userfaultfd]");
	close(fd);
}

/* A scratch folder for sockets and files (tests run in parallel). */
static void scratch(char *dir)
{
	strcpy(dir, "/tmp/test-uffd-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

/* Whether [p, p + len) is registered with some userfaultfd: a fresh one
 * cannot register it then (EBUSY). */
static bool registered(void *p, size_t len)
{
	struct uffdio_register reg = {.range = {.start = (uintptr_t)p, .len = len},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	int fd, r;

	cr_assert_eq(uffd_create(&fd, err, sizeof(err)), 0, "%s", err);
	r = ioctl(fd, UFFDIO_REGISTER, &reg);
	cr_assert(r == 0 || errno == EBUSY, "%s", strerror(errno));
	close(fd);
	return r < 0;
}

Test(uffd, open_refuses_and_leaves_nothing_registered)
{
	struct uffd_backend b = {.uffd = 7, .conn = 7};
	struct gmem_layout l;
	struct gmem *g;
	char dir[64], path[200];

	need_uffd();
	scratch(dir);
	cr_assert_eq(gmem_create(&g, 8 << 20), 0);
	gmem_layout_for_size(8 << 20, &l);
	uint8_t *host = gmem_region(g, 0)->host;

	snprintf(path, sizeof(path), "%s/none.sock", dir);
	cr_assert_eq(uffd_backend_open(g, &l, path, &b, err, sizeof(err)), -ENOENT);
	ERR_HAS("no uffd handler socket at");
	ERR_HAS(path);
	cr_assert_eq(b.uffd, -1);
	cr_assert_eq(b.conn, -1);
	cr_assert_not(registered(host, 8 << 20));

	/* A socket nobody listens on. */
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/deaf.sock", dir);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(uffd_backend_open(g, &l, a.sun_path, &b, err, sizeof(err)), -ECONNREFUSED);
	ERR_HAS("no uffd handler listens");
	cr_assert_not(registered(host, 8 << 20));
	close(s);
	unlink(a.sun_path);

	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	cr_assert_eq(uffd_backend_open(g, &l, longp, &b, err, sizeof(err)), -ENAMETOOLONG);
	ERR_HAS("too long");
	cr_assert_not(registered(host, 8 << 20));

	/* A page already there would never fault. */
	host[5 * PG + 7] = 1;
	cr_assert_eq(uffd_backend_open(g, &l, path, &b, err, sizeof(err)), -EBUSY);
	ERR_HAS("region 0 already has a page at offset");
	cr_assert_not(registered(host, 8 << 20));

	gmem_layout_for_size(16 << 20, &l);
	cr_assert_eq(uffd_backend_open(g, &l, path, &b, err, sizeof(err)), -EINVAL);
	gmem_destroy(g);
	rmdir(dir);
}

/* What a handler receives from uffd_backend_open: the list of g's regions
 * and a userfaultfd with them registered, which serves a fault. */
Test(uffd, open_sends_the_list_and_the_registered_uffd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct uffd_region want[GMEM_MAX_REGIONS], got[UFFD_MAX_REGIONS];
	struct uffd_backend b;
	struct gmem_layout l;
	struct gmem *g;
	char dir[64], buf[UFFD_MAX_MSG];
	size_t n, ng, len;
	int lfd, c, fd;

	need_uffd();
	scratch(dir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/h.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(gmem_create(&g, 8 << 20), 0);
	gmem_layout_for_size(8 << 20, &l);

	cr_assert_eq(uffd_backend_open(g, &l, a.sun_path, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(b.uffd, 0);
	cr_assert_geq(b.conn, 0);
	c = accept(lfd, NULL, NULL);
	cr_assert_geq(c, 0);
	cr_assert_eq(uffd_recv(c, buf, sizeof(buf), &len, &fd), 0);
	cr_assert_eq(uffd_regions_parse(buf, len, got, UFFD_MAX_REGIONS, &ng, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(uffd_regions_of(g, &l, want, &n, err, sizeof(err)), 0);
	cr_assert_eq(ng, n);
	cr_assert_arr_eq(got, want, n * sizeof(want[0]));
	cr_assert(registered(gmem_region(g, 0)->host, 8 << 20));

	/* The received fd serves the region: fill a page, read it back. */
	static uint8_t page[PG] __attribute__((aligned(PG)));
	memset(page, 0x5a, sizeof(page));
	struct uffdio_copy cp = {.dst = want[0].base + 3 * PG, .src = (uintptr_t)page, .len = PG};
	cr_assert_eq(ioctl(fd, UFFDIO_COPY, &cp), 0, "%s", strerror(errno));
	cr_assert_eq(((uint8_t *)gmem_region(g, 0)->host)[3 * PG + 100], 0x5a);

	/* Closing tells the handler. */
	uffd_backend_close(&b);
	cr_assert_eq(b.uffd, -1);
	cr_assert_eq(b.conn, -1);
	cr_assert_eq(read(c, buf, 1), 0);
	uffd_backend_close(&b);
	uffd_backend_close(NULL);
	close(fd);
	close(c);
	close(lfd);
	gmem_destroy(g);
	unlink(a.sun_path);
	rmdir(dir);
}
