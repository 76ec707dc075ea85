/*
 * One event loop per thread: epoll for file descriptors, a min-heap of
 * timers, and a monotonic time read once per iteration.
 *
 * Everything here is used by the loop's own thread only; other threads
 * reach a loop through a struct cv_queue (queue.h).
 */
#ifndef CONCLAVE_LOOP_H
#define CONCLAVE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_loop;

/* Called with the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLERR...). */
typedef void (*cv_io_fn)(void *arg, uint32_t events);
typedef void (*cv_timer_fn)(void *arg);

/* A watched descriptor; embedded in its owner, borrowed by the loop. */
struct cv_io {
	int fd;
	cv_io_fn fn;
	void *arg;
};

/* A timer; embedded in its owner, borrowed by the loop while armed. */
struct cv_timer {
	uint64_t due_ms;
	cv_timer_fn fn;
	void *arg;
	size_t heap_index; /* SIZE_MAX when not armed */
};

int cv_loop_create(struct cv_loop **out);

/* Destroys the loop; descriptors are not closed, timers are disarmed. */
void cv_loop_destroy(struct cv_loop *loop);

/* Watches io->fd for `events` (EPOLLIN...). Returns 0 or -errno. */
int cv_loop_add_io(struct cv_loop *loop, struct cv_io *io, uint32_t events);
int cv_loop_mod_io(struct cv_loop *loop, struct cv_io *io, uint32_t events);
void cv_loop_del_io(struct cv_loop *loop, struct cv_io *io);

void cv_timer_init(struct cv_timer *t, cv_timer_fn fn, void *arg);
/* Arms (or re-arms) t to fire at due_ms on the loop's clock. */
int cv_timer_start(struct cv_loop *loop, struct cv_timer *t, uint64_t due_ms);
/* Disarms t; harmless when not armed. */
void cv_timer_stop(struct cv_loop *loop, struct cv_timer *t);

static inline bool cv_timer_armed(const struct cv_timer *t)
{
	return t->heap_index != SIZE_MAX;
}

/* The time read at the start of this iteration, in ms / us. */
uint64_t cv_loop_now_ms(const struct cv_loop *loop);
uint64_t cv_loop_now_us(const struct cv_loop *loop);

/*
 * Runs until cv_loop_stop() is called from a callback on this loop.
 * Returns 0, or -errno if epoll failed.
 */
int cv_loop_run(struct cv_loop *loop);

/* Makes cv_loop_run return after the current iteration. Loop thread only. */
void cv_loop_stop(struct cv_loop *loop);

/*
 * Runs one iteration: due timers, then ready descriptors, waiting at most
 * max_wait_ms (-1: until the next timer). Useful in tests.
 */
int cv_loop_run_once(struct cv_loop *loop, int max_wait_ms);

#endif
