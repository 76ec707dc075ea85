/* RTP header extensions (RFC 8285) and typed element values. */
#include <errno.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "cv_test.h"

/* A header with X set around an extension body `ext` of `n` bytes. */
static size_t make_pkt(uint8_t *buf, uint16_t profile, const uint8_t *ext,
		       size_t n)
{
	static const uint8_t fixed[] = {0x90, 0x60, 0x00, 0x01, 0x00, 0x00,
					0x00, 0x02, 0x00, 0x00, 0x00, 0x03};
	memcpy(buf, fixed, 12);
	buf[12] = (uint8_t)(profile >> 8);
	buf[13] = (uint8_t)profile;
	buf[14] = (uint8_t)(n / 4 >> 8);
	buf[15] = (uint8_t)(n / 4);
	memcpy(buf + 16, ext, n);
	memcpy(buf + 16 + n, "PAYLOAD", 7);
	return 16 + n + 7;
}

static int collect(const uint8_t *pkt, size_t len, struct cv_rtp_ext_elem *out,
		   size_t cap, size_t *n)
{
	struct cv_rtp_hdr h;
	struct cv_rtp_ext_iter it;
	int rc = cv_rtp_parse(pkt, len, &h);
	if (rc < 0)
		return rc;
	*n = 0;
	cv_rtp_ext_iter_init(&it, &h);
	while (*n < cap && (rc = cv_rtp_ext_iter_next(&it, &out[*n])) > 0)
		(*n)++;
	return rc;
}

static void test_one_byte(void)
{
	uint8_t pkt[64];
	struct cv_rtp_ext_elem e[8];
	size_t n;

	/* id 1 "\xab", a padding byte, id 2 3 bytes, a padding byte. */
	static const uint8_t ext[] = {0x10, 0xab, 0x00, 0x22,
				      0x01, 0x02, 0x03, 0x00};
	size_t len = make_pkt(pkt, 0xbede, ext, sizeof(ext));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 2);
	CV_CHECK_INT(e[0].id, 1);
	CV_CHECK_INT(e[0].len, 1);
	CV_CHECK_INT(e[0].data[0], 0xab);
	CV_CHECK_INT(e[1].id, 2);
	CV_CHECK_INT(e[1].len, 3);
	CV_CHECK_MEM(e[1].data, "\x01\x02\x03", 3);

	/* RFC 8285 4.2: id 15 ends processing. */
	static const uint8_t stop[] = {0x10, 0xab, 0xf0, 0x22,
				       0x01, 0x02, 0x03, 0x00};
	len = make_pkt(pkt, 0xbede, stop, sizeof(stop));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 1);

	/* 16-byte element (L = 15). */
	uint8_t big[20] = {0x5f};
	for (int i = 0; i < 16; i++)
		big[1 + i] = (uint8_t)i;
	len = make_pkt(pkt, 0xbede, big, sizeof(big));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 1);
	CV_CHECK_INT(e[0].id, 5);
	CV_CHECK_INT(e[0].len, 16);

	/* Overrun: id 1 wants 4 bytes, 3 remain. */
	static const uint8_t over[] = {0x13, 0x01, 0x02, 0x03};
	len = make_pkt(pkt, 0xbede, over, sizeof(over));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), CV_EPARSE);
	CV_CHECK_INT(n, 0);
	/* Overrun after a good element: the good one came first. */
	static const uint8_t over2[] = {0x10, 0xab, 0x31, 0x01};
	len = make_pkt(pkt, 0xbede, over2, sizeof(over2));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), CV_EPARSE);
	CV_CHECK_INT(n, 1);

	/* Unknown profile: no elements, no error. */
	len = make_pkt(pkt, 0x1234, ext, sizeof(ext));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 0);
	/* Empty block. */
	len = make_pkt(pkt, 0xbede, ext, 0);
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 0);
}

static void test_two_byte(void)
{
	uint8_t pkt[64];
	struct cv_rtp_ext_elem e[8];
	size_t n;

	/* id 1 empty, a padding byte, id 15 two bytes, pad. */
	static const uint8_t ext[] = {0x01, 0x00, 0x00, 0x0f,
				      0x02, 0xaa, 0xbb, 0x00};
	size_t len = make_pkt(pkt, 0x1000, ext, sizeof(ext));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 2);
	CV_CHECK_INT(e[0].id, 1);
	CV_CHECK_INT(e[0].len, 0);
	CV_CHECK_INT(e[1].id, 15);
	CV_CHECK_INT(e[1].len, 2);
	CV_CHECK_MEM(e[1].data, "\xaa\xbb", 2);
	/* appbits in the low nibble are still the two-byte form. */
	len = make_pkt(pkt, 0x100f, ext, sizeof(ext));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), 0);
	CV_CHECK_INT(n, 2);

	/* Length beyond the block, and a lone id byte at the end. */
	static const uint8_t over[] = {0x01, 0x05, 0xaa, 0xbb};
	len = make_pkt(pkt, 0x1000, over, sizeof(over));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), CV_EPARSE);
	static const uint8_t cut[] = {0x00, 0x00, 0x00, 0x07};
	len = make_pkt(pkt, 0x1000, cut, sizeof(cut));
	CV_CHECK_INT(collect(pkt, len, e, 8, &n), CV_EPARSE);
}

static void test_find(void)
{
	uint8_t pkt[64];
	struct cv_rtp_hdr h;
	struct cv_rtp_ext_elem e;
	static const uint8_t ext[] = {0x10, 0xab, 0x00, 0x22,
				      0x01, 0x02, 0x03, 0x00};
	size_t len = make_pkt(pkt, 0xbede, ext, sizeof(ext));

	CV_CHECK_INT(cv_rtp_parse(pkt, len, &h), 0);
	CV_CHECK_INT(cv_rtp_ext_find(&h, 2, &e), 0);
	CV_CHECK_INT(e.len, 3);
	CV_CHECK_INT(cv_rtp_ext_find(&h, 3, &e), -ENOENT);
	static const uint8_t bad[] = {0x10, 0xab, 0x3f, 0x00};
	len = make_pkt(pkt, 0xbede, bad, sizeof(bad));
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &h), 0);
	CV_CHECK_INT(cv_rtp_ext_find(&h, 1, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_find(&h, 3, &e), CV_EPARSE);
	/* No X bit. */
	pkt[0] &= (uint8_t)~0x10;
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &h), 0);
	CV_CHECK_INT(cv_rtp_ext_find(&h, 1, &e), -ENOENT);
}

static void test_build(void)
{
	uint8_t buf[600];
	uint16_t prof = 0;
	uint8_t d16[17] = "0123456789abcdef";

	/* One-byte form: ids 1..14, lengths 1..16. */
	struct cv_rtp_ext_elem one[] = {
		{.id = 1, .data = (const uint8_t *)"0", .len = 1},
		{.id = 14, .data = d16, .len = 16},
	};
	int n = cv_rtp_ext_build(buf, sizeof(buf), one, 2, &prof);
	CV_CHECK_INT(n, 20);
	CV_CHECK_INT(prof, 0xbede);
	CV_CHECK_INT(buf[0], 0x10);
	CV_CHECK_INT(buf[1], '0');
	CV_CHECK_INT(buf[2], 0xef);
	CV_CHECK_MEM(buf + 3, d16, 16);
	CV_CHECK_INT(buf[19], 0);
	for (size_t cap = 0; cap < 20; cap++)
		CV_CHECK_INT(cv_rtp_ext_build(buf, cap, one, 2, &prof),
			     -ENOBUFS);

	/* Two-byte form: id 15, or length 0, or length 17. */
	struct cv_rtp_ext_elem two[] = {
		{.id = 15, .data = d16, .len = 2},
	};
	n = cv_rtp_ext_build(buf, sizeof(buf), two, 1, &prof);
	CV_CHECK_INT(n, 4);
	CV_CHECK_INT(prof, 0x1000);
	CV_CHECK_MEM(buf,
		     "\x0f\x02"
		     "01",
		     4);
	struct cv_rtp_ext_elem zero[] = {{.id = 2, .data = NULL, .len = 0}};
	n = cv_rtp_ext_build(buf, sizeof(buf), zero, 1, &prof);
	CV_CHECK_INT(n, 4);
	CV_CHECK_INT(prof, 0x1000);
	CV_CHECK_MEM(buf, "\x02\x00\x00\x00", 4);
	struct cv_rtp_ext_elem long17[] = {{.id = 1, .data = d16, .len = 17}};
	n = cv_rtp_ext_build(buf, sizeof(buf), long17, 1, &prof);
	CV_CHECK_INT(n, 20);
	CV_CHECK_INT(prof, 0x1000);

	/* Invalid: id 0, length 256. */
	struct cv_rtp_ext_elem bad = {.id = 0, .data = d16, .len = 1};
	CV_CHECK_INT(cv_rtp_ext_build(buf, sizeof(buf), &bad, 1, &prof),
		     -EINVAL);
	bad.id = 1;
	bad.len = 256;
	CV_CHECK_INT(cv_rtp_ext_build(buf, sizeof(buf), &bad, 1, &prof),
		     -EINVAL);
	CV_CHECK_INT(cv_rtp_ext_build(buf, sizeof(buf), NULL, 0, &prof), 0);
}

static void test_full_roundtrip(void)
{
	/* VP8 with MID, RID, abs-send-time, transport seq, audio level. */
	uint8_t abs[3], tw[2], lvl[1];
	cv_rtp_ext_put_abs_send_time(
		abs, cv_rtp_abs_send_time_from_us(1500000)); /* 1.5 s */
	cv_rtp_ext_put_tw_seq(tw, 0xbeef);
	cv_rtp_ext_put_audio_level(lvl, true, 42);
	struct cv_rtp_ext_elem el[] = {
		{.id = 1, .data = (const uint8_t *)"v0", .len = 2},
		{.id = 2, .data = (const uint8_t *)"hi-res_1", .len = 8},
		{.id = 3, .data = abs, .len = 3},
		{.id = 4, .data = tw, .len = 2},
		{.id = 5, .data = lvl, .len = 1},
	};
	struct cv_rtp_hdr h = {.pt = 96, .seq = 1, .ts = 2, .ssrc = 3};
	uint8_t pkt[128];
	int n = cv_rtp_write_header(pkt, sizeof(pkt), &h, el, 5);
	CV_CHECK(n > 0);
	memcpy(pkt + n, "\x90\x80\x00\x9d\x01\x2a", 6); /* VP8 bytes */
	size_t len = (size_t)n + 6;

	struct cv_rtp_hdr p;
	struct cv_rtp_ext_elem e;
	const char *s;
	size_t sl;
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &p), 0);
	CV_CHECK(p.extension);
	CV_CHECK_INT(p.ext_profile, 0xbede);
	CV_CHECK_INT(p.payload_len, 6);
	CV_CHECK_INT(cv_rtp_ext_find(&p, 1, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_mid(&e, &s, &sl), 0);
	CV_CHECK(sl == 2 && memcmp(s, "v0", 2) == 0);
	CV_CHECK_INT(cv_rtp_ext_find(&p, 2, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_rid(&e, &s, &sl), 0);
	CV_CHECK(sl == 8 && memcmp(s, "hi-res_1", 8) == 0);
	uint32_t a24;
	CV_CHECK_INT(cv_rtp_ext_find(&p, 3, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_abs_send_time(&e, &a24), 0);
	CV_CHECK_INT(a24, 0x60000); /* 1.5 * 2^18 */
	uint16_t seq;
	CV_CHECK_INT(cv_rtp_ext_find(&p, 4, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_tw_seq(&e, &seq), 0);
	CV_CHECK_INT(seq, 0xbeef);
	bool v;
	uint8_t level;
	CV_CHECK_INT(cv_rtp_ext_find(&p, 5, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_audio_level(&e, &v, &level), 0);
	CV_CHECK(v);
	CV_CHECK_INT(level, 42);

	/* Rewrite the transport seq in place; lengths must match. */
	CV_CHECK_INT(
		cv_rtp_ext_rewrite(pkt, len, 4, (const uint8_t *)"\x12\x34", 2),
		0);
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &p), 0);
	CV_CHECK_INT(cv_rtp_ext_find(&p, 4, &e), 0);
	CV_CHECK_INT(cv_rtp_ext_read_tw_seq(&e, &seq), 0);
	CV_CHECK_INT(seq, 0x1234);
	CV_CHECK_INT(cv_rtp_ext_rewrite(pkt, len, 4,
					(const uint8_t *)"\x12\x34\x56", 3),
		     -EINVAL);
	CV_CHECK_INT(
		cv_rtp_ext_rewrite(pkt, len, 9, (const uint8_t *)"\x12", 1),
		-ENOENT);
	CV_CHECK_INT(
		cv_rtp_ext_rewrite(pkt, 5, 4, (const uint8_t *)"\x12\x34", 2),
		CV_EPARSE);

	/* Truncation at every length: errors or a consistent view. */
	for (size_t l = 0; l < len; l++) {
		uint8_t cut[128];
		memcpy(cut, pkt, l);
		int rc = cv_rtp_parse(cut, l, &p);
		CV_CHECK(rc == CV_EPARSE ||
			 (rc == 0 && p.hdr_len == (size_t)n));
	}

	/* Strip the whole block. */
	CV_CHECK_INT(cv_rtp_strip_ext(pkt, &len), 0);
	CV_CHECK_INT(len, 18);
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &p), 0);
	CV_CHECK(!p.extension);
	CV_CHECK_MEM(p.payload, "\x90\x80\x00\x9d\x01\x2a", 6);
}

static void test_typed_values(void)
{
	struct cv_rtp_ext_elem e;
	const char *s;
	size_t sl;
	uint32_t a24;
	uint16_t seq;
	bool v;
	uint8_t level;

	e = (struct cv_rtp_ext_elem){
		.id = 1, .data = (const uint8_t *)"a b", .len = 3};
	CV_CHECK_INT(cv_rtp_ext_read_mid(&e, &s, &sl), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_ext_read_rid(&e, &s, &sl), CV_EPARSE);
	e.data = (const uint8_t *)"a.b";
	CV_CHECK_INT(cv_rtp_ext_read_mid(&e, &s, &sl), 0);
	CV_CHECK_INT(cv_rtp_ext_read_rid(&e, &s, &sl), CV_EPARSE);
	e.len = 0;
	CV_CHECK_INT(cv_rtp_ext_read_mid(&e, &s, &sl), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_ext_read_rid(&e, &s, &sl), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_ext_read_audio_level(&e, &v, &level), CV_EPARSE);

	e.data = (const uint8_t *)"\x01\x02\x03\x04";
	e.len = 4;
	CV_CHECK_INT(cv_rtp_ext_read_abs_send_time(&e, &a24), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_ext_read_tw_seq(&e, &seq), CV_EPARSE);
	e.len = 3;
	CV_CHECK_INT(cv_rtp_ext_read_abs_send_time(&e, &a24), 0);
	CV_CHECK_INT(a24, 0x010203);

	/* RFC 6464: 0x7f is silence, V clear. */
	e.data = (const uint8_t *)"\x7f";
	e.len = 1;
	CV_CHECK_INT(cv_rtp_ext_read_audio_level(&e, &v, &level), 0);
	CV_CHECK(!v);
	CV_CHECK_INT(level, 127);
	uint8_t out[3];
	cv_rtp_ext_put_audio_level(out, false, 200); /* clamped */
	CV_CHECK_INT(out[0], 0x7f);
	cv_rtp_ext_put_audio_level(out, true, 0);
	CV_CHECK_INT(out[0], 0x80);

	/* 6.18 fixed point; 64 s wraps to 0. */
	CV_CHECK_INT(cv_rtp_abs_send_time_from_us(0), 0);
	CV_CHECK_INT(cv_rtp_abs_send_time_from_us(1000000), 1 << 18);
	CV_CHECK_INT(cv_rtp_abs_send_time_from_us(64000000), 0);
	CV_CHECK_INT(cv_rtp_abs_send_time_from_us(63999999), 0xffffff);
	cv_rtp_ext_put_abs_send_time(out, 0xabcdef);
	CV_CHECK_MEM(out, "\xab\xcd\xef", 3);
}

int main(void)
{
	test_one_byte();
	test_two_byte();
	test_find();
	test_build();
	test_full_roundtrip();
	test_typed_values();
	return cv_test_done("test_rtp_ext");
}
