/* uffd: the Uffd memory backend (issue 12), Firecracker's protocol exactly,
 * so that a page-fault handler written for Firecracker serves flint too.
 *
 * The restoring VMM maps guest RAM anonymous and untouched, registers each
 * region with a new userfaultfd (MISSING mode, UFFD_FEATURE_EVENT_REMOVE
 * asked for, the fd close-on-exec and non-blocking), connects to the
 * handler's Unix stream socket and sends, in one sendmsg(), the region list
 * as JSON with the userfaultfd as SCM_RIGHTS. Nothing else is ever sent on
 * that connection; the VMM keeps it open for the VM's life, so its hang-up
 * tells the handler the VM is gone (the userfaultfd itself never says so:
 * poll() on it reports nothing when the VM's process exits). The list is a
 * JSON array with one object per region, in the order of the regions:
 *
 *   [{"base_host_virt_addr":140188750000128,"size":134217728,"offset":0,
 *     "page_size":4096,"page_size_kib":4096}]
 *
 * base_host_virt_addr: where the region is mapped in the VMM; size: its
 * bytes; offset: where its contents start in the memory file (the regions'
 * concatenation: gmem_snap.h); page_size: the bytes of the pages backing
 * it (4096, or 2 MiB with huge pages), the unit a handler copies in;
 * page_size_kib: the same number in bytes (Firecracker's older name for
 * the field, kept by Firecracker as a deprecated copy until its 2.0: it was
 * never KiB). serde's compact form, which jansson's JSON_COMPACT writes
 * byte for byte. The handler then answers each UFFD_EVENT_PAGEFAULT with
 * UFFDIO_COPY (or UFFDIO_ZEROPAGE), and each UFFD_EVENT_REMOVE (a range
 * madvise(MADV_DONTNEED)'d by the VMM) by serving that range as zeros from
 * then on.
 *
 * The parser and the fd passing are shared with tests/tools/flint-uffd.c,
 * flint's own handler. */
#ifndef FLINT_UFFD_H
#define FLINT_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gmem.h"
#include "core/util.h"

/* The most regions uffd_regions_parse takes (flint sends at most
 * UFFD_GMEM_REGIONS; Firecracker a few more with memory hotplug). */
#define UFFD_MAX_REGIONS 32
/* The largest region list a handler reads (uffd_recv's buffer): 32 regions
 * take about 4 KiB. */
#define UFFD_MAX_MSG 65536

/* One object of the list, as sent. */
struct uffd_region {
	uint64_t base;	    /* base_host_virt_addr */
	uint64_t size;	    /* bytes */
	uint64_t offset;    /* in the memory file */
	uint64_t page_size; /* bytes */
};

/* The most regions flint sends: RAM's and the hot-plug region. */
#define UFFD_GMEM_REGIONS (GMEM_MAX_REGIONS + 1)

/* The regions of g as the list describes them: g's mappings, the file
 * offsets of layout l (which must be g's: the same regions in the same
 * order, and the same hot-plug region, else -EINVAL with err saying which
 * differs), g's page size; then g's hot-plug region, if any (all of it,
 * plugged or not, in pages of 4 KiB: a handler serves its unplugged
 * blocks' holes as zeros, and gets UFFD_EVENT_REMOVE for a block the
 * guest unplugs). *n gets the count (at most UFFD_GMEM_REGIONS entries of
 * r are written). */
int uffd_regions_of(const struct gmem *g, const struct gmem_layout *l, struct uffd_region *r,
		    size_t *n, char *err, size_t errlen) WARN_UNUSED;

/* The JSON list of r[0..n) (the format above), NUL-terminated, in *out
 * (malloc'd, the caller frees). -EOVERFLOW for a value JSON's integers
 * cannot hold (over 2^63 - 1), -ENOMEM. */
int uffd_regions_encode(const struct uffd_region *r, size_t n, char **out) WARN_UNUSED;

/* Parse and check a region list (buf, len bytes, NUL not needed) into
 * r[0..max), *n the count. Trusts nothing: a JSON array of 1..max objects;
 * each with base_host_virt_addr, size, offset and page_size as integers
 * from 0 to 2^63 - 1 (page_size may be missing when page_size_kib, an
 * older sender's name, is there: it is read as bytes; both there must
 * agree); page_size a power of two from 4 KiB to 1 GiB; base, size and
 * offset multiples of it; size not 0; neither base + size nor offset +
 * size past 2^64; no two regions overlapping in the VMM's memory or in
 * the file. Other fields are ignored (a newer sender's). 0, or -EINVAL
 * with err naming the region and field (-EBADMSG for text jansson does
 * not take: not JSON, a duplicate key, an integer past 2^63 - 1; -E2BIG
 * for more than max regions); *n is then 0 and r undefined. */
int uffd_regions_parse(const char *buf, size_t len, struct uffd_region *r, size_t max, size_t *n,
		       char *err, size_t errlen) WARN_UNUSED;

/* The region of r[0..n) holding host address addr, or NULL. */
const struct uffd_region *uffd_region_find(const struct uffd_region *r, size_t n, uint64_t addr);

/* Send msg (len >= 1 bytes) on the connected stream socket sock with fd
 * attached as SCM_RIGHTS (it travels with the first byte; a short send's
 * rest follows plainly). The caller keeps fd. 0 or -errno (no SIGPIPE:
 * -EPIPE when the peer is gone). */
int uffd_send(int sock, const void *msg, size_t len, int fd) WARN_UNUSED;

/* Receive one message of at most cap bytes and the one fd that came with
 * it (close-on-exec) from sock: *len bytes into buf and the fd in *fd, 0.
 * -ENOMSG when no fd came with the bytes, -EPROTO when more than one did
 * (all are closed: a sender of Firecracker's guest_memfd variant),
 * -ECONNRESET when the peer closed first, -errno from recvmsg (-EAGAIN
 * when a receive timeout set on sock passed). *fd is -1 on failure. */
int uffd_recv(int sock, void *buf, size_t cap, size_t *len, int *fd) WARN_UNUSED;

/* A new userfaultfd (close-on-exec, non-blocking) with the API handshake
 * done, UFFD_FEATURE_EVENT_REMOVE enabled. Not restricted to user-mode
 * faults (KVM touches guest memory from the kernel), so it needs
 * CAP_SYS_PTRACE, vm.unprivileged_userfaultfd = 1 or, failing those, read
 * and write access to /dev/userfaultfd (Linux 6.1+), which is tried next.
 * 0 or -errno with err saying why (-EPERM: none of those). */
int uffd_create(int *uffd, char *err, size_t errlen) WARN_UNUSED;

/* An open Uffd backend: the userfaultfd and the connection to the
 * handler. Both -1 when closed. */
struct uffd_backend {
	int uffd;
	int conn;
};

/* Register g's regions (anonymous, private, not yet touched: a page
 * already there would never fault and keep the zeros it holds instead of
 * the file's data, so g is refused with -EBUSY if one is) with a new
 * userfaultfd (uffd_create) in MISSING mode, connect to the Unix stream
 * socket at sock_path and send the region list of layout l
 * (uffd_regions_of) with the userfaultfd. On success b holds both fds:
 * the VMM keeps them for the VM's life (closing the connection tells the
 * handler the VM is gone), and g is marked lazy (gmem_set_lazy: a full
 * snapshot reads every page). 0 or -errno with err naming the step: the
 * layout, userfaultfd unavailable, registering region i, no handler at
 * sock_path (-ENOENT, -ECONNREFUSED), sending. On failure nothing stays
 * registered and b holds -1s. Guest memory must not be touched before the
 * handler has the fd: a touch waits until it serves the page. */
int uffd_backend_open(struct gmem *g, const struct gmem_layout *l, const char *sock_path,
		      struct uffd_backend *b, char *err, size_t errlen) WARN_UNUSED;
/* Whether the handler has hung up the connection conn (a poll that does
 * not wait). */
bool uffd_handler_gone(int conn);

/* Wake every thread waiting on a fault in g's regions (the hot-plug one
 * too): each faults again, a new event, for whoever reads uffd now (a
 * handler that read the first one may have died before answering it).
 * 0 or -errno. */
int uffd_wake_all(int uffd, const struct gmem *g) WARN_UNUSED;

/* Make uffd non-blocking again: the flag belongs to the open file, which
 * the handler shares and may have changed (a blocking userfaultfd's poll
 * says POLLERR at once, and its read waits for an event). F_SETFL also
 * drops O_ASYNC. 0 or -errno. */
int uffd_nonblock(int uffd) WARN_UNUSED;

/* Once the handler is gone, nobody else reads uffd: read its next event
 * here (made non-blocking first: uffd_nonblock). 1 when it is a page fault, on g's guest
 * memory, that nothing can answer now: the thread that touched the page
 * (a vCPU, a device) waits for ever; why (len bytes) names the page's
 * guest-physical address. 0 for no event, or one that needs no answer (a
 * range removed, UFFD_EVENT_REMOVE: its remover goes on once it is read).
 * -errno when uffd cannot be read. */
int uffd_orphan_event(int uffd, const struct gmem *g, char *why, size_t len) WARN_UNUSED;

/* Close both fds (NULL or closed ok): after gmem_destroy, or at least
 * once guest memory is no longer touched (the handler may go as soon as
 * the connection closes). */
void uffd_backend_close(struct uffd_backend *b);

#endif
