/*
 * The client library's perc pieces that need no node: the endpoint's copy
 * of the double-key rule against the known answer in docs/perc.md, the
 * split of D into hop and inner halves (both DTLS roles see the same keys
 * from opposite sides), and the bit-exactness check block (any changed
 * octet of header fields, payload or stamp is a mismatch).
 */
#include <errno.h>
#include <string.h>

#include "client/client_priv.h"
#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/perc_e2e.h"
#include "cv_test.h"

/* docs/perc.md, "Known answer": IKM = 00 01 .. 37, profile 0x0009. */
static const char *KAT_D =
	"4c9d98e1a69f23303d36d67dee5a3b803166d3f090c99956a672aa27c88553a2"
	"6e6319e56bb6a7de52b2be476de92f4cf7815f228e9cede37645b20cd9fc629c"
	"0a6e187bac7b25b085d281a7291d1ff95829464cc13bae62a23ef5b00c8e8cf3"
	"1da0a128be605bacc6e6a212c1a846a6";

static void unhex(const char *h, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void test_known_answer(void)
{
	uint8_t ikm[56], d[176], want[112];
	for (size_t i = 0; i < sizeof(ikm); i++)
		ikm[i] = (uint8_t)i;
	unhex(KAT_D, want, sizeof(want));
	enum cv_perc_profile p = 0;
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AEAD_AES_128_GCM, ikm,
					     sizeof(ikm), &p, d, sizeof(d)),
		     112);
	CV_CHECK_MEM(d, want, sizeof(want));
	CV_CHECK_INT(p, CV_PERC_DOUBLE_AES_128_GCM);
	/* Any other input gives something else. */
	ikm[55] ^= 1;
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AEAD_AES_128_GCM, ikm,
					     sizeof(ikm), NULL, d, sizeof(d)),
		     112);
	CV_CHECK(memcmp(d, want, sizeof(want)) != 0);
	ikm[55] ^= 1;

	/* Refusals: the CM profile has no double form; lengths; room. */
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AES128_CM_SHA1_80,
					     ikm, sizeof(ikm), NULL, d,
					     sizeof(d)),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AEAD_AES_128_GCM, ikm,
					     55, NULL, d, sizeof(d)),
		     -EINVAL);
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AEAD_AES_128_GCM, ikm,
					     sizeof(ikm), NULL, d, 111),
		     -ENOBUFS);
	uint8_t ikm256[88];
	memset(ikm256, 7, sizeof(ikm256));
	CV_CHECK_INT(cv_perc_double_material(CV_DTLS_SRTP_AEAD_AES_256_GCM,
					     ikm256, sizeof(ikm256), &p, d,
					     sizeof(d)),
		     176);
	CV_CHECK_INT(p, CV_PERC_DOUBLE_AES_256_GCM);
}

static void test_hop_keys(void)
{
	uint8_t ikm[56], want[112];
	for (size_t i = 0; i < sizeof(ikm); i++)
		ikm[i] = (uint8_t)i;
	unhex(KAT_D, want, sizeof(want));
	struct cv_perc_hop_keys cl, sv;
	enum cv_perc_profile p;
	CV_CHECK_INT(cv_perc_hop_keys_from_dtls(CV_DTLS_SRTP_AEAD_AES_128_GCM,
						ikm, sizeof(ikm), true, &p,
						&cl),
		     0);
	CV_CHECK_INT(cv_perc_hop_keys_from_dtls(CV_DTLS_SRTP_AEAD_AES_128_GCM,
						ikm, sizeof(ikm), false, &p,
						&sv),
		     0);
	/* D = ck(32) | sk(32) | cs(24) | ss(24); each inner || outer. */
	const uint8_t *ck = want, *sk = want + 32, *cs = want + 64,
		      *ss = want + 88;
	uint8_t exp[28];
	memcpy(exp, ck + 16, 16);
	memcpy(exp + 16, cs + 12, 12);
	CV_CHECK_INT(cv_secret_len(&cl.outer_tx), 28);
	CV_CHECK_MEM(cv_secret_data(&cl.outer_tx), exp, 28);
	memcpy(exp, ck, 16);
	memcpy(exp + 16, cs, 12);
	CV_CHECK_MEM(cv_secret_data(&cl.inner_tx), exp, 28);
	memcpy(exp, sk + 16, 16);
	memcpy(exp + 16, ss + 12, 12);
	CV_CHECK_MEM(cv_secret_data(&cl.outer_rx), exp, 28);
	/* The server side sees the same keys the other way round. */
	CV_CHECK(cv_secret_equal(&cl.outer_tx, &sv.outer_rx));
	CV_CHECK(cv_secret_equal(&cl.outer_rx, &sv.outer_tx));
	CV_CHECK(!cv_secret_equal(&cl.outer_tx, &cl.outer_rx));
	cv_perc_hop_keys_wipe(&cl);
	cv_perc_hop_keys_wipe(&sv);
	CV_CHECK_INT(cv_secret_len(&cl.outer_tx), 0);
	CV_CHECK_INT(cv_perc_hop_keys_from_dtls(CV_DTLS_SRTP_AES128_CM_SHA1_80,
						ikm, sizeof(ikm), true, &p,
						&cl),
		     CV_EUNSUPP);
}

/* A packet as the endpoint builds it in perc rooms. */
static size_t build(uint8_t *buf, size_t cap)
{
	struct cv_rtp_hdr h = {.padding = true,
			       .marker = true,
			       .pt = 96,
			       .seq = 4242,
			       .ts = 0x01020304,
			       .ssrc = 0xdeadbeef};
	int n = cv_rtp_write_header(buf, cap, &h, NULL, 0);
	CV_CHECK(n == 12);
	for (size_t i = 0; i < 100; i++)
		buf[12 + i] = (uint8_t)(i * 7);
	cv_client_check_stamp_put(buf + 112, &h, buf + 12, 100,
				  123456789012ull);
	return 112 + CV_CLIENT_CHECK_STAMP_BYTES;
}

static void test_check_block(void)
{
	uint8_t buf[256];
	size_t len = build(buf, sizeof(buf));
	struct cv_rtp_hdr h;
	CV_CHECK_INT(cv_rtp_parse(buf, len, &h), 0);
	CV_CHECK_INT(cv_client_check_stamp_verify(&h, buf, len), 0);
	uint64_t sent = 0;
	CV_CHECK_INT(cv_client_stamp_read(&h, buf, len, &sent), 0);
	CV_CHECK(sent == 123456789012ull);
	/* Every flipped bit of everything after the version octet that
	 * still parses: a mismatch, never a pass. Octet 0 (V, P, X, CC) and
	 * the pad count change the framing; they must not pass either. */
	size_t passed = 0;
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b++) {
			buf[i] ^= (uint8_t)(1u << b);
			if (!cv_rtp_parse(buf, len, &h) &&
			    !cv_client_check_stamp_verify(&h, buf, len))
				passed++;
			buf[i] ^= (uint8_t)(1u << b);
		}
	}
	CV_CHECK_INT(passed, 0);
	/* A plain stamp is no check block. */
	struct cv_rtp_hdr p = {.padding = true, .pt = 111, .ssrc = 1};
	uint8_t plain[64];
	int n = cv_rtp_write_header(plain, sizeof(plain), &p, NULL, 0);
	cv_client_stamp_put(plain + n, 5);
	CV_CHECK_INT(cv_rtp_parse(plain, (size_t)n + CV_CLIENT_STAMP_BYTES, &h),
		     0);
	CV_CHECK_INT(cv_client_check_stamp_verify(
			     &h, plain, (size_t)n + CV_CLIENT_STAMP_BYTES),
		     -ENOENT);
	CV_CHECK_INT(cv_client_stamp_read(&h, plain,
					  (size_t)n + CV_CLIENT_STAMP_BYTES,
					  &sent),
		     0);
	CV_CHECK(sent == 5);
}

int main(void)
{
	test_known_answer();
	test_hop_keys();
	test_check_block();
	return cv_test_done("test_client_perc");
}
