/* snapfile: a snapshot's state file (issue 12). A header (magic, format
 * version, the file's length and the header's own CRC32), then the flint
 * version that wrote it, the CPU the guest was given (its vendor string
 * and the feature words it saw, an opaque list the caller chooses), the
 * vm_config as JSON (config_json), the sections keyed by component id
 * ("vcpu0", "serial", "block_rootfs": each a blob of wire.h bytes the
 * component encodes and decodes itself) and a CRC32 (zlib) over
 * everything before it.
 *
 * The reader trusts nothing from the file before it is checked: the magic
 * and the format version, then the header's CRC (so the length it gives
 * can be believed), then the length (a shorter file is truncated), then
 * the whole file's CRC, and only then the structure, the config and the
 * section ids. Each refusal says which of these it is. Memory only, but
 * for snap_write_fd, snap_write_file and snap_read_file. */
#ifndef FLINT_SNAPFILE_H
#define FLINT_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vm_config.h"
#include "core/util.h"
#include "core/wire.h"

/* The first 8 bytes of every state file. */
#define SNAP_MAGIC     "FLINTSNP"
#define SNAP_MAGIC_LEN 8
/* The layout this flint writes and the only one it reads. */
#define SNAP_FORMAT_VERSION 1u
/* magic, u32 format version, u64 file length, u32 CRC32 of the 20 bytes
 * before it. */
#define SNAP_HEADER_LEN 24u

/* Limits both sides hold to. */
#define SNAP_MAX_FILE	   (64u << 20) /* snap_read_file's cap */
#define SNAP_MAX_CPU_WORDS 128u
#define SNAP_MAX_SECTIONS  1024u
#define SNAP_MAX_ID	   255u	      /* a section id's bytes */
#define SNAP_MAX_VERSION   63u	      /* the flint version string's bytes */
#define SNAP_MAX_CONFIG	   (1u << 20) /* the vm_config JSON's bytes */

/* One word of what the guest's CPU reports: for x86, CPUID leaf and
 * subleaf, a register index and its value. The file neither knows nor
 * checks what the numbers mean; the caller puts in the words whose bits
 * are features (a host must have every bit set that is set here). */
struct snap_cpu_word {
	uint32_t leaf, subleaf, reg, value;
};

struct snap_cpu {
	char vendor[13]; /* CPUID leaf 0's 12 characters, NUL-terminated */
	unsigned n;
	struct snap_cpu_word w[SNAP_MAX_CPU_WORDS];
};

/* 0 when a guest saved on `saved` can run on `host`: the same vendor, and
 * each saved word's bits all set in the host's word of the same (leaf,
 * subleaf, reg) (a word the host does not list counts as 0). A host with
 * more features is fine. Otherwise -EINVAL and err says the vendors, or
 * the word and the bits the host lacks. */
int snap_cpu_compatible(const struct snap_cpu *saved, const struct snap_cpu *host, char *err,
			size_t errlen) WARN_UNUSED;

/* ---- writing ---- */

struct snap_wsection {
	char *id;
	uint8_t *data;
	size_t len;
};

struct snap_writer {
	struct snap_cpu cpu;
	char *config_json;
	struct snap_wsection *s;
	unsigned n, cap;
};

/* A writer for a VM that runs on cpu with config c: the config is encoded
 * here (and parsed back, so that a file flint could not restore is refused
 * now rather than at restore). Returns 0, -ENOMEM, or -EINVAL with err set
 * (a vendor over 12 characters or not printable ASCII, more than
 * SNAP_MAX_CPU_WORDS words or two for one (leaf, subleaf, reg), a config
 * that does not encode or parse back). On error w holds nothing. */
int snap_writer_init(struct snap_writer *w, const struct snap_cpu *cpu, const struct vm_config *c,
		     char *err, size_t errlen) WARN_UNUSED;

/* Add component id's state: len bytes copied from data. An id is 1 to
 * SNAP_MAX_ID printable ASCII characters other than space, unique in the
 * file. Returns 0, -EINVAL (a bad id), -EEXIST (a second one), -E2BIG (over
 * WIRE_MAX_BLOB, or more than SNAP_MAX_SECTIONS) or -ENOMEM. */
int snap_writer_add(struct snap_writer *w, const char *id, const void *data,
		    size_t len) WARN_UNUSED;

/* The whole file into out (initialised here, freed by the caller with
 * wbuf_free even on error). 0, -ENOMEM or -E2BIG (over SNAP_MAX_FILE). */
int snap_encode(const struct snap_writer *w, struct wbuf *out) WARN_UNUSED;

/* The whole file written to fd from its current offset, short writes and
 * EINTR retried. 0 or -errno. */
int snap_write_fd(const struct snap_writer *w, int fd) WARN_UNUSED;

/* The file at path, atomically: written to "<path>.tmp" in the same
 * directory (a new file, 0600: it holds the guest's registers; a stale
 * one or a symlink at that name is removed first), fsynced, renamed over
 * path, and the directory fsynced. Until the rename an error removes the .tmp file and leaves path
 * as it was; only the directory's fsync can fail after it (path is then
 * the new file, which a crash may yet lose). 0 or -errno (as snap_encode,
 * or from a system call) with err naming the step and the path. */
int snap_write_file(const struct snap_writer *w, const char *path, char *err,
		    size_t errlen) WARN_UNUSED;

void snap_writer_free(struct snap_writer *w);

/* ---- reading ---- */

struct snap_section {
	char id[SNAP_MAX_ID + 1];
	const uint8_t *data; /* into the snap's own copy of the file */
	size_t len;
	bool looked_up; /* snap_section found it */
};

struct snap {
	char flint_version[SNAP_MAX_VERSION + 1];
	struct snap_cpu cpu;
	struct vm_config config;
	unsigned n;
	struct snap_section *s; /* in file order */
	uint8_t *buf;		/* the file, owned */
	size_t len;
};

/* Check and decode a state file of len bytes (copied: buf need not outlive
 * out). out is initialised here. Returns 0 with out filled, or an error
 * with out empty (snap_free is still fine): -EBADMSG, err saying "not a
 * flint snapshot", "truncated at byte N", "corrupt: ..." (a checksum, or a
 * structure that is wrong although its checksum holds: bad lengths,
 * counts over the limits, an empty, bad or duplicate section id);
 * -EPROTONOSUPPORT, "format version N, this flint reads M"; -EINVAL,
 * "vm_config: ..." (config_json_parse_file's refusal); -ENOMEM. */
int snap_read(const uint8_t *buf, size_t len, struct snap *out, char *err,
	      size_t errlen) WARN_UNUSED;

/* snap_read on the file at path (a regular file of at most SNAP_MAX_FILE
 * bytes, read into memory rather than mapped, so that a file truncated
 * under flint is a refusal and not a SIGBUS). err starts with the path.
 * As snap_read, and -errno from open/read, -EFBIG, -EINVAL (not a regular
 * file). */
int snap_read_file(const char *path, struct snap *out, char *err, size_t errlen) WARN_UNUSED;

/* The format version of the state file at path, from its first bytes
 * alone (so that a file this flint cannot read still says which it is):
 * 0 with *version set; -EBADMSG "not a flint snapshot" or "truncated";
 * -errno from open/read. err starts with the path. */
int snap_describe_file(const char *path, uint32_t *version, char *err, size_t errlen) WARN_UNUSED;

/* Section id's bytes: 0 with *data and *len set (the section noted as
 * looked up), or -ENOENT. */
int snap_section(struct snap *s, const char *id, const uint8_t **data, size_t *len) WARN_UNUSED;

/* The id of the first section no snap_section call has found, or NULL:
 * once a restore has taken what it knows, state it left is a file that
 * was not written for this configuration. */
const char *snap_unread(const struct snap *s);

/* Release what snap_read filled; s may be empty (zeroed) or NULL. */
void snap_free(struct snap *s);

#endif
