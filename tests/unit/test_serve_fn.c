/* fn (issue 13): the function configuration of PUT /functions/{name}. The
 * name from the path; every field given, every default; every refusal
 * with the message naming its field (unknown fields, wrong types, ranges,
 * empty and oversized strings, bad variable names, relative paths,
 * min_warm above max_concurrency, reuse_max without "reuse", a body name
 * that differs, a request too big for the guest agent); the encoding with
 * defaults filled in, parsed back to the same configuration; equality;
 * free. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"
#include "serve/fn.h"

static char err[512];

#define ERR_IS(s)  cr_assert_str_eq(err, s)
#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "'%s' not in '%s'", s, err)

static int parse(const char *name, const char *body, struct fn_config *c)
{
	err[0] = '\0';
	return fn_config_parse(name, body, strlen(body), c, err, sizeof(err));
}

/* body must be refused with exactly msg, leaving c empty. */
static void refused(const char *body, const char *msg)
{
	struct fn_config c;

	cr_assert_eq(parse("f", body, &c), -EINVAL, "accepted: %s", body);
	cr_assert_str_eq(err, msg, "for %s", body);
	cr_assert_null(c.command);
	cr_assert_null(c.env);
	cr_assert_null(c.workdir);
	cr_assert_null(c.prepare);
}

/* c encoded, and parsed back under its name: the same configuration. */
static void round_trip(const struct fn_config *c)
{
	char *text = fn_config_encode(c);
	struct fn_config back;

	cr_assert_not_null(text);
	cr_assert_eq(parse(c->name, text, &back), 0, "%s: %s", text, err);
	cr_assert(fn_config_equal(c, &back), "%s", text);
	/* And the second encoding is the first's very text. */
	char *again = fn_config_encode(&back);
	cr_assert_str_eq(again, text);
	free(again);
	fn_config_free(&back);
	free(text);
}

Test(serve_fn, name_from_the_path)
{
	static const char *const good[] = {
	    "f", "hello-world_2", "A_b-C",
	    "0123456789012345678901234567890123456789012345678901234567890123"};
	static const char *const bad_chars[] = {"a b", "a/b", "a.b", "ä", "a\n", "..", "a=b"};
	struct fn_config c;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_assert_eq(parse(good[i], "{\"command\": [\"true\"]}", &c), 0, "%s: %s", good[i],
			     err);
		cr_assert_str_eq(c.name, good[i]);
		fn_config_free(&c);
	}
	for (size_t i = 0; i < sizeof(bad_chars) / sizeof(bad_chars[0]); i++) {
		cr_assert_eq(parse(bad_chars[i], "{\"command\": [\"true\"]}", &c), -EINVAL);
		ERR_IS("the function name in the path may hold only letters, digits, '_' and '-'");
	}
	cr_assert_eq(parse("", "{\"command\": [\"true\"]}", &c), -EINVAL);
	ERR_IS("the function name in the path must be 1 to 64 characters, got 0");
	cr_assert_eq(parse("01234567890123456789012345678901234567890123456789012345678901234",
			   "{\"command\": [\"true\"]}", &c),
		     -EINVAL);
	ERR_IS("the function name in the path must be 1 to 64 characters, got 65");
	cr_assert_eq(fn_name_check("ok-name", err, sizeof(err)), 0);
}

Test(serve_fn, defaults)
{
	struct fn_config c;

	cr_assert_eq(parse("echo", "{\"command\": [\"cat\"]}", &c), 0, "%s", err);
	cr_assert_str_eq(c.name, "echo");
	cr_assert_eq(c.command_len, 1);
	cr_assert_str_eq(c.command[0], "cat");
	cr_assert_null(c.command[1]);
	cr_assert_null(c.env);
	cr_assert_eq(c.env_len, 0);
	cr_assert_str_eq(c.workdir, "/");
	cr_assert_null(c.rootfs);
	cr_assert_null(c.kernel);
	cr_assert_eq(c.mem_mib, 128);
	cr_assert_eq(c.vcpus, 1);
	cr_assert_eq(c.timeout_s, 30);
	cr_assert_eq(c.max_concurrency, 4);
	cr_assert_eq(c.min_warm, 0);
	cr_assert_eq(c.isolation, FN_PER_REQUEST);
	cr_assert_eq(c.reuse_max, 0);
	cr_assert_null(c.prepare);
	cr_assert_eq(c.prepare_len, 0);
	fn_config_free(&c);

	/* A null member is an absent one. */
	cr_assert_eq(parse("f",
			   "{\"command\": [\"cat\"], \"env\": null, \"workdir\": null, \"rootfs\": "
			   "null, \"kernel\": null, \"mem_mib\": null, \"vcpus\": null, "
			   "\"timeout_s\": null, \"max_concurrency\": null, \"min_warm\": null, "
			   "\"isolation\": null, \"reuse_max\": null, \"prepare\": null, "
			   "\"name\": null}",
			   &c),
		     0, "%s", err);
	cr_assert_str_eq(c.workdir, "/");
	cr_assert_eq(c.mem_mib, 128);
	cr_assert_eq(c.isolation, FN_PER_REQUEST);
	cr_assert_eq(c.reuse_max, 0);
	fn_config_free(&c);

	/* reuse's own default. */
	cr_assert_eq(parse("f", "{\"command\": [\"cat\"], \"isolation\": \"reuse\"}", &c), 0);
	cr_assert_eq(c.isolation, FN_REUSE);
	cr_assert_eq(c.reuse_max, 100);
	fn_config_free(&c);
}

static const char every_field[] =
    "{\"name\": \"py\", \"command\": [\"python3\", \"-c\", \"import sys; "
    "print(sys.stdin.read())\"],"
    " \"env\": {\"PATH\": \"/usr/bin:/bin\", \"_x9\": \"\", \"LANG\": \"C.UTF-8\"},"
    " \"workdir\": \"/srv/app\", \"rootfs\": \"/var/lib/flint/py.ext4\","
    " \"kernel\": \"/var/lib/flint/vmlinux\", \"mem_mib\": 512, \"vcpus\": 2, \"timeout_s\": 60,"
    " \"max_concurrency\": 16, \"min_warm\": 3, \"isolation\": \"reuse\", \"reuse_max\": 7,"
    " \"prepare\": [\"python3\", \"-c\", \"import json\"]}";

Test(serve_fn, every_field)
{
	struct fn_config c;

	cr_assert_eq(parse("py", every_field, &c), 0, "%s", err);
	cr_assert_eq(c.command_len, 3);
	cr_assert_str_eq(c.command[0], "python3");
	cr_assert_str_eq(c.command[1], "-c");
	cr_assert_str_eq(c.command[2], "import sys; print(sys.stdin.read())");
	cr_assert_null(c.command[3]);
	/* In the body's order. */
	cr_assert_eq(c.env_len, 3);
	cr_assert_str_eq(c.env[0], "PATH=/usr/bin:/bin");
	cr_assert_str_eq(c.env[1], "_x9=");
	cr_assert_str_eq(c.env[2], "LANG=C.UTF-8");
	cr_assert_null(c.env[3]);
	cr_assert_str_eq(c.workdir, "/srv/app");
	cr_assert_str_eq(c.rootfs, "/var/lib/flint/py.ext4");
	cr_assert_str_eq(c.kernel, "/var/lib/flint/vmlinux");
	cr_assert_eq(c.mem_mib, 512);
	cr_assert_eq(c.vcpus, 2);
	cr_assert_eq(c.timeout_s, 60);
	cr_assert_eq(c.max_concurrency, 16);
	cr_assert_eq(c.min_warm, 3);
	cr_assert_eq(c.isolation, FN_REUSE);
	cr_assert_eq(c.reuse_max, 7);
	cr_assert_eq(c.prepare_len, 3);
	cr_assert_str_eq(c.prepare[2], "import json");
	cr_assert_null(c.prepare[3]);
	round_trip(&c);
	fn_config_free(&c);
	/* Freed and zeroed: a second free is harmless. */
	cr_assert_null(c.command);
	fn_config_free(&c);
	fn_config_free(NULL);
}

Test(serve_fn, bounds_accepted)
{
	static const char *const bodies[] = {
	    "{\"command\": [\"x\"], \"mem_mib\": 16, \"vcpus\": 32, \"timeout_s\": 1,"
	    " \"max_concurrency\": 1, \"min_warm\": 1}",
	    "{\"command\": [\"x\"], \"mem_mib\": 65536, \"vcpus\": 1, \"timeout_s\": 3600,"
	    " \"max_concurrency\": 1024, \"min_warm\": 1024}",
	    "{\"command\": [\"x\"], \"isolation\": \"reuse\", \"reuse_max\": 1}",
	    "{\"command\": [\"x\"], \"isolation\": \"reuse\", \"reuse_max\": 1000000}",
	    "{\"command\": [\"x\"], \"isolation\": \"per-request\"}",
	    "{\"command\": [\"x\"], \"env\": {}}",
	    "{\"command\": [\"x\"], \"workdir\": \"/\"}",
	};
	struct fn_config c;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		cr_assert_eq(parse("f", bodies[i], &c), 0, "%s: %s", bodies[i], err);
		round_trip(&c);
		fn_config_free(&c);
	}
}

Test(serve_fn, body_and_unknown_fields)
{
	refused("", "the body is not valid JSON: unexpected token near end of file (line 1, "
		    "column 0)");
	refused("[1]", "the body must be a JSON object, not an array");
	refused("{\"command\": [\"x\"], \"command\": [\"y\"]}",
		"the body is not valid JSON: duplicate object key near '\"command\"' (line 1, "
		"column 28)");
	refused("{\"command\": [\"x\"], \"memory\": 5}",
		"unknown field 'memory' (expected one of: name, command, env, workdir, rootfs, "
		"kernel, mem_mib, vcpus, timeout_s, max_concurrency, min_warm, isolation, "
		"reuse_max, prepare)");
	refused("{}", "missing required field 'command'");
	refused("{\"command\": null}", "missing required field 'command'");
	/* The JSON decoder refuses a NUL in any string. */
	struct fn_config c;
	cr_assert_eq(parse("f", "{\"command\": [\"a\\u0000b\"]}", &c), -EINVAL);
	ERR_HAS("the body is not valid JSON: \\u0000 is not allowed");
	cr_assert_eq(parse("f", "{\"command\": [\"x\"], \"env\": {\"A\": \"\\u0000\"}}", &c),
		     -EINVAL);
	ERR_HAS("the body is not valid JSON: \\u0000 is not allowed");
}

/* Whether s is UTF-8 (a JSON answer can carry it). */
static bool is_utf8(const char *s)
{
	json_t *j = json_string(s);

	json_decref(j);
	return j != NULL;
}

Test(serve_fn, messages_are_utf8)
{
	struct fn_config c;

	/* jansson quotes the bad escape's bytes up to half of U+079D. */
	cr_assert_eq(parse("f", "{\"command\": [\"a\\\xde\x9d\"]}", &c), -EINVAL);
	ERR_IS("the body is not valid JSON: invalid escape near '\"a\\?' (line 1, column 17)");
	cr_assert(is_utf8(err));
	/* jfield cuts a value at 32 bytes, in the middle of an 'é' here; the
	 * whole ones stay. */
	cr_assert_eq(
	    parse("f",
		  "{\"command\": [\"x\"], \"isolation\": \"x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
		  "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
		  "\xa9\xc3\xa9\"}",
		  &c),
	    -EINVAL);
	ERR_IS(
	    "isolation: must be one of per-request, reuse; got "
	    "'x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
	    "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9?'");
	cr_assert(is_utf8(err));
	/* An unknown field named in UTF-8 comes back as it was. */
	cr_assert_eq(parse("f", "{\"command\": [\"x\"], \"\xc3\xa9\": 1}", &c), -EINVAL);
	ERR_HAS("unknown field '\xc3\xa9'");
}

Test(serve_fn, name_in_the_body)
{
	struct fn_config c;

	cr_assert_eq(parse("f", "{\"name\": \"f\", \"command\": [\"x\"]}", &c), 0, "%s", err);
	fn_config_free(&c);
	refused("{\"name\": \"g\", \"command\": [\"x\"]}",
		"name: does not match the function's name in the path, 'f'");
	refused("{\"name\": 5, \"command\": [\"x\"]}", "name: expected a string, got an integer");
}

Test(serve_fn, command_and_prepare_refusals)
{
	static const char *const keys[] = {"command", "prepare"};
	char body[256], msg[256];

	for (int k = 0; k < 2; k++) {
		const char *key = keys[k];
		/* prepare next to a good command, command alone. */
		const char *pre = k ? "\"command\": [\"x\"], " : "";
		struct {
			const char *value, *msg;
		} cases[] = {
		    {"\"ls\"", "%s: expected an array of strings, got a string"},
		    {"{}", "%s: expected an array of strings, got an object"},
		    {"[]", "%s: must hold 1 to 256 strings, got 0"},
		    {"[\"a\", 1]", "%s[1]: expected a string, got an integer"},
		    {"[\"a\", null]", "%s[1]: expected a string, got null"},
		    {"[[\"a\"]]", "%s[0]: expected a string, got an array"},
		    {"[\"a\", \"\"]", "%s[1]: must not be empty"},
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			snprintf(body, sizeof(body), "{%s\"%s\": %s}", pre, key, cases[i].value);
			snprintf(msg, sizeof(msg), cases[i].msg, key);
			refused(body, msg);
		}
	}
}

/* A JSON array of n copies of the word of len bytes ('a's). */
static char *words(size_t n, size_t len)
{
	size_t size = n * (len + 3) + 3, pos = 0;
	char *s = malloc(size);

	cr_assert_not_null(s);
	s[pos++] = '[';
	for (size_t i = 0; i < n; i++) {
		s[pos++] = i ? ',' : ' ';
		s[pos++] = '"';
		memset(s + pos, 'a', len);
		pos += len;
		s[pos++] = '"';
	}
	s[pos++] = ']';
	s[pos] = '\0';
	return s;
}

static int parse_key_value(const char *key, const char *value, struct fn_config *c)
{
	char *body;
	int r;

	if (!strcmp(key, "command"))
		cr_assert(asprintf(&body, "{\"command\": %s}", value) > 0);
	else
		cr_assert(asprintf(&body, "{\"command\": [\"x\"], \"%s\": %s}", key, value) > 0);
	r = parse("f", body, c);
	free(body);
	return r;
}

Test(serve_fn, argv_sizes)
{
	struct fn_config c;
	char *w;

	/* 256 words of 4096 bytes take more than the agent's request; 256
	 * short words and a few long ones fit. */
	w = words(256, 8);
	cr_assert_eq(parse_key_value("command", w, &c), 0, "%s", err);
	cr_assert_eq(c.command_len, 256);
	cr_assert_null(c.command[256]);
	round_trip(&c);
	fn_config_free(&c);
	free(w);
	w = words(257, 1);
	cr_assert_eq(parse_key_value("command", w, &c), -EINVAL);
	ERR_IS("command: must hold 1 to 256 strings, got 257");
	free(w);
	w = words(3, 4096);
	cr_assert_eq(parse_key_value("prepare", w, &c), 0, "%s", err);
	cr_assert_eq(strlen(c.prepare[2]), 4096);
	round_trip(&c);
	fn_config_free(&c);
	free(w);
	w = words(2, 4097);
	cr_assert_eq(parse_key_value("prepare", w, &c), -EINVAL);
	ERR_IS("prepare[0]: longer than 4096 bytes (4097)");
	free(w);
	/* A multi-byte character counts its bytes: 2048 'é's are 4096 bytes. */
	{
		char *body = malloc(2048 * 2 + 64), *p;

		p = body + sprintf(body, "{\"command\": [\"");
		for (int i = 0; i < 2048; i++)
			p += sprintf(p, "\xc3\xa9");
		strcpy(p, "\"]}");
		cr_assert_eq(parse("f", body, &c), 0, "%s", err);
		fn_config_free(&c);
		strcpy(p, "e\"]}");
		cr_assert_eq(parse("f", body, &c), -EINVAL);
		ERR_IS("command[0]: longer than 4096 bytes (4097)");
		free(body);
	}
}

Test(serve_fn, request_too_big_for_the_agent)
{
	struct fn_config c;
	char *w = words(256, 4096);
	char msg[256];
	size_t size = AGENT_REQ_FIXED + 256 * 4097 + 2;

	cr_assert_eq(parse_key_value("command", w, &c), -EINVAL);
	snprintf(msg, sizeof(msg),
		 "command: with env and workdir it takes %zu bytes, more than the %u the guest "
		 "agent takes",
		 size, AGENT_REQUEST_MAX);
	ERR_IS(msg);
	cr_assert_eq(parse_key_value("prepare", w, &c), -EINVAL);
	snprintf(msg, sizeof(msg),
		 "prepare: with env and workdir it takes %zu bytes, more than the %u the guest "
		 "agent takes",
		 size, AGENT_REQUEST_MAX);
	ERR_IS(msg);
	free(w);

	/* Exactly the limit fits: words and a workdir that fill it. 255
	 * words of 4096 bytes and one of n, workdir "/". */
	size_t n = AGENT_REQUEST_MAX - AGENT_REQ_FIXED - 255 * 4097 - 1 - 2;
	cr_assert(n >= 1 && n <= 4096, "%zu", n);
	char *body = malloc(300 * 4100), *p = body;
	p += sprintf(p, "{\"command\": [");
	for (int i = 0; i < 256; i++) {
		size_t len = i < 255 ? 4096 : n;
		p += sprintf(p, "%s\"", i ? "," : "");
		memset(p, 'a', len);
		p += len;
		*p++ = '"';
	}
	strcpy(p, "]}");
	cr_assert_eq(parse("f", body, &c), 0, "%s", err);
	fn_config_free(&c);
	/* One byte more of workdir does not. */
	strcpy(p, "], \"workdir\": \"/a\"}");
	cr_assert_eq(parse("f", body, &c), -EINVAL);
	ERR_HAS("command: with env and workdir it takes 1048577 bytes");
	free(body);
}

Test(serve_fn, env_refusals)
{
	char big[FN_ENV_VALUE_MAX + 64];

	refused("{\"command\": [\"x\"], \"env\": [\"A=1\"]}",
		"env: expected an object, got an array");
	refused("{\"command\": [\"x\"], \"env\": \"A=1\"}",
		"env: expected an object, got a string");
	refused("{\"command\": [\"x\"], \"env\": {\"A\": 1}}",
		"env.A: expected a string, got an integer");
	refused("{\"command\": [\"x\"], \"env\": {\"A\": null}}",
		"env.A: expected a string, got null");
	refused("{\"command\": [\"x\"], \"env\": {\"A\": true}}",
		"env.A: expected a string, got a boolean");
	static const char *const bad[][2] = {
	    {"", "''"},
	    {"1A", "'1A'"},
	    {"A-B", "'A-B'"},
	    {"A=B", "'A=B'"},
	    {"A B", "'A B'"},
	    {"\\n", "'?'"},
	    {"\xc3\xa9t\xc3\xa9", "'?\?t?\?'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[128], msg[256];

		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"env\": {\"%s\": \"v\"}}",
			 bad[i][0]);
		snprintf(msg, sizeof(msg),
			 "env: %s is not a variable name (letters, digits and '_', not starting "
			 "with a digit)",
			 bad[i][1]);
		refused(body, msg);
	}
	/* Long names: 128 bytes, not 129. */
	{
		char body[512], name[140];
		struct fn_config c;

		memset(name, 'N', 128);
		name[128] = '\0';
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"env\": {\"%s\": \"v\"}}",
			 name);
		cr_assert_eq(parse("f", body, &c), 0, "%s", err);
		round_trip(&c);
		fn_config_free(&c);
		strcat(name, "N");
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"env\": {\"%s\": \"v\"}}",
			 name);
		refused(body,
			"env: variable name 'NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN...' longer than "
			"128 bytes");
	}
	/* Values: 4096 bytes, not 4097. */
	{
		char *body = malloc(sizeof(big) + 64);
		struct fn_config c;

		memset(big, 'v', FN_ENV_VALUE_MAX);
		big[FN_ENV_VALUE_MAX] = '\0';
		sprintf(body, "{\"command\": [\"x\"], \"env\": {\"V\": \"%s\"}}", big);
		cr_assert_eq(parse("f", body, &c), 0, "%s", err);
		cr_assert_eq(strlen(c.env[0]), 2 + FN_ENV_VALUE_MAX);
		fn_config_free(&c);
		strcat(big, "v");
		sprintf(body, "{\"command\": [\"x\"], \"env\": {\"V\": \"%s\"}}", big);
		refused(body, "env.V: longer than 4096 bytes (4097)");
		free(body);
	}
	/* Duplicates are the decoder's to refuse. */
	{
		struct fn_config c;

		cr_assert_eq(
		    parse("f", "{\"command\": [\"x\"], \"env\": {\"A\": \"1\", \"A\": \"2\"}}", &c),
		    -EINVAL);
		ERR_HAS("duplicate object key");
	}
}

Test(serve_fn, env_count)
{
	char *body = malloc(300 * 16 + 64), *p = body;
	struct fn_config c;

	p += sprintf(p, "{\"command\": [\"x\"], \"env\": {");
	for (int i = 0; i < 256; i++)
		p += sprintf(p, "%s\"V%d\": \"%d\"", i ? "," : "", i, i);
	strcpy(p, "}}");
	cr_assert_eq(parse("f", body, &c), 0, "%s", err);
	cr_assert_eq(c.env_len, 256);
	cr_assert_str_eq(c.env[255], "V255=255");
	cr_assert_null(c.env[256]);
	round_trip(&c);
	fn_config_free(&c);
	sprintf(p, ", \"V256\": \"\"}}");
	refused(body, "env: at most 256 variables, got 257");
	free(body);
}

Test(serve_fn, path_refusals)
{
	static const char *const keys[] = {"workdir", "rootfs", "kernel"};
	char body[5000 + 64], msg[128];

	for (int k = 0; k < 3; k++) {
		struct fn_config c;
		char *p;

		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": \"rel/path\"}",
			 keys[k]);
		snprintf(msg, sizeof(msg), "%s: must be an absolute path", keys[k]);
		refused(body, msg);
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": \"\"}", keys[k]);
		refused(body, msg);
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": 7}", keys[k]);
		snprintf(msg, sizeof(msg), "%s: expected a string, got an integer", keys[k]);
		refused(body, msg);
		/* 4095 bytes, not 4096. */
		p = body + sprintf(body, "{\"command\": [\"x\"], \"%s\": \"/", keys[k]);
		memset(p, 'p', 4094);
		strcpy(p + 4094, "\"}");
		cr_assert_eq(parse("f", body, &c), 0, "%s", err);
		round_trip(&c);
		fn_config_free(&c);
		strcpy(p + 4094, "p\"}");
		snprintf(msg, sizeof(msg), "%s: longer than 4095 bytes", keys[k]);
		refused(body, msg);
	}
}

Test(serve_fn, number_refusals)
{
	static const struct {
		const char *key, *lo, *hi, *range;
	} nums[] = {
	    {"mem_mib", "15", "65537", "from 16 to 65536"},
	    {"vcpus", "0", "33", "from 1 to 32"},
	    {"timeout_s", "0", "3601", "from 1 to 3600"},
	    {"max_concurrency", "0", "1025", "from 1 to 1024"},
	    {"min_warm", "-1", "1025", "from 0 to 1024"},
	};
	char body[256], msg[256];

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		const char *key = nums[i].key;
		const char *vals[] = {nums[i].lo, nums[i].hi};

		for (int v = 0; v < 2; v++) {
			snprintf(body, sizeof(body),
				 "{\"command\": [\"x\"], \"max_concurrency\": 1024, \"%s\": %s}",
				 key, vals[v]);
			if (!strcmp(key, "max_concurrency"))
				snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": %s}",
					 key, vals[v]);
			snprintf(msg, sizeof(msg), "%s: must be %s, got %s", key, nums[i].range,
				 vals[v]);
			refused(body, msg);
		}
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": \"4\"}", key);
		snprintf(msg, sizeof(msg), "%s: expected an integer, got a string", key);
		refused(body, msg);
		snprintf(body, sizeof(body), "{\"command\": [\"x\"], \"%s\": 4.0}", key);
		snprintf(msg, sizeof(msg),
			 "%s: expected an integer, got a number with a fraction or exponent", key);
		refused(body, msg);
	}
	refused("{\"command\": [\"x\"], \"min_warm\": 5}",
		"min_warm: must be at most max_concurrency (4), got 5");
	refused("{\"command\": [\"x\"], \"max_concurrency\": 2, \"min_warm\": 3}",
		"min_warm: must be at most max_concurrency (2), got 3");
}

Test(serve_fn, isolation_refusals)
{
	refused("{\"command\": [\"x\"], \"isolation\": \"Reuse\"}",
		"isolation: must be one of per-request, reuse; got 'Reuse'");
	refused("{\"command\": [\"x\"], \"isolation\": \"none\"}",
		"isolation: must be one of per-request, reuse; got 'none'");
	refused("{\"command\": [\"x\"], \"isolation\": 1}",
		"isolation: expected a string, got an integer");
	refused("{\"command\": [\"x\"], \"reuse_max\": 5}",
		"reuse_max: only with isolation \"reuse\"");
	refused("{\"command\": [\"x\"], \"isolation\": \"per-request\", \"reuse_max\": 100}",
		"reuse_max: only with isolation \"reuse\"");
	refused("{\"command\": [\"x\"], \"isolation\": \"reuse\", \"reuse_max\": 0}",
		"reuse_max: must be from 1 to 1000000, got 0");
	refused("{\"command\": [\"x\"], \"isolation\": \"reuse\", \"reuse_max\": 1000001}",
		"reuse_max: must be from 1 to 1000000, got 1000001");
}

Test(serve_fn, encoding)
{
	struct fn_config c;
	char *text;

	cr_assert_eq(parse("echo", "{\"command\": [\"cat\", \"-\"]}", &c), 0);
	text = fn_config_encode(&c);
	cr_assert_str_eq(
	    text, "{\"name\":\"echo\",\"command\":[\"cat\",\"-\"],\"env\":{},\"workdir\":\"/\","
		  "\"rootfs\":null,\"kernel\":null,\"mem_mib\":128,\"vcpus\":1,"
		  "\"timeout_s\":30,\"max_concurrency\":4,\"min_warm\":0,"
		  "\"isolation\":\"per-request\",\"prepare\":null}");
	free(text);
	round_trip(&c);
	fn_config_free(&c);

	cr_assert_eq(parse("py", every_field, &c), 0);
	text = fn_config_encode(&c);
	cr_assert_str_eq(
	    text, "{\"name\":\"py\",\"command\":[\"python3\",\"-c\",\"import sys; "
		  "print(sys.stdin.read())\"],\"env\":{\"PATH\":\"/usr/bin:/bin\",\"_x9\":\"\","
		  "\"LANG\":\"C.UTF-8\"},\"workdir\":\"/srv/app\",\"rootfs\":\"/var/lib/flint/"
		  "py.ext4\",\"kernel\":\"/var/lib/flint/vmlinux\",\"mem_mib\":512,\"vcpus\":2,"
		  "\"timeout_s\":60,\"max_concurrency\":16,\"min_warm\":3,\"isolation\":\"reuse\","
		  "\"reuse_max\":7,\"prepare\":[\"python3\",\"-c\",\"import json\"]}");
	free(text);
	fn_config_free(&c);

	/* Strings that JSON escapes come back as they were. */
	cr_assert_eq(parse("q",
			   "{\"command\": [\"sh\", \"-c\", \"echo \\\"a\\\\b\\\"\\n\\t\\u00e9\"], "
			   "\"env\": {\"Q\": \"\\\"\\\\\\n\"}}",
			   &c),
		     0, "%s", err);
	cr_assert_str_eq(c.command[2], "echo \"a\\b\"\n\t\xc3\xa9");
	cr_assert_str_eq(c.env[0], "Q=\"\\\n");
	round_trip(&c);
	fn_config_free(&c);
}

Test(serve_fn, json_object)
{
	struct fn_config c;
	json_t *o;

	cr_assert_eq(parse("f", "{\"command\": [\"x\"], \"isolation\": \"reuse\"}", &c), 0);
	o = fn_config_json(&c);
	cr_assert_not_null(o);
	cr_assert_eq(json_integer_value(json_object_get(o, "reuse_max")), 100);
	cr_assert_str_eq(json_string_value(json_object_get(o, "isolation")), "reuse");
	cr_assert(json_is_null(json_object_get(o, "rootfs")));
	cr_assert_eq(json_object_size(o), 14);
	json_decref(o);
	fn_config_free(&c);
}

/* A configuration built by hand with an env entry that is not NAME=value
 * is refused by the encoder, not read past. */
Test(serve_fn, encoding_a_bad_hand_made_env)
{
	char *env[] = {"NOEQUALS", NULL}, *argv[] = {"x", NULL};
	struct fn_config c = {.name = "f",
			      .command = argv,
			      .command_len = 1,
			      .env = env,
			      .env_len = 1,
			      .mem_mib = 128,
			      .vcpus = 1,
			      .timeout_s = 1,
			      .max_concurrency = 1};

	cr_assert_null(fn_config_json(&c));
	cr_assert_null(fn_config_encode(&c));
}

Test(serve_fn, equality)
{
	struct fn_config a, b;
	static const char *const differ[] = {
	    "{\"command\": [\"x\", \"y\"]}",
	    "{\"command\": [\"y\"]}",
	    "{\"command\": [\"x\"], \"env\": {\"A\": \"1\"}}",
	    "{\"command\": [\"x\"], \"workdir\": \"/tmp\"}",
	    "{\"command\": [\"x\"], \"rootfs\": \"/r\"}",
	    "{\"command\": [\"x\"], \"kernel\": \"/k\"}",
	    "{\"command\": [\"x\"], \"mem_mib\": 256}",
	    "{\"command\": [\"x\"], \"vcpus\": 2}",
	    "{\"command\": [\"x\"], \"timeout_s\": 5}",
	    "{\"command\": [\"x\"], \"max_concurrency\": 5}",
	    "{\"command\": [\"x\"], \"min_warm\": 1}",
	    "{\"command\": [\"x\"], \"isolation\": \"reuse\"}",
	    "{\"command\": [\"x\"], \"prepare\": [\"x\"]}",
	};

	cr_assert_eq(parse("f", "{\"command\": [\"x\"]}", &a), 0);
	cr_assert_eq(parse("f", "{\"command\": [\"x\"], \"mem_mib\": 128, \"workdir\": \"/\"}", &b),
		     0);
	cr_assert(fn_config_equal(&a, &b));
	fn_config_free(&b);
	cr_assert_eq(parse("g", "{\"command\": [\"x\"]}", &b), 0);
	cr_assert_not(fn_config_equal(&a, &b));
	fn_config_free(&b);
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		cr_assert_eq(parse("f", differ[i], &b), 0, "%s: %s", differ[i], err);
		cr_assert_not(fn_config_equal(&a, &b), "%s", differ[i]);
		cr_assert_not(fn_config_equal(&b, &a), "%s", differ[i]);
		fn_config_free(&b);
	}
	fn_config_free(&a);
	/* Environment order counts (the guest sees it). */
	cr_assert_eq(
	    parse("f", "{\"command\": [\"x\"], \"env\": {\"A\": \"1\", \"B\": \"2\"}}", &a), 0);
	cr_assert_eq(
	    parse("f", "{\"command\": [\"x\"], \"env\": {\"B\": \"2\", \"A\": \"1\"}}", &b), 0);
	cr_assert_not(fn_config_equal(&a, &b));
	fn_config_free(&a);
	fn_config_free(&b);
}
