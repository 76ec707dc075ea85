/*
 * docs/perc.md's double-key rule ("Deviation: how the DOUBLE profile is
 * agreed and keyed"): HKDF-SHA256 over the ordinary DTLS-SRTP exporter
 * output. One implementation for both ends that run it: the endpoint
 * (client/perc/double_keys.c) and the Key Distributor (kms/kd_dtls.c),
 * which compiles this file in (perc_double_material_sources), as both
 * compile kms/proto: the realms share rules and wire formats, never the
 * node. Checked against the known answer in the doc
 * (tests/unit/client/test_client_perc.c, tests/integration/kms/kd_dtls.c).
 */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/perc_e2e.h"

#define DOUBLE_INFO "CONCLAVE-PERC-DOUBLE-SRTP"
#define SALT2	    (2 * CV_PERC_HALF_SALT_BYTES)

/* RFC 8723 section 8 ids of the DOUBLE profiles. */
#define DOUBLE_128_ID 0x0009
#define DOUBLE_256_ID 0x000A

static int hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *ikm,
		       size_t ikm_len, const uint8_t *info, size_t info_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];
	int ok;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						      (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						      (void *)info, info_len);
	params[3] = OSSL_PARAM_construct_end();
	/* RFC 5869: no salt (HashLen zeros), extract then expand. */
	ok = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	if (!ok) {
		ERR_clear_error();
		return CV_ECRYPTO;
	}
	return 0;
}

int cv_perc_double_material(uint16_t srtp_profile_id, const uint8_t *material,
			    size_t len, enum cv_perc_profile *profile,
			    uint8_t *out, size_t cap)
{
	uint8_t info[sizeof(DOUBLE_INFO) - 1 + 2];
	uint16_t id;
	enum cv_perc_profile p;
	size_t half, d_len;
	int err;

	if (!material || !out)
		return -EINVAL;
	if (srtp_profile_id == CV_DTLS_SRTP_AEAD_AES_128_GCM) {
		id = DOUBLE_128_ID;
		p = CV_PERC_DOUBLE_AES_128_GCM;
	} else if (srtp_profile_id == CV_DTLS_SRTP_AEAD_AES_256_GCM) {
		id = DOUBLE_256_ID;
		p = CV_PERC_DOUBLE_AES_256_GCM;
	} else {
		/* AES128_CM_SHA1_80 has no DOUBLE form: never a perc hop. */
		return CV_EUNSUPP;
	}
	half = p == CV_PERC_DOUBLE_AES_128_GCM ? 16 : 32;
	if (len != 2 * (half + CV_PERC_HALF_SALT_BYTES))
		return -EINVAL;
	d_len = 2 * (2 * half + SALT2);
	if (cap < d_len)
		return -ENOBUFS;
	memcpy(info, DOUBLE_INFO, sizeof(DOUBLE_INFO) - 1);
	info[sizeof(info) - 2] = (uint8_t)(id >> 8);
	info[sizeof(info) - 1] = (uint8_t)(id & 0xff);
	err = hkdf_sha256(out, d_len, material, len, info, sizeof(info));
	if (err)
		return err;
	if (profile)
		*profile = p;
	return (int)d_len;
}
