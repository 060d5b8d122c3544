/* jfield: read the members of a JSON object (jansson) the way Firecracker's
 * API does with serde: unknown members refused (deny_unknown_fields), types
 * checked, required members present, a null member counted as absent
 * (serde's Option). Every problem becomes one message, the fault_message
 * the API returns, naming the member and its place in the document
 * ("drives[1].rate_limiter.ops: missing required field 'size'").
 *
 * config_json uses it for Firecracker's resources; the API layer can use it
 * for its other bodies (/actions, /vm). Functions that fail return -EINVAL
 * (-ENOMEM when out of memory) with the message in the context's err. */
#ifndef FLINT_JFIELD_H
#define FLINT_JFIELD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/* Messages go to err[0..errlen); start with where "" (the top level):
 * struct jfield j = {.err = err, .errlen = errlen}. */
struct jfield {
	char *err;
	size_t errlen;
	char where[96]; /* the current object's place: "", "drives[1].rate_limiter" */
};

/* Parse text[0..len) as one JSON object (duplicate members refused, as
 * serde does). Returns it (json_decref it), or NULL with the message set:
 * "WHAT is not valid JSON: ...", "WHAT must be a JSON object, not ...". */
json_t *jfield_load(struct jfield *j, const char *text, size_t len, const char *what);

/* Enter member object key (index < 0) or element key[index]; returns the
 * mark jfield_leave() takes to come back. */
size_t jfield_enter(struct jfield *j, const char *key, int index);
void jfield_leave(struct jfield *j, size_t mark);

/* "where.key: MSG" and "where: MSG" (just MSG at the top). -EINVAL. */
int jfield_err(struct jfield *j, const char *key, const char *fmt, ...) PRINTF(3, 4);
int jfield_obj_err(struct jfield *j, const char *fmt, ...) PRINTF(2, 3);
/* r, and when r < 0 the message already in err placed: "where: MSG". For
 * checks made elsewhere (vm_config's). */
int jfield_placed(struct jfield *j, int r);
/* -ENOMEM, "out of memory". */
int jfield_oom(struct jfield *j);

/* "a string", "an integer", "null", ... for messages. */
const char *jfield_type_name(const json_t *v);

/* -EINVAL naming the first member of o not in keys (NULL-terminated), and
 * listing keys. */
int jfield_only_keys(struct jfield *j, json_t *o, const char *const *keys) WARN_UNUSED;

/* How many members of o are not in keys (NULL-terminated); their names,
 * quoted, as "'a', 'b'" into out (cut short if it does not fit). */
size_t jfield_other_keys(json_t *o, const char *const *keys, char *out, size_t size);

/* -EINVAL naming the first of keys (NULL-terminated) that o has as null:
 * for members serde gives a default when absent but not an Option, which
 * take no null. */
int jfield_not_null(struct jfield *j, json_t *o, const char *const *keys) WARN_UNUSED;

/* Member key of o, NULL when absent or null. */
json_t *jfield_member(json_t *o, const char *key);

/* "missing required field 'key'". -EINVAL. */
int jfield_missing(struct jfield *j, const char *key);

/* Typed members. Each refuses a required member that is absent and a
 * member of another type; an absent optional one leaves *out as it was and
 * sets *present (when not NULL) false. */
/* A string, malloc'd into *out (the old *out freed). */
int jfield_str(struct jfield *j, json_t *o, const char *key, bool required, char **out) WARN_UNUSED;
int jfield_bool(struct jfield *j, json_t *o, const char *key, bool required, bool *out,
		bool *present) WARN_UNUSED;
/* An integer from lo to hi (hi at most INT64_MAX, jansson's largest). A
 * number with a fraction or exponent (even 128.0) is not an integer, as
 * for serde. */
int jfield_uint(struct jfield *j, json_t *o, const char *key, bool required, uint64_t lo,
		uint64_t hi, uint64_t *out, bool *present) WARN_UNUSED;
/* A string among names[0..n) (ignoring case when icase): *out its index. */
int jfield_enum(struct jfield *j, json_t *o, const char *key, bool required,
		const char *const *names, size_t n, bool icase, int *out,
		bool *present) WARN_UNUSED;
/* An object: *out NULL when absent. */
int jfield_obj(struct jfield *j, json_t *o, const char *key, bool required,
	       json_t **out) WARN_UNUSED;

#endif
