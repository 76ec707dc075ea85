/*
 * RTCP (RFC 3550 6) compound-packet iteration with typed views and
 * writers: SR, RR, SDES, BYE, generic NACK and PLI (RFC 4585), FIR
 * (RFC 5104), REMB (draft-alvestrand-rmcat-remb-03) and transport-wide
 * congestion control feedback
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01).
 *
 * Packet path: no allocation, no lock, no logging. Views borrow from the
 * caller's buffer. All functions touch only their arguments: any thread
 * may call them on data it owns.
 */
#ifndef CONCLAVE_RTCP_H
#define CONCLAVE_RTCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire packet types (RFC 3550 12.1, RFC 4585 6.1). */
enum cv_rtcp_pt {
	CV_RTCP_PT_SR = 200,
	CV_RTCP_PT_RR = 201,
	CV_RTCP_PT_SDES = 202,
	CV_RTCP_PT_BYE = 203,
	CV_RTCP_PT_APP = 204,
	CV_RTCP_PT_RTPFB = 205,
	CV_RTCP_PT_PSFB = 206,
};

/* What a view holds. Anything else is CV_RTCP_KIND_UNKNOWN. */
enum cv_rtcp_kind {
	CV_RTCP_KIND_UNKNOWN = 0,
	CV_RTCP_KIND_SR,
	CV_RTCP_KIND_RR,
	CV_RTCP_KIND_SDES,
	CV_RTCP_KIND_BYE,
	CV_RTCP_KIND_NACK, /* RTPFB FMT 1 */
	CV_RTCP_KIND_TCC,  /* RTPFB FMT 15 */
	CV_RTCP_KIND_PLI,  /* PSFB FMT 1 */
	CV_RTCP_KIND_FIR,  /* PSFB FMT 4 */
	CV_RTCP_KIND_REMB, /* PSFB FMT 15 with "REMB" */
};

#define CV_RTCP_HDR_LEN	   4
#define CV_RTCP_RB_LEN	   24 /* report block */
#define CV_RTCP_MAX_COUNT  31 /* RC / SC fields are 5 bits */
#define CV_RTCP_SDES_CNAME 1

/* Report block (RFC 3550 6.4.1), host order. */
struct cv_rtcp_rb {
	uint32_t ssrc;
	uint8_t fraction_lost; /* 8-bit fixed point */
	int32_t cum_lost;      /* 24-bit signed */
	uint32_t ext_high_seq;
	uint32_t jitter;
	uint32_t lsr;  /* middle 32 bits of the last SR's NTP time */
	uint32_t dlsr; /* 1/65536 s */
};

/* Sender info of an SR (RFC 3550 6.4.1), host order. */
struct cv_rtcp_sr_info {
	uint32_t ssrc;
	uint64_t ntp; /* 32.32 fixed-point seconds since 1900 */
	uint32_t rtp_ts;
	uint32_t pkt_count;
	uint32_t octet_count;
};

/*
 * Typed view of one packet of a compound. Common fields are always set;
 * the union member matching `kind` is set. Pointers borrow from the
 * iterated buffer; read lists with the accessors below.
 */
struct cv_rtcp_pkt {
	enum cv_rtcp_kind kind;
	uint8_t pt;
	uint8_t count;	     /* RC, SC or FMT field */
	const uint8_t *data; /* whole packet: header, body, padding */
	size_t len;
	const uint8_t *body; /* after the 4-byte header, padding excluded */
	size_t body_len;
	uint32_t ssrc; /* sender SSRC (SR, RR, FB), first SSRC (BYE), or 0 */
	uint32_t media_ssrc; /* feedback: media source SSRC, else 0 */
	union {
		struct {
			struct cv_rtcp_sr_info info;
			const uint8_t *rb;
			uint8_t rb_count;
		} sr;
		struct {
			const uint8_t *rb;
			uint8_t rb_count;
		} rr;
		struct {
			const uint8_t *chunks;
			size_t chunks_len;
			uint8_t chunk_count;
		} sdes;
		struct {
			const uint8_t *ssrcs;
			uint8_t ssrc_count;
			const char *reason; /* not terminated; NULL if none */
			size_t reason_len;
		} bye;
		struct {
			const uint8_t *items; /* PID/BLP pairs */
			size_t item_count;
		} nack;
		struct {
			uint16_t base_seq;
			uint16_t status_count;
			int32_t ref_time; /* signed 24-bit, 64 ms units */
			uint8_t fb_count;
			const uint8_t *chunks;
			size_t chunk_count;
			const uint8_t *deltas;
			size_t deltas_len;
		} tcc;
		struct {
			const uint8_t *entries;
			size_t entry_count;
		} fir;
		struct {
			uint64_t bitrate_bps; /* saturated at UINT64_MAX */
			const uint8_t *ssrcs;
			uint8_t ssrc_count;
		} remb;
	} u;
};

/* Compound iterator. Fields are private. */
struct cv_rtcp_iter {
	const uint8_t *buf;
	size_t len;
	size_t off;
	unsigned n;
	bool failed;
};

/* Starts iterating the compound buf[0..len) (borrowed). */
void cv_rtcp_iter_init(struct cv_rtcp_iter *it, const uint8_t *buf, size_t len);

/*
 * Next packet into *out. Returns 1 with a packet, 0 at the end, CV_EPARSE
 * when the packet at the current position is malformed (RFC 3550 6.4.1,
 * A.2: version 2, length within the buffer, padding only on the last
 * packet and fitting, a known type's body within its length; an empty
 * compound is malformed too). After an error the iteration is over;
 * packets returned before it remain valid views. Unknown types and
 * formats come back as CV_RTCP_KIND_UNKNOWN.
 */
int cv_rtcp_iter_next(struct cv_rtcp_iter *it, struct cv_rtcp_pkt *out);

/* Report block i (< rb_count) of an SR or RR view. */
void cv_rtcp_report_block(const struct cv_rtcp_pkt *p, size_t i,
			  struct cv_rtcp_rb *out);

/* SSRC i (< ssrc_count) of a BYE or REMB view. */
uint32_t cv_rtcp_bye_ssrc(const struct cv_rtcp_pkt *p, size_t i);
uint32_t cv_rtcp_remb_ssrc(const struct cv_rtcp_pkt *p, size_t i);

/* FIR entry i (< entry_count): RFC 5104 4.3.1.1. */
struct cv_rtcp_fir_entry {
	uint32_t ssrc;
	uint8_t seq;
};
void cv_rtcp_fir_entry(const struct cv_rtcp_pkt *p, size_t i,
		       struct cv_rtcp_fir_entry *out);

/* NACK item i (< item_count): packet id and bitmask of following lost. */
void cv_rtcp_nack_item(const struct cv_rtcp_pkt *p, size_t i, uint16_t *pid,
		       uint16_t *blp);

/*
 * Expands a NACK view into lost sequence numbers (RFC 4585 6.2.1: PID,
 * then PID+i+1 for each bit i of BLP), in item order, into out[0..cap).
 * Returns the number stored (at most cap; 17 per item is always enough).
 */
size_t cv_rtcp_nack_expand(const struct cv_rtcp_pkt *p, uint16_t *out,
			   size_t cap);

/* SDES items, chunk by chunk (RFC 3550 6.5). */
struct cv_rtcp_sdes_item {
	uint32_t ssrc;	  /* the chunk's SSRC/CSRC */
	uint8_t type;	  /* CV_RTCP_SDES_CNAME, ... */
	const char *text; /* not terminated, borrowed */
	size_t len;
};

/* Fields are private. */
struct cv_rtcp_sdes_iter {
	const uint8_t *p;
	size_t len;
	size_t off;
	unsigned chunks_left;
	uint32_t ssrc;
	bool in_chunk;
};

void cv_rtcp_sdes_iter_init(struct cv_rtcp_sdes_iter *it,
			    const struct cv_rtcp_pkt *p);
/* Returns 1 with an item, 0 at the end, CV_EPARSE if malformed. */
int cv_rtcp_sdes_iter_next(struct cv_rtcp_sdes_iter *it,
			   struct cv_rtcp_sdes_item *out);

/*
 * Transport-wide CC feedback decode: one status per packet from base_seq
 * on. Symbols: not received, received with a small delta (1 byte,
 * 0..255), received with a large or negative delta (2 bytes, signed).
 * Deltas are in 250 us units; recv_us is the reference time (64 ms units,
 * sign-extended) plus every delta so far, in microseconds.
 */
enum cv_rtcp_tcc_symbol {
	CV_TCC_NOT_RECEIVED = 0,
	CV_TCC_SMALL_DELTA = 1,
	CV_TCC_LARGE_DELTA = 2,
};

struct cv_rtcp_tcc_status {
	uint16_t seq;
	enum cv_rtcp_tcc_symbol symbol;
	int32_t delta_250us; /* 0 when not received */
	int64_t recv_us;     /* meaningful when received */
};

/* Fields are private. */
struct cv_rtcp_tcc_iter {
	const uint8_t *chunks;
	size_t chunk_count;
	const uint8_t *deltas;
	size_t deltas_len;
	uint32_t status_left;
	size_t chunk_i;
	uint32_t in_chunk;
	size_t delta_off;
	uint16_t seq;
	int64_t t_us;
};

void cv_rtcp_tcc_iter_init(struct cv_rtcp_tcc_iter *it,
			   const struct cv_rtcp_pkt *p);
/* Returns 1 with a status, 0 after status_count statuses, CV_EPARSE. */
int cv_rtcp_tcc_iter_next(struct cv_rtcp_tcc_iter *it,
			  struct cv_rtcp_tcc_status *out);

/*
 * Writers. Each writes one RTCP packet at buf[0..cap) and returns the
 * bytes written (a multiple of 4), -ENOBUFS when cap is too small (buf
 * may then hold partial output), or -EINVAL for input the format cannot
 * carry. Pointer parameters are borrowed.
 */

/* SR with n_rb (<= 31) report blocks (RFC 3550 6.4.1). */
int cv_rtcp_write_sr(uint8_t *buf, size_t cap, const struct cv_rtcp_sr_info *sr,
		     const struct cv_rtcp_rb *rb, size_t n_rb);

/* RR with n_rb (<= 31) report blocks (RFC 3550 6.4.2). */
int cv_rtcp_write_rr(uint8_t *buf, size_t cap, uint32_t ssrc,
		     const struct cv_rtcp_rb *rb, size_t n_rb);

/* SDES with one chunk holding a CNAME (1..255 bytes) (RFC 3550 6.5.1). */
int cv_rtcp_write_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc,
			     const char *cname, size_t cname_len);

/* BYE for n (1..31) SSRCs, optional reason (<= 255) (RFC 3550 6.6). */
int cv_rtcp_write_bye(uint8_t *buf, size_t cap, const uint32_t *ssrcs, size_t n,
		      const char *reason, size_t reason_len);

/*
 * Generic NACK (RFC 4585 6.2.1) for lost[0..n) (n >= 1), any order:
 * each number joins an earlier item whose PID it equals or follows by
 * 1..16 (modulo 2^16), else starts a new item. Ascending (wrap-aware)
 * input gives the fewest items in O(n); unsorted input costs up to
 * O(n * items).
 */
int cv_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		       uint32_t media_ssrc, const uint16_t *lost, size_t n);

/* PLI (RFC 4585 6.3.1). */
int cv_rtcp_write_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      uint32_t media_ssrc);

/* FIR with n (>= 1) entries (RFC 5104 4.3.1); media SSRC field is 0. */
int cv_rtcp_write_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      const struct cv_rtcp_fir_entry *e, size_t n);

/*
 * REMB (draft-alvestrand-rmcat-remb-03 2.2) for n (<= 255) SSRCs. The
 * bitrate is rounded down to 18-bit mantissa times 2^exp.
 */
int cv_rtcp_write_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		       uint64_t bitrate_bps, const uint32_t *ssrcs, size_t n);

/* One received packet for transport-cc feedback. */
struct cv_rtcp_tcc_arrival {
	uint16_t seq;	    /* transport-wide sequence number */
	int64_t arrival_us; /* receiver clock, >= 0 */
};

/*
 * Transport-cc feedback (draft-holmer-...-01 3.1) for pkts[0..n) (n >= 1),
 * the packets received, in increasing transport sequence order (wrap
 * aware, no duplicates); gaps are reported as not received. base_seq is
 * pkts[0].seq; the reference time is pkts[0]'s arrival rounded down to
 * 64 ms; deltas are rounded to 250 us without drift. Returns -EINVAL for
 * out-of-order input or an interval beyond +-8.19 s (split the report).
 */
int cv_rtcp_write_tcc(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      uint32_t media_ssrc, uint8_t fb_count,
		      const struct cv_rtcp_tcc_arrival *pkts, size_t n);

/*
 * Compound builder: append writer output while space remains. Embedded by
 * value; fields private. buf is borrowed for the builder's life.
 *
 *	struct cv_rtcp_builder b;
 *	cv_rtcp_builder_init(&b, buf, sizeof(buf));
 *	rc = CV_RTCP_APPEND(&b, cv_rtcp_write_rr, ssrc, rbs, n);
 */
struct cv_rtcp_builder {
	uint8_t *buf;
	size_t cap;
	size_t len;
};

void cv_rtcp_builder_init(struct cv_rtcp_builder *b, uint8_t *buf, size_t cap);
/* Where the next packet goes, and how many bytes remain there. */
uint8_t *cv_rtcp_builder_tail(const struct cv_rtcp_builder *b);
size_t cv_rtcp_builder_room(const struct cv_rtcp_builder *b);
/*
 * Accounts a writer's result: a byte count is appended (returns 0), an
 * error leaves the compound as it was and is returned.
 */
int cv_rtcp_builder_commit(struct cv_rtcp_builder *b, int written);
/* Bytes of the compound so far. */
size_t cv_rtcp_builder_len(const struct cv_rtcp_builder *b);

#define CV_RTCP_APPEND(b, writer, ...)                                         \
	cv_rtcp_builder_commit((b),                                            \
			       writer(cv_rtcp_builder_tail(b),                 \
				      cv_rtcp_builder_room(b), __VA_ARGS__))

#endif
