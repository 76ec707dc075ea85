/*
 * ICE-lite agent (RFC 8445 section 2.5) with RFC 7675 consent freshness.
 *
 * Choices worth knowing:
 * - The first valid check selects its source address even before any
 *   nomination, so DTLS and media can start at once (browsers send DTLS
 *   right after their first successful check). A later USE-CANDIDATE
 *   selects its own address and marks the pair nominated; once a nominated
 *   pair exists, un-nominated checks from elsewhere change nothing.
 * - Consent is per selected pair: only valid checks arriving from the
 *   selected address refresh it. A lite agent sends no checks of its own,
 *   so the controlling peer's checks are the consent evidence.
 * - Lite is always controlled (RFC 8445 section 6.1.1); a request carrying
 *   ICE-CONTROLLED is a role conflict we cannot resolve by switching, so it
 *   gets 487 and the peer switches (section 7.3.1.1).
 */
#include "conclave/ice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conclave/err.h"

/* One set of local and remote credentials ("generation" across restarts). */
struct ice_gen {
	bool has_local;
	bool has_remote;
	size_t lufrag_len;
	size_t lpwd_len;
	size_t rufrag_len;
	size_t rpwd_len;
	struct cv_ice_credentials local;
	struct cv_ice_credentials remote;
};

struct cv_ice_lite {
	struct cv_ice_lite_config cfg;
	enum cv_ice_state state;
	struct ice_gen cur;
	struct ice_gen prev; /* valid while has_prev: restart in progress */
	bool has_prev;

	bool has_selected;
	bool nominated;
	struct sockaddr_storage selected;

	uint64_t connect_start_ms;
	uint64_t last_consent_ms;
	struct cv_ice_lite_stats stats;
};

/* RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" / "/": 64 of them,
 * so a random byte's low 6 bits pick one without bias. */
static const char ice_chars[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int cv_ice_credentials_generate(struct cv_ice_credentials *out)
{
	uint8_t rnd[CV_ICE_UFRAG_CHARS + CV_ICE_PWD_CHARS];
	memset(out, 0, sizeof(*out));
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		OPENSSL_cleanse(rnd, sizeof(rnd));
		return CV_ECRYPTO;
	}
	for (size_t i = 0; i < CV_ICE_UFRAG_CHARS; i++)
		out->ufrag[i] = ice_chars[rnd[i] & 63];
	for (size_t i = 0; i < CV_ICE_PWD_CHARS; i++)
		out->pwd[i] = ice_chars[rnd[CV_ICE_UFRAG_CHARS + i] & 63];
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

int cv_ice_lite_create(struct cv_ice_lite **out,
		       const struct cv_ice_lite_config *cfg, uint64_t now_ms)
{
	struct cv_ice_lite *ice = calloc(1, sizeof(*ice));
	if (!ice)
		return -ENOMEM;
	if (cfg)
		ice->cfg = *cfg;
	if (!ice->cfg.consent_timeout_ms)
		ice->cfg.consent_timeout_ms = CV_ICE_CONSENT_TIMEOUT_MS;
	if (!ice->cfg.disconnect_timeout_ms)
		ice->cfg.disconnect_timeout_ms = CV_ICE_DISCONNECT_TIMEOUT_MS;
	if (!ice->cfg.connect_timeout_ms)
		ice->cfg.connect_timeout_ms = CV_ICE_CONNECT_TIMEOUT_MS;
	ice->state = CV_ICE_NEW;
	ice->connect_start_ms = now_ms;
	*out = ice;
	return 0;
}

void cv_ice_lite_destroy(struct cv_ice_lite *ice)
{
	if (!ice)
		return;
	OPENSSL_cleanse(ice, sizeof(*ice));
	free(ice);
}

/* Returns the length of a valid ufrag or pwd, 0 when invalid. */
static size_t cred_len(const char *s, bool is_ufrag)
{
	size_t n = strnlen(s, CV_ICE_PWD_MAX + 1);
	if (n == 0 || n > (is_ufrag ? CV_ICE_UFRAG_MAX : CV_ICE_PWD_MAX))
		return 0;
	/* The ufrags are joined with ':' in USERNAME (RFC 8445 7.2.2). */
	if (is_ufrag && memchr(s, ':', n))
		return 0;
	return n;
}

static int gen_set(struct ice_gen *g, const struct cv_ice_credentials *c,
		   bool local)
{
	size_t ulen = cred_len(c->ufrag, true);
	size_t plen = cred_len(c->pwd, false);
	if (!ulen || !plen)
		return -EINVAL;
	struct cv_ice_credentials *dst = local ? &g->local : &g->remote;
	OPENSSL_cleanse(dst, sizeof(*dst));
	memcpy(dst->ufrag, c->ufrag, ulen);
	memcpy(dst->pwd, c->pwd, plen);
	if (local) {
		g->has_local = true;
		g->lufrag_len = ulen;
		g->lpwd_len = plen;
	} else {
		g->has_remote = true;
		g->rufrag_len = ulen;
		g->rpwd_len = plen;
	}
	return 0;
}

int cv_ice_lite_set_local(struct cv_ice_lite *ice,
			  const struct cv_ice_credentials *c)
{
	return gen_set(&ice->cur, c, true);
}

int cv_ice_lite_set_remote(struct cv_ice_lite *ice,
			   const struct cv_ice_credentials *c)
{
	return gen_set(&ice->cur, c, false);
}

int cv_ice_lite_restart(struct cv_ice_lite *ice,
			const struct cv_ice_credentials *local,
			const struct cv_ice_credentials *remote,
			uint64_t now_ms)
{
	struct ice_gen next = {0};
	if (gen_set(&next, local, true) || gen_set(&next, remote, false)) {
		OPENSSL_cleanse(&next, sizeof(next));
		return -EINVAL;
	}
	OPENSSL_cleanse(&ice->prev, sizeof(ice->prev));
	if (ice->state == CV_ICE_FAILED || !ice->has_selected) {
		/* Nothing usable to keep: start over. */
		ice->has_prev = false;
		ice->has_selected = false;
		ice->nominated = false;
		ice->state = CV_ICE_NEW;
		ice->connect_start_ms = now_ms;
	} else {
		/* RFC 8445 section 9: keep using the old pair meanwhile. */
		ice->prev = ice->cur;
		ice->has_prev = true;
	}
	ice->cur = next;
	OPENSSL_cleanse(&next, sizeof(next));
	return 0;
}

/* RFC 8445 section 7.3 with RFC 8489 section 9.1.3: USERNAME must be
 * "<our ufrag>:<peer ufrag>" (any peer ufrag before its SDP arrived). */
static bool gen_username_matches(const struct ice_gen *g,
				 const struct cv_stun_msg *m)
{
	if (!g->has_local)
		return false;
	size_t lu = g->lufrag_len;
	if (m->username_len < lu + 1 ||
	    memcmp(m->username, g->local.ufrag, lu) != 0 ||
	    m->username[lu] != ':')
		return false;
	if (!g->has_remote)
		return true;
	return m->username_len == lu + 1 + g->rufrag_len &&
	       memcmp(m->username + lu + 1, g->remote.ufrag, g->rufrag_len) ==
		       0;
}

static const uint8_t *gen_key(const struct ice_gen *g)
{
	return (const uint8_t *)g->local.pwd;
}

/* Finds the generation whose credentials authenticate m, or NULL. */
static const struct ice_gen *authenticate(const struct cv_ice_lite *ice,
					  const struct cv_stun_msg *m)
{
	const struct ice_gen *gens[2] = {&ice->cur,
					 ice->has_prev ? &ice->prev : NULL};
	for (int i = 0; i < 2; i++) {
		const struct ice_gen *g = gens[i];
		if (g && gen_username_matches(g, m) &&
		    cv_stun_check_integrity(m, gen_key(g), g->lpwd_len) == 0)
			return g;
	}
	return NULL;
}

static void select_addr(struct cv_ice_lite *ice,
			const struct sockaddr_storage *from, bool nominated)
{
	if (!ice->has_selected || !cv_sockaddr_equal(&ice->selected, from))
		ice->stats.selected_changes++;
	ice->selected = *from;
	ice->has_selected = true;
	ice->nominated = nominated;
}

/* Applies a valid check to the state (after its answer was written). */
static void accept_check(struct cv_ice_lite *ice, bool from_prev,
			 const struct cv_stun_msg *m,
			 const struct sockaddr_storage *from, uint64_t now_ms)
{
	if (!from_prev && ice->has_prev) {
		/* Restart complete: the new credentials work, so forget the
		 * old ones and their pair; this check picks the new pair. */
		OPENSSL_cleanse(&ice->prev, sizeof(ice->prev));
		ice->has_prev = false;
		ice->has_selected = false;
		ice->nominated = false;
	}
	if (!from_prev && (!ice->has_selected || m->use_candidate))
		select_addr(ice, from, m->use_candidate);
	bool same =
		ice->has_selected && cv_sockaddr_equal(&ice->selected, from);
	/* RFC 7675 section 5.1: a check on the pair in use is consent. */
	if (same) {
		ice->last_consent_ms = now_ms;
		ice->state = CV_ICE_CONNECTED;
	}
}

static int answer_error(struct cv_ice_lite *ice, const struct cv_stun_msg *m,
			int code, const struct ice_gen *g, int ret,
			uint8_t *resp, size_t cap, size_t *resp_len)
{
	/* RFC 8489 section 9.1.3: 400/401 for failed authentication carry
	 * no MESSAGE-INTEGRITY; later errors are protected with the key. */
	const uint8_t *key = g ? gen_key(g) : NULL;
	int err = cv_stun_build_error(resp, cap, m->method, m->txid, code,
				      m->unknown, m->n_unknown, key,
				      g ? g->lpwd_len : 0, resp_len);
	if (err) {
		*resp_len = 0;
		return err;
	}
	switch (code) {
	case CV_STUN_ERR_UNKNOWN_ATTRIBUTE:
		ice->stats.unknown_attrs++;
		break;
	case CV_STUN_ERR_ROLE_CONFLICT:
		ice->stats.role_conflicts++;
		break;
	default:
		ice->stats.auth_failures++;
		break;
	}
	return ret;
}

/* Checks that do not need credentials: returns 0 to go on, or a drop. */
static int screen(struct cv_ice_lite *ice, const struct cv_stun_msg *m)
{
	if (m->cls == CV_STUN_INDICATION)
		/* RFC 8445 section 11: Binding indications are keepalives. */
		return m->method == CV_STUN_METHOD_BINDING ? 1 : CV_EPROTO;
	/* A lite agent sends no requests, so expects no responses. */
	if (m->cls != CV_STUN_REQUEST)
		return CV_EPROTO;
	/* RFC 8445 section 7.3: ICE requests carry FINGERPRINT; one that
	 * fails is not ours to answer (RFC 8489 section 14.7). */
	if (cv_stun_check_fingerprint(m) != 0)
		return CV_EINTEGRITY;
	/* RFC 7675 section 5.1: after consent expired, send nothing. */
	if (ice->state == CV_ICE_FAILED)
		return CV_EEXPIRED;
	return 0;
}

int cv_ice_lite_handle_stun(struct cv_ice_lite *ice, const uint8_t *msg,
			    size_t len, const struct sockaddr_storage *from,
			    uint64_t now_ms, uint8_t *resp, size_t resp_cap,
			    size_t *resp_len)
{
	struct cv_stun_msg m;
	*resp_len = 0;
	int err = cv_stun_parse(&m, msg, len);
	if (!err)
		err = screen(ice, &m);
	if (err == 1)
		return 0;
	if (err) {
		ice->stats.dropped++;
		return err;
	}
	/* RFC 8489 section 6.3.1: a method we do not know gets 400. */
	if (m.method != CV_STUN_METHOD_BINDING)
		return answer_error(ice, &m, CV_STUN_ERR_BAD_REQUEST, NULL,
				    CV_EUNSUPP, resp, resp_cap, resp_len);
	/* RFC 8489 section 9.1.3: no USERNAME or MESSAGE-INTEGRITY -> 400;
	 * unknown USERNAME or wrong MESSAGE-INTEGRITY -> 401. */
	if (!m.username || !m.integrity_offset)
		return answer_error(ice, &m, CV_STUN_ERR_BAD_REQUEST, NULL,
				    CV_EAUTH, resp, resp_cap, resp_len);
	const struct ice_gen *g = authenticate(ice, &m);
	if (!g)
		return answer_error(ice, &m, CV_STUN_ERR_UNAUTHORIZED, NULL,
				    CV_EAUTH, resp, resp_cap, resp_len);
	/* RFC 8489 section 6.3.1, after authentication: 420 listing the
	 * unknown comprehension-required attributes. */
	if (m.n_unknown)
		return answer_error(ice, &m, CV_STUN_ERR_UNKNOWN_ATTRIBUTE, g,
				    CV_EUNSUPP, resp, resp_cap, resp_len);
	/* RFC 8445 section 7.1.1: a check carries PRIORITY. */
	if (!m.has_priority)
		return answer_error(ice, &m, CV_STUN_ERR_BAD_REQUEST, g,
				    CV_EPROTO, resp, resp_cap, resp_len);
	/* RFC 8445 section 7.3.1.1: we are controlled and cannot switch. */
	if (m.has_ice_controlled)
		return answer_error(ice, &m, CV_STUN_ERR_ROLE_CONFLICT, g,
				    CV_EPROTO, resp, resp_cap, resp_len);

	/* RFC 8445 section 7.3.1.2 / RFC 8489 section 14.2: success with
	 * the request's source as XOR-MAPPED-ADDRESS. */
	err = cv_stun_build_binding_success(resp, resp_cap, m.txid, from,
					    gen_key(g), g->lpwd_len, resp_len);
	if (err) {
		*resp_len = 0;
		return err;
	}
	accept_check(ice, g == &ice->prev, &m, from, now_ms);
	ice->stats.checks_ok++;
	return 0;
}

static uint64_t elapsed(uint64_t now, uint64_t since)
{
	return now > since ? now - since : 0;
}

enum cv_ice_state cv_ice_lite_tick(struct cv_ice_lite *ice, uint64_t now_ms)
{
	switch (ice->state) {
	case CV_ICE_NEW:
		if (elapsed(now_ms, ice->connect_start_ms) >=
		    ice->cfg.connect_timeout_ms)
			ice->state = CV_ICE_FAILED;
		break;
	case CV_ICE_CONNECTED:
	case CV_ICE_DISCONNECTED: {
		/* RFC 7675 section 5.1: no consent for 30 s -> stop. */
		uint64_t quiet = elapsed(now_ms, ice->last_consent_ms);
		if (quiet >= ice->cfg.consent_timeout_ms)
			ice->state = CV_ICE_FAILED;
		else if (quiet >= ice->cfg.disconnect_timeout_ms)
			ice->state = CV_ICE_DISCONNECTED;
		break;
	}
	case CV_ICE_FAILED:
		break;
	}
	return ice->state;
}

uint64_t cv_ice_lite_next_timeout_ms(const struct cv_ice_lite *ice)
{
	switch (ice->state) {
	case CV_ICE_NEW:
		return ice->connect_start_ms + ice->cfg.connect_timeout_ms;
	case CV_ICE_CONNECTED:
		return ice->last_consent_ms + ice->cfg.disconnect_timeout_ms;
	case CV_ICE_DISCONNECTED:
		return ice->last_consent_ms + ice->cfg.consent_timeout_ms;
	default:
		return UINT64_MAX;
	}
}

enum cv_ice_state cv_ice_lite_state(const struct cv_ice_lite *ice)
{
	return ice->state;
}

const char *cv_ice_state_name(enum cv_ice_state s)
{
	switch (s) {
	case CV_ICE_NEW:
		return "new";
	case CV_ICE_CONNECTED:
		return "connected";
	case CV_ICE_DISCONNECTED:
		return "disconnected";
	case CV_ICE_FAILED:
		return "failed";
	}
	return "invalid";
}

const struct sockaddr_storage *
cv_ice_lite_selected(const struct cv_ice_lite *ice)
{
	if (!ice->has_selected || ice->state == CV_ICE_FAILED)
		return NULL;
	return &ice->selected;
}

bool cv_ice_lite_is_selected(const struct cv_ice_lite *ice,
			     const struct sockaddr_storage *addr)
{
	const struct sockaddr_storage *sel = cv_ice_lite_selected(ice);
	return sel && cv_sockaddr_equal(sel, addr);
}

bool cv_ice_lite_nominated(const struct cv_ice_lite *ice)
{
	return ice->has_selected && ice->nominated;
}

static bool gen_owns(const struct ice_gen *g, const uint8_t *ufrag, size_t len)
{
	return g->has_local && g->lufrag_len == len &&
	       memcmp(g->local.ufrag, ufrag, len) == 0;
}

bool cv_ice_lite_owns_ufrag(const struct cv_ice_lite *ice, const uint8_t *ufrag,
			    size_t len)
{
	return gen_owns(&ice->cur, ufrag, len) ||
	       (ice->has_prev && gen_owns(&ice->prev, ufrag, len));
}

const char *cv_ice_lite_local_ufrag(const struct cv_ice_lite *ice)
{
	return ice->cur.local.ufrag;
}

void cv_ice_lite_get_stats(const struct cv_ice_lite *ice,
			   struct cv_ice_lite_stats *out)
{
	*out = ice->stats;
}
