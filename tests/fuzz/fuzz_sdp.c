/*
 * libFuzzer target for the SDP parser: parse; when it parses, answer it
 * as a publish offer and check the answer against it as if it were a
 * subscribe answer; our own answer must always parse again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cv_sdp_local fuzz_local = {
	.ice_ufrag = "fuzz",
	.ice_pwd = "fuzzfuzzfuzzfuzzfuzzfuzz",
	.fingerprint = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:"
		       "FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
	.candidates = {{"192.0.2.1", 40000}, {"2001:db8::1", 40001}},
	.n_candidates = 2,
	.session_id = 1,
	.session_version = 1,
};

static const struct cv_sdp_sub_mline fuzz_sub[] = {
	{.mid = "0",
	 .kind = CV_SDP_KIND_AUDIO,
	 .active = true,
	 .codec = "opus",
	 .pt = 111,
	 .clock_rate = 48000,
	 .channels = 2,
	 .ssrc = 1,
	 .cname = "c"},
	{.mid = "1",
	 .kind = CV_SDP_KIND_VIDEO,
	 .active = true,
	 .codec = "VP8",
	 .pt = 96,
	 .clock_rate = 90000,
	 .rtx_pt = 97,
	 .ssrc = 2,
	 .rtx_ssrc = 3,
	 .cname = "c"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_sdp *sdp = NULL;
	struct cv_sdp_error err;
	if (cv_sdp_parse_ex((const char *)data, size, &sdp, &err) != 0)
		return 0;
	struct cv_sdp_subscribe_result sres;
	size_t n = sdp->n_media < 2 ? sdp->n_media : 2;
	(void)cv_sdp_check_subscribe_answer(fuzz_sub, n, sdp, &sres);

	struct cv_sdp_publish_result res;
	char *answer = NULL;
	if (cv_sdp_answer_publish(sdp, &fuzz_local, &res, &answer) == 0) {
		struct cv_sdp *again = NULL;
		if (cv_sdp_parse(answer, strlen(answer), &again) != 0)
			abort(); /* we wrote something we cannot read */
		if (again->n_media != sdp->n_media)
			abort();
		cv_sdp_free(again);
		free(answer);
	}
	cv_sdp_free(sdp);
	return 0;
}
