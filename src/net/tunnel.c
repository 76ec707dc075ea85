/*
 * The RFC 9185 tunnel: TunnelMessage codec, the TLS 1.3 pieces both ends
 * share, and the node's end of the link (a reconnecting TLS client on a
 * cv_loop). See include/conclave/tunnel.h and docs/perc.md ("Tunnel").
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "conclave/tunnel.h"

/* ---- Codec ---- */

/* A bounds-checked reader over one message body. */
struct rd {
	const uint8_t *p;
	size_t left;
};

static bool rd_u8(struct rd *r, uint8_t *v)
{
	if (r->left < 1)
		return false;
	*v = r->p[0];
	r->p++;
	r->left--;
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	if (r->left < 2)
		return false;
	*v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return true;
}

static bool rd_bytes(struct rd *r, size_t n, const uint8_t **v)
{
	if (r->left < n)
		return false;
	*v = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

/*
 * An opaque vector<floor..255>: one length octet (RFC 8446 section 3.4:
 * the length prefix is as wide as the ceiling needs).
 */
static bool rd_vec8(struct rd *r, size_t floor, const uint8_t **v, size_t *len)
{
	uint8_t n;

	if (!rd_u8(r, &n) || n < floor || !rd_bytes(r, n, v))
		return false;
	*len = n;
	return true;
}

static bool rd_assoc(struct rd *r, struct cv_tunnel_assoc_id *id)
{
	const uint8_t *p;

	if (!rd_bytes(r, CV_TUNNEL_ASSOC_ID_BYTES, &p))
		return false;
	memcpy(id->b, p, CV_TUNNEL_ASSOC_ID_BYTES);
	return true;
}

size_t cv_tunnel_hop_key_len(uint16_t profile)
{
	/* RFC 8723 section 5.1: the double profiles' master key is inner ||
	 * outer, 2 x 16 or 2 x 32 octets; the outer half is hop-by-hop. */
	switch (profile) {
	case CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM:
		return 16;
	case CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM:
		return 32;
	default:
		return 0;
	}
}

void cv_tunnel_media_keys_wipe(struct cv_tunnel_media_keys *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

const char *cv_tunnel_msg_type_name(int type)
{
	switch (type) {
	case CV_TUNNEL_SUPPORTED_PROFILES:
		return "supported_profiles";
	case CV_TUNNEL_UNSUPPORTED_VERSION:
		return "unsupported_version";
	case CV_TUNNEL_MEDIA_KEYS:
		return "media_keys";
	case CV_TUNNEL_TUNNELED_DTLS:
		return "tunneled_dtls";
	case CV_TUNNEL_ENDPOINT_DISCONNECT:
		return "endpoint_disconnect";
	default:
		return "unknown";
	}
}

int cv_tunnel_frame_len(const uint8_t *buf, size_t len, size_t *msg_len)
{
	if (!buf || !msg_len)
		return -EINVAL;
	if (len < CV_TUNNEL_HDR_BYTES)
		return -EAGAIN;
	*msg_len = CV_TUNNEL_HDR_BYTES + (((size_t)buf[1] << 8) | buf[2]);
	return 0;
}

/* SupportedProfiles: version, SRTPProtectionProfile profiles<2..2^16-1>. */
static int parse_profiles(struct cv_tunnel_msg *m, struct rd *r)
{
	uint16_t list_len;
	const uint8_t *p;

	if (!rd_u8(r, &m->u.profiles.version) || !rd_u16(r, &list_len))
		return CV_EPARSE;
	/* Each element is 2 octets; the floor is one profile. */
	if (list_len < 2 || list_len % 2 != 0 || !rd_bytes(r, list_len, &p))
		return CV_EPARSE;
	if (r->left != 0)
		return CV_EPARSE;
	if (list_len / 2 > CV_TUNNEL_MAX_PROFILES)
		return CV_ETOOBIG;
	m->u.profiles.n = list_len / 2;
	for (size_t i = 0; i < m->u.profiles.n; i++)
		m->u.profiles.ids[i] =
			(uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
	return 0;
}

static int parse_media_keys(struct cv_tunnel_msg *m, struct rd *r)
{
	struct cv_tunnel_media_keys *k = &m->u.keys;
	const uint8_t *mki, *ck, *sk, *cs, *ss;
	size_t mki_len, ck_len, sk_len, cs_len, ss_len, half;

	/* The whole structure first: a malformed message is CV_EPARSE
	 * whatever it holds. */
	if (!rd_assoc(r, &k->assoc) || !rd_u16(r, &k->profile) ||
	    !rd_vec8(r, 0, &mki, &mki_len) || !rd_vec8(r, 1, &ck, &ck_len) ||
	    !rd_vec8(r, 1, &sk, &sk_len) || !rd_vec8(r, 1, &cs, &cs_len) ||
	    !rd_vec8(r, 1, &ss, &ss_len) || r->left != 0)
		return CV_EPARSE;
	half = cv_tunnel_hop_key_len(k->profile);
	if (half == 0 || mki_len != 0)
		return CV_EUNSUPP;
	/* RFC 9185 section 5 / RFC 8723 section 5.1: the node gets only the
	 * outer half of the double key and salt. */
	if (ck_len != half || sk_len != half ||
	    cs_len != CV_TUNNEL_HOP_SALT_BYTES ||
	    ss_len != CV_TUNNEL_HOP_SALT_BYTES)
		return CV_EPROTO;
	k->key_len = (uint8_t)half;
	memcpy(k->client_write_key, ck, half);
	memcpy(k->server_write_key, sk, half);
	memcpy(k->client_write_salt, cs, CV_TUNNEL_HOP_SALT_BYTES);
	memcpy(k->server_write_salt, ss, CV_TUNNEL_HOP_SALT_BYTES);
	return 0;
}

static int parse_body(struct cv_tunnel_msg *m, struct rd *r)
{
	uint16_t n;

	switch (m->type) {
	case CV_TUNNEL_SUPPORTED_PROFILES:
		return parse_profiles(m, r);
	case CV_TUNNEL_UNSUPPORTED_VERSION:
		if (!rd_u8(r, &m->u.unsupported.highest_version) ||
		    r->left != 0)
			return CV_EPARSE;
		return 0;
	case CV_TUNNEL_MEDIA_KEYS:
		return parse_media_keys(m, r);
	case CV_TUNNEL_TUNNELED_DTLS:
		/* opaque dtls_message<1..2^16-1> */
		if (!rd_assoc(r, &m->u.dtls.assoc) || !rd_u16(r, &n) || n < 1 ||
		    !rd_bytes(r, n, &m->u.dtls.data) || r->left != 0)
			return CV_EPARSE;
		m->u.dtls.len = n;
		return 0;
	case CV_TUNNEL_ENDPOINT_DISCONNECT:
		if (!rd_assoc(r, &m->u.disconnect.assoc) || r->left != 0)
			return CV_EPARSE;
		return 0;
	default:
		return CV_EUNSUPP;
	}
}

int cv_tunnel_msg_parse(struct cv_tunnel_msg *out, const uint8_t *buf,
			size_t len)
{
	struct cv_tunnel_msg m;
	struct rd r;
	size_t total;
	int err;

	if (!out || (!buf && len))
		return -EINVAL;
	if (cv_tunnel_frame_len(buf, len, &total) != 0 || total != len)
		return CV_EPARSE;
	memset(&m, 0, sizeof(m));
	/* Type 0 is reserved, 6-255 unassigned (RFC 9185, IANA registry). */
	if (buf[0] < CV_TUNNEL_SUPPORTED_PROFILES ||
	    buf[0] > CV_TUNNEL_ENDPOINT_DISCONNECT)
		return CV_EUNSUPP;
	m.type = (enum cv_tunnel_msg_type)buf[0];
	r.p = buf + CV_TUNNEL_HDR_BYTES;
	r.left = len - CV_TUNNEL_HDR_BYTES;
	err = parse_body(&m, &r);
	if (err == 0)
		*out = m;
	OPENSSL_cleanse(&m, sizeof(m));
	return err;
}

/* A bounds-checked writer. */
struct wr {
	uint8_t *p;
	size_t cap, len;
	bool over;
};

int cv_tunnel_rx_dispatch(uint8_t *buf, size_t *len, cv_tunnel_msg_fn fn,
			  void *arg)
{
	size_t used = 0, need;
	int err = 0;
	while (cv_tunnel_frame_len(buf + used, *len - used, &need) == 0 &&
	       *len - used >= need) {
		err = fn(arg, buf + used, need);
		OPENSSL_cleanse(buf + used, need);
		used += need;
		if (err)
			break;
	}
	memmove(buf, buf + used, *len - used);
	*len -= used;
	return err;
}

static void wr_bytes(struct wr *w, const void *b, size_t n)
{
	if (w->over || w->cap - w->len < n) {
		w->over = true;
		return;
	}
	if (n == 0) /* b may be NULL (an empty opaque): memcpy forbids it */
		return;
	memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static void wr_u16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	wr_bytes(w, b, 2);
}

static void wr_vec8(struct wr *w, const uint8_t *b, size_t n)
{
	wr_u8(w, (uint8_t)n);
	wr_bytes(w, b, n);
}

static int check_msg(const struct cv_tunnel_msg *m)
{
	size_t half;

	switch (m->type) {
	case CV_TUNNEL_SUPPORTED_PROFILES:
		if (m->u.profiles.n < 1 ||
		    m->u.profiles.n > CV_TUNNEL_MAX_PROFILES)
			return -EINVAL;
		return 0;
	case CV_TUNNEL_UNSUPPORTED_VERSION:
	case CV_TUNNEL_ENDPOINT_DISCONNECT:
		return 0;
	case CV_TUNNEL_MEDIA_KEYS:
		half = cv_tunnel_hop_key_len(m->u.keys.profile);
		if (half == 0 || m->u.keys.key_len != half)
			return -EINVAL;
		return 0;
	case CV_TUNNEL_TUNNELED_DTLS:
		if (!m->u.dtls.data || m->u.dtls.len < 1)
			return -EINVAL;
		if (m->u.dtls.len > CV_TUNNEL_MAX_DTLS)
			return CV_ETOOBIG;
		return 0;
	default:
		return -EINVAL;
	}
}

int cv_tunnel_msg_encode(const struct cv_tunnel_msg *m, uint8_t *buf,
			 size_t cap)
{
	struct wr w = {.p = buf, .cap = cap};
	const struct cv_tunnel_media_keys *k;
	int err;

	if (!m || (!buf && cap))
		return -EINVAL;
	err = check_msg(m);
	if (err)
		return err;
	wr_u8(&w, (uint8_t)m->type);
	wr_u16(&w, 0); /* the length, filled in below */
	switch (m->type) {
	case CV_TUNNEL_SUPPORTED_PROFILES:
		wr_u8(&w, m->u.profiles.version);
		wr_u16(&w, (uint16_t)(2 * m->u.profiles.n));
		for (size_t i = 0; i < m->u.profiles.n; i++)
			wr_u16(&w, m->u.profiles.ids[i]);
		break;
	case CV_TUNNEL_UNSUPPORTED_VERSION:
		wr_u8(&w, m->u.unsupported.highest_version);
		break;
	case CV_TUNNEL_MEDIA_KEYS:
		k = &m->u.keys;
		wr_bytes(&w, k->assoc.b, CV_TUNNEL_ASSOC_ID_BYTES);
		wr_u16(&w, k->profile);
		wr_vec8(&w, NULL, 0); /* no MKI */
		wr_vec8(&w, k->client_write_key, k->key_len);
		wr_vec8(&w, k->server_write_key, k->key_len);
		wr_vec8(&w, k->client_write_salt, CV_TUNNEL_HOP_SALT_BYTES);
		wr_vec8(&w, k->server_write_salt, CV_TUNNEL_HOP_SALT_BYTES);
		break;
	case CV_TUNNEL_TUNNELED_DTLS:
		wr_bytes(&w, m->u.dtls.assoc.b, CV_TUNNEL_ASSOC_ID_BYTES);
		wr_u16(&w, (uint16_t)m->u.dtls.len);
		wr_bytes(&w, m->u.dtls.data, m->u.dtls.len);
		break;
	case CV_TUNNEL_ENDPOINT_DISCONNECT:
		wr_bytes(&w, m->u.disconnect.assoc.b, CV_TUNNEL_ASSOC_ID_BYTES);
		break;
	}
	if (w.over) {
		if (buf && cap)
			OPENSSL_cleanse(buf, w.len);
		return CV_ETOOBIG;
	}
	buf[1] = (uint8_t)((w.len - CV_TUNNEL_HDR_BYTES) >> 8);
	buf[2] = (uint8_t)(w.len - CV_TUNNEL_HDR_BYTES);
	return (int)w.len;
}

/* ---- TLS pieces shared by both ends ---- */

static const EVP_MD *pin_md(enum cv_dtls_hash h)
{
	switch (h) {
	case CV_DTLS_HASH_SHA1:
		return EVP_sha1();
	case CV_DTLS_HASH_SHA256:
		return EVP_sha256();
	case CV_DTLS_HASH_SHA384:
		return EVP_sha384();
	case CV_DTLS_HASH_SHA512:
		return EVP_sha512();
	}
	return NULL;
}

bool cv_tunnel_cert_pinned(X509 *cert, const struct cv_dtls_fingerprint *pins,
			   size_t n)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len;
	const EVP_MD *type;

	if (!cert || !pins)
		return false;
	for (size_t i = 0; i < n; i++) {
		type = pin_md(pins[i].hash);
		if (!type || !X509_digest(cert, type, md, &md_len))
			continue;
		if (md_len == pins[i].len &&
		    CRYPTO_memcmp(md, pins[i].md, md_len) == 0)
			return true;
	}
	return false;
}

int cv_tunnel_txq_push(struct cv_tunnel_txq *q, const struct cv_tunnel_msg *m)
{
	int n;

	if (!q || !m)
		return -EINVAL;
	if (q->off > 0 && q->cap - q->len < CV_TUNNEL_MAX_MSG) {
		memmove(q->buf, q->buf + q->off, q->len - q->off);
		q->len -= q->off;
		OPENSSL_cleanse(q->buf + q->len, q->off);
		q->off = 0;
	}
	n = cv_tunnel_msg_encode(m, q->buf + q->len, q->cap - q->len);
	if (n < 0)
		return n;
	q->len += (size_t)n;
	return 0;
}

int cv_tunnel_txq_flush(struct cv_tunnel_txq *q, SSL *ssl, bool auth_failed)
{
	while (q->off < q->len) {
		int r = SSL_write(ssl, q->buf + q->off, (int)(q->len - q->off));
		if (r <= 0) {
			int err = cv_tunnel_ssl_error(ssl, r, auth_failed);
			return err == -EAGAIN ? 0 : err;
		}
		/* MediaKeys leave our memory as soon as TLS has them. */
		OPENSSL_cleanse(q->buf + q->off, (size_t)r);
		q->off += (size_t)r;
	}
	q->off = q->len = 0;
	return 0;
}

void cv_tunnel_txq_clear(struct cv_tunnel_txq *q)
{
	if (q->buf)
		OPENSSL_cleanse(q->buf, q->len);
	q->off = q->len = 0;
}

int cv_tunnel_ssl_error(SSL *ssl, int r, bool auth_failed)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		return errno ? -errno : -ECONNRESET;
	default:
		return auth_failed ? CV_EAUTH : CV_EPROTO;
	}
}

int cv_tunnel_cert_fingerprint(X509 *cert, char out[CV_TUNNEL_FP_STRLEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len;
	size_t pos;

	if (!cert || !X509_digest(cert, EVP_sha256(), md, &md_len) ||
	    md_len != 32)
		return CV_ECRYPTO;
	pos = (size_t)snprintf(out, CV_TUNNEL_FP_STRLEN, "sha-256 ");
	for (unsigned int i = 0; i < md_len; i++)
		pos += (size_t)snprintf(out + pos, CV_TUNNEL_FP_STRLEN - pos,
					i ? ":%02X" : "%02X", md[i]);
	return 0;
}

static int file_readable(const char *path)
{
	FILE *f = fopen(path, "rb");

	if (!f)
		return -errno;
	fclose(f);
	return 0;
}

int cv_tunnel_tls_ctx_new(SSL_CTX **out, bool server, const char *cert_file,
			  const char *key_file)
{
	SSL_CTX *ctx;
	int err;

	if (!out || !cert_file || !key_file)
		return -EINVAL;
	err = file_readable(cert_file);
	if (!err)
		err = file_readable(key_file);
	if (err)
		return err;
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return CV_ECRYPTO;
	/* RFC 9185 section 5: the tunnel is TLS; we require 1.3 (RFC 8446). */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		err = CV_ECRYPTO;
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		err = CV_EPARSE;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();
		err = ERR_GET_LIB(e) == ERR_LIB_X509 &&
				      (ERR_GET_REASON(e) ==
					       X509_R_KEY_VALUES_MISMATCH ||
				       ERR_GET_REASON(e) ==
					       X509_R_KEY_TYPE_MISMATCH)
			      ? CV_ECRYPTO
			      : CV_EPARSE;
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err = CV_ECRYPTO;
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A peer that vanishes without close_notify is a lost connection
	 * (-ECONNRESET), not a protocol error: TunnelMessage framing already
	 * detects a cut message. */
	/* CLEANSE_PLAINTEXT: MediaKeys arrives as TLS plaintext; OpenSSL
	 * wipes its read buffer once we have read it, so no copy of a hop
	 * key outlives the message in the library's buffers. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_IGNORE_UNEXPECTED_EOF |
					 SSL_OP_CLEANSE_PLAINTEXT);
	ERR_clear_error();
	*out = ctx;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return err;
}

/* ---- The node's end ---- */

#define LINK_BACKOFF_INITIAL_MS 250
#define LINK_BACKOFF_MAX_MS	10000
#define LINK_CONNECT_TIMEOUT_MS 5000
#define LINK_MAX_QUEUE		(1u << 20)

enum link_state {
	LINK_WAIT,	 /* backoff timer before the next attempt */
	LINK_CONNECTING, /* TCP connect in progress */
	LINK_HANDSHAKE,	 /* TLS handshake */
	LINK_ACCEPTING,	 /* TLS done, waiting for the KD's acceptance */
	LINK_UP,
};

struct cv_tunnel_link {
	struct cv_loop *loop;
	struct cv_tunnel_link_callbacks cb;
	SSL_CTX *ctx;
	SSL *ssl;
	struct cv_io io;
	bool io_added;
	uint32_t io_events;
	struct cv_timer timer;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct cv_dtls_fingerprint pin;
	uint16_t profiles[CV_TUNNEL_MAX_PROFILES];
	size_t n_profiles;
	uint32_t backoff_initial_ms, backoff_max_ms, connect_timeout_ms;
	uint32_t failures; /* consecutive failed attempts */
	enum link_state state;
	bool pin_failed;
	bool accepted; /* the KD sent its post-handshake ticket */
	uint64_t connects;
	uint8_t *rx;
	size_t rx_len;
	struct cv_tunnel_txq tx;
};

static int link_parse_addr(struct cv_tunnel_link *l, const char *host,
			   uint16_t port)
{
	struct addrinfo hints = {0}, *res = NULL;
	char port_s[8];

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port_s, sizeof(port_s), "%u", port);
	if (getaddrinfo(host, port_s, &hints, &res) != 0 || !res)
		return -EINVAL;
	memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
	l->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Pins the KD's leaf certificate (chain errors are ignored: no PKI). */
static int link_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct cv_tunnel_link *l = ssl ? SSL_get_app_data(ssl) : NULL;

	(void)ok;
	if (!l)
		return 0;
	if (X509_STORE_CTX_get_error_depth(x) > 0)
		return 1;
	if (cv_tunnel_cert_pinned(X509_STORE_CTX_get_current_cert(x), &l->pin,
				  1)) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 1;
	}
	l->pin_failed = true;
	X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/*
 * TLS 1.3 (RFC 8446 section 4.4.2 / 4.6.1): the server judges our
 * certificate after our Finished, so a finished handshake does not yet
 * mean the KD accepted us. Our KD sends one NewSessionTicket once it has;
 * its arrival is our acceptance. We never resume with it.
 */
static int link_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct cv_tunnel_link *l = SSL_get_app_data(ssl);

	(void)sess;
	if (l)
		l->accepted = true;
	return 0; /* not kept: OpenSSL frees it */
}

static void link_set_events(struct cv_tunnel_link *l, uint32_t events)
{
	if (!l->io_added) {
		if (cv_loop_add_io(l->loop, &l->io, events) == 0) {
			l->io_added = true;
			l->io_events = events;
		}
		return;
	}
	if (events != l->io_events &&
	    cv_loop_mod_io(l->loop, &l->io, events) == 0)
		l->io_events = events;
}

static void link_close_conn(struct cv_tunnel_link *l)
{
	if (l->io_added) {
		cv_loop_del_io(l->loop, &l->io);
		l->io_added = false;
	}
	if (l->ssl) {
		/* Best effort close_notify; the socket is non-blocking. */
		if (SSL_is_init_finished(l->ssl))
			SSL_shutdown(l->ssl);
		SSL_free(l->ssl);
		l->ssl = NULL;
	}
	if (l->io.fd >= 0) {
		close(l->io.fd);
		l->io.fd = -1;
	}
	OPENSSL_cleanse(l->rx, l->rx_len);
	cv_tunnel_txq_clear(&l->tx);
	l->rx_len = 0;
	l->pin_failed = false;
	l->accepted = false;
	ERR_clear_error();
}

static uint32_t link_backoff_ms(struct cv_tunnel_link *l)
{
	uint64_t d = l->backoff_initial_ms;
	uint32_t r = 0;

	for (uint32_t i = 0; i < l->failures && d < l->backoff_max_ms; i++)
		d *= 2;
	if (d > l->backoff_max_ms)
		d = l->backoff_max_ms;
	/* Up to 25% extra so that nodes do not reconnect in step after a
	 * KMS restart. */
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1 && d >= 4)
		d += r % (d / 4 + 1);
	return (uint32_t)d;
}

static void link_fail(struct cv_tunnel_link *l, int err)
{
	bool was_up = l->state == LINK_UP;
	uint32_t delay;

	link_close_conn(l);
	delay = link_backoff_ms(l);
	if (l->failures < 32)
		l->failures++;
	l->state = LINK_WAIT;
	cv_timer_start(l->loop, &l->timer, cv_loop_now_ms(l->loop) + delay);
	cv_log(was_up ? CV_LOG_WARN : CV_LOG_INFO, CV_LOG_PERC,
	       "tunnel: %s: %s (retry_ms=%u)",
	       was_up ? "link to key distributor lost" : "connect failed",
	       cv_strerror(err), delay);
	l->cb.on_down(l->cb.arg, err);
}

/* Appends one encoded message to the queue. */
static int ssl_error(struct cv_tunnel_link *l, int r)
{
	return cv_tunnel_ssl_error(l->ssl, r, l->pin_failed);
}

static void link_update_events(struct cv_tunnel_link *l)
{
	uint32_t ev = EPOLLIN;

	if (l->state == LINK_CONNECTING || cv_tunnel_txq_pending(&l->tx) ||
	    (l->ssl && SSL_want_write(l->ssl)))
		ev |= EPOLLOUT;
	link_set_events(l, ev);
}

static int link_go_up(struct cv_tunnel_link *l)
{
	l->state = LINK_UP;
	l->failures = 0;
	l->connects++;
	cv_timer_stop(l->loop, &l->timer);
	cv_log(CV_LOG_INFO, CV_LOG_PERC, "tunnel: key distributor link up");
	l->cb.on_up(l->cb.arg);
	return 0;
}

/* One whole message from the KD. */
static int link_dispatch(struct cv_tunnel_link *l, const uint8_t *p, size_t n);

static int link_dispatch_fn(void *arg, const uint8_t *p, size_t n)
{
	return link_dispatch(arg, p, n);
}

static int link_dispatch(struct cv_tunnel_link *l, const uint8_t *p, size_t n)
{
	struct cv_tunnel_msg m;
	int err;

	if (p[0] < CV_TUNNEL_SUPPORTED_PROFILES ||
	    p[0] > CV_TUNNEL_ENDPOINT_DISCONNECT) {
		/* Unknown types are framed by their length: skip. */
		cv_log_ratelimited(CV_LOG_DEBUG, CV_LOG_PERC,
				   "tunnel: unknown message skipped (type=%u)",
				   p[0]);
		return 0;
	}
	err = cv_tunnel_msg_parse(&m, p, n);
	if (err == 0 && m.type == CV_TUNNEL_UNSUPPORTED_VERSION)
		return CV_EUNSUPP;
	if (err == 0 && m.type != CV_TUNNEL_MEDIA_KEYS &&
	    m.type != CV_TUNNEL_TUNNELED_DTLS)
		return CV_EPROTO; /* a KD never sends the node's messages */
	if (err == CV_EUNSUPP || err == CV_EPROTO) {
		/* Keys we refuse to hold: drop them, keep the link. */
		cv_log_ratelimited(CV_LOG_WARN, CV_LOG_PERC,
				   "tunnel: media keys refused: %s",
				   cv_strerror(err));
		return 0;
	}
	if (err)
		return CV_EPROTO;
	if (l->state == LINK_ACCEPTING)
		link_go_up(l);
	l->cb.on_message(l->cb.arg, &m);
	if (m.type == CV_TUNNEL_MEDIA_KEYS)
		cv_tunnel_media_keys_wipe(&m.u.keys);
	return 0;
}

static int link_read(struct cv_tunnel_link *l)
{
	int r, err;

	for (;;) {
		r = SSL_read(l->ssl, l->rx + l->rx_len,
			     (int)(CV_TUNNEL_MAX_MSG - l->rx_len));
		if (l->accepted && l->state == LINK_ACCEPTING)
			link_go_up(l);
		if (r <= 0) {
			err = ssl_error(l, r);
			return err == -EAGAIN ? 0 : err;
		}
		l->rx_len += (size_t)r;
		err = cv_tunnel_rx_dispatch(l->rx, &l->rx_len, link_dispatch_fn,
					    l);
		if (err)
			return err;
	}
}

static int link_handshake(struct cv_tunnel_link *l)
{
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_SUPPORTED_PROFILES};
	int r, err;

	r = SSL_do_handshake(l->ssl);
	if (r != 1) {
		err = ssl_error(l, r);
		return err == -EAGAIN ? 0 : err;
	}
	/* RFC 9185 section 5: the Media Distributor's first message is
	 * SupportedProfiles with the version it speaks. */
	m.u.profiles.version = CV_TUNNEL_VERSION;
	m.u.profiles.n = l->n_profiles;
	memcpy(m.u.profiles.ids, l->profiles, l->n_profiles * sizeof(uint16_t));
	err = cv_tunnel_txq_push(&l->tx, &m);
	if (err)
		return err;
	l->state = LINK_ACCEPTING;
	err = cv_tunnel_txq_flush(&l->tx, l->ssl, l->pin_failed);
	if (err)
		return err;
	return link_read(l);
}

static int link_connected(struct cv_tunnel_link *l)
{
	int so_err = 0;
	socklen_t len = sizeof(so_err);

	if (getsockopt(l->io.fd, SOL_SOCKET, SO_ERROR, &so_err, &len) != 0)
		return -errno;
	if (so_err)
		return -so_err;
	l->ssl = SSL_new(l->ctx);
	if (!l->ssl)
		return -ENOMEM;
	SSL_set_app_data(l->ssl, l);
	if (SSL_set_fd(l->ssl, l->io.fd) != 1)
		return CV_ECRYPTO;
	SSL_set_connect_state(l->ssl);
	l->state = LINK_HANDSHAKE;
	return link_handshake(l);
}

static int link_step(struct cv_tunnel_link *l, uint32_t events)
{
	int err;

	switch (l->state) {
	case LINK_CONNECTING:
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return 0;
		return link_connected(l);
	case LINK_HANDSHAKE:
		return link_handshake(l);
	case LINK_ACCEPTING:
	case LINK_UP:
		err = cv_tunnel_txq_flush(&l->tx, l->ssl, l->pin_failed);
		if (err)
			return err;
		return link_read(l);
	case LINK_WAIT:
		return 0;
	}
	return 0;
}

static void link_on_io(void *arg, uint32_t events)
{
	struct cv_tunnel_link *l = arg;
	int err = link_step(l, events);

	if (err) {
		link_fail(l, err);
		return;
	}
	if (l->state != LINK_WAIT)
		link_update_events(l);
}

static int link_start_attempt(struct cv_tunnel_link *l)
{
	static const int one = 1, idle = 10, intvl = 5, cnt = 3;
	int fd;

	fd = socket(l->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	l->io.fd = fd;
	/* A KD that vanishes without a RST is noticed within ~25 s. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&l->addr, l->addr_len) != 0 &&
	    errno != EINPROGRESS)
		return -errno;
	l->state = LINK_CONNECTING;
	cv_timer_start(l->loop, &l->timer,
		       cv_loop_now_ms(l->loop) + l->connect_timeout_ms);
	link_update_events(l);
	return 0;
}

static void link_on_timer(void *arg)
{
	struct cv_tunnel_link *l = arg;
	int err;

	if (l->state == LINK_WAIT) {
		err = link_start_attempt(l);
		if (err)
			link_fail(l, err);
		return;
	}
	if (l->state != LINK_UP)
		link_fail(l, CV_EEXPIRED);
}

int cv_tunnel_link_create(struct cv_tunnel_link **out, struct cv_loop *loop,
			  const struct cv_tunnel_link_opts *opts,
			  const struct cv_tunnel_link_callbacks *cb)
{
	static const uint16_t def_profiles[] = {
		CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM,
		CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM,
	};
	struct cv_tunnel_link *l;
	int err;

	if (!out || !loop || !opts || !cb || !cb->on_up || !cb->on_down ||
	    !cb->on_message || !opts->host || !opts->kd_fingerprint ||
	    opts->port == 0 || opts->n_profiles > CV_TUNNEL_MAX_PROFILES ||
	    (opts->profiles && opts->n_profiles == 0))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->loop = loop;
	l->cb = *cb;
	l->io.fd = -1;
	l->io.fn = link_on_io;
	l->io.arg = l;
	cv_timer_init(&l->timer, link_on_timer, l);
	l->backoff_initial_ms = opts->backoff_initial_ms
					? opts->backoff_initial_ms
					: LINK_BACKOFF_INITIAL_MS;
	l->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms
						 : LINK_BACKOFF_MAX_MS;
	if (l->backoff_max_ms < l->backoff_initial_ms)
		l->backoff_max_ms = l->backoff_initial_ms;
	l->connect_timeout_ms = opts->connect_timeout_ms
					? opts->connect_timeout_ms
					: LINK_CONNECT_TIMEOUT_MS;
	l->tx.cap =
		opts->max_queue_bytes ? opts->max_queue_bytes : LINK_MAX_QUEUE;
	if (l->tx.cap < CV_TUNNEL_MAX_MSG)
		l->tx.cap = CV_TUNNEL_MAX_MSG;
	if (opts->profiles) {
		memcpy(l->profiles, opts->profiles,
		       opts->n_profiles * sizeof(uint16_t));
		l->n_profiles = opts->n_profiles;
	} else {
		memcpy(l->profiles, def_profiles, sizeof(def_profiles));
		l->n_profiles = 2;
	}
	err = cv_dtls_fingerprint_parse(&l->pin, opts->kd_fingerprint,
					strlen(opts->kd_fingerprint));
	if (err)
		goto fail;
	err = link_parse_addr(l, opts->host, opts->port);
	if (err)
		goto fail;
	l->rx = malloc(CV_TUNNEL_MAX_MSG);
	l->tx.buf = malloc(l->tx.cap);
	if (!l->rx || !l->tx.buf) {
		err = -ENOMEM;
		goto fail;
	}
	err = cv_tunnel_tls_ctx_new(&l->ctx, false, opts->cert_file,
				    opts->key_file);
	if (err)
		goto fail;
	SSL_CTX_set_verify(l->ctx, SSL_VERIFY_PEER, link_verify_cb);
	SSL_CTX_set_session_cache_mode(
		l->ctx,
		SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(l->ctx, link_new_session_cb);
	/* The first attempt runs from the timer, on the loop. */
	l->state = LINK_WAIT;
	cv_timer_start(loop, &l->timer, cv_loop_now_ms(loop));
	*out = l;
	return 0;
fail:
	free(l->rx);
	free(l->tx.buf);
	free(l);
	return err;
}

void cv_tunnel_link_destroy(struct cv_tunnel_link *l)
{
	if (!l)
		return;
	cv_timer_stop(l->loop, &l->timer);
	link_close_conn(l);
	SSL_CTX_free(l->ctx);
	OPENSSL_cleanse(l->rx, CV_TUNNEL_MAX_MSG);
	OPENSSL_cleanse(l->tx.buf, l->tx.cap);
	free(l->rx);
	free(l->tx.buf);
	free(l);
}

bool cv_tunnel_link_is_up(const struct cv_tunnel_link *l)
{
	return l && l->state == LINK_UP;
}

uint64_t cv_tunnel_link_connects(const struct cv_tunnel_link *l)
{
	return l ? l->connects : 0;
}

int cv_tunnel_link_send(struct cv_tunnel_link *l, const struct cv_tunnel_msg *m)
{
	int err;

	if (!l || !m ||
	    (m->type != CV_TUNNEL_TUNNELED_DTLS &&
	     m->type != CV_TUNNEL_ENDPOINT_DISCONNECT))
		return -EINVAL;
	if (l->state != LINK_UP)
		return -ENOTCONN;
	err = cv_tunnel_txq_push(&l->tx, m);
	if (err == CV_ETOOBIG && check_msg(m) == 0)
		return CV_ETOOBIG;
	if (err)
		return err;
	/* Written when the loop reports the socket writable. */
	link_update_events(l);
	return 0;
}
