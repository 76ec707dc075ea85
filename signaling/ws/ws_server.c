/*
 * The signaling server: a libwebsockets context serviced by one thread.
 *
 * Everything lws hands us (wsi pointers, per-session data) is touched only
 * on the server thread. Other threads reach a connection by conn_id
 * through `table`; `lock` guards the table, every connection's output
 * queue and close request, and the dirty list that tells the server
 * thread which connections want a writeable callback. lws_cancel_service()
 * wakes the thread, which walks the dirty list on
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED.
 */
#include "conclave/ws_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "conclave/err.h"
#include "conclave/msg.h"

#define TABLE_SIZE     256
#define RX_CHUNK       4096
#define HTTP_CHUNK     8192
#define QUERY_MAX      2048
#define AUTH_MAX       1024
#define DEF_MAX_MSG    (64 * 1024)
#define DEF_RATE       50
#define DEF_BURST      100
#define DEF_MAX_QUEUED (256 * 1024)
#define DEF_POST_MAX   8192
/* Request headers lws keeps per connection: a POST's Conclave-Core token
 * alone may be 4 KiB (CV_TOKEN_MAX_BYTES). */
#define HEADER_DATA_MAX 12288
#define CLOSE_TOO_BIG	1009 /* RFC 6455 section 7.4.1 */
#define CLOSE_POLICY	1008
#define CLOSE_NORMAL	1000

struct out_frame {
	struct out_frame *next;
	size_t len;
	unsigned char data[]; /* LWS_PRE headroom, then len bytes */
};

struct conn {
	uint64_t id;
	struct lws *wsi;
	struct conn *hnext; /* table chain; under lock */
	struct conn *dnext; /* dirty list; under lock */
	bool dirty;	    /* under lock */
	/* Output, under lock. */
	struct out_frame *head, *tail;
	size_t queued_bytes;
	int close_code; /* 0, or close after the queue drains */
	bool close_now; /* drop the queue and close */
	/* Input, server thread only. */
	char *rx;
	size_t rx_len, rx_cap;
	bool in_msg, rx_binary, reading_closed;
	double tokens;
	uint64_t last_refill_ns;
};

/*
 * One POST (cfg.post_path) from its first header to its answer. The server
 * thread owns it; `lock` guards its table link and the answer fields that
 * cv_ws_post_reply fills from other threads.
 */
struct post {
	uint64_t id;
	struct lws *wsi;
	struct pss *pss;
	struct post *hnext; /* posts table; under lock */
	struct post *rnext; /* answered, waiting for the server thread */
	bool in_table;	    /* under lock */
	/* Request, server thread only. */
	uint8_t *body;
	size_t len, max;
	bool too_big;
	char *headers[CV_WS_POST_MAX_HEADERS];
	/* Answer, under lock until taken by the server thread. */
	bool answered;
	int status;
	char *extra; /* "Name: value\r\n"... */
	uint8_t *resp;
	size_t resp_len;
};

/* Per-session data of both vhosts' protocols. */
struct pss {
	struct conn *conn; /* WebSocket connections */
	char *body;	   /* HTTP response body being written (owned) */
	size_t body_len, body_off;
	bool responding;
	struct post *post; /* a POST in progress (client vhost) */
};

struct cv_ws_server {
	struct cv_ws_config cfg; /* strings below are our copies */
	char *address, *admin_address, *web_root;
	uint8_t admin_hash[SHA256_DIGEST_LENGTH];
	bool admin_auth;
	struct lws_protocols client_protos[2], admin_protos[2];
	lws_retry_bo_t retry;
	struct lws_context *ctx;
	uint16_t port, admin_port;
	pthread_t thread;
	atomic_bool stop;

	pthread_mutex_t lock; /* guards table, dirty, queues, next_id,
				 ctx_dead */
	bool ctx_dead;	      /* the server thread is destroying ctx */
	struct conn *table[TABLE_SIZE];
	struct conn *dirty;
	uint64_t next_id;
	struct post *posts;    /* POSTs waiting for their answer */
	struct post *answered; /* answered, to write on the server thread */
	uint64_t next_post_id;
	char *post_path;
	char *post_headers[CV_WS_POST_MAX_HEADERS]; /* "name:" */

	atomic_uint_fast64_t n_in, n_bad, n_too_big, n_rate, n_overflow, n_open,
		n_total, n_out;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct cv_ws_server *server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* ---- connection table (caller holds lock) ---- */

static struct conn *find_locked(struct cv_ws_server *s, uint64_t id)
{
	struct conn *c = s->table[id % TABLE_SIZE];
	while (c && c->id != id)
		c = c->hnext;
	return c;
}

static void unlink_locked(struct cv_ws_server *s, struct conn *c)
{
	struct conn **pp = &s->table[c->id % TABLE_SIZE];
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	for (pp = &s->dirty; *pp; pp = &(*pp)->dnext) {
		if (*pp == c) {
			*pp = c->dnext;
			break;
		}
	}
	c->dirty = false;
}

static void free_queue_locked(struct conn *c)
{
	while (c->head) {
		struct out_frame *f = c->head;
		c->head = f->next;
		free(f);
	}
	c->tail = NULL;
	c->queued_bytes = 0;
}

static void mark_dirty_locked(struct cv_ws_server *s, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dnext = s->dirty;
	s->dirty = c;
}

/*
 * Appends a frame (takes f). docs/protocol.md "Limits": output queued
 * above max_queued_bytes closes the connection with 1008.
 */
static int enqueue_locked(struct cv_ws_server *s, struct conn *c,
			  struct out_frame *f)
{
	if (c->close_code || c->close_now) {
		free(f);
		return -ENOENT;
	}
	if (c->queued_bytes + f->len > s->cfg.limits.max_queued_bytes) {
		free(f);
		free_queue_locked(c);
		c->close_now = true;
		c->close_code = CLOSE_POLICY;
		atomic_fetch_add(&s->n_overflow, 1);
		return -ENOBUFS;
	}
	f->next = NULL;
	if (c->tail)
		c->tail->next = f;
	else
		c->head = f;
	c->tail = f;
	c->queued_bytes += f->len;
	return 0;
}

static struct out_frame *frame_new(const char *json, size_t len)
{
	struct out_frame *f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return NULL;
	f->next = NULL;
	f->len = len;
	memcpy(f->data + LWS_PRE, json, len);
	return f;
}

/*
 * Wakes the server thread. Under lock, so that the context cannot be
 * destroyed between the check and the call.
 */
static void wake_locked(struct cv_ws_server *s)
{
	if (!s->ctx_dead)
		lws_cancel_service(s->ctx);
}

/* ---- server-thread side of a connection ---- */

/* Queues json (taken, may be NULL on OOM) from the server thread. */
static void reply(struct cv_ws_server *s, struct conn *c, char *json)
{
	if (!json)
		return;
	struct out_frame *f = frame_new(json, strlen(json));
	free(json);
	if (!f)
		return;
	pthread_mutex_lock(&s->lock);
	enqueue_locked(s, c, f);
	pthread_mutex_unlock(&s->lock);
	lws_callback_on_writable(c->wsi);
}

/* Queues an error, then asks for a close once it is written. */
static void reply_and_close(struct cv_ws_server *s, struct conn *c, char *json,
			    int code)
{
	reply(s, c, json);
	pthread_mutex_lock(&s->lock);
	if (!c->close_code)
		c->close_code = code;
	pthread_mutex_unlock(&s->lock);
	c->reading_closed = true;
	lws_callback_on_writable(c->wsi);
}

/* Token bucket: rate_per_sec tokens a second, at most rate_burst. */
static bool rate_ok(struct cv_ws_server *s, struct conn *c)
{
	uint64_t now = now_ns();
	double add = (double)(now - c->last_refill_ns) / 1e9 *
		     s->cfg.limits.rate_per_sec;
	c->last_refill_ns = now;
	c->tokens += add;
	if (c->tokens > s->cfg.limits.rate_burst)
		c->tokens = s->cfg.limits.rate_burst;
	if (c->tokens < 1.0)
		return false;
	c->tokens -= 1.0;
	return true;
}

static void handle_message(struct cv_ws_server *s, struct conn *c)
{
	if (!rate_ok(s, c)) {
		atomic_fetch_add(&s->n_rate, 1);
		reply(s, c,
		      cv_msg_error(-1, "rate_limited",
				   "message rate exceeded"));
		return;
	}
	struct cv_msg m;
	const char *code = "bad_message";
	/* docs/protocol.md: every frame is one JSON object in a text frame. */
	if (c->rx_binary || cv_msg_parse(c->rx, c->rx_len, &m, &code) != 0) {
		atomic_fetch_add(&s->n_bad, 1);
		reply(s, c,
		      cv_msg_error(c->rx_binary ? -1 : m.id, code,
				   "invalid message"));
		return;
	}
	atomic_fetch_add(&s->n_in, 1);
	if (m.type == CV_MSG_PING) {
		reply(s, c, cv_msg_pong(m.id));
	} else {
		if (s->cfg.on_message)
			s->cfg.on_message(s->cfg.arg, c->id, &m);
		if (m.type == CV_MSG_LEAVE)
			reply_and_close(s, c, NULL, CLOSE_NORMAL);
	}
	cv_msg_fini(&m);
}

static int rx_append(struct cv_ws_server *s, struct conn *c, const void *in,
		     size_t len)
{
	if (c->rx_len + len > c->rx_cap) {
		size_t cap = c->rx_cap ? c->rx_cap : RX_CHUNK;
		while (cap < c->rx_len + len)
			cap *= 2;
		if (cap > s->cfg.limits.max_message_bytes)
			cap = s->cfg.limits.max_message_bytes;
		char *p = realloc(c->rx, cap);
		if (!p)
			return -ENOMEM;
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	return 0;
}

static void handle_rx(struct cv_ws_server *s, struct conn *c, struct lws *wsi,
		      const void *in, size_t len)
{
	if (c->reading_closed)
		return;
	if (!c->in_msg) {
		c->in_msg = true;
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(wsi);
	}
	/* docs/protocol.md "Limits": a message (all its fragments) above
	 * max_message_bytes is refused with too_big and close 1009. The
	 * frame header already tells us when this frame will not fit. */
	size_t max = s->cfg.limits.max_message_bytes;
	size_t rest = lws_remaining_packet_payload(wsi);
	if (c->rx_len + len > max || rest > max - c->rx_len - len) {
		atomic_fetch_add(&s->n_too_big, 1);
		reply_and_close(s, c,
				cv_msg_error(-1, "too_big", "message too big"),
				CLOSE_TOO_BIG);
		return;
	}
	if (rx_append(s, c, in, len)) {
		reply_and_close(s, c, NULL, CLOSE_POLICY);
		return;
	}
	if (!lws_is_final_fragment(wsi))
		return;
	c->in_msg = false;
	handle_message(s, c);
	if (c->rx_cap > RX_CHUNK) { /* don't keep a big buffer per idle conn */
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
}

/* One frame per writeable callback, as lws requires. */
static int handle_writeable(struct cv_ws_server *s, struct conn *c,
			    struct lws *wsi)
{
	pthread_mutex_lock(&s->lock);
	int code = c->close_code;
	if (c->close_now) {
		pthread_mutex_unlock(&s->lock);
		lws_close_reason(wsi, (enum lws_close_status)code, NULL, 0);
		return -1;
	}
	struct out_frame *f = c->head;
	if (f) {
		c->head = f->next;
		if (!c->head)
			c->tail = NULL;
		c->queued_bytes -= f->len;
	}
	bool more = c->head != NULL;
	pthread_mutex_unlock(&s->lock);

	if (f) {
		int n = lws_write(wsi, f->data + LWS_PRE, f->len,
				  LWS_WRITE_TEXT);
		size_t flen = f->len;
		free(f);
		if (n < 0 || (size_t)n < flen)
			return -1;
		atomic_fetch_add(&s->n_out, 1);
		if (more || code)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (code) {
		lws_close_reason(wsi, (enum lws_close_status)code, NULL, 0);
		return -1;
	}
	return 0;
}

static void conn_established(struct cv_ws_server *s, struct pss *p,
			     struct lws *wsi)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->wsi = wsi;
	c->tokens = s->cfg.limits.rate_burst;
	c->last_refill_ns = now_ns();
	pthread_mutex_lock(&s->lock);
	c->id = ++s->next_id;
	c->hnext = s->table[c->id % TABLE_SIZE];
	s->table[c->id % TABLE_SIZE] = c;
	pthread_mutex_unlock(&s->lock);
	p->conn = c;
	atomic_fetch_add(&s->n_open, 1);
	atomic_fetch_add(&s->n_total, 1);
	if (s->cfg.on_open)
		s->cfg.on_open(s->cfg.arg, c->id);
}

static void conn_closed(struct cv_ws_server *s, struct pss *p)
{
	struct conn *c = p->conn;
	if (!c)
		return;
	p->conn = NULL;
	pthread_mutex_lock(&s->lock);
	unlink_locked(s, c);
	free_queue_locked(c);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_sub(&s->n_open, 1);
	if (s->cfg.on_close)
		s->cfg.on_close(s->cfg.arg, c->id);
	free(c->rx);
	free(c);
}

/* Other threads queued output or closes: ask lws for writeable callbacks. */
static void drain_dirty(struct cv_ws_server *s)
{
	pthread_mutex_lock(&s->lock);
	struct conn *c = s->dirty;
	s->dirty = NULL;
	while (c) {
		struct conn *next = c->dnext;
		c->dirty = false;
		c->dnext = NULL;
		lws_callback_on_writable(c->wsi);
		c = next;
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- HTTP ---- */

static int http_respond_extra(struct lws *wsi, struct pss *p, int status,
			      const char *ctype, char *body, size_t len,
			      bool unauthorized, const char *extra);

static int http_respond(struct lws *wsi, struct pss *p, int status,
			const char *ctype, char *body, size_t len,
			bool unauthorized)
{
	return http_respond_extra(wsi, p, status, ctype, body, len,
				  unauthorized, NULL);
}

/* Adds "Name: value\r\n" lines (already checked: no CR/LF inside). */
static int add_extra_headers(struct lws *wsi, const char *extra,
			     unsigned char **pos, unsigned char *end)
{
	char name[64];
	while (extra && *extra) {
		const char *colon = strchr(extra, ':');
		const char *eol = strstr(extra, "\r\n");
		if (!colon || !eol || colon > eol ||
		    (size_t)(colon - extra) + 2 > sizeof(name))
			return -1;
		size_t nl = (size_t)(colon - extra);
		memcpy(name, extra, nl);
		name[nl] = ':';
		name[nl + 1] = '\0';
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		if (lws_add_http_header_by_name(
			    wsi, (const unsigned char *)name,
			    (const unsigned char *)v, (int)(eol - v), pos, end))
			return -1;
		extra = eol + 2;
	}
	return 0;
}

static int http_respond_extra(struct lws *wsi, struct pss *p, int status,
			      const char *ctype, char *body, size_t len,
			      bool unauthorized, const char *extra)
{
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *pos = start;
	unsigned char *end = buf + sizeof(buf) - 1;
	static const char nosniff[] = "nosniff";
	static const char bearer[] = "Bearer";

	p->body = body;
	p->body_len = len;
	p->body_off = 0;
	p->responding = true;
	if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &pos,
					end) ||
	    lws_add_http_header_by_name(
		    wsi, (const unsigned char *)"x-content-type-options:",
		    (const unsigned char *)nosniff, sizeof(nosniff) - 1, &pos,
		    end) ||
	    (unauthorized &&
	     lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
					  (const unsigned char *)bearer,
					  sizeof(bearer) - 1, &pos, end)) ||
	    add_extra_headers(wsi, extra, &pos, end) ||
	    lws_finalize_write_http_header(wsi, start, &pos, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int http_error(struct lws *wsi, struct pss *p, int status,
		      const char *text)
{
	char *body = strdup(text);
	if (!body)
		return -1;
	return http_respond(wsi, p, status, "text/plain", body, strlen(body),
			    status == 401);
}

static int http_writeable(struct lws *wsi, struct pss *p)
{
	if (!p || !p->responding)
		return 0;
	unsigned char buf[LWS_PRE + HTTP_CHUNK];
	size_t n = p->body_len - p->body_off;
	if (n > HTTP_CHUNK)
		n = HTTP_CHUNK;
	bool final = p->body_off + n == p->body_len;
	if (n) {
		memcpy(buf + LWS_PRE, p->body + p->body_off, n);
		if (lws_write(wsi, buf + LWS_PRE, n,
			      final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
		    (int)n)
			return -1;
		p->body_off += n;
	}
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	free(p->body);
	p->body = NULL;
	p->responding = false;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* URI arguments, url-decoded by lws, joined with '&'. */
static void http_query(struct lws *wsi, char *q, size_t cap)
{
	size_t n = 0;
	q[0] = '\0';
	for (int i = 0; i < 32; i++) {
		char frag[512];
		int l = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
					      WSI_TOKEN_HTTP_URI_ARGS, i);
		if (l < 0)
			break;
		if (n + (size_t)l + 2 > cap)
			break;
		if (n)
			q[n++] = '&';
		memcpy(q + n, frag, (size_t)l);
		n += (size_t)l;
		q[n] = '\0';
	}
}

/* Asks a node handler; returns 1 if it declined, else 0 / -1 for lws. */
static int http_delegate(struct cv_ws_server *s, struct lws *wsi, struct pss *p,
			 cv_ws_http_fn fn, const char *path)
{
	char query[QUERY_MAX];
	int status = 0;
	const char *ctype = "text/plain";
	char *body = NULL;
	size_t len = 0;

	if (!fn)
		return 1;
	http_query(wsi, query, sizeof(query));
	if (fn(s->cfg.arg, path, query, &status, &ctype, &body, &len) < 0) {
		free(body);
		return http_error(wsi, p, 500, "internal error\n");
	}
	if (status == 0) {
		free(body);
		return 1;
	}
	if (!body) {
		len = 0;
		body = strdup("");
		if (!body)
			return -1;
	}
	return http_respond(wsi, p, status, ctype ? ctype : "text/plain", body,
			    len, false);
}

static const char *mime_of(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".json", "application/json"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".wasm", "application/wasm"},
	};
	const char *dot = strrchr(path, '.');
	if (!dot || strchr(dot, '/'))
		return NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcasecmp(dot, types[i].ext))
			return types[i].type;
	return NULL;
}

/*
 * Maps a URL path to a regular file below the web root or fails. Refuses
 * ".." segments outright, then checks the resolved path (symlinks
 * included) still lies below the resolved root.
 */
static int static_path(const struct cv_ws_server *s, const char *uri, char *out,
		       size_t cap)
{
	char joined[PATH_MAX];
	if (!s->web_root || uri[0] != '/' || strstr(uri, "..") ||
	    strchr(uri, '\\'))
		return -ENOENT;
	size_t ul = strlen(uri);
	int n = snprintf(joined, sizeof(joined), "%s%s%s", s->web_root, uri,
			 uri[ul - 1] == '/' ? "index.html" : "");
	if (n < 0 || (size_t)n >= sizeof(joined))
		return -ENOENT;
	char *real = realpath(joined, NULL);
	if (!real)
		return -ENOENT;
	size_t rl = strlen(s->web_root);
	struct stat st;
	int rc = -ENOENT;
	if (!strncmp(real, s->web_root, rl) && real[rl] == '/' &&
	    stat(real, &st) == 0 && S_ISREG(st.st_mode) && strlen(real) < cap) {
		strcpy(out, real);
		rc = 0;
	}
	free(real);
	return rc;
}

static bool is_get(struct lws *wsi)
{
	return lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
}

/* ---- POST route ---- */

static void post_free(struct post *po)
{
	if (!po)
		return;
	for (size_t i = 0; i < CV_WS_POST_MAX_HEADERS; i++) {
		if (po->headers[i])
			OPENSSL_cleanse(po->headers[i], strlen(po->headers[i]));
		free(po->headers[i]);
	}
	if (po->body)
		OPENSSL_cleanse(po->body, po->len);
	free(po->body);
	free(po->extra);
	free(po->resp);
	free(po);
}

/* Takes po out of the table and the answered list (caller holds lock). */
static void post_unlink_locked(struct cv_ws_server *s, struct post *po)
{
	for (struct post **pp = &s->posts; *pp; pp = &(*pp)->hnext)
		if (*pp == po) {
			*pp = po->hnext;
			break;
		}
	for (struct post **pp = &s->answered; *pp; pp = &(*pp)->rnext)
		if (*pp == po) {
			*pp = po->rnext;
			break;
		}
	po->in_table = false;
}

/* The Content-Length a POST announces; -1 when absent or malformed. */
static long post_content_length(struct lws *wsi)
{
	char v[24];
	int n = lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (n <= 0 || n > 9)
		return -1;
	long len = 0;
	for (int i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		len = len * 10 + (v[i] - '0');
	}
	return len;
}

/* LWS_CALLBACK_HTTP for a POST: checks it and starts reading the body. */
static int post_begin(struct cv_ws_server *s, struct lws *wsi, struct pss *p,
		      const char *uri)
{
	if (!s->post_path || strcmp(uri, s->post_path) != 0)
		return http_error(wsi, p, 405, "method not allowed\n");
	long clen = post_content_length(wsi);
	if (clen < 0)
		return http_error(wsi, p, 411, "length required\n");
	if ((size_t)clen > s->cfg.post_max_bytes)
		return http_error(wsi, p, 413, "content too large\n");
	struct post *po = calloc(1, sizeof(*po));
	if (!po || !(po->body = malloc(clen ? (size_t)clen : 1))) {
		free(po);
		return http_error(wsi, p, 500, "internal error\n");
	}
	po->max = (size_t)clen;
	po->wsi = wsi;
	po->pss = p;
	for (size_t i = 0; i < CV_WS_POST_MAX_HEADERS && s->post_headers[i];
	     i++) {
		const char *name = s->post_headers[i];
		int nl = (int)strlen(name);
		int vl = lws_hdr_custom_length(wsi, name, nl);
		if (vl <= 0 || vl > CV_WS_POST_HEADER_MAX)
			continue;
		po->headers[i] = malloc((size_t)vl + 1);
		if (po->headers[i] &&
		    lws_hdr_custom_copy(wsi, po->headers[i], vl + 1, name, nl) <
			    0) {
			free(po->headers[i]);
			po->headers[i] = NULL;
		}
	}
	p->post = po;
	if (clen == 0)
		return 1; /* no body callbacks will come: see post_complete */
	return 0;
}

static int post_body(struct pss *p, const void *in, size_t len)
{
	struct post *po = p ? p->post : NULL;
	if (!po)
		return 0;
	if (po->len + len > po->max) {
		po->too_big = true;
		return 0;
	}
	memcpy(po->body + po->len, in, len);
	po->len += len;
	return 0;
}

/* The whole body is in: hand it to the node (or refuse it). */
static int post_complete(struct cv_ws_server *s, struct lws *wsi, struct pss *p)
{
	struct post *po = p ? p->post : NULL;
	if (!po || po->id)
		return 0; /* none, or already handed over */
	if (po->too_big || po->len != po->max) {
		p->post = NULL;
		post_free(po);
		return http_error(wsi, p, 400, "bad request\n");
	}
	pthread_mutex_lock(&s->lock);
	po->id = ++s->next_post_id;
	po->hnext = s->posts;
	s->posts = po;
	po->in_table = true;
	pthread_mutex_unlock(&s->lock);
	struct cv_ws_post req = {
		.id = po->id, .body = po->body, .len = po->len};
	for (size_t i = 0; i < CV_WS_POST_MAX_HEADERS; i++)
		req.headers[i] = po->headers[i];
	int status = s->cfg.on_post(s->cfg.arg, &req);
	if (status == 0) {
		/* lws would time an idle connection out: the answer comes
		 * within the node's own deadline, well before this. */
		lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, 30);
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	post_unlink_locked(s, po);
	pthread_mutex_unlock(&s->lock);
	p->post = NULL;
	post_free(po);
	if (status < 400 || status > 599)
		status = 500;
	char *body = strdup("");
	return body ? http_respond(wsi, p, status, "text/plain", body, 0, false)
		    : -1;
}

/* Server thread, after a wake: writes the answers other threads gave. */
static void post_drain_answered(struct cv_ws_server *s)
{
	pthread_mutex_lock(&s->lock);
	struct post *list = s->answered;
	s->answered = NULL;
	for (struct post *po = list; po; po = po->rnext)
		post_unlink_locked(s, po);
	pthread_mutex_unlock(&s->lock);
	/* Taken out of the table: po->pss->post still points at each, and
	 * the connection is alive (a close unlinks under lock first). */
	while (list) {
		struct post *po = list;
		list = po->rnext;
		struct pss *p = po->pss;
		uint8_t *resp = po->resp;
		po->resp = NULL;
		p->post = NULL;
		if (http_respond_extra(po->wsi, p, po->status,
				       "application/octet-stream", (char *)resp,
				       po->resp_len, false, po->extra) != 0)
			lws_set_timeout(po->wsi,
					PENDING_TIMEOUT_KILLED_BY_PARENT,
					LWS_TO_KILL_ASYNC);
		post_free(po);
	}
}

/* The connection closed: the answer, if it comes, has nowhere to go. */
static void post_closed(struct cv_ws_server *s, struct pss *p)
{
	struct post *po = p ? p->post : NULL;
	if (!po)
		return;
	p->post = NULL;
	pthread_mutex_lock(&s->lock);
	post_unlink_locked(s, po);
	pthread_mutex_unlock(&s->lock);
	post_free(po);
}

static bool header_text_ok(const char *t)
{
	return t && !strpbrk(t, "\r\n");
}

int cv_ws_post_reply(struct cv_ws_server *s, uint64_t id, int status,
		     const struct cv_ws_header *hdrs, size_t n_hdrs,
		     const uint8_t *body, size_t len)
{
	size_t extra_len = 1;
	for (size_t i = 0; i < n_hdrs; i++) {
		if (!header_text_ok(hdrs[i].name) ||
		    !header_text_ok(hdrs[i].value) || !hdrs[i].name[0] ||
		    strchr(hdrs[i].name, ':'))
			return -EINVAL;
		extra_len += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
	}
	char *extra = malloc(extra_len);
	uint8_t *copy = malloc(len ? len : 1);
	if (!extra || !copy) {
		free(extra);
		free(copy);
		return -ENOMEM;
	}
	extra[0] = '\0';
	for (size_t i = 0; i < n_hdrs; i++) {
		strcat(extra, hdrs[i].name);
		strcat(extra, ": ");
		strcat(extra, hdrs[i].value);
		strcat(extra, "\r\n");
	}
	if (len)
		memcpy(copy, body, len);
	pthread_mutex_lock(&s->lock);
	struct post *po = s->posts;
	while (po && po->id != id)
		po = po->hnext;
	int rc = -ENOENT;
	if (po && !po->answered) {
		po->answered = true;
		po->status = status;
		po->extra = extra;
		po->resp = copy;
		po->resp_len = len;
		po->rnext = s->answered;
		s->answered = po;
		extra = NULL;
		copy = NULL;
		wake_locked(s);
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	free(extra);
	free(copy);
	return rc;
}

static int client_http(struct cv_ws_server *s, struct lws *wsi, struct pss *p,
		       const char *uri)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) {
		int rc = post_begin(s, wsi, p, uri);
		return rc == 1 ? post_complete(s, wsi, p) : rc;
	}
	if (!is_get(wsi))
		return http_error(wsi, p, 405, "method not allowed\n");
	int rc = http_delegate(s, wsi, p, s->cfg.http, uri);
	if (rc <= 0)
		return rc;
	char path[PATH_MAX];
	const char *mime;
	if (static_path(s, uri, path, sizeof(path)) || !(mime = mime_of(path)))
		return http_error(wsi, p, 404, "not found\n");
	int n = lws_serve_http_file(wsi, path, mime, NULL, 0);
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
}

/*
 * RFC 6750 section 2.1: "Authorization: Bearer <token>", scheme
 * case-insensitive (RFC 9110 section 11.1). Digests are compared so that
 * the comparison is constant-time and does not leak the token's length.
 */
static bool admin_authorized(struct cv_ws_server *s, struct lws *wsi)
{
	if (!s->admin_auth)
		return true;
	char h[AUTH_MAX];
	int n = lws_hdr_copy(wsi, h, sizeof(h), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n < 8 || strncasecmp(h, "Bearer ", 7))
		return false;
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)tok, strlen(tok), d);
	bool ok = CRYPTO_memcmp(d, s->admin_hash, sizeof(d)) == 0;
	OPENSSL_cleanse(h, sizeof(h));
	return ok;
}

static int admin_cb(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct cv_ws_server *s = server_of(wsi);
	struct pss *p = user;

	int rc;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 1; /* no WebSocket on the admin vhost */
	case LWS_CALLBACK_HTTP:
		if (!is_get(wsi))
			return http_error(wsi, p, 405, "method not allowed\n");
		if (!admin_authorized(s, wsi))
			return http_error(wsi, p, 401, "unauthorized\n");
		rc = http_delegate(s, wsi, p, s->cfg.admin_http, in);
		if (rc <= 0)
			return rc;
		return http_error(wsi, p, 404, "not found\n");
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, p);
	case LWS_CALLBACK_CLOSED_HTTP:
		/* lws may close a connection before its session data exists. */
		if (p) {
			free(p->body);
			p->body = NULL;
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* Only GET /ws upgrades; others are refused before the handshake. */
static int filter_ws(struct cv_ws_server *s, struct lws *wsi)
{
	char uri[16];
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
	    strcmp(uri, "/ws"))
		return 1;
	if (s->cfg.limits.max_connections &&
	    atomic_load(&s->n_open) >= s->cfg.limits.max_connections)
		return 1;
	return 0;
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct cv_ws_server *s = server_of(wsi);
	struct pss *p = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return filter_ws(s, wsi);
	case LWS_CALLBACK_ESTABLISHED:
		conn_established(s, p, wsi);
		return p->conn ? 0 : -1;
	case LWS_CALLBACK_RECEIVE:
		if (p->conn)
			handle_rx(s, p->conn, wsi, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return p->conn ? handle_writeable(s, p->conn, wsi) : 0;
	case LWS_CALLBACK_CLOSED:
		conn_closed(s, p);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		drain_dirty(s);
		post_drain_answered(s);
		return 0;
	case LWS_CALLBACK_HTTP:
		return client_http(s, wsi, p, in);
	case LWS_CALLBACK_HTTP_BODY:
		return post_body(p, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return post_complete(s, wsi, p);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, p);
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
		/* lws may close a connection before its session data exists. */
		if (p) {
			free(p->body);
			p->body = NULL;
			post_closed(s, p);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* ---- API ---- */

int cv_ws_send(struct cv_ws_server *s, uint64_t conn_id, const char *json)
{
	struct out_frame *f = frame_new(json, strlen(json));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	struct conn *c = find_locked(s, conn_id);
	int rc = -ENOENT;
	if (c) {
		rc = enqueue_locked(s, c, f);
		if (rc != -ENOENT) {
			mark_dirty_locked(s, c);
			wake_locked(s);
		}
	} else {
		free(f);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int cv_ws_close(struct cv_ws_server *s, uint64_t conn_id, int code)
{
	pthread_mutex_lock(&s->lock);
	struct conn *c = find_locked(s, conn_id);
	if (c) {
		if (!c->close_code)
			c->close_code = code;
		mark_dirty_locked(s, c);
		wake_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return c ? 0 : -ENOENT;
}

int cv_ws_broadcast_all(struct cv_ws_server *s, const char *json)
{
	size_t len = strlen(json);
	int count = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		for (struct conn *c = s->table[i]; c; c = c->hnext) {
			struct out_frame *f = frame_new(json, len);
			if (!f) {
				count = -ENOMEM;
				goto out;
			}
			if (enqueue_locked(s, c, f) != -ENOENT) {
				mark_dirty_locked(s, c);
				count++;
			}
		}
	}
out:
	wake_locked(s);
	pthread_mutex_unlock(&s->lock);
	return count;
}

void cv_ws_server_stats(const struct cv_ws_server *s, struct cv_ws_stats *out)
{
	struct cv_ws_server *m = (struct cv_ws_server *)s;
	out->messages_in = atomic_load(&m->n_in);
	out->bad_message = atomic_load(&m->n_bad);
	out->too_big = atomic_load(&m->n_too_big);
	out->rate_limited = atomic_load(&m->n_rate);
	out->overflow_closed = atomic_load(&m->n_overflow);
	out->connections_open = atomic_load(&m->n_open);
	out->connections_total = atomic_load(&m->n_total);
	out->messages_out = atomic_load(&m->n_out);
}

uint16_t cv_ws_server_port(const struct cv_ws_server *s)
{
	return s->port;
}

uint16_t cv_ws_server_admin_port(const struct cv_ws_server *s)
{
	return s->admin_port;
}

static void *server_thread(void *arg)
{
	struct cv_ws_server *s = arg;
	while (!atomic_load(&s->stop))
		if (lws_service(s->ctx, 0) < 0)
			break;
	pthread_mutex_lock(&s->lock);
	s->ctx_dead = true;
	pthread_mutex_unlock(&s->lock);
	/* Closes every connection: on_close runs here, on this thread. */
	lws_context_destroy(s->ctx);
	s->ctx = NULL;
	return NULL;
}

static bool is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!strcmp(addr, "localhost"))
		return true;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static void server_free(struct cv_ws_server *s)
{
	free(s->post_path);
	for (size_t i = 0; i < CV_WS_POST_MAX_HEADERS; i++)
		free(s->post_headers[i]);
	free(s->address);
	free(s->admin_address);
	free(s->web_root);
	pthread_mutex_destroy(&s->lock);
	OPENSSL_cleanse(s->admin_hash, sizeof(s->admin_hash));
	free(s);
}

static int copy_config(struct cv_ws_server *s, const struct cv_ws_config *cfg)
{
	struct cv_ws_limits *l = &s->cfg.limits;
	s->cfg = *cfg;
	if (!l->max_message_bytes)
		l->max_message_bytes = DEF_MAX_MSG;
	if (!l->rate_per_sec)
		l->rate_per_sec = DEF_RATE;
	if (!l->rate_burst)
		l->rate_burst = DEF_BURST;
	if (!l->max_queued_bytes)
		l->max_queued_bytes = DEF_MAX_QUEUED;
	const char *admin =
		cfg->admin_address ? cfg->admin_address : "127.0.0.1";
	const char *tok = cfg->admin_token ? cfg->admin_token : "";
	/* Our choice: an empty admin token is only acceptable when the
	 * admin vhost listens on loopback. */
	if (cfg->admin_enabled && !tok[0] && !is_loopback(admin))
		return -EINVAL;
	s->admin_auth = tok[0] != '\0';
	SHA256((const uint8_t *)tok, strlen(tok), s->admin_hash);
	if ((cfg->address && !(s->address = strdup(cfg->address))) ||
	    !(s->admin_address = strdup(admin)))
		return -ENOMEM;
	if (cfg->web_root) {
		s->web_root = realpath(cfg->web_root, NULL);
		if (!s->web_root)
			return -errno;
	}
	if (!s->cfg.post_max_bytes)
		s->cfg.post_max_bytes = DEF_POST_MAX;
	if (cfg->post_path && cfg->on_post) {
		if (!(s->post_path = strdup(cfg->post_path)))
			return -ENOMEM;
		for (size_t i = 0; i < CV_WS_POST_MAX_HEADERS; i++) {
			const char *h = cfg->post_headers[i];
			if (!h)
				break;
			size_t hl = strlen(h);
			if (!hl || !(s->post_headers[i] = malloc(hl + 2)))
				return hl ? -ENOMEM : -EINVAL;
			for (size_t j = 0; j < hl; j++)
				s->post_headers[i][j] =
					(char)tolower((unsigned char)h[j]);
			s->post_headers[i][hl] = ':';
			s->post_headers[i][hl + 1] = '\0';
		}
	}
	s->cfg.post_path = NULL;
	memset(s->cfg.post_headers, 0, sizeof(s->cfg.post_headers));
	s->cfg.address = s->address;
	s->cfg.admin_address = s->admin_address;
	s->cfg.web_root = s->web_root;
	s->cfg.admin_token = NULL; /* only the digest is kept */
	return 0;
}

static struct lws_vhost *make_vhost(struct cv_ws_server *s, const char *name,
				    const char *iface, uint16_t port,
				    const struct lws_protocols *protos)
{
	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof(vi));
	vi.vhost_name = name;
	vi.iface = iface;
	vi.port = port;
	vi.protocols = protos;
	vi.retry_and_idle_policy = &s->retry;
	vi.timeout_secs = 10;
	return lws_create_vhost(s->ctx, &vi);
}

int cv_ws_server_start(struct cv_ws_server **out,
		       const struct cv_ws_config *cfg)
{
	if (!out || !cfg)
		return -EINVAL;
	struct cv_ws_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	int rc = copy_config(s, cfg);
	if (rc)
		goto fail_free;

	s->client_protos[0] = (struct lws_protocols){
		.name = CV_WS_SUBPROTOCOL,
		.callback = client_cb,
		.per_session_data_size = sizeof(struct pss),
		.rx_buffer_size = RX_CHUNK,
	};
	s->admin_protos[0] = (struct lws_protocols){
		.name = "http-admin",
		.callback = admin_cb,
		.per_session_data_size = sizeof(struct pss),
	};
	s->retry.secs_since_valid_ping = 30;
	s->retry.secs_since_valid_hangup = 75;

	struct lws_context_creation_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.user = s;
	ci.max_http_header_data = HEADER_DATA_MAX;
	lws_set_log_level(LLL_ERR, NULL);
	s->ctx = lws_create_context(&ci);
	if (!s->ctx) {
		rc = -EIO;
		goto fail_free;
	}
	struct lws_vhost *vh = make_vhost(s, "client", s->address, cfg->port,
					  s->client_protos);
	if (!vh) {
		rc = -EADDRINUSE;
		goto fail_ctx;
	}
	s->port = (uint16_t)lws_get_vhost_listen_port(vh);
	if (cfg->admin_enabled) {
		vh = make_vhost(s, "admin", s->admin_address, cfg->admin_port,
				s->admin_protos);
		if (!vh) {
			rc = -EADDRINUSE;
			goto fail_ctx;
		}
		s->admin_port = (uint16_t)lws_get_vhost_listen_port(vh);
	}
	rc = -pthread_create(&s->thread, NULL, server_thread, s);
	if (rc)
		goto fail_ctx;
	pthread_setname_np(s->thread, "cv-ws");
	*out = s;
	return 0;

fail_ctx:
	lws_context_destroy(s->ctx);
fail_free:
	server_free(s);
	return rc;
}

void cv_ws_server_stop(struct cv_ws_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stop, true);
	wake_locked(s);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	server_free(s);
}
