/* vmm: the VMMs' command lines for one guest. See vmm.h. */
#include "bench/vmm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench/runner.h"

/* QEMU microvm's last virtio-mmio slot, where its first device goes
 * (bench/run/in-l1.sh). */
#define QEMU_MMIO_ROOT "virtio_mmio.device=512@0xfeb00e00:12"

int vmm_argv_add(struct vmm_argv *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->n == VMM_ARGV_MAX)
		return -E2BIG;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return -E2BIG;
	a->v[a->n++] = a->buf + a->used;
	a->v[a->n] = NULL;
	a->used += (size_t)n + 1;
	return 0;
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
	r |= vmm_argv_add(a, "--phase-fd");
	r |= vmm_argv_add(a, "%d", RUNNER_PHASE_FD);
	if (g->state) {
		r |= vmm_argv_add(a, "--restore");
		r |= vmm_argv_add(a, "%s", g->state);
		r |= vmm_argv_add(a, g->uffd_sock ? "--uffd-sock" : "--mem-file");
		r |= vmm_argv_add(a, "%s",
				  g->uffd_sock	? g->uffd_sock
				  : g->mem_file ? g->mem_file
						: "");
	} else {
		r |= vmm_argv_add(a, "--kernel");
		r |= vmm_argv_add(a, "%s", g->kernel);
		if (g->initrd) {
			r |= vmm_argv_add(a, "--initrd");
			r |= vmm_argv_add(a, "%s", g->initrd);
		}
		if (g->rootfs) {
			r |= vmm_argv_add(a, "--rootfs");
			r |= vmm_argv_add(a, "%s", g->rootfs);
		}
		r |= vmm_argv_add(a, "--mem");
		r |= vmm_argv_add(a, "%uM", g->mem_mib);
		r |= vmm_argv_add(a, "--vcpus");
		r |= vmm_argv_add(a, "%u", g->vcpus);
		r |= vmm_argv_add(a, "--cmdline");
		r |= vmm_argv_add(a, "%s", g->cmdline ? g->cmdline : VMM_DEFAULT_CMDLINE);
	}
	r |= vmm_argv_add(a, "--");
	for (int i = 0; i < g->ncommand; i++)
		r |= vmm_argv_add(a, "%s", g->command[i]);
	return r ? -E2BIG : 0;
}

int vmm_peer_cmdline(char *out, size_t len, const struct vmm_guest *g, const char *root)
{
	size_t n;
	int k;

	if (g->state)
		return -EINVAL; /* restoring a peer is not this */
	k = snprintf(out, len, "%s%s%s%s", g->cmdline ? g->cmdline : VMM_DEFAULT_CMDLINE,
		     root ? " " : "", root ? root : "", g->ncommand ? " --" : "");
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
	char append[4096];
	int r;

	vmm_argv_reset(a);
	if ((r = vmm_peer_cmdline(append, sizeof(append), g,
				  g->rootfs ? "root=/dev/vda ro " QEMU_MMIO_ROOT : NULL)) < 0)
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
	r |= vmm_argv_add(a, "-m");
	r |= vmm_argv_add(a, "%u", g->mem_mib);
	r |= vmm_argv_add(a, "-smp");
	r |= vmm_argv_add(a, "%u", g->vcpus);
	r |= vmm_argv_add(a, "-kernel");
	r |= vmm_argv_add(a, "%s", g->kernel);
	if (g->initrd) {
		r |= vmm_argv_add(a, "-initrd");
		r |= vmm_argv_add(a, "%s", g->initrd);
	}
	if (g->rootfs) {
		/* A ',' in the path would start another -drive option. */
		if (strchr(g->rootfs, ','))
			return -EINVAL;
		r |= vmm_argv_add(a, "-drive");
		r |= vmm_argv_add(a, "id=root,file=%s,format=raw,if=none,readonly=on", g->rootfs);
		r |= vmm_argv_add(a, "-device");
		r |= vmm_argv_add(a, "virtio-blk-device,drive=root");
	}
	r |= vmm_argv_add(a, "-append");
	r |= vmm_argv_add(a, "%s", append);
	return r ? -E2BIG : 0;
}

int vmm_lkvm_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g)
{
	char append[4096];
	int r;

	vmm_argv_reset(a);
	if ((r = vmm_peer_cmdline(append, sizeof(append), g,
				  g->rootfs ? "root=/dev/vda ro" : NULL)) < 0)
		return r;
	if (g->rootfs && strchr(g->rootfs, ','))
		return -EINVAL;
	r = vmm_argv_add(a, "%s", path ? path : "lkvm");
	r |= vmm_argv_add(a, "run");
	r |= vmm_argv_add(a, "--kernel");
	r |= vmm_argv_add(a, "%s", g->kernel);
	if (g->initrd) {
		r |= vmm_argv_add(a, "--initrd");
		r |= vmm_argv_add(a, "%s", g->initrd);
	}
	if (g->rootfs) {
		r |= vmm_argv_add(a, "--disk");
		r |= vmm_argv_add(a, "%s,ro", g->rootfs);
	}
	r |= vmm_argv_add(a, "--mem");
	r |= vmm_argv_add(a, "%u", g->mem_mib);
	r |= vmm_argv_add(a, "--cpus");
	r |= vmm_argv_add(a, "%u", g->vcpus);
	r |= vmm_argv_add(a, "--console");
	r |= vmm_argv_add(a, "serial");
	r |= vmm_argv_add(a, "--params");
	r |= vmm_argv_add(a, "%s", append);
	return r ? -E2BIG : 0;
}

int vmm_firecracker_argv(struct vmm_argv *a, const char *path, const char *sock)
{
	int r;

	vmm_argv_reset(a);
	r = vmm_argv_add(a, "%s", path ? path : "firecracker");
	r |= vmm_argv_add(a, "--api-sock");
	r |= vmm_argv_add(a, "%s", sock);
	return r ? -E2BIG : 0;
}
