/* Write n bytes at p to the file at path, made or truncated (mode 0600),
 * for tests that lay out a file on disk. Header-only. */
#ifndef FLINT_TEST_WRITE_FILE_H
#define FLINT_TEST_WRITE_FILE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <unistd.h>

static inline void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

#endif
