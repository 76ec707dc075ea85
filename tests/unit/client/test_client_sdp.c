/*
 * Client-side SDP, checked against the node's own SDP code: the publish
 * offer must parse and be answered by cv_sdp_answer_publish, and the
 * answer to a cv_sdp_offer_subscribe offer must pass
 * cv_sdp_check_subscribe_answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_priv.h"
#include "conclave/err.h"
#include "cv_test.h"

#define FP                                                                     \
	"sha-256 "                                                             \
	"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"   \
	"67:89:AB:CD:EF:01:23:45:67:89"

static const struct cv_client_sdp_local client_local = {
	.ice_ufrag = "cufr",
	.ice_pwd = "clientpasswordclientpassword",
	.fingerprint = FP,
	.candidates = {"candidate:1 1 UDP 2015363327 127.0.0.1 40001 typ host"},
	.n_candidates = 1,
	.cname = "cname0123",
	.session_id = 42,
};

static const struct cv_sdp_local node_local = {
	.ice_ufrag = "nodeufrag",
	.ice_pwd = "nodepasswordnodepassword",
	.fingerprint = FP,
	.candidates = {{"127.0.0.1", 40000}},
	.n_candidates = 1,
};

static void test_publish_offer(void)
{
	char buf[8192];
	int n = cv_client_sdp_publish_offer(buf, sizeof(buf), &client_local,
					    true, 1111, true, 2222);
	CV_CHECK(n > 0);
	CV_CHECK_INT(strlen(buf), n);
	struct cv_sdp *sdp = NULL;
	CV_CHECK_INT(cv_sdp_parse(buf, (size_t)n, &sdp), 0);
	if (!sdp)
		return;
	CV_CHECK(sdp->has_bundle);
	CV_CHECK_INT(sdp->n_bundle_mids, 2);
	CV_CHECK_INT(sdp->n_media, 2);
	const struct cv_sdp_media *a = &sdp->media[0], *v = &sdp->media[1];
	CV_CHECK_INT(a->kind, CV_SDP_KIND_AUDIO);
	CV_CHECK_INT(v->kind, CV_SDP_KIND_VIDEO);
	CV_CHECK_STR(a->mid, "a0");
	CV_CHECK_STR(v->mid, "v0");
	CV_CHECK_INT(a->dir, CV_SDP_DIR_SENDONLY);
	CV_CHECK_INT(v->dir, CV_SDP_DIR_SENDONLY);
	CV_CHECK(a->rtcp_mux && v->rtcp_mux);
	CV_CHECK_INT(a->setup, CV_SDP_SETUP_ACTPASS);
	CV_CHECK_STR(a->ice_ufrag, "cufr");
	CV_CHECK_INT(a->fingerprint.len, 32);
	CV_CHECK_INT(a->n_candidates, 1);
	CV_CHECK_INT(a->n_ssrcs, 1);
	CV_CHECK_INT(a->ssrcs[0].ssrc, 1111);
	CV_CHECK_INT(v->ssrcs[0].ssrc, 2222);
	CV_CHECK_INT(v->n_extmaps, 2);

	struct cv_sdp_publish_result res;
	char *answer = NULL;
	CV_CHECK_INT(cv_sdp_answer_publish(sdp, &node_local, &res, &answer), 0);
	CV_CHECK_INT(res.n_mlines, 2);
	CV_CHECK(res.mlines[0].accepted && res.mlines[1].accepted);
	CV_CHECK_STR(res.mlines[0].codec, "opus");
	CV_CHECK_STR(res.mlines[1].codec, "VP8");
	CV_CHECK_INT(res.mlines[1].ext_abs_send_time,
		     CV_CLIENT_EXT_ABS_SEND_TIME);
	CV_CHECK_INT(res.mlines[0].ssrc, 1111);
	CV_CHECK(res.mlines[1].fb & CV_SDP_FB_NACK_PLI);
	CV_CHECK_INT(res.local_setup, CV_SDP_SETUP_PASSIVE);
	free(answer);
	cv_sdp_free(sdp);

	/* Audio only: one m-line, one BUNDLE mid. */
	n = cv_client_sdp_publish_offer(buf, sizeof(buf), &client_local, true,
					1, false, 0);
	CV_CHECK(n > 0);
	CV_CHECK(strstr(buf, "a=group:BUNDLE a0\r\n") != NULL);
	CV_CHECK(strstr(buf, "m=video") == NULL);

	/* Every too-small buffer fails cleanly. */
	int full = cv_client_sdp_publish_offer(buf, sizeof(buf), &client_local,
					       true, 1, true, 2);
	for (size_t cap = 0; cap <= (size_t)full; cap += 7) {
		char small[8192];
		CV_CHECK_INT(cv_client_sdp_publish_offer(small, cap,
							 &client_local, true, 1,
							 true, 2),
			     -ENOBUFS);
	}
	CV_CHECK_INT(cv_client_sdp_publish_offer(buf, sizeof(buf),
						 &client_local, false, 0, false,
						 0),
		     -EINVAL);
	CV_CHECK_INT(cv_client_sdp_publish_offer(buf, sizeof(buf), NULL, true,
						 0, false, 0),
		     -EINVAL);
}

static void test_subscribe_answer(void)
{
	struct cv_sdp_sub_mline ml[3] = {
		{.mid = "0",
		 .kind = CV_SDP_KIND_AUDIO,
		 .active = true,
		 .codec = "opus",
		 .pt = 111,
		 .clock_rate = 48000,
		 .channels = 2,
		 .fmtp = "minptime=10;useinbandfec=1",
		 .ssrc = 5000,
		 .cname = "x",
		 .msid_stream = "s",
		 .msid_track = "t"},
		{.mid = "1",
		 .kind = CV_SDP_KIND_VIDEO,
		 .active = true,
		 .codec = "VP8",
		 .pt = 96,
		 .clock_rate = 90000,
		 .rtx_pt = 97,
		 .ssrc = 6000,
		 .rtx_ssrc = 6001,
		 .cname = "x",
		 .msid_stream = "s",
		 .msid_track = "v"},
		{.mid = "2",
		 .kind = CV_SDP_KIND_VIDEO,
		 .active = true,
		 .paused = true,
		 .codec = "VP8",
		 .pt = 96,
		 .clock_rate = 90000},
	};
	char *offer_text = NULL;
	CV_CHECK_INT(cv_sdp_offer_subscribe(&node_local, ml, 3, &offer_text),
		     0);
	struct cv_sdp *offer = NULL;
	CV_CHECK_INT(cv_sdp_parse(offer_text, strlen(offer_text), &offer), 0);
	free(offer_text);
	if (!offer)
		return;
	char buf[8192];
	struct cv_client_sub_mline out[CV_SDP_MAX_MEDIA];
	size_t n = 0;
	int len = cv_client_sdp_subscribe_answer(buf, sizeof(buf), offer,
						 &client_local, out,
						 CV_SDP_MAX_MEDIA, &n);
	CV_CHECK(len > 0);
	CV_CHECK_INT(n, 3);
	CV_CHECK(out[0].active && !out[0].video);
	CV_CHECK_INT(out[0].ssrc, 5000);
	CV_CHECK_INT(out[0].pt, 111);
	CV_CHECK(out[1].active && out[1].video);
	CV_CHECK_INT(out[1].ssrc, 6000);
	CV_CHECK_INT(out[1].clock_rate, 90000);
	CV_CHECK(!out[2].active);
	CV_CHECK_INT(out[2].ssrc, 0);

	struct cv_sdp *answer = NULL;
	CV_CHECK_INT(cv_sdp_parse(buf, (size_t)len, &answer), 0);
	struct cv_sdp_subscribe_result res;
	if (answer) {
		CV_CHECK_INT(cv_sdp_check_subscribe_answer(ml, 3, answer, &res),
			     0);
		CV_CHECK(res.mlines[0].accepted && res.mlines[1].accepted);
		CV_CHECK_INT(res.mlines[0].dir, CV_SDP_DIR_RECVONLY);
		CV_CHECK_INT(res.remote_setup, CV_SDP_SETUP_ACTIVE);
		CV_CHECK(res.mlines[1].fb & CV_SDP_FB_NACK);
	}
	cv_sdp_free(answer);

	/* Too few output slots, too small buffers. */
	CV_CHECK_INT(cv_client_sdp_subscribe_answer(buf, sizeof(buf), offer,
						    &client_local, out, 2, &n),
		     -ENOBUFS);
	for (size_t cap = 0; cap <= (size_t)len; cap += 13)
		CV_CHECK_INT(cv_client_sdp_subscribe_answer(
				     buf, cap, offer, &client_local, out,
				     CV_SDP_MAX_MEDIA, &n),
			     -ENOBUFS);
	cv_sdp_free(offer);

	/* An offer without BUNDLE or ICE values is refused. */
	static const char bad[] = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"
				  "t=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
				  "a=mid:0\r\na=sendonly\r\n"
				  "a=rtpmap:111 opus/48000/2\r\n";
	CV_CHECK_INT(cv_sdp_parse(bad, sizeof(bad) - 1, &offer), 0);
	if (offer)
		CV_CHECK_INT(cv_client_sdp_subscribe_answer(
				     buf, sizeof(buf), offer, &client_local,
				     out, CV_SDP_MAX_MEDIA, &n),
			     CV_EPROTO);
	cv_sdp_free(offer);

	/* No m-line at all (nothing to receive yet): a valid answer. */
	CV_CHECK_INT(cv_sdp_offer_subscribe(&node_local, ml, 0, &offer_text),
		     0);
	offer = NULL;
	CV_CHECK_INT(cv_sdp_parse(offer_text, strlen(offer_text), &offer), 0);
	free(offer_text);
	if (offer) {
		len = cv_client_sdp_subscribe_answer(buf, sizeof(buf), offer,
						     &client_local, out,
						     CV_SDP_MAX_MEDIA, &n);
		CV_CHECK(len > 0);
		CV_CHECK_INT(n, 0);
	}
	cv_sdp_free(offer);
}

int main(void)
{
	test_publish_offer();
	test_subscribe_answer();
	return cv_test_done("test_client_sdp");
}
