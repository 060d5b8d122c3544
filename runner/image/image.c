/* What a path given to --image holds, and the key of its content. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <nettle/sha2.h>
#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "image/image.h"

#define EXT4_MAGIC_OFF 1080
#define TAR_MAGIC_OFF  257
#define TAR_BLOCK      512
#define BLOCK	       4096ULL
/* Changes the key of every image when what an image is built from, or
 * how, or the hash, changes (2: SHA-256, where 1 was XXH3-128; 3: with
 * a directory's extended attributes, which mke2fs -d copies; 4: with a
 * tar archive's, which a build as root now extracts; 5: with a
 * directory's hard links, which mke2fs -d keeps). Not the times: a tree
 * made again with new ones is the same image (whose files keep the
 * times of the tree it was first built from). */
#define KEY_DOMAIN "flint-image 5 sha256"
/* The fingerprint's, so that no fingerprint is ever a content key. The
 * key's domain is hashed after it: an index entry names a key computed
 * as today's keys are, or none (a new KEY_DOMAIN forgets the index). */
#define FINGERPRINT_DOMAIN "flint-image-index 1 sha256"
/* image_fingerprint's settled: how much older than the walk every time
 * must be (image.h). */
#define SETTLE_S 2

const char *image_kind_name(enum image_kind k)
{
	switch (k) {
	case IMAGE_DIR:
		return "directory";
	case IMAGE_EXT4:
		return "ext4 image";
	case IMAGE_TAR:
		return "tar archive";
	case IMAGE_TAR_GZ:
		return "gzip-compressed tar archive";
	case IMAGE_TAR_XZ:
		return "xz-compressed tar archive";
	case IMAGE_TAR_ZST:
		return "zstd-compressed tar archive";
	}
	return "?";
}

static bool has_tar_magic(const uint8_t *b, size_t n)
{
	return n >= TAR_MAGIC_OFF + 5 && !memcmp(b + TAR_MAGIC_OFF, "ustar", 5);
}

/* The first block of the gzip stream on fd (read from offset 0; fd stays
 * open) is a tar header. */
static bool gzip_holds_tar(int fd)
{
	uint8_t b[TAR_BLOCK];
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	gzFile gz;
	int n;

	if (dfd < 0 || lseek(dfd, 0, SEEK_SET) < 0 || !(gz = gzdopen(dfd, "rb"))) {
		close_fd(&dfd);
		return false;
	}
	n = gzread(gz, b, sizeof(b));
	gzclose(gz); /* closes dfd */
	return n == TAR_BLOCK && has_tar_magic(b, (size_t)n);
}

int image_detect(const char *path, enum image_kind *kind, char *err, size_t errlen)
{
	static const uint8_t gz[] = {0x1f, 0x8b}, xz[] = {0xfd, '7', 'z', 'X', 'Z', 0},
			     zst[] = {0x28, 0xb5, 0x2f, 0xfd};
	uint8_t b[EXT4_MAGIC_OFF + 2];
	struct stat st;
	/* O_NONBLOCK: a FIFO (or a device) named as the image is refused
	 * below, not waited on for a writer forever. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		*kind = IMAGE_DIR;
		goto out;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = err_set(err, errlen, -EINVAL,
			    "%s: neither a directory, a file nor a block device", path);
		goto out;
	}
	n = pread(fd, b, sizeof(b), 0);
	if (n < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (n == 0) {
		r = err_set(err, errlen, -EINVAL, "%s: an empty file, not an image", path);
		goto out;
	}
	if ((size_t)n >= sizeof(gz) && !memcmp(b, gz, sizeof(gz))) {
		*kind = IMAGE_TAR_GZ;
		if (!gzip_holds_tar(fd))
			r = err_set(err, errlen, -EINVAL,
				    "%s: gzip data that does not start with a tar archive (or "
				    "is truncated)",
				    path);
	} else if ((size_t)n >= sizeof(xz) && !memcmp(b, xz, sizeof(xz))) {
		*kind = IMAGE_TAR_XZ;
	} else if ((size_t)n >= sizeof(zst) && !memcmp(b, zst, sizeof(zst))) {
		*kind = IMAGE_TAR_ZST;
	} else if (has_tar_magic(b, (size_t)n)) {
		*kind = IMAGE_TAR;
	} else if ((size_t)n == sizeof(b) && b[EXT4_MAGIC_OFF] == 0x53 &&
		   b[EXT4_MAGIC_OFF + 1] == 0xef) {
		*kind = IMAGE_EXT4;
	} else {
		r = err_set(err, errlen, -EINVAL,
			    "%s: not an image flint knows (%zd bytes%s): expected a directory, an "
			    "ext4 image, or a tar archive, plain or compressed with gzip, xz or "
			    "zstd",
			    path, n, (size_t)n < sizeof(b) ? ", truncated?" : " read");
	}
out:
	close_fd(&fd);
	return r;
}

bool image_is_ext4(const char *path)
{
	enum image_kind k;

	return image_detect(path, &k, NULL, 0) == 0 && k == IMAGE_EXT4;
}

/* ---- walking a tree ------------------------------------------------------ */

struct walk;
/* Called for each entry (the top one with name "" and parent -1), in
 * sorted order, before the entries of a directory. */
typedef int visit_fn(struct walk *w, int parent, const char *name, const struct stat *st);

struct walk {
	visit_fn *visit;
	const char *top;     /* the image's path: messages name it, not a bare
			      * "/etc/x" that reads as the host's */
	char path[PATH_MAX]; /* the entry's path relative to the top, "" for it */
	char *err;
	size_t errlen;
	struct sha256_ctx *hash;    /* image_key, image_fingerprint */
	struct image_usage *use;    /* image_measure */
	struct timespec settled_by; /* image_fingerprint: times after this */
	bool settled;		    /* ... clear this, as does another st_dev */
	bool dev_known;		    /* dev: the first entry's (the top's) */
	dev_t dev;
	void *links;	       /* image_key: the files of more than one name met (tsearch) */
	uint64_t dirent_bytes; /* image_measure: the entries' in their directories */
};

/* A file of more than one name (hard links) and the first met. */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char path[];
};

static int cmp_link(const void *a, const void *b)
{
	const struct link_seen *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* The name a file of st met under another name first, or NULL (and it
 * is noted under w->path): mke2fs -d keeps hard links, so they are part
 * of the content. -ENOMEM. */
static int first_name(struct walk *w, const struct stat *st, const char **first)
{
	size_t n = strlen(w->path) + 1;
	struct link_seen *l = malloc(sizeof(*l) + n), **at;

	*first = NULL;
	if (!l)
		return -ENOMEM;
	l->dev = st->st_dev;
	l->ino = st->st_ino;
	memcpy(l->path, w->path, n);
	if (!(at = tsearch(l, &w->links, cmp_link))) {
		free(l);
		return -ENOMEM;
	}
	if (*at != l) {
		free(l);
		*first = (*at)->path;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in the directory fd (. and .. left out), sorted as bytes, in a
 * malloc'd array of malloc'd strings. */
static int read_names(struct walk *w, int fd, char ***out, size_t *count)
{
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int r = 0;

	if (!d) {
		r = err_set(w->err, w->errlen, -errno, "cannot read directory %s/%s: %s", w->top,
			    w->path, strerror(errno));
		close_fd(&dfd);
		return r;
	}
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap) {
			char **nv = realloc(v, (cap = cap ? 2 * cap : 32) * sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
		if (!(v[n] = strdup(e->d_name)))
			goto nomem;
		n++;
		errno = 0;
	}
	if (errno) {
		r = err_set(w->err, w->errlen, -errno, "cannot read directory %s/%s: %s", w->top,
			    w->path, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_names);
	*out = v;
	*count = n;
	return 0;
nomem:
	r = err_set(w->err, w->errlen, -ENOMEM, "out of memory");
fail:
	while (n)
		free(v[--n]);
	free(v);
	closedir(d);
	return r;
}

static int walk_dir(struct walk *w, int fd)
{
	size_t len = strlen(w->path), n = 0;
	char **names = NULL;
	int r = read_names(w, fd, &names, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct stat st;

		if ((size_t)snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "/" : "",
				     names[i]) >= sizeof(w->path) - len) {
			r = err_set(w->err, w->errlen, -ENAMETOOLONG,
				    "a path too long below %s/%.*s", w->top, (int)len, w->path);
			break;
		}
		if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = err_set(w->err, w->errlen, -errno, "%s/%s: %s", w->top, w->path,
				    strerror(errno));
			break;
		}
		if ((r = w->visit(w, fd, names[i], &st)) < 0)
			break;
		if (S_ISDIR(st.st_mode)) {
			int sub =
			    openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = err_set(w->err, w->errlen, -errno, "%s/%s: %s", w->top, w->path,
					    strerror(errno));
				break;
			}
			r = walk_dir(w, sub);
			close_fd(&sub);
		}
		w->path[len] = '\0';
	}
	w->path[len] = '\0';
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* Walk the tree at top (a directory; a symlink to one is followed). */
static int walk_tree(struct walk *w, const char *top)
{
	int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
	struct stat st;

	w->top = top;
	w->path[0] = '\0';
	if (fd < 0)
		return err_set(w->err, w->errlen, -errno, "%s: %s", top, strerror(errno));
	if (fstat(fd, &st) < 0)
		r = err_set(w->err, w->errlen, -errno, "%s: %s", top, strerror(errno));
	else if ((r = w->visit(w, -1, "", &st)) == 0)
		r = walk_dir(w, fd);
	close_fd(&fd);
	return r;
}

/* ---- the key ------------------------------------------------------------- */

static void put_u64(struct sha256_ctx *h, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	sha256_update(h, sizeof(b), b);
}

/* Length first, so that no two sequences of fields hash the same bytes. */
static void put_bytes(struct sha256_ctx *h, const void *p, size_t n)
{
	put_u64(h, n);
	sha256_update(h, n, p);
}

/* Hash fd's bytes to its end; *total: how many there were. */
static int hash_fd(struct sha256_ctx *h, int fd, uint64_t *total)
{
	uint8_t buf[1 << 16]; /* on the stack: a static __thread buffer is in every thread's TLS */
	ssize_t n;

	*total = 0;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sha256_update(h, (size_t)n, buf);
		*total += (uint64_t)n;
	}
	return 0;
}

/* The target of the symlink name in parent, hashed. */
static int put_link(struct walk *w, int parent, const char *name)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(parent, name, target, sizeof(target));

	if (n < 0 || (size_t)n == sizeof(target))
		return err_set(w->err, w->errlen, n < 0 ? -errno : -ENAMETOOLONG,
			       "%s/%s: cannot read the symlink: %s", w->top, w->path,
			       n < 0 ? strerror(errno) : "too long");
	put_bytes(w->hash, target, (size_t)n);
	return 0;
}

/* The extended attributes mke2fs -d would copy into the image (those
 * llistxattr shows, a symlink's own), into *names (malloc'd, each
 * NUL-terminated, *len bytes in all; NULL and 0 for none). By path, the
 * image's and the entry's, where the rest of the walk goes by the parent's
 * fd: no system call reads a symlink's attributes by fd (a directory
 * swapped for a symlink meanwhile is seen by the index's check of the
 * times, build.c's index_unchanged). */
static int list_xattrs(const char *p, char **names, ssize_t *len)
{
	*len = 0;
	for (int tries = 0; tries < 8; tries++) {
		ssize_t n = llistxattr(p, NULL, 0);

		if (n <= 0) /* none, or a file system without them */
			return n == 0 || errno == ENOTSUP ? 0 : -errno;
		if (!(*names = malloc((size_t)n + 1)))
			return -ENOMEM;
		if ((*len = llistxattr(p, *names, (size_t)n)) >= 0) {
			(*names)[*len] = '\0';
			return 0;
		}
		free(*names);
		*names = NULL;
		if (errno != ERANGE) /* ERANGE: one was added meanwhile */
			return -errno;
	}
	return -EAGAIN;
}

/* Hash one attribute's name and value. */
static int put_xattr(struct walk *w, const char *p, const char *name)
{
	char small[256], *v = small;
	ssize_t n = lgetxattr(p, name, small, sizeof(small));
	int r = 0;

	if (n < 0 && errno == ERANGE && (n = lgetxattr(p, name, NULL, 0)) >= 0) {
		if (!(v = malloc((size_t)n + 1)))
			return -ENOMEM;
		n = lgetxattr(p, name, v, (size_t)n + 1);
	}
	if (n < 0) {
		/* grew again, or gone: changed while it was read */
		r = errno == ERANGE || errno == ENODATA ? -EAGAIN : -errno;
	} else {
		put_bytes(w->hash, name, strlen(name));
		put_bytes(w->hash, v, (size_t)n);
	}
	if (v != small)
		free(v);
	return r;
}

/* The entry's extended attributes, sorted by name: their count, then
 * each name and value. */
static int put_xattrs(struct walk *w)
{
	char p[PATH_MAX], *names = NULL, **v = NULL;
	ssize_t len = 0;
	size_t count = 0;
	int r;

	if ((size_t)snprintf(p, sizeof(p), "%s%s%s", w->top, w->path[0] ? "/" : "", w->path) >=
	    sizeof(p))
		return err_set(w->err, w->errlen, -ENAMETOOLONG, "%s/%s: path too long", w->top,
			       w->path);
	if ((r = list_xattrs(p, &names, &len)) < 0)
		goto out;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1)
		count++;
	if (count && !(v = calloc(count, sizeof(*v)))) {
		r = -ENOMEM;
		goto out;
	}
	count = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1)
		v[count++] = names + i;
	if (count > 1)
		qsort(v, count, sizeof(*v), cmp_names);
	put_u64(w->hash, count);
	for (size_t i = 0; r == 0 && i < count; i++)
		r = put_xattr(w, p, v[i]);
out:
	free(v);
	free(names);
	if (r == -EAGAIN)
		return err_set(w->err, w->errlen, r, "%s changed while it was read", p);
	if (r < 0)
		return err_set(w->err, w->errlen, r, "%s: cannot read its extended attributes: %s",
			       p, strerror(-r));
	return 0;
}

static int hash_entry(struct walk *w, int parent, const char *name, const struct stat *st)
{
	struct sha256_ctx *h = w->hash;
	bool reg = S_ISREG(st->st_mode);
	int r;

	put_bytes(h, w->path, strlen(w->path));
	put_u64(h, st->st_mode);
	put_u64(h, st->st_uid);
	put_u64(h, st->st_gid);
	/* A directory's size is the file system's business, not the content. */
	put_u64(h, reg ? (uint64_t)st->st_size : 0);
	put_u64(h, S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? st->st_rdev : 0);
	if ((r = put_xattrs(w)) < 0)
		return r;
	if (S_ISLNK(st->st_mode))
		return put_link(w, parent, name);
	if (!S_ISDIR(st->st_mode)) {
		const char *first = NULL;

		if (st->st_nlink > 1 && (r = first_name(w, st, &first)) < 0)
			return err_set(w->err, w->errlen, r, "%s: %s", w->top, strerror(-r));
		/* Whether it is a file met before, for every one (else a
		 * file's bytes could read as another's reference): then the
		 * name it was met under, not its bytes again. A name outside
		 * the tree is no part of it. */
		put_u64(h, first ? 1 : 0);
		if (first) {
			put_bytes(h, first, strlen(first));
			return 0;
		}
	}
	if (!reg)
		return 0;
	int fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	uint64_t total = 0;

	if (fd < 0)
		return err_set(w->err, w->errlen, -errno, "%s/%s: %s", w->top, w->path,
			       strerror(errno));
	r = hash_fd(h, fd, &total);
	close_fd(&fd);
	if (r < 0)
		return err_set(w->err, w->errlen, r, "%s/%s: %s", w->top, w->path, strerror(-r));
	if (total != (uint64_t)st->st_size)
		return err_set(w->err, w->errlen, -EAGAIN, "%s/%s changed while it was read",
			       w->top, w->path);
	return 0;
}

bool image_key_text(const char *s)
{
	for (int i = 0; i < IMAGE_KEY_LEN - 1; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void key_text(struct sha256_ctx *h, char key[IMAGE_KEY_LEN])
{
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_digest(h, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(key + 2 * i, 3, "%02x", d[i]);
}

void image_hash_text(const void *p, size_t n, char out[IMAGE_KEY_LEN])
{
	struct sha256_ctx h;

	sha256_init(&h);
	sha256_update(&h, n, p);
	key_text(&h, out);
}

int image_key(const char *path, enum image_kind kind, char key[IMAGE_KEY_LEN], char *err,
	      size_t errlen)
{
	struct sha256_ctx hash;
	struct walk w = {.visit = hash_entry, .err = err, .errlen = errlen, .hash = &hash};
	int r;

	sha256_init(w.hash);
	sha256_update(w.hash, sizeof(KEY_DOMAIN), (const uint8_t *)KEY_DOMAIN);
	if (kind == IMAGE_DIR) {
		sha256_update(w.hash, 4, (const uint8_t *)"dir");
		r = walk_tree(&w, path);
		tdestroy(w.links, free);
	} else {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		uint64_t total;

		sha256_update(w.hash, 5, (const uint8_t *)"file");
		r = fd < 0 ? -errno : hash_fd(w.hash, fd, &total);
		close_fd(&fd);
		if (r < 0)
			err_set(err, errlen, r, "%s: %s", path, strerror(-r));
	}
	if (r == 0)
		key_text(w.hash, key);
	return r;
}

/* ---- the fingerprint ----------------------------------------------------- */

static bool later(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec != b->tv_sec ? a->tv_sec > b->tv_sec : a->tv_nsec > b->tv_nsec;
}

/* What the fingerprint takes of an entry's inode. Sound because of the
 * ctime: the kernel sets it to the current time on every change to the
 * inode, its content (a write, a truncate) or its metadata (chmod,
 * chown, a link, utimensat itself), and no system call sets it to a
 * value of the caller's choosing: only changing the clock, which takes
 * root, could bring an old one back. mtime, which utimensat sets, is
 * there too, and the inode and device numbers, so that a file replaced
 * by another (a rename over it) is another entry. */
static void put_inode(struct walk *w, const struct stat *st)
{
	struct sha256_ctx *h = w->hash;

	put_u64(h, st->st_mode);
	put_u64(h, st->st_uid);
	put_u64(h, st->st_gid);
	put_u64(h, (uint64_t)st->st_size);
	put_u64(h, st->st_rdev);
	put_u64(h, st->st_dev);
	put_u64(h, st->st_ino);
	put_u64(h, (uint64_t)st->st_mtim.tv_sec);
	put_u64(h, (uint64_t)st->st_mtim.tv_nsec);
	put_u64(h, (uint64_t)st->st_ctim.tv_sec);
	put_u64(h, (uint64_t)st->st_ctim.tv_nsec);
	if (later(&st->st_mtim, &w->settled_by) || later(&st->st_ctim, &w->settled_by))
		w->settled = false;
	/* A mount inside a tree: its file system may keep times otherwise
	 * (local_times). */
	if (w->dev_known && st->st_dev != w->dev)
		w->settled = false;
	w->dev = st->st_dev;
	w->dev_known = true;
}

bool image_fs_keeps_times(unsigned long f_type)
{
	static const unsigned long ok[] = {EXT4_SUPER_MAGIC,  XFS_SUPER_MAGIC,
					   BTRFS_SUPER_MAGIC, TMPFS_MAGIC,
					   F2FS_SUPER_MAGIC,  OVERLAYFS_SUPER_MAGIC};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (f_type == ok[i])
			return true;
	return false;
}

/* Whether the file system at path keeps times as put_inode relies on
 * (image.h). */
static bool local_times(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && image_fs_keeps_times((unsigned long)sf.f_type);
}

static int fingerprint_entry(struct walk *w, int parent, const char *name, const struct stat *st)
{
	put_bytes(w->hash, w->path, strlen(w->path));
	put_inode(w, st);
	return S_ISLNK(st->st_mode) ? put_link(w, parent, name) : 0;
}

int image_fingerprint(const char *path, enum image_kind kind, char fp[IMAGE_KEY_LEN], bool *settled,
		      char *err, size_t errlen)
{
	struct sha256_ctx hash;
	struct walk w = {.visit = fingerprint_entry,
			 .err = err,
			 .errlen = errlen,
			 .hash = &hash,
			 .settled = true};
	char real[PATH_MAX];
	struct stat st;
	int r = 0;

	/* Taken before the walk: a change after this moves a time past it. */
	clock_gettime(CLOCK_REALTIME, &w.settled_by);
	w.settled_by.tv_sec -= SETTLE_S;
	if (!realpath(path, real))
		return err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
	sha256_init(w.hash);
	sha256_update(w.hash, sizeof(FINGERPRINT_DOMAIN), (const uint8_t *)FINGERPRINT_DOMAIN);
	sha256_update(w.hash, sizeof(KEY_DOMAIN), (const uint8_t *)KEY_DOMAIN);
	put_bytes(w.hash, real, strlen(real));
	if (kind == IMAGE_DIR) {
		sha256_update(w.hash, 4, (const uint8_t *)"dir");
		r = walk_tree(&w, real);
	} else if (stat(real, &st) < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		/* A block device's content changes no time of its node. */
		r = err_set(err, errlen, -EINVAL, "%s: not a regular file", path);
	} else {
		sha256_update(w.hash, 5, (const uint8_t *)"file");
		put_inode(&w, &st);
	}
	if (r == 0) {
		key_text(w.hash, fp);
		*settled = w.settled && local_times(real);
	}
	return r;
}

/* ---- size ---------------------------------------------------------------- */

static uint64_t blocks_of(uint64_t bytes)
{
	return (bytes + BLOCK - 1) / BLOCK * BLOCK;
}

/* Room for extended attributes in a 256-byte inode beside its fixed
 * fields (ext4's i_extra_isize of 32): what does not fit there takes a
 * block of its own. */
#define INODE_XATTR_ROOM 96u

static uint64_t round4(uint64_t n)
{
	return (n + 3) & ~(uint64_t)3;
}

/* The bytes the entry's extended attributes take beyond its inode, as ext4
 * lays them out: a header and an end marker, and for each a 16-byte entry,
 * its name without its namespace's prefix ("user.", "security.", ...) and
 * its value, each rounded to 4 bytes; in blocks when they do not all fit
 * the inode (mke2fs -d copies them; a tree with a large attribute on each
 * file did not fit the image sized without them). */
static uint64_t xattr_bytes(struct walk *w)
{
	char p[PATH_MAX], *names = NULL;
	uint64_t total = 8;
	ssize_t len = 0;

	if ((size_t)snprintf(p, sizeof(p), "%s%s%s", w->top, w->path[0] ? "/" : "", w->path) >=
		sizeof(p) ||
	    list_xattrs(p, &names, &len) < 0 || !len) {
		free(names);
		return 0;
	}
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
		const char *dot = strchr(names + i, '.');
		ssize_t n = lgetxattr(p, names + i, NULL, 0);

		total += 16 + round4(strlen(dot ? dot + 1 : names + i)) +
			 round4(n > 0 ? (uint64_t)n : 0);
	}
	free(names);
	return total > INODE_XATTR_ROOM ? blocks_of(total) : 0;
}

static int measure_entry(struct walk *w, int parent, const char *name, const struct stat *st)
{
	(void)parent;
	w->use->inodes++;
	w->use->bytes += xattr_bytes(w);
	/* Its entry in its directory, as ext4 lays one out: not the host's
	 * size of the directory (tmpfs says 20 bytes an entry). */
	if (w->path[0])
		w->dirent_bytes += 8 + round4(strlen(name));
	if (S_ISREG(st->st_mode))
		w->use->bytes += blocks_of((uint64_t)st->st_size);
	else if (S_ISDIR(st->st_mode))
		w->use->bytes += BLOCK;			    /* . and .. */
	else if (S_ISLNK(st->st_mode) && st->st_size >= 60) /* longer ones fit the inode */
		w->use->bytes += BLOCK;
	return 0;
}

int image_measure(const char *dir, struct image_usage *u, char *err, size_t errlen)
{
	struct walk w = {.visit = measure_entry, .err = err, .errlen = errlen, .use = u};
	int r;

	*u = (struct image_usage){0};
	r = walk_tree(&w, dir);
	/* Half as much again: blocks not full, a large directory's index. */
	u->bytes += blocks_of(w.dirent_bytes + w.dirent_bytes / 2);
	return r;
}

void image_size_for(const struct image_usage *u, uint64_t *bytes, uint64_t *inodes)
{
	const uint64_t mib = 1ULL << 20;
	/* Inodes: the entries and a quarter more (lost+found, slack). */
	uint64_t n = u->inodes + u->inodes / 4 + 256;
	/* Bytes: the data, an eighth more for extent trees, bitmaps and group
	 * descriptors, 256-byte inodes, and 16 MiB of headroom. The image is
	 * a sparse file: what is never written costs nothing. */
	uint64_t b = u->bytes + u->bytes / 8 + n * 256 + 16 * mib;

	*inodes = n;
	*bytes = (b + mib - 1) / mib * mib;
}
