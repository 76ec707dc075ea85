/*
 * Join tokens: JWT (RFC 7519) in JWS compact serialization (RFC 7515
 * section 7.1), HS256 only (RFC 7518 section 3.2). Claims and their rules
 * are in docs/protocol.md, "Tokens".
 *
 * Thread: any; no state is kept between calls.
 */
#ifndef CONCLAVE_TOKEN_H
#define CONCLAVE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_TOKEN_MAX_BYTES 4096 /* whole compact JWS, larger is refused */
#define CV_TOKEN_SUB_MAX   256	/* bytes of the sub claim */
#define CV_TOKEN_ROOM_MAX  64	/* bytes of the room claim */
#define CV_TOKEN_LEEWAY_S  60	/* clock skew allowed for nbf and iat */

enum cv_right {
	CV_RIGHT_PUBLISH = 1u << 0,
	CV_RIGHT_SUBSCRIBE = 1u << 1,
};

/*
 * The room mode a token admits to (claim "mode", docs/protocol.md "Perc
 * rooms"): "forward" (or absent) or "perc". Any other value is refused.
 */
enum cv_token_mode {
	CV_TOKEN_MODE_FORWARD = 0,
	CV_TOKEN_MODE_PERC,
};

/* Verified claims. Strings are NUL-terminated copies. */
struct cv_token_claims {
	char sub[CV_TOKEN_SUB_MAX + 1];
	char room[CV_TOKEN_ROOM_MAX + 1];
	int64_t exp_s;	 /* seconds since the epoch */
	int64_t nbf_s;	 /* 0 when absent */
	int64_t iat_s;	 /* 0 when absent */
	unsigned rights; /* CV_RIGHT_* bits; both when the claim is absent */
	enum cv_token_mode mode; /* FORWARD when the claim is absent */
};

/*
 * Verifies jwt[0..len) (borrowed, need not be NUL-terminated) with the
 * HMAC key key[0..key_len) (borrowed) at time now_s (seconds since the
 * epoch) and fills *out (borrowed) on success.
 *
 * Refused as CV_EAUTH (protocol code token_invalid): more than
 * CV_TOKEN_MAX_BYTES, not three base64url parts, a header other than
 * {"alg":"HS256"} with an optional "typ":"JWT" (alg "none", any other alg,
 * any "crit" are refused), a bad signature (compared in constant time), a
 * payload that is not a JSON object, sub missing/empty/too long, room
 * missing or not 1-64 of [A-Za-z0-9_.-], exp missing, rights not an array
 * of known strings, mode present but not "forward" or "perc", nbf or iat more
 * than CV_TOKEN_LEEWAY_S in the future. CV_EEXPIRED (token_expired): now_s >=
 * exp. -EINVAL: key_len == 0. On error *out is left in an unspecified state.
 * The room is NOT compared with the room the client asks for: the caller does
 * (token_wrong_room).
 */
int cv_token_verify(const uint8_t *key, size_t key_len, const char *jwt,
		    size_t len, int64_t now_s, struct cv_token_claims *out);

/*
 * Issues an HS256 token for sub and room (borrowed, NUL-terminated) with
 * the given CV_RIGHT_* bits and expiry (no nbf, no iat: the output
 * depends only on the arguments), into buf (borrowed, cap bytes including the
 * NUL). For --dev mode and tests. Errors: -EINVAL (empty key, sub or room not
 * acceptable by cv_token_verify), -ENOSPC (buf too small), -ENOMEM.
 */
int cv_token_issue(const uint8_t *key, size_t key_len, const char *sub,
		   const char *room, unsigned rights, int64_t exp_s, char *buf,
		   size_t cap);

/*
 * cv_token_issue with every claim it can write taken from c (borrowed):
 * sub, room, rights, exp_s and mode ("mode" is written only for
 * CV_TOKEN_MODE_PERC, so a forward token is byte-identical to
 * cv_token_issue's). nbf_s and iat_s are ignored. Errors as cv_token_issue.
 */
int cv_token_issue_claims(const uint8_t *key, size_t key_len,
			  const struct cv_token_claims *c, char *buf,
			  size_t cap);

/* "forward" or "perc" (static); NULL for another value. */
const char *cv_token_mode_name(enum cv_token_mode mode);

/*
 * Protocol error code for a cv_token_verify result: "token_expired" for
 * CV_EEXPIRED, "token_invalid" for any other error, NULL for 0. Static.
 */
const char *cv_token_error_code(int err);

/*
 * True when room[0..len) is a valid room name: 1..CV_TOKEN_ROOM_MAX of
 * [A-Za-z0-9_.-] (docs/protocol.md). Thread: any.
 */
bool cv_room_name_valid(const char *room, size_t len);

#endif
