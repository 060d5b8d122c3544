/* vm_config_cli: flint's command line (cli.h's struct config) as a
 * vm_config, the mapping from flint's options to Firecracker's resources.
 * Apart from vm_config so that vm_config does not need cli.o. */
#ifndef FLINT_VM_CONFIG_CLI_H
#define FLINT_VM_CONFIG_CLI_H

#include <stddef.h>

#include "config/vm_config.h"
#include "core/util.h"

struct config;
/* The vm_config for flint's command line (cli.h): --kernel and --initrd,
 * the kernel command line (cli_guest_cmdline without device arguments:
 * the VM layer puts those before its first "--") as boot_args, --mem and
 * --vcpus, each --drive (its id, else "drive<N>", as drive_id; path, ro,
 * direct), each --net (id, else "net<N>"; tap or user, mac; the first user
 * interface's addresses as the kernel's ip=, unless the command line has
 * one) and --vsock. c is
 * initialised here. 0, -EINVAL with err set (a --mem that is not a whole
 * number of MiB, a command line the kernel cannot take) or -ENOMEM. */
int vm_config_from_cli(struct vm_config *c, const struct config *cfg, char *err,
		       size_t errlen) WARN_UNUSED;

#endif
