/*
 * Published SRTP vectors, checked two ways:
 *
 * 1. RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation), and
 *    RFC 7714 sections 16 and 17 (AEAD_AES_128_GCM / AEAD_AES_256_GCM, RTP
 *    and RTCP), against a small independent reference built on OpenSSL's
 *    EVP in this file. The RFC 7714 vectors are given with *session* keys,
 *    and B.2 with a session key and salt; libsrtp offers no way to bypass
 *    its key derivation, so these bytes cannot come out of cv_srtp itself.
 * 2. cv_srtp (libsrtp) protecting packets under the same master keys must
 *    give exactly what the reference gives, and unprotect must undo it,
 *    reject a flipped bit (CV_EINTEGRITY) and a replay (CV_EREPLAY).
 *
 * The vector values are inline below, each under the RFC section it is
 * copied from; tests/vectors/srtp.md lists them too.
 */
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/err.h"
#include "conclave/srtp.h"
#include "cv_test.h"

/* ---- hex helpers ---- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			continue; /* spaces between words */
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n == cap)
			abort();
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	return n;
}

/* ---- independent reference (OpenSSL EVP) ---- */

static void aes_ctr(const uint8_t *key, size_t key_len, const uint8_t iv[16],
		    const uint8_t *in, uint8_t *out, size_t len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0;

	if (!c ||
	    EVP_EncryptInit_ex(
		    c, key_len == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr(),
		    NULL, key, iv) != 1 ||
	    EVP_EncryptUpdate(c, out, &n, in, (int)len) != 1 ||
	    (size_t)n != len)
		abort();
	EVP_CIPHER_CTX_free(c);
}

/*
 * RFC 3711 section 4.3.1 with key_derivation_rate 0: x = key_id XOR
 * master_salt, key_id = label || r (r = 0), aligned right in the 112-bit
 * salt, so the label lands on octet 7; then AES-CM PRF (section 4.3.3) with
 * IV = x * 2^16. A 96-bit AEAD master salt (RFC 7714) enters left-aligned,
 * zero-padded to 112 bits.
 */
static void kdf(const uint8_t *mkey, size_t mkey_len, const uint8_t *msalt,
		size_t msalt_len, uint8_t label, uint8_t *out, size_t out_len)
{
	uint8_t iv[16] = {0};
	uint8_t zero[64] = {0};

	memcpy(iv, msalt, msalt_len);
	iv[7] ^= label;
	aes_ctr(mkey, mkey_len, iv, zero, out, out_len);
}

struct ref_keys {
	size_t key_len, salt_len;
	uint8_t key[32], salt[14], auth[20];	/* SRTP */
	uint8_t ckey[32], csalt[14], cauth[20]; /* SRTCP */
};

static void ref_derive(struct ref_keys *k, const uint8_t *mkey, size_t key_len,
		       const uint8_t *msalt, size_t salt_len)
{
	memset(k, 0, sizeof(*k));
	k->key_len = key_len;
	k->salt_len = salt_len;
	/* RFC 3711 section 4.3.2 labels: 0x00..0x02 SRTP, 0x03..0x05 SRTCP. */
	kdf(mkey, key_len, msalt, salt_len, 0x00, k->key, key_len);
	kdf(mkey, key_len, msalt, salt_len, 0x01, k->auth, 20);
	kdf(mkey, key_len, msalt, salt_len, 0x02, k->salt, salt_len);
	kdf(mkey, key_len, msalt, salt_len, 0x03, k->ckey, key_len);
	kdf(mkey, key_len, msalt, salt_len, 0x04, k->cauth, 20);
	kdf(mkey, key_len, msalt, salt_len, 0x05, k->csalt, salt_len);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* RFC 3711 section 4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR
 * (i * 2^16), i the 48-bit index (SRTP: ROC || SEQ; SRTCP: 31-bit). */
static void cm_iv(uint8_t iv[16], const uint8_t salt[14], uint32_t ssrc,
		  uint64_t index)
{
	memset(iv, 0, 16);
	memcpy(iv, salt, 14);
	for (int i = 0; i < 4; i++)
		iv[4 + i] ^= (uint8_t)(ssrc >> (24 - 8 * i));
	for (int i = 0; i < 6; i++)
		iv[8 + i] ^= (uint8_t)(index >> (40 - 8 * i));
}

static void hmac_sha1_80(const uint8_t key[20], const uint8_t *a, size_t alen,
			 const uint8_t *b, size_t blen, uint8_t tag[10])
{
	uint8_t msg[1700], md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (alen + blen > sizeof(msg))
		abort();
	memcpy(msg, a, alen);
	if (blen)
		memcpy(msg + alen, b, blen);
	if (!HMAC(EVP_sha1(), key, 20, msg, alen + blen, md, &md_len) ||
	    md_len != 20)
		abort();
	memcpy(tag, md, 10);
}

/* RFC 3711 sections 3.1, 4.1, 4.2: AES_CM_128_HMAC_SHA1_80 SRTP. The RTP
 * header here is always the 12-octet fixed one. */
static size_t ref_cm_rtp(const struct ref_keys *k, uint32_t roc,
			 const uint8_t *rtp, size_t len, uint8_t *out)
{
	uint8_t iv[16], rocb[4];
	uint64_t index = (uint64_t)roc << 16 | (uint16_t)(rtp[2] << 8 | rtp[3]);

	memcpy(out, rtp, 12);
	cm_iv(iv, k->salt, be32(rtp + 8), index);
	aes_ctr(k->key, 16, iv, rtp + 12, out + 12, len - 12);
	put_be32(rocb, roc);
	hmac_sha1_80(k->auth, out, len, rocb, 4, out + len);
	return len + 10;
}

/* RFC 3711 section 3.4: SRTCP with E=1: encrypt after the first 8 octets,
 * append E || index, authenticate all of it, append the tag. */
static size_t ref_cm_rtcp(const struct ref_keys *k, uint32_t index,
			  const uint8_t *rtcp, size_t len, uint8_t *out)
{
	uint8_t iv[16];

	memcpy(out, rtcp, 8);
	cm_iv(iv, k->csalt, be32(rtcp + 4), index);
	aes_ctr(k->ckey, 16, iv, rtcp + 8, out + 8, len - 8);
	put_be32(out + len, 0x80000000u | index);
	hmac_sha1_80(k->cauth, out, len + 4, NULL, 0, out + len + 4);
	return len + 14;
}

static void gcm(bool enc, const uint8_t *key, size_t key_len,
		const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
		const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16],
		bool *tag_ok)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	const EVP_CIPHER *alg =
		key_len == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
	int n = 0;
	uint8_t fin[16];

	if (!c || EVP_CipherInit_ex(c, alg, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
		abort();
	if (enc) {
		if (EVP_CipherFinal_ex(c, fin, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
			abort();
	} else {
		if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1)
			abort();
		*tag_ok = EVP_CipherFinal_ex(c, fin, &n) == 1;
	}
	EVP_CIPHER_CTX_free(c);
}

/* RFC 7714 section 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt;
 * section 5.2.1: AAD = the RTP header; output ciphertext || 16-octet tag. */
static size_t ref_gcm_rtp(const uint8_t *key, size_t key_len,
			  const uint8_t salt[12], uint32_t roc,
			  const uint8_t *rtp, size_t len, uint8_t *out)
{
	uint8_t iv[12] = {0};

	memcpy(iv + 2, rtp + 8, 4);
	put_be32(iv + 6, roc);
	iv[10] = rtp[2];
	iv[11] = rtp[3];
	for (int i = 0; i < 12; i++)
		iv[i] ^= salt[i];
	memcpy(out, rtp, 12);
	gcm(true, key, key_len, iv, rtp, 12, rtp + 12, len - 12, out + 12,
	    out + len, NULL);
	return len + 16;
}

/* RFC 7714 section 9.1: IV = (00 00 || SSRC || 00 00 || 0 || index) XOR
 * salt; AAD = first 8 octets || E || index; output header || ciphertext ||
 * tag || E || index. */
static size_t ref_gcm_rtcp(const uint8_t *key, size_t key_len,
			   const uint8_t salt[12], uint32_t index,
			   const uint8_t *rtcp, size_t len, uint8_t *out)
{
	uint8_t iv[12] = {0}, aad[12];

	memcpy(iv + 2, rtcp + 4, 4);
	put_be32(iv + 8, index & 0x7fffffffu);
	for (int i = 0; i < 12; i++)
		iv[i] ^= salt[i];
	memcpy(aad, rtcp, 8);
	put_be32(aad + 8, 0x80000000u | index);
	memcpy(out, rtcp, 8);
	gcm(true, key, key_len, iv, aad, 12, rtcp + 8, len - 8, out + 8,
	    out + len, NULL);
	put_be32(out + len + 16, 0x80000000u | index);
	return len + 20;
}

/* ---- RFC 3711 Appendix B ---- */

static void test_rfc3711_b2_keystream(void)
{
	/* RFC 3711 B.2: session key, salt already shifted, SSRC/ROC/SEQ 0;
	 * the segment is 65282 AES blocks. */
	uint8_t key[16], iv[16], want[48];
	const size_t seg = 65282 * 16;
	uint8_t *zero = calloc(1, seg), *ks = malloc(seg);

	CV_CHECK(zero && ks);
	if (!zero || !ks)
		goto out;
	unhex("2B7E151628AED2A6ABF7158809CF4F3C", key, sizeof(key));
	unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000", iv, sizeof(iv));
	aes_ctr(key, 16, iv, zero, ks, seg);
	unhex("E03EAD0935C95E80E166B16DD92B4EB4"
	      "D23513162B02D0F72A43A2FE4A5F97AB"
	      "41E95B3BB0A2E8DD477901E4FCA894C0",
	      want, sizeof(want));
	CV_CHECK_MEM(ks, want, 48);
	/* counters ...FEFF, ...FF00, ...FF01 */
	unhex("EC8CDF7398607CB0F2D21675EA9EA1E4"
	      "362B7C3C6773516318A077D7FC5073AE"
	      "6A2CC3787889374FBEB4C81B17BA6C44",
	      want, sizeof(want));
	CV_CHECK_MEM(ks + seg - 48, want, 48);

	/* The IV construction of RFC 3711 4.1.1 gives that counter. */
	{
		uint8_t salt[14], civ[16];
		unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD", salt, sizeof(salt));
		cm_iv(civ, salt, 0, 0);
		CV_CHECK_MEM(civ, iv, 16);
	}
out:
	free(zero);
	free(ks);
}

static const char b3_master_key[] = "E1F97A0D3E018BE0D64FA32C06DE4139";
static const char b3_master_salt[] = "0EC675AD498AFEEBB6960B3AABE6";

static void test_rfc3711_b3_kdf(void)
{
	uint8_t mk[16], ms[14], want[20];
	struct ref_keys k;

	unhex(b3_master_key, mk, sizeof(mk));
	unhex(b3_master_salt, ms, sizeof(ms));
	ref_derive(&k, mk, 16, ms, 14);
	/* RFC 3711 B.3: cipher key, cipher salt, auth key (first 160 bits) */
	unhex("C61E7A93744F39EE10734AFE3FF7A087", want, 16);
	CV_CHECK_MEM(k.key, want, 16);
	unhex("30CBBC08863D8C85D49DB34A9AE1", want, 14);
	CV_CHECK_MEM(k.salt, want, 14);
	unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4", want, 20);
	CV_CHECK_MEM(k.auth, want, 20);
}

/* Builds a 12-octet-header RTP packet with a patterned payload. */
static size_t make_rtp(uint8_t *buf, uint16_t seq, uint32_t ts, uint32_t ssrc,
		       size_t payload)
{
	buf[0] = 0x80;
	buf[1] = 0x60;
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	put_be32(buf + 4, ts);
	put_be32(buf + 8, ssrc);
	for (size_t i = 0; i < payload; i++)
		buf[12 + i] = (uint8_t)(i * 7 + 3);
	return 12 + payload;
}

static struct cv_srtp *session(enum cv_srtp_profile p, const uint8_t *key,
			       size_t key_len, const uint8_t *salt,
			       size_t salt_len, enum cv_srtp_direction dir)
{
	uint8_t ks[CV_SRTP_MAX_KEY_SALT_BYTES];
	struct cv_secret sec;
	struct cv_srtp *s = NULL;

	memcpy(ks, key, key_len);
	memcpy(ks + key_len, salt, salt_len);
	cv_secret_init(&sec);
	CV_CHECK_INT(cv_secret_set(&sec, ks, key_len + salt_len), 0);
	CV_CHECK_INT(cv_srtp_create(&s, p, &sec, dir), 0);
	cv_secret_wipe(&sec);
	return s;
}

/* Unprotect must restore plain, a flipped bit must fail the tag, and the
 * packet once accepted must then be a replay. */
static void check_inbound(struct cv_srtp *in, bool rtcp, const uint8_t *srtp,
			  size_t srtp_len, const uint8_t *plain,
			  size_t plain_len)
{
	_Alignas(8) uint8_t buf[1600];
	size_t len;

	memcpy(buf, srtp, srtp_len);
	/* The last tag octet: in GCM SRTCP it precedes the 4-octet E||index
	 * (RFC 7714 9.1), in CM SRTCP it ends the packet (RFC 3711 3.4). A
	 * flipped index is refused as well, but libsrtp checks the index
	 * before the tag and may call that a replay. */
	bool gcm_rtcp = rtcp && cv_srtp_get_profile(in) !=
					CV_SRTP_AES128_CM_HMAC_SHA1_80;
	buf[srtp_len - 1 - (gcm_rtcp ? 4 : 0)] ^= 0x01;
	len = srtp_len;
	CV_CHECK_INT(rtcp ? cv_srtp_unprotect_rtcp(in, buf, &len)
			  : cv_srtp_unprotect(in, buf, &len),
		     CV_EINTEGRITY);
	CV_CHECK_INT(len, srtp_len);

	memcpy(buf, srtp, srtp_len);
	buf[rtcp ? 9 : 13] ^= 0x80; /* a payload bit */
	CV_CHECK_INT(rtcp ? cv_srtp_unprotect_rtcp(in, buf, &len)
			  : cv_srtp_unprotect(in, buf, &len),
		     CV_EINTEGRITY);

	memcpy(buf, srtp, srtp_len);
	CV_CHECK_INT(rtcp ? cv_srtp_unprotect_rtcp(in, buf, &len)
			  : cv_srtp_unprotect(in, buf, &len),
		     0);
	CV_CHECK_INT(len, plain_len);
	CV_CHECK_MEM(buf, plain, plain_len);

	memcpy(buf, srtp, srtp_len);
	len = srtp_len;
	CV_CHECK_INT(rtcp ? cv_srtp_unprotect_rtcp(in, buf, &len)
			  : cv_srtp_unprotect(in, buf, &len),
		     CV_EREPLAY);
}

/* AES_CM_128_HMAC_SHA1_80 through cv_srtp under the B.3 master key, byte
 * for byte against the reference (whose KDF the B.3 vector just checked). */
static void test_cm80_against_reference(void)
{
	uint8_t mk[16], ms[14];
	struct ref_keys k;
	struct cv_srtp *out, *in;
	_Alignas(8) uint8_t plain[1500], buf[1600], want[1600];
	const size_t sizes[] = {0, 1, 16, 17, 160, 1188};
	uint32_t prev_index = 0;

	unhex(b3_master_key, mk, sizeof(mk));
	unhex(b3_master_salt, ms, sizeof(ms));
	ref_derive(&k, mk, 16, ms, 14);
	out = session(CV_SRTP_AES128_CM_HMAC_SHA1_80, mk, 16, ms, 14,
		      CV_SRTP_OUTBOUND);
	in = session(CV_SRTP_AES128_CM_HMAC_SHA1_80, mk, 16, ms, 14,
		     CV_SRTP_INBOUND);
	if (!out || !in)
		goto out;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = make_rtp(plain, (uint16_t)(0x1234 + i), 0xdecafbad,
				      0xcafebabe, sizes[i]);
		size_t wlen = ref_cm_rtp(&k, 0, plain, len, want);
		size_t blen = len;

		memcpy(buf, plain, len);
		CV_CHECK_INT(cv_srtp_protect(out, buf, &blen, sizeof(buf)), 0);
		CV_CHECK_INT(blen, wlen);
		CV_CHECK_MEM(buf, want, wlen);
		check_inbound(in, false, want, wlen, plain, len);
	}

	/* SRTCP: a sender report with a report block. libsrtp numbers
	 * SRTCP packets itself; read the index it used from the trailer. */
	for (int i = 0; i < 3; i++) {
		size_t len = 8 + 44;
		size_t blen = len, wlen;
		uint32_t ei;

		plain[0] = 0x81;
		plain[1] = 200;
		plain[2] = 0;
		plain[3] = 12;
		put_be32(plain + 4, 0xcafebabe);
		for (size_t j = 8; j < len; j++)
			plain[j] = (uint8_t)(j + i);
		memcpy(buf, plain, len);
		CV_CHECK_INT(cv_srtp_protect_rtcp(out, buf, &blen, sizeof(buf)),
			     0);
		CV_CHECK_INT(blen, len + 14);
		ei = be32(buf + len);
		CV_CHECK(ei & 0x80000000u); /* E flag: encrypted */
		if (i > 0)
			CV_CHECK_INT(ei & 0x7fffffffu, prev_index + 1);
		prev_index = ei & 0x7fffffffu;
		wlen = ref_cm_rtcp(&k, prev_index, plain, len, want);
		CV_CHECK_INT(blen, wlen);
		CV_CHECK_MEM(buf, want, wlen);
		check_inbound(in, true, want, wlen, plain, len);
	}
out:
	cv_srtp_destroy(out);
	cv_srtp_destroy(in);
}

/* ---- RFC 7714 sections 16 and 17 ---- */

struct gcm_vector {
	const char *name;
	enum cv_srtp_profile profile;
	const char *key;
	const char *rtp_out;  /* section 16.x: SRTP packet */
	const char *rtcp_out; /* section 17.x: SRTCP packet (index 0x5d4) */
};

/* Common to both: 96-bit salt ("Quid pro quo"), RTP packet (ROC 0) and
 * RTCP packet of RFC 7714 sections 16 and 17. */
static const char v_salt[] = "517569642070726f2071756f";
static const char v_rtp[] = "8040f17b 8041f8d3 5501a0b2 47616c6c"
			    "69612065 7374206f 6d6e6973 20646976"
			    "69736120 696e2070 61727465 73207472"
			    "6573";
static const char v_rtcp[] = "81c8000d 4d617273 4e545031 4e545032"
			     "52545020 0000042a 0000e930 4c756e61"
			     "deadbeef deadbeef deadbeef deadbeef"
			     "deadbeef";
static const uint32_t v_rtcp_index = 0x5d4;

static const struct gcm_vector gcm_vectors[] = {
	{
		/* RFC 7714 16.1.1 and 17.1.1 */
		"AEAD_AES_128_GCM",
		CV_SRTP_AEAD_AES_128_GCM,
		"000102030405060708090a0b0c0d0e0f",
		"8040f17b 8041f8d3 5501a0b2 f24de3a3"
		"fb34de6c acba861c 9d7e4bca be633bd5"
		"0d294e6f 42a5f47a 51c7d19b 36de3adf"
		"8833899d 7f27beb1 6a9152cf 765ee439"
		"0cce",
		"81c8000d 4d617273 63e94885 dcdab67c"
		"a727d766 2f6b7e99 7ff5c0f7 6c06f32d"
		"c676a5f1 730d6fda 4ce09b46 86303ded"
		"0bb9275b c84aa458 96cf4d2f c5abf872"
		"45d9eade 800005d4",
	},
	{
		/* RFC 7714 16.2.1 and 17.2.1 */
		"AEAD_AES_256_GCM",
		CV_SRTP_AEAD_AES_256_GCM,
		"000102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f",
		"8040f17b 8041f8d3 5501a0b2 32b1de78"
		"a822fe12 ef9f78fa 332e33aa b1801238"
		"9a58e2f3 b50b2a02 76ffae0f 1ba63799"
		"b87b7aa3 db36dfff d6b0f9bb 7878d7a7"
		"6c13",
		"81c8000d 4d617273 d50ae4d1 f5ce5d30"
		"4ba297e4 7d470c28 2c3ece5d bffe0a50"
		"a2eaa5c1 110555be 8415f658 c61de047"
		"6f1b6fad 1d1eb30c 4446839f 57ff6f6c"
		"b26ac3be 800005d4",
	},
};

static void test_rfc7714_reference(const struct gcm_vector *v)
{
	uint8_t key[32], salt[12], rtp[64], rtcp[64], want[128], got[128];
	size_t key_len = unhex(v->key, key, sizeof(key));
	size_t rtp_len = unhex(v_rtp, rtp, sizeof(rtp));
	size_t rtcp_len = unhex(v_rtcp, rtcp, sizeof(rtcp));
	size_t wlen, glen;
	uint8_t iv[12] = {0}, plain[128];
	bool ok = false;

	unhex(v_salt, salt, sizeof(salt));
	printf("%s: RFC 7714 reference\n", v->name);

	wlen = unhex(v->rtp_out, want, sizeof(want));
	glen = ref_gcm_rtp(key, key_len, salt, 0, rtp, rtp_len, got);
	CV_CHECK_INT(glen, wlen);
	CV_CHECK_MEM(got, want, wlen);

	/* and back: decrypt with the tag check */
	memcpy(iv + 2, rtp + 8, 4);
	iv[10] = rtp[2];
	iv[11] = rtp[3];
	for (int i = 0; i < 12; i++)
		iv[i] ^= salt[i];
	gcm(false, key, key_len, iv, want, 12, want + 12, wlen - 28, plain,
	    want + wlen - 16, &ok);
	CV_CHECK(ok);
	CV_CHECK_MEM(plain, rtp + 12, rtp_len - 12);

	wlen = unhex(v->rtcp_out, want, sizeof(want));
	glen = ref_gcm_rtcp(key, key_len, salt, v_rtcp_index, rtcp, rtcp_len,
			    got);
	CV_CHECK_INT(glen, wlen);
	CV_CHECK_MEM(got, want, wlen);
}

/* The same packets through cv_srtp, with the RFC key and salt taken as
 * master key and salt: compare with the reference on derived keys. */
static void test_rfc7714_through_api(const struct gcm_vector *v)
{
	uint8_t key[32], salt[12], rtp[64], rtcp[64];
	_Alignas(8) uint8_t buf[256], want[256];
	size_t key_len = unhex(v->key, key, sizeof(key));
	size_t rtp_len = unhex(v_rtp, rtp, sizeof(rtp));
	size_t rtcp_len = unhex(v_rtcp, rtcp, sizeof(rtcp));
	struct ref_keys k;
	struct cv_srtp *out, *in;
	size_t len, wlen;

	unhex(v_salt, salt, sizeof(salt));
	CV_CHECK_INT(key_len, cv_srtp_profile_key_bytes(v->profile));
	ref_derive(&k, key, key_len, salt, 12);
	out = session(v->profile, key, key_len, salt, 12, CV_SRTP_OUTBOUND);
	in = session(v->profile, key, key_len, salt, 12, CV_SRTP_INBOUND);
	if (!out || !in)
		goto out;

	len = rtp_len;
	memcpy(buf, rtp, len);
	CV_CHECK_INT(cv_srtp_protect(out, buf, &len, sizeof(buf)), 0);
	wlen = ref_gcm_rtp(k.key, key_len, k.salt, 0, rtp, rtp_len, want);
	CV_CHECK_INT(len, wlen);
	CV_CHECK_MEM(buf, want, wlen);
	check_inbound(in, false, want, wlen, rtp, rtp_len);

	for (int i = 0; i < 3; i++) {
		uint32_t index;

		len = rtcp_len;
		memcpy(buf, rtcp, len);
		CV_CHECK_INT(cv_srtp_protect_rtcp(out, buf, &len, sizeof(buf)),
			     0);
		CV_CHECK_INT(len, rtcp_len + 20);
		index = be32(buf + len - 4);
		CV_CHECK(index & 0x80000000u);
		wlen = ref_gcm_rtcp(k.ckey, key_len, k.csalt,
				    index & 0x7fffffffu, rtcp, rtcp_len, want);
		CV_CHECK_INT(len, wlen);
		CV_CHECK_MEM(buf, want, wlen);
		check_inbound(in, true, want, wlen, rtcp, rtcp_len);
	}
out:
	cv_srtp_destroy(out);
	cv_srtp_destroy(in);
}

int main(void)
{
	CV_CHECK_INT(cv_srtp_global_init(), 0);
	test_rfc3711_b2_keystream();
	test_rfc3711_b3_kdf();
	test_cm80_against_reference();
	for (size_t i = 0; i < sizeof(gcm_vectors) / sizeof(gcm_vectors[0]);
	     i++) {
		test_rfc7714_reference(&gcm_vectors[i]);
		test_rfc7714_through_api(&gcm_vectors[i]);
	}
	return cv_test_done("test_srtp_vectors");
}
