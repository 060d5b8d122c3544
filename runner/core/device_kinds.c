#include "core/device_kinds.h"

#include <errno.h>

/* The guest's slot order: drives, network interfaces, vsock, entropy,
 * balloon, pmem devices, memory hot-plug. */
const struct device_kind *const device_kinds[] = {&blk_kind,	 &net_kind,  &vsock_kind, &rng_kind,
						  &balloon_kind, &pmem_kind, &mem_kind};
const size_t device_nkinds = ARRAY_SIZE(device_kinds);

int kind_limits_restored(int r, const char *which, char *err, size_t errlen)
{
	if (r < 0)
		return err_set(err, errlen, -EBADMSG,
			       "%s is in a state no limiter can be in (a corrupt snapshot)", which);
	return 0;
}

int kind_limits_save(struct wbuf *w, const struct ratelimit_state *st, unsigned n)
{
	wput_u32(w, KIND_LIMITS_VERSION);
	for (unsigned i = 0; i < n; i++)
		ratelimit_state_put(w, &st[i]);
	return wbuf_err(w);
}

int kind_limits_load(struct rbuf *r, struct ratelimit_state *st, unsigned n, char *err,
		     size_t errlen)
{
	uint32_t version;

	if (rbuf_done(r))
		return 0;
	version = rget_u32(r);
	if (rbuf_err(r) == 0 && version != KIND_LIMITS_VERSION)
		return err_set(err, errlen, -EBADMSG, "its state is of another version");
	for (unsigned i = 0; i < n; i++)
		ratelimit_state_get(r, &st[i]);
	if (rbuf_err(r) < 0)
		return err_set(err, errlen, -EBADMSG, "its state is malformed");
	return 1;
}
