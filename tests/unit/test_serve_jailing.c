/* runner/serve/jailing.c: the uid range, each jail's launcher, the removal
 * of a jail's tree (which the tenant owned: no symlink followed) and the
 * ways out of it (files and sockets reached beneath its root only). The
 * jails here are directories the tests make under a temporary base, as
 * flint-jail would. Ownership tests need root (CI's). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/jailing.h"

static char base[64], outside[96];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/flint-jailing.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(outside, sizeof(outside), "%s/outside", base);
	cr_assert_eq(mkdir(outside, 0755), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	(void)!system(cmd);
}

TestSuite(jailing, .init = setup, .fini = teardown);

static struct jailing *make(uint32_t first, uint32_t last, int64_t gid, uint32_t max_vms,
			    const char *cg)
{
	struct jailing_opts o = {
	    .jailer = "/usr/sbin/flint-jail",
	    .base = base,
	    .uid_first = first,
	    .uid_last = last,
	    .gid = gid,
	    .parent = "serve-test",
	};
	struct jailing *j;
	char err[256] = "";

	if (cg)
		o.cgroups[o.ncgroups++] = cg;
	cr_assert_eq(jailing_new(&j, &o, "/opt/flint/jflint", max_vms, err, sizeof(err)), 0, "%s",
		     err);
	return j;
}

/* The jail flint-jail would make for sl: <base>/<exec name>/<id>/root. */
static void make_root(const struct jail_slot *sl)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/jflint", base);
	cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/jflint/%s", base, sl->id);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(mkdir(sl->root, 0755), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

Test(jailing, range_parsing)
{
	uint32_t a, b;

	cr_assert_eq(jailing_parse_range("1000-1999", &a, &b), 0);
	cr_assert_eq(a, 1000);
	cr_assert_eq(b, 1999);
	cr_assert_eq(jailing_parse_range("7-7", &a, &b), 0);
	const char *bad[] = {"0-5",  "5-4",  "a-b",	     "10",   "10-",
			     "-5-6", "5--6", "1-4294967295", "1-2x", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(jailing_parse_range(bad[i], &a, &b), -EINVAL, "'%s' taken", bad[i]);
}

Test(jailing, the_range_must_hold_a_uid_per_vm)
{
	struct jailing_opts o = {.jailer = "/j", .uid_first = 100, .uid_last = 104, .gid = -1};
	struct jailing *j;
	char err[256] = "";

	cr_assert_eq(jailing_new(&j, &o, "/f", 5, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "holds 5 uids") && strstr(err, "--max-vms (5) + 1"), "%s", err);
	cr_assert_null(j);
	cr_assert_eq(jailing_new(&j, &o, "/f", 4, err, sizeof(err)), 0);
	jailing_free(j);
	o.jailer = NULL;
	cr_assert_eq(jailing_new(&j, &o, "/f", 1, err, sizeof(err)), -EINVAL);
}

static void *give_later(void *slot)
{
	usleep(200 * 1000);
	jail_give(slot);
	return NULL;
}

/* A jailing of two uids (one VM), both held in s. */
static struct jailing *full(struct jail_slot *s[2])
{
	struct jailing *j = make(2000, 2001, -1, 1, NULL);

	for (int i = 0; i < 2; i++)
		cr_assert_eq(jail_take(j, "fn", 128, 0, &s[i]), 0);
	return j;
}

/* With every uid held, a take waits for one to be given back (a VM reaped
 * a little after the pool gave its place away) until its deadline, and
 * gets it; with none given back, -ETIMEDOUT at the deadline. */
Test(jailing, a_take_waits_for_a_uid_given_back)
{
	struct jail_slot *s[2], *late;
	struct jailing *j = full(s);
	pthread_t t;
	uint64_t t0;

	t0 = now_ns();
	cr_assert_eq(jail_take(j, "fn", 128, t0 + 300 * 1000000ull, &late), -ETIMEDOUT);
	cr_assert_geq(now_ns() - t0, 300 * 1000000ull, "waited until the deadline");
	cr_assert_eq(pthread_create(&t, NULL, give_later, s[1]), 0);
	cr_assert_eq(jail_take(j, "fn", 128, now_ns() + 10 * 1000000000ull, &late), 0);
	cr_assert_eq(late->uid, 2001);
	pthread_join(t, NULL);
	jail_give(late);
	jail_give(s[0]);
	jailing_free(j);
}

static void *stop_later(void *j)
{
	usleep(200 * 1000);
	jailing_stop(j);
	return NULL;
}

/* A stopping server's waiters return at once (a connection thread waiting
 * for a uid held the stop up to --queue-timeout), and no jail is taken
 * after the stop. */
Test(jailing, a_stop_ends_the_wait_for_a_uid)
{
	struct jail_slot *s[2], *late;
	struct jailing *j = full(s);
	pthread_t t;
	uint64_t t0;

	cr_assert_eq(pthread_create(&t, NULL, stop_later, j), 0);
	t0 = now_ns();
	cr_assert_eq(jail_take(j, "fn", 128, t0 + 30 * 1000000000ull, &late), -ESHUTDOWN);
	cr_assert_lt(now_ns() - t0, 10 * 1000000000ull);
	pthread_join(t, NULL);
	jail_give(s[1]);
	cr_assert_eq(jail_take(j, "fn", 128, 0, &late), -ESHUTDOWN, "none after the stop");
	jail_give(s[0]);
	jailing_free(j);
}

/* Each live jail holds a uid of its own; the range runs out; a uid given
 * back is the last to be taken again. */
Test(jailing, uids_distinct_exhausted_and_rotated)
{
	struct jailing *j = make(2000, 2002, -1, 2, NULL);
	struct jail_slot *s[3], *extra;
	unsigned total, taken;

	for (int i = 0; i < 3; i++) {
		cr_assert_eq(jail_take(j, "fn", 128, 0, &s[i]), 0);
		cr_assert_eq(s[i]->uid, 2000u + (unsigned)i);
		cr_assert_eq(s[i]->gid, s[i]->uid, "the gid is the uid by default");
	}
	cr_assert_str_neq(s[0]->id, s[1]->id);
	cr_assert_eq(jail_take(j, "fn", 128, 0, &extra), -EAGAIN);
	cr_assert_null(extra);
	jailing_counts(j, &total, &taken);
	cr_assert_eq(total, 3);
	cr_assert_eq(taken, 3);
	jail_give(s[1]);
	jail_give(s[0]);
	/* The cursor is past 2002: 2000 is next, then 2001. */
	cr_assert_eq(jail_take(j, "fn", 128, 0, &s[0]), 0);
	cr_assert_eq(s[0]->uid, 2000);
	cr_assert_eq(jail_take(j, "fn", 128, 0, &s[1]), 0);
	cr_assert_eq(s[1]->uid, 2001);
	for (int i = 0; i < 3; i++)
		jail_give(s[i]);
	jailing_counts(j, &total, &taken);
	cr_assert_eq(taken, 0);
	jail_give(NULL);
	jailing_free(j);
}

Test(jailing, launcher_words)
{
	struct jailing *j = make(3000, 3010, 77, 4, "pids.max=32");
	struct jail_slot *sl;
	char want_root[PATH_MAX + 64];

	cr_assert_eq(jail_take(j, "hello", 256, 0, &sl), 0);
	char **v = sl->launcher;
	const char *want[] = {"/usr/sbin/flint-jail",
			      "--id",
			      sl->id,
			      "--exec-file",
			      "/opt/flint/jflint",
			      "--uid",
			      "3000",
			      "--gid",
			      "77",
			      "--chroot-base-dir",
			      base,
			      "--parent-cgroup",
			      "serve-test/hello",
			      "--cgroup",
			      "pids.max=32",
			      "--",
			      NULL};
	for (int i = 0; want[i]; i++) {
		cr_assert_not_null(v[i], "launcher ends at %d", i);
		cr_assert_str_eq(v[i], want[i]);
	}
	cr_assert_null(v[16]);
	cr_assert_eq(strncmp(sl->id, "fs-", 3), 0, "%s", sl->id);
	cr_assert(strlen(sl->id) <= 64);
	snprintf(want_root, sizeof(want_root), "%s/jflint/%s/root", base, sl->id);
	cr_assert_str_eq(sl->root, want_root);
	jail_give(sl);
	jailing_free(j);
}

/* Without cgroup settings a VM gets the memory limit, where the host
 * has a memory controller: guest memory plus the overhead. */
Test(jailing, default_memory_limit)
{
	struct jailing *j = make(3000, 3010, -1, 4, NULL);
	struct jail_slot *sl;
	char want[64];
	bool found = false;

	cr_assert_eq(jail_take(j, "hello", 256, 0, &sl), 0);
	snprintf(want, sizeof(want), "=%llu", (256ULL + JAILING_OVERHEAD_MIB) << 20);
	for (char **p = sl->launcher; *p; p++)
		if (!strcmp(*p, "--cgroup")) {
			cr_assert(strstr(p[1], "memory.") == p[1] && strstr(p[1], want), "%s",
				  p[1]);
			cr_assert_str_eq(p[-2], "--parent-cgroup");
			found = true;
		}
	if (access("/sys/fs/cgroup/memory", F_OK) == 0 ||
	    access("/sys/fs/cgroup/memory.max", F_OK) == 0)
		cr_assert(found, "no memory limit though the host has the controller");
	jail_give(sl);
	jailing_free(j);
}

/* jail_give removes the tree, following none of the tenant's symlinks. */
Test(jailing, give_removes_the_tree_and_follows_no_symlink)
{
	struct jailing *j = make(4000, 4010, -1, 4, NULL);
	struct jail_slot *sl;
	char path[PATH_MAX + 64], kept[PATH_MAX + 64], jail_dir[PATH_MAX + 64];

	cr_assert_eq(jail_take(j, "fn", 128, 0, &sl), 0);
	make_root(sl);
	snprintf(kept, sizeof(kept), "%s/precious", outside);
	write_file(kept, "keep me");
	snprintf(path, sizeof(path), "%s/run", sl->root);
	cr_assert_eq(mkdir(path, 0700), 0);
	for (const char *d = "/run/a\0/run/a/b\0/run/a/b/c\0"; *d; d += strlen(d) + 1) {
		snprintf(path, sizeof(path), "%s%s", sl->root, d);
		cr_assert_eq(mkdir(path, 0700), 0, "%s", path);
	}
	snprintf(path, sizeof(path), "%s/run/a/b/c/file", sl->root);
	write_file(path, "x");
	snprintf(path, sizeof(path), "%s/run/to-dir", sl->root);
	cr_assert_eq(symlink(outside, path), 0);
	snprintf(path, sizeof(path), "%s/run/to-file", sl->root);
	cr_assert_eq(symlink(kept, path), 0);
	snprintf(jail_dir, sizeof(jail_dir), "%s/jflint/%s", base, sl->id);
	jail_give(sl);
	cr_assert_eq(access(jail_dir, F_OK), -1, "the jail is still there");
	cr_assert_eq(access(kept, F_OK), 0, "a file behind a symlink was removed");
	jailing_free(j);
}

Test(jailing, open_beneath_stays_in_the_jail)
{
	struct jailing *j = make(4000, 4010, -1, 4, NULL);
	struct jail_slot *sl;
	char path[PATH_MAX + 64];
	int fd;

	cr_assert_eq(jail_take(j, "fn", 128, 0, &sl), 0);
	make_root(sl);
	snprintf(path, sizeof(path), "%s/inside", sl->root);
	write_file(path, "in");
	snprintf(path, sizeof(path), "%s/precious", outside);
	write_file(path, "out");
	char link[PATH_MAX + 64];
	snprintf(link, sizeof(link), "%s/link", sl->root);
	cr_assert_eq(symlink(path, link), 0);
	snprintf(link, sizeof(link), "%s/rel", sl->root);
	cr_assert_eq(symlink("inside", link), 0);

	cr_assert_geq(fd = jail_open_beneath(sl, "/inside", O_RDONLY), 0);
	close(fd);
	cr_assert_eq(jail_open_beneath(sl, "/link", O_RDONLY), -ELOOP);
	cr_assert_eq(jail_open_beneath(sl, "/rel", O_RDONLY), -ELOOP, "a symlink, even inside");
	cr_assert_eq(jail_open_beneath(sl, "/../outside/precious", O_RDONLY), -EXDEV);
	cr_assert_eq(jail_open_beneath(sl, "/", O_RDONLY), -EINVAL);
	cr_assert_eq(jail_host_path(sl, "/run/v.sock", path, sizeof(path)), 0);
	cr_assert(strstr(path, sl->root) == path && strstr(path, "/run/v.sock"));
	cr_assert_eq(jail_host_path(sl, "run", path, sizeof(path)), -EINVAL);
	jail_give(sl);
	jailing_free(j);
}

/* A snapshot comes out of a jail only as a file of the jail's uid, with
 * no other name, holes kept; a link to something else is refused. */
Test(jailing, collect_takes_only_the_tenants_own_file)
{
	struct jailing *j = make(4100, 4110, -1, 4, NULL);
	struct jail_slot *sl;
	char src[PATH_MAX + 64], dest[PATH_MAX + 64], other[PATH_MAX + 64], buf[16];
	struct stat st;
	int fd;

	if (geteuid() != 0)
		cr_assert_fail("needs root to give files to the jail's uid");
	cr_assert_eq(jail_take(j, "fn", 128, 0, &sl), 0);
	make_root(sl);
	snprintf(src, sizeof(src), "%s/mem", sl->root);
	cr_assert_geq(fd = open(src, O_WRONLY | O_CREAT, 0600), 0);
	cr_assert_eq(pwrite(fd, "head", 4, 0), 4);
	cr_assert_eq(pwrite(fd, "tail", 4, 8 << 20), 4);
	cr_assert_eq(fchown(fd, sl->uid, sl->gid), 0);
	close(fd);
	snprintf(dest, sizeof(dest), "%s/copy", outside);
	cr_assert_eq(jail_collect(sl, "/mem", dest), 0);
	cr_assert_eq(stat(dest, &st), 0);
	cr_assert_eq(st.st_size, (8 << 20) + 4);
	cr_assert_eq(st.st_uid, 0, "the copy is the server's");
	cr_assert_eq(st.st_mode & 07777, 0644);
	cr_assert_lt(st.st_blocks * 512, 1 << 20, "holes filled: %lld blocks",
		     (long long)st.st_blocks);
	cr_assert_geq(fd = open(dest, O_RDONLY), 0);
	cr_assert_eq(pread(fd, buf, 4, 0), 4);
	cr_assert_eq(memcmp(buf, "head", 4), 0);
	cr_assert_eq(pread(fd, buf, 4, 8 << 20), 4);
	cr_assert_eq(memcmp(buf, "tail", 4), 0);
	close(fd);
	cr_assert_eq(jail_collect(sl, "/mem", dest), -EEXIST, "an existing file overwritten");

	/* Another's file, a hard link to one, a symlink: refused. */
	snprintf(other, sizeof(other), "%s/root-owned", sl->root);
	write_file(other, "root's");
	unlink(dest);
	cr_assert_eq(jail_collect(sl, "/root-owned", dest), -EPERM);
	cr_assert_eq(access(dest, F_OK), -1);
	snprintf(other, sizeof(other), "%s/theirs", outside);
	write_file(other, "someone's");
	cr_assert_eq(chown(other, sl->uid, sl->gid), 0);
	snprintf(src, sizeof(src), "%s/hard", sl->root);
	cr_assert_eq(link(other, src), 0);
	cr_assert_eq(jail_collect(sl, "/hard", dest), -EPERM);
	snprintf(src, sizeof(src), "%s/soft", sl->root);
	cr_assert_eq(symlink(other, src), 0);
	cr_assert_eq(jail_collect(sl, "/soft", dest), -ELOOP);
	jail_give(sl);
	jailing_free(j);
}
