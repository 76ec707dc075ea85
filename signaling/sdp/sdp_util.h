/*
 * Helpers shared by the SDP parser and writer (signaling/sdp only).
 */
#ifndef CV_SDP_UTIL_H
#define CV_SDP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/sdp.h"

/* Parses a decimal number of at most `max` from the whole of s. */
int cv_sdp_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* RFC 8866 9 token: visible ASCII except specials. */
bool cv_sdp_is_token(const char *s);

/* Visible ASCII, no space (fmtp values, cnames, msid ids). */
bool cv_sdp_is_visible(const char *s);

/* RFC 8839 5.4 ice-char: ALPHA / DIGIT / "+" / "/". */
bool cv_sdp_is_ice_chars(const char *s, size_t min, size_t max);

/* Decodes "AB:CD:..." into fp->bytes; 0 or CV_EPARSE. */
int cv_sdp_parse_fp_hex(const char *hex, struct cv_sdp_fingerprint *fp);

/* Finds a format by payload type; NULL when absent. */
const struct cv_sdp_format *cv_sdp_find_format(const struct cv_sdp_media *m,
					       int pt);

/* Copies a NUL-terminated src into dst[size], truncating; "" for NULL. */
void cv_sdp_copy(char *dst, size_t size, const char *src);

/* Text output with a ceiling; the first error sticks. */
struct cv_sdp_buf {
	char *p;
	size_t len, cap;
	int err;
};

__attribute__((format(printf, 2, 3))) void cv_sdp_buf_add(struct cv_sdp_buf *b,
							  const char *fmt, ...);

/* Hands the text to the caller (*out) or frees it; returns b->err. */
int cv_sdp_buf_finish(struct cv_sdp_buf *b, char **out);

/* Local values checked once: 0 or -EINVAL. */
int cv_sdp_check_local(const struct cv_sdp_local *l);

/* v=, o=, s=, t=, a=ice-lite. */
void cv_sdp_write_session(struct cv_sdp_buf *b, const struct cv_sdp_local *l);

/* c= with the first candidate's address. */
void cv_sdp_write_conn(struct cv_sdp_buf *b, const struct cv_sdp_local *l);

/* ice-ufrag, ice-pwd, fingerprint and setup of an m-section. */
void cv_sdp_write_transport(struct cv_sdp_buf *b, const struct cv_sdp_local *l,
			    enum cv_sdp_setup setup);

/* Host candidates and a=end-of-candidates. */
void cv_sdp_write_candidates(struct cv_sdp_buf *b,
			     const struct cv_sdp_local *l);

/* The header extension URIs the node knows. */
#define CV_SDP_URI_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define CV_SDP_URI_ABS_SEND_TIME                                               \
	"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#define CV_SDP_URI_TWCC                                                        \
	"http://www.ietf.org/id/"                                              \
	"draft-holmer-rmcat-transport-wide-cc-extensions-01"
#define CV_SDP_URI_AUDIO_LEVEL "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#define CV_SDP_URI_RID	       "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define CV_SDP_URI_RRID	       "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

/* Writes the a=rtcp-fb lines for the CV_SDP_FB_* bits in fb. */
void cv_sdp_write_fb(struct cv_sdp_buf *b, unsigned pt, uint32_t fb);

#endif
