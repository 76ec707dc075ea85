#include <errno.h>

#include "conclave/err.h"
#include "conclave/srtp.h"
#include "cv_test.h"

static const enum cv_srtp_profile all_profiles[] = {
	CV_SRTP_AES128_CM_HMAC_SHA1_80,
	CV_SRTP_AEAD_AES_128_GCM,
	CV_SRTP_AEAD_AES_256_GCM,
};
#define N_PROFILES (sizeof(all_profiles) / sizeof(all_profiles[0]))

static void test_profiles(void)
{
	enum cv_srtp_profile p = 0;

	/* RFC 5764 section 4.1.2, RFC 7714 section 14.2 */
	CV_CHECK_INT(cv_srtp_profile_id(CV_SRTP_AES128_CM_HMAC_SHA1_80), 1);
	CV_CHECK_INT(cv_srtp_profile_id(CV_SRTP_AEAD_AES_128_GCM), 7);
	CV_CHECK_INT(cv_srtp_profile_id(CV_SRTP_AEAD_AES_256_GCM), 8);
	CV_CHECK_STR(cv_srtp_profile_name(CV_SRTP_AES128_CM_HMAC_SHA1_80),
		     "SRTP_AES128_CM_SHA1_80");
	CV_CHECK_STR(cv_srtp_profile_name(CV_SRTP_AEAD_AES_128_GCM),
		     "SRTP_AEAD_AES_128_GCM");
	CV_CHECK_STR(cv_srtp_profile_name(CV_SRTP_AEAD_AES_256_GCM),
		     "SRTP_AEAD_AES_256_GCM");

	for (size_t i = 0; i < N_PROFILES; i++) {
		enum cv_srtp_profile q = all_profiles[i];
		CV_CHECK_INT(cv_srtp_profile_from_id(cv_srtp_profile_id(q), &p),
			     0);
		CV_CHECK_INT(p, q);
		CV_CHECK_INT(
			cv_srtp_profile_from_name(cv_srtp_profile_name(q), &p),
			0);
		CV_CHECK_INT(p, q);
	}
	CV_CHECK_INT(cv_srtp_profile_from_id(0x0000, &p), CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_profile_from_id(0x0002, &p), CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_profile_from_id(0xffff, &p), CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_profile_from_name("SRTP_AES128_CM_SHA1_32", &p),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_profile_from_name(NULL, &p), -EINVAL);

	CV_CHECK_INT(cv_srtp_profile_key_bytes(CV_SRTP_AES128_CM_HMAC_SHA1_80),
		     16);
	CV_CHECK_INT(cv_srtp_profile_salt_bytes(CV_SRTP_AES128_CM_HMAC_SHA1_80),
		     14);
	CV_CHECK_INT(cv_srtp_profile_key_bytes(CV_SRTP_AEAD_AES_128_GCM), 16);
	CV_CHECK_INT(cv_srtp_profile_salt_bytes(CV_SRTP_AEAD_AES_128_GCM), 12);
	CV_CHECK_INT(cv_srtp_profile_key_bytes(CV_SRTP_AEAD_AES_256_GCM), 32);
	CV_CHECK_INT(cv_srtp_profile_salt_bytes(CV_SRTP_AEAD_AES_256_GCM), 12);
	CV_CHECK_INT(cv_srtp_profile_rtp_trailer_bytes(
			     CV_SRTP_AES128_CM_HMAC_SHA1_80),
		     10);
	CV_CHECK_INT(cv_srtp_profile_rtcp_trailer_bytes(
			     CV_SRTP_AES128_CM_HMAC_SHA1_80),
		     14);
	CV_CHECK_INT(
		cv_srtp_profile_rtp_trailer_bytes(CV_SRTP_AEAD_AES_256_GCM),
		16);
	CV_CHECK_INT(
		cv_srtp_profile_rtcp_trailer_bytes(CV_SRTP_AEAD_AES_256_GCM),
		20);

	/* outside the enum */
	CV_CHECK_INT(cv_srtp_profile_id((enum cv_srtp_profile)0), 0);
	CV_CHECK_INT(cv_srtp_profile_key_bytes((enum cv_srtp_profile)9), 0);
	CV_CHECK(cv_srtp_profile_name((enum cv_srtp_profile) - 1) == NULL);
}

static void test_split_keying(void)
{
	uint8_t m[88];
	struct cv_secret local, remote;

	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)i;
	cv_secret_init(&local);
	cv_secret_init(&remote);

	/* CM-80: ck 0..15 | sk 16..31 | cs 32..45 | ss 46..59 */
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AES128_CM_HMAC_SHA1_80, m, 60,
					  true, &local, &remote),
		     0);
	CV_CHECK_INT(cv_secret_len(&local), 30);
	CV_CHECK_INT(cv_secret_len(&remote), 30);
	CV_CHECK_MEM(cv_secret_data(&local), m, 16);
	CV_CHECK_MEM(cv_secret_data(&local) + 16, m + 32, 14);
	CV_CHECK_MEM(cv_secret_data(&remote), m + 16, 16);
	CV_CHECK_MEM(cv_secret_data(&remote) + 16, m + 46, 14);

	/* the server sends with the server's keys */
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AES128_CM_HMAC_SHA1_80, m, 60,
					  false, &local, &remote),
		     0);
	CV_CHECK_MEM(cv_secret_data(&local), m + 16, 16);
	CV_CHECK_MEM(cv_secret_data(&local) + 16, m + 46, 14);
	CV_CHECK_MEM(cv_secret_data(&remote), m, 16);
	CV_CHECK_MEM(cv_secret_data(&remote) + 16, m + 32, 14);

	/* GCM-256: ck 0..31 | sk 32..63 | cs 64..75 | ss 76..87 */
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AEAD_AES_256_GCM, m, 88,
					  false, &local, &remote),
		     0);
	CV_CHECK_INT(cv_secret_len(&local), 44);
	CV_CHECK_MEM(cv_secret_data(&local), m + 32, 32);
	CV_CHECK_MEM(cv_secret_data(&local) + 32, m + 76, 12);
	CV_CHECK_MEM(cv_secret_data(&remote), m, 32);
	CV_CHECK_MEM(cv_secret_data(&remote) + 32, m + 64, 12);

	/* GCM-128 is 56 bytes */
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AEAD_AES_128_GCM, m, 56, true,
					  &local, &remote),
		     0);
	CV_CHECK_MEM(cv_secret_data(&local) + 16, m + 32, 12);

	/* bad lengths wipe both outputs */
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AEAD_AES_128_GCM, m, 60, true,
					  &local, &remote),
		     -EINVAL);
	CV_CHECK_INT(cv_secret_len(&local), 0);
	CV_CHECK_INT(cv_secret_len(&remote), 0);
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AES128_CM_HMAC_SHA1_80, m, 59,
					  true, &local, &remote),
		     -EINVAL);
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AES128_CM_HMAC_SHA1_80, NULL,
					  60, true, &local, &remote),
		     -EINVAL);
	CV_CHECK_INT(cv_srtp_split_keying((enum cv_srtp_profile)0, m, 60, true,
					  &local, &remote),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_split_keying(CV_SRTP_AES128_CM_HMAC_SHA1_80, m, 60,
					  true, NULL, &remote),
		     -EINVAL);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t make_rtp(uint8_t *buf, uint16_t seq, uint32_t ssrc,
		       size_t payload)
{
	buf[0] = 0x80;
	buf[1] = 111;
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	put_be32(buf + 4, 48000u * seq);
	put_be32(buf + 8, ssrc);
	for (size_t i = 0; i < payload; i++)
		buf[12 + i] = (uint8_t)(seq + i);
	return 12 + payload;
}

static size_t make_rtcp(uint8_t *buf, uint32_t ssrc)
{
	/* receiver report with one report block (RFC 3550 6.4.2) */
	buf[0] = 0x81;
	buf[1] = 201;
	buf[2] = 0;
	buf[3] = 7;
	put_be32(buf + 4, ssrc);
	for (int i = 8; i < 32; i++)
		buf[i] = (uint8_t)i;
	return 32;
}

struct pair {
	struct cv_srtp *client_out, *client_in, *server_out, *server_in;
};

/* Both ends of one DTLS-SRTP association from the same exporter output. */
static int make_pair(struct pair *pr, enum cv_srtp_profile p)
{
	uint8_t m[88];
	struct cv_secret c_local, c_remote, s_local, s_remote;
	size_t n = 2 * (cv_srtp_profile_key_bytes(p) +
			cv_srtp_profile_salt_bytes(p));
	int err = 0;

	memset(pr, 0, sizeof(*pr));
	for (size_t i = 0; i < n; i++)
		m[i] = (uint8_t)(i * 29 + 5);
	cv_secret_init(&c_local);
	cv_secret_init(&c_remote);
	cv_secret_init(&s_local);
	cv_secret_init(&s_remote);
	CV_CHECK_INT(cv_srtp_split_keying(p, m, n, true, &c_local, &c_remote),
		     0);
	CV_CHECK_INT(cv_srtp_split_keying(p, m, n, false, &s_local, &s_remote),
		     0);
	CV_CHECK(cv_secret_equal(&c_local, &s_remote));
	CV_CHECK(cv_secret_equal(&c_remote, &s_local));
	CV_CHECK(!cv_secret_equal(&c_local, &s_local));
	err |= cv_srtp_create(&pr->client_out, p, &c_local, CV_SRTP_OUTBOUND);
	err |= cv_srtp_create(&pr->client_in, p, &c_remote, CV_SRTP_INBOUND);
	err |= cv_srtp_create(&pr->server_out, p, &s_local, CV_SRTP_OUTBOUND);
	err |= cv_srtp_create(&pr->server_in, p, &s_remote, CV_SRTP_INBOUND);
	CV_CHECK_INT(err, 0);
	cv_secret_wipe(&c_local);
	cv_secret_wipe(&c_remote);
	cv_secret_wipe(&s_local);
	cv_secret_wipe(&s_remote);
	return err;
}

static void free_pair(struct pair *pr)
{
	cv_srtp_destroy(pr->client_out);
	cv_srtp_destroy(pr->client_in);
	cv_srtp_destroy(pr->server_out);
	cv_srtp_destroy(pr->server_in);
}

static void roundtrip(struct cv_srtp *out, struct cv_srtp *in, uint16_t seq,
		      uint32_t ssrc, size_t payload)
{
	_Alignas(8) uint8_t plain[1300], buf[1400];
	size_t len = make_rtp(plain, seq, ssrc, payload);
	size_t n = len;

	memcpy(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect(out, buf, &n, sizeof(buf)), 0);
	CV_CHECK_INT(n, len + cv_srtp_profile_rtp_trailer_bytes(
				      cv_srtp_get_profile(out)));
	if (payload > 0)
		CV_CHECK(memcmp(buf + 12, plain + 12, payload) != 0);
	CV_CHECK_INT(cv_srtp_unprotect(in, buf, &n), 0);
	CV_CHECK_INT(n, len);
	CV_CHECK_MEM(buf, plain, len);
}

static void test_interop(enum cv_srtp_profile p)
{
	struct pair pr;
	_Alignas(8) uint8_t plain[64], buf[128];
	size_t len, n;

	if (make_pair(&pr, p))
		goto out;
	/* both directions, two SSRCs each (BUNDLE), sequence wrap */
	for (uint16_t seq = 65530; seq != 6; seq++) {
		roundtrip(pr.client_out, pr.server_in, seq, 0x1111, 160);
		roundtrip(pr.client_out, pr.server_in, seq, 0x2222, 1200);
		roundtrip(pr.server_out, pr.client_in, seq, 0x3333, 0);
	}
	/* RTCP both ways */
	for (int i = 0; i < 3; i++) {
		len = make_rtcp(plain, 0x1111);
		n = len;
		memcpy(buf, plain, len);
		CV_CHECK_INT(cv_srtp_protect_rtcp(pr.server_out, buf, &n,
						  sizeof(buf)),
			     0);
		CV_CHECK_INT(n, len + cv_srtp_profile_rtcp_trailer_bytes(p));
		CV_CHECK_INT(cv_srtp_unprotect_rtcp(pr.client_in, buf, &n), 0);
		CV_CHECK_INT(n, len);
		CV_CHECK_MEM(buf, plain, len);
	}
	/* a client's own outbound key does not open its own packets */
	len = make_rtp(plain, 9, 0x1111, 20);
	n = len;
	memcpy(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)), 0);
	CV_CHECK_INT(cv_srtp_unprotect(pr.client_in, buf, &n), CV_EINTEGRITY);
out:
	free_pair(&pr);
}

static void test_replay_and_integrity(enum cv_srtp_profile p)
{
	struct pair pr;
	_Alignas(8) uint8_t plain[256], srtp[300], buf[300];
	size_t len, slen, n;

	if (make_pair(&pr, p))
		goto out;
	len = make_rtp(plain, 100, 0xabc, 100);
	slen = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, srtp, &slen, sizeof(srtp)),
		     0);

	/* every single-bit flip in every byte is refused, never accepted */
	for (size_t i = 0; i < slen; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			int err;
			memcpy(buf, srtp, slen);
			buf[i] ^= (uint8_t)(1u << bit);
			n = slen;
			err = cv_srtp_unprotect(pr.server_in, buf, &n);
			CV_CHECK(err == CV_EINTEGRITY || err == CV_EPARSE);
			/* payload and tag flips are integrity failures */
			if (i >= 12)
				CV_CHECK_INT(err, CV_EINTEGRITY);
			CV_CHECK_INT(n, slen);
		}
	}
	/* the original still passes (failures did not move the window) */
	memcpy(buf, srtp, slen);
	n = slen;
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), 0);
	/* and is then a replay */
	memcpy(buf, srtp, slen);
	n = slen;
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), CV_EREPLAY);

	/* older than the window (RFC 3711 3.3.2): seq 101 is protected
	 * first but arrives after seq 1134 */
	len = make_rtp(plain, 101, 0xabc, 10);
	n = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, srtp, &n, sizeof(srtp)), 0);
	slen = n;
	roundtrip(pr.client_out, pr.server_in, 100 + CV_SRTP_REPLAY_WINDOW + 10,
		  0xabc, 10);
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, srtp, &n), CV_EREPLAY);
	/* the sender cannot re-send that far back either */
	n = len;
	memcpy(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)),
		     CV_EREPLAY);
	/* inside the window, out of order: accepted */
	roundtrip(pr.client_out, pr.server_in, 100 + CV_SRTP_REPLAY_WINDOW,
		  0xabc, 10);

	/* outbound re-send of a cached packet (NACK): same bytes */
	len = make_rtp(plain, 7, 0xdef, 50);
	n = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, srtp, &n, sizeof(srtp)), 0);
	slen = n;
	n = len;
	memcpy(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)), 0);
	CV_CHECK_INT(n, slen);
	CV_CHECK_MEM(buf, srtp, slen);

	/* RTCP: flipped bit, replay */
	len = make_rtcp(plain, 0xabc);
	n = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(
		cv_srtp_protect_rtcp(pr.client_out, srtp, &n, sizeof(srtp)), 0);
	slen = n;
	memcpy(buf, srtp, slen);
	buf[12] ^= 4;
	CV_CHECK_INT(cv_srtp_unprotect_rtcp(pr.server_in, buf, &n),
		     CV_EINTEGRITY);
	memcpy(buf, srtp, slen);
	buf[slen - 1] ^= 1; /* the SRTCP index is authenticated too */
	CV_CHECK_INT(cv_srtp_unprotect_rtcp(pr.server_in, buf, &n),
		     CV_EINTEGRITY);
	memcpy(buf, srtp, slen);
	CV_CHECK_INT(cv_srtp_unprotect_rtcp(pr.server_in, buf, &n), 0);
	n = slen;
	memcpy(buf, srtp, slen);
	CV_CHECK_INT(cv_srtp_unprotect_rtcp(pr.server_in, buf, &n), CV_EREPLAY);
out:
	free_pair(&pr);
}

/* Tailroom: exactly the trailer is enough and nothing past it is written;
 * one byte less is CV_ETOOBIG with the packet untouched. */
static void test_tailroom(enum cv_srtp_profile p)
{
	struct pair pr;
	_Alignas(8) uint8_t plain[300], buf[400];
	size_t rtp_t = cv_srtp_profile_rtp_trailer_bytes(p);
	size_t rtcp_t = cv_srtp_profile_rtcp_trailer_bytes(p);
	size_t len, n;

	if (make_pair(&pr, p))
		goto out;
	len = make_rtp(plain, 1, 0x55, 200);
	memcpy(buf, plain, len);
	memset(buf + len, 0xa5, sizeof(buf) - len);
	n = len;
	CV_CHECK_INT(cv_srtp_protect(pr.server_out, buf, &n, len + rtp_t - 1),
		     CV_ETOOBIG);
	CV_CHECK_INT(n, len);
	CV_CHECK_MEM(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.server_out, buf, &n, len + rtp_t), 0);
	CV_CHECK_INT(n, len + rtp_t);
	for (size_t i = len + rtp_t; i < sizeof(buf); i++)
		CV_CHECK_INT(buf[i], 0xa5);
	/* cap smaller than len is nonsense */
	n = len;
	CV_CHECK_INT(cv_srtp_protect(pr.server_out, plain, &n, len - 1),
		     CV_ETOOBIG);

	len = make_rtcp(plain, 0x55);
	memcpy(buf, plain, len);
	memset(buf + len, 0xa5, sizeof(buf) - len);
	n = len;
	CV_CHECK_INT(
		cv_srtp_protect_rtcp(pr.server_out, buf, &n, len + rtcp_t - 1),
		CV_ETOOBIG);
	CV_CHECK_INT(cv_srtp_protect_rtcp(pr.server_out, buf, &n, len + rtcp_t),
		     0);
	CV_CHECK_INT(n, len + rtcp_t);
	for (size_t i = len + rtcp_t; i < sizeof(buf); i++)
		CV_CHECK_INT(buf[i], 0xa5);
out:
	free_pair(&pr);
}

/* Truncated and malformed input: an error, never a crash or success. */
static void test_truncation_and_malformed(enum cv_srtp_profile p)
{
	struct pair pr;
	_Alignas(8) uint8_t plain[300], srtp[400], buf[400];
	size_t len, slen, n;

	if (make_pair(&pr, p))
		goto out;
	len = make_rtp(plain, 3, 0x77, 40);
	slen = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, srtp, &slen, sizeof(srtp)),
		     0);
	for (size_t cut = 0; cut < slen; cut++) {
		memcpy(buf, srtp, cut);
		n = cut;
		CV_CHECK(cv_srtp_unprotect(pr.server_in, buf, &n) != 0);
		CV_CHECK_INT(n, cut);
	}
	for (size_t cut = 0; cut < 12; cut++) {
		memcpy(buf, plain, cut);
		n = cut;
		CV_CHECK_INT(
			cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)),
			CV_EPARSE);
	}

	/* version 0; CSRC count past the end; extension past the end */
	memcpy(buf, plain, len);
	buf[0] = 0x00;
	n = len;
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)),
		     CV_EPARSE);
	memcpy(buf, plain, 20);
	buf[0] = 0x8f; /* 15 CSRCs = 72 octets of header */
	n = 20;
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)),
		     CV_EPARSE);
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), CV_EPARSE);
	memcpy(buf, plain, len);
	buf[0] = 0x90; /* X: extension header at 12, length 0xffff words */
	buf[12] = 0xbe;
	buf[13] = 0xde;
	buf[14] = 0xff;
	buf[15] = 0xff;
	n = len;
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)),
		     CV_EPARSE);
	n = len;
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), CV_EPARSE);
	n = 13; /* X set but no room for the extension header */
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), CV_EPARSE);

	/* a valid header extension survives the round trip */
	memcpy(buf, plain, len);
	buf[0] = 0x90;
	buf[12] = 0xbe;
	buf[13] = 0xde;
	buf[14] = 0;
	buf[15] = 1;
	memcpy(plain, buf, len);
	n = len;
	CV_CHECK_INT(cv_srtp_protect(pr.client_out, buf, &n, sizeof(buf)), 0);
	CV_CHECK_MEM(buf, plain, 20); /* header and extension stay clear */
	CV_CHECK_INT(cv_srtp_unprotect(pr.server_in, buf, &n), 0);
	CV_CHECK_INT(n, len);
	CV_CHECK_MEM(buf, plain, len);

	/* RTCP truncation */
	len = make_rtcp(plain, 0x77);
	slen = len;
	memcpy(srtp, plain, len);
	CV_CHECK_INT(
		cv_srtp_protect_rtcp(pr.client_out, srtp, &slen, sizeof(srtp)),
		0);
	for (size_t cut = 0; cut < slen; cut++) {
		memcpy(buf, srtp, cut);
		n = cut;
		CV_CHECK(cv_srtp_unprotect_rtcp(pr.server_in, buf, &n) != 0);
		CV_CHECK_INT(n, cut);
	}
	for (size_t cut = 0; cut < 8; cut++) {
		memcpy(buf, plain, cut);
		n = cut;
		CV_CHECK_INT(cv_srtp_protect_rtcp(pr.client_out, buf, &n,
						  sizeof(buf)),
			     CV_EPARSE);
	}
	/* wrong direction */
	n = len;
	memcpy(buf, plain, len);
	CV_CHECK_INT(cv_srtp_protect_rtcp(pr.client_in, buf, &n, sizeof(buf)),
		     -EINVAL);
	CV_CHECK_INT(cv_srtp_unprotect(pr.client_out, buf, &n), -EINVAL);
out:
	free_pair(&pr);
}

static void test_create_errors(void)
{
	struct cv_secret k;
	struct cv_srtp *s = (struct cv_srtp *)&k; /* must stay untouched */
	struct cv_srtp *const sentinel = s;
	uint8_t bytes[46] = {1};

	cv_secret_init(&k);
	cv_secret_set(&k, bytes, 30);
	CV_CHECK_INT(cv_srtp_create(&s, CV_SRTP_AEAD_AES_128_GCM, &k,
				    CV_SRTP_INBOUND),
		     -EINVAL);
	CV_CHECK(s == sentinel);
	CV_CHECK_INT(cv_srtp_create(&s, (enum cv_srtp_profile)7, &k,
				    CV_SRTP_INBOUND),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_srtp_create(&s, CV_SRTP_AES128_CM_HMAC_SHA1_80, &k,
				    (enum cv_srtp_direction)0),
		     -EINVAL);
	CV_CHECK_INT(cv_srtp_create(&s, CV_SRTP_AES128_CM_HMAC_SHA1_80, NULL,
				    CV_SRTP_INBOUND),
		     -EINVAL);
	CV_CHECK(s == sentinel);
	CV_CHECK_INT(cv_srtp_create(&s, CV_SRTP_AES128_CM_HMAC_SHA1_80, &k,
				    CV_SRTP_INBOUND),
		     0);
	CV_CHECK(s != sentinel);
	CV_CHECK_INT(cv_srtp_get_profile(s), CV_SRTP_AES128_CM_HMAC_SHA1_80);
	cv_srtp_destroy(s);
	cv_srtp_destroy(NULL);
	cv_secret_wipe(&k);
}

int main(void)
{
	for (int i = 0; i < 3; i++)
		CV_CHECK_INT(cv_srtp_global_init(), 0);
	test_profiles();
	test_split_keying();
	test_create_errors();
	for (size_t i = 0; i < N_PROFILES; i++) {
		printf("profile %s\n", cv_srtp_profile_name(all_profiles[i]));
		test_interop(all_profiles[i]);
		test_replay_and_integrity(all_profiles[i]);
		test_tailroom(all_profiles[i]);
		test_truncation_and_malformed(all_profiles[i]);
	}
	return cv_test_done("test_srtp");
}
