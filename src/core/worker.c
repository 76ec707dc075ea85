#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conclave/loop.h"
#include "conclave/pool.h"
#include "conclave/worker.h"

struct cv_worker {
	unsigned index;
	struct cv_workers *owner;
	struct cv_loop *loop;
	struct cv_queue *queue;
	struct cv_pool *pool;
	pthread_t thread;
	bool running;
	void *data;
};

struct cv_workers {
	struct cv_workers_config cfg;
	unsigned count;
	struct cv_worker *w;
};

static _Thread_local struct cv_worker *current_worker;

static void worker_free_parts(struct cv_worker *w)
{
	cv_queue_destroy(w->queue);
	cv_pool_destroy(w->pool);
	cv_loop_destroy(w->loop);
}

static int worker_init(struct cv_worker *w, struct cv_workers *ws, unsigned i)
{
	w->index = i;
	w->owner = ws;
	int err = cv_loop_create(&w->loop);
	if (!err)
		err = cv_queue_create(&w->queue, w->loop, ws->cfg.queue_items);
	if (!err)
		err = cv_pool_create(&w->pool, ws->cfg.pool_packets);
	if (err)
		worker_free_parts(w);
	return err;
}

int cv_workers_create(struct cv_workers **out,
		      const struct cv_workers_config *cfg)
{
	struct cv_workers *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	ws->cfg = *cfg;
	if (ws->cfg.count == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		ws->cfg.count = n > 0 ? (unsigned)n : 1;
	}
	if (ws->cfg.pool_packets == 0)
		ws->cfg.pool_packets = 8192;
	if (ws->cfg.queue_items == 0)
		ws->cfg.queue_items = 65536;
	ws->w = calloc(ws->cfg.count, sizeof(*ws->w));
	if (!ws->w) {
		free(ws);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ws->cfg.count; i++) {
		int err = worker_init(&ws->w[i], ws, i);
		if (err) {
			ws->count = i;
			cv_workers_destroy(ws);
			return err;
		}
	}
	ws->count = ws->cfg.count;
	*out = ws;
	return 0;
}

static void *worker_main(void *arg)
{
	struct cv_worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "cv-worker-%u", w->index);
	pthread_setname_np(pthread_self(), name);
	current_worker = w;
	if (w->owner->cfg.on_start)
		w->owner->cfg.on_start(w, w->owner->cfg.hook_arg);
	cv_loop_run(w->loop);
	if (w->owner->cfg.on_stop)
		w->owner->cfg.on_stop(w, w->owner->cfg.hook_arg);
	current_worker = NULL;
	return NULL;
}

int cv_workers_start(struct cv_workers *ws)
{
	for (unsigned i = 0; i < ws->count; i++) {
		struct cv_worker *w = &ws->w[i];
		int err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err) {
			cv_workers_stop(ws);
			return -err;
		}
		w->running = true;
	}
	return 0;
}

static void stop_cmd(void *arg)
{
	struct cv_worker *w = arg;
	cv_loop_stop(w->loop);
}

void cv_workers_stop(struct cv_workers *ws)
{
	for (unsigned i = 0; i < ws->count; i++) {
		struct cv_worker *w = &ws->w[i];
		if (!w->running)
			continue;
		/* Retry while full: stopping must not be lost. */
		while (cv_queue_post(w->queue, stop_cmd, w) == -EAGAIN)
			usleep(1000);
	}
	for (unsigned i = 0; i < ws->count; i++) {
		struct cv_worker *w = &ws->w[i];
		if (!w->running)
			continue;
		pthread_join(w->thread, NULL);
		w->running = false;
	}
}

void cv_workers_destroy(struct cv_workers *ws)
{
	if (!ws)
		return;
	for (unsigned i = 0; i < ws->count; i++)
		worker_free_parts(&ws->w[i]);
	free(ws->w);
	free(ws);
}

unsigned cv_workers_count(const struct cv_workers *ws)
{
	return ws->count;
}

struct cv_worker *cv_workers_get(struct cv_workers *ws, unsigned index)
{
	return index < ws->count ? &ws->w[index] : NULL;
}

unsigned cv_worker_index(const struct cv_worker *w)
{
	return w->index;
}

struct cv_loop *cv_worker_loop(struct cv_worker *w)
{
	return w->loop;
}

struct cv_pool *cv_worker_pool(struct cv_worker *w)
{
	return w->pool;
}

int cv_worker_post(struct cv_worker *w, cv_cmd_fn fn, void *arg)
{
	return cv_queue_post(w->queue, fn, arg);
}

void cv_worker_set_data(struct cv_worker *w, void *data)
{
	w->data = data;
}

void *cv_worker_data(struct cv_worker *w)
{
	return w->data;
}

struct cv_worker *cv_worker_current(void)
{
	return current_worker;
}
