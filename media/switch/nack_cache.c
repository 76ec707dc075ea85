#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "media/switch/nack_cache.h"

struct slot {
	uint64_t stored_ms;
	uint16_t seq;
	uint16_t len; /* 0: empty */
	uint8_t data[CV_NACK_CACHE_MAX_PACKET];
};

struct cv_nack_cache {
	size_t mask;
	struct slot slots[];
};

int cv_nack_cache_create(struct cv_nack_cache **out, size_t slots)
{
	if (slots == 0 || slots > 4096)
		return -EINVAL;
	size_t n = 1;
	while (n < slots)
		n <<= 1;
	struct cv_nack_cache *c =
		calloc(1, sizeof(*c) + n * sizeof(struct slot));
	if (!c)
		return -ENOMEM;
	c->mask = n - 1;
	*out = c;
	return 0;
}

void cv_nack_cache_destroy(struct cv_nack_cache *c)
{
	free(c);
}

void cv_nack_cache_put(struct cv_nack_cache *c, uint16_t seq,
		       const uint8_t *pkt, size_t len, uint64_t now_ms)
{
	struct slot *s = &c->slots[seq & c->mask];
	if (len == 0 || len > CV_NACK_CACHE_MAX_PACKET) {
		s->len = 0;
		return;
	}
	memcpy(s->data, pkt, len);
	s->len = (uint16_t)len;
	s->seq = seq;
	s->stored_ms = now_ms;
}

int cv_nack_cache_get(const struct cv_nack_cache *c, uint16_t seq,
		      uint64_t now_ms, uint64_t max_age_ms, const uint8_t **pkt,
		      size_t *len)
{
	const struct slot *s = &c->slots[seq & c->mask];
	if (s->len == 0 || s->seq != seq || now_ms - s->stored_ms > max_age_ms)
		return -ENOENT;
	*pkt = s->data;
	*len = s->len;
	return 0;
}
