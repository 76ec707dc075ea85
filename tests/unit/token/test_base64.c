/* Base64 / base64url: RFC 4648 section 10 vectors and strictness. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "conclave/base64.h"
#include "conclave/err.h"
#include "cv_test.h"

static const struct {
	const char *plain, *b64, *b64url;
} vec[] = {
	{"", "", ""},
	{"f", "Zg==", "Zg"},
	{"fo", "Zm8=", "Zm8"},
	{"foo", "Zm9v", "Zm9v"},
	{"foob", "Zm9vYg==", "Zm9vYg"},
	{"fooba", "Zm9vYmE=", "Zm9vYmE"},
	{"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		char enc[32];
		uint8_t dec[32];
		size_t n = 99, pl = strlen(vec[i].plain);
		CV_CHECK_INT(cv_base64_encode((const uint8_t *)vec[i].plain, pl,
					      enc, sizeof(enc), &n),
			     0);
		CV_CHECK_STR(enc, vec[i].b64);
		CV_CHECK_INT(n, strlen(vec[i].b64));
		CV_CHECK_INT(cv_base64_encoded_len(pl), strlen(vec[i].b64));
		CV_CHECK_INT(cv_base64url_encode((const uint8_t *)vec[i].plain,
						 pl, enc, sizeof(enc), &n),
			     0);
		CV_CHECK_STR(enc, vec[i].b64url);
		CV_CHECK_INT(cv_base64url_encoded_len(pl),
			     strlen(vec[i].b64url));
		CV_CHECK_INT(cv_base64_decode(vec[i].b64, strlen(vec[i].b64),
					      dec, sizeof(dec), &n),
			     0);
		CV_CHECK_INT(n, pl);
		CV_CHECK_MEM(dec, vec[i].plain, pl);
		CV_CHECK_INT(cv_base64url_decode(vec[i].b64url,
						 strlen(vec[i].b64url), dec,
						 sizeof(dec), &n),
			     0);
		CV_CHECK_INT(n, pl);
		CV_CHECK_MEM(dec, vec[i].plain, pl);
		CV_CHECK(cv_base64_decoded_max(strlen(vec[i].b64)) >= pl);
		CV_CHECK(cv_base64_decoded_max(strlen(vec[i].b64url)) >= pl);
	}
}

static void test_alphabets(void)
{
	const uint8_t in[] = {0xfb, 0xff, 0xbf};
	char enc[8];
	uint8_t dec[8];
	size_t n;
	CV_CHECK_INT(cv_base64_encode(in, 3, enc, sizeof(enc), NULL), 0);
	CV_CHECK_STR(enc, "+/+/");
	CV_CHECK_INT(cv_base64url_encode(in, 3, enc, sizeof(enc), NULL), 0);
	CV_CHECK_STR(enc, "-_-_");
	CV_CHECK_INT(cv_base64url_decode("-_-_", 4, dec, sizeof(dec), &n), 0);
	CV_CHECK_MEM(dec, in, 3);
	CV_CHECK_INT(cv_base64url_decode("+/+/", 4, dec, sizeof(dec), &n),
		     CV_EPARSE);
	CV_CHECK_INT(cv_base64_decode("-_-_", 4, dec, sizeof(dec), &n),
		     CV_EPARSE);
}

static void test_strict(void)
{
	static const char *bad_std[] = {
		"Zg",	      /* no padding */
		"Zg=",	      /* short padding */
		"Z===",	      /* three '=' */
		"====",	      /* only padding */
		"Zh==",	      /* non-zero pad bits (RFC 4648 3.5) */
		"Zm9=",	      /* non-zero pad bits */
		"Zm=v",	      /* '=' inside */
		"Zg==Zg==",   /* padding then data */
		"Zm9v!A==",   /* bad character */
		"Zm9v\nYg==", /* whitespace */
		"Zm9 ",	      /* space */
	};
	static const char *bad_url[] = {
		"Z", "Zg==", "Zh", "Zm9", "Zm9v=", "Zm9v.", "Zm9vY", "a b",
	};
	uint8_t dec[16];
	size_t n = 77;
	for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++)
		CV_CHECK_INT(cv_base64_decode(bad_std[i], strlen(bad_std[i]),
					      dec, sizeof(dec), &n),
			     CV_EPARSE);
	for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
		CV_CHECK_INT(cv_base64url_decode(bad_url[i], strlen(bad_url[i]),
						 dec, sizeof(dec), &n),
			     CV_EPARSE);
	CV_CHECK_INT(n, 77); /* untouched on error */
	/* An embedded NUL is a bad character, not an end. */
	CV_CHECK_INT(cv_base64url_decode("Zm\0v", 4, dec, sizeof(dec), &n),
		     CV_EPARSE);
}

static void test_bounds(void)
{
	char enc[8];
	uint8_t dec[8];
	size_t n;
	/* "Zm9v" + NUL needs 5. */
	CV_CHECK_INT(cv_base64_encode((const uint8_t *)"foo", 3, enc, 4, &n),
		     -ENOSPC);
	CV_CHECK_INT(cv_base64_encode((const uint8_t *)"foo", 3, enc, 5, &n),
		     0);
	CV_CHECK_INT(cv_base64url_encode((const uint8_t *)"f", 1, enc, 2, &n),
		     -ENOSPC);
	CV_CHECK_INT(cv_base64_encode(NULL, 0, enc, 1, &n), 0);
	CV_CHECK_STR(enc, "");
	CV_CHECK_INT(cv_base64_decode("Zm9vYmFy", 8, dec, 5, &n), -ENOSPC);
	CV_CHECK_INT(cv_base64_decode("Zm9vYmFy", 8, dec, 6, &n), 0);
	CV_CHECK_INT(cv_base64url_decode("Zm9vYg", 6, dec, 3, &n), -ENOSPC);
	CV_CHECK_INT(cv_base64url_decode("Zm9vYg", 6, dec, 4, &n), 0);
}

/* Every prefix of every encoding decodes or fails cleanly. */
static void test_truncation(void)
{
	uint8_t all[64], dec[128];
	char enc[128];
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (uint8_t)(i * 37 + 11);
	size_t el;
	CV_CHECK_INT(cv_base64_encode(all, sizeof(all), enc, sizeof(enc), &el),
		     0);
	for (size_t l = 0; l <= el; l++) {
		size_t n;
		int rc = cv_base64_decode(enc, l, dec, sizeof(dec), &n);
		CV_CHECK(rc == 0 ? l % 4 == 0 : rc == CV_EPARSE);
	}
	CV_CHECK_INT(
		cv_base64url_encode(all, sizeof(all), enc, sizeof(enc), &el),
		0);
	for (size_t l = 0; l <= el; l++) {
		size_t n;
		int rc = cv_base64url_decode(enc, l, dec, sizeof(dec), &n);
		if (rc == 0)
			CV_CHECK(n <= sizeof(all) && memcmp(dec, all, n) == 0);
		else
			CV_CHECK_INT(rc, CV_EPARSE);
	}
}

int main(void)
{
	test_vectors();
	test_alphabets();
	test_strict();
	test_bounds();
	test_truncation();
	return cv_test_done("test_base64");
}
