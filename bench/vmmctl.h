/* vmmctl: what apibench (bench/api) and snapbench (bench/snapshot) share
 * to reach a VMM's control socket while it starts, and to read QEMU's
 * QMP; flint's API they speak through flint's own client (fcapi_request,
 * runner/bench/fcapi.h). Built into each, static, with fcapi.o and
 * core/util.o (bench/api/run, bench/snapshot/run). */
#ifndef FLINT_BENCH_VMMCTL_H
#define FLINT_BENCH_VMMCTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Connect to the Unix socket at path (fcapi_connect), trying again every
 * 50 us while it does not exist or does not accept yet. The fd; -ECHILD
 * when pid exited first, -ETIMEDOUT at deadline_ns (CLOCK_MONOTONIC), or
 * another -errno. */
int vmmctl_connect(const char *path, pid_t pid, uint64_t deadline_ns);

/* A QMP connection: the socket, the deadline (CLOCK_MONOTONIC ns) of its
 * reads, and what was read of it and not yet taken. */
struct qmp_conn {
	int fd;
	uint64_t deadline;
	char buf[16384];
	size_t len;
};

/* The next QMP message (an event or not), NUL-terminated in out (cut to
 * outlen). 0; -ETIMEDOUT at c->deadline, -EPIPE at EOF, -ENOBUFS for a
 * message longer than c->buf, or another -errno. */
int qmp_next(struct qmp_conn *c, char *out, size_t outlen);

#endif
