/*
 * RFC 8870 EKTField framing (node side), RFC 5649 key wrap vectors and
 * the EKT epoch rules of perc-notes (endpoint side).
 */
#include <errno.h>
#include <stdlib.h>

#include "conclave/err.h"
#include "conclave/perc.h"
#include "conclave/perc_e2e.h"
#include "cv_test.h"

static const uint8_t hdr12[12] = {0x80, 0x60, 0x00, 0x01, 0,	0,
				  0,	0,    0x11, 0x22, 0x33, 0x44};

static size_t mkpkt(uint8_t *pkt, const uint8_t *field, size_t flen)
{
	memcpy(pkt, hdr12, 12);
	memset(pkt + 12, 0xaa, 20); /* "SRTP payload and tag" */
	memcpy(pkt + 32, field, flen);
	return 32 + flen;
}

static void test_framing(void)
{
	uint8_t ct[24], field[64], pkt[128];
	struct cv_perc_ekt_field f;
	size_t n;
	int w;

	for (size_t i = 0; i < sizeof(ct); i++)
		ct[i] = (uint8_t)(0xc0 + i);
	/* Short. */
	n = mkpkt(pkt, (const uint8_t[]){0x00}, 1);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), 0);
	CV_CHECK_INT(f.type, CV_PERC_EKT_SHORT);
	CV_CHECK_INT(f.len, 1);

	/* Full: ciphertext || SPI || Epoch || Length || 0x02. */
	w = cv_perc_ekt_field_write_full(field, sizeof(field), ct, 24, 0x1234,
					 0x0005);
	CV_CHECK_INT(w, 31);
	CV_CHECK_MEM(field + 24,
		     ((uint8_t[]){0x12, 0x34, 0x00, 0x05, 0x00, 31, 0x02}), 7);
	n = mkpkt(pkt, field, 31);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), 0);
	CV_CHECK_INT(f.type, CV_PERC_EKT_FULL);
	CV_CHECK_INT(f.len, 31);
	CV_CHECK(f.data == pkt + 32);
	CV_CHECK_INT(f.ciphertext_len, 24);
	CV_CHECK_MEM(f.ciphertext, ct, 24);
	CV_CHECK_INT(f.spi, 0x1234);
	CV_CHECK_INT(f.epoch, 5);
	CV_CHECK_INT(cv_perc_ekt_field_write_full(field, 30, ct, 24, 1, 1),
		     -ENOBUFS);
	CV_CHECK_INT(cv_perc_ekt_field_write_full(field, 64, ct, 20, 1, 1),
		     -EINVAL);
	CV_CHECK_INT(cv_perc_ekt_field_write_full(field, 64, ct, 8, 1, 1),
		     -EINVAL);

	/* Truncation at the front, every length: the field alone or with
	 * less than a 12-octet header left is rejected. */
	for (size_t i = 0; i <= n; i++) {
		int err = cv_perc_ekt_field_parse(pkt + i, n - i, &f);
		CV_CHECK_INT(err, i <= n - 31 - 12 ? 0 : CV_EPARSE);
	}
	/* Truncation at the end: whatever it finds stays in bounds. */
	for (size_t k = 0; k < n; k++) {
		if (cv_perc_ekt_field_parse(pkt, k, &f) == 0)
			CV_CHECK(f.len <= k && k - f.len >= 12);
	}

	/* Extension type: framed by length, skipped. */
	n = mkpkt(pkt, (const uint8_t[]){0xde, 0xad, 0x00, 0x05, 0x42}, 5);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), 0);
	CV_CHECK_INT(f.type, 0x42);
	CV_CHECK_INT(f.len, 5);
	CV_CHECK(f.ciphertext == NULL);
	n = mkpkt(pkt, (const uint8_t[]){0x00, 0x03, 0xff}, 3);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), 0);
	CV_CHECK_INT(f.len, 3);

	/* Legacy type 0x01 rejected. */
	n = mkpkt(pkt, (const uint8_t[]){0x00, 0x03, 0x01}, 3);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), CV_EPROTO);
	/* Length below the length+type octets, or past the packet. */
	n = mkpkt(pkt, (const uint8_t[]){0x00, 0x02, 0x42}, 3);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), CV_EPARSE);
	n = mkpkt(pkt, (const uint8_t[]){0x00, 0x30, 0x42}, 3);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), CV_EPARSE);
	/* Full with a ciphertext that is not a multiple of 8, too short. */
	n = mkpkt(pkt,
		  (const uint8_t[]){1,	2,  3,	4,  5,	6, 7, 8, 9, 10, 11, 12,
				    13, 14, 15, 16, 17, 0, 1, 0, 0, 0,	24, 2},
		  24);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), CV_EPARSE);
	n = mkpkt(
		pkt,
		(const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 0, 0, 15, 2},
		15);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, n, &f), CV_EPARSE);
	/* Empty or tiny packets. */
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, 0, &f), CV_EPARSE);
	CV_CHECK_INT(cv_perc_ekt_field_parse((const uint8_t[]){0x00}, 1, &f),
		     CV_EPARSE);
}

static void set(struct cv_secret *s, const char *hex)
{
	uint8_t b[64];
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		b[i] = (uint8_t)v;
	}
	cv_secret_set(s, b, n);
}

/* RFC 5649 section 6. */
static void test_keywrap_vectors(void)
{
	struct cv_secret kek = {0}, k20 = {0}, k7 = {0};
	const uint8_t w20[] = {0x13, 0x8b, 0xde, 0xaa, 0x9b, 0x8f, 0xa7, 0xfc,
			       0x61, 0xf9, 0x77, 0x42, 0xe7, 0x22, 0x48, 0xee,
			       0x5a, 0xe6, 0xae, 0x53, 0x60, 0xd1, 0xae, 0x6a,
			       0x5f, 0x54, 0xf3, 0x73, 0xfa, 0x54, 0x3b, 0x6a};
	const uint8_t w7[] = {0xaf, 0xbe, 0xb0, 0xf0, 0x7d, 0xfb, 0xf5, 0x41,
			      0x92, 0x00, 0xf2, 0xcc, 0xb5, 0x0b, 0xb2, 0x4f};
	uint8_t out[64], bad[32];

	set(&kek, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
	set(&k20, "c37b7e6492584340bed12207808941155068f738");
	set(&k7, "466f7250617369");

	CV_CHECK_INT(cv_perc_ekt_wrap(&kek, k20.bytes, 20, out, sizeof(out)),
		     32);
	CV_CHECK_MEM(out, w20, 32);
	CV_CHECK_INT(cv_perc_ekt_unwrap(&kek, w20, 32, out, sizeof(out)), 20);
	CV_CHECK_MEM(out, k20.bytes, 20);

	CV_CHECK_INT(cv_perc_ekt_wrap(&kek, k7.bytes, 7, out, sizeof(out)), 16);
	CV_CHECK_MEM(out, w7, 16);
	CV_CHECK_INT(cv_perc_ekt_unwrap(&kek, w7, 16, out, sizeof(out)), 7);
	CV_CHECK_MEM(out, k7.bytes, 7);

	/* Any flipped bit fails the integrity check. */
	for (size_t i = 0; i < sizeof(w20); i++) {
		memcpy(bad, w20, sizeof(w20));
		bad[i] ^= 0x01;
		CV_CHECK_INT(
			cv_perc_ekt_unwrap(&kek, bad, 32, out, sizeof(out)),
			CV_EINTEGRITY);
	}
	CV_CHECK_INT(cv_perc_ekt_unwrap(&kek, w20, 24, out, sizeof(out)),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_perc_ekt_unwrap(&kek, w20, 31, out, sizeof(out)),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_perc_ekt_unwrap(&kek, w20, 8, out, sizeof(out)),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_perc_ekt_wrap(&kek, k20.bytes, 20, out, 31), -ENOBUFS);
	CV_CHECK_INT(cv_perc_ekt_wrap(&k7, k20.bytes, 20, out, 64), -EINVAL);
}

static void mk_ekt(struct cv_perc_ekt_key *k, uint16_t spi, size_t klen,
		   uint8_t fill)
{
	uint8_t b[32];

	memset(b, fill, sizeof(b));
	k->spi = spi;
	cv_secret_set(&k->key, b, klen);
	memset(b, 0x5a, sizeof(b));
	cv_secret_set(&k->inner_salt, b, CV_PERC_HALF_SALT_BYTES);
}

static void mk_key(struct cv_secret *s, size_t len, uint8_t fill)
{
	uint8_t b[32];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(fill + i);
	cv_secret_set(s, b, len);
}

static void test_full_field(void)
{
	struct cv_perc_ekt_key k = {0}, k32 = {0}, other = {0};
	struct cv_secret mk = {0}, got = {0};
	struct cv_perc_ekt_field f;
	uint8_t pkt[128];
	uint32_t ssrc = 0, roc = 0;
	int w;

	mk_ekt(&k, 7, 16, 0x01);
	mk_ekt(&k32, 8, 32, 0x02);
	mk_ekt(&other, 7, 16, 0x03);
	mk_key(&mk, 16, 0x40);

	/* perc-notes: 47 octets for a 16-octet key, 63 for 32. */
	memcpy(pkt, hdr12, 12);
	w = cv_perc_ekt_build_full(&k, 3, &mk, 0xdeadbeef, 2, pkt + 12, 116);
	CV_CHECK_INT(w, 47);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, 12 + 47, &f), 0);
	CV_CHECK_INT(f.spi, 7);
	CV_CHECK_INT(f.epoch, 3);
	CV_CHECK_INT(cv_perc_ekt_open_full(&k, &f, &got, &ssrc, &roc), 0);
	CV_CHECK(cv_secret_equal(&got, &mk));
	CV_CHECK_INT(ssrc, 0xdeadbeef);
	CV_CHECK_INT(roc, 2);
	/* Same SPI, other key: the unwrap fails. */
	CV_CHECK_INT(cv_perc_ekt_open_full(&other, &f, &got, &ssrc, &roc),
		     CV_EINTEGRITY);
	CV_CHECK_INT(cv_secret_len(&got), 0);
	CV_CHECK_INT(cv_perc_ekt_open_full(&k32, &f, &got, &ssrc, &roc),
		     -EINVAL);

	mk_key(&mk, 32, 0x50);
	w = cv_perc_ekt_build_full(&k32, 0, &mk, 1, 0, pkt + 12, 116);
	CV_CHECK_INT(w, 63);
	CV_CHECK_INT(cv_perc_ekt_field_parse(pkt, 12 + 63, &f), 0);
	CV_CHECK_INT(cv_perc_ekt_open_full(&k32, &f, &got, &ssrc, &roc), 0);
	CV_CHECK(cv_secret_equal(&got, &mk));
	cv_secret_wipe(&got);
	cv_perc_ekt_key_wipe(&k);
	cv_perc_ekt_key_wipe(&k32);
	cv_perc_ekt_key_wipe(&other);
}

static int accept(struct cv_perc_receiver *r, const struct cv_perc_ekt_key *k,
		  uint16_t epoch, const struct cv_secret *mk, uint32_t ssrc,
		  uint32_t field_ssrc)
{
	uint8_t field[128];
	int w = cv_perc_ekt_build_full(k, epoch, mk, field_ssrc, 0, field,
				       sizeof(field));
	CV_CHECK(w > 0);
	return cv_perc_receiver_accept_ekt(r, ssrc, 100, field, (size_t)w);
}

static void test_epochs(void)
{
	struct cv_perc_receiver *r = NULL;
	struct cv_perc_ekt_key k1 = {0}, k2 = {0}, unknown = {0};
	struct cv_secret a = {0}, b = {0}, c = {0}, wrong_len = {0};

	mk_ekt(&k1, 1, 16, 0x11);
	mk_ekt(&k2, 2, 32, 0x22);
	mk_ekt(&unknown, 9, 16, 0x99);
	mk_key(&a, 16, 0x01);
	mk_key(&b, 16, 0x02);
	mk_key(&c, 16, 0x03);
	mk_key(&wrong_len, 32, 0x04);

	CV_CHECK_INT(cv_perc_receiver_create(&r, CV_PERC_DOUBLE_AES_128_GCM, 2),
		     0);
	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(r, &k1), 0);
	CV_CHECK_INT(cv_perc_receiver_add_ekt_key(r, &k2), 0);

	CV_CHECK_INT(accept(r, &k1, 0, &a, 10, 10), 0);
	/* Equal epoch, identical key: retransmission, accepted. */
	CV_CHECK_INT(accept(r, &k1, 0, &a, 10, 10), 0);
	/* Equal epoch, different key: rejected. */
	CV_CHECK_INT(accept(r, &k1, 0, &b, 10, 10), CV_EREPLAY);
	/* Higher epoch: new key. */
	CV_CHECK_INT(accept(r, &k1, 1, &b, 10, 10), 0);
	/* Lower epoch: rejected, even with the key it once carried. */
	CV_CHECK_INT(accept(r, &k1, 0, &a, 10, 10), CV_EREPLAY);
	CV_CHECK_INT(cv_perc_receiver_drops(r, CV_PERC_DROP_EKT_EPOCH), 2);
	/* Per SSRC: another sender starts at epoch 0. */
	CV_CHECK_INT(accept(r, &k1, 0, &c, 11, 11), 0);
	/* Per SPI: under a new EKT key epoch 0 is fresh. */
	CV_CHECK_INT(accept(r, &k2, 0, &c, 10, 10), 0);
	CV_CHECK_INT(accept(r, &k2, 0, &a, 10, 10), CV_EREPLAY);
	/* ...and the old SPI still refuses its stale epoch. */
	CV_CHECK_INT(accept(r, &k1, 0, &a, 10, 10), CV_EREPLAY);
	/* SSRC mismatch. */
	CV_CHECK_INT(accept(r, &k1, 5, &a, 10, 11), CV_EAUTH);
	CV_CHECK_INT(cv_perc_receiver_drops(r, CV_PERC_DROP_EKT_SSRC), 1);
	/* Unknown SPI. */
	CV_CHECK_INT(accept(r, &unknown, 0, &a, 10, 10), -ENOENT);
	CV_CHECK_INT(cv_perc_receiver_drops(r, CV_PERC_DROP_EKT_SPI), 1);
	/* A key that is not the inner half length. */
	CV_CHECK_INT(accept(r, &k1, 7, &wrong_len, 10, 10), CV_EPARSE);
	CV_CHECK_INT(cv_perc_receiver_drops(r, CV_PERC_DROP_EKT_UNWRAP), 1);
	/* Source table full (2 sources: 10 and 11). */
	CV_CHECK_INT(accept(r, &k1, 0, &a, 12, 12), CV_ETOOBIG);
	CV_CHECK_INT(cv_perc_receiver_drops(r, CV_PERC_DROP_FULL), 1);
	/* Removing the SPI forgets it. */
	CV_CHECK_INT(cv_perc_receiver_remove_ekt_key(r, 1), 0);
	CV_CHECK_INT(cv_perc_receiver_remove_ekt_key(r, 1), -ENOENT);
	CV_CHECK_INT(accept(r, &k1, 9, &a, 10, 10), -ENOENT);
	/* Legacy and short fields are not FullEKTFields. */
	CV_CHECK_INT(cv_perc_receiver_accept_ekt(
			     r, 10, 1, (const uint8_t[]){0x00, 0x03, 0x01}, 3),
		     CV_EPROTO);
	CV_CHECK_INT(cv_perc_receiver_accept_ekt(r, 10, 1,
						 (const uint8_t[]){0x00}, 1),
		     CV_EPARSE);

	cv_perc_receiver_destroy(r);
	cv_perc_ekt_key_wipe(&k1);
	cv_perc_ekt_key_wipe(&k2);
	cv_perc_ekt_key_wipe(&unknown);
}

int main(void)
{
	test_framing();
	test_keywrap_vectors();
	test_full_field();
	test_epochs();
	return cv_test_done("test_perc_ekt");
}
