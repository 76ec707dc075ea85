/*
 * The control plane. Follow one participant:
 *   join      -> verify token, find or place the room, answer `joined`
 *   publish   -> parse the offer, answer it, create the publish transport
 *                on the room's worker, one track per sending m-line,
 *                announce each track and renegotiate every subscriber
 *   subscribe -> the node offers one m-line per track; on the answer it
 *                creates the subscribe transport and the subscriptions
 *   leave     -> tracks removed, transports removed, others told
 * The media plane (media/switch) only ever sees the commands posted here.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conclave/clock.h"
#include "conclave/config.h"
#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/ice.h"
#include "conclave/log.h"
#include "conclave/msg.h"
#include "conclave/sdp.h"
#include "conclave/switch.h"
#include "conclave/token.h"
#include "conclave/worker.h"
#include "conclave/ws_server.h"
#include "src/node/node.h"
#include "src/node/node_priv.h"
#include "src/node/relay.h"

/* ---- ids and small helpers ---- */

static uint32_t random_u32(void)
{
	uint32_t v = 0;
	while (v == 0)
		RAND_bytes((unsigned char *)&v, sizeof(v));
	return v;
}

static void random_id(char *out, size_t cap, char prefix)
{
	uint8_t b[6];
	RAND_bytes(b, sizeof(b));
	snprintf(out, cap, "%c%02x%02x%02x%02x%02x%02x", prefix, b[0], b[1],
		 b[2], b[3], b[4], b[5]);
}

static void send_json(struct cv_node *n, uint64_t conn, char *json)
{
	if (json && n->ws)
		cv_ws_send(n->ws, conn, json);
	free(json);
}

static void send_error(struct cv_node *n, uint64_t conn, int64_t id,
		       const char *code, const char *message)
{
	send_json(n, conn, cv_msg_error(id, code, message));
}

static void broadcast(struct cv_node *n, struct room *r,
		      const struct participant *except, char *json)
{
	for (struct participant *p = r->members; json && n->ws && p;
	     p = p->next_in_room)
		if (p != except)
			cv_ws_send(n->ws, p->conn_id, json);
	free(json);
}

static struct participant *participant_by_conn(struct cv_node *n, uint64_t conn)
{
	for (struct room *r = n->rooms; r; r = r->next)
		for (struct participant *p = r->members; p; p = p->next_in_room)
			if (p->conn_id == conn)
				return p;
	return NULL;
}

/* The connection joined or closed: no join deadline any more. */
static void pending_remove(struct cv_node *n, uint64_t conn)
{
	for (size_t i = 0; i < n->n_pending; i++) {
		if (n->pending[i].id == conn) {
			n->pending[i] = n->pending[--n->n_pending];
			return;
		}
	}
}

static struct worker_ref *room_worker(struct cv_node *n, struct room *r)
{
	return &n->wref[r->worker];
}

static struct cv_worker *worker_of(struct cv_node *n, struct room *r)
{
	return cv_workers_get(n->workers, r->worker);
}

static struct cv_msg_track_info track_info(const struct track *t)
{
	struct cv_msg_track_info ti = {
		.id = t->id,
		.participant = t->owner->id,
		.kind = t->video ? CV_KIND_VIDEO : CV_KIND_AUDIO,
		.source = t->source,
		.muted = t->muted,
	};
	return ti;
}

/* ---- rooms ---- */

static struct room *room_find(struct cv_node *n, const char *name)
{
	for (struct room *r = n->rooms; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

/* Room placement: the worker with the fewest participants. */
static unsigned least_loaded_worker(struct cv_node *n)
{
	unsigned best = 0;
	for (unsigned i = 1; i < n->n_workers; i++)
		if (n->wref[i].participants < n->wref[best].participants)
			best = i;
	return best;
}

static struct room *room_get(struct cv_node *n, const char *name)
{
	struct room *r = room_find(n, name);
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(r->name, sizeof(r->name), "%s", name);
	cv_log_obfuscate(name, strlen(name), r->log_id);
	r->worker = least_loaded_worker(n);
	n->wref[r->worker].rooms++;
	n->n_rooms++;
	r->next = n->rooms;
	n->rooms = r;
	cv_log(CV_LOG_INFO, CV_LOG_NODE, "room created (room=%s worker=%u)",
	       r->log_id, r->worker);
	return r;
}

static void room_free_if_empty(struct cv_node *n, struct room *r)
{
	if (r->members)
		return;
	for (struct room **pp = &n->rooms; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	n->wref[r->worker].rooms--;
	n->n_rooms--;
	cv_log(CV_LOG_INFO, CV_LOG_NODE, "room closed (room=%s)", r->log_id);
	free(r->retired_ssrcs);
	free(r);
}

/* ---- subscribe negotiation ---- */

static bool slot_has_track(const struct participant *p, const struct track *t)
{
	for (size_t i = 0; i < p->n_slots; i++)
		if (p->slots[i].track == t)
			return true;
	return false;
}

/*
 * Gives track t an m-line in p's subscribe connection: a paused one of the
 * same kind (its mid stays; it gets a new SSRC and msid) or a new one.
 * m-lines are never rejected (port 0): Chromium tears the BUNDLE
 * transport down when the m-line that tags the group is rejected.
 */
static void slot_assign(struct participant *p, struct track *t)
{
	struct sub_slot *s = NULL;
	for (size_t i = 0; i < p->n_slots && !s; i++)
		if (!p->slots[i].track && p->slots[i].video == t->video)
			s = &p->slots[i];
	if (!s) {
		if (p->n_slots == CV_SDP_MAX_MEDIA)
			return; /* full: the track is not offered */
		s = &p->slots[p->n_slots++];
		memset(s, 0, sizeof(*s));
		snprintf(s->mid, sizeof(s->mid), "%u", p->next_mid++);
		s->video = t->video;
	}
	s->track = t;
	s->subscribed = false;
	if (p->room->mode == CV_TOKEN_MODE_PERC) {
		/* RFC 8871: the SSRC is part of what the endpoints protect
		 * end to end; the subscriber sees the publisher's own. */
		s->ssrc = t->ssrc;
		s->rtx_ssrc = 0;
		return;
	}
	s->ssrc = random_u32();
	do
		s->rtx_ssrc = random_u32();
	while (s->rtx_ssrc == s->ssrc);
}

/* The m-line description of slot s for an offer (or an answer check). */
static void slot_mline(const struct sub_slot *s, const struct track *t,
		       struct cv_sdp_sub_mline *ml)
{
	memset(ml, 0, sizeof(*ml));
	ml->mid = s->mid;
	ml->kind = s->video ? CV_SDP_KIND_VIDEO : CV_SDP_KIND_AUDIO;
	ml->active = true;
	ml->paused = t == NULL;
	ml->ssrc = s->ssrc;
	ml->cname = "conclave";
	if (t) {
		ml->codec = t->codec;
		ml->pt = t->pt;
		ml->clock_rate = t->clock_rate;
		ml->channels = t->channels;
		ml->fmtp = t->fmtp[0] ? t->fmtp : NULL;
		ml->msid_stream = t->owner->id;
		ml->msid_track = t->id;
		if (t->video && t->rtx_pt) {
			/* RFC 4588: retransmissions on their own stream, with
			 * the PT the publisher used for RTX. */
			ml->rtx_pt = t->rtx_pt;
			ml->rtx_ssrc = s->rtx_ssrc;
		}
	} else {
		/* A paused m-line still names a codec of its kind. */
		ml->codec = s->video ? "VP8" : "opus";
		ml->pt = s->video ? 96 : 111;
		ml->clock_rate = s->video ? 90000 : 48000;
		ml->channels = s->video ? 0 : 2;
	}
}

static void fill_local(struct cv_node *n, struct room *r,
		       const struct cv_ice_credentials *ice,
		       struct cv_sdp_local *l)
{
	memset(l, 0, sizeof(*l));
	l->ice_ufrag = ice->ufrag;
	l->ice_pwd = ice->pwd;
	l->fingerprint = cv_dtls_cert_fingerprint(n->cert);
	l->candidates[0].ip = n->announce_ip;
	l->candidates[0].port = (uint16_t)(n->port_base + r->worker);
	l->n_candidates = 1;
	l->session_id = n->session_id;
	/* Perc: the endpoint is the DTLS client of the KD, through us. */
	l->perc = r->mode == CV_TOKEN_MODE_PERC;
	if (l->perc)
		l->setup = CV_SDP_SETUP_PASSIVE;
}

/*
 * Sends p a new subscribe offer reflecting the room's tracks, unless one
 * is outstanding: then the change waits for the answer (one offer at a
 * time per connection, docs/protocol.md).
 */
static void renegotiate(struct cv_node *n, struct participant *p)
{
	if (!(p->rights & CV_RIGHT_SUBSCRIBE))
		return;
	if (p->sub_offer_pending) {
		p->sub_dirty = true;
		return;
	}
	for (struct track *t = p->room->tracks; t; t = t->next)
		if (t->owner != p && !slot_has_track(p, t))
			slot_assign(p, t);
	if (p->n_slots == 0)
		return;
	if (!p->sub_creds.ufrag[0])
		cv_ice_credentials_generate(&p->sub_creds);

	struct cv_sdp_sub_mline ml[CV_SDP_MAX_MEDIA];
	struct cv_msg_mid_track map[CV_SDP_MAX_MEDIA];
	size_t n_map = 0;
	for (size_t i = 0; i < p->n_slots; i++) {
		struct sub_slot *s = &p->slots[i];
		slot_mline(s, s->track, &ml[i]);
		if (s->track) {
			map[n_map].mid = s->mid;
			map[n_map].track = s->track->id;
			n_map++;
		}
	}
	struct cv_sdp_local local;
	fill_local(n, p->room, &p->sub_creds, &local);
	local.session_version = ++p->sub_version;
	char *sdp = NULL;
	if (cv_sdp_offer_subscribe(&local, ml, p->n_slots, &sdp) != 0) {
		cv_log(CV_LOG_ERROR, CV_LOG_NODE,
		       "subscribe offer failed (participant=%s)", p->log_id);
		return;
	}
	p->sub_offer_pending = true;
	p->sub_dirty = false;
	for (size_t i = 0; i < p->n_slots; i++)
		p->slots[i].offered_track = p->slots[i].track;
	send_json(n, p->conn_id, cv_msg_subscribe_offer(sdp, map, n_map));
	free(sdp);
}

static void renegotiate_others(struct cv_node *n, struct room *r,
			       const struct participant *except)
{
	for (struct participant *p = r->members; p; p = p->next_in_room)
		if (p != except)
			renegotiate(n, p);
}

/* ---- tracks ---- */

/* Perc: remembers a gone track's SSRC (struct room, retired_ssrcs). When
 * the history is full, every further SSRC counts as taken (ssrc_taken). */
static void retire_ssrc(struct room *r, uint32_t ssrc)
{
	if (r->mode != CV_TOKEN_MODE_PERC || !ssrc)
		return;
	if (!r->retired_ssrcs) {
		r->retired_ssrcs =
			calloc(ROOM_RETIRED_SSRCS_MAX, sizeof(uint32_t));
		if (!r->retired_ssrcs)
			return;
	}
	if (r->n_retired < ROOM_RETIRED_SSRCS_MAX)
		r->retired_ssrcs[r->n_retired++] = ssrc;
}

static void track_remove(struct cv_node *n, struct track *t)
{
	struct room *r = t->owner->room;
	retire_ssrc(r, t->ssrc);
	cv_switch_cmd_remove_track(worker_of(n, r), t->num);
	for (struct track **pp = &r->tracks; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	for (struct participant *p = r->members; p; p = p->next_in_room) {
		for (size_t i = 0; i < p->n_slots; i++) {
			if (p->slots[i].track == t) {
				p->slots[i].track = NULL;
				p->slots[i].subscribed = false;
			}
			if (p->slots[i].offered_track == t)
				p->slots[i].offered_track = NULL;
		}
	}
	broadcast(n, r, t->owner, cv_msg_track_removed(t->id));
	renegotiate_others(n, r, t->owner);
	free(t);
}

static struct track *track_by_mid(struct participant *p, const char *mid)
{
	for (struct track *t = p->room->tracks; t; t = t->next)
		if (t->owner == p && strcmp(t->mid, mid) == 0)
			return t;
	return NULL;
}

static enum cv_source source_for(const struct cv_msg *m, const char *mid,
				 bool video)
{
	for (size_t i = 0; i < m->publish.n_tracks; i++)
		if (strcmp(m->publish.tracks[i].mid, mid) == 0)
			return m->publish.tracks[i].source;
	return video ? CV_SOURCE_CAMERA : CV_SOURCE_MICROPHONE;
}

static void track_add(struct cv_node *n, struct participant *p,
		      const struct cv_sdp_pub_mline *ml, enum cv_source source)
{
	struct room *r = p->room;
	struct track *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	t->owner = p;
	t->num = ++n->next_num;
	random_id(t->id, sizeof(t->id), 't');
	snprintf(t->mid, sizeof(t->mid), "%s", ml->mid);
	snprintf(t->codec, sizeof(t->codec), "%s", ml->codec);
	snprintf(t->fmtp, sizeof(t->fmtp), "%s", ml->fmtp);
	t->video = ml->kind == CV_SDP_KIND_VIDEO;
	t->source = source;
	t->pt = ml->pt;
	t->rtx_pt = ml->rtx_pt;
	t->clock_rate = ml->clock_rate;
	t->channels = ml->channels;
	t->ssrc = ml->ssrc;
	t->next = r->tracks;
	r->tracks = t;

	struct cv_track_spec spec = {
		.track_id = t->num,
		.transport_id = p->pub_transport,
		.video = t->video,
		.ssrc = ml->ssrc,
		.rtx_ssrc = ml->rtx_ssrc,
		.pt = ml->pt,
		.rtx_pt = ml->rtx_pt,
		.clock_rate = ml->clock_rate,
		.mid_ext_id = ml->ext_mid,
	};
	snprintf(spec.mid, sizeof(spec.mid), "%s", ml->mid);
	cv_switch_cmd_add_track(worker_of(n, r), &spec);
	struct cv_msg_track_info ti = track_info(t);
	broadcast(n, r, p, cv_msg_track_added(&ti));
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "track published (participant=%s track=%s kind=%s codec=%s)",
	       p->log_id, t->id, t->video ? "video" : "audio", t->codec);
}

/* ---- participants ---- */

static void participant_remove(struct cv_node *n, struct participant *p)
{
	struct room *r = p->room;
	struct track *t = r->tracks;
	while (t) {
		struct track *next = t->next;
		if (t->owner == p)
			track_remove(n, t);
		t = next;
	}
	struct cv_worker *w = worker_of(n, r);
	if (p->pub_transport)
		cv_switch_cmd_remove_transport(w, p->pub_transport);
	if (p->sub_transport)
		cv_switch_cmd_remove_transport(w, p->sub_transport);
	for (struct participant **pp = &r->members; *pp;
	     pp = &(*pp)->next_in_room) {
		if (*pp == p) {
			*pp = p->next_in_room;
			break;
		}
	}
	room_worker(n, r)->participants--;
	r->n_members--;
	broadcast(n, r, p, cv_msg_participant_left(p->id));
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "participant left (room=%s participant=%s)", r->log_id,
	       p->log_id);
	memset(&p->pub_creds, 0, sizeof(p->pub_creds));
	memset(&p->sub_creds, 0, sizeof(p->sub_creds));
	OPENSSL_cleanse(p->sub, sizeof(p->sub));
	free(p);
	room_free_if_empty(n, r);
}

void cv_node_apply_membership(struct cv_node *n,
			      const struct cv_relay_core *core)
{
	n->stats.membership_applied++;
	if (core->op == CV_RELAY_OP_ADD) {
		cv_node_allow(n, core->room, core->member);
		cv_log(CV_LOG_INFO, CV_LOG_NODE,
		       "perc: member added through the relay");
		return;
	}
	cv_node_deny(n, core->room, core->member);
	struct room *r = room_find(n, core->room);
	if (!r || r->mode != CV_TOKEN_MODE_PERC)
		return;
	char log_id[sizeof(r->log_id)];
	memcpy(log_id, r->log_id, sizeof(log_id));
	unsigned removed = 0;
	struct participant *q = r->members;
	while (r && q) {
		struct participant *next = q->next_in_room;
		if (strcmp(q->sub, core->member) == 0) {
			uint64_t conn = q->conn_id;
			send_json(n, conn, cv_msg_removed());
			/* The room goes with its last member. */
			if (r->n_members == 1)
				r = NULL;
			participant_remove(n, q);
			if (n->ws)
				cv_ws_close(n->ws, conn, 4001);
			removed++;
		}
		q = next;
	}
	/* The KMS rotated the room key: whoever is left fetches it. */
	if (r)
		broadcast(n, r, NULL, cv_msg_rekey());
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "perc: member removed through the relay (room=%s closed=%u)",
	       log_id, removed);
}

static struct participant *participant_by_transport(struct cv_node *n,
						    uint64_t id)
{
	for (struct room *r = n->rooms; r; r = r->next)
		for (struct participant *p = r->members; p; p = p->next_in_room)
			if (p->pub_transport == id || p->sub_transport == id)
				return p;
	return NULL;
}

/* ---- client messages ---- */

/*
 * docs/protocol.md "Perc rooms": a sub removed through the relay stays
 * out; the first join fixes the room's mode; a perc join needs perc on
 * and the KD link of the room's worker up (else it fails at once).
 */
static bool join_mode_ok(struct cv_node *n, uint64_t conn,
			 const struct cv_msg *m,
			 const struct cv_token_claims *c, const struct room *r)
{
	const char *code = NULL, *text = NULL;
	if (cv_node_denied(n, m->join.room, c->sub)) {
		code = "forbidden";
		text = "removed from this room";
	} else if (r && r->mode != c->mode) {
		code = "wrong_mode";
		text = r->mode == CV_TOKEN_MODE_PERC ? "the room is a perc room"
						     : "the room is not a perc "
						       "room";
	} else if (c->mode == CV_TOKEN_MODE_PERC && !n->perc) {
		code = "unsupported";
		text = "perc rooms are off on this node";
	} else if (c->mode == CV_TOKEN_MODE_PERC &&
		   !cv_node_kd_up(n, r ? r->worker : least_loaded_worker(n))) {
		code = "kms_unavailable";
		text = "the key distributor cannot be reached";
	}
	if (!code)
		return true;
	n->stats.joins_refused++;
	send_error(n, conn, m->id, code, text);
	return false;
}

static void assoc_hex(const struct cv_tunnel_assoc_id *a, char out[33])
{
	for (size_t i = 0; i < sizeof(a->b); i++)
		snprintf(out + 2 * i, 3, "%02x", a->b[i]);
}

/* The `joined` reply: everyone else, every track, perc association ids. */
static void send_joined(struct cv_node *n, uint64_t conn,
			const struct cv_msg *m, struct participant *p)
{
	struct room *r = p->room;
	size_t np = 0, nt = 0;
	for (struct track *t = r->tracks; t; t = t->next)
		nt++;
	struct cv_msg_participant *parts = calloc(r->n_members, sizeof(*parts));
	struct cv_msg_track_info *tracks = calloc(nt + 1, sizeof(*tracks));
	nt = 0;
	for (struct participant *q = r->members; parts && q;
	     q = q->next_in_room) {
		if (q == p)
			continue;
		parts[np].id = q->id;
		parts[np].name = q->name[0] ? q->name : NULL;
		np++;
	}
	for (struct track *t = r->tracks; tracks && t; t = t->next)
		tracks[nt++] = track_info(t);
	char pub[33], sub[33];
	assoc_hex(&p->pub_assoc, pub);
	assoc_hex(&p->sub_assoc, sub);
	struct cv_msg_perc_assoc perc = {pub, sub};
	if (parts && tracks)
		send_json(n, conn,
			  r->mode == CV_TOKEN_MODE_PERC
				  ? cv_msg_joined_perc(m->id, p->id, r->name,
						       parts, np, tracks, nt,
						       &perc)
				  : cv_msg_joined(m->id, p->id, r->name, parts,
						  np, tracks, nt));
	else
		send_error(n, conn, m->id, "internal", "out of memory");
	free(parts);
	free(tracks);
}

static void on_join(struct cv_node *n, uint64_t conn, const struct cv_msg *m)
{
	struct cv_token_claims claims;
	if (n->draining) {
		send_error(n, conn, m->id, "draining", "the node is draining");
		return;
	}
	if (!m->join.token || !m->join.token[0]) {
		send_error(n, conn, m->id, "token_missing",
			   "a token is required");
		return;
	}
	int err =
		cv_token_verify(n->token_key, n->token_key_len, m->join.token,
				strlen(m->join.token),
				(int64_t)(cv_clock_wall_ms() / 1000), &claims);
	if (err) {
		n->stats.joins_refused++;
		send_error(n, conn, m->id, cv_token_error_code(err),
			   "the token was refused");
		return;
	}
	if (strcmp(claims.room, m->join.room) != 0) {
		n->stats.joins_refused++;
		send_error(n, conn, m->id, "token_wrong_room",
			   "the token is for another room");
		return;
	}
	struct room *r = room_find(n, m->join.room);
	if (!join_mode_ok(n, conn, m, &claims, r))
		return;
	if (r && r->n_members >= n->max_participants) {
		send_error(n, conn, m->id, "room_full", "the room is full");
		return;
	}
	if (!r && n->n_rooms >= n->max_rooms) {
		send_error(n, conn, m->id, "room_full",
			   "the node hosts its maximum number of rooms");
		return;
	}
	struct participant *p = calloc(1, sizeof(*p));
	if (!p || !(r = room_get(n, m->join.room))) {
		free(p);
		send_error(n, conn, m->id, "internal", "out of memory");
		return;
	}
	if (!r->members)
		r->mode = claims.mode;
	if (r->mode == CV_TOKEN_MODE_PERC &&
	    (cv_dtls_tunnel_new_assoc_id(&p->pub_assoc) ||
	     cv_dtls_tunnel_new_assoc_id(&p->sub_assoc))) {
		free(p);
		room_free_if_empty(n, r);
		send_error(n, conn, m->id, "internal", "no association id");
		return;
	}
	pending_remove(n, conn);
	p->conn_id = conn;
	p->room = r;
	p->rights = claims.rights;
	snprintf(p->sub, sizeof(p->sub), "%s", claims.sub);
	random_id(p->id, sizeof(p->id), 'p');
	cv_log_obfuscate(claims.sub, strlen(claims.sub), p->log_id);
	snprintf(p->name, sizeof(p->name), "%s",
		 m->join.name ? m->join.name : "");
	p->next_in_room = r->members;
	r->members = p;
	r->n_members++;
	room_worker(n, r)->participants++;
	n->stats.joins++;
	OPENSSL_cleanse(&claims, sizeof(claims));
	send_joined(n, conn, m, p);
	struct cv_msg_participant me = {.id = p->id,
					.name = p->name[0] ? p->name : NULL};
	broadcast(n, r, p, cv_msg_participant_joined(&me));
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "participant joined (room=%s participant=%s id=%s)", r->log_id,
	       p->log_id, p->id);
	renegotiate(n, p);
}

static int fill_transport_spec(struct cv_transport_spec *spec, uint64_t id,
			       const struct cv_ice_credentials *local,
			       const char *rufrag, const char *rpwd,
			       const char *fp_alg, const uint8_t *fp,
			       size_t fp_len, bool we_are_server)
{
	memset(spec, 0, sizeof(*spec));
	spec->id = id;
	spec->local = *local;
	snprintf(spec->remote.ufrag, sizeof(spec->remote.ufrag), "%s", rufrag);
	snprintf(spec->remote.pwd, sizeof(spec->remote.pwd), "%s", rpwd);
	spec->dtls_role =
		we_are_server ? CV_DTLS_ROLE_SERVER : CV_DTLS_ROLE_CLIENT;
	char fpstr[CV_DTLS_FINGERPRINT_STRLEN];
	size_t off = (size_t)snprintf(fpstr, sizeof(fpstr), "%s ", fp_alg);
	for (size_t i = 0; i < fp_len && off + 3 < sizeof(fpstr); i++)
		off += (size_t)snprintf(fpstr + off, sizeof(fpstr) - off,
					i ? ":%02X" : "%02X", fp[i]);
	return cv_dtls_fingerprint_parse(&spec->remote_fp, fpstr,
					 strlen(fpstr));
}

/* Perc: DTLS is tunnelled to the KD under this transport's association
 * id (the endpoint registered its certificate for it at the KMS); the
 * node is the server and the offered fingerprint is not ours to check. */
static void perc_transport_spec(struct cv_transport_spec *spec,
				const struct cv_tunnel_assoc_id *assoc)
{
	spec->perc = true;
	spec->assoc = *assoc;
	spec->dtls_role = CV_DTLS_ROLE_SERVER;
}

/* Perc: the SSRC is the stream's name end to end, so two publishers of
 * one room may not announce the same one. */
static bool ssrc_taken(const struct room *r, const struct participant *p,
		       uint32_t ssrc)
{
	for (const struct track *t = r->tracks; t; t = t->next)
		if (t->ssrc == ssrc && !(t->owner == p))
			return true;
	/* Nor one that a gone track had (see struct room), by anyone. */
	if (r->n_retired >= ROOM_RETIRED_SSRCS_MAX)
		return true;
	for (size_t i = 0; i < r->n_retired; i++)
		if (r->retired_ssrcs[i] == ssrc)
			return true;
	return false;
}

/* Two new sending m-lines of one offer with the same SSRC. */
static bool ssrc_twice(const struct cv_sdp_publish_result *res, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (res->mlines[j].accepted && res->mlines[j].ssrc &&
		    res->mlines[j].ssrc == res->mlines[i].ssrc)
			return true;
	return false;
}

/*
 * Ceilings per participant: each video track holds a NACK cache (~0.75 MB
 * by default), so one token must not reserve unbounded memory. Camera,
 * microphone, screen and screen audio fit.
 */
#define MAX_TRACKS_PER_PARTICIPANT	 6
#define MAX_VIDEO_TRACKS_PER_PARTICIPANT 3

static bool track_allowed(const struct participant *p,
			  const struct cv_sdp_pub_mline *ml)
{
	unsigned all = 0, video = 0;
	for (const struct track *t = p->room->tracks; t; t = t->next) {
		if (t->owner != p)
			continue;
		all++;
		video += t->video;
	}
	if (all >= MAX_TRACKS_PER_PARTICIPANT ||
	    (ml->kind == CV_SDP_KIND_VIDEO &&
	     video >= MAX_VIDEO_TRACKS_PER_PARTICIPANT)) {
		cv_log(CV_LOG_INFO, CV_LOG_NODE,
		       "track refused: ceiling reached (participant=%s)",
		       p->log_id);
		return false;
	}
	return true;
}

/* The offer's ICE ufrag (session level, or its first m-line's). */
static bool offer_ufrag_changed(const struct cv_sdp *offer,
				const struct participant *p)
{
	const char *u = offer->ice_ufrag;
	if (!u && offer->n_media)
		u = offer->media[0].ice_ufrag;
	return u && strcmp(u, p->pub_remote_ufrag) != 0;
}

static void on_publish(struct cv_node *n, struct participant *p,
		       const struct cv_msg *m)
{
	uint64_t conn = p->conn_id;
	if (!(p->rights & CV_RIGHT_PUBLISH)) {
		send_error(n, conn, m->id, "forbidden",
			   "the token does not allow publishing");
		return;
	}
	struct cv_sdp *offer = NULL;
	struct cv_sdp_error perr = {0};
	if (cv_sdp_parse_ex(m->publish.sdp, strlen(m->publish.sdp), &offer,
			    &perr) != 0) {
		char text[160];
		cv_sdp_error_text(&perr, text, sizeof(text));
		send_error(n, conn, m->id, "bad_sdp", text);
		return;
	}
	bool first = p->pub_transport == 0;
	/* RFC 8445 9 / RFC 8839 4.4.1.1.1: an ICE restart (the offer has a
	 * new ufrag) gets new credentials from us too. */
	bool restart = !first && offer_ufrag_changed(offer, p);
	if (first || restart)
		cv_ice_credentials_generate(&p->pub_creds);
	struct cv_sdp_local local;
	fill_local(n, p->room, &p->pub_creds, &local);
	local.session_version = ++p->pub_version;
	struct cv_sdp_publish_result *res = calloc(1, sizeof(*res));
	char *answer = NULL;
	int err = res ? cv_sdp_answer_publish(offer, &local, res, &answer)
		      : -ENOMEM;
	offer = cv_sdp_free(offer);
	if (err) {
		send_error(n, conn, m->id,
			   err == CV_EUNSUPP ? "unsupported" : "bad_sdp",
			   "the offer cannot be answered");
		free(res);
		return;
	}
	struct cv_worker *w = worker_of(n, p->room);
	struct cv_transport_spec spec;
	if (fill_transport_spec(&spec, first ? ++n->next_num : p->pub_transport,
				&p->pub_creds, res->ice_ufrag, res->ice_pwd,
				res->fp_alg, res->fp, res->fp_len,
				res->local_setup == CV_SDP_SETUP_PASSIVE) !=
	    0) {
		send_error(n, conn, m->id, "unsupported",
			   "no usable DTLS fingerprint");
		free(res);
		free(answer);
		return;
	}
	bool perc = p->room->mode == CV_TOKEN_MODE_PERC;
	if (perc)
		perc_transport_spec(&spec, &p->pub_assoc);
	for (size_t i = 0; perc && i < res->n_mlines; i++) {
		const struct cv_sdp_pub_mline *ml = &res->mlines[i];
		if (ml->accepted && ml->dir == CV_SDP_DIR_RECVONLY &&
		    !track_by_mid(p, ml->mid) &&
		    (ssrc_taken(p->room, p, ml->ssrc) || ssrc_twice(res, i))) {
			memset(&spec, 0, sizeof(spec));
			send_error(n, conn, m->id, "bad_sdp",
				   "an a=ssrc is in use in this room");
			free(res);
			free(answer);
			return;
		}
	}
	if (first) {
		p->pub_transport = spec.id;
		cv_switch_cmd_add_transport(w, &spec);
	} else if (restart) {
		cv_switch_cmd_restart_ice(w, &spec);
	}
	snprintf(p->pub_remote_ufrag, sizeof(p->pub_remote_ufrag), "%s",
		 res->ice_ufrag);
	memset(&spec, 0, sizeof(spec));

	/* Tracks: one per accepted m-line the browser sends on. */
	bool changed = false;
	for (size_t i = 0; i < res->n_mlines; i++) {
		const struct cv_sdp_pub_mline *ml = &res->mlines[i];
		bool sending = ml->accepted && ml->dir == CV_SDP_DIR_RECVONLY;
		struct track *t = track_by_mid(p, ml->mid);
		if (t && !sending) {
			track_remove(n, t);
			changed = true;
		} else if (!t && sending && track_allowed(p, ml)) {
			track_add(n, p, ml,
				  source_for(m, ml->mid,
					     ml->kind == CV_SDP_KIND_VIDEO));
			changed = true;
		}
	}
	send_json(n, conn, cv_msg_publish_answer(m->id, answer));
	free(answer);
	free(res);
	if (changed)
		renegotiate_others(n, p->room, p);
}

static void subscribe_slots(struct cv_node *n, struct participant *p,
			    const struct cv_sdp_subscribe_result *res)
{
	struct cv_worker *w = worker_of(n, p->room);
	for (size_t i = 0; i < p->n_slots && i < res->n_mlines; i++) {
		struct sub_slot *s = &p->slots[i];
		if (!s->track || s->subscribed ||
		    s->track != s->offered_track || !res->mlines[i].accepted)
			continue;
		struct cv_sub_spec spec = {
			.track_id = s->track->num,
			.transport_id = p->sub_transport,
			.ssrc = s->ssrc,
			.pt = s->track->pt,
		};
		if (res->mlines[i].rtx && s->track->rtx_pt) {
			spec.rtx_ssrc = s->rtx_ssrc;
			spec.rtx_pt = s->track->rtx_pt;
		}
		cv_switch_cmd_subscribe(w, &spec);
		s->subscribed = true;
		if (s->track->muted && p->room->mode == CV_TOKEN_MODE_PERC)
			cv_switch_cmd_pause(w, s->track->num, p->sub_transport,
					    true);
	}
}

static void on_subscribe_answer(struct cv_node *n, struct participant *p,
				const struct cv_msg *m)
{
	uint64_t conn = p->conn_id;
	if (!p->sub_offer_pending) {
		send_error(n, conn, m->id, "bad_message", "no offer to answer");
		return;
	}
	struct cv_sdp *answer = NULL;
	struct cv_sdp_error perr = {0};
	if (cv_sdp_parse_ex(m->subscribe_answer.sdp,
			    strlen(m->subscribe_answer.sdp), &answer,
			    &perr) != 0) {
		char text[160];
		cv_sdp_error_text(&perr, text, sizeof(text));
		send_error(n, conn, m->id, "bad_sdp", text);
		return;
	}
	struct cv_sdp_sub_mline ml[CV_SDP_MAX_MEDIA];
	for (size_t i = 0; i < p->n_slots; i++)
		slot_mline(&p->slots[i], p->slots[i].offered_track, &ml[i]);
	struct cv_sdp_subscribe_result *res = calloc(1, sizeof(*res));
	int err =
		res ? cv_sdp_check_subscribe_answer(ml, p->n_slots, answer, res)
		    : -ENOMEM;
	answer = cv_sdp_free(answer);
	if (err) {
		send_error(n, conn, m->id, "bad_sdp",
			   "the answer does not match the offer");
		free(res);
		return;
	}
	bool perc = p->room->mode == CV_TOKEN_MODE_PERC;
	/* RFC 8842 5.3: our offer said passive, so the answer is active. */
	if (perc && res->n_mlines && res->fp_len &&
	    res->remote_setup != CV_SDP_SETUP_ACTIVE) {
		send_error(n, conn, m->id, "bad_sdp",
			   "a perc answer must be a=setup:active");
		free(res);
		return;
	}
	if (!p->sub_transport) {
		struct cv_transport_spec spec;
		if (fill_transport_spec(
			    &spec, ++n->next_num, &p->sub_creds, res->ice_ufrag,
			    res->ice_pwd, res->fp_alg, res->fp, res->fp_len,
			    res->remote_setup == CV_SDP_SETUP_ACTIVE) != 0) {
			send_error(n, conn, m->id, "unsupported",
				   "no usable DTLS fingerprint");
			free(res);
			return;
		}
		if (perc)
			perc_transport_spec(&spec, &p->sub_assoc);
		p->sub_transport = spec.id;
		cv_switch_cmd_add_transport(worker_of(n, p->room), &spec);
		memset(&spec, 0, sizeof(spec));
	}
	subscribe_slots(n, p, res);
	free(res);
	p->sub_offer_pending = false;
	send_json(n, conn, cv_msg_ok(m->id));
	if (p->sub_dirty)
		renegotiate(n, p);
}

/*
 * Perc rooms: a muted track is not forwarded at all (the switch pauses
 * each subscription), and on unmute the subscriber's SEQ continues
 * without a gap, the original recorded in the OHB (RFC 8723 section 4).
 */
static void pause_track(struct cv_node *n, const struct track *t)
{
	struct room *r = t->owner->room;
	if (r->mode != CV_TOKEN_MODE_PERC)
		return;
	for (struct participant *q = r->members; q; q = q->next_in_room)
		for (size_t i = 0; i < q->n_slots; i++)
			if (q->slots[i].track == t && q->slots[i].subscribed)
				cv_switch_cmd_pause(worker_of(n, r), t->num,
						    q->sub_transport, t->muted);
}

static void on_simple(struct cv_node *n, struct participant *p,
		      const struct cv_msg *m)
{
	struct track *t;
	switch (m->type) {
	case CV_MSG_CANDIDATE:
		/* ICE-lite: the client's address comes from its checks. */
		break;
	case CV_MSG_UNPUBLISH:
		t = track_by_mid(p, m->unpublish.mid);
		if (t)
			track_remove(n, t);
		send_json(n, p->conn_id, cv_msg_ok(m->id));
		break;
	case CV_MSG_MUTE:
		t = track_by_mid(p, m->mute.mid);
		if (!t) {
			send_error(n, p->conn_id, m->id, "bad_message",
				   "no such track");
			break;
		}
		t->muted = m->mute.muted;
		pause_track(n, t);
		broadcast(n, p->room, p, cv_msg_track_muted(t->id, t->muted));
		send_json(n, p->conn_id, cv_msg_ok(m->id));
		break;
	case CV_MSG_LEAVE:
		/* The server closes the socket after this (1000). */
		participant_remove(n, p);
		break;
	default:
		break;
	}
}

static void ws_on_message(void *arg, uint64_t conn, const struct cv_msg *m)
{
	struct cv_node *n = arg;
	pthread_mutex_lock(&n->lock);
	struct participant *p = participant_by_conn(n, conn);
	if (m->type == CV_MSG_PING) {
		send_json(n, conn, cv_msg_pong(m->id));
	} else if (m->type == CV_MSG_JOIN) {
		if (p)
			send_error(n, conn, m->id, "already_joined",
				   "this socket already joined");
		else
			on_join(n, conn, m);
	} else if (!p) {
		send_error(n, conn, m->id, "not_joined", "join first");
	} else if (m->type == CV_MSG_PUBLISH) {
		on_publish(n, p, m);
	} else if (m->type == CV_MSG_SUBSCRIBE_ANSWER) {
		on_subscribe_answer(n, p, m);
	} else {
		on_simple(n, p, m);
	}
	pthread_mutex_unlock(&n->lock);
}

/* ---- connections that never join ---- */

static void ws_on_open(void *arg, uint64_t conn)
{
	struct cv_node *n = arg;
	pthread_mutex_lock(&n->lock);
	if (n->n_pending == n->cap_pending) {
		size_t cap = n->cap_pending ? 2 * n->cap_pending : 64;
		struct pending_conn *p = realloc(n->pending, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&n->lock);
			if (n->ws)
				cv_ws_close(n->ws, conn, 1013);
			return;
		}
		n->pending = p;
		n->cap_pending = cap;
	}
	n->pending[n->n_pending++] = (struct pending_conn){
		.id = conn,
		.deadline_ms = cv_clock_now_ms() + n->join_timeout_ms,
	};
	pthread_mutex_unlock(&n->lock);
}

/* Control thread, every second: close connections past their deadline. */
static void on_join_timer(void *arg)
{
	struct cv_node *n = arg;
	uint64_t now = cv_clock_now_ms();
	pthread_mutex_lock(&n->lock);
	for (size_t i = 0; i < n->n_pending;) {
		if (n->pending[i].deadline_ms > now) {
			i++;
			continue;
		}
		if (n->ws)
			cv_ws_close(n->ws, n->pending[i].id, 1008);
		n->pending[i] = n->pending[--n->n_pending];
	}
	pthread_mutex_unlock(&n->lock);
	struct cv_loop *loop = cv_worker_loop(cv_workers_get(n->control, 0));
	cv_timer_start(loop, &n->join_timer, cv_loop_now_ms(loop) + 1000);
}

static void start_join_timer(void *arg)
{
	struct cv_node *n = arg;
	cv_timer_init(&n->join_timer, on_join_timer, n);
	on_join_timer(n);
}

static void stop_join_timer(void *arg)
{
	struct cv_node *n = arg;
	cv_timer_stop(cv_worker_loop(cv_workers_get(n->control, 0)),
		      &n->join_timer);
}

static void ws_on_close(void *arg, uint64_t conn)
{
	struct cv_node *n = arg;
	pthread_mutex_lock(&n->lock);
	pending_remove(n, conn);
	struct participant *p = participant_by_conn(n, conn);
	if (p)
		participant_remove(n, p);
	pthread_mutex_unlock(&n->lock);
}

struct transport_event {
	struct cv_node *node;
	uint64_t id;
	enum cv_transport_state state;
};

/* Control thread: a transport died; its participant is gone. */
static void handle_transport_event(void *arg)
{
	struct transport_event *ev = arg;
	struct cv_node *n = ev->node;
	pthread_mutex_lock(&n->lock);
	struct participant *p = participant_by_transport(n, ev->id);
	if (p) {
		uint64_t conn = p->conn_id;
		cv_log(CV_LOG_INFO, CV_LOG_NODE,
		       "transport lost (participant=%s state=%d)", p->log_id,
		       (int)ev->state);
		send_error(n, conn, -1, "internal", "media connection lost");
		participant_remove(n, p);
		if (n->ws)
			cv_ws_close(n->ws, conn, 1011);
	}
	pthread_mutex_unlock(&n->lock);
	free(ev);
}

/*
 * Worker thread: hands the event to the control thread. A worker never
 * takes node->lock: the control plane's work (offers, JSON, other rooms)
 * must not stall the packet path.
 */
static void on_transport_state(void *arg, uint64_t id,
			       enum cv_transport_state st)
{
	struct cv_node *n = arg;
	if (st == CV_TRANSPORT_CONNECTED)
		return;
	struct transport_event *ev = malloc(sizeof(*ev));
	if (!ev)
		return;
	*ev = (struct transport_event){.node = n, .id = id, .state = st};
	if (cv_worker_post(cv_workers_get(n->control, 0),
			   handle_transport_event, ev) != 0) {
		cv_log(CV_LOG_ERROR, CV_LOG_NODE,
		       "control queue full: transport event lost");
		free(ev);
	}
}

/* ---- start and stop ---- */

static void worker_started(struct cv_worker *w, void *arg)
{
	struct cv_node *n = arg;
	unsigned i = cv_worker_index(w);
	struct cv_switch_config cfg = {
		.media_address = cv_config_str(n->cfg, CV_CFG_MEDIA_ADDRESS),
		.port = (uint16_t)(n->port_base + i),
		.dtls = n->dtls,
		.consent_timeout_ms = (uint32_t)cv_config_ms(
			n->cfg, CV_CFG_ICE_CONSENT_TIMEOUT_MS),
		.nack_cache_packets = (uint32_t)cv_config_int(
			n->cfg, CV_CFG_SWITCH_NACK_CACHE_PACKETS),
		.pli_min_interval_ms = (uint32_t)cv_config_ms(
			n->cfg, CV_CFG_SWITCH_PLI_MIN_INTERVAL_MS),
		.events = {.transport_state = on_transport_state, .arg = n},
		/* Each worker's switch has its own link to the KD. */
		.kd = n->perc ? &n->kd : NULL,
	};
	const char *fault = cv_config_str(n->cfg, CV_CFG_PERC_FAULT);
	if (fault[0])
		cfg.perc_fault = fault;
	struct cv_switch *sw = NULL;
	int err = cv_switch_create(&sw, w, &cfg);
	cv_log_set_context((int)i, NULL, NULL);
	if (err)
		cv_log(CV_LOG_ERROR, CV_LOG_NODE,
		       "worker: cannot open media port: %s (port=%u)",
		       cv_strerror(err), cfg.port);
	cv_worker_set_data(w, sw);
	pthread_mutex_lock(&n->start_lock);
	n->wref[i].sw = sw;
	if (err && !n->start_err)
		n->start_err = err;
	n->started++;
	pthread_cond_broadcast(&n->start_cond);
	pthread_mutex_unlock(&n->start_lock);
}

static void worker_stopping(struct cv_worker *w, void *arg)
{
	struct cv_node *n = arg;
	struct cv_switch *sw = cv_worker_data(w);
	pthread_mutex_lock(&n->start_lock);
	n->wref[cv_worker_index(w)].sw = NULL;
	pthread_mutex_unlock(&n->start_lock);
	cv_worker_set_data(w, NULL);
	cv_switch_destroy(sw);
}

static int load_token_key(struct cv_node *n, char *err, size_t errlen)
{
	const char *secret = cv_config_str(n->cfg, CV_CFG_TOKEN_SECRET);
	const char *file = cv_config_str(n->cfg, CV_CFG_TOKEN_SECRET_FILE);
	if (secret[0]) {
		n->token_key_len = strlen(secret);
		if (n->token_key_len > sizeof(n->token_key)) {
			snprintf(err, errlen,
				 "token.secret: longer than %zu "
				 "bytes",
				 sizeof(n->token_key));
			return -EINVAL;
		}
		memcpy(n->token_key, secret, n->token_key_len);
		return 0;
	}
	if (file[0]) {
		FILE *f = fopen(file, "rb");
		if (!f) {
			snprintf(err, errlen, "token.secret_file: cannot open");
			return -errno;
		}
		n->token_key_len =
			fread(n->token_key, 1, sizeof(n->token_key), f);
		fclose(f);
		while (n->token_key_len &&
		       (n->token_key[n->token_key_len - 1] == '\n' ||
			n->token_key[n->token_key_len - 1] == '\r'))
			n->token_key_len--;
		return n->token_key_len ? 0 : -EINVAL;
	}
	if (cv_config_bool(n->cfg, CV_CFG_DEV)) {
		n->token_key_len = 32;
		RAND_bytes(n->token_key, 32);
		return 0;
	}
	snprintf(err, errlen,
		 "token.secret or token.secret_file is required (or --dev)");
	return -EINVAL;
}

static int load_certificate(struct cv_node *n)
{
	const char *cert = cv_config_str(n->cfg, CV_CFG_DTLS_CERT_FILE);
	const char *key = cv_config_str(n->cfg, CV_CFG_DTLS_KEY_FILE);
	int err = cert[0] ? cv_dtls_cert_load(&n->cert, cert, key)
			  : cv_dtls_cert_generate(&n->cert);
	if (!err)
		err = cv_dtls_ctx_create(&n->dtls, n->cert);
	return err;
}

static int start_workers(struct cv_node *n)
{
	struct cv_workers_config wc = {
		.count = (unsigned)cv_config_int(n->cfg, CV_CFG_NODE_WORKERS),
		.pool_packets = (size_t)cv_config_int(
			n->cfg, CV_CFG_POOL_PACKETS_PER_WORKER),
		.on_start = worker_started,
		.on_stop = worker_stopping,
		.hook_arg = n,
	};
	int err = cv_workers_create(&n->workers, &wc);
	if (err)
		return err;
	n->n_workers = cv_workers_count(n->workers);
	n->wref = calloc(n->n_workers, sizeof(*n->wref));
	if (!n->wref)
		return -ENOMEM;
	err = cv_workers_start(n->workers);
	if (err)
		return err;
	pthread_mutex_lock(&n->start_lock);
	while (n->started < n->n_workers)
		pthread_cond_wait(&n->start_cond, &n->start_lock);
	err = n->start_err;
	pthread_mutex_unlock(&n->start_lock);
	return err;
}

/* One thread for control-plane work that workers hand over. */
static int start_control(struct cv_node *n)
{
	struct cv_workers_config cc = {.count = 1, .pool_packets = 1};
	int err = cv_workers_create(&n->control, &cc);
	if (!err)
		err = cv_workers_start(n->control);
	if (!err)
		err = cv_worker_post(cv_workers_get(n->control, 0),
				     start_join_timer, n);
	return err;
}

static int start_signaling(struct cv_node *n)
{
	const struct cv_config *c = n->cfg;
	bool dev = cv_config_bool(c, CV_CFG_DEV);
	struct cv_ws_config wc = {
		.address = cv_config_str(c, CV_CFG_LISTEN_ADDRESS),
		.port = (uint16_t)cv_config_int(c, CV_CFG_LISTEN_PORT),
		.web_root = cv_config_str(c, CV_CFG_WEB_ROOT),
		.admin_enabled = true,
		.admin_address = cv_config_str(c, CV_CFG_ADMIN_ADDRESS),
		.admin_port = (uint16_t)cv_config_int(c, CV_CFG_ADMIN_PORT),
		.admin_token = cv_config_str(c, CV_CFG_ADMIN_TOKEN),
		.limits =
			{
				.max_message_bytes = (size_t)cv_config_int(
					c, CV_CFG_WS_MAX_MESSAGE_BYTES),
				.rate_per_sec = (uint32_t)cv_config_int(
					c, CV_CFG_WS_RATE_PER_SEC),
				.rate_burst = (uint32_t)cv_config_int(
					c, CV_CFG_WS_RATE_BURST),
				.max_queued_bytes = (size_t)cv_config_int(
					c, CV_CFG_WS_MAX_QUEUED_BYTES),
				.max_connections = (uint32_t)cv_config_int(
					c, CV_CFG_WS_MAX_CONNECTIONS),
			},
		.on_open = ws_on_open,
		.on_message = ws_on_message,
		.on_close = ws_on_close,
		.http = dev ? cv_admin_dev_http : NULL,
		.admin_http = cv_admin_http,
		/* The client-KMS channel relay (perc.c); the header order is
		 * what cv_node_on_post reads. */
		.post_path = "/v1/channel",
		.post_max_bytes = CV_RELAY_BODY_MAX,
		.post_headers = {"conclave-core", "conclave-op",
				 "conclave-member"},
		.on_post = cv_node_on_post,
		.arg = n,
	};
	if (!wc.web_root[0])
		wc.web_root = NULL;
	/* The HTTP callbacks take the admin block; messages take the node. */
	wc.arg = n;
	struct cv_ws_server *ws;
	int err = cv_ws_server_start(&ws, &wc);
	if (err)
		return err;
	pthread_mutex_lock(&n->lock);
	n->ws = ws;
	pthread_mutex_unlock(&n->lock);
	snprintf(n->url, sizeof(n->url), "http://%s:%u/", wc.address,
		 cv_ws_server_port(n->ws));
	return 0;
}

/* The first up, non-loopback IPv4 address; 127.0.0.1 when there is none. */
static int first_address(char *out, size_t cap)
{
	struct ifaddrs *list, *ifa;
	snprintf(out, cap, "127.0.0.1");
	if (getifaddrs(&list) != 0)
		return 0;
	for (ifa = list; ifa; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET ||
		    (ifa->ifa_flags & IFF_LOOPBACK) ||
		    !(ifa->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET,
			  &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, out,
			  (socklen_t)cap);
		break;
	}
	freeifaddrs(list);
	return 0;
}

static int announce_address(struct cv_node *n)
{
	const char *a = cv_config_str(n->cfg, CV_CFG_MEDIA_ANNOUNCE_ADDRESS);
	if (a[0]) {
		snprintf(n->announce_ip, sizeof(n->announce_ip), "%s", a);
		return 0;
	}
	return first_address(n->announce_ip, sizeof(n->announce_ip));
}

int cv_node_start(struct cv_node **out, const struct cv_config *cfg)
{
	char err_text[160] = "";
	struct cv_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->start_lock, NULL);
	pthread_cond_init(&n->start_cond, NULL);
	n->cfg = cfg;
	n->port_base = (unsigned)cv_config_int(cfg, CV_CFG_MEDIA_PORT_BASE);
	n->max_participants =
		(unsigned)cv_config_int(cfg, CV_CFG_ROOM_MAX_PARTICIPANTS);
	n->max_rooms = (unsigned)cv_config_int(cfg, CV_CFG_ROOM_MAX_ROOMS);
	n->join_timeout_ms =
		(uint64_t)cv_config_ms(cfg, CV_CFG_WS_JOIN_TIMEOUT_MS);
	RAND_bytes((unsigned char *)&n->session_id, sizeof(n->session_id));
	n->session_id &= 0x7fffffffffffffffull;
	int err = load_token_key(n, err_text, sizeof(err_text));
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_NODE, "config: %s", err_text);
		goto fail;
	}
	if ((err = announce_address(n)) || (err = load_certificate(n)) ||
	    (err = cv_node_perc_init(n)) ||
	    (err = cv_admin_init(&n->admin, n)) || (err = start_control(n)) ||
	    (err = start_workers(n)) || (err = cv_node_relay_start(n)) ||
	    (err = start_signaling(n))) {
		cv_log(CV_LOG_ERROR, CV_LOG_NODE, "start failed: %s",
		       cv_strerror(err));
		goto fail;
	}
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "started (workers=%u media=%s:%u+ dtls=%s)", n->n_workers,
	       n->announce_ip, n->port_base, cv_dtls_cert_fingerprint(n->cert));
	*out = n;
	return 0;
fail:
	cv_node_stop(n);
	return err;
}

void cv_node_drain(struct cv_node *n, uint64_t deadline_ms)
{
	pthread_mutex_lock(&n->lock);
	n->draining = true;
	char *msg = cv_msg_draining((int64_t)deadline_ms);
	if (msg && n->ws)
		cv_ws_broadcast_all(n->ws, msg);
	free(msg);
	pthread_mutex_unlock(&n->lock);
	cv_log(CV_LOG_INFO, CV_LOG_NODE, "draining (deadline_ms=%llu)",
	       (unsigned long long)deadline_ms);
	uint64_t end = cv_clock_now_ms() + deadline_ms;
	for (;;) {
		pthread_mutex_lock(&n->lock);
		bool empty = n->rooms == NULL;
		pthread_mutex_unlock(&n->lock);
		if (empty || cv_clock_now_ms() >= end)
			break;
		/* Shutdown path only: poll the room list every 50 ms. */
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

void cv_node_stop(struct cv_node *n)
{
	if (!n)
		return;
	/* The relay first (its pending answers still go out), then
	 * signaling: no more messages, then the media plane. */
	cv_node_perc_stop(n);
	if (n->ws)
		cv_ws_server_stop(n->ws);
	pthread_mutex_lock(&n->lock);
	n->ws = NULL;
	pthread_mutex_unlock(&n->lock);
	/* Transport events still queued, while the workers run. */
	if (n->control) {
		cv_worker_post(cv_workers_get(n->control, 0), stop_join_timer,
			       n);
		cv_workers_stop(n->control);
	}
	pthread_mutex_lock(&n->lock);
	while (n->rooms)
		participant_remove(n, n->rooms->members);
	pthread_mutex_unlock(&n->lock);
	if (n->workers) {
		cv_workers_stop(n->workers);
		cv_workers_destroy(n->workers);
	}
	cv_workers_destroy(n->control);
	free(n->pending);
	cv_admin_fini(&n->admin);
	free(n->wref);
	cv_dtls_ctx_unref(n->dtls);
	cv_dtls_cert_unref(n->cert);
	OPENSSL_cleanse(n->token_key, sizeof(n->token_key));
	pthread_cond_destroy(&n->start_cond);
	pthread_mutex_destroy(&n->start_lock);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

const char *cv_node_url(const struct cv_node *n)
{
	return n->url;
}
