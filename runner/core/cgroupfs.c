#include "core/cgroupfs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /proc/self/mountinfo grows with the mounts; 256 KiB holds ~2000. */
#define TEXT_MAX (256 * 1024)

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/* Whether the comma-separated list holds word. */
static bool has_word(const char *list, size_t len, const char *word)
{
	size_t wl = strlen(word);
	const char *end = list + len;

	while (list < end) {
		const char *comma = memchr(list, ',', end - list);
		size_t n = (comma ? comma : end) - list;
		if (n == wl && !memcmp(list, word, wl))
			return true;
		list += n + 1;
	}
	return false;
}

static int copy_out(char *dst, size_t len, const char *src, size_t n)
{
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	unescape(dst);
	return 0;
}

int cgroupfs_find_mount(const char *mountinfo, const char *controller, char *mnt, size_t mntlen,
			char *root, size_t rootlen)
{
	for (const char *line = mountinfo; line && *line;) {
		const char *eol = strchr(line, '\n');
		const char *end = eol ? eol : line + strlen(line);
		const char *f[5] = {0}, *p = line;
		size_t flen[5] = {0};

		/* Fields: id parent dev root mountpoint ... " - " fstype source superopts */
		for (int i = 0; i < 5 && p < end; i++) {
			const char *sp = memchr(p, ' ', end - p);
			f[i] = p;
			flen[i] = (sp ? sp : end) - p;
			p = sp ? sp + 1 : end;
		}
		const char *dash = NULL;
		for (const char *q = p; q + 2 < end; q++)
			if (q[0] == '-' && q[1] == ' ' && q[-1] == ' ') {
				dash = q + 2;
				break;
			}
		line = eol ? eol + 1 : NULL;
		if (!f[4] || !dash)
			continue;
		const char *type = dash, *sp = memchr(type, ' ', end - type);
		if (!sp)
			continue;
		size_t tlen = sp - type;
		const char *opts = memchr(sp + 1, ' ', end - sp - 1);
		opts = opts ? opts + 1 : end;
		bool match = controller ? tlen == 6 && !memcmp(type, "cgroup", 6) &&
					      has_word(opts, end - opts, controller)
					: tlen == 7 && !memcmp(type, "cgroup2", 7);
		if (!match)
			continue;
		if (copy_out(mnt, mntlen, f[4], flen[4]) < 0 ||
		    copy_out(root, rootlen, f[3], flen[3]) < 0)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}

int cgroupfs_own_path(const char *proc_cgroup, const char *controller, char *path, size_t len)
{
	for (const char *line = proc_cgroup; line && *line;) {
		const char *start = line, *eol = strchr(line, '\n');
		const char *end = eol ? eol : line + strlen(line);
		const char *c1 = memchr(line, ':', end - line);
		const char *c2 = c1 ? memchr(c1 + 1, ':', end - c1 - 1) : NULL;

		line = eol ? eol + 1 : NULL;
		if (!c2)
			continue;
		/* v2: hierarchy 0 and no controllers, "0::/path". */
		bool v2 = c1 == start + 1 && *start == '0' && c2 == c1 + 1;
		bool match = controller ? has_word(c1 + 1, c2 - c1 - 1, controller) : v2;
		if (!match)
			continue;
		size_t n = end - c2 - 1;
		if (n >= len)
			return -ENAMETOOLONG;
		memcpy(path, c2 + 1, n);
		path[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

int cgroupfs_dir(const char *mnt, const char *root, const char *path, char *out, size_t len)
{
	size_t rl = strlen(root);

	if (strcmp(root, "/") != 0) {
		if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != '\0'))
			return -ENOENT;
		path += rl;
	}
	if (strcmp(path, "/") == 0)
		path = "";
	if ((size_t)snprintf(out, len, "%s%s", mnt, path) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int cgroupfs_parse_limit(const char *text, uint64_t *bytes)
{
	char *end;

	if (!strncmp(text, "max", 3) && (text[3] == '\0' || text[3] == '\n')) {
		*bytes = CGROUPFS_NO_LIMIT;
		return 0;
	}
	if (!isdigit((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || (*end != '\0' && *end != '\n'))
		return -EINVAL;
	*bytes = v;
	return 0;
}

int cgroupfs_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	int r = 0;

	if (fd < 0)
		return -errno;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	close_fd(&fd);
	return r;
}

/* Walks from dir up to mnt, keeping the smallest limit found in `file`. */
static void smallest_limit(char *dir, const char *mnt, const char *file, struct cgroupfs_limit *lim)
{
	size_t ml = strlen(mnt);

	for (;;) {
		char path[sizeof(lim->file)], text[64];
		uint64_t v;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) < sizeof(path) &&
		    cgroupfs_read(path, text, sizeof(text)) == 0 &&
		    cgroupfs_parse_limit(text, &v) == 0 && v < lim->bytes) {
			lim->bytes = v;
			snprintf(lim->file, sizeof(lim->file), "%s", path);
		}
		char *slash = strrchr(dir, '/');
		if (strlen(dir) <= ml || !slash || (size_t)(slash - dir) < ml)
			break;
		*slash = '\0';
	}
}

int cgroupfs_memory_limit(struct cgroupfs_limit *lim)
{
	char *info = malloc(TEXT_MAX), cg[8192], path[4096], mnt[4096], root[4096], dir[4096];
	const char *ctl = "memory", *file = "memory.limit_in_bytes";
	int r;

	*lim = (struct cgroupfs_limit){.bytes = CGROUPFS_NO_LIMIT};
	if (!info)
		return -ENOMEM;
	if ((r = cgroupfs_read("/proc/self/cgroup", cg, sizeof(cg))) < 0 ||
	    (r = cgroupfs_read("/proc/self/mountinfo", info, TEXT_MAX)) < 0)
		goto out;
	/* The memory controller sits on a v1 hierarchy or on the v2 one. */
	if (cgroupfs_own_path(cg, ctl, path, sizeof(path)) < 0 ||
	    cgroupfs_find_mount(info, ctl, mnt, sizeof(mnt), root, sizeof(root)) < 0) {
		ctl = NULL;
		file = "memory.max";
		if ((r = cgroupfs_own_path(cg, NULL, path, sizeof(path))) < 0 ||
		    (r = cgroupfs_find_mount(info, NULL, mnt, sizeof(mnt), root, sizeof(root))) < 0)
			goto out;
	}
	if ((r = cgroupfs_dir(mnt, root, path, dir, sizeof(dir))) < 0)
		goto out;
	if (access(dir, F_OK) < 0) {
		r = -errno;
		goto out;
	}
	smallest_limit(dir, mnt, file, lim);
out:
	free(info);
	return r;
}

int cgroupfs_check_memory(uint64_t guest_mem, char *err, size_t errlen)
{
	struct cgroupfs_limit lim;

	if (cgroupfs_memory_limit(&lim) < 0 || lim.bytes == CGROUPFS_NO_LIMIT ||
	    guest_mem + CGROUPFS_MEM_MARGIN <= lim.bytes)
		return 0;
	snprintf(err, errlen,
		 "guest memory %llu MiB does not fit the cgroup memory limit %llu MiB (%s): flint "
		 "needs the guest's memory plus %llu MiB",
		 (unsigned long long)(guest_mem >> 20), (unsigned long long)(lim.bytes >> 20),
		 lim.file, (unsigned long long)(CGROUPFS_MEM_MARGIN >> 20));
	return -ENOMEM;
}
