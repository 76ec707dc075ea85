/*
 * Client-KMS channel fuzz target (kms/proto/kms_proto.h): the outer
 * framing every relay and the KMS parse first, then the plaintexts the
 * KMS reads after decryption (the request, REGISTER_ENDPOINT's included,
 * the hello body) and the client reads (the response, with the Key
 * Distributor's fingerprint), and the KMS token verifier. Whatever parses must
 * lie inside the input and re-encode to the same octets.
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/secret.h"
#include "kms/channel.h"
#include "kms/proto/kms_proto.h"
#include "kms/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok)
{
	if (!ok)
		abort();
}

static bool inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
	const uint8_t *q = p;
	return q >= data && n <= size && q + n <= data + size;
}

static void outer(const uint8_t *data, size_t size)
{
	struct cv_kms_msg m;
	uint8_t out[CV_KMS_MSG_MAX_BYTES];
	if (cv_kms_msg_parse(data, size, &m) != 0)
		return;
	int w = -1;
	switch (m.type) {
	case CV_KMS_MSG_HELLO:
		require(inside(m.sealed, m.sealed_len, data, size));
		require(m.sealed_len >= CV_KMS_TAG_BYTES);
		w = cv_kms_hello_head_write(out, sizeof(out), m.eph_pub,
					    m.sealed_len);
		require(w == (int)m.head_len);
		require(w + m.sealed_len == size);
		break;
	case CV_KMS_MSG_HELLO_REPLY:
		require(inside(m.sig, m.sig_len, data, size));
		w = cv_kms_reply_signed_write(out, sizeof(out), m.sid,
					      m.kms_pub, m.expires_ms);
		require(w == (int)m.head_len);
		w = cv_kms_reply_sig_write(out, sizeof(out), (size_t)w, m.sig,
					   m.sig_len);
		require(w == (int)size);
		break;
	case CV_KMS_MSG_REQUEST:
	case CV_KMS_MSG_RESPONSE:
		require(inside(m.sealed, m.sealed_len, data, size));
		w = cv_kms_sealed_head_write(out, sizeof(out), m.type, m.sid,
					     m.seq);
		require(w == (int)m.head_len);
		require(w + m.sealed_len == size);
		break;
	case CV_KMS_MSG_ERROR:
		w = cv_kms_error_write(out, sizeof(out), m.status);
		require(w == (int)size);
		break;
	}
	require(w > 0 && memcmp(out, data, (size_t)w) == 0);
}

static void plaintexts(const uint8_t *data, size_t size)
{
	uint8_t out[CV_KMS_MSG_MAX_BYTES];
	struct cv_kms_req q;
	if (cv_kms_req_parse(data, size, &q) == 0) {
		require(inside(q.room, q.room_len, data, size));
		require(q.member_len == 0 ||
			inside(q.member, q.member_len, data, size));
		/* REGISTER_ENDPOINT's id and fingerprint, and nothing
		 * else's. */
		require((q.op == CV_KMS_OP_REGISTER_ENDPOINT) ==
			(q.assoc != NULL && q.fp != NULL));
		require(!q.assoc ||
			(inside(q.assoc, CV_KMS_ASSOC_BYTES, data, size) &&
			 inside(q.fp, CV_KMS_FP_BYTES, data, size)));
		int w = cv_kms_req_write(out, sizeof(out), &q);
		require(w == (int)size && memcmp(out, data, size) == 0);
	}
	struct cv_kms_hello_body b;
	if (cv_kms_hello_body_parse(data, size, &b) == 0) {
		require(inside(b.token, b.token_len, data, size));
		int w = cv_kms_hello_body_write(out, sizeof(out), &b);
		require(w == (int)size && memcmp(out, data, size) == 0);
	}
	struct cv_kms_resp r;
	if (cv_kms_resp_parse(data, size, &r) == 0) {
		require(r.kd_fp_len == 0 || r.kd_fp_len == CV_KMS_FP_BYTES);
		require(!r.kd_fp_len ||
			inside(r.kd_fp, r.kd_fp_len, data, size));
		int w = cv_kms_resp_write(out, sizeof(out), &r);
		require(w == (int)size && memcmp(out, data, size) == 0);
	}
}

static void token(const uint8_t *data, size_t size)
{
	static const char key[] = "fuzz-kms-token-secret-0123456789abcdef";
	struct cv_secret s = {0};
	char sub[CV_KMS_ID_MAX + 1];
	int64_t exp = 0;
	cv_secret_set(&s, (const uint8_t *)key, sizeof(key) - 1);
	int rc = cv_kms_token_verify(&s, "idp", CV_KMS_TOKEN_AUDIENCE_DEFAULT,
				     (const char *)data, size, 1000, sub, &exp);
	if (rc == 0)
		require(cv_kms_id_valid(sub) && exp > 1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	outer(data, size);
	plaintexts(data, size);
	token(data, size);
	return 0;
}
