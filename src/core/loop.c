#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conclave/clock.h"
#include "conclave/loop.h"

#define LOOP_MAX_EVENTS 64

struct cv_loop {
	int epfd;
	bool stopping;
	uint64_t now_us;
	struct cv_timer **heap; /* min-heap on due_ms */
	size_t heap_len;
	size_t heap_cap;
};

int cv_loop_create(struct cv_loop **out)
{
	struct cv_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;
		free(loop);
		return err;
	}
	loop->now_us = cv_clock_now_us();
	*out = loop;
	return 0;
}

void cv_loop_destroy(struct cv_loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->heap_len; i++)
		loop->heap[i]->heap_index = SIZE_MAX;
	free(loop->heap);
	close(loop->epfd);
	free(loop);
}

int cv_loop_add_io(struct cv_loop *loop, struct cv_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) != 0)
		return -errno;
	return 0;
}

int cv_loop_mod_io(struct cv_loop *loop, struct cv_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
		return -errno;
	return 0;
}

void cv_loop_del_io(struct cv_loop *loop, struct cv_io *io)
{
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timer heap ---- */

static void heap_set(struct cv_loop *loop, size_t i, struct cv_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(struct cv_loop *loop, size_t i)
{
	struct cv_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->due_ms <= t->due_ms)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_down(struct cv_loop *loop, size_t i)
{
	struct cv_timer *t = loop->heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    loop->heap[child + 1]->due_ms < loop->heap[child]->due_ms)
			child++;
		if (t->due_ms <= loop->heap[child]->due_ms)
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

void cv_timer_init(struct cv_timer *t, cv_timer_fn fn, void *arg)
{
	t->due_ms = 0;
	t->fn = fn;
	t->arg = arg;
	t->heap_index = SIZE_MAX;
}

void cv_timer_stop(struct cv_loop *loop, struct cv_timer *t)
{
	size_t i = t->heap_index;
	if (i == SIZE_MAX)
		return;
	t->heap_index = SIZE_MAX;
	loop->heap_len--;
	if (i == loop->heap_len)
		return;
	struct cv_timer *moved = loop->heap[loop->heap_len];
	heap_set(loop, i, moved);
	heap_down(loop, i);
	heap_up(loop, moved->heap_index);
}

int cv_timer_start(struct cv_loop *loop, struct cv_timer *t, uint64_t due_ms)
{
	cv_timer_stop(loop, t);
	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct cv_timer **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	t->due_ms = due_ms;
	heap_set(loop, loop->heap_len++, t);
	heap_up(loop, t->heap_index);
	return 0;
}

uint64_t cv_loop_now_ms(const struct cv_loop *loop)
{
	return loop->now_us / 1000;
}

uint64_t cv_loop_now_us(const struct cv_loop *loop)
{
	return loop->now_us;
}

static void run_due_timers(struct cv_loop *loop)
{
	uint64_t now_ms = loop->now_us / 1000;
	while (loop->heap_len > 0 && loop->heap[0]->due_ms <= now_ms) {
		struct cv_timer *t = loop->heap[0];
		cv_timer_stop(loop, t);
		t->fn(t->arg); /* may re-arm t */
	}
}

static int next_wait_ms(const struct cv_loop *loop, int max_wait_ms)
{
	if (loop->heap_len == 0)
		return max_wait_ms;
	uint64_t now_ms = loop->now_us / 1000;
	uint64_t due = loop->heap[0]->due_ms;
	int wait = due <= now_ms
			   ? 0
			   : (int)(due - now_ms > 60000 ? 60000 : due - now_ms);
	if (max_wait_ms >= 0 && max_wait_ms < wait)
		wait = max_wait_ms;
	return wait;
}

int cv_loop_run_once(struct cv_loop *loop, int max_wait_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];

	loop->now_us = cv_clock_now_us();
	run_due_timers(loop);
	int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS,
			   next_wait_ms(loop, max_wait_ms));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->now_us = cv_clock_now_us();
	for (int i = 0; i < n; i++) {
		struct cv_io *io = evs[i].data.ptr;
		io->fn(io->arg, evs[i].events);
	}
	return 0;
}

int cv_loop_run(struct cv_loop *loop)
{
	loop->stopping = false;
	while (!loop->stopping) {
		int err = cv_loop_run_once(loop, -1);
		if (err < 0)
			return err;
	}
	return 0;
}

void cv_loop_stop(struct cv_loop *loop)
{
	loop->stopping = true;
}
