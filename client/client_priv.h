/*
 * The client library's pure parts (no I/O, no allocation except where
 * said), shared by the endpoint and the unit tests: client-side SDP,
 * VP8-shaped packetisation, the in-padding send stamp, sequence and delay
 * statistics. Thread: any; each object is used by one thread.
 */
#ifndef CONCLAVE_CLIENT_PRIV_H
#define CONCLAVE_CLIENT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/client.h"
#include "conclave/rtp.h"
#include "conclave/sdp.h"

/* Our payload types and header extension ids in the publish offer. */
#define CV_CLIENT_PT_OPUS	    111
#define CV_CLIENT_PT_VP8	    96
#define CV_CLIENT_EXT_MID	    1
#define CV_CLIENT_EXT_ABS_SEND_TIME 2
#define CV_CLIENT_MAX_CANDIDATES    8

/* ---- SDP ---- */

/* What the client says about one peer connection. Pointers borrowed. */
struct cv_client_sdp_local {
	const char *ice_ufrag, *ice_pwd;
	const char *fingerprint; /* "sha-256 AB:..." */
	/* a=candidate values without "a=" (e.g. "candidate:1 1 UDP ...") */
	const char *candidates[CV_CLIENT_MAX_CANDIDATES];
	size_t n_candidates;
	const char *cname;
	uint64_t session_id;
};

/*
 * Writes the publish offer (RFC 8829 5.2.1 shape): BUNDLE of mids "a0"
 * (audio, if audio) and "v0" (video, if video), each m-line sendonly,
 * rtcp-mux, setup actpass, ICE credentials and candidates, fingerprint,
 * opus/48000/2 or VP8/90000 with nack/pli feedback, the MID and
 * abs-send-time extensions, a=ssrc with cname and msid. buf gets a
 * NUL-terminated CRLF text. Returns its length, -ENOBUFS, or -EINVAL
 * (neither audio nor video, missing local values).
 */
int cv_client_sdp_publish_offer(char *buf, size_t cap,
				const struct cv_client_sdp_local *l, bool audio,
				uint32_t audio_ssrc, bool video,
				uint32_t video_ssrc);

/* One m-line of a subscribe offer as the client understood it. */
struct cv_client_sub_mline {
	char mid[CV_SDP_MAX_MID_BYTES + 1];
	bool active; /* port != 0, sendonly, a codec we take */
	bool video;
	uint8_t pt;
	uint32_t ssrc; /* 0 when the offer names none (paused m-line) */
	uint32_t clock_rate;
};

/*
 * Answers a node's subscribe offer (RFC 8829 5.3.1, RFC 3264 6): the same
 * m-lines in order, each active one recvonly with the offer's opus or VP8
 * payload type (nack, pli kept), others port 0 or inactive as offered;
 * BUNDLE of the accepted mids, setup active (RFC 8842 5.3: the offer is
 * actpass, we take the DTLS client role), our ICE values and candidates.
 * offer, l borrowed. out (n_out entries, filled up to the offer's count)
 * receives what each m-line carries. Returns the text length, -ENOBUFS,
 * CV_EPROTO (offer without BUNDLE / mids / ICE / fingerprint), -EINVAL.
 */
int cv_client_sdp_subscribe_answer(char *buf, size_t cap,
				   const struct cv_sdp *offer,
				   const struct cv_client_sdp_local *l,
				   struct cv_client_sub_mline *out,
				   size_t n_out, size_t *n_mlines);

/* ---- The send stamp in RTP padding ---- */

/*
 * Writes the CV_CLIENT_STAMP_BYTES padding block (RFC 3550 5.1: the last
 * padding octet counts the padding) for send time now_us.
 */
void cv_client_stamp_put(uint8_t out[CV_CLIENT_STAMP_BYTES], uint64_t now_us);

/* Reads a stamp (either block: the plain one or the check block below)
 * from a parsed packet's padding (h from cv_rtp_parse of pkt[0..len)).
 * Returns 0, or -ENOENT when it carries none. */
int cv_client_stamp_read(const struct cv_rtp_hdr *h, const uint8_t *pkt,
			 size_t len, uint64_t *send_us);

/*
 * Perc rooms check that every delivered packet is bit for bit what its
 * sender sent (defence in depth under the inner AEAD, and the measure of
 * a faulty node in tests). The padding block then also carries a digest:
 * 'c' 'v' 0x02, send time (8, as above), digest (8), the pad count: 20
 * octets. The digest is a 64-bit FNV-1a over SSRC, SEQ, timestamp, PT,
 * marker (all original values), the payload and the send time, so any
 * changed octet of what the receiver delivers is a mismatch.
 */
#define CV_CLIENT_CHECK_STAMP_BYTES 20

/* Writes the 20-octet block at out for the packet whose header h (the
 * original values) and payload[0..payload_len) it follows. */
void cv_client_check_stamp_put(uint8_t out[CV_CLIENT_CHECK_STAMP_BYTES],
			       const struct cv_rtp_hdr *h,
			       const uint8_t *payload, size_t payload_len,
			       uint64_t now_us);

/* Checks a parsed packet's check block (h from cv_rtp_parse of
 * pkt[0..len)). Returns 0 (matches), -ENOENT (no such block: an
 * unchecked packet), CV_EINTEGRITY (mismatch). */
int cv_client_check_stamp_verify(const struct cv_rtp_hdr *h, const uint8_t *pkt,
				 size_t len);

/* ---- VP8-shaped video (RFC 7741) ---- */

#define CV_CLIENT_VP8_DESC_BYTES 4 /* X, I, 15-bit PictureID */

struct cv_client_vp8_frame {
	size_t bytes; /* VP8 payload bytes of the whole frame */
	bool keyframe;
	uint16_t picture_id; /* 15 bits */
	uint16_t width, height;
};

/* How many packets a frame of `bytes` takes with at most max_payload
 * bytes of RTP payload per packet (descriptor included); 0 if
 * max_payload is too small. */
size_t cv_client_vp8_packets(size_t bytes, size_t max_payload);

/*
 * Writes the RTP payload of packet `index` of frame f into out[0..cap):
 * payload descriptor (S set on index 0, PartID 0), on index 0 the
 * 3-byte frame tag (P bit, show_frame, first partition size) and for a
 * keyframe the start code and dimensions (RFC 6386 9.1), then filler.
 * Returns the bytes written, -ENOBUFS, -EINVAL (index out of range).
 */
int cv_client_vp8_write(uint8_t *out, size_t cap,
			const struct cv_client_vp8_frame *f, size_t index,
			size_t max_payload);

struct cv_client_vp8_info {
	bool start;    /* S bit with PartID 0: first packet of a frame */
	bool keyframe; /* start && the frame tag's P bit is 0 */
	bool has_picture_id;
	uint16_t picture_id;
	size_t desc_len;
};

/* Parses a received VP8 RTP payload (RFC 7741 4.2, 4.3). Bounds-checked:
 * returns 0 or CV_EPARSE. p borrowed. */
int cv_client_vp8_parse(const uint8_t *p, size_t len,
			struct cv_client_vp8_info *out);

/* ---- Statistics ---- */

/* Log-linear histogram of microsecond values: exact below 64, then 32
 * buckets per power of two (precision ~3 %), any uint32_t. */
#define CV_CLIENT_HIST_SUB     64
#define CV_CLIENT_HIST_BUCKETS 896

struct cv_client_hist {
	uint32_t b[CV_CLIENT_HIST_BUCKETS];
	uint64_t n;
	uint32_t max;
};

void cv_client_hist_add(struct cv_client_hist *h, uint32_t us);
/* Value at quantile q (0..1), within the bucket precision; 0 if empty. */
uint32_t cv_client_hist_quantile(const struct cv_client_hist *h, double q);

/* What a sequence number turned out to be. */
enum cv_client_seq_kind {
	CV_CLIENT_SEQ_FIRST,   /* first packet */
	CV_CLIENT_SEQ_NEXT,    /* the next one in order */
	CV_CLIENT_SEQ_GAP,     /* newer, with `gap` missing before it */
	CV_CLIENT_SEQ_LATE,    /* older than the newest, not seen: fills */
	CV_CLIENT_SEQ_DUP,     /* seen already */
	CV_CLIENT_SEQ_TOO_OLD, /* beyond the window: ignored */
};

#define CV_CLIENT_SEQ_WINDOW 1024

/* Continuity of one SSRC: distinct count, span, duplicates, reordering. */
struct cv_client_seq {
	bool started;
	uint64_t base_ext, max_ext; /* extended sequence numbers */
	uint64_t received, duplicates, out_of_order;
	uint64_t seen[CV_CLIENT_SEQ_WINDOW / 64]; /* bit per ext seq */
};

/* Accounts seq; *gap gets the count of missing packets for SEQ_GAP and
 * *ext the extended sequence number. */
enum cv_client_seq_kind cv_client_seq_update(struct cv_client_seq *s,
					     uint16_t seq, uint32_t *gap,
					     uint64_t *ext);
uint64_t cv_client_seq_expected(const struct cv_client_seq *s);
uint64_t cv_client_seq_lost(const struct cv_client_seq *s);
/* True when ext (within the window) has been received. */
bool cv_client_seq_seen(const struct cv_client_seq *s, uint64_t ext);

#endif
