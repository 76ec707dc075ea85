/*
 * The client-KMS channel relay: a bounded queue and one thread that does
 * the blocking HTTP round trip to conclave-kms. See relay.h.
 */
#include "src/node/relay.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conclave/tcp_exchange.h"

#define DEF_TIMEOUT_MS 5000
#define ANSWER_MAX     (CV_RELAY_HEAD_MAX + CV_RELAY_BODY_MAX)

struct cv_relay {
	char host[64];
	uint16_t port;
	uint32_t timeout_ms;
	cv_relay_done_fn done;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock; /* guards queue, n, head, stop */
	pthread_cond_t cond;
	struct cv_relay_job *queue; /* ring of CV_RELAY_QUEUE_MAX */
	size_t head, n;
	bool stop;
	struct cv_relay_job work; /* the relay thread's copy */
	uint8_t answer[ANSWER_MAX];
	atomic_uint_fast64_t requests, failures, refused;
};

/* ---- the two-part headers ---- */

const char *cv_relay_op_name(enum cv_relay_op op)
{
	switch (op) {
	case CV_RELAY_OP_ADD:
		return "add_member";
	case CV_RELAY_OP_REMOVE:
		return "remove_member";
	default:
		return NULL;
	}
}

/* A member id goes into an HTTP header and the KMS's compare: visible
 * ASCII only (no CR/LF, no blank), as a token's sub may be. */
static bool member_ok(const char *m)
{
	size_t n = strlen(m);
	if (n == 0 || n > CV_TOKEN_SUB_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)m[i] <= 0x20 || (unsigned char)m[i] >= 0x7f)
			return false;
	return true;
}

int cv_relay_check_core(const uint8_t *key, size_t key_len, const char *core,
			const char *op, const char *member, int64_t now_s,
			struct cv_relay_core *out)
{
	memset(out, 0, sizeof(*out));
	if (!core && !op && !member)
		return 0;
	if (!core || !op || !member || !member_ok(member))
		return 400;
	if (!strcmp(op, "add_member"))
		out->op = CV_RELAY_OP_ADD;
	else if (!strcmp(op, "remove_member"))
		out->op = CV_RELAY_OP_REMOVE;
	else
		return 400;
	struct cv_token_claims c;
	int err = cv_token_verify(key, key_len, core, strlen(core), now_s, &c);
	/* Only a perc room has a KMS side to agree with. The sub goes into a
	 * header of the request to the KMS: a signed token still must not be
	 * able to add a header line (CR, LF) or smuggle blanks. */
	if (err || c.mode != CV_TOKEN_MODE_PERC || !member_ok(c.sub)) {
		memset(out, 0, sizeof(*out));
		OPENSSL_cleanse(&c, sizeof(c));
		return 403;
	}
	snprintf(out->room, sizeof(out->room), "%s", c.room);
	snprintf(out->actor, sizeof(out->actor), "%s", c.sub);
	snprintf(out->member, sizeof(out->member), "%s", member);
	OPENSSL_cleanse(&c, sizeof(c));
	return 0;
}

int cv_relay_request_head(char *buf, size_t cap, const char *host,
			  size_t body_len, const struct cv_relay_core *core)
{
	char extra[3 * CV_TOKEN_SUB_MAX + 256] = "";
	if (core && core->op != CV_RELAY_OP_NONE)
		snprintf(extra, sizeof(extra),
			 "Conclave-Room: %s\r\nConclave-Actor: %s\r\n"
			 "Conclave-Op: %s\r\nConclave-Member: %s\r\n",
			 core->room, core->actor, cv_relay_op_name(core->op),
			 core->member);
	int n = snprintf(buf, cap,
			 "POST /v1/channel HTTP/1.1\r\nHost: %s\r\n"
			 "Content-Type: application/octet-stream\r\n"
			 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			 host, body_len, extra);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* ---- the KMS's answer ---- */

/* Value of one header line after "name:" trimmed: [v, v + *vlen). */
static const char *line_value(const char *line, size_t len, size_t nl,
			      size_t *vlen)
{
	const char *v = line + nl, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*vlen = (size_t)(e - v);
	return v;
}

static int parse_headers(const char *p, const char *end, long *clen,
			 char *kms_status, size_t cap)
{
	*clen = -1;
	kms_status[0] = '\0';
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);
		size_t vl;
		const char *v;
		if (l >= 18 && !strncasecmp(p, "transfer-encoding:", 18))
			return -EPROTO;
		if (l >= 15 && !strncasecmp(p, "content-length:", 15)) {
			v = line_value(p, l, 15, &vl);
			if (*clen >= 0 || vl == 0 || vl > 6)
				return -EPROTO;
			*clen = 0;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -EPROTO;
				*clen = *clen * 10 + (v[i] - '0');
			}
		} else if (l >= 16 && !strncasecmp(p, "conclave-status:", 16)) {
			v = line_value(p, l, 16, &vl);
			if (kms_status[0] || vl == 0 || vl >= cap)
				return -EPROTO;
			for (size_t i = 0; i < vl; i++)
				if (!((v[i] >= 'a' && v[i] <= 'z') ||
				      v[i] == '_'))
					return -EPROTO;
			memcpy(kms_status, v, vl);
			kms_status[vl] = '\0';
		}
		p = eol ? eol + 1 : end;
	}
	return 0;
}

int cv_relay_parse_answer(const uint8_t *buf, size_t len,
			  struct cv_relay_answer *out)
{
	memset(out, 0, sizeof(*out));
	const char *s = (const char *)buf;
	size_t h = 0;
	for (size_t i = 0; i + 3 < len && !h; i++)
		if (!memcmp(s + i, "\r\n\r\n", 4))
			h = i + 4;
	/* RFC 9112 section 4: HTTP-version SP 3DIGIT SP reason. */
	if (!h || h > CV_RELAY_HEAD_MAX || len < 13 ||
	    memcmp(s, "HTTP/1.", 7) || (s[7] != '0' && s[7] != '1') ||
	    s[8] != ' ' || s[9] < '1' || s[9] > '5' || s[10] < '0' ||
	    s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (s[12] != ' ' && s[12] != '\r'))
		return -EPROTO;
	out->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	const char *first = memchr(s, '\n', h);
	long clen;
	if (!first || parse_headers(first + 1, s + h - 2, &clen,
				    out->kms_status, sizeof(out->kms_status)))
		return -EPROTO;
	if (clen < 0 || clen > CV_RELAY_BODY_MAX || (size_t)clen != len - h)
		return -EPROTO;
	out->body = buf + h;
	out->len = (size_t)clen;
	return 0;
}

/* ---- the round trip (relay thread) ---- */

static int round_trip(struct cv_relay *r, const struct cv_relay_job *job,
		      size_t *got)
{
	char head[CV_RELAY_HEAD_MAX];
	int hn = cv_relay_request_head(head, sizeof(head), r->host, job->len,
				       &job->core);
	if (hn < 0)
		return hn;
	return cv_tcp_exchange(r->host, r->port, r->timeout_ms,
			       (const uint8_t *)head, (size_t)hn, job->body,
			       job->len, r->answer, sizeof(r->answer), got);
}

static void run_job(struct cv_relay *r, const struct cv_relay_job *job)
{
	size_t got = 0;
	struct cv_relay_answer a;
	atomic_fetch_add(&r->requests, 1);
	if (round_trip(r, job, &got) ||
	    cv_relay_parse_answer(r->answer, got, &a)) {
		atomic_fetch_add(&r->failures, 1);
		struct cv_relay_result res = {.status = 502, .kms_status = ""};
		r->done(r->arg, job, &res);
	} else {
		struct cv_relay_result res = {.status = a.status,
					      .body = a.body,
					      .len = a.len,
					      .kms_status = a.kms_status};
		r->done(r->arg, job, &res);
	}
	/* Sealed bytes, but the buffer is reused: wipe it anyway. */
	OPENSSL_cleanse(r->answer, got);
}

static void *relay_thread(void *arg)
{
	struct cv_relay *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stop && r->n == 0)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->stop)
			break;
		r->work = r->queue[r->head];
		OPENSSL_cleanse(&r->queue[r->head], sizeof(r->queue[0]));
		r->head = (r->head + 1) % CV_RELAY_QUEUE_MAX;
		r->n--;
		pthread_mutex_unlock(&r->lock);
		run_job(r, &r->work);
		OPENSSL_cleanse(&r->work, sizeof(r->work));
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int cv_relay_create(struct cv_relay **out, const struct cv_relay_opts *o)
{
	if (!out || !o || !o->host || !o->port || !o->done ||
	    strlen(o->host) >= sizeof(((struct cv_relay *)0)->host))
		return -EINVAL;
	struct cv_relay *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->queue = calloc(CV_RELAY_QUEUE_MAX, sizeof(*r->queue));
	if (!r->queue) {
		free(r);
		return -ENOMEM;
	}
	snprintf(r->host, sizeof(r->host), "%s", o->host);
	r->port = o->port;
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : DEF_TIMEOUT_MS;
	r->done = o->done;
	r->arg = o->arg;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	int err = pthread_create(&r->thread, NULL, relay_thread, r);
	if (err) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		free(r->queue);
		free(r);
		return -err;
	}
	pthread_setname_np(r->thread, "cv-kms-relay");
	*out = r;
	return 0;
}

void cv_relay_destroy(struct cv_relay *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	struct cv_relay_result res = {.status = 503, .kms_status = ""};
	while (r->n) {
		r->done(r->arg, &r->queue[r->head], &res);
		r->head = (r->head + 1) % CV_RELAY_QUEUE_MAX;
		r->n--;
	}
	OPENSSL_cleanse(r->queue, CV_RELAY_QUEUE_MAX * sizeof(*r->queue));
	free(r->queue);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int cv_relay_submit(struct cv_relay *r, const struct cv_relay_job *job)
{
	pthread_mutex_lock(&r->lock);
	if (r->n == CV_RELAY_QUEUE_MAX || r->stop) {
		pthread_mutex_unlock(&r->lock);
		atomic_fetch_add(&r->refused, 1);
		return -EAGAIN;
	}
	r->queue[(r->head + r->n) % CV_RELAY_QUEUE_MAX] = *job;
	r->n++;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void cv_relay_get_stats(struct cv_relay *r, struct cv_relay_stats *out)
{
	out->requests = atomic_load(&r->requests);
	out->failures = atomic_load(&r->failures);
	out->refused = atomic_load(&r->refused);
}
