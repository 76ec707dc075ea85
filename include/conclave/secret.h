/*
 * Key material: SRTP master keys and salts, DTLS exporter output, EKT and
 * KMS keys. A struct cv_secret is a fixed-capacity value (no allocation) that
 * is wiped with OPENSSL_cleanse and compared in constant time. There is
 * deliberately no function that prints or formats the bytes: logs show
 * cv_secret_id() instead.
 *
 * The struct is public so that it can be embedded by value; read it only
 * through cv_secret_data() / cv_secret_len(). A zero-initialised struct
 * (`struct cv_secret s = {0};` or cv_secret_init()) is a valid empty secret.
 *
 * Thread: a secret is a plain value, used by whichever thread owns it.
 */
#ifndef CONCLAVE_SECRET_H
#define CONCLAVE_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capacity: room for the largest DTLS-SRTP exporter output we use
 * (2 * (32-byte key + 14-byte salt) = 92 bytes). */
#define CV_SECRET_MAX_BYTES 96

/* Size of the buffer cv_secret_id() writes: 8 hex digits and a NUL. */
#define CV_SECRET_ID_SIZE 9

struct cv_secret {
	size_t len;
	uint8_t bytes[CV_SECRET_MAX_BYTES];
};

/* Makes *s an empty secret (len 0, bytes zero). */
void cv_secret_init(struct cv_secret *s);

/*
 * Replaces the content of *s by a copy of bytes[0..len). bytes is borrowed.
 * Returns 0, or CV_ETOOBIG if len > CV_SECRET_MAX_BYTES (then *s is wiped),
 * -EINVAL if bytes is NULL and len > 0.
 */
int cv_secret_set(struct cv_secret *s, const uint8_t *bytes, size_t len);

/*
 * Fills *s with len bytes from OpenSSL's CSPRNG. Returns 0, CV_ETOOBIG, or
 * CV_ECRYPTO if the generator failed (then *s is wiped).
 */
int cv_secret_random(struct cv_secret *s, size_t len);

/* *dst = *src (both borrowed; may be the same object). */
void cv_secret_copy(struct cv_secret *dst, const struct cv_secret *src);

/* Overwrites every byte of *s with OPENSSL_cleanse and sets len to 0. */
void cv_secret_wipe(struct cv_secret *s);

/* True when both have the same length and bytes; constant time in the
 * content (CRYPTO_memcmp), lengths are not secret. */
bool cv_secret_equal(const struct cv_secret *a, const struct cv_secret *b);

/* The key bytes and their count; the pointer lives as long as *s. Hand it
 * only to crypto libraries, never to a log or a format function. */
const uint8_t *cv_secret_data(const struct cv_secret *s);
size_t cv_secret_len(const struct cv_secret *s);

/*
 * Writes a short non-secret identifier of *s into out (CV_SECRET_ID_SIZE
 * bytes, NUL-terminated lower-case hex): the first 4 bytes of
 * SHA-256("conclave-secret-id" || key). Safe to log; equal keys give equal
 * ids. An empty secret gives "00000000".
 */
void cv_secret_id(const struct cv_secret *s, char out[CV_SECRET_ID_SIZE]);

#endif
