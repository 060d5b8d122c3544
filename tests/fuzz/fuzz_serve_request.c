/* libFuzzer harness for flint serve's request path as far as it reads the
 * client's bytes before a VM is involved: the endpoint from the method and
 * the path (runner/serve/route.c), then, for PUT /functions/{name}, the
 * body as a function's configuration under the name the path gave
 * (runner/serve/fn.c). libmicrohttpd parses the request line and headers
 * and hands over the method, the unescaped path and the body; the input
 * is "METHOD\nPATH\nBODY". Checked: a refusal is 400, 404 or 405 (405
 * with its methods) with a message; an endpoint that names a function
 * names one fn_name_check accepts, of at most FN_NAME_MAX bytes; a stderr
 * endpoint has an id from 1; a configuration parsed under that name
 * carries it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "serve/fn.h"
#include "serve/route.h"

/* The next line of data (NUL-terminated copy), or NULL past the end. */
static char *line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += n + (nl ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *method = line(&p, end), *path = line(&p, end), err[512];
	struct serve_route r;
	struct fn_config c;

	if (!method || !path)
		goto out;
	if (serve_route(method, path, &r) == SERVE_EP_NONE) {
		CHECK(r.status == 400 || r.status == 404 || r.status == 405);
		CHECK(r.err[0] && memchr(r.err, '\0', sizeof(r.err)));
		CHECK((r.status == 405) == (r.allow != NULL));
		goto out;
	}
	CHECK(r.ep >= SERVE_EP_INFO && r.ep <= SERVE_EP_METRICS);
	if (r.ep == SERVE_EP_INFO || r.ep == SERVE_EP_FN_LIST || r.ep == SERVE_EP_METRICS) {
		CHECK(!r.name[0]);
		goto out;
	}
	CHECK(strlen(r.name) <= FN_NAME_MAX && fn_name_check(r.name, err, sizeof(err)) == 0);
	size_t n = strlen(r.name);
	CHECK(!strncmp(path, "/functions/", 11) && !strncmp(path + 11, r.name, n) &&
	      (path[11 + n] == '/' || path[11 + n] == '\0'));
	CHECK((r.ep == SERVE_EP_STDERR) == (r.id != 0));
	if (r.ep == SERVE_EP_FN_PUT && fn_config_parse(r.name, (const char *)p, (size_t)(end - p),
						       &c, err, sizeof(err)) == 0) {
		CHECK(!strcmp(c.name, r.name));
		fn_config_free(&c);
	}
out:
	free(method);
	free(path);
	return 0;
}
