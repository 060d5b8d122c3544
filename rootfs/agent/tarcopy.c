/* Tar streams of file trees for --copy-in and --copy-out: see tarcopy.h.
 * libarchive both ways: archive_read_disk walks the tree and the pax
 * writer makes the stream; the tar reader and archive_write_disk, with its
 * secure-extraction options, put one in place. */
#include "tarcopy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK (64u << 10)

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A name from the other end, fit to print: at most 200 bytes, no control
 * bytes. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; s && s[n] && n + 4 < len && n < 200; n++)
		buf[n] = (unsigned char)s[n] >= 0x20 && (unsigned char)s[n] < 0x7f ? s[n] : '?';
	buf[n] = '\0';
	if (s && s[n])
		snprintf(buf + n, len - n, "...");
	return buf;
}

/* path without its trailing slashes, in out (PATH_MAX). */
static int strip_slashes(const char *path, char *out)
{
	size_t n = strlen(path);

	if (n == 0 || n >= PATH_MAX)
		return -1;
	while (n > 1 && path[n - 1] == '/')
		n--;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

static const char *last_part(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* ---- sending ------------------------------------------------------------ */

struct wctx {
	const struct tarcopy_io *io;
	char msg[256];
};

static la_ssize_t write_cb(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct wctx *w = ctx;

	if (w->io->write(w->io->ctx, buf, len, w->msg, sizeof(w->msg)) < 0) {
		archive_set_error(a, EIO, "%s", w->msg);
		return -1;
	}
	return (la_ssize_t)len;
}

/* A regular file's bytes, read through its own descriptor (never a
 * symlink), as many as the header announced: archive_write_finish_entry
 * pads a file that shrank meanwhile, and the writer takes no more. */
static int send_data(struct archive *w, struct archive_entry *e, char *err, size_t errlen)
{
	const char *src = archive_entry_sourcepath(e);
	int fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	int64_t left = archive_entry_size(e);
	char *buf = NULL;
	int ret = 0;

	if (fd < 0)
		return fail(err, errlen, "%s: %s", src, strerror(errno));
	if (!(buf = malloc(CHUNK))) {
		ret = fail(err, errlen, "out of memory");
		goto out;
	}
	while (left > 0) {
		ssize_t n = read(fd, buf, left < CHUNK ? (size_t)left : CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = fail(err, errlen, "%s: %s", src, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (archive_write_data(w, buf, (size_t)n) < 0) {
			ret = fail(err, errlen, "%s", archive_error_string(w));
			goto out;
		}
		left -= n;
	}
out:
	free(buf);
	close(fd);
	return ret;
}

/* One path component into name (NAME_MAX + 1 bytes). */
static int copy_name(char *name, const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (!n || n > NAME_MAX)
		return fail(err, errlen, "'%.64s...': no name, or too long a name", s);
	memcpy(name, s, n + 1);
	return 0;
}

/* The stream's top name for path (no trailing slash): its last component,
 * or for "." and ".." that of the directory they name. */
static int top_name(const char *path, char *top, char *err, size_t errlen)
{
	const char *base = last_part(path);
	char real[PATH_MAX];

	if (!strcmp(base, ".") || !strcmp(base, "..")) {
		if (!realpath(path, real) || !strcmp(real, "/"))
			return fail(err, errlen, "%s: name a directory under /, not / itself",
				    path);
		base = last_part(real);
	}
	return copy_name(top, base, err, errlen);
}

int tarcopy_send(const char *path, const struct tarcopy_io *io, unsigned *skipped, char *err,
		 size_t errlen)
{
	struct archive *w = NULL, *d = NULL;
	struct archive_entry *e = NULL;
	struct wctx wc = {.io = io};
	char clean[PATH_MAX], top[NAME_MAX + 1], name[PATH_MAX + NAME_MAX + 2];
	size_t plen;
	struct stat st;
	int ret = -1, r;

	if (skipped)
		*skipped = 0;
	if (strip_slashes(path, clean) < 0)
		return fail(err, errlen, "%s: not a path", path);
	if (!strcmp(clean, "/"))
		return fail(err, errlen, "/: name a directory under /, not / itself");
	if (lstat(clean, &st) < 0)
		return fail(err, errlen, "%s: %s", clean, strerror(errno));
	/* Left out beneath it, as the walk below does, but not sent as
	 * nothing at all, which the other end could only call an empty
	 * stream. */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		return fail(err, errlen,
			    "%s: not a file, directory or symlink (devices, FIFOs and sockets are "
			    "not copied)",
			    clean);
	if (top_name(clean, top, err, errlen) < 0)
		return -1;
	plen = strlen(clean);
	if (!(w = archive_write_new()) || !(d = archive_read_disk_new()) ||
	    !(e = archive_entry_new())) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	/* Symlinks as they are, no ACLs, extended attributes or file flags:
	 * what the other end keeps is modes, owners, times. */
	if (archive_write_set_format_pax_restricted(w) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
	    archive_read_disk_set_symlink_physical(d) != ARCHIVE_OK ||
	    archive_read_disk_set_behavior(d, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
						  ARCHIVE_READDISK_NO_FFLAGS) != ARCHIVE_OK) {
		fail(err, errlen, "libarchive: %s", archive_error_string(w));
		goto out;
	}
	if (archive_write_open(w, &wc, NULL, write_cb, NULL) != ARCHIVE_OK) {
		fail(err, errlen, "%s", archive_error_string(w));
		goto out;
	}
	if (archive_read_disk_open(d, clean) != ARCHIVE_OK) {
		fail(err, errlen, "%s: %s", clean, archive_error_string(d));
		goto out;
	}
	for (;;) {
		const char *p;
		unsigned type;

		archive_entry_clear(e);
		r = archive_read_next_header2(d, e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			/* Its own words name the file only as within its
			 * directory ("Can't open `f'"): the path and errno too. */
			const char *at = archive_entry_pathname(e);
			int en = archive_errno(d);

			fail(err, errlen, "%s: %s%s%s", at ? at : clean, archive_error_string(d),
			     en > 0 ? ": " : "", en > 0 ? strerror(en) : "");
			goto out;
		}
		p = archive_entry_pathname(e);
		type = archive_entry_filetype(e);
		if (type == AE_IFDIR && archive_read_disk_can_descend(d))
			archive_read_disk_descend(d);
		if (!p || strncmp(p, clean, plen) || (p[plen] && p[plen] != '/')) {
			fail(err, errlen, "%s: walked to %s, outside it", clean, p ? p : "?");
			goto out;
		}
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
			if (skipped)
				(*skipped)++;
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", top, p + plen);
		archive_entry_copy_pathname(e, name);
		/* Numbers only; each file whole (no hard links, no holes). */
		archive_entry_set_uname(e, NULL);
		archive_entry_set_gname(e, NULL);
		archive_entry_set_hardlink(e, NULL);
		archive_entry_sparse_clear(e);
		if (type != AE_IFREG)
			archive_entry_set_size(e, 0);
		r = archive_write_header(w, e);
		if (r < ARCHIVE_WARN) {
			fail(err, errlen, "%s: %s", archive_entry_sourcepath(e),
			     archive_error_string(w));
			goto out;
		}
		if (type == AE_IFREG && send_data(w, e, err, errlen) < 0)
			goto out;
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			fail(err, errlen, "%s", archive_error_string(w));
			goto out;
		}
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		fail(err, errlen, "%s", archive_error_string(w));
		goto out;
	}
	ret = 0;
out:
	archive_entry_free(e);
	archive_read_free(d);
	archive_write_free(w);
	return ret;
}

/* ---- receiving ---------------------------------------------------------- */

struct rctx {
	const struct tarcopy_io *io;
	char msg[256];
	bool failed; /* the stream's reader gave up: its message is the reason */
	/* Bytes read while libarchive reads one entry's header (and what
	 * comes with it: a sparse file's map), in_header while it does. */
	uint64_t header_bytes;
	bool in_header;
};

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct rctx *r = ctx;
	ssize_t n = r->io->read(r->io->ctx, buf, r->msg, sizeof(r->msg));

	if (n < 0) {
		r->failed = true;
		archive_set_error(a, EIO, "%s", r->msg);
		return -1;
	}
	/* libarchive holds what a header says in memory, a GNU sparse map
	 * at about twelve times its size in the stream: a header that runs
	 * on is cut off here rather than let grow the receiver. */
	if (r->in_header && (r->header_bytes += (uint64_t)n) > TARCOPY_HEADER_MAX) {
		r->failed = true;
		snprintf(r->msg, sizeof(r->msg), "an entry's header runs past %u MiB",
			 TARCOPY_HEADER_MAX >> 20);
		archive_set_error(a, EFBIG, "%s", r->msg);
		return -1;
	}
	return n;
}

/* The stream's next header, read within TARCOPY_HEADER_MAX. */
static int next_header(struct archive *a, struct rctx *rc, struct archive_entry **e)
{
	int r;

	rc->in_header = true;
	rc->header_bytes = 0;
	r = archive_read_next_header(a, e);
	rc->in_header = false;
	return r;
}

/* Why libarchive failed, fit to print: its message names what the other
 * end sent (a path, a link target), which may hold any byte. rc: the
 * reading side's (its reader's own reason first), NULL for the writing
 * side. */
static const char *la_why(struct archive *a, const struct rctx *rc, char *buf, size_t len)
{
	const char *why = archive_error_string(a);

	if (rc && rc->failed)
		why = rc->msg;
	if (why)
		return shown(why, buf, len);
	return rc ? "the stream broke off or is not a tar archive" : "libarchive gave no reason";
}

/* name is one clean component: not empty, ".", ".." or with a '/'. */
static bool one_part(const char *s, size_t n)
{
	return n && !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.') &&
	       !memchr(s, '/', n);
}

int tarcopy_map_name(const char *name, const char *top, const char *newtop, char *out,
		     size_t outlen)
{
	size_t n = strlen(name), tl = strlen(top);
	const char *rest;

	while (n > 0 && name[n - 1] == '/')
		n--;
	if (n < tl || memcmp(name, top, tl) || (n > tl && name[tl] != '/'))
		return -1;
	rest = name + tl; /* "" or "/a/b" */
	for (const char *c = rest; c < name + n;) {
		const char *end;

		c++; /* the '/' */
		end = memchr(c, '/', (size_t)(name + n - c));
		if (!end)
			end = name + n;
		if (!one_part(c, (size_t)(end - c)))
			return -1;
		c = end;
	}
	if (!newtop) {
		if (rest == name + n)
			return 0;
		rest++; /* drop the '/' */
		newtop = "";
	}
	if ((size_t)snprintf(out, outlen, "%s%.*s", newtop, (int)(name + n - rest), rest) >= outlen)
		return -1;
	return 1;
}

/* An O_PATH descriptor of the directory name beneath dirfd, with
 * TARCOPY_DEST_NO_LINKS reached through no symlink, or -1 (errno; ELOOP:
 * a symlink on the way). */
static int open_dir(int dirfd, const char *name, unsigned flags)
{
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
	long fd;

	if (!(flags & TARCOPY_DEST_NO_LINKS))
		return openat(dirfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	do
		fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return (int)fd;
}

/* The message for path, which open_dir, mkdir_p or trusted_path could not
 * open: -1. */
static int dir_fail(const char *path, unsigned flags, char *err, size_t errlen)
{
	return fail(err, errlen, "%s: %s", path,
		    errno == ELOOP && (flags & TARCOPY_DEST_NO_LINKS)
			? "a symlink on the way that another user could have made or changed, "
			  "which a copy after a command has run in the guest does not follow"
			: strerror(errno));
}

/* Whether the symlink name in the directory dirfd (dir: its stat) is one
 * that only root, or the user this copy runs as, can have made or can
 * change: its owner and the directory's are theirs, and nobody else may
 * write the directory. Not a sticky one's (/tmp): a link's owner is no
 * proof there, where another user may put a hard link to root's. */
static bool link_trusted(int dirfd, const char *name, const struct stat *dir)
{
	uid_t me = geteuid();
	struct stat l;

	if (fstatat(dirfd, name, &l, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(l.st_mode))
		return false;
	return (l.st_uid == 0 || l.st_uid == me) && (dir->st_uid == 0 || dir->st_uid == me) &&
	       !(dir->st_mode & (S_IWGRP | S_IWOTH));
}

/* Appends "/name" (n bytes of it) to the path out of *len bytes. */
static int path_add(char *out, size_t *len, const char *name, size_t n)
{
	if (*len + 1 + n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	out[(*len)++] = '/';
	memcpy(out + *len, name, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

/* Drops the last part of the path out (*len bytes; all of them with
 * to_root) and opens what is left through no symlink: its descriptor, or
 * -1. */
static int path_up(char *out, size_t *len, bool to_root)
{
	while (*len && out[--*len] != '/')
		;
	if (to_root)
		*len = 0;
	out[*len] = '\0';
	return open_dir(AT_FDCWD, *len ? out : "/", TARCOPY_DEST_NO_LINKS);
}

/* TARCOPY_DEST_NO_LINKS: the absolute path with the symlinks on its way
 * that link_trusted allows followed (a merged /usr's /bin -> usr/bin),
 * into out (PATH_MAX bytes): a path through no symlink, as far as it
 * goes; what is missing is kept as it is (made later through no symlink).
 * The path's last part is followed only to a directory (a file copied to a
 * link to a file would write the file it names, where the copy's rules
 * replace the link). -1 with errno, ELOOP with out the path of a symlink
 * not followed. A relative path is left as it is (followed through no
 * symlink at all). */
static int trusted_path(const char *path, char *out)
{
	char todo[PATH_MAX], next[PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1];
	char last_link[PATH_MAX] = "";
	const char *c = todo;
	size_t len = 0;
	int dfd, nfd, links = 0;

	if (snprintf(todo, sizeof(todo), "%s", path) >= (int)sizeof(todo)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (path[0] != '/') {
		strcpy(out, path);
		return 0;
	}
	out[0] = '\0';
	if ((dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	for (;;) {
		struct stat dir;
		size_t n;
		ssize_t t;

		c += strspn(c, "/");
		if (!*c)
			break;
		n = strcspn(c, "/");
		if (n > NAME_MAX) {
			errno = ENAMETOOLONG;
			goto err;
		}
		memcpy(name, c, n);
		name[n] = '\0';
		c += n;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			/* out has no symlink: its parent is the path's. */
			if ((nfd = path_up(out, &len, false)) < 0)
				goto err;
			close(dfd);
			dfd = nfd;
			continue;
		}
		if (path_add(out, &len, name, n) < 0)
			goto err;
		if ((nfd = open_dir(dfd, name, TARCOPY_DEST_NO_LINKS)) >= 0) {
			close(dfd);
			dfd = nfd;
			continue;
		}
		/* Missing, or not a directory: the rest is taken as it is,
		 * and whoever uses it next says what is wrong with it; but
		 * not where the path's last part, a link, leads. */
		if (errno == ENOENT || errno == ENOTDIR) {
			if (last_link[0]) {
				strcpy(out, last_link);
				errno = ELOOP;
				goto err;
			}
			if (*c && path_add(out, &len, c + 1, strlen(c + 1)) < 0)
				goto err;
			break;
		}
		if (errno != ELOOP)
			goto err;
		if (fstat(dfd, &dir) < 0 || !link_trusted(dfd, name, &dir) || ++links > 40) {
			errno = ELOOP;
			goto err;
		}
		if (!c[strspn(c, "/")] && !last_link[0])
			strcpy(last_link, out);
		if ((t = readlinkat(dfd, name, target, sizeof(target) - 1)) <= 0)
			goto err;
		target[t] = '\0';
		if (snprintf(next, sizeof(next), "%s%s", target, c) >= (int)sizeof(next)) {
			errno = ENAMETOOLONG;
			goto err;
		}
		strcpy(todo, next);
		c = todo;
		/* On from the link's directory, or from / for an absolute
		 * target. */
		if ((nfd = path_up(out, &len, target[0] == '/')) < 0)
			goto err;
		close(dfd);
		dfd = nfd;
	}
	close(dfd);
	if (!len)
		strcpy(out, "/");
	return 0;
err:
	nfd = errno;
	close(dfd);
	errno = nfd;
	return -1;
}

/* mkdir -p path, a directory at a time beneath the one before (through no
 * symlink with TARCOPY_DEST_NO_LINKS); those it makes are owner's, when
 * given. */
static int mkdir_p(const char *path, unsigned flags, const struct tarcopy_owner *owner, char *err,
		   size_t errlen)
{
	char p[PATH_MAX];
	int dfd;

	snprintf(p, sizeof(p), "%s", path);
	dfd = open_dir(AT_FDCWD, p[0] == '/' ? "/" : ".", flags);
	for (char *c = p + strspn(p, "/"); dfd >= 0 && *c;) {
		size_t n = strcspn(c, "/");
		char was = c[n];
		int made, nfd;

		c[n] = '\0';
		made = mkdirat(dfd, c, 0755) == 0;
		if (!made && errno != EEXIST) {
			close(dfd);
			return fail(err, errlen, "cannot make %s: %s", p, strerror(errno));
		}
		nfd = open_dir(dfd, c, flags);
		int e = errno;

		close(dfd);
		errno = e;
		if (nfd < 0)
			return dir_fail(p, flags, err, errlen);
		/* Through the descriptor: the directory opened, whatever its
		 * name holds by now. */
		if (made && owner)
			(void)!fchownat(nfd, "", owner->uid, owner->gid, AT_EMPTY_PATH);
		dfd = nfd;
		c[n] = was;
		c += n + strspn(c + n, "/");
	}
	if (dfd < 0)
		return dir_fail(path, flags, err, errlen);
	close(dfd);
	return 0;
}

/* Where the stream goes: the directory to extract in (base) and top's new
 * name there (newtop; "" to drop it), by the rules of tarcopy.h; missing
 * directories made, owner's when given. *made: base is one of them, into
 * which the contents go (DIR/.). */
static int resolve(const char *dest, unsigned flags, const struct tarcopy_owner *owner,
		   const char *top, bool top_dir, char *base, char *newtop, bool *made, char *err,
		   size_t errlen)
{
	char given[PATH_MAX], clean[PATH_MAX];
	bool slash, exists, isdir;
	struct stat st;

	if (strip_slashes(dest, given) < 0)
		return fail(err, errlen, "%s: not a path", dest);
	if (!(flags & TARCOPY_DEST_NO_LINKS))
		strcpy(clean, given);
	else if (trusted_path(given, clean) < 0)
		return dir_fail(errno == ELOOP ? clean : given, flags, err, errlen);
	slash = dest[strlen(dest) - 1] == '/' && strcmp(clean, "/");
	exists = (flags & TARCOPY_DEST_NO_LINKS ? lstat : stat)(clean, &st) == 0;
	isdir = exists && S_ISDIR(st.st_mode);
	if (!exists && errno != ENOENT)
		return fail(err, errlen, "%s: %s", clean, strerror(errno));
	if (exists && S_ISLNK(st.st_mode)) {
		errno = ELOOP;
		return dir_fail(clean, flags, err, errlen);
	}
	if (flags & TARCOPY_CONTENTS) {
		if (!top_dir)
			return fail(err, errlen, "%s/.: not a directory", top);
		if (exists && !isdir)
			return fail(err, errlen, "%s: not a directory", clean);
		strcpy(base, clean);
		newtop[0] = '\0';
		*made = !isdir;
		return isdir ? 0 : mkdir_p(clean, flags, owner, err, errlen);
	}
	if (isdir || slash) {
		if (exists && !isdir)
			return fail(err, errlen, "%s: not a directory", clean);
		strcpy(base, clean);
		strcpy(newtop, top);
		return isdir ? 0 : mkdir_p(clean, flags, owner, err, errlen);
	}
	if (exists && top_dir)
		return fail(err, errlen, "%s: cannot copy directory %s over a file", clean, top);
	/* T becomes clean: extracted in its parent under its name. */
	const char *name = last_part(clean);

	if (!one_part(name, strlen(name)) || copy_name(newtop, name, err, errlen) < 0)
		return fail(err, errlen, "%s: no name to copy to", clean);
	if (name == clean + 1) {
		strcpy(base, "/");
		return 0;
	}
	if (name == clean) {
		strcpy(base, ".");
		return 0;
	}
	snprintf(base, PATH_MAX, "%.*s", (int)(name - 1 - clean), clean);
	return mkdir_p(base, flags, owner, err, errlen);
}

/* One entry's checks and its new name. 1: write it, 0: skip it, -1: err. */
static int check_entry(struct archive_entry *e, unsigned count, size_t *names, const char *top,
		       bool top_dir, const char *newtop, char *out, size_t outlen, char *err,
		       size_t errlen)
{
	const char *name = archive_entry_pathname(e), *link = archive_entry_symlink(e);
	unsigned type = archive_entry_filetype(e);
	char s[256];
	int m;

	if (count > TARCOPY_MAX_ENTRIES)
		return fail(err, errlen, "more than %u entries", TARCOPY_MAX_ENTRIES);
	if (!name || strnlen(name, TARCOPY_NAME_MAX) == TARCOPY_NAME_MAX)
		return fail(err, errlen, "entry '%s': name missing or too long",
			    shown(name, s, sizeof(s)));
	if (archive_entry_hardlink(e))
		return fail(err, errlen, "entry '%s': a hard link (not copied)",
			    shown(name, s, sizeof(s)));
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return fail(err, errlen, "entry '%s': not a file, directory or symlink (type %#o)",
			    shown(name, s, sizeof(s)), type);
	if (type != AE_IFLNK && link)
		return fail(err, errlen, "entry '%s': a link target on a non-symlink",
			    shown(name, s, sizeof(s)));
	if (type == AE_IFLNK && (!link || strnlen(link, TARCOPY_NAME_MAX) == TARCOPY_NAME_MAX))
		return fail(err, errlen, "entry '%s': symlink target missing or too long",
			    shown(name, s, sizeof(s)));
	/* Each is kept until the end: libarchive's directory fixups, the
	 * symlinks to check. */
	*names += strlen(name) + (link ? strlen(link) : 0);
	if (*names > TARCOPY_NAMES_MAX)
		return fail(err, errlen, "entry '%s': more than %u MiB of names and link targets",
			    shown(name, s, sizeof(s)), TARCOPY_NAMES_MAX >> 20);
	if (count > 1 && !top_dir)
		return fail(err, errlen, "entry '%s' after '%s', which is not a directory",
			    shown(name, s, sizeof(s)), top);
	m = tarcopy_map_name(name, top, newtop[0] ? newtop : NULL, out, outlen);
	if (m < 0)
		return fail(err, errlen, "entry '%s': outside '%s', or a path with '..'",
			    shown(name, s, sizeof(s)), top);
	/* The top directory once: sent again as a symlink it would replace
	 * the directory, empty yet, and the links check could not open the
	 * copy's root to remove it. */
	if (m == 1 && count > 1 && !strcmp(out, newtop))
		return fail(err, errlen, "entry '%s': the top again", shown(name, s, sizeof(s)));
	return m;
}

/* The symlinks a stream sends (TARCOPY_LINKS_INSIDE, or a
 * TARCOPY_SOLE_WRITER copy into a new top), made only once the stream is
 * in (links_make, links_make_all): each one's name beneath the extraction's
 * directory, its name in the stream, its target, its owner and time, and
 * whether it was made. */
struct links {
	struct link {
		char *name, *sent, *target;
		uid_t uid;
		gid_t gid;
		struct timespec mtime;
		bool made;
	} * l;
	size_t n, cap;
	/* TARCOPY_LINKS_INSIDE: what the copy wrote, by inode, which is all
	 * a link may lead to (made_only): one to a file of the host's beside
	 * the copy (a workspace's .git/config) would have an artefact upload
	 * that follows links take it. merged: a directory that was there
	 * before, which the stream sent too; verdict: made_only's on it, once
	 * walked (0 not yet, 1 it holds only the copy's, -1 not). */
	struct made_id {
		dev_t dev;
		ino_t ino;
		bool merged;
		signed char verdict;
	} * ids;
	size_t nids, capids;
};

/* The deepest a merged directory is walked (made_only): each level holds a
 * directory open. Deeper ones count as holding what is not the copy's. */
#define MERGED_DEPTH_MAX 64

/* Note that the copy wrote what is at name now (merged: a directory that
 * was there before). 0, or -1 with err set. */
static int made_add(struct links *l, const char *name, bool merged, char *err, size_t errlen)
{
	struct stat st;
	char s[256];

	if (lstat(name, &st) < 0)
		return fail(err, errlen, "%s: %s", shown(name, s, sizeof(s)), strerror(errno));
	if (l->nids == l->capids) {
		size_t cap = l->capids ? 2 * l->capids : 64;
		struct made_id *n = realloc(l->ids, cap * sizeof(*n));

		if (!n)
			return fail(err, errlen, "out of memory");
		l->ids = n;
		l->capids = cap;
	}
	l->ids[l->nids++] = (struct made_id){st.st_dev, st.st_ino, merged, 0};
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	const struct made_id *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Sort the ids for made_find, each once: a directory the copy both made
 * and wrote again (its top made for DIR/., a name sent twice) is made. */
static void made_sort(struct links *l)
{
	size_t n = 0;

	if (!l->nids)
		return;
	qsort(l->ids, l->nids, sizeof(*l->ids), id_cmp);
	for (size_t i = 1; i < l->nids; i++)
		if (!id_cmp(&l->ids[n], &l->ids[i]))
			l->ids[n].merged &= l->ids[i].merged;
		else
			l->ids[++n] = l->ids[i];
	l->nids = n + 1;
}

static struct made_id *made_find(const struct links *l, const struct stat *st)
{
	struct made_id k = {st->st_dev, st->st_ino, false, 0};

	return l->nids ? bsearch(&k, l->ids, l->nids, sizeof(*l->ids), id_cmp) : NULL;
}

/* Whether directory fd (closed here), merged into as id, holds only the
 * copy's, beneath it too, depth levels deep at most; each merged
 * directory's verdict is kept, so that no directory is walked twice. */
static bool only_made_in(const struct links *l, struct made_id *id, int fd, unsigned depth)
{
	DIR *d = !id->verdict && fd >= 0 && depth ? fdopendir(fd) : NULL;
	struct dirent *de;
	bool ok = true;

	if (!d) {
		if (fd >= 0)
			close(fd);
		/* Not walked (too deep, out of descriptors): no verdict kept,
		 * as a way in from nearer the top may walk it. */
		return id->verdict > 0;
	}
	while (ok && (de = readdir(d))) {
		struct made_id *sub;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(sub = made_find(l, &st)))
			ok = false;
		else if (S_ISDIR(st.st_mode) && sub->merged)
			ok = only_made_in(l, sub,
					  openat(dirfd(d), de->d_name,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
					  depth - 1);
	}
	closedir(d);
	id->verdict = ok ? 1 : -1;
	return ok;
}

/* Whether what fd (O_PATH, a link's end) stands for is the copy's:
 * something it made, or a directory it merged into that holds nothing
 * else. */
static bool made_only(struct links *l, int fd)
{
	struct made_id *id;
	struct stat st;

	if (fstat(fd, &st) < 0 || !(id = made_find(l, &st)))
		return false;
	if (!S_ISDIR(st.st_mode) || !id->merged)
		return true;
	return only_made_in(l, id, openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
			    MERGED_DEPTH_MAX);
}

static int links_add(struct links *l, const char *name, struct archive_entry *e)
{
	const char *sent = archive_entry_pathname(e), *target = archive_entry_symlink(e);

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct link *n = realloc(l->l, cap * sizeof(*n));

		if (!n)
			return -1;
		l->l = n;
		l->cap = cap;
	}
	struct link *k = &l->l[l->n];

	k->name = strdup(name);
	k->sent = strdup(sent);
	k->target = strdup(target);
	k->uid = (uid_t)archive_entry_uid(e);
	k->gid = (gid_t)archive_entry_gid(e);
	k->mtime = (struct timespec){archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
	k->made = false;
	l->n++;
	return k->name && k->sent && k->target ? 0 : -1;
}

static void links_free(struct links *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->l[i].name);
		free(l->l[i].sent);
		free(l->l[i].target);
	}
	free(l->l);
	free(l->ids);
}

/* Whether a symlink's target has a ".." component. */
static bool has_dotdot(const char *target)
{
	for (const char *c = target; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 2 && !memcmp(c, "..", 2))
			return true;
		c += n + strspn(c + n, "/");
	}
	return false;
}

/* Whether the symlink at rel (beneath rootfd) leads outside the root: the
 * kernel follows it beneath the root (openat2 RESOLVE_BENEATH, so other
 * symlinks on the way count as they are). One the kernel cannot follow to
 * its end (dangling, a loop, a directory on the way it may not search, no
 * openat2) is kept only if its target has no "..": counting them by the
 * text is no answer, since a link on the way (to ".", say) or one made
 * later can stand for any depth. With made (its ids sorted), one that
 * leads to what is not the copy's (made_only) leads out too. */
static bool leads_out(int rootfd, const char *rel, const char *target, struct links *made)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};

	if (target[0] == '/')
		return true;
	for (int tries = 0; tries < 8; tries++) {
		long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));

		if (fd >= 0) {
			bool out = made && !made_only(made, (int)fd);

			close((int)fd);
			return out;
		}
		if (errno == EXDEV)
			return true;
		if (errno != EAGAIN)
			break;
	}
	return has_dotdot(target);
}

/* k's name beneath the root: without the prefix (and its '/') that names
 * the root beneath the extraction's directory. */
static const char *link_rel(const struct link *k, const char *prefix)
{
	size_t pl = strlen(prefix);

	if (pl && !strncmp(k->name, prefix, pl) && k->name[pl] == '/')
		return k->name + pl + 1;
	return k->name;
}

/* The message for k, which leads outside the root: what became of it
 * (how, with those like it), -1. */
static int link_out_fail(const struct link *k, const char *how, char *err, size_t errlen)
{
	char s[256], t[256];

	return fail(err, errlen,
		    "entry '%s': a symlink to '%s', which leads outside what was copied (%s)",
		    shown(k->sent, s, sizeof(s)), shown(k->target, t, sizeof(t)), how);
}

/* Whether the symlink at rel, with target, would lead outside the root
 * were it made: its target followed from rel's directory, as leads_out
 * follows a link that is there. */
static bool would_lead_out(int rootfd, const char *rel, const char *target)
{
	const char *slash = strrchr(rel, '/');
	char path[2 * TARCOPY_NAME_MAX + 2];

	if ((size_t)snprintf(path, sizeof(path), "%.*s%s%s", slash ? (int)(slash - rel) : 0, rel,
			     slash ? "/" : "", target) >= sizeof(path))
		return true;
	return leads_out(rootfd, path, target, NULL);
}

/* Make one link (cwd: the extraction's directory): what is at its name goes
 * unless it is a directory, or a symlink to another target (an earlier
 * copy's, which links kept before may lead through: replaced, it could
 * make them lead out). One to the same target is left as it is. */
static int link_make(struct link *k, unsigned flags, char *err, size_t errlen)
{
	char s[256], was[TARCOPY_NAME_MAX + 1];
	struct stat st;
	ssize_t n;

	if (lstat(k->name, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return fail(err, errlen,
				    "entry '%s': a symlink in place of the directory already there",
				    shown(k->sent, s, sizeof(s)));
		if (S_ISLNK(st.st_mode)) {
			n = readlink(k->name, was, sizeof(was) - 1);
			if (n >= 0 && (size_t)n == strlen(k->target) &&
			    !memcmp(was, k->target, (size_t)n)) {
				k->made = true; /* as it was: still checked */
				return 0;
			}
			return fail(err, errlen,
				    "entry '%s': a symlink already there (from before this copy) "
				    "points elsewhere; remove it first",
				    shown(k->sent, s, sizeof(s)));
		}
		if (unlink(k->name) < 0)
			return fail(err, errlen, "%s: %s", shown(k->sent, s, sizeof(s)),
				    strerror(errno));
	} else if (errno != ENOENT) {
		return fail(err, errlen, "%s: %s", shown(k->sent, s, sizeof(s)), strerror(errno));
	}
	if (symlink(k->target, k->name) < 0)
		return fail(err, errlen, "%s: %s", shown(k->sent, s, sizeof(s)), strerror(errno));
	k->made = true;
	/* As libarchive would (owners only when it keeps them); a failure
	 * loses an owner or a time, as libarchive's warnings do. */
	if (flags & TARCOPY_KEEP_ALL)
		(void)!lchown(k->name, k->uid, k->gid);
	const struct timespec ts[2] = {k->mtime, k->mtime};

	(void)!utimensat(AT_FDCWD, k->name, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

/* TARCOPY_LINKS_INSIDE, once the stream is in: make its links, none of
 * which existed while the guest was sending (a flint killed meanwhile
 * leaves none behind). First those with no ".." in their target, then
 * those with one; each only if, followed from where it goes, it would not
 * lead outside the root (root_name and prefix as links_check's). A link
 * made earlier, or one of the host's, can still make a later one lead
 * out: links_check then removes it. One that cannot be made ends the
 * making; those leading out are left unmade, the first named. */
static int links_make(struct links *l, const char *root_name, const char *prefix, unsigned flags,
		      char *err, size_t errlen)
{
	int rootfd = open(root_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	size_t out = 0, first = 0;

	if (rootfd < 0)
		return fail(err, errlen, "%s: %s", root_name, strerror(errno));
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l->n; i++) {
			struct link *k = &l->l[i];

			if (has_dotdot(k->target) != (pass == 1))
				continue;
			if (would_lead_out(rootfd, link_rel(k, prefix), k->target)) {
				if (!out++ || i < first)
					first = i;
			} else if (link_make(k, flags, err, errlen) < 0 ||
				   made_add(l, k->name, false, err, errlen) < 0) {
				close(rootfd);
				return -1;
			}
		}
	close(rootfd);
	if (out)
		return link_out_fail(&l->l[first],
				     out > 1 ? "not made, nor the others that do" : "not made", err,
				     errlen);
	return 0;
}

/* TARCOPY_SOLE_WRITER into a new top, once the stream is in: make its
 * links, wherever they lead (in the guest, as the host's user made them). */
static int links_make_all(struct links *l, unsigned flags, char *err, size_t errlen)
{
	for (size_t i = 0; i < l->n; i++)
		if (link_make(&l->l[i], flags, err, errlen) < 0)
			return -1;
	return 0;
}

/* TARCOPY_LINKS_INSIDE, once the stream is in and before libarchive gives
 * directories their modes (so that a directory the stream made read-only
 * cannot keep a link in it): the links that lead outside the root
 * (root_name beneath the working directory: "." or the top's new name;
 * names in l start with prefix, which is dropped) are removed, and the
 * first is named. Past io's deadline the links not yet checked are
 * removed unchecked: a stream of links that are slow to follow cannot hold
 * the copy past it. */
static int links_check(struct links *l, const char *root_name, const char *prefix,
		       const struct tarcopy_io *io, char *err, size_t errlen)
{
	int rootfd = open(root_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	size_t bad = 0, first = 0, unchecked = 0, kept = 0, kept_i = 0;
	bool kept_late = false;
	int kept_errno = 0;
	char s[256], t[256];

	if (rootfd < 0)
		return fail(err, errlen, "%s: %s", root_name, strerror(errno));
	made_sort(l);
	for (size_t i = 0; i < l->n; i++) {
		const char *rel = link_rel(&l->l[i], prefix);
		bool late = io->expired && io->expired(io->ctx);

		if (!l->l[i].made)
			continue;
		if (!late && !leads_out(rootfd, rel, l->l[i].target, l))
			continue;
		if (late)
			unchecked++;
		else if (!bad++)
			first = i;
		/* Gone already (a later entry replaced it, a directory now) is
		 * as good. */
		if (unlinkat(rootfd, rel, 0) < 0 && errno != ENOENT && errno != EISDIR && !kept++) {
			kept_i = i;
			kept_late = late;
			kept_errno = errno;
		}
	}
	close(rootfd);
	if (kept)
		return fail(err, errlen,
			    "entry '%s': a symlink to '%s', which %s, could not be removed: %s "
			    "(%zu such link%s left on the host)",
			    shown(l->l[kept_i].sent, s, sizeof(s)),
			    shown(l->l[kept_i].target, t, sizeof(t)),
			    kept_late ? "was not checked in time" : "leads outside what was copied",
			    strerror(kept_errno), kept, kept > 1 ? "s" : "");
	char also[96] = "";

	if (unchecked)
		snprintf(also, sizeof(also), "; the %zu not checked in time went too", unchecked);
	if (bad) {
		char how[160];

		snprintf(how, sizeof(how), "removed%s%s",
			 bad > 1 ? ", with the others that do" : "", also);
		return link_out_fail(&l->l[first], how, err, errlen);
	}
	if (unchecked)
		return fail(
		    err, errlen,
		    "the time for the copy ran out while its symlinks were checked: the %zu "
		    "not checked were removed",
		    unchecked);
	return 0;
}

/* Before an entry is written, when links wait for the end: a symlink is
 * only noted (0), to be made once the stream is in (links_make, or
 * links_make_all for a TARCOPY_SOLE_WRITER copy). With
 * TARCOPY_LINKS_INSIDE no entry goes where a symlink is already (an
 * earlier copy's: replaced, it could make links kept before lead out, x ->
 * m/../../f once m is "."), but a link to the same target. 1: write it;
 * -1: refused, err says why. */
static int link_entry(struct archive_entry *e, const char *name, unsigned flags,
		      struct links *links, char *err, size_t errlen)
{
	char s[256];
	struct stat was;

	if (archive_entry_filetype(e) == AE_IFLNK)
		return links_add(links, name, e) < 0 ? fail(err, errlen, "out of memory") : 0;
	if ((flags & TARCOPY_LINKS_INSIDE) && lstat(name, &was) == 0 && S_ISLNK(was.st_mode))
		return fail(err, errlen,
			    "entry '%s': a symlink already there (from before this copy); remove "
			    "it first",
			    shown(archive_entry_pathname(e), s, sizeof(s)));
	return 1;
}

/* An entry's path where the copy lands (relative to it). */
#define ENTRY_PATH_MAX (TARCOPY_NAME_MAX + NAME_MAX + 2)

/* partial: the file being written when it failed ("" for none), which
 * archive_write_close would finish as long as its header said. */
static int extract(struct archive *a, struct rctx *rc, struct archive *w, struct archive_entry *e,
		   const char *top, bool top_dir, const char *newtop, unsigned flags,
		   struct links *links, const struct tarcopy_io *io, char partial[ENTRY_PATH_MAX],
		   char *err, size_t errlen)
{
	char name[ENTRY_PATH_MAX], s[256], why[256];
	struct stat was;
	unsigned count = 0;
	size_t names = 0;
	int r = ARCHIVE_OK;

	for (;;) {
		int m;

		if (count++ > 0) {
			r = next_header(a, rc, &e);
			if (r == ARCHIVE_EOF)
				return 0;
			if (r < ARCHIVE_WARN)
				return fail(err, errlen, "%s", la_why(a, rc, why, sizeof(why)));
		}
		m = check_entry(e, count, &names, top, top_dir, newtop, name, sizeof(name), err,
				errlen);
		if (m < 0)
			return -1;
		if (m == 0) {
			archive_read_data_skip(a);
			continue;
		}
		/* A file is as long as its header says, whatever data follows:
		 * libarchive extends one cut short to that size, and a sparse
		 * one's holes take no data. The size is charged before the file
		 * is made. */
		bool reg = archive_entry_filetype(e) == AE_IFREG;
		la_int64_t fsize = archive_entry_size(e);

		/* Each entry costs the room TARCOPY_ENTRY_COST besides its
		 * data (an inode and a block on the host): a stream of empty
		 * entries is bounded too. */
		uint64_t cost = TARCOPY_ENTRY_COST + (reg ? (uint64_t)fsize : 0);

		if (reg && fsize < 0)
			return fail(err, errlen, "%s: a negative size", shown(name, s, sizeof(s)));
		if (io->room && (cost < TARCOPY_ENTRY_COST || cost > *io->room))
			return fail(err, errlen, "%s: more file data than %s allows",
				    shown(name, s, sizeof(s)), io->room_name);
		if (io->room)
			*io->room -= cost;
		if (io->owner) {
			archive_entry_set_uid(e, io->owner->uid);
			archive_entry_set_gid(e, io->owner->gid);
		}
		if (links && (m = link_entry(e, name, flags, links, err, errlen)) <= 0) {
			if (m < 0)
				return -1;
			archive_read_data_skip(a);
			continue;
		}
		archive_entry_copy_pathname(e, name);
		/* A directory there before holds what was there too. */
		bool had_dir = (flags & TARCOPY_LINKS_INSIDE) &&
			       archive_entry_filetype(e) == AE_IFDIR && lstat(name, &was) == 0 &&
			       S_ISDIR(was.st_mode);
		if (flags & TARCOPY_NO_SET_ID)
			archive_entry_set_perm(e, archive_entry_perm(e) &
						      ~(mode_t)(S_ISUID | S_ISGID));
		if (archive_write_header(w, e) < ARCHIVE_WARN)
			return fail(err, errlen, "%s: %s", shown(name, s, sizeof(s)),
				    la_why(w, NULL, why, sizeof(why)));
		if (reg)
			memcpy(partial, name, strlen(name) + 1);
		for (;;) {
			const void *buf;
			size_t size;
			la_int64_t off;

			r = archive_read_data_block(a, &buf, &size, &off);
			if (r == ARCHIVE_EOF)
				break;
			if (r < ARCHIVE_WARN)
				return fail(err, errlen, "%s", la_why(a, rc, why, sizeof(why)));
			/* A file's data stays within its size (charged above);
			 * anything else's is charged as it comes. */
			if (reg && (off < 0 || (uint64_t)off + size > (uint64_t)fsize))
				return fail(err, errlen, "%s: more data than its size",
					    shown(name, s, sizeof(s)));
			if (!reg && io->room && size > *io->room)
				return fail(err, errlen, "%s: more file data than %s allows",
					    shown(name, s, sizeof(s)), io->room_name);
			if (!reg && io->room)
				*io->room -= size;
			if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN)
				return fail(err, errlen, "%s: %s", shown(name, s, sizeof(s)),
					    la_why(w, NULL, why, sizeof(why)));
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN)
			return fail(err, errlen, "%s: %s", shown(name, s, sizeof(s)),
				    la_why(w, NULL, why, sizeof(why)));
		partial[0] = '\0';
		if ((flags & TARCOPY_LINKS_INSIDE) &&
		    made_add(links, name, had_dir, err, errlen) < 0)
			return -1;
	}
}

int tarcopy_top_of(const char *path, char *top)
{
	char clean[PATH_MAX];
	size_t n;

	if (strip_slashes(path, clean) < 0)
		return -1;
	n = strlen(clean);
	while (n >= 2 && !strcmp(clean + n - 2, "/.")) {
		clean[n - 2] = '\0';
		if (strip_slashes(clean[0] ? clean : "/", clean) < 0)
			return -1;
		n = strlen(clean);
	}
	const char *base = last_part(clean);

	if (!one_part(base, strlen(base)) || strlen(base) > NAME_MAX)
		return -1;
	strcpy(top, base);
	return 0;
}

int tarcopy_receive(const char *dest, unsigned flags, const char *want_top,
		    const struct tarcopy_io *io, char *err, size_t errlen)
{
	int opts = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
		   ARCHIVE_EXTRACT_TIME;
	char top[NAME_MAX + 1], newtop[NAME_MAX + 1], base[PATH_MAX], s[256], why[256];
	char partial[ENTRY_PATH_MAX] = "";
	struct rctx rc = {.io = io};
	struct links links = {0};
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	const char *first, *root;
	int cwd = -1, ret = -1, r, bfd;
	bool top_dir, sole = false, made = false, moved = false;
	struct stat st;

	if (flags & TARCOPY_KEEP_ALL)
		opts |= ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER;
	/* A sender of ours sends each directory before what is in it: one
	 * that does not makes no directories by the way (uncharged). */
	if (flags & TARCOPY_LINKS_INSIDE)
		opts |= ARCHIVE_EXTRACT_NO_AUTODIR;
	if (!(a = archive_read_new()) || !(w = archive_write_disk_new())) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	if (archive_read_support_format_tar(a) != ARCHIVE_OK) {
		fail(err, errlen, "libarchive: %s", archive_error_string(a));
		goto out;
	}
	if (archive_read_open(a, &rc, NULL, read_cb, NULL) != ARCHIVE_OK) {
		fail(err, errlen, "%s", la_why(a, &rc, why, sizeof(why)));
		goto out;
	}
	r = next_header(a, &rc, &e);
	if (r == ARCHIVE_EOF) {
		fail(err, errlen, "nothing was sent");
		goto out;
	}
	if (r < ARCHIVE_WARN) {
		fail(err, errlen, "%s", la_why(a, &rc, why, sizeof(why)));
		goto out;
	}
	/* The first entry names the stream's top. */
	first = archive_entry_pathname(e);
	size_t n = first ? strnlen(first, NAME_MAX + 2) : 0;

	while (n > 0 && first[n - 1] == '/')
		n--;
	if (!first || n > NAME_MAX || !one_part(first, n) || first[n + strspn(first + n, "/")]) {
		fail(err, errlen, "the first entry '%s' is not one name",
		     shown(first, s, sizeof(s)));
		goto out;
	}
	snprintf(top, sizeof(top), "%.*s", (int)n, first);
	if (want_top && strcmp(top, want_top)) {
		fail(err, errlen, "the stream is of '%s', not of '%s' as asked",
		     shown(top, s, sizeof(s)), want_top);
		goto out;
	}
	top_dir = archive_entry_filetype(e) == AE_IFDIR;
	if (resolve(dest, flags, io->owner, top, top_dir, base, newtop, &made, err, errlen) < 0)
		goto out;
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0) {
		fail(err, errlen, "%s: %s", base, strerror(errno));
		goto out;
	}
	bfd = open_dir(AT_FDCWD, base, flags);
	r = bfd < 0 ? -1 : fchdir(bfd);
	if (r < 0)
		dir_fail(base, flags, err, errlen);
	if (bfd >= 0)
		close(bfd);
	if (r < 0)
		goto out;
	moved = true;
	/* A new top (or a new directory for DIR/.'s contents), and nobody
	 * else writing: nothing beneath it is older than the stream
	 * (TARCOPY_SOLE_WRITER). */
	sole = (flags & TARCOPY_SOLE_WRITER) &&
	       (made || (newtop[0] && lstat(newtop, &st) < 0 && errno == ENOENT));
	/* DIR/.'s contents: the directory they go into stands for the top,
	 * which is not written (made for them, or merged into). */
	if ((flags & TARCOPY_LINKS_INSIDE) && (flags & TARCOPY_CONTENTS) &&
	    made_add(&links, ".", !made, err, errlen) < 0)
		goto out;
	if (!sole)
		opts |= ARCHIVE_EXTRACT_SECURE_SYMLINKS;
	if (archive_write_disk_set_options(w, opts) != ARCHIVE_OK) {
		fail(err, errlen, "libarchive: %s", archive_error_string(w));
		goto out;
	}
	ret =
	    extract(a, &rc, w, e, top, top_dir, newtop, flags,
		    flags & TARCOPY_LINKS_INSIDE || sole ? &links : NULL, io, partial, err, errlen);
	/* A file cut short (the stream broken, the time or room run out) is
	 * no result: the close would make it as long as its header said,
	 * holes and all, with the sender's mode and time, as if whole. It
	 * goes before the close, which may make its directory read-only. */
	int partial_errno = partial[0] && unlink(partial) < 0 && errno != ENOENT ? errno : 0;
	/* The root: the copied directory, or where a file or a link landed.
	 * The links are made only for a stream that came in whole; with
	 * TARCOPY_LINKS_INSIDE any that leads out then goes (what a failed
	 * copy left stays on the host). */
	root = top_dir && newtop[0] ? newtop : ".";
	if (!(flags & TARCOPY_LINKS_INSIDE)) {
		if (ret == 0 && links.n && links_make_all(&links, flags, err, errlen) < 0)
			ret = -1;
	} else {
		if (ret == 0 && links.n && links_make(&links, root, newtop, flags, err, errlen) < 0)
			ret = -1;
		if (links.n && links_check(&links, root, newtop, io, ret < 0 ? NULL : err,
					   ret < 0 ? 0 : errlen) < 0)
			ret = -1;
	}
	/* Directories get their modes and times last. */
	if (archive_write_close(w) != ARCHIVE_OK && ret == 0)
		ret = fail(err, errlen, "%s", la_why(w, NULL, why, sizeof(why)));
	if (ret < 0 && rc.failed)
		fail(err, errlen, "%s", rc.msg);
	if (partial_errno && errlen) {
		size_t at = strnlen(err, errlen);

		snprintf(err + at, errlen - at, "; %s, cut short, was left: %s",
			 shown(partial, s, sizeof(s)), strerror(partial_errno));
	}
out:
	if (moved && fchdir(cwd) < 0 && ret == 0)
		ret = fail(err, errlen, "cannot return to the working directory: %s",
			   strerror(errno));
	links_free(&links);
	if (cwd >= 0)
		close(cwd);
	archive_write_free(w);
	archive_read_free(a);
	return ret;
}
