/* flint: boot a Linux microVM with KVM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "control.h"
#include "kvm.h"
#include "util.h"
#include "vm.h"

static int check_kvm(void)
{
	char err[512];
	int fd;

	if (kvm_open(&fd, err, sizeof(err)) < 0) {
		pr_err("%s", err);
		return 1;
	}
	close_fd(&fd);
	printf("flint: /dev/kvm is usable\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct vm *vm;
	char err[256];

	launch_ns = now_ns();
	switch (cli_parse(argc, argv, &cfg, err, sizeof(err))) {
	case CLI_EXIT_OK:
		return 0;
	case CLI_ERROR:
		pr_err("%s", err);
		return EXIT_FLINT_ERROR;
	case CLI_RUN:
		break;
	}
	if (cfg.check_kvm) {
		cli_config_free(&cfg);
		return check_kvm();
	}
	int status = EXIT_FLINT_ERROR;
	if (vm_create(&vm, &cfg) == 0) {
		status = vm_run(vm);
		vm_destroy(vm);
	}
	cli_config_free(&cfg);
	return status;
}
