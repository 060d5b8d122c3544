/* Where this process's cgroups live and how much memory they allow.
 *
 * flint checks guest memory against its cgroup's memory limit before it maps
 * any, so a limit too small for the guest fails the launch with a message
 * instead of an OOM kill mid-boot; flint-jail (jail/) finds cgroup mounts
 * and the process's cgroups with the same parsers. The parsers take the text
 * of /proc/self/mountinfo and /proc/self/cgroup, so they are unit tested. */
#ifndef FLINT_CGROUPFS_H
#define FLINT_CGROUPFS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* What flint needs besides guest memory: its binary, thread stacks, the
 * io_uring rings, KVM's page tables and per-vCPU state (all charged to the
 * cgroup). Measured around 10 MiB for one vCPU; the margin is generous. */
#define CGROUPFS_MEM_MARGIN (32ULL << 20)

/* "No limit" as returned in cgroupfs_limit.bytes. */
#define CGROUPFS_NO_LIMIT UINT64_MAX

struct cgroupfs_limit {
	uint64_t bytes;	 /* the smallest limit on the way to the root, or CGROUPFS_NO_LIMIT */
	char file[4096]; /* the file that sets it ("" when there is none) */
};

/* Find a cgroup mount in mountinfo text: a cgroup v1 hierarchy holding
 * `controller` (e.g. "memory"), or the cgroup2 mount when controller is NULL.
 * Copies its mount point to mnt and the hierarchy path it shows to root
 * ("/" unless bind-mounted from inside). 0, -ENOENT or -ENAMETOOLONG. */
int cgroupfs_find_mount(const char *mountinfo, const char *controller, char *mnt, size_t mntlen,
			char *root, size_t rootlen) WARN_UNUSED;

/* This process's cgroup path from /proc/self/cgroup text: the v1 line whose
 * controller list holds `controller`, or the v2 "0::" line when controller
 * is NULL. 0, -ENOENT or -ENAMETOOLONG. */
int cgroupfs_own_path(const char *proc_cgroup, const char *controller, char *path,
		      size_t len) WARN_UNUSED;

/* The directory of cgroup `path` under a mount of hierarchy path `root` at
 * `mnt`. -ENOENT when the cgroup lies outside what the mount shows. */
int cgroupfs_dir(const char *mnt, const char *root, const char *path, char *out,
		 size_t len) WARN_UNUSED;

/* Read a small text file (a cgroup or /proc file) into buf, NUL-terminated,
 * at most size - 1 bytes. 0 or -errno. */
int cgroupfs_read(const char *path, char *buf, size_t size) WARN_UNUSED;

/* Parse a memory limit file: "max" (v2) or a byte count. 0 or -EINVAL. */
int cgroupfs_parse_limit(const char *text, uint64_t *bytes) WARN_UNUSED;

/* This process's memory limit: v1 memory.limit_in_bytes when the memory
 * controller is on a v1 hierarchy, else v2 memory.max, the smallest from
 * its cgroup up to the mount's root. 0 (bytes is CGROUPFS_NO_LIMIT when
 * nothing limits it), or -errno when /proc or the cgroup mount is not
 * visible, as inside flint-jail's jail. */
int cgroupfs_memory_limit(struct cgroupfs_limit *lim) WARN_UNUSED;

/* Whether guest memory plus CGROUPFS_MEM_MARGIN fits this process's cgroup
 * memory limit. 0 when it fits or no limit is visible; -ENOMEM with the
 * message "guest memory N MiB does not fit the cgroup memory limit M MiB
 * (FILE)..." in err. */
int cgroupfs_check_memory(uint64_t guest_mem, char *err, size_t errlen) WARN_UNUSED;

#endif
