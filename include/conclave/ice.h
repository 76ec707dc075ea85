/*
 * The media node's ICE-lite agent (RFC 8445 section 2.5), one per
 * transport. A lite agent has only host candidates, never sends checks and
 * is always in the controlled role: it answers the peer's Binding requests
 * (validated with short-term credentials), picks the 5-tuple media uses,
 * and treats those requests as consent to send (RFC 7675).
 *
 * An agent belongs to the worker thread that owns its transport; every
 * function below must be called on that thread. The agent never reads a
 * clock: callers pass the worker's monotonic time as now_ms.
 */
#ifndef CONCLAVE_ICE_H
#define CONCLAVE_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conclave/stun.h"

/* What we generate (RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" /
 * "/"; pwd carries at least 128 bits of randomness, ours 144). */
#define CV_ICE_UFRAG_CHARS 8
#define CV_ICE_PWD_CHARS   24
/* What we accept from SDP (RFC 8839 section 5.4: 4..256 and 22..256). */
#define CV_ICE_UFRAG_MAX 256
#define CV_ICE_PWD_MAX	 256

/* RFC 7675 section 5.1: consent expires 30 s after the last evidence. */
#define CV_ICE_CONSENT_TIMEOUT_MS 30000
/* No check for this long: report DISCONNECTED (media may still flow). */
#define CV_ICE_DISCONNECT_TIMEOUT_MS 10000
/* NEW for this long without a valid check: FAILED. */
#define CV_ICE_CONNECT_TIMEOUT_MS 30000

/* NUL-terminated strings; pwd is a secret: never log it. */
struct cv_ice_credentials {
	char ufrag[CV_ICE_UFRAG_MAX + 1];
	char pwd[CV_ICE_PWD_MAX + 1];
};

/*
 * Fills out with a fresh ufrag (CV_ICE_UFRAG_CHARS) and pwd
 * (CV_ICE_PWD_CHARS) drawn with RAND_bytes. Returns 0 or CV_ECRYPTO (out is
 * then wiped). Thread: any.
 */
int cv_ice_credentials_generate(struct cv_ice_credentials *out);

enum cv_ice_state {
	CV_ICE_NEW,	     /* no valid check yet */
	CV_ICE_CONNECTED,    /* a pair is selected and consent is fresh */
	CV_ICE_DISCONNECTED, /* no check for disconnect_ms; recoverable */
	CV_ICE_FAILED,	     /* consent expired or never came; terminal
				until cv_ice_lite_restart */
};

/* Zero fields take the CV_ICE_*_TIMEOUT_MS defaults. */
struct cv_ice_lite_config {
	uint32_t consent_timeout_ms;
	uint32_t disconnect_timeout_ms;
	uint32_t connect_timeout_ms;
};

/* Counters, for metrics; a worker reads them on its own thread. */
struct cv_ice_lite_stats {
	uint64_t checks_ok;	 /* answered with a success response */
	uint64_t dropped;	 /* silently discarded (parse, FINGERPRINT) */
	uint64_t auth_failures;	 /* answered 400 or 401 */
	uint64_t role_conflicts; /* answered 487 */
	uint64_t unknown_attrs;	 /* answered 420 */
	uint64_t selected_changes;
};

struct cv_ice_lite;

/*
 * Creates an agent in state NEW; cfg may be NULL (defaults), now_ms starts
 * the connect timeout. Credentials are set separately. Returns 0 and a new
 * agent in *out (caller owns it; free with cv_ice_lite_destroy), or
 * -ENOMEM (*out untouched). Thread: the owning worker.
 */
int cv_ice_lite_create(struct cv_ice_lite **out,
		       const struct cv_ice_lite_config *cfg, uint64_t now_ms);

/* Frees ice (NULL is fine) and wipes its passwords. */
void cv_ice_lite_destroy(struct cv_ice_lite *ice);

/*
 * Sets our credentials (the ones in our SDP) / the peer's (from its SDP).
 * c: borrowed, copied. -EINVAL when a ufrag or pwd is empty, too long or
 * contains ':' (ufrag); the agent is then unchanged. Until remote
 * credentials are set, a request is accepted with any remote ufrag after
 * the ':' (RFC 8445 section 7.3: checks may precede the peer's SDP).
 */
int cv_ice_lite_set_local(struct cv_ice_lite *ice,
			  const struct cv_ice_credentials *c);
int cv_ice_lite_set_remote(struct cv_ice_lite *ice,
			   const struct cv_ice_credentials *c);

/*
 * ICE restart (RFC 8445 section 9): new local and remote credentials. The
 * previous credentials and the selected pair stay valid (checks with the
 * old credentials are answered and keep consent) until the first valid
 * check with the new credentials, which then selects its own address. If
 * the agent had FAILED, the old pair is dropped and it starts over in NEW
 * with now_ms starting the connect timeout. Borrowed, copied. Returns 0 or
 * -EINVAL (agent unchanged).
 */
int cv_ice_lite_restart(struct cv_ice_lite *ice,
			const struct cv_ice_credentials *local,
			const struct cv_ice_credentials *remote,
			uint64_t now_ms);

/*
 * Handles one STUN message that arrived from `from` (borrowed). When it is
 * a Binding request for us, writes the answer into resp (resp_cap >=
 * CV_STUN_RESPONSE_MAX_BYTES always suffices) and sets *resp_len; the
 * caller sends resp to `from` whenever *resp_len > 0, whatever the return.
 *
 * Returns 0: a valid check, answered with success (consent refreshed,
 * selected pair maybe updated), or a Binding indication (keepalive,
 * nothing to send). Errors: CV_EPARSE (malformed), CV_EINTEGRITY (missing
 * or bad FINGERPRINT), CV_EPROTO (a response or a non-Binding indication:
 * a lite agent sends no requests) and CV_EEXPIRED (agent FAILED): dropped,
 * *resp_len 0. CV_EAUTH (400/401 sent: missing or wrong USERNAME or
 * MESSAGE-INTEGRITY, or no local credentials yet), CV_EUNSUPP (420 for
 * unknown comprehension-required attributes, or 400 for another method),
 * CV_EPROTO with a response (400 missing PRIORITY, 487 role conflict).
 * -ENOBUFS when resp_cap is too small, -EAFNOSUPPORT when from is not
 * AF_INET or AF_INET6 (nothing changed, nothing to send).
 */
int cv_ice_lite_handle_stun(struct cv_ice_lite *ice, const uint8_t *msg,
			    size_t len, const struct sockaddr_storage *from,
			    uint64_t now_ms, uint8_t *resp, size_t resp_cap,
			    size_t *resp_len);

/*
 * Advances the timers: DISCONNECTED after disconnect_timeout_ms without a
 * valid check on the selected pair, FAILED after consent_timeout_ms (RFC
 * 7675: stop sending) or, from NEW, after connect_timeout_ms. Returns the
 * state after the tick.
 */
enum cv_ice_state cv_ice_lite_tick(struct cv_ice_lite *ice, uint64_t now_ms);

/* When the next state change could happen without new input (for the
 * worker's timer); UINT64_MAX once FAILED. */
uint64_t cv_ice_lite_next_timeout_ms(const struct cv_ice_lite *ice);

enum cv_ice_state cv_ice_lite_state(const struct cv_ice_lite *ice);

/* Short lower-case name of a state, for logs. */
const char *cv_ice_state_name(enum cv_ice_state s);

/* True when addr is the selected remote address (media may be accepted
 * from and sent to it). False while none is selected or once FAILED. */
bool cv_ice_lite_is_selected(const struct cv_ice_lite *ice,
			     const struct sockaddr_storage *addr);

/* The selected remote address (borrowed, valid until the next
 * cv_ice_lite_* call), or NULL when none or FAILED. */
const struct sockaddr_storage *
cv_ice_lite_selected(const struct cv_ice_lite *ice);

/* True when the selected pair was nominated (USE-CANDIDATE), false while
 * it is only the first valid pair. */
bool cv_ice_lite_nominated(const struct cv_ice_lite *ice);

/* True when ufrag[0..len) is our current local ufrag, or the previous one
 * during a restart: lets a worker map a request from an unknown address
 * (see cv_stun_local_ufrag) to this agent's transport. */
bool cv_ice_lite_owns_ufrag(const struct cv_ice_lite *ice, const uint8_t *ufrag,
			    size_t len);

/* Our current local ufrag (NUL-terminated, "" before set_local). */
const char *cv_ice_lite_local_ufrag(const struct cv_ice_lite *ice);

void cv_ice_lite_get_stats(const struct cv_ice_lite *ice,
			   struct cv_ice_lite_stats *out);

#endif
