/*
 * The switch in a perc room, for real and in-process: a Key Distributor
 * (kms/kd_link.c + kms/kd_dtls.c) and the switch with its own tunnel link
 * on one worker's loop, over a real TLS 1.3 connection on loopback; three
 * endpoints (publisher P, subscribers A and B) with real ICE checks and
 * DTLS-SRTP handshakes that the switch tunnels to the KD; media made and
 * checked with the client library's double SRTP (cv_perc_sender,
 * cv_perc_receiver). Datagrams reach the switch through cv_switch_inject
 * and leave through its egress hook, so the test decides what each
 * endpoint receives (loss).
 *
 * Proves: bit-exact delivery to two receivers with SSRC, timestamp and SEQ
 * kept; unannounced SSRCs (and PTs) dropped and counted; repair mode (a
 * NACKed packet comes back as the same bytes, accepted once, a replay of
 * it refused); SEQ rewrite across a pause with the original in the OHB,
 * and repair after it. With CONCLAVE_PERC_FAULT set (faulty-node build):
 * every forwarded packet is tampered, and both receivers reject and count
 * every one.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/ice.h"
#include "conclave/loop.h"
#include "conclave/perc.h"
#include "conclave/perc_e2e.h"
#include "conclave/pool.h"
#include "conclave/rtcp.h"
#include "conclave/rtp.h"
#include "conclave/srtp.h"
#include "conclave/stun.h"
#include "conclave/switch.h"
#include "conclave/tunnel.h"
#include "conclave/udp.h"
#include "conclave/worker.h"
#include "cv_test.h"
#include "cv_test_ident.h"
#include "kms/kd_dtls.h"
#include "kms/kd_link.h"

#define N_EP	  3 /* P, A, B */
#define DQ_SLOTS  32
#define RQ_SLOTS  64
#define BASE_PORT 41000
#define SSRC_AUD  0xa0d10001u
#define SSRC_VID  0x71de0002u
#define SSRC_BAD  0x0bad0003u
#define PT_AUD	  111
#define PT_VID	  96
#define TRACK_AUD 1
#define TRACK_VID 2

static char dir[] = "/tmp/cv-switch-perc-XXXXXX";

struct ident {
	char cert[128], key[128];
	char fp[CV_TUNNEL_FP_STRLEN];
};

struct dq {
	size_t head, count;
	size_t len[DQ_SLOTS];
	uint8_t data[DQ_SLOTS][CV_DTLS_MAX_DATAGRAM];
};

/* RTP the switch sent to an endpoint, kept until the test delivers it. */
struct rq {
	size_t n;
	size_t len[RQ_SLOTS];
	uint8_t data[RQ_SLOTS][CV_PKT_STORAGE];
};

struct ep {
	unsigned idx;
	struct sockaddr_storage addr;
	struct cv_ice_credentials mine, sw;
	struct cv_tunnel_assoc_id assoc;
	struct cv_dtls_cert *cert;
	struct cv_dtls_ctx *ctx;
	struct cv_dtls_fingerprint fp;
	struct cv_dtls *dtls;
	struct cv_srtp *hop_in, *hop_out; /* outer halves */
	bool connected, failed;
	unsigned stun_ok;
	struct dq inbox;
	struct rq rtp;
	uint64_t rtcp_in;
	struct cv_perc_receiver *rcv;
};

struct world {
	struct ident kd_id, node_id;
	struct cv_dtls_cert *kd_cert;
	struct cv_workers *ws;
	struct cv_worker *w;
	struct cv_kd_link *kdl;
	struct cv_kd_dtls *kdd;
	struct cv_switch *sw;
	int kd_done, kd_err;
	unsigned sw_connected;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	struct ep ep[N_EP];
	/* publisher side */
	struct cv_perc_ekt_key ekt;
	struct cv_perc_sender *snd_aud, *snd_vid, *snd_bad;
	struct cv_secret key_aud, key_vid; /* inner keys (faulty-node run) */
	uint16_t seq_aud, seq_vid, seq_bad;
	uint32_t ts;
	const char *fault;
	/* NACKs the switch sent the publisher (video SEQs), in order */
	uint16_t nacked[64];
	size_t n_nacked;
};

static struct world W;

/* ---- identities (files for the TLS link) ---- */

static void make_ident(struct ident *id, const char *name)
{
	snprintf(id->cert, sizeof(id->cert), "%s/%s-cert.pem", dir, name);
	snprintf(id->key, sizeof(id->key), "%s/%s-key.pem", dir, name);
	CV_CHECK_INT(cv_test_write_ident(id->cert, id->key, name,
					 1 + (long)name[0], id->fp),
		     0);
}

/* ---- running things on the worker ---- */

static void signal_done(void)
{
	pthread_mutex_lock(&W.m);
	W.done = true;
	pthread_cond_signal(&W.c);
	pthread_mutex_unlock(&W.m);
}

static void wait_done(void)
{
	pthread_mutex_lock(&W.m);
	while (!W.done)
		pthread_cond_wait(&W.c, &W.m);
	W.done = false;
	pthread_mutex_unlock(&W.m);
}

struct job {
	void (*fn)(void *arg);
	void *arg;
};

static void run_job(void *arg)
{
	struct job *j = arg;
	j->fn(j->arg);
	signal_done();
}

/* Runs fn on the worker after everything posted before, and waits. */
static void on_worker(void (*fn)(void *), void *arg)
{
	struct job j = {.fn = fn, .arg = arg};
	CV_CHECK_INT(cv_worker_post(W.w, run_job, &j), 0);
	wait_done();
}

/* ---- KD hooks ---- */

static void kd_up(void *arg, struct cv_kd_node *node, const char *id)
{
	(void)arg;
	(void)node;
	(void)id;
}

static void kd_msg(void *arg, struct cv_kd_node *node,
		   const struct cv_tunnel_msg *m)
{
	(void)arg;
	(void)cv_kd_dtls_handle_message(W.kdd, node, m);
}

static void kd_down(void *arg, struct cv_kd_node *node, int err)
{
	(void)arg;
	(void)err;
	cv_kd_dtls_node_down(W.kdd, node);
}

/* The endpoint registered for an association id (the KMS's job). */
static int kd_fps(void *arg, struct cv_kd_node *node,
		  const struct cv_tunnel_assoc_id *assoc,
		  struct cv_dtls_fingerprint *fps, size_t max)
{
	(void)arg;
	(void)node;
	for (unsigned i = 0; i < N_EP; i++) {
		if (max && memcmp(W.ep[i].assoc.b, assoc->b, 16) == 0) {
			fps[0] = W.ep[i].fp;
			return 1;
		}
	}
	return 0;
}

static void kd_done_fn(void *arg, struct cv_kd_node *node,
		       const struct cv_tunnel_assoc_id *assoc, uint16_t profile,
		       int err)
{
	(void)arg;
	(void)node;
	(void)assoc;
	(void)profile;
	W.kd_done++;
	if (err)
		W.kd_err = err;
}

/* ---- the switch's egress and events (worker thread) ---- */

static struct ep *ep_by_addr(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	unsigned i;

	if (ss->ss_family != AF_INET)
		return NULL;
	i = ntohs(sin->sin_port) - BASE_PORT;
	return i < N_EP ? &W.ep[i] : NULL;
}

static void dq_push(struct dq *q, const uint8_t *buf, size_t len)
{
	CV_CHECK(q->count < DQ_SLOTS && len <= CV_DTLS_MAX_DATAGRAM);
	if (q->count == DQ_SLOTS || len > CV_DTLS_MAX_DATAGRAM)
		return;
	size_t slot = (q->head + q->count) % DQ_SLOTS;
	memcpy(q->data[slot], buf, len);
	q->len[slot] = len;
	q->count++;
}

/* RTCP to the publisher: plain SRTCP with its hop key; keep the NACKs. */
static void publisher_rtcp(struct cv_pkt *pkt)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt r;
	uint16_t lost[64];
	size_t len = pkt->len;

	CV_CHECK_INT(cv_srtp_unprotect_rtcp(W.ep[0].hop_in, pkt->data, &len),
		     0);
	cv_rtcp_iter_init(&it, pkt->data, len);
	while (cv_rtcp_iter_next(&it, &r) > 0) {
		if (r.kind != CV_RTCP_KIND_NACK || r.media_ssrc != SSRC_VID)
			continue;
		size_t n = cv_rtcp_nack_expand(&r, lost, 64);
		for (size_t i = 0; i < n && W.n_nacked < 64; i++)
			W.nacked[W.n_nacked++] = lost[i];
	}
}

static void on_egress(void *arg, struct cv_pkt *pkt)
{
	struct ep *e = ep_by_addr(&pkt->addr);
	enum cv_demux kind = cv_demux_classify(pkt->data, pkt->len);

	(void)arg;
	CV_CHECK(e != NULL);
	if (!e) {
		cv_pkt_free(pkt);
		return;
	}
	if (kind == CV_DEMUX_DTLS) {
		dq_push(&e->inbox, pkt->data, pkt->len);
	} else if (kind == CV_DEMUX_STUN) {
		e->stun_ok++;
	} else if (kind == CV_DEMUX_RTP &&
		   cv_rtp_is_rtcp(pkt->data, pkt->len)) {
		e->rtcp_in++;
		if (e->idx == 0 && e->hop_in)
			publisher_rtcp(pkt);
	} else if (kind == CV_DEMUX_RTP) {
		CV_CHECK(e->rtp.n < RQ_SLOTS);
		if (e->rtp.n < RQ_SLOTS) {
			memcpy(e->rtp.data[e->rtp.n], pkt->data, pkt->len);
			e->rtp.len[e->rtp.n++] = pkt->len;
		}
	}
	cv_pkt_free(pkt);
}

static void on_state(void *arg, uint64_t id, enum cv_transport_state st)
{
	(void)arg;
	(void)id;
	if (st == CV_TRANSPORT_CONNECTED)
		W.sw_connected++;
}

static void on_worker_start(struct cv_worker *w, void *arg)
{
	const char *allowed[] = {W.node_id.fp};
	struct cv_kd_link_opts ko = {.address = "127.0.0.1",
				     .cert_file = W.kd_id.cert,
				     .key_file = W.kd_id.key,
				     .allowed_nodes = allowed,
				     .n_allowed = 1};
	struct cv_kd_link_callbacks kcb = {.on_node_up = kd_up,
					   .on_message = kd_msg,
					   .on_node_down = kd_down};
	struct cv_kd_dtls_opts dopts = {.fingerprints = kd_fps,
					.on_done = kd_done_fn};
	struct cv_loop *loop = cv_worker_loop(w);
	struct cv_dtls_cert *cert = NULL;
	struct cv_dtls_ctx *ctx = NULL;

	(void)arg;
	CV_CHECK_INT(cv_kd_link_create(&W.kdl, loop, &ko, &kcb), 0);
	CV_CHECK_INT(cv_kd_dtls_create(&W.kdd, loop, W.kdl, W.kd_cert, &dopts),
		     0);
	struct cv_tunnel_link_opts lo = {.host = "127.0.0.1",
					 .port = cv_kd_link_port(W.kdl),
					 .cert_file = W.node_id.cert,
					 .key_file = W.node_id.key,
					 .kd_fingerprint = W.kd_id.fp,
					 .connect_timeout_ms = 3000};
	/* The node's own DTLS context (forward rooms); unused by perc. */
	CV_CHECK_INT(cv_dtls_cert_generate(&cert), 0);
	CV_CHECK_INT(cv_dtls_ctx_create(&ctx, cert), 0);
	struct cv_switch_config cfg = {
		.dtls = ctx,
		.consent_timeout_ms = 600000,
		.nack_cache_packets = 256,
		.pli_min_interval_ms = 500,
		.events = {.transport_state = on_state},
		.egress = on_egress,
		.kd = &lo,
		.perc_fault = W.fault,
	};
	CV_CHECK_INT(cv_switch_create(&W.sw, w, &cfg), 0);
	cv_worker_set_data(w, W.sw);
	cv_dtls_ctx_unref(ctx);
	cv_dtls_cert_unref(cert);
	signal_done();
}

static void on_worker_stop(struct cv_worker *w, void *arg)
{
	(void)arg;
	cv_worker_set_data(w, NULL);
	cv_switch_destroy(W.sw);
	W.sw = NULL;
	for (unsigned i = 0; i < N_EP; i++) {
		struct ep *e = &W.ep[i];
		cv_dtls_destroy(e->dtls);
		cv_srtp_destroy(e->hop_in);
		cv_srtp_destroy(e->hop_out);
		cv_perc_receiver_destroy(e->rcv);
		e->dtls = NULL;
	}
	cv_kd_dtls_destroy(W.kdd);
	cv_kd_link_destroy(W.kdl);
}

/* ---- endpoints (worker thread) ---- */

static void inject(struct ep *e, const uint8_t *buf, size_t len)
{
	struct cv_pkt *pkt = cv_pkt_alloc(cv_worker_pool(W.w));

	CV_CHECK(pkt != NULL && len <= cv_pkt_tailroom(pkt));
	if (!pkt)
		return;
	memcpy(pkt->data, buf, len);
	pkt->len = len;
	pkt->addr = e->addr;
	pkt->addr_len = sizeof(struct sockaddr_in);
	pkt->arrival_us = cv_loop_now_us(cv_worker_loop(W.w));
	cv_switch_inject(W.sw, pkt);
}

static void ep_send(void *arg, const uint8_t *rec, size_t len)
{
	inject(arg, rec, len);
}

/* The endpoint's side of the double keys: the KD's rule over its own
 * exporter output; the hop sessions take the outer halves. */
static void make_hop(struct cv_srtp **out, const struct cv_kd_double_keys *k,
		     bool client_write, enum cv_srtp_direction d)
{
	const struct cv_secret *key =
		client_write ? &k->client_write_key : &k->server_write_key;
	const struct cv_secret *salt =
		client_write ? &k->client_write_salt : &k->server_write_salt;
	uint8_t buf[64];
	struct cv_secret s;
	size_t h = k->half_key_len;

	memcpy(buf, cv_secret_data(key) + h, h);
	memcpy(buf + h, cv_secret_data(salt) + 12, 12);
	cv_secret_init(&s);
	CV_CHECK_INT(cv_secret_set(&s, buf, h + 12), 0);
	CV_CHECK_INT(cv_srtp_create(out,
				    h == 16 ? CV_SRTP_AEAD_AES_128_GCM
					    : CV_SRTP_AEAD_AES_256_GCM,
				    &s, d),
		     0);
	cv_secret_wipe(&s);
	explicit_bzero(buf, sizeof(buf));
}

static void ep_connected(void *arg, uint16_t profile, const uint8_t *mat,
			 size_t len, bool is_client)
{
	struct ep *e = arg;
	struct cv_kd_double_keys k;

	CV_CHECK(is_client);
	CV_CHECK_INT(cv_kd_double_keys_derive(&k, profile, mat, len), 0);
	make_hop(&e->hop_out, &k, true, CV_SRTP_OUTBOUND);
	make_hop(&e->hop_in, &k, false, CV_SRTP_INBOUND);
	cv_kd_double_keys_wipe(&k);
	e->connected = true;
}

static void ep_failed(void *arg, int err)
{
	struct ep *e = arg;
	e->failed = true;
	fprintf(stderr, "endpoint %u: dtls failed: %s\n", e->idx,
		cv_strerror(err));
}

static void send_check(struct ep *e)
{
	char user[2 * CV_ICE_UFRAG_MAX + 2];
	uint8_t txid[CV_STUN_TXID_BYTES];
	uint8_t buf[512];
	size_t len;

	for (size_t i = 0; i < sizeof(txid); i++)
		txid[i] = (uint8_t)(e->idx * 31u + i);
	snprintf(user, sizeof(user), "%s:%s", e->sw.ufrag, e->mine.ufrag);
	struct cv_stun_binding_request req = {
		.txid = txid,
		.username = user,
		.key = (const uint8_t *)e->sw.pwd,
		.key_len = strlen(e->sw.pwd),
		.priority = 0x7e7f1effu - e->idx,
		.use_candidate = true,
		.controlling = true,
		.ice = true,
		.tiebreaker = 0x0123456789abcdefull + e->idx,
	};
	CV_CHECK_INT(
		cv_stun_build_binding_request(buf, sizeof(buf), &req, &len), 0);
	inject(e, buf, len);
}

static void job_start(void *arg)
{
	uint64_t now = cv_loop_now_ms(cv_worker_loop(W.w));

	(void)arg;
	for (unsigned i = 0; i < N_EP; i++) {
		struct ep *e = &W.ep[i];
		struct cv_dtls_callbacks cb = {.send = ep_send,
					       .on_connected = ep_connected,
					       .on_failed = ep_failed,
					       .arg = e};
		struct cv_dtls_fingerprint pin;
		const char *kfp = cv_dtls_cert_fingerprint(W.kd_cert);

		send_check(e);
		CV_CHECK_INT(e->stun_ok, 1);
		CV_CHECK_INT(cv_dtls_fingerprint_parse(&pin, kfp, strlen(kfp)),
			     0);
		CV_CHECK_INT(cv_dtls_local_create(&e->dtls, e->ctx,
						  CV_DTLS_ROLE_CLIENT, &pin, 1,
						  &cb),
			     0);
		CV_CHECK_INT(cv_dtls_start(e->dtls, now), 0);
	}
}

/* Feeds the endpoints what the switch sent them; their DTLS timers. */
static void job_pump(void *arg)
{
	uint64_t now = cv_loop_now_ms(cv_worker_loop(W.w));
	int *all = arg;

	*all = W.sw_connected >= N_EP;
	for (unsigned i = 0; i < N_EP; i++) {
		struct ep *e = &W.ep[i];
		while (e->inbox.count) {
			struct dq *q = &e->inbox;
			uint8_t buf[CV_DTLS_MAX_DATAGRAM];
			size_t len = q->len[q->head];
			memcpy(buf, q->data[q->head], len);
			q->head = (q->head + 1) % DQ_SLOTS;
			q->count--;
			cv_dtls_handle_datagram(e->dtls, buf, len, now);
		}
		if (e->dtls && cv_dtls_next_timeout_ms(e->dtls, now) == 0)
			cv_dtls_handle_timer(e->dtls, now);
		if (!e->connected)
			*all = 0;
	}
}

static void job_kd_up(void *arg)
{
	*(int *)arg = cv_switch_kd_up(W.sw);
}

static void job_kd_down(void *arg)
{
	*(int *)arg = !cv_switch_kd_up(W.sw);
}

/* The KD goes away (the KMS stopped). */
static void job_kd_stop(void *arg)
{
	(void)arg;
	cv_kd_dtls_destroy(W.kdd);
	cv_kd_link_destroy(W.kdl);
	W.kdd = NULL;
	W.kdl = NULL;
}

/* Polls cond (a job) with a deadline; the worker's loop runs between. */
static bool wait_for(void (*job)(void *), uint64_t timeout_ms)
{
	uint64_t end = cv_clock_now_ms() + timeout_ms;
	int ok = 0;

	while (!ok && cv_clock_now_ms() < end)
		on_worker(job, &ok);
	return ok;
}

/* ---- media (worker thread) ---- */

struct sent {
	uint8_t plain[1400];
	size_t len;
	uint16_t seq;
};

/* The publisher's next packet of ssrc, double-protected into buf;
 * *s keeps its plaintext. Returns the length (0: failed). */
static size_t make_wire(uint32_t ssrc, size_t payload, struct sent *s,
			uint8_t *buf, size_t cap)
{
	struct ep *p = &W.ep[0];
	struct cv_perc_sender *snd = ssrc == SSRC_AUD	? W.snd_aud
				     : ssrc == SSRC_VID ? W.snd_vid
							: W.snd_bad;
	uint16_t *seq = ssrc == SSRC_AUD   ? &W.seq_aud
			: ssrc == SSRC_VID ? &W.seq_vid
					   : &W.seq_bad;
	size_t len = CV_RTP_HDR_MIN + payload;

	buf[0] = 0x80;
	buf[1] = (uint8_t)(ssrc == SSRC_AUD ? PT_AUD : PT_VID);
	s->seq = (*seq)++;
	cv_rtp_set_seq(buf, s->seq);
	cv_rtp_set_ts(buf, W.ts += 960);
	cv_rtp_set_ssrc(buf, ssrc);
	for (size_t j = 0; j < payload; j++)
		buf[CV_RTP_HDR_MIN + j] = (uint8_t)(s->seq * 7u + j * 13u);
	memcpy(s->plain, buf, len);
	s->len = len;
	if (cv_perc_e2e_protect(snd, p->hop_out, buf, &len, cap) != 0) {
		CV_CHECK(!"cv_perc_e2e_protect");
		return 0;
	}
	return len;
}

/* The publisher sends one packet of ssrc; *s keeps its plaintext. */
static void publish(uint32_t ssrc, size_t payload, struct sent *s)
{
	_Alignas(8) uint8_t buf[CV_PKT_STORAGE];
	size_t len = make_wire(ssrc, payload, s, buf, sizeof(buf));

	if (len)
		inject(&W.ep[0], buf, len);
}

/* Takes the k-th RTP datagram queued for e. */
static size_t take(struct ep *e, size_t k, uint8_t *out)
{
	size_t len = e->rtp.len[k];
	memcpy(out, e->rtp.data[k], len);
	return len;
}

/* e's receiver opens pkt; it must be s's packet, bit-exact. */
static void expect_exact(struct ep *e, const uint8_t *pkt, size_t len,
			 const struct sent *s, uint16_t hop_seq)
{
	_Alignas(8) uint8_t buf[CV_PKT_STORAGE];
	struct cv_perc_rx_info info;
	size_t n = len;

	memcpy(buf, pkt, len);
	CV_CHECK_INT(cv_perc_e2e_unprotect(e->rcv, e->hop_in, buf, &n, &info),
		     0);
	CV_CHECK_INT(n, s->len);
	CV_CHECK_MEM(buf, s->plain, s->len);
	CV_CHECK_INT(info.seq, s->seq);
	CV_CHECK_INT(info.hop_seq, hop_seq);
}

struct round {
	uint32_t ssrc;
	size_t payload;
	unsigned n;
	bool a_moved; /* A's video SEQ moved on a resume: consecutive only */
};

/* n packets to A and B, delivered at once: bit-exact, SEQ kept (or, for
 * A after its resume, consecutive). */
static void job_stream(void *arg)
{
	const struct round *r = arg;
	uint8_t pkt[CV_PKT_STORAGE];
	uint16_t a_hop = 0;

	for (unsigned i = 0; i < r->n; i++) {
		struct sent s;
		W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
		publish(r->ssrc, r->payload, &s);
		for (unsigned e = 1; e < N_EP; e++) {
			CV_CHECK_INT(W.ep[e].rtp.n, 1);
			if (W.ep[e].rtp.n != 1)
				continue;
			size_t len = take(&W.ep[e], 0, pkt);
			uint16_t hop = (uint16_t)(pkt[2] << 8 | pkt[3]);
			/* The node keeps the SSRC and the timestamp. */
			CV_CHECK_MEM(pkt + 4, s.plain + 4, 8);
			if (e == 1 && r->a_moved) {
				if (i)
					CV_CHECK_INT(hop,
						     (uint16_t)(a_hop + 1));
				a_hop = hop;
				CV_CHECK(hop != s.seq);
			} else {
				CV_CHECK_INT(hop, s.seq);
			}
			expect_exact(&W.ep[e], pkt, len, &s, hop);
		}
	}
	CV_CHECK_INT(W.ep[0].rtp.n, 0);
}

static void job_unannounced(void *arg)
{
	struct cv_switch_stats st0, st1;
	struct sent s;
	struct ep *p = &W.ep[0];
	_Alignas(8) uint8_t buf[CV_PKT_STORAGE];
	size_t len;

	(void)arg;
	W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
	cv_switch_get_stats(W.sw, &st0);
	publish(SSRC_BAD, 100, &s);
	/* An announced SSRC with a PT that was not signaled for it. */
	memcpy(buf, s.plain, s.len);
	len = s.len;
	cv_rtp_set_ssrc(buf, SSRC_AUD);
	cv_rtp_set_seq(buf, W.seq_aud++);
	buf[1] = 100;
	CV_CHECK_INT(cv_perc_e2e_protect(W.snd_aud, p->hop_out, buf, &len,
					 sizeof(buf)),
		     0);
	inject(p, buf, len);
	cv_switch_get_stats(W.sw, &st1);
	CV_CHECK_INT(W.ep[1].rtp.n + W.ep[2].rtp.n, 0);
	CV_CHECK_INT(st1.drops[CV_DROP_PERC_UNANNOUNCED] -
			     st0.drops[CV_DROP_PERC_UNANNOUNCED],
		     2);
	CV_CHECK_INT(st1.rtp_forwarded, st0.rtp_forwarded);
	CV_CHECK_STR(cv_drop_name(CV_DROP_PERC_UNANNOUNCED),
		     "perc_unannounced");
}

/* A (subscriber) NACKs hop SEQ seq of the video track. */
static void nack(struct ep *e, uint16_t seq)
{
	_Alignas(8) uint8_t buf[256];
	size_t len;
	int n = cv_rtcp_write_nack(buf, sizeof(buf), 0x5eed0000u + e->idx,
				   SSRC_VID, &seq, 1);

	CV_CHECK(n > 0);
	len = (size_t)n;
	CV_CHECK_INT(cv_srtp_protect_rtcp(e->hop_out, buf, &len, sizeof(buf)),
		     0);
	inject(e, buf, len);
}

/*
 * Repair mode: A loses video packet X (B gets it), gets X + 1, NACKs X:
 * the switch resends exactly the bytes it sent first; A accepts them
 * once, and refuses the same bytes again (outer replay).
 */
static void repair_round(uint16_t lost_hop_seq_offset)
{
	struct ep *a = &W.ep[1], *b = &W.ep[2];
	uint8_t first[CV_PKT_STORAGE], again[CV_PKT_STORAGE];
	struct cv_switch_stats st0, st1;
	struct sent x, y;
	size_t flen, alen;

	(void)lost_hop_seq_offset;
	a->rtp.n = b->rtp.n = 0;
	publish(SSRC_VID, 1100, &x);
	CV_CHECK_INT(a->rtp.n, 1);
	CV_CHECK_INT(b->rtp.n, 1);
	flen = take(a, 0, first); /* lost on the way to A */
	uint8_t bb[CV_PKT_STORAGE];
	size_t blen = take(b, 0, bb);
	uint16_t x_hop = (uint16_t)(first[2] << 8 | first[3]);
	expect_exact(b, bb, blen, &x, (uint16_t)(bb[2] << 8 | bb[3]));
	a->rtp.n = b->rtp.n = 0;
	publish(SSRC_VID, 1100, &y);
	CV_CHECK_INT(a->rtp.n, 1);
	alen = take(a, 0, again);
	expect_exact(a, again, alen, &y, (uint16_t)(x_hop + 1));
	blen = take(b, 0, bb);
	expect_exact(b, bb, blen, &y, (uint16_t)(bb[2] << 8 | bb[3]));

	a->rtp.n = b->rtp.n = 0;
	cv_switch_get_stats(W.sw, &st0);
	nack(a, x_hop);
	cv_switch_get_stats(W.sw, &st1);
	CV_CHECK_INT(st1.nack_received - st0.nack_received, 1);
	CV_CHECK_INT(st1.perc_repairs - st0.perc_repairs, 1);
	CV_CHECK_INT(st1.rtx_sent - st0.rtx_sent, 1);
	CV_CHECK_INT(a->rtp.n, 1);
	CV_CHECK_INT(b->rtp.n, 0);
	if (a->rtp.n != 1)
		return;
	alen = take(a, 0, again);
	/* The same packet: same SSRC, hop SEQ, OHB and bytes. */
	CV_CHECK_INT(alen, flen);
	CV_CHECK_MEM(again, first, flen);
	expect_exact(a, again, alen, &x, x_hop);
	/* Accepted once: the same bytes again are an outer replay. */
	uint64_t before =
		cv_perc_receiver_drops(a->rcv, CV_PERC_DROP_OUTER_REPLAY);
	memcpy(bb, first, flen);
	blen = flen;
	CV_CHECK_INT(cv_perc_e2e_unprotect(a->rcv, a->hop_in, bb, &blen, NULL),
		     CV_EREPLAY);
	CV_CHECK_INT(cv_perc_receiver_drops(a->rcv, CV_PERC_DROP_OUTER_REPLAY),
		     before + 1);
	/* A second NACK at once: within the repeat guard, nothing sent. */
	a->rtp.n = 0;
	nack(a, x_hop);
	CV_CHECK_INT(a->rtp.n, 0);
}

static void job_repair(void *arg)
{
	(void)arg;
	repair_round(0);
}

struct pause_arg {
	uint16_t a_last_hop; /* in: A's last hop SEQ of video */
};

/* Last video hop SEQ A was sent (from the last repair round). */
static uint16_t a_last_hop;

static void job_before_pause(void *arg)
{
	struct ep *a = &W.ep[1];
	uint8_t pkt[CV_PKT_STORAGE];
	struct sent s;

	(void)arg;
	a->rtp.n = W.ep[2].rtp.n = 0;
	publish(SSRC_VID, 500, &s);
	CV_CHECK_INT(a->rtp.n, 1);
	size_t len = take(a, 0, pkt);
	a_last_hop = (uint16_t)(pkt[2] << 8 | pkt[3]);
	expect_exact(a, pkt, len, &s, a_last_hop);
	len = take(&W.ep[2], 0, pkt);
	expect_exact(&W.ep[2], pkt, len, &s, s.seq);
}

/* A packet of the paused stretch that reaches the switch only after the
 * resume (reordered or late): see job_after_pause. */
static _Alignas(8) uint8_t late_wire[CV_PKT_STORAGE];
static size_t late_len;
static struct sent late_sent;

/* Paused for A: B gets 5 packets, A none (and one more is held back). */
static void job_while_paused(void *arg)
{
	uint8_t pkt[CV_PKT_STORAGE];
	struct sent s;

	(void)arg;
	late_len = make_wire(SSRC_VID, 500, &late_sent, late_wire,
			     sizeof(late_wire));
	CV_CHECK(late_len > 0);
	for (int i = 0; i < 5; i++) {
		W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
		publish(SSRC_VID, 500, &s);
		CV_CHECK_INT(W.ep[1].rtp.n, 0);
		CV_CHECK_INT(W.ep[2].rtp.n, 1);
		size_t len = take(&W.ep[2], 0, pkt);
		expect_exact(&W.ep[2], pkt, len, &s, s.seq);
	}
}

/*
 * Resumed: A's hop SEQ continues from its last one (no gap), the
 * original SEQ comes back from the OHB; B still sees the original SEQs.
 * Then A loses the second resumed packet and repair mode resends it
 * under the rewritten hop SEQ, same bytes.
 */
static void job_after_pause(void *arg)
{
	struct ep *a = &W.ep[1], *b = &W.ep[2];
	uint8_t pkt[CV_PKT_STORAGE], lost[CV_PKT_STORAGE];
	struct sent s[3];
	size_t lost_len = 0;

	(void)arg;
	for (int i = 0; i < 3; i++) {
		a->rtp.n = b->rtp.n = 0;
		publish(SSRC_VID, 700, &s[i]);
		CV_CHECK_INT(a->rtp.n, 1);
		CV_CHECK_INT(b->rtp.n, 1);
		size_t len = take(a, 0, pkt);
		uint16_t hop = (uint16_t)(a_last_hop + 1 + i);
		CV_CHECK_INT((uint16_t)(pkt[2] << 8 | pkt[3]), hop);
		CV_CHECK(hop != s[i].seq); /* it was rewritten */
		if (i == 1) {
			memcpy(lost, pkt, len);
			lost_len = len;
		} else {
			expect_exact(a, pkt, len, &s[i], hop);
		}
		len = take(b, 0, pkt);
		expect_exact(b, pkt, len, &s[i], s[i].seq);
	}
	a->rtp.n = b->rtp.n = 0;
	nack(a, (uint16_t)(a_last_hop + 2));
	CV_CHECK_INT(a->rtp.n, 1);
	CV_CHECK_INT(b->rtp.n, 0);
	if (a->rtp.n != 1)
		return;
	size_t len = take(a, 0, pkt);
	CV_CHECK_INT(len, lost_len);
	CV_CHECK_MEM(pkt, lost, lost_len);
	expect_exact(a, pkt, len, &s[1], (uint16_t)(a_last_hop + 2));

	/* The late packet from the paused stretch: to A it would need a hop
	 * SEQ already used (a second packet under one AES-GCM nonce): it is
	 * dropped as stale. B, never paused, gets it as it is. */
	struct cv_switch_stats st0, st1;
	cv_switch_get_stats(W.sw, &st0);
	a->rtp.n = b->rtp.n = 0;
	inject(&W.ep[0], late_wire, late_len);
	cv_switch_get_stats(W.sw, &st1);
	CV_CHECK_INT(a->rtp.n, 0);
	CV_CHECK_INT(b->rtp.n, 1);
	CV_CHECK_INT(
		st1.drops[CV_DROP_SEQ_STALE] - st0.drops[CV_DROP_SEQ_STALE], 1);
	if (b->rtp.n == 1) {
		len = take(b, 0, pkt);
		expect_exact(b, pkt, len, &late_sent, late_sent.seq);
	}
	/* A NACK for a hop SEQ from before the first epoch kept is not
	 * answered: its mapping back to the publisher is not known. */
	a->rtp.n = 0;
	nack(a, (uint16_t)(a_last_hop - 200));
	CV_CHECK_INT(a->rtp.n, 0);
}

/*
 * NACK to the publisher: its video packet X is lost on its hop (made,
 * never injected). The switch NACKs X's hop SEQ once the reorder wait is
 * over (checked on later packets), and the publisher resends the very
 * same bytes (repair mode on its hop): the switch accepts them and both
 * receivers get X, bit-exact, under X's SEQ.
 */
static _Alignas(8) uint8_t x_wire[CV_PKT_STORAGE];
static size_t x_len;
static struct sent x_sent;

static void deliver_video(void)
{
	uint8_t pkt[CV_PKT_STORAGE];
	struct sent s;

	W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
	publish(SSRC_VID, 400, &s);
	for (unsigned e = 1; e < N_EP; e++) {
		CV_CHECK_INT(W.ep[e].rtp.n, 1);
		if (W.ep[e].rtp.n != 1)
			continue;
		size_t len = take(&W.ep[e], 0, pkt);
		expect_exact(&W.ep[e], pkt, len, &s,
			     (uint16_t)(pkt[2] << 8 | pkt[3]));
	}
}

static void job_lose_x(void *arg)
{
	(void)arg;
	W.n_nacked = 0;
	x_len = make_wire(SSRC_VID, 400, &x_sent, x_wire, sizeof(x_wire));
	CV_CHECK(x_len > 0);
	deliver_video();
}

/* One more packet every 2 ms (the loss tracker must not see X as ancient
 * when it comes back); done when the publisher was NACKed for X. */
static void job_until_nacked(void *arg)
{
	static uint64_t last_ms;
	uint64_t now = cv_loop_now_ms(cv_worker_loop(W.w));
	int *done = arg;

	if (now - last_ms >= 2) {
		last_ms = now;
		deliver_video();
	}
	for (size_t i = 0; i < W.n_nacked; i++)
		if (W.nacked[i] == x_sent.seq)
			*done = 1;
}

static void job_resend_x(void *arg)
{
	uint8_t pkt[CV_PKT_STORAGE];
	struct cv_switch_stats st;

	(void)arg;
	cv_switch_get_stats(W.sw, &st);
	CV_CHECK(st.nack_sent >= 1);
	W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
	inject(&W.ep[0], x_wire, x_len);
	for (unsigned e = 1; e < N_EP; e++) {
		CV_CHECK_INT(W.ep[e].rtp.n, 1);
		if (W.ep[e].rtp.n != 1)
			continue;
		size_t len = take(&W.ep[e], 0, pkt);
		uint16_t hop = (uint16_t)(pkt[2] << 8 | pkt[3]);
		if (e == 2) /* B: never paused, SEQ kept */
			CV_CHECK_INT(hop, x_sent.seq);
		expect_exact(&W.ep[e], pkt, len, &x_sent, hop);
	}
	/* The same bytes once more: a duplicate on the publisher's hop. */
	W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
	inject(&W.ep[0], x_wire, x_len);
	CV_CHECK_INT(W.ep[1].rtp.n + W.ep[2].rtp.n, 0);
}

/* The receivers learn both senders' keys out of band (as from an earlier
 * good packet), so that each tampered packet is judged on what was done
 * to it, not refused for want of a key. */
static void give_keys(void)
{
	uint8_t f[CV_PERC_EKT_MAX_FIELD_BYTES];
	int n;

	for (unsigned e = 1; e < N_EP; e++) {
		n = cv_perc_ekt_build_full(&W.ekt, 0, &W.key_aud, SSRC_AUD, 0,
					   f, sizeof(f));
		CV_CHECK(n > 0);
		CV_CHECK_INT(cv_perc_receiver_accept_ekt(
				     W.ep[e].rcv, SSRC_AUD,
				     (uint16_t)(W.seq_aud - 1), f, (size_t)n),
			     0);
		n = cv_perc_ekt_build_full(&W.ekt, 0, &W.key_vid, SSRC_VID, 0,
					   f, sizeof(f));
		CV_CHECK(n > 0);
		CV_CHECK_INT(cv_perc_receiver_accept_ekt(
				     W.ep[e].rcv, SSRC_VID,
				     (uint16_t)(W.seq_vid - 1), f, (size_t)n),
			     0);
	}
}

/* Faulty node: every forwarded packet is tampered; A and B refuse all. */
static void job_faulty(void *arg)
{
	struct cv_switch_stats st0, st1;
	uint8_t pkt[CV_PKT_STORAGE];
	const unsigned n = 40;
	uint64_t before[N_EP] = {0}, after[N_EP] = {0};
	/* The reason each kind must be refused with, for every packet
	 * (ssrc: a FullEKTField's SSRC mismatch or an unknown SSRC). */
	enum cv_perc_drop want = CV_PERC_DROP_COUNT;
	if (strcmp(W.fault, "timestamp") == 0 ||
	    strcmp(W.fault, "payload") == 0 ||
	    strcmp(W.fault, "inner_tag") == 0 || strcmp(W.fault, "ohb") == 0 ||
	    strcmp(W.fault, "ekt_move") == 0)
		want = CV_PERC_DROP_INNER;

	(void)arg;
	give_keys();
	cv_switch_get_stats(W.sw, &st0);
	for (unsigned e = 1; e < N_EP; e++)
		for (int d = 0; d < CV_PERC_DROP_COUNT; d++)
			before[e] += cv_perc_receiver_drops(W.ep[e].rcv, d);
	for (unsigned i = 0; i < n; i++) {
		struct sent s;
		W.ep[1].rtp.n = W.ep[2].rtp.n = 0;
		publish(i % 2 ? SSRC_VID : SSRC_AUD, 300, &s);
		for (unsigned e = 1; e < N_EP; e++) {
			CV_CHECK_INT(W.ep[e].rtp.n, 1);
			if (W.ep[e].rtp.n != 1)
				continue;
			size_t len = take(&W.ep[e], 0, pkt);
			CV_CHECK(cv_perc_e2e_unprotect(W.ep[e].rcv,
						       W.ep[e].hop_in, pkt,
						       &len, NULL) != 0);
		}
	}
	cv_switch_get_stats(W.sw, &st1);
	CV_CHECK_INT(st1.perc_faults_injected - st0.perc_faults_injected,
		     2 * n);
	for (unsigned e = 1; e < N_EP; e++) {
		for (int d = 0; d < CV_PERC_DROP_COUNT; d++) {
			uint64_t c = cv_perc_receiver_drops(W.ep[e].rcv, d);
			after[e] += c;
			if (c)
				printf("fault %s: receiver %u: %s %" PRIu64
				       "\n",
				       W.fault, e, cv_perc_drop_name(d), c);
		}
		/* Every packet refused, and counted; none of them as an
		 * outer (hop-by-hop) failure: the tampering is only caught
		 * end to end. */
		CV_CHECK_INT(after[e] - before[e], n);
		/* ohb: a made-up original SEQ may also land behind the
		 * inner replay window: refused end to end either way. */
		if (want != CV_PERC_DROP_COUNT)
			CV_CHECK_INT(cv_perc_receiver_drops(W.ep[e].rcv, want) +
					     cv_perc_receiver_drops(
						     W.ep[e].rcv,
						     CV_PERC_DROP_INNER_REPLAY),
				     n);
		else
			CV_CHECK_INT(
				cv_perc_receiver_drops(W.ep[e].rcv,
						       CV_PERC_DROP_EKT_SSRC) +
					cv_perc_receiver_drops(
						W.ep[e].rcv,
						CV_PERC_DROP_NO_KEY),
				n);
		CV_CHECK_INT(
			cv_perc_receiver_drops(W.ep[e].rcv, CV_PERC_DROP_OUTER),
			0);
	}
}

static void job_stats(void *arg)
{
	cv_switch_get_stats(W.sw, arg);
}

/* ---- main ---- */

static void post_setup(void)
{
	for (unsigned i = 0; i < N_EP; i++) {
		struct ep *e = &W.ep[i];
		struct cv_transport_spec spec = {
			.id = 100 + i,
			.local = e->sw,
			.remote = e->mine,
			.perc = true,
			.assoc = e->assoc,
		};
		CV_CHECK_INT(cv_switch_cmd_add_transport(W.w, &spec), 0);
	}
	struct cv_track_spec ta = {.track_id = TRACK_AUD,
				   .transport_id = 100,
				   .ssrc = SSRC_AUD,
				   .pt = PT_AUD,
				   .clock_rate = 48000};
	struct cv_track_spec tv = {.track_id = TRACK_VID,
				   .transport_id = 100,
				   .video = true,
				   .ssrc = SSRC_VID,
				   .pt = PT_VID,
				   .clock_rate = 90000};
	CV_CHECK_INT(cv_switch_cmd_add_track(W.w, &ta), 0);
	CV_CHECK_INT(cv_switch_cmd_add_track(W.w, &tv), 0);
	for (unsigned s = 1; s < N_EP; s++) {
		/* A made-up SSRC and RTX: ignored in perc rooms. */
		struct cv_sub_spec sa = {.track_id = TRACK_AUD,
					 .transport_id = 100 + s,
					 .ssrc = 0x12345678,
					 .pt = PT_AUD};
		struct cv_sub_spec sv = {.track_id = TRACK_VID,
					 .transport_id = 100 + s,
					 .ssrc = 0x12345679,
					 .pt = PT_VID,
					 .rtx_ssrc = 0x1234567a,
					 .rtx_pt = 97};
		CV_CHECK_INT(cv_switch_cmd_subscribe(W.w, &sa), 0);
		CV_CHECK_INT(cv_switch_cmd_subscribe(W.w, &sv), 0);
	}
}

static void make_media_keys(void)
{
	struct cv_secret k;

	cv_secret_init(&k);
	cv_secret_init(&W.key_aud);
	cv_secret_init(&W.key_vid);
	W.ekt.spi = 0x0101;
	cv_secret_init(&W.ekt.key);
	cv_secret_init(&W.ekt.inner_salt);
	CV_CHECK_INT(cv_secret_random(&W.ekt.key, 16), 0);
	CV_CHECK_INT(cv_secret_random(&W.ekt.inner_salt, 12), 0);
	CV_CHECK_INT(cv_secret_random(&k, 16), 0);
	cv_secret_copy(&W.key_aud, &k);
	CV_CHECK_INT(cv_perc_sender_create(&W.snd_aud,
					   CV_PERC_DOUBLE_AES_128_GCM, SSRC_AUD,
					   &k, &W.ekt),
		     0);
	CV_CHECK_INT(cv_secret_random(&k, 16), 0);
	cv_secret_copy(&W.key_vid, &k);
	CV_CHECK_INT(cv_perc_sender_create(&W.snd_vid,
					   CV_PERC_DOUBLE_AES_128_GCM, SSRC_VID,
					   &k, &W.ekt),
		     0);
	CV_CHECK_INT(cv_secret_random(&k, 16), 0);
	CV_CHECK_INT(cv_perc_sender_create(&W.snd_bad,
					   CV_PERC_DOUBLE_AES_128_GCM, SSRC_BAD,
					   &k, &W.ekt),
		     0);
	cv_secret_wipe(&k);
	for (unsigned i = 1; i < N_EP; i++) {
		CV_CHECK_INT(cv_perc_receiver_create(&W.ep[i].rcv,
						     CV_PERC_DOUBLE_AES_128_GCM,
						     8),
			     0);
		CV_CHECK_INT(cv_perc_receiver_add_ekt_key(W.ep[i].rcv, &W.ekt),
			     0);
	}
	W.seq_aud = 65530; /* crosses a wrap */
	W.seq_vid = 2000;
	W.seq_bad = 1;
	W.ts = 12345;
}

int main(void)
{
	struct cv_switch_stats st;
	char cmd[96];

	signal(SIGPIPE, SIG_IGN);
	W.fault = getenv("CONCLAVE_PERC_FAULT");
	if (W.fault && !W.fault[0])
		W.fault = NULL;
	pthread_mutex_init(&W.m, NULL);
	pthread_cond_init(&W.c, NULL);
	CV_CHECK_INT(cv_srtp_global_init(), 0);
	CV_CHECK(mkdtemp(dir) != NULL);
	make_ident(&W.kd_id, "kd");
	make_ident(&W.node_id, "node");
	CV_CHECK_INT(cv_dtls_cert_generate(&W.kd_cert), 0);
	for (unsigned i = 0; i < N_EP; i++) {
		struct ep *e = &W.ep[i];
		struct sockaddr_in *sin = (struct sockaddr_in *)&e->addr;
		const char *fp;

		e->idx = i;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)(BASE_PORT + i));
		sin->sin_addr.s_addr = htonl(0x0a020000u | i);
		CV_CHECK_INT(cv_ice_credentials_generate(&e->mine), 0);
		CV_CHECK_INT(cv_ice_credentials_generate(&e->sw), 0);
		CV_CHECK_INT(cv_dtls_tunnel_new_assoc_id(&e->assoc), 0);
		CV_CHECK_INT(cv_dtls_cert_generate(&e->cert), 0);
		CV_CHECK_INT(cv_dtls_ctx_create(&e->ctx, e->cert), 0);
		fp = cv_dtls_cert_fingerprint(e->cert);
		CV_CHECK_INT(cv_dtls_fingerprint_parse(&e->fp, fp, strlen(fp)),
			     0);
	}
	make_media_keys();

	struct cv_workers_config wc = {.count = 1,
				       .pool_packets = 512,
				       .queue_items = 1024,
				       .on_start = on_worker_start,
				       .on_stop = on_worker_stop};
	CV_CHECK_INT(cv_workers_create(&W.ws, &wc), 0);
	W.w = cv_workers_get(W.ws, 0);
	CV_CHECK_INT(cv_workers_start(W.ws), 0);
	wait_done();
	if (!W.sw)
		return cv_test_done("test_switch_perc");

	/* The switch's own link to the KD comes up (any-thread query). */
	CV_CHECK(wait_for(job_kd_up, 5000));
	CV_CHECK(cv_switch_kd_up(W.sw));
	post_setup();
	on_worker(job_start, NULL);
	CV_CHECK(wait_for(job_pump, 5000));
	CV_CHECK_INT(W.kd_done, N_EP);
	CV_CHECK_INT(W.kd_err, 0);
	for (unsigned i = 0; i < N_EP; i++)
		CV_CHECK(W.ep[i].connected && !W.ep[i].failed);

	if (W.fault) {
		on_worker(job_faulty, NULL);
	} else {
		struct round aud = {SSRC_AUD, 100, 20};
		struct round vid = {SSRC_VID, 1100, 20};
		on_worker(job_stream, &aud);
		on_worker(job_stream, &vid);
		on_worker(job_unannounced, NULL);
		on_worker(job_repair, NULL);
		on_worker(job_before_pause, NULL);
		CV_CHECK_INT(cv_switch_cmd_pause(W.w, TRACK_VID, 101, true), 0);
		on_worker(job_while_paused, NULL);
		CV_CHECK_INT(cv_switch_cmd_pause(W.w, TRACK_VID, 101, false),
			     0);
		on_worker(job_after_pause, NULL);
		on_worker(job_lose_x, NULL);
		CV_CHECK(wait_for(job_until_nacked, 3000));
		on_worker(job_resend_x, NULL);
		/* The KD stops: the switch sees its link down, and the keyed
		 * transports keep their media. */
		on_worker(job_kd_stop, NULL);
		CV_CHECK(wait_for(job_kd_down, 5000));
		CV_CHECK(!cv_switch_kd_up(W.sw));
		struct round after = {SSRC_VID, 800, 5, true};
		on_worker(job_stream, &after);
		on_worker(job_stats, &st);
		CV_CHECK_INT(st.perc_faults_injected, 0);
		CV_CHECK(st.perc_in >= 40);
		CV_CHECK_INT(st.perc_repairs, 2);
		CV_CHECK_INT(st.drops[CV_DROP_SRTP_AUTH], 0);
		CV_CHECK_INT(st.drops[CV_DROP_PERC_MALFORMED], 0);
		for (unsigned e = 1; e < N_EP; e++)
			CV_CHECK_INT(cv_perc_receiver_drops(W.ep[e].rcv,
							    CV_PERC_DROP_INNER),
				     0);
	}

	cv_workers_stop(W.ws);
	cv_workers_destroy(W.ws);
	cv_perc_sender_destroy(W.snd_aud);
	cv_perc_sender_destroy(W.snd_vid);
	cv_perc_sender_destroy(W.snd_bad);
	cv_perc_ekt_key_wipe(&W.ekt);
	cv_secret_wipe(&W.key_aud);
	cv_secret_wipe(&W.key_vid);
	for (unsigned i = 0; i < N_EP; i++) {
		cv_dtls_ctx_unref(W.ep[i].ctx);
		cv_dtls_cert_unref(W.ep[i].cert);
	}
	cv_dtls_cert_unref(W.kd_cert);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done(W.fault ? "test_switch_perc (faulty node)"
				    : "test_switch_perc");
}
