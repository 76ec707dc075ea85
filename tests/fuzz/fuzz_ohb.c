/*
 * OHB fuzz target (RFC 8723 section 4): parse the block at the end of the
 * input; when it parses, re-encode it and require the same octets; then
 * apply the change rules with values from the input and require that the
 * original each field restores to never changes.
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/perc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_perc_ohb o;
	uint8_t out[CV_PERC_OHB_MAX_BYTES];
	size_t n = 0;
	uint8_t cur_pt, orig_pt;
	uint16_t cur_seq, orig_seq;
	bool cur_m, orig_m, canonical;

	if (cv_perc_ohb_parse(data, size, &o, &n) != 0)
		return 0;
	require(n >= 1 && n <= size && n == cv_perc_ohb_size(&o));
	require(cv_perc_ohb_write(&o, out, sizeof(out)) == (int)n);
	require(memcmp(out, data + size - n, n) == 0);

	/* Current header values: the first octets of the input. */
	cur_pt = size > 0 ? data[0] & 0x7f : 0;
	cur_seq = size > 2 ? (uint16_t)(data[1] << 8 | data[2]) : 0;
	cur_m = size > 3 && (data[3] & 1);
	orig_pt = o.has_pt ? o.pt : cur_pt;
	orig_seq = o.has_seq ? o.seq : cur_seq;
	orig_m = o.has_marker ? o.marker : cur_m;
	/* Receivers accept an entry equal to the current value (perc-notes);
	 * a block without one stays so through any chain of changes. */
	canonical = (!o.has_pt || o.pt != cur_pt) &&
		    (!o.has_seq || o.seq != cur_seq) &&
		    (!o.has_marker || o.marker != cur_m);
	/* A chain of changes, 4 octets each: new PT, new SEQ, new marker. */
	for (size_t i = 4; i + 4 <= size - n; i += 4) {
		uint8_t npt = data[i] & 0x7f;
		uint16_t nseq = (uint16_t)(data[i + 1] << 8 | data[i + 2]);
		bool nm = data[i + 3] & 1;

		cv_perc_ohb_change_pt(&o, cur_pt, npt);
		cv_perc_ohb_change_seq(&o, cur_seq, nseq);
		cv_perc_ohb_change_marker(&o, cur_m, nm);
		cur_pt = npt;
		cur_seq = nseq;
		cur_m = nm;
		require((o.has_pt ? o.pt : cur_pt) == orig_pt);
		require((o.has_seq ? o.seq : cur_seq) == orig_seq);
		require((o.has_marker ? o.marker : cur_m) == orig_m);
		if (canonical) {
			require(!o.has_pt || o.pt != cur_pt);
			require(!o.has_seq || o.seq != cur_seq);
			require(!o.has_marker || o.marker != cur_m);
		}
		n = cv_perc_ohb_size(&o);
		require(cv_perc_ohb_write(&o, out, sizeof(out)) == (int)n);
	}
	return 0;
}
