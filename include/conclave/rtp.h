/*
 * RTP (RFC 3550) header parsing and writing, RTP header extensions
 * (RFC 8285) and sequence-number bookkeeping (RFC 3550 A.1, A.8).
 *
 * Everything here is on the packet path: no allocation, no lock, no
 * logging. Parsers return host-order views whose pointers borrow from the
 * caller's buffer (valid as long as that buffer is). All functions are
 * thread-agnostic: they touch only their arguments, so any thread may call
 * them on data it owns.
 */
#ifndef CONCLAVE_RTP_H
#define CONCLAVE_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_RTP_VERSION	    2
#define CV_RTP_HDR_MIN	    12	   /* fixed header, no CSRC */
#define CV_RTP_MAX_CSRC	    15	   /* CC is 4 bits */
#define CV_RTP_EXT_ONE_BYTE 0xBEDE /* RFC 8285 4.2 profile */
#define CV_RTP_EXT_TWO_BYTE 0x1000 /* RFC 8285 4.3: 0x100 << 4 | appbits */

/*
 * Host-order view of an RTP header. Filled by cv_rtp_parse(); read by
 * cv_rtp_write_header(). Pointers borrow from the parsed buffer.
 */
struct cv_rtp_hdr {
	bool padding;	/* P bit */
	bool extension; /* X bit */
	bool marker;	/* M bit */
	uint8_t csrc_count;
	uint8_t pt;
	uint16_t seq;
	uint32_t ts;
	uint32_t ssrc;
	uint32_t csrc[CV_RTP_MAX_CSRC];
	/* Header extension (valid when extension is true). */
	uint16_t ext_profile;	/* "defined by profile" field */
	const uint8_t *ext;	/* extension data after its 4-byte header */
	size_t ext_len;		/* bytes of ext, a multiple of 4 */
	size_t hdr_len;		/* fixed + CSRCs + extension, bytes */
	const uint8_t *payload; /* after the header, before the padding */
	size_t payload_len;
	uint8_t pad_len; /* padding bytes at the end, count octet included */
};

/*
 * Parses the RTP packet buf[0..len) into *out (RFC 3550 5.1, 5.3.1).
 * Checks version 2, that CSRCs and the extension fit and that the padding
 * count is non-zero and fits after the header. buf is borrowed; out's
 * pointers point into it. Returns 0 or CV_EPARSE (out is then unspecified).
 */
int cv_rtp_parse(const uint8_t *buf, size_t len, struct cv_rtp_hdr *out);

/*
 * RFC 5761 4: true when buf looks like RTCP multiplexed with RTP, i.e.
 * version 2 and the second octet (M bit + PT) within 192..223. Does not
 * validate the RTCP packet. buf borrowed.
 */
bool cv_rtp_is_rtcp(const uint8_t *buf, size_t len);

/*
 * One header extension element: local id, borrowed data and its length.
 * Used both by the iterator (data points into the packet) and by the
 * builders (data points at the caller's bytes).
 */
struct cv_rtp_ext_elem {
	uint8_t id;
	const uint8_t *data;
	size_t len;
};

/*
 * Writes the RTP header described by h into buf[0..cap): fixed header,
 * h->csrc_count CSRCs and, when h->extension or n_elems > 0 (the X bit is
 * then set), an extension block. The
 * extension block comes from elems[0..n_elems) when n_elems > 0 (built as
 * with cv_rtp_ext_build(), profile chosen there), else from the raw block
 * h->ext_profile / h->ext / h->ext_len (ext_len a multiple of 4).
 * h->padding is written as given: the caller then appends payload and the
 * padding. h->hdr_len, payload and pad_len are ignored. All pointers
 * borrowed. Returns the bytes written, -ENOBUFS when cap is too small,
 * -EINVAL for impossible input (CC > 15, PT > 127, bad ext_len or
 * elements). Nothing is guaranteed about buf on error.
 */
int cv_rtp_write_header(uint8_t *buf, size_t cap, const struct cv_rtp_hdr *h,
			const struct cv_rtp_ext_elem *elems, size_t n_elems);

/*
 * In-place header rewrites for the forwarder (RFC 3550 5.1 fields).
 * Precondition: pkt holds at least CV_RTP_HDR_MIN bytes of an RTP packet
 * that was parsed before. No parsing, no checks beyond that.
 */
void cv_rtp_set_seq(uint8_t *pkt, uint16_t seq);
void cv_rtp_set_ts(uint8_t *pkt, uint32_t ts);
void cv_rtp_set_ssrc(uint8_t *pkt, uint32_t ssrc);
void cv_rtp_set_pt(uint8_t *pkt, uint8_t pt); /* pt < 128, M bit kept */
void cv_rtp_set_marker(uint8_t *pkt, bool marker);

/*
 * Removes the header extension of the packet pkt[0..*len) in place: moves
 * payload and padding down, clears the X bit and lowers *len. A packet
 * without extension is left as is. Returns 0 or CV_EPARSE (pkt unchanged).
 */
int cv_rtp_strip_ext(uint8_t *pkt, size_t *len);

/*
 * Header extension iterator (RFC 8285 4.2 one-byte, 4.3 two-byte form).
 * Padding bytes (id 0) are skipped; in the one-byte form id 15 stops the
 * iteration (RFC 8285 4.2). Any other profile yields no element.
 * Fields are private.
 */
struct cv_rtp_ext_iter {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool two_byte;
};

/* Starts iterating h's extension block (h from cv_rtp_parse, borrowed). */
void cv_rtp_ext_iter_init(struct cv_rtp_ext_iter *it,
			  const struct cv_rtp_hdr *h);

/*
 * Next element into *out (data borrowed from the packet). Returns 1 with
 * an element, 0 at the end, CV_EPARSE when an element overruns the block
 * (the iteration is then over).
 */
int cv_rtp_ext_iter_next(struct cv_rtp_ext_iter *it,
			 struct cv_rtp_ext_elem *out);

/*
 * Finds the first element with local id `id` in h's extension block.
 * Returns 0 with *out filled, -ENOENT when absent, CV_EPARSE when the block
 * is malformed before the element is found.
 */
int cv_rtp_ext_find(const struct cv_rtp_hdr *h, uint8_t id,
		    struct cv_rtp_ext_elem *out);

/*
 * Builds an extension block body (what follows the 4-byte extension
 * header) from elems[0..n] into buf[0..cap), zero-padded to a multiple of
 * 4. RFC 8285 4.2/4.3: the one-byte form when every id is 1..14 and every
 * length 1..16, else the two-byte form (ids 1..255, lengths 0..255,
 * appbits 0). *profile gets 0xBEDE or 0x1000. Returns bytes written (0
 * when n is 0), -ENOBUFS, or -EINVAL for an id or length no form allows.
 */
int cv_rtp_ext_build(uint8_t *buf, size_t cap,
		     const struct cv_rtp_ext_elem *elems, size_t n,
		     uint16_t *profile);

/*
 * Replaces the value of the existing element `id` of the packet
 * pkt[0..len) with data[0..data_len), which must have the element's
 * length. Returns 0, -ENOENT (no such element), -EINVAL (other length),
 * CV_EPARSE (packet or block malformed). pkt is changed only on success.
 */
int cv_rtp_ext_rewrite(uint8_t *pkt, size_t len, uint8_t id,
		       const uint8_t *data, size_t data_len);

/*
 * Typed element values. Readers return 0 or CV_EPARSE when the element
 * has the wrong size or content; encoders write exactly the element's
 * data bytes (the size given) and cannot fail.
 */

/*
 * MID (RFC 8843 15.2) and RID / repaired RID (RFC 8852 3): SDES text
 * carried as the element data. The slice borrows from the element.
 * MID: 1..255 printable ASCII octets; RID: 1..255 of [A-Za-z0-9_-].
 */
int cv_rtp_ext_read_mid(const struct cv_rtp_ext_elem *e, const char **p,
			size_t *len);
int cv_rtp_ext_read_rid(const struct cv_rtp_ext_elem *e, const char **p,
			size_t *len);

/* abs-send-time: 24-bit 6.18 fixed-point seconds, 3 bytes. */
int cv_rtp_ext_read_abs_send_time(const struct cv_rtp_ext_elem *e,
				  uint32_t *abs24);
void cv_rtp_ext_put_abs_send_time(uint8_t out[3], uint32_t abs24);
/* abs-send-time value of a time in microseconds (wraps every 64 s). */
uint32_t cv_rtp_abs_send_time_from_us(uint64_t us);

/*
 * Transport-wide sequence number, 2 bytes
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01 2).
 */
int cv_rtp_ext_read_tw_seq(const struct cv_rtp_ext_elem *e, uint16_t *seq);
void cv_rtp_ext_put_tw_seq(uint8_t out[2], uint16_t seq);

/*
 * Client-to-mixer audio level (RFC 6464 3), 1 byte: V (voice activity)
 * and the level in -dBov 0..127. (The two-byte form may carry padding
 * after it; extra bytes are accepted by the reader.)
 */
int cv_rtp_ext_read_audio_level(const struct cv_rtp_ext_elem *e, bool *voice,
				uint8_t *level_dbov);
void cv_rtp_ext_put_audio_level(uint8_t out[1], bool voice, uint8_t level_dbov);

/*
 * Sequence numbers. cv_seq16_newer: true when a comes after b modulo 2^16
 * (half-range rule; at exactly 2^15 apart the larger value wins so that
 * the relation stays antisymmetric).
 */
bool cv_seq16_newer(uint16_t a, uint16_t b);

/*
 * Per-source reception statistics (RFC 3550 A.1 sequence validation with
 * probation, A.3 loss, A.8 interarrival jitter). Embedded by value; fields
 * are private, use the functions. Caller thread only (one per source).
 */
struct cv_rtp_seq {
	uint16_t max_seq;
	uint32_t cycles; /* shifted count of seq wraps, RFC 3550 A.1 */
	uint32_t base_seq;
	uint32_t bad_seq;
	uint32_t probation;
	uint32_t received;
	uint32_t expected_prior;
	uint32_t received_prior;
	uint32_t transit;
	uint32_t jitter_q4; /* jitter in timestamp units, times 16 */
	bool have_transit;
};

/* Starts a source whose first packet has `seq`, on probation (A.1). */
void cv_rtp_seq_init(struct cv_rtp_seq *s, uint16_t seq);

/*
 * Accounts a packet with `seq`. Returns true when the packet is valid
 * (counted), false while the source is on probation or for a large jump
 * not yet confirmed by the next packet (RFC 3550 A.1).
 */
bool cv_rtp_seq_update(struct cv_rtp_seq *s, uint16_t seq);

/* Highest extended sequence number seen (cycles + max_seq). */
uint32_t cv_rtp_seq_ext_max(const struct cv_rtp_seq *s);

/* Extends a 16-bit seq near the current maximum to 32 bits (wrap aware). */
uint32_t cv_rtp_seq_extend(const struct cv_rtp_seq *s, uint16_t seq);

/* Packets expected since the start (A.3). */
uint32_t cv_rtp_seq_expected(const struct cv_rtp_seq *s);

/* Cumulative lost packets (A.3), clamped to the 24-bit signed range. */
int32_t cv_rtp_seq_lost(const struct cv_rtp_seq *s);

/*
 * Fraction lost since the previous call, 8-bit fixed point (A.3), as for
 * an RTCP report block; starts a new interval.
 */
uint8_t cv_rtp_seq_fraction_lost(struct cv_rtp_seq *s);

/*
 * Updates the interarrival jitter (RFC 3550 A.8) with a packet's RTP
 * timestamp and its arrival time converted to the same clock units.
 */
void cv_rtp_seq_jitter_update(struct cv_rtp_seq *s, uint32_t rtp_ts,
			      uint32_t arrival_ts);

/* Current jitter estimate in timestamp units (the RR's jitter field). */
uint32_t cv_rtp_seq_jitter(const struct cv_rtp_seq *s);

#endif
