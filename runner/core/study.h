/* Study switches: FLINT_STUDY=name,name,... turns off one thing flint does
 * differently from QEMU `-M microvm -cpu host`, to find what provokes the
 * guest crashes seen under nested virtualization (bench/nested). Every
 * switch is off unless named; they are for measurement, not for users. */
#ifndef FLINT_STUDY_H
#define FLINT_STUDY_H

#include <stdbool.h>

enum study_switch {
	STUDY_NO_THP,	   /* guest RAM: no 2 MiB alignment, MADV_NOHUGEPAGE */
	STUDY_PLAIN_CPUID, /* KVM's supported CPUID, no topology edits (hypervisor bit set) */
	STUDY_NO_MSRS,	   /* no boot MSRs: KVM's reset values */
	STUDY_SWITCHES,
};

/* Whether switch `s` is named in $FLINT_STUDY (read on the first call).
 * Unknown names are ignored. */
bool study_on(enum study_switch s);

#endif
