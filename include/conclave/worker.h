/*
 * Media workers: N threads, each running one struct cv_loop with a command
 * queue and a packet pool. A worker owns whole rooms for their lifetime, so
 * nothing a room touches on the packet path is shared or locked.
 */
#ifndef CONCLAVE_WORKER_H
#define CONCLAVE_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "conclave/queue.h"

struct cv_loop;
struct cv_pool;
struct cv_worker;
struct cv_workers;

/* Called on the worker's thread right after it starts / before it exits. */
typedef void (*cv_worker_hook_fn)(struct cv_worker *w, void *arg);

struct cv_workers_config {
	unsigned count;		    /* 0: one per online core */
	size_t pool_packets;	    /* packets per worker pool */
	size_t queue_items;	    /* ceiling of each command queue */
	cv_worker_hook_fn on_start; /* may be NULL */
	cv_worker_hook_fn on_stop;  /* may be NULL */
	void *hook_arg;
};

/* Creates the workers (threads not started yet). Thread: control. */
int cv_workers_create(struct cv_workers **out,
		      const struct cv_workers_config *cfg);

/* Starts every thread; on_start runs on each before its loop. */
int cv_workers_start(struct cv_workers *ws);

/*
 * Stops every loop (after the commands already queued) and joins the
 * threads; on_stop runs on each. Thread: control.
 */
void cv_workers_stop(struct cv_workers *ws);

/* Frees stopped workers. NULL is fine. */
void cv_workers_destroy(struct cv_workers *ws);

unsigned cv_workers_count(const struct cv_workers *ws);
struct cv_worker *cv_workers_get(struct cv_workers *ws, unsigned index);

unsigned cv_worker_index(const struct cv_worker *w);
struct cv_loop *cv_worker_loop(struct cv_worker *w);
struct cv_pool *cv_worker_pool(struct cv_worker *w);

/* Posts fn(arg) to the worker's thread. Thread: any. See cv_queue_post. */
int cv_worker_post(struct cv_worker *w, cv_cmd_fn fn, void *arg);

/* A per-worker slot for the layer above (the switch). Thread: the worker's,
 * or control before start. */
void cv_worker_set_data(struct cv_worker *w, void *data);
void *cv_worker_data(struct cv_worker *w);

/* The worker whose thread is calling, or NULL on other threads. */
struct cv_worker *cv_worker_current(void);

#endif
