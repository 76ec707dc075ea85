/*
 * One peer connection's transport: ICE-lite decides the peer's address,
 * DTLS (behind struct cv_dtls, so perc rooms can tunnel it) yields the
 * SRTP keys, and two SRTP sessions protect and unprotect in place.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/pool.h"
#include "conclave/secret.h"
#include "conclave/srtp.h"
#include "conclave/stun.h"
#include "media/switch/transport.h"

struct cv_transport {
	uint64_t id;
	struct cv_loop *loop;
	struct cv_transport_hooks hooks;
	struct cv_ice_lite *ice;
	struct cv_dtls *dtls;
	struct cv_srtp *srtp_in, *srtp_out;
	size_t rtp_trailer, rtcp_trailer;
	struct cv_timer timer; /* DTLS retransmission and ICE consent */
	struct sockaddr_storage peer;
	bool have_peer;
	bool connected; /* SRTP keyed */
	bool dead;	/* failed, closed or consent lost: reported once */
};

static void report(struct cv_transport *t, enum cv_transport_state st)
{
	if (st != CV_TRANSPORT_CONNECTED) {
		if (t->dead)
			return;
		t->dead = true;
		t->connected = false;
	}
	t->hooks.state(t->hooks.arg, t, st);
}

static void dtls_send(void *arg, const uint8_t *rec, size_t len)
{
	struct cv_transport *t = arg;
	if (t->have_peer)
		t->hooks.send(t->hooks.arg, t, rec, len, &t->peer);
}

static void dtls_connected(void *arg, uint16_t profile_id,
			   const uint8_t *material, size_t material_len,
			   bool is_client)
{
	struct cv_transport *t = arg;
	enum cv_srtp_profile profile;
	if (cv_srtp_sessions_from_dtls(profile_id, material, material_len,
				       is_client, &t->srtp_in,
				       &t->srtp_out) != 0) {
		report(t, CV_TRANSPORT_FAILED);
		return;
	}
	profile = cv_srtp_get_profile(t->srtp_out);
	t->rtp_trailer = cv_srtp_profile_rtp_trailer_bytes(profile);
	t->rtcp_trailer = cv_srtp_profile_rtcp_trailer_bytes(profile);
	t->connected = true;
	report(t, CV_TRANSPORT_CONNECTED);
}

static void dtls_failed(void *arg, int err)
{
	(void)err;
	report(arg, CV_TRANSPORT_FAILED);
}

static void dtls_closed(void *arg)
{
	report(arg, CV_TRANSPORT_CLOSED);
}

/* Re-arms the one timer at the earlier of DTLS's and ICE's deadlines. */
static void arm_timer(struct cv_transport *t)
{
	uint64_t now = cv_loop_now_ms(t->loop);
	uint64_t due = cv_ice_lite_next_timeout_ms(t->ice);
	int64_t d = cv_dtls_next_timeout_ms(t->dtls, now);
	if (d >= 0 && (due == 0 || now + (uint64_t)d < due))
		due = now + (uint64_t)d;
	if (due)
		cv_timer_start(t->loop, &t->timer, due);
	else
		cv_timer_stop(t->loop, &t->timer);
}

static void on_timer(void *arg)
{
	struct cv_transport *t = arg;
	uint64_t now = cv_loop_now_ms(t->loop);
	cv_dtls_handle_timer(t->dtls, now);
	if (cv_ice_lite_tick(t->ice, now) == CV_ICE_FAILED) {
		report(t, CV_TRANSPORT_CONSENT_LOST);
		return;
	}
	if (!t->dead)
		arm_timer(t);
}

int cv_transport_create(struct cv_transport **out,
			const struct cv_transport_spec *spec,
			struct cv_dtls_ctx *dtls_ctx, struct cv_tunnel_link *kd,
			struct cv_loop *loop, uint32_t consent_timeout_ms,
			const struct cv_transport_hooks *hooks)
{
	struct cv_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->id = spec->id;
	t->loop = loop;
	t->hooks = *hooks;
	cv_timer_init(&t->timer, on_timer, t);
	struct cv_ice_lite_config icfg = {.consent_timeout_ms =
						  consent_timeout_ms};
	uint64_t now = cv_loop_now_ms(loop);
	struct cv_dtls_callbacks cb = {
		.send = dtls_send,
		.on_connected = dtls_connected,
		.on_failed = dtls_failed,
		.on_closed = dtls_closed,
		.arg = t,
	};
	int err = cv_ice_lite_create(&t->ice, &icfg, now);
	if (!err)
		err = cv_ice_lite_set_local(t->ice, &spec->local);
	if (!err)
		err = cv_ice_lite_set_remote(t->ice, &spec->remote);
	if (!err && spec->perc)
		/* RFC 9185: the endpoint (always the DTLS client) finishes
		 * DTLS with the Key Distributor; we relay and get only the
		 * hop-by-hop keys. */
		err = kd ? cv_dtls_tunnel_create(&t->dtls, kd, &spec->assoc,
						 CV_DTLS_ROLE_SERVER, &cb)
			 : -ENOTCONN;
	else if (!err)
		err = cv_dtls_local_create(&t->dtls, dtls_ctx, spec->dtls_role,
					   &spec->remote_fp, 1, &cb);
	if (err) {
		cv_ice_lite_destroy(t->ice);
		free(t);
		return err;
	}
	arm_timer(t);
	*out = t;
	return 0;
}

void cv_transport_destroy(struct cv_transport *t)
{
	if (!t)
		return;
	cv_timer_stop(t->loop, &t->timer);
	if (t->dtls && t->connected)
		cv_dtls_close(t->dtls); /* close_notify: the peer learns now */
	cv_dtls_destroy(t->dtls);
	cv_ice_lite_destroy(t->ice);
	cv_srtp_destroy(t->srtp_in);
	cv_srtp_destroy(t->srtp_out);
	free(t);
}

uint64_t cv_transport_id(const struct cv_transport *t)
{
	return t->id;
}

bool cv_transport_owns_ufrag(const struct cv_transport *t, const uint8_t *ufrag,
			     size_t len)
{
	return cv_ice_lite_owns_ufrag(t->ice, ufrag, len);
}

bool cv_transport_connected(const struct cv_transport *t)
{
	return t->connected;
}

const struct sockaddr_storage *cv_transport_peer(const struct cv_transport *t)
{
	return t->have_peer ? &t->peer : NULL;
}

const struct cv_tunnel_assoc_id *
cv_transport_assoc(const struct cv_transport *t)
{
	return cv_dtls_tunnel_assoc(t->dtls);
}

void cv_transport_tunnel_message(struct cv_transport *t,
				 const struct cv_tunnel_msg *m)
{
	if (t->dead)
		return;
	(void)cv_dtls_tunnel_handle_message(t->dtls, m);
	if (!t->dead)
		arm_timer(t);
}

void cv_transport_tunnel_down(struct cv_transport *t, int err)
{
	if (!t->dead)
		cv_dtls_tunnel_link_down(t->dtls, err);
}

struct cv_srtp *cv_transport_srtp_in(const struct cv_transport *t)
{
	return t->connected ? t->srtp_in : NULL;
}

struct cv_srtp *cv_transport_srtp_out(const struct cv_transport *t)
{
	return t->connected ? t->srtp_out : NULL;
}

/* The selected peer as pkt's destination (the caller checked there is
 * one). */
static void address_to_peer(const struct cv_transport *t, struct cv_pkt *pkt)
{
	pkt->addr = t->peer;
	pkt->addr_len = t->peer.ss_family == AF_INET6
				? sizeof(struct sockaddr_in6)
				: sizeof(struct sockaddr_in);
}

int cv_transport_address(struct cv_transport *t, struct cv_pkt *pkt,
			 enum cv_drop *why)
{
	if (!t->connected || !t->have_peer) {
		*why = CV_DROP_NOT_CONNECTED;
		return -1;
	}
	address_to_peer(t, pkt);
	return 0;
}

int cv_transport_restart_ice(struct cv_transport *t,
			     const struct cv_transport_spec *spec)
{
	int err = cv_ice_lite_restart(t->ice, &spec->local, &spec->remote,
				      cv_loop_now_ms(t->loop));
	if (!err)
		arm_timer(t);
	return err;
}

int cv_transport_handle_stun(struct cv_transport *t, const struct cv_pkt *pkt,
			     uint64_t now_ms, enum cv_drop *why)
{
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t resp_len = 0;
	int rc =
		cv_ice_lite_handle_stun(t->ice, pkt->data, pkt->len, &pkt->addr,
					now_ms, resp, sizeof(resp), &resp_len);
	if (resp_len)
		t->hooks.send(t->hooks.arg, t, resp, resp_len, &pkt->addr);
	const struct sockaddr_storage *sel = cv_ice_lite_selected(t->ice);
	if (sel && (!t->have_peer || !cv_sockaddr_equal(sel, &t->peer))) {
		if (t->hooks.address_changed(t->hooks.arg, t,
					     t->have_peer ? &t->peer : NULL,
					     sel) == 0) {
			t->peer = *sel;
			t->have_peer = true;
		}
	}
	arm_timer(t);
	if (rc != 0) {
		*why = CV_DROP_STUN_REJECTED;
		return -1;
	}
	return 0;
}

void cv_transport_handle_dtls(struct cv_transport *t, const struct cv_pkt *pkt,
			      uint64_t now_ms)
{
	if (t->dead)
		return;
	cv_dtls_handle_datagram(t->dtls, pkt->data, pkt->len, now_ms);
	if (!t->dead)
		arm_timer(t);
}

void cv_transport_forget_ssrc(struct cv_transport *t, uint32_t ssrc)
{
	if (t->srtp_in)
		cv_srtp_forget(t->srtp_in, ssrc);
}

int cv_transport_unprotect(struct cv_transport *t, struct cv_pkt *pkt,
			   bool rtcp, enum cv_drop *why)
{
	if (!t->connected) {
		*why = CV_DROP_NOT_CONNECTED;
		return -1;
	}
	int rc = rtcp ? cv_srtp_unprotect_rtcp(t->srtp_in, pkt->data, &pkt->len)
		      : cv_srtp_unprotect(t->srtp_in, pkt->data, &pkt->len);
	if (rc == 0)
		return 0;
	*why = rc == CV_EINTEGRITY ? CV_DROP_SRTP_AUTH
	       : rc == CV_EREPLAY  ? CV_DROP_SRTP_REPLAY
	       : rc == CV_ETOOBIG  ? CV_DROP_SRTP_TOO_MANY_SSRCS
				   : CV_DROP_SRTP_OTHER;
	return -1;
}

int cv_transport_protect(struct cv_transport *t, struct cv_pkt *pkt, bool rtcp,
			 enum cv_drop *why)
{
	if (!t->connected || !t->have_peer) {
		*why = CV_DROP_NOT_CONNECTED;
		return -1;
	}
	size_t cap = cv_pkt_cap(pkt);
	int rc = rtcp ? cv_srtp_protect_rtcp(t->srtp_out, pkt->data, &pkt->len,
					     cap)
		      : cv_srtp_protect(t->srtp_out, pkt->data, &pkt->len, cap);
	if (rc != 0) {
		*why = CV_DROP_EGRESS_PROTECT;
		return -1;
	}
	address_to_peer(t, pkt);
	return 0;
}
