/*
 * PERC, endpoint side (client library only; never linked into the node's
 * code paths): RFC 8723 double SRTP for
 * DOUBLE_AEAD_AES_128_GCM_AEAD_AES_128_GCM and the 256 variant, and the
 * RFC 8870 EKT that shares each sender's inner (end-to-end) key.
 *
 * Keys, per perc-notes (docs/perc.md):
 * - inner master key: the sender's own, half of the double master key
 *   (16 or 32 octets); sent to the others in the FullEKTField;
 * - inner master salt: 12 octets, the same for the whole conference,
 *   delivered with the EKT key;
 * - outer (hop-by-hop) key: lives in an ordinary struct cv_srtp
 *   (AEAD_AES_128/256_GCM) that the caller makes and passes in (borrowed);
 * - EKT key: AES key wrap (RFC 5649) key, 16 or 32 octets, named by SPI.
 *
 * The inner layer is computed here with OpenSSL EVP AES-GCM (RFC 7714) on
 * a synthetic header rather than with a second libsrtp session: the
 * receiver must take the inner ROC from the EKTField and the original
 * SEQ from the OHB, which libsrtp's per-SSRC state cannot be told.
 *
 * Objects are owned by one thread (the endpoint's media thread); no
 * locks. Packet functions do not allocate.
 */
#ifndef CONCLAVE_PERC_E2E_H
#define CONCLAVE_PERC_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/perc.h"
#include "conclave/secret.h"
#include "conclave/srtp.h"

enum cv_perc_profile {
	/* DOUBLE_AEAD_AES_128_GCM_AEAD_AES_128_GCM (RFC 8723 section 8) */
	CV_PERC_DOUBLE_AES_128_GCM = 1,
	/* DOUBLE_AEAD_AES_256_GCM_AEAD_AES_256_GCM */
	CV_PERC_DOUBLE_AES_256_GCM = 2,
};

/* Master salt half: inner and outer each 12 octets (RFC 7714). */
#define CV_PERC_HALF_SALT_BYTES 12

/* Bytes the double transform adds at most to an RTP packet: inner tag,
 * OHB (one octet at the sender), outer tag, FullEKTField for a 32-octet
 * key wrapped with a 32-octet EKT key (63). */
#define CV_PERC_E2E_MAX_OVERHEAD_BYTES (16 + 1 + 16 + 63)

/* Half key length (16 / 32), 0 for an unknown profile. Thread: any. */
size_t cv_perc_profile_half_key_bytes(enum cv_perc_profile p);
/* The outer layer's cv_srtp profile, 0 for an unknown profile. */
enum cv_srtp_profile cv_perc_profile_outer(enum cv_perc_profile p);

/*
 * Splits a double master key (2 * half octets) and master salt (24
 * octets) as perc-notes reads RFC 8723: inner = first half, outer =
 * second half. inner_out / outer_out get key || salt, ready for the inner
 * layer (a sender's cv_perc_sender_create takes the key part) and for
 * cv_srtp_create. All borrowed. Returns 0 or -EINVAL (lengths, profile);
 * outputs are wiped on failure. Thread: any.
 */
int cv_perc_split_double_key(enum cv_perc_profile p,
			     const struct cv_secret *master_key,
			     const struct cv_secret *master_salt,
			     struct cv_secret *inner_out,
			     struct cv_secret *outer_out);

/* ---- Hop keys from the endpoint's DTLS (docs/perc.md, "Deviation: how
 * the DOUBLE profile is agreed and keyed") ---- */

/*
 * D = HKDF-SHA256(salt none, IKM = material, info =
 * "CONCLAVE-PERC-DOUBLE-SRTP" || uint16(double profile id), L = 2 * (2K +
 * 24)) for the use_srtp profile agreed (CV_DTLS_SRTP_AEAD_AES_128_GCM ->
 * 0x0009, _256_GCM -> 0x000A). material (borrowed): the RFC 5764 exporter
 * output, 2 * (K + 12) octets. Writes D to out (the caller wipes it) and
 * the double profile to *profile (may be NULL). Returns the length of D
 * (112 or 176); -EINVAL, -ENOBUFS, CV_EUNSUPP (any other profile: no
 * perc hop), CV_ECRYPTO. Thread: any.
 */
int cv_perc_double_material(uint16_t srtp_profile_id, const uint8_t *material,
			    size_t len, enum cv_perc_profile *profile,
			    uint8_t *out, size_t cap);

/* The four halves of one endpoint's double keys, each key || salt (K +
 * 12 octets): tx = what the endpoint sends with, rx = what it receives
 * with. outer_* key the hop cv_srtp sessions; inner_* are the
 * DTLS-derived inner halves (unused as media keys: each sender makes its
 * own inner key and shares it by EKT). Wipe with cv_perc_hop_keys_wipe. */
struct cv_perc_hop_keys {
	struct cv_secret inner_tx, outer_tx;
	struct cv_secret inner_rx, outer_rx;
};

/*
 * cv_perc_double_material, then the RFC 5764 section 4.2 layout with
 * double lengths (client key 2K | server key 2K | client salt 24 | server
 * salt 24) split by cv_perc_split_double_key. is_client: our DTLS role
 * (a perc endpoint is always the client). *out and *profile (may be NULL)
 * written on success only. Returns 0 or the errors above. Thread: any.
 */
int cv_perc_hop_keys_from_dtls(uint16_t srtp_profile_id,
			       const uint8_t *material, size_t len,
			       bool is_client, enum cv_perc_profile *profile,
			       struct cv_perc_hop_keys *out);

void cv_perc_hop_keys_wipe(struct cv_perc_hop_keys *k);

/* ---- EKT (RFC 8870) ---- */

/* An EKT key as the KMS hands it out: SPI, the key and the conference's
 * inner master salt. A plain value; wipe it with cv_perc_ekt_key_wipe. */
struct cv_perc_ekt_key {
	uint16_t spi;
	struct cv_secret key;	     /* 16 (AESKW_128) or 32 (AESKW_256) */
	struct cv_secret inner_salt; /* CV_PERC_HALF_SALT_BYTES */
};

void cv_perc_ekt_key_wipe(struct cv_perc_ekt_key *k);

/*
 * AES key wrap with padding (RFC 5649) of in[0..in_len) under kek (16, 24
 * or 32 octets). out gets ceil(in_len / 8) * 8 + 8 octets. All borrowed.
 * Returns the octets written; -EINVAL (kek length, in_len 0), -ENOBUFS,
 * CV_ECRYPTO. Thread: any.
 */
int cv_perc_ekt_wrap(const struct cv_secret *kek, const uint8_t *in,
		     size_t in_len, uint8_t *out, size_t cap);

/*
 * Unwraps (RFC 5649) in[0..in_len) under kek into out[0..cap); out then
 * holds key material: the caller wipes it. Returns the octets written;
 * -EINVAL, -ENOBUFS, CV_EINTEGRITY (integrity check or padding failed).
 */
int cv_perc_ekt_unwrap(const struct cv_secret *kek, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t cap);

/*
 * Builds a FullEKTField (RFC 8870 section 4.1): EKTCiphertext = wrap of
 * EKTPlaintext (SRTPMasterKeyLength || SRTPMasterKey || SSRC || ROC) under
 * k->key, then SPI, epoch, length, 0x02. master_key is the sender's inner
 * half only (perc-notes) and roc the inner ROC. Returns the octets
 * written, -EINVAL, -ENOBUFS or CV_ECRYPTO.
 */
int cv_perc_ekt_build_full(const struct cv_perc_ekt_key *k, uint16_t epoch,
			   const struct cv_secret *master_key, uint32_t ssrc,
			   uint32_t roc, uint8_t *out, size_t cap);

/*
 * Opens a framed FullEKTField f (borrowed, from cv_perc_ekt_field_parse)
 * with k: unwraps and parses the EKTPlaintext into *master_key, *ssrc,
 * *roc. Returns 0; -EINVAL (not a full field, SPI not k's), CV_EINTEGRITY
 * (unwrap failed), CV_EPARSE (plaintext malformed: key length 0 or not
 * matching the rest). On failure *master_key is wiped.
 */
int cv_perc_ekt_open_full(const struct cv_perc_ekt_key *k,
			  const struct cv_perc_ekt_field *f,
			  struct cv_secret *master_key, uint32_t *ssrc,
			  uint32_t *roc);

/* ---- sender ---- */

struct cv_perc_sender;

/*
 * A sender for one SSRC. inner_key (the inner half of the master key,
 * cv_perc_profile_half_key_bytes octets) and ekt are copied. The
 * FullEKTField goes on the first 3 packets after creation or a rekey and
 * then on every 32nd packet (cv_perc_sender_set_schedule), the
 * ShortEKTField on the others. Writes *out only on success.
 * Returns 0, -EINVAL (lengths, profile), -ENOMEM, CV_ECRYPTO.
 */
int cv_perc_sender_create(struct cv_perc_sender **out, enum cv_perc_profile p,
			  uint32_t ssrc, const struct cv_secret *inner_key,
			  const struct cv_perc_ekt_key *ekt);

/* Frees the sender and wipes its keys; NULL is a no-op. */
void cv_perc_sender_destroy(struct cv_perc_sender *s);

/* first: packets with a FullEKTField after a (re)key; every: period of
 * the FullEKTField afterwards (0: never again). */
void cv_perc_sender_set_schedule(struct cv_perc_sender *s, unsigned first,
				 unsigned every);

/*
 * New inner key (RFC 8870 section 4.6: a new SRTP master key; epoch + 1
 * under the same EKT key) and/or new EKT key (ekt non-NULL with another
 * SPI: epoch restarts at 0). Both borrowed; either may be NULL. Restarts
 * the FullEKTField burst. Returns 0 or -EINVAL.
 */
int cv_perc_sender_rekey(struct cv_perc_sender *s,
			 const struct cv_secret *inner_key,
			 const struct cv_perc_ekt_key *ekt);

/* The epoch the next FullEKTField carries. */
uint16_t cv_perc_sender_epoch(const struct cv_perc_sender *s);

/*
 * RFC 8723 section 5.1: double-protects the RTP packet buf[0..*len) of
 * this sender's SSRC in place: inner AEAD over the header with X cleared
 * and extensions removed, empty OHB (0x00), outer AEAD with outer
 * (borrowed, an outbound cv_srtp with the hop-by-hop key), then the
 * EKTField. buf 4-byte aligned; needs cap - *len >=
 * CV_PERC_E2E_MAX_OVERHEAD_BYTES. Returns 0; -EINVAL (SSRC not the
 * sender's), CV_EPARSE (not RTP), CV_ETOOBIG, CV_ECRYPTO, errors of
 * cv_srtp_protect. On failure *len is unchanged, buf unspecified.
 */
int cv_perc_e2e_protect(struct cv_perc_sender *s, struct cv_srtp *outer,
			uint8_t *buf, size_t *len, size_t cap);

/* ---- receiver ---- */

/* Why a receiver dropped a packet; each reason is counted. */
enum cv_perc_drop {
	CV_PERC_DROP_EKT_FIELD = 0, /* EKTField malformed or legacy type */
	CV_PERC_DROP_OUTER,	    /* outer (hop-by-hop) tag failed */
	CV_PERC_DROP_OUTER_REPLAY,  /* outer replay list */
	CV_PERC_DROP_OHB,	    /* OHB malformed, inner part too short */
	CV_PERC_DROP_EKT_SPI,	    /* FullEKTField with an unknown SPI */
	CV_PERC_DROP_EKT_UNWRAP,    /* EKTCiphertext did not unwrap/parse */
	CV_PERC_DROP_EKT_SSRC,	    /* EKTPlaintext SSRC != packet SSRC */
	CV_PERC_DROP_EKT_EPOCH,	    /* stale epoch, or same epoch new key */
	CV_PERC_DROP_NO_KEY,	    /* no inner key known for the SSRC */
	CV_PERC_DROP_FULL,	    /* source or epoch table full */
	CV_PERC_DROP_INNER,	    /* inner tag failed (end-to-end) */
	CV_PERC_DROP_INNER_REPLAY,  /* inner (original SEQ) replay */
	CV_PERC_DROP_COUNT
};

/* Short name of a drop reason, for metrics ("inner", "ekt_ssrc"...). */
const char *cv_perc_drop_name(enum cv_perc_drop why);

/* What a receiver learnt from a packet. */
struct cv_perc_rx_info {
	uint32_t ssrc;
	uint8_t pt; /* original values, verified end to end */
	uint16_t seq;
	bool marker;
	uint8_t hop_pt; /* values as the last hop sent them */
	uint16_t hop_seq;
	bool hop_marker;
	uint32_t roc;	  /* inner ROC of this packet */
	uint8_t ekt_type; /* CV_PERC_EKT_SHORT / _FULL / extension */
	bool key_changed; /* a FullEKTField installed a new key */
};

struct cv_perc_receiver;

/*
 * A receiver for every sender of a conference, up to max_sources SSRCs
 * (ceiling; 1..4096). Returns 0, -EINVAL, -ENOMEM, CV_ECRYPTO. Writes
 * *out only on success.
 */
int cv_perc_receiver_create(struct cv_perc_receiver **out,
			    enum cv_perc_profile p, size_t max_sources);

/* Frees the receiver and wipes every key; NULL is a no-op. */
void cv_perc_receiver_destroy(struct cv_perc_receiver *r);

/*
 * Installs an EKT key (copied; replaces one with the same SPI). At most
 * CV_PERC_MAX_EKT_KEYS at once (the current and the previous during a
 * rotation). Returns 0, -EINVAL (lengths), CV_ETOOBIG (table full).
 */
#define CV_PERC_MAX_EKT_KEYS 4
int cv_perc_receiver_add_ekt_key(struct cv_perc_receiver *r,
				 const struct cv_perc_ekt_key *k);

/* Forgets the EKT key spi (wiped) and the epochs recorded under it.
 * Returns 0 or -ENOENT. */
int cv_perc_receiver_remove_ekt_key(struct cv_perc_receiver *r, uint16_t spi);

/*
 * Applies a FullEKTField received for ssrc (field[0..len), borrowed) with
 * the epoch rules of perc-notes, outside a packet (also what the packet
 * path does, except that there the key is installed only once the packet
 * verifies). seq is the original SEQ of the packet it came with (starts
 * the inner ROC estimate). Returns 0 (installed or an accepted
 * retransmission), CV_EPARSE, CV_EPROTO, -ENOENT (unknown SPI),
 * CV_EINTEGRITY (unwrap), CV_EAUTH (SSRC mismatch), CV_EREPLAY (epoch
 * rule), CV_ETOOBIG (tables full), -EINVAL (r NULL). Counts the drop
 * reason on failure.
 */
int cv_perc_receiver_accept_ekt(struct cv_perc_receiver *r, uint32_t ssrc,
				uint16_t seq, const uint8_t *field, size_t len);

/*
 * RFC 8723 section 5.3: removes the outer layer with outer (borrowed, an
 * inbound cv_srtp with the hop-by-hop key of the node's hop to us),
 * handles the EKTField, reads the OHB, restores the original PT, SEQ and
 * marker, verifies and decrypts the inner layer with the sender's key.
 * On success buf[0..*len) is the sender's RTP packet: original header
 * fields, header extensions as the last hop sent them, payload and
 * padding bit-exact; *info (may be NULL) says what happened.
 * Returns 0; on failure a counted drop: CV_EPARSE, CV_EPROTO,
 * CV_EINTEGRITY, CV_EREPLAY, CV_EAUTH, -ENOENT, CV_ETOOBIG, CV_ECRYPTO.
 * buf unspecified on failure.
 */
int cv_perc_e2e_unprotect(struct cv_perc_receiver *r, struct cv_srtp *outer,
			  uint8_t *buf, size_t *len,
			  struct cv_perc_rx_info *info);

/* Packets dropped for why since creation. */
uint64_t cv_perc_receiver_drops(const struct cv_perc_receiver *r,
				enum cv_perc_drop why);

#endif
