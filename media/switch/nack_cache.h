/*
 * A per-track retransmission cache: the last N packets of a publisher's
 * stream by sequence number, in storage allocated once at creation, so
 * that a subscriber's NACK (RFC 4585 6.2.1) is answered by the node without
 * asking the publisher.
 *
 * One cache belongs to one worker thread.
 */
#ifndef CONCLAVE_NACK_CACHE_H
#define CONCLAVE_NACK_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cv_nack_cache;

/* Largest packet kept; longer ones are not cached. */
#define CV_NACK_CACHE_MAX_PACKET 1500

/*
 * Creates a cache of `slots` packets (rounded up to a power of two, at most
 * 4096). Returns 0, -EINVAL, -ENOMEM. Thread: any; then the worker's.
 */
int cv_nack_cache_create(struct cv_nack_cache **out, size_t slots);
void cv_nack_cache_destroy(struct cv_nack_cache *c);

/* Stores a copy of pkt[0..len) (plaintext RTP) under seq, replacing what
 * was there; packets over CV_NACK_CACHE_MAX_PACKET are skipped. */
void cv_nack_cache_put(struct cv_nack_cache *c, uint16_t seq,
		       const uint8_t *pkt, size_t len, uint64_t now_ms);

/*
 * Finds the packet stored under seq if it is still there and younger than
 * max_age_ms. *pkt borrows the cache's copy until the next put. Returns 0
 * or -ENOENT.
 */
int cv_nack_cache_get(const struct cv_nack_cache *c, uint16_t seq,
		      uint64_t now_ms, uint64_t max_age_ms, const uint8_t **pkt,
		      size_t *len);

#endif
