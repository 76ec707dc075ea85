/*
 * SDP parser (RFC 8866) for WebRTC descriptions.
 *
 * The input is copied once into storage owned by the description; lines
 * and fields are cut in place with NULs, so every string in the view is a
 * slice of that copy and the whole description is two allocations.
 * Nothing here trusts the input: every number is range checked, every
 * count has a ceiling, and an error names the line and the rule, never
 * the bytes.
 */
#include "conclave/sdp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conclave/err.h"
#include "sdp_util.h"

struct parser {
	struct cv_sdp *sdp;
	struct cv_sdp_media *m; /* current m-section, NULL at session level */
	unsigned line;
	const char *reason;
	const char *sess_conn; /* session-level c= address */
	bool seen_v, seen_o, seen_s, seen_t;
};

/* Records the first failure and returns its code. */
static int fail(struct parser *p, int code, const char *reason)
{
	p->reason = reason;
	return code;
}

/* ---- small helpers shared with the writer ---------------------------- */

static int parse_u64n(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return CV_EPARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CV_EPARSE;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return CV_EPARSE;
		v = v * 10 + d;
	}
	if (v > max)
		return CV_EPARSE;
	*out = v;
	return 0;
}

int cv_sdp_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s)
		return CV_EPARSE;
	return parse_u64n(s, strlen(s), max, out);
}

bool cv_sdp_is_token(const char *s)
{
	/* RFC 8866 9: token-char excludes space, controls and these. */
	static const char specials[] = "\"(),/:;<=>?@[\\]{}";
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || strchr(specials, c))
			return false;
	}
	return true;
}

bool cv_sdp_is_visible(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

bool cv_sdp_is_ice_chars(const char *s, size_t min, size_t max)
{
	if (!s)
		return false;
	size_t n = strlen(s);
	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (!ok)
			return false;
	}
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cv_sdp_parse_fp_hex(const char *hex, struct cv_sdp_fingerprint *fp)
{
	/* RFC 8122 5: fingerprint = 2UHEX *(":" 2UHEX); lower case is
	 * accepted too, as browsers have sent it. */
	size_t n = 0;
	const char *s = hex;
	for (;;) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
		if (hi < 0 || lo < 0 || n == CV_SDP_MAX_FP_BYTES)
			return CV_EPARSE;
		fp->bytes[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (*s == '\0')
			break;
		if (*s != ':')
			return CV_EPARSE;
		s++;
	}
	fp->len = n;
	return 0;
}

const struct cv_sdp_format *cv_sdp_find_format(const struct cv_sdp_media *m,
					       int pt)
{
	for (size_t i = 0; i < m->n_formats; i++)
		if (m->formats[i].pt == pt)
			return &m->formats[i];
	return NULL;
}

void cv_sdp_copy(char *dst, size_t size, const char *src)
{
	if (size == 0)
		return;
	if (!src)
		src = "";
	size_t n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Cuts the next space-separated token out of *cur; NULL at the end. */
static char *next_tok(char **cur)
{
	char *s = *cur;
	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*cur = s;
		return NULL;
	}
	char *start = s;
	while (*s && *s != ' ')
		s++;
	if (*s) {
		*s = '\0';
		s++;
	}
	*cur = s;
	return start;
}

/* What is left after the tokens taken, without leading spaces; NULL if
 * nothing. */
static char *rest(char *cur)
{
	while (*cur == ' ')
		cur++;
	return *cur ? cur : NULL;
}

static struct cv_sdp_format *find_fmt(struct cv_sdp_media *m, int pt)
{
	return (struct cv_sdp_format *)cv_sdp_find_format(m, pt);
}

static int parse_pt(const char *s, int *pt)
{
	uint64_t v;
	/* RFC 3551 3: the RTP payload type is 7 bits. */
	if (cv_sdp_parse_u64(s, 127, &v) != 0)
		return CV_EPARSE;
	*pt = (int)v;
	return 0;
}

static enum cv_sdp_dir dir_from(const char *s)
{
	if (!strcmp(s, "sendrecv"))
		return CV_SDP_DIR_SENDRECV;
	if (!strcmp(s, "sendonly"))
		return CV_SDP_DIR_SENDONLY;
	if (!strcmp(s, "recvonly"))
		return CV_SDP_DIR_RECVONLY;
	if (!strcmp(s, "inactive"))
		return CV_SDP_DIR_INACTIVE;
	return CV_SDP_DIR_NONE;
}

/* ---- session-level lines ---------------------------------------------- */

static int parse_origin(struct parser *p, char *v)
{
	/* RFC 8866 5.2: o=<username> <sess-id> <sess-version> <nettype>
	 * <addrtype> <unicast-address> */
	char *t[6];
	uint64_t n;
	for (int i = 0; i < 6; i++)
		if (!(t[i] = next_tok(&v)))
			return fail(p, CV_EPARSE, "o= needs six fields");
	if (rest(v))
		return fail(p, CV_EPARSE, "o= has extra fields");
	if (cv_sdp_parse_u64(t[1], UINT64_MAX, &n) ||
	    cv_sdp_parse_u64(t[2], UINT64_MAX, &n))
		return fail(p, CV_EPARSE, "o= session id/version not numeric");
	p->sdp->origin_user = t[0];
	p->sdp->origin_sess_id = t[1];
	p->sdp->origin_sess_version = t[2];
	return 0;
}

static int parse_timing(struct parser *p, char *v)
{
	/* RFC 8866 5.9: t=<start-time> <stop-time> */
	char *a = next_tok(&v), *b = next_tok(&v);
	uint64_t n;
	if (!a || !b || rest(v) || cv_sdp_parse_u64(a, UINT64_MAX, &n) ||
	    cv_sdp_parse_u64(b, UINT64_MAX, &n))
		return fail(p, CV_EPARSE, "t= needs two numbers");
	return 0;
}

static int parse_conn(struct parser *p, char *v)
{
	/* RFC 8866 5.7: c=<nettype> <addrtype> <connection-address> */
	char *net = next_tok(&v), *type = next_tok(&v), *addr = next_tok(&v);
	if (!net || !type || !addr || rest(v) || strcmp(net, "IN") ||
	    (strcmp(type, "IP4") && strcmp(type, "IP6")))
		return fail(p, CV_EPARSE, "c= must be IN IP4|IP6 <address>");
	if (p->m)
		p->m->conn_addr = addr;
	else
		p->sess_conn = addr;
	return 0;
}

static int parse_media_line(struct parser *p, char *v)
{
	/* RFC 8866 5.14: m=<media> <port>[/<number of ports>] <proto>
	 * <fmt> ... */
	struct cv_sdp *sdp = p->sdp;
	if (sdp->n_media == CV_SDP_MAX_MEDIA)
		return fail(p, CV_ETOOBIG, "too many m= sections");
	struct cv_sdp_media *m = &sdp->media[sdp->n_media++];
	p->m = m;
	char *kind = next_tok(&v), *port = next_tok(&v), *proto = next_tok(&v);
	char *fmts = rest(v);
	if (!kind || !port || !proto || !fmts)
		return fail(p, CV_EPARSE,
			    "m= needs media, port, proto, formats");
	if (!cv_sdp_is_token(kind) || !cv_sdp_is_visible(proto))
		return fail(p, CV_EPARSE, "m= media or proto malformed");
	m->kind_name = kind;
	if (!strcmp(kind, "audio"))
		m->kind = CV_SDP_KIND_AUDIO;
	else if (!strcmp(kind, "video"))
		m->kind = CV_SDP_KIND_VIDEO;
	else if (!strcmp(kind, "application"))
		m->kind = CV_SDP_KIND_APPLICATION;
	char *slash = strchr(port, '/');
	uint64_t n;
	if (slash) {
		*slash = '\0';
		if (cv_sdp_parse_u64(slash + 1, 65535, &n))
			return fail(p, CV_EPARSE, "m= port count malformed");
	}
	if (cv_sdp_parse_u64(port, 65535, &n))
		return fail(p, CV_EPARSE, "m= port out of range");
	m->port = (uint16_t)n;
	m->proto = proto;
	m->fmt_raw = fmts;
	m->dir = CV_SDP_DIR_NONE;
	if (!strstr(proto, "RTP/"))
		return 0;
	/* RTP: every format is a payload type number (RFC 8866 5.14). The
	 * list is scanned without cutting so fmt_raw stays whole. */
	const char *s = fmts;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		size_t len = strcspn(s, " ");
		if (parse_u64n(s, len, 127, &n))
			return fail(p, CV_EPARSE, "m= payload type not 0..127");
		if (find_fmt(m, (int)n))
			return fail(p, CV_EPARSE, "m= payload type repeated");
		if (m->n_formats == CV_SDP_MAX_FORMATS)
			return fail(p, CV_ETOOBIG, "too many payload types");
		struct cv_sdp_format *f = &m->formats[m->n_formats++];
		f->pt = (uint8_t)n;
		f->apt = -1;
		s += len;
	}
	return 0;
}

/* ---- attributes valid at both levels ---------------------------------- */

static int parse_fingerprint(struct parser *p, char *v,
			     struct cv_sdp_fingerprint *fp)
{
	/* RFC 8122 5: a=fingerprint:<hash-func> <fingerprint> */
	char *alg = v ? next_tok(&v) : NULL, *hex = v ? next_tok(&v) : NULL;
	if (fp->alg)
		return fail(p, CV_EPARSE, "fingerprint repeated");
	if (!alg || !hex || rest(v) || !cv_sdp_is_token(alg) ||
	    cv_sdp_parse_fp_hex(hex, fp))
		return fail(p, CV_EPARSE, "fingerprint malformed");
	fp->alg = alg;
	return 0;
}

static int parse_setup(struct parser *p, const char *v,
		       enum cv_sdp_setup *setup)
{
	/* RFC 4145 4, RFC 8842 5. */
	if (*setup != CV_SDP_SETUP_NONE)
		return fail(p, CV_EPARSE, "setup repeated");
	if (!v)
		return fail(p, CV_EPARSE, "setup needs a value");
	if (!strcmp(v, "actpass"))
		*setup = CV_SDP_SETUP_ACTPASS;
	else if (!strcmp(v, "active"))
		*setup = CV_SDP_SETUP_ACTIVE;
	else if (!strcmp(v, "passive"))
		*setup = CV_SDP_SETUP_PASSIVE;
	else if (!strcmp(v, "holdconn"))
		*setup = CV_SDP_SETUP_HOLDCONN;
	else
		return fail(p, CV_EPARSE, "setup value unknown");
	return 0;
}

static int parse_ice(struct parser *p, const char *name, char *v,
		     const char **ufrag, const char **pwd)
{
	/* RFC 8839 5.4: ufrag 4..256 ice-chars, pwd 22..256 ice-chars. */
	bool is_ufrag = !strcmp(name, "ice-ufrag");
	const char **dst = is_ufrag ? ufrag : pwd;
	if (*dst)
		return fail(p, CV_EPARSE, "ice credential repeated");
	if (!cv_sdp_is_ice_chars(v, is_ufrag ? 4 : 22, CV_SDP_MAX_ICE_BYTES))
		return fail(p, CV_EPARSE,
			    is_ufrag ? "ice-ufrag malformed"
				     : "ice-pwd malformed");
	*dst = v;
	return 0;
}

static int parse_session_attr(struct parser *p, const char *name, char *v)
{
	struct cv_sdp *sdp = p->sdp;
	if (!strcmp(name, "group")) {
		/* RFC 5888 5, RFC 8843 7.1: a=group:BUNDLE <mid> ... */
		char *sem = v ? next_tok(&v) : NULL;
		if (!sem)
			return fail(p, CV_EPARSE, "group needs semantics");
		if (strcmp(sem, "BUNDLE") || sdp->has_bundle)
			return 0; /* other groups, later BUNDLE groups */
		sdp->has_bundle = true;
		char *mid;
		while ((mid = next_tok(&v))) {
			if (sdp->n_bundle_mids == CV_SDP_MAX_MEDIA)
				return fail(p, CV_ETOOBIG, "BUNDLE too long");
			sdp->bundle_mids[sdp->n_bundle_mids++] = mid;
		}
		return 0;
	}
	if (!strcmp(name, "ice-lite")) {
		sdp->ice_lite = true;
		return 0;
	}
	if (!strcmp(name, "ice-ufrag") || !strcmp(name, "ice-pwd"))
		return parse_ice(p, name, v, &sdp->ice_ufrag, &sdp->ice_pwd);
	if (!strcmp(name, "ice-options")) {
		sdp->ice_options = v;
		return 0;
	}
	if (!strcmp(name, "fingerprint"))
		return parse_fingerprint(p, v, &sdp->fingerprint);
	if (!strcmp(name, "setup"))
		return parse_setup(p, v, &sdp->setup);
	if (!strcmp(name, "msid-semantic")) {
		sdp->msid_semantic = v ? rest(v) : NULL;
		return 0;
	}
	return 0; /* RFC 8866 5.13: unknown attributes are ignored */
}

/* ---- media-level attributes ------------------------------------------- */

static int parse_rtpmap(struct parser *p, char *v)
{
	/* RFC 8866 6.6: a=rtpmap:<pt> <enc>/<clock>[/<channels>] */
	struct cv_sdp_media *m = p->m;
	char *pts = v ? next_tok(&v) : NULL, *enc = v ? next_tok(&v) : NULL;
	int pt;
	uint64_t n;
	if (!pts || !enc || rest(v) || parse_pt(pts, &pt))
		return fail(p, CV_EPARSE, "rtpmap malformed");
	char *clock = strchr(enc, '/');
	if (!clock)
		return fail(p, CV_EPARSE, "rtpmap needs a clock rate");
	*clock++ = '\0';
	char *ch = strchr(clock, '/');
	if (ch)
		*ch++ = '\0';
	if (!cv_sdp_is_token(enc))
		return fail(p, CV_EPARSE, "rtpmap encoding malformed");
	if (cv_sdp_parse_u64(clock, UINT32_MAX, &n) || n == 0)
		return fail(p, CV_EPARSE, "rtpmap clock rate out of range");
	uint32_t rate = (uint32_t)n;
	n = 0;
	if (ch && (cv_sdp_parse_u64(ch, 255, &n) || n == 0))
		return fail(p, CV_EPARSE, "rtpmap channels out of range");
	struct cv_sdp_format *f = find_fmt(m, pt);
	if (!f)
		return 0; /* not offered on the m= line: ignored */
	if (f->encoding)
		return fail(p, CV_EPARSE, "rtpmap repeated for a payload type");
	f->encoding = enc;
	f->clock_rate = rate;
	f->channels = (uint8_t)n;
	return 0;
}

/* RFC 4588 8.1: apt=<pt> names the payload type rtx repairs. */
static int find_apt(const char *params, int *apt)
{
	const char *s = params;
	while (*s) {
		while (*s == ' ' || *s == ';')
			s++;
		size_t len = strcspn(s, ";");
		if (len > 4 && !strncmp(s, "apt=", 4)) {
			uint64_t n;
			if (parse_u64n(s + 4, len - 4, 127, &n))
				return CV_EPARSE;
			*apt = (int)n;
			return 0;
		}
		s += len;
	}
	return 0;
}

static int parse_fmtp(struct parser *p, char *v)
{
	/* RFC 8866 6.15: a=fmtp:<format> <format specific parameters> */
	char *pts = v ? next_tok(&v) : NULL, *params = v ? rest(v) : NULL;
	int pt;
	if (!pts || !params || parse_pt(pts, &pt))
		return fail(p, CV_EPARSE, "fmtp malformed");
	struct cv_sdp_format *f = find_fmt(p->m, pt);
	if (!f)
		return 0;
	if (f->fmtp)
		return fail(p, CV_EPARSE, "fmtp repeated for a payload type");
	if (find_apt(params, &f->apt))
		return fail(p, CV_EPARSE, "fmtp apt out of range");
	f->fmtp = params;
	return 0;
}

static int parse_rtcp_fb(struct parser *p, char *v)
{
	/* RFC 4585 4.2: a=rtcp-fb:<pt>|* <type> [<param>] */
	struct cv_sdp_media *m = p->m;
	char *pts = v ? next_tok(&v) : NULL, *type = v ? next_tok(&v) : NULL;
	int pt = -1;
	if (!pts || !type || !cv_sdp_is_token(type))
		return fail(p, CV_EPARSE, "rtcp-fb malformed");
	if (strcmp(pts, "*") && parse_pt(pts, &pt))
		return fail(p, CV_EPARSE, "rtcp-fb payload type malformed");
	if (pt >= 0 && !find_fmt(m, pt))
		return 0;
	if (m->n_rtcp_fb == CV_SDP_MAX_RTCP_FB)
		return fail(p, CV_ETOOBIG, "too many rtcp-fb lines");
	struct cv_sdp_rtcp_fb *fb = &m->rtcp_fb[m->n_rtcp_fb++];
	fb->pt = pt;
	fb->type = type;
	fb->param = rest(v);
	return 0;
}

static int parse_extmap(struct parser *p, char *v)
{
	/* RFC 8285 8: a=extmap:<id>[/<direction>] <URI> [<attributes>] */
	struct cv_sdp_media *m = p->m;
	char *ids = v ? next_tok(&v) : NULL, *uri = v ? next_tok(&v) : NULL;
	uint64_t id;
	if (!ids || !uri || !cv_sdp_is_visible(uri))
		return fail(p, CV_EPARSE, "extmap malformed");
	enum cv_sdp_dir dir = CV_SDP_DIR_NONE;
	char *slash = strchr(ids, '/');
	if (slash) {
		*slash = '\0';
		dir = dir_from(slash + 1);
		if (dir == CV_SDP_DIR_NONE)
			return fail(p, CV_EPARSE, "extmap direction unknown");
	}
	/* RFC 8285 5: ids 1-14 (one-byte) and 1-255 (two-byte form). */
	if (cv_sdp_parse_u64(ids, 255, &id) || id == 0)
		return fail(p, CV_EPARSE, "extmap id not 1..255");
	for (size_t i = 0; i < m->n_extmaps; i++)
		if (m->extmaps[i].id == id)
			return fail(p, CV_EPARSE, "extmap id repeated");
	if (m->n_extmaps == CV_SDP_MAX_EXTMAPS)
		return fail(p, CV_ETOOBIG, "too many extmap lines");
	struct cv_sdp_extmap *e = &m->extmaps[m->n_extmaps++];
	e->id = (uint8_t)id;
	e->dir = dir;
	e->uri = uri;
	e->attrs = rest(v);
	return 0;
}

static int parse_ssrc(struct parser *p, char *v)
{
	/* RFC 5576 4.1: a=ssrc:<ssrc-id> <attribute>[:<value>] */
	struct cv_sdp_media *m = p->m;
	char *ids = v ? next_tok(&v) : NULL, *attr = v ? rest(v) : NULL;
	uint64_t id;
	if (!ids || !attr || cv_sdp_parse_u64(ids, UINT32_MAX, &id))
		return fail(p, CV_EPARSE, "ssrc malformed");
	struct cv_sdp_ssrc *s = NULL;
	for (size_t i = 0; i < m->n_ssrcs && !s; i++)
		if (m->ssrcs[i].ssrc == id)
			s = &m->ssrcs[i];
	if (!s) {
		if (m->n_ssrcs == CV_SDP_MAX_SSRCS)
			return fail(p, CV_ETOOBIG, "too many ssrcs");
		s = &m->ssrcs[m->n_ssrcs++];
		s->ssrc = (uint32_t)id;
	}
	char *colon = strchr(attr, ':');
	if (colon)
		*colon++ = '\0';
	if (!strcmp(attr, "cname")) {
		if (!colon || !cv_sdp_is_visible(colon))
			return fail(p, CV_EPARSE, "ssrc cname malformed");
		s->cname = colon;
	} else if (!strcmp(attr, "msid")) {
		if (!colon || !*colon)
			return fail(p, CV_EPARSE, "ssrc msid malformed");
		s->msid = colon;
	}
	return 0;
}

static int parse_ssrc_group(struct parser *p, char *v)
{
	/* RFC 5576 4.2: a=ssrc-group:<semantics> <ssrc-id> ... */
	struct cv_sdp_media *m = p->m;
	char *sem = v ? next_tok(&v) : NULL, *ids;
	if (!sem || !cv_sdp_is_token(sem))
		return fail(p, CV_EPARSE, "ssrc-group malformed");
	if (m->n_ssrc_groups == CV_SDP_MAX_SSRC_GROUPS)
		return fail(p, CV_ETOOBIG, "too many ssrc-group lines");
	struct cv_sdp_ssrc_group *g = &m->ssrc_groups[m->n_ssrc_groups++];
	g->semantics = sem;
	while ((ids = next_tok(&v))) {
		uint64_t id;
		if (cv_sdp_parse_u64(ids, UINT32_MAX, &id))
			return fail(p, CV_EPARSE, "ssrc-group ssrc malformed");
		if (g->n_ssrcs == CV_SDP_MAX_GROUP_SSRCS)
			return fail(p, CV_ETOOBIG, "ssrc-group too long");
		g->ssrcs[g->n_ssrcs++] = (uint32_t)id;
	}
	if (g->n_ssrcs == 0)
		return fail(p, CV_EPARSE, "ssrc-group without ssrc");
	return 0;
}

static int parse_rid(struct parser *p, char *v)
{
	/* RFC 8851 10: a=rid:<rid-id> <send|recv> [<params>] */
	struct cv_sdp_media *m = p->m;
	char *id = v ? next_tok(&v) : NULL, *dir = v ? next_tok(&v) : NULL;
	if (!id || !dir || !cv_sdp_is_token(id) ||
	    (strcmp(dir, "send") && strcmp(dir, "recv")))
		return fail(p, CV_EPARSE, "rid malformed");
	if (m->n_rids == CV_SDP_MAX_RIDS)
		return fail(p, CV_ETOOBIG, "too many rid lines");
	struct cv_sdp_rid *r = &m->rids[m->n_rids++];
	r->id = id;
	r->send = !strcmp(dir, "send");
	r->params = rest(v);
	return 0;
}

static int parse_mid(struct parser *p, const char *v)
{
	/* RFC 8843 7.1 / RFC 5888 4: a=mid:<identification-tag> */
	if (p->m->mid)
		return fail(p, CV_EPARSE, "mid repeated");
	if (!cv_sdp_is_token(v) || strlen(v) > CV_SDP_MAX_MID_BYTES)
		return fail(p, CV_EPARSE, "mid malformed or too long");
	for (size_t i = 0; i + 1 < p->sdp->n_media; i++) {
		const char *o = p->sdp->media[i].mid;
		if (o && !strcmp(o, v))
			return fail(p, CV_EPARSE, "mid used twice");
	}
	p->m->mid = v;
	return 0;
}

static int parse_media_attr(struct parser *p, const char *name, char *v)
{
	struct cv_sdp_media *m = p->m;
	enum cv_sdp_dir dir = dir_from(name);
	if (dir != CV_SDP_DIR_NONE) {
		if (m->dir != CV_SDP_DIR_NONE)
			return fail(p, CV_EPARSE, "direction repeated");
		m->dir = dir;
		return 0;
	}
	if (!strcmp(name, "mid"))
		return parse_mid(p, v);
	if (!strcmp(name, "rtpmap"))
		return parse_rtpmap(p, v);
	if (!strcmp(name, "fmtp"))
		return parse_fmtp(p, v);
	if (!strcmp(name, "rtcp-fb"))
		return parse_rtcp_fb(p, v);
	if (!strcmp(name, "extmap"))
		return parse_extmap(p, v);
	if (!strcmp(name, "ssrc"))
		return parse_ssrc(p, v);
	if (!strcmp(name, "ssrc-group"))
		return parse_ssrc_group(p, v);
	if (!strcmp(name, "rid"))
		return parse_rid(p, v);
	if (!strcmp(name, "ice-ufrag") || !strcmp(name, "ice-pwd"))
		return parse_ice(p, name, v, &m->ice_ufrag, &m->ice_pwd);
	if (!strcmp(name, "fingerprint"))
		return parse_fingerprint(p, v, &m->fingerprint);
	if (!strcmp(name, "setup"))
		return parse_setup(p, v, &m->setup);
	if (!strcmp(name, "rtcp-mux")) {
		m->rtcp_mux = true;
	} else if (!strcmp(name, "rtcp-rsize")) {
		m->rtcp_rsize = true;
	} else if (!strcmp(name, "end-of-candidates")) {
		m->end_of_candidates = true;
	} else if (!strcmp(name, "msid")) {
		/* RFC 8830 2: a=msid:<stream id> [<track id>] */
		char *stream = v ? next_tok(&v) : NULL;
		if (!stream)
			return fail(p, CV_EPARSE, "msid malformed");
		m->msid_stream = stream;
		m->msid_track = next_tok(&v);
	} else if (!strcmp(name, "simulcast")) {
		if (!v)
			return fail(p, CV_EPARSE, "simulcast needs a value");
		m->simulcast = v;
	} else if (!strcmp(name, "candidate")) {
		if (!v)
			return fail(p, CV_EPARSE, "candidate needs a value");
		if (m->n_candidates < CV_SDP_MAX_CANDIDATES)
			m->candidates[m->n_candidates++] = v;
	}
	return 0;
}

static int parse_attr(struct parser *p, char *v)
{
	/* RFC 8866 5.13: a=<attribute-name>[:<attribute-value>] */
	char *colon = strchr(v, ':');
	if (colon)
		*colon++ = '\0';
	if (!cv_sdp_is_token(v))
		return fail(p, CV_EPARSE, "attribute name malformed");
	if (p->m)
		return parse_media_attr(p, v, colon);
	return parse_session_attr(p, v, colon);
}

/* ---- lines ------------------------------------------------------------ */

static int parse_line(struct parser *p, char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(p, CV_EPARSE, "control character in line");
	}
	if (len < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z')
		return fail(p, CV_EPARSE, "line is not <letter>=<value>");
	char type = line[0], *v = line + 2;
	/* RFC 8866 5: v= comes first, then o=, s=, ..., t=, m= sections. */
	if (!p->seen_v) {
		if (type != 'v' || strcmp(v, "0"))
			return fail(p, CV_EPARSE, "must start with v=0");
		p->seen_v = true;
		return 0;
	}
	switch (type) {
	case 'v':
		return fail(p, CV_EPARSE, "v= repeated");
	case 'o':
		if (p->m || p->seen_o)
			return fail(p, CV_EPARSE, "o= misplaced");
		p->seen_o = true;
		return parse_origin(p, v);
	case 's':
		if (p->m || p->seen_s)
			return fail(p, CV_EPARSE, "s= misplaced");
		p->seen_s = true;
		p->sdp->session_name = v;
		return 0;
	case 't':
		if (p->m)
			return fail(p, CV_EPARSE, "t= inside a media section");
		p->seen_t = true;
		return parse_timing(p, v);
	case 'c':
		return parse_conn(p, v);
	case 'm':
		if (!p->seen_o || !p->seen_s || !p->seen_t)
			return fail(p, CV_EPARSE, "m= before o=, s= and t=");
		return parse_media_line(p, v);
	case 'a':
		return parse_attr(p, v);
	default:
		return 0; /* i=, u=, e=, p=, b=, z=, k=, r=: not needed */
	}
}

/* RFC 4585 4.2, RFC 5104 7.1: the feedback kinds the node acts on. */
static uint32_t fb_bit(const struct cv_sdp_rtcp_fb *fb)
{
	const char *param = fb->param ? fb->param : "";
	if (!strcmp(fb->type, "nack"))
		return !*param		       ? CV_SDP_FB_NACK
		       : !strcmp(param, "pli") ? CV_SDP_FB_NACK_PLI
					       : 0;
	if (!strcmp(fb->type, "ccm") && !strcmp(param, "fir"))
		return CV_SDP_FB_CCM_FIR;
	if (!strcmp(fb->type, "transport-cc"))
		return CV_SDP_FB_TRANSPORT_CC;
	if (!strcmp(fb->type, "goog-remb"))
		return CV_SDP_FB_GOOG_REMB;
	return 0;
}

/* JSEP: transport attributes absent from an m-section come from the
 * session level (RFC 8839 5.4, RFC 8122 5, RFC 8842 5). */
static void inherit(struct parser *p)
{
	struct cv_sdp *sdp = p->sdp;
	for (size_t i = 0; i < sdp->n_media; i++) {
		struct cv_sdp_media *m = &sdp->media[i];
		if (!m->ice_ufrag)
			m->ice_ufrag = sdp->ice_ufrag;
		if (!m->ice_pwd)
			m->ice_pwd = sdp->ice_pwd;
		if (!m->fingerprint.alg)
			m->fingerprint = sdp->fingerprint;
		if (m->setup == CV_SDP_SETUP_NONE)
			m->setup = sdp->setup;
		if (!m->conn_addr)
			m->conn_addr = p->sess_conn;
		for (size_t j = 0; j < m->n_rtcp_fb; j++) {
			const struct cv_sdp_rtcp_fb *fb = &m->rtcp_fb[j];
			uint32_t bit = fb_bit(fb);
			for (size_t k = 0; k < m->n_formats; k++)
				if (fb->pt < 0 || fb->pt == m->formats[k].pt)
					m->formats[k].fb |= bit;
		}
	}
}

static int parse_all(struct parser *p, char *s, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		char *line = s + pos;
		char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		p->line++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > CV_SDP_MAX_LINE_BYTES)
			return fail(p, CV_ETOOBIG, "line too long");
		line[n] = '\0';
		if (n == 0)
			continue; /* tolerated: blank lines, trailing CRLF */
		int rc = parse_line(p, line, n);
		if (rc)
			return rc;
	}
	p->line = 0;
	if (!p->seen_v || !p->seen_o || !p->seen_s || !p->seen_t)
		return fail(p, CV_EPARSE, "v=, o=, s= or t= missing");
	inherit(p);
	return 0;
}

int cv_sdp_parse_ex(const char *text, size_t len, struct cv_sdp **out,
		    struct cv_sdp_error *err)
{
	struct parser p = {0};
	int rc;
	if (err) {
		err->line = 0;
		err->reason = NULL;
	}
	if (!text || !out)
		return -EINVAL;
	if (len > CV_SDP_MAX_INPUT_BYTES) {
		rc = fail(&p, CV_ETOOBIG, "description too large");
		goto out_err;
	}
	struct cv_sdp *sdp = calloc(1, sizeof(*sdp));
	if (!sdp)
		return -ENOMEM;
	sdp->text_ = malloc(len + 1);
	if (!sdp->text_) {
		free(sdp);
		return -ENOMEM;
	}
	memcpy(sdp->text_, text, len);
	sdp->text_[len] = '\0';
	p.sdp = sdp;
	rc = parse_all(&p, sdp->text_, len);
	if (rc) {
		cv_sdp_free(sdp);
		goto out_err;
	}
	*out = sdp;
	return 0;
out_err:
	if (err) {
		err->line = p.line;
		err->reason = p.reason;
	}
	return rc;
}

int cv_sdp_parse(const char *text, size_t len, struct cv_sdp **out)
{
	return cv_sdp_parse_ex(text, len, out, NULL);
}

struct cv_sdp *cv_sdp_free(struct cv_sdp *sdp)
{
	if (sdp) {
		free(sdp->text_);
		free(sdp);
	}
	return NULL;
}

void cv_sdp_error_text(const struct cv_sdp_error *err, char *buf, size_t size)
{
	if (!buf || size == 0)
		return;
	const char *why = err && err->reason ? err->reason : "invalid SDP";
	if (err && err->line)
		snprintf(buf, size, "line %u: %s", err->line, why);
	else
		snprintf(buf, size, "%s", why);
}

const char *cv_sdp_kind_name(enum cv_sdp_kind kind)
{
	switch (kind) {
	case CV_SDP_KIND_AUDIO:
		return "audio";
	case CV_SDP_KIND_VIDEO:
		return "video";
	case CV_SDP_KIND_APPLICATION:
		return "application";
	default:
		return "other";
	}
}

const char *cv_sdp_dir_name(enum cv_sdp_dir dir)
{
	switch (dir) {
	case CV_SDP_DIR_SENDRECV:
		return "sendrecv";
	case CV_SDP_DIR_SENDONLY:
		return "sendonly";
	case CV_SDP_DIR_RECVONLY:
		return "recvonly";
	case CV_SDP_DIR_INACTIVE:
		return "inactive";
	default:
		return "none";
	}
}

const char *cv_sdp_setup_name(enum cv_sdp_setup setup)
{
	switch (setup) {
	case CV_SDP_SETUP_ACTPASS:
		return "actpass";
	case CV_SDP_SETUP_ACTIVE:
		return "active";
	case CV_SDP_SETUP_PASSIVE:
		return "passive";
	case CV_SDP_SETUP_HOLDCONN:
		return "holdconn";
	default:
		return "none";
	}
}
