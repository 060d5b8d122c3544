/* vm_config: the machine as Firecracker's API resources describe it
 * (machine-config, boot-source, drives, network-interfaces, vsock, logger,
 * metrics, entropy, serial), with Firecracker's field names, defaults and
 * rules. The command line, the JSON config file and the API bodies
 * (config_json.h) all produce one; the VM owns it. Process policy (console
 * mode, seccomp, stats) and `flint run`'s own fields stay out.
 *
 * Pure data and rules: no I/O. Every string is malloc'd and owned by the
 * struct holding it; vm_config_free releases them. The parts carry every
 * field Firecracker accepts, including those flint does not honour yet:
 * vm_config_features() says which are in use, and
 * vm_config_check_supported() refuses those the VM layer cannot honour, so
 * nothing is dropped in silence. vmc_ is this module's short prefix for the
 * parts. */
#ifndef FLINT_VM_CONFIG_H
#define FLINT_VM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ratelimit.h"
#include "core/util.h"

/* flint's limits (cli.h's MAX_VCPUS, MAX_DRIVES, MAX_NETS and
 * cli_parse_size's 16 MiB to 1 TiB; vm_config.c checks they agree).
 * Firecracker's vCPU limit is 32 as well. */
#define VMC_MAX_VCPUS  32
#define VMC_MAX_DRIVES 16
#define VMC_MAX_NETS   8
/* virtio-pmem devices (Firecracker's limit is its IRQ lines, shared with
 * the other devices). */
#define VMC_MAX_PMEM	8
#define VMC_MIN_MEM_MIB 16ULL
#define VMC_MAX_MEM_MIB (1ULL << 20)
/* The kernel command line when boot-source has no boot_args. The i8042
 * words, as Firecracker's default has them, skip the driver's probes of a
 * mouse port, a multiplexer, PnP and the keyboard itself (43 port exits
 * and the keyboard's answers awaited at boot); keys still arrive, so
 * Ctrl-Alt-Del (SendCtrlAltDel) works, and reboot=k still resets.
 * noreplace-smp: a kernel built for SMP that finds one CPU rewrites every
 * LOCK prefix in its text to a no-op prefix, one text_poke() each (about
 * 5,000 in flint's kernel, each switching page tables twice); the locked
 * instructions it keeps cost a 1-vCPU guest next to nothing. With more
 * vCPUs the kernel patches nothing anyway. */
#define VMC_DEFAULT_BOOT_ARGS                                                                      \
	"console=ttyS0 reboot=k panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux i8042.nopnp " \
	"i8042.dumbkbd"
/* Firecracker's defaults before PUT /machine-config. */
#define VMC_DEFAULT_VCPUS   1
#define VMC_DEFAULT_MEM_MIB 128ULL
/* Longest drive_id or iface_id (Firecracker sets none; flint names devices
 * by id in messages and stats). */
#define VMC_MAX_ID 64
/* Longest host path (PATH_MAX with its NUL). */
#define VMC_MAX_PATH 4095
/* Longest vsock uds_path: sun_path holds 108 bytes and "_<port>" must fit
 * after it (as --vsock). */
#define VMC_MAX_UDS_PATH 96
/* Longest host_dev_name: IFNAMSIZ with its NUL. */
#define VMC_MAX_IFNAME 15
/* A user interface's network (--net user, passt): fixed, QEMU's user
 * networking's, so that the guest's kernel command line can carry them
 * (ip=) and a restored guest finds them again with a new passt. The
 * gateway reaches the host's loopback; DNS queries to VMC_USER_DNS go to
 * the host's resolver. */
#define VMC_USER_ADDR	 "10.0.2.15"
#define VMC_USER_NETMASK "255.255.255.0"
#define VMC_USER_PREFIX	 24
#define VMC_USER_GATEWAY "10.0.2.2"
#define VMC_USER_DNS	 "10.0.2.3"
/* Network MTU range (swagger: 68 to 65535). */
#define VMC_MIN_MTU 68
#define VMC_MAX_MTU 65535
/* A user interface's: its frames (the MTU and an Ethernet header) go to
 * passt, which takes none over 65535 bytes. */
#define VMC_MAX_MTU_USER (65535 - 14)

/* Rate limiters are ratelimit.h's struct ratelimit_cfg (Firecracker's
 * RateLimiter: a bandwidth and an ops token bucket). A bucket with size 0 or
 * refill_time 0 limits nothing and is stored all zero; all zero is what an
 * absent bucket is.
 *
 * A PATCH changes bucket by bucket: has_X says the body gave bucket X (one
 * given with size 0 removes that limit); one not given stays as it was. */
struct vmc_rl_patch {
	bool has_bandwidth;
	bool has_ops;
	struct ratelimit_cfg v;
};

enum vmc_cpu_template {
	VMC_CPU_TEMPLATE_NONE, /* "None", the default */
	VMC_CPU_TEMPLATE_C3,
	VMC_CPU_TEMPLATE_T2,
	VMC_CPU_TEMPLATE_T2S,
	VMC_CPU_TEMPLATE_T2CL,
	VMC_CPU_TEMPLATE_T2A,
	VMC_CPU_TEMPLATE_V1N1,
};

enum vmc_huge_pages { VMC_HUGE_PAGES_NONE, VMC_HUGE_PAGES_2M };

/* machine-config (Firecracker's MachineConfiguration). */
struct vmc_machine {
	unsigned vcpu_count;	/* 1..32; with smt, 1 or even */
	uint64_t mem_size_mib;	/* 16 MiB..1 TiB; even with 2M huge pages */
	bool smt;		/* default false */
	bool track_dirty_pages; /* default false */
	enum vmc_cpu_template cpu_template;
	enum vmc_huge_pages huge_pages;
};

/* PATCH /machine-config: the fields present, and their values in v. */
struct vmc_machine_patch {
	bool has_vcpu_count, has_mem_size_mib, has_smt, has_track_dirty_pages, has_cpu_template,
	    has_huge_pages;
	struct vmc_machine v;
};

/* boot-source. kernel_image_path NULL: not set yet. boot_args NULL: the VM
 * layer's default command line. */
struct vmc_boot {
	char *kernel_image_path;
	char *initrd_path; /* NULL for none */
	char *boot_args;
};

enum vmc_cache_type { VMC_CACHE_UNSAFE, VMC_CACHE_WRITEBACK };
enum vmc_io_engine { VMC_IO_ENGINE_SYNC, VMC_IO_ENGINE_ASYNC };

/* One drive (Firecracker's Drive): a virtio-blk drive backed by
 * path_on_host, or a vhost-user-blk drive whose backend listens on socket;
 * exactly one of the two is set. */
struct vmc_drive {
	char *drive_id;
	char *path_on_host; /* virtio-blk image, NULL for vhost-user-blk */
	char *socket;	    /* vhost-user-blk backend, NULL for virtio-blk */
	char *partuuid;	    /* root partition's PARTUUID, NULL for none */
	bool is_root_device;
	bool is_read_only;		   /* default false; virtio-blk only */
	enum vmc_cache_type cache_type;	   /* default Unsafe */
	enum vmc_io_engine io_engine;	   /* default Sync; virtio-blk only */
	struct ratelimit_cfg rate_limiter; /* virtio-blk only */
	bool direct;	  /* flint's own "flint_direct" (--drive direct): O_DIRECT */
	bool keep_blocks; /* flint run's scratch disk: no discard (blk_params) */
};

/* PATCH /drives/{id} (Firecracker's PartialDrive): a new image and rate
 * limiter buckets for an existing drive. */
struct vmc_drive_patch {
	char *drive_id;
	char *path_on_host; /* NULL: unchanged */
	struct vmc_rl_patch rate_limiter;
};

/* One network interface (Firecracker's NetworkInterface). */
struct vmc_net {
	char *iface_id;
	char *host_dev_name; /* the host tap; NULL for a user interface */
	/* flint's own: networking through passt (--net user, "backend":
	 * "user"), no tap. A host_dev_name given later (a restore's network
	 * override) makes the interface a tap again. */
	bool user;
	/* A user interface's passt, started by flint-jail: its socket,
	 * inherited (--net user,fd=N). Not saved in snapshots. 0: flint
	 * starts passt. */
	int fd;
	bool has_guest_mac; /* else the guest picks one */
	uint8_t guest_mac[6];
	unsigned mtu; /* advertised with VIRTIO_NET_F_MTU; 0: none */
	struct ratelimit_cfg rx_rate_limiter, tx_rate_limiter;
	/* Named in the MMDS configuration: the guest reaches MMDS on it. A
	 * PUT of the interface again keeps it. */
	bool mmds;
};

/* PATCH /network-interfaces/{id} (PartialNetworkInterface). */
struct vmc_net_patch {
	char *iface_id;
	struct vmc_rl_patch rx_rate_limiter, tx_rate_limiter;
};

/* One virtio-pmem device (Firecracker's Pmem): path_on_host mapped into
 * the guest's physical memory, /dev/pmem<N> in configuration order. */
struct vmc_pmem {
	char *id;
	char *path_on_host;
	bool root_device;		   /* root=/dev/pmem<N> */
	bool read_only;			   /* mapped read-only; the guest's writes are dropped */
	struct ratelimit_cfg rate_limiter; /* its flushes: 1 op, the file's size in bytes */
};

/* PATCH /pmem/{id} (Firecracker's PartialPmem): the rate limiter. */
struct vmc_pmem_patch {
	char *id;
	struct vmc_rl_patch rate_limiter;
};

struct vmc_vsock {
	bool enabled;
	uint32_t guest_cid; /* 3..2^32-2 */
	char *uds_path;
	char *vsock_id; /* deprecated by Firecracker, kept; NULL for none */
};

enum vmc_log_level {
	VMC_LOG_ERROR,
	VMC_LOG_WARNING,
	VMC_LOG_INFO, /* the default */
	VMC_LOG_DEBUG,
	VMC_LOG_TRACE,
	VMC_LOG_OFF,
};

/* A logger configuration, as Firecracker's LoggerConfig: applied to the
 * logger (logger_configure) and merged into the instance's
 * (vm_config_update_logger), it sets the level every time (Info when not
 * given) and each other member only when given, the rest kept. */
struct vmc_logger {
	bool enabled;
	char *log_path; /* NULL: none given */
	enum vmc_log_level level;
	bool show_level;
	bool show_log_origin;
	bool has_show_level, has_show_log_origin; /* given */
	char *module; /* filter on a module path ("": none), NULL: none given */
};

struct vmc_metrics {
	char *metrics_path; /* NULL: metrics not configured */
};

struct vmc_entropy {
	bool enabled;
	struct ratelimit_cfg rate_limiter;
};

/* PUT /cpu-config (Firecracker's CpuConfig, a custom CPU template), x86
 * only: CPUID and MSR modifiers, each naming the bits it sets or clears
 * (mask) and their values; the other bits are the host's. */
#define VMC_MAX_CPUID_MODS 64
#define VMC_MAX_MSR_MODS   64
struct vmc_cpuid_mod {
	uint32_t leaf, subleaf;
	uint32_t flags;		    /* KVM's, for an entry the template adds */
	uint32_t mask[4], value[4]; /* eax, ebx, ecx, edx */
	uint8_t regs;		    /* bit r: register r was given */
};
struct vmc_msr_mod {
	uint32_t addr;
	uint64_t mask, value;
};
#define VMC_MAX_KVM_CAPS 32
struct vmc_kvm_cap {
	uint32_t cap;
	bool remove; /* "!N": not to be used (flint enables none by list) */
};
struct vmc_cpu_config {
	bool enabled;
	unsigned ncpuid, nmsr, ncap;
	struct vmc_kvm_cap cap[VMC_MAX_KVM_CAPS];
	struct vmc_cpuid_mod cpuid[VMC_MAX_CPUID_MODS];
	struct vmc_msr_mod msr[VMC_MAX_MSR_MODS];
};

/* PUT /balloon (Firecracker's Balloon). */
struct vmc_balloon {
	bool enabled;
	uint32_t amount_mib;		   /* the target: memory the guest gives up */
	bool deflate_on_oom;		   /* the guest may deflate under pressure */
	uint32_t stats_polling_interval_s; /* 0: no statistics */
	bool free_page_hinting;		   /* offer free page hinting runs */
	bool free_page_reporting;	   /* the guest reports its free memory */
};

/* PUT /hotplug/memory (Firecracker's MemoryHotplugConfig): a virtio-mem
 * device whose region the guest plugs and unplugs blocks of. */
struct vmc_memory_hotplug {
	bool enabled;
	uint32_t total_size_mib; /* required: a non-zero multiple of slot_size_mib, at
				  * most VMC_MAX_MEM_MIB */
	uint32_t slot_size_mib;	 /* default 128; at least 128, a multiple of block_size_mib */
	uint32_t block_size_mib; /* default 2; a power of two, at least 2 */
	/* The running device's target (PATCH /hotplug/memory), kept by the
	 * VM layer in its own copy. Not configuration: 0 when set by PUT or
	 * the config file, neither encoded nor compared (vm_config_equal). */
	uint32_t requested_size_mib;
};

/* Firecracker's MemoryHotplugConfig defaults, which are also the least
 * values it takes. */
#define VMC_HOTPLUG_DEFAULT_SLOT_MIB  128u
#define VMC_HOTPLUG_DEFAULT_BLOCK_MIB 2u

/* PUT /mmds/config (Firecracker's MmdsConfig), less its list of
 * interfaces, which is each vmc_net's mmds. */
struct vmc_mmds {
	bool enabled;
	bool v2;	  /* version "V2": the guest's GETs need a session token */
	bool imds_compat; /* IMDS's text form whatever the guest's Accept */
	uint32_t ipv4;	  /* network order */
};

/* Firecracker's default MMDS address, 169.254.169.254, in host order. */
#define VMC_MMDS_DEFAULT_IPV4 0xa9fea9feu

/* A PUT /mmds/config as parsed, with the interfaces it names. */
struct vmc_mmds_req {
	struct vmc_mmds m;
	char *ifaces[VMC_MAX_NETS];
	unsigned nifaces;
};
void vmc_mmds_req_free(struct vmc_mmds_req *q);

/* PUT /serial (Firecracker's SerialDevice). */
struct vmc_serial {
	bool enabled;
	char *serial_out_path;			  /* NULL: none given */
	struct ratelimit_bucket_cfg rate_limiter; /* output bytes; all zero: none */
};

struct vm_config {
	struct vmc_machine machine;
	struct vmc_boot boot;
	/* In guest order: the root device, if any, first (/dev/vda). */
	struct vmc_drive drives[VMC_MAX_DRIVES];
	unsigned ndrives;
	struct vmc_net nets[VMC_MAX_NETS]; /* eth0, eth1, ... */
	unsigned nnets;
	struct vmc_pmem pmem[VMC_MAX_PMEM]; /* /dev/pmem0, /dev/pmem1, ... */
	unsigned npmem;
	struct vmc_vsock vsock;
	struct vmc_logger logger;
	struct vmc_metrics metrics;
	struct vmc_entropy entropy;
	struct vmc_serial serial;
	struct vmc_balloon balloon;
	struct vmc_memory_hotplug memory_hotplug;
	struct vmc_cpu_config cpu_config;
	struct vmc_mmds mmds;
};

/* Features a vm_config may ask for that the VM layer may not honour (yet).
 * The VM layer states the mask it honours; vm_config_check_supported
 * refuses the rest, naming the field. */
enum vmc_feature {
	VMC_F_SMT = 1u << 0,		     /* machine-config smt: true */
	VMC_F_CPU_TEMPLATE = 1u << 1,	     /* cpu_template other than None */
	VMC_F_HUGE_PAGES = 1u << 2,	     /* huge_pages 2M */
	VMC_F_DIRTY_PAGES = 1u << 3,	     /* track_dirty_pages: true */
	VMC_F_VHOST_USER_BLK = 1u << 4,	     /* a drive with socket */
	VMC_F_PARTUUID = 1u << 5,	     /* a root drive with partuuid */
	VMC_F_DRIVE_RATE_LIMIT = 1u << 6,    /* a drive's rate_limiter */
	VMC_F_NET_RATE_LIMIT = 1u << 7,	     /* rx_ or tx_rate_limiter */
	VMC_F_NET_MTU = 1u << 8,	     /* an interface's mtu */
	VMC_F_ENTROPY = 1u << 9,	     /* an entropy device */
	VMC_F_ENTROPY_RATE_LIMIT = 1u << 10, /* its rate_limiter */
	VMC_F_LOGGER = 1u << 11,	     /* logger */
	VMC_F_LOGGER_MODULE = 1u << 12,	     /* logger module filter */
	VMC_F_METRICS = 1u << 13,	     /* metrics */
	VMC_F_SERIAL_OUT = 1u << 14,	     /* serial serial_out_path */
	VMC_F_SERIAL_RATE_LIMIT = 1u << 15,  /* serial rate_limiter */
	VMC_F_BALLOON = 1u << 16,	     /* a balloon device */
	VMC_F_BALLOON_HINTING = 1u << 17,    /* its free_page_hinting */
	VMC_F_BALLOON_REPORTING = 1u << 18,  /* its free_page_reporting */
	VMC_F_CPU_CONFIG = 1u << 19,	     /* a custom CPU template */
	VMC_F_PMEM = 1u << 20,		     /* a virtio-pmem device */
	VMC_F_MEMORY_HOTPLUG = 1u << 21,     /* a virtio-mem device (memory-hotplug) */
};

/* Firecracker's defaults: 1 vCPU, 128 MiB, no SMT, no template, no huge
 * pages, no dirty page tracking; nothing else configured. */
void vm_config_init(struct vm_config *c);

/* Free every string c owns and re-initialise it. c may be NULL. */
void vm_config_free(struct vm_config *c);

/* Deep copy of src into dst (which holds nothing yet). 0 or -ENOMEM (dst
 * then holds the defaults). */
int vm_config_copy(struct vm_config *dst, const struct vm_config *src) WARN_UNUSED;

/* True when a and b describe the same machine, field by field. */
bool vm_config_equal(const struct vm_config *a, const struct vm_config *b);

/* Field checks, shared by every source; messages name the field as
 * Firecracker's JSON does ("vcpu_count: ..."). 0 or -EINVAL with err set. */
int vmc_machine_check(const struct vmc_machine *m, char *err, size_t errlen) WARN_UNUSED;
int vmc_boot_check(const struct vmc_boot *b, char *err, size_t errlen) WARN_UNUSED;
/* boot_args as a user gives them (PUT /boot-source, --config-file), as
 * Firecracker checks them when they are set, not at InstanceStart:
 * cmdline_check's printable ASCII, length and quotes. Not a check of every
 * configuration: a command line flint built from its own command line
 * (guest words with a tab, a newline or UTF-8, quoted) is saved in a
 * snapshot and must load again. */
int vmc_boot_args_check(const struct vmc_boot *b, char *err, size_t errlen) WARN_UNUSED;
int vmc_drive_check(const struct vmc_drive *d, char *err, size_t errlen) WARN_UNUSED;
int vmc_net_check(const struct vmc_net *n, char *err, size_t errlen) WARN_UNUSED;
int vmc_vsock_check(const struct vmc_vsock *v, char *err, size_t errlen) WARN_UNUSED;
int vmc_pmem_check(const struct vmc_pmem *p, char *err, size_t errlen) WARN_UNUSED;
int vmc_bucket_check(const char *field, const struct ratelimit_bucket_cfg *b, char *err,
		     size_t errlen) WARN_UNUSED;

/* A resource id as Firecracker checks the {id} of an API path: not empty,
 * ASCII letters, digits and '_' only. 0 or -EINVAL with err set. */
int vmc_path_id_check(const char *id, char *err, size_t errlen) WARN_UNUSED;

/* Zero the buckets that limit nothing (size or refill_time 0). */
void vmc_bucket_normalise(struct ratelimit_bucket_cfg *b);
void vmc_ratelimit_normalise(struct ratelimit_cfg *r);

/* Free what a part owns and zero it. Each accepts NULL. */
void vmc_boot_free(struct vmc_boot *b);
void vmc_drive_free(struct vmc_drive *d);
void vmc_drive_patch_free(struct vmc_drive_patch *p);
void vmc_net_free(struct vmc_net *n);
void vmc_net_patch_free(struct vmc_net_patch *p);
void vmc_pmem_free(struct vmc_pmem *p);
void vmc_pmem_patch_free(struct vmc_pmem_patch *p);
void vmc_vsock_free(struct vmc_vsock *v);
void vmc_logger_free(struct vmc_logger *l);
void vmc_metrics_free(struct vmc_metrics *m);
void vmc_serial_free(struct vmc_serial *s);

/* The updates the API and the config file make, with Firecracker's rules.
 * Each checks its input and, on success, takes over the strings of the
 * part it is given (zeroing it) and frees those it replaces; on failure c
 * and the part are unchanged and the caller still owns the part. 0 or
 * -EINVAL with err set. */

/* PUT /machine-config: the whole machine configuration. */
int vm_config_set_machine(struct vm_config *c, const struct vmc_machine *m, char *err,
			  size_t errlen) WARN_UNUSED;
/* PATCH /machine-config: the fields present (at least one), checked
 * together with those kept. */
int vm_config_patch_machine(struct vm_config *c, const struct vmc_machine_patch *p, char *err,
			    size_t errlen) WARN_UNUSED;
/* PUT /boot-source. */
int vm_config_set_boot(struct vm_config *c, struct vmc_boot *b, char *err,
		       size_t errlen) WARN_UNUSED;
/* PUT /drives/{id}: a new drive, or the drive with that drive_id
 * replaced. At most one root device, kept first (Firecracker swaps it with
 * the first drive); at most VMC_MAX_DRIVES drives. */
int vm_config_put_drive(struct vm_config *c, struct vmc_drive *d, char *err,
			size_t errlen) WARN_UNUSED;
/* PATCH /drives/{id}: a new path_on_host and/or rate limiter buckets for
 * an existing virtio-blk drive. */
int vm_config_patch_drive(struct vm_config *c, struct vmc_drive_patch *p, char *err,
			  size_t errlen) WARN_UNUSED;
/* PUT /network-interfaces/{id}: a new interface, or the one with that
 * iface_id replaced. host_dev_name and guest_mac must not be another
 * interface's; at most VMC_MAX_NETS interfaces. */
int vm_config_put_net(struct vm_config *c, struct vmc_net *n, char *err, size_t errlen) WARN_UNUSED;
/* PATCH /network-interfaces/{id}: rate limiter buckets of an existing
 * interface. */
int vm_config_patch_net(struct vm_config *c, struct vmc_net_patch *p, char *err,
			size_t errlen) WARN_UNUSED;
/* PUT /pmem/{id}: a new device, or the one with that id replaced. At most
 * one root device among them and the drives (PUT /drives refuses a root
 * drive beside a root pmem device, as Firecracker does); at most
 * VMC_MAX_PMEM devices. */
int vm_config_put_pmem(struct vm_config *c, struct vmc_pmem *p, char *err,
		       size_t errlen) WARN_UNUSED;
/* PATCH /pmem/{id}: rate limiter buckets of an existing device. */
int vm_config_patch_pmem(struct vm_config *c, struct vmc_pmem_patch *p, char *err,
			 size_t errlen) WARN_UNUSED;
/* PUT /vsock, /logger, /metrics, /entropy, /serial: replace that part. */
int vm_config_set_vsock(struct vm_config *c, struct vmc_vsock *v, char *err,
			size_t errlen) WARN_UNUSED;
void vm_config_set_logger(struct vm_config *c, struct vmc_logger *l);
/* PUT /logger: l's level, and the members l gives, into c's logger, as
 * the logger itself takes them (struct vmc_logger). Takes l's strings; *l
 * is emptied. */
void vm_config_update_logger(struct vm_config *c, struct vmc_logger *l);
void vm_config_set_metrics(struct vm_config *c, struct vmc_metrics *m);
void vm_config_set_entropy(struct vm_config *c, const struct vmc_entropy *e);
void vm_config_set_serial(struct vm_config *c, struct vmc_serial *s);
/* PUT /mmds/config: a link-local address (169.254.x.y, x neither 0 nor
 * 255), and at least one interface, each configured already. MMDS is on
 * those interfaces from then on, and off on the others. */
int vm_config_set_mmds(struct vm_config *c, const struct vmc_mmds_req *q, char *err,
		       size_t errlen) WARN_UNUSED;
/* PUT /cpu-config: replace the template. */
void vm_config_set_cpu_config(struct vm_config *c, const struct vmc_cpu_config *t);
/* PUT /balloon: amount_mib at most the machine's memory. */
int vm_config_set_balloon(struct vm_config *c, const struct vmc_balloon *b, char *err,
			  size_t errlen) WARN_UNUSED;
/* PATCH /balloon: a new target, at most the machine's memory; -ENOENT
 * when there is no balloon. */
int vm_config_patch_balloon(struct vm_config *c, uint32_t amount_mib, char *err,
			    size_t errlen) WARN_UNUSED;
/* PATCH /balloon/statistics: a new interval; refused when it would turn
 * statistics on or off once `started` (the guest's driver asked for the
 * queue, or not, at boot); -ENOENT when there is no balloon. */
int vm_config_patch_balloon_stats(struct vm_config *c, uint32_t interval_s, bool started, char *err,
				  size_t errlen) WARN_UNUSED;
/* PUT /hotplug/memory: block_size_mib a power of two, at least 2;
 * slot_size_mib at least 128 and a multiple of block_size_mib;
 * total_size_mib a non-zero multiple of slot_size_mib, at most
 * VMC_MAX_MEM_MIB. No defaults are applied here (the JSON parser does). */
int vm_config_set_memory_hotplug(struct vm_config *c, const struct vmc_memory_hotplug *h, char *err,
				 size_t errlen) WARN_UNUSED;

/* Index of the drive, interface or pmem device with that id, or -1. */
int vm_config_find_drive(const struct vm_config *c, const char *drive_id);
int vm_config_find_net(const struct vm_config *c, const char *iface_id);
int vm_config_find_pmem(const struct vm_config *c, const char *id);
/* Index of the root pmem device (vm_config_put_pmem keeps at most one), or
 * -1. */
int vm_config_root_pmem(const struct vm_config *c);

/* The vmc_feature bits c uses. */
unsigned vm_config_features(const struct vm_config *c);

/* Refuse the first feature c uses outside `supported` (vmc_feature bits):
 * -EOPNOTSUPP with err "flint does not support ...", naming the field and
 * the drive or interface; 0 when all are supported. */
int vm_config_check_supported(const struct vm_config *c, unsigned supported, char *err,
			      size_t errlen) WARN_UNUSED;

/* Names for messages and for the JSON encoding: Firecracker's spelling. */
const char *vmc_cpu_template_name(enum vmc_cpu_template t);
const char *vmc_huge_pages_name(enum vmc_huge_pages h);
const char *vmc_cache_type_name(enum vmc_cache_type t);
const char *vmc_io_engine_name(enum vmc_io_engine e);
const char *vmc_log_level_name(enum vmc_log_level l);

#endif
