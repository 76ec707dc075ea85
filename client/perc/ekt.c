/*
 * RFC 8870 EKT, endpoint side: RFC 5649 key wrap of the EKTPlaintext and
 * the FullEKTField around it. The framing itself is media/perc's.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "conclave/err.h"
#include "conclave/perc_e2e.h"

/* EKTPlaintext: length octet, key, SSRC, ROC (RFC 8870 section 4.1). */
#define EKT_PLAIN_MAX (1 + 32 + 4 + 4)
#define EKT_CT_MAX    (EKT_PLAIN_MAX + 7 + 8)

void cv_perc_ekt_key_wipe(struct cv_perc_ekt_key *k)
{
	cv_secret_wipe(&k->key);
	cv_secret_wipe(&k->inner_salt);
	k->spi = 0;
}

static const EVP_CIPHER *wrap_cipher(size_t kek_len)
{
	switch (kek_len) {
	case 16:
		return EVP_aes_128_wrap_pad();
	case 24:
		return EVP_aes_192_wrap_pad();
	case 32:
		return EVP_aes_256_wrap_pad();
	}
	return NULL;
}

/* RFC 5649 section 4 through OpenSSL's wrap-pad mode; enc 1 wraps. */
static int kw(const struct cv_secret *kek, int enc, const uint8_t *in,
	      size_t in_len, uint8_t *out, size_t cap)
{
	const EVP_CIPHER *c = wrap_cipher(kek ? cv_secret_len(kek) : 0);
	EVP_CIPHER_CTX *ctx;
	size_t need;
	int l = 0, l2 = 0, ok;

	if (!c || !in || in_len == 0 || in_len > 4096)
		return -EINVAL;
	if (enc) {
		need = (in_len + 7) / 8 * 8 + 8;
	} else {
		/* A wrapped key is a multiple of 8 octets, at least 16. */
		if (in_len < 16 || in_len % 8 != 0)
			return CV_EINTEGRITY;
		need = in_len; /* OpenSSL may use all of it as scratch */
	}
	if (!out || cap < need)
		return -ENOBUFS;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	ok = EVP_CipherInit_ex(ctx, c, NULL, cv_secret_data(kek), NULL, enc) ==
		     1 &&
	     EVP_CipherUpdate(ctx, out, &l, in, (int)in_len) == 1 && l > 0 &&
	     EVP_CipherFinal_ex(ctx, out + l, &l2) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		OPENSSL_cleanse(out, need);
		return enc ? CV_ECRYPTO : CV_EINTEGRITY;
	}
	return l + l2;
}

int cv_perc_ekt_wrap(const struct cv_secret *kek, const uint8_t *in,
		     size_t in_len, uint8_t *out, size_t cap)
{
	return kw(kek, 1, in, in_len, out, cap);
}

int cv_perc_ekt_unwrap(const struct cv_secret *kek, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t cap)
{
	return kw(kek, 0, in, in_len, out, cap);
}

int cv_perc_ekt_build_full(const struct cv_perc_ekt_key *k, uint16_t epoch,
			   const struct cv_secret *master_key, uint32_t ssrc,
			   uint32_t roc, uint8_t *out, size_t cap)
{
	uint8_t plain[EKT_PLAIN_MAX];
	uint8_t ct[EKT_CT_MAX];
	size_t kl, n = 0;
	int w;

	if (!k || !master_key || !out)
		return -EINVAL;
	kl = cv_secret_len(master_key);
	if (kl == 0 || kl > 32)
		return -EINVAL;
	/* RFC 8870 section 4.1: EKTPlaintext = SRTPMasterKeyLength ||
	 * SRTPMasterKey || SSRC || ROC. For the double transform the key is
	 * the inner half only (perc-notes). */
	plain[n++] = (uint8_t)kl;
	memcpy(plain + n, cv_secret_data(master_key), kl);
	n += kl;
	for (int i = 3; i >= 0; i--)
		plain[n++] = (uint8_t)(ssrc >> (8 * i));
	for (int i = 3; i >= 0; i--)
		plain[n++] = (uint8_t)(roc >> (8 * i));
	w = cv_perc_ekt_wrap(&k->key, plain, n, ct, sizeof(ct));
	OPENSSL_cleanse(plain, sizeof(plain));
	if (w < 0)
		return w;
	return cv_perc_ekt_field_write_full(out, cap, ct, (size_t)w, k->spi,
					    epoch);
}

int cv_perc_ekt_open_full(const struct cv_perc_ekt_key *k,
			  const struct cv_perc_ekt_field *f,
			  struct cv_secret *master_key, uint32_t *ssrc,
			  uint32_t *roc)
{
	uint8_t plain[CV_PERC_EKT_MAX_FIELD_BYTES];
	size_t kl;
	int n, err = 0;

	cv_secret_wipe(master_key);
	if (!k || !f || f->type != CV_PERC_EKT_FULL || f->spi != k->spi)
		return -EINVAL;
	n = cv_perc_ekt_unwrap(&k->key, f->ciphertext, f->ciphertext_len, plain,
			       sizeof(plain));
	if (n < 0)
		return n == -EINVAL ? -EINVAL : CV_EINTEGRITY;
	/* The length octet must account for exactly the rest: key, SSRC,
	 * ROC. perc-notes: the half-length key of the double transform is
	 * accepted; any length 1..32 frames, the caller checks it. */
	kl = plain[0];
	if (kl == 0 || kl > 32 || (size_t)n != 1 + kl + 8) {
		err = CV_EPARSE;
		goto out;
	}
	err = cv_secret_set(master_key, plain + 1, kl);
	if (err)
		goto out;
	*ssrc = (uint32_t)plain[1 + kl] << 24 | (uint32_t)plain[2 + kl] << 16 |
		(uint32_t)plain[3 + kl] << 8 | plain[4 + kl];
	*roc = (uint32_t)plain[5 + kl] << 24 | (uint32_t)plain[6 + kl] << 16 |
	       (uint32_t)plain[7 + kl] << 8 | plain[8 + kl];
out:
	OPENSSL_cleanse(plain, sizeof(plain));
	if (err)
		cv_secret_wipe(master_key);
	return err;
}
