#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "media/switch/addr_map.h"

static bool make_key(const struct sockaddr_storage *a, struct cv_addr_key *k)
{
	memset(k, 0, sizeof(*k));
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)a;
		memcpy(k->addr, &v4->sin_addr, 4);
		k->port = v4->sin_port;
		k->family = 4;
		return true;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)a;
		memcpy(k->addr, &v6->sin6_addr, 16);
		k->port = v6->sin6_port;
		k->family = 6;
		return true;
	}
	return false;
}

/* FNV-1a over the key's bytes, then a final mix for the low bits. */
static size_t hash_key(const struct cv_addr_key *k)
{
	uint64_t h = 1469598103934665603ull;
	const uint8_t *p = k->addr;
	size_t n = k->family == 4 ? 4 : 16;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	h = (h ^ k->port) * 1099511628211ull;
	h ^= h >> 29;
	return (size_t)h;
}

static bool same(const struct cv_addr_key *a, const struct cv_addr_key *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

int cv_addr_map_init(struct cv_addr_map *m, size_t initial_cap)
{
	size_t cap = 16;
	while (cap < initial_cap)
		cap <<= 1;
	memset(m, 0, sizeof(*m));
	m->keys = calloc(cap, sizeof(*m->keys));
	m->values = calloc(cap, sizeof(*m->values));
	if (!m->keys || !m->values) {
		cv_addr_map_fini(m);
		return -ENOMEM;
	}
	m->cap = cap;
	return 0;
}

void cv_addr_map_fini(struct cv_addr_map *m)
{
	free(m->keys);
	free(m->values);
	memset(m, 0, sizeof(*m));
}

/* The slot holding k, or SIZE_MAX. */
static size_t find(const struct cv_addr_map *m, const struct cv_addr_key *k)
{
	size_t mask = m->cap - 1;
	for (size_t i = hash_key(k) & mask, n = 0; n < m->cap;
	     i = (i + 1) & mask, n++) {
		const struct cv_addr_key *s = &m->keys[i];
		if (s->family == 0 && !s->tomb)
			return SIZE_MAX;
		if (!s->tomb && same(s, k))
			return i;
	}
	return SIZE_MAX;
}

static int rehash(struct cv_addr_map *m, size_t cap)
{
	struct cv_addr_map bigger;
	int err = cv_addr_map_init(&bigger, cap);
	if (err)
		return err;
	size_t mask = bigger.cap - 1;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i].family == 0 || m->keys[i].tomb)
			continue;
		size_t j = hash_key(&m->keys[i]) & mask;
		while (bigger.keys[j].family)
			j = (j + 1) & mask;
		bigger.keys[j] = m->keys[i];
		bigger.values[j] = m->values[i];
		bigger.used++;
		bigger.live++;
	}
	cv_addr_map_fini(m);
	*m = bigger;
	return 0;
}

int cv_addr_map_put(struct cv_addr_map *m, const struct sockaddr_storage *addr,
		    void *value)
{
	struct cv_addr_key k;
	if (!make_key(addr, &k))
		return -EAFNOSUPPORT;
	size_t at = find(m, &k);
	if (at != SIZE_MAX) {
		m->values[at] = value;
		return 0;
	}
	/* Keep the load (tombstones included) under a half: rebuild without
	 * tombstones, twice as large when live entries fill a quarter. */
	if (2 * (m->used + 1) > m->cap) {
		size_t cap = 4 * (m->live + 1) > m->cap ? m->cap * 2 : m->cap;
		int err = rehash(m, cap);
		if (err)
			return err;
	}
	size_t mask = m->cap - 1;
	size_t i = hash_key(&k) & mask;
	while (m->keys[i].family && !m->keys[i].tomb)
		i = (i + 1) & mask;
	if (!m->keys[i].tomb)
		m->used++;
	m->keys[i] = k;
	m->values[i] = value;
	m->live++;
	return 0;
}

void *cv_addr_map_get(const struct cv_addr_map *m,
		      const struct sockaddr_storage *addr)
{
	struct cv_addr_key k;
	if (!make_key(addr, &k))
		return NULL;
	size_t at = find(m, &k);
	return at == SIZE_MAX ? NULL : m->values[at];
}

void cv_addr_map_del(struct cv_addr_map *m, const struct sockaddr_storage *addr,
		     const void *value)
{
	struct cv_addr_key k;
	if (!make_key(addr, &k))
		return;
	size_t at = find(m, &k);
	if (at == SIZE_MAX || (value && m->values[at] != value))
		return;
	m->keys[at].tomb = 1;
	m->values[at] = NULL;
	m->live--;
}
