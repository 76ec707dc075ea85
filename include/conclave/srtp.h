/*
 * SRTP and SRTCP sessions (RFC 3711, AEAD per RFC 7714) over libsrtp2.
 *
 * A struct cv_srtp protects or unprotects one direction of one transport
 * (BUNDLE: every SSRC of that direction shares it). It is owned by that
 * transport and used by the one worker thread that owns the transport; it
 * takes no lock. Packets are processed in place: the buffer must be 4-byte
 * aligned (libsrtp reads 32-bit words) and, for protect, have tailroom for
 * the trailer.
 *
 * libsrtp statuses never leave this module: replay -> CV_EREPLAY,
 * authentication failure -> CV_EINTEGRITY, any other failure -> CV_ECRYPTO;
 * input too short or not RTP/RTCP -> CV_EPARSE; no tailroom -> CV_ETOOBIG.
 */
#ifndef CONCLAVE_SRTP_H
#define CONCLAVE_SRTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/secret.h"

/* The protection profiles we negotiate (RFC 5764 section 4.1.2, RFC 7714
 * section 14.2). The values are ours, not the wire ids. */
enum cv_srtp_profile {
	CV_SRTP_AES128_CM_HMAC_SHA1_80 = 1,
	CV_SRTP_AEAD_AES_128_GCM = 2,
	CV_SRTP_AEAD_AES_256_GCM = 3,
};

enum cv_srtp_direction {
	CV_SRTP_INBOUND = 1,  /* unprotect what the peer sent */
	CV_SRTP_OUTBOUND = 2, /* protect what we send */
};

/* Largest trailer any profile adds (GCM SRTCP: 16-byte tag + 4-byte
 * E-flag/index). Packet pools reserve this much tailroom. */
#define CV_SRTP_MAX_TRAILER_BYTES 20

/* Largest key || salt of any profile (AES-256 key + 12-byte salt). */
#define CV_SRTP_MAX_KEY_SALT_BYTES 46

/* Replay window of inbound sessions, in packets (RFC 3711 section 3.3.2). */
#define CV_SRTP_REPLAY_WINDOW 1024

/*
 * Profile helpers. All are pure functions, thread: any. For a value outside
 * enum cv_srtp_profile the getters return 0 / NULL.
 */

/* The use_srtp protection profile id: 0x0001, 0x0007 or 0x0008. */
uint16_t cv_srtp_profile_id(enum cv_srtp_profile p);
/* id -> profile. Returns 0, or CV_EUNSUPP for any other id. */
int cv_srtp_profile_from_id(uint16_t id, enum cv_srtp_profile *out);
/* OpenSSL's profile name, e.g. "SRTP_AES128_CM_SHA1_80" (for
 * SSL_CTX_set_tlsext_use_srtp and SSL_get_selected_srtp_profile). */
const char *cv_srtp_profile_name(enum cv_srtp_profile p);
/* OpenSSL name -> profile. Returns 0, CV_EUNSUPP, or -EINVAL if NULL. */
int cv_srtp_profile_from_name(const char *name, enum cv_srtp_profile *out);
/* Master key and master salt lengths in bytes: 16/14, 16/12, 32/12. */
size_t cv_srtp_profile_key_bytes(enum cv_srtp_profile p);
size_t cv_srtp_profile_salt_bytes(enum cv_srtp_profile p);
/* Bytes protect adds: RTP 10/16/16, RTCP 14/20/20. */
size_t cv_srtp_profile_rtp_trailer_bytes(enum cv_srtp_profile p);
size_t cv_srtp_profile_rtcp_trailer_bytes(enum cv_srtp_profile p);

/*
 * Splits DTLS-SRTP exporter output ("EXTRACTOR-dtls_srtp", RFC 5764 section
 * 4.2): client_key | server_key | client_salt | server_salt. local_out gets
 * key || salt of the keys we send with, remote_out those the peer sends
 * with; the DTLS client sends with the client's. material (borrowed) must be
 * exactly 2 * (key + salt) bytes. Thread: any.
 * Returns 0; -EINVAL for a bad length or NULL pointer, CV_EUNSUPP for an
 * unknown profile. On failure both outputs are wiped.
 */
int cv_srtp_split_keying(enum cv_srtp_profile p, const uint8_t *material,
			 size_t len, bool is_dtls_client,
			 struct cv_secret *local_out,
			 struct cv_secret *remote_out);

/*
 * Initialises libsrtp once per process; safe to call many times from any
 * thread (pthread_once). cv_srtp_create() calls it too.
 * Returns 0 or CV_ECRYPTO.
 */
int cv_srtp_global_init(void);

/*
 * Which crypto backend the linked libsrtp2 uses: "openssl", "nss",
 * "builtin" or "unknown". For start-up logs and the build check (see
 * docs/dependencies.md). Thread: any, after cv_srtp_global_init().
 */
const char *cv_srtp_backend(void);

struct cv_srtp;

/*
 * Creates a session for one direction. key_salt (borrowed; copied, the
 * caller keeps and wipes its own) is master key || master salt of exactly
 * the profile's lengths, e.g. from cv_srtp_split_keying().
 * Inbound: any SSRC (ssrc_any_inbound), replay window CV_SRTP_REPLAY_WINDOW.
 * Outbound: any SSRC, and re-protecting an already sent sequence number is
 * allowed (allow_repeat_tx) because the node re-sends cached packets for
 * NACK; the caller must re-send the same payload.
 * Writes *out only on success. Thread: any; then used by one thread.
 * Returns 0; -EINVAL (bad key length, direction or NULL), CV_EUNSUPP
 * (profile), -ENOMEM, CV_ECRYPTO.
 */
int cv_srtp_create(struct cv_srtp **out, enum cv_srtp_profile p,
		   const struct cv_secret *key_salt,
		   enum cv_srtp_direction dir);

/*
 * Both sessions of a DTLS-SRTP association in one call: the negotiated
 * use_srtp profile id (RFC 5764 4.1.2), the exporter material (borrowed;
 * the caller wipes it) and our DTLS role give the inbound session (the
 * peer's keys) and the outbound one (ours), via cv_srtp_split_keying().
 * Writes *inbound and *outbound only on success (both, or neither).
 * Returns 0, CV_EUNSUPP (profile), -EINVAL, -ENOMEM, CV_ECRYPTO.
 */
int cv_srtp_sessions_from_dtls(uint16_t profile_id, const uint8_t *material,
			       size_t len, bool is_dtls_client,
			       struct cv_srtp **inbound,
			       struct cv_srtp **outbound);

/*
 * Most sender SSRCs one inbound session keeps state for. A packet from
 * one more is refused (CV_ETOOBIG) before it reaches libsrtp; forget the
 * SSRCs the caller does not want (cv_srtp_forget) to make room.
 */
#define CV_SRTP_MAX_STREAMS 32

/* Drops the inbound state of ssrc (an SSRC the caller does not accept).
 * Harmless for an unknown SSRC. Thread: the session's. */
void cv_srtp_forget(struct cv_srtp *s, uint32_t ssrc);

/* Frees the session and wipes its keys; NULL is a no-op. */
void cv_srtp_destroy(struct cv_srtp *s);

enum cv_srtp_profile cv_srtp_get_profile(const struct cv_srtp *s);

/*
 * RTP, outbound session only. Encrypts and authenticates buf[0..*len) in
 * place and sets *len to the SRTP length. cap is the buffer's size: needs
 * cap - *len >= cv_srtp_profile_rtp_trailer_bytes(profile).
 * Returns 0; CV_ETOOBIG (no tailroom, or *len > INT_MAX), CV_EPARSE (not an
 * RTP header), CV_EREPLAY (sequence number more than CV_SRTP_REPLAY_WINDOW
 * behind the newest sent for that SSRC: too old to re-send), CV_ECRYPTO,
 * -EINVAL (inbound session).
 * On failure *len is unchanged; buf may have been partly overwritten.
 */
int cv_srtp_protect(struct cv_srtp *s, uint8_t *buf, size_t *len, size_t cap);

/*
 * RTP, inbound session only. Verifies and decrypts buf[0..*len) in place
 * and sets *len to the RTP length.
 * Returns 0; CV_EPARSE (too short / not RTP), CV_EINTEGRITY (tag did not
 * verify), CV_EREPLAY (duplicate or older than the window), CV_ECRYPTO,
 * -EINVAL (outbound session). On failure *len is unchanged and the bytes of
 * buf are unspecified (GCM decrypts before it checks the tag): drop it.
 */
int cv_srtp_unprotect(struct cv_srtp *s, uint8_t *buf, size_t *len);

/*
 * The same for RTCP, same errors (RFC 3711 section 3.4: SRTCP, always
 * encrypted, E-flag set; the session numbers the SRTCP index). The trailer
 * is cv_srtp_profile_rtcp_trailer_bytes(); the input needs at least the
 * 8-octet header and sender SSRC.
 */
int cv_srtp_protect_rtcp(struct cv_srtp *s, uint8_t *buf, size_t *len,
			 size_t cap);
int cv_srtp_unprotect_rtcp(struct cv_srtp *s, uint8_t *buf, size_t *len);

#endif
