/* The tar streams of --copy-in and --copy-out (rootfs/agent/tarcopy.c),
 * both ends on the host: a tree sent and received intact, where a stream
 * lands by the destination (docker cp's rules), and hostile streams made
 * here with libarchive that must not write outside the destination. */
#include <archive.h>
#include <archive_entry.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/tarcopy.h"

/* A stream in memory: written by tarcopy_send or libarchive, read back in
 * small pieces. */
struct mem {
	char *buf;
	size_t len, cap, off;
};

static int mem_write(void *ctx, const void *buf, size_t len, char *msg, size_t msglen)
{
	struct mem *m = ctx;

	(void)msg;
	(void)msglen;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->buf = realloc(m->buf, m->cap);
		cr_assert_not_null(m->buf);
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

static ssize_t mem_read(void *ctx, const void **buf, char *msg, size_t msglen)
{
	struct mem *m = ctx;
	size_t n = m->len - m->off < 777 ? m->len - m->off : 777;

	(void)msg;
	(void)msglen;
	*buf = m->buf + m->off;
	m->off += n;
	return (ssize_t)n;
}

static char root[64];

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/flint-unit-copy-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	umask(022);
}

static void remove_root(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

static const char *at(const char *rel)
{
	static char p[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", root, rel);
	return p[i];
}

static void put_file(const char *rel, const char *text, mode_t mode)
{
	int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", rel, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(chmod(at(rel), mode), 0);
}

static char *read_text(const char *rel)
{
	static char buf[256];
	int fd = open(at(rel), O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static bool exists(const char *rel)
{
	struct stat st;

	return lstat(at(rel), &st) == 0;
}

static int send_to(struct mem *m, const char *rel)
{
	struct tarcopy_io io = {.write = mem_write, .ctx = m};
	char err[256];
	int r = tarcopy_send(at(rel), &io, NULL, err, sizeof(err));

	cr_assert_eq(r, 0, "send %s: %s", rel, err);
	return r;
}

static int receive(struct mem *m, const char *dest, unsigned flags, char *err, size_t errlen)
{
	struct tarcopy_io io = {.read = mem_read, .ctx = m};

	m->off = 0;
	return tarcopy_receive(dest, flags, NULL, &io, err, errlen);
}

/* src/: a file 0640, an executable 0751, an empty directory 0700, a
 * symlink (relative) and one absolute. */
static void make_tree(void)
{
	cr_assert_eq(mkdir(at("src"), 0755), 0);
	cr_assert_eq(mkdir(at("src/sub"), 0750), 0);
	cr_assert_eq(mkdir(at("src/empty"), 0700), 0);
	cr_assert_eq(chmod(at("src/empty"), 0700), 0);
	put_file("src/a.txt", "alpha\n", 0640);
	put_file("src/sub/run.sh", "#!/bin/sh\n", 0751);
	cr_assert_eq(symlink("sub/run.sh", at("src/link")), 0);
	cr_assert_eq(symlink("/etc/hostname", at("src/abs")), 0);
}

static mode_t mode_of(const char *rel)
{
	struct stat st;

	cr_assert_eq(lstat(at(rel), &st), 0, "%s missing", rel);
	return st.st_mode;
}

TestSuite(tarcopy, .init = make_root, .fini = remove_root);

/* make_tree's tree arrived whole at dir (beneath the root). */
static void check_tree(const char *dir)
{
	char rel[128], link[64];
	ssize_t n;

#define AT(name) (snprintf(rel, sizeof(rel), "%s/%s", dir, name), rel)
	cr_assert_str_eq(read_text(AT("a.txt")), "alpha\n");
	cr_assert_eq(mode_of(AT("a.txt")) & 07777, 0640);
	cr_assert_eq(mode_of(AT("sub/run.sh")) & 07777, 0751);
	cr_assert_eq(mode_of(AT("sub")) & 07777, 0750);
	cr_assert(S_ISDIR(mode_of(AT("empty"))));
	cr_assert_eq(mode_of(AT("empty")) & 07777, 0700);
	cr_assert(S_ISLNK(mode_of(AT("link"))));
	n = readlink(at(AT("link")), link, sizeof(link) - 1);
	cr_assert_gt(n, 0);
	link[n] = '\0';
	cr_assert_str_eq(link, "sub/run.sh");
	n = readlink(at(AT("abs")), link, sizeof(link) - 1);
	cr_assert_gt(n, 0);
	link[n] = '\0';
	cr_assert_str_eq(link, "/etc/hostname");
#undef AT
}

Test(tarcopy, tree_round_trip_keeps_modes_symlinks_empty_dirs)
{
	struct mem m = {0};
	char err[256];

	make_tree();
	send_to(&m, "src");
	/* Missing destination: the tree becomes it. */
	cr_assert_eq(receive(&m, at("dst"), TARCOPY_KEEP_ALL, err, sizeof(err)), 0, "%s", err);
	check_tree("dst");
	free(m.buf);
}

/* The guest agent's copy-in before any command (TARCOPY_SOLE_WRITER): a new
 * top gets the same tree, its links made last; into a directory already
 * there, in it under a new name, too. */
Test(tarcopy, a_sole_writers_copy_keeps_the_tree)
{
	struct mem m = {0};
	char err[256];

	make_tree();
	send_to(&m, "src");
	cr_assert_eq(
	    receive(&m, at("dst"), TARCOPY_KEEP_ALL | TARCOPY_SOLE_WRITER, err, sizeof(err)), 0,
	    "%s", err);
	check_tree("dst");
	cr_assert_eq(mkdir(at("into"), 0755), 0);
	cr_assert_eq(receive(&m, at("into"), TARCOPY_SOLE_WRITER, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("into/src/a.txt"), "alpha\n");
	cr_assert(S_ISLNK(mode_of("into/src/link")));
	/* DIR/. into a directory the copy makes. */
	cr_assert_eq(receive(&m, at("flat"),
			     TARCOPY_KEEP_ALL | TARCOPY_CONTENTS | TARCOPY_SOLE_WRITER, err,
			     sizeof(err)),
		     0, "%s", err);
	check_tree("flat");
	free(m.buf);
}

Test(tarcopy, where_it_lands)
{
	struct mem m = {0}, f = {0};
	char err[256];

	make_tree();
	send_to(&m, "src");
	/* An existing directory: inside it, under the source's name. */
	cr_assert_eq(mkdir(at("into"), 0755), 0);
	cr_assert_eq(receive(&m, at("into"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("into/src/a.txt"), "alpha\n");
	/* DIR/. into an existing directory: the contents. */
	cr_assert_eq(mkdir(at("merge"), 0755), 0);
	cr_assert_eq(receive(&m, at("merge"), TARCOPY_CONTENTS, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("merge/a.txt"), "alpha\n");
	cr_assert(!exists("merge/src"));
	/* Missing parents are made (mkdir -p). */
	cr_assert_eq(receive(&m, at("deep/er/dst"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("deep/er/dst/sub/run.sh"), "#!/bin/sh\n");
	/* A directory over a file: refused, the file untouched. */
	put_file("plain", "keep\n", 0644);
	cr_assert_eq(receive(&m, at("plain"), 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "over a file"), "%s", err);
	cr_assert_str_eq(read_text("plain"), "keep\n");

	send_to(&f, "src/a.txt");
	/* A file: onto a file (replaced), into a directory, to a new name, and
	 * with a trailing '/' into a directory made for it. */
	cr_assert_eq(receive(&f, at("plain"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("plain"), "alpha\n");
	cr_assert_eq(receive(&f, at("into"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("into/a.txt"), "alpha\n");
	cr_assert_eq(receive(&f, at("renamed.txt"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("renamed.txt"), "alpha\n");
	char slash[300];
	snprintf(slash, sizeof(slash), "%s/", at("newdir"));
	cr_assert_eq(receive(&f, slash, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("newdir/a.txt"), "alpha\n");
	/* A trailing '/' on a file, and DIR/. of a file: refused. */
	snprintf(slash, sizeof(slash), "%s/", at("plain"));
	cr_assert_eq(receive(&f, slash, 0, err, sizeof(err)), -1);
	cr_assert_eq(receive(&f, at("into"), TARCOPY_CONTENTS, err, sizeof(err)), -1);
	free(m.buf);
	free(f.buf);
}

Test(tarcopy, sender_refuses_root_and_missing)
{
	struct mem m = {0};
	struct tarcopy_io io = {.write = mem_write, .ctx = &m};
	char err[256];

	cr_assert_eq(tarcopy_send("/", &io, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not / itself"), "%s", err);
	cr_assert_eq(tarcopy_send(at("nothing"), &io, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "No such file"), "%s", err);
	free(m.buf);
}

/* ---- hostile streams ---- */

enum kind { REG, DIR_, SYMLINK, HARDLINK, FIFO };

struct ent {
	enum kind k;
	const char *name;
	const char *target; /* symlink or hard link */
	const char *data;
	mode_t perm; /* 0: 0644, a directory's 0755 */
};

#define D(n)                                                                                       \
	{                                                                                          \
		.k = DIR_, .name = n                                                               \
	}
#define DM(n, mode)                                                                                \
	{                                                                                          \
		.k = DIR_, .name = n, .perm = mode                                                 \
	}
#define F(n, d)                                                                                    \
	{                                                                                          \
		.k = REG, .name = n, .data = d                                                     \
	}
#define FM(n, d, mode)                                                                             \
	{                                                                                          \
		.k = REG, .name = n, .data = d, .perm = mode                                       \
	}
#define L(n, t)                                                                                    \
	{                                                                                          \
		.k = SYMLINK, .name = n, .target = t                                               \
	}
#define H(n, t, d)                                                                                 \
	{                                                                                          \
		.k = HARDLINK, .name = n, .target = t, .data = d                                   \
	}
#define P(n)                                                                                       \
	{                                                                                          \
		.k = FIFO, .name = n                                                               \
	}

/* A pax stream of ents, made with libarchive as a hostile agent could. */
static void build(struct mem *m, const struct ent *e, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	size_t used = 0;

	m->cap = 1 << 20;
	m->buf = malloc(m->cap);
	m->len = m->off = 0;
	cr_assert_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	cr_assert_eq(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	cr_assert_eq(archive_write_open_memory(a, m->buf, m->cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_perm(ae, 0644);
		switch (e[i].k) {
		case REG:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, e[i].data ? (la_int64_t)strlen(e[i].data) : 0);
			break;
		case DIR_:
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
			break;
		case SYMLINK:
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].target);
			break;
		case HARDLINK:
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].target);
			archive_entry_set_size(ae, e[i].data ? (la_int64_t)strlen(e[i].data) : 0);
			break;
		case FIFO:
			archive_entry_set_filetype(ae, AE_IFIFO);
			break;
		}
		if (e[i].perm)
			archive_entry_set_perm(ae, e[i].perm);
		cr_assert_geq(archive_write_header(a, ae), ARCHIVE_WARN, "%s",
			      archive_error_string(a));
		if (e[i].data)
			archive_write_data(a, e[i].data, strlen(e[i].data));
	}
	cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(ae);
	m->len = used;
}

/* The stream is refused with needle in the message. */
static void refused(const struct ent *e, size_t n, const char *needle)
{
	struct mem m;
	char err[512] = "";

	build(&m, e, n);
	cr_assert_eq(receive(&m, at("dst"), TARCOPY_KEEP_ALL, err, sizeof(err)), -1,
		     "a hostile stream was taken (first entry %s)", e[0].name);
	cr_assert(strstr(err, needle), "'%s' lacks '%s'", err, needle);
	free(m.buf);
}

Test(tarcopy, dotdot_and_absolute_names_refused)
{
	put_file("victim", "safe\n", 0644);
	refused((struct ent[]){D("t/"), F("t/../../victim", "owned\n")}, 2, "outside 't'");
	refused((struct ent[]){D("t/"), F("t/a/../../../victim", "owned\n")}, 2, "outside 't'");
	char abs[300];
	snprintf(abs, sizeof(abs), "%s", at("victim"));
	refused((struct ent[]){D("t/"), F(abs, "owned\n")}, 2, "outside 't'");
	refused((struct ent[]){F(abs, "owned\n")}, 1, "is not one name");
	refused((struct ent[]){F("../victim", "owned\n")}, 1, "is not one name");
	refused((struct ent[]){D("t/"), F("u/x", "x")}, 2, "outside 't'");
	refused((struct ent[]){F("t", "x"), F("t/x", "x")}, 2, "not a directory");
	cr_assert_str_eq(read_text("victim"), "safe\n");
}

Test(tarcopy, nothing_written_through_a_planted_symlink)
{
	char out[300];

	cr_assert_eq(mkdir(at("outside"), 0755), 0);
	snprintf(out, sizeof(out), "%s", at("outside"));
	/* t/a -> ROOT/outside (absolute) then t/a/passwd: libarchive's
	 * SECURE_SYMLINKS refuses to go through it. */
	refused((struct ent[]){D("t/"), L("t/a", out), F("t/a/passwd", "x")}, 3, "");
	cr_assert(!exists("outside/passwd"), "written through a symlink");
	/* The same through a relative one. */
	refused((struct ent[]){D("t/"), L("t/b", "../outside"), F("t/b/passwd", "x")}, 3, "");
	cr_assert(!exists("outside/passwd"), "written through a symlink");
	/* A symlink as the file's own name is replaced, not followed. */
	put_file("outside/target", "safe\n", 0644);
	snprintf(out, sizeof(out), "%s", at("outside/target"));
	struct mem m;
	char err[256];
	build(&m, (struct ent[]){D("t/"), L("t/f", out), F("t/f", "new\n")}, 3);
	cr_assert_eq(receive(&m, at("dst2"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("outside/target"), "safe\n");
	cr_assert_str_eq(read_text("dst2/f"), "new\n");
	free(m.buf);
}

/* Without libarchive's symlink check, the order keeps a stream from writing
 * through its own links; a top that was there already keeps the check,
 * since what is in it may be a link of someone else's. */
Test(tarcopy, a_sole_writer_writes_through_no_link)
{
	char out[300], err[512];
	struct mem m;

	cr_assert_eq(mkdir(at("outside"), 0755), 0);
	snprintf(out, sizeof(out), "%s", at("outside"));
	build(&m, (struct ent[]){D("t/"), L("t/a", out), F("t/a/passwd", "x")}, 3);
	cr_assert_eq(
	    receive(&m, at("dst"), TARCOPY_KEEP_ALL | TARCOPY_SOLE_WRITER, err, sizeof(err)), -1,
	    "a link over a directory of the stream was taken");
	cr_assert(strstr(err, "in place of the directory"), "%s", err);
	cr_assert(!exists("outside/passwd"), "written through the stream's own symlink");
	free(m.buf);

	cr_assert_eq(mkdir(at("pre"), 0755), 0);
	cr_assert_eq(mkdir(at("pre/t"), 0755), 0);
	cr_assert_eq(symlink(out, at("pre/t/a")), 0);
	build(&m, (struct ent[]){D("t/"), F("t/a/passwd", "x")}, 2);
	cr_assert_eq(
	    receive(&m, at("pre"), TARCOPY_KEEP_ALL | TARCOPY_SOLE_WRITER, err, sizeof(err)), -1,
	    "written through a link in a top already there");
	cr_assert(!exists("outside/passwd"), "written through a symlink already there");
	/* DIR/. into a directory already there: the same. */
	cr_assert_eq(
	    receive(&m, at("pre/t"), TARCOPY_CONTENTS | TARCOPY_SOLE_WRITER, err, sizeof(err)), -1,
	    "DIR/. written through a link in a directory already there");
	cr_assert(!exists("outside/passwd"), "written through a symlink already there");
	free(m.buf);
}

/* TARCOPY_DEST_NO_LINKS (the agent's copy-in once a command has run): no
 * symlink in the destination's path that someone else could have put there
 * (here: in a directory anyone may write) is followed, whether it names the
 * destination, a directory on the way or one a missing path is made
 * through; nothing lands where one leads. Without it they are followed. */
Test(tarcopy, a_destination_through_a_link_is_refused)
{
	struct mem m = {0};
	char err[512], dest[300];

	make_tree();
	send_to(&m, "src");
	cr_assert_eq(mkdir(at("target"), 0755), 0);
	cr_assert_eq(mkdir(at("w"), 0755), 0);
	cr_assert_eq(chmod(at("w"), 0777), 0);
	cr_assert_eq(symlink(at("target"), at("w/bin")), 0);
	const char *through[] = {"w/bin", "w/bin/", "w/bin/new", "w/bin/new/deeper/x"};

	for (size_t i = 0; i < sizeof(through) / sizeof(through[0]); i++) {
		snprintf(dest, sizeof(dest), "%s", at(through[i]));
		err[0] = '\0';
		cr_assert_eq(receive(&m, dest, TARCOPY_DEST_NO_LINKS, err, sizeof(err)), -1,
			     "%s: taken through a symlink", through[i]);
		cr_assert(strstr(err, "a symlink on the way"), "%s: %s", through[i], err);
		cr_assert(!exists("target/src") && !exists("target/new") && !exists("target/a.txt"),
			  "%s: something landed through the link", through[i]);
	}
	/* A real path still works, missing directories made. */
	cr_assert_eq(receive(&m, at("w/real/dst"), TARCOPY_DEST_NO_LINKS, err, sizeof(err)), 0,
		     "%s", err);
	check_tree("w/real/dst");
	/* Without the flag the link is followed. */
	cr_assert_eq(receive(&m, at("w/bin"), 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("target/src/a.txt"), "alpha\n");
	free(m.buf);
}

/* TARCOPY_DEST_NO_LINKS follows a symlink only the receiver's user (or
 * root) can have made or changed: its own, in a directory of its own that
 * nobody else may write (a merged /usr's /bin -> usr/bin), relative,
 * absolute, with "..", one through another; a link of that kind that
 * leads to one anybody could have made is refused there, and so are one of
 * its own in a sticky directory (another user could have hard-linked it
 * there), a loop, and a last part that leads to no directory (a file
 * copied there replaces the link before any command, and must not write
 * what it names after one). */
Test(tarcopy, a_destination_through_a_trusted_link_is_followed)
{
	struct mem m = {0};
	char err[512], dest[300];
	const struct {
		const char *dest, *landed;
	} ok[] = {
	    {"w/bin/new", "target/new/a.txt"},	  /* absolute */
	    {"w/bin", "target/src/a.txt"},	  /* the destination itself */
	    {"w/up/up2", "target/up2/a.txt"},	  /* ../target */
	    {"w/chain/c/", "target/c/src/a.txt"}, /* chain -> bin -> target */
	};

	make_tree();
	send_to(&m, "src");
	cr_assert_eq(mkdir(at("target"), 0755), 0);
	cr_assert_eq(mkdir(at("w"), 0755), 0);
	cr_assert_eq(symlink(at("target"), at("w/bin")), 0);
	cr_assert_eq(symlink("../target", at("w/up")), 0);
	cr_assert_eq(symlink("bin", at("w/chain")), 0);
	cr_assert_eq(mkdir(at("tmp"), 0755), 0);
	cr_assert_eq(chmod(at("tmp"), 01777), 0);
	cr_assert_eq(symlink(at("target"), at("tmp/ours")), 0);
	cr_assert_eq(symlink(at("tmp/ours"), at("w/sticky")), 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(dest, sizeof(dest), "%s", at(ok[i].dest));
		cr_assert_eq(receive(&m, dest, TARCOPY_DEST_NO_LINKS, err, sizeof(err)), 0,
			     "%s: %s", ok[i].dest, err);
		cr_assert_str_eq(read_text(ok[i].landed), "alpha\n", "%s", ok[i].dest);
	}
	/* A trusted link to a directory anyone may write, and there a link
	 * anyone could have made: refused, naming it. */
	cr_assert_eq(mkdir(at("pub"), 0755), 0);
	cr_assert_eq(chmod(at("pub"), 0777), 0);
	cr_assert_eq(symlink(at("target"), at("pub/l")), 0);
	cr_assert_eq(symlink(at("pub"), at("w/pub")), 0);
	snprintf(dest, sizeof(dest), "%s", at("w/pub/l/z"));
	cr_assert_eq(receive(&m, dest, TARCOPY_DEST_NO_LINKS, err, sizeof(err)), -1,
		     "taken through pub/l");
	cr_assert(strstr(err, "/pub/l: a symlink on the way"), "%s", err);
	cr_assert(!exists("target/z"));
	/* Ours, in a sticky directory; a loop; the last part a link to a
	 * file, or to nothing. */
	cr_assert_eq(symlink("loop", at("w/loop")), 0);
	put_file("target/file", "old\n", 0644);
	cr_assert_eq(symlink(at("target/file"), at("w/to-file")), 0);
	cr_assert_eq(symlink(at("target/none"), at("w/to-none")), 0);
	const char *refused[] = {"w/sticky/s", "w/loop/x", "w/to-file", "w/to-none"};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(dest, sizeof(dest), "%s", at(refused[i]));
		err[0] = '\0';
		cr_assert_eq(receive(&m, dest, TARCOPY_DEST_NO_LINKS, err, sizeof(err)), -1,
			     "%s taken", refused[i]);
		cr_assert(strstr(err, "a symlink on the way"), "%s: %s", refused[i], err);
	}
	cr_assert_str_eq(read_text("target/file"), "old\n", "written through w/to-file");
	cr_assert(!exists("target/none"));
	free(m.buf);
}

/* A guest's stream on the host (--copy-out): received as runner/cmd/copy.c
 * does, its top asked for and its links held inside. */
static int receive_out(struct mem *m, const char *dest, unsigned flags, const char *top, char *err,
		       size_t errlen)
{
	struct tarcopy_io io = {.read = mem_read, .ctx = m};

	m->off = 0;
	return tarcopy_receive(dest, flags | TARCOPY_LINKS_INSIDE, top, &io, err, errlen);
}

Test(tarcopy, top_of)
{
	char top[NAME_MAX + 1];

	cr_assert_eq(tarcopy_top_of("/job/out", top), 0);
	cr_assert_str_eq(top, "out");
	cr_assert_eq(tarcopy_top_of("/job/out//", top), 0);
	cr_assert_str_eq(top, "out");
	cr_assert_eq(tarcopy_top_of("/job/out/./.", top), 0);
	cr_assert_str_eq(top, "out");
	cr_assert_eq(tarcopy_top_of("/tmp/f.bin", top), 0);
	cr_assert_str_eq(top, "f.bin");
	cr_assert_eq(tarcopy_top_of("/", top), -1);
	cr_assert_eq(tarcopy_top_of("/.", top), -1);
	cr_assert_eq(tarcopy_top_of("/job/..", top), -1);
	cr_assert_eq(tarcopy_top_of("", top), -1);
}

Test(tarcopy, a_guest_sends_only_what_was_asked)
{
	struct mem m;
	char err[512] = "";

	/* Asked for /job/out into ws/: a guest sends .git instead. */
	cr_assert_eq(mkdir(at("ws"), 0755), 0);
	build(&m, (struct ent[]){D(".git/"), D(".git/hooks/"), F(".git/hooks/post-checkout", "x")},
	      3);
	cr_assert_eq(receive_out(&m, at("ws"), 0, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "'.git', not of 'out'"), "%s", err);
	cr_assert(!exists("ws/.git"), "the guest's .git landed");
	free(m.buf);
	/* What was asked for lands. */
	build(&m, (struct ent[]){D("out/"), F("out/a", "alpha")}, 2);
	cr_assert_eq(receive_out(&m, at("ws"), 0, "out", err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(read_text("ws/out/a"), "alpha");
	free(m.buf);
}

Test(tarcopy, a_guests_links_that_lead_out_are_removed)
{
	struct mem m;
	char err[512] = "";

	put_file("victim", "safe\n", 0644);
	build(&m,
	      (struct ent[]){D("out/"), F("out/a", "alpha"), D("out/sub/"), L("out/in", "a"),
			     L("out/sub/up", "../a"), L("out/climb", "../victim"),
			     L("out/dot", "."),
			     /* by its text inside (dot/dot is out); the kernel finds
			      * dot/dot/.. is out's parent */
			     L("out/trick", "dot/dot/../victim"), L("out/dangle", "none/here"),
			     L("out/dangle_out", "none/../../victim"),
			     /* leading nowhere yet, with "..": by its text
			      * inside, but dot/dot/... is out itself, so once
			      * later/ is made (say by the next copy-out into the
			      * same place) it is out's parent's victim */
			     L("out/sneak", "dot/dot/dot/later/../../victim"),
			     L("out/dangle_up", "none/../a")},
	      12);
	cr_assert_eq(receive_out(&m, at("dst"), 0, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/climb': a symlink to '../victim', which leads "
			      "outside what was copied (not made, nor the others that do)"),
		  "%s", err);
	cr_assert_str_eq(read_text("dst/a"), "alpha");
	cr_assert(exists("dst/in") && exists("dst/sub/up") && exists("dst/dot") &&
		  exists("dst/dangle"));
	cr_assert(!exists("dst/climb") && !exists("dst/trick") && !exists("dst/dangle_out") &&
		      !exists("dst/sneak") && !exists("dst/dangle_up"),
		  "a link leading out, or nowhere with '..', was kept");
	cr_assert_str_eq(read_text("victim"), "safe\n");
	free(m.buf);

	/* An absolute one is never made; the rest of the stream is. */
	build(&m,
	      (struct ent[]){D("out/"), L("out/in", "a"), L("out/abs", "/etc/hostname"),
			     F("out/after", "x")},
	      4);
	cr_assert_eq(receive_out(&m, at("abs"), 0, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/abs': a symlink to '/etc/hostname', which leads "
			      "outside what was copied (not made)"),
		  "%s", err);
	cr_assert(!exists("abs/abs") && exists("abs/in") && exists("abs/after"));
	free(m.buf);

	/* A link on its own is held inside the directory it lands in. */
	cr_assert_eq(mkdir(at("res"), 0755), 0);
	build(&m, (struct ent[]){L("link", "../victim")}, 1);
	cr_assert_eq(receive_out(&m, at("res"), 0, "link", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'link': a symlink to '../victim'"), "%s", err);
	cr_assert(!exists("res/link"));
	free(m.buf);
	build(&m, (struct ent[]){L("link", "sibling")}, 1);
	cr_assert_eq(receive_out(&m, at("res"), 0, "link", err, sizeof(err)), 0, "%s", err);
	cr_assert(exists("res/link"));
	free(m.buf);

	/* DIR/.: its contents into an existing directory, held inside it. */
	build(&m, (struct ent[]){D("out/"), L("out/x", "../victim"), L("out/y", "x")}, 3);
	cr_assert_eq(receive_out(&m, at("res"), TARCOPY_CONTENTS, "out", err, sizeof(err)), -1);
	cr_assert(!exists("res/x") && exists("res/y"), "res/x kept or res/y dropped");
	free(m.buf);
}

Test(tarcopy, hard_links_devices_and_huge_names_refused)
{
	char victim[300], longname[6000];

	put_file("victim", "safe\n", 0644);
	snprintf(victim, sizeof(victim), "%s", at("victim"));
	refused((struct ent[]){D("t/"), H("t/h", victim, "owned\n")}, 2, "a hard link");
	refused((struct ent[]){D("t/"), H("t/h", "../victim", "owned\n")}, 2, "a hard link");
	refused((struct ent[]){D("t/"), F("t/x", "x"), H("t/h", "t/x", NULL)}, 3, "a hard link");
	cr_assert_str_eq(read_text("victim"), "safe\n");
	refused((struct ent[]){D("t/"), P("t/p")}, 2, "not a file, directory or symlink");
	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "t/", 2);
	longname[sizeof(longname) - 1] = '\0';
	refused((struct ent[]){D("t/"), F(longname, "x")}, 2, "too long");
}

Test(tarcopy, garbage_and_empty_streams_refused)
{
	struct mem m = {.buf = strdup("this is not a tar archive at all"), .len = 32};
	char err[256];

	cr_assert_eq(receive(&m, at("dst"), 0, err, sizeof(err)), -1);
	cr_assert(!exists("dst"));
	free(m.buf);
	m = (struct mem){0};
	cr_assert_eq(receive(&m, at("dst"), 0, err, sizeof(err)), -1);
	cr_assert(!exists("dst"));
}

Test(tarcopy, map_name)
{
	char out[64];

	cr_assert_eq(tarcopy_map_name("t", "t", "n", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "n");
	cr_assert_eq(tarcopy_map_name("t/", "t", "n", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "n");
	cr_assert_eq(tarcopy_map_name("t/a/b", "t", "n", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "n/a/b");
	cr_assert_eq(tarcopy_map_name("t/a/b/", "t", NULL, out, sizeof(out)), 1);
	cr_assert_str_eq(out, "a/b");
	cr_assert_eq(tarcopy_map_name("t", "t", NULL, out, sizeof(out)), 0);
	cr_assert_eq(tarcopy_map_name("tt/a", "t", "n", out, sizeof(out)), -1);
	cr_assert_eq(tarcopy_map_name("t/../a", "t", "n", out, sizeof(out)), -1);
	cr_assert_eq(tarcopy_map_name("t/./a", "t", "n", out, sizeof(out)), -1);
	cr_assert_eq(tarcopy_map_name("t//a", "t", "n", out, sizeof(out)), -1);
	cr_assert_eq(tarcopy_map_name("/t/a", "t", "n", out, sizeof(out)), -1);
	cr_assert_eq(tarcopy_map_name("t/a", "t", "a-very-long-new-name-for-it", out, 8), -1);
}

/* A stream made as it is read: n symlinks out/lNNNNNN, each to a target of
 * TARCOPY_NAME_MAX - 1 bytes (leading nowhere, inside by its text): more
 * names than a host should hold in memory for a guest. */
struct gen {
	struct archive *a;
	struct archive_entry *ae;
	struct mem m;
	unsigned i, n;
	char target[TARCOPY_NAME_MAX];
	bool closed;
};

static la_ssize_t gen_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	(void)a;
	mem_write(ctx, buf, len, NULL, 0);
	return (la_ssize_t)len;
}

static ssize_t gen_read(void *ctx, const void **buf, char *msg, size_t msglen)
{
	struct gen *g = ctx;
	char name[64];

	(void)msg;
	(void)msglen;
	g->m.len = g->m.off = 0;
	while (!g->m.len && !g->closed) {
		archive_entry_clear(g->ae);
		if (g->i == 0) {
			archive_entry_set_pathname(g->ae, "out/");
			archive_entry_set_filetype(g->ae, AE_IFDIR);
			archive_entry_set_perm(g->ae, 0755);
		} else if (g->i <= g->n) {
			snprintf(name, sizeof(name), "out/l%06u", g->i);
			archive_entry_set_pathname(g->ae, name);
			archive_entry_set_filetype(g->ae, AE_IFLNK);
			archive_entry_set_perm(g->ae, 0777);
			archive_entry_set_symlink(g->ae, g->target);
		} else {
			cr_assert_eq(archive_write_close(g->a), ARCHIVE_OK);
			g->closed = true;
			break;
		}
		g->i++;
		cr_assert_geq(archive_write_header(g->a, g->ae), ARCHIVE_WARN);
	}
	*buf = g->m.buf;
	return (ssize_t)g->m.len;
}

Test(tarcopy, a_guests_names_are_bounded_together)
{
	struct gen *g = calloc(1, sizeof(*g));
	struct tarcopy_io io = {.read = gen_read, .ctx = g};
	char err[512] = "";

	cr_assert_not_null(g);
	memset(g->target, 'x', sizeof(g->target) - 1);
	/* Each link's target and name, past TARCOPY_NAMES_MAX together (and
	 * each of them kept in memory three times over, name, name as sent
	 * and target, for TARCOPY_LINKS_INSIDE's check at the end). */
	g->n = (unsigned)(TARCOPY_NAMES_MAX / (TARCOPY_NAME_MAX - 1)) + 1;
	g->a = archive_write_new();
	g->ae = archive_entry_new();
	cr_assert_eq(archive_write_set_format_pax_restricted(g->a), ARCHIVE_OK);
	cr_assert_eq(archive_write_set_bytes_per_block(g->a, 0), ARCHIVE_OK);
	cr_assert_eq(archive_write_open(g->a, &g->m, NULL, gen_cb, NULL), ARCHIVE_OK);
	cr_assert_eq(tarcopy_receive(at("dst"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)),
		     -1, "%u links of %u-byte targets were all taken", g->n, TARCOPY_NAME_MAX - 1);
	cr_assert(strstr(err, "MiB of names and link targets"), "%s", err);
	archive_write_free(g->a);
	archive_entry_free(g->ae);
	free(g->m.buf);
	free(g);
}

/* A stream whose writer stops taking bytes at stop: the archive cut short
 * after it, as a guest can end its stream in the middle of an entry. */
struct cut {
	struct mem m;
	size_t stop;
};

static la_ssize_t cut_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct cut *c = ctx;

	(void)a;
	if (c->m.len + len > c->stop)
		return -1;
	mem_write(&c->m, buf, len, NULL, 0);
	return (la_ssize_t)len;
}

/* out/ and out/big, whose header says size bytes; sparse: its data one
 * block of 4 bytes at the start (the rest a hole), else the stream cut 512
 * bytes into its data. */
static void big_entry_in(struct mem *m, la_int64_t size, bool sparse, mode_t dir_mode);

static void big_entry(struct mem *m, la_int64_t size, bool sparse)
{
	big_entry_in(m, size, sparse, 0755);
}

/* The same with out/ of dir_mode. */
static void big_entry_in(struct mem *m, la_int64_t size, bool sparse, mode_t dir_mode)
{
	struct cut c = {.stop = SIZE_MAX};
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	char block[512] = "data";

	cr_assert_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
	cr_assert_eq(archive_write_set_bytes_per_block(a, 0), ARCHIVE_OK);
	cr_assert_eq(archive_write_open(a, &c, NULL, cut_cb, NULL), ARCHIVE_OK);
	archive_entry_set_pathname(ae, "out/");
	archive_entry_set_filetype(ae, AE_IFDIR);
	archive_entry_set_perm(ae, dir_mode);
	cr_assert_eq(archive_write_header(a, ae), ARCHIVE_OK);
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, "out/big");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, size);
	if (sparse)
		archive_entry_sparse_add_entry(ae, 0, 4);
	cr_assert_eq(archive_write_header(a, ae), ARCHIVE_OK, "%s", archive_error_string(a));
	if (sparse) {
		cr_assert_eq(archive_write_data(a, block, 4), 4);
		cr_assert_eq(archive_write_close(a), ARCHIVE_OK);
	} else {
		cr_assert_eq(archive_write_data(a, block, sizeof(block)),
			     (la_ssize_t)sizeof(block));
		c.stop = c.m.len; /* the padding to size is refused */
	}
	archive_write_free(a);
	archive_entry_free(ae);
	*m = c.m;
	m->off = 0;
}

Test(tarcopy, a_files_declared_size_counts_against_the_room)
{
	struct mem m;
	char err[512] = "";
	uint64_t room = 64 << 10;
	struct tarcopy_io io = {.read = mem_read, .ctx = &m, .room = &room, .room_name = "ROOM"};
	struct stat st;

	/* A 1 GiB file of 4 bytes and a hole: its size is what lands. */
	big_entry(&m, 1 << 30, true);
	cr_assert_eq(
	    tarcopy_receive(at("sparse"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), -1,
	    "a 1 GiB file was taken within 64 KiB of room");
	cr_assert(strstr(err, "more file data than ROOM allows"), "%s", err);
	cr_assert(lstat(at("sparse/big"), &st) < 0 || st.st_size <= 64 << 10,
		  "a file of %lld bytes landed", (long long)st.st_size);
	free(m.buf);

	/* Its stream cut short: what landed is not made as long as it said. */
	room = 64 << 10;
	big_entry(&m, 1 << 30, false);
	cr_assert_eq(tarcopy_receive(at("cut"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)),
		     -1);
	cr_assert(lstat(at("cut/big"), &st) < 0 || st.st_size <= 64 << 10,
		  "a file of %lld bytes landed", (long long)st.st_size);
	free(m.buf);
}

/* A link may lead only to what the copy wrote (found by an audit): in a
 * workspace holding a checkout's .git/config (a token), a job's artefact
 * sent as a link to it, within the landing directory, would have an
 * upload step that follows links take the token. A directory the stream
 * merged into counts only if it holds nothing else. */
Test(tarcopy, a_link_leads_only_to_what_the_copy_wrote)
{
	struct mem m;
	char err[512] = "";

	cr_assert_eq(mkdir(at("ws"), 0755), 0);
	cr_assert_eq(mkdir(at("ws/.git"), 0755), 0);
	put_file("ws/.git/config", "token\n", 0600);

	build(&m, (struct ent[]){L("report.html", ".git/config")}, 1);
	cr_assert_eq(receive_out(&m, at("ws"), 0, "report.html", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'report.html': a symlink to '.git/config', which leads "
			      "outside what was copied (removed)"),
		  "%s", err);
	cr_assert_not(exists("ws/report.html"));
	free(m.buf);

	/* The contents of out into ws: .git sent as a directory too. */
	build(&m, (struct ent[]){D("out/"), D("out/.git/"), L("out/g", ".git"), L("out/r", ".")},
	      4);
	cr_assert_eq(receive_out(&m, at("ws"), TARCOPY_CONTENTS, "out", err, sizeof(err)), -1);
	cr_assert_not(exists("ws/g"), "a link to .git, which holds what was not copied");
	cr_assert_not(exists("ws/r"), "a link to the workspace");
	free(m.buf);

	/* What the copy wrote, and a directory it merged into holding only
	 * that, may be linked to. */
	cr_assert_eq(mkdir(at("ws/dist"), 0755), 0);
	build(&m,
	      (struct ent[]){D("out/"), D("out/dist/"), F("out/dist/app", "built"),
			     L("out/latest", "dist/app"), L("out/d", "dist")},
	      5);
	cr_assert_eq(receive_out(&m, at("ws"), TARCOPY_CONTENTS, "out", err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_str_eq(read_text("ws/latest"), "built");
	cr_assert_str_eq(read_text("ws/d/app"), "built");
	cr_assert_str_eq(read_text("ws/.git/config"), "token\n");
	free(m.buf);

	/* DIR/. into an empty directory already there, twice: a link to it
	 * (up -> .., cur -> .) is to the copy's. */
	cr_assert_eq(mkdir(at("empty"), 0755), 0);
	build(&m,
	      (struct ent[]){D("out/"), D("out/lib/"), F("out/lib/a", "a"), L("out/lib/up", ".."),
			     L("out/cur", ".")},
	      5);
	for (int run = 0; run < 2; run++)
		cr_assert_eq(
		    receive_out(&m, at("empty"), TARCOPY_CONTENTS, "out", err, sizeof(err)), 0,
		    "run %d: %s", run, err);
	cr_assert_str_eq(read_text("empty/cur/lib/up/lib/a"), "a");
	free(m.buf);
}

/* A file whose stream breaks within its data does not land: closing the
 * extraction would make it as long as its header says, zeros after what
 * came, with the sender's mode and time, looking whole where the user's
 * earlier file of that name was. */
Test(tarcopy, a_file_cut_short_does_not_land)
{
	struct mem m;
	char err[512] = "";
	struct tarcopy_io io = {.read = mem_read, .ctx = &m};
	struct stat st;

	cr_assert_eq(mkdir(at("have"), 0755), 0);
	cr_assert_eq(mkdir(at("have/out"), 0755), 0);
	put_file("have/out/big", "the earlier one\n", 0644);
	big_entry(&m, 1 << 20, false);
	cr_assert_eq(
	    tarcopy_receive(at("have"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), -1);
	cr_assert(lstat(at("have/out/big"), &st) < 0,
		  "a file of %lld bytes (%lld of them sent) landed", (long long)st.st_size, 512LL);
	free(m.buf);

	/* In a directory the stream makes read-only, which the close does
	 * (as a user, who cannot then remove it: nobody, when root). */
	big_entry_in(&m, 1 << 20, false, 0555);
	cr_assert_eq(mkdir(at("nb"), 0755), 0);
	if (geteuid() == 0)
		cr_assert(chmod(root, 0755) == 0 && chown(at("nb"), 65534, 65534) == 0);
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		_exit(tarcopy_receive(at("nb/got"), TARCOPY_LINKS_INSIDE, "out", &io, err,
				      sizeof(err)) == -1
			  ? 0
			  : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cr_assert(lstat(at("nb/got/big"), &st) < 0, "a file of %lld bytes landed",
		  (long long)st.st_size);
	cr_assert_eq(mode_of("nb/got") & 07777, 0555);
	free(m.buf);
}

/* The top directory sent again as a symlink: libarchive replaces the empty
 * directory with it, and the links check, which opens the copy's root,
 * never got to remove it. */
Test(tarcopy, the_top_is_not_replaced_by_a_link)
{
	struct mem m;
	struct stat st;
	char err[512] = "";

	cr_assert_eq(mkdir(at("into"), 0755), 0);
	build(&m, (struct ent[]){D("out/"), L("out", "..")}, 2);
	cr_assert_eq(receive_out(&m, at("into"), 0, "out", err, sizeof(err)), -1);
	cr_assert(lstat(at("into/out"), &st) < 0 || !S_ISLNK(st.st_mode), "into/out -> .. kept");
	cr_assert(strstr(err, "entry 'out': the top again"), "%s", err);
	free(m.buf);
	build(&m, (struct ent[]){D("out/"), L("out/", "/etc")}, 2);
	cr_assert_eq(receive_out(&m, at("made"), 0, "out", err, sizeof(err)), -1);
	cr_assert(lstat(at("made"), &st) < 0 || !S_ISLNK(st.st_mode), "made -> /etc kept");
	free(m.buf);
}

/* A directory the stream makes read-only cannot keep a link leading out:
 * the links are checked before libarchive gives directories their modes.
 * As a user, where the mode would stop the removal: a child as nobody
 * when the test runs as root. */
Test(tarcopy, a_read_only_directory_keeps_no_link_leading_out)
{
	struct mem m;
	char err[512] = "";
	int status;

	put_file("victim", "safe\n", 0644);
	cr_assert_eq(mkdir(at("ro"), 0755), 0);
	if (geteuid() == 0) {
		cr_assert_eq(chmod(root, 0755), 0); /* for nobody to reach ro */
		cr_assert_eq(chown(at("ro"), 65534, 65534), 0);
	}
	build(&m,
	      (struct ent[]){D("out/"), DM("out/locked/", 0555), L("out/locked/x", "../../victim")},
	      3);
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		int r = receive_out(&m, at("ro"), 0, "out", err, sizeof(err));
		/* The removal named, not a failure to remove. */
		_exit(r == -1 && strstr(err, "entry 'out/locked/x': a symlink to '../../victim', "
					     "which leads outside what was copied (not made)")
			  ? 0
			  : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cr_assert(!exists("ro/out/locked/x"), "the link leading out was kept");
	cr_assert_eq(mode_of("ro/out/locked") & 07777, 0555, "the directory's mode as sent");
	free(m.buf);
}

/* Past the copy's deadline, the links not checked yet are removed
 * unchecked, named as such: following links can take long (each may
 * climb through 40 others), and the deadline must hold. */
static bool always(void *ctx)
{
	(void)ctx;
	return true;
}

Test(tarcopy, links_left_unchecked_at_the_deadline_are_removed)
{
	struct mem m;
	char err[512] = "";
	struct tarcopy_io io = {.read = mem_read, .ctx = &m, .expired = always};

	build(&m, (struct ent[]){D("out/"), F("out/a", "alpha"), L("out/in", "a")}, 3);
	cr_assert_eq(
	    tarcopy_receive(at("late"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), -1);
	cr_assert(strstr(err, "the time for the copy ran out while its symlinks were checked: "
			      "the 1 not checked were removed"),
		  "%s", err);
	cr_assert(!exists("late/in") && exists("late/a"));
	free(m.buf);
}

/* libarchive's messages name what the stream sent: no control byte of it
 * reaches the terminal. */
Test(tarcopy, a_guests_control_bytes_stay_out_of_messages)
{
	struct mem m;
	char err[512] = "";

	build(&m,
	      (struct ent[]){D("out/"), D("out/sub/"), L("out/l", "sub"),
			     F("out/l/\033[2J\007x", "x")},
	      4);
	cr_assert_eq(receive_out(&m, at("esc"), 0, "out", err, sizeof(err)), -1);
	cr_assert(err[0]);
	for (const char *c = err; *c; c++)
		cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f, "byte %#x in '%s'",
			  (unsigned char)*c, err);
	free(m.buf);
}

/* A guest's set-user-ID program lands without the bit, even as root with
 * the owners kept. */
Test(tarcopy, no_set_id_bits_from_a_guest)
{
	struct mem m;
	char err[512] = "";

	if (geteuid() != 0)
		cr_skip_test("not root: set-id bits are dropped for a user anyway");
	build(&m, (struct ent[]){D("out/"), FM("out/su", "x", 06755), FM("out/plain", "x", 0751)},
	      3);
	cr_assert_eq(receive_out(&m, at("kept"), TARCOPY_KEEP_ALL, "out", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(mode_of("kept/su") & 07777, 06755, "KEEP_ALL alone keeps them");
	cr_assert_eq(receive_out(&m, at("safe"), TARCOPY_KEEP_ALL | TARCOPY_NO_SET_ID, "out", err,
				 sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(mode_of("safe/su") & 07777, 0755);
	cr_assert_eq(mode_of("safe/plain") & 07777, 0751);
	free(m.buf);
}

/* A ustar header (name, size, type) with its checksum. */
static void ustar(char h[512], const char *name, uint64_t size, char type)
{
	unsigned sum = 0;

	memset(h, 0, 512);
	snprintf(h, 100, "%s", name);
	snprintf(h + 100, 8, "%07o", 0644);
	snprintf(h + 108, 8, "%07o", 0);
	snprintf(h + 116, 8, "%07o", 0);
	snprintf(h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf(h + 136, 12, "%011o", 0);
	h[156] = type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
}

/* One pax record, "LEN key=value\n", its length counting itself. */
static size_t pax_record(char *out, const char *kv)
{
	size_t n = strlen(kv) + 3; /* ' ', '\n', one digit */

	while ((size_t)snprintf(NULL, 0, "%zu %s\n", n, kv) != n)
		n++;
	return (size_t)sprintf(out, "%zu %s\n", n, kv);
}

/* A GNU sparse 1.0 file whose map, at the start of its data, lists 2e9
 * blocks: libarchive reads the map with the header and holds twelve bytes
 * for each four of it. Cut off at TARCOPY_HEADER_MAX. */
Test(tarcopy, a_sparse_maps_size_is_bounded)
{
	size_t n_pairs = (TARCOPY_HEADER_MAX + (1u << 20)) / 4;
	size_t body = 11 + 4 * n_pairs + 1024, plen = 0;
	char pax[512] = "", err[512] = "";
	struct mem m = {0};

	plen += pax_record(pax + plen, "GNU.sparse.major=1");
	plen += pax_record(pax + plen, "GNU.sparse.minor=0");
	plen += pax_record(pax + plen, "GNU.sparse.name=out");
	plen += pax_record(pax + plen, "GNU.sparse.realsize=0");
	char size_kv[64];
	snprintf(size_kv, sizeof(size_kv), "size=%zu", body);
	plen += pax_record(pax + plen, size_kv);
	m.cap = 2048 + body + 1024;
	cr_assert_not_null(m.buf = calloc(1, m.cap));
	ustar(m.buf, "PaxHeaders/out", plen, 'x');
	memcpy(m.buf + 512, pax, plen);
	ustar(m.buf + 1024, "GNUSparseFile.0/out", 0, '0');
	m.len = 1536;
	m.len += (size_t)sprintf(m.buf + m.len, "2000000000\n");
	for (size_t i = 0; i < n_pairs; i++, m.len += 4)
		memcpy(m.buf + m.len, "0\n0\n", 4);
	cr_assert_eq(receive_out(&m, at("sparse"), 0, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "an entry's header runs past 4 MiB"), "%s", err);
	free(m.buf);
}

/* Two copy-outs into one place: the first keeps x -> d/e/../../f, inside
 * as it stands; the second may not make d/e a link to ".", which would
 * lead x out. A link where a directory is, is refused. */
Test(tarcopy, a_link_may_not_replace_a_directory_already_there)
{
	struct mem m;
	char err[512] = "";

	put_file("f", "host's\n", 0644);
	cr_assert_eq(mkdir(at("dst"), 0755), 0);
	build(&m,
	      (struct ent[]){D("out/"), D("out/d/"), D("out/d/e/"), F("out/f", "copied"),
			     L("out/x", "d/e/../../f")},
	      5);
	cr_assert_eq(receive_out(&m, at("dst"), TARCOPY_CONTENTS, "out", err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_str_eq(read_text("dst/x"), "copied");
	free(m.buf);
	build(&m, (struct ent[]){D("out/"), D("out/d/"), L("out/d/e", ".")}, 3);
	cr_assert_eq(receive_out(&m, at("dst"), TARCOPY_CONTENTS, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/d/e': a symlink in place of the directory already there"),
		  "%s", err);
	cr_assert_eq(mode_of("dst/d/e") & S_IFMT, S_IFDIR);
	cr_assert_str_eq(read_text("dst/x"), "copied");
	free(m.buf);
}

/* A link and then a directory of the same name: the link, made last, finds
 * the directory and is refused; nothing leads out. */
Test(tarcopy, a_link_sent_before_a_directory_of_its_name)
{
	struct mem m;
	char err[512] = "";

	build(&m, (struct ent[]){D("out/"), L("out/x", "d"), D("out/x/")}, 3);
	cr_assert_eq(receive_out(&m, at("rep"), 0, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/x': a symlink in place of the directory already there"),
		  "%s", err);
	cr_assert_eq(mode_of("rep/x") & S_IFMT, S_IFDIR);
	free(m.buf);
}

/* A later copy-out may not change a link an earlier one kept (found by an
 * audit): x -> m/../../f is inside while m -> d1/d2, and leads out once m
 * is "." or a directory; such a stream is refused. The same link again (a
 * job run twice into the same place) is taken. */
Test(tarcopy, an_earlier_copys_link_is_not_replaced)
{
	struct mem m;
	char err[512] = "";

	put_file("victim", "safe\n", 0644);
	cr_assert_eq(mkdir(at("res"), 0755), 0);
	build(&m,
	      (struct ent[]){D("out/"), D("out/d1/"), D("out/d1/d2/"), F("out/f", "copied"),
			     L("out/m", "d1/d2"), L("out/x", "m/../../f")},
	      6);
	cr_assert_eq(receive_out(&m, at("res"), TARCOPY_CONTENTS, "out", err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_str_eq(read_text("res/x"), "copied");
	cr_assert_eq(receive_out(&m, at("res"), TARCOPY_CONTENTS, "out", err, sizeof(err)), 0,
		     "the same links again: %s", err);
	free(m.buf);
	build(&m, (struct ent[]){D("out/"), L("out/m", ".")}, 2);
	cr_assert_eq(receive_out(&m, at("res"), TARCOPY_CONTENTS, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/m': a symlink already there (from before this copy) "
			      "points elsewhere"),
		  "%s", err);
	free(m.buf);
	build(&m, (struct ent[]){D("out/"), D("out/m/")}, 2);
	cr_assert_eq(receive_out(&m, at("res"), TARCOPY_CONTENTS, "out", err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry 'out/m/': a symlink already there (from before this copy)"),
		  "%s", err);
	cr_assert_str_eq(read_text("res/x"), "copied");
	cr_assert_str_eq(read_text("victim"), "safe\n");
	free(m.buf);
}

/* No link is on the host while the guest sends (found by an audit: one
 * leading out was there until the stream ended, and a flint killed
 * meanwhile left it): each read of the stream looks. */
static bool link_seen;

static ssize_t watching_read(void *ctx, const void **buf, char *msg, size_t msglen)
{
	struct mem *m = ctx;
	struct stat st;
	size_t n = m->len - m->off < 512 ? m->len - m->off : 512;

	(void)msg;
	(void)msglen;
	if (lstat(at("watch/l"), &st) == 0)
		link_seen = true;
	*buf = m->buf + m->off;
	m->off += n;
	return (ssize_t)n;
}

Test(tarcopy, no_link_is_made_while_the_stream_comes)
{
	struct mem m;
	char err[512] = "";
	struct tarcopy_io io = {.read = watching_read, .ctx = &m};

	build(&m, (struct ent[]){D("out/"), L("out/l", "a"), F("out/a", "alpha"), D("out/z/")}, 4);
	link_seen = false;
	cr_assert_eq(
	    tarcopy_receive(at("watch"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_not(link_seen, "the link was made while the stream came");
	cr_assert_str_eq(read_text("watch/l"), "alpha");
	free(m.buf);
}

/* Each entry costs the room 4 KiB (found by an audit: empty files and
 * directories cost nothing, and libarchive made every missing parent), and
 * a guest's stream makes no directory it did not send. */
Test(tarcopy, entries_cost_the_room_and_no_directory_comes_unsent)
{
	struct mem m;
	char err[512] = "";
	uint64_t room = 3 * TARCOPY_ENTRY_COST;
	struct tarcopy_io io = {.read = mem_read, .ctx = &m, .room = &room, .room_name = "ROOM"};

	build(&m, (struct ent[]){D("out/"), F("out/a", ""), F("out/b", ""), F("out/c", "")}, 4);
	cr_assert_eq(
	    tarcopy_receive(at("cost"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), -1);
	cr_assert(strstr(err, "c: more file data than ROOM allows"), "%s", err);
	free(m.buf);

	room = 1 << 20;
	m.off = 0;
	build(&m, (struct ent[]){D("out/"), F("out/a/b/c", "x")}, 2);
	cr_assert_eq(
	    tarcopy_receive(at("auto"), TARCOPY_LINKS_INSIDE, "out", &io, err, sizeof(err)), -1);
	cr_assert(!exists("auto/a"), "a directory the stream did not send was made");
	free(m.buf);
}
