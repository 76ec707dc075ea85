/*
 * One endpoint: signaling over the WebSocket (docs/protocol.md), the two
 * peer connections (libnice stream + DTLS-SRTP each), state and stats.
 * The media path (sources, sinks, RTCP) is in rtp_io.c.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "client/endpoint.h"
#include "conclave/err.h"

#define SDP_CAP 16384

static void pc_start(struct cv_client_pc *pc);
static void sub_process_offer(struct cv_client *c);

bool cv_client_state_final(enum cv_client_state s)
{
	return s == CV_CLIENT_CLOSED || s == CV_CLIENT_FAILED ||
	       s == CV_CLIENT_REMOVED;
}

const char *cv_client_state_name(enum cv_client_state s)
{
	switch (s) {
	case CV_CLIENT_CONNECTING:
		return "connecting";
	case CV_CLIENT_JOINED:
		return "joined";
	case CV_CLIENT_PUBLISHING:
		return "publishing";
	case CV_CLIENT_SUBSCRIBED:
		return "subscribed";
	case CV_CLIENT_CLOSED:
		return "closed";
	case CV_CLIENT_FAILED:
		return "failed";
	case CV_CLIENT_REMOVED:
		return "removed";
	}
	return "?";
}

void cv_client_set_state(struct cv_client *c, enum cv_client_state s, int err)
{
	if (c->state == s || cv_client_state_final(c->state))
		return;
	/* The state is the latest milestone: PUBLISHING and SUBSCRIBED come
	 * in either order. CLOSED and FAILED are final. */
	c->state = s;
	if (c->cb.on_state)
		c->cb.on_state(c->cb.arg, s, err);
}

static void fail(struct cv_client *c, int err)
{
	cv_client_set_state(c, CV_CLIENT_FAILED, err);
}

void cv_client_fail(struct cv_client *c, int err)
{
	fail(c, err);
}

/* ---- WebSocket output ---- */

void cv_client_send_json(struct cv_client *c, json_t *msg)
{
	if (!msg)
		return;
	char *text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text || !c->wsi || !c->ws_open) {
		free(text);
		return;
	}
	g_queue_push_tail(&c->outq, text);
	lws_callback_on_writable(c->wsi);
}

static int write_one(struct cv_client *c, struct lws *wsi)
{
	char *text = g_queue_pop_head(&c->outq);
	if (!text)
		return 0;
	size_t len = strlen(text);
	unsigned char *buf = g_malloc(LWS_PRE + len);
	memcpy(buf + LWS_PRE, text, len);
	int n = lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
	g_free(buf);
	free(text);
	if (n < (int)len)
		return -1;
	if (!g_queue_is_empty(&c->outq))
		lws_callback_on_writable(wsi);
	return 0;
}

/* ---- SDP helpers ---- */

static int to_dtls_fp(const struct cv_sdp_fingerprint *f,
		      struct cv_dtls_fingerprint *out)
{
	static const struct {
		const char *name;
		enum cv_dtls_hash hash;
		size_t len;
	} map[] = {
		{"sha-1", CV_DTLS_HASH_SHA1, 20},
		{"sha-256", CV_DTLS_HASH_SHA256, 32},
		{"sha-384", CV_DTLS_HASH_SHA384, 48},
		{"sha-512", CV_DTLS_HASH_SHA512, 64},
	};
	if (!f->alg)
		return CV_EUNSUPP;
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (!g_ascii_strcasecmp(f->alg, map[i].name) &&
		    f->len == map[i].len) {
			memset(out, 0, sizeof(*out));
			out->hash = map[i].hash;
			out->len = f->len;
			memcpy(out->md, f->bytes, f->len);
			return 0;
		}
	return CV_EUNSUPP;
}

/* Our local description values for pc; strings in *l point into the
 * returned GPtrArray (free with g_ptr_array_free(, TRUE)). */
static GPtrArray *local_values(struct cv_client_pc *pc,
			       struct cv_client_sdp_local *l)
{
	struct cv_client *c = pc->c;
	GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
	gchar *ufrag = NULL, *pwd = NULL;
	nice_agent_get_local_credentials(pc->agent, pc->stream_id, &ufrag,
					 &pwd);
	g_ptr_array_add(keep, ufrag);
	g_ptr_array_add(keep, pwd);
	memset(l, 0, sizeof(*l));
	l->ice_ufrag = ufrag;
	l->ice_pwd = pwd;
	l->fingerprint = cv_dtls_cert_fingerprint(c->loop->cert);
	l->cname = c->cname;
	l->session_id = ((uint64_t)c->a_ssrc << 16) | pc->stream_id;
	GSList *cands =
		nice_agent_get_local_candidates(pc->agent, pc->stream_id, 1);
	for (GSList *i = cands; i; i = i->next) {
		NiceCandidate *nc = i->data;
		if (c->relay_only && nc->type != NICE_CANDIDATE_TYPE_RELAYED)
			continue;
		if (l->n_candidates >= CV_CLIENT_MAX_CANDIDATES)
			break;
		gchar *s =
			nice_agent_generate_local_candidate_sdp(pc->agent, nc);
		if (!s)
			continue;
		g_ptr_array_add(keep, s);
		/* "a=candidate:..." -> "candidate:..." */
		l->candidates[l->n_candidates++] =
			g_str_has_prefix(s, "a=") ? s + 2 : s;
	}
	g_slist_free_full(cands, (GDestroyNotify)nice_candidate_free);
	return keep;
}

/* ---- DTLS callbacks ---- */

static void dtls_send(void *arg, const uint8_t *rec, size_t len)
{
	cv_client_pc_send(arg, rec, len);
}

static void dtls_connected(void *arg, uint16_t profile_id,
			   const uint8_t *material, size_t len, bool is_client)
{
	struct cv_client_pc *pc = arg;
	struct cv_client *c = pc->c;
	int rc = c->perc.enabled
			 ? cv_client_perc_connected(pc, profile_id, material,
						    len, is_client)
			 : cv_srtp_sessions_from_dtls(profile_id, material, len,
						      is_client, &pc->rx,
						      &pc->tx);
	if (rc) {
		fail(c, rc);
		return;
	}
	pc->dtls_up = true;
	if (pc->publish) {
		uint64_t now = cv_client_now_us();
		c->next_audio_us = c->next_video_us = now;
		c->key_wanted = true;
		cv_client_set_state(c, CV_CLIENT_PUBLISHING, 0);
	} else {
		cv_client_set_state(c, CV_CLIENT_SUBSCRIBED, 0);
	}
}

static void dtls_failed(void *arg, int err)
{
	struct cv_client_pc *pc = arg;
	fail(pc->c, err);
}

/* Adds one remote candidate (the value of an a=candidate: line); returns
 * 1 if libnice took it, else 0. */
static int add_remote(struct cv_client_pc *pc, const char *cand)
{
	gchar *line = g_strdup_printf("a=candidate:%s", cand);
	NiceCandidate *nc = nice_agent_parse_remote_candidate_sdp(
		pc->agent, pc->stream_id, line);
	g_free(line);
	if (!nc)
		return 0;
	GSList *one = g_slist_append(NULL, nc);
	int n = nice_agent_set_remote_candidates(pc->agent, pc->stream_id, 1,
						 one);
	g_slist_free_full(one, (GDestroyNotify)nice_candidate_free);
	return n > 0 ? 1 : 0;
}

/* Applies the node's description to pc: ICE credentials and candidates
 * (the node is ICE-lite: its host candidates are in the SDP), and the
 * DTLS association with the node's fingerprint. Once per connection. */
static int apply_remote(struct cv_client_pc *pc, const struct cv_sdp *sdp,
			enum cv_dtls_role role)
{
	struct cv_client *c = pc->c;
	if (pc->remote_set)
		return 0;
	const struct cv_sdp_media *m = NULL;
	for (size_t i = 0; i < sdp->n_media && !m; i++)
		if (sdp->media[i].port && sdp->media[i].ice_ufrag)
			m = &sdp->media[i];
	if (!m || !m->ice_pwd)
		return CV_EPROTO;
	struct cv_dtls_fingerprint fp;
	int rc = 0;
	if (c->perc.enabled) {
		/* Perc: the node's a=fingerprint means nothing; the DTLS
		 * peer is the Key Distributor, whose fingerprint came from
		 * the KMS. The endpoint is always the DTLS client. */
		fp = *cv_client_perc_kd_fp(c);
		role = CV_DTLS_ROLE_CLIENT;
	} else {
		rc = to_dtls_fp(&m->fingerprint, &fp);
	}
	if (rc)
		return rc;
	struct cv_dtls_callbacks cb = {
		.send = dtls_send,
		.on_connected = dtls_connected,
		.on_failed = dtls_failed,
		.arg = pc,
	};
	rc = cv_dtls_local_create(&pc->dtls, c->loop->dtls_ctx, role, &fp, 1,
				  &cb);
	if (rc)
		return rc;
	if (!nice_agent_set_remote_credentials(pc->agent, pc->stream_id,
					       m->ice_ufrag, m->ice_pwd))
		return CV_EPROTO;
	int n = 0;
	for (size_t i = 0; i < m->n_candidates; i++)
		n += add_remote(pc, m->candidates[i]);
	/* Janus may trickle its candidates instead (RFC 8838): those that
	 * came before this description, and those still to come. */
	for (guint i = 0; pc->trickled && i < pc->trickled->len; i++)
		n += add_remote(pc, g_ptr_array_index(pc->trickled, i));
	if (n <= 0 && !c->janus)
		return CV_EPROTO;
	pc->remote_set = true;
	return 0;
}

void cv_client_pc_add_remote(struct cv_client_pc *pc, const char *cand)
{
	/* RFC 8839 5.1: "candidate:" then the attribute's value. */
	if (g_str_has_prefix(cand, "a="))
		cand += 2;
	if (g_str_has_prefix(cand, "candidate:"))
		cand += strlen("candidate:");
	if (!pc->stream_id || !pc->remote_set) {
		if (!pc->trickled)
			pc->trickled = g_ptr_array_new_with_free_func(g_free);
		if (pc->trickled->len < CV_SDP_MAX_CANDIDATES)
			g_ptr_array_add(pc->trickled, g_strdup(cand));
		return;
	}
	add_remote(pc, cand);
}

/* ---- Signaling: node -> client ---- */

static void send_publish(struct cv_client *c)
{
	struct cv_client_sdp_local l;
	GPtrArray *keep = local_values(&c->pub, &l);
	char *sdp = g_malloc(SDP_CAP);
	int n = cv_client_sdp_publish_offer(sdp, SDP_CAP, &l, c->audio,
					    c->a_ssrc, c->video, c->v_ssrc);
	g_ptr_array_free(keep, TRUE);
	if (n < 0) {
		g_free(sdp);
		fail(c, n);
		return;
	}
	if (c->janus) {
		cv_client_janus_publish(c, sdp);
		g_free(sdp);
		return;
	}
	json_t *tracks = json_array();
	if (c->audio)
		json_array_append_new(tracks,
				      json_pack("{s:s,s:s}", "mid", "a0",
						"source", "microphone"));
	if (c->video)
		json_array_append_new(tracks,
				      json_pack("{s:s,s:s}", "mid", "v0",
						"source", "camera"));
	c->publish_id = c->next_id++;
	cv_client_send_json(c, json_pack("{s:s,s:i,s:s,s:o}", "type", "publish",
					 "id", c->publish_id, "sdp", sdp,
					 "tracks", tracks));
	g_free(sdp);
}

void cv_client_on_joined(struct cv_client *c)
{
	cv_client_set_state(c, CV_CLIENT_JOINED, 0);
	if (c->audio || c->video)
		pc_start(&c->pub);
}

void cv_client_on_publish_answer(struct cv_client *c, const char *text)
{
	struct cv_sdp *sdp = NULL;
	int rc = cv_sdp_parse(text, strlen(text), &sdp);
	if (!rc) {
		const struct cv_sdp_media *m =
			sdp->n_media ? &sdp->media[0] : NULL;
		enum cv_sdp_setup s = m ? m->setup : CV_SDP_SETUP_NONE;
		/* RFC 8842 5.3: the answerer chose; passive means we are
		 * the DTLS client. */
		enum cv_dtls_role role = s == CV_SDP_SETUP_ACTIVE
						 ? CV_DTLS_ROLE_SERVER
						 : CV_DTLS_ROLE_CLIENT;
		rc = apply_remote(&c->pub, sdp, role);
	}
	cv_sdp_free(sdp);
	if (rc)
		fail(c, rc);
}

void cv_client_on_subscribe_offer(struct cv_client *c, json_t *msg)
{
	const char *sdp = json_string_value(json_object_get(msg, "sdp"));
	if (!c->subscribe || !sdp)
		return;
	free(c->sub.pending_offer);
	/* Keep the whole message: the tracks array maps mids to tracks. */
	c->sub.pending_offer = json_dumps(msg, JSON_COMPACT);
	if (!c->sub.stream_id)
		pc_start(&c->sub);
	else if (c->sub.gathered)
		sub_process_offer(c);
}

static const char *track_of(json_t *tracks, const char *mid)
{
	size_t i;
	json_t *t;
	json_array_foreach(tracks, i, t)
	{
		const char *m = json_string_value(json_object_get(t, "mid"));
		if (m && !strcmp(m, mid))
			return json_string_value(json_object_get(t, "track"));
	}
	return NULL;
}

static void add_sinks(struct cv_client *c, const struct cv_client_sub_mline *ml,
		      size_t n, json_t *tracks)
{
	for (size_t i = 0; i < n; i++) {
		if (!ml[i].active || !ml[i].ssrc)
			continue;
		bool known = false;
		for (size_t k = 0; k < c->n_sinks && !known; k++)
			known = c->sinks[k].ssrc == ml[i].ssrc;
		if (known || c->n_sinks >= CV_CLIENT_MAX_TRACKS)
			continue;
		struct cv_client_sink *s = &c->sinks[c->n_sinks++];
		memset(s, 0, sizeof(*s));
		s->ssrc = ml[i].ssrc;
		s->clock_rate = ml[i].clock_rate ? ml[i].clock_rate : 90000;
		s->video = ml[i].video;
		g_strlcpy(s->mid, ml[i].mid, sizeof(s->mid));
		const char *t = track_of(tracks, ml[i].mid);
		g_strlcpy(s->track, t ? t : "", sizeof(s->track));
		s->waiting_keyframe = s->video;
		if (s->video)
			s->keyframe_waits = 1;
	}
}

static void sub_process_offer(struct cv_client *c)
{
	json_t *msg = json_loads(c->sub.pending_offer, 0, NULL);
	free(c->sub.pending_offer);
	c->sub.pending_offer = NULL;
	const char *text = json_string_value(json_object_get(msg, "sdp"));
	struct cv_sdp *offer = NULL;
	int rc = text ? cv_sdp_parse(text, strlen(text), &offer) : CV_EPARSE;
	struct cv_client_sub_mline ml[CV_SDP_MAX_MEDIA];
	size_t n = 0;
	char *sdp = g_malloc(SDP_CAP);
	if (!rc) {
		struct cv_client_sdp_local l;
		GPtrArray *keep = local_values(&c->sub, &l);
		int len = cv_client_sdp_subscribe_answer(
			sdp, SDP_CAP, offer, &l, ml, CV_SDP_MAX_MEDIA, &n);
		g_ptr_array_free(keep, TRUE);
		rc = len < 0 ? len : 0;
	}
	/* RFC 8842 5.3: we answered active, so we are the DTLS client. */
	if (!rc && offer->n_media)
		rc = apply_remote(&c->sub, offer, CV_DTLS_ROLE_CLIENT);
	if (!rc) {
		add_sinks(c, ml, n, json_object_get(msg, "tracks"));
	}
	if (!rc && c->janus) {
		cv_client_janus_answer(c, sdp);
	} else if (!rc) {
		c->sub_answer_id = c->next_id++;
		cv_client_send_json(c, json_pack("{s:s,s:i,s:s}", "type",
						 "subscribe_answer", "id",
						 c->sub_answer_id, "sdp", sdp));
	}
	g_free(sdp);
	cv_sdp_free(offer);
	json_decref(msg);
	if (rc)
		fail(c, rc);
}

/* docs/protocol.md "Error codes" -> our codes. */
static int error_code(const char *code)
{
	if (!code)
		return CV_EPROTO;
	if (g_str_has_prefix(code, "token_") || !strcmp(code, "forbidden"))
		return CV_EAUTH;
	if (!strcmp(code, "draining"))
		return CV_EDRAINING;
	if (!strcmp(code, "room_full"))
		return -EBUSY;
	if (!strcmp(code, "unsupported"))
		return CV_EUNSUPP;
	if (!strcmp(code, "rate_limited"))
		return -EAGAIN;
	if (!strcmp(code, "kms_unavailable"))
		return -EHOSTDOWN;
	if (!strcmp(code, "wrong_mode"))
		return -EPROTOTYPE;
	return CV_EPROTO;
}

/* An error to our join, publish or subscribe answer ends the endpoint:
 * without them it cannot do its job. Others are only reported. */
static void on_error(struct cv_client *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	int err = error_code(json_string_value(json_object_get(msg, "code")));
	if (c->state == CV_CLIENT_CONNECTING ||
	    (json_is_integer(id) &&
	     (json_integer_value(id) == c->publish_id ||
	      json_integer_value(id) == c->sub_answer_id)))
		fail(c, err);
}

static void handle_message(struct cv_client *c, const char *text)
{
	json_t *msg = json_loads(text, 0, NULL);
	const char *type = json_string_value(json_object_get(msg, "type"));
	if (!type) {
		json_decref(msg);
		return;
	}
	if (!strcmp(type, "joined")) {
		int rc = cv_client_perc_on_joined(c, msg);
		if (rc)
			fail(c, rc);
		else
			cv_client_on_joined(c);
	} else if (!strcmp(type, "participant_joined")) {
		cv_client_perc_on_participant(c);
	} else if (!strcmp(type, "rekey") && c->perc.enabled) {
		int rc = cv_client_perc_on_rekey(c);
		if (rc)
			fail(c, rc);
	} else if (!strcmp(type, "removed")) {
		/* A member removed us: media stops, the node closes. */
		cv_client_set_state(c, CV_CLIENT_REMOVED, 0);
	} else if (!strcmp(type, "publish_answer")) {
		const char *sdp =
			json_string_value(json_object_get(msg, "sdp"));
		if (sdp)
			cv_client_on_publish_answer(c, sdp);
		else
			fail(c, CV_EPROTO);
	} else if (!strcmp(type, "subscribe_offer")) {
		cv_client_on_subscribe_offer(c, msg);
	} else if (!strcmp(type, "error")) {
		on_error(c, msg);
	}
	if (strcmp(type, "ok") && strcmp(type, "pong") && c->cb.on_event)
		c->cb.on_event(c->cb.arg, type, text);
	json_decref(msg);
}

/* ---- libwebsockets ---- */

static void ws_closed(struct cv_client *c, int err)
{
	c->wsi = NULL;
	c->ws_open = false;
	if (cv_client_state_final(c->state))
		return;
	if (err)
		fail(c, err);
	else
		cv_client_set_state(c, CV_CLIENT_CLOSED, 0);
}

int cv_client_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
			  void *user, void *in, size_t len)
{
	struct cv_client *c = user;
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->wsi = wsi;
		c->ws_open = true;
		if (c->janus) {
			cv_client_janus_open(c);
			break;
		}
		int prc = cv_client_perc_prepare(c);
		if (prc) {
			fail(c, prc);
			break;
		}
		cv_client_send_json(
			c,
			json_pack("{s:s,s:i,s:s,s:s,s:s}", "type", "join", "id",
				  c->next_id++, "token", c->token, "room",
				  c->room, "name", c->name ? c->name : ""));
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (c->rx->len + len > CV_CLIENT_WS_MAX_BYTES) {
			fail(c, CV_ETOOBIG);
			return -1;
		}
		g_string_append_len(c->rx, in, (gssize)len);
		if (lws_is_final_fragment(wsi) &&
		    !lws_remaining_packet_payload(wsi)) {
			if (c->janus)
				cv_client_janus_handle(c, c->rx->str);
			else
				handle_message(c, c->rx->str);
			g_string_truncate(c->rx, 0);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return write_one(c, wsi);
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		ws_closed(c, -ECONNREFUSED);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		/* After our "leave" the node closes with 1000. */
		ws_closed(c, c->state == CV_CLIENT_CLOSED ? 0 : -ECONNRESET);
		break;
	default:
		break;
	}
	return 0;
}

/* ---- libnice ---- */

int cv_client_pc_send(struct cv_client_pc *pc, const uint8_t *buf, size_t len)
{
	if (!pc->stream_id)
		return -ENOTCONN;
	gint n = nice_agent_send(pc->agent, pc->stream_id, 1, (guint)len,
				 (const gchar *)buf);
	return n == (gint)len ? 0 : -EAGAIN;
}

static struct cv_client_pc *pc_of(struct cv_client *c, NiceAgent *agent,
				  guint stream_id)
{
	if (c->pub.agent == agent && c->pub.stream_id == stream_id)
		return &c->pub;
	if (c->sub.agent == agent && c->sub.stream_id == stream_id)
		return &c->sub;
	return NULL;
}

static void on_gathered(NiceAgent *agent, guint stream_id, gpointer data)
{
	struct cv_client *c = data;
	struct cv_client_pc *pc = pc_of(c, agent, stream_id);
	if (!pc || pc->gathered)
		return;
	pc->gathered = true;
	if (pc->publish)
		send_publish(c);
	else if (pc->pending_offer)
		sub_process_offer(c);
}

static void on_component_state(NiceAgent *agent, guint stream_id,
			       guint component_id, guint state, gpointer data)
{
	(void)component_id;
	struct cv_client *c = data;
	struct cv_client_pc *pc = pc_of(c, agent, stream_id);
	if (!pc)
		return;
	if ((state == NICE_COMPONENT_STATE_CONNECTED ||
	     state == NICE_COMPONENT_STATE_READY) &&
	    pc->dtls)
		cv_dtls_start(pc->dtls, cv_client_now_us() / 1000);
	else if (state == NICE_COMPONENT_STATE_FAILED)
		fail(c, -ETIMEDOUT);
}

/* rx_loss: drops received media (never RTCP) in bursts whose mean makes
 * the requested fraction. */
static bool impair_drop(struct cv_client_pc *pc, const gchar *buf, guint len)
{
	struct cv_client *c = pc->c;
	if (c->rx_loss <= 0 || pc->publish ||
	    cv_rtp_is_rtcp((const uint8_t *)buf, len))
		return false;
	if (c->burst_left) {
		c->burst_left--;
		c->sent.impair_dropped++;
		return true;
	}
	unsigned burst = c->rx_loss_burst ? c->rx_loss_burst : 1;
	if (g_rand_double(c->rand) >= c->rx_loss / burst)
		return false;
	c->burst_left = burst - 1;
	c->sent.impair_dropped++;
	return true;
}

/* Extra hold of a reordered packet: longer than a frame's packet spacing. */
#define RX_REORDER_MS 20

static void deliver(struct cv_client_pc *pc, const gchar *buf, guint len)
{
	/* libsrtp wants 4-byte alignment: decrypt in our buffer. */
	_Alignas(8) uint8_t pkt[CV_CLIENT_PKT_CAP];
	memcpy(pkt, buf, len);
	cv_client_media_recv(pc, pkt, len);
}

static int held_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
	const struct cv_client_held *x = a, *y = b;
	(void)unused;
	return x->release_us < y->release_us   ? -1
	       : x->release_us > y->release_us ? 1
					       : 0;
}

/* rx_jitter_ms / rx_reorder: holds the packet; false when not impaired. */
static bool impair_hold(struct cv_client_pc *pc, const gchar *buf, guint len)
{
	struct cv_client *c = pc->c;
	if ((!c->rx_jitter_ms && c->rx_reorder <= 0) || pc->publish ||
	    cv_rtp_is_rtcp((const uint8_t *)buf, len))
		return false;
	uint64_t hold_us = 0;
	if (c->rx_jitter_ms)
		hold_us = (uint64_t)g_rand_int_range(
			c->rand, 0, (gint32)c->rx_jitter_ms * 1000 + 1);
	if (c->rx_reorder > 0 && g_rand_double(c->rand) < c->rx_reorder)
		hold_us += RX_REORDER_MS * 1000;
	struct cv_client_held *h = g_malloc(sizeof(*h) + len);
	h->release_us = cv_client_now_us() + hold_us;
	h->len = len;
	memcpy(h->data, buf, len);
	g_queue_insert_sorted(&pc->held, h, held_cmp, NULL);
	return true;
}

/* Processes the held packets whose time has come. */
static void release_held(struct cv_client_pc *pc, uint64_t now_us)
{
	struct cv_client_held *h;
	while ((h = g_queue_peek_head(&pc->held)) && h->release_us <= now_us) {
		g_queue_pop_head(&pc->held);
		if (pc->rx)
			deliver(pc, (const gchar *)h->data, h->len);
		g_free(h);
	}
}

static void on_recv(NiceAgent *agent, guint stream_id, guint component_id,
		    guint len, gchar *buf, gpointer data)
{
	(void)agent;
	(void)stream_id;
	(void)component_id;
	struct cv_client_pc *pc = data;
	if (!len)
		return;
	uint8_t b = (uint8_t)buf[0];
	if (pc->c->perc.tap && !pc->publish && b >= 128 && b <= 191 &&
	    !cv_rtp_is_rtcp((const uint8_t *)buf, len))
		pc->c->perc.tap(pc->c->perc.tap_arg, (const uint8_t *)buf, len);
	/* RFC 7983 7: 20..63 DTLS, 128..191 RTP/RTCP. */
	if (b >= 20 && b <= 63) {
		if (pc->dtls)
			cv_dtls_handle_datagram(pc->dtls, (const uint8_t *)buf,
						len, cv_client_now_us() / 1000);
	} else if (b >= 128 && b <= 191 && pc->rx && len <= CV_CLIENT_PKT_CAP &&
		   !impair_drop(pc, buf, len) && !impair_hold(pc, buf, len)) {
		deliver(pc, buf, len);
	}
}

static void pc_start(struct cv_client_pc *pc)
{
	struct cv_client *c = pc->c;
	if (pc->stream_id)
		return;
	pc->stream_id = nice_agent_add_stream(pc->agent, 1);
	if (!pc->stream_id) {
		fail(c, -ENOMEM);
		return;
	}
	if (c->turn_server &&
	    !nice_agent_set_relay_info(
		    pc->agent, pc->stream_id, 1, c->turn_server, c->turn_port,
		    c->turn_user, c->turn_password, NICE_RELAY_TYPE_TURN_UDP)) {
		fail(c, -EINVAL);
		return;
	}
	nice_agent_attach_recv(pc->agent, pc->stream_id, 1, c->loop->ctx,
			       on_recv, pc);
	if (!nice_agent_gather_candidates(pc->agent, pc->stream_id))
		fail(c, -EADDRNOTAVAIL);
}

void cv_client_tick(struct cv_client *c, uint64_t now)
{
	struct cv_client_pc *pcs[2] = {&c->pub, &c->sub};
	for (int i = 0; i < 2; i++)
		release_held(pcs[i], now);
	for (int i = 0; i < 2; i++) {
		struct cv_dtls *d = pcs[i]->dtls;
		if (!d || cv_client_state_final(c->state))
			continue;
		int64_t due = cv_dtls_next_timeout_ms(d, now / 1000);
		if (due == 0)
			cv_dtls_handle_timer(d, now / 1000);
	}
	if (!cv_client_state_final(c->state))
		cv_client_media_tick(c, now);
	if (c->perc.enabled)
		cv_client_perc_tick(c, now);
	if (c->janus)
		cv_client_janus_tick(c, now);
}

/* ---- Lifecycle ---- */

static int parse_url(const char *url, char *host, size_t host_cap, int *port,
		     const char **path)
{
	if (!g_str_has_prefix(url, "ws://"))
		return -EINVAL;
	const char *h = url + 5;
	size_t hl = strcspn(h, ":/");
	if (!hl || hl >= host_cap)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	const char *p = h + hl;
	*port = 80;
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (v <= 0 || v > 65535)
			return -EINVAL;
		*port = (int)v;
		p = end;
	}
	if (*p && *p != '/')
		return -EINVAL;
	*path = *p ? p : "/";
	return 0;
}

static int new_agent(struct cv_client *c, bool controlling, NiceAgent **out)
{
	NiceAgent *agent = nice_agent_new_full(
		c->loop->ctx, NICE_COMPATIBILITY_RFC5245,
		NICE_AGENT_OPTION_REGULAR_NOMINATION |
			NICE_AGENT_OPTION_CONSENT_FRESHNESS);
	if (!agent)
		return -ENOMEM;
	*out = agent; /* the caller's to release, even on failure below */
	g_object_set(agent, "controlling-mode", controlling, "ice-tcp", FALSE,
		     NULL);
	GObjectClass *k = G_OBJECT_GET_CLASS(agent);
	if (g_object_class_find_property(k, "upnp"))
		g_object_set(agent, "upnp", FALSE, NULL);
	if (c->relay_only)
		g_object_set(agent, "force-relay", TRUE, NULL);
	if (c->ice_address) {
		NiceAddress a;
		nice_address_init(&a);
		if (!nice_address_set_from_string(&a, c->ice_address))
			return -EINVAL;
		nice_agent_add_local_address(agent, &a);
	}
	g_signal_connect(agent, "candidate-gathering-done",
			 G_CALLBACK(on_gathered), c);
	g_signal_connect(agent, "component-state-changed",
			 G_CALLBACK(on_component_state), c);
	return 0;
}

static int make_agent(struct cv_client *c)
{
	/* RFC 8445 6.1.1: against an ICE-lite peer we are controlling; so we
	 * are as the offerer of Janus's publish connection. */
	int rc = new_agent(c, true, &c->agent);
	c->pub.agent = c->sub.agent = c->agent;
	if (rc || !c->janus)
		return rc;
	/* Janus (full ICE) offers the subscribe connection: it controls. */
	rc = new_agent(c, false, &c->sub_agent);
	c->sub.agent = c->sub_agent;
	return rc;
}

static uint32_t rand32(void)
{
	uint32_t v = 0;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = g_random_int();
	return v;
}

static void init_sources(struct cv_client *c)
{
	c->a_ssrc = rand32() | 1;
	c->v_ssrc = rand32() | 2;
	c->fb_ssrc = rand32() | 4;
	c->a_seq = (uint16_t)rand32();
	c->v_seq = (uint16_t)rand32();
	c->a_ts = rand32();
	c->v_ts = rand32();
	c->picture_id = (uint16_t)(rand32() & 0x7fff);
	uint32_t r[2] = {rand32(), rand32()};
	snprintf(c->cname, sizeof(c->cname), "%08x%08x", r[0], r[1]);
}

int cv_client_create(struct cv_client **out, struct cv_client_loop *loop,
		     const struct cv_client_opts *o,
		     const struct cv_client_callbacks *cb)
{
	char host[256];
	int port;
	const char *path;
	bool janus = o && o->target == CV_CLIENT_TARGET_JANUS;
	if (!out || !loop || !o || !o->url ||
	    (!janus && (!o->token || !o->room)) ||
	    (o->target != CV_CLIENT_TARGET_CONCLAVE && !janus) ||
	    (o->relay_only && !o->turn_server) || o->rx_loss < 0 ||
	    o->rx_loss > 1 || o->rx_reorder < 0 || o->rx_reorder > 1 ||
	    o->tx_loss < 0 || o->tx_loss > 1 || o->rx_jitter_ms > 10000 ||
	    parse_url(o->url, host, sizeof(host), &port, &path))
		return -EINVAL;
	struct cv_client *c = g_new0(struct cv_client, 1);
	c->loop = loop;
	if (cb)
		c->cb = *cb;
	c->url = g_strdup(o->url);
	c->token = g_strdup(o->token);
	c->room = g_strdup(o->room);
	c->name = g_strdup(o->name);
	c->ice_address = g_strdup(o->ice_address);
	/* A node on loopback announces loopback candidates, which libnice's
	 * default (non-loopback interfaces) cannot pair with. Janus on
	 * loopback (perf/janus) is reachable from the host end of its veth
	 * pair only. */
	if (!c->ice_address &&
	    (g_str_has_prefix(host, "127.") || !strcmp(host, "localhost")))
		c->ice_address = g_strdup(janus ? "127.0.1.2" : "127.0.0.1");
	c->turn_server = g_strdup(o->turn_server);
	c->turn_user = g_strdup(o->turn_user ? o->turn_user : "");
	c->turn_password = g_strdup(o->turn_password ? o->turn_password : "");
	c->turn_port = o->turn_port ? o->turn_port : 3478;
	c->relay_only = o->relay_only;
	c->rx_loss = o->rx_loss;
	c->rx_loss_burst = o->rx_loss_burst;
	c->rx_jitter_ms = o->rx_jitter_ms;
	c->rx_reorder = o->rx_reorder;
	c->tx_loss = o->tx_loss;
	c->audio = o->audio;
	c->video = o->video;
	c->subscribe = o->subscribe;
	c->video_bitrate_bps =
		o->video_bitrate_bps ? o->video_bitrate_bps : 500000;
	c->video_fps = o->video_fps ? o->video_fps : 30;
	c->keyframe_interval_ms =
		o->keyframe_interval_ms ? o->keyframe_interval_ms : 3000;
	c->pub = (struct cv_client_pc){.c = c, .publish = true};
	c->sub = (struct cv_client_pc){.c = c, .publish = false};
	c->rx = g_string_new(NULL);
	c->next_id = 1;
	g_queue_init(&c->outq);
	init_sources(c);
	c->rand = g_rand_new_with_seed(rand32());
	if (c->video)
		c->history = g_new0(struct cv_client_sent_pkt,
				    CV_CLIENT_RTX_HISTORY);
	int rc = janus ? cv_client_janus_create(c, o->janus_room) : 0;
	if (!rc && o->perc.enabled && janus)
		rc = -EINVAL;
	if (!rc)
		rc = cv_client_perc_init(c, o, host, port);
	if (!rc)
		rc = make_agent(c);
	if (rc) {
		cv_client_destroy(c);
		return rc;
	}
	g_ptr_array_add(loop->clients, c);

	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = loop->lws;
	ci.address = host;
	ci.port = port;
	ci.path = path;
	ci.host = host;
	ci.origin = host;
	/* perf/janus/README.md: Janus insists on its subprotocol. */
	ci.protocol = janus ? "janus-protocol" : "conclave.v1";
	ci.local_protocol_name = ci.protocol;
	ci.userdata = c;
	ci.ietf_version_or_minus_one = -1;
	/* From here on the wsi holds c as its user: destroy detaches it. */
	c->wsi = lws_client_connect_via_info(&ci);
	if (!c->wsi) {
		cv_client_destroy(c);
		return -EIO;
	}
	*out = c;
	return 0;
}

void cv_client_leave(struct cv_client *c)
{
	if (!c || cv_client_state_final(c->state))
		return;
	if (c->janus)
		cv_client_janus_leave(c);
	else
		cv_client_send_json(c, json_pack("{s:s}", "type", "leave"));
	cv_client_set_state(c, CV_CLIENT_CLOSED, 0);
}

void cv_client_mute(struct cv_client *c, bool video, bool muted)
{
	if (!c || c->janus || cv_client_state_final(c->state))
		return;
	cv_client_send_json(c, json_pack("{s:s,s:s,s:b}", "type", "mute", "mid",
					 video ? "v0" : "a0", "muted", muted));
}

static void pc_fini(struct cv_client *c, struct cv_client_pc *pc)
{
	if (pc->dtls)
		cv_dtls_destroy(pc->dtls);
	cv_srtp_destroy(pc->tx);
	cv_srtp_destroy(pc->rx);
	if (pc->stream_id && pc->agent) {
		nice_agent_attach_recv(pc->agent, pc->stream_id, 1,
				       c->loop->ctx, NULL, NULL);
		nice_agent_remove_stream(pc->agent, pc->stream_id);
	}
	g_queue_clear_full(&pc->held, g_free);
	free(pc->pending_offer);
	if (pc->trickled)
		g_ptr_array_free(pc->trickled, TRUE);
}

void cv_client_destroy(struct cv_client *c)
{
	if (!c)
		return;
	g_ptr_array_remove(c->loop->clients, c);
	if (c->wsi) {
		/* No callback may reach us any more; lws closes it soon. */
		lws_set_wsi_user(c->wsi, NULL);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
	}
	pc_fini(c, &c->pub);
	pc_fini(c, &c->sub);
	NiceAgent *agents[2] = {c->agent, c->sub_agent};
	for (int i = 0; i < 2; i++) {
		if (!agents[i])
			continue;
		g_signal_handlers_disconnect_by_data(agents[i], c);
		/* Releases TURN allocations; finishes on the loop's context. */
		nice_agent_close_async(agents[i], NULL, NULL);
		g_object_unref(agents[i]);
	}
	cv_client_janus_destroy(c);
	cv_client_perc_fini(c);
	char *s;
	while ((s = g_queue_pop_head(&c->outq)))
		free(s);
	if (c->rx)
		g_string_free(c->rx, TRUE);
	g_free(c->history);
	if (c->rand)
		g_rand_free(c->rand);
	g_free(c->url);
	g_free(c->token);
	g_free(c->room);
	g_free(c->name);
	g_free(c->ice_address);
	g_free(c->turn_server);
	g_free(c->turn_user);
	g_free(c->turn_password);
	g_free(c);
}

enum cv_client_state cv_client_get_state(const struct cv_client *c)
{
	return c->state;
}

void cv_client_send_stats(const struct cv_client *c,
			  struct cv_client_send_stats *out)
{
	*out = c->sent;
}

int cv_client_track_interval(struct cv_client *c, size_t i,
			     struct cv_client_interval *out)
{
	if (i >= c->n_sinks)
		return -ENOENT;
	struct cv_client_sink *s = &c->sinks[i];
	uint64_t lost = cv_client_seq_lost(&s->seq);
	memset(out, 0, sizeof(*out));
	out->packets = s->seq.received - s->iv_packets;
	out->lost = lost > s->iv_lost ? lost - s->iv_lost : 0;
	out->delay_samples = s->delay_iv.n;
	out->delay_p50_us = cv_client_hist_quantile(&s->delay_iv, 0.50);
	out->delay_p95_us = cv_client_hist_quantile(&s->delay_iv, 0.95);
	out->delay_p99_us = cv_client_hist_quantile(&s->delay_iv, 0.99);
	out->delay_max_us = s->delay_iv.max;
	s->iv_packets = s->seq.received;
	if (lost > s->iv_lost)
		s->iv_lost = lost;
	memset(&s->delay_iv, 0, sizeof(s->delay_iv));
	return 0;
}

const char *cv_client_ice_local_type(const struct cv_client *c, bool publish)
{
	const struct cv_client_pc *pc = publish ? &c->pub : &c->sub;
	NiceCandidate *local = NULL, *remote = NULL;
	if (!pc->stream_id ||
	    !nice_agent_get_selected_pair(pc->agent, pc->stream_id, 1, &local,
					  &remote) ||
	    !local)
		return NULL;
	switch (local->type) {
	case NICE_CANDIDATE_TYPE_HOST:
		return "host";
	case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE:
		return "srflx";
	case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:
		return "prflx";
	case NICE_CANDIDATE_TYPE_RELAYED:
		return "relay";
	}
	return NULL;
}

size_t cv_client_track_count(const struct cv_client *c)
{
	return c->n_sinks;
}

int cv_client_track_stats(const struct cv_client *c, size_t i,
			  struct cv_client_track_stats *out)
{
	if (i >= c->n_sinks)
		return -ENOENT;
	const struct cv_client_sink *s = &c->sinks[i];
	memset(out, 0, sizeof(*out));
	g_strlcpy(out->mid, s->mid, sizeof(out->mid));
	g_strlcpy(out->track, s->track, sizeof(out->track));
	out->video = s->video;
	out->packets = s->seq.received;
	out->bytes = s->bytes;
	out->expected = cv_client_seq_expected(&s->seq);
	out->lost = cv_client_seq_lost(&s->seq);
	out->out_of_order = s->seq.out_of_order;
	out->duplicates = s->seq.duplicates;
	out->frames = s->frames;
	out->keyframes = s->keyframes;
	out->keyframe_waits = s->keyframe_waits;
	out->nacks_sent = s->nacks_sent;
	out->plis_sent = s->plis_sent;
	out->recovered = s->seq.out_of_order;
	out->delay_samples = s->delay.n;
	out->delay_p50_us = cv_client_hist_quantile(&s->delay, 0.50);
	out->delay_p95_us = cv_client_hist_quantile(&s->delay, 0.95);
	out->delay_p99_us = cv_client_hist_quantile(&s->delay, 0.99);
	out->delay_max_us = s->delay.max;
	out->jitter_us = (uint32_t)(s->jitter * 1e6 /
				    (s->clock_rate ? s->clock_rate : 1));
	return 0;
}
