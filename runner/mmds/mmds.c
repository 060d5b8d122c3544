#include "mmds/mmds.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A token: its expiry (milliseconds of now_ns()'s clock, little-endian)
 * and the first MAC_LEN bytes of its HMAC-SHA256 under the key. */
#define MAC_LEN	  24
#define TOKEN_RAW (8 + MAC_LEN)
_Static_assert(BASE64_ENCODE_RAW_LENGTH(TOKEN_RAW) == MMDS_TOKEN_LEN, "token length");

/* A document, once installed, is never changed: PUT installs the
 * caller's, PATCH a new one merged from a copy. So a reader takes a
 * reference under the lock and renders without it (jansson's reference
 * counts are atomic), and neither the guest's reads nor a large PATCH
 * hold the lock over a whole document. */
struct mmds {
	pthread_mutex_t lock; /* data, initialised, gen */
	json_t *data;
	bool initialised;
	uint64_t gen; /* bumped by each install */
	size_t limit;
	uint8_t key[32]; /* drawn once, read only after */
	struct mmds_stack_stats stats;
};

int mmds_create(struct mmds **out, size_t limit)
{
	struct mmds *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	if (getrandom(m->key, sizeof(m->key), 0) != sizeof(m->key)) {
		int r = -errno;
		free(m);
		return r;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->limit = limit ? limit : MMDS_DEFAULT_LIMIT;
	*out = m;
	return 0;
}

void mmds_destroy(struct mmds *m)
{
	if (!m)
		return;
	json_decref(m->data);
	pthread_mutex_destroy(&m->lock);
	explicit_bzero(m->key, sizeof(m->key));
	free(m);
}

struct mmds_stack_stats *mmds_stats(struct mmds *m)
{
	return &m->stats;
}

/* ---- the API's side ------------------------------------------------------- */

static char *dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Whether v's compact JSON fits the limit; -EFBIG, -ENOMEM. */
static int fits(const struct mmds *m, const json_t *v, char *err, size_t errlen)
{
	char *s = dump(v);
	size_t len;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	len = strlen(s);
	free(s);
	if (len > m->limit) {
		snprintf(
		    err, errlen,
		    "MMDS limit exceeded error: The MMDS patch request doesn't fit. (%zu bytes "
		    "of JSON, over the limit of %zu)",
		    len, m->limit);
		return -EFBIG;
	}
	return 0;
}

int mmds_put(struct mmds *m, json_t *v, char *err, size_t errlen)
{
	int r = fits(m, v, err, errlen);

	if (r < 0)
		return r;
	json_t *old;

	json_incref(v);
	pthread_mutex_lock(&m->lock);
	old = m->data;
	m->data = v;
	m->initialised = true;
	m->gen++;
	pthread_mutex_unlock(&m->lock);
	json_decref(old); /* a whole document's free, outside the lock */
	return 0;
}

/* A reference to the document and its generation (NULL: none). */
static json_t *current(struct mmds *m, uint64_t *gen, bool *initialised)
{
	json_t *v;

	pthread_mutex_lock(&m->lock);
	v = json_incref(m->data);
	if (gen)
		*gen = m->gen;
	if (initialised)
		*initialised = m->initialised;
	pthread_mutex_unlock(&m->lock);
	return v;
}

/* RFC 7396: the result of merging patch into target (a new reference;
 * target's is taken). NULL: out of memory. */
static json_t *merge(json_t *target, const json_t *patch)
{
	const char *k;
	json_t *pv;

	if (!json_is_object(patch)) {
		json_decref(target);
		return json_deep_copy(patch);
	}
	if (!json_is_object(target)) {
		json_decref(target);
		if (!(target = json_object()))
			return NULL;
	}
	json_object_foreach((json_t *)patch, k, pv)
	{
		json_t *cur, *nv;

		if (json_is_null(pv)) {
			json_object_del(target, k);
			continue;
		}
		cur = json_incref(json_object_get(target, k));
		if (!(nv = merge(cur, pv)) || json_object_set_new(target, k, nv) < 0) {
			json_decref(target);
			return NULL;
		}
	}
	return target;
}

int mmds_patch(struct mmds *m, const json_t *patch, char *err, size_t errlen)
{
	/* The merge and the size check on a copy, outside the lock; installed
	 * only if no other PUT or PATCH came in between, else done again. */
	for (;;) {
		uint64_t gen;
		bool initialised;
		json_t *base = current(m, &gen, &initialised), *next;
		int r;

		if (!initialised) {
			json_decref(base);
			snprintf(err, errlen,
				 "MMDS error: The MMDS data store is not initialized.");
			return -EPERM;
		}
		json_t *copy = base ? json_deep_copy(base) : json_null();

		json_decref(base);
		/* A copy that failed is out of memory, not an empty store. */
		next = copy ? merge(copy, patch) : NULL;
		if (!next) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if ((r = fits(m, next, err, errlen)) < 0) {
			json_decref(next);
			return r;
		}
		pthread_mutex_lock(&m->lock);
		if (gen == m->gen) {
			json_t *old = m->data;

			m->data = next;
			m->gen++;
			pthread_mutex_unlock(&m->lock);
			json_decref(old);
			return 0;
		}
		pthread_mutex_unlock(&m->lock);
		json_decref(next);
	}
}

char *mmds_get_json(struct mmds *m)
{
	json_t *v = current(m, NULL, NULL);
	char *s = v && !json_is_null(v) ? dump(v) : strdup("{}");

	json_decref(v);
	return s;
}

/* ---- the guest's side ----------------------------------------------------- */

/* One RFC 6901 reference token, seg[0..len), into buf (unescaped). */
static const char *unescape(const char *seg, size_t len, char *buf, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		if (seg[i] == '~' && i + 1 < len && (seg[i + 1] == '0' || seg[i + 1] == '1')) {
			buf[o++] = seg[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			buf[o++] = seg[i];
		}
	}
	buf[o] = '\0';
	return buf;
}

/* An array index: decimal digits, no leading zero, within the array. */
static json_t *array_at(json_t *a, const char *s)
{
	char *end;
	unsigned long i;

	if (!*s || (s[0] == '0' && s[1]) || s[0] < '0' || s[0] > '9')
		return NULL;
	errno = 0;
	i = strtoul(s, &end, 10);
	if (*end || errno)
		return NULL;
	return json_array_get(a, i);
}

/* The value at path, or NULL. */
static json_t *walk(json_t *v, const char *path)
{
	char seg[512];
	size_t len = strlen(path);

	/* Doubled slashes and one trailing slash do not count. */
	if (len && path[len - 1] == '/')
		len--;
	for (size_t i = 0; i < len && v;) {
		size_t j;

		while (i < len && path[i] == '/')
			i++;
		if (i >= len)
			break;
		for (j = i; j < len && path[j] != '/'; j++)
			;
		if (j - i >= sizeof(seg))
			return NULL;
		unescape(path + i, j - i, seg, sizeof(seg));
		if (json_is_object(v))
			v = json_object_get(v, seg);
		else if (json_is_array(v))
			v = array_at(v, seg);
		else
			v = NULL;
		i = j;
	}
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* IMDS's listing of an object: its keys, sorted, one per line, an
 * object's with a '/'. */
static char *listing(json_t *o, size_t *len)
{
	size_t n = json_object_size(o), i = 0, total = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	const char *k;
	json_t *v;
	char *out, *p;

	if (!keys)
		return NULL;
	json_object_foreach(o, k, v)
	{
		keys[i++] = k;
		total += strlen(k) + 2;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	if ((p = out = malloc(total + 1))) {
		for (i = 0; i < n; i++) {
			size_t l = strlen(keys[i]);

			if (i)
				*p++ = '\n';
			memcpy(p, keys[i], l);
			p += l;
			if (json_is_object(json_object_get(o, keys[i])))
				*p++ = '/';
		}
		*p = '\0';
		*len = (size_t)(p - out);
	}
	free(keys);
	return out;
}

int mmds_lookup(struct mmds *m, const char *path, bool json, char **out, size_t *len)
{
	json_t *doc = current(m, NULL, NULL), *v;
	int r = 0;

	*out = NULL;
	*len = 0;
	v = walk(doc ? doc : json_null(), path);
	if (!v) {
		r = -ENOENT;
	} else if (json) {
		if ((*out = dump(v)))
			*len = strlen(*out);
	} else if (json_is_object(v)) {
		*out = listing(v, len);
	} else if (json_is_string(v)) {
		*len = json_string_length(v);
		if ((*out = malloc(*len + 1))) {
			memcpy(*out, json_string_value(v), *len);
			(*out)[*len] = '\0';
		}
	} else {
		r = -ENOTSUP;
	}
	json_decref(doc);
	if (!r && !*out)
		r = -ENOMEM;
	return r;
}

/* ---- tokens --------------------------------------------------------------- */

static void token_mac(const struct mmds *m, const uint8_t expiry[8], uint8_t mac[MAC_LEN])
{
	struct hmac_sha256_ctx h;

	hmac_sha256_set_key(&h, sizeof(m->key), m->key);
	hmac_sha256_update(&h, 8, expiry);
	hmac_sha256_digest(&h, MAC_LEN, mac);
}

void mmds_token_new(struct mmds *m, uint32_t ttl_s, uint64_t now_ns, char *out)
{
	uint64_t exp = now_ns / 1000000 + (uint64_t)ttl_s * 1000;
	uint8_t raw[TOKEN_RAW];

	for (unsigned i = 0; i < 8; i++)
		raw[i] = (uint8_t)(exp >> (8 * i));
	token_mac(m, raw, raw + 8);
	base64_encode_raw(out, sizeof(raw), raw);
	out[MMDS_TOKEN_LEN] = '\0';
}

bool mmds_token_check(struct mmds *m, const char *tok, size_t len, uint64_t now_ns)
{
	struct base64_decode_ctx d;
	uint8_t raw[BASE64_DECODE_LENGTH(MMDS_TOKEN_LEN)], mac[MAC_LEN];
	size_t got = sizeof(raw);
	uint64_t exp = 0;

	if (len != MMDS_TOKEN_LEN)
		return false;
	base64_decode_init(&d);
	if (!base64_decode_update(&d, &got, raw, len, tok) || !base64_decode_final(&d) ||
	    got != TOKEN_RAW)
		return false;
	token_mac(m, raw, mac);
	if (!memeql_sec(mac, raw + 8, MAC_LEN))
		return false;
	for (unsigned i = 0; i < 8; i++)
		exp |= (uint64_t)raw[i] << (8 * i);
	return exp > now_ns / 1000000;
}
