/* The host end of `--net user`: a passt process (Debian package passt),
 * which gives the guest rootless networking through ordinary sockets of the
 * host, and speaks QEMU's stream protocol (stream.h) on a Unix socket.
 *
 * flint starts passt itself, before any seccomp filter is on, on one end
 * of a socket pair (passt --fd), in the foreground and in a process group
 * of its own (a terminal's ^C is flint's to handle). passt quits once the
 * socket closes (--fd implies --one-off), which happens when flint closes
 * it or dies, however it dies; PR_SET_PDEATHSIG is set too, for a passt
 * that keeps flint's uid (a passt started as root changes to nobody, which
 * clears it). passt is ready when it answers an ARP request for the
 * gateway on the socket: its configuration failed if it exits first, and
 * flint then prints what it said (its stderr goes to a memfd until then,
 * so a passt that works says nothing). */
#ifndef FLINT_PASST_H
#define FLINT_PASST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/* The guest's side of the network passt makes: fixed addresses (QEMU's
 * user networking's), so that flint can put them on the guest's kernel
 * command line and a guest restored from a snapshot finds the network it
 * had with a new passt. The gateway reaches the host's loopback (passt's
 * gateway mapping); queries to dns go to the host's first resolver. */
struct passt_net {
	const char *addr;    /* the guest's IPv4 address */
	unsigned prefix;     /* its network's prefix length */
	const char *gateway; /* passt's end */
	const char *dns;     /* passt's DNS forwarder */
};

/* The passt binary: $FLINT_PASST if set, else passt in $PATH, as an
 * executable path in buf (len bytes). 0, or -ENOENT with an error logged
 * naming it and the package. */
int passt_find(char *buf, size_t len) WARN_UNUSED;

/* Start passt for interface id on a new socket pair with the addresses of
 * net, and wait (up to timeout_ms) until it answers. *fd is flint's end
 * (AF_UNIX SOCK_STREAM, non-blocking, close-on-exec), *pid passt's. The
 * ARP reply is read and dropped: the stream starts clean at a frame. On
 * failure nothing is left running, *fd is -1, and the error is logged
 * naming passt (and what it printed). Returns 0 or -errno. */
int passt_start(const char *id, const struct passt_net *net, unsigned timeout_ms, int *fd,
		pid_t *pid) WARN_UNUSED;

/* How passt_start_as runs passt, for a launcher (flint-jail) that starts
 * it on flint's behalf. */
struct passt_child {
	/* Called in the child before passt's descriptors move into place
	 * (the hook's own may be among 0-3), then exec follows (the caller
	 * is single-threaded: it may do more than async-signal-safe calls):
	 * join a network namespace, drop to the jail's user. 0, or -errno to give up (passt is not
	 * run). With it, passt gets no --runas: the hook chose its ids. */
	int (*setup)(void *ctx);
	void *ctx;
	/* No PR_SET_PDEATHSIG: the caller exits before flint does (flint-jail
	 * --daemonize's parent); passt still ends with its socket. */
	bool no_deathsig;
};

/* passt_start, with c's hook and choices (NULL: passt_start's). */
int passt_start_as(const char *id, const struct passt_net *net, unsigned timeout_ms,
		   const struct passt_child *c, int *fd, pid_t *pid) WARN_UNUSED;

/* --net user,fd=N: take over fd, passt's end of a socket pair that
 * whoever started passt (flint-jail) passed on, ready (its ARP probe
 * answered, the stream at a frame's start). Checked to be a Unix stream
 * socket, made non-blocking and close-on-exec. 0, or -errno with an error
 * logged naming id and fd (which is then left alone). */
int passt_adopt(const char *id, int fd) WARN_UNUSED;

/* The ARP request passt_start sends (for tests): from the guest's address
 * to the gateway's, from a locally administered MAC, in buf (at least 42
 * bytes). Returns its length, 0 for an address that is not IPv4. */
size_t passt_arp_probe(const struct passt_net *net, uint8_t *buf, size_t len);

#endif
