/*
 * The crypto of the client-KMS channel (docs/kms.md, "Client-KMS
 * channel"): P-256 ECDH, HKDF-SHA256 (RFC 5869), AES-256-GCM with counter
 * nonces, ECDSA-SHA256 over the handshake transcript. Both ends link this
 * one file so that they cannot derive different keys. OpenSSL errors are
 * translated here, once, into CV_ECRYPTO.
 */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "conclave/err.h"
#include "kms/proto/kms_proto.h"

#define ECDH_BYTES 32

int cv_kms_ec_generate(EVP_PKEY **out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	if (!k) {
		ERR_clear_error();
		return CV_ECRYPTO;
	}
	*out = k;
	return 0;
}

int cv_kms_ec_pub_encode(EVP_PKEY *k, uint8_t out[CV_KMS_EC_PUB_BYTES])
{
	char group[32];
	size_t n = 0;
	if (!k || !EVP_PKEY_is_a(k, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), NULL) ||
	    strcmp(group, "prime256v1") != 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, out,
					     CV_KMS_EC_PUB_BYTES, &n) ||
	    n != CV_KMS_EC_PUB_BYTES || out[0] != 0x04) {
		ERR_clear_error();
		return CV_ECRYPTO;
	}
	return 0;
}

int cv_kms_ec_pub_decode(const uint8_t in[CV_KMS_EC_PUB_BYTES], EVP_PKEY **out)
{
	/* SEC1 section 2.3.4: only the uncompressed form (0x04). */
	if (in[0] != 0x04)
		return CV_EPARSE;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
						 (char *)"prime256v1", 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
						  (void *)in,
						  CV_KMS_EC_PUB_BYTES),
		OSSL_PARAM_construct_end(),
	};
	int err = CV_EPARSE;
	/* fromdata checks that the point lies on the curve. */
	if (ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) > 0) {
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
		if (chk && EVP_PKEY_public_check(chk) > 0)
			err = 0;
		EVP_PKEY_CTX_free(chk);
	}
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	if (err) {
		EVP_PKEY_free(k);
		return err;
	}
	*out = k;
	return 0;
}

static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, struct cv_secret *out)
{
	uint8_t z[ECDH_BYTES];
	size_t n = sizeof(z);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	int err = CV_ECRYPTO;
	if (ctx && EVP_PKEY_derive_init(ctx) > 0 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
	    EVP_PKEY_derive(ctx, z, &n) > 0 && n == sizeof(z))
		err = cv_secret_set(out, z, n);
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_cleanse(z, sizeof(z));
	ERR_clear_error();
	return err;
}

/* RFC 5869 HKDF with SHA-256; mode EXTRACT_AND_EXPAND, EXTRACT_ONLY or
 * EXPAND_ONLY as OpenSSL names them. */
static int hkdf(int mode, const uint8_t *salt, size_t salt_len,
		const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
		size_t info_len, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[6];
	size_t i = 0;
	p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						  (char *)"SHA256", 0);
	p[i++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						   (void *)ikm, ikm_len);
	/* An empty salt is HashLen zeros (RFC 5869 section 2.2). */
	if (salt_len)
		p[i++] = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info_len)
		p[i++] = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	p[i] = OSSL_PARAM_construct_end();
	int ok = ctx && EVP_KDF_derive(ctx, out, out_len, p) > 0;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	ERR_clear_error();
	if (!ok)
		OPENSSL_cleanse(out, out_len);
	return ok ? 0 : CV_ECRYPTO;
}

int cv_kms_hello_key(EVP_PKEY *priv, EVP_PKEY *peer,
		     const uint8_t eph_pub[CV_KMS_EC_PUB_BYTES],
		     const uint8_t kms_pub[CV_KMS_EC_PUB_BYTES],
		     struct cv_secret *out)
{
	static const char info[] = "conclave-kms hello v1";
	uint8_t salt[2 * CV_KMS_EC_PUB_BYTES], k[CV_KMS_CHANNEL_KEY_BYTES];
	struct cv_secret z = {0};
	memcpy(salt, eph_pub, CV_KMS_EC_PUB_BYTES);
	memcpy(salt + CV_KMS_EC_PUB_BYTES, kms_pub, CV_KMS_EC_PUB_BYTES);
	int err = ecdh(priv, peer, &z);
	if (!err)
		err = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, salt,
			   sizeof(salt), cv_secret_data(&z), cv_secret_len(&z),
			   (const uint8_t *)info, sizeof(info) - 1, k,
			   sizeof(k));
	if (!err)
		err = cv_secret_set(out, k, sizeof(k));
	cv_secret_wipe(&z);
	OPENSSL_cleanse(k, sizeof(k));
	return err;
}

int cv_kms_transcript(const uint8_t *hello, size_t hello_len,
		      const uint8_t *reply_signed, size_t signed_len,
		      uint8_t th[CV_KMS_HASH_BYTES])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned n = 0;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, hello, hello_len) ||
	    !EVP_DigestUpdate(md, reply_signed, signed_len) ||
	    !EVP_DigestFinal_ex(md, th, &n)) {
		EVP_MD_CTX_free(md);
		ERR_clear_error();
		return CV_ECRYPTO;
	}
	EVP_MD_CTX_free(md);
	return 0;
}

int cv_kms_channel_keys(EVP_PKEY *priv, EVP_PKEY *peer,
			const uint8_t th[CV_KMS_HASH_BYTES],
			struct cv_secret *c2s, struct cv_secret *s2c)
{
	static const char c2s_info[] = "conclave-kms c2s v1";
	static const char s2c_info[] = "conclave-kms s2c v1";
	uint8_t prk[32], a[CV_KMS_CHANNEL_KEY_BYTES],
		b[CV_KMS_CHANNEL_KEY_BYTES];
	struct cv_secret z = {0};
	int err = ecdh(priv, peer, &z);
	if (!err)
		err = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, th,
			   CV_KMS_HASH_BYTES, cv_secret_data(&z),
			   cv_secret_len(&z), NULL, 0, prk, sizeof(prk));
	if (!err)
		err = hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk,
			   sizeof(prk), (const uint8_t *)c2s_info,
			   sizeof(c2s_info) - 1, a, sizeof(a));
	if (!err)
		err = hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk,
			   sizeof(prk), (const uint8_t *)s2c_info,
			   sizeof(s2c_info) - 1, b, sizeof(b));
	if (!err)
		err = cv_secret_set(c2s, a, sizeof(a));
	if (!err)
		err = cv_secret_set(s2c, b, sizeof(b));
	if (err) {
		cv_secret_wipe(c2s);
		cv_secret_wipe(s2c);
	}
	cv_secret_wipe(&z);
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return err;
}

static void sign_input(const uint8_t th[CV_KMS_HASH_BYTES], uint8_t *buf,
		       size_t *len)
{
	static const char label[] = "conclave-kms reply v1"; /* + its NUL */
	memcpy(buf, label, sizeof(label));
	memcpy(buf + sizeof(label), th, CV_KMS_HASH_BYTES);
	*len = sizeof(label) + CV_KMS_HASH_BYTES;
}

int cv_kms_reply_sign(EVP_PKEY *key, const uint8_t th[CV_KMS_HASH_BYTES],
		      uint8_t sig[CV_KMS_SIG_MAX_BYTES], size_t *sig_len)
{
	uint8_t in[64];
	size_t in_len;
	sign_input(th, in, &in_len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t n = CV_KMS_SIG_MAX_BYTES;
	int ok = md &&
		 EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key,
				       NULL) > 0 &&
		 EVP_DigestSign(md, sig, &n, in, in_len) > 0;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok)
		return CV_ECRYPTO;
	*sig_len = n;
	return 0;
}

int cv_kms_reply_verify(EVP_PKEY *pub, const uint8_t th[CV_KMS_HASH_BYTES],
			const uint8_t *sig, size_t sig_len)
{
	uint8_t in[64];
	size_t in_len;
	sign_input(th, in, &in_len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md &&
		 EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pub,
					 NULL) > 0 &&
		 EVP_DigestVerify(md, sig, sig_len, in, in_len) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok ? 0 : CV_EINTEGRITY;
}

static void gcm_nonce(uint64_t counter, uint8_t iv[12])
{
	memset(iv, 0, 4);
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(counter >> (56 - 8 * i));
}

static int gcm(bool enc, const struct cv_secret *key, uint64_t counter,
	       const uint8_t *aad, size_t aad_len, const uint8_t *in,
	       size_t in_len, uint8_t *tag, uint8_t *out)
{
	if (!key || cv_secret_len(key) != CV_KMS_CHANNEL_KEY_BYTES ||
	    in_len > CV_KMS_MSG_MAX_BYTES || aad_len > CV_KMS_MSG_MAX_BYTES)
		return -EINVAL;
	uint8_t iv[12];
	gcm_nonce(counter, iv);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, ok = c != NULL;
	ok = ok && EVP_CipherInit_ex2(c, EVP_aes_256_gcm(), cv_secret_data(key),
				      iv, enc, NULL);
	ok = ok &&
	     (aad_len == 0 || EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len));
	ok = ok &&
	     (in_len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)in_len));
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
					 CV_KMS_TAG_BYTES, tag);
	int fin = ok && EVP_CipherFinal_ex(c, out + in_len, &n);
	if (fin && enc)
		fin = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG,
					  CV_KMS_TAG_BYTES, tag);
	EVP_CIPHER_CTX_free(c);
	ERR_clear_error();
	if (!ok)
		return CV_ECRYPTO;
	if (!fin) {
		if (!enc)
			OPENSSL_cleanse(out, in_len);
		return enc ? CV_ECRYPTO : CV_EINTEGRITY;
	}
	return (int)in_len;
}

int cv_kms_seal(const struct cv_secret *key, uint64_t counter,
		const uint8_t *aad, size_t aad_len, const uint8_t *pt,
		size_t pt_len, uint8_t *out)
{
	if (!out || (pt_len && !pt))
		return -EINVAL;
	int n = gcm(true, key, counter, aad, aad_len, pt, pt_len, out + pt_len,
		    out);
	return n < 0 ? n : n + CV_KMS_TAG_BYTES;
}

int cv_kms_open(const struct cv_secret *key, uint64_t counter,
		const uint8_t *aad, size_t aad_len, const uint8_t *ct,
		size_t ct_len, uint8_t *out)
{
	if (!out || !ct || ct_len < CV_KMS_TAG_BYTES)
		return -EINVAL;
	uint8_t tag[CV_KMS_TAG_BYTES];
	size_t n = ct_len - CV_KMS_TAG_BYTES;
	memcpy(tag, ct + n, sizeof(tag));
	return gcm(false, key, counter, aad, aad_len, ct, n, tag, out);
}

int cv_kms_perc_salt(const struct cv_secret *key, const char *key_uri,
		     struct cv_secret *out)
{
	static const char label[] = "conclave-kms perc salt v1"; /* + NUL */
	uint8_t info[sizeof(label) + CV_KMS_WIRE_URI_MAX];
	size_t ulen = key_uri ? strlen(key_uri) : 0;
	if (!key || !cv_secret_len(key) || ulen > CV_KMS_WIRE_URI_MAX)
		return -EINVAL;
	memcpy(info, label, sizeof(label));
	memcpy(info + sizeof(label), key_uri, ulen);
	uint8_t s[CV_KMS_WIRE_SALT_MAX];
	int err = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, NULL, 0,
		       cv_secret_data(key), cv_secret_len(key), info,
		       sizeof(label) + ulen, s, sizeof(s));
	if (!err)
		err = cv_secret_set(out, s, sizeof(s));
	OPENSSL_cleanse(s, sizeof(s));
	return err;
}
