/* flint bench's VMM command lines: one guest (kernel, initrd or root
 * image, memory, vCPUs, kernel command line, command), written out for
 * each VMM so that all of them boot the same thing (Firecracker's through
 * its API, after its command line: vmm_firecracker_boot).
 *
 * flint runs the command through `flint run` (its agent, over vsock);
 * a peer has no agent, so its guest init runs the command from the kernel
 * command line (the words after "--") and its output comes on the
 * console, where the runner's markers find it: the init's "flint-init:
 * ready" line (the boot timer's moment) and the command's output. The
 * command's words therefore go on a kernel command line: no space, no
 * '"', no "--" (refused). */
#ifndef FLINT_BENCH_VMM_H
#define FLINT_BENCH_VMM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

/* bench/boot's: reboot=t, since QEMU microvm has no i8042 (a reboot=k
 * there spins); flint's init ends the VM through the exit device first.
 * The other words are flint's default ones (VMC_DEFAULT_BOOT_ARGS), so a
 * peer boots the guest the same way; QEMU microvm, without an i8042,
 * ignores the i8042 ones. */
#define VMM_DEFAULT_CMDLINE                                                                        \
	"console=ttyS0 reboot=t panic=-1 quiet noreplace-smp i8042.noaux i8042.nomux i8042.nopnp " \
	"i8042.dumbkbd"
/* What a guest's kernel command line may hold here: x86 Linux takes 2048
 * bytes (COMMAND_LINE_SIZE), of which the VMMs' own words (flint's
 * virtio-mmio devices, QEMU's slot) need some; and the command's words,
 * which init gets as its arguments: Linux passes it at most 32
 * (MAX_INIT_ARGS, and panics beyond). */
#define VMM_CMDLINE_MAX	      1792
#define VMM_COMMAND_WORDS_MAX 24
/* The guest init's line once it runs (rootfs/init.c). */
#define VMM_INIT_MARKER "flint-init: ready"

struct vmm_guest {
	const char *kernel; /* vmlinux */
	const char *initrd; /* NULL: none */
	const char *rootfs; /* NULL: none; read-only /dev/vda */
	bool root_ext4;	    /* rootfs is ext4: peers get rootfstype=ext4, as flint run's guest */
	unsigned mem_mib, vcpus;
	const char *cmdline;  /* NULL: VMM_DEFAULT_CMDLINE */
	char *const *command; /* the command's words */
	int ncommand;
	/* A restore (flint only): the snapshot's state file, NULL for a boot,
	 * and its memory: mem_file (the File backend) or uffd_sock (a page
	 * fault handler's socket, the Uffd backend). */
	const char *state, *mem_file, *uffd_sock;
};

/* An argv and the bytes it points into. */
#define VMM_ARGV_MAX   1024
#define VMM_ARGV_BYTES (128 * 1024)
struct vmm_argv {
	char *v[VMM_ARGV_MAX + 1]; /* NULL-terminated */
	int n;
	char buf[VMM_ARGV_BYTES];
	size_t used;
};

/* Empty a. */
void vmm_argv_reset(struct vmm_argv *a);
/* The next word of a, printf-formatted into its bytes: 0, or -E2BIG when
 * a has no room for it. */
int vmm_argv_add(struct vmm_argv *a, const char *fmt, ...) PRINTF(2, 3) WARN_UNUSED;

/* The kernel command line a peer's init runs the command from: the
 * guest's (or VMM_DEFAULT_CMDLINE), root (NULL: none), "--", the command.
 * Returns 0, -EINVAL for a restore or a word a command line cannot hold,
 * -E2BIG for one over VMM_CMDLINE_MAX bytes or VMM_COMMAND_WORDS_MAX
 * words of command (len bigger than VMM_CMDLINE_MAX changes nothing). */
int vmm_peer_cmdline(char *out, size_t len, const struct vmm_guest *g,
		     const char *root) WARN_UNUSED;

/* flint, at path (e.g. /proc/self/exe's target): `flint run` with
 * --phase-fd RUNNER_PHASE_FD, a boot (kernel, rootfs, mem, vcpus,
 * cmdline) or a restore (state, mem_file), then "--" and the command.
 * Returns 0 or -E2BIG. */
int vmm_flint_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g) WARN_UNUSED;

/* flint booting g (not a restore) as its peers do, for a like-for-like
 * comparison: no `flint run`, so no agent and no vsock device; the root
 * image a read-only --drive, the command on the kernel command line
 * (vmm_peer_cmdline's, root=/dev/vda ro), its output on the console;
 * --phase-fd RUNNER_PHASE_FD for the phases up to init. Returns 0,
 * -EINVAL as vmm_qemu_argv (and for a ',' in the root image's path),
 * -E2BIG. */
int vmm_flint_boot_argv(struct vmm_argv *a, const char *path,
			const struct vmm_guest *g) WARN_UNUSED;

/* QEMU microvm (qemu-system-x86_64, or path) as bench/boot and bench/run
 * run it: -M microvm with no ACPI, option ROMs or RTC, -accel kvm -cpu
 * host, the serial console on stdio, -no-reboot; the root image as a
 * read-only virtio-blk device in microvm's last virtio-mmio slot (named
 * on the command line as flint names its own: auto-kernel-cmdline=off).
 * Returns 0, -EINVAL for command words a kernel command line cannot hold
 * or a restore, -E2BIG. */
int vmm_qemu_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g) WARN_UNUSED;

/* kvmtool (lkvm, or path): lkvm run with the same guest on its serial
 * console. Not tried against a kvmtool yet (none on the development
 * host). Returns as vmm_qemu_argv. */
int vmm_lkvm_argv(struct vmm_argv *a, const char *path, const struct vmm_guest *g) WARN_UNUSED;

/* Firecracker (firecracker, or path) serving its API on sock (a path
 * that must not exist yet; the caller removes it after), which
 * vmm_firecracker_boot then drives. */
int vmm_firecracker_argv(struct vmm_argv *a, const char *path, const char *sock) WARN_UNUSED;

/* What vmm_firecracker_boot needs: the API socket's path and the guest. */
struct vmm_firecracker_boot {
	const char *sock;
	const struct vmm_guest *g;
};

/* A runner_launch.drive (ctx: a struct vmm_firecracker_boot): connect to
 * the API socket with flint's client (bench/fcapi.h), PUT the guest's boot
 * source (its command line as vmm_qemu_argv's, the root image named by
 * Firecracker's is_root_device), machine, root drive, then InstanceStart.
 * Any answer but 2xx fails, with the request and the answer's
 * fault_message in why. */
int vmm_firecracker_boot(void *ctx, pid_t pid, uint64_t deadline_us, char *why,
			 size_t whylen) WARN_UNUSED;

#endif
