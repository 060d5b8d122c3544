/* config_json: Firecracker's JSON (its swagger v1.16.1) to and from
 * vm_config, with jansson. Parses the config file (--config-file, the
 * FullVmConfiguration object) and each API body into the matching part;
 * encodes the whole vm_config (GET /vm/config, and the state a snapshot
 * saves: config_json_parse_file(config_json_encode(c)) gives c back) and
 * the machine configuration (GET /machine-config).
 *
 * As Firecracker's serde does: unknown fields are refused (but for the
 * config file's top level, passed over), types are checked, required
 * fields must be there, a JSON null counts as absent where Firecracker's
 * field is an Option and is refused where it has a default instead.
 * Error messages are what the API returns as fault_message: they name the
 * field (with its place in a config file, "drives[1].path_on_host") and
 * the problem. The 51200-byte body limit is the HTTP layer's. Pure: no
 * I/O. Every function returns 0, -EINVAL with err set, or -ENOMEM (and
 * the config file's parsers 1 for members passed over, below). */
#ifndef FLINT_CONFIG_JSON_H
#define FLINT_CONFIG_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "config/vm_config.h"
#include "core/util.h"

/* A whole config file: "boot-source" and "drives" required (as
 * Firecracker's parser has them), "machine-config", "network-interfaces",
 * "pmem", "vsock", "logger", "metrics", "entropy", "balloon", "cpu-config",
 * "mmds-config", "memory-hotplug" (PUT /hotplug/memory's body), and
 * flint's "serial" (PUT /serial's body, which Firecracker's file has no
 * key for). Applied in Firecracker's order through the vm_config_*
 * updates, so its rules hold (one root drive, first). c is initialised
 * here; on error it holds nothing. Other top-level members are passed
 * over, as Firecracker's parser does: the return is then 1, not 0, and err
 * names them for a warning.
 *
 * "cpu-config" is, as in Firecracker, the path of a template file, or the
 * template itself (as config_json_encode writes it). config_json_parse_file
 * reads no file (a snapshot's configuration holds the template itself);
 * config_json_parse_file_read reads one with read(ctx, path, max, &text,
 * &len, why, whylen): 0 with a malloc'd, NUL-terminated text of at most
 * max bytes, or -errno with why set. (flint-jail's reader reads as the
 * jail's user.) */
typedef int config_json_read_fn(void *ctx, const char *path, size_t max, char **text, size_t *len,
				char *why, size_t whylen);
int config_json_parse_file(const char *text, size_t len, struct vm_config *c, char *err,
			   size_t errlen) WARN_UNUSED;
int config_json_parse_file_read(const char *text, size_t len, struct vm_config *c,
				config_json_read_fn *read, void *ctx, char *err,
				size_t errlen) WARN_UNUSED;

/* The API bodies. Each fills the part from a JSON object body of len
 * bytes and checks its fields (vmc_*_check); the caller applies it with
 * the matching vm_config_* update, and frees it with vmc_*_free if it does
 * not. */

/* PUT /machine-config: vcpu_count and mem_size_mib required, the rest at
 * their defaults. */
int config_json_machine(const char *body, size_t len, struct vmc_machine *m, char *err,
			size_t errlen) WARN_UNUSED;
/* PATCH /machine-config: any of the same fields. */
int config_json_machine_patch(const char *body, size_t len, struct vmc_machine_patch *p, char *err,
			      size_t errlen) WARN_UNUSED;
/* PUT /boot-source. */
int config_json_boot_source(const char *body, size_t len, struct vmc_boot *b, char *err,
			    size_t errlen) WARN_UNUSED;
/* PUT /drives/{path_id}: path_id is checked as Firecracker checks it
 * (vmc_path_id_check), then must equal the body's drive_id. */
int config_json_drive(const char *path_id, const char *body, size_t len, struct vmc_drive *d,
		      char *err, size_t errlen) WARN_UNUSED;
/* PATCH /drives/{path_id} (PartialDrive), the ids checked the same way. */
int config_json_drive_patch(const char *path_id, const char *body, size_t len,
			    struct vmc_drive_patch *p, char *err, size_t errlen) WARN_UNUSED;
/* PUT and PATCH /network-interfaces/{path_id}. */
int config_json_net(const char *path_id, const char *body, size_t len, struct vmc_net *n, char *err,
		    size_t errlen) WARN_UNUSED;
int config_json_net_patch(const char *path_id, const char *body, size_t len,
			  struct vmc_net_patch *p, char *err, size_t errlen) WARN_UNUSED;
/* PUT and PATCH /pmem/{path_id}: Pmem and PartialPmem. */
int config_json_pmem(const char *path_id, const char *body, size_t len, struct vmc_pmem *p,
		     char *err, size_t errlen) WARN_UNUSED;
int config_json_pmem_patch(const char *path_id, const char *body, size_t len,
			   struct vmc_pmem_patch *p, char *err, size_t errlen) WARN_UNUSED;
/* PUT /vsock, /logger, /metrics, /entropy, /serial. */
int config_json_vsock(const char *body, size_t len, struct vmc_vsock *v, char *err,
		      size_t errlen) WARN_UNUSED;
int config_json_logger(const char *body, size_t len, struct vmc_logger *l, char *err,
		       size_t errlen) WARN_UNUSED;
int config_json_metrics(const char *body, size_t len, struct vmc_metrics *m, char *err,
			size_t errlen) WARN_UNUSED;
int config_json_entropy(const char *body, size_t len, struct vmc_entropy *e, char *err,
			size_t errlen) WARN_UNUSED;
int config_json_serial(const char *body, size_t len, struct vmc_serial *s, char *err,
		       size_t errlen) WARN_UNUSED;
/* PUT /cpu-config: Firecracker's CpuConfig (x86: cpuid_modifiers,
 * msr_modifiers; kvm_capabilities and the aarch64 members only empty). */
int config_json_cpu_config(const char *body, size_t len, struct vmc_cpu_config *t, char *err,
			   size_t errlen) WARN_UNUSED;
/* PUT /mmds/config: Firecracker's MmdsConfig (the address parsed, not
 * yet checked: vm_config_set_mmds does). Free *q with vmc_mmds_req_free. */
int config_json_mmds_config(const char *body, size_t len, struct vmc_mmds_req *q, char *err,
			    size_t errlen) WARN_UNUSED;
/* PUT /balloon; PATCH /balloon ({"amount_mib"}); PATCH /balloon/statistics
 * ({"stats_polling_interval_s"}, a u16 as Firecracker's). */
int config_json_balloon(const char *body, size_t len, struct vmc_balloon *b, char *err,
			size_t errlen) WARN_UNUSED;
int config_json_balloon_update(const char *body, size_t len, uint32_t *amount_mib, char *err,
			       size_t errlen) WARN_UNUSED;
int config_json_balloon_stats_update(const char *body, size_t len, uint32_t *interval_s, char *err,
				     size_t errlen) WARN_UNUSED;
/* PATCH /balloon/hinting/start (BalloonStartCmd): no body (len 0), or an
 * object whose acknowledge_on_stop (a boolean) is true when absent; other
 * keys are ignored, as Firecracker's parser does. */
int config_json_balloon_hint_start(const char *body, size_t len, bool *ack_on_stop, char *err,
				   size_t errlen) WARN_UNUSED;
/* PUT /hotplug/memory (MemoryHotplugConfig: total_size_mib required,
 * slot_size_mib 128 and block_size_mib 2 by default; their rules are
 * vm_config_set_memory_hotplug's); PATCH /hotplug/memory
 * (MemoryHotplugSizeUpdate: {"requested_size_mib"}, required). */
int config_json_memory_hotplug(const char *body, size_t len, struct vmc_memory_hotplug *h,
			       char *err, size_t errlen) WARN_UNUSED;
int config_json_memory_hotplug_update(const char *body, size_t len, uint32_t *requested_size_mib,
				      char *err, size_t errlen) WARN_UNUSED;

/* c as a FullVmConfiguration object: "boot-source" (once set), "drives"
 * "network-interfaces" and "pmem" (possibly empty), "machine-config", and
 * "vsock", "logger", "metrics", "entropy", "balloon", "cpu-config",
 * "mmds-config", "memory-hotplug", "serial" when configured (null when
 * not, but for "serial", which Firecracker does not have). Optional
 * fields that are absent are left out rather than null. Returns a
 * malloc'd NUL-terminated string (indented when pretty); NULL when out of
 * memory, or when a string is not UTF-8, which JSON cannot carry (a path
 * from the command line may be so; none parsed from JSON is). */
char *config_json_encode(const struct vm_config *c, bool pretty);
/* GET /vm/config's answer: config_json_encode's, less what Firecracker's
 * leaves out ("logger" and "metrics" null, no "serial"), compact. */
char *config_json_encode_api(const struct vm_config *c);

/* m as GET /machine-config returns it. malloc'd, NULL when out of memory. */
char *config_json_encode_machine(const struct vmc_machine *m);
/* b as GET /balloon returns it (amount_mib: the target now). malloc'd,
 * NULL when out of memory. */
char *config_json_encode_balloon(const struct vmc_balloon *b);

#endif
