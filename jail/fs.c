#include "fs.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/cgroupfs.h"
#include "err.h"
#include "image/build.h"

/* A directory of the jail's: never through a symlink. */
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

void fs_init(struct jail_fs *j)
{
	*j = (struct jail_fs){
	    .top_fd = -1, .root = -1, .pid = -1, .proc = -1, .proc_fd = -1, .host_mnt_fd = -1};
}

const char *fs_root_path(const struct jail_fs *j)
{
	return j->root >= 0 ? j->made[j->root].path : "";
}

static int dir_fd(const struct jail_fs *j, int idx)
{
	return idx < 0 ? j->top_fd : j->made[idx].fd;
}

static const char *dir_path(const struct jail_fs *j, int idx)
{
	return idx < 0 ? j->top_path : j->made[idx].path;
}

/* The host path of `name` in directory entry `parent`, for messages. */
static const char *child_path(const struct jail_fs *j, int parent, const char *name, char *buf,
			      size_t len)
{
	const char *d = dir_path(j, parent);

	snprintf(buf, len, "%s/%s", strcmp(d, "/") ? d : "", name);
	return buf;
}

static int root_fd(const struct jail_fs *j)
{
	return j->made[j->root].fd;
}

/* Whether only root can change which inode the name of `e` in directory
 * `d` stands for: d is root's and nobody else may write it, or d is sticky
 * (like /tmp) and e is root's too. */
static bool only_root_changes(const struct stat *d, const struct stat *e)
{
	if (d->st_uid != 0)
		return false;
	if (!(d->st_mode & (S_IWGRP | S_IWOTH)))
		return true;
	return (d->st_mode & S_ISVTX) && e->st_uid == 0;
}

/* Record `name`, just made in directory entry `parent`. On failure the
 * entry is removed again. Returns its index or -errno (printed). */
static int record(struct jail_fs *j, int parent, const char *name, bool dir, bool tenant,
		  const char *step)
{
	char buf[PATH_MAX], *path = strdup(child_path(j, parent, name, buf, sizeof(buf)));
	struct fs_entry *e;

	if (j->nmade == FS_MAX_MADE || !path || strlen(name) >= sizeof(j->made[0].name)) {
		int r = j->nmade == FS_MAX_MADE
			    ? jail_failf(-E2BIG, step, path ? path : name,
					 "more than %d entries to make", FS_MAX_MADE)
			    : jail_fail(step, name, -ENOMEM);
		unlinkat(dir_fd(j, parent), name, dir ? AT_REMOVEDIR : 0);
		free(path);
		return r;
	}
	e = &j->made[j->nmade];
	*e = (struct fs_entry){
	    .parent = parent, .path = path, .fd = -1, .dir = dir, .tenant = tenant};
	memcpy(e->name, name, strlen(name) + 1);
	return j->nmade++;
}

/* mkdirat `name` in directory entry `parent` (it must be new: `exists`
 * says why, NULL for the plain error), record it and hold it open. Returns
 * its index or -errno (printed). */
static int make_dir(struct jail_fs *j, int parent, const char *name, mode_t mode, bool tenant,
		    const char *step, const char *exists)
{
	int pfd = dir_fd(j, parent), i;
	struct stat ds, es;

	if (mkdirat(pfd, name, mode) < 0) {
		int e = -errno;
		char path[PATH_MAX];
		child_path(j, parent, name, path, sizeof(path));
		return e == -EEXIST && exists ? jail_failf(e, step, path, "%s", exists)
					      : jail_fail(step, path, e);
	}
	if ((i = record(j, parent, name, true, tenant, step)) < 0)
		return i;
	struct fs_entry *e = &j->made[i];
	if ((e->fd = openat(pfd, name, DIR_FLAGS)) < 0 || fstat(pfd, &ds) < 0 ||
	    fstat(e->fd, &es) < 0)
		return jail_fail(step, e->path, -errno);
	/* A directory someone else may write (a sticky one aside) could have
	 * the new name swapped under the jailer. */
	if (!only_root_changes(&ds, &es))
		return jail_failf(
		    -EPERM, step, dir_path(j, parent),
		    "writable by users other than root, who could swap what the jailer "
		    "makes in it");
	jail_test_pause("made %s", e->path);
	return i;
}

/* The next name of *rest (advanced past it) in buf, which holds all of
 * rest; NULL at the end. */
static const char *next_name(const char **rest, char *buf)
{
	const char *p = *rest + strspn(*rest, "/");
	size_t n = strcspn(p, "/");

	if (!n)
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	*rest = p + n;
	return buf;
}

/* The directory `path` (absolute), the jail's <base>/<exec>: the entry index
 * of its descriptor in *idx (-1: it existed and is top_fd). Walked one name
 * at a time from /, with O_NOFOLLOW, each name checked to be one only root
 * can change (only_root_changes); a symlink (the administrator's /var/run,
 * say) is read and its target walked the same way, so the symlink's own
 * directory is checked too. What is missing is made (make_dir checks the
 * same). 0 or -errno (printed). */
static int open_parents(struct jail_fs *j, const char *path, int *idx)
{
	static const char step[] = "create jail";
	char rest[2 * PATH_MAX], name[sizeof(rest)], walked[PATH_MAX] = "";
	const char *p = rest, *c;
	int fd, parent = -1, links = 0, r = 0;

	snprintf(rest, sizeof(rest), "%s", path);
	if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return jail_fail(step, "/", -errno);
	while ((c = next_name(&p, name))) {
		struct stat ds, es;
		size_t wl = strlen(walked);
		if (j->top_fd >= 0) { /* below the first directory made */
			if (!strcmp(c, ".") || !strcmp(c, ".."))
				return jail_failf(-EINVAL, step, path,
						  "'%s' after a directory still to be made", c);
			if ((parent = make_dir(j, parent, c, 0755, false, step, NULL)) < 0)
				return parent;
			continue;
		}
		if (!strcmp(c, "."))
			continue;
		if ((size_t)snprintf(walked + wl, sizeof(walked) - wl, "/%s", c) >=
		    sizeof(walked) - wl) {
			r = jail_fail(step, path, -ENAMETOOLONG);
			goto out;
		}
		int nfd = openat(fd, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			/* The first one missing: from here on all is made. */
			walked[wl] = '\0';
			j->top_fd = fd;
			fd = -1;
			if (!(j->top_path = strdup(wl ? walked : "/")))
				return jail_fail(step, path, -ENOMEM);
			if ((parent = make_dir(j, -1, c, 0755, false, step, NULL)) < 0)
				return parent;
			continue;
		}
		if (nfd < 0 || fstat(fd, &ds) < 0 || fstat(nfd, &es) < 0) {
			r = jail_fail(step, walked, -errno);
			goto next;
		}
		if (!only_root_changes(&ds, &es)) {
			r = jail_failf(
			    -EPERM, step, walked,
			    "in a directory users other than root may write, who could "
			    "swap it for another: pick a --chroot-base-dir only root can "
			    "change");
			goto next;
		}
		if (S_ISLNK(es.st_mode)) {
			char target[PATH_MAX], joined[sizeof(rest)];
			ssize_t n = readlinkat(nfd, "", target, sizeof(target) - 1);
			if (n < 0 || ++links > 40) {
				r = jail_fail(step, walked, n < 0 ? -errno : -ELOOP);
				goto next;
			}
			target[n] = '\0';
			if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", target, p) >=
			    sizeof(joined)) {
				r = jail_fail(step, walked, -ENAMETOOLONG);
				goto next;
			}
			memcpy(rest, joined, sizeof(rest));
			p = rest;
			walked[wl] = '\0';
			close(nfd);
			nfd = -1;
			if (*target == '/') {
				close(fd);
				if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
					return jail_fail(step, "/", -errno);
				*walked = '\0';
			}
			continue;
		}
		if (!S_ISDIR(es.st_mode)) {
			r = jail_fail(step, walked, -ENOTDIR);
			goto next;
		}
		if (!strcmp(c, "..")) {
			walked[wl] = '\0';
			char *slash = strrchr(walked, '/');
			if (slash)
				*slash = '\0';
		}
	next:
		close(fd);
		fd = nfd;
		if (r < 0)
			goto out;
	}
	if (j->top_fd < 0) {
		j->top_fd = fd;
		fd = -1;
		if (!(j->top_path = strdup(*walked ? walked : "/")))
			return jail_fail(step, path, -ENOMEM);
	}
	*idx = parent;
out:
	close_fd(&fd);
	return r;
}

int fs_create(struct jail_fs *j, const char *dir, uid_t uid, gid_t gid)
{
	char parent[PATH_MAX];
	struct statvfs sv;
	int p = -1, id, r;

	fs_init(j);
	j->uid = uid;
	j->gid = gid;
	if ((size_t)snprintf(parent, sizeof(parent), "%s", dir) >= sizeof(parent) - sizeof("/root"))
		return jail_fail("create jail", dir, -ENAMETOOLONG);
	char *slash = strrchr(parent, '/');
	*slash = '\0';
	if ((r = open_parents(j, *parent ? parent : "/", &p)) < 0)
		return r;
	/* <id> root's and 0700 for good: flint never walks through it (its
	 * root is `root`), and the tenant's own processes on the host, which
	 * share its uid, cannot either: the root, theirs from the handover,
	 * holds device nodes made theirs (/dev/kvm, /dev/userfaultfd) that
	 * they could otherwise open, loosen or hard-link to keep, and files
	 * the jailer wrote there for flint (the rewritten config file). */
	if ((id = make_dir(j, p, slash + 1, 0700, false, "create jail",
			   "already exists: a jail is never reused; remove it or pick another "
			   "--id")) < 0)
		return id;
	/* 0700, as Firecracker's jailer makes it: once it is the tenant's (the
	 * handover), no other user on the host can look into the jail. */
	if ((r = make_dir(j, id, "root", 0700, false, "create jail", NULL)) < 0)
		return r;
	j->root = r;
	if (fstatvfs(root_fd(j), &sv) < 0)
		return jail_fail("create jail", fs_root_path(j), -errno);
	if (sv.f_flag & ST_NOEXEC)
		return jail_failf(-EPERM, "create jail", fs_root_path(j),
				  "on a file system mounted noexec: flint could not run from it");
	if (sv.f_flag & ST_NODEV)
		return jail_failf(-EPERM, "create jail", fs_root_path(j),
				  "on a file system mounted nodev: /dev/kvm would not open there");
	return 0;
}

/* The exec file runs in a jail without a dynamic loader or libraries. */
static int check_static(int fd, const char *path)
{
	Elf64_Ehdr eh;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return jail_failf(-ENOEXEC, "stage", path, "not a 64-bit ELF executable");
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) != sizeof(ph))
			return jail_failf(-ENOEXEC, "stage", path, "truncated ELF program headers");
		if (ph.p_type == PT_INTERP)
			return jail_failf(-ENOEXEC, "stage", path,
					  "dynamically linked: the jail holds no shared libraries; "
					  "give a static build (make build/jail/flint)");
	}
	return 0;
}

/* The effective capabilities while as the tenant: only the two that give
 * the ids back (as_tenant), or all the jailer has again. setfsuid takes out
 * only the file-system ones, and the kernel asks CAP_SYS_PTRACE, not the
 * fsuid, before it follows /proc/PID/root, cwd or exe: with it a path of
 * the tenant's would lead into any process's files. */
static int effective_caps(bool as_tenant)
{
	static const cap_value_t keep[] = {CAP_SETUID, CAP_SETGID};
	cap_t c = cap_get_proc();
	int r = c ? 0 : -1;

	if (!r && as_tenant)
		r = cap_clear_flag(c, CAP_EFFECTIVE) ||
		    cap_set_flag(c, CAP_EFFECTIVE, 2, keep, CAP_SET);
	for (cap_value_t v = 0; !r && !as_tenant && v <= CAP_LAST_CAP; v++) {
		cap_flag_value_t has;

		r = cap_get_flag(c, v, CAP_PERMITTED, &has) ||
		    cap_set_flag(c, CAP_EFFECTIVE, 1, &v, has);
	}
	if (!r)
		r = cap_set_proc(c);
	r = r ? -errno : 0;
	cap_free(c);
	return r;
}

/* Open a user's path as them (fs_ids): no magic link on the way. The
 * kernel lets a process into its own /proc entries without asking any
 * capability, so /proc/self/cwd or /proc/self/fd/N would lead past
 * directories uid:gid may not search, to the jailer's own working
 * directory and descriptors. Other symlinks are followed, as them. */
#define LOOP_WHY                                                                                   \
	"a /proc link (such as /proc/self/cwd) or a loop of symlinks on its path: the "            \
	"jailer follows no /proc link for a user"
static int open_as_user(const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)flags, .resolve = RESOLVE_NO_MAGICLINKS};
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	return fd < 0 ? -1 : (int)fd;
}

/* Take (as_tenant) or give back the jail user's file-system identity. With
 * fsuid and fsgid set to uid:gid (and no supplementary groups, as flint
 * will have) every permission check of a path walk is theirs, and no
 * capability but CAP_SETUID and CAP_SETGID is effective; the ids and the
 * capabilities are put back after. All per thread, and the jailer has
 * one. */
static int fs_ids(const struct jail_fs *j, bool as_tenant)
{
	uid_t u = as_tenant ? j->uid : 0;
	gid_t g = as_tenant ? j->gid : 0;
	int r;

	if (!as_tenant && (r = effective_caps(false)) < 0)
		return jail_failf(r, "stage", NULL, "cannot take back the capabilities");
	setfsgid(g);
	setfsuid(u);
	/* setfsuid reports no error: an invalid id returns the current one. */
	if ((uid_t)setfsuid(-1) != u || (gid_t)setfsgid(-1) != g)
		return jail_failf(-EPERM, "stage", NULL, "cannot %s the file-system ids %u:%u",
				  as_tenant ? "take" : "give back", (unsigned)u, (unsigned)g);
	if (as_tenant && (r = effective_caps(true)) < 0)
		return jail_failf(r, "stage", NULL, "cannot lower the capabilities");
	return 0;
}

int fs_open_as(uid_t uid, gid_t gid, const char *path, int *fd, char *err, size_t errlen)
{
	const struct jail_fs as = {.uid = uid, .gid = gid};
	int e = 0, r;

	*fd = -1;
	if (setgroups(0, NULL) < 0) {
		e = -errno;
		snprintf(err, errlen, "clear supplementary groups: %s", strerror(-e));
		return e;
	}
	if ((r = fs_ids(&as, true)) < 0)
		return r;
	if ((*fd = open_as_user(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0)
		e = -errno;
	if ((r = fs_ids(&as, false)) < 0) {
		close_fd(fd);
		return r;
	}
	if (e == -EACCES)
		snprintf(err, errlen, "uid %u gid %u cannot read it", (unsigned)uid, (unsigned)gid);
	else if (e == -ELOOP)
		snprintf(err, errlen, "%s", LOOP_WHY);
	else if (e)
		snprintf(err, errlen, "%s", strerror(-e));
	return e;
}

int fs_read_as(uid_t uid, gid_t gid, const char *path, size_t max, char **text, size_t *len,
	       char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = -1, e = 0, r;

	*text = NULL;
	if ((r = fs_open_as(uid, gid, path, &fd, err, errlen)) < 0)
		return r;
	if (fstat(fd, &st) < 0)
		snprintf(err, errlen, "%s", strerror(-(e = -errno)));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s", strerror(-(e = -EINVAL)));
	else if ((size_t)st.st_size > max)
		snprintf(err, errlen, "larger than %zu bytes", max), e = -EFBIG;
	else if (!(buf = malloc(st.st_size + 1)))
		snprintf(err, errlen, "out of memory"), e = -ENOMEM;
	if ((r = e) < 0)
		goto out;
	/* Its size when opened: more is not read. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(err, errlen, "%s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	*text = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close_fd(&fd);
	return r;
}

/* A readable descriptor of what fd (O_PATH) holds, opened through
 * /proc/self/fd with the caller's credentials (uid:gid's for what a copy
 * reads, root's for the exec file and the jailer's own image): the same
 * inode, found through no name anyone can change. */
static int reopen(int fd, const struct stat *st, const char *src)
{
	char magic[64];
	struct stat rst;
	int rfd;

	snprintf(magic, sizeof(magic), "/proc/self/fd/%d", fd);
	if ((rfd = open(magic, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return jail_fail("stage", src, -errno);
	if (fstat(rfd, &rst) < 0 || rst.st_dev != st->st_dev || rst.st_ino != st->st_ino) {
		close(rfd);
		return jail_failf(-ESTALE, "stage", src, "reopened as another file");
	}
	return rfd;
}

static int copy_file(struct jail_fs *j, int in, const struct plan_file *f, const struct stat *st)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int out = openat(root_fd(j), f->name, flags, 0600), i, r = 0;
	off_t size = st->st_size;
	char path[PATH_MAX];

	if (out < 0)
		return jail_fail("stage", child_path(j, j->root, f->name, path, sizeof(path)),
				 -errno);
	if ((i = record(j, j->root, f->name, false, false, "stage")) < 0) {
		close(out);
		return i;
	}
	/* Its data only, its holes left holes: a sparse file of the tenant's
	 * (truncate -s 16T) must not become terabytes written as root. */
	for (off_t data = 0, hole; data < size; data = hole) {
		if ((data = lseek(in, data, SEEK_DATA)) < 0) {
			if (errno == ENXIO) /* no data past it */
				break;
			r = jail_fail("stage", j->made[i].path, -errno);
			goto out;
		}
		if ((hole = lseek(in, data, SEEK_HOLE)) < 0 || hole > size)
			hole = size;
		if (lseek(out, data, SEEK_SET) < 0) {
			r = jail_fail("stage", j->made[i].path, -errno);
			goto out;
		}
		for (off_t at = data; at < hole;) {
			ssize_t n = sendfile(
			    out, in, &at, hole - at > (1 << 30) ? (1 << 30) : (size_t)(hole - at));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = jail_fail("stage", j->made[i].path, -errno);
				goto out;
			}
			if (n == 0) { /* cut short since, or sysfs's view of it */
				r = jail_failf(-EIO, "stage", f->src,
					       "it ended at byte %lld of the %lld its size says",
					       (long long)at, (long long)size);
				goto out;
			}
		}
	}
	if (ftruncate(out, size) < 0) {
		r = jail_fail("stage", j->made[i].path, -errno);
		goto out;
	}
	/* A copy keeps the original's owner and mode, like a hard link. */
	if (fchown(out, st->st_uid, st->st_gid) < 0 || fchmod(out, st->st_mode & 0777) < 0)
		r = jail_fail("stage", j->made[i].path, -errno);
out:
	close_fd(&out);
	return r;
}

/* Whether a hard link of the file would give the tenant, in a root they
 * own, more than its content to keep: set-user-ID, or set-group-ID and
 * executable (what protected_hardlinks refuses to link for them), or, when
 * they may not write it, executable at all (file capabilities). Such a file
 * is copied without them, so that the host's replacing it (a security
 * fix) leaves no old privileged binary in the jail. */
static bool privileged(const struct stat *st, enum plan_access access)
{
	if ((st->st_mode & S_ISUID) || (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		return true;
	return access != PLAN_READ_WRITE && (st->st_mode & 0111);
}

/* Open f's source once, by its path but as uid:gid, check it on that
 * descriptor, and link or copy it through the descriptor. */
static int stage_file(struct jail_fs *j, const struct plan_file *f)
{
	static const char *const verbs[] = {
	    [PLAN_READ] = "read", [PLAN_READ_WRITE] = "read and write", [PLAN_EXEC] = "execute"};
	static const int want[] = {
	    [PLAN_READ] = R_OK, [PLAN_READ_WRITE] = R_OK | W_OK, [PLAN_EXEC] = X_OK};
	int src = -1, in = -1, r, e = 0, access_e = 0, in_e = 0;
	struct stat st;

	/* The jailer's own image build, in its cache, is opened as root; its
	 * use by uid:gid is checked as for any file. */
	if (f->built &&
	    ((src = open(f->src, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(src, &st) < 0))
		return jail_fail("stage", f->src, -errno);
	if ((r = fs_ids(j, true)) < 0)
		goto out;
	/* The last name may be a symlink: followed as uid:gid, it leads only
	 * where they could go themselves. */
	if (!f->built &&
	    ((src = open_as_user(f->src, O_PATH | O_CLOEXEC)) < 0 || fstat(src, &st) < 0))
		e = -errno;
	else if (S_ISREG(st.st_mode) &&
		 faccessat(src, "", want[f->access], AT_EACCESS | AT_EMPTY_PATH) < 0)
		access_e = -errno;
	/* What a copy reads is opened as uid:gid too, without the jailer's
	 * capabilities: a file whose contents depend on its opener (sysfs's
	 * PCI config space, procfs) gives what they would read themselves.
	 * Not the exec file, which they need only run, nor the jailer's own
	 * image. */
	else if (!f->built && S_ISREG(st.st_mode) && f->access != PLAN_EXEC &&
		 (in = reopen(src, &st, f->src)) < 0)
		in_e = in;
	if ((r = fs_ids(j, false)) < 0)
		goto out;
	if (e == -EACCES)
		r = jail_failf(e, "stage", f->src,
			       "uid %u gid %u cannot reach it (every directory on its path must "
			       "let them search it)",
			       (unsigned)j->uid, (unsigned)j->gid);
	else if (e == -ELOOP)
		r = jail_failf(e, "stage", f->src, "%s", LOOP_WHY);
	else if (e)
		r = jail_fail("stage", f->src, e);
	else if (!S_ISREG(st.st_mode))
		r = jail_failf(-EINVAL, "stage", f->src, "not a regular file");
	else if (access_e == -EACCES)
		r = jail_failf(access_e, "stage", f->src, "uid %u gid %u may not %s it",
			       (unsigned)j->uid, (unsigned)j->gid, verbs[f->access]);
	else if (access_e)
		r = jail_fail("stage", f->src, access_e);
	else if (in_e)
		r = in_e; /* reopen said why */
	if (r < 0)
		goto out;
	jail_test_pause("opened %s", f->src);
	if (f->access == PLAN_EXEC &&
	    ((r = in = reopen(src, &st, f->src)) < 0 || (r = check_static(in, f->src)) < 0))
		goto out;
	/* The exec file is copied, never linked: two tenants' flints then
	 * share none of its pages, a side channel Firecracker's jailer closes
	 * the same way. Other files: a hard link costs nothing and shows the
	 * jail only this one file, unless it is privileged. ENOENT: no
	 * CAP_DAC_READ_SEARCH, or the file was unlinked since it was opened; a
	 * copy from the descriptor works either way. */
	if (f->access == PLAN_EXEC) {
		r = copy_file(j, in, f, &st);
		goto out;
	}
	bool link = !privileged(&st, f->access);
	if (link && linkat(src, "", root_fd(j), f->name, AT_EMPTY_PATH) == 0) {
		r = record(j, j->root, f->name, false, false, "stage");
		goto out;
	}
	if (link && errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOENT) {
		char path[PATH_MAX];
		r = jail_fail("stage", child_path(j, j->root, f->name, path, sizeof(path)), -errno);
		goto out;
	}
	if (in < 0 && (r = in = reopen(src, &st, f->src)) < 0)
		goto out;
	r = copy_file(j, in, f, &st);
out:
	close_fd(&in);
	close_fd(&src);
	return r < 0 ? r : 0;
}

/* The rewritten config file (f->content): a new file at the jail's top
 * level, root's, 0644: flint reads it, nobody in the jail changes it. */
static int write_content(struct jail_fs *j, const struct plan_file *f)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(root_fd(j), f->name, flags, 0644), i, r = 0;
	size_t len = strlen(f->content), done = 0;
	char path[PATH_MAX];

	if (fd < 0)
		return jail_fail("stage", child_path(j, j->root, f->name, path, sizeof(path)),
				 -errno);
	if ((i = record(j, j->root, f->name, false, false, "stage")) < 0) {
		close(fd);
		return i;
	}
	while (done < len) {
		ssize_t n = write(fd, f->content + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = jail_fail("stage", j->made[i].path, n < 0 ? -errno : -EIO);
			break;
		}
		done += n;
	}
	close_fd(&fd);
	jail_test_pause("made %s", j->made[i].path);
	return r;
}

/* flint run --scratch's disk: a new file of size bytes at the
 * jail's top level, made, formatted and its blocks reserved (as flint
 * makes its own, image/build.h) while the jail is root's alone, through the held
 * descriptor; uid:gid's, 0600, at the handover. In the jail, it goes with
 * the jail. */
static int make_scratch(struct jail_fs *j, const char *name, uint64_t size)
{
	const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	const struct image_builder b = {.run = image_run_cmd};
	int fd = openat(root_fd(j), name, flags, 0600), i, r;
	char path[PATH_MAX], dev[64], err[PATH_MAX + 256];

	if (fd < 0)
		return jail_fail("scratch disk", child_path(j, j->root, name, path, sizeof(path)),
				 -errno);
	if ((i = record(j, j->root, name, false, true, "scratch disk")) < 0) {
		close(fd);
		return i;
	}
	j->made[i].fd = fd;
	if (ftruncate(fd, (off_t)size) < 0)
		return jail_fail("scratch disk", j->made[i].path, -errno);
	/* mke2fs, a child, reaches the file through this process's descriptor. */
	snprintf(dev, sizeof(dev), "/proc/%d/fd/%d", (int)getpid(), fd);
	if ((r = image_format_scratch(&b, fd, dev, size, j->made[i].path, err, sizeof(err))) < 0)
		return jail_failf(r, "scratch disk", NULL, "%s%s", err,
				  r == -ENOSPC ? " (a smaller --scratch, or --chroot-base-dir on a "
						 "larger disk)"
					       : "");
	jail_test_pause("made %s", j->made[i].path);
	return 0;
}

/* One device node in parent, root's 0600 until the handover (held by an
 * O_PATH descriptor for its fchownat, never opened as a device). */
static int make_node(struct jail_fs *j, int parent, const char *name, dev_t rdev)
{
	static const char step[] = "device nodes";
	int i;

	if (mknodat(dir_fd(j, parent), name, S_IFCHR | 0600, rdev) < 0) {
		char path[PATH_MAX];
		return jail_fail(step, child_path(j, parent, name, path, sizeof(path)), -errno);
	}
	if ((i = record(j, parent, name, false, true, step)) < 0)
		return i;
	j->made[i].fd = openat(dir_fd(j, parent), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (j->made[i].fd < 0)
		return jail_fail(step, j->made[i].path, -errno);
	jail_test_pause("made %s", j->made[i].path);
	return 0;
}

/* /dev/kvm, /dev/net/tun and /dev/urandom, root's 0600 until the handover;
 * with uffd, /dev/userfaultfd too where the host has one (Linux 6.1+: a
 * restore through the API's Uffd backend, whose userfaultfd flint, without
 * privileges, can only get there; Firecracker's jailer makes it too). Made
 * from the host: the bind mount shows the same inodes, and the nodev check
 * in fs_create covers the jail's mount too (a bind mount keeps its
 * source's flags). */
static int make_devices(struct jail_fs *j, bool uffd)
{
	/* Misc devices 10:232 (kvm) and 10:200 (tun), mem device 1:9 (urandom):
	 * fixed numbers in Linux's devices.txt. userfaultfd's misc minor is
	 * dynamic: the host's node says it. */
	static const struct {
		const char *name;
		bool in_net;
		unsigned major, minor;
	} nodes[] = {{"kvm", false, 10, 232}, {"tun", true, 10, 200}, {"urandom", false, 1, 9}};
	static const char step[] = "device nodes";
	struct stat st;
	int dev, net, r;

	if ((dev = make_dir(j, j->root, "dev", 0755, false, step, NULL)) < 0 ||
	    (net = make_dir(j, dev, "net", 0755, false, step, NULL)) < 0)
		return dev < 0 ? dev : net;
	for (size_t n = 0; n < ARRAY_SIZE(nodes); n++)
		if ((r = make_node(j, nodes[n].in_net ? net : dev, nodes[n].name,
				   makedev(nodes[n].major, nodes[n].minor))) < 0)
			return r;
	if (uffd && stat("/dev/userfaultfd", &st) == 0 && S_ISCHR(st.st_mode) &&
	    (r = make_node(j, dev, "userfaultfd", st.st_rdev)) < 0)
		return r;
	return 0;
}

/* A socket's directory this run already made in `parent` (for another
 * socket: the API's /run and a vsock socket's /run/v), or -1. */
static int socket_dir(const struct jail_fs *j, int parent, const char *name)
{
	for (unsigned i = 0; i < j->nmade; i++)
		if (j->made[i].parent == parent && j->made[i].dir && j->made[i].socket &&
		    !strcmp(j->made[i].name, name))
			return i;
	return -1;
}

/* The directories of a socket flint binds (--vsock uds=, the API socket)
 * or of a file it writes (the log, the metrics), the tenant's at the
 * handover. Each is new, or one made for another socket or output; a name
 * already in the jail otherwise (dev, a staged file) is refused. Returns
 * the index of the last directory (the root's when there is none) or
 * -errno (printed). */
static int make_socket_dirs(struct jail_fs *j, const char *sock_path, const char *step)
{
	char dirs[PATH_MAX], *save = NULL;
	int parent = j->root, d;

	snprintf(dirs, sizeof(dirs), "%s", sock_path);
	*strrchr(dirs, '/') = '\0';
	for (char *c = strtok_r(dirs, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if ((d = socket_dir(j, parent, c)) >= 0) {
			parent = d;
			continue;
		}
		if ((parent = make_dir(j, parent, c, 0755, true, step,
				       "already in the jail: give the socket a path of its own")) <
		    0)
			return parent;
		j->made[parent].socket = true;
	}
	return parent;
}

/* A file flint writes, at its in-jail path: its directories made as for a
 * socket; with o->make, the file itself too, empty, new, held open and the
 * tenant's at the handover (flint's logger opens its file but does not
 * create it). */
static int make_output(struct jail_fs *j, const struct plan_output *o)
{
	char step[32];
	int d, fd, i;

	snprintf(step, sizeof(step), "%s directory", o->what);
	if ((d = make_socket_dirs(j, o->path, step)) < 0 || !o->make)
		return d < 0 ? d : 0;
	snprintf(step, sizeof(step), "%s file", o->what);
	const char *name = strrchr(o->path, '/') + 1;
	fd = openat(dir_fd(j, d), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		char path[PATH_MAX];
		int e = -errno;
		child_path(j, d, name, path, sizeof(path));
		if (e == -EEXIST)
			return jail_failf(e, step, path,
					  "already in the jail: give the %s a path of its own",
					  o->what);
		return jail_fail(step, path, e);
	}
	if ((i = record(j, d, name, false, true, step)) < 0) {
		close(fd);
		return i;
	}
	j->made[i].fd = fd;
	jail_test_pause("made %s", j->made[i].path);
	return 0;
}

static int make_pid_file(struct jail_fs *j, const char *exec_name)
{
	char name[NAME_MAX + 1];
	int fd, i;

	if ((size_t)snprintf(name, sizeof(name), "%s.pid", exec_name) >= sizeof(name))
		return jail_fail("pid file", exec_name, -ENAMETOOLONG);
	fd = openat(root_fd(j), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		char path[PATH_MAX];
		return jail_fail("pid file", child_path(j, j->root, name, path, sizeof(path)),
				 -errno);
	}
	if ((i = record(j, j->root, name, false, false, "pid file")) < 0) {
		close(fd);
		return i;
	}
	j->made[i].fd = fd;
	j->pid = i;
	jail_test_pause("made %s", j->made[i].path);
	return 0;
}

int fs_stage(struct jail_fs *j, const struct plan *p)
{
	int r;

	/* Checked as flint will run: uid:gid and no supplementary groups. The
	 * jailer, root, needs none of its own. */
	if (setgroups(0, NULL) < 0)
		return jail_fail("clear supplementary groups", NULL, -errno);
	for (unsigned i = 0; i < p->nfiles; i++)
		if ((r = p->files[i].content ? write_content(j, &p->files[i])
					     : stage_file(j, &p->files[i])) < 0)
			return r;
	if ((r = make_devices(j, p->api_sock_path[0] != '\0')) < 0)
		return r;
	/* Before the sockets' directories: one in /proc is refused. Root's,
	 * 0555, never the tenant's; a procfs is mounted on it in the jail. */
	if (p->proc && (r = j->proc = make_dir(j, j->root, "proc", 0555, false, "/proc", NULL)) < 0)
		return r;
	if (p->api_sock_path[0] &&
	    (r = make_socket_dirs(j, p->api_sock_path, "API socket directory")) < 0)
		return r;
	if (p->vsock_path[0] && (r = make_socket_dirs(j, p->vsock_path, "vsock directory")) < 0)
		return r;
	for (unsigned i = 0; i < p->noutputs; i++)
		if ((r = make_output(j, &p->outputs[i])) < 0)
			return r;
	if (p->run_tmp && (r = make_dir(j, j->root, "tmp", 0700, true, "flint run /tmp", NULL)) < 0)
		return r;
	if (p->scratch && (r = make_scratch(j, p->scratch_name, p->scratch)) < 0)
		return r;
	if ((r = make_pid_file(j, p->files[0].name)) < 0)
		return r;
	return 0;
}

/* Whether the root of this mount namespace is the initramfs, which
 * pivot_root cannot move. */
static bool root_is_rootfs(void)
{
	char text[8192], mnt[PATH_MAX];

	if (cgroupfs_read("/proc/self/mounts", text, sizeof(text)) < 0 ||
	    sscanf(text, "%*s %4095s", mnt) != 1)
		return false;
	return !strncmp(text, "rootfs ", 7) && !strcmp(mnt, "/");
}

int fs_enter(struct jail_fs *j)
{
	bool rootfs = root_is_rootfs();
	const char *root = fs_root_path(j);
	struct stat want, got;
	int tree = -1, r = 0;

	j->host_mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (j->host_mnt_fd < 0)
		return jail_fail("enter jail", "/proc/self/ns/mnt", -errno);
	/* The jail's root as the working directory: unshare carries it into
	 * the new namespace, so its path is never looked up again. */
	if (fchdir(root_fd(j)) < 0)
		return jail_fail("enter jail", root, -errno);
	if (unshare(CLONE_NEWNS) < 0)
		return jail_fail("unshare mount namespace", NULL, -errno);
	j->entered = true;
	/* Nothing done in here may reach the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return jail_fail("make mounts private", "/", -errno);
	/* pivot_root wants the new root to be a mount point: "." bind-mounted
	 * onto itself, entered through the new mount's descriptor. */
	if ((tree = open_tree(AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)) < 0 ||
	    move_mount(tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0 || fchdir(tree) < 0) {
		r = jail_fail("bind the jail", root, -errno);
		goto out;
	}
	/* pivot_root(".", "."): the old root ends up on top of the new one, and
	 * unmounting "." detaches it; no old_root directory needed. */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0) {
			r = jail_fail("unmount the old root", "/", -errno);
			goto out;
		}
		j->pivoted = true;
	} else if (errno == EINVAL && rootfs) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) {
			r = jail_fail("move the jail over the initramfs root", root, -errno);
			goto out;
		}
	} else {
		r = jail_fail("pivot_root", root, -errno);
		goto out;
	}
	if (chroot(".") < 0 || chdir("/") < 0) {
		r = jail_fail("chroot", root, -errno);
		goto out;
	}
	if (stat("/", &got) < 0 || fstat(root_fd(j), &want) < 0 || got.st_dev != want.st_dev ||
	    got.st_ino != want.st_ino) {
		r = jail_failf(-EXDEV, "enter jail", root,
			       "the new root is not the jail's directory");
		goto out;
	}
	/* The descriptor fs_stage holds is the host namespace's mount, where
	 * nothing may be mounted from here: /proc is opened again in this
	 * one. By its name, which only root can change until the handover. */
	if (j->proc >= 0) {
		j->proc_fd = open("/proc", DIR_FLAGS);
		if (j->proc_fd < 0 || fstat(j->proc_fd, &got) < 0 ||
		    fstat(j->made[j->proc].fd, &want) < 0)
			r = jail_fail("/proc", j->made[j->proc].path, -errno);
		else if (got.st_dev != want.st_dev || got.st_ino != want.st_ino)
			r = jail_failf(-EXDEV, "/proc", j->made[j->proc].path,
				       "not the directory made for it");
	}
out:
	close_fd(&tree);
	return r;
}

/* The jail goes on without /proc, as jails did before it had one: say
 * why (errno, and the kernel's own words when it left some in the fs
 * context's log, "e proc: Unknown parameter 'subset'"). */
static void warn_no_proc(int fs, const char *why)
{
	int e = errno;
	char msg[256] = "";
	ssize_t n = fs >= 0 ? read(fs, msg, sizeof(msg) - 1) : -1;
	const char *text = msg;

	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	if (msg[0] && msg[1] == ' ')
		text += 2;
	fprintf(stderr,
		"flint-jail: warning: /proc: %s: %s%s%s%s; the jail has no /proc, and a reset "
		"of flint's drops every page of guest memory\n",
		why, strerror(e), *text ? " (" : "", text, *text ? ")" : "");
}

int fs_mount_proc(struct jail_fs *j)
{
	const char *refused = NULL;
	int fs = -1, mnt = -1, r = 0;

	if (j->proc_fd < 0)
		return 0;
	/* Each option set on its own, so that a refusal names it; nothing is
	 * attached before every one is taken, so no procfs with less than all
	 * of them is ever mounted. */
	if ((fs = fsopen("proc", FSOPEN_CLOEXEC)) < 0)
		refused = "the kernel has no procfs";
	else if (fsconfig(fs, FSCONFIG_SET_STRING, "subset", "pid", 0) < 0)
		refused = "the kernel refuses subset=pid (Linux 5.8 or later has it)";
	else if (fsconfig(fs, FSCONFIG_SET_STRING, "hidepid", "invisible", 0) < 0)
		refused = "the kernel refuses hidepid=invisible (Linux 5.8 or later has it)";
	else if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		refused = "the kernel refuses to make a procfs";
	else if ((mnt = fsmount(fs, FSMOUNT_CLOEXEC,
				MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)) < 0)
		refused = "the kernel refuses to mount a procfs here";
	if (refused)
		warn_no_proc(fs, refused);
	else if (move_mount(mnt, "", j->proc_fd, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		r = jail_fail("mount /proc", j->made[j->proc].path, -errno);
	close_fd(&mnt);
	close_fd(&fs);
	return r;
}

int fs_handover(struct jail_fs *j)
{
	/* Innermost first, the root last: until it is theirs, the tenant can
	 * rename nothing in the jail. */
	for (unsigned i = j->nmade; i-- > 0;) {
		struct fs_entry *e = &j->made[i];
		if (e->tenant && fchownat(e->fd, "", j->uid, j->gid, AT_EMPTY_PATH) < 0)
			return jail_fail("hand the jail over", e->path, -errno);
	}
	if (fchown(root_fd(j), j->uid, j->gid) < 0)
		return jail_fail("hand the jail over", fs_root_path(j), -errno);
	return 0;
}

int fs_write_pid(struct jail_fs *j, pid_t pid)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%d\n", (int)pid);

	/* The descriptor made before the handover: a name the tenant has since
	 * changed in the root cannot redirect the write. */
	if (j->pid < 0 || pwrite(j->made[j->pid].fd, text, n, 0) != n)
		return jail_fail("write the pid file", j->pid < 0 ? NULL : j->made[j->pid].path,
				 j->pid < 0 ? -EBADF
				 : errno    ? -errno
					    : -EIO);
	return 0;
}

static void forget(struct jail_fs *j, bool remove)
{
	while (j->nmade > 0) {
		struct fs_entry *e = &j->made[--j->nmade];
		close_fd(&e->fd);
		/* By the held parent and the name: whatever the tenant did with
		 * names after the handover, nothing outside the jail is reached. */
		if (remove &&
		    unlinkat(dir_fd(j, e->parent), e->name, e->dir ? AT_REMOVEDIR : 0) < 0)
			jail_fail("cleanup", e->path, -errno);
		free(e->path);
		e->path = NULL;
	}
	j->root = j->pid = j->proc = -1;
	close_fd(&j->proc_fd);
	close_fd(&j->top_fd);
	free(j->top_path);
	j->top_path = NULL;
	close_fd(&j->host_mnt_fd);
}

void fs_undo(struct jail_fs *j)
{
	if (j->nmade > 0)
		jail_test_pause("undo");
	if (j->entered) {
		if (setns(j->host_mnt_fd, CLONE_NEWNS) < 0)
			jail_fail("cleanup: return to the host's mount namespace", NULL, -errno);
		j->entered = false;
	}
	forget(j, true);
}

void fs_keep(struct jail_fs *j)
{
	forget(j, false);
}
