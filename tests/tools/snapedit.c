/* snapedit: a flint state file made wrong in one way its checksums still
 * cover, for the rig's snapshot scenarios (L1 has no python). Reads the
 * layout snapfile.h describes, changes one section, and writes the file
 * back with its length and both CRCs made again (zlib's crc32).
 *
 *   snapedit IN OUT pad ID    one zero byte more at the end of section ID
 *   snapedit IN OUT add ID    a new last section ID, a copy of the first
 *
 * Exits 0, or 1 with a message (a file it cannot read as one). */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* runner/snapshot/snapfile.c's layout (SNAP_HEADER_LEN, OFF_LENGTH,
 * OFF_HCRC), written out here so that the tool stays one static file: a
 * change there must be made here too. */
#define HEADER_LEN 24u /* magic, u32 format, u64 length, u32 header CRC */

static uint8_t *in;
static size_t in_len, at;

static void die(const char *what)
{
	fprintf(stderr, "snapedit: %s\n", what);
	exit(1);
}

static uint32_t u32_at(size_t off)
{
	uint32_t v;

	if (off > in_len || in_len - off < 4)
		die("truncated");
	memcpy(&v, in + off, 4);
	return le32toh(v);
}

/* Past one u32-counted blob (a string or a section's bytes). */
static size_t skip_blob(void)
{
	size_t n = u32_at(at);

	if (n > in_len - at - 4)
		die("a blob runs past the end");
	at += 4 + n;
	return n;
}

static void put(FILE *f, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, f) != n)
		die("write failed");
}

static void put_u32(FILE *f, uint32_t v)
{
	v = htole32(v);
	put(f, &v, 4);
}

int main(int argc, char **argv)
{
	if (argc != 5 || (strcmp(argv[3], "pad") && strcmp(argv[3], "add")))
		die("usage: snapedit IN OUT pad|add ID");
	const char *id = argv[4];
	int pad = !strcmp(argv[3], "pad");
	FILE *f = fopen(argv[1], "rb");

	if (!f || fseek(f, 0, SEEK_END) || (long)(in_len = (size_t)ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || !(in = malloc(in_len)) || fread(in, 1, in_len, f) != in_len)
		die("cannot read IN");
	fclose(f);
	at = HEADER_LEN;
	skip_blob(); /* flint's version */
	skip_blob(); /* the CPU's vendor */
	at += 4 + 16 * (size_t)u32_at(at);
	skip_blob(); /* the configuration */
	size_t count_at = at;
	uint32_t n = u32_at(at);
	at += 4;

	/* The new file in memory: the sections rewritten, the tail dropped. */
	char *out;
	size_t out_len;
	FILE *o = open_memstream(&out, &out_len);
	size_t first = 0, first_len = 0;
	int found = 0;

	put(o, in, count_at);
	put_u32(o, n + !pad);
	for (uint32_t i = 0; i < n; i++) {
		size_t id_at = at, id_len = skip_blob(), data_at = at, len = skip_blob();
		int this = pad && id_len == strlen(id) && !memcmp(in + id_at + 4, id, id_len);

		if (!i)
			first = data_at + 4, first_len = len;
		put(o, in + id_at, 4 + id_len);
		put_u32(o, (uint32_t)(len + this));
		put(o, in + data_at + 4, len);
		if (this)
			put(o, "", 1);
		found |= this;
	}
	if (pad && !found)
		die("no such section");
	if (!pad) {
		put_u32(o, (uint32_t)strlen(id));
		put(o, id, strlen(id));
		put_u32(o, (uint32_t)first_len);
		put(o, in + first, first_len);
	}
	if (fclose(o))
		die("out of memory");
	uint64_t total = htole64(out_len + 4);
	memcpy(out + 12, &total, 8);
	uint32_t hcrc = htole32((uint32_t)crc32(0, (const Bytef *)out, 20));
	memcpy(out + 20, &hcrc, 4);
	uint32_t all = (uint32_t)crc32(0, (const Bytef *)out, (uInt)out_len);

	if (!(f = fopen(argv[2], "wb")))
		die("cannot write OUT");
	put(f, out, out_len);
	put_u32(f, all);
	if (fclose(f))
		die("cannot write OUT");
	return 0;
}
