/*
 * Pure media helpers: the send stamp, VP8-shaped packets, the delay
 * histogram and sequence-number continuity.
 */
#include <errno.h>
#include <string.h>

#include "client/client_priv.h"
#include "conclave/err.h"

/* ---- Send stamp ---- */

void cv_client_stamp_put(uint8_t out[CV_CLIENT_STAMP_BYTES], uint64_t now_us)
{
	out[0] = 'c';
	out[1] = 'v';
	out[2] = 0x01;
	for (int i = 0; i < 8; i++)
		out[3 + i] = (uint8_t)(now_us >> (56 - 8 * i));
	/* RFC 3550 5.1: the last octet of the padding counts it. */
	out[CV_CLIENT_STAMP_BYTES - 1] = CV_CLIENT_STAMP_BYTES;
}

int cv_client_stamp_read(const struct cv_rtp_hdr *h, const uint8_t *pkt,
			 size_t len, uint64_t *send_us)
{
	uint8_t version;
	if (!h->padding || (h->pad_len != CV_CLIENT_STAMP_BYTES &&
			    h->pad_len != CV_CLIENT_CHECK_STAMP_BYTES))
		return -ENOENT;
	version = h->pad_len == CV_CLIENT_STAMP_BYTES ? 0x01 : 0x02;
	if (len < h->hdr_len + h->pad_len)
		return -ENOENT;
	const uint8_t *p = pkt + len - h->pad_len;
	if (p[0] != 'c' || p[1] != 'v' || p[2] != version)
		return -ENOENT;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[3 + i];
	*send_us = v;
	return 0;
}

/* ---- Check block (perc rooms) ---- */

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME  0x100000001b3ull

static uint64_t fnv64(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV64_PRIME;
	}
	return h;
}

static uint64_t check_digest(const struct cv_rtp_hdr *h, const uint8_t *payload,
			     size_t payload_len, const uint8_t time_be[8])
{
	uint8_t f[12] = {
		(uint8_t)(h->ssrc >> 24),
		(uint8_t)(h->ssrc >> 16),
		(uint8_t)(h->ssrc >> 8),
		(uint8_t)h->ssrc,
		(uint8_t)(h->seq >> 8),
		(uint8_t)h->seq,
		(uint8_t)(h->ts >> 24),
		(uint8_t)(h->ts >> 16),
		(uint8_t)(h->ts >> 8),
		(uint8_t)h->ts,
		h->pt,
		h->marker ? 1 : 0,
	};
	uint64_t d = fnv64(FNV64_OFFSET, f, sizeof(f));
	d = fnv64(d, payload, payload_len);
	return fnv64(d, time_be, 8);
}

void cv_client_check_stamp_put(uint8_t out[CV_CLIENT_CHECK_STAMP_BYTES],
			       const struct cv_rtp_hdr *h,
			       const uint8_t *payload, size_t payload_len,
			       uint64_t now_us)
{
	out[0] = 'c';
	out[1] = 'v';
	out[2] = 0x02;
	for (int i = 0; i < 8; i++)
		out[3 + i] = (uint8_t)(now_us >> (56 - 8 * i));
	uint64_t d = check_digest(h, payload, payload_len, out + 3);
	for (int i = 0; i < 8; i++)
		out[11 + i] = (uint8_t)(d >> (56 - 8 * i));
	out[CV_CLIENT_CHECK_STAMP_BYTES - 1] = CV_CLIENT_CHECK_STAMP_BYTES;
}

int cv_client_check_stamp_verify(const struct cv_rtp_hdr *h, const uint8_t *pkt,
				 size_t len)
{
	if (!h->padding || h->pad_len != CV_CLIENT_CHECK_STAMP_BYTES ||
	    len < h->hdr_len + CV_CLIENT_CHECK_STAMP_BYTES)
		return -ENOENT;
	const uint8_t *p = pkt + len - CV_CLIENT_CHECK_STAMP_BYTES;
	if (p[0] != 'c' || p[1] != 'v' || p[2] != 0x02)
		return -ENOENT;
	uint64_t d = check_digest(h, h->payload, h->payload_len, p + 3);
	uint64_t got = 0;
	for (int i = 0; i < 8; i++)
		got = got << 8 | p[11 + i];
	return got == d ? 0 : CV_EINTEGRITY;
}

/* ---- VP8 (RFC 7741) ---- */

size_t cv_client_vp8_packets(size_t bytes, size_t max_payload)
{
	if (max_payload <= CV_CLIENT_VP8_DESC_BYTES)
		return 0;
	size_t per = max_payload - CV_CLIENT_VP8_DESC_BYTES;
	return bytes ? (bytes + per - 1) / per : 1;
}

/* RFC 6386 9.1: frame tag (and for keyframes start code + dimensions). */
static size_t write_frame_header(uint8_t *p, size_t room,
				 const struct cv_client_vp8_frame *f)
{
	uint8_t hdr[10];
	/* Frame tag: bit 0 P (0 = key frame), bits 1-3 version 0, bit 4
	 * show_frame, bits 5-23 first partition size. */
	uint32_t part = (uint32_t)(f->bytes / 4) & 0x7ffff;
	uint32_t tag = (f->keyframe ? 0u : 1u) | 1u << 4 | part << 5;
	hdr[0] = (uint8_t)tag;
	hdr[1] = (uint8_t)(tag >> 8);
	hdr[2] = (uint8_t)(tag >> 16);
	size_t n = 3;
	if (f->keyframe) {
		hdr[3] = 0x9d;
		hdr[4] = 0x01;
		hdr[5] = 0x2a;
		hdr[6] = (uint8_t)f->width;
		hdr[7] = (uint8_t)((f->width >> 8) & 0x3f);
		hdr[8] = (uint8_t)f->height;
		hdr[9] = (uint8_t)((f->height >> 8) & 0x3f);
		n = 10;
	}
	if (n > room)
		n = room;
	memcpy(p, hdr, n);
	return n;
}

int cv_client_vp8_write(uint8_t *out, size_t cap,
			const struct cv_client_vp8_frame *f, size_t index,
			size_t max_payload)
{
	size_t count = cv_client_vp8_packets(f->bytes, max_payload);
	if (!count || index >= count)
		return -EINVAL;
	size_t per = max_payload - CV_CLIENT_VP8_DESC_BYTES;
	size_t off = index * per;
	size_t body = f->bytes - off < per ? f->bytes - off : per;
	if (!f->bytes)
		body = 0;
	size_t total = CV_CLIENT_VP8_DESC_BYTES + body;
	if (total > cap)
		return -ENOBUFS;
	/* RFC 7741 4.2: X=1, N=0, S on the first packet, PartID 0; then
	 * I=1 and M=1 for a 15-bit PictureID. */
	out[0] = (uint8_t)(0x80 | (index == 0 ? 0x10 : 0));
	out[1] = 0x80;
	out[2] = (uint8_t)(0x80 | ((f->picture_id >> 8) & 0x7f));
	out[3] = (uint8_t)f->picture_id;
	uint8_t *p = out + CV_CLIENT_VP8_DESC_BYTES;
	size_t h = index == 0 ? write_frame_header(p, body, f) : 0;
	/* Filler: deterministic and not all zeros. */
	for (size_t i = h; i < body; i++)
		p[i] = (uint8_t)((off + i) * 131u + f->picture_id);
	return (int)total;
}

int cv_client_vp8_parse(const uint8_t *p, size_t len,
			struct cv_client_vp8_info *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 1)
		return CV_EPARSE;
	size_t off = 1;
	bool x = p[0] & 0x80;
	bool s = p[0] & 0x10;
	unsigned pid = p[0] & 0x07;
	if (x) {
		/* RFC 7741 4.2: I L T K flags, then the optional fields. */
		if (len < off + 1)
			return CV_EPARSE;
		uint8_t ext = p[off++];
		if (ext & 0x80) { /* I: PictureID, 7 or 15 bits */
			if (len < off + 1)
				return CV_EPARSE;
			if (p[off] & 0x80) {
				if (len < off + 2)
					return CV_EPARSE;
				out->picture_id =
					(uint16_t)((p[off] & 0x7f) << 8 |
						   p[off + 1]);
				off += 2;
			} else {
				out->picture_id = p[off] & 0x7f;
				off += 1;
			}
			out->has_picture_id = true;
		}
		if (ext & 0x40) /* L: TL0PICIDX */
			off++;
		if (ext & 0x30) /* T or K: TID/Y/KEYIDX */
			off++;
		if (len < off)
			return CV_EPARSE;
	}
	out->desc_len = off;
	out->start = s && pid == 0;
	/* RFC 7741 4.3: the P bit of the first payload octet of a frame's
	 * first packet tells key frames (0) from inter frames. */
	if (out->start) {
		if (len < off + 1)
			return CV_EPARSE;
		out->keyframe = !(p[off] & 0x01);
	}
	return 0;
}

/* ---- Histogram ---- */

static size_t hist_bucket(uint32_t v)
{
	if (v < CV_CLIENT_HIST_SUB)
		return v;
	unsigned msb = 31u - (unsigned)__builtin_clz(v); /* >= 6 */
	unsigned shift = msb - 5;			 /* keep 6 bits */
	size_t b = (size_t)shift * 32 + (v >> shift);
	return b < CV_CLIENT_HIST_BUCKETS ? b : CV_CLIENT_HIST_BUCKETS - 1;
}

/* Lowest value of a bucket and its width. */
static void bucket_range(size_t b, uint64_t *lo, uint64_t *width)
{
	if (b < CV_CLIENT_HIST_SUB) {
		*lo = b;
		*width = 1;
		return;
	}
	size_t shift = (b - 32) / 32;
	/* b = shift * 32 + m with m in 32..63 */
	uint64_t m = b - shift * 32;
	*lo = m << shift;
	*width = (uint64_t)1 << shift;
}

void cv_client_hist_add(struct cv_client_hist *h, uint32_t us)
{
	h->b[hist_bucket(us)]++;
	h->n++;
	if (us > h->max)
		h->max = us;
}

uint32_t cv_client_hist_quantile(const struct cv_client_hist *h, double q)
{
	if (!h->n)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	uint64_t rank = (uint64_t)(q * (double)h->n + 0.5);
	if (rank < 1)
		rank = 1;
	if (rank >= h->n)
		return h->max;
	uint64_t acc = 0;
	for (size_t b = 0; b < CV_CLIENT_HIST_BUCKETS; b++) {
		acc += h->b[b];
		if (acc >= rank) {
			uint64_t lo, w;
			bucket_range(b, &lo, &w);
			uint64_t mid = lo + w / 2;
			return mid > h->max ? h->max : (uint32_t)mid;
		}
	}
	return h->max;
}

/* ---- Sequence continuity ---- */

static void seen_set(struct cv_client_seq *s, uint64_t ext, bool v)
{
	uint64_t i = ext % CV_CLIENT_SEQ_WINDOW;
	if (v)
		s->seen[i / 64] |= (uint64_t)1 << (i % 64);
	else
		s->seen[i / 64] &= ~((uint64_t)1 << (i % 64));
}

bool cv_client_seq_seen(const struct cv_client_seq *s, uint64_t ext)
{
	if (!s->started || ext > s->max_ext ||
	    s->max_ext - ext >= CV_CLIENT_SEQ_WINDOW || ext < s->base_ext)
		return false;
	uint64_t i = ext % CV_CLIENT_SEQ_WINDOW;
	return s->seen[i / 64] >> (i % 64) & 1;
}

enum cv_client_seq_kind cv_client_seq_update(struct cv_client_seq *s,
					     uint16_t seq, uint32_t *gap,
					     uint64_t *ext)
{
	*gap = 0;
	if (!s->started) {
		memset(s, 0, sizeof(*s));
		s->started = true;
		/* Start high so that reordered packets before the first
		 * one still extend to a positive number. */
		s->base_ext = s->max_ext = (1ull << 32) + seq;
		seen_set(s, s->max_ext, true);
		s->received = 1;
		*ext = s->max_ext;
		return CV_CLIENT_SEQ_FIRST;
	}
	int16_t d = (int16_t)(uint16_t)(seq - (uint16_t)s->max_ext);
	uint64_t e = (uint64_t)((int64_t)s->max_ext + d);
	*ext = e;
	if (d > 0) {
		/* Clear the slots the window slides over. */
		for (uint64_t x = s->max_ext + 1; x <= e; x++) {
			seen_set(s, x, false);
			if (e - x >= CV_CLIENT_SEQ_WINDOW)
				x = e - CV_CLIENT_SEQ_WINDOW;
		}
		*gap = (uint32_t)(d - 1);
		s->max_ext = e;
		seen_set(s, e, true);
		s->received++;
		return d == 1 ? CV_CLIENT_SEQ_NEXT : CV_CLIENT_SEQ_GAP;
	}
	if (s->max_ext - e >= CV_CLIENT_SEQ_WINDOW)
		return CV_CLIENT_SEQ_TOO_OLD;
	if (e < s->base_ext) {
		/* Older than the first packet: widen the span. */
		s->base_ext = e;
		seen_set(s, e, true);
		s->received++;
		s->out_of_order++;
		return CV_CLIENT_SEQ_LATE;
	}
	if (cv_client_seq_seen(s, e)) {
		s->duplicates++;
		return CV_CLIENT_SEQ_DUP;
	}
	seen_set(s, e, true);
	s->received++;
	s->out_of_order++;
	return CV_CLIENT_SEQ_LATE;
}

uint64_t cv_client_seq_expected(const struct cv_client_seq *s)
{
	return s->started ? s->max_ext - s->base_ext + 1 : 0;
}

uint64_t cv_client_seq_lost(const struct cv_client_seq *s)
{
	uint64_t e = cv_client_seq_expected(s);
	return e > s->received ? e - s->received : 0;
}
