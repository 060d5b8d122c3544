/* flint bench's client of Firecracker's API: HTTP/1.1 over its Unix
 * socket, one request at a time on one connection, to boot a guest the
 * way Firecracker's getting-started does (PUT /boot-source,
 * /machine-config, /drives/rootfs, then /actions InstanceStart). The same
 * client drives flint's own API, which answers as Firecracker's does.
 * Trusts nothing it reads: a status line, headers and a body of bounded
 * length, or an error. */
#ifndef FLINT_BENCH_FCAPI_H
#define FLINT_BENCH_FCAPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/vmm.h"
#include "core/util.h"

#define FCAPI_ANSWER_MAX 4096 /* headers and body of one answer */

/* Connect to the API socket at path, trying again every millisecond
 * while it is not there yet (the VMM is starting), until deadline_us
 * (CLOCK_MONOTONIC). 0 with *fd, or -errno (-ETIMEDOUT). */
int fcapi_connect(const char *path, uint64_t deadline_us, int *fd) WARN_UNUSED;

/* One request: method, path, a JSON body (NULL: none). *status is the
 * answer's; body (len bytes, NUL-terminated, cut to fit) its body.
 * Returns 0, -EPROTO for an answer that is not HTTP/1.x or too long,
 * -ETIMEDOUT, or another -errno. */
int fcapi_request(int fd, const char *method, const char *path, const char *json,
		  uint64_t deadline_us, int *status, char *body, size_t len) WARN_UNUSED;

/* What fcapi_boot needs: the API socket's path and the guest. */
struct fcapi_boot {
	const char *sock;
	const struct vmm_guest *g;
};

/* A runner_launch.drive (ctx: a struct fcapi_boot): connect, PUT the
 * guest's boot source (its command line as vmm_qemu_argv's, the root
 * image named by Firecracker's is_root_device), machine, root drive, then
 * InstanceStart. Any answer but 2xx fails, with the request and the
 * answer's fault_message in why. */
int fcapi_boot(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen) WARN_UNUSED;

#endif
