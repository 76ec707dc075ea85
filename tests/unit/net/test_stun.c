/*
 * STUN parser and writer: header rules, every attribute's framing and
 * value checks, truncation at every length, the writer's bounds, and
 * HMAC-SHA1 / CRC-32 cross-checked against OpenSSL and zlib's definition.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/err.h"
#include "conclave/stun.h"
#include "cv_test.h"

static const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const char pwd[] = "0123456789abcdefghijkl";

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static struct sockaddr_storage addr4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage addr6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

/* A Chrome-like check: USERNAME, GOOG-NETWORK-INFO, ICE-CONTROLLING,
 * USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT. */
static size_t chrome_request(uint8_t *buf, size_t cap)
{
	static const uint8_t netinfo[4] = {0, 1, 0, 10};
	struct cv_stun_writer w;
	size_t n = 0;
	cv_stun_writer_init(&w, buf, cap, CV_STUN_REQUEST,
			    CV_STUN_METHOD_BINDING, txid);
	cv_stun_put_attr(&w, CV_STUN_ATTR_USERNAME, "abcd:efgh", 9);
	cv_stun_put_attr(&w, 0xc057, netinfo, sizeof(netinfo));
	cv_stun_put_u64(&w, CV_STUN_ATTR_ICE_CONTROLLING, 0x1122334455667788);
	cv_stun_put_attr(&w, CV_STUN_ATTR_USE_CANDIDATE, NULL, 0);
	cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 0x6e7f1eff);
	cv_stun_put_integrity(&w, (const uint8_t *)pwd, strlen(pwd));
	cv_stun_put_fingerprint(&w);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	return n;
}

static void test_is_stun(void)
{
	uint8_t buf[128];
	size_t n = chrome_request(buf, sizeof(buf));
	CV_CHECK(cv_stun_is_stun(buf, n));
	CV_CHECK(cv_stun_is_stun(buf, 20));
	CV_CHECK(!cv_stun_is_stun(buf, 19));
	CV_CHECK(!cv_stun_is_stun(NULL, 0));
	buf[0] = 0x16; /* DTLS */
	CV_CHECK(!cv_stun_is_stun(buf, n));
	buf[0] = 0x80; /* RTP */
	CV_CHECK(!cv_stun_is_stun(buf, n));
	buf[0] = 0x00;
	buf[4] ^= 1; /* cookie */
	CV_CHECK(!cv_stun_is_stun(buf, n));
}

static void test_parse_chrome(void)
{
	uint8_t buf[128];
	size_t n = chrome_request(buf, sizeof(buf));
	struct cv_stun_msg m;
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.cls, CV_STUN_REQUEST);
	CV_CHECK_INT(m.method, CV_STUN_METHOD_BINDING);
	CV_CHECK_INT(m.type, 0x0001);
	CV_CHECK(m.use_candidate);
	CV_CHECK(m.has_priority && m.priority == 0x6e7f1eff);
	CV_CHECK(m.has_ice_controlling && !m.has_ice_controlled);
	CV_CHECK(m.tiebreaker == 0x1122334455667788ull);
	CV_CHECK_INT(m.n_unknown, 0);
	CV_CHECK(m.integrity_offset > 0 && m.fingerprint_offset > 0);
	CV_CHECK_INT(m.fingerprint_offset, n - 8);
	CV_CHECK_INT(m.integrity_offset, n - 32);
	CV_CHECK_INT(
		cv_stun_check_integrity(&m, (const uint8_t *)pwd, strlen(pwd)),
		0);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);

	/* Iteration yields the attributes in order. */
	static const uint16_t want[] = {
		CV_STUN_ATTR_USERNAME,	      0xc057,
		CV_STUN_ATTR_ICE_CONTROLLING, CV_STUN_ATTR_USE_CANDIDATE,
		CV_STUN_ATTR_PRIORITY,	      CV_STUN_ATTR_MESSAGE_INTEGRITY,
		CV_STUN_ATTR_FINGERPRINT,
	};
	struct cv_stun_attr_iter it;
	struct cv_stun_attr a;
	size_t i = 0;
	cv_stun_attr_iter_init(&it, &m);
	while (cv_stun_attr_next(&it, &a) == 1) {
		CV_CHECK(i < sizeof(want) / sizeof(want[0]) &&
			 a.type == want[i]);
		i++;
	}
	CV_CHECK_INT(i, 7);

	/* Every single-bit flip in the covered bytes breaks integrity or
	 * the fingerprint or the parse. */
	for (size_t bit = 0; bit < n * 8; bit++) {
		uint8_t c[128];
		memcpy(c, buf, n);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		struct cv_stun_msg cm;
		if (cv_stun_parse(&cm, c, n) != 0)
			continue;
		CV_CHECK(cv_stun_check_fingerprint(&cm) != 0 ||
			 cv_stun_check_integrity(&cm, (const uint8_t *)pwd,
						 strlen(pwd)) != 0);
	}
}

static void test_truncation(void)
{
	uint8_t buf[128];
	size_t n = chrome_request(buf, sizeof(buf));
	struct cv_stun_msg m;
	/* Datagram shorter than the header says. */
	for (size_t len = 0; len < n; len++) {
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, buf, len);
		CV_CHECK_INT(cv_stun_parse(&m, exact, len), CV_EPARSE);
		free(exact);
	}
	/* Header length patched to every shorter multiple of 4: only cuts
	 * at attribute boundaries may parse. */
	static const size_t bounds[] = {20, 36, 44, 56, 60, 68, 92};
	for (size_t len = 20; len < n; len += 4) {
		uint8_t *c = malloc(len);
		memcpy(c, buf, len);
		wr16(c + 2, (uint16_t)(len - 20));
		bool boundary = false;
		for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
			boundary |= bounds[i] == len;
		int err = cv_stun_parse(&m, c, len);
		if (boundary)
			CV_CHECK_INT(err, 0);
		else
			CV_CHECK_INT(err, CV_EPARSE);
		free(c);
	}
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
}

/* Builds header + one raw attribute (type, declared len, value bytes). */
static size_t one_attr(uint8_t *buf, uint16_t type, uint16_t alen,
		       const uint8_t *val, size_t vbytes)
{
	memset(buf, 0, 20);
	buf[1] = 0x01;
	buf[4] = 0x21;
	buf[5] = 0x12;
	buf[6] = 0xa4;
	buf[7] = 0x42;
	memcpy(buf + 8, txid, 12);
	wr16(buf + 20, type);
	wr16(buf + 22, alen);
	memcpy(buf + 24, val, vbytes);
	size_t total = 24 + vbytes;
	wr16(buf + 2, (uint16_t)(total - 20));
	return total;
}

static void test_malformed(void)
{
	uint8_t buf[700];
	uint8_t val[600];
	struct cv_stun_msg m;
	memset(val, 'a', sizeof(val));
	size_t n = chrome_request(buf, sizeof(buf));

	uint8_t c[700];
	memcpy(c, buf, n);
	c[0] |= 0x40; /* top bits */
	CV_CHECK_INT(cv_stun_parse(&m, c, n), CV_EPARSE);
	memcpy(c, buf, n);
	c[7] ^= 1; /* cookie */
	CV_CHECK_INT(cv_stun_parse(&m, c, n), CV_EPARSE);
	memcpy(c, buf, n);
	wr16(c + 2, (uint16_t)(n - 20 - 2)); /* not a multiple of 4 */
	CV_CHECK_INT(cv_stun_parse(&m, c, n - 2), CV_EPARSE);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n + 4), CV_EPARSE); /* trailing */
	CV_CHECK_INT(cv_stun_parse(&m, NULL, 0), CV_EPARSE);

	/* Attribute length overruns the message. */
	n = one_attr(buf, CV_STUN_ATTR_SOFTWARE, 9, val, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	n = one_attr(buf, CV_STUN_ATTR_SOFTWARE, 8, val, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	/* Padding counts: 5 bytes need 8. */
	n = one_attr(buf, CV_STUN_ATTR_SOFTWARE, 5, val, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.software_len, 5);

	/* USERNAME at most 513 bytes. */
	n = one_attr(buf, CV_STUN_ATTR_USERNAME, 513, val, 516);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.username_len, 513);
	n = one_attr(buf, CV_STUN_ATTR_USERNAME, 514, val, 516);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);

	/* Fixed-size attributes with the wrong size. */
	struct {
		uint16_t type;
		uint16_t len;
	} bad[] = {
		{CV_STUN_ATTR_MESSAGE_INTEGRITY, 16},
		{CV_STUN_ATTR_FINGERPRINT, 8},
		{CV_STUN_ATTR_PRIORITY, 8},
		{CV_STUN_ATTR_USE_CANDIDATE, 4},
		{CV_STUN_ATTR_ICE_CONTROLLING, 4},
		{CV_STUN_ATTR_ICE_CONTROLLED, 12},
		{CV_STUN_ATTR_XOR_MAPPED_ADDRESS, 0},
		{CV_STUN_ATTR_ERROR_CODE, 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = one_attr(buf, bad[i].type, bad[i].len, val,
			     (bad[i].len + 3u) & ~3u);
		CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	}

	/* XOR-MAPPED-ADDRESS: family and length must agree. */
	uint8_t xa[20] = {0, 0x01};
	n = one_attr(buf, CV_STUN_ATTR_XOR_MAPPED_ADDRESS, 20, xa, 20);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	xa[1] = 0x02;
	n = one_attr(buf, CV_STUN_ATTR_XOR_MAPPED_ADDRESS, 8, xa, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	xa[1] = 0x03;
	n = one_attr(buf, CV_STUN_ATTR_XOR_MAPPED_ADDRESS, 8, xa, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);

	/* ERROR-CODE: class 3..6, number 0..99. */
	uint8_t ec[8] = {0, 0, 4, 20, 'o', 'o', 'p', 's'};
	n = one_attr(buf, CV_STUN_ATTR_ERROR_CODE, 8, ec, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK(m.has_error_code && m.error_code == 420);
	CV_CHECK(m.reason_len == 4 && memcmp(m.reason, "oops", 4) == 0);
	ec[2] = 2;
	n = one_attr(buf, CV_STUN_ATTR_ERROR_CODE, 8, ec, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	ec[2] = 7;
	n = one_attr(buf, CV_STUN_ATTR_ERROR_CODE, 8, ec, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
	ec[2] = 4;
	ec[3] = 100;
	n = one_attr(buf, CV_STUN_ATTR_ERROR_CODE, 8, ec, 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);

	/* FINGERPRINT must be last. */
	struct cv_stun_writer w;
	cv_stun_writer_init(&w, buf, sizeof(buf), CV_STUN_REQUEST,
			    CV_STUN_METHOD_BINDING, txid);
	cv_stun_put_fingerprint(&w);
	cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 1);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), CV_EPARSE);
}

static void test_attribute_rules(void)
{
	uint8_t buf[256];
	size_t n;
	struct cv_stun_msg m;
	struct cv_stun_writer w;

	/* Unknown comprehension-required attributes are reported, optional
	 * ones are not, and more than CV_STUN_MAX_UNKNOWN are counted. */
	cv_stun_writer_init(&w, buf, sizeof(buf), CV_STUN_REQUEST,
			    CV_STUN_METHOD_BINDING, txid);
	for (uint16_t t = 0x7000; t < 0x700a; t++)
		cv_stun_put_u32(&w, t, t);
	cv_stun_put_u32(&w, 0xc001, 1);
	cv_stun_put_attr(&w, CV_STUN_ATTR_REALM, "x", 1);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.n_unknown, 10);
	CV_CHECK_INT(m.unknown[0], 0x7000);
	CV_CHECK_INT(m.unknown[7], 0x7007);

	/* First instance wins; attributes after MESSAGE-INTEGRITY other
	 * than FINGERPRINT are ignored (RFC 8489 section 14.5). */
	cv_stun_writer_init(&w, buf, sizeof(buf), CV_STUN_REQUEST,
			    CV_STUN_METHOD_BINDING, txid);
	cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 7);
	cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 8);
	cv_stun_put_integrity(&w, (const uint8_t *)"k", 1);
	cv_stun_put_attr(&w, CV_STUN_ATTR_USE_CANDIDATE, NULL, 0);
	cv_stun_put_u32(&w, 0x7777, 0);
	cv_stun_put_attr(&w, CV_STUN_ATTR_USERNAME, "a:b", 3);
	cv_stun_put_fingerprint(&w);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.priority, 7);
	CV_CHECK(!m.use_candidate);
	CV_CHECK(!m.username);
	CV_CHECK_INT(m.n_unknown, 0);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);
	/* The attributes after it are not covered, yet MI still checks. */
	CV_CHECK_INT(cv_stun_check_integrity(&m, (const uint8_t *)"k", 1), 0);

	/* No MI, no FINGERPRINT. */
	cv_stun_writer_init(&w, buf, sizeof(buf), CV_STUN_INDICATION,
			    CV_STUN_METHOD_BINDING, txid);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	CV_CHECK_INT(n, 20);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.cls, CV_STUN_INDICATION);
	CV_CHECK_INT(cv_stun_check_integrity(&m, (const uint8_t *)"k", 1),
		     -ENOENT);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), -ENOENT);
}

static void test_type_encoding(void)
{
	/* RFC 8489 section 5: Binding request 0x0001, indication 0x0011,
	 * success 0x0101, error 0x0111. */
	static const uint16_t want[4] = {0x0001, 0x0011, 0x0101, 0x0111};
	uint8_t buf[64];
	size_t n;
	struct cv_stun_msg m;
	for (int cls = 0; cls < 4; cls++) {
		struct cv_stun_writer w;
		cv_stun_writer_init(&w, buf, sizeof(buf),
				    (enum cv_stun_class)cls,
				    CV_STUN_METHOD_BINDING, txid);
		CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
		CV_CHECK_INT((buf[0] << 8) | buf[1], want[cls]);
		for (uint16_t method = 0; method < 0x1000; method += 0x0ab) {
			cv_stun_writer_init(&w, buf, sizeof(buf),
					    (enum cv_stun_class)cls, method,
					    txid);
			CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
			CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
			CV_CHECK_INT(m.cls, cls);
			CV_CHECK_INT(m.method, method);
		}
	}
}

static void test_writer_bounds(void)
{
	uint8_t full[128];
	size_t need = chrome_request(full, sizeof(full));
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *buf = malloc(cap ? cap : 1);
		struct cv_stun_writer w;
		size_t n = 0;
		cv_stun_writer_init(&w, cap ? buf : NULL, cap, CV_STUN_REQUEST,
				    CV_STUN_METHOD_BINDING, txid);
		cv_stun_put_attr(&w, CV_STUN_ATTR_USERNAME, "abcd:efgh", 9);
		cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 1);
		cv_stun_put_integrity(&w, (const uint8_t *)pwd, strlen(pwd));
		cv_stun_put_fingerprint(&w);
		CV_CHECK_INT(cv_stun_writer_finish(&w, &n),
			     cap >= 76 ? 0 : -ENOBUFS);
		free(buf);
	}

	uint8_t buf[64];
	struct cv_stun_writer w;
	cv_stun_writer_init(&w, buf, sizeof(buf), CV_STUN_ERROR,
			    CV_STUN_METHOD_BINDING, txid);
	CV_CHECK_INT(cv_stun_put_error_code(&w, 299, NULL), -EINVAL);
	CV_CHECK_INT(cv_stun_put_error_code(&w, 700, NULL), -EINVAL);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	CV_CHECK_INT(cv_stun_put_xor_address(&w, 0x20, &ss), -EAFNOSUPPORT);
	size_t n = 0;
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	CV_CHECK_INT(n, 20);
}

static void test_builders(void)
{
	uint8_t buf[CV_STUN_RESPONSE_MAX_BYTES];
	size_t n = 0;
	struct cv_stun_msg m;
	const uint8_t *key = (const uint8_t *)pwd;

	struct sockaddr_storage v6 = addr6("2001:db8::1", 5000);
	CV_CHECK_INT(cv_stun_build_binding_success(buf, sizeof(buf), txid, &v6,
						   key, strlen(pwd), &n),
		     0);
	CV_CHECK_INT(n, 20 + 24 + 24 + 8);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.cls, CV_STUN_SUCCESS);
	CV_CHECK_MEM(m.txid, txid, 12);
	CV_CHECK(cv_sockaddr_equal(&m.xor_mapped, &v6));
	CV_CHECK_INT(cv_stun_check_integrity(&m, key, strlen(pwd)), 0);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);
	CV_CHECK_INT(cv_stun_build_binding_success(buf, 75, txid, &v6, key,
						   strlen(pwd), &n),
		     -ENOBUFS);

	/* 420 with UNKNOWN-ATTRIBUTES and MI. */
	static const uint16_t unk[3] = {0x7001, 0x7002, 0x7003};
	CV_CHECK_INT(cv_stun_build_error(buf, sizeof(buf),
					 CV_STUN_METHOD_BINDING, txid, 420, unk,
					 3, key, strlen(pwd), &n),
		     0);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK_INT(m.cls, CV_STUN_ERROR);
	CV_CHECK_INT(m.error_code, 420);
	CV_CHECK(m.reason_len == 17 &&
		 memcmp(m.reason, "Unknown Attribute", 17) == 0);
	CV_CHECK_INT(cv_stun_check_integrity(&m, key, strlen(pwd)), 0);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);
	struct cv_stun_attr_iter it;
	struct cv_stun_attr a;
	bool found = false;
	cv_stun_attr_iter_init(&it, &m);
	while (cv_stun_attr_next(&it, &a) == 1) {
		if (a.type != CV_STUN_ATTR_UNKNOWN_ATTRIBUTES)
			continue;
		found = a.len == 6 && a.value[0] == 0x70 && a.value[1] == 1 &&
			a.value[5] == 3;
	}
	CV_CHECK(found);

	/* 401 without MI, every code with its phrase. */
	static const int codes[] = {400, 401, 487, 500, 438, 300, 699};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		CV_CHECK_INT(cv_stun_build_error(
				     buf, sizeof(buf), CV_STUN_METHOD_BINDING,
				     txid, codes[i], NULL, 0, NULL, 0, &n),
			     0);
		CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
		CV_CHECK_INT(m.error_code, codes[i]);
		CV_CHECK_INT(m.integrity_offset, 0);
		CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);
	}

	/* Binding request round trip. */
	struct cv_stun_binding_request req = {
		.txid = txid,
		.username = "remote:local",
		.key = key,
		.key_len = strlen(pwd),
		.priority = 12345,
		.use_candidate = true,
		.controlling = true,
		.ice = true,
		.tiebreaker = 42,
	};
	CV_CHECK_INT(cv_stun_build_binding_request(buf, sizeof(buf), &req, &n),
		     0);
	CV_CHECK_INT(cv_stun_parse(&m, buf, n), 0);
	CV_CHECK(m.has_priority && m.priority == 12345);
	CV_CHECK(m.use_candidate && m.has_ice_controlling);
	CV_CHECK(m.tiebreaker == 42);
	CV_CHECK_INT(cv_stun_check_integrity(&m, key, strlen(pwd)), 0);
	CV_CHECK_INT(cv_stun_check_fingerprint(&m), 0);
	const uint8_t *uf;
	size_t uf_len;
	CV_CHECK_INT(cv_stun_local_ufrag(buf, n, &uf, &uf_len), 0);
	CV_CHECK(uf_len == 6 && memcmp(uf, "remote", 6) == 0);

	/* Plain STUN request: no ICE attributes, no credentials. */
	struct cv_stun_binding_request plain = {.txid = txid};
	CV_CHECK_INT(
		cv_stun_build_binding_request(buf, sizeof(buf), &plain, &n), 0);
	CV_CHECK_INT(n, 28);
	CV_CHECK_INT(cv_stun_local_ufrag(buf, n, &uf, &uf_len), -ENOENT);
	CV_CHECK_INT(cv_stun_local_ufrag(buf, 3, &uf, &uf_len), CV_EPARSE);

	/* USERNAME without ':' routes nowhere. */
	plain.username = "nocolon";
	CV_CHECK_INT(
		cv_stun_build_binding_request(buf, sizeof(buf), &plain, &n), 0);
	CV_CHECK_INT(cv_stun_local_ufrag(buf, n, &uf, &uf_len), -ENOENT);

	char longname[600];
	memset(longname, 'u', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	plain.username = longname;
	CV_CHECK_INT(
		cv_stun_build_binding_request(buf, sizeof(buf), &plain, &n),
		-EINVAL);
}

/* HMAC-SHA1 against OpenSSL, keys and messages across block edges. */
static void test_hmac_cross_check(void)
{
	static const size_t key_lens[] = {0, 1, 20, 55, 63, 64, 65, 100, 200};
	uint8_t key[200];
	uint8_t val[200];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 13 + 1);
	for (size_t k = 0; k < sizeof(key_lens) / sizeof(key_lens[0]); k++) {
		for (size_t vlen = 0; vlen < 140; vlen += 1) {
			uint8_t buf[256];
			struct cv_stun_writer w;
			size_t n = 0;
			cv_stun_writer_init(&w, buf, sizeof(buf),
					    CV_STUN_REQUEST,
					    CV_STUN_METHOD_BINDING, txid);
			cv_stun_put_attr(&w, CV_STUN_ATTR_SOFTWARE, val, vlen);
			cv_stun_put_integrity(&w, key, key_lens[k]);
			CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
			size_t covered = n - 24;
			uint8_t mac[20];
			unsigned mac_len = 0;
			HMAC(EVP_sha1(), key, (int)key_lens[k], buf, covered,
			     mac, &mac_len);
			CV_CHECK_INT(mac_len, 20);
			CV_CHECK_MEM(buf + covered + 4, mac, 20);
		}
	}
}

static void test_sockaddr_equal(void)
{
	struct sockaddr_storage a = addr4("10.0.0.1", 1000);
	struct sockaddr_storage b = addr4("10.0.0.1", 1000);
	CV_CHECK(cv_sockaddr_equal(&a, &b));
	b = addr4("10.0.0.1", 1001);
	CV_CHECK(!cv_sockaddr_equal(&a, &b));
	b = addr4("10.0.0.2", 1000);
	CV_CHECK(!cv_sockaddr_equal(&a, &b));
	b = addr6("::ffff:10.0.0.1", 1000);
	CV_CHECK(!cv_sockaddr_equal(&a, &b));
	a = addr6("::ffff:10.0.0.1", 1000);
	CV_CHECK(cv_sockaddr_equal(&a, &b));
	((struct sockaddr_in6 *)&b)->sin6_scope_id = 2;
	CV_CHECK(!cv_sockaddr_equal(&a, &b));
	CV_CHECK(!cv_sockaddr_equal(&a, NULL));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	CV_CHECK(!cv_sockaddr_equal(&a, &b)); /* AF_UNSPEC */
}

int main(void)
{
	test_is_stun();
	test_parse_chrome();
	test_truncation();
	test_malformed();
	test_attribute_rules();
	test_type_encoding();
	test_writer_bounds();
	test_builders();
	test_hmac_cross_check();
	test_sockaddr_equal();
	return cv_test_done("test_stun");
}
