/*
 * The client loop: one GLib context shared by many endpoints, with the
 * libwebsockets client context serviced on it, the DTLS identity and the
 * Opus tone ring.
 *
 * Why lws is polled from a GLib timer instead of running on its own
 * thread: every endpoint's state (signaling, ICE, DTLS, media) then lives
 * on one thread with no lock and no cross-thread hand-off, and one
 * non-blocking lws_service() per tick serves every socket of the loop, so
 * hundreds of endpoints cost one poll(2) per tick; the same tick paces
 * every endpoint's media. Signaling latency grows
 * by at most one tick (CV_CLIENT_TICK_MS), which signaling does not mind.
 */
#include <errno.h>
#include <math.h>
#include <opus.h>
#include <string.h>

#include "client/endpoint.h"
#include "conclave/err.h"
#include "conclave/srtp.h"

static const struct lws_protocols protocols[] = {
	{"conclave.v1", cv_client_ws_callback, 0, CV_CLIENT_WS_MAX_BYTES, 0,
	 NULL, 0},
	/* The same callback; the endpoint knows which protocol it speaks. */
	{"janus-protocol", cv_client_ws_callback, 0, CV_CLIENT_WS_MAX_BYTES, 0,
	 NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* One timer per loop, not per endpoint: a few hundred endpoints cost one
 * wake-up per tick. */
static gboolean on_tick(gpointer data)
{
	struct cv_client_loop *loop = data;
	/* A negative timeout polls without waiting (lws 4.x). */
	lws_service(loop->lws, -1);
	uint64_t now = cv_client_now_us();
	for (guint i = 0; i < loop->clients->len; i++)
		cv_client_tick(g_ptr_array_index(loop->clients, i), now);
	return G_SOURCE_CONTINUE;
}

/* 440 Hz at -12 dBFS: 440 whole periods per second, so the 1 s ring loops
 * without a click. */
static int encode_tone(struct cv_client_loop *loop)
{
	int err = 0;
	OpusEncoder *enc =
		opus_encoder_create(48000, 1, OPUS_APPLICATION_AUDIO, &err);
	if (!enc || err != OPUS_OK)
		return -EIO;
	opus_encoder_ctl(enc, OPUS_SET_BITRATE(32000));
	opus_int16 pcm[960];
	int rc = 0;
	for (size_t f = 0; f < CV_CLIENT_OPUS_RING; f++) {
		for (size_t i = 0; i < 960; i++) {
			double t = (double)(f * 960 + i) / 48000.0;
			pcm[i] = (opus_int16)(8192.0 * sin(2 * M_PI * 440 * t));
		}
		opus_int32 n = opus_encode(enc, pcm, 960, loop->opus[f],
					   CV_CLIENT_OPUS_MAX);
		if (n <= 0) {
			rc = -EIO;
			break;
		}
		loop->opus_len[f] = (size_t)n;
	}
	opus_encoder_destroy(enc);
	return rc;
}

int cv_client_loop_create(struct cv_client_loop **out, GMainContext *ctx)
{
	struct cv_client_loop *loop = g_new0(struct cv_client_loop, 1);
	int rc = cv_srtp_global_init();
	if (rc)
		goto fail;
	loop->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_new();
	loop->clients = g_ptr_array_new();
	rc = encode_tone(loop);
	if (rc)
		goto fail;
	rc = cv_dtls_cert_generate(&loop->cert);
	if (rc)
		goto fail;
	rc = cv_dtls_ctx_create(&loop->dtls_ctx, loop->cert);
	if (rc)
		goto fail;
	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.timeout_secs = 10;
	loop->lws = lws_create_context(&info);
	if (!loop->lws) {
		rc = -EIO;
		goto fail;
	}
	loop->lws_timer = g_timeout_source_new(CV_CLIENT_TICK_MS);
	g_source_set_callback(loop->lws_timer, on_tick, loop, NULL);
	g_source_attach(loop->lws_timer, loop->ctx);
	*out = loop;
	return 0;
fail:
	cv_client_loop_destroy(loop);
	return rc;
}

GMainContext *cv_client_loop_context(struct cv_client_loop *loop)
{
	return loop->ctx;
}

static bool any_active(const struct cv_client_loop *loop)
{
	for (guint i = 0; i < loop->clients->len; i++) {
		const struct cv_client *c = g_ptr_array_index(loop->clients, i);
		if (!cv_client_state_final(c->state))
			return true;
	}
	return false;
}

void cv_client_loop_run(struct cv_client_loop *loop, uint64_t timeout_ms,
			bool until_idle)
{
	uint64_t end = cv_client_now_us() + timeout_ms * 1000;
	/* The lws timer wakes the context every tick, so the deadline is
	 * checked at least that often. */
	while (cv_client_now_us() < end) {
		if (until_idle && !any_active(loop))
			break;
		g_main_context_iteration(loop->ctx, TRUE);
	}
}

void cv_client_loop_destroy(struct cv_client_loop *loop)
{
	if (!loop)
		return;
	if (loop->lws_timer) {
		g_source_destroy(loop->lws_timer);
		g_source_unref(loop->lws_timer);
	}
	if (loop->lws)
		lws_context_destroy(loop->lws);
	loop->dtls_ctx = cv_dtls_ctx_unref(loop->dtls_ctx);
	loop->cert = cv_dtls_cert_unref(loop->cert);
	if (loop->clients)
		g_ptr_array_free(loop->clients, TRUE);
	if (loop->ctx)
		g_main_context_unref(loop->ctx);
	g_free(loop);
}
