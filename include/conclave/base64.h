/*
 * Base64 and base64url (RFC 4648 sections 4 and 5).
 *
 * Encoders write a NUL-terminated string; decoders are strict: they refuse
 * characters outside the alphabet, misplaced or missing padding, and
 * non-canonical encodings (non-zero bits left over in the last character,
 * RFC 4648 section 3.5). Nothing is allocated. Thread: any (no state).
 */
#ifndef CONCLAVE_BASE64_H
#define CONCLAVE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/*
 * Characters needed to encode len bytes, without the terminating NUL:
 * padded (standard) or unpadded (url). Returns 0 on size_t overflow.
 */
size_t cv_base64_encoded_len(size_t len);
size_t cv_base64url_encoded_len(size_t len);

/* Upper bound on the bytes a decoder may produce from len characters. */
size_t cv_base64_decoded_max(size_t len);

/*
 * Encodes in[0..len) (borrowed) into out (borrowed, cap bytes including
 * the NUL). cv_base64_encode pads with '='; cv_base64url_encode uses the
 * URL-safe alphabet without padding (as JWS does, RFC 7515 section 2).
 * Writes the number of characters (NUL excluded) to *out_len if non-NULL.
 * Errors: -ENOSPC if cap is too small (out is then left untouched).
 */
int cv_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap,
		     size_t *out_len);
int cv_base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
			size_t *out_len);

/*
 * Decodes in[0..len) (borrowed, need not be NUL-terminated) into out
 * (borrowed, cap bytes) and writes the decoded length to *out_len.
 * cv_base64_decode needs the padded form (len a multiple of 4);
 * cv_base64url_decode refuses '=' and accepts unpadded input whose length
 * mod 4 is 0, 2 or 3. Whitespace is not accepted.
 * Errors: CV_EPARSE for any malformed input, -ENOSPC if the output would
 * exceed cap. On error out may hold partial data, *out_len is untouched.
 */
int cv_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		     size_t *out_len);
int cv_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
			size_t *out_len);

#endif
