/* The image cache's upkeep (image/cache.h): the trim takes the least
 * recently used images first and never one held, linked elsewhere (a
 * snapshot's pin, a jail) or used in the last minute; pins last while
 * their flint runs or their snapshot is there; the index loses entries
 * whose image is gone. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/cache.h"
#include "image/image.h"

static char top[] = "/tmp/flint-imgc-XXXXXX";
static char images[128];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(top));
	snprintf(images, sizeof(images), "%s/images", top);
	cr_assert_eq(mkdir(images, 0700), 0);
}

static void teardown(void)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(image_cache, .init = setup, .fini = teardown);

/* Image i's path: a key of 64 copies of hex digit i. */
static const char *image(int i, char *buf)
{
	char key[IMAGE_KEY_LEN];

	memset(key, "0123456789abcdef"[i], IMAGE_KEY_LEN - 1);
	key[IMAGE_KEY_LEN - 1] = '\0';
	snprintf(buf, PATH_MAX, "%s/%s.ext4", images, key);
	return buf;
}

/* Set path's mtime (its last use) age seconds back. */
static void used_ago(const char *path, time_t age)
{
	struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = time(NULL) - age}};

	cr_assert_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0, "%s", path);
}

/* Image i of mib MiB of data, last used age seconds ago. */
static void make_image(int i, unsigned mib, time_t age)
{
	static char chunk[1 << 20];
	char p[PATH_MAX];
	FILE *f = fopen(image(i, p), "w");

	cr_assert_not_null(f, "%s", p);
	memset(chunk, 'x', sizeof(chunk));
	for (unsigned m = 0; m < mib; m++)
		cr_assert_eq(fwrite(chunk, 1, sizeof(chunk), f), sizeof(chunk));
	cr_assert_eq(fclose(f), 0);
	used_ago(p, age);
}

static bool there(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static bool image_there(int i)
{
	char p[PATH_MAX];
	return there(image(i, p));
}

Test(image_cache, trim_takes_the_least_recently_used_first)
{
	make_image(1, 1, 4000);
	make_image(2, 1, 1000);
	make_image(3, 1, 3000);
	make_image(4, 1, 2000);
	image_cache_trim(images, (5ULL << 20) / 2);
	cr_assert(!image_there(1) && !image_there(3), "the two used longest ago go");
	cr_assert(image_there(2) && image_there(4));
}

Test(image_cache, no_limit_and_under_it_remove_nothing)
{
	make_image(1, 1, 4000);
	make_image(2, 1, 3000);
	image_cache_trim(images, 0);
	image_cache_trim(images, 2ULL << 20);
	cr_assert(image_there(1) && image_there(2));
}

Test(image_cache, trim_spares_held_linked_and_recent_images)
{
	char p[PATH_MAX], ln[PATH_MAX];
	int fd;

	make_image(1, 1, 5000);
	make_image(2, 1, 4000);
	make_image(3, 1, IMAGE_CACHE_RECENT_S / 2);
	make_image(4, 1, 3000);
	cr_assert_eq(image_hold(image(1, p), &fd), 0);
	cr_assert_geq(fd, 0);
	used_ago(p, 5000); /* held long: still spared */
	snprintf(ln, sizeof(ln), "%s/jail-link", top);
	cr_assert_eq(link(image(2, p), ln), 0);
	image_cache_trim(images, 1);
	cr_assert(image_there(1), "held");
	cr_assert(image_there(2), "linked elsewhere");
	cr_assert(image_there(3), "used in the last minute");
	cr_assert(!image_there(4));
	close(fd);
	image_cache_trim(images, 1);
	cr_assert(!image_there(1), "no longer held");
}

Test(image_cache, hold_marks_use_and_sees_an_image_gone)
{
	char p[PATH_MAX];
	struct stat st;
	int fd = 0;

	make_image(1, 1, 4000);
	cr_assert_eq(image_hold(image(1, p), NULL), 0);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_geq(st.st_mtime, time(NULL) - 5, "marked used now");
	cr_assert_eq(image_hold(image(2, p), &fd), -ENOENT);
	cr_assert_eq(fd, -1);
}

Test(image_cache, index_entries_of_images_gone_are_swept)
{
	char idx[PATH_MAX], entry[PATH_MAX + 80], p[PATH_MAX], cmd[2 * PATH_MAX];
	const char *fp_kept = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *fp_gone = "2222222222222222222222222222222222222222222222222222222222222222";

	make_image(1, 1, 10);
	snprintf(idx, sizeof(idx), "%s/index", images);
	cr_assert_eq(mkdir(idx, 0700), 0);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && printf '%%064d\\n' 0 | tr 0 1 >%s && printf '%%064d\\n' 0 | tr 0 9 >%s "
		 "&& echo x >.new-old && echo x >.new-young && touch -d '-2 minutes' .new-old",
		 idx, fp_kept, fp_gone);
	cr_assert_eq(system(cmd), 0);
	image_cache_trim(images, 0);
	snprintf(entry, sizeof(entry), "%s/%s", idx, fp_kept);
	cr_assert(there(entry), "its image %s is there", image(1, p));
	snprintf(entry, sizeof(entry), "%s/%s", idx, fp_gone);
	cr_assert(!there(entry), "names an image that is gone");
	snprintf(entry, sizeof(entry), "%s/.new-old", idx);
	cr_assert(!there(entry), "a dead writer's");
	snprintf(entry, sizeof(entry), "%s/.new-young", idx);
	cr_assert(there(entry), "a writer's, maybe still at work");
}

Test(image_cache, a_pin_lasts_while_its_flint_runs_or_its_snapshot_is_there)
{
	char p1[PATH_MAX], p2[PATH_MAX], snap[PATH_MAX], err[512];
	const char *both[] = {image(1, p1), image(2, p2)};
	int lock;
	FILE *f;

	make_image(1, 1, 5000);
	make_image(2, 1, 4000);
	snprintf(snap, sizeof(snap), "%s/fn.state", top);
	cr_assert_eq(image_pin(images, snap, both, 2, &lock, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(lock, 0);
	/* Not saved yet, but its flint runs. */
	image_cache_trim(images, 1);
	cr_assert(image_there(1) && image_there(2), "pinned");
	/* Saved, and its flint gone. */
	cr_assert_not_null(f = fopen(snap, "w"));
	fclose(f);
	close(lock);
	image_cache_trim(images, 1);
	cr_assert(image_there(1) && image_there(2), "the snapshot is there");
	/* The snapshot removed: the pin goes, and the images with it. */
	cr_assert_eq(unlink(snap), 0);
	image_cache_trim(images, 1);
	cr_assert(!image_there(1) && !image_there(2));
}

/* The file at snapshot written now, as a save writes it: later than the
 * pin of the run that saves (file times are coarse: 20 ms on). */
static void save_at(const char *snap)
{
	FILE *f;

	usleep(20000);
	cr_assert_not_null(f = fopen(snap, "w"), "%s", snap);
	fclose(f);
}

/* A snapshot saved again at the same path pins what it boots from, and
 * the earlier one's images are unpinned; a run that pins and never saves
 * (its command failed) leaves the pin as it was. */
Test(image_cache, a_pin_lasts_for_the_snapshot_saved_last)
{
	char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX], snap[PATH_MAX], err[512];
	const char *one[] = {image(1, p1)}, *two[] = {image(2, p2)}, *three[] = {image(3, p3)};
	int lock;

	make_image(1, 1, 5000);
	make_image(2, 1, 4000);
	make_image(3, 1, 3000);
	snprintf(snap, sizeof(snap), "%s/fn.state", top);
	cr_assert_eq(image_pin(images, snap, one, 1, &lock, err, sizeof(err)), 0, "%s", err);
	save_at(snap);
	close(lock);
	cr_assert_eq(image_pin(images, snap, two, 1, &lock, err, sizeof(err)), 0, "%s", err);
	save_at(snap);
	close(lock);
	cr_assert_eq(image_pin(images, snap, three, 1, &lock, err, sizeof(err)), 0, "%s", err);
	close(lock); /* saved nothing */
	image_cache_trim(images, 1);
	cr_assert(!image_there(1), "the snapshot written over's");
	cr_assert(image_there(2), "the snapshot there now's");
	cr_assert(!image_there(3), "a run that saved nothing's");
}

Test(image_cache, a_pin_names_the_snapshot_by_its_absolute_path)
{
	char p[PATH_MAX], err[512], cwd[PATH_MAX];
	const char *one[] = {image(1, p)};
	int lock;

	make_image(1, 1, 5000);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(top), 0);
	int r = image_pin(images, "fn.state", one, 1, &lock, err, sizeof(err));
	cr_assert_eq(chdir(cwd), 0);
	cr_assert_eq(r, 0, "%s", err);
	close(lock);
	/* Seen from elsewhere, the relative name would be missing. */
	char snap[PATH_MAX + 16];
	snprintf(snap, sizeof(snap), "%s/fn.state", top);
	FILE *f = fopen(snap, "w");
	cr_assert_not_null(f);
	fclose(f);
	used_ago(p, 5000);
	image_cache_trim(images, 1);
	cr_assert(image_there(1));
	/* A snapshot in / (a directory it cannot write here: the pin is
	 * made all the same). */
	cr_assert_eq(image_pin(images, "/fn.state", one, 1, &lock, err, sizeof(err)), 0, "%s", err);
	close(lock);
	cr_assert_eq(image_pin(images, "/", one, 1, &lock, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not a file's path"), "%s", err);
	cr_assert_eq(image_pin(images, "/no/such/dir/fn.state", one, 1, &lock, err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "/no/such/dir"), "%s", err);
}
