/* The control plane's objects; private to src/node. Guarded by node->lock. */
#ifndef CONCLAVE_NODE_PRIV_H
#define CONCLAVE_NODE_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "conclave/ice.h"
#include "conclave/loop.h"
#include "conclave/msg.h"
#include "conclave/sdp.h"
#include "conclave/token.h"
#include "conclave/tunnel.h"
#include "src/node/admin.h"

struct cv_relay;
struct cv_ws_post;

struct participant;

struct track {
	uint64_t num;			    /* the switch's track id */
	char id[16];			    /* the protocol's opaque id */
	char mid[CV_SDP_MAX_MID_BYTES + 1]; /* in the publish connection */
	struct participant *owner;
	bool video, muted;
	enum cv_source source;
	char codec[16];
	char fmtp[256];
	uint8_t pt, channels;
	uint8_t rtx_pt; /* the publisher's RTX PT; 0: none */
	uint32_t clock_rate;
	uint32_t ssrc; /* the publisher's announced SSRC; 0: learnt */
	struct track *next;
};

/* One m-line of a participant's subscribe connection. */
struct sub_slot {
	char mid[8];
	bool video;
	uint32_t ssrc;		     /* what this subscriber sees */
	uint32_t rtx_ssrc;	     /* its RTX stream (video) */
	struct track *track;	     /* what it should carry now; NULL: none */
	struct track *offered_track; /* what the last offer said */
	bool subscribed;	     /* the switch forwards track here */
};

struct participant {
	char id[16];	 /* opaque protocol id */
	char log_id[17]; /* obfuscated token subject */
	char name[CV_MSG_NAME_MAX + 1];
	char sub[CV_TOKEN_SUB_MAX + 1]; /* token subject: never logged */
	uint64_t conn_id;
	struct room *room;
	unsigned rights;
	uint64_t pub_transport, sub_transport; /* 0: none yet */
	struct cv_ice_credentials pub_creds, sub_creds;
	char pub_remote_ufrag[CV_SDP_MAX_ICE_BYTES + 1];
	uint64_t pub_version, sub_version;
	struct sub_slot slots[CV_SDP_MAX_MEDIA];
	size_t n_slots;
	unsigned next_mid;
	bool sub_offer_pending, sub_dirty;
	/* perc rooms: the RFC 9185 association ids of the two transports */
	struct cv_tunnel_assoc_id pub_assoc, sub_assoc;
	struct participant *next_in_room;
};

struct room {
	char name[65];
	char log_id[17];
	unsigned worker;
	enum cv_token_mode mode; /* fixed by the first join */
	struct participant *members;
	unsigned n_members;
	struct track *tracks;
	/* Perc: the SSRCs of tracks gone from the room. A subscriber's hop
	 * SRTP stream is named by the publisher's SSRC and outlives its
	 * track; a new stream under an old SSRC would start its SEQ again and
	 * reuse AES-GCM nonces under that hop key. So no SSRC is announced
	 * twice in a perc room's life (ROOM_RETIRED_SSRCS_MAX at most). */
	uint32_t *retired_ssrcs;
	size_t n_retired;
	struct room *next;
};

#define ROOM_RETIRED_SSRCS_MAX 4096

struct worker_ref {
	struct cv_switch *sw; /* set by the worker when it starts */
	unsigned rooms, participants;
};

struct node_stats {
	uint64_t joins, joins_refused;
	uint64_t membership_applied; /* two-part changes applied (perc) */
};

/* A token subject denied re-joining a perc room (removed through the
 * relay, until an add_member succeeds there). */
struct deny_entry {
	char room[CV_TOKEN_ROOM_MAX + 1];
	char sub[CV_TOKEN_SUB_MAX + 1];
};

#define NODE_DENY_MAX 4096 /* oldest entries go first beyond this */

struct cv_node {
	pthread_mutex_t lock;
	const struct cv_config *cfg;
	struct cv_workers *workers;
	struct cv_workers *control; /* one thread: events from workers */
	/* Connections not joined yet, with their deadline (control timer). */
	struct pending_conn {
		uint64_t id;
		uint64_t deadline_ms;
	} * pending;
	size_t n_pending, cap_pending;
	uint64_t join_timeout_ms;
	struct cv_timer join_timer; /* on the control thread's loop */
	unsigned n_workers;
	struct worker_ref *wref;
	struct cv_ws_server *ws;
	struct cv_dtls_cert *cert;
	struct cv_dtls_ctx *dtls;
	uint8_t token_key[256];
	size_t token_key_len;
	char announce_ip[64];
	unsigned port_base;
	unsigned max_participants, max_rooms;
	unsigned n_rooms;
	uint64_t session_id;
	uint64_t next_num;
	struct room *rooms;
	bool draining;
	struct node_stats stats;
	/* perc rooms (src/node/perc.c) */
	bool perc;		       /* perc.kd_port set */
	struct cv_tunnel_link_opts kd; /* given to every switch */
	char perc_dir[64];	       /* generated identity (dev) */
	char perc_cert[128], perc_key[128];
	struct cv_relay *relay;	 /* NULL: no relay; under lock */
	struct deny_entry *deny; /* ring of NODE_DENY_MAX */
	size_t n_deny, deny_head;
	char url[128];
	struct cv_admin admin;
	/* worker start-up: guarded by start_lock */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started;
	int start_err; /* first worker start failure */
};

/* ---- src/node/perc.c (node->lock held where it says so) ---- */

/* Reads perc.*: the tunnel identity (generated with --dev when not
 * configured) and the KD link options. Startup, before the workers. */
int cv_node_perc_init(struct cv_node *n);
/* Starts the KMS channel relay when perc.kms_port is set. Startup. */
int cv_node_relay_start(struct cv_node *n);
/* Stops the relay (its pending answers are given), removes a generated
 * identity. Call after the signaling server stopped taking POSTs is not
 * required: POSTs then get 503. */
void cv_node_perc_stop(struct cv_node *n);
/* cv_ws_post_fn for POST /v1/channel (arg: the node). */
int cv_node_on_post(void *arg, const struct cv_ws_post *req);
/* The deny list; lock held. */
bool cv_node_denied(const struct cv_node *n, const char *room, const char *sub);
void cv_node_deny(struct cv_node *n, const char *room, const char *sub);
void cv_node_allow(struct cv_node *n, const char *room, const char *sub);
/* True when the switch of worker w has its KD link up. Any thread. */
bool cv_node_kd_up(struct cv_node *n, unsigned w);

/* ---- src/node/node.c ---- */

/*
 * Applies the node's part of a two-part change the KMS accepted (lock
 * held): remove: every participant of room whose sub is member gets
 * `removed` and is closed (4001), the sub is denied, the others get
 * `rekey`; add: the sub is taken off the deny list.
 */
struct cv_relay_core;
void cv_node_apply_membership(struct cv_node *n,
			      const struct cv_relay_core *core);

#endif
