/*
 * Client-KMS channel messages: bounds-checked readers and writers. Every
 * read goes through struct rd, which fails once and stays failed, so a
 * truncated message can never be read past its end.
 */
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "kms/proto/kms_proto.h"

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t rd_be(struct rd *r, size_t n)
{
	const uint8_t *p = rd_take(r, n);
	uint64_t v = 0;
	for (size_t i = 0; p && i < n; i++)
		v = v << 8 | p[i];
	return v;
}

struct wr {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool bad;
};

static void wr_put(struct wr *w, const void *src, size_t n)
{
	if (w->bad || w->cap - w->len < n) {
		w->bad = true;
		return;
	}
	if (n)
		memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void wr_be(struct wr *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	wr_put(w, b, n);
}

static int wr_done(const struct wr *w)
{
	return w->bad ? -ENOBUFS : (int)w->len;
}

const char *cv_kms_status_name(unsigned status)
{
	static const char *const names[CV_KMS_STATUS_COUNT] = {
		[CV_KMS_OK] = "ok",
		[CV_KMS_BAD_REQUEST] = "bad_request",
		[CV_KMS_TOKEN_INVALID] = "token_invalid",
		[CV_KMS_TOKEN_EXPIRED] = "token_expired",
		[CV_KMS_REPLAYED] = "replayed",
		[CV_KMS_NOT_MEMBER] = "not_member",
		[CV_KMS_UNKNOWN_ROOM] = "unknown_room",
		[CV_KMS_EXISTS] = "exists",
		[CV_KMS_REQUEST_EXPIRED] = "request_expired",
		[CV_KMS_UNKNOWN_SESSION] = "unknown_session",
		[CV_KMS_INTERNAL] = "internal",
	};
	return status < CV_KMS_STATUS_COUNT ? names[status] : "unknown";
}

bool cv_kms_wire_str_valid(const char *s, size_t len, size_t max)
{
	if (!s || len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
			return false;
	return true;
}

/* ---- outer messages ----------------------------------------------------- */

static int parse_sealed(struct rd *r, struct cv_kms_msg *m)
{
	m->sealed = r->p;
	m->sealed_len = r->left;
	if (r->bad || r->left < CV_KMS_TAG_BYTES)
		return CV_EPARSE;
	return 0;
}

int cv_kms_msg_parse(const uint8_t *buf, size_t len, struct cv_kms_msg *m)
{
	if (!buf || !m)
		return -EINVAL;
	if (len > CV_KMS_MSG_MAX_BYTES)
		return CV_ETOOBIG;
	memset(m, 0, sizeof(*m));
	struct rd r = {.p = buf, .left = len};
	uint64_t version = rd_be(&r, 1);
	uint64_t type = rd_be(&r, 1);
	if (r.bad)
		return CV_EPARSE;
	if (version != CV_KMS_PROTO_VERSION)
		return CV_EUNSUPP;
	m->head = buf;
	m->type = (enum cv_kms_msg_type)type;
	switch (type) {
	case CV_KMS_MSG_HELLO: {
		m->eph_pub = rd_take(&r, CV_KMS_EC_PUB_BYTES);
		uint64_t n = rd_be(&r, 2);
		m->head_len = CV_KMS_HELLO_HEAD_BYTES;
		if (parse_sealed(&r, m) || n != r.left)
			return CV_EPARSE;
		return 0;
	}
	case CV_KMS_MSG_HELLO_REPLY: {
		m->sid = rd_take(&r, CV_KMS_SID_BYTES);
		m->kms_pub = rd_take(&r, CV_KMS_EC_PUB_BYTES);
		m->expires_ms = rd_be(&r, 8);
		m->head_len = CV_KMS_REPLY_SIGNED_BYTES;
		uint64_t n = rd_be(&r, 2);
		if (r.bad || n < 8 || n > CV_KMS_SIG_MAX_BYTES || n != r.left)
			return CV_EPARSE;
		m->sig = rd_take(&r, n);
		m->sig_len = n;
		return 0;
	}
	case CV_KMS_MSG_REQUEST:
	case CV_KMS_MSG_RESPONSE:
		m->sid = rd_take(&r, CV_KMS_SID_BYTES);
		m->seq = rd_be(&r, 8);
		m->head_len = CV_KMS_SEALED_HEAD_BYTES;
		return parse_sealed(&r, m);
	case CV_KMS_MSG_ERROR: {
		uint64_t st = rd_be(&r, 1);
		if (r.bad || r.left || st == CV_KMS_OK ||
		    st >= CV_KMS_STATUS_COUNT)
			return CV_EPARSE;
		m->status = (enum cv_kms_status)st;
		m->head_len = 3;
		return 0;
	}
	default:
		return CV_EPARSE;
	}
}

int cv_kms_hello_head_write(uint8_t *out, size_t cap,
			    const uint8_t eph_pub[CV_KMS_EC_PUB_BYTES],
			    size_t sealed_len)
{
	if (!out || !eph_pub || sealed_len < CV_KMS_TAG_BYTES ||
	    sealed_len > 0xffff)
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, CV_KMS_PROTO_VERSION, 1);
	wr_be(&w, CV_KMS_MSG_HELLO, 1);
	wr_put(&w, eph_pub, CV_KMS_EC_PUB_BYTES);
	wr_be(&w, sealed_len, 2);
	return wr_done(&w);
}

int cv_kms_reply_signed_write(uint8_t *out, size_t cap,
			      const uint8_t sid[CV_KMS_SID_BYTES],
			      const uint8_t kms_pub[CV_KMS_EC_PUB_BYTES],
			      uint64_t expires_ms)
{
	if (!out || !sid || !kms_pub)
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, CV_KMS_PROTO_VERSION, 1);
	wr_be(&w, CV_KMS_MSG_HELLO_REPLY, 1);
	wr_put(&w, sid, CV_KMS_SID_BYTES);
	wr_put(&w, kms_pub, CV_KMS_EC_PUB_BYTES);
	wr_be(&w, expires_ms, 8);
	return wr_done(&w);
}

int cv_kms_reply_sig_write(uint8_t *out, size_t cap, size_t at,
			   const uint8_t *sig, size_t sig_len)
{
	if (!out || !sig || sig_len < 8 || sig_len > CV_KMS_SIG_MAX_BYTES ||
	    at > cap)
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap, .len = at};
	wr_be(&w, sig_len, 2);
	wr_put(&w, sig, sig_len);
	return wr_done(&w);
}

int cv_kms_sealed_head_write(uint8_t *out, size_t cap,
			     enum cv_kms_msg_type type,
			     const uint8_t sid[CV_KMS_SID_BYTES], uint64_t seq)
{
	if (!out || !sid ||
	    (type != CV_KMS_MSG_REQUEST && type != CV_KMS_MSG_RESPONSE))
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, CV_KMS_PROTO_VERSION, 1);
	wr_be(&w, type, 1);
	wr_put(&w, sid, CV_KMS_SID_BYTES);
	wr_be(&w, seq, 8);
	return wr_done(&w);
}

int cv_kms_error_write(uint8_t *out, size_t cap, enum cv_kms_status status)
{
	if (!out || status == CV_KMS_OK || status >= CV_KMS_STATUS_COUNT)
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, CV_KMS_PROTO_VERSION, 1);
	wr_be(&w, CV_KMS_MSG_ERROR, 1);
	wr_be(&w, status, 1);
	return wr_done(&w);
}

/* ---- plaintexts --------------------------------------------------------- */

int cv_kms_hello_body_parse(const uint8_t *p, size_t len,
			    struct cv_kms_hello_body *b)
{
	if (!p || !b)
		return -EINVAL;
	struct rd r = {.p = p, .left = len};
	b->client_pub = rd_take(&r, CV_KMS_EC_PUB_BYTES);
	b->random = rd_take(&r, CV_KMS_RANDOM_BYTES);
	b->time_ms = rd_be(&r, 8);
	b->token_len = (size_t)rd_be(&r, 2);
	b->token = (const char *)rd_take(&r, b->token_len);
	if (r.bad || r.left || b->token_len == 0 ||
	    b->token_len > CV_KMS_TOKEN_MAX_BYTES)
		return CV_EPARSE;
	return 0;
}

int cv_kms_hello_body_write(uint8_t *out, size_t cap,
			    const struct cv_kms_hello_body *b)
{
	if (!out || !b || !b->client_pub || !b->random || !b->token ||
	    b->token_len == 0 || b->token_len > CV_KMS_TOKEN_MAX_BYTES)
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_put(&w, b->client_pub, CV_KMS_EC_PUB_BYTES);
	wr_put(&w, b->random, CV_KMS_RANDOM_BYTES);
	wr_be(&w, b->time_ms, 8);
	wr_be(&w, b->token_len, 2);
	wr_put(&w, b->token, b->token_len);
	return wr_done(&w);
}

static bool op_valid(uint64_t op)
{
	return op >= CV_KMS_OP_CREATE_ROOM && op <= CV_KMS_OP_REGISTER_ENDPOINT;
}

static bool op_has_member(enum cv_kms_op op)
{
	return op == CV_KMS_OP_ADD_MEMBER || op == CV_KMS_OP_REMOVE_MEMBER;
}

/* The per-op shape of a request: a room always, a member only where the
 * op names one. */
static bool req_valid(const struct cv_kms_req *q)
{
	if (!op_valid(q->op) ||
	    !cv_kms_wire_str_valid(q->room, q->room_len, CV_KMS_WIRE_URI_MAX))
		return false;
	if (op_has_member(q->op))
		return cv_kms_wire_str_valid(q->member, q->member_len,
					     CV_KMS_WIRE_ID_MAX);
	return q->member_len == 0;
}

static bool op_has_endpoint(enum cv_kms_op op)
{
	return op == CV_KMS_OP_REGISTER_ENDPOINT;
}

int cv_kms_req_parse(const uint8_t *p, size_t len, struct cv_kms_req *q)
{
	if (!p || !q)
		return -EINVAL;
	struct rd r = {.p = p, .left = len};
	q->op = (enum cv_kms_op)rd_be(&r, 1);
	q->expires_ms = rd_be(&r, 8);
	q->room_len = (size_t)rd_be(&r, 1);
	q->room = (const char *)rd_take(&r, q->room_len);
	q->member_len = (size_t)rd_be(&r, 1);
	q->member = (const char *)rd_take(&r, q->member_len);
	q->assoc = q->fp = NULL;
	if (op_has_endpoint(q->op)) {
		q->assoc = rd_take(&r, CV_KMS_ASSOC_BYTES);
		q->fp = rd_take(&r, CV_KMS_FP_BYTES);
	}
	if (r.bad || r.left || !req_valid(q))
		return CV_EPARSE;
	return 0;
}

int cv_kms_req_write(uint8_t *out, size_t cap, const struct cv_kms_req *q)
{
	if (!out || !q || !req_valid(q) ||
	    (op_has_endpoint(q->op) && (!q->assoc || !q->fp)))
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, q->op, 1);
	wr_be(&w, q->expires_ms, 8);
	wr_be(&w, q->room_len, 1);
	wr_put(&w, q->room, q->room_len);
	wr_be(&w, q->member_len, 1);
	wr_put(&w, q->member, q->member_len);
	if (op_has_endpoint(q->op)) {
		wr_put(&w, q->assoc, CV_KMS_ASSOC_BYTES);
		wr_put(&w, q->fp, CV_KMS_FP_BYTES);
	}
	return wr_done(&w);
}

/* RFC 8870 section 4.1: the SPI is 15 bits. EKT keys are AES-128 or
 * AES-256 keys; the perc inner salt is 96 bits (RFC 7714 section 8). */
static bool key_body_valid(const struct cv_kms_resp *s)
{
	return (s->key_len == 16 || s->key_len == 32) &&
	       s->salt_len == CV_KMS_WIRE_SALT_MAX && s->spi <= 0x7fff &&
	       cv_kms_wire_str_valid(s->uri, s->uri_len, CV_KMS_WIRE_URI_MAX) &&
	       (s->kd_fp_len == 0 || s->kd_fp_len == CV_KMS_FP_BYTES);
}

int cv_kms_resp_parse(const uint8_t *p, size_t len, struct cv_kms_resp *s)
{
	if (!p || !s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	struct rd r = {.p = p, .left = len};
	s->req_seq = rd_be(&r, 8);
	uint64_t st = rd_be(&r, 1);
	uint64_t op = rd_be(&r, 1);
	if (r.bad || st >= CV_KMS_STATUS_COUNT || !op_valid(op))
		return CV_EPARSE;
	s->status = (enum cv_kms_status)st;
	s->op = (enum cv_kms_op)op;
	if (s->status != CV_KMS_OK || s->op == CV_KMS_OP_REGISTER_ENDPOINT)
		return r.left ? CV_EPARSE : 0;
	s->epoch = (uint32_t)rd_be(&r, 4);
	if (s->op == CV_KMS_OP_GET_KEY) {
		s->spi = (uint16_t)rd_be(&r, 2);
		s->key_len = (size_t)rd_be(&r, 1);
		s->key = rd_take(&r, s->key_len);
		s->salt_len = (size_t)rd_be(&r, 1);
		s->salt = rd_take(&r, s->salt_len);
		s->uri_len = (size_t)rd_be(&r, 1);
		s->uri = (const char *)rd_take(&r, s->uri_len);
		s->kd_fp_len = (size_t)rd_be(&r, 1);
		s->kd_fp = s->kd_fp_len ? rd_take(&r, s->kd_fp_len) : NULL;
		if (!r.bad && !key_body_valid(s))
			return CV_EPARSE;
	}
	if (r.bad || r.left)
		return CV_EPARSE;
	return 0;
}

int cv_kms_resp_write(uint8_t *out, size_t cap, const struct cv_kms_resp *s)
{
	if (!out || !s || s->status >= CV_KMS_STATUS_COUNT || !op_valid(s->op))
		return -EINVAL;
	struct wr w = {.p = out, .cap = cap};
	wr_be(&w, s->req_seq, 8);
	wr_be(&w, s->status, 1);
	wr_be(&w, s->op, 1);
	if (s->status != CV_KMS_OK || s->op == CV_KMS_OP_REGISTER_ENDPOINT)
		return wr_done(&w);
	wr_be(&w, s->epoch, 4);
	if (s->op == CV_KMS_OP_GET_KEY) {
		if (!key_body_valid(s) || !s->key || !s->salt ||
		    (s->kd_fp_len && !s->kd_fp))
			return -EINVAL;
		wr_be(&w, s->spi, 2);
		wr_be(&w, s->key_len, 1);
		wr_put(&w, s->key, s->key_len);
		wr_be(&w, s->salt_len, 1);
		wr_put(&w, s->salt, s->salt_len);
		wr_be(&w, s->uri_len, 1);
		wr_put(&w, s->uri, s->uri_len);
		wr_be(&w, s->kd_fp_len, 1);
		wr_put(&w, s->kd_fp, s->kd_fp_len);
	}
	return wr_done(&w);
}
