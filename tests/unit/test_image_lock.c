/* Image locking (issue 10: two VMs could open one image read-write): one
 * writer or any number of readers, whichever process. OFD locks belong to an
 * open file description, so two opens in this one test process conflict as
 * two VMs would. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk_io.h"
#include "core/util.h"

static char path[] = "/tmp/flint-lock-XXXXXX";
static char link_path[sizeof(path) + 8];

static void make_image(void)
{
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(link_path, sizeof(link_path), "%s.link", path);
}

static void remove_image(void)
{
	unlink(link_path);
	unlink(path);
}

static int open_image(const char *p, int flags)
{
	int fd = open(p, flags | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	return fd;
}

TestSuite(image_lock, .init = make_image, .fini = remove_image);

Test(image_lock, one_writer_alone)
{
	int a = open_image(path, O_RDWR), b = open_image(path, O_RDWR), holder;

	cr_assert_eq(lock_file(a, true, &holder), 0);
	cr_assert_eq(lock_file(b, true, &holder), -EAGAIN, "a second writer");
	cr_assert_eq(holder, F_WRLCK);
	cr_assert_eq(lock_file(b, false, &holder), -EAGAIN, "a reader beside a writer");
	cr_assert_eq(holder, F_WRLCK);
	/* The same open may take its lock again (it is already its own). */
	cr_assert_eq(lock_file(a, true, &holder), 0);
	/* Closing the writer's descriptor lets go. */
	close(a);
	cr_assert_eq(lock_file(b, true, &holder), 0);
	close(b);
}

Test(image_lock, readers_share_and_keep_a_writer_out)
{
	int a = open_image(path, O_RDONLY), b = open_image(path, O_RDONLY);
	int w = open_image(path, O_RDWR), holder;

	cr_assert_eq(lock_file(a, false, &holder), 0);
	cr_assert_eq(lock_file(b, false, &holder), 0, "two readers share");
	cr_assert_eq(lock_file(w, true, &holder), -EAGAIN, "a writer beside readers");
	cr_assert_eq(holder, F_RDLCK);
	close(a);
	cr_assert_eq(lock_file(w, true, &holder), -EAGAIN, "one reader is left");
	close(b);
	cr_assert_eq(lock_file(w, true, &holder), 0);
	close(w);
}

/* flint-jail hard-links an image into each jail: the lock is the inode's. */
Test(image_lock, a_hard_link_is_the_same_image)
{
	cr_assert_eq(link(path, link_path), 0, "%s", strerror(errno));
	int a = open_image(path, O_RDWR), b = open_image(link_path, O_RDWR), holder;

	cr_assert_eq(lock_file(a, true, &holder), 0);
	cr_assert_eq(lock_file(b, true, &holder), -EAGAIN);
	close(a);
	close(b);
}

/* blk_disk_open(path) with stderr in a file; returns its result, the log in
 * log[]. */
static int disk_open(struct blk_disk *d, bool read_only, char *log, size_t len)
{
	char name[] = "/tmp/flint-lock-log-XXXXXX";
	int out = mkstemp(name), saved = dup(STDERR_FILENO);

	cr_assert(out >= 0 && saved >= 0);
	unlink(name);
	dup2(out, STDERR_FILENO);
	int r = blk_disk_open(d, path, read_only, false);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(out, log, len - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(out);
	return r;
}

Test(image_lock, a_drive_refuses_a_second_writer_naming_the_image)
{
	struct blk_disk rw, other, ro1, ro2;
	char log[512], want[256];

	cr_assert_eq(disk_open(&rw, false, log, sizeof(log)), 0, "%s", log);
	cr_assert_eq(disk_open(&other, false, log, sizeof(log)), -EBUSY);
	snprintf(want, sizeof(want),
		 "drive %s: cannot open read-write: in use read-write by another process", path);
	cr_assert_not_null(strstr(log, want), "log: %s", log);
	cr_assert_eq(other.fd, -1, "the refused open is closed");
	cr_assert_eq(disk_open(&other, true, log, sizeof(log)), -EBUSY);
	snprintf(want, sizeof(want),
		 "drive %s: cannot open read-only: in use read-write by another process", path);
	cr_assert_not_null(strstr(log, want), "log: %s", log);
	blk_disk_close(&rw);

	/* Read-only drives share the image (flint run's root file system). */
	cr_assert_eq(disk_open(&ro1, true, log, sizeof(log)), 0, "%s", log);
	cr_assert_eq(disk_open(&ro2, true, log, sizeof(log)), 0, "%s", log);
	cr_assert_eq(disk_open(&other, false, log, sizeof(log)), -EBUSY);
	snprintf(want, sizeof(want),
		 "drive %s: cannot open read-write: in use read-only by another process", path);
	cr_assert_not_null(strstr(log, want), "log: %s", log);
	blk_disk_close(&ro1);
	blk_disk_close(&ro2);
	cr_assert_eq(disk_open(&rw, false, log, sizeof(log)), 0, "%s", log);
	blk_disk_close(&rw);
}
