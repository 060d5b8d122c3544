/* Images flint-jail builds for flint run's --image and --rootfs; see
 * jimage.h. */
#include "jimage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "image/build.h"
#include "image/image.h"
#include "privs.h"

/* msg (from flint's image code, which named the file `as`) into err, with
 * `as` named src instead: the user gave src, not the jailer's name for
 * it. */
static int say(char *err, size_t errlen, int r, const char *msg, const char *as, const char *src)
{
	const char *at = strstr(msg, as);

	if (!at)
		return err_set(err, errlen, r, "%s: %s", src, msg);
	return err_set(err, errlen, r, "%.*s%s%s", (int)(at - msg), msg, src, at + strlen(as));
}

/* The copy of src over the limit of max bytes: -EFBIG with err. */
static int too_big(const char *src, uint64_t max, char *err, size_t errlen)
{
	return err_set(err, errlen, -EFBIG, "%s: over the limit of %" PRIu64 " bytes for its copy",
		       src, max);
}

/* The tar archive on in, copied into out: at most max bytes. */
static int copy_file(int in, int out, uint64_t max, const char *src, char *err, size_t errlen)
{
	uint64_t done = 0;

	for (;;) {
		/* One byte past max says there is more. */
		ssize_t n = sendfile(out, in, NULL,
				     (size_t)(max - done + 1 < 1 << 30 ? max - done + 1 : 1 << 30));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(err, errlen, -errno, "%s: copying it: %s", src,
				       strerror(errno));
		if (n == 0)
			return 0;
		if ((done += (uint64_t)n) > max)
			return too_big(src, max, err, errlen);
	}
}

/* The tree at dir (a descriptor opened as uid:gid) as a tar stream into
 * out, read by tar running as uid:gid with every privilege dropped, in
 * dir: names sorted and owners as numbers, so that one tree gives one
 * stream (times are in it: a file touched gives another key). */
static int tar_tree(uid_t uid, gid_t gid, int dir, int out, uint64_t max, const char *src,
		    char *err, size_t errlen)
{
	static char *const argv[] = {
	    "tar", "-c", "--numeric-owner", "--sort=name", "--format=gnu", "-f", "-", ".", NULL};
	static char buf[1 << 16];
	int p[2], st, r = 0;
	uint64_t done = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, errlen, -errno, "%s: pipe: %s", src, strerror(errno));
	if ((pid = fork()) < 0) {
		r = err_set(err, errlen, -errno, "%s: fork: %s", src, strerror(errno));
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		/* Nothing of the jailer's but the stream: not the descriptors
		 * kept for flint either, nor its terminal (as the tenant, tar
		 * could be made to push input into it with TIOCSTI). */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (setsid() < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(p[1], STDOUT_FILENO) < 0 || fchdir(dir) < 0 ||
		    close_range(3, ~0U, 0) < 0 || privs_drop(uid, gid) < 0 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				r = err_set(err, errlen, -errno, "%s: reading tar's stream: %s",
					    src, strerror(errno));
			break;
		}
		if ((done += (uint64_t)n) > max) {
			r = too_big(src, max, err, errlen);
			break;
		}
		if ((r = write_full(out, buf, (size_t)n)) < 0) {
			r = err_set(err, errlen, r, "%s: its copy: %s", src, strerror(-r));
			break;
		}
	}
	close(p[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return r < 0 ? r
				     : err_set(err, errlen, -errno, "%s: waitpid: %s", src,
					       strerror(errno));
	if (r < 0)
		return r;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return err_set(err, errlen, -ENOENT, "%s: cannot run tar: not installed", src);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return err_set(
		    err, errlen, -EIO,
		    "%s: tar, reading the directory as uid %u gid %u, failed with status "
		    "%d: they must be able to read every file in it",
		    src, (unsigned)uid, (unsigned)gid,
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

int jimage_resolve(uid_t uid, gid_t gid, const char *cache, const struct jimage_limits *lim,
		   const char *src, bool any, char *out, size_t outlen, int *hold, char *err,
		   size_t errlen)
{
	char magic[32], why[2 * PATH_MAX], work[PATH_MAX], copy[PATH_MAX + 16];
	/* Built as root, bounded: see jimage.h. */
	struct image_builder b = {.cache_dir = cache,
				  .run = image_run_cmd,
				  .max_bytes = lim->bytes,
				  .max_entries = lim->entries,
				  .cache_max = lim->cache};
	enum image_kind k;
	int fd = -1, cfd = -1, lock = -1, r;

	out[0] = '\0';
	*hold = -1;
	work[0] = copy[0] = '\0';
	if ((r = fs_open_as(uid, gid, src, &fd, why, sizeof(why))) < 0)
		return err_set(err, errlen, r, "%s: %s", src, why);
	/* Whatever is read from here on is read through this descriptor,
	 * which must be a file or a directory: /proc/self/fd/N of a FIFO
	 * would block the jailer in image_detect's open. */
	struct stat held;
	if (fstat(fd, &held) < 0 || !(S_ISREG(held.st_mode) || S_ISDIR(held.st_mode))) {
		r = err_set(err, errlen, -EINVAL, "%s: not a file or a directory", src);
		goto out;
	}
	snprintf(magic, sizeof(magic), "/proc/self/fd/%d", fd);
	if ((r = image_detect(magic, &k, why, sizeof(why))) < 0) {
		struct stat st;
		if (any && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			r = 0;
		else
			r = say(err, errlen, r, why, magic, src);
		goto out;
	}
	if (k == IMAGE_EXT4)
		goto out;
	if (!*cache) {
		r = err_set(
		    err, errlen, -ENOENT,
		    "%s: a %s is made into an ext4 image in flint-jail's cache, and "
		    "flint-jail has none: set FLINT_CACHE (or HOME) for it, or give an ext4 "
		    "image",
		    src, image_kind_name(k));
		goto out;
	}
	/* Locked while it is used: a jailer killed now leaves a directory the
	 * next build's sweep removes (build.h). */
	if ((r = image_work_create(cache, ".jail-", work, sizeof(work), &lock, err, errlen)) < 0)
		goto out;
	snprintf(copy, sizeof(copy), "%s/source", work);
	if ((cfd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		r = err_set(err, errlen, -errno, "%s: %s", copy, strerror(errno));
		goto out;
	}
	fprintf(stderr,
		"flint-jail: image: %s: a %s, read as uid %u gid %u; its ext4 image is kept in "
		"%s/images\n",
		src, image_kind_name(k), (unsigned)uid, (unsigned)gid, cache);
	r = k == IMAGE_DIR ? tar_tree(uid, gid, fd, cfd, lim->bytes, src, err, errlen)
			   : copy_file(fd, cfd, lim->bytes, src, err, errlen);
	close_fd(&cfd);
	if (r < 0)
		goto out;
	/* Built from the copy, root's alone: the image under a key is the
	 * image of what the key was computed from. */
	if ((r = image_prepare(&b, copy, out, outlen, hold, NULL, why, sizeof(why))) < 0)
		r = say(err, errlen, r, why, copy, src);
	else if (!strcmp(out, copy))
		r = err_set(err, errlen, -EAGAIN, "%s: changed while it was read", src);
out:
	if (r == -EFBIG && strlen(err) + 1 < errlen)
		snprintf(err + strlen(err), errlen - strlen(err),
			 " (flint-jail's --image-limit: bytes=%" PRIu64 ", entries=%" PRIu64 ")",
			 lim->bytes, lim->entries);
	if (r < 0) {
		out[0] = '\0';
		close_fd(hold);
	}
	close_fd(&cfd);
	close_fd(&fd);
	image_work_remove(work, &lock);
	return r;
}
