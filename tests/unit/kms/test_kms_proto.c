/*
 * The client-KMS channel's wire format and crypto (kms/proto) and the KMS
 * token: round trips, truncation at every length, malformed fields, both
 * ends deriving the same keys, tampering detected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "conclave/err.h"
#include "cv_test.h"
#include "kms/channel.h"
#include "kms/proto/kms_proto.h"
#include "kms/store.h"

static const uint8_t SID[CV_KMS_SID_BYTES] = {1, 2,  3,	 4,  5,	 6,  7,	 8,
					      9, 10, 11, 12, 13, 14, 15, 16};

static void pub_of(EVP_PKEY *k, uint8_t *pub)
{
	CV_CHECK_INT(cv_kms_ec_pub_encode(k, pub), 0);
}

/* Every proper prefix of a valid message is refused. */
static void check_prefixes(const uint8_t *buf, size_t len)
{
	struct cv_kms_msg m;
	for (size_t i = 0; i < len; i++) {
		int rc = cv_kms_msg_parse(buf, i, &m);
		if (rc == 0)
			fprintf(stderr, "prefix %zu of %zu parsed\n", i, len);
		CV_CHECK(rc != 0);
	}
}

static void test_messages(void)
{
	uint8_t buf[512], pub[CV_KMS_EC_PUB_BYTES];
	struct cv_kms_msg m;
	memset(pub, 0x04, sizeof(pub));

	/* HELLO */
	int n = cv_kms_hello_head_write(buf, sizeof(buf), pub, 40);
	CV_CHECK_INT(n, CV_KMS_HELLO_HEAD_BYTES);
	memset(buf + n, 0xaa, 40);
	size_t len = (size_t)n + 40;
	CV_CHECK_INT(cv_kms_msg_parse(buf, len, &m), 0);
	CV_CHECK_INT(m.type, CV_KMS_MSG_HELLO);
	CV_CHECK(m.eph_pub == buf + 2);
	CV_CHECK_INT(m.sealed_len, 40);
	CV_CHECK_INT(m.head_len, CV_KMS_HELLO_HEAD_BYTES);
	check_prefixes(buf, len);
	buf[len] = 0;
	CV_CHECK_INT(cv_kms_msg_parse(buf, len + 1, &m), CV_EPARSE);
	buf[0] = 2;
	CV_CHECK_INT(cv_kms_msg_parse(buf, len, &m), CV_EUNSUPP);
	buf[0] = 1;
	CV_CHECK_INT(cv_kms_hello_head_write(buf, sizeof(buf), pub, 15),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_hello_head_write(buf, 10, pub, 40), -ENOBUFS);

	/* HELLO_REPLY */
	n = cv_kms_reply_signed_write(buf, sizeof(buf), SID, pub, 12345);
	CV_CHECK_INT(n, CV_KMS_REPLY_SIGNED_BYTES);
	uint8_t sig[70];
	memset(sig, 0x30, sizeof(sig));
	n = cv_kms_reply_sig_write(buf, sizeof(buf), (size_t)n, sig,
				   sizeof(sig));
	CV_CHECK_INT(n, CV_KMS_REPLY_SIGNED_BYTES + 2 + 70);
	CV_CHECK_INT(cv_kms_msg_parse(buf, (size_t)n, &m), 0);
	CV_CHECK_INT(m.type, CV_KMS_MSG_HELLO_REPLY);
	CV_CHECK_INT(m.expires_ms, 12345);
	CV_CHECK_MEM(m.sid, SID, sizeof(SID));
	CV_CHECK_INT(m.sig_len, 70);
	check_prefixes(buf, (size_t)n);
	CV_CHECK_INT(cv_kms_reply_sig_write(buf, sizeof(buf), 10, sig, 73),
		     -EINVAL);
	/* A signature length beyond the maximum. */
	buf[CV_KMS_REPLY_SIGNED_BYTES] = 0;
	buf[CV_KMS_REPLY_SIGNED_BYTES + 1] = 73;
	CV_CHECK_INT(cv_kms_msg_parse(buf, CV_KMS_REPLY_SIGNED_BYTES + 75, &m),
		     CV_EPARSE);

	/* REQUEST / RESPONSE */
	for (int t = CV_KMS_MSG_REQUEST; t <= CV_KMS_MSG_RESPONSE; t++) {
		n = cv_kms_sealed_head_write(buf, sizeof(buf),
					     (enum cv_kms_msg_type)t, SID,
					     0x0102030405060708ull);
		CV_CHECK_INT(n, CV_KMS_SEALED_HEAD_BYTES);
		memset(buf + n, 0x55, 20);
		CV_CHECK_INT(cv_kms_msg_parse(buf, (size_t)n + 20, &m), 0);
		CV_CHECK_INT(m.type, t);
		CV_CHECK(m.seq == 0x0102030405060708ull);
		CV_CHECK_INT(m.sealed_len, 20);
		check_prefixes(buf, (size_t)n + CV_KMS_TAG_BYTES);
	}
	CV_CHECK_INT(cv_kms_sealed_head_write(buf, sizeof(buf),
					      CV_KMS_MSG_HELLO, SID, 1),
		     -EINVAL);

	/* ERROR */
	n = cv_kms_error_write(buf, sizeof(buf), CV_KMS_REPLAYED);
	CV_CHECK_INT(n, 3);
	CV_CHECK_INT(cv_kms_msg_parse(buf, 3, &m), 0);
	CV_CHECK_INT(m.status, CV_KMS_REPLAYED);
	check_prefixes(buf, 3);
	buf[2] = 0;
	CV_CHECK_INT(cv_kms_msg_parse(buf, 3, &m), CV_EPARSE);
	buf[2] = CV_KMS_STATUS_COUNT;
	CV_CHECK_INT(cv_kms_msg_parse(buf, 3, &m), CV_EPARSE);
	CV_CHECK_INT(cv_kms_error_write(buf, sizeof(buf), CV_KMS_OK), -EINVAL);

	/* Unknown types, oversize. */
	for (int t = 0; t < 256; t++) {
		if (t >= CV_KMS_MSG_HELLO && t <= CV_KMS_MSG_ERROR)
			continue;
		uint8_t b[64] = {1, (uint8_t)t};
		CV_CHECK_INT(cv_kms_msg_parse(b, sizeof(b), &m), CV_EPARSE);
	}
	static uint8_t big[CV_KMS_MSG_MAX_BYTES + 1];
	CV_CHECK_INT(cv_kms_msg_parse(big, sizeof(big), &m), CV_ETOOBIG);
	CV_CHECK_STR(cv_kms_status_name(CV_KMS_NOT_MEMBER), "not_member");
	CV_CHECK_STR(cv_kms_status_name(99), "unknown");
}

static void test_bodies(void)
{
	uint8_t buf[600], pub[CV_KMS_EC_PUB_BYTES], rnd[CV_KMS_RANDOM_BYTES];
	memset(pub, 4, sizeof(pub));
	memset(rnd, 7, sizeof(rnd));

	struct cv_kms_hello_body hb = {.client_pub = pub,
				       .random = rnd,
				       .time_ms = 99,
				       .token = "a.b.c",
				       .token_len = 5},
				 hp;
	int n = cv_kms_hello_body_write(buf, sizeof(buf), &hb);
	CV_CHECK_INT(n, 65 + 16 + 8 + 2 + 5);
	CV_CHECK_INT(cv_kms_hello_body_parse(buf, (size_t)n, &hp), 0);
	CV_CHECK_INT(hp.token_len, 5);
	CV_CHECK_MEM(hp.token, "a.b.c", 5);
	CV_CHECK_INT(hp.time_ms, 99);
	for (int i = 0; i < n; i++)
		CV_CHECK(cv_kms_hello_body_parse(buf, (size_t)i, &hp) != 0);
	CV_CHECK_INT(cv_kms_hello_body_parse(buf, (size_t)n + 1, &hp),
		     CV_EPARSE);
	hb.token_len = 0;
	CV_CHECK_INT(cv_kms_hello_body_write(buf, sizeof(buf), &hb), -EINVAL);

	/* Requests: every op, every truncation. */
	struct cv_kms_req q = {.op = CV_KMS_OP_ADD_MEMBER,
			       .expires_ms = 1000,
			       .room = "conclave://rooms/a",
			       .room_len = 18,
			       .member = "bob-1",
			       .member_len = 5},
			  p;
	n = cv_kms_req_write(buf, sizeof(buf), &q);
	CV_CHECK_INT(n, 1 + 8 + 1 + 18 + 1 + 5);
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n, &p), 0);
	CV_CHECK_INT(p.op, CV_KMS_OP_ADD_MEMBER);
	CV_CHECK_INT(p.expires_ms, 1000);
	CV_CHECK_MEM(p.room, "conclave://rooms/a", 18);
	CV_CHECK_MEM(p.member, "bob-1", 5);
	for (int i = 0; i < n; i++)
		CV_CHECK(cv_kms_req_parse(buf, (size_t)i, &p) != 0);
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n + 1, &p), CV_EPARSE);
	/* Malformed fields, patched into the valid encoding. */
	uint8_t bad[128];
	memcpy(bad, buf, (size_t)n);
	bad[0] = 0;
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	bad[0] = 5;
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	bad[0] = CV_KMS_OP_GET_KEY; /* a member where none belongs */
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	memcpy(bad, buf, (size_t)n);
	bad[12] = ' '; /* a blank in the room */
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	memcpy(bad, buf, (size_t)n);
	bad[n - 1] = 0x7f;
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	q.op = CV_KMS_OP_REMOVE_MEMBER;
	q.member_len = 0;
	CV_CHECK_INT(cv_kms_req_write(buf, sizeof(buf), &q), -EINVAL);
	q.op = CV_KMS_OP_GET_KEY;
	n = cv_kms_req_write(buf, sizeof(buf), &q);
	CV_CHECK_INT(n, 1 + 8 + 1 + 18 + 1);
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n, &p), 0);
	q.room_len = 0;
	CV_CHECK_INT(cv_kms_req_write(buf, sizeof(buf), &q), -EINVAL);

	/* REGISTER_ENDPOINT: association id and fingerprint after the
	 * (empty) member; nothing more, nothing less. */
	uint8_t assoc[CV_KMS_ASSOC_BYTES], fp[CV_KMS_FP_BYTES];
	for (size_t i = 0; i < sizeof(assoc); i++)
		assoc[i] = (uint8_t)(0xa0 + i);
	for (size_t i = 0; i < sizeof(fp); i++)
		fp[i] = (uint8_t)(0x10 + i);
	q.op = CV_KMS_OP_REGISTER_ENDPOINT;
	q.room_len = 18;
	q.member_len = 0;
	q.assoc = assoc;
	q.fp = fp;
	n = cv_kms_req_write(buf, sizeof(buf), &q);
	CV_CHECK_INT(n, 1 + 8 + 1 + 18 + 1 + 16 + 32);
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n, &p), 0);
	CV_CHECK_INT(p.op, CV_KMS_OP_REGISTER_ENDPOINT);
	CV_CHECK(p.assoc == buf + 29 && p.fp == buf + 45);
	CV_CHECK_MEM(p.assoc, assoc, sizeof(assoc));
	CV_CHECK_MEM(p.fp, fp, sizeof(fp));
	for (int i = 0; i < n; i++)
		CV_CHECK(cv_kms_req_parse(buf, (size_t)i, &p) != 0);
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n + 1, &p), CV_EPARSE);
	/* The same 48 octets after another op: trailing bytes. */
	memcpy(bad, buf, (size_t)n);
	bad[0] = CV_KMS_OP_GET_KEY;
	CV_CHECK_INT(cv_kms_req_parse(bad, (size_t)n, &p), CV_EPARSE);
	CV_CHECK(p.assoc == NULL);
	/* A member where none belongs. */
	q.member_len = 5;
	CV_CHECK_INT(cv_kms_req_write(buf, sizeof(buf), &q), -EINVAL);
	q.member_len = 0;
	q.fp = NULL;
	CV_CHECK_INT(cv_kms_req_write(buf, sizeof(buf), &q), -EINVAL);
	q.fp = fp;
	CV_CHECK_INT(cv_kms_req_write(buf, 60, &q), -ENOBUFS);
	/* An op past the last one. */
	n = cv_kms_req_write(buf, sizeof(buf), &q);
	buf[0] = CV_KMS_OP_REGISTER_ENDPOINT + 1;
	CV_CHECK_INT(cv_kms_req_parse(buf, (size_t)n, &p), CV_EPARSE);

	/* Responses. */
	uint8_t key[16], salt[12];
	memset(key, 0x11, sizeof(key));
	memset(salt, 0x22, sizeof(salt));
	struct cv_kms_resp r = {.req_seq = 7,
				.status = CV_KMS_OK,
				.op = CV_KMS_OP_GET_KEY,
				.epoch = 3,
				.spi = 3,
				.key = key,
				.key_len = 16,
				.salt = salt,
				.salt_len = 12,
				.uri = "kms://x/keys/1",
				.uri_len = 14},
			   s;
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	CV_CHECK_INT(n, 8 + 2 + 4 + 2 + 1 + 16 + 1 + 12 + 1 + 14 + 1);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n, &s), 0);
	CV_CHECK_INT(s.req_seq, 7);
	CV_CHECK_INT(s.epoch, 3);
	CV_CHECK_MEM(s.key, key, 16);
	CV_CHECK_MEM(s.salt, salt, 12);
	CV_CHECK_MEM(s.uri, "kms://x/keys/1", 14);
	CV_CHECK(s.kd_fp == NULL && s.kd_fp_len == 0);
	for (int i = 0; i < n; i++)
		CV_CHECK(cv_kms_resp_parse(buf, (size_t)i, &s) != 0);
	/* With the Key Distributor's fingerprint. */
	uint8_t kfp[CV_KMS_FP_BYTES];
	memset(kfp, 0x5c, sizeof(kfp));
	r.kd_fp = kfp;
	r.kd_fp_len = sizeof(kfp);
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	CV_CHECK_INT(n, 8 + 2 + 4 + 2 + 1 + 16 + 1 + 12 + 1 + 14 + 1 + 32);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n, &s), 0);
	CV_CHECK_INT(s.kd_fp_len, 32);
	CV_CHECK(s.kd_fp == buf + n - 32);
	CV_CHECK_MEM(s.kd_fp, kfp, 32);
	for (int i = 0; i < n; i++)
		CV_CHECK(cv_kms_resp_parse(buf, (size_t)i, &s) != 0);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n + 1, &s), CV_EPARSE);
	/* Only 0 or 32 octets: a 31-octet fingerprint is refused. */
	buf[n - 33] = 31;
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n - 1, &s), CV_EPARSE);
	r.kd_fp_len = 20;
	CV_CHECK_INT(cv_kms_resp_write(buf, sizeof(buf), &r), -EINVAL);
	r.kd_fp = NULL;
	r.kd_fp_len = 32;
	CV_CHECK_INT(cv_kms_resp_write(buf, sizeof(buf), &r), -EINVAL);
	r.kd_fp_len = 0;
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	memcpy(bad, buf, (size_t)n);
	bad[14] = 0x80; /* SPI above 15 bits */
	CV_CHECK_INT(cv_kms_resp_parse(bad, (size_t)n, &s), CV_EPARSE);
	r.key_len = 20;
	CV_CHECK_INT(cv_kms_resp_write(buf, sizeof(buf), &r), -EINVAL);
	r.key_len = 16;
	r.salt_len = 11;
	CV_CHECK_INT(cv_kms_resp_write(buf, sizeof(buf), &r), -EINVAL);
	/* REGISTER_ENDPOINT: a success ends after the op. */
	r.op = CV_KMS_OP_REGISTER_ENDPOINT;
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	CV_CHECK_INT(n, 10);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n, &s), 0);
	CV_CHECK_INT(s.op, CV_KMS_OP_REGISTER_ENDPOINT);
	CV_CHECK_INT(s.status, CV_KMS_OK);
	CV_CHECK_INT(cv_kms_resp_parse(buf, 14, &s), CV_EPARSE);
	r.op = CV_KMS_OP_REMOVE_MEMBER;
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	CV_CHECK_INT(n, 14);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n, &s), 0);
	CV_CHECK_INT(s.epoch, 3);
	r.status = CV_KMS_NOT_MEMBER;
	n = cv_kms_resp_write(buf, sizeof(buf), &r);
	CV_CHECK_INT(n, 10);
	CV_CHECK_INT(cv_kms_resp_parse(buf, (size_t)n, &s), 0);
	CV_CHECK_INT(s.status, CV_KMS_NOT_MEMBER);
	CV_CHECK_INT(cv_kms_resp_parse(buf, 11, &s), CV_EPARSE);
	buf[8] = CV_KMS_STATUS_COUNT;
	CV_CHECK_INT(cv_kms_resp_parse(buf, 10, &s), CV_EPARSE);
}

static void test_crypto(void)
{
	EVP_PKEY *kms = NULL, *eph = NULL, *c = NULL, *s = NULL, *d = NULL;
	CV_CHECK_INT(cv_kms_ec_generate(&kms), 0);
	CV_CHECK_INT(cv_kms_ec_generate(&eph), 0);
	CV_CHECK_INT(cv_kms_ec_generate(&c), 0);
	CV_CHECK_INT(cv_kms_ec_generate(&s), 0);
	uint8_t kp[65], ep[65], cp[65], sp[65];
	pub_of(kms, kp);
	pub_of(eph, ep);
	pub_of(c, cp);
	pub_of(s, sp);

	/* ECIES: both ends compute the same hello key. */
	EVP_PKEY *kms_pub = NULL, *eph_pub = NULL;
	CV_CHECK_INT(cv_kms_ec_pub_decode(kp, &kms_pub), 0);
	CV_CHECK_INT(cv_kms_ec_pub_decode(ep, &eph_pub), 0);
	struct cv_secret k1 = {0}, k2 = {0};
	CV_CHECK_INT(cv_kms_hello_key(eph, kms_pub, ep, kp, &k1), 0);
	CV_CHECK_INT(cv_kms_hello_key(kms, eph_pub, ep, kp, &k2), 0);
	CV_CHECK(cv_secret_len(&k1) == 32 && cv_secret_equal(&k1, &k2));

	/* Channel keys: equal on both ends, distinct per direction and per
	 * transcript. */
	uint8_t th[32], th2[32];
	CV_CHECK_INT(cv_kms_transcript((const uint8_t *)"hello", 5,
				       (const uint8_t *)"reply", 5, th),
		     0);
	CV_CHECK_INT(cv_kms_transcript((const uint8_t *)"hellp", 5,
				       (const uint8_t *)"reply", 5, th2),
		     0);
	EVP_PKEY *c_pub = NULL, *s_pub = NULL;
	CV_CHECK_INT(cv_kms_ec_pub_decode(cp, &c_pub), 0);
	CV_CHECK_INT(cv_kms_ec_pub_decode(sp, &s_pub), 0);
	struct cv_secret a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0},
			 b3 = {0};
	CV_CHECK_INT(cv_kms_channel_keys(c, s_pub, th, &a1, &b1), 0);
	CV_CHECK_INT(cv_kms_channel_keys(s, c_pub, th, &a2, &b2), 0);
	CV_CHECK_INT(cv_kms_channel_keys(s, c_pub, th2, &a3, &b3), 0);
	CV_CHECK(cv_secret_equal(&a1, &a2) && cv_secret_equal(&b1, &b2));
	CV_CHECK(!cv_secret_equal(&a1, &b1));
	CV_CHECK(!cv_secret_equal(&a1, &a3));

	/* Signatures over the transcript. */
	uint8_t sig[CV_KMS_SIG_MAX_BYTES];
	size_t sl = 0;
	CV_CHECK_INT(cv_kms_reply_sign(kms, th, sig, &sl), 0);
	CV_CHECK_INT(cv_kms_reply_verify(kms_pub, th, sig, sl), 0);
	CV_CHECK_INT(cv_kms_reply_verify(kms_pub, th2, sig, sl), CV_EINTEGRITY);
	CV_CHECK_INT(cv_kms_reply_verify(s_pub, th, sig, sl), CV_EINTEGRITY);
	sig[sl - 1] ^= 1;
	CV_CHECK_INT(cv_kms_reply_verify(kms_pub, th, sig, sl), CV_EINTEGRITY);

	/* AEAD: round trip; every flipped bit of ct||tag and of the AAD is
	 * caught; another counter fails. */
	const uint8_t pt[] = "get me the key";
	uint8_t ct[64], out[64], aad[4] = {1, 2, 3, 4};
	int n = cv_kms_seal(&a1, 9, aad, 4, pt, sizeof(pt), ct);
	CV_CHECK_INT(n, (int)sizeof(pt) + 16);
	CV_CHECK_INT(cv_kms_open(&a2, 9, aad, 4, ct, (size_t)n, out),
		     (int)sizeof(pt));
	CV_CHECK_MEM(out, pt, sizeof(pt));
	CV_CHECK_INT(cv_kms_open(&a2, 10, aad, 4, ct, (size_t)n, out),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_kms_open(&b2, 9, aad, 4, ct, (size_t)n, out),
		     CV_EINTEGRITY);
	int caught = 0;
	for (int i = 0; i < n * 8; i++) {
		ct[i / 8] ^= (uint8_t)(1 << (i % 8));
		caught += cv_kms_open(&a2, 9, aad, 4, ct, (size_t)n, out) ==
			  CV_EINTEGRITY;
		ct[i / 8] ^= (uint8_t)(1 << (i % 8));
	}
	CV_CHECK_INT(caught, n * 8);
	aad[0] ^= 1;
	CV_CHECK_INT(cv_kms_open(&a2, 9, aad, 4, ct, (size_t)n, out),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_kms_open(&a2, 9, aad, 4, ct, 15, out), -EINVAL);

	/* Points: only uncompressed, only on the curve. */
	uint8_t bad[65];
	memcpy(bad, cp, 65);
	bad[0] = 0x02;
	CV_CHECK_INT(cv_kms_ec_pub_decode(bad, &d), CV_EPARSE);
	memcpy(bad, cp, 65);
	bad[64] ^= 1;
	CV_CHECK_INT(cv_kms_ec_pub_decode(bad, &d), CV_EPARSE);
	memset(bad + 1, 0, 64);
	bad[0] = 4;
	CV_CHECK_INT(cv_kms_ec_pub_decode(bad, &d), CV_EPARSE);

	/* The perc salt: 12 octets, bound to the key URI. */
	struct cv_secret s1 = {0}, s2 = {0};
	CV_CHECK_INT(cv_kms_perc_salt(&k1, "kms://a/keys/1", &s1), 0);
	CV_CHECK_INT(cv_kms_perc_salt(&k1, "kms://a/keys/2", &s2), 0);
	CV_CHECK_INT(cv_secret_len(&s1), 12);
	CV_CHECK(!cv_secret_equal(&s1, &s2));

	struct cv_secret *all[] = {&k1, &k2, &a1, &b1, &a2,
				   &b2, &a3, &b3, &s1, &s2};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cv_secret_wipe(all[i]);
	EVP_PKEY *keys[] = {kms, eph, c, s, kms_pub, eph_pub, c_pub, s_pub};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EVP_PKEY_free(keys[i]);
}

static void test_tokens(void)
{
	struct cv_secret key = {0}, other = {0};
	cv_secret_set(&key, (const uint8_t *)"0123456789abcdef0123456789abcdef",
		      32);
	cv_secret_set(&other, (const uint8_t *)"fedcba9876543210fedcba98765432",
		      30);
	char tok[1024], sub[CV_KMS_ID_MAX + 1];
	int64_t exp = 0;
	const char *aud = CV_KMS_TOKEN_AUDIENCE_DEFAULT;
	CV_CHECK_INT(cv_kms_token_issue(&key, "idp", aud, "alice-1", 1000, 2000,
					tok, sizeof(tok)),
		     0);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", aud, tok, strlen(tok),
					 1500, sub, &exp),
		     0);
	CV_CHECK_STR(sub, "alice-1");
	CV_CHECK_INT(exp, 2000);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", aud, tok, strlen(tok),
					 2000, sub, &exp),
		     CV_EEXPIRED);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp2", aud, tok, strlen(tok),
					 1500, sub, &exp),
		     CV_EAUTH);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", "conclave-node", tok,
					 strlen(tok), 1500, sub, &exp),
		     CV_EAUTH);
	CV_CHECK_INT(cv_kms_token_verify(&other, "idp", aud, tok, strlen(tok),
					 1500, sub, &exp),
		     CV_EAUTH);
	/* iat in the future beyond the leeway. */
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", aud, tok, strlen(tok),
					 900, sub, &exp),
		     CV_EAUTH);
	/* Every flipped character and every truncation is refused. */
	size_t len = strlen(tok);
	int refused = 0;
	for (size_t i = 0; i < len; i++) {
		char save = tok[i];
		tok[i] = save == 'A' ? 'B' : 'A';
		refused += cv_kms_token_verify(&key, "idp", aud, tok, len, 1500,
					       sub, &exp) != 0;
		tok[i] = save;
		refused += cv_kms_token_verify(&key, "idp", aud, tok, i, 1500,
					       sub, &exp) != 0;
	}
	CV_CHECK_INT(refused, 2 * (int)len);
	/* alg none: header {"alg":"none"}, payload of the real token, no
	 * signature. */
	char none[1024];
	const char *dot = strchr(tok, '.');
	const char *dot2 = strchr(dot + 1, '.');
	snprintf(none, sizeof(none), "eyJhbGciOiJub25lIn0%.*s.",
		 (int)(dot2 - dot), dot);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", aud, none, strlen(none),
					 1500, sub, &exp),
		     CV_EAUTH);
	/* A sub that is not an obfuscated id (an e-mail address). */
	CV_CHECK_INT(cv_kms_token_issue(&key, "idp", aud, "a@b.c", 1000, 2000,
					tok, sizeof(tok)),
		     0);
	CV_CHECK_INT(cv_kms_token_verify(&key, "idp", aud, tok, strlen(tok),
					 1500, sub, &exp),
		     CV_EAUTH);
	CV_CHECK_INT(
		cv_kms_token_issue(&key, "idp", aud, "alice", 1, 2, tok, 20),
		-ENOSPC);
	cv_secret_wipe(&key);
	cv_secret_wipe(&other);
}

int main(void)
{
	test_messages();
	test_bodies();
	test_crypto();
	test_tokens();
	return cv_test_done("test_kms_proto");
}
