#include "api/http.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/router.h"
#include "core/logger.h"
#include "core/seccomp.h"
#include "core/usock.h"

struct api_http {
	struct api_ctl *ctl;
	struct MHD_Daemon *daemon;
	int listen_fd; /* owned by the daemon once it started */
	int epoll_fd;  /* the daemon's */
	int stop_fd;   /* eventfd: written by api_http_stop */
	char *path;
	struct usock_made made; /* the socket file, so that stop removes only it */
	pthread_t thread;
	bool thread_started;
	/* The thread's start-up answer: 0 or -errno, once ready. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready;
	int start_err;
};

/* One request's body, gathered across the handler's calls. */
struct body {
	char *buf;
	size_t len;   /* bytes kept, at most the controller's cap */
	size_t total; /* bytes received (saturating): over the cap, refused */
};

/* Bind path as a listening Unix socket, replacing a stale one. The API is
 * the VM's owner's: no one else may connect (the umask decided before). */
static int bind_socket(struct api_http *h, const char *path, char *err, size_t errlen)
{
	int fd = usock_listen(path, SOCK_NONBLOCK, 64, 0600, &h->made);

	if (fd < 0)
		return err_set(err, errlen, fd, "%s", usock_why(fd));
	h->listen_fd = fd;
	return 0;
}

static enum MHD_Result send_answer(struct MHD_Connection *c, struct api_resp *resp)
{
	struct MHD_Response *mr;

	if (resp->body) {
		mr = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
		if (!mr) {
			api_resp_free(resp);
			return MHD_NO;
		}
		resp->body = NULL; /* the response owns it now */
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	} else {
		mr = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!mr)
			return MHD_NO;
	}
	if (resp->deprecated)
		MHD_add_response_header(mr, "Deprecation", "true");
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* libmicrohttpd's access handler: called once when the headers are in,
 * then with each piece of the body, then once more (*size 0) to answer. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct api_http *h = cls;
	struct body *b = *con_cls;
	struct api_resp resp;

	(void)version;
	if (!b) {
		if (!(b = calloc(1, sizeof(*b))))
			return MHD_NO;
		*con_cls = b;
		/* A body over the cap is read to its end and refused, so that the
		 * client reads the answer (one answered early meets a reset as
		 * it writes on); one announced far beyond it (a terabyte) is
		 * refused before it is read, the connection closed. */
		const char *cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		char *end;
		unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
		size_t drain = api_ctl_max_body(h->ctl);
		if (drain < API_MAX_DRAIN)
			drain = API_MAX_DRAIN;
		if (cl && *cl >= '0' && *cl <= '9' && !*end && n > drain) {
			b->total = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
			api_handle(h->ctl, method, url, NULL, b->total, &resp);
			return send_answer(c, &resp);
		}
		return MHD_YES;
	}
	if (*size) {
		size_t n = *size;
		b->total = b->total > SIZE_MAX - n ? SIZE_MAX : b->total + n;
		if (b->total <= api_ctl_max_body(h->ctl)) {
			if (!b->buf && !(b->buf = malloc(api_ctl_max_body(h->ctl))))
				return MHD_NO;
			memcpy(b->buf + b->len, data, n);
			b->len += n;
		}
		*size = 0;
		return MHD_YES;
	}
	api_handle(h->ctl, method, url, b->total > api_ctl_max_body(h->ctl) ? NULL : b->buf,
		   b->total, &resp);
	return send_answer(c, &resp);
}

/* Paths are taken as sent, as Firecracker's: %-decoding made
 * /drives/a%00b the drive "a" (the string ends at the NUL). */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls, (void)c;
	return strlen(s);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct body *b = *con_cls;

	(void)cls, (void)c, (void)toe;
	if (b) {
		free(b->buf);
		free(b);
		*con_cls = NULL;
	}
}

static void say_ready(struct api_http *h, int r)
{
	pthread_mutex_lock(&h->lock);
	h->ready = true;
	h->start_err = r;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* The connections the daemon holds (those closed are cleaned up first). */
static unsigned connections(struct api_http *h)
{
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return info ? info->num_connections : 0;
}

/* The API thread: its filter first, then the daemon until stopped. */
static void *serve(void *arg)
{
	struct api_http *h = arg;
	logger_thread_name("api");
	int r = seccomp_enter(SECCOMP_API);

	say_ready(h, r);
	if (r < 0)
		return NULL;
	for (bool again = false;;) {
		struct pollfd p[2] = {{.fd = h->epoll_fd, .events = POLLIN},
				      {.fd = h->stop_fd, .events = POLLIN}};
		MHD_UNSIGNED_LONG_LONG ms;
		int timeout = again ? 0 : -1;

		if (!again && MHD_get_timeout(h->daemon, &ms) == MHD_YES)
			timeout = ms > INT_MAX ? INT_MAX : (int)ms;
		if (poll(p, 2, timeout) < 0 && errno != EINTR) {
			pr_err("API: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		unsigned before = connections(h);
		MHD_run(h->daemon);
		/* At API_MAX_CONNECTIONS libmicrohttpd takes the listening
		 * socket out of its epoll set, and puts it back only as it
		 * next runs: once a connection went, run again now, else
		 * nothing wakes us and new clients wait for ever. */
		again = connections(h) < before;
	}
	/* The daemon stops here, under this thread's filter, which allows
	 * what its stop does to a connection still open (shutdown,
	 * epoll_ctl, close); the main thread's filter does not. */
	MHD_stop_daemon(h->daemon); /* closes the listening socket */
	h->daemon = NULL;
	h->listen_fd = -1;
	return NULL;
}

int api_http_start(struct api_http **out, const char *path, struct api_ctl *ctl, char *err,
		   size_t errlen)
{
	struct api_http *h = calloc(1, sizeof(*h));
	int r;

	*out = NULL;
	if (!h)
		return err_set(err, errlen, -ENOMEM, "out of memory");
	h->ctl = ctl;
	h->listen_fd = h->epoll_fd = h->stop_fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	if (!(h->path = strdup(path))) {
		r = err_set(err, errlen, -ENOMEM, "out of memory");
		goto err;
	}
	if ((h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = err_set(err, errlen, -errno, "eventfd: %s", strerror(errno));
		goto err;
	}
	if ((r = bind_socket(h, path, err, errlen)) < 0)
		goto err;
	/* What the API thread's filter would refuse, done here: jansson
	 * seeds its hash function from /dev/urandom on first use. */
	json_object_seed(0);
	/* No thread of MHD's own (no MHD_USE_INTERNAL_POLLING_THREAD): ours
	 * runs it, under its filter. No Date header (Firecracker sends none):
	 * glibc's first gmtime_r would open /etc/localtime. */
	h->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_CONNECTION_LIMIT, API_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	    API_IDLE_TIMEOUT_S, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL, MHD_OPTION_END);
	if (!h->daemon) {
		r = err_set(err, errlen, -EIO, "libmicrohttpd could not start on the socket");
		close_fd(&h->listen_fd);
		goto err_socket;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		r = err_set(err, errlen, -EIO, "libmicrohttpd has no epoll fd");
		goto err_daemon;
	}
	h->epoll_fd = info->epoll_fd;
	r = -thread_start_unsignalled(&h->thread, NULL, serve, h);
	if (r < 0) {
		err_set(err, errlen, r, "cannot create the API thread: %s", strerror(-r));
		goto err_daemon;
	}
	h->thread_started = true;
	pthread_mutex_lock(&h->lock);
	while (!h->ready)
		pthread_cond_wait(&h->cond, &h->lock);
	r = h->start_err;
	pthread_mutex_unlock(&h->lock);
	if (r < 0) {
		err_set(err, errlen, r, "the API thread's seccomp filter: %s", strerror(-r));
		goto err_daemon;
	}
	*out = h;
	return 0;
err_daemon:
	api_http_stop(h);
	return r;
err_socket:
	if (h->path)
		usock_remove(h->path, &h->made);
err:
	api_http_stop(h);
	return r;
}

void api_http_stop(struct api_http *h)
{
	if (!h)
		return;
	if (h->thread_started) {
		uint64_t one = 1;
		if (write(h->stop_fd, &one, sizeof(one)) < 0)
			pr_err("API: cannot stop the API thread: %s", strerror(errno));
		pthread_join(h->thread, NULL);
	}
	if (h->daemon) {
		MHD_stop_daemon(h->daemon); /* closes the listening socket */
		h->listen_fd = -1;
	}
	close_fd(&h->listen_fd);
	if (h->path)
		usock_remove(h->path, &h->made);
	close_fd(&h->stop_fd);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->path);
	free(h);
}
