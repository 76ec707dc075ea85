/*
 * Client message validation and node message building (docs/protocol.md).
 * Parsing is two passes: validate while collecting string slices that
 * point into the jansson tree, then copy them all into one arena block so
 * that the result owns exactly one allocation.
 */
#include "conclave/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conclave/err.h"
#include "conclave/token.h"

#define MAX_SLICES (CV_MSG_MAX_TRACKS + 4)
#define SDP_MAX	   (64 * 1024)

static const char BAD[] = "bad_message";

struct slice {
	const char *p;
	size_t len;
	const char **dst;
};

struct collect {
	struct slice s[MAX_SLICES];
	size_t n;
};

static void add(struct collect *c, json_t *str, const char **dst)
{
	/* Callers add at most MAX_SLICES strings (checked by construction). */
	c->s[c->n].p = json_string_value(str);
	c->s[c->n].len = json_string_length(str);
	c->s[c->n].dst = dst;
	c->n++;
}

/* A string member of 1..max bytes (0..max when allow_empty). */
static int get_string(json_t *o, const char *key, size_t max, bool allow_empty,
		      json_t **out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return CV_EPARSE;
	size_t n = json_string_length(v);
	if ((!allow_empty && n == 0) || n > max)
		return CV_EPARSE;
	*out = v;
	return 0;
}

/* RFC 8843 section 15: a mid is an RFC 4566 token. */
static bool token_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z') || strchr("!#$%&'*+-.^_`{|}~", c);
}

static int get_mid(json_t *o, const char *key, json_t **out)
{
	if (get_string(o, key, CV_MSG_MID_MAX, false, out))
		return CV_EPARSE;
	const char *s = json_string_value(*out);
	for (; *s; s++)
		if (!token_char((unsigned char)*s))
			return CV_EPARSE;
	return 0;
}

static int parse_source(const char *s, enum cv_source *out)
{
	static const enum cv_source all[] = {
		CV_SOURCE_CAMERA, CV_SOURCE_MICROPHONE, CV_SOURCE_SCREEN};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, cv_source_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return CV_EPARSE;
}

static int parse_join(json_t *o, struct cv_msg *m, struct collect *c,
		      const char **err)
{
	json_t *tok = json_object_get(o, "token"), *room, *name = NULL;
	if (!tok || (json_is_string(tok) && json_string_length(tok) == 0)) {
		*err = "token_missing";
		return CV_EPARSE;
	}
	if (!json_is_string(tok))
		return CV_EPARSE;
	if (json_string_length(tok) > CV_TOKEN_MAX_BYTES) {
		*err = "token_invalid";
		return CV_EPARSE;
	}
	if (get_string(o, "room", CV_TOKEN_ROOM_MAX, false, &room) ||
	    !cv_room_name_valid(json_string_value(room),
				json_string_length(room)))
		return CV_EPARSE;
	if (json_object_get(o, "name")) {
		if (get_string(o, "name", CV_MSG_NAME_MAX, true, &name))
			return CV_EPARSE;
		for (const char *s = json_string_value(name); *s; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				return CV_EPARSE;
	}
	add(c, tok, &m->join.token);
	add(c, room, &m->join.room);
	m->join.name = NULL;
	if (name)
		add(c, name, &m->join.name);
	return 0;
}

static int parse_publish(json_t *o, struct cv_msg *m, struct collect *c)
{
	json_t *sdp, *tracks = json_object_get(o, "tracks");
	if (get_string(o, "sdp", SDP_MAX, false, &sdp))
		return CV_EPARSE;
	size_t n = json_array_size(tracks);
	if (!json_is_array(tracks) || n == 0 || n > CV_MSG_MAX_TRACKS)
		return CV_EPARSE;
	add(c, sdp, &m->publish.sdp);
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(tracks, i), *mid, *src;
		if (!json_is_object(t) || get_mid(t, "mid", &mid) ||
		    get_string(t, "source", 16, false, &src) ||
		    parse_source(json_string_value(src),
				 &m->publish.tracks[i].source))
			return CV_EPARSE;
		/* One track per mid: a duplicate would be ambiguous. */
		for (size_t k = 0; k < i; k++)
			if (!strcmp(json_string_value(json_object_get(
					    json_array_get(tracks, k), "mid")),
				    json_string_value(mid)))
				return CV_EPARSE;
		add(c, mid, &m->publish.tracks[i].mid);
	}
	m->publish.n_tracks = n;
	return 0;
}

static int parse_candidate(json_t *o, struct cv_msg *m, struct collect *c)
{
	json_t *pc, *cand, *mid;
	if (get_string(o, "pc", 16, false, &pc) ||
	    get_string(o, "candidate", CV_MSG_CANDIDATE_MAX, true, &cand) ||
	    get_mid(o, "sdpMid", &mid))
		return CV_EPARSE;
	if (!strcmp(json_string_value(pc), "publish"))
		m->candidate.pc = CV_PC_PUBLISH;
	else if (!strcmp(json_string_value(pc), "subscribe"))
		m->candidate.pc = CV_PC_SUBSCRIBE;
	else
		return CV_EPARSE;
	add(c, cand, &m->candidate.candidate);
	add(c, mid, &m->candidate.sdp_mid);
	return 0;
}

static int parse_body(json_t *o, const char *type, struct cv_msg *m,
		      struct collect *c, const char **err)
{
	json_t *v;
	if (!strcmp(type, "join")) {
		m->type = CV_MSG_JOIN;
		return parse_join(o, m, c, err);
	}
	if (!strcmp(type, "publish")) {
		m->type = CV_MSG_PUBLISH;
		return parse_publish(o, m, c);
	}
	if (!strcmp(type, "subscribe_answer")) {
		m->type = CV_MSG_SUBSCRIBE_ANSWER;
		if (get_string(o, "sdp", SDP_MAX, false, &v))
			return CV_EPARSE;
		add(c, v, &m->subscribe_answer.sdp);
		return 0;
	}
	if (!strcmp(type, "candidate")) {
		m->type = CV_MSG_CANDIDATE;
		return parse_candidate(o, m, c);
	}
	if (!strcmp(type, "unpublish")) {
		m->type = CV_MSG_UNPUBLISH;
		if (get_mid(o, "mid", &v))
			return CV_EPARSE;
		add(c, v, &m->unpublish.mid);
		return 0;
	}
	if (!strcmp(type, "mute")) {
		m->type = CV_MSG_MUTE;
		json_t *b = json_object_get(o, "muted");
		if (get_mid(o, "mid", &v) || !json_is_boolean(b))
			return CV_EPARSE;
		m->mute.muted = json_is_true(b);
		add(c, v, &m->mute.mid);
		return 0;
	}
	if (!strcmp(type, "leave")) {
		m->type = CV_MSG_LEAVE;
		return 0;
	}
	if (!strcmp(type, "ping")) {
		m->type = CV_MSG_PING;
		return 0;
	}
	return CV_EPARSE;
}

/* docs/protocol.md: id is an integer 0 .. 2^31-1, optional. */
static int parse_id(json_t *o, int64_t *id)
{
	json_t *v = json_object_get(o, "id");
	*id = -1;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > CV_MSG_ID_MAX)
		return CV_EPARSE;
	*id = (int64_t)json_integer_value(v);
	return 0;
}

static int fill_arena(struct cv_msg *m, const struct collect *c)
{
	size_t total = 0;
	for (size_t i = 0; i < c->n; i++)
		total += c->s[i].len + 1;
	m->arena = malloc(total ? total : 1);
	if (!m->arena)
		return -ENOMEM;
	char *p = m->arena;
	for (size_t i = 0; i < c->n; i++) {
		memcpy(p, c->s[i].p, c->s[i].len);
		p[c->s[i].len] = '\0';
		*c->s[i].dst = p;
		p += c->s[i].len + 1;
	}
	return 0;
}

int cv_msg_parse(const char *json, size_t len, struct cv_msg *out,
		 const char **err_code)
{
	const char *err = BAD;
	struct collect c = {.n = 0};
	int rc = CV_EPARSE;
	int64_t id;
	json_t *type;

	memset(out, 0, sizeof(*out));
	out->id = -1;
	/* jansson refuses \u0000 in strings (no JSON_ALLOW_NUL) and
	 * invalid UTF-8; we also refuse duplicate members. */
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o))
		goto fail;
	if (parse_id(o, &id))
		goto fail;
	out->id = id;
	type = json_object_get(o, "type");
	if (!json_is_string(type))
		goto fail;
	rc = parse_body(o, json_string_value(type), out, &c, &err);
	if (rc)
		goto fail;
	rc = fill_arena(out, &c);
	if (rc) {
		err = "internal";
		goto fail;
	}
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	id = out->id;
	memset(out, 0, sizeof(*out));
	out->id = id;
	if (err_code)
		*err_code = err;
	return rc ? rc : CV_EPARSE;
}

void cv_msg_fini(struct cv_msg *msg)
{
	if (!msg)
		return;
	free(msg->arena);
	msg->arena = NULL;
}

const char *cv_source_name(enum cv_source source)
{
	switch (source) {
	case CV_SOURCE_CAMERA:
		return "camera";
	case CV_SOURCE_MICROPHONE:
		return "microphone";
	case CV_SOURCE_SCREEN:
		return "screen";
	}
	return "camera";
}

const char *cv_kind_name(enum cv_kind kind)
{
	return kind == CV_KIND_VIDEO ? "video" : "audio";
}

/* ---- builders ---- */

/* Takes o (stolen); returns the compact dump or NULL. */
static char *dump(json_t *o)
{
	if (!o)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* A new object {"type": type} with "id" when id >= 0. */
static json_t *base(const char *type, int64_t id)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (json_object_set_new(o, "type", json_string(type)) ||
	    (id >= 0 &&
	     json_object_set_new(o, "id", json_integer((json_int_t)id)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Sets o[key] = string s; on failure releases o and returns NULL. */
static json_t *set_str(json_t *o, const char *key, const char *s)
{
	if (!o)
		return NULL;
	json_t *v = s ? json_string(s) : NULL;
	if (!v || json_object_set_new(o, key, v)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *set_new(json_t *o, const char *key, json_t *v)
{
	if (!o) {
		json_decref(v);
		return NULL;
	}
	if (!v || json_object_set_new(o, key, v)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *participant_obj(const struct cv_msg_participant *p)
{
	json_t *o = set_str(json_object(), "id", p->id);
	if (o && p->name)
		o = set_str(o, "name", p->name);
	return o;
}

static json_t *track_obj(const struct cv_msg_track_info *t)
{
	json_t *o = set_str(json_object(), "id", t->id);
	o = set_str(o, "participant", t->participant);
	o = set_str(o, "kind", cv_kind_name(t->kind));
	o = set_str(o, "source", cv_source_name(t->source));
	return set_new(o, "muted", json_boolean(t->muted));
}

char *cv_msg_error(int64_t id, const char *code, const char *message)
{
	json_t *o = set_str(base("error", id), "code", code);
	return dump(set_str(o, "message", message ? message : ""));
}

char *cv_msg_ok(int64_t id)
{
	return dump(base("ok", id));
}

char *cv_msg_pong(int64_t id)
{
	return dump(base("pong", id));
}

static json_t *perc_obj(const struct cv_msg_perc_assoc *perc)
{
	json_t *o =
		set_str(json_object(), "publish_assoc", perc->publish_assoc);
	return set_str(o, "subscribe_assoc", perc->subscribe_assoc);
}

static char *joined(int64_t id, const char *participant, const char *room,
		    const struct cv_msg_participant *parts, size_t n_parts,
		    const struct cv_msg_track_info *tracks, size_t n_tracks,
		    const struct cv_msg_perc_assoc *perc)
{
	json_t *pa = json_array(), *ta = json_array();
	for (size_t i = 0; pa && i < n_parts; i++)
		if (json_array_append_new(pa, participant_obj(&parts[i]))) {
			json_decref(pa);
			pa = NULL;
		}
	for (size_t i = 0; ta && i < n_tracks; i++)
		if (json_array_append_new(ta, track_obj(&tracks[i]))) {
			json_decref(ta);
			ta = NULL;
		}
	json_t *o = set_str(base("joined", id), "participant", participant);
	o = set_str(o, "room", room);
	o = set_new(o, "participants", pa);
	o = set_new(o, "tracks", ta);
	if (perc)
		o = set_new(o, "perc", perc_obj(perc));
	return dump(o);
}

char *cv_msg_joined(int64_t id, const char *participant, const char *room,
		    const struct cv_msg_participant *parts, size_t n_parts,
		    const struct cv_msg_track_info *tracks, size_t n_tracks)
{
	return joined(id, participant, room, parts, n_parts, tracks, n_tracks,
		      NULL);
}

char *cv_msg_joined_perc(int64_t id, const char *participant, const char *room,
			 const struct cv_msg_participant *parts, size_t n_parts,
			 const struct cv_msg_track_info *tracks,
			 size_t n_tracks, const struct cv_msg_perc_assoc *perc)
{
	if (!perc)
		return NULL;
	return joined(id, participant, room, parts, n_parts, tracks, n_tracks,
		      perc);
}

char *cv_msg_publish_answer(int64_t id, const char *sdp)
{
	return dump(set_str(base("publish_answer", id), "sdp", sdp));
}

char *cv_msg_subscribe_offer(const char *sdp,
			     const struct cv_msg_mid_track *map, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		json_t *e = set_str(json_object(), "mid", map[i].mid);
		if (json_array_append_new(a,
					  set_str(e, "track", map[i].track))) {
			json_decref(a);
			a = NULL;
		}
	}
	json_t *o = set_str(base("subscribe_offer", -1), "sdp", sdp);
	return dump(set_new(o, "tracks", a));
}

char *cv_msg_participant_joined(const struct cv_msg_participant *p)
{
	return dump(set_new(base("participant_joined", -1), "participant",
			    participant_obj(p)));
}

char *cv_msg_participant_left(const char *participant)
{
	return dump(set_str(base("participant_left", -1), "participant",
			    participant));
}

char *cv_msg_track_added(const struct cv_msg_track_info *track)
{
	return dump(
		set_new(base("track_added", -1), "track", track_obj(track)));
}

char *cv_msg_track_removed(const char *track)
{
	return dump(set_str(base("track_removed", -1), "track", track));
}

char *cv_msg_track_muted(const char *track, bool muted)
{
	json_t *o = set_str(base("track_muted", -1), "track", track);
	return dump(set_new(o, "muted", json_boolean(muted)));
}

char *cv_msg_draining(int64_t deadline_ms)
{
	return dump(set_new(base("draining", -1), "deadline_ms",
			    json_integer((json_int_t)deadline_ms)));
}

char *cv_msg_removed(void)
{
	return dump(base("removed", -1));
}

char *cv_msg_rekey(void)
{
	return dump(base("rekey", -1));
}
