#include "fs.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cgroupfs.h"
#include "err.h"

static int record(struct jail_fs *j, const char *path, bool dir)
{
	if (j->nmade == FS_MAX_MADE)
		return jail_failf(-E2BIG, "create jail", path, "more than %d paths to create",
				  FS_MAX_MADE);
	/* Paths made from inside the jail are kept as the host sees them. */
	if (j->entered ? asprintf(&j->made[j->nmade], "%s%s", j->root, path) < 0
		       : !(j->made[j->nmade] = strdup(path)))
		return jail_fail("create jail", path, -ENOMEM);
	j->made_dir[j->nmade++] = dir;
	return 0;
}

/* mkdir that records what it made; an existing directory is fine unless
 * must_be_new. Returns 1 when it made the directory, 0 when it existed. */
static int make_dir(struct jail_fs *j, const char *path, mode_t mode, bool must_be_new,
		    const char *step)
{
	struct stat st;
	int r;

	if (mkdir(path, mode) == 0) {
		if ((r = record(j, path, true)) < 0) {
			rmdir(path);
			return r;
		}
		return 1;
	}
	if (errno != EEXIST)
		return jail_fail(step, path, -errno);
	if (must_be_new)
		return jail_failf(-EEXIST, step, path,
				  "already exists: a jail is never reused; remove it or pick "
				  "another --id");
	if (stat(path, &st) < 0)
		return jail_fail(step, path, -errno);
	if (!S_ISDIR(st.st_mode))
		return jail_fail(step, path, -ENOTDIR);
	return 0;
}

/* Make every missing directory of path, below `from` (a prefix of path
 * that exists or is made first). Directories made get owner uid:gid when
 * chown_made. */
static int make_dirs(struct jail_fs *j, const char *path, size_t from, bool chown_made,
		     const char *step)
{
	char buf[PATH_MAX];
	int r;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return jail_fail(step, path, -ENAMETOOLONG);
	for (char *p = buf + from + 1;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if ((r = make_dir(j, buf, 0755, false, step)) < 0)
			return r;
		if (r == 1 && chown_made && chown(buf, j->uid, j->gid) < 0)
			return jail_fail(step, buf, -errno);
		if (!slash)
			break;
		*slash = '/';
		p = slash + 1;
	}
	return 0;
}

int fs_create(struct jail_fs *j, const char *dir, uid_t uid, gid_t gid)
{
	char parent[PATH_MAX];
	struct statvfs sv;
	int r;

	*j = (struct jail_fs){.uid = uid, .gid = gid, .host_mnt_fd = -1};
	if ((size_t)snprintf(j->root, sizeof(j->root), "%s/root", dir) >= sizeof(j->root))
		return jail_fail("create jail", dir, -ENAMETOOLONG);
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = '\0';
	if ((*parent && (r = make_dirs(j, parent, 0, false, "create jail")) < 0) ||
	    (r = make_dir(j, dir, 0755, true, "create jail")) < 0 ||
	    (r = make_dir(j, j->root, 0755, true, "create jail")) < 0)
		return r;
	if (chown(j->root, uid, gid) < 0)
		return jail_fail("create jail", j->root, -errno);
	if (statvfs(j->root, &sv) < 0)
		return jail_fail("create jail", j->root, -errno);
	if (sv.f_flag & ST_NOEXEC)
		return jail_failf(-EPERM, "create jail", j->root,
				  "on a file system mounted noexec: flint could not run from it");
	if (sv.f_flag & ST_NODEV)
		return jail_failf(-EPERM, "create jail", j->root,
				  "on a file system mounted nodev: /dev/kvm would not open there");
	return 0;
}

/* Whether uid:gid (no supplementary groups) has the `want` rwx bits. */
static bool allowed(const struct stat *st, uid_t uid, gid_t gid, unsigned want)
{
	unsigned bits = st->st_uid == uid   ? (st->st_mode >> 6) & 7
			: st->st_gid == gid ? (st->st_mode >> 3) & 7
					    : st->st_mode & 7;
	return (bits & want) == want;
}

/* The exec file runs in a jail without a dynamic loader or libraries. */
static int check_static(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf64_Ehdr eh;
	int r = 0;

	if (fd < 0)
		return jail_fail("stage", path, -errno);
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) {
		r = jail_failf(-ENOEXEC, "stage", path, "not a 64-bit ELF executable");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) != sizeof(ph)) {
			r = jail_failf(-ENOEXEC, "stage", path, "truncated ELF program headers");
			goto out;
		}
		if (ph.p_type == PT_INTERP) {
			r = jail_failf(-ENOEXEC, "stage", path,
				       "dynamically linked: the jail holds no shared libraries; "
				       "give a static build (make build/jail/flint)");
			goto out;
		}
	}
out:
	close_fd(&fd);
	return r;
}

static int copy_file(struct jail_fs *j, const char *src, const char *dst, const struct stat *st)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	off_t left = st->st_size;

	if (in < 0)
		return jail_fail("stage", src, -errno);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		r = jail_fail("stage", dst, -errno);
		goto out;
	}
	if ((r = record(j, dst, false)) < 0)
		goto out;
	while (left > 0) {
		ssize_t n = sendfile(out, in, NULL, left > (1 << 30) ? (1 << 30) : left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = jail_fail("stage", dst, n < 0 ? -errno : -EIO);
			goto out;
		}
		left -= n;
	}
	/* A copy keeps the original's owner and mode, like a hard link. */
	if (fchown(out, st->st_uid, st->st_gid) < 0 || fchmod(out, st->st_mode & 0777) < 0)
		r = jail_fail("stage", dst, -errno);
out:
	close_fd(&out);
	close_fd(&in);
	return r;
}

static int stage_file(struct jail_fs *j, const struct plan_file *f)
{
	static const char *const verbs[] = {
	    [PLAN_READ] = "read", [PLAN_READ_WRITE] = "read and write", [PLAN_EXEC] = "execute"};
	static const unsigned want[] = {[PLAN_READ] = 4, [PLAN_READ_WRITE] = 6, [PLAN_EXEC] = 1};
	char dst[PATH_MAX];
	struct stat st;
	int r;

	if (stat(f->src, &st) < 0)
		return jail_fail("stage", f->src, -errno);
	if (!S_ISREG(st.st_mode))
		return jail_failf(-EINVAL, "stage", f->src, "not a regular file");
	if (!allowed(&st, j->uid, j->gid, want[f->access]))
		return jail_failf(-EACCES, "stage", f->src, "uid %u gid %u may not %s it",
				  (unsigned)j->uid, (unsigned)j->gid, verbs[f->access]);
	if (f->access == PLAN_EXEC && (r = check_static(f->src)) < 0)
		return r;
	if ((size_t)snprintf(dst, sizeof(dst), "%s/%s", j->root, f->name) >= sizeof(dst))
		return jail_fail("stage", dst, -ENAMETOOLONG);
	/* A hard link costs nothing and shows the jail only this one file. */
	if (linkat(AT_FDCWD, f->src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
		return record(j, dst, false);
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return jail_fail("stage", dst, -errno);
	return copy_file(j, f->src, dst, &st);
}

int fs_stage(struct jail_fs *j, const struct plan *p)
{
	char path[PATH_MAX];
	int r;

	for (unsigned i = 0; i < p->nfiles; i++)
		if ((r = stage_file(j, &p->files[i])) < 0)
			return r;
	if (p->vsock_path[0]) {
		/* The socket's directory, below the jail's root. */
		if ((size_t)snprintf(path, sizeof(path), "%s%s", j->root, p->vsock_path) >=
		    sizeof(path))
			return jail_fail("vsock directory", p->vsock_path, -ENAMETOOLONG);
		*strrchr(path, '/') = '\0';
		if (strlen(path) > strlen(j->root) &&
		    (r = make_dirs(j, path, strlen(j->root), true, "vsock directory")) < 0)
			return r;
	}
	if (p->run_tmp) {
		if ((size_t)snprintf(path, sizeof(path), "%s/tmp", j->root) >= sizeof(path))
			return jail_fail("flint run /tmp", j->root, -ENAMETOOLONG);
		if ((r = make_dir(j, path, 0700, true, "flint run /tmp")) < 0)
			return r;
		if (chown(path, j->uid, j->gid) < 0)
			return jail_fail("flint run /tmp", path, -errno);
	}
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

	j->host_mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (j->host_mnt_fd < 0)
		return jail_fail("enter jail", "/proc/self/ns/mnt", -errno);
	if (unshare(CLONE_NEWNS) < 0)
		return jail_fail("unshare mount namespace", NULL, -errno);
	j->entered = true;
	/* Nothing done in here may reach the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return jail_fail("make mounts private", "/", -errno);
	/* pivot_root wants the new root to be a mount point. */
	if (mount(j->root, j->root, NULL, MS_BIND, NULL) < 0)
		return jail_fail("bind the jail", j->root, -errno);
	if (chdir(j->root) < 0)
		return jail_fail("bind the jail", j->root, -errno);
	/* pivot_root(".", "."): the old root ends up on top of the new one, and
	 * unmounting "." detaches it; no old_root directory needed. */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			return jail_fail("unmount the old root", "/", -errno);
		j->pivoted = true;
	} else if (errno == EINVAL && rootfs) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			return jail_fail("move the jail over the initramfs root", j->root, -errno);
	} else {
		return jail_fail("pivot_root", j->root, -errno);
	}
	if (chroot(".") < 0 || chdir("/") < 0)
		return jail_fail("chroot", j->root, -errno);
	return 0;
}

int fs_make_devices(struct jail_fs *j)
{
	/* Misc devices 10:232 (kvm) and 10:200 (tun), mem device 1:9 (urandom):
	 * fixed numbers in Linux's devices.txt. */
	static const struct {
		const char *path;
		unsigned major, minor;
	} nodes[] = {{"/dev/kvm", 10, 232}, {"/dev/net/tun", 10, 200}, {"/dev/urandom", 1, 9}};
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", nodes[i].path);
		*strrchr(dir, '/') = '\0';
		if ((r = make_dirs(j, dir, 0, false, "device nodes")) < 0)
			return r;
		if (mknod(nodes[i].path, S_IFCHR | 0600, makedev(nodes[i].major, nodes[i].minor)) <
		    0)
			return jail_fail("device nodes", nodes[i].path, -errno);
		if ((r = record(j, nodes[i].path, false)) < 0)
			return r;
		if (chown(nodes[i].path, j->uid, j->gid) < 0)
			return jail_fail("device nodes", nodes[i].path, -errno);
	}
	return 0;
}

void fs_undo(struct jail_fs *j)
{
	if (j->entered) {
		if (setns(j->host_mnt_fd, CLONE_NEWNS) < 0)
			jail_fail("cleanup: return to the host's mount namespace", NULL, -errno);
		j->entered = false;
	}
	while (j->nmade > 0) {
		unsigned i = --j->nmade;
		char *path = j->made[i];
		if ((j->made_dir[i] ? rmdir(path) : unlink(path)) < 0)
			jail_fail("cleanup", path, -errno);
		free(path);
		j->made[i] = NULL;
	}
	close_fd(&j->host_mnt_fd);
}

void fs_keep(struct jail_fs *j)
{
	while (j->nmade > 0) {
		free(j->made[--j->nmade]);
		j->made[j->nmade] = NULL;
	}
	close_fd(&j->host_mnt_fd);
}
