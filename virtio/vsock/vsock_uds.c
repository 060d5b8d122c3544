/* Hybrid vsock's Unix-socket side; see vsock_uds.h. */
#include "vsock/vsock_uds.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

ssize_t vsock_uds_line_scan(const char *p, size_t n, size_t have, bool *done)
{
	const char *nl = memchr(p, '\n', n);
	size_t take = nl ? (size_t)(nl - p) + 1 : n;

	*done = nl != NULL;
	if (have + take > VSOCK_UDS_LINE_MAX || (!nl && have + take == VSOCK_UDS_LINE_MAX))
		return -EMSGSIZE;
	return (ssize_t)take;
}

/* ASCII white space, where Firecracker's split_whitespace splits. */
static bool blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char word[] = "CONNECT";
	size_t i = 0, w = sizeof(word) - 1, digits = 0;
	uint64_t v = 0;

	while (i < len && blank(line[i]))
		i++;
	if (len - i <= w || strncasecmp(line + i, word, w) != 0 || !blank(line[i + w]))
		return -EINVAL;
	for (i += w; i < len && blank(line[i]); i++)
		;
	if (i < len && line[i] == '+')
		i++;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++, digits++) {
		v = v * 10 + (uint64_t)(line[i] - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (!digits || (i < len && !blank(line[i])))
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}

size_t vsock_uds_ok_line(char *buf, size_t size, uint32_t port)
{
	int n = snprintf(buf, size, "OK %u\n", port);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

int vsock_uds_connect(const char *path, uint32_t port, int *fd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", path, port);
	int r;

	*fd = -1;
	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	if ((*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(*fd, (const struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		close_fd(fd);
		return r;
	}
	return 0;
}
