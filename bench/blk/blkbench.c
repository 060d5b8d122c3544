/* blkbench: the guest side of bench/blk. Runs a fixed list of O_DIRECT
 * workloads on a block device with Linux native AIO (io_submit, the engine
 * of fio's libaio), each for SECONDS after a short warm-up, and prints one
 * result line per workload.
 *
 *   blkbench [-n] DEVICE SECONDS
 *
 * Around each measured interval it hands the console to the host-side
 * driver (bench/blk/drive.c), so the VMM's exits can be counted for exactly
 * that interval: it prints "R NAME", waits for a line on stdin, runs, prints
 * "D", waits for a line again, then prints
 *   bench: name=NAME ops=N reqs=N bytes=N us=N irqs=N
 * (ops: the tool's I/Os; reqs: requests the block layer completed, from
 * /sys/block/DEV/stat; irqs: the virtio interrupts in /proc/interrupts).
 * -n: no handshake (to try it by hand).
 *
 * Static, no dependencies but libc: it goes into the guest's initramfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "counters.h" /* tests/tools */

struct work {
	const char *name;
	int write;  /* 0 read, 1 write */
	int random; /* random offsets, else sequential */
	size_t bs;
	unsigned depth;
};

static const struct work works[] = {
    {"randread-4k-qd1", 0, 1, 4096, 1},
    {"randread-4k-qd32", 0, 1, 4096, 32},
    {"read-1m-qd8", 0, 0, 1 << 20, 8},
    {"write-1m-qd8", 1, 0, 1 << 20, 8},
};

#define MAX_DEPTH 32
#define BUF_BYTES (8u << 20) /* the largest depth * bs above */
#define WARMUP_MS 300

static int handshake = 1;
static const char *disk; /* "vda" */

static void die(const char *what)
{
	fprintf(stderr, "blkbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Reads and writes the block layer completed (fields 1 and 5 of
 * /sys/block/DEV/stat): the device requests, after merging and splitting. */
static uint64_t disk_requests(void)
{
	char path[128];
	unsigned long long r = 0, w = 0, x;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/stat", disk);
	f = fopen(path, "r");
	if (!f)
		die(path);
	if (fscanf(f, "%llu %llu %llu %llu %llu", &r, &x, &x, &x, &w) != 5)
		r = w = 0;
	fclose(f);
	return r + w;
}

/* Waits for a line from the driver on stdin. */
static void await_host(const char *say)
{
	char c;

	if (!handshake)
		return;
	if (write(STDOUT_FILENO, say, strlen(say)) < 0)
		die("write");
	do {
		if (read(STDIN_FILENO, &c, 1) != 1)
			die("reading the driver's reply on stdin");
	} while (c != '\n');
}

static long io_setup(unsigned n, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, n, ctx);
}

static long io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
	return syscall(SYS_io_submit, ctx, n, iocbs);
}

static long io_getevents(aio_context_t ctx, long min, long max, struct io_event *ev)
{
	return syscall(SYS_io_getevents, ctx, min, max, ev, NULL);
}

struct run {
	uint64_t ops, bytes, us;
};

/* Keeps w->depth I/Os in flight for ms milliseconds, then drains them. */
static struct run run_work(int fd, aio_context_t ctx, const struct work *w, uint64_t size,
			   char *buf, unsigned ms)
{
	struct iocb cbs[MAX_DEPTH], *list[MAX_DEPTH];
	struct io_event ev[MAX_DEPTH];
	uint64_t blocks = size / w->bs, next = 0, t0 = now_us(), end = t0 + (uint64_t)ms * 1000;
	unsigned inflight = 0, n = 0;
	struct run r = {0, 0, 0};
	int stopping = 0;

	/* Submits cbs[i] at the next offset. */
#define PREPARE(i)                                                                                 \
	do {                                                                                       \
		uint64_t blk = w->random ? xorshift() % blocks : next++ % blocks;                  \
		cbs[i] = (struct iocb){                                                            \
		    .aio_data = (i),                                                               \
		    .aio_lio_opcode = w->write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,                 \
		    .aio_fildes = (uint32_t)fd,                                                    \
		    .aio_buf = (uint64_t)(uintptr_t)(buf + (size_t)(i)*w->bs),                     \
		    .aio_nbytes = w->bs,                                                           \
		    .aio_offset = (int64_t)(blk * w->bs),                                          \
		};                                                                                 \
		list[n++] = &cbs[i];                                                               \
	} while (0)

	for (unsigned i = 0; i < w->depth; i++)
		PREPARE(i);
	for (;;) {
		if (n) {
			if (io_submit(ctx, n, list) != (long)n)
				die("io_submit");
			inflight += n;
			n = 0;
		}
		if (!inflight)
			break;
		long got = io_getevents(ctx, 1, MAX_DEPTH, ev);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			die("io_getevents");
		}
		if (!stopping && now_us() >= end)
			stopping = 1;
		for (long k = 0; k < got; k++) {
			if (ev[k].res != (int64_t)w->bs) {
				fprintf(stderr, "blkbench: %s: I/O returned %lld\n", w->name,
					(long long)ev[k].res);
				exit(1);
			}
			inflight--;
			r.ops++;
			r.bytes += w->bs;
			if (!stopping)
				PREPARE(ev[k].data);
		}
	}
#undef PREPARE
	r.us = now_us() - t0;
	return r;
}

int main(int argc, char **argv)
{
	struct termios tio;
	aio_context_t ctx = 0;
	uint64_t size;
	unsigned seconds;
	char *buf;
	int fd;

	if (argc > 1 && !strcmp(argv[1], "-n")) {
		handshake = 0;
		argv++, argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: blkbench [-n] DEVICE SECONDS\n");
		return 2;
	}
	seconds = (unsigned)atoi(argv[2]);
	disk = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	fd = open(argv[1], O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		die(argv[1]);
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		die("BLKGETSIZE64");
	if (io_setup(MAX_DEPTH, &ctx) < 0)
		die("io_setup");
	/* Touched now, so the guest's first touches of this memory (nested
	 * page faults in the VMM's exit counts) fall outside the measurement. */
	buf = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < BUF_BYTES; i += 8)
		*(uint64_t *)(buf + i) = xorshift();
	/* The driver's replies must not echo back onto the console. */
	if (handshake && tcgetattr(STDIN_FILENO, &tio) == 0) {
		tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		tcsetattr(STDIN_FILENO, TCSANOW, &tio);
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("blkbench: %s, %llu MiB, %u s per workload\n", argv[1],
	       (unsigned long long)(size >> 20), seconds);

	for (size_t i = 0; i < sizeof(works) / sizeof(works[0]); i++) {
		const struct work *w = &works[i];
		char say[128];
		uint64_t irq0, req0;
		struct run r;

		if (w->depth > MAX_DEPTH || w->depth * w->bs > BUF_BYTES || size < w->bs) {
			fprintf(stderr, "blkbench: %s does not fit\n", w->name);
			return 1;
		}

		run_work(fd, ctx, w, size, buf, WARMUP_MS);
		snprintf(say, sizeof(say), "R %s\n", w->name);
		await_host(say);
		irq0 = virtio_irqs();
		req0 = disk_requests();
		r = run_work(fd, ctx, w, size, buf, seconds * 1000);
		irq0 = virtio_irqs() - irq0;
		req0 = disk_requests() - req0;
		await_host("D\n");
		printf("bench: name=%s ops=%llu reqs=%llu bytes=%llu us=%llu irqs=%llu\n", w->name,
		       (unsigned long long)r.ops, (unsigned long long)req0,
		       (unsigned long long)r.bytes, (unsigned long long)r.us,
		       (unsigned long long)irq0);
	}
	return 0;
}
