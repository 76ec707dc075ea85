/*
 * STUN messages (RFC 8489): a bounds-checked parser into a view, integrity
 * and fingerprint checks, and a writer into caller memory.
 *
 * HMAC-SHA1 and CRC-32 are computed here rather than through OpenSSL's EVP
 * interfaces: EVP_MAC allocates a context and fetches the algorithm on every
 * use, and the packet path must not allocate or take a lock (style.md). The
 * SHA-1 below follows FIPS 180-4 section 6.1, HMAC follows RFC 2104; the
 * unit tests check both against OpenSSL and against RFC 5769.
 */
#include "conclave/stun.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/err.h"

/* RFC 8489 section 14.7: the CRC-32 is xored with this ("STUN"). */
#define STUN_FINGERPRINT_XOR 0x5354554eu
#define STUN_ATTR_HDR_BYTES  4
#define STUN_MI_ATTR_BYTES   (STUN_ATTR_HDR_BYTES + CV_STUN_HMAC_SHA1_BYTES)
#define STUN_FP_ATTR_BYTES   (STUN_ATTR_HDR_BYTES + 4)
/* RFC 8489 sections 14.8 and 14.9: 128 characters, at most 763 bytes. */
#define STUN_TEXT_MAX_BYTES 763

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* ---- SHA-1 (FIPS 180-4 section 6.1) and HMAC (RFC 2104) ---------------- */

struct sha1 {
	uint32_t h[5];
	uint8_t block[64];
	size_t block_len;
	uint64_t total_bytes;
};

static uint32_t rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_init(struct sha1 *s)
{
	s->h[0] = 0x67452301u;
	s->h[1] = 0xefcdab89u;
	s->h[2] = 0x98badcfeu;
	s->h[3] = 0x10325476u;
	s->h[4] = 0xc3d2e1f0u;
	s->block_len = 0;
	s->total_bytes = 0;
}

static void sha1_block(struct sha1 *s, const uint8_t *p)
{
	uint32_t w[80];
	for (int t = 0; t < 16; t++)
		w[t] = rd32(p + 4 * t);
	for (int t = 16; t < 80; t++)
		w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3],
		 e = s->h[4];
	for (int t = 0; t < 80; t++) {
		uint32_t f, k;
		if (t < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999u;
		} else if (t < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1u;
		} else if (t < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdcu;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6u;
		}
		uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = tmp;
	}
	s->h[0] += a;
	s->h[1] += b;
	s->h[2] += c;
	s->h[3] += d;
	s->h[4] += e;
}

static void sha1_update(struct sha1 *s, const uint8_t *p, size_t n)
{
	s->total_bytes += n;
	while (n > 0) {
		size_t take = 64 - s->block_len;
		if (take > n)
			take = n;
		memcpy(s->block + s->block_len, p, take);
		s->block_len += take;
		p += take;
		n -= take;
		if (s->block_len == 64) {
			sha1_block(s, s->block);
			s->block_len = 0;
		}
	}
}

static void sha1_final(struct sha1 *s, uint8_t out[20])
{
	uint64_t bits = s->total_bytes * 8;
	uint8_t pad[72] = {0x80};
	/* Pad to 56 mod 64, then the 64-bit big-endian length. */
	size_t pad_len =
		(s->block_len < 56) ? 56 - s->block_len : 120 - s->block_len;
	for (int i = 0; i < 8; i++)
		pad[pad_len + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_update(s, pad, pad_len + 8);
	for (int i = 0; i < 5; i++)
		wr32(out + 4 * i, s->h[i]);
	OPENSSL_cleanse(s, sizeof(*s));
}

struct hmac_sha1 {
	struct sha1 inner;
	uint8_t okey[64];
};

static void hmac_sha1_init(struct hmac_sha1 *h, const uint8_t *key,
			   size_t key_len)
{
	uint8_t k0[64] = {0};
	uint8_t ikey[64];
	if (key_len > 64) {
		struct sha1 s;
		sha1_init(&s);
		sha1_update(&s, key, key_len);
		sha1_final(&s, k0);
	} else if (key_len > 0) {
		memcpy(k0, key, key_len);
	}
	for (int i = 0; i < 64; i++) {
		ikey[i] = k0[i] ^ 0x36;
		h->okey[i] = k0[i] ^ 0x5c;
	}
	sha1_init(&h->inner);
	sha1_update(&h->inner, ikey, sizeof(ikey));
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(ikey, sizeof(ikey));
}

static void hmac_sha1_final(struct hmac_sha1 *h, uint8_t out[20])
{
	uint8_t ihash[20];
	struct sha1 outer;
	sha1_final(&h->inner, ihash);
	sha1_init(&outer);
	sha1_update(&outer, h->okey, sizeof(h->okey));
	sha1_update(&outer, ihash, sizeof(ihash));
	sha1_final(&outer, out);
	OPENSSL_cleanse(h, sizeof(*h));
	OPENSSL_cleanse(ihash, sizeof(ihash));
}

/* ---- CRC-32 (ISO-HDLC, as RFC 8489 section 14.7 names it) --------------- */

static const uint32_t crc_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
	0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
	0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc_nibble[crc & 0xf];
		crc = (crc >> 4) ^ crc_nibble[crc & 0xf];
	}
	return crc;
}

/*
 * RFC 8489 sections 14.5 and 14.7: MESSAGE-INTEGRITY and FINGERPRINT cover
 * the message up to their own attribute, with the header's length field
 * set as if that attribute ended the message. The buffer is const here, so
 * the adjusted length is fed separately instead of patched in.
 */
static void stun_hmac(const uint8_t *msg, size_t attr_off, const uint8_t *key,
		      size_t key_len, uint8_t out[20])
{
	struct hmac_sha1 h;
	uint8_t adj_len[2];
	wr16(adj_len,
	     (uint16_t)(attr_off + STUN_MI_ATTR_BYTES - CV_STUN_HEADER_BYTES));
	hmac_sha1_init(&h, key, key_len);
	sha1_update(&h.inner, msg, 2);
	sha1_update(&h.inner, adj_len, 2);
	sha1_update(&h.inner, msg + 4, attr_off - 4);
	hmac_sha1_final(&h, out);
}

static uint32_t stun_crc(const uint8_t *msg, size_t attr_off)
{
	uint8_t adj_len[2];
	wr16(adj_len,
	     (uint16_t)(attr_off + STUN_FP_ATTR_BYTES - CV_STUN_HEADER_BYTES));
	uint32_t crc = 0xffffffffu;
	crc = crc32_update(crc, msg, 2);
	crc = crc32_update(crc, adj_len, 2);
	crc = crc32_update(crc, msg + 4, attr_off - 4);
	return (crc ^ 0xffffffffu) ^ STUN_FINGERPRINT_XOR;
}

/* ---- Parsing ------------------------------------------------------------ */

bool cv_stun_is_stun(const uint8_t *buf, size_t len)
{
	/* RFC 7983 section 7: first byte 0..3 is STUN; RFC 8489 section 5:
	 * 20-byte header carrying the magic cookie. */
	return buf && len >= CV_STUN_HEADER_BYTES && buf[0] <= 3 &&
	       rd32(buf + 4) == CV_STUN_MAGIC_COOKIE;
}

void cv_stun_attr_iter_init(struct cv_stun_attr_iter *it,
			    const struct cv_stun_msg *msg)
{
	it->buf = msg->buf;
	it->len = msg->len;
	it->off = CV_STUN_HEADER_BYTES;
}

int cv_stun_attr_next(struct cv_stun_attr_iter *it, struct cv_stun_attr *attr)
{
	if (it->off >= it->len)
		return 0;
	size_t left = it->len - it->off;
	if (left < STUN_ATTR_HDR_BYTES)
		return CV_EPARSE;
	const uint8_t *p = it->buf + it->off;
	uint16_t alen = rd16(p + 2);
	/* RFC 8489 section 14: values are padded to a multiple of 4. */
	if (left - STUN_ATTR_HDR_BYTES < pad4(alen))
		return CV_EPARSE;
	attr->type = rd16(p);
	attr->len = alen;
	attr->value = p + STUN_ATTR_HDR_BYTES;
	attr->offset = it->off;
	it->off += STUN_ATTR_HDR_BYTES + pad4(alen);
	return 1;
}

/* RFC 8489 section 5: M11..M0 and C1 C0 interleaved in the 14-bit type. */
static enum cv_stun_class type_class(uint16_t t)
{
	return (enum cv_stun_class)(((t >> 7) & 0x2) | ((t >> 4) & 0x1));
}

static uint16_t type_method(uint16_t t)
{
	return (uint16_t)((t & 0x000f) | ((t & 0x00e0) >> 1) |
			  ((t & 0x3e00) >> 2));
}

static uint16_t type_encode(enum cv_stun_class cls, uint16_t method)
{
	unsigned c = (unsigned)cls;
	return (uint16_t)((method & 0x000f) | ((method & 0x0070) << 1) |
			  ((method & 0x0f80) << 2) | ((c & 0x1) << 4) |
			  ((c & 0x2) << 7));
}

/* RFC 8489 section 14.2: port xored with the cookie's top half, address
 * with the cookie (IPv4) or the cookie and transaction id (IPv6). */
static int parse_xor_address(const struct cv_stun_attr *a, const uint8_t *txid,
			     struct sockaddr_storage *out)
{
	if (a->len < 4)
		return CV_EPARSE;
	uint8_t family = a->value[1];
	uint16_t port = rd16(a->value + 2) ^ (CV_STUN_MAGIC_COOKIE >> 16);
	memset(out, 0, sizeof(*out));
	if (family == 0x01) {
		if (a->len != 8)
			return CV_EPARSE;
		struct sockaddr_in *sin = (struct sockaddr_in *)out;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr =
			htonl(rd32(a->value + 4) ^ CV_STUN_MAGIC_COOKIE);
		return 0;
	}
	if (family == 0x02) {
		if (a->len != 20)
			return CV_EPARSE;
		uint8_t mask[16];
		wr32(mask, CV_STUN_MAGIC_COOKIE);
		memcpy(mask + 4, txid, CV_STUN_TXID_BYTES);
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		for (int i = 0; i < 16; i++)
			sin6->sin6_addr.s6_addr[i] = a->value[4 + i] ^ mask[i];
		return 0;
	}
	return CV_EPARSE;
}

/* RFC 8489 section 14.8: class 3..6 in the low 3 bits of byte 2, number
 * 0..99 in byte 3, then a UTF-8 reason phrase. */
static int parse_error_code(const struct cv_stun_attr *a,
			    struct cv_stun_msg *msg)
{
	if (a->len < 4 || a->len - 4 > STUN_TEXT_MAX_BYTES)
		return CV_EPARSE;
	unsigned cls = a->value[2] & 0x7;
	unsigned num = a->value[3];
	if (cls < 3 || cls > 6 || num > 99)
		return CV_EPARSE;
	msg->has_error_code = true;
	msg->error_code = (uint16_t)(cls * 100 + num);
	msg->reason = a->value + 4;
	msg->reason_len = a->len - 4u;
	return 0;
}

static bool is_known_required(uint16_t type)
{
	switch (type) {
	case CV_STUN_ATTR_MAPPED_ADDRESS:
	case CV_STUN_ATTR_USERNAME:
	case CV_STUN_ATTR_MESSAGE_INTEGRITY:
	case CV_STUN_ATTR_ERROR_CODE:
	case CV_STUN_ATTR_UNKNOWN_ATTRIBUTES:
	case CV_STUN_ATTR_REALM:
	case CV_STUN_ATTR_NONCE:
	case CV_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
	case CV_STUN_ATTR_PASSWORD_ALGORITHM:
	case CV_STUN_ATTR_USERHASH:
	case CV_STUN_ATTR_XOR_MAPPED_ADDRESS:
	case CV_STUN_ATTR_PRIORITY:
	case CV_STUN_ATTR_USE_CANDIDATE:
		return true;
	default:
		return false;
	}
}

static void note_unknown(struct cv_stun_msg *msg, uint16_t type)
{
	/* RFC 8489 section 14: 0x0000-0x7FFF are comprehension-required. */
	if (type >= 0x8000 || is_known_required(type))
		return;
	if (msg->n_unknown < CV_STUN_MAX_UNKNOWN)
		msg->unknown[msg->n_unknown] = type;
	msg->n_unknown++;
}

/* Records one attribute in the view; only its first instance counts (RFC
 * 8489 section 14). */
static int parse_attr(struct cv_stun_msg *msg, const struct cv_stun_attr *a,
		      uint32_t *seen)
{
	int bit;
	switch (a->type) {
	case CV_STUN_ATTR_USERNAME:
		bit = 0;
		if (a->len > CV_STUN_USERNAME_MAX_BYTES)
			return CV_EPARSE;
		break;
	case CV_STUN_ATTR_SOFTWARE:
		bit = 1;
		if (a->len > STUN_TEXT_MAX_BYTES)
			return CV_EPARSE;
		break;
	case CV_STUN_ATTR_PRIORITY:
		bit = 2;
		if (a->len != 4)
			return CV_EPARSE;
		break;
	case CV_STUN_ATTR_USE_CANDIDATE:
		bit = 3;
		if (a->len != 0)
			return CV_EPARSE;
		break;
	case CV_STUN_ATTR_ICE_CONTROLLING:
	case CV_STUN_ATTR_ICE_CONTROLLED:
		bit = a->type == CV_STUN_ATTR_ICE_CONTROLLING ? 4 : 5;
		if (a->len != 8)
			return CV_EPARSE;
		break;
	case CV_STUN_ATTR_XOR_MAPPED_ADDRESS:
		bit = 6;
		break;
	case CV_STUN_ATTR_ERROR_CODE:
		bit = 7;
		break;
	default:
		note_unknown(msg, a->type);
		return 0;
	}
	if (*seen & (1u << bit))
		return 0;
	*seen |= 1u << bit;

	switch (a->type) {
	case CV_STUN_ATTR_USERNAME:
		msg->username = a->value;
		msg->username_len = a->len;
		return 0;
	case CV_STUN_ATTR_SOFTWARE:
		msg->software = a->value;
		msg->software_len = a->len;
		return 0;
	case CV_STUN_ATTR_PRIORITY:
		msg->has_priority = true;
		msg->priority = rd32(a->value);
		return 0;
	case CV_STUN_ATTR_USE_CANDIDATE:
		msg->use_candidate = true;
		return 0;
	case CV_STUN_ATTR_ICE_CONTROLLING:
	case CV_STUN_ATTR_ICE_CONTROLLED:
		if (!msg->has_ice_controlling && !msg->has_ice_controlled)
			msg->tiebreaker = ((uint64_t)rd32(a->value) << 32) |
					  rd32(a->value + 4);
		if (a->type == CV_STUN_ATTR_ICE_CONTROLLING)
			msg->has_ice_controlling = true;
		else
			msg->has_ice_controlled = true;
		return 0;
	case CV_STUN_ATTR_XOR_MAPPED_ADDRESS:
		msg->has_xor_mapped = true;
		return parse_xor_address(a, msg->txid, &msg->xor_mapped);
	default: /* CV_STUN_ATTR_ERROR_CODE */
		return parse_error_code(a, msg);
	}
}

static int parse_header(struct cv_stun_msg *msg, const uint8_t *buf, size_t len)
{
	if (!buf || len < CV_STUN_HEADER_BYTES)
		return CV_EPARSE;
	/* RFC 8489 section 5: the two most significant bits are zero, the
	 * length excludes the header and is a multiple of 4, and the cookie
	 * is fixed. One UDP datagram carries exactly one message. */
	if (buf[0] & 0xc0)
		return CV_EPARSE;
	size_t body = rd16(buf + 2);
	if (body % 4 != 0 || CV_STUN_HEADER_BYTES + body != len)
		return CV_EPARSE;
	if (rd32(buf + 4) != CV_STUN_MAGIC_COOKIE)
		return CV_EPARSE;
	memset(msg, 0, sizeof(*msg));
	msg->buf = buf;
	msg->len = len;
	msg->type = rd16(buf);
	msg->cls = type_class(msg->type);
	msg->method = type_method(msg->type);
	msg->txid = buf + 8;
	return 0;
}

int cv_stun_parse(struct cv_stun_msg *msg, const uint8_t *buf, size_t len)
{
	int err = parse_header(msg, buf, len);
	if (err)
		return err;

	struct cv_stun_attr_iter it;
	struct cv_stun_attr a;
	uint32_t seen = 0;
	cv_stun_attr_iter_init(&it, msg);
	while ((err = cv_stun_attr_next(&it, &a)) == 1) {
		/* RFC 8489 section 14.7: FINGERPRINT is the last attribute. */
		if (msg->fingerprint_offset)
			return CV_EPARSE;
		if (a.type == CV_STUN_ATTR_FINGERPRINT) {
			if (a.len != 4)
				return CV_EPARSE;
			msg->fingerprint_offset = a.offset;
			continue;
		}
		/* Section 14.5: after MESSAGE-INTEGRITY only
		 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count. */
		if (msg->integrity_offset)
			continue;
		if (a.type == CV_STUN_ATTR_MESSAGE_INTEGRITY) {
			if (a.len != CV_STUN_HMAC_SHA1_BYTES)
				return CV_EPARSE;
			msg->integrity_offset = a.offset;
			continue;
		}
		err = parse_attr(msg, &a, &seen);
		if (err)
			return err;
	}
	return err;
}

int cv_stun_check_integrity(const struct cv_stun_msg *msg, const uint8_t *key,
			    size_t key_len)
{
	if (!msg->integrity_offset)
		return -ENOENT;
	uint8_t mac[CV_STUN_HMAC_SHA1_BYTES];
	size_t off = msg->integrity_offset;
	stun_hmac(msg->buf, off, key, key_len, mac);
	int diff = CRYPTO_memcmp(mac, msg->buf + off + STUN_ATTR_HDR_BYTES,
				 sizeof(mac));
	OPENSSL_cleanse(mac, sizeof(mac));
	return diff ? CV_EINTEGRITY : 0;
}

int cv_stun_check_fingerprint(const struct cv_stun_msg *msg)
{
	if (!msg->fingerprint_offset)
		return -ENOENT;
	size_t off = msg->fingerprint_offset;
	uint32_t want = rd32(msg->buf + off + STUN_ATTR_HDR_BYTES);
	return stun_crc(msg->buf, off) == want ? 0 : CV_EINTEGRITY;
}

int cv_stun_local_ufrag(const uint8_t *buf, size_t len, const uint8_t **ufrag,
			size_t *ufrag_len)
{
	struct cv_stun_msg msg;
	int err = cv_stun_parse(&msg, buf, len);
	if (err)
		return err;
	if (msg.cls != CV_STUN_REQUEST ||
	    msg.method != CV_STUN_METHOD_BINDING || !msg.username)
		return -ENOENT;
	/* RFC 8445 section 7.2.2: USERNAME is "RFRAG:LFRAG" from the sender's
	 * side, so the receiver's (our) ufrag comes first. */
	const uint8_t *colon = memchr(msg.username, ':', msg.username_len);
	if (!colon)
		return -ENOENT;
	*ufrag = msg.username;
	*ufrag_len = (size_t)(colon - msg.username);
	return 0;
}

/* ---- Writing ------------------------------------------------------------ */

void cv_stun_writer_init(struct cv_stun_writer *w, uint8_t *buf, size_t cap,
			 enum cv_stun_class cls, uint16_t method,
			 const uint8_t *txid)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
	w->pad_byte = 0;
	if (!buf || cap < CV_STUN_HEADER_BYTES) {
		w->err = -ENOBUFS;
		return;
	}
	wr16(buf, type_encode(cls, method & 0x0fff));
	wr16(buf + 2, 0);
	wr32(buf + 4, CV_STUN_MAGIC_COOKIE);
	memcpy(buf + 8, txid, CV_STUN_TXID_BYTES);
	w->len = CV_STUN_HEADER_BYTES;
}

/* Makes room for an attribute with a value of vlen bytes and writes its
 * header; returns the value's position or NULL (writer failed). */
static uint8_t *writer_reserve(struct cv_stun_writer *w, uint16_t type,
			       size_t vlen)
{
	if (w->err)
		return NULL;
	size_t need = STUN_ATTR_HDR_BYTES + pad4(vlen);
	if (vlen > 0xffff || w->cap - w->len < need ||
	    w->len + need - CV_STUN_HEADER_BYTES > 0xffff) {
		w->err = -ENOBUFS;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	wr16(p, type);
	wr16(p + 2, (uint16_t)vlen);
	memset(p + STUN_ATTR_HDR_BYTES + vlen, w->pad_byte, pad4(vlen) - vlen);
	w->len += need;
	wr16(w->buf + 2, (uint16_t)(w->len - CV_STUN_HEADER_BYTES));
	return p + STUN_ATTR_HDR_BYTES;
}

int cv_stun_put_attr(struct cv_stun_writer *w, uint16_t type, const void *value,
		     size_t len)
{
	uint8_t *p = writer_reserve(w, type, len);
	if (!p)
		return w->err;
	if (len)
		memcpy(p, value, len);
	return 0;
}

int cv_stun_put_u32(struct cv_stun_writer *w, uint16_t type, uint32_t v)
{
	uint8_t b[4];
	wr32(b, v);
	return cv_stun_put_attr(w, type, b, sizeof(b));
}

int cv_stun_put_u64(struct cv_stun_writer *w, uint16_t type, uint64_t v)
{
	uint8_t b[8];
	wr32(b, (uint32_t)(v >> 32));
	wr32(b + 4, (uint32_t)v);
	return cv_stun_put_attr(w, type, b, sizeof(b));
}

int cv_stun_put_xor_address(struct cv_stun_writer *w, uint16_t type,
			    const struct sockaddr_storage *addr)
{
	uint8_t v[20] = {0};
	size_t vlen;
	if (w->err)
		return w->err;
	/* RFC 8489 section 14.2. */
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)addr;
		v[1] = 0x01;
		wr16(v + 2,
		     ntohs(sin->sin_port) ^ (CV_STUN_MAGIC_COOKIE >> 16));
		wr32(v + 4, ntohl(sin->sin_addr.s_addr) ^ CV_STUN_MAGIC_COOKIE);
		vlen = 8;
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)addr;
		uint8_t mask[16];
		wr32(mask, CV_STUN_MAGIC_COOKIE);
		memcpy(mask + 4, w->buf + 8, CV_STUN_TXID_BYTES);
		v[1] = 0x02;
		wr16(v + 2,
		     ntohs(sin6->sin6_port) ^ (CV_STUN_MAGIC_COOKIE >> 16));
		for (int i = 0; i < 16; i++)
			v[4 + i] = sin6->sin6_addr.s6_addr[i] ^ mask[i];
		vlen = 20;
	} else {
		return -EAFNOSUPPORT;
	}
	return cv_stun_put_attr(w, type, v, vlen);
}

static const char *default_reason(int code)
{
	switch (code) {
	case 300:
		return "Try Alternate";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthenticated";
	case 420:
		return "Unknown Attribute";
	case 438:
		return "Stale Nonce";
	case 487:
		return "Role Conflict";
	case 500:
		return "Server Error";
	default:
		return "Error";
	}
}

int cv_stun_put_error_code(struct cv_stun_writer *w, int code,
			   const char *reason)
{
	if (w->err)
		return w->err;
	if (code < 300 || code > 699)
		return -EINVAL;
	if (!reason)
		reason = default_reason(code);
	size_t rlen = strlen(reason);
	if (rlen > STUN_TEXT_MAX_BYTES)
		return -EINVAL;
	/* RFC 8489 section 14.8: 21 reserved bits, class, number, reason. */
	uint8_t *p = writer_reserve(w, CV_STUN_ATTR_ERROR_CODE, 4 + rlen);
	if (!p)
		return w->err;
	p[0] = 0;
	p[1] = 0;
	p[2] = (uint8_t)(code / 100);
	p[3] = (uint8_t)(code % 100);
	memcpy(p + 4, reason, rlen);
	return 0;
}

int cv_stun_put_integrity(struct cv_stun_writer *w, const uint8_t *key,
			  size_t key_len)
{
	size_t off = w->len;
	uint8_t *p = writer_reserve(w, CV_STUN_ATTR_MESSAGE_INTEGRITY,
				    CV_STUN_HMAC_SHA1_BYTES);
	if (!p)
		return w->err;
	/* The header length already counts this attribute, as section 14.5
	 * wants; stun_hmac recomputes that same value from off. */
	stun_hmac(w->buf, off, key, key_len, p);
	return 0;
}

int cv_stun_put_fingerprint(struct cv_stun_writer *w)
{
	size_t off = w->len;
	uint8_t *p = writer_reserve(w, CV_STUN_ATTR_FINGERPRINT, 4);
	if (!p)
		return w->err;
	wr32(p, stun_crc(w->buf, off));
	return 0;
}

int cv_stun_writer_finish(struct cv_stun_writer *w, size_t *out_len)
{
	if (w->err)
		return w->err;
	*out_len = w->len;
	return 0;
}

int cv_stun_build_binding_success(uint8_t *buf, size_t cap, const uint8_t *txid,
				  const struct sockaddr_storage *mapped,
				  const uint8_t *key, size_t key_len,
				  size_t *out_len)
{
	struct cv_stun_writer w;
	cv_stun_writer_init(&w, buf, cap, CV_STUN_SUCCESS,
			    CV_STUN_METHOD_BINDING, txid);
	int err = cv_stun_put_xor_address(&w, CV_STUN_ATTR_XOR_MAPPED_ADDRESS,
					  mapped);
	if (err)
		return err;
	if (key)
		cv_stun_put_integrity(&w, key, key_len);
	cv_stun_put_fingerprint(&w);
	return cv_stun_writer_finish(&w, out_len);
}

int cv_stun_build_error(uint8_t *buf, size_t cap, uint16_t method,
			const uint8_t *txid, int code, const uint16_t *unknown,
			size_t n_unknown, const uint8_t *key, size_t key_len,
			size_t *out_len)
{
	struct cv_stun_writer w;
	cv_stun_writer_init(&w, buf, cap, CV_STUN_ERROR, method, txid);
	int err = cv_stun_put_error_code(&w, code, NULL);
	if (err)
		return err;
	if (code == CV_STUN_ERR_UNKNOWN_ATTRIBUTE && n_unknown > 0) {
		/* RFC 8489 section 14.9: a list of 16-bit types, normally
		 * padded. */
		uint8_t list[2 * CV_STUN_MAX_UNKNOWN];
		if (n_unknown > CV_STUN_MAX_UNKNOWN)
			n_unknown = CV_STUN_MAX_UNKNOWN;
		for (size_t i = 0; i < n_unknown; i++)
			wr16(list + 2 * i, unknown[i]);
		cv_stun_put_attr(&w, CV_STUN_ATTR_UNKNOWN_ATTRIBUTES, list,
				 2 * n_unknown);
	}
	if (key)
		cv_stun_put_integrity(&w, key, key_len);
	cv_stun_put_fingerprint(&w);
	return cv_stun_writer_finish(&w, out_len);
}

int cv_stun_build_binding_request(uint8_t *buf, size_t cap,
				  const struct cv_stun_binding_request *req,
				  size_t *out_len)
{
	struct cv_stun_writer w;
	cv_stun_writer_init(&w, buf, cap, CV_STUN_REQUEST,
			    CV_STUN_METHOD_BINDING, req->txid);
	if (req->username) {
		size_t ulen = strlen(req->username);
		if (ulen > CV_STUN_USERNAME_MAX_BYTES)
			return -EINVAL;
		cv_stun_put_attr(&w, CV_STUN_ATTR_USERNAME, req->username,
				 ulen);
	}
	if (req->ice) {
		/* RFC 8445 section 7.1.2. */
		if (req->priority)
			cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY,
					req->priority);
		if (req->use_candidate)
			cv_stun_put_attr(&w, CV_STUN_ATTR_USE_CANDIDATE, NULL,
					 0);
		cv_stun_put_u64(&w,
				req->controlling ? CV_STUN_ATTR_ICE_CONTROLLING
						 : CV_STUN_ATTR_ICE_CONTROLLED,
				req->tiebreaker);
	}
	if (req->key)
		cv_stun_put_integrity(&w, req->key, req->key_len);
	cv_stun_put_fingerprint(&w);
	return cv_stun_writer_finish(&w, out_len);
}

bool cv_sockaddr_equal(const struct sockaddr_storage *a,
		       const struct sockaddr_storage *b)
{
	if (!a || !b || a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a;
		const struct sockaddr_in *y = (const void *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a;
		const struct sockaddr_in6 *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr,
			      sizeof(x->sin6_addr)) == 0;
	}
	return false;
}
