/*
 * Signaling parsers on arbitrary bytes: every input goes through
 * cv_msg_parse, through cv_token_verify as a compact JWS, and (so that the
 * fuzzer reaches the claims checks behind the MAC) as the payload of a
 * token we sign here with the fixed key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/base64.h"
#include "conclave/msg.h"
#include "conclave/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[] = "conclave-fuzz-key";
#define KEY_LEN (sizeof(key) - 1)
#define NOW	INT64_C(1700000000)

static void fuzz_msg(const uint8_t *data, size_t size)
{
	struct cv_msg m;
	const char *code = NULL;
	if (cv_msg_parse((const char *)data, size, &m, &code) != 0) {
		free(cv_msg_error(m.id, code, "invalid message"));
		return;
	}
	if (m.type == CV_MSG_JOIN) {
		struct cv_msg_participant p = {m.join.room, m.join.name};
		free(cv_msg_participant_joined(&p));
	}
	cv_msg_fini(&m);
}

static void fuzz_signed_claims(const uint8_t *data, size_t size)
{
	/* {"alg":"HS256"} */
	static const char hdr[] = "eyJhbGciOiJIUzI1NiJ9.";
	char jwt[CV_TOKEN_MAX_BYTES + 64];
	size_t hl = sizeof(hdr) - 1, pl, sl;
	if (size > CV_TOKEN_MAX_BYTES / 4 * 3)
		return;
	memcpy(jwt, hdr, hl);
	if (cv_base64url_encode(data, size, jwt + hl, sizeof(jwt) - hl, &pl))
		return;
	uint8_t mac[32];
	unsigned ml = 0;
	HMAC(EVP_sha256(), key, (int)KEY_LEN, (const uint8_t *)jwt, hl + pl,
	     mac, &ml);
	jwt[hl + pl] = '.';
	if (cv_base64url_encode(mac, ml, jwt + hl + pl + 1,
				sizeof(jwt) - hl - pl - 1, &sl))
		return;
	struct cv_token_claims c;
	cv_token_verify(key, KEY_LEN, jwt, hl + pl + 1 + sl, NOW, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_token_claims c;
	fuzz_msg(data, size);
	cv_token_verify(key, KEY_LEN, (const char *)data, size, NOW, &c);
	fuzz_signed_claims(data, size);
	return 0;
}
