/*
 * The node's relay of the client-KMS channel (docs/protocol.md "Perc
 * rooms", docs/kms.md "Client-KMS channel"): `POST /v1/channel` on the
 * client listener is carried byte for byte to conclave-kms's channel
 * (perc.kms_address:perc.kms_port), and the KMS's answer back.
 *
 * The relay owns one thread and a small bounded queue: the HTTP round
 * trip to the KMS blocks (connect + request + answer within timeout_ms),
 * so it never runs on the signaling thread nor on a media worker. The
 * node's done callback runs on the relay thread with the outcome; the
 * node writes the answer back through cv_ws_post_reply (which hands it to
 * the signaling thread).
 *
 * The relay never logs a body byte, a token or a member id.
 *
 * Two-part membership change: a POST with the headers Conclave-Core (a
 * node token), Conclave-Op and Conclave-Member is checked here
 * (cv_relay_check_core) and forwarded with Conclave-Room, Conclave-Actor,
 * Conclave-Op and Conclave-Member; the KMS's Conclave-Status comes back in
 * struct cv_relay_result.
 */
#ifndef CONCLAVE_NODE_RELAY_H
#define CONCLAVE_NODE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/token.h"

#define CV_RELAY_BODY_MAX  8192 /* docs/kms.md: every message <= 8 KiB */
#define CV_RELAY_QUEUE_MAX 16	/* jobs waiting; more: 503 */
#define CV_RELAY_HEAD_MAX  4096 /* the KMS's answer head */

enum cv_relay_op {
	CV_RELAY_OP_NONE = 0, /* a plain channel message */
	CV_RELAY_OP_ADD,      /* add_member */
	CV_RELAY_OP_REMOVE,   /* remove_member */
};

/* The node's part of a two-part change, from a checked Conclave-Core. */
struct cv_relay_core {
	enum cv_relay_op op;
	char room[CV_TOKEN_ROOM_MAX + 1];  /* the token's room */
	char actor[CV_TOKEN_SUB_MAX + 1];  /* the token's sub */
	char member[CV_TOKEN_SUB_MAX + 1]; /* Conclave-Member */
};

/*
 * Checks the two-part headers of a POST (values borrowed, NULL when
 * absent) against the node's token key at now_s. All three absent: 0 and
 * out->op = CV_RELAY_OP_NONE. Otherwise all three must be there, op
 * "add_member" or "remove_member", member 1..CV_TOKEN_SUB_MAX visible
 * ASCII, and core a valid node token (cv_token_verify: signature, expiry)
 * with mode perc; then 0 and *out filled. Errors, each an HTTP status the
 * node answers without forwarding: 400 (a header missing or malformed),
 * 403 (the token is refused, expired or not for a perc room).
 * Thread: any.
 */
int cv_relay_check_core(const uint8_t *key, size_t key_len, const char *core,
			const char *op, const char *member, int64_t now_s,
			struct cv_relay_core *out);

/* "add_member", "remove_member" or NULL. */
const char *cv_relay_op_name(enum cv_relay_op op);

/*
 * Writes the HTTP/1.1 request head for body_len bytes to host (with the
 * four Conclave-* headers when core is non-NULL and its op is not NONE)
 * into buf (cap bytes). Returns its length, or -ENOSPC. Thread: any.
 */
int cv_relay_request_head(char *buf, size_t cap, const char *host,
			  size_t body_len, const struct cv_relay_core *core);

/* The parts of a KMS answer (pointers into the parsed buffer). */
struct cv_relay_answer {
	int status;	     /* 100..599 */
	const uint8_t *body; /* Content-Length bytes after the head */
	size_t len;
	char kms_status[32]; /* Conclave-Status; "" when absent */
};

/*
 * Parses a whole answer buf[0..len) (the connection was closed after
 * it): status line "HTTP/1.x NNN ...", exactly one Content-Length equal to
 * what follows the head (<= CV_RELAY_BODY_MAX), no Transfer-Encoding, at
 * most one Conclave-Status of [a-z_] (<= 31). 0 or -EPROTO. Thread: any.
 */
int cv_relay_parse_answer(const uint8_t *buf, size_t len,
			  struct cv_relay_answer *out);

/* One request for the relay thread. */
struct cv_relay_job {
	uint64_t post_id; /* the cv_ws_post id to answer */
	uint8_t body[CV_RELAY_BODY_MAX];
	size_t len;
	struct cv_relay_core core; /* op NONE: a plain message */
};

/* The outcome of a job: status 502 when the KMS could not be reached or
 * answered nonsense in time (body empty). */
struct cv_relay_result {
	int status;
	const uint8_t *body;
	size_t len;
	const char *kms_status; /* "" when absent or on 502 */
};

/* Called on the relay thread once per submitted job (also at destroy,
 * with status 503, for jobs never run). */
typedef void (*cv_relay_done_fn)(void *arg, const struct cv_relay_job *job,
				 const struct cv_relay_result *res);

struct cv_relay_opts {
	const char *host; /* numeric IP of the KMS channel; copied */
	uint16_t port;
	uint32_t timeout_ms; /* whole round trip; 0 = 5000 */
	cv_relay_done_fn done;
	void *arg;
};

struct cv_relay;

/* Starts the relay thread. *out written on success. -EINVAL, -ENOMEM,
 * or pthread_create's error. Thread: startup. */
int cv_relay_create(struct cv_relay **out, const struct cv_relay_opts *o);

/* Stops the thread after the job in progress; queued jobs are done with
 * 503. NULL is fine. Thread: any but the relay thread. */
void cv_relay_destroy(struct cv_relay *r);

/* Queues a copy of job. 0, or -EAGAIN when CV_RELAY_QUEUE_MAX jobs wait.
 * Thread: any (does not block on the KMS). */
int cv_relay_submit(struct cv_relay *r, const struct cv_relay_job *job);

/* Counters since start. Thread: any. */
struct cv_relay_stats {
	uint64_t requests; /* jobs run */
	uint64_t failures; /* answered 502 */
	uint64_t refused;  /* queue full */
};
void cv_relay_get_stats(struct cv_relay *r, struct cv_relay_stats *out);

#endif
