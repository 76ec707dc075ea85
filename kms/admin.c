/*
 * The KMS admin API: accept, read one request head, answer, close. One
 * connection at a time on one thread: the API is for an operator on the
 * same host, and a slow client is cut off by the socket timeouts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/admin.h"
#include "kms/store.h"

#define IO_TIMEOUT_S	    2
#define AUDIT_LIMIT_DEFAULT 1000
#define AUDIT_LIMIT_MAX	    10000

struct cv_kms_admin {
	int listen_fd;
	int stop_pipe[2];
	uint16_t port;
	bool auth; /* a token is configured */
	uint8_t token_hash[SHA256_DIGEST_LENGTH];
	struct cv_kms_store *store;
	pthread_t thread;
};

/* ---- parser ------------------------------------------------------------ */

static bool tchar(uint8_t c)
{
	/* RFC 9110 section 5.6.2 token characters. */
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const uint8_t *find_crlf(const uint8_t *p, const uint8_t *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

static int copy_field(char *dst, size_t cap, const uint8_t *p, size_t len)
{
	if (len >= cap)
		return CV_ETOOBIG;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return 0;
}

/* RFC 9112 section 3: method SP request-target SP HTTP-version. */
static int parse_request_line(const uint8_t *p, const uint8_t *end,
			      struct cv_kms_http_req *out)
{
	const uint8_t *sp1 = memchr(p, ' ', (size_t)(end - p));
	if (!sp1 || sp1 == p)
		return CV_EPARSE;
	for (const uint8_t *q = p; q < sp1; q++)
		if (!tchar(*q))
			return CV_EPARSE;
	int err = copy_field(out->method, sizeof(out->method), p,
			     (size_t)(sp1 - p));
	if (err)
		return err;
	const uint8_t *t = sp1 + 1;
	const uint8_t *sp2 = memchr(t, ' ', (size_t)(end - t));
	if (!sp2 || sp2 == t || *t != '/')
		return CV_EPARSE;
	for (const uint8_t *q = t; q < sp2; q++)
		if (*q <= 0x20 || *q >= 0x7f)
			return CV_EPARSE;
	const uint8_t *qm = memchr(t, '?', (size_t)(sp2 - t));
	const uint8_t *path_end = qm ? qm : sp2;
	if ((err = copy_field(out->path, sizeof(out->path), t,
			      (size_t)(path_end - t))))
		return err;
	if (qm && (err = copy_field(out->query, sizeof(out->query), qm + 1,
				    (size_t)(sp2 - qm - 1))))
		return err;
	size_t vlen = (size_t)(end - sp2 - 1);
	if (vlen != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
			  memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return CV_EPARSE;
	return 0;
}

/* RFC 9112 section 5: field-name ":" OWS field-value OWS; no obs-fold. */
static int parse_header(const uint8_t *p, const uint8_t *end,
			struct cv_kms_http_req *out)
{
	const uint8_t *colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || colon == p)
		return CV_EPARSE;
	for (const uint8_t *q = p; q < colon; q++)
		if (!tchar(*q))
			return CV_EPARSE;
	const uint8_t *v = colon + 1, *ve = end;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const uint8_t *q = v; q < ve; q++)
		if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
			return CV_EPARSE;
	static const char auth[] = "authorization";
	if ((size_t)(colon - p) == sizeof(auth) - 1 &&
	    strncasecmp((const char *)p, auth, sizeof(auth) - 1) == 0) {
		if (out->auth[0])
			return CV_EPARSE; /* twice: ambiguous */
		return copy_field(out->auth, sizeof(out->auth), v,
				  (size_t)(ve - v));
	}
	return 0;
}

int cv_kms_http_parse(const uint8_t *buf, size_t len,
		      struct cv_kms_http_req *out)
{
	memset(out, 0, sizeof(*out));
	const uint8_t *end = buf + len, *head_end = NULL;
	for (const uint8_t *p = buf; p + 3 < end; p++)
		if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' &&
		    p[3] == '\n') {
			head_end = p + 2; /* keep the last header's CRLF */
			break;
		}
	if (!head_end)
		return len >= CV_KMS_HTTP_HEAD_MAX ? CV_ETOOBIG : -EAGAIN;
	if ((size_t)(head_end - buf) > CV_KMS_HTTP_HEAD_MAX)
		return CV_ETOOBIG;
	const uint8_t *eol = find_crlf(buf, head_end);
	if (!eol)
		return CV_EPARSE;
	int err = parse_request_line(buf, eol, out);
	for (const uint8_t *p = eol + 2; !err && p < head_end; p = eol + 2) {
		eol = find_crlf(p, head_end);
		if (!eol)
			return CV_EPARSE;
		err = parse_header(p, eol, out);
	}
	return err;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cv_kms_query_param(const char *query, const char *name, char *out,
		       size_t cap)
{
	size_t nlen = strlen(name);
	const char *p = query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		if ((size_t)(end - p) > nlen && p[nlen] == '=' &&
		    memcmp(p, name, nlen) == 0) {
			size_t n = 0;
			for (const char *c = p + nlen + 1; c < end; c++) {
				int ch = (unsigned char)*c;
				if (ch == '+') {
					ch = ' ';
				} else if (ch == '%') {
					if (end - c < 3)
						return CV_EPARSE;
					int hi = unhex(c[1]), lo = unhex(c[2]);
					if (hi < 0 || lo < 0)
						return CV_EPARSE;
					ch = hi << 4 | lo;
					c += 2;
				}
				if (ch == 0)
					return CV_EPARSE;
				if (n + 1 >= cap)
					return CV_ETOOBIG;
				out[n++] = (char)ch;
			}
			if (cap == 0)
				return CV_ETOOBIG;
			out[n] = '\0';
			return 0;
		}
		p = amp ? amp + 1 : NULL;
	}
	return -ENOENT;
}

/* ---- server ------------------------------------------------------------ */

static void send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void respond(int fd, int status, const char *type, const char *body)
{
	const char *reason = status == 200   ? "OK"
			     : status == 400 ? "Bad Request"
			     : status == 401 ? "Unauthorized"
			     : status == 403 ? "Forbidden"
			     : status == 404 ? "Not Found"
			     : status == 405 ? "Method Not Allowed"
			     : status == 431 ? "Request Header Fields Too Large"
			     : status == 503 ? "Service Unavailable"
					     : "Internal Server Error";
	char head[256];
	size_t blen = strlen(body);
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
			 "Connection: close\r\n%s\r\n",
			 status, reason, type, blen,
			 status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
	send_all(fd, head, (size_t)n);
	send_all(fd, body, blen);
}

/* RFC 6750 section 2.1: "Authorization: Bearer <token>"; the scheme is
 * case-insensitive (RFC 9110 section 11.1). */
static bool authorized(struct cv_kms_admin *a, const char *auth)
{
	if (strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)tok, strlen(tok), d);
	return CRYPTO_memcmp(d, a->token_hash, sizeof(d)) == 0;
}

static int add_row(void *arg, const struct cv_kms_audit_row *r)
{
	json_t *rows = arg;
	json_t *o = json_pack(
		"{s:I, s:I, s:s, s:s, s:s, s:s, s:b, s:s}", "id",
		(json_int_t)r->id, "time_ms", (json_int_t)r->time_ms, "actor",
		r->actor, "action", r->action, "room", r->room, "object",
		r->object, "granted", r->granted, "reason", r->reason);
	if (!o || json_array_append_new(rows, o))
		return -ENOMEM;
	return 0;
}

static int u64_param(const char *query, const char *name, uint64_t *out)
{
	char v[24];
	int err = cv_kms_query_param(query, name, v, sizeof(v));
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	char *end = NULL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!v[0] || *end || errno || v[0] == '-' || n > INT64_MAX)
		return CV_EPARSE;
	*out = n;
	return 0;
}

static void serve_audit(struct cv_kms_admin *a, int fd,
			const struct cv_kms_http_req *req)
{
	if (!a->auth) {
		respond(fd, 403, "text/plain", "no admin token configured\n");
		return;
	}
	if (!authorized(a, req->auth)) {
		respond(fd, 401, "text/plain", "unauthorized\n");
		return;
	}
	char room[CV_KMS_URI_MAX + 1] = "";
	uint64_t since = 0, after = 0, limit = AUDIT_LIMIT_DEFAULT;
	int err = cv_kms_query_param(req->query, "room", room, sizeof(room));
	if (err == -ENOENT)
		err = 0;
	if (!err)
		err = u64_param(req->query, "since", &since);
	if (!err)
		err = u64_param(req->query, "after", &after);
	if (!err)
		err = u64_param(req->query, "limit", &limit);
	if (err || limit == 0 || limit > AUDIT_LIMIT_MAX) {
		respond(fd, 400, "text/plain", "bad query\n");
		return;
	}
	struct cv_kms_audit_filter f = {
		.room = room,
		.since_ms = since,
		.after_id = (int64_t)after,
		.limit = (size_t)limit,
	};
	json_t *rows = json_array();
	err = rows ? cv_kms_store_list_audit(a->store, &f, add_row, rows)
		   : -ENOMEM;
	char *text = NULL;
	if (!err) {
		json_t *doc = json_pack("{s:O}", "rows", rows);
		text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		json_decref(doc);
	}
	json_decref(rows);
	if (text)
		respond(fd, 200, "application/json", text);
	else
		respond(fd, 503, "text/plain", "store unavailable\n");
	free(text);
}

static void serve(struct cv_kms_admin *a, int fd)
{
	uint8_t buf[CV_KMS_HTTP_HEAD_MAX];
	size_t len = 0;
	struct cv_kms_http_req req;
	int err = -EAGAIN;
	while (err == -EAGAIN && len < sizeof(buf)) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		err = cv_kms_http_parse(buf, len, &req);
	}
	if (err == -EAGAIN)
		err = CV_ETOOBIG;
	if (err) {
		respond(fd, err == CV_ETOOBIG ? 431 : 400, "text/plain",
			"bad request\n");
		goto out;
	}
	if (strcmp(req.method, "GET") != 0) {
		respond(fd, 405, "text/plain", "only GET\n");
	} else if (strcmp(req.path, "/healthz") == 0) {
		bool ok = cv_kms_store_ping(a->store) == 0;
		respond(fd, ok ? 200 : 503, "text/plain",
			ok ? "ok\n" : "database unavailable\n");
	} else if (strcmp(req.path, "/audit") == 0) {
		serve_audit(a, fd, &req);
	} else {
		respond(fd, 404, "text/plain", "not found\n");
	}
out:
	/* The head may hold the bearer token. */
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(&req, sizeof(req));
}

static void serve_conn(void *arg, int fd)
{
	serve(arg, fd);
}

static void *admin_thread(void *arg)
{
	struct cv_kms_admin *a = arg;

	cv_kms_accept_loop(a->listen_fd, a->stop_pipe[0], serve_conn, a);
	return NULL;
}

void cv_kms_accept_loop(int listen_fd, int stop_fd,
			void (*serve_fn)(void *arg, int fd), void *arg)
{
	struct pollfd pfd[2] = {
		{.fd = listen_fd, .events = POLLIN},
		{.fd = stop_fd, .events = POLLIN},
	};
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pfd[1].revents)
			return;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve_fn(arg, fd);
		close(fd);
	}
}

int cv_kms_tcp_listen(const char *address, uint16_t port, bool loopback_only,
		      int *fd_out, uint16_t *port_out)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
		if (loopback_only && (ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return -EINVAL;
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		sl = sizeof(*in4);
	} else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
		if (loopback_only && !IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		sl = sizeof(*in6);
	} else {
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*port_out =
		ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
	*fd_out = fd;
	return 0;
}

int cv_kms_admin_start(struct cv_kms_admin **out,
		       const struct cv_kms_admin_opts *o)
{
	if (!o || !o->address || !o->store)
		return -EINVAL;
	struct cv_kms_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->store = o->store;
	const char *tok = o->token ? o->token : "";
	a->auth = tok[0] != '\0';
	SHA256((const uint8_t *)tok, strlen(tok), a->token_hash);
	a->stop_pipe[0] = a->stop_pipe[1] = -1;
	int err = cv_kms_tcp_listen(o->address, o->port, true, &a->listen_fd,
				    &a->port);
	if (err) {
		free(a);
		return err;
	}
	if (pipe2(a->stop_pipe, O_CLOEXEC) != 0) {
		err = -errno;
		goto fail;
	}
	err = -pthread_create(&a->thread, NULL, admin_thread, a);
	if (err)
		goto fail;
	*out = a;
	return 0;
fail:
	if (a->stop_pipe[0] >= 0) {
		close(a->stop_pipe[0]);
		close(a->stop_pipe[1]);
	}
	close(a->listen_fd);
	free(a);
	return err;
}

uint16_t cv_kms_admin_port(const struct cv_kms_admin *a)
{
	return a->port;
}

void cv_kms_admin_stop(struct cv_kms_admin *a)
{
	if (!a)
		return;
	ssize_t n = write(a->stop_pipe[1], "x", 1);
	(void)n;
	pthread_join(a->thread, NULL);
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
	close(a->listen_fd);
	OPENSSL_cleanse(a->token_hash, sizeof(a->token_hash));
	free(a);
}
