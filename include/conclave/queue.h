/*
 * Command queues: the only way work crosses threads. Any thread posts a
 * command (a function and its argument); the queue's loop runs it on its
 * own thread, woken by an eventfd.
 *
 * The queue takes a lock only on post and drain, never on the packet path.
 */
#ifndef CONCLAVE_QUEUE_H
#define CONCLAVE_QUEUE_H

#include <stddef.h>

struct cv_loop;
struct cv_queue;

/* Runs on the queue's loop thread; takes ownership of arg. */
typedef void (*cv_cmd_fn)(void *arg);

/*
 * Creates a queue served by `loop` holding at most max_items pending
 * commands. Thread: the loop's.
 */
int cv_queue_create(struct cv_queue **out, struct cv_loop *loop,
		    size_t max_items);

/*
 * Runs every pending command (so that their arguments are released), then
 * frees the queue. Thread: the loop's, after no other thread posts.
 */
void cv_queue_destroy(struct cv_queue *q);

/*
 * Posts fn(arg) to run on the queue's thread. Thread: any.
 * Returns 0, -EAGAIN when the queue is full, -ENOMEM; on error fn is not
 * run and arg stays the caller's.
 */
int cv_queue_post(struct cv_queue *q, cv_cmd_fn fn, void *arg);

#endif
