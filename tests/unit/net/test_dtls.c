/*
 * DTLS-SRTP unit tests: two of our own endpoints handshake in memory by
 * passing datagrams through queues that the tests can drop from.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "cv_test.h"

/* ---- Harness ---- */

#define QUEUE_SLOTS 64

struct queue {
	size_t head, count;
	size_t len[QUEUE_SLOTS];
	uint8_t data[QUEUE_SLOTS][CV_DTLS_MAX_DATAGRAM];
};

struct endpoint {
	struct cv_dtls *d;
	struct queue out; /* what this endpoint sent, not yet delivered */
	int drop_next;	  /* drop this many of the next datagrams sent */
	int dropped, sent, overflow;
	size_t max_sent_len;
	int connected, failed, closed;
	int fail_err;
	uint16_t profile;
	uint8_t material[CV_DTLS_MATERIAL_MAX];
	size_t material_len;
	bool is_client;
};

static void ep_send(void *arg, const uint8_t *rec, size_t len)
{
	struct endpoint *ep = arg;
	struct queue *q = &ep->out;

	ep->sent++;
	if (len > ep->max_sent_len)
		ep->max_sent_len = len;
	if (ep->drop_next > 0) {
		ep->drop_next--;
		ep->dropped++;
		return;
	}
	if (q->count == QUEUE_SLOTS || len > CV_DTLS_MAX_DATAGRAM) {
		ep->overflow++;
		return;
	}
	size_t slot = (q->head + q->count) % QUEUE_SLOTS;
	memcpy(q->data[slot], rec, len);
	q->len[slot] = len;
	q->count++;
}

static void ep_connected(void *arg, uint16_t profile, const uint8_t *material,
			 size_t material_len, bool is_client)
{
	struct endpoint *ep = arg;

	ep->connected++;
	ep->profile = profile;
	ep->is_client = is_client;
	ep->material_len = material_len;
	if (material_len <= sizeof(ep->material))
		memcpy(ep->material, material, material_len);
}

static void ep_failed(void *arg, int err)
{
	struct endpoint *ep = arg;

	ep->failed++;
	ep->fail_err = err;
}

static void ep_closed(void *arg)
{
	struct endpoint *ep = arg;

	ep->closed++;
}

static struct cv_dtls_callbacks ep_callbacks(struct endpoint *ep)
{
	struct cv_dtls_callbacks cb = {
		.send = ep_send,
		.on_connected = ep_connected,
		.on_failed = ep_failed,
		.on_closed = ep_closed,
		.arg = ep,
	};
	return cb;
}

/* Delivers src's queued datagrams to dst; returns how many. */
static int deliver(struct endpoint *src, struct endpoint *dst, uint64_t now)
{
	int n = 0;

	while (src->out.count) {
		struct queue *q = &src->out;
		uint8_t buf[CV_DTLS_MAX_DATAGRAM];
		size_t len = q->len[q->head];

		memcpy(buf, q->data[q->head], len);
		q->head = (q->head + 1) % QUEUE_SLOTS;
		q->count--;
		cv_dtls_handle_datagram(dst->d, buf, len, now);
		n++;
	}
	return n;
}

static void pump(struct endpoint *a, struct endpoint *b, uint64_t now)
{
	for (int i = 0; i < 50; i++) {
		if (deliver(a, b, now) + deliver(b, a, now) == 0)
			break;
	}
}

static void fp_of(struct cv_dtls_fingerprint *fp, struct cv_dtls_cert *cert)
{
	const char *s = cv_dtls_cert_fingerprint(cert);

	CV_CHECK_INT(cv_dtls_fingerprint_parse(fp, s, strlen(s)), 0);
}

/* Creates client and server expecting the given fingerprints. */
static void pair_create(struct endpoint *cl, struct endpoint *sv,
			struct cv_dtls_ctx *cl_ctx, struct cv_dtls_ctx *sv_ctx,
			const struct cv_dtls_fingerprint *cl_expects,
			const struct cv_dtls_fingerprint *sv_expects)
{
	struct cv_dtls_callbacks cb;

	memset(cl, 0, sizeof(*cl));
	memset(sv, 0, sizeof(*sv));
	cb = ep_callbacks(cl);
	CV_CHECK_INT(cv_dtls_local_create(&cl->d, cl_ctx, CV_DTLS_ROLE_CLIENT,
					  cl_expects, 1, &cb),
		     0);
	cb = ep_callbacks(sv);
	CV_CHECK_INT(cv_dtls_local_create(&sv->d, sv_ctx, CV_DTLS_ROLE_SERVER,
					  sv_expects, 1, &cb),
		     0);
}

static void pair_destroy(struct endpoint *cl, struct endpoint *sv)
{
	cv_dtls_destroy(cl->d);
	cv_dtls_destroy(sv->d);
	cl->d = sv->d = NULL;
}

static void check_pair_connected(struct endpoint *cl, struct endpoint *sv,
				 uint16_t profile)
{
	CV_CHECK_INT(cl->connected, 1);
	CV_CHECK_INT(sv->connected, 1);
	CV_CHECK_INT(cl->failed, 0);
	CV_CHECK_INT(sv->failed, 0);
	CV_CHECK_INT(cl->profile, profile);
	CV_CHECK_INT(sv->profile, profile);
	CV_CHECK_INT(cl->material_len, cv_dtls_srtp_material_len(profile));
	CV_CHECK_INT(sv->material_len, cl->material_len);
	CV_CHECK_MEM(cl->material, sv->material, cl->material_len);
	CV_CHECK(cl->is_client);
	CV_CHECK(!sv->is_client);
	CV_CHECK_INT(cl->overflow + sv->overflow, 0);
	CV_CHECK(cl->max_sent_len <= CV_DTLS_MTU);
	CV_CHECK(sv->max_sent_len <= CV_DTLS_MTU);
}

/* Common state for the tests: two certificates, two contexts. */
static struct cv_dtls_cert *cert_a, *cert_b;
static struct cv_dtls_ctx *ctx_a, *ctx_b;
static struct cv_dtls_fingerprint fp_a, fp_b;
static char tmpdir[64];

/* ---- Fingerprint parser ---- */

static void test_fingerprint_parse(void)
{
	struct cv_dtls_fingerprint fp;
	const char *s = cv_dtls_cert_fingerprint(cert_a);
	size_t len = strlen(s);
	char buf[CV_DTLS_FINGERPRINT_STRLEN + 8];

	CV_CHECK_INT(len, 8 + 32 * 3 - 1);
	CV_CHECK(strncmp(s, "sha-256 ", 8) == 0);
	for (size_t i = 8; i < len; i++) {
		if ((i - 8) % 3 == 2)
			CV_CHECK(s[i] == ':');
		else
			CV_CHECK((s[i] >= '0' && s[i] <= '9') ||
				 (s[i] >= 'A' && s[i] <= 'F'));
	}
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp, s, len), 0);
	CV_CHECK_INT(fp.hash, CV_DTLS_HASH_SHA256);
	CV_CHECK_INT(fp.len, 32);
	CV_CHECK(strcmp(cv_dtls_cert_fingerprint(cert_a),
			cv_dtls_cert_fingerprint(cert_b)) != 0);

	/* Truncation at every length fails, and never writes *out. */
	for (size_t n = 0; n < len; n++) {
		struct cv_dtls_fingerprint o;

		memset(&o, 0xA5, sizeof(o));
		CV_CHECK(cv_dtls_fingerprint_parse(&o, s, n) < 0);
		CV_CHECK_INT(((uint8_t *)&o)[0], 0xA5);
	}

	/* Lower case hex and upper case hash names are accepted. */
	memcpy(buf, s, len + 1);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] >= 'A' && buf[i] <= 'F')
			buf[i] = (char)(buf[i] - 'A' + 'a');
	}
	memcpy(buf, "SHA-256", 7);
	struct cv_dtls_fingerprint fp2;
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, buf, len), 0);
	CV_CHECK_MEM(fp2.md, fp.md, 32);

	/* Other hashes. */
	static const char sha1[] = "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:"
				   "CC:DD:EE:FF:00:11:22:33";
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, sha1, strlen(sha1)), 0);
	CV_CHECK_INT(fp2.hash, CV_DTLS_HASH_SHA1);
	CV_CHECK_INT(fp2.len, 20);
	CV_CHECK_INT(fp2.md[10], 0xAA);

	char big[CV_DTLS_FINGERPRINT_STRLEN + 8];
	strcpy(big, "sha-512 ");
	for (int i = 0; i < 64; i++)
		strcat(big, i ? ":7F" : "7F");
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, big, strlen(big)), 0);
	CV_CHECK_INT(fp2.len, 64);
	big[1] = 'X'; /* "sXa-512": an unknown but well-formed token */
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, big, strlen(big)),
		     CV_EUNSUPP);
	strcat(big, ":7F"); /* 65 bytes: too long for any hash */
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, big, strlen(big)),
		     CV_EPARSE);

	static const char *const bad[] = {
		"",
		" AB:CD",
		"sha-256",
		"sha-256 ",
		"sha-256  AB",
		"sha-256 AB:",
		"sha-256 AB::CD",
		"sha-256 ABC",
		"sha-256 A",
		"sha-256 G0",
		"sha-256 AB-CD",
		"sha(256 AB",
		"sha-256 AB:CD", /* too short for sha-256 */
		/* sha-1 with 19 bytes */
		("sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:"
		 "11:22"),
		"sha-256 AB:CD\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = cv_dtls_fingerprint_parse(&fp2, bad[i], strlen(bad[i]));

		if (r != CV_EPARSE)
			fprintf(stderr, "bad[%zu] = \"%s\" -> %d\n", i, bad[i],
				r);
		CV_CHECK_INT(r, CV_EPARSE);
	}
	static const char md5[] = "md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:"
				  "DD:EE:FF";
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, md5, strlen(md5)),
		     CV_EUNSUPP);
	/* An embedded NUL is not a token character. */
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, "sha\0-256 AB", 11),
		     CV_EPARSE);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(NULL, s, len), -EINVAL);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fp2, NULL, 3), -EINVAL);
}

/* ---- Handshakes ---- */

static void test_handshake(void)
{
	struct endpoint cl, sv;

	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	CV_CHECK_INT(cv_dtls_next_timeout_ms(cl.d, 0), -1); /* not started */
	CV_CHECK_INT(cv_dtls_start(sv.d, 0), 0);
	CV_CHECK_INT(sv.out.count, 0); /* the server waits */
	CV_CHECK_INT(cv_dtls_start(cl.d, 0), 0);
	CV_CHECK(cl.out.count > 0);		 /* ClientHello */
	CV_CHECK_INT(cv_dtls_start(cl.d, 0), 0); /* twice: nothing */
	int64_t t = cv_dtls_next_timeout_ms(cl.d, 0);
	CV_CHECK(t > 0 && t <= CV_DTLS_RTX_INITIAL_MS);
	pump(&cl, &sv, 1);
	/* GCM-128 is the first choice of both. */
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	/* Repeated input after the handshake changes nothing. */
	CV_CHECK_INT(cv_dtls_handle_timer(cl.d, 2), 0);
	CV_CHECK_INT(cv_dtls_handle_timer(sv.d, 2), 0);
	CV_CHECK_INT(cl.connected + sv.connected, 2);
	pair_destroy(&cl, &sv);
}

static struct cv_dtls_ctx *ctx_with(struct cv_dtls_cert *cert,
				    const uint16_t *ids, size_t n)
{
	struct cv_dtls_ctx *ctx = NULL;

	CV_CHECK_INT(cv_dtls_ctx_create(&ctx, cert), 0);
	CV_CHECK_INT(cv_dtls_ctx_set_srtp_profiles(ctx, ids, n), 0);
	return ctx;
}

/* Client profile list, server profile list -> the expected outcome. */
static void run_profiles(const uint16_t *cl_ids, size_t cl_n,
			 const uint16_t *sv_ids, size_t sv_n, uint16_t expect)
{
	struct cv_dtls_ctx *c = cl_ids ? ctx_with(cert_a, cl_ids, cl_n)
				       : cv_dtls_ctx_ref(ctx_a);
	struct cv_dtls_ctx *s = sv_ids ? ctx_with(cert_b, sv_ids, sv_n)
				       : cv_dtls_ctx_ref(ctx_b);
	struct endpoint cl, sv;

	pair_create(&cl, &sv, c, s, &fp_b, &fp_a);
	cv_dtls_start(sv.d, 0);
	cv_dtls_start(cl.d, 0);
	pump(&cl, &sv, 1);
	if (expect) {
		check_pair_connected(&cl, &sv, expect);
	} else {
		CV_CHECK_INT(cl.connected + sv.connected, 0);
		CV_CHECK_INT(cl.failed, 1);
		CV_CHECK_INT(sv.failed, 1);
		CV_CHECK_INT(cl.fail_err, CV_EUNSUPP);
		CV_CHECK_INT(sv.fail_err, CV_EUNSUPP);
	}
	pair_destroy(&cl, &sv);
	cv_dtls_ctx_unref(c);
	cv_dtls_ctx_unref(s);
}

/*
 * Does the server's or the client's use_srtp order win? The client offers
 * CM first and GCM later; the server (default list) prefers GCM-128.
 * Outcome: the server's order wins (see cv_dtls_ctx_set_srtp_profiles).
 */
static void test_profile_server_order(void)
{
	static const uint16_t cm_first[] = {CV_DTLS_SRTP_AES128_CM_SHA1_80,
					    CV_DTLS_SRTP_AEAD_AES_256_GCM,
					    CV_DTLS_SRTP_AEAD_AES_128_GCM};
	static const uint16_t cm_only[] = {CV_DTLS_SRTP_AES128_CM_SHA1_80};
	static const uint16_t gcm256_only[] = {CV_DTLS_SRTP_AEAD_AES_256_GCM};
	static const uint16_t gcm128_only[] = {CV_DTLS_SRTP_AEAD_AES_128_GCM};
	static const uint16_t gcm_first[] = {CV_DTLS_SRTP_AEAD_AES_128_GCM,
					     CV_DTLS_SRTP_AES128_CM_SHA1_80};

	run_profiles(cm_first, 3, NULL, 0, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	/* And the other way: our client offers GCM first, a CM-first server
	 * picks CM. */
	run_profiles(gcm_first, 2, cm_first, 3, CV_DTLS_SRTP_AES128_CM_SHA1_80);
	/* Each profile, with its material length. */
	run_profiles(cm_only, 1, NULL, 0, CV_DTLS_SRTP_AES128_CM_SHA1_80);
	run_profiles(NULL, 0, gcm256_only, 1, CV_DTLS_SRTP_AEAD_AES_256_GCM);
	/* Nothing in common: both give up. */
	run_profiles(cm_only, 1, gcm128_only, 1, 0);

	CV_CHECK_INT(cv_dtls_srtp_material_len(CV_DTLS_SRTP_AES128_CM_SHA1_80),
		     60);
	CV_CHECK_INT(cv_dtls_srtp_material_len(CV_DTLS_SRTP_AEAD_AES_128_GCM),
		     56);
	CV_CHECK_INT(cv_dtls_srtp_material_len(CV_DTLS_SRTP_AEAD_AES_256_GCM),
		     88);
	CV_CHECK_INT(cv_dtls_srtp_material_len(0x0002), 0);

	static const uint16_t unknown[] = {0x0002};
	static const uint16_t dup[] = {0x0001, 0x0001};
	CV_CHECK_INT(cv_dtls_ctx_set_srtp_profiles(ctx_a, unknown, 1),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_dtls_ctx_set_srtp_profiles(ctx_a, dup, 2), -EINVAL);
	CV_CHECK_INT(cv_dtls_ctx_set_srtp_profiles(ctx_a, dup, 0), -EINVAL);
}

static void run_wrong_fp(bool client_wrong)
{
	struct cv_dtls_fingerprint wrong = fp_a;
	struct endpoint cl, sv;

	wrong.md[5] ^= 0x01;
	if (client_wrong)
		pair_create(&cl, &sv, ctx_a, ctx_b, &wrong, &fp_a);
	else
		pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &wrong);
	cv_dtls_start(cl.d, 0);
	pump(&cl, &sv, 1);
	CV_CHECK_INT(cl.connected + sv.connected, 0);
	CV_CHECK_INT(cl.failed, 1);
	CV_CHECK_INT(sv.failed, 1);
	/* The side that checked says why; the other got an alert. */
	CV_CHECK_INT(client_wrong ? cl.fail_err : sv.fail_err, CV_EAUTH);
	CV_CHECK_INT(client_wrong ? sv.fail_err : cl.fail_err, CV_EPROTO);
	/* Dead associations refuse more work. */
	static const uint8_t rec[] = {22, 0xfe, 0xfd, 0, 0};
	CV_CHECK_INT(cv_dtls_handle_datagram(cl.d, rec, sizeof(rec), 2),
		     -ENOTCONN);
	CV_CHECK_INT(cv_dtls_handle_timer(sv.d, 2), -ENOTCONN);
	CV_CHECK_INT(cv_dtls_next_timeout_ms(sv.d, 2), -1);
	pair_destroy(&cl, &sv);
}

static void test_wrong_fingerprint(void)
{
	run_wrong_fp(true);
	run_wrong_fp(false);

	/* A wrong one next to the right one is fine (several a=fingerprint
	 * lines). */
	struct cv_dtls_fingerprint two[2] = {fp_a, fp_b};
	struct endpoint cl, sv;
	struct cv_dtls_callbacks cb;

	two[1].md[0] ^= 0x80;
	two[0] = two[1];
	two[1] = fp_a;
	memset(&cl, 0, sizeof(cl));
	memset(&sv, 0, sizeof(sv));
	cb = ep_callbacks(&cl);
	CV_CHECK_INT(cv_dtls_local_create(&cl.d, ctx_a, CV_DTLS_ROLE_CLIENT,
					  &fp_b, 1, &cb),
		     0);
	cb = ep_callbacks(&sv);
	CV_CHECK_INT(cv_dtls_local_create(&sv.d, ctx_b, CV_DTLS_ROLE_SERVER,
					  two, 2, &cb),
		     0);
	cv_dtls_start(cl.d, 0);
	pump(&cl, &sv, 1);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	pair_destroy(&cl, &sv);
}

/* ---- Loaded certificates, other hashes, fragmentation ---- */

static int write_pem(const char *cert_path, const char *key_path, X509 *x,
		     EVP_PKEY *k)
{
	FILE *f = fopen(cert_path, "w");
	int ok;

	if (!f)
		return 0;
	ok = PEM_write_X509(f, x);
	fclose(f);
	if (!ok || !key_path)
		return ok;
	f = fopen(key_path, "w");
	if (!f)
		return 0;
	ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	return ok;
}

/* A self-signed certificate with ~3 kB of subject: flights must be split. */
static X509 *big_cert(EVP_PKEY *k)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	char ou[61];

	memset(ou, 'o', sizeof(ou) - 1);
	ou[sizeof(ou) - 1] = '\0';
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	for (int i = 0; i < 50; i++)
		X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
					   (const unsigned char *)ou, -1, -1,
					   0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	return x;
}

static void fp_text(char *out, const char *hash, X509 *x, const EVP_MD *md)
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	X509_digest(x, md, d, &n);
	out += sprintf(out, "%s ", hash);
	for (unsigned int i = 0; i < n; i++)
		out += sprintf(out, i ? ":%02X" : "%02X", d[i]);
}

static void test_cert_load(void)
{
	char cpath[128], kpath[128], other[128], txt[256];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	EVP_PKEY *k2 = EVP_EC_gen("P-256");
	X509 *x = big_cert(k);
	struct cv_dtls_cert *cert = NULL;
	struct cv_dtls_ctx *ctx = NULL;
	struct cv_dtls_fingerprint fps[2];
	struct endpoint cl, sv;
	struct cv_dtls_callbacks cb;

	snprintf(cpath, sizeof(cpath), "%s/cert.pem", tmpdir);
	snprintf(kpath, sizeof(kpath), "%s/key.pem", tmpdir);
	snprintf(other, sizeof(other), "%s/other.pem", tmpdir);
	CV_CHECK(write_pem(cpath, kpath, x, k));

	CV_CHECK_INT(cv_dtls_cert_load(&cert, cpath, kpath), 0);
	fp_text(txt, "sha-256", x, EVP_sha256());
	CV_CHECK_STR(cv_dtls_cert_fingerprint(cert), txt);

	/* Errors. */
	struct cv_dtls_cert *bad = NULL;
	CV_CHECK_INT(cv_dtls_cert_load(&bad, "/nonexistent/c.pem", kpath),
		     -ENOENT);
	CV_CHECK_INT(cv_dtls_cert_load(&bad, cpath, "/nonexistent/k.pem"),
		     -ENOENT);
	CV_CHECK_INT(cv_dtls_cert_load(&bad, kpath, kpath), CV_EPARSE);
	CV_CHECK_INT(cv_dtls_cert_load(&bad, cpath, cpath), CV_EPARSE);
	CV_CHECK(write_pem(other, NULL, x, NULL));
	FILE *f = fopen(other, "w");
	PEM_write_PrivateKey(f, k2, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	CV_CHECK_INT(cv_dtls_cert_load(&bad, cpath, other), CV_ECRYPTO);
	CV_CHECK(bad == NULL);

	/* Handshake as server with the big certificate; the client pins it
	 * by SHA-1 and SHA-512 (RFC 8122 allows any listed hash). */
	CV_CHECK_INT(cv_dtls_ctx_create(&ctx, cert), 0);
	cert = cv_dtls_cert_unref(cert); /* the ctx holds its own */
	fp_text(txt, "sha-1", x, EVP_sha1());
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fps[0], txt, strlen(txt)), 0);
	fp_text(txt, "sha-512", x, EVP_sha512());
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&fps[1], txt, strlen(txt)), 0);
	fps[0].md[0] ^= 1; /* only the SHA-512 one is right */
	memset(&cl, 0, sizeof(cl));
	memset(&sv, 0, sizeof(sv));
	cb = ep_callbacks(&cl);
	CV_CHECK_INT(cv_dtls_local_create(&cl.d, ctx_a, CV_DTLS_ROLE_CLIENT,
					  fps, 2, &cb),
		     0);
	cb = ep_callbacks(&sv);
	CV_CHECK_INT(cv_dtls_local_create(&sv.d, ctx, CV_DTLS_ROLE_SERVER,
					  &fp_a, 1, &cb),
		     0);
	ctx = cv_dtls_ctx_unref(ctx); /* the association holds its own */
	cv_dtls_start(cl.d, 0);
	pump(&cl, &sv, 1);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	/* The certificate alone exceeds one datagram: it was fragmented. */
	CV_CHECK(i2d_X509(x, NULL) > CV_DTLS_MTU);
	CV_CHECK(sv.sent > 5);
	pair_destroy(&cl, &sv);

	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	unlink(cpath);
	unlink(kpath);
	unlink(other);
}

/* ---- Timers ---- */

static uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs timers and delivery on the real clock until both connect. */
static void run_until_connected(struct endpoint *cl, struct endpoint *sv)
{
	for (int i = 0; i < 20 && !(cl->connected && sv->connected); i++) {
		uint64_t now = real_ms();
		int64_t a = cv_dtls_next_timeout_ms(cl->d, now);
		int64_t b = cv_dtls_next_timeout_ms(sv->d, now);
		int64_t t = a < 0 ? b : (b < 0 || a < b ? a : b);

		if (t < 0)
			break;
		if (t > 0)
			usleep((useconds_t)t * 1000);
		now = real_ms();
		cv_dtls_handle_timer(cl->d, now);
		cv_dtls_handle_timer(sv->d, now);
		pump(cl, sv, now);
	}
}

static void test_retransmission(void)
{
	struct endpoint cl, sv;

	/* The server's whole first flight is lost. */
	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	sv.drop_next = 100;
	cv_dtls_start(cl.d, real_ms());
	deliver(&cl, &sv, real_ms());
	CV_CHECK(sv.dropped > 0);
	sv.drop_next = 0;
	pump(&cl, &sv, real_ms());
	CV_CHECK_INT(cl.connected + sv.connected, 0);
	run_until_connected(&cl, &sv);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	pair_destroy(&cl, &sv);

	/* The ClientHello and then the client's second flight are lost. */
	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	cl.drop_next = 1;
	cv_dtls_start(cl.d, real_ms());
	CV_CHECK_INT(cl.dropped, 1);
	run_until_connected(&cl, &sv); /* rtx ClientHello, flight 2 back */
	CV_CHECK_INT(cl.connected + sv.connected, 2);
	pair_destroy(&cl, &sv);

	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	cv_dtls_start(cl.d, real_ms());
	deliver(&cl, &sv, real_ms()); /* ClientHello */
	cl.drop_next = 100;
	deliver(&sv, &cl, real_ms()); /* flight 2; flight 3 dropped */
	CV_CHECK(cl.dropped > 0);
	cl.drop_next = 0;
	run_until_connected(&cl, &sv);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	pair_destroy(&cl, &sv);
}

static void test_deadline(void)
{
	struct endpoint cl, sv;
	const uint64_t t0 = 1000000;

	/* Nobody answers: the client retransmits, then gives up. */
	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	CV_CHECK_INT(cv_dtls_handle_timer(cl.d, t0), 0); /* not started */
	cv_dtls_start(cl.d, t0);
	cv_dtls_start(sv.d, t0);
	int64_t t = cv_dtls_next_timeout_ms(sv.d, t0);
	CV_CHECK_INT(t, CV_DTLS_HANDSHAKE_TIMEOUT_MS); /* deadline only */
	t = cv_dtls_next_timeout_ms(sv.d, t0 + 29000);
	CV_CHECK_INT(t, 1000);
	CV_CHECK_INT(cv_dtls_handle_timer(sv.d, t0 + 29999), 0);
	CV_CHECK_INT(sv.failed, 0);
	CV_CHECK_INT(cv_dtls_handle_timer(sv.d, t0 + 30000), 0);
	CV_CHECK_INT(sv.failed, 1);
	CV_CHECK_INT(sv.fail_err, CV_EEXPIRED);
	CV_CHECK_INT(cv_dtls_handle_timer(cl.d, t0 + 30000), 0);
	CV_CHECK_INT(cl.failed, 1);
	CV_CHECK_INT(cl.fail_err, CV_EEXPIRED);
	/* Exactly once. */
	CV_CHECK_INT(cv_dtls_handle_timer(cl.d, t0 + 60000), -ENOTCONN);
	CV_CHECK_INT(cl.failed, 1);
	pair_destroy(&cl, &sv);
}

/* ---- Garbage ---- */

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* A random datagram; with 'framed', a DTLS 1.2 record header with the
 * right length around random content. */
static size_t garbage(uint8_t *buf, size_t max, bool framed, uint8_t type,
		      uint16_t epoch)
{
	size_t len = 13 + rng() % (max - 13);

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rng();
	buf[0] = framed ? type : (uint8_t)(20 + rng() % 44);
	if (framed) {
		buf[1] = 0xfe;
		buf[2] = 0xfd;
		buf[3] = (uint8_t)(epoch >> 8);
		buf[4] = (uint8_t)epoch;
		buf[11] = (uint8_t)((len - 13) >> 8);
		buf[12] = (uint8_t)(len - 13);
	}
	return len;
}

/* Feeds n garbage datagrams; msg_type >= 0 sets the handshake type. */
static void feed_garbage(struct endpoint *ep, int n, bool framed, uint8_t type,
			 uint16_t epoch, int msg_type)
{
	uint8_t buf[600];

	for (int i = 0; i < n; i++) {
		size_t len = garbage(buf, sizeof(buf), framed, type, epoch);

		if (msg_type >= 0 && len > 13)
			buf[13] = (uint8_t)msg_type;
		cv_dtls_handle_datagram(ep->d, buf, len, 1);
	}
}

/*
 * A server that has not begun takes nothing but a ClientHello: framed
 * records of every other kind, and truncated ClientHellos, are dropped
 * before OpenSSL sees them, and the real handshake still succeeds.
 */
static void test_screen(void)
{
	struct endpoint cl, sv;
	uint8_t buf[600];

	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	for (uint8_t type = 20; type <= 23; type++) {
		for (int i = 0; i < 50; i++) {
			size_t len = garbage(buf, sizeof(buf), true, type, 0);

			if (type == 22)
				buf[13] = (uint8_t)(2 + rng() % 30);
			CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, buf, len, 0),
				     CV_EPROTO);
			buf[4] = 1; /* epoch 1 before any handshake */
			CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, buf, len, 0),
				     CV_EPROTO);
		}
	}
	CV_CHECK_INT(sv.failed + sv.sent, 0);
	cv_dtls_start(cl.d, 0);
	CV_CHECK_INT(cl.out.count, 1);
	size_t ch_len = cl.out.len[cl.out.head];
	memcpy(buf, cl.out.data[cl.out.head], ch_len);
	for (size_t n = 1; n < ch_len; n++)
		CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, buf, n, 0),
			     CV_EPARSE);
	CV_CHECK_INT(sv.failed + sv.sent, 0);
	/* Application data in epoch 0 is refused in the middle, too. */
	deliver(&cl, &sv, 1);
	buf[0] = 23;
	CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, buf, ch_len, 1), CV_EPROTO);
	CV_CHECK_INT(cv_dtls_handle_datagram(cl.d, buf, ch_len, 1), CV_EPROTO);
	pump(&cl, &sv, 1);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	pair_destroy(&cl, &sv);
}

static void test_garbage(void)
{
	struct endpoint cl, sv;
	uint8_t big[CV_DTLS_MAX_DATAGRAM + 1];

	/* Unframed noise around every flight is dropped by the record layer
	 * and the handshake completes. */
	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	memset(big, 22, sizeof(big));
	CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, big, sizeof(big), 0),
		     CV_ETOOBIG);
	CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, big, 0, 0), CV_EPARSE);
	big[0] = 0; /* STUN range: not ours */
	CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, big, 100, 0), CV_EPARSE);
	big[0] = 128; /* RTP range */
	CV_CHECK_INT(cv_dtls_handle_datagram(sv.d, big, 100, 0), CV_EPARSE);
	feed_garbage(&sv, 200, false, 0, 0, -1);
	cv_dtls_start(cl.d, 0);
	for (int i = 0; i < 10; i++) {
		deliver(&cl, &sv, 1);
		feed_garbage(&sv, 20, false, 0, 0, -1);
		deliver(&sv, &cl, 1);
		feed_garbage(&cl, 20, false, 0, 0, -1);
	}
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);

	/* After the handshake, well-framed records that fail decryption
	 * (epoch 1) or belong to an old epoch (0) are silently discarded,
	 * RFC 6347 section 4.1.2.7. */
	for (uint8_t type = 20; type <= 23; type++) {
		feed_garbage(&sv, 50, true, type, 1, -1);
		feed_garbage(&cl, 50, true, type, 1, -1);
		feed_garbage(&sv, 50, true, type, 0, -1);
		feed_garbage(&cl, 50, true, type, 0, -1);
	}
	pump(&cl, &sv, 2);
	CV_CHECK_INT(cl.failed + sv.failed + cl.closed + sv.closed, 0);
	CV_CHECK_INT(cl.connected + sv.connected, 2);
	pair_destroy(&cl, &sv);

	/* A garbage ClientHello to a fresh server, or framed epoch-0
	 * records to a client in progress, may fail the handshake (a decode
	 * error is fatal), but only ever through one on_failed, and never
	 * crashes. */
	for (int round = 0; round < 20; round++) {
		pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
		feed_garbage(&sv, 3, true, 22, 0, 1);
		cv_dtls_start(cl.d, 0);
		deliver(&cl, &sv, 1);
		feed_garbage(&cl, 10, true, (uint8_t)(20 + round % 4), 0, -1);
		pump(&cl, &sv, 1);
		CV_CHECK(sv.failed <= 1 && cl.failed <= 1);
		CV_CHECK(!(sv.failed && sv.connected));
		CV_CHECK(!(cl.failed && cl.connected));
		if (!sv.failed && !cl.failed)
			CV_CHECK_INT(cl.connected + sv.connected, 2);
		pair_destroy(&cl, &sv);
	}
}

/* ---- close_notify ---- */

static void test_close_notify(void)
{
	struct endpoint cl, sv;

	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	cv_dtls_start(cl.d, 0);
	pump(&cl, &sv, 1);
	check_pair_connected(&cl, &sv, CV_DTLS_SRTP_AEAD_AES_128_GCM);

	CV_CHECK_INT(cv_dtls_close(cl.d), 0);
	CV_CHECK_INT(cl.out.count, 1); /* close_notify */
	deliver(&cl, &sv, 2);
	CV_CHECK_INT(sv.closed, 1);
	CV_CHECK_INT(sv.failed, 0);
	CV_CHECK_INT(sv.out.count, 1); /* its close_notify in reply */
	deliver(&sv, &cl, 2);	       /* ignored: the client closed */
	CV_CHECK_INT(cl.closed + cl.failed, 0);
	CV_CHECK_INT(cv_dtls_close(cl.d), 0); /* twice is fine */
	CV_CHECK_INT(cv_dtls_next_timeout_ms(sv.d, 3), -1);
	pair_destroy(&cl, &sv);

	/* Closing before the handshake sends nothing. */
	pair_create(&cl, &sv, ctx_a, ctx_b, &fp_b, &fp_a);
	CV_CHECK_INT(cv_dtls_close(sv.d), 0);
	CV_CHECK_INT(sv.out.count, 0);
	CV_CHECK_INT(cv_dtls_start(sv.d, 0), -ENOTCONN);
	pair_destroy(&cl, &sv);
}

/* ---- Argument checks ---- */

static void test_api(void)
{
	struct cv_dtls *d = NULL;
	struct endpoint ep;
	struct cv_dtls_callbacks cb;
	struct cv_dtls_fingerprint fps[CV_DTLS_MAX_PEER_FINGERPRINTS + 1];

	memset(&ep, 0, sizeof(ep));
	cb = ep_callbacks(&ep);
	for (size_t i = 0; i < sizeof(fps) / sizeof(fps[0]); i++)
		fps[i] = fp_a;
	CV_CHECK_INT(cv_dtls_local_create(&d, ctx_a, CV_DTLS_ROLE_CLIENT, fps,
					  0, &cb),
		     -EINVAL);
	CV_CHECK_INT(cv_dtls_local_create(&d, ctx_a, CV_DTLS_ROLE_CLIENT, fps,
					  CV_DTLS_MAX_PEER_FINGERPRINTS + 1,
					  &cb),
		     -EINVAL);
	CV_CHECK_INT(cv_dtls_local_create(&d, NULL, CV_DTLS_ROLE_CLIENT, fps, 1,
					  &cb),
		     -EINVAL);
	cb.on_failed = NULL;
	CV_CHECK_INT(cv_dtls_local_create(&d, ctx_a, CV_DTLS_ROLE_CLIENT, fps,
					  1, &cb),
		     -EINVAL);
	CV_CHECK(d == NULL);
	CV_CHECK_INT(cv_dtls_ctx_create(NULL, cert_a), -EINVAL);
	CV_CHECK_INT(cv_dtls_cert_generate(NULL), -EINVAL);
	cv_dtls_destroy(NULL);
	CV_CHECK(cv_dtls_cert_unref(NULL) == NULL);
	CV_CHECK(cv_dtls_ctx_unref(NULL) == NULL);
	CV_CHECK_INT(cv_dtls_start(NULL, 0), -EINVAL);
	CV_CHECK_INT(cv_dtls_handle_datagram(NULL, NULL, 0, 0), -EINVAL);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cv_test_dtls.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	CV_CHECK_INT(cv_dtls_cert_generate(&cert_a), 0);
	CV_CHECK_INT(cv_dtls_cert_generate(&cert_b), 0);
	CV_CHECK_INT(cv_dtls_ctx_create(&ctx_a, cert_a), 0);
	CV_CHECK_INT(cv_dtls_ctx_create(&ctx_b, cert_b), 0);
	if (!cert_a || !cert_b || !ctx_a || !ctx_b)
		return cv_test_done("test_dtls");
	fp_of(&fp_a, cert_a);
	fp_of(&fp_b, cert_b);

	test_fingerprint_parse();
	test_handshake();
	test_profile_server_order();
	test_wrong_fingerprint();
	test_cert_load();
	test_retransmission();
	test_deadline();
	test_garbage();
	test_screen();
	test_close_notify();
	test_api();

	ctx_a = cv_dtls_ctx_unref(ctx_a);
	ctx_b = cv_dtls_ctx_unref(ctx_b);
	cert_a = cv_dtls_cert_unref(cert_a);
	cert_b = cv_dtls_cert_unref(cert_b);
	rmdir(tmpdir);
	return cv_test_done("test_dtls");
}
