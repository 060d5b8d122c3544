/* nbench: the two ends of bench/net and bench/vsock. A server and a client
 * for stream throughput and request/response latency over TCP, AF_VSOCK and
 * AF_UNIX (Firecracker's hybrid vsock: "CONNECT <port>\n", "OK <n>\n").
 *
 *   nbench server ADDR...                  serve connections one at a time,
 *                                          on every ADDR, until a client
 *                                          sends quit
 *   nbench client [OPTIONS] ADDR MODE      one workload, one result line
 *
 * ADDR: tcp:IPV4:PORT, vsock:CID:PORT (server: tcp::PORT, vsock::PORT for
 * any address), unix:PATH (a plain Unix socket: the server listens there,
 * e.g. at flint's "<uds>_<port>" for guest-initiated connections) or, for
 * the client, unix:PATH:PORT (connect to a hybrid-vsock socket and ask for
 * the guest's PORT).
 *
 * MODE (the client decides, the server follows):
 *   send   the client streams to the server    recv   the server streams
 *   rr     the client sends a message, the server echoes it, in turn
 *   quit   the server exits (status 0)
 *
 * Client options: -n NAME (for the result line), -t SECONDS measured (3),
 * -w MS warm-up before it (300), -s BYTES per write or message (131072 for
 * streams, 64 for rr), -r SECONDS to keep retrying the connection (10),
 * -H HIST: KVM's kvm_exit histogram file (tracefs, keys=exit_reason), read at
 * the start and the end of the measured interval. A peer silent for 30 s
 * fails the client.
 *
 * Every write of a stream and every message is a record whose first byte
 * says warm-up, data or end, so both ends know where the measured interval
 * begins and ends without closing the connection (a half-close need not
 * cross a hybrid vsock). The receiver's interval runs from its first data
 * record to the end record; the sender's from its first data record until
 * the receiver has reported, so nothing is still in flight. Then both ends
 * exchange report lines ("bytes= us= irqs= [total= r<REASON>=...]": irqs is
 * the sum of the /proc/interrupts lines naming virtio, exits are by SVM exit
 * code) and the client prints
 *   nbench: name=NAME mode=MODE size=N <its report> peer_<the server's>...
 *     stream: mibs=  (MiB/s as the receiver saw them)
 *     rr:     count= mean_us= p50_us= p99_us=  (round trips at the client)
 * The server prints one such line per connection on its stdout.
 *
 * Static, no dependencies but libc: it also runs in the guest's initramfs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"

#define MAGIC	     0x6e62656eu /* "nben" */
#define MAX_SIZE     (1u << 20)
#define MAX_LISTEN   8
#define REPORT_MAX   2048
#define IO_TIMEOUT_S 30 /* the client gives up on a silent peer */

enum mode { MODE_SEND, MODE_RECV, MODE_RR, MODE_QUIT };
static const char *const mode_names[] = {"send", "recv", "rr", "quit"};

/* The first byte of every record. */
enum { REC_WARM = 'w', REC_DATA = 'd', REC_END = 'e' };

/* What the client asks for; both ends are this program on x86-64. */
struct hello {
	uint32_t magic, mode, size, warm_ms, ms;
	char name[44];
};

/* One end's view of a moment: time, virtio interrupts, exits. */
struct mark {
	uint64_t us, irqs;
	struct kvm_exits h;
};

static const char *hist_path; /* -H */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("nbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints the virtio lines of /proc/interrupts, for the console log. */
static void print_virtio_irqs(const char *when)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[1024];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "virtio"))
			printf("nbench: irqs %s:%s", when, line);
	fclose(f);
}

static void mark(struct mark *m)
{
	int r = hist_path ? kvm_exits_read(hist_path, &m->h) : 0;

	if (r < 0)
		die("%s: %s", hist_path, strerror(-r));
	m->irqs = virtio_irqs();
	m->us = now_ns() / 1000;
}

/* "bytes= us= irqs= [total= r<REASON>=...]" for the interval a..b. */
static void report(char *out, size_t len, uint64_t bytes, const struct mark *a,
		   const struct mark *b)
{
	size_t n = (size_t)snprintf(out, len, "bytes=%llu us=%llu irqs=%llu",
				    (unsigned long long)bytes, (unsigned long long)(b->us - a->us),
				    (unsigned long long)(b->irqs - a->irqs));

	if (hist_path && n < len)
		kvm_exits_format(out + n, len - n, &a->h, &b->h);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", n < 0 ? strerror(errno) : "no progress");
		p += n;
		len -= (size_t)n;
	}
}

static void read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read: %s", n < 0 ? strerror(errno) : "the peer closed the connection");
		p += n;
		len -= (size_t)n;
	}
}

/* Reads one line (without its newline); byte by byte, so that nothing after
 * it is consumed. Returns its length, or -1 on EOF or error. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (c == '\n')
			break;
		if (n < len - 1)
			buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}

/* Swaps report lines: the receiver of a stream speaks first. */
static void exchange(int fd, const char *mine, char *peer, int speak_first)
{
	char line[REPORT_MAX + 1];

	snprintf(line, sizeof(line), "%s\n", mine);
	if (speak_first)
		write_all(fd, line, strlen(line));
	if (read_line(fd, peer, REPORT_MAX) < 0)
		die("no report from the peer");
	if (!speak_first)
		write_all(fd, line, strlen(line));
}

/* The sending end of a stream: warm-up, data, end; *a..*b is measured. */
static uint64_t stream_send(int fd, const struct hello *h, char *buf, struct mark *a)
{
	uint64_t bytes = 0, t = now_ns(), warm_end = t + (uint64_t)h->warm_ms * 1000000u, end;

	memset(buf, 0, h->size);
	buf[0] = REC_WARM;
	while (now_ns() < warm_end)
		write_all(fd, buf, h->size);
	mark(a);
	end = a->us * 1000 + (uint64_t)h->ms * 1000000u;
	buf[0] = REC_DATA;
	while (now_ns() < end) {
		write_all(fd, buf, h->size);
		bytes += h->size;
	}
	buf[0] = REC_END;
	write_all(fd, buf, h->size);
	return bytes;
}

/* The receiving end: bytes from the first data record to the end record. */
static uint64_t stream_recv(int fd, const struct hello *h, char *buf, struct mark *a,
			    struct mark *b)
{
	uint64_t bytes = 0;
	int started = 0;

	for (;;) {
		read_all(fd, buf, h->size);
		if (buf[0] == REC_WARM)
			continue;
		if (buf[0] == REC_END)
			break;
		if (buf[0] != REC_DATA)
			die("stream out of step (record type %d)", buf[0]);
		/* The interval starts as the first data record arrives, so
		 * that record is not in it; the end record is. */
		if (started)
			bytes += h->size;
		else
			mark(a);
		started = 1;
	}
	if (!started)
		mark(a);
	else
		bytes += h->size;
	mark(b);
	return bytes;
}

/* Both ends of a stream. Fills mine (this end's report) and peer. */
static void stream(int fd, const struct hello *h, int sending, char *mine, char *peer)
{
	char *buf = malloc(h->size);
	struct mark a, b;
	uint64_t bytes;

	if (!buf)
		die("out of memory");
	if (sending) {
		bytes = stream_send(fd, h, buf, &a);
		/* The receiver's report says everything has arrived. */
		if (read_line(fd, peer, REPORT_MAX) < 0)
			die("no report from the receiver");
		mark(&b);
		report(mine, REPORT_MAX, bytes, &a, &b);
		write_all(fd, mine, strlen(mine));
		write_all(fd, "\n", 1);
	} else {
		bytes = stream_recv(fd, h, buf, &a, &b);
		report(mine, REPORT_MAX, bytes, &a, &b);
		exchange(fd, mine, peer, 1);
	}
	free(buf);
}

static void rr_serve(int fd, const struct hello *h, char *mine, char *peer)
{
	char *buf = malloc(h->size);
	uint64_t bytes = 0;
	struct mark a, b;
	int started = 0;

	if (!buf)
		die("out of memory");
	for (;;) {
		read_all(fd, buf, h->size);
		if (buf[0] == REC_END)
			break;
		if (buf[0] == REC_DATA && !started) {
			mark(&a);
			started = 1;
		}
		if (buf[0] == REC_DATA)
			bytes += h->size;
		write_all(fd, buf, h->size);
	}
	mark(&b);
	if (!started)
		a = b;
	report(mine, REPORT_MAX, bytes, &a, &b);
	exchange(fd, mine, peer, 1);
	free(buf);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* The client's side of rr: round trips, then their statistics in stats. */
static void rr_client(int fd, const struct hello *h, char *mine, char *peer, char *stats,
		      size_t slen)
{
	char *buf = calloc(1, h->size);
	uint64_t *rtt = NULL, sum = 0, t, warm_end, end;
	size_t n = 0, cap = 0;
	struct mark a, b;

	if (!buf)
		die("out of memory");
	warm_end = now_ns() + (uint64_t)h->warm_ms * 1000000u;
	buf[0] = REC_WARM;
	while (now_ns() < warm_end) {
		write_all(fd, buf, h->size);
		read_all(fd, buf, h->size);
	}
	mark(&a);
	end = a.us * 1000 + (uint64_t)h->ms * 1000000u;
	while ((t = now_ns()) < end) {
		buf[0] = REC_DATA;
		write_all(fd, buf, h->size);
		read_all(fd, buf, h->size);
		if (buf[0] != REC_DATA)
			die("rr out of step (record type %d)", buf[0]);
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			rtt = realloc(rtt, cap * sizeof(*rtt));
			if (!rtt)
				die("out of memory");
		}
		rtt[n] = now_ns() - t;
		sum += rtt[n++];
	}
	mark(&b);
	buf[0] = REC_END;
	write_all(fd, buf, h->size);
	report(mine, REPORT_MAX, (uint64_t)n * h->size, &a, &b);
	exchange(fd, mine, peer, 0);
	if (n) {
		qsort(rtt, n, sizeof(*rtt), cmp_u64);
		snprintf(stats, slen, "count=%zu mean_us=%.1f p50_us=%.1f p99_us=%.1f", n,
			 (double)sum / (double)n / 1000, (double)rtt[n / 2] / 1000,
			 (double)rtt[n * 99 / 100] / 1000);
	} else {
		snprintf(stats, slen, "count=0");
	}
	free(rtt);
	free(buf);
}

/* "k=v k=v" -> " peer_k=v peer_k=v" */
static void print_prefixed(const char *prefix, const char *kv)
{
	char copy[REPORT_MAX + 1];

	snprintf(copy, sizeof(copy), "%s", kv);
	for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
		printf(" %s%s", prefix, tok);
}

static void print_result(const char *who, const struct hello *h, const char *mine, const char *peer,
			 const char *extra)
{
	printf("nbench:%s name=%.*s mode=%s size=%u %s", who, (int)sizeof(h->name), h->name,
	       mode_names[h->mode], h->size, mine);
	print_prefixed("peer_", peer);
	printf("%s%s\n", *extra ? " " : "", extra);
	fflush(stdout);
}

/* ------------------------------------------------------------ addresses */

union addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_vm vm;
	struct sockaddr_un un;
};

struct endpoint {
	union addr a;
	socklen_t len;
	int handshake; /* unix:PATH:PORT: hybrid vsock CONNECT */
	unsigned port; /* for the handshake */
	const char *text;
};

static unsigned parse_uint(const char *s, const char *what, const char *addr)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 0xffffffffu)
		die("%s: bad %s '%s'", addr, what, s);
	return (unsigned)v;
}

static void parse_addr(const char *text, struct endpoint *e)
{
	char buf[256], *host, *port;

	memset(e, 0, sizeof(*e));
	e->text = text;
	snprintf(buf, sizeof(buf), "%s", text);
	if (!strncmp(buf, "unix:", 5)) {
		char *path = buf + 5, *colon = strrchr(path, ':');

		if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
			*colon = '\0';
			e->handshake = 1;
			e->port = parse_uint(colon + 1, "port", text);
		}
		if (!*path || strlen(path) >= sizeof(e->a.un.sun_path))
			die("%s: bad path", text);
		e->a.un.sun_family = AF_UNIX;
		strcpy(e->a.un.sun_path, path);
		e->len = sizeof(e->a.un);
		return;
	}
	host = strchr(buf, ':');
	port = host ? strchr(host + 1, ':') : NULL;
	if (!port)
		die("%s: expected tcp:IPV4:PORT, vsock:CID:PORT or unix:PATH[:PORT]", text);
	*host++ = '\0';
	*port++ = '\0';
	if (!strcmp(buf, "tcp")) {
		e->a.in.sin_family = AF_INET;
		e->a.in.sin_port = htons((uint16_t)parse_uint(port, "port", text));
		if (*host && inet_pton(AF_INET, host, &e->a.in.sin_addr) != 1)
			die("%s: bad IPv4 address", text);
		e->len = sizeof(e->a.in);
	} else if (!strcmp(buf, "vsock")) {
		e->a.vm.svm_family = AF_VSOCK;
		e->a.vm.svm_port = parse_uint(port, "port", text);
		e->a.vm.svm_cid = *host ? parse_uint(host, "CID", text) : VMADDR_CID_ANY;
		e->len = sizeof(e->a.vm);
	} else {
		die("%s: unknown transport '%s'", text, buf);
	}
}

static void tune(int fd, sa_family_t family)
{
	int one = 1;

	/* Small messages go out at once; streams write whole records anyway. */
	if (family == AF_INET)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Hybrid vsock: "CONNECT <port>\n", then "OK <host port>\n" or a close. */
static int vsock_handshake(int fd, unsigned port)
{
	char line[64];

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		return -1;
	if (read_line(fd, line, sizeof(line)) < 0 || strncmp(line, "OK ", 3))
		return -1;
	return 0;
}

/* Connects, retrying for up to retry_s seconds (the peer may still be
 * booting). Returns the socket. */
static int connect_to(const struct endpoint *e, unsigned retry_s)
{
	uint64_t give_up = now_ns() + (uint64_t)retry_s * 1000000000u;
	int err = 0;

	for (;;) {
		int fd = socket(e->a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* A peer that stops answering (a VMM that died with the
		 * connection open) fails the client instead of hanging it. */
		struct timeval tv = {.tv_sec = IO_TIMEOUT_S};

		if (fd < 0)
			die("%s: socket: %s", e->text, strerror(errno));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, &e->a.sa, e->len) < 0) {
			err = errno;
		} else if (e->handshake && vsock_handshake(fd, e->port) < 0) {
			err = 0;
		} else {
			tune(fd, e->a.sa.sa_family);
			return fd;
		}
		close(fd);
		if (now_ns() >= give_up)
			die("%s: cannot connect: %s", e->text,
			    err ? strerror(err) : "refused by the hybrid vsock");
		usleep(100000);
	}
}

static int listen_on(const struct endpoint *e)
{
	int fd = socket(e->a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		die("%s: socket: %s", e->text, strerror(errno));
	if (e->a.sa.sa_family == AF_INET)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (e->a.sa.sa_family == AF_UNIX)
		unlink(e->a.un.sun_path);
	if (bind(fd, &e->a.sa, e->len) < 0 || listen(fd, 4) < 0)
		die("%s: %s", e->text, strerror(errno));
	return fd;
}

/* ------------------------------------------------------------- the ends */

/* Serves one connection; returns 1 when told to quit. */
static int serve_one(int fd)
{
	char mine[REPORT_MAX + 1] = "", peer[REPORT_MAX + 1] = "";
	struct hello h;

	read_all(fd, &h, sizeof(h));
	if (h.magic != MAGIC || h.mode > MODE_QUIT || h.size < 1 || h.size > MAX_SIZE)
		die("bad hello from the client");
	if (h.mode == MODE_QUIT)
		return 1;
	if (h.mode == MODE_RR)
		rr_serve(fd, &h, mine, peer);
	else
		stream(fd, &h, h.mode == MODE_RECV, mine, peer);
	print_result(" served", &h, mine, peer, "");
	return 0;
}

static int server(int argc, char **argv)
{
	struct pollfd pfd[MAX_LISTEN];
	sa_family_t family[MAX_LISTEN];
	int n = 0;

	if (argc < 1 || argc > MAX_LISTEN)
		die("usage: nbench server ADDR... (at most %d)", MAX_LISTEN);
	for (; n < argc; n++) {
		struct endpoint e;

		parse_addr(argv[n], &e);
		family[n] = e.a.sa.sa_family;
		pfd[n] = (struct pollfd){.fd = listen_on(&e), .events = POLLIN};
	}
	print_virtio_irqs("start");
	printf("nbench: server ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			int fd, quit;

			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			tune(fd, family[i]);
			quit = serve_one(fd);
			close(fd);
			if (quit) {
				print_virtio_irqs("end");
				printf("nbench: server done\n");
				return 0;
			}
		}
	}
}

static int client(int argc, char **argv)
{
	char mine[REPORT_MAX + 1] = "", peer[REPORT_MAX + 1] = "", extra[256] = "";
	struct hello h = {.magic = MAGIC, .warm_ms = 300, .ms = 3000};
	const char *name = "";
	unsigned retry_s = 10, size = 0;
	struct endpoint e;
	int opt, fd;

	while ((opt = getopt(argc, argv, "+n:t:w:s:r:H:")) != -1) {
		switch (opt) {
		case 'n':
			name = optarg;
			break;
		case 't':
			h.ms = (uint32_t)(atof(optarg) * 1000);
			break;
		case 'w':
			h.warm_ms = parse_uint(optarg, "warm-up", "-w");
			break;
		case 's':
			size = parse_uint(optarg, "size", "-s");
			break;
		case 'r':
			retry_s = parse_uint(optarg, "retry", "-r");
			break;
		case 'H':
			hist_path = optarg;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2)
		die("usage: nbench client [-n NAME] [-t S] [-w MS] [-s BYTES] [-r S] [-H HIST] "
		    "ADDR send|recv|rr|quit");
	for (h.mode = 0; h.mode <= MODE_QUIT; h.mode++)
		if (!strcmp(argv[optind + 1], mode_names[h.mode]))
			break;
	if (h.mode > MODE_QUIT)
		die("unknown mode '%s'", argv[optind + 1]);
	h.size = size ? size : h.mode == MODE_RR ? 64 : 128 * 1024;
	if (h.size > MAX_SIZE)
		die("-s: at most %u bytes", MAX_SIZE);
	snprintf(h.name, sizeof(h.name), "%s", *name ? name : mode_names[h.mode]);
	parse_addr(argv[optind], &e);
	fd = connect_to(&e, retry_s);
	write_all(fd, &h, sizeof(h));
	if (h.mode == MODE_QUIT) {
		char c;

		/* Until the server has closed: it has then seen the request. */
		while (read(fd, &c, 1) > 0)
			;
		close(fd);
		return 0;
	}
	if (h.mode == MODE_RR) {
		rr_client(fd, &h, mine, peer, extra, sizeof(extra));
	} else {
		unsigned long long bytes = 0, us = 0;
		int sending = h.mode == MODE_SEND;

		stream(fd, &h, sending, mine, peer);
		/* Throughput as the receiver saw it. */
		if (sscanf(sending ? peer : mine, "bytes=%llu us=%llu", &bytes, &us) == 2 && us)
			snprintf(extra, sizeof(extra), "mibs=%.2f",
				 (double)bytes / 1048576.0 / ((double)us / 1e6));
	}
	close(fd);
	print_result("", &h, mine, peer, extra);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "server"))
		return server(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "client"))
		return client(argc - 1, argv + 1);
	fprintf(stderr, "usage: nbench server ADDR... | nbench client [OPTIONS] ADDR MODE\n"
			"(see the comment at the top of tests/tools/nbench.c)\n");
	return 2;
}
