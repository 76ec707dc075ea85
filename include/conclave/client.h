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
};

enum cv_client_state {
	CV_CLIENT_CONNECTING = 0, /* WebSocket connecting */
	CV_CLIENT_JOINED,	  /* "joined" received (Janus: as publisher) */
	CV_CLIENT_PUBLISHING,	  /* publish connection's DTLS done */
	CV_CLIENT_SUBSCRIBED,	  /* subscribe connection's DTLS done */
	CV_CLIENT_CLOSED,	  /* left, or the node closed the socket */
	CV_CLIENT_FAILED,	  /* see the err argument */
};

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

/* Frees the endpoint at once (closing its socket, no callbacks). NULL is
 * fine. Thread: the loop's, outside its callbacks. */
void cv_client_destroy(struct cv_client *c);

enum cv_client_state cv_client_get_state(const struct cv_client *c);

/* What one endpoint sent. */
struct cv_client_send_stats {
	uint64_t audio_packets, video_packets, bytes;
	uint64_t video_frames, keyframes;
	uint64_t nacks_received, retransmits, plis_received;
	uint64_t impair_dropped; /* received packets dropped by rx_loss */
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

#endif
