/* One microVM: the start-up order written out in one place, the main
 * thread's wait loop, and teardown in reverse. */
#ifndef FLINT_VM_H
#define FLINT_VM_H

#include <stdint.h>

#include "config/cli.h"
#include "core/util.h"

struct vm;

/* Build the VM described by cfg, in order: KVM, VM, memory, interrupt
 * controllers, buses and devices, kernel/initrd/zero page/MP table/page
 * tables, vCPUs. Logs a message naming the failed step or file. Returns 0 or
 * -errno; *out is NULL on failure. */
int vm_create(struct vm **out, const struct config *cfg) WARN_UNUSED;

/* Start the vCPUs and serve the console and host signals until the guest
 * stops. Returns flint's exit status and prints why the guest stopped. */
int vm_run(struct vm *vm);

/* Stop the VM with this exit status (msg printed at exit, NULL for none);
 * the first stop request wins. Any thread. */
void vm_request_stop(struct vm *vm, int status, const char *msg);

/* Microseconds from launch to the guest init's boot-timer signal; 0 before. */
uint64_t vm_boot_us(const struct vm *vm);

void vm_destroy(struct vm *vm); /* NULL ok */

#endif
