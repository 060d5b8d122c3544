/* libFuzzer harness for the API's request path (runner/api/router.c and
 * controller.c, with config_json and vm_config behind them): the fuzzer
 * plays an API client. The input is a sequence of requests separated by
 * NUL bytes, each "METHOD PATH\n" (the request line as HTTP carries it;
 * header lines until a blank line are skipped, as libmicrohttpd takes
 * them), then the body. They run in order on one fresh controller whose
 * fake VM starts, pauses and updates without fail, so the post-boot rules
 * are reached too. Every answer must be 200 with a JSON object, 204 with
 * no body, or 400 with {"fault_message": string} and nothing else. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/controller.h"
#include "api/router.h"
#include "fuzz.h"
#include "mmds/mmds.h"

static int f_start(void *ctx, const struct vm_config *c, struct vm_err *err)
{
	(void)ctx, (void)err;
	CHECK(c->boot.kernel_image_path);
	return 0;
}

static int f_act(void *ctx, struct vm_err *err)
{
	(void)ctx, (void)err;
	return 0;
}

static int f_drive(void *ctx, const struct vmc_drive *d, bool new_image, struct vm_err *err)
{
	(void)ctx, (void)err, (void)new_image;
	CHECK(d->drive_id && (d->path_on_host || d->socket));
	return 0;
}

static int f_net(void *ctx, const struct vmc_net *n, struct vm_err *err)
{
	(void)ctx, (void)err;
	CHECK(n->iface_id && n->host_dev_name);
	return 0;
}

static int f_pmem(void *ctx, const struct vmc_pmem *p, struct vm_err *err)
{
	(void)ctx, (void)err;
	CHECK(p->id && p->path_on_host);
	return 0;
}

static int f_logger(void *ctx, const struct vmc_logger *l, struct vm_err *err)
{
	(void)ctx, (void)l, (void)err;
	return 0;
}

static int f_metrics(void *ctx, const struct vmc_metrics *m, struct vm_err *err)
{
	(void)ctx, (void)err;
	CHECK(m->metrics_path);
	return 0;
}

static const char *f_state(void *ctx)
{
	(void)ctx;
	return "Running";
}

static const struct api_vm_ops ops = {
    .start = f_start,
    .pause = f_act,
    .resume = f_act,
    .ctrl_alt_del = f_act,
    .flush_metrics = f_act,
    .update_drive = f_drive,
    .update_net = f_net,
    .update_pmem = f_pmem,
    .set_logger = f_logger,
    .set_metrics = f_metrics,
    .state = f_state,
};

static void check_answer(const struct api_resp *r)
{
	json_t *o;

	if (r->status == 204) {
		CHECK(!r->body && !r->len);
		return;
	}
	CHECK(r->status == 200 || r->status == 400 || r->status == 413);
	CHECK(r->body && strlen(r->body) == r->len);
	/* GET /mmds answers with whatever JSON value the store holds. */
	CHECK((o = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL)) != NULL);
	CHECK(json_is_object(o) || r->status == 200);
	if (r->status != 200) {
		json_t *m = json_object_get(o, "fault_message");
		CHECK(json_object_size(o) == 1 && json_is_string(m));
		CHECK(json_string_length(m) > 0);
	}
	json_decref(o);
}

static void one_request(struct api_ctl *ctl, const uint8_t *p, size_t n)
{
	char method[16], *url;
	const uint8_t *sp = memchr(p, ' ', n < sizeof(method) ? n : sizeof(method));
	const uint8_t *nl;
	struct api_resp r;

	if (!sp)
		return;
	memcpy(method, p, (size_t)(sp - p));
	method[sp - p] = '\0';
	n -= (size_t)(sp + 1 - p);
	p = sp + 1;
	nl = memchr(p, '\n', n);
	size_t ulen = nl ? (size_t)(nl - p) : n;
	if (!(url = strndup((const char *)p, ulen)))
		return;
	p += ulen;
	n -= ulen;
	if (nl) { /* skip the newline, then header lines up to a blank one */
		p++, n--;
		const uint8_t *blank = n ? memmem(p, n, "\n\n", 2) : NULL;
		if (n && p[0] == '\n')
			p++, n--;
		else if (blank)
			n -= (size_t)(blank + 2 - p), p = blank + 2;
	}
	/* The body: its own allocation of exactly its size, for ASan. */
	char *body = n ? malloc(n) : NULL;
	if (n && !body) {
		free(url);
		return;
	}
	if (n)
		memcpy(body, p, n);
	int st = api_handle(ctl, method, url, body, n, &r);
	CHECK(st == r.status);
	check_answer(&r);
	api_resp_free(&r);
	free(body);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_ctl *ctl;
	struct mmds *m;

	if (mmds_create(&m, 1024) < 0)
		return 0;
	if (api_ctl_create(&ctl, "fuzz", NULL, &ops, NULL) < 0) {
		mmds_destroy(m);
		return 0;
	}
	api_ctl_set_mmds(ctl, m);
	while (size) {
		const uint8_t *end = memchr(data, '\0', size);
		size_t n = end ? (size_t)(end - data) : size;
		one_request(ctl, data, n);
		data += n;
		size -= n;
		if (end)
			data++, size--;
	}
	/* What the controller holds is still encodable. */
	char *s = api_ctl_vm_config_json(ctl);
	CHECK(s);
	free(s);
	api_ctl_destroy(ctl);
	mmds_destroy(m);
	return 0;
}
