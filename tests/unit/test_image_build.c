/* flint run --image (issue 14): a directory or tar archive made into an
 * ext4 image in the cache, through a runner that records the commands (and
 * runs tar and the decompressors for real); the cache used again; the
 * scratch disk. The last tests run the real mke2fs and check its image
 * with e2fsck and debugfs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "image/build.h"
#include "image/cache.h"
#include "image/image.h"
#include "tmpdir.h"

static char top[] = "/tmp/flint-imgb-XXXXXX";
static char cache[128], src[128];

struct fake {
	char cmds[8][2048]; /* each command's words, joined by spaces */
	int n;
	int mke2fs_status;   /* what the fake mke2fs answers */
	char seen[PATH_MAX]; /* mke2fs -d's tree had this file */
	char seen_text[64];
	const char *during; /* a shell command run as mke2fs starts */
};

/* Enough of an ext4 image at img for image_is_ext4: its magic at 1080. */
static void write_fake_ext4(const char *img)
{
	FILE *o = fopen(img, "w");

	cr_assert_not_null(o, "%s", img);
	fputs("fake ext4", o);
	cr_assert_eq(fseek(o, 1080, SEEK_SET), 0);
	fputs("\x53\xef", o);
	fclose(o);
}

/* Records the command; tar, xz and zstd run for real, mke2fs leaves a
 * small file at its image path and notes what its source tree held. */
static int fake_run(void *ctx, char *const argv[], int in_fd, int out_fd)
{
	struct fake *f = ctx;
	char *s = f->cmds[f->n < 8 ? f->n++ : 7];
	int i = 0, argc = 0;

	s[0] = '\0';
	for (; argv[argc]; argc++)
		snprintf(s + strlen(s), sizeof(f->cmds[0]) - strlen(s), "%s%s", argc ? " " : "",
			 argv[argc]);
	while (argv[i] && strcmp(argv[i], "mke2fs"))
		i++;
	if (!argv[i])
		return image_run_cmd(NULL, argv, in_fd, out_fd);
	if (f->mke2fs_status)
		return f->mke2fs_status;
	if (f->during)
		cr_assert_eq(system(f->during), 0, "%s", f->during);
	for (int j = i; j + 1 < argc; j++)
		if (!strcmp(argv[j], "-d")) {
			char p[PATH_MAX * 2];
			FILE *in;
			snprintf(p, sizeof(p), "%s/%s", argv[j + 1], f->seen);
			if ((in = fopen(p, "r"))) {
				if (!fgets(f->seen_text, sizeof(f->seen_text), in))
					f->seen_text[0] = '\0';
				fclose(in);
			}
		}
	/* The image path: the word before the size, or last for scratch. */
	write_fake_ext4(argv[argc - 1][0] == '/' ? argv[argc - 1] : argv[argc - 2]);
	return 0;
}

static void setup(void)
{
	char cmd[1024];
	cr_assert_not_null(mkdtemp(top));
	snprintf(cache, sizeof(cache), "%s/cache", top);
	snprintf(src, sizeof(src), "%s/src", top);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p %1$s/etc %1$s/bin; echo hello >%1$s/etc/motd; "
		 "ln -s ../etc/motd %1$s/bin/m",
		 src);
	cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(image_build, .init = setup, .fini = teardown);

static int prepare(struct image_builder *b, const char *path, char *out, bool *built, char *err)
{
	return image_prepare(b, path, out, PATH_MAX, NULL, built, err, 512);
}

/* The entries in <cache>/<dir> (0 when it is not there). */
static size_t entries_in(const char *dir)
{
	char pat[PATH_MAX + 16];
	glob_t g;
	size_t n;

	snprintf(pat, sizeof(pat), "%s/%s/*", cache, dir);
	if (glob(pat, GLOB_PERIOD, NULL, &g))
		return 0;
	n = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		if (strcmp(base, ".") && strcmp(base, ".."))
			n++;
	}
	globfree(&g);
	return n;
}

/* The directory path is in (a static copy). */
static const char *dirname_of(const char *path)
{
	static char d[PATH_MAX];

	snprintf(d, sizeof(d), "%s", path);
	*strrchr(d, '/') = '\0';
	return d;
}

/* Nothing but images in the cache: no work directory left behind. */
static size_t cache_entries(void)
{
	return entries_in("images");
}

Test(image_build, cache_dir_from_the_environment)
{
	char d[PATH_MAX];

	setenv("FLINT_CACHE", "/c/flint", 1);
	setenv("XDG_CACHE_HOME", "/x", 1);
	setenv("HOME", "/h", 1);
	cr_assert_eq(image_cache_dir(d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/c/flint");
	unsetenv("FLINT_CACHE");
	cr_assert_eq(image_cache_dir(d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/x/flint");
	setenv("XDG_CACHE_HOME", "", 1);
	cr_assert_eq(image_cache_dir(d, sizeof(d)), 0);
	cr_assert_str_eq(d, "/h/.cache/flint");
	unsetenv("HOME");
	cr_assert_eq(image_cache_dir(d, sizeof(d)), -ENOENT);
	cr_assert_eq(image_cache_dir(d, 4), -ENOENT);
}

Test(image_build, directory_built_once_then_reused)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", key[IMAGE_KEY_LEN], want[PATH_MAX * 2];
	bool built;

	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_eq(f.n, 1, "commands: %d", f.n);
	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/images/%s.ext4", cache, key);
	cr_assert_str_eq(out, want);
	cr_assert_eq(access(out, R_OK), 0);
	/* 4 KiB blocks, no journal, inodes and size from the content, the
	 * tree itself as -d, a private temporary file. */
	struct image_usage u;
	uint64_t bytes, inodes;
	cr_assert_eq(image_measure(src, &u, err, sizeof(err)), 0);
	image_size_for(&u, &bytes, &inodes);
	snprintf(
	    want, sizeof(want),
	    "mke2fs -q -F -t ext4 -b 4096 -m 0 -O ^has_journal -N %llu -d %s %s/images/.build-",
	    (unsigned long long)inodes, src, cache);
	cr_assert_eq(strncmp(f.cmds[0], want, strlen(want)), 0, "%s", f.cmds[0]);
	snprintf(want, sizeof(want), "/image.ext4 %lluk", (unsigned long long)bytes >> 10);
	cr_assert_not_null(strstr(f.cmds[0], want), "%s", f.cmds[0]);
	cr_assert_str_eq(f.seen_text, "hello\n");
	cr_assert_eq(cache_entries(), 1, "a work directory was left behind");

	/* The same content again: from the cache, no mke2fs. */
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_eq(f.n, 1, "mke2fs ran again: %s", f.cmds[1]);
	cr_assert_str_eq(again, out);

	/* One byte changed: another image. */
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "echo hellO >%s/etc/motd", src);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_str_neq(again, out);
	cr_assert_eq(cache_entries(), 2);
}

/* A symlink under a key (planted in a shared cache, to a host file or
 * disk) is never the guest's image: it is built and the symlink replaced. */
Test(image_build, a_symlink_in_the_cache_is_not_an_image)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", secret[160];
	struct stat st;
	bool built;

	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	snprintf(secret, sizeof(secret), "%s/host-secret", top);
	FILE *o = fopen(secret, "w");
	cr_assert_not_null(o);
	fputs("the host's", o);
	fclose(o);
	cr_assert_eq(unlink(out), 0);
	cr_assert_eq(symlink(secret, out), 0);
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert(built, "the symlink was taken for a cached image");
	cr_assert_str_eq(again, out);
	cr_assert_eq(lstat(out, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
}

/* A file under a key that is not an ext4 image (emptied by a power cut
 * before the image reached the disk) is built again, not used. */
Test(image_build, a_cached_file_that_is_no_image_is_built_again)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "";
	bool built;

	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_eq(truncate(out, 0), 0);
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert(built, "an empty file was taken for the cached image");
	cr_assert(image_is_ext4(again));
	/* and whole, it is used */
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
}

/* An images directory others may write (a cache shared between users) is
 * refused, naming it, before anything in it is used or removed. */
Test(image_build, an_images_directory_others_may_write_is_refused)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", dir[160];
	bool built;

	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	snprintf(dir, sizeof(dir), "%s/images", cache);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s", err);
	cr_assert_not(built);
	cr_assert_not_null(strstr(err, dir), "%s", err);
	cr_assert_not_null(strstr(err, "mode 0777"), "%s", err);
	if (geteuid() == 0) { /* root's build in a user's cache */
		cr_assert_eq(chmod(dir, 0700), 0);
		cr_assert_eq(chown(dir, 65534, 65534), 0);
		cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s", err);
		cr_assert_not_null(strstr(err, "owner 65534"), "%s", err);
	}
	cr_assert_eq(f.n, 1, "built in it");
}

/* A cache below a directory others may write (not sticky), by its path or
 * by where a symlink on it leads, is refused before anything in it is
 * made or used, naming that directory, for images and scratch disks
 * alike: another user could rename the cache's directories there. Below a
 * sticky one (/tmp) it is used. */
Test(image_build, a_cache_below_a_directory_others_may_write_is_refused)
{
	struct fake f = {0};
	char open[160], below[200], scratch[220], link[200], out[PATH_MAX], err[512] = "",
									    want[260];
	bool built;

	snprintf(open, sizeof(open), "%s/open", top);
	snprintf(below, sizeof(below), "%s/cache", open);
	snprintf(scratch, sizeof(scratch), "%s/scratch", below);
	snprintf(link, sizeof(link), "%s/to-open", top);
	cr_assert_eq(mkdir(open, 0755), 0);
	cr_assert_eq(chmod(open, 0777), 0);
	cr_assert_eq(symlink(below, link), 0);
	cr_assert_eq(mkdir(below, 0700), 0);
	snprintf(want, sizeof(want), "%s on its way (owner %u, mode 0777) may be changed", open,
		 (unsigned)geteuid());
	const char *caches[] = {scratch, link};
	for (size_t i = 0; i < 2; i++) {
		struct image_builder b = {.cache_dir = caches[i], .run = fake_run, .ctx = &f};

		cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s: %s", caches[i], err);
		cr_assert_not_null(strstr(err, want), "%s", err);
		cr_assert_eq(f.n, 0, "built anyway");
	}
	struct image_builder b = {.cache_dir = below, .run = fake_run, .ctx = &f};
	cr_assert_eq(image_make_scratch(&b, scratch, 16 << 20, out, sizeof(out), err, sizeof(err)),
		     -EPERM, "%s", err);
	cr_assert_not_null(strstr(err, want), "%s", err);
	cr_assert_eq(f.n, 0, "formatted anyway");
	cr_assert_eq(chmod(open, 01777), 0);
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_eq(image_make_scratch(&b, scratch, 16 << 20, out, sizeof(out), err, sizeof(err)),
		     0, "%s", err);
	/* But not through a symlink there, ours or not: another user could
	 * have hard-linked one of root's there. */
	char in_sticky[220];
	snprintf(in_sticky, sizeof(in_sticky), "%s/link", open);
	cr_assert_eq(symlink(below, in_sticky), 0);
	b.cache_dir = in_sticky;
	cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s", err);
	cr_assert_not_null(strstr(err, in_sticky), "%s", err);
	/* Nor reached through a link to that directory, nor by a path
	 * relative to it. */
	char to_open[200], via[240];
	snprintf(to_open, sizeof(to_open), "%s/to-sticky", top);
	snprintf(via, sizeof(via), "%s/link", to_open);
	cr_assert_eq(symlink(open, to_open), 0);
	b.cache_dir = via;
	cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s", err);
	cr_assert_not_null(strstr(err, in_sticky), "%s", err);
	cr_assert_eq(chdir(open), 0);
	b.cache_dir = "link";
	cr_assert_eq(prepare(&b, src, out, &built, err), -EPERM, "%s", err);
	cr_assert_not_null(strstr(err, in_sticky), "%s", err);
	cr_assert_eq(chdir("/"), 0);
}

Test(image_build, a_directory_holding_the_cache_is_refused)
{
	struct fake f = {0};
	char inside[160], deeper[200], out[PATH_MAX], err[512] = "";
	bool built;

	/* the cache there already, and one not made yet */
	snprintf(inside, sizeof(inside), "%s/cache", src);
	cr_assert_eq(mkdir(inside, 0700), 0);
	snprintf(deeper, sizeof(deeper), "%s/not/yet", inside);
	const char *caches[] = {inside, deeper};
	for (size_t i = 0; i < 2; i++) {
		struct image_builder b = {.cache_dir = caches[i], .run = fake_run, .ctx = &f};

		cr_assert_lt(prepare(&b, src, out, &built, err), 0);
		cr_assert_not_null(strstr(err, "holds flint's cache directory"), "%s", err);
		cr_assert_eq(f.n, 0, "built anyway");
	}
	cr_assert_eq(rmdir(inside), 0);
	/* beside it: built */
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
}

Test(image_build, ext4_image_used_as_it_is)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char p[PATH_MAX], out[PATH_MAX], err[512];
	static uint8_t blk[2048];
	bool built = true;
	FILE *o;

	blk[1080] = 0x53, blk[1081] = 0xef;
	snprintf(p, sizeof(p), "%s/disk", top);
	cr_assert_not_null(o = fopen(p, "w"));
	cr_assert_eq(fwrite(blk, 1, sizeof(blk), o), sizeof(blk));
	fclose(o);
	cr_assert_eq(prepare(&b, p, out, &built, err), 0, "%s", err);
	cr_assert_str_eq(out, p);
	cr_assert_not(built);
	cr_assert_eq(f.n, 0);
	cr_assert_eq(cache_entries(), 0);
}

/* A tar archive of src made with `how` ("" plain, "z" gzip, "J" xz,
 * "--zstd"), at a name that says nothing. */
static void make_tar(const char *how, char *out)
{
	char cmd[PATH_MAX * 3];
	snprintf(out, PATH_MAX, "%s/archive%s", top, how);
	snprintf(cmd, sizeof(cmd), "tar -C %s %s%s -cf %s .", src, how[0] == '-' ? "" : "-",
		 how[0] ? how : "", out);
	if (!how[0])
		snprintf(cmd, sizeof(cmd), "tar -C %s -cf %s .", src, out);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void tar_kind(const char *how, const char *decompress)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char tar[PATH_MAX], out[PATH_MAX], err[512] = "", want[PATH_MAX * 2];
	bool built;
	int c = 0;

	make_tar(how, tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	if (decompress)
		cr_assert_str_eq(f.cmds[c++], decompress);
	snprintf(want, sizeof(want),
		 "tar -x --numeric-owner --xattrs --xattrs-include=security.capability "
		 "--xattrs-include=user.* -f - -C ");
	cr_assert_eq(strncmp(f.cmds[c], want, strlen(want)), 0, "%s", f.cmds[c]);
	cr_assert_not_null(strstr(f.cmds[c++], "/root"), "extracted into the work directory");
	cr_assert_not_null(strstr(f.cmds[c], "mke2fs "), "%s", f.cmds[c]);
	cr_assert_not_null(strstr(f.cmds[c], "/root "), "mke2fs -d of the extracted tree");
	cr_assert_str_eq(f.seen_text, "hello\n", "the tree mke2fs saw");
	cr_assert_eq(f.n, c + 1);
	cr_assert_eq(cache_entries(), 1);
	/* And again: the cache. */
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_eq(f.n, c + 1);
}

Test(image_build, tar_plain)
{
	tar_kind("", NULL);
}

Test(image_build, tar_gzip)
{
	tar_kind("z", NULL); /* zlib, no program */
}

Test(image_build, tar_xz)
{
	tar_kind("J", "xz -dc");
}

Test(image_build, tar_zstd)
{
	if (system("command -v zstd >/dev/null"))
		cr_skip_test("no zstd");
	tar_kind("--zstd", "zstd -dc --long=31");
}

/* An archive inside another: GNU tar given a file decompresses what it
 * finds compressed by itself, past every limit of flint's (a 456-byte xz
 * holding a zstd of a sparse member extracted 201 MB); tar reads its
 * archive from stdin, where it refuses one still compressed. */
Test(image_build, a_compressed_archive_inside_another_is_refused)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char tar[PATH_MAX], out[PATH_MAX], err[512] = "", cmd[PATH_MAX * 3];
	bool built;

	make_tar("z", tar);
	snprintf(cmd, sizeof(cmd), "xz -c %s >%s.xz", tar, tar);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	strcat(tar, ".xz");
	cr_assert_lt(prepare(&b, tar, out, &built, err), 0, "built");
	cr_assert_not(built);
	cr_assert_not_null(strstr(err, "tar failed"), "%s", err);
	for (int i = 0; i < f.n; i++)
		cr_assert_null(strstr(f.cmds[i], "mke2fs"), "%s", f.cmds[i]);
	cr_assert_eq(cache_entries(), 0);
}

Test(image_build, fakeroot_without_root)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f, .fakeroot = true};
	char tar[PATH_MAX], out[PATH_MAX], err[512] = "";
	bool built;

	if (system("command -v fakeroot >/dev/null"))
		cr_skip_test("no fakeroot");
	make_tar("", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert_eq(f.n, 2);
	cr_assert_eq(strncmp(f.cmds[0], "fakeroot -s ", 12), 0, "%s", f.cmds[0]);
	cr_assert_eq(strncmp(f.cmds[1], "fakeroot -i ", 12), 0, "%s", f.cmds[1]);
	/* The same state file: the owners tar set are the ones mke2fs sees. */
	char s0[PATH_MAX], s1[PATH_MAX];
	cr_assert_eq(sscanf(f.cmds[0], "fakeroot -s %s", s0), 1);
	cr_assert_eq(sscanf(f.cmds[1], "fakeroot -i %s", s1), 1);
	cr_assert_str_eq(s0, s1);
	cr_assert_not_null(strstr(f.cmds[0], " -- tar -x --numeric-owner -f "), "%s", f.cmds[0]);
	cr_assert_not_null(strstr(f.cmds[1], " -- mke2fs "));
}

Test(image_build, failures_leave_nothing_and_say_why)
{
	struct fake f = {.mke2fs_status = 1};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX];
	bool built;

	cr_assert_lt(prepare(&b, src, out, &built, err), 0);
	cr_assert_not_null(strstr(err, src), "%s", err);
	cr_assert_not_null(strstr(err, "mke2fs failed with status 1"), "%s", err);
	cr_assert_eq(cache_entries(), 0);

	f = (struct fake){.mke2fs_status = -ENOENT};
	cr_assert_lt(prepare(&b, src, out, &built, err), 0);
	cr_assert_not_null(strstr(err, "cannot run mke2fs: not installed (e2fsprogs)"), "%s", err);
	cr_assert_eq(cache_entries(), 0);

	/* A tar archive cut short: tar's own failure, named. */
	make_tar("", tar);
	cr_assert_eq(truncate(tar, 1600), 0); /* in /etc/motd's data */
	f = (struct fake){0};
	cr_assert_lt(prepare(&b, tar, out, &built, err), 0);
	cr_assert_not_null(strstr(err, "tar failed"), "%s", err);
	cr_assert_eq(cache_entries(), 0);

	/* A gzip stream cut short: zlib reads it to its end without an error
	 * from gzread; it is named truncated. */
	make_tar("z", tar);
	struct stat gst;
	cr_assert_eq(stat(tar, &gst), 0);
	cr_assert_eq(truncate(tar, gst.st_size - 6), 0); /* its trailer */
	f = (struct fake){0};
	cr_assert_lt(prepare(&b, tar, out, &built, err), 0);
	cr_assert_not_null(strstr(err, "gzip data: truncated"), "%s", err);
	cr_assert_eq(cache_entries(), 0);

	/* Not an image at all */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/etc/motd", src);
	cr_assert_lt(prepare(&b, p, out, &built, err), 0);
	cr_assert_not_null(strstr(err, "not an image flint knows"), "%s", err);
}

Test(image_build, scratch)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", want[PATH_MAX * 2];
	struct stat st;

	cr_assert_eq(image_make_scratch(&b, top, 64 << 20, out, sizeof(out), err, sizeof(err)), 0,
		     "%s", err);
	snprintf(want, sizeof(want), "%s/scratch-", top);
	cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
	snprintf(want, sizeof(want), "mke2fs -q -F -t ext4 -m 0 -O ^has_journal %s", out);
	cr_assert_str_eq(f.cmds[0], want);
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_eq(unlink(out), 0);

	f = (struct fake){.mke2fs_status = 1};
	cr_assert_lt(image_make_scratch(&b, top, 64 << 20, out, sizeof(out), err, sizeof(err)), 0);
	cr_assert_neq(stat(out, &st), 0, "a failed scratch file was left");
}

/* A scratch file a killed flint left (an hour old) goes with the next
 * one's making; a newer one, or another file, stays. */
Test(image_build, a_scratch_file_left_behind_goes)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", old[200], fresh[200], other[200];
	const struct timespec ago[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};

	snprintf(old, sizeof(old), "%s/scratch-AAAAAA.ext4", top);
	snprintf(fresh, sizeof(fresh), "%s/scratch-BBBBBB.ext4", top);
	snprintf(other, sizeof(other), "%s/scratch-notes.txt", top);
	const char *files[] = {old, fresh, other};
	for (size_t i = 0; i < 3; i++) {
		int fd = open(files[i], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		cr_assert_geq(fd, 0);
		close(fd);
	}
	cr_assert_eq(utimensat(AT_FDCWD, old, ago, 0), 0);
	cr_assert_eq(utimensat(AT_FDCWD, other, ago, 0), 0);
	cr_assert_eq(image_make_scratch(&b, top, 16 << 20, out, sizeof(out), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_neq(access(old, F_OK), 0, "the old scratch file stayed");
	cr_assert_eq(access(fresh, F_OK), 0, "a newer scratch file went");
	cr_assert_eq(access(other, F_OK), 0, "another file went");
	cr_assert_eq(unlink(out), 0);
}

/* ---- the real mke2fs ---------------------------------------------------- */

static void need_e2fsprogs(void)
{
	if (system("command -v mke2fs >/dev/null && command -v debugfs >/dev/null && "
		   "command -v e2fsck >/dev/null"))
		cr_skip_test("no e2fsprogs");
}

/* Whether dir's file system has fallocate (tmpfs and ext4 do). */
static bool fallocate_works(const char *dir)
{
	char p[PATH_MAX];
	int fd;
	bool ok;

	snprintf(p, sizeof(p), "%s/falloc-probe", dir);
	cr_assert_geq(fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), 0);
	ok = fallocate(fd, 0, 0, 4096) == 0;
	close(fd);
	unlink(p);
	return ok;
}

/* e2fsck finds the image clean and debugfs lists what the tree had. */
static void check_image(const char *img)
{
	char cmd[PATH_MAX * 2], line[256] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", img);
	cr_assert_eq(system(cmd), 0, "e2fsck -fn %s", img);
	snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /etc/motd' %s 2>/dev/null", img);
	cr_assert_not_null(p = popen(cmd, "r"));
	cr_assert_not_null(fgets(line, sizeof(line), p));
	pclose(p);
	cr_assert_str_eq(line, "hello\n");
	snprintf(
	    cmd, sizeof(cmd),
	    "debugfs -R 'stat /bin/m' %s 2>/dev/null | grep -q 'Fast link dest: \"../etc/motd\"'",
	    img);
	cr_assert_eq(system(cmd), 0, "the symlink");
}

Test(image_build, real_mke2fs_from_a_directory_and_a_tar)
{
	struct image_builder b = {.cache_dir = cache, .run = image_run_cmd};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX];
	bool built;

	need_e2fsprogs();
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
	check_image(out);
	make_tar("z", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	check_image(out);
	cr_assert_eq(cache_entries(), 2);
}

/* An archive zstd --long compressed from a pipe (its frame asks for a
 * 2 GiB window, which plain zstd -d refuses) unpacks. */
Test(image_build, real_zstd_long_window)
{
	struct image_builder b = {.cache_dir = cache, .run = image_run_cmd};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX], cmd[PATH_MAX * 3];
	bool built;

	need_e2fsprogs();
	if (system("command -v zstd >/dev/null"))
		cr_skip_test("no zstd");
	snprintf(tar, sizeof(tar), "%s/long.tar.zst", top);
	snprintf(cmd, sizeof(cmd), "tar -C %s -cf - . | zstd -q --long=31 >%s", src, tar);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	check_image(out);
}

/* As root, a tar archive's extended attributes reach the image: a file's
 * capabilities (as `docker export` writes them) and a user.* one; a
 * trusted.* one does not (nor touches the host's tree while built). */
Test(image_build, a_tars_extended_attributes_reach_the_image_as_root)
{
	struct image_builder b = {.cache_dir = cache, .run = image_run_cmd};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX], cmd[PATH_MAX * 3], p[PATH_MAX];
	bool built;
	static const uint8_t cap[20] = {1, 0, 0, 2, 0, 0x20}; /* v2, cap_net_raw permitted */

	need_e2fsprogs();
	if (geteuid() != 0)
		cr_skip_test("not root: flint builds under fakeroot, which keeps no attributes");
	snprintf(p, sizeof(p), "%s/etc/motd", src);
	if (setxattr(p, "security.capability", cap, sizeof(cap), 0) < 0 ||
	    setxattr(p, "user.flint", "yes", 3, 0) < 0 ||
	    setxattr(p, "trusted.flint", "no", 2, 0) < 0)
		cr_skip_test("%s: no extended attributes here: %s", p, strerror(errno));
	snprintf(tar, sizeof(tar), "%s/attrs.tar", top);
	snprintf(cmd, sizeof(cmd), "tar --xattrs --xattrs-include='*' -C %s -cf %s .", src, tar);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	check_image(out);
	snprintf(cmd, sizeof(cmd), "debugfs -R 'ea_list /etc/motd' %s 2>/dev/null", out);
	FILE *f = popen(cmd, "r");
	char list[1024] = "";
	cr_assert_not_null(f);
	size_t n = fread(list, 1, sizeof(list) - 1, f);
	list[n] = '\0';
	pclose(f);
	cr_assert_not_null(strstr(list, "security.capability"), "%s", list);
	cr_assert_not_null(strstr(list, "user.flint (3) = \"yes\""), "%s", list);
	cr_assert_null(strstr(list, "trusted.flint"), "%s", list);
}

/* debugfs's word for path in img ("stat" or "cat"), as a static string. */
static const char *debugfs_of(const char *img, const char *req, const char *path)
{
	static char text[2048];
	char cmd[PATH_MAX * 2];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "debugfs -R '%s %s' %s 2>/dev/null", req, path, img);
	cr_assert_not_null(f = popen(cmd, "r"));
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	pclose(f);
	return text;
}

/* As a user under fakeroot, an archive's files and directories of mode
 * 0000 (every Red Hat-like image's /etc/shadow) reach the image with
 * their modes, root's, and their bytes: mke2fs -d, not root, reads them. */
Test(image_build, a_user_reads_an_archives_unreadable_files)
{
	char dir[PATH_MAX], cmd[PATH_MAX * 3], tar[PATH_MAX + 16], ucache[PATH_MAX + 16];
	glob_t g;
	int st;
	pid_t pid;

	need_e2fsprogs();
	if (geteuid() != 0)
		cr_skip_test("not root: cannot become another user");
	if (system("command -v fakeroot >/dev/null"))
		cr_skip_test("no fakeroot");
	snprintf(dir, sizeof(dir), "%s/flint-imgu-XXXXXX", test_tmpdir());
	cr_assert_not_null(mkdtemp(dir));
	snprintf(tar, sizeof(tar), "%s/s.tar", dir);
	snprintf(ucache, sizeof(ucache), "%s/cache", dir);
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %1$s; mkdir -p t/etc t/d0; echo secret >t/etc/shadow; echo x >t/d0/f; "
		 "chmod 000 t/etc/shadow t/d0; tar -C t -cf s.tar .; chmod 644 s.tar; "
		 "chmod 755 t/d0; rm -rf t; mkdir cache; chown 65534:65534 cache; chmod 755 .",
		 dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	if ((pid = fork()) == 0) {
		struct image_builder b = {
		    .cache_dir = ucache, .run = image_run_cmd, .fakeroot = true};
		char out[PATH_MAX], err[512] = "";
		bool built;

		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		if (image_prepare(&b, tar, out, sizeof(out), NULL, &built, err, sizeof(err)) < 0) {
			fprintf(stderr, "image_prepare: %s\n", err);
			_exit(1);
		}
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the build as uid 65534 failed (%d)", st);
	snprintf(cmd, sizeof(cmd), "%s/images/*.ext4", ucache);
	cr_assert_eq(glob(cmd, 0, NULL, &g), 0, "no image");
	const char *img = g.gl_pathv[0];

	cr_assert_not_null(strstr(debugfs_of(img, "stat", "/etc/shadow"), "Mode:  0000"), "%s",
			   debugfs_of(img, "stat", "/etc/shadow"));
	cr_assert_not_null(strstr(debugfs_of(img, "stat", "/etc/shadow"), "User:     0"));
	cr_assert_str_eq(debugfs_of(img, "cat", "/etc/shadow"), "secret\n");
	cr_assert_not_null(strstr(debugfs_of(img, "stat", "/d0"), "Mode:  0000"));
	cr_assert_str_eq(debugfs_of(img, "cat", "/d0/f"), "x\n");
	globfree(&g);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Four processes build the same image at once: each ends with a whole
 * image at the same path, and nothing else is left. */
Test(image_build, concurrent_builds)
{
	struct image_builder b = {.cache_dir = cache, .run = image_run_cmd};
	char out[PATH_MAX], err[512] = "";
	pid_t pids[4];
	bool built;
	int st;

	need_e2fsprogs();
	for (int i = 0; i < 4; i++) {
		cr_assert_geq(pids[i] = fork(), 0);
		if (pids[i] == 0)
			_exit(prepare(&b, src, out, &built, err) == 0 ? 0 : 1);
	}
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	cr_assert_eq(cache_entries(), 1);
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_not(built);
	check_image(out);
}

Test(image_build, real_scratch)
{
	struct image_builder b = {.cache_dir = cache, .run = image_run_cmd};
	char out[PATH_MAX], err[512] = "", cmd[PATH_MAX + 64];
	struct stat st;

	need_e2fsprogs();
	cr_assert_eq(image_make_scratch(&b, top, 64 << 20, out, sizeof(out), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_eq(st.st_size, 64 << 20);
	/* Its blocks reserved (where the file system has fallocate). */
	if (fallocate_works(top))
		cr_assert_geq(st.st_blocks * 512, 64 << 20, "%lld bytes held",
			      (long long)st.st_blocks * 512);
	snprintf(cmd, sizeof(cmd), "e2fsck -fn %s >/dev/null 2>&1", out);
	cr_assert_eq(system(cmd), 0);
}

/* A scratch disk larger than its file system's free space is refused,
 * naming both, before anything is allocated. */
Test(image_build, scratch_beyond_free_space)
{
	char p[PATH_MAX], err[512] = "";
	struct statvfs vfs;
	struct stat st;
	uint64_t size;
	int fd;

	snprintf(p, sizeof(p), "%s/big.ext4", top);
	cr_assert_geq(fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), 0);
	cr_assert_eq(fstatvfs(fd, &vfs), 0);
	size = (uint64_t)vfs.f_bavail * vfs.f_frsize + (1ULL << 30);
	cr_assert_eq(image_reserve_scratch(fd, size, false, p, err, sizeof(err)), -ENOSPC);
	cr_assert_not_null(strstr(err, "MiB free, less than the disk's"), "%s", err);
	cr_assert_not_null(strstr(err, p), "%s", err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_blocks, 0, "%lld blocks allocated", (long long)st.st_blocks);
	/* image_make_scratch refuses it before mke2fs writes anything */
	{
		struct fake f = {0};
		struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
		char out[PATH_MAX];

		cr_assert_eq(image_make_scratch(&b, top, size, out, sizeof(out), err, sizeof(err)),
			     -ENOSPC);
		cr_assert_eq(f.n, 0, "mke2fs ran: %s", f.cmds[0]);
		cr_assert_neq(access(out, F_OK), 0, "the file stayed");
	}
	/* One that fits is held. */
	cr_assert_eq(image_reserve_scratch(fd, 1 << 20, false, p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 1 << 20);
	close(fd);
}

/* make_work NAME AGE LOCK: a work directory under the cache's images/ as
 * a build leaves it, AGE seconds old, with a lock file (LOCK 1), or
 * without (0); returns the lock file's fd, held, for LOCK 2. */
static int make_work(const char *name, int age, int lock)
{
	char p[PATH_MAX], l[PATH_MAX + 8];
	struct timespec t[2];
	int fd = -1;

	snprintf(p, sizeof(p), "%s/images/%s", cache, name);
	cr_assert_eq(mkdir(p, 0700), 0, "%s", p);
	snprintf(l, sizeof(l), "%s/root", p);
	cr_assert_eq(mkdir(l, 0700), 0);
	if (lock) {
		snprintf(l, sizeof(l), "%s/lock", p);
		cr_assert_geq(fd = open(l, O_RDWR | O_CREAT, 0600), 0);
		if (lock == 2)
			cr_assert_eq(flock(fd, LOCK_EX), 0);
		else
			close(fd);
	}
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= age;
	t[1] = t[0];
	cr_assert_eq(utimensat(AT_FDCWD, p, t, 0), 0);
	return lock == 2 ? fd : -1;
}

static bool work_there(const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/images/%s", cache, name);
	return access(p, F_OK) == 0;
}

/* A build that died (its lock free, or none taken and old) leaves a work
 * directory the next build removes; a running build's (its lock held) and
 * a brand new one (its lock maybe not taken yet) stay. */
Test(image_build, stale_work_directories_go)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", p[PATH_MAX];
	bool built;
	int held;

	snprintf(p, sizeof(p), "%s/images", cache);
	cr_assert_eq(mkdir(cache, 0700), 0);
	cr_assert_eq(mkdir(p, 0700), 0);
	make_work(".build-dead", 3600, 1);
	make_work(".build-nolock", 3600, 0);
	held = make_work(".build-running", 3600, 2);
	make_work(".build-young", 0, 0);
	make_work("not-a-build", 3600, 0);
	/* flint-jail's copies of a tenant's image (image_work_create), the
	 * same way: one whose jailer was killed goes. */
	make_work(".jail-dead", 3600, 1);
	int jail_held = make_work(".jail-running", 3600, 2);

	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_not(work_there(".build-dead"));
	cr_assert_not(work_there(".build-nolock"));
	cr_assert(work_there(".build-running"));
	cr_assert(work_there(".build-young"));
	cr_assert(work_there("not-a-build"));
	cr_assert_not(work_there(".jail-dead"));
	cr_assert(work_there(".jail-running"));
	close(held);
	close(jail_held);
}

/* image_work_create's directory is locked while its maker lives: a build
 * beside it leaves it, and once the lock is let go (the maker killed:
 * its descriptor closed) and it is old, the next build removes it. */
Test(image_build, a_work_directory_of_a_killed_maker_goes)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", work[PATH_MAX], tar[PATH_MAX], p[PATH_MAX + 16];
	struct timespec t[2];
	bool built;
	int lock;

	cr_assert_eq(
	    image_work_create(cache, ".jail-", work, sizeof(work), &lock, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_not_null(strstr(work, "/images/.jail-"), "%s", work);
	snprintf(p, sizeof(p), "%s/source", work);
	cr_assert_eq(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 3600;
	t[1] = t[0];
	cr_assert_eq(utimensat(AT_FDCWD, work, t, 0), 0);
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_eq(access(work, F_OK), 0, "a live maker's directory removed");
	/* Killed: its lock goes with its descriptors. */
	close(lock);
	make_tar("", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert_neq(access(work, F_OK), 0, "%s left behind", work);
	cr_assert_eq(cache_entries(), 2, "the two images and nothing else");
	/* image_work_remove: all of it, and the lock let go. */
	cr_assert_eq(
	    image_work_create(cache, ".jail-", work, sizeof(work), &lock, err, sizeof(err)), 0,
	    "%s", err);
	image_work_remove(work, &lock);
	cr_assert_eq(lock, -1);
	cr_assert_neq(access(work, F_OK), 0);
}

/* A file of n MiB of zeros (a hole) at src/big, and src archived with tar
 * option how (e.g. "-czf", "-cJf", "-S -cf") into out. */
static void make_bomb(const char *how, unsigned mib, char *out)
{
	char cmd[PATH_MAX * 3];

	snprintf(out, PATH_MAX, "%s/bomb%s", top, how);
	for (char *c = out + strlen(top); *c; c++)
		if (*c == ' ')
			*c = '_';
	snprintf(cmd, sizeof(cmd), "truncate -s %uM %s/big && tar -C %s %s %s . && rm %s/big", mib,
		 src, src, how, out, src);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* An archive that decompresses or extracts past max_bytes is refused with
 * -EFBIG naming it and the limit, and leaves nothing in the cache: gzip
 * (decompressed here: the write fails, EFBIG), xz (killed by SIGXFSZ), a
 * sparse member (small in the archive, tar killed extracting it). The
 * file-size limit is flint's own again afterwards. */
Test(image_build, a_bomb_is_refused_at_the_byte_limit)
{
	static const char *const hows[] = {"-czf", "-cJf", "-S -cf"};
	static const char *const who[] = {"decompressed, over the limit of 1048576 bytes",
					  "(xz was stopped writing a larger one)",
					  "(tar was stopped writing a larger one)"};
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .max_bytes = 1 << 20};
	char out[PATH_MAX], err[512], bomb[PATH_MAX];
	struct rlimit before, after;
	bool built;

	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &before), 0);
	for (unsigned i = 0; i < 3; i++) {
		struct stat st;

		make_bomb(hows[i], 64, bomb);
		cr_assert_eq(stat(bomb, &st), 0);
		cr_assert_lt(st.st_size, 1 << 20, "%s: the bomb is small", hows[i]);
		f = (struct fake){0};
		err[0] = '\0';
		cr_assert_eq(prepare(&b, bomb, out, &built, err), -EFBIG, "%s: %s", hows[i], err);
		cr_assert_not(built);
		cr_assert_not_null(strstr(err, bomb), "%s", err);
		cr_assert_not_null(strstr(err, who[i]), "%s: %s", hows[i], err);
		cr_assert_not_null(strstr(err, "limit of 1048576 bytes"), "%s", err);
		cr_assert_eq(cache_entries(), 0, "%s: the cache is left clean", hows[i]);
	}
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &after), 0);
	cr_assert_eq(after.rlim_cur, before.rlim_cur);
	/* Without the limit (flint's own builds) the same archive builds. */
	b.max_bytes = 0;
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, bomb, out, &built, err), 0, "%s", err);
}

/* An image bigger than max_bytes, though each file fits: refused before
 * mke2fs runs. */
/* Without a limit of flint's, decompressing stops where the disk does
 * (here RLIMIT_FSIZE's EFBIG stands for ENOSPC): the error names the
 * archive, not only the work file it was writing. */
Test(image_build, a_full_disk_while_decompressing_names_the_archive)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", bomb[PATH_MAX];
	struct rlimit l;
	bool built;

	make_bomb("-czf", 64, bomb);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &l), 0);
	l.rlim_cur = 1 << 20;
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &l), 0);
	cr_assert_lt(prepare(&b, bomb, out, &built, err), 0);
	cr_assert_eq(strncmp(err, bomb, strlen(bomb)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "decompressing into"), "%s", err);
	cr_assert_eq(cache_entries(), 0);
}

Test(image_build, an_image_over_the_byte_limit_is_refused)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .max_bytes = 4 << 20};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX];
	bool built;

	make_tar("", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), -EFBIG, "%s", err);
	cr_assert_not_null(strstr(err, "its image would be "), "%s", err);
	cr_assert_not_null(strstr(err, "over the limit of 4194304 bytes"), "%s", err);
	for (int i = 0; i < f.n; i++)
		cr_assert_null(strstr(f.cmds[i], "mke2fs"), "%s", f.cmds[i]);
	cr_assert_eq(cache_entries(), 0);
}

/* More entries than max_entries: counted by tar -t and refused before
 * anything is extracted. */
Test(image_build, too_many_entries_are_refused_before_extraction)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .max_entries = 10};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX], cmd[PATH_MAX * 2];
	bool built;

	snprintf(cmd, sizeof(cmd), "cd %s && for i in $(seq 20); do : >f$i; done", src);
	cr_assert_eq(system(cmd), 0);
	make_tar("z", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), -EFBIG, "%s", err);
	cr_assert_not_null(strstr(err, tar), "%s", err);
	cr_assert_not_null(strstr(err, "entries, the directories their names imply included: over "
				       "the limit of 10"),
			   "%s", err);
	for (int i = 0; i < f.n; i++)
		cr_assert_null(strstr(f.cmds[i], "tar -x"), "extracted: %s", f.cmds[i]);
	cr_assert_eq(cache_entries(), 0);
	/* Within the limit, built. */
	b.max_entries = 100;
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
}

/* A few deep names make a directory for each level, which tar makes
 * unlisted: counted, and refused before extraction (an archive of three
 * 4000-byte names made 6000 directories and 24 MB). */
Test(image_build, the_directories_names_imply_are_counted)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .max_entries = 100};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX], cmd[PATH_MAX * 3];
	bool built;

	snprintf(tar, sizeof(tar), "%s/deep.tar", top);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && d=x && for i in $(seq 60); do d=$d/a; done && mkdir -p d1/$d d2/$d && "
		 ": >d1/$d/f && : >d2/$d/f && tar -cf %s --no-recursion d1/$d/f d2/$d/f",
		 top, tar);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(prepare(&b, tar, out, &built, err), -EFBIG, "%s", err);
	cr_assert_not_null(strstr(err, "over the limit of 100"), "%s", err);
	for (int i = 0; i < f.n; i++)
		cr_assert_null(strstr(f.cmds[i], "tar -x"), "extracted: %s", f.cmds[i]);
	/* 2 names, 124 directories: within 130. */
	b.max_entries = 130;
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
}

/* ---- the index ---------------------------------------------------------- */

/* Until every time in the fixture's tree is 2 s old: settled (image.h),
 * so that its fingerprint goes in the index. */
static void settle(void)
{
	struct timespec t = {2, 200 * 1000 * 1000};

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static const char *const other_key =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* The index entry of fp's path, in p. */
static const char *entry_path(const char *fp)
{
	static char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/images/index/%s", cache, fp);
	return p;
}

/* src's fingerprint, as the index names its entry. */
static void fingerprint_of(const char *path, enum image_kind k, char fp[IMAGE_KEY_LEN],
			   bool *settled)
{
	char err[512] = "";

	cr_assert_eq(image_fingerprint(path, k, fp, settled, err, sizeof(err)), 0, "%s", err);
}

/* The index entry at p holds key and a newline, in a regular file. */
static void assert_entry(const char *p, const char *key)
{
	char text[128] = "", want[IMAGE_KEY_LEN + 1];
	struct stat st;
	FILE *in;

	cr_assert_eq(lstat(p, &st), 0, "%s", p);
	cr_assert(S_ISREG(st.st_mode), "%s", p);
	cr_assert_not_null(in = fopen(p, "r"));
	cr_assert_eq(fread(text, 1, sizeof(text) - 1, in), IMAGE_KEY_LEN);
	fclose(in);
	snprintf(want, sizeof(want), "%s\n", key);
	cr_assert_str_eq(text, want);
}

static void write_text(const char *p, const char *text)
{
	FILE *o = fopen(p, "w");

	cr_assert_not_null(o, "%s", p);
	fputs(text, o);
	cr_assert_eq(fclose(o), 0);
}

/* A settled directory's key goes in the index; the next prepare takes it
 * from there without reading the content: an entry made to name another
 * image (there) is taken at its word, which a key computed from the
 * content would not be. */
Test(image_build, a_settled_source_is_taken_from_the_index)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", key[IMAGE_KEY_LEN], fp[IMAGE_KEY_LEN];
	char other[PATH_MAX], text[IMAGE_KEY_LEN + 8];
	bool built, settled;

	settle();
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0, "%s", err);
	fingerprint_of(src, IMAGE_DIR, fp, &settled);
	cr_assert(settled);
	cr_assert_eq(entries_in("images/index"), 1);
	assert_entry(entry_path(fp), key);

	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_str_eq(again, out);
	cr_assert_eq(f.n, 1);

	snprintf(other, sizeof(other), "%s/images/%s.ext4", cache, other_key);
	write_fake_ext4(other);
	snprintf(text, sizeof(text), "%s\n", other_key);
	write_text(entry_path(fp), text);
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_str_eq(again, other, "the key was not the index's");

	/* A tar archive, the same way. */
	char tar[PATH_MAX];
	make_tar("z", tar);
	settle();
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	fingerprint_of(tar, IMAGE_TAR_GZ, fp, &settled);
	write_text(entry_path(fp), text);
	cr_assert_eq(prepare(&b, tar, again, &built, err), 0, "%s", err);
	cr_assert_str_eq(again, other, "the key was not the index's");
}

/* An archive built under fakeroot is another image than one built as
 * root (or without either): kept under another key, and found again by
 * the way it was built, through the index too. */
Test(image_build, an_archive_is_keyed_by_the_way_it_is_built)
{
	struct fake f = {.seen = "etc/motd"};
	struct image_builder plain = {.cache_dir = cache,
				      .run = fake_run,
				      .ctx = &f,
				      .use_index = true},
			     fr = plain;
	char tar[PATH_MAX], a[PATH_MAX], b[PATH_MAX], again[PATH_MAX], err[512] = "";
	bool built;

	fr.fakeroot = true;
	make_tar("", tar);
	settle();
	cr_assert_eq(prepare(&plain, tar, a, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_eq(prepare(&fr, tar, b, &built, err), 0, "%s", err);
	cr_assert(built, "root's image taken for a build under fakeroot");
	cr_assert_str_neq(a, b);
	cr_assert_eq(entries_in("images/index"), 2);
	cr_assert_eq(prepare(&plain, tar, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_str_eq(again, a);
	cr_assert_eq(prepare(&fr, tar, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_str_eq(again, b);
}

/* A file's content changed, its size and mtime as they were: its ctime
 * moved, so the fingerprint is another, and the image is the content's. */
Test(image_build, a_changed_file_is_keyed_by_its_content)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", key[IMAGE_KEY_LEN], want[PATH_MAX];
	char fp[IMAGE_KEY_LEN], fp2[IMAGE_KEY_LEN], motd[PATH_MAX];
	struct timespec t[2];
	struct stat st;
	bool built, settled;

	settle();
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	fingerprint_of(src, IMAGE_DIR, fp, &settled);
	cr_assert(settled);
	snprintf(motd, sizeof(motd), "%s/etc/motd", src);
	cr_assert_eq(stat(motd, &st), 0);
	write_text(motd, "hellO\n");
	t[0] = st.st_atim;
	t[1] = st.st_mtim;
	cr_assert_eq(utimensat(AT_FDCWD, motd, t, 0), 0);
	fingerprint_of(src, IMAGE_DIR, fp2, &settled);
	cr_assert_str_neq(fp2, fp, "the same fingerprint for other content");
	cr_assert_not(settled);

	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_str_neq(again, out);
	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0, "%s", err);
	snprintf(want, sizeof(want), "%s/images/%s.ext4", cache, key);
	cr_assert_str_eq(again, want);
	cr_assert_eq(entries_in("images/index"), 1, "a fingerprint not settled was written");
}

/* A source changed in the last 2 s is keyed by its content each time,
 * and nothing goes in the index for it. */
Test(image_build, a_racy_source_is_not_indexed)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	char out[PATH_MAX], err[512] = "", tar[PATH_MAX], motd[PATH_MAX];
	bool built;

	snprintf(motd, sizeof(motd), "%s/etc/motd", src);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(utimensat(AT_FDCWD, motd, NULL, 0), 0); /* changed now */
		cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
		cr_assert(built == (i == 0));
		cr_assert_eq(entries_in("images/index"), 0);
	}
	make_tar("", tar);
	cr_assert_eq(prepare(&b, tar, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_eq(entries_in("images/index"), 0);
}

/* A source named through a symlink switched to another tree while its
 * image is made (ln -sfn, as a release is deployed): the key, the build
 * and the index entry are all of the tree it named at the start, so that
 * neither the image under that tree's key nor its index entry holds the
 * other tree. */
Test(image_build, a_symlink_switched_meanwhile_changes_nothing)
{
	char cur[256], other[256], cmd[1024], during[512];
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", key[IMAGE_KEY_LEN], want[PATH_MAX];
	struct fake f = {.seen = "etc/motd", .during = during};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	bool built;

	snprintf(cur, sizeof(cur), "%s/cur", top);
	snprintf(other, sizeof(other), "%s/other", top);
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p %1$s/etc; echo other >%1$s/etc/motd; ln -s src %2$s", other,
		 cur);
	cr_assert_eq(system(cmd), 0);
	snprintf(during, sizeof(during), "ln -sfn other %s", cur);
	settle();
	cr_assert_eq(prepare(&b, cur, out, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_str_eq(f.seen_text, "hello\n", "the build read the tree switched to");
	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0, "%s", err);
	snprintf(want, sizeof(want), "%s/images/%s.ext4", cache, key);
	cr_assert_str_eq(out, want);

	/* src itself, from the index: its own image. */
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_not(built);
	cr_assert_str_eq(again, want);
	/* And the symlink, now the other tree's. */
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, cur, again, &built, err), 0, "%s", err);
	cr_assert(built);
	cr_assert_str_neq(again, want);
}

/* A source whose content changes while its image is built: the image
 * might be of neither content, and is not put under the key computed
 * before (nor is the source indexed); the run fails, saying why. */
Test(image_build, a_source_changed_while_built_is_not_cached)
{
	char during[512], out[PATH_MAX], err[512] = "";
	struct fake f = {.during = during};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	bool built;

	snprintf(during, sizeof(during), "echo more >>%s/etc/motd", src);
	settle();
	cr_assert_eq(prepare(&b, src, out, &built, err), -EAGAIN, "%s", err);
	cr_assert_not_null(strstr(err, "changed while it was read"), "%s", err);
	cr_assert_eq(cache_entries(), 1, "an image or a work directory left"); /* index/ */
	cr_assert_eq(entries_in("images/index"), 0);

	/* Unchanged since, it is built and cached. */
	f = (struct fake){0};
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert(built);
}

/* An entry that is not a regular file of this user's holding a key and a
 * newline, or that names a key whose image is not there, is ignored: the
 * run takes the content's key, and the entry is written again. An index
 * directory others may write is not used at all. */
Test(image_build, a_bad_index_entry_is_ignored, .timeout = 30)
{
	struct fake f = {0};
	struct image_builder b = {
	    .cache_dir = cache, .run = fake_run, .ctx = &f, .use_index = true};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", key[IMAGE_KEY_LEN], fp[IMAGE_KEY_LEN];
	char other[PATH_MAX], text[IMAGE_KEY_LEN + 8], upper[IMAGE_KEY_LEN + 8], held[PATH_MAX];
	const char *p;
	bool built, settled;

	settle();
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0, "%s", err);
	fingerprint_of(src, IMAGE_DIR, fp, &settled);
	p = entry_path(fp);
	snprintf(other, sizeof(other), "%s/images/%s.ext4", cache, other_key);
	write_fake_ext4(other);
	snprintf(text, sizeof(text), "%s\n", other_key);
	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(key[i] >= 'a' ? key[i] - 'a' + 'A' : key[i]);
	snprintf(upper + 64, sizeof(upper) - 64, "\n");
	snprintf(held, sizeof(held), "%s/held", top);
	write_text(held, text);

	for (int i = 0; i < 7; i++) {
		unlink(p);
		switch (i) {
		case 0:
			write_text(p, "not a key\n");
			break;
		case 1:
			write_text(p, upper);
			break;
		case 2: /* no newline */
			write_text(p, other_key);
			break;
		case 3: /* a symlink to a good one */
			cr_assert_eq(symlink(held, p), 0);
			break;
		case 4: /* an image not there */
			write_text(
			    p,
			    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n");
			break;
		case 5: /* a FIFO: not waited on */
			cr_assert_eq(mkfifo(p, 0600), 0);
			break;
		case 6: /* another user's (root alone can make one) */
			if (geteuid() != 0)
				continue;
			write_text(p, text);
			cr_assert_eq(chown(p, 65534, 65534), 0);
			break;
		}
		f = (struct fake){0};
		cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%d: %s", i, err);
		cr_assert_not(built, "%d", i);
		cr_assert_str_eq(again, out, "%d: the entry was taken", i);
		assert_entry(p, key);
	}

	/* An index directory others may write: neither read nor written. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/images/index", cache);
	write_text(p, text);
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(prepare(&b, src, again, &built, err), 0, "%s", err);
	cr_assert_str_eq(again, out, "an entry in a directory others may write was taken");
	assert_entry(p, other_key);
}

/* flint-jail's builder (no use_index) keeps no index; flint run's
 * (image_builder_default) does. */
Test(image_build, a_builder_without_the_index_writes_none)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	char out[PATH_MAX], err[512] = "", dir[PATH_MAX], c[PATH_MAX];
	bool built;

	settle();
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_eq(prepare(&b, src, out, &built, err), 0, "%s", err);
	cr_assert_not(built);
	snprintf(dir, sizeof(dir), "%s/images/index", cache);
	cr_assert_neq(access(dir, F_OK), 0, "an index made");
	cr_assert_eq(cache_entries(), 1);

	setenv("FLINT_CACHE", cache, 1);
	cr_assert_eq(image_builder_default(&b, c, sizeof(c), err, sizeof(err)), 0, "%s", err);
	cr_assert(b.use_index);
}

/* After a build the cache is trimmed to the builder's limit, the least
 * recently used image first; the image handed out is held, so a trim
 * leaves it be for as long as its descriptor is open. A hit marks it used. */
Test(image_build, a_build_trims_the_cache_and_holds_its_image)
{
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f, .cache_max = 1};
	char out[PATH_MAX], again[PATH_MAX], err[512] = "", old[PATH_MAX + 80], cmd[PATH_MAX * 3];
	struct stat st;
	bool built;
	int hold, hold2;

	snprintf(old, sizeof(old), "%s/images/%064d.ext4", cache, 0);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/images && head -c 65536 /dev/zero >%s && touch -d '-1 day' %s", cache,
		 old, old);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(image_prepare(&b, src, out, sizeof(out), &hold, &built, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert(built);
	cr_assert_geq(hold, 0);
	cr_assert_neq(access(old, F_OK), 0, "the image used longest ago is trimmed");
	cr_assert_eq(access(out, F_OK), 0);

	/* Used a day ago, but held. */
	snprintf(cmd, sizeof(cmd), "touch -d '-1 day' %s", out);
	cr_assert_eq(system(cmd), 0);
	image_cache_trim(dirname_of(out), 1);
	cr_assert_eq(access(out, F_OK), 0, "held");

	/* A hit holds it too, and marks it used now. */
	cr_assert_eq(image_prepare(&b, src, again, sizeof(again), &hold2, &built, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_not(built);
	cr_assert_geq(hold2, 0);
	cr_assert_eq(stat(out, &st), 0);
	cr_assert_geq(st.st_mtime, time(NULL) - 5);
	close(hold);
	close(hold2);

	/* Not held, used long ago, trimmed: the next run builds it again. */
	cr_assert_eq(system(cmd), 0);
	image_cache_trim(dirname_of(out), 1);
	cr_assert_neq(access(out, F_OK), 0);
	cr_assert_eq(image_prepare(&b, src, again, sizeof(again), NULL, &built, err, sizeof(err)),
		     0, "%s", err);
	cr_assert(built);
}

/* Another build of the same content that finishes first keeps its image
 * under the key: a name, once given, names the one file (a VM booting from
 * it, and its snapshot, expect that); the later build's own is dropped and
 * the first one held. */
Test(image_build, a_later_build_does_not_replace_the_first)
{
	char key[IMAGE_KEY_LEN], final[PATH_MAX], first[PATH_MAX], during[3 * PATH_MAX];
	char out[PATH_MAX], err[512] = "", head[8] = "";
	struct fake f = {0};
	struct image_builder b = {.cache_dir = cache, .run = fake_run, .ctx = &f};
	struct stat held, named;
	bool built;
	int hold;
	FILE *in;

	cr_assert_eq(image_key(src, IMAGE_DIR, key, err, sizeof(err)), 0, "%s", err);
	snprintf(final, sizeof(final), "%s/images/%s.ext4", cache, key);
	snprintf(first, sizeof(first), "%s/first.ext4", top);
	write_fake_ext4(first);
	cr_assert_not_null(in = fopen(first, "r+"));
	fputs("FIRST", in);
	fclose(in);
	snprintf(during, sizeof(during), "cp %s %s", first, final);
	f.during = during;
	cr_assert_eq(image_prepare(&b, src, out, sizeof(out), &hold, &built, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(out, final);
	cr_assert_not_null(in = fopen(final, "r"));
	cr_assert_not_null(fgets(head, sizeof(head), in));
	fclose(in);
	cr_assert_eq(strncmp(head, "FIRST", 5), 0, "the first build's image was replaced");
	cr_assert_eq(fstat(hold, &held), 0);
	cr_assert_eq(stat(final, &named), 0);
	cr_assert(held.st_ino == named.st_ino, "the image held is not the one under the key");
	close(hold);
	cr_assert_eq(cache_entries(), 1, "a work directory was left behind");
}
