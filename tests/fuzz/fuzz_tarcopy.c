/* libFuzzer harness for rootfs/agent/tarcopy.c's receiving end: the fuzzer
 * plays a hostile guest answering `flint run --copy-out`. The input's first
 * three bytes choose where the stream lands (an existing directory, a
 * missing name, one with a trailing '/', an existing file), the flags, the
 * top asked for, the room for file data (small) and the size of the reads;
 * the rest is the tar stream (without TARCOPY_LINKS_INSIDE the second
 * byte's low bit sets TARCOPY_SOLE_WRITER), its headers' checksums mended (see
 * mend_sums) unless the flags say not to. The build sets the name bounds
 * small (mk/fuzz.mk) so streams reach them.
 *
 * Each input is extracted in a fresh box beside a sentinel directory and a
 * victim file. Whatever the stream, after it: nothing appeared beside the
 * box, the sentinel (the working directory) is empty and the victim
 * intact; no descriptor leaked and the working directory is back; the
 * files that landed are no longer together than the room, and without
 * TARCOPY_KEEP_ALL owned by the harness with no set-id bits; and with
 * TARCOPY_LINKS_INSIDE no symlink leads out of the copy (none absolute,
 * and the kernel, following each beneath the copy's root, never finds it
 * climbing out). ASan and LSan see the rest. libarchive itself is not
 * instrumented: the fuzzer is guided by tarcopy.c's branches. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/tarcopy.h"
#include "fuzz.h"

/* The first control byte. */
#define DEST_MASK  3u /* where it lands: enum dest */
#define B_CONTENTS 0x04u
#define B_KEEP_ALL 0x08u
#define B_ANY_TOP  0x10u /* no top asked for */
#define B_NO_LINKS 0x20u /* without TARCOPY_LINKS_INSIDE (no symlink check) */
#define B_NO_ROOM  0x40u /* no bound on file data */
#define B_RAW_SUMS 0x80u /* the headers' checksums as they are */

enum dest { EXISTING_DIR, MISSING, MISSING_SLASH, EXISTING_FILE };

static char parent[PATH_MAX], sentinel[PATH_MAX], victim[PATH_MAX], cwd0[PATH_MAX];
/* The harness's own working directory: libFuzzer's paths are relative to
 * it. */
static int home = -1;

struct feed {
	const uint8_t *p;
	size_t left, chunk;
};

/* A header's size field: octal, or base-256 with the top bit set; -1 for
 * garbage. */
static int64_t tar_size(const uint8_t *h)
{
	const uint8_t *f = h + 124;
	int64_t v = 0;
	int i = 0;

	if (f[0] & 0x80) {
		for (i = 1; i < 12; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | f[i];
		}
		return v;
	}
	while (i < 12 && f[i] == ' ')
		i++;
	for (; i < 12 && f[i] >= '0' && f[i] <= '7'; i++)
		v = v * 8 + (f[i] - '0');
	return i < 12 && f[i] && f[i] != ' ' ? -1 : v;
}

/* Mends the checksum of each header the walk from the start finds (each
 * entry's data skipped by its size field), as a writer would have set it:
 * libarchive drops a header whose sum is wrong, and is not instrumented
 * for the fuzzer to learn the sum from it. Blocks of zeros (the end) stay
 * as they are. */
static void mend_sums(uint8_t *p, size_t len)
{
	for (size_t off = 0; off + 512 <= len;) {
		uint8_t *h = p + off;
		unsigned sum = 0;
		int64_t size;
		size_t i;

		for (i = 0; i < 512 && !h[i]; i++)
			;
		if (i == 512) {
			off += 512;
			continue;
		}
		memset(h + 148, ' ', 8);
		for (i = 0; i < 512; i++)
			sum += h[i];
		snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
		h[155] = ' ';
		size = tar_size(h);
		if (size < 0 || (uint64_t)size > len)
			return;
		off += 512 + (((size_t)size + 511) & ~(size_t)511);
	}
}

static ssize_t feed_read(void *ctx, const void **buf, char *msg, size_t msglen)
{
	struct feed *f = ctx;
	size_t n = f->left < f->chunk ? f->left : f->chunk;

	(void)msg;
	(void)msglen;
	*buf = f->p;
	f->p += n;
	f->left -= n;
	return (ssize_t)n;
}

static void put_victim(void)
{
	int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	CHECK(fd >= 0 && write(fd, "safe\n", 5) == 5);
	close(fd);
}

/* The harness's own directories go at its end (not after a failed CHECK:
 * they show what it saw). */
static void cleanup(void)
{
	if (rmdir(sentinel) == 0 && unlink(victim) == 0)
		rmdir(parent);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	home = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(home >= 0);

	umask(022);
	snprintf(parent, sizeof(parent), "%s/flint-fuzz-tarcopy-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	CHECK(mkdtemp(parent));
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", parent);
	snprintf(victim, sizeof(victim), "%s/victim", parent);
	CHECK(mkdir(sentinel, 0755) == 0 && chdir(sentinel) == 0);
	CHECK(getcwd(cwd0, sizeof(cwd0)));
	CHECK(fchdir(home) == 0);
	put_victim();
	atexit(cleanup);
}

/* Once the box is gone, the parent holds the sentinel, empty, and the
 * victim, intact, and nothing else. */
static void check_parent(void)
{
	DIR *dir = opendir(parent);
	struct dirent *de;
	struct stat st;
	char buf[16];
	int fd, seen = 0;

	CHECK(dir);
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		CHECK(!strcmp(de->d_name, "sentinel") || !strcmp(de->d_name, "victim"));
		seen++;
	}
	closedir(dir);
	CHECK(seen == 2);
	CHECK(rmdir(sentinel) == 0 && mkdir(sentinel, 0755) == 0);
	fd = open(victim, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1);
	CHECK(read(fd, buf, sizeof(buf)) == 5 && !memcmp(buf, "safe\n", 5));
	close(fd);
}

/* The walk of the box after a copy: the symlink check's root (rootfd < 0:
 * none) and the file data found. */
struct walk {
	int rootfd;
	const char *root;
	uint64_t data;
	bool keep_all; /* TARCOPY_KEEP_ALL: owners and set-id bits as sent */
};

/* The symlink at path, under w->root, leads inside it: the kernel follows
 * it beneath the root, and must find it there or not at all. */
static void check_link(const struct walk *w, const char *path)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
	size_t rl = strlen(w->root);
	char target[PATH_MAX];
	ssize_t n;
	long fd;

	if (w->rootfd < 0 || strncmp(path, w->root, rl) || path[rl] != '/')
		return;
	n = readlink(path, target, sizeof(target) - 1);
	CHECK(n > 0);
	target[n] = '\0';
	CHECK(target[0] != '/');
	fd = syscall(SYS_openat2, w->rootfd, path + rl + 1, &how, sizeof(how));
	CHECK(fd >= 0 || errno != EXDEV);
	if (fd >= 0)
		close((int)fd);
}

/* Checks what is under path, or with rm removes it (after the checks: a
 * link must be judged with everything it might lead through still there).
 * Directories are opened up first: one sent with mode 0 would stop a
 * caller that is not root. */
static void walk(struct walk *w, const char *path, bool rm)
{
	struct stat st;

	CHECK(lstat(path, &st) == 0);
	if (S_ISLNK(st.st_mode) && !rm)
		check_link(w, path);
	if (S_ISREG(st.st_mode) && !rm)
		w->data += (uint64_t)st.st_size;
	/* The box's own owner, no set-id bits (the box has none to pass on). */
	if (!S_ISLNK(st.st_mode) && !w->keep_all && !rm)
		CHECK(st.st_uid == geteuid() && !(st.st_mode & (S_ISUID | S_ISGID)));
	if (!S_ISDIR(st.st_mode)) {
		CHECK(!rm || unlink(path) == 0);
		return;
	}
	CHECK(chmod(path, 0700) == 0);
	DIR *dir = opendir(path);
	struct dirent *de;

	CHECK(dir);
	while ((de = readdir(dir))) {
		char sub[PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		CHECK((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) < sizeof(sub));
		walk(w, sub, rm);
	}
	closedir(dir);
	CHECK(!rm || rmdir(path) == 0);
}

/* Where the copy's symlinks must lead: the top's directory, or the
 * directory a file or link top landed in. */
static void find_root(const char *box, const char *dst, enum dest d, bool contents, char *root)
{
	struct stat st;

	strcpy(root, box);
	if (lstat(dst, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	strcpy(root, dst);
	if (contents || (d != EXISTING_DIR && d != MISSING_SLASH))
		return;
	/* dst was empty before: the one thing in it now is the top. */
	DIR *dir = opendir(dst);
	struct dirent *de;
	char only[NAME_MAX + 1] = "";
	int count = 0;

	CHECK(dir);
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && count++ == 0)
			snprintf(only, sizeof(only), "%s", de->d_name);
	closedir(dir);
	if (count == 1) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s", dst, only);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			strcpy(root, p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	char box[PATH_MAX], dst[PATH_MAX + 8], arg[PATH_MAX + 8], root[PATH_MAX], cwd[PATH_MAX];
	char err[512];
	uint64_t room, room0;
	unsigned flags = 0;
	enum dest d;
	int fd0, fd1, ret;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 3)
		return 0;
	d = (enum dest)(data[0] & DEST_MASK);
	if (data[0] & B_CONTENTS)
		flags |= TARCOPY_CONTENTS;
	if (data[0] & B_KEEP_ALL)
		flags |= TARCOPY_KEEP_ALL;
	if (!(data[0] & B_NO_LINKS))
		flags |= TARCOPY_LINKS_INSIDE;
	/* Without it, as the guest agent's copy-in: an odd second byte makes
	 * the receiver the sole writer (no libarchive symlink check beneath
	 * a new top), which must keep the stream out of the sentinel too. */
	else if (data[1] & 1)
		flags |= TARCOPY_SOLE_WRITER;
	room = room0 = (uint64_t)data[1] * 8;
	/* The stream, its own malloc of exactly its length (ASan sees any
	 * over-read), mended. */
	uint8_t *stream = malloc(size > 3 ? size - 3 : 1);

	CHECK(stream);
	memcpy(stream, data + 3, size - 3);
	if (!(data[0] & B_RAW_SUMS))
		mend_sums(stream, size - 3);
	struct feed f = {.p = stream, .left = size - 3, .chunk = data[2] ? data[2] * 7u : SIZE_MAX};
	struct tarcopy_io io = {.read = feed_read,
				.ctx = &f,
				.room = data[0] & B_NO_ROOM ? NULL : &room,
				.room_name = "the room"};

	snprintf(box, sizeof(box), "%s/box", parent);
	CHECK(mkdir(box, 0700) == 0);
	snprintf(dst, sizeof(dst), "%s/dst", box);
	if (d == EXISTING_DIR)
		CHECK(mkdir(dst, 0755) == 0);
	if (d == EXISTING_FILE) {
		int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		CHECK(fd >= 0);
		close(fd);
	}
	snprintf(arg, sizeof(arg), "%s%s", dst, d == MISSING_SLASH ? "/" : "");

	/* The lowest free descriptor, before and after: none leaked. */
	fd0 = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd0);
	err[0] = '\0';
	/* In the sentinel: a name taken relative to the wrong directory lands
	 * there and shows. */
	CHECK(chdir(sentinel) == 0);
	ret =
	    tarcopy_receive(arg, flags, data[0] & B_ANY_TOP ? NULL : "out", &io, err, sizeof(err));
	CHECK(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, cwd0));
	CHECK(fchdir(home) == 0);
	CHECK(ret == 0 || ret == -1);
	CHECK(memchr(err, '\0', sizeof(err)));
	if (ret < 0)
		CHECK(err[0]);
	fd1 = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd1);
	CHECK(fd1 == fd0);
	CHECK(room <= room0);

	find_root(box, dst, d, flags & TARCOPY_CONTENTS, root);
	struct walk w = {.root = root, .rootfd = -1, .keep_all = flags & TARCOPY_KEEP_ALL};

	if (flags & TARCOPY_LINKS_INSIDE) {
		w.rootfd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		CHECK(w.rootfd >= 0);
	}
	walk(&w, box, false);
	if (w.rootfd >= 0)
		close(w.rootfd);
	if (io.room)
		CHECK(w.data <= room0);
	walk(&w, box, true);
	check_parent();
	free(stream);
	return 0;
}
