/*
 * The KMS side of the client-KMS channel: KMS tokens, the handshake, the
 * session table with its replay windows, the request dispatch onto the
 * store, and a small HTTP carrier. docs/kms.md, "Client-KMS channel",
 * explains the design; kms/proto/ holds the bytes both sides share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "conclave/base64.h"
#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/admin.h"
#include "kms/channel.h"
#include "kms/endpoints.h"
#include "kms/proto/kms_proto.h"
#include "kms/store.h"

#define MAX_SESSIONS_DEFAULT   1024
#define SESSION_TTL_DEFAULT_MS (3600 * 1000ull)
#define REQUEST_TTL_DEFAULT_MS (300 * 1000ull)
#define REPLAY_WINDOW	       64
#define ISSUER_MAX	       255
#define HTTP_BUF_BYTES	       (CV_KMS_HTTP_HEAD_MAX + CV_KMS_MSG_MAX_BYTES)
#define CHANNEL_PATH	       "/v1/channel"

struct session {
	bool used;
	uint8_t sid[CV_KMS_SID_BYTES];
	char actor[CV_KMS_ID_MAX + 1];
	uint64_t expires_ms;
	struct cv_secret c2s, s2c;
	/* RFC 3711 section 3.3.2-style window over the client's seq:
	 * bit i set = seq max_seq - i was accepted. */
	uint64_t max_seq;
	uint64_t window;
	uint64_t resp_seq; /* our nonce counter (KMS -> client) */
};

struct cv_kms_channel {
	pthread_mutex_t lock; /* guards sessions and the scratch */
	struct cv_kms_store *store;
	EVP_PKEY *cert_key;
	uint8_t cert_pub[CV_KMS_EC_PUB_BYTES];
	struct cv_secret token_secret;
	char issuer[ISSUER_MAX + 1];
	char audience[ISSUER_MAX + 1];
	uint64_t session_ttl_ms;
	uint64_t max_request_ttl_ms;
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	size_t n_sessions;
	struct session *sessions;
	uint8_t plain[CV_KMS_MSG_MAX_BYTES]; /* decrypted bodies; wiped */
	struct cv_kms_endpoints *endpoints;
	bool has_kd_fp;
	uint8_t kd_fp[CV_KMS_FP_BYTES];
	/* HTTP carrier */
	int listen_fd;
	int stop_pipe[2];
	uint16_t port;
	bool listening;
	pthread_t thread;
};

static uint64_t now_ms(struct cv_kms_channel *ch)
{
	return ch->now_ms ? ch->now_ms(ch->clock_arg) : cv_clock_wall_ms();
}

/* ---- KMS tokens (RFC 7519 JWT, RFC 7515 JWS compact, HS256) -------------- */

/* RFC 4648 section 5 without padding (RFC 7515 section 2), strict (one
 * encoding per token): src/core/base64.c. Returns the length or -1. */
static int b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	size_t n;
	if (cv_base64url_decode(in, len, out, cap, &n) != 0 || n > INT_MAX)
		return -1;
	return (int)n;
}

/* Appends the encoding of in[0..len) at out (room checked by the caller);
 * returns the characters written. */
static size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
	size_t n = 0;
	cv_base64url_encode(in, len, out, cv_base64url_encoded_len(len) + 1,
			    &n);
	return n;
}

static json_t *b64_json(const char *p, size_t len)
{
	uint8_t buf[CV_KMS_TOKEN_MAX_BYTES];
	int n = b64url_decode(p, len, buf, sizeof(buf));
	if (n <= 0)
		return NULL;
	json_t *j = json_loadb((const char *)buf, (size_t)n,
			       JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool header_ok(json_t *h)
{
	const char *k;
	json_t *v;
	bool alg = false;
	json_object_foreach(h, k, v)
	{
		if (strcmp(k, "alg") == 0 && json_is_string(v) &&
		    strcmp(json_string_value(v), "HS256") == 0)
			alg = true;
		else if (strcmp(k, "typ") != 0 || !json_is_string(v))
			return false; /* "none", other algs, "crit", ... */
	}
	return alg;
}

static bool aud_ok(json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(aud, i, v)
	{
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), want) == 0)
			return true;
	}
	return false;
}

static int claims_check(json_t *c, const char *issuer, const char *audience,
			int64_t now_s, char *sub, int64_t *exp_s)
{
	json_t *iss = json_object_get(c, "iss");
	json_t *js = json_object_get(c, "sub");
	json_t *exp = json_object_get(c, "exp");
	json_t *nbf = json_object_get(c, "nbf");
	json_t *iat = json_object_get(c, "iat");
	if (!json_is_string(iss) || strcmp(json_string_value(iss), issuer) ||
	    !aud_ok(json_object_get(c, "aud"), audience) ||
	    !json_is_string(js) || !cv_kms_id_valid(json_string_value(js)) ||
	    !json_is_integer(exp) || (nbf && !json_is_integer(nbf)) ||
	    (iat && !json_is_integer(iat)))
		return CV_EAUTH;
	/* RFC 7519 sections 4.1.4 and 4.1.5. */
	if ((nbf && json_integer_value(nbf) > now_s + CV_KMS_TOKEN_LEEWAY_S) ||
	    (iat && json_integer_value(iat) > now_s + CV_KMS_TOKEN_LEEWAY_S))
		return CV_EAUTH;
	if (now_s >= json_integer_value(exp))
		return CV_EEXPIRED;
	snprintf(sub, CV_KMS_ID_MAX + 1, "%s", json_string_value(js));
	*exp_s = json_integer_value(exp);
	return 0;
}

int cv_kms_token_verify(const struct cv_secret *secret, const char *issuer,
			const char *audience, const char *jwt, size_t len,
			int64_t now_s, char *sub, int64_t *exp_s)
{
	if (!secret || !cv_secret_len(secret) || !issuer || !audience || !jwt ||
	    !sub || !exp_s)
		return -EINVAL;
	if (len == 0 || len > CV_KMS_TOKEN_MAX_BYTES)
		return CV_EAUTH;
	const char *d1 = memchr(jwt, '.', len);
	const char *d2 =
		d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
	if (!d1 || !d2 || d1 == jwt || d2 == d1 + 1 ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)))
		return CV_EAUTH;
	/* RFC 7515 section 5.2: the MAC first, over the encoded header and
	 * payload; nothing of a token with a bad MAC is looked at. */
	uint8_t mac[EVP_MAX_MD_SIZE], sig[64];
	unsigned mac_len = 0;
	int sig_len = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), sig,
				    sizeof(sig));
	if (!HMAC(EVP_sha256(), cv_secret_data(secret),
		  (int)cv_secret_len(secret), (const uint8_t *)jwt,
		  (size_t)(d2 - jwt), mac, &mac_len) ||
	    sig_len != (int)mac_len || CRYPTO_memcmp(mac, sig, mac_len) != 0)
		return CV_EAUTH;
	json_t *h = b64_json(jwt, (size_t)(d1 - jwt));
	json_t *c = b64_json(d1 + 1, (size_t)(d2 - d1 - 1));
	int err = CV_EAUTH;
	if (h && c && header_ok(h))
		err = claims_check(c, issuer, audience, now_s, sub, exp_s);
	json_decref(h);
	json_decref(c);
	return err;
}

int cv_kms_token_issue(const struct cv_secret *secret, const char *issuer,
		       const char *audience, const char *sub, int64_t iat_s,
		       int64_t exp_s, char *buf, size_t cap)
{
	if (!secret || !cv_secret_len(secret) || !issuer || !audience || !sub ||
	    !buf)
		return -EINVAL;
	static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", issuer, "aud",
			      audience, "sub", sub, "iat", (json_int_t)iat_s,
			      "exp", (json_int_t)exp_s);
	char *payload = c ? json_dumps(c, JSON_COMPACT) : NULL;
	json_decref(c);
	if (!payload)
		return -EINVAL;
	size_t plen = strlen(payload);
	size_t need = (sizeof(head) * 4 + plen * 4) / 3 + 4 + 43 + 3;
	if (cap < need) {
		free(payload);
		return -ENOSPC;
	}
	size_t n = b64url_encode((const uint8_t *)head, sizeof(head) - 1, buf);
	buf[n++] = '.';
	n += b64url_encode((const uint8_t *)payload, plen, buf + n);
	free(payload);
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	if (!HMAC(EVP_sha256(), cv_secret_data(secret),
		  (int)cv_secret_len(secret), (const uint8_t *)buf, n, mac,
		  &mac_len))
		return -EINVAL;
	buf[n++] = '.';
	b64url_encode(mac, mac_len, buf + n);
	return 0;
}

/* ---- refusals of the channel itself ------------------------------------- */

/*
 * The store audits key accesses and membership changes; what the channel
 * refuses on its own (a bad token, a replay, an actor outside the room)
 * goes through cv_kms_store_audit_refusal(). A row that cannot be written
 * is logged by the store; the refusal stands either way.
 */
static void audit_refusal(struct cv_kms_channel *ch, const char *actor,
			  const char *action, const char *room,
			  const char *reason)
{
	cv_kms_store_audit_refusal(ch->store, actor, action, room, reason);
}

/* ---- sessions ------------------------------------------------------------ */

static void session_clear(struct session *s)
{
	cv_secret_wipe(&s->c2s);
	cv_secret_wipe(&s->s2c);
	OPENSSL_cleanse(s, sizeof(*s));
}

/* A free slot: an unused or expired one, else the one that expires first
 * (a bounded table: everything that grows has a ceiling). */
static struct session *session_slot(struct cv_kms_channel *ch, uint64_t t)
{
	struct session *best = &ch->sessions[0];
	for (size_t i = 0; i < ch->n_sessions; i++) {
		struct session *s = &ch->sessions[i];
		if (!s->used || s->expires_ms <= t) {
			best = s;
			break;
		}
		if (s->expires_ms < best->expires_ms)
			best = s;
	}
	session_clear(best);
	return best;
}

static struct session *session_find(struct cv_kms_channel *ch,
				    const uint8_t *sid, uint64_t t)
{
	for (size_t i = 0; i < ch->n_sessions; i++) {
		struct session *s = &ch->sessions[i];
		if (!s->used || memcmp(s->sid, sid, CV_KMS_SID_BYTES) != 0)
			continue;
		if (s->expires_ms <= t) {
			session_clear(s);
			return NULL;
		}
		return s;
	}
	return NULL;
}

/* Accepts seq once (RFC 3711 section 3.3.2 window, 64 wide); seq 0 and
 * anything left of the window are refused. */
static bool replay_accept(struct session *s, uint64_t seq)
{
	if (seq == 0)
		return false;
	if (seq > s->max_seq) {
		uint64_t d = seq - s->max_seq;
		s->window = d >= REPLAY_WINDOW ? 1 : (s->window << d) | 1;
		s->max_seq = seq;
		return true;
	}
	uint64_t d = s->max_seq - seq;
	if (d >= REPLAY_WINDOW || (s->window >> d) & 1)
		return false;
	s->window |= 1ull << d;
	return true;
}

size_t cv_kms_channel_sessions(struct cv_kms_channel *ch)
{
	pthread_mutex_lock(&ch->lock);
	uint64_t t = now_ms(ch);
	size_t n = 0;
	for (size_t i = 0; i < ch->n_sessions; i++)
		n += ch->sessions[i].used && ch->sessions[i].expires_ms > t;
	pthread_mutex_unlock(&ch->lock);
	return n;
}

/* ---- the handshake ------------------------------------------------------- */

static int answer_error(enum cv_kms_status st, uint8_t *out, size_t cap,
			size_t *out_len)
{
	int n = cv_kms_error_write(out, cap, st);
	if (n < 0)
		return n;
	*out_len = (size_t)n;
	return 0;
}

static enum cv_kms_status token_refusal(struct cv_kms_channel *ch, int err)
{
	bool expired = err == CV_EEXPIRED;
	audit_refusal(ch, "-", "channel.open", "",
		      expired ? "token expired" : "token invalid");
	return expired ? CV_KMS_TOKEN_EXPIRED : CV_KMS_TOKEN_INVALID;
}

/* Opens the ECIES-sealed HELLO body into ch->plain. */
static int hello_open(struct cv_kms_channel *ch, const struct cv_kms_msg *m,
		      struct cv_kms_hello_body *b)
{
	EVP_PKEY *eph = NULL;
	struct cv_secret k = {0};
	int n = cv_kms_ec_pub_decode(m->eph_pub, &eph);
	if (!n)
		n = cv_kms_hello_key(ch->cert_key, eph, m->eph_pub,
				     ch->cert_pub, &k);
	/* The key is used once: nonce counter 0. */
	if (!n)
		n = cv_kms_open(&k, 0, m->head, m->head_len, m->sealed,
				m->sealed_len, ch->plain);
	cv_secret_wipe(&k);
	EVP_PKEY_free(eph);
	if (n < 0)
		return n;
	return cv_kms_hello_body_parse(ch->plain, (size_t)n, b);
}

/* Writes and signs the HELLO_REPLY; derives the session keys. */
static int hello_reply(struct cv_kms_channel *ch, const uint8_t *hello,
		       size_t hello_len, EVP_PKEY *client, struct session *s,
		       uint8_t *out, size_t cap, size_t *out_len)
{
	EVP_PKEY *mine = NULL;
	uint8_t pub[CV_KMS_EC_PUB_BYTES], th[CV_KMS_HASH_BYTES];
	uint8_t sig[CV_KMS_SIG_MAX_BYTES];
	size_t sig_len = 0;
	int n, err = cv_kms_ec_generate(&mine);
	if (!err)
		err = cv_kms_ec_pub_encode(mine, pub);
	if (!err && RAND_bytes(s->sid, sizeof(s->sid)) != 1)
		err = CV_ECRYPTO;
	if (!err && (n = cv_kms_reply_signed_write(out, cap, s->sid, pub,
						   s->expires_ms)) < 0)
		err = n;
	if (!err)
		err = cv_kms_transcript(hello, hello_len, out,
					CV_KMS_REPLY_SIGNED_BYTES, th);
	if (!err)
		err = cv_kms_reply_sign(ch->cert_key, th, sig, &sig_len);
	if (!err &&
	    (n = cv_kms_reply_sig_write(out, cap, CV_KMS_REPLY_SIGNED_BYTES,
					sig, sig_len)) < 0)
		err = n;
	if (!err)
		err = cv_kms_channel_keys(mine, client, th, &s->c2s, &s->s2c);
	EVP_PKEY_free(mine);
	if (!err)
		*out_len = (size_t)n;
	return err;
}

static int handle_hello(struct cv_kms_channel *ch, const struct cv_kms_msg *m,
			const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			size_t *out_len)
{
	struct cv_kms_hello_body b;
	EVP_PKEY *client = NULL;
	char sub[CV_KMS_ID_MAX + 1];
	int64_t exp_s = 0;
	uint64_t t = now_ms(ch);
	enum cv_kms_status st = CV_KMS_BAD_REQUEST;
	int err = hello_open(ch, m, &b);
	if (err)
		goto refuse;
	err = cv_kms_token_verify(&ch->token_secret, ch->issuer, ch->audience,
				  b.token, b.token_len, (int64_t)(t / 1000),
				  sub, &exp_s);
	if (err) {
		st = token_refusal(ch, err);
		goto refuse;
	}
	if ((err = cv_kms_ec_pub_decode(b.client_pub, &client)))
		goto refuse;
	struct session *s = session_slot(ch, t);
	snprintf(s->actor, sizeof(s->actor), "%s", sub);
	s->expires_ms = t + ch->session_ttl_ms;
	if (s->expires_ms > (uint64_t)exp_s * 1000)
		s->expires_ms = (uint64_t)exp_s * 1000;
	err = hello_reply(ch, in, len, client, s, out, cap, out_len);
	EVP_PKEY_free(client);
	if (err) {
		session_clear(s);
		st = CV_KMS_INTERNAL;
		goto refuse;
	}
	s->used = true;
	char a[17];
	cv_log_obfuscate(sub, strlen(sub), a);
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "channel: session opened (actor=%s)",
	       a);
	OPENSSL_cleanse(ch->plain, sizeof(ch->plain));
	return 0;
refuse:
	OPENSSL_cleanse(ch->plain, sizeof(ch->plain));
	return answer_error(st, out, cap, out_len);
}

/* ---- requests ------------------------------------------------------------ */

struct req_ctx {
	struct cv_kms_channel *ch;
	struct session *s;
	char room[CV_KMS_WIRE_URI_MAX + 1];
	char member[CV_KMS_WIRE_ID_MAX + 1];
	struct cv_kms_resp resp;
	struct cv_kms_key key; /* GET_KEY */
	struct cv_secret salt;
	const struct cv_kms_req *req;
};

static enum cv_kms_status store_status(int err)
{
	switch (err) {
	case 0:
		return CV_KMS_OK;
	case -EEXIST:
		return CV_KMS_EXISTS;
	case -ENOENT:
		return CV_KMS_UNKNOWN_ROOM;
	case CV_EAUTH:
		return CV_KMS_NOT_MEMBER;
	case -EINVAL:
		return CV_KMS_BAD_REQUEST;
	default:
		return CV_KMS_INTERNAL;
	}
}

static enum cv_kms_status op_create(struct req_ctx *q)
{
	/* The creator becomes the first member in the same transaction. */
	return store_status(cv_kms_store_create_room_with_member(
		q->ch->store, q->s->actor, q->room, q->s->actor,
		&q->resp.epoch));
}

/* Only a current member may add or remove members. */
static enum cv_kms_status op_membership(struct req_ctx *q)
{
	struct cv_kms_channel *ch = q->ch;
	bool add = q->resp.op == CV_KMS_OP_ADD_MEMBER;
	int err = cv_kms_store_is_member(ch->store, q->room, q->s->actor);
	if (err < 0)
		return err == -EINVAL ? CV_KMS_BAD_REQUEST : CV_KMS_INTERNAL;
	if (err == 0) {
		audit_refusal(ch, q->s->actor,
			      add ? "member.add" : "member.remove", q->room,
			      "actor not a member");
		return CV_KMS_NOT_MEMBER;
	}
	if (add)
		err = cv_kms_store_add_member(ch->store, q->s->actor, q->room,
					      q->member, &q->resp.epoch);
	else
		err = cv_kms_store_remove_member(ch->store, q->s->actor,
						 q->room, q->member,
						 &q->resp.epoch);
	/* Removing someone who is not a member: the room exists (the actor
	 * is in it), so -ENOENT means the member. */
	if (err == -ENOENT && !add)
		return CV_KMS_NOT_MEMBER;
	/* A removed member's endpoints get no more hop keys. */
	if (!err && !add)
		cv_kms_endpoints_forget(ch->endpoints, q->room, q->member);
	return store_status(err);
}

static void hex16(const uint8_t *b, char out[2 * CV_KMS_ASSOC_BYTES + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < CV_KMS_ASSOC_BYTES; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * CV_KMS_ASSOC_BYTES] = '\0';
}

/*
 * REGISTER_ENDPOINT: a member says which certificate (SHA-256
 * fingerprint) its endpoint presents for an association id. Audited
 * either way; the object of the row is the association id in hex.
 */
static enum cv_kms_status op_register(struct req_ctx *q)
{
	struct cv_kms_channel *ch = q->ch;
	const char *action = "endpoint.register";
	char id[2 * CV_KMS_ASSOC_BYTES + 1];
	hex16(q->req->assoc, id);
	if (!ch->endpoints)
		return CV_KMS_BAD_REQUEST;
	int err = cv_kms_store_is_member(ch->store, q->room, q->s->actor);
	if (err < 0)
		return err == -EINVAL ? CV_KMS_BAD_REQUEST : CV_KMS_INTERNAL;
	if (err == 0) {
		cv_kms_store_audit_event(ch->store, q->s->actor, action,
					 q->room, id, false,
					 "actor not a member");
		return CV_KMS_NOT_MEMBER;
	}
	struct cv_tunnel_assoc_id assoc;
	struct cv_dtls_fingerprint fp = {.hash = CV_DTLS_HASH_SHA256,
					 .len = CV_KMS_FP_BYTES};
	memcpy(assoc.b, q->req->assoc, sizeof(assoc.b));
	memcpy(fp.md, q->req->fp, CV_KMS_FP_BYTES);
	err = cv_kms_endpoints_register(ch->endpoints, &assoc, &fp, q->room,
					q->s->actor);
	if (err == -EEXIST) {
		cv_kms_store_audit_event(ch->store, q->s->actor, action,
					 q->room, id, false,
					 "association registered elsewhere");
		return CV_KMS_EXISTS;
	}
	if (err)
		return err == -EINVAL ? CV_KMS_BAD_REQUEST : CV_KMS_INTERNAL;
	cv_kms_store_audit_event(ch->store, q->s->actor, action, q->room, id,
				 true, "");
	return CV_KMS_OK;
}

static enum cv_kms_status op_get_key(struct req_ctx *q)
{
	struct cv_kms_resp *r = &q->resp;
	int err = cv_kms_store_get_current_key(q->ch->store, q->room,
					       q->s->actor, &q->key);
	if (err)
		return store_status(err);
	if (cv_kms_perc_salt(&q->key.key, q->key.uri, &q->salt))
		return CV_KMS_INTERNAL;
	r->epoch = q->key.epoch;
	r->spi = q->key.spi;
	r->key = cv_secret_data(&q->key.key);
	r->key_len = cv_secret_len(&q->key.key);
	r->salt = cv_secret_data(&q->salt);
	r->salt_len = cv_secret_len(&q->salt);
	r->uri = q->key.uri;
	r->uri_len = strlen(q->key.uri);
	if (q->ch->has_kd_fp) {
		r->kd_fp = q->ch->kd_fp;
		r->kd_fp_len = CV_KMS_FP_BYTES;
	}
	return CV_KMS_OK;
}

/* The two parts of a membership change name the same change: the node's
 * (headers, from the node token) and the KMS's (the sealed request and
 * the session's KMS token). */
static bool core_matches(const struct req_ctx *q,
			 const struct cv_kms_core_part *core)
{
	const char *op = q->req->op == CV_KMS_OP_ADD_MEMBER ? "add_member"
			 : q->req->op == CV_KMS_OP_REMOVE_MEMBER
				 ? "remove_member"
				 : NULL;
	return op && core->op && core->room && core->actor && core->member &&
	       !strcmp(core->op, op) && !strcmp(core->room, q->room) &&
	       !strcmp(core->member, q->member) &&
	       !strcmp(core->actor, q->s->actor);
}

static const char *op_action(enum cv_kms_op op)
{
	switch (op) {
	case CV_KMS_OP_ADD_MEMBER:
		return "member.add";
	case CV_KMS_OP_REMOVE_MEMBER:
		return "member.remove";
	default:
		return "channel.request";
	}
}

static enum cv_kms_status dispatch(struct req_ctx *q, const uint8_t *p,
				   size_t len, uint64_t t,
				   const struct cv_kms_core_part *core)
{
	struct cv_kms_channel *ch = q->ch;
	struct cv_kms_req r;
	if (cv_kms_req_parse(p, len, &r)) {
		if (core)
			audit_refusal(ch, q->s->actor, "channel.request", "",
				      "core and kms parts differ");
		return CV_KMS_BAD_REQUEST;
	}
	q->req = &r;
	q->resp.op = r.op;
	memcpy(q->room, r.room, r.room_len);
	q->room[r.room_len] = '\0';
	memcpy(q->member, r.member, r.member_len);
	q->member[r.member_len] = '\0';
	if (t > r.expires_ms) {
		audit_refusal(ch, q->s->actor, "channel.request", q->room,
			      "request expired");
		return CV_KMS_REQUEST_EXPIRED;
	}
	if (r.expires_ms - t > ch->max_request_ttl_ms)
		return CV_KMS_BAD_REQUEST;
	if (core && !core_matches(q, core)) {
		audit_refusal(ch, q->s->actor, op_action(r.op), q->room,
			      "core and kms parts differ");
		return CV_KMS_BAD_REQUEST;
	}
	switch (r.op) {
	case CV_KMS_OP_CREATE_ROOM:
		return op_create(q);
	case CV_KMS_OP_ADD_MEMBER:
	case CV_KMS_OP_REMOVE_MEMBER:
		return op_membership(q);
	case CV_KMS_OP_GET_KEY:
		return op_get_key(q);
	case CV_KMS_OP_REGISTER_ENDPOINT:
		return op_register(q);
	}
	return CV_KMS_BAD_REQUEST;
}

/* Seals the RESPONSE under the session's KMS -> client key. */
static int answer_sealed(struct session *s, const struct cv_kms_resp *r,
			 uint8_t *out, size_t cap, size_t *out_len)
{
	/* GET_KEY: 96 octets around the URI with a 32-octet key and the
	 * KD fingerprint; room to spare. */
	uint8_t body[128 + CV_KMS_WIRE_URI_MAX];
	int n = cv_kms_resp_write(body, sizeof(body), r);
	if (n < 0)
		return n;
	uint64_t seq = ++s->resp_seq;
	int h = cv_kms_sealed_head_write(out, cap, CV_KMS_MSG_RESPONSE, s->sid,
					 seq);
	if (h >= 0 && cap - (size_t)h < (size_t)n + CV_KMS_TAG_BYTES)
		h = -ENOBUFS;
	if (h >= 0)
		h = (n = cv_kms_seal(&s->s2c, seq, out, (size_t)h, body,
				     (size_t)n, out + h)) < 0
			    ? n
			    : h + n;
	OPENSSL_cleanse(body, sizeof(body));
	if (h < 0)
		return h;
	*out_len = (size_t)h;
	return 0;
}

static int handle_request(struct cv_kms_channel *ch, const struct cv_kms_msg *m,
			  const struct cv_kms_core_part *core, uint8_t *out,
			  size_t cap, size_t *out_len,
			  enum cv_kms_status *status)
{
	uint64_t t = now_ms(ch);
	struct session *s = session_find(ch, m->sid, t);
	*status = CV_KMS_UNKNOWN_SESSION;
	if (!s)
		return answer_error(CV_KMS_UNKNOWN_SESSION, out, cap, out_len);
	int n = cv_kms_open(&s->c2s, m->seq, m->head, m->head_len, m->sealed,
			    m->sealed_len, ch->plain);
	*status = CV_KMS_BAD_REQUEST;
	if (n < 0) /* not from the session's client: nothing to audit */
		return answer_error(CV_KMS_BAD_REQUEST, out, cap, out_len);
	struct req_ctx q = {.ch = ch, .s = s};
	q.resp.req_seq = m->seq;
	q.resp.op = CV_KMS_OP_GET_KEY;
	if (!replay_accept(s, m->seq)) {
		struct cv_kms_req r;
		if (!cv_kms_req_parse(ch->plain, (size_t)n, &r)) {
			q.resp.op = r.op;
			memcpy(q.room, r.room, r.room_len);
		}
		audit_refusal(ch, s->actor, "channel.request", q.room,
			      "replayed");
		q.resp.status = CV_KMS_REPLAYED;
	} else {
		q.resp.status = dispatch(&q, ch->plain, (size_t)n, t, core);
	}
	*status = q.resp.status;
	if (q.resp.status != CV_KMS_OK) {
		q.resp.key = q.resp.salt = q.resp.kd_fp = NULL;
		q.resp.uri = NULL;
		q.resp.kd_fp_len = 0;
	}
	int err = answer_sealed(s, &q.resp, out, cap, out_len);
	cv_kms_key_wipe(&q.key);
	cv_secret_wipe(&q.salt);
	OPENSSL_cleanse(ch->plain, sizeof(ch->plain));
	return err;
}

int cv_kms_channel_handle_core(struct cv_kms_channel *ch, const uint8_t *in,
			       size_t len, const struct cv_kms_core_part *core,
			       uint8_t *out, size_t cap, size_t *out_len,
			       enum cv_kms_status *status)
{
	if (!ch || (!in && len) || !out || !out_len ||
	    cap < CV_KMS_MSG_MAX_BYTES)
		return -EINVAL;
	struct cv_kms_msg m;
	enum cv_kms_status st = CV_KMS_BAD_REQUEST;
	pthread_mutex_lock(&ch->lock);
	int err;
	if (!in || cv_kms_msg_parse(in, len, &m)) {
		err = answer_error(CV_KMS_BAD_REQUEST, out, cap, out_len);
	} else if (m.type == CV_KMS_MSG_REQUEST) {
		err = handle_request(ch, &m, core, out, cap, out_len, &st);
	} else if (core) {
		/* Only a sealed add/remove request carries the KMS's part;
		 * the node must not apply its part on anything else. */
		audit_refusal(ch, "-", "channel.request", "",
			      "core and kms parts differ");
		err = answer_error(CV_KMS_BAD_REQUEST, out, cap, out_len);
	} else if (m.type == CV_KMS_MSG_HELLO) {
		err = handle_hello(ch, &m, in, len, out, cap, out_len);
		struct cv_kms_msg a;
		st = !err && !cv_kms_msg_parse(out, *out_len, &a) &&
				     a.type == CV_KMS_MSG_ERROR
			     ? a.status
			     : CV_KMS_OK;
	} else {
		err = answer_error(CV_KMS_BAD_REQUEST, out, cap, out_len);
	}
	pthread_mutex_unlock(&ch->lock);
	if (status)
		*status = err ? CV_KMS_INTERNAL : st;
	return err;
}

int cv_kms_channel_handle(struct cv_kms_channel *ch, const uint8_t *in,
			  size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	return cv_kms_channel_handle_core(ch, in, len, NULL, out, cap, out_len,
					  NULL);
}

/* ---- lifecycle ------------------------------------------------------------
 */

int cv_kms_channel_create(struct cv_kms_channel **out,
			  const struct cv_kms_channel_opts *o)
{
	if (!out || !o || !o->store || !o->cert_key || !o->token_secret ||
	    cv_secret_len(o->token_secret) < CV_KMS_TOKEN_SECRET_MIN_BYTES ||
	    !o->token_issuer || !o->token_issuer[0] ||
	    strlen(o->token_issuer) > ISSUER_MAX ||
	    (o->token_audience && strlen(o->token_audience) > ISSUER_MAX) ||
	    (o->kd_fp && (o->kd_fp->hash != CV_DTLS_HASH_SHA256 ||
			  o->kd_fp->len != CV_KMS_FP_BYTES)))
		return -EINVAL;
	struct cv_kms_channel *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	pthread_mutex_init(&ch->lock, NULL);
	ch->listen_fd = ch->stop_pipe[0] = ch->stop_pipe[1] = -1;
	ch->n_sessions =
		o->max_sessions ? o->max_sessions : MAX_SESSIONS_DEFAULT;
	ch->sessions = calloc(ch->n_sessions, sizeof(*ch->sessions));
	int err = ch->sessions ? 0 : -ENOMEM;
	if (!err && cv_kms_ec_pub_encode(o->cert_key, ch->cert_pub))
		err = -EINVAL;
	if (err)
		goto fail;
	EVP_PKEY_up_ref(o->cert_key);
	ch->cert_key = o->cert_key;
	ch->store = o->store;
	cv_secret_copy(&ch->token_secret, o->token_secret);
	snprintf(ch->issuer, sizeof(ch->issuer), "%s", o->token_issuer);
	snprintf(ch->audience, sizeof(ch->audience), "%s",
		 o->token_audience && o->token_audience[0]
			 ? o->token_audience
			 : CV_KMS_TOKEN_AUDIENCE_DEFAULT);
	ch->session_ttl_ms =
		o->session_ttl_ms ? o->session_ttl_ms : SESSION_TTL_DEFAULT_MS;
	ch->max_request_ttl_ms = o->max_request_ttl_ms ? o->max_request_ttl_ms
						       : REQUEST_TTL_DEFAULT_MS;
	ch->now_ms = o->now_ms;
	ch->clock_arg = o->clock_arg;
	ch->endpoints = o->endpoints;
	if (o->kd_fp && o->kd_fp->hash == CV_DTLS_HASH_SHA256 &&
	    o->kd_fp->len == CV_KMS_FP_BYTES) {
		memcpy(ch->kd_fp, o->kd_fp->md, CV_KMS_FP_BYTES);
		ch->has_kd_fp = true;
	}
	*out = ch;
	return 0;
fail:
	cv_kms_channel_destroy(ch);
	return err;
}

static void stop_server(struct cv_kms_channel *ch)
{
	if (!ch->listening)
		return;
	ssize_t n = write(ch->stop_pipe[1], "x", 1);
	(void)n;
	pthread_join(ch->thread, NULL);
	ch->listening = false;
}

void cv_kms_channel_destroy(struct cv_kms_channel *ch)
{
	if (!ch)
		return;
	stop_server(ch);
	if (ch->stop_pipe[0] >= 0) {
		close(ch->stop_pipe[0]);
		close(ch->stop_pipe[1]);
	}
	if (ch->listen_fd >= 0)
		close(ch->listen_fd);
	for (size_t i = 0; ch->sessions && i < ch->n_sessions; i++)
		session_clear(&ch->sessions[i]);
	free(ch->sessions);
	EVP_PKEY_free(ch->cert_key);
	cv_secret_wipe(&ch->token_secret);
	OPENSSL_cleanse(ch->plain, sizeof(ch->plain));
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* ---- the HTTP carrier -----------------------------------------------------
 */

static void send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void http_answer_st(int fd, int status, const uint8_t *body, size_t len,
			   const char *conclave_status)
{
	const char *reason = status == 200   ? "OK"
			     : status == 404 ? "Not Found"
			     : status == 405 ? "Method Not Allowed"
			     : status == 413 ? "Content Too Large"
					     : "Bad Request";
	char head[320], extra[64] = "";
	if (conclave_status)
		snprintf(extra, sizeof(extra), "Conclave-Status: %s\r\n",
			 conclave_status);
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: "
			 "application/octet-stream\r\nContent-Length: %zu\r\n"
			 "%sCache-Control: no-store\r\nConnection: close\r\n"
			 "\r\n",
			 status, reason, len, extra);
	send_all(fd, (const uint8_t *)head, (size_t)n);
	send_all(fd, body, len);
}

static void http_answer(int fd, int status, const uint8_t *body, size_t len)
{
	http_answer_st(fd, status, body, len, NULL);
}

/*
 * The Content-Length of a head already checked by cv_kms_http_parse
 * (RFC 9112 section 6.3: exactly one, digits only); -1 when missing or
 * bad. Transfer-Encoding is refused: the body must be sized.
 */
static long content_length(const uint8_t *head, size_t len)
{
	long v = -1;
	const uint8_t *p = head, *end = head + len;
	while (p < end) {
		const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (l >= 18 &&
		    strncasecmp((const char *)p, "transfer-encoding:", 18) == 0)
			return -1;
		if (l >= 15 &&
		    strncasecmp((const char *)p, "content-length:", 15) == 0) {
			if (v >= 0)
				return -1;
			const uint8_t *q = p + 15, *qe = p + l;
			while (q < qe && (*q == ' ' || *q == '\t'))
				q++;
			while (qe > q && (qe[-1] == '\r' || qe[-1] == ' ' ||
					  qe[-1] == '\t'))
				qe--;
			if (q == qe || qe - q > 6)
				return -1;
			v = 0;
			for (; q < qe; q++) {
				if (*q < '0' || *q > '9')
					return -1;
				v = v * 10 + (*q - '0');
			}
		}
		p = eol ? eol + 1 : end;
	}
	return v;
}

/*
 * The value of header `name` (with its colon, lower case) in a head
 * already checked by cv_kms_http_parse, trimmed, into out (cap bytes):
 * 0; -ENOENT when absent; CV_EPARSE when repeated, empty or too long.
 */
static int header_value(const uint8_t *head, size_t len, const char *name,
			char *out, size_t cap)
{
	size_t nl = strlen(name);
	int found = -ENOENT;
	const uint8_t *p = head, *end = head + len;
	while (p < end) {
		const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		if (l >= nl && strncasecmp((const char *)p, name, nl) == 0) {
			if (found != -ENOENT)
				return CV_EPARSE;
			const uint8_t *q = p + nl, *qe = p + l;
			while (q < qe && (*q == ' ' || *q == '\t'))
				q++;
			while (qe > q && (qe[-1] == '\r' || qe[-1] == ' ' ||
					  qe[-1] == '\t'))
				qe--;
			if (q == qe || (size_t)(qe - q) >= cap)
				return CV_EPARSE;
			memcpy(out, q, (size_t)(qe - q));
			out[qe - q] = '\0';
			found = 0;
		}
		p = eol ? eol + 1 : end;
	}
	return found;
}

/* The node relay's Conclave-* headers (docs/kms.md, "Two-part membership
 * change"). Returns false when none is there; a missing or malformed one
 * among them is left NULL (and refuses the request). */
struct core_hdrs {
	char room[CV_KMS_WIRE_URI_MAX + 1];
	char actor[CV_KMS_WIRE_ID_MAX + 1];
	char op[16];
	char member[CV_KMS_WIRE_ID_MAX + 1];
	struct cv_kms_core_part part;
};

static bool core_headers(const uint8_t *head, size_t len, struct core_hdrs *h)
{
	struct {
		const char *name;
		char *buf;
		size_t cap;
		const char **field;
	} f[] = {
		{"conclave-room:", h->room, sizeof(h->room), &h->part.room},
		{"conclave-actor:", h->actor, sizeof(h->actor), &h->part.actor},
		{"conclave-op:", h->op, sizeof(h->op), &h->part.op},
		{"conclave-member:", h->member, sizeof(h->member),
		 &h->part.member},
	};
	bool any = false;
	memset(&h->part, 0, sizeof(h->part));
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		int err =
			header_value(head, len, f[i].name, f[i].buf, f[i].cap);
		if (err != -ENOENT)
			any = true;
		if (!err)
			*f[i].field = f[i].buf;
	}
	return any;
}

static size_t head_end(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 3 < len; i++)
		if (!memcmp(p + i, "\r\n\r\n", 4))
			return i + 4;
	return 0;
}

static void serve(struct cv_kms_channel *ch, int fd, uint8_t *buf, uint8_t *out)
{
	size_t got = 0, hlen = 0;
	while (!hlen && got < CV_KMS_HTTP_HEAD_MAX) {
		ssize_t n = recv(fd, buf + got, CV_KMS_HTTP_HEAD_MAX - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		hlen = head_end(buf, got);
	}
	struct cv_kms_http_req req;
	if (!hlen || cv_kms_http_parse(buf, hlen, &req)) {
		http_answer(fd, 400, NULL, 0);
		return;
	}
	if (strcmp(req.path, CHANNEL_PATH) != 0) {
		http_answer(fd, 404, NULL, 0);
		return;
	}
	if (strcmp(req.method, "POST") != 0) {
		http_answer(fd, 405, NULL, 0);
		return;
	}
	long clen = content_length(buf, hlen);
	if (clen < 0 || (size_t)clen > CV_KMS_MSG_MAX_BYTES) {
		http_answer(fd, clen < 0 ? 400 : 413, NULL, 0);
		return;
	}
	size_t want = hlen + (size_t)clen;
	while (got < want) {
		ssize_t n = recv(fd, buf + got, want - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
	}
	size_t out_len = 0;
	struct core_hdrs ch_hdrs;
	bool core = core_headers(buf, hlen, &ch_hdrs);
	enum cv_kms_status st = CV_KMS_BAD_REQUEST;
	if (got != want ||
	    cv_kms_channel_handle_core(ch, buf + hlen, (size_t)clen,
				       core ? &ch_hdrs.part : NULL, out,
				       CV_KMS_MSG_MAX_BYTES, &out_len, &st)) {
		http_answer_st(fd, 400, NULL, 0,
			       core ? cv_kms_status_name(st) : NULL);
		return;
	}
	http_answer_st(fd, 200, out, out_len,
		       core ? cv_kms_status_name(st) : NULL);
}

/* One connection of the listener thread, with its reused scratch. */
struct conn_ctx {
	struct cv_kms_channel *ch;
	uint8_t *buf, *out;
};

static void serve_conn(void *arg, int fd)
{
	struct conn_ctx *c = arg;

	serve(c->ch, fd, c->buf, c->out);
	/* Bodies hold tokens (sealed) and keys (sealed): wipe anyway, the
	 * scratch is reused. */
	OPENSSL_cleanse(c->buf, HTTP_BUF_BYTES);
}

static void *channel_thread(void *arg)
{
	struct conn_ctx c = {.ch = arg,
			     .buf = malloc(HTTP_BUF_BYTES),
			     .out = malloc(CV_KMS_MSG_MAX_BYTES)};

	if (c.buf && c.out)
		cv_kms_accept_loop(c.ch->listen_fd, c.ch->stop_pipe[0],
				   serve_conn, &c);
	free(c.buf);
	free(c.out);
	return NULL;
}

int cv_kms_channel_listen(struct cv_kms_channel *ch, const char *address,
			  uint16_t port)
{
	if (!ch || !address)
		return -EINVAL;
	if (ch->listening)
		return -EALREADY;
	int err = cv_kms_tcp_listen(address, port, false, &ch->listen_fd,
				    &ch->port);
	if (err)
		return err;
	if (pipe2(ch->stop_pipe, O_CLOEXEC) != 0)
		return -errno;
	if ((err = -pthread_create(&ch->thread, NULL, channel_thread, ch)))
		return err;
	ch->listening = true;
	return 0;
}

uint16_t cv_kms_channel_port(const struct cv_kms_channel *ch)
{
	return ch && ch->listening ? ch->port : 0;
}
