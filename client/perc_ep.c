/*
 * The endpoint's side of a perc room (docs/perc.md "The endpoint",
 * contract steps 1-8): the client-KMS channel before and after the join,
 * the DTLS that pins the Key Distributor, hop keys from the exporter
 * output, and the double SRTP of every RTP packet.
 *
 * The KMS calls are synchronous round trips on the loop's thread. They
 * happen at WebSocket open, on `joined`, on `rekey` and when the
 * application adds or removes a member; on loopback each takes well under
 * 10 ms, which the endpoint's 5 ms tick absorbs.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "client/endpoint.h"
#include "conclave/err.h"

/* How long the previous EKT key stays after a rotation (contract: 2 s). */
/* How long a failed rekey is retried before the endpoint gives up. */
#define REKEY_GIVE_UP_US (30ull * 1000000)
#define OLD_KEY_GRACE_US 2000000
/* After someone joins, every packet carries the FullEKTField for this
 * long: the newcomer's subscribe connection comes up some time later and
 * cannot decrypt a thing before it has our inner key. */
#define ANNOUNCE_US 3000000
/* The usual schedule (docs/perc.md "Sending"). */
#define EKT_FIRST 3
#define EKT_EVERY 32
/* Senders of a conference one receiver keeps inner keys for. */
#define MAX_SOURCES (2 * CV_CLIENT_MAX_TRACKS + 2)

static void key_put(struct cv_client_perc_key *k, uint32_t id,
		    const struct cv_secret *s)
{
	memset(k, 0, sizeof(*k));
	k->id = id;
	k->len = (uint8_t)cv_secret_len(s);
	memcpy(k->b, cv_secret_data(s), k->len);
}

/* Appends to a bounded list of used keys, dropping the oldest. */
static void key_log(struct cv_client_perc_key *list, size_t *n, uint32_t id,
		    const struct cv_secret *s)
{
	if (*n == CV_CLIENT_PERC_MAX_KEYS) {
		OPENSSL_cleanse(&list[0], sizeof(list[0]));
		memmove(list, list + 1,
			(CV_CLIENT_PERC_MAX_KEYS - 1) * sizeof(list[0]));
		(*n)--;
	}
	key_put(&list[(*n)++], id, s);
}

int cv_client_perc_init(struct cv_client *c, const struct cv_client_opts *o,
			const char *node_host, int node_port)
{
	struct cv_client_perc *p = &c->perc;
	const struct cv_client_perc_opts *po = &o->perc;
	if (!po->enabled)
		return 0;
	if (!po->kms_token || (!po->kms_cert_file && !po->kms_cert_pem) ||
	    (po->kms_host && !po->kms_port))
		return -EINVAL;
	p->enabled = true;
	p->via_node = !po->kms_host;
	/* cv_kms_client takes IP literals only. */
	if (!po->kms_host && !strcmp(node_host, "localhost"))
		node_host = "127.0.0.1";
	p->kms_host = g_strdup(po->kms_host ? po->kms_host : node_host);
	p->kms_port = po->kms_host ? po->kms_port : (uint16_t)node_port;
	p->kms_cert_file = g_strdup(po->kms_cert_file);
	p->kms_cert_pem = g_strdup(po->kms_cert_pem);
	p->kms_token = g_strdup(po->kms_token);
	p->create_room = po->create_room;
	p->add_members = g_ptr_array_new_with_free_func(g_free);
	for (size_t i = 0; po->add_members && po->add_members[i]; i++)
		g_ptr_array_add(p->add_members, g_strdup(po->add_members[i]));
	struct cv_kms_client_opts ko = {
		.host = p->kms_host,
		.port = p->kms_port,
		.kms_cert_file = p->kms_cert_file,
		.kms_cert_pem = p->kms_cert_pem,
		.token = p->kms_token,
		/* Two-part membership changes: the node checks its part. */
		.core_token = p->via_node ? c->token : NULL,
	};
	return cv_kms_client_create(&p->kms, &ko);
}

void cv_client_perc_fini(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	cv_kms_client_destroy(p->kms);
	cv_perc_sender_destroy(p->a_tx);
	cv_perc_sender_destroy(p->v_tx);
	cv_perc_receiver_destroy(p->rx);
	cv_perc_ekt_key_wipe(&p->ekt);
	OPENSSL_cleanse(&p->keys, sizeof(p->keys));
	if (p->add_members)
		g_ptr_array_free(p->add_members, TRUE);
	if (p->kms_token)
		OPENSSL_cleanse(p->kms_token, strlen(p->kms_token));
	g_free(p->kms_host);
	g_free(p->kms_cert_file);
	g_free(p->kms_cert_pem);
	g_free(p->kms_token);
	memset(p, 0, sizeof(*p));
}

/* A KMS call that reconnects once when the KMS forgot our session
 * (restart, or the session's hour is up). */
#define KMS_CALL(rc, p, call)                                                  \
	do {                                                                   \
		(rc) = (call);                                                 \
		if ((rc) == -ENOTCONN && !cv_kms_client_connect((p)->kms))     \
			(rc) = (call);                                         \
	} while (0)

/* GET_KEY; installs the key when it is new. *changed: whether it was. */
static int fetch_key(struct cv_client *c, bool *changed)
{
	struct cv_client_perc *p = &c->perc;
	struct cv_kms_room_key k;
	struct cv_perc_ekt_key e;
	memset(&k, 0, sizeof(k));
	memset(&e, 0, sizeof(e));
	*changed = false;
	int rc;
	KMS_CALL(rc, p, cv_kms_client_get_room_key(p->kms, c->room, &k));
	if (!rc)
		rc = cv_kms_room_key_to_ekt(&k, &e);
	if (rc)
		goto out;
	if (p->have_key && e.spi == p->ekt.spi && k.epoch == p->epoch &&
	    cv_secret_equal(&e.key, &p->ekt.key))
		goto out;
	/* A KD certificate that changed (KMS restart) is pinned by the
	 * DTLS associations made from now on. */
	if (k.kd_fp.len || !p->have_key)
		p->kd_fp = k.kd_fp;
	if (p->rx) {
		rc = cv_perc_receiver_add_ekt_key(p->rx, &e);
		/* Rotations faster than the grace period: the oldest key still
		 * kept for packets in flight goes first. */
		while (rc == CV_ETOOBIG && p->n_old) {
			cv_perc_receiver_remove_ekt_key(p->rx, p->old_spi[0]);
			memmove(p->old_spi, p->old_spi + 1,
				--p->n_old * sizeof(p->old_spi[0]));
			memmove(p->old_at_us, p->old_at_us + 1,
				p->n_old * sizeof(p->old_at_us[0]));
			rc = cv_perc_receiver_add_ekt_key(p->rx, &e);
		}
		if (rc)
			goto out;
	}
	if (p->have_key && p->ekt.spi != e.spi &&
	    p->n_old < CV_PERC_MAX_EKT_KEYS) {
		p->old_spi[p->n_old] = p->ekt.spi;
		p->old_at_us[p->n_old++] =
			cv_client_now_us() + OLD_KEY_GRACE_US;
	}
	cv_perc_ekt_key_wipe(&p->ekt);
	p->ekt.spi = e.spi;
	cv_secret_copy(&p->ekt.key, &e.key);
	cv_secret_copy(&p->ekt.inner_salt, &e.inner_salt);
	p->epoch = k.epoch;
	p->st.spi = e.spi;
	p->st.epoch = k.epoch;
	size_t n = p->keys.n_ekt;
	key_log(p->keys.ekt, &p->keys.n_ekt, e.spi, &e.key);
	key_log(p->keys.inner_salt, &n, e.spi, &e.inner_salt);
	*changed = p->have_key;
	p->have_key = true;
out:
	cv_kms_room_key_wipe(&k);
	cv_perc_ekt_key_wipe(&e);
	return rc;
}

int cv_client_perc_prepare(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled)
		return 0;
	p->failed_step = "connect";
	int rc = cv_kms_client_connect(p->kms);
	if (rc)
		return rc;
	if (p->create_room) {
		p->failed_step = "create_room";
		rc = cv_kms_client_create_room(p->kms, c->room, NULL);
		if (rc && rc != -EEXIST)
			return rc;
	}
	p->failed_step = "add_member";
	if (p->add_members->len && !p->via_node)
		return -EOPNOTSUPP; /* two-part: through the node only */
	for (guint i = 0; i < p->add_members->len; i++) {
		rc = cv_kms_client_add_member(
			p->kms, c->room, g_ptr_array_index(p->add_members, i),
			NULL);
		if (rc && rc != -EEXIST)
			return rc;
	}
	bool changed;
	p->failed_step = "get_key";
	rc = fetch_key(c, &changed);
	if (!rc && !p->kd_fp.len)
		rc = CV_EPROTO; /* a KMS without a Key Distributor */
	if (!rc)
		p->failed_step = NULL;
	return rc;
}

const char *cv_client_perc_failed_step(const struct cv_client *c)
{
	return c && c->perc.enabled ? c->perc.failed_step : NULL;
}

const char *cv_client_perc_kms_status(const struct cv_client *c)
{
	return c && c->perc.kms ? cv_kms_client_status(c->perc.kms) : "";
}

static int parse_assoc(json_t *v, struct cv_tunnel_assoc_id *out)
{
	const char *s = json_string_value(v);
	if (!s || strlen(s) != 2 * CV_TUNNEL_ASSOC_ID_BYTES)
		return CV_EPROTO;
	for (size_t i = 0; i < CV_TUNNEL_ASSOC_ID_BYTES; i++) {
		int hi = g_ascii_xdigit_value(s[2 * i]);
		int lo = g_ascii_xdigit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return CV_EPROTO;
		out->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int cv_client_perc_on_joined(struct cv_client *c, json_t *msg)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled)
		return 0;
	json_t *pj = json_object_get(msg, "perc");
	int rc =
		parse_assoc(json_object_get(pj, "publish_assoc"), &p->assoc[0]);
	if (!rc)
		rc = parse_assoc(json_object_get(pj, "subscribe_assoc"),
				 &p->assoc[1]);
	if (rc)
		return rc; /* not a perc room, or a node without perc */
	const char *fp_text = cv_dtls_cert_fingerprint(c->loop->cert);
	struct cv_dtls_fingerprint fp;
	rc = cv_dtls_fingerprint_parse(&fp, fp_text, strlen(fp_text));
	p->failed_step = "register_endpoint";
	for (int i = 0; i < 2 && !rc; i++)
		KMS_CALL(rc, p,
			 cv_kms_client_register_endpoint(p->kms, c->room,
							 &p->assoc[i], &fp));
	if (!rc) {
		p->have_assoc = true;
		p->failed_step = NULL;
	}
	return rc;
}

const struct cv_dtls_fingerprint *cv_client_perc_kd_fp(struct cv_client *c)
{
	return c->perc.enabled ? &c->perc.kd_fp : NULL;
}

static int new_inner_key(enum cv_perc_profile prof, struct cv_secret *out)
{
	return cv_secret_random(out, cv_perc_profile_half_key_bytes(prof));
}

static int make_sender(struct cv_client *c, enum cv_perc_profile prof,
		       uint32_t ssrc, struct cv_perc_sender **out)
{
	struct cv_client_perc *p = &c->perc;
	struct cv_secret k;
	cv_secret_init(&k);
	int rc = new_inner_key(prof, &k);
	if (!rc)
		rc = cv_perc_sender_create(out, prof, ssrc, &k, &p->ekt);
	if (!rc && p->announce_until_us)
		cv_perc_sender_set_schedule(*out, EKT_FIRST, 1);
	if (!rc)
		key_log(p->keys.inner, &p->keys.n_inner, ssrc, &k);
	cv_secret_wipe(&k);
	return rc;
}

int cv_client_perc_connected(struct cv_client_pc *pc, uint16_t profile_id,
			     const uint8_t *material, size_t len,
			     bool is_client)
{
	struct cv_client *c = pc->c;
	struct cv_client_perc *p = &c->perc;
	struct cv_perc_hop_keys hk;
	enum cv_perc_profile prof;
	if (!is_client)
		return CV_EPROTO; /* the endpoint is always the DTLS client */
	int rc = cv_perc_hop_keys_from_dtls(profile_id, material, len,
					    is_client, &prof, &hk);
	if (rc)
		return rc;
	enum cv_srtp_profile outer = cv_perc_profile_outer(prof);
	struct cv_srtp *tx = NULL, *rx = NULL;
	rc = cv_srtp_create(&tx, outer, &hk.outer_tx, CV_SRTP_OUTBOUND);
	if (!rc)
		rc = cv_srtp_create(&rx, outer, &hk.outer_rx, CV_SRTP_INBOUND);
	int i = pc->publish ? 0 : 1;
	if (!rc) {
		key_put(&p->keys.hop_out[i], (uint32_t)i, &hk.outer_tx);
		key_put(&p->keys.hop_in[i], (uint32_t)i, &hk.outer_rx);
	}
	/* The DTLS-derived inner halves are no media key of ours. */
	cv_perc_hop_keys_wipe(&hk);
	if (!rc && pc->publish) {
		p->profile = prof;
		/* Our tracks are new to everyone: subscriptions to them come
		 * up over the next moments, each needing our inner keys. */
		uint64_t until = cv_client_now_us() + ANNOUNCE_US;
		if (until > p->announce_until_us)
			p->announce_until_us = until;
		if (c->audio)
			rc = make_sender(c, prof, c->a_ssrc, &p->a_tx);
		if (!rc && c->video)
			rc = make_sender(c, prof, c->v_ssrc, &p->v_tx);
	} else if (!rc && !p->rx) {
		rc = cv_perc_receiver_create(&p->rx, prof, MAX_SOURCES);
		if (!rc)
			rc = cv_perc_receiver_add_ekt_key(p->rx, &p->ekt);
	}
	if (rc) {
		cv_srtp_destroy(tx);
		cv_srtp_destroy(rx);
		return rc;
	}
	pc->tx = tx;
	pc->rx = rx;
	return 0;
}

/* Applies a new EKT key (already in p->ekt) to our senders: new inner
 * keys too (RFC 8870 section 4.6: a member left, so nothing it knew may
 * protect new media). */
static int rekey_senders(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	struct cv_perc_sender *s[2] = {p->a_tx, p->v_tx};
	uint32_t ssrc[2] = {c->a_ssrc, c->v_ssrc};
	int rc = 0;
	for (int i = 0; i < 2 && !rc; i++) {
		if (!s[i])
			continue;
		struct cv_secret k;
		cv_secret_init(&k);
		rc = new_inner_key(p->profile, &k);
		if (!rc)
			rc = cv_perc_sender_rekey(s[i], &k, &p->ekt);
		if (!rc)
			key_log(p->keys.inner, &p->keys.n_inner, ssrc[i], &k);
		cv_secret_wipe(&k);
	}
	return rc;
}

int cv_client_perc_rekey(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled || !p->kms)
		return -EINVAL;
	bool changed;
	int rc = fetch_key(c, &changed);
	if (rc || !changed)
		return rc;
	rc = rekey_senders(c);
	if (!rc)
		p->st.rekeys++;
	return rc;
}

/* Errors that say the KMS (or the node's relay) could not be reached or
 * forgot us, not that it refused: worth trying again. */
static bool transient(int rc)
{
	return rc == -EIO || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
	       rc == -ENOTCONN || rc == -ECONNRESET;
}

int cv_client_perc_on_rekey(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	int rc = cv_client_perc_rekey(c);
	if (!rc) {
		p->rekey_retry_us = 0;
		return 0;
	}
	if (!transient(rc))
		return rc;
	/* A KMS that blinks right after a rotation must not end the call:
	 * we retry (0.25 s, doubling to 4 s, for up to REKEY_GIVE_UP_US),
	 * receiving under the keys we have and sending nothing meanwhile:
	 * no packet goes out under the key of a room someone has left. */
	uint64_t now = cv_client_now_us();
	if (!p->rekey_retry_us) {
		p->rekey_give_up_us = now + REKEY_GIVE_UP_US;
		p->rekey_backoff_us = 250000;
	} else if (now >= p->rekey_give_up_us) {
		p->rekey_retry_us = 0;
		return rc;
	} else if (p->rekey_backoff_us < 4000000) {
		p->rekey_backoff_us *= 2;
	}
	p->rekey_retry_us = now + p->rekey_backoff_us;
	p->st.rekey_retries++;
	return 0;
}

static void set_schedule(struct cv_client_perc *p, bool dense)
{
	struct cv_perc_sender *s[2] = {p->a_tx, p->v_tx};
	for (int i = 0; i < 2; i++)
		if (s[i])
			cv_perc_sender_set_schedule(s[i], EKT_FIRST,
						    dense ? 1 : EKT_EVERY);
}

void cv_client_perc_on_participant(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled)
		return;
	p->announce_until_us = cv_client_now_us() + ANNOUNCE_US;
	set_schedule(p, true);
}

void cv_client_perc_announce(struct cv_client *c)
{
	struct cv_client_perc *p = &c->perc;
	/* Neither key changes: cv_perc_sender_rekey only restarts the
	 * burst (same epoch, same key: receivers that have it accept the
	 * field as a retransmission). */
	if (p->a_tx)
		cv_perc_sender_rekey(p->a_tx, NULL, NULL);
	if (p->v_tx)
		cv_perc_sender_rekey(p->v_tx, NULL, NULL);
}

void cv_client_perc_tick(struct cv_client *c, uint64_t now_us)
{
	struct cv_client_perc *p = &c->perc;
	size_t keep = 0;
	if (p->rekey_retry_us && now_us >= p->rekey_retry_us) {
		int rc = cv_client_perc_on_rekey(c);
		if (rc) {
			cv_client_fail(c, rc);
			return;
		}
	}
	if (p->announce_until_us && now_us >= p->announce_until_us) {
		p->announce_until_us = 0;
		set_schedule(p, false);
	}
	for (size_t i = 0; i < p->n_old; i++) {
		if (p->old_at_us[i] > now_us) {
			p->old_spi[keep] = p->old_spi[i];
			p->old_at_us[keep++] = p->old_at_us[i];
			continue;
		}
		if (p->rx && p->old_spi[i] != p->ekt.spi)
			cv_perc_receiver_remove_ekt_key(p->rx, p->old_spi[i]);
	}
	p->n_old = keep;
}

int cv_client_perc_protect(struct cv_client *c, uint32_t ssrc, uint8_t *buf,
			   size_t *len, size_t cap)
{
	struct cv_client_perc *p = &c->perc;
	struct cv_perc_sender *s = ssrc == c->a_ssrc   ? p->a_tx
				   : ssrc == c->v_ssrc ? p->v_tx
						       : NULL;
	if (!s)
		return -EINVAL;
	/* A member was removed and the new key is not in yet: nothing is
	 * sent under the old one (RFC 8870 timing; cv_client_perc_on_rekey). */
	if (p->rekey_retry_us) {
		p->st.held_for_rekey++;
		return -EAGAIN;
	}
	int rc = cv_perc_e2e_protect(s, c->pub.tx, buf, len, cap);
	if (!rc)
		p->st.sent++;
	return rc;
}

int cv_client_perc_unprotect(struct cv_client_pc *pc, uint8_t *buf, size_t *len,
			     uint16_t *hop_seq)
{
	struct cv_client_perc *p = &pc->c->perc;
	struct cv_perc_rx_info info;
	if (!p->rx)
		return -EINVAL;
	int rc = cv_perc_e2e_unprotect(p->rx, pc->rx, buf, len, &info);
	if (rc)
		return rc;
	*hop_seq = info.hop_seq;
	if (info.hop_seq != info.seq)
		p->st.seq_rewritten++;
	return 0;
}

/* ---- Public: membership, counters, test hooks ---- */

int cv_client_perc_remove_member(struct cv_client *c, const char *member)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled || !p->have_key || !member)
		return -EINVAL;
	/* Two-part or nothing: straight to the KMS, the node would never
	 * close the member nor tell the others to rekey. */
	if (!p->via_node)
		return -EOPNOTSUPP;
	int rc;
	KMS_CALL(rc, p,
		 cv_kms_client_remove_member(p->kms, c->room, member, NULL));
	if (rc)
		return rc;
	/* Contract "Client on rekey": the remover rekeys on its success. */
	return cv_client_perc_rekey(c);
}

int cv_client_perc_add_member(struct cv_client *c, const char *member)
{
	struct cv_client_perc *p = &c->perc;
	if (!p->enabled || !p->have_key || !member)
		return -EINVAL;
	if (!p->via_node)
		return -EOPNOTSUPP; /* two-part: see remove */
	int rc;
	KMS_CALL(rc, p,
		 cv_kms_client_add_member(p->kms, c->room, member, NULL));
	return rc;
}

void cv_client_perc_stats(const struct cv_client *c,
			  struct cv_client_perc_stats *out)
{
	const struct cv_client_perc *p = &c->perc;
	*out = p->st;
	out->unknown_ssrc = p->enabled ? c->unknown_ssrc : 0;
	for (int i = 0; i < CV_PERC_DROP_COUNT; i++)
		out->drops[i] = p->rx ? cv_perc_receiver_drops(
						p->rx, (enum cv_perc_drop)i)
				      : 0;
}

void cv_client_perc_keys(const struct cv_client *c,
			 struct cv_client_perc_keys *out)
{
	*out = c->perc.keys;
}

void cv_client_set_rx_tap(struct cv_client *c, cv_client_tap_fn *fn, void *arg)
{
	c->perc.tap = fn;
	c->perc.tap_arg = fn ? arg : NULL;
}

int cv_client_perc_try_unprotect(struct cv_client *c,
				 const struct cv_client_perc_key *hop_in,
				 const uint8_t *dgram, size_t len)
{
	struct cv_client_perc *p = &c->perc;
	_Alignas(8) uint8_t buf[CV_CLIENT_PKT_CAP];
	struct cv_srtp *s = c->sub.rx, *own = NULL;
	if (!p->rx || !dgram || len > sizeof(buf))
		return -EINVAL;
	if (hop_in) {
		struct cv_secret k;
		cv_secret_init(&k);
		int rc = cv_secret_set(&k, hop_in->b, hop_in->len);
		enum cv_srtp_profile prof = hop_in->len == 32 + 12
						    ? CV_SRTP_AEAD_AES_256_GCM
						    : CV_SRTP_AEAD_AES_128_GCM;
		if (!rc)
			rc = cv_srtp_create(&own, prof, &k, CV_SRTP_INBOUND);
		cv_secret_wipe(&k);
		if (rc)
			return rc;
		s = own;
	}
	if (!s)
		return -EINVAL;
	memcpy(buf, dgram, len);
	int rc = cv_perc_e2e_unprotect(p->rx, s, buf, &len, NULL);
	OPENSSL_cleanse(buf, sizeof(buf));
	cv_srtp_destroy(own);
	return rc;
}
