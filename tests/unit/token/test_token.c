/* JWT HS256 verification: valid, expired, nbf/iat, algorithms, tampering. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/base64.h"
#include "conclave/err.h"
#include "conclave/token.h"
#include "cv_test.h"

static const uint8_t key[] = "conclave-test-secret-0123456789abcdef";
#define KEY_LEN (sizeof(key) - 1)
#define NOW	INT64_C(1700000000)

/* Builds header.payload.signature from JSON texts; sig_key NULL: no sig. */
static char *make_jwt(const char *header, const char *payload,
		      const uint8_t *sig_key, size_t sig_key_len)
{
	size_t cap = 3 * 8192, hl, pl, sl;
	char *out = malloc(cap);
	cv_base64url_encode((const uint8_t *)header, strlen(header), out, cap,
			    &hl);
	out[hl] = '.';
	cv_base64url_encode((const uint8_t *)payload, strlen(payload),
			    out + hl + 1, cap - hl - 1, &pl);
	size_t signed_len = hl + 1 + pl;
	out[signed_len] = '.';
	out[signed_len + 1] = '\0';
	if (sig_key) {
		uint8_t mac[32];
		unsigned ml = 0;
		HMAC(EVP_sha256(), sig_key, (int)sig_key_len,
		     (const uint8_t *)out, signed_len, mac, &ml);
		cv_base64url_encode(mac, ml, out + signed_len + 1,
				    cap - signed_len - 1, &sl);
	}
	return out;
}

static const char HS[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int verify_parts(const char *header, const char *payload,
			struct cv_token_claims *c)
{
	char *jwt = make_jwt(header, payload, key, KEY_LEN);
	int rc = cv_token_verify(key, KEY_LEN, jwt, strlen(jwt), NOW, c);
	free(jwt);
	return rc;
}

static int verify_payload(const char *payload)
{
	struct cv_token_claims c;
	return verify_parts(HS, payload, &c);
}

static void test_issue_verify(void)
{
	char buf[1024];
	struct cv_token_claims c;
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, "alice@example", "room-1.a_b",
				    CV_RIGHT_SUBSCRIBE, NOW + 600, buf,
				    sizeof(buf)),
		     0);
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, buf, strlen(buf), NOW, &c),
		     0);
	CV_CHECK_STR(c.sub, "alice@example");
	CV_CHECK_STR(c.room, "room-1.a_b");
	CV_CHECK_INT(c.exp_s, NOW + 600);
	CV_CHECK_INT(c.rights, CV_RIGHT_SUBSCRIBE);
	CV_CHECK_INT(c.nbf_s, 0);
	CV_CHECK(cv_token_error_code(0) == NULL);

	/* Expired: valid strictly before exp, no leeway. */
	CV_CHECK_INT(
		cv_token_verify(key, KEY_LEN, buf, strlen(buf), NOW + 600, &c),
		CV_EEXPIRED);
	CV_CHECK_INT(
		cv_token_verify(key, KEY_LEN, buf, strlen(buf), NOW + 599, &c),
		0);
	CV_CHECK_STR(cv_token_error_code(CV_EEXPIRED), "token_expired");
	CV_CHECK_STR(cv_token_error_code(CV_EAUTH), "token_invalid");

	/* Wrong key, empty key. */
	static const uint8_t other[] = "another-secret";
	CV_CHECK_INT(cv_token_verify(other, sizeof(other) - 1, buf, strlen(buf),
				     NOW, &c),
		     CV_EAUTH);
	CV_CHECK_INT(cv_token_verify(key, 0, buf, strlen(buf), NOW, &c),
		     -EINVAL);

	/* Every truncation fails, never crashes (ASan build checks reads). */
	size_t len = strlen(buf);
	for (size_t l = 0; l < len; l++) {
		char *cut = malloc(l + 1);
		memcpy(cut, buf, l);
		CV_CHECK(cv_token_verify(key, KEY_LEN, cut, l, NOW, &c) ==
			 CV_EAUTH);
		free(cut);
	}
	/* Tampered: flip each character of the payload part in turn. */
	const char *d1 = strchr(buf, '.'), *d2 = strrchr(buf, '.');
	for (const char *p = d1 + 1; p < d2; p += 7) {
		char t[1024];
		strcpy(t, buf);
		t[p - buf] = t[p - buf] == 'A' ? 'B' : 'A';
		CV_CHECK_INT(cv_token_verify(key, KEY_LEN, t, len, NOW, &c),
			     CV_EAUTH);
	}
	/* Signature tampered. */
	buf[len - 2] = buf[len - 2] == 'A' ? 'B' : 'A';
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, buf, len, NOW, &c),
		     CV_EAUTH);
}

static void test_issue_errors(void)
{
	char buf[1024], small[64];
	char longsub[CV_TOKEN_SUB_MAX + 2];
	memset(longsub, 's', sizeof(longsub) - 1);
	longsub[sizeof(longsub) - 1] = '\0';
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, "a", "r", 3, NOW, small,
				    sizeof(small)),
		     -ENOSPC);
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, "a", "*", 3, NOW, buf,
				    sizeof(buf)),
		     -EINVAL);
	CV_CHECK_INT(
		cv_token_issue(key, KEY_LEN, "", "r", 3, NOW, buf, sizeof(buf)),
		-EINVAL);
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, longsub, "r", 3, NOW, buf,
				    sizeof(buf)),
		     -EINVAL);
	longsub[CV_TOKEN_SUB_MAX] = '\0'; /* exactly the maximum */
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, longsub, "r", 3, NOW + 1, buf,
				    sizeof(buf)),
		     0);
	struct cv_token_claims c;
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, buf, strlen(buf), NOW, &c),
		     0);
	CV_CHECK_INT(strlen(c.sub), CV_TOKEN_SUB_MAX);
	CV_CHECK_INT(c.rights, CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE);
	CV_CHECK_INT(cv_token_issue(key, 0, "a", "r", 3, NOW, buf, sizeof(buf)),
		     -EINVAL);
}

static void test_headers(void)
{
	static const char *P =
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100}";
	static const char *bad[] = {
		"{\"alg\":\"none\"}",
		"{\"alg\":\"none\",\"typ\":\"JWT\"}",
		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"HS512\"}",
		"{\"alg\":\"hs256\"}",
		"{\"typ\":\"JWT\"}",
		"{\"alg\":256}",
		"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
		"{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}",
		"{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
		"[\"HS256\"]",
		"not json",
	};
	struct cv_token_claims c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CV_CHECK_INT(verify_parts(bad[i], P, &c), CV_EAUTH);
	CV_CHECK_INT(verify_parts("{\"alg\":\"HS256\"}", P, &c), 0);
	CV_CHECK_INT(verify_parts("{\"typ\":\"jwt\",\"alg\":\"HS256\"}", P, &c),
		     0);
	CV_CHECK_INT(verify_parts("{\"alg\":\"HS256\",\"kid\":\"k1\"}", P, &c),
		     0);

	/* alg none with no signature at all. */
	char *jwt = make_jwt("{\"alg\":\"none\"}", P, NULL, 0);
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, jwt, strlen(jwt), NOW, &c),
		     CV_EAUTH);
	free(jwt);
}

static void test_claims(void)
{
	struct cv_token_claims c;
	CV_CHECK_INT(verify_parts(HS,
				  "{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				  "1700000100,\"rights\":[\"publish\","
				  "\"admin\"],\"nbf\":1700000030,\"iat\":"
				  "1699999999.5}",
				  &c),
		     0);
	CV_CHECK_INT(c.rights, CV_RIGHT_PUBLISH);
	CV_CHECK_INT(c.nbf_s, NOW + 30); /* within the 60 s leeway */
	CV_CHECK_INT(c.iat_s, NOW - 1);
	CV_CHECK_INT(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				    "1700000100.9,\"rights\":[]}"),
		     0);

	static const char *bad[] = {
		/* nbf / iat too far in the future */
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700009999,\"nbf\":"
		"1700000061}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700009999,\"iat\":"
		"1700000100}",
		/* missing or empty or wrong types */
		"{\"room\":\"r\",\"exp\":1700000100}",
		"{\"sub\":\"\",\"room\":\"r\",\"exp\":1700000100}",
		"{\"sub\":1,\"room\":\"r\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"room\":\"*\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"room\":\"a/b\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"room\":\"\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"room\":"
		"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaa\",\"exp\":1700000100}",
		"{\"sub\":\"u\",\"room\":\"r\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":\"1700000100\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":-5}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1e300}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,\"nbf\":"
		"null}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,\"rights\":"
		"\"publish\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,\"rights\":["
		"1]}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,\"sub\":"
		"\"v\"}",
		"[1,2]",
		"\"str\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = verify_payload(bad[i]);
		if (rc != CV_EAUTH)
			fprintf(stderr, "claims case %zu: %d\n", i, rc);
		CV_CHECK_INT(rc, CV_EAUTH);
	}
	CV_CHECK_INT(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				    "1699999999}"),
		     CV_EEXPIRED);
}

static void test_malformed(void)
{
	struct cv_token_claims c;
	static const char *bad[] = {
		"",
		".",
		"..",
		"a.b",
		"a.b.c.d",
		"eyJhbGciOiJIUzI1NiJ9..",
		"eyJhbGciOiJIUzI1NiJ9!.e30.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.e30=.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CV_CHECK_INT(cv_token_verify(key, KEY_LEN, bad[i],
					     strlen(bad[i]), NOW, &c),
			     CV_EAUTH);
	/* Padding in the signature part is refused (RFC 7515 section 2). */
	char *jwt = make_jwt(
		HS, "{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100}", key,
		KEY_LEN);
	size_t l = strlen(jwt);
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, jwt, l, NOW, &c), 0);
	char *padded = malloc(l + 2);
	memcpy(padded, jwt, l);
	padded[l] = '=';
	padded[l + 1] = '\0';
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, padded, l + 1, NOW, &c),
		     CV_EAUTH);
	free(padded);
	free(jwt);

	/* Huge: refused on size alone even when correctly signed. */
	char *payload = malloc(5000);
	strcpy(payload, "{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
			"\"pad\":\"");
	size_t pl = strlen(payload);
	memset(payload + pl, 'x', 4000);
	strcpy(payload + pl + 4000, "\"}");
	jwt = make_jwt(HS, payload, key, KEY_LEN);
	CV_CHECK(strlen(jwt) > CV_TOKEN_MAX_BYTES);
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, jwt, strlen(jwt), NOW, &c),
		     CV_EAUTH);
	free(jwt);
	free(payload);
}

/* The perc room mode claim: absent or "forward" is forward, "perc" is
 * perc, anything else is refused; issued tokens carry it only for perc. */
static void test_mode(void)
{
	struct cv_token_claims c,
		in = {
			.sub = "carol",
			.room = "perc-room",
			.rights = CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
			.exp_s = NOW + 600,
			.mode = CV_TOKEN_MODE_PERC,
		};
	char buf[1024], plain[1024];
	CV_CHECK_INT(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				    "1700000100}"),
		     0);
	CV_CHECK_INT(verify_parts(HS,
				  "{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				  "1700000100}",
				  &c),
		     0);
	CV_CHECK_INT(c.mode, CV_TOKEN_MODE_FORWARD);
	CV_CHECK_INT(verify_parts(HS,
				  "{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				  "1700000100,\"mode\":\"forward\"}",
				  &c),
		     0);
	CV_CHECK_INT(c.mode, CV_TOKEN_MODE_FORWARD);
	CV_CHECK_INT(verify_parts(HS,
				  "{\"sub\":\"u\",\"room\":\"r\",\"exp\":"
				  "1700000100,\"mode\":\"perc\"}",
				  &c),
		     0);
	CV_CHECK_INT(c.mode, CV_TOKEN_MODE_PERC);
	static const char *bad[] = {
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":\"PERC\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":\"\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":1}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":null}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":[\"perc\"]}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1700000100,"
		"\"mode\":\"mix\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CV_CHECK_INT(verify_payload(bad[i]), CV_EAUTH);

	/* Issued perc token round-trips with every claim. */
	CV_CHECK_INT(cv_token_issue_claims(key, KEY_LEN, &in, buf, sizeof(buf)),
		     0);
	CV_CHECK_INT(cv_token_verify(key, KEY_LEN, buf, strlen(buf), NOW, &c),
		     0);
	CV_CHECK_INT(c.mode, CV_TOKEN_MODE_PERC);
	CV_CHECK_STR(c.sub, "carol");
	CV_CHECK_STR(c.room, "perc-room");
	CV_CHECK_INT(c.exp_s, NOW + 600);
	CV_CHECK_INT(c.rights, CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE);
	/* A forward one is the same token cv_token_issue makes. */
	in.mode = CV_TOKEN_MODE_FORWARD;
	CV_CHECK_INT(cv_token_issue_claims(key, KEY_LEN, &in, buf, sizeof(buf)),
		     0);
	CV_CHECK_INT(cv_token_issue(key, KEY_LEN, "carol", "perc-room",
				    CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
				    NOW + 600, plain, sizeof(plain)),
		     0);
	CV_CHECK_STR(buf, plain);
	in.mode = (enum cv_token_mode)7;
	CV_CHECK_INT(cv_token_issue_claims(key, KEY_LEN, &in, buf, sizeof(buf)),
		     -EINVAL);
	CV_CHECK_INT(
		cv_token_issue_claims(key, KEY_LEN, NULL, buf, sizeof(buf)),
		-EINVAL);
	CV_CHECK_STR(cv_token_mode_name(CV_TOKEN_MODE_PERC), "perc");
	CV_CHECK_STR(cv_token_mode_name(CV_TOKEN_MODE_FORWARD), "forward");
	CV_CHECK(cv_token_mode_name((enum cv_token_mode)7) == NULL);
}

static void test_room_names(void)
{
	CV_CHECK(cv_room_name_valid("Room_1.x-y", 10));
	CV_CHECK(!cv_room_name_valid("", 0));
	CV_CHECK(!cv_room_name_valid("a b", 3));
	CV_CHECK(!cv_room_name_valid("*", 1));
	CV_CHECK(!cv_room_name_valid("\xc3\xa9", 2));
	char r[CV_TOKEN_ROOM_MAX + 1];
	memset(r, 'r', sizeof(r));
	CV_CHECK(cv_room_name_valid(r, CV_TOKEN_ROOM_MAX));
	CV_CHECK(!cv_room_name_valid(r, CV_TOKEN_ROOM_MAX + 1));
}

int main(void)
{
	test_issue_verify();
	test_issue_errors();
	test_headers();
	test_claims();
	test_malformed();
	test_room_names();
	test_mode();
	return cv_test_done("test_token");
}
