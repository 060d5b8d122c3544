/* The host's /dev/kvm: open it, check the API and every capability flint
 * relies on, and read what it supports. */
#ifndef FLINT_KVM_H
#define FLINT_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

/* Open /dev/kvm and check API version 12 and the required capabilities.
 * On failure returns -errno and writes a one-sentence explanation (naming a
 * missing capability, or a host KVM that cannot run a stock guest) to err. */
int kvm_open(int *sys_fd, char *err, size_t errlen) WARN_UNUSED;

/* True when /dev/kvm is a nested paravirtual KVM (kvm_pvm) that emulates
 * guest ring-0 code and cannot run a stock Linux kernel. */
bool kvm_host_is_pvm(void);

/* KVM_GET_SUPPORTED_CPUID with room for `*max` entries (grown as KVM asks),
 * and the TSC-deadline timer in leaf 1: sys_fd comes from kvm_open, which
 * checked KVM has it. Returns a malloc'd table or NULL with errno set. */
struct kvm_cpuid2 *kvm_supported_cpuid(int sys_fd, unsigned *max);

/* An eventfd wired to interrupt line `gsi` with KVM_IRQFD: writing it
 * (eventfd_write) injects an edge in the kernel, with no ioctl from the
 * writing thread. Returns the fd (close-on-exec) or -errno. */
int kvm_irqfd(int vm_fd, unsigned gsi) WARN_UNUSED;

/* ioctl that retries on EINTR/EAGAIN where KVM documents it may be needed. */
int kvm_ioctl(int fd, unsigned long req, void *arg);

#endif
