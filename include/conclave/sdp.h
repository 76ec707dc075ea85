/*
 * SDP for the WebRTC side of the node (RFC 8866 SDP, RFC 8829 JSEP).
 *
 * Three jobs, all on the signaling thread:
 *  - parse a browser's description into a read-only view (cv_sdp_parse);
 *  - answer a "publish" offer: the browser sends, the node receives
 *    (cv_sdp_answer_publish);
 *  - offer a "subscribe" connection: one sendonly m-line per forwarded
 *    track (cv_sdp_offer_subscribe), then check the browser's answer
 *    (cv_sdp_check_subscribe_answer).
 *
 * The node is ICE-lite (RFC 8445 2.5), BUNDLEs everything (RFC 8843),
 * multiplexes RTCP (RFC 8035), and runs DTLS-SRTP (RFC 8842 attributes).
 *
 * Strings in a parsed struct cv_sdp are NUL-terminated and point into
 * storage owned by that struct: they live until cv_sdp_free(). Result
 * structs (publish / subscribe) copy what they keep, so they can be sent
 * to a worker thread on their own.
 */
#ifndef CONCLAVE_SDP_H
#define CONCLAVE_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ceilings. Input over them is refused (CV_ETOOBIG), never truncated. */
#define CV_SDP_MAX_INPUT_BYTES 65536
#define CV_SDP_MAX_LINE_BYTES  4096
#define CV_SDP_MAX_MEDIA       16  /* m-sections per description */
#define CV_SDP_MAX_FORMATS     64  /* payload types per m-line */
#define CV_SDP_MAX_RTCP_FB     192 /* a=rtcp-fb lines per m-section */
#define CV_SDP_MAX_EXTMAPS     32
#define CV_SDP_MAX_SSRCS       16 /* distinct SSRCs in a=ssrc lines */
#define CV_SDP_MAX_SSRC_GROUPS 8
#define CV_SDP_MAX_GROUP_SSRCS 8
#define CV_SDP_MAX_RIDS	       8
/* More candidates than this are skipped (the node is ICE-lite and does
 * not need them), not refused. */
#define CV_SDP_MAX_CANDIDATES	    32
#define CV_SDP_MAX_MID_BYTES	    32 /* longer a=mid values are refused */
#define CV_SDP_MAX_ICE_BYTES	    256 /* RFC 8839 5.4: ufrag/pwd <= 256 chars */
#define CV_SDP_MAX_FP_BYTES	    64 /* sha-512 */
#define CV_SDP_MAX_LOCAL_CANDIDATES 4

enum cv_sdp_kind {
	CV_SDP_KIND_OTHER = 0,
	CV_SDP_KIND_AUDIO,
	CV_SDP_KIND_VIDEO,
	CV_SDP_KIND_APPLICATION,
};

enum cv_sdp_dir {
	CV_SDP_DIR_NONE = 0, /* no direction attribute (means sendrecv) */
	CV_SDP_DIR_SENDRECV,
	CV_SDP_DIR_SENDONLY,
	CV_SDP_DIR_RECVONLY,
	CV_SDP_DIR_INACTIVE,
};

enum cv_sdp_setup {
	CV_SDP_SETUP_NONE = 0, /* absent; in cv_sdp_local: choose for me */
	CV_SDP_SETUP_ACTPASS,
	CV_SDP_SETUP_ACTIVE,
	CV_SDP_SETUP_PASSIVE,
	CV_SDP_SETUP_HOLDCONN,
};

/* RTCP feedback kinds (RFC 4585, RFC 5104, transport-cc, goog-remb). */
enum cv_sdp_fb {
	CV_SDP_FB_NACK = 1u << 0,
	CV_SDP_FB_NACK_PLI = 1u << 1,
	CV_SDP_FB_CCM_FIR = 1u << 2,
	CV_SDP_FB_TRANSPORT_CC = 1u << 3,
	CV_SDP_FB_GOOG_REMB = 1u << 4,
};

/* Codec policy bits for struct cv_sdp_local.codecs (0 means all). */
enum cv_sdp_codec {
	CV_SDP_CODEC_OPUS = 1u << 0,
	CV_SDP_CODEC_VP8 = 1u << 1,
	CV_SDP_CODEC_H264 = 1u << 2,
};

/* a=fingerprint (RFC 8122 5): hash name and the decoded bytes. */
struct cv_sdp_fingerprint {
	const char *alg; /* e.g. "sha-256"; NULL when absent */
	uint8_t bytes[CV_SDP_MAX_FP_BYTES];
	size_t len;
};

/* One payload type of an RTP m-line, with its rtpmap and fmtp. */
struct cv_sdp_format {
	uint8_t pt;
	const char *encoding; /* rtpmap encoding name; NULL without rtpmap */
	uint32_t clock_rate;  /* 0 without rtpmap */
	uint8_t channels;     /* 0 when not given */
	const char *fmtp;     /* raw parameters; NULL when absent */
	int apt;	      /* RFC 4588 apt= from fmtp, -1 when absent */
	uint32_t fb;	      /* CV_SDP_FB_* from its a=rtcp-fb and '*' */
};

struct cv_sdp_rtcp_fb {
	int pt;		   /* -1 for '*' */
	const char *type;  /* "nack", "ccm", "transport-cc", ... */
	const char *param; /* "pli", "fir", ...; NULL when absent */
};

/* a=extmap (RFC 8285 8). */
struct cv_sdp_extmap {
	uint8_t id; /* 1..255 */
	enum cv_sdp_dir dir;
	const char *uri;
	const char *attrs; /* NULL when absent */
};

/* The attributes of one SSRC (RFC 5576 4.1). */
struct cv_sdp_ssrc {
	uint32_t ssrc;
	const char *cname; /* NULL when absent */
	const char *msid;  /* raw "stream [track]"; NULL when absent */
};

struct cv_sdp_ssrc_group {
	const char *semantics; /* "FID", "SIM", ... */
	uint32_t ssrcs[CV_SDP_MAX_GROUP_SSRCS];
	size_t n_ssrcs;
};

struct cv_sdp_rid {
	const char *id;
	bool send;	    /* "send" (true) or "recv" (false) */
	const char *params; /* NULL when absent */
};

struct cv_sdp_media {
	enum cv_sdp_kind kind;
	const char *kind_name; /* the m= media token as written */
	uint16_t port;	       /* 0: rejected / disabled */
	const char *proto;
	/* RTP protos: one entry per payload type, in m= order. */
	struct cv_sdp_format formats[CV_SDP_MAX_FORMATS];
	size_t n_formats;
	const char *fmt_raw;   /* the m= format list as written */
	const char *conn_addr; /* c= address; NULL when absent here */
	const char *mid;       /* NULL when absent */
	enum cv_sdp_dir dir;
	/* Inherited from the session level when absent in the m-section. */
	const char *ice_ufrag, *ice_pwd;
	struct cv_sdp_fingerprint fingerprint;
	enum cv_sdp_setup setup;
	bool rtcp_mux, rtcp_rsize, end_of_candidates;
	struct cv_sdp_rtcp_fb rtcp_fb[CV_SDP_MAX_RTCP_FB];
	size_t n_rtcp_fb;
	struct cv_sdp_extmap extmaps[CV_SDP_MAX_EXTMAPS];
	size_t n_extmaps;
	struct cv_sdp_ssrc ssrcs[CV_SDP_MAX_SSRCS];
	size_t n_ssrcs;
	struct cv_sdp_ssrc_group ssrc_groups[CV_SDP_MAX_SSRC_GROUPS];
	size_t n_ssrc_groups;
	const char *msid_stream, *msid_track; /* a=msid; NULL when absent */
	struct cv_sdp_rid rids[CV_SDP_MAX_RIDS];
	size_t n_rids;
	const char *simulcast; /* raw a=simulcast value; NULL when absent */
	const char *candidates[CV_SDP_MAX_CANDIDATES]; /* raw a=candidate */
	size_t n_candidates;
};

/* A parsed description. Read-only for users; free with cv_sdp_free. */
struct cv_sdp {
	const char *origin_user, *origin_sess_id, *origin_sess_version;
	const char *session_name;
	const char *bundle_mids[CV_SDP_MAX_MEDIA]; /* first BUNDLE group */
	size_t n_bundle_mids;
	bool has_bundle;
	bool ice_lite;
	const char *ice_ufrag, *ice_pwd, *ice_options; /* session level */
	struct cv_sdp_fingerprint fingerprint;	       /* session level */
	enum cv_sdp_setup setup;		       /* session level */
	const char *msid_semantic;
	struct cv_sdp_media media[CV_SDP_MAX_MEDIA];
	size_t n_media;
	/* private: the copy of the text the strings above point into */
	char *text_;
};

/*
 * Why a parse failed: `line` is the 1-based line number (0 when the
 * failure is not tied to one line) and `reason` a static text naming the
 * rule broken. Neither repeats input bytes, so both may go to the client.
 */
struct cv_sdp_error {
	unsigned line;
	const char *reason;
};

/*
 * Parses `len` bytes of `text` (not necessarily NUL-terminated; CRLF or LF
 * line ends). On success stores a new description in *out (free it with
 * cv_sdp_free). `err` (may be NULL) receives the reason on failure.
 * Errors: CV_EPARSE (malformed), CV_ETOOBIG (over a CV_SDP_MAX_* ceiling),
 * -EINVAL (NULL text or out), -ENOMEM. *out is untouched on failure.
 * Thread: any (meant for signaling).
 */
int cv_sdp_parse_ex(const char *text, size_t len, struct cv_sdp **out,
		    struct cv_sdp_error *err);

/* cv_sdp_parse_ex without the error detail. */
int cv_sdp_parse(const char *text, size_t len, struct cv_sdp **out);

/* Frees a description from cv_sdp_parse; NULL is fine. Returns NULL. */
struct cv_sdp *cv_sdp_free(struct cv_sdp *sdp);

/* Formats `err` as "line N: reason" into buf (always NUL-terminated). */
void cv_sdp_error_text(const struct cv_sdp_error *err, char *buf, size_t size);

/* One host candidate of the node. */
struct cv_sdp_local_candidate {
	const char *ip; /* IPv4 or IPv6 literal, borrowed */
	uint16_t port;
};

/*
 * What the node says about itself. All pointers borrowed for the call.
 * ice_ufrag (4..256) and ice_pwd (22..256) use ice-chars (RFC 8839 5.4);
 * fingerprint is "<hash> <HEX:HEX:...>" as in a=fingerprint.
 */
struct cv_sdp_local {
	const char *ice_ufrag, *ice_pwd;
	const char *fingerprint;
	/* Publish answer: ACTIVE or PASSIVE, or NONE for "passive unless the
	 * offer is passive" (RFC 8842 5.3). The subscribe offer is always
	 * actpass. */
	enum cv_sdp_setup setup;
	struct cv_sdp_local_candidate candidates[CV_SDP_MAX_LOCAL_CANDIDATES];
	size_t n_candidates;	  /* at least 1 */
	unsigned codecs;	  /* CV_SDP_CODEC_* allowed; 0 means all */
	uint64_t session_id;	  /* o= sess-id; 0 picks 1 */
	uint64_t session_version; /* o= sess-version; bump per new offer */
	/*
	 * A perc room (docs/protocol.md "Perc rooms"): the endpoint is always
	 * the DTLS client, so the publish answer and the subscribe offer say
	 * a=setup:passive (a publish offer with setup passive is CV_EUNSUPP;
	 * setup must then be NONE or PASSIVE); rtx is neither taken nor
	 * offered (rtx_pt / rtx_ssrc stay 0; a subscribe m-line with an
	 * rtx_pt is -EINVAL); every m-line the node takes from a publish
	 * offer must announce its SSRC with a=ssrc, else CV_EPROTO (the node
	 * forwards only announced SSRCs).
	 */
	bool perc;
};

/* The node's decision for one m-line of a publish offer. */
struct cv_sdp_pub_mline {
	char mid[CV_SDP_MAX_MID_BYTES + 1];
	enum cv_sdp_kind kind;
	bool accepted;	     /* false: port 0 in the answer */
	enum cv_sdp_dir dir; /* the answer's direction (recvonly/inactive) */
	char codec[16];	     /* "opus", "VP8", "H264"; "" when rejected */
	uint8_t pt;
	uint32_t clock_rate;
	uint8_t channels;
	uint8_t rtx_pt; /* 0 when none */
	char fmtp[256]; /* the fmtp the answer carries */
	uint32_t fb;	/* CV_SDP_FB_* kept */
	/* Header extension ids by meaning; 0 when not negotiated. */
	uint8_t ext_mid, ext_abs_send_time, ext_twcc, ext_audio_level;
	uint8_t ext_rid, ext_rrid;
	uint32_t ssrc, rtx_ssrc; /* signaled by the browser; 0 if none */
};

struct cv_sdp_publish_result {
	struct cv_sdp_pub_mline mlines[CV_SDP_MAX_MEDIA];
	size_t n_mlines; /* = the offer's m-line count */
	char ice_ufrag[CV_SDP_MAX_ICE_BYTES + 1];
	char ice_pwd[CV_SDP_MAX_ICE_BYTES + 1];
	char fp_alg[16];
	uint8_t fp[CV_SDP_MAX_FP_BYTES];
	size_t fp_len;
	enum cv_sdp_setup remote_setup; /* the offer's */
	enum cv_sdp_setup local_setup;	/* ACTIVE or PASSIVE: ours */
};

/*
 * Builds the node's answer to a publish offer (RFC 8829 5.3.1): each
 * sendonly/sendrecv audio/video m-line with a common codec is answered
 * recvonly and BUNDLEd, others get port 0. `offer`, `local` borrowed;
 * `res` filled (may be NULL); *answer_out gets a new NUL-terminated CRLF
 * string (free()) only on success.
 * Errors: -EINVAL (bad local values), CV_EPROTO (offer lacks a=mid, ICE
 * credentials or BUNDLE), CV_EUNSUPP (no fingerprint, setup holdconn, or
 * no m-line accepted), CV_ETOOBIG, -ENOMEM. Thread: any (signaling).
 */
int cv_sdp_answer_publish(const struct cv_sdp *offer,
			  const struct cv_sdp_local *local,
			  struct cv_sdp_publish_result *res, char **answer_out);

/* One m-line of a subscribe offer; pointers borrowed for the call. */
struct cv_sdp_sub_mline {
	const char *mid;       /* token, <= CV_SDP_MAX_MID_BYTES */
	enum cv_sdp_kind kind; /* AUDIO or VIDEO */
	bool active;	       /* false: port 0, kept so indices stay */
	/*
	 * With active: a=inactive, no source (ssrc, msid) but still in the
	 * BUNDLE group, so the transport is untouched and the m-line can
	 * carry a new track later. Prefer this to port 0: rejecting the
	 * BUNDLE-tagged m-line makes Chromium tear down the transport.
	 */
	bool paused;
	const char *codec; /* "opus", "VP8", "H264"... */
	uint8_t pt;	   /* 0..127 */
	uint32_t clock_rate;
	uint8_t channels; /* 0: not written */
	const char *fmtp; /* NULL: none */
	uint8_t rtx_pt;	  /* 0: no rtx */
	uint32_t ssrc, rtx_ssrc;
	const char *cname, *msid_stream, *msid_track;
};

/*
 * Builds the node's subscribe offer: setup actpass, one sendonly m-line
 * per active entry, inactive entries with port 0. n == 0 gives a
 * description with no m-section (legal SDP, accepted by browsers).
 * `local`, `mlines` borrowed; *offer_out gets a new string (free()) only
 * on success. Errors: -EINVAL (bad or duplicate values), CV_ETOOBIG
 * (n > CV_SDP_MAX_MEDIA), -ENOMEM. Thread: any (signaling).
 */
int cv_sdp_offer_subscribe(const struct cv_sdp_local *local,
			   const struct cv_sdp_sub_mline *mlines, size_t n,
			   char **offer_out);

struct cv_sdp_sub_answer_mline {
	char mid[CV_SDP_MAX_MID_BYTES + 1];
	bool accepted;	     /* port != 0 and our codec kept */
	enum cv_sdp_dir dir; /* as answered */
	bool rtx;	     /* our rtx PT kept */
	uint32_t fb;	     /* CV_SDP_FB_* kept for our PT */
	uint8_t ext_mid, ext_abs_send_time, ext_audio_level; /* 0: dropped */
};

struct cv_sdp_subscribe_result {
	struct cv_sdp_sub_answer_mline mlines[CV_SDP_MAX_MEDIA];
	size_t n_mlines;
	char ice_ufrag[CV_SDP_MAX_ICE_BYTES + 1];
	char ice_pwd[CV_SDP_MAX_ICE_BYTES + 1];
	char fp_alg[16];
	uint8_t fp[CV_SDP_MAX_FP_BYTES];
	size_t fp_len;
	enum cv_sdp_setup remote_setup; /* ACTIVE or PASSIVE */
};

/*
 * Checks a browser's answer against the m-lines we offered (the same
 * array given to cv_sdp_offer_subscribe): same count, same mids in order
 * (RFC 8829 5.3.1), directions an answer to sendonly may have (RFC 3264
 * 6.1), setup active or passive (RFC 8842 5.3), ICE credentials and a
 * fingerprint when any m-line is accepted. All pointers borrowed; `res`
 * written (also partially on failure).
 * Errors: CV_EPROTO, CV_EUNSUPP (no fingerprint), -EINVAL. Thread: any.
 */
int cv_sdp_check_subscribe_answer(const struct cv_sdp_sub_mline *mlines,
				  size_t n, const struct cv_sdp *answer,
				  struct cv_sdp_subscribe_result *res);

/* Names for logs and tests: "audio", "sendonly", "passive"... */
const char *cv_sdp_kind_name(enum cv_sdp_kind kind);
const char *cv_sdp_dir_name(enum cv_sdp_dir dir);
const char *cv_sdp_setup_name(enum cv_sdp_setup setup);

#endif
