/* The copy-ins' tar streams, made ahead: a thread archives the sources
 * (tarcopy_send), one after the other, into a ring of bytes from the
 * moment it starts, and the copy takes each stream out of the ring once
 * there is somewhere to send it.
 *
 * Why: `flint run --copy-in` can only send once the guest agent is up, but
 * the host's side of the work (walking the tree, reading every file) does
 * not need the guest. Started with the VM, the archiving overlaps the
 * guest's boot, and a workspace that fits in the ring is all in memory by
 * the time the agent asks for it. A larger one fills the ring and the
 * archiver waits for room: memory stays bounded, and the rest streams as
 * it is read.
 *
 * Each stream is the one tarcopy_send would write at the moment its
 * archiving ran: the tree as it was then (while the guest booted), not
 * when the agent became ready; past the ring's size, as it is sent.
 *
 * The archiver walks the trees with libarchive, which changes the
 * process's working directory as it goes (fchdir) and puts it back at the
 * end: while it runs, no other thread of the process may use a relative
 * path. */
#ifndef FLINT_SPOOL_H
#define FLINT_SPOOL_H

#include <stddef.h>

#include "agent/tarcopy.h"
#include "core/util.h"

/* The ring flint run's copy helper uses: a workspace of this much tar is
 * archived whole while the guest boots. */
#define SPOOL_RING_SIZE (8u << 20)

struct spool;

/* Start the archiver on paths[0..n-1] (each as tarcopy_send takes it) with
 * a ring of ring_size bytes (mapped, its pages touched as they fill).
 * paths must live until spool_end. Returns 0 or -errno. */
int spool_start(struct spool **out, const char *const *paths, unsigned n,
		size_t ring_size) WARN_UNUSED;

/* Path i's stream, handed to io->write in pieces of at most max bytes as
 * the archiver makes them. Streams are taken in order, each once, by one
 * thread (the one that calls spool_end): i is the next one. Returns 0 once
 * the whole stream went, or -1 with err set: the archiver's message when
 * archiving failed (what went before it was written), or write's when
 * writing failed. After -1 no later stream can be taken; spool_end. */
int spool_send(struct spool *s, unsigned i, const struct tarcopy_io *io, size_t max, char *err,
	       size_t errlen) WARN_UNUSED;

/* How many bytes the archiver has made so far, all streams together. */
size_t spool_made(struct spool *s);

/* Stop the archiver (it gives up at its next write), wait for it (a read
 * of a file it is in finishes first), free. NULL ok. */
void spool_end(struct spool *s);

#endif
