/* vstream: both ends of the vsock VM scenarios. N parallel streams, each
 * carrying BYTES of deterministic pseudo-random data both ways at once;
 * every byte received is checked against what the peer must have sent.
 *
 *   vstream [-t SECS] vsock-listen PORT N BYTES        guest: accept N on PORT
 *   vstream [-t SECS] vsock-connect CID PORT N BYTES   guest: N connections
 *   vstream [-t SECS] unix-listen PATH N BYTES         host: accept N on PATH
 *                                                      (flint's "<uds>_<port>")
 *   vstream [-t SECS] unix-connect PATH PORT N BYTES   host: N connections
 *       through flint's socket PATH ("CONNECT PORT\n", "OK <n>\n"), retried
 *       while the guest is not listening yet
 *   vstream vsock-probe CID PORT     guest: one connect; exit 0 if it is reset
 *   vstream unix-line PATH TEXT      host: send TEXT ("\n" for newlines) to
 *       flint's socket; exit 0 if flint closes it without answering "OK"
 *
 * A stream: the connecting end sends its stream number (4 bytes), then both
 * ends send BYTES (suffix K, M or G), half-close, and read the peer's data
 * to EOF. Stream s carries the sequence seeded s*2+1 from the connecting
 * end, s*2+2 from the accepting one. Prints one line per stream and a
 * summary with the rate; exits 0 only if every stream matched. -t (default 600) ends a stuck run
 * with status 124. */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static uint64_t bytes;
static int timeout_s = 600;

/* The data: xorshift64*, 8 bytes per step, from any stream position. */
struct gen {
	uint64_t s, word;
	unsigned used; /* bytes of word handed out */
};

static void gen_init(struct gen *g, uint64_t seed)
{
	*g = (struct gen){.s = seed * 0x9e3779b97f4a7c15ull + 1, .used = 8};
}

static uint64_t gen_next(struct gen *g)
{
	g->s ^= g->s >> 12;
	g->s ^= g->s << 25;
	g->s ^= g->s >> 27;
	return g->s * 0x2545f4914f6cdd1dull;
}

/* Whole words at a time where it can: the guest runs this under TCG. */
static void gen_fill(struct gen *g, uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n && g->used < 8)
		p[i++] = (uint8_t)(g->word >> (8 * g->used++));
	for (; n - i >= 8; i += 8) {
		uint64_t w = gen_next(g);
		memcpy(p + i, &w, 8); /* little-endian: the bytes in order */
	}
	for (; i < n; i++) {
		if (g->used == 8) {
			g->word = gen_next(g);
			g->used = 0;
		}
		p[i] = (uint8_t)(g->word >> (8 * g->used++));
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void on_alarm(int sig)
{
	static const char msg[] = "vstream: timed out\n";
	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(124);
}

/* ---- one stream ------------------------------------------------------------ */

struct stream {
	int fd;
	uint32_t id;
	bool connector;
	pthread_t sender;
	const char *err; /* first failure, or NULL */
	uint64_t sent, received;
	bool ok;
};

/* All n bytes, or false at an error or EOF. */
static bool io_all(int fd, void *buf, size_t n, bool wr)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = wr ? write(fd, p, n) : read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static bool write_all(int fd, const void *buf, size_t n)
{
	return io_all(fd, (void *)buf, n, true);
}

static void *send_side(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[CHUNK];
	struct gen g;

	gen_init(&g, s->id * 2ull + (s->connector ? 1 : 2));
	while (s->sent < bytes) {
		size_t n = bytes - s->sent < CHUNK ? bytes - s->sent : CHUNK;
		gen_fill(&g, buf, n);
		if (!write_all(s->fd, buf, n)) {
			s->err = strerror(errno);
			break;
		}
		s->sent += n;
	}
	if (shutdown(s->fd, SHUT_WR) < 0 && !s->err)
		s->err = "shutdown failed";
	return NULL;
}

/* Send and receive at once; check what arrives. */
static void *run_stream(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[CHUNK], want[CHUNK];
	struct gen g;
	ssize_t r;

	if (s->connector) {
		uint8_t id[4] = {(uint8_t)s->id, (uint8_t)(s->id >> 8), (uint8_t)(s->id >> 16),
				 (uint8_t)(s->id >> 24)};
		if (!write_all(s->fd, id, 4)) {
			s->err = "cannot send the stream number";
			return NULL;
		}
	} else {
		uint8_t id[4];
		if (!io_all(s->fd, id, 4, false)) {
			s->err = "no stream number";
			return NULL;
		}
		s->id = id[0] | id[1] << 8 | id[2] << 16 | (uint32_t)id[3] << 24;
	}
	gen_init(&g, s->id * 2ull + (s->connector ? 2 : 1));
	if (pthread_create(&s->sender, NULL, send_side, s)) {
		s->err = "pthread_create";
		return NULL;
	}
	while ((r = read(s->fd, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			s->err = strerror(errno);
			break;
		}
		gen_fill(&g, want, (size_t)r);
		if (memcmp(buf, want, (size_t)r) != 0 && !s->err)
			s->err = "data mismatch";
		s->received += (uint64_t)r;
	}
	pthread_join(s->sender, NULL);
	if (!s->err && s->received != bytes)
		s->err = "short stream";
	s->ok = !s->err && s->sent == bytes;
	close(s->fd);
	return NULL;
}

/* Run the n streams whose fds are set, report, and return the exit status. */
static int run_all(struct stream *st, unsigned n, uint64_t t0)
{
	pthread_t *th = calloc(n, sizeof(*th));
	unsigned ok = 0;
	double secs;

	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, run_stream, &st[i])) {
			fprintf(stderr, "vstream: pthread_create failed\n");
			return 1;
		}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	secs = (double)(now_ns() - t0) / 1e9;
	for (unsigned i = 0; i < n; i++) {
		printf("vstream: stream %u: sent %llu received %llu %s%s\n", st[i].id,
		       (unsigned long long)st[i].sent, (unsigned long long)st[i].received,
		       st[i].ok ? "ok" : "FAILED: ", st[i].ok ? "" : st[i].err);
		ok += st[i].ok;
	}
	printf("vstream: %u of %u streams ok, %llu bytes each way per stream, %.1f s, %.1f MiB/s "
	       "each way\n",
	       ok, n, (unsigned long long)bytes, secs,
	       secs > 0 ? (double)bytes * n / (1 << 20) / secs : 0.0);
	free(th);
	return ok == n ? 0 : 1;
}

/* ---- endpoints -------------------------------------------------------------- */

static int vsock_socket(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		perror("vstream: socket(AF_VSOCK)");
	return fd;
}

static struct sockaddr_vm vm_addr(uint32_t cid, uint32_t port)
{
	return (struct sockaddr_vm){.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
}

static int unix_addr(struct sockaddr_un *a, const char *path)
{
	*a = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a->sun_path)) {
		fprintf(stderr, "vstream: path too long: %s\n", path);
		return -1;
	}
	strcpy(a->sun_path, path);
	return 0;
}

/* Listen (on a vsock port, or a Unix path) and accept n streams. */
static int serve(int l, unsigned n)
{
	struct stream *st = calloc(n, sizeof(*st));
	uint64_t t0 = 0;

	if (listen(l, 128) < 0) {
		perror("vstream: listen");
		return 1;
	}
	printf("vstream: listening\n");
	fflush(stdout);
	for (unsigned i = 0; i < n; i++) {
		st[i].fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (st[i].fd < 0) {
			perror("vstream: accept");
			return 1;
		}
		if (i == 0)
			t0 = now_ns();
	}
	close(l);
	return run_all(st, n, t0);
}

/* "CONNECT port\n" and the answer: 0 with "OK", 1 when flint closed the
 * connection (nothing listens in the guest yet), -1 on other errors. */
static int handshake(int fd, uint32_t port)
{
	char line[32], c;
	size_t n = 0;
	int len = snprintf(line, sizeof(line), "CONNECT %u\n", port);

	if (!write_all(fd, line, (size_t)len))
		return -1;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(fd, &c, 1);
		if (r == 0)
			return 1;
		if (r < 0)
			return errno == ECONNRESET ? 1 : -1;
		line[n++] = c;
		if (c == '\n')
			break;
	}
	line[n] = 0;
	if (strncmp(line, "OK ", 3) != 0) {
		fprintf(stderr, "vstream: unexpected answer \"%s\"\n", line);
		return -1;
	}
	return 0;
}

static int unix_connect_streams(const char *path, uint32_t port, unsigned n)
{
	struct stream *st = calloc(n, sizeof(*st));
	struct sockaddr_un a;
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)timeout_s * 1000000000ull;

	if (unix_addr(&a, path) < 0)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		for (;;) {
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
			if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
				/* flint not up yet: try again */
				r = fd >= 0 && (errno == ENOENT || errno == ECONNREFUSED) ? 1 : -1;
				if (r < 0)
					perror("vstream: connect");
			} else {
				r = handshake(fd, port);
			}
			if (r == 0) {
				st[i] = (struct stream){.fd = fd, .id = i, .connector = true};
				break;
			}
			if (fd >= 0)
				close(fd);
			if (r < 0)
				return 1;
			if (now_ns() > deadline)
				return 124;
			usleep(100 * 1000); /* the guest is not listening yet */
		}
		if (i == 0)
			t0 = now_ns();
	}
	return run_all(st, n, t0);
}

static int vsock_connect_streams(uint32_t cid, uint32_t port, unsigned n)
{
	struct stream *st = calloc(n, sizeof(*st));
	struct sockaddr_vm a = vm_addr(cid, port);
	uint64_t t0 = now_ns();

	for (unsigned i = 0; i < n; i++) {
		int fd = vsock_socket();
		if (fd < 0)
			return 1;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			fprintf(stderr, "vstream: connect to %u:%u: %s\n", cid, port,
				strerror(errno));
			return 1;
		}
		st[i] = (struct stream){.fd = fd, .id = i, .connector = true};
	}
	return run_all(st, n, t0);
}

static int vsock_probe(uint32_t cid, uint32_t port)
{
	struct sockaddr_vm a = vm_addr(cid, port);
	int fd = vsock_socket();

	if (fd < 0)
		return 1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		printf("vstream: connect to %u:%u: connected\n", cid, port);
		return 1;
	}
	printf("vstream: connect to %u:%u: %s\n", cid, port,
	       errno == ECONNRESET ? "reset" : strerror(errno));
	return errno == ECONNRESET ? 0 : 1;
}

/* Send text (with "\n" escapes) and report how flint answers. */
static int unix_line(const char *path, const char *text)
{
	char buf[256], got[256];
	size_t n = 0, g = 0;
	struct sockaddr_un a;
	int fd;
	ssize_t r;

	for (const char *p = text; *p && n < sizeof(buf); p++)
		buf[n++] = p[0] == '\\' && p[1] == 'n' ? (p++, '\n') : *p;
	if (unix_addr(&a, path) < 0)
		return 1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("vstream: connect");
		return 1;
	}
	(void)write_all(fd, buf, n);
	while (g < sizeof(got) - 1 && (r = read(fd, got + g, sizeof(got) - 1 - g)) > 0)
		g += (size_t)r;
	got[g] = 0;
	printf("vstream: answer \"%s\", then %s\n", got, g < sizeof(got) - 1 ? "closed" : "more");
	return g == 0 ? 0 : 1;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);
	switch (*end) {
	case 'G':
		v <<= 10; /* fall through */
	case 'M':
		v <<= 10; /* fall through */
	case 'K':
		v <<= 10;
	}
	return v;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: vstream [-t SECS] vsock-listen PORT N BYTES | vsock-connect CID PORT "
		"N BYTES | unix-listen PATH N BYTES | unix-connect PATH PORT N BYTES | "
		"vsock-probe CID PORT | unix-line PATH TEXT\n");
	return 2;
}

int main(int argc, char **argv)
{
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "+t:")) != -1) {
		if (opt != 't')
			return usage();
		timeout_s = atoi(optarg);
	}
	argv += optind;
	argc -= optind;
	if (argc < 1)
		return usage();
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)timeout_s);
	const char *mode = argv[0];
	if (!strcmp(mode, "vsock-listen") && argc == 4) {
		struct sockaddr_vm a =
		    vm_addr(VMADDR_CID_ANY, (uint32_t)strtoul(argv[1], NULL, 10));
		int l = vsock_socket();
		bytes = parse_size(argv[3]);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("vstream: bind");
			return 1;
		}
		return serve(l, (unsigned)atoi(argv[2]));
	}
	if (!strcmp(mode, "unix-listen") && argc == 4) {
		struct sockaddr_un a;
		int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bytes = parse_size(argv[3]);
		if (unix_addr(&a, argv[1]) < 0)
			return 1;
		unlink(argv[1]);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0) {
			perror("vstream: bind");
			return 1;
		}
		return serve(l, (unsigned)atoi(argv[2]));
	}
	if (!strcmp(mode, "vsock-connect") && argc == 5) {
		bytes = parse_size(argv[4]);
		return vsock_connect_streams((uint32_t)strtoul(argv[1], NULL, 10),
					     (uint32_t)strtoul(argv[2], NULL, 10),
					     (unsigned)atoi(argv[3]));
	}
	if (!strcmp(mode, "unix-connect") && argc == 5) {
		bytes = parse_size(argv[4]);
		return unix_connect_streams(argv[1], (uint32_t)strtoul(argv[2], NULL, 10),
					    (unsigned)atoi(argv[3]));
	}
	if (!strcmp(mode, "vsock-probe") && argc == 3)
		return vsock_probe((uint32_t)strtoul(argv[1], NULL, 10),
				   (uint32_t)strtoul(argv[2], NULL, 10));
	if (!strcmp(mode, "unix-line") && argc == 3)
		return unix_line(argv[1], argv[2]);
	return usage();
}
