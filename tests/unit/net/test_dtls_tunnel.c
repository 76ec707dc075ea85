/*
 * The node's tunnelled DTLS (src/net/dtls_tunnel.c) and the Key
 * Distributor's DTLS side (kms/kd_dtls.c), for real: an endpoint-side
 * local DTLS client, the node's tunnelled cv_dtls relaying over a real
 * TLS 1.3 cv_tunnel_link to a cv_kd_link + cv_kd_dtls, all on one loop.
 * The node must get exactly the outer halves of the double keys the
 * endpoint derives, and no buffer the node side was handed may contain
 * any part of an inner half or of the endpoint's exporter output.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/loop.h"
#include "conclave/tunnel.h"
#include "cv_test.h"
#include "cv_test_ident.h"
#include "kms/kd_dtls.h"
#include "kms/kd_link.h"

static char dir[] = "/tmp/cv-dtls-tunnel-XXXXXX";

struct ident {
	char cert[128], key[128];
	char fp[CV_TUNNEL_FP_STRLEN];
};

static struct ident kd_id, node_id;

static void make_ident(struct ident *id, const char *name)
{
	snprintf(id->cert, sizeof(id->cert), "%s/%s-cert.pem", dir, name);
	snprintf(id->key, sizeof(id->key), "%s/%s-key.pem", dir, name);
	CV_CHECK_INT(cv_test_write_ident(id->cert, id->key, name,
					 1 + (long)name[0], id->fp),
		     0);
}

/* ---- An independent HKDF (EVP_PKEY interface, not EVP_KDF) ---- */

static void ref_double(uint16_t double_profile, const uint8_t *ikm,
		       size_t ikm_len, uint8_t *out, size_t out_len)
{
	EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	uint8_t info[64];
	size_t il = strlen(CV_KD_DOUBLE_INFO), ol = out_len;

	memcpy(info, CV_KD_DOUBLE_INFO, il);
	info[il++] = (uint8_t)(double_profile >> 8);
	info[il++] = (uint8_t)double_profile;
	CV_CHECK(p != NULL);
	CV_CHECK_INT(EVP_PKEY_derive_init(p), 1);
	CV_CHECK_INT(EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()), 1);
	CV_CHECK_INT(EVP_PKEY_CTX_set1_hkdf_key(p, ikm, (int)ikm_len), 1);
	CV_CHECK_INT(EVP_PKEY_CTX_add1_hkdf_info(p, info, (int)il), 1);
	CV_CHECK_INT(EVP_PKEY_derive(p, out, &ol), 1);
	CV_CHECK_INT(ol, out_len);
	EVP_PKEY_CTX_free(p);
}

/*
 * Known answer for client/perc (also in docs/perc.md), computed with
 * Python's hmac module per RFC 5869: IKM = 00 01 .. 37 (56 octets, the
 * size of AEAD_AES_128_GCM's exporter output), double profile 0x0009,
 * D = 112 octets.
 */
static const char kat_hex[] =
	"4c9d98e1a69f23303d36d67dee5a3b803166d3f090c99956a672aa27c88553a2"
	"6e6319e56bb6a7de52b2be476de92f4cf7815f228e9cede37645b20cd9fc629c"
	"0a6e187bac7b25b085d281a7291d1ff95829464cc13bae62a23ef5b00c8e8cf3"
	"1da0a128be605bacc6e6a212c1a846a6";

static void unhex(uint8_t *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int v = 0;

		CV_CHECK_INT(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void test_derive(void)
{
	uint8_t ikm[88], ref[176], kat[112];
	struct cv_kd_double_keys k;

	for (size_t i = 0; i < sizeof(ikm); i++)
		ikm[i] = (uint8_t)i;
	CV_CHECK_INT(cv_kd_double_keys_derive(&k, CV_DTLS_SRTP_AEAD_AES_128_GCM,
					      ikm, 56),
		     0);
	ref_double(0x0009, ikm, 56, ref, 112);
	CV_CHECK_INT(k.profile, CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM);
	CV_CHECK_INT(k.half_key_len, 16);
	CV_CHECK_INT(cv_secret_len(&k.client_write_key), 32);
	CV_CHECK_INT(cv_secret_len(&k.client_write_salt), 24);
	CV_CHECK_MEM(cv_secret_data(&k.client_write_key), ref, 32);
	CV_CHECK_MEM(cv_secret_data(&k.server_write_key), ref + 32, 32);
	CV_CHECK_MEM(cv_secret_data(&k.client_write_salt), ref + 64, 24);
	CV_CHECK_MEM(cv_secret_data(&k.server_write_salt), ref + 88, 24);
	unhex(kat, kat_hex, sizeof(kat));
	CV_CHECK_MEM(ref, kat, sizeof(kat));
	cv_kd_double_keys_wipe(&k);
	CV_CHECK_INT(cv_secret_len(&k.client_write_key), 0);

	CV_CHECK_INT(cv_kd_double_keys_derive(&k, CV_DTLS_SRTP_AEAD_AES_256_GCM,
					      ikm, 88),
		     0);
	ref_double(0x000A, ikm, 88, ref, 176);
	CV_CHECK_INT(k.profile, CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM);
	CV_CHECK_INT(cv_secret_len(&k.server_write_key), 64);
	CV_CHECK_MEM(cv_secret_data(&k.client_write_key), ref, 64);
	CV_CHECK_MEM(cv_secret_data(&k.server_write_key), ref + 64, 64);
	CV_CHECK_MEM(cv_secret_data(&k.client_write_salt), ref + 128, 24);
	CV_CHECK_MEM(cv_secret_data(&k.server_write_salt), ref + 152, 24);
	cv_kd_double_keys_wipe(&k);

	/* Same IKM, other profile: unrelated output (the id is in info). */
	ref_double(0x000A, ikm, 56, ref, 112);
	CV_CHECK(memcmp(ref, kat, 8) != 0);

	CV_CHECK_INT(cv_kd_double_keys_derive(
			     &k, CV_DTLS_SRTP_AES128_CM_SHA1_80, ikm, 60),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_kd_double_keys_derive(&k, CV_DTLS_SRTP_AEAD_AES_128_GCM,
					      ikm, 55),
		     -EINVAL);
	CV_CHECK_INT(cv_kd_double_keys_derive(&k, CV_DTLS_SRTP_AEAD_AES_128_GCM,
					      NULL, 56),
		     -EINVAL);
}

/* ---- The world: endpoint, node, KD on one loop ---- */

#define QMAX 64

struct dq {
	size_t n;
	size_t len[QMAX];
	uint8_t buf[QMAX][CV_DTLS_MAX_DATAGRAM];
};

/* Copies of every buffer the node side was handed. */
struct seen {
	size_t n;
	uint8_t *buf[512];
	size_t len[512];
};

struct world {
	struct cv_loop *loop;
	struct cv_kd_link *kdl;
	struct cv_kd_dtls *kdd;
	struct cv_kd_node *kd_node;
	struct cv_tunnel_link *link;
	int link_up, link_down, kd_up;
	/* kd_dtls hooks */
	bool allow_ep;
	struct cv_dtls_fingerprint ep_fp;
	int kd_done, kd_done_err;
	uint16_t kd_done_profile;
	/* endpoint */
	struct cv_dtls_cert *ep_cert;
	struct cv_dtls_ctx *ep_ctx;
	struct cv_dtls *ep;
	int ep_conn, ep_fail, ep_err;
	uint16_t ep_profile;
	uint8_t ep_mat[CV_DTLS_MATERIAL_MAX];
	size_t ep_mat_len;
	/* node */
	struct cv_dtls *nd;
	int nd_conn, nd_fail, nd_err, node_keys_msgs;
	uint16_t nd_profile;
	bool nd_is_client;
	uint8_t nd_mat[CV_DTLS_MATERIAL_MAX];
	size_t nd_mat_len;
	struct dq to_node, to_ep;
	struct seen seen;
};

static struct cv_dtls_cert *kd_dtls_cert;

static void seen_add(struct seen *s, const void *p, size_t len)
{
	if (s->n == sizeof(s->buf) / sizeof(s->buf[0])) {
		CV_CHECK(!"seen log full");
		return;
	}
	s->buf[s->n] = malloc(len ? len : 1);
	memcpy(s->buf[s->n], p, len);
	s->len[s->n++] = len;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->buf[i]);
	s->n = 0;
}

/* True when any 8-octet window of needle occurs in a seen buffer. */
static bool seen_has(const struct seen *s, const uint8_t *needle, size_t nlen)
{
	for (size_t w = 0; w + 8 <= nlen; w++) {
		for (size_t i = 0; i < s->n; i++) {
			for (size_t o = 0; o + 8 <= s->len[i]; o++) {
				if (memcmp(s->buf[i] + o, needle + w, 8) == 0)
					return true;
			}
		}
	}
	return false;
}

static void dq_push(struct dq *q, const uint8_t *p, size_t len)
{
	CV_CHECK(q->n < QMAX && len <= CV_DTLS_MAX_DATAGRAM);
	if (q->n >= QMAX || len > CV_DTLS_MAX_DATAGRAM)
		return;
	memcpy(q->buf[q->n], p, len);
	q->len[q->n++] = len;
}

/* Node link callbacks: everything the node side is handed is logged. */
static void link_on_up(void *arg)
{
	((struct world *)arg)->link_up++;
}

static void link_on_down(void *arg, int err)
{
	struct world *w = arg;

	w->link_down++;
	if (w->nd)
		cv_dtls_tunnel_link_down(w->nd, err);
}

static void link_on_message(void *arg, const struct cv_tunnel_msg *m)
{
	struct world *w = arg;

	if (m->type == CV_TUNNEL_TUNNELED_DTLS) {
		seen_add(&w->seen, m->u.dtls.data, m->u.dtls.len);
	} else {
		w->node_keys_msgs++;
		seen_add(&w->seen, m, sizeof(*m));
	}
	if (w->nd)
		CV_CHECK_INT(cv_dtls_tunnel_handle_message(w->nd, m), 0);
}

static void kd_on_up(void *arg, struct cv_kd_node *node, const char *id)
{
	struct world *w = arg;

	(void)id;
	w->kd_up++;
	w->kd_node = node;
}

static void kd_on_message(void *arg, struct cv_kd_node *node,
			  const struct cv_tunnel_msg *m)
{
	struct world *w = arg;

	(void)cv_kd_dtls_handle_message(w->kdd, node, m);
}

static void kd_on_down(void *arg, struct cv_kd_node *node, int err)
{
	struct world *w = arg;

	(void)err;
	cv_kd_dtls_node_down(w->kdd, node);
	if (w->kd_node == node)
		w->kd_node = NULL;
}

static int kd_fps(void *arg, struct cv_kd_node *node,
		  const struct cv_tunnel_assoc_id *assoc,
		  struct cv_dtls_fingerprint *fps, size_t max)
{
	struct world *w = arg;

	(void)node;
	(void)assoc;
	if (!w->allow_ep || max < 1)
		return 0;
	fps[0] = w->ep_fp;
	return 1;
}

static void kd_done(void *arg, struct cv_kd_node *node,
		    const struct cv_tunnel_assoc_id *assoc, uint16_t profile,
		    int err)
{
	struct world *w = arg;

	(void)node;
	(void)assoc;
	w->kd_done++;
	w->kd_done_err = err;
	w->kd_done_profile = profile;
}

/* Endpoint callbacks (the test's side: it may see everything). */
static void ep_send(void *arg, const uint8_t *rec, size_t len)
{
	dq_push(&((struct world *)arg)->to_node, rec, len);
}

static void ep_connected(void *arg, uint16_t profile, const uint8_t *mat,
			 size_t len, bool is_client)
{
	struct world *w = arg;

	w->ep_conn++;
	w->ep_profile = profile;
	CV_CHECK(is_client);
	memcpy(w->ep_mat, mat, len);
	w->ep_mat_len = len;
}

static void ep_failed(void *arg, int err)
{
	struct world *w = arg;

	w->ep_fail++;
	w->ep_err = err;
}

/* Node-side cv_dtls callbacks. */
static void nd_send(void *arg, const uint8_t *rec, size_t len)
{
	dq_push(&((struct world *)arg)->to_ep, rec, len);
}

static void nd_connected(void *arg, uint16_t profile, const uint8_t *mat,
			 size_t len, bool is_client)
{
	struct world *w = arg;

	w->nd_conn++;
	w->nd_profile = profile;
	w->nd_is_client = is_client;
	memcpy(w->nd_mat, mat, len);
	w->nd_mat_len = len;
	seen_add(&w->seen, mat, len);
}

static void nd_failed(void *arg, int err)
{
	struct world *w = arg;

	w->nd_fail++;
	w->nd_err = err;
}

/* One step: the loop, the datagrams in flight, the endpoint's timer. */
static void pump(struct world *w)
{
	static struct dq q;
	uint64_t now;

	cv_loop_run_once(w->loop, 5);
	now = cv_clock_now_ms();
	q = w->to_node;
	w->to_node.n = 0;
	for (size_t i = 0; i < q.n; i++) {
		/* Everything the endpoint sends reaches the node first. */
		seen_add(&w->seen, q.buf[i], q.len[i]);
		if (w->nd)
			cv_dtls_handle_datagram(w->nd, q.buf[i], q.len[i], now);
	}
	q = w->to_ep;
	w->to_ep.n = 0;
	for (size_t i = 0; i < q.n; i++) {
		if (w->ep)
			cv_dtls_handle_datagram(w->ep, q.buf[i], q.len[i], now);
	}
	if (w->ep && cv_dtls_next_timeout_ms(w->ep, now) == 0)
		cv_dtls_handle_timer(w->ep, now);
}

static bool pump_until(struct world *w, const int *flag, int want,
		       uint64_t timeout_ms)
{
	uint64_t end = cv_clock_now_ms() + timeout_ms;

	while (*flag < want && cv_clock_now_ms() < end)
		pump(w);
	return *flag >= want;
}

static void pump_for(struct world *w, uint64_t ms)
{
	uint64_t end = cv_clock_now_ms() + ms;

	while (cv_clock_now_ms() < end)
		pump(w);
}

static void world_up(struct world *w, struct cv_loop *loop,
		     const uint16_t *node_profiles, size_t n_node_profiles)
{
	const char *allowed[] = {node_id.fp};
	struct cv_kd_link_opts ko = {.address = "127.0.0.1",
				     .cert_file = kd_id.cert,
				     .key_file = kd_id.key,
				     .allowed_nodes = allowed,
				     .n_allowed = 1};
	struct cv_kd_link_callbacks kcb = {.on_node_up = kd_on_up,
					   .on_message = kd_on_message,
					   .on_node_down = kd_on_down,
					   .arg = w};
	struct cv_kd_dtls_opts dopts = {
		.fingerprints = kd_fps, .on_done = kd_done, .arg = w};
	struct cv_tunnel_link_callbacks lcb = {.on_up = link_on_up,
					       .on_down = link_on_down,
					       .on_message = link_on_message,
					       .arg = w};

	w->loop = loop;
	w->allow_ep = true;
	CV_CHECK_INT(cv_kd_link_create(&w->kdl, loop, &ko, &kcb), 0);
	CV_CHECK_INT(
		cv_kd_dtls_create(&w->kdd, loop, w->kdl, kd_dtls_cert, &dopts),
		0);
	struct cv_tunnel_link_opts lo = {.host = "127.0.0.1",
					 .port = cv_kd_link_port(w->kdl),
					 .cert_file = node_id.cert,
					 .key_file = node_id.key,
					 .kd_fingerprint = kd_id.fp,
					 .profiles = node_profiles,
					 .n_profiles = n_node_profiles,
					 .connect_timeout_ms = 2000};
	CV_CHECK_INT(cv_tunnel_link_create(&w->link, loop, &lo, &lcb), 0);
	CV_CHECK(pump_until(w, &w->link_up, 1, 3000));
	CV_CHECK(pump_until(w, &w->kd_up, 1, 3000));
}

/* The endpoint: a local DTLS client that pins the KD's certificate. */
static void endpoint_new(struct world *w, const uint16_t *profiles, size_t n,
			 const char *kd_pin)
{
	struct cv_dtls_fingerprint pin;
	struct cv_dtls_callbacks cb = {.send = ep_send,
				       .on_connected = ep_connected,
				       .on_failed = ep_failed,
				       .arg = w};
	const char *fp;

	CV_CHECK_INT(cv_dtls_cert_generate(&w->ep_cert), 0);
	CV_CHECK_INT(cv_dtls_ctx_create(&w->ep_ctx, w->ep_cert), 0);
	if (profiles)
		CV_CHECK_INT(
			cv_dtls_ctx_set_srtp_profiles(w->ep_ctx, profiles, n),
			0);
	fp = cv_dtls_cert_fingerprint(w->ep_cert);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&w->ep_fp, fp, strlen(fp)), 0);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&pin, kd_pin, strlen(kd_pin)),
		     0);
	CV_CHECK_INT(cv_dtls_local_create(&w->ep, w->ep_ctx,
					  CV_DTLS_ROLE_CLIENT, &pin, 1, &cb),
		     0);
}

static void node_new(struct world *w)
{
	struct cv_tunnel_assoc_id id;
	struct cv_dtls_callbacks cb = {.send = nd_send,
				       .on_connected = nd_connected,
				       .on_failed = nd_failed,
				       .arg = w};

	CV_CHECK_INT(cv_dtls_tunnel_new_assoc_id(&id), 0);
	CV_CHECK_INT(id.b[6] >> 4, 4);
	CV_CHECK_INT(id.b[8] >> 6, 2);
	CV_CHECK_INT(cv_dtls_tunnel_create(&w->nd, w->link, &id,
					   CV_DTLS_ROLE_SERVER, &cb),
		     0);
	CV_CHECK_MEM(cv_dtls_tunnel_assoc(w->nd)->b, id.b, 16);
}

static void world_down(struct world *w)
{
	cv_dtls_destroy(w->ep);
	cv_dtls_destroy(w->nd);
	cv_dtls_ctx_unref(w->ep_ctx);
	cv_dtls_cert_unref(w->ep_cert);
	cv_tunnel_link_destroy(w->link);
	cv_kd_dtls_destroy(w->kdd);
	cv_kd_link_destroy(w->kdl);
	seen_free(&w->seen);
	OPENSSL_cleanse(w->ep_mat, sizeof(w->ep_mat));
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));

	CV_CHECK(w != NULL);
	return w;
}

/* The handshake through the tunnel, for one use_srtp profile. */
static void test_handshake(struct cv_loop *loop, uint16_t ep_profile)
{
	struct world *w = world_new();
	uint16_t profs[1] = {ep_profile};
	const size_t K = ep_profile == CV_DTLS_SRTP_AEAD_AES_128_GCM ? 16 : 32;
	const uint16_t dbl = K == 16 ? CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM
				     : CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM;
	uint8_t d[176], outer[88];
	size_t dl = 2 * (2 * K + 24);

	world_up(w, loop, NULL, 0);
	endpoint_new(w, profs, 1, cv_dtls_cert_fingerprint(kd_dtls_cert));
	node_new(w);
	CV_CHECK_INT(cv_dtls_start(w->nd, cv_clock_now_ms()), 0);
	CV_CHECK(cv_dtls_next_timeout_ms(w->nd, cv_clock_now_ms()) > 29000);
	CV_CHECK_INT(cv_dtls_start(w->ep, cv_clock_now_ms()), 0);
	CV_CHECK(pump_until(w, &w->ep_conn, 1, 5000));
	CV_CHECK(pump_until(w, &w->nd_conn, 1, 5000));
	CV_CHECK_INT(w->ep_fail + w->nd_fail, 0);
	CV_CHECK_INT(w->kd_done, 1);
	CV_CHECK_INT(w->kd_done_err, 0);
	CV_CHECK_INT(w->kd_done_profile, dbl);
	CV_CHECK_INT(w->node_keys_msgs, 1);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 1);
	CV_CHECK_INT(cv_dtls_next_timeout_ms(w->nd, cv_clock_now_ms()), -1);

	/* The endpoint's view: the ordinary exporter output, stretched by
	 * the documented rule (computed here independently). */
	CV_CHECK_INT(w->ep_profile, ep_profile);
	CV_CHECK_INT(w->ep_mat_len, cv_dtls_srtp_material_len(ep_profile));
	ref_double(dbl, w->ep_mat, w->ep_mat_len, d, dl);
	memcpy(outer, d + K, K);			/* client key, outer */
	memcpy(outer + K, d + 3 * K, K);		/* server key, outer */
	memcpy(outer + 2 * K, d + 4 * K + 12, 12);	/* client salt */
	memcpy(outer + 2 * K + 12, d + 4 * K + 36, 12); /* server salt */

	/* The node's view: exactly the outer halves, single-profile form. */
	CV_CHECK_INT(w->nd_profile, ep_profile);
	CV_CHECK(!w->nd_is_client);
	CV_CHECK_INT(w->nd_mat_len, 2 * K + 24);
	CV_CHECK_MEM(w->nd_mat, outer, 2 * K + 24);

	/* No buffer the node side was handed holds any 8 octets of an
	 * inner half, nor of the exporter output they come from. */
	CV_CHECK(w->seen.n > 5);
	CV_CHECK(!seen_has(&w->seen, d, K));		   /* client inner */
	CV_CHECK(!seen_has(&w->seen, d + 2 * K, K));	   /* server inner */
	CV_CHECK(!seen_has(&w->seen, d + 4 * K, 12));	   /* client salt */
	CV_CHECK(!seen_has(&w->seen, d + 4 * K + 24, 12)); /* server salt */
	CV_CHECK(!seen_has(&w->seen, w->ep_mat, w->ep_mat_len));
	/* ... while the same scan finds the outer halves (it works). */
	CV_CHECK(seen_has(&w->seen, d + K, K));
	CV_CHECK(seen_has(&w->seen, d + 3 * K, K));
	CV_CHECK(seen_has(&w->seen, d + 4 * K + 12, 12));
	CV_CHECK(seen_has(&w->seen, d + 4 * K + 36, 12));

	/* The node forgets the endpoint: the KD drops its association. */
	cv_dtls_destroy(w->nd);
	w->nd = NULL;
	for (int i = 0; i < 300 && cv_kd_dtls_assocs(w->kdd); i++)
		pump(w);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 0);
	OPENSSL_cleanse(d, sizeof(d));
	world_down(w);
	free(w);
}

/* The endpoint pins another KD certificate: nobody gets keys. */
static void test_wrong_kd_pin(struct cv_loop *loop)
{
	struct world *w = world_new();
	struct cv_dtls_cert *other;
	uint64_t now;

	CV_CHECK_INT(cv_dtls_cert_generate(&other), 0);
	world_up(w, loop, NULL, 0);
	endpoint_new(w, NULL, 0, cv_dtls_cert_fingerprint(other));
	node_new(w);
	now = cv_clock_now_ms();
	CV_CHECK_INT(cv_dtls_start(w->ep, now), 0);
	CV_CHECK(pump_until(w, &w->ep_fail, 1, 5000));
	CV_CHECK_INT(w->ep_err, CV_EAUTH);
	CV_CHECK(pump_until(w, &w->kd_done, 1, 3000));
	CV_CHECK(w->kd_done_err != 0);
	CV_CHECK_INT(w->nd_conn, 0);
	CV_CHECK_INT(w->node_keys_msgs, 0);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 0);
	/* The node's deadline (stepped clock): 30 s after its first
	 * datagram, nothing before. */
	now = cv_clock_now_ms();
	int64_t due = cv_dtls_next_timeout_ms(w->nd, now);
	CV_CHECK(due > CV_DTLS_HANDSHAKE_TIMEOUT_MS - 6000);
	CV_CHECK_INT(cv_dtls_handle_timer(w->nd, now + (uint64_t)due - 1), 0);
	CV_CHECK_INT(w->nd_fail, 0);
	CV_CHECK_INT(cv_dtls_handle_timer(w->nd, now + (uint64_t)due), 0);
	CV_CHECK_INT(w->nd_fail, 1);
	CV_CHECK_INT(w->nd_err, CV_EEXPIRED);
	CV_CHECK_INT(cv_dtls_handle_timer(w->nd, now), -ENOTCONN);
	CV_CHECK_INT(cv_dtls_start(w->nd, now), -ENOTCONN);
	cv_dtls_cert_unref(other);
	world_down(w);
	free(w);
}

/* The KD does not know the endpoint's certificate, or has another one. */
static void test_unknown_endpoint(struct cv_loop *loop)
{
	struct world *w = world_new();
	struct cv_dtls_cert *other;
	const char *fp;

	world_up(w, loop, NULL, 0);
	endpoint_new(w, NULL, 0, cv_dtls_cert_fingerprint(kd_dtls_cert));
	node_new(w);
	/* No fingerprint registered: no association is opened. */
	w->allow_ep = false;
	CV_CHECK_INT(cv_dtls_start(w->ep, cv_clock_now_ms()), 0);
	pump_for(w, 300);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 0);
	CV_CHECK_INT(w->kd_done, 0);
	CV_CHECK_INT(w->ep_conn + w->nd_conn, 0);
	/* Another certificate registered: the KD fails the handshake. */
	CV_CHECK_INT(cv_dtls_cert_generate(&other), 0);
	fp = cv_dtls_cert_fingerprint(other);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&w->ep_fp, fp, strlen(fp)), 0);
	w->allow_ep = true;
	CV_CHECK(pump_until(w, &w->kd_done, 1, 5000));
	CV_CHECK_INT(w->kd_done_err, CV_EAUTH);
	CV_CHECK(pump_until(w, &w->ep_fail, 1, 3000));
	CV_CHECK_INT(w->ep_conn + w->nd_conn, 0);
	CV_CHECK_INT(w->node_keys_msgs, 0);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 0);
	cv_dtls_cert_unref(other);
	world_down(w);
	free(w);
}

/* The node offered only the 256 double profile; use_srtp agreed 128. */
static void test_profile_not_offered(struct cv_loop *loop)
{
	struct world *w = world_new();
	const uint16_t only256[] = {CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM};
	const uint16_t ep128[] = {CV_DTLS_SRTP_AEAD_AES_128_GCM};

	world_up(w, loop, only256, 1);
	endpoint_new(w, ep128, 1, cv_dtls_cert_fingerprint(kd_dtls_cert));
	node_new(w);
	CV_CHECK_INT(cv_dtls_start(w->ep, cv_clock_now_ms()), 0);
	CV_CHECK(pump_until(w, &w->kd_done, 1, 5000));
	CV_CHECK_INT(w->kd_done_err, CV_EUNSUPP);
	pump_for(w, 100);
	CV_CHECK_INT(w->node_keys_msgs, 0);
	CV_CHECK_INT(w->nd_conn, 0);
	CV_CHECK_INT(cv_kd_dtls_assocs(w->kdd), 0);
	world_down(w);
	free(w);
}

/* The link goes down during the handshake, and API edges. */
static void test_link_down_and_edges(struct cv_loop *loop)
{
	struct world *w = world_new();
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_MEDIA_KEYS};
	struct cv_tunnel_assoc_id other;
	struct cv_dtls_callbacks cb = {.send = nd_send,
				       .on_connected = nd_connected,
				       .on_failed = nd_failed,
				       .arg = w};
	struct cv_dtls *d;
	uint8_t junk[40] = {23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27};

	world_up(w, loop, NULL, 0);
	node_new(w);
	CV_CHECK_INT(cv_dtls_tunnel_create(&d, w->link,
					   cv_dtls_tunnel_assoc(w->nd),
					   CV_DTLS_ROLE_CLIENT, &cb),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_dtls_tunnel_create(&d, NULL,
					   cv_dtls_tunnel_assoc(w->nd),
					   CV_DTLS_ROLE_SERVER, &cb),
		     -EINVAL);
	CV_CHECK(cv_dtls_tunnel_assoc(NULL) == NULL);
	/* Not a ClientHello first; application data in epoch 0. */
	CV_CHECK_INT(cv_dtls_handle_datagram(w->nd, junk, sizeof(junk), 0),
		     CV_EPROTO);
	junk[0] = 22;
	junk[13] = 2; /* ServerHello */
	CV_CHECK_INT(cv_dtls_handle_datagram(w->nd, junk, sizeof(junk), 0),
		     CV_EPROTO);
	CV_CHECK_INT(cv_dtls_handle_datagram(w->nd, junk, 12, 0), CV_EPARSE);
	/* MediaKeys before anything was relayed; for another id; a type the
	 * KD never sends. */
	m.u.keys.assoc = *cv_dtls_tunnel_assoc(w->nd);
	m.u.keys.profile = CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM;
	m.u.keys.key_len = 16;
	CV_CHECK_INT(cv_dtls_tunnel_handle_message(w->nd, &m), CV_EPROTO);
	CV_CHECK_INT(cv_dtls_tunnel_new_assoc_id(&other), 0);
	m.u.keys.assoc = other;
	CV_CHECK_INT(cv_dtls_tunnel_handle_message(w->nd, &m), -EINVAL);
	m.type = CV_TUNNEL_ENDPOINT_DISCONNECT;
	CV_CHECK_INT(cv_dtls_tunnel_handle_message(w->nd, &m), -EINVAL);
	CV_CHECK_INT(cv_dtls_tunnel_handle_message(NULL, &m), -EINVAL);
	CV_CHECK_INT(w->nd_conn + w->nd_fail, 0);

	/* The KD goes away mid-handshake: the node fails at once. */
	CV_CHECK_INT(cv_dtls_start(w->nd, 0), 0);
	cv_kd_dtls_destroy(w->kdd);
	w->kdd = NULL;
	cv_kd_link_destroy(w->kdl);
	w->kdl = NULL;
	CV_CHECK(pump_until(w, &w->link_down, 1, 3000));
	CV_CHECK_INT(w->nd_fail, 1);
	CV_CHECK(w->nd_err != 0);
	CV_CHECK_INT(cv_dtls_handle_datagram(w->nd, junk, sizeof(junk), 0),
		     -ENOTCONN);
	CV_CHECK_INT(cv_dtls_close(w->nd), 0);

	/* A fresh association on the down link fails on its first record. */
	cv_dtls_destroy(w->nd);
	w->nd = NULL;
	node_new(w);
	w->nd_fail = 0;
	junk[13] = 1; /* looks like a ClientHello */
	CV_CHECK_INT(cv_dtls_handle_datagram(w->nd, junk, sizeof(junk), 0), 0);
	CV_CHECK_INT(w->nd_fail, 1);
	CV_CHECK_INT(w->nd_err, -ENOTCONN);
	CV_CHECK_INT(cv_dtls_next_timeout_ms(w->nd, 0), -1);
	world_down(w);
	free(w);
}

int main(void)
{
	struct cv_loop *loop = NULL;
	char cmd[80];

	signal(SIGPIPE, SIG_IGN);
	test_derive();
	CV_CHECK(mkdtemp(dir) != NULL);
	make_ident(&kd_id, "kd");
	make_ident(&node_id, "node");
	CV_CHECK_INT(cv_dtls_cert_generate(&kd_dtls_cert), 0);
	CV_CHECK_INT(cv_loop_create(&loop), 0);
	test_handshake(loop, CV_DTLS_SRTP_AEAD_AES_128_GCM);
	test_handshake(loop, CV_DTLS_SRTP_AEAD_AES_256_GCM);
	test_wrong_kd_pin(loop);
	test_unknown_endpoint(loop);
	test_profile_not_offered(loop);
	test_link_down_and_edges(loop);
	cv_loop_destroy(loop);
	cv_dtls_cert_unref(kd_dtls_cert);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done("test_dtls_tunnel");
}
