/*
 * RTCP fuzz target: iterate the whole compound, read every list through
 * its accessor, expand NACKs, decode transport-cc; re-write NACK and
 * transport-cc from what was decoded and require the same result.
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/rtcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok)
{
	if (!ok)
		abort();
}

static uint16_t lost[65536 * 17 / 16];
static struct cv_rtcp_tcc_arrival arr[65536];
static struct cv_rtcp_tcc_status st[65536];
static uint8_t out[300000];

static void check_nack(const struct cv_rtcp_pkt *p)
{
	size_t n = cv_rtcp_nack_expand(p, lost, sizeof(lost) / 2);
	require(n >= p->u.nack.item_count && n <= 17 * p->u.nack.item_count);
	if (p->u.nack.item_count > 512)
		return; /* the writer is quadratic on unsorted input */
	int w = cv_rtcp_write_nack(out, sizeof(out), p->ssrc, p->media_ssrc,
				   lost, n);
	require(w > 0);
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt q;
	cv_rtcp_iter_init(&it, out, (size_t)w);
	require(cv_rtcp_iter_next(&it, &q) == 1 && q.kind == CV_RTCP_KIND_NACK);
	/* Every number written back is reported again. */
	static uint16_t again[65536 * 17 / 16];
	size_t m = cv_rtcp_nack_expand(&q, again, sizeof(again) / 2);
	require(m <= n);
	for (size_t i = 0; i < m && i < 64; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = lost[j] == again[i];
		require(found);
	}
}

static void check_tcc(const struct cv_rtcp_pkt *p)
{
	struct cv_rtcp_tcc_iter it;
	size_t n = 0, rx = 0;
	int rc;
	cv_rtcp_tcc_iter_init(&it, p);
	while ((rc = cv_rtcp_tcc_iter_next(&it, &st[n])) > 0) {
		if (st[n].symbol != CV_TCC_NOT_RECEIVED)
			arr[rx++] = (struct cv_rtcp_tcc_arrival){st[n].seq,
								 st[n].recv_us};
		n++;
	}
	/* The parse validated the packet: decoding cannot fail. */
	require(rc == 0 && n == p->u.tcc.status_count);
	if (rx == 0 || arr[0].arrival_us < 0)
		return;
	int w = cv_rtcp_write_tcc(out, sizeof(out), p->ssrc, p->media_ssrc,
				  p->u.tcc.fb_count, arr, rx);
	if (w < 0)
		return; /* e.g. a gap the delta field cannot carry */
	struct cv_rtcp_iter ci;
	struct cv_rtcp_pkt q;
	cv_rtcp_iter_init(&ci, out, (size_t)w);
	require(cv_rtcp_iter_next(&ci, &q) == 1 && q.kind == CV_RTCP_KIND_TCC);
	cv_rtcp_tcc_iter_init(&it, &q);
	size_t j = 0;
	struct cv_rtcp_tcc_status s;
	while ((rc = cv_rtcp_tcc_iter_next(&it, &s)) > 0) {
		if (s.symbol == CV_TCC_NOT_RECEIVED)
			continue;
		require(j < rx && s.seq == arr[j].seq &&
			s.recv_us == arr[j].arrival_us);
		j++;
	}
	require(rc == 0 && j == rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_rtcp_iter it;
	struct cv_rtcp_pkt p;
	int rc;

	cv_rtcp_iter_init(&it, data, size);
	while ((rc = cv_rtcp_iter_next(&it, &p)) > 0) {
		require(p.data >= data && p.data + p.len <= data + size);
		require(p.body_len + 4 <= p.len);
		switch (p.kind) {
		case CV_RTCP_KIND_SR:
		case CV_RTCP_KIND_RR: {
			struct cv_rtcp_rb rb;
			size_t n = p.kind == CV_RTCP_KIND_SR ? p.u.sr.rb_count
							     : p.u.rr.rb_count;
			for (size_t i = 0; i < n; i++)
				cv_rtcp_report_block(&p, i, &rb);
			break;
		}
		case CV_RTCP_KIND_SDES: {
			struct cv_rtcp_sdes_iter si;
			struct cv_rtcp_sdes_item item;
			cv_rtcp_sdes_iter_init(&si, &p);
			while ((rc = cv_rtcp_sdes_iter_next(&si, &item)) > 0)
				require(item.len <= 255);
			require(rc == 0);
			break;
		}
		case CV_RTCP_KIND_BYE:
			for (size_t i = 0; i < p.u.bye.ssrc_count; i++)
				(void)cv_rtcp_bye_ssrc(&p, i);
			break;
		case CV_RTCP_KIND_NACK:
			check_nack(&p);
			break;
		case CV_RTCP_KIND_TCC:
			check_tcc(&p);
			break;
		case CV_RTCP_KIND_FIR: {
			struct cv_rtcp_fir_entry e;
			for (size_t i = 0; i < p.u.fir.entry_count; i++)
				cv_rtcp_fir_entry(&p, i, &e);
			break;
		}
		case CV_RTCP_KIND_REMB:
			for (size_t i = 0; i < p.u.remb.ssrc_count; i++)
				(void)cv_rtcp_remb_ssrc(&p, i);
			break;
		default:
			break;
		}
	}
	return 0;
}
