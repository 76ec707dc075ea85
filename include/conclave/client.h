/*
 * The Conclave client library: an endpoint that does what a browser does,
 * without a browser (docs/protocol.md). One endpoint joins a room over the
 * signaling WebSocket, publishes its own tracks on a "publish" peer
 * connection (it offers) and receives every other track on a "subscribe"
 * peer connection (the node offers). Each peer connection is one libnice
 * stream with one component (BUNDLE + rtcp-mux), full ICE as the
 * controlling agent, DTLS-SRTP (cv_dtls, cv_srtp) on top.
 *
 * Media: audio is real Opus (a tone encoded once per loop into a ring of
 * 20 ms frames); video is "VP8-shaped" RTP (RFC 7741 payload descriptor and
 * frame header, filler bytes) at a set bitrate and frame rate, with a
 * keyframe every keyframe_interval_ms and on PLI. Every sent RTP packet
 * carries its send time in its RTP padding (see CV_CLIENT_STAMP_BYTES)
 * because the node drops header extensions when it forwards; receivers
 * measure one-way delay with the same machine's monotonic clock. Janus
 * (1.1.2) also drops abs-send-time but forwards RTP padding untouched,
 * so the same stamp measures delay through Janus (checked by the
 * client_janus test: every received packet has its delay sample).
 *
 * Threads: a struct cv_client_loop is one GLib main context plus one
 * libwebsockets client context. Every endpoint of a loop and every call on
 * it runs on the thread that iterates that GMainContext; many endpoints
 * share one loop, so a process runs hundreds of endpoints on a few
 * threads. libwebsockets is serviced from that same context (a short GLib
 * timer polls it without blocking), so no message crosses threads.
 */
#ifndef CONCLAVE_CLIENT_H
#define CONCLAVE_CLIENT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/perc_e2e.h"

/* Bytes of RTP padding that carry the send stamp: 'c' 'v' 0x01, the send
 * time (monotonic microseconds, 8 bytes big endian), the pad count. */
#define CV_CLIENT_STAMP_BYTES 12

/* Most tracks one endpoint receives (one subscribe m-line each). */
#define CV_CLIENT_MAX_TRACKS 16

/* ---- The loop: one GLib context, shared by many endpoints ---- */

struct cv_client_loop;

/*
 * Creates a loop on ctx (borrowed; the loop takes a reference), or on a
 * new context when ctx is NULL. Generates the DTLS certificate and encodes
 * the Opus tone ring (slow: tens of ms). *out: owned by the caller.
 * Returns 0; -ENOMEM; CV_ECRYPTO; -EIO (libwebsockets or libopus failed).
 * Thread: the one that will iterate the context.
 */
int cv_client_loop_create(struct cv_client_loop **out, GMainContext *ctx);

/* The loop's GLib context (borrowed, lives as long as the loop). */
GMainContext *cv_client_loop_context(struct cv_client_loop *loop);

/*
 * Iterates the loop's context until timeout_ms have passed or, when
 * until_idle, until no endpoint of the loop is still active. Thread: the
 * loop's.
 */
void cv_client_loop_run(struct cv_client_loop *loop, uint64_t timeout_ms,
			bool until_idle);

/* Destroys the loop; every endpoint must have been destroyed. NULL is
 * fine. Thread: the loop's. */
void cv_client_loop_destroy(struct cv_client_loop *loop);

/* ---- Endpoints ---- */

struct cv_client;

/*
 * What the endpoint talks to. JANUS: Janus's VideoRoom plugin over its
 * WebSocket API (subprotocol "janus-protocol"; perf/janus/README.md), so
 * that the same load runs against Janus: one session, a publisher handle
 * (join, publish with our offer) and one multistream subscriber handle
 * for every other publisher of the room (join/subscribe, Janus offers,
 * we answer with "start"). Media, stats and states are the same.
 */
enum cv_client_target {
	CV_CLIENT_TARGET_CONCLAVE = 0, /* docs/protocol.md */
	CV_CLIENT_TARGET_JANUS,
};

/*
 * Perc rooms (RFC 8871 end to end keys; docs/perc.md "The endpoint").
 * Before it joins, the endpoint opens the client-KMS channel
 * (cv_kms_client: HELLO, then optionally creates the room and adds
 * members, then GET_KEY: EKT key, SPI, inner salt and the Key
 * Distributor's DTLS fingerprint). After `joined` it registers its DTLS
 * certificate for both association ids with the KMS, and its DTLS (always
 * the client) pins the KD's fingerprint, never the node's a=fingerprint.
 * Hop keys come from the exporter output by the docs/perc.md rule; media
 * is double SRTP (cv_perc_sender / cv_perc_receiver) with a random inner
 * key per sending SSRC, shared by EKT.
 *
 * The KMS calls are synchronous round trips (sub-ms to a few ms on
 * loopback) made on the loop's thread: at WebSocket open, on `joined`, on
 * `rekey` and in cv_client_perc_remove_member / _add_member.
 */
struct cv_client_perc_opts {
	bool enabled;
	/* The KMS channel: kms_host NULL = the node's byte relay (the url's
	 * host and port, POST /v1/channel there), and the node token goes
	 * with membership changes (two-part add/remove); else conclave-kms
	 * directly at kms_host:kms_port (an IP literal). */
	const char *kms_host;
	uint16_t kms_port;
	/* The KMS certificate (PEM) to pin: a file, or the PEM text. */
	const char *kms_cert_file, *kms_cert_pem;
	const char *kms_token; /* the KMS token (same sub as the node token) */
	/* Before GET_KEY: create the room at the KMS (an existing room is
	 * fine) and add these members (token subs; already members are
	 * fine). For the first endpoint of a test or a load run. */
	bool create_room;
	const char *const *add_members; /* NULL-terminated, may be NULL */
};

struct cv_client_opts {
	const char *url;   /* "ws://host:port/ws" (wss: not yet) */
	const char *token; /* join token (JWT); unused for JANUS */
	const char *room;  /* unused for JANUS: see janus_room */
	const char *name;  /* NULL: none */
	bool audio, video; /* what to publish */
	bool subscribe;	   /* answer subscribe offers (normally true) */
	uint32_t video_bitrate_bps;    /* 0: 500000 */
	unsigned video_fps;	       /* 0: 30 */
	unsigned keyframe_interval_ms; /* 0: 3000 */
	/* ICE: bind host candidates to this address only. NULL: 127.0.0.1
	 * when the url's host is 127.x or localhost, else every non-loopback
	 * interface (libnice's default). JANUS with a 127.x url: 127.0.1.2,
	 * the host end of perf/janus's veth pair (the only address that
	 * reaches a Janus started by perf/janus/start.sh). */
	const char *ice_address;
	/* TURN over UDP (RFC 8656) when turn_server is set. */
	const char *turn_server; /* IP literal */
	uint16_t turn_port;	 /* 0: 3478 */
	const char *turn_user, *turn_password;
	bool relay_only; /* only relayed candidates (needs TURN) */
	/*
	 * Impairment on our side (no tc netem here): the fraction (0..1) of
	 * received media packets dropped before decryption, in bursts of
	 * rx_loss_burst packets (0 or 1: independent losses). Feedback
	 * (NACK, PLI) then works as it would on a lossy network.
	 */
	double rx_loss;
	unsigned rx_loss_burst;
	enum cv_client_target target; /* 0: CONCLAVE */
	/* JANUS: the VideoRoom room id (0: 1234). A room that does not exist
	 * is created (not permanent, 100 publishers, no bitrate cap, no
	 * periodic FIR, opus + vp8: perf/janus's room 1234 knobs). */
	uint64_t janus_room;
	/*
	 * More impairment on the receive side: every received media packet
	 * is held a random 0..rx_jitter_ms ms before it is processed
	 * (independent delays reorder packets whose spacing is smaller), and
	 * a fraction rx_reorder (0..1) of them is held RX_REORDER_MS more,
	 * so that it arrives after later ones. Delay figures include it.
	 */
	unsigned rx_jitter_ms;
	double rx_reorder;
	/* Impairment on the send side: the fraction (0..1) of our video
	 * RTP packets not sent the first time (each one is still kept for
	 * NACK), so that the node's NACKs to the publisher and our
	 * retransmissions get exercised. */
	double tx_loss;
	/* A perc room (docs/perc.md, "The endpoint"): see struct
	 * cv_client_perc_opts. perc.enabled false: a forward room. */
	struct cv_client_perc_opts perc;
};

enum cv_client_state {
	CV_CLIENT_CONNECTING = 0, /* WebSocket connecting */
	CV_CLIENT_JOINED,	  /* "joined" received (Janus: as publisher) */
	CV_CLIENT_PUBLISHING,	  /* publish connection's DTLS done */
	CV_CLIENT_SUBSCRIBED,	  /* subscribe connection's DTLS done */
	CV_CLIENT_CLOSED,	  /* left, or the node closed the socket */
	CV_CLIENT_FAILED,	  /* see the err argument */
	CV_CLIENT_REMOVED,	  /* perc: a member removed us ("removed") */
};

/* A short name of a state ("connecting", ..., "removed"). Static. */
const char *cv_client_state_name(enum cv_client_state s);

/*
 * Callbacks, all optional, run on the loop's thread from inside the
 * loop's dispatch; they may call cv_client_leave but must not destroy the
 * endpoint (destroy it after the loop iteration returns).
 * on_state: err is 0 or, for CV_CLIENT_FAILED, a negative code.
 * on_event: every node->client message except "ok" and "pong" (type such
 * as "joined", "participant_joined", "track_added", "subscribe_offer",
 * "error"), after the endpoint handled it; json is the frame text,
 * borrowed for the call. JANUS: every message but "ack", type being its
 * "janus" member ("success", "event", "webrtcup", "media", "trickle",
 * "hangup", "error", ...); plugin errors come as type "error" too.
 */
struct cv_client_callbacks {
	void (*on_state)(void *arg, enum cv_client_state state, int err);
	void (*on_event)(void *arg, const char *type, const char *json);
	void *arg;
};

/*
 * Creates an endpoint on loop (borrowed; must outlive it) and starts
 * connecting. opts and cb: borrowed, copied. *out: owned by the caller.
 * Returns 0; -EINVAL (missing url, or token/room for CONCLAVE; relay_only
 * without TURN; bad url or target); -ENOMEM; -EIO (the connection could not be
 * started). Thread: the loop's.
 */
int cv_client_create(struct cv_client **out, struct cv_client_loop *loop,
		     const struct cv_client_opts *opts,
		     const struct cv_client_callbacks *cb);

/* Sends "leave" (JANUS: destroys the session, which hangs up its
 * handles) and stops media; the endpoint reaches CV_CLIENT_CLOSED.
 * Thread: the loop's. */
void cv_client_leave(struct cv_client *c);

/* Sends "mute" for our audio (video false) or video track (docs/
 * protocol.md). Media keeps flowing from us; what the node does with a
 * muted track is its business (perc rooms: it stops forwarding and
 * rewrites SEQ on unmute). Thread: the loop's. */
void cv_client_mute(struct cv_client *c, bool video, bool muted);

/* Frees the endpoint at once (closing its socket, no callbacks). NULL is
 * fine. Thread: the loop's, outside its callbacks. */
void cv_client_destroy(struct cv_client *c);

enum cv_client_state cv_client_get_state(const struct cv_client *c);

/* What one endpoint sent. */
struct cv_client_send_stats {
	uint64_t audio_packets, video_packets, bytes;
	uint64_t video_frames, keyframes;
	uint64_t nacks_received, retransmits, plis_received;
	uint64_t impair_dropped;    /* received packets dropped by rx_loss */
	uint64_t tx_impair_dropped; /* video packets not sent (tx_loss) */
};

/* One received track (one SSRC of the subscribe connection). */
struct cv_client_track_stats {
	char mid[33];
	char track[65]; /* the node's track id ("" if not announced);
			   JANUS: "<publisher id>/<publisher's mid>" */
	bool video;
	uint64_t packets, bytes; /* distinct packets, payload bytes */
	uint64_t expected;	 /* from the sequence number span */
	uint64_t lost;		 /* expected - packets (never negative) */
	uint64_t out_of_order, duplicates;
	uint64_t frames, keyframes;
	uint64_t keyframe_waits; /* times decoding had to wait for one */
	uint64_t nacks_sent, plis_sent;
	uint64_t recovered; /* gaps filled later (NACK or reordering) */
	uint64_t delay_samples;
	uint32_t delay_p50_us, delay_p95_us, delay_p99_us, delay_max_us;
	uint32_t jitter_us; /* RFC 3550 A.8 interarrival jitter */
};

/* Fills *out. Thread: the loop's. */
void cv_client_send_stats(const struct cv_client *c,
			  struct cv_client_send_stats *out);

/* One track over an interval (for time series and plots). */
struct cv_client_interval {
	uint64_t packets, lost; /* during the interval (lost may be 0 while
				   a gap is still being repaired) */
	uint64_t delay_samples;
	uint32_t delay_p50_us, delay_p95_us, delay_p99_us, delay_max_us;
};

/*
 * What track i received since the previous call for it (or since it
 * began), then starts a new interval. Returns 0 or -ENOENT.
 * Thread: the loop's.
 */
int cv_client_track_interval(struct cv_client *c, size_t i,
			     struct cv_client_interval *out);

/*
 * The type of the local candidate ICE selected on the publish (publish
 * true) or subscribe connection: "host", "srflx", "prflx" or "relay";
 * NULL before a pair is selected. Static string. Thread: the loop's.
 */
const char *cv_client_ice_local_type(const struct cv_client *c, bool publish);

/* Number of received tracks so far (<= CV_CLIENT_MAX_TRACKS). */
size_t cv_client_track_count(const struct cv_client *c);

/* Fills *out for track i. Returns 0 or -ENOENT. Thread: the loop's. */
int cv_client_track_stats(const struct cv_client *c, size_t i,
			  struct cv_client_track_stats *out);

/* ---- Perc rooms: membership, counters and test hooks ---- */

/*
 * Removes member (a token sub) from the room through the KMS channel: the
 * node's relay with the node token as the core part (the node then ends
 * the member's session and tells the others to rekey): a membership change
 * is two-part, so an endpoint whose channel goes straight to conclave-kms
 * (kms_host set) gets -EOPNOTSUPP and changes nothing (also for
 * perc.add_members). On success the endpoint rekeys at once
 * (GET_KEY, new EKT key to its receiver, new inner keys). Synchronous.
 * Returns 0; -EINVAL (not a perc endpoint, or before the KMS step); the
 * errors of cv_kms_client_remove_member. Thread: the loop's.
 */
int cv_client_perc_remove_member(struct cv_client *c, const char *member);

/* The same for adding a member (no rekey). */
int cv_client_perc_add_member(struct cv_client *c, const char *member);

/*
 * Which KMS step of a perc join failed ("connect", "create_room",
 * "add_member", "get_key", "register_endpoint"), or NULL when none did (or
 * not a perc endpoint): with the CV_CLIENT_FAILED error code, what a user
 * needs to see. cv_client_perc_kms_status: the KMS's last answer code
 * ("not_member", ...; "" when there was no answer, e.g. the KMS or the
 * node's relay could not be reached). Both static strings. Thread: the
 * loop's.
 */
const char *cv_client_perc_failed_step(const struct cv_client *c);
const char *cv_client_perc_kms_status(const struct cv_client *c);

/* What one perc endpoint counted. */
struct cv_client_perc_stats {
	uint64_t sent;		   /* packets double-protected */
	uint64_t verified;	   /* delivered, inner tag and check ok */
	uint64_t payload_mismatch; /* delivered, but not what was sent */
	uint64_t unknown_ssrc;	   /* delivered for no announced track */
	uint64_t drops[CV_PERC_DROP_COUNT]; /* by cv_perc_drop_name */
	uint64_t seq_rewritten;	 /* verified, hop SEQ != original SEQ */
	uint64_t rekeys;	 /* EKT key changes applied */
	uint64_t rekey_retries;	 /* `rekey` fetches retried (KMS unreachable) */
	uint64_t held_for_rekey; /* packets not sent while a rekey was due */
	uint64_t retransmits;	 /* identical resends for NACK */
	uint16_t spi;		 /* current EKT key */
	uint32_t epoch;		 /* the KMS's key epoch */
};

/* Fills *out (zeros for a forward endpoint). Thread: the loop's. */
void cv_client_perc_stats(const struct cv_client *c,
			  struct cv_client_perc_stats *out);

/*
 * Test hooks (done-when 2 and 4 of issue 4): the key material this
 * endpoint used, so that a test can scan the node's memory for it and
 * try a removed member's state on captured packets. Never log these.
 */
#define CV_CLIENT_PERC_MAX_KEYS 8

struct cv_client_perc_key {
	uint32_t id; /* inner: the SSRC; EKT: the SPI; hop: 0 pub, 1 sub */
	uint8_t len; /* octets in b */
	uint8_t b[CV_SECRET_MAX_BYTES];
};

struct cv_client_perc_keys {
	/* own inner master keys (every one used, oldest first) */
	size_t n_inner;
	struct cv_client_perc_key inner[CV_CLIENT_PERC_MAX_KEYS];
	/* EKT keys received from the KMS (oldest first) and their inner
	 * salts (same order) */
	size_t n_ekt;
	struct cv_client_perc_key ekt[CV_CLIENT_PERC_MAX_KEYS];
	struct cv_client_perc_key inner_salt[CV_CLIENT_PERC_MAX_KEYS];
	/* hop (outer) keys, key || salt: out = what we send with, in = what
	 * the node sends us with; index 0 publish, 1 subscribe connection */
	struct cv_client_perc_key hop_out[2], hop_in[2];
};

/* Copies the keys into *out (wipe it after use). Thread: the loop's. */
void cv_client_perc_keys(const struct cv_client *c,
			 struct cv_client_perc_keys *out);

/*
 * A tap on the raw datagrams (SRTP, before any impairment or
 * decryption) the subscribe connection receives: fn(arg, bytes, len)
 * for each RTP datagram, bytes borrowed for the call. NULL removes it.
 * Thread: the loop's.
 */
typedef void cv_client_tap_fn(void *arg, const uint8_t *dgram, size_t len);
void cv_client_set_rx_tap(struct cv_client *c, cv_client_tap_fn *fn, void *arg);

/*
 * Runs a datagram (SRTP as tapped) through this endpoint's perc receiver
 * without delivering it: the state a member has (its EKT keys and the
 * inner keys it learnt) against captured packets. hop_in (borrowed; key
 * || salt as in struct cv_client_perc_keys) removes the outer layer with
 * a fresh session of that key (say the capturing member's hop_in[1]: the
 * worst case, a removed member who also holds the hop key); NULL uses
 * this endpoint's own subscribe session. Returns 0 when the packet
 * decrypts and verifies end to end, else the cv_perc_e2e_unprotect error
 * (the drop is counted in this endpoint's stats); -EINVAL when this is
 * not a perc endpoint with a receiver. Thread: the loop's.
 */
int cv_client_perc_try_unprotect(struct cv_client *c,
				 const struct cv_client_perc_key *hop_in,
				 const uint8_t *dgram, size_t len);

#endif
