/*
 * Private to client/perc: the inner (end-to-end) AES-GCM layer of RFC 8723
 * computed with OpenSSL EVP per RFC 7714, and the RFC 3711 key derivation
 * that feeds it.
 */
#ifndef CONCLAVE_CLIENT_PERC_PRIV_H
#define CONCLAVE_CLIENT_PERC_PRIV_H

#include <openssl/evp.h>

#include "conclave/perc_e2e.h"

/* One inner GCM context: derived session key and salt, and an EVP
 * context keyed once per master key (only the IV changes per packet). */
struct cv_perc_inner {
	enum cv_perc_profile profile;
	bool encrypt;
	bool keyed;
	struct cv_secret session_salt; /* 12 octets */
	EVP_CIPHER_CTX *ctx;
};

/* Allocates the EVP context. Returns 0, -EINVAL or -ENOMEM. */
int cv_perc_inner_init(struct cv_perc_inner *in, enum cv_perc_profile p,
		       bool encrypt);
/* Wipes and frees; safe on a zeroed struct. */
void cv_perc_inner_fini(struct cv_perc_inner *in);

/*
 * RFC 3711 section 4.3 (key derivation rate 0) with the 12-octet master
 * salt padded with two zero octets (RFC 7714 erratum 4938): derives the
 * session key (label 0x00) and session salt (label 0x02) from master_key
 * (half key bytes) and master_salt (12), and keys the EVP context.
 * Returns 0, -EINVAL, CV_ECRYPTO.
 */
int cv_perc_inner_set_key(struct cv_perc_inner *in,
			  const struct cv_secret *master_key,
			  const struct cv_secret *master_salt);

/*
 * RFC 7714 section 8.1: AEAD over aad (the synthetic header), data in
 * place; IV = (00 00 || SSRC || ROC || SEQ) XOR session salt. seal writes
 * the 16-octet tag; open verifies it (CV_EINTEGRITY on mismatch).
 */
int cv_perc_inner_seal(struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		       uint16_t seq, const uint8_t *aad, size_t aad_len,
		       uint8_t *data, size_t len, uint8_t *tag);
int cv_perc_inner_open(struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		       uint16_t seq, const uint8_t *aad, size_t aad_len,
		       uint8_t *data, size_t len, const uint8_t *tag);

/* RFC 3711 section 3.3.1: the ROC guessed for seq given the highest
 * sequence number s_l seen with rollover counter roc. Returns v as a
 * signed 64-bit value (-1 when before the first cycle). */
int64_t cv_perc_guess_roc(uint32_t roc, uint16_t s_l, uint16_t seq);

#endif
