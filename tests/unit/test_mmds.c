/* The MMDS data store (PUT, PATCH, GET, the limit, lookups in both forms,
 * tokens) and its HTTP side, request by request, as the guest would send
 * them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mmds/http.h"
#include "mmds/mmds.h"

static struct mmds *m;
static char err[512];

static void setup(void)
{
	cr_assert_eq(mmds_create(&m, 0), 0);
}

static void teardown(void)
{
	mmds_destroy(m);
}

TestSuite(mmds, .init = setup, .fini = teardown);
TestSuite(mmds_http, .init = setup, .fini = teardown);

static int put_str(const char *js)
{
	json_t *v = json_loads(js, JSON_DECODE_ANY, NULL);
	int r;

	cr_assert_not_null(v, "%s", js);
	r = mmds_put(m, v, err, sizeof(err));
	json_decref(v);
	return r;
}

static int patch_str(const char *js)
{
	json_t *v = json_loads(js, JSON_DECODE_ANY, NULL);
	int r;

	cr_assert_not_null(v, "%s", js);
	r = mmds_patch(m, v, err, sizeof(err));
	json_decref(v);
	return r;
}

static void expect_store(const char *want)
{
	char *s = mmds_get_json(m);

	cr_assert_str_eq(s, want);
	free(s);
}

static void expect_lookup(const char *path, bool json, int want_r, const char *want)
{
	char *out;
	size_t len;
	int r = mmds_lookup(m, path, json, &out, &len);

	cr_assert_eq(r, want_r, "%s: %d", path, r);
	if (!r) {
		cr_assert_eq(len, strlen(want), "%s: %.*s", path, (int)len, out);
		cr_assert_eq(memcmp(out, want, len), 0, "%s: %.*s", path, (int)len, out);
	}
	free(out);
}

Test(mmds, starts_empty_and_a_patch_needs_a_put_first)
{
	expect_store("{}");
	cr_assert_eq(patch_str("{\"a\": 1}"), -EPERM);
	cr_assert_str_eq(err, "MMDS error: The MMDS data store is not initialized.");
	cr_assert_eq(put_str("{\"b\": {\"y\": 2, \"x\": 1}, \"a\": \"s\"}"), 0);
	expect_store("{\"a\":\"s\",\"b\":{\"x\":1,\"y\":2}}");
}

Test(mmds, a_patch_merges_as_rfc_7396_says)
{
	cr_assert_eq(put_str("{\"a\": {\"x\": 1, \"y\": 2}, \"b\": [1, 2], \"c\": 3}"), 0);
	cr_assert_eq(patch_str("{\"a\": {\"x\": null, \"z\": {\"q\": null, \"w\": 4}}, \"b\": [3], "
			       "\"c\": null, \"d\": \"new\"}"),
		     0);
	expect_store("{\"a\":{\"y\":2,\"z\":{\"w\":4}},\"b\":[3],\"d\":\"new\"}");
	cr_assert_eq(patch_str("\"whole\""), 0);
	expect_store("\"whole\"");
}

Test(mmds, the_limit_counts_the_compact_json_and_refuses_the_rest_whole)
{
	mmds_destroy(m);
	cr_assert_eq(mmds_create(&m, 16), 0);
	/* {"a":"1234567"} is 15 bytes; spaces in the request do not count. */
	cr_assert_eq(put_str("{ \"a\" :   \"1234567\" }"), 0);
	cr_assert_eq(put_str("{\"a\":\"12345678\"}"), 0, "16: at the limit");
	cr_assert_eq(put_str("{\"a\":\"123456789\"}"), -EFBIG);
	cr_assert(strstr(err, "MMDS limit exceeded error: The MMDS patch request doesn't fit."));
	cr_assert_eq(patch_str("{\"b\": 1}"), -EFBIG);
	expect_store("{\"a\":\"12345678\"}");
}

Test(mmds, lookups_in_imds_form_and_json)
{
	cr_assert_eq(
	    put_str("{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-1\", \"zone\": {\"n\": "
		    "\"a\"}, \"count\": 3, \"arr\": [\"p\", {\"k\": \"v\"}], "
		    "\"a/b\": \"slash\", \"empty\": {}}}}"),
	    0);
	expect_lookup("/latest/meta-data/", false, 0, "a/b\nami-id\narr\ncount\nempty/\nzone/");
	expect_lookup("/latest/meta-data", false, 0, "a/b\nami-id\narr\ncount\nempty/\nzone/");
	expect_lookup("/latest//meta-data/ami-id", false, 0, "ami-1");
	expect_lookup("/latest/meta-data/ami-id/", false, 0, "ami-1");
	expect_lookup("/latest/meta-data/empty", false, 0, "");
	expect_lookup("/latest/meta-data/a~1b", false, 0, "slash");
	expect_lookup("/latest/meta-data/arr/0", false, 0, "p");
	expect_lookup("/latest/meta-data/arr/1/k", false, 0, "v");
	expect_lookup("/latest/meta-data/arr/01", false, -ENOENT, NULL);
	expect_lookup("/latest/meta-data/arr/2", false, -ENOENT, NULL);
	expect_lookup("/latest/meta-data/count", false, -ENOTSUP, NULL);
	expect_lookup("/latest/meta-data/arr", false, -ENOTSUP, NULL);
	expect_lookup("/latest/meta-data/count", true, 0, "3");
	expect_lookup("/latest/meta-data/zone", true, 0, "{\"n\":\"a\"}");
	expect_lookup("/latest/meta-data/ami-id", true, 0, "\"ami-1\"");
	expect_lookup("/nothing", false, -ENOENT, NULL);
	expect_lookup("/latest/meta-data/ami-id/deeper", false, -ENOENT, NULL);
}

Test(mmds, tokens_are_ours_and_run_out)
{
	char tok[MMDS_TOKEN_LEN + 1], other[MMDS_TOKEN_LEN + 1];
	struct mmds *m2;
	uint64_t t = 5000ull * 1000000;

	mmds_token_new(m, 60, t, tok);
	cr_assert_eq(strlen(tok), MMDS_TOKEN_LEN);
	cr_assert(mmds_token_check(m, tok, strlen(tok), t));
	cr_assert(mmds_token_check(m, tok, strlen(tok), t + 59ull * 1000000000));
	cr_assert_not(mmds_token_check(m, tok, strlen(tok), t + 60ull * 1000000000));
	tok[3] ^= 1;
	cr_assert_not(mmds_token_check(m, tok, strlen(tok), t), "tampered");
	tok[3] ^= 1;
	cr_assert_not(mmds_token_check(m, tok, strlen(tok) - 1, t));
	cr_assert_not(mmds_token_check(m, "!!!!", 4, t));
	/* Another instance (a restored one) has another key. */
	cr_assert_eq(mmds_create(&m2, 0), 0);
	mmds_token_new(m2, 60, t, other);
	cr_assert_not(mmds_token_check(m, other, strlen(other), t));
	mmds_destroy(m2);
}

/* ---- HTTP ----------------------------------------------------------------- */

static struct mmds_http h;
static struct mmds_reply r;

static int serve(const char *req, bool full)
{
	h.store = m;
	free(r.data);
	r = (struct mmds_reply){0};
	return mmds_http_serve(&h, (const uint8_t *)req, strlen(req), full, &r);
}

/* The reply's status line, a header's presence and the body. */
static void expect(const char *status, const char *header, const char *body)
{
	char *s = strndup((char *)r.data, r.len), *b;

	cr_assert(!strncmp(s, status, strlen(status)), "%s", s);
	if (header)
		cr_assert(strstr(s, header), "%s", s);
	b = strstr(s, "\r\n\r\n");
	cr_assert_not_null(b);
	cr_assert_str_eq(b + 4, body);
	free(s);
}

/* The last reply's body, NUL-terminated (until the next serve). */
static const char *body_of(void)
{
	static char buf[4096];
	const char *b = memmem(r.data, r.len, "\r\n\r\n", 4);

	cr_assert_not_null(b);
	snprintf(buf, sizeof(buf), "%.*s", (int)(r.len - (size_t)(b + 4 - (char *)r.data)), b + 4);
	return buf;
}

static void seed(void)
{
	cr_assert_eq(put_str("{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-1\", \"n\": 7}}}"),
		     0);
}

Test(mmds_http, v1_answers_gets_in_imds_form_or_json)
{
	const char *get = "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n";

	seed();
	cr_assert_eq(serve(get, false), (int)strlen(get));
	expect("HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "ami-id\nn");
	cr_assert_not(r.close);
	cr_assert_eq(mmds_stats(m)->rx_no_token, 1);
	serve("GET /latest/meta-data/n HTTP/1.1\r\nAccept: application/json\r\n\r\n", false);
	expect("HTTP/1.1 200 OK\r\n", "Content-Type: application/json\r\n", "7");
	serve("GET /latest/meta-data/n HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 501 ", NULL, "Cannot retrieve value. The value has an unsupported type.");
	serve("GET /latest/meta-data/nope HTTP/1.0\r\n\r\n", false);
	expect("HTTP/1.0 404 ", "Content-Type: text/plain",
	       "Resource not found: /latest/meta-data/nope.");
	serve("GET http://169.254.169.254/latest/meta-data/ami-id HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 200 OK\r\n", NULL, "ami-1");
	/* imds_compat: text whatever Accept says. */
	h.imds_compat = true;
	serve("GET /latest/meta-data/ami-id HTTP/1.1\r\nAccept: application/json\r\n\r\n", false);
	expect("HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "ami-1");
	h.imds_compat = false;
}

Test(mmds_http, v2_needs_a_token_from_put)
{
	char req[256], tok[MMDS_TOKEN_LEN + 1];

	seed();
	h.v2 = true;
	serve("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 401 ", NULL,
	       "No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` "
	       "header to specify the session token.");
	serve("GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: forged\r\n\r\n", false);
	expect("HTTP/1.1 401 ", NULL, "MMDS token not valid.");
	cr_assert_eq(mmds_stats(m)->rx_invalid_token, 1);
	serve("PUT /latest/api/token HTTP/1.1\r\nx-metadata-token-ttl-seconds: 60\r\n\r\n", false);
	cr_assert_eq(strlen(body_of()), MMDS_TOKEN_LEN);
	memcpy(tok, body_of(), sizeof(tok));
	expect("HTTP/1.1 200 OK\r\n", "x-metadata-token-ttl-seconds: 60\r\n", tok);
	snprintf(req, sizeof(req),
		 "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-aws-ec2-metadata-token: %s\r\n\r\n",
		 tok);
	serve(req, false);
	expect("HTTP/1.1 200 OK\r\n", NULL, "ami-1");
	/* Blanks after a value are not part of it, as Firecracker trims
	 * them. */
	snprintf(req, sizeof(req),
		 "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: %s \t\r\n\r\n", tok);
	serve(req, false);
	expect("HTTP/1.1 200 OK\r\n", NULL, "ami-1");
	serve("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60  \r\n\r\n",
	      false);
	cr_assert(!strncmp((char *)r.data, "HTTP/1.1 200 OK\r\n", 17), "%s", (char *)r.data);
}

Test(mmds_http, token_requests_are_checked)
{
	serve("PUT /latest/api/token HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 400 ", NULL,
	       "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "
	       "`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.");
	serve("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: abc\r\n\r\n", false);
	expect(
	    "HTTP/1.1 400 ", NULL,
	    "Invalid header. Reason: Invalid value. Key:X-metadata-token-ttl-seconds; Value:abc");
	serve("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 21601\r\n\r\n",
	      false);
	expect("HTTP/1.1 400 ", NULL,
	       "Invalid time to live value provided for token: 21601. Please provide a value "
	       "between 1 and 21600.");
	/* The whole number, however many zeros lead it: not its first 31
	 * characters (21600, which would pass). */
	serve("PUT /latest/api/token HTTP/1.1\r\n"
	      "X-metadata-token-ttl-seconds: 00000000000000000000000000216000\r\n\r\n",
	      false);
	expect("HTTP/1.1 400 ", NULL,
	       "Invalid time to live value provided for token: 216000. Please provide a value "
	       "between 1 and 21600.");
	serve("PUT /latest/api/token HTTP/1.1\r\n"
	      "X-metadata-token-ttl-seconds: 12345678901234567890123456789012345\r\n\r\n",
	      false);
	expect("HTTP/1.1 400 ", NULL,
	       "Invalid header. Reason: Invalid value. Key:X-metadata-token-ttl-seconds; "
	       "Value:12345678901234567890123456789012345");
	serve("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n", false);
	expect("HTTP/1.1 400 ", NULL,
	       "Invalid time to live value provided for token: 0. Please provide a value "
	       "between 1 and 21600.");
	serve("PUT /latest/api/token HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n"
	      "X-metadata-token-ttl-seconds: 5\r\n\r\n",
	      false);
	expect("HTTP/1.1 400 ", NULL,
	       "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For");
	serve("PUT /latest/api/token/ HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n", false);
	expect("HTTP/1.1 404 ", NULL, "Resource not found: /latest/api/token/.");
	serve("PUT //latest//api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n", false);
	cr_assert(!strncmp((char *)r.data, "HTTP/1.1 200 OK\r\n", 17));
	cr_assert_eq(strlen(body_of()), MMDS_TOKEN_LEN, "doubled slashes do not count");
}

Test(mmds_http, other_methods_versions_and_uris)
{
	serve("PATCH / HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 405 ", "Allow: GET, PUT\r\n", "Not allowed HTTP method.");
	serve("DELETE / HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 405 ", "Allow: GET, PUT\r\n", "Not allowed HTTP method.");
	serve("HEAD / HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 501 ", NULL, "Unsupported HTTP method.");
	serve("GET * HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 400 ", NULL, "Invalid URI.");
	serve("GET http://169.254.169.254 HTTP/1.1\r\n\r\n", false);
	expect("HTTP/1.1 400 ", NULL, "Invalid URI.");
}

Test(mmds_http, requests_are_framed_one_at_a_time)
{
	const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";

	cr_assert_eq(serve(two, false), 19, "the first request only");
	cr_assert_not(r.close);
	serve("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", false);
	expect("HTTP/1.1 404 ", "Connection: close\r\n", "Resource not found: /a.");
	cr_assert(r.close);
	serve("GET /a HTTP/1.0\r\n\r\n", false);
	cr_assert(r.close, "HTTP/1.0 without keep-alive");
	cr_assert_eq(serve("GET /a HTTP/1.1\r\nAcc", false), 0, "not whole yet");
	cr_assert_eq(serve("GET /a HTTP/1.1\r\nAcc", true), -EMSGSIZE, "and never will be");
}

/* Found by fuzz_mmds: the folded rest of a header that is not ours. */
Test(mmds_http, a_folded_header_line)
{
	seed();
	serve("GET /latest/meta-data/ami-id HTTP/1.1\r\nX-Other: a\r\n b\r\n\r\n", false);
	cr_assert_not_null(r.data);
	cr_assert(!strncmp((char *)r.data, "HTTP/1.1 ", 9));
	free(r.data);
	r = (struct mmds_reply){0};
}

Test(mmds_http, a_body_or_garbage_gets_400_and_a_close)
{
	const char *body = "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	const char *junk = "\x01\x02 nonsense\r\n\r\n";

	cr_assert_eq(serve(body, false), (int)strlen(body));
	expect("HTTP/1.1 400 ", NULL, "Invalid request.");
	cr_assert(r.close);
	cr_assert_eq(serve(junk, false), (int)strlen(junk));
	expect("HTTP/1.1 400 ", NULL, "Invalid request.");
	cr_assert(r.close);
	free(r.data);
	r = (struct mmds_reply){0};
}
