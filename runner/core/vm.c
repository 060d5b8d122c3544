#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "config/cmdline.h"
#include "core/bus.h"
#include "core/cgroupfs.h"
#include "core/control.h"
#include "core/device_kinds.h"
#include "core/devices.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/gmem_snap.h"
#include "core/kvm.h"
#include "core/logger.h"
#include "core/mailbox.h"
#include "core/metrics.h"
#include "core/phases.h"
#include "core/seccomp.h"
#include "core/vcpu.h"
#include "core/vdev.h"
#include "core/vm_int.h"
#include "legacy/console.h"
#include "legacy/legacy.h"
#include "legacy/serial.h"
#include "snapshot/uffd.h"
#include "snapshot/uffd_watch.h"
#include "x86/cpuid.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "x86/mptable.h"
#include "x86/vcpu_state.h"
#include "x86/x86.h"

static void kick_all(void *ctx)
{
	struct vm *vm = ctx;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	mailbox_wake(vm->mb);
}

static void serial_irq(void *ctx)
{
	struct vm *vm = ctx;
	if (eventfd_write(vm->serial_irqfd, 1) < 0)
		pr_debug("serial irqfd: %s", strerror(errno));
}

static void i8042_irq(void *ctx)
{
	struct vm *vm = ctx;
	if (eventfd_write(vm->i8042_irqfd, 1) < 0)
		pr_debug("i8042 irqfd: %s", strerror(errno));
}

/* The guest kernel panicked: flint ends with 122 and the panic line. */
static void stop_on_panic(struct vm *vm, const char *line)
{
	control_request_stop(&vm->ctl, STOP_GUEST_PANIC, 0, "guest kernel panic: %s", line);
}

static void serial_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct vm *vm = ctx;
	char line[200];

	console_output(vm->con, buf, n);
	/* Unless panic=-1 makes it reset at once, a panicked kernel spins (or
	 * waits panic=N seconds) once it has printed its last line: that line
	 * is the cue to stop, its whole report on the console by then. */
	if (console_panic_over(vm->con) && console_panicked(vm->con, line, sizeof(line)))
		stop_on_panic(vm, line);
}

static void guest_reset(void *ctx)
{
	struct vm *vm = ctx;
	char line[200];

	if (console_panicked(vm->con, line, sizeof(line)))
		stop_on_panic(vm, line);
	else
		control_request_stop(&vm->ctl, STOP_GUEST_RESET, 0, NULL);
}

/* A KVM statistic summed over the vCPUs; false if KVM has no such one. */
static bool kvm_stat_sum(struct vm *vm, const char *name, uint64_t *sum)
{
	uint64_t v;
	bool found = false;

	*sum = 0;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vcpu_kvm_stat(&vm->vcpus[i], name, &v) == 0) {
			*sum += v;
			found = true;
		}
	return found;
}

static void boot_timer_fired(void *ctx, uint64_t us)
{
	struct vm *vm = ctx;
	(void)us;
	phases_mark(BP_INIT);
	kvm_stat_sum(vm, "exits", &vm->boot_exits);
}

/* The seccomp policy every thread applies to itself when it starts. */
int vm_setup_seccomp(struct vm *vm)
{
	const char *test = vm->opts.seccomp_test;
	return seccomp_configure(vm->opts.seccomp, test ? seccomp_thread_by_name(test) : -1);
}

/* The event-loop thread's first act, before it serves any device. */
static int evloop_thread_start(void *ctx)
{
	struct vm *vm = ctx;
	logger_thread_name("evloop");
	int r = seccomp_enter(SECCOMP_EVLOOP);

	if (r < 0)
		control_request_stop(&vm->ctl, STOP_ERROR, 0,
				     "seccomp filter for the event loop: %s", strerror(-r));
	return r;
}

/* The I/O APIC's pins: the legacy lines (the i8042's 1, the serial
 * port's 4) and one per virtio device after them; no more, since the
 * guest reads and rewrites every pin at boot, one exit per access. */
static unsigned ioapic_pins(const struct vm *vm)
{
	size_t n = devices_configured(device_kinds, device_nkinds, &vm->c);
	return VDEV_FIRST_IRQ + (unsigned)(n < VDEV_MAX ? n : VDEV_MAX);
}

/* The I/O APIC's unmasked pins as the VM's interrupt routes: GSI = pin,
 * where the irqfds of the serial port, the i8042 and the virtio devices
 * are bound. KVM takes the whole table at once. */
static int ioapic_routes(void *ctx, const struct ioapic_msi *m, unsigned n)
{
	struct vm *vm = ctx;
	struct {
		struct kvm_irq_routing head;
		struct kvm_irq_routing_entry e[IOAPIC_MAX_PINS];
	} t = {.head.nr = n};

	for (unsigned i = 0; i < n; i++)
		t.e[i] = (struct kvm_irq_routing_entry){
		    .gsi = m[i].gsi,
		    .type = KVM_IRQ_ROUTING_MSI,
		    .u.msi = {.address_lo = m[i].address_lo, .data = m[i].data}};
	return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &t.head) < 0 ? -errno : 0;
}

int vm_setup_kvm(struct vm *vm)
{
	char err[256];
	uint64_t tss = KVM_TSS_ADDR, idmap = KVM_IDENTITY_MAP_ADDR;
	unsigned pins = ioapic_pins(vm);
	int r;

	if ((r = kvm_open(&vm->sys_fd, err, sizeof(err))) < 0) {
		pr_err("%s", err);
		return r;
	}
	vm->vm_fd = kvm_ioctl(vm->sys_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = -errno;
		pr_err("KVM_CREATE_VM: %s", strerror(errno));
		return r;
	}
	phases_mark(BP_VM_CREATED);
	/* KVM keeps the local APICs; the I/O APIC is flint's (legacy/ioapic.h)
	 * and there is no PIC or PIT: the guest finds no 8259 (Linux then
	 * leaves the legacy IRQs to the I/O APIC alone) and times itself with
	 * kvmclock and the TSC-deadline timer. All before any vCPU. */
	struct kvm_enable_cap split = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {pins}};
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 ||
	    ioctl(vm->vm_fd, KVM_ENABLE_CAP, &split) < 0) {
		r = -errno;
		pr_err("setting up the VM's TSS and split irqchip: %s", strerror(errno));
		return r;
	}
	if ((r = ioapic_init(&vm->ioapic, pins, ioapic_routes, vm)) < 0) {
		pr_err("the I/O APIC: %s", strerror(-r));
		return r;
	}
	return 0;
}

int vm_setup_memory(struct vm *vm)
{
	char why[4096 + 160];
	uint64_t bytes = vm->c.machine.mem_size_mib << 20;
	/* Before mapping: a cgroup too small for the guest would OOM-kill
	 * flint mid-boot instead. */
	int r = cgroupfs_check_memory(bytes, why, sizeof(why));
	if (r < 0) {
		pr_err("%s", why);
		return r;
	}
	struct gmem_opts go = {.huge_2m = vm->c.machine.huge_pages == VMC_HUGE_PAGES_2M,
			       .track_dirty = vm->c.machine.track_dirty_pages};
	r = gmem_create_opts(&vm->mem, bytes, &go);
	if (r == -ENOMEM && go.huge_2m) {
		pr_err("cannot map %llu MiB of guest memory from 2 MiB huge pages: the host has "
		       "fewer than %llu free (raise /proc/sys/vm/nr_hugepages)",
		       (unsigned long long)vm->c.machine.mem_size_mib,
		       (unsigned long long)vm->c.machine.mem_size_mib / 2);
		return r;
	}
	if (r < 0) {
		pr_err("cannot map %llu MiB of guest memory: %s",
		       (unsigned long long)vm->c.machine.mem_size_mib, strerror(-r));
		return r;
	}
	return vm_map_memory(vm);
}

int vm_map_memory(struct vm *vm)
{
	int r;

	for (size_t i = 0; i < gmem_nregions(vm->mem); i++) {
		const struct gmem_region *g = gmem_region(vm->mem, i);
		struct kvm_userspace_memory_region m = {
		    .slot = i,
		    .guest_phys_addr = g->gpa,
		    .memory_size = g->size,
		    .userspace_addr = (uint64_t)(uintptr_t)g->host,
		    .flags = gmem_slot_flags(vm->mem), /* dirty logging */
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0) {
			r = -errno;
			pr_err("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return r;
		}
	}
	return 0;
}

/* Device memory starts above RAM and the MMIO hole. */
static void devmem_start(struct vm *vm)
{
	if (!vm->devmem_next) {
		const struct gmem_region *last = gmem_region(vm->mem, gmem_nregions(vm->mem) - 1);
		uint64_t top = last->gpa + last->size;

		top = top > MMIO_GAP_END ? top : MMIO_GAP_END;
		vm->devmem_next = (top + DEVMEM_BASE_ALIGN - 1) & ~(DEVMEM_BASE_ALIGN - 1);
	}
}

/* struct device_memmap's map: KVM slots after RAM's, at addresses that
 * depend only on RAM's size and the sizes mapped before, so that a restore
 * finds its devices where the snapshot's guest had them. */
static int map_device_memory(void *ctx, void *host, uint64_t size, bool read_only, uint64_t *gpa)
{
	struct vm *vm = ctx;

	devmem_start(vm);
	if (!size || size % DEVICE_MEMMAP_ALIGN || size > DEVMEM_END - vm->devmem_next) {
		pr_err("device memory of %llu bytes does not fit the guest's address space",
		       (unsigned long long)size);
		return -EINVAL;
	}
	struct kvm_userspace_memory_region m = {
	    .slot = GMEM_MAX_REGIONS + vm->devmem_slots,
	    .guest_phys_addr = vm->devmem_next,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)(uintptr_t)host,
	    /* The guest's writes to a read-only slot exit as MMIO writes,
	     * which no device claims: dropped. */
	    .flags = read_only ? KVM_MEM_READONLY : 0,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0) {
		int r = -errno;
		pr_err("KVM_SET_USER_MEMORY_REGION for device memory: %s", strerror(errno));
		return r;
	}
	*gpa = vm->devmem_next;
	vm->devmem_next += size;
	vm->devmem_slots++;
	return 0;
}

/* struct device_hotmem's add: the region after device memory, at a 1 GiB
 * boundary (the guest adds memory in blocks of 128 MiB), in gmem (which
 * has it already, all unplugged, when a restore mapped it from the
 * snapshot's memory: the same configuration puts it at the same place). */
static int hotmem_add(void *ctx, uint64_t size, uint64_t slot_size, uint64_t block_size,
		      uint64_t *gpa)
{
	struct vm *vm = ctx;
	uint64_t nslots = slot_size ? size / slot_size : 0;
	int max = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS), r;

	if (vm->hot_plugged || !nslots || size % slot_size || slot_size % block_size)
		return -EINVAL;
	if (max > 0 && nslots > (uint64_t)max - HOTMEM_SLOT0) {
		pr_err("memory hot-plug: %llu slots of %llu MiB are more than KVM's %d memory "
		       "slots allow; use a larger slot_size_mib",
		       (unsigned long long)nslots, (unsigned long long)(slot_size >> 20), max);
		return -E2BIG;
	}
	devmem_start(vm);
	uint64_t at = (vm->devmem_next + DEVMEM_BASE_ALIGN - 1) & ~(DEVMEM_BASE_ALIGN - 1);
	if (at >= DEVMEM_END || size > DEVMEM_END - at) {
		pr_err("memory hot-plug: %llu MiB do not fit the guest's address space",
		       (unsigned long long)(size >> 20));
		return -E2BIG;
	}
	if (!(vm->hot_plugged = calloc(nslots, sizeof(*vm->hot_plugged))))
		return -ENOMEM;
	if ((r = gmem_hotplug_add(vm->mem, at, size, block_size)) < 0) {
		if (r == -EEXIST)
			pr_err("memory hot-plug: the snapshot's region is not the one this "
			       "configuration places at %#llx (%llu MiB in blocks of %llu MiB)",
			       (unsigned long long)at, (unsigned long long)(size >> 20),
			       (unsigned long long)(block_size >> 20));
		else
			pr_err("memory hot-plug: cannot map %llu MiB: %s",
			       (unsigned long long)(size >> 20), strerror(-r));
		free(vm->hot_plugged);
		vm->hot_plugged = NULL;
		return r;
	}
	vm->hot_slot_size = slot_size;
	vm->devmem_next = at + size;
	*gpa = at;
	return 0;
}

/* KVM slot i of the region h made (size slot_size) or dropped (size 0). */
static int hotmem_slot(struct vm *vm, const struct gmem_region *h, uint64_t i, bool make)
{
	uint64_t at = i * vm->hot_slot_size;
	struct kvm_userspace_memory_region m = {
	    .slot = (uint32_t)(HOTMEM_SLOT0 + i),
	    .guest_phys_addr = h->gpa + at,
	    .flags = make ? gmem_slot_flags(vm->mem) : 0,
	    .memory_size = make ? vm->hot_slot_size : 0,
	    .userspace_addr = (uint64_t)(uintptr_t)h->host + at,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0) {
		int r = -errno;

		pr_err("memory hot-plug: cannot %s the KVM slot at %#llx: %s",
		       make ? "make" : "drop", (unsigned long long)m.guest_phys_addr,
		       strerror(errno));
		return r;
	}
	return 0;
}

/* struct device_hotmem's set: plugged, the slots it touches are made
 * (those new to it) before gmem lets devices in; unplugged, gmem shuts
 * devices out and gives the memory back before the slots left empty go.
 * gmem_hotplug_set checks the range's blocks. */
static int hotmem_set(void *ctx, uint64_t gpa, uint64_t len, bool plugged)
{
	struct vm *vm = ctx;
	const struct gmem_region *h = gmem_hotplug_region(vm->mem);
	uint64_t ss = vm->hot_slot_size;
	int r = 0;

	if (!h || !len || gpa < h->gpa || gpa - h->gpa >= h->size || len > h->size - (gpa - h->gpa))
		return -EINVAL;
	uint64_t off = gpa - h->gpa, end = off + len, i;

	if (plugged) {
		for (i = off / ss; i <= (end - 1) / ss; i++)
			if (!vm->hot_plugged[i] && (r = hotmem_slot(vm, h, i, true)) < 0)
				break;
		if (i > (end - 1) / ss && (r = gmem_hotplug_set(vm->mem, gpa, len, true)) == 0)
			goto count;
		/* undo the slots made for this range */
		while (i-- > off / ss)
			if (!vm->hot_plugged[i])
				hotmem_slot(vm, h, i, false);
		return r;
	}
	if ((r = gmem_hotplug_set(vm->mem, gpa, len, false)) < 0)
		return r;
count:
	for (i = off / ss; i <= (end - 1) / ss; i++) {
		uint64_t lo = i * ss > off ? i * ss : off,
			 hi = (i + 1) * ss < end ? (i + 1) * ss : end;

		if (plugged) {
			vm->hot_plugged[i] += hi - lo;
		} else {
			vm->hot_plugged[i] -= hi - lo;
			/* A slot that could not be dropped stays: the guest can
			 * reach memory it has given up, as within a slot with
			 * plugged blocks; the log says so. */
			if (!vm->hot_plugged[i])
				(void)hotmem_slot(vm, h, i, false);
		}
	}
	return 0;
}

int vm_setup_legacy(struct vm *vm)
{
	static const struct serial_ops sops = {.out = serial_out, .irq = serial_irq};
	int r;

	if ((r = bus_create(&vm->pio)) < 0 || (r = bus_create(&vm->mmio)) < 0)
		return r;
	/* Log lines to stderr, as the console, never wait for its reader: a
	 * vCPU or the control thread stalled in write() would hold a pause
	 * or a stop (one pipe often takes both, 2>&1). */
	pr_stderr_nonblocking();
	vm->env.pio = vm->pio;
	vm->env.mmio = vm->mmio;
	const struct vmc_serial *ser = &vm->c.serial;
	if (ser->enabled && ser->serial_out_path) {
		/* As Firecracker's: created if missing, read-write and
		 * non-blocking (a fifo opens without a reader, a full one
		 * drops output); appending, as the metrics file. */
		vm->serial_out_fd =
		    open(ser->serial_out_path, O_RDWR | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC,
			 0600);
		if (vm->serial_out_fd < 0) {
			r = -errno;
			pr_err("serial_out_path %s: %s", ser->serial_out_path, strerror(errno));
			return r;
		}
	}
	if ((r = console_create(&vm->con, vm->serial_out_fd >= 0 ? vm->serial_out_fd
								 : vm->opts.console_out)) < 0)
		return r;
	if (ser->enabled && (r = console_set_limit(vm->con, &ser->rate_limiter, now_ns())) < 0) {
		pr_err("serial rate_limiter: %s", strerror(-r));
		return r;
	}
	if ((vm->serial_irqfd = kvm_irqfd(vm->vm_fd, COM1_IRQ)) < 0) {
		r = vm->serial_irqfd;
		pr_err("KVM_IRQFD for the serial port: %s", strerror(-r));
		return r;
	}
	if ((r = serial_create(&vm->serial, &sops, vm)) < 0)
		return r;
	if ((vm->i8042_irqfd = kvm_irqfd(vm->vm_fd, I8042_KBD_IRQ)) < 0) {
		r = vm->i8042_irqfd;
		pr_err("KVM_IRQFD for the i8042: %s", strerror(-r));
		return r;
	}
	i8042_init(&vm->i8042, guest_reset, i8042_irq, vm);
	vm->timer = (struct boot_timer){.fired = boot_timer_fired, .ctx = vm};
	vm->exitdev = (struct exit_dev){.ctl = &vm->ctl};
	/* What a PC has there and these VMs do not (the split irqchip): the
	 * 8259 PICs, their ELCR, the PIT and port 0x61's speaker gate. Reads
	 * give 0xff, so the guest's PIC probe finds none; not counted as
	 * unclaimed accesses, which name ports nobody expects. */
	static const struct bus_ops absent = {0};
	static const struct {
		uint16_t port, len;
	} holes[] = {{0x20, 2}, {0xa0, 2}, {0x4d0, 2}, {0x40, 4}, {0x61, 1}};
	for (size_t i = 0; i < ARRAY_SIZE(holes); i++)
		if ((r = bus_register(vm->pio, holes[i].port, holes[i].len, &absent, NULL)) < 0) {
			pr_err("registering port %#x: %s", holes[i].port, strerror(-r));
			return r;
		}
	if ((r = bus_register(vm->pio, COM1_PORT, 8, &serial_bus_ops, vm->serial)) < 0 ||
	    (r = bus_register(vm->pio, I8042_DATA_PORT, 1, &i8042_data_ops, &vm->i8042)) < 0 ||
	    (r = bus_register(vm->pio, I8042_CMD_PORT, 1, &i8042_cmd_ops, &vm->i8042)) < 0 ||
	    (r = bus_register(vm->mmio, BOOT_TIMER_ADDR, MMIO_SLOT_SIZE, &boot_timer_ops,
			      &vm->timer)) < 0 ||
	    (r = bus_register(vm->mmio, EXIT_DEV_ADDR, MMIO_SLOT_SIZE, &exit_dev_ops,
			      &vm->exitdev)) < 0 ||
	    (r = bus_register(vm->mmio, IOAPIC_ADDR, MMIO_SLOT_SIZE, &ioapic_bus_ops,
			      &vm->ioapic)) < 0) {
		pr_err("registering devices: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* virtio devices: the event loop that serves them, then each device the
 * configuration describes, kind by kind, behind its transport. */
int vm_setup_virtio(struct vm *vm)
{
	struct device_env env;
	int r;

	if (devices_configured(device_kinds, device_nkinds, &vm->c) == 0)
		return 0;
	/* 64 SQEs: more in one turn are submitted early (evloop.c), and the
	 * rings are mapped whole, in RSS: 28 KiB at 256 entries, 12 at 64
	 * (with 256 CQEs). */
	if ((r = evloop_create(&vm->loop, 64)) < 0) {
		pr_err("cannot create the io_uring event loop: %s%s", strerror(-r),
		       r == -EPERM || r == -ENOSYS ? " (is io_uring disabled on this host?)" : "");
		return r;
	}
	evloop_set_thread_init(vm->loop, evloop_thread_start, vm);
	vm->vdev_env = (struct vdev_env){
	    .vm_fd = vm->vm_fd, .mmio = vm->mmio, .mem = vm->mem, .loop = vm->loop};
	if ((r = devices_create(&vm->devs, &devices_vdev_transport, &vm->vdev_env)) < 0)
		return r;
	vm->memmap = (struct device_memmap){.map = map_device_memory, .ctx = vm};
	vm->hotmem = (struct device_hotmem){.add = hotmem_add, .set = hotmem_set, .ctx = vm};
	env = (struct device_env){
	    .loop = vm->loop, .mmds = vm->opts.mmds, .memmap = &vm->memmap, .hotmem = &vm->hotmem};
	if ((r = devices_attach_all(vm->devs, device_kinds, device_nkinds, &vm->c, &env)) < 0)
		return r;
	if (devices_cmdline(vm->devs, vm->devices, sizeof(vm->devices)) < 0) {
		pr_err("too many virtio devices for the kernel command line");
		return -ENOSPC;
	}
	return 0;
}

/* Open a boot file of at most max bytes, naming it in every error: its
 * descriptor and *len, or -errno. */
static int open_boot_file(const char *what, const char *path, uint64_t max, uint64_t *len)
{
	struct stat st;
	int fd = open_regular(path, O_RDONLY, &st);

	if (fd == -EINVAL)
		pr_err("%s %s is not a regular file", what, path);
	else if (fd < 0)
		pr_err("cannot read %s %s: %s", what, path, strerror(-fd));
	else if ((uint64_t)st.st_size > max) {
		pr_err("%s %s is larger than guest memory (%llu MiB); try a larger --mem", what,
		       path, (unsigned long long)(max >> 20));
		close(fd);
		return -EFBIG;
	}
	*len = fd < 0 ? 0 : (uint64_t)st.st_size;
	return fd;
}

int vm_root_args(const struct vm_config *c, char *buf, size_t len, char *err, size_t errlen)
{
	const struct vmc_drive *root = c->ndrives ? &c->drives[0] : NULL;
	int n, pmem = vm_config_root_pmem(c);

	buf[0] = '\0';
	if (root && !root->is_root_device)
		root = NULL;
	if (root && pmem >= 0) {
		snprintf(err, errlen, "drive %s and pmem device %s are both root devices",
			 root->drive_id, c->pmem[pmem].id);
		return -EINVAL;
	}
	if (pmem >= 0) {
		n = snprintf(buf, len, "root=/dev/pmem%d %s ", pmem,
			     c->pmem[pmem].read_only ? "ro" : "rw");
		if (n < 0 || (size_t)n >= len) {
			buf[0] = '\0';
			snprintf(err, errlen, "no room for the root device's arguments");
			return -ENOSPC;
		}
		return 0;
	}
	if (!root)
		return 0;
	/* One word of the command line: a space, a quote or "--" would pass
	 * the rest on as other arguments, or to init. */
	if (root->partuuid && (root->partuuid[strcspn(root->partuuid, " \t\n\"\\")] ||
			       strstr(root->partuuid, "--"))) {
		snprintf(err, errlen,
			 "drive %s: partuuid must be one word of the kernel command line",
			 root->drive_id);
		return -EINVAL;
	}
	/* As Firecracker: the root device by PARTUUID, or /dev/vda, read-only
	 * or not as the drive is. */
	n = snprintf(buf, len, "root=%s%s %s ", root->partuuid ? "PARTUUID=" : "/dev/vda",
		     root->partuuid ? root->partuuid : "", root->is_read_only ? "ro" : "rw");
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		snprintf(err, errlen, "drive %s: partuuid too long", root->drive_id);
		return -ENOSPC;
	}
	return 0;
}

/* A custom CPU template (PUT /cpu-config): its CPUID modifiers on vCPU i's
 * copy of the host's table, before flint's own changes. A leaf the host
 * does not list is refused, as Firecracker refuses it. */
static int apply_cpuid_template(const struct vmc_cpu_config *t, struct kvm_cpuid2 *cpuid,
				unsigned i)
{
	for (unsigned k = 0; t->enabled && k < t->ncpuid; k++) {
		const struct vmc_cpuid_mod *m = &t->cpuid[k];

		if (cpuid_modify(cpuid, m->leaf, m->subleaf, m->flags, m->mask, m->value) < 0) {
			pr_err("vCPU %u: cpu-config's CPUID leaf %#x subleaf %#x: this host's KVM "
			       "does not have it",
			       i, m->leaf, m->subleaf);
			return -ENOENT;
		}
	}
	return 0;
}

/* Its kvm_capabilities: each one asked for must be this host's KVM's;
 * one to go unused is so already (flint enables no capability a template
 * could name). */
static int check_kvm_caps(const struct vmc_cpu_config *t, int sys_fd)
{
	for (unsigned k = 0; t->enabled && k < t->ncap; k++)
		if (!t->cap[k].remove && ioctl(sys_fd, KVM_CHECK_EXTENSION, t->cap[k].cap) <= 0) {
			pr_err("cpu-config's kvm_capabilities: this host's KVM lacks capability %u",
			       t->cap[k].cap);
			return -EOPNOTSUPP;
		}
	return 0;
}

/* Its MSR modifiers on vCPU i, after the boot values: refused by KVM, the
 * VM does not start, naming the MSR. */
static int apply_msr_template(const struct vmc_cpu_config *t, int fd, unsigned i)
{
	int r;

	for (unsigned k = 0; t->enabled && k < t->nmsr; k++) {
		const struct vmc_msr_mod *m = &t->msr[k];

		if ((r = x86_msr_modify(fd, m->addr, m->mask, m->value)) < 0) {
			pr_err("vCPU %u: cpu-config's MSR %#x: %s", i, m->addr,
			       r == -EINVAL ? "KVM has no such MSR or refuses the value"
					    : strerror(-r));
			return r;
		}
	}
	return 0;
}

/* The kernel command line: boot_args (or flint's default) with the VM's
 * own arguments (the root device, the virtio-mmio slots) before its first
 * "--". */
static char *boot_cmdline(struct vm *vm, char *err, size_t errlen)
{
	char root[VMC_MAX_PATH + 32];
	char args[sizeof(vm->devices) + sizeof(root) + 64];
	const char *base = vm->c.boot.boot_args ? vm->c.boot.boot_args : VMC_DEFAULT_BOOT_ARGS;

	if (vm_root_args(&vm->c, root, sizeof(root), err, errlen) < 0)
		return NULL;
	/* Hot-plugged memory is of no use offline: the guest onlines it as it
	 * comes, movable so that it can give it back (Firecracker's advice),
	 * unless the command line says otherwise. */
	snprintf(args, sizeof(args), "%s%s%s", root, vm->devices,
		 vm->c.memory_hotplug.enabled && !strstr(base, "memhp_default_state=")
		     ? " memhp_default_state=online_movable"
		     : "");
	struct cmdline_parts p = {
	    .base = base,
	    .devices = args[0] ? args : NULL,
	};
	return cmdline_build(&p, CMDLINE_MAX, err, errlen);
}

static int vm_setup_boot(struct vm *vm)
{
	const struct vmc_boot *b = &vm->c.boot;
	uint64_t mem = vm->c.machine.mem_size_mib << 20;
	uint64_t len;
	const char *why = "";
	char err[256];
	int fd, r;

	if ((fd = open_boot_file("kernel", b->kernel_image_path, mem, &len)) < 0)
		return fd;
	r = loader_load_kernel_fd(vm->mem, fd, len, &vm->bi, &why);
	close(fd);
	if (r < 0) {
		pr_err("kernel %s: %s", b->kernel_image_path, why);
		return r;
	}
	if (b->initrd_path) {
		if ((fd = open_boot_file("initrd", b->initrd_path, mem, &len)) < 0)
			return fd;
		r = loader_load_initrd_fd(vm->mem, fd, len, &vm->bi, &why);
		close(fd);
		if (r < 0) {
			pr_err("initrd %s: %s", b->initrd_path, why);
			return r;
		}
	}
	char *cmdline = boot_cmdline(vm, err, sizeof(err));
	if (!cmdline) {
		pr_err("%s", err);
		return -EINVAL;
	}
	pr_debug("kernel command line: %s", cmdline);
	r = loader_write_zero_page(vm->mem, &vm->bi, cmdline, &why);
	free(cmdline);
	if (r < 0) {
		pr_err("%s", why);
		return r;
	}
	if ((r = mptable_write(vm->mem, vm->c.machine.vcpu_count, vm->ioapic.s.npins)) < 0) {
		pr_err("writing the MP table: %s", strerror(-r));
		return r;
	}
	if ((r = x86_write_boot_tables(vm->mem)) < 0) {
		pr_err("writing the boot page tables: %s", strerror(-r));
		return r;
	}
	return 0;
}

int vm_setup_vcpus(struct vm *vm)
{
	unsigned max;
	struct kvm_cpuid2 *supported = kvm_supported_cpuid(vm->sys_fd, &max);
	struct kvm_cpuid2 *cpuid = NULL;
	const char *what;
	int r = 0;

	if (!supported) {
		r = -errno;
		pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return r;
	}
	if ((r = check_kvm_caps(&vm->c.cpu_config, vm->sys_fd)) < 0) {
		free(supported);
		return r;
	}
	size_t sz = sizeof(*supported) + max * sizeof(supported->entries[0]);
	cpuid = malloc(sz);
	unsigned n = vm->c.machine.vcpu_count;

	vm->vcpus = calloc(n, sizeof(*vm->vcpus));
	if (!cpuid || !vm->vcpus) {
		r = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *v = &vm->vcpus[i];
		r = vcpu_create(v, vm->sys_fd, vm->vm_fd, i, &vm->env);
		vm->nvcpus = i + 1; /* destroy the partly made one too */
		if (r < 0) {
			pr_err("creating vCPU %u: %s", i, strerror(-r));
			goto out;
		}
		memcpy(cpuid, supported, sz);
		/* The template first, as Firecracker: flint's per-vCPU
		 * values (APIC IDs, topology) then hold whatever it says. */
		if ((r = apply_cpuid_template(&vm->c.cpu_config, cpuid, i)) < 0)
			goto out;
		if ((r = cpuid_setup_smt(cpuid, max, i, n, vm->c.machine.smt)) < 0) {
			pr_err("CPUID for vCPU %u: %s", i, strerror(-r));
			goto out;
		}
		if ((r = x86_vcpu_setup(v->fd, i, cpuid, &vm->bi, &what)) < 0) {
			pr_err("vCPU %u: %s: %s", i, what, strerror(-r));
			goto out;
		}
		if ((r = apply_msr_template(&vm->c.cpu_config, v->fd, i)) < 0)
			goto out;
		if (i == 0 && !(vm->cpuid0 = malloc(sz))) {
			r = -ENOMEM;
			goto out;
		}
		if (i == 0)
			memcpy(vm->cpuid0, cpuid, sz);
	}
out:
	free(cpuid);
	free(supported);
	return r;
}

/* What vm.c and the device kinds honour of a vm_config. The logger (its
 * module filter too: core/logger.c) and the metrics file are the command
 * layer's, around the VM. */
const unsigned vm_supported_features =
    VMC_F_LOGGER | VMC_F_LOGGER_MODULE | VMC_F_METRICS | VMC_F_ENTROPY | VMC_F_ENTROPY_RATE_LIMIT |
    VMC_F_DRIVE_RATE_LIMIT | VMC_F_NET_RATE_LIMIT | VMC_F_SMT | VMC_F_HUGE_PAGES |
    VMC_F_DIRTY_PAGES | VMC_F_SERIAL_OUT | VMC_F_SERIAL_RATE_LIMIT | VMC_F_PARTUUID |
    VMC_F_NET_MTU | VMC_F_BALLOON | VMC_F_BALLOON_HINTING | VMC_F_BALLOON_REPORTING |
    VMC_F_CPU_CONFIG | VMC_F_PMEM | VMC_F_MEMORY_HOTPLUG;

/* --- metrics: the VM's sources -------------------------------------------- */

static void put_counter(void *ctx, const char *name, uint64_t v)
{
	metrics_put(ctx, name, v);
}

static void fill_device(void *ctx, json_t *obj)
{
	device_counters(ctx, put_counter, obj);
}

/* The user-space exits of all vCPUs: by KVM exit reason, port and MMIO
 * accesses, and accesses no device claimed. */
struct vm_exits {
	uint64_t by_reason[VCPU_EXIT_REASONS];
	uint64_t pio, mmio, unhandled;
};

static void sum_exits(const struct vm *vm, struct vm_exits *e)
{
	memset(e, 0, sizeof(*e));
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		const struct vcpu *v = &vm->vcpus[i];

		for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
			e->by_reason[r] += vcpu_counter(&v->exits[r]);
		e->pio += vcpu_counter(&v->pio_exits);
		e->mmio += vcpu_counter(&v->mmio_exits);
		e->unhandled += vcpu_counter(&v->unhandled);
	}
}

/* Exits by reason, over all vCPUs, as Firecracker's "vcpu" section. */
static void fill_vcpus(void *ctx, json_t *obj)
{
	struct vm_exits e;
	char name[64];

	sum_exits(ctx, &e);
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (e.by_reason[r]) {
			snprintf(name, sizeof(name), "exit_%s", vcpu_exit_name(r));
			metrics_put(obj, name, e.by_reason[r]);
		}
	metrics_put(obj, "exit_io", e.pio);
	metrics_put(obj, "exit_mmio", e.mmio);
	metrics_put(obj, "failures", e.unhandled);
}

static void fill_latencies(void *ctx, json_t *obj)
{
	struct vm *vm = ctx;

	metrics_put(obj, "boot_us", __atomic_load_n(&vm->timer.boot_us, __ATOMIC_ACQUIRE));
	metrics_put(obj, "pause_vm", atomic_load(&vm->pause_us));
	metrics_put(obj, "resume_vm", atomic_load(&vm->resume_us));
	metrics_put(obj, "full_create_snapshot", atomic_load(&vm->snap_full_us));
	metrics_put(obj, "diff_create_snapshot", atomic_load(&vm->snap_diff_us));
	metrics_put(obj, "load_snapshot", atomic_load(&vm->load_us));
}

/* Firecracker's "uart" section: bytes the console's output took, those it
 * did not (the rate limiter's, and those lost to a reader that fell behind
 * or failed), and its failed writes. */
static void fill_uart(void *ctx, json_t *obj)
{
	struct console_counts cc;

	console_counts(ctx, &cc);
	metrics_put(obj, "write_count", cc.written);
	metrics_put(obj, "missed_write_count", cc.dropped + cc.lost);
	metrics_put(obj, "error_count", cc.errors);
}

/* Firecracker's aggregate sections ("block", "net"): every device of the
 * kind adds its counters to what the others put there. */
static void add_counter(void *ctx, const char *name, uint64_t v)
{
	json_t *obj = ctx, *cur = json_object_get(obj, name);

	metrics_put(obj, name, (cur ? (uint64_t)json_integer_value(cur) : 0) + v);
}

static void fill_device_sum(void *ctx, json_t *obj)
{
	device_counters(ctx, add_counter, obj);
}

int vm_setup_metrics(struct vm *vm)
{
	struct metrics *m = vm->opts.metrics;
	char section[128];

	if (!m)
		return 0;
	for (unsigned i = 0; vm->devs && i < devices_count(vm->devs); i++) {
		struct device *d = devices_at(vm->devs, i);
		const char *per_id = device_kind(d)->metrics_section;
		size_t n = per_id ? strlen(per_id) : 0;

		device_metrics_section(d, section, sizeof(section));
		if (metrics_add_source(m, section, fill_device, d) < 0)
			return -ENOMEM;
		/* "block_" names a section per drive and the sum of them all. */
		if (n > 1 && per_id[n - 1] == '_' && n < sizeof(section)) {
			snprintf(section, sizeof(section), "%.*s", (int)(n - 1), per_id);
			if (metrics_add_source(m, section, fill_device_sum, d) < 0)
				return -ENOMEM;
		}
	}
	if (metrics_add_source(m, "vcpu", fill_vcpus, vm) < 0 ||
	    metrics_add_source(m, "uart", fill_uart, vm->con) < 0 ||
	    metrics_add_gauges(m, "latencies_us", fill_latencies, vm) < 0)
		return -ENOMEM;
	return 0;
}

static void remove_metrics(struct vm *vm)
{
	struct metrics *m = vm->opts.metrics;

	if (!m)
		return;
	for (unsigned i = 0; vm->devs && i < devices_count(vm->devs); i++)
		metrics_remove_sources(m, devices_at(vm->devs, i));
	metrics_remove_sources(m, vm);
	if (vm->con)
		metrics_remove_sources(m, vm->con);
}

int vm_alloc(struct vm **out, const struct vm_config *c, const struct vm_opts *o)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	char err[256];
	int r;

	*out = NULL;
	if (!vm)
		return -ENOMEM;
	vm->sys_fd = vm->vm_fd = vm->serial_irqfd = vm->i8042_irqfd = vm->serial_out_fd = -1;
	vm->uffd = vm->uffd_conn = -1;
	vm->opts = *o;
	/* As Firecracker: a console that writes to serial_out_path reads no
	 * stdin. */
	if (c->serial.enabled && c->serial.serial_out_path)
		vm->opts.console_in = false;
	if ((r = vm_config_copy(&vm->c, c)) < 0) {
		free(vm);
		return r;
	}
	if ((r = vm_config_check_supported(c, vm_supported_features, err, sizeof(err))) < 0) {
		pr_err("%s", err);
		vm_config_free(&vm->c);
		free(vm);
		return r;
	}
	control_init(&vm->ctl, kick_all, vm);
	vm->env = (struct vcpu_env){.ctl = &vm->ctl};
	if ((r = mailbox_create(&vm->mb)) < 0) {
		pr_err("cannot create the control mailbox: %s", strerror(-r));
		vm_destroy(vm);
		return r;
	}
	*out = vm;
	return 0;
}

int vm_create(struct vm **out, const struct vm_config *c, const struct vm_opts *o)
{
	struct vm *vm;
	int r;

	*out = NULL;
	if (!c->boot.kernel_image_path) {
		pr_err("no kernel to boot: the boot source is not configured");
		return -EINVAL;
	}
	if ((r = vm_alloc(&vm, c, o)) < 0)
		return r;
	/* Start-up order: KVM and the VM, memory, devices, boot image, vCPUs. */
	static const struct {
		const char *name;
		int (*fn)(struct vm *vm);
	} steps[] = {
	    {"seccomp policy", vm_setup_seccomp},
	    {"VM", vm_setup_kvm},
	    {"memory", vm_setup_memory},
	    {"devices", vm_setup_legacy},
	    {"virtio devices", vm_setup_virtio},
	    {"kernel and boot tables", vm_setup_boot},
	    {"vCPUs", vm_setup_vcpus},
	    {"metrics", vm_setup_metrics},
	};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		uint64_t t0 = now_ns();
		if ((r = steps[i].fn(vm)) < 0) {
			vm_destroy(vm);
			return r;
		}
		pr_debug("%s set up in %llu us", steps[i].name,
			 (unsigned long long)(now_ns() - t0) / 1000);
	}
	*out = vm;
	return 0;
}

static void tty_raw(struct vm *vm)
{
	struct termios t;
	if (!vm->opts.console_in || !isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &vm->tty) < 0)
		return;
	/* Keystrokes, ^C included, go to the guest, as with Firecracker. */
	t = vm->tty;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		vm->tty_raw = true;
}

/* Where each vCPU was at the end: for a guest stopped from outside, the
 * place its kernel was looping in (look it up in System.map), and its
 * interrupt state: for a guest that halted and was never woken, whether
 * its timer was armed and what it had in service. After the joins. */
static void print_where(struct vm *vm)
{
	char line[512];
	char rips[32 + VMC_MAX_VCPUS * sizeof(" 31:rip=0xffffffffffffffff")];
	size_t n = snprintf(rips, sizeof(rips), "vCPUs left the guest at:");

	for (unsigned i = 0; i < vm->nvcpus && n < sizeof(rips); i++)
		n += vm->vcpus[i].left_valid
			 ? snprintf(rips + n, sizeof(rips) - n, " %u:rip=%#llx", i,
				    (unsigned long long)vm->vcpus[i].left_rip)
			 : snprintf(rips + n, sizeof(rips) - n, " %u:unknown", i);
	pr_info("%s", rips);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].fd >= 0 && !vm->vcpus[i].abandoned &&
		    vcpu_state_describe_apic(vm->vcpus[i].fd, line, sizeof(line)) == 0)
			pr_info("vCPU %u's local APIC: %s", i, line);
}

static void print_stats(struct vm *vm)
{
	struct vm_exits e;
	char line[512];
	size_t n = 0;

	sum_exits(vm, &e);
	n += snprintf(line + n, sizeof(line) - n, "user-space exits:");
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (e.by_reason[r])
			n += snprintf(line + n, sizeof(line) - n, " %s=%llu", vcpu_exit_name(r),
				      (unsigned long long)e.by_reason[r]);
	snprintf(line + n, sizeof(line) - n, " (unclaimed accesses %llu)",
		 (unsigned long long)e.unhandled);
	pr_info("%s", line);

	static const char *const kvm_stats[] = {
	    "exits",	    "io_exits",		"mmio_exits",	  "irq_exits", "halt_exits",
	    "signal_exits", "irq_window_exits", "insn_emulation", "hypercalls"};
	n = snprintf(line, sizeof(line), "KVM exits (all vCPUs):");
	for (size_t k = 0; k < ARRAY_SIZE(kvm_stats); k++) {
		uint64_t sum;
		if (kvm_stat_sum(vm, kvm_stats[k], &sum))
			n += snprintf(line + n, sizeof(line) - n, " %s=%llu", kvm_stats[k],
				      (unsigned long long)sum);
	}
	pr_info("%s", line);
	if (vm->timer.boot_us)
		pr_info("KVM exits until the boot timer: %llu", (unsigned long long)vm->boot_exits);
	print_where(vm);
	struct console_counts cc;
	console_counts(vm->con, &cc);
	if (cc.written || cc.dropped || cc.lost)
		pr_info(
		    "serial: bytes out=%llu dropped=%llu (the rate limiter) lost=%llu (a reader "
		    "over %u KiB behind, or %llu failed writes)",
		    (unsigned long long)cc.written, (unsigned long long)cc.dropped,
		    (unsigned long long)cc.lost, CONSOLE_BACKLOG >> 10,
		    (unsigned long long)cc.errors);
	if (vm->devs && !atomic_load(&vm->abandoned))
		devices_print_stats(vm->devs);
}

/* Pause every vCPU: all are asked at once, then waited for. When this
 * returns 0 none is in KVM_RUN. One that does not park in time (stuck in a
 * device call) fails the pause, and the others run again. */
int vm_pause_vcpus(struct vm *vm, struct vm_err *err)
{
	uint64_t t0 = now_ns(), deadline = t0 + VM_PAUSE_TIMEOUT_MS * 1000000ULL;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_pause(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vcpu_wait_paused(&vm->vcpus[i], deadline) < 0) {
			for (unsigned j = 0; j < vm->nvcpus; j++)
				vcpu_resume(&vm->vcpus[j]);
			return vm_err_set(err, -ETIMEDOUT, "vCPU %u did not pause within %d ms", i,
					  VM_PAUSE_TIMEOUT_MS);
		}
	if (control_stopping(&vm->ctl))
		return vm_err_set(err, -ESHUTDOWN, "the VM stopped while pausing");
	vm->has_paused_clock = ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->paused_clock) == 0;
	if (!vm->has_paused_clock)
		pr_debug("KVM_GET_CLOCK: %s; the guest's clock runs on while paused",
			 strerror(errno));
	atomic_store(&vm->state, VM_STATE_PAUSED);
	atomic_store(&vm->pause_us, (now_ns() - t0) / 1000);
	pr_debug("paused %u vCPU(s) in %llu us", vm->nvcpus,
		 (unsigned long long)(now_ns() - t0) / 1000);
	return 0;
}

void vm_set_paused_clock(struct vm *vm)
{
	if (!vm->has_paused_clock)
		return;
	/* Only the clock value: KVM takes no flags but its own here. */
	struct kvm_clock_data c = {.clock = vm->paused_clock.clock};
	/* A restored guest's clock goes on by the time since its snapshot,
	 * so its wall clock is right (its kvmclock told it that it was
	 * stopped: no soft-lockup report). */
	uint64_t wall = realtime_ns();
	if (vm->restored_realtime && wall > vm->restored_realtime)
		c.clock += wall - vm->restored_realtime;
	vm->restored_realtime = 0;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		pr_debug("KVM_SET_CLOCK: %s", strerror(errno));
	vm->has_paused_clock = false;
}

void vm_resume_vcpus(struct vm *vm)
{
	uint64_t t0 = now_ns();

	vm_set_paused_clock(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_resume(&vm->vcpus[i]);
	atomic_store(&vm->state, VM_STATE_RUNNING);
	phases_mark(BP_RESUMED); /* a restore's; dropped in a boot */
	atomic_store(&vm->resume_us, (now_ns() - t0) / 1000);
}

/* A change of one device after boot (VM_ACTION_UPDATE, vm_update_device). */
struct vm_update {
	const char *kind, *id;
	unsigned changes; /* enum device_change */
	vm_edit_fn edit;
	const void *arg;
};

/* On the control thread: the device follows a copy of the configuration
 * with its entry edited, which becomes the VM's once the device took it. */
static int update_device(struct vm *vm, const struct vm_update *u, struct vm_err *err)
{
	struct vm_config next;
	int r;

	if (!vm->devs || !devices_find(vm->devs, u->kind, u->id))
		return vm_err_set(err, -ENOENT, "no device '%s' in this VM", u->id);
	if (vm_config_copy(&next, &vm->c) < 0)
		return vm_err_set(err, -ENOMEM, "out of memory");
	if ((r = u->edit(&next, u->arg, err)) < 0 ||
	    (r = devices_update(vm->devs, u->kind, u->id, &next, u->changes, err)) < 0) {
		vm_config_free(&next);
		return r;
	}
	vm_config_free(&vm->c);
	vm->c = next;
	/* The snapshot's drive restore checks the image it was saved with
	 * (kind_blk.c): a reset in place onto another would fail only once
	 * the guest's memory is gone, stopping the VM. Refused before. */
	if ((u->changes & DEVICE_CHANGE_BACKING) && vm->snap && !vm->reset_refusal[0])
		snprintf(vm->reset_refusal, sizeof(vm->reset_refusal),
			 "drive %.64s had its image changed (PATCH /drives) since the restore",
			 u->id);
	return 0;
}

/* A device's command (VM_ACTION_COMMAND, vm_device_command). */
struct vm_command {
	const char *kind, *id;
	enum device_command cmd;
	uint64_t arg;
	device_counter_fn emit;
	void *ctx;
};

static int device_command_of(struct vm *vm, const struct vm_command *c, struct vm_err *err)
{
	struct device *d = vm->devs ? devices_find(vm->devs, c->kind, c->id) : NULL;

	if (!d)
		return vm_err_set(err, -ENOENT, "no device '%s' in this VM", c->id);
	return device_command(d, c->cmd, c->arg, c->emit, c->ctx, err);
}

/* The control thread's side of the mailbox: one action, in order. */
static void execute(void *ctx, int action, long arg, struct vm_err *err)
{
	struct vm *vm = ctx;

	if (control_stopping(&vm->ctl)) {
		if (action == VM_ACTION_STOP)
			vm_err_set(err, -EALREADY, "the VM is already stopping");
		else
			vm_err_set(err, -ESHUTDOWN, "the VM is stopping");
		return;
	}
	enum vm_state st = atomic_load(&vm->state);
	switch (action) {
	case VM_ACTION_STOP:
		control_request_stop(&vm->ctl, STOP_REQUESTED, (int)arg, NULL);
		break;
	case VM_ACTION_PAUSE:
	case VM_ACTION_RESUME:
		if (st == VM_STATE_NOT_STARTED)
			vm_err_set(err, -EPERM, "the VM has not started");
		else if (action == VM_ACTION_PAUSE && st == VM_STATE_RUNNING)
			vm_pause_vcpus(vm, err);
		else if (action == VM_ACTION_RESUME && st == VM_STATE_PAUSED)
			vm_resume_vcpus(vm);
		/* Pausing a paused VM or resuming a running one does nothing
		 * and succeeds, as in Firecracker. */
		break;
	case VM_ACTION_CTRL_ALT_DEL:
		if (st == VM_STATE_NOT_STARTED)
			vm_err_set(err, -EPERM, "the VM has not started");
		else
			i8042_ctrl_alt_del(&vm->i8042, err);
		break;
	case VM_ACTION_FLUSH_METRICS: {
		char why[256];
		int r = vm->opts.metrics ? metrics_flush(vm->opts.metrics, why, sizeof(why)) : 0;
		if (r < 0)
			vm_err_set(err, r, "%s", why);
		break;
	}
	case VM_ACTION_UPDATE:
		update_device(vm, (const struct vm_update *)(uintptr_t)arg, err);
		break;
	case VM_ACTION_COMMAND:
		device_command_of(vm, (const struct vm_command *)(uintptr_t)arg, err);
		break;
	case VM_ACTION_SNAPSHOT:
		if (st != VM_STATE_PAUSED)
			vm_err_set(err, -EPERM, "the microVM must be paused to create a snapshot");
		else
			vm_snapshot_execute(vm, (const struct vm_snapshot_args *)(uintptr_t)arg,
					    err);
		break;
	case VM_ACTION_RESET:
		if (st == VM_STATE_NOT_STARTED)
			vm_err_set(err, -EPERM, "the VM has not started");
		else
			vm_reset_execute(vm, err);
		break;
	default:
		vm_err_set(err, -EINVAL, "unknown action %d", action);
		break;
	}
}

#define CHECK_PERIOD_NS (100 * 1000000ull)

/* A file mapped into the guest (a pmem device's, a File-backed restore's
 * memory file) that a host program shrank, into err; false if none did.
 * What was cut off is gone: the guest's next touch of it waits in KVM for
 * ever (a pmem file's shared mapping) or fails KVM_RUN with EFAULT (the
 * memory file's private one), and a device's kills flint with SIGBUS. */
static bool mapped_file_lost(struct vm *vm, char *err, size_t len)
{
	return (vm->devs && devices_check(vm->devs, err, len) < 0) ||
	       gmem_check_file(vm->mem, err, len) < 0;
}

/* Stop the VM as soon as that happens, saying which file: true if so. */
static bool check_mapped_files(struct vm *vm)
{
	char err[256];

	return mapped_file_lost(vm, err, sizeof(err)) &&
	       control_request_stop(&vm->ctl, STOP_ERROR, 0, "%s", err);
}

/* A thread waits on a page fault nothing can answer (uffd_watch). */
static void uffd_lost(void *ctx, const char *why)
{
	struct vm *vm = ctx;

	if (!control_request_stop(
		&vm->ctl, STOP_ERROR, 0,
		"the guest needs memory the Uffd handler has not served (%s), and "
		"the handler is gone: nothing can bring it",
		why))
		/* The VM stops already: one more that waits. */
		pr_warn("the guest needs memory the Uffd handler has not served (%s)", why);
}

static bool vcpus_ended(void *ctx)
{
	struct vm *vm = ctx;

	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vcpu_alive(&vm->vcpus[i]))
			return false;
	return true;
}

static bool loop_joined(void *ctx)
{
	struct vm *vm = ctx;
	int r;

	if (!evloop_try_join(vm->loop, &r))
		return false;
	if (r < 0)
		pr_err("event loop: %s", strerror(-r));
	return true;
}

/* Threads left to the process's exit: from now on nothing that may wait
 * on what they hold (a device's lock, a vCPU's) is touched, the devices'
 * metrics included; vm_destroy frees nothing. */
static void abandon(struct vm *vm)
{
	struct metrics *m = vm->opts.metrics;

	atomic_store(&vm->abandoned, true);
	for (unsigned i = 0; m && vm->devs && i < devices_count(vm->devs); i++)
		metrics_remove_sources(m, devices_at(vm->devs, i));
}

static void join_vcpus(struct vm *vm, struct uffd_watch *w)
{
	if (!uffd_watch_wait(w, vcpus_ended, vm)) {
		for (unsigned i = 0; i < vm->nvcpus; i++)
			if (vcpu_alive(&vm->vcpus[i])) {
				pr_warn("vCPU %u waits on guest memory the Uffd handler never "
					"served: it ends with flint",
					i);
				vcpu_abandon(&vm->vcpus[i]);
			}
		abandon(vm);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

/* The event loop's thread, as join_vcpus the vCPUs'. */
static void join_loop(struct vm *vm, struct uffd_watch *w)
{
	int r;

	evloop_stop(vm->loop);
	if (!uffd_watch_wait(w, loop_joined, vm)) {
		pr_warn("the devices' event loop waits on guest memory the Uffd handler never "
			"served: it ends with flint");
		abandon(vm);
	} else if ((r = evloop_join(vm->loop)) < 0)
		pr_err("event loop: %s", strerror(-r));
}

void vm_run(struct vm *vm, struct vm_exit *how)
{
	sigset_t sigs;
	uint8_t in[64];
	size_t in_len = 0, in_off = 0;
	bool stdin_open = vm->opts.console_in;
	struct uffd_watch *uffd = &vm->uffd_watch;
	uint64_t next_check = 0;
	bool told_lost = false;
	char lost[256];
	int r;

	uffd_watch_init(uffd, vm->uffd, vm->uffd_conn, vm->mem, uffd_lost, vm);
	/* Host signals arrive through a signalfd; vCPU threads inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	vcpu_block_kick();
	tty_raw(vm);
	if (vm->loop && (r = evloop_start(vm->loop)) < 0)
		control_request_stop(&vm->ctl, STOP_ERROR, 0, "cannot start the event loop: %s",
				     strerror(-r));
	pr_debug("starting %u vCPU(s) %llu us after launch", vm->nvcpus,
		 (unsigned long long)us_since_launch());
	phases_arm(vm->vcpus, vm->nvcpus);
	for (unsigned i = 0; i < vm->nvcpus && !control_stopping(&vm->ctl); i++) {
		if (vm->start_paused)
			vcpu_pause(&vm->vcpus[i]); /* parks before its first KVM_RUN */
		if ((r = vcpu_start(&vm->vcpus[i])) < 0) {
			control_request_stop(&vm->ctl, STOP_ERROR, 0, "cannot start vCPU %u: %s", i,
					     strerror(-r));
			break;
		}
	}
	if (!control_stopping(&vm->ctl))
		atomic_store(&vm->state, vm->start_paused ? VM_STATE_PAUSED : VM_STATE_RUNNING);
	if (!control_stopping(&vm->ctl) && !vm->start_paused)
		phases_mark(BP_RESUMED); /* a restore's; dropped in a boot */
	/* A restored VM's devices take up what its queues hold. */
	if (vm->devs)
		devices_kick(vm->devs);
	/* After creating the other threads, so that none inherits this filter,
	 * and before serving anything (seccomp.h). */
	if ((r = seccomp_enter(SECCOMP_MAIN)) < 0)
		control_request_stop(&vm->ctl, STOP_ERROR, 0,
				     "seccomp filter for the main thread: %s", strerror(-r));
	/* Set-up is over: what its deeper calls touched leaves RSS. */
	(void)stack_release_below();
	while (!control_stopping(&vm->ctl)) {
		struct pollfd p[6] = {
		    {.fd = mailbox_fd(vm->mb), .events = POLLIN},
		    {.fd = sfd, .events = POLLIN},
		    {.fd = stdin_open && in_off == in_len ? STDIN_FILENO : -1, .events = POLLIN},
		    {.fd = vm->opts.metrics ? metrics_timer_fd(vm->opts.metrics) : -1,
		     .events = POLLIN},
		    uffd_watch_pollfd(uffd),
		    /* Console output its reader has not taken yet goes out
		     * as soon as it can (a vCPU never waits for it). */
		    {.fd = console_waiting_fd(vm->con), .events = POLLOUT},
		};
		/* A pending partial line (a shell prompt) is flushed on the tick. */
		int n = poll(p, 6, in_off < in_len ? 10 : 100), poll_errno = errno;
		console_flush(vm->con);
		if (n < 0 && poll_errno != EINTR) {
			/* Stopped as any error stops it: the vCPUs kicked
			 * out, not left running for join_vcpus to wait on. */
			control_request_stop(&vm->ctl, STOP_ERROR, 0, "poll: %s",
					     strerror(poll_errno));
			break;
		}
		if (p[0].revents & POLLIN)
			mailbox_run(vm->mb, execute, vm);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				control_request_stop(&vm->ctl, STOP_HOST_SIGNAL, si.ssi_signo,
						     "stopped by signal %u", si.ssi_signo);
		}
		if (p[2].revents & (POLLIN | POLLHUP)) {
			ssize_t got = read(STDIN_FILENO, in, sizeof(in));
			if (got > 0)
				in_len = got, in_off = 0;
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				stdin_open = false; /* a terminal's may be non-blocking */
		}
		if (p[3].revents & POLLIN)
			metrics_on_timer(vm->opts.metrics);
		if (p[4].revents || uffd_watch_due(uffd))
			uffd_watch_step(uffd, p[4].revents);
		if (in_off < in_len)
			in_off += serial_input(vm->serial, in + in_off, in_len - in_off);
		if (now_ns() >= next_check) {
			told_lost |= check_mapped_files(vm);
			next_check = now_ns() + CHECK_PERIOD_NS;
		}
	}
	/* A vCPU whose KVM_RUN failed (EFAULT) on memory a host program cut
	 * off before the check saw it: the cause, before the stop's reason. */
	if (!told_lost && atomic_load(&vm->ctl.reason) == STOP_ERROR &&
	    mapped_file_lost(vm, lost, sizeof(lost)))
		pr_err("%s", lost);
	/* Whoever waits for an answer gets it now, not after the joins. */
	mailbox_close(vm->mb, -ESHUTDOWN, "the VM has stopped");
	join_vcpus(vm, uffd);
	phases_end();
	atomic_store(&vm->state, VM_STATE_STOPPED);
	vm_snapshot_on_stop(vm);
	if (vm->loop)
		join_loop(vm, uffd);
	/* What the guest sent that a host program had not read yet is still
	 * delivered: a guest that writes its last output and powers off. */
	if (vm->devs && !atomic_load(&vm->abandoned))
		devices_hand_over(vm->devs, now_ns() + VM_HAND_OVER_MS * 1000000ull);
	if (vm->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &vm->tty);
	vm->tty_raw = false;
	console_drain(vm->con, VM_HAND_OVER_MS);
	close_fd(&sfd);
	if (vm->opts.stats)
		print_stats(vm);
	else if ((atomic_load(&vm->ctl.reason) == STOP_HOST_SIGNAL && vm->ctl.value == SIGQUIT) ||
		 atomic_load(&vm->describe_at_stop))
		/* SIGQUIT, or a guest that stopped answering: say where it
		 * was (a hung guest's post-mortem, as a Go program's goroutine
		 * dump on SIGQUIT). */
		print_where(vm);
	how->reason = atomic_load(&vm->ctl.reason);
	how->value = vm->ctl.value;
	snprintf(how->msg, sizeof(how->msg), "%s", vm->ctl.msg);
}

void vm_describe_at_stop(struct vm *vm)
{
	atomic_store(&vm->describe_at_stop, true);
}

void vm_request_stop(struct vm *vm, int status, const char *msg)
{
	control_request_stop(&vm->ctl, STOP_REQUESTED, status, msg ? "%s" : NULL, msg);
}

int vm_act(struct vm *vm, enum vm_action a, long arg, struct vm_err *err)
{
	return mailbox_call(vm->mb, a, arg, err);
}

int vm_snapshot(struct vm *vm, const struct vm_snapshot_args *a, struct vm_err *err)
{
	return mailbox_call(vm->mb, VM_ACTION_SNAPSHOT, (long)(uintptr_t)a, err);
}

int vm_reset(struct vm *vm, struct vm_err *err)
{
	return mailbox_call(vm->mb, VM_ACTION_RESET, 0, err);
}

int vm_update_device(struct vm *vm, const char *kind, const char *id, unsigned changes,
		     vm_edit_fn edit, const void *arg, struct vm_err *err)
{
	struct vm_update u = {.kind = kind, .id = id, .changes = changes, .edit = edit, .arg = arg};
	return mailbox_call(vm->mb, VM_ACTION_UPDATE, (long)(uintptr_t)&u, err);
}

int vm_device_command(struct vm *vm, const char *kind, const char *id, unsigned cmd, uint64_t arg,
		      void (*emit)(void *ctx, const char *name, uint64_t value), void *ctx,
		      struct vm_err *err)
{
	struct vm_command c = {.kind = kind,
			       .id = id,
			       .cmd = (enum device_command)cmd,
			       .arg = arg,
			       .emit = emit,
			       .ctx = ctx};
	return mailbox_call(vm->mb, VM_ACTION_COMMAND, (long)(uintptr_t)&c, err);
}

int vm_device_report(struct vm *vm, const char *kind, const char *id,
		     void (*emit)(void *ctx, const char *name, uint64_t value), void *ctx,
		     struct vm_err *err)
{
	struct device *d = vm->devs ? devices_find(vm->devs, kind, id) : NULL;

	if (!d)
		return vm_err_set(err, -ENOENT, "no device '%s' in this VM", id);
	/* Its thread may hold the device's lock for good (vm_run). */
	if (atomic_load(&vm->abandoned))
		return vm_err_set(err, -ESHUTDOWN, "the VM has stopped");
	if (device_report(d, emit, ctx) < 0)
		return vm_err_set(err, -EOPNOTSUPP, "device '%s' reports nothing", id);
	return 0;
}

bool vm_init_said(struct vm *vm, char *line, size_t len)
{
	return vm->con && console_init_said(vm->con, line, len);
}

const struct vm_config *vm_get_config(const struct vm *vm)
{
	return &vm->c;
}

enum vm_state vm_state(struct vm *vm)
{
	enum vm_state s = atomic_load(&vm->state);

	if (control_stopping(&vm->ctl))
		return VM_STATE_STOPPED;
	/* A restore to be resumed by hand: paused from the load on. */
	if (s == VM_STATE_NOT_STARTED && vm->start_paused)
		return VM_STATE_PAUSED;
	return s;
}

const char *vm_state_name(enum vm_state s)
{
	static const char *const names[] = {
	    [VM_STATE_NOT_STARTED] = "Not started",
	    [VM_STATE_RUNNING] = "Running",
	    [VM_STATE_PAUSED] = "Paused",
	    [VM_STATE_STOPPED] = "Stopped",
	};
	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "?";
}

uint64_t vm_boot_us(const struct vm *vm)
{
	return __atomic_load_n(&vm->timer.boot_us, __ATOMIC_ACQUIRE);
}

void vm_refuse_actions(struct vm *vm)
{
	if (vm)
		mailbox_close(vm->mb, -ESHUTDOWN, "the VM did not start");
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &vm->tty);
	remove_metrics(vm);
	/* Threads stuck on guest memory (vm_run) use all the rest, and
	 * closing the userfaultfd would hand them zero pages: the process's
	 * exit ends them and frees it all. */
	if (atomic_load(&vm->abandoned))
		return;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	/* The loop first: its pending ops live in the devices. */
	evloop_destroy(vm->loop);
	devices_destroy(vm->devs);
	serial_destroy(vm->serial);
	console_destroy(vm->con);
	close_fd(&vm->serial_out_fd);
	bus_destroy(vm->mmio);
	bus_destroy(vm->pio);
	gmem_destroy(vm->mem);
	/* Before the VM's fd: KVM's end waits for its async page faults, and
	 * one on a page a dead handler never served waits until the
	 * userfaultfd goes (a live handler holds it: then this changes
	 * nothing). Guest memory is gone already, so nobody sees that page. */
	close_fd(&vm->uffd);
	close_fd(&vm->serial_irqfd);
	close_fd(&vm->i8042_irqfd);
	close_fd(&vm->vm_fd);
	close_fd(&vm->sys_fd);
	close_fd(&vm->uffd_conn); /* after guest memory, as uffd.h asks */
	free(vm->cpuid0);
	free(vm->hot_plugged);
	free(vm->record_workset);
	vm_snapshot_forget(vm);
	mailbox_destroy(vm->mb);
	vm_config_free(&vm->c);
	free(vm);
}
