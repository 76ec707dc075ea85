#include <errno.h>
#include <stdlib.h>

#include "conclave/pool.h"

struct cv_pool {
	struct cv_pkt *packets; /* one allocation for all of them */
	struct cv_pkt *free_list;
	size_t capacity;
	size_t in_use;
	uint64_t exhausted;
};

int cv_pool_create(struct cv_pool **out, size_t count)
{
	if (count == 0)
		return -EINVAL;
	struct cv_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->packets = calloc(count, sizeof(*pool->packets));
	if (!pool->packets) {
		free(pool);
		return -ENOMEM;
	}
	pool->capacity = count;
	for (size_t i = count; i-- > 0;) {
		struct cv_pkt *p = &pool->packets[i];
		p->pool = pool;
		p->next = pool->free_list;
		pool->free_list = p;
	}
	*out = pool;
	return 0;
}

void cv_pool_destroy(struct cv_pool *pool)
{
	if (!pool)
		return;
	free(pool->packets);
	free(pool);
}

struct cv_pkt *cv_pkt_alloc(struct cv_pool *pool)
{
	struct cv_pkt *p = pool->free_list;
	if (!p) {
		pool->exhausted++;
		return NULL;
	}
	pool->free_list = p->next;
	pool->in_use++;
	p->next = NULL;
	p->data = p->storage + CV_PKT_HEADROOM;
	p->len = 0;
	p->addr_len = 0;
	p->arrival_us = 0;
	return p;
}

void cv_pkt_free(struct cv_pkt *pkt)
{
	if (!pkt)
		return;
	struct cv_pool *pool = pkt->pool;
	pkt->next = pool->free_list;
	pool->free_list = pkt;
	pool->in_use--;
}

void cv_pool_stats(const struct cv_pool *pool, struct cv_pool_stats *out)
{
	out->capacity = pool->capacity;
	out->in_use = pool->in_use;
	out->exhausted = pool->exhausted;
}
