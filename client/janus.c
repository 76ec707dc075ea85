/*
 * The Janus VideoRoom signaling of an endpoint (target JANUS), so that the
 * same endpoints, media and measurements run against Janus 1.1 as against
 * Conclave. The message sequence is the one perf/janus/README.md records:
 *
 *   create (session) -> attach (publisher handle) -> join ptype publisher
 *   [-> create room, join again, if the room does not exist]
 *   -> publish + our offer -> Janus's answer
 *   for other publishers (join event, later "publishers" events):
 *   attach (subscriber handle, once) -> join ptype subscriber with
 *   streams [{feed}] (later: "subscribe" with more feeds) -> Janus offers
 *   -> "start" + our answer
 *   keepalive every 25 s; leave: "destroy" of the session.
 *
 * Why one subscriber handle for every feed: Janus 1.1 is multistream, and
 * the endpoint already has exactly one subscribe peer connection that the
 * Conclave node renegotiates as tracks come and go. Janus does the same
 * with "subscribe" and unsolicited "updated" offers, so the media path is
 * shared unchanged and each endpoint costs Janus one subscriber
 * PeerConnection, as it costs the node. Subscriber requests are sent one
 * at a time (the next one after Janus has our answer), because Janus
 * refuses to update a subscription while a renegotiation is under way.
 *
 * Replies: requests carry a transaction "<kind>-<n>"; Janus answers an
 * asynchronous plugin request with "ack" and an "event", in either order,
 * so acks are ignored and events are matched by sender handle and kind.
 * Everything runs on the loop's thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/endpoint.h"
#include "conclave/err.h"

#define JANUS_DEFAULT_ROOM 1234
#define KEEPALIVE_US	   (25 * 1000000ull) /* session_timeout is 60 s */
#define PLUGIN		   "janus.plugin.videoroom"
/* VideoRoom error codes (janus_videoroom.c's JANUS_VIDEOROOM_ERROR_*). */
#define VR_NO_SUCH_ROOM 426
#define VR_ROOM_EXISTS	427

/* Where the subscriber handle is; one request at a time. */
enum sub_step {
	SUB_IDLE = 0,
	SUB_ATTACHING, /* attach sent */
	SUB_REQUEST,   /* join or subscribe sent: waiting for its event */
	SUB_ANSWERING, /* an offer is with the endpoint: answer not sent */
	SUB_STARTING,  /* start + answer sent: waiting for its event */
};

struct cv_client_janus {
	uint64_t room;
	uint64_t session, pub_handle, sub_handle;
	uint64_t my_id, private_id;
	unsigned next_tx;
	bool joined, sub_joined, pub_completed, sub_completed;
	enum sub_step sub;
	unsigned sub_tx; /* transaction number of the request in flight */
	GArray *wanted;	 /* uint64 feed ids not requested yet */
	GArray *known;	 /* uint64 feed ids ever requested or wanted */
	uint64_t next_keepalive_us;
};

static void maybe_subscribe(struct cv_client *c);

/* ---- Sending ---- */

/* Sends {"janus": verb, "transaction": "<kind>-<n>", "session_id",
 * "handle_id" (when handle), ...rest}; takes rest (may be NULL). Returns
 * the transaction number. */
static unsigned janus_send(struct cv_client *c, const char *verb,
			   const char *kind, uint64_t handle, json_t *rest)
{
	struct cv_client_janus *j = c->janus;
	json_t *msg = rest ? rest : json_object();
	unsigned n = ++j->next_tx;
	char tx[48];
	snprintf(tx, sizeof(tx), "%s-%u", kind, n);
	json_object_set_new(msg, "janus", json_string(verb));
	json_object_set_new(msg, "transaction", json_string(tx));
	if (j->session)
		json_object_set_new(msg, "session_id",
				    json_integer((json_int_t)j->session));
	if (handle)
		json_object_set_new(msg, "handle_id",
				    json_integer((json_int_t)handle));
	cv_client_send_json(c, msg);
	return n;
}

/* A plugin "message" with body (taken) and an optional jsep (taken). */
static unsigned send_body(struct cv_client *c, const char *kind,
			  uint64_t handle, json_t *body, json_t *jsep)
{
	json_t *rest = json_pack("{s:o}", "body", body);
	if (jsep)
		json_object_set_new(rest, "jsep", jsep);
	return janus_send(c, "message", kind, handle, rest);
}

/* Our candidates are all in our SDP: tell Janus there are no more. */
static void send_completed(struct cv_client *c, uint64_t handle)
{
	janus_send(c, "trickle", "trickle", handle,
		   json_pack("{s:{s:b}}", "candidate", "completed", 1));
}

static void send_join(struct cv_client *c)
{
	struct cv_client_janus *j = c->janus;
	send_body(c, "join", j->pub_handle,
		  json_pack("{s:s,s:s,s:I,s:s}", "request", "join", "ptype",
			    "publisher", "room", (json_int_t)j->room, "display",
			    c->name ? c->name : ""),
		  NULL);
}

/* perf/janus/README.md: the knobs of its room 1234, so that rooms made
 * here behave the same (no bitrate cap, no periodic FIR). */
static void send_create_room(struct cv_client *c)
{
	struct cv_client_janus *j = c->janus;
	send_body(c, "room", j->pub_handle,
		  json_pack("{s:s,s:I,s:b,s:i,s:i,s:i,s:s,s:s}", "request",
			    "create", "room", (json_int_t)j->room, "permanent",
			    0, "publishers", 100, "bitrate", 0, "fir_freq", 0,
			    "audiocodec", "opus", "videocodec", "vp8"),
		  NULL);
}

/* ---- Feeds ---- */

static bool has_id(const GArray *a, uint64_t id)
{
	for (guint i = 0; i < a->len; i++)
		if (g_array_index(a, uint64_t, i) == id)
			return true;
	return false;
}

/* Remembers the publishers of a "publishers" list (borrowed). */
static void add_publishers(struct cv_client *c, json_t *list)
{
	struct cv_client_janus *j = c->janus;
	size_t i;
	json_t *p;
	json_array_foreach(list, i, p)
	{
		json_t *id = json_object_get(p, "id");
		if (!json_is_integer(id))
			continue;
		uint64_t v = (uint64_t)json_integer_value(id);
		if (v == j->my_id || has_id(j->known, v))
			continue;
		g_array_append_val(j->known, v);
		g_array_append_val(j->wanted, v);
	}
	maybe_subscribe(c);
}

/* A feed that left before we asked for it is not asked for. */
static void drop_wanted(struct cv_client *c, uint64_t id)
{
	GArray *w = c->janus->wanted;
	for (guint i = 0; i < w->len; i++)
		if (g_array_index(w, uint64_t, i) == id) {
			g_array_remove_index(w, i);
			return;
		}
}

/* Sends the next subscriber request if none is in flight. */
static void maybe_subscribe(struct cv_client *c)
{
	struct cv_client_janus *j = c->janus;
	if (!c->subscribe || !j->joined || j->sub != SUB_IDLE ||
	    !j->wanted->len || c->state == CV_CLIENT_FAILED ||
	    c->state == CV_CLIENT_CLOSED)
		return;
	if (!j->sub_handle) {
		j->sub = SUB_ATTACHING;
		j->sub_tx = janus_send(c, "attach", "attsub", 0,
				       json_pack("{s:s}", "plugin", PLUGIN));
		return;
	}
	json_t *streams = json_array();
	for (guint i = 0; i < j->wanted->len; i++)
		json_array_append_new(
			streams, json_pack("{s:I}", "feed",
					   (json_int_t)g_array_index(
						   j->wanted, uint64_t, i)));
	g_array_set_size(j->wanted, 0);
	json_t *body;
	if (!j->sub_joined)
		/* private_id ties the subscription to our publisher. */
		body = json_pack("{s:s,s:s,s:I,s:o,s:I}", "request", "join",
				 "ptype", "subscriber", "room",
				 (json_int_t)j->room, "streams", streams,
				 "private_id", (json_int_t)j->private_id);
	else
		body = json_pack("{s:s,s:o}", "request", "subscribe", "streams",
				 streams);
	j->sub = SUB_REQUEST;
	j->sub_tx = send_body(c, j->sub_joined ? "subscribe" : "subjoin",
			      j->sub_handle, body, NULL);
}

/* ---- Receiving ---- */

/* "<kind>-<n>" of a reply: copies kind into out, returns n (0: none). */
static unsigned parse_tx(json_t *msg, char *out, size_t cap)
{
	const char *tx = json_string_value(json_object_get(msg, "transaction"));
	out[0] = '\0';
	if (!tx)
		return 0;
	const char *dash = strrchr(tx, '-');
	if (!dash || (size_t)(dash - tx) >= cap)
		return 0;
	memcpy(out, tx, (size_t)(dash - tx));
	out[dash - tx] = '\0';
	return (unsigned)strtoul(dash + 1, NULL, 10);
}

static uint64_t id_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

/* The plugin's answer to our publisher requests, and what it tells the
 * publisher handle unsolicited (publishers coming and going). */
static void on_pub_event(struct cv_client *c, const char *kind, json_t *data,
			 json_t *jsep)
{
	struct cv_client_janus *j = c->janus;
	json_t *err = json_object_get(data, "error_code");
	const char *vr = json_string_value(json_object_get(data, "videoroom"));
	if (json_is_integer(err)) {
		if (!strcmp(kind, "join") &&
		    json_integer_value(err) == VR_NO_SUCH_ROOM) {
			send_create_room(c);
			return;
		}
		if (!strcmp(kind, "join") || !strcmp(kind, "publish"))
			cv_client_set_state(c, CV_CLIENT_FAILED, CV_EPROTO);
		return;
	}
	if (!strcmp(kind, "room") && vr && !strcmp(vr, "created")) {
		send_join(c);
		return;
	}
	if (vr && !strcmp(vr, "joined")) {
		j->my_id = id_of(data, "id");
		j->private_id = id_of(data, "private_id");
		j->joined = true;
		cv_client_on_joined(c);
	}
	json_t *pubs = json_object_get(data, "publishers");
	if (json_is_array(pubs))
		add_publishers(c, pubs);
	uint64_t gone = id_of(data, "unpublished");
	if (!gone)
		gone = id_of(data, "leaving");
	if (gone)
		drop_wanted(c, gone);
	const char *type = json_string_value(json_object_get(jsep, "type"));
	const char *sdp = json_string_value(json_object_get(jsep, "sdp"));
	if (type && !strcmp(type, "answer") && sdp) {
		if (!j->pub_completed) {
			j->pub_completed = true;
			send_completed(c, j->pub_handle);
		}
		cv_client_on_publish_answer(c, sdp);
	}
}

/* Janus's offer for the subscriber handle, in the shape of a Conclave
 * subscribe_offer: a track per m-line named "<feed id>/<feed mid>". */
static void on_sub_offer(struct cv_client *c, json_t *data, const char *sdp)
{
	json_t *tracks = json_array();
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(data, "streams"), i, s)
	{
		const char *mid = json_string_value(json_object_get(s, "mid"));
		const char *fmid =
			json_string_value(json_object_get(s, "feed_mid"));
		uint64_t feed = id_of(s, "feed_id");
		if (!mid || !feed)
			continue;
		char name[64];
		snprintf(name, sizeof(name), "%llu/%s",
			 (unsigned long long)feed, fmid ? fmid : "?");
		json_array_append_new(tracks, json_pack("{s:s,s:s}", "mid", mid,
							"track", name));
	}
	json_t *msg = json_pack("{s:s,s:s,s:o}", "type", "subscribe_offer",
				"sdp", sdp, "tracks", tracks);
	c->janus->sub = SUB_ANSWERING;
	cv_client_on_subscribe_offer(c, msg);
	json_decref(msg);
}

static void on_sub_event(struct cv_client *c, unsigned tx, json_t *data,
			 json_t *jsep)
{
	struct cv_client_janus *j = c->janus;
	const char *vr = json_string_value(json_object_get(data, "videoroom"));
	if (vr && !strcmp(vr, "attached"))
		j->sub_joined = true;
	const char *type = json_string_value(json_object_get(jsep, "type"));
	const char *sdp = json_string_value(json_object_get(jsep, "sdp"));
	if (type && !strcmp(type, "offer") && sdp) {
		/* Ours, or unsolicited (a feed left: Janus renegotiates). */
		if (c->subscribe)
			on_sub_offer(c, data, sdp);
		return;
	}
	/* The event of our request without an offer: nothing changed
	 * ("updated" with no new stream), an error (the feed left), or
	 * the "started" of our answer. Either way the next may go. */
	if (tx && tx == j->sub_tx &&
	    (j->sub == SUB_REQUEST || j->sub == SUB_STARTING)) {
		j->sub = SUB_IDLE;
		maybe_subscribe(c);
	}
}

/* Janus's trickled candidate for one of our connections. */
static void on_trickle(struct cv_client *c, uint64_t sender, json_t *msg)
{
	struct cv_client_janus *j = c->janus;
	json_t *cand = json_object_get(msg, "candidate");
	const char *line =
		json_string_value(json_object_get(cand, "candidate"));
	if (!line)
		return; /* {"completed": true}, or nothing we know */
	if (sender == j->pub_handle)
		cv_client_pc_add_remote(&c->pub, line);
	else if (sender == j->sub_handle)
		cv_client_pc_add_remote(&c->sub, line);
}

static void on_success(struct cv_client *c, const char *kind, json_t *msg)
{
	struct cv_client_janus *j = c->janus;
	uint64_t id = id_of(json_object_get(msg, "data"), "id");
	if (!strcmp(kind, "create") && id) {
		j->session = id;
		j->next_keepalive_us = cv_client_now_us() + KEEPALIVE_US;
		janus_send(c, "attach", "attpub", 0,
			   json_pack("{s:s}", "plugin", PLUGIN));
	} else if (!strcmp(kind, "attpub") && id) {
		j->pub_handle = id;
		send_join(c);
	} else if (!strcmp(kind, "attsub") && id) {
		j->sub_handle = id;
		j->sub = SUB_IDLE;
		maybe_subscribe(c);
	} else if (!strcmp(kind, "room")) {
		/* Created, or another endpoint created it first. */
		json_t *data = json_object_get(
			json_object_get(msg, "plugindata"), "data");
		json_t *err = json_object_get(data, "error_code");
		if (!json_is_integer(err) ||
		    json_integer_value(err) == VR_ROOM_EXISTS)
			send_join(c);
		else
			cv_client_set_state(c, CV_CLIENT_FAILED, CV_EPROTO);
	}
}

/* A Janus-level error: fatal for the requests the endpoint cannot work
 * without; reported only for the others (keepalive, trickle, destroy). */
static void on_error(struct cv_client *c, const char *kind, unsigned tx)
{
	struct cv_client_janus *j = c->janus;
	if (!strcmp(kind, "create") || !strcmp(kind, "attpub") ||
	    !strcmp(kind, "attsub") || !strcmp(kind, "join") ||
	    !strcmp(kind, "publish") || !strcmp(kind, "room")) {
		cv_client_set_state(c, CV_CLIENT_FAILED, CV_EPROTO);
		return;
	}
	if (tx && tx == j->sub_tx && j->sub != SUB_ANSWERING) {
		j->sub = SUB_IDLE;
		maybe_subscribe(c);
	}
}

void cv_client_janus_handle(struct cv_client *c, const char *text)
{
	struct cv_client_janus *j = c->janus;
	json_t *msg = json_loads(text, 0, NULL);
	const char *verb = json_string_value(json_object_get(msg, "janus"));
	if (!verb) {
		json_decref(msg);
		return;
	}
	char kind[16];
	unsigned tx = parse_tx(msg, kind, sizeof(kind));
	uint64_t sender = id_of(msg, "sender");
	json_t *data =
		json_object_get(json_object_get(msg, "plugindata"), "data");
	const char *report = verb;
	if (c->state == CV_CLIENT_CLOSED || c->state == CV_CLIENT_FAILED) {
		/* Left: no more requests (an offer after our "destroy"
		 * would be answered on a session Janus no longer has). */
	} else if (!strcmp(verb, "success")) {
		on_success(c, kind, msg);
	} else if (!strcmp(verb, "error")) {
		on_error(c, kind, tx);
	} else if (!strcmp(verb, "event")) {
		json_t *jsep = json_object_get(msg, "jsep");
		json_t *err = json_object_get(data, "error_code");
		/* A missing room is not an error: we create it. */
		if (err && !(!strcmp(kind, "join") &&
			     json_integer_value(err) == VR_NO_SUCH_ROOM))
			report = "error";
		if (sender && sender == j->pub_handle)
			on_pub_event(c, kind, data, jsep);
		else if (sender && sender == j->sub_handle)
			on_sub_event(c, tx, data, jsep);
	} else if (!strcmp(verb, "trickle")) {
		on_trickle(c, sender, msg);
	} else if (!strcmp(verb, "hangup") &&
		   (sender == j->pub_handle || sender == j->sub_handle)) {
		/* ICE or DTLS failed, or Janus tore the handle down. */
		cv_client_set_state(c, CV_CLIENT_FAILED, -ECONNRESET);
	} else if (!strcmp(verb, "timeout")) {
		cv_client_set_state(c, CV_CLIENT_FAILED, -ETIMEDOUT);
	}
	if (strcmp(verb, "ack") && c->cb.on_event)
		c->cb.on_event(c->cb.arg, report, text);
	json_decref(msg);
}

/* ---- Called by the endpoint ---- */

void cv_client_janus_open(struct cv_client *c)
{
	janus_send(c, "create", "create", 0, NULL);
}

void cv_client_janus_publish(struct cv_client *c, const char *sdp)
{
	struct cv_client_janus *j = c->janus;
	send_body(c, "publish", j->pub_handle,
		  json_pack("{s:s,s:b,s:b}", "request", "publish", "audio",
			    c->audio, "video", c->video),
		  json_pack("{s:s,s:s}", "type", "offer", "sdp", sdp));
}

void cv_client_janus_answer(struct cv_client *c, const char *sdp)
{
	struct cv_client_janus *j = c->janus;
	j->sub = SUB_STARTING;
	j->sub_tx =
		send_body(c, "start", j->sub_handle,
			  json_pack("{s:s}", "request", "start"),
			  json_pack("{s:s,s:s}", "type", "answer", "sdp", sdp));
	if (!j->sub_completed) {
		j->sub_completed = true;
		send_completed(c, j->sub_handle);
	}
}

void cv_client_janus_tick(struct cv_client *c, uint64_t now_us)
{
	struct cv_client_janus *j = c->janus;
	if (!j->session || now_us < j->next_keepalive_us ||
	    c->state == CV_CLIENT_CLOSED || c->state == CV_CLIENT_FAILED)
		return;
	j->next_keepalive_us = now_us + KEEPALIVE_US;
	janus_send(c, "keepalive", "keepalive", 0, NULL);
}

void cv_client_janus_leave(struct cv_client *c)
{
	struct cv_client_janus *j = c->janus;
	if (j->session)
		janus_send(c, "destroy", "destroy", 0, NULL);
}

int cv_client_janus_create(struct cv_client *c, uint64_t room)
{
	struct cv_client_janus *j = g_new0(struct cv_client_janus, 1);
	j->room = room ? room : JANUS_DEFAULT_ROOM;
	j->wanted = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	j->known = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	c->janus = j;
	return 0;
}

void cv_client_janus_destroy(struct cv_client *c)
{
	struct cv_client_janus *j = c->janus;
	if (!j)
		return;
	g_array_free(j->wanted, TRUE);
	g_array_free(j->known, TRUE);
	g_free(j);
	c->janus = NULL;
}
