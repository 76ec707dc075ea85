/*
 * The KMS side of the client-KMS channel (docs/kms.md, "Client-KMS
 * channel"; wire format in kms/proto/kms_proto.h).
 *
 * A client opens a session with a HELLO: its ECDH half and its KMS token,
 * sealed to the KMS certificate key (ECIES). The KMS answers with its own
 * ECDH half signed by the certificate key; both derive the channel keys
 * from the ECDH secret and the transcript. Every REQUEST is AES-GCM under
 * the session's client-to-KMS key with a counter nonce the KMS tracks
 * (64-request window) to refuse replays, and carries an expiry. Requests
 * map onto kms/store.h calls, which audit every key access; the channel
 * adds audit rows for its own refusals (bad or expired token, replay,
 * expired request, actor not a member).
 *
 * The channel is transport-free: cv_kms_channel_handle() takes one message
 * and gives one answer, so an HTTP POST (cv_kms_channel_listen) and, later,
 * the media node's byte relay carry the same bytes.
 *
 * KMS tokens: JWT (RFC 7519), HS256 only, with the KMS's own secret, `iss`
 * = the configured issuer and `aud` = the configured audience (default
 * "conclave-kms"), `sub` = the obfuscated member id, `exp` required. A node
 * join token (no `aud`, another secret) is refused.
 *
 * Thread: a channel may be used from any thread; cv_kms_channel_handle()
 * calls are serialised by the channel's mutex (it guards the session
 * table). Calls block on the database (through the store).
 */
#ifndef CONCLAVE_KMS_CHANNEL_H
#define CONCLAVE_KMS_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "conclave/dtls.h"
#include "conclave/secret.h"
#include "kms/proto/kms_proto.h"

struct cv_kms_store;
struct cv_kms_channel;
struct cv_kms_endpoints;

#define CV_KMS_TOKEN_AUDIENCE_DEFAULT "conclave-kms"
#define CV_KMS_TOKEN_LEEWAY_S	      60 /* clock skew for nbf and iat */
/* Smallest token secret accepted (RFC 7518 section 3.2: >= hash size). */
#define CV_KMS_TOKEN_SECRET_MIN_BYTES 32

struct cv_kms_channel_opts {
	/* Borrowed; must outlive the channel. Every database access of the
	 * channel (its refusal audit rows, the membership check) goes
	 * through this store's API. */
	struct cv_kms_store *store;
	/* The certificate's P-256 private key; borrowed, a reference is
	 * taken. */
	EVP_PKEY *cert_key;
	/* HMAC key of KMS tokens (>= 32 bytes); copied. */
	const struct cv_secret *token_secret;
	const char *token_issuer;    /* required; copied */
	const char *token_audience;  /* NULL/"" = default; copied */
	size_t max_sessions;	     /* 0 = 1024; the oldest is evicted */
	uint64_t session_ttl_ms;     /* 0 = 1 hour (never past token exp) */
	uint64_t max_request_ttl_ms; /* 0 = 5 minutes */
	/* Wall clock in ms; NULL = the system clock (tests inject one). */
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	/* Borrowed, must outlive the channel: where REGISTER_ENDPOINT puts
	 * what members register (the Key Distributor reads it). NULL =
	 * REGISTER_ENDPOINT is answered bad_request. */
	struct cv_kms_endpoints *endpoints;
	/* The Key Distributor's DTLS certificate fingerprint (SHA-256),
	 * copied, handed out with every GET_KEY; NULL = no Key Distributor
	 * (GET_KEY carries none). */
	const struct cv_dtls_fingerprint *kd_fp;
};

/*
 * The node's part of a two-part membership change (docs/kms.md, "Two-part
 * membership change"): the values of the Conclave-Room, Conclave-Actor,
 * Conclave-Op ("add_member" / "remove_member") and Conclave-Member
 * headers the node relay put on the POST, after checking the member's node
 * token. NULL for a header that was missing or malformed. All borrowed.
 */
struct cv_kms_core_part {
	const char *room;
	const char *actor;
	const char *op;
	const char *member;
};

/*
 * Creates a channel. *out written on success only. Errors: -EINVAL
 * (options: no store, no issuer, short secret, key not P-256), -ENOMEM.
 * Thread: startup.
 */
int cv_kms_channel_create(struct cv_kms_channel **out,
			  const struct cv_kms_channel_opts *o);

/* Stops the HTTP server if started, wipes every session key, frees.
 * NULL is fine. */
void cv_kms_channel_destroy(struct cv_kms_channel *ch);

/*
 * Handles one message in[0..len) (borrowed) and writes the answer into
 * out[0..cap) (cap >= CV_KMS_MSG_MAX_BYTES), *out_len its length. Every
 * input gets an answer: a HELLO_REPLY, a RESPONSE (sealed: ok or a
 * refusal code), or a plain ERROR (when no session key can seal it).
 * Returns 0, or -EINVAL / -ENOBUFS for the caller's own mistakes.
 */
int cv_kms_channel_handle(struct cv_kms_channel *ch, const uint8_t *in,
			  size_t len, uint8_t *out, size_t cap,
			  size_t *out_len);

/*
 * cv_kms_channel_handle() for a message that came with the node's part of
 * a two-part membership change (core: borrowed; NULL = none). With core,
 * only a REQUEST whose decrypted op, room and member and whose session
 * actor equal core's four values is carried out; anything else (another
 * message type, a missing header, any difference) is refused with
 * bad_request and a denied audit row "core and kms parts differ", and
 * nothing changes. *status (may be NULL) gets the outcome: the answer's
 * code (ok for a HELLO_REPLY), what the node relay reports in
 * Conclave-Status.
 */
int cv_kms_channel_handle_core(struct cv_kms_channel *ch, const uint8_t *in,
			       size_t len, const struct cv_kms_core_part *core,
			       uint8_t *out, size_t cap, size_t *out_len,
			       enum cv_kms_status *status);

/*
 * Serves the channel over HTTP/1.1 on its own thread: `POST /v1/channel`,
 * body = one message (application/octet-stream), answer body = the reply;
 * one request per connection. A POST with any Conclave-Room,
 * Conclave-Actor, Conclave-Op or Conclave-Member header goes through
 * cv_kms_channel_handle_core() and its answer carries `Conclave-Status:
 * <cv_kms_status_name>`. `address` is an IPv4/IPv6 literal (borrowed),
 * port 0 = any free port. Errors: -EINVAL, -EALREADY, -errno of bind or
 * listen, -ENOMEM.
 */
int cv_kms_channel_listen(struct cv_kms_channel *ch, const char *address,
			  uint16_t port);

/* The bound port after cv_kms_channel_listen, else 0. */
uint16_t cv_kms_channel_port(const struct cv_kms_channel *ch);

/* Sessions alive now (tests). */
size_t cv_kms_channel_sessions(struct cv_kms_channel *ch);

/*
 * Verifies a KMS token jwt[0..len) with `secret` at now_s: HS256, iss ==
 * issuer, aud == audience (a string or an array holding it), sub valid
 * as a member id (cv_kms_id_valid) and copied into sub (CV_KMS_ID_MAX + 1
 * bytes), exp required (*exp_s), nbf/iat at most CV_KMS_TOKEN_LEEWAY_S in
 * the future. 0, CV_EEXPIRED, CV_EAUTH (anything else wrong). Thread: any.
 */
int cv_kms_token_verify(const struct cv_secret *secret, const char *issuer,
			const char *audience, const char *jwt, size_t len,
			int64_t now_s, char *sub, int64_t *exp_s);

/*
 * Issues a KMS token (for the identity service's tests and dev mode):
 * HS256 over {"iss","aud","sub","iat","exp"} into buf (cap bytes, NUL
 * included). 0, -EINVAL, -ENOSPC. Thread: any.
 */
int cv_kms_token_issue(const struct cv_secret *secret, const char *issuer,
		       const char *audience, const char *sub, int64_t iat_s,
		       int64_t exp_s, char *buf, size_t cap);

#endif
