/*
 * conclave-perf: loads a media node like real endpoints do. Many client
 * library endpoints (signaling, full ICE, DTLS-SRTP, real Opus and
 * VP8-shaped video) run on a few threads, one struct cv_client_loop each,
 * in the rooms of a scenario; a progress line each second, then a text
 * report, optionally JSON and a PNG plot, and an exit status that can gate
 * a deploy: 0 pass, 1 a threshold violated (or endpoints failed, or
 * expected tracks never arrived), 2 usage or start-up error.
 *
 * Timeline: endpoints start at --ramp-per-sec; then --warmup seconds
 * (ICE, DTLS, first keyframes); then the measured window of --duration
 * seconds. Delay percentiles, node CPU and CPU per forwarded packet come
 * from the measured window; loss and the other counters are cumulative.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conclave/base64.h"
#include "conclave/err.h"
#include "conclave/kms_client.h"
#include "conclave/token.h"
#include "perf/perf_node.h"
#include "perf/perf_run.h"

#define MAX_THREADS   16
#define MAX_ENDPOINTS 4096
#define TOKEN_CAP     1024

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Selects the target's signaling on the endpoint's options. The Janus
 * backend of the client library is not there yet; when it lands,
 * cv_client_opts gains a field for it and this becomes one assignment.
 */
/*
 * The signaling the endpoints speak. Janus rooms are numbers: each of our
 * room names maps to a stable one (1000 + a hash), created by the first
 * endpoint that joins it.
 */
static int apply_target(struct cv_client_opts *co, enum perf_target t)
{
	if (t == PERF_TARGET_CONCLAVE)
		return 0;
	uint32_t h = 2166136261u;
	for (const char *p = co->room; p && *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	co->target = CV_CLIENT_TARGET_JANUS;
	co->janus_room = 1000 + h % 1000000u;
	return 0;
}

/* ---- One harness thread ---- */

struct perf_thread {
	struct perf_run *run;
	unsigned idx, n_threads;
	pthread_t tid;
	bool started;
};

static void on_state(void *arg, enum cv_client_state s, int err)
{
	struct perf_ep *ep = arg;
	ep->state = s;
	if (s == CV_CLIENT_FAILED) {
		ep->err = err;
		fprintf(stderr, "conclave-perf: %s: failed: %s\n", ep->name,
			cv_strerror(err));
	}
	if (s == CV_CLIENT_PUBLISHING)
		ep->published = true;
	if (s == CV_CLIENT_SUBSCRIBED)
		ep->subscribed = true;
}

static void on_event(void *arg, const char *type, const char *json)
{
	struct perf_ep *ep = arg;
	if (!strcmp(type, "error"))
		fprintf(stderr, "conclave-perf: %s: node error: %s\n", ep->name,
			json);
}

static void start_ep(struct perf_run *run, struct cv_client_loop *loop,
		     struct perf_ep *ep)
{
	const struct perf_opts *o = run->o;
	struct cv_client_opts co = {
		.url = o->url,
		.token = ep->token,
		.room = ep->room,
		.name = ep->name,
		.audio = ep->audio,
		.video = ep->video,
		.subscribe = true,
		.video_bitrate_bps = o->video_bitrate_bps,
		.video_fps = o->fps,
		.rx_loss = o->loss_pct / 100.0,
		.rx_loss_burst = o->loss_burst,
		.rx_jitter_ms = o->jitter_ms,
		.rx_reorder = o->reorder_pct / 100.0,
	};
	if (o->scenario == PERF_PERC)
		co.perc = (struct cv_client_perc_opts){
			.enabled = true,
			.kms_host = o->kms_host,
			.kms_port = o->kms_port,
			.kms_cert_file = o->kms_cert,
			.kms_token = ep->kms_token,
		};
	struct cv_client_callbacks cb = {on_state, on_event, ep};
	ep->created = true;
	int rc = apply_target(&co, o->target);
	if (!rc)
		rc = cv_client_create(&ep->c, loop, &co, &cb);
	if (rc) {
		fprintf(stderr, "conclave-perf: %s: %s\n", ep->name,
			cv_strerror(rc));
		ep->state = CV_CLIENT_FAILED;
		ep->err = rc;
	}
}

/* Media flows in when an endpoint subscribed, or published with nothing
 * to receive. */
static bool ep_up(const struct perf_ep *ep)
{
	return ep->c && ep->state != CV_CLIENT_FAILED &&
	       (ep->subscribed || (!ep->expect_tracks && ep->published));
}

/* Adds this thread's share of second `sec` to the run's series. */
static void collect_second(struct perf_thread *th, unsigned sec)
{
	struct perf_run *run = th->run;
	struct perf_hist *h = calloc(1, sizeof(*h));
	uint64_t packets = 0, lost = 0;
	unsigned up = 0, failed = 0;
	for (size_t i = th->idx; i < run->n_eps; i += th->n_threads) {
		struct perf_ep *ep = &run->eps[i];
		if (ep->created && ep->state == CV_CLIENT_FAILED)
			failed++;
		if (!ep->c)
			continue;
		up += ep_up(ep);
		for (size_t t = 0; t < cv_client_track_count(ep->c); t++) {
			struct cv_client_interval iv;
			if (cv_client_track_interval(ep->c, t, &iv))
				continue;
			packets += iv.packets;
			lost += iv.lost;
			if (h)
				perf_hist_add_summary(
					h, iv.delay_samples, iv.delay_p50_us,
					iv.delay_p95_us, iv.delay_p99_us,
					iv.delay_max_us);
		}
	}
	pthread_mutex_lock(&run->mu);
	struct perf_sec *s = &run->secs[sec];
	s->packets += packets;
	s->lost += lost;
	s->up += up;
	s->failed += failed;
	if (h)
		perf_hist_merge(&s->delay, h);
	s->reported++;
	pthread_cond_broadcast(&run->cond);
	pthread_mutex_unlock(&run->mu);
	free(h);
}

static void add_track(struct perf_totals *t,
		      const struct cv_client_track_stats *ts)
{
	t->tracks++;
	t->packets += ts->packets;
	t->bytes += ts->bytes;
	t->expected += ts->expected;
	t->lost += ts->lost;
	t->out_of_order += ts->out_of_order;
	t->duplicates += ts->duplicates;
	if (ts->video) /* audio counts a frame per packet */
		t->frames += ts->frames;
	t->keyframes += ts->keyframes;
	t->keyframe_waits += ts->keyframe_waits;
	t->nacks_sent += ts->nacks_sent;
	t->plis_sent += ts->plis_sent;
	t->recovered += ts->recovered;
	perf_hist_add(&t->jitter, ts->jitter_us, 1);
	if (ts->delay_p99_us > t->worst_track_p99_us)
		t->worst_track_p99_us = ts->delay_p99_us;
	perf_hist_add_summary(&t->delay, ts->delay_samples, ts->delay_p50_us,
			      ts->delay_p95_us, ts->delay_p99_us,
			      ts->delay_max_us);
}

/* Adds one endpoint's cumulative figures to t (the caller holds mu). */
static void add_endpoint(struct perf_totals *t, const struct perf_ep *ep)
{
	if (ep->created && ep->state == CV_CLIENT_FAILED)
		t->failed++;
	if (!ep->c)
		return;
	t->up += ep_up(ep);
	struct cv_client_send_stats s;
	cv_client_send_stats(ep->c, &s);
	t->sent_audio += s.audio_packets;
	t->sent_video += s.video_packets;
	t->sent_bytes += s.bytes;
	t->sent_frames += s.video_frames;
	t->sent_keyframes += s.keyframes;
	t->nacks_received += s.nacks_received;
	t->retransmits += s.retransmits;
	t->plis_received += s.plis_received;
	t->impair_dropped += s.impair_dropped;
	struct cv_client_perc_stats ps;
	cv_client_perc_stats(ep->c, &ps);
	t->perc_verified += ps.verified;
	t->perc_mismatch += ps.payload_mismatch;
	for (int d = 0; d < CV_PERC_DROP_COUNT; d++) {
		t->perc_drops += ps.drops[d];
		t->perc_drop[d] += ps.drops[d];
	}
	unsigned with_media = 0;
	for (size_t i = 0; i < cv_client_track_count(ep->c); i++) {
		struct cv_client_track_stats ts;
		if (cv_client_track_stats(ep->c, i, &ts))
			continue;
		add_track(t, &ts);
		with_media += ts.packets > 0;
	}
	if (with_media < ep->expect_tracks)
		t->tracks_missing += ep->expect_tracks - with_media;
}

static void finish_thread(struct perf_thread *th, struct cv_client_loop *loop)
{
	struct perf_run *run = th->run;
	pthread_mutex_lock(&run->mu);
	for (size_t i = th->idx; i < run->n_eps; i += th->n_threads)
		add_endpoint(&run->tot, &run->eps[i]);
	pthread_mutex_unlock(&run->mu);
	for (size_t i = th->idx; i < run->n_eps; i += th->n_threads)
		if (run->eps[i].c)
			cv_client_leave(run->eps[i].c);
	cv_client_loop_run(loop, 300, false); /* flush "leave" */
	for (size_t i = th->idx; i < run->n_eps; i += th->n_threads) {
		cv_client_destroy(run->eps[i].c);
		run->eps[i].c = NULL;
	}
}

static void *thread_main(void *arg)
{
	struct perf_thread *th = arg;
	struct perf_run *run = th->run;
	struct cv_client_loop *loop = NULL;
	char tname[16];
	snprintf(tname, sizeof(tname), "perf-loop-%u", th->idx);
	pthread_setname_np(pthread_self(), tname);
	/* One at a time: loop creation initialises libsrtp and OpenSSL
	 * state that is not documented as thread-safe. */
	static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&create_mu);
	int rc = cv_client_loop_create(&loop, NULL);
	pthread_mutex_unlock(&create_mu);
	if (rc) {
		fprintf(stderr, "conclave-perf: thread %u: loop: %s\n", th->idx,
			cv_strerror(rc));
		pthread_mutex_lock(&run->mu);
		for (size_t i = th->idx; i < run->n_eps; i += th->n_threads) {
			run->eps[i].created = true;
			run->eps[i].state = CV_CLIENT_FAILED;
			run->eps[i].err = rc;
			add_endpoint(&run->tot, &run->eps[i]);
		}
		run->threads_alive--;
		pthread_cond_broadcast(&run->cond);
		pthread_mutex_unlock(&run->mu);
		return NULL;
	}
	size_t next = th->idx;
	unsigned sec = 0;
	while (sec < run->n_secs) {
		uint64_t now = mono_us() - run->t0_us;
		while (next < run->n_eps && run->eps[next].start_us <= now) {
			start_ep(run, loop, &run->eps[next]);
			next += th->n_threads;
		}
		uint64_t boundary = (uint64_t)(sec + 1) * 1000000;
		if (now >= boundary) {
			collect_second(th, sec++);
			continue;
		}
		uint64_t wake = boundary;
		if (next < run->n_eps && run->eps[next].start_us < wake)
			wake = run->eps[next].start_us;
		cv_client_loop_run(loop, (wake - now + 999) / 1000, false);
	}
	finish_thread(th, loop);
	cv_client_loop_run(loop, 100, false); /* TURN and DTLS goodbyes */
	cv_client_loop_destroy(loop);
	return NULL;
}

/* ---- The scenario ---- */

/* Fills run->eps: rooms x the scenario's members, publishers first in
 * each room, starting at the ramp rate in that order. */
static int build_endpoints(struct perf_run *run)
{
	const struct perf_opts *o = run->o;
	unsigned pubs =
		o->scenario == PERF_WEBINAR ? o->publishers : o->participants;
	/* PERF_PERC is a meeting, with audio and video. */
	unsigned subs = o->scenario == PERF_WEBINAR ? o->subscribers : 0;
	bool video = o->scenario != PERF_AUDIO;
	unsigned per_pub = video ? 2 : 1;
	/* What a publisher and a subscriber receive: every other
	 * publisher's tracks. */
	unsigned pub_expect = (pubs - 1) * per_pub, sub_expect = pubs * per_pub;
	if (pub_expect > CV_CLIENT_MAX_TRACKS ||
	    (subs && sub_expect > CV_CLIENT_MAX_TRACKS)) {
		fprintf(stderr,
			"conclave-perf: an endpoint receives at most %d tracks "
			"(CV_CLIENT_MAX_TRACKS): at most %d publishers with "
			"video per room (%d audio only)\n",
			CV_CLIENT_MAX_TRACKS, CV_CLIENT_MAX_TRACKS / 2 + 1,
			CV_CLIENT_MAX_TRACKS + 1);
		return -EINVAL;
	}
	size_t per_room = (size_t)pubs + subs;
	if (!per_room || per_room * o->rooms > MAX_ENDPOINTS) {
		fprintf(stderr, "conclave-perf: 1 to %d endpoints\n",
			MAX_ENDPOINTS);
		return -EINVAL;
	}
	run->n_eps = per_room * o->rooms;
	run->eps = calloc(run->n_eps, sizeof(*run->eps));
	if (!run->eps)
		return -ENOMEM;
	uint8_t rnd[3];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	size_t k = 0;
	for (unsigned r = 0; r < o->rooms; r++) {
		for (size_t m = 0; m < per_room; m++, k++) {
			struct perf_ep *ep = &run->eps[k];
			bool pub = m < pubs;
			snprintf(ep->room, sizeof(ep->room),
				 "perf-%02x%02x%02x-%u", rnd[0], rnd[1], rnd[2],
				 r);
			snprintf(ep->name, sizeof(ep->name), "%s-%c%zu",
				 ep->room, pub ? 'p' : 's', m);
			ep->audio = pub;
			ep->video = pub && video;
			ep->subscribe_only = !pub;
			ep->expect_tracks = pub ? pub_expect : sub_expect;
			ep->start_us = o->ramp_per_sec > 0
					       ? (uint64_t)((double)k * 1e6 /
							    o->ramp_per_sec)
					       : 0;
		}
	}
	return 0;
}

/* A token per endpoint: signed here with the node's secret, or asked
 * from a --dev node. Subscribers of a webinar may only subscribe. */
static int make_tokens(struct perf_run *run, const char *secret, bool dev)
{
	const struct perf_opts *o = run->o;
	int64_t exp_s =
		(int64_t)time(NULL) + 3600 + (int64_t)(o->duration_s * 2);
	for (size_t i = 0; i < run->n_eps; i++) {
		struct perf_ep *ep = &run->eps[i];
		if (dev) {
			ep->token = perf_dev_token(o->url, ep->room, ep->name);
			if (!ep->token) {
				fprintf(stderr, "conclave-perf: cannot fetch a "
						"dev token from the node (is "
						"it in --dev mode?)\n");
				return -EIO;
			}
			continue;
		}
		char buf[TOKEN_CAP];
		struct cv_token_claims cl = {
			.rights =
				ep->subscribe_only
					? CV_RIGHT_SUBSCRIBE
					: CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
			.exp_s = exp_s,
			.mode = o->scenario == PERF_PERC
					? CV_TOKEN_MODE_PERC
					: CV_TOKEN_MODE_FORWARD,
		};
		snprintf(cl.sub, sizeof(cl.sub), "%s", ep->name);
		snprintf(cl.room, sizeof(cl.room), "%s", ep->room);
		int rc = cv_token_issue_claims((const uint8_t *)secret,
					       strlen(secret), &cl, buf,
					       sizeof(buf));
		if (rc) {
			fprintf(stderr, "conclave-perf: token: %s\n",
				cv_strerror(rc));
			return rc;
		}
		ep->token = strdup(buf);
		if (!ep->token)
			return -ENOMEM;
	}
	return 0;
}

/* ---- Perc: KMS tokens and rooms ---- */

/* base64url(in) appended at out[*n]; false when it does not fit. */
static bool b64u(char *out, size_t cap, size_t *n, const void *in, size_t len)
{
	size_t w = 0;
	if (cv_base64url_encode(in, len, out + *n, cap - *n, &w))
		return false;
	*n += w;
	return true;
}

/* An HS256 KMS token (docs/kms.md "KMS tokens") for sub. */
static char *kms_token(const uint8_t *key, size_t key_len, const char *iss,
		       const char *sub, int64_t exp_s)
{
	static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char body[512], out[TOKEN_CAP];
	int64_t now = (int64_t)time(NULL);
	int bl = snprintf(body, sizeof(body),
			  "{\"iss\":\"%s\",\"aud\":\"conclave-kms\","
			  "\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
			  iss, sub, (long long)now - 5, (long long)exp_s);
	size_t n = 0;
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	if (bl < 0 || (size_t)bl >= sizeof(body) ||
	    !b64u(out, sizeof(out), &n, head, strlen(head)) ||
	    n + 1 >= sizeof(out))
		return NULL;
	out[n++] = '.';
	if (!b64u(out, sizeof(out), &n, body, (size_t)bl) ||
	    !HMAC(EVP_sha256(), key, (int)key_len, (const uint8_t *)out, n, mac,
		  &mac_len) ||
	    n + 1 >= sizeof(out))
		return NULL;
	out[n++] = '.';
	if (!b64u(out, sizeof(out), &n, mac, mac_len))
		return NULL;
	return strdup(out);
}

static int read_secret(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	*len = n;
	return n ? 0 : -EINVAL;
}

/* The host and port of the KMS channel: --kms-host, or the node's relay
 * (the url's host and port). */
static int kms_addr(const struct perf_opts *o, char *host, size_t cap,
		    uint16_t *port)
{
	if (o->kms_host) {
		snprintf(host, cap, "%s", o->kms_host);
		*port = o->kms_port;
		return 0;
	}
	unsigned p = 0;
	char fmt[32];
	snprintf(fmt, sizeof(fmt), "ws://%%%zu[^:/]:%%u", cap - 1);
	if (sscanf(o->url, fmt, host, &p) != 2 || !p || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

/* KMS tokens for every endpoint, then each room created at the KMS by
 * its first endpoint, which adds the others (before anyone joins). */
static int perc_prepare(struct perf_run *run)
{
	const struct perf_opts *o = run->o;
	uint8_t key[512];
	size_t key_len = 0;
	int rc = read_secret(o->kms_secret_file, key, sizeof(key), &key_len);
	if (rc) {
		fprintf(stderr, "conclave-perf: --kms-token-secret-file: %s\n",
			cv_strerror(rc));
		return rc;
	}
	int64_t exp_s =
		(int64_t)time(NULL) + 3600 + (int64_t)(o->duration_s * 2);
	for (size_t i = 0; i < run->n_eps && !rc; i++) {
		run->eps[i].kms_token = kms_token(key, key_len, o->kms_issuer,
						  run->eps[i].name, exp_s);
		if (!run->eps[i].kms_token)
			rc = -ENOMEM;
	}
	OPENSSL_cleanse(key, sizeof(key));
	char host[64];
	uint16_t port = 0;
	if (!rc)
		rc = kms_addr(o, host, sizeof(host), &port);
	for (size_t i = 0; i < run->n_eps && !rc; i++) {
		struct perf_ep *first = &run->eps[i];
		if (i && !strcmp(run->eps[i - 1].room, first->room))
			continue;
		struct cv_kms_client *k = NULL;
		struct cv_kms_client_opts ko = {
			.host = host,
			.port = port,
			.kms_cert_file = o->kms_cert,
			.token = first->kms_token,
			.core_token = o->kms_host ? NULL : first->token,
		};
		rc = cv_kms_client_create(&k, &ko);
		if (!rc)
			rc = cv_kms_client_connect(k);
		if (!rc)
			rc = cv_kms_client_create_room(k, first->room, NULL);
		for (size_t j = i + 1; !rc && j < run->n_eps &&
				       !strcmp(run->eps[j].room, first->room);
		     j++)
			rc = cv_kms_client_add_member(k, first->room,
						      run->eps[j].name, NULL);
		cv_kms_client_destroy(k);
		if (rc)
			fprintf(stderr, "conclave-perf: KMS room %s: %s\n",
				first->room, cv_strerror(rc));
	}
	return rc;
}

/* ---- The main thread: sampling each second ---- */

static void progress_line(const struct perf_run *run, unsigned sec,
			  const struct perf_sec *s)
{
	double node = s->node_cpu_s, self = s->self_cpu_s;
	char cpu[64] = "";
	if (node >= 0)
		snprintf(cpu, sizeof(cpu), ", node CPU %.0f %%", 100 * node);
	fprintf(stderr,
		"conclave-perf: %3us %-8s up %u/%zu failed %u, rx %llu pkt/s, "
		"loss %.2f %%, delay p50 %.2f p99 %.2f ms%s, harness CPU "
		"%.0f %%\n",
		sec + 1, sec < run->warm_s ? "warm-up" : "measured", s->up,
		run->n_eps, s->failed, (unsigned long long)s->packets,
		perf_loss_pct(s->lost, s->packets),
		perf_hist_quantile(&s->delay, 0.5) / 1000.0,
		perf_hist_quantile(&s->delay, 0.99) / 1000.0, cpu,
		self >= 0 ? 100 * self : 0.0);
}

static void sleep_until(uint64_t t_us)
{
	for (uint64_t now = mono_us(); now < t_us; now = mono_us())
		usleep((useconds_t)(t_us - now < 100000 ? t_us - now : 100000));
}

static double delta(double now, double *prev)
{
	double d = now >= 0 && *prev >= 0 ? now - *prev : -1;
	*prev = now;
	return d;
}

/* Samples CPU at each second's boundary and prints the progress line
 * once every live thread has added its share of the second. */
static void sample_seconds(struct perf_run *run)
{
	pid_t node = run->o->node_pid;
	double node_prev = node > 0 ? perf_proc_cpu_s(node) : -1;
	double self_prev = perf_proc_cpu_s(getpid());
	double node_first = node_prev, self_first = self_prev;
	struct perf_sec *snap = malloc(sizeof(*snap));
	for (unsigned sec = 0; sec < run->n_secs; sec++) {
		sleep_until(run->t0_us + (uint64_t)(sec + 1) * 1000000);
		double dn = delta(node > 0 ? perf_proc_cpu_s(node) : -1,
				  &node_prev);
		double ds = delta(perf_proc_cpu_s(getpid()), &self_prev);
		pthread_mutex_lock(&run->mu);
		run->secs[sec].node_cpu_s = dn;
		run->secs[sec].self_cpu_s = ds;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 3;
		while (run->secs[sec].reported < run->threads_alive &&
		       pthread_cond_timedwait(&run->cond, &run->mu, &until) !=
			       ETIMEDOUT)
			;
		if (snap)
			*snap = run->secs[sec];
		pthread_mutex_unlock(&run->mu);
		if (snap && !run->o->quiet)
			progress_line(run, sec, snap);
	}
	free(snap);
	run->node_cpu_total_s =
		node_prev >= 0 && node_first >= 0 ? node_prev - node_first : -1;
	run->self_cpu_total_s =
		self_prev >= 0 && self_first >= 0 ? self_prev - self_first : -1;
}

/* The 1-minute load average (other work on a shared machine shows in
 * every figure); -1 when unknown. */
static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static int run_load(struct perf_run *run)
{
	const struct perf_opts *o = run->o;
	double ramp_s = o->ramp_per_sec > 0
				? (double)(run->n_eps - 1) / o->ramp_per_sec
				: 0;
	run->warm_s = (unsigned)ceil(ramp_s + o->warmup_s);
	run->n_secs = run->warm_s + (unsigned)ceil(o->duration_s);
	run->secs = calloc(run->n_secs, sizeof(*run->secs));
	if (!run->secs)
		return -ENOMEM;
	pthread_mutex_init(&run->mu, NULL);
	pthread_cond_init(&run->cond, NULL);
	struct perf_thread th[MAX_THREADS];
	run->t0_us = mono_us();
	run->threads_alive = o->threads;
	for (unsigned i = 0; i < o->threads; i++) {
		th[i] = (struct perf_thread){run, i, o->threads, 0, false};
		if (pthread_create(&th[i].tid, NULL, thread_main, &th[i])) {
			pthread_mutex_lock(&run->mu);
			run->threads_alive--;
			pthread_mutex_unlock(&run->mu);
			continue;
		}
		th[i].started = true;
	}
	run->load_start = loadavg();
	sample_seconds(run);
	run->load_end = loadavg();
	for (unsigned i = 0; i < o->threads; i++)
		if (th[i].started)
			pthread_join(th[i].tid, NULL);
	pthread_cond_destroy(&run->cond);
	pthread_mutex_destroy(&run->mu);
	return 0;
}

/* ---- Options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: conclave-perf (--url ws://HOST:PORT/ws | --start-node "
		"PATH)\n"
		"         [--token-secret S | --dev-token] [options]\n"
		"Loads a media node with many endpoints of the client library "
		"(signaling,\n"
		"full ICE, DTLS-SRTP, Opus audio, VP8-shaped video).\n\n"
		"Target and node:\n"
		"  --url URL            the node's WebSocket URL\n"
		"  --start-node PATH    start PATH (conclave) on free loopback "
		"ports first\n"
		"  --node-workers N     its media workers (default 1; 0: one "
		"per core)\n"
		"  --node-arg ARG       one more argument for it (repeatable)\n"
		"  --node-log FILE      its output (default: discarded)\n"
		"  --node-pid PID       a local node's pid, for CPU figures\n"
		"  --token-secret S     sign HS256 tokens with the node's "
		"secret\n"
		"  --dev-token          ask a --dev node for tokens\n"
		"  --target T           conclave (default) or janus (Janus "
		"VideoRoom:\n"
		"                       --url ws://127.0.1.1:8188/ from\n"
		"                       perf/janus/start.sh, --node-pid from "
		"its\n"
		"                       pid file)\n"
		"Load:\n"
		"  --scenario S         meeting (default), webinar, audio or "
		"perc\n"
		"                       (perc: a meeting in perc rooms; "
		"the node needs its\n"
		"                       perc.* config, see --node-arg)\n"
		"  --participants P     per room, meeting and audio (default "
		"4)\n"
		"  --publishers N --subscribers M   per room, webinar (1, 20)\n"
		"  --rooms R            the scenario in R rooms at once (1)\n"
		"  --ramp-per-sec X     endpoints started per second (20; 0: "
		"all at once)\n"
		"  --warmup S           seconds after the ramp before "
		"measuring (1)\n"
		"  --duration S         seconds measured (10)\n"
		"  --threads T          harness threads, one client loop each "
		"(2)\n"
		"  --video-bitrate BPS  per video publisher (500000)\n"
		"  --fps N              video frame rate (30)\n"
		"Impairment, on the endpoints' receive side (no tc netem "
		"here):\n"
		"  --loss PCT           drop PCT %% of received media packets\n"
		"  --loss-burst N       in bursts of N packets (1)\n"
		"  --jitter MS          hold each received packet 0..MS ms\n"
		"                       (random, so packets also reorder)\n"
		"  --reorder PCT        hold PCT %% of packets 20 ms more\n"
		"Report and gate (exit status 1 when violated, or when "
		"endpoints fail\n"
		"or expected tracks never arrive; 2 for usage errors):\n"
		"  --json FILE          JSON report\n"
		"  --plot FILE.png      delay p50/p99, loss and CPU per second "
		"(gnuplot)\n"
		"  --quiet              no progress line on stderr\n"
		"  --max-loss PCT       cumulative loss, every received track\n"
		"  --max-p99-ms MS      one-way delay p99, measured window\n"
		"  --min-received N     packets received by all endpoints\n"
		"Perc rooms (--scenario perc; every room created at the KMS by "
		"its first\n"
		"endpoint, which adds the others):\n"
		"  --kms-cert FILE      the conclave-kms certificate to pin\n"
		"  --kms-token-secret-file FILE  its "
		"channel.token_secret_file\n"
		"  --kms-issuer ISS     its channel.token_issuer\n"
		"  --kms-host IP --kms-port P   conclave-kms directly "
		"(default: the\n"
		"                       node's relay)\n"
		"Not bit-exact perc packets fail the run.\n");
}

enum {
	OPT_URL = 256,
	OPT_SECRET,
	OPT_DEV,
	OPT_START,
	OPT_WORKERS,
	OPT_NODE_ARG,
	OPT_NODE_LOG,
	OPT_NODE_PID,
	OPT_TARGET,
	OPT_SCENARIO,
	OPT_PARTICIPANTS,
	OPT_PUBLISHERS,
	OPT_SUBSCRIBERS,
	OPT_ROOMS,
	OPT_RAMP,
	OPT_WARMUP,
	OPT_DURATION,
	OPT_THREADS,
	OPT_BITRATE,
	OPT_FPS,
	OPT_LOSS,
	OPT_BURST,
	OPT_JITTER,
	OPT_REORDER,
	OPT_JSON,
	OPT_PLOT,
	OPT_QUIET,
	OPT_MAX_LOSS,
	OPT_MAX_P99,
	OPT_MIN_RX,
	OPT_KMS_HOST,
	OPT_KMS_PORT,
	OPT_KMS_CERT,
	OPT_KMS_SECRET,
	OPT_KMS_ISSUER,
	OPT_HELP,
};

static const struct option longopts[] = {
	{"url", required_argument, NULL, OPT_URL},
	{"token-secret", required_argument, NULL, OPT_SECRET},
	{"dev-token", no_argument, NULL, OPT_DEV},
	{"start-node", required_argument, NULL, OPT_START},
	{"node-workers", required_argument, NULL, OPT_WORKERS},
	{"node-arg", required_argument, NULL, OPT_NODE_ARG},
	{"node-log", required_argument, NULL, OPT_NODE_LOG},
	{"node-pid", required_argument, NULL, OPT_NODE_PID},
	{"target", required_argument, NULL, OPT_TARGET},
	{"scenario", required_argument, NULL, OPT_SCENARIO},
	{"participants", required_argument, NULL, OPT_PARTICIPANTS},
	{"publishers", required_argument, NULL, OPT_PUBLISHERS},
	{"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
	{"rooms", required_argument, NULL, OPT_ROOMS},
	{"ramp-per-sec", required_argument, NULL, OPT_RAMP},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"duration", required_argument, NULL, OPT_DURATION},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"video-bitrate", required_argument, NULL, OPT_BITRATE},
	{"fps", required_argument, NULL, OPT_FPS},
	{"loss", required_argument, NULL, OPT_LOSS},
	{"loss-burst", required_argument, NULL, OPT_BURST},
	{"jitter", required_argument, NULL, OPT_JITTER},
	{"reorder", required_argument, NULL, OPT_REORDER},
	{"json", required_argument, NULL, OPT_JSON},
	{"plot", required_argument, NULL, OPT_PLOT},
	{"quiet", no_argument, NULL, OPT_QUIET},
	{"max-loss", required_argument, NULL, OPT_MAX_LOSS},
	{"max-p99-ms", required_argument, NULL, OPT_MAX_P99},
	{"min-received", required_argument, NULL, OPT_MIN_RX},
	{"kms-host", required_argument, NULL, OPT_KMS_HOST},
	{"kms-port", required_argument, NULL, OPT_KMS_PORT},
	{"kms-cert", required_argument, NULL, OPT_KMS_CERT},
	{"kms-token-secret-file", required_argument, NULL, OPT_KMS_SECRET},
	{"kms-issuer", required_argument, NULL, OPT_KMS_ISSUER},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

/* A number in [lo, hi], whole or not; false on anything else. */
static bool num_arg(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static bool uint_arg(const char *s, unsigned hi, unsigned *out)
{
	double v;
	if (!num_arg(s, 0, hi, &v) || v != floor(v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* One option; false on a bad value. */
static bool set_opt(struct perf_opts *o, int ch, const char *arg)
{
	double v = 0;
	unsigned u = 0;
	switch (ch) {
	case OPT_URL:
		o->url = arg;
		return true;
	case OPT_SECRET:
		o->token_secret = arg;
		return *arg != '\0';
	case OPT_DEV:
		o->dev_token = true;
		return true;
	case OPT_START:
		o->start_node = arg;
		return true;
	case OPT_WORKERS:
		return uint_arg(arg, 256, &o->node_workers);
	case OPT_NODE_ARG:
		if (o->n_node_args == PERF_MAX_NODE_ARGS)
			return false;
		o->node_args[o->n_node_args++] = arg;
		return true;
	case OPT_NODE_LOG:
		o->node_log = arg;
		return true;
	case OPT_NODE_PID:
		if (!uint_arg(arg, 1u << 30, &u) || !u)
			return false;
		o->node_pid = (pid_t)u;
		return true;
	case OPT_TARGET:
		if (!strcmp(arg, "conclave"))
			o->target = PERF_TARGET_CONCLAVE;
		else if (!strcmp(arg, "janus"))
			o->target = PERF_TARGET_JANUS;
		else
			return false;
		return true;
	case OPT_SCENARIO:
		if (!strcmp(arg, "meeting"))
			o->scenario = PERF_MEETING;
		else if (!strcmp(arg, "webinar"))
			o->scenario = PERF_WEBINAR;
		else if (!strcmp(arg, "audio"))
			o->scenario = PERF_AUDIO;
		else if (!strcmp(arg, "perc"))
			o->scenario = PERF_PERC;
		else
			return false;
		return true;
	case OPT_PARTICIPANTS:
		return uint_arg(arg, MAX_ENDPOINTS, &o->participants) &&
		       o->participants >= 1;
	case OPT_PUBLISHERS:
		return uint_arg(arg, MAX_ENDPOINTS, &o->publishers) &&
		       o->publishers >= 1;
	case OPT_SUBSCRIBERS:
		return uint_arg(arg, MAX_ENDPOINTS, &o->subscribers);
	case OPT_ROOMS:
		return uint_arg(arg, MAX_ENDPOINTS, &o->rooms) && o->rooms;
	case OPT_RAMP:
		return num_arg(arg, 0, 1e6, &o->ramp_per_sec);
	case OPT_WARMUP:
		return num_arg(arg, 0, 3600, &o->warmup_s);
	case OPT_DURATION:
		return num_arg(arg, 1, 86400, &o->duration_s);
	case OPT_THREADS:
		return uint_arg(arg, MAX_THREADS, &o->threads) && o->threads;
	case OPT_BITRATE:
		if (!uint_arg(arg, 50000000, &u))
			return false;
		o->video_bitrate_bps = u;
		return true;
	case OPT_FPS:
		return uint_arg(arg, 120, &o->fps);
	case OPT_LOSS:
		return num_arg(arg, 0, 100, &o->loss_pct);
	case OPT_BURST:
		return uint_arg(arg, 1000, &o->loss_burst);
	case OPT_JITTER:
		return uint_arg(arg, 10000, &o->jitter_ms);
	case OPT_REORDER:
		return num_arg(arg, 0, 100, &o->reorder_pct);
	case OPT_JSON:
		o->json_path = arg;
		return true;
	case OPT_PLOT:
		o->plot_path = arg;
		return !strchr(arg, '\''); /* quoted in the gnuplot script */
	case OPT_QUIET:
		o->quiet = true;
		return true;
	case OPT_MAX_LOSS:
		return num_arg(arg, 0, 100, &o->max_loss_pct);
	case OPT_MAX_P99:
		return num_arg(arg, 0, 1e6, &o->max_p99_ms);
	case OPT_KMS_HOST:
		o->kms_host = arg;
		return true;
	case OPT_KMS_PORT:
		if (!uint_arg(arg, 65535, &u) || !u)
			return false;
		o->kms_port = (uint16_t)u;
		return true;
	case OPT_KMS_CERT:
		o->kms_cert = arg;
		return true;
	case OPT_KMS_SECRET:
		o->kms_secret_file = arg;
		return true;
	case OPT_KMS_ISSUER:
		o->kms_issuer = arg;
		return true;
	case OPT_MIN_RX:
		if (!num_arg(arg, 0, 1e15, &v) || v != floor(v))
			return false;
		o->min_received = (int64_t)v;
		return true;
	}
	return false;
}

static const char *opt_name(int ch)
{
	for (const struct option *lo = longopts; lo->name; lo++)
		if (lo->val == ch)
			return lo->name;
	return "?";
}

/* 0, or 2 after printing why (usage error). */
static int parse_opts(struct perf_opts *o, int argc, char **argv)
{
	*o = (struct perf_opts){
		.node_workers = 1,
		.scenario = PERF_MEETING,
		.participants = 4,
		.publishers = 1,
		.subscribers = 20,
		.rooms = 1,
		.ramp_per_sec = 20,
		.warmup_s = 1,
		.duration_s = 10,
		.threads = 2,
		.max_loss_pct = -1,
		.max_p99_ms = -1,
		.min_received = -1,
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h' || ch == OPT_HELP) {
			usage(stdout);
			exit(0);
		}
		if (ch == '?' || !set_opt(o, ch, optarg)) {
			if (ch != '?')
				fprintf(stderr,
					"conclave-perf: bad value for "
					"--%s: %s\n",
					opt_name(ch), optarg);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || (!o->url == !o->start_node)) {
		fprintf(stderr, "conclave-perf: give --url or --start-node\n");
		usage(stderr);
		return 2;
	}
	if (!o->start_node && !o->token_secret && !o->dev_token &&
	    o->target != PERF_TARGET_JANUS) {
		fprintf(stderr, "conclave-perf: --token-secret or --dev-token "
				"is needed with --url\n");
		return 2;
	}
	if (o->scenario == PERF_PERC &&
	    (o->target == PERF_TARGET_JANUS || o->dev_token || !o->kms_cert ||
	     !o->kms_secret_file || !o->kms_issuer ||
	     (o->kms_host && !o->kms_port))) {
		fprintf(stderr,
			"conclave-perf: --scenario perc needs "
			"--kms-cert, --kms-token-secret-file and "
			"--kms-issuer (and --kms-port with --kms-host), "
			"node tokens signed here (not --dev-token), "
			"and a Conclave node\n");
		return 2;
	}
	if (o->target == PERF_TARGET_JANUS && o->start_node) {
		fprintf(stderr, "conclave-perf: --target janus takes --url "
				"(start Janus with perf/janus/start.sh) and "
				"--node-pid for its CPU\n");
		return 2;
	}
	return 0;
}

/* ---- main ---- */

static volatile pid_t started_node_pid;

/* Ctrl-C: the node we started must not outlive us (kill and _exit are
 * async-signal-safe). */
static void on_signal(int sig)
{
	if (started_node_pid > 0)
		kill(started_node_pid, SIGTERM);
	_exit(128 + sig);
}

static void free_run(struct perf_run *run)
{
	for (size_t i = 0; run->eps && i < run->n_eps; i++) {
		free(run->eps[i].token);
		free(run->eps[i].kms_token);
	}
	free(run->eps);
	free(run->secs);
}

static int report(struct perf_run *run)
{
	const struct perf_opts *o = run->o;
	struct perf_summary s;
	perf_summarize(run, &s);
	perf_report_text(run, &s);
	fflush(stdout);
	int status = s.n_violations ? 1 : 0;
	if (o->json_path) {
		int rc = perf_report_json(run, &s, o->json_path);
		if (rc) {
			fprintf(stderr, "conclave-perf: --json %s: %s\n",
				o->json_path, cv_strerror(rc));
			status = 2;
		}
	}
	if (o->plot_path) {
		int rc = perf_report_plot(run, o->plot_path);
		if (rc)
			fprintf(stderr, "conclave-perf: --plot %s: %s\n",
				o->plot_path,
				rc == -ENOENT ? "gnuplot is not installed "
						"(Debian: gnuplot-nox)"
					      : "gnuplot failed");
		if (rc)
			status = 2;
	}
	return status;
}

int main(int argc, char **argv)
{
	struct perf_opts o;
	int status = parse_opts(&o, argc, argv);
	if (status)
		return status;
	signal(SIGPIPE, SIG_IGN);
	struct perf_node node = {.out_fd = -1, .log_fd = -1};
	const char *secret = o.token_secret;
	if (o.start_node) {
		int rc =
			perf_node_start(&node, o.start_node, o.node_workers,
					o.node_args, o.n_node_args, o.node_log);
		if (rc) {
			fprintf(stderr, "conclave-perf: cannot start %s: %s\n",
				o.start_node, cv_strerror(rc));
			return 2;
		}
		started_node_pid = node.pid;
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		o.url = node.url;
		o.node_pid = node.pid;
		if (!o.dev_token)
			secret = node.secret;
		if (!o.quiet)
			fprintf(stderr,
				"conclave-perf: node pid %ld listening on %s\n",
				(long)node.pid, node.url);
	}
	struct perf_run run = {.o = &o};
	int rc = build_endpoints(&run);
	if (!rc && o.target != PERF_TARGET_JANUS) /* Janus takes no token */
		rc = make_tokens(&run, secret, o.dev_token);
	if (!rc && o.scenario == PERF_PERC)
		rc = perc_prepare(&run);
	if (!rc)
		rc = run_load(&run);
	status = rc ? 2 : report(&run);
	perf_node_stop(&node);
	free_run(&run);
	return status;
}
