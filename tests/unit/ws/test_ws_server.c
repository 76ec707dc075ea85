/*
 * The signaling server on loopback, driven by a minimal raw-socket
 * WebSocket client (RFC 6455: HTTP upgrade, masked client frames).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conclave/msg.h"
#include "conclave/ws_server.h"
#include "cv_test.h"

#define ADMIN_TOKEN "s3cret-admin"

/* ---- what the node side saw (written on the server thread) ---- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int opens, closes, msgs;
	uint64_t last_open, last_close;
	enum cv_msg_type last_type;
	char last_str[128];
	char path[128], query[256];
} rec = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_open(void *arg, uint64_t id)
{
	(void)arg;
	pthread_mutex_lock(&rec.mu);
	rec.opens++;
	rec.last_open = id;
	pthread_cond_broadcast(&rec.cv);
	pthread_mutex_unlock(&rec.mu);
}

static void on_close(void *arg, uint64_t id)
{
	(void)arg;
	pthread_mutex_lock(&rec.mu);
	rec.closes++;
	rec.last_close = id;
	pthread_cond_broadcast(&rec.cv);
	pthread_mutex_unlock(&rec.mu);
}

static void on_message(void *arg, uint64_t id, const struct cv_msg *m)
{
	(void)arg;
	(void)id;
	pthread_mutex_lock(&rec.mu);
	rec.msgs++;
	rec.last_type = m->type;
	rec.last_str[0] = '\0';
	if (m->type == CV_MSG_JOIN)
		snprintf(rec.last_str, sizeof(rec.last_str), "%s",
			 m->join.room);
	else if (m->type == CV_MSG_UNPUBLISH)
		snprintf(rec.last_str, sizeof(rec.last_str), "%s",
			 m->unpublish.mid);
	pthread_cond_broadcast(&rec.cv);
	pthread_mutex_unlock(&rec.mu);
}

static int http_cb(void *arg, const char *path, const char *query, int *status,
		   const char **ctype, char **body, size_t *len)
{
	(void)arg;
	if (strcmp(path, "/dev/token"))
		return 0;
	pthread_mutex_lock(&rec.mu);
	snprintf(rec.path, sizeof(rec.path), "%s", path);
	snprintf(rec.query, sizeof(rec.query), "%s", query);
	pthread_mutex_unlock(&rec.mu);
	*status = 200;
	*ctype = "application/json";
	*body = strdup("{\"token\":\"x\"}");
	*len = strlen(*body);
	return 0;
}

static int admin_cb(void *arg, const char *path, const char *query, int *status,
		    const char **ctype, char **body, size_t *len)
{
	(void)arg;
	(void)query;
	if (strcmp(path, "/healthz"))
		return 0;
	*status = 200;
	*ctype = "text/plain";
	*body = strdup("ok\n");
	*len = 3;
	return 0;
}

/* ---- POST route: answers from another thread, as the node relay does ---- */

static struct cv_ws_server *post_srv;
static struct {
	int posts;
	char body[64];
	char hdr0[5000], hdr1[64];
	bool hdr1_absent;
} prec;

static void *post_answer_thread(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	struct cv_ws_header h[] = {{"Conclave-Status", "ok"}};
	cv_ws_post_reply(post_srv, id, 201, h, 1, (const uint8_t *)"answer", 6);
	/* Exactly once: a second answer has nowhere to go. */
	CV_CHECK_INT(cv_ws_post_reply(post_srv, id, 200, NULL, 0, NULL, 0),
		     -ENOENT);
	return NULL;
}

static int on_post(void *arg, const struct cv_ws_post *req)
{
	(void)arg;
	pthread_mutex_lock(&rec.mu);
	prec.posts++;
	snprintf(prec.body, sizeof(prec.body), "%.*s", (int)req->len,
		 (const char *)req->body);
	snprintf(prec.hdr0, sizeof(prec.hdr0), "%s",
		 req->headers[0] ? req->headers[0] : "");
	prec.hdr1_absent = req->headers[1] == NULL;
	pthread_cond_broadcast(&rec.cv);
	pthread_mutex_unlock(&rec.mu);
	if (req->len == 3 && !memcmp(req->body, "now", 3))
		return 503;
	pthread_t t;
	if (pthread_create(&t, NULL, post_answer_thread,
			   (void *)(uintptr_t)req->id))
		return 500;
	pthread_detach(t);
	return 0;
}

/* Waits until *counter reaches want (2 s). */
static bool wait_count(int *counter, int want)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&rec.mu);
	while (*counter < want &&
	       pthread_cond_timedwait(&rec.cv, &rec.mu, &ts) == 0)
		;
	bool ok = *counter >= want;
	pthread_mutex_unlock(&rec.mu);
	return ok;
}

static int get_count(int *counter)
{
	pthread_mutex_lock(&rec.mu);
	int v = *counter;
	pthread_mutex_unlock(&rec.mu);
	return v;
}

/* ---- minimal client ---- */

static int tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 3};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = recv(fd, c, n, 0);
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads the response head byte by byte into buf; returns status or -1. */
static int read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		if (recv(fd, buf + n, 1, 0) != 1)
			return -1;
		n++;
		buf[n] = '\0';
		if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4))
			return atoi(buf + 9);
	}
	return -1;
}

/* GET path; returns the status, fills body (NUL-terminated) and head. */
static int http_get(uint16_t port, const char *method, const char *path,
		    const char *extra, char *head, size_t head_cap, char *body,
		    size_t cap)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return -1;
	char req[1024];
	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: "
		 "close\r\n\r\n",
		 method, path, extra ? extra : "");
	send_all(fd, req, strlen(req));
	int status = read_head(fd, head, head_cap);
	body[0] = '\0';
	if (status > 0) {
		const char *cl = strcasestr(head, "content-length:");
		size_t want = cl ? (size_t)atol(cl + 15) : 0;
		if (want < cap && recv_all(fd, body, want) == 0)
			body[want] = '\0';
	}
	close(fd);
	return status;
}

static int ws_connect(uint16_t port, const char *path, const char *proto,
		      char *head, size_t head_cap)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return -1;
	char req[1024], ph[128] = "";
	if (proto)
		snprintf(ph, sizeof(ph), "Sec-WebSocket-Protocol: %s\r\n",
			 proto);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n%s\r\n",
		 path, ph);
	send_all(fd, req, strlen(req));
	if (read_head(fd, head, head_cap) != 101) {
		close(fd);
		return -1;
	}
	return fd;
}

/* RFC 6455 section 5.2/5.3: client frames are masked. */
static int ws_send_frame(int fd, int opcode, bool fin, const void *data,
			 size_t len)
{
	uint8_t h[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
	size_t hl = 2;
	h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		h[1] = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, mask, 4);
	hl += 4;
	uint8_t *buf = malloc(hl + len);
	memcpy(buf, h, hl);
	for (size_t i = 0; i < len; i++)
		buf[hl + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
	int rc = send_all(fd, buf, hl + len);
	free(buf);
	return rc;
}

static int ws_send_text(int fd, const char *s)
{
	return ws_send_frame(fd, 1, true, s, strlen(s));
}

/* Reads one server frame (unmasked); returns its length, -1 on error. */
static long ws_recv(int fd, int *opcode, char *buf, size_t cap)
{
	uint8_t h[8];
	if (recv_all(fd, h, 2))
		return -1;
	*opcode = h[0] & 0x0f;
	uint64_t len = h[1] & 0x7f;
	if (len == 126) {
		if (recv_all(fd, h, 2))
			return -1;
		len = (uint64_t)h[0] << 8 | h[1];
	} else if (len == 127) {
		if (recv_all(fd, h, 8))
			return -1;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[i];
	}
	if (len + 1 > cap || recv_all(fd, buf, len))
		return -1;
	buf[len] = '\0';
	return (long)len;
}

/* Next text frame, skipping nothing; returns it in buf or NULL. */
static const char *ws_text(int fd, char *buf, size_t cap)
{
	int op;
	long n = ws_recv(fd, &op, buf, cap);
	return n >= 0 && op == 1 ? buf : NULL;
}

/* Reads until a close frame; returns its status code or -1. */
static int ws_close_code(int fd)
{
	char buf[4096];
	int op;
	for (int i = 0; i < 1000; i++) {
		long n = ws_recv(fd, &op, buf, sizeof(buf));
		if (n < 0)
			return -1;
		if (op == 8)
			return n >= 2 ? ((uint8_t)buf[0] << 8 | (uint8_t)buf[1])
				      : 0;
	}
	return -1;
}

/* ---- tests ---- */

struct sender {
	struct cv_ws_server *srv;
	uint64_t id;
	int rc, rc_gone;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	s->rc = cv_ws_send(s->srv, s->id, "{\"type\":\"ok\",\"id\":42}");
	s->rc_gone = cv_ws_send(s->srv, 999999, "{\"type\":\"ok\"}");
	return NULL;
}

static uint64_t open_ws(struct cv_ws_server *srv, int *fd)
{
	char head[1024];
	int before = get_count(&rec.opens);
	*fd = ws_connect(cv_ws_server_port(srv), "/ws", CV_WS_SUBPROTOCOL, head,
			 sizeof(head));
	CV_CHECK(*fd >= 0);
	CV_CHECK(strcasestr(head, "sec-websocket-protocol: conclave.v1"));
	CV_CHECK(wait_count(&rec.opens, before + 1));
	pthread_mutex_lock(&rec.mu);
	uint64_t id = rec.last_open;
	pthread_mutex_unlock(&rec.mu);
	return id;
}

static void test_messages(struct cv_ws_server *srv)
{
	char buf[4096];
	int fd;
	uint64_t id = open_ws(srv, &fd);
	CV_CHECK(id != 0);
	if (fd < 0)
		return;

	int msgs = get_count(&rec.msgs);
	ws_send_text(fd, "{\"type\":\"join\",\"id\":1,\"token\":\"t\","
			 "\"room\":\"lobby\"}");
	CV_CHECK(wait_count(&rec.msgs, msgs + 1));
	CV_CHECK_INT(rec.last_type, CV_MSG_JOIN);
	CV_CHECK_STR(rec.last_str, "lobby");

	ws_send_text(fd, "{");
	CV_CHECK_STR(ws_text(fd, buf, sizeof(buf)),
		     "{\"type\":\"error\",\"code\":\"bad_message\",\"message\":"
		     "\"invalid message\"}");
	ws_send_text(fd, "{\"type\":\"mute\",\"id\":8}");
	CV_CHECK(strstr(ws_text(fd, buf, sizeof(buf)) ?: "",
			"\"id\":8,\"code\":\"bad_message\""));
	ws_send_frame(fd, 2, true, "{\"type\":\"ping\"}", 15); /* binary */
	CV_CHECK(strstr(ws_text(fd, buf, sizeof(buf)) ?: "", "bad_message"));
	ws_send_text(fd, "{\"type\":\"ping\",\"id\":5}");
	CV_CHECK_STR(ws_text(fd, buf, sizeof(buf)),
		     "{\"type\":\"pong\",\"id\":5}");

	/* A message in two fragments is reassembled. */
	msgs = get_count(&rec.msgs);
	const char *a = "{\"type\":\"unpublish\",", *b = "\"mid\":\"m7\"}";
	ws_send_frame(fd, 1, false, a, strlen(a));
	ws_send_frame(fd, 0, true, b, strlen(b));
	CV_CHECK(wait_count(&rec.msgs, msgs + 1));
	CV_CHECK_INT(rec.last_type, CV_MSG_UNPUBLISH);
	CV_CHECK_STR(rec.last_str, "m7");

	/* cv_ws_send from another thread arrives; unknown id: -ENOENT. */
	struct sender s = {srv, id, 1, 1};
	pthread_t t;
	pthread_create(&t, NULL, send_thread, &s);
	pthread_join(t, NULL);
	CV_CHECK_INT(s.rc, 0);
	CV_CHECK_INT(s.rc_gone, -ENOENT);
	CV_CHECK_STR(ws_text(fd, buf, sizeof(buf)),
		     "{\"type\":\"ok\",\"id\":42}");
	CV_CHECK_INT(cv_ws_broadcast_all(srv, "{\"type\":\"draining\","
					      "\"deadline_ms\":1}"),
		     1);
	CV_CHECK(strstr(ws_text(fd, buf, sizeof(buf)) ?: "", "draining"));

	/* The client goes away: on_close, then sends fail. */
	int closes = get_count(&rec.closes);
	close(fd);
	CV_CHECK(wait_count(&rec.closes, closes + 1));
	CV_CHECK_INT(rec.last_close, id);
	CV_CHECK_INT(cv_ws_send(srv, id, "{}"), -ENOENT);
	CV_CHECK_INT(cv_ws_close(srv, id, 1000), -ENOENT);
}

static void test_leave_and_close(struct cv_ws_server *srv)
{
	int fd;
	int msgs = get_count(&rec.msgs);
	open_ws(srv, &fd);
	if (fd < 0)
		return;
	ws_send_text(fd, "{\"type\":\"leave\"}");
	CV_CHECK_INT(ws_close_code(fd), 1000);
	CV_CHECK(wait_count(&rec.msgs, msgs + 1));
	CV_CHECK_INT(rec.last_type, CV_MSG_LEAVE);
	close(fd);

	uint64_t id = open_ws(srv, &fd);
	if (fd < 0)
		return;
	CV_CHECK_INT(cv_ws_send(srv, id, "{\"type\":\"ok\"}"), 0);
	CV_CHECK_INT(cv_ws_close(srv, id, 4000), 0);
	char buf[256];
	CV_CHECK_STR(ws_text(fd, buf, sizeof(buf)), "{\"type\":\"ok\"}");
	CV_CHECK_INT(ws_close_code(fd), 4000);
	close(fd);
}

static void test_limits(struct cv_ws_server *srv)
{
	char buf[4096];
	struct cv_ws_stats st;
	int fd;

	/* Too big: error too_big, then close 1009. */
	open_ws(srv, &fd);
	if (fd >= 0) {
		size_t n = 70000;
		char *big = malloc(n);
		memset(big, ' ', n);
		memcpy(big, "{\"type\":\"ping\"}", 15);
		ws_send_frame(fd, 1, true, big, n);
		free(big);
		CV_CHECK_STR(ws_text(fd, buf, sizeof(buf)),
			     "{\"type\":\"error\",\"code\":\"too_big\","
			     "\"message\":\"message too big\"}");
		CV_CHECK_INT(ws_close_code(fd), 1009);
		close(fd);
	}
	/* Too big across fragments. */
	open_ws(srv, &fd);
	if (fd >= 0) {
		char *part = malloc(40000);
		memset(part, ' ', 40000);
		ws_send_frame(fd, 1, false, part, 40000);
		ws_send_frame(fd, 0, true, part, 40000);
		free(part);
		CV_CHECK(
			strstr(ws_text(fd, buf, sizeof(buf)) ?: "", "too_big"));
		CV_CHECK_INT(ws_close_code(fd), 1009);
		close(fd);
	}

	/* Rate: 150 pings at once exceed the burst of 100. */
	open_ws(srv, &fd);
	if (fd >= 0) {
		for (int i = 0; i < 150; i++)
			ws_send_text(fd, "{\"type\":\"ping\"}");
		int pongs = 0, limited = 0;
		for (int i = 0; i < 150; i++) {
			const char *r = ws_text(fd, buf, sizeof(buf));
			if (!r)
				break;
			if (strstr(r, "pong"))
				pongs++;
			else if (strstr(r, "rate_limited"))
				limited++;
		}
		CV_CHECK_INT(pongs + limited, 150);
		CV_CHECK(pongs >= 100 && pongs < 120);
		CV_CHECK(limited > 30);
		close(fd);
	}

	/* Output overflow: more than max_queued_bytes -> close 1008. */
	uint64_t id = open_ws(srv, &fd);
	if (fd >= 0) {
		size_t n = 70 * 1024;
		char *big = malloc(n + 1);
		memset(big, 'x', n);
		big[n] = '\0';
		CV_CHECK_INT(cv_ws_send(srv, id, big), -ENOBUFS);
		CV_CHECK_INT(cv_ws_send(srv, id, "{}"), -ENOENT);
		free(big);
		CV_CHECK_INT(ws_close_code(fd), 1008);
		close(fd);
	}

	cv_ws_server_stats(srv, &st);
	CV_CHECK_INT(st.too_big, 2);
	CV_CHECK(st.rate_limited > 30);
	CV_CHECK_INT(st.overflow_closed, 1);
	CV_CHECK(st.bad_message >= 3);
	CV_CHECK(st.messages_in >= 100);
	CV_CHECK(st.connections_total >= 6);
}

static void test_handshakes(struct cv_ws_server *srv)
{
	char head[1024];
	uint16_t port = cv_ws_server_port(srv);
	/* No subprotocol is accepted too. */
	int fd = ws_connect(port, "/ws", NULL, head, sizeof(head));
	CV_CHECK(fd >= 0);
	CV_CHECK(!strcasestr(head, "sec-websocket-protocol"));
	if (fd >= 0)
		close(fd);
	/* An unknown subprotocol is refused. */
	fd = ws_connect(port, "/ws", "chat", head, sizeof(head));
	CV_CHECK(fd < 0);
	if (fd >= 0)
		close(fd);
	/* No WebSocket on the admin vhost. */
	fd = ws_connect(cv_ws_server_admin_port(srv), "/ws", NULL, head,
			sizeof(head));
	CV_CHECK(fd < 0);
	if (fd >= 0)
		close(fd);
	/* Only /ws upgrades. */
	fd = ws_connect(port, "/other", CV_WS_SUBPROTOCOL, head, sizeof(head));
	CV_CHECK(fd < 0);
	if (fd >= 0)
		close(fd);
}

static void test_http(struct cv_ws_server *srv, const char *root)
{
	char head[2048], body[4096];
	uint16_t port = cv_ws_server_port(srv);

	CV_CHECK_INT(http_get(port, "GET", "/", NULL, head, sizeof(head), body,
			      sizeof(body)),
		     200);
	CV_CHECK(strcasestr(head, "content-type: text/html"));
	CV_CHECK_STR(body, "<html>hi</html>\n");
	CV_CHECK_INT(http_get(port, "GET", "/js/app.js", NULL, head,
			      sizeof(head), body, sizeof(body)),
		     200);
	CV_CHECK(strcasestr(head, "content-type: text/javascript"));
	CV_CHECK_STR(body, "let x = 1;\n");
	CV_CHECK_INT(http_get(port, "GET", "/style.css", NULL, head,
			      sizeof(head), body, sizeof(body)),
		     200);
	CV_CHECK(strcasestr(head, "content-type: text/css"));

	/* Traversal and things that are not served. */
	static const char *refused[] = {
		"/../secret.html",     "/js/../../secret.html",
		"/%2e%2e/secret.html", "/..%2fsecret.html",
		"/link.html",	       "/missing.html",
		"/notes.txt",	       "/js/",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int st = http_get(port, "GET", refused[i], NULL, head,
				  sizeof(head), body, sizeof(body));
		if (st == 200)
			fprintf(stderr, "served %s: %s\n", refused[i], body);
		CV_CHECK(st != 200);
		CV_CHECK(!strstr(body, "TOP SECRET"));
	}
	(void)root;

	/* Delegated route with its query. */
	CV_CHECK_INT(http_get(port, "GET", "/dev/token?room=r1&name=bob", NULL,
			      head, sizeof(head), body, sizeof(body)),
		     200);
	CV_CHECK(strcasestr(head, "content-type: application/json"));
	CV_CHECK_STR(body, "{\"token\":\"x\"}");
	pthread_mutex_lock(&rec.mu);
	CV_CHECK_STR(rec.path, "/dev/token");
	CV_CHECK_STR(rec.query, "room=r1&name=bob");
	pthread_mutex_unlock(&rec.mu);
	CV_CHECK_INT(http_get(port, "POST", "/dev/token", NULL, head,
			      sizeof(head), body, sizeof(body)),
		     405);
}

static void test_admin(struct cv_ws_server *srv)
{
	char head[2048], body[1024];
	uint16_t port = cv_ws_server_admin_port(srv);
	CV_CHECK(port != 0 && port != cv_ws_server_port(srv));
	CV_CHECK_INT(http_get(port, "GET", "/healthz", NULL, head, sizeof(head),
			      body, sizeof(body)),
		     401);
	CV_CHECK(strcasestr(head, "www-authenticate: Bearer"));
	CV_CHECK_INT(http_get(port, "GET", "/healthz",
			      "Authorization: Bearer wrong\r\n", head,
			      sizeof(head), body, sizeof(body)),
		     401);
	CV_CHECK_INT(http_get(port, "GET", "/healthz",
			      "Authorization: Basic " ADMIN_TOKEN "\r\n", head,
			      sizeof(head), body, sizeof(body)),
		     401);
	CV_CHECK_INT(http_get(port, "GET", "/healthz",
			      "Authorization: Bearer " ADMIN_TOKEN "\r\n", head,
			      sizeof(head), body, sizeof(body)),
		     200);
	CV_CHECK_STR(body, "ok\n");
	CV_CHECK_INT(http_get(port, "GET", "/nope",
			      "Authorization: bearer " ADMIN_TOKEN "\r\n", head,
			      sizeof(head), body, sizeof(body)),
		     404);
	/* The client vhost does not serve admin routes. */
	CV_CHECK_INT(http_get(cv_ws_server_port(srv), "GET", "/healthz",
			      "Authorization: Bearer " ADMIN_TOKEN "\r\n", head,
			      sizeof(head), body, sizeof(body)),
		     404);
}

static void test_config_errors(void)
{
	struct cv_ws_server *srv = NULL;
	struct cv_ws_config cfg = {.address = "127.0.0.1",
				   .admin_enabled = true,
				   .admin_address = "0.0.0.0"};
	CV_CHECK_INT(cv_ws_server_start(&srv, &cfg), -EINVAL);
	CV_CHECK(srv == NULL);
	cfg.admin_address = "127.0.0.1";
	cfg.web_root = "/nonexistent/conclave";
	CV_CHECK(cv_ws_server_start(&srv, &cfg) < 0);
	/* Loopback admin with an empty token needs no header. */
	cfg.web_root = NULL;
	cfg.admin_http = admin_cb;
	CV_CHECK_INT(cv_ws_server_start(&srv, &cfg), 0);
	if (srv) {
		char head[1024], body[64];
		CV_CHECK_INT(http_get(cv_ws_server_admin_port(srv), "GET",
				      "/healthz", NULL, head, sizeof(head),
				      body, sizeof(body)),
			     200);
		cv_ws_server_stop(srv);
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* POST path with a body; returns the status, fills head and body. */
static int http_post(uint16_t port, const char *path, const char *extra,
		     const char *data, size_t len, char *head, size_t head_cap,
		     char *body, size_t cap)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return -1;
	char req[8192];
	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: "
		 "%zu\r\nConnection: close\r\n\r\n",
		 path, extra ? extra : "", len);
	send_all(fd, req, strlen(req));
	send_all(fd, data, len);
	int status = read_head(fd, head, head_cap);
	body[0] = '\0';
	if (status > 0) {
		const char *cl = strcasestr(head, "content-length:");
		size_t want = cl ? (size_t)atol(cl + 15) : 0;
		if (want < cap && recv_all(fd, body, want) == 0)
			body[want] = '\0';
	}
	close(fd);
	return status;
}

static void test_post(struct cv_ws_server *srv)
{
	char head[2048], body[256];
	uint16_t port = cv_ws_server_port(srv);
	post_srv = srv;
	/* A big header value (a 4 KiB token) comes through whole. */
	char big[4200], extra[4400];
	memset(big, 'T', 4096);
	big[4096] = '\0';
	snprintf(extra, sizeof(extra), "Conclave-Core: %s\r\n", big);
	int n = get_count(&prec.posts);
	CV_CHECK_INT(http_post(port, "/v1/channel", extra, "hello", 5, head,
			       sizeof(head), body, sizeof(body)),
		     201);
	CV_CHECK_STR(body, "answer");
	CV_CHECK(strcasestr(head, "conclave-status: ok\r\n") != NULL);
	CV_CHECK(strcasestr(head, "application/octet-stream") != NULL);
	CV_CHECK(wait_count(&prec.posts, n + 1));
	CV_CHECK_STR(prec.body, "hello");
	CV_CHECK_INT(strlen(prec.hdr0), 4096);
	CV_CHECK(prec.hdr1_absent);
	/* Answered at once with a status. */
	CV_CHECK_INT(http_post(port, "/v1/channel", NULL, "now", 3, head,
			       sizeof(head), body, sizeof(body)),
		     503);
	CV_CHECK(wait_count(&prec.posts, n + 2));
	/* Over the ceiling, another path, no length: never delivered. */
	char large[9000];
	memset(large, 'x', sizeof(large));
	CV_CHECK_INT(http_post(port, "/v1/channel", NULL, large, sizeof(large),
			       head, sizeof(head), body, sizeof(body)),
		     413);
	CV_CHECK_INT(http_post(port, "/v1/other", NULL, "x", 1, head,
			       sizeof(head), body, sizeof(body)),
		     405);
	CV_CHECK_INT(get_count(&prec.posts), n + 2);
	/* An unknown answer id. */
	CV_CHECK_INT(cv_ws_post_reply(srv, 999999, 200, NULL, 0, NULL, 0),
		     -ENOENT);
	struct cv_ws_header bad[] = {{"X", "a\r\nInjected: 1"}};
	CV_CHECK_INT(cv_ws_post_reply(srv, 1, 200, bad, 1, NULL, 0), -EINVAL);
}

int main(void)
{
	char dir[] = "/tmp/cv-ws-test-XXXXXX", p[1024], root[256];
	if (!mkdtemp(dir))
		return 1;
	snprintf(root, sizeof(root), "%s/web", dir);
	mkdir(root, 0700);
	snprintf(p, sizeof(p), "%s/js", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/index.html", root);
	write_file(p, "<html>hi</html>\n");
	snprintf(p, sizeof(p), "%s/js/app.js", root);
	write_file(p, "let x = 1;\n");
	snprintf(p, sizeof(p), "%s/style.css", root);
	write_file(p, "body{}\n");
	snprintf(p, sizeof(p), "%s/notes.txt", root);
	write_file(p, "TOP SECRET txt\n");
	snprintf(p, sizeof(p), "%s/secret.html", dir);
	write_file(p, "TOP SECRET\n");
	char link[1024];
	snprintf(link, sizeof(link), "%s/link.html", root);
	CV_CHECK(symlink(p, link) == 0);

	struct cv_ws_config cfg = {
		.address = "127.0.0.1",
		.port = 0,
		.web_root = root,
		.admin_enabled = true,
		.admin_address = "127.0.0.1",
		.admin_token = ADMIN_TOKEN,
		.limits = {.max_queued_bytes = 64 * 1024},
		.on_open = on_open,
		.on_message = on_message,
		.on_close = on_close,
		.http = http_cb,
		.admin_http = admin_cb,
		.post_path = "/v1/channel",
		.post_headers = {"Conclave-Core", "conclave-op"},
		.on_post = on_post,
	};
	struct cv_ws_server *srv = NULL;
	CV_CHECK_INT(cv_ws_server_start(&srv, &cfg), 0);
	if (!srv)
		return cv_test_done("test_ws_server");
	CV_CHECK(cv_ws_server_port(srv) != 0);

	test_messages(srv);
	test_leave_and_close(srv);
	test_limits(srv);
	test_handshakes(srv);
	test_http(srv, root);
	test_admin(srv);
	test_post(srv);

	/* Stop with a connection still open: on_close runs for it. */
	int fd;
	open_ws(srv, &fd);
	int closes = get_count(&rec.closes);
	cv_ws_server_stop(srv);
	CV_CHECK_INT(get_count(&rec.closes), closes + 1);
	if (fd >= 0)
		close(fd);

	test_config_errors();

	unlink(link);
	snprintf(p, sizeof(p), "%s/secret.html", dir);
	unlink(p);
	const char *files[] = {"index.html", "js/app.js", "style.css",
			       "notes.txt"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/js", root);
	rmdir(p);
	rmdir(root);
	rmdir(dir);
	return cv_test_done("test_ws_server");
}
