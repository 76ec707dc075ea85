#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conclave/loop.h"
#include "conclave/queue.h"

struct cmd {
	cv_cmd_fn fn;
	void *arg;
	struct cmd *next;
};

struct cv_queue {
	struct cv_loop *loop;
	struct cv_io io;      /* the eventfd */
	pthread_mutex_t lock; /* guards head, tail, count */
	struct cmd *head, *tail;
	size_t count;
	size_t max_items;
};

static struct cmd *take_all(struct cv_queue *q)
{
	pthread_mutex_lock(&q->lock);
	struct cmd *list = q->head;
	q->head = q->tail = NULL;
	q->count = 0;
	pthread_mutex_unlock(&q->lock);
	return list;
}

static void run_all(struct cmd *list)
{
	while (list) {
		struct cmd *next = list->next;
		list->fn(list->arg);
		free(list);
		list = next;
	}
}

static void on_wakeup(void *arg, uint32_t events)
{
	struct cv_queue *q = arg;
	uint64_t v;
	(void)events;
	if (read(q->io.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	run_all(take_all(q));
}

int cv_queue_create(struct cv_queue **out, struct cv_loop *loop,
		    size_t max_items)
{
	struct cv_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->loop = loop;
	q->max_items = max_items;
	pthread_mutex_init(&q->lock, NULL);
	q->io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->io.fn = on_wakeup;
	q->io.arg = q;
	int err = q->io.fd < 0 ? -errno : 0;
	if (!err)
		err = cv_loop_add_io(loop, &q->io, EPOLLIN);
	if (err) {
		if (q->io.fd >= 0)
			close(q->io.fd);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

void cv_queue_destroy(struct cv_queue *q)
{
	if (!q)
		return;
	run_all(take_all(q));
	cv_loop_del_io(q->loop, &q->io);
	close(q->io.fd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int cv_queue_post(struct cv_queue *q, cv_cmd_fn fn, void *arg)
{
	struct cmd *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	c->next = NULL;

	pthread_mutex_lock(&q->lock);
	if (q->count >= q->max_items) {
		pthread_mutex_unlock(&q->lock);
		free(c);
		return -EAGAIN;
	}
	bool was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->count++;
	pthread_mutex_unlock(&q->lock);

	/* One wake-up per batch: a non-empty queue already has one pending. */
	if (was_empty) {
		uint64_t one = 1;
		if (write(q->io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			return 0; /* the command is queued; it runs on the next
				     wake */
	}
	return 0;
}
