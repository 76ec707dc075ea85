/*
 * The Key Distributor's DTLS side: one DTLS-SRTP server per tunnelled
 * association, MediaKeys with the outer halves only. See kms/kd_dtls.h
 * and docs/perc.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "conclave/perc_e2e.h"
#include "kms/kd_dtls.h"
#include "kms/kd_link.h"

#define KD_DTLS_DEFAULT_MAX 4096
#define KD_DTLS_BUCKETS	    256
#define KD_SALT_HALF	    12 /* RFC 7714 section 14.2: 96-bit salt */

/* ---- The double-key rule ---- */

/*
 * Largest D: 2 * (2 * 32 + 24) = 176 octets (the 256 double profile).
 * See kd_dtls.h and docs/perc.md for why HKDF over the ordinary exporter
 * output rather than the DOUBLE use_srtp ids (stock OpenSSL 3.0 does not
 * know them).
 */
#define KD_DOUBLE_MAX (2 * (2 * 32 + 2 * KD_SALT_HALF))

int cv_kd_double_keys_derive(struct cv_kd_double_keys *out,
			     uint16_t srtp_profile_id, const uint8_t *material,
			     size_t material_len)
{
	uint8_t d[KD_DOUBLE_MAX];
	struct cv_kd_double_keys k = {0};
	enum cv_perc_profile p;
	size_t half, dk, off = 0;
	int n;

	if (!out || !material)
		return -EINVAL;
	if (material_len != cv_dtls_srtp_material_len(srtp_profile_id))
		return -EINVAL;
	/* The endpoint's own implementation of the rule (one for both). */
	n = cv_perc_double_material(srtp_profile_id, material, material_len, &p,
				    d, sizeof(d));
	if (n < 0)
		return n;
	half = p == CV_PERC_DOUBLE_AES_128_GCM ? 16 : 32;
	k.profile = half == 16 ? CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM
			       : CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM;
	k.half_key_len = half;
	dk = 2 * half;
	/* RFC 5764 section 4.2 order, each entry twice its single length
	 * (RFC 8723 section 5.1: inner half first, outer half last). */
	cv_secret_set(&k.client_write_key, d + off, dk);
	off += dk;
	cv_secret_set(&k.server_write_key, d + off, dk);
	off += dk;
	cv_secret_set(&k.client_write_salt, d + off, 2 * KD_SALT_HALF);
	off += 2 * KD_SALT_HALF;
	cv_secret_set(&k.server_write_salt, d + off, 2 * KD_SALT_HALF);
	OPENSSL_cleanse(d, sizeof(d));
	*out = k;
	cv_kd_double_keys_wipe(&k);
	return 0;
}

void cv_kd_double_keys_wipe(struct cv_kd_double_keys *k)
{
	if (!k)
		return;
	cv_secret_wipe(&k->client_write_key);
	cv_secret_wipe(&k->server_write_key);
	cv_secret_wipe(&k->client_write_salt);
	cv_secret_wipe(&k->server_write_salt);
}

/* ---- Associations ---- */

struct kd_assoc {
	struct cv_kd_dtls *kd;
	struct cv_kd_node *node;
	struct cv_tunnel_assoc_id id;
	struct cv_dtls *dtls;
	struct cv_timer timer;
	bool keyed;  /* MediaKeys sent */
	bool ended;  /* on_done reported */
	bool dead;   /* free after the current cv_dtls_* call */
	bool refuse; /* close after the current call (profile not offered) */
	struct kd_assoc *next;
};

struct cv_kd_dtls {
	struct cv_loop *loop;
	struct cv_kd_link *link;
	struct cv_dtls_ctx *ctx;
	struct cv_kd_dtls_opts opts;
	size_t n;
	struct kd_assoc *buckets[KD_DTLS_BUCKETS];
};

static size_t assoc_bucket(const struct cv_kd_node *node,
			   const struct cv_tunnel_assoc_id *id)
{
	uintptr_t h = (uintptr_t)node;

	for (size_t i = 0; i < sizeof(id->b); i++)
		h = h * 31 + id->b[i];
	return (size_t)(h % KD_DTLS_BUCKETS);
}

static struct kd_assoc *assoc_find(struct cv_kd_dtls *kd,
				   const struct cv_kd_node *node,
				   const struct cv_tunnel_assoc_id *id)
{
	struct kd_assoc *a = kd->buckets[assoc_bucket(node, id)];

	while (a && (a->node != node || memcmp(a->id.b, id->b, sizeof(id->b))))
		a = a->next;
	return a;
}

static void assoc_free(struct kd_assoc *a)
{
	struct cv_kd_dtls *kd = a->kd;
	struct kd_assoc **pp = &kd->buckets[assoc_bucket(a->node, &a->id)];

	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	kd->n--;
	cv_timer_stop(kd->loop, &a->timer);
	cv_dtls_destroy(a->dtls);
	free(a);
}

static void assoc_end(struct kd_assoc *a, uint16_t profile, int err)
{
	struct cv_kd_dtls *kd = a->kd;

	if (a->ended)
		return;
	a->ended = true;
	if (kd->opts.on_done)
		kd->opts.on_done(kd->opts.arg, a->node, &a->id, profile, err);
}

/* After every cv_dtls_* call on a: deferred close or free, next timer. */
static void assoc_settle(struct kd_assoc *a)
{
	struct cv_loop *loop = a->kd->loop;
	uint64_t now = cv_loop_now_ms(loop);
	int64_t next;

	if (a->refuse && !a->dead) {
		cv_dtls_close(a->dtls); /* close_notify to the endpoint */
		a->dead = true;
	}
	if (a->dead) {
		assoc_free(a);
		return;
	}
	next = cv_dtls_next_timeout_ms(a->dtls, now);
	if (next < 0)
		cv_timer_stop(loop, &a->timer);
	else
		cv_timer_start(loop, &a->timer, now + (uint64_t)next);
}

static void assoc_timer(void *arg)
{
	struct kd_assoc *a = arg;

	cv_dtls_handle_timer(a->dtls, cv_loop_now_ms(a->kd->loop));
	assoc_settle(a);
}

/* The DTLS server's datagrams go back to the endpoint through the node. */
static void assoc_send(void *arg, const uint8_t *rec, size_t len)
{
	struct kd_assoc *a = arg;
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_TUNNELED_DTLS};

	m.u.dtls.assoc = a->id;
	m.u.dtls.data = rec;
	m.u.dtls.len = len;
	/* A lost datagram is retransmitted; a dead node ends us anyway. */
	(void)cv_kd_link_send(a->kd->link, a->node, &m);
}

static bool node_offers(struct cv_kd_node *node, uint16_t double_profile)
{
	size_t n = 0;
	const uint16_t *ids = cv_kd_node_profiles(node, &n);

	for (size_t i = 0; i < n; i++) {
		if (ids[i] == double_profile)
			return true;
	}
	return false;
}

/*
 * RFC 9185 section 6 (MediaKeys) with our restriction (docs/perc.md,
 * "What MediaKeys may carry to the node"): the outer half of each key and
 * salt, never the inner one.
 */
static int send_media_keys(struct kd_assoc *a,
			   const struct cv_kd_double_keys *k)
{
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_MEDIA_KEYS};
	struct cv_tunnel_media_keys *mk = &m.u.keys;
	size_t h = k->half_key_len;
	int err;

	mk->assoc = a->id;
	mk->profile = k->profile;
	mk->key_len = (uint8_t)h;
	memcpy(mk->client_write_key, cv_secret_data(&k->client_write_key) + h,
	       h);
	memcpy(mk->server_write_key, cv_secret_data(&k->server_write_key) + h,
	       h);
	memcpy(mk->client_write_salt,
	       cv_secret_data(&k->client_write_salt) + KD_SALT_HALF,
	       KD_SALT_HALF);
	memcpy(mk->server_write_salt,
	       cv_secret_data(&k->server_write_salt) + KD_SALT_HALF,
	       KD_SALT_HALF);
	err = cv_kd_link_send(a->kd->link, a->node, &m);
	cv_tunnel_media_keys_wipe(mk);
	return err;
}

static void assoc_connected(void *arg, uint16_t srtp_profile_id,
			    const uint8_t *material, size_t material_len,
			    bool is_client)
{
	struct kd_assoc *a = arg;
	struct cv_kd_double_keys k;
	int err;

	(void)is_client;
	err = cv_kd_double_keys_derive(&k, srtp_profile_id, material,
				       material_len);
	if (err) {
		a->refuse = true;
		assoc_end(a, 0, err);
		return;
	}
	if (!node_offers(a->node, k.profile)) {
		cv_kd_double_keys_wipe(&k);
		a->refuse = true;
		assoc_end(a, k.profile, CV_EUNSUPP);
		return;
	}
	err = send_media_keys(a, &k);
	cv_kd_double_keys_wipe(&k);
	if (err) {
		a->dead = true;
		assoc_end(a, k.profile, err);
		return;
	}
	a->keyed = true;
	cv_log(CV_LOG_DEBUG, CV_LOG_KMS,
	       "kd: hop keys sent (node=%s double_profile=0x%04x)",
	       cv_kd_node_id(a->node), k.profile);
	assoc_end(a, k.profile, 0);
}

static void assoc_failed(void *arg, int err)
{
	struct kd_assoc *a = arg;

	a->dead = true;
	assoc_end(a, 0, err);
}

static void assoc_closed(void *arg)
{
	struct kd_assoc *a = arg;

	a->dead = true;
	assoc_end(a, 0, -ENOTCONN);
}

/* RFC 6347 section 4.2.4: the endpoint (DTLS client) opens with a
 * ClientHello (record type 22, epoch 0, handshake msg_type 1). */
static bool is_client_hello(const uint8_t *p, size_t len)
{
	return len >= 13 + 12 && p[0] == 22 && p[3] == 0 && p[4] == 0 &&
	       p[13] == 1;
}

static int assoc_open(struct cv_kd_dtls *kd, struct cv_kd_node *node,
		      const struct cv_tunnel_assoc_id *id,
		      struct kd_assoc **out)
{
	struct cv_dtls_fingerprint fps[CV_DTLS_MAX_PEER_FINGERPRINTS];
	struct cv_dtls_callbacks cb = {.send = assoc_send,
				       .on_connected = assoc_connected,
				       .on_failed = assoc_failed,
				       .on_closed = assoc_closed};
	struct kd_assoc *a;
	size_t b;
	int n, err;

	if (kd->n >= kd->opts.max_assocs)
		return CV_ETOOBIG;
	n = kd->opts.fingerprints(kd->opts.arg, node, id, fps,
				  CV_DTLS_MAX_PEER_FINGERPRINTS);
	if (n <= 0 || n > CV_DTLS_MAX_PEER_FINGERPRINTS)
		return CV_EAUTH;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->kd = kd;
	a->node = node;
	a->id = *id;
	cv_timer_init(&a->timer, assoc_timer, a);
	cb.arg = a;
	err = cv_dtls_local_create(&a->dtls, kd->ctx, CV_DTLS_ROLE_SERVER, fps,
				   (size_t)n, &cb);
	if (err) {
		free(a);
		return err;
	}
	b = assoc_bucket(node, id);
	a->next = kd->buckets[b];
	kd->buckets[b] = a;
	kd->n++;
	*out = a;
	return 0;
}

int cv_kd_dtls_handle_message(struct cv_kd_dtls *kd, struct cv_kd_node *node,
			      const struct cv_tunnel_msg *m)
{
	struct kd_assoc *a;
	int err;

	if (!kd || !node || !m)
		return -EINVAL;
	if (m->type == CV_TUNNEL_ENDPOINT_DISCONNECT) {
		a = assoc_find(kd, node, &m->u.disconnect.assoc);
		if (!a)
			return -ENOENT;
		/* RFC 9185 section 6: the endpoint is gone; forget it. */
		assoc_free(a);
		return 0;
	}
	if (m->type != CV_TUNNEL_TUNNELED_DTLS)
		return -EINVAL;
	a = assoc_find(kd, node, &m->u.dtls.assoc);
	if (!a) {
		if (!is_client_hello(m->u.dtls.data, m->u.dtls.len))
			return -ENOENT;
		err = assoc_open(kd, node, &m->u.dtls.assoc, &a);
		if (err) {
			cv_log_ratelimited(CV_LOG_INFO, CV_LOG_KMS,
					   "kd: association refused: %s "
					   "(node=%s)",
					   cv_strerror(err),
					   cv_kd_node_id(node));
			return err;
		}
	}
	err = cv_dtls_handle_datagram(a->dtls, m->u.dtls.data, m->u.dtls.len,
				      cv_loop_now_ms(kd->loop));
	/* A first datagram that did not start a handshake leaves nothing. */
	if (err && !a->keyed &&
	    cv_dtls_next_timeout_ms(a->dtls, cv_loop_now_ms(kd->loop)) < 0)
		a->dead = true;
	assoc_settle(a);
	return err == -ENOTCONN ? 0 : err;
}

void cv_kd_dtls_node_down(struct cv_kd_dtls *kd, struct cv_kd_node *node)
{
	if (!kd)
		return;
	for (size_t b = 0; b < KD_DTLS_BUCKETS; b++) {
		struct kd_assoc *a = kd->buckets[b], *next;

		for (; a; a = next) {
			next = a->next;
			if (a->node == node)
				assoc_free(a);
		}
	}
}

size_t cv_kd_dtls_assocs(const struct cv_kd_dtls *kd)
{
	return kd ? kd->n : 0;
}

/* RFC 8723 section 5.1: each half of DOUBLE_AEAD_AES_{128,256}_GCM is the
 * single AEAD profile of RFC 7714; use_srtp carries that one. */
static const uint16_t kd_profiles[] = {
	CV_DTLS_SRTP_AEAD_AES_128_GCM,
	CV_DTLS_SRTP_AEAD_AES_256_GCM,
};

int cv_kd_dtls_create(struct cv_kd_dtls **out, struct cv_loop *loop,
		      struct cv_kd_link *link, struct cv_dtls_cert *cert,
		      const struct cv_kd_dtls_opts *opts)
{
	struct cv_kd_dtls *kd;
	int err;

	if (!out || !loop || !link || !cert || !opts || !opts->fingerprints)
		return -EINVAL;
	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd->loop = loop;
	kd->link = link;
	kd->opts = *opts;
	if (!kd->opts.max_assocs)
		kd->opts.max_assocs = KD_DTLS_DEFAULT_MAX;
	err = cv_dtls_ctx_create(&kd->ctx, cert);
	if (!err)
		err = cv_dtls_ctx_set_srtp_profiles(
			kd->ctx, kd_profiles,
			sizeof(kd_profiles) / sizeof(kd_profiles[0]));
	if (err) {
		cv_dtls_ctx_unref(kd->ctx);
		free(kd);
		return err;
	}
	*out = kd;
	return 0;
}

void cv_kd_dtls_destroy(struct cv_kd_dtls *kd)
{
	if (!kd)
		return;
	for (size_t b = 0; b < KD_DTLS_BUCKETS; b++) {
		while (kd->buckets[b])
			assoc_free(kd->buckets[b]);
	}
	cv_dtls_ctx_unref(kd->ctx);
	free(kd);
}
