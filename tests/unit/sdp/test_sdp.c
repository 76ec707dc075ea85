/*
 * SDP: parse real Chromium offers, answer them, build subscribe offers
 * and check answers; malformed input and ceilings.
 *
 * Usage: test_sdp <data dir>
 *        test_sdp --answer <offer file>   print our publish answer
 *        test_sdp --sub-offer [n]         print a subscribe offer
 *        test_sdp --check-sub <answer>    check an answer to --sub-offer
 * (the last three feed the headless-browser check in data/README).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/sdp.h"
#include "cv_test.h"

static const char *data_dir = ".";

#define FP_HEX                                                                 \
	"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"                     \
	"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"

static const struct cv_sdp_local test_local = {
	.ice_ufrag = "cvN0",
	.ice_pwd = "conclaveIcePassword0123",
	.fingerprint = "sha-256 " FP_HEX,
	.candidates = {{"127.0.0.1", 40000}, {"::1", 40000}},
	.n_candidates = 2,
	.session_id = 4242,
	.session_version = 1,
};

static char *read_path(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static char *read_data(const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", data_dir, name);
	char *s = read_path(path, len);
	if (!s)
		fprintf(stderr, "cannot read %s\n", path);
	return s;
}

static struct cv_sdp *parse_str(const char *s)
{
	struct cv_sdp *sdp = NULL;
	struct cv_sdp_error err;
	int rc = cv_sdp_parse_ex(s, strlen(s), &sdp, &err);
	if (rc) {
		char msg[128];
		cv_sdp_error_text(&err, msg, sizeof(msg));
		fprintf(stderr, "parse failed: %s\n", msg);
	}
	return sdp;
}

static struct cv_sdp *parse_data(const char *name)
{
	size_t len;
	char *s = read_data(name, &len);
	if (!s)
		return NULL;
	struct cv_sdp *sdp = NULL;
	CV_CHECK_INT(cv_sdp_parse(s, len, &sdp), 0);
	free(s);
	return sdp;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- parser on real offers -------------------------------------------- */

static void test_parse_chromium_av(void)
{
	struct cv_sdp *sdp = parse_data("chromium_av_offer.sdp");
	CV_CHECK(sdp != NULL);
	if (!sdp)
		return;
	CV_CHECK_STR(sdp->origin_user, "-");
	CV_CHECK_STR(sdp->session_name, "-");
	CV_CHECK(sdp->has_bundle);
	CV_CHECK_INT(sdp->n_bundle_mids, 2);
	CV_CHECK_STR(sdp->bundle_mids[1], "1");
	CV_CHECK(!sdp->ice_lite);
	CV_CHECK_INT(sdp->n_media, 2);
	const struct cv_sdp_media *a = &sdp->media[0], *v = &sdp->media[1];
	CV_CHECK_INT(a->kind, CV_SDP_KIND_AUDIO);
	CV_CHECK_INT(a->port, 9);
	CV_CHECK_STR(a->proto, "UDP/TLS/RTP/SAVPF");
	CV_CHECK_INT(a->n_formats, 8);
	CV_CHECK_INT(a->formats[0].pt, 111);
	CV_CHECK_STR(a->formats[0].encoding, "opus");
	CV_CHECK_INT(a->formats[0].clock_rate, 48000);
	CV_CHECK_INT(a->formats[0].channels, 2);
	CV_CHECK_STR(a->formats[0].fmtp, "minptime=10;useinbandfec=1");
	CV_CHECK_INT(a->formats[0].fb, CV_SDP_FB_TRANSPORT_CC);
	CV_CHECK_STR(a->mid, "0");
	CV_CHECK_INT(a->dir, CV_SDP_DIR_SENDONLY);
	CV_CHECK_STR(a->ice_ufrag, "l2Dj");
	CV_CHECK_STR(a->ice_pwd, "xhqXwN3vmrS+7ubFvItth26b");
	CV_CHECK_STR(a->fingerprint.alg, "sha-256");
	CV_CHECK_INT(a->fingerprint.len, 32);
	CV_CHECK_INT(a->fingerprint.bytes[0], 0x80);
	CV_CHECK_INT(a->fingerprint.bytes[31], 0x8D);
	CV_CHECK_INT(a->setup, CV_SDP_SETUP_ACTPASS);
	CV_CHECK(a->rtcp_mux && a->rtcp_rsize);
	CV_CHECK_STR(a->conn_addr, "0.0.0.0");
	CV_CHECK_INT(a->n_candidates, 2);
	CV_CHECK_INT(a->n_extmaps, 4);
	CV_CHECK_INT(a->extmaps[0].id, 1);
	CV_CHECK_STR(a->extmaps[0].uri,
		     "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
	CV_CHECK_INT(a->n_ssrcs, 1);
	CV_CHECK_INT(a->ssrcs[0].ssrc, 1510285434u);
	CV_CHECK_STR(a->ssrcs[0].cname, "INCZPFh0ENRMzp82");
	CV_CHECK_STR(a->ssrcs[0].msid,
		     "- 77da7d31-aaa3-478f-a6e5-2b52963b0e47");
	CV_CHECK_STR(a->msid_stream, "-");
	CV_CHECK_STR(a->msid_track, "77da7d31-aaa3-478f-a6e5-2b52963b0e47");

	CV_CHECK_INT(v->kind, CV_SDP_KIND_VIDEO);
	CV_CHECK_INT(v->n_formats, 23);
	CV_CHECK_STR(v->formats[0].encoding, "VP8");
	CV_CHECK_INT(v->formats[0].fb,
		     CV_SDP_FB_NACK | CV_SDP_FB_NACK_PLI | CV_SDP_FB_CCM_FIR |
			     CV_SDP_FB_TRANSPORT_CC | CV_SDP_FB_GOOG_REMB);
	CV_CHECK_STR(v->formats[1].encoding, "rtx");
	CV_CHECK_INT(v->formats[1].apt, 96);
	CV_CHECK_INT(v->formats[0].apt, -1);
	CV_CHECK_INT(v->n_ssrc_groups, 1);
	CV_CHECK_STR(v->ssrc_groups[0].semantics, "FID");
	CV_CHECK_INT(v->ssrc_groups[0].n_ssrcs, 2);
	CV_CHECK_INT(v->ssrc_groups[0].ssrcs[1], 3585481667u);
	CV_CHECK_INT(v->n_extmaps, 11);
	cv_sdp_free(sdp);
}

static void test_parse_simulcast(void)
{
	struct cv_sdp *sdp = parse_data("chromium_simulcast_offer.sdp");
	CV_CHECK(sdp != NULL);
	if (!sdp)
		return;
	const struct cv_sdp_media *v = &sdp->media[1];
	CV_CHECK_INT(v->n_rids, 3);
	CV_CHECK_STR(v->rids[0].id, "q");
	CV_CHECK(v->rids[2].send);
	CV_CHECK_STR(v->simulcast, "send q;h;f");
	cv_sdp_free(sdp);
}

static void test_parse_lf_and_session_inherit(void)
{
	const char *s = "v=0\n"
			"o=- 1 1 IN IP4 0.0.0.0\n"
			"s=-\n"
			"t=0 0\n"
			"c=IN IP6 ::1\n"
			"a=ice-ufrag:abcd\n"
			"a=ice-pwd:abcdefghijklmnopqrstuv\n"
			"a=fingerprint:sha-1 aa:BB:cc\n"
			"a=setup:passive\n"
			"m=audio 1 RTP/AVP 0\n"
			"a=rtcp-fb:* nack\n"
			"m=video 0 RTP/AVP 96 97\n"
			"a=rtpmap:97 VP8/90000\n"
			"a=ice-ufrag:efgh\n";
	struct cv_sdp *sdp = parse_str(s);
	CV_CHECK(sdp != NULL);
	if (!sdp)
		return;
	CV_CHECK_STR(sdp->media[0].ice_ufrag, "abcd");
	CV_CHECK_STR(sdp->media[1].ice_ufrag, "efgh");
	CV_CHECK_STR(sdp->media[1].ice_pwd, "abcdefghijklmnopqrstuv");
	CV_CHECK_STR(sdp->media[0].conn_addr, "::1");
	CV_CHECK_INT(sdp->media[1].fingerprint.len, 3);
	CV_CHECK_INT(sdp->media[1].setup, CV_SDP_SETUP_PASSIVE);
	CV_CHECK_INT(sdp->media[0].formats[0].fb, CV_SDP_FB_NACK);
	CV_CHECK(sdp->media[1].formats[0].encoding == NULL);
	CV_CHECK_STR(sdp->media[1].formats[1].encoding, "VP8");
	CV_CHECK_INT(sdp->media[1].port, 0);
	cv_sdp_free(sdp);
}

/* Each string is a bad description and the reason must be set. */
static void test_malformed(void)
{
	static const char *head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"
				  "t=0 0\r\n";
	static const char *bad_bodies[] = {
		"m=audio 9 RTP/AVP\r\n",       /* no format */
		"m=audio 70000 RTP/AVP 0\r\n", /* port */
		"m=audio 9 RTP/AVP 128\r\n",   /* PT range */
		"m=audio 9 RTP/AVP 0 0\r\n",   /* PT twice */
		"m=audio 9 RTP/AVP x\r\n",     /* PT not a number */
		"m=audio -1 RTP/AVP 0\r\n",    /* signed port */
		"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/0\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/0\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/99999999999\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
		"a=rtpmap:0 PCMU/8000\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fmtp:0\r\n",
		"m=video 9 RTP/AVP 96\r\na=fmtp:96 apt=200\r\n",
		"m=audio 9 RTP/AVP 0\r\na=extmap:0 urn:x\r\n",
		"m=audio 9 RTP/AVP 0\r\na=extmap:256 urn:x\r\n",
		"m=audio 9 RTP/AVP 0\r\na=extmap:1/sideways urn:x\r\n",
		"m=audio 9 RTP/AVP 0\r\na=extmap:1 urn:x\r\na=extmap:1 "
		"urn:y\r\n",
		"m=audio 9 RTP/AVP 0\r\na=extmap:1\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtcp-fb:0\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rtcp-fb:x nack\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ssrc:4294967296 cname:x\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ssrc:1\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ssrc:1 cname:\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ssrc-group:FID\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ssrc-group:FID 1 x\r\n",
		"m=audio 9 RTP/AVP 0\r\na=mid:a\r\na=mid:b\r\n",
		"m=audio 9 RTP/AVP 0\r\na=mid:a\r\nm=audio 9 RTP/AVP 0\r\n"
		"a=mid:a\r\n",
		"m=audio 9 RTP/AVP "
		"0\r\na=mid:0123456789012345678901234567890123\r\n",
		"m=audio 9 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n",
		"m=audio 9 RTP/AVP 0\r\na=setup:sideways\r\n",
		"m=audio 9 RTP/AVP 0\r\na=setup:active\r\na=setup:active\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ice-ufrag:ab\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ice-pwd:short\r\n",
		"m=audio 9 RTP/AVP 0\r\na=ice-ufrag:ab_cd\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 AB:C\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 AB:\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 ABCD\r\n",
		"m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 XY\r\n",
		"m=audio 9 RTP/AVP 0\r\na=rid:q sideways\r\n",
		"m=audio 9 RTP/AVP 0\r\na=msid:\r\n",
		"m=audio 9 RTP/AVP 0\r\na=candidate\r\n",
		"m=audio 9 RTP/AVP 0\r\nc=IN IP5 1.2.3.4\r\n",
		"m=audio 9 RTP/AVP 0\r\nc=IN IP4\r\n",
		"m=audio 9 RTP/AVP 0\r\nt=0 0\r\n",
		"m=audio 9 RTP/AVP 0\r\ns=again\r\n",
		"a=group\r\n",
		"a=setup:\r\n",
		"a=:x\r\n",
		"X=1\r\n",
		"a\r\n",
		"a=ok\rx\r\n",
		"v=0\r\n",
	};
	char buf[1024];
	for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]);
	     i++) {
		snprintf(buf, sizeof(buf), "%s%s", head, bad_bodies[i]);
		struct cv_sdp *sdp = NULL;
		struct cv_sdp_error err = {0};
		int rc = cv_sdp_parse_ex(buf, strlen(buf), &sdp, &err);
		if (rc != CV_EPARSE)
			fprintf(stderr, "case %zu: rc %d\n", i, rc);
		CV_CHECK_INT(rc, CV_EPARSE);
		CV_CHECK(sdp == NULL);
		CV_CHECK(err.reason != NULL);
		CV_CHECK(err.line >= 5);
		cv_sdp_free(sdp);
	}
	static const char *bad_heads[] = {
		"",
		"o=- 1 1 IN IP4 0.0.0.0\r\n",
		"v=1\r\n",
		"v=0\r\ns=-\r\nt=0 0\r\n",			     /* no o= */
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nt=0 0\r\n",	     /* no s= */
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n",	     /* no t= */
		"v=0\r\no=- x 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", /* id */
		"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"
		"m=audio 9 RTP/AVP 0\r\nt=0 0\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
		"a=x\0y\r\n",
	};
	for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
		struct cv_sdp *sdp = NULL;
		struct cv_sdp_error err = {0};
		size_t len = strlen(bad_heads[i]);
		if (i == sizeof(bad_heads) / sizeof(bad_heads[0]) - 1)
			len += 4; /* across the embedded NUL */
		int rc = cv_sdp_parse_ex(bad_heads[i], len, &sdp, &err);
		if (rc != CV_EPARSE)
			fprintf(stderr, "head %zu: rc %d\n", i, rc);
		CV_CHECK_INT(rc, CV_EPARSE);
		CV_CHECK(err.reason != NULL);
	}
	/* The error text names the line and never the input. */
	snprintf(buf, sizeof(buf), "%sa=ice-ufrag:secret_value\r\n", head);
	struct cv_sdp *sdp = NULL;
	struct cv_sdp_error err;
	CV_CHECK_INT(cv_sdp_parse_ex(buf, strlen(buf), &sdp, &err), CV_EPARSE);
	char msg[128];
	cv_sdp_error_text(&err, msg, sizeof(msg));
	CV_CHECK_STR(msg, "line 5: ice-ufrag malformed");
	CV_CHECK(strstr(msg, "secret") == NULL);
	CV_CHECK_INT(cv_sdp_parse(NULL, 0, &sdp), -EINVAL);
}

static void test_limits(void)
{
	const char *head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
	size_t big = CV_SDP_MAX_INPUT_BYTES + 1;
	char *s = malloc(big + 1);
	struct cv_sdp *sdp = NULL;
	if (!s)
		return;
	struct cv_sdp_error err;
	/* Over 64 KiB: refused before anything is read. */
	memset(s, 'a', big);
	memcpy(s, head, strlen(head));
	CV_CHECK_INT(cv_sdp_parse_ex(s, big, &sdp, &err), CV_ETOOBIG);
	/* A line of 4096 bytes passes, 4097 does not. */
	for (size_t n = CV_SDP_MAX_LINE_BYTES; n <= CV_SDP_MAX_LINE_BYTES + 1;
	     n++) {
		size_t hl = strlen(head);
		memcpy(s, head, hl);
		memcpy(s + hl, "a=x", 3);
		memset(s + hl + 3, 'y', n - 3);
		memcpy(s + hl + n, "\r\n", 3);
		int rc = cv_sdp_parse_ex(s, strlen(s), &sdp, &err);
		CV_CHECK_INT(rc, n == CV_SDP_MAX_LINE_BYTES ? 0 : CV_ETOOBIG);
		sdp = cv_sdp_free(sdp);
	}
	/* 16 m-sections pass, 17 do not. */
	for (int n = 16; n <= 17; n++) {
		size_t len = (size_t)sprintf(s, "%s", head);
		for (int i = 0; i < n; i++)
			len += (size_t)sprintf(
				s + len, "m=audio 9 RTP/AVP 0\r\na=mid:%d\r\n",
				i);
		int rc = cv_sdp_parse_ex(s, len, &sdp, &err);
		CV_CHECK_INT(rc, n == 16 ? 0 : CV_ETOOBIG);
		sdp = cv_sdp_free(sdp);
	}
	/* 64 payload types pass, 65 do not. */
	for (int n = 64; n <= 65; n++) {
		size_t len = (size_t)sprintf(s, "%sm=video 9 RTP/AVP", head);
		for (int i = 0; i < n; i++)
			len += (size_t)sprintf(s + len, " %d", i);
		len += (size_t)sprintf(s + len, "\r\n");
		int rc = cv_sdp_parse_ex(s, len, &sdp, &err);
		CV_CHECK_INT(rc, n == 64 ? 0 : CV_ETOOBIG);
		sdp = cv_sdp_free(sdp);
	}
	/* extmap ids: 1 and 255 are the edges. */
	sprintf(s,
		"%sm=audio 9 RTP/AVP 0\r\na=extmap:1 urn:a\r\n"
		"a=extmap:255/recvonly urn:b x\r\n",
		head);
	sdp = parse_str(s);
	CV_CHECK(sdp != NULL);
	if (sdp) {
		CV_CHECK_INT(sdp->media[0].extmaps[1].id, 255);
		CV_CHECK_INT(sdp->media[0].extmaps[1].dir, CV_SDP_DIR_RECVONLY);
		CV_CHECK_STR(sdp->media[0].extmaps[1].attrs, "x");
	}
	sdp = cv_sdp_free(sdp);
	/* Too many candidates are skipped, not refused. */
	size_t len = (size_t)sprintf(s, "%sm=audio 9 RTP/AVP 0\r\n", head);
	for (int i = 0; i < 40; i++)
		len += (size_t)sprintf(s + len,
				       "a=candidate:%d 1 udp 1 1.2.3.4 %d typ "
				       "host\r\n",
				       i, 1000 + i);
	sdp = parse_str(s);
	CV_CHECK(sdp && sdp->media[0].n_candidates == CV_SDP_MAX_CANDIDATES);
	cv_sdp_free(sdp);
	free(s);
}

/* Every prefix of a real offer parses or fails cleanly (ASan watches). */
static void test_truncation(void)
{
	size_t len;
	char *s = read_data("chromium_av_offer.sdp", &len);
	if (!s)
		return;
	int ok = 0;
	for (size_t n = 0; n <= len; n++) {
		char *copy = malloc(n ? n : 1);
		if (!copy)
			break;
		memcpy(copy, s, n);
		struct cv_sdp *sdp = NULL;
		int rc = cv_sdp_parse(copy, n, &sdp);
		CV_CHECK(rc == 0 || rc == CV_EPARSE);
		CV_CHECK((rc == 0) == (sdp != NULL));
		if (rc == 0) {
			ok++;
			char *ans = NULL;
			/* Whatever it answers must parse again. */
			if (cv_sdp_answer_publish(sdp, &test_local, NULL,
						  &ans) == 0) {
				struct cv_sdp *re = NULL;
				CV_CHECK_INT(
					cv_sdp_parse(ans, strlen(ans), &re), 0);
				cv_sdp_free(re);
				free(ans);
			}
		}
		cv_sdp_free(sdp);
		free(copy);
	}
	CV_CHECK(ok > 0);
	free(s);
}

/* ---- publish answer --------------------------------------------------- */

static char *answer_data(const char *name, struct cv_sdp_publish_result *res,
			 const struct cv_sdp_local *local, int expect_rc)
{
	struct cv_sdp *offer = parse_data(name);
	char *ans = NULL;
	if (!offer)
		return NULL;
	int rc = cv_sdp_answer_publish(offer, local, res, &ans);
	CV_CHECK_INT(rc, expect_rc);
	cv_sdp_free(offer);
	return ans;
}

static void check_answer_parses(const char *ans, size_t n_media)
{
	struct cv_sdp *a = parse_str(ans);
	CV_CHECK(a != NULL);
	if (!a)
		return;
	CV_CHECK(a->ice_lite);
	CV_CHECK_INT(a->n_media, n_media);
	for (size_t i = 0; i < a->n_media; i++) {
		const struct cv_sdp_media *m = &a->media[i];
		if (!m->port)
			continue;
		CV_CHECK_STR(m->ice_ufrag, "cvN0");
		CV_CHECK_INT(m->setup, CV_SDP_SETUP_PASSIVE);
		CV_CHECK_INT(m->fingerprint.len, 32);
		CV_CHECK(m->rtcp_mux);
		CV_CHECK(m->end_of_candidates);
		CV_CHECK_INT(m->n_candidates, 2);
		CV_CHECK_STR(m->conn_addr, "127.0.0.1");
	}
	cv_sdp_free(a);
}

static void test_answer_av(void)
{
	struct cv_sdp_publish_result r;
	char *ans = answer_data("chromium_av_offer.sdp", &r, &test_local, 0);
	CV_CHECK(ans != NULL);
	if (!ans)
		return;
	CV_CHECK(strstr(ans, "a=group:BUNDLE 0 1\r\n") != NULL);
	CV_CHECK(strstr(ans, "m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\n"));
	CV_CHECK(strstr(ans, "m=video 40000 UDP/TLS/RTP/SAVPF 96 97\r\n"));
	CV_CHECK(strstr(ans, "a=fmtp:111 minptime=10;useinbandfec=1\r\n"));
	CV_CHECK(strstr(ans, "a=fmtp:97 apt=96\r\n"));
	CV_CHECK(strstr(ans, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"));
	CV_CHECK(!strstr(ans, "toffset"));
	CV_CHECK(!strstr(ans, "sendonly"));
	CV_CHECK_INT(count(ans, "a=recvonly\r\n"), 2);
	CV_CHECK_INT(count(ans, "a=ice-lite\r\n"), 1);
	CV_CHECK_INT(count(ans, "a=setup:passive\r\n"), 2);
	CV_CHECK_INT(count(ans, "a=end-of-candidates\r\n"), 2);
	CV_CHECK(strstr(ans, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 "
			     "typ host\r\n"));
	CV_CHECK(strstr(ans, "a=candidate:2 1 udp 2130706175 ::1 40000 typ "
			     "host\r\n"));
	check_answer_parses(ans, 2);

	CV_CHECK_INT(r.n_mlines, 2);
	CV_CHECK_STR(r.ice_ufrag, "l2Dj");
	CV_CHECK_STR(r.ice_pwd, "xhqXwN3vmrS+7ubFvItth26b");
	CV_CHECK_STR(r.fp_alg, "sha-256");
	CV_CHECK_INT(r.fp_len, 32);
	CV_CHECK_INT(r.remote_setup, CV_SDP_SETUP_ACTPASS);
	CV_CHECK_INT(r.local_setup, CV_SDP_SETUP_PASSIVE);
	const struct cv_sdp_pub_mline *a = &r.mlines[0], *v = &r.mlines[1];
	CV_CHECK(a->accepted);
	CV_CHECK_STR(a->mid, "0");
	CV_CHECK_INT(a->kind, CV_SDP_KIND_AUDIO);
	CV_CHECK_STR(a->codec, "opus");
	CV_CHECK_INT(a->pt, 111);
	CV_CHECK_INT(a->clock_rate, 48000);
	CV_CHECK_INT(a->channels, 2);
	CV_CHECK_INT(a->rtx_pt, 0);
	/* transport-cc is not agreed to: the node does not send it. */
	CV_CHECK_INT(a->fb, 0);
	CV_CHECK_INT(a->ext_audio_level, 1);
	CV_CHECK_INT(a->ext_abs_send_time, 2);
	CV_CHECK_INT(a->ext_twcc, 0);
	CV_CHECK_INT(a->ext_mid, 4);
	CV_CHECK_INT(a->ssrc, 1510285434u);
	CV_CHECK_INT(a->rtx_ssrc, 0);
	CV_CHECK_INT(a->dir, CV_SDP_DIR_RECVONLY);
	CV_CHECK(v->accepted);
	CV_CHECK_STR(v->codec, "VP8");
	CV_CHECK_INT(v->pt, 96);
	CV_CHECK_INT(v->rtx_pt, 97);
	CV_CHECK_INT(v->ext_rid, 10);
	CV_CHECK_INT(v->ext_rrid, 11);
	CV_CHECK_INT(v->ext_audio_level, 0);
	CV_CHECK_INT(v->ssrc, 4154914216u);
	CV_CHECK_INT(v->rtx_ssrc, 3585481667u);
	CV_CHECK_STR(v->fmtp, "");
	free(ans);
}

static void test_answer_screen(void)
{
	struct cv_sdp_publish_result r;
	char *ans =
		answer_data("chromium_av_screen_offer.sdp", &r, &test_local, 0);
	CV_CHECK(ans != NULL);
	if (!ans)
		return;
	CV_CHECK_INT(r.n_mlines, 3);
	CV_CHECK(r.mlines[2].accepted);
	CV_CHECK_STR(r.mlines[2].mid, "2");
	CV_CHECK_STR(r.mlines[2].codec, "VP8");
	CV_CHECK(r.mlines[2].ssrc != 0 && r.mlines[2].ssrc != r.mlines[1].ssrc);
	CV_CHECK(strstr(ans, "a=group:BUNDLE 0 1 2\r\n") != NULL);
	check_answer_parses(ans, 3);
	free(ans);
}

static void test_answer_h264(void)
{
	struct cv_sdp_publish_result r;
	char *ans = answer_data("chromium_h264_offer.sdp", &r, &test_local, 0);
	CV_CHECK(ans != NULL);
	if (!ans)
		return;
	const struct cv_sdp_pub_mline *v = &r.mlines[0];
	CV_CHECK(v->accepted);
	CV_CHECK_STR(v->codec, "H264");
	CV_CHECK_INT(v->pt, 108); /* 42e01f with packetization-mode=1 */
	CV_CHECK_INT(v->rtx_pt, 109);
	CV_CHECK_STR(v->fmtp, "level-asymmetry-allowed=1;packetization-mode=1;"
			      "profile-level-id=42e01f");
	CV_CHECK(strstr(ans, "a=rtpmap:108 H264/90000\r\n") != NULL);
	check_answer_parses(ans, 1);
	free(ans);
	/* A policy without H264 finds no common codec. */
	struct cv_sdp_local l = test_local;
	l.codecs = CV_SDP_CODEC_OPUS | CV_SDP_CODEC_VP8;
	ans = answer_data("chromium_h264_offer.sdp", &r, &l, CV_EUNSUPP);
	CV_CHECK(ans == NULL);
	/* VP8 is preferred when both are offered, unless policy says no. */
	l.codecs = CV_SDP_CODEC_OPUS | CV_SDP_CODEC_H264;
	ans = answer_data("chromium_av_offer.sdp", &r, &l, 0);
	CV_CHECK_STR(r.mlines[1].codec, "H264");
	CV_CHECK_INT(r.mlines[1].pt, 108);
	free(ans);
}

static void test_answer_datachannel(void)
{
	struct cv_sdp_publish_result r;
	char *ans = answer_data("chromium_av_datachannel_offer.sdp", &r,
				&test_local, 0);
	CV_CHECK(ans != NULL);
	if (!ans)
		return;
	CV_CHECK_INT(r.n_mlines, 3);
	CV_CHECK(!r.mlines[2].accepted);
	CV_CHECK_INT(r.mlines[2].kind, CV_SDP_KIND_APPLICATION);
	CV_CHECK(strstr(ans, "a=group:BUNDLE 0 1\r\n") != NULL);
	CV_CHECK(strstr(ans, "m=application 0 UDP/DTLS/SCTP "
			     "webrtc-datachannel\r\n") != NULL);
	check_answer_parses(ans, 3);
	free(ans);
}

/* Replaces every `from` by `to` in a copy of data file `name`. */
static char *edited(const char *name, const char *from, const char *to)
{
	size_t len;
	char *s = read_data(name, &len);
	if (!s)
		return NULL;
	char *out = malloc(len * 2 + 1024), *o = out;
	if (!out) {
		free(s);
		return NULL;
	}
	const char *p = s, *q;
	while ((q = strstr(p, from))) {
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		strcpy(o, to);
		o += strlen(to);
		p = q + strlen(from);
	}
	strcpy(o, p);
	free(s);
	return out;
}

static int answer_text(const char *offer_text, struct cv_sdp_publish_result *r,
		       char **ans)
{
	struct cv_sdp *offer = parse_str(offer_text);
	if (!offer)
		return -1;
	int rc = cv_sdp_answer_publish(offer, &test_local, r, ans);
	cv_sdp_free(offer);
	return rc;
}

static void test_answer_setup_and_errors(void)
{
	struct cv_sdp_publish_result r;
	char *ans = NULL;
	char *s = edited("chromium_av_offer.sdp", "a=setup:actpass",
			 "a=setup:passive");
	CV_CHECK_INT(answer_text(s, &r, &ans), 0);
	CV_CHECK_INT(r.remote_setup, CV_SDP_SETUP_PASSIVE);
	CV_CHECK_INT(r.local_setup, CV_SDP_SETUP_ACTIVE);
	CV_CHECK(ans && count(ans, "a=setup:active\r\n") == 2);
	free(ans);
	ans = NULL;
	free(s);

	s = edited("chromium_av_offer.sdp", "a=setup:actpass",
		   "a=setup:holdconn");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EUNSUPP);
	free(s);

	s = edited("chromium_av_offer.sdp", "a=fingerprint:", "a=x-fp:");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EUNSUPP);
	free(s);

	s = edited("chromium_av_offer.sdp", "a=ice-ufrag:", "a=x-ufrag:");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EPROTO);
	free(s);

	s = edited("chromium_av_offer.sdp", "a=group:BUNDLE", "a=group:LS");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EPROTO);
	free(s);

	s = edited("chromium_av_offer.sdp", "a=mid:1", "a=x-mid:1");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EPROTO);
	free(s);

	/* Inactive stays inactive; recvonly offers get nothing from us. */
	s = edited("chromium_av_offer.sdp", "a=sendonly", "a=inactive");
	CV_CHECK_INT(answer_text(s, &r, &ans), 0);
	CV_CHECK_INT(r.mlines[0].dir, CV_SDP_DIR_INACTIVE);
	CV_CHECK(ans && count(ans, "a=inactive\r\n") == 2);
	free(ans);
	ans = NULL;
	free(s);

	/* sendrecv offers are answered recvonly. */
	s = edited("chromium_sendrecv_offer.sdp", "\r\n", "\r\n");
	CV_CHECK_INT(answer_text(s, &r, &ans), 0);
	CV_CHECK_INT(r.mlines[0].dir, CV_SDP_DIR_RECVONLY);
	CV_CHECK_INT(r.mlines[1].dir, CV_SDP_DIR_RECVONLY);
	free(ans);
	ans = NULL;
	free(s);

	/* Without rtcp-mux the m-line is rejected; with none left, EUNSUPP. */
	s = edited("chromium_av_offer.sdp", "a=rtcp-mux\r\n", "");
	CV_CHECK_INT(answer_text(s, &r, &ans), CV_EUNSUPP);
	free(s);

	/* Bad local values. */
	struct cv_sdp *offer = parse_data("chromium_av_offer.sdp");
	struct cv_sdp_local l = test_local;
	l.ice_pwd = "short";
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), -EINVAL);
	l = test_local;
	l.candidates[0].ip = "not-an-ip\r\na=evil";
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), -EINVAL);
	l = test_local;
	l.fingerprint = "sha-256 ZZ";
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), -EINVAL);
	l = test_local;
	l.n_candidates = 0;
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), -EINVAL);
	l = test_local;
	l.setup = CV_SDP_SETUP_ACTIVE;
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), 0);
	CV_CHECK_INT(r.local_setup, CV_SDP_SETUP_ACTIVE);
	free(ans);
	cv_sdp_free(offer);
}

/* ---- subscribe offer -------------------------------------------------- */

static const struct cv_sdp_sub_mline sub_mlines[] = {
	{.mid = "0",
	 .kind = CV_SDP_KIND_AUDIO,
	 .active = true,
	 .codec = "opus",
	 .pt = 111,
	 .clock_rate = 48000,
	 .channels = 2,
	 .fmtp = "minptime=10;useinbandfec=1",
	 .ssrc = 1001,
	 .cname = "cv-p1",
	 .msid_stream = "p1",
	 .msid_track = "p1-mic"},
	{.mid = "1",
	 .kind = CV_SDP_KIND_VIDEO,
	 .active = true,
	 .codec = "VP8",
	 .pt = 96,
	 .clock_rate = 90000,
	 .rtx_pt = 97,
	 .ssrc = 2001,
	 .rtx_ssrc = 2002,
	 .cname = "cv-p1",
	 .msid_stream = "p1",
	 .msid_track = "p1-cam"},
	{.mid = "2",
	 .kind = CV_SDP_KIND_VIDEO,
	 .active = false,
	 .codec = "VP8",
	 .pt = 96,
	 .clock_rate = 90000},
	{.mid = "3",
	 .kind = CV_SDP_KIND_VIDEO,
	 .active = true,
	 .codec = "H264",
	 .pt = 108,
	 .clock_rate = 90000,
	 .fmtp = "level-asymmetry-allowed=1;packetization-mode=1;"
		 "profile-level-id=42e01f",
	 .rtx_pt = 109,
	 .ssrc = 3001,
	 .rtx_ssrc = 3002,
	 .cname = "cv-p2",
	 .msid_stream = "p2",
	 .msid_track = "p2-screen"},
};
#define N_SUB (sizeof(sub_mlines) / sizeof(sub_mlines[0]))

static void test_sub_offer(void)
{
	char *offer = NULL;
	CV_CHECK_INT(
		cv_sdp_offer_subscribe(&test_local, sub_mlines, N_SUB, &offer),
		0);
	if (!offer)
		return;
	CV_CHECK(strstr(offer, "a=group:BUNDLE 0 1 3\r\n") != NULL);
	CV_CHECK_INT(count(offer, "a=setup:actpass\r\n"), 3);
	CV_CHECK(strstr(offer, "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n") != NULL);
	struct cv_sdp *sdp = parse_str(offer);
	CV_CHECK(sdp != NULL);
	if (sdp) {
		CV_CHECK(sdp->ice_lite);
		CV_CHECK_INT(sdp->n_media, 4);
		const struct cv_sdp_media *a = &sdp->media[0];
		CV_CHECK_INT(a->dir, CV_SDP_DIR_SENDONLY);
		CV_CHECK_INT(a->n_extmaps, 3);
		CV_CHECK_INT(a->extmaps[2].id, 3);
		CV_CHECK_STR(a->formats[0].encoding, "opus");
		CV_CHECK_INT(a->ssrcs[0].ssrc, 1001);
		CV_CHECK_STR(a->ssrcs[0].cname, "cv-p1");
		CV_CHECK_STR(a->ssrcs[0].msid, "p1 p1-mic");
		CV_CHECK_STR(a->msid_track, "p1-mic");
		const struct cv_sdp_media *v = &sdp->media[1];
		CV_CHECK_INT(v->n_extmaps, 2);
		CV_CHECK_INT(v->formats[0].fb, CV_SDP_FB_NACK |
						       CV_SDP_FB_NACK_PLI |
						       CV_SDP_FB_CCM_FIR);
		CV_CHECK_INT(v->formats[1].apt, 96);
		CV_CHECK_INT(v->n_ssrc_groups, 1);
		CV_CHECK_INT(v->ssrc_groups[0].ssrcs[1], 2002);
		CV_CHECK_INT(sdp->media[2].port, 0);
		CV_CHECK_INT(sdp->media[2].dir, CV_SDP_DIR_INACTIVE);
		CV_CHECK_STR(sdp->media[3].formats[0].fmtp, sub_mlines[3].fmtp);
		CV_CHECK_INT(sdp->media[3].setup, CV_SDP_SETUP_ACTPASS);
	}
	cv_sdp_free(sdp);
	free(offer);

	/* No m-line at all: only the session header. */
	offer = NULL;
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, NULL, 0, &offer), 0);
	CV_CHECK(offer && !strstr(offer, "m=") && !strstr(offer, "group"));
	sdp = offer ? parse_str(offer) : NULL;
	CV_CHECK(sdp && sdp->n_media == 0);
	cv_sdp_free(sdp);
	free(offer);

	/* Bad entries are refused. */
	struct cv_sdp_sub_mline bad[2] = {sub_mlines[0], sub_mlines[1]};
	offer = NULL;
	bad[1].mid = "0";
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, bad, 2, &offer),
		     -EINVAL);
	bad[1] = sub_mlines[1];
	bad[1].rtx_ssrc = 0;
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, bad, 2, &offer),
		     -EINVAL);
	bad[1] = sub_mlines[1];
	bad[1].cname = "a b";
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, bad, 2, &offer),
		     -EINVAL);
	bad[1] = sub_mlines[1];
	bad[1].fmtp = "x\r\na=evil";
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, bad, 2, &offer),
		     -EINVAL);
	bad[1] = sub_mlines[1];
	bad[1].kind = CV_SDP_KIND_APPLICATION;
	CV_CHECK_INT(cv_sdp_offer_subscribe(&test_local, bad, 2, &offer),
		     -EINVAL);
	CV_CHECK_INT(
		cv_sdp_offer_subscribe(&test_local, sub_mlines, 17, &offer),
		CV_ETOOBIG);
	CV_CHECK(offer == NULL);
}

static void test_sub_answer(void)
{
	struct cv_sdp *ans = parse_data("chromium_sub_answer.sdp");
	CV_CHECK(ans != NULL);
	if (!ans)
		return;
	struct cv_sdp_subscribe_result r;
	CV_CHECK_INT(cv_sdp_check_subscribe_answer(sub_mlines, N_SUB, ans, &r),
		     0);
	CV_CHECK_INT(r.n_mlines, N_SUB);
	CV_CHECK(r.mlines[0].accepted && r.mlines[1].accepted &&
		 !r.mlines[2].accepted && r.mlines[3].accepted);
	CV_CHECK(r.mlines[1].rtx && r.mlines[3].rtx);
	CV_CHECK_INT(r.mlines[0].dir, CV_SDP_DIR_RECVONLY);
	CV_CHECK_INT(r.mlines[0].ext_audio_level, 3);
	CV_CHECK_INT(r.mlines[1].ext_mid, 1);
	CV_CHECK(r.mlines[1].fb & CV_SDP_FB_NACK_PLI);
	CV_CHECK_INT(r.remote_setup, CV_SDP_SETUP_ACTIVE);
	CV_CHECK_INT(r.fp_len, 32);
	CV_CHECK_STR(r.fp_alg, "sha-256");
	CV_CHECK(strlen(r.ice_ufrag) >= 4);
	/* A wrong count or order is a protocol error. */
	CV_CHECK_INT(
		cv_sdp_check_subscribe_answer(sub_mlines, N_SUB - 1, ans, &r),
		CV_EPROTO);
	struct cv_sdp_sub_mline swapped[N_SUB];
	memcpy(swapped, sub_mlines, sizeof(swapped));
	swapped[0].mid = "1";
	swapped[1].mid = "0";
	CV_CHECK_INT(cv_sdp_check_subscribe_answer(swapped, N_SUB, ans, &r),
		     CV_EPROTO);
	cv_sdp_free(ans);

	/* actpass in an answer and sendrecv answers are refused. */
	char *s = edited("chromium_sub_answer.sdp", "a=setup:active",
			 "a=setup:actpass");
	ans = parse_str(s);
	CV_CHECK_INT(cv_sdp_check_subscribe_answer(sub_mlines, N_SUB, ans, &r),
		     CV_EPROTO);
	cv_sdp_free(ans);
	free(s);
	s = edited("chromium_sub_answer.sdp", "a=recvonly", "a=sendrecv");
	ans = parse_str(s);
	CV_CHECK_INT(cv_sdp_check_subscribe_answer(sub_mlines, N_SUB, ans, &r),
		     CV_EPROTO);
	cv_sdp_free(ans);
	free(s);
	/* Our codec refused: that m-line is not accepted. */
	s = edited("chromium_sub_answer.sdp", "a=rtpmap:96 VP8/90000",
		   "a=rtpmap:96 VP9/90000");
	ans = parse_str(s);
	CV_CHECK_INT(cv_sdp_check_subscribe_answer(sub_mlines, N_SUB, ans, &r),
		     0);
	CV_CHECK(!r.mlines[1].accepted && r.mlines[3].accepted);
	cv_sdp_free(ans);
	free(s);
}

/* ---- tools for the browser check -------------------------------------- */

static int tool(int argc, char **argv)
{
	char *out = NULL;
	int rc = -EINVAL;
	if (!strcmp(argv[1], "--answer") && argc > 2) {
		size_t len;
		char *s = read_path(argv[2], &len);
		struct cv_sdp *sdp = NULL;
		rc = s ? cv_sdp_parse(s, len, &sdp) : -ENOENT;
		if (rc == 0)
			rc = cv_sdp_answer_publish(sdp, &test_local, NULL,
						   &out);
		cv_sdp_free(sdp);
		free(s);
	} else if (!strcmp(argv[1], "--sub-offer")) {
		size_t n = argc > 2 ? (size_t)atoi(argv[2]) : N_SUB;
		struct cv_sdp_sub_mline ml[N_SUB];
		memcpy(ml, sub_mlines, sizeof(ml));
		/* "off0": the first (BUNDLE-tagged) m-line is stopped. */
		if (argc > 3 && !strcmp(argv[3], "off0"))
			ml[0].active = false;
		rc = cv_sdp_offer_subscribe(&test_local, ml,
					    n > N_SUB ? N_SUB : n, &out);
	} else if (!strcmp(argv[1], "--check-sub") && argc > 2) {
		size_t len;
		char *s = read_path(argv[2], &len);
		struct cv_sdp *sdp = NULL;
		struct cv_sdp_subscribe_result r;
		rc = s ? cv_sdp_parse(s, len, &sdp) : -ENOENT;
		if (rc == 0)
			rc = cv_sdp_check_subscribe_answer(sub_mlines, N_SUB,
							   sdp, &r);
		cv_sdp_free(sdp);
		free(s);
	}
	if (out)
		fputs(out, stdout);
	free(out);
	if (rc)
		fprintf(stderr, "error: %s (%d)\n",
			rc == CV_EPARSE ? "parse" : "", rc);
	return rc ? 1 : 0;
}

/* ---- perc rooms -------------------------------------------------------- */

/* Drops every line of text that starts with prefix (in place). */
static void drop_lines(char *text, const char *prefix)
{
	char *r = text, *w = text;
	while (*r) {
		size_t n = strcspn(r, "\n");
		size_t line = n + (r[n] == '\n');
		if (strncmp(r, prefix, strlen(prefix)) != 0) {
			memmove(w, r, line);
			w += line;
		}
		r += line;
	}
	*w = '\0';
}

static int answer_perc(const char *offer_text, struct cv_sdp_publish_result *r,
		       char **ans)
{
	struct cv_sdp_local l = test_local;
	l.perc = true;
	struct cv_sdp *offer = parse_str(offer_text);
	if (!offer)
		return -1;
	int rc = cv_sdp_answer_publish(offer, &l, r, ans);
	cv_sdp_free(offer);
	return rc;
}

/* docs/protocol.md "Perc rooms": setup passive, no rtx, a=ssrc required. */
static void test_perc_publish(void)
{
	struct cv_sdp_publish_result r;
	char *ans = NULL;
	char *s = edited("chromium_av_offer.sdp", "\r\n", "\r\n");
	CV_CHECK_INT(answer_perc(s, &r, &ans), 0);
	CV_CHECK(ans && count(ans, "a=setup:passive\r\n") == 2);
	CV_CHECK(ans && !strstr(ans, "rtx") && !strstr(ans, "apt="));
	CV_CHECK(ans && strstr(ans, "m=video 40000 UDP/TLS/RTP/SAVPF 96\r\n"));
	CV_CHECK_INT(r.local_setup, CV_SDP_SETUP_PASSIVE);
	CV_CHECK_INT(r.mlines[1].rtx_pt, 0);
	CV_CHECK_INT(r.mlines[1].rtx_ssrc, 0);
	CV_CHECK_INT(r.mlines[1].ssrc, 4154914216u);
	CV_CHECK_INT(r.mlines[0].ssrc, 1510285434u);
	free(ans);
	ans = NULL;
	free(s);

	/* The endpoint must be the DTLS client: an active offer is fine... */
	s = edited("chromium_av_offer.sdp", "a=setup:actpass",
		   "a=setup:active");
	CV_CHECK_INT(answer_perc(s, &r, &ans), 0);
	CV_CHECK_INT(r.local_setup, CV_SDP_SETUP_PASSIVE);
	free(ans);
	ans = NULL;
	free(s);
	/* ...a passive one is not (the forward answer would be active). */
	s = edited("chromium_av_offer.sdp", "a=setup:actpass",
		   "a=setup:passive");
	CV_CHECK_INT(answer_perc(s, &r, &ans), CV_EUNSUPP);
	CV_CHECK(ans == NULL);
	free(s);

	/* Without a=ssrc the sending m-lines cannot be forwarded. */
	s = edited("chromium_av_offer.sdp", "\r\n", "\r\n");
	drop_lines(s, "a=ssrc");
	CV_CHECK_INT(answer_perc(s, &r, &ans), CV_EPROTO);
	CV_CHECK(ans == NULL);
	/* The same offer is fine in a forward room (SSRC learnt from MID). */
	CV_CHECK_INT(answer_text(s, &r, &ans), 0);
	CV_CHECK_INT(r.mlines[0].ssrc, 0);
	free(ans);
	ans = NULL;
	/* An m-line that does not send needs no SSRC. */
	char *t = malloc(strlen(s) * 2 + 16);
	if (t) {
		const char *p = s, *q;
		char *o = t;
		while ((q = strstr(p, "a=sendonly"))) {
			memcpy(o, p, (size_t)(q - p));
			o += q - p;
			o += sprintf(o, "a=inactive");
			p = q + strlen("a=sendonly");
		}
		strcpy(o, p);
		CV_CHECK_INT(answer_perc(t, &r, &ans), 0);
		CV_CHECK_INT(r.mlines[0].dir, CV_SDP_DIR_INACTIVE);
		free(ans);
		ans = NULL;
		free(t);
	}
	free(s);

	/* Perc and an active local role contradict each other. */
	struct cv_sdp *offer = parse_data("chromium_av_offer.sdp");
	struct cv_sdp_local l = test_local;
	l.perc = true;
	l.setup = CV_SDP_SETUP_ACTIVE;
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), -EINVAL);
	l.setup = CV_SDP_SETUP_PASSIVE;
	CV_CHECK_INT(cv_sdp_answer_publish(offer, &l, &r, &ans), 0);
	free(ans);
	cv_sdp_free(offer);
}

static void test_perc_subscribe(void)
{
	struct cv_sdp_local l = test_local;
	l.perc = true;
	struct cv_sdp_sub_mline ml[2] = {sub_mlines[0], sub_mlines[1]};
	char *offer = NULL;
	/* An rtx stream is refused in perc... */
	CV_CHECK_INT(cv_sdp_offer_subscribe(&l, ml, 2, &offer), -EINVAL);
	CV_CHECK(offer == NULL);
	/* ...without it, the offer says passive and keeps the SSRCs given. */
	ml[1].rtx_pt = 0;
	ml[1].rtx_ssrc = 0;
	CV_CHECK_INT(cv_sdp_offer_subscribe(&l, ml, 2, &offer), 0);
	CV_CHECK(offer && count(offer, "a=setup:passive\r\n") == 2);
	CV_CHECK(offer && !strstr(offer, "actpass") && !strstr(offer, "rtx"));
	CV_CHECK(offer && strstr(offer, "a=ssrc:2001 cname:cv-p1\r\n"));
	struct cv_sdp *sdp = offer ? parse_str(offer) : NULL;
	CV_CHECK(sdp && sdp->media[1].setup == CV_SDP_SETUP_PASSIVE);
	CV_CHECK(sdp && sdp->media[1].n_ssrc_groups == 0);
	cv_sdp_free(sdp);
	free(offer);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strncmp(argv[1], "--", 2))
		return tool(argc, argv);
	if (argc > 1)
		data_dir = argv[1];
	test_parse_chromium_av();
	test_parse_simulcast();
	test_parse_lf_and_session_inherit();
	test_malformed();
	test_limits();
	test_truncation();
	test_answer_av();
	test_answer_screen();
	test_answer_h264();
	test_answer_datachannel();
	test_answer_setup_and_errors();
	test_sub_offer();
	test_sub_answer();
	test_perc_publish();
	test_perc_subscribe();
	return cv_test_done("sdp");
}
