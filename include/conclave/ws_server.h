/*
 * The signaling front door: one libwebsockets context on its own thread
 * with two vhosts.
 *
 * Client vhost (cfg.address:cfg.port):
 *   GET /ws        WebSocket, subprotocol "conclave.v1" (or none); every
 *                  text frame is one message of docs/protocol.md, checked
 *                  by cv_msg_parse; invalid ones get an `error` reply and
 *                  never reach the node. `ping` is answered by the server
 *                  itself (pong); after `leave` reaches on_message the
 *                  server closes the socket (1000).
 *   GET <route>    cfg.http, when set, is asked first for every other GET;
 *                  it may decline (return 0 with *status 0).
 *   POST <path>    cfg.post_path, when set: the body and chosen headers go
 *                  to cfg.on_post, which answers later from any thread
 *                  (cv_ws_post_reply); see struct cv_ws_post.
 *   GET /, /x.js   static files below cfg.web_root (index.html for a path
 *                  ending in '/'); only known extensions are served, never
 *                  outside the root (.. segments and escaping symlinks are
 *                  refused with 404).
 * Admin vhost (cfg.admin_address:cfg.admin_port, when cfg.admin_enabled):
 *   every GET goes to cfg.admin_http after `Authorization: Bearer <token>`
 *   is checked against cfg.admin_token in constant time. An empty admin
 *   token is allowed only when admin_address is a loopback address
 *   (127.0.0.0/8, ::1, localhost); then no header is required.
 *
 * Limits per connection (cfg.limits): a message above max_message_bytes
 * (fragments are reassembled up to it) gets `error too_big` then close
 * 1009; over the token bucket (rate_per_sec, burst) a message gets
 * `error rate_limited` and is dropped; output queued above
 * max_queued_bytes closes the socket with 1008.
 *
 * Threads: the node's callbacks run on the server thread and must not
 * block; connections are named by conn_id (never reused, never 0), so any
 * thread may call cv_ws_send / cv_ws_close / cv_ws_broadcast_all.
 */
#ifndef CONCLAVE_WS_SERVER_H
#define CONCLAVE_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_msg;
struct cv_ws_server;

#define CV_WS_SUBPROTOCOL "conclave.v1"

struct cv_ws_limits {
	size_t max_message_bytes; /* 0: 64 KiB */
	uint32_t rate_per_sec;	  /* 0: 50 */
	uint32_t rate_burst;	  /* 0: 100 */
	size_t max_queued_bytes;  /* 0: 256 KiB */
	uint32_t max_connections; /* 0: unlimited */
};

/* A WebSocket was accepted (conn_id is new). Server thread. */
typedef void (*cv_ws_open_fn)(void *arg, uint64_t conn_id);
/* A valid message arrived; msg is borrowed for the call. Server thread. */
typedef void (*cv_ws_message_fn)(void *arg, uint64_t conn_id,
				 const struct cv_msg *msg);
/* The connection is gone (after on_open only); cv_ws_send to it now
 * returns -ENOENT. Server thread. */
typedef void (*cv_ws_close_fn)(void *arg, uint64_t conn_id);
/*
 * An HTTP GET: path (e.g. "/dev/token") and query (url-decoded arguments
 * joined by '&', "" when none) are borrowed. Set *status (0: not mine,
 * fall through to static files / 404), *ctype (static string) and *body
 * (malloc'd, taken by the server) with *body_len. Return 0, or a negative
 * errno to answer 500. Server thread.
 */
typedef int (*cv_ws_http_fn)(void *arg, const char *path, const char *query,
			     int *status, const char **ctype, char **body,
			     size_t *body_len);

/*
 * POST routes (client vhost): a POST to cfg.post_path whose body has a
 * Content-Length of at most cfg.post_max_bytes (else 411 / 413, never
 * delivered). The values of the request headers named in
 * cfg.post_headers (lower case, no colon; at most CV_WS_POST_MAX_HEADERS,
 * each value at most CV_WS_POST_HEADER_MAX bytes, longer ones count as
 * absent) come with it. Any other POST is 405.
 */
#define CV_WS_POST_MAX_HEADERS 4
#define CV_WS_POST_HEADER_MAX  4608

struct cv_ws_post {
	uint64_t id;	     /* names the request in cv_ws_post_reply */
	const uint8_t *body; /* borrowed for the call */
	size_t len;
	/* Value of cfg.post_headers[i] (borrowed for the call); NULL when
	 * the request did not carry it. */
	const char *headers[CV_WS_POST_MAX_HEADERS];
};

/*
 * A POST arrived whole. Return 0 when the answer will be given later with
 * cv_ws_post_reply(req->id, ...) (from any thread, exactly once), or an
 * HTTP status (400..599) to answer now with an empty body. Server thread;
 * must not block.
 */
typedef int (*cv_ws_post_fn)(void *arg, const struct cv_ws_post *req);

/* One extra response header: name without colon ("Conclave-Status"). */
struct cv_ws_header {
	const char *name;
	const char *value;
};

struct cv_ws_config {
	const char *address;  /* NULL: all interfaces */
	uint16_t port;	      /* 0: ephemeral, see cv_ws_server_port */
	const char *web_root; /* NULL: no static files */
	bool admin_enabled;
	const char *admin_address; /* NULL: "127.0.0.1" */
	uint16_t admin_port;	   /* 0: ephemeral */
	const char *admin_token;   /* NULL or "": loopback only */
	struct cv_ws_limits limits;
	cv_ws_open_fn on_open; /* each callback may be NULL */
	cv_ws_message_fn on_message;
	cv_ws_close_fn on_close;
	cv_ws_http_fn http;	  /* client vhost extra routes */
	cv_ws_http_fn admin_http; /* admin vhost routes */
	/* POST route: NULL path or on_post = none (every POST is 405). */
	const char *post_path;
	size_t post_max_bytes;				  /* 0: 8 KiB */
	const char *post_headers[CV_WS_POST_MAX_HEADERS]; /* NULL-padded */
	cv_ws_post_fn on_post;
	void *arg;
};

/* Counters since start; a snapshot of atomics. */
struct cv_ws_stats {
	uint64_t messages_in;	  /* valid messages delivered (+ pings) */
	uint64_t bad_message;	  /* refused by cv_msg_parse or binary */
	uint64_t too_big;	  /* closed 1009 */
	uint64_t rate_limited;	  /* dropped by the token bucket */
	uint64_t overflow_closed; /* closed 1008: output queue full */
	uint64_t connections_open;
	uint64_t connections_total;
	uint64_t messages_out; /* frames written */
};

/*
 * Creates the context, binds both vhosts and starts the server thread.
 * cfg and its strings are copied (the admin token only as a SHA-256
 * digest). Sets libwebsockets' process-wide log level to errors only.
 * Thread: any (not a server callback).
 * Errors: -EINVAL (empty admin token on a non-loopback admin address, bad
 * arguments), -EADDRINUSE or -EIO (lws could not bind / start), -ENOMEM.
 * *out is written only on success.
 */
int cv_ws_server_start(struct cv_ws_server **out,
		       const struct cv_ws_config *cfg);

/*
 * Stops the thread (open connections are closed, on_close runs for each
 * on the server thread), joins it and frees srv. NULL is ok. Thread: any
 * but the server thread.
 */
void cv_ws_server_stop(struct cv_ws_server *srv);

/* Bound ports (useful with port 0). Thread: any. */
uint16_t cv_ws_server_port(const struct cv_ws_server *srv);
uint16_t cv_ws_server_admin_port(const struct cv_ws_server *srv);

/*
 * Queues json (borrowed, NUL-terminated, copied) as one text frame to
 * conn_id. Thread: any. Errors: -ENOENT (no such connection, or it is
 * closing; the message is dropped), -ENOBUFS (the output queue overflowed:
 * the connection is being closed 1008), -ENOMEM.
 */
int cv_ws_send(struct cv_ws_server *srv, uint64_t conn_id, const char *json);

/*
 * Closes conn_id with the WebSocket status code (1000, 1008, ...) after
 * what is already queued is written. Thread: any. Errors: -ENOENT.
 */
int cv_ws_close(struct cv_ws_server *srv, uint64_t conn_id, int code);

/*
 * Queues json to every open connection (e.g. the draining notice).
 * Returns how many connections it was queued to, or -ENOMEM. Thread: any.
 */
int cv_ws_broadcast_all(struct cv_ws_server *srv, const char *json);

/*
 * Answers the POST `id` (see cv_ws_post_fn) with status, the extra
 * headers hdrs[0..n_hdrs) and body[0..len) (all borrowed, copied;
 * Content-Type application/octet-stream). Thread: any. Errors: -ENOENT
 * (no such request: the client went away, or it was answered already),
 * -EINVAL (a header name or value with CR/LF), -ENOMEM.
 */
int cv_ws_post_reply(struct cv_ws_server *srv, uint64_t id, int status,
		     const struct cv_ws_header *hdrs, size_t n_hdrs,
		     const uint8_t *body, size_t len);

/* Fills *out with the counters. Thread: any. */
void cv_ws_server_stats(const struct cv_ws_server *srv,
			struct cv_ws_stats *out);

#endif
