/* registry: flint serve's registration of a function. Before a VM is
 * involved: a kernel or root image that is not a readable regular file is
 * refused with 400, the message naming the path and what is wrong with it.
 * With a stand-in flint (a shell script that "boots" for a while and
 * writes the snapshot, counting the registering flints alive): a
 * registration's VM counts against --max-vms and --max-mem as a request's
 * does, waits for room or is refused with 503, and gives its room back
 * however it ends (done, failed, the server stopping). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/server_int.h"

static struct server srv;

/* PUT /functions/f with body: the status, and the message into msg. */
static unsigned put(const char *body, char **msg)
{
	*msg = NULL;
	return serve_fn_register(&srv, "f", body, strlen(body), msg);
}

Test(serve_registry, path_not_a_regular_file)
{
	char *msg;

	/* A directory: whatever errno last said has nothing to do with it. */
	errno = EBADF;
	cr_assert_eq(put("{\"command\": [\"true\"], \"kernel\": \"/tmp\"}", &msg), 400);
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "kernel /tmp: not a regular file"), "%s", msg);
	free(msg);
}

Test(serve_registry, path_missing)
{
	char *msg;

	errno = 0;
	cr_assert_eq(put("{\"command\": [\"true\"], \"rootfs\": \"/nonexistent/r.ext4\"}", &msg),
		     400);
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "rootfs /nonexistent/r.ext4: No such file or directory"), "%s", msg);
	free(msg);
}

/* ---- with a stand-in flint ---- */

static char dir[64];

/* A flint that registers in secs: it marks itself alive, waits, writes
 * how many registering flints are alive into DIR/counts, and writes the
 * snapshot; a prepare command (after "--") failing fails it. */
static void fake_flint(const char *secs)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/flint", dir);
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f,
		"#!/bin/sh\n"
		"d=%s; save=; mem=\n"
		"while [ $# -gt 0 ]; do\n"
		"\tcase $1 in\n"
		"\t--save-snapshot) save=$2; shift ;;\n"
		"\t--save-mem) mem=$2; shift ;;\n"
		"\t--) shift; break ;;\n"
		"\tesac\n"
		"\tshift\n"
		"done\n"
		": >$d/alive.$$\n"
		"sleep %s\n"
		"ls $d | grep -c '^alive\\.' >>$d/counts\n"
		"rm $d/alive.$$\n"
		"if [ $# -gt 0 ]; then \"$@\" || exit $?; fi\n"
		": >\"$save\" && : >\"$mem\"\n",
		dir, secs);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, 0755), 0);
}

/* A server with these limits, its flint the stand-in, its manager
 * running (queue deadlines pass). */
static void mkserver(uint32_t max_vms, uint64_t max_mem_mib, unsigned queue_timeout_s,
		     const char *secs)
{
	snprintf(dir, sizeof(dir), "/tmp/serve-reg-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	fake_flint(secs);
	memset(&srv, 0, sizeof(srv));
	snprintf(srv.o.flint, sizeof(srv.o.flint), "%s/flint", dir);
	snprintf(srv.o.state_dir, sizeof(srv.o.state_dir), "%s/st", dir);
	cr_assert_eq(mkdir(srv.o.state_dir, 0700), 0);
	srv.o.max_vms = max_vms;
	srv.o.max_mem_mib = max_mem_mib;
	srv.o.max_queue = 16;
	srv.o.fn_queue = 4;
	srv.o.queue_timeout_s = queue_timeout_s;
	srv.o.idle_s = 60;
	srv.o.register_timeout_s = 30;
	pthread_mutex_init(&srv.lock, NULL);
	pthread_cond_init(&srv.manager_cv, NULL);
	struct pool_cfg pc = serve_pool_cfg(&srv.o);
	cr_assert_eq(pool_create(&pc, now_ns(), &srv.pool), 0);
	cr_assert_eq(serve_manager_start(&srv), 0);
}

/* The most registering flints that were ever alive at once. */
static int most_alive(void)
{
	char path[128];
	int n, most = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/counts", dir);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fscanf(f, "%d", &n) == 1)
		if (n > most)
			most = n;
	fclose(f);
	return most;
}

/* Stops the server (if not yet) and removes what it left: each test's
 * fini, which runs whether it passed or not. */
static void rmserver(void)
{
	char cmd[128];

	if (!dir[0])
		return;
	serve_manager_stop(&srv);
	serve_registry_free(&srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static struct pool_stats pool_now(void)
{
	struct pool_stats st;

	pthread_mutex_lock(&srv.lock);
	pool_stats(srv.pool, &st);
	pthread_mutex_unlock(&srv.lock);
	return st;
}

struct reg {
	pthread_t t;
	char name[16];
	const char *body;
	unsigned status;
	char *msg;
};

static void *reg_thread(void *arg)
{
	struct reg *r = arg;

	r->status = serve_fn_register(&srv, r->name, r->body, strlen(r->body), &r->msg);
	return NULL;
}

/* n registrations of body at once, 50 ms apart (so that they come in that
 * order), each answered in r[i]. */
static void register_all(struct reg *r, unsigned n, const char *body)
{
	for (unsigned i = 0; i < n; i++) {
		snprintf(r[i].name, sizeof(r[i].name), "f%u", i);
		r[i].body = body;
		cr_assert_eq(pthread_create(&r[i].t, NULL, reg_thread, &r[i]), 0);
		usleep(50000);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(r[i].t, NULL);
}

Test(serve_registry, registrations_wait_for_max_vms, .timeout = 30, .fini = rmserver)
{
	struct reg r[3] = {0};

	mkserver(1, 8192, 20, "0.4");
	register_all(r, 3, "{\"command\": [\"true\"]}");
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(r[i].status, 201, "%s: %u %s", r[i].name, r[i].status, r[i].msg);
	cr_assert_eq(most_alive(), 1, "%d registering VMs at once under --max-vms 1", most_alive());
	struct pool_stats st = pool_now();
	cr_assert_eq(st.vms, 0);
	cr_assert_eq(st.mem_mib, 0);
}

Test(serve_registry, registrations_wait_for_max_mem, .timeout = 30, .fini = rmserver)
{
	struct reg r[2] = {0};

	mkserver(64, 300, 20, "0.4");
	register_all(r, 2, "{\"command\": [\"true\"], \"mem_mib\": 200}");
	for (unsigned i = 0; i < 2; i++)
		cr_assert_eq(r[i].status, 201, "%s: %u %s", r[i].name, r[i].status, r[i].msg);
	cr_assert_eq(most_alive(), 1, "%d registering VMs of 200 MiB at once under --max-mem 300M",
		     most_alive());
	cr_assert_eq(pool_now().mem_mib, 0);
}

Test(serve_registry, registration_refused_after_queue_timeout, .timeout = 30, .fini = rmserver)
{
	struct reg r[2] = {0};

	mkserver(1, 8192, 1, "2.5");
	register_all(r, 2, "{\"command\": [\"true\"]}");
	cr_assert_eq(r[0].status, 201, "%u %s", r[0].status, r[0].msg);
	cr_assert_eq(r[1].status, 503, "%u %s", r[1].status, r[1].msg);
	cr_assert(strstr(r[1].msg, "no VM became free within the queue timeout"), "%s", r[1].msg);
	cr_assert_eq(most_alive(), 1);
	/* Refused, it is not there: the name is free again. */
	pthread_mutex_lock(&srv.lock);
	cr_assert_null(serve_fn_find(&srv, "f1"));
	pthread_mutex_unlock(&srv.lock);
	struct pool_stats st = pool_now();
	cr_assert_eq(st.vms, 0);
	cr_assert_eq(st.queue_len, 0);
}

Test(serve_registry, failed_registration_gives_its_room_back, .timeout = 30, .fini = rmserver)
{
	char *msg = NULL;
	const char *bad = "{\"command\": [\"true\"], \"prepare\": [\"false\"]}";
	const char *good = "{\"command\": [\"true\"]}";

	mkserver(1, 8192, 20, "0.1");
	cr_assert_eq(serve_fn_register(&srv, "bad", bad, strlen(bad), &msg), 422, "%s", msg);
	free(msg);
	cr_assert_eq(pool_now().vms, 0);
	cr_assert_eq(serve_fn_register(&srv, "good", good, strlen(good), &msg), 201, "%s", msg);
	free(msg);
	cr_assert_eq(pool_now().vms, 0);
}

static void *stop_later(void *arg)
{
	(void)arg;
	usleep(700000);
	serve_manager_stop(&srv);
	return NULL;
}

Test(serve_registry, stopping_ends_running_and_waiting_registrations, .timeout = 30,
     .fini = rmserver)
{
	struct reg r[2] = {0};
	pthread_t stopper;

	mkserver(1, 8192, 20, "10");
	cr_assert_eq(pthread_create(&stopper, NULL, stop_later, NULL), 0);
	register_all(r, 2, "{\"command\": [\"true\"]}");
	pthread_join(stopper, NULL);
	/* The running one is killed, the waiting one never started. */
	cr_assert_neq(r[0].status, 201, "%u %s", r[0].status, r[0].msg);
	cr_assert_eq(r[1].status, 503, "%u %s", r[1].status, r[1].msg);
	cr_assert(strstr(r[1].msg, "the server is stopping"), "%s", r[1].msg);
	cr_assert_eq(most_alive(), 0);
	struct pool_stats st = pool_now();
	cr_assert_eq(st.vms, 0);
	cr_assert_eq(st.queue_len, 0);
}
