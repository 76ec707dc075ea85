/*
 * RFC 8723 double SRTP end to end: endpoint A double-protects, a node
 * (media/perc hop transform, hop-by-hop keys only) drops and rewrites
 * SEQ, PT and marker, endpoint B verifies bit-exact and recovers the
 * original header. Then a faulty node tampers and B rejects each packet
 * with a counted reason.
 */
#include <errno.h>
#include <stdlib.h>

#include "conclave/err.h"
#include "conclave/perc.h"
#include "conclave/perc_e2e.h"
#include "conclave/srtp.h"
#include "cv_test.h"

#define SSRC_A 0x0a0a0a0a
#define SSRC_C 0x0c0c0c0c
#define BUF    1600

/* A 4-byte aligned packet buffer (libsrtp reads 32-bit words). */
struct pbuf {
	uint32_t w[BUF / 4];
	size_t len;
};
#define B(p) ((uint8_t *)(p)->w)

/* One hop: what the sender protects with and the receiver opens with,
 * keyed with the same hop-by-hop key||salt. */
struct hop {
	struct cv_srtp *tx, *rx;
};

static void hop_make(struct hop *h, enum cv_srtp_profile p, uint8_t fill)
{
	struct cv_secret ks = {0};
	uint8_t b[44];
	size_t n = cv_srtp_profile_key_bytes(p) + cv_srtp_profile_salt_bytes(p);

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(fill * 7 + i);
	cv_secret_set(&ks, b, n);
	CV_CHECK_INT(cv_srtp_create(&h->tx, p, &ks, CV_SRTP_OUTBOUND), 0);
	CV_CHECK_INT(cv_srtp_create(&h->rx, p, &ks, CV_SRTP_INBOUND), 0);
	cv_secret_wipe(&ks);
}

static void hop_free(struct hop *h)
{
	cv_srtp_destroy(h->tx);
	cv_srtp_destroy(h->rx);
}

static void mk_secret(struct cv_secret *s, size_t len, uint8_t fill)
{
	uint8_t b[32];

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(fill + 3 * i);
	cv_secret_set(s, b, len);
}

static void mk_ekt(struct cv_perc_ekt_key *k, uint16_t spi, uint8_t fill)
{
	k->spi = spi;
	mk_secret(&k->key, 16, fill);
	mk_secret(&k->inner_salt, CV_PERC_HALF_SALT_BYTES, 0x77);
}

/* An RTP packet with a one-byte header extension (audio level) and,
 * when padded, RTP padding. */
static size_t mk_rtp(uint8_t *b, uint32_t ssrc, uint16_t seq, uint32_t ts,
		     uint8_t pt, bool marker, size_t payload, bool padded)
{
	size_t n = 0;

	b[n++] = (uint8_t)(0x90 | (padded ? 0x20 : 0));
	b[n++] = (uint8_t)((marker ? 0x80 : 0) | pt);
	b[n++] = (uint8_t)(seq >> 8);
	b[n++] = (uint8_t)seq;
	for (int i = 3; i >= 0; i--)
		b[n++] = (uint8_t)(ts >> (8 * i));
	for (int i = 3; i >= 0; i--)
		b[n++] = (uint8_t)(ssrc >> (8 * i));
	b[n++] = 0xbe;
	b[n++] = 0xde;
	b[n++] = 0x00;
	b[n++] = 0x01;
	b[n++] = 0x10; /* id 1, len 1 */
	b[n++] = (uint8_t)(seq & 0x7f);
	b[n++] = 0;
	b[n++] = 0;
	for (size_t i = 0; i < payload; i++)
		b[n++] = (uint8_t)(seq * 31 + i);
	if (padded) {
		b[n++] = 0;
		b[n++] = 0;
		b[n++] = 3;
	}
	return n;
}

static struct {
	struct cv_perc_ekt_key ekt;
	struct cv_secret key_a, key_c;
	struct cv_perc_sender *a, *c;
	struct hop a_up, c_up, b_down; /* A->node, C->node, node->B */
	struct hop f_down;	       /* faulty node->B */
	struct cv_perc_receiver *b;
	uint16_t seq_a, seq_c, out_seq;
	uint32_t ts;
} w;

/* Sends one packet from A (or C): orig gets the plain RTP, out the wire. */
static void send_from(bool from_c, struct pbuf *orig, struct pbuf *out,
		      bool marker)
{
	uint16_t seq = from_c ? w.seq_c++ : w.seq_a++;
	uint32_t ssrc = from_c ? SSRC_C : SSRC_A;

	orig->len = mk_rtp(B(orig), ssrc, seq, w.ts += 960, 96, marker,
			   40 + seq % 50, seq % 5 == 0);
	memcpy(B(out), B(orig), orig->len);
	out->len = orig->len;
	CV_CHECK_INT(cv_perc_e2e_protect(from_c ? w.c : w.a,
					 from_c ? w.c_up.tx : w.a_up.tx, B(out),
					 &out->len, BUF),
		     0);
}

/* The node: ingress with the sender's hop, egress to B with rewrites
 * (by default a new SEQ from the node's own counter, as a forwarder of
 * several streams onto one does). */
static int node_forward(bool from_c, struct pbuf *in, struct pbuf *out,
			const struct cv_perc_hop_rewrite *rw)
{
	struct cv_perc_hop_rewrite dflt = {.set_seq = true};
	struct cv_perc_hop_rx rx;
	int err = cv_perc_hop_ingress(from_c ? w.c_up.rx : w.a_up.rx, B(in),
				      in->len, &rx);
	if (err)
		return err;
	if (!rw) {
		dflt.seq = w.out_seq++;
		rw = &dflt;
	}
	return cv_perc_hop_egress(w.b_down.tx, B(in), &rx, rw, B(out), BUF,
				  &out->len);
}

static void setup(void)
{
	memset(&w, 0, sizeof(w));
	mk_ekt(&w.ekt, 0x0101, 0x20);
	mk_secret(&w.key_a, 16, 0xa0);
	mk_secret(&w.key_c, 16, 0xc0);
	CV_CHECK_INT(cv_perc_sender_create(&w.a, CV_PERC_DOUBLE_AES_128_GCM,
					   SSRC_A, &w.key_a, &w.ekt),
		     0);
	CV_CHECK_INT(cv_perc_sender_create(&w.c, CV_PERC_DOUBLE_AES_128_GCM,
					   SSRC_C, &w.key_c, &w.ekt),
		     0);
	hop_make(&w.a_up, CV_SRTP_AEAD_AES_128_GCM, 1);
	hop_make(&w.c_up, CV_SRTP_AEAD_AES_128_GCM, 2);
	hop_make(&w.b_down, CV_SRTP_AEAD_AES_128_GCM, 3);
	hop_make(&w.f_down, CV_SRTP_AEAD_AES_128_GCM, 8);
	CV_CHECK_INT(
		cv_perc_receiver_create(&w.b, CV_PERC_DOUBLE_AES_128_GCM, 8),
		0);
	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(w.b, &w.ekt), 0);
	w.seq_a = 65500; /* crosses a wrap: inner and outer ROCs move */
	w.seq_c = 100;
	w.out_seq = 5000;
}

static void teardown(void)
{
	cv_perc_sender_destroy(w.a);
	cv_perc_sender_destroy(w.c);
	cv_perc_receiver_destroy(w.b);
	hop_free(&w.a_up);
	hop_free(&w.c_up);
	hop_free(&w.b_down);
	hop_free(&w.f_down);
	cv_perc_ekt_key_wipe(&w.ekt);
	cv_secret_wipe(&w.key_a);
	cv_secret_wipe(&w.key_c);
}

/*
 * The inner layer equals what libsrtp computes for AEAD_AES_128_GCM with
 * the inner key and salt over the synthetic packet (header without
 * extension, X cleared): our RFC 3711 KDF and RFC 7714 IV are right.
 */
static void test_inner_matches_libsrtp(void)
{
	struct cv_perc_ekt_key ekt = {0};
	struct cv_secret key = {0}, ks = {0};
	struct cv_perc_sender *s = NULL;
	struct cv_srtp *ref = NULL;
	struct hop h;
	struct pbuf orig, wire, syn;
	struct cv_perc_hop_rx rx;
	uint8_t b[28];

	mk_ekt(&ekt, 5, 0x30);
	mk_secret(&key, 16, 0x31);
	memcpy(b, cv_secret_data(&key), 16);
	memcpy(b + 16, cv_secret_data(&ekt.inner_salt), 12);
	cv_secret_set(&ks, b, 28);
	hop_make(&h, CV_SRTP_AEAD_AES_128_GCM, 9);
	CV_CHECK_INT(cv_perc_sender_create(&s, CV_PERC_DOUBLE_AES_128_GCM,
					   SSRC_A, &key, &ekt),
		     0);
	CV_CHECK_INT(cv_srtp_create(&ref, CV_SRTP_AEAD_AES_128_GCM, &ks,
				    CV_SRTP_OUTBOUND),
		     0);
	for (int i = 0; i < 3; i++) {
		orig.len = mk_rtp(B(&orig), SSRC_A, (uint16_t)(7 + i), 1234, 96,
				  i == 1, 33, i == 2);
		wire = orig;
		CV_CHECK_INT(
			cv_perc_e2e_protect(s, h.tx, B(&wire), &wire.len, BUF),
			0);
		CV_CHECK_INT(cv_perc_hop_ingress(h.rx, B(&wire), wire.len, &rx),
			     0);
		/* Synthetic packet: drop the 8-octet extension, clear X. */
		memcpy(B(&syn), B(&orig), 12);
		B(&syn)[0] &= (uint8_t)~0x10;
		memcpy(B(&syn) + 12, B(&orig) + 20, orig.len - 20);
		syn.len = orig.len - 8;
		CV_CHECK_INT(cv_srtp_protect(ref, B(&syn), &syn.len, BUF), 0);
		CV_CHECK_INT(rx.plain_len - rx.hdr_len - rx.ohb_len,
			     syn.len - 12);
		CV_CHECK_MEM(B(&wire) + rx.hdr_len, B(&syn) + 12, syn.len - 12);
		CV_CHECK_INT(rx.ohb_len, 1);
		CV_CHECK_INT(B(&wire)[rx.plain_len - 1], 0x00);
		CV_CHECK_INT(rx.ekt_type, CV_PERC_EKT_FULL);
		CV_CHECK_INT(rx.ekt_len, 47);
	}
	cv_srtp_destroy(ref);
	cv_perc_sender_destroy(s);
	hop_free(&h);
	cv_perc_ekt_key_wipe(&ekt);
	cv_secret_wipe(&key);
	cv_secret_wipe(&ks);
}

/* Compares B's output with what A sent: bit-exact. */
static void check_same(const struct pbuf *got, const struct pbuf *orig)
{
	CV_CHECK_INT(got->len, orig->len);
	if (got->len == orig->len)
		CV_CHECK_MEM(B(got), B(orig), orig->len);
}

static void test_stream(void)
{
	struct pbuf orig, wire, fwd;
	struct cv_perc_rx_info info;
	unsigned delivered = 0, full = 0;

	for (int i = 0; i < 200; i++) {
		bool m = i % 10 == 0;
		struct cv_perc_hop_rewrite rw = {
			.set_seq = true,
			.seq = w.out_seq,
			.set_pt = true,
			.pt = i % 3 ? 111 : 96, /* sometimes unchanged */
			.set_marker = i % 4 == 0,
			.marker = !m,
		};

		send_from(false, &orig, &wire, m);
		/* The node drops some packets: SEQ is rewritten so that B
		 * sees a contiguous sequence (a layer switch, say). */
		if (i % 7 == 3)
			continue;
		CV_CHECK_INT(node_forward(false, &wire, &fwd, &rw), 0);
		CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&fwd),
						   &fwd.len, &info),
			     0);
		check_same(&fwd, &orig);
		CV_CHECK_INT(info.ssrc, SSRC_A);
		CV_CHECK_INT(info.hop_seq, w.out_seq);
		CV_CHECK_INT(info.hop_pt, i % 3 ? 111 : 96);
		CV_CHECK_INT(info.pt, 96);
		CV_CHECK_INT(info.marker, m);
		CV_CHECK_INT(info.hop_marker, i % 4 == 0 ? !m : m);
		CV_CHECK_INT(info.seq, (uint16_t)(65500 + i));
		CV_CHECK_INT(info.roc, 65500 + i >= 65536 ? 1 : 0);
		full += info.ekt_type == CV_PERC_EKT_FULL;
		delivered++;
		w.out_seq++;
	}
	CV_CHECK_INT(delivered, 200 - 29);
	/* First 3, then every 32nd (32, 64, ... 192) minus dropped ones. */
	CV_CHECK(full >= 3 && full <= 9);
	for (int d = 0; d < CV_PERC_DROP_COUNT; d++)
		CV_CHECK_INT(cv_perc_receiver_drops(w.b, (enum cv_perc_drop)d),
			     0);
}

/* Two nodes in a row: the second sets PT back (entry dropped) and
 * changes SEQ again (first original wins). */
static void test_cascade(void)
{
	struct hop mid;
	struct pbuf orig, wire, mid_pkt, fwd;
	struct cv_perc_hop_rx rx;
	struct cv_perc_rx_info info;
	struct cv_perc_hop_rewrite r1 = {
		.set_pt = true, .pt = 100, .set_seq = true, .seq = 1};
	struct cv_perc_hop_rewrite r2 = {
		.set_pt = true, .pt = 96, .set_seq = true, .seq = w.out_seq};

	hop_make(&mid, CV_SRTP_AEAD_AES_128_GCM, 4);
	send_from(false, &orig, &wire, false);
	CV_CHECK_INT(cv_perc_hop_ingress(w.a_up.rx, B(&wire), wire.len, &rx),
		     0);
	CV_CHECK_INT(cv_perc_hop_egress(mid.tx, B(&wire), &rx, &r1, B(&mid_pkt),
					BUF, &mid_pkt.len),
		     0);
	CV_CHECK_INT(cv_perc_hop_ingress(mid.rx, B(&mid_pkt), mid_pkt.len, &rx),
		     0);
	CV_CHECK(rx.ohb.has_pt && rx.ohb.pt == 96);
	CV_CHECK(rx.ohb.has_seq && rx.ohb.seq == (uint16_t)(w.seq_a - 1));
	CV_CHECK_INT(rx.ohb_len, 4);
	CV_CHECK_INT(cv_perc_hop_egress(w.b_down.tx, B(&mid_pkt), &rx, &r2,
					B(&fwd), BUF, &fwd.len),
		     0);
	CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&fwd), &fwd.len,
					   &info),
		     0);
	check_same(&fwd, &orig);
	CV_CHECK_INT(info.hop_seq, w.out_seq);
	w.out_seq++;
	/* A too small egress buffer is refused, not overrun. */
	CV_CHECK_INT(cv_perc_hop_egress(w.b_down.tx, B(&mid_pkt), &rx, &r2,
					B(&fwd), rx.plain_len + 3, &fwd.len),
		     CV_ETOOBIG);
	hop_free(&mid);
}

/* A faulty node: removes the outer layer, lets tamper() change the outer
 * plaintext (and EKTField), re-applies the outer layer to B on its own
 * hop (f_down), keeping the sender's SEQ so that only tamper() changes
 * what the inner layer covers. */
typedef void tamper_fn(struct pbuf *plain, size_t hdr, struct pbuf *ekt);

static int faulty_forward(bool from_c, struct pbuf *in, struct pbuf *out,
			  tamper_fn *tamper)
{
	struct cv_perc_hop_rx rx;
	struct pbuf ekt;
	size_t n;
	int err;

	err = cv_perc_hop_ingress(from_c ? w.c_up.rx : w.a_up.rx, B(in),
				  in->len, &rx);
	CV_CHECK_INT(err, 0);
	if (err)
		return err;
	memcpy(B(out), B(in), rx.plain_len);
	out->len = rx.plain_len;
	memcpy(B(&ekt), B(in) + rx.ekt_off, rx.ekt_len);
	ekt.len = rx.ekt_len;
	tamper(out, rx.hdr_len, &ekt);
	n = out->len;
	err = cv_srtp_protect(w.f_down.tx, B(out), &n, BUF);
	CV_CHECK_INT(err, 0);
	memcpy(B(out) + n, B(&ekt), ekt.len);
	out->len = n + ekt.len;
	return err;
}

static void t_ssrc_unknown(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	B(p)[11] ^= 0x01;
}
static void t_ssrc_other(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	memset(B(p) + 8, 0x0c, 4); /* C's SSRC, whose key B knows */
}
static void t_ts(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	B(p)[7] ^= 0x40;
}
static void t_payload(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)e;
	B(p)[hdr + 3] ^= 0x01;
}
static void t_tag(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	B(p)[p->len - 1 - 5] ^= 0x80; /* inside the inner tag */
}
static void t_ohb_seq(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	/* Claim an original SEQ that is not the original. */
	B(p)[p->len - 1] = 0x12;
	B(p)[p->len] = 0x34;
	B(p)[p->len + 1] = 0x01;
	p->len += 2;
}
static void t_ohb_bad(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	B(p)[p->len - 1] = 0x08; /* B without M */
}
static void t_ohb_marker(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	(void)e;
	B(p)[1] ^= 0x80; /* marker flipped without an OHB entry */
}
static void t_ekt_inside(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)hdr;
	/* Move the EKTField into the outer plaintext, before the OHB. */
	uint8_t c = B(p)[p->len - 1];
	memcpy(B(p) + p->len - 1, B(e), e->len);
	p->len += e->len;
	B(p)[p->len - 1] = c;
	B(e)[0] = 0x00;
	e->len = 1;
}
static void t_none(struct pbuf *p, size_t hdr, struct pbuf *e)
{
	(void)p;
	(void)hdr;
	(void)e;
}

static void expect_drop(struct pbuf *pkt, struct cv_srtp *outer,
			enum cv_perc_drop why, int err)
{
	uint64_t before = cv_perc_receiver_drops(w.b, why);

	CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, outer, B(pkt), &pkt->len, NULL),
		     err);
	CV_CHECK_INT(cv_perc_receiver_drops(w.b, why), before + 1);
}

static void test_tampering(void)
{
	static const struct {
		tamper_fn *fn;
		enum cv_perc_drop why;
		int err;
	} cases[] = {
		{t_ssrc_unknown, CV_PERC_DROP_NO_KEY, -ENOENT},
		{t_ssrc_other, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_ts, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_payload, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_tag, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_ohb_seq, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_ohb_bad, CV_PERC_DROP_OHB, CV_EPARSE},
		{t_ohb_marker, CV_PERC_DROP_INNER, CV_EINTEGRITY},
		{t_ekt_inside, CV_PERC_DROP_INNER, CV_EINTEGRITY},
	};
	struct pbuf orig, wire, fwd, keep, c_wire, c_fwd;
	struct cv_perc_rx_info info;

	/* B learns C's key first (C's first packets carry a full field). */
	send_from(true, &orig, &c_wire, false);
	CV_CHECK_INT(node_forward(true, &c_wire, &c_fwd, NULL), 0);
	CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&c_fwd),
					   &c_fwd.len, NULL),
		     0);
	check_same(&c_fwd, &orig);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		send_from(false, &orig, &wire, false);
		CV_CHECK_INT(faulty_forward(false, &wire, &fwd, cases[i].fn),
			     0);
		expect_drop(&fwd, w.f_down.rx, cases[i].why, cases[i].err);
	}

	/* A's FullEKTField moved onto C's packet: SSRC mismatch. */
	cv_perc_sender_set_schedule(w.a, 0, 1); /* every packet: full */
	send_from(false, &orig, &wire, false);
	send_from(true, &orig, &c_wire, false);
	{
		struct cv_perc_ekt_field fa, fc;
		CV_CHECK_INT(cv_perc_ekt_field_parse(B(&wire), wire.len, &fa),
			     0);
		CV_CHECK_INT(fa.type, CV_PERC_EKT_FULL);
		CV_CHECK_INT(
			cv_perc_ekt_field_parse(B(&c_wire), c_wire.len, &fc),
			0);
		memcpy(B(&c_wire) + c_wire.len - fc.len, fa.data, fa.len);
		c_wire.len = c_wire.len - fc.len + fa.len;
	}
	CV_CHECK_INT(node_forward(true, &c_wire, &c_fwd, NULL), 0);
	expect_drop(&c_fwd, w.b_down.rx, CV_PERC_DROP_EKT_SSRC, CV_EAUTH);
	/* A corrupted EKT ciphertext: the unwrap fails. */
	send_from(false, &orig, &wire, false);
	B(&wire)[wire.len - 20] ^= 0x01;
	CV_CHECK_INT(node_forward(false, &wire, &fwd, NULL), 0);
	expect_drop(&fwd, w.b_down.rx, CV_PERC_DROP_EKT_UNWRAP, CV_EINTEGRITY);
	cv_perc_sender_set_schedule(w.a, 0, 0);

	/* Outer replay: the same forwarded packet twice. */
	send_from(false, &orig, &wire, false);
	CV_CHECK_INT(faulty_forward(false, &wire, &fwd, t_none), 0);
	keep = fwd;
	CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.f_down.rx, B(&fwd), &fwd.len,
					   &info),
		     0);
	check_same(&fwd, &orig);
	expect_drop(&keep, w.f_down.rx, CV_PERC_DROP_OUTER_REPLAY, CV_EREPLAY);
	/* Inner replay: the node re-sends a packet it already forwarded
	 * with a fresh outer SEQ (the original stays in the OHB). */
	send_from(false, &orig, &wire, false);
	{
		struct cv_perc_hop_rx rx;
		struct cv_perc_hop_rewrite rw = {.set_seq = true};

		CV_CHECK_INT(
			cv_perc_hop_ingress(w.a_up.rx, B(&wire), wire.len, &rx),
			0);
		rw.seq = w.out_seq++;
		CV_CHECK_INT(cv_perc_hop_egress(w.b_down.tx, B(&wire), &rx, &rw,
						B(&fwd), BUF, &fwd.len),
			     0);
		CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&fwd),
						   &fwd.len, NULL),
			     0);
		check_same(&fwd, &orig);
		rw.seq = w.out_seq++;
		CV_CHECK_INT(cv_perc_hop_egress(w.b_down.tx, B(&wire), &rx, &rw,
						B(&fwd), BUF, &fwd.len),
			     0);
		expect_drop(&fwd, w.b_down.rx, CV_PERC_DROP_INNER_REPLAY,
			    CV_EREPLAY);
	}
	/* A packet protected with another hop's key (A's uplink) arriving
	 * on the faulty node's hop, with a SEQ fresh there: outer failure. */
	send_from(false, &orig, &wire, false);
	expect_drop(&wire, w.f_down.rx, CV_PERC_DROP_OUTER, CV_EINTEGRITY);
	/* Garbage EKTField type. */
	send_from(false, &orig, &wire, false);
	B(&wire)[wire.len - 1] = 0x01;
	expect_drop(&wire, w.b_down.rx, CV_PERC_DROP_EKT_FIELD, CV_EPROTO);
}

/* New inner key (epoch + 1), then a new EKT key (new SPI, epoch 0). */
static void test_rekey(void)
{
	struct cv_perc_ekt_key ekt2 = {0};
	struct cv_secret k2 = {0}, k3 = {0};
	struct pbuf orig, wire, fwd;
	struct cv_perc_rx_info info;
	struct cv_perc_hop_rewrite rw = {.set_seq = true};

	mk_secret(&k2, 16, 0xb2);
	mk_secret(&k3, 16, 0xb3);
	mk_ekt(&ekt2, 0x0202, 0x40);
	cv_perc_sender_set_schedule(w.a, 3, 32);
	CV_CHECK_INT(cv_perc_sender_rekey(w.a, &k2, NULL), 0);
	CV_CHECK_INT(cv_perc_sender_epoch(w.a), 1);
	send_from(false, &orig, &wire, false);
	rw.seq = w.out_seq++;
	CV_CHECK_INT(node_forward(false, &wire, &fwd, &rw), 0);
	CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&fwd), &fwd.len,
					   &info),
		     0);
	CV_CHECK(info.key_changed);
	check_same(&fwd, &orig);

	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(w.b, &ekt2), 0);
	CV_CHECK_INT(cv_perc_sender_rekey(w.a, &k3, &ekt2), 0);
	CV_CHECK_INT(cv_perc_sender_epoch(w.a), 0);
	for (int i = 0; i < 5; i++) {
		send_from(false, &orig, &wire, false);
		rw.seq = w.out_seq++;
		CV_CHECK_INT(node_forward(false, &wire, &fwd, &rw), 0);
		CV_CHECK_INT(cv_perc_e2e_unprotect(w.b, w.b_down.rx, B(&fwd),
						   &fwd.len, &info),
			     0);
		CV_CHECK_INT(info.key_changed, i == 0);
		CV_CHECK_INT(info.ekt_type,
			     i < 3 ? CV_PERC_EKT_FULL : CV_PERC_EKT_SHORT);
		check_same(&fwd, &orig);
	}
	/* The old EKT key is gone: a replayed old-SPI field is unknown. */
	CV_CHECK_INT(cv_perc_receiver_remove_ekt_key(w.b, 0x0101), 0);
	cv_perc_ekt_key_wipe(&ekt2);
	cv_secret_wipe(&k2);
	cv_secret_wipe(&k3);
}

/* A receiver that joins late learns the inner ROC from the EKTField. */
static void test_late_join(void)
{
	struct cv_perc_receiver *late = NULL;
	struct hop down;
	struct pbuf orig, wire, fwd;
	struct cv_perc_hop_rx rx;
	struct cv_perc_rx_info info;
	struct cv_perc_ekt_key ekt = {0};
	int ok = 0, nokey = 0;

	mk_ekt(&ekt, 0x0202, 0x40); /* the current EKT key (test_rekey) */
	hop_make(&down, CV_SRTP_AEAD_AES_128_GCM, 5);
	CV_CHECK_INT(
		cv_perc_receiver_create(&late, CV_PERC_DOUBLE_AES_128_GCM, 4),
		0);
	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(late, &ekt), 0);
	for (int i = 0; i < 40; i++) {
		send_from(false, &orig, &wire, false);
		CV_CHECK_INT(
			cv_perc_hop_ingress(w.a_up.rx, B(&wire), wire.len, &rx),
			0);
		CV_CHECK_INT(cv_perc_hop_egress(down.tx, B(&wire), &rx, NULL,
						B(&fwd), BUF, &fwd.len),
			     0);
		if (cv_perc_e2e_unprotect(late, down.rx, B(&fwd), &fwd.len,
					  &info) == 0) {
			check_same(&fwd, &orig);
			CV_CHECK_INT(info.roc, 1);
			ok++;
		} else {
			nokey++;
		}
	}
	CV_CHECK(ok > 0 && nokey > 0 && ok + nokey == 40);
	CV_CHECK_INT(cv_perc_receiver_drops(late, CV_PERC_DROP_NO_KEY), nokey);
	cv_perc_receiver_destroy(late);
	hop_free(&down);
	cv_perc_ekt_key_wipe(&ekt);
}

static void test_256(void)
{
	struct cv_perc_ekt_key ekt = {0};
	struct cv_secret key = {0}, mk = {0}, ms = {0}, in = {0}, out = {0};
	struct cv_perc_sender *s = NULL;
	struct cv_perc_receiver *r = NULL;
	struct hop up, down;
	struct pbuf orig, wire, fwd;
	struct cv_perc_hop_rx rx;
	struct cv_perc_hop_rewrite rw = {.set_seq = true, .seq = 9};

	ekt.spi = 3;
	mk_secret(&ekt.key, 32, 0x61);
	mk_secret(&ekt.inner_salt, 12, 0x62);
	mk_secret(&key, 32, 0x63);
	hop_make(&up, CV_SRTP_AEAD_AES_256_GCM, 6);
	hop_make(&down, CV_SRTP_AEAD_AES_256_GCM, 7);
	CV_CHECK_INT(cv_perc_sender_create(&s, CV_PERC_DOUBLE_AES_256_GCM, 42,
					   &key, &ekt),
		     0);
	CV_CHECK_INT(cv_perc_receiver_create(&r, CV_PERC_DOUBLE_AES_256_GCM, 1),
		     0);
	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(r, &ekt), 0);
	orig.len = mk_rtp(B(&orig), 42, 1, 2, 100, true, 0, false);
	wire = orig;
	CV_CHECK_INT(cv_perc_e2e_protect(s, up.tx, B(&wire), &wire.len, BUF),
		     0);
	CV_CHECK_INT(cv_perc_hop_ingress(up.rx, B(&wire), wire.len, &rx), 0);
	CV_CHECK_INT(rx.ekt_len, 63);
	CV_CHECK_INT(cv_perc_hop_egress(down.tx, B(&wire), &rx, &rw, B(&fwd),
					BUF, &fwd.len),
		     0);
	CV_CHECK_INT(cv_perc_e2e_unprotect(r, down.rx, B(&fwd), &fwd.len, NULL),
		     0);
	check_same(&fwd, &orig);

	/* perc-notes key split: inner first half, outer second half. */
	mk_secret(&mk, 32, 0x01);
	mk_secret(&ms, 24, 0x02);
	CV_CHECK_INT(cv_perc_split_double_key(CV_PERC_DOUBLE_AES_128_GCM, &mk,
					      &ms, &in, &out),
		     0);
	CV_CHECK_INT(cv_secret_len(&in), 28);
	CV_CHECK_MEM(cv_secret_data(&in), cv_secret_data(&mk), 16);
	CV_CHECK_MEM(cv_secret_data(&in) + 16, cv_secret_data(&ms), 12);
	CV_CHECK_MEM(cv_secret_data(&out), cv_secret_data(&mk) + 16, 16);
	CV_CHECK_MEM(cv_secret_data(&out) + 16, cv_secret_data(&ms) + 12, 12);
	CV_CHECK_INT(cv_perc_split_double_key(CV_PERC_DOUBLE_AES_256_GCM, &mk,
					      &ms, &in, &out),
		     -EINVAL);
	CV_CHECK_INT(cv_secret_len(&in), 0);

	cv_perc_sender_destroy(s);
	cv_perc_receiver_destroy(r);
	hop_free(&up);
	hop_free(&down);
	cv_perc_ekt_key_wipe(&ekt);
	cv_secret_wipe(&key);
}

int main(void)
{
	test_inner_matches_libsrtp();
	setup();
	test_stream();
	test_cascade();
	test_tampering();
	test_rekey();
	test_late_join();
	teardown();
	test_256();
	return cv_test_done("test_perc_e2e");
}
