/* vmm: the VMMs' command lines for one guest, and Firecracker's API
 * calls. See vmm.h. */
#include "bench/vmm.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/fcapi.h"
#include "bench/runner.h"

/* QEMU microvm's last virtio-mmio slot, where its first device goes
 * (bench/run/in-l1.sh). */
#define QEMU_MMIO_ROOT "virtio_mmio.device=512@0xfeb00e00:12"

static int vadd(struct vmm_argv *a, const char *fmt, va_list ap)
{
	int n;

	if (a->n == VMM_ARGV_MAX)
		return -E2BIG;
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return -E2BIG;
	a->v[a->n++] = a->buf + a->used;
	a->v[a->n] = NULL;
	a->used += (size_t)n + 1;
	return 0;
}

int vmm_argv_add(struct vmm_argv *a, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vadd(a, fmt, ap);
	va_end(ap);
	return r;
}

/* An option and its value: two words. */
static int PRINTF(3, 4) add_opt(struct vmm_argv *a, const char *opt, const char *fmt, ...)
{
	va_list ap;
	int r = vmm_argv_add(a, "%s", opt);

	va_start(ap, fmt);
	r |= vadd(a, fmt, ap);
	va_end(ap);
	return r;
}

void vmm_argv_reset(struct vmm_argv *a)
{
	a->n = 0;
	a->used = 0;
	a->v[0] = NULL;
}

int vmm_flint_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g)
{
	int r = 0;

	vmm_argv_reset(a);
	r |= vmm_argv_add(a, "%s", path);
	r |= vmm_argv_add(a, "run");
	r |= add_opt(a, "--phase-fd", "%d", RUNNER_PHASE_FD);
	if (g->state) {
		r |= add_opt(a, "--restore", "%s", g->state);
		r |= add_opt(a, g->uffd_sock ? "--uffd-sock" : "--mem-file", "%s",
			     g->uffd_sock  ? g->uffd_sock
			     : g->mem_file ? g->mem_file
					   : "");
	} else {
		r |= add_opt(a, "--kernel", "%s", g->kernel);
		if (g->initrd)
			r |= add_opt(a, "--initrd", "%s", g->initrd);
		if (g->rootfs)
			r |= add_opt(a, "--rootfs", "%s", g->rootfs);
		r |= add_opt(a, "--mem", "%uM", g->mem_mib);
		r |= add_opt(a, "--vcpus", "%u", g->vcpus);
		r |= add_opt(a, "--cmdline", "%s", g->cmdline ? g->cmdline : VMM_DEFAULT_CMDLINE);
	}
	r |= vmm_argv_add(a, "--");
	for (int i = 0; i < g->ncommand; i++)
		r |= vmm_argv_add(a, "%s", g->command[i]);
	return r ? -E2BIG : 0;
}

/* The kernel command line of a VMM given the root image as a drive on
 * its own command line, root (NULL: none) naming it to the guest:
 * vmm_peer_cmdline's, or its error, or -EINVAL for a ',' in the image's
 * path, which would start another key of the VMM's drive option. */
static int drive_cmdline(char out[VMM_CMDLINE_MAX + 1], const struct vmm_guest *g, const char *root)
{
	int r = vmm_peer_cmdline(out, VMM_CMDLINE_MAX + 1, g, g->rootfs ? root : NULL);

	if (r < 0)
		return r;
	return g->rootfs && strchr(g->rootfs, ',') ? -EINVAL : 0;
}

int vmm_flint_boot_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g)
{
	char cmdline[VMM_CMDLINE_MAX + 1];
	int r;

	vmm_argv_reset(a);
	if ((r = drive_cmdline(cmdline, g, "root=/dev/vda ro")) < 0)
		return r;
	r = vmm_argv_add(a, "%s", path);
	r |= add_opt(a, "--phase-fd", "%d", RUNNER_PHASE_FD);
	r |= add_opt(a, "--kernel", "%s", g->kernel);
	if (g->initrd)
		r |= add_opt(a, "--initrd", "%s", g->initrd);
	if (g->rootfs)
		r |= add_opt(a, "--drive", "path=%s,ro", g->rootfs);
	r |= add_opt(a, "--mem", "%uM", g->mem_mib);
	r |= add_opt(a, "--vcpus", "%u", g->vcpus);
	r |= add_opt(a, "--cmdline", "%s", cmdline);
	return r ? -E2BIG : 0;
}

int vmm_peer_cmdline(char *out, size_t len, const struct vmm_guest *g, const char *root)
{
	size_t n;
	int k;

	if (g->state)
		return -EINVAL; /* restoring a peer is not this */
	if (g->ncommand > VMM_COMMAND_WORDS_MAX)
		return -E2BIG;
	if (len > VMM_CMDLINE_MAX + 1)
		len = VMM_CMDLINE_MAX + 1;
	k = snprintf(out, len, "%s%s%s%s%s", g->cmdline ? g->cmdline : VMM_DEFAULT_CMDLINE,
		     root ? " " : "", root ? root : "",
		     g->rootfs && g->root_ext4 ? " rootfstype=ext4" : "", g->ncommand ? " --" : "");
	if (k < 0 || (size_t)k >= len)
		return -E2BIG;
	n = (size_t)k;
	for (int i = 0; i < g->ncommand; i++) {
		const char *w = g->command[i];

		if (!*w || strpbrk(w, " \t\n\"") || !strcmp(w, "--"))
			return -EINVAL;
		k = snprintf(out + n, len - n, " %s", w);
		if (k < 0 || (size_t)k >= len - n)
			return -E2BIG;
		n += (size_t)k;
	}
	return 0;
}

int vmm_qemu_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g)
{
	char append[VMM_CMDLINE_MAX + 1];
	int r;

	vmm_argv_reset(a);
	if ((r = drive_cmdline(append, g, "root=/dev/vda ro " QEMU_MMIO_ROOT)) < 0)
		return r;
	r = vmm_argv_add(a, "%s", path ? path : "qemu-system-x86_64");
	static const char *const fixed[] = {
	    "-M",	   "microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off",
	    "-accel",	   "kvm",
	    "-cpu",	   "host",
	    "-nodefaults", "-no-user-config",
	    "-display",	   "none",
	    "-serial",	   "stdio",
	    "-no-reboot"};
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		r |= vmm_argv_add(a, "%s", fixed[i]);
	r |= add_opt(a, "-m", "%u", g->mem_mib);
	r |= add_opt(a, "-smp", "%u", g->vcpus);
	r |= add_opt(a, "-kernel", "%s", g->kernel);
	if (g->initrd)
		r |= add_opt(a, "-initrd", "%s", g->initrd);
	if (g->rootfs) {
		r |= add_opt(a, "-drive", "id=root,file=%s,format=raw,if=none,readonly=on",
			     g->rootfs);
		r |= add_opt(a, "-device", "virtio-blk-device,drive=root");
	}
	r |= add_opt(a, "-append", "%s", append);
	return r ? -E2BIG : 0;
}

int vmm_lkvm_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g)
{
	char append[VMM_CMDLINE_MAX + 1];
	int r;

	vmm_argv_reset(a);
	if ((r = drive_cmdline(append, g, "root=/dev/vda ro")) < 0)
		return r;
	r = vmm_argv_add(a, "%s", path ? path : "lkvm");
	r |= vmm_argv_add(a, "run");
	r |= add_opt(a, "--kernel", "%s", g->kernel);
	if (g->initrd)
		r |= add_opt(a, "--initrd", "%s", g->initrd);
	if (g->rootfs)
		r |= add_opt(a, "--disk", "%s,ro", g->rootfs);
	r |= add_opt(a, "--mem", "%u", g->mem_mib);
	r |= add_opt(a, "--cpus", "%u", g->vcpus);
	r |= add_opt(a, "--console", "serial");
	r |= add_opt(a, "--params", "%s", append);
	return r ? -E2BIG : 0;
}

int vmm_firecracker_argv(struct vmm_argv *a, const char *path, const char *sock)
{
	int r;

	vmm_argv_reset(a);
	r = vmm_argv_add(a, "%s", path ? path : "firecracker");
	r |= add_opt(a, "--api-sock", "%s", sock);
	return r ? -E2BIG : 0;
}

/* PUT path json; 0 for a 2xx answer, else -EIO with why. */
static int put(int fd, const char *path, json_t *j, uint64_t deadline_us, char *why, size_t whylen)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char body[512];
	int status = 0, r;

	json_decref(j);
	if (!text) {
		snprintf(why, whylen, "PUT %s: out of memory", path);
		return -ENOMEM;
	}
	r = fcapi_request(fd, "PUT", path, text, deadline_us, &status, body, sizeof(body));
	free(text);
	if (r < 0) {
		snprintf(why, whylen, "PUT %s: %s", path,
			 r == -EPROTO ? "not an HTTP answer" : strerror(-r));
		return r;
	}
	if (status / 100 == 2)
		return 0;
	char fault[sizeof(body)];
	fcapi_fault(body, fault, sizeof(fault));
	snprintf(why, whylen, "PUT %s: %d %s", path, status, fault);
	return -EIO;
}

int vmm_firecracker_boot(void *ctx, pid_t pid, uint64_t deadline_us, char *why, size_t whylen)
{
	const struct vmm_firecracker_boot *b = ctx;
	const struct vmm_guest *g = b->g;
	char args[4096];
	int fd = -1, r;

	/* Firecracker names the root device itself (is_root_device). */
	if ((r = vmm_peer_cmdline(args, sizeof(args), g, NULL)) < 0) {
		snprintf(why, whylen, "the guest's command line: %s", strerror(-r));
		return r;
	}
	if ((r = fcapi_connect_child(b->sock, pid, deadline_us, &fd)) < 0) {
		snprintf(why, whylen, "API socket %s: %s", b->sock,
			 r == -ECHILD ? "firecracker ended before it listened there"
				      : strerror(-r));
		return r;
	}
	json_t *src = json_pack("{s:s, s:s}", "kernel_image_path", g->kernel, "boot_args", args);
	if (src && g->initrd)
		json_object_set_new(src, "initrd_path", json_string(g->initrd));
	if ((r = put(fd, "/boot-source", src, deadline_us, why, whylen)) < 0 ||
	    (r = put(fd, "/machine-config",
		     json_pack("{s:i, s:i}", "vcpu_count", (int)g->vcpus, "mem_size_mib",
			       (int)g->mem_mib),
		     deadline_us, why, whylen)) < 0 ||
	    (g->rootfs &&
	     (r = put(fd, "/drives/rootfs",
		      json_pack("{s:s, s:s, s:b, s:b}", "drive_id", "rootfs", "path_on_host",
				g->rootfs, "is_root_device", 1, "is_read_only", 1),
		      deadline_us, why, whylen)) < 0) ||
	    (r = put(fd, "/actions", json_pack("{s:s}", "action_type", "InstanceStart"),
		     deadline_us, why, whylen)) < 0) {
		close_fd(&fd);
		return r;
	}
	close_fd(&fd);
	return 0;
}
