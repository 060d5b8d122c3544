/* fcapi: flint bench's Firecracker API client. See fcapi.h. */
#include "bench/fcapi.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static uint64_t now_us(void)
{
	return now_ns() / 1000;
}

int fcapi_connect(const char *path, uint64_t deadline_us, int *fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	*fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (s < 0)
			return -errno;
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			*fd = s;
			return 0;
		}
		int e = errno;
		close(s);
		if (e != ENOENT && e != ECONNREFUSED)
			return -e;
		if (now_us() >= deadline_us)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

/* Wait for fd to be ready for ev until the deadline. */
static int wait_fd(int fd, short ev, uint64_t deadline_us)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = ev};
		uint64_t now = now_us();

		if (now >= deadline_us)
			return -ETIMEDOUT;
		int n = poll(&p, 1, (int)((deadline_us - now + 999) / 1000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* "Content-Length: N" among the headers [h, end), -1 if none. */
static long content_length(const char *h, const char *end)
{
	static const char key[] = "\r\ncontent-length:";

	for (const char *p = h; p + sizeof(key) - 1 < end; p++)
		if (!strncasecmp(p, key, sizeof(key) - 1)) {
			char *e;
			long v = strtol(p + sizeof(key) - 1, &e, 10);
			return e == p + sizeof(key) - 1 || v < 0 ? -2 : v;
		}
	return -1;
}

int fcapi_request(int fd, const char *method, const char *path, const char *json,
		  uint64_t deadline_us, int *status, char *body, size_t len)
{
	char req[FCAPI_ANSWER_MAX], ans[FCAPI_ANSWER_MAX + 1];
	size_t blen = json ? strlen(json) : 0, got = 0, off = 0;
	int n, r;

	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		     method, path, blen);
	if (n < 0 || (size_t)n >= sizeof(req))
		return -E2BIG;
	/* The headers, then the body, each written whole. */
	for (int part = 0; part < 2; part++) {
		const char *p = part ? json : req;
		size_t left = part ? blen : (size_t)n;

		while (left) {
			if ((r = wait_fd(fd, POLLOUT, deadline_us)) < 0)
				return r;
			ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
			if (w < 0 && errno != EINTR && errno != EAGAIN)
				return -errno;
			if (w > 0)
				p += w, left -= (size_t)w;
		}
	}
	/* The answer: a status line and headers, then Content-Length bytes
	 * (none without it: Firecracker's 204s have no body). */
	const char *hend = NULL;
	long clen = 0;
	for (;;) {
		if (hend && got - off >= (size_t)clen)
			break;
		if (got == sizeof(ans) - 1)
			return -EPROTO;
		if ((r = wait_fd(fd, POLLIN, deadline_us)) < 0)
			return r;
		ssize_t k = recv(fd, ans + got, sizeof(ans) - 1 - got, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPROTO; /* closed mid-answer */
		got += (size_t)k;
		ans[got] = '\0';
		if (!hend && (hend = strstr(ans, "\r\n\r\n"))) {
			off = (size_t)(hend - ans) + 4;
			clen = content_length(ans, hend + 2);
			if (clen == -2 || clen > (long)(sizeof(ans) - 1 - off))
				return -EPROTO;
			if (clen < 0)
				clen = 0;
		}
	}
	int code;
	char sp;
	if (sscanf(ans, "HTTP/1.%*1[01] %3d%c", &code, &sp) != 2 || (sp != ' ' && sp != '\r') ||
	    code < 100)
		return -EPROTO;
	*status = code;
	if (len) {
		size_t c = (size_t)clen < len - 1 ? (size_t)clen : len - 1;
		memcpy(body, ans + off, c);
		body[c] = '\0';
	}
	/* An answer longer than its length (a pipelined extra) is not ours. */
	return got - off == (size_t)clen ? 0 : -EPROTO;
}

/* PUT path json; 0 for a 2xx answer, else -EIO with why. */
static int put(int fd, const char *path, json_t *j, uint64_t deadline_us, char *why, size_t whylen)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char body[512];
	int status = 0, r;

	json_decref(j);
	if (!text) {
		snprintf(why, whylen, "PUT %s: out of memory", path);
		return -ENOMEM;
	}
	r = fcapi_request(fd, "PUT", path, text, deadline_us, &status, body, sizeof(body));
	free(text);
	if (r < 0) {
		snprintf(why, whylen, "PUT %s: %s", path,
			 r == -EPROTO ? "not an HTTP answer" : strerror(-r));
		return r;
	}
	if (status / 100 == 2)
		return 0;
	json_t *a = json_loads(body, 0, NULL);
	const char *fault = json_string_value(json_object_get(a, "fault_message"));
	snprintf(why, whylen, "PUT %s: %d %s", path, status, fault ? fault : body);
	json_decref(a);
	return -EIO;
}

int fcapi_boot(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen)
{
	const struct fcapi_boot *b = ctx;
	const struct vmm_guest *g = b->g;
	char args[4096];
	int fd = -1, r;

	(void)pid;
	/* Firecracker names the root device itself (is_root_device). */
	if ((r = vmm_peer_cmdline(args, sizeof(args), g, NULL)) < 0) {
		snprintf(why, whylen, "the guest's command line: %s", strerror(-r));
		return r;
	}
	if ((r = fcapi_connect(b->sock, deadline_us, &fd)) < 0) {
		snprintf(why, whylen, "API socket %s: %s", b->sock, strerror(-r));
		return r;
	}
	json_t *src = json_pack("{s:s, s:s}", "kernel_image_path", g->kernel, "boot_args", args);
	if (src && g->initrd)
		json_object_set_new(src, "initrd_path", json_string(g->initrd));
	if ((r = put(fd, "/boot-source", src, deadline_us, why, whylen)) < 0 ||
	    (r = put(fd, "/machine-config",
		     json_pack("{s:i, s:i}", "vcpu_count", (int)g->vcpus, "mem_size_mib",
			       (int)g->mem_mib),
		     deadline_us, why, whylen)) < 0 ||
	    (g->rootfs &&
	     (r = put(fd, "/drives/rootfs",
		      json_pack("{s:s, s:s, s:b, s:b}", "drive_id", "rootfs", "path_on_host",
				g->rootfs, "is_root_device", 1, "is_read_only", 1),
		      deadline_us, why, whylen)) < 0) ||
	    (r = put(fd, "/actions", json_pack("{s:s}", "action_type", "InstanceStart"),
		     deadline_us, why, whylen)) < 0) {
		close_fd(&fd);
		return r;
	}
	close_fd(&fd);
	return 0;
}
