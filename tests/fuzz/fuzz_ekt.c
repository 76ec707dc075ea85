/*
 * EKTField framing fuzz target (RFC 8870 section 4.1): find the field at
 * the end of the input; when it frames, require it to lie inside the
 * input after at least an RTP header, and a FullEKTField to re-encode to
 * the same octets from its parts.
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/perc.h"
#include "conclave/rtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_perc_ekt_field f;
	uint8_t out[CV_PERC_EKT_MAX_FIELD_BYTES];
	int w;

	if (cv_perc_ekt_field_parse(data, size, &f) != 0)
		return 0;
	require(f.len >= 1 && f.len <= size);
	require(size - f.len >= CV_RTP_HDR_MIN);
	require(f.data == data + size - f.len);
	require(f.type == data[size - 1]);
	if (f.type != CV_PERC_EKT_FULL) {
		require(f.ciphertext == NULL);
		return 0;
	}
	require(f.ciphertext == f.data);
	require(f.ciphertext_len + CV_PERC_EKT_FULL_TRAILER_BYTES == f.len);
	w = cv_perc_ekt_field_write_full(out, sizeof(out), f.ciphertext,
					 f.ciphertext_len, f.spi, f.epoch);
	require(w == (int)f.len);
	require(memcmp(out, f.data, f.len) == 0);
	return 0;
}
