/*
 * The client's pure media parts: VP8 shaping and its parser (with
 * truncation at every length), the padding send stamp, the delay
 * histogram and sequence continuity.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_priv.h"
#include "conclave/err.h"
#include "cv_test.h"

static void test_vp8_shape(void)
{
	CV_CHECK_INT(cv_client_vp8_packets(0, 1100), 1);
	CV_CHECK_INT(cv_client_vp8_packets(1096, 1100), 1);
	CV_CHECK_INT(cv_client_vp8_packets(1097, 1100), 2);
	CV_CHECK_INT(cv_client_vp8_packets(100, 4), 0);

	struct cv_client_vp8_frame f = {.bytes = 3000,
					.keyframe = true,
					.picture_id = 0x1234,
					.width = 640,
					.height = 360};
	size_t count = cv_client_vp8_packets(f.bytes, 1100);
	CV_CHECK_INT(count, 3);
	size_t total = 0;
	for (size_t i = 0; i < count; i++) {
		uint8_t p[1100];
		int n = cv_client_vp8_write(p, sizeof(p), &f, i, 1100);
		CV_CHECK(n > CV_CLIENT_VP8_DESC_BYTES);
		if (n <= 0)
			continue;
		total += (size_t)n - CV_CLIENT_VP8_DESC_BYTES;
		struct cv_client_vp8_info v;
		CV_CHECK_INT(cv_client_vp8_parse(p, (size_t)n, &v), 0);
		CV_CHECK_INT(v.start, i == 0);
		CV_CHECK_INT(v.keyframe, i == 0);
		CV_CHECK(v.has_picture_id);
		CV_CHECK_INT(v.picture_id, 0x1234);
		CV_CHECK_INT(v.desc_len, 4);
		if (i == 0) {
			/* RFC 6386 9.1: start code, 14-bit width. */
			CV_CHECK_INT(p[4] & 1, 0);
			CV_CHECK_INT(p[7], 0x9d);
			CV_CHECK_INT(p[8], 0x01);
			CV_CHECK_INT(p[9], 0x2a);
			CV_CHECK_INT(p[10] | (p[11] & 0x3f) << 8, 640);
		}
	}
	CV_CHECK_INT(total, 3000);
	uint8_t p[1100];
	CV_CHECK_INT(cv_client_vp8_write(p, sizeof(p), &f, 3, 1100), -EINVAL);
	CV_CHECK_INT(cv_client_vp8_write(p, 10, &f, 0, 1100), -ENOBUFS);

	f.keyframe = false;
	int n = cv_client_vp8_write(p, sizeof(p), &f, 0, 1100);
	struct cv_client_vp8_info v;
	CV_CHECK_INT(cv_client_vp8_parse(p, (size_t)n, &v), 0);
	CV_CHECK(v.start && !v.keyframe);
}

static void test_vp8_parse_malformed(void)
{
	/* X, I, M: 15-bit picture id, then the frame tag. */
	const uint8_t full[] = {0x90, 0x80, 0x81, 0x02, 0x10, 0x00, 0x00};
	struct cv_client_vp8_info v;
	CV_CHECK_INT(cv_client_vp8_parse(full, sizeof(full), &v), 0);
	CV_CHECK(v.keyframe);
	CV_CHECK_INT(v.picture_id, 0x102);
	/* Truncation at every length before the frame tag fails. */
	for (size_t len = 0; len < 5; len++)
		CV_CHECK_INT(cv_client_vp8_parse(full, len, &v), CV_EPARSE);
	/* 7-bit picture id, L, T/K fields. */
	const uint8_t lt[] = {0x90, 0xf0, 0x05, 0x11, 0x22, 0x01};
	CV_CHECK_INT(cv_client_vp8_parse(lt, sizeof(lt), &v), 0);
	CV_CHECK_INT(v.picture_id, 5);
	CV_CHECK_INT(v.desc_len, 5);
	CV_CHECK(v.start && !v.keyframe);
	for (size_t len = 0; len < sizeof(lt); len++)
		CV_CHECK_INT(cv_client_vp8_parse(lt, len, &v), CV_EPARSE);
	/* Not a start packet: no frame tag needed. */
	const uint8_t cont[] = {0x00};
	CV_CHECK_INT(cv_client_vp8_parse(cont, 1, &v), 0);
	CV_CHECK(!v.start);
	/* PartID != 0 is not a frame start. */
	const uint8_t part[] = {0x13, 0x00};
	CV_CHECK_INT(cv_client_vp8_parse(part, 2, &v), 0);
	CV_CHECK(!v.start);
	/* Every byte value as a one-byte payload: never crashes. */
	for (unsigned b = 0; b < 256; b++) {
		uint8_t one = (uint8_t)b;
		cv_client_vp8_parse(&one, 1, &v);
	}
}

static void test_stamp(void)
{
	uint8_t pkt[64];
	struct cv_rtp_hdr h = {.padding = true, .pt = 111, .seq = 1, .ssrc = 7};
	int n = cv_rtp_write_header(pkt, sizeof(pkt), &h, NULL, 0);
	CV_CHECK_INT(n, 12);
	memcpy(pkt + n, "abcd", 4);
	cv_client_stamp_put(pkt + n + 4, 0x0102030405060708ull);
	size_t len = (size_t)n + 4 + CV_CLIENT_STAMP_BYTES;
	struct cv_rtp_hdr p;
	CV_CHECK_INT(cv_rtp_parse(pkt, len, &p), 0);
	CV_CHECK_INT(p.payload_len, 4);
	uint64_t us = 0;
	CV_CHECK_INT(cv_client_stamp_read(&p, pkt, len, &us), 0);
	CV_CHECK(us == 0x0102030405060708ull);
	/* Wrong magic or no padding: no stamp. */
	pkt[n + 4] = 'x';
	CV_CHECK_INT(cv_client_stamp_read(&p, pkt, len, &us), -ENOENT);
	p.padding = false;
	CV_CHECK_INT(cv_client_stamp_read(&p, pkt, len, &us), -ENOENT);
}

static void test_hist(void)
{
	struct cv_client_hist *h = calloc(1, sizeof(*h));
	CV_CHECK_INT(cv_client_hist_quantile(h, 0.5), 0);
	for (uint32_t v = 1; v <= 10000; v++)
		cv_client_hist_add(h, v);
	CV_CHECK_INT(h->n, 10000);
	CV_CHECK_INT(h->max, 10000);
	uint32_t p50 = cv_client_hist_quantile(h, 0.50);
	uint32_t p99 = cv_client_hist_quantile(h, 0.99);
	CV_CHECK(p50 > 5000 * 0.96 && p50 < 5000 * 1.04);
	CV_CHECK(p99 > 9900 * 0.96 && p99 <= 10000);
	CV_CHECK_INT(cv_client_hist_quantile(h, 1.0), 10000);
	/* Small values are exact. */
	memset(h, 0, sizeof(*h));
	for (int i = 0; i < 100; i++)
		cv_client_hist_add(h, 42);
	CV_CHECK_INT(cv_client_hist_quantile(h, 0.5), 42);
	/* Huge values land in the last buckets. */
	cv_client_hist_add(h, UINT32_MAX);
	CV_CHECK_INT(cv_client_hist_quantile(h, 1.0), UINT32_MAX);
	free(h);
}

static void test_seq(void)
{
	struct cv_client_seq s = {0};
	uint32_t gap;
	uint64_t ext;
	CV_CHECK_INT(cv_client_seq_update(&s, 65534, &gap, &ext),
		     CV_CLIENT_SEQ_FIRST);
	CV_CHECK_INT(cv_client_seq_update(&s, 65535, &gap, &ext),
		     CV_CLIENT_SEQ_NEXT);
	/* Wrap, then a gap of two (1, 2 missing). */
	CV_CHECK_INT(cv_client_seq_update(&s, 0, &gap, &ext),
		     CV_CLIENT_SEQ_NEXT);
	CV_CHECK_INT(cv_client_seq_update(&s, 3, &gap, &ext),
		     CV_CLIENT_SEQ_GAP);
	CV_CHECK_INT(gap, 2);
	CV_CHECK_INT(cv_client_seq_expected(&s), 6);
	CV_CHECK_INT(cv_client_seq_lost(&s), 2);
	/* 1 arrives late, then twice. */
	CV_CHECK_INT(cv_client_seq_update(&s, 1, &gap, &ext),
		     CV_CLIENT_SEQ_LATE);
	CV_CHECK_INT(cv_client_seq_update(&s, 1, &gap, &ext),
		     CV_CLIENT_SEQ_DUP);
	CV_CHECK_INT(cv_client_seq_update(&s, 3, &gap, &ext),
		     CV_CLIENT_SEQ_DUP);
	CV_CHECK_INT(s.duplicates, 2);
	CV_CHECK_INT(s.out_of_order, 1);
	CV_CHECK_INT(cv_client_seq_lost(&s), 1);
	/* Before the first packet: widens the span. */
	CV_CHECK_INT(cv_client_seq_update(&s, 65533, &gap, &ext),
		     CV_CLIENT_SEQ_LATE);
	CV_CHECK_INT(cv_client_seq_expected(&s), 7);
	CV_CHECK_INT(cv_client_seq_lost(&s), 1);
	/* A jump beyond the window; the old ones are then too old. */
	CV_CHECK_INT(cv_client_seq_update(&s, 3 + 2000, &gap, &ext),
		     CV_CLIENT_SEQ_GAP);
	CV_CHECK_INT(gap, 1999);
	CV_CHECK_INT(cv_client_seq_update(&s, 2, &gap, &ext),
		     CV_CLIENT_SEQ_TOO_OLD);
	CV_CHECK(!cv_client_seq_seen(&s, ext - 5000));
	/* 10000 in-order packets: no loss from the window wrapping. */
	struct cv_client_seq t = {0};
	for (uint32_t i = 0; i < 100000; i++)
		cv_client_seq_update(&t, (uint16_t)(i * 1), &gap, &ext);
	CV_CHECK_INT(t.received, 100000);
	CV_CHECK_INT(cv_client_seq_lost(&t), 0);
	CV_CHECK_INT(t.duplicates, 0);
}

int main(void)
{
	test_vp8_shape();
	test_vp8_parse_malformed();
	test_stamp();
	test_hist();
	test_seq();
	return cv_test_done("test_client_media");
}
