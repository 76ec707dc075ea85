/*
 * The node's subscribe offer (one sendonly m-line per forwarded track)
 * and the check of the browser's answer to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conclave/err.h"
#include "sdp_util.h"

/* Header extension ids the node writes (RFC 8285 5: one-byte ids). */
enum {
	EXT_ID_MID = 1,
	EXT_ID_ABS_SEND_TIME = 2,
	EXT_ID_AUDIO_LEVEL = 3,
};

static bool opt_visible(const char *s)
{
	return !s || cv_sdp_is_visible(s);
}

static int check_mline(const struct cv_sdp_sub_mline *ml)
{
	if (!cv_sdp_is_token(ml->mid) ||
	    strlen(ml->mid) > CV_SDP_MAX_MID_BYTES ||
	    (ml->kind != CV_SDP_KIND_AUDIO && ml->kind != CV_SDP_KIND_VIDEO) ||
	    ml->pt > 127 || ml->rtx_pt > 127)
		return -EINVAL;
	if (!ml->active)
		return 0;
	if (ml->paused)
		return cv_sdp_is_token(ml->codec) && ml->clock_rate ? 0
								    : -EINVAL;
	if (!cv_sdp_is_token(ml->codec) || ml->clock_rate == 0 ||
	    !opt_visible(ml->fmtp) || !cv_sdp_is_visible(ml->cname) ||
	    !opt_visible(ml->msid_stream) || !opt_visible(ml->msid_track) ||
	    (ml->msid_track && !ml->msid_stream) || ml->ssrc == 0)
		return -EINVAL;
	if (ml->rtx_pt && (ml->rtx_pt == ml->pt || ml->rtx_ssrc == 0 ||
			   ml->rtx_ssrc == ml->ssrc))
		return -EINVAL;
	return 0;
}

static int check_mlines(const struct cv_sdp_sub_mline *mlines, size_t n)
{
	if (n > CV_SDP_MAX_MEDIA)
		return CV_ETOOBIG;
	if (n && !mlines)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (check_mline(&mlines[i]))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(mlines[i].mid, mlines[j].mid))
				return -EINVAL; /* RFC 8843 7.2.1: mids unique
						 */
	}
	return 0;
}

static void write_ssrc(struct cv_sdp_buf *b, const struct cv_sdp_sub_mline *ml,
		       uint32_t ssrc)
{
	/* RFC 5576 4.1 cname; msid as a source attribute, still what
	 * Chromium uses to name the remote stream (RFC 8830 2). */
	cv_sdp_buf_add(b, "a=ssrc:%u cname:%s\r\n", ssrc, ml->cname);
	if (ml->msid_stream)
		cv_sdp_buf_add(b, "a=ssrc:%u msid:%s%s%s\r\n", ssrc,
			       ml->msid_stream, ml->msid_track ? " " : "",
			       ml->msid_track ? ml->msid_track : "");
}

static void write_active(struct cv_sdp_buf *b, const struct cv_sdp_local *l,
			 const struct cv_sdp_sub_mline *ml)
{
	bool audio = ml->kind == CV_SDP_KIND_AUDIO;
	cv_sdp_buf_add(b, "m=%s %u UDP/TLS/RTP/SAVPF %u",
		       audio ? "audio" : "video", l->candidates[0].port,
		       ml->pt);
	if (ml->rtx_pt && !ml->paused)
		cv_sdp_buf_add(b, " %u", ml->rtx_pt);
	cv_sdp_buf_add(b, "\r\n");
	cv_sdp_write_conn(b, l);
	/* RFC 8842 5.2: the offerer says actpass; in a perc room the node
	 * is always the DTLS server (the endpoint's peer is the KD). */
	cv_sdp_write_transport(
		b, l, l->perc ? CV_SDP_SETUP_PASSIVE : CV_SDP_SETUP_ACTPASS);
	cv_sdp_buf_add(b, "a=mid:%s\r\n", ml->mid);
	cv_sdp_buf_add(b, "a=extmap:%d %s\r\na=extmap:%d %s\r\n", EXT_ID_MID,
		       CV_SDP_URI_MID, EXT_ID_ABS_SEND_TIME,
		       CV_SDP_URI_ABS_SEND_TIME);
	if (audio)
		cv_sdp_buf_add(b, "a=extmap:%d %s\r\n", EXT_ID_AUDIO_LEVEL,
			       CV_SDP_URI_AUDIO_LEVEL);
	cv_sdp_buf_add(b, ml->paused ? "a=inactive\r\n" : "a=sendonly\r\n");
	if (ml->msid_stream && !ml->paused)
		cv_sdp_buf_add(b, "a=msid:%s%s%s\r\n", ml->msid_stream,
			       ml->msid_track ? " " : "",
			       ml->msid_track ? ml->msid_track : "");
	cv_sdp_buf_add(b, "a=rtcp-mux\r\na=rtcp-rsize\r\n");
	cv_sdp_buf_add(b, "a=rtpmap:%u %s/%u", ml->pt, ml->codec,
		       ml->clock_rate);
	if (ml->channels)
		cv_sdp_buf_add(b, "/%u", ml->channels);
	cv_sdp_buf_add(b, "\r\n");
	if (!audio)
		cv_sdp_write_fb(b, ml->pt,
				CV_SDP_FB_NACK | CV_SDP_FB_NACK_PLI |
					CV_SDP_FB_CCM_FIR);
	if (ml->fmtp)
		cv_sdp_buf_add(b, "a=fmtp:%u %s\r\n", ml->pt, ml->fmtp);
	if (ml->rtx_pt && !ml->paused) {
		/* RFC 4588 8.1 (apt) and 8.3 (FID group). */
		cv_sdp_buf_add(b, "a=rtpmap:%u rtx/%u\r\na=fmtp:%u apt=%u\r\n",
			       ml->rtx_pt, ml->clock_rate, ml->rtx_pt, ml->pt);
		cv_sdp_buf_add(b, "a=ssrc-group:FID %u %u\r\n", ml->ssrc,
			       ml->rtx_ssrc);
	}
	if (!ml->paused) {
		write_ssrc(b, ml, ml->ssrc);
		if (ml->rtx_pt)
			write_ssrc(b, ml, ml->rtx_ssrc);
	}
	cv_sdp_write_candidates(b, l);
}

static void write_inactive(struct cv_sdp_buf *b,
			   const struct cv_sdp_sub_mline *ml)
{
	/* RFC 8829 5.2.2: a stopped m-section keeps its place with port 0
	 * and its mid; it leaves the BUNDLE group (RFC 8843 7.5). */
	cv_sdp_buf_add(b,
		       "m=%s 0 UDP/TLS/RTP/SAVPF %u\r\nc=IN IP4 0.0.0.0\r\n"
		       "a=mid:%s\r\na=inactive\r\na=rtcp-mux\r\n",
		       ml->kind == CV_SDP_KIND_AUDIO ? "audio" : "video",
		       ml->pt, ml->mid);
	if (cv_sdp_is_token(ml->codec) && ml->clock_rate)
		cv_sdp_buf_add(b, "a=rtpmap:%u %s/%u\r\n", ml->pt, ml->codec,
			       ml->clock_rate);
}

int cv_sdp_offer_subscribe(const struct cv_sdp_local *local,
			   const struct cv_sdp_sub_mline *mlines, size_t n,
			   char **offer_out)
{
	if (!offer_out || cv_sdp_check_local(local))
		return -EINVAL;
	int rc = check_mlines(mlines, n);
	if (rc)
		return rc;
	for (size_t i = 0; local->perc && i < n; i++)
		if (mlines[i].rtx_pt)
			return -EINVAL; /* no RTX stream in perc rooms */
	struct cv_sdp_buf b = {0};
	cv_sdp_write_session(&b, local);
	/* An empty BUNDLE group is not valid (RFC 5888 5 wants at least
	 * one mid), so with nothing active there is no group line: the
	 * offer is then only the session header, which browsers accept
	 * like their own createOffer() with no transceiver. */
	size_t active = 0;
	for (size_t i = 0; i < n; i++)
		if (mlines[i].active)
			cv_sdp_buf_add(&b, "%s %s",
				       active++ ? "" : "a=group:BUNDLE",
				       mlines[i].mid);
	if (active)
		cv_sdp_buf_add(&b, "\r\n");
	for (size_t i = 0; i < n; i++) {
		if (mlines[i].active)
			write_active(&b, local, &mlines[i]);
		else
			write_inactive(&b, &mlines[i]);
	}
	return cv_sdp_buf_finish(&b, offer_out);
}

/* ---- the browser's answer --------------------------------------------- */

static uint8_t ext_id(const struct cv_sdp_media *m, const char *uri)
{
	for (size_t i = 0; i < m->n_extmaps; i++)
		if (!strcmp(m->extmaps[i].uri, uri))
			return m->extmaps[i].id;
	return 0;
}

static int check_one(const struct cv_sdp_sub_mline *ml,
		     const struct cv_sdp_media *am,
		     struct cv_sdp_sub_answer_mline *out)
{
	cv_sdp_copy(out->mid, sizeof(out->mid), ml->mid);
	out->dir = am->dir;
	/* RFC 8829 5.3.1: the answer has the offer's m-lines, in order,
	 * with the same mid and media type. */
	if (!am->mid || strcmp(am->mid, ml->mid) || am->kind != ml->kind)
		return CV_EPROTO;
	if (!ml->active || am->port == 0)
		return 0;
	/* RFC 3264 6.1: an answer to sendonly is recvonly or inactive. */
	if (am->dir != CV_SDP_DIR_RECVONLY && am->dir != CV_SDP_DIR_INACTIVE)
		return CV_EPROTO;
	const struct cv_sdp_format *f = cv_sdp_find_format(am, ml->pt);
	if (!f || (f->encoding && strcasecmp(f->encoding, ml->codec)))
		return 0; /* our codec was refused: not accepted */
	out->accepted = true;
	out->fb = f->fb;
	const struct cv_sdp_format *r =
		ml->rtx_pt ? cv_sdp_find_format(am, ml->rtx_pt) : NULL;
	out->rtx = r && (!r->encoding || !strcasecmp(r->encoding, "rtx"));
	out->ext_mid = ext_id(am, CV_SDP_URI_MID);
	out->ext_abs_send_time = ext_id(am, CV_SDP_URI_ABS_SEND_TIME);
	out->ext_audio_level = ext_id(am, CV_SDP_URI_AUDIO_LEVEL);
	return 0;
}

static int take_answer_transport(const struct cv_sdp_media *m,
				 struct cv_sdp_subscribe_result *res)
{
	if (!m->ice_ufrag || !m->ice_pwd)
		return CV_EPROTO;
	if (!m->fingerprint.alg ||
	    strlen(m->fingerprint.alg) >= sizeof(res->fp_alg))
		return CV_EUNSUPP;
	/* RFC 8842 5.3: the answer picks active or passive, never actpass.
	 * RFC 4145 4.1: an absent setup means active. */
	enum cv_sdp_setup s =
		m->setup == CV_SDP_SETUP_NONE ? CV_SDP_SETUP_ACTIVE : m->setup;
	if (s != CV_SDP_SETUP_ACTIVE && s != CV_SDP_SETUP_PASSIVE)
		return CV_EPROTO;
	res->remote_setup = s;
	cv_sdp_copy(res->ice_ufrag, sizeof(res->ice_ufrag), m->ice_ufrag);
	cv_sdp_copy(res->ice_pwd, sizeof(res->ice_pwd), m->ice_pwd);
	cv_sdp_copy(res->fp_alg, sizeof(res->fp_alg), m->fingerprint.alg);
	memcpy(res->fp, m->fingerprint.bytes, m->fingerprint.len);
	res->fp_len = m->fingerprint.len;
	return 0;
}

int cv_sdp_check_subscribe_answer(const struct cv_sdp_sub_mline *mlines,
				  size_t n, const struct cv_sdp *answer,
				  struct cv_sdp_subscribe_result *res)
{
	if (!answer || !res || n > CV_SDP_MAX_MEDIA || (n && !mlines))
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (answer->n_media != n)
		return CV_EPROTO;
	res->n_mlines = n;
	const struct cv_sdp_media *first = NULL;
	for (size_t i = 0; i < n; i++) {
		int rc = check_one(&mlines[i], &answer->media[i],
				   &res->mlines[i]);
		if (rc)
			return rc;
		if (res->mlines[i].accepted && !first)
			first = &answer->media[i];
	}
	return first ? take_answer_transport(first, res) : 0;
}
