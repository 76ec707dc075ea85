/*
 * Signaling messages of docs/protocol.md (version 1): a validating parser
 * for client->node messages and JSON builders for node->client messages.
 *
 * Thread: any; no shared state.
 */
#ifndef CONCLAVE_MSG_H
#define CONCLAVE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_MSG_MAX_TRACKS    16	  /* m-lines per peer connection */
#define CV_MSG_NAME_MAX	     64	  /* bytes of a display name */
#define CV_MSG_MID_MAX	     32	  /* bytes of a mid (RFC 8843 token) */
#define CV_MSG_CANDIDATE_MAX 1024 /* bytes of a candidate attribute */
#define CV_MSG_ID_MAX	     INT64_C(2147483647)

enum cv_msg_type {
	CV_MSG_JOIN = 1,
	CV_MSG_PUBLISH,
	CV_MSG_SUBSCRIBE_ANSWER,
	CV_MSG_CANDIDATE,
	CV_MSG_UNPUBLISH,
	CV_MSG_MUTE,
	CV_MSG_LEAVE,
	CV_MSG_PING,
};

enum cv_source {
	CV_SOURCE_CAMERA,
	CV_SOURCE_MICROPHONE,
	CV_SOURCE_SCREEN,
};

enum cv_kind {
	CV_KIND_AUDIO,
	CV_KIND_VIDEO,
};

enum cv_pc {
	CV_PC_PUBLISH,
	CV_PC_SUBSCRIBE,
};

struct cv_msg_track {
	const char *mid;
	enum cv_source source;
};

/*
 * A parsed client message. Every string is NUL-terminated, valid UTF-8
 * without NUL bytes, and points into `arena`, which the struct owns:
 * release it with cv_msg_fini. Only the member of `type` is meaningful.
 */
struct cv_msg {
	enum cv_msg_type type;
	int64_t id; /* 0 .. CV_MSG_ID_MAX, or -1 when the request had none */
	union {
		struct {
			const char *token; /* <= CV_TOKEN_MAX_BYTES */
			const char *room;  /* valid per cv_room_name_valid */
			const char *name;  /* NULL when absent */
		} join;
		struct {
			const char *sdp;
			size_t n_tracks; /* 1 .. CV_MSG_MAX_TRACKS */
			struct cv_msg_track tracks[CV_MSG_MAX_TRACKS];
		} publish;
		struct {
			const char *sdp;
		} subscribe_answer;
		struct {
			enum cv_pc pc;
			const char *candidate; /* "" = end-of-candidates */
			const char *sdp_mid;
		} candidate;
		struct {
			const char *mid;
		} unpublish;
		struct {
			const char *mid;
			bool muted;
		} mute;
	};
	char *arena;
};

/*
 * Parses and validates one client frame json[0..len) (borrowed, need not
 * be NUL-terminated) into *out (borrowed; its previous content is not
 * released). On success returns 0 and *out owns its arena.
 * On failure returns CV_EPARSE (or -ENOMEM), *err_code (if err_code is
 * non-NULL) is set to a static protocol error code ("bad_message",
 * "token_missing", "token_invalid" for an oversized token), out->id holds
 * the request id when one could be read (else -1) so that the error reply
 * can carry it, and out owns nothing (cv_msg_fini is harmless).
 */
int cv_msg_parse(const char *json, size_t len, struct cv_msg *out,
		 const char **err_code);

/* Releases what cv_msg_parse allocated; *msg may be reused. NULL is ok. */
void cv_msg_fini(struct cv_msg *msg);

/* Protocol strings of the enums ("camera", "video", "publish", ...). */
const char *cv_source_name(enum cv_source source);
const char *cv_kind_name(enum cv_kind kind);

/*
 * Builders for node->client messages. Every one returns a malloc'd,
 * NUL-terminated compact JSON string the caller frees with free(), or
 * NULL on allocation failure or when a string argument is not valid
 * UTF-8. String arguments are borrowed. `id` is the request id to echo
 * (-1: none, the member is then omitted).
 */
struct cv_msg_participant {
	const char *id;
	const char *name; /* NULL: member omitted */
};

struct cv_msg_track_info {
	const char *id;
	const char *participant;
	enum cv_kind kind;
	enum cv_source source;
	bool muted;
};

/* One subscribe m-line: which track the mid carries. */
struct cv_msg_mid_track {
	const char *mid;
	const char *track;
};

char *cv_msg_error(int64_t id, const char *code, const char *message);
char *cv_msg_ok(int64_t id);
char *cv_msg_pong(int64_t id);
/* parts[0..n_parts) and tracks[0..n_tracks) borrowed; may be NULL if 0. */
char *cv_msg_joined(int64_t id, const char *participant, const char *room,
		    const struct cv_msg_participant *parts, size_t n_parts,
		    const struct cv_msg_track_info *tracks, size_t n_tracks);
/*
 * `joined` in a perc room: as cv_msg_joined plus
 * "perc": {"publish_assoc": .., "subscribe_assoc": ..} (each the RFC 9185
 * association id as 32 lowercase hex digits, borrowed).
 */
struct cv_msg_perc_assoc {
	const char *publish_assoc;
	const char *subscribe_assoc;
};
char *cv_msg_joined_perc(int64_t id, const char *participant, const char *room,
			 const struct cv_msg_participant *parts, size_t n_parts,
			 const struct cv_msg_track_info *tracks,
			 size_t n_tracks, const struct cv_msg_perc_assoc *perc);
char *cv_msg_publish_answer(int64_t id, const char *sdp);
char *cv_msg_subscribe_offer(const char *sdp,
			     const struct cv_msg_mid_track *map, size_t n);
char *cv_msg_participant_joined(const struct cv_msg_participant *p);
char *cv_msg_participant_left(const char *participant);
char *cv_msg_track_added(const struct cv_msg_track_info *track);
char *cv_msg_track_removed(const char *track);
char *cv_msg_track_muted(const char *track, bool muted);
char *cv_msg_draining(int64_t deadline_ms);
/* Perc rooms: {"type":"removed"} (this participant was removed from the
 * room; the node closes the socket, 4001) and {"type":"rekey"} (someone
 * was removed: fetch the room key again). */
char *cv_msg_removed(void);
char *cv_msg_rekey(void);

#endif
