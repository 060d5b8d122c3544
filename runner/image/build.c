/* Building ext4 images from directories and tar archives, and the cache. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "image/build.h"
#include "image/cache.h"
#include "image/image.h"

extern char **environ;

int image_run_cmd(void *ctx, char *const argv[], int in_fd, int out_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t dfl;
	pid_t pid;
	int r, st;

	(void)ctx;
	if ((r = posix_spawnattr_init(&at)))
		return -r;
	/* A build under max_bytes ignores SIGXFSZ itself (its own writes fail
	 * with EFBIG); its programs die of it, which says why they stopped. */
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGXFSZ);
	if ((r = posix_spawnattr_setsigdefault(&at, &dfl)) ||
	    (r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF)) ||
	    (r = posix_spawn_file_actions_init(&fa))) {
		posix_spawnattr_destroy(&at);
		return -r;
	}
	if (in_fd >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	else
		r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, out_fd >= 0 ? out_fd : STDERR_FILENO,
						     STDOUT_FILENO);
	/* Nothing else of the caller's: flint-jail, which builds images as
	 * root, holds descriptors it keeps for flint (no longer close-on-exec)
	 * that tar, xz or mke2fs have no business with. */
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	if (!r)
		r = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

int image_cache_dir(char *out, size_t len)
{
	const char *v;
	int n;

	if ((v = getenv("FLINT_CACHE")) && *v)
		n = snprintf(out, len, "%s", v);
	else if ((v = getenv("XDG_CACHE_HOME")) && *v)
		n = snprintf(out, len, "%s/flint", v);
	else if ((v = getenv("HOME")) && *v)
		n = snprintf(out, len, "%s/.cache/flint", v);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* name is an executable file in one of PATH's directories. */
static bool on_path(const char *name)
{
	const char *path = getenv("PATH");
	char dir[PATH_MAX];

	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		if (n &&
		    (size_t)snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, p, name) < sizeof(dir) &&
		    access(dir, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

int image_builder_default(struct image_builder *b, char *cache, size_t len, char *err,
			  size_t errlen)
{
	int r = image_cache_dir(cache, len);

	if (r < 0)
		return err_set(err, errlen, r,
			       "no cache directory for images: set FLINT_CACHE (or HOME)");
	*b = (struct image_builder){.cache_dir = cache,
				    .run = image_run_cmd,
				    .fakeroot = geteuid() != 0 && on_path("fakeroot"),
				    .use_index = true};
	return 0;
}

/* ---- removing a work directory ------------------------------------------ */

/* For nftw over a tree this user unpacked: give a file u+r, and a
 * directory dir_want, where an archive's modes left them out (a 0000
 * /etc/shadow, as every Red Hat-like image has, or a read-only
 * directory, unpacked without root); a directory nftw could not read is
 * walked (by self) once it can be. Under fakeroot the modes its state
 * recorded stay what the image gets. */
typedef int nftw_fn(const char *, const struct stat *, int, struct FTW *);

static int give_access(const char *p, const struct stat *st, int type, mode_t dir_want,
		       nftw_fn *self)
{
	mode_t want = type == FTW_F ? S_IRUSR : dir_want;

	if (!(type == FTW_F && S_ISREG(st->st_mode)) && type != FTW_D && type != FTW_DNR)
		return 0;
	if ((st->st_mode & want) != want && chmod(p, (st->st_mode & 07777) | want) == 0 &&
	    type == FTW_DNR)
		nftw(p, self, 16, FTW_PHYS | FTW_MOUNT);
	return 0;
}

/* What mke2fs -d needs to read the tree: directories u+rx (not u+w: the
 * modes of a build without fakeroot are the image's). */
static int owner_reads(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	return give_access(p, st, type, S_IRUSR | S_IXUSR, owner_reads);
}

/* What removing it needs: directories u+rwx. */
static int owner_removes(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	return give_access(p, st, type, S_IRWXU, owner_removes);
}

static int remove_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	if ((type == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT)
		pr_warn("flint run: cannot remove %s: %s", p, strerror(errno));
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, owner_removes, 16, FTW_PHYS | FTW_MOUNT);
	nftw(dir, remove_one, 16, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
}

/* ---- running the tools ----------------------------------------------------- */

/* One command line: the words and the numbers they point into. */
struct cmd {
	char *argv[32];
	int argc;
	char num[2][32];
};

static void add(struct cmd *c, const char *w)
{
	if (c->argc < (int)(sizeof(c->argv) / sizeof(c->argv[0])) - 1)
		c->argv[c->argc++] = (char *)w;
	c->argv[c->argc] = NULL;
}

/* The fakeroot prefix: -s saves the owners tar gave, -i loads them for
 * mke2fs. */
static void add_fakeroot(struct cmd *c, const struct image_builder *b, const char *opt,
			 const char *state)
{
	if (!b->fakeroot)
		return;
	add(c, "fakeroot");
	add(c, opt);
	add(c, state);
	add(c, "--");
}

static int run(const struct image_builder *b, struct cmd *c, int in_fd, int out_fd,
	       const char *path, char *err, size_t errlen)
{
	int r = b->run(b->ctx, c->argv, in_fd, out_fd);
	/* The program itself, not the fakeroot that runs it. */
	const char *prog = c->argv[b->fakeroot && !strcmp(c->argv[0], "fakeroot") ? 4 : 0];

	if (r == -ENOENT)
		return err_set(err, errlen, r, "%s: cannot run %s: not installed (%s)", path,
			       c->argv[0],
			       !strcmp(c->argv[0], "mke2fs") ? "e2fsprogs" : "install it");
	if (r < 0)
		return err_set(err, errlen, r, "%s: cannot run %s: %s", path, c->argv[0],
			       strerror(-r));
	if (r == 128 + SIGXFSZ && b->max_bytes)
		return err_set(err, errlen, -EFBIG,
			       "%s: over the limit of %" PRIu64 " bytes for a file of the image's "
			       "build (%s was stopped writing a larger one)",
			       path, b->max_bytes, prog);
	if (r > 0)
		return err_set(err, errlen, -EIO, "%s: %s failed with status %d", path, prog, r);
	return 0;
}

/* mke2fs -d src into the image file dst, sized for the tree at src. */
static int mke2fs_tree(const struct image_builder *b, const char *src, const char *dst,
		       const char *state, const char *path, char *err, size_t errlen)
{
	struct image_usage u;
	uint64_t bytes, inodes;
	struct cmd c = {0};
	int r;

	if ((r = image_measure(src, &u, err, errlen)) < 0)
		return r;
	image_size_for(&u, &bytes, &inodes);
	if (b->max_bytes && bytes > b->max_bytes)
		return err_set(err, errlen, -EFBIG,
			       "%s: its image would be %" PRIu64
			       " bytes, over the limit of %" PRIu64 " bytes",
			       path, bytes, b->max_bytes);
	if (b->max_entries && u.inodes > b->max_entries)
		return err_set(err, errlen, -EFBIG,
			       "%s: %" PRIu64 " entries, over the limit of %" PRIu64, path,
			       u.inodes, b->max_entries);
	snprintf(c.num[0], sizeof(c.num[0]), "%" PRIu64, inodes);
	snprintf(c.num[1], sizeof(c.num[1]), "%" PRIu64 "k", bytes >> 10);
	if (state)
		add_fakeroot(&c, b, "-i", state);
	/* 4 KiB blocks whatever the size (mke2fs would pick 1 KiB for a small
	 * one), no reserved blocks and no journal: the guest never writes it. */
	const char *words[] = {"mke2fs", "-q", "-F", "-t", "ext4",	   "-b",
			       "4096",	 "-m", "0",  "-O", "^has_journal", "-N",
			       c.num[0], "-d", src,  dst,  c.num[1]};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		add(&c, words[i]);
	return run(b, &c, -1, -1, path, err, errlen);
}

/* The gzip stream at src, decompressed into the file dst. */
static int gunzip_to(const struct image_builder *b, const char *src, const char *dst, char *err,
		     size_t errlen)
{
	uint8_t buf[1 << 16]; /* on the stack: a static __thread buffer is in every thread's TLS */
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), n, r = 0;
	gzFile gz = gzopen(src, "rb");

	if (fd < 0 || !gz) {
		r = err_set(err, errlen, -errno ? -errno : -ENOMEM, "%s: cannot open: %s",
			    fd < 0 ? dst : src, strerror(errno));
		goto out;
	}
	while ((n = gzread(gz, buf, sizeof(buf))) > 0)
		if ((r = write_full(fd, buf, (size_t)n)) < 0) {
			if (r == -EFBIG && b->max_bytes)
				r = err_set(err, errlen, r,
					    "%s: decompressed, over the limit of %" PRIu64
					    " bytes for a file of the image's build",
					    src, b->max_bytes);
			else /* a full disk: the archive's name, not the scratch file's */
				r = err_set(err, errlen, r, "%s: decompressing into %s: %s", src,
					    dst, strerror(-r));
			goto out;
		}
	/* zlib reads a stream cut short to its end without failing gzread:
	 * gzerror says so (Z_BUF_ERROR, "unexpected end of file"). */
	int e;
	const char *why = gzerror(gz, &e);

	if (n < 0)
		r = err_set(err, errlen, -EIO, "%s: gzip data: %s", src, why);
	else if (e == Z_BUF_ERROR || !gzeof(gz))
		r = err_set(err, errlen, -EIO, "%s: gzip data: truncated", src);
out:
	if (gz)
		gzclose(gz);
	close_fd(&fd);
	return r;
}

/* The tar archive tar (plain: decompressed already), for tar's stdin. tar
 * reads its archive there, never with -f FILE: given a file, GNU tar
 * decompresses what it finds compressed by itself, through a program whose
 * output no limit of ours sees, so that an xz archive holding a zstd one
 * would extract past every bound. From stdin it refuses ("Archive is
 * compressed"). */
static int open_tar(const char *tar, char *err, size_t errlen)
{
	int fd = open(tar, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? err_set(err, errlen, -errno, "%s: %s", tar, strerror(errno)) : fd;
}

/* The names a tar archive makes, counted once each (64-bit FNV-1a hashes
 * in an open-addressed table; 0 marks a free slot, so a name hashing to 0
 * counts as one hashing to 1; a collision undercounts by one in 2^64). */
struct name_set {
	uint64_t *h;
	size_t cap, n;
};

static uint64_t name_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ? h : 1;
}

/* Adds s[0..len): 1 when it was new, 0 when counted already, -ENOMEM. */
static int name_set_add(struct name_set *set, const char *s, size_t len)
{
	uint64_t h = name_hash(s, len);
	size_t i;

	if (2 * (set->n + 1) > set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 1024;
		uint64_t *t = calloc(cap, sizeof(*t));

		if (!t)
			return -ENOMEM;
		for (size_t k = 0; k < set->cap; k++) {
			if (!set->h[k])
				continue;
			for (i = set->h[k] & (cap - 1); t[i]; i = (i + 1) & (cap - 1))
				;
			t[i] = set->h[k];
		}
		free(set->h);
		set->h = t;
		set->cap = cap;
	}
	for (i = h & (set->cap - 1); set->h[i]; i = (i + 1) & (set->cap - 1))
		if (set->h[i] == h)
			return 0;
	set->h[i] = h;
	set->n++;
	return 1;
}

/* Counts into set one name `tar -t` listed (its newline cut) and every
 * directory above it, which tar makes for it unlisted: an archive of a
 * few deep names (a/a/.../a/f, 2000 levels each) would make thousands of
 * directories for every entry counted. */
static int count_name(struct name_set *set, char *name, size_t len)
{
	int r;

	while (len > 1 && name[len - 1] == '/')
		len--;
	for (size_t i = 1; i < len; i++)
		if (name[i] == '/' && name[i - 1] != '/' && (r = name_set_add(set, name, i)) < 0)
			return r;
	return len ? name_set_add(set, name, len) : 0;
}

/* The entries of the tar archive tar (path's, for messages) counted by
 * `tar -t` into the file list, the directories their names imply
 * included, and refused over b->max_entries: before extraction, where
 * each would take an inode and each directory a block. */
static int count_entries(const struct image_builder *b, const char *tar, const char *list,
			 const char *path, char *err, size_t errlen)
{
	struct name_set set = {0};
	struct cmd c = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	FILE *f = NULL;
	int fd, in, r;

	if ((fd = open(list, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return err_set(err, errlen, -errno, "%s: %s", list, strerror(errno));
	if ((in = open_tar(tar, err, errlen)) < 0) {
		r = in;
		goto out;
	}
	const char *words[] = {"tar", "-t", "-f", "-"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		add(&c, words[i]);
	r = run(b, &c, in, fd, path, err, errlen);
	close(in);
	if (r < 0)
		goto out;
	if (lseek(fd, 0, SEEK_SET) < 0 || !(f = fdopen(fd, "r"))) {
		r = err_set(err, errlen, -errno, "%s: %s", list, strerror(errno));
		goto out;
	}
	fd = -1; /* f's now */
	/* One line a name: GNU tar escapes a newline in one. */
	while ((got = getline(&line, &cap, f)) > 0 && set.n <= b->max_entries) {
		if (line[got - 1] == '\n')
			got--;
		if ((r = count_name(&set, line, (size_t)got)) < 0) {
			r = err_set(err, errlen, r, "%s: counting its entries: %s", path,
				    strerror(-r));
			goto out;
		}
	}
	r = 0;
	if (ferror(f))
		r = err_set(err, errlen, -EIO, "%s: reading it", list);
	else if (set.n > b->max_entries)
		r = err_set(err, errlen, -EFBIG,
			    "%s: %s%zu entries, the directories their names imply included: over "
			    "the limit of %" PRIu64,
			    path, got > 0 ? "at least " : "", set.n, b->max_entries);
out:
	free(line);
	free(set.h);
	if (f)
		fclose(f);
	else if (fd >= 0)
		close(fd);
	unlink(list);
	return r;
}

/* The tar archive at path (of kind k) extracted into root, through a plain
 * copy at plain when it is compressed. */
static int extract(const struct image_builder *b, const char *path, enum image_kind k,
		   const char *plain, const char *root, const char *state, char *err, size_t errlen)
{
	const char *tar = path;
	struct cmd c = {0};
	int r = 0;

	if (k == IMAGE_TAR_GZ) {
		r = gunzip_to(b, path, plain, err, errlen);
		tar = plain;
	} else if (k == IMAGE_TAR_XZ || k == IMAGE_TAR_ZST) {
		int in = open(path, O_RDONLY | O_CLOEXEC),
		    out = open(plain, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		add(&c, k == IMAGE_TAR_XZ ? "xz" : "zstd");
		add(&c, "-dc");
		/* An archive made with zstd --long needs it to unpack (the
		 * window it allows, no more memory for others). */
		if (k == IMAGE_TAR_ZST)
			add(&c, "--long=31");
		if (in < 0 || out < 0)
			r = err_set(err, errlen, -errno, "%s: %s", in < 0 ? path : plain,
				    strerror(errno));
		else
			r = run(b, &c, in, out, path, err, errlen);
		close_fd(&in);
		close_fd(&out);
		tar = plain;
	}
	if (r < 0)
		return r;
	if (b->max_entries) {
		char list[PATH_MAX + 32];

		snprintf(list, sizeof(list), "%.*s/list", (int)(strrchr(root, '/') - root), root);
		if ((r = count_entries(b, tar, list, path, err, errlen)) < 0)
			return r;
	}
	if (mkdir(root, 0755) < 0)
		return err_set(err, errlen, -errno, "%s: %s", root, strerror(errno));
	c = (struct cmd){0};
	add_fakeroot(&c, b, "-s", state);
	/* As root (or fakeroot's), tar keeps owners and modes by default. */
	const char *words[] = {"tar", "-x", "--numeric-owner"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		add(&c, words[i]);
	/* And, unless under fakeroot (as root; a user without fakeroot gets
	 * what tar may set), a file's capabilities (as `docker export` writes
	 * them) and user attributes, which mke2fs -d copies. No other
	 * namespace: the tree is on the host while it is built, from an
	 * archive flint-jail's tenant may have written, and security labels
	 * or trusted.* attributes there are the host's business. Not under
	 * fakeroot: fakeroot 1.31 records a file whose attribute tar set as
	 * one of no type, and mke2fs -d then stops at it ("ignoring entry").
	 * An attribute the work directory's file system cannot hold is
	 * dropped without a word, as tar does. */
	if (!b->fakeroot) {
		add(&c, "--xattrs");
		add(&c, "--xattrs-include=security.capability");
		add(&c, "--xattrs-include=user.*");
	}
	const char *where[] = {"-f", "-", "-C", root};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		add(&c, where[i]);
	int in = open_tar(tar, err, errlen);
	if (in < 0)
		return in;
	r = run(b, &c, in, -1, path, err, errlen);
	close(in);
	/* tar's own failure (its messages on stderr), not a limit's */
	if (r == -EIO && !b->fakeroot && geteuid() != 0 && strlen(err) + 1 < errlen)
		snprintf(err + strlen(err), errlen - strlen(err),
			 " (unpacked without root or fakeroot: if the archive holds device nodes "
			 "or other files only root may make, install fakeroot)");
	if (r == 0 && tar == plain)
		unlink(plain);
	/* mke2fs -d, as this user, reads every file */
	if (r == 0 && geteuid() != 0)
		nftw(root, owner_reads, 16, FTW_PHYS | FTW_MOUNT);
	return r;
}

/* A build's work directory (images/.build-XXXXXX, or flint-jail's
 * .jail-XXXXXX) holds a lock file, flocked while its build runs: a flint
 * or flint-jail killed mid-build leaves the directory, tree and half an
 * image in it, and nobody holds its lock. */
#define BUILD_LOCK "lock"
static const char *const work_prefixes[] = {".build-", ".jail-"};
/* A work directory this young may be a build that has not taken its lock
 * yet (between mkdtemp and flock). */
#define STALE_AFTER_S 60

static int lock_work(const char *work)
{
	char p[PATH_MAX + 16];
	int fd;

	snprintf(p, sizeof(p), "%s/" BUILD_LOCK, work);
	if ((fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Is the work directory at path stale: older than STALE_AFTER_S and its
 * lock file missing or free? (Taking the lock to test it is harmless: the
 * directory goes right after.) */
static bool work_is_stale(const char *path, time_t now)
{
	char p[PATH_MAX + 16];
	struct stat st;
	bool stale;
	int fd;

	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_mtime > now - STALE_AFTER_S)
		return false;
	snprintf(p, sizeof(p), "%s/" BUILD_LOCK, path);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT;
	stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return stale;
}

static bool is_work(const char *name)
{
	for (size_t i = 0; i < sizeof(work_prefixes) / sizeof(work_prefixes[0]); i++)
		if (!strncmp(name, work_prefixes[i], strlen(work_prefixes[i])))
			return true;
	return false;
}

/* Whether the entry name of a directory (at path) is what a flint or
 * flint-jail that died left there (at the time now). */
typedef bool left_fn(const char *path, const char *name, time_t now);

/* Remove what left says is left over in dir, saying so with what it is;
 * best effort. */
static void sweep(const char *dir, left_fn *left, const char *what)
{
	time_t now = time(NULL);
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[PATH_MAX];

		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= sizeof(p) ||
		    !left(p, e->d_name, now))
			continue;
		pr_info("flint run: removing %s, %s", p, what);
		remove_tree(p);
	}
	closedir(d);
}

/* A work directory of a build that died (the cache's images/). */
static bool build_left(const char *path, const char *name, time_t now)
{
	return is_work(name) && work_is_stale(path, now);
}

/* For chain_owned: cur, a part of the path to dir, is a directory root's
 * or this user's that nobody else may write unless it is sticky (0;
 * *shared: others may write it), or a symlink root's or this user's in a
 * directory nobody else may write (1; *shared: that directory's, as it
 * came). Else -EPERM, or -errno, with a message in err. */
static int part_state(const char *dir, const char *cur, bool *shared, char *err, size_t errlen)
{
	uid_t me = geteuid();
	struct stat st;

	if (lstat(cur, &st) < 0)
		return err_set(err, errlen, -errno, "%s: %s", cur, strerror(errno));
	if ((st.st_uid != 0 && st.st_uid != me) ||
	    (S_ISDIR(st.st_mode) && (st.st_mode & 022) && !(st.st_mode & S_ISVTX)) ||
	    (S_ISLNK(st.st_mode) && *shared))
		return err_set(err, errlen, -EPERM,
			       "%s: %s on its way (owner %u, mode %04o) may be changed by a user "
			       "other than %u and root, who could put other files in its place; "
			       "make it written by nobody else (chmod go-w), or set FLINT_CACHE "
			       "elsewhere",
			       dir, cur, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
			       (unsigned)me);
	if (S_ISLNK(st.st_mode))
		return 1;
	if (!S_ISDIR(st.st_mode))
		return err_set(err, errlen, -ENOTDIR, "%s: not a directory", cur);
	*shared = st.st_mode & 022;
	return 0;
}

/* The absolute path cur without its last part (/ stays /). */
static void drop_last(char *cur)
{
	char *slash = strrchr(cur, '/');

	slash[slash == cur] = '\0';
}

/* Whether what the path p names can be changed by nobody but root and
 * this user: 0, or -EPERM with what another user may change in err (for
 * dir, what p is the start of). p is walked as the kernel resolves it, a
 * part at a time from / (or the working directory), each symlink's target
 * put in its place, and each part must pass part_state: so nobody else
 * can put another directory in p's place, by a rename or a link anywhere
 * on the way. */
static int chain_owned(const char *dir, const char *p, char *err, size_t errlen)
{
	char todo[PATH_MAX], next[PATH_MAX], target[PATH_MAX], cur[PATH_MAX];
	const char *c = todo;
	bool shared = false;
	int links = 0, r;

	if (p[0] == '/' ? !strcpy(cur, "/") : !getcwd(cur, sizeof(cur)))
		return err_set(err, errlen, -errno, "%s: %s", p, strerror(errno));
	if ((size_t)snprintf(todo, sizeof(todo), "%s", p) >= sizeof(todo))
		return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", p);
	if ((r = part_state(dir, cur, &shared, err, errlen)) < 0)
		return r;
	for (;;) {
		size_t n, len = strlen(cur);
		ssize_t t;

		c += strspn(c, "/");
		if (!*c)
			return 0;
		n = strcspn(c, "/");
		if (n == 1 && c[0] == '.') {
			c += n;
			continue;
		}
		if (n == 2 && !strncmp(c, "..", 2)) {
			/* cur has no link in it: its parent is the path's. */
			drop_last(cur);
			c += n;
			if ((r = part_state(dir, cur, &shared, err, errlen)) < 0)
				return r;
			continue;
		}
		if (len + 1 + n >= sizeof(cur))
			return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", p);
		snprintf(cur + len, sizeof(cur) - len, "%s%.*s", len > 1 ? "/" : "", (int)n, c);
		c += n;
		if ((r = part_state(dir, cur, &shared, err, errlen)) <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		/* A link: its target in its place, on from its directory (whose
		 * state shared still is) or from /. */
		if ((t = readlink(cur, target, sizeof(target) - 1)) <= 0 || ++links > 40)
			return err_set(err, errlen, t <= 0 ? -errno : -ELOOP, "%s: %s", cur,
				       t <= 0 ? strerror(errno) : "too many symlinks");
		target[t] = '\0';
		if ((size_t)snprintf(next, sizeof(next), "%s%s", target, c) >= sizeof(next))
			return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", p);
		strcpy(todo, next);
		c = todo;
		drop_last(cur);
		if (target[0] == '/') {
			strcpy(cur, "/");
			if ((r = part_state(dir, cur, &shared, err, errlen)) < 0)
				return r;
		}
	}
}

/* Make the cache's directory dir (its images or its scratch disks), and
 * refuse it unless it is this user's alone: what is in it goes to the
 * guest as its disk, and stale work directories in it are removed (as
 * root, too). In a directory another user may write, or below one, they
 * could put a symlink to a host file or disk (or an image of theirs)
 * under a key, or swap a work directory or a scratch file for a symlink
 * while it is removed or formatted. */
static int private_dir(const char *dir, char *err, size_t errlen)
{
	char up[PATH_MAX];
	struct stat st;
	char *slash;
	int r;

	/* Nothing made where another user could have it made elsewhere: what
	 * is there of dir's path first. */
	snprintf(up, sizeof(up), "%s", dir);
	while (stat(up, &st) < 0 && errno == ENOENT) {
		if (!(slash = strrchr(up, '/'))) {
			strcpy(up, ".");
			break;
		}
		slash[slash == up] = '\0';
	}
	if ((r = chain_owned(dir, up, err, errlen)) < 0)
		return r;
	bool made = strcmp(up, dir) != 0;

	if (made && (r = mkdir_p(dir, 0700)) < 0)
		return err_set(err, errlen, r, "cannot create %s: %s", dir, strerror(-r));
	if (lstat(dir, &st) < 0)
		return err_set(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return err_set(err, errlen, -EPERM,
			       "%s: not a directory that only uid %u may write (owner %u, mode "
			       "%04o): another user could change the images flint runs; remove "
			       "it, or set FLINT_CACHE elsewhere",
			       dir, (unsigned)geteuid(), (unsigned)st.st_uid,
			       (unsigned)(st.st_mode & 07777));
	/* What was made is walked again; a dir that was there, just now. */
	return made ? chain_owned(dir, dir, err, errlen) : 0;
}

int image_work_create(const char *cache_dir, const char *prefix, char *out, size_t outlen,
		      int *lock, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	int r;

	*lock = -1;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/images", cache_dir) >= sizeof(dir) ||
	    (size_t)snprintf(out, outlen, "%s/%sXXXXXX", dir, prefix) >= outlen) {
		out[0] = '\0';
		return err_set(err, errlen, -ENAMETOOLONG, "%s/images: path too long", cache_dir);
	}
	if ((r = private_dir(dir, err, errlen)) < 0) {
		out[0] = '\0';
		return r;
	}
	if (!mkdtemp(out)) {
		r = err_set(err, errlen, -errno, "cannot create a directory in %s: %s", dir,
			    strerror(errno));
		out[0] = '\0';
		return r;
	}
	if ((*lock = lock_work(out)) < 0) {
		r = err_set(err, errlen, *lock, "cannot lock %s: %s", out, strerror(-*lock));
		*lock = -1;
		remove_tree(out);
		out[0] = '\0';
		return r;
	}
	return 0;
}

void image_work_remove(const char *work, int *lock)
{
	if (work[0])
		remove_tree(work);
	close_fd(lock);
}

/* RLIMIT_FSIZE's soft limit lowered to max (0: left alone) and SIGXFSZ
 * ignored, so that a write past it fails with EFBIG here and kills the
 * programs run (image_run_cmd gives them SIGXFSZ's default); what was, in
 * *was and *was_sig, for restore_limit. */
static void set_limit(uint64_t max, struct rlimit *was, struct sigaction *was_sig)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	struct rlimit l;

	if (!max || getrlimit(RLIMIT_FSIZE, was) < 0)
		return;
	l = *was;
	if (l.rlim_cur == RLIM_INFINITY || l.rlim_cur > max)
		l.rlim_cur = max;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGXFSZ, &ign, was_sig);
	setrlimit(RLIMIT_FSIZE, &l);
}

static void restore_limit(uint64_t max, const struct rlimit *was, const struct sigaction *was_sig)
{
	if (!max)
		return;
	setrlimit(RLIMIT_FSIZE, was);
	sigaction(SIGXFSZ, was_sig, NULL);
}

static int sync_file(const char *p)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	close_fd(&fd);
	return r;
}

struct index;
static bool index_unchanged(const struct index *ix);

static bool cached_image(const char *final);

/* Rename the built image img to final unless an image is there already
 * (an identical one another build of the same content put there first):
 * a name, once given, keeps naming the one file, which a VM booting from
 * it and a snapshot saved from that VM expect (its UUID is checked at a
 * restore). What is there and no image (a symlink, a file cut short) is
 * replaced. 1: renamed; 0: an image was there, img left; -errno. */
static int rename_new(const char *img, const char *final)
{
	int e;

	/* A hard link never replaces, on every file system that has them
	 * (NFS has no RENAME_NOREPLACE); the work directory goes after. */
	if (link(img, final) == 0)
		return 1;
	e = errno;
	if (e == EEXIST && cached_image(final))
		return 0;
	if (e != EEXIST && e != EPERM && e != EOPNOTSUPP && e != EMLINK)
		return -e;
	/* Over what is no image; or a file system without hard links: whole
	 * or not at all still. */
	return rename(img, final) < 0 ? -errno : 1;
}

/* image_prepare's build, in the work directory, under its limits; not
 * renamed to final when ix says the source changed since its fingerprint
 * was taken (before the key): the image might not be the key's content.
 * *held: the image renamed to final, opened and held (image/cache.h) from
 * before its rename, so that no trim takes it in between; -1 when another
 * build's image was there first (the caller holds that one). */
static int build(const struct image_builder *b, const char *path, enum image_kind k,
		 const char *final, const struct index *ix, int *held, char *err, size_t errlen)
{
	char work[PATH_MAX];
	/* Below work: room for the longest name. */
	char img[PATH_MAX + 32], root[PATH_MAX + 32], plain[PATH_MAX + 32], state[PATH_MAX + 32];
	int r, lock;

	*held = -1;
	if ((r = image_work_create(b->cache_dir, ".build-", work, sizeof(work), &lock, err,
				   errlen)) < 0)
		return r;
	snprintf(img, sizeof(img), "%s/image.ext4", work);
	snprintf(root, sizeof(root), "%s/root", work);
	snprintf(plain, sizeof(plain), "%s/plain.tar", work);
	snprintf(state, sizeof(state), "%s/fakeroot.state", work);
	/* mke2fs says "Creating regular file" unless the file is there. */
	if ((r = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", img, strerror(errno));
		goto out;
	}
	close(r);
	pr_info("flint run: building an ext4 image from the %s %s", image_kind_name(k), path);
	if (k != IMAGE_DIR && !b->fakeroot && geteuid() != 0)
		pr_warn("flint run: %s: unpacked without root or fakeroot, its files become uid "
			"%u's and lose their set-id bits (install fakeroot to keep its owners)",
			path, (unsigned)geteuid());
	if (k == IMAGE_DIR)
		r = mke2fs_tree(b, path, img, NULL, path, err, errlen);
	else if ((r = extract(b, path, k, plain, root, state, err, errlen)) == 0)
		r = mke2fs_tree(b, root, img, state, path, err, errlen);
	/* On disk before its name: renamed unsynced, a power cut could leave
	 * an empty file under the key, taken for the image from then on. */
	if (r == 0 && (r = sync_file(img)) < 0)
		r = err_set(err, errlen, r, "%s: %s: %s", path, img, strerror(-r));
	if (r == 0 && !index_unchanged(ix))
		r = err_set(err, errlen, -EAGAIN, "%s changed while it was read (try again)", path);
	if (r == 0 && (r = image_hold(img, held)) < 0)
		r = err_set(err, errlen, r, "%s: %s", img, strerror(-r));
	/* Whole or not at all, and never over another build's. */
	if (r == 0 && (r = rename_new(img, final)) <= 0) {
		close_fd(held);
		if (r < 0)
			r = err_set(err, errlen, r, "cannot rename %s to %s: %s", img, final,
				    strerror(-r));
	}
	if (r == 1)
		r = 0;
out:
	image_work_remove(work, &lock);
	return r;
}

/* Whether the directory dir holds the cache directory cache, or will when
 * it is made (its nearest ancestor that is there is inside dir). */
static bool holds_cache(const char *dir, const char *cache)
{
	char d[PATH_MAX], c[PATH_MAX], probe[PATH_MAX];
	size_t n;

	if (!realpath(dir, d) ||
	    (size_t)snprintf(probe, sizeof(probe), "%s", cache) >= sizeof(probe))
		return false;
	while (!realpath(probe, c)) {
		char *slash = strrchr(probe, '/');

		if (errno != ENOENT || !slash || slash == probe)
			return false;
		*slash = '\0';
	}
	n = strlen(d);
	return n == 1 || (!strncmp(c, d, n) && (c[n] == '/' || !c[n]));
}

/* ---- the index ----------------------------------------------------------- */

/* <dir>/<key>.ext4 in final (PATH_MAX bytes); false when too long. */
static bool image_path(const char *dir, const char *key, char *final)
{
	return (size_t)snprintf(final, PATH_MAX, "%s/%s.ext4", dir, key) < PATH_MAX;
}

/* Whether final is a cached image to use. Not followed: a symlink there
 * is no image of flint's (the build's rename replaces it). Nor is a file
 * without ext4's magic (cut short by a crash, a full disk): built again,
 * not given to the guest. */
static bool cached_image(const char *final)
{
	struct stat st;

	return lstat(final, &st) == 0 && S_ISREG(st.st_mode) && image_is_ext4(final);
}

/* The index of a source in image_prepare: its fingerprint, and the
 * directory <cache>/images/index its entry is in. */
struct index {
	const struct image_builder *b;
	bool ok; /* the directory is usable and the fingerprint known */
	bool settled;
	const char *path; /* the source, for messages */
	const char *real; /* the source's real path, fingerprinted, keyed and built */
	enum image_kind kind;
	char dir[PATH_MAX];
	char fp[IMAGE_KEY_LEN];
};

/* Set ix up for path (its real path real, of kind k) under the images
 * directory images, if b keeps an index: an index directory that is not
 * this user's alone (as private_dir says) is not used, as if there were
 * none. */
/* A tar archive unpacked under fakeroot, or without root and fakeroot
 * (its files then this user's, without set-id bits), is another image
 * than root's build makes of it: its key (and its index entry's
 * fingerprint) text is that of the build's way and the content's, so
 * that an image built one way is never taken for one built another (a
 * user's first build before fakeroot was installed, say). */
static void keyed_by_way(const struct image_builder *b, enum image_kind k, char text[IMAGE_KEY_LEN])
{
	const char *way = b->fakeroot ? "fakeroot" : geteuid() ? "no fakeroot" : NULL;
	char both[IMAGE_KEY_LEN + 16];
	int n;

	if (k == IMAGE_DIR || !way)
		return;
	n = snprintf(both, sizeof(both), "%s %s", way, text);
	image_hash_text(both, (size_t)n, text);
}

static void index_open(const struct image_builder *b, const char *images, const char *path,
		       const char *real, enum image_kind k, struct index *ix)
{
	char why[PATH_MAX + 256];

	*ix = (struct index){.b = b, .path = path, .real = real, .kind = k};
	if (!b->use_index)
		return;
	if ((size_t)snprintf(ix->dir, sizeof(ix->dir), "%s/index", images) >= sizeof(ix->dir))
		snprintf(why, sizeof(why), "%s/index: path too long", images);
	else if (private_dir(ix->dir, why, sizeof(why)) == 0 &&
		 image_fingerprint(real, k, ix->fp, &ix->settled, why, sizeof(why)) == 0) {
		keyed_by_way(b, k, ix->fp);
		ix->ok = true;
	}
	if (!ix->ok)
		pr_debug("flint run: %s: no image index: %s", path, why);
}

/* Whether ix's source has the fingerprint it had before its key was
 * computed (true when there is none to compare): if not, a directory on
 * its path was renamed or the content changed while the key was computed
 * or the image built, and neither the index entry nor the image may be
 * taken for the key's. */
static bool index_unchanged(const struct index *ix)
{
	char fp[IMAGE_KEY_LEN], why[PATH_MAX + 256];
	bool settled;

	if (!ix->ok)
		return true;
	if (image_fingerprint(ix->real, ix->kind, fp, &settled, why, sizeof(why)) == 0 &&
	    (keyed_by_way(ix->b, ix->kind, fp), !strcmp(fp, ix->fp)))
		return true;
	pr_debug("flint run: %s changed while its key was computed", ix->path);
	return false;
}

/* The key ix's entry names, when it is a regular file of this user's
 * holding 64 lowercase hex digits and a newline, and the image under that
 * key is there (its path in final): true. Anything else is ignored (the
 * key is computed again and the entry written again). */
static bool index_lookup(const struct index *ix, const char *images, char key[IMAGE_KEY_LEN],
			 char *final)
{
	char p[PATH_MAX + IMAGE_KEY_LEN], line[IMAGE_KEY_LEN + 1];
	struct stat st;
	ssize_t n = -1;
	int fd;

	if (!ix->ok)
		return false;
	snprintf(p, sizeof(p), "%s/%s", ix->dir, ix->fp);
	/* O_NONBLOCK: a FIFO planted there would wait for a writer. */
	if ((fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			pr_debug("flint run: ignoring the image index entry %s: %s", p,
				 strerror(errno));
		return false;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
		n = read(fd, line, sizeof(line));
	close(fd);
	if (n != IMAGE_KEY_LEN || line[n - 1] != '\n' || !image_key_text(line)) {
		pr_debug("flint run: ignoring the image index entry %s: not a file of uid %u "
			 "holding a key",
			 p, (unsigned)geteuid());
		return false;
	}
	memcpy(key, line, IMAGE_KEY_LEN - 1);
	key[IMAGE_KEY_LEN - 1] = '\0';
	if (image_path(images, key, final) && cached_image(final))
		return true;
	pr_debug("flint run: ignoring the image index entry %s: no image %s", p, final);
	return false;
}

/* Record key as ix's source's, if its fingerprint is settled and, when
 * verify, still the source's (build has just taken it again itself):
 * through a file of its own renamed into place, unsynced (an entry lost in
 * a power cut only costs a key computed again). */
static void index_write(const struct index *ix, const char *key, bool verify)
{
	char tmp[PATH_MAX + 16], p[PATH_MAX + IMAGE_KEY_LEN], line[IMAGE_KEY_LEN + 1];
	int fd, r;

	if (!ix->ok)
		return;
	if (!ix->settled) {
		pr_debug("flint run: %s changed in the last seconds: not put in the image index "
			 "yet",
			 ix->path);
		return;
	}
	if (verify && !index_unchanged(ix))
		return;
	snprintf(tmp, sizeof(tmp), "%s/.new-XXXXXX", ix->dir);
	snprintf(p, sizeof(p), "%s/%s", ix->dir, ix->fp);
	snprintf(line, sizeof(line), "%s\n", key);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		pr_debug("flint run: cannot create a file in %s: %s", ix->dir, strerror(errno));
		return;
	}
	r = write_full(fd, line, IMAGE_KEY_LEN);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, p) < 0)
		r = -errno;
	if (r < 0) {
		pr_debug("flint run: cannot write the image index entry %s: %s", p, strerror(-r));
		unlink(tmp);
	}
}

int image_prepare(const struct image_builder *b, const char *path, char *out, size_t outlen,
		  int *hold, bool *built, char *err, size_t errlen)
{
	char key[IMAGE_KEY_LEN], dir[PATH_MAX], final[PATH_MAX], real[PATH_MAX];
	struct sigaction was_sig;
	struct index ix;
	struct rlimit was;
	enum image_kind k;
	int r, held;

	if (built)
		*built = false;
	if (hold)
		*hold = -1;
	if ((r = image_detect(path, &k, err, errlen)) < 0)
		return r;
	if (k == IMAGE_EXT4) {
		if ((size_t)snprintf(out, outlen, "%s", path) >= outlen)
			return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
		return 0;
	}
	/* Resolved once: the fingerprint, the key and the build all read the
	 * same directory or file, whatever a symlink on path names meanwhile
	 * (a release switched by ln -sfn would otherwise have its content
	 * indexed under the fingerprint of the one before). */
	if (!realpath(path, real))
		return err_set(err, errlen, -errno, "%s: %s", path, strerror(errno));
	/* Its key would change with every build, and mke2fs -d would copy the
	 * image it writes into itself. */
	if (k == IMAGE_DIR && holds_cache(real, b->cache_dir))
		return err_set(err, errlen, -EINVAL,
			       "%s: holds flint's cache directory %s, which an image cannot hold "
			       "(name a directory without it, or set FLINT_CACHE elsewhere)",
			       path, b->cache_dir);
	if ((size_t)snprintf(dir, sizeof(dir), "%s/images", b->cache_dir) >= sizeof(dir))
		return err_set(err, errlen, -ENAMETOOLONG, "%s: cache path too long", dir);
	if ((r = private_dir(dir, err, errlen)) < 0)
		return r;
	/* The fingerprint before the content: a change while the content is
	 * read moves a ctime past what the fingerprint took. */
	index_open(b, dir, path, real, k, &ix);
	bool indexed = index_lookup(&ix, dir, key, final);
	if (!indexed && (r = image_key(real, k, key, err, errlen)) < 0)
		return r;
	if (!indexed)
		keyed_by_way(b, k, key);
	if ((!indexed && !image_path(dir, key, final)) ||
	    (size_t)snprintf(out, outlen, "%s", final) >= outlen)
		return err_set(err, errlen, -ENAMETOOLONG, "%s: cache path too long", dir);
	if (indexed || cached_image(final)) {
		if ((r = image_hold(final, hold)) == 0) {
			pr_debug("flint run: %s: image %s from the cache%s", path, final,
				 indexed ? " (index)" : "");
			if (!indexed)
				index_write(&ix, key, true);
			return 0;
		}
		if (r != -ENOENT)
			return err_set(err, errlen, r, "%s: %s", final, strerror(-r));
		pr_debug("flint run: %s: image %s removed as it was found: building it again", path,
			 final);
	}
	sweep(dir, build_left, "left by a build that did not finish");
	set_limit(b->max_bytes, &was, &was_sig);
	r = build(b, real, k, final, &ix, &held, err, errlen);
	restore_limit(b->max_bytes, &was, &was_sig);
	if (r < 0)
		return r;
	index_write(&ix, key, false);
	/* Held before the trim, which then leaves it be: ours since before
	 * its rename, or the one another build put there first (which only a
	 * trim between its rename and now could have taken). */
	if (held < 0 && (r = image_hold(final, &held)) < 0)
		return err_set(err, errlen, r, "%s: %s, just after its build", final, strerror(-r));
	image_cache_trim(dir, b->cache_max);
	if (hold)
		*hold = held;
	else
		close(held);
	if (built)
		*built = true;
	return 0;
}

/* A scratch file lives under its name only from its making to the VM's
 * opening it, seconds: one an hour old is a killed flint's (its SIZE held
 * on the disk until this sweep). */
#define SCRATCH_STALE_S 3600

static bool scratch_left(const char *path, const char *name, time_t now)
{
	size_t n = strlen(name);
	struct stat st;

	return !strncmp(name, "scratch-", 8) && n >= 13 && !strcmp(name + n - 5, ".ext4") &&
	       lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	       st.st_mtime <= now - SCRATCH_STALE_S;
}

int image_reserve_scratch(int fd, uint64_t size, bool check_only, const char *name, char *err,
			  size_t errlen)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t free_b;

	if (fstatvfs(fd, &vfs) < 0 || fstat(fd, &st) < 0)
		return err_set(err, errlen, -errno, "%s: %s", name, strerror(errno));
	/* Looked at first: a fallocate that fails for want of room has
	 * filled the file system by then, for a moment. What a user may have
	 * (f_bavail), for root too: the reserve is the system's. */
	free_b = (uint64_t)vfs.f_bavail * vfs.f_frsize + (uint64_t)st.st_blocks * 512;
	if (free_b >= size && check_only)
		return 0;
	if (free_b >= size && fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (free_b >= size && errno == EOPNOTSUPP)
		return 0; /* a file system without fallocate (some FUSE ones): checked only */
	if (free_b >= size && errno != ENOSPC)
		return err_set(err, errlen, -errno, "%s: cannot reserve its %" PRIu64 " MiB: %s",
			       name, size >> 20, strerror(errno));
	return err_set(err, errlen, -ENOSPC,
		       "%s: its file system has %" PRIu64 " MiB free, less than the disk's %" PRIu64
		       " MiB",
		       name, free_b >> 20, size >> 20);
}

int image_format_scratch(const struct image_builder *b, int fd, const char *path, uint64_t size,
			 const char *name, char *err, size_t errlen)
{
	struct cmd c = {0};
	const char *words[] = {"mke2fs", "-q", "-F", "-t",	     "ext4",
			       "-m",	 "0",  "-O", "^has_journal", path};
	int r;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		add(&c, words[i]);
	/* Room looked for before mke2fs writes its metadata, the blocks
	 * reserved after it (its discard would free them). */
	if ((r = image_reserve_scratch(fd, size, true, name, err, errlen)) < 0 ||
	    (r = run(b, &c, -1, -1, name, err, errlen)) < 0)
		return r;
	return image_reserve_scratch(fd, size, false, name, err, errlen);
}

int image_make_scratch(const struct image_builder *b, const char *dir, uint64_t size, char *out,
		       size_t outlen, char *err, size_t errlen)
{
	int fd, r;

	if ((r = private_dir(dir, err, errlen)) < 0)
		return r;
	sweep(dir, scratch_left, "a scratch disk left by a flint that did not start its VM");
	if ((size_t)snprintf(out, outlen, "%s/scratch-XXXXXX.ext4", dir) >= outlen)
		return err_set(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
	if ((fd = mkostemps(out, 5, O_CLOEXEC)) < 0)
		return err_set(err, errlen, -errno, "cannot create a scratch file in %s: %s", dir,
			       strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", out, strerror(errno));
		goto fail;
	}
	if ((r = image_format_scratch(b, fd, out, size, out, err, errlen)) < 0)
		goto fail;
	close_fd(&fd);
	return 0;
fail:
	close_fd(&fd);
	unlink(out);
	return r;
}
