/* Both ends of `flint run --copy-in` and `--copy-out`: a file tree written
 * as a tar stream (pax) and a tar stream extracted, with libarchive. Built
 * into flint (the helper process of runner/cmd/copy.c) and into the static
 * guest agent, so that the two ends follow one set of rules.
 *
 * The stream: every entry's name starts with one top name T, the source's
 * own last component: "T" (a file, a symlink or a directory), then for a
 * directory "T/a", "T/a/b", ... Only regular files, directories and
 * symlinks; no hard links (each link of a file is sent as a file of its
 * own); owners as numbers, no user or group names.
 *
 * Where it lands, by the destination DEST as the user gave it (docker cp's
 * rules, with missing directories made as mkdir -p does):
 *  - DEST an existing directory: DEST/T (with TARCOPY_CONTENTS, the
 *    source DIR/.: T's contents go into DEST itself);
 *  - DEST missing: T becomes DEST (its parent made if missing); with a
 *    trailing "/", DEST is made a directory and T goes into it;
 *  - DEST an existing file (or symlink to one): a file T replaces it; a
 *    directory T is refused, as is a trailing "/".
 *
 * The receiving end trusts nothing in the stream: an entry outside T, a
 * name with an empty, "." or ".." component or starting with "/", a hard
 * link, a device, FIFO or socket, an entry under a T that is not a
 * directory, T itself a second time, more than TARCOPY_MAX_ENTRIES entries, a name or link
 * target of TARCOPY_NAME_MAX bytes or more, a header (with a sparse file's
 * map) of more than TARCOPY_HEADER_MAX bytes, or names and link targets of
 * more than TARCOPY_NAMES_MAX bytes together (what the receiver holds in
 * memory until the end), a link target on an entry that is not a symlink,
 * or files longer together than the receiver's room (tarcopy_io.room:
 * flint's --copy-out-limit; each entry also costs TARCOPY_ENTRY_COST)
 * ends the copy with a message naming it.
 * libarchive extracts with ARCHIVE_EXTRACT_SECURE_NODOTDOT,
 * _SECURE_SYMLINKS and _SECURE_NOABSOLUTEPATHS on top: nothing is written
 * through a symlink, one the stream made itself included (with
 * TARCOPY_SOLE_WRITER into a new top, by the order of the making instead:
 * see there).
 *
 * A stream from a guest (--copy-out) is held to more: its top must be the
 * name that was asked for (a guest cannot send ".git" for "out"), and with
 * TARCOPY_LINKS_INSIDE every symlink it made must lead inside what it
 * copied (for a top that is not a directory, inside the directory it landed
 * in), and to nothing but what it wrote (see the end). Its symlinks are made only once the whole stream is in (none exists
 * while the guest sends, so a flint killed meanwhile leaves none), each
 * only where it would lead inside: one with an absolute target, or one that
 * climbs out with "..", through other links of the stream included, is not
 * made (or is removed), and the copy fails naming it; so
 * is one that leads nowhere yet but has a "..". No entry replaces a
 * symlink already there (an earlier copy's, which links kept then may lead
 * through) but a link to the same target, no directory is made that the
 * stream did not send (ARCHIVE_EXTRACT_NO_AUTODIR). Nothing on the host is
 * then left pointing at the host's own files for a later step to follow.
 * What is already in DEST is the host's: a copy of DIR/. into a directory
 * may overwrite its files, but with TARCOPY_LINKS_INSIDE a link may lead
 * only to what the copy wrote (a file or link it made, a directory it made,
 * or one it sent that was there before and holds nothing else), not to a
 * file of the host's beside it (a checkout's .git/config). */
#ifndef FLINT_TARCOPY_H
#define FLINT_TARCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The bounds may be set at build time: the fuzz harness sets them small so
 * that its streams reach them. */
#ifndef TARCOPY_MAX_ENTRIES
#define TARCOPY_MAX_ENTRIES (1u << 20)
#endif
#ifndef TARCOPY_NAME_MAX
#define TARCOPY_NAME_MAX 4096
#endif
/* All the entries' names and symlink targets together, in bytes. */
#ifndef TARCOPY_NAMES_MAX
#define TARCOPY_NAMES_MAX (128u << 20)
#endif

/* The bytes libarchive may read for one entry's header (pax records, long
 * names, a GNU sparse file's map), which it holds in memory. */
#ifndef TARCOPY_HEADER_MAX
#define TARCOPY_HEADER_MAX (4u << 20)
#endif
/* What each entry costs the room (tarcopy_io.room) besides a file's data:
 * about an inode and a block of the host's file system. */
#define TARCOPY_ENTRY_COST 4096u

/* tarcopy_receive's flags. */
#define TARCOPY_CONTENTS     1u /* the source was DIR/.: its contents into DEST */
#define TARCOPY_KEEP_ALL     2u /* owners, set-id bits and times as sent (run as root) */
#define TARCOPY_LINKS_INSIDE 4u /* symlinks must lead inside the copy (see above) */
#define TARCOPY_NO_SET_ID    8u /* set-id bits dropped, TARCOPY_KEEP_ALL or not */
/* The receiver is the only writer where the copy goes (the guest agent
 * before any command has run in the guest). A top the copy makes itself,
 * not there before (or the directory it makes for DIR/.'s contents), then
 * holds nothing older than the stream: beneath it
 * libarchive's symlink check (_SECURE_SYMLINKS, an lstat, open and close
 * of each directory on each entry's way: half of the receiver's system
 * calls for a source tree) is left out, and the stream's own symlinks are
 * made once its other entries are in, so that none is written through. A
 * top that was there already keeps the check. */
#define TARCOPY_SOLE_WRITER 16u
/* The destination's path is followed through no symlink that someone but
 * root or the user the receiver runs as could have made or changed (one of
 * theirs in a directory of theirs that nobody else may write, as a merged
 * /usr's /bin -> usr/bin, is followed), nor are missing directories made
 * through one (the guest agent once a command has run: a job could have
 * put one in the path to have root write where it may not). */
#define TARCOPY_DEST_NO_LINKS 32u

/* How the stream moves. */
struct tarcopy_io {
	/* tarcopy_receive: points *buf at the stream's next bytes and returns
	 * their count, 0 at its end, or -1 with a reason in msg (msglen
	 * bytes: the other end's own message, say). */
	ssize_t (*read)(void *ctx, const void **buf, char *msg, size_t msglen);
	/* tarcopy_send: all of len bytes, or -1 with a reason in msg. */
	int (*write)(void *ctx, const void *buf, size_t len, char *msg, size_t msglen);
	void *ctx;
	/* tarcopy_receive, optional: the bytes of file data it may still
	 * write, lowered as it writes (calls may share it: a bound on several
	 * streams together). Each file is charged the size its header gives,
	 * before it is made: what lands is that long even when the data is
	 * cut short or sparse (holes). The stream is not trusted to end: a
	 * file that would pass the room ends the copy, the message naming the
	 * entry and room_name (the bound, as the user knows it). NULL: no
	 * bound. */
	uint64_t *room;
	const char *room_name;
	/* tarcopy_receive, optional: whether the copy's time is up. The
	 * symlink check (TARCOPY_LINKS_INSIDE), which reads nothing the
	 * reader could cut off, asks before each link, and removes those
	 * left unchecked once it is. */
	bool (*expired)(void *ctx);
	/* tarcopy_receive as root, optional: the owner every entry (with
	 * TARCOPY_KEEP_ALL) and every directory made on the way to the
	 * destination get, in place of the stream's and root's (the guest's
	 * --user). */
	const struct tarcopy_owner {
		uid_t uid;
		gid_t gid;
	} * owner;
};

/* Write the tree at path (a file, a directory with everything under it, or
 * a symlink, not followed) to io as a tar stream. path "/" is refused;
 * devices, FIFOs and sockets under it are left out (counted in *skipped,
 * which may be NULL). Returns 0, or -1 with a message in err naming what
 * failed. */
int tarcopy_send(const char *path, const struct tarcopy_io *io, unsigned *skipped, char *err,
		 size_t errlen);

/* Extract the tar stream io reads at dest, by the rules above, flags
 * TARCOPY_*. top: the stream's top name it must have (tarcopy_top_of the
 * path asked for), or NULL for any. Without TARCOPY_KEEP_ALL files get the
 * modes sent less the umask and set-id bits, the receiver's owner and the
 * time of the copy. The process's working directory is changed while it
 * works and put back. Returns 0, or -1 with a message in err. */
int tarcopy_receive(const char *dest, unsigned flags, const char *top, const struct tarcopy_io *io,
		    char *err, size_t errlen);

/* The top name tarcopy_send gives path's stream, as far as the path's text
 * tells (trailing slashes and "/." dropped): its last component, in top
 * (NAME_MAX + 1 bytes). -1 when the text does not tell (".", "..", "/").
 * For the receiving end of a copy whose source is elsewhere. */
int tarcopy_top_of(const char *path, char *top);

/* The name an entry of the stream gets beneath the extraction's directory:
 * name (as in the stream, a trailing "/" allowed) must be top or start
 * with "top/"; top's part becomes newtop, or with newtop NULL is dropped.
 * Returns 1 with the name in out, 0 for top itself when newtop is NULL
 * (skip it), or -1 for a name outside top or not clean (see above). */
int tarcopy_map_name(const char *name, const char *top, const char *newtop, char *out,
		     size_t outlen);

#endif
