/*
 * RFC 8723 section 5.1, the sending endpoint: inner AES-GCM with the
 * endpoint's own key over the synthetic header, empty OHB, outer layer
 * with the hop-by-hop session, then the RFC 8870 EKTField.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "perc_priv.h"

/* RFC 8870 section 4.7 leaves the schedule to us: a FullEKTField on the
 * first packets after a key change, then periodically (docs/perc.md). */
#define DEFAULT_FIRST 3
#define DEFAULT_EVERY 32

struct cv_perc_sender {
	enum cv_perc_profile profile;
	uint32_t ssrc;
	struct cv_secret inner_key;
	struct cv_perc_ekt_key ekt;
	struct cv_perc_inner inner;
	uint16_t epoch;
	unsigned first, every;
	uint64_t sent_since_key;
	bool started;
	uint32_t roc; /* inner ROC: original sequence space */
	uint16_t s_l;
	bool full_valid; /* full[] holds the field for full_roc */
	uint32_t full_roc;
	size_t full_len;
	uint8_t full[CV_PERC_EKT_MAX_FIELD_BYTES];
};

size_t cv_perc_profile_half_key_bytes(enum cv_perc_profile p)
{
	switch (p) {
	case CV_PERC_DOUBLE_AES_128_GCM:
		return 16;
	case CV_PERC_DOUBLE_AES_256_GCM:
		return 32;
	}
	return 0;
}

enum cv_srtp_profile cv_perc_profile_outer(enum cv_perc_profile p)
{
	switch (p) {
	case CV_PERC_DOUBLE_AES_128_GCM:
		return CV_SRTP_AEAD_AES_128_GCM;
	case CV_PERC_DOUBLE_AES_256_GCM:
		return CV_SRTP_AEAD_AES_256_GCM;
	}
	return 0;
}

int cv_perc_split_double_key(enum cv_perc_profile p,
			     const struct cv_secret *master_key,
			     const struct cv_secret *master_salt,
			     struct cv_secret *inner_out,
			     struct cv_secret *outer_out)
{
	size_t h = cv_perc_profile_half_key_bytes(p);
	const uint8_t *k, *s;
	uint8_t buf[32 + CV_PERC_HALF_SALT_BYTES];
	int err;

	if (!inner_out || !outer_out)
		return -EINVAL;
	cv_secret_wipe(inner_out);
	cv_secret_wipe(outer_out);
	if (!h || !master_key || !master_salt ||
	    cv_secret_len(master_key) != 2 * h ||
	    cv_secret_len(master_salt) != 2 * CV_PERC_HALF_SALT_BYTES)
		return -EINVAL;
	k = cv_secret_data(master_key);
	s = cv_secret_data(master_salt);
	/* perc-notes: inner = first half of key and salt, outer = second. */
	memcpy(buf, k, h);
	memcpy(buf + h, s, CV_PERC_HALF_SALT_BYTES);
	err = cv_secret_set(inner_out, buf, h + CV_PERC_HALF_SALT_BYTES);
	memcpy(buf, k + h, h);
	memcpy(buf + h, s + CV_PERC_HALF_SALT_BYTES, CV_PERC_HALF_SALT_BYTES);
	if (!err)
		err = cv_secret_set(outer_out, buf,
				    h + CV_PERC_HALF_SALT_BYTES);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (err) {
		cv_secret_wipe(inner_out);
		cv_secret_wipe(outer_out);
	}
	return err;
}

static bool ekt_key_ok(const struct cv_perc_ekt_key *k)
{
	size_t l = cv_secret_len(&k->key);

	return (l == 16 || l == 32) &&
	       cv_secret_len(&k->inner_salt) == CV_PERC_HALF_SALT_BYTES;
}

int cv_perc_sender_create(struct cv_perc_sender **out, enum cv_perc_profile p,
			  uint32_t ssrc, const struct cv_secret *inner_key,
			  const struct cv_perc_ekt_key *ekt)
{
	struct cv_perc_sender *s;
	int err;

	if (!out || !inner_key || !ekt || !cv_perc_profile_half_key_bytes(p))
		return -EINVAL;
	if (cv_secret_len(inner_key) != cv_perc_profile_half_key_bytes(p) ||
	    !ekt_key_ok(ekt))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->profile = p;
	s->ssrc = ssrc;
	s->first = DEFAULT_FIRST;
	s->every = DEFAULT_EVERY;
	cv_secret_copy(&s->inner_key, inner_key);
	s->ekt.spi = ekt->spi;
	cv_secret_copy(&s->ekt.key, &ekt->key);
	cv_secret_copy(&s->ekt.inner_salt, &ekt->inner_salt);
	err = cv_perc_inner_init(&s->inner, p, true);
	if (!err)
		err = cv_perc_inner_set_key(&s->inner, &s->inner_key,
					    &s->ekt.inner_salt);
	if (err) {
		cv_perc_sender_destroy(s);
		return err;
	}
	*out = s;
	return 0;
}

void cv_perc_sender_destroy(struct cv_perc_sender *s)
{
	if (!s)
		return;
	cv_perc_inner_fini(&s->inner);
	cv_secret_wipe(&s->inner_key);
	cv_perc_ekt_key_wipe(&s->ekt);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void cv_perc_sender_set_schedule(struct cv_perc_sender *s, unsigned first,
				 unsigned every)
{
	s->first = first;
	s->every = every;
}

uint16_t cv_perc_sender_epoch(const struct cv_perc_sender *s)
{
	return s->epoch;
}

int cv_perc_sender_rekey(struct cv_perc_sender *s,
			 const struct cv_secret *inner_key,
			 const struct cv_perc_ekt_key *ekt)
{
	bool new_spi = ekt && ekt->spi != s->ekt.spi;
	int err;

	if (inner_key && cv_secret_len(inner_key) !=
				 cv_perc_profile_half_key_bytes(s->profile))
		return -EINVAL;
	if (ekt && !ekt_key_ok(ekt))
		return -EINVAL;
	if (ekt) {
		s->ekt.spi = ekt->spi;
		cv_secret_copy(&s->ekt.key, &ekt->key);
		cv_secret_copy(&s->ekt.inner_salt, &ekt->inner_salt);
	}
	if (inner_key)
		cv_secret_copy(&s->inner_key, inner_key);
	/* RFC 8870 section 4.1: the epoch counts the keys sent for this
	 * SSRC under the current EKT key before this one. */
	if (new_spi)
		s->epoch = 0;
	else if (inner_key)
		s->epoch++;
	err = cv_perc_inner_set_key(&s->inner, &s->inner_key,
				    &s->ekt.inner_salt);
	s->full_valid = false;
	s->sent_since_key = 0;
	return err;
}

/* RFC 3550 section 5.1: fixed header + CSRCs (base), then the extension. */
static int header_lens(const uint8_t *buf, size_t len, size_t *base,
		       size_t *hdr)
{
	size_t b, h;

	if (len < CV_RTP_HDR_MIN || (buf[0] >> 6) != CV_RTP_VERSION)
		return CV_EPARSE;
	b = CV_RTP_HDR_MIN + 4 * (size_t)(buf[0] & 0x0f);
	h = b;
	if (buf[0] & 0x10) {
		if (len < h + 4)
			return CV_EPARSE;
		h += 4 + 4 * ((size_t)buf[h + 2] << 8 | buf[h + 3]);
	}
	if (h > len)
		return CV_EPARSE;
	*base = b;
	*hdr = h;
	return 0;
}

/* The EKTField for this packet: full on schedule, else short. */
static int pick_ekt(struct cv_perc_sender *s, uint32_t roc,
		    const uint8_t **field, size_t *flen)
{
	static const uint8_t short_field = CV_PERC_EKT_SHORT;
	bool full = s->sent_since_key < s->first ||
		    (s->every && s->sent_since_key % s->every == 0);
	int w;

	if (!full) {
		*field = &short_field;
		*flen = 1;
		return 0;
	}
	if (!s->full_valid || s->full_roc != roc) {
		w = cv_perc_ekt_build_full(&s->ekt, s->epoch, &s->inner_key,
					   s->ssrc, roc, s->full,
					   sizeof(s->full));
		if (w < 0)
			return w;
		s->full_len = (size_t)w;
		s->full_roc = roc;
		s->full_valid = true;
	}
	*field = s->full;
	*flen = s->full_len;
	return 0;
}

int cv_perc_e2e_protect(struct cv_perc_sender *s, struct cv_srtp *outer,
			uint8_t *buf, size_t *len, size_t cap)
{
	uint8_t aad[CV_RTP_HDR_MIN + 4 * CV_RTP_MAX_CSRC];
	const uint8_t *field;
	size_t n = *len, base, hdr, flen, trailer, m;
	uint16_t seq;
	uint32_t ssrc, roc;
	int64_t v;
	int err;

	if (!s || !outer || !buf)
		return -EINVAL;
	err = header_lens(buf, n, &base, &hdr);
	if (err)
		return err;
	ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
	       (uint32_t)buf[10] << 8 | buf[11];
	if (ssrc != s->ssrc)
		return -EINVAL;
	seq = (uint16_t)((uint16_t)buf[2] << 8 | buf[3]);
	/* Inner index in the original sequence space (RFC 3711 3.3.1). */
	v = s->started ? cv_perc_guess_roc(s->roc, s->s_l, seq) : s->roc;
	if (v < 0 || v > UINT32_MAX)
		return CV_EREPLAY;
	roc = (uint32_t)v;
	err = pick_ekt(s, roc, &field, &flen);
	if (err)
		return err;
	trailer = cv_srtp_profile_rtp_trailer_bytes(cv_srtp_get_profile(outer));
	if (n > cap || cap - n < CV_PERC_INNER_TAG_BYTES + 1 + trailer + flen)
		return CV_ETOOBIG;

	/* RFC 8723 section 5.1 steps 2-3 (perc-notes): the inner AEAD
	 * covers the original header with X cleared and the extensions
	 * removed, and the payload with its padding. */
	memcpy(aad, buf, base);
	aad[0] &= (uint8_t)~0x10;
	err = cv_perc_inner_seal(&s->inner, ssrc, roc, seq, aad, base,
				 buf + hdr, n - hdr, buf + n);
	if (err)
		return err;
	/* Step 4: the original header (extensions back), then an empty OHB
	 * (Config 0x00) after the inner ciphertext and tag. */
	m = n + CV_PERC_INNER_TAG_BYTES;
	buf[m++] = 0x00;
	/* Step 5: the outer layer with the hop-by-hop key. */
	err = cv_srtp_protect(outer, buf, &m, cap - flen);
	if (err)
		return err;
	/* RFC 8870 section 4: the EKTField follows the SRTP packet. */
	memcpy(buf + m, field, flen);
	*len = m + flen;

	if (!s->started ||
	    ((uint64_t)roc << 16 | seq) > ((uint64_t)s->roc << 16 | s->s_l)) {
		s->roc = roc;
		s->s_l = seq;
	}
	s->started = true;
	s->sent_since_key++;
	return 0;
}
