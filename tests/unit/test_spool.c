/* spool (runner/cmd/spool.c): the copy-ins' tar streams made ahead by a
 * thread into a ring. Each stream taken out must be byte for byte what
 * tarcopy_send writes, through rings far smaller than the streams (the
 * archiver waiting for room) and pieces of any size; a failed archive or
 * a failed write stops what follows; spool_end returns while the archiver
 * waits on a full ring. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/spool.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/flint-unit-spool-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return;
}

static const char *at(const char *rel)
{
	static char p[8][256];
	static int i;

	i = (i + 1) % 8;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
	return p[i];
}

/* A file of n bytes of a pattern seeded by seed. */
static void put(const char *rel, size_t n, unsigned seed)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char *b = malloc(n + 1);

	cr_assert_geq(fd, 0);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(seed * 31 + i * 7 + i / 251);
	cr_assert_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
}

/* A growing buffer as a tarcopy_io's write. fail_after: fail the write
 * that would pass that many bytes (0: never). */
struct sink {
	char *buf;
	size_t len, cap, max_piece, fail_after;
	unsigned writes;
};

static int sink_write(void *ctx, const void *p, size_t len, char *msg, size_t msglen)
{
	struct sink *s = ctx;

	s->writes++;
	if (len > s->max_piece)
		s->max_piece = len;
	if (s->fail_after && s->len + len > s->fail_after) {
		snprintf(msg, msglen, "the sink is full");
		return -1;
	}
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->buf = realloc(s->buf, s->cap);
		cr_assert_not_null(s->buf);
	}
	memcpy(s->buf + s->len, p, len);
	s->len += len;
	return 0;
}

/* What tarcopy_send writes for path, now. */
static struct sink direct(const char *path)
{
	struct sink s = {0};
	struct tarcopy_io io = {.write = sink_write, .ctx = &s};
	char err[256];

	cr_assert_eq(tarcopy_send(path, &io, NULL, err, sizeof(err)), 0, "%s", err);
	return s;
}

/* Two trees and a file: more than the small rings below, files of odd
 * sizes. */
static void make_sources(void)
{
	cr_assert_eq(mkdir(at("a"), 0755), 0);
	cr_assert_eq(mkdir(at("a/sub"), 0755), 0);
	put("a/one", 70000, 1);
	put("a/sub/two", 12345, 2);
	put("a/empty", 0, 3);
	cr_assert_eq(symlink("one", at("a/link")), 0);
	cr_assert_eq(mkdir(at("b"), 0700), 0);
	put("b/three", 200001, 4);
	put("c", 5000, 5);
}

static void same_streams(size_t ring, size_t max)
{
	const char *paths[3] = {strdup(at("a")), strdup(at("b")), strdup(at("c"))};
	struct sink wants[3];
	struct spool *sp;
	char err[256];

	make_sources();
	for (unsigned i = 0; i < 3; i++)
		wants[i] = direct(paths[i]);
	cr_assert_eq(spool_start(&sp, paths, 3, ring), 0);
	for (unsigned i = 0; i < 3; i++) {
		struct sink want = wants[i], got = {0};
		struct tarcopy_io io = {.write = sink_write, .ctx = &got};

		cr_assert_eq(spool_send(sp, i, &io, max, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(got.len, want.len, "stream %u: %zu bytes, tarcopy_send wrote %zu", i,
			     got.len, want.len);
		cr_assert_eq(memcmp(got.buf, want.buf, want.len), 0, "stream %u differs", i);
		cr_assert_leq(got.max_piece, max);
		free(got.buf);
		free(want.buf);
	}
	/* Every stream was taken: there is no fourth. */
	cr_assert_eq(
	    spool_send(sp, 3, &(struct tarcopy_io){.write = sink_write}, max, err, sizeof(err)),
	    -1);
	spool_end(sp);
	for (unsigned i = 0; i < 3; i++)
		free((void *)paths[i]);
}

TestSuite(spool, .init = setup, .fini = teardown, .timeout = 30);

Test(spool, streams_as_tarcopy_send_writes_them_ring_larger_than_all)
{
	same_streams(8u << 20, 65536);
}

Test(spool, streams_through_a_ring_smaller_than_one_file)
{
	same_streams(4096, 65536);
}

Test(spool, pieces_smaller_than_the_ring_and_a_ring_of_odd_size)
{
	same_streams(10007, 1000);
}

/* Every piece wraps or waits. */
Test(spool, a_ring_of_a_few_bytes)
{
	same_streams(7, 5);
}

/* The point of it: what is in the ring was read when it was made. A file
 * changed after its archive was made goes as it was. */
Test(spool, streams_are_the_tree_as_it_was_when_read)
{
	const char *paths[1] = {strdup(at("c"))};
	struct sink want, got = {0};
	struct tarcopy_io io = {.write = sink_write, .ctx = &got};
	struct spool *sp;
	char err[256];

	make_sources();
	want = direct(paths[0]);
	cr_assert_eq(spool_start(&sp, paths, 1, 1u << 20), 0);
	while (spool_made(sp) < want.len)
		usleep(1000);
	put("c", 5000, 6);
	cr_assert_eq(spool_send(sp, 0, &io, 65536, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(got.len, want.len);
	cr_assert_eq(memcmp(got.buf, want.buf, want.len), 0, "the old bytes went");
	spool_end(sp);
	free(got.buf);
	free(want.buf);
	free((void *)paths[0]);
}

/* The copy of stream 0 went, stream 1 is being read into a full ring, and
 * the copy-ins end (a later one failed): spool_end stops the archiver. */
Test(spool, end_after_the_first_stream_while_the_second_is_read)
{
	const char *paths[2] = {strdup(at("c")), strdup(at("b"))};
	struct sink got = {0};
	struct tarcopy_io io = {.write = sink_write, .ctx = &got};
	struct spool *sp;
	char err[256];

	make_sources();
	cr_assert_eq(spool_start(&sp, paths, 2, 4096), 0);
	cr_assert_eq(spool_send(sp, 0, &io, 65536, err, sizeof(err)), 0, "%s", err);
	while (spool_made(sp) < got.len + 4096)
		usleep(1000);
	spool_end(sp);
	free(got.buf);
	free((void *)paths[0]);
	free((void *)paths[1]);
}

Test(spool, streams_are_taken_in_order_each_once)
{
	const char *paths[2] = {strdup(at("a")), strdup(at("c"))};
	struct sink got = {0};
	struct tarcopy_io io = {.write = sink_write, .ctx = &got};
	struct spool *sp;
	char err[256];

	make_sources();
	cr_assert_eq(spool_start(&sp, paths, 2, 1u << 20), 0);
	cr_assert_eq(spool_send(sp, 1, &io, 65536, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "cannot be sent now"), "%s", err);
	cr_assert_eq(spool_send(sp, 0, &io, 65536, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(spool_send(sp, 0, &io, 65536, err, sizeof(err)), -1);
	spool_end(sp);
	free(got.buf);
	free((void *)paths[0]);
	free((void *)paths[1]);
}

/* A source that cannot be archived: its stream fails with tarcopy_send's
 * message, naming the path, and no later stream is sent. */
Test(spool, a_failed_archive_is_the_streams_error_and_stops_the_rest)
{
	const char *paths[3] = {strdup(at("c")), strdup(at("missing")), strdup(at("a"))};
	struct sink got = {0};
	struct tarcopy_io io = {.write = sink_write, .ctx = &got};
	struct spool *sp;
	char err[256] = "";

	make_sources();
	cr_assert_eq(spool_start(&sp, paths, 3, 4096), 0);
	cr_assert_eq(spool_send(sp, 0, &io, 65536, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(spool_send(sp, 1, &io, 65536, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "missing"), "the message names the source: %s", err);
	cr_assert_eq(spool_send(sp, 2, &io, 65536, err, sizeof(err)), -1);
	spool_end(sp);
	free(got.buf);
	for (unsigned i = 0; i < 3; i++)
		free((void *)paths[i]);
}

/* The connection fails mid-stream: its message comes back, the archiver
 * (waiting for room in a small ring) gives up, and spool_end returns. */
Test(spool, a_failed_write_stops_the_archiver)
{
	const char *paths[2] = {strdup(at("b")), strdup(at("a"))};
	struct sink got = {.fail_after = 50000};
	struct tarcopy_io io = {.write = sink_write, .ctx = &got};
	struct spool *sp;
	char err[256] = "";

	make_sources();
	cr_assert_eq(spool_start(&sp, paths, 2, 4096), 0);
	cr_assert_eq(spool_send(sp, 0, &io, 1024, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "the sink is full");
	cr_assert_leq(got.len, 50000);
	cr_assert_eq(spool_send(sp, 1, &io, 1024, err, sizeof(err)), -1);
	spool_end(sp);
	free(got.buf);
	free((void *)paths[0]);
	free((void *)paths[1]);
}

/* Nothing is taken: the archiver fills the ring and waits; spool_end
 * stops it and returns. */
Test(spool, end_while_the_archiver_waits_for_room)
{
	const char *paths[1] = {strdup(at("b"))};
	struct spool *sp;

	make_sources();
	cr_assert_eq(spool_start(&sp, paths, 1, 4096), 0);
	while (spool_made(sp) < 4096)
		usleep(1000);
	cr_assert_eq(spool_made(sp), 4096, "a full ring, and no more");
	spool_end(sp);
	free((void *)paths[0]);
}

Test(spool, start_refuses_nothing_to_do)
{
	const char *paths[1] = {"/nonexistent"};
	struct spool *sp = (struct spool *)1;

	cr_assert_eq(spool_start(&sp, paths, 0, 4096), -EINVAL);
	cr_assert_null(sp);
	cr_assert_eq(spool_start(&sp, paths, 1, 0), -EINVAL);
	spool_end(NULL);
}
