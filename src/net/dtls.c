/*
 * DTLS-SRTP: certificates, the process-wide SSL_CTX, and the local
 * (OpenSSL) implementation of struct cv_dtls. See docs/dtls.md.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/log.h"

/* ---- SRTP profiles ---- */

struct srtp_profile_info {
	uint16_t id;
	const char *openssl_name;
	size_t key_bytes;
	size_t salt_bytes;
};

/*
 * RFC 5764 section 4.1.2 (AES128_CM_SHA1_80: 128-bit key, 112-bit salt)
 * and RFC 7714 section 14.2 (AEAD_AES_*_GCM: 96-bit salt).
 */
static const struct srtp_profile_info srtp_profiles[] = {
	{CV_DTLS_SRTP_AES128_CM_SHA1_80, "SRTP_AES128_CM_SHA1_80", 16, 14},
	{CV_DTLS_SRTP_AEAD_AES_128_GCM, "SRTP_AEAD_AES_128_GCM", 16, 12},
	{CV_DTLS_SRTP_AEAD_AES_256_GCM, "SRTP_AEAD_AES_256_GCM", 32, 12},
};

static const struct srtp_profile_info *srtp_profile_find(uint16_t id)
{
	for (size_t i = 0; i < sizeof(srtp_profiles) / sizeof(srtp_profiles[0]);
	     i++) {
		if (srtp_profiles[i].id == id)
			return &srtp_profiles[i];
	}
	return NULL;
}

size_t cv_dtls_srtp_material_len(uint16_t profile_id)
{
	const struct srtp_profile_info *p = srtp_profile_find(profile_id);

	/* RFC 5764 section 4.2: 2 * (SRTPSecurityParams.master_key_len +
	 * SRTPSecurityParams.master_salt_len) bytes. */
	return p ? 2 * (p->key_bytes + p->salt_bytes) : 0;
}

/* ---- Fingerprints ---- */

struct hash_info {
	enum cv_dtls_hash hash;
	const char *sdp_name;
	size_t len;
};

static const struct hash_info hashes[] = {
	{CV_DTLS_HASH_SHA1, "sha-1", 20},
	{CV_DTLS_HASH_SHA256, "sha-256", 32},
	{CV_DTLS_HASH_SHA384, "sha-384", 48},
	{CV_DTLS_HASH_SHA512, "sha-512", 64},
};

static const EVP_MD *hash_md(enum cv_dtls_hash h)
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

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 4566 token characters, for the hash-func token of RFC 8122. */
static int is_token_char(char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z'))
		return 1;
	return strchr("!#$%&'*+-.^_`{|}~", c) != NULL && c != '\0';
}

/*
 * RFC 8122 section 5:
 *   fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
 *   fingerprint = 2UHEX *(":" 2UHEX)
 * We get the attribute value, i.e. from hash-func on.
 */
int cv_dtls_fingerprint_parse(struct cv_dtls_fingerprint *out, const char *s,
			      size_t len)
{
	struct cv_dtls_fingerprint fp;
	const struct hash_info *hi = NULL;
	size_t name_len = 0, pos, n = 0;

	if (!out || (!s && len))
		return -EINVAL;
	while (name_len < len && s[name_len] != ' ') {
		if (!is_token_char(s[name_len]))
			return CV_EPARSE;
		name_len++;
	}
	if (name_len == 0 || name_len == len)
		return CV_EPARSE;
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
		if (strlen(hashes[i].sdp_name) == name_len &&
		    strncasecmp(hashes[i].sdp_name, s, name_len) == 0)
			hi = &hashes[i];
	}
	pos = name_len + 1;
	/* Each byte is two hex digits; bytes are separated by ':'. */
	for (;;) {
		int hi_nib, lo_nib;

		if (len - pos < 2)
			return CV_EPARSE;
		hi_nib = hex_value(s[pos]);
		lo_nib = hex_value(s[pos + 1]);
		if (hi_nib < 0 || lo_nib < 0)
			return CV_EPARSE;
		if (n == CV_DTLS_FINGERPRINT_MAX)
			return CV_EPARSE;
		fp.md[n++] = (uint8_t)(hi_nib << 4 | lo_nib);
		pos += 2;
		if (pos == len)
			break;
		if (s[pos] != ':')
			return CV_EPARSE;
		pos++;
	}
	if (!hi)
		return CV_EUNSUPP;
	if (n != hi->len)
		return CV_EPARSE;
	fp.hash = hi->hash;
	fp.len = n;
	memset(fp.md + n, 0, sizeof(fp.md) - n);
	*out = fp;
	return 0;
}

/* True if x's digest equals one of the n fingerprints in fps. */
static bool fingerprint_match(X509 *x, const struct cv_dtls_fingerprint *fps,
			      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t md[EVP_MAX_MD_SIZE];
		unsigned int md_len = 0;
		const EVP_MD *alg = hash_md(fps[i].hash);

		if (!alg || X509_digest(x, alg, md, &md_len) != 1)
			continue;
		if (md_len == fps[i].len &&
		    CRYPTO_memcmp(md, fps[i].md, md_len) == 0)
			return true;
	}
	return false;
}

/* ---- Certificates ---- */

struct cv_dtls_cert {
	atomic_int refs;
	X509 *x509;
	EVP_PKEY *pkey;
	STACK_OF(X509) * chain; /* extra certificates after x509, or NULL */
	char fingerprint[CV_DTLS_FINGERPRINT_STRLEN];
};

static int cert_format_fingerprint(struct cv_dtls_cert *c)
{
	static const char hex[] = "0123456789ABCDEF";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char *p = c->fingerprint;

	if (X509_digest(c->x509, EVP_sha256(), md, &md_len) != 1 ||
	    md_len != 32)
		return CV_ECRYPTO;
	memcpy(p, "sha-256 ", 8);
	p += 8;
	for (unsigned int i = 0; i < md_len; i++) {
		if (i)
			*p++ = ':';
		*p++ = hex[md[i] >> 4];
		*p++ = hex[md[i] & 0xf];
	}
	*p = '\0';
	return 0;
}

static void cert_free(struct cv_dtls_cert *c)
{
	X509_free(c->x509);
	EVP_PKEY_free(c->pkey);
	sk_X509_pop_free(c->chain, X509_free);
	free(c);
}

/* Takes x509, pkey and chain (freed on failure too). */
static int cert_wrap(struct cv_dtls_cert **out, X509 *x509, EVP_PKEY *pkey,
		     STACK_OF(X509) * chain)
{
	struct cv_dtls_cert *c = calloc(1, sizeof(*c));
	int err;

	if (!c) {
		X509_free(x509);
		EVP_PKEY_free(pkey);
		sk_X509_pop_free(chain, X509_free);
		return -ENOMEM;
	}
	atomic_init(&c->refs, 1);
	c->x509 = x509;
	c->pkey = pkey;
	c->chain = chain;
	err = cert_format_fingerprint(c);
	if (err) {
		cert_free(c);
		return err;
	}
	*out = c;
	return 0;
}

static int cert_set_serial(X509 *x)
{
	uint8_t r[8];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return 0;
	r[0] &= 0x7f; /* positive (RFC 5280 section 4.1.2.2) */
	r[7] |= 0x01; /* and never zero */
	bn = BN_bin2bn(r, sizeof(r), NULL);
	if (!bn)
		return 0;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

int cv_dtls_cert_generate(struct cv_dtls_cert **out)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;

	if (!out)
		return -EINVAL;
	ERR_clear_error();
	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	if (!pkey || !x)
		goto fail;
	name = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 || !cert_set_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -86400L) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400L) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				       (const unsigned char *)"conclave", -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_set_pubkey(x, pkey) != 1 ||
	    X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto fail;
	return cert_wrap(out, x, pkey, NULL);
fail:
	X509_free(x);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return CV_ECRYPTO;
}

/* Never prompt on a terminal for a pass phrase: encrypted keys fail. */
static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int read_cert_file(const char *path, X509 **leaf,
			  STACK_OF(X509) * *chain)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f)
		return errno ? -errno : -EIO;
	*leaf = PEM_read_X509(f, NULL, no_password_cb, NULL);
	*chain = NULL;
	while (*leaf && (x = PEM_read_X509(f, NULL, no_password_cb, NULL))) {
		if (!*chain)
			*chain = sk_X509_new_null();
		if (!*chain || !sk_X509_push(*chain, x)) {
			X509_free(x);
			fclose(f);
			return -ENOMEM;
		}
	}
	fclose(f);
	ERR_clear_error(); /* the read that hit the end of file */
	return *leaf ? 0 : CV_EPARSE;
}

int cv_dtls_cert_load(struct cv_dtls_cert **out, const char *cert_path,
		      const char *key_path)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *pkey = NULL;
	FILE *f;
	int err;

	if (!out || !cert_path || !key_path)
		return -EINVAL;
	err = read_cert_file(cert_path, &leaf, &chain);
	if (err)
		goto fail;
	f = fopen(key_path, "r");
	if (!f) {
		err = errno ? -errno : -EIO;
		goto fail;
	}
	pkey = PEM_read_PrivateKey(f, NULL, no_password_cb, NULL);
	fclose(f);
	if (!pkey) {
		err = CV_EPARSE;
		goto fail;
	}
	if (X509_check_private_key(leaf, pkey) != 1) {
		err = CV_ECRYPTO;
		goto fail;
	}
	return cert_wrap(out, leaf, pkey, chain);
fail:
	ERR_clear_error();
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	return err;
}

struct cv_dtls_cert *cv_dtls_cert_ref(struct cv_dtls_cert *cert)
{
	if (cert)
		atomic_fetch_add_explicit(&cert->refs, 1, memory_order_relaxed);
	return cert;
}

struct cv_dtls_cert *cv_dtls_cert_unref(struct cv_dtls_cert *cert)
{
	if (cert && atomic_fetch_sub_explicit(&cert->refs, 1,
					      memory_order_acq_rel) == 1)
		cert_free(cert);
	return NULL;
}

const char *cv_dtls_cert_fingerprint(const struct cv_dtls_cert *cert)
{
	return cert->fingerprint;
}

/* ---- The process-wide context ---- */

struct cv_dtls_ctx {
	atomic_int refs;
	SSL_CTX *ssl_ctx;
	BIO_METHOD *bio_method; /* see "Datagram BIO" below */
	struct cv_dtls_cert *cert;
};

/*
 * ECDHE only (RFC 8827 section 6.5 requires forward secrecy), AEAD first;
 * the CBC-SHA suites remain for old browsers. RSA suites serve a loaded
 * RSA certificate; browsers' own certificates are ECDSA.
 */
static const char cipher_list[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"
	"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";

static const uint16_t default_profiles[] = {
	CV_DTLS_SRTP_AEAD_AES_128_GCM,
	CV_DTLS_SRTP_AEAD_AES_256_GCM,
	CV_DTLS_SRTP_AES128_CM_SHA1_80,
};

static int local_verify_cb(int preverify_ok, X509_STORE_CTX *st);
static BIO_METHOD *dgram_bio_method_new(void);

static void ctx_free(struct cv_dtls_ctx *ctx)
{
	SSL_CTX_free(ctx->ssl_ctx);
	BIO_meth_free(ctx->bio_method);
	cv_dtls_cert_unref(ctx->cert);
	free(ctx);
}

static int ctx_configure(SSL_CTX *c, struct cv_dtls_cert *cert)
{
	/*
	 * RFC 8827 section 6.5: DTLS 1.2 or later. Stock OpenSSL 3.0 has no
	 * DTLS 1.3, so min = max = 1.2. No renegotiation (RFC 5764 section
	 * 4.1 allows it, browsers never do it) and no tickets or session
	 * cache: every association is a full handshake.
	 * SSL_OP_NO_QUERY_MTU: our BIO is no socket; we set the MTU.
	 */
	if (SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(c, DTLS1_2_VERSION) != 1)
		return CV_ECRYPTO;
	SSL_CTX_set_options(
		c, SSL_OP_NO_QUERY_MTU | SSL_OP_CIPHER_SERVER_PREFERENCE |
			   SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_cipher_list(c, cipher_list) != 1 ||
	    SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384") != 1)
		return CV_ECRYPTO;
	if (SSL_CTX_use_certificate(c, cert->x509) != 1 ||
	    SSL_CTX_use_PrivateKey(c, cert->pkey) != 1 ||
	    (cert->chain && SSL_CTX_set1_chain(c, cert->chain) != 1) ||
	    SSL_CTX_check_private_key(c) != 1)
		return CV_ECRYPTO;
	/*
	 * Browsers' certificates are self-signed: no PKI. The verify
	 * callback pins the leaf to the SDP fingerprint (RFC 8122 section
	 * 6.2), and the server requires a client certificate (RFC 5763
	 * section 5: both sides authenticate by fingerprint).
	 */
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   local_verify_cb);
	return 0;
}

int cv_dtls_ctx_create(struct cv_dtls_ctx **out, struct cv_dtls_cert *cert)
{
	struct cv_dtls_ctx *ctx;
	int err;

	if (!out || !cert)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	atomic_init(&ctx->refs, 1);
	ctx->cert = cv_dtls_cert_ref(cert);
	ERR_clear_error();
	ctx->ssl_ctx = SSL_CTX_new(DTLS_method());
	ctx->bio_method = dgram_bio_method_new();
	if (!ctx->ssl_ctx || !ctx->bio_method) {
		err = CV_ECRYPTO;
		goto fail;
	}
	err = ctx_configure(ctx->ssl_ctx, cert);
	if (!err)
		err = cv_dtls_ctx_set_srtp_profiles(
			ctx, default_profiles,
			sizeof(default_profiles) / sizeof(default_profiles[0]));
	if (err)
		goto fail;
	*out = ctx;
	return 0;
fail:
	ERR_clear_error();
	ctx_free(ctx);
	return err;
}

/*
 * Which side's order wins: as a server, OpenSSL 3.0 walks the client's
 * use_srtp list and keeps the match that ranks highest in the *server's*
 * list, so the client's order does not matter (checked by
 * test_profile_server_order in tests/unit/net/test_dtls.c). The node is
 * the DTLS server for browsers (they answer a=setup:actpass with active),
 * so listing GCM first here makes it pick GCM whenever the peer offers it.
 * As a client we offer GCM first and the server decides.
 */
int cv_dtls_ctx_set_srtp_profiles(struct cv_dtls_ctx *ctx, const uint16_t *ids,
				  size_t n)
{
	char list[128] = "";
	size_t used = 0;

	if (!ctx || !ids || n == 0 ||
	    n > sizeof(srtp_profiles) / sizeof(srtp_profiles[0]))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct srtp_profile_info *p = srtp_profile_find(ids[i]);
		int w;

		if (!p)
			return CV_EUNSUPP;
		for (size_t j = 0; j < i; j++) {
			if (ids[j] == ids[i])
				return -EINVAL;
		}
		w = snprintf(list + used, sizeof(list) - used, "%s%s",
			     i ? ":" : "", p->openssl_name);
		if (w < 0 || (size_t)w >= sizeof(list) - used)
			return -EINVAL;
		used += (size_t)w;
	}
	/* Note the inverted convention: 0 means success here. */
	if (SSL_CTX_set_tlsext_use_srtp(ctx->ssl_ctx, list) != 0) {
		ERR_clear_error();
		return CV_ECRYPTO;
	}
	return 0;
}

struct cv_dtls_ctx *cv_dtls_ctx_ref(struct cv_dtls_ctx *ctx)
{
	if (ctx)
		atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
	return ctx;
}

struct cv_dtls_ctx *cv_dtls_ctx_unref(struct cv_dtls_ctx *ctx)
{
	if (ctx &&
	    atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) == 1)
		ctx_free(ctx);
	return NULL;
}

/* ---- The interface: thin wrappers over the ops table ---- */

int cv_dtls_start(struct cv_dtls *d, uint64_t now_ms)
{
	if (!d)
		return -EINVAL;
	return d->ops->start(d, now_ms);
}

int cv_dtls_handle_datagram(struct cv_dtls *d, const uint8_t *data, size_t len,
			    uint64_t now_ms)
{
	if (!d || (!data && len))
		return -EINVAL;
	if (len > CV_DTLS_MAX_DATAGRAM)
		return CV_ETOOBIG;
	/* RFC 7983 section 7: a DTLS record starts with a byte in 20..63. */
	if (len == 0 || data[0] < 20 || data[0] > 63)
		return CV_EPARSE;
	return d->ops->handle_datagram(d, data, len, now_ms);
}

int cv_dtls_handle_timer(struct cv_dtls *d, uint64_t now_ms)
{
	if (!d)
		return -EINVAL;
	return d->ops->handle_timer(d, now_ms);
}

int64_t cv_dtls_next_timeout_ms(struct cv_dtls *d, uint64_t now_ms)
{
	if (!d)
		return -1;
	return d->ops->next_timeout_ms(d, now_ms);
}

int cv_dtls_close(struct cv_dtls *d)
{
	if (!d)
		return -EINVAL;
	return d->ops->close(d);
}

void cv_dtls_destroy(struct cv_dtls *d)
{
	if (d)
		d->ops->destroy(d);
}

/* ---- The local implementation ---- */

enum local_state {
	LOCAL_NEW,	 /* created, not started */
	LOCAL_HANDSHAKE, /* started, waiting for the handshake */
	LOCAL_CONNECTED, /* on_connected done */
	LOCAL_DONE,	 /* failed, closed by us or by the peer */
};

struct cv_dtls_local {
	struct cv_dtls base; /* first: the interface */
	struct cv_dtls_ctx *ctx;
	SSL *ssl;
	enum cv_dtls_role role;
	enum local_state state;
	bool fp_rejected; /* the verify callback saw a wrong certificate */
	uint64_t deadline_ms;
	struct cv_dtls_callbacks cb;
	size_t n_fps;
	struct cv_dtls_fingerprint fps[CV_DTLS_MAX_PEER_FINGERPRINTS];
	/* The datagram handed to OpenSSL by the BIO read, or NULL. */
	const uint8_t *in;
	size_t in_len;
};

static struct cv_dtls_local *local_of(struct cv_dtls *d)
{
	return (struct cv_dtls_local *)d;
}

/*
 * Datagram BIO. A memory BIO would merge the records OpenSSL writes into
 * one byte stream and lose where each datagram ends. OpenSSL writes one
 * datagram per BIO_write (as it does on a UDP socket BIO) and reads one per
 * BIO_read, so this BIO passes every write straight to the transport's
 * send callback and hands out the one datagram being processed on read.
 */
static int dgram_bio_write(BIO *b, const char *buf, int len)
{
	struct cv_dtls_local *d = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (d && d->cb.send)
		d->cb.send(d->cb.arg, (const uint8_t *)buf, (size_t)len);
	/* A failed send is a lost datagram: retransmission recovers it. */
	return len;
}

static int dgram_bio_read(BIO *b, char *buf, int size)
{
	struct cv_dtls_local *d = BIO_get_data(b);
	size_t n;

	BIO_clear_retry_flags(b);
	if (!d || !d->in || size <= 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	/* Like recv() on a datagram socket: excess bytes are lost. */
	n = d->in_len < (size_t)size ? d->in_len : (size_t)size;
	memcpy(buf, d->in, n);
	d->in = NULL;
	d->in_len = 0;
	return (int)n;
}

static long dgram_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* OpenSSL fails the handshake if this is 0 */
	case BIO_CTRL_DGRAM_QUERY_MTU:
	case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
		return CV_DTLS_MTU;
	default:
		/* PENDING, WPENDING, MTU overhead: 0, nothing buffered. */
		return 0;
	}
}

static int dgram_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *dgram_bio_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "conclave dtls datagram");

	if (!m)
		return NULL;
	if (BIO_meth_set_write(m, dgram_bio_write) != 1 ||
	    BIO_meth_set_read(m, dgram_bio_read) != 1 ||
	    BIO_meth_set_ctrl(m, dgram_bio_ctrl) != 1 ||
	    BIO_meth_set_create(m, dgram_bio_create) != 1) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/*
 * OpenSSL's default first retransmission timeout is 1 s (RFC 6347 section
 * 4.2.4.1 recommends 1 s too), which is slow for media set-up on a path
 * ICE just proved; browsers start lower too. 100 ms, doubling, capped.
 * The timer itself still runs on OpenSSL's real clock.
 */
static unsigned int local_timer_cb(SSL *s, unsigned int timer_us)
{
	(void)s;
	if (timer_us == 0)
		return CV_DTLS_RTX_INITIAL_MS * 1000u;
	if (timer_us >= CV_DTLS_RTX_MAX_MS * 1000u / 2)
		return CV_DTLS_RTX_MAX_MS * 1000u;
	return timer_us * 2;
}

/*
 * RFC 8122 section 6.2 / RFC 5763 section 5: the certificate is
 * acceptable iff its fingerprint matches the SDP. There is no PKI, so every
 * chain error (self-signed, unknown issuer, expired) is ignored; only the
 * leaf (depth 0) is checked. A mismatch fails here, during the handshake,
 * so that OpenSSL sends a fatal bad_certificate alert to the peer; the
 * match is checked once more after the handshake.
 */
static int local_verify_cb(int preverify_ok, X509_STORE_CTX *st)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		st, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct cv_dtls_local *d = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *x;

	(void)preverify_ok;
	if (!d)
		return 0;
	if (X509_STORE_CTX_get_error_depth(st) != 0)
		return 1;
	x = X509_STORE_CTX_get_current_cert(st);
	if (!x || !fingerprint_match(x, d->fps, d->n_fps)) {
		d->fp_rejected = true;
		X509_STORE_CTX_set_error(st, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	X509_STORE_CTX_set_error(st, X509_V_OK);
	return 1;
}

static const char *local_role_name(const struct cv_dtls_local *d)
{
	return d->role == CV_DTLS_ROLE_CLIENT ? "client" : "server";
}

static void local_fail(struct cv_dtls_local *d, int err)
{
	const char *why;

	if (d->state == LOCAL_DONE)
		return;
	/* A peer can provoke this line: rate-limited. */
	why = ERR_reason_error_string(ERR_peek_error());
	cv_log_ratelimited(
		CV_LOG_INFO, CV_LOG_DTLS,
		"%s failed: %s (role=%s openssl=\"%s\")",
		d->state == LOCAL_CONNECTED ? "association" : "handshake",
		cv_strerror(err), local_role_name(d), why ? why : "none");
	d->state = LOCAL_DONE;
	ERR_clear_error();
	d->cb.on_failed(d->cb.arg, err);
}

/*
 * The handshake finished but we refuse the result: tell the peer with
 * close_notify (OpenSSL has no call to send a fatal alert now) and fail.
 */
static void local_reject(struct cv_dtls_local *d, int err)
{
	ERR_clear_error();
	SSL_shutdown(d->ssl);
	local_fail(d, err);
}

/* Why the handshake failed, from our flag and OpenSSL's error queue. */
static int local_handshake_error(struct cv_dtls_local *d)
{
	unsigned long e = ERR_peek_error();

	if (d->fp_rejected)
		return CV_EAUTH;
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return CV_EAUTH;
	return CV_EPROTO;
}

static void local_handshake_done(struct cv_dtls_local *d)
{
	X509 *peer = SSL_get0_peer_certificate(d->ssl);
	const SRTP_PROTECTION_PROFILE *prof;
	uint8_t material[CV_DTLS_MATERIAL_MAX];
	size_t material_len;
	static const char label[] = "EXTRACTOR-dtls_srtp";

	if (!peer || !fingerprint_match(peer, d->fps, d->n_fps)) {
		local_reject(d, CV_EAUTH);
		return;
	}
	/* RFC 5764 section 4.1.1: no use_srtp agreement, no SRTP. */
	prof = SSL_get_selected_srtp_profile(d->ssl);
	material_len = prof ? cv_dtls_srtp_material_len((uint16_t)prof->id) : 0;
	if (material_len == 0) {
		local_reject(d, CV_EUNSUPP);
		return;
	}
	/* RFC 5764 section 4.2: keys come from the RFC 5705 exporter with
	 * label "EXTRACTOR-dtls_srtp" and no context. */
	if (SSL_export_keying_material(d->ssl, material, material_len, label,
				       sizeof(label) - 1, NULL, 0, 0) != 1) {
		OPENSSL_cleanse(material, sizeof(material));
		local_reject(d, CV_ECRYPTO);
		return;
	}
	d->state = LOCAL_CONNECTED;
	cv_log(CV_LOG_DEBUG, CV_LOG_DTLS,
	       "connected (role=%s srtp_profile=0x%04lx cipher=%s)",
	       local_role_name(d), prof->id, SSL_get_cipher_name(d->ssl));
	d->cb.on_connected(d->cb.arg, (uint16_t)prof->id, material,
			   material_len, d->role == CV_DTLS_ROLE_CLIENT);
	OPENSSL_cleanse(material, sizeof(material));
}

/* After the handshake: alerts, retransmitted flights, application data. */
static void local_read(struct cv_dtls_local *d)
{
	uint8_t buf[CV_DTLS_MAX_DATAGRAM];
	int r, e;

	/* No data channel (SCTP) here: application data is discarded. */
	do {
		ERR_clear_error();
		r = SSL_read(d->ssl, buf, sizeof(buf));
	} while (r > 0);
	e = SSL_get_error(d->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	if (e == SSL_ERROR_ZERO_RETURN) {
		/* RFC 5246 section 7.2.1: answer close_notify with ours. */
		ERR_clear_error();
		SSL_shutdown(d->ssl);
		ERR_clear_error();
		d->state = LOCAL_DONE;
		cv_log(CV_LOG_DEBUG, CV_LOG_DTLS, "closed by peer (role=%s)",
		       local_role_name(d));
		if (d->cb.on_closed)
			d->cb.on_closed(d->cb.arg);
		return;
	}
	local_fail(d, CV_EPROTO); /* a fatal alert or a broken record layer */
}

/* Lets OpenSSL consume d->in (if any) and act on the outcome. */
static void local_drive(struct cv_dtls_local *d)
{
	int r, e;

	if (d->state == LOCAL_CONNECTED) {
		local_read(d);
		return;
	}
	if (d->state != LOCAL_HANDSHAKE)
		return;
	ERR_clear_error();
	r = SSL_do_handshake(d->ssl);
	if (r == 1) {
		local_handshake_done(d);
		return;
	}
	e = SSL_get_error(d->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	local_fail(d, local_handshake_error(d));
}

static int local_start(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_local *d = local_of(base);

	if (d->state == LOCAL_DONE)
		return -ENOTCONN;
	if (d->state != LOCAL_NEW)
		return 0;
	d->state = LOCAL_HANDSHAKE;
	d->deadline_ms = now_ms + CV_DTLS_HANDSHAKE_TIMEOUT_MS;
	/* RFC 5763 section 5: the active side (client) sends ClientHello. */
	if (d->role == CV_DTLS_ROLE_CLIENT)
		local_drive(d);
	return 0;
}

int cv_dtls_screen_record(const uint8_t *p, size_t len,
			  bool expect_client_hello)
{
	size_t rec_len;
	unsigned int type, epoch;

	/* RFC 6347 section 4.1: the record header is type(1) version(2)
	 * epoch(2) sequence_number(6) length(2); a handshake fragment starts
	 * with msg_type(1) (section 4.2.2). */
	if (len < 13)
		return CV_EPARSE;
	type = p[0];
	epoch = (unsigned int)p[3] << 8 | p[4];
	rec_len = (size_t)p[11] << 8 | p[12];
	if (rec_len > len - 13)
		return CV_EPARSE;
	/* RFC 5246 section 7.4.9: application data only after Finished,
	 * i.e. never in epoch 0. */
	if (type == 23 && epoch == 0)
		return CV_EPROTO;
	/* RFC 6347 section 4.2.4: a server's first flight answers a
	 * ClientHello (msg_type 1); nothing else can come first. */
	if (expect_client_hello &&
	    (type != 22 || epoch != 0 || rec_len < 12 || p[13] != 1))
		return CV_EPROTO;
	return 0;
}

static int local_screen(const struct cv_dtls_local *d, const uint8_t *p,
			size_t len)
{
	return cv_dtls_screen_record(p, len,
				     d->role == CV_DTLS_ROLE_SERVER &&
					     SSL_in_before(d->ssl));
}

static int local_handle_datagram(struct cv_dtls *base, const uint8_t *data,
				 size_t len, uint64_t now_ms)
{
	struct cv_dtls_local *d = local_of(base);
	int err;

	if (len > CV_DTLS_MAX_DATAGRAM)
		return CV_ETOOBIG;
	if (d->state == LOCAL_DONE)
		return -ENOTCONN;
	err = local_screen(d, data, len);
	if (err)
		return err;
	if (d->state == LOCAL_NEW)
		local_start(base, now_ms);
	d->in = data;
	d->in_len = len;
	local_drive(d);
	d->in = NULL;
	d->in_len = 0;
	return 0;
}

static int64_t local_next_timeout_ms(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_local *d = local_of(base);
	struct timeval tv;
	int64_t ms = -1;

	if (d->state == LOCAL_NEW || d->state == LOCAL_DONE)
		return -1;
	/* Rounded up: calling in before OpenSSL's timer expired is a no-op. */
	if (DTLSv1_get_timeout(d->ssl, &tv) == 1)
		ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
	if (d->state == LOCAL_HANDSHAKE) {
		int64_t left = d->deadline_ms > now_ms
				       ? (int64_t)(d->deadline_ms - now_ms)
				       : 0;

		if (ms < 0 || left < ms)
			ms = left;
	}
	return ms;
}

static int local_handle_timer(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_local *d = local_of(base);

	if (d->state == LOCAL_DONE)
		return -ENOTCONN;
	if (d->state == LOCAL_NEW)
		return 0;
	if (d->state == LOCAL_HANDSHAKE && now_ms >= d->deadline_ms) {
		local_fail(d, CV_EEXPIRED);
		return 0;
	}
	/* RFC 6347 section 4.2.4: retransmit the last flight on timeout.
	 * -1 means too many retransmissions (or a send failure). */
	ERR_clear_error();
	if (DTLSv1_handle_timeout(d->ssl) < 0)
		local_fail(d, CV_EEXPIRED);
	return 0;
}

static int local_close(struct cv_dtls *base)
{
	struct cv_dtls_local *d = local_of(base);

	if (d->state == LOCAL_CONNECTED) {
		ERR_clear_error();
		SSL_shutdown(d->ssl); /* close_notify */
		ERR_clear_error();
	}
	d->state = LOCAL_DONE;
	return 0;
}

static void local_destroy(struct cv_dtls *base)
{
	struct cv_dtls_local *d = local_of(base);

	SSL_free(d->ssl); /* and the BIO */
	cv_dtls_ctx_unref(d->ctx);
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
}

static const struct cv_dtls_ops local_ops = {
	.name = "local",
	.start = local_start,
	.handle_datagram = local_handle_datagram,
	.handle_timer = local_handle_timer,
	.next_timeout_ms = local_next_timeout_ms,
	.close = local_close,
	.destroy = local_destroy,
};

static int local_ssl_setup(struct cv_dtls_local *d)
{
	BIO *bio;

	d->ssl = SSL_new(d->ctx->ssl_ctx);
	if (!d->ssl)
		return CV_ECRYPTO;
	bio = BIO_new(d->ctx->bio_method);
	if (!bio)
		return CV_ECRYPTO;
	BIO_set_data(bio, d);
	SSL_set_bio(d->ssl, bio, bio); /* one reference for both */
	if (SSL_set_app_data(d->ssl, d) != 1)
		return CV_ECRYPTO;
	/* Datagrams of at most CV_DTLS_MTU bytes (SSL_OP_NO_QUERY_MTU is
	 * set on the ctx, so OpenSSL keeps this value). */
	if (SSL_set_mtu(d->ssl, CV_DTLS_MTU) <= 0)
		return CV_ECRYPTO;
	DTLS_set_timer_cb(d->ssl, local_timer_cb);
	if (d->role == CV_DTLS_ROLE_CLIENT)
		SSL_set_connect_state(d->ssl);
	else
		SSL_set_accept_state(d->ssl);
	return 0;
}

int cv_dtls_local_create(struct cv_dtls **out, struct cv_dtls_ctx *ctx,
			 enum cv_dtls_role role,
			 const struct cv_dtls_fingerprint *peer_fps,
			 size_t n_fps, const struct cv_dtls_callbacks *cb)
{
	struct cv_dtls_local *d;
	int err;

	if (!out || !ctx || !peer_fps || n_fps == 0 ||
	    n_fps > CV_DTLS_MAX_PEER_FINGERPRINTS || !cb || !cb->send ||
	    !cb->on_connected || !cb->on_failed ||
	    (role != CV_DTLS_ROLE_SERVER && role != CV_DTLS_ROLE_CLIENT))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->base.ops = &local_ops;
	d->ctx = cv_dtls_ctx_ref(ctx);
	d->role = role;
	d->state = LOCAL_NEW;
	d->cb = *cb;
	d->n_fps = n_fps;
	memcpy(d->fps, peer_fps, n_fps * sizeof(peer_fps[0]));
	ERR_clear_error();
	err = local_ssl_setup(d);
	if (err) {
		ERR_clear_error();
		local_destroy(&d->base);
		return err;
	}
	*out = &d->base;
	return 0;
}
