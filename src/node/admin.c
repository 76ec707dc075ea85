/*
 * HTTP routes: the admin vhost (/metrics, /healthz, /rooms) and the
 * client vhost's /dev/token (only in --dev mode).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "conclave/clock.h"
#include "conclave/config.h"
#include "conclave/metrics.h"
#include "conclave/switch.h"
#include "conclave/token.h"
#include "conclave/ws_server.h"
#include "src/node/admin.h"
#include "src/node/node_priv.h"
#include "src/node/relay.h"

/* Where a figure comes from. */
enum figure_src {
	FIG_SWITCH, /* a field of struct cv_switch_stats, summed */
	FIG_WS,	    /* a field of struct cv_ws_stats */
	FIG_RELAY,  /* a field of struct cv_relay_stats */
	FIG_NODE,   /* a field of struct node_stats (under node->lock) */
};

/* One exported figure. */
struct figure {
	struct cv_node *node;
	size_t offset;
	enum figure_src src;
};

static double switch_sum(struct cv_node *n, size_t offset)
{
	double sum = 0;
	/* start_lock: a stopping worker clears wref[i].sw under it before
	 * destroying its switch. */
	pthread_mutex_lock(&n->start_lock);
	for (unsigned i = 0; i < n->n_workers; i++) {
		struct cv_switch_stats st;
		if (!n->wref[i].sw)
			continue;
		cv_switch_get_stats(n->wref[i].sw, &st);
		sum += (double)*(const uint64_t *)((const char *)&st + offset);
	}
	pthread_mutex_unlock(&n->start_lock);
	return sum;
}

static double node_value(struct cv_node *n, enum figure_src src, size_t offset)
{
	uint64_t v = 0;
	pthread_mutex_lock(&n->lock);
	if (src == FIG_NODE) {
		v = *(const uint64_t *)((const char *)&n->stats + offset);
	} else if (n->relay) {
		struct cv_relay_stats st;
		cv_relay_get_stats(n->relay, &st);
		v = *(const uint64_t *)((const char *)&st + offset);
	}
	pthread_mutex_unlock(&n->lock);
	return (double)v;
}

static double figure_value(void *arg)
{
	struct figure *f = arg;
	if (f->src == FIG_NODE || f->src == FIG_RELAY)
		return node_value(f->node, f->src, f->offset);
	if (f->src == FIG_WS) {
		struct cv_ws_stats st;
		if (!f->node->ws)
			return 0;
		cv_ws_server_stats(f->node->ws, &st);
		return (double)*(const uint64_t *)((const char *)&st +
						   f->offset);
	}
	return switch_sum(f->node, f->offset);
}

static int add_figure(struct cv_admin *a, const char *name, const char *help,
		      size_t offset, enum figure_src src,
		      const struct cv_metric_label *labels)
{
	if (a->n_figures == CV_ADMIN_MAX_FIGURES)
		return -E2BIG;
	struct figure *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->node = a->node;
	f->offset = offset;
	f->src = src;
	a->figures[a->n_figures++] = f;
	/* By Prometheus convention, *_total names are counters. */
	size_t len = strlen(name);
	if (len > 6 && strcmp(name + len - 6, "_total") == 0)
		return cv_metrics_counter_fn(a->metrics, name, help, labels,
					     figure_value, f);
	return cv_metrics_gauge_fn(a->metrics, name, help, labels, figure_value,
				   f);
}

#define SW(field) FIG_SWITCH, offsetof(struct cv_switch_stats, field)
#define WS(field) FIG_WS, offsetof(struct cv_ws_stats, field)
#define RL(field) FIG_RELAY, offsetof(struct cv_relay_stats, field)
#define ND(field) FIG_NODE, offsetof(struct node_stats, field)

int cv_admin_init(struct cv_admin *a, struct cv_node *node)
{
	memset(a, 0, sizeof(*a));
	a->node = node;
	int err = cv_metrics_create(&a->metrics);
	if (err)
		return err;
	for (int i = 0; i < CV_DROP_COUNT && !err; i++)
		err = add_figure(
			a, "conclave_dropped_datagrams_total",
			"Datagrams dropped on the packet path, by reason",
			offsetof(struct cv_switch_stats, drops) +
				(size_t)i * sizeof(uint64_t),
			FIG_SWITCH,
			CV_LABELS({"reason", cv_drop_name((enum cv_drop)i)}));
	struct {
		const char *name, *help;
		enum figure_src src;
		size_t off;
	} figs[] = {
		{"conclave_rx_datagrams_total", "UDP datagrams received",
		 SW(rx_datagrams)},
		{"conclave_rx_bytes_total", "UDP bytes received", SW(rx_bytes)},
		{"conclave_tx_datagrams_total", "UDP datagrams sent",
		 SW(tx_datagrams)},
		{"conclave_tx_bytes_total", "UDP bytes sent", SW(tx_bytes)},
		{"conclave_rtp_received_total",
		 "RTP packets accepted from publishers", SW(rtp_in)},
		{"conclave_rtp_forwarded_total",
		 "RTP packets sent to subscribers", SW(rtp_forwarded)},
		{"conclave_rtcp_received_total", "RTCP compounds received",
		 SW(rtcp_in)},
		{"conclave_nack_received_total",
		 "Sequence numbers NACKed by subscribers", SW(nack_received)},
		{"conclave_retransmitted_total",
		 "Packets re-sent from the NACK cache", SW(rtx_sent)},
		{"conclave_pli_sent_total", "PLIs sent to publishers",
		 SW(pli_sent)},
		{"conclave_retransmissions_suppressed_total",
		 "NACKed packets not resent: over a subscriber's budget or "
		 "resent moments ago",
		 SW(rtx_suppressed)},
		{"conclave_nack_sent_total",
		 "Sequence numbers NACKed to publishers", SW(nack_sent)},
		{"conclave_rtx_recovered_total",
		 "Packets recovered from publishers' RTX streams",
		 SW(rtx_recovered)},
		{"conclave_stun_answered_total", "ICE checks answered",
		 SW(stun_answered)},
		{"conclave_transports", "Transports on the media plane",
		 SW(transports)},
		{"conclave_ws_messages_total",
		 "Valid signaling messages received", WS(messages_in)},
		{"conclave_ws_bad_messages_total",
		 "Signaling messages refused as malformed", WS(bad_message)},
		{"conclave_ws_too_big_total",
		 "Signaling frames over the size limit", WS(too_big)},
		{"conclave_ws_rate_limited_total",
		 "Signaling messages dropped by the rate limit",
		 WS(rate_limited)},
		{"conclave_ws_overflow_closed_total",
		 "Connections closed for a full output queue",
		 WS(overflow_closed)},
		{"conclave_ws_connections", "Open signaling connections",
		 WS(connections_open)},
		{"conclave_perc_forwarded_total",
		 "Perc RTP packets sent to subscribers (hop transform)",
		 SW(perc_forwarded)},
		{"conclave_perc_repairs_total",
		 "Perc packets resent in repair mode", SW(perc_repairs)},
		{"conclave_perc_faults_injected_total",
		 "Forwarded perc packets a "
		 "faulty-node test build tampered with (always 0 otherwise)",
		 SW(perc_faults_injected)},
		{"conclave_kms_relay_requests_total",
		 "POST /v1/channel requests relayed to the KMS", RL(requests)},
		{"conclave_kms_relay_failures_total",
		 "Relayed requests answered 502 (KMS unreachable or no valid "
		 "answer in 5 s)",
		 RL(failures)},
		{"conclave_kms_relay_refused_total",
		 "Relay requests refused with 503 (queue full)", RL(refused)},
		{"conclave_perc_membership_applied_total",
		 "Two-part membership changes the node applied after the KMS "
		 "accepted them",
		 ND(membership_applied)},
	};
	for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]) && !err; i++)
		err = add_figure(a, figs[i].name, figs[i].help, figs[i].off,
				 figs[i].src, NULL);
	return err;
}

void cv_admin_fini(struct cv_admin *a)
{
	cv_metrics_destroy(a->metrics);
	for (size_t i = 0; i < a->n_figures; i++)
		free(a->figures[i]);
	memset(a, 0, sizeof(*a));
}

static char *rooms_json(struct cv_node *n, size_t *len)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&n->lock);
	for (struct room *r = n->rooms; r; r = r->next) {
		json_t *parts = json_array();
		for (struct participant *p = r->members; p; p = p->next_in_room)
			json_array_append_new(parts, json_string(p->id));
		unsigned tracks = 0;
		for (struct track *t = r->tracks; t; t = t->next)
			tracks++;
		json_array_append_new(
			arr,
			json_pack("{s:s, s:s, s:I, s:I, s:o, s:I}", "id",
				  r->log_id, "name", r->name, "worker",
				  (json_int_t)r->worker, "participant_count",
				  (json_int_t)r->n_members, "participants",
				  parts, "tracks", (json_int_t)tracks));
	}
	json_t *doc =
		json_pack("{s:o, s:I, s:b}", "rooms", arr, "workers",
			  (json_int_t)n->n_workers, "draining", n->draining);
	pthread_mutex_unlock(&n->lock);
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	*len = s ? strlen(s) : 0;
	return s;
}

int cv_admin_http(void *arg, const char *path, const char *query, int *status,
		  const char **ctype, char **body, size_t *body_len)
{
	struct cv_admin *a = &((struct cv_node *)arg)->admin;
	(void)query;
	if (strcmp(path, "/metrics") == 0) {
		*ctype = "text/plain; version=0.0.4";
		*status = 200;
		return cv_metrics_render(a->metrics, body, body_len);
	}
	if (strcmp(path, "/healthz") == 0) {
		*ctype = "application/json";
		*status = a->node->draining ? 503 : 200;
		*body = strdup(a->node->draining ? "{\"status\":\"draining\"}"
						 : "{\"status\":\"ok\"}");
		*body_len = *body ? strlen(*body) : 0;
		return *body ? 0 : -ENOMEM;
	}
	if (strcmp(path, "/rooms") == 0) {
		*ctype = "application/json";
		*status = 200;
		*body = rooms_json(a->node, body_len);
		return *body ? 0 : -ENOMEM;
	}
	*status = 0; /* not ours: the server answers 404 */
	return 0;
}

/* Reads one query parameter into out (no percent-decoding beyond what
 * room names allow: [A-Za-z0-9_.-]). */
static void query_param(const char *query, const char *key, char *out,
			size_t cap)
{
	out[0] = 0;
	size_t klen = strlen(key);
	for (const char *q = query; q && *q;) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		if (len > klen && strncmp(q, key, klen) == 0 &&
		    q[klen] == '=') {
			size_t vlen = len - klen - 1;
			if (vlen >= cap)
				vlen = cap - 1;
			memcpy(out, q + klen + 1, vlen);
			out[vlen] = 0;
			return;
		}
		q = amp ? amp + 1 : NULL;
	}
}

/* --dev only: GET /dev/token?room=R issues a one-hour token for R. */
int cv_admin_dev_http(void *arg, const char *path, const char *query,
		      int *status, const char **ctype, char **body,
		      size_t *body_len)
{
	struct cv_node *n = arg;
	if (strcmp(path, "/dev/token") != 0 ||
	    !cv_config_bool(n->cfg, CV_CFG_DEV)) {
		*status = 0; /* not ours: static files or 404 */
		return 0;
	}
	char room[CV_TOKEN_ROOM_MAX + 1], mode[16], token[CV_TOKEN_MAX_BYTES];
	uint8_t rnd[8];
	query_param(query, "room", room, sizeof(room));
	query_param(query, "mode", mode, sizeof(mode));
	*ctype = "application/json";
	struct cv_token_claims c = {
		.rights = CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
		.exp_s = (int64_t)(cv_clock_wall_ms() / 1000) + 3600,
		.mode = !strcmp(mode, "perc") ? CV_TOKEN_MODE_PERC
					      : CV_TOKEN_MODE_FORWARD,
	};
	if (mode[0] && strcmp(mode, "perc") && strcmp(mode, "forward")) {
		*status = 400;
		*body = strdup("{\"error\":\"bad_mode\"}");
		*body_len = *body ? strlen(*body) : 0;
		return *body ? 0 : -ENOMEM;
	}
	if (!cv_room_name_valid(room, strlen(room))) {
		*status = 400;
		*body = strdup("{\"error\":\"bad_room\"}");
		*body_len = *body ? strlen(*body) : 0;
		return *body ? 0 : -ENOMEM;
	}
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(c.sub, sizeof(c.sub), "dev-%02x%02x%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
		 rnd[7]);
	snprintf(c.room, sizeof(c.room), "%s", room);
	int err = cv_token_issue_claims(n->token_key, n->token_key_len, &c,
					token, sizeof(token));
	if (err)
		return err;
	/* The subject too: a perc client needs it for its KMS token. */
	json_t *doc = json_pack("{s:s, s:s}", "token", token, "sub", c.sub);
	*body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	*status = 200;
	*body_len = *body ? strlen(*body) : 0;
	return *body ? 0 : -ENOMEM;
}
