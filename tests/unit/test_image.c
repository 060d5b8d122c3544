/* flint run --image (issue 14): what a path holds, judged by its content,
 * and the cache key of a directory or a file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include "image/image.h"

static char top[] = "/tmp/flint-image-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(top));
}

static void teardown(void)
{
	char cmd[64];

	/* A test that read as nobody (key_names_what_it_cannot_read). */
	cr_assert_eq(seteuid(getuid()), 0);
	cr_assert_eq(setegid(getgid()), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(image, .init = setup, .fini = teardown);

static const char *at(const char *name)
{
	static char p[4][PATH_MAX];
	static int i;
	char *s = p[i++ % 4];
	snprintf(s, PATH_MAX, "%s/%s", top, name);
	return s;
}

/* name holds len bytes: zeros, with data at off. */
static const char *put(const char *name, size_t len, size_t off, const void *data, size_t n)
{
	const char *p = at(name);
	char *buf = calloc(1, len ? len : 1);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	if (n && off + n <= len)
		memcpy(buf + off, data, n);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
	return p;
}

static enum image_kind detect_ok(const char *p)
{
	enum image_kind k;
	char err[512] = "";
	int r = image_detect(p, &k, err, sizeof(err));
	cr_assert_eq(r, 0, "%s: %s", p, err);
	return k;
}

static void detect_fails(const char *p, const char *msg)
{
	enum image_kind k;
	char err[512] = "";
	cr_assert_lt(image_detect(p, &k, err, sizeof(err)), 0, "%s detected as %d", p, k);
	cr_assert_not_null(strstr(err, p), "the message names the path: %s", err);
	cr_assert_not_null(strstr(err, msg), "'%s' lacks '%s'", err, msg);
}

Test(image, detect_each_kind)
{
	static const uint8_t ext4[] = {0x53, 0xef}, xz[] = {0xfd, '7', 'z', 'X', 'Z', 0, 4, 0xe6},
			     zst[] = {0x28, 0xb5, 0x2f, 0xfd, 0x24};

	cr_assert_eq(detect_ok(top), IMAGE_DIR);
	cr_assert_eq(detect_ok(put("fs", 4096, 1080, ext4, 2)), IMAGE_EXT4);
	/* image_is_ext4: that kind only; a directory or nothing is not */
	cr_assert(image_is_ext4(at("fs")));
	cr_assert_not(image_is_ext4(top));
	cr_assert_not(image_is_ext4(at("no-such-file")));
	cr_assert_eq(detect_ok(put("a.tar", 1024, 257,
				   "ustar\0"
				   "00",
				   8)),
		     IMAGE_TAR);
	/* GNU tar's magic */
	cr_assert_eq(detect_ok(put("gnu", 1024, 257, "ustar  ", 8)), IMAGE_TAR);
	cr_assert_eq(detect_ok(put("x", 64, 0, xz, sizeof(xz))), IMAGE_TAR_XZ);
	cr_assert_eq(detect_ok(put("z", 64, 0, zst, sizeof(zst))), IMAGE_TAR_ZST);

	/* Named nothing like what they are: the content decides. */
	char cmd[PATH_MAX * 2];
	cr_assert_eq(mkdir(at("t"), 0755), 0);
	put("t/f", 3, 0, "hi\n", 3);
	snprintf(cmd, sizeof(cmd), "tar -C %s -cf %s . && gzip -c %s >%s", at("t"),
		 at("image.ext4"), at("image.ext4"), at("rootfs.img"));
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(detect_ok(at("image.ext4")), IMAGE_TAR);
	cr_assert_eq(detect_ok(at("rootfs.img")), IMAGE_TAR_GZ);
}

Test(image, detect_refuses_others)
{
	static const uint8_t ext4[] = {0x53, 0xef}, gz[] = {0x1f, 0x8b, 8, 0};

	detect_fails(put("empty", 0, 0, NULL, 0), "empty");
	detect_fails(at("missing"), "No such file");
	detect_fails(put("text", 5000, 0, "hello", 5), "not an image flint knows");
	/* Truncated: the magic of each kind cut short. */
	detect_fails(put("short-ext4", 1081, 1080, ext4, 1), "truncated");
	detect_fails(put("short-tar", 260, 257, "ust", 3), "truncated");
	detect_fails(put("short-xz", 3, 0,
			 "\xfd"
			 "7z",
			 3),
		     "truncated");
	detect_fails(put("short-gz", 4, 0, gz, 4), "gzip data");

	/* gzip holding something other than a tar archive */
	gzFile g = gzopen(at("notar.gz"), "wb");
	char junk[2048] = "just text";
	cr_assert_not_null(g);
	cr_assert_eq(gzwrite(g, junk, sizeof(junk)), (int)sizeof(junk));
	gzclose(g);
	detect_fails(at("notar.gz"), "does not start with a tar archive");

	cr_assert_eq(symlink("/dev/null", at("null")), 0);
	detect_fails(at("null"), "neither a directory, a file nor a block device");
}

/* A FIFO named as the image: refused at once, not opened waiting for a
 * writer that never comes (the timeout fails the test that hangs). */
Test(image, detect_refuses_a_fifo_without_waiting, .timeout = 10)
{
	cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
	detect_fails(at("fifo"), "neither a directory, a file nor a block device");
}

/* Set extended attribute user.SUFFIX on p, or where the file system takes
 * no user attributes (tmpfs before Linux 6.6), trusted.SUFFIX (root with
 * CAP_SYS_ADMIN); its name into name. false: neither can be set here. */
static bool set_xattr(const char *p, const char *suffix, const char *value, char name[64])
{
	snprintf(name, 64, "user.%s", suffix);
	if (setxattr(p, name, value, strlen(value), 0) == 0)
		return true;
	cr_log_info("%s: %s: %s", p, name, strerror(errno));
	snprintf(name, 64, "trusted.%s", suffix);
	if (setxattr(p, name, value, strlen(value), 0) == 0)
		return true;
	cr_log_info("%s: %s: %s", p, name, strerror(errno));
	return false;
}

/* ---- the key ------------------------------------------------------------- */

static void key_of(const char *p, enum image_kind k, char key[IMAGE_KEY_LEN])
{
	char err[512] = "";
	int r = image_key(p, k, key, err, sizeof(err));
	cr_assert_eq(r, 0, "%s: %s", p, err);
	cr_assert_eq(strlen(key), 64, "%s", key);
	cr_assert_eq(strspn(key, "0123456789abcdef"), 64, "%s", key);
}

/* The tree the key tests change one thing of at a time, in dir; `reverse`
 * creates its entries in the other order (tmpfs and ext4 list a directory
 * in an order that depends on it). */
static void make_tree(const char *dir, int reverse)
{
	char cmd[PATH_MAX * 2];

	snprintf(
	    cmd, sizeof(cmd),
	    "set -e; mkdir -p %1$s; cd %1$s; "
	    "if [ %2$d = 1 ]; then for f in e d c b a; do echo $f >$f; done; mkdir -p sub/z sub/y; "
	    "else for f in a b c d e; do echo $f >$f; done; mkdir -p sub/y sub/z; fi; "
	    "echo inner >sub/y/file; ln -s ../a sub/link; chmod 644 a b c d e",
	    dir, reverse);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void key_of_cmd(const char *change, char key[IMAGE_KEY_LEN])
{
	char cmd[PATH_MAX * 2], dir[PATH_MAX];
	static int n;

	snprintf(dir, sizeof(dir), "%s/k%d", top, n++);
	make_tree(dir, 0);
	snprintf(cmd, sizeof(cmd), "set -e; cd %s; %s", dir, change);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	key_of(dir, IMAGE_DIR, key);
}

Test(image, key_same_content_same_key)
{
	char k1[IMAGE_KEY_LEN], k2[IMAGE_KEY_LEN], k3[IMAGE_KEY_LEN],
	    shm[] = "/dev/shm/flint-key-XXXXXX", one[64], two[64], cmd[128];

	/* tmpfs lists a directory newest first (ext4 in hash order, whatever
	 * the creation order): there the two trees are listed differently. */
	if (!mkdtemp(shm))
		cr_skip_test("no /dev/shm");
	snprintf(one, sizeof(one), "%s/one", shm);
	snprintf(two, sizeof(two), "%s/two", shm);
	make_tree(one, 0);
	make_tree(two, 1);
	key_of(one, IMAGE_DIR, k1);
	key_of(two, IMAGE_DIR, k2);
	/* Times are not content. */
	snprintf(cmd, sizeof(cmd), "touch -d 2001-01-01 %s/a", two);
	cr_assert_eq(system(cmd), 0);
	key_of(two, IMAGE_DIR, k3);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", shm);
	cr_assert_eq(system(cmd), 0);
	cr_assert_str_eq(k1, k2, "the order entries were made in changed the key");
	cr_assert_str_eq(k1, k3);
}

Test(image, key_changes_with_content)
{
	static const char *changes[] = {
	    "echo A >a",		/* one byte */
	    "printf 'a\\n\\n' >a",	/* a byte more */
	    "chmod 600 a",		/* a mode */
	    "chown 1 b",		/* an owner */
	    "chgrp 2 b",		/* a group */
	    "ln -sf ../b sub/link",	/* a symlink's target */
	    "mv sub/y/file sub/z/file", /* a file moved */
	    "mkdir sub/x",		/* an empty directory */
	    "rm e",			/* a file gone */
	    "mv a a2",			/* a name */
	    "chmod 700 sub",		/* a directory's mode */
	};
	char base[IMAGE_KEY_LEN], k[IMAGE_KEY_LEN];

	key_of_cmd("true", base);
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		if (geteuid() != 0 &&
		    (!strncmp(changes[i], "chown", 5) || !strncmp(changes[i], "chgrp", 5))) {
			cr_log_info("'%s' left out: it needs root", changes[i]);
			continue;
		}
		key_of_cmd(changes[i], k);
		cr_expect_str_neq(k, base, "'%s' kept the key", changes[i]);
	}
}

/* mke2fs -d keeps hard links: two names of one file are another image
 * than two files of the same bytes, and the key of either is stable. */
Test(image, key_changes_with_hard_links)
{
	char copies[IMAGE_KEY_LEN], links[IMAGE_KEY_LEN], again[IMAGE_KEY_LEN], cmd[PATH_MAX * 2];

	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir %1$s/c %1$s/l; echo same >%1$s/c/a; cp -p %1$s/c/a %1$s/c/b; "
		 "echo same >%1$s/l/a; ln %1$s/l/a %1$s/l/b",
		 top);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	key_of(at("c"), IMAGE_DIR, copies);
	key_of(at("l"), IMAGE_DIR, links);
	key_of(at("l"), IMAGE_DIR, again);
	cr_assert_str_neq(copies, links, "hard links kept the key of copies");
	cr_assert_str_eq(links, again);
	/* a name outside the tree is no part of it */
	snprintf(cmd, sizeof(cmd), "ln %1$s/c/a %1$s/outside", top);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	key_of(at("c"), IMAGE_DIR, again);
	cr_assert_str_eq(copies, again, "a link outside the tree changed its key");
	/* nor can a file's bytes stand for a reference to another: c's b
	 * made to hold what l's b is hashed as, with c's a linked outside */
	{
		static const uint8_t ref[17] = {1, 0, 0, 0, 0, 0, 0, 0,	 1,
						0, 0, 0, 0, 0, 0, 0, 'a'};
		FILE *f = fopen(at("c/b"), "w");

		cr_assert_not_null(f);
		cr_assert_eq(fwrite(ref, 1, sizeof(ref), f), sizeof(ref));
		cr_assert_eq(fclose(f), 0);
		snprintf(cmd, sizeof(cmd),
			 "printf 'same-as-a-17-byte' >%1$s/c/a; "
			 "printf 'same-as-a-17-byte' >%1$s/l/a; touch -r %1$s/l/a %1$s/c/b",
			 top);
		cr_assert_eq(system(cmd), 0, "%s", cmd);
		key_of(at("c"), IMAGE_DIR, copies);
		key_of(at("l"), IMAGE_DIR, links);
		cr_assert_str_neq(copies, links, "a file's bytes read as a hard link");
	}
}

/* mke2fs -d copies extended attributes into the image (a file's
 * capabilities, an SELinux label): a tree that differs in one alone is
 * another image. */
Test(image, key_changes_with_an_extended_attribute)
{
	char base[IMAGE_KEY_LEN], k1[IMAGE_KEY_LEN], k2[IMAGE_KEY_LEN], k3[IMAGE_KEY_LEN],
	    k4[IMAGE_KEY_LEN], twin[IMAGE_KEY_LEN], name[64], a[64], b[64], long_value[1001];

	make_tree(at("x"), 0);
	key_of(at("x"), IMAGE_DIR, base);
	if (!set_xattr(at("x/a"), "flint", "1", name))
		cr_skip_test("no extended attribute can be set here (see the log)");
	key_of(at("x"), IMAGE_DIR, k1);
	cr_assert_str_neq(k1, base, "an attribute set kept the key");
	cr_assert(set_xattr(at("x/a"), "flint", "2", name));
	key_of(at("x"), IMAGE_DIR, k2);
	cr_assert_str_neq(k2, k1, "an attribute's value changed kept the key");
	cr_assert(set_xattr(at("x/sub"), "flint", "2", name));
	key_of(at("x"), IMAGE_DIR, k3);
	cr_assert_str_neq(k3, k2, "an attribute on a directory kept the key");
	/* A value longer than the first read's buffer. */
	memset(long_value, 'v', 1000);
	long_value[1000] = '\0';
	cr_assert(set_xattr(at("x/b"), "long", long_value, name));
	key_of(at("x"), IMAGE_DIR, k4);
	cr_assert_str_neq(k4, k3, "a long attribute kept the key");
	long_value[999] = 'w';
	cr_assert(set_xattr(at("x/b"), "long", long_value, name));
	key_of(at("x"), IMAGE_DIR, k1);
	cr_assert_str_neq(k1, k4, "a long attribute's last byte changed kept the key");

	/* Two attributes, set in the other order on a tree of the same
	 * content, listed in another order: the same key. */
	cr_assert(set_xattr(at("x/c"), "flint.a", "1", a));
	cr_assert(set_xattr(at("x/c"), "flint.b", "2", b));
	key_of(at("x"), IMAGE_DIR, k2);
	make_tree(at("y"), 1);
	cr_assert(set_xattr(at("y/a"), "flint", "2", name));
	cr_assert(set_xattr(at("y/sub"), "flint", "2", name));
	cr_assert(set_xattr(at("y/b"), "long", long_value, name));
	cr_assert(set_xattr(at("y/c"), "flint.b", "2", b));
	cr_assert(set_xattr(at("y/c"), "flint.a", "1", a));
	key_of(at("y"), IMAGE_DIR, twin);
	cr_assert_str_eq(twin, k2);
	/* Swapped values: another key. */
	cr_assert(set_xattr(at("y/c"), "flint.b", "1", b));
	cr_assert(set_xattr(at("y/c"), "flint.a", "2", a));
	key_of(at("y"), IMAGE_DIR, twin);
	cr_assert_str_neq(twin, k2, "two attributes' values swapped kept the key");
	/* Each set with the namespace the first took (user or trusted). */
	static const char *const on[][2] = {{"y/a", "flint"},
					    {"y/sub", "flint"},
					    {"y/b", "long"},
					    {"y/c", "flint.a"},
					    {"y/c", "flint.b"}};
	const char *ns = strncmp(a, "user.", 5) ? "trusted" : "user";
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		snprintf(name, sizeof(name), "%s.%s", ns, on[i][1]);
		cr_assert_eq(removexattr(at(on[i][0]), name), 0, "%s %s: %s", on[i][0], name,
			     strerror(errno));
	}
	key_of(at("y"), IMAGE_DIR, twin);
	cr_assert_str_eq(twin, base, "the attributes removed: the first key again");
}

Test(image, key_of_a_file_is_its_bytes)
{
	char k1[IMAGE_KEY_LEN], k2[IMAGE_KEY_LEN], k3[IMAGE_KEY_LEN];

	key_of(put("f1", 10000, 5000, "x", 1), IMAGE_TAR, k1);
	key_of(put("f2", 10000, 5000, "x", 1), IMAGE_TAR, k2);
	key_of(put("f3", 10000, 5000, "y", 1), IMAGE_TAR, k3);
	cr_assert_str_eq(k1, k2);
	cr_assert_str_neq(k1, k3);
}

/* ---- the key is SHA-256: known answers ------------------------------------
 * What image_key hashes, written out here to a file whose digest coreutils'
 * sha256sum takes (not nettle, which image.c uses): image.c's domain string
 * and its NUL, "file" or "dir" and its NUL, then a file's bytes, or, for
 * each entry of the walk in sorted order, its relative path (length first),
 * mode, owner, group, size (a regular file's), device number (a device's),
 * the count of its extended attributes, each a little-endian u64, each
 * attribute's name and value (length first) in the order of their names,
 * then a symlink's target (length first), or for any other entry a u64
 * 0 and its bytes (a regular file's), or 1 and the name the same file
 * (a hard link) was met under first (length first). */
#define KEY_DOMAIN "flint-image 5 sha256"

static void w_u64(FILE *f, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		fputc((int)(v >> (8 * i)) & 0xff, f);
}

static void w_bytes(FILE *f, const void *p, size_t n)
{
	w_u64(f, n);
	fwrite(p, 1, n, f);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* p's extended attributes: those the file system has of its own (an
 * SELinux label) too. */
static void w_xattrs(FILE *f, const char *p)
{
	char names[4096], *v[64], value[4096];
	ssize_t len = llistxattr(p, names, sizeof(names));
	size_t n = 0;

	if (len < 0 && errno == ENOTSUP)
		len = 0;
	cr_assert_geq(len, 0, "%s: %s", p, strerror(errno));
	for (ssize_t i = 0; i < len && n < 64; i += (ssize_t)strlen(names + i) + 1)
		v[n++] = names + i;
	qsort(v, n, sizeof(*v), cmp_str);
	w_u64(f, n);
	for (size_t i = 0; i < n; i++) {
		ssize_t vl = lgetxattr(p, v[i], value, sizeof(value));
		cr_assert_geq(vl, 0, "%s: %s: %s", p, v[i], strerror(errno));
		w_bytes(f, v[i], strlen(v[i]));
		w_bytes(f, value, (size_t)vl);
	}
}

/* An entry's fields, rel its path below the top and p its path here. */
static void w_entry(FILE *f, const char *rel, const char *p)
{
	struct stat st;

	cr_assert_eq(lstat(p, &st), 0, "%s", p);
	w_bytes(f, rel, strlen(rel));
	w_u64(f, st.st_mode);
	w_u64(f, st.st_uid);
	w_u64(f, st.st_gid);
	w_u64(f, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
	w_u64(f, 0); /* no devices in these trees */
	w_xattrs(f, p);
}

static void sha256sum(const char *p, char out[IMAGE_KEY_LEN])
{
	char cmd[PATH_MAX + 32];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "sha256sum %s", p);
	cr_assert_not_null(f = popen(cmd, "r"));
	cr_assert_eq(fscanf(f, "%64s", out), 1, "%s", cmd);
	cr_assert_eq(pclose(f), 0, "%s", cmd);
}

Test(image, key_of_a_file_is_sha256)
{
	char key[IMAGE_KEY_LEN], want[IMAGE_KEY_LEN];
	FILE *f;

	key_of(put("f", 100000, 777, "flint", 5), IMAGE_TAR, key);
	cr_assert_not_null(f = fopen(at("stream"), "w"));
	fwrite(KEY_DOMAIN "\0file", 1, sizeof(KEY_DOMAIN "\0file"), f);
	char *buf = calloc(1, 100000);
	memcpy(buf + 777, "flint", 5);
	fwrite(buf, 1, 100000, f);
	free(buf);
	cr_assert_eq(fclose(f), 0);
	sha256sum(at("stream"), want);
	cr_assert_str_eq(key, want);
}

Test(image, key_of_a_directory_is_sha256)
{
	char key[IMAGE_KEY_LEN], want[IMAGE_KEY_LEN], cmd[PATH_MAX * 2];
	FILE *f;

	/* Made in another order than the walk's (b, then a). */
	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir %1$s/d; cd %1$s/d; mkdir b; printf 'hello\\n' >b/f; "
		 "ln -s b/f a; chmod 751 b",
		 top);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	/* Where none can be set, the stream holds a count of 0 for it. */
	char name[64];
	if (!set_xattr(at("d/b/f"), "flint", "a value", name))
		cr_log_info("the known answer without an extended attribute");
	key_of(at("d"), IMAGE_DIR, key);
	cr_assert_not_null(f = fopen(at("stream"), "w"));
	fwrite(KEY_DOMAIN "\0dir", 1, sizeof(KEY_DOMAIN "\0dir"), f);
	w_entry(f, "", at("d"));
	w_entry(f, "a", at("d/a"));
	w_bytes(f, "b/f", 3);
	w_entry(f, "b", at("d/b"));
	w_entry(f, "b/f", at("d/b/f"));
	w_u64(f, 0); /* not met before */
	fwrite("hello\n", 1, 6, f);
	cr_assert_eq(fclose(f), 0);
	sha256sum(at("stream"), want);
	cr_assert_str_eq(key, want);
}

/* Root reads everything: as root, go on as nobody, top made theirs (the
 * teardown comes back). */
static void read_as_nobody(void)
{
	char cmd[64];

	if (geteuid() != 0)
		return;
	snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 %s", top);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(setegid(65534), 0);
	cr_assert_eq(seteuid(65534), 0);
}

Test(image, key_names_what_it_cannot_read)
{
	char key[IMAGE_KEY_LEN], err[512] = "";

	make_tree(at("t"), 0);
	cr_assert_eq(chmod(at("t/sub/y/file"), 0), 0);
	read_as_nobody();
	cr_assert_lt(image_key(at("t"), IMAGE_DIR, key, err, sizeof(err)), 0);
	/* the image's path with it: a bare "/sub/y/file" reads as the host's */
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/sub/y/file: Permission denied", at("t"));
	cr_assert_not_null(strstr(err, want), "%s", err);
}

/* The fingerprint (the image index's, image.h) reads no content: a file
 * that cannot be read is no obstacle to it; it is not the content key,
 * is the same twice, moves with a time, and is not settled for a tree
 * just made; a file that is not a regular one has none. */
Test(image, fingerprint_reads_no_content)
{
	char fp[IMAGE_KEY_LEN], again[IMAGE_KEY_LEN], key[IMAGE_KEY_LEN], err[512] = "";
	const struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	bool settled = true;

	make_tree(at("t"), 0);
	key_of(at("t"), IMAGE_DIR, key);
	cr_assert_eq(image_fingerprint(at("t"), IMAGE_DIR, fp, &settled, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(strspn(fp, "0123456789abcdef"), 64, "%s", fp);
	cr_assert_str_neq(fp, key);
	cr_assert_not(settled, "a tree made just now");
	cr_assert_eq(image_fingerprint(at("t"), IMAGE_DIR, again, &settled, err, sizeof(err)), 0);
	cr_assert_str_eq(again, fp);
	cr_assert_eq(utimensat(AT_FDCWD, at("t/a"), old, 0), 0);
	cr_assert_eq(image_fingerprint(at("t"), IMAGE_DIR, again, &settled, err, sizeof(err)), 0);
	cr_assert_str_neq(again, fp, "a time moved");

	cr_assert_eq(chmod(at("t/sub/y/file"), 0), 0);
	read_as_nobody();
	cr_assert_lt(image_key(at("t"), IMAGE_DIR, key, err, sizeof(err)), 0);
	cr_assert_eq(image_fingerprint(at("t"), IMAGE_DIR, fp, &settled, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(image_fingerprint(at("t/a"), IMAGE_TAR, fp, &settled, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
	cr_assert_eq(image_fingerprint(at("fifo"), IMAGE_TAR, fp, &settled, err, sizeof(err)),
		     -EINVAL);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}

/* Only local file systems whose ctimes the kernel sets can settle a
 * fingerprint (image.h). */
/* A file's fingerprint, written out as image.c hashes it: its domain and
 * the content key's (each with its NUL), the real path (length first),
 * "file" and its NUL, then the inode's mode, owner, group, size, device
 * numbers, inode number, mtime and ctime (seconds, nanoseconds), each a
 * little-endian u64. With the key's domain in it, index entries written
 * before a change of the key's format name no key after it (they named a
 * domain-2 key, built without the extended attributes, until the index
 * was cleared). */
Test(image, fingerprint_of_a_file_is_sha256)
{
	char fp[IMAGE_KEY_LEN], want[IMAGE_KEY_LEN], err[512] = "", real[PATH_MAX];
	static const char fp_domain[] = "flint-image-index 1 sha256";
	bool settled;
	struct stat st;
	FILE *f;

	put("f", 100, 0, "x", 1);
	cr_assert_not_null(realpath(at("f"), real));
	cr_assert_eq(stat(real, &st), 0);
	cr_assert_eq(image_fingerprint(at("f"), IMAGE_TAR, fp, &settled, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_not_null(f = fopen(at("stream"), "w"));
	fwrite(fp_domain, 1, sizeof(fp_domain), f);
	fwrite(KEY_DOMAIN, 1, sizeof(KEY_DOMAIN), f);
	w_bytes(f, real, strlen(real));
	fwrite("file", 1, 5, f);
	const uint64_t fields[] = {st.st_mode,
				   st.st_uid,
				   st.st_gid,
				   (uint64_t)st.st_size,
				   st.st_rdev,
				   st.st_dev,
				   st.st_ino,
				   (uint64_t)st.st_mtim.tv_sec,
				   (uint64_t)st.st_mtim.tv_nsec,
				   (uint64_t)st.st_ctim.tv_sec,
				   (uint64_t)st.st_ctim.tv_nsec};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		w_u64(f, fields[i]);
	cr_assert_eq(fclose(f), 0);
	sha256sum(at("stream"), want);
	cr_assert_str_eq(fp, want);
}

Test(image, fingerprint_settles_only_on_local_file_systems)
{
	cr_assert(image_fs_keeps_times(EXT4_SUPER_MAGIC));
	cr_assert(image_fs_keeps_times(TMPFS_MAGIC));
	cr_assert(image_fs_keeps_times(XFS_SUPER_MAGIC));
	cr_assert(image_fs_keeps_times(OVERLAYFS_SUPER_MAGIC));
	cr_assert_not(image_fs_keeps_times(NFS_SUPER_MAGIC));
	cr_assert_not(image_fs_keeps_times(SMB2_SUPER_MAGIC));
	cr_assert_not(image_fs_keeps_times(FUSE_SUPER_MAGIC));
	cr_assert_not(image_fs_keeps_times(MSDOS_SUPER_MAGIC));
	cr_assert_not(image_fs_keeps_times(SYSFS_MAGIC));
	cr_assert_not(image_fs_keeps_times(PROC_SUPER_MAGIC));
}

/* Extended attributes that do not fit a file's inode take a block of
 * their own in the image (mke2fs -d copies them): counted. */
Test(image, measure_counts_attributes_beyond_the_inode)
{
	struct image_usage u;
	char err[256] = "", value[200] = {0};
	uint64_t was;

	cr_assert_eq(mkdir(at("m"), 0755), 0);
	put("m/f", 1, 0, "x", 1);
	cr_assert_eq(image_measure(at("m"), &u, err, sizeof(err)), 0, "%s", err);
	was = u.bytes;
	/* 24 bytes of the inode's 96 (with 60 of an SELinux label, which some
	 * hosts give every file, still in it). */
	if (setxattr(at("m/f"), "user.s", value, 1, 0) < 0)
		cr_skip_test("no user attributes in %s: %s", at("m"), strerror(errno));
	cr_assert_eq(image_measure(at("m"), &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.bytes, was, "an attribute the inode holds counted");
	cr_assert_eq(setxattr(at("m/f"), "user.big", value, sizeof(value), 0), 0);
	cr_assert_eq(image_measure(at("m"), &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.bytes, was + 4096);
}

/* A directory's entries are counted as ext4 lays them out (8 bytes and
 * the name, rounded to 4), whatever size the host's file system gives the
 * directory: tmpfs says 20 bytes an entry, whatever the name's length (a
 * tree of long names there did not fit its image). */
Test(image, measure_counts_long_names)
{
	char shm[] = "/dev/shm/flint-measure-XXXXXX", p[PATH_MAX], cmd[64], err[256];
	const char *dir = mkdtemp(shm) ? shm : at("");
	struct image_usage u;
	int fd;

	if (dir != shm)
		cr_log_info("no /dev/shm: measured on %s", dir);
	for (int i = 0; i < 300; i++) {
		snprintf(p, sizeof(p), "%s/%0250d", dir, i);
		cr_assert_geq(fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0, "%s", p);
		close(fd);
	}
	cr_assert_eq(image_measure(dir, &u, err, sizeof(err)), 0, "%s", err);
	if (dir == shm) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", shm);
		cr_assert_eq(system(cmd), 0);
	}
	cr_assert_geq(u.inodes, 301);
	cr_assert_geq(u.bytes, 300 * (8 + 252) + 4096, "%llu", (unsigned long long)u.bytes);
}

Test(image, measure_and_size)
{
	struct image_usage u;
	uint64_t bytes, inodes;
	char err[256];

	cr_assert_eq(mkdir(at("m"), 0755), 0);
	put("m/big", 10000, 0, NULL, 0);
	put("m/small", 1, 0, "x", 1);
	cr_assert_eq(symlink("short", at("m/l")), 0);
	cr_assert_eq(image_measure(at("m"), &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.inodes, 4);
	/* 12 KiB, 4 KiB, the directory's block, a block for the three names'
	 * entries; the short symlink in its inode */
	cr_assert_eq(u.bytes, 3 * 4096 + 4096 + 4096 + 4096);
	image_size_for(&u, &bytes, &inodes);
	cr_assert_eq(bytes % (1 << 20), 0);
	cr_assert_geq(bytes, u.bytes + (16 << 20));
	cr_assert_geq(inodes, u.inodes + 10);

	u = (struct image_usage){.bytes = 1ULL << 30, .inodes = 40000};
	image_size_for(&u, &bytes, &inodes);
	cr_assert_geq(bytes, (1ULL << 30) + (1ULL << 30) / 8);
	cr_assert_geq(inodes, 50000);
}
