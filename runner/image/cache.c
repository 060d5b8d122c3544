/* The image cache's upkeep: holds, pins and the trim. See cache.h. */
#include "image/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"

/* images/pins/: one directory a snapshot's path, holding PIN_SNAPSHOT (the
 * path) and one directory for each flint run that pinned images for it,
 * named by when it did (realtime ns, 20 digits) and a random part: its
 * PIN_LOCK, flocked shared while that flint runs, and a hard link to each
 * image it boots from. A sweep keeps a run's directory while its flint
 * runs; after, only the last one made before the file at the snapshot's
 * path was written (that file is its snapshot: the later ones never
 * saved, the earlier ones' snapshots were written over), and none once no
 * file is there. PINS_LOCK, in pins/, is taken shared while a pin is made
 * and exclusive while pins are swept, so that a sweep never takes a pin
 * being made. */
#define PINS	     "pins"
#define PINS_LOCK    ".lock"
#define PIN_LOCK     "lock"
#define PIN_SNAPSHOT "snapshot"
#define INDEX	     "index"

static const char *human(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ULL << 30))
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1ULL << 30));
	else
		snprintf(buf, len, "%.1f MiB", (double)bytes / (1ULL << 20));
	return buf;
}

static const char *age(time_t s, char *buf, size_t len)
{
	if (s >= 2 * 86400)
		snprintf(buf, len, "%lld days", (long long)(s / 86400));
	else if (s >= 2 * 3600)
		snprintf(buf, len, "%lld h", (long long)(s / 3600));
	else
		snprintf(buf, len, "%lld min", (long long)(s / 60));
	return buf;
}

/* A key's text (or a fingerprint's), then suffix. */
static bool keyed_name(const char *name, const char *suffix)
{
	return image_key_text(name) && !strcmp(name + IMAGE_KEY_LEN - 1, suffix);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The directory name under dirfd ("." for dirfd's own), opened for a
 * readdir with an offset of its own (not followed); NULL when it cannot
 * be. */
static DIR *dir_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0)
		close(fd);
	return d;
}

/* Up to len bytes of the small file name under dirfd: not followed, and
 * never waiting (O_NONBLOCK: a FIFO planted there). The count, or -1. */
static ssize_t read_small(int dirfd, const char *name, void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len);
	close(fd);
	return n;
}

/* ---- holding an image ---------------------------------------------------- */

int image_hold(const char *path, int *out)
{
	const struct timespec used[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};
	struct stat held, named;
	int r = -EAGAIN;

	if (out)
		*out = -1;
	/* Opened again only when the name came to name another file between
	 * the open and the lock (a build's rename over what was no image, or
	 * on a file system without hard links: build.c): a few tries are
	 * plenty. */
	for (int tries = 0; tries < 3 && r == -EAGAIN; tries++) {
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			return -errno;
		/* A trim holds it exclusive from its check to its unlink:
		 * after that, the name is gone or another file's. Where flock
		 * is not to be had (NFS without its lock daemon) nothing is
		 * held, and a trim, which cannot lock either, removes nothing. */
		if (flock(fd, LOCK_SH) < 0 && errno != ENOLCK && errno != EOPNOTSUPP)
			r = -errno;
		else if (fstat(fd, &held) < 0 || lstat(path, &named) < 0)
			r = -errno;
		else if (same_file(&held, &named))
			r = 0;
		if (r < 0) {
			close(fd);
			continue;
		}
		/* Advice for the trim only: a cache on a read-only file system
		 * still serves. */
		(void)futimens(fd, used);
		if (out)
			*out = fd;
		else
			close(fd);
	}
	return r;
}

/* ---- sweeping the pins ---------------------------------------------------- */

/* Remove the directory name in dfd and the plain files in it. */
static void remove_pin(int dfd, const char *name)
{
	DIR *d = dir_at(dfd, name);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		pr_debug("flint run: cannot remove the pin %s: %s", name, strerror(errno));
}

/* One run's directory in a pin (image_pin). */
struct pin_run {
	char name[NAME_MAX + 1];
	uint64_t made; /* realtime ns */
	bool held;     /* its flint runs */
};

/* The runs in the pin directory d, up to cap (more are kept unswept). */
static size_t list_runs(DIR *d, struct pin_run *v, size_t cap)
{
	char lock[NAME_MAX + 8];
	struct dirent *e;
	size_t n = 0;
	int fd;

	while (n < cap && (e = readdir(d))) {
		char *end;
		unsigned long long t = strtoull(e->d_name, &end, 10);

		if (end - e->d_name != 20 || *end != '-')
			continue;
		snprintf(v[n].name, sizeof(v[n].name), "%s", e->d_name);
		v[n].made = t;
		snprintf(lock, sizeof(lock), "%s/" PIN_LOCK, e->d_name);
		fd = openat(dirfd(d), lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		v[n].held = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0;
		close_fd(&fd);
		n++;
	}
	return n;
}

/* Sweep the pin name in dfd as the layout above says. */
static void sweep_pin(int dfd, const char *name)
{
	char path[PATH_MAX + 2], snap[NAME_MAX + 16];
	struct pin_run runs[64];
	const struct pin_run *last = NULL;
	size_t n, left;
	uint64_t written = 0;
	bool gone;
	struct stat st;
	DIR *d;
	ssize_t len;

	snprintf(snap, sizeof(snap), "%s/" PIN_SNAPSHOT, name);
	len = read_small(dfd, snap, path, sizeof(path) - 1);
	if (len < 2 || path[0] != '/' || path[len - 1] != '\n')
		gone = true; /* not a pin flint made whole */
	else {
		path[len - 1] = '\0';
		if (lstat(path, &st) == 0)
			written = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
				  (uint64_t)st.st_mtim.tv_nsec;
		else if (errno != ENOENT && errno != ENOTDIR)
			return; /* cannot be told: kept */
		gone = !written;
	}
	if (!(d = dir_at(dfd, name)))
		return;
	n = list_runs(d, runs, sizeof(runs) / sizeof(runs[0]));
	for (size_t i = 0; i < n && !gone; i++)
		if (!runs[i].held && runs[i].made <= written &&
		    (!last || runs[i].made > last->made))
			last = &runs[i];
	left = n;
	/* With no run older than the file (a copy that kept an old mtime),
	 * which one saved it cannot be told: all are kept. */
	for (size_t i = 0; i < n && (gone || last); i++)
		if (!runs[i].held && &runs[i] != last) {
			remove_pin(dirfd(d), runs[i].name);
			left--;
		}
	closedir(d);
	if (!left && n < sizeof(runs) / sizeof(runs[0]) && gone) {
		pr_info("flint run: image cache: unpinning the images of a snapshot that is gone "
			"(%s)",
			len >= 2 ? path : name);
		remove_pin(dfd, name);
	}
}

static void sweep_pins(int images)
{
	DIR *d = dir_at(images, PINS);
	int lock = d ? openat(dirfd(d), PINS_LOCK, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	struct dirent *e;

	if (lock >= 0 && flock(lock, LOCK_EX) == 0)
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				sweep_pin(dirfd(d), e->d_name);
	if (d)
		closedir(d);
	close_fd(&lock);
}

/* ---- the trim --------------------------------------------------------------- */

struct cached {
	char name[IMAGE_KEY_LEN + 5]; /* <key>.ext4 */
	time_t used;
	uint64_t bytes;
};

static int by_use(const void *a, const void *b)
{
	const struct cached *x = a, *y = b;

	return (x->used > y->used) - (x->used < y->used);
}

/* Remove the image name in dfd unless it is held, linked elsewhere or
 * used since now - IMAGE_CACHE_RECENT_S, under an exclusive lock, so that
 * a holder's check (image_hold) sees it gone. Between the check and the
 * unlink no build puts another file under the name: a build never
 * replaces an image (build.c). REMOVED, GONE (another trim removed it
 * first: its bytes are free all the same) or KEPT. */
enum { KEPT, REMOVED, GONE };
static int remove_image(int dfd, const char *name, time_t now)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat held, named;
	int gone = KEPT;

	if (fd < 0)
		return errno == ENOENT ? GONE : KEPT;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && held.st_nlink == 1 &&
	    held.st_mtime <= now - IMAGE_CACHE_RECENT_S &&
	    fstatat(dfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&held, &named))
		gone = unlinkat(dfd, name, 0) == 0 ? REMOVED : KEPT;
	close(fd);
	return gone;
}

/* The images in dfd (a readdir of it in d), as a malloc'd array; their
 * total bytes on disk in *total. */
static struct cached *list_images(DIR *d, size_t *count, uint64_t *total)
{
	struct cached *v = NULL, *grown;
	size_t n = 0, cap = 0;
	struct dirent *e;
	struct stat st;

	*total = 0;
	while ((e = readdir(d))) {
		if (!keyed_name(e->d_name, ".ext4") ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(grown = realloc(v, cap * sizeof(*v))))
				break;
			v = grown;
		}
		memcpy(v[n].name, e->d_name, sizeof(v[n].name)); /* keyed_name: its length */
		v[n].used = st.st_mtime;
		v[n].bytes = (uint64_t)st.st_blocks * 512;
		*total += v[n++].bytes;
	}
	*count = n;
	return v;
}

static void trim_images(int images, const char *path, uint64_t max)
{
	char a[32], b[32];
	uint64_t total, freed = 0;
	size_t n = 0, removed = 0;
	time_t now = time(NULL);
	DIR *d = dir_at(images, ".");
	struct cached *v;

	if (!d)
		return;
	v = list_images(d, &n, &total);
	closedir(d);
	if (total <= max) {
		free(v);
		return;
	}
	qsort(v, n, sizeof(*v), by_use);
	for (size_t i = 0; i < n && total - freed > max; i++)
		switch (remove_image(images, v[i].name, now)) {
		case REMOVED:
			removed++;
			pr_info("flint run: image cache: removed %s/%s (%s, last used %s ago)",
				path, v[i].name, human(v[i].bytes, a, sizeof(a)),
				age(now - v[i].used, b, sizeof(b)));
			/* fall through */
		case GONE:
			freed += v[i].bytes;
		}
	if (total - freed > max)
		pr_warn("flint run: image cache %s: %s of images, over its limit of %s: the rest "
			"is in use, pinned by a snapshot, linked into a jail, or used in the last "
			"minute",
			path, human(total - freed, a, sizeof(a)), human(max, b, sizeof(b)));
	pr_debug("flint run: image cache %s: %zu of %zu images removed", path, removed, n);
	free(v);
}

/* Index entries (build.c) whose image is gone, and the files of writers
 * that died between their write and their rename. */
static void sweep_index(int images)
{
	DIR *d = dir_at(images, INDEX);
	time_t now = time(NULL);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char line[IMAGE_KEY_LEN + 1], name[IMAGE_KEY_LEN + 5];
		int fd = dirfd(d);
		struct stat st;
		ssize_t n;

		if (!strncmp(e->d_name, ".new-", 5)) {
			if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_mtime <= now - IMAGE_CACHE_RECENT_S)
				unlinkat(fd, e->d_name, 0);
			continue;
		}
		if (!keyed_name(e->d_name, ""))
			continue;
		n = read_small(fd, e->d_name, line, sizeof(line));
		if (n != IMAGE_KEY_LEN || line[n - 1] != '\n' || !image_key_text(line))
			continue; /* index_lookup's to ignore and write again */
		snprintf(name, sizeof(name), "%.*s.ext4", IMAGE_KEY_LEN - 1, line);
		if (fstatat(images, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
			unlinkat(fd, e->d_name, 0);
	}
	closedir(d);
}

void image_cache_trim(const char *images, uint64_t max)
{
	int fd = open(images, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	/* Pins first: a snapshot gone frees its images for the trim. */
	sweep_pins(fd);
	if (max)
		trim_images(fd, images, max);
	sweep_index(fd);
	close(fd);
}

/* ---- pinning ------------------------------------------------------------------ */

/* The absolute path of snapshot, which need not be there yet: its
 * directory's real path and its last name. */
static int absolute(const char *snapshot, char *out, char *err, size_t errlen)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(snapshot, '/');
	const char *base = slash ? slash + 1 : snapshot;

	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(err, errlen, -EINVAL, "%s: not a file's path", snapshot);
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == snapshot)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - snapshot), snapshot);
	if (!realpath(dir, real))
		return err_set(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(real, "/") ? real : "", base) >=
	    PATH_MAX)
		return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", snapshot);
	return 0;
}

/* The file name in dirfd, created if it is not there, opened and flocked
 * as op says: the descriptor, or -errno. */
static int open_locked(int dirfd, const char *name, int op)
{
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (flock(fd, op) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* The directory name in dirfd, made if it is not there, opened: the
 * descriptor, or -errno. */
static int open_dir(int dirfd, const char *name)
{
	int fd;

	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* A random word for a name of one's own (getrandom, or the clock where
 * it fails). */
static uint32_t random_word(void)
{
	uint32_t w;

	return getrandom(&w, sizeof(w), 0) == sizeof(w) ? w : (uint32_t)now_ns();
}

/* Into the pin directory pfd, under name: a file of its own holding text,
 * or a hard link to the file at link (text NULL), renamed over what is
 * there (the same file, or the image an earlier one under the key was
 * trimmed for and built again). */
static int put(int pfd, const char *name, const char *text, const char *link)
{
	char tmp[NAME_MAX + 1];
	int fd, r = 0;

	/* Its own: pinners of one snapshot's path may run at once, in pid
	 * namespaces of their own. */
	snprintf(tmp, sizeof(tmp), ".new-%ld-%08x", (long)getpid(), random_word());
	if (link) {
		if (linkat(AT_FDCWD, link, pfd, tmp, 0) < 0)
			return -errno;
	} else {
		if ((fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				 0600)) < 0)
			return -errno;
		r = write_full(fd, text, strlen(text));
		if (close(fd) < 0 && r == 0)
			r = -errno;
	}
	if (r == 0 && renameat(pfd, tmp, pfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(pfd, tmp, 0);
	return r;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int image_pin(const char *images, const char *snapshot, const char *const image[], size_t n,
	      int *lock, char *err, size_t errlen)
{
	char abs[PATH_MAX], name[IMAGE_KEY_LEN], line[PATH_MAX + 1], run[NAME_MAX + 1];
	int ifd = -1, dfd = -1, pfd = -1, rfd = -1, glock = -1, r;
	const char *what = PINS;
	struct timespec now;

	*lock = -1;
	if ((r = absolute(snapshot, abs, err, errlen)) < 0)
		return r;
	image_hash_text(abs, strlen(abs), name); /* the pin's directory */
	snprintf(line, sizeof(line), "%s\n", abs);
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(run, sizeof(run), "%020llu-%08x",
		 (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec,
		 random_word());
	if ((ifd = open(images, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = -errno;
	else if ((r = dfd = open_dir(ifd, PINS)) >= 0 &&
		 (r = glock = open_locked(dfd, PINS_LOCK, LOCK_SH)) >= 0 &&
		 (r = pfd = open_dir(dfd, name)) >= 0) {
		what = PIN_SNAPSHOT;
		if ((r = put(pfd, PIN_SNAPSHOT, line, NULL)) == 0 &&
		    (r = rfd = open_dir(pfd, run)) >= 0 &&
		    (r = *lock = open_locked(rfd, PIN_LOCK, LOCK_SH)) >= 0)
			r = 0;
		for (size_t i = 0; i < n && r == 0; i++) {
			what = image[i];
			r = put(rfd, base_name(image[i]), NULL, image[i]);
		}
	}
	if (r < 0) {
		err_set(err, errlen, r,
			"cannot pin the images of the snapshot %s in %s/" PINS "/%s: %s: %s",
			snapshot, images, name, what, strerror(-r));
		close_fd(lock);
	}
	close_fd(&rfd);
	close_fd(&pfd);
	close_fd(&glock);
	close_fd(&dfd);
	close_fd(&ifd);
	return r < 0 ? r : 0;
}
