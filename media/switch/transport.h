/*
 * A transport: the ICE-lite agent, DTLS association and the two SRTP
 * sessions of one peer connection (BUNDLE + rtcp-mux: one 5-tuple).
 * Module-local to the switch; one transport belongs to one worker thread.
 */
#ifndef CONCLAVE_SWITCH_TRANSPORT_H
#define CONCLAVE_SWITCH_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conclave/loop.h"
#include "conclave/switch.h"

struct cv_pkt;
struct cv_transport;

struct cv_transport_hooks {
	/* Sends bytes (STUN answer, DTLS record) to addr; the callee copies. */
	void (*send)(void *arg, struct cv_transport *t, const uint8_t *buf,
		     size_t len, const struct sockaddr_storage *addr);
	/*
	 * ICE selected (old_addr NULL) or changed the peer's address.
	 * Returns 0 to accept; non-zero refuses (the address belongs to
	 * another transport) and the transport keeps its previous peer.
	 */
	int (*address_changed)(void *arg, struct cv_transport *t,
			       const struct sockaddr_storage *old_addr,
			       const struct sockaddr_storage *new_addr);
	void (*state)(void *arg, struct cv_transport *t,
		      enum cv_transport_state st);
	void *arg;
};

/* kd: the switch's tunnel link (perc transports; NULL: they fail with
 * -ENOTCONN). */
int cv_transport_create(struct cv_transport **out,
			const struct cv_transport_spec *spec,
			struct cv_dtls_ctx *dtls_ctx, struct cv_tunnel_link *kd,
			struct cv_loop *loop, uint32_t consent_timeout_ms,
			const struct cv_transport_hooks *hooks);
void cv_transport_destroy(struct cv_transport *t);

uint64_t cv_transport_id(const struct cv_transport *t);
/* True for the transport's current ICE ufrag, or the previous one during
 * an ICE restart: how a check from a new address finds its transport. */
bool cv_transport_owns_ufrag(const struct cv_transport *t, const uint8_t *ufrag,
			     size_t len);
bool cv_transport_connected(const struct cv_transport *t);
/* The selected peer address, or NULL before ICE picked one. */
const struct sockaddr_storage *cv_transport_peer(const struct cv_transport *t);

/* perc transports: the RFC 9185 association id; NULL for the others. */
const struct cv_tunnel_assoc_id *
cv_transport_assoc(const struct cv_transport *t);

/* perc: a TUNNELED_DTLS or MEDIA_KEYS from the link for this transport's
 * association id (m borrowed). */
void cv_transport_tunnel_message(struct cv_transport *t,
				 const struct cv_tunnel_msg *m);
/* perc: the link went down (err as on_down). */
void cv_transport_tunnel_down(struct cv_transport *t, int err);

/* The SRTP sessions once connected (perc: the hop-by-hop ones), else
 * NULL. Borrowed; the transport's thread only. */
struct cv_srtp *cv_transport_srtp_in(const struct cv_transport *t);
struct cv_srtp *cv_transport_srtp_out(const struct cv_transport *t);

/* Addresses pkt to the selected peer for sending as is (already
 * protected). Returns 0, or -1 with *why set (not connected). */
int cv_transport_address(struct cv_transport *t, struct cv_pkt *pkt,
			 enum cv_drop *why);

/* New ICE credentials (restart); the old pair stays until a new check. */
int cv_transport_restart_ice(struct cv_transport *t,
			     const struct cv_transport_spec *spec);

/*
 * Handles a STUN datagram. Returns 0 when it was a valid check (answered),
 * or the drop reason.
 */
int cv_transport_handle_stun(struct cv_transport *t, const struct cv_pkt *pkt,
			     uint64_t now_ms, enum cv_drop *why);

/* Handles a DTLS datagram from the selected address. */
void cv_transport_handle_dtls(struct cv_transport *t, const struct cv_pkt *pkt,
			      uint64_t now_ms);

/* Drops the inbound SRTP state of an SSRC the switch does not accept (or
 * no longer forwards), so that it does not use up the session's ceiling. */
void cv_transport_forget_ssrc(struct cv_transport *t, uint32_t ssrc);

/*
 * Unprotects SRTP or SRTCP in place. Returns 0, or -1 with *why set.
 */
int cv_transport_unprotect(struct cv_transport *t, struct cv_pkt *pkt,
			   bool rtcp, enum cv_drop *why);

/*
 * Protects pkt in place (needs SRTP tailroom) and addresses it to the
 * selected peer. Returns 0, or -1 with *why set.
 */
int cv_transport_protect(struct cv_transport *t, struct cv_pkt *pkt, bool rtcp,
			 enum cv_drop *why);

#endif
