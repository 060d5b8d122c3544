#include "core/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/logger.h"

struct source {
	char *section;
	bool counters;
	metrics_fill_fn *fill;
	void *ctx;
	json_t *written; /* counters: the totals of the last line written */
	json_t *pending; /* counters: the totals of the line being written */
	struct source *next;
};

struct metrics {
	pthread_mutex_t lock;
	int fd;	   /* metrics_path, or -1 */
	int timer; /* timerfd */
	struct source *sources, **tail;
	uint64_t missed; /* lines not written */
	uint64_t fails;	 /* of which not for a full pipe */
};

/* The "logger" section, as Firecracker's: its own misses and the logger's. */
static void fill_logger(void *ctx, json_t *obj)
{
	struct metrics *m = ctx;
	struct logger_counts lc;

	logger_counts(&lc);
	metrics_put(obj, "missed_metrics_count", m->missed);
	metrics_put(obj, "metrics_fails", m->fails);
	metrics_put(obj, "missed_log_count", lc.missed_log_count);
	metrics_put(obj, "log_fails", lc.log_fails);
}

int metrics_create(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	int r;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->fd = -1;
	m->tail = &m->sources;
	/* jansson seeds its hash function when the first object is made,
	 * from /dev/urandom: do it now, not at the first flush under the
	 * control thread's seccomp filter (no open). */
	json_object_seed(0);
	m->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->timer < 0) {
		r = -errno;
		goto err_free;
	}
	r = metrics_add_source(m, "logger", fill_logger, m);
	if (r < 0)
		goto err_timer;
	*out = m;
	return 0;

err_timer:
	close(m->timer);
err_free:
	pthread_mutex_destroy(&m->lock);
	free(m);
	return r;
}

static void free_source(struct source *s)
{
	json_decref(s->written);
	json_decref(s->pending);
	free(s->section);
	free(s);
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	while (m->sources) {
		struct source *s = m->sources;
		m->sources = s->next;
		free_source(s);
	}
	close_fd(&m->fd);
	close_fd(&m->timer);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int metrics_configure(struct metrics *m, const struct vmc_metrics *c, char *err, size_t errlen)
{
	struct itimerspec period = {.it_interval.tv_sec = METRICS_PERIOD_S,
				    .it_value.tv_sec = METRICS_PERIOD_S};
	int fd, r = 0;

	if (!c->metrics_path || !c->metrics_path[0]) {
		snprintf(err, errlen, "metrics_path is missing");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	if (m->fd >= 0) {
		snprintf(err, errlen, "Reinitialization of metrics not allowed.");
		r = -EALREADY;
		goto out;
	}
	fd = open(c->metrics_path, O_RDWR | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open metrics_path '%s': %s", c->metrics_path,
			 strerror(-r));
		goto out;
	}
	if (timerfd_settime(m->timer, 0, &period, NULL) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot start the metrics timer: %s", strerror(-r));
		close(fd);
		goto out;
	}
	m->fd = fd;
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int add(struct metrics *m, const char *section, bool counters, metrics_fill_fn *fill,
	       void *ctx)
{
	struct source *s = calloc(1, sizeof(*s));

	if (!s || !(s->section = strdup(section))) {
		free(s);
		return -ENOMEM;
	}
	s->counters = counters;
	s->fill = fill;
	s->ctx = ctx;
	pthread_mutex_lock(&m->lock);
	*m->tail = s;
	m->tail = &s->next;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int metrics_add_source(struct metrics *m, const char *section, metrics_fill_fn *fill, void *ctx)
{
	return add(m, section, true, fill, ctx);
}

int metrics_add_gauges(struct metrics *m, const char *section, metrics_fill_fn *fill, void *ctx)
{
	return add(m, section, false, fill, ctx);
}

void metrics_remove_sources(struct metrics *m, void *ctx)
{
	pthread_mutex_lock(&m->lock);
	struct source **p = &m->sources;
	while (*p) {
		struct source *s = *p;
		if (s->ctx == ctx) {
			*p = s->next;
			free_source(s);
		} else {
			p = &s->next;
		}
	}
	m->tail = p;
	pthread_mutex_unlock(&m->lock);
}

void metrics_put(json_t *obj, const char *name, uint64_t v)
{
	json_object_set_new(obj, name, json_integer((json_int_t)v));
}

/* What each counter in cur grew by since written (the same shape, nested
 * objects included); other values as they are. NULL when out of memory. */
static json_t *growth(json_t *cur, json_t *written)
{
	json_t *out = json_object();
	const char *key;
	json_t *v;

	if (!out)
		return NULL;
	json_object_foreach(cur, key, v)
	{
		json_t *w = json_is_object(written) ? json_object_get(written, key) : NULL;
		json_t *d;

		if (json_is_integer(v)) {
			uint64_t now = (uint64_t)json_integer_value(v);
			uint64_t then = json_is_integer(w) ? (uint64_t)json_integer_value(w) : 0;
			d = json_integer((json_int_t)(now >= then ? now - then : now));
		} else if (json_is_object(v)) {
			d = growth(v, w);
		} else {
			d = json_incref(v);
		}
		if (!d || json_object_set_new(out, key, d) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* The line: every section's numbers under the timestamp. Counter sources
 * keep their totals in pending until the line is written. */
static json_t *build(struct metrics *m)
{
	json_t *root = json_object();
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!root)
		return NULL;
	metrics_put(root, "utc_timestamp_ms",
		    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	for (struct source *s = m->sources; s; s = s->next) {
		json_t *cur = json_object(), *add, *sec;

		if (!cur)
			goto err;
		s->fill(s->ctx, cur);
		if (s->counters) {
			json_decref(s->pending);
			s->pending = cur;
			add = growth(cur, s->written);
		} else {
			add = cur;
		}
		if (!add)
			goto err;
		sec = json_object_get(root, s->section);
		if (!sec) {
			sec = json_object();
			if (!sec || json_object_set_new(root, s->section, sec) < 0) {
				json_decref(add);
				goto err;
			}
		}
		int r = json_object_update(sec, add);
		json_decref(add);
		if (r < 0)
			goto err;
	}
	return root;
err:
	json_decref(root);
	return NULL;
}

int metrics_flush(struct metrics *m, char *err, size_t errlen)
{
	char *text = NULL;
	json_t *root;
	int r = 0;

	pthread_mutex_lock(&m->lock);
	if (m->fd < 0)
		goto out;
	root = build(m);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!text) {
		r = -ENOMEM;
		snprintf(err, errlen, "cannot write the metrics: out of memory");
	} else {
		size_t len = strlen(text);
		text[len] = '\n'; /* json_dumps's NUL: the line is written by length */
		r = write_full(m->fd, text, len + 1);
		if (r < 0)
			snprintf(err, errlen, "cannot write the metrics: %s", strerror(-r));
	}
	for (struct source *s = m->sources; s; s = s->next) {
		if (r == 0 && s->pending) {
			json_decref(s->written);
			s->written = s->pending;
		} else {
			json_decref(s->pending);
		}
		s->pending = NULL;
	}
	if (r < 0) {
		m->missed++;
		if (r != -EAGAIN)
			m->fails++;
	}
out:
	pthread_mutex_unlock(&m->lock);
	free(text);
	return r;
}

int metrics_timer_fd(const struct metrics *m)
{
	return m->timer;
}

int metrics_on_timer(struct metrics *m)
{
	char err[256];
	uint64_t expirations;

	if (read(m->timer, &expirations, sizeof(expirations)) < 0)
		return errno == EAGAIN ? 0 : -errno;
	int r = metrics_flush(m, err, sizeof(err));
	if (r < 0)
		pr_warn("metrics: %s", err);
	return r;
}
