/* RTP fixed header parse/write, in-place setters, strip, seq tracking. */
#include <errno.h>

#include "conclave/err.h"
#include "conclave/rtp.h"
#include "cv_test.h"

/* Opus: V=2, PT 111, seq 0x1234, ts 1000, SSRC 0xdeadbeef, 3 bytes. */
static const uint8_t opus[] = {
	0x80, 0x6f, 0x12, 0x34, 0x00, 0x00, 0x03, 0xe8,
	0xde, 0xad, 0xbe, 0xef, 'a',  'b',  'c',
};

/*
 * P=1 X=1 CC=2 M=1 PT 96, seq 0xfffe, ts 0x01020304, SSRC 0x11223344,
 * CSRCs 0xa0a0a0a0 0xb0b0b0b0, one-byte extension (1 word: id 1 len 2
 * "xy", pad), payload 4 bytes, 4 bytes of padding.
 */
static const uint8_t full[] = {
	0xb2, 0xe0, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x11, 0x22, 0x33, 0x44,
	0xa0, 0xa0, 0xa0, 0xa0, 0xb0, 0xb0, 0xb0, 0xb0, 0xbe, 0xde, 0x00, 0x01,
	0x11, 'x',  'y',  0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x04,
};

static void test_parse_vectors(void)
{
	struct cv_rtp_hdr h;

	CV_CHECK_INT(cv_rtp_parse(opus, sizeof(opus), &h), 0);
	CV_CHECK(!h.padding && !h.extension && !h.marker);
	CV_CHECK_INT(h.pt, 111);
	CV_CHECK_INT(h.seq, 0x1234);
	CV_CHECK_INT(h.ts, 1000);
	CV_CHECK_INT(h.ssrc, 0xdeadbeef);
	CV_CHECK_INT(h.csrc_count, 0);
	CV_CHECK_INT(h.hdr_len, 12);
	CV_CHECK_INT(h.payload_len, 3);
	CV_CHECK(h.payload == opus + 12);
	CV_CHECK(h.ext == NULL);

	CV_CHECK_INT(cv_rtp_parse(full, sizeof(full), &h), 0);
	CV_CHECK(h.padding && h.extension && h.marker);
	CV_CHECK_INT(h.pt, 96);
	CV_CHECK_INT(h.seq, 0xfffe);
	CV_CHECK_INT(h.ts, 0x01020304);
	CV_CHECK_INT(h.ssrc, 0x11223344);
	CV_CHECK_INT(h.csrc_count, 2);
	CV_CHECK_INT(h.csrc[0], 0xa0a0a0a0);
	CV_CHECK_INT(h.csrc[1], 0xb0b0b0b0);
	CV_CHECK_INT(h.ext_profile, 0xbede);
	CV_CHECK(h.ext == full + 24);
	CV_CHECK_INT(h.ext_len, 4);
	CV_CHECK_INT(h.hdr_len, 28);
	CV_CHECK_INT(h.payload_len, 4);
	CV_CHECK(h.payload == full + 28);
	CV_CHECK_INT(h.pad_len, 4);
}

static void test_truncation(void)
{
	struct cv_rtp_hdr h;
	uint8_t buf[64];

	/* Without padding: any prefix shorter than the header fails. */
	for (size_t l = 0; l < sizeof(opus); l++) {
		memcpy(buf, opus, l);
		int rc = cv_rtp_parse(buf, l, &h);
		if (l < 12) {
			CV_CHECK_INT(rc, CV_EPARSE);
		} else {
			CV_CHECK_INT(rc, 0);
			CV_CHECK_INT(h.payload_len, l - 12);
		}
	}
	/* The padded packet: prefixes cut the pad count off; never crash. */
	for (size_t l = 0; l < sizeof(full); l++) {
		memcpy(buf, full, l);
		int rc = cv_rtp_parse(buf, l, &h);
		if (l < 28) {
			CV_CHECK_INT(rc, CV_EPARSE);
		} else if (rc == 0) {
			CV_CHECK(h.hdr_len + h.payload_len + h.pad_len == l);
		}
	}
	CV_CHECK_INT(cv_rtp_parse(NULL, 0, &h), CV_EPARSE);
}

static void test_malformed(void)
{
	struct cv_rtp_hdr h;
	uint8_t buf[64];

	/* RFC 3550 5.1: V must be 2. */
	for (unsigned v = 0; v < 4; v++) {
		memcpy(buf, opus, sizeof(opus));
		buf[0] = (uint8_t)((buf[0] & 0x3f) | v << 6);
		CV_CHECK_INT(cv_rtp_parse(buf, sizeof(opus), &h),
			     v == 2 ? 0 : CV_EPARSE);
	}
	/* CC larger than the bytes present. */
	memcpy(buf, opus, sizeof(opus));
	buf[0] |= 0x01; /* needs 16 bytes, has 15 */
	CV_CHECK_INT(cv_rtp_parse(buf, 15, &h), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_parse(buf, 16, &h), 0);
	buf[0] |= 0x0f;
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(opus), &h), CV_EPARSE);

	/* Extension length overflowing the packet. */
	memcpy(buf, full, sizeof(full));
	buf[23] = 0x05; /* 5 words of 4 available after the ext header */
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), CV_EPARSE);
	buf[22] = 0xff;
	buf[23] = 0xff;
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), CV_EPARSE);
	/* X set but no room for the extension header. */
	memcpy(buf, opus, sizeof(opus));
	buf[0] |= 0x10;
	CV_CHECK_INT(cv_rtp_parse(buf, 15, &h), CV_EPARSE);
	CV_CHECK_INT(cv_rtp_parse(buf, 12, &h), CV_EPARSE);

	/* Padding count 0, too long, exactly fitting. */
	memcpy(buf, full, sizeof(full));
	buf[sizeof(full) - 1] = 0;
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), CV_EPARSE);
	buf[sizeof(full) - 1] = 9; /* 8 bytes after the header */
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), CV_EPARSE);
	buf[sizeof(full) - 1] = 8;
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), 0);
	CV_CHECK_INT(h.payload_len, 0);
	CV_CHECK_INT(h.pad_len, 8);
	buf[sizeof(full) - 1] = 0xff;
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h), CV_EPARSE);
	/* P set on a bare header: the count octet would be the SSRC. */
	memcpy(buf, opus, 12);
	buf[0] |= 0x20;
	buf[11] = 1;
	CV_CHECK_INT(cv_rtp_parse(buf, 12, &h), CV_EPARSE);
}

static void test_is_rtcp(void)
{
	uint8_t b[8] = {0x80, 200, 0, 6};
	CV_CHECK(cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 192;
	CV_CHECK(cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 223;
	CV_CHECK(cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 224;
	CV_CHECK(!cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 191;
	CV_CHECK(!cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 0x6f; /* Opus, no marker */
	CV_CHECK(!cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 0xe0; /* PT 96 with marker: 224 */
	CV_CHECK(!cv_rtp_is_rtcp(b, sizeof(b)));
	b[1] = 201;
	b[0] = 0x40; /* version 1 */
	CV_CHECK(!cv_rtp_is_rtcp(b, sizeof(b)));
	b[0] = 0x81;
	CV_CHECK(!cv_rtp_is_rtcp(b, 1));
	CV_CHECK(cv_rtp_is_rtcp(b, 2));
	CV_CHECK(!cv_rtp_is_rtcp(NULL, 0));
}

static bool same_hdr(const struct cv_rtp_hdr *a, const struct cv_rtp_hdr *b)
{
	if (a->padding != b->padding || a->extension != b->extension ||
	    a->marker != b->marker || a->csrc_count != b->csrc_count ||
	    a->pt != b->pt || a->seq != b->seq || a->ts != b->ts ||
	    a->ssrc != b->ssrc || a->hdr_len != b->hdr_len ||
	    a->payload_len != b->payload_len || a->pad_len != b->pad_len ||
	    a->ext_profile != b->ext_profile || a->ext_len != b->ext_len)
		return false;
	if (memcmp(a->csrc, b->csrc, 4u * a->csrc_count) != 0)
		return false;
	return a->ext_len == 0 || memcmp(a->ext, b->ext, a->ext_len) == 0;
}

static void test_write_roundtrip(void)
{
	struct cv_rtp_hdr h, h2;
	uint8_t buf[64];

	/* Re-write the parsed full packet: identical bytes. */
	CV_CHECK_INT(cv_rtp_parse(full, sizeof(full), &h), 0);
	int n = cv_rtp_write_header(buf, sizeof(buf), &h, NULL, 0);
	CV_CHECK_INT(n, 28);
	memcpy(buf + n, full + n, sizeof(full) - (size_t)n);
	CV_CHECK_MEM(buf, full, sizeof(full));
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(full), &h2), 0);
	CV_CHECK(same_hdr(&h, &h2));

	CV_CHECK_INT(cv_rtp_parse(opus, sizeof(opus), &h), 0);
	n = cv_rtp_write_header(buf, sizeof(buf), &h, NULL, 0);
	CV_CHECK_INT(n, 12);
	CV_CHECK_MEM(buf, opus, 12);

	/* Every capacity below the need fails without overrunning. */
	CV_CHECK_INT(cv_rtp_parse(full, sizeof(full), &h), 0);
	for (size_t cap = 0; cap < 28; cap++)
		CV_CHECK_INT(cv_rtp_write_header(buf, cap, &h, NULL, 0),
			     -ENOBUFS);
	CV_CHECK_INT(cv_rtp_write_header(buf, 28, &h, NULL, 0), 28);

	/* Impossible input. */
	struct cv_rtp_hdr bad = h;
	bad.csrc_count = 16;
	CV_CHECK_INT(cv_rtp_write_header(buf, sizeof(buf), &bad, NULL, 0),
		     -EINVAL);
	bad = h;
	bad.pt = 128;
	CV_CHECK_INT(cv_rtp_write_header(buf, sizeof(buf), &bad, NULL, 0),
		     -EINVAL);
	bad = h;
	bad.ext_len = 3;
	CV_CHECK_INT(cv_rtp_write_header(buf, sizeof(buf), &bad, NULL, 0),
		     -EINVAL);

	/* From scratch with an element list: X set, one-byte profile. */
	struct cv_rtp_hdr w = {.marker = true,
			       .pt = 100,
			       .seq = 7,
			       .ts = 90000,
			       .ssrc = 0x01010101};
	uint8_t tw[2] = {0x00, 0x2a};
	struct cv_rtp_ext_elem el = {.id = 3, .data = tw, .len = 2};
	n = cv_rtp_write_header(buf, sizeof(buf), &w, &el, 1);
	CV_CHECK_INT(n, 20);
	static const uint8_t want[] = {0x90, 0xe4, 0x00, 0x07, 0x00, 0x01, 0x5f,
				       0x90, 0x01, 0x01, 0x01, 0x01, 0xbe, 0xde,
				       0x00, 0x01, 0x31, 0x00, 0x2a, 0x00};
	CV_CHECK_MEM(buf, want, sizeof(want));
	for (size_t cap = 0; cap < 20; cap++)
		CV_CHECK_INT(cv_rtp_write_header(buf, cap, &w, &el, 1),
			     -ENOBUFS);
}

static void test_setters(void)
{
	uint8_t buf[sizeof(full)];
	struct cv_rtp_hdr h;

	memcpy(buf, full, sizeof(full));
	cv_rtp_set_seq(buf, 0x0102);
	cv_rtp_set_ts(buf, 0xa1b2c3d4);
	cv_rtp_set_ssrc(buf, 0x55667788);
	cv_rtp_set_pt(buf, 111);
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(buf), &h), 0);
	CV_CHECK_INT(h.seq, 0x0102);
	CV_CHECK_INT(h.ts, 0xa1b2c3d4);
	CV_CHECK_INT(h.ssrc, 0x55667788);
	CV_CHECK_INT(h.pt, 111);
	CV_CHECK(h.marker); /* kept by set_pt */
	cv_rtp_set_marker(buf, false);
	CV_CHECK_INT(cv_rtp_parse(buf, sizeof(buf), &h), 0);
	CV_CHECK(!h.marker);
	CV_CHECK_INT(h.pt, 111); /* kept by set_marker */
	cv_rtp_set_marker(buf, true);
	CV_CHECK_INT(buf[1], 0x80 | 111);
	/* Only the targeted bytes change. */
	CV_CHECK_MEM(buf + 12, full + 12, sizeof(full) - 12);
	CV_CHECK_INT(buf[0], full[0]);
}

static void test_strip(void)
{
	uint8_t buf[sizeof(full)];
	size_t len = sizeof(full);
	struct cv_rtp_hdr h;

	memcpy(buf, full, sizeof(full));
	CV_CHECK_INT(cv_rtp_strip_ext(buf, &len), 0);
	CV_CHECK_INT(len, sizeof(full) - 8);
	CV_CHECK_INT(cv_rtp_parse(buf, len, &h), 0);
	CV_CHECK(!h.extension);
	CV_CHECK_INT(h.csrc_count, 2);
	CV_CHECK_INT(h.csrc[1], 0xb0b0b0b0);
	CV_CHECK_INT(h.hdr_len, 20);
	CV_CHECK_INT(h.payload_len, 4);
	CV_CHECK_MEM(h.payload, full + 28, 4);
	CV_CHECK_INT(h.pad_len, 4);
	CV_CHECK(h.marker && h.pt == 96 && h.seq == 0xfffe);

	/* No extension: unchanged. */
	size_t l2 = len;
	CV_CHECK_INT(cv_rtp_strip_ext(buf, &l2), 0);
	CV_CHECK_INT(l2, len);

	/* Malformed: unchanged. */
	uint8_t bad[sizeof(full)];
	memcpy(bad, full, sizeof(full));
	bad[23] = 9;
	len = sizeof(bad);
	CV_CHECK_INT(cv_rtp_strip_ext(bad, &len), CV_EPARSE);
	CV_CHECK_INT(len, sizeof(full));
	CV_CHECK_INT(bad[0], full[0]);
}

static void test_seq16(void)
{
	CV_CHECK(cv_seq16_newer(1, 0));
	CV_CHECK(!cv_seq16_newer(0, 1));
	CV_CHECK(!cv_seq16_newer(5, 5));
	CV_CHECK(cv_seq16_newer(0, 0xffff));
	CV_CHECK(cv_seq16_newer(10, 0xfff0));
	CV_CHECK(!cv_seq16_newer(0xfff0, 10));
	CV_CHECK(cv_seq16_newer(0x7fff, 0));
	/* Exactly half apart: one way only. */
	CV_CHECK(cv_seq16_newer(0x8000, 0) != cv_seq16_newer(0, 0x8000));
	CV_CHECK(cv_seq16_newer(0x9000, 0x1000) !=
		 cv_seq16_newer(0x1000, 0x9000));
}

static void test_seq_tracker(void)
{
	struct cv_rtp_seq s;

	/* Probation: the first packet is not yet valid, the second is. */
	cv_rtp_seq_init(&s, 65530);
	CV_CHECK(!cv_rtp_seq_update(&s, 65530));
	CV_CHECK(cv_rtp_seq_update(&s, 65531));
	CV_CHECK_INT(cv_rtp_seq_expected(&s), 1);
	CV_CHECK_INT(cv_rtp_seq_lost(&s), 0);
	/* Across the wrap, with 2 losses (65533, 1). */
	uint16_t seqs[] = {65532, 65534, 65535, 0, 2, 3};
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
		CV_CHECK(cv_rtp_seq_update(&s, seqs[i]));
	CV_CHECK_INT(cv_rtp_seq_ext_max(&s), 65536 + 3);
	CV_CHECK_INT(cv_rtp_seq_expected(&s), 65536 + 3 - 65531 + 1);
	CV_CHECK_INT(cv_rtp_seq_lost(&s), 2);
	/* 9 expected, 7 received: 2/9 * 256 = 56. */
	CV_CHECK_INT(cv_rtp_seq_fraction_lost(&s), 56);
	CV_CHECK_INT(cv_rtp_seq_fraction_lost(&s), 0); /* new interval */
	CV_CHECK_INT(cv_rtp_seq_extend(&s, 65535), 65535);
	CV_CHECK_INT(cv_rtp_seq_extend(&s, 4), 65540);

	/* A duplicate counts (lost can go negative, RFC 3550 A.3). */
	CV_CHECK(cv_rtp_seq_update(&s, 3));
	CV_CHECK_INT(cv_rtp_seq_lost(&s), 1);

	/* A large jump needs confirmation by the next packet. */
	CV_CHECK(!cv_rtp_seq_update(&s, 30000));
	CV_CHECK_INT(cv_rtp_seq_ext_max(&s), 65536 + 3);
	CV_CHECK(cv_rtp_seq_update(&s, 30001)); /* restart */
	CV_CHECK_INT(cv_rtp_seq_ext_max(&s), 30001);
	CV_CHECK_INT(cv_rtp_seq_expected(&s), 1);
	CV_CHECK(cv_rtp_seq_update(&s, 30002));
	CV_CHECK_INT(cv_rtp_seq_lost(&s), 0);

	/* Broken probation restarts it. */
	cv_rtp_seq_init(&s, 100);
	CV_CHECK(!cv_rtp_seq_update(&s, 100));
	CV_CHECK(!cv_rtp_seq_update(&s, 200));
	CV_CHECK_INT(cv_rtp_seq_expected(&s), 0);
	CV_CHECK(cv_rtp_seq_update(&s, 201));
	CV_CHECK_INT(cv_rtp_seq_lost(&s), 0);
}

static void test_jitter(void)
{
	struct cv_rtp_seq s;
	cv_rtp_seq_init(&s, 1);

	/* Constant transit: no jitter. */
	for (uint32_t i = 0; i < 50; i++)
		cv_rtp_seq_jitter_update(&s, 1000 + 960 * i, 5000 + 960 * i);
	CV_CHECK_INT(cv_rtp_seq_jitter(&s), 0);
	/* One packet 160 units late: J = 160/16 = 10. */
	cv_rtp_seq_jitter_update(&s, 1000 + 960 * 50, 5000 + 960 * 50 + 160);
	CV_CHECK_INT(cv_rtp_seq_jitter(&s), 10);
	/* Alternating +-80 converges towards 80 (|D| = 80 each time). */
	for (uint32_t i = 51; i < 400; i++)
		cv_rtp_seq_jitter_update(&s, 1000 + 960 * i,
					 5000 + 960 * i + (i % 2) * 80);
	CV_CHECK(cv_rtp_seq_jitter(&s) >= 78 && cv_rtp_seq_jitter(&s) <= 80);
	/* Timestamps wrapping around 2^32 do not disturb it. */
	cv_rtp_seq_init(&s, 1);
	for (uint32_t i = 0; i < 20; i++)
		cv_rtp_seq_jitter_update(&s, 0xfffff000u + 960 * i,
					 0x00000100u + 960 * i);
	CV_CHECK_INT(cv_rtp_seq_jitter(&s), 0);
}

int main(void)
{
	test_parse_vectors();
	test_truncation();
	test_malformed();
	test_is_rtcp();
	test_write_roundtrip();
	test_setters();
	test_strip();
	test_seq16();
	test_seq_tracker();
	test_jitter();
	return cv_test_done("test_rtp");
}
