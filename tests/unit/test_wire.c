/* wire: what is written reads back the same, little-endian; a short or
 * corrupt input fails once, gives zeros and never reads past its end. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"

Test(wire, round_trip)
{
	struct wbuf w;
	struct rbuf r;
	uint8_t rec[5] = {1, 2, 3, 4, 5}, back[5];
	size_t n;
	bool was_null;

	wbuf_init(&w);
	wput_u8(&w, 0xab);
	wput_u16(&w, 0x1234);
	wput_u32(&w, 0xdeadbeef);
	wput_u64(&w, 0x0102030405060708ull);
	wput_bytes(&w, rec, sizeof(rec));
	wput_blob(&w, "xyz", 3);
	wput_str(&w, "vda");
	wput_str(&w, NULL);
	wput_str(&w, "");
	cr_assert_eq(wbuf_err(&w), 0);
	/* Little-endian on the wire, whatever the host. */
	cr_assert_eq(w.p[1], 0x34);
	cr_assert_eq(w.p[2], 0x12);

	rbuf_init(&r, w.p, w.len);
	cr_assert_eq(rget_u8(&r), 0xab);
	cr_assert_eq(rget_u16(&r), 0x1234);
	cr_assert_eq(rget_u32(&r), 0xdeadbeef);
	cr_assert_eq(rget_u64(&r), 0x0102030405060708ull);
	rget_bytes(&r, back, sizeof(back));
	cr_assert_eq(memcmp(back, rec, sizeof(rec)), 0);
	const uint8_t *b = rget_blob(&r, &n, 16);
	cr_assert_eq(n, 3);
	cr_assert_eq(memcmp(b, "xyz", 3), 0);
	char *s = rget_str(&r, 16, &was_null);
	cr_assert_str_eq(s, "vda");
	cr_assert_not(was_null);
	free(s);
	cr_assert_null(rget_str(&r, 16, &was_null));
	cr_assert(was_null);
	s = rget_str(&r, 16, &was_null);
	cr_assert_str_eq(s, "");
	free(s);
	cr_assert(rbuf_done(&r));
	cr_assert_eq(rbuf_err(&r), 0);
	wbuf_free(&w);
}

/* Every prefix of a valid input fails cleanly: the error is set, the values
 * read are zero, nothing is read past the end (ASan in fuzz-smoke, and the
 * buffer here is exactly the prefix). */
Test(wire, truncation_fails_once_with_zeros)
{
	struct wbuf w;

	wbuf_init(&w);
	wput_u32(&w, 7);
	wput_u64(&w, ~0ull);
	wput_str(&w, "drive0");
	cr_assert_eq(wbuf_err(&w), 0);
	for (size_t cut = 0; cut < w.len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, w.p, cut);
		struct rbuf r;
		bool was_null;
		rbuf_init(&r, copy, cut);
		uint32_t a = rget_u32(&r);
		uint64_t b = rget_u64(&r);
		char *s = rget_str(&r, 64, &was_null);
		cr_assert_eq(rbuf_err(&r), -EBADMSG, "cut at %zu", cut);
		cr_assert_not(rbuf_done(&r));
		cr_assert_null(s);
		cr_assert(a == 0 || cut >= 4);
		cr_assert(b == 0 || cut >= 12);
		free(copy);
	}
	wbuf_free(&w);
}

Test(wire, blobs_over_their_limit_and_bad_strings_are_refused)
{
	struct wbuf w;
	struct rbuf r;
	size_t n;
	bool was_null;

	wbuf_init(&w);
	wput_blob(&w, "0123456789", 10);
	rbuf_init(&r, w.p, w.len);
	cr_assert_null(rget_blob(&r, &n, 9));
	cr_assert_eq(n, 0);
	cr_assert_eq(rbuf_err(&r), -EBADMSG);
	wbuf_free(&w);

	/* A string holding a NUL is corrupt. */
	wbuf_init(&w);
	wput_blob(&w, "a\0b", 3);
	rbuf_init(&r, w.p, w.len);
	cr_assert_null(rget_str(&r, 16, &was_null));
	cr_assert_eq(rbuf_err(&r), -EBADMSG);
	wbuf_free(&w);

	/* A length claiming more than is there. */
	uint8_t lie[] = {0xff, 0xff, 0xff, 0x7f, 'x'};
	rbuf_init(&r, lie, sizeof(lie));
	cr_assert_null(rget_blob(&r, &n, WIRE_MAX_BLOB));
	cr_assert_eq(rbuf_err(&r), -EBADMSG);

	/* The writer refuses what the reader would. */
	wbuf_init(&w);
	wput_blob(&w, "x", (size_t)WIRE_MAX_BLOB + 1);
	cr_assert_eq(wbuf_err(&w), -E2BIG);
	wput_u32(&w, 1); /* after an error nothing more is written */
	cr_assert_eq(w.len, 0);
	wbuf_free(&w);
}

/* A fixed-size record: exactly its size, or refused with zeros. */
Test(wire, structs_must_have_their_size)
{
	struct wbuf w;
	struct rbuf r;
	uint32_t rec[2] = {1, 2}, back[2] = {9, 9};
	uint8_t three[3] = {1, 2, 3};

	wbuf_init(&w);
	wput_blob(&w, rec, sizeof(rec));
	wput_blob(&w, three, sizeof(three));
	rbuf_init(&r, w.p, w.len);
	cr_assert(rget_struct(&r, back, sizeof(back)));
	cr_assert_eq(back[0], 1);
	cr_assert_eq(back[1], 2);
	cr_assert_not(rget_struct(&r, back, sizeof(back)), "3 bytes for an 8-byte record");
	cr_assert_eq(back[0] | back[1], 0);
	cr_assert_eq(rbuf_err(&r), -EBADMSG);
	wbuf_free(&w);
}
