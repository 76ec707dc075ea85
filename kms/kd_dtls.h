/*
 * The Key Distributor's DTLS side (RFC 8871 section 4.5, RFC 9185): for
 * each association id a node tunnels to us, a DTLS-SRTP server (the local
 * implementation of conclave/dtls.h, with the KD's own certificate) fed
 * by the node's TunneledDtls messages and answering through the same
 * cv_kd_link. When the endpoint's handshake completes we derive the double
 * keys (docs/perc.md, "The Key Distributor's DTLS": use_srtp agrees on
 * AEAD_AES_128_GCM or AEAD_AES_256_GCM, HKDF stretches the exporter output
 * to the DOUBLE profile's length) and send the node a MediaKeys message
 * with the outer (hop-by-hop) halves only. The inner halves and the
 * exporter output are wiped at once: they are only ever known to the
 * endpoint's own DTLS session and to this code for the duration of one
 * call.
 *
 * Wiring: the daemon's cv_kd_link callbacks hand every TUNNELED_DTLS and
 * ENDPOINT_DISCONNECT to cv_kd_dtls_handle_message() and every
 * on_node_down to cv_kd_dtls_node_down().
 *
 * Thread: everything on the loop's thread (the cv_kd_link's).
 */
#ifndef CONCLAVE_KMS_KD_DTLS_H
#define CONCLAVE_KMS_KD_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/dtls.h"
#include "conclave/secret.h"
#include "conclave/tunnel.h"

struct cv_loop;
struct cv_kd_link;
struct cv_kd_node;
struct cv_kd_dtls;

/* ---- The double-key rule (shared with client/perc) ---- */

/*
 * The DOUBLE profile's master keys and salts (RFC 8723 section 5.1 as
 * perc-notes reads it): each key is inner || outer (half_key_len octets
 * each), each salt inner(12) || outer(12). "client" is the DTLS client,
 * i.e. the endpoint.
 */
struct cv_kd_double_keys {
	uint16_t profile;    /* CV_TUNNEL_DOUBLE_AEAD_AES_{128,256}_GCM */
	size_t half_key_len; /* 16 or 32 */
	struct cv_secret client_write_key;
	struct cv_secret server_write_key;
	struct cv_secret client_write_salt;
	struct cv_secret server_write_salt;
};

/* The HKDF info prefix; the 2-octet double profile id follows it. */
#define CV_KD_DOUBLE_INFO "CONCLAVE-PERC-DOUBLE-SRTP"

/*
 * Derives the double keys from one DTLS-SRTP association's RFC 5764
 * exporter output (label "EXTRACTOR-dtls_srtp", what on_connected gives):
 *   D = HKDF-SHA256(salt = none, IKM = material,
 *                   info = CV_KD_DOUBLE_INFO || uint16(double profile),
 *                   L = 2 * (2 * K + 24))
 * (D itself: cv_perc_double_material, client/perc/double_material.c, the
 * one implementation the endpoint and the KD share), laid out as RFC 5764
 * section 4.2 with double lengths: client key (2K) | server key (2K) |
 * client salt (24) | server salt (24). srtp_profile_id:
 * the use_srtp profile agreed, CV_DTLS_SRTP_AEAD_AES_128_GCM (-> double
 * 0x0009, K = 16) or _256_GCM (-> 0x000A, K = 32). material: borrowed,
 * material_len must be cv_dtls_srtp_material_len(srtp_profile_id).
 * *out written on success only. Returns 0; -EINVAL; CV_EUNSUPP for another
 * profile; CV_ECRYPTO. Thread: any.
 */
int cv_kd_double_keys_derive(struct cv_kd_double_keys *out,
			     uint16_t srtp_profile_id, const uint8_t *material,
			     size_t material_len);

/* Wipes every key and salt. NULL is fine. */
void cv_kd_double_keys_wipe(struct cv_kd_double_keys *k);

/* ---- Associations ---- */

/*
 * The endpoint certificate(s) acceptable for a new association, looked up
 * by the daemon (RFC 9185 carries none: the endpoint registers its
 * a=fingerprint with the KMS over the client-KMS channel). Writes up to
 * max fingerprints to fps and returns how many (0 or negative: the
 * association is refused and its records dropped). node, assoc: borrowed.
 */
typedef int cv_kd_dtls_fingerprints_fn(void *arg, struct cv_kd_node *node,
				       const struct cv_tunnel_assoc_id *assoc,
				       struct cv_dtls_fingerprint *fps,
				       size_t max);

/*
 * An association ended its handshake: err 0 when MediaKeys went to the
 * node (double_profile says which), else why it failed (dtls.h codes;
 * CV_EUNSUPP when the node did not offer the agreed double profile). For
 * the audit log. May be NULL.
 */
typedef void cv_kd_dtls_done_fn(void *arg, struct cv_kd_node *node,
				const struct cv_tunnel_assoc_id *assoc,
				uint16_t double_profile, int err);

struct cv_kd_dtls_opts {
	/* Most live associations, over all nodes (0 = 4096); more are
	 * refused (their records dropped). */
	size_t max_assocs;
	cv_kd_dtls_fingerprints_fn *fingerprints; /* required */
	cv_kd_dtls_done_fn *on_done;		  /* may be NULL */
	void *arg;
};

/*
 * Creates the KD's DTLS side. loop, link: borrowed, must outlive it.
 * cert: borrowed (a reference is taken): the KD's DTLS certificate, whose
 * fingerprint endpoints pin. opts: borrowed, copied. Our use_srtp list is
 * AEAD_AES_128_GCM, AEAD_AES_256_GCM (the halves of the double profiles).
 * *out written on success only. Returns 0; -EINVAL; -ENOMEM; CV_ECRYPTO.
 */
int cv_kd_dtls_create(struct cv_kd_dtls **out, struct cv_loop *loop,
		      struct cv_kd_link *link, struct cv_dtls_cert *cert,
		      const struct cv_kd_dtls_opts *opts);

/*
 * A TUNNELED_DTLS or ENDPOINT_DISCONNECT from node (both borrowed for the
 * call), as the cv_kd_link on_message gave it. A TunneledDtls for a new
 * association id opens one only if its record is a ClientHello and the
 * fingerprints hook names the endpoint's certificate. Returns 0; -EINVAL;
 * -ENOENT (no such association: dropped); CV_EAUTH (no fingerprint for the
 * association); CV_ETOOBIG (max_assocs reached); CV_EPARSE / CV_EPROTO
 * (the datagram was dropped, dtls.h).
 */
int cv_kd_dtls_handle_message(struct cv_kd_dtls *kd, struct cv_kd_node *node,
			      const struct cv_tunnel_msg *m);

/* Drops every association of node (from the link's on_node_down). */
void cv_kd_dtls_node_down(struct cv_kd_dtls *kd, struct cv_kd_node *node);

/* Live associations (tests, metrics). */
size_t cv_kd_dtls_assocs(const struct cv_kd_dtls *kd);

/* Frees everything without sending anything. NULL is fine. Not from a
 * callback. */
void cv_kd_dtls_destroy(struct cv_kd_dtls *kd);

#endif
