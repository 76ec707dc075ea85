/*
 * Client-side SDP: the publish offer and the subscribe answer. Text is
 * written with a bounded appender; any overflow makes the whole call fail
 * with -ENOBUFS (never a truncated description).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/client_priv.h"
#include "conclave/err.h"

#define URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define URI_ABS_SEND_TIME                                                      \
	"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

struct out {
	char *p;
	size_t cap, len;
	bool overflow;
};

__attribute__((format(printf, 2, 3))) static void add(struct out *o,
						      const char *fmt, ...)
{
	if (o->overflow)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->overflow = true;
		return;
	}
	o->len += (size_t)n;
}

static int finish(struct out *o)
{
	if (o->overflow) {
		if (o->cap)
			o->p[0] = '\0';
		return -ENOBUFS;
	}
	return (int)o->len;
}

static bool local_ok(const struct cv_client_sdp_local *l)
{
	return l && l->ice_ufrag && l->ice_pwd && l->fingerprint && l->cname &&
	       l->n_candidates <= CV_CLIENT_MAX_CANDIDATES;
}

/* Transport attributes every BUNDLEd m-section repeats (RFC 8843 7.1.3
 * would allow omitting them in all but the first; browsers repeat them). */
static void add_transport(struct out *o, const struct cv_client_sdp_local *l,
			  const char *setup)
{
	add(o, "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n");
	add(o, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", l->ice_ufrag, l->ice_pwd);
	add(o, "a=fingerprint:%s\r\na=setup:%s\r\n", l->fingerprint, setup);
	for (size_t i = 0; i < l->n_candidates; i++)
		add(o, "a=%s\r\n", l->candidates[i]);
	if (l->n_candidates)
		add(o, "a=end-of-candidates\r\n");
}

static void add_publish_mline(struct out *o,
			      const struct cv_client_sdp_local *l, bool video,
			      uint32_t ssrc)
{
	const char *mid = video ? "v0" : "a0";
	unsigned pt = video ? CV_CLIENT_PT_VP8 : CV_CLIENT_PT_OPUS;
	add(o, "m=%s 9 UDP/TLS/RTP/SAVPF %u\r\n", video ? "video" : "audio",
	    pt);
	add_transport(o, l, "actpass");
	add(o, "a=mid:%s\r\n", mid);
	add(o, "a=extmap:%d %s\r\na=extmap:%d %s\r\n", CV_CLIENT_EXT_MID,
	    URI_MID, CV_CLIENT_EXT_ABS_SEND_TIME, URI_ABS_SEND_TIME);
	add(o, "a=sendonly\r\na=msid:cv %s\r\na=rtcp-mux\r\na=rtcp-rsize\r\n",
	    mid);
	if (video) {
		add(o, "a=rtpmap:%u VP8/90000\r\n", pt);
		add(o,
		    "a=rtcp-fb:%u nack\r\na=rtcp-fb:%u nack pli\r\n"
		    "a=rtcp-fb:%u ccm fir\r\n",
		    pt, pt, pt);
	} else {
		/* RFC 7587 7: always opus/48000/2. */
		add(o, "a=rtpmap:%u opus/48000/2\r\n", pt);
		add(o, "a=fmtp:%u minptime=10;useinbandfec=1\r\n", pt);
	}
	add(o, "a=ssrc:%u cname:%s\r\na=ssrc:%u msid:cv %s\r\n", ssrc, l->cname,
	    ssrc, mid);
}

int cv_client_sdp_publish_offer(char *buf, size_t cap,
				const struct cv_client_sdp_local *l, bool audio,
				uint32_t audio_ssrc, bool video,
				uint32_t video_ssrc)
{
	if (!buf || !local_ok(l) || (!audio && !video))
		return -EINVAL;
	struct out o = {.p = buf, .cap = cap};
	add(&o, "v=0\r\no=- %llu 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
	    (unsigned long long)(l->session_id ? l->session_id : 1));
	/* RFC 8843 7.1: one BUNDLE group of every m-line. */
	add(&o, "a=group:BUNDLE%s%s\r\n", audio ? " a0" : "",
	    video ? " v0" : "");
	add(&o, "a=msid-semantic: WMS cv\r\n");
	if (audio)
		add_publish_mline(&o, l, false, audio_ssrc);
	if (video)
		add_publish_mline(&o, l, true, video_ssrc);
	return finish(&o);
}

/* The offer's format we receive: opus/48000 or VP8/90000, else NULL. */
static const struct cv_sdp_format *pick_format(const struct cv_sdp_media *m)
{
	for (size_t i = 0; i < m->n_formats; i++) {
		const struct cv_sdp_format *f = &m->formats[i];
		if (!f->encoding)
			continue;
		if (m->kind == CV_SDP_KIND_AUDIO &&
		    !strcasecmp(f->encoding, "opus") && f->clock_rate == 48000)
			return f;
		if (m->kind == CV_SDP_KIND_VIDEO &&
		    !strcasecmp(f->encoding, "VP8") && f->clock_rate == 90000)
			return f;
	}
	return NULL;
}

static uint32_t media_ssrc(const struct cv_sdp_media *m)
{
	/* RFC 5576 4.2 + RFC 4588 8.3: FID's first SSRC is the media one. */
	for (size_t i = 0; i < m->n_ssrc_groups; i++)
		if (!strcmp(m->ssrc_groups[i].semantics, "FID") &&
		    m->ssrc_groups[i].n_ssrcs >= 1)
			return m->ssrc_groups[i].ssrcs[0];
	return m->n_ssrcs ? m->ssrcs[0].ssrc : 0;
}

static void add_rejected(struct out *o, const struct cv_sdp_media *m)
{
	/* RFC 3264 6: a rejected stream keeps its m= line with port 0. */
	add(o, "m=%s 0 %s %s\r\nc=IN IP4 0.0.0.0\r\n", m->kind_name, m->proto,
	    m->fmt_raw ? m->fmt_raw : "0");
	if (m->mid)
		add(o, "a=mid:%s\r\n", m->mid);
	add(o, "a=inactive\r\n");
}

static void add_accepted(struct out *o, const struct cv_sdp_media *m,
			 const struct cv_sdp_format *f,
			 const struct cv_client_sdp_local *l, bool recv)
{
	add(o, "m=%s 9 %s %u\r\n", m->kind_name, m->proto, f->pt);
	/* RFC 8842 5.3: the offer is actpass; we are the DTLS client. */
	add_transport(o, l, "active");
	add(o, "a=mid:%s\r\n", m->mid);
	for (size_t i = 0; i < m->n_extmaps; i++)
		if (!strcmp(m->extmaps[i].uri, URI_MID) ||
		    !strcmp(m->extmaps[i].uri, URI_ABS_SEND_TIME))
			add(o, "a=extmap:%u %s\r\n", m->extmaps[i].id,
			    m->extmaps[i].uri);
	/* RFC 3264 6.1: sendonly is answered recvonly. */
	add(o, "a=%s\r\na=rtcp-mux\r\n", recv ? "recvonly" : "inactive");
	if (f->channels)
		add(o, "a=rtpmap:%u %s/%u/%u\r\n", f->pt, f->encoding,
		    f->clock_rate, f->channels);
	else
		add(o, "a=rtpmap:%u %s/%u\r\n", f->pt, f->encoding,
		    f->clock_rate);
	if (f->fmtp)
		add(o, "a=fmtp:%u %s\r\n", f->pt, f->fmtp);
	if (f->fb & CV_SDP_FB_NACK)
		add(o, "a=rtcp-fb:%u nack\r\n", f->pt);
	if (f->fb & CV_SDP_FB_NACK_PLI)
		add(o, "a=rtcp-fb:%u nack pli\r\n", f->pt);
	if (f->fb & CV_SDP_FB_CCM_FIR)
		add(o, "a=rtcp-fb:%u ccm fir\r\n", f->pt);
}

/* Decides one offered m-line; NULL format means rejected (port 0). */
static const struct cv_sdp_format *decide_sub(const struct cv_sdp_media *m,
					      struct cv_client_sub_mline *ml)
{
	memset(ml, 0, sizeof(*ml));
	if (m->mid)
		snprintf(ml->mid, sizeof(ml->mid), "%s", m->mid);
	ml->video = m->kind == CV_SDP_KIND_VIDEO;
	if (m->port == 0 || !m->mid || strcmp(m->proto, "UDP/TLS/RTP/SAVPF"))
		return NULL;
	const struct cv_sdp_format *f = pick_format(m);
	if (!f)
		return NULL;
	ml->pt = f->pt;
	ml->clock_rate = f->clock_rate;
	ml->active = m->dir == CV_SDP_DIR_SENDONLY ||
		     m->dir == CV_SDP_DIR_SENDRECV || m->dir == CV_SDP_DIR_NONE;
	ml->ssrc = ml->active ? media_ssrc(m) : 0;
	return f;
}

int cv_client_sdp_subscribe_answer(char *buf, size_t cap,
				   const struct cv_sdp *offer,
				   const struct cv_client_sdp_local *l,
				   struct cv_client_sub_mline *out,
				   size_t n_out, size_t *n_mlines)
{
	if (!buf || !offer || !local_ok(l) || (!out && n_out))
		return -EINVAL;
	if (offer->n_media > n_out)
		return -ENOBUFS;
	/* RFC 8829 5.3.1: an answer needs the offer's transport values. */
	if (offer->n_media &&
	    (!offer->has_bundle || !offer->media[0].ice_ufrag ||
	     !offer->media[0].ice_pwd || !offer->media[0].fingerprint.alg))
		return CV_EPROTO;
	const struct cv_sdp_format *fmts[CV_SDP_MAX_MEDIA];
	char bundle[CV_SDP_MAX_MEDIA * (CV_SDP_MAX_MID_BYTES + 1) + 1] = "";
	size_t blen = 0;
	for (size_t i = 0; i < offer->n_media; i++) {
		fmts[i] = decide_sub(&offer->media[i], &out[i]);
		if (!fmts[i])
			continue;
		int n = snprintf(bundle + blen, sizeof(bundle) - blen, " %s",
				 out[i].mid);
		if (n > 0)
			blen += (size_t)n;
	}
	struct out o = {.p = buf, .cap = cap};
	add(&o, "v=0\r\no=- %llu 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
	    (unsigned long long)(l->session_id ? l->session_id : 1));
	if (blen)
		add(&o, "a=group:BUNDLE%s\r\n", bundle);
	for (size_t i = 0; i < offer->n_media; i++) {
		if (fmts[i])
			add_accepted(&o, &offer->media[i], fmts[i], l,
				     out[i].active);
		else
			add_rejected(&o, &offer->media[i]);
	}
	if (n_mlines)
		*n_mlines = offer->n_media;
	return finish(&o);
}
