/*
 * Private state of the client library: the loop, the endpoint and its two
 * peer connections. Everything here belongs to the loop's thread.
 */
#ifndef CONCLAVE_CLIENT_ENDPOINT_H
#define CONCLAVE_CLIENT_ENDPOINT_H

#include <nice/agent.h>
#include <glib.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "client/client_priv.h"
#include "conclave/client.h"
#include "conclave/dtls.h"
#include "conclave/kms_client.h"
#include "conclave/perc_e2e.h"
#include "conclave/srtp.h"
#include "conclave/tunnel.h"

#define CV_CLIENT_OPUS_RING    50 /* 1 s of 20 ms frames */
#define CV_CLIENT_OPUS_MAX     400
#define CV_CLIENT_RTX_HISTORY  128 /* sent video packets kept for NACK */
#define CV_CLIENT_MAX_PAYLOAD  1100
#define CV_CLIENT_PKT_CAP      1500
#define CV_CLIENT_WS_MAX_BYTES 65536
#define CV_CLIENT_TICK_MS      5

struct cv_client_loop {
	GMainContext *ctx;
	struct lws_context *lws;
	GSource *lws_timer;
	struct cv_dtls_cert *cert;
	struct cv_dtls_ctx *dtls_ctx;
	GPtrArray *clients; /* borrowed struct cv_client pointers */
	uint8_t opus[CV_CLIENT_OPUS_RING][CV_CLIENT_OPUS_MAX];
	size_t opus_len[CV_CLIENT_OPUS_RING];
};

/* One peer connection: one libnice stream, one DTLS association. */
struct cv_client_pc {
	struct cv_client *c;
	bool publish;
	NiceAgent *agent; /* borrowed: c->agent or c->sub_agent */
	guint stream_id;
	bool gathered;
	bool remote_set;
	bool dtls_up;
	struct cv_dtls *dtls;
	struct cv_srtp *tx, *rx;
	char *pending_offer; /* subscribe_offer JSON (malloc, jansson) */
	GPtrArray *trickled; /* remote "candidate:..." lines (g_free) that
				came before the remote description */
	GQueue held; /* struct cv_client_held, by release time (impairment) */
};

/* A received datagram held back by the jitter/reorder impairment. */
struct cv_client_held {
	uint64_t release_us;
	guint len;
	uint8_t data[];
};

#define CV_CLIENT_NACK_PENDING 64

/* A NACKed packet we still wait for. */
struct cv_client_nack {
	uint64_t ext; /* extended sequence number */
	uint64_t sent_us;
	uint8_t tries;
};

/* One received SSRC. */
struct cv_client_sink {
	uint32_t ssrc;
	uint32_t clock_rate;
	char mid[CV_SDP_MAX_MID_BYTES + 1];
	char track[65];
	bool video;
	struct cv_client_seq seq;
	struct cv_client_hist delay;
	struct cv_client_hist delay_iv; /* since the last interval read */
	uint64_t iv_packets, iv_lost;	/* totals at the last interval read */
	uint64_t bytes, frames, keyframes, keyframe_waits;
	uint64_t nacks_sent, plis_sent;
	bool waiting_keyframe;
	uint64_t last_pli_us;
	bool have_transit;
	int64_t transit;
	double jitter; /* RTP timestamp units (RFC 3550 A.8) */
	struct cv_client_nack nack[CV_CLIENT_NACK_PENDING];
	size_t n_nack;
};

/* Perc state of one endpoint (perc_ep.c). */
struct cv_client_perc {
	bool enabled;
	bool via_node; /* the KMS channel goes through the node's relay */
	char *kms_host;
	uint16_t kms_port;
	char *kms_cert_file, *kms_cert_pem, *kms_token;
	bool create_room;
	GPtrArray *add_members; /* g_strdup'ed subs */
	struct cv_kms_client *kms;
	bool have_key;
	struct cv_perc_ekt_key ekt; /* current EKT key */
	uint32_t epoch;
	struct cv_dtls_fingerprint kd_fp;
	struct cv_tunnel_assoc_id assoc[2]; /* publish, subscribe */
	bool have_assoc;
	enum cv_perc_profile profile; /* of our senders */
	struct cv_perc_sender *a_tx, *v_tx;
	struct cv_perc_receiver *rx;
	uint16_t old_spi[CV_PERC_MAX_EKT_KEYS]; /* to forget at old_at_us */
	uint64_t old_at_us[CV_PERC_MAX_EKT_KEYS];
	size_t n_old;
	uint64_t announce_until_us; /* FullEKTField on every packet */
	struct cv_client_perc_stats st;
	struct cv_client_perc_keys keys;
	const char *failed_step; /* static; cv_client_perc_failed_step */
	/* A `rekey` whose GET_KEY could not reach the KMS: retried from the
	 * tick with backoff until rekey_give_up_us (cv_client_perc_on_rekey) */
	uint64_t rekey_retry_us, rekey_give_up_us, rekey_backoff_us;
	cv_client_tap_fn *tap;
	void *tap_arg;
};

struct cv_client_sent_pkt {
	uint16_t seq;
	uint16_t len; /* 0: empty slot */
	uint8_t data[CV_CLIENT_PKT_CAP];
};

struct cv_client {
	struct cv_client_loop *loop;
	struct cv_client_callbacks cb;
	/* options, strings owned (g_strdup) */
	char *url, *token, *room, *name, *ice_address;
	char *turn_server, *turn_user, *turn_password;
	uint16_t turn_port;
	bool relay_only, audio, video, subscribe;
	uint32_t video_bitrate_bps;
	unsigned video_fps, keyframe_interval_ms;
	double rx_loss;
	unsigned rx_loss_burst, burst_left;
	unsigned rx_jitter_ms;
	double rx_reorder;
	double tx_loss;
	GRand *rand;

	enum cv_client_state state;
	struct lws *wsi; /* NULL once lws closed it */
	bool ws_open;	 /* established: messages may be sent */
	GQueue outq;	 /* char * JSON texts to send */
	GString *rx;	 /* a message being reassembled */
	int next_id;
	int publish_id, sub_answer_id; /* ids of our last such requests */

	NiceAgent *agent;
	/* Janus only: the subscribe connection's agent. Janus offers it, so
	 * it is controlling there (RFC 8445 6.1.1) while we control the
	 * publish connection; libnice's role is per agent. */
	NiceAgent *sub_agent;
	struct cv_client_pc pub, sub;
	struct cv_client_janus *janus; /* NULL: the Conclave protocol */
	char cname[17];

	/* sources */
	uint32_t a_ssrc, v_ssrc, fb_ssrc; /* fb: our RTCP sender SSRC */
	uint16_t a_seq, v_seq;
	uint32_t a_ts, v_ts;
	size_t opus_idx;
	uint64_t next_audio_us, next_video_us, last_key_us;
	bool key_wanted;
	uint16_t picture_id;
	struct cv_client_sent_pkt *history; /* CV_CLIENT_RTX_HISTORY */
	struct cv_client_send_stats sent;

	/* sinks and the subscribe m-lines they came from */
	struct cv_client_sink sinks[CV_CLIENT_MAX_TRACKS];
	size_t n_sinks;
	uint64_t unknown_ssrc;

	struct cv_client_perc perc;
};

struct cv_client_janus;

/* endpoint.c */
/* CLOSED, FAILED and REMOVED are final. */
bool cv_client_state_final(enum cv_client_state s);
void cv_client_fail(struct cv_client *c, int err);
/* Runs an endpoint's timers (DTLS retransmission, media pacing,
 * feedback); called by the loop every CV_CLIENT_TICK_MS. */
void cv_client_tick(struct cv_client *c, uint64_t now_us);
void cv_client_set_state(struct cv_client *c, enum cv_client_state s, int err);
int cv_client_pc_send(struct cv_client_pc *pc, const uint8_t *buf, size_t len);

/* endpoint.c, for janus.c: the protocol-independent steps. */
/* Queues a WebSocket text message; takes ownership of msg (NULL: no-op). */
void cv_client_send_json(struct cv_client *c, json_t *msg);
/* Joined: state JOINED, starts the publish connection if it publishes. */
void cv_client_on_joined(struct cv_client *c);
/* The answer to our publish offer (SDP text, borrowed). */
void cv_client_on_publish_answer(struct cv_client *c, const char *sdp);
/* A subscribe offer in the shape of docs/protocol.md's subscribe_offer
 * ({"sdp": ..., "tracks": [{"mid", "track"}]}, borrowed); the answer goes
 * out through cv_client_janus_answer when c->janus. */
void cv_client_on_subscribe_offer(struct cv_client *c, json_t *msg);
/* A trickled remote candidate ("candidate:..." without "a=") for pc. */
void cv_client_pc_add_remote(struct cv_client_pc *pc, const char *cand);

/* janus.c: the Janus VideoRoom signaling (perf/janus/README.md). */
/* Allocates c->janus for VideoRoom room (0: 1234). Returns 0 or -ENOMEM. */
int cv_client_janus_create(struct cv_client *c, uint64_t room);
void cv_client_janus_destroy(struct cv_client *c);
/* The WebSocket is open: creates the Janus session. */
void cv_client_janus_open(struct cv_client *c);
/* One complete message from Janus (text borrowed). */
void cv_client_janus_handle(struct cv_client *c, const char *text);
/* Sends our publish offer / subscribe answer (SDP text, borrowed). */
void cv_client_janus_publish(struct cv_client *c, const char *sdp);
void cv_client_janus_answer(struct cv_client *c, const char *sdp);
/* Keepalives; called from cv_client_tick. */
void cv_client_janus_tick(struct cv_client *c, uint64_t now_us);
/* Destroys the Janus session (its handles and peer connections). */
void cv_client_janus_leave(struct cv_client *c);

/* rtp_io.c: the media path of one endpoint. */
void cv_client_media_tick(struct cv_client *c, uint64_t now_us);
void cv_client_media_recv(struct cv_client_pc *pc, uint8_t *buf, size_t len);
uint64_t cv_client_now_us(void);

/* perc_ep.c: the perc room steps (docs/perc.md "The endpoint"). */
/* Copies opts->perc into c->perc and creates the KMS client (no I/O).
 * Returns 0, -EINVAL, or cv_kms_client_create's errors. */
int cv_client_perc_init(struct cv_client *c, const struct cv_client_opts *o,
			const char *node_host, int node_port);
void cv_client_perc_fini(struct cv_client *c);
/* Before the join: KMS handshake, optional create/add, GET_KEY. */
int cv_client_perc_prepare(struct cv_client *c);
/* `joined` (json borrowed): registers our fingerprint for both assoc
 * ids. */
int cv_client_perc_on_joined(struct cv_client *c, json_t *msg);
/* `rekey`: GET_KEY and, if the key changed, rekey. */
int cv_client_perc_rekey(struct cv_client *c);
/* The fingerprint the DTLS of a perc connection pins (the KD's). */
const struct cv_dtls_fingerprint *cv_client_perc_kd_fp(struct cv_client *c);
/* A perc connection's DTLS is done: hop sessions from the double keys,
 * senders (publish) or receiver (subscribe). */
int cv_client_perc_connected(struct cv_client_pc *pc, uint16_t profile_id,
			     const uint8_t *material, size_t len,
			     bool is_client);
/* Double-protects one of our RTP packets for ssrc in place. */
int cv_client_perc_protect(struct cv_client *c, uint32_t ssrc, uint8_t *buf,
			   size_t *len, size_t cap);
/* Removes both layers of a received packet; fills *hop_seq. 0 or a
 * counted drop. */
int cv_client_perc_unprotect(struct cv_client_pc *pc, uint8_t *buf, size_t *len,
			     uint16_t *hop_seq);
/* A receiver may be new (PLI/FIR): restarts the FullEKTField burst of
 * our senders (no key change). */
void cv_client_perc_announce(struct cv_client *c);
/* `participant_joined`: a FullEKTField on every packet for a while. */
void cv_client_perc_on_participant(struct cv_client *c);
/* Timers: forgets old EKT keys after the rotation grace. */
/* `rekey` from the node: cv_client_perc_rekey, and when the KMS cannot be
 * reached, retries from the tick with backoff for up to 30 s, sending no
 * media meanwhile (never under the old key). 0, or an error that ends the
 * endpoint. */
int cv_client_perc_on_rekey(struct cv_client *c);
void cv_client_perc_tick(struct cv_client *c, uint64_t now_us);

/* lws protocol callback (endpoint.c), used by loop.c's context. */
int cv_client_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
			  void *user, void *in, size_t len);

#endif
