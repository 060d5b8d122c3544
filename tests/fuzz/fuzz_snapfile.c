/* libFuzzer harness for runner/snapshot/snapfile.c: the fuzzer writes the
 * state file. Each input is read twice: as a whole file, and as the body
 * of one, framed here with a good header and checksums, so that the
 * fuzzer gets past the CRCs to the structure, the CPU words, the vm_config
 * and the sections. A refusal must come with a message; a file that is
 * accepted must hold what the reader promises (ids printable, non-empty
 * and unique, each found by snap_section, data inside the file), and must
 * write back (the same CPU, config and sections through a writer) and read
 * back to the same. Every read is from a malloc of exactly the input's
 * length, so ASan sees any over-read. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "snapshot/snapfile.h"

static void check_accepted(struct snap *s)
{
	struct snap_writer w;
	struct snap again;
	struct wbuf b;
	char err[512];
	const uint8_t *p;
	size_t n;

	CHECK(s->n <= SNAP_MAX_SECTIONS && s->cpu.n <= SNAP_MAX_CPU_WORDS);
	CHECK(strlen(s->cpu.vendor) <= 12);
	for (unsigned i = 0; i < s->n; i++) {
		const struct snap_section *x = &s->s[i];

		CHECK(x->id[0] && strlen(x->id) <= SNAP_MAX_ID);
		for (const char *c = x->id; *c; c++)
			CHECK(*c > ' ' && *c <= '~');
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(s->s[j].id, x->id));
		CHECK(x->data >= s->buf && x->len <= s->len &&
		      (size_t)(x->data - s->buf) <= s->len - x->len);
		CHECK(snap_section(s, x->id, &p, &n) == 0 && p == x->data && n == x->len);
	}
	CHECK(snap_section(s, "", &p, &n) == -ENOENT);

	/* Written back and read again: the same. */
	CHECK(snap_writer_init(&w, &s->cpu, &s->config, err, sizeof(err)) == 0);
	for (unsigned i = 0; i < s->n; i++)
		CHECK(snap_writer_add(&w, s->s[i].id, s->s[i].data, s->s[i].len) == 0);
	CHECK(snap_encode(&w, &b) == 0);
	snap_writer_free(&w);
	CHECK(snap_read(b.p, b.len, &again, err, sizeof(err)) == 0);
	wbuf_free(&b);
	CHECK(!strcmp(again.cpu.vendor, s->cpu.vendor) && again.cpu.n == s->cpu.n);
	CHECK(!memcmp(again.cpu.w, s->cpu.w, s->cpu.n * sizeof(s->cpu.w[0])));
	CHECK(vm_config_equal(&again.config, &s->config));
	CHECK(again.n == s->n);
	for (unsigned i = 0; i < s->n; i++) {
		CHECK(!strcmp(again.s[i].id, s->s[i].id) && again.s[i].len == s->s[i].len);
		CHECK(!s->s[i].len || !memcmp(again.s[i].data, s->s[i].data, s->s[i].len));
	}
	snap_free(&again);
}

static void read_one(const uint8_t *p, size_t len)
{
	struct snap s;
	char err[512] = "";
	int r = snap_read(p, len, &s, err, sizeof(err));

	if (r < 0) {
		CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EINVAL || r == -ENOMEM);
		CHECK(err[0] && memchr(err, '\0', sizeof(err)));
		CHECK(!s.buf && !s.s && !s.n);
	} else {
		CHECK(r == 0);
		check_accepted(&s);
	}
	snap_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	uint64_t total;
	uint32_t v;

	if (size > (1u << 20))
		return 0;
	p = malloc(size ? size : 1);
	memcpy(p, data, size);
	read_one(p, size);
	free(p);

	/* The input as a body, in a frame snap_read believes. */
	total = SNAP_HEADER_LEN + size + 4;
	p = malloc(total);
	memcpy(p, SNAP_MAGIC, SNAP_MAGIC_LEN);
	v = htole32(SNAP_FORMAT_VERSION);
	memcpy(p + 8, &v, 4);
	total = htole64(total);
	memcpy(p + 12, &total, 8);
	v = htole32((uint32_t)crc32(0, p, 20));
	memcpy(p + 20, &v, 4);
	memcpy(p + SNAP_HEADER_LEN, data, size);
	v = htole32((uint32_t)crc32(0, p, SNAP_HEADER_LEN + size));
	memcpy(p + SNAP_HEADER_LEN + size, &v, 4);
	read_one(p, SNAP_HEADER_LEN + size + 4);
	free(p);
	return 0;
}
