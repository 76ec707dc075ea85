/*
 * Base64 / base64url, RFC 4648. Decoding is table driven and strict: the
 * token verifier relies on one canonical encoding per byte string.
 */
#include "conclave/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "conclave/err.h"

static const char std_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cv_base64_encoded_len(size_t len)
{
	if (len > (SIZE_MAX - 2) / 4 * 3)
		return 0;
	return (len + 2) / 3 * 4;
}

size_t cv_base64url_encoded_len(size_t len)
{
	if (len > (SIZE_MAX - 2) / 4 * 3)
		return 0;
	return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

size_t cv_base64_decoded_max(size_t len)
{
	return len / 4 * 3 + (len % 4) * 3 / 4;
}

static int encode(const uint8_t *in, size_t len, char *out, size_t cap,
		  size_t *out_len, const char *alpha, bool pad)
{
	size_t need = pad ? cv_base64_encoded_len(len)
			  : cv_base64url_encoded_len(len);
	if ((need == 0 && len != 0) || need >= cap)
		return -ENOSPC;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];
		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		out[o++] = alpha[v >> 6 & 63];
		out[o++] = alpha[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		out[o++] = alpha[v >> 6 & 63];
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return 0;
}

int cv_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap,
		     size_t *out_len)
{
	return encode(in, len, out, cap, out_len, std_alphabet, true);
}

int cv_base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
			size_t *out_len)
{
	return encode(in, len, out, cap, out_len, url_alphabet, false);
}

/* Value of one alphabet character, or -1. */
static int sextet(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/*
 * Decodes n (2..4) data characters of the last or a full quantum. RFC 4648
 * section 3.5: the pad bits of a partial quantum must be zero, else the
 * encoding is not canonical and is refused.
 */
static int decode_quantum(const char *q, size_t n, bool url, uint8_t *dst)
{
	uint32_t v = 0;
	for (size_t k = 0; k < 4; k++) {
		int s = 0;
		if (k < n) {
			s = sextet((unsigned char)q[k], url);
			if (s < 0)
				return CV_EPARSE;
		}
		v = v << 6 | (uint32_t)s;
	}
	if ((n == 2 && (v & 0xffff)) || (n == 3 && (v & 0xff)))
		return CV_EPARSE;
	dst[0] = (uint8_t)(v >> 16);
	if (n > 2)
		dst[1] = (uint8_t)(v >> 8);
	if (n > 3)
		dst[2] = (uint8_t)v;
	return 0;
}

static int decode(const char *in, size_t len, uint8_t *out, size_t cap,
		  size_t *out_len, bool url)
{
	size_t data = len;
	if (!url) {
		/* RFC 4648 section 4: padded to a multiple of 4, at most
		 * two '=' and only at the very end. */
		if (len % 4)
			return CV_EPARSE;
		if (data && in[data - 1] == '=')
			data--;
		if (data && in[data - 1] == '=')
			data--;
	}
	if (data % 4 == 1)
		return CV_EPARSE;
	size_t n_out = data / 4 * 3 + (data % 4 ? data % 4 - 1 : 0);
	if (n_out > cap)
		return -ENOSPC;
	size_t i = 0, o = 0;
	for (; i + 4 <= data; i += 4, o += 3) {
		int rc = decode_quantum(in + i, 4, url, out + o);
		if (rc)
			return rc;
	}
	if (data - i) {
		int rc = decode_quantum(in + i, data - i, url, out + o);
		if (rc)
			return rc;
	}
	*out_len = n_out;
	return 0;
}

int cv_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		     size_t *out_len)
{
	return decode(in, len, out, cap, out_len, false);
}

int cv_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
			size_t *out_len)
{
	return decode(in, len, out, cap, out_len, true);
}
