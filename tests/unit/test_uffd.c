/* uffd (issue 12): the Uffd backend's region list is Firecracker's JSON,
 * field for field and byte for byte; the parser takes what Firecracker
 * sends (and an older sender's page_size_kib) and refuses every lie; the
 * userfaultfd travels as SCM_RIGHTS and a receiver refuses none or too
 * many fds; uffd_backend_open refuses a layout that is not g's, touched
 * memory and a missing handler, leaving nothing registered. End to end,
 * without KVM: guest memory restored through $(BUILD)/flint-uffd (run from
 * beside unit-tests, or $FLINT_UFFD) reads back a memory file's pages in
 * both regions, holes as zero pages; two faults on one page (EEXIST) and a
 * range given back (UFFD_EVENT_REMOVE, then zeros) are served; a short
 * memory file and a fault outside the regions are refused; the handler
 * exits when the VMM hangs up. Once a handler is gone, the VMM reads a
 * fault itself and names its guest-physical address, and reads a removal
 * so that its remover goes on. Tests that need a userfaultfd skip, saying
 * why, where the host gives none. */
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
#include "hugepool.h"
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
	static const char want[] = "[{\"base_host_virt_addr\":140737488351232,"
				   "\"size\":134217728,\"offset\":0,"
				   "\"page_size\":4096,\"page_size_kib\":4096},"
				   "{\"base_host_virt_addr\":140737622568960,"
				   "\"size\":2097152,\"offset\":134217728,"
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
	struct uffd_region r[UFFD_GMEM_REGIONS];
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
	cr_assert_arr_eq(back, r, n * sizeof(r[0]));
	free(s);
	gmem_destroy(g);
}

Test(uffd, regions_of_refuses_another_layout)
{
	struct uffd_region r[UFFD_GMEM_REGIONS];
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

/* The hot-plug region goes last: all of it, plugged or not, at its offset
 * in the memory file (right after RAM), in 4 KiB pages. */
Test(uffd, regions_of_a_guest_with_a_hot_plug_region)
{
	const uint64_t ram = 64 << 20, hot = 1ULL << 30, hsz = 256 << 20, blk = 2 << 20;
	const uint64_t two = MMIO_GAP_START + (4 << 20);
	struct uffd_region r[UFFD_GMEM_REGIONS], back[UFFD_MAX_REGIONS];
	struct gmem_layout l;
	struct gmem *g;
	size_t n, nb;
	char *s;

	cr_assert_eq(UFFD_GMEM_REGIONS, GMEM_MAX_REGIONS + 1);
	cr_assert_eq(gmem_create(&g, ram), 0);
	cr_assert_eq(gmem_hotplug_add(g, hot, hsz, blk), 0);
	cr_assert_eq(gmem_hotplug_set(g, hot + 2 * blk, blk, true), 0);
	gmem_layout_of(g, &l);
	memset(r, 0xa5, sizeof(r));
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(r[0].base, (uintptr_t)gmem_region(g, 0)->host);
	cr_assert_eq(r[0].size, ram);
	cr_assert_eq(r[0].offset, 0);
	cr_assert_eq(r[0].page_size, PG);
	cr_assert_eq(r[1].base, (uintptr_t)gmem_hotplug_region(g)->host);
	cr_assert_eq(r[1].size, hsz);
	cr_assert_eq(r[1].offset, ram);
	cr_assert_eq(r[1].page_size, PG);
	cr_assert_eq(r[2].base, 0xa5a5a5a5a5a5a5a5ULL, "an entry past n written");
	/* As sent, it parses back the same: apart in memory and in the file. */
	cr_assert_eq(uffd_regions_encode(r, n, &s), 0);
	cr_assert_not_null(strstr(s, ",\"size\":268435456,\"offset\":67108864,\"page_size\":4096,"),
			   "%s", s);
	cr_assert_eq(
	    uffd_regions_parse(s, strlen(s), back, UFFD_MAX_REGIONS, &nb, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(nb, 2);
	cr_assert_arr_eq(back, r, n * sizeof(r[0]));
	cr_assert_eq(uffd_region_find(back, nb, r[1].base + hsz - 1), &back[1]);
	free(s);
	gmem_destroy(g);

	/* RAM around the MMIO hole: three regions, the hot-plug one after both. */
	cr_assert_eq(gmem_create(&g, two), 0);
	cr_assert_eq(gmem_hotplug_add(g, 8ULL << 30, hsz, blk), 0);
	gmem_layout_of(g, &l);
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, UFFD_GMEM_REGIONS);
	cr_assert_eq(r[1].base, (uintptr_t)gmem_region(g, 1)->host);
	cr_assert_eq(r[1].offset, MMIO_GAP_START);
	cr_assert_eq(r[2].base, (uintptr_t)gmem_hotplug_region(g)->host);
	cr_assert_eq(r[2].size, hsz);
	cr_assert_eq(r[2].offset, two);
	cr_assert_eq(r[2].page_size, PG);
	cr_assert_eq(r[2].offset + r[2].size, gmem_layout_file_size(&l));
	gmem_destroy(g);
}

Test(uffd, regions_of_refuses_another_hot_plug_region)
{
	const uint64_t ram = 8 << 20, hot = 1ULL << 30, hsz = 64 << 20, blk = 2 << 20;
	struct uffd_region r[UFFD_GMEM_REGIONS];
	struct gmem_layout good, l;
	struct gmem *g;
	size_t n;

	cr_assert_eq(gmem_create(&g, ram), 0);
	cr_assert_eq(gmem_hotplug_add(g, hot, hsz, blk), 0);
	gmem_layout_of(g, &good);
	/* The layout has none (a version 1 table), guest memory has one. */
	l = good;
	memset(&l.hot, 0, sizeof(l.hot));
	n = 7;
	err[0] = '\0';
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("hot-plug region");
	cr_assert_eq(n, 0);
	/* Elsewhere, or another size. */
	l = good, l.hot.gpa += blk;
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("hot-plug region");
	cr_assert_eq(n, 0);
	l = good, l.hot.size /= 2;
	cr_assert_eq(uffd_regions_of(g, &l, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("hot-plug region");
	cr_assert_eq(uffd_regions_of(g, &good, r, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	gmem_destroy(g);
	/* The layout has one, guest memory none. */
	cr_assert_eq(gmem_create(&g, ram), 0);
	n = 7;
	cr_assert_eq(uffd_regions_of(g, &good, r, &n, err, sizeof(err)), -EINVAL);
	ERR_HAS("hot-plug region");
	cr_assert_eq(n, 0);
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
	    {"[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":"
	     "4096,"
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
	struct uffd_region want[UFFD_GMEM_REGIONS], got[UFFD_MAX_REGIONS];
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

/* The hot-plug region is registered too and goes last in the list; a page
 * of it already there is refused as RAM's is. */
Test(uffd, open_registers_the_hot_plug_region)
{
	const uint64_t ram = 8 << 20, hot = 1ULL << 30, hsz = 64 << 20, blk = 2 << 20;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct uffd_region want[UFFD_GMEM_REGIONS], got[UFFD_MAX_REGIONS];
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

	/* A touched page of the region: refused, nothing registered. */
	cr_assert_eq(gmem_create(&g, ram), 0);
	cr_assert_eq(gmem_hotplug_add(g, hot, hsz, blk), 0);
	gmem_layout_of(g, &l);
	cr_assert_eq(gmem_hotplug_set(g, hot + blk, blk, true), 0);
	cr_assert_eq(gmem_write(g, hot + blk + 3 * PG, "x", 1), 0);
	cr_assert_eq(uffd_backend_open(g, &l, a.sun_path, &b, err, sizeof(err)), -EBUSY);
	ERR_HAS("region 1 already has a page at offset 0x20"); /* 0x200000 with THP */
	cr_assert_not(registered(gmem_region(g, 0)->host, ram));
	cr_assert_not(registered(gmem_hotplug_region(g)->host, hsz));
	gmem_destroy(g);

	cr_assert_eq(gmem_create(&g, ram), 0);
	cr_assert_eq(gmem_hotplug_add(g, hot, hsz, blk), 0);
	gmem_layout_of(g, &l);
	uint8_t *hhost = gmem_hotplug_region(g)->host;
	cr_assert_eq(uffd_backend_open(g, &l, a.sun_path, &b, err, sizeof(err)), 0, "%s", err);
	c = accept(lfd, NULL, NULL);
	cr_assert_geq(c, 0);
	cr_assert_eq(uffd_recv(c, buf, sizeof(buf), &len, &fd), 0);
	cr_assert_eq(uffd_regions_parse(buf, len, got, UFFD_MAX_REGIONS, &ng, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(uffd_regions_of(g, &l, want, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(ng, n);
	cr_assert_arr_eq(got, want, n * sizeof(want[0]));
	cr_assert_eq(got[1].base, (uintptr_t)hhost);
	cr_assert_eq(got[1].size, hsz);
	cr_assert_eq(got[1].offset, ram);
	cr_assert(registered(gmem_region(g, 0)->host, ram));
	cr_assert(registered(hhost, hsz));

	/* The received fd serves the region: a page of a plugged block. */
	static uint8_t page[PG] __attribute__((aligned(PG)));
	memset(page, 0x6b, sizeof(page));
	cr_assert_eq(gmem_hotplug_set(g, hot + blk, blk, true), 0);
	struct uffdio_copy cp = {
	    .dst = got[1].base + blk + 3 * PG, .src = (uintptr_t)page, .len = PG};
	cr_assert_eq(ioctl(fd, UFFDIO_COPY, &cp), 0, "%s", strerror(errno));
	cr_assert_eq(*(uint8_t *)gmem_ptr(g, hot + blk + 3 * PG + 100, 1), 0x6b);

	uffd_backend_close(&b);
	cr_assert_eq(read(c, buf, 1), 0);
	close(fd);
	close(c);
	close(lfd);
	gmem_destroy(g);
	unlink(a.sun_path);
	rmdir(dir);
}

/* ---- end to end through flint-uffd ------------------------------------- */

struct handler {
	pid_t pid;
	char dir[64], sock[100], log[100];
};

static void handler_path(char *out, size_t len)
{
	const char *env = getenv("FLINT_UFFD");
	char exe[PATH_MAX];
	ssize_t k;

	if (env) {
		snprintf(out, len, "%s", env);
		return;
	}
	k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(k, 0);
	exe[k] = '\0';
	snprintf(out, len, "%s/flint-uffd", dirname(exe));
}

/* Start flint-uffd on memfile, its stderr in h->log; back once it
 * listens. */
static void handler_start(struct handler *h, const char *memfile)
{
	char bin[PATH_MAX + 16];
	struct stat st;

	handler_path(bin, sizeof(bin));
	cr_assert_eq(access(bin, X_OK), 0, "%s: %s (make $(BUILD)/flint-uffd, or set FLINT_UFFD)",
		     bin, strerror(errno));
	scratch(h->dir);
	snprintf(h->sock, sizeof(h->sock), "%s/uffd.sock", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/log", h->dir);
	h->pid = fork();
	cr_assert_geq(h->pid, 0);
	if (h->pid == 0) {
		int fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execl(bin, "flint-uffd", h->sock, memfile, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && stat(h->sock, &st) < 0; i++)
		usleep(10000);
	cr_assert_eq(stat(h->sock, &st), 0, "flint-uffd did not listen");
}

/* Its exit status (waiting at most 5 s); the log in log[]. */
static int handler_wait(struct handler *h, char *log, size_t len)
{
	int st = 0, fd;
	pid_t r = 0;

	for (int i = 0; i < 500 && (r = waitpid(h->pid, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	if (r == 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, &st, 0);
		cr_assert_fail("flint-uffd did not exit");
	}
	fd = open(h->log, O_RDONLY);
	ssize_t k = fd < 0 ? 0 : read(fd, log, len - 1);
	log[k > 0 ? k : 0] = '\0';
	close(fd);
	unlink(h->log);
	unlink(h->sock);
	rmdir(h->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define LOG_HAS(log, s) cr_assert_not_null(strstr(log, s), "'%s' not in '%s'", s, log)

/* Touch pages from a thread, so that a handler that fails to serve one
 * fails the test (5 s) instead of hanging it. */
struct toucher {
	uint8_t *const *pages;
	size_t n;
	uint8_t *copy; /* n pages */
	pthread_t t;
};

static void *touch_run(void *arg)
{
	struct toucher *t = arg;

	for (size_t i = 0; i < t->n; i++)
		memcpy(t->copy + i * PG, t->pages[i], PG);
	return NULL;
}

static void touch_start(struct toucher *t, uint8_t *const *pages, size_t n)
{
	t->pages = pages;
	t->n = n;
	t->copy = malloc(n * PG);
	cr_assert_eq(pthread_create(&t->t, NULL, touch_run, t), 0);
}

static void touch_join(struct toucher *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	cr_assert_eq(pthread_timedjoin_np(t->t, NULL, &ts), 0, "a touched page was not served");
}

/* Read the pages through a thread; their contents in out (n pages). */
static void touch(uint8_t *const *pages, size_t n, uint8_t *out)
{
	struct toucher t;

	touch_start(&t, pages, n);
	touch_join(&t);
	memcpy(out, t.copy, n * PG);
	free(t.copy);
}

/* A memory file of the given size (sparse) with a pattern page, seeded by
 * its offset, at each offset in data[]. */
static void pattern(uint8_t *p, uint64_t off)
{
	for (size_t i = 0; i < PG; i++)
		p[i] = (uint8_t)(off / PG * 131 + i * 7 + 1);
}

static void make_memfile(const char *path, uint64_t size, const uint64_t *data, size_t n)
{
	uint8_t page[PG];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	for (size_t i = 0; i < n; i++) {
		pattern(page, data[i]);
		cr_assert_eq(pwrite(fd, page, PG, (off_t)data[i]), (ssize_t)PG);
	}
	close(fd);
}

struct e2e {
	struct handler h;
	char mem[128];
	struct gmem *g;
	struct gmem_layout l;
	struct uffd_backend b;
};

/* Guest memory of size bytes restored through flint-uffd from a memory
 * file of file_size bytes with pattern pages at data[]. */
static void e2e_start(struct e2e *e, uint64_t size, uint64_t file_size, const uint64_t *data,
		      size_t n)
{
	char d[] = "/tmp/test-uffd-mem-XXXXXX";

	need_uffd();
	cr_assert_not_null(mkdtemp(d));
	snprintf(e->mem, sizeof(e->mem), "%s/mem", d);
	make_memfile(e->mem, file_size, data, n);
	handler_start(&e->h, e->mem);
	cr_assert_eq(gmem_create(&e->g, size), 0);
	gmem_layout_for_size(size, &e->l);
}

static void e2e_end(struct e2e *e)
{
	char d[sizeof(e->mem)];

	uffd_backend_close(&e->b);
	gmem_destroy(e->g);
	unlink(e->mem);
	snprintf(d, sizeof(d), "%s", e->mem);
	rmdir(dirname(d));
}

static uint8_t *host_at(struct gmem *g, uint64_t gpa)
{
	uint8_t *p = gmem_ptr(g, gpa, PG);

	cr_assert_not_null(p);
	return p;
}

/* What the main loop reads once the handler has hung up (uffd_orphan_event):
 * a page fault, named by its guest-physical address, which nothing answers;
 * a removed range, read so that its remover goes on; nothing at all. */
static void *touch_one(void *p)
{
	return (void *)(uintptr_t) * (volatile uint8_t *)p;
}

static void *remove_one(void *p)
{
	return (void *)(intptr_t)madvise(p, PG, MADV_DONTNEED);
}

/* Wait up to 5 s for an event on fd. */
static void event_waits(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 5000), 1, "no userfaultfd event within 5 s");
}

Test(uffd, orphan_event_names_a_fault_and_lets_a_removal_go, .timeout = 30)
{
	const uint64_t size = MMIO_GAP_START + (4 << 20);
	struct gmem *g;
	pthread_t t;
	char why[128] = "";
	void *ret;
	int fd;

	need_uffd();
	cr_assert_eq(gmem_create(&g, size), 0);
	cr_assert_eq(uffd_create(&fd, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < gmem_nregions(g); i++) {
		struct uffdio_register reg = {.range = {.start = (uintptr_t)gmem_region(g, i)->host,
							.len = gmem_region(g, i)->size},
					      .mode = UFFDIO_REGISTER_MODE_MISSING};
		cr_assert_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0, "%s", strerror(errno));
	}
	cr_assert_eq(uffd_orphan_event(fd, g, why, sizeof(why)), 0, "no event: nothing to say");

	/* A fault in the second region, above the MMIO gap. */
	uint8_t *p = host_at(g, MMIO_GAP_END + 3 * PG);
	cr_assert_eq(pthread_create(&t, NULL, touch_one, p + 5), 0);
	event_waits(fd);
	cr_assert_eq(uffd_orphan_event(fd, g, why, sizeof(why)), 1);
	char want[64];
	snprintf(want, sizeof(want), "guest-physical address 0x%llx",
		 (unsigned long long)(MMIO_GAP_END + 3 * PG));
	cr_assert_str_eq(why, want);
	/* The test answers it (the main loop stops the VM instead). */
	struct uffdio_zeropage z = {.range = {.start = (uintptr_t)p, .len = PG}};
	cr_assert_eq(ioctl(fd, UFFDIO_ZEROPAGE, &z), 0, "%s", strerror(errno));
	cr_assert_eq(pthread_join(t, &ret), 0);

	/* A removal waits until its event is read, then goes on. */
	cr_assert_eq(pthread_create(&t, NULL, remove_one, p), 0);
	event_waits(fd);
	cr_assert_eq(uffd_orphan_event(fd, g, why, sizeof(why)), 0);
	cr_assert_eq(pthread_join(t, &ret), 0);
	cr_assert_eq((intptr_t)ret, 0, "madvise failed");
	cr_assert_eq(uffd_orphan_event(fd, g, why, sizeof(why)), 0);
	close(fd);
	gmem_destroy(g);
}

/* A handler may clear O_NONBLOCK on the file it shares: reading an
 * orphaned userfaultfd with no event still does not wait. */
Test(uffd, orphan_event_does_not_wait_on_a_blocking_uffd, .timeout = 10)
{
	struct gmem *g;
	char why[128];
	int fd;

	need_uffd();
	cr_assert_eq(gmem_create(&g, 4 << 20), 0);
	cr_assert_eq(uffd_create(&fd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fcntl(fd, F_SETFL, 0), 0);
	cr_assert_eq(uffd_orphan_event(fd, g, why, sizeof(why)), 0);
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
	gmem_destroy(g);
}

Test(uffd, e2e_pages_and_holes_in_both_regions, .timeout = 60)
{
	const uint64_t size = MMIO_GAP_START + (4 << 20);
	/* File offsets with data: region 0 at 0, region 1 at MMIO_GAP_START. */
	const uint64_t data[] = {0, 7 * PG, MMIO_GAP_START - PG, MMIO_GAP_START,
				 MMIO_GAP_START + 3 * PG};
	/* What is touched, by gpa, and the file offset that backs it. */
	const struct {
		uint64_t gpa, off;
		bool hole;
	} t[] = {
	    {0, 0, false},
	    {7 * PG, 7 * PG, false},
	    {8 * PG, 8 * PG, true},
	    {MMIO_GAP_START - PG, MMIO_GAP_START - PG, false},
	    {MMIO_GAP_END, MMIO_GAP_START, false},
	    {MMIO_GAP_END + PG, MMIO_GAP_START + PG, true},
	    {MMIO_GAP_END + 3 * PG, MMIO_GAP_START + 3 * PG, false},
	    {MMIO_GAP_END + (4 << 20) - PG, size - PG, true},
	};
	uint8_t *pages[ARRAY_SIZE(t)], *got = malloc(ARRAY_SIZE(t) * PG), want[PG];
	char log[512];
	struct e2e e;

	e2e_start(&e, size, size, data, ARRAY_SIZE(data));
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		pages[i] = host_at(e.g, t[i].gpa);
	touch(pages, ARRAY_SIZE(t), got);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (t[i].hole)
			memset(want, 0, PG);
		else
			pattern(want, t[i].off);
		cr_assert_arr_eq(got + i * PG, want, PG, "gpa 0x%llx",
				 (unsigned long long)t[i].gpa);
	}
	/* Served once: read again, no fault. */
	cr_assert_eq(pages[1][5], got[PG + 5]);

	/* The VMM hangs up: the handler is done, having copied the data
	 * pages and zero-filled the holes. */
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "5 pages copied, 3 zero pages");
	e2e_end(&e);
	free(got);
}

/* The handler is stopped while two threads fault on one page, so it reads
 * both faults at once: the second copy finds the page there (EEXIST), which
 * is no failure. */
Test(uffd, e2e_two_faults_on_one_page, .timeout = 60)
{
	const uint64_t data[] = {2 * PG, 9 * PG};
	uint8_t want[PG];
	char log[512];
	struct toucher a, b;
	struct e2e e;

	e2e_start(&e, 1 << 20, 1 << 20, data, 2);
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	uint8_t *p[] = {host_at(e.g, 2 * PG)}, *q[] = {host_at(e.g, 9 * PG)};
	cr_assert_eq(kill(e.h.pid, SIGSTOP), 0);
	touch_start(&a, p, 1);
	touch_start(&b, p, 1);
	/* Both faults queued (poll sees the first; the second follows within
	 * microseconds of its thread's start). */
	struct pollfd pf = {.fd = e.b.uffd, .events = POLLIN};
	cr_assert_eq(poll(&pf, 1, 5000), 1);
	usleep(200000);
	cr_assert_eq(kill(e.h.pid, SIGCONT), 0);
	touch_join(&a);
	touch_join(&b);
	pattern(want, 2 * PG);
	cr_assert_arr_eq(a.copy, want, PG);
	cr_assert_arr_eq(b.copy, want, PG);
	/* Still serving. */
	uint8_t got[PG];
	touch(q, 1, got);
	pattern(want, 9 * PG);
	cr_assert_arr_eq(got, want, PG);
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "2 pages copied, 0 zero pages");
	free(a.copy);
	free(b.copy);
	e2e_end(&e);
}

/* A range the VMM gives back (madvise MADV_DONTNEED: UFFD_EVENT_REMOVE)
 * faults in as zeros afterwards, not from the file. */
Test(uffd, e2e_removed_range_comes_back_zero, .timeout = 60)
{
	const uint64_t data[] = {0, PG, 2 * PG};
	uint8_t got[3 * PG], want[PG], zero[PG] = {0};
	char log[512];
	struct e2e e;

	e2e_start(&e, 1 << 20, 1 << 20, data, 3);
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	uint8_t *base = host_at(e.g, 0);
	uint8_t *p[] = {base, base + PG, base + 2 * PG};
	touch(p, 3, got);
	pattern(want, PG);
	cr_assert_arr_eq(got + PG, want, PG);
	/* Waits until the handler has read the event. */
	cr_assert_eq(madvise(base + PG, PG, MADV_DONTNEED), 0);
	touch(p, 3, got);
	pattern(want, 0);
	cr_assert_arr_eq(got, want, PG);
	cr_assert_arr_eq(got + PG, zero, PG);
	pattern(want, 2 * PG);
	cr_assert_arr_eq(got + 2 * PG, want, PG);
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "3 pages copied, 1 zero pages");
	e2e_end(&e);
}

/* A memory file shorter than the regions is refused whole: the handler
 * says so and hangs up, which the VMM sees on its connection. */
Test(uffd, e2e_short_memory_file_refused, .timeout = 60)
{
	const uint64_t data[] = {0};
	char log[512];
	struct e2e e;

	e2e_start(&e, 1 << 20, (1 << 20) - PG, data, 1);
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 1, "%s", log);
	LOG_HAS(log, "the memory file is 1044480 bytes, region 0 needs 1048576");
	struct pollfd pf = {.fd = e.b.conn, .events = POLLRDHUP};
	cr_assert_eq(poll(&pf, 1, 5000), 1);
	cr_assert(pf.revents & (POLLHUP | POLLRDHUP));
	e2e_end(&e);
}

/* A VMM that registers more than it describes: the fault outside every
 * region is refused (the test then serves it itself to let the thread
 * go). */
Test(uffd, e2e_fault_outside_the_regions_refused, .timeout = 60)
{
	const uint64_t data[] = {0, PG};
	struct uffd_region r;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct handler h;
	struct toucher t;
	char mem[] = "/tmp/test-uffd-mem-XXXXXX", log[512], *msg;
	int fd, c;

	need_uffd();
	fd = mkstemp(mem);
	cr_assert_geq(fd, 0);
	close(fd);
	make_memfile(mem, 2 * PG, data, 2);
	handler_start(&h, mem);
	uint8_t *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(uffd_create(&fd, err, sizeof(err)), 0, "%s", err);
	struct uffdio_register reg = {.range = {.start = (uintptr_t)m, .len = 2 * PG},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	cr_assert_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0);
	r = (struct uffd_region){.base = (uintptr_t)m, .size = PG, .offset = 0, .page_size = PG};
	cr_assert_eq(uffd_regions_encode(&r, 1, &msg), 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", h.sock);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(uffd_send(c, msg, strlen(msg), fd), 0);

	uint8_t *p[] = {m + PG};
	touch_start(&t, p, 1);
	cr_assert_eq(handler_wait(&h, log, sizeof(log)), 1, "%s", log);
	char want[96];
	snprintf(want, sizeof(want), "fault at 0x%llx outside every region",
		 (unsigned long long)(uintptr_t)(m + PG));
	LOG_HAS(log, want);
	struct uffdio_zeropage z = {.range = {.start = (uintptr_t)(m + PG), .len = PG}};
	cr_assert_eq(ioctl(fd, UFFDIO_ZEROPAGE, &z), 0, "%s", strerror(errno));
	touch_join(&t);
	free(t.copy);
	free(msg);
	close(c);
	close(fd);
	munmap(m, 2 * PG);
	unlink(mem);
}

/* A region list that fails the checks is refused before any fault. */
Test(uffd, e2e_bad_list_refused, .timeout = 60)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct handler h;
	char mem[] = "/tmp/test-uffd-mem-XXXXXX", log[512];
	int fd, c, u;

	need_uffd();
	fd = mkstemp(mem);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);
	handler_start(&h, mem);
	cr_assert_eq(uffd_create(&u, err, sizeof(err)), 0, "%s", err);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", h.sock);
	cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	static const char bad[] = "[{\"base_host_virt_addr\":4096,\"size\":4096,"
				  "\"offset\":0,\"page_size\":1000}]";
	cr_assert_eq(uffd_send(c, bad, strlen(bad), u), 0);
	cr_assert_eq(handler_wait(&h, log, sizeof(log)), 1, "%s", log);
	LOG_HAS(log, "page_size 1000 is not a power of two");
	close(c);
	close(u);
	unlink(mem);
}

/* With 2 MiB huge pages the list says so and the handler fills whole huge
 * pages: from the file, or zeros for a huge page that is all hole. Where
 * the host's pool has too few free pages, root adds some for the test. */
Test(uffd, e2e_huge_pages, .timeout = 60, .fini = hugepool_give_back)
{
	const uint64_t huge = 2 << 20, data[] = {PG};
	uint8_t got[2 * PG], want[PG], zero[PG] = {0};
	struct gmem_opts o = {.huge_2m = true};
	char log[512];
	struct e2e e;

	if (hugepool_take(2) < 2)
		cr_skip_test("fewer than 2 free 2 MiB huge pages (vm.nr_hugepages), and no root to "
			     "add them");
	e2e_start(&e, 2 * huge, 2 * huge, data, 1);
	gmem_destroy(e.g);
	cr_assert_eq(gmem_create_opts(&e.g, 2 * huge, &o), 0);
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	uint8_t *p[] = {host_at(e.g, PG), host_at(e.g, huge + 5 * PG)};
	touch(p, 2, got);
	pattern(want, PG);
	cr_assert_arr_eq(got, want, PG);
	cr_assert_arr_eq(got + PG, zero, PG);
	/* The rest of each huge page came with it. */
	cr_assert_eq(*host_at(e.g, 0), 0);
	cr_assert_eq(*host_at(e.g, huge - PG), 0);
	cr_assert_eq(*host_at(e.g, 2 * huge - PG), 0);
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "1 pages copied, 1 zero pages");
	e2e_end(&e);
}

/* A full snapshot of guest memory restored through the handler holds every
 * page of the memory file, also those the guest never touched: not present
 * here, they still hold data (gmem_set_lazy makes gmem_save_full read every
 * page, which faults them in). */
Test(uffd, e2e_full_snapshot_holds_untouched_pages, .timeout = 60)
{
	const uint64_t data[] = {0, 5 * PG, 200 * PG};
	uint8_t got[PG], want[PG], zero[PG] = {0};
	char log[512], snap[] = "/tmp/test-uffd-snap-XXXXXX";
	struct e2e e;
	int fd;

	e2e_start(&e, 1 << 20, 1 << 20, data, ARRAY_SIZE(data));
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	uint8_t *p[] = {host_at(e.g, 5 * PG)};
	touch(p, 1, got);
	fd = mkstemp(snap);
	cr_assert_geq(fd, 0);
	unlink(snap);
	cr_assert_eq(gmem_save_full(e.g, fd, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < ARRAY_SIZE(data); i++) {
		cr_assert_eq(pread(fd, got, PG, (off_t)data[i]), (ssize_t)PG);
		pattern(want, data[i]);
		cr_assert_arr_eq(got, want, PG, "file offset 0x%llx", (unsigned long long)data[i]);
	}
	cr_assert_eq(pread(fd, got, PG, 7 * PG), (ssize_t)PG);
	cr_assert_arr_eq(got, zero, PG);
	close(fd);
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "3 pages copied, 253 zero pages");
	e2e_end(&e);
}

/* A guest with a hot-plug region restored through flint-uffd: its plugged
 * blocks' pages come from the memory file after RAM, its holes as zeros; a
 * block unplugged (UFFD_EVENT_REMOVE) and plugged again reads zeros. */
Test(uffd, e2e_hot_plug_region, .timeout = 60)
{
	const uint64_t ram = 1 << 20, hot = 1ULL << 30, hsz = 8 << 20, blk = 2 << 20;
	/* RAM's page 0; block 2's page 5, block 3's page 0. */
	const uint64_t data[] = {0, ram + 2 * blk + 5 * PG, ram + 3 * blk};
	uint8_t got[4 * PG], want[PG], zero[PG] = {0};
	char log[512];
	struct e2e e;

	e2e_start(&e, ram, ram + hsz, data, ARRAY_SIZE(data));
	cr_assert_eq(gmem_hotplug_add(e.g, hot, hsz, blk), 0);
	gmem_layout_of(e.g, &e.l);
	cr_assert_eq(uffd_backend_open(e.g, &e.l, e.h.sock, &e.b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(gmem_hotplug_set(e.g, hot + 2 * blk, 2 * blk, true), 0);
	uint8_t *p[] = {host_at(e.g, 0), host_at(e.g, hot + 2 * blk + 5 * PG),
			host_at(e.g, hot + 2 * blk + 6 * PG), host_at(e.g, hot + 3 * blk)};
	touch(p, 4, got);
	pattern(want, 0);
	cr_assert_arr_eq(got, want, PG, "RAM");
	pattern(want, data[1]);
	cr_assert_arr_eq(got + PG, want, PG, "block 2 page 5");
	cr_assert_arr_eq(got + 2 * PG, zero, PG, "block 2 page 6, a hole");
	pattern(want, data[2]);
	cr_assert_arr_eq(got + 3 * PG, want, PG, "block 3 page 0");
	/* Unplugged (returns once the handler has read the event), then
	 * plugged again: zeros; block 3 keeps its page. */
	cr_assert_eq(gmem_hotplug_set(e.g, hot + 2 * blk, blk, false), 0);
	cr_assert_eq(gmem_hotplug_set(e.g, hot + 2 * blk, blk, true), 0);
	touch(p + 1, 1, got);
	cr_assert_arr_eq(got, zero, PG, "an unplugged page kept its data");
	cr_assert_eq(p[3][7], want[7]);
	uffd_backend_close(&e.b);
	cr_assert_eq(handler_wait(&e.h, log, sizeof(log)), 0, "%s", log);
	LOG_HAS(log, "3 pages copied, 2 zero pages");
	e2e_end(&e);
}
