/*
 * RTCP compound iteration (RFC 3550 6, A.2), feedback messages (RFC 4585,
 * RFC 5104, REMB, transport-wide CC) and their writers. Parse-time checks
 * make every view's lists safe to read with the accessors.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/rtcp.h"
#include "media/rtp/rtp_bytes.h"

/* RTPFB / PSFB feedback message types (RFC 4585 6.1, RFC 5104 4). */
enum {
	FMT_NACK = 1,
	FMT_TCC = 15,
	FMT_PLI = 1,
	FMT_FIR = 4,
	FMT_AFB = 15,
};

#define TCC_FIXED_LEN 16 /* body: 2 SSRCs, base seq, count, ref, fb count */
#define TCC_MAX_RUN   0x1fff

/* ---- compound iteration ------------------------------------------ */

void cv_rtcp_iter_init(struct cv_rtcp_iter *it, const uint8_t *buf, size_t len)
{
	it->buf = buf;
	it->len = buf ? len : 0;
	it->off = 0;
	it->n = 0;
	it->failed = false;
}

static int parse_report(struct cv_rtcp_pkt *out, size_t fixed)
{
	/* RFC 3550 6.4.1/6.4.2: RC blocks after the fixed part. */
	if (out->body_len < fixed ||
	    (out->body_len - fixed) / CV_RTCP_RB_LEN < out->count)
		return CV_EPARSE;
	out->ssrc = cv_rd32(out->body);
	return 0;
}

static int parse_sr(struct cv_rtcp_pkt *out)
{
	int rc = parse_report(out, 24);
	if (rc < 0)
		return rc;
	const uint8_t *b = out->body;
	out->kind = CV_RTCP_KIND_SR;
	out->u.sr.info.ssrc = out->ssrc;
	out->u.sr.info.ntp = (uint64_t)cv_rd32(b + 4) << 32 | cv_rd32(b + 8);
	out->u.sr.info.rtp_ts = cv_rd32(b + 12);
	out->u.sr.info.pkt_count = cv_rd32(b + 16);
	out->u.sr.info.octet_count = cv_rd32(b + 20);
	out->u.sr.rb = b + 24;
	out->u.sr.rb_count = out->count;
	return 0;
}

static int parse_rr(struct cv_rtcp_pkt *out)
{
	int rc = parse_report(out, 4);
	if (rc < 0)
		return rc;
	out->kind = CV_RTCP_KIND_RR;
	out->u.rr.rb = out->body + 4;
	out->u.rr.rb_count = out->count;
	return 0;
}

static int parse_sdes(struct cv_rtcp_pkt *out)
{
	struct cv_rtcp_sdes_iter it;
	struct cv_rtcp_sdes_item item;
	int rc;

	out->kind = CV_RTCP_KIND_SDES;
	out->u.sdes.chunks = out->body;
	out->u.sdes.chunks_len = out->body_len;
	out->u.sdes.chunk_count = out->count;
	/* Walk every item once so that later walks cannot fail. */
	cv_rtcp_sdes_iter_init(&it, out);
	while ((rc = cv_rtcp_sdes_iter_next(&it, &item)) > 0)
		;
	if (rc < 0)
		return rc;
	if (out->count && out->body_len >= 4)
		out->ssrc = cv_rd32(out->body);
	return 0;
}

static int parse_bye(struct cv_rtcp_pkt *out)
{
	/* RFC 3550 6.6: SC SSRCs, then an optional length-prefixed text. */
	size_t list = 4u * out->count;
	if (out->body_len < list)
		return CV_EPARSE;
	out->kind = CV_RTCP_KIND_BYE;
	out->u.bye.ssrcs = out->body;
	out->u.bye.ssrc_count = out->count;
	out->u.bye.reason = NULL;
	out->u.bye.reason_len = 0;
	if (out->body_len > list) {
		size_t rlen = out->body[list];
		if (out->body_len - list - 1 < rlen)
			return CV_EPARSE;
		out->u.bye.reason = (const char *)out->body + list + 1;
		out->u.bye.reason_len = rlen;
	}
	if (out->count)
		out->ssrc = cv_rd32(out->body);
	return 0;
}

/* Width of each symbol's delta in bytes equals the symbol value (0/1/2). */
static uint32_t tcc_chunk_capacity(uint16_t c)
{
	if (!(c & 0x8000))
		return c & TCC_MAX_RUN;
	return (c & 0x4000) ? 7 : 14;
}

static unsigned tcc_chunk_symbol(uint16_t c, uint32_t i)
{
	if (!(c & 0x8000))
		return (c >> 13) & 3;
	if (!(c & 0x4000))
		return (c >> (13 - i)) & 1;
	return (c >> (12 - 2 * i)) & 3;
}

static int parse_tcc(struct cv_rtcp_pkt *out)
{
	/*
	 * draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1: chunks
	 * until packet_status_count statuses are covered, then one receive
	 * delta per received packet, then zero padding.
	 */
	const uint8_t *b = out->body;
	if (out->body_len < TCC_FIXED_LEN)
		return CV_EPARSE;
	out->u.tcc.base_seq = cv_rd16(b + 8);
	out->u.tcc.status_count = cv_rd16(b + 10);
	uint32_t ref = cv_rd24(b + 12);
	out->u.tcc.ref_time = (int32_t)(ref ^ 0x800000) - 0x800000;
	out->u.tcc.fb_count = b[15];

	size_t off = TCC_FIXED_LEN, chunks = 0, delta_bytes = 0;
	uint32_t left = out->u.tcc.status_count;
	while (left > 0) {
		if (out->body_len - off < 2)
			return CV_EPARSE;
		uint16_t c = cv_rd16(b + off);
		off += 2;
		chunks++;
		uint32_t k = tcc_chunk_capacity(c);
		if (k > left)
			k = left;
		if (!(c & 0x8000)) {
			unsigned s = tcc_chunk_symbol(c, 0);
			if (s == 3)
				return CV_EPARSE; /* reserved */
			delta_bytes += (size_t)s * k;
		} else {
			for (uint32_t i = 0; i < k; i++) {
				unsigned s = tcc_chunk_symbol(c, i);
				if (s == 3)
					return CV_EPARSE;
				delta_bytes += s;
			}
		}
		left -= k;
	}
	if (out->body_len - off < delta_bytes)
		return CV_EPARSE;
	out->kind = CV_RTCP_KIND_TCC;
	out->u.tcc.chunks = b + TCC_FIXED_LEN;
	out->u.tcc.chunk_count = chunks;
	out->u.tcc.deltas = b + off;
	out->u.tcc.deltas_len = delta_bytes;
	return 0;
}

static int parse_rtpfb(struct cv_rtcp_pkt *out)
{
	/* RFC 4585 6.1: sender SSRC, media SSRC, then the FCI. */
	if (out->body_len < 8)
		return CV_EPARSE;
	out->ssrc = cv_rd32(out->body);
	out->media_ssrc = cv_rd32(out->body + 4);
	size_t fci = out->body_len - 8;
	switch (out->count) {
	case FMT_NACK:
		/* RFC 4585 6.2.1: one or more 4-byte PID/BLP items. */
		if (fci == 0 || fci % 4)
			return CV_EPARSE;
		out->kind = CV_RTCP_KIND_NACK;
		out->u.nack.items = out->body + 8;
		out->u.nack.item_count = fci / 4;
		return 0;
	case FMT_TCC:
		return parse_tcc(out);
	default:
		return 0; /* unknown */
	}
}

static int parse_psfb(struct cv_rtcp_pkt *out)
{
	if (out->body_len < 8)
		return CV_EPARSE;
	const uint8_t *b = out->body;
	out->ssrc = cv_rd32(b);
	out->media_ssrc = cv_rd32(b + 4);
	size_t fci = out->body_len - 8;
	switch (out->count) {
	case FMT_PLI:
		/* RFC 4585 6.3.1: PLI has no FCI; extra bytes are ignored. */
		out->kind = CV_RTCP_KIND_PLI;
		return 0;
	case FMT_FIR:
		/* RFC 5104 4.3.1.2: one or more 8-byte entries. */
		if (fci == 0 || fci % 8)
			return CV_EPARSE;
		out->kind = CV_RTCP_KIND_FIR;
		out->u.fir.entries = b + 8;
		out->u.fir.entry_count = fci / 8;
		return 0;
	case FMT_AFB:
		/* draft-alvestrand-rmcat-remb-03 2.2; other AFBs: unknown. */
		if (fci < 8 || memcmp(b + 8, "REMB", 4) != 0)
			return 0;
		{
			uint8_t n = b[12];
			uint32_t v = cv_rd24(b + 13);
			unsigned exp = v >> 18;
			uint64_t mant = v & 0x3ffff;
			if ((fci - 8) / 4 < n)
				return CV_EPARSE;
			out->kind = CV_RTCP_KIND_REMB;
			if (mant && exp > 0 && (mant >> (64 - exp)) != 0)
				out->u.remb.bitrate_bps = UINT64_MAX;
			else
				out->u.remb.bitrate_bps = mant << exp;
			out->u.remb.ssrcs = b + 16;
			out->u.remb.ssrc_count = n;
		}
		return 0;
	default:
		return 0;
	}
}

static int parse_body(struct cv_rtcp_pkt *out)
{
	switch (out->pt) {
	case CV_RTCP_PT_SR:
		return parse_sr(out);
	case CV_RTCP_PT_RR:
		return parse_rr(out);
	case CV_RTCP_PT_SDES:
		return parse_sdes(out);
	case CV_RTCP_PT_BYE:
		return parse_bye(out);
	case CV_RTCP_PT_RTPFB:
		return parse_rtpfb(out);
	case CV_RTCP_PT_PSFB:
		return parse_psfb(out);
	default:
		if (out->body_len >= 4)
			out->ssrc = cv_rd32(out->body);
		return 0;
	}
}

static int parse_one(struct cv_rtcp_iter *it, struct cv_rtcp_pkt *out)
{
	const uint8_t *p = it->buf + it->off;
	size_t rem = it->len - it->off;

	/* RFC 3550 6.4.1 / A.2: version 2, length in 32-bit words - 1. */
	if (rem < CV_RTCP_HDR_LEN || p[0] >> 6 != 2)
		return CV_EPARSE;
	size_t len = 4 * ((size_t)cv_rd16(p + 2) + 1);
	if (len > rem)
		return CV_EPARSE;

	memset(out, 0, sizeof(*out));
	out->pt = p[1];
	out->count = p[0] & 0x1f;
	out->data = p;
	out->len = len;
	out->body = p + CV_RTCP_HDR_LEN;
	out->body_len = len - CV_RTCP_HDR_LEN;
	if (p[0] & 0x20) {
		/*
		 * RFC 3550 6.4.1: only the last packet of a compound may be
		 * padded; the count octet includes itself.
		 */
		uint8_t pad = p[len - 1];
		if (len != rem || pad == 0 || pad > out->body_len)
			return CV_EPARSE;
		out->body_len -= pad;
	}
	int rc = parse_body(out);
	if (rc < 0)
		return rc;
	it->off += len;
	return 0;
}

int cv_rtcp_iter_next(struct cv_rtcp_iter *it, struct cv_rtcp_pkt *out)
{
	if (it->failed)
		return CV_EPARSE;
	if (it->off >= it->len) {
		if (it->n > 0)
			return 0;
		it->failed = true; /* an empty compound is not RTCP */
		return CV_EPARSE;
	}
	int rc = parse_one(it, out);
	if (rc < 0) {
		it->failed = true;
		return rc;
	}
	it->n++;
	return 1;
}

/* ---- accessors ---------------------------------------------------- */

void cv_rtcp_report_block(const struct cv_rtcp_pkt *p, size_t i,
			  struct cv_rtcp_rb *out)
{
	const uint8_t *rb;
	if (p->kind == CV_RTCP_KIND_SR) {
		assert(i < p->u.sr.rb_count);
		rb = p->u.sr.rb;
	} else {
		assert(p->kind == CV_RTCP_KIND_RR && i < p->u.rr.rb_count);
		rb = p->u.rr.rb;
	}
	rb += i * CV_RTCP_RB_LEN;
	out->ssrc = cv_rd32(rb);
	out->fraction_lost = rb[4];
	uint32_t lost = cv_rd24(rb + 5);
	out->cum_lost = (int32_t)(lost ^ 0x800000) - 0x800000;
	out->ext_high_seq = cv_rd32(rb + 8);
	out->jitter = cv_rd32(rb + 12);
	out->lsr = cv_rd32(rb + 16);
	out->dlsr = cv_rd32(rb + 20);
}

uint32_t cv_rtcp_bye_ssrc(const struct cv_rtcp_pkt *p, size_t i)
{
	assert(p->kind == CV_RTCP_KIND_BYE && i < p->u.bye.ssrc_count);
	return cv_rd32(p->u.bye.ssrcs + 4 * i);
}

uint32_t cv_rtcp_remb_ssrc(const struct cv_rtcp_pkt *p, size_t i)
{
	assert(p->kind == CV_RTCP_KIND_REMB && i < p->u.remb.ssrc_count);
	return cv_rd32(p->u.remb.ssrcs + 4 * i);
}

void cv_rtcp_fir_entry(const struct cv_rtcp_pkt *p, size_t i,
		       struct cv_rtcp_fir_entry *out)
{
	assert(p->kind == CV_RTCP_KIND_FIR && i < p->u.fir.entry_count);
	const uint8_t *e = p->u.fir.entries + 8 * i;
	out->ssrc = cv_rd32(e);
	out->seq = e[4];
}

void cv_rtcp_nack_item(const struct cv_rtcp_pkt *p, size_t i, uint16_t *pid,
		       uint16_t *blp)
{
	assert(p->kind == CV_RTCP_KIND_NACK && i < p->u.nack.item_count);
	*pid = cv_rd16(p->u.nack.items + 4 * i);
	*blp = cv_rd16(p->u.nack.items + 4 * i + 2);
}

size_t cv_rtcp_nack_expand(const struct cv_rtcp_pkt *p, uint16_t *out,
			   size_t cap)
{
	size_t n = 0;
	if (p->kind != CV_RTCP_KIND_NACK)
		return 0;
	for (size_t i = 0; i < p->u.nack.item_count; i++) {
		uint16_t pid, blp;
		cv_rtcp_nack_item(p, i, &pid, &blp);
		/* RFC 4585 6.2.1: bit i of BLP means PID + i + 1 is lost. */
		if (n == cap)
			return n;
		out[n++] = pid;
		for (unsigned b = 0; b < 16; b++) {
			if (!(blp & (1u << b)))
				continue;
			if (n == cap)
				return n;
			out[n++] = (uint16_t)(pid + b + 1);
		}
	}
	return n;
}

/* ---- SDES items ---------------------------------------------------- */

void cv_rtcp_sdes_iter_init(struct cv_rtcp_sdes_iter *it,
			    const struct cv_rtcp_pkt *p)
{
	memset(it, 0, sizeof(*it));
	if (p->pt != CV_RTCP_PT_SDES)
		return;
	it->p = p->body;
	it->len = p->body_len;
	it->chunks_left = p->count;
}

int cv_rtcp_sdes_iter_next(struct cv_rtcp_sdes_iter *it,
			   struct cv_rtcp_sdes_item *out)
{
	for (;;) {
		if (!it->in_chunk) {
			if (it->chunks_left == 0)
				return 0;
			if (it->len - it->off < 4)
				goto bad;
			it->ssrc = cv_rd32(it->p + it->off);
			it->off += 4;
			it->in_chunk = true;
			it->chunks_left--;
		}
		if (it->off >= it->len)
			goto bad;
		uint8_t type = it->p[it->off];
		if (type == 0) {
			/*
			 * RFC 3550 6.5: a null item ends the chunk; null
			 * octets pad to the next 32-bit boundary.
			 */
			size_t next = (it->off + 4) & ~(size_t)3;
			if (next > it->len)
				goto bad;
			it->off = next;
			it->in_chunk = false;
			continue;
		}
		if (it->len - it->off < 2)
			goto bad;
		size_t ilen = it->p[it->off + 1];
		if (it->len - it->off - 2 < ilen)
			goto bad;
		out->ssrc = it->ssrc;
		out->type = type;
		out->text = (const char *)it->p + it->off + 2;
		out->len = ilen;
		it->off += 2 + ilen;
		return 1;
	}
bad:
	it->chunks_left = 0;
	it->in_chunk = false;
	it->off = it->len;
	return CV_EPARSE;
}

/* ---- transport-cc decode -------------------------------------------- */

void cv_rtcp_tcc_iter_init(struct cv_rtcp_tcc_iter *it,
			   const struct cv_rtcp_pkt *p)
{
	memset(it, 0, sizeof(*it));
	if (p->kind != CV_RTCP_KIND_TCC)
		return;
	it->chunks = p->u.tcc.chunks;
	it->chunk_count = p->u.tcc.chunk_count;
	it->deltas = p->u.tcc.deltas;
	it->deltas_len = p->u.tcc.deltas_len;
	it->status_left = p->u.tcc.status_count;
	it->seq = p->u.tcc.base_seq;
	/* The reference time counts multiples of 64 ms. */
	it->t_us = (int64_t)p->u.tcc.ref_time * 64000;
}

int cv_rtcp_tcc_iter_next(struct cv_rtcp_tcc_iter *it,
			  struct cv_rtcp_tcc_status *out)
{
	unsigned sym;

	if (it->status_left == 0)
		return 0;
	for (;;) {
		if (it->chunk_i >= it->chunk_count)
			goto bad;
		uint16_t c = cv_rd16(it->chunks + 2 * it->chunk_i);
		if (it->in_chunk >= tcc_chunk_capacity(c)) {
			it->chunk_i++;
			it->in_chunk = 0;
			continue;
		}
		sym = tcc_chunk_symbol(c, it->in_chunk++);
		break;
	}
	out->seq = it->seq++;
	out->symbol = (enum cv_rtcp_tcc_symbol)sym;
	out->delta_250us = 0;
	if (sym == 3 || it->deltas_len - it->delta_off < sym)
		goto bad;
	if (sym == CV_TCC_SMALL_DELTA)
		out->delta_250us = it->deltas[it->delta_off];
	else if (sym == CV_TCC_LARGE_DELTA)
		out->delta_250us = (int16_t)cv_rd16(it->deltas + it->delta_off);
	it->delta_off += sym;
	it->t_us += (int64_t)out->delta_250us * 250;
	out->recv_us = it->t_us;
	it->status_left--;
	return 1;
bad:
	it->status_left = 0;
	return CV_EPARSE;
}

/* ---- writers ---------------------------------------------------------- */

/* Common header; len is the whole packet in bytes, a multiple of 4. */
static void put_hdr(uint8_t *p, uint8_t count, uint8_t pt, size_t len)
{
	p[0] = (uint8_t)(2 << 6 | (count & 0x1f));
	p[1] = pt;
	cv_wr16(p + 2, (uint16_t)(len / 4 - 1));
}

static void put_rb(uint8_t *p, const struct cv_rtcp_rb *rb)
{
	int32_t lost = rb->cum_lost;
	if (lost > 0x7fffff)
		lost = 0x7fffff;
	if (lost < -0x800000)
		lost = -0x800000;
	cv_wr32(p, rb->ssrc);
	p[4] = rb->fraction_lost;
	cv_wr24(p + 5, (uint32_t)lost & 0xffffff);
	cv_wr32(p + 8, rb->ext_high_seq);
	cv_wr32(p + 12, rb->jitter);
	cv_wr32(p + 16, rb->lsr);
	cv_wr32(p + 20, rb->dlsr);
}

int cv_rtcp_write_sr(uint8_t *buf, size_t cap, const struct cv_rtcp_sr_info *sr,
		     const struct cv_rtcp_rb *rb, size_t n_rb)
{
	if (n_rb > CV_RTCP_MAX_COUNT || (n_rb && !rb))
		return -EINVAL;
	size_t len = 28 + CV_RTCP_RB_LEN * n_rb;
	if (cap < len)
		return -ENOBUFS;
	put_hdr(buf, (uint8_t)n_rb, CV_RTCP_PT_SR, len);
	cv_wr32(buf + 4, sr->ssrc);
	cv_wr32(buf + 8, (uint32_t)(sr->ntp >> 32));
	cv_wr32(buf + 12, (uint32_t)sr->ntp);
	cv_wr32(buf + 16, sr->rtp_ts);
	cv_wr32(buf + 20, sr->pkt_count);
	cv_wr32(buf + 24, sr->octet_count);
	for (size_t i = 0; i < n_rb; i++)
		put_rb(buf + 28 + CV_RTCP_RB_LEN * i, &rb[i]);
	return (int)len;
}

int cv_rtcp_write_rr(uint8_t *buf, size_t cap, uint32_t ssrc,
		     const struct cv_rtcp_rb *rb, size_t n_rb)
{
	if (n_rb > CV_RTCP_MAX_COUNT || (n_rb && !rb))
		return -EINVAL;
	size_t len = 8 + CV_RTCP_RB_LEN * n_rb;
	if (cap < len)
		return -ENOBUFS;
	put_hdr(buf, (uint8_t)n_rb, CV_RTCP_PT_RR, len);
	cv_wr32(buf + 4, ssrc);
	for (size_t i = 0; i < n_rb; i++)
		put_rb(buf + 8 + CV_RTCP_RB_LEN * i, &rb[i]);
	return (int)len;
}

int cv_rtcp_write_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc,
			     const char *cname, size_t cname_len)
{
	/* RFC 3550 6.5.1: CNAME item, then null octets to a word boundary. */
	if (!cname || cname_len == 0 || cname_len > 255)
		return -EINVAL;
	size_t items = 2 + cname_len + 1;
	size_t len = 8 + ((items + 3) & ~(size_t)3);
	if (cap < len)
		return -ENOBUFS;
	put_hdr(buf, 1, CV_RTCP_PT_SDES, len);
	cv_wr32(buf + 4, ssrc);
	buf[8] = CV_RTCP_SDES_CNAME;
	buf[9] = (uint8_t)cname_len;
	memcpy(buf + 10, cname, cname_len);
	memset(buf + 10 + cname_len, 0, len - 10 - cname_len);
	return (int)len;
}

int cv_rtcp_write_bye(uint8_t *buf, size_t cap, const uint32_t *ssrcs, size_t n,
		      const char *reason, size_t reason_len)
{
	if (n == 0 || n > CV_RTCP_MAX_COUNT || !ssrcs || reason_len > 255 ||
	    (reason_len && !reason))
		return -EINVAL;
	size_t len = 4 + 4 * n;
	if (reason_len)
		len += (1 + reason_len + 3) & ~(size_t)3;
	if (cap < len)
		return -ENOBUFS;
	put_hdr(buf, (uint8_t)n, CV_RTCP_PT_BYE, len);
	for (size_t i = 0; i < n; i++)
		cv_wr32(buf + 4 + 4 * i, ssrcs[i]);
	if (reason_len) {
		/* RFC 3550 6.6: length octet, text, null padding. */
		size_t off = 4 + 4 * n;
		buf[off] = (uint8_t)reason_len;
		memcpy(buf + off + 1, reason, reason_len);
		memset(buf + off + 1 + reason_len, 0,
		       len - off - 1 - reason_len);
	}
	return (int)len;
}

static void put_fb_hdr(uint8_t *buf, uint8_t fmt, uint8_t pt, size_t len,
		       uint32_t sender_ssrc, uint32_t media_ssrc)
{
	put_hdr(buf, fmt, pt, len);
	cv_wr32(buf + 4, sender_ssrc);
	cv_wr32(buf + 8, media_ssrc);
}

int cv_rtcp_write_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		       uint32_t media_ssrc, const uint16_t *lost, size_t n)
{
	if (n == 0 || !lost)
		return -EINVAL;
	size_t items = 0;
	for (size_t i = 0; i < n; i++) {
		bool placed = false;
		/*
		 * RFC 4585 6.2.1: an item covers PID and the 16 numbers
		 * after it; distances are taken modulo 2^16 so that a run
		 * across the wrap stays in one item. The newest item is
		 * tried first: sorted input then costs O(n).
		 */
		for (size_t t = 0; t < items && !placed; t++) {
			size_t k = items - 1 - t;
			uint8_t *it = buf + 12 + 4 * k;
			uint16_t d = (uint16_t)(lost[i] - cv_rd16(it));
			if (d == 0) {
				placed = true;
			} else if (d <= 16) {
				cv_wr16(it + 2, (uint16_t)(cv_rd16(it + 2) |
							   1u << (d - 1)));
				placed = true;
			}
		}
		if (placed)
			continue;
		if (cap < 12 + 4 * (items + 1))
			return -ENOBUFS;
		cv_wr16(buf + 12 + 4 * items, lost[i]);
		cv_wr16(buf + 12 + 4 * items + 2, 0);
		items++;
	}
	size_t len = 12 + 4 * items;
	if (len / 4 - 1 > 0xffff)
		return -EINVAL;
	put_fb_hdr(buf, FMT_NACK, CV_RTCP_PT_RTPFB, len, sender_ssrc,
		   media_ssrc);
	return (int)len;
}

int cv_rtcp_write_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      uint32_t media_ssrc)
{
	if (cap < 12)
		return -ENOBUFS;
	put_fb_hdr(buf, FMT_PLI, CV_RTCP_PT_PSFB, 12, sender_ssrc, media_ssrc);
	return 12;
}

int cv_rtcp_write_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      const struct cv_rtcp_fir_entry *e, size_t n)
{
	if (n == 0 || !e || n > (0x10000 * 4 - 12) / 8)
		return -EINVAL;
	size_t len = 12 + 8 * n;
	if (cap < len)
		return -ENOBUFS;
	/* RFC 5104 4.3.1.2: the media source SSRC field is not used: 0. */
	put_fb_hdr(buf, FMT_FIR, CV_RTCP_PT_PSFB, len, sender_ssrc, 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + 12 + 8 * i;
		cv_wr32(p, e[i].ssrc);
		p[4] = e[i].seq;
		p[5] = p[6] = p[7] = 0;
	}
	return (int)len;
}

int cv_rtcp_write_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		       uint64_t bitrate_bps, const uint32_t *ssrcs, size_t n)
{
	if (n > 255 || (n && !ssrcs))
		return -EINVAL;
	size_t len = 20 + 4 * n;
	if (cap < len)
		return -ENOBUFS;
	/* Mantissa of 18 bits, exponent of 6: smallest exponent that fits. */
	unsigned exp = 0;
	while ((bitrate_bps >> exp) > 0x3ffff)
		exp++;
	uint32_t mant = (uint32_t)(bitrate_bps >> exp);
	put_fb_hdr(buf, FMT_AFB, CV_RTCP_PT_PSFB, len, sender_ssrc, 0);
	memcpy(buf + 12, "REMB", 4);
	buf[16] = (uint8_t)n;
	cv_wr24(buf + 17, (uint32_t)exp << 18 | mant);
	for (size_t i = 0; i < n; i++)
		cv_wr32(buf + 20 + 4 * i, ssrcs[i]);
	return (int)len;
}

/* ---- transport-cc encode --------------------------------------------- */

/*
 * A cursor over the status positions of a feedback being written:
 * position k, next received packet j and the quantized time so far.
 * Stepping it yields each position's symbol and delta; copies of it give
 * look-ahead without storage.
 */
struct tcc_cur {
	const struct cv_rtcp_tcc_arrival *pkts;
	size_t n;
	uint16_t base;
	uint32_t k;
	size_t j;
	int64_t prev_us;
};

static int64_t round_div250(int64_t x)
{
	return x >= 0 ? (x + 125) / 250 : -((-x + 125) / 250);
}

/* Returns the symbol (0, 1, 2) of position cur->k, or -EINVAL. */
static int tcc_step(struct tcc_cur *c, int32_t *delta)
{
	*delta = 0;
	if (c->j < c->n && (uint16_t)(c->pkts[c->j].seq - c->base) == c->k) {
		int64_t q = round_div250(c->pkts[c->j].arrival_us - c->prev_us);
		if (q < INT16_MIN || q > INT16_MAX)
			return -EINVAL;
		/* Advance by the quantized delta so rounding never drifts. */
		c->prev_us += q * 250;
		c->j++;
		c->k++;
		*delta = (int32_t)q;
		return q >= 0 && q <= 255 ? CV_TCC_SMALL_DELTA
					  : CV_TCC_LARGE_DELTA;
	}
	c->k++;
	return CV_TCC_NOT_RECEIVED;
}

static int tcc_peek(const struct tcc_cur *c)
{
	struct tcc_cur t = *c;
	int32_t d;
	return tcc_step(&t, &d);
}

/* Encodes one chunk at the cursor, advancing it past what it covers. */
static uint16_t tcc_chunk(struct tcc_cur *c, uint32_t count)
{
	uint32_t left = count - c->k;
	int first = tcc_peek(c);
	uint32_t run = 0, w14 = left < 14 ? left : 14;
	bool large_in_14 = false;
	struct tcc_cur t = *c;
	int32_t d;

	while (run < left && run < TCC_MAX_RUN && tcc_peek(&t) == first) {
		tcc_step(&t, &d);
		run++;
	}
	t = *c;
	for (uint32_t i = 0; i < w14; i++)
		if (tcc_step(&t, &d) == CV_TCC_LARGE_DELTA)
			large_in_14 = true;

	uint16_t chunk;
	uint32_t take;
	if (run >= 14 || run == left || (run >= 7 && large_in_14)) {
		chunk = (uint16_t)((unsigned)first << 13 | run);
		take = run;
	} else if (!large_in_14) {
		/* One-bit status vector: 14 symbols. */
		chunk = 0x8000;
		take = w14;
		t = *c;
		for (uint32_t i = 0; i < take; i++)
			chunk |= (uint16_t)(tcc_step(&t, &d) << (13 - i));
	} else {
		/* Two-bit status vector: 7 symbols. */
		chunk = 0xc000;
		take = left < 7 ? left : 7;
		t = *c;
		for (uint32_t i = 0; i < take; i++)
			chunk |= (uint16_t)(tcc_step(&t, &d) << (12 - 2 * i));
	}
	for (uint32_t i = 0; i < take; i++)
		tcc_step(c, &d);
	return chunk;
}

/* Positions strictly increasing from base_seq, within 16 bits. */
static int tcc_check_input(const struct cv_rtcp_tcc_arrival *pkts, size_t n,
			   uint32_t *count)
{
	if (n == 0 || !pkts || pkts[0].arrival_us < 0)
		return -EINVAL;
	uint16_t base = pkts[0].seq;
	for (size_t j = 1; j < n; j++) {
		uint16_t a = (uint16_t)(pkts[j - 1].seq - base);
		uint16_t b = (uint16_t)(pkts[j].seq - base);
		if (b <= a)
			return -EINVAL;
	}
	*count = (uint32_t)(uint16_t)(pkts[n - 1].seq - base) + 1;
	return *count > 0xffff ? -EINVAL : 0;
}

int cv_rtcp_write_tcc(uint8_t *buf, size_t cap, uint32_t sender_ssrc,
		      uint32_t media_ssrc, uint8_t fb_count,
		      const struct cv_rtcp_tcc_arrival *pkts, size_t n)
{
	uint32_t count;
	if (tcc_check_input(pkts, n, &count) < 0)
		return -EINVAL;
	uint16_t base = pkts[0].seq;
	int64_t ref = pkts[0].arrival_us / 64000;
	struct tcc_cur start = {
		.pkts = pkts, .n = n, .base = base, .prev_us = ref * 64000};
	struct tcc_cur c = start;
	size_t delta_bytes = 0;
	int32_t d;
	while (c.k < count) {
		int s = tcc_step(&c, &d);
		if (s < 0)
			return s;
		delta_bytes += (size_t)s;
	}

	/* Chunks right after the fixed part, then deltas, zero padded. */
	size_t off = 4 + TCC_FIXED_LEN;
	c = start;
	while (c.k < count) {
		if (cap < off + 2)
			return -ENOBUFS;
		cv_wr16(buf + off, tcc_chunk(&c, count));
		off += 2;
	}
	size_t len = (off + delta_bytes + 3) & ~(size_t)3;
	if (cap < len)
		return -ENOBUFS;
	if (len / 4 - 1 > 0xffff)
		return -EINVAL;
	c = start;
	while (c.k < count) {
		int s = tcc_step(&c, &d);
		if (s == CV_TCC_SMALL_DELTA)
			buf[off++] = (uint8_t)d;
		else if (s == CV_TCC_LARGE_DELTA) {
			cv_wr16(buf + off, (uint16_t)(int16_t)d);
			off += 2;
		}
	}
	memset(buf + off, 0, len - off);
	put_fb_hdr(buf, FMT_TCC, CV_RTCP_PT_RTPFB, len, sender_ssrc,
		   media_ssrc);
	cv_wr16(buf + 12, base);
	cv_wr16(buf + 14, (uint16_t)count);
	cv_wr24(buf + 16, (uint32_t)ref & 0xffffff);
	buf[19] = fb_count;
	return (int)len;
}

/* ---- compound builder ------------------------------------------------- */

void cv_rtcp_builder_init(struct cv_rtcp_builder *b, uint8_t *buf, size_t cap)
{
	b->buf = buf;
	b->cap = buf ? cap : 0;
	b->len = 0;
}

uint8_t *cv_rtcp_builder_tail(const struct cv_rtcp_builder *b)
{
	return b->buf + b->len;
}

size_t cv_rtcp_builder_room(const struct cv_rtcp_builder *b)
{
	return b->cap - b->len;
}

int cv_rtcp_builder_commit(struct cv_rtcp_builder *b, int written)
{
	if (written < 0)
		return written;
	if ((size_t)written > b->cap - b->len)
		return -ENOBUFS;
	b->len += (size_t)written;
	return 0;
}

size_t cv_rtcp_builder_len(const struct cv_rtcp_builder *b)
{
	return b->len;
}
