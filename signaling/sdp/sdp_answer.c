/*
 * The node's answer to a browser's publish offer (RFC 8829 5.3.1).
 *
 * Decide first, write second: every m-line gets a struct cv_sdp_pub_mline
 * saying what was chosen, and the writer only renders those decisions, so
 * the answer and the result the node acts on cannot disagree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conclave/err.h"
#include "sdp_util.h"

/*
 * Feedback the node really gives a publisher: NACK, PLI, FIR. Not
 * transport-cc nor goog-remb: the node generates neither yet, and
 * agreeing to them would leave the browser's bandwidth estimator waiting
 * for feedback that never comes (it then falls back to loss-based
 * estimation from our receiver reports).
 */
#define FB_KEPT (CV_SDP_FB_NACK | CV_SDP_FB_NACK_PLI | CV_SDP_FB_CCM_FIR)

static bool allowed(const struct cv_sdp_local *l, unsigned codec)
{
	return l->codecs == 0 || (l->codecs & codec);
}

static bool is_codec(const struct cv_sdp_format *f, const char *name,
		     uint32_t clock)
{
	return f->encoding && !strcasecmp(f->encoding, name) &&
	       f->clock_rate == clock;
}

/* Copies the value of `key` in an fmtp "k=v;k=v" list; false if absent. */
static bool fmtp_get(const char *fmtp, const char *key, char *val, size_t size)
{
	size_t klen = strlen(key);
	const char *s = fmtp;
	while (s && *s) {
		while (*s == ' ' || *s == ';')
			s++;
		size_t len = strcspn(s, ";");
		if (len > klen && s[klen] == '=' && !strncmp(s, key, klen)) {
			size_t vlen = len - klen - 1;
			if (vlen >= size)
				return false;
			memcpy(val, s + klen + 1, vlen);
			val[vlen] = '\0';
			return true;
		}
		s += len;
	}
	return false;
}

static bool is_hex6(const char *s)
{
	if (strlen(s) != 6)
		return false;
	for (int i = 0; i < 6; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

/* RFC 6184 8.1: the node takes packetization-mode=1 only and prefers
 * constrained baseline 3.1 (42e01f). */
static const struct cv_sdp_format *pick_h264(const struct cv_sdp_media *m,
					     char *plid)
{
	const struct cv_sdp_format *best = NULL;
	char best_plid[8] = "";
	for (size_t i = 0; i < m->n_formats; i++) {
		const struct cv_sdp_format *f = &m->formats[i];
		char pm[8], id[8];
		if (!is_codec(f, "H264", 90000) || !f->fmtp ||
		    !fmtp_get(f->fmtp, "packetization-mode", pm, sizeof(pm)) ||
		    strcmp(pm, "1"))
			continue;
		if (!fmtp_get(f->fmtp, "profile-level-id", id, sizeof(id)))
			strcpy(id, "42001f"); /* baseline default we accept */
		if (!is_hex6(id))
			continue;
		if (!best || (!strcasecmp(id, "42e01f") &&
			      strcasecmp(best_plid, "42e01f"))) {
			best = f;
			strcpy(best_plid, id);
		}
	}
	if (best)
		strcpy(plid, best_plid);
	return best;
}

static const struct cv_sdp_format *pick_codec(const struct cv_sdp_media *m,
					      const struct cv_sdp_local *l,
					      struct cv_sdp_pub_mline *ml)
{
	if (m->kind == CV_SDP_KIND_AUDIO) {
		for (size_t i = 0;
		     allowed(l, CV_SDP_CODEC_OPUS) && i < m->n_formats; i++) {
			const struct cv_sdp_format *f = &m->formats[i];
			/* RFC 7587 7: opus is always opus/48000/2. */
			if (is_codec(f, "opus", 48000) && f->channels == 2) {
				snprintf(ml->codec, sizeof(ml->codec), "opus");
				snprintf(ml->fmtp, sizeof(ml->fmtp),
					 "minptime=10;useinbandfec=1");
				return f;
			}
		}
		return NULL;
	}
	for (size_t i = 0; allowed(l, CV_SDP_CODEC_VP8) && i < m->n_formats;
	     i++) {
		if (is_codec(&m->formats[i], "VP8", 90000)) {
			snprintf(ml->codec, sizeof(ml->codec), "VP8");
			return &m->formats[i];
		}
	}
	char plid[8];
	const struct cv_sdp_format *f =
		allowed(l, CV_SDP_CODEC_H264) ? pick_h264(m, plid) : NULL;
	if (f) {
		snprintf(ml->codec, sizeof(ml->codec), "H264");
		snprintf(ml->fmtp, sizeof(ml->fmtp),
			 "level-asymmetry-allowed=1;packetization-mode=1;"
			 "profile-level-id=%s",
			 plid);
	}
	return f;
}

static void pick_extensions(const struct cv_sdp_media *m,
			    struct cv_sdp_pub_mline *ml)
{
	for (size_t i = 0; i < m->n_extmaps; i++) {
		const struct cv_sdp_extmap *e = &m->extmaps[i];
		if (!strcmp(e->uri, CV_SDP_URI_MID))
			ml->ext_mid = e->id;
		else if (!strcmp(e->uri, CV_SDP_URI_ABS_SEND_TIME))
			ml->ext_abs_send_time = e->id;
		/* transport-wide-cc: not taken, see FB_KEPT. */
		else if (!strcmp(e->uri, CV_SDP_URI_AUDIO_LEVEL) &&
			 m->kind == CV_SDP_KIND_AUDIO)
			ml->ext_audio_level = e->id;
		else if (!strcmp(e->uri, CV_SDP_URI_RID) &&
			 m->kind == CV_SDP_KIND_VIDEO)
			ml->ext_rid = e->id;
		else if (!strcmp(e->uri, CV_SDP_URI_RRID) &&
			 m->kind == CV_SDP_KIND_VIDEO)
			ml->ext_rrid = e->id;
	}
}

static void pick_ssrcs(const struct cv_sdp_media *m,
		       struct cv_sdp_pub_mline *ml)
{
	/* RFC 5576 4.2 + RFC 4588 8.3: FID pairs media and rtx SSRCs. */
	for (size_t i = 0; i < m->n_ssrc_groups; i++) {
		const struct cv_sdp_ssrc_group *g = &m->ssrc_groups[i];
		if (!strcmp(g->semantics, "FID") && g->n_ssrcs == 2) {
			ml->ssrc = g->ssrcs[0];
			ml->rtx_ssrc = g->ssrcs[1];
			return;
		}
	}
	for (size_t i = 0; i < m->n_ssrc_groups; i++)
		if (!strcmp(m->ssrc_groups[i].semantics, "SIM")) {
			ml->ssrc = m->ssrc_groups[i].ssrcs[0];
			return;
		}
	if (m->n_ssrcs)
		ml->ssrc = m->ssrcs[0].ssrc;
}

static bool in_bundle(const struct cv_sdp *sdp, const char *mid)
{
	for (size_t i = 0; mid && i < sdp->n_bundle_mids; i++)
		if (!strcmp(sdp->bundle_mids[i], mid))
			return true;
	return false;
}

/* Decides one m-line; false when it is rejected (port 0). */
static bool decide(const struct cv_sdp *offer, const struct cv_sdp_media *m,
		   const struct cv_sdp_local *l, struct cv_sdp_pub_mline *ml)
{
	ml->kind = m->kind;
	cv_sdp_copy(ml->mid, sizeof(ml->mid), m->mid);
	ml->dir = CV_SDP_DIR_INACTIVE;
	/* RFC 8829 5.3.1: media the node does not take, data channels,
	 * anything outside BUNDLE or without rtcp-mux (RFC 8829 5.1.3:
	 * the node's rtcp-mux policy is "require") is rejected. */
	if (m->port == 0 ||
	    (m->kind != CV_SDP_KIND_AUDIO && m->kind != CV_SDP_KIND_VIDEO) ||
	    strcmp(m->proto, "UDP/TLS/RTP/SAVPF") || !m->rtcp_mux ||
	    !in_bundle(offer, m->mid))
		return false;
	const struct cv_sdp_format *f = pick_codec(m, l, ml);
	if (!f) {
		ml->codec[0] = ml->fmtp[0] = '\0';
		return false;
	}
	ml->pt = f->pt;
	ml->clock_rate = f->clock_rate;
	ml->channels = f->channels;
	ml->fb = f->fb & FB_KEPT;
	/* Perc rooms resend in repair mode, never on an RTX stream. */
	for (size_t i = 0;
	     !l->perc && m->kind == CV_SDP_KIND_VIDEO && i < m->n_formats;
	     i++) {
		const struct cv_sdp_format *r = &m->formats[i];
		if (is_codec(r, "rtx", 90000) && r->apt == f->pt) {
			ml->rtx_pt = r->pt;
			break;
		}
	}
	pick_extensions(m, ml);
	pick_ssrcs(m, ml);
	if (l->perc)
		ml->rtx_ssrc = 0;
	/* RFC 3264 6.1: we only receive; what the offerer will not send is
	 * answered inactive. */
	ml->dir =
		(m->dir == CV_SDP_DIR_RECVONLY || m->dir == CV_SDP_DIR_INACTIVE)
			? CV_SDP_DIR_INACTIVE
			: CV_SDP_DIR_RECVONLY;
	ml->accepted = true;
	return true;
}

/* RFC 8842 5.3 (RFC 4145 4.1): the answerer takes the role the offerer
 * leaves; with actpass the node prefers passive (it is ICE-lite and
 * waits for the browser's ClientHello). */
static int choose_setup(enum cv_sdp_setup offered, enum cv_sdp_setup wanted,
			enum cv_sdp_setup *out)
{
	switch (offered) {
	case CV_SDP_SETUP_ACTIVE:
		*out = CV_SDP_SETUP_PASSIVE;
		return 0;
	case CV_SDP_SETUP_PASSIVE:
		*out = CV_SDP_SETUP_ACTIVE;
		return 0;
	case CV_SDP_SETUP_HOLDCONN:
		return CV_EUNSUPP;
	default:
		*out = wanted == CV_SDP_SETUP_ACTIVE ? CV_SDP_SETUP_ACTIVE
						     : CV_SDP_SETUP_PASSIVE;
		return 0;
	}
}

/* The transport comes from the offerer-tagged m-section: the first
 * BUNDLE mid naming a live m-section (RFC 8843 7.2.1). */
static const struct cv_sdp_media *bundle_tag(const struct cv_sdp *offer)
{
	for (size_t i = 0; i < offer->n_bundle_mids; i++)
		for (size_t j = 0; j < offer->n_media; j++) {
			const struct cv_sdp_media *m = &offer->media[j];
			if (m->port && m->mid &&
			    !strcmp(m->mid, offer->bundle_mids[i]))
				return m;
		}
	return NULL;
}

static int take_transport(const struct cv_sdp *offer,
			  const struct cv_sdp_local *l,
			  struct cv_sdp_publish_result *r)
{
	for (size_t i = 0; i < offer->n_media; i++)
		if (offer->media[i].port && !offer->media[i].mid)
			return CV_EPROTO; /* RFC 8829 5.2.1: every m= has mid */
	const struct cv_sdp_media *t = bundle_tag(offer);
	if (!t)
		return CV_EPROTO;
	if (!t->ice_ufrag || !t->ice_pwd)
		return CV_EPROTO;
	/* RFC 8827 6.5: DTLS-SRTP needs the peer's fingerprint. */
	if (!t->fingerprint.alg ||
	    strlen(t->fingerprint.alg) >= sizeof(r->fp_alg))
		return CV_EUNSUPP;
	cv_sdp_copy(r->ice_ufrag, sizeof(r->ice_ufrag), t->ice_ufrag);
	cv_sdp_copy(r->ice_pwd, sizeof(r->ice_pwd), t->ice_pwd);
	cv_sdp_copy(r->fp_alg, sizeof(r->fp_alg), t->fingerprint.alg);
	memcpy(r->fp, t->fingerprint.bytes, t->fingerprint.len);
	r->fp_len = t->fingerprint.len;
	r->remote_setup = t->setup;
	/* Perc: the endpoint's DTLS client talks to the Key Distributor
	 * through the node, which can only be the server (passive). */
	if (l->perc && t->setup == CV_SDP_SETUP_PASSIVE)
		return CV_EUNSUPP;
	return choose_setup(t->setup, l->setup, &r->local_setup);
}

static void write_accepted(struct cv_sdp_buf *b, const struct cv_sdp_media *m,
			   const struct cv_sdp_local *l,
			   const struct cv_sdp_publish_result *r,
			   const struct cv_sdp_pub_mline *ml)
{
	cv_sdp_buf_add(b, "m=%s %u %s %u", m->kind_name, l->candidates[0].port,
		       m->proto, ml->pt);
	if (ml->rtx_pt)
		cv_sdp_buf_add(b, " %u", ml->rtx_pt);
	cv_sdp_buf_add(b, "\r\n");
	cv_sdp_write_conn(b, l);
	cv_sdp_write_transport(b, l, r->local_setup);
	cv_sdp_buf_add(b, "a=mid:%s\r\n", ml->mid);
	/* RFC 8285 6: the answer keeps the offer's ids for what it takes. */
	const struct {
		uint8_t id;
		const char *uri;
	} ext[] = {
		{ml->ext_mid, CV_SDP_URI_MID},
		{ml->ext_abs_send_time, CV_SDP_URI_ABS_SEND_TIME},
		{ml->ext_twcc, CV_SDP_URI_TWCC},
		{ml->ext_audio_level, CV_SDP_URI_AUDIO_LEVEL},
		{ml->ext_rid, CV_SDP_URI_RID},
		{ml->ext_rrid, CV_SDP_URI_RRID},
	};
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (ext[i].id)
			cv_sdp_buf_add(b, "a=extmap:%u %s\r\n", ext[i].id,
				       ext[i].uri);
	cv_sdp_buf_add(b, "a=%s\r\na=rtcp-mux\r\n", cv_sdp_dir_name(ml->dir));
	if (m->rtcp_rsize) /* RFC 5506 5: only when offered */
		cv_sdp_buf_add(b, "a=rtcp-rsize\r\n");
	cv_sdp_buf_add(b, "a=rtpmap:%u %s/%u", ml->pt, ml->codec,
		       ml->clock_rate);
	if (ml->channels)
		cv_sdp_buf_add(b, "/%u", ml->channels);
	cv_sdp_buf_add(b, "\r\n");
	cv_sdp_write_fb(b, ml->pt, ml->fb);
	if (ml->fmtp[0])
		cv_sdp_buf_add(b, "a=fmtp:%u %s\r\n", ml->pt, ml->fmtp);
	if (ml->rtx_pt)
		cv_sdp_buf_add(b,
			       "a=rtpmap:%u rtx/90000\r\na=fmtp:%u apt=%u\r\n",
			       ml->rtx_pt, ml->rtx_pt, ml->pt);
	cv_sdp_write_candidates(b, l);
}

static void write_rejected(struct cv_sdp_buf *b, const struct cv_sdp_media *m)
{
	/* RFC 8829 5.3.1 / RFC 3264 6: port 0, same media and proto, at
	 * least one format from the offer. */
	int fmt_len = (int)strcspn(m->fmt_raw, " \t");
	cv_sdp_buf_add(b, "m=%s 0 %s %.*s\r\nc=IN IP4 0.0.0.0\r\n",
		       m->kind_name, m->proto, fmt_len, m->fmt_raw);
	if (m->mid)
		cv_sdp_buf_add(b, "a=mid:%s\r\n", m->mid);
	if (m->kind == CV_SDP_KIND_AUDIO || m->kind == CV_SDP_KIND_VIDEO)
		cv_sdp_buf_add(b, "a=inactive\r\n");
}

static int write_answer(const struct cv_sdp *offer,
			const struct cv_sdp_local *l,
			const struct cv_sdp_publish_result *r, char **out)
{
	struct cv_sdp_buf b = {0};
	cv_sdp_write_session(&b, l);
	/* RFC 8843 7.3: the answer's BUNDLE group lists what it accepted,
	 * the offerer-tagged mid first when accepted. */
	const struct cv_sdp_media *tag = bundle_tag(offer);
	size_t first = (size_t)(tag - offer->media);
	cv_sdp_buf_add(&b, "a=group:BUNDLE");
	if (r->mlines[first].accepted)
		cv_sdp_buf_add(&b, " %s", r->mlines[first].mid);
	for (size_t i = 0; i < r->n_mlines; i++)
		if (r->mlines[i].accepted && i != first)
			cv_sdp_buf_add(&b, " %s", r->mlines[i].mid);
	cv_sdp_buf_add(&b, "\r\n");
	for (size_t i = 0; i < r->n_mlines; i++) {
		if (r->mlines[i].accepted)
			write_accepted(&b, &offer->media[i], l, r,
				       &r->mlines[i]);
		else
			write_rejected(&b, &offer->media[i]);
	}
	return cv_sdp_buf_finish(&b, out);
}

int cv_sdp_answer_publish(const struct cv_sdp *offer,
			  const struct cv_sdp_local *local,
			  struct cv_sdp_publish_result *res, char **answer_out)
{
	if (!offer || !answer_out || cv_sdp_check_local(local))
		return -EINVAL;
	if (local->setup != CV_SDP_SETUP_NONE &&
	    local->setup != CV_SDP_SETUP_ACTIVE &&
	    local->setup != CV_SDP_SETUP_PASSIVE)
		return -EINVAL;
	if (local->perc && local->setup == CV_SDP_SETUP_ACTIVE)
		return -EINVAL;
	struct cv_sdp_publish_result *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	size_t accepted = 0;
	int rc = take_transport(offer, local, r);
	if (rc)
		goto out;
	r->n_mlines = offer->n_media;
	for (size_t i = 0; i < offer->n_media; i++) {
		const struct cv_sdp_pub_mline *ml = &r->mlines[i];
		accepted +=
			decide(offer, &offer->media[i], local, &r->mlines[i]);
		/* Perc: only announced SSRCs are forwarded (RFC 8871 keeps
		 * the sender's SSRC end to end), so a sending m-line must
		 * name its SSRC. */
		if (local->perc && ml->accepted &&
		    ml->dir == CV_SDP_DIR_RECVONLY && ml->ssrc == 0) {
			rc = CV_EPROTO;
			goto out;
		}
	}
	if (accepted == 0) {
		rc = CV_EUNSUPP;
		goto out;
	}
	rc = write_answer(offer, local, r, answer_out);
	if (rc == 0 && res)
		*res = *r;
out:
	free(r);
	return rc;
}
