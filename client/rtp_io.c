/*
 * The media path of one endpoint: Opus and VP8-shaped sources on the
 * publish connection, sinks and feedback (NACK, PLI) on the subscribe
 * connection, NACK/PLI handling from the node.
 *
 * Packets are built and protected in stack buffers; the only stored
 * packets are the last CV_CLIENT_RTX_HISTORY video packets for NACK.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "client/endpoint.h"
#include "conclave/err.h"
#include "conclave/rtcp.h"

#define MAX_CATCH_UP_US 200000 /* later than this: skip, do not burst */
#define PLI_INTERVAL_US 500000
#define MAX_NACK_GAP	32
#define NACK_RETRY_US	50000 /* about one loopback-to-WAN RTT */
#define NACK_TRIES	3

static void nack_retry(struct cv_client *c, struct cv_client_sink *s,
		       uint64_t now_us);

uint64_t cv_client_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Protects buf[0..len) (RTP) with pc's outbound session and sends it. */
static int protect_send(struct cv_client_pc *pc, uint8_t *buf, size_t len,
			size_t cap, bool rtcp)
{
	int rc = rtcp ? cv_srtp_protect_rtcp(pc->tx, buf, &len, cap)
		      : cv_srtp_protect(pc->tx, buf, &len, cap);
	if (rc)
		return rc;
	return cv_client_pc_send(pc, buf, len);
}

/* Room a packet we build may take: perc adds the double transform's
 * overhead, forward rooms the SRTP trailer. */
static size_t build_cap(const struct cv_client *c)
{
	return CV_CLIENT_PKT_CAP - (c->perc.enabled
					    ? CV_PERC_E2E_MAX_OVERHEAD_BYTES
					    : CV_SRTP_MAX_TRAILER_BYTES);
}

/* Protects one of our RTP packets (perc: double SRTP; else the hop's
 * SRTP) in place; *len becomes the protected length. */
static int protect_rtp(struct cv_client *c, uint32_t ssrc, uint8_t *buf,
		       size_t *len, size_t cap)
{
	if (c->perc.enabled)
		return cv_client_perc_protect(c, ssrc, buf, len, cap);
	return cv_srtp_protect(c->pub.tx, buf, len, cap);
}

/*
 * Builds one RTP packet: header with the MID and abs-send-time
 * extensions, payload, and the send stamp as padding (check: the perc
 * check block, CV_CLIENT_CHECK_STAMP_BYTES). Returns its length or a
 * negative error.
 */
static int build_rtp(uint8_t *buf, size_t cap, uint8_t pt, bool marker,
		     uint16_t seq, uint32_t ts, uint32_t ssrc, const char *mid,
		     const uint8_t *payload, size_t payload_len,
		     uint64_t now_us, bool check)
{
	uint8_t abs[3];
	cv_rtp_ext_put_abs_send_time(abs, cv_rtp_abs_send_time_from_us(now_us));
	struct cv_rtp_ext_elem ext[2] = {
		{CV_CLIENT_EXT_MID, (const uint8_t *)mid, strlen(mid)},
		{CV_CLIENT_EXT_ABS_SEND_TIME, abs, sizeof(abs)},
	};
	struct cv_rtp_hdr h = {
		.padding = true,
		.marker = marker,
		.pt = pt,
		.seq = seq,
		.ts = ts,
		.ssrc = ssrc,
	};
	int n = cv_rtp_write_header(buf, cap, &h, ext, 2);
	if (n < 0)
		return n;
	size_t len = (size_t)n;
	size_t stamp =
		check ? CV_CLIENT_CHECK_STAMP_BYTES : CV_CLIENT_STAMP_BYTES;
	if (len + payload_len + stamp > cap)
		return -ENOBUFS;
	if (payload != buf + len)
		memmove(buf + len, payload, payload_len);
	if (check)
		cv_client_check_stamp_put(buf + len + payload_len, &h,
					  buf + len, payload_len, now_us);
	else
		cv_client_stamp_put(buf + len + payload_len, now_us);
	return (int)(len + payload_len + stamp);
}

static void send_audio(struct cv_client *c, uint64_t now_us)
{
	_Alignas(8) uint8_t buf[CV_CLIENT_PKT_CAP];
	size_t i = c->opus_idx++ % CV_CLIENT_OPUS_RING;
	int n = build_rtp(buf, build_cap(c), CV_CLIENT_PT_OPUS, false,
			  c->a_seq++, c->a_ts, c->a_ssrc, "a0",
			  c->loop->opus[i], c->loop->opus_len[i], now_us,
			  c->perc.enabled);
	c->a_ts += 960; /* 20 ms at 48 kHz */
	if (n < 0)
		return;
	c->sent.audio_packets++;
	c->sent.bytes += (uint64_t)n;
	size_t len = (size_t)n;
	if (!protect_rtp(c, c->a_ssrc, buf, &len, sizeof(buf)))
		cv_client_pc_send(&c->pub, buf, len);
}

static void remember(struct cv_client *c, const uint8_t *pkt, size_t len,
		     uint16_t seq)
{
	struct cv_client_sent_pkt *h = &c->history[seq % CV_CLIENT_RTX_HISTORY];
	h->seq = seq;
	h->len = (uint16_t)len;
	memcpy(h->data, pkt, len);
}

static void send_video_frame(struct cv_client *c, uint64_t now_us)
{
	bool key = c->key_wanted ||
		   now_us - c->last_key_us >=
			   (uint64_t)c->keyframe_interval_ms * 1000;
	size_t bytes = c->video_bitrate_bps / 8 / c->video_fps;
	if (key) {
		/* A keyframe is larger; the bitrate is an average. */
		bytes *= 3;
		c->key_wanted = false;
		c->last_key_us = now_us;
		c->sent.keyframes++;
	}
	struct cv_client_vp8_frame f = {
		.bytes = bytes,
		.keyframe = key,
		.picture_id = c->picture_id,
		.width = 640,
		.height = 360,
	};
	c->picture_id = (c->picture_id + 1) & 0x7fff;
	size_t count = cv_client_vp8_packets(bytes, CV_CLIENT_MAX_PAYLOAD);
	for (size_t i = 0; i < count; i++) {
		_Alignas(8) uint8_t pay[CV_CLIENT_MAX_PAYLOAD];
		_Alignas(8) uint8_t buf[CV_CLIENT_PKT_CAP];
		int pl = cv_client_vp8_write(pay, sizeof(pay), &f, i,
					     CV_CLIENT_MAX_PAYLOAD);
		if (pl < 0)
			return;
		uint16_t seq = c->v_seq++;
		int n = build_rtp(buf, build_cap(c), CV_CLIENT_PT_VP8,
				  i + 1 == count, seq, c->v_ts, c->v_ssrc, "v0",
				  pay, (size_t)pl, now_us, c->perc.enabled);
		if (n < 0)
			return;
		c->sent.video_packets++;
		c->sent.bytes += (uint64_t)n;
		size_t len = (size_t)n;
		/* Forward rooms keep the plain packet and protect it again
		 * for a NACK; perc keeps the protected bytes, so that a
		 * repair is the identical packet (same inner ciphertext,
		 * same EKTField) that the node did not get. */
		if (!c->perc.enabled)
			remember(c, buf, len, seq);
		if (protect_rtp(c, c->v_ssrc, buf, &len, sizeof(buf)))
			continue;
		if (c->perc.enabled)
			remember(c, buf, len, seq);
		if (c->tx_loss > 0 && g_rand_double(c->rand) < c->tx_loss) {
			c->sent.tx_impair_dropped++;
			continue; /* "lost" on the way: the node will NACK */
		}
		cv_client_pc_send(&c->pub, buf, len);
	}
	c->v_ts += 90000 / c->video_fps;
	c->sent.video_frames++;
}

/* NACK retries, and PLIs for sinks still waiting for a keyframe (RFC
 * 4585 6.3.1). */
static void sink_feedback(struct cv_client *c, uint64_t now_us)
{
	for (size_t i = 0; i < c->n_sinks; i++) {
		struct cv_client_sink *s = &c->sinks[i];
		if (s->n_nack)
			nack_retry(c, s, now_us);
		if (!s->waiting_keyframe ||
		    now_us - s->last_pli_us < PLI_INTERVAL_US)
			continue;
		_Alignas(8) uint8_t buf[64];
		int n = cv_rtcp_write_pli(buf, 64 - CV_SRTP_MAX_TRAILER_BYTES,
					  c->fb_ssrc, s->ssrc);
		if (n > 0 &&
		    !protect_send(&c->sub, buf, (size_t)n, sizeof(buf), true))
			s->plis_sent++;
		s->last_pli_us = now_us;
	}
}

void cv_client_media_tick(struct cv_client *c, uint64_t now_us)
{
	if (c->pub.dtls_up) {
		if (now_us - c->next_audio_us > MAX_CATCH_UP_US &&
		    now_us > c->next_audio_us)
			c->next_audio_us = now_us;
		while (c->audio && now_us >= c->next_audio_us) {
			send_audio(c, now_us);
			c->next_audio_us += 20000;
		}
		uint64_t frame_us = 1000000u / c->video_fps;
		if (now_us - c->next_video_us > MAX_CATCH_UP_US &&
		    now_us > c->next_video_us)
			c->next_video_us = now_us;
		while (c->video && now_us >= c->next_video_us) {
			send_video_frame(c, now_us);
			c->next_video_us += frame_us;
		}
	}
	if (c->sub.dtls_up)
		sink_feedback(c, now_us);
}

/* ---- Receiving ---- */

/* RFC 4585 6.2.1: asks the node to repeat lost[0..n). */
static void send_nack(struct cv_client *c, struct cv_client_sink *s,
		      const uint16_t *lost, size_t n)
{
	_Alignas(8) uint8_t buf[512];
	int len =
		cv_rtcp_write_nack(buf, sizeof(buf) - CV_SRTP_MAX_TRAILER_BYTES,
				   c->fb_ssrc, s->ssrc, lost, n);
	if (len > 0 &&
	    !protect_send(&c->sub, buf, (size_t)len, sizeof(buf), true))
		s->nacks_sent++;
}

/* A gap of `gap` packets before ext: NACK them and remember them so that
 * the tick asks again if a retransmission is lost too. */
static void nack_gap(struct cv_client *c, struct cv_client_sink *s,
		     uint64_t ext, uint32_t gap, uint64_t now_us)
{
	uint16_t lost[MAX_NACK_GAP];
	size_t n = 0;
	for (uint64_t e = ext - gap; e < ext && n < MAX_NACK_GAP; e++) {
		lost[n++] = (uint16_t)e;
		if (s->n_nack < CV_CLIENT_NACK_PENDING)
			s->nack[s->n_nack++] = (struct cv_client_nack){
				.ext = e, .sent_us = now_us, .tries = 1};
	}
	send_nack(c, s, lost, n);
}

/* Re-asks for NACKed packets that did not come within NACK_RETRY_US. */
static void nack_retry(struct cv_client *c, struct cv_client_sink *s,
		       uint64_t now_us)
{
	uint16_t lost[CV_CLIENT_NACK_PENDING];
	size_t n = 0, keep = 0;
	for (size_t i = 0; i < s->n_nack; i++) {
		struct cv_client_nack *p = &s->nack[i];
		if (cv_client_seq_seen(&s->seq, p->ext) ||
		    s->seq.max_ext - p->ext >= CV_CLIENT_SEQ_WINDOW / 2)
			continue; /* arrived, or too old to matter */
		if (now_us - p->sent_us >= NACK_RETRY_US) {
			if (p->tries >= NACK_TRIES)
				continue; /* given up: it stays lost */
			p->tries++;
			p->sent_us = now_us;
			lost[n++] = (uint16_t)p->ext;
		}
		s->nack[keep++] = *p;
	}
	s->n_nack = keep;
	if (n)
		send_nack(c, s, lost, n);
}

static void sink_video(struct cv_client_sink *s, const struct cv_rtp_hdr *h)
{
	struct cv_client_vp8_info v;
	if (cv_client_vp8_parse(h->payload, h->payload_len, &v))
		return;
	if (v.start && v.keyframe) {
		s->keyframes++;
		s->waiting_keyframe = false;
	}
	if (h->marker)
		s->frames++;
}

static void sink_packet(struct cv_client *c, struct cv_client_sink *s,
			const struct cv_rtp_hdr *h, const uint8_t *pkt,
			size_t len, uint64_t now_us)
{
	uint32_t gap;
	uint64_t ext;
	enum cv_client_seq_kind k =
		cv_client_seq_update(&s->seq, h->seq, &gap, &ext);
	if (k == CV_CLIENT_SEQ_DUP || k == CV_CLIENT_SEQ_TOO_OLD)
		return;
	s->bytes += h->payload_len;
	uint64_t sent;
	if (!cv_client_stamp_read(h, pkt, len, &sent) && now_us >= sent) {
		uint32_t d = now_us - sent < UINT32_MAX
				     ? (uint32_t)(now_us - sent)
				     : UINT32_MAX;
		cv_client_hist_add(&s->delay, d);
		cv_client_hist_add(&s->delay_iv, d);
	}
	if (k != CV_CLIENT_SEQ_LATE) {
		/* RFC 3550 A.8: interarrival jitter in timestamp units.
		 * Modulo 2^32, as the timestamps are: a wrap of the RTP
		 * timestamp must not look like a 2^32 jump in transit time. */
		uint32_t arrival =
			(uint32_t)(now_us * s->clock_rate / 1000000u);
		uint32_t transit = arrival - h->ts;
		if (s->have_transit) {
			int32_t d = (int32_t)(transit - (uint32_t)s->transit);
			int64_t ad = d < 0 ? -(int64_t)d : d;
			s->jitter += ((double)ad - s->jitter) / 16.0;
		}
		s->transit = transit;
		s->have_transit = true;
	}
	if (!s->video) {
		s->frames++;
		return;
	}
	if (k == CV_CLIENT_SEQ_GAP) {
		if (gap <= MAX_NACK_GAP) {
			nack_gap(c, s, ext, gap, now_us);
		} else if (!s->waiting_keyframe) {
			s->waiting_keyframe = true;
			s->keyframe_waits++;
		}
	}
	sink_video(s, h);
}

static struct cv_client_sink *find_sink(struct cv_client *c, uint32_t ssrc)
{
	for (size_t i = 0; i < c->n_sinks; i++)
		if (c->sinks[i].ssrc == ssrc)
			return &c->sinks[i];
	return NULL;
}

/* NACK from the node: resend from the history (same bytes, same seq). */
static void answer_nack(struct cv_client *c, const struct cv_rtcp_pkt *p)
{
	uint16_t lost[64];
	size_t n = cv_rtcp_nack_expand(p, lost, G_N_ELEMENTS(lost));
	c->sent.nacks_received++;
	for (size_t i = 0; c->history && i < n; i++) {
		struct cv_client_sent_pkt *h =
			&c->history[lost[i] % CV_CLIENT_RTX_HISTORY];
		if (!h->len || h->seq != lost[i])
			continue;
		if (c->perc.enabled) {
			if (!cv_client_pc_send(&c->pub, h->data, h->len)) {
				c->sent.retransmits++;
				c->perc.st.retransmits++;
			}
			continue;
		}
		_Alignas(8) uint8_t buf[CV_CLIENT_PKT_CAP];
		memcpy(buf, h->data, h->len);
		if (!protect_send(&c->pub, buf, h->len, sizeof(buf), false))
			c->sent.retransmits++;
	}
}

static void handle_rtcp(struct cv_client_pc *pc, const uint8_t *buf, size_t len)
{
	struct cv_client *c = pc->c;
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;
	cv_rtcp_iter_init(&it, buf, len);
	while (cv_rtcp_iter_next(&it, &p) > 0) {
		if (!pc->publish)
			continue; /* reports from the node: nothing to do */
		if (p.kind == CV_RTCP_KIND_NACK && p.media_ssrc == c->v_ssrc) {
			answer_nack(c, &p);
		} else if (p.kind == CV_RTCP_KIND_PLI ||
			   p.kind == CV_RTCP_KIND_FIR) {
			c->sent.plis_received++;
			c->key_wanted = true;
			/* A new decoder somewhere: in perc it needs our inner
			 * keys too, so resend the FullEKTField burst. */
			if (c->perc.enabled)
				cv_client_perc_announce(c);
		}
	}
}

void cv_client_media_recv(struct cv_client_pc *pc, uint8_t *buf, size_t len)
{
	struct cv_client *c = pc->c;
	if (cv_rtp_is_rtcp(buf, len)) {
		if (!cv_srtp_unprotect_rtcp(pc->rx, buf, &len))
			handle_rtcp(pc, buf, len);
		return;
	}
	if (pc->publish)
		return;
	uint16_t hop_seq = 0;
	if (c->perc.enabled) {
		/* Drops are counted by reason in the perc receiver. */
		if (cv_client_perc_unprotect(pc, buf, &len, &hop_seq))
			return;
	} else if (cv_srtp_unprotect(pc->rx, buf, &len)) {
		return;
	}
	uint64_t now = cv_client_now_us();
	struct cv_rtp_hdr h;
	if (cv_rtp_parse(buf, len, &h))
		return;
	if (c->perc.enabled) {
		/* Bit-exactness: what the sender built, byte for byte. */
		if (cv_client_check_stamp_verify(&h, buf, len))
			c->perc.st.payload_mismatch++;
		else
			c->perc.st.verified++;
		/* Continuity, loss and NACK are per hop: the node's SEQ. */
		h.seq = hop_seq;
	}
	struct cv_client_sink *s = find_sink(c, h.ssrc);
	if (!s) {
		c->unknown_ssrc++;
		return;
	}
	sink_packet(c, s, &h, buf, len, now);
}
