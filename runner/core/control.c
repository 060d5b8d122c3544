#include "core/control.h"

#include <stdio.h>

void control_init(struct control *c, void (*kick)(void *ctx), void *kick_ctx)
{
	atomic_init(&c->reason, STOP_NONE);
	c->value = 0;
	c->msg[0] = '\0';
	c->kick = kick;
	c->kick_ctx = kick_ctx;
	pthread_mutex_init(&c->lock, NULL);
}

bool control_request_stop(struct control *c, enum stop_reason r, int value, const char *fmt, ...)
{
	pthread_mutex_lock(&c->lock);
	if (atomic_load(&c->reason) != STOP_NONE) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	c->value = value;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
		va_end(ap);
	}
	atomic_store_explicit(&c->reason, r, memory_order_release);
	pthread_mutex_unlock(&c->lock);
	if (c->kick)
		c->kick(c->kick_ctx);
	return true;
}
