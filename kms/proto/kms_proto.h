/*
 * The client-KMS channel's wire format, shared by both ends (conclave-kms
 * and the client library): the outer messages, the plaintexts they carry,
 * and the crypto both ends must compute identically. The layout, the key
 * schedule and why it is built so are in docs/kms.md, "Client-KMS
 * channel". All integers are big-endian.
 *
 *   HELLO        client -> KMS   1 1 E_pub(65) len(2) AES-GCM(K_hello, body)
 *   HELLO_REPLY  KMS -> client   1 2 sid(16) S_pub(65) expires(8)
 *                                siglen(2) ECDSA(cert key, transcript)
 *   REQUEST      client -> KMS   1 3 sid(16) seq(8) AES-GCM(K_c2s, request)
 *   RESPONSE     KMS -> client   1 4 sid(16) seq(8) AES-GCM(K_s2c, response)
 *   ERROR        KMS -> client   1 5 status(1)             (unauthenticated)
 *
 * Messages are opaque byte strings to any relay (the media node's
 * `POST /v1/channel` forwards them byte for byte): nothing in them names
 * a room, a member or a key in clear.
 *
 * Parsers: bounds-checked, no allocation; the views point into the
 * caller's buffer (borrowed; valid while it is). Bad input returns
 * CV_EPARSE (malformed) or CV_EUNSUPP (another version), never crashes.
 * Thread: any; no state.
 */
#ifndef CONCLAVE_KMS_PROTO_H
#define CONCLAVE_KMS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "conclave/secret.h"

#define CV_KMS_PROTO_VERSION	 1
#define CV_KMS_EC_PUB_BYTES	 65 /* SEC1 uncompressed P-256 point */
#define CV_KMS_RANDOM_BYTES	 16
#define CV_KMS_SID_BYTES	 16
#define CV_KMS_TAG_BYTES	 16
#define CV_KMS_SIG_MAX_BYTES	 72 /* DER ECDSA P-256 */
#define CV_KMS_HASH_BYTES	 32
#define CV_KMS_CHANNEL_KEY_BYTES 32 /* AES-256-GCM */
/* Largest message either side sends or accepts. */
#define CV_KMS_MSG_MAX_BYTES 8192
/* Largest KMS token (compact JWS) carried in a HELLO. */
#define CV_KMS_TOKEN_MAX_BYTES 4096
/* Longest room URI / key URI and member id on the wire. */
#define CV_KMS_WIRE_URI_MAX 255
#define CV_KMS_WIRE_ID_MAX  64
/* Longest key and salt a RESPONSE carries. */
#define CV_KMS_WIRE_KEY_MAX  32
#define CV_KMS_WIRE_SALT_MAX 12
/* REGISTER_ENDPOINT: an RFC 9185 association id and the SHA-256
 * fingerprint of a DTLS certificate (the endpoint's; in a GET_KEY answer,
 * the Key Distributor's). */
#define CV_KMS_ASSOC_BYTES 16
#define CV_KMS_FP_BYTES	   32

/* Fixed sizes of the heads (the AAD of the sealed part). */
#define CV_KMS_HELLO_HEAD_BYTES (2 + CV_KMS_EC_PUB_BYTES + 2)
#define CV_KMS_REPLY_SIGNED_BYTES                                              \
	(2 + CV_KMS_SID_BYTES + CV_KMS_EC_PUB_BYTES + 8)
#define CV_KMS_SEALED_HEAD_BYTES (2 + CV_KMS_SID_BYTES + 8)

enum cv_kms_msg_type {
	CV_KMS_MSG_HELLO = 1,
	CV_KMS_MSG_HELLO_REPLY = 2,
	CV_KMS_MSG_REQUEST = 3,
	CV_KMS_MSG_RESPONSE = 4,
	CV_KMS_MSG_ERROR = 5,
};

/* Answer codes: in an ERROR message and in every RESPONSE. */
enum cv_kms_status {
	CV_KMS_OK = 0,
	CV_KMS_BAD_REQUEST = 1,
	CV_KMS_TOKEN_INVALID = 2,
	CV_KMS_TOKEN_EXPIRED = 3,
	CV_KMS_REPLAYED = 4,
	CV_KMS_NOT_MEMBER = 5,
	CV_KMS_UNKNOWN_ROOM = 6,
	CV_KMS_EXISTS = 7,
	CV_KMS_REQUEST_EXPIRED = 8,
	CV_KMS_UNKNOWN_SESSION = 9,
	CV_KMS_INTERNAL = 10,
	CV_KMS_STATUS_COUNT,
};

/* "ok", "bad_request", "token_invalid", ...; "unknown" out of range. */
const char *cv_kms_status_name(unsigned status);

enum cv_kms_op {
	CV_KMS_OP_CREATE_ROOM = 1,   /* room; the actor becomes a member */
	CV_KMS_OP_ADD_MEMBER = 2,    /* room, member; actor must be a member */
	CV_KMS_OP_REMOVE_MEMBER = 3, /* room, member; rotates the key */
	CV_KMS_OP_GET_KEY = 4,	     /* room: the current EKT key */
	/* room, association id, endpoint certificate fingerprint; the
	 * actor must be a member */
	CV_KMS_OP_REGISTER_ENDPOINT = 5,
};

/* A parsed outer message; which fields are set depends on type. */
struct cv_kms_msg {
	enum cv_kms_msg_type type;
	const uint8_t *head;	/* the whole message start: AAD / signed part */
	size_t head_len;	/* bytes of AAD (sealed types) or signed part */
	const uint8_t *eph_pub; /* HELLO: the one-time ECIES key */
	const uint8_t *sid;	/* HELLO_REPLY, REQUEST, RESPONSE */
	const uint8_t *kms_pub; /* HELLO_REPLY: the KMS's ECDH half */
	uint64_t expires_ms;	/* HELLO_REPLY: session end, wall clock */
	const uint8_t *sig;	/* HELLO_REPLY */
	size_t sig_len;		/* 8..CV_KMS_SIG_MAX_BYTES */
	uint64_t seq;		/* REQUEST, RESPONSE: the nonce counter */
	const uint8_t *sealed;	/* HELLO, REQUEST, RESPONSE: ct || tag */
	size_t sealed_len;	/* >= CV_KMS_TAG_BYTES */
	enum cv_kms_status status; /* ERROR */
};

/*
 * Parses one whole message buf[0..len) (at most CV_KMS_MSG_MAX_BYTES; no
 * trailing bytes). 0, CV_EPARSE, CV_EUNSUPP (version), CV_ETOOBIG. *out
 * is scratch on error.
 */
int cv_kms_msg_parse(const uint8_t *buf, size_t len, struct cv_kms_msg *out);

/* Writers: return the bytes written, or -ENOBUFS / -EINVAL. */
/* The HELLO head; the sealed body (sealed_len bytes) follows it. */
int cv_kms_hello_head_write(uint8_t *out, size_t cap,
			    const uint8_t eph_pub[CV_KMS_EC_PUB_BYTES],
			    size_t sealed_len);
/* The signed part of a HELLO_REPLY; append the signature with
 * cv_kms_reply_sig_write(). */
int cv_kms_reply_signed_write(uint8_t *out, size_t cap,
			      const uint8_t sid[CV_KMS_SID_BYTES],
			      const uint8_t kms_pub[CV_KMS_EC_PUB_BYTES],
			      uint64_t expires_ms);
/* Appends siglen || sig at out[at..]; returns the new total length. */
int cv_kms_reply_sig_write(uint8_t *out, size_t cap, size_t at,
			   const uint8_t *sig, size_t sig_len);
/* The head of a REQUEST or RESPONSE (the AAD); ct || tag follows. */
int cv_kms_sealed_head_write(uint8_t *out, size_t cap,
			     enum cv_kms_msg_type type,
			     const uint8_t sid[CV_KMS_SID_BYTES], uint64_t seq);
int cv_kms_error_write(uint8_t *out, size_t cap, enum cv_kms_status status);

/* ---- plaintexts --------------------------------------------------------- */

/* HELLO body: client_pub(65) random(16) time_ms(8) token_len(2) token. */
struct cv_kms_hello_body {
	const uint8_t *client_pub; /* the client's channel ECDH half */
	const uint8_t *random;
	uint64_t time_ms;
	const char *token; /* not NUL-terminated */
	size_t token_len;  /* 1..CV_KMS_TOKEN_MAX_BYTES */
};
int cv_kms_hello_body_parse(const uint8_t *p, size_t len,
			    struct cv_kms_hello_body *out);
int cv_kms_hello_body_write(uint8_t *out, size_t cap,
			    const struct cv_kms_hello_body *b);

/*
 * REQUEST body: op(1) expires_ms(8) room_len(1) room member_len(1) member,
 * then for REGISTER_ENDPOINT only: assoc(16) fp(32).
 * room: 1..CV_KMS_WIRE_URI_MAX printable ASCII without blanks; member:
 * 1..CV_KMS_WIRE_ID_MAX of the same for ADD/REMOVE, empty otherwise.
 * assoc: the RFC 9185 association id the node gave the endpoint; fp: the
 * SHA-256 digest of the endpoint's DTLS certificate (RFC 8122).
 */
struct cv_kms_req {
	enum cv_kms_op op;
	uint64_t expires_ms; /* wall clock; the KMS refuses it after that */
	const char *room;    /* not NUL-terminated */
	size_t room_len;
	const char *member; /* not NUL-terminated */
	size_t member_len;
	const uint8_t *assoc; /* REGISTER_ENDPOINT: CV_KMS_ASSOC_BYTES */
	const uint8_t *fp;    /* REGISTER_ENDPOINT: CV_KMS_FP_BYTES */
};
int cv_kms_req_parse(const uint8_t *p, size_t len, struct cv_kms_req *out);
int cv_kms_req_write(uint8_t *out, size_t cap, const struct cv_kms_req *r);

/*
 * RESPONSE body: req_seq(8) status(1) op(1), then on success:
 *   GET_KEY: epoch(4) spi(2) key_len(1) key salt_len(1) salt uri_len(1) uri
 *            kd_fp_len(1) kd_fp
 *   REGISTER_ENDPOINT: nothing
 *   others:  epoch(4)
 * A refusal ends after op. key 16 or 32 octets, salt 12, spi 15 bits;
 * kd_fp: the SHA-256 fingerprint of the Key Distributor's DTLS
 * certificate, CV_KMS_FP_BYTES octets, or none (length 0) when the KMS
 * runs no Key Distributor.
 */
struct cv_kms_resp {
	uint64_t req_seq; /* the REQUEST's seq this answers */
	enum cv_kms_status status;
	enum cv_kms_op op;
	uint32_t epoch;
	uint16_t spi;
	const uint8_t *key; /* key material: borrowed, caller wipes buffer */
	size_t key_len;
	const uint8_t *salt;
	size_t salt_len;
	const char *uri; /* key URI, not NUL-terminated */
	size_t uri_len;
	const uint8_t *kd_fp; /* GET_KEY: NULL when kd_fp_len is 0 */
	size_t kd_fp_len;     /* 0 or CV_KMS_FP_BYTES */
};
int cv_kms_resp_parse(const uint8_t *p, size_t len, struct cv_kms_resp *out);
int cv_kms_resp_write(uint8_t *out, size_t cap, const struct cv_kms_resp *r);

/* True when s[0..len) is 1..max printable ASCII without blanks. */
bool cv_kms_wire_str_valid(const char *s, size_t len, size_t max);

/* ---- the crypto both ends compute (OpenSSL; kms_crypto.c) --------------- */

/* A fresh P-256 key pair (*out: new reference, EVP_PKEY_free). 0 or
 * CV_ECRYPTO. */
int cv_kms_ec_generate(EVP_PKEY **out);
/* The SEC1 uncompressed public point of k. 0, -EINVAL (not P-256),
 * CV_ECRYPTO. */
int cv_kms_ec_pub_encode(EVP_PKEY *k, uint8_t out[CV_KMS_EC_PUB_BYTES]);
/* A public key from a point (checked to lie on the curve). 0, CV_EPARSE,
 * CV_ECRYPTO. */
int cv_kms_ec_pub_decode(const uint8_t in[CV_KMS_EC_PUB_BYTES], EVP_PKEY **out);

/*
 * The HELLO key (ECIES, ephemeral-static): Z = ECDH(priv, peer),
 * K = HKDF-SHA256(salt = eph_pub || kms_pub, IKM = Z,
 * info = "conclave-kms hello v1", 32). The client calls it with (e, KMS
 * key), the KMS with (its certificate key, E). *out: 32 bytes.
 */
int cv_kms_hello_key(EVP_PKEY *priv, EVP_PKEY *peer,
		     const uint8_t eph_pub[CV_KMS_EC_PUB_BYTES],
		     const uint8_t kms_pub[CV_KMS_EC_PUB_BYTES],
		     struct cv_secret *out);

/* th = SHA-256(hello[0..hello_len) || reply_signed[0..signed_len)).
 * 0 or CV_ECRYPTO. */
int cv_kms_transcript(const uint8_t *hello, size_t hello_len,
		      const uint8_t *reply_signed, size_t signed_len,
		      uint8_t th[CV_KMS_HASH_BYTES]);

/*
 * The channel keys: PRK = HKDF-Extract(salt = th, IKM = ECDH(priv, peer)),
 * c2s = Expand(PRK, "conclave-kms c2s v1", 32), s2c = Expand(PRK,
 * "conclave-kms s2c v1", 32). 0 or CV_ECRYPTO (outputs wiped).
 */
int cv_kms_channel_keys(EVP_PKEY *priv, EVP_PKEY *peer,
			const uint8_t th[CV_KMS_HASH_BYTES],
			struct cv_secret *c2s, struct cv_secret *s2c);

/* ECDSA-SHA256 over "conclave-kms reply v1" || 0x00 || th (DER). */
int cv_kms_reply_sign(EVP_PKEY *key, const uint8_t th[CV_KMS_HASH_BYTES],
		      uint8_t sig[CV_KMS_SIG_MAX_BYTES], size_t *sig_len);
/* 0 when sig verifies under pub, else CV_EINTEGRITY. */
int cv_kms_reply_verify(EVP_PKEY *pub, const uint8_t th[CV_KMS_HASH_BYTES],
			const uint8_t *sig, size_t sig_len);

/*
 * AES-256-GCM with nonce = 0x00000000 || counter (64-bit BE) and a 16-octet
 * tag. seal writes pt_len + 16 bytes to out; open reads ct || tag and
 * writes ct_len - 16 bytes to out (may alias in for both). Return the
 * bytes written; CV_EINTEGRITY (open: tag), -EINVAL, CV_ECRYPTO.
 */
int cv_kms_seal(const struct cv_secret *key, uint64_t counter,
		const uint8_t *aad, size_t aad_len, const uint8_t *pt,
		size_t pt_len, uint8_t *out);
int cv_kms_open(const struct cv_secret *key, uint64_t counter,
		const uint8_t *aad, size_t aad_len, const uint8_t *ct,
		size_t ct_len, uint8_t *out);

/* The perc inner master salt the KMS hands out with an EKT key:
 * HKDF-SHA256(IKM = key, salt = "", info = "conclave-kms perc salt v1" ||
 * 0x00 || key_uri, 12). 0 or CV_ECRYPTO. */
int cv_kms_perc_salt(const struct cv_secret *key, const char *key_uri,
		     struct cv_secret *out);

#endif
