#include "core/device_kinds.h"

/* The guest's slot order: drives, network interfaces, vsock, entropy,
 * balloon, pmem devices, memory hot-plug. */
const struct device_kind *const device_kinds[] = {&blk_kind,	 &net_kind,  &vsock_kind, &rng_kind,
						  &balloon_kind, &pmem_kind, &mem_kind};
const size_t device_nkinds = ARRAY_SIZE(device_kinds);
