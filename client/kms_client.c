/*
 * The endpoint side of the client-KMS channel: handshake, sealed
 * requests, and the HTTP carrier. The wire format and the crypto are
 * kms/proto/ (shared with conclave-kms, nothing else is).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/kms_client.h"
#include "conclave/tcp_exchange.h"
#include "kms/proto/kms_proto.h"

#define TIMEOUT_DEFAULT_MS 5000
#define REQ_TTL_DEFAULT_MS 30000
#define HTTP_HEAD_MAX	   4096
/* Extra request headers (cv_kms_client_http_ex): the node token and two
 * short ones fit. */
#define HTTP_EXTRA_MAX (6 * 1024)

struct cv_kms_client {
	char host[64];
	uint16_t port;
	EVP_PKEY *kms_key; /* pinned: the certificate's public key */
	uint8_t kms_pub[CV_KMS_EC_PUB_BYTES];
	char *token;
	size_t token_len;
	char *core_token; /* node JWT for two-part add/remove, or NULL */
	cv_kms_transport_fn transport;
	void *transport_arg;
	uint32_t timeout_ms;
	uint32_t request_ttl_ms;
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	/* the session */
	bool connected;
	uint8_t sid[CV_KMS_SID_BYTES];
	uint64_t expires_ms;
	struct cv_secret c2s, s2c;
	uint64_t seq;	   /* our nonce counter */
	uint64_t resp_seq; /* highest KMS counter accepted */
	enum cv_kms_status status;
	bool answered;
	uint8_t msg[CV_KMS_MSG_MAX_BYTES];
	uint8_t resp[CV_KMS_MSG_MAX_BYTES];
	uint8_t plain[CV_KMS_MSG_MAX_BYTES];
};

static uint64_t now_ms(const struct cv_kms_client *c)
{
	return c->now_ms ? c->now_ms(c->clock_arg) : cv_clock_wall_ms();
}

static int load_cert_key(const struct cv_kms_client_opts *o, EVP_PKEY **out)
{
	BIO *b = o->kms_cert_pem ? BIO_new_mem_buf(o->kms_cert_pem, -1)
				 : BIO_new_file(o->kms_cert_file, "r");
	if (!b) {
		ERR_clear_error();
		return o->kms_cert_pem ? -ENOMEM : -ENOENT;
	}
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (!x)
		return CV_EPARSE;
	EVP_PKEY *k = X509_get_pubkey(x);
	X509_free(x);
	if (!k)
		return CV_EPARSE;
	*out = k;
	return 0;
}

int cv_kms_client_create(struct cv_kms_client **out,
			 const struct cv_kms_client_opts *o)
{
	if (!out || !o || !o->token || !o->token[0] ||
	    strlen(o->token) > CV_KMS_TOKEN_MAX_BYTES ||
	    (o->core_token &&
	     !cv_kms_wire_str_valid(o->core_token, strlen(o->core_token),
				    CV_KMS_TOKEN_MAX_BYTES)) ||
	    !o->kms_cert_file == !o->kms_cert_pem ||
	    (!o->transport && (!o->host || strlen(o->host) >= 64)))
		return -EINVAL;
	struct cv_kms_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->token = strdup(o->token);
	if (o->core_token)
		c->core_token = strdup(o->core_token);
	int err = c->token && (!o->core_token || c->core_token)
			  ? load_cert_key(o, &c->kms_key)
			  : -ENOMEM;
	if (!err && cv_kms_ec_pub_encode(c->kms_key, c->kms_pub))
		err = CV_EUNSUPP;
	if (err) {
		cv_kms_client_destroy(c);
		return err;
	}
	c->token_len = strlen(c->token);
	if (o->host)
		snprintf(c->host, sizeof(c->host), "%s", o->host);
	c->port = o->port;
	c->transport = o->transport;
	c->transport_arg = o->transport_arg;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : TIMEOUT_DEFAULT_MS;
	c->request_ttl_ms =
		o->request_ttl_ms ? o->request_ttl_ms : REQ_TTL_DEFAULT_MS;
	c->now_ms = o->now_ms;
	c->clock_arg = o->clock_arg;
	*out = c;
	return 0;
}

static void session_end(struct cv_kms_client *c)
{
	cv_secret_wipe(&c->c2s);
	cv_secret_wipe(&c->s2c);
	c->connected = false;
	c->seq = c->resp_seq = 0;
}

void cv_kms_client_destroy(struct cv_kms_client *c)
{
	if (!c)
		return;
	session_end(c);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	if (c->core_token) {
		OPENSSL_cleanse(c->core_token, strlen(c->core_token));
		free(c->core_token);
	}
	EVP_PKEY_free(c->kms_key);
	OPENSSL_cleanse(c->plain, sizeof(c->plain));
	free(c);
}

const char *cv_kms_client_status(const struct cv_kms_client *c)
{
	return c && c->answered ? cv_kms_status_name(c->status) : "";
}

static int status_err(enum cv_kms_status st)
{
	switch (st) {
	case CV_KMS_OK:
		return 0;
	case CV_KMS_TOKEN_INVALID:
		return CV_EAUTH;
	case CV_KMS_TOKEN_EXPIRED:
	case CV_KMS_REQUEST_EXPIRED:
		return CV_EEXPIRED;
	case CV_KMS_REPLAYED:
		return CV_EREPLAY;
	case CV_KMS_NOT_MEMBER:
		return -EACCES;
	case CV_KMS_UNKNOWN_ROOM:
		return -ENOENT;
	case CV_KMS_EXISTS:
		return -EEXIST;
	case CV_KMS_UNKNOWN_SESSION:
		return -ENOTCONN;
	case CV_KMS_BAD_REQUEST:
		return -EINVAL;
	default:
		return -EPROTO;
	}
}

/* core: the node's part of an add/remove (headers for the relay), or
 * NULL. */
static int exchange(struct cv_kms_client *c, size_t len, const char *core,
		    size_t *resp_len)
{
	if (c->transport)
		return c->transport(c->transport_arg, c->msg, len, c->resp,
				    sizeof(c->resp), resp_len);
	return cv_kms_client_http_ex(c->host, c->port, c->timeout_ms, core,
				     c->msg, len, c->resp, sizeof(c->resp),
				     resp_len, NULL, 0);
}

/* The Conclave-Core/Op/Member lines of a two-part add/remove (docs/kms.md)
 * into out, or NULL when there is no node token or the op is another. */
static const char *core_headers(const struct cv_kms_client *c,
				enum cv_kms_op op, const char *member,
				char *out, size_t cap)
{
	if (!c->core_token || !member ||
	    (op != CV_KMS_OP_ADD_MEMBER && op != CV_KMS_OP_REMOVE_MEMBER))
		return NULL;
	int n = snprintf(out, cap,
			 "Conclave-Core: %s\r\nConclave-Op: %s\r\n"
			 "Conclave-Member: %s\r\n",
			 c->core_token,
			 op == CV_KMS_OP_ADD_MEMBER ? "add_member"
						    : "remove_member",
			 member);
	return n > 0 && (size_t)n < cap ? out : NULL;
}

/* A plain ERROR answer: unauthenticated (a relay could forge one), so it
 * only ever makes a call fail, never succeed. */
static int plain_error(struct cv_kms_client *c, const struct cv_kms_msg *m)
{
	c->status = m->status;
	c->answered = true;
	if (m->status == CV_KMS_UNKNOWN_SESSION)
		session_end(c);
	return status_err(m->status);
}

/* ---- handshake ------------------------------------------------------------
 */

/* Writes the HELLO into c->msg: body sealed to the KMS key (ECIES). */
static int hello_build(struct cv_kms_client *c, EVP_PKEY *mine, size_t *len)
{
	EVP_PKEY *eph = NULL;
	struct cv_secret k = {0};
	uint8_t eph_pub[CV_KMS_EC_PUB_BYTES], my_pub[CV_KMS_EC_PUB_BYTES];
	uint8_t rnd[CV_KMS_RANDOM_BYTES];
	int n, err = cv_kms_ec_generate(&eph);
	if (!err)
		err = cv_kms_ec_pub_encode(eph, eph_pub);
	if (!err)
		err = cv_kms_ec_pub_encode(mine, my_pub);
	if (!err && RAND_bytes(rnd, sizeof(rnd)) != 1)
		err = CV_ECRYPTO;
	if (!err)
		err = cv_kms_hello_key(eph, c->kms_key, eph_pub, c->kms_pub,
				       &k);
	EVP_PKEY_free(eph);
	struct cv_kms_hello_body b = {
		.client_pub = my_pub,
		.random = rnd,
		.time_ms = now_ms(c),
		.token = c->token,
		.token_len = c->token_len,
	};
	if (!err &&
	    (n = cv_kms_hello_body_write(c->plain, sizeof(c->plain), &b)) < 0)
		err = n;
	size_t body = err ? 0 : (size_t)n;
	if (!err &&
	    body + CV_KMS_TAG_BYTES + CV_KMS_HELLO_HEAD_BYTES > sizeof(c->msg))
		err = -ENOBUFS;
	if (!err &&
	    (n = cv_kms_hello_head_write(c->msg, sizeof(c->msg), eph_pub,
					 body + CV_KMS_TAG_BYTES)) < 0)
		err = n;
	/* The hello key is used once: nonce counter 0. */
	if (!err &&
	    (n = cv_kms_seal(&k, 0, c->msg, CV_KMS_HELLO_HEAD_BYTES, c->plain,
			     body, c->msg + CV_KMS_HELLO_HEAD_BYTES)) < 0)
		err = n;
	if (!err)
		*len = CV_KMS_HELLO_HEAD_BYTES + (size_t)n;
	cv_secret_wipe(&k);
	OPENSSL_cleanse(c->plain, sizeof(c->plain));
	return err;
}

int cv_kms_client_connect(struct cv_kms_client *c)
{
	if (!c)
		return -EINVAL;
	session_end(c);
	EVP_PKEY *mine = NULL, *kms = NULL;
	size_t len = 0, rlen = 0;
	struct cv_kms_msg m;
	uint8_t th[CV_KMS_HASH_BYTES];
	int err = cv_kms_ec_generate(&mine);
	if (!err)
		err = hello_build(c, mine, &len);
	if (!err)
		err = exchange(c, len, NULL, &rlen);
	if (!err && cv_kms_msg_parse(c->resp, rlen, &m))
		err = CV_EPROTO;
	if (!err && m.type == CV_KMS_MSG_ERROR) {
		err = plain_error(c, &m);
		goto out;
	}
	if (!err && m.type != CV_KMS_MSG_HELLO_REPLY)
		err = CV_EPROTO;
	if (!err)
		err = cv_kms_transcript(c->msg, len, m.head, m.head_len, th);
	/* The KMS proves itself by signing the transcript with the pinned
	 * certificate key; nothing of a reply that fails is used. */
	if (!err)
		err = cv_kms_reply_verify(c->kms_key, th, m.sig, m.sig_len);
	if (!err && cv_kms_ec_pub_decode(m.kms_pub, &kms))
		err = CV_EPROTO;
	if (!err)
		err = cv_kms_channel_keys(mine, kms, th, &c->c2s, &c->s2c);
	if (!err) {
		memcpy(c->sid, m.sid, CV_KMS_SID_BYTES);
		c->expires_ms = m.expires_ms;
		c->connected = true;
		c->status = CV_KMS_OK;
		c->answered = true;
	}
out:
	EVP_PKEY_free(mine);
	EVP_PKEY_free(kms);
	return err;
}

/* ---- requests -------------------------------------------------------------
 */

/* Sends one request; on success c->plain holds the RESPONSE body, parsed
 * into *r (status ok, our seq and op). assoc, fp: REGISTER_ENDPOINT's
 * (CV_KMS_ASSOC_BYTES, CV_KMS_FP_BYTES), else NULL. */
static int request(struct cv_kms_client *c, enum cv_kms_op op, const char *room,
		   const char *member, const uint8_t *assoc, const uint8_t *fp,
		   struct cv_kms_resp *r)
{
	if (!c || !room)
		return -EINVAL;
	if (!c->connected)
		return -ENOTCONN;
	struct cv_kms_req q = {
		.op = op,
		.expires_ms = now_ms(c) + c->request_ttl_ms,
		.room = room,
		.room_len = strlen(room),
		.member = member ? member : "",
		.member_len = member ? strlen(member) : 0,
		.assoc = assoc,
		.fp = fp,
	};
	char core_buf[HTTP_EXTRA_MAX];
	const char *core =
		core_headers(c, op, member, core_buf, sizeof(core_buf));
	uint8_t body[2 + 8 + 2 * 256 + CV_KMS_ASSOC_BYTES + CV_KMS_FP_BYTES];
	int n = cv_kms_req_write(body, sizeof(body), &q);
	if (n < 0)
		return -EINVAL;
	uint64_t seq = ++c->seq;
	int h = cv_kms_sealed_head_write(c->msg, sizeof(c->msg),
					 CV_KMS_MSG_REQUEST, c->sid, seq);
	if (h < 0)
		return h;
	int s = cv_kms_seal(&c->c2s, seq, c->msg, (size_t)h, body, (size_t)n,
			    c->msg + h);
	if (s < 0)
		return s;
	size_t rlen = 0;
	struct cv_kms_msg m;
	int err = exchange(c, (size_t)h + (size_t)s, core, &rlen);
	if (core)
		OPENSSL_cleanse(core_buf, sizeof(core_buf));
	if (err)
		return err;
	if (cv_kms_msg_parse(c->resp, rlen, &m))
		return CV_EPROTO;
	if (m.type == CV_KMS_MSG_ERROR)
		return plain_error(c, &m);
	if (m.type != CV_KMS_MSG_RESPONSE ||
	    memcmp(m.sid, c->sid, CV_KMS_SID_BYTES) != 0)
		return CV_EPROTO;
	n = cv_kms_open(&c->s2c, m.seq, m.head, m.head_len, m.sealed,
			m.sealed_len, c->plain);
	if (n < 0)
		return n == CV_EINTEGRITY ? n : CV_EPROTO;
	/* The KMS's counter only grows: an old answer replayed to us by a
	 * relay is refused. */
	if (m.seq <= c->resp_seq || cv_kms_resp_parse(c->plain, (size_t)n, r))
		return CV_EPROTO;
	c->resp_seq = m.seq;
	c->status = r->status;
	c->answered = true;
	if (r->status != CV_KMS_OK)
		return status_err(r->status);
	if (r->req_seq != seq || r->op != op)
		return CV_EPROTO;
	return 0;
}

static int epoch_call(struct cv_kms_client *c, enum cv_kms_op op,
		      const char *room, const char *member, uint32_t *epoch)
{
	struct cv_kms_resp r;
	int err = request(c, op, room, member, NULL, NULL, &r);
	if (!err && epoch)
		*epoch = r.epoch;
	if (c)
		OPENSSL_cleanse(c->plain, sizeof(c->plain));
	return err;
}

int cv_kms_client_create_room(struct cv_kms_client *c, const char *room,
			      uint32_t *epoch)
{
	return epoch_call(c, CV_KMS_OP_CREATE_ROOM, room, NULL, epoch);
}

int cv_kms_client_add_member(struct cv_kms_client *c, const char *room,
			     const char *member, uint32_t *epoch)
{
	if (!member)
		return -EINVAL;
	return epoch_call(c, CV_KMS_OP_ADD_MEMBER, room, member, epoch);
}

int cv_kms_client_remove_member(struct cv_kms_client *c, const char *room,
				const char *member, uint32_t *epoch)
{
	if (!member)
		return -EINVAL;
	return epoch_call(c, CV_KMS_OP_REMOVE_MEMBER, room, member, epoch);
}

void cv_kms_room_key_wipe(struct cv_kms_room_key *k)
{
	if (!k)
		return;
	cv_secret_wipe(&k->key);
	cv_secret_wipe(&k->inner_salt);
	memset(k, 0, sizeof(*k));
}

int cv_kms_client_get_room_key(struct cv_kms_client *c, const char *room,
			       struct cv_kms_room_key *out)
{
	if (!out)
		return -EINVAL;
	struct cv_kms_resp r;
	int err = request(c, CV_KMS_OP_GET_KEY, room, NULL, NULL, NULL, &r);
	if (!err) {
		cv_kms_room_key_wipe(out);
		out->epoch = r.epoch;
		out->spi = r.spi;
		memcpy(out->uri, r.uri, r.uri_len);
		out->uri[r.uri_len] = '\0';
		cv_secret_set(&out->key, r.key, r.key_len);
		cv_secret_set(&out->inner_salt, r.salt, r.salt_len);
		if (r.kd_fp_len == CV_KMS_FP_BYTES) {
			out->kd_fp.hash = CV_DTLS_HASH_SHA256;
			out->kd_fp.len = CV_KMS_FP_BYTES;
			memcpy(out->kd_fp.md, r.kd_fp, CV_KMS_FP_BYTES);
		}
	}
	if (c)
		OPENSSL_cleanse(c->plain, sizeof(c->plain));
	return err;
}

int cv_kms_client_register_endpoint(struct cv_kms_client *c, const char *room,
				    const struct cv_tunnel_assoc_id *assoc,
				    const struct cv_dtls_fingerprint *fp)
{
	if (!assoc || !fp || fp->hash != CV_DTLS_HASH_SHA256 ||
	    fp->len != CV_KMS_FP_BYTES)
		return -EINVAL;
	struct cv_kms_resp r;
	int err = request(c, CV_KMS_OP_REGISTER_ENDPOINT, room, NULL, assoc->b,
			  fp->md, &r);
	if (c)
		OPENSSL_cleanse(c->plain, sizeof(c->plain));
	return err;
}

int cv_kms_room_key_to_ekt(const struct cv_kms_room_key *k,
			   struct cv_perc_ekt_key *out)
{
	if (!k || !out ||
	    cv_secret_len(&k->inner_salt) != CV_PERC_HALF_SALT_BYTES)
		return -EINVAL;
	out->spi = k->spi;
	cv_secret_copy(&out->key, &k->key);
	cv_secret_copy(&out->inner_salt, &k->inner_salt);
	return 0;
}

/* ---- HTTP carrier ---------------------------------------------------------
 */

/* Copies the value of the Conclave-Status header of head[0..h) into out
 * ("" when absent). */
static void http_status_header(const uint8_t *buf, size_t h, char *out,
			       size_t cap)
{
	static const char name[] = "conclave-status:";
	const size_t nl = sizeof(name) - 1;
	out[0] = '\0';
	for (size_t i = 0; i + nl < h; i++) {
		if ((i != 0 && buf[i - 1] != '\n') ||
		    strncasecmp((const char *)buf + i, name, nl))
			continue;
		size_t a = i + nl, e = a;
		while (a < h && buf[a] == ' ')
			a++;
		e = a;
		while (e < h && buf[e] > 0x20 && buf[e] < 0x7f)
			e++;
		if (e - a < cap) {
			memcpy(out, buf + a, e - a);
			out[e - a] = '\0';
		}
		return;
	}
}

/* "HTTP/1.1 200 ..." head, Content-Length, body = the rest. */
static int http_body(const uint8_t *buf, size_t got, const uint8_t **body,
		     size_t *blen)
{
	size_t h = 0;
	for (size_t i = 0; i + 3 < got && !h; i++)
		if (!memcmp(buf + i, "\r\n\r\n", 4))
			h = i + 4;
	if (!h || got < 12 || memcmp(buf, "HTTP/1.", 7) != 0 ||
	    memcmp(buf + 8, " 200", 4) != 0)
		return -EIO;
	long clen = -1;
	for (size_t i = 0; i + 15 < h; i++)
		if ((i == 0 || buf[i - 1] == '\n') &&
		    !strncasecmp((const char *)buf + i, "content-length:", 15))
			clen = strtol((const char *)buf + i + 15, NULL, 10);
	if (clen < 0 || (size_t)clen != got - h)
		return -EIO;
	*body = buf + h;
	*blen = (size_t)clen;
	return 0;
}

/* Extra header lines: "Name: value\r\n" each (none empty), printable
 * otherwise: nothing can end the head early or smuggle a line. */
static bool headers_valid(const char *h)
{
	size_t n = strlen(h), line = 0;
	if (n > HTTP_EXTRA_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];
		if (ch == '\r') {
			if (h[i + 1] != '\n' || line == 0)
				return false;
			i++;
			line = 0;
			continue;
		}
		if (ch < 0x20 || ch >= 0x7f)
			return false;
		line++;
	}
	return line == 0;
}

int cv_kms_client_http(const char *host, uint16_t port, uint32_t timeout_ms,
		       const uint8_t *req, size_t req_len, uint8_t *resp,
		       size_t cap, size_t *resp_len)
{
	return cv_kms_client_http_ex(host, port, timeout_ms, NULL, req, req_len,
				     resp, cap, resp_len, NULL, 0);
}

int cv_kms_client_http_ex(const char *host, uint16_t port, uint32_t timeout_ms,
			  const char *headers, const uint8_t *req,
			  size_t req_len, uint8_t *resp, size_t cap,
			  size_t *resp_len, char *status, size_t status_cap)
{
	if (!host || !req || !resp || !resp_len ||
	    req_len > CV_KMS_MSG_MAX_BYTES || (status && !status_cap) ||
	    (headers && !headers_valid(headers)))
		return -EINVAL;
	if (status)
		status[0] = '\0';
	char *head = malloc(256 + HTTP_EXTRA_MAX);
	uint8_t *buf = malloc(HTTP_HEAD_MAX + CV_KMS_MSG_MAX_BYTES);
	if (!buf || !head) {
		free(buf);
		free(head);
		return -ENOMEM;
	}
	int hn = snprintf(head, 256 + HTTP_EXTRA_MAX,
			  "POST /v1/channel HTTP/1.1\r\nHost: %s\r\n"
			  "Content-Type: application/octet-stream\r\n"
			  "Content-Length: %zu\r\n%sConnection: close\r\n"
			  "\r\n",
			  host, req_len, headers ? headers : "");
	size_t got = 0, blen = 0;
	const uint8_t *body = NULL;
	int err = cv_tcp_exchange(host, port, timeout_ms, (const uint8_t *)head,
				  (size_t)hn, req, req_len, buf,
				  HTTP_HEAD_MAX + CV_KMS_MSG_MAX_BYTES, &got);
	if (!err)
		err = http_body(buf, got, &body, &blen);
	if (!err && status)
		http_status_header(buf, (size_t)(body - buf), status,
				   status_cap);
	if (!err && blen > cap)
		err = -ENOBUFS;
	if (!err) {
		memcpy(resp, body, blen);
		*resp_len = blen;
	}
	/* The head may hold a node token. */
	OPENSSL_cleanse(head, 256 + HTTP_EXTRA_MAX);
	free(head);
	free(buf);
	return err;
}
