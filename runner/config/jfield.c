/* jfield: JSON members read as Firecracker's serde reads them. See
 * jfield.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/jfield.h"

json_t *jfield_load(struct jfield *j, const char *text, size_t len, const char *what)
{
	json_error_t e;
	/* DECODE_ANY: a body that is valid JSON but not an object gets the
	 * message below rather than jansson's. */
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);

	if (!o) {
		snprintf(j->err, j->errlen, "%s is not valid JSON: %s (line %d, column %d)", what,
			 e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		snprintf(j->err, j->errlen, "%s must be a JSON object, not %s", what,
			 jfield_type_name(o));
		json_decref(o);
		return NULL;
	}
	return o;
}

size_t jfield_enter(struct jfield *j, const char *key, int index)
{
	size_t n = strlen(j->where);
	const char *dot = n ? "." : "";

	if (index >= 0)
		snprintf(j->where + n, sizeof(j->where) - n, "%s%s[%d]", dot, key, index);
	else
		snprintf(j->where + n, sizeof(j->where) - n, "%s%s", dot, key);
	return n;
}

void jfield_leave(struct jfield *j, size_t mark)
{
	j->where[mark] = '\0';
}

int jfield_err(struct jfield *j, const char *key, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(j->err, j->errlen, "%s%s%s: %s", j->where, *j->where ? "." : "", key, msg);
	return -EINVAL;
}

int jfield_obj_err(struct jfield *j, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(j->err, j->errlen, "%s%s%s", j->where, *j->where ? ": " : "", msg);
	return -EINVAL;
}

int jfield_placed(struct jfield *j, int r)
{
	char msg[256];

	if (r < 0 && *j->where) {
		snprintf(msg, sizeof(msg), "%s", j->err);
		snprintf(j->err, j->errlen, "%s: %s", j->where, msg);
	}
	return r;
}

int jfield_oom(struct jfield *j)
{
	snprintf(j->err, j->errlen, "out of memory");
	return -ENOMEM;
}

const char *jfield_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* names[0..n) as "a, b, c" into out, cut short if it does not fit. */
static void list(char *out, size_t size, const char *const *names, size_t n)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++)
		len += snprintf(out + len, size - len, "%s%s", i ? ", " : "", names[i]);
}

static bool is_key(const char *key, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

int jfield_only_keys(struct jfield *j, json_t *o, const char *const *keys)
{
	const char *key;
	json_t *v;
	size_t n = 0;

	while (keys[n])
		n++;
	json_object_foreach(o, key, v)
	{
		char expected[256];
		if (is_key(key, keys))
			continue;
		list(expected, sizeof(expected), keys, n);
		return jfield_obj_err(j, "unknown field '%.64s' (expected one of: %s)", key,
				      expected);
	}
	return 0;
}

size_t jfield_other_keys(json_t *o, const char *const *keys, char *out, size_t size)
{
	const char *key;
	json_t *v;
	size_t n = 0, len = 0;

	if (size)
		out[0] = '\0';
	json_object_foreach(o, key, v)
	{
		if (is_key(key, keys))
			continue;
		if (len < size)
			len += snprintf(out + len, size - len, "%s'%.64s'", n ? ", " : "", key);
		n++;
	}
	return n;
}

int jfield_not_null(struct jfield *j, json_t *o, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (json_is_null(json_object_get(o, keys[i])))
			return jfield_err(
			    j, keys[i], "null is not a value here (leave it out for its default)");
	return 0;
}

json_t *jfield_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return v && !json_is_null(v) ? v : NULL;
}

int jfield_missing(struct jfield *j, const char *key)
{
	return jfield_obj_err(j, "missing required field '%s'", key);
}

/* The member key, or NULL with *r set: 0 when absent and optional. */
static json_t *get(struct jfield *j, json_t *o, const char *key, bool required, bool *present,
		   int *r)
{
	json_t *v = jfield_member(o, key);

	if (present)
		*present = v != NULL;
	*r = !v && required ? jfield_missing(j, key) : 0;
	return v;
}

int jfield_str(struct jfield *j, json_t *o, const char *key, bool required, char **out)
{
	int r;
	json_t *v = get(j, o, key, required, NULL, &r);

	if (!v)
		return r;
	if (!json_is_string(v))
		return jfield_err(j, key, "expected a string, got %s", jfield_type_name(v));
	free(*out);
	/* Without JSON_ALLOW_NUL, jansson refuses a \u0000 in a string. */
	if (!(*out = strdup(json_string_value(v))))
		return jfield_oom(j);
	return 0;
}

int jfield_bool(struct jfield *j, json_t *o, const char *key, bool required, bool *out,
		bool *present)
{
	int r;
	json_t *v = get(j, o, key, required, present, &r);

	if (!v)
		return r;
	if (!json_is_boolean(v))
		return jfield_err(j, key, "expected true or false, got %s", jfield_type_name(v));
	*out = json_is_true(v);
	return 0;
}

int jfield_uint(struct jfield *j, json_t *o, const char *key, bool required, uint64_t lo,
		uint64_t hi, uint64_t *out, bool *present)
{
	int r;
	json_t *v = get(j, o, key, required, present, &r);
	json_int_t i;

	if (!v)
		return r;
	if (!json_is_integer(v))
		return jfield_err(j, key, "expected an integer, got %s", jfield_type_name(v));
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < lo || (uint64_t)i > hi)
		return jfield_err(j, key, "must be from %llu to %llu, got %lld",
				  (unsigned long long)lo, (unsigned long long)hi, (long long)i);
	*out = i;
	return 0;
}

int jfield_enum(struct jfield *j, json_t *o, const char *key, bool required,
		const char *const *names, size_t n, bool icase, int *out, bool *present)
{
	int r;
	json_t *v = get(j, o, key, required, present, &r);
	char expected[128];

	if (!v)
		return r;
	if (!json_is_string(v))
		return jfield_err(j, key, "expected a string, got %s", jfield_type_name(v));
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(v);
		if (icase ? !strcasecmp(s, names[i]) : !strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	list(expected, sizeof(expected), names, n);
	return jfield_err(j, key, "must be one of %s; got '%.32s'", expected, json_string_value(v));
}

int jfield_obj(struct jfield *j, json_t *o, const char *key, bool required, json_t **out)
{
	int r;
	json_t *v = get(j, o, key, required, NULL, &r);

	*out = NULL;
	if (!v)
		return r;
	if (!json_is_object(v))
		return jfield_err(j, key, "expected an object, got %s", jfield_type_name(v));
	*out = v;
	return 0;
}
