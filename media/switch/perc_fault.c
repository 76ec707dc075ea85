/*
 * The faulty node's tampering (tests only; see perc_fault.h). Each kind
 * changes what the inner (end-to-end) layer protects, or where the
 * EKTField is, and leaves the outer layer valid: the node re-applies it
 * after this, so only the end-to-end checks can catch it.
 */
#include <errno.h>
#include <string.h>

#include "conclave/perc.h"
#include "media/switch/perc_fault.h"

int cv_perc_fault_parse(const char *s, struct cv_perc_fault *out)
{
	static const struct {
		const char *name;
		enum cv_perc_fault_kind kind;
	} names[] = {
		{"ssrc", CV_PERC_FAULT_SSRC},
		{"timestamp", CV_PERC_FAULT_TIMESTAMP},
		{"payload", CV_PERC_FAULT_PAYLOAD},
		{"inner_tag", CV_PERC_FAULT_INNER_TAG},
		{"ohb", CV_PERC_FAULT_OHB},
		{"ekt_move", CV_PERC_FAULT_EKT_MOVE},
	};

	out->kind = CV_PERC_FAULT_NONE;
	if (!s || !s[0])
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			out->kind = names[i].kind;
			return 0;
		}
	}
	return -EINVAL;
}

void cv_perc_fault_tamper(void *arg, uint8_t *plain, size_t *plain_len,
			  size_t hdr_len, uint8_t *ekt, size_t *ekt_len)
{
	const struct cv_perc_fault *f = arg;
	struct cv_perc_ohb ohb;
	size_t ohb_len, n = *plain_len;
	int w;

	if (cv_perc_ohb_parse(plain + hdr_len, n - hdr_len, &ohb, &ohb_len))
		return;
	switch (f->kind) {
	case CV_PERC_FAULT_NONE:
		break;
	case CV_PERC_FAULT_SSRC:
		plain[11] ^= 0x01;
		break;
	case CV_PERC_FAULT_TIMESTAMP:
		plain[7] ^= 0x40;
		break;
	case CV_PERC_FAULT_PAYLOAD:
		plain[hdr_len] ^= 0x01; /* first inner ciphertext octet */
		break;
	case CV_PERC_FAULT_INNER_TAG:
		plain[n - ohb_len - 1] ^= 0x80; /* last inner tag octet */
		break;
	case CV_PERC_FAULT_OHB:
		/* Claim an original SEQ other than the real one. */
		if (!ohb.has_seq)
			ohb.seq = (uint16_t)(plain[2] << 8 | plain[3]);
		ohb.has_seq = true;
		ohb.seq ^= 0x5555;
		w = cv_perc_ohb_write(&ohb, plain + n - ohb_len,
				      ohb_len + CV_PERC_HOP_MAX_GROWTH_BYTES);
		if (w > 0)
			*plain_len = n - ohb_len + (size_t)w;
		break;
	case CV_PERC_FAULT_EKT_MOVE:
		/* The EKTField into the outer plaintext, before the OHB; a
		 * ShortEKTField where it was. */
		memmove(plain + n - ohb_len + *ekt_len, plain + n - ohb_len,
			ohb_len);
		memcpy(plain + n - ohb_len, ekt, *ekt_len);
		*plain_len = n + *ekt_len;
		ekt[0] = 0x00;
		*ekt_len = 1;
		break;
	}
}
