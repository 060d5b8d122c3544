#include "snapshot/snapfile.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config/config_json.h"
#include "core/version.h"

_Static_assert(sizeof(FLINT_VERSION) <= SNAP_MAX_VERSION + 1, "FLINT_VERSION too long");

/* Where the header's fields are. */
#define OFF_FORMAT 8
#define OFF_LENGTH 12
#define OFF_HCRC   20
#define CRC_LEN	   4u

static uint32_t crc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), p, n);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* n bytes of ASCII from '!' (or ' ' when space) to '~': what a section id
 * and the strings of the header may hold, so that a message may quote them. */
static bool printable(const char *s, size_t n, bool space)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < (space ? ' ' : '!') || s[i] > '~')
			return false;
	return true;
}

static bool same_word(const struct snap_cpu_word *a, const struct snap_cpu_word *b)
{
	return a->leaf == b->leaf && a->subleaf == b->subleaf && a->reg == b->reg;
}

/* The checks both the writer and the reader hold a CPU to. */
static int cpu_check(const struct snap_cpu *c, char *err, size_t errlen)
{
	size_t vlen = strnlen(c->vendor, sizeof(c->vendor));

	if (vlen == sizeof(c->vendor) || !printable(c->vendor, vlen, true))
		return err_set(err, errlen, -EINVAL,
			       "CPU vendor is not up to 12 printable characters");
	if (c->n > SNAP_MAX_CPU_WORDS)
		return err_set(err, errlen, -EINVAL, "%u CPU words, at most %u", c->n,
			       SNAP_MAX_CPU_WORDS);
	for (unsigned i = 0; i < c->n; i++)
		for (unsigned j = 0; j < i; j++)
			if (same_word(&c->w[i], &c->w[j]))
				return err_set(err, errlen, -EINVAL,
					       "CPU word leaf 0x%x subleaf 0x%x register %u twice",
					       c->w[i].leaf, c->w[i].subleaf, c->w[i].reg);
	return 0;
}

int snap_cpu_compatible(const struct snap_cpu *saved, const struct snap_cpu *host, char *err,
			size_t errlen)
{
	if (saved->n > SNAP_MAX_CPU_WORDS || host->n > SNAP_MAX_CPU_WORDS)
		return err_set(err, errlen, -EINVAL, "too many CPU words");
	if (strncmp(saved->vendor, host->vendor, sizeof(saved->vendor)))
		return err_set(err, errlen, -EINVAL,
			       "the snapshot's CPU is '%.12s', this host's is '%.12s'",
			       saved->vendor, host->vendor);
	for (unsigned i = 0; i < saved->n; i++) {
		const struct snap_cpu_word *s = &saved->w[i];
		uint32_t have = 0;

		for (unsigned j = 0; j < host->n; j++)
			if (same_word(s, &host->w[j]))
				have = host->w[j].value;
		if (s->value & ~have)
			return err_set(
			    err, errlen, -EINVAL,
			    "this host's CPU lacks features the snapshot's guest was given: "
			    "leaf 0x%x subleaf 0x%x register %u bits 0x%08x",
			    s->leaf, s->subleaf, s->reg, s->value & ~have);
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

int snap_writer_init(struct snap_writer *w, const struct snap_cpu *cpu, const struct vm_config *c,
		     char *err, size_t errlen)
{
	struct vm_config back;
	char why[512];
	int r;

	*w = (struct snap_writer){0};
	if ((r = cpu_check(cpu, why, sizeof(why))) < 0)
		return err_set(err, errlen, r, "snapshot: %s", why);
	/* NULL: out of memory, or a path that is not UTF-8 (JSON cannot hold
	 * it); the API's paths all came from JSON, so the first is likely. */
	if (!(w->config_json = config_json_encode(c, false)))
		return err_set(
		    err, errlen, -ENOMEM,
		    "snapshot: vm_config cannot be encoded (out of memory or not UTF-8)");
	if (strlen(w->config_json) > SNAP_MAX_CONFIG) {
		r = err_set(err, errlen, -EINVAL, "snapshot: vm_config over %u bytes as JSON",
			    SNAP_MAX_CONFIG);
		goto err_json;
	}
	r = config_json_parse_file(w->config_json, strlen(w->config_json), &back, why, sizeof(why));
	if (r < 0) {
		r = err_set(err, errlen, r, "snapshot: vm_config would not restore: %s", why);
		goto err_json;
	}
	vm_config_free(&back);
	w->cpu = *cpu;
	return 0;

err_json:
	free(w->config_json);
	w->config_json = NULL;
	return r;
}

static bool id_ok(const char *id, size_t n)
{
	return n > 0 && n <= SNAP_MAX_ID && printable(id, n, false);
}

int snap_writer_add(struct snap_writer *w, const char *id, const void *data, size_t len)
{
	struct snap_wsection s = {0};

	if (!id || !id_ok(id, strnlen(id, SNAP_MAX_ID + 1)))
		return -EINVAL;
	for (unsigned i = 0; i < w->n; i++)
		if (!strcmp(w->s[i].id, id))
			return -EEXIST;
	if (len > WIRE_MAX_BLOB || w->n >= SNAP_MAX_SECTIONS)
		return -E2BIG;
	if (w->n == w->cap) {
		unsigned cap = w->cap ? 2 * w->cap : 16;
		struct snap_wsection *p = realloc(w->s, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		w->s = p;
		w->cap = cap;
	}
	if (!(s.id = strdup(id)) || (len && !(s.data = malloc(len)))) {
		free(s.id);
		return -ENOMEM;
	}
	if (len)
		memcpy(s.data, data, len);
	s.len = len;
	w->s[w->n++] = s;
	return 0;
}

int snap_encode(const struct snap_writer *w, struct wbuf *out)
{
	uint64_t total;
	uint32_t v32;
	int r;

	wbuf_init(out);
	wput_bytes(out, SNAP_MAGIC, SNAP_MAGIC_LEN);
	wput_u32(out, SNAP_FORMAT_VERSION);
	wput_u64(out, 0); /* the length and the header's CRC, once known */
	wput_u32(out, 0);
	wput_str(out, FLINT_VERSION);
	wput_str(out, w->cpu.vendor);
	wput_u32(out, w->cpu.n);
	for (unsigned i = 0; i < w->cpu.n; i++) {
		wput_u32(out, w->cpu.w[i].leaf);
		wput_u32(out, w->cpu.w[i].subleaf);
		wput_u32(out, w->cpu.w[i].reg);
		wput_u32(out, w->cpu.w[i].value);
	}
	wput_str(out, w->config_json ? w->config_json : "");
	wput_u32(out, w->n);
	for (unsigned i = 0; i < w->n; i++) {
		wput_str(out, w->s[i].id);
		wput_blob(out, w->s[i].data, w->s[i].len);
	}
	if ((r = wbuf_err(out)) < 0)
		return r;
	total = (uint64_t)out->len + CRC_LEN;
	if (total > SNAP_MAX_FILE)
		return -E2BIG;
	total = htole64(total);
	memcpy(out->p + OFF_LENGTH, &total, sizeof(total));
	v32 = htole32(crc(out->p, OFF_HCRC));
	memcpy(out->p + OFF_HCRC, &v32, sizeof(v32));
	wput_u32(out, crc(out->p, out->len));
	return wbuf_err(out);
}

int snap_write_fd(const struct snap_writer *w, int fd)
{
	struct wbuf b;
	int r = snap_encode(w, &b);

	if (r == 0)
		r = write_full(fd, b.p, b.len);
	wbuf_free(&b);
	return r;
}

int snap_write_file(const struct snap_writer *w, const char *path, char *err, size_t errlen)
{
	struct wbuf b;
	int r;

	if ((r = snap_encode(w, &b)) < 0)
		r = err_set(err, errlen, r, "snapshot %s: encoding: %s", path, strerror(-r));
	else
		r = write_file_atomic("snapshot", path, b.p, b.len, err, errlen);
	wbuf_free(&b);
	return r;
}

void snap_writer_free(struct snap_writer *w)
{
	if (!w)
		return;
	for (unsigned i = 0; i < w->n; i++) {
		free(w->s[i].id);
		free(w->s[i].data);
	}
	free(w->s);
	free(w->config_json);
	*w = (struct snap_writer){0};
}

/* ---- reading ------------------------------------------------------------- */

/* The checks that need nothing from the file but fixed offsets, each field
 * believed only once the one before it held: magic, format version, the
 * header's CRC (which covers the length), the length, the whole CRC.
 * 0 when buf holds exactly one checksummed state file. */
static int check_frame(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	uint32_t v, want;
	uint64_t total;

	if (memcmp(buf, SNAP_MAGIC, len < SNAP_MAGIC_LEN ? len : SNAP_MAGIC_LEN))
		return err_set(err, errlen, -EBADMSG, "not a flint snapshot");
	if (len < OFF_FORMAT + 4)
		goto truncated;
	if ((v = le32_at(buf + OFF_FORMAT)) != SNAP_FORMAT_VERSION)
		return err_set(err, errlen, -EPROTONOSUPPORT,
			       "format version %u, this flint reads %u", v, SNAP_FORMAT_VERSION);
	if (len < SNAP_HEADER_LEN)
		goto truncated;
	if ((v = le32_at(buf + OFF_HCRC)) != (want = crc(buf, OFF_HCRC)))
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: header checksum 0x%08x, its bytes give 0x%08x", v, want);
	total = le64_at(buf + OFF_LENGTH);
	if (total < SNAP_HEADER_LEN + CRC_LEN || total > SNAP_MAX_FILE)
		return err_set(err, errlen, -EBADMSG, "corrupt: a length of %llu bytes",
			       (unsigned long long)total);
	if (len < total)
		return err_set(err, errlen, -EBADMSG, "truncated at byte %zu of %llu", len,
			       (unsigned long long)total);
	if (len > total)
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: %zu bytes long, its header says %llu", len,
			       (unsigned long long)total);
	if ((v = le32_at(buf + len - CRC_LEN)) != (want = crc(buf, len - CRC_LEN)))
		return err_set(err, errlen, -EBADMSG,
			       "corrupt: checksum 0x%08x, its bytes give 0x%08x", v, want);
	return 0;

truncated:
	return err_set(err, errlen, -EBADMSG, "truncated at byte %zu (in the %u-byte header)", len,
		       SNAP_HEADER_LEN);
}

/* A string of at most max printable bytes into out (max + 1 bytes): 0,
 * -EBADMSG when the input ends or the length is over max, -EINVAL when a
 * byte is not printable. */
static int get_str(struct rbuf *r, char *out, size_t max, bool space)
{
	size_t n;
	const uint8_t *p = rget_blob(r, &n, max);

	if (rbuf_err(r))
		return -EBADMSG;
	if (!printable((const char *)p, n, space))
		return -EINVAL;
	if (n)
		memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* The structure of out->buf, checksum already checked; then the config. */
static int decode(struct snap *out, char *err, size_t errlen)
{
	struct rbuf r;
	const uint8_t *json;
	size_t json_len;
	char why[512];
	int ret;

	rbuf_init(&r, out->buf + SNAP_HEADER_LEN, out->len - SNAP_HEADER_LEN - CRC_LEN);
	if (get_str(&r, out->flint_version, SNAP_MAX_VERSION, true) < 0)
		return err_set(err, errlen, -EBADMSG, "corrupt: the flint version");
	if (get_str(&r, out->cpu.vendor, sizeof(out->cpu.vendor) - 1, true) < 0)
		return err_set(err, errlen, -EBADMSG, "corrupt: the CPU vendor");
	out->cpu.n = rget_u32(&r);
	if (out->cpu.n > SNAP_MAX_CPU_WORDS)
		return err_set(err, errlen, -EBADMSG, "corrupt: %u CPU words, at most %u",
			       out->cpu.n, SNAP_MAX_CPU_WORDS);
	for (unsigned i = 0; i < out->cpu.n; i++) {
		out->cpu.w[i].leaf = rget_u32(&r);
		out->cpu.w[i].subleaf = rget_u32(&r);
		out->cpu.w[i].reg = rget_u32(&r);
		out->cpu.w[i].value = rget_u32(&r);
	}
	if ((ret = cpu_check(&out->cpu, why, sizeof(why))) < 0)
		return err_set(err, errlen, -EBADMSG, "corrupt: %s", why);
	json = rget_blob(&r, &json_len, SNAP_MAX_CONFIG);
	out->n = rget_u32(&r);
	if (rbuf_err(&r))
		return err_set(err, errlen, -EBADMSG, "corrupt: it ends early (byte %zu)",
			       SNAP_HEADER_LEN + r.off);
	if (out->n > SNAP_MAX_SECTIONS)
		return err_set(err, errlen, -EBADMSG, "corrupt: %u sections, at most %u", out->n,
			       SNAP_MAX_SECTIONS);
	if (out->n && !(out->s = calloc(out->n, sizeof(*out->s))))
		return -ENOMEM;
	for (unsigned i = 0; i < out->n; i++) {
		struct snap_section *s = &out->s[i];

		if ((ret = get_str(&r, s->id, SNAP_MAX_ID, false)) < 0 || !s->id[0])
			return err_set(err, errlen, -EBADMSG, "corrupt: section %u: %s id", i,
				       ret == -EBADMSG	? "a bad length for its"
				       : ret == -EINVAL ? "an unprintable"
							: "an empty");
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(out->s[j].id, s->id))
				return err_set(err, errlen, -EBADMSG,
					       "corrupt: section id '%s' twice", s->id);
		s->data = rget_blob(&r, &s->len, WIRE_MAX_BLOB);
		if (rbuf_err(&r))
			return err_set(err, errlen, -EBADMSG, "corrupt: section '%s': a bad length",
				       s->id);
	}
	if (!rbuf_done(&r))
		return err_set(err, errlen, -EBADMSG, "corrupt: %zu bytes after the last section",
			       r.len - r.off);
	ret = config_json_parse_file((const char *)json, json_len, &out->config, why, sizeof(why));
	/* A member this flint does not know (a newer flint's section) would be
	 * dropped unsaid: refused, as a config file's is not. */
	if (ret > 0) {
		vm_config_free(&out->config);
		ret = -EINVAL;
	}
	if (ret < 0)
		return err_set(err, errlen, ret, "vm_config: %s", why);
	/* A descriptor of the saving flint's means nothing here. */
	for (unsigned i = 0; i < out->config.nnets; i++)
		out->config.nets[i].fd = 0;
	return 0;
}

/* Check buf and decode it, taking it when own (out->buf is then buf, even
 * on error, for snap_free). */
static int read_buf(uint8_t *buf, size_t len, bool own, struct snap *out, char *err, size_t errlen)
{
	int r;

	*out = (struct snap){0};
	vm_config_init(&out->config);
	if (own) {
		out->buf = buf;
		out->len = len;
	}
	if ((r = check_frame(buf, len, err, errlen)) < 0)
		goto err;
	if (!own) {
		if (!(out->buf = malloc(len))) {
			r = err_set(err, errlen, -ENOMEM, "out of memory");
			goto err;
		}
		memcpy(out->buf, buf, len);
		out->len = len;
	}
	if ((r = decode(out, err, errlen)) < 0)
		goto err;
	return 0;

err:
	snap_free(out);
	return r;
}

int snap_read(const uint8_t *buf, size_t len, struct snap *out, char *err, size_t errlen)
{
	return read_buf((uint8_t *)buf, len, false, out, err, errlen);
}

/* The state file at path, opened for reading: a regular file (open_regular),
 * or an error naming it. */
static int open_snapshot(const char *path, struct stat *st, char *err, size_t errlen)
{
	int fd = open_regular(path, O_RDONLY, st);

	return fd < 0 ? err_set(err, errlen, fd, "snapshot %s: %s", path, file_strerror(fd)) : fd;
}

int snap_describe_file(const char *path, uint32_t *version, char *err, size_t errlen)
{
	uint8_t head[OFF_FORMAT + 4];
	size_t len = 0;
	int fd, r = 0;

	if ((fd = open_snapshot(path, NULL, err, errlen)) < 0)
		return fd;
	while (len < sizeof(head)) {
		ssize_t k = read(fd, head + len, sizeof(head) - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = err_set(err, errlen, -errno, "snapshot %s: %m", path);
		if (k <= 0)
			break;
		len += k;
	}
	close(fd);
	if (r < 0)
		return r;
	if (len < SNAP_MAGIC_LEN || memcmp(head, SNAP_MAGIC, SNAP_MAGIC_LEN))
		return err_set(err, errlen, -EBADMSG, "snapshot %s: not a flint snapshot", path);
	if (len < sizeof(head))
		return err_set(err, errlen, -EBADMSG,
			       "snapshot %s: truncated at byte %zu (in the %u-byte header)", path,
			       len, SNAP_HEADER_LEN);
	*version = le32_at(head + OFF_FORMAT);
	return 0;
}

int snap_read_file(const char *path, struct snap *out, char *err, size_t errlen)
{
	char why[512];
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0, cap;
	int fd = -1, r;

	*out = (struct snap){0};
	vm_config_init(&out->config);
	if ((fd = open_snapshot(path, &st, err, errlen)) < 0)
		return fd;
	if ((uint64_t)st.st_size > SNAP_MAX_FILE) {
		r = err_set(err, errlen, -EFBIG, "snapshot %s: over %u MiB", path,
			    SNAP_MAX_FILE >> 20);
		goto out;
	}
	/* One byte more than its size, to see it grew: read to the end. */
	cap = st.st_size + 1;
	if (!(buf = malloc(cap))) {
		r = err_set(err, errlen, -ENOMEM, "snapshot %s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf + len, cap - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = err_set(err, errlen, -errno, "snapshot %s: %m", path);
			goto out;
		}
		if (k == 0)
			break;
		len += k;
		if (len == cap) {
			uint8_t *p;

			if (cap > SNAP_MAX_FILE) {
				r = err_set(err, errlen, -EFBIG, "snapshot %s: over %u MiB", path,
					    SNAP_MAX_FILE >> 20);
				goto out;
			}
			cap = cap * 2 > (size_t)SNAP_MAX_FILE + 1 ? (size_t)SNAP_MAX_FILE + 1
								  : cap * 2;
			if (!(p = realloc(buf, cap))) {
				r = err_set(err, errlen, -ENOMEM, "snapshot %s: out of memory",
					    path);
				goto out;
			}
			buf = p;
		}
	}
	r = read_buf(buf, len, true, out, why, sizeof(why));
	buf = NULL; /* out's now, or freed */
	if (r < 0)
		err_set(err, errlen, r, "snapshot %s: %s", path, why);
out:
	free(buf);
	close_fd(&fd);
	return r;
}

int snap_section(struct snap *s, const char *id, const uint8_t **data, size_t *len)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->s[i].id, id)) {
			*data = s->s[i].data;
			*len = s->s[i].len;
			s->s[i].looked_up = true;
			return 0;
		}
	return -ENOENT;
}

const char *snap_unread(const struct snap *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!s->s[i].looked_up)
			return s->s[i].id;
	return NULL;
}

void snap_free(struct snap *s)
{
	if (!s)
		return;
	vm_config_free(&s->config);
	free(s->s);
	free(s->buf);
	*s = (struct snap){0};
	vm_config_init(&s->config);
}
