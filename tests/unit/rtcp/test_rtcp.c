/* RTCP compound iteration, SR/RR/SDES/BYE views and writers, builder. */
#include <errno.h>

#include "conclave/err.h"
#include "conclave/rtcp.h"
#include "cv_test.h"

/* SR with one report block, then SDES with CNAME "abcdef". */
static const uint8_t sr_sdes[] = {
	/* SR: RC=1, length 12 */
	0x81,
	0xc8,
	0x00,
	0x0c,
	0x11,
	0x22,
	0x33,
	0x44,
	0xe1,
	0x2f,
	0x3a,
	0x4b,
	0x80,
	0x00,
	0x00,
	0x00,
	0x00,
	0x01,
	0xe2,
	0x40,
	0x00,
	0x00,
	0x00,
	0x64,
	0x00,
	0x00,
	0x3e,
	0x80,
	/* report block */
	0x55,
	0x66,
	0x77,
	0x88,
	0x40,
	0xff,
	0xff,
	0xfe,
	0x00,
	0x01,
	0x00,
	0x05,
	0x00,
	0x00,
	0x00,
	0x10,
	0x2f,
	0x3a,
	0x4b,
	0x80,
	0x00,
	0x01,
	0x00,
	0x00,
	/* SDES: SC=1, length 4 */
	0x81,
	0xca,
	0x00,
	0x04,
	0x11,
	0x22,
	0x33,
	0x44,
	0x01,
	0x06,
	'a',
	'b',
	'c',
	'd',
	'e',
	'f',
	0x00,
	0x00,
	0x00,
	0x00,
};

/* RR without blocks, APP (unknown), BYE with reason "bye". */
static const uint8_t rr_app_bye[] = {
	0x80,
	0xc9,
	0x00,
	0x01,
	0x01,
	0x02,
	0x03,
	0x04,
	/* APP subtype 0, name "TEST", 4 bytes data */
	0x80,
	0xcc,
	0x00,
	0x03,
	0x01,
	0x02,
	0x03,
	0x04,
	'T',
	'E',
	'S',
	'T',
	0xca,
	0xfe,
	0xba,
	0xbe,
	/* BYE SC=2 with reason */
	0x82,
	0xcb,
	0x00,
	0x03,
	0x01,
	0x02,
	0x03,
	0x04,
	0x0a,
	0x0b,
	0x0c,
	0x0d,
	0x03,
	'b',
	'y',
	'e',
};

static int count_pkts(const uint8_t *b, size_t len)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;
	int n = 0, rc;
	cv_rtcp_iter_init(&it, b, len);
	while ((rc = cv_rtcp_iter_next(&it, &p)) > 0)
		n++;
	return rc < 0 ? rc : n;
}

static void test_sr_sdes(void)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;
	struct cv_rtcp_rb rb;

	cv_rtcp_iter_init(&it, sr_sdes, sizeof(sr_sdes));
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_SR);
	CV_CHECK_INT(p.len, 52);
	CV_CHECK_INT(p.ssrc, 0x11223344);
	CV_CHECK(p.u.sr.info.ntp == 0xe12f3a4b80000000ull);
	CV_CHECK_INT(p.u.sr.info.rtp_ts, 123456);
	CV_CHECK_INT(p.u.sr.info.pkt_count, 100);
	CV_CHECK_INT(p.u.sr.info.octet_count, 16000);
	CV_CHECK_INT(p.u.sr.rb_count, 1);
	cv_rtcp_report_block(&p, 0, &rb);
	CV_CHECK_INT(rb.ssrc, 0x55667788);
	CV_CHECK_INT(rb.fraction_lost, 0x40);
	CV_CHECK_INT(rb.cum_lost, -2);
	CV_CHECK_INT(rb.ext_high_seq, 0x10005);
	CV_CHECK_INT(rb.jitter, 16);
	CV_CHECK_INT(rb.lsr, 0x2f3a4b80);
	CV_CHECK_INT(rb.dlsr, 65536);

	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_SDES);
	CV_CHECK_INT(p.ssrc, 0x11223344);
	struct cv_rtcp_sdes_iter si;
	struct cv_rtcp_sdes_item item;
	cv_rtcp_sdes_iter_init(&si, &p);
	CV_CHECK_INT(cv_rtcp_sdes_iter_next(&si, &item), 1);
	CV_CHECK_INT(item.ssrc, 0x11223344);
	CV_CHECK_INT(item.type, CV_RTCP_SDES_CNAME);
	CV_CHECK(item.len == 6 && memcmp(item.text, "abcdef", 6) == 0);
	CV_CHECK_INT(cv_rtcp_sdes_iter_next(&si, &item), 0);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 0);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 0);
}

static void test_rr_app_bye(void)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;

	cv_rtcp_iter_init(&it, rr_app_bye, sizeof(rr_app_bye));
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_RR);
	CV_CHECK_INT(p.ssrc, 0x01020304);
	CV_CHECK_INT(p.u.rr.rb_count, 0);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_UNKNOWN);
	CV_CHECK_INT(p.pt, CV_RTCP_PT_APP);
	CV_CHECK_INT(p.len, 16);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_BYE);
	CV_CHECK_INT(p.u.bye.ssrc_count, 2);
	CV_CHECK_INT(cv_rtcp_bye_ssrc(&p, 0), 0x01020304);
	CV_CHECK_INT(cv_rtcp_bye_ssrc(&p, 1), 0x0a0b0c0d);
	CV_CHECK(p.u.bye.reason_len == 3 &&
		 memcmp(p.u.bye.reason, "bye", 3) == 0);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 0);
}

static void test_truncation(void)
{
	uint8_t buf[128];
	/* Every proper prefix either ends on a packet boundary or fails. */
	for (size_t l = 0; l < sizeof(sr_sdes); l++) {
		memcpy(buf, sr_sdes, l);
		int n = count_pkts(buf, l);
		if (l == 52)
			CV_CHECK_INT(n, 1);
		else
			CV_CHECK_INT(n, CV_EPARSE);
	}
	CV_CHECK_INT(count_pkts(sr_sdes, sizeof(sr_sdes)), 2);
	for (size_t l = 0; l < sizeof(rr_app_bye); l++) {
		memcpy(buf, rr_app_bye, l);
		int n = count_pkts(buf, l);
		if (l == 8)
			CV_CHECK_INT(n, 1);
		else if (l == 24)
			CV_CHECK_INT(n, 2);
		else
			CV_CHECK_INT(n, CV_EPARSE);
	}
	CV_CHECK_INT(count_pkts(NULL, 0), CV_EPARSE);
}

static void test_malformed(void)
{
	uint8_t buf[128];
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;

	/* Bad version in the second packet: the first still comes out. */
	memcpy(buf, sr_sdes, sizeof(sr_sdes));
	buf[52] = 0x41;
	cv_rtcp_iter_init(&it, buf, sizeof(sr_sdes));
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), CV_EPARSE);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), CV_EPARSE);

	/* Length past the buffer. */
	memcpy(buf, sr_sdes, sizeof(sr_sdes));
	buf[3] = 0x0d;
	CV_CHECK_INT(count_pkts(buf, sizeof(sr_sdes)), CV_EPARSE);
	/* RC larger than the blocks present. */
	memcpy(buf, sr_sdes, sizeof(sr_sdes));
	buf[0] = 0x82;
	CV_CHECK_INT(count_pkts(buf, sizeof(sr_sdes)), CV_EPARSE);
	/* Trailing bytes that are not a packet. */
	memcpy(buf, sr_sdes, sizeof(sr_sdes));
	buf[sizeof(sr_sdes)] = 0x80;
	CV_CHECK_INT(count_pkts(buf, sizeof(sr_sdes) + 1), CV_EPARSE);

	/* Padding on the first packet of a compound. */
	memcpy(buf, rr_app_bye, sizeof(rr_app_bye));
	buf[0] |= 0x20;
	CV_CHECK_INT(count_pkts(buf, sizeof(rr_app_bye)), CV_EPARSE);
	/* Padding on the last packet: BYE with 4 bytes of padding. */
	static const uint8_t padded[] = {0xa1, 0xcb, 0x00, 0x02, 0x01, 0x02,
					 0x03, 0x04, 0x00, 0x00, 0x00, 0x04};
	cv_rtcp_iter_init(&it, padded, sizeof(padded));
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_BYE);
	CV_CHECK_INT(p.body_len, 4);
	CV_CHECK(p.u.bye.reason == NULL);
	memcpy(buf, padded, sizeof(padded));
	buf[11] = 9; /* more than the body */
	CV_CHECK_INT(count_pkts(buf, sizeof(padded)), CV_EPARSE);
	buf[11] = 0;
	CV_CHECK_INT(count_pkts(buf, sizeof(padded)), CV_EPARSE);
	buf[11] = 8; /* eats the SSRC too: BYE body too short */
	CV_CHECK_INT(count_pkts(buf, sizeof(padded)), CV_EPARSE);

	/* BYE reason longer than the packet. */
	memcpy(buf, rr_app_bye, sizeof(rr_app_bye));
	buf[36] = 4;
	CV_CHECK_INT(count_pkts(buf, sizeof(rr_app_bye)), CV_EPARSE);

	/* SDES: item overrunning, and a chunk without null terminator. */
	memcpy(buf, sr_sdes + 52, 20);
	buf[9] = 9; /* text takes pad octets; the last one still ends it */
	CV_CHECK_INT(count_pkts(buf, 20), 1);
	buf[9] = 10; /* no null octet left */
	CV_CHECK_INT(count_pkts(buf, 20), CV_EPARSE);
	buf[9] = 11; /* past the packet */
	CV_CHECK_INT(count_pkts(buf, 20), CV_EPARSE);
	memcpy(buf, sr_sdes + 52, 20);
	buf[0] = 0x82; /* SC 2, second chunk absent */
	CV_CHECK_INT(count_pkts(buf, 20), CV_EPARSE);
}

static void test_writers(void)
{
	uint8_t buf[512];
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;
	struct cv_rtcp_rb rb[2] =
		{
			{.ssrc = 1,
			 .fraction_lost = 3,
			 .cum_lost = -5,
			 .ext_high_seq = 70000,
			 .jitter = 9,
			 .lsr = 10,
			 .dlsr = 11},
			{.ssrc = 2, .cum_lost = 0x7fffff},
		},
			  out;
	struct cv_rtcp_sr_info sr = {.ssrc = 0xabcdef01,
				     .ntp = 0x0102030405060708ull,
				     .rtp_ts = 9,
				     .pkt_count = 10,
				     .octet_count = 11};

	/* The hand-built SR+SDES vector comes back byte for byte. */
	struct cv_rtcp_rb rb0 = {.ssrc = 0x55667788,
				 .fraction_lost = 0x40,
				 .cum_lost = -2,
				 .ext_high_seq = 0x10005,
				 .jitter = 16,
				 .lsr = 0x2f3a4b80,
				 .dlsr = 65536};
	struct cv_rtcp_sr_info sr0 = {.ssrc = 0x11223344,
				      .ntp = 0xe12f3a4b80000000ull,
				      .rtp_ts = 123456,
				      .pkt_count = 100,
				      .octet_count = 16000};
	struct cv_rtcp_builder b;
	cv_rtcp_builder_init(&b, buf, sizeof(buf));
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_sr, &sr0, &rb0, 1), 0);
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_sdes_cname, 0x11223344,
				    "abcdef", 6),
		     0);
	CV_CHECK_INT(cv_rtcp_builder_len(&b), sizeof(sr_sdes));
	CV_CHECK_MEM(buf, sr_sdes, sizeof(sr_sdes));

	/* SR + RR + BYE through the builder, then parsed back. */
	cv_rtcp_builder_init(&b, buf, sizeof(buf));
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_sr, &sr, rb, 2), 0);
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_rr, 77, rb, 1), 0);
	uint32_t ssrcs[] = {5, 6, 7};
	CV_CHECK_INT(
		CV_RTCP_APPEND(&b, cv_rtcp_write_bye, ssrcs, 3, "shutdown", 8),
		0);
	size_t total = cv_rtcp_builder_len(&b);
	CV_CHECK_INT(total, 28 + 48 + 8 + 24 + 4 + 12 + 12);

	cv_rtcp_iter_init(&it, buf, total);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_SR);
	CV_CHECK(p.u.sr.info.ntp == sr.ntp);
	CV_CHECK_INT(p.u.sr.info.ssrc, sr.ssrc);
	CV_CHECK_INT(p.u.sr.info.octet_count, 11);
	CV_CHECK_INT(p.u.sr.rb_count, 2);
	cv_rtcp_report_block(&p, 0, &out);
	CV_CHECK_INT(out.ssrc, 1);
	CV_CHECK_INT(out.fraction_lost, 3);
	CV_CHECK_INT(out.cum_lost, -5);
	CV_CHECK_INT(out.ext_high_seq, 70000);
	CV_CHECK_INT(out.jitter, 9);
	CV_CHECK_INT(out.lsr, 10);
	CV_CHECK_INT(out.dlsr, 11);
	cv_rtcp_report_block(&p, 1, &out);
	CV_CHECK_INT(out.cum_lost, 0x7fffff);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_RR);
	CV_CHECK_INT(p.ssrc, 77);
	cv_rtcp_report_block(&p, 0, &out);
	CV_CHECK_INT(out.cum_lost, -5);
	CV_CHECK_INT(out.ext_high_seq, 70000);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_BYE);
	CV_CHECK_INT(p.u.bye.ssrc_count, 3);
	CV_CHECK_INT(cv_rtcp_bye_ssrc(&p, 2), 7);
	CV_CHECK(p.u.bye.reason_len == 8 &&
		 memcmp(p.u.bye.reason, "shutdown", 8) == 0);
	CV_CHECK_INT(cv_rtcp_iter_next(&it, &p), 0);

	/* The builder keeps what fits and refuses the rest. */
	cv_rtcp_builder_init(&b, buf, 40);
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_rr, 1, rb, 1), 0);
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_rr, 1, rb, 1), -ENOBUFS);
	CV_CHECK_INT(CV_RTCP_APPEND(&b, cv_rtcp_write_rr, 1, NULL, 0), 0);
	CV_CHECK_INT(cv_rtcp_builder_len(&b), 40);
	CV_CHECK_INT(count_pkts(buf, 40), 2);

	/* Capacity: every cap below the size fails. */
	for (size_t cap = 0; cap < 76; cap++)
		CV_CHECK_INT(cv_rtcp_write_sr(buf, cap, &sr, rb, 2), -ENOBUFS);
	for (size_t cap = 0; cap < 20; cap++)
		CV_CHECK_INT(cv_rtcp_write_sdes_cname(buf, cap, 1, "abcdef", 6),
			     -ENOBUFS);
	for (size_t cap = 0; cap < 12; cap++)
		CV_CHECK_INT(cv_rtcp_write_bye(buf, cap, ssrcs, 1, "x", 1),
			     -ENOBUFS);
	CV_CHECK_INT(cv_rtcp_write_bye(buf, 12, ssrcs, 1, "x", 1), 12);
	CV_CHECK_MEM(buf + 8, "\x01x\x00\x00", 4);
	CV_CHECK_INT(cv_rtcp_write_bye(buf, 16, ssrcs, 1, "xyz", 3), 12);
	CV_CHECK_INT(cv_rtcp_write_bye(buf, 16, ssrcs, 1, "wxyz", 4), 16);
	CV_CHECK_INT(count_pkts(buf, 16), 1);

	/* Impossible input. */
	struct cv_rtcp_rb many[32] = {{0}};
	CV_CHECK_INT(cv_rtcp_write_rr(buf, sizeof(buf), 1, many, 32), -EINVAL);
	CV_CHECK_INT(cv_rtcp_write_sr(buf, sizeof(buf), &sr, many, 32),
		     -EINVAL);
	CV_CHECK_INT(cv_rtcp_write_sdes_cname(buf, sizeof(buf), 1, "", 0),
		     -EINVAL);
	CV_CHECK_INT(cv_rtcp_write_bye(buf, sizeof(buf), ssrcs, 0, NULL, 0),
		     -EINVAL);

	/* SDES padding: CNAME of 2 bytes -> 4 items bytes + 1 null -> 8. */
	int n = cv_rtcp_write_sdes_cname(buf, sizeof(buf), 9, "ab", 2);
	CV_CHECK_INT(n, 16);
	CV_CHECK_MEM(buf + 8,
		     "\x01\x02"
		     "ab\x00\x00\x00\x00",
		     8);
	CV_CHECK_INT(count_pkts(buf, 16), 1);
	/* CNAME of 255 bytes. */
	char cname[255];
	memset(cname, 'c', sizeof(cname));
	n = cv_rtcp_write_sdes_cname(buf, sizeof(buf), 9, cname, 255);
	CV_CHECK_INT(n, 8 + 260);
	CV_CHECK_INT(count_pkts(buf, (size_t)n), 1);
}

int main(void)
{
	test_sr_sdes();
	test_rr_app_bye();
	test_truncation();
	test_malformed();
	test_writers();
	return cv_test_done("test_rtcp");
}
