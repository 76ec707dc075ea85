/*
 * DTLS-SRTP key agreement for one transport (RFC 5764 over DTLS 1.2,
 * RFC 6347), with certificates authenticated by SDP fingerprints (RFC 8122,
 * roles by a=setup per RFC 8842).
 *
 * Three objects:
 * - struct cv_dtls_cert: our certificate and key, refcounted, immutable
 *   after creation, shareable by every thread.
 * - struct cv_dtls_ctx: one per process; the OpenSSL SSL_CTX (DTLS 1.2
 *   only, ECDHE, browser cipher list, use_srtp preferences). Refcounted,
 *   shareable by every thread.
 * - struct cv_dtls: one DTLS association of one transport, used by the one
 *   worker thread that owns the transport. It is an interface (an ops
 *   table): cv_dtls_local_create() terminates DTLS here with OpenSSL; a
 *   second implementation (the RFC 9185 tunnel to a Key Distributor) sits
 *   behind the same calls.
 *
 * No function here logs keys; the exporter output is handed to
 * on_connected() once and wiped from our memory right after.
 */
#ifndef CONCLAVE_DTLS_H
#define CONCLAVE_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Datagrams larger than this are dropped with CV_ETOOBIG. */
#define CV_DTLS_MAX_DATAGRAM 2048
/*
 * Largest DTLS datagram we send: flights are fragmented to fit, so that
 * with IPv6 + UDP headers (48 bytes) a datagram stays under the IPv6
 * minimum link MTU of 1280.
 */
#define CV_DTLS_MTU 1200
/* Handshake deadline, from cv_dtls_start() (or the first datagram). */
#define CV_DTLS_HANDSHAKE_TIMEOUT_MS 30000
/* First retransmission timeout; it doubles up to CV_DTLS_RTX_MAX_MS. */
#define CV_DTLS_RTX_INITIAL_MS 100
#define CV_DTLS_RTX_MAX_MS     6400

/* RFC 5764 section 4.1.2 (and RFC 7714 section 14.2) profile ids. */
#define CV_DTLS_SRTP_AES128_CM_SHA1_80 0x0001
#define CV_DTLS_SRTP_AEAD_AES_128_GCM  0x0007
#define CV_DTLS_SRTP_AEAD_AES_256_GCM  0x0008

/* Largest exporter output: 2 * (32-byte key + 12-byte salt), GCM-256. */
#define CV_DTLS_MATERIAL_MAX 88

/*
 * Exporter length for a profile: 2 * (master key + master salt), i.e. 60
 * for AES128_CM_SHA1_80, 56 for AEAD_AES_128_GCM, 88 for AEAD_AES_256_GCM;
 * 0 for a profile we do not support. Thread: any.
 */
size_t cv_dtls_srtp_material_len(uint16_t profile_id);

/* ---- Fingerprints (RFC 8122 section 5) ---- */

enum cv_dtls_hash {
	CV_DTLS_HASH_SHA1 = 1,
	CV_DTLS_HASH_SHA256,
	CV_DTLS_HASH_SHA384,
	CV_DTLS_HASH_SHA512,
};

#define CV_DTLS_FINGERPRINT_MAX 64 /* SHA-512 digest bytes */
/* Longest text: "sha-512 " + 64 * 3 - 1 hex and colons + NUL. */
#define CV_DTLS_FINGERPRINT_STRLEN 200

/* A parsed a=fingerprint value: plain value struct, no pointers. */
struct cv_dtls_fingerprint {
	enum cv_dtls_hash hash;
	size_t len; /* digest bytes: 20, 32, 48 or 64 */
	uint8_t md[CV_DTLS_FINGERPRINT_MAX];
};

/*
 * Parses the value of an SDP a=fingerprint attribute, e.g.
 * "sha-256 AB:CD:...", into *out. s: borrowed, len bytes, need not be
 * NUL-terminated. The hash name is matched case-insensitively; hex digits
 * may be of either case (RFC 8122 writes upper case, some peers do not).
 * Returns 0; CV_EPARSE for malformed text or a digest of the wrong length
 * for its hash; CV_EUNSUPP for a well-formed but unsupported hash (md5,
 * sha-224, ...); -EINVAL for NULL arguments. *out is written only on
 * success. No allocation. Thread: any.
 */
int cv_dtls_fingerprint_parse(struct cv_dtls_fingerprint *out, const char *s,
			      size_t len);

/* ---- Certificates ---- */

struct cv_dtls_cert;

/*
 * Generates a self-signed ECDSA P-256 certificate: CN "conclave", random
 * 63-bit serial, valid from now - 1 day until now + 30 days, signed with
 * SHA-256. *out: new reference. Returns 0; -ENOMEM; CV_ECRYPTO if OpenSSL
 * fails. Thread: any (slow: keep it off the packet path).
 */
int cv_dtls_cert_generate(struct cv_dtls_cert **out);

/*
 * Loads a certificate (PEM; further certificates in the same file form the
 * chain sent after it) and its private key (PEM, unencrypted).
 * cert_path, key_path: borrowed. *out: new reference. Returns 0; -ENOMEM;
 * -ENOENT (or another negative errno) if a file cannot be opened;
 * CV_EPARSE if a file holds no certificate / key; CV_ECRYPTO if the key
 * does not match the certificate. Thread: any (blocking file I/O).
 */
int cv_dtls_cert_load(struct cv_dtls_cert **out, const char *cert_path,
		      const char *key_path);

/* Takes a reference; returns cert. Thread: any. */
struct cv_dtls_cert *cv_dtls_cert_ref(struct cv_dtls_cert *cert);

/* Drops a reference (NULL is fine); always returns NULL. Thread: any. */
struct cv_dtls_cert *cv_dtls_cert_unref(struct cv_dtls_cert *cert);

/*
 * Our SHA-256 fingerprint as the SDP a=fingerprint value,
 * "sha-256 AB:CD:..." (upper-case hex, colon separated). The string is
 * owned by cert and lives as long as it. Thread: any.
 */
const char *cv_dtls_cert_fingerprint(const struct cv_dtls_cert *cert);

/* ---- The process-wide context ---- */

struct cv_dtls_ctx;

/*
 * Creates the SSL_CTX: DTLS 1.2 only, cert (borrowed; the ctx takes its
 * own reference) as our identity, ECDHE key exchange, a browser-compatible
 * AEAD-first cipher list, and the use_srtp preference AEAD_AES_128_GCM,
 * AEAD_AES_256_GCM, AES128_CM_SHA1_80. Peers must present a certificate;
 * it is authenticated only by its SDP fingerprint. *out: new reference.
 * Returns 0; -ENOMEM; CV_ECRYPTO. Thread: any (normally once at start).
 */
int cv_dtls_ctx_create(struct cv_dtls_ctx **out, struct cv_dtls_cert *cert);

/*
 * Replaces the use_srtp profile list, most preferred first (ids as the
 * CV_DTLS_SRTP_* constants, 1 to 3 entries, no duplicates). Affects
 * associations created afterwards. ids: borrowed. Returns 0; -EINVAL;
 * CV_EUNSUPP for an unknown id; CV_ECRYPTO. Thread: before the ctx is
 * shared (configuration time).
 */
int cv_dtls_ctx_set_srtp_profiles(struct cv_dtls_ctx *ctx, const uint16_t *ids,
				  size_t n);

/* Takes a reference; returns ctx. Thread: any. */
struct cv_dtls_ctx *cv_dtls_ctx_ref(struct cv_dtls_ctx *ctx);

/* Drops a reference (NULL is fine); always returns NULL. Thread: any. */
struct cv_dtls_ctx *cv_dtls_ctx_unref(struct cv_dtls_ctx *ctx);

/* ---- One association: the interface ---- */

/*
 * Sends one DTLS datagram (one or more whole records, at most CV_DTLS_MTU
 * bytes) to the peer. rec is borrowed for the call. Errors are not
 * reported back: a lost datagram is recovered by retransmission.
 */
typedef void cv_dtls_send_fn(void *arg, const uint8_t *rec, size_t len);

/*
 * Called exactly once when the handshake is complete, the peer's
 * certificate matched an expected fingerprint and an SRTP profile was
 * negotiated. srtp_profile_id: CV_DTLS_SRTP_*. material: borrowed, valid
 * only during the call and wiped afterwards: the RFC 5705 exporter output
 * for label "EXTRACTOR-dtls_srtp", laid out as RFC 5764 section 4.2 says
 * (client key, server key, client salt, server salt), material_len bytes
 * (cv_dtls_srtp_material_len()). is_client: our role, telling which half
 * is ours for sending.
 */
typedef void cv_dtls_connected_fn(void *arg, uint16_t srtp_profile_id,
				  const uint8_t *material, size_t material_len,
				  bool is_client);

/*
 * Called at most once when the association is dead: the handshake failed
 * (CV_EAUTH fingerprint mismatch or no peer certificate, CV_EPROTO alert or
 * malformed handshake, CV_EUNSUPP no common SRTP profile, CV_EEXPIRED
 * deadline, CV_ECRYPTO other) or a fatal alert arrived after it.
 */
typedef void cv_dtls_failed_fn(void *arg, int err);

/* Called at most once when the peer sent close_notify. */
typedef void cv_dtls_closed_fn(void *arg);

/*
 * The transport's callbacks. They run on the association's thread, from
 * inside the cv_dtls_* call that caused them; they must not call back into
 * the same struct cv_dtls (in particular must not destroy it: defer that).
 * After on_failed or on_closed no further callback except send happens.
 */
struct cv_dtls_callbacks {
	cv_dtls_send_fn *send;
	cv_dtls_connected_fn *on_connected;
	cv_dtls_failed_fn *on_failed;
	cv_dtls_closed_fn *on_closed; /* may be NULL */
	void *arg;
};

struct cv_dtls;

/*
 * What an implementation provides. Implementations embed struct cv_dtls as
 * their first member and set ops; callers use the cv_dtls_* wrappers
 * below, never the table directly.
 */
struct cv_dtls_ops {
	const char *name; /* "local", "tunnel", ... */
	int (*start)(struct cv_dtls *d, uint64_t now_ms);
	int (*handle_datagram)(struct cv_dtls *d, const uint8_t *data,
			       size_t len, uint64_t now_ms);
	int (*handle_timer)(struct cv_dtls *d, uint64_t now_ms);
	int64_t (*next_timeout_ms)(struct cv_dtls *d, uint64_t now_ms);
	int (*close)(struct cv_dtls *d);
	void (*destroy)(struct cv_dtls *d);
};

struct cv_dtls {
	const struct cv_dtls_ops *ops;
};

enum cv_dtls_role {
	CV_DTLS_ROLE_SERVER, /* a=setup:passive: we wait for ClientHello */
	CV_DTLS_ROLE_CLIENT, /* a=setup:active: we send ClientHello */
};

/* Most a=fingerprint lines of one peer we keep (RFC 8122 allows several). */
#define CV_DTLS_MAX_PEER_FINGERPRINTS 4

/*
 * Looks at the first record of a datagram and refuses what OpenSSL would
 * take as fatal although no genuine peer sends it (application data in
 * epoch 0; with expect_client_hello, anything but a ClientHello), so that
 * stray or spoofed records cannot kill or open an association. Used by
 * every implementation before it takes a datagram. p borrowed.
 * Returns 0, CV_EPARSE (not a whole record), CV_EPROTO. Thread: any.
 */
int cv_dtls_screen_record(const uint8_t *p, size_t len,
			  bool expect_client_hello);

/*
 * Creates a local (OpenSSL) association. ctx: borrowed, the association
 * takes its own reference. peer_fps: borrowed, n_fps (1 to
 * CV_DTLS_MAX_PEER_FINGERPRINTS) fingerprints from the peer's SDP, copied;
 * the peer's certificate must match one of them. cb: borrowed, copied
 * (cb->send, on_connected and on_failed required). Nothing is sent and no
 * callback runs until cv_dtls_start() or the first datagram. *out: the new
 * association, owned by the caller (cv_dtls_destroy()). Returns 0;
 * -EINVAL; -ENOMEM; CV_ECRYPTO. Thread: the transport's worker.
 */
int cv_dtls_local_create(struct cv_dtls **out, struct cv_dtls_ctx *ctx,
			 enum cv_dtls_role role,
			 const struct cv_dtls_fingerprint *peer_fps,
			 size_t n_fps, const struct cv_dtls_callbacks *cb);

/*
 * Starts the handshake at now_ms (the worker's monotonic clock): a client
 * sends its ClientHello; both roles arm the handshake deadline. A second
 * call does nothing. Returns 0, or -ENOTCONN if the association already
 * failed or closed. Thread: the association's.
 */
int cv_dtls_start(struct cv_dtls *d, uint64_t now_ms);

/*
 * Feeds one received datagram (RFC 7983: first byte 20..63). data:
 * borrowed for the call. A datagram that passes the checks below starts
 * the association if it was not started.
 * Returns 0 when the datagram went to DTLS (whatever it held: the outcome
 * comes through the callbacks; garbage records are discarded there).
 * Dropped without any effect: CV_ETOOBIG above CV_DTLS_MAX_DATAGRAM bytes;
 * CV_EPARSE for an empty, non-DTLS or truncated datagram; CV_EPROTO for a
 * first record no genuine peer sends in this state (application data in
 * epoch 0; anything but a ClientHello to a server that has not begun).
 * -ENOTCONN after failure or close. Thread: the association's.
 */
int cv_dtls_handle_datagram(struct cv_dtls *d, const uint8_t *data, size_t len,
			    uint64_t now_ms);

/*
 * How many ms from now_ms until cv_dtls_handle_timer() must be called, or
 * -1 if no timer is pending. Thread: the association's.
 *
 * The local implementation's retransmission timer is OpenSSL's, which
 * reads the real clock (100 ms, doubling); now_ms is only used to decide
 * when to call in and to enforce the handshake deadline.
 */
int64_t cv_dtls_next_timeout_ms(struct cv_dtls *d, uint64_t now_ms);

/*
 * Runs due timers: retransmits the last flight when OpenSSL's timer has
 * expired, and fails the handshake with CV_EEXPIRED (on_failed) once
 * CV_DTLS_HANDSHAKE_TIMEOUT_MS have passed since the start. Calling it
 * early is harmless. Returns 0, or -ENOTCONN after failure or close.
 * Thread: the association's.
 */
int cv_dtls_handle_timer(struct cv_dtls *d, uint64_t now_ms);

/*
 * Sends close_notify if the handshake completed; after this no callback
 * runs and datagrams are ignored. Returns 0 (also when already closed).
 * Thread: the association's.
 */
int cv_dtls_close(struct cv_dtls *d);

/*
 * Frees the association (NULL is fine) without sending anything and
 * without callbacks. Thread: the association's.
 */
void cv_dtls_destroy(struct cv_dtls *d);

/* ---- The tunnelled implementation (perc rooms, RFC 9185) ---- */

/*
 * In a perc room the node does not terminate the endpoint's DTLS: every
 * record is relayed over the RFC 9185 tunnel (tunnel.h) to the Key
 * Distributor (conclave-kms), which finishes the handshake with the
 * endpoint and sends the node a MediaKeys message holding only the
 * hop-by-hop (outer) halves of the double keys. This implementation holds
 * no DTLS state and no exporter output: it cannot learn an end-to-end key
 * (see docs/perc.md, "The Key Distributor's DTLS").
 *
 * Differences from the local implementation:
 * - only CV_DTLS_ROLE_SERVER: the endpoint is the DTLS client (a=setup:
 *   active) and the KD acts as the server; RFC 9185 has no message that
 *   would tell the KD to send a ClientHello itself;
 * - on_connected gets srtp_profile_id CV_DTLS_SRTP_AEAD_AES_128_GCM for
 *   DOUBLE_AEAD_AES_128_GCM (CV_DTLS_SRTP_AEAD_AES_256_GCM for the 256
 *   double profile) and `material` is the MediaKeys content in the RFC 5764
 *   section 4.2 layout (client key | server key | client salt | server
 *   salt, outer halves only: 56 or 88 bytes), is_client false. The
 *   transport splits it as it splits local material;
 * - the endpoint's certificate is checked by the KD, its DTLS peer, not
 *   here (kms/kd_dtls.h); the endpoint pins the KD's certificate;
 * - on_closed never runs: the endpoint's close_notify is encrypted;
 *   ICE consent ends the transport;
 * - cv_dtls_close() and cv_dtls_destroy() send EndpointDisconnect to the
 *   KD (never anything to the endpoint), and so does a failure.
 */
struct cv_tunnel_link;
struct cv_tunnel_msg;
struct cv_tunnel_assoc_id;

/*
 * Creates a tunnelled association. link: borrowed, must outlive the
 * association (the caller routes the link's messages to it, see
 * cv_dtls_tunnel_handle_message()). assoc: borrowed, copied: this
 * association's RFC 9185 id, unique on the link
 * (cv_dtls_tunnel_new_assoc_id()). role: CV_DTLS_ROLE_SERVER only. cb:
 * borrowed, copied (send, on_connected and on_failed required). *out:
 * owned by the caller (cv_dtls_destroy()), written on success only.
 * Returns 0; -EINVAL; CV_EUNSUPP for CV_DTLS_ROLE_CLIENT; -ENOMEM.
 * Thread: the link's loop thread (the same one for every call on it).
 */
int cv_dtls_tunnel_create(struct cv_dtls **out, struct cv_tunnel_link *link,
			  const struct cv_tunnel_assoc_id *assoc,
			  enum cv_dtls_role role,
			  const struct cv_dtls_callbacks *cb);

/*
 * Makes a fresh association id: a random (version 4) RFC 4122 UUID.
 * Returns 0, -EINVAL or CV_ECRYPTO (no randomness). Thread: any.
 */
int cv_dtls_tunnel_new_assoc_id(struct cv_tunnel_assoc_id *out);

/*
 * The association id of a tunnelled association (NULL for any other
 * implementation). The pointer lives as long as d. Thread: d's.
 */
const struct cv_tunnel_assoc_id *cv_dtls_tunnel_assoc(const struct cv_dtls *d);

/*
 * Hands the association a TUNNELED_DTLS or MEDIA_KEYS message that the
 * link's on_message delivered for its id (m borrowed for the call). A
 * TunneledDtls goes to the endpoint through cb.send; MediaKeys completes
 * the handshake (on_connected, once) and its copy is wiped. Returns 0;
 * -EINVAL when d is not tunnelled, the id is not d's or the type is
 * another; -ENOTCONN after failure or close; CV_EPROTO for MediaKeys
 * before the association started or after it connected; CV_ETOOBIG for a
 * dtls_message above CV_DTLS_MAX_DATAGRAM (dropped). Thread: d's.
 */
int cv_dtls_tunnel_handle_message(struct cv_dtls *d,
				  const struct cv_tunnel_msg *m);

/*
 * The link went down (its on_down): an association still in its handshake
 * fails with err (on_failed); a connected one keeps its keys and carries
 * on. Nothing is queued across a reconnect. Thread: d's.
 */
void cv_dtls_tunnel_link_down(struct cv_dtls *d, int err);

#endif
