/*
 * The endpoints registered for perc associations (docs/kms.md,
 * "REGISTER_ENDPOINT"): RFC 9185 carries no endpoint certificate, so an
 * endpoint tells the KMS over the client-KMS channel which certificate it
 * will present for the association id the node gave it. The channel adds
 * entries (a member of the room only); the Key Distributor looks them up
 * when a node tunnels that association's ClientHello.
 *
 * In memory only: association id -> (SHA-256 fingerprint, room, actor).
 * Bounded (the least recently used entry is dropped when full) and
 * expiring (an entry neither registered nor looked up for ttl_ms is gone).
 * The first registration binds an id to its room and actor: the same
 * actor in the same room may register it again (a new certificate), any
 * other registration of that id is refused.
 *
 * Thread: any; every call takes the registry's mutex (the channel's
 * thread registers, the Key Distributor's thread looks up).
 */
#ifndef CONCLAVE_KMS_ENDPOINTS_H
#define CONCLAVE_KMS_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/dtls.h"
#include "conclave/tunnel.h"
#include "kms/store.h"

#define CV_KMS_ENDPOINTS_MAX_DEFAULT 65536
#define CV_KMS_ENDPOINTS_TTL_DEFAULT (10 * 60 * 1000ull) /* 10 min */

struct cv_kms_endpoints;

/* What a registration holds (a copy). */
struct cv_kms_endpoint {
	struct cv_dtls_fingerprint fp; /* SHA-256 */
	char room[CV_KMS_URI_MAX + 1];
	char actor[CV_KMS_ID_MAX + 1];
};

/*
 * Creates an empty registry: at most max entries (0 = default), each
 * living ttl_ms after its last use (0 = default). now_ms: a monotonic or
 * wall clock in ms (NULL = cv_clock_now_ms). *out written on success.
 * Returns 0, -EINVAL, -ENOMEM.
 */
int cv_kms_endpoints_create(struct cv_kms_endpoints **out, size_t max,
			    uint64_t ttl_ms, uint64_t (*now_ms)(void *arg),
			    void *clock_arg);

/* Frees every entry. NULL is fine. */
void cv_kms_endpoints_destroy(struct cv_kms_endpoints *e);

/*
 * Registers (or renews) assoc -> fp for actor in room (all borrowed,
 * copied; fp must be SHA-256). Returns 0; -EINVAL; -EEXIST when the id is
 * bound to another room or actor (nothing changed); -ENOMEM.
 */
int cv_kms_endpoints_register(struct cv_kms_endpoints *e,
			      const struct cv_tunnel_assoc_id *assoc,
			      const struct cv_dtls_fingerprint *fp,
			      const char *room, const char *actor);

/*
 * Looks assoc up; on a hit copies the entry to *out (may be NULL), renews
 * it and returns 0; -ENOENT when there is none (or it expired).
 */
int cv_kms_endpoints_lookup(struct cv_kms_endpoints *e,
			    const struct cv_tunnel_assoc_id *assoc,
			    struct cv_kms_endpoint *out);

/* Drops every registration of actor in room (the member was removed).
 * Returns how many went. */
size_t cv_kms_endpoints_forget(struct cv_kms_endpoints *e, const char *room,
			       const char *actor);

/* Live entries (tests). */
size_t cv_kms_endpoints_count(struct cv_kms_endpoints *e);

#endif
