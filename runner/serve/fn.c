/* fn: a function's configuration for flint serve. See fn.h. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"
#include "config/jfield.h"
#include "serve/fn.h"

static const char *const isolations[] = {"per-request", "reuse"};

int fn_name_check(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!(ch >= 'A' && ch <= 'Z') && !(ch >= 'a' && ch <= 'z') &&
		    !(ch >= '0' && ch <= '9') && ch != '_' && ch != '-')
			return err_set(err, errlen, -EINVAL,
				       "the function name in the path may hold only letters, "
				       "digits, '_' and '-'");
	}
	if (n == 0 || n > FN_NAME_MAX)
		return err_set(err, errlen, -EINVAL,
			       "the function name in the path must be 1 to %d characters, got %zu",
			       FN_NAME_MAX, n);
	return 0;
}

/* A NULL-terminated array of n strings, and the strings. */
static void free_argv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* Member key of o, an array of 1 to FN_ARGV_MAX strings of 1 to
 * FN_WORD_MAX bytes, into *out (NULL-terminated) and *n. Absent and not
 * required: *out stays NULL. (The JSON decoder refuses a NUL in a
 * string.) */
static int parse_argv(struct jfield *j, json_t *o, const char *key, bool required, char ***out,
		      size_t *n)
{
	json_t *v = jfield_member(o, key);
	size_t len, mark;
	char **argv;
	int r = 0;

	if (!v)
		return required ? jfield_missing(j, key) : 0;
	if (!json_is_array(v))
		return jfield_err(j, key, "expected an array of strings, got %s",
				  jfield_type_name(v));
	len = json_array_size(v);
	if (len == 0 || len > FN_ARGV_MAX)
		return jfield_err(j, key, "must hold 1 to %d strings, got %zu", FN_ARGV_MAX, len);
	if (!(argv = calloc(len + 1, sizeof(*argv))))
		return jfield_oom(j);
	for (size_t i = 0; i < len && r == 0; i++) {
		json_t *s = json_array_get(v, i);

		mark = jfield_enter(j, key, (int)i);
		if (!json_is_string(s))
			r = jfield_obj_err(j, "expected a string, got %s", jfield_type_name(s));
		else if (json_string_length(s) == 0)
			r = jfield_obj_err(j, "must not be empty");
		else if (json_string_length(s) > FN_WORD_MAX)
			r = jfield_obj_err(j, "longer than %d bytes (%zu)", FN_WORD_MAX,
					   json_string_length(s));
		else if (!(argv[i] = strdup(json_string_value(s))))
			r = jfield_oom(j);
		jfield_leave(j, mark);
	}
	if (r < 0) {
		free_argv(argv);
		return r;
	}
	*out = argv;
	*n = len;
	return 0;
}

/* A shell variable name: [A-Za-z_][A-Za-z0-9_]*. */
static bool var_name(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!(*s >= 'A' && *s <= 'Z') && !(*s >= 'a' && *s <= 'z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_')
			return false;
	return true;
}

/* Up to 32 bytes of s, with any byte but printable ASCII shown as '?', so
 * that a message never carries what JSON cannot (a UTF-8 sequence cut
 * short) nor a control character. */
static void printable(char *out, size_t size, const char *s)
{
	snprintf(out, size, "%.32s", s);
	ascii_printable(out);
}

/* Member "env", an object {NAME: value}, into c->env as "NAME=value"
 * strings in the object's order (jansson keeps it; duplicates are refused
 * when the body is read). */
static int parse_env(struct jfield *j, json_t *o, struct fn_config *c)
{
	const char *name;
	json_t *e, *v;
	size_t mark, n = 0;
	int r;

	if ((r = jfield_obj(j, o, "env", false, &e)) < 0 || !e)
		return r;
	if (json_object_size(e) > FN_ENV_MAX)
		return jfield_err(j, "env", "at most %d variables, got %zu", FN_ENV_MAX,
				  json_object_size(e));
	if (!(c->env = calloc(json_object_size(e) + 1, sizeof(*c->env))))
		return jfield_oom(j);
	mark = jfield_enter(j, "env", -1);
	json_object_foreach(e, name, v)
	{
		char shown[40];

		printable(shown, sizeof(shown), name);
		if (!var_name(name))
			r = jfield_obj_err(j,
					   "'%s' is not a variable name (letters, digits and '_', "
					   "not starting with a digit)",
					   shown);
		else if (strlen(name) > FN_ENV_NAME_MAX)
			r = jfield_obj_err(j, "variable name '%s...' longer than %d bytes", shown,
					   FN_ENV_NAME_MAX);
		else if (!json_is_string(v))
			r = jfield_err(j, name, "expected a string, got %s", jfield_type_name(v));
		else if (json_string_length(v) > FN_ENV_VALUE_MAX)
			r = jfield_err(j, name, "longer than %d bytes (%zu)", FN_ENV_VALUE_MAX,
				       json_string_length(v));
		else if (asprintf(&c->env[n], "%s=%s", name, json_string_value(v)) < 0) {
			c->env[n] = NULL; /* asprintf leaves it undefined */
			r = jfield_oom(j);
		} else {
			n++;
		}
		if (r < 0)
			break;
	}
	jfield_leave(j, mark);
	c->env_len = n;
	if (n == 0) {
		free(c->env);
		c->env = NULL;
	}
	return r;
}

/* Member key, if there, an absolute path of at most FN_PATH_MAX bytes. */
static int parse_path(struct jfield *j, json_t *o, const char *key, char **out)
{
	int r;

	if ((r = jfield_str(j, o, key, false, out)) < 0 || !*out)
		return r;
	if ((*out)[0] != '/')
		return jfield_err(j, key, "must be an absolute path");
	if (strlen(*out) > FN_PATH_MAX)
		return jfield_err(j, key, "longer than %d bytes", FN_PATH_MAX);
	return 0;
}

static size_t strings_bytes(char *const *v, size_t n)
{
	size_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += strlen(v[i]) + 1;
	return sum;
}

/* argv key, c's environment and working directory go to the guest agent
 * in one request (AGENT_REQUEST's payload), which must fit its limit. */
static int check_request_size(struct jfield *j, const struct fn_config *c, const char *key,
			      char *const *argv, size_t argc)
{
	size_t size = AGENT_REQ_FIXED + strings_bytes(argv, argc) +
		      strings_bytes(c->env, c->env_len) + strlen(c->workdir) + 1;

	if (size > AGENT_REQUEST_MAX)
		return jfield_err(j, key,
				  "with env and workdir it takes %zu bytes, more than the %u the "
				  "guest agent takes",
				  size, AGENT_REQUEST_MAX);
	return 0;
}

static int parse_fields(struct jfield *j, json_t *o, struct fn_config *c)
{
	static const char *const keys[] = {"name",	"command",	   "env",      "workdir",
					   "rootfs",	"kernel",	   "mem_mib",  "vcpus",
					   "timeout_s", "max_concurrency", "min_warm", "isolation",
					   "reuse_max", "prepare",	   NULL};
	uint64_t mem = FN_MEM_MIB_DEFAULT, vcpus = FN_VCPUS_DEFAULT, timeout = FN_TIMEOUT_S_DEFAULT;
	uint64_t conc = FN_CONC_DEFAULT, warm = 0, reuse = FN_REUSE_MAX_DEFAULT;
	int iso = FN_PER_REQUEST, r;
	bool has_reuse;
	char *name = NULL;

	if ((r = jfield_only_keys(j, o, keys)) < 0 ||
	    (r = jfield_str(j, o, "name", false, &name)) < 0)
		return r;
	if (name && strcmp(name, c->name))
		r = jfield_err(j, "name", "does not match the function's name in the path, '%s'",
			       c->name);
	free(name);
	if (r < 0 || (r = parse_argv(j, o, "command", true, &c->command, &c->command_len)) < 0 ||
	    (r = parse_env(j, o, c)) < 0 || (r = parse_path(j, o, "workdir", &c->workdir)) < 0 ||
	    (r = parse_path(j, o, "rootfs", &c->rootfs)) < 0 ||
	    (r = parse_path(j, o, "kernel", &c->kernel)) < 0 ||
	    (r = jfield_uint(j, o, "mem_mib", false, FN_MEM_MIB_MIN, FN_MEM_MIB_MAX, &mem, NULL)) <
		0 ||
	    (r = jfield_uint(j, o, "vcpus", false, 1, FN_VCPUS_MAX, &vcpus, NULL)) < 0 ||
	    (r = jfield_uint(j, o, "timeout_s", false, 1, FN_TIMEOUT_S_MAX, &timeout, NULL)) < 0 ||
	    (r = jfield_uint(j, o, "max_concurrency", false, 1, FN_CONC_MAX, &conc, NULL)) < 0 ||
	    (r = jfield_uint(j, o, "min_warm", false, 0, FN_CONC_MAX, &warm, NULL)) < 0 ||
	    (r = jfield_enum(j, o, "isolation", false, isolations, ARRAY_SIZE(isolations), false,
			     &iso, NULL)) < 0 ||
	    (r = jfield_uint(j, o, "reuse_max", false, 1, FN_REUSE_MAX_MAX, &reuse, &has_reuse)) <
		0 ||
	    (r = parse_argv(j, o, "prepare", false, &c->prepare, &c->prepare_len)) < 0)
		return r;
	if (warm > conc)
		return jfield_err(j, "min_warm", "must be at most max_concurrency (%llu), got %llu",
				  (unsigned long long)conc, (unsigned long long)warm);
	if (has_reuse && iso != FN_REUSE)
		return jfield_err(j, "reuse_max", "only with isolation \"reuse\"");
	if (!c->workdir && !(c->workdir = strdup("/")))
		return jfield_oom(j);
	if ((r = check_request_size(j, c, "command", c->command, c->command_len)) < 0 ||
	    (c->prepare &&
	     (r = check_request_size(j, c, "prepare", c->prepare, c->prepare_len)) < 0))
		return r;
	c->mem_mib = mem;
	c->vcpus = vcpus;
	c->timeout_s = timeout;
	c->max_concurrency = conc;
	c->min_warm = warm;
	c->isolation = iso;
	c->reuse_max = iso == FN_REUSE ? reuse : 0;
	return 0;
}

/* The length of the UTF-8 sequence at s, or 0 when there is none (a
 * stray or missing continuation byte, an overlong form, a surrogate or
 * past U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* the NUL at the end too */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* jansson's and jfield's messages may quote the body's bytes, which may be
 * cut short ('%.32s') or not UTF-8 at all: each byte of err outside a
 * UTF-8 sequence becomes '?', so that a JSON answer can carry it. */
static void utf8_message(char *err)
{
	unsigned char *s = (unsigned char *)err;

	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0)
			*s++ = '?';
		else
			s += n;
	}
}

int fn_config_parse(const char *name, const char *body, size_t len, struct fn_config *c, char *err,
		    size_t errlen)
{
	struct jfield j = {.err = err, .errlen = errlen};
	json_t *o;
	int r;

	*c = (struct fn_config){0};
	if ((r = fn_name_check(name, err, errlen)) < 0)
		return r;
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (!(o = jfield_load(&j, body, len, "the body"))) {
		utf8_message(err);
		return -EINVAL;
	}
	r = parse_fields(&j, o, c);
	json_decref(o);
	if (r < 0) {
		utf8_message(err);
		fn_config_free(c);
	}
	return r;
}

/* argv as a JSON array of strings; JSON null when argv is NULL. */
static json_t *argv_json(char *const *argv, size_t n)
{
	json_t *a;

	if (!argv)
		return json_null();
	if (!(a = json_array()))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(argv[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *env_json(const struct fn_config *c)
{
	json_t *e = json_object();

	for (size_t i = 0; e && i < c->env_len; i++) {
		const char *eq = strchr(c->env[i], '=');
		char *name = eq ? strndup(c->env[i], eq - c->env[i]) : NULL;
		int r = name ? json_object_set_new(e, name, json_string(eq + 1)) : -1;

		free(name);
		if (r < 0) {
			json_decref(e);
			return NULL;
		}
	}
	return e;
}

/* A JSON string of s, or null when s is NULL. */
static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *fn_config_json(const struct fn_config *c)
{
	json_t *o = json_object();
	int r = 0;

	if (!o)
		return NULL;
	/* json_object_set_new takes v even when it fails, and fails on NULL. */
	r |= json_object_set_new(o, "name", json_string(c->name));
	r |= json_object_set_new(o, "command", argv_json(c->command, c->command_len));
	r |= json_object_set_new(o, "env", env_json(c));
	r |= json_object_set_new(o, "workdir", json_string(c->workdir ? c->workdir : "/"));
	r |= json_object_set_new(o, "rootfs", str_or_null(c->rootfs));
	r |= json_object_set_new(o, "kernel", str_or_null(c->kernel));
	r |= json_object_set_new(o, "mem_mib", json_integer(c->mem_mib));
	r |= json_object_set_new(o, "vcpus", json_integer(c->vcpus));
	r |= json_object_set_new(o, "timeout_s", json_integer(c->timeout_s));
	r |= json_object_set_new(o, "max_concurrency", json_integer(c->max_concurrency));
	r |= json_object_set_new(o, "min_warm", json_integer(c->min_warm));
	r |= json_object_set_new(o, "isolation", json_string(isolations[c->isolation]));
	if (c->isolation == FN_REUSE)
		r |= json_object_set_new(o, "reuse_max", json_integer(c->reuse_max));
	r |= json_object_set_new(o, "prepare", argv_json(c->prepare, c->prepare_len));
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *fn_config_encode(const struct fn_config *c)
{
	json_t *o = fn_config_json(c);
	char *s;

	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool argv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb || !a != !b)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

bool fn_config_equal(const struct fn_config *a, const struct fn_config *b)
{
	return !strcmp(a->name, b->name) &&
	       argv_eq(a->command, a->command_len, b->command, b->command_len) &&
	       argv_eq(a->env, a->env_len, b->env, b->env_len) && str_eq(a->workdir, b->workdir) &&
	       str_eq(a->rootfs, b->rootfs) && str_eq(a->kernel, b->kernel) &&
	       a->mem_mib == b->mem_mib && a->vcpus == b->vcpus && a->timeout_s == b->timeout_s &&
	       a->max_concurrency == b->max_concurrency && a->min_warm == b->min_warm &&
	       a->isolation == b->isolation && a->reuse_max == b->reuse_max &&
	       argv_eq(a->prepare, a->prepare_len, b->prepare, b->prepare_len);
}

void fn_config_free(struct fn_config *c)
{
	if (!c)
		return;
	free_argv(c->command);
	free_argv(c->env);
	free_argv(c->prepare);
	free(c->workdir);
	free(c->rootfs);
	free(c->kernel);
	*c = (struct fn_config){0};
}
