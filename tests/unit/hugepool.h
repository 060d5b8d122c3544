/* The host's pool of 2 MiB huge pages, for the tests that need some. The
 * pool is one for every test running at once (make unit runs two), so a
 * test that counts it or changes it holds it meanwhile: a lock on
 * /proc/sys/vm/nr_hugepages, across processes. */
#ifndef FLINT_TEST_HUGEPOOL_H
#define FLINT_TEST_HUGEPOOL_H

/* Holds the pool (once per process; again is a no-op) and, when fewer than
 * `want` pages are free and unreserved, adds the difference to
 * vm.nr_hugepages if it may (root). Returns the pages free and unreserved
 * then, which may still be fewer than `want`. */
long hugepool_take(long want);

/* Puts vm.nr_hugepages back as it was and lets the pool go. Meant as the
 * test's .fini, so that it runs when an assertion ends the test too. */
void hugepool_give_back(void);

#endif
