/* libFuzzer harness for flint serve's function configuration
 * (runner/serve/fn.c, with config/jfield.c behind it): the fuzzer plays a
 * client of PUT /functions/{name}. The input is the name from the path, a
 * line feed, then the body. A refusal must leave a message JSON can carry
 * and the configuration empty; an accepted configuration must keep every
 * rule fn.h states, and its encoding must parse back to the same
 * configuration and encode to the very same text. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "serve/fn.h"

static bool var_name(const char *s, size_t n)
{
	if (n == 0 || n > FN_ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
			return false;
	return true;
}

static void check_argv(char **argv, size_t n)
{
	CHECK(argv && n >= 1 && n <= FN_ARGV_MAX && !argv[n]);
	for (size_t i = 0; i < n; i++)
		CHECK(argv[i] && strlen(argv[i]) >= 1 && strlen(argv[i]) <= FN_WORD_MAX);
}

static void check_path(const char *p)
{
	CHECK(!p || (p[0] == '/' && strlen(p) <= FN_PATH_MAX));
}

static void check_config(const struct fn_config *c)
{
	char err[256];

	CHECK(fn_name_check(c->name, err, sizeof(err)) == 0);
	check_argv(c->command, c->command_len);
	if (c->prepare)
		check_argv(c->prepare, c->prepare_len);
	else
		CHECK(c->prepare_len == 0);
	CHECK(c->env_len <= FN_ENV_MAX && !c->env == !c->env_len);
	for (size_t i = 0; i < c->env_len; i++) {
		const char *eq = strchr(c->env[i], '=');

		CHECK(eq && var_name(c->env[i], eq - c->env[i]));
		CHECK(strlen(eq + 1) <= FN_ENV_VALUE_MAX);
	}
	CHECK(!c->env || !c->env[c->env_len]);
	CHECK(c->workdir);
	check_path(c->workdir);
	check_path(c->rootfs);
	check_path(c->kernel);
	CHECK(c->mem_mib >= FN_MEM_MIB_MIN && c->mem_mib <= FN_MEM_MIB_MAX);
	CHECK(c->vcpus >= 1 && c->vcpus <= FN_VCPUS_MAX);
	CHECK(c->timeout_s >= 1 && c->timeout_s <= FN_TIMEOUT_S_MAX);
	CHECK(c->max_concurrency >= 1 && c->max_concurrency <= FN_CONC_MAX);
	CHECK(c->min_warm <= c->max_concurrency);
	if (c->isolation == FN_REUSE)
		CHECK(c->reuse_max >= 1 && c->reuse_max <= FN_REUSE_MAX_MAX);
	else
		CHECK(c->isolation == FN_PER_REQUEST && c->reuse_max == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t name_len = nl ? (size_t)(nl - data) : size;
	char name[FN_NAME_MAX + 2], err[512];
	const char *body = nl ? (const char *)nl + 1 : "";
	size_t body_len = nl ? size - name_len - 1 : 0;
	struct fn_config c, back;
	char *text, *again;
	json_t *msg;
	int r;

	/* The path's name is a C string: longer ones only need to be refused
	 * as too long, which a name of FN_NAME_MAX + 1 bytes is. */
	if (name_len > FN_NAME_MAX + 1)
		name_len = FN_NAME_MAX + 1;
	memcpy(name, data, name_len);
	name[name_len] = '\0';

	err[0] = '\0';
	r = fn_config_parse(name, body, body_len, &c, err, sizeof(err));
	if (r < 0) {
		CHECK(r == -EINVAL);
		/* A message that a JSON fault_message can carry. */
		CHECK(err[0] != '\0');
		msg = json_string(err);
		CHECK(msg);
		json_decref(msg);
		CHECK(!c.command && !c.env && !c.workdir && !c.rootfs && !c.kernel && !c.prepare);
		fn_config_free(&c);
		return 0;
	}
	CHECK(r == 0);
	check_config(&c);

	text = fn_config_encode(&c);
	CHECK(text);
	CHECK(fn_config_parse(c.name, text, strlen(text), &back, err, sizeof(err)) == 0);
	CHECK(fn_config_equal(&c, &back));
	again = fn_config_encode(&back);
	CHECK(again && !strcmp(text, again));
	free(again);
	free(text);
	fn_config_free(&back);
	fn_config_free(&c);
	CHECK(!c.command && !c.workdir);
	return 0;
}
