/*
 * RTP header extensions (RFC 8285): iteration over the one-byte and
 * two-byte forms, the block builder, in-place value rewrite and the typed
 * values WebRTC uses (MID, RID, abs-send-time, transport-wide sequence
 * number, audio level).
 */
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "media/rtp/rtp_bytes.h"

void cv_rtp_ext_iter_init(struct cv_rtp_ext_iter *it,
			  const struct cv_rtp_hdr *h)
{
	it->p = NULL;
	it->len = 0;
	it->off = 0;
	it->two_byte = false;
	if (!h->extension || !h->ext)
		return;
	/* RFC 8285 4.2 (0xBEDE) and 4.3 (0x100 + 4 appbits). */
	if (h->ext_profile == CV_RTP_EXT_ONE_BYTE) {
		it->two_byte = false;
	} else if ((h->ext_profile & 0xfff0) == CV_RTP_EXT_TWO_BYTE) {
		it->two_byte = true;
	} else {
		return; /* some other profile: no RFC 8285 elements */
	}
	it->p = h->ext;
	it->len = h->ext_len;
}

int cv_rtp_ext_iter_next(struct cv_rtp_ext_iter *it,
			 struct cv_rtp_ext_elem *out)
{
	while (it->off < it->len) {
		const uint8_t *q = it->p + it->off;
		size_t left = it->len - it->off;
		size_t id, elen, hlen;

		/* RFC 8285 4.1: a zero byte is padding, in either form. */
		if (q[0] == 0) {
			it->off++;
			continue;
		}
		if (!it->two_byte) {
			id = q[0] >> 4;
			/*
			 * RFC 8285 4.2: an ID 0 byte is padding whatever its
			 * length nibble; ID 15 ends the processing of the
			 * whole block.
			 */
			if (id == 0) {
				it->off++;
				continue;
			}
			if (id == 15) {
				it->off = it->len;
				return 0;
			}
			elen = (size_t)(q[0] & 0x0f) + 1;
			hlen = 1;
		} else {
			/* RFC 8285 4.3: 8-bit ID, 8-bit length (0 allowed). */
			if (left < 2)
				goto bad;
			id = q[0];
			elen = q[1];
			hlen = 2;
		}
		if (left - hlen < elen)
			goto bad;
		out->id = (uint8_t)id;
		out->data = q + hlen;
		out->len = elen;
		it->off += hlen + elen;
		return 1;
	}
	return 0;
bad:
	it->off = it->len;
	return CV_EPARSE;
}

int cv_rtp_ext_find(const struct cv_rtp_hdr *h, uint8_t id,
		    struct cv_rtp_ext_elem *out)
{
	struct cv_rtp_ext_iter it;
	struct cv_rtp_ext_elem e;
	int rc;

	cv_rtp_ext_iter_init(&it, h);
	while ((rc = cv_rtp_ext_iter_next(&it, &e)) > 0) {
		if (e.id == id) {
			*out = e;
			return 0;
		}
	}
	return rc < 0 ? rc : -ENOENT;
}

int cv_rtp_ext_build(uint8_t *buf, size_t cap,
		     const struct cv_rtp_ext_elem *elems, size_t n,
		     uint16_t *profile)
{
	bool two = false;
	size_t need = 0;

	/*
	 * RFC 8285 4.2: one-byte elements carry ids 1..14 and 1..16 data
	 * bytes; anything else needs the two-byte form (4.3). One block
	 * uses one form throughout.
	 */
	for (size_t i = 0; i < n; i++) {
		const struct cv_rtp_ext_elem *e = &elems[i];
		if (e->id == 0 || e->len > 255 || (e->len && !e->data))
			return -EINVAL;
		if (e->id > 14 || e->len == 0 || e->len > 16)
			two = true;
		need += e->len;
	}
	if (n == 0) {
		*profile = CV_RTP_EXT_ONE_BYTE;
		return 0;
	}
	need += (two ? 2 : 1) * n;
	size_t padded = (need + 3) & ~(size_t)3;
	if (padded > cap)
		return -ENOBUFS;
	if (padded / 4 > 0xffff || padded > (size_t)INT32_MAX)
		return -EINVAL;

	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cv_rtp_ext_elem *e = &elems[i];
		if (two) {
			buf[off++] = e->id;
			buf[off++] = (uint8_t)e->len;
		} else {
			buf[off++] = (uint8_t)(e->id << 4 | (e->len - 1));
		}
		if (e->len)
			memmove(buf + off, e->data, e->len);
		off += e->len;
	}
	memset(buf + off, 0, padded - off);
	*profile = two ? CV_RTP_EXT_TWO_BYTE : CV_RTP_EXT_ONE_BYTE;
	return (int)padded;
}

int cv_rtp_ext_rewrite(uint8_t *pkt, size_t len, uint8_t id,
		       const uint8_t *data, size_t data_len)
{
	struct cv_rtp_hdr h;
	struct cv_rtp_ext_elem e;
	int rc = cv_rtp_parse(pkt, len, &h);
	if (rc < 0)
		return rc;
	rc = cv_rtp_ext_find(&h, id, &e);
	if (rc < 0)
		return rc;
	if (e.len != data_len)
		return -EINVAL;
	/* e.data points into pkt: recover the writable address. */
	memmove(pkt + (e.data - pkt), data, data_len);
	return 0;
}

static bool rid_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int cv_rtp_ext_read_mid(const struct cv_rtp_ext_elem *e, const char **p,
			size_t *len)
{
	/*
	 * RFC 8843 15.2 / RFC 7941 4: the MID SDES item as element data, no
	 * terminator. Printable ASCII keeps it safe to use as a key.
	 */
	if (e->len == 0 || e->len > 255)
		return CV_EPARSE;
	for (size_t i = 0; i < e->len; i++)
		if (e->data[i] < 0x21 || e->data[i] > 0x7e)
			return CV_EPARSE;
	*p = (const char *)e->data;
	*len = e->len;
	return 0;
}

int cv_rtp_ext_read_rid(const struct cv_rtp_ext_elem *e, const char **p,
			size_t *len)
{
	/* RFC 8852 3.1 / RFC 8851 10: rid-id = 1*(alpha-numeric / "-" / "_") */
	if (e->len == 0 || e->len > 255)
		return CV_EPARSE;
	for (size_t i = 0; i < e->len; i++)
		if (!rid_char(e->data[i]))
			return CV_EPARSE;
	*p = (const char *)e->data;
	*len = e->len;
	return 0;
}

int cv_rtp_ext_read_abs_send_time(const struct cv_rtp_ext_elem *e,
				  uint32_t *abs24)
{
	if (e->len != 3)
		return CV_EPARSE;
	*abs24 = cv_rd24(e->data);
	return 0;
}

void cv_rtp_ext_put_abs_send_time(uint8_t out[3], uint32_t abs24)
{
	cv_wr24(out, abs24 & 0xffffff);
}

uint32_t cv_rtp_abs_send_time_from_us(uint64_t us)
{
	/* 6.18 fixed point: seconds * 2^18, low 24 bits kept. */
	return (uint32_t)(((us % 64000000u) << 18) / 1000000u) & 0xffffff;
}

int cv_rtp_ext_read_tw_seq(const struct cv_rtp_ext_elem *e, uint16_t *seq)
{
	if (e->len != 2)
		return CV_EPARSE;
	*seq = cv_rd16(e->data);
	return 0;
}

void cv_rtp_ext_put_tw_seq(uint8_t out[2], uint16_t seq)
{
	cv_wr16(out, seq);
}

int cv_rtp_ext_read_audio_level(const struct cv_rtp_ext_elem *e, bool *voice,
				uint8_t *level_dbov)
{
	/* RFC 6464 3: one byte, V then 7-bit level; two-byte form may pad. */
	if (e->len < 1)
		return CV_EPARSE;
	*voice = e->data[0] & 0x80;
	*level_dbov = e->data[0] & 0x7f;
	return 0;
}

void cv_rtp_ext_put_audio_level(uint8_t out[1], bool voice, uint8_t level_dbov)
{
	if (level_dbov > 127)
		level_dbov = 127;
	out[0] = (uint8_t)((voice ? 0x80 : 0) | level_dbov);
}
