/*
 * Per-worker packet pools: fixed-size buffers with named headroom and
 * tailroom, so that the packet path never calls malloc.
 *
 * A pool belongs to one worker thread and is not locked: allocate and free
 * only on that thread.
 */
#ifndef CONCLAVE_POOL_H
#define CONCLAVE_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bytes of storage per packet: a full-size UDP datagram on a 1500 MTU link
 * plus room for SRTP trailers and, in perc rooms, the OHB and inner tag. */
#define CV_PKT_STORAGE 2048
/* Headroom kept in front of received data (header growth on rewrite). */
#define CV_PKT_HEADROOM 64
/* Largest datagram we accept or send. */
#define CV_PKT_MAX_DATAGRAM (CV_PKT_STORAGE - CV_PKT_HEADROOM - 128)

struct cv_pool;

struct cv_pkt {
	uint8_t *data; /* first byte of the packet */
	size_t len;    /* bytes from data */
	uint64_t arrival_us;
	struct sockaddr_storage
		addr; /* source on receive, destination on send */
	socklen_t addr_len;
	struct cv_pkt *next; /* free list / queue link, owner's to use */
	struct cv_pool *pool;
	uint8_t storage[CV_PKT_STORAGE];
};

/* Bytes available after data + len (the tailroom for SRTP tags). */
static inline size_t cv_pkt_tailroom(const struct cv_pkt *p)
{
	return (size_t)(p->storage + CV_PKT_STORAGE - (p->data + p->len));
}

/* Capacity from data to the end of storage. */
static inline size_t cv_pkt_cap(const struct cv_pkt *p)
{
	return (size_t)(p->storage + CV_PKT_STORAGE - p->data);
}

/*
 * Creates a pool of `count` packets, allocated once. Returns 0 or -ENOMEM;
 * *out is written only on success.
 */
int cv_pool_create(struct cv_pool **out, size_t count);

/* Frees the pool; every packet must have been returned. NULL is fine. */
void cv_pool_destroy(struct cv_pool *pool);

/*
 * Takes a packet (data at headroom, len 0), or NULL when the pool is empty
 * (counted in cv_pool_stats). Thread: the pool's owner.
 */
struct cv_pkt *cv_pkt_alloc(struct cv_pool *pool);

/* Returns a packet to its pool. NULL is fine. Thread: the pool's owner. */
void cv_pkt_free(struct cv_pkt *pkt);

struct cv_pool_stats {
	size_t capacity;
	size_t in_use;
	uint64_t exhausted; /* allocations refused */
};

void cv_pool_stats(const struct cv_pool *pool, struct cv_pool_stats *out);

#endif
