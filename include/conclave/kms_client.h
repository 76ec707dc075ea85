/*
 * The endpoint side of the client-KMS channel (docs/kms.md, "Client-KMS
 * channel"): a session with conclave-kms that the media node can relay
 * without reading it. The client seals its ECDH half and its KMS token to
 * the KMS certificate's key, checks the KMS's signature over the
 * handshake, then sends each request sealed under the channel key with a
 * counter nonce and an expiry.
 *
 * Calls are synchronous: each one is a round trip through the transport
 * (default: HTTP POST to conclave-kms; a caller may supply its own, e.g.
 * the node relay). Never call them from a media worker.
 *
 * Errors (negative): CV_EAUTH token_invalid, CV_EEXPIRED token_expired or
 * request_expired, CV_EREPLAY replayed, -EACCES not_member, -ENOENT
 * unknown_room, -EEXIST exists, -ENOTCONN unknown_session (connect
 * again), -EINVAL bad_request or bad arguments, -EPROTO internal,
 * CV_EINTEGRITY (the KMS's signature or a response's tag does not verify:
 * nothing from that answer is used), CV_EPROTO (a well-formed answer that
 * does not fit the request), -EIO/-ETIMEDOUT/-ECONNREFUSED (transport).
 * cv_kms_client_status() names the KMS's last answer code.
 *
 * Thread: a client is used by one thread at a time.
 */
#ifndef CONCLAVE_KMS_CLIENT_H
#define CONCLAVE_KMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "conclave/dtls.h"
#include "conclave/perc_e2e.h"
#include "conclave/secret.h"
#include "conclave/tunnel.h"

struct cv_kms_client;

/*
 * Carries one message to the KMS and its answer back: req[0..req_len)
 * borrowed; writes at most cap bytes to resp and *resp_len. 0 or a
 * negative errno.
 */
typedef int (*cv_kms_transport_fn)(void *arg, const uint8_t *req,
				   size_t req_len, uint8_t *resp, size_t cap,
				   size_t *resp_len);

struct cv_kms_client_opts {
	const char *host; /* IPv4/IPv6 literal of conclave-kms */
	uint16_t port;	  /* its channel port */
	/* The KMS certificate (PEM), pinned: a file path or the PEM text;
	 * one of the two. Borrowed. */
	const char *kms_cert_file;
	const char *kms_cert_pem;
	/* The KMS token from the identity service; borrowed, copied. */
	const char *token;
	/* NULL = HTTP POST to host:port (cv_kms_client_http). */
	cv_kms_transport_fn transport;
	void *transport_arg;
	uint32_t timeout_ms;	 /* HTTP; 0 = 5000 */
	uint32_t request_ttl_ms; /* expiry put on requests; 0 = 30000 */
	/* Wall clock in ms; NULL = the system clock. */
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	/* The node join token (JWT), for the two-part membership change
	 * through the node relay (docs/kms.md): when set, the default HTTP
	 * transport adds `Conclave-Core: <it>`, `Conclave-Op:
	 * add_member|remove_member` and `Conclave-Member: <member>` to the
	 * POST of every add/remove request. NULL = none. Borrowed, copied. */
	const char *core_token;
};

/*
 * Creates a client (no I/O). Loads and pins the certificate's P-256 key.
 * *out written on success. Errors: -EINVAL, -ENOENT, CV_EPARSE (no PEM
 * certificate), CV_EUNSUPP (not P-256), -ENOMEM. Thread: any.
 */
int cv_kms_client_create(struct cv_kms_client **out,
			 const struct cv_kms_client_opts *o);

/* Wipes the channel keys and the token; frees. NULL is fine. */
void cv_kms_client_destroy(struct cv_kms_client *c);

/*
 * The handshake: HELLO, HELLO_REPLY with the KMS signature checked
 * against the pinned key, channel keys derived. Replaces any previous
 * session. Errors as above (CV_EINTEGRITY for a bad signature).
 */
int cv_kms_client_connect(struct cv_kms_client *c);

/* Creates a room (URI, borrowed); the caller becomes its first member.
 * *epoch (may be NULL) gets the key epoch (0). */
int cv_kms_client_create_room(struct cv_kms_client *c, const char *room,
			      uint32_t *epoch);

/* Adds `member` (an obfuscated id) to the room; the caller must be a
 * member. *epoch (may be NULL): the current epoch (no rotation). */
int cv_kms_client_add_member(struct cv_kms_client *c, const char *room,
			     const char *member, uint32_t *epoch);

/* Removes `member`; the KMS rotates the room key. *epoch (may be NULL):
 * the new epoch. The caller must be a member (removing itself: leave). */
int cv_kms_client_remove_member(struct cv_kms_client *c, const char *room,
				const char *member, uint32_t *epoch);

/* A room's current EKT key as the KMS hands it to a member. */
struct cv_kms_room_key {
	uint32_t epoch;
	uint16_t spi; /* RFC 8870 section 4.1, 15 bits */
	char uri[256];
	struct cv_secret key;	     /* 16 or 32 octets */
	struct cv_secret inner_salt; /* perc inner master salt, 12 octets */
	/* The Key Distributor's DTLS certificate (SHA-256): the one perc
	 * endpoints pin. len 0 when the KMS runs no Key Distributor. */
	struct cv_dtls_fingerprint kd_fp;
};

/* Wipes the key and salt and clears the record. */
void cv_kms_room_key_wipe(struct cv_kms_room_key *k);

/*
 * The room's current key for the caller (a member). *out (borrowed) is
 * written on success only. -EACCES when the caller is not a member (or
 * the room does not exist: the KMS does not say which).
 */
int cv_kms_client_get_room_key(struct cv_kms_client *c, const char *room,
			       struct cv_kms_room_key *out);

/*
 * Tells the KMS which DTLS certificate this endpoint presents for the
 * RFC 9185 association id `assoc` the node gave it in `joined` (one call
 * per id). fp: the SHA-256 fingerprint of the endpoint's certificate
 * (cv_dtls_cert_fingerprint() parsed), else -EINVAL. The caller must be a
 * member of the room (-EACCES); an id another member or another room
 * registered first is -EEXIST. Registering the same id again (same room)
 * replaces the fingerprint. The KMS keeps a registration 10 minutes after
 * its last use.
 */
int cv_kms_client_register_endpoint(struct cv_kms_client *c, const char *room,
				    const struct cv_tunnel_assoc_id *assoc,
				    const struct cv_dtls_fingerprint *fp);

/* The perc endpoint's view of a room key (spi, key, inner salt); *out
 * overwritten. 0 or -EINVAL. */
int cv_kms_room_key_to_ekt(const struct cv_kms_room_key *k,
			   struct cv_perc_ekt_key *out);

/* The KMS's code of the last answer ("ok", "not_member", "replayed", ...,
 * "" before any). Static string. */
const char *cv_kms_client_status(const struct cv_kms_client *c);

/*
 * The default transport: one HTTP/1.1 `POST /v1/channel` on a fresh TCP
 * connection to host:port (IPv4/IPv6 literal), within timeout_ms. A
 * transport hook may call it to wrap it. 0, -EINVAL, -ETIMEDOUT,
 * -ECONNREFUSED, -EIO (not a 200 answer, or malformed), -ENOBUFS.
 */
int cv_kms_client_http(const char *host, uint16_t port, uint32_t timeout_ms,
		       const uint8_t *req, size_t req_len, uint8_t *resp,
		       size_t cap, size_t *resp_len);

/*
 * cv_kms_client_http() with extra request headers: `headers` (borrowed;
 * NULL = none) is zero or more complete "Name: value\r\n" lines, at most
 * 6 KiB, without a bare CR or LF elsewhere (-EINVAL). When status is not
 * NULL it gets the answer's Conclave-Status value (NUL-terminated, cap
 * status_cap; "" when absent).
 */
int cv_kms_client_http_ex(const char *host, uint16_t port, uint32_t timeout_ms,
			  const char *headers, const uint8_t *req,
			  size_t req_len, uint8_t *resp, size_t cap,
			  size_t *resp_len, char *status, size_t status_cap);

#endif
