/* The copy-ins' tar streams, made ahead: see spool.h. One producer (the
 * archiver thread) and one consumer (spool_send's caller) share a ring;
 * head and tail count every byte put and taken, all streams together, so
 * stream i's bytes are those between the ends of streams i - 1 and i. */
#include "cmd/spool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* head and tail count every byte ever put: never wrapping. */
_Static_assert(sizeof(size_t) >= 8, "the ring's counters need 64 bits");

struct spool_stream {
	size_t end; /* head when its archiving ended */
	bool done;
	int ret;       /* tarcopy_send's */
	char err[512]; /* its message: a path, then why */
};

struct spool {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* head, tail, stop or a stream's end moved */
	pthread_t thread;
	uint8_t *ring;
	size_t size;
	size_t head, tail; /* bytes put and taken so far */
	bool stop;	   /* no more writes: spool_end, or a send failed */
	const char *const *paths;
	unsigned n, next; /* next: the stream spool_send takes next */
	struct spool_stream *streams;
};

/* tarcopy_send's write: len bytes into the ring, waiting for room. */
static int ring_put(void *ctx, const void *buf, size_t len, char *msg, size_t msglen)
{
	struct spool *s = ctx;
	const uint8_t *p = buf;

	while (len) {
		size_t at, n;

		pthread_mutex_lock(&s->lock);
		while (s->head - s->tail == s->size && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop) {
			pthread_mutex_unlock(&s->lock);
			snprintf(msg, msglen, "the copy was given up");
			return -1;
		}
		at = s->head % s->size;
		n = s->size - (s->head - s->tail);
		if (n > s->size - at)
			n = s->size - at;
		if (n > len)
			n = len;
		pthread_mutex_unlock(&s->lock);
		/* [head, head + n) is free, and only this thread fills it. */
		memcpy(s->ring + at, p, n);
		pthread_mutex_lock(&s->lock);
		s->head += n;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		p += n;
		len -= n;
	}
	return 0;
}

static void *archiver(void *arg)
{
	struct spool *s = arg;
	struct tarcopy_io io = {.write = ring_put, .ctx = s};
	bool stop = false;

	for (unsigned i = 0; i < s->n && !stop; i++) {
		struct spool_stream *st = &s->streams[i];
		char err[sizeof(st->err)] = "";
		int ret = tarcopy_send(s->paths[i], &io, NULL, err, sizeof(err));

		pthread_mutex_lock(&s->lock);
		st->end = s->head;
		st->ret = ret;
		memcpy(st->err, err, sizeof(err));
		st->done = true;
		/* The copy-ins stop at the first failure: no later stream is
		 * wanted. */
		stop = s->stop || ret < 0;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int spool_start(struct spool **out, const char *const *paths, unsigned n, size_t ring_size)
{
	struct spool *s = calloc(1, sizeof(*s));
	int err;

	*out = NULL;
	if (!s || !n || !ring_size) {
		free(s);
		return s ? -EINVAL : -ENOMEM;
	}
	s->paths = paths;
	s->n = n;
	s->size = ring_size;
	s->streams = calloc(n, sizeof(*s->streams));
	s->ring = mmap(NULL, ring_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!s->streams || s->ring == MAP_FAILED) {
		err = s->streams ? -errno : -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if ((err = -pthread_create(&s->thread, NULL, archiver, s)) < 0) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->ring && s->ring != MAP_FAILED)
		munmap(s->ring, ring_size);
	free(s->streams);
	free(s);
	return err;
}

static void stop_locked(struct spool *s)
{
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
}

int spool_send(struct spool *s, unsigned i, const struct tarcopy_io *io, size_t max, char *err,
	       size_t errlen)
{
	struct spool_stream *st;

	pthread_mutex_lock(&s->lock);
	if (i != s->next || i >= s->n || s->stop || !max) {
		pthread_mutex_unlock(&s->lock);
		snprintf(err, errlen, "copy-in stream %u cannot be sent now", i);
		return -1;
	}
	st = &s->streams[s->next++];
	for (;;) {
		size_t at, n;

		/* Until the stream ends, every byte put is this stream's. */
		while (s->tail == s->head && !st->done && !s->stop)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stop && !st->done) {
			pthread_mutex_unlock(&s->lock);
			snprintf(err, errlen, "the copy was given up");
			return -1;
		}
		n = (st->done ? st->end : s->head) - s->tail;
		if (n == 0) {
			int ret = st->ret;

			if (ret < 0) {
				snprintf(err, errlen, "%s", st->err);
				stop_locked(s);
			}
			pthread_mutex_unlock(&s->lock);
			return ret < 0 ? -1 : 0;
		}
		at = s->tail % s->size;
		if (n > s->size - at)
			n = s->size - at;
		if (n > max)
			n = max;
		pthread_mutex_unlock(&s->lock);
		/* [tail, tail + n) stays put until tail moves past it. */
		if (io->write(io->ctx, s->ring + at, n, err, errlen) < 0) {
			pthread_mutex_lock(&s->lock);
			stop_locked(s);
			pthread_mutex_unlock(&s->lock);
			return -1;
		}
		pthread_mutex_lock(&s->lock);
		s->tail += n;
		pthread_cond_broadcast(&s->cond);
	}
}

size_t spool_made(struct spool *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->head;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void spool_end(struct spool *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	stop_locked(s);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	munmap(s->ring, s->size);
	free(s->streams);
	free(s);
}
