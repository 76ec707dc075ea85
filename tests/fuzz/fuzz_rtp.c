/*
 * RTP parser fuzz target: parse; walk the extensions through every typed
 * reader; when the parse succeeds, re-write the header (raw and rebuilt
 * from the elements), re-parse and require agreement; strip and rewrite
 * in place on copies.
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/rtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ELEMS 256

static void require(bool ok)
{
	if (!ok)
		abort();
}

static bool same_fields(const struct cv_rtp_hdr *a, const struct cv_rtp_hdr *b)
{
	return a->padding == b->padding && a->extension == b->extension &&
	       a->marker == b->marker && a->csrc_count == b->csrc_count &&
	       a->pt == b->pt && a->seq == b->seq && a->ts == b->ts &&
	       a->ssrc == b->ssrc &&
	       memcmp(a->csrc, b->csrc, 4u * a->csrc_count) == 0 &&
	       a->payload_len == b->payload_len && a->pad_len == b->pad_len;
}

static void typed(const struct cv_rtp_ext_elem *e)
{
	const char *s;
	size_t sl;
	uint32_t a24;
	uint16_t seq;
	bool v;
	uint8_t lvl;

	if (cv_rtp_ext_read_mid(e, &s, &sl) == 0)
		require(sl == e->len);
	if (cv_rtp_ext_read_rid(e, &s, &sl) == 0)
		require(sl == e->len);
	if (cv_rtp_ext_read_abs_send_time(e, &a24) == 0)
		require(a24 <= 0xffffff);
	(void)cv_rtp_ext_read_tw_seq(e, &seq);
	if (cv_rtp_ext_read_audio_level(e, &v, &lvl) == 0)
		require(lvl <= 127);
}

/* Rebuilds the block from its elements and checks they come back. */
static void rebuild(const struct cv_rtp_hdr *h,
		    const struct cv_rtp_ext_elem *el, size_t n)
{
	size_t cap = h->hdr_len + 4 + 2 * n + n * 256 + 4;
	uint8_t *buf = malloc(cap);
	require(buf != NULL);
	struct cv_rtp_hdr bare = *h, h2;
	bare.padding = false; /* header only: no padding to append */
	int w = cv_rtp_write_header(buf, cap, &bare, el, n);
	require(w > 0);
	require(cv_rtp_parse(buf, (size_t)w, &h2) == 0);
	require(h2.extension && h2.seq == h->seq && h2.ts == h->ts &&
		h2.ssrc == h->ssrc && h2.pt == h->pt &&
		h2.csrc_count == h->csrc_count && h2.payload_len == 0);
	struct cv_rtp_ext_iter it;
	struct cv_rtp_ext_elem e;
	size_t i = 0;
	cv_rtp_ext_iter_init(&it, &h2);
	while (cv_rtp_ext_iter_next(&it, &e) > 0) {
		require(i < n && e.id == el[i].id && e.len == el[i].len &&
			memcmp(e.data, el[i].data, e.len) == 0);
		i++;
	}
	require(i == n);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_rtp_hdr h, h2;
	struct cv_rtp_ext_elem el[MAX_ELEMS];
	size_t n = 0;
	int rc;

	(void)cv_rtp_is_rtcp(data, size);
	if (cv_rtp_parse(data, size, &h) != 0)
		return 0;
	require(h.hdr_len + h.payload_len + h.pad_len == size);
	require(h.payload == data + h.hdr_len);

	struct cv_rtp_ext_iter it;
	cv_rtp_ext_iter_init(&it, &h);
	while (n < MAX_ELEMS && (rc = cv_rtp_ext_iter_next(&it, &el[n])) > 0) {
		require(el[n].data >= h.ext &&
			el[n].data + el[n].len <= h.ext + h.ext_len);
		typed(&el[n]);
		n++;
	}
	bool ext_ok = rc == 0 && n < MAX_ELEMS;
	if (n > 0) {
		struct cv_rtp_ext_elem f;
		require(cv_rtp_ext_find(&h, el[0].id, &f) == 0 &&
			f.data == el[0].data);
	}

	/* Raw re-write of the header: byte-identical packet. */
	uint8_t *buf = malloc(size);
	require(buf != NULL);
	int w = cv_rtp_write_header(buf, size, &h, NULL, 0);
	require(w == (int)h.hdr_len);
	memcpy(buf + w, data + w, size - (size_t)w);
	require(memcmp(buf, data, size) == 0);
	require(cv_rtp_parse(buf, size, &h2) == 0 && same_fields(&h, &h2));
	if (h.hdr_len > 0)
		require(cv_rtp_write_header(buf, h.hdr_len - 1, &h, NULL, 0) <
			0);

	/* In-place rewrites keep the packet parseable and equal. */
	for (size_t i = 0; i < n; i++) {
		/* el[i] may be behind an earlier element with the same id. */
		struct cv_rtp_ext_elem f;
		require(cv_rtp_ext_find(&h2, el[i].id, &f) == 0);
		require(cv_rtp_ext_rewrite(buf, size, el[i].id, f.data,
					   f.len) == 0);
	}
	require(memcmp(buf, data, size) == 0);
	cv_rtp_set_seq(buf, (uint16_t)(h.seq + 1));
	cv_rtp_set_ts(buf, h.ts + 960);
	cv_rtp_set_ssrc(buf, ~h.ssrc);
	cv_rtp_set_pt(buf, (uint8_t)((h.pt + 1) & 0x7f));
	cv_rtp_set_marker(buf, !h.marker);
	require(cv_rtp_parse(buf, size, &h2) == 0);
	require(h2.seq == (uint16_t)(h.seq + 1) && h2.ssrc == ~h.ssrc &&
		h2.marker == !h.marker && h2.payload_len == h.payload_len);

	/* Strip: same payload and padding, no extension. */
	memcpy(buf, data, size);
	size_t len = size;
	require(cv_rtp_strip_ext(buf, &len) == 0);
	require(cv_rtp_parse(buf, len, &h2) == 0 && !h2.extension);
	require(h2.payload_len == h.payload_len && h2.pad_len == h.pad_len);
	require(memcmp(h2.payload, h.payload, h.payload_len) == 0);
	free(buf);

	if (ext_ok && n > 0)
		rebuild(&h, el, n);

	struct cv_rtp_seq s;
	cv_rtp_seq_init(&s, h.seq);
	cv_rtp_seq_update(&s, h.seq);
	cv_rtp_seq_update(&s, (uint16_t)(h.seq + 1));
	cv_rtp_seq_jitter_update(&s, h.ts, h.ssrc);
	(void)cv_rtp_seq_fraction_lost(&s);
	return 0;
}
