/*
 * RFC 8723 section 4: the Original Header Block, read and written, and the
 * rules for recording a Media Distributor's changes (perc-notes).
 */
#include <errno.h>

#include "conclave/err.h"
#include "conclave/perc.h"

int cv_perc_ohb_parse(const uint8_t *buf, size_t len, struct cv_perc_ohb *out,
		      size_t *ohb_len)
{
	size_t need = 1;
	size_t pos;
	uint8_t c;

	if (!buf || len < 1)
		return CV_EPARSE;
	/* The OHB ends the outer plaintext; Config is its last octet and
	 * says what precedes it: [PT] [SEQ] Config. */
	c = buf[len - 1];
	/* RFC 8723 section 4: reserved bits must be zero. */
	if (c & CV_PERC_OHB_RESERVED)
		return CV_EPARSE;
	/* RFC 8723 section 4 writes "C & 0x0C != 0x80", which cannot happen;
	 * perc-notes: the intent is B without M (0x08), rejected. */
	if ((c & (CV_PERC_OHB_B | CV_PERC_OHB_M)) == CV_PERC_OHB_B)
		return CV_EPARSE;
	if (c & CV_PERC_OHB_P)
		need += 1;
	if (c & CV_PERC_OHB_Q)
		need += 2;
	if (len < need)
		return CV_EPARSE;

	pos = len - need;
	out->has_pt = (c & CV_PERC_OHB_P) != 0;
	out->pt = 0;
	if (out->has_pt) {
		/* The PT octet holds 0 || PT: a set top bit is malformed. */
		if (buf[pos] & 0x80)
			return CV_EPARSE;
		out->pt = buf[pos];
		pos++;
	}
	out->has_seq = (c & CV_PERC_OHB_Q) != 0;
	out->seq = 0;
	if (out->has_seq) {
		out->seq = (uint16_t)((uint16_t)buf[pos] << 8 | buf[pos + 1]);
		pos += 2;
	}
	out->has_marker = (c & CV_PERC_OHB_M) != 0;
	out->marker = out->has_marker && (c & CV_PERC_OHB_B) != 0;
	*ohb_len = need;
	return 0;
}

size_t cv_perc_ohb_size(const struct cv_perc_ohb *o)
{
	return 1 + (o->has_pt ? 1 : 0) + (o->has_seq ? 2 : 0);
}

int cv_perc_ohb_write(const struct cv_perc_ohb *o, uint8_t *buf, size_t cap)
{
	size_t n = cv_perc_ohb_size(o);
	size_t pos = 0;
	uint8_t c = 0;

	if (o->has_pt && o->pt > 127)
		return -EINVAL;
	if (cap < n)
		return -ENOBUFS;
	if (o->has_pt) {
		buf[pos++] = o->pt;
		c |= CV_PERC_OHB_P;
	}
	if (o->has_seq) {
		buf[pos++] = (uint8_t)(o->seq >> 8);
		buf[pos++] = (uint8_t)o->seq;
		c |= CV_PERC_OHB_Q;
	}
	if (o->has_marker) {
		c |= CV_PERC_OHB_M;
		if (o->marker)
			c |= CV_PERC_OHB_B;
	}
	buf[pos] = c;
	return (int)n;
}

/*
 * RFC 8723 section 4 with perc-notes: same value is no change; the first
 * modification wins; setting a field back to its original drops the entry.
 */
void cv_perc_ohb_change_pt(struct cv_perc_ohb *o, uint8_t cur, uint8_t nv)
{
	if (nv == cur)
		return;
	if (!o->has_pt) {
		o->has_pt = true;
		o->pt = cur;
	} else if (o->pt == nv) {
		o->has_pt = false;
		o->pt = 0;
	}
}

void cv_perc_ohb_change_seq(struct cv_perc_ohb *o, uint16_t cur, uint16_t nv)
{
	if (nv == cur)
		return;
	if (!o->has_seq) {
		o->has_seq = true;
		o->seq = cur;
	} else if (o->seq == nv) {
		o->has_seq = false;
		o->seq = 0;
	}
}

void cv_perc_ohb_change_marker(struct cv_perc_ohb *o, bool cur, bool nv)
{
	if (nv == cur)
		return;
	if (!o->has_marker) {
		o->has_marker = true;
		o->marker = cur;
	} else if (o->marker == nv) {
		o->has_marker = false;
		o->marker = false;
	}
}
