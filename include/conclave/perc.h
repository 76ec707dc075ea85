/*
 * PERC, node side: the wire formats a Media Distributor handles (RFC 8723
 * Original Header Block, RFC 8870 EKTField framing) and the hop-by-hop
 * transform of RFC 8723 double SRTP. See docs/perc.md.
 *
 * By construction this header holds no end-to-end (inner) key and no EKT
 * key: no function here takes, returns or stores one. The only keys the
 * hop transform uses are inside the struct cv_srtp sessions the caller
 * made from hop-by-hop key material. The inner layer (inner ciphertext and
 * inner tag) and the EKTField are opaque bytes that pass through untouched.
 * The endpoint side (inner layer, EKT keys) is client-only:
 * include/conclave/perc_e2e.h.
 *
 * RTCP in perc rooms uses only the outer (hop-by-hop) layer (RFC 8723
 * section 5.4 / perc-notes: "RTCP uses the outer half only"): it is plain
 * SRTCP with the hop key, cv_srtp_protect_rtcp / cv_srtp_unprotect_rtcp on
 * the same sessions; nothing in this module is needed for it.
 *
 * Everything here is on the packet path: no allocation, no lock, no
 * logging. Thread: the caller's (functions touch only their arguments and
 * the sessions passed in, which belong to the calling worker).
 */
#ifndef CONCLAVE_PERC_H
#define CONCLAVE_PERC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_srtp;

/* ---- Original Header Block (RFC 8723 section 4) ---- */

/* Largest OHB: PT octet, 2 SEQ octets, Config octet. */
#define CV_PERC_OHB_MAX_BYTES 4

/* Config octet bits (RFC 8723 section 4): R R R R B M P Q. */
#define CV_PERC_OHB_Q	     0x01 /* SEQ present */
#define CV_PERC_OHB_P	     0x02 /* PT present */
#define CV_PERC_OHB_M	     0x04 /* marker present (value in B) */
#define CV_PERC_OHB_B	     0x08 /* original marker bit */
#define CV_PERC_OHB_RESERVED 0xF0

/* Length of the inner (end-to-end) AEAD tag of the double GCM profiles. */
#define CV_PERC_INNER_TAG_BYTES 16

/*
 * The original values recorded in an OHB. has_x false: the field was not
 * changed by any Media Distributor (its current value is the original).
 * An all-false struct is the empty OHB (Config 0x00, one octet).
 */
struct cv_perc_ohb {
	bool has_pt;
	uint8_t pt; /* 0..127 */
	bool has_seq;
	uint16_t seq;
	bool has_marker;
	bool marker;
};

/*
 * Reads the OHB at the END of buf[0..len) (the outer plaintext after the
 * header), backwards: Config octet last, then SEQ, then PT (perc-notes).
 * buf borrowed. *ohb_len gets the OHB's length in octets (1..4).
 * Returns 0; CV_EPARSE when len is too short for what Config announces,
 * a reserved Config bit is set, B is set without M, or the PT octet has
 * its top bit set. On failure *out and *ohb_len are unspecified.
 */
int cv_perc_ohb_parse(const uint8_t *buf, size_t len, struct cv_perc_ohb *out,
		      size_t *ohb_len);

/* Octets cv_perc_ohb_write() writes for *o (1..4). */
size_t cv_perc_ohb_size(const struct cv_perc_ohb *o);

/*
 * Writes *o as [PT] [SEQ] Config into buf[0..cap). Returns the octets
 * written, -ENOBUFS when cap is too small, -EINVAL when o->pt > 127.
 */
int cv_perc_ohb_write(const struct cv_perc_ohb *o, uint8_t *buf, size_t cap);

/*
 * Record that a Media Distributor changes a header field from its current
 * value cur to nv (RFC 8723 section 4 with perc-notes):
 * - nv == cur: no change, *o untouched;
 * - the OHB has no entry for the field: the entry records cur;
 * - the OHB has an entry equal to nv (set back to the original): the entry
 *   is dropped;
 * - otherwise the first recorded original stays (first modification wins).
 * The caller then writes nv into the header itself. pt/nv for PT < 128.
 */
void cv_perc_ohb_change_pt(struct cv_perc_ohb *o, uint8_t cur, uint8_t nv);
void cv_perc_ohb_change_seq(struct cv_perc_ohb *o, uint16_t cur, uint16_t nv);
void cv_perc_ohb_change_marker(struct cv_perc_ohb *o, bool cur, bool nv);

/* ---- EKTField framing (RFC 8870 section 4.1) ---- */

enum cv_perc_ekt_type {
	CV_PERC_EKT_SHORT = 0x00,  /* ShortEKTField: one octet 0x00 */
	CV_PERC_EKT_LEGACY = 0x01, /* rejected (perc-notes) */
	CV_PERC_EKT_FULL = 0x02,   /* FullEKTField */
	/* 0x03..0xFF: extension fields, framed by length and skipped */
};

/* FullEKTField trailer after the ciphertext: SPI, Epoch, Length, Type. */
#define CV_PERC_EKT_FULL_TRAILER_BYTES 7
/* Smallest RFC 5649 output (one 64-bit block padded, plus the AIV). */
#define CV_PERC_EKT_MIN_CIPHERTEXT_BYTES 16
/* Largest EKTField we accept (an EKTPlaintext with a 256-octet key). */
#define CV_PERC_EKT_MAX_FIELD_BYTES 512

/*
 * View of the EKTField at the end of an SRTP packet. Pointers borrow from
 * the parsed buffer. For a ShortEKTField only type and len (1) are set;
 * for an extension field type, len and data (the whole field) are set.
 */
struct cv_perc_ekt_field {
	uint8_t type;
	size_t len;	     /* octets of the whole field */
	const uint8_t *data; /* the whole field */
	/* FullEKTField only: */
	const uint8_t *ciphertext; /* EKTCiphertext, opaque to the node */
	size_t ciphertext_len;	   /* multiple of 8, >= 16 */
	uint16_t spi;
	uint16_t epoch;
};

/*
 * Finds and frames the EKTField at the end of pkt[0..len) (RFC 8870 4.1:
 * the last octet is the message type; for types other than 0x00 the two
 * octets before it give the length of the whole field). pkt borrowed.
 * The SRTP packet is pkt[0..len - out->len), at least CV_RTP_HDR_MIN
 * (12) octets. Returns 0; CV_EPARSE (empty, truncated, length too small
 * or larger than the packet, ciphertext not a multiple of 8 or shorter
 * than 16, field larger than CV_PERC_EKT_MAX_FIELD_BYTES), CV_EPROTO for
 * the legacy type 0x01.
 */
int cv_perc_ekt_field_parse(const uint8_t *pkt, size_t len,
			    struct cv_perc_ekt_field *out);

/*
 * Writes a FullEKTField around an opaque ciphertext (borrowed):
 * ciphertext || SPI || Epoch || Length || 0x02. Returns octets written,
 * -ENOBUFS, or -EINVAL (ciphertext length not framable).
 */
int cv_perc_ekt_field_write_full(uint8_t *buf, size_t cap,
				 const uint8_t *ciphertext, size_t ct_len,
				 uint16_t spi, uint16_t epoch);

/* ---- hop-by-hop transform (RFC 8723 section 5, Media Distributor) ---- */

/*
 * What cv_perc_hop_ingress() learnt about a received double-SRTP packet.
 * The packet buffer then holds, from offset 0: the outer plaintext
 * (header with extensions || inner ciphertext || inner tag || OHB) of
 * plain_len octets, then ekt_len octets of EKTField at ekt_off.
 */
struct cv_perc_hop_rx {
	size_t plain_len; /* header + inner part + OHB */
	size_t hdr_len;	  /* RTP header with CSRCs and extensions */
	size_t ohb_len;
	struct cv_perc_ohb ohb; /* originals recorded by earlier hops */
	uint8_t pt;		/* current header values */
	uint16_t seq;
	bool marker;
	uint32_t ssrc;
	size_t ekt_off;
	size_t ekt_len;
	uint8_t ekt_type;
};

/* Changes a node may make (RFC 8723 section 4): PT, SEQ, marker only. */
struct cv_perc_hop_rewrite {
	bool set_pt;
	uint8_t pt; /* < 128 */
	bool set_seq;
	uint16_t seq;
	bool set_marker;
	bool marker;
};

/* Octets a forwarded packet can grow by: the OHB from 1 to 4 octets. */
#define CV_PERC_HOP_MAX_GROWTH_BYTES (CV_PERC_OHB_MAX_BYTES - 1)

/*
 * Ingress: splits off the EKTField (kept in place after the packet),
 * removes the outer layer with ingress (borrowed; an inbound session keyed
 * with the sender's hop-by-hop key: replay-checks the per-hop outer
 * sequence space), reads the OHB and checks that the inner part holds at
 * least the inner tag. buf (4-byte aligned) holds *len octets as received;
 * on success *len is unchanged and *rx describes the buffer, which the
 * caller then treats as read-only (egress copies from it).
 * Returns 0; CV_EPARSE (EKTField, RTP header, OHB or inner part
 * malformed), CV_EPROTO (legacy EKT type), CV_EINTEGRITY (outer tag),
 * CV_EREPLAY, CV_ECRYPTO, -EINVAL. On failure drop the packet.
 */
int cv_perc_hop_ingress(struct cv_srtp *ingress, uint8_t *buf, size_t len,
			struct cv_perc_hop_rx *rx);

/*
 * Egress for one receiver: copies the packet pkt (borrowed, as left by
 * cv_perc_hop_ingress with *rx) into dst[0..cap) (4-byte aligned),
 * applies rw (borrowed; NULL = no change), records the originals in the
 * OHB (cv_perc_ohb_change_*), re-applies the outer layer with egress
 * (borrowed; an outbound session keyed with this receiver's hop-by-hop
 * key, never the ingress key) and appends the EKTField untouched. Header
 * extensions are copied as received (hop-by-hop, covered only by the
 * outer tag). *out_len gets the length to send.
 * Returns 0; CV_ETOOBIG (cap < rx->plain_len + CV_PERC_HOP_MAX_GROWTH_BYTES
 * + outer trailer + rx->ekt_len), -EINVAL (pt >= 128), errors of
 * cv_srtp_protect. On failure dst is unspecified.
 */
int cv_perc_hop_egress(struct cv_srtp *egress, const uint8_t *pkt,
		       const struct cv_perc_hop_rx *rx,
		       const struct cv_perc_hop_rewrite *rw, uint8_t *dst,
		       size_t cap, size_t *out_len);

/*
 * Describes a packet kept in ingress form, i.e. the outer plaintext that
 * cv_perc_hop_ingress() left followed directly by its EKTField, buf[0..len)
 * (what the switch keeps for repair-mode resends): *rx as ingress would
 * have written it, with ekt_off = plain_len. No key involved. Returns 0;
 * CV_EPARSE, CV_EPROTO (as ingress); -EINVAL.
 */
int cv_perc_hop_parse_plain(const uint8_t *buf, size_t len,
			    struct cv_perc_hop_rx *rx);

#ifdef CV_PERC_FAULTY_NODE
/*
 * Faulty-node builds only (meson -Dperc_faulty_node=true; tests of the
 * receivers): cv_perc_hop_egress() that calls tamper on the outer
 * plaintext plain[0..*plain_len) (header of hdr_len octets; may grow by
 * up to ekt_len + 3 octets) and the EKTField ekt[0..*ekt_len) (may only
 * shrink) just before the outer layer is applied.
 */
typedef void cv_perc_hop_tamper_fn(void *arg, uint8_t *plain, size_t *plain_len,
				   size_t hdr_len, uint8_t *ekt,
				   size_t *ekt_len);
int cv_perc_hop_egress_tampered(struct cv_srtp *egress, const uint8_t *pkt,
				const struct cv_perc_hop_rx *rx,
				const struct cv_perc_hop_rewrite *rw,
				uint8_t *dst, size_t cap, size_t *out_len,
				cv_perc_hop_tamper_fn *tamper, void *arg);
#endif

#endif
