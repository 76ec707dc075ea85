/*
 * RFC 8723 section 5 as a Media Distributor applies it: remove the outer
 * (hop-by-hop) layer, change only PT, SEQ and marker while recording the
 * originals in the OHB, re-apply the outer layer with the next hop's key.
 * The inner ciphertext, inner tag and EKTField are opaque and copied as
 * they are.
 */
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/perc.h"
#include "conclave/rtp.h"
#include "conclave/srtp.h"

/* RFC 3550 section 5.1: fixed header, CSRCs, optional extension. Returns
 * the header length or 0 when the header does not fit in len. */
static size_t header_len(const uint8_t *buf, size_t len)
{
	size_t hdr;

	if (len < CV_RTP_HDR_MIN || (buf[0] >> 6) != CV_RTP_VERSION)
		return 0;
	hdr = CV_RTP_HDR_MIN + 4 * (size_t)(buf[0] & 0x0f);
	if (buf[0] & 0x10) {
		if (len < hdr + 4)
			return 0;
		hdr += 4 + 4 * ((size_t)buf[hdr + 2] << 8 | buf[hdr + 3]);
	}
	return hdr <= len ? hdr : 0;
}

/* The outer plaintext buf[0..n): header, OHB, inner part at least a tag. */
static int read_plain(const uint8_t *buf, size_t n, struct cv_perc_hop_rx *rx)
{
	size_t hdr = header_len(buf, n);
	int err;

	if (!hdr)
		return CV_EPARSE;
	err = cv_perc_ohb_parse(buf + hdr, n - hdr, &rx->ohb, &rx->ohb_len);
	if (err)
		return err;
	/* The inner part (ciphertext || inner tag) holds at least the tag. */
	if (n - hdr - rx->ohb_len < CV_PERC_INNER_TAG_BYTES)
		return CV_EPARSE;
	rx->plain_len = n;
	rx->hdr_len = hdr;
	rx->marker = (buf[1] & 0x80) != 0;
	rx->pt = buf[1] & 0x7f;
	rx->seq = (uint16_t)((uint16_t)buf[2] << 8 | buf[3]);
	rx->ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
		   (uint32_t)buf[10] << 8 | buf[11];
	return 0;
}

/* Where the EKTField is (off: its first octet) and what it is. */
static void keep_ekt(struct cv_perc_hop_rx *rx, size_t off,
		     const struct cv_perc_ekt_field *f)
{
	rx->ekt_off = off;
	rx->ekt_len = f->len;
	rx->ekt_type = f->type;
}

int cv_perc_hop_ingress(struct cv_srtp *ingress, uint8_t *buf, size_t len,
			struct cv_perc_hop_rx *rx)
{
	struct cv_perc_ekt_field f;
	size_t n;
	int err;

	if (!ingress || !buf || !rx)
		return -EINVAL;
	/* RFC 8870 section 4.1: every SRTP packet of an EKT session ends
	 * with an EKTField, outside the SRTP packet: set it aside. */
	err = cv_perc_ekt_field_parse(buf, len, &f);
	if (err)
		return err;
	n = len - f.len;
	/* Outer layer: the ordinary AEAD transform with the hop key over
	 * the whole header (extensions included) and the inner part. The
	 * session's replay list covers the per-hop sequence space. */
	err = cv_srtp_unprotect(ingress, buf, &n);
	if (err)
		return err;
	err = read_plain(buf, n, rx);
	if (err)
		return err;
	/* The EKTField stays where it was: after the removed outer tag. */
	keep_ekt(rx, len - f.len, &f);
	return 0;
}

int cv_perc_hop_parse_plain(const uint8_t *buf, size_t len,
			    struct cv_perc_hop_rx *rx)
{
	struct cv_perc_ekt_field f;
	int err;

	if (!buf || !rx)
		return -EINVAL;
	err = cv_perc_ekt_field_parse(buf, len, &f);
	if (err)
		return err;
	err = read_plain(buf, len - f.len, rx);
	if (err)
		return err;
	keep_ekt(rx, len - f.len, &f);
	return 0;
}

#ifdef CV_PERC_FAULTY_NODE
typedef cv_perc_hop_tamper_fn tamper_fn;
#else
typedef void tamper_fn;
#endif

/* tamper: always NULL except in faulty-node builds (tests only). */
static inline int hop_egress(struct cv_srtp *egress, const uint8_t *pkt,
			     const struct cv_perc_hop_rx *rx,
			     const struct cv_perc_hop_rewrite *rw, uint8_t *dst,
			     size_t cap, size_t *out_len, tamper_fn *tamper,
			     void *tamper_arg)
{
	struct cv_perc_ohb ohb;
	size_t body, plain, trailer, n;
	size_t ekt_len = rx ? rx->ekt_len : 0;
	uint8_t *ekt_dst;
	int w, err;

	if (!egress || !pkt || !rx || !dst || !out_len)
		return -EINVAL;
	if (rx->hdr_len + rx->ohb_len > rx->plain_len ||
	    rx->ekt_off < rx->plain_len)
		return -EINVAL;
	ohb = rx->ohb;
	/* RFC 8723 section 4: a Media Distributor may change PT, SEQ and
	 * the marker; the OHB keeps the original of each changed field. */
	if (rw && rw->set_pt) {
		if (rw->pt > 127)
			return -EINVAL;
		cv_perc_ohb_change_pt(&ohb, rx->pt, rw->pt);
	}
	if (rw && rw->set_seq)
		cv_perc_ohb_change_seq(&ohb, rx->seq, rw->seq);
	if (rw && rw->set_marker)
		cv_perc_ohb_change_marker(&ohb, rx->marker, rw->marker);

	body = rx->plain_len - rx->ohb_len; /* header + inner part */
	plain = body + cv_perc_ohb_size(&ohb);
	trailer =
		cv_srtp_profile_rtp_trailer_bytes(cv_srtp_get_profile(egress));
	if (cap < plain || cap - plain < trailer ||
	    cap - plain - trailer < rx->ekt_len)
		return CV_ETOOBIG;

	memcpy(dst, pkt, body);
	(void)tamper_arg;
	if (rw && rw->set_pt)
		cv_rtp_set_pt(dst, rw->pt);
	if (rw && rw->set_seq)
		cv_rtp_set_seq(dst, rw->seq);
	if (rw && rw->set_marker)
		cv_rtp_set_marker(dst, rw->marker);
	w = cv_perc_ohb_write(&ohb, dst + body, cap - body);
	if (w < 0)
		return w;

	n = plain;
	ekt_dst = NULL;
#ifdef CV_PERC_FAULTY_NODE
	if (tamper) {
		/* Room for what a tamper may add: the EKTField and 3 OHB
		 * octets inside the plaintext. */
		if (cap - plain - trailer < 2 * rx->ekt_len + 3)
			return CV_ETOOBIG;
		ekt_dst = dst + cap - rx->ekt_len;
		memcpy(ekt_dst, pkt + rx->ekt_off, rx->ekt_len);
		tamper(tamper_arg, dst, &n, rx->hdr_len, ekt_dst, &ekt_len);
	}
#else
	(void)tamper;
#endif
	err = cv_srtp_protect(egress, dst, &n, n + trailer);
	if (err)
		return err;
	/* RFC 8870: the EKTField is appended after the SRTP packet and is
	 * neither encrypted nor authenticated by SRTP; pass it on as is. */
	if (ekt_dst)
		memmove(dst + n, ekt_dst, ekt_len);
	else
		memcpy(dst + n, pkt + rx->ekt_off, ekt_len);
	*out_len = n + ekt_len;
	return 0;
}

int cv_perc_hop_egress(struct cv_srtp *egress_session, const uint8_t *pkt,
		       const struct cv_perc_hop_rx *rx,
		       const struct cv_perc_hop_rewrite *rw, uint8_t *dst,
		       size_t cap, size_t *out_len)
{
	return hop_egress(egress_session, pkt, rx, rw, dst, cap, out_len, NULL,
			  NULL);
}

#ifdef CV_PERC_FAULTY_NODE
int cv_perc_hop_egress_tampered(struct cv_srtp *egress_session,
				const uint8_t *pkt,
				const struct cv_perc_hop_rx *rx,
				const struct cv_perc_hop_rewrite *rw,
				uint8_t *dst, size_t cap, size_t *out_len,
				cv_perc_hop_tamper_fn *tamper, void *arg)
{
	return hop_egress(egress_session, pkt, rx, rw, dst, cap, out_len,
			  tamper, arg);
}
#endif
