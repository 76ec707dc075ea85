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
#include "src/node/admin.h"

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
	struct participant *next_in_room;
};

struct room {
	char name[65];
	char log_id[17];
	unsigned worker;
	struct participant *members;
	unsigned n_members;
	struct track *tracks;
	struct room *next;
};

struct worker_ref {
	struct cv_switch *sw; /* set by the worker when it starts */
	unsigned rooms, participants;
};

struct node_stats {
	uint64_t joins, joins_refused;
};

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
	char url[128];
	struct cv_admin admin;
	/* worker start-up: guarded by start_lock */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned started;
	int start_err; /* first worker start failure */
};

#endif
