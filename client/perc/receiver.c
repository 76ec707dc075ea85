/*
 * RFC 8723 section 5.3, the receiving endpoint: outer layer off with the
 * hop-by-hop session, EKTField (RFC 8870) to learn senders' inner keys,
 * OHB to restore the original header fields, inner AES-GCM verification.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "perc_priv.h"

/* Inner replay window (RFC 3711 section 3.3.2), packets. */
#define INNER_WINDOW 64

struct source {
	bool used;
	uint32_t ssrc;
	struct cv_perc_inner inner;
	uint32_t roc; /* highest inner index: roc << 16 | s_l */
	uint16_t s_l;
	uint64_t window; /* bit i: index hi - i was received */
};

/* perc-notes: epochs are tracked per (SPI, SSRC), with the key they
 * installed so that a retransmission can be told from a new key. */
struct epoch_rec {
	bool used;
	uint16_t spi;
	uint32_t ssrc;
	uint16_t epoch;
	struct cv_secret key;
};

struct cv_perc_receiver {
	enum cv_perc_profile profile;
	size_t max_sources;
	struct source *src;
	size_t max_epochs;
	struct epoch_rec *ep;
	bool ekt_used[CV_PERC_MAX_EKT_KEYS];
	struct cv_perc_ekt_key ekt[CV_PERC_MAX_EKT_KEYS];
	struct cv_perc_inner
		scratch; /* verifies with a not yet installed key */
	uint64_t drops[CV_PERC_DROP_COUNT];
};

/* A FullEKTField that passed the checks and awaits installation. */
struct candidate {
	bool is_new; /* false: an accepted retransmission, nothing to do */
	uint16_t spi, epoch;
	uint32_t roc;
	struct cv_secret key;
	const struct cv_perc_ekt_key *ekt;
};

static const char *const drop_names[CV_PERC_DROP_COUNT] = {
	[CV_PERC_DROP_EKT_FIELD] = "ekt_field",
	[CV_PERC_DROP_OUTER] = "outer",
	[CV_PERC_DROP_OUTER_REPLAY] = "outer_replay",
	[CV_PERC_DROP_OHB] = "ohb",
	[CV_PERC_DROP_EKT_SPI] = "ekt_spi",
	[CV_PERC_DROP_EKT_UNWRAP] = "ekt_unwrap",
	[CV_PERC_DROP_EKT_SSRC] = "ekt_ssrc",
	[CV_PERC_DROP_EKT_EPOCH] = "ekt_epoch",
	[CV_PERC_DROP_NO_KEY] = "no_key",
	[CV_PERC_DROP_FULL] = "full",
	[CV_PERC_DROP_INNER] = "inner",
	[CV_PERC_DROP_INNER_REPLAY] = "inner_replay",
};

const char *cv_perc_drop_name(enum cv_perc_drop why)
{
	if ((unsigned)why >= CV_PERC_DROP_COUNT)
		return "unknown";
	return drop_names[why];
}

uint64_t cv_perc_receiver_drops(const struct cv_perc_receiver *r,
				enum cv_perc_drop why)
{
	if ((unsigned)why >= CV_PERC_DROP_COUNT)
		return 0;
	return r->drops[why];
}

static int drop(struct cv_perc_receiver *r, enum cv_perc_drop why, int err)
{
	r->drops[why]++;
	return err;
}

int cv_perc_receiver_create(struct cv_perc_receiver **out,
			    enum cv_perc_profile p, size_t max_sources)
{
	struct cv_perc_receiver *r;
	int err = -ENOMEM;

	if (!out || !cv_perc_profile_half_key_bytes(p) || max_sources == 0 ||
	    max_sources > 4096)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->profile = p;
	r->max_sources = max_sources;
	r->max_epochs = 2 * max_sources;
	r->src = calloc(max_sources, sizeof(*r->src));
	r->ep = calloc(r->max_epochs, sizeof(*r->ep));
	if (!r->src || !r->ep)
		goto fail;
	for (size_t i = 0; i < max_sources; i++) {
		err = cv_perc_inner_init(&r->src[i].inner, p, false);
		if (err)
			goto fail;
	}
	err = cv_perc_inner_init(&r->scratch, p, false);
	if (err)
		goto fail;
	*out = r;
	return 0;
fail:
	cv_perc_receiver_destroy(r);
	return err;
}

void cv_perc_receiver_destroy(struct cv_perc_receiver *r)
{
	if (!r)
		return;
	if (r->src)
		for (size_t i = 0; i < r->max_sources; i++)
			cv_perc_inner_fini(&r->src[i].inner);
	if (r->ep)
		for (size_t i = 0; i < r->max_epochs; i++)
			cv_secret_wipe(&r->ep[i].key);
	for (size_t i = 0; i < CV_PERC_MAX_EKT_KEYS; i++)
		cv_perc_ekt_key_wipe(&r->ekt[i]);
	cv_perc_inner_fini(&r->scratch);
	free(r->src);
	free(r->ep);
	free(r);
}

static const struct cv_perc_ekt_key *find_ekt(const struct cv_perc_receiver *r,
					      uint16_t spi)
{
	for (size_t i = 0; i < CV_PERC_MAX_EKT_KEYS; i++)
		if (r->ekt_used[i] && r->ekt[i].spi == spi)
			return &r->ekt[i];
	return NULL;
}

int cv_perc_receiver_add_ekt_key(struct cv_perc_receiver *r,
				 const struct cv_perc_ekt_key *k)
{
	size_t kl;
	size_t slot = CV_PERC_MAX_EKT_KEYS;

	if (!r || !k)
		return -EINVAL;
	kl = cv_secret_len(&k->key);
	if ((kl != 16 && kl != 32) ||
	    cv_secret_len(&k->inner_salt) != CV_PERC_HALF_SALT_BYTES)
		return -EINVAL;
	for (size_t i = 0; i < CV_PERC_MAX_EKT_KEYS; i++) {
		if (r->ekt_used[i] && r->ekt[i].spi == k->spi) {
			slot = i;
			break;
		}
		if (!r->ekt_used[i] && slot == CV_PERC_MAX_EKT_KEYS)
			slot = i;
	}
	if (slot == CV_PERC_MAX_EKT_KEYS)
		return CV_ETOOBIG;
	r->ekt_used[slot] = true;
	r->ekt[slot].spi = k->spi;
	cv_secret_copy(&r->ekt[slot].key, &k->key);
	cv_secret_copy(&r->ekt[slot].inner_salt, &k->inner_salt);
	return 0;
}

int cv_perc_receiver_remove_ekt_key(struct cv_perc_receiver *r, uint16_t spi)
{
	int err = -ENOENT;

	for (size_t i = 0; i < CV_PERC_MAX_EKT_KEYS; i++) {
		if (r->ekt_used[i] && r->ekt[i].spi == spi) {
			r->ekt_used[i] = false;
			cv_perc_ekt_key_wipe(&r->ekt[i]);
			err = 0;
		}
	}
	for (size_t i = 0; i < r->max_epochs; i++) {
		if (r->ep[i].used && r->ep[i].spi == spi) {
			r->ep[i].used = false;
			cv_secret_wipe(&r->ep[i].key);
		}
	}
	return err;
}

static struct source *find_source(struct cv_perc_receiver *r, uint32_t ssrc)
{
	for (size_t i = 0; i < r->max_sources; i++)
		if (r->src[i].used && r->src[i].ssrc == ssrc)
			return &r->src[i];
	return NULL;
}

static struct source *alloc_source(struct cv_perc_receiver *r, uint32_t ssrc)
{
	struct source *s = find_source(r, ssrc);

	for (size_t i = 0; !s && i < r->max_sources; i++)
		if (!r->src[i].used)
			s = &r->src[i];
	return s;
}

static struct epoch_rec *find_epoch(struct cv_perc_receiver *r, uint16_t spi,
				    uint32_t ssrc, bool alloc)
{
	struct epoch_rec *freeslot = NULL;

	for (size_t i = 0; i < r->max_epochs; i++) {
		if (r->ep[i].used && r->ep[i].spi == spi &&
		    r->ep[i].ssrc == ssrc)
			return &r->ep[i];
		if (!r->ep[i].used && !freeslot)
			freeslot = &r->ep[i];
	}
	return alloc ? freeslot : NULL;
}

/*
 * RFC 8870 section 4.3.2 with perc-notes: unknown SPI, unwrap failure,
 * SSRC mismatch and the epoch rules reject; counts the reason. On success
 * *c says whether the field carries a key to install.
 */
static int check_ekt(struct cv_perc_receiver *r, uint32_t ssrc,
		     const struct cv_perc_ekt_field *f, struct candidate *c)
{
	const struct cv_perc_ekt_key *k = find_ekt(r, f->spi);
	struct epoch_rec *rec;
	uint32_t essrc = 0, roc = 0;
	int err;

	if (!k)
		return drop(r, CV_PERC_DROP_EKT_SPI, -ENOENT);
	err = cv_perc_ekt_open_full(k, f, &c->key, &essrc, &roc);
	if (!err && cv_secret_len(&c->key) !=
			    cv_perc_profile_half_key_bytes(r->profile))
		err = CV_EPARSE;
	if (err) {
		cv_secret_wipe(&c->key);
		return drop(r, CV_PERC_DROP_EKT_UNWRAP,
			    err == CV_EPARSE ? CV_EPARSE : CV_EINTEGRITY);
	}
	if (essrc != ssrc) {
		cv_secret_wipe(&c->key);
		return drop(r, CV_PERC_DROP_EKT_SSRC, CV_EAUTH);
	}
	rec = find_epoch(r, f->spi, ssrc, false);
	c->is_new = true;
	if (rec) {
		/* Lower epoch: stale. Equal epoch: a retransmission if the
		 * key is identical, else rejected. */
		if (f->epoch < rec->epoch ||
		    (f->epoch == rec->epoch &&
		     !cv_secret_equal(&rec->key, &c->key))) {
			cv_secret_wipe(&c->key);
			return drop(r, CV_PERC_DROP_EKT_EPOCH, CV_EREPLAY);
		}
		if (f->epoch == rec->epoch)
			c->is_new = false;
	}
	if (c->is_new && ((!rec && !find_epoch(r, f->spi, ssrc, true)) ||
			  !alloc_source(r, ssrc))) {
		cv_secret_wipe(&c->key);
		return drop(r, CV_PERC_DROP_FULL, CV_ETOOBIG);
	}
	c->spi = f->spi;
	c->epoch = f->epoch;
	c->roc = roc;
	c->ekt = k;
	return 0;
}

/* Installs a checked key for ssrc; the packet with seq starts the inner
 * sequence state. */
static int install(struct cv_perc_receiver *r, uint32_t ssrc, uint16_t seq,
		   struct candidate *c)
{
	struct epoch_rec *rec = find_epoch(r, c->spi, ssrc, true);
	struct source *s = alloc_source(r, ssrc);
	int err;

	if (!rec || !s)
		return CV_ETOOBIG;
	err = cv_perc_inner_set_key(&s->inner, &c->key, &c->ekt->inner_salt);
	if (err)
		return err;
	s->used = true;
	s->ssrc = ssrc;
	s->roc = c->roc;
	s->s_l = seq;
	s->window = 1;
	rec->used = true;
	rec->spi = c->spi;
	rec->ssrc = ssrc;
	rec->epoch = c->epoch;
	cv_secret_copy(&rec->key, &c->key);
	return 0;
}

int cv_perc_receiver_accept_ekt(struct cv_perc_receiver *r, uint32_t ssrc,
				uint16_t seq, const uint8_t *field, size_t len)
{
	uint8_t pkt[CV_RTP_HDR_MIN + CV_PERC_EKT_MAX_FIELD_BYTES] = {0};
	struct cv_perc_ekt_field f;
	struct candidate c = {0};
	int err;

	/* Frame the field behind a dummy header: the framing rules are
	 * those of the packet path. */
	if (!r)
		return -EINVAL;
	if (!field || len == 0 || len > CV_PERC_EKT_MAX_FIELD_BYTES)
		return drop(r, CV_PERC_DROP_EKT_FIELD, CV_EPARSE);
	memcpy(pkt + CV_RTP_HDR_MIN, field, len);
	err = cv_perc_ekt_field_parse(pkt, CV_RTP_HDR_MIN + len, &f);
	if (!err && (f.type != CV_PERC_EKT_FULL || f.len != len))
		err = CV_EPARSE;
	if (err)
		return drop(r, CV_PERC_DROP_EKT_FIELD, err);
	err = check_ekt(r, ssrc, &f, &c);
	if (err)
		return err;
	if (c.is_new)
		err = install(r, ssrc, seq, &c);
	cv_secret_wipe(&c.key);
	if (err)
		return drop(r, CV_PERC_DROP_FULL, err);
	return 0;
}

/* RFC 3711 section 3.3.2 on the inner index: replayed or too old? */
static bool inner_replayed(const struct source *s, uint64_t idx)
{
	uint64_t hi = (uint64_t)s->roc << 16 | s->s_l;

	if (idx > hi)
		return false;
	if (hi - idx >= INNER_WINDOW)
		return true;
	return (s->window >> (hi - idx)) & 1;
}

static void inner_accept(struct source *s, uint64_t idx)
{
	uint64_t hi = (uint64_t)s->roc << 16 | s->s_l;

	if (idx > hi) {
		uint64_t d = idx - hi;
		s->window = d >= INNER_WINDOW ? 1 : (s->window << d) | 1;
		s->roc = (uint32_t)(idx >> 16);
		s->s_l = (uint16_t)idx;
	} else {
		s->window |= (uint64_t)1 << (hi - idx);
	}
}

/* RFC 3550 section 5.1 header lengths: base (fixed + CSRC) and full. */
static bool header_lens(const uint8_t *buf, size_t len, size_t *base,
			size_t *hdr)
{
	size_t h;

	if (len < CV_RTP_HDR_MIN || (buf[0] >> 6) != CV_RTP_VERSION)
		return false;
	*base = CV_RTP_HDR_MIN + 4 * (size_t)(buf[0] & 0x0f);
	h = *base;
	if (buf[0] & 0x10) {
		if (len < h + 4)
			return false;
		h += 4 + 4 * ((size_t)buf[h + 2] << 8 | buf[h + 3]);
	}
	*hdr = h;
	return h <= len;
}

/* The parts of an outer plaintext after the OHB was read. */
struct rx_parts {
	size_t base, hdr, ct_len; /* inner ciphertext, tag follows it */
	struct cv_perc_ohb ohb;
	uint32_t ssrc;
	uint8_t pt;
	uint16_t seq;
	bool marker;
};

static int split_plain(const uint8_t *buf, size_t n, struct rx_parts *p)
{
	size_t ohb_len;

	if (!header_lens(buf, n, &p->base, &p->hdr))
		return CV_EPARSE;
	if (cv_perc_ohb_parse(buf + p->hdr, n - p->hdr, &p->ohb, &ohb_len))
		return CV_EPARSE;
	if (n - p->hdr - ohb_len < CV_PERC_INNER_TAG_BYTES)
		return CV_EPARSE;
	p->ct_len = n - p->hdr - ohb_len - CV_PERC_INNER_TAG_BYTES;
	p->ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
		  (uint32_t)buf[10] << 8 | buf[11];
	p->marker = (buf[1] & 0x80) != 0;
	p->pt = buf[1] & 0x7f;
	p->seq = (uint16_t)((uint16_t)buf[2] << 8 | buf[3]);
	return 0;
}

/* Inner verify + decrypt with the key in force or a candidate. */
static int inner_open(struct cv_perc_receiver *r, uint8_t *buf,
		      const struct rx_parts *p, uint8_t opt, uint16_t oseq,
		      bool om, struct candidate *c, struct source **src_out,
		      uint32_t *roc_out)
{
	uint8_t aad[CV_RTP_HDR_MIN + 4 * CV_RTP_MAX_CSRC];
	struct cv_perc_inner *in;
	struct source *s = find_source(r, p->ssrc);
	uint64_t idx;
	int64_t v;
	int err;

	/* RFC 8723 section 5.3: the synthetic header carries the original
	 * values, X cleared and no extension (perc-notes). */
	memcpy(aad, buf, p->base);
	aad[0] &= (uint8_t)~0x10;
	aad[1] = (uint8_t)((om ? 0x80 : 0) | opt);
	aad[2] = (uint8_t)(oseq >> 8);
	aad[3] = (uint8_t)oseq;

	if (c->is_new) {
		/* The EKTField gives the inner ROC of this very packet. */
		err = cv_perc_inner_set_key(&r->scratch, &c->key,
					    &c->ekt->inner_salt);
		if (err)
			return err;
		in = &r->scratch;
		v = c->roc;
	} else {
		if (!s)
			return drop(r, CV_PERC_DROP_NO_KEY, -ENOENT);
		in = &s->inner;
		v = cv_perc_guess_roc(s->roc, s->s_l, oseq);
		idx = (uint64_t)v << 16 | oseq;
		if (v < 0 || v > UINT32_MAX || inner_replayed(s, idx))
			return drop(r, CV_PERC_DROP_INNER_REPLAY, CV_EREPLAY);
	}
	err = cv_perc_inner_open(in, p->ssrc, (uint32_t)v, oseq, aad, p->base,
				 buf + p->hdr, p->ct_len,
				 buf + p->hdr + p->ct_len);
	if (err)
		return drop(r, CV_PERC_DROP_INNER, err);
	*src_out = s;
	*roc_out = (uint32_t)v;
	return 0;
}

int cv_perc_e2e_unprotect(struct cv_perc_receiver *r, struct cv_srtp *outer,
			  uint8_t *buf, size_t *len,
			  struct cv_perc_rx_info *info)
{
	struct cv_perc_ekt_field f;
	struct candidate c = {0};
	struct rx_parts p;
	struct source *s = NULL;
	size_t n;
	uint32_t roc = 0;
	uint16_t oseq;
	uint8_t opt;
	bool om;
	int err;

	if (!r || !outer || !buf || !len)
		return -EINVAL;
	/* RFC 8870 section 4.1: the EKTField ends the packet. It stays in
	 * buf after the SRTP packet while the outer layer is removed. */
	err = cv_perc_ekt_field_parse(buf, *len, &f);
	if (err)
		return drop(r, CV_PERC_DROP_EKT_FIELD, err);
	n = *len - f.len;
	err = cv_srtp_unprotect(outer, buf, &n);
	if (err == CV_EREPLAY)
		return drop(r, CV_PERC_DROP_OUTER_REPLAY, err);
	if (err)
		return drop(r, CV_PERC_DROP_OUTER, err);
	err = split_plain(buf, n, &p);
	if (err)
		return drop(r, CV_PERC_DROP_OHB, err);
	if (f.type == CV_PERC_EKT_FULL) {
		err = check_ekt(r, p.ssrc, &f, &c);
		if (err)
			return err;
	}
	/* RFC 8723 section 5.3: originals from the OHB, else current. */
	opt = p.ohb.has_pt ? p.ohb.pt : p.pt;
	oseq = p.ohb.has_seq ? p.ohb.seq : p.seq;
	om = p.ohb.has_marker ? p.ohb.marker : p.marker;
	err = inner_open(r, buf, &p, opt, oseq, om, &c, &s, &roc);
	if (!err && c.is_new) {
		err = install(r, p.ssrc, oseq, &c);
		if (err)
			err = drop(r, CV_PERC_DROP_FULL, err);
		s = find_source(r, p.ssrc);
	}
	cv_secret_wipe(&c.key);
	if (err)
		return err;
	inner_accept(s, (uint64_t)roc << 16 | oseq);

	/* The sender's packet: original header fields, extensions as the
	 * last hop sent them, the payload with its padding. */
	buf[1] = (uint8_t)((om ? 0x80 : 0) | opt);
	buf[2] = (uint8_t)(oseq >> 8);
	buf[3] = (uint8_t)oseq;
	*len = p.hdr + p.ct_len;
	if (info) {
		info->ssrc = p.ssrc;
		info->pt = opt;
		info->seq = oseq;
		info->marker = om;
		info->hop_pt = p.pt;
		info->hop_seq = p.seq;
		info->hop_marker = p.marker;
		info->roc = roc;
		info->ekt_type = f.type;
		info->key_changed = c.is_new;
	}
	return 0;
}
