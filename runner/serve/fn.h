/* fn: a function's configuration for flint serve, the body of PUT
 * /functions/{name} and what GET /functions/{name} shows of it.
 *
 * Read as the API reads Firecracker's bodies (config/jfield): unknown
 * fields refused, types checked, a JSON null counted as absent, every
 * error naming its field ("command[2]: ...", "env.PATH: ..."). The name
 * comes from the URL; the body may repeat it as "name", which must then
 * match. Encoding fills in every default, and fn_config_parse() of the
 * encoding gives the same configuration back (fn_config_equal).
 *
 * The fields (see README.md's table):
 *   command          argv, required: 1 to FN_ARGV_MAX strings of 1 to
 *                    FN_WORD_MAX bytes each
 *   env              an object {"NAME": "value"}: NAME a shell variable
 *                    name ([A-Za-z_][A-Za-z0-9_]*, at most
 *                    FN_ENV_NAME_MAX bytes), value a string of at most
 *                    FN_ENV_VALUE_MAX bytes; at most FN_ENV_MAX of them;
 *                    default none (the guest agent's own environment)
 *   workdir          an absolute path in the guest; default "/"
 *   rootfs, kernel   absolute paths on the host; null: flint's own
 *   mem_mib          16 to 65536, default 128
 *   vcpus            1 to 32, default 1
 *   timeout_s        1 to 3600, default 30
 *   max_concurrency  1 to 1024, default 4
 *   min_warm         0 to max_concurrency, default 0
 *   isolation        "per-request" (default) or "reuse"
 *   reuse_max        requests one VM serves, 1 to 1000000, default 100;
 *                    only with "reuse"
 *   prepare          argv run once before the snapshot, as command; null:
 *                    none
 * The command (and prepare), the environment and the working directory go
 * to the guest agent in one request, so together they must fit its
 * AGENT_REQUEST_MAX.
 *
 * Pure: no I/O (paths are not looked at here). Functions that fail return
 * -EINVAL with the message in err (always UTF-8, so that a JSON answer can
 * carry it: bytes of the body that are not come out as '?'), or -ENOMEM. */
#ifndef FLINT_SERVE_FN_H
#define FLINT_SERVE_FN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define FN_NAME_MAX	     64
#define FN_ARGV_MAX	     256
#define FN_WORD_MAX	     4096
#define FN_ENV_MAX	     256
#define FN_ENV_NAME_MAX	     128
#define FN_ENV_VALUE_MAX     4096
#define FN_PATH_MAX	     4095
#define FN_MEM_MIB_MIN	     16
#define FN_MEM_MIB_MAX	     65536
#define FN_MEM_MIB_DEFAULT   128
#define FN_VCPUS_MAX	     32
#define FN_VCPUS_DEFAULT     1
#define FN_TIMEOUT_S_MAX     3600
#define FN_TIMEOUT_S_DEFAULT 30
#define FN_CONC_MAX	     1024
#define FN_CONC_DEFAULT	     4
#define FN_REUSE_MAX_MAX     1000000
#define FN_REUSE_MAX_DEFAULT 100

enum fn_isolation {
	FN_PER_REQUEST = 0, /* a fresh VM per request, destroyed after it */
	FN_REUSE = 1,	    /* a VM serves up to reuse_max requests in turn */
};

/* A function. Strings and arrays are malloc'd and owned by it. */
struct fn_config {
	char name[FN_NAME_MAX + 1];
	char **command; /* command_len strings, then NULL (an execv argv) */
	size_t command_len;
	char **env; /* env_len "NAME=value" strings in the body's order, then
		     * NULL; NULL when env_len is 0 */
	size_t env_len;
	char *workdir;	       /* never NULL once parsed: "/" by default */
	char *rootfs, *kernel; /* NULL: flint's own */
	uint32_t mem_mib, vcpus, timeout_s, max_concurrency, min_warm;
	enum fn_isolation isolation;
	uint32_t reuse_max; /* 0 unless isolation is FN_REUSE */
	char **prepare;	    /* as command; NULL when there is none */
	size_t prepare_len;
};

/* Check a function name from the URL: 1 to FN_NAME_MAX of [A-Za-z0-9_-].
 * 0 or -EINVAL with err set (the name is not echoed: it may be any
 * bytes). */
int fn_name_check(const char *name, char *err, size_t errlen) WARN_UNUSED;

/* Parse and check body[0..len), the JSON object of PUT /functions/{name},
 * into *c (initialised here; on failure it holds nothing and need not be
 * freed, though fn_config_free() on it is harmless). name is the URL's. */
int fn_config_parse(const char *name, const char *body, size_t len, struct fn_config *c, char *err,
		    size_t errlen) WARN_UNUSED;

/* c as a JSON object, every field there with its default filled in
 * ("name" included; rootfs, kernel and prepare null when unset; reuse_max
 * only with "reuse"), for GET /functions/{name} to show or extend. NULL
 * when out of memory (or for a c not made by fn_config_parse whose strings
 * are not UTF-8 or whose env entries lack '='). The caller json_decref()s
 * it. */
json_t *fn_config_json(const struct fn_config *c);

/* fn_config_json() as a malloc'd NUL-terminated string (compact; with
 * members in the order above). NULL when out of memory. */
char *fn_config_encode(const struct fn_config *c);

/* Whether a and b are the same configuration, field by field (so that a
 * second PUT of the same body can be told from a different one). */
bool fn_config_equal(const struct fn_config *a, const struct fn_config *b);

/* Free what c holds and zero it; c itself is the caller's. NULL is fine. */
void fn_config_free(struct fn_config *c);

#endif
