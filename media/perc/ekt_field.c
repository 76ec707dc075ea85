/*
 * RFC 8870 section 4.1: framing of the EKTField at the end of an SRTP
 * packet. The node only frames it (to set it aside around its outer
 * transform); it never decrypts it.
 */
#include <errno.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/perc.h"
#include "conclave/rtp.h"

int cv_perc_ekt_field_parse(const uint8_t *pkt, size_t len,
			    struct cv_perc_ekt_field *out)
{
	size_t flen;
	uint8_t type;

	if (!pkt || len < 1)
		return CV_EPARSE;
	memset(out, 0, sizeof(*out));
	type = pkt[len - 1];
	out->type = type;
	if (type == CV_PERC_EKT_SHORT) {
		/* ShortEKTField: the single octet 0x00. */
		flen = 1;
	} else if (type == CV_PERC_EKT_LEGACY) {
		/* perc-notes: message type 0x01 is rejected. */
		return CV_EPROTO;
	} else {
		/* FullEKTField and extensions: ... || EKTMsgLength (16) ||
		 * type; the length counts the whole field. */
		if (len < 3)
			return CV_EPARSE;
		flen = (size_t)pkt[len - 3] << 8 | pkt[len - 2];
		if (flen < 3 || flen > CV_PERC_EKT_MAX_FIELD_BYTES)
			return CV_EPARSE;
	}
	if (flen > len || len - flen < CV_RTP_HDR_MIN)
		return CV_EPARSE;
	out->len = flen;
	out->data = pkt + (len - flen);
	if (type != CV_PERC_EKT_FULL)
		return 0;

	/* FullEKTField = EKTCiphertext || SPI || Epoch || Length || 0x02
	 * (RFC 8870 section 4.1). The ciphertext is an RFC 5649 output:
	 * a multiple of 8 octets, at least 16 (perc-notes: RFC 5649 wins
	 * over the length formula of RFC 8870 section 4.4.1). */
	if (flen <
	    CV_PERC_EKT_FULL_TRAILER_BYTES + CV_PERC_EKT_MIN_CIPHERTEXT_BYTES)
		return CV_EPARSE;
	out->ciphertext = out->data;
	out->ciphertext_len = flen - CV_PERC_EKT_FULL_TRAILER_BYTES;
	if (out->ciphertext_len % 8 != 0)
		return CV_EPARSE;
	out->spi = (uint16_t)((uint16_t)pkt[len - 7] << 8 | pkt[len - 6]);
	out->epoch = (uint16_t)((uint16_t)pkt[len - 5] << 8 | pkt[len - 4]);
	return 0;
}

int cv_perc_ekt_field_write_full(uint8_t *buf, size_t cap,
				 const uint8_t *ciphertext, size_t ct_len,
				 uint16_t spi, uint16_t epoch)
{
	size_t flen = ct_len + CV_PERC_EKT_FULL_TRAILER_BYTES;

	if (!ciphertext || ct_len < CV_PERC_EKT_MIN_CIPHERTEXT_BYTES ||
	    ct_len % 8 != 0 || flen > CV_PERC_EKT_MAX_FIELD_BYTES)
		return -EINVAL;
	if (!buf || cap < flen)
		return -ENOBUFS;
	memmove(buf, ciphertext, ct_len);
	buf[ct_len + 0] = (uint8_t)(spi >> 8);
	buf[ct_len + 1] = (uint8_t)spi;
	buf[ct_len + 2] = (uint8_t)(epoch >> 8);
	buf[ct_len + 3] = (uint8_t)epoch;
	buf[ct_len + 4] = (uint8_t)(flen >> 8);
	buf[ct_len + 5] = (uint8_t)flen;
	buf[ct_len + 6] = CV_PERC_EKT_FULL;
	return (int)flen;
}
