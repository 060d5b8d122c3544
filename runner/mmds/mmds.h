/* The MMDS data store (Firecracker's microVM metadata service): one JSON
 * document per instance, set by the API (PUT /mmds, PATCH /mmds, or
 * --metadata at start) and read by the API (GET /mmds) and by the guest
 * (mmds/http.h, through mmds/stack.h on a network interface); and the
 * session tokens the guest asks for (PUT /latest/api/token).
 *
 * As Firecracker's: the store starts empty and not initialised, which
 * only a PUT ends (a PATCH before it is refused); its size is that of its
 * compact JSON, which may not pass the limit (--mmds-size-limit, by
 * default the API's body cap). It is not saved in snapshots, and a token
 * is good only in the process that made it (an HMAC under a key drawn at
 * mmds_create), until its time to live runs out: a restored instance's
 * guest asks for a new one.
 *
 * Thread-safe: the API thread writes while the event loop's thread
 * answers the guest. */
#ifndef FLINT_MMDS_MMDS_H
#define FLINT_MMDS_MMDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mmds/stack.h"

/* The store's limit when none is given: the API's body cap. */
#define MMDS_DEFAULT_LIMIT 51200
/* A token's time to live, seconds. */
#define MMDS_TOKEN_TTL_MIN 1
#define MMDS_TOKEN_TTL_MAX 21600
/* A token's length: base64 of its expiry and MAC. */
#define MMDS_TOKEN_LEN 44

struct mmds;

/* An empty store with limit bytes at most (0: MMDS_DEFAULT_LIMIT) and a
 * fresh token key. 0 or -errno. */
int mmds_create(struct mmds **out, size_t limit) WARN_UNUSED;
void mmds_destroy(struct mmds *m); /* NULL ok */

/* The API's side. Each returns 0, or -errno with a message in err:
 * -EFBIG for a document over the limit (Firecracker's 413), -EPERM for a
 * PATCH before any PUT; the store is then as it was. v is the caller's. */
int mmds_put(struct mmds *m, json_t *v, char *err, size_t errlen) WARN_UNUSED;
int mmds_patch(struct mmds *m, const json_t *patch, char *err, size_t errlen) WARN_UNUSED;
/* The document's compact JSON with its keys sorted, malloc'd; "{}" while
 * it holds nothing. NULL: out of memory. */
char *mmds_get_json(struct mmds *m);

/* The guest's side. The value at path (an IMDS path: "/latest/meta-data/"
 * and the like; doubled slashes and one trailing slash do not count; the
 * segments are RFC 6901 reference tokens), rendered as JSON (json) or in
 * IMDS's text form: an object's keys, sorted, one per line, those of
 * objects with a '/'; a string as it is. *out is malloc'd (*len bytes).
 * 0; -ENOENT: nothing there; -ENOTSUP: IMDS's form has no text for the
 * value (a number, a boolean, null, an array); -ENOMEM. */
int mmds_lookup(struct mmds *m, const char *path, bool json, char **out, size_t *len) WARN_UNUSED;

/* A token good for ttl_s seconds from now_ns (MMDS_TOKEN_TTL_MIN to _MAX)
 * into out (MMDS_TOKEN_LEN + 1 bytes). And whether a token the guest
 * sent is one of ours and still good at now_ns. */
void mmds_token_new(struct mmds *m, uint32_t ttl_s, uint64_t now_ns, char *out);
bool mmds_token_check(struct mmds *m, const char *tok, size_t len, uint64_t now_ns);

/* The guest-facing counters (Firecracker's "mmds" metrics section), which
 * the stacks and the HTTP side add to. */
struct mmds_stack_stats *mmds_stats(struct mmds *m);

#endif
