#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conclave/err.h"
#include "conclave/secret.h"

void cv_secret_init(struct cv_secret *s)
{
	memset(s, 0, sizeof(*s));
}

int cv_secret_set(struct cv_secret *s, const uint8_t *bytes, size_t len)
{
	if (len > CV_SECRET_MAX_BYTES) {
		cv_secret_wipe(s);
		return CV_ETOOBIG;
	}
	if (!bytes && len > 0) {
		cv_secret_wipe(s);
		return -EINVAL;
	}
	/* Wipe first so that a shorter new key leaves no old bytes behind. */
	cv_secret_wipe(s);
	if (len > 0)
		memcpy(s->bytes, bytes, len);
	s->len = len;
	return 0;
}

int cv_secret_random(struct cv_secret *s, size_t len)
{
	cv_secret_wipe(s);
	if (len > CV_SECRET_MAX_BYTES)
		return CV_ETOOBIG;
	if (len > 0 && RAND_bytes(s->bytes, (int)len) != 1) {
		cv_secret_wipe(s);
		return CV_ECRYPTO;
	}
	s->len = len;
	return 0;
}

void cv_secret_copy(struct cv_secret *dst, const struct cv_secret *src)
{
	if (dst == src)
		return;
	/* memcpy of the whole struct: also clears dst's stale tail bytes. */
	memcpy(dst, src, sizeof(*dst));
}

void cv_secret_wipe(struct cv_secret *s)
{
	OPENSSL_cleanse(s->bytes, sizeof(s->bytes));
	s->len = 0;
}

bool cv_secret_equal(const struct cv_secret *a, const struct cv_secret *b)
{
	if (a->len != b->len)
		return false;
	if (a->len == 0)
		return true;
	return CRYPTO_memcmp(a->bytes, b->bytes, a->len) == 0;
}

const uint8_t *cv_secret_data(const struct cv_secret *s)
{
	return s->bytes;
}

size_t cv_secret_len(const struct cv_secret *s)
{
	return s->len;
}

void cv_secret_id(const struct cv_secret *s, char out[CV_SECRET_ID_SIZE])
{
	/* Domain-separated so that the id cannot be matched against a plain
	 * hash of the key computed for any other purpose. */
	static const char label[] = "conclave-secret-id";
	static const char hex[] = "0123456789abcdef";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx;
	int ok = 0;

	if (s->len == 0) {
		memcpy(out, "00000000", CV_SECRET_ID_SIZE);
		return;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, label, sizeof(label) - 1) == 1 &&
	    EVP_DigestUpdate(ctx, s->bytes, s->len) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len >= 4)
		ok = 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		/* Never fall back to anything derived from the key itself. */
		memcpy(out, "????????", CV_SECRET_ID_SIZE);
		return;
	}
	for (int i = 0; i < 4; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[8] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}
