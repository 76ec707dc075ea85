/*
 * RTP fixed header (RFC 3550 5.1) parse/write, in-place rewrites for the
 * forwarder, and per-source sequence/jitter bookkeeping (RFC 3550 A.1,
 * A.3, A.8). Header extensions live in rtp_ext.c.
 */
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "media/rtp/rtp_bytes.h"

int cv_rtp_parse(const uint8_t *buf, size_t len, struct cv_rtp_hdr *out)
{
	if (!buf || len < CV_RTP_HDR_MIN)
		return CV_EPARSE;
	/* RFC 3550 5.1: V must be 2. */
	if (buf[0] >> 6 != CV_RTP_VERSION)
		return CV_EPARSE;

	out->padding = buf[0] & 0x20;
	out->extension = buf[0] & 0x10;
	out->csrc_count = buf[0] & 0x0f;
	out->marker = buf[1] & 0x80;
	out->pt = buf[1] & 0x7f;
	out->seq = cv_rd16(buf + 2);
	out->ts = cv_rd32(buf + 4);
	out->ssrc = cv_rd32(buf + 8);

	size_t off = CV_RTP_HDR_MIN;
	if (len - off < 4u * out->csrc_count)
		return CV_EPARSE;
	for (unsigned i = 0; i < out->csrc_count; i++, off += 4)
		out->csrc[i] = cv_rd32(buf + off);

	out->ext_profile = 0;
	out->ext = NULL;
	out->ext_len = 0;
	if (out->extension) {
		/* RFC 3550 5.3.1: 16-bit profile, 16-bit length in words. */
		if (len - off < 4)
			return CV_EPARSE;
		out->ext_profile = cv_rd16(buf + off);
		size_t ext_len = 4u * cv_rd16(buf + off + 2);
		off += 4;
		if (len - off < ext_len)
			return CV_EPARSE;
		out->ext = buf + off;
		out->ext_len = ext_len;
		off += ext_len;
	}
	out->hdr_len = off;

	out->pad_len = 0;
	if (out->padding) {
		/*
		 * RFC 3550 5.1: the last octet counts the padding octets,
		 * itself included, so it is at least 1 and lies after the
		 * header.
		 */
		uint8_t pad = buf[len - 1];
		if (pad == 0 || pad > len - off)
			return CV_EPARSE;
		out->pad_len = pad;
	}
	out->payload = buf + off;
	out->payload_len = len - off - out->pad_len;
	return 0;
}

bool cv_rtp_is_rtcp(const uint8_t *buf, size_t len)
{
	/* RFC 5761 4: RTCP packet types 192..223 sit where M+PT would. */
	if (!buf || len < 2 || buf[0] >> 6 != CV_RTP_VERSION)
		return false;
	return buf[1] >= 192 && buf[1] <= 223;
}

static int ext_block_len(const struct cv_rtp_hdr *h,
			 const struct cv_rtp_ext_elem *elems, size_t n_elems,
			 size_t *ext_len)
{
	if (n_elems > 0) {
		/* A dry run of the builder gives the exact size. */
		size_t sz = 0;
		bool two = false;
		for (size_t i = 0; i < n_elems; i++) {
			const struct cv_rtp_ext_elem *e = &elems[i];
			if (e->id == 0 || e->len > 255 || (e->len && !e->data))
				return -EINVAL;
			if (e->id > 14 || e->len == 0 || e->len > 16)
				two = true;
			sz += e->len;
		}
		sz += (two ? 2 : 1) * n_elems;
		*ext_len = (sz + 3) & ~(size_t)3;
	} else {
		if (h->ext_len % 4 || h->ext_len / 4 > 0xffff ||
		    (h->ext_len && !h->ext))
			return -EINVAL;
		*ext_len = h->ext_len;
	}
	return 0;
}

int cv_rtp_write_header(uint8_t *buf, size_t cap, const struct cv_rtp_hdr *h,
			const struct cv_rtp_ext_elem *elems, size_t n_elems)
{
	if (h->csrc_count > CV_RTP_MAX_CSRC || h->pt > 127)
		return -EINVAL;
	bool ext = h->extension || n_elems > 0;
	size_t ext_len = 0;
	if (ext) {
		int rc = ext_block_len(h, elems, n_elems, &ext_len);
		if (rc < 0)
			return rc;
		if (ext_len / 4 > 0xffff)
			return -EINVAL;
	}
	size_t need =
		CV_RTP_HDR_MIN + 4u * h->csrc_count + (ext ? 4 + ext_len : 0);
	if (cap < need)
		return -ENOBUFS;

	buf[0] = (uint8_t)(CV_RTP_VERSION << 6 | (h->padding ? 0x20 : 0) |
			   (ext ? 0x10 : 0) | h->csrc_count);
	buf[1] = (uint8_t)((h->marker ? 0x80 : 0) | h->pt);
	cv_wr16(buf + 2, h->seq);
	cv_wr32(buf + 4, h->ts);
	cv_wr32(buf + 8, h->ssrc);
	size_t off = CV_RTP_HDR_MIN;
	for (unsigned i = 0; i < h->csrc_count; i++, off += 4)
		cv_wr32(buf + off, h->csrc[i]);
	if (ext) {
		uint16_t profile = h->ext_profile;
		cv_wr16(buf + off + 2, (uint16_t)(ext_len / 4));
		if (n_elems > 0) {
			int n = cv_rtp_ext_build(buf + off + 4, cap - off - 4,
						 elems, n_elems, &profile);
			if (n < 0)
				return n;
		} else if (ext_len) {
			memmove(buf + off + 4, h->ext, ext_len);
		}
		cv_wr16(buf + off, profile);
		off += 4 + ext_len;
	}
	return (int)off;
}

void cv_rtp_set_seq(uint8_t *pkt, uint16_t seq)
{
	cv_wr16(pkt + 2, seq);
}

void cv_rtp_set_ts(uint8_t *pkt, uint32_t ts)
{
	cv_wr32(pkt + 4, ts);
}

void cv_rtp_set_ssrc(uint8_t *pkt, uint32_t ssrc)
{
	cv_wr32(pkt + 8, ssrc);
}

void cv_rtp_set_pt(uint8_t *pkt, uint8_t pt)
{
	pkt[1] = (uint8_t)((pkt[1] & 0x80) | (pt & 0x7f));
}

void cv_rtp_set_marker(uint8_t *pkt, bool marker)
{
	pkt[1] = (uint8_t)((pkt[1] & 0x7f) | (marker ? 0x80 : 0));
}

int cv_rtp_strip_ext(uint8_t *pkt, size_t *len)
{
	struct cv_rtp_hdr h;
	int rc = cv_rtp_parse(pkt, *len, &h);
	if (rc < 0)
		return rc;
	if (!h.extension)
		return 0;
	size_t block = 4 + h.ext_len;
	size_t start = h.hdr_len - block;
	memmove(pkt + start, pkt + h.hdr_len, *len - h.hdr_len);
	pkt[0] &= (uint8_t)~0x10;
	*len -= block;
	return 0;
}

bool cv_seq16_newer(uint16_t a, uint16_t b)
{
	uint16_t d = (uint16_t)(a - b);
	if (d == 0x8000)
		return a > b;
	return d != 0 && d < 0x8000;
}

/* RFC 3550 A.1 constants. */
enum {
	SEQ_MOD = 1 << 16,
	MAX_DROPOUT = 3000,
	MAX_MISORDER = 100,
	MIN_SEQUENTIAL = 2,
};

/* RFC 3550 A.1 init_seq: a (re)start of the sequence space at seq. */
static void seq_restart(struct cv_rtp_seq *s, uint16_t seq)
{
	s->base_seq = seq;
	s->max_seq = seq;
	s->bad_seq = SEQ_MOD + 1; /* so that seq == bad_seq is false */
	s->cycles = 0;
	s->received = 0;
	s->received_prior = 0;
	s->expected_prior = 0;
}

void cv_rtp_seq_init(struct cv_rtp_seq *s, uint16_t seq)
{
	memset(s, 0, sizeof(*s));
	seq_restart(s, seq);
	/* The first packet must then arrive as max_seq + 1: A.1. */
	s->max_seq = (uint16_t)(seq - 1);
	s->probation = MIN_SEQUENTIAL;
}

bool cv_rtp_seq_update(struct cv_rtp_seq *s, uint16_t seq)
{
	uint16_t udelta = (uint16_t)(seq - s->max_seq);

	/*
	 * RFC 3550 A.1: a source is valid once MIN_SEQUENTIAL packets in
	 * sequence have been seen.
	 */
	if (s->probation) {
		if (seq == (uint16_t)(s->max_seq + 1)) {
			s->probation--;
			s->max_seq = seq;
			if (s->probation == 0) {
				seq_restart(s, seq);
				s->received++;
				return true;
			}
		} else {
			s->probation = MIN_SEQUENTIAL - 1;
			s->max_seq = seq;
		}
		return false;
	}
	if (udelta < MAX_DROPOUT) {
		/* In order, with a permissible gap. */
		if (seq < s->max_seq)
			s->cycles += SEQ_MOD;
		s->max_seq = seq;
	} else if (udelta <= SEQ_MOD - MAX_MISORDER) {
		/*
		 * A very large jump: believe it only when the next packet
		 * follows it (the sender restarted).
		 */
		if (seq == s->bad_seq) {
			seq_restart(s, seq);
		} else {
			s->bad_seq = (uint16_t)(seq + 1);
			return false;
		}
	}
	/* else: duplicate or reordered packet, counted. */
	s->received++;
	return true;
}

uint32_t cv_rtp_seq_ext_max(const struct cv_rtp_seq *s)
{
	return s->cycles + s->max_seq;
}

uint32_t cv_rtp_seq_extend(const struct cv_rtp_seq *s, uint16_t seq)
{
	int16_t d = (int16_t)(uint16_t)(seq - s->max_seq);
	return cv_rtp_seq_ext_max(s) + (uint32_t)(int32_t)d;
}

uint32_t cv_rtp_seq_expected(const struct cv_rtp_seq *s)
{
	if (s->probation)
		return 0;
	return cv_rtp_seq_ext_max(s) - s->base_seq + 1;
}

int32_t cv_rtp_seq_lost(const struct cv_rtp_seq *s)
{
	/* RFC 3550 A.3: may be negative with duplicates; 24-bit field. */
	int64_t lost = (int64_t)cv_rtp_seq_expected(s) - s->received;
	if (lost > 0x7fffff)
		lost = 0x7fffff;
	if (lost < -0x800000)
		lost = -0x800000;
	return (int32_t)lost;
}

uint8_t cv_rtp_seq_fraction_lost(struct cv_rtp_seq *s)
{
	uint32_t expected = cv_rtp_seq_expected(s);
	uint32_t exp_int = expected - s->expected_prior;
	uint32_t rcv_int = s->received - s->received_prior;
	s->expected_prior = expected;
	s->received_prior = s->received;
	int64_t lost_int = (int64_t)exp_int - rcv_int;
	if (exp_int == 0 || lost_int <= 0)
		return 0;
	return (uint8_t)(((uint64_t)lost_int << 8) / exp_int);
}

void cv_rtp_seq_jitter_update(struct cv_rtp_seq *s, uint32_t rtp_ts,
			      uint32_t arrival_ts)
{
	/* RFC 3550 A.8: J += (|D| - J) / 16, kept scaled by 16. */
	uint32_t transit = arrival_ts - rtp_ts;
	if (!s->have_transit) {
		s->transit = transit;
		s->have_transit = true;
		return;
	}
	int32_t d = (int32_t)(transit - s->transit);
	s->transit = transit;
	uint64_t ad = d < 0 ? (uint64_t)(-(int64_t)d) : (uint64_t)d;
	uint64_t j = s->jitter_q4;
	j = j + ad - ((j + 8) >> 4);
	s->jitter_q4 = j > UINT32_MAX ? UINT32_MAX : (uint32_t)j;
}

uint32_t cv_rtp_seq_jitter(const struct cv_rtp_seq *s)
{
	return s->jitter_q4 >> 4;
}
