/*
 * bench_forward: the switch's packet path in-process, without sockets.
 *
 * One publisher and K subscribers are real switch transports: each bench
 * endpoint runs an ICE check (Binding request with USE-CANDIDATE, as a
 * browser sends) and a DTLS-SRTP handshake (our cv_dtls as the client)
 * against the switch, through cv_switch_inject and the switch's egress
 * hook, each from its own fake source address. The publisher then sends
 * SRTP packets that were protected beforehand (not timed); the timed loop
 * only injects them, so it measures demux, 5-tuple lookup, unprotect,
 * track lookup, NACK cache, and per subscriber: copy, rewrite, protect,
 * egress. A verification pass (not timed) decrypts every egress packet on
 * its subscriber's side and checks SSRC, PT, sequence continuity and
 * payload; timed passes check the egress count.
 *
 * The floor, measured the same way: one cv_srtp_unprotect plus K times
 * (copy + cv_srtp_protect with the K subscribers' sessions) per packet.
 *
 * --perc (builds with CV_BENCH_PERC, e.g. tests/unit/switch's
 * bench_forward_perc): the same in a perc room. An in-process Key
 * Distributor (kms/kd_link.c + kms/kd_dtls.c) on the worker's loop, the
 * switch's own TLS 1.3 tunnel link to it, every endpoint's DTLS tunnelled
 * to it; the publisher's packets are double SRTP (client library
 * cv_perc_sender: inner layer, OHB, outer layer with its hop key,
 * EKTField); the switch does cv_perc_hop_ingress once and
 * cv_perc_hop_egress per subscriber; verification opens every egress
 * packet with cv_perc_receiver (bit-exact, SSRC and timestamp kept). The
 * floor stays plain SRTP of the same payload.
 *
 * Usage: bench_forward [--check] [--kind audio|video|both] [--k 1,10,50]
 *                      [--iters N] [--runs N] [--profile gcm|gcm256|cm]
 *                      [--perc]
 * --check: tiny correctness run (K = 1 and 3, 20 packets), no timing.
 * --iters: packets injected per run (default: 20000 / K, 400..10000).
 * Timing is wall clock, best of --runs (default 9), in ns per forwarded
 * (egress) packet. Under valgrind --tool=callgrind, collect only
 * timed_forward and timed_floor (perf/callgrind.sh does).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/ice.h"
#include "conclave/loop.h"
#include "conclave/pool.h"
#include "conclave/rtp.h"
#include "conclave/secret.h"
#include "conclave/srtp.h"
#include "conclave/stun.h"
#include "conclave/switch.h"
#include "conclave/udp.h"
#include "conclave/worker.h"
#ifdef CV_BENCH_PERC
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/perc_e2e.h"
#include "conclave/tunnel.h"
#include "kms/kd_dtls.h"
#include "kms/kd_link.h"
#endif

#define MAX_K		64
#define MAX_KS		8
#define MAX_CASES	(2 * MAX_KS)
#define RTP_HDR		12
#define AUDIO_PAYLOAD	100  /* an Opus frame at ~40 kbit/s, 20 ms */
#define VIDEO_PAYLOAD	1188 /* 1200-byte RTP packets */
#define VIDEO_PER_FRAME 8    /* packets per video frame (marker on last) */
#define FLOOR_STRIDE                                                           \
	2240 /* like sizeof(struct cv_pkt): no power-of-2 aliasing */
#define DQ_SLOTS  32
#define BASE_PORT 40000

/* ---- options and cases ---- */

struct opts {
	bool check;
	bool audio, video;
	unsigned ks[MAX_KS];
	size_t n_ks;
	size_t iters; /* 0: per K default */
	unsigned runs;
	uint16_t profile_id; /* 0: the ctx default (GCM-128 first) */
	bool perc;
};

struct bcase {
	bool video;
	unsigned k;
	size_t iters;
	uint64_t track_id;
	uint32_t ssrc;
	uint8_t pt;
	uint16_t next_seq; /* the publisher's, for this track */
	uint32_t ts;
	uint32_t n_sent;
#ifdef CV_BENCH_PERC
	struct cv_perc_sender *snd; /* perc: the publisher's, for ssrc */
#endif
	/* results */
	double fwd_ns, floor_ns; /* best run, per forwarded packet */
};

/* ---- bench-side endpoints ---- */

struct dq {
	size_t head, count;
	size_t len[DQ_SLOTS];
	uint8_t data[DQ_SLOTS][CV_DTLS_MAX_DATAGRAM];
};

struct endpoint {
	struct bench *b;
	unsigned index; /* 0: the publisher */
	struct sockaddr_storage addr;
	struct cv_ice_credentials mine, sw; /* ours / the switch's */
	struct cv_dtls *dtls;
	struct cv_srtp *srtp_in, *srtp_out;
	bool connected, failed;
	unsigned stun_ok;
	struct dq inbox;  /* from the switch, for our DTLS */
	struct dq outbox; /* from our DTLS, for the switch */
#ifdef CV_BENCH_PERC
	struct cv_tunnel_assoc_id assoc;
	struct cv_perc_receiver *rcv; /* perc subscribers */
#endif
	/* verification of the current case */
	uint64_t rx_rtp, rx_rtcp;
	bool seq_started;
	uint16_t last_seq;
};

enum mode { MODE_SETUP, MODE_VERIFY, MODE_TIMED, MODE_TEARDOWN };

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
};

struct floor_state {
	struct cv_srtp *pub_out, *in;
	struct cv_srtp *outs[MAX_K];
	uint8_t *bufs; /* iters * FLOOR_STRIDE, 64-byte aligned */
	size_t *lens;
	size_t cap;
	uint8_t *out_buf;
	uint16_t seq;
};

struct bench {
	struct opts o;
	struct bcase cases[MAX_CASES];
	size_t n_cases;
	unsigned n_ep; /* 1 + max K */
	struct endpoint *ep;
	struct cv_dtls_ctx *sw_ctx, *ep_ctx;
	struct cv_dtls_fingerprint sw_fp, ep_fp;
	struct cv_workers *ws;
	struct cv_worker *w;
	struct cv_switch *sw;
	struct waiter wait;
	int err; /* first failure, set on the worker */
	enum mode mode;
	/* verification: the packet being injected */
	const struct bcase *cur;
	const uint8_t *expect_payload;
	size_t expect_payload_len;
	bool expect_marker;
	uint64_t egress_rtp, egress_rtcp, egress_other, bad;
	struct floor_state fl;
#ifdef CV_BENCH_PERC
	/* perc: the Key Distributor on the worker, its files, the EKT key */
	char dir[64];
	char kd_cert[96], kd_key[96], node_cert[96], node_key[96];
	char kd_fp[CV_TUNNEL_FP_STRLEN], node_fp[CV_TUNNEL_FP_STRLEN];
	struct cv_dtls_cert *kd_dtls_cert;
	struct cv_dtls_fingerprint kd_pin;
	struct cv_kd_link *kdl;
	struct cv_kd_dtls *kdd;
	struct cv_perc_ekt_key ekt;
#endif
};

static void fail(struct bench *b, const char *what, int err)
{
	fprintf(stderr, "bench_forward: %s (%s)\n", what, cv_strerror(err));
	if (!b->err)
		b->err = err ? err : -EPROTO;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void dq_push(struct dq *q, const uint8_t *buf, size_t len)
{
	if (q->count == DQ_SLOTS || len > CV_DTLS_MAX_DATAGRAM)
		return; /* lost: DTLS would retransmit; the check fails */
	size_t slot = (q->head + q->count) % DQ_SLOTS;
	memcpy(q->data[slot], buf, len);
	q->len[slot] = len;
	q->count++;
}

/* Endpoint i's source address: 10.1.(i >> 8).(i & 255):BASE_PORT + i. */
static void ep_address(struct sockaddr_storage *ss, unsigned i)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)(BASE_PORT + i));
	sin->sin_addr.s_addr = htonl(0x0a010000u | i);
}

static struct endpoint *ep_by_addr(struct bench *b,
				   const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	if (ss->ss_family != AF_INET)
		return NULL;
	unsigned i = ntohs(sin->sin_port) - BASE_PORT;
	if (i >= b->n_ep || !cv_sockaddr_equal(&b->ep[i].addr, ss))
		return NULL;
	return &b->ep[i];
}

static uint32_t sub_ssrc(const struct bcase *c, unsigned sub)
{
	return 0x20000000u + ((uint32_t)c->track_id << 8) + sub;
}

static uint8_t pattern(uint32_t n, size_t j)
{
	return (uint8_t)(n * 7u + j * 13u + 1u);
}

#ifdef CV_BENCH_PERC
/* ---- perc: the Key Distributor and the endpoints' double keys ---- */

static int make_ident(struct bench *b, const char *name, char *cert, char *key,
		      char *fp)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *nm;
	FILE *f;
	int err = pk && x ? 0 : -ENOMEM;

	snprintf(cert, 96, "%s/%s-cert.pem", b->dir, name);
	snprintf(key, 96, "%s/%s-key.pem", b->dir, name);
	if (!err) {
		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), 1 + (long)name[0]);
		X509_gmtime_adj(X509_getm_notBefore(x), -3600);
		X509_gmtime_adj(X509_getm_notAfter(x), 86400);
		X509_set_pubkey(x, pk);
		nm = X509_get_subject_name(x);
		X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
					   (const unsigned char *)name, -1, -1,
					   0);
		X509_set_issuer_name(x, nm);
		if (X509_sign(x, pk, EVP_sha256()) <= 0)
			err = CV_ECRYPTO;
	}
	if (!err && (f = fopen(cert, "w")) != NULL) {
		PEM_write_X509(f, x);
		fclose(f);
	} else if (!err) {
		err = -errno;
	}
	if (!err && (f = fopen(key, "w")) != NULL) {
		PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
		fclose(f);
	} else if (!err) {
		err = -errno;
	}
	if (!err)
		err = cv_tunnel_cert_fingerprint(x, fp);
	X509_free(x);
	EVP_PKEY_free(pk);
	return err;
}

/* Files for the tunnel's TLS, the KD's DTLS certificate, the EKT key. */
static int perc_prepare(struct bench *b)
{
	const char *fp;
	int err;

	snprintf(b->dir, sizeof(b->dir), "/tmp/cv-bench-perc-XXXXXX");
	if (!mkdtemp(b->dir))
		return -errno;
	err = make_ident(b, "kd", b->kd_cert, b->kd_key, b->kd_fp);
	if (!err)
		err = make_ident(b, "node", b->node_cert, b->node_key,
				 b->node_fp);
	if (!err)
		err = cv_dtls_cert_generate(&b->kd_dtls_cert);
	if (!err) {
		fp = cv_dtls_cert_fingerprint(b->kd_dtls_cert);
		err = cv_dtls_fingerprint_parse(&b->kd_pin, fp, strlen(fp));
	}
	b->ekt.spi = 0x0101;
	cv_secret_init(&b->ekt.key);
	cv_secret_init(&b->ekt.inner_salt);
	if (!err)
		err = cv_secret_random(&b->ekt.key, 16);
	if (!err)
		err = cv_secret_random(&b->ekt.inner_salt, 12);
	for (unsigned i = 0; i < b->n_ep && !err; i++)
		err = cv_dtls_tunnel_new_assoc_id(&b->ep[i].assoc);
	return err;
}

static void perc_cleanup(struct bench *b)
{
	char path[128];
	const char *files[] = {b->kd_cert, b->kd_key, b->node_cert,
			       b->node_key};

	cv_perc_ekt_key_wipe(&b->ekt);
	cv_dtls_cert_unref(b->kd_dtls_cert);
	for (size_t i = 0; i < 4; i++)
		if (files[i][0])
			unlink(files[i]);
	if (b->dir[0]) {
		snprintf(path, sizeof(path), "%s", b->dir);
		rmdir(path);
	}
}

static void kd_node_up(void *arg, struct cv_kd_node *node, const char *id)
{
	(void)arg;
	(void)node;
	(void)id;
}

static void kd_message(void *arg, struct cv_kd_node *node,
		       const struct cv_tunnel_msg *m)
{
	struct bench *b = arg;
	(void)cv_kd_dtls_handle_message(b->kdd, node, m);
}

static void kd_node_down(void *arg, struct cv_kd_node *node, int err)
{
	struct bench *b = arg;
	(void)err;
	cv_kd_dtls_node_down(b->kdd, node);
}

/* The fingerprint registered for an association (the KMS's job). */
static int kd_fingerprints(void *arg, struct cv_kd_node *node,
			   const struct cv_tunnel_assoc_id *assoc,
			   struct cv_dtls_fingerprint *fps, size_t max)
{
	struct bench *b = arg;
	(void)node;
	for (unsigned i = 0; i < b->n_ep && max; i++) {
		if (memcmp(b->ep[i].assoc.b, assoc->b, sizeof(assoc->b)) == 0) {
			fps[0] = b->ep_fp;
			return 1;
		}
	}
	return 0;
}

/* The KD on the worker's loop (port 0), before the switch. */
static int perc_kd_start(struct bench *b, struct cv_loop *loop)
{
	const char *allowed[] = {b->node_fp};
	struct cv_kd_link_opts ko = {.address = "127.0.0.1",
				     .cert_file = b->kd_cert,
				     .key_file = b->kd_key,
				     .allowed_nodes = allowed,
				     .n_allowed = 1};
	struct cv_kd_link_callbacks kcb = {.on_node_up = kd_node_up,
					   .on_message = kd_message,
					   .on_node_down = kd_node_down,
					   .arg = b};
	struct cv_kd_dtls_opts dopts = {.fingerprints = kd_fingerprints,
					.arg = b};
	int err = cv_kd_link_create(&b->kdl, loop, &ko, &kcb);
	if (!err)
		err = cv_kd_dtls_create(&b->kdd, loop, b->kdl, b->kd_dtls_cert,
					&dopts);
	return err;
}

/* One hop session from the outer half of a double key and salt. */
static int outer_session(struct cv_srtp **out,
			 const struct cv_kd_double_keys *k, bool client_write,
			 enum cv_srtp_direction d)
{
	const struct cv_secret *key =
		client_write ? &k->client_write_key : &k->server_write_key;
	const struct cv_secret *salt =
		client_write ? &k->client_write_salt : &k->server_write_salt;
	size_t h = k->half_key_len;
	uint8_t buf[64];
	struct cv_secret s;
	int err;

	memcpy(buf, cv_secret_data(key) + h, h);
	memcpy(buf + h, cv_secret_data(salt) + 12, 12);
	cv_secret_init(&s);
	err = cv_secret_set(&s, buf, h + 12);
	if (!err)
		err = cv_srtp_create(out,
				     h == 16 ? CV_SRTP_AEAD_AES_128_GCM
					     : CV_SRTP_AEAD_AES_256_GCM,
				     &s, d);
	cv_secret_wipe(&s);
	explicit_bzero(buf, sizeof(buf));
	return err;
}

/* The endpoint's double keys (the KD's rule over its own exporter
 * output): hop sessions with the outer halves; a receiver for media. */
static int perc_hop_sessions(struct endpoint *e, uint16_t profile_id,
			     const uint8_t *material, size_t material_len)
{
	struct cv_kd_double_keys k;
	int err = cv_kd_double_keys_derive(&k, profile_id, material,
					   material_len);
	if (err)
		return err;
	err = outer_session(&e->srtp_out, &k, true, CV_SRTP_OUTBOUND);
	if (!err)
		err = outer_session(&e->srtp_in, &k, false, CV_SRTP_INBOUND);
	if (!err && e->index > 0) {
		err = cv_perc_receiver_create(
			&e->rcv,
			k.half_key_len == 16 ? CV_PERC_DOUBLE_AES_128_GCM
					     : CV_PERC_DOUBLE_AES_256_GCM,
			2 * MAX_KS);
		if (!err)
			err = cv_perc_receiver_add_ekt_key(e->rcv, &e->b->ekt);
	}
	cv_kd_double_keys_wipe(&k);
	return err;
}

/* The publisher's sender of case c (its own random inner key). */
static int perc_sender(struct bench *b, struct bcase *c)
{
	struct cv_secret k;
	enum cv_perc_profile p = cv_srtp_get_profile(b->ep[0].srtp_out) ==
						 CV_SRTP_AEAD_AES_256_GCM
					 ? CV_PERC_DOUBLE_AES_256_GCM
					 : CV_PERC_DOUBLE_AES_128_GCM;
	int err;

	if (c->snd)
		return 0;
	cv_secret_init(&k);
	err = cv_secret_random(&k, cv_perc_profile_half_key_bytes(p));
	if (!err)
		err = cv_perc_sender_create(&c->snd, p, c->ssrc, &k, &b->ekt);
	cv_secret_wipe(&k);
	return err;
}
#endif

/* ---- DTLS callbacks of the bench endpoints ---- */

static void ep_send(void *arg, const uint8_t *rec, size_t len)
{
	struct endpoint *e = arg;
	dq_push(&e->outbox, rec, len);
}

static void ep_connected(void *arg, uint16_t profile_id,
			 const uint8_t *material, size_t material_len,
			 bool is_client)
{
	struct endpoint *e = arg;
	int err;
#ifdef CV_BENCH_PERC
	if (e->b->o.perc) {
		err = perc_hop_sessions(e, profile_id, material, material_len);
		goto out;
	}
#endif
	err = cv_srtp_sessions_from_dtls(profile_id, material, material_len,
					 is_client, &e->srtp_in, &e->srtp_out);
#ifdef CV_BENCH_PERC
out:
#endif
	if (err) {
		fail(e->b, "endpoint srtp", err);
		e->failed = true;
		return;
	}
	e->connected = true;
}

static void ep_failed(void *arg, int err)
{
	struct endpoint *e = arg;
	e->failed = true;
	fail(e->b, "endpoint dtls failed", err);
}

/* ---- the switch's egress ---- */

/* Decrypts one forwarded packet on its subscriber's side and checks it. */
static void verify_rtp(struct bench *b, struct endpoint *e, struct cv_pkt *pkt)
{
	const struct bcase *c = b->cur;
	struct cv_rtp_hdr h;
	size_t len = pkt->len;
	e->rx_rtp++;
	if (!c || e->index == 0 || e->index > c->k) {
		b->bad++; /* not a subscriber of this track */
		return;
	}
	int err;
	uint32_t want_ssrc = sub_ssrc(c, e->index);
#ifdef CV_BENCH_PERC
	if (b->o.perc) {
		/* End to end: outer layer, EKT, OHB, inner layer. */
		err = cv_perc_e2e_unprotect(e->rcv, e->srtp_in, pkt->data, &len,
					    NULL);
		want_ssrc = c->ssrc; /* kept by the node */
	} else
#endif
		err = cv_srtp_unprotect(e->srtp_in, pkt->data, &len);
	if (err != 0 || cv_rtp_parse(pkt->data, len, &h) != 0) {
		b->bad++;
		return;
	}
	bool ok = h.ssrc == want_ssrc && h.pt == c->pt &&
		  h.marker == b->expect_marker && !h.extension &&
		  h.payload_len == b->expect_payload_len &&
		  memcmp(h.payload, b->expect_payload, h.payload_len) == 0;
	if (e->seq_started && h.seq != (uint16_t)(e->last_seq + 1))
		ok = false;
	e->seq_started = true;
	e->last_seq = h.seq;
	if (!ok)
		b->bad++;
}

static void on_egress(void *arg, struct cv_pkt *pkt)
{
	struct bench *b = arg;
	enum cv_demux kind = cv_demux_classify(pkt->data, pkt->len);
	bool rtcp = kind == CV_DEMUX_RTP && cv_rtp_is_rtcp(pkt->data, pkt->len);

	if (b->mode == MODE_TIMED) {
		/* Kept tiny: it stands for the queue before sendmmsg. */
		if (kind == CV_DEMUX_RTP && !rtcp)
			b->egress_rtp++;
		else
			b->egress_other++;
		cv_pkt_free(pkt);
		return;
	}
	struct endpoint *e = ep_by_addr(b, &pkt->addr);
	if (!e || b->mode == MODE_TEARDOWN) {
		if (!e)
			b->egress_other++;
		cv_pkt_free(pkt);
		return;
	}
	if (kind == CV_DEMUX_DTLS) {
		dq_push(&e->inbox, pkt->data, pkt->len);
	} else if (kind == CV_DEMUX_STUN) {
		struct cv_stun_msg m;
		if (cv_stun_parse(&m, pkt->data, pkt->len) == 0 &&
		    m.cls == CV_STUN_SUCCESS &&
		    m.method == CV_STUN_METHOD_BINDING &&
		    cv_stun_check_integrity(&m, (const uint8_t *)e->sw.pwd,
					    strlen(e->sw.pwd)) == 0)
			e->stun_ok++;
	} else if (rtcp) {
		e->rx_rtcp++; /* PLI to the publisher, reports */
		b->egress_rtcp++;
	} else if (kind == CV_DEMUX_RTP) {
		b->egress_rtp++;
		if (b->mode == MODE_VERIFY)
			verify_rtp(b, e, pkt);
		else
			b->bad++; /* no media before the cases run */
	} else {
		b->egress_other++;
	}
	cv_pkt_free(pkt);
}

/* ---- running things on the worker ---- */

static void waiter_signal(struct waiter *wt)
{
	pthread_mutex_lock(&wt->m);
	wt->done = true;
	pthread_cond_signal(&wt->c);
	pthread_mutex_unlock(&wt->m);
}

static void waiter_wait(struct waiter *wt)
{
	pthread_mutex_lock(&wt->m);
	while (!wt->done)
		pthread_cond_wait(&wt->c, &wt->m);
	wt->done = false;
	pthread_mutex_unlock(&wt->m);
}

static void on_worker_start(struct cv_worker *w, void *arg)
{
	struct bench *b = arg;
	struct cv_switch_config cfg = {
		.media_address = NULL,
		.dtls = b->sw_ctx,
		/* The node's defaults (src/core/config.c), but consent long
		 * enough for a slow run under valgrind. */
		.consent_timeout_ms = 600000,
		.nack_cache_packets = 512,
		.pli_min_interval_ms = 500,
		.egress = on_egress,
		.egress_arg = b,
	};
	int err = 0;
#ifdef CV_BENCH_PERC
	struct cv_tunnel_link_opts kd = {.host = "127.0.0.1",
					 .cert_file = b->node_cert,
					 .key_file = b->node_key,
					 .kd_fingerprint = b->kd_fp};
	if (b->o.perc) {
		err = perc_kd_start(b, cv_worker_loop(w));
		kd.port = err ? 0 : cv_kd_link_port(b->kdl);
		cfg.kd = &kd;
	}
	if (!err)
#endif
		err = cv_switch_create(&b->sw, w, &cfg);
	if (err) {
		fail(b, "cv_switch_create", err);
		b->sw = NULL;
	}
	cv_worker_set_data(w, b->sw);
	waiter_signal(&b->wait);
}

static void on_worker_stop(struct cv_worker *w, void *arg)
{
	struct bench *b = arg;
	b->mode = MODE_TEARDOWN;
	cv_worker_set_data(w, NULL);
	cv_switch_destroy(b->sw);
	b->sw = NULL;
	for (unsigned i = 0; i < b->n_ep; i++) {
		struct endpoint *e = &b->ep[i];
		cv_dtls_destroy(e->dtls);
		cv_srtp_destroy(e->srtp_in);
		cv_srtp_destroy(e->srtp_out);
		e->dtls = NULL;
		e->srtp_in = e->srtp_out = NULL;
#ifdef CV_BENCH_PERC
		cv_perc_receiver_destroy(e->rcv);
		e->rcv = NULL;
#endif
	}
#ifdef CV_BENCH_PERC
	for (size_t i = 0; i < b->n_cases; i++) {
		cv_perc_sender_destroy(b->cases[i].snd);
		b->cases[i].snd = NULL;
	}
	cv_kd_dtls_destroy(b->kdd);
	cv_kd_link_destroy(b->kdl);
	b->kdd = NULL;
	b->kdl = NULL;
#endif
	struct floor_state *f = &b->fl;
	cv_srtp_destroy(f->pub_out);
	cv_srtp_destroy(f->in);
	for (unsigned i = 0; i < MAX_K; i++)
		cv_srtp_destroy(f->outs[i]);
	memset(f->outs, 0, sizeof(f->outs));
	f->pub_out = f->in = NULL;
}

struct job {
	struct bench *b;
	void (*fn)(struct bench *b);
};

static void run_job(void *arg)
{
	struct job *j = arg;
	if (j->b->sw)
		j->fn(j->b);
	waiter_signal(&j->b->wait);
}

/* Runs fn on the worker after every command posted before; waits. */
static int on_worker(struct bench *b, void (*fn)(struct bench *))
{
	struct job j = {.b = b, .fn = fn};
	int err = cv_worker_post(b->w, run_job, &j);
	if (err)
		return err;
	waiter_wait(&b->wait);
	return b->err;
}

/* ---- set-up: ICE and DTLS for every endpoint (worker thread) ---- */

static void inject_bytes(struct bench *b, struct endpoint *e,
			 const uint8_t *buf, size_t len)
{
	struct cv_pkt *pkt = cv_pkt_alloc(cv_worker_pool(b->w));
	if (!pkt || len > cv_pkt_tailroom(pkt)) {
		cv_pkt_free(pkt);
		fail(b, "inject: no packet", -ENOBUFS);
		return;
	}
	memcpy(pkt->data, buf, len);
	pkt->len = len;
	pkt->addr = e->addr;
	pkt->addr_len = sizeof(struct sockaddr_in);
	pkt->arrival_us = cv_loop_now_us(cv_worker_loop(b->w));
	cv_switch_inject(b->sw, pkt);
}

/* RFC 8445 7.2.4: the controlling agent's check, nominating the pair. */
static void send_check(struct bench *b, struct endpoint *e)
{
	char user[2 * CV_ICE_UFRAG_MAX + 2];
	uint8_t txid[CV_STUN_TXID_BYTES];
	uint8_t buf[512];
	size_t len;
	for (size_t i = 0; i < sizeof(txid); i++)
		txid[i] = (uint8_t)(e->index * 31u + i);
	snprintf(user, sizeof(user), "%s:%s", e->sw.ufrag, e->mine.ufrag);
	struct cv_stun_binding_request req = {
		.txid = txid,
		.username = user,
		.key = (const uint8_t *)e->sw.pwd,
		.key_len = strlen(e->sw.pwd),
		.priority = 0x7e7f1effu - e->index, /* host, RFC 8445 5.1.2 */
		.use_candidate = true,
		.controlling = true,
		.ice = true,
		.tiebreaker = 0x0123456789abcdefull + e->index,
	};
	int err = cv_stun_build_binding_request(buf, sizeof(buf), &req, &len);
	if (err) {
		fail(b, "stun build", err);
		return;
	}
	inject_bytes(b, e, buf, len);
}

/* Moves queued DTLS datagrams both ways; returns how many moved. */
static unsigned pump_once(struct bench *b)
{
	unsigned moved = 0;
	uint64_t now = cv_loop_now_ms(cv_worker_loop(b->w));
	for (unsigned i = 0; i < b->n_ep; i++) {
		struct endpoint *e = &b->ep[i];
		while (e->outbox.count) {
			struct dq *q = &e->outbox;
			inject_bytes(b, e, q->data[q->head], q->len[q->head]);
			q->head = (q->head + 1) % DQ_SLOTS;
			q->count--;
			moved++;
		}
		while (e->inbox.count) {
			struct dq *q = &e->inbox;
			uint8_t buf[CV_DTLS_MAX_DATAGRAM];
			size_t len = q->len[q->head];
			memcpy(buf, q->data[q->head], len);
			q->head = (q->head + 1) % DQ_SLOTS;
			q->count--;
			cv_dtls_handle_datagram(e->dtls, buf, len, now);
			moved++;
		}
	}
	return moved;
}

static void job_connect(struct bench *b)
{
	b->mode = MODE_SETUP;
	uint64_t now = cv_loop_now_ms(cv_worker_loop(b->w));
	for (unsigned i = 0; i < b->n_ep && !b->err; i++) {
		struct endpoint *e = &b->ep[i];
		struct cv_dtls_callbacks cb = {
			.send = ep_send,
			.on_connected = ep_connected,
			.on_failed = ep_failed,
			.arg = e,
		};
		send_check(b, e);
		if (e->stun_ok != 1) {
			fail(b, "ice check not answered", -EPROTO);
			return;
		}
		const struct cv_dtls_fingerprint *pin = &b->sw_fp;
#ifdef CV_BENCH_PERC
		if (b->o.perc) /* the endpoint pins the KD, not the node */
			pin = &b->kd_pin;
#endif
		int err = cv_dtls_local_create(
			&e->dtls, b->ep_ctx, CV_DTLS_ROLE_CLIENT, pin, 1, &cb);
		if (!err)
			err = cv_dtls_start(e->dtls, now);
		if (err)
			fail(b, "endpoint dtls", err);
	}
	if (b->o.perc)
		return; /* the tunnel needs the loop: job_pump_perc */
	for (int round = 0; round < 100 && !b->err; round++)
		if (pump_once(b) == 0)
			break;
	for (unsigned i = 0; i < b->n_ep && !b->err; i++)
		if (!b->ep[i].connected)
			fail(b, "dtls handshake did not finish", -ETIMEDOUT);
}

#ifdef CV_BENCH_PERC
/* perc: one round of datagrams, then back to the loop for the tunnel. */
static bool perc_done;

static void job_pump_perc(struct bench *b)
{
	uint64_t now = cv_loop_now_ms(cv_worker_loop(b->w));
	pump_once(b);
	perc_done = true;
	for (unsigned i = 0; i < b->n_ep; i++) {
		struct endpoint *e = &b->ep[i];
		if (e->dtls && cv_dtls_next_timeout_ms(e->dtls, now) == 0)
			cv_dtls_handle_timer(e->dtls, now);
		if (!e->connected)
			perc_done = false;
	}
}

static void job_kd_up(struct bench *b)
{
	perc_done = cv_switch_kd_up(b->sw);
}

/* Runs job on the worker until it sets perc_done, for at most 10 s. */
static int perc_until(struct bench *b, void (*job)(struct bench *),
		      const char *what)
{
	uint64_t end = cv_clock_now_ms() + 10000;
	int err = 0;
	perc_done = false;
	while (!perc_done && !err && cv_clock_now_ms() < end)
		err = on_worker(b, job);
	if (!err && !perc_done) {
		fail(b, what, -ETIMEDOUT);
		err = b->err;
	}
	return err;
}
#endif

/* ---- the measured passes (worker thread) ---- */

/* Writes the publisher's next plaintext packet of case c into buf. */
static size_t next_plain(struct bcase *c, uint8_t *buf, bool *marker)
{
	size_t payload = c->video ? VIDEO_PAYLOAD : AUDIO_PAYLOAD;
	uint32_t n = c->n_sent++;
	*marker =
		c->video ? (n % VIDEO_PER_FRAME) == VIDEO_PER_FRAME - 1 : false;
	buf[0] = 0x80;
	buf[1] = (uint8_t)((*marker ? 0x80 : 0) | c->pt);
	cv_rtp_set_seq(buf, c->next_seq++);
	cv_rtp_set_ts(buf, c->ts);
	cv_rtp_set_ssrc(buf, c->ssrc);
	if (!c->video)
		c->ts += 960;
	else if (*marker)
		c->ts += 3000;
	for (size_t j = 0; j < payload; j++)
		buf[RTP_HDR + j] = pattern(n, j);
	return RTP_HDR + payload;
}

/* n pool packets holding the publisher's next SRTP packets of c. */
static int prefill(struct bench *b, struct bcase *c, struct cv_pkt **pkts,
		   size_t n)
{
	struct endpoint *pub = &b->ep[0];
	uint64_t now_us = cv_loop_now_us(cv_worker_loop(b->w));
	for (size_t i = 0; i < n; i++) {
		bool marker;
		struct cv_pkt *p = cv_pkt_alloc(cv_worker_pool(b->w));
		if (!p) {
			for (size_t j = 0; j < i; j++)
				cv_pkt_free(pkts[j]);
			return -ENOBUFS;
		}
		p->len = next_plain(c, p->data, &marker);
		int err;
#ifdef CV_BENCH_PERC
		if (b->o.perc)
			err = cv_perc_e2e_protect(c->snd, pub->srtp_out,
						  p->data, &p->len,
						  cv_pkt_cap(p));
		else
#endif
			err = cv_srtp_protect(pub->srtp_out, p->data, &p->len,
					      cv_pkt_cap(p));
		if (err) {
			cv_pkt_free(p);
			for (size_t j = 0; j < i; j++)
				cv_pkt_free(pkts[j]);
			return err;
		}
		p->addr = pub->addr;
		p->addr_len = sizeof(struct sockaddr_in);
		p->arrival_us = now_us;
		pkts[i] = p;
	}
	return 0;
}

/* The timed loop of the forward path; the only code callgrind collects
 * (with timed_floor). noinline: callgrind finds it by name. */
static __attribute__((noinline)) void
timed_forward(struct cv_switch *sw, struct cv_pkt **pkts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cv_switch_inject(sw, pkts[i]);
}

/* The floor: unprotect, then K x (copy, protect). Returns failures. */
static __attribute__((noinline)) unsigned timed_floor(struct floor_state *f,
						      size_t n, unsigned k)
{
	unsigned bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *in = f->bufs + i * FLOOR_STRIDE;
		size_t len = f->lens[i];
		if (cv_srtp_unprotect(f->in, in, &len) != 0) {
			bad++;
			continue;
		}
		for (unsigned j = 0; j < k; j++) {
			size_t olen = len;
			memcpy(f->out_buf, in, len);
			if (cv_srtp_protect(f->outs[j], f->out_buf, &olen,
					    FLOOR_STRIDE) != 0)
				bad++;
		}
	}
	return bad;
}

static void reset_verify(struct bench *b)
{
	for (unsigned i = 0; i < b->n_ep; i++) {
		b->ep[i].rx_rtp = 0;
		b->ep[i].seq_started = false;
	}
	b->egress_rtp = 0;
	b->bad = 0;
}

/* Injects n packets one by one; every subscriber must decrypt each. */
static void verify_case(struct bench *b, struct bcase *c, size_t n)
{
	struct cv_pkt *pkt;
	reset_verify(b);
	b->mode = MODE_VERIFY;
	b->cur = c;
	for (size_t i = 0; i < n && !b->err; i++) {
		uint8_t plain[RTP_HDR + VIDEO_PAYLOAD];
		struct bcase shadow = *c;
		bool marker;
		size_t len = next_plain(&shadow, plain, &marker);
		int err = prefill(b, c, &pkt, 1);
		if (err) {
			fail(b, "verify: prefill", err);
			break;
		}
		b->expect_payload = plain + RTP_HDR;
		b->expect_payload_len = len - RTP_HDR;
		b->expect_marker = marker;
		uint64_t before = b->egress_rtp;
		cv_switch_inject(b->sw, pkt);
		if (b->egress_rtp - before != c->k) {
			fprintf(stderr,
				"bench_forward: packet %zu: %" PRIu64
				" egress packets, expected %u\n",
				i, b->egress_rtp - before, c->k);
			fail(b, "verify: fan-out", -EPROTO);
		}
	}
	for (unsigned s = 1; s < b->n_ep && !b->err; s++) {
		uint64_t want = s <= c->k ? n : 0;
		if (b->ep[s].rx_rtp != want) {
			fprintf(stderr,
				"bench_forward: subscriber %u got %" PRIu64
				", expected %" PRIu64 "\n",
				s, b->ep[s].rx_rtp, want);
			fail(b, "verify: per-subscriber count", -EPROTO);
		}
	}
	if (b->bad)
		fail(b, "verify: a packet did not decrypt or check", -EPROTO);
	b->cur = NULL;
}

static int floor_setup(struct bench *b, enum cv_srtp_profile p, size_t cap)
{
	struct floor_state *f = &b->fl;
	struct cv_secret k;
	size_t ks =
		cv_srtp_profile_key_bytes(p) + cv_srtp_profile_salt_bytes(p);
	int err;
	cv_secret_init(&k);
	err = cv_secret_random(&k, ks);
	if (!err)
		err = cv_srtp_create(&f->pub_out, p, &k, CV_SRTP_OUTBOUND);
	if (!err)
		err = cv_srtp_create(&f->in, p, &k, CV_SRTP_INBOUND);
	for (unsigned i = 0; i < b->n_ep - 1 && !err; i++) {
		err = cv_secret_random(&k, ks);
		if (!err)
			err = cv_srtp_create(&f->outs[i], p, &k,
					     CV_SRTP_OUTBOUND);
	}
	cv_secret_wipe(&k);
	if (err)
		return err;
	f->cap = cap;
	f->bufs = aligned_alloc(64, cap * FLOOR_STRIDE);
	f->lens = calloc(cap, sizeof(*f->lens));
	f->out_buf = aligned_alloc(64, FLOOR_STRIDE);
	f->seq = 1;
	return f->bufs && f->lens && f->out_buf ? 0 : -ENOMEM;
}

static void floor_free(struct floor_state *f)
{
	free(f->bufs);
	free(f->lens);
	free(f->out_buf);
	f->bufs = f->out_buf = NULL;
	f->lens = NULL;
}

/* Protects n copies of case c's packets into the floor's buffers. */
static int floor_prefill(struct floor_state *f, struct bcase *c, size_t n)
{
	struct bcase shadow = *c; /* same bytes, the floor's own seq */
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf = f->bufs + i * FLOOR_STRIDE;
		bool marker;
		size_t len = next_plain(&shadow, buf, &marker);
		cv_rtp_set_seq(buf, f->seq++);
		int err = cv_srtp_protect(f->pub_out, buf, &len, FLOOR_STRIDE);
		if (err)
			return err;
		f->lens[i] = len;
	}
	return 0;
}

/* One timed forwarding run of case c; returns ns per forwarded packet. */
static double forward_run(struct bench *b, struct bcase *c,
			  struct cv_pkt **pkts, unsigned r)
{
	struct cv_switch_stats st0, st1;
	size_t n = c->iters;
	int err = prefill(b, c, pkts, n);
	if (err) {
		fail(b, "prefill", err);
		return 0;
	}
	cv_switch_get_stats(b->sw, &st0);
	b->egress_rtp = 0;
	b->mode = MODE_TIMED;
	double t0 = now_ns();
	timed_forward(b->sw, pkts, n);
	double t = now_ns() - t0;
	b->mode = MODE_SETUP;
	cv_switch_get_stats(b->sw, &st1);
	uint64_t drops = 0;
	for (int d = 0; d < CV_DROP_COUNT; d++)
		drops += st1.drops[d] - st0.drops[d];
	if (b->egress_rtp != (uint64_t)n * c->k || drops) {
		fprintf(stderr,
			"bench_forward: run %u: %" PRIu64
			" egress RTP, expected %zu; %" PRIu64 " drops\n",
			r, b->egress_rtp, n * c->k, drops);
		fail(b, "timed pass: egress count", -EPROTO);
	}
	return t / (double)(n * c->k);
}

/* One timed floor run of case c; returns ns per forwarded packet. */
static double floor_run(struct bench *b, struct bcase *c)
{
	size_t n = c->iters;
	int err = floor_prefill(&b->fl, c, n);
	if (err) {
		fail(b, "floor prefill", err);
		return 0;
	}
	double t0 = now_ns();
	unsigned bad = timed_floor(&b->fl, n, c->k);
	double t = (now_ns() - t0) / (double)(n * c->k);
	if (bad)
		fail(b, "floor: srtp failed", -EPROTO);
	return t;
}

/* Verifies, then alternates forwarding and floor runs so that both see
 * the same machine noise; keeps the best of each. */
static void measure_case(struct bench *b, struct bcase *c, struct cv_pkt **pkts)
{
	size_t n = c->iters;
	verify_case(b, c, b->o.check ? n : (n < 64 ? n : 64));
	c->fwd_ns = c->floor_ns = 1e30;
	for (unsigned r = 0; r < b->o.runs && !b->err; r++) {
		double t = forward_run(b, c, pkts, r);
		if (!b->err && t < c->fwd_ns)
			c->fwd_ns = t;
		t = floor_run(b, c);
		if (!b->err && t < c->floor_ns)
			c->floor_ns = t;
	}
}

static void job_measure(struct bench *b)
{
	size_t max_iters = 0;
	for (size_t i = 0; i < b->n_cases; i++)
		if (b->cases[i].iters > max_iters)
			max_iters = b->cases[i].iters;
	struct cv_pkt **pkts = calloc(max_iters, sizeof(*pkts));
	if (!pkts) {
		fail(b, "calloc", -ENOMEM);
		return;
	}
	int err = floor_setup(b, cv_srtp_get_profile(b->ep[0].srtp_out),
			      max_iters);
	if (err)
		fail(b, "floor set-up", err);
#ifdef CV_BENCH_PERC
	for (size_t i = 0; i < b->n_cases && !b->err && b->o.perc; i++) {
		err = perc_sender(b, &b->cases[i]);
		if (err)
			fail(b, "perc sender", err);
	}
#endif
	for (size_t i = 0; i < b->n_cases && !b->err; i++)
		measure_case(b, &b->cases[i], pkts);
	floor_free(&b->fl);
	free(pkts);
}

/* ---- main thread ---- */

static int parse_ks(struct opts *o, const char *s)
{
	o->n_ks = 0;
	while (*s) {
		char *end;
		unsigned long k = strtoul(s, &end, 10);
		if (end == s || k == 0 || k > MAX_K || o->n_ks == MAX_KS)
			return -EINVAL;
		o->ks[o->n_ks++] = (unsigned)k;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -EINVAL;
	}
	return o->n_ks ? 0 : -EINVAL;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	o->audio = o->video = true;
	o->runs = 9;
	parse_ks(o, "1,10,50");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--check") == 0) {
			o->check = true;
			continue;
		}
		if (strcmp(a, "--perc") == 0) {
#ifdef CV_BENCH_PERC
			o->perc = true;
			continue;
#else
			fprintf(stderr, "bench_forward: built without perc "
					"(use tests/unit/switch's "
					"bench_forward_perc)\n");
			return -EINVAL;
#endif
		}
		if (!v)
			return -EINVAL;
		i++;
		if (strcmp(a, "--kind") == 0) {
			o->audio = !strcmp(v, "audio") || !strcmp(v, "both");
			o->video = !strcmp(v, "video") || !strcmp(v, "both");
			if (!o->audio && !o->video)
				return -EINVAL;
		} else if (strcmp(a, "--k") == 0) {
			if (parse_ks(o, v))
				return -EINVAL;
		} else if (strcmp(a, "--iters") == 0) {
			o->iters = strtoul(v, NULL, 10);
			if (o->iters == 0 || o->iters > 100000)
				return -EINVAL;
		} else if (strcmp(a, "--runs") == 0) {
			o->runs = (unsigned)strtoul(v, NULL, 10);
			if (o->runs == 0 || o->runs > 1000)
				return -EINVAL;
		} else if (strcmp(a, "--profile") == 0) {
			if (!strcmp(v, "gcm"))
				o->profile_id = CV_DTLS_SRTP_AEAD_AES_128_GCM;
			else if (!strcmp(v, "gcm256"))
				o->profile_id = CV_DTLS_SRTP_AEAD_AES_256_GCM;
			else if (!strcmp(v, "cm"))
				o->profile_id = CV_DTLS_SRTP_AES128_CM_SHA1_80;
			else
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	if (o->check) {
		parse_ks(o, "1,3");
		o->runs = 1;
		if (!o->iters)
			o->iters = 20;
	}
	return 0;
}

static void make_cases(struct bench *b)
{
	unsigned max_k = 0;
	for (int v = 0; v < 2; v++) {
		if ((v == 0 && !b->o.audio) || (v == 1 && !b->o.video))
			continue;
		for (size_t i = 0; i < b->o.n_ks; i++) {
			struct bcase *c = &b->cases[b->n_cases];
			c->video = v == 1;
			c->k = b->o.ks[i];
			c->iters = b->o.iters;
			if (!c->iters) {
				c->iters = 20000 / c->k;
				c->iters = c->iters < 400     ? 400
					   : c->iters > 10000 ? 10000
							      : c->iters;
			}
			c->track_id = ++b->n_cases;
			c->ssrc = 0x10000000u + (uint32_t)c->track_id;
			c->pt = c->video ? 96 : 111;
			c->next_seq = (uint16_t)(1000 * c->track_id);
			c->ts = 12345;
			if (c->k > max_k)
				max_k = c->k;
		}
	}
	b->n_ep = 1 + max_k;
}

/* Transports, tracks and subscriptions, posted as the node would. */
static int post_setup(struct bench *b)
{
	int err = 0;
	for (unsigned i = 0; i < b->n_ep && !err; i++) {
		struct endpoint *e = &b->ep[i];
		struct cv_transport_spec spec = {
			.id = 100 + i,
			.local = e->sw,
			.remote = e->mine,
			.dtls_role = CV_DTLS_ROLE_SERVER,
			.remote_fp = b->ep_fp,
			.perc = b->o.perc,
		};
#ifdef CV_BENCH_PERC
		spec.assoc = e->assoc;
#endif
		err = cv_switch_cmd_add_transport(b->w, &spec);
		memset(&spec, 0, sizeof(spec));
	}
	for (size_t i = 0; i < b->n_cases && !err; i++) {
		const struct bcase *c = &b->cases[i];
		struct cv_track_spec t = {
			.track_id = c->track_id,
			.transport_id = 100,
			.video = c->video,
			.ssrc = c->ssrc,
			.pt = c->pt,
			.clock_rate = c->video ? 90000 : 48000,
		};
		snprintf(t.mid, sizeof(t.mid), "%zu", i);
		err = cv_switch_cmd_add_track(b->w, &t);
		for (unsigned s = 1; s <= c->k && !err; s++) {
			struct cv_sub_spec sub = {
				.track_id = c->track_id,
				.transport_id = 100 + s,
				.ssrc = sub_ssrc(c, s),
				.pt = c->pt,
			};
			err = cv_switch_cmd_subscribe(b->w, &sub);
		}
	}
	return err;
}

static int make_dtls(struct bench *b, struct cv_dtls_ctx **sw_ctx)
{
	struct cv_dtls_cert *sw_cert = NULL, *ep_cert = NULL;
	const char *fp;
	int err = cv_dtls_cert_generate(&sw_cert);
	if (!err)
		err = cv_dtls_cert_generate(&ep_cert);
	if (!err)
		err = cv_dtls_ctx_create(sw_ctx, sw_cert);
	if (!err)
		err = cv_dtls_ctx_create(&b->ep_ctx, ep_cert);
	if (!err && b->o.profile_id) {
		err = cv_dtls_ctx_set_srtp_profiles(*sw_ctx, &b->o.profile_id,
						    1);
		if (!err)
			err = cv_dtls_ctx_set_srtp_profiles(
				b->ep_ctx, &b->o.profile_id, 1);
	}
	if (!err) {
		fp = cv_dtls_cert_fingerprint(sw_cert);
		err = cv_dtls_fingerprint_parse(&b->sw_fp, fp, strlen(fp));
	}
	if (!err) {
		fp = cv_dtls_cert_fingerprint(ep_cert);
		err = cv_dtls_fingerprint_parse(&b->ep_fp, fp, strlen(fp));
	}
	cv_dtls_cert_unref(sw_cert);
	cv_dtls_cert_unref(ep_cert);
	return err;
}

static void print_table(const struct bench *b)
{
	printf("%sprofile %s, libsrtp2 backend %s, best of %u runs, wall "
	       "clock ns per forwarded packet\n",
	       b->o.perc ? "perc room (double, outer) " : "",
	       cv_srtp_profile_name(cv_srtp_get_profile(b->ep[0].srtp_out)),
	       cv_srtp_backend(), b->o.runs);
	printf("%-6s %3s %6s %8s %10s %10s %6s\n", "kind", "K", "bytes",
	       "inj/run", "fwd_ns", "floor_ns", "ratio");
	for (size_t i = 0; i < b->n_cases; i++) {
		const struct bcase *c = &b->cases[i];
		printf("%-6s %3u %6d %8zu %10.1f %10.1f %6.2f\n",
		       c->video ? "video" : "audio", c->k,
		       RTP_HDR + (c->video ? VIDEO_PAYLOAD : AUDIO_PAYLOAD),
		       c->iters, c->fwd_ns, c->floor_ns,
		       c->fwd_ns / c->floor_ns);
	}
}

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	int err;

	if (parse_args(&b->o, argc, argv)) {
		fprintf(stderr, "usage: bench_forward [--check] "
				"[--kind audio|video|both] [--k 1,10,50] "
				"[--iters N] [--runs N] "
				"[--profile gcm|gcm256|cm] [--perc]\n");
		return 2;
	}
	pthread_mutex_init(&b->wait.m, NULL);
	pthread_cond_init(&b->wait.c, NULL);
	make_cases(b);
	b->ep = calloc(b->n_ep, sizeof(*b->ep));
	err = b->ep ? cv_srtp_global_init() : -ENOMEM;
	for (unsigned i = 0; i < b->n_ep && !err; i++) {
		struct endpoint *e = &b->ep[i];
		e->b = b;
		e->index = i;
		ep_address(&e->addr, i);
		err = cv_ice_credentials_generate(&e->mine);
		if (!err)
			err = cv_ice_credentials_generate(&e->sw);
	}
	if (!err)
		err = make_dtls(b, &b->sw_ctx);
#ifdef CV_BENCH_PERC
	if (!err && b->o.perc)
		err = perc_prepare(b);
#endif
	if (err) {
		fprintf(stderr, "bench_forward: set-up: %s\n",
			cv_strerror(err));
		return 1;
	}

	size_t max_iters = 0;
	for (size_t i = 0; i < b->n_cases; i++)
		if (b->cases[i].iters > max_iters)
			max_iters = b->cases[i].iters;
	struct cv_workers_config wc = {
		.count = 1,
		.pool_packets = max_iters + 256,
		.queue_items = 4096,
		.on_start = on_worker_start,
		.on_stop = on_worker_stop,
		.hook_arg = b,
	};
	err = cv_workers_create(&b->ws, &wc);
	if (!err) {
		b->w = cv_workers_get(b->ws, 0);
		err = cv_workers_start(b->ws);
	}
	if (!err) {
		waiter_wait(&b->wait);
		err = b->err;
	}
#ifdef CV_BENCH_PERC
	if (!err && b->o.perc)
		err = perc_until(b, job_kd_up, "the switch's KD link is down");
#endif
	if (!err)
		err = post_setup(b);
	if (!err)
		err = on_worker(b, job_connect);
#ifdef CV_BENCH_PERC
	if (!err && b->o.perc)
		err = perc_until(b, job_pump_perc,
				 "perc dtls handshakes did not finish");
#endif
	if (!err)
		err = on_worker(b, job_measure);
	if (!err && b->o.check)
		printf("bench_forward: check passed: %zu %scases, every egress "
		       "packet decrypted by its subscriber\n",
		       b->n_cases, b->o.perc ? "perc " : "");
	else if (!err)
		print_table(b);
	else
		fprintf(stderr, "bench_forward: failed: %s\n",
			cv_strerror(err));
	if (b->ws) {
		cv_workers_stop(b->ws);
		cv_workers_destroy(b->ws);
	}
	cv_dtls_ctx_unref(b->sw_ctx);
	cv_dtls_ctx_unref(b->ep_ctx);
#ifdef CV_BENCH_PERC
	if (b->o.perc)
		perc_cleanup(b);
#endif
	if (b->ep) /* ICE passwords are secrets */
		explicit_bzero(b->ep, b->n_ep * sizeof(*b->ep));
	free(b->ep);
	pthread_mutex_destroy(&b->wait.m);
	pthread_cond_destroy(&b->wait.c);
	return err ? 1 : 0;
}
