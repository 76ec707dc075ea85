/*
 * RFC 8723 section 4 Original Header Block: encodings, parse rejections,
 * truncation, and the perc-notes rules for recording changes.
 */
#include <errno.h>

#include "conclave/err.h"
#include "conclave/perc.h"
#include "cv_test.h"

static void test_encodings(void)
{
	struct cv_perc_ohb o = {0};
	uint8_t b[8];

	/* Empty OHB: Config 0x00 only. */
	CV_CHECK_INT(cv_perc_ohb_size(&o), 1);
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 1);
	CV_CHECK_INT(b[0], 0x00);

	/* PT only: 0||PT then Config P. */
	o = (struct cv_perc_ohb){.has_pt = true, .pt = 96};
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 2);
	CV_CHECK_MEM(b, ((uint8_t[]){0x60, 0x02}), 2);

	/* SEQ only. */
	o = (struct cv_perc_ohb){.has_seq = true, .seq = 0xabcd};
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 3);
	CV_CHECK_MEM(b, ((uint8_t[]){0xab, 0xcd, 0x01}), 3);

	/* Marker originally 1: M and B. Originally 0: M only. */
	o = (struct cv_perc_ohb){.has_marker = true, .marker = true};
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 1);
	CV_CHECK_INT(b[0], 0x0c);
	o.marker = false;
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 1);
	CV_CHECK_INT(b[0], 0x04);

	/* Everything: PT SEQ Config = 7f 00 01 0f. */
	o = (struct cv_perc_ohb){.has_pt = true,
				 .pt = 127,
				 .has_seq = true,
				 .seq = 1,
				 .has_marker = true,
				 .marker = true};
	CV_CHECK_INT(cv_perc_ohb_size(&o), 4);
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), 4);
	CV_CHECK_MEM(b, ((uint8_t[]){0x7f, 0x00, 0x01, 0x0f}), 4);
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, 3), -ENOBUFS);
	o.pt = 128;
	CV_CHECK_INT(cv_perc_ohb_write(&o, b, sizeof(b)), -EINVAL);
}

static void test_parse(void)
{
	/* Payload bytes first: the OHB is read from the end. */
	const uint8_t full[] = {0xee, 0xee, 0x7f, 0x12, 0x34, 0x0f};
	const uint8_t seq_only[] = {0xee, 0xff, 0xfe, 0x01};
	const uint8_t pt_m0[] = {0x80, 0x05, 0x06};
	struct cv_perc_ohb o;
	size_t n = 0;

	CV_CHECK_INT(cv_perc_ohb_parse(full, sizeof(full), &o, &n), 0);
	CV_CHECK_INT(n, 4);
	CV_CHECK(o.has_pt && o.pt == 127);
	CV_CHECK(o.has_seq && o.seq == 0x1234);
	CV_CHECK(o.has_marker && o.marker);

	CV_CHECK_INT(cv_perc_ohb_parse(seq_only, sizeof(seq_only), &o, &n), 0);
	CV_CHECK_INT(n, 3);
	CV_CHECK(!o.has_pt && o.has_seq && o.seq == 0xfffe && !o.has_marker);

	/* The byte before the PT octet may be anything (payload). */
	CV_CHECK_INT(cv_perc_ohb_parse(pt_m0, sizeof(pt_m0), &o, &n), 0);
	CV_CHECK_INT(n, 2);
	CV_CHECK(o.has_pt && o.pt == 5 && o.has_marker && !o.marker);

	/* Empty input. */
	CV_CHECK_INT(cv_perc_ohb_parse(full, 0, &o, &n), CV_EPARSE);
	/* Reserved bits, each of them. */
	for (int bit = 4; bit < 8; bit++) {
		uint8_t c = (uint8_t)(1u << bit);
		CV_CHECK_INT(cv_perc_ohb_parse(&c, 1, &o, &n), CV_EPARSE);
	}
	/* B without M (perc-notes reading of "C & 0x0C"). */
	{
		uint8_t c = 0x08;
		CV_CHECK_INT(cv_perc_ohb_parse(&c, 1, &o, &n), CV_EPARSE);
		c = 0x0c;
		CV_CHECK_INT(cv_perc_ohb_parse(&c, 1, &o, &n), 0);
	}
	/* PT octet with its top bit set. */
	{
		const uint8_t b[] = {0x80, 0x02};
		CV_CHECK_INT(cv_perc_ohb_parse(b, 2, &o, &n), CV_EPARSE);
	}
	/* Truncation: every suffix shorter than the announced length. */
	for (size_t k = 1; k < 4; k++)
		CV_CHECK_INT(
			cv_perc_ohb_parse(full + sizeof(full) - k, k, &o, &n),
			CV_EPARSE);
	CV_CHECK_INT(cv_perc_ohb_parse(full + 2, 4, &o, &n), 0);
	for (size_t k = 1; k < 3; k++)
		CV_CHECK_INT(cv_perc_ohb_parse(seq_only + sizeof(seq_only) - k,
					       k, &o, &n),
			     CV_EPARSE);
}

/* Every Config value: either rejected or it round-trips. */
static void test_all_configs(void)
{
	for (unsigned c = 0; c < 256; c++) {
		uint8_t in[4] = {0x11, 0x22, 0x33, (uint8_t)c};
		uint8_t out[4];
		struct cv_perc_ohb o;
		size_t n = 0;
		int err = cv_perc_ohb_parse(in, 4, &o, &n);
		bool bad = (c & 0xf0) || (c & 0x0c) == 0x08;

		CV_CHECK_INT(err, bad ? CV_EPARSE : 0);
		if (err)
			continue;
		CV_CHECK_INT(cv_perc_ohb_write(&o, out, sizeof(out)), (int)n);
		CV_CHECK_MEM(out, in + 4 - n, n);
	}
}

static void test_rules(void)
{
	struct cv_perc_ohb o = {0};

	/* Same value: no change. */
	cv_perc_ohb_change_pt(&o, 96, 96);
	cv_perc_ohb_change_seq(&o, 10, 10);
	cv_perc_ohb_change_marker(&o, true, true);
	CV_CHECK(!o.has_pt && !o.has_seq && !o.has_marker);

	/* First change records the current value. */
	cv_perc_ohb_change_pt(&o, 96, 100);
	CV_CHECK(o.has_pt && o.pt == 96);
	cv_perc_ohb_change_seq(&o, 10, 7);
	CV_CHECK(o.has_seq && o.seq == 10);
	cv_perc_ohb_change_marker(&o, false, true);
	CV_CHECK(o.has_marker && !o.marker);

	/* Second change: the first original stays. */
	cv_perc_ohb_change_pt(&o, 100, 101);
	CV_CHECK(o.has_pt && o.pt == 96);
	cv_perc_ohb_change_seq(&o, 7, 3);
	CV_CHECK(o.has_seq && o.seq == 10);

	/* Same value after a change: no change either. */
	cv_perc_ohb_change_seq(&o, 3, 3);
	CV_CHECK(o.has_seq && o.seq == 10);

	/* Back to the original: the entry is dropped. */
	cv_perc_ohb_change_pt(&o, 101, 96);
	CV_CHECK(!o.has_pt);
	cv_perc_ohb_change_seq(&o, 3, 10);
	CV_CHECK(!o.has_seq);
	cv_perc_ohb_change_marker(&o, true, false);
	CV_CHECK(!o.has_marker);
	CV_CHECK_INT(cv_perc_ohb_size(&o), 1);

	/* Marker originally set, cleared then set again. */
	cv_perc_ohb_change_marker(&o, true, false);
	CV_CHECK(o.has_marker && o.marker);
	cv_perc_ohb_change_marker(&o, false, true);
	CV_CHECK(!o.has_marker);
}

int main(void)
{
	test_encodings();
	test_parse();
	test_all_configs();
	test_rules();
	return cv_test_done("test_perc_ohb");
}
