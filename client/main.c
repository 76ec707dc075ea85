/*
 * conclave-client: one endpoint on the command line. Joins a room,
 * publishes what it is told to, receives everything else for --duration
 * seconds, then prints a report (--json: one JSON object on stdout;
 * with --endpoints N > 1, N endpoints share one loop and the object is
 * {"endpoints": [...]}).
 * Exit status: 0 when the endpoint did not fail, 1 when it failed, 2 for
 * usage errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conclave/client.h"
#include "conclave/err.h"

static const char *state_name(enum cv_client_state s)
{
	return cv_client_state_name(s);
}

struct cli {
	bool json, verbose, progress, perc;
	/* --perc-remove MEMBER after --perc-remove-after seconds */
	const char *remove_member;
	double remove_after_s;
	/* --mute-video-at S --mute-video-for S (the first endpoint) */
	double mute_at_s, mute_for_s;
	int err;
	bool published, subscribed;
	unsigned events;
	struct cv_client *c; /* set once created */
};

static void on_state(void *arg, enum cv_client_state s, int err)
{
	struct cli *cli = arg;
	if (s == CV_CLIENT_FAILED)
		cli->err = err;
	if (s == CV_CLIENT_PUBLISHING)
		cli->published = true;
	if (s == CV_CLIENT_SUBSCRIBED)
		cli->subscribed = true;
	if (cli->verbose)
		fprintf(stderr, "conclave-client: %s%s%s\n", state_name(s),
			err ? ": " : "", err ? cv_strerror(err) : "");
	if (s == CV_CLIENT_FAILED && cli->c &&
	    cv_client_perc_failed_step(cli->c)) {
		const char *st = cv_client_perc_kms_status(cli->c);
		/* Always said, verbose or not: the one line a user needs. */
		fprintf(stderr, "conclave-client: kms: %s failed: %s (%s%s)\n",
			cv_client_perc_failed_step(cli->c), cv_strerror(err),
			st[0] ? "the KMS answered "
			      : "the KMS or the node's "
				"relay is unreachable",
			st);
	}
}

static void on_event(void *arg, const char *type, const char *json)
{
	struct cli *cli = arg;
	cli->events++;
	if (cli->verbose)
		fprintf(stderr, "conclave-client: event %s\n", type);
	if (!strcmp(type, "error"))
		fprintf(stderr, "conclave-client: node error: %s\n", json);
}

/* GET http://host:port/dev/token?room=R[&mode=perc] (--dev nodes only). */
static char *fetch_dev_token(const char *url, const char *room, bool perc)
{
	char host[256];
	int port = 80;
	if (strncmp(url, "ws://", 5) ||
	    sscanf(url + 5, "%255[^:/]:%d", host, &port) < 1)
		return NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	if (getaddrinfo(host, portstr, &hints, &ai) || !ai)
		return NULL;
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return NULL;
	}
	freeaddrinfo(ai);
	char req[512];
	int n = snprintf(
		req, sizeof(req),
		"GET /dev/token?room=%s%s HTTP/1.0\r\nHost: %s\r\n\r\n", room,
		perc ? "&mode=perc" : "", host);
	char resp[8192];
	size_t len = 0;
	if (write(fd, req, (size_t)n) == n) {
		ssize_t r;
		while (len < sizeof(resp) - 1 &&
		       (r = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
			len += (size_t)r;
	}
	close(fd);
	resp[len] = '\0';
	char *body = strstr(resp, "\r\n\r\n");
	if (!body || !strstr(resp, " 200 "))
		return NULL;
	json_t *doc = json_loads(body + 4, 0, NULL);
	const char *tok = json_string_value(json_object_get(doc, "token"));
	char *out = tok ? strdup(tok) : NULL;
	json_decref(doc);
	return out;
}

/* The perc counters (docs/perc.md "The endpoint"). */
static json_t *perc_report(const struct cv_client *c)
{
	struct cv_client_perc_stats p;
	cv_client_perc_stats(c, &p);
	json_t *drops = json_object();
	for (int i = 0; i < CV_PERC_DROP_COUNT; i++)
		json_object_set_new(drops,
				    cv_perc_drop_name((enum cv_perc_drop)i),
				    json_integer((json_int_t)p.drops[i]));
	json_t *o = json_object();
#define PNUM(f) json_object_set_new(o, #f, json_integer((json_int_t)p.f))
	PNUM(sent);
	PNUM(verified);
	PNUM(payload_mismatch);
	PNUM(unknown_ssrc);
	PNUM(seq_rewritten);
	PNUM(rekeys);
	PNUM(rekey_retries);
	PNUM(held_for_rekey);
	PNUM(retransmits);
	PNUM(spi);
	PNUM(epoch);
#undef PNUM
	json_object_set_new(o, "drops", drops);
	return o;
}

static json_t *report(const struct cv_client *c, const struct cli *cli)
{
	struct cv_client_send_stats s;
	cv_client_send_stats(c, &s);
	json_t *tracks = json_array();
	for (size_t i = 0; i < cv_client_track_count(c); i++) {
		struct cv_client_track_stats t;
		if (cv_client_track_stats(c, i, &t))
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "mid", json_string(t.mid));
		json_object_set_new(o, "track", json_string(t.track));
		json_object_set_new(o, "kind",
				    json_string(t.video ? "video" : "audio"));
#define NUM(f) json_object_set_new(o, #f, json_integer((json_int_t)t.f))
		NUM(packets);
		NUM(bytes);
		NUM(expected);
		NUM(lost);
		NUM(out_of_order);
		NUM(duplicates);
		NUM(frames);
		NUM(keyframes);
		NUM(keyframe_waits);
		NUM(nacks_sent);
		NUM(plis_sent);
		NUM(recovered);
		NUM(delay_samples);
		NUM(delay_p50_us);
		NUM(delay_p95_us);
		NUM(delay_p99_us);
		NUM(delay_max_us);
		NUM(jitter_us);
#undef NUM
		json_array_append_new(tracks, o);
	}
	json_t *sent = json_object();
#define SNUM(f) json_object_set_new(sent, #f, json_integer((json_int_t)s.f))
	SNUM(audio_packets);
	SNUM(video_packets);
	SNUM(bytes);
	SNUM(video_frames);
	SNUM(keyframes);
	SNUM(nacks_received);
	SNUM(retransmits);
	SNUM(plis_received);
	SNUM(impair_dropped);
	SNUM(tx_impair_dropped);
#undef SNUM
	json_t *ice = json_pack("{s:s?,s:s?}", "publish",
				cv_client_ice_local_type(c, true), "subscribe",
				cv_client_ice_local_type(c, false));
	json_t *rep =
		json_pack("{s:s,s:s?,s:b,s:b,s:i,s:o,s:o,s:o}", "state",
			  state_name(cv_client_get_state(c)), "error",
			  cli->err ? cv_strerror(cli->err) : NULL, "published",
			  cli->published, "subscribed", cli->subscribed,
			  "events", (json_int_t)cli->events, "ice", ice, "sent",
			  sent, "tracks", tracks);
	if (cli->perc)
		json_object_set_new(rep, "perc", perc_report(c));
	return rep;
}

/* One line per endpoint and per received track. */
static void print_text(const char *name, json_t *rep)
{
	json_t *sent = json_object_get(rep, "sent");
	printf("%s: %s, sent %lld audio + %lld video packets\n", name,
	       json_string_value(json_object_get(rep, "state")),
	       json_integer_value(json_object_get(sent, "audio_packets")),
	       json_integer_value(json_object_get(sent, "video_packets")));
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(rep, "tracks"), i, t)
	{
#define I(k) json_integer_value(json_object_get(t, k))
		printf("  %s %s: %lld packets, %lld lost, delay p50 %.2f ms "
		       "p99 %.2f ms, jitter %.2f ms\n",
		       json_string_value(json_object_get(t, "kind")),
		       json_string_value(json_object_get(t, "track")),
		       I("packets"), I("lost"), I("delay_p50_us") / 1000.0,
		       I("delay_p99_us") / 1000.0, I("jitter_us") / 1000.0);
#undef I
	}
}

#define MAX_ENDPOINTS 64

/* --progress: one stderr line per endpoint and second (interval stats). */
static void progress(struct cv_client **c, char (*names)[80], unsigned n,
		     unsigned sec)
{
	for (unsigned i = 0; i < n && c[i]; i++) {
		uint64_t pk = 0, lost = 0;
		uint32_t p99 = 0;
		for (size_t t = 0; t < cv_client_track_count(c[i]); t++) {
			struct cv_client_interval iv;
			if (cv_client_track_interval(c[i], t, &iv))
				continue;
			pk += iv.packets;
			lost += iv.lost;
			if (iv.delay_p99_us > p99)
				p99 = iv.delay_p99_us;
		}
		fprintf(stderr,
			"conclave-client: %us %s: %llu packets, %llu lost, "
			"worst p99 %.2f ms\n",
			sec, names[i], (unsigned long long)pk,
			(unsigned long long)lost, p99 / 1000.0);
	}
}

/* Runs n endpoints on one loop for duration seconds; prints the report. */
static int run(const struct cv_client_opts *base, const struct cli *proto,
	       bool dev_token, unsigned n, double duration)
{
	struct cv_client_loop *loop = NULL;
	int rc = cv_client_loop_create(&loop, NULL);
	if (rc) {
		fprintf(stderr, "conclave-client: loop: %s\n", cv_strerror(rc));
		return 1;
	}
	struct cli cli[MAX_ENDPOINTS];
	struct cv_client *c[MAX_ENDPOINTS] = {0};
	char *tok[MAX_ENDPOINTS] = {0};
	char names[MAX_ENDPOINTS][80];
	int status = 0;
	for (unsigned i = 0; i < n && !status; i++) {
		struct cv_client_opts o = *base;
		cli[i] = *proto;
		if (n > 1)
			snprintf(names[i], sizeof(names[i]), "%s-%u",
				 base->name ? base->name : "ep", i);
		else
			snprintf(names[i], sizeof(names[i]), "%s",
				 base->name ? base->name : "endpoint");
		o.name = names[i];
		if (dev_token) {
			tok[i] = fetch_dev_token(o.url, o.room, o.perc.enabled);
			if (!tok[i]) {
				fprintf(stderr, "conclave-client: cannot fetch "
						"a dev token from the node\n");
				status = 1;
				break;
			}
			o.token = tok[i];
		}
		struct cv_client_callbacks cb = {on_state, on_event, &cli[i]};
		rc = cv_client_create(&c[i], loop, &o, &cb);
		cli[i].c = c[i];
		if (rc) {
			fprintf(stderr, "conclave-client: %s\n",
				cv_strerror(rc));
			status = rc == -EINVAL ? 2 : 1;
		}
	}
	uint64_t left_ms = status ? 0 : (uint64_t)(duration * 1000);
	uint64_t remove_ms = proto->remove_member
				     ? (uint64_t)(proto->remove_after_s * 1000)
				     : UINT64_MAX;
	uint64_t done_ms = 0;
	uint64_t mute_ms = proto->mute_for_s > 0
				   ? (uint64_t)(proto->mute_at_s * 1000)
				   : UINT64_MAX;
	uint64_t unmute_ms =
		mute_ms == UINT64_MAX
			? UINT64_MAX
			: mute_ms + (uint64_t)(proto->mute_for_s * 1000);
	while (left_ms) {
		uint64_t slice =
			proto->progress ? 1000 - done_ms % 1000 : left_ms;
		if (slice > left_ms)
			slice = left_ms;
		uint64_t marks[3] = {remove_ms, mute_ms, unmute_ms};
		for (int m = 0; m < 3; m++)
			if (marks[m] > done_ms && marks[m] - done_ms < slice)
				slice = marks[m] - done_ms;
		cv_client_loop_run(loop, slice, true);
		left_ms -= slice;
		done_ms += slice;
		if (mute_ms != UINT64_MAX &&
		    (done_ms == mute_ms || done_ms == unmute_ms))
			cv_client_mute(c[0], true, done_ms == mute_ms);
		if (done_ms == remove_ms) {
			/* The first endpoint removes the member. */
			rc = cv_client_perc_remove_member(c[0],
							  proto->remove_member);
			fprintf(stderr, "conclave-client: remove %s: %s\n",
				proto->remove_member,
				rc ? cv_strerror(rc) : "ok");
			if (rc)
				status = 1;
		}
		if (proto->progress && done_ms % 1000 == 0)
			progress(c, names, n, (unsigned)(done_ms / 1000));
	}
	json_t *all = json_array();
	for (unsigned i = 0; i < n && c[i]; i++) {
		if (cv_client_get_state(c[i]) == CV_CLIENT_FAILED)
			status = 1;
		if (cli[i].perc) {
			/* A perc endpoint that delivered something else
			 * than what was sent fails the run. */
			struct cv_client_perc_stats ps;
			cv_client_perc_stats(c[i], &ps);
			if (ps.payload_mismatch)
				status = 1;
		}
		json_t *rep = report(c[i], &cli[i]);
		json_object_set_new(rep, "name", json_string(names[i]));
		json_array_append_new(all, rep);
		cv_client_leave(c[i]);
	}
	cv_client_loop_run(loop, 200, false); /* flush "leave" */
	json_t *out = n == 1 && json_array_size(all)
			      ? json_incref(json_array_get(all, 0))
			      : json_pack("{s:O}", "endpoints", all);
	if (proto->json) {
		char *text = json_dumps(out, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
	} else {
		size_t i;
		json_t *rep;
		json_array_foreach(all, i, rep) print_text(names[i], rep);
	}
	json_decref(out);
	json_decref(all);
	for (unsigned i = 0; i < n; i++)
		cv_client_destroy(c[i]);
	cv_client_loop_run(loop, 100, false); /* TURN deallocation */
	cv_client_loop_destroy(loop);
	for (unsigned i = 0; i < n; i++)
		free(tok[i]);
	return status;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: conclave-client --url ws://HOST:PORT/ws --room R\n"
		   "         (--token T | --dev-token) [--name N] [--audio] "
		   "[--video]\n"
		   "         [--duration S] [--json] [--no-subscribe] "
		   "[--bitrate BPS]\n"
		   "         [--fps N] [--keyframe-interval MS] "
		   "[--ice-address IP]\n"
		   "         [--turn-server IP --turn-port P --turn-user U "
		   "--turn-password P]\n"
		   "         [--relay-only] [--verbose]\n"
		   "         [--rx-loss PCT --rx-loss-burst N --rx-jitter MS "
		   "--rx-reorder PCT]\n"
		   "         [--perc --kms-token T (--kms-cert FILE | "
		   "--kms-cert-pem PEM)\n"
		   "          [--kms-host IP --kms-port P] [--perc-create-room]"
		   " [--perc-add SUB]...\n"
		   "          [--perc-remove SUB --perc-remove-after S]]\n"
		   "         [--mute-video-at S --mute-video-for S] "
		   "[--tx-loss PCT]\n"
		   "         (perc: the KMS channel goes through the node "
		   "unless --kms-host)\n"
		   "       conclave-client --target janus --url "
		   "ws://127.0.1.1:8188/ [--janus-room N] ...\n"
		   "         (Janus VideoRoom: no token; room 1234 by "
		   "default, created if missing)\n");
}

enum {
	OPT_DEV_TOKEN = 256,
	OPT_NO_SUB,
	OPT_BITRATE,
	OPT_FPS,
	OPT_KEY,
	OPT_ICE_ADDR,
	OPT_TURN,
	OPT_TURN_PORT,
	OPT_TURN_USER,
	OPT_TURN_PASS,
	OPT_RELAY_ONLY,
	OPT_RX_LOSS,
	OPT_RX_BURST,
	OPT_RX_JITTER,
	OPT_RX_REORDER,
	OPT_ENDPOINTS,
	OPT_PROGRESS,
	OPT_TARGET,
	OPT_JANUS_ROOM,
	OPT_PERC,
	OPT_KMS_HOST,
	OPT_KMS_PORT,
	OPT_KMS_CERT,
	OPT_KMS_CERT_PEM,
	OPT_KMS_TOKEN,
	OPT_PERC_CREATE,
	OPT_PERC_ADD,
	OPT_PERC_REMOVE,
	OPT_PERC_REMOVE_AFTER,
	OPT_MUTE_AT,
	OPT_MUTE_FOR,
	OPT_TX_LOSS,
};

#define MAX_ADD 32

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"room", required_argument, NULL, 'r'},
		{"token", required_argument, NULL, 't'},
		{"name", required_argument, NULL, 'n'},
		{"audio", no_argument, NULL, 'a'},
		{"video", no_argument, NULL, 'v'},
		{"duration", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"dev-token", no_argument, NULL, OPT_DEV_TOKEN},
		{"no-subscribe", no_argument, NULL, OPT_NO_SUB},
		{"bitrate", required_argument, NULL, OPT_BITRATE},
		{"fps", required_argument, NULL, OPT_FPS},
		{"keyframe-interval", required_argument, NULL, OPT_KEY},
		{"ice-address", required_argument, NULL, OPT_ICE_ADDR},
		{"turn-server", required_argument, NULL, OPT_TURN},
		{"turn-port", required_argument, NULL, OPT_TURN_PORT},
		{"turn-user", required_argument, NULL, OPT_TURN_USER},
		{"turn-password", required_argument, NULL, OPT_TURN_PASS},
		{"relay-only", no_argument, NULL, OPT_RELAY_ONLY},
		{"rx-loss", required_argument, NULL, OPT_RX_LOSS},
		{"rx-loss-burst", required_argument, NULL, OPT_RX_BURST},
		{"rx-jitter", required_argument, NULL, OPT_RX_JITTER},
		{"rx-reorder", required_argument, NULL, OPT_RX_REORDER},
		{"endpoints", required_argument, NULL, OPT_ENDPOINTS},
		{"progress", no_argument, NULL, OPT_PROGRESS},
		{"target", required_argument, NULL, OPT_TARGET},
		{"janus-room", required_argument, NULL, OPT_JANUS_ROOM},
		{"perc", no_argument, NULL, OPT_PERC},
		{"kms-host", required_argument, NULL, OPT_KMS_HOST},
		{"kms-port", required_argument, NULL, OPT_KMS_PORT},
		{"kms-cert", required_argument, NULL, OPT_KMS_CERT},
		{"kms-cert-pem", required_argument, NULL, OPT_KMS_CERT_PEM},
		{"kms-token", required_argument, NULL, OPT_KMS_TOKEN},
		{"perc-create-room", no_argument, NULL, OPT_PERC_CREATE},
		{"perc-add", required_argument, NULL, OPT_PERC_ADD},
		{"perc-remove", required_argument, NULL, OPT_PERC_REMOVE},
		{"perc-remove-after", required_argument, NULL,
		 OPT_PERC_REMOVE_AFTER},
		{"mute-video-at", required_argument, NULL, OPT_MUTE_AT},
		{"mute-video-for", required_argument, NULL, OPT_MUTE_FOR},
		{"tx-loss", required_argument, NULL, OPT_TX_LOSS},
		{NULL, 0, NULL, 0},
	};
	const char *add[MAX_ADD + 1] = {0};
	size_t n_add = 0;
	struct cv_client_opts o = {.subscribe = true};
	struct cli cli = {0};
	bool dev_token = false;
	double duration = 5;
	unsigned endpoints = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "u:r:t:n:avd:jVh", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'u':
			o.url = optarg;
			break;
		case 'r':
			o.room = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'a':
			o.audio = true;
			break;
		case 'v':
			o.video = true;
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 'j':
			cli.json = true;
			break;
		case 'V':
			cli.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_DEV_TOKEN:
			dev_token = true;
			break;
		case OPT_NO_SUB:
			o.subscribe = false;
			break;
		case OPT_BITRATE:
			o.video_bitrate_bps = (uint32_t)atol(optarg);
			break;
		case OPT_FPS:
			o.video_fps = (unsigned)atoi(optarg);
			break;
		case OPT_KEY:
			o.keyframe_interval_ms = (unsigned)atoi(optarg);
			break;
		case OPT_ICE_ADDR:
			o.ice_address = optarg;
			break;
		case OPT_TURN:
			o.turn_server = optarg;
			break;
		case OPT_TURN_PORT:
			o.turn_port = (uint16_t)atoi(optarg);
			break;
		case OPT_TURN_USER:
			o.turn_user = optarg;
			break;
		case OPT_TURN_PASS:
			o.turn_password = optarg;
			break;
		case OPT_RELAY_ONLY:
			o.relay_only = true;
			break;
		case OPT_RX_LOSS:
			o.rx_loss = atof(optarg) / 100.0;
			break;
		case OPT_PROGRESS:
			cli.progress = true;
			break;
		case OPT_ENDPOINTS:
			endpoints = (unsigned)atoi(optarg);
			break;
		case OPT_RX_BURST:
			o.rx_loss_burst = (unsigned)atoi(optarg);
			break;
		case OPT_RX_JITTER:
			o.rx_jitter_ms = (unsigned)atoi(optarg);
			break;
		case OPT_RX_REORDER:
			o.rx_reorder = atof(optarg) / 100.0;
			break;
		case OPT_TARGET:
			if (!strcmp(optarg, "janus")) {
				o.target = CV_CLIENT_TARGET_JANUS;
			} else if (strcmp(optarg, "conclave")) {
				usage(stderr);
				return 2;
			}
			break;
		case OPT_JANUS_ROOM:
			o.janus_room = strtoull(optarg, NULL, 10);
			break;
		case OPT_PERC:
			o.perc.enabled = true;
			cli.perc = true;
			break;
		case OPT_KMS_HOST:
			o.perc.kms_host = optarg;
			break;
		case OPT_KMS_PORT:
			o.perc.kms_port = (uint16_t)atoi(optarg);
			break;
		case OPT_KMS_CERT:
			o.perc.kms_cert_file = optarg;
			break;
		case OPT_KMS_CERT_PEM:
			o.perc.kms_cert_pem = optarg;
			break;
		case OPT_KMS_TOKEN:
			o.perc.kms_token = optarg;
			break;
		case OPT_PERC_CREATE:
			o.perc.create_room = true;
			break;
		case OPT_PERC_ADD:
			if (n_add == MAX_ADD) {
				usage(stderr);
				return 2;
			}
			add[n_add++] = optarg;
			o.perc.add_members = add;
			break;
		case OPT_PERC_REMOVE:
			cli.remove_member = optarg;
			break;
		case OPT_PERC_REMOVE_AFTER:
			cli.remove_after_s = atof(optarg);
			break;
		case OPT_MUTE_AT:
			cli.mute_at_s = atof(optarg);
			break;
		case OPT_MUTE_FOR:
			cli.mute_for_s = atof(optarg);
			break;
		case OPT_TX_LOSS:
			o.tx_loss = atof(optarg) / 100.0;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	bool janus = o.target == CV_CLIENT_TARGET_JANUS;
	if (!o.url || (!janus && (!o.room || (!o.token && !dev_token))) ||
	    (janus && dev_token) || duration <= 0 || endpoints < 1 ||
	    (o.perc.enabled &&
	     (janus || !o.perc.kms_token ||
	      (!o.perc.kms_cert_file && !o.perc.kms_cert_pem))) ||
	    (cli.remove_member && (!o.perc.enabled || cli.remove_after_s <= 0 ||
				   cli.remove_after_s >= duration)) ||
	    endpoints > MAX_ENDPOINTS) {
		usage(stderr);
		return 2;
	}
	return run(&o, &cli, dev_token, endpoints, duration);
}
