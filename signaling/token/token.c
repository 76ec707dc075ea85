/*
 * HS256 JWT verification and issuance. The signature is checked before
 * the claims are parsed, so a forged token never reaches the JSON parser
 * with attacker-chosen claims; the header is parsed first only to refuse
 * algorithms other than HS256 (RFC 8725 section 3.1: never trust "alg").
 */
#include "conclave/token.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/base64.h"
#include "conclave/err.h"

#define MAC_LEN		 32
#define MAX_RIGHTS	 16
#define NUMERIC_DATE_MAX 4102444800.0 /* 2100-01-01: refuse silly dates */
#define PART_DECODED_MAX (CV_TOKEN_MAX_BYTES / 4 * 3)

static const char issued_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

bool cv_room_name_valid(const char *room, size_t len)
{
	if (len == 0 || len > CV_TOKEN_ROOM_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = room[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

const char *cv_token_error_code(int err)
{
	if (err == 0)
		return NULL;
	return err == CV_EEXPIRED ? "token_expired" : "token_invalid";
}

static int hs256(const uint8_t *key, size_t key_len, const char *data,
		 size_t len, uint8_t mac[MAC_LEN])
{
	unsigned int mac_len = 0;
	if (key_len > INT32_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const uint8_t *)data, len,
		  mac, &mac_len) ||
	    mac_len != MAC_LEN)
		return CV_ECRYPTO;
	return 0;
}

/* Decodes one base64url part and parses it as a JSON object. */
static json_t *decode_json_part(const char *p, size_t len)
{
	uint8_t buf[PART_DECODED_MAX];
	size_t n;
	if (cv_base64url_decode(p, len, buf, sizeof(buf), &n) != 0)
		return NULL;
	json_t *j =
		json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/*
 * RFC 7515 section 4.1: we accept exactly alg HS256 (RFC 7518 section
 * 3.2), an optional typ "JWT" (RFC 7519 section 5.1), and no crit (section
 * 4.1.11: we implement no extension, so any crit must be refused). Other
 * registered or private members (kid, ...) are ignored.
 */
static int check_header(const char *p, size_t len)
{
	json_t *h = decode_json_part(p, len);
	if (!h)
		return CV_EAUTH;
	int rc = CV_EAUTH;
	json_t *alg = json_object_get(h, "alg");
	json_t *typ = json_object_get(h, "typ");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256"))
		goto out;
	if (typ &&
	    (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT")))
		goto out;
	if (json_object_get(h, "crit"))
		goto out;
	rc = 0;
out:
	json_decref(h);
	return rc;
}

/* RFC 7519 section 2: NumericDate, integer or not; we keep whole seconds. */
static int numeric_date(json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || i > (json_int_t)NUMERIC_DATE_MAX)
			return CV_EAUTH;
		*out = (int64_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d) || d < 0 || d > NUMERIC_DATE_MAX)
			return CV_EAUTH;
		*out = (int64_t)d;
		return 0;
	}
	return CV_EAUTH;
}

static int copy_string_claim(json_t *v, char *dst, size_t max)
{
	if (!json_is_string(v))
		return CV_EAUTH;
	size_t n = json_string_length(v);
	if (n == 0 || n > max)
		return CV_EAUTH;
	memcpy(dst, json_string_value(v), n);
	dst[n] = '\0';
	return 0;
}

static int parse_rights(json_t *v, unsigned *rights)
{
	if (!v) {
		*rights = CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > MAX_RIGHTS)
		return CV_EAUTH;
	*rights = 0;
	size_t i;
	json_t *r;
	json_array_foreach(v, i, r)
	{
		if (!json_is_string(r))
			return CV_EAUTH;
		/* Unknown rights are ignored: an identity service may grant
		 * rights a newer node understands. */
		if (!strcmp(json_string_value(r), "publish"))
			*rights |= CV_RIGHT_PUBLISH;
		else if (!strcmp(json_string_value(r), "subscribe"))
			*rights |= CV_RIGHT_SUBSCRIBE;
	}
	return 0;
}

const char *cv_token_mode_name(enum cv_token_mode mode)
{
	switch (mode) {
	case CV_TOKEN_MODE_FORWARD:
		return "forward";
	case CV_TOKEN_MODE_PERC:
		return "perc";
	}
	return NULL;
}

/* Our claim (docs/protocol.md "Perc rooms"): absent means forward; an
 * unknown mode is refused rather than guessed, so a token meant for a
 * mode this node does not know never joins a room of another mode. */
static int parse_mode(json_t *v, enum cv_token_mode *mode)
{
	*mode = CV_TOKEN_MODE_FORWARD;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return CV_EAUTH;
	if (!strcmp(json_string_value(v), "forward"))
		return 0;
	if (!strcmp(json_string_value(v), "perc")) {
		*mode = CV_TOKEN_MODE_PERC;
		return 0;
	}
	return CV_EAUTH;
}

static int check_claims(json_t *c, int64_t now_s, struct cv_token_claims *out)
{
	memset(out, 0, sizeof(*out));
	if (copy_string_claim(json_object_get(c, "sub"), out->sub,
			      CV_TOKEN_SUB_MAX) ||
	    copy_string_claim(json_object_get(c, "room"), out->room,
			      CV_TOKEN_ROOM_MAX) ||
	    !cv_room_name_valid(out->room, strlen(out->room)))
		return CV_EAUTH;
	if (numeric_date(json_object_get(c, "exp"), &out->exp_s))
		return CV_EAUTH;
	json_t *nbf = json_object_get(c, "nbf");
	json_t *iat = json_object_get(c, "iat");
	if (nbf && numeric_date(nbf, &out->nbf_s))
		return CV_EAUTH;
	if (iat && numeric_date(iat, &out->iat_s))
		return CV_EAUTH;
	if (parse_rights(json_object_get(c, "rights"), &out->rights) ||
	    parse_mode(json_object_get(c, "mode"), &out->mode))
		return CV_EAUTH;
	/* RFC 7519 section 4.1.5 (nbf) and 4.1.6 (iat) with a small leeway
	 * for clock skew; a token from the future is not valid (yet). */
	if ((nbf && out->nbf_s > now_s + CV_TOKEN_LEEWAY_S) ||
	    (iat && out->iat_s > now_s + CV_TOKEN_LEEWAY_S))
		return CV_EAUTH;
	/* RFC 7519 section 4.1.4: valid only strictly before exp. */
	if (now_s >= out->exp_s)
		return CV_EEXPIRED;
	return 0;
}

int cv_token_verify(const uint8_t *key, size_t key_len, const char *jwt,
		    size_t len, int64_t now_s, struct cv_token_claims *out)
{
	if (!key || key_len == 0)
		return -EINVAL;
	if (!jwt || len == 0 || len > CV_TOKEN_MAX_BYTES)
		return CV_EAUTH;
	/* RFC 7515 section 7.1: BASE64URL(header) '.' BASE64URL(payload)
	 * '.' BASE64URL(signature), no other dots. */
	const char *d1 = memchr(jwt, '.', len);
	if (!d1)
		return CV_EAUTH;
	const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt));
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)))
		return CV_EAUTH;
	size_t h_len = (size_t)(d1 - jwt);
	size_t p_len = (size_t)(d2 - d1 - 1);
	size_t s_len = len - (size_t)(d2 + 1 - jwt);

	int rc = check_header(jwt, h_len);
	if (rc)
		return rc;

	uint8_t sig[MAC_LEN + 3], mac[MAC_LEN];
	size_t sig_n;
	if (cv_base64url_decode(d2 + 1, s_len, sig, sizeof(sig), &sig_n) ||
	    sig_n != MAC_LEN)
		return CV_EAUTH;
	rc = hs256(key, key_len, jwt, (size_t)(d2 - jwt), mac);
	if (rc)
		return CV_EAUTH;
	int differ = CRYPTO_memcmp(sig, mac, MAC_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	if (differ)
		return CV_EAUTH;

	json_t *claims = decode_json_part(d1 + 1, p_len);
	if (!claims)
		return CV_EAUTH;
	rc = check_claims(claims, now_s, out);
	json_decref(claims);
	return rc;
}

static int issue(const uint8_t *key, size_t key_len, const char *sub,
		 const char *room, unsigned rights, enum cv_token_mode mode,
		 int64_t exp_s, char *buf, size_t cap)
{
	if (!key || key_len == 0 || !sub || !room || !sub[0] ||
	    strlen(sub) > CV_TOKEN_SUB_MAX ||
	    !cv_room_name_valid(room, strlen(room)) || exp_s < 0 ||
	    exp_s > (int64_t)NUMERIC_DATE_MAX)
		return -EINVAL;
	json_t *r = json_array();
	if (!r)
		return -ENOMEM;
	if (rights & CV_RIGHT_PUBLISH)
		json_array_append_new(r, json_string("publish"));
	if (rights & CV_RIGHT_SUBSCRIBE)
		json_array_append_new(r, json_string("subscribe"));
	json_t *c = json_pack("{s:s, s:s, s:I, s:o}", "sub", sub, "room", room,
			      "exp", (json_int_t)exp_s, "rights", r);
	if (!c) /* json_pack steals r even on failure ("o") */
		return -EINVAL;
	if (mode != CV_TOKEN_MODE_FORWARD &&
	    (!cv_token_mode_name(mode) ||
	     json_object_set_new(c, "mode",
				 json_string(cv_token_mode_name(mode))))) {
		json_decref(c);
		return -EINVAL;
	}
	char *payload = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	if (!payload)
		return -ENOMEM;

	int rc = -ENOSPC;
	size_t hl, pl, sl;
	size_t plen = strlen(payload);
	if (cv_base64url_encode((const uint8_t *)issued_header,
				sizeof(issued_header) - 1, buf, cap, &hl))
		goto out;
	if (hl + 1 >= cap)
		goto out;
	buf[hl] = '.';
	if (cv_base64url_encode((const uint8_t *)payload, plen, buf + hl + 1,
				cap - hl - 1, &pl))
		goto out;
	size_t signed_len = hl + 1 + pl;
	if (signed_len + 1 >= cap)
		goto out;
	uint8_t mac[MAC_LEN];
	rc = hs256(key, key_len, buf, signed_len, mac);
	if (rc)
		goto out;
	buf[signed_len] = '.';
	rc = cv_base64url_encode(mac, MAC_LEN, buf + signed_len + 1,
				 cap - signed_len - 1, &sl);
	OPENSSL_cleanse(mac, sizeof(mac));
out:
	free(payload);
	return rc;
}

int cv_token_issue(const uint8_t *key, size_t key_len, const char *sub,
		   const char *room, unsigned rights, int64_t exp_s, char *buf,
		   size_t cap)
{
	return issue(key, key_len, sub, room, rights, CV_TOKEN_MODE_FORWARD,
		     exp_s, buf, cap);
}

int cv_token_issue_claims(const uint8_t *key, size_t key_len,
			  const struct cv_token_claims *c, char *buf,
			  size_t cap)
{
	if (!c)
		return -EINVAL;
	return issue(key, key_len, c->sub, c->room, c->rights, c->mode,
		     c->exp_s, buf, cap);
}
