/*
 * The switch: one worker's socket, transports and forwarding tables.
 *
 * Packet path (forward mode), one named step each:
 *   on_socket_readable -> route_datagram (RFC 7983 demux)
 *     -> on_stun / on_dtls / on_srtp
 *     -> on_srtp: find the port by 5-tuple, SRTP unprotect,
 *        on_rtp (find the track, cache for NACK, forward_to_outputs)
 *        or on_rtcp (feedback from subscribers, reports from publishers)
 *     -> forward_one: one egress copy per subscriber, rewrite SSRC, seq,
 *        timestamp and PT, SRTP protect in place, queue for sendmmsg
 *   -> cv_udp_flush at the end of the batch.
 *
 * Perc rooms (transports made with spec.perc): RTP takes on_perc_rtp
 * instead: only announced SSRCs, cv_perc_hop_ingress once (the outer
 * layer off, the inner layer and the EKTField opaque), then
 * forward_perc_one per subscriber: cv_perc_hop_egress with that
 * subscriber's own hop session, SSRC and timestamp kept, SEQ rewritten
 * only to close a gap the node made (pause), PT only if the subscriber
 * maps it elsewhere. A NACK is answered in repair mode: the cached
 * ingress form goes through egress again with the same hop SEQ, so the
 * subscriber gets the same bytes again; never RTX. RTCP is hop-by-hop
 * SRTCP as in forward rooms.
 * No allocation but pool packets, no lock, no log above debug.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <openssl/rand.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/loop.h"
#include "conclave/perc.h"
#include "conclave/pool.h"
#include "conclave/rtcp.h"
#include "conclave/rtp.h"
#include "conclave/stun.h"
#include "conclave/switch.h"
#include "conclave/tunnel.h"
#include "conclave/udp.h"
#include "conclave/worker.h"
#include "media/switch/addr_map.h"
#include "media/switch/loss.h"
#include "media/switch/nack_cache.h"
#include "media/switch/transport.h"
#ifdef CV_PERC_FAULTY_NODE
#include "media/switch/perc_fault.h"
#endif

/* Retransmissions older than this are useless to a real-time receiver. */
#define NACK_MAX_AGE_MS 1000
/*
 * Retransmissions per subscription: at most RTX_BURST at once and
 * RTX_PER_SEC sustained, and one packet at most once per RTX_REPEAT_MS, so
 * that NACKs (repeated numbers, huge bitmasks, floods) cannot turn the
 * node into an amplifier. A real receiver asks for far less.
 */
#define RTX_BURST     64
#define RTX_PER_SEC   400
#define RTX_REPEAT_MS 40
#define RTX_RECENT    32
/* The SSRC the node uses as sender of its own RTCP (PLI, RR). */
#define NODE_RTCP_SSRC 0x436f6e63u /* "Conc" */

struct out;

struct in_track {
	uint64_t id;
	struct port *pub;
	struct cv_track_spec spec;
	struct cv_nack_cache *cache; /* video only */
	uint64_t last_pli_ms;
	bool pli_pending; /* asked while rate-limited: send when allowed */
	struct out **outs;
	size_t n_outs, cap_outs;
	/* receive statistics for receiver reports */
	bool seq_started;
	struct cv_rtp_seq seq;
	uint64_t packets, bytes;
	struct cv_loss_tracker loss; /* video: what to NACK the publisher */
};

struct out {
	struct in_track *track;
	struct port *sub;
	struct cv_sub_spec spec;
	bool started;
	bool paused; /* not forwarded (cv_switch_cmd_pause) */
	bool resync; /* resumed: close the gap at the next packet */
	uint16_t seq_delta;
	uint32_t ts_delta;
	uint16_t last_seq; /* the last SEQ sent (not resends) */
	/* SEQ epochs (one per resync): hop SEQs from epoch_start on were
	 * sent with seq_delta, those from prev_start to epoch_start with
	 * prev_delta; older ones are not mapped back (not repaired). */
	bool has_prev;
	uint16_t prev_delta, prev_start, epoch_start;
	/* The publisher's seq at the last resync: a late packet older than
	 * that would get a hop SEQ already used (stale). */
	bool has_resume;
	uint16_t resume_in_seq;
	uint16_t rtx_seq; /* the RTX stream's own sequence (RFC 4588 4) */
	uint64_t packets, octets;
	uint32_t last_ts;
	uint64_t last_arrival_us; /* of the packet that carried last_ts */
	/* Retransmission budget (a token bucket) and the packets resent
	 * lately: a NACK can never make the node send more than this. */
	uint32_t rtx_tokens;
	uint64_t rtx_refill_ms;
	uint16_t rtx_recent[RTX_RECENT];
	uint64_t rtx_recent_ms[RTX_RECENT];
	unsigned rtx_recent_pos;
};

struct port {
	struct cv_transport *t;
	uint64_t id;
	bool perc; /* hop transform, no RTX, announced SSRCs only */
	struct in_track **tracks; /* published on this transport */
	size_t n_tracks, cap_tracks;
	struct out **outs; /* subscribed through this transport */
	size_t n_outs, cap_outs;
};

struct cv_switch {
	struct cv_worker *worker;
	struct cv_loop *loop;
	struct cv_pool *pool;
	struct cv_switch_config cfg;
	struct cv_udp udp;
	struct cv_io udp_io;
	struct port **ports;
	size_t n_ports, cap_ports;
	struct cv_addr_map addrs; /* selected peer address -> port */
	struct cv_timer report_timer;
	struct cv_tunnel_link *kd; /* perc: the link to the Key Distributor */
	bool kd_up;		   /* atomic: read by any thread */
#ifdef CV_PERC_FAULTY_NODE
	struct cv_perc_fault fault;
#endif
	/* single writer (the worker), relaxed readers (metrics) */
	struct cv_switch_stats stats;
};

#define DROP_NAME_(id, name) [CV_DROP_##id] = name,
static const char *const drop_names[CV_DROP_COUNT] = {
	CV_DROP_REASONS(DROP_NAME_)};
#undef DROP_NAME_

const char *cv_drop_name(enum cv_drop reason)
{
	return reason < CV_DROP_COUNT ? drop_names[reason] : "unknown";
}

/* Single-writer counter: a relaxed load and store, no locked instruction. */
static inline void count(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static inline void drop(struct cv_switch *sw, enum cv_drop why)
{
	count(&sw->stats.drops[why], 1);
}

void cv_switch_get_stats(const struct cv_switch *sw,
			 struct cv_switch_stats *out)
{
	const uint64_t *src = (const uint64_t *)&sw->stats;
	uint64_t *dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

bool cv_switch_kd_up(const struct cv_switch *sw)
{
	return sw && __atomic_load_n(&sw->kd_up, __ATOMIC_ACQUIRE);
}

/* ---- small dynamic arrays (control plane only) ---- */

static int grow(void ***arr, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 8;
	while (n < need)
		n *= 2;
	void **a = realloc(*arr, n * sizeof(void *));
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = n;
	return 0;
}

static int push(void ***arr, size_t *n, size_t *cap, void *item)
{
	int err = grow(arr, cap, *n + 1);
	if (err)
		return err;
	(*arr)[(*n)++] = item;
	return 0;
}

static void remove_item(void **arr, size_t *n, void *item)
{
	for (size_t i = 0; i < *n; i++) {
		if (arr[i] == item) {
			arr[i] = arr[--*n];
			return;
		}
	}
}

#define PUSH(arr, n, cap, item) push((void ***)&(arr), &(n), &(cap), (item))
#define REMOVE(arr, n, item)	remove_item((void **)(arr), &(n), (item))

/* ---- lookups ---- */

static struct port *port_by_id(struct cv_switch *sw, uint64_t id)
{
	for (size_t i = 0; i < sw->n_ports; i++)
		if (sw->ports[i]->id == id)
			return sw->ports[i];
	return NULL;
}

static struct port *port_by_addr(struct cv_switch *sw,
				 const struct sockaddr_storage *addr)
{
	return cv_addr_map_get(&sw->addrs, addr);
}

static struct port *port_by_ufrag(struct cv_switch *sw, const uint8_t *ufrag,
				  size_t len)
{
	for (size_t i = 0; i < sw->n_ports; i++)
		if (cv_transport_owns_ufrag(sw->ports[i]->t, ufrag, len))
			return sw->ports[i];
	return NULL;
}

static struct in_track *track_by_id(struct cv_switch *sw, uint64_t id)
{
	for (size_t i = 0; i < sw->n_ports; i++) {
		struct port *p = sw->ports[i];
		for (size_t j = 0; j < p->n_tracks; j++)
			if (p->tracks[j]->id == id)
				return p->tracks[j];
	}
	return NULL;
}

/* ---- egress ---- */

/* Every datagram leaves through here: the socket's batch, or the
 * config's egress hook (benchmarks and tests without sockets). */
static void egress(struct cv_switch *sw, struct cv_pkt *pkt)
{
	if (sw->cfg.egress)
		sw->cfg.egress(sw->cfg.egress_arg, pkt);
	else
		cv_udp_queue(&sw->udp, pkt);
}

static void egress_flush(struct cv_switch *sw)
{
	if (!sw->cfg.egress)
		cv_udp_flush(&sw->udp);
}

/* Protects and queues pkt (taken) on the transport of port. */
static void send_protected(struct cv_switch *sw, struct port *port,
			   struct cv_pkt *pkt, bool rtcp)
{
	enum cv_drop why;
	if (cv_transport_protect(port->t, pkt, rtcp, &why) != 0) {
		drop(sw, why);
		cv_pkt_free(pkt);
		return;
	}
	count(&sw->stats.tx_datagrams, 1);
	count(&sw->stats.tx_bytes, pkt->len);
	egress(sw, pkt);
}

/*
 * RFC 4585 6.3.1 PLI to the publisher of `track`, at most one per
 * pli_min_interval_ms: many subscribers asking at once cost the publisher
 * one keyframe.
 */
static void request_keyframe(struct cv_switch *sw, struct in_track *track)
{
	uint64_t now = cv_loop_now_ms(sw->loop);
	if (!track->spec.video || !cv_transport_connected(track->pub->t))
		return;
	if (track->last_pli_ms &&
	    now - track->last_pli_ms < sw->cfg.pli_min_interval_ms) {
		track->pli_pending = true;
		return;
	}
	struct cv_pkt *pkt = cv_pkt_alloc(sw->pool);
	if (!pkt) {
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	int n = cv_rtcp_write_pli(pkt->data, cv_pkt_tailroom(pkt),
				  NODE_RTCP_SSRC, track->spec.ssrc);
	if (n < 0) {
		cv_pkt_free(pkt);
		return;
	}
	pkt->len = (size_t)n;
	track->last_pli_ms = now;
	track->pli_pending = false;
	count(&sw->stats.pli_sent, 1);
	send_protected(sw, track->pub, pkt, true);
}

/*
 * The subscriber's SEQ for the publisher's seq, for a new (not resent)
 * packet, in *hop. After a pause the delta moves so that the subscriber's
 * SEQ continues from the last one sent: no gap it would NACK or count
 * lost. Returns false for a packet that must not go out: one older than
 * the resume point, whose hop SEQ was already used (the same SEQ twice
 * under one hop key is a reused AES-GCM nonce, and a replay to the
 * subscriber).
 */
static bool out_seq(struct out *o, uint16_t seq, uint16_t *hop)
{
	if (!o->started)
		o->epoch_start = (uint16_t)(seq + o->seq_delta);
	if (o->resync) {
		o->resync = false;
		if (o->started) {
			uint16_t nd = (uint16_t)(o->last_seq + 1 - seq);
			if (nd != o->seq_delta) {
				o->prev_delta = o->seq_delta;
				o->prev_start = o->epoch_start;
				o->has_prev = true;
				o->epoch_start = (uint16_t)(o->last_seq + 1);
				o->seq_delta = nd;
			}
			o->has_resume = true;
			o->resume_in_seq = seq;
		}
	} else if (o->has_resume) {
		int16_t d = (int16_t)(seq - o->resume_in_seq);
		if (d < 0)
			return false;
		if (d > 4096) /* long past any reordering: forget it */
			o->has_resume = false;
	}
	*hop = (uint16_t)(seq + o->seq_delta);
	/* Only forward: a late packet must not pull the resync point back. */
	if (!o->started || (int16_t)(*hop - o->last_seq) > 0)
		o->last_seq = *hop;
	return true;
}

/* The publisher's seq of what the subscriber knows as SEQ sub_seq, in
 * *in_seq; false when sub_seq is older than the epochs kept. */
static bool in_seq_of(const struct out *o, uint16_t sub_seq, uint16_t *in_seq)
{
	if ((int16_t)(sub_seq - o->epoch_start) >= 0) {
		*in_seq = (uint16_t)(sub_seq - o->seq_delta);
		return true;
	}
	if (o->has_prev && (int16_t)(sub_seq - o->prev_start) >= 0) {
		*in_seq = (uint16_t)(sub_seq - o->prev_delta);
		return true;
	}
	return false;
}

/*
 * One egress copy for one subscriber: a fresh fixed header (the
 * publisher's header extensions are hop-by-hop and dropped), then the
 * payload and padding; SSRC, sequence number, timestamp and payload type
 * are the subscriber's (continuous from its first packet on).
 */
static void emit_one(struct cv_switch *sw, struct out *o,
		     const struct cv_rtp_hdr *h, const uint8_t *pkt, size_t len,
		     uint16_t seq)
{
	struct cv_pkt *e = cv_pkt_alloc(sw->pool);
	if (!e) {
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	size_t body = len - h->hdr_len;
	if (CV_RTP_HDR_MIN + body > cv_pkt_tailroom(e)) {
		cv_pkt_free(e);
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	uint8_t *d = e->data;
	d[0] = (uint8_t)(0x80 | (h->padding ? 0x20 : 0));
	d[1] = (uint8_t)((h->marker ? 0x80 : 0) | (o->spec.pt & 0x7f));
	uint32_t ts = h->ts + o->ts_delta;
	cv_rtp_set_seq(d, seq);
	cv_rtp_set_ts(d, ts);
	cv_rtp_set_ssrc(d, o->spec.ssrc);
	memcpy(d + CV_RTP_HDR_MIN, pkt + h->hdr_len, body);
	e->len = CV_RTP_HDR_MIN + body;
	o->started = true;
	o->packets++;
	o->octets += h->payload_len;
	o->last_ts = ts;
	o->last_arrival_us = cv_loop_now_us(sw->loop);
	count(&sw->stats.rtp_forwarded, 1);
	send_protected(sw, o->sub, e, false);
}

static void forward_one(struct cv_switch *sw, struct out *o,
			const struct cv_rtp_hdr *h, const uint8_t *pkt,
			size_t len)
{
	if (!cv_transport_connected(o->sub->t))
		return;
	uint16_t seq;
	if (!out_seq(o, h->seq, &seq)) {
		drop(sw, CV_DROP_SEQ_STALE);
		return;
	}
	emit_one(sw, o, h, pkt, len, seq);
}

/* A NACKed packet again, as it was sent: under the SEQ seq. */
static void resend_one(struct cv_switch *sw, struct out *o,
		       const struct cv_rtp_hdr *h, const uint8_t *pkt,
		       size_t len, uint16_t seq)
{
	if (!cv_transport_connected(o->sub->t))
		return;
	emit_one(sw, o, h, pkt, len, seq);
}

/* ---- perc: the hop transform ---- */

/*
 * One perc egress for one subscriber: the packet in ingress form through
 * cv_perc_hop_egress with the subscriber's own hop session, under hop SEQ
 * seq (the original unless a pause moved the delta: then recorded in the
 * OHB by the transform). SSRC and timestamp are never changed; PT only
 * when the subscriber's SDP maps the codec to another number.
 */
static void emit_perc(struct cv_switch *sw, struct out *o,
		      const struct cv_perc_hop_rx *rx, const uint8_t *pkt,
		      uint16_t seq, bool repair)
{
	struct cv_srtp *out = cv_transport_srtp_out(o->sub->t);
	struct cv_perc_hop_rewrite rw = {0};
	enum cv_drop why;
	size_t len;
	int err;

	if (!out)
		return;
	struct cv_pkt *e = cv_pkt_alloc(sw->pool);
	if (!e) {
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	if (seq != rx->seq) {
		rw.set_seq = true;
		rw.seq = seq;
	}
	if (o->spec.pt && o->spec.pt != rx->pt) {
		rw.set_pt = true;
		rw.pt = o->spec.pt & 0x7f;
	}
#ifdef CV_PERC_FAULTY_NODE
	if (sw->fault.kind != CV_PERC_FAULT_NONE) {
		err = cv_perc_hop_egress_tampered(
			out, pkt, rx, &rw, e->data, cv_pkt_cap(e), &len,
			cv_perc_fault_tamper, &sw->fault);
		if (!err)
			count(&sw->stats.perc_faults_injected, 1);
	} else
#endif
		err = cv_perc_hop_egress(out, pkt, rx, &rw, e->data,
					 cv_pkt_cap(e), &len);
	if (err) {
		cv_pkt_free(e);
		drop(sw, err == CV_ETOOBIG ? CV_DROP_PERC_EGRESS
					   : CV_DROP_EGRESS_PROTECT);
		return;
	}
	e->len = len;
	if (cv_transport_address(o->sub->t, e, &why) != 0) {
		cv_pkt_free(e);
		drop(sw, why);
		return;
	}
	if (!repair) {
		uint32_t ts = (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 |
			      (uint32_t)pkt[6] << 8 | pkt[7];
		o->started = true;
		o->packets++;
		o->octets += rx->plain_len - rx->hdr_len - rx->ohb_len;
		o->last_ts = ts;
		o->last_arrival_us = cv_loop_now_us(sw->loop);
		count(&sw->stats.rtp_forwarded, 1);
		count(&sw->stats.perc_forwarded, 1);
	}
	count(&sw->stats.tx_datagrams, 1);
	count(&sw->stats.tx_bytes, e->len);
	egress(sw, e);
}

static void forward_perc_one(struct cv_switch *sw, struct out *o,
			     const struct cv_perc_hop_rx *rx,
			     const uint8_t *pkt)
{
	if (!cv_transport_connected(o->sub->t))
		return;
	uint16_t seq;
	if (!out_seq(o, rx->seq, &seq)) {
		drop(sw, CV_DROP_SEQ_STALE);
		return;
	}
	emit_perc(sw, o, rx, pkt, seq, false);
}

/*
 * Repair mode (perc rooms): the NACKed packet, kept in ingress form,
 * goes through egress again under the hop SEQ the subscriber asked for,
 * with the same rewrites and the same EKTField: the subscriber gets the
 * same packet as the first time (its hop session allows the repeated
 * index), and its own replay list refuses a second copy. No RTX stream,
 * no payload change.
 */
static void repair_perc(struct cv_switch *sw, struct out *o,
			const uint8_t *cached, size_t len, uint16_t seq)
{
	struct cv_perc_hop_rx rx;

	if (!cv_transport_connected(o->sub->t) ||
	    cv_perc_hop_parse_plain(cached, len, &rx) != 0)
		return;
	count(&sw->stats.rtx_sent, 1);
	count(&sw->stats.perc_repairs, 1);
	emit_perc(sw, o, &rx, cached, seq, true);
}

/* ---- ingress: RTP ---- */

static struct in_track *find_in_track(struct port *p,
				      const struct cv_rtp_hdr *h)
{
	for (size_t i = 0; i < p->n_tracks; i++)
		if (p->tracks[i]->spec.ssrc == h->ssrc)
			return p->tracks[i];
	/* Learn an unsignaled SSRC from the RFC 8843 MID extension. */
	for (size_t i = 0; i < p->n_tracks; i++) {
		struct in_track *t = p->tracks[i];
		struct cv_rtp_ext_elem e;
		if (t->spec.ssrc || !t->spec.mid_ext_id ||
		    cv_rtp_ext_find(h, t->spec.mid_ext_id, &e) != 0)
			continue;
		if (e.len == strlen(t->spec.mid) &&
		    memcmp(e.data, t->spec.mid, e.len) == 0 &&
		    h->pt == t->spec.pt) {
			t->spec.ssrc = h->ssrc;
			return t;
		}
	}
	return NULL;
}

/* RFC 4585 6.2.1: NACK the publisher for what is due (video). */
static void nack_publisher(struct cv_switch *sw, struct in_track *t,
			   uint64_t now)
{
	uint16_t lost[CV_LOSS_MAX_MISSING];
	size_t n = cv_loss_due(&t->loss, now, lost, CV_LOSS_MAX_MISSING);
	if (n == 0 || !cv_transport_connected(t->pub->t))
		return;
	struct cv_pkt *pkt = cv_pkt_alloc(sw->pool);
	if (!pkt) {
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	int len = cv_rtcp_write_nack(pkt->data, cv_pkt_tailroom(pkt),
				     NODE_RTCP_SSRC, t->spec.ssrc, lost, n);
	if (len < 0) {
		cv_pkt_free(pkt);
		return;
	}
	pkt->len = (size_t)len;
	count(&sw->stats.nack_sent, n);
	send_protected(sw, t->pub, pkt, true);
}

/* A media packet of track t, in order or not: statistics, the NACK
 * cache, then one copy per subscriber. */
static void accept_media(struct cv_switch *sw, struct in_track *t,
			 const struct cv_rtp_hdr *h, const uint8_t *data,
			 size_t len, uint64_t arrival_us)
{
	uint64_t now = cv_loop_now_ms(sw->loop);
	count(&sw->stats.rtp_in, 1);
	t->packets++;
	t->bytes += len;
	if (!t->seq_started) {
		cv_rtp_seq_init(&t->seq, h->seq);
		t->seq_started = true;
	}
	cv_rtp_seq_update(&t->seq, h->seq);
	if (t->spec.clock_rate)
		cv_rtp_seq_jitter_update(
			&t->seq, h->ts,
			(uint32_t)(arrival_us * t->spec.clock_rate / 1000000u));
	if (t->cache)
		cv_nack_cache_put(t->cache, h->seq, data, len, now);
	if (t->pli_pending)
		request_keyframe(sw, t);
	for (size_t i = 0; i < t->n_outs; i++)
		if (!t->outs[i]->paused)
			forward_one(sw, t->outs[i], h, data, len);
}

static struct in_track *track_by_rtx(const struct port *p,
				     const struct cv_rtp_hdr *h)
{
	for (size_t i = 0; i < p->n_tracks; i++)
		if (p->tracks[i]->spec.rtx_ssrc &&
		    p->tracks[i]->spec.rtx_ssrc == h->ssrc &&
		    p->tracks[i]->spec.rtx_pt == h->pt)
			return p->tracks[i];
	return NULL;
}

/*
 * RFC 4588 4: a packet on a publisher's RTX stream. One the node asked
 * for (its OSN is missing) becomes the original packet again and goes the
 * normal way; padding-only probes and unsolicited ones are dropped.
 */
static void on_publisher_rtx(struct cv_switch *sw, struct in_track *t,
			     const struct cv_rtp_hdr *rtx, uint64_t arrival_us)
{
	if (rtx->payload_len < 2) {
		drop(sw, CV_DROP_PUBLISHER_RTX);
		return;
	}
	uint16_t osn = (uint16_t)(rtx->payload[0] << 8 | rtx->payload[1]);
	if (!cv_loss_is_missing(&t->loss, osn)) {
		drop(sw, CV_DROP_PUBLISHER_RTX);
		return;
	}
	_Alignas(8) uint8_t buf[CV_PKT_STORAGE];
	size_t body = rtx->payload_len - 2;
	buf[0] = 0x80;
	buf[1] = (uint8_t)((rtx->marker ? 0x80 : 0) | t->spec.pt);
	cv_rtp_set_seq(buf, osn);
	cv_rtp_set_ts(buf, rtx->ts);
	cv_rtp_set_ssrc(buf, t->spec.ssrc);
	memcpy(buf + CV_RTP_HDR_MIN, rtx->payload + 2, body);
	struct cv_rtp_hdr h;
	if (cv_rtp_parse(buf, CV_RTP_HDR_MIN + body, &h) != 0)
		return;
	cv_loss_update(&t->loss, osn, cv_loop_now_ms(sw->loop));
	count(&sw->stats.rtx_recovered, 1);
	accept_media(sw, t, &h, buf, CV_RTP_HDR_MIN + body, arrival_us);
}

static void on_rtp(struct cv_switch *sw, struct port *p, struct cv_pkt *pkt)
{
	struct cv_rtp_hdr h;
	if (cv_rtp_parse(pkt->data, pkt->len, &h) != 0) {
		drop(sw, CV_DROP_RTP_MALFORMED);
		return;
	}
	struct in_track *t = find_in_track(p, &h);
	if (!t || h.pt != t->spec.pt) {
		struct in_track *r = track_by_rtx(p, &h);
		if (r) {
			on_publisher_rtx(sw, r, &h, pkt->arrival_us);
		} else {
			/* Not announced: free its SRTP state at once, so
			 * made-up SSRCs cannot pile up in libsrtp. */
			drop(sw, CV_DROP_UNKNOWN_SSRC);
			cv_transport_forget_ssrc(p->t, h.ssrc);
		}
		return;
	}
	if (t->spec.video) {
		uint64_t now = cv_loop_now_ms(sw->loop);
		if (cv_loss_update(&t->loss, h.seq, now) == CV_LOSS_OLD) {
			drop(sw, CV_DROP_DUPLICATE);
			return;
		}
		nack_publisher(sw, t, now);
	}
	accept_media(sw, t, &h, pkt->data, pkt->len, pkt->arrival_us);
}

/* An announced perc track of port p: SSRC and PT as signaled. */
static struct in_track *perc_track(struct port *p, uint32_t ssrc)
{
	for (size_t i = 0; i < p->n_tracks; i++)
		if (p->tracks[i]->spec.ssrc == ssrc && ssrc)
			return p->tracks[i];
	return NULL;
}

/*
 * RTP from a perc publisher. Only announced SSRCs go further: anything
 * else is dropped before libsrtp sees it (no state for made-up SSRCs).
 * cv_perc_hop_ingress removes the outer layer once; the EKTField is
 * moved right after the outer plaintext, so that the NACK cache keeps the
 * packet in ingress form in one piece (cv_perc_hop_parse_plain).
 */
static void on_perc_rtp(struct cv_switch *sw, struct port *p,
			struct cv_pkt *pkt)
{
	struct cv_srtp *in = cv_transport_srtp_in(p->t);
	struct cv_perc_hop_rx rx;
	uint8_t *d = pkt->data;

	if (!in) {
		drop(sw, CV_DROP_NOT_CONNECTED);
		return;
	}
	if (pkt->len < CV_RTP_HDR_MIN) {
		drop(sw, CV_DROP_RTP_MALFORMED);
		return;
	}
	uint32_t ssrc = (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 |
			(uint32_t)d[10] << 8 | d[11];
	struct in_track *t = perc_track(p, ssrc);
	if (!t || (d[1] & 0x7f) != t->spec.pt) {
		drop(sw, CV_DROP_PERC_UNANNOUNCED);
		return;
	}
	int err = cv_perc_hop_ingress(in, d, pkt->len, &rx);
	if (err) {
		drop(sw, err == CV_EINTEGRITY ? CV_DROP_SRTP_AUTH
			 : err == CV_EREPLAY  ? CV_DROP_SRTP_REPLAY
			 : err == CV_EPARSE || err == CV_EPROTO
				 ? CV_DROP_PERC_MALFORMED
			 : err == CV_ETOOBIG ? CV_DROP_SRTP_TOO_MANY_SSRCS
					     : CV_DROP_SRTP_OTHER);
		return;
	}
	if (rx.ekt_off != rx.plain_len) {
		memmove(d + rx.plain_len, d + rx.ekt_off, rx.ekt_len);
		rx.ekt_off = rx.plain_len;
	}
	pkt->len = rx.plain_len + rx.ekt_len;
	uint64_t now = cv_loop_now_ms(sw->loop);
	if (t->spec.video) {
		/* The hop SEQ is what the publisher resends in repair mode. */
		if (cv_loss_update(&t->loss, rx.seq, now) == CV_LOSS_OLD) {
			drop(sw, CV_DROP_DUPLICATE);
			return;
		}
		nack_publisher(sw, t, now);
	}
	uint32_t ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 |
		      (uint32_t)d[6] << 8 | d[7];
	count(&sw->stats.rtp_in, 1);
	count(&sw->stats.perc_in, 1);
	t->packets++;
	t->bytes += pkt->len;
	if (!t->seq_started) {
		cv_rtp_seq_init(&t->seq, rx.seq);
		t->seq_started = true;
	}
	cv_rtp_seq_update(&t->seq, rx.seq);
	if (t->spec.clock_rate)
		cv_rtp_seq_jitter_update(
			&t->seq, ts,
			(uint32_t)(pkt->arrival_us * t->spec.clock_rate /
				   1000000u));
	if (t->cache)
		cv_nack_cache_put(t->cache, rx.seq, d, pkt->len, now);
	if (t->pli_pending)
		request_keyframe(sw, t);
	for (size_t i = 0; i < t->n_outs; i++)
		if (!t->outs[i]->paused)
			forward_perc_one(sw, t->outs[i], &rx, d);
}

/* ---- ingress: RTCP ---- */

static struct out *out_by_ssrc(struct port *p, uint32_t ssrc)
{
	for (size_t i = 0; i < p->n_outs; i++)
		if (p->outs[i]->spec.ssrc == ssrc)
			return p->outs[i];
	return NULL;
}

/*
 * RFC 4588 4: a retransmission on the subscriber's RTX stream: the RTX
 * SSRC and PT, the RTX stream's own sequence number, the original
 * timestamp, and the original sequence number (OSN) in front of the
 * original payload. Padding is not carried over.
 */
static void send_rtx(struct cv_switch *sw, struct out *o,
		     const struct cv_rtp_hdr *h)
{
	struct cv_pkt *e = cv_pkt_alloc(sw->pool);
	if (!e) {
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	if (CV_RTP_HDR_MIN + 2 + h->payload_len > cv_pkt_tailroom(e)) {
		cv_pkt_free(e);
		return;
	}
	uint8_t *d = e->data;
	uint16_t osn = (uint16_t)(h->seq + o->seq_delta);
	d[0] = 0x80;
	d[1] = (uint8_t)((h->marker ? 0x80 : 0) | (o->spec.rtx_pt & 0x7f));
	cv_rtp_set_seq(d, o->rtx_seq++);
	cv_rtp_set_ts(d, h->ts + o->ts_delta);
	cv_rtp_set_ssrc(d, o->spec.rtx_ssrc);
	d[CV_RTP_HDR_MIN] = (uint8_t)(osn >> 8);
	d[CV_RTP_HDR_MIN + 1] = (uint8_t)osn;
	memcpy(d + CV_RTP_HDR_MIN + 2, h->payload, h->payload_len);
	e->len = CV_RTP_HDR_MIN + 2 + h->payload_len;
	send_protected(sw, o->sub, e, false);
}

/* Takes a token for resending seq unless the budget is spent or seq was
 * resent within RTX_REPEAT_MS. */
static bool rtx_allowed(struct out *o, uint16_t seq, uint64_t now)
{
	for (unsigned i = 0; i < RTX_RECENT; i++)
		if (o->rtx_recent[i] == seq && o->rtx_recent_ms[i] &&
		    now - o->rtx_recent_ms[i] < RTX_REPEAT_MS)
			return false;
	uint64_t refill = (now - o->rtx_refill_ms) * RTX_PER_SEC / 1000;
	if (refill) {
		o->rtx_tokens = (uint32_t)(o->rtx_tokens + refill > RTX_BURST
						   ? RTX_BURST
						   : o->rtx_tokens + refill);
		o->rtx_refill_ms = now;
	}
	if (o->rtx_tokens == 0)
		return false;
	o->rtx_tokens--;
	o->rtx_recent[o->rtx_recent_pos] = seq;
	o->rtx_recent_ms[o->rtx_recent_pos] = now;
	o->rtx_recent_pos = (o->rtx_recent_pos + 1) % RTX_RECENT;
	return true;
}

/* RFC 4585 6.2.1: resend what the cache still holds: on the RTX stream
 * when negotiated, else as it was sent. */
static void answer_nack(struct cv_switch *sw, struct out *o,
			const struct cv_rtcp_pkt *fb)
{
	uint16_t lost[17 * 16];
	size_t n =
		cv_rtcp_nack_expand(fb, lost, sizeof(lost) / sizeof(lost[0]));
	uint64_t now = cv_loop_now_ms(sw->loop);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *cached;
		size_t len;
		uint16_t in_seq;
		count(&sw->stats.nack_received, 1);
		if (!in_seq_of(o, lost[i], &in_seq) || !o->track->cache ||
		    cv_nack_cache_get(o->track->cache, in_seq, now,
				      NACK_MAX_AGE_MS, &cached, &len) != 0)
			continue;
		if (!rtx_allowed(o, lost[i], now)) {
			count(&sw->stats.rtx_suppressed, 1);
			continue;
		}
		if (o->sub->perc) {
			repair_perc(sw, o, cached, len, lost[i]);
			continue;
		}
		struct cv_rtp_hdr h;
		if (cv_rtp_parse(cached, len, &h) != 0)
			continue;
		count(&sw->stats.rtx_sent, 1);
		if (o->spec.rtx_pt && o->spec.rtx_ssrc)
			send_rtx(sw, o, &h);
		else
			resend_one(sw, o, &h, cached, len, lost[i]);
	}
}

/* RFC 5104 4.3.1.2: a FIR's media SSRC field is 0; each FCI entry names
 * the stream it wants a keyframe of. */
static void on_fir(struct cv_switch *sw, struct port *p,
		   const struct cv_rtcp_pkt *r)
{
	for (size_t i = 0; i < r->u.fir.entry_count; i++) {
		struct cv_rtcp_fir_entry e;
		cv_rtcp_fir_entry(r, i, &e);
		struct out *o = out_by_ssrc(p, e.ssrc);
		if (o)
			request_keyframe(sw, o->track);
	}
}

static void on_feedback(struct cv_switch *sw, struct port *p,
			const struct cv_rtcp_pkt *r)
{
	if (r->kind == CV_RTCP_KIND_FIR) {
		on_fir(sw, p, r);
		return;
	}
	struct out *o = out_by_ssrc(p, r->media_ssrc);
	if (!o)
		return;
	switch (r->kind) {
	case CV_RTCP_KIND_PLI:
		request_keyframe(sw, o->track);
		break;
	case CV_RTCP_KIND_NACK:
		answer_nack(sw, o, r);
		break;
	default:
		break;
	}
}

static void on_rtcp(struct cv_switch *sw, struct port *p, struct cv_pkt *pkt)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt r;
	int rc;
	count(&sw->stats.rtcp_in, 1);
	cv_rtcp_iter_init(&it, pkt->data, pkt->len);
	while ((rc = cv_rtcp_iter_next(&it, &r)) > 0) {
		switch (r.kind) {
		case CV_RTCP_KIND_PLI:
		case CV_RTCP_KIND_FIR:
		case CV_RTCP_KIND_NACK:
			on_feedback(sw, p, &r);
			break;
		default:
			/* SR, RR, SDES, BYE, REMB, transport-cc: terminated
			 * here; the node's own reports go out on a timer. */
			break;
		}
	}
	if (rc < 0)
		drop(sw, CV_DROP_RTCP_MALFORMED);
}

/* ---- ingress: demux ---- */

static void on_srtp(struct cv_switch *sw, struct cv_pkt *pkt)
{
	struct port *p = port_by_addr(sw, &pkt->addr);
	if (!p) {
		drop(sw, CV_DROP_UNKNOWN_ADDRESS);
		return;
	}
	bool rtcp = cv_rtp_is_rtcp(pkt->data, pkt->len);
	enum cv_drop why;
	if (p->perc && !rtcp) {
		on_perc_rtp(sw, p, pkt);
		return;
	}
	if (cv_transport_unprotect(p->t, pkt, rtcp, &why) != 0) {
		drop(sw, why);
		return;
	}
	if (rtcp)
		on_rtcp(sw, p, pkt);
	else
		on_rtp(sw, p, pkt);
}

/*
 * A STUN binding request is matched first by 5-tuple, then by the local
 * ufrag in USERNAME: that is how a new (or moved) peer is found. A request
 * whose ufrag is unknown gets no answer at all (RFC 8445 7.3: the node
 * only answers checks for sessions it signaled).
 */
static void on_stun(struct cv_switch *sw, struct cv_pkt *pkt)
{
	const uint8_t *ufrag;
	size_t ufrag_len;
	struct port *p = NULL;
	if (cv_stun_local_ufrag(pkt->data, pkt->len, &ufrag, &ufrag_len) == 0)
		p = port_by_ufrag(sw, ufrag, ufrag_len);
	if (!p) {
		drop(sw, cv_stun_is_stun(pkt->data, pkt->len)
				 ? CV_DROP_STUN_UNKNOWN_UFRAG
				 : CV_DROP_STUN_MALFORMED);
		return;
	}
	enum cv_drop why;
	if (cv_transport_handle_stun(p->t, pkt, cv_loop_now_ms(sw->loop),
				     &why) != 0)
		drop(sw, why);
	else
		count(&sw->stats.stun_answered, 1);
}

static void on_dtls(struct cv_switch *sw, struct cv_pkt *pkt)
{
	struct port *p = port_by_addr(sw, &pkt->addr);
	if (!p) {
		drop(sw, CV_DROP_UNKNOWN_ADDRESS);
		return;
	}
	cv_transport_handle_dtls(p->t, pkt, cv_loop_now_ms(sw->loop));
}

static void route_datagram(struct cv_switch *sw, struct cv_pkt *pkt)
{
	switch (cv_demux_classify(pkt->data, pkt->len)) {
	case CV_DEMUX_STUN:
		on_stun(sw, pkt);
		break;
	case CV_DEMUX_DTLS:
		on_dtls(sw, pkt);
		break;
	case CV_DEMUX_RTP:
		on_srtp(sw, pkt);
		break;
	default:
		drop(sw, CV_DROP_DEMUX_OTHER);
		break;
	}
}

void cv_switch_inject(struct cv_switch *sw, struct cv_pkt *pkt)
{
	count(&sw->stats.rx_datagrams, 1);
	count(&sw->stats.rx_bytes, pkt->len);
	route_datagram(sw, pkt);
	cv_pkt_free(pkt);
	egress_flush(sw);
}

static void on_socket_readable(void *arg, uint32_t events)
{
	struct cv_switch *sw = arg;
	struct cv_pkt *pkts[CV_UDP_BATCH];
	(void)events;
	for (int rounds = 0; rounds < 16; rounds++) {
		uint64_t before_trunc = sw->udp.stats.rx_truncated;
		int n = cv_udp_recv_batch(&sw->udp, sw->pool, pkts,
					  CV_UDP_BATCH,
					  cv_loop_now_us(sw->loop));
		if (sw->udp.stats.rx_truncated != before_trunc)
			count(&sw->stats.drops[CV_DROP_TRUNCATED],
			      sw->udp.stats.rx_truncated - before_trunc);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			count(&sw->stats.rx_datagrams, 1);
			count(&sw->stats.rx_bytes, pkts[i]->len);
			route_datagram(sw, pkts[i]);
			cv_pkt_free(pkts[i]);
		}
		egress_flush(sw);
		if (n < CV_UDP_BATCH)
			break;
	}
	egress_flush(sw);
}

/* ---- transport hooks ---- */

static void hook_send(void *arg, struct cv_transport *t, const uint8_t *buf,
		      size_t len, const struct sockaddr_storage *addr)
{
	struct cv_switch *sw = arg;
	(void)t;
	struct cv_pkt *pkt = cv_pkt_alloc(sw->pool);
	if (!pkt || len > cv_pkt_tailroom(pkt)) {
		cv_pkt_free(pkt);
		drop(sw, CV_DROP_EGRESS_NO_BUFFER);
		return;
	}
	memcpy(pkt->data, buf, len);
	pkt->len = len;
	pkt->addr = *addr;
	pkt->addr_len = addr->ss_family == AF_INET6
				? sizeof(struct sockaddr_in6)
				: sizeof(struct sockaddr_in);
	count(&sw->stats.tx_datagrams, 1);
	count(&sw->stats.tx_bytes, len);
	egress(sw, pkt);
}

/*
 * A transport's peer address changed. An address already mapped to
 * another transport is refused: a client that spoofs someone else's
 * source address in its own valid checks must not take their media.
 */
static int hook_address_changed(void *arg, struct cv_transport *t,
				const struct sockaddr_storage *old_addr,
				const struct sockaddr_storage *new_addr)
{
	struct cv_switch *sw = arg;
	struct port *p = port_by_id(sw, cv_transport_id(t));
	if (!p)
		return -ENOENT;
	struct port *owner = cv_addr_map_get(&sw->addrs, new_addr);
	if (owner && owner != p) {
		drop(sw, CV_DROP_ADDRESS_IN_USE);
		return -EADDRINUSE;
	}
	if (cv_addr_map_put(&sw->addrs, new_addr, p) != 0)
		return -ENOMEM;
	if (old_addr)
		cv_addr_map_del(&sw->addrs, old_addr, p);
	return 0;
}

static void hook_state(void *arg, struct cv_transport *t,
		       enum cv_transport_state st)
{
	struct cv_switch *sw = arg;
	struct port *p = port_by_id(sw, cv_transport_id(t));
	if (p && st == CV_TRANSPORT_CONNECTED) {
		/* A subscriber that just connected needs a keyframe of
		 * everything it receives. */
		for (size_t i = 0; i < p->n_outs; i++)
			request_keyframe(sw, p->outs[i]->track);
	}
	if (sw->cfg.events.transport_state)
		sw->cfg.events.transport_state(sw->cfg.events.arg,
					       cv_transport_id(t), st);
}

/* ---- reports ---- */

/*
 * Once a second: a receiver report to every publisher (RFC 3550 6.4.2)
 * and a sender report to every subscriber (6.4.1), so that both ends see
 * a live RTCP peer and can compute loss and RTT.
 */
static void send_receiver_report(struct cv_switch *sw, struct in_track *t)
{
	if (!t->seq_started || !cv_transport_connected(t->pub->t))
		return;
	struct cv_pkt *pkt = cv_pkt_alloc(sw->pool);
	if (!pkt)
		return;
	struct cv_rtcp_rb rb = {0};
	rb.ssrc = t->spec.ssrc;
	rb.ext_high_seq = cv_rtp_seq_ext_max(&t->seq);
	rb.cum_lost = cv_rtp_seq_lost(&t->seq);
	rb.fraction_lost = cv_rtp_seq_fraction_lost(&t->seq);
	rb.jitter = cv_rtp_seq_jitter(&t->seq);
	int n = cv_rtcp_write_rr(pkt->data, cv_pkt_tailroom(pkt),
				 NODE_RTCP_SSRC, &rb, 1);
	if (n < 0) {
		cv_pkt_free(pkt);
		return;
	}
	pkt->len = (size_t)n;
	send_protected(sw, t->pub, pkt, true);
}

static void send_sender_report(struct cv_switch *sw, struct out *o,
			       uint64_t wall_ms)
{
	if (!o->started || !cv_transport_connected(o->sub->t))
		return;
	struct cv_pkt *pkt = cv_pkt_alloc(sw->pool);
	if (!pkt)
		return;
	struct cv_rtcp_sr_info sr = {0};
	sr.ssrc = o->spec.ssrc;
	/* NTP: seconds since 1900 in the high word, fraction in the low. */
	uint64_t secs = wall_ms / 1000 + 2208988800u;
	uint64_t frac = ((wall_ms % 1000) << 32) / 1000;
	sr.ntp = (secs << 32) | frac;
	/* RFC 3550 6.4.1: the RTP time of the same instant as the NTP time:
	 * the last packet's timestamp moved on by the time since it left. */
	uint32_t rate = o->track->spec.clock_rate;
	uint64_t since_us = cv_loop_now_us(sw->loop) - o->last_arrival_us;
	sr.rtp_ts = o->last_ts + (uint32_t)(since_us * rate / 1000000u);
	sr.pkt_count = (uint32_t)o->packets;
	sr.octet_count = (uint32_t)o->octets;
	int n = cv_rtcp_write_sr(pkt->data, cv_pkt_tailroom(pkt), &sr, NULL, 0);
	if (n < 0) {
		cv_pkt_free(pkt);
		return;
	}
	pkt->len = (size_t)n;
	send_protected(sw, o->sub, pkt, true);
}

static void on_report_timer(void *arg)
{
	struct cv_switch *sw = arg;
	uint64_t wall = cv_clock_wall_ms();
	for (size_t i = 0; i < sw->n_ports; i++) {
		struct port *p = sw->ports[i];
		for (size_t j = 0; j < p->n_tracks; j++)
			send_receiver_report(sw, p->tracks[j]);
		for (size_t j = 0; j < p->n_outs; j++)
			send_sender_report(sw, p->outs[j], wall);
	}
	egress_flush(sw);
	cv_timer_start(sw->loop, &sw->report_timer,
		       cv_loop_now_ms(sw->loop) + 1000);
}

/* ---- the objects, on the worker thread ---- */

static void out_destroy(struct out *o)
{
	REMOVE(o->track->outs, o->track->n_outs, o);
	REMOVE(o->sub->outs, o->sub->n_outs, o);
	free(o);
}

static void track_destroy(struct in_track *t)
{
	cv_transport_forget_ssrc(t->pub->t, t->spec.ssrc);
	if (t->spec.rtx_ssrc)
		cv_transport_forget_ssrc(t->pub->t, t->spec.rtx_ssrc);
	while (t->n_outs)
		out_destroy(t->outs[0]);
	REMOVE(t->pub->tracks, t->pub->n_tracks, t);
	cv_nack_cache_destroy(t->cache);
	free(t->outs);
	free(t);
}

static void port_destroy(struct cv_switch *sw, struct port *p)
{
	while (p->n_tracks)
		track_destroy(p->tracks[0]);
	while (p->n_outs)
		out_destroy(p->outs[0]);
	REMOVE(sw->ports, sw->n_ports, p);
	const struct sockaddr_storage *peer = cv_transport_peer(p->t);
	if (peer)
		cv_addr_map_del(&sw->addrs, peer, p);
	cv_transport_destroy(p->t);
	free(p->tracks);
	free(p->outs);
	free(p);
	count(&sw->stats.transports, (uint64_t)-1);
}

static void do_add_transport(struct cv_switch *sw,
			     const struct cv_transport_spec *spec)
{
	if (port_by_id(sw, spec->id))
		return;
	struct port *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->id = spec->id;
	p->perc = spec->perc;
	struct cv_transport_hooks hooks = {
		.send = hook_send,
		.address_changed = hook_address_changed,
		.state = hook_state,
		.arg = sw,
	};
	if (cv_transport_create(&p->t, spec, sw->cfg.dtls, sw->kd, sw->loop,
				sw->cfg.consent_timeout_ms, &hooks) != 0 ||
	    PUSH(sw->ports, sw->n_ports, sw->cap_ports, p) != 0) {
		cv_transport_destroy(p->t);
		free(p);
		if (sw->cfg.events.transport_state)
			sw->cfg.events.transport_state(sw->cfg.events.arg,
						       spec->id,
						       CV_TRANSPORT_FAILED);
		return;
	}
	count(&sw->stats.transports, 1);
}

static void do_add_track(struct cv_switch *sw, const struct cv_track_spec *spec)
{
	struct port *p = port_by_id(sw, spec->transport_id);
	if (!p || track_by_id(sw, spec->track_id))
		return;
	struct in_track *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	t->id = spec->track_id;
	t->pub = p;
	t->spec = *spec;
	cv_loss_init(&t->loss);
	if (spec->video && sw->cfg.nack_cache_packets &&
	    cv_nack_cache_create(&t->cache, sw->cfg.nack_cache_packets) != 0)
		t->cache = NULL;
	if (PUSH(p->tracks, p->n_tracks, p->cap_tracks, t) != 0) {
		cv_nack_cache_destroy(t->cache);
		free(t);
	}
}

static void do_subscribe(struct cv_switch *sw, const struct cv_sub_spec *spec)
{
	struct in_track *t = track_by_id(sw, spec->track_id);
	struct port *sub = port_by_id(sw, spec->transport_id);
	/* A room is perc or not: never forward between the two. */
	if (!t || !sub || t->pub->perc != sub->perc)
		return;
	for (size_t i = 0; i < t->n_outs; i++)
		if (t->outs[i]->sub == sub)
			return;
	struct out *o = calloc(1, sizeof(*o));
	if (!o)
		return;
	o->track = t;
	o->sub = sub;
	o->spec = *spec;
	/* Random offsets (RFC 3550 5.1 asks for random initial values): a
	 * subscriber cannot infer the publisher's counters, and a later
	 * subscription starts from an unrelated point. */
	if (sub->perc) {
		/* Perc: SSRC and timestamp are covered end to end and SEQ
		 * changes only to close a gap the node made; no RTX. */
		o->spec.ssrc = t->spec.ssrc;
		o->spec.rtx_ssrc = 0;
		o->spec.rtx_pt = 0;
	} else {
		RAND_bytes((unsigned char *)&o->seq_delta,
			   sizeof(o->seq_delta));
		RAND_bytes((unsigned char *)&o->ts_delta, sizeof(o->ts_delta));
		RAND_bytes((unsigned char *)&o->rtx_seq, sizeof(o->rtx_seq));
	}
	o->rtx_tokens = RTX_BURST;
	o->rtx_refill_ms = cv_loop_now_ms(sw->loop);
	if (PUSH(t->outs, t->n_outs, t->cap_outs, o) != 0) {
		free(o);
		return;
	}
	if (PUSH(sub->outs, sub->n_outs, sub->cap_outs, o) != 0) {
		REMOVE(t->outs, t->n_outs, o);
		free(o);
		return;
	}
	if (cv_transport_connected(sub->t))
		request_keyframe(sw, t);
}

static void do_unsubscribe(struct cv_switch *sw, uint64_t track_id,
			   uint64_t transport_id)
{
	struct in_track *t = track_by_id(sw, track_id);
	if (!t)
		return;
	for (size_t i = 0; i < t->n_outs; i++) {
		if (t->outs[i]->sub->id == transport_id) {
			out_destroy(t->outs[i]);
			return;
		}
	}
}

static void do_pause(struct cv_switch *sw, uint64_t track_id,
		     uint64_t transport_id, bool paused)
{
	struct in_track *t = track_by_id(sw, track_id);
	if (!t)
		return;
	for (size_t i = 0; i < t->n_outs; i++) {
		struct out *o = t->outs[i];
		if (o->sub->id != transport_id || o->paused == paused)
			continue;
		o->paused = paused;
		if (!paused) {
			o->resync = true;
			request_keyframe(sw, t);
		}
		return;
	}
}

/* ---- commands from other threads ---- */

enum cmd_type {
	CMD_ADD_TRANSPORT,
	CMD_RESTART_ICE,
	CMD_REMOVE_TRANSPORT,
	CMD_ADD_TRACK,
	CMD_REMOVE_TRACK,
	CMD_SUBSCRIBE,
	CMD_UNSUBSCRIBE,
	CMD_PAUSE,
};

struct cmd {
	enum cmd_type type;
	uint64_t a, b;
	bool flag;
	union {
		struct cv_transport_spec transport;
		struct cv_track_spec track;
		struct cv_sub_spec sub;
	} u;
};

static void run_cmd(void *arg)
{
	struct cmd *c = arg;
	struct cv_worker *w = cv_worker_current();
	struct cv_switch *sw = w ? cv_worker_data(w) : NULL;
	struct port *p;
	struct in_track *t;
	if (!sw)
		goto out; /* the worker is shutting down */
	switch (c->type) {
	case CMD_ADD_TRANSPORT:
		do_add_transport(sw, &c->u.transport);
		break;
	case CMD_RESTART_ICE:
		p = port_by_id(sw, c->u.transport.id);
		if (p)
			cv_transport_restart_ice(p->t, &c->u.transport);
		break;
	case CMD_REMOVE_TRANSPORT:
		p = port_by_id(sw, c->a);
		if (p)
			port_destroy(sw, p);
		break;
	case CMD_ADD_TRACK:
		do_add_track(sw, &c->u.track);
		break;
	case CMD_REMOVE_TRACK:
		t = track_by_id(sw, c->a);
		if (t)
			track_destroy(t);
		break;
	case CMD_SUBSCRIBE:
		do_subscribe(sw, &c->u.sub);
		break;
	case CMD_UNSUBSCRIBE:
		do_unsubscribe(sw, c->a, c->b);
		break;
	case CMD_PAUSE:
		do_pause(sw, c->a, c->b, c->flag);
		break;
	}
	egress_flush(sw);
out:
	/* Specs may hold ICE passwords: wipe before freeing. */
	memset(c, 0, sizeof(*c));
	free(c);
}

static int post(struct cv_worker *w, struct cmd *c)
{
	int err = cv_worker_post(w, run_cmd, c);
	if (err) {
		memset(c, 0, sizeof(*c));
		free(c);
	}
	return err;
}

static struct cmd *cmd_new(enum cmd_type type)
{
	struct cmd *c = calloc(1, sizeof(*c));
	if (c)
		c->type = type;
	return c;
}

int cv_switch_cmd_add_transport(struct cv_worker *w,
				const struct cv_transport_spec *spec)
{
	struct cmd *c = cmd_new(CMD_ADD_TRANSPORT);
	if (!c)
		return -ENOMEM;
	c->u.transport = *spec;
	return post(w, c);
}

int cv_switch_cmd_restart_ice(struct cv_worker *w,
			      const struct cv_transport_spec *spec)
{
	struct cmd *c = cmd_new(CMD_RESTART_ICE);
	if (!c)
		return -ENOMEM;
	c->u.transport = *spec;
	return post(w, c);
}

int cv_switch_cmd_remove_transport(struct cv_worker *w, uint64_t id)
{
	struct cmd *c = cmd_new(CMD_REMOVE_TRANSPORT);
	if (!c)
		return -ENOMEM;
	c->a = id;
	return post(w, c);
}

int cv_switch_cmd_add_track(struct cv_worker *w,
			    const struct cv_track_spec *spec)
{
	struct cmd *c = cmd_new(CMD_ADD_TRACK);
	if (!c)
		return -ENOMEM;
	c->u.track = *spec;
	return post(w, c);
}

int cv_switch_cmd_remove_track(struct cv_worker *w, uint64_t track_id)
{
	struct cmd *c = cmd_new(CMD_REMOVE_TRACK);
	if (!c)
		return -ENOMEM;
	c->a = track_id;
	return post(w, c);
}

int cv_switch_cmd_subscribe(struct cv_worker *w, const struct cv_sub_spec *spec)
{
	struct cmd *c = cmd_new(CMD_SUBSCRIBE);
	if (!c)
		return -ENOMEM;
	c->u.sub = *spec;
	return post(w, c);
}

int cv_switch_cmd_unsubscribe(struct cv_worker *w, uint64_t track_id,
			      uint64_t transport_id)
{
	struct cmd *c = cmd_new(CMD_UNSUBSCRIBE);
	if (!c)
		return -ENOMEM;
	c->a = track_id;
	c->b = transport_id;
	return post(w, c);
}

int cv_switch_cmd_pause(struct cv_worker *w, uint64_t track_id,
			uint64_t transport_id, bool paused)
{
	struct cmd *c = cmd_new(CMD_PAUSE);
	if (!c)
		return -ENOMEM;
	c->a = track_id;
	c->b = transport_id;
	c->flag = paused;
	return post(w, c);
}

/* ---- the Key Distributor link (perc), on the worker thread ---- */

static void kd_on_up(void *arg)
{
	struct cv_switch *sw = arg;
	__atomic_store_n(&sw->kd_up, true, __ATOMIC_RELEASE);
}

static void kd_on_down(void *arg, int err)
{
	struct cv_switch *sw = arg;
	__atomic_store_n(&sw->kd_up, false, __ATOMIC_RELEASE);
	/* Handshakes in progress fail (the KD lost their state); keyed
	 * transports keep their hop keys and their media. */
	for (size_t i = 0; i < sw->n_ports; i++)
		if (sw->ports[i]->perc)
			cv_transport_tunnel_down(sw->ports[i]->t, err);
	egress_flush(sw);
}

/* TunneledDtls and MediaKeys go to the transport of their association
 * id (a linear scan: only handshakes send these). */
static void kd_on_message(void *arg, const struct cv_tunnel_msg *m)
{
	struct cv_switch *sw = arg;
	const struct cv_tunnel_assoc_id *id =
		m->type == CV_TUNNEL_MEDIA_KEYS	     ? &m->u.keys.assoc
		: m->type == CV_TUNNEL_TUNNELED_DTLS ? &m->u.dtls.assoc
						     : NULL;
	if (!id)
		return;
	for (size_t i = 0; i < sw->n_ports; i++) {
		const struct cv_tunnel_assoc_id *a;
		if (!sw->ports[i]->perc)
			continue;
		a = cv_transport_assoc(sw->ports[i]->t);
		if (a && memcmp(a->b, id->b, sizeof(id->b)) == 0) {
			cv_transport_tunnel_message(sw->ports[i]->t, m);
			break;
		}
	}
	egress_flush(sw);
}

/* ---- lifecycle ---- */

int cv_switch_create(struct cv_switch **out, struct cv_worker *w,
		     const struct cv_switch_config *cfg)
{
	struct cv_switch *sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->worker = w;
	sw->loop = cv_worker_loop(w);
	sw->pool = cv_worker_pool(w);
	sw->cfg = *cfg;
	sw->cfg.kd = NULL; /* borrowed: read below, not kept */
	sw->cfg.perc_fault = NULL;
	sw->udp.fd = -1;
#ifdef CV_PERC_FAULTY_NODE
	{
		const char *f = cfg->perc_fault ? cfg->perc_fault
						: getenv("CONCLAVE_PERC_FAULT");
		if (cv_perc_fault_parse(f, &sw->fault) != 0) {
			free(sw);
			return -EINVAL;
		}
	}
#else
	if (cfg->perc_fault && cfg->perc_fault[0]) {
		free(sw);
		return CV_EUNSUPP;
	}
#endif
	if (cv_addr_map_init(&sw->addrs, 64) != 0) {
		free(sw);
		return -ENOMEM;
	}
	if (cfg->media_address) {
		int err = cv_udp_open(&sw->udp, cfg->media_address, cfg->port);
		if (err) {
			cv_addr_map_fini(&sw->addrs);
			free(sw);
			return err;
		}
		sw->udp_io.fd = sw->udp.fd;
		sw->udp_io.fn = on_socket_readable;
		sw->udp_io.arg = sw;
		err = cv_loop_add_io(sw->loop, &sw->udp_io, EPOLLIN);
		if (err) {
			cv_udp_close(&sw->udp);
			cv_addr_map_fini(&sw->addrs);
			free(sw);
			return err;
		}
	}
	if (cfg->kd) {
		struct cv_tunnel_link_callbacks cb = {
			.on_up = kd_on_up,
			.on_down = kd_on_down,
			.on_message = kd_on_message,
			.arg = sw,
		};
		int err =
			cv_tunnel_link_create(&sw->kd, sw->loop, cfg->kd, &cb);
		if (err) {
			if (sw->udp.fd >= 0) {
				cv_loop_del_io(sw->loop, &sw->udp_io);
				cv_udp_close(&sw->udp);
			}
			cv_addr_map_fini(&sw->addrs);
			free(sw);
			return err;
		}
	}
	sw->cfg.dtls = cv_dtls_ctx_ref(cfg->dtls);
	cv_timer_init(&sw->report_timer, on_report_timer, sw);
	cv_timer_start(sw->loop, &sw->report_timer,
		       cv_loop_now_ms(sw->loop) + 1000);
	*out = sw;
	return 0;
}

void cv_switch_destroy(struct cv_switch *sw)
{
	if (!sw)
		return;
	while (sw->n_ports)
		port_destroy(sw, sw->ports[0]);
	free(sw->ports);
	/* After the ports: their EndpointDisconnects go out first. */
	cv_tunnel_link_destroy(sw->kd);
	cv_addr_map_fini(&sw->addrs);
	cv_timer_stop(sw->loop, &sw->report_timer);
	if (sw->udp.fd >= 0) {
		cv_loop_del_io(sw->loop, &sw->udp_io);
		cv_udp_close(&sw->udp);
	}
	cv_dtls_ctx_unref(sw->cfg.dtls);
	free(sw);
}
