/* RTCP feedback: NACK, PLI, FIR, REMB, transport-cc parse and write. */
#include <errno.h>
#include <stdlib.h>

#include "conclave/err.h"
#include "conclave/rtcp.h"
#include "cv_test.h"

static int one(const uint8_t *b, size_t len, struct cv_rtcp_pkt *p)
{
	struct cv_rtcp_iter it;
	cv_rtcp_iter_init(&it, b, len);
	int rc = cv_rtcp_iter_next(&it, p);
	if (rc != 1)
		return rc;
	struct cv_rtcp_pkt extra;
	return cv_rtcp_iter_next(&it, &extra) == 0 ? 1 : -1;
}

static void test_nack(void)
{
	static const uint8_t v[] = {0x81, 0xcd, 0x00, 0x04, 0x00, 0x00, 0x00,
				    0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x64,
				    0x00, 0x05, 0xff, 0xff, 0x80, 0x01};
	struct cv_rtcp_pkt p;
	uint16_t lost[64];

	CV_CHECK_INT(one(v, sizeof(v), &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_NACK);
	CV_CHECK_INT(p.ssrc, 1);
	CV_CHECK_INT(p.media_ssrc, 2);
	CV_CHECK_INT(p.u.nack.item_count, 2);
	size_t n = cv_rtcp_nack_expand(&p, lost, 64);
	static const uint16_t want[] = {100, 101, 103, 65535, 0, 15};
	CV_CHECK_INT(n, 6);
	CV_CHECK_MEM(lost, want, sizeof(want));
	CV_CHECK_INT(cv_rtcp_nack_expand(&p, lost, 2), 2);
	CV_CHECK_INT(cv_rtcp_nack_expand(&p, lost, 0), 0);

	/* Writer: compaction across the wrap. */
	uint8_t buf[128];
	static const uint16_t l1[] = {65530, 65531, 65535, 0, 5, 10, 30};
	int w = cv_rtcp_write_nack(buf, sizeof(buf), 1, 2, l1, 7);
	CV_CHECK_INT(w, 20);
	CV_CHECK_INT(one(buf, (size_t)w, &p), 1);
	CV_CHECK_INT(p.u.nack.item_count, 2);
	uint16_t pid, blp;
	cv_rtcp_nack_item(&p, 0, &pid, &blp);
	CV_CHECK_INT(pid, 65530);
	CV_CHECK_INT(blp, 1u << 0 | 1u << 4 | 1u << 5 | 1u << 10 | 1u << 15);
	n = cv_rtcp_nack_expand(&p, lost, 64);
	CV_CHECK_INT(n, 7);
	CV_CHECK_MEM(lost, l1, sizeof(l1));
	for (size_t cap = 0; cap < 20; cap++)
		CV_CHECK_INT(cv_rtcp_write_nack(buf, cap, 1, 2, l1, 7),
			     -ENOBUFS);

	/* Unsorted input with duplicates still reports every number. */
	static const uint16_t l2[] = {5, 3, 5, 4};
	w = cv_rtcp_write_nack(buf, sizeof(buf), 1, 2, l2, 4);
	CV_CHECK_INT(w, 20);
	CV_CHECK_INT(one(buf, (size_t)w, &p), 1);
	n = cv_rtcp_nack_expand(&p, lost, 64);
	CV_CHECK(n >= 3 && n <= 4);
	for (size_t i = 0; i < n; i++)
		CV_CHECK(lost[i] >= 3 && lost[i] <= 5);
	for (uint16_t s = 3; s <= 5; s++) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found = found || lost[i] == s;
		CV_CHECK(found);
	}
	CV_CHECK_INT(cv_rtcp_write_nack(buf, sizeof(buf), 1, 2, l2, 0),
		     -EINVAL);

	/* 17 apart starts a new item; one item covers 17 numbers. */
	uint16_t l3[18];
	for (int i = 0; i < 18; i++)
		l3[i] = (uint16_t)(65520 + i);
	w = cv_rtcp_write_nack(buf, sizeof(buf), 1, 2, l3, 18);
	CV_CHECK_INT(w, 20);
	CV_CHECK_INT(one(buf, (size_t)w, &p), 1);
	cv_rtcp_nack_item(&p, 0, &pid, &blp);
	CV_CHECK(pid == 65520 && blp == 0xffff);
	cv_rtcp_nack_item(&p, 1, &pid, &blp);
	CV_CHECK_INT(pid, 1); /* 65520 + 17, wrapped */
	CV_CHECK_INT(blp, 0);

	/* Malformed: no FCI; FCI not a whole number of items. */
	uint8_t bad[sizeof(v)];
	memcpy(bad, v, sizeof(v));
	bad[3] = 0x02;
	CV_CHECK_INT(one(bad, 12, &p), CV_EPARSE);
	memcpy(bad, v, 16);
	bad[0] |= 0x20; /* pad 2 bytes off the 4-byte FCI */
	bad[3] = 3;
	bad[15] = 2;
	CV_CHECK_INT(one(bad, 16, &p), CV_EPARSE);
	bad[15] = 4; /* pads the whole FCI away */
	CV_CHECK_INT(one(bad, 16, &p), CV_EPARSE);
	/* Unknown RTPFB format is skipped as unknown. */
	memcpy(bad, v, sizeof(v));
	bad[0] = 0x83;
	CV_CHECK_INT(one(bad, sizeof(v), &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_UNKNOWN);
	CV_CHECK_INT(p.media_ssrc, 2);
	/* Feedback shorter than its two SSRCs. */
	static const uint8_t shortfb[] = {0x81, 0xcd, 0x00, 0x01, 0, 0, 0, 1};
	CV_CHECK_INT(one(shortfb, sizeof(shortfb), &p), CV_EPARSE);
}

static void test_pli_fir(void)
{
	uint8_t buf[64];
	struct cv_rtcp_pkt p;

	int w = cv_rtcp_write_pli(buf, sizeof(buf), 0x11, 0x22);
	CV_CHECK_INT(w, 12);
	CV_CHECK_MEM(buf, "\x81\xce\x00\x02\x00\x00\x00\x11\x00\x00\x00\x22",
		     12);
	CV_CHECK_INT(one(buf, 12, &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_PLI);
	CV_CHECK_INT(p.ssrc, 0x11);
	CV_CHECK_INT(p.media_ssrc, 0x22);
	CV_CHECK_INT(cv_rtcp_write_pli(buf, 11, 1, 2), -ENOBUFS);

	static const uint8_t fir[] = {0x84, 0xce, 0x00, 0x06, 0x00, 0x00, 0x00,
				      0x11, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0b,
				      0x0c, 0x0d, 0x07, 0x00, 0x00, 0x00, 0x01,
				      0x02, 0x03, 0x04, 0xff, 0x00, 0x00, 0x00};
	CV_CHECK_INT(one(fir, sizeof(fir), &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_FIR);
	CV_CHECK_INT(p.u.fir.entry_count, 2);
	struct cv_rtcp_fir_entry e;
	cv_rtcp_fir_entry(&p, 0, &e);
	CV_CHECK(e.ssrc == 0x0a0b0c0d && e.seq == 7);
	cv_rtcp_fir_entry(&p, 1, &e);
	CV_CHECK(e.ssrc == 0x01020304 && e.seq == 255);
	struct cv_rtcp_fir_entry es[2] = {{0x0a0b0c0d, 7}, {0x01020304, 255}};
	w = cv_rtcp_write_fir(buf, sizeof(buf), 0x11, es, 2);
	CV_CHECK_INT(w, sizeof(fir));
	CV_CHECK_MEM(buf, fir, sizeof(fir));
	for (size_t cap = 0; cap < sizeof(fir); cap++)
		CV_CHECK_INT(cv_rtcp_write_fir(buf, cap, 0x11, es, 2),
			     -ENOBUFS);
	CV_CHECK_INT(cv_rtcp_write_fir(buf, sizeof(buf), 0x11, es, 0), -EINVAL);
	/* FIR with half an entry, or none. */
	memcpy(buf, fir, 20);
	buf[3] = 0x03;
	CV_CHECK_INT(one(buf, 16, &p), CV_EPARSE);
	buf[3] = 0x02;
	CV_CHECK_INT(one(buf, 12, &p), CV_EPARSE);
}

static void test_remb(void)
{
	static const uint8_t v[] = {0x8f, 0xce, 0x00, 0x05, 0x00, 0x00,
				    0x00, 0x11, 0x00, 0x00, 0x00, 0x00,
				    'R',  'E',	'M',  'B',  0x01, 0x0b,
				    0xd0, 0x90, 0x0a, 0x0b, 0x0c, 0x0d};
	uint8_t buf[64];
	struct cv_rtcp_pkt p;

	CV_CHECK_INT(one(v, sizeof(v), &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_REMB);
	CV_CHECK(p.u.remb.bitrate_bps == 1000000);
	CV_CHECK_INT(p.u.remb.ssrc_count, 1);
	CV_CHECK_INT(cv_rtcp_remb_ssrc(&p, 0), 0x0a0b0c0d);
	uint32_t ssrc = 0x0a0b0c0d;
	int w = cv_rtcp_write_remb(buf, sizeof(buf), 0x11, 1000000, &ssrc, 1);
	CV_CHECK_INT(w, sizeof(v));
	CV_CHECK_MEM(buf, v, sizeof(v));
	for (size_t cap = 0; cap < sizeof(v); cap++)
		CV_CHECK_INT(cv_rtcp_write_remb(buf, cap, 0x11, 1, &ssrc, 1),
			     -ENOBUFS);

	/* Rounding down to 18 bits of mantissa; huge values saturate. */
	static const uint64_t rates[] = {0,	 1,	    262143,    262144,
					 262145, 123456789, 1ull << 40};
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		w = cv_rtcp_write_remb(buf, sizeof(buf), 1, rates[i], NULL, 0);
		CV_CHECK_INT(w, 20);
		CV_CHECK_INT(one(buf, (size_t)w, &p), 1);
		CV_CHECK(p.u.remb.bitrate_bps <= rates[i]);
		CV_CHECK(p.u.remb.bitrate_bps >= rates[i] - rates[i] / 131072);
	}
	memcpy(buf, v, sizeof(v));
	buf[17] = 0xff; /* exp 63 */
	CV_CHECK_INT(one(buf, sizeof(v), &p), 1);
	CV_CHECK(p.u.remb.bitrate_bps == UINT64_MAX);
	/* More SSRCs than present. */
	memcpy(buf, v, sizeof(v));
	buf[16] = 2;
	CV_CHECK_INT(one(buf, sizeof(v), &p), CV_EPARSE);
	/* Another application-layer feedback: unknown. */
	memcpy(buf, v, sizeof(v));
	buf[12] = 'X';
	CV_CHECK_INT(one(buf, sizeof(v), &p), 1);
	CV_CHECK_INT(p.kind, CV_RTCP_KIND_UNKNOWN);
}

static int tcc_all(const uint8_t *b, size_t len, struct cv_rtcp_tcc_status *st,
		   size_t cap, size_t *n)
{
	struct cv_rtcp_pkt p;
	int rc = one(b, len, &p);
	if (rc != 1)
		return rc;
	if (p.kind != CV_RTCP_KIND_TCC)
		return -1;
	struct cv_rtcp_tcc_iter it;
	cv_rtcp_tcc_iter_init(&it, &p);
	*n = 0;
	while (*n < cap && (rc = cv_rtcp_tcc_iter_next(&it, &st[*n])) > 0)
		(*n)++;
	return rc;
}

static void test_tcc_decode(void)
{
	struct cv_rtcp_tcc_status st[32];
	struct cv_rtcp_pkt p;
	size_t n;

	/* Run-length chunk: 5 small deltas. */
	static const uint8_t run[] = {0x8f, 0xcd, 0x00, 0x06, 0x00, 0x00, 0x00,
				      0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x0a,
				      0x00, 0x05, 0x00, 0x00, 0x01, 0x03, 0x20,
				      0x05, 0x04, 0x08, 0x00, 0xff, 0x01, 0x00};
	CV_CHECK_INT(one(run, sizeof(run), &p), 1);
	CV_CHECK_INT(p.u.tcc.base_seq, 10);
	CV_CHECK_INT(p.u.tcc.status_count, 5);
	CV_CHECK_INT(p.u.tcc.ref_time, 1);
	CV_CHECK_INT(p.u.tcc.fb_count, 3);
	CV_CHECK_INT(p.u.tcc.chunk_count, 1);
	CV_CHECK_INT(p.u.tcc.deltas_len, 5);
	CV_CHECK_INT(tcc_all(run, sizeof(run), st, 32, &n), 0);
	CV_CHECK_INT(n, 5);
	static const int64_t t_run[] = {65000, 67000, 67000, 130750, 131000};
	for (size_t i = 0; i < 5; i++) {
		CV_CHECK_INT(st[i].seq, 10 + i);
		CV_CHECK_INT(st[i].symbol, CV_TCC_SMALL_DELTA);
		CV_CHECK_INT(st[i].recv_us, t_run[i]);
	}

	/* One-bit status vector across the seq wrap, negative reference. */
	static const uint8_t vec1[] = {
		0x8f, 0xcd, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x02, 0xff, 0xfe, 0x00, 0x0e, 0xff, 0xff, 0xff, 0x00,
		0xac, 0x01, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00};
	CV_CHECK_INT(tcc_all(vec1, sizeof(vec1), st, 32, &n), 0);
	CV_CHECK_INT(n, 14);
	CV_CHECK_INT(st[0].seq, 0xfffe);
	CV_CHECK_INT(st[0].symbol, CV_TCC_SMALL_DELTA);
	CV_CHECK_INT(st[0].recv_us, -64000 + 250);
	CV_CHECK_INT(st[1].symbol, CV_TCC_NOT_RECEIVED);
	CV_CHECK_INT(st[2].seq, 0);
	CV_CHECK_INT(st[2].recv_us, -64000 + 750);
	CV_CHECK_INT(st[3].recv_us, -64000 + 1500);
	for (size_t i = 4; i < 13; i++)
		CV_CHECK_INT(st[i].symbol, CV_TCC_NOT_RECEIVED);
	CV_CHECK_INT(st[13].seq, 11);
	CV_CHECK_INT(st[13].recv_us, -64000 + 2500);

	/* Two-bit status vector: large negative, small, gap, large. */
	static const uint8_t vec2[] = {
		0x8f, 0xcd, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x02, 0x00, 0x64, 0x00, 0x05, 0x00, 0x00, 0x10, 0x00,
		0xe4, 0x90, 0xff, 0xfc, 0x0a, 0x03, 0xe8, 0x05};
	CV_CHECK_INT(tcc_all(vec2, sizeof(vec2), st, 32, &n), 0);
	CV_CHECK_INT(n, 5);
	CV_CHECK_INT(st[0].symbol, CV_TCC_LARGE_DELTA);
	CV_CHECK_INT(st[0].delta_250us, -4);
	CV_CHECK_INT(st[0].recv_us, 16 * 64000 - 1000);
	CV_CHECK_INT(st[1].delta_250us, 10);
	CV_CHECK_INT(st[2].symbol, CV_TCC_NOT_RECEIVED);
	CV_CHECK_INT(st[3].delta_250us, 1000);
	CV_CHECK_INT(st[4].seq, 104);
	CV_CHECK_INT(st[4].recv_us, 16 * 64000 + 250 * (-4 + 10 + 1000 + 5));

	/* Truncation at every length of each vector. */
	const uint8_t *vecs[] = {run, vec1, vec2};
	for (size_t v = 0; v < 3; v++) {
		uint8_t buf[28];
		for (size_t l = 0; l < 28; l++) {
			memcpy(buf, vecs[v], 28);
			CV_CHECK_INT(one(buf, l, &p), CV_EPARSE);
			/* Fix the length field to the cut: still safe. */
			if (l >= 4 && l % 4 == 0) {
				buf[3] = (uint8_t)(l / 4 - 1);
				int rc = one(buf, l, &p);
				CV_CHECK(rc == CV_EPARSE || l >= 24);
			}
		}
	}

	/* Reserved symbols, status count beyond the chunks, few deltas. */
	uint8_t bad[28];
	memcpy(bad, run, 28);
	bad[20] = 0x60; /* run of symbol 3 */
	CV_CHECK_INT(one(bad, 28, &p), CV_EPARSE);
	memcpy(bad, vec2, 28);
	bad[21] = 0xb0; /* 5th symbol = 3, within the count */
	CV_CHECK_INT(one(bad, 28, &p), CV_EPARSE);
	memcpy(bad, vec2, 28);
	bad[21] = 0x93; /* 7th symbol = 3, beyond the count: ignored */
	CV_CHECK_INT(one(bad, 28, &p), 1);
	memcpy(bad, run, 28);
	/* 6 statuses: the run covers 5, then 0x0408 (a run of lost) is
	 * read as a chunk and the deltas no longer fit. */
	bad[15] = 0x06;
	CV_CHECK_INT(one(bad, 28, &p), CV_EPARSE);
	memcpy(bad, run, 28);
	bad[15] = 0x06;
	bad[22] = 0x20; /* 0x2008: 8 more small deltas: not enough bytes */
	CV_CHECK_INT(one(bad, 28, &p), CV_EPARSE);
	memcpy(bad, run, 28);
	bad[15] = 0x08;
	bad[21] = 0x08; /* run of 8 small deltas, only 6 bytes */
	CV_CHECK_INT(one(bad, 28, &p), CV_EPARSE);
	memcpy(bad, run, 28);
	bad[3] = 0x03; /* no room for the fixed part */
	CV_CHECK_INT(one(bad, 16, &p), CV_EPARSE);
	/* A zero status count is valid and empty. */
	memcpy(bad, run, 28);
	bad[15] = 0;
	CV_CHECK_INT(tcc_all(bad, 28, st, 32, &n), 0);
	CV_CHECK_INT(n, 0);
}

/* Writes, parses back and checks every status against the input. */
static int tcc_roundtrip(const struct cv_rtcp_tcc_arrival *a, size_t n,
			 size_t *bytes)
{
	static uint8_t buf[70000];
	static struct cv_rtcp_tcc_status st[65536];
	int w = cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 9, a, n);
	if (w < 0)
		return w;
	*bytes = (size_t)w;
	size_t got;
	int rc = tcc_all(buf, (size_t)w, st, 65536, &got);
	if (rc != 0)
		return 100;
	uint16_t span = (uint16_t)(a[n - 1].seq - a[0].seq);
	if (got != (size_t)span + 1)
		return 101;
	size_t j = 0;
	for (size_t i = 0; i < got; i++) {
		if (st[i].seq != (uint16_t)(a[0].seq + i))
			return 102;
		bool rx = j < n && a[j].seq == st[i].seq;
		if (rx != (st[i].symbol != CV_TCC_NOT_RECEIVED))
			return 103;
		if (!rx)
			continue;
		int64_t err = st[i].recv_us - a[j].arrival_us;
		if (err < -125 || err > 125)
			return 104;
		j++;
	}
	return j == n ? 0 : 105;
}

static void test_tcc_write(void)
{
	static struct cv_rtcp_tcc_arrival a[4096];
	size_t bytes;

	/* 20 consecutive packets 1 ms apart: one run-length chunk. */
	for (int i = 0; i < 20; i++)
		a[i] = (struct cv_rtcp_tcc_arrival){(uint16_t)(65530 + i),
						    1000000 + 1000 * i};
	CV_CHECK_INT(tcc_roundtrip(a, 20, &bytes), 0);
	CV_CHECK_INT(bytes, 20 + 2 + 20 + 2); /* padded */

	/* Mixed: gaps, a reordered (negative) arrival, a long gap. */
	int64_t t = 5000000;
	size_t n = 0;
	uint16_t seq = 100;
	for (int i = 0; i < 60; i++, seq++) {
		if (i % 7 == 3)
			continue; /* lost */
		t += (i % 11 == 5) ? -3000 : (i % 13 == 0 ? 90000 : 700);
		a[n++] = (struct cv_rtcp_tcc_arrival){seq, t};
	}
	seq = (uint16_t)(seq + 1000);
	a[n++] = (struct cv_rtcp_tcc_arrival){seq, t + 1000};
	CV_CHECK_INT(tcc_roundtrip(a, n, &bytes), 0);

	/* One packet. */
	a[0] = (struct cv_rtcp_tcc_arrival){7, 0};
	CV_CHECK_INT(tcc_roundtrip(a, 1, &bytes), 0);
	CV_CHECK_INT(bytes, 24);

	/* Pseudo-random patterns. */
	srand(1234);
	for (int round = 0; round < 300; round++) {
		n = 1 + (size_t)(rand() % 300);
		seq = (uint16_t)rand();
		t = (int64_t)(rand() % 100000000);
		for (size_t i = 0; i < n; i++) {
			a[i] = (struct cv_rtcp_tcc_arrival){seq, t};
			seq = (uint16_t)(seq + 1 +
					 (rand() % 4 == 0 ? rand() % 40 : 0));
			t += rand() % 3 == 0 ? rand() % 100000 - 20000
					     : rand() % 20000;
			if (t < 0)
				t = 0;
		}
		int rc = tcc_roundtrip(a, n, &bytes);
		CV_CHECK_INT(rc, 0);
		if (rc)
			break;
	}

	/* Errors: out of order, duplicate, too long an interval, empty. */
	uint8_t buf[256];
	a[0] = (struct cv_rtcp_tcc_arrival){10, 0};
	a[1] = (struct cv_rtcp_tcc_arrival){9, 100};
	CV_CHECK_INT(cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 0, a, 2),
		     -EINVAL);
	a[1].seq = 10;
	CV_CHECK_INT(cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 0, a, 2),
		     -EINVAL);
	a[1] = (struct cv_rtcp_tcc_arrival){11, 9000000};
	CV_CHECK_INT(cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 0, a, 2),
		     -EINVAL);
	a[1].arrival_us = 8000000; /* 32000 units: fits */
	CV_CHECK_INT(cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 0, a, 2), 28);
	CV_CHECK_INT(cv_rtcp_write_tcc(buf, sizeof(buf), 1, 2, 0, a, 0),
		     -EINVAL);
	for (size_t cap = 0; cap < 28; cap++)
		CV_CHECK_INT(cv_rtcp_write_tcc(buf, cap, 1, 2, 0, a, 2),
			     -ENOBUFS);
}

int main(void)
{
	test_nack();
	test_pli_fir();
	test_remb();
	test_tcc_decode();
	test_tcc_write();
	return cv_test_done("test_rtcp_fb");
}
