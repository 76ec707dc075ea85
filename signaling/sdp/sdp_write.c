/*
 * Pieces every description the node writes shares: the bounded text
 * buffer, the check of the node's own values, the session header, the
 * transport attributes and the host candidates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/err.h"
#include "sdp_util.h"

void cv_sdp_buf_add(struct cv_sdp_buf *b, const char *fmt, ...)
{
	if (b->err)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0,
				  fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		/* Our output obeys the same ceiling as what we accept. */
		size_t need = b->len + (size_t)n + 1;
		if (need > CV_SDP_MAX_INPUT_BYTES) {
			b->err = CV_ETOOBIG;
			return;
		}
		size_t cap = b->cap ? b->cap : 2048;
		while (cap < need)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

int cv_sdp_buf_finish(struct cv_sdp_buf *b, char **out)
{
	if (!b->err && !b->p)
		b->err = -EINVAL;
	if (b->err) {
		free(b->p);
		b->p = NULL;
		return b->err;
	}
	*out = b->p;
	b->p = NULL;
	return 0;
}

static int check_fingerprint(const char *s)
{
	char buf[256];
	struct cv_sdp_fingerprint fp;
	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, strlen(s) + 1);
	char *sp = strchr(buf, ' ');
	if (!sp)
		return -EINVAL;
	*sp = '\0';
	if (!cv_sdp_is_token(buf) || cv_sdp_parse_fp_hex(sp + 1, &fp))
		return -EINVAL;
	return 0;
}

int cv_sdp_check_local(const struct cv_sdp_local *l)
{
	if (!l || !cv_sdp_is_ice_chars(l->ice_ufrag, 4, CV_SDP_MAX_ICE_BYTES) ||
	    !cv_sdp_is_ice_chars(l->ice_pwd, 22, CV_SDP_MAX_ICE_BYTES) ||
	    check_fingerprint(l->fingerprint))
		return -EINVAL;
	if (l->n_candidates == 0 ||
	    l->n_candidates > CV_SDP_MAX_LOCAL_CANDIDATES)
		return -EINVAL;
	for (size_t i = 0; i < l->n_candidates; i++) {
		const struct cv_sdp_local_candidate *c = &l->candidates[i];
		unsigned char a[16];
		if (!c->ip || c->port == 0 ||
		    (inet_pton(AF_INET, c->ip, a) != 1 &&
		     inet_pton(AF_INET6, c->ip, a) != 1))
			return -EINVAL;
	}
	return 0;
}

void cv_sdp_write_session(struct cv_sdp_buf *b, const struct cv_sdp_local *l)
{
	/* RFC 8829 5.2.1: o= with a random-looking session id, s=-, t=0 0;
	 * RFC 8839 5.3: a=ice-lite at session level. */
	cv_sdp_buf_add(b,
		       "v=0\r\no=- %llu %llu IN IP4 127.0.0.1\r\ns=-\r\n"
		       "t=0 0\r\na=ice-lite\r\n",
		       (unsigned long long)(l->session_id ? l->session_id : 1),
		       (unsigned long long)l->session_version);
}

static const char *addr_type(const char *ip)
{
	return strchr(ip, ':') ? "IP6" : "IP4";
}

void cv_sdp_write_conn(struct cv_sdp_buf *b, const struct cv_sdp_local *l)
{
	const char *ip = l->candidates[0].ip;
	cv_sdp_buf_add(b, "c=IN %s %s\r\n", addr_type(ip), ip);
}

void cv_sdp_write_transport(struct cv_sdp_buf *b, const struct cv_sdp_local *l,
			    enum cv_sdp_setup setup)
{
	/* RFC 8829 5.2.1: JSEP repeats the transport attributes in every
	 * bundled m-section. */
	cv_sdp_buf_add(b,
		       "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\n"
		       "a=setup:%s\r\n",
		       l->ice_ufrag, l->ice_pwd, l->fingerprint,
		       cv_sdp_setup_name(setup));
}

void cv_sdp_write_candidates(struct cv_sdp_buf *b, const struct cv_sdp_local *l)
{
	for (size_t i = 0; i < l->n_candidates; i++) {
		const struct cv_sdp_local_candidate *c = &l->candidates[i];
		/* RFC 8445 5.1.2.1: priority = 2^24 * type preference (126
		 * for host) + 2^8 * local preference + (256 - component). */
		uint32_t prio =
			(126u << 24) | ((65535u - (uint32_t)i) << 8) | 255u;
		cv_sdp_buf_add(b, "a=candidate:%zu 1 udp %u %s %u typ host\r\n",
			       i + 1, prio, c->ip, c->port);
	}
	cv_sdp_buf_add(b, "a=end-of-candidates\r\n");
}

void cv_sdp_write_fb(struct cv_sdp_buf *b, unsigned pt, uint32_t fb)
{
	if (fb & CV_SDP_FB_GOOG_REMB)
		cv_sdp_buf_add(b, "a=rtcp-fb:%u goog-remb\r\n", pt);
	if (fb & CV_SDP_FB_TRANSPORT_CC)
		cv_sdp_buf_add(b, "a=rtcp-fb:%u transport-cc\r\n", pt);
	if (fb & CV_SDP_FB_CCM_FIR)
		cv_sdp_buf_add(b, "a=rtcp-fb:%u ccm fir\r\n", pt);
	if (fb & CV_SDP_FB_NACK)
		cv_sdp_buf_add(b, "a=rtcp-fb:%u nack\r\n", pt);
	if (fb & CV_SDP_FB_NACK_PLI)
		cv_sdp_buf_add(b, "a=rtcp-fb:%u nack pli\r\n", pt);
}
