/* The device registry with fake kinds and a fake transport that record
 * what is done to them: attach by kind in slot order, lookup by id,
 * duplicate ids, failures, stats from each device's own slot, teardown in
 * reverse. And flint's own kinds' ids. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/vm_config.h"
#include "core/device_kinds.h"
#include "core/devices.h"
#include "snapshot/snapfile.h"

static char trace[4096];

static void note(const char *fmt, ...) PRINTF(1, 2);
static void note(const char *fmt, ...)
{
	size_t n = strlen(trace);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(trace + n, sizeof(trace) - n, fmt, ap);
	va_end(ap);
}

/* A fake device: its id, to name it in the trace. */
struct fake {
	char id[32];
};

static const struct virtio_dev_ops fake_ops = {.num_queues = 2};

static char *fake_id(const char *cfg_id, const char *prefix, unsigned i)
{
	char name[32];

	if (cfg_id)
		return strdup(cfg_id);
	snprintf(name, sizeof(name), "%s%u", prefix, i);
	return strdup(name);
}

static int fake_create(const char *id, struct device_new *out)
{
	struct fake *f;

	if (!strcmp(id, "broken")) {
		note("fail-create %s;", id);
		return -EIO;
	}
	f = calloc(1, sizeof(*f));
	cr_assert(f);
	snprintf(f->id, sizeof(f->id), "%s", id);
	note("create %s;", id);
	*out = (struct device_new){.priv = f, .ops = &fake_ops, .front = f};
	return 0;
}

static void fake_destroy(void *dev)
{
	struct fake *f = dev;
	note("destroy %s;", f->id);
	free(f);
}

static void fake_stats(const struct device *d)
{
	struct virtio_mmio_queue_stats q0, q1, q9;

	device_queue_stats(d, 0, &q0);
	device_queue_stats(d, 1, &q1);
	device_queue_stats(d, 9, &q9);
	note("stats %s #%u q0=%llu q1=%llu q9=%llu;", device_id(d), device_index(d),
	     (unsigned long long)q0.notifications, (unsigned long long)q1.notifications,
	     (unsigned long long)q9.notifications);
}

/* Kind "a" stands for drives (cfg->drives), kind "b" for interfaces. */
static unsigned a_count(const struct vm_config *cfg)
{
	return cfg->ndrives;
}
static char *a_id(const struct vm_config *cfg, unsigned i)
{
	return fake_id(cfg->drives[i].drive_id, "a", i);
}
static int a_create(const struct vm_config *cfg, unsigned i, const char *id,
		    const struct device_env *env, struct device_new *out)
{
	(void)cfg, (void)i, (void)env;
	return fake_create(id, out);
}
static unsigned b_count(const struct vm_config *cfg)
{
	return cfg->nnets;
}
static char *b_id(const struct vm_config *cfg, unsigned i)
{
	return fake_id(cfg->nets[i].iface_id, "b", i);
}

/* Kind a's devices can change: update records the entry's new path. */
static int a_update(void *dev, const struct vm_config *c, unsigned i, unsigned changes,
		    struct vm_err *err)
{
	struct fake *f = dev;

	cr_assert_eq(changes, DEVICE_CHANGE_BACKING);
	note("update %s #%u %s;", f->id, i, c->drives[i].path_on_host);
	if (!strcmp(c->drives[i].path_on_host, "bad"))
		return vm_err_set(err, -EIO, "cannot use %s", c->drives[i].path_on_host);
	return 0;
}

static void a_counters(const struct device *d, device_counter_fn emit, void *ctx)
{
	emit(ctx, "index", device_index(d));
	emit(ctx, "answer", 42);
}

static const struct device_kind kind_a = {.name = "a",
					  .label = "thing",
					  .count = a_count,
					  .id = a_id,
					  .create = a_create,
					  .destroy = fake_destroy,
					  .print_stats = fake_stats,
					  .counters = a_counters,
					  .update = a_update};
static const struct device_kind kind_b = {.name = "b",
					  .label = "other thing",
					  .count = b_count,
					  .id = b_id,
					  .create = a_create,
					  .destroy = fake_destroy,
					  .print_stats = fake_stats};
static const struct device_kind *const kinds[] = {&kind_a, &kind_b};

/* The fake transport: a slot is its number plus one (never NULL); attach
 * fails at slot fail_slot, leaving a handle when fail_with_handle. */
static int fail_slot = -1;
static bool fail_with_handle;

static int t_attach(void *ctx, unsigned slot, const struct virtio_dev_ops *ops, void *dev,
		    void **handle)
{
	struct fake *f = dev;

	(void)ctx;
	cr_assert_eq(ops, &fake_ops);
	*handle = NULL;
	if ((int)slot == fail_slot) {
		note("fail-attach %s@%u;", f->id, slot);
		if (fail_with_handle)
			*handle = (void *)(uintptr_t)(slot + 1);
		return -EBUSY;
	}
	note("attach %s@%u;", f->id, slot);
	*handle = (void *)(uintptr_t)(slot + 1);
	return 0;
}
static void t_detach(void *handle)
{
	if (handle)
		note("detach @%u;", (unsigned)(uintptr_t)handle - 1);
	else
		note("detach NULL;");
}
static unsigned t_num_queues(const void *handle)
{
	(void)handle;
	return 2;
}
static void t_queue_stats(const void *handle, unsigned q, struct virtio_mmio_queue_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->notifications = ((uintptr_t)handle - 1) * 10 + q;
}
static int t_cmdline(const void *handle, char *buf, size_t len)
{
	size_t used = strlen(buf);
	int n = snprintf(buf + used, len - used, "%ss%u", used ? " " : "",
			 (unsigned)(uintptr_t)handle - 1);
	return n < 0 || (size_t)n >= len - used ? -ENOSPC : 0;
}
static const struct device_transport fake_transport = {
    .attach = t_attach,
    .detach = t_detach,
    .num_queues = t_num_queues,
    .queue_stats = t_queue_stats,
    .cmdline = t_cmdline,
};

static struct vm_config cfg;
static struct device_env env;

static void setup(void)
{
	trace[0] = '\0';
	fail_slot = -1;
	fail_with_handle = false;
	memset(&cfg, 0, sizeof(cfg));
}

TestSuite(devices, .init = setup);

static struct devices *make(void)
{
	struct devices *r;
	cr_assert_eq(devices_create(&r, &fake_transport, NULL), 0);
	return r;
}

Test(devices, attach_by_kind_in_slot_order_and_find_by_id)
{
	char *ids[] = {"root", NULL, "data"};
	struct devices *r = make();

	cfg.ndrives = 3;
	for (int i = 0; i < 3; i++)
		cfg.drives[i].drive_id = ids[i];
	cfg.nnets = 2;
	cr_assert_eq(devices_configured(kinds, 2, &cfg), 5);
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	cr_assert_str_eq(trace, "create root;attach root@0;create a1;attach a1@1;"
				"create data;attach data@2;create b0;attach b0@3;"
				"create b1;attach b1@4;");
	cr_assert_eq(devices_count(r), 5);

	struct device *d = devices_find(r, "a", "data");
	cr_assert(d);
	cr_assert_str_eq(device_id(d), "data");
	cr_assert_eq(device_kind(d), &kind_a);
	cr_assert_eq(device_index(d), 2);
	cr_assert_str_eq(((struct fake *)device_priv(d))->id, "data");
	cr_assert_eq(devices_find(r, NULL, "b1"), devices_at(r, 4));
	cr_assert_eq(device_index(devices_find(r, "b", "b1")), 1, "second of its kind");
	cr_assert_null(devices_find(r, "b", "data"), "the id belongs to kind a");
	cr_assert_null(devices_find(r, NULL, "nothing"));
	cr_assert_null(devices_at(r, 5));

	char line[64] = "";
	cr_assert_eq(devices_cmdline(r, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "s0 s1 s2 s3 s4");
	char small[8] = "";
	cr_assert_eq(devices_cmdline(r, small, sizeof(small)), -ENOSPC);
	devices_destroy(r);
}

Test(devices, a_duplicate_id_is_refused_before_creating)
{
	struct devices *r = make();
	char *ids[] = {"x", "x"};

	cfg.ndrives = 2;
	cfg.drives[0].drive_id = ids[0];
	cfg.drives[1].drive_id = ids[1];
	cr_assert_eq(devices_attach(r, &kind_a, &cfg, 0, &env), 0);
	cr_assert_eq(devices_attach(r, &kind_a, &cfg, 1, &env), -EEXIST);
	cr_assert_str_eq(trace, "create x;attach x@0;", "the second was never created");
	cr_assert_eq(devices_count(r), 1);
	/* Another kind has ids of its own, as drives and interfaces do. */
	cfg.nnets = 1;
	cfg.nets[0].iface_id = ids[0];
	cr_assert_eq(devices_attach(r, &kind_b, &cfg, 0, &env), 0);
	cr_assert_eq(devices_count(r), 2);
	cr_assert_eq(devices_find(r, "b", "x"), devices_at(r, 1));
	devices_destroy(r);
}

Test(devices, teardown_detaches_and_destroys_in_reverse)
{
	struct devices *r = make();

	cfg.ndrives = 2;
	cfg.nnets = 1;
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	trace[0] = '\0';
	devices_destroy(r);
	cr_assert_str_eq(trace, "detach @2;destroy b0;detach @1;destroy a1;detach @0;destroy a0;");
	devices_destroy(NULL);
}

Test(devices, a_failed_create_attaches_nothing_and_stops)
{
	struct devices *r = make();
	char *ids[] = {NULL, "broken", NULL};

	cfg.ndrives = 3;
	for (int i = 0; i < 3; i++)
		cfg.drives[i].drive_id = ids[i];
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), -EIO);
	cr_assert_str_eq(trace, "create a0;attach a0@0;fail-create broken;");
	cr_assert_eq(devices_count(r), 1);
	trace[0] = '\0';
	devices_destroy(r);
	cr_assert_str_eq(trace, "detach @0;destroy a0;");
}

/* A device whose transport failed may have event-loop polls pointing into
 * it: it stays registered until teardown, with or without a slot. */
Test(devices, a_failed_attach_keeps_the_device_for_teardown)
{
	for (int with_handle = 0; with_handle < 2; with_handle++) {
		struct devices *r = make();
		trace[0] = '\0';
		fail_slot = 1;
		fail_with_handle = with_handle;
		cfg.ndrives = 3;
		cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), -EBUSY);
		cr_assert_str_eq(trace, "create a0;attach a0@0;create a1;fail-attach a1@1;");
		cr_assert_eq(devices_count(r), 2);
		struct virtio_mmio_queue_stats s;
		device_queue_stats(devices_at(r, 1), 1, &s);
		cr_assert_eq(s.notifications, with_handle ? 11 : 0);
		trace[0] = '\0';
		devices_destroy(r);
		cr_assert_str_eq(trace, with_handle
					    ? "detach @1;destroy a1;detach @0;destroy a0;"
					    : "detach NULL;destroy a1;detach @0;destroy a0;");
	}
}

Test(devices, stats_come_from_each_device_and_its_own_slot)
{
	struct devices *r = make();

	cfg.ndrives = 2;
	cfg.nnets = 1;
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	trace[0] = '\0';
	devices_print_stats(r);
	cr_assert_str_eq(trace, "stats a0 #0 q0=0 q1=1 q9=0;stats a1 #1 q0=10 q1=11 q9=0;"
				"stats b0 #0 q0=20 q1=21 q9=0;");
	cr_assert_eq(device_num_queues(devices_at(r, 2)), 2);
	devices_destroy(r);
}

Test(devices, at_most_DEVICES_MAX)
{
	struct devices *r = make();
	static char ids[DEVICES_MAX + 1][16];

	cfg.ndrives = 1;
	for (int i = 0; i <= DEVICES_MAX; i++) {
		snprintf(ids[i], sizeof(ids[i]), "d%d", i);
		cfg.drives[0].drive_id = ids[i];
		cr_assert_eq(devices_attach(r, &kind_a, &cfg, 0, &env),
			     i < DEVICES_MAX ? 0 : -ENOSPC);
	}
	cr_assert_eq(devices_count(r), DEVICES_MAX);
	devices_destroy(r);
}

/* flint's kinds: slot order drives, interfaces, vsock, entropy, balloon;
 * a device's id is its drive_id or iface_id. */
Test(devices, flints_kinds_and_their_ids)
{
	char *drive_ids[] = {"drive0", "root"}, *net_ids[] = {"uplink", "net1"};

	cr_assert_eq(device_nkinds, 7);
	cr_assert_str_eq(device_kinds[0]->name, "blk");
	cr_assert_str_eq(device_kinds[1]->name, "net");
	cr_assert_str_eq(device_kinds[2]->name, "vsock");
	cr_assert_str_eq(device_kinds[3]->name, "rng");
	cr_assert_str_eq(device_kinds[4]->name, "balloon");
	cr_assert_str_eq(device_kinds[5]->name, "pmem");
	cr_assert_str_eq(device_kinds[6]->name, "mem");
	cfg.ndrives = 2;
	cfg.nnets = 2;
	for (int i = 0; i < 2; i++) {
		cfg.drives[i].drive_id = drive_ids[i];
		cfg.nets[i].iface_id = net_ids[i];
	}
	cfg.vsock.enabled = true;
	cfg.entropy.enabled = true;
	cfg.balloon.enabled = true;
	cfg.npmem = 2;
	cfg.pmem[0].id = "pmem0";
	cfg.pmem[1].id = "data";
	cfg.memory_hotplug.enabled = true;
	cr_assert_eq(devices_configured(device_kinds, device_nkinds, &cfg), 10);
	const char *want[][2] = {{"drive0", "root"},	  {"uplink", "net1"}, {"vsock", NULL},
				 {"rng", NULL},		  {"balloon", NULL},  {"pmem0", "data"},
				 {"memory-hotplug", NULL}};
	for (size_t k = 0; k < device_nkinds; k++)
		for (unsigned i = 0; i < device_kinds[k]->count(&cfg); i++) {
			char *id = device_kinds[k]->id(&cfg, i);
			cr_assert_str_eq(id, want[k][i]);
			free(id);
		}
	cfg.vsock.enabled = false;
	cr_assert_eq(device_kinds[2]->count(&cfg), 0);
	cfg.entropy.enabled = false;
	cr_assert_eq(device_kinds[3]->count(&cfg), 0);
	cfg.balloon.enabled = false;
	cr_assert_eq(device_kinds[4]->count(&cfg), 0);
	cfg.npmem = 0;
	cr_assert_eq(device_kinds[5]->count(&cfg), 0);
	cfg.memory_hotplug.enabled = false;
	cr_assert_eq(device_kinds[6]->count(&cfg), 0);
}

/* An update reaches the device of that kind and id, with its index in the
 * configuration; a kind without the hook, or an unknown id, is refused. */
Test(devices, update_reaches_the_device_by_kind_and_id)
{
	struct devices *r = make();
	char *ids[] = {"root", "data"}, *paths[] = {"old", "new.img"};
	struct vm_err err = {0};

	cfg.ndrives = 2;
	cfg.nnets = 1;
	for (int i = 0; i < 2; i++) {
		cfg.drives[i].drive_id = ids[i];
		cfg.drives[i].path_on_host = paths[i];
	}
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	trace[0] = '\0';
	cr_assert_eq(devices_update(r, "a", "data", &cfg, DEVICE_CHANGE_BACKING, &err), 0);
	cr_assert_str_eq(trace, "update data #1 new.img;");
	cfg.drives[1].path_on_host = "bad";
	cr_assert_eq(devices_update(r, "a", "data", &cfg, DEVICE_CHANGE_BACKING, &err), -EIO);
	cr_assert_str_eq(err.msg, "cannot use bad");
	cr_assert_eq(devices_update(r, "a", "nothing", &cfg, DEVICE_CHANGE_BACKING, &err), -ENOENT);
	cr_assert_str_eq(err.msg, "no a 'nothing' in this VM");
	cr_assert_eq(devices_update(r, "b", "b0", &cfg, DEVICE_CHANGE_BACKING, &err), -EOPNOTSUPP);
	cr_assert_str_eq(err.msg, "a other thing cannot be changed while the VM runs");
	devices_destroy(r);
}

static void sum_counter(void *ctx, const char *name, uint64_t v)
{
	note("%s=%llu;", name, (unsigned long long)v);
	*(uint64_t *)ctx += v;
}

Test(devices, counters_come_from_the_kind)
{
	struct devices *r = make();
	uint64_t sum = 0;

	cfg.ndrives = 2;
	cfg.nnets = 1;
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	trace[0] = '\0';
	device_counters(devices_at(r, 1), sum_counter, &sum);
	cr_assert_str_eq(trace, "index=1;answer=42;");
	cr_assert_eq(sum, 43);
	trace[0] = '\0';
	device_counters(devices_at(r, 2), sum_counter, &sum);
	cr_assert_str_eq(trace, "", "kind b has no counters");
	devices_destroy(r);
}

/* Reset in place: every attached device's transport is reset, in attach
 * order; a transport without a reset hook (or a device whose attach
 * failed, with no slot) makes the registry refuse it beforehand. */
static void t_reset(void *handle)
{
	note("reset @%u;", (unsigned)(uintptr_t)handle - 1);
}

Test(devices, reset_reaches_every_transport_in_order)
{
	struct device_transport with_reset = fake_transport;
	struct devices *r;
	char *ids[] = {"root", "data"};

	with_reset.reset = t_reset;
	cr_assert_eq(devices_create(&r, &with_reset, NULL), 0);
	cr_assert(devices_can_reset(r), "nothing attached: nothing to refuse");
	cfg.ndrives = 2;
	for (int i = 0; i < 2; i++)
		cfg.drives[i].drive_id = ids[i];
	cfg.nnets = 1;
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	cr_assert(devices_can_reset(r));
	trace[0] = '\0';
	devices_reset(r);
	cr_assert_str_eq(trace, "reset @0;reset @1;reset @2;");
	devices_destroy(r);

	/* No hook: refused, and devices_reset does nothing. */
	r = make();
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	cr_assert_not(devices_can_reset(r));
	devices_destroy(r);

	/* A device left without a slot by a failed attach. */
	cr_assert_eq(devices_create(&r, &with_reset, NULL), 0);
	fail_slot = 1;
	cr_assert_neq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	cr_assert_not(devices_can_reset(r));
	devices_destroy(r);
}

/* ---- sections ---- */

static int t_save(const void *handle, struct wbuf *w, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	wput_u32(w, (uint32_t)(uintptr_t)handle);
	return 0;
}
static int t_restore(void *handle, struct rbuf *r, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	note("restore @%u;", (unsigned)(uintptr_t)handle - 1);
	return rget_u32(r) == (uint32_t)(uintptr_t)handle ? 0 : -EINVAL;
}

static struct section {
	char id[DEVICE_SECTION_ID_MAX + 1];
	uint8_t data[16];
	size_t len;
} sections[4];
static unsigned nsections;

static int emit(void *ctx, const char *id, const void *data, size_t len)
{
	struct section *x = &sections[nsections++];

	cr_assert_leq(nsections, 4);
	cr_assert_leq(len, sizeof(x->data));
	cr_assert_eq(snap_writer_add(ctx, id, data, len), 0, "the file takes '%s'", id);
	snprintf(x->id, sizeof(x->id), "%s", id);
	memcpy(x->data, data, len);
	x->len = len;
	return 0;
}

static int lookup(void *ctx, const char *id, const uint8_t **data, size_t *len)
{
	(void)ctx;
	for (unsigned i = 0; i < nsections; i++)
		if (!strcmp(sections[i].id, id)) {
			*data = sections[i].data;
			*len = sections[i].len;
			return 0;
		}
	return -ENOENT;
}

static const struct device_transport saving = {
    .attach = t_attach,
    .detach = t_detach,
    .num_queues = t_num_queues,
    .queue_stats = t_queue_stats,
    .cmdline = t_cmdline,
    .save = t_save,
    .restore = t_restore,
};

/* A config file's ids may hold any bytes and be 64 long: every device gets
 * a section id the snapshot file takes, told apart from the others, and
 * found again on restore (they made the snapshot fail). */
Test(devices, any_id_has_a_section_the_file_takes)
{
	char long_id[VMC_MAX_ID + 1], *ids[] = {"root fs", "100%", "\xc3\xbc", long_id};
	struct snap_writer w = {0};
	struct devices *r;
	char err[256];

	memset(long_id, 0xff, VMC_MAX_ID);
	long_id[VMC_MAX_ID] = '\0';
	cr_assert_eq(devices_create(&r, &saving, NULL), 0);
	cfg.ndrives = 4;
	for (int i = 0; i < 4; i++)
		cfg.drives[i].drive_id = ids[i];
	cr_assert_eq(devices_attach_all(r, kinds, 2, &cfg, &env), 0);
	nsections = 0;
	cr_assert_eq(devices_save(r, emit, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(nsections, 4);
	cr_assert_str_eq(sections[0].id, "a:root%20fs");
	cr_assert_str_eq(sections[1].id, "a:100%25");
	cr_assert_str_eq(sections[2].id, "a:%C3%BC");
	cr_assert_eq(strlen(sections[3].id), 2 + 3 * VMC_MAX_ID);
	cr_assert_eq(strncmp(sections[3].id, "a:%FF%FF", 8), 0);
	cr_assert_eq(devices_restore(r, lookup, NULL, err, sizeof(err)), 0, "%s", err);
	/* A snapshot from before the escaping named "100%" as it is. */
	snprintf(sections[1].id, sizeof(sections[1].id), "a:100%%");
	cr_assert_eq(devices_restore(r, lookup, NULL, err, sizeof(err)), 0, "%s", err);
	snap_writer_free(&w);
	devices_destroy(r);
}

/* A kind that plugs guest memory (memory hot-plug) is restored before the
 * others, whose rings may lie in that memory; the rest in attach order. */
Test(devices, a_kind_that_plugs_memory_is_restored_first)
{
	struct device_kind plugs = kind_b;
	const struct device_kind *const order[] = {&kind_a, &plugs};
	struct snap_writer w = {0};
	struct devices *r;
	char err[256];

	plugs.restore_first = true;
	cr_assert_eq(devices_create(&r, &saving, NULL), 0);
	cfg.ndrives = 2;
	cfg.nnets = 1;
	cr_assert_eq(devices_attach_all(r, order, 2, &cfg, &env), 0);
	nsections = 0;
	cr_assert_eq(devices_save(r, emit, &w, err, sizeof(err)), 0, "%s", err);
	trace[0] = '\0';
	cr_assert_eq(devices_restore(r, lookup, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(trace, "restore @2;restore @0;restore @1;");
	snap_writer_free(&w);
	devices_destroy(r);
}
