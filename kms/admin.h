/*
 * The KMS admin API: a small blocking HTTP/1.1 server on its own thread,
 * loopback only, one request per connection (Connection: close).
 *
 *   GET /healthz                       200 "ok" when the database answers,
 *                                      503 otherwise; no token needed.
 *   GET /audit?room=URI&since=MS&after=ID&limit=N
 *                                      the audit rows as JSON (oldest
 *                                      first); needs "Authorization:
 *                                      Bearer <admin.token>"; refused
 *                                      (403) when no token is configured.
 *
 * Tokens are compared as SHA-256 digests in constant time and never
 * logged.
 */
#ifndef CONCLAVE_KMS_ADMIN_H
#define CONCLAVE_KMS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_kms_store;
struct cv_kms_admin;

struct cv_kms_admin_opts {
	const char *address; /* loopback IPv4/IPv6 literal; borrowed */
	uint16_t port;	     /* 0 = any free port */
	const char *token;   /* "" or NULL = /audit refused; only its digest
				is kept */
	struct cv_kms_store *store; /* borrowed; must outlive the server */
};

/*
 * Binds, listens and starts the server thread. *out written on success.
 * Errors: -EINVAL (not a loopback address), -errno of bind/listen,
 * -ENOMEM. Thread: startup.
 */
int cv_kms_admin_start(struct cv_kms_admin **out,
		       const struct cv_kms_admin_opts *o);

/* The bound TCP port (the one picked when opts.port was 0). */
uint16_t cv_kms_admin_port(const struct cv_kms_admin *a);

/* Stops the thread (waits for the request in progress) and frees a.
 * NULL is fine. */
void cv_kms_admin_stop(struct cv_kms_admin *a);

/* ---- the request parser (exposed for tests) --------------------------- */

#define CV_KMS_HTTP_PATH_MAX  256
#define CV_KMS_HTTP_QUERY_MAX 1024
#define CV_KMS_HTTP_AUTH_MAX  512
/* Largest request head read (request line and headers). */
#define CV_KMS_HTTP_HEAD_MAX 8192

struct cv_kms_http_req {
	char method[8];
	char path[CV_KMS_HTTP_PATH_MAX];   /* without the query */
	char query[CV_KMS_HTTP_QUERY_MAX]; /* after '?', still encoded */
	char auth[CV_KMS_HTTP_AUTH_MAX];   /* Authorization value, "" none */
};

/*
 * Parses a request head (RFC 9112 sections 3 and 5) from buf[0..len).
 * Returns 0 when the head ended ("\r\n\r\n") and parsed, -EAGAIN when more
 * bytes are needed, CV_EPARSE on a malformed head, CV_ETOOBIG when a field
 * exceeds its buffer or len exceeds CV_KMS_HTTP_HEAD_MAX without the end.
 * *out is scratch on error. No allocation. Thread: any.
 */
int cv_kms_http_parse(const uint8_t *buf, size_t len,
		      struct cv_kms_http_req *out);

/*
 * Finds `name` in an encoded query string and writes its percent-decoded
 * value ('+' is a space) into out (cap bytes, NUL-terminated). Returns 0,
 * -ENOENT (absent), CV_EPARSE (bad escape or a NUL), CV_ETOOBIG.
 */
int cv_kms_query_param(const char *query, const char *name, char *out,
		       size_t cap);

/*
 * A listening TCP socket on address:port (numeric IPv4 or IPv6; port 0:
 * any), blocking, close-on-exec, backlog 16. loopback_only refuses other
 * addresses (-EINVAL). *port_out: the port bound. Returns 0 or -errno.
 */
int cv_kms_tcp_listen(const char *address, uint16_t port, bool loopback_only,
		      int *fd_out, uint16_t *port_out);

/*
 * The loop of a listener thread (admin API, client-KMS channel): accepts
 * connections on listen_fd one at a time, gives each a 2 s send/receive
 * timeout, hands it to serve(arg, fd) and closes it; returns when stop_fd
 * becomes readable or poll fails.
 */
void cv_kms_accept_loop(int listen_fd, int stop_fd,
			void (*serve)(void *arg, int fd), void *arg);

#endif
