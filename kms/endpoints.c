/*
 * The registered perc endpoints: a hash table over association ids with a
 * least-recently-used list (oldest first), both under one mutex. See
 * kms/endpoints.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "conclave/clock.h"
#include "kms/endpoints.h"

#define BUCKETS 16384

struct entry {
	struct cv_tunnel_assoc_id assoc;
	struct cv_kms_endpoint ep;
	uint64_t used_ms;
	struct entry *chain;	   /* same bucket */
	struct entry *prev, *next; /* LRU: head = least recently used */
};

struct cv_kms_endpoints {
	pthread_mutex_t lock;
	size_t max, n;
	uint64_t ttl_ms;
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	uint8_t hash_key[16]; /* ids are chosen by others: keyed buckets */
	struct entry *head, *tail;
	struct entry *buckets[BUCKETS];
};

static uint64_t now(struct cv_kms_endpoints *e)
{
	return e->now_ms ? e->now_ms(e->clock_arg) : cv_clock_now_ms();
}

static size_t bucket(const struct cv_kms_endpoints *e,
		     const struct cv_tunnel_assoc_id *a)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a over key || id */
	for (size_t i = 0; i < sizeof(e->hash_key); i++)
		h = (h ^ e->hash_key[i]) * 1099511628211ull;
	for (size_t i = 0; i < sizeof(a->b); i++)
		h = (h ^ a->b[i]) * 1099511628211ull;
	return (size_t)(h % BUCKETS);
}

static struct entry *find(struct cv_kms_endpoints *e,
			  const struct cv_tunnel_assoc_id *a)
{
	struct entry *x = e->buckets[bucket(e, a)];
	while (x && memcmp(x->assoc.b, a->b, sizeof(a->b)) != 0)
		x = x->chain;
	return x;
}

static void lru_unlink(struct cv_kms_endpoints *e, struct entry *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		e->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		e->tail = x->prev;
	x->prev = x->next = NULL;
}

static void lru_append(struct cv_kms_endpoints *e, struct entry *x)
{
	x->prev = e->tail;
	x->next = NULL;
	if (e->tail)
		e->tail->next = x;
	else
		e->head = x;
	e->tail = x;
}

static void drop(struct cv_kms_endpoints *e, struct entry *x)
{
	struct entry **pp = &e->buckets[bucket(e, &x->assoc)];
	while (*pp && *pp != x)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = x->chain;
	lru_unlink(e, x);
	e->n--;
	free(x);
}

/* Entries are in last-use order: the expired ones are at the head. */
static void expire(struct cv_kms_endpoints *e, uint64_t t)
{
	while (e->head && e->head->used_ms + e->ttl_ms <= t)
		drop(e, e->head);
}

static void touch(struct cv_kms_endpoints *e, struct entry *x, uint64_t t)
{
	x->used_ms = t;
	lru_unlink(e, x);
	lru_append(e, x);
}

int cv_kms_endpoints_create(struct cv_kms_endpoints **out, size_t max,
			    uint64_t ttl_ms, uint64_t (*now_ms)(void *arg),
			    void *clock_arg)
{
	if (!out)
		return -EINVAL;
	struct cv_kms_endpoints *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	if (RAND_bytes(e->hash_key, sizeof(e->hash_key)) != 1) {
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->max = max ? max : CV_KMS_ENDPOINTS_MAX_DEFAULT;
	e->ttl_ms = ttl_ms ? ttl_ms : CV_KMS_ENDPOINTS_TTL_DEFAULT;
	e->now_ms = now_ms;
	e->clock_arg = clock_arg;
	*out = e;
	return 0;
}

void cv_kms_endpoints_destroy(struct cv_kms_endpoints *e)
{
	if (!e)
		return;
	while (e->head)
		drop(e, e->head);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

int cv_kms_endpoints_register(struct cv_kms_endpoints *e,
			      const struct cv_tunnel_assoc_id *assoc,
			      const struct cv_dtls_fingerprint *fp,
			      const char *room, const char *actor)
{
	if (!e || !assoc || !fp || fp->hash != CV_DTLS_HASH_SHA256 ||
	    fp->len != 32 || !room || !actor || strlen(room) > CV_KMS_URI_MAX ||
	    strlen(actor) > CV_KMS_ID_MAX)
		return -EINVAL;
	int err = 0;
	pthread_mutex_lock(&e->lock);
	uint64_t t = now(e);
	expire(e, t);
	struct entry *x = find(e, assoc);
	if (x) {
		if (strcmp(x->ep.room, room) != 0 ||
		    strcmp(x->ep.actor, actor) != 0) {
			err = -EEXIST;
		} else {
			x->ep.fp = *fp;
			touch(e, x, t);
		}
		goto out;
	}
	if (e->n >= e->max)
		drop(e, e->head);
	x = calloc(1, sizeof(*x));
	if (!x) {
		err = -ENOMEM;
		goto out;
	}
	x->assoc = *assoc;
	x->ep.fp = *fp;
	snprintf(x->ep.room, sizeof(x->ep.room), "%s", room);
	snprintf(x->ep.actor, sizeof(x->ep.actor), "%s", actor);
	x->used_ms = t;
	size_t b = bucket(e, assoc);
	x->chain = e->buckets[b];
	e->buckets[b] = x;
	lru_append(e, x);
	e->n++;
out:
	pthread_mutex_unlock(&e->lock);
	return err;
}

int cv_kms_endpoints_lookup(struct cv_kms_endpoints *e,
			    const struct cv_tunnel_assoc_id *assoc,
			    struct cv_kms_endpoint *out)
{
	if (!e || !assoc)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	uint64_t t = now(e);
	expire(e, t);
	struct entry *x = find(e, assoc);
	if (x) {
		touch(e, x, t);
		if (out)
			*out = x->ep;
	}
	pthread_mutex_unlock(&e->lock);
	return x ? 0 : -ENOENT;
}

size_t cv_kms_endpoints_forget(struct cv_kms_endpoints *e, const char *room,
			       const char *actor)
{
	if (!e || !room || !actor)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&e->lock);
	for (struct entry *x = e->head, *next; x; x = next) {
		next = x->next;
		if (!strcmp(x->ep.room, room) && !strcmp(x->ep.actor, actor)) {
			drop(e, x);
			n++;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

size_t cv_kms_endpoints_count(struct cv_kms_endpoints *e)
{
	if (!e)
		return 0;
	pthread_mutex_lock(&e->lock);
	expire(e, now(e));
	size_t n = e->n;
	pthread_mutex_unlock(&e->lock);
	return n;
}
