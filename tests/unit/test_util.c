/* util.h on its own: what every module gets from it without other headers. */
#include <criterion/criterion.h>

#include "core/util.h"

struct outer {
	char pad[3];
	int member;
	struct {
		long x;
	} inner;
};

/* container_of is util.h's (once, for every module), and gets back the
 * embedding struct from a member at any offset. */
Test(util, container_of_finds_the_embedding_struct)
{
	struct outer o;

	cr_assert_eq(container_of(&o.member, struct outer, member), &o);
	cr_assert_eq(container_of(&o.inner, struct outer, inner), &o);
	cr_assert_eq(container_of(&o.inner.x, struct outer, inner.x), &o);
	cr_assert_eq(container_of((void *)o.pad, struct outer, pad), &o);
}
