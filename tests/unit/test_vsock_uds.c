/* Hybrid vsock's Unix side: the CONNECT line (whole, in pieces, garbage,
 * overlong), the OK answer, and the sockets in a scratch directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/usock.h"
#include "vsock/vsock_uds.h"

static int parse(const char *s, uint32_t *port)
{
	return vsock_uds_parse_connect(s, strlen(s), port);
}

Test(vsock_uds, connect_lines)
{
	uint32_t port = 7;

	cr_assert_eq(parse("CONNECT 52", &port), 0);
	cr_assert_eq(port, 52);
	cr_assert_eq(parse("connect 0", &port), 0, "any case, as Firecracker");
	cr_assert_eq(port, 0);
	cr_assert_eq(parse("Connect   4294967295", &port), 0);
	cr_assert_eq(port, UINT32_MAX);
	cr_assert_eq(parse("CONNECT 007", &port), 0);
	cr_assert_eq(port, 7);
}

/* Firecracker splits the line into words at white space and takes the
 * first two: a CRLF line, tabs, spaces around the words, a "+" on the port
 * and words after it are all a CONNECT to that port there. */
Test(vsock_uds, connect_lines_as_firecracker_reads_them)
{
	static const struct {
		const char *line;
		uint32_t port;
	} ok[] = {
	    {"CONNECT 52\r", 52},      {"connect\t52", 52},	   {" CONNECT 52", 52},
	    {"CONNECT 52 ", 52},       {"\tCONNECT \t 52 \r", 52}, {"CONNECT +5", 5},
	    {"CONNECT 52 please", 52}, {"CONNECT\v7\f", 7},
	};
	uint32_t port;

	for (unsigned i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		port = 0;
		cr_assert_eq(parse(ok[i].line, &port), 0, "\"%s\"", ok[i].line);
		cr_assert_eq(port, ok[i].port, "\"%s\"", ok[i].line);
	}
}

Test(vsock_uds, garbage_lines)
{
	static const char *const bad[] = {
	    "",
	    "CONNECT",
	    "CONNECT ",
	    "CONNECT52",
	    "xCONNECT 52",
	    "CONNECTX 52",
	    "CONNECT 52x",
	    "CONNECT x 52",
	    "CONNECT -1",
	    "CONNECT +",
	    "CONNECT ++5",
	    "CONNECT 0x10",
	    "CONNECT 4294967296",
	    "CONNECT 99999999999999999999",
	    " \t\r",
	    "GET / HTTP/1.0",
	    "OK 52",
	};
	uint32_t port = 7;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i], &port), -EINVAL, "\"%s\"", bad[i]);
	cr_assert_eq(port, 7, "untouched");
	/* A NUL in the middle is garbage too, whatever follows it. */
	static const char nul[] = "CONNECT 5\0002";
	cr_assert_eq(vsock_uds_parse_connect(nul, sizeof(nul) - 1, &port), -EINVAL);
}

Test(vsock_uds, line_scan_stops_at_the_newline)
{
	bool done;

	/* The stream after the line is left alone. */
	cr_assert_eq(vsock_uds_line_scan("CONNECT 52\nhello", 16, 0, &done), 11);
	cr_assert(done);
	/* In pieces: take all of a piece without a newline. */
	cr_assert_eq(vsock_uds_line_scan("CONN", 4, 0, &done), 4);
	cr_assert_not(done);
	cr_assert_eq(vsock_uds_line_scan("ECT 5\nxx", 8, 4, &done), 6);
	cr_assert(done);
	cr_assert_eq(vsock_uds_line_scan("\n", 1, 0, &done), 1);
	cr_assert(done);
}

Test(vsock_uds, overlong_lines)
{
	char line[64];
	bool done;

	memset(line, 'A', sizeof(line));
	/* 31 bytes and the newline: the longest line. */
	line[31] = '\n';
	cr_assert_eq(vsock_uds_line_scan(line, 32, 0, &done), 32);
	cr_assert(done);
	cr_assert_eq(vsock_uds_line_scan(line + 10, 22, 10, &done), 22);
	/* 32 bytes without a newline can never become a line. */
	line[31] = 'A';
	cr_assert_eq(vsock_uds_line_scan(line, 31, 1, &done), -EMSGSIZE);
	cr_assert_eq(vsock_uds_line_scan(line, 32, 0, &done), -EMSGSIZE);
	cr_assert_eq(vsock_uds_line_scan(line, 31, 0, &done), 31, "room left for the newline");
	line[40] = '\n';
	cr_assert_eq(vsock_uds_line_scan(line + 31, 10, 31, &done), -EMSGSIZE);
}

Test(vsock_uds, ok_line)
{
	char buf[VSOCK_UDS_LINE_MAX];

	cr_assert_eq(vsock_uds_ok_line(buf, sizeof(buf), 1073741824), 14);
	cr_assert_str_eq(buf, "OK 1073741824\n");
	cr_assert_eq(vsock_uds_ok_line(buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "OK 0\n");
}

/* ---- sockets ------------------------------------------------------------- */

static char dir[] = "/tmp/flint-uds-XXXXXX";
static char path[128];

static void dir_setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
}

static void dir_teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vsock_uds_sock, .init = dir_setup, .fini = dir_teardown);

Test(vsock_uds_sock, connect_to_path_underscore_port)
{
	char p52[160];
	int l, c, a;

	snprintf(p52, sizeof(p52), "%s_52", path);
	cr_assert_eq(vsock_uds_connect(path, 52, &c), -ENOENT);
	cr_assert_eq(c, -1);
	cr_assert_geq(l = usock_listen(p52, SOCK_NONBLOCK, 8, 0, NULL), 0);
	cr_assert_eq(vsock_uds_connect(path, 52, &c), 0);
	cr_assert(fcntl(c, F_GETFL) & O_NONBLOCK);
	a = accept(l, NULL, NULL);
	cr_assert_geq(a, 0);
	cr_assert_eq(write(c, "x", 1), 1);
	char b;
	cr_assert_eq(read(a, &b, 1), 1);
	cr_assert_eq(b, 'x');
	close(a);
	close(c);
	close(l);
	/* A socket file nobody listens on: refused. */
	cr_assert_eq(vsock_uds_connect(path, 52, &c), -ECONNREFUSED);
}

Test(vsock_uds_sock, paths_too_long)
{
	char longp[200];
	int fd;

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	longp[100] = 0; /* fits, but not with "_4294967295" after it */
	cr_assert_eq(vsock_uds_connect(longp, UINT32_MAX, &fd), -ENAMETOOLONG);
}
