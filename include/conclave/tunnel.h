/*
 * The RFC 9185 tunnel between the media node (Media Distributor) and
 * conclave-kms (Key Distributor): the TunnelMessage codec, shared by both
 * sides, and the node's end of the link, a mutually authenticated TLS 1.3
 * client that reconnects on its own.
 *
 * Wire format (RFC 9185 section 6, TLS presentation language of RFC 8446
 * section 3, network byte order):
 *
 *   TunnelMessage  = msg_type(1) length(2) body[length]
 *   SupportedProfiles  (1) = version(1) profiles<2..2^16-1> (2-octet ids)
 *   UnsupportedVersion (2) = highest_version(1)
 *   MediaKeys          (3) = association_id(16) protection_profile(2)
 *                            mki<0..255>
 *                            client_write_SRTP_master_key<1..255>
 *                            server_write_SRTP_master_key<1..255>
 *                            client_write_SRTP_master_salt<1..255>
 *                            server_write_SRTP_master_salt<1..255>
 *   TunneledDtls       (4) = association_id(16) dtls_message<1..2^16-1>
 *   EndpointDisconnect (5) = association_id(16)
 *
 * Messages follow each other on the TLS stream; the length field frames
 * them. The association identifier is an RFC 4122 UUID that the node makes
 * up per endpoint association.
 *
 * No end-to-end key can enter the node through this module: see struct
 * cv_tunnel_media_keys.
 */
#ifndef CONCLAVE_TUNNEL_H
#define CONCLAVE_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The protocol version RFC 9185 defines, and the only one we speak. */
#define CV_TUNNEL_VERSION 0
/* msg_type (1) + length (2). */
#define CV_TUNNEL_HDR_BYTES 3
/* Largest body the uint16 length allows, and largest whole message. */
#define CV_TUNNEL_MAX_BODY	 65535
#define CV_TUNNEL_MAX_MSG	 (CV_TUNNEL_HDR_BYTES + CV_TUNNEL_MAX_BODY)
#define CV_TUNNEL_ASSOC_ID_BYTES 16
/* Most profiles we keep from one SupportedProfiles (a ceiling of ours). */
#define CV_TUNNEL_MAX_PROFILES 16
/* Largest dtls_message: the body ceiling minus the id and its length. */
#define CV_TUNNEL_MAX_DTLS (CV_TUNNEL_MAX_BODY - CV_TUNNEL_ASSOC_ID_BYTES - 2)

/* RFC 8723 section 5.1 double profiles, the only ones MediaKeys carries. */
#define CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM 0x0009
#define CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM 0x000A
/* The outer (hop-by-hop) half of a double profile's master key and salt. */
#define CV_TUNNEL_HOP_KEY_MAX	 32
#define CV_TUNNEL_HOP_SALT_BYTES 12

/* Message types (RFC 9185, IANA registry). */
enum cv_tunnel_msg_type {
	CV_TUNNEL_SUPPORTED_PROFILES = 1,
	CV_TUNNEL_UNSUPPORTED_VERSION = 2,
	CV_TUNNEL_MEDIA_KEYS = 3,
	CV_TUNNEL_TUNNELED_DTLS = 4,
	CV_TUNNEL_ENDPOINT_DISCONNECT = 5,
};

struct cv_tunnel_assoc_id {
	uint8_t b[CV_TUNNEL_ASSOC_ID_BYTES];
};

/*
 * MediaKeys as the node may hold it: the hop-by-hop (outer) master key and
 * salt of each direction of one endpoint's association, and nothing else.
 *
 * Why it cannot hold an end-to-end key (by construction, not by care):
 * - there is no field for an inner key, an EKT key or an MKI;
 * - each key field holds one outer half (16 octets for
 *   DOUBLE_AEAD_AES_128_GCM, 32 for the 256 profile: RFC 8723 section 5.1
 *   puts the inner half first and the outer half last); the codec refuses
 *   (CV_EPROTO) a key or salt whose length is not the profile's outer
 *   half, so a whole double master key (inner || outer, 32 or 64 octets)
 *   is never accepted, and any profile but the two double ones, or a
 *   non-empty MKI, is CV_EUNSUPP;
 * - the other message that reaches the node, TunneledDtls, is DTLS
 *   ciphertext between the endpoint and the KMS, which the node cannot
 *   decrypt; the EKT key travels on the client-KMS channel, never here.
 * Wipe a filled struct with cv_tunnel_media_keys_wipe() once its keys are
 * in SRTP sessions.
 */
struct cv_tunnel_media_keys {
	struct cv_tunnel_assoc_id assoc;
	uint16_t profile; /* CV_TUNNEL_DOUBLE_* */
	uint8_t key_len;  /* 16 or 32: cv_tunnel_hop_key_len(profile) */
	uint8_t client_write_key[CV_TUNNEL_HOP_KEY_MAX]; /* endpoint sends */
	uint8_t server_write_key[CV_TUNNEL_HOP_KEY_MAX]; /* node sends */
	uint8_t client_write_salt[CV_TUNNEL_HOP_SALT_BYTES];
	uint8_t server_write_salt[CV_TUNNEL_HOP_SALT_BYTES];
};

/*
 * One TunnelMessage as a host-order view. For TUNNELED_DTLS, `dtls.data`
 * points into the buffer that was parsed (borrowed, lives as long as it).
 */
struct cv_tunnel_msg {
	enum cv_tunnel_msg_type type;
	union {
		struct {
			uint8_t version;
			size_t n;
			uint16_t ids[CV_TUNNEL_MAX_PROFILES];
		} profiles;
		struct {
			uint8_t highest_version;
		} unsupported;
		struct cv_tunnel_media_keys keys;
		struct {
			struct cv_tunnel_assoc_id assoc;
			const uint8_t *data;
			size_t len;
		} dtls;
		struct {
			struct cv_tunnel_assoc_id assoc;
		} disconnect;
	} u;
};

/*
 * Outer key length of a double profile: 16 (0x0009), 32 (0x000A), 0 for
 * any other profile. Thread: any.
 */
size_t cv_tunnel_hop_key_len(uint16_t profile);

/* Overwrites every key and salt octet (OPENSSL_cleanse). NULL is fine. */
void cv_tunnel_media_keys_wipe(struct cv_tunnel_media_keys *k);

/*
 * Framing: when buf (len bytes, borrowed) holds at least a TunnelMessage
 * header, writes the whole message's size (header + body) to *msg_len and
 * returns 0; -EAGAIN when fewer than CV_TUNNEL_HDR_BYTES are there.
 * No allocation. Thread: any.
 */
int cv_tunnel_frame_len(const uint8_t *buf, size_t len, size_t *msg_len);

/* Called with one whole TunnelMessage (borrowed; wiped after the call). */
typedef int (*cv_tunnel_msg_fn)(void *arg, const uint8_t *msg, size_t len);

/*
 * The receive side of a stream: hands every whole message at the front of
 * buf[0..*len) to fn, wipes it, and moves what is left (a partial message)
 * to the front, updating *len. Returns 0, or fn's error (stops there).
 */
int cv_tunnel_rx_dispatch(uint8_t *buf, size_t *len, cv_tunnel_msg_fn fn,
			  void *arg);

/*
 * Parses exactly one whole TunnelMessage (buf, len: borrowed; len must be
 * the header plus the length field's body). *out is written only on
 * success (zeroed first). No allocation. Thread: any.
 * Errors: CV_EPARSE for a truncated message, trailing octets, a vector
 * length outside its <floor..ceiling> or not a whole number of elements,
 * a body of the wrong size for its type; CV_EUNSUPP for an unknown or
 * reserved msg_type, a MediaKeys profile other than the double ones, or a
 * non-empty MKI; CV_EPROTO for MediaKeys whose key or salt lengths are not
 * the profile's outer half; CV_ETOOBIG for more than
 * CV_TUNNEL_MAX_PROFILES profiles; -EINVAL for NULL arguments.
 */
int cv_tunnel_msg_parse(struct cv_tunnel_msg *out, const uint8_t *buf,
			size_t len);

/*
 * Encodes m (borrowed) into buf (cap bytes). Returns the number of octets
 * written (> 0), CV_ETOOBIG when cap is too small or a field exceeds its
 * ceiling, -EINVAL for a message the parser would refuse (empty profile
 * list, empty dtls_message, wrong key lengths, unknown type). Thread: any.
 */
int cv_tunnel_msg_encode(const struct cv_tunnel_msg *m, uint8_t *buf,
			 size_t cap);

/* "supported_profiles", ... or "unknown". */
const char *cv_tunnel_msg_type_name(int type);

/* ---- TLS pieces shared by both ends ---- */

struct cv_dtls_fingerprint;
struct ssl_ctx_st;
struct x509_st;

/*
 * Makes the SSL_CTX of one end of the tunnel: TLS 1.3 only, our
 * certificate (PEM, chain allowed) and key (PEM, unencrypted) from the
 * files (borrowed paths), peer certificate required (the server also
 * fails a handshake without one), no session resumption. The caller adds
 * its verify callback, which pins the peer's leaf certificate.
 * *out: new SSL_CTX (SSL_CTX_free), written on success only. Returns 0;
 * -EINVAL; -ENOENT or another -errno if a file cannot be read; CV_EPARSE
 * (no certificate / key in a file); CV_ECRYPTO (key does not match,
 * OpenSSL failure). Thread: any (blocking file I/O: startup).
 */
int cv_tunnel_tls_ctx_new(struct ssl_ctx_st **out, bool server,
			  const char *cert_file, const char *key_file);

/*
 * True when cert (borrowed) hashes, under the pin's hash, to one of the
 * n pins (borrowed). Thread: any.
 */
bool cv_tunnel_cert_pinned(struct x509_st *cert,
			   const struct cv_dtls_fingerprint *pins, size_t n);

struct ssl_st;

/*
 * The send side of one TLS stream of TunnelMessages, the same at both
 * ends (the node's link and the KD's node connections): buf[off..len)
 * waits for SSL_write; cap is buf's size (the queue ceiling). Every octet
 * is wiped once TLS has taken it (MediaKeys travel here).
 */
struct cv_tunnel_txq {
	uint8_t *buf;
	size_t cap, off, len;
};

/* Appends m, encoded; moves what waits to the front first when the tail
 * cannot hold a whole message. 0, CV_ETOOBIG (full), -EINVAL. */
int cv_tunnel_txq_push(struct cv_tunnel_txq *q, const struct cv_tunnel_msg *m);

/* SSL_writes what waits. 0 when all of it went or the socket would block
 * (cv_tunnel_txq_pending says which), else cv_tunnel_ssl_error's code. */
int cv_tunnel_txq_flush(struct cv_tunnel_txq *q, struct ssl_st *ssl,
			bool auth_failed);

static inline bool cv_tunnel_txq_pending(const struct cv_tunnel_txq *q)
{
	return q->off < q->len;
}

/* Wipes what waits and empties the queue (the buffer stays). */
void cv_tunnel_txq_clear(struct cv_tunnel_txq *q);

/*
 * The error of an SSL_read/SSL_write/SSL_do_handshake that returned r:
 * -EAGAIN (would block), -ECONNRESET (closed), -errno, else CV_EAUTH when
 * auth_failed (our pin check refused the peer) or CV_EPROTO. Call it
 * right after the SSL call (it reads errno).
 */
int cv_tunnel_ssl_error(struct ssl_st *ssl, int r, bool auth_failed);

/*
 * The certificate's SHA-256 fingerprint as "sha-256 AB:CD:..." in out
 * (CV_TUNNEL_FP_STRLEN bytes). Returns 0 or CV_ECRYPTO. Thread: any.
 */
#define CV_TUNNEL_FP_STRLEN 104
int cv_tunnel_cert_fingerprint(struct x509_st *cert,
			       char out[CV_TUNNEL_FP_STRLEN]);

/* ---- The node's end: a TLS 1.3 client with reconnection ---- */

struct cv_loop;
struct cv_tunnel_link;

struct cv_tunnel_link_opts {
	/* The KD: a numeric IPv4 or IPv6 address (no DNS on the loop) and
	 * port. Borrowed, copied. */
	const char *host;
	uint16_t port;
	/* Our identity: PEM certificate (chain allowed) and unencrypted PEM
	 * key. Read once at create. Borrowed. */
	const char *cert_file;
	const char *key_file;
	/* The KD's certificate pin, "sha-256 AB:CD:..." (any hash that
	 * cv_dtls_fingerprint_parse() knows). Borrowed, parsed at create. */
	const char *kd_fingerprint;
	/* Profiles sent in SupportedProfiles, most preferred first (1 to
	 * CV_TUNNEL_MAX_PROFILES); NULL = both double profiles. Copied. */
	const uint16_t *profiles;
	size_t n_profiles;
	/* Reconnect delay: first retry after backoff_initial_ms, doubling up
	 * to backoff_max_ms, each with up to 25% random extra. 0 = defaults
	 * (250 ms, 10000 ms). */
	uint32_t backoff_initial_ms;
	uint32_t backoff_max_ms;
	/* TCP connect + TLS handshake + the KD's acceptance must finish in
	 * this time, else the attempt fails (CV_EEXPIRED). 0 = 5000 ms. */
	uint32_t connect_timeout_ms;
	/* Ceiling of queued, unsent octets; 0 = 1 MiB. */
	size_t max_queue_bytes;
};

/*
 * Callbacks run on the loop's thread, from inside the link's I/O or timer
 * handling. They may call cv_tunnel_link_send() but must not destroy the
 * link (defer that).
 */
struct cv_tunnel_link_callbacks {
	/* The KD accepted us (TLS 1.3 up, our certificate verified) and our
	 * SupportedProfiles is on its way. */
	void (*on_up)(void *arg);
	/* The link went down, or an attempt to bring it up failed (err:
	 * -errno, CV_EAUTH the KD's certificate does not match the pin,
	 * CV_EPROTO TLS alert (e.g. the KD refused our certificate) or a
	 * malformed message, CV_EEXPIRED connect timeout, CV_EUNSUPP the KD
	 * answered UnsupportedVersion). The reconnect is already scheduled. */
	void (*on_down)(void *arg, int err);
	/* A message from the KD: MEDIA_KEYS or TUNNELED_DTLS. msg is
	 * borrowed for the call; MediaKeys are wiped right after it. */
	void (*on_message)(void *arg, const struct cv_tunnel_msg *msg);
	void *arg;
};

/*
 * Creates the link and starts connecting at once. loop: borrowed, must
 * outlive the link; opts, cb: borrowed, copied (on_up, on_down and
 * on_message required). *out: owned by the caller (destroy). Returns 0;
 * -EINVAL; -ENOMEM; -ENOENT or another -errno if a file cannot be read;
 * CV_EPARSE (bad pin, no certificate or key in a file); CV_ECRYPTO.
 * Thread: the loop's.
 */
int cv_tunnel_link_create(struct cv_tunnel_link **out, struct cv_loop *loop,
			  const struct cv_tunnel_link_opts *opts,
			  const struct cv_tunnel_link_callbacks *cb);

/* Closes the connection (no callback) and frees the link. NULL is fine. */
void cv_tunnel_link_destroy(struct cv_tunnel_link *l);

/* True between on_up and the next on_down. Thread: the loop's. */
bool cv_tunnel_link_is_up(const struct cv_tunnel_link *l);

/*
 * Queues m (borrowed; encoded at once) for the KD: a TUNNELED_DTLS or
 * ENDPOINT_DISCONNECT. Returns 0; -ENOTCONN when the link is not up (the
 * caller fails the endpoint: nothing is queued across reconnects);
 * CV_ETOOBIG when the queue ceiling would be passed; -EINVAL for another
 * type or a malformed message. Thread: the loop's.
 */
int cv_tunnel_link_send(struct cv_tunnel_link *l,
			const struct cv_tunnel_msg *m);

/* Connections made so far (tests, metrics). Thread: the loop's. */
uint64_t cv_tunnel_link_connects(const struct cv_tunnel_link *l);

#endif
