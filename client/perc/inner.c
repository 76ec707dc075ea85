/*
 * The inner layer of RFC 8723 double SRTP: RFC 7714 AES-GCM with the
 * RFC 3711 key derivation, on OpenSSL EVP (see perc_e2e.h for why not a
 * second libsrtp session).
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/err.h"
#include "perc_priv.h"

static const EVP_CIPHER *gcm_cipher(enum cv_perc_profile p)
{
	return p == CV_PERC_DOUBLE_AES_256_GCM ? EVP_aes_256_gcm()
					       : EVP_aes_128_gcm();
}

static const EVP_CIPHER *ctr_cipher(enum cv_perc_profile p)
{
	return p == CV_PERC_DOUBLE_AES_256_GCM ? EVP_aes_256_ctr()
					       : EVP_aes_128_ctr();
}

int cv_perc_inner_init(struct cv_perc_inner *in, enum cv_perc_profile p,
		       bool encrypt)
{
	memset(in, 0, sizeof(*in));
	if (!cv_perc_profile_half_key_bytes(p))
		return -EINVAL;
	in->ctx = EVP_CIPHER_CTX_new();
	if (!in->ctx)
		return -ENOMEM;
	in->profile = p;
	in->encrypt = encrypt;
	return 0;
}

void cv_perc_inner_fini(struct cv_perc_inner *in)
{
	/* EVP_CIPHER_CTX_free cleanses the key schedule. */
	EVP_CIPHER_CTX_free(in->ctx);
	in->ctx = NULL;
	in->keyed = false;
	cv_secret_wipe(&in->session_salt);
}

/* RFC 3711 section 4.3.1/4.3.3: x = key_id XOR master_salt, key_id =
 * label || r (r = 0 at key derivation rate 0) right-aligned in 112 bits;
 * the AES-CM PRF keystream from IV = x * 2^16 gives the key. */
static int kdf(enum cv_perc_profile p, const uint8_t *mk, const uint8_t *salt,
	       uint8_t label, uint8_t *out, size_t n)
{
	static const uint8_t zeros[32];
	uint8_t iv[16] = {0};
	EVP_CIPHER_CTX *c;
	int l = 0, ok;

	/* Octets 12..13 are the two zero octets padding the 96-bit salt
	 * (RFC 7714 erratum 4938); 14..15 the block counter. */
	memcpy(iv, salt, CV_PERC_HALF_SALT_BYTES);
	iv[7] ^= label;
	c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	ok = EVP_EncryptInit_ex(c, ctr_cipher(p), NULL, mk, iv) == 1 &&
	     EVP_EncryptUpdate(c, out, &l, zeros, (int)n) == 1 &&
	     (size_t)l == n;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : CV_ECRYPTO;
}

int cv_perc_inner_set_key(struct cv_perc_inner *in,
			  const struct cv_secret *master_key,
			  const struct cv_secret *master_salt)
{
	size_t kl = cv_perc_profile_half_key_bytes(in->profile);
	uint8_t skey[32];
	uint8_t ssalt[CV_PERC_HALF_SALT_BYTES];
	int err;

	if (cv_secret_len(master_key) != kl ||
	    cv_secret_len(master_salt) != CV_PERC_HALF_SALT_BYTES)
		return -EINVAL;
	in->keyed = false;
	err = kdf(in->profile, cv_secret_data(master_key),
		  cv_secret_data(master_salt), 0x00, skey, kl);
	if (!err)
		err = kdf(in->profile, cv_secret_data(master_key),
			  cv_secret_data(master_salt), 0x02, ssalt,
			  sizeof(ssalt));
	if (!err && EVP_CipherInit_ex(in->ctx, gcm_cipher(in->profile), NULL,
				      skey, NULL, in->encrypt ? 1 : 0) != 1)
		err = CV_ECRYPTO;
	if (!err)
		err = cv_secret_set(&in->session_salt, ssalt, sizeof(ssalt));
	OPENSSL_cleanse(skey, sizeof(skey));
	OPENSSL_cleanse(ssalt, sizeof(ssalt));
	if (!err)
		in->keyed = true;
	return err;
}

/* RFC 7714 section 8.1: the 12-octet IV. */
static void make_iv(const struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		    uint16_t seq, uint8_t iv[12])
{
	const uint8_t *salt = cv_secret_data(&in->session_salt);

	iv[0] = 0;
	iv[1] = 0;
	iv[2] = (uint8_t)(ssrc >> 24);
	iv[3] = (uint8_t)(ssrc >> 16);
	iv[4] = (uint8_t)(ssrc >> 8);
	iv[5] = (uint8_t)ssrc;
	iv[6] = (uint8_t)(roc >> 24);
	iv[7] = (uint8_t)(roc >> 16);
	iv[8] = (uint8_t)(roc >> 8);
	iv[9] = (uint8_t)roc;
	iv[10] = (uint8_t)(seq >> 8);
	iv[11] = (uint8_t)seq;
	for (int i = 0; i < 12; i++)
		iv[i] ^= salt[i];
}

static int inner_crypt(struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		       uint16_t seq, const uint8_t *aad, size_t aad_len,
		       uint8_t *data, size_t len, uint8_t *tag_io)
{
	uint8_t iv[12];
	int l = 0;

	if (!in->keyed || aad_len > 1024 || len > (size_t)INT32_MAX)
		return -EINVAL;
	make_iv(in, ssrc, roc, seq, iv);
	if (EVP_CipherInit_ex(in->ctx, NULL, NULL, NULL, iv, -1) != 1)
		return CV_ECRYPTO;
	if (EVP_CipherUpdate(in->ctx, NULL, &l, aad, (int)aad_len) != 1)
		return CV_ECRYPTO;
	if (len > 0 && EVP_CipherUpdate(in->ctx, data, &l, data, (int)len) != 1)
		return CV_ECRYPTO;
	if (!in->encrypt &&
	    EVP_CIPHER_CTX_ctrl(in->ctx, EVP_CTRL_GCM_SET_TAG,
				CV_PERC_INNER_TAG_BYTES, tag_io) != 1)
		return CV_ECRYPTO;
	if (EVP_CipherFinal_ex(in->ctx, data + len, &l) != 1)
		return in->encrypt ? CV_ECRYPTO : CV_EINTEGRITY;
	if (in->encrypt &&
	    EVP_CIPHER_CTX_ctrl(in->ctx, EVP_CTRL_GCM_GET_TAG,
				CV_PERC_INNER_TAG_BYTES, tag_io) != 1)
		return CV_ECRYPTO;
	return 0;
}

int cv_perc_inner_seal(struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		       uint16_t seq, const uint8_t *aad, size_t aad_len,
		       uint8_t *data, size_t len, uint8_t *tag)
{
	if (!in->encrypt)
		return -EINVAL;
	return inner_crypt(in, ssrc, roc, seq, aad, aad_len, data, len, tag);
}

int cv_perc_inner_open(struct cv_perc_inner *in, uint32_t ssrc, uint32_t roc,
		       uint16_t seq, const uint8_t *aad, size_t aad_len,
		       uint8_t *data, size_t len, const uint8_t *tag)
{
	uint8_t t[CV_PERC_INNER_TAG_BYTES];

	if (in->encrypt)
		return -EINVAL;
	memcpy(t, tag, sizeof(t));
	return inner_crypt(in, ssrc, roc, seq, aad, aad_len, data, len, t);
}

int64_t cv_perc_guess_roc(uint32_t roc, uint16_t s_l, uint16_t seq)
{
	/* RFC 3711 section 3.3.1. */
	if (s_l < 32768) {
		if ((int32_t)seq - (int32_t)s_l > 32768)
			return (int64_t)roc - 1;
		return roc;
	}
	if ((int32_t)s_l - 32768 > (int32_t)seq)
		return (int64_t)roc + 1;
	return roc;
}
