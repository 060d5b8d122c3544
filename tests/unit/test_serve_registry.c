/* registry: flint serve's registration of a function as far as it goes
 * before a VM is involved: a kernel or root image that is not a readable
 * regular file is refused with 400, the message naming the path and what
 * is wrong with it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serve/server_int.h"

static struct server srv;

/* PUT /functions/f with body: the status, and the message into msg. */
static unsigned put(const char *body, char **msg)
{
	*msg = NULL;
	return serve_fn_register(&srv, "f", body, strlen(body), msg);
}

Test(serve_registry, path_not_a_regular_file)
{
	char *msg;

	/* A directory: whatever errno last said has nothing to do with it. */
	errno = EBADF;
	cr_assert_eq(put("{\"command\": [\"true\"], \"kernel\": \"/tmp\"}", &msg), 400);
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "kernel /tmp: not a regular file"), "%s", msg);
	free(msg);
}

Test(serve_registry, path_missing)
{
	char *msg;

	errno = 0;
	cr_assert_eq(put("{\"command\": [\"true\"], \"rootfs\": \"/nonexistent/r.ext4\"}", &msg),
		     400);
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "rootfs /nonexistent/r.ext4: No such file or directory"), "%s", msg);
	free(msg);
}
