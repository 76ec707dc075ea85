/*
 * RFC 9185 tunnel: the TunnelMessage codec on hand-built vectors (every
 * truncation, malformed fields, the hop-key-only rule), and the TLS 1.3
 * link for real on loopback: the node's cv_tunnel_link against the KMS's
 * cv_kd_link on one cv_loop (round trips, an unknown node certificate
 * refused and reported, a wrong KD pin, reconnection after a KD restart).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/loop.h"
#include "conclave/tunnel.h"
#include "cv_test.h"
#include "cv_test_ident.h"
#include "kms/kd_link.h"

/* ---- hand-built vectors, from the RFC 9185 section 6 structures ---- */

/* The RFC 9185 example binary encoding: version 0, the two double profiles. */
static const uint8_t v_profiles[] = {0x01, 0x00, 0x07, 0x00, 0x00,
				     0x04, 0x00, 0x09, 0x00, 0x0A};
static const uint8_t v_unsupported[] = {0x02, 0x00, 0x01, 0x00};
static const uint8_t v_disconnect[] = {0x05, 0x00, 0x10, 0xa0, 0xa1, 0xa2, 0xa3,
				       0xa4, 0xa5, 0x40, 0xa7, 0x80, 0xa9, 0xaa,
				       0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t v_dtls[] = {0x04, 0x00, 0x17, 0xa0, 0xa1, 0xa2, 0xa3,
				 0xa4, 0xa5, 0x40, 0xa7, 0x80, 0xa9, 0xaa,
				 0xab, 0xac, 0xad, 0xae, 0xaf, 0x00, 0x05,
				 0x16, 0xfe, 0xfd, 0x00, 0x00};
/* MediaKeys, DOUBLE_AEAD_AES_128_GCM: 16-octet outer keys, 12-octet
 * outer salts, no MKI. Body: 16 + 2 + 1 + 17 + 17 + 13 + 13 = 79. */
static uint8_t v_keys[3 + 79];

static void build_keys_vector(void)
{
	uint8_t *p = v_keys;

	*p++ = 0x03;
	*p++ = 0x00;
	*p++ = 79;
	for (int i = 0; i < 16; i++)
		*p++ = (uint8_t)(0xa0 + i);
	*p++ = 0x00;
	*p++ = 0x09;
	*p++ = 0x00; /* mki<0..255>: empty */
	*p++ = 16;
	for (int i = 0; i < 16; i++)
		*p++ = (uint8_t)(0x10 + i); /* client_write key */
	*p++ = 16;
	for (int i = 0; i < 16; i++)
		*p++ = (uint8_t)(0x20 + i); /* server_write key */
	*p++ = 12;
	for (int i = 0; i < 12; i++)
		*p++ = (uint8_t)(0x30 + i);
	*p++ = 12;
	for (int i = 0; i < 12; i++)
		*p++ = (uint8_t)(0x40 + i);
	CV_CHECK_INT(p - v_keys, sizeof(v_keys));
}

static void check_roundtrip(const uint8_t *v, size_t len)
{
	struct cv_tunnel_msg m;
	uint8_t out[256];
	size_t flen;

	CV_CHECK_INT(cv_tunnel_frame_len(v, len, &flen), 0);
	CV_CHECK_INT(flen, len);
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, v, len), 0);
	CV_CHECK_INT(m.type, v[0]);
	CV_CHECK_INT(cv_tunnel_msg_encode(&m, out, sizeof(out)), (int)len);
	CV_CHECK_MEM(out, v, len);
	/* Every too-small output buffer. */
	for (size_t cap = 0; cap < len; cap++)
		CV_CHECK_INT(cv_tunnel_msg_encode(&m, out, cap), CV_ETOOBIG);
}

/*
 * Truncation at every length: as cut off (the length field then lies),
 * and with the length field rewritten to the shorter body.
 */
static void check_truncations(const uint8_t *v, size_t len)
{
	uint8_t buf[256];
	struct cv_tunnel_msg m;
	size_t flen;

	for (size_t n = 0; n < len; n++) {
		memcpy(buf, v, n);
		CV_CHECK_INT(cv_tunnel_msg_parse(&m, buf, n), CV_EPARSE);
		if (n < CV_TUNNEL_HDR_BYTES) {
			CV_CHECK_INT(cv_tunnel_frame_len(buf, n, &flen),
				     -EAGAIN);
			continue;
		}
		buf[1] = (uint8_t)((n - 3) >> 8);
		buf[2] = (uint8_t)(n - 3);
		CV_CHECK(cv_tunnel_msg_parse(&m, buf, n) != 0);
	}
	/* One octet too many, counted in the length or not. */
	memcpy(buf, v, len);
	buf[len] = 0;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, buf, len + 1), CV_EPARSE);
	buf[2] = (uint8_t)(buf[2] + 1);
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, buf, len + 1), CV_EPARSE);
}

static void test_vectors(void)
{
	struct cv_tunnel_msg m;

	build_keys_vector();
	check_roundtrip(v_profiles, sizeof(v_profiles));
	check_roundtrip(v_unsupported, sizeof(v_unsupported));
	check_roundtrip(v_keys, sizeof(v_keys));
	check_roundtrip(v_dtls, sizeof(v_dtls));
	check_roundtrip(v_disconnect, sizeof(v_disconnect));
	check_truncations(v_profiles, sizeof(v_profiles));
	check_truncations(v_unsupported, sizeof(v_unsupported));
	check_truncations(v_keys, sizeof(v_keys));
	check_truncations(v_dtls, sizeof(v_dtls));
	check_truncations(v_disconnect, sizeof(v_disconnect));

	CV_CHECK_INT(cv_tunnel_msg_parse(&m, v_profiles, sizeof(v_profiles)),
		     0);
	CV_CHECK_INT(m.u.profiles.version, 0);
	CV_CHECK_INT(m.u.profiles.n, 2);
	CV_CHECK_INT(m.u.profiles.ids[0], CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM);
	CV_CHECK_INT(m.u.profiles.ids[1], CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM);

	CV_CHECK_INT(cv_tunnel_msg_parse(&m, v_keys, sizeof(v_keys)), 0);
	CV_CHECK_INT(m.u.keys.profile, 0x0009);
	CV_CHECK_INT(m.u.keys.key_len, 16);
	CV_CHECK_MEM(m.u.keys.assoc.b, v_keys + 3, 16);
	CV_CHECK_MEM(m.u.keys.client_write_key, v_keys + 23, 16);
	CV_CHECK_MEM(m.u.keys.server_write_key, v_keys + 40, 16);
	CV_CHECK_MEM(m.u.keys.client_write_salt, v_keys + 57, 12);
	CV_CHECK_MEM(m.u.keys.server_write_salt, v_keys + 70, 12);
	cv_tunnel_media_keys_wipe(&m.u.keys);
	CV_CHECK_INT(m.u.keys.key_len, 0);

	CV_CHECK_INT(cv_tunnel_msg_parse(&m, v_dtls, sizeof(v_dtls)), 0);
	CV_CHECK_INT(m.u.dtls.len, 5);
	CV_CHECK(m.u.dtls.data == v_dtls + 21);
	CV_CHECK_INT(
		cv_tunnel_msg_parse(&m, v_disconnect, sizeof(v_disconnect)), 0);
	CV_CHECK_MEM(m.u.disconnect.assoc.b, v_disconnect + 3, 16);
	CV_CHECK_INT(
		cv_tunnel_msg_parse(&m, v_unsupported, sizeof(v_unsupported)),
		0);
	CV_CHECK_INT(m.u.unsupported.highest_version, 0);
}

static void test_malformed(void)
{
	struct cv_tunnel_msg m;
	uint8_t b[512];

	/* Reserved type 0 and unassigned 6..255 (framed, refused). */
	memcpy(b, v_disconnect, sizeof(v_disconnect));
	b[0] = 0;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_disconnect)),
		     CV_EUNSUPP);
	b[0] = 6;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_disconnect)),
		     CV_EUNSUPP);
	b[0] = 0xff;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_disconnect)),
		     CV_EUNSUPP);
	CV_CHECK_INT(cv_tunnel_msg_parse(NULL, b, 3), -EINVAL);

	/* SupportedProfiles: empty list (floor 2), odd length. */
	static const uint8_t p_empty[] = {0x01, 0x00, 0x03, 0x00, 0x00, 0x00};
	static const uint8_t p_odd[] = {0x01, 0x00, 0x06, 0x00, 0x00,
					0x03, 0x00, 0x09, 0x00};
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, p_empty, sizeof(p_empty)),
		     CV_EPARSE);
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, p_odd, sizeof(p_odd)), CV_EPARSE);
	/* More profiles than our ceiling: well formed, refused. */
	size_t np = CV_TUNNEL_MAX_PROFILES + 1;
	b[0] = 0x01;
	b[1] = 0;
	b[2] = (uint8_t)(3 + 2 * np);
	b[3] = 0;
	b[4] = 0;
	b[5] = (uint8_t)(2 * np);
	for (size_t i = 0; i < np; i++) {
		b[6 + 2 * i] = 0;
		b[7 + 2 * i] = 9;
	}
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, 6 + 2 * np), CV_ETOOBIG);
	/* UnsupportedVersion with two octets. */
	static const uint8_t uv2[] = {0x02, 0x00, 0x02, 0x00, 0x00};
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, uv2, sizeof(uv2)), CV_EPARSE);

	/* TunneledDtls with an empty dtls_message (floor 1). */
	memcpy(b, v_dtls, 19);
	b[2] = 18;
	b[19] = 0;
	b[20] = 0;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, 21), CV_EPARSE);
	/* dtls_message length larger than the body. */
	memcpy(b, v_dtls, sizeof(v_dtls));
	b[20] = 6;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_dtls)), CV_EPARSE);

	/* MediaKeys: an empty key (floor 1). */
	memcpy(b, v_keys, sizeof(v_keys));
	b[22] = 0; /* client key length 0: the rest no longer frames */
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_keys)), CV_EPARSE);
	/* A single (non-double) profile: the node has no use for it. */
	memcpy(b, v_keys, sizeof(v_keys));
	b[20] = 0x07;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_keys)), CV_EUNSUPP);
	/* The 256 double profile with 16-octet keys: not its outer half. */
	b[20] = 0x0A;
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, sizeof(v_keys)), CV_EPROTO);
	/* A non-empty MKI (the struct has no room for one). */
	{
		uint8_t k[sizeof(v_keys) + 4];
		memcpy(k, v_keys, 21);
		k[2] = 79 + 4;
		k[21] = 4;
		memset(k + 22, 0x77, 4);
		memcpy(k + 26, v_keys + 22, sizeof(v_keys) - 22);
		CV_CHECK_INT(cv_tunnel_msg_parse(&m, k, sizeof(k)), CV_EUNSUPP);
	}
}

/*
 * The end-to-end guarantee: a whole double master key (inner || outer)
 * or a whole double salt never gets into struct cv_tunnel_media_keys.
 */
static void test_no_e2e_key(void)
{
	struct cv_tunnel_msg m;
	uint8_t b[3 + 16 + 2 + 1 + 65 + 65 + 25 + 25];
	size_t pos;

	_Static_assert(
		sizeof(((struct cv_tunnel_media_keys *)0)->client_write_key) <
			64,
		"a hop key field cannot hold a DOUBLE-256 master key");
	/* For each double profile: full master keys (2 x half), full salts
	 * (24), and full keys with outer-size salts. */
	for (int prof = 0x0009; prof <= 0x000A; prof++) {
		size_t half = cv_tunnel_hop_key_len((uint16_t)prof);
		for (int variant = 0; variant < 3; variant++) {
			size_t klen = variant == 1 ? half : 2 * half;
			size_t slen = variant == 0 ? 12 : 24;
			pos = 3;
			memset(b + pos, 0xab, 16);
			pos += 16;
			b[pos++] = 0;
			b[pos++] = (uint8_t)prof;
			b[pos++] = 0;
			for (int d = 0; d < 2; d++) {
				b[pos++] = (uint8_t)klen;
				memset(b + pos, 0x55, klen);
				pos += klen;
			}
			for (int d = 0; d < 2; d++) {
				b[pos++] = (uint8_t)slen;
				memset(b + pos, 0x66, slen);
				pos += slen;
			}
			b[0] = 3;
			b[1] = (uint8_t)((pos - 3) >> 8);
			b[2] = (uint8_t)(pos - 3);
			CV_CHECK_INT(cv_tunnel_msg_parse(&m, b, pos),
				     CV_EPROTO);
		}
	}
	/* Nor can one be encoded. */
	memset(&m, 0, sizeof(m));
	m.type = CV_TUNNEL_MEDIA_KEYS;
	m.u.keys.profile = CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM;
	m.u.keys.key_len = 32;
	CV_CHECK_INT(cv_tunnel_msg_encode(&m, b, sizeof(b)), -EINVAL);
	m.u.keys.profile = 0x0007;
	m.u.keys.key_len = 16;
	CV_CHECK_INT(cv_tunnel_msg_encode(&m, b, sizeof(b)), -EINVAL);
}

/* ---- the link on loopback ---- */

static char dir[] = "/tmp/cv-tunnel-XXXXXX";

struct ident {
	char cert[128], key[128];
	char fp[CV_TUNNEL_FP_STRLEN];
};

static void make_ident(struct ident *id, const char *name)
{
	snprintf(id->cert, sizeof(id->cert), "%s/%s-cert.pem", dir, name);
	snprintf(id->key, sizeof(id->key), "%s/%s-key.pem", dir, name);
	CV_CHECK_INT(cv_test_write_ident(id->cert, id->key, name,
					 1 + (long)name[0], id->fp),
		     0);
}

static struct ident kd_id, node_id, stranger_id;

/* What both ends saw. */
struct obs {
	int node_up, node_down, last_down_err;
	int node_msgs, node_keys, node_dtls;
	struct cv_tunnel_msg last_keys;
	uint8_t last_dtls[4096];
	size_t last_dtls_len;
	int kd_up, kd_down, kd_msgs, kd_dtls, kd_disc, refused;
	size_t kd_bytes;
	char kd_node_id[17], refused_id[17], refused_reason[64];
	struct cv_kd_node *node;
	struct cv_tunnel_link *link;
	struct cv_kd_link *kd;
};

static void on_up(void *arg)
{
	((struct obs *)arg)->node_up++;
}

static void on_down(void *arg, int err)
{
	struct obs *o = arg;
	o->node_down++;
	o->last_down_err = err;
}

static void on_message(void *arg, const struct cv_tunnel_msg *m)
{
	struct obs *o = arg;

	o->node_msgs++;
	if (m->type == CV_TUNNEL_MEDIA_KEYS) {
		o->node_keys++;
		o->last_keys = *m;
	} else if (m->type == CV_TUNNEL_TUNNELED_DTLS) {
		o->node_dtls++;
		memcpy(o->last_dtls, m->u.dtls.data, m->u.dtls.len);
		o->last_dtls_len = m->u.dtls.len;
	}
}

static void kd_on_up(void *arg, struct cv_kd_node *node, const char *id)
{
	struct obs *o = arg;

	o->kd_up++;
	o->node = node;
	snprintf(o->kd_node_id, sizeof(o->kd_node_id), "%s", id);
}

static void kd_on_message(void *arg, struct cv_kd_node *node,
			  const struct cv_tunnel_msg *m)
{
	struct obs *o = arg;

	(void)node;
	o->kd_msgs++;
	if (m->type == CV_TUNNEL_TUNNELED_DTLS) {
		o->kd_dtls++;
		o->kd_bytes += m->u.dtls.len;
	} else if (m->type == CV_TUNNEL_ENDPOINT_DISCONNECT) {
		o->kd_disc++;
	}
}

static void kd_on_down(void *arg, struct cv_kd_node *node, int err)
{
	struct obs *o = arg;

	(void)err;
	o->kd_down++;
	if (o->node == node)
		o->node = NULL;
}

static void kd_on_refused(void *arg, const char *id, const char *reason)
{
	struct obs *o = arg;

	o->refused++;
	snprintf(o->refused_id, sizeof(o->refused_id), "%s", id);
	snprintf(o->refused_reason, sizeof(o->refused_reason), "%s", reason);
}

static const struct cv_tunnel_link_callbacks link_cb_tmpl = {
	.on_up = on_up, .on_down = on_down, .on_message = on_message};
static const struct cv_kd_link_callbacks kd_cb_tmpl = {
	.on_node_up = kd_on_up,
	.on_message = kd_on_message,
	.on_node_down = kd_on_down,
	.on_refused = kd_on_refused};

/* Runs the loop until *flag >= want or timeout_ms passed. */
static bool run_until(struct cv_loop *loop, const int *flag, int want,
		      uint64_t timeout_ms)
{
	uint64_t end = cv_clock_now_ms() + timeout_ms;

	while (*flag < want && cv_clock_now_ms() < end)
		cv_loop_run_once(loop, 10);
	return *flag >= want;
}

static int make_kd(struct cv_loop *loop, struct obs *o, uint16_t port)
{
	const char *allowed[] = {node_id.fp};
	struct cv_kd_link_opts ko = {.address = "127.0.0.1",
				     .port = port,
				     .cert_file = kd_id.cert,
				     .key_file = kd_id.key,
				     .allowed_nodes = allowed,
				     .n_allowed = 1};
	struct cv_kd_link_callbacks cb = kd_cb_tmpl;

	cb.arg = o;
	return cv_kd_link_create(&o->kd, loop, &ko, &cb);
}

static int make_link(struct cv_loop *loop, struct obs *o,
		     const struct ident *me, const char *pin)
{
	struct cv_tunnel_link_opts lo = {.host = "127.0.0.1",
					 .port = cv_kd_link_port(o->kd),
					 .cert_file = me->cert,
					 .key_file = me->key,
					 .kd_fingerprint = pin,
					 .backoff_initial_ms = 50,
					 .backoff_max_ms = 200,
					 .connect_timeout_ms = 2000};
	struct cv_tunnel_link_callbacks cb = link_cb_tmpl;

	cb.arg = o;
	return cv_tunnel_link_create(&o->link, loop, &lo, &cb);
}

static void test_link_roundtrip(struct cv_loop *loop)
{
	struct obs o = {0};
	struct cv_tunnel_msg m = {0};
	uint8_t rec[2000];
	size_t n;

	CV_CHECK_INT(make_kd(loop, &o, 0), 0);
	CV_CHECK_INT(make_link(loop, &o, &node_id, kd_id.fp), 0);
	m.type = CV_TUNNEL_TUNNELED_DTLS;
	m.u.dtls.data = rec;
	m.u.dtls.len = 1;
	CV_CHECK_INT(cv_tunnel_link_send(o.link, &m), -ENOTCONN);
	CV_CHECK(run_until(loop, &o.kd_up, 1, 3000));
	CV_CHECK(run_until(loop, &o.node_up, 1, 3000));
	CV_CHECK(cv_tunnel_link_is_up(o.link));
	CV_CHECK_INT(cv_kd_link_nodes(o.kd), 1);
	CV_CHECK_INT(strlen(o.kd_node_id), 16);
	const uint16_t *profs = cv_kd_node_profiles(o.node, &n);
	CV_CHECK_INT(n, 2);
	CV_CHECK_INT(profs[0], CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM);

	/* Node -> KD: a burst of DTLS records, then a disconnect. */
	for (size_t i = 0; i < sizeof(rec); i++)
		rec[i] = (uint8_t)(i * 7);
	m.u.dtls.len = sizeof(rec);
	for (int i = 0; i < 100; i++) {
		m.u.dtls.assoc.b[0] = (uint8_t)i;
		CV_CHECK_INT(cv_tunnel_link_send(o.link, &m), 0);
	}
	m.type = CV_TUNNEL_ENDPOINT_DISCONNECT;
	CV_CHECK_INT(cv_tunnel_link_send(o.link, &m), 0);
	m.type = CV_TUNNEL_MEDIA_KEYS; /* not the node's to send */
	CV_CHECK_INT(cv_tunnel_link_send(o.link, &m), -EINVAL);
	CV_CHECK(run_until(loop, &o.kd_disc, 1, 3000));
	CV_CHECK_INT(o.kd_dtls, 100);
	CV_CHECK_INT(o.kd_bytes, 100 * sizeof(rec));

	/* KD -> node: MediaKeys and a DTLS record. */
	CV_CHECK_INT(cv_tunnel_msg_parse(&m, v_keys, sizeof(v_keys)), 0);
	CV_CHECK_INT(cv_kd_link_send(o.kd, o.node, &m), 0);
	m.type = CV_TUNNEL_TUNNELED_DTLS;
	memset(&m.u, 0, sizeof(m.u));
	m.u.dtls.data = rec;
	m.u.dtls.len = 1500;
	CV_CHECK_INT(cv_kd_link_send(o.kd, o.node, &m), 0);
	m.type = CV_TUNNEL_SUPPORTED_PROFILES; /* not the KD's to send */
	CV_CHECK_INT(cv_kd_link_send(o.kd, o.node, &m), -EINVAL);
	CV_CHECK(run_until(loop, &o.node_dtls, 1, 3000));
	CV_CHECK_INT(o.node_keys, 1);
	CV_CHECK_INT(o.last_keys.u.keys.key_len, 16);
	CV_CHECK_MEM(o.last_keys.u.keys.client_write_key, v_keys + 23, 16);
	CV_CHECK_MEM(o.last_keys.u.keys.server_write_salt, v_keys + 70, 12);
	CV_CHECK_INT(o.last_dtls_len, 1500);
	CV_CHECK_MEM(o.last_dtls, rec, 1500);
	CV_CHECK_INT(o.node_down, 0);

	/* The KD goes away and comes back on the same port: the node
	 * reconnects by itself. */
	uint16_t port = cv_kd_link_port(o.kd);
	cv_kd_link_destroy(o.kd);
	o.kd = NULL;
	CV_CHECK(run_until(loop, &o.node_down, 1, 3000));
	CV_CHECK(!cv_tunnel_link_is_up(o.link));
	/* Down for a while: attempts fail and back off. */
	uint64_t end = cv_clock_now_ms() + 300;
	while (cv_clock_now_ms() < end)
		cv_loop_run_once(loop, 10);
	CV_CHECK(o.node_down >= 2);
	CV_CHECK_INT(make_kd(loop, &o, port), 0);
	CV_CHECK(run_until(loop, &o.node_up, 2, 3000));
	CV_CHECK(run_until(loop, &o.kd_up, 2, 3000));
	CV_CHECK_INT(cv_tunnel_link_connects(o.link), 2);
	m.type = CV_TUNNEL_TUNNELED_DTLS;
	m.u.dtls.len = 10;
	CV_CHECK_INT(cv_tunnel_link_send(o.link, &m), 0);
	CV_CHECK(run_until(loop, &o.kd_dtls, 101, 3000));
	CV_CHECK_INT(o.refused, 0);

	cv_tunnel_link_destroy(o.link);
	CV_CHECK(run_until(loop, &o.kd_down, 1, 3000));
	CV_CHECK_INT(cv_kd_link_nodes(o.kd), 0);
	cv_kd_link_destroy(o.kd);
}

static void test_link_refused(struct cv_loop *loop)
{
	struct obs o = {0};

	CV_CHECK_INT(make_kd(loop, &o, 0), 0);
	CV_CHECK_INT(make_link(loop, &o, &stranger_id, kd_id.fp), 0);
	CV_CHECK(run_until(loop, &o.refused, 1, 3000));
	CV_CHECK(run_until(loop, &o.node_down, 1, 3000));
	CV_CHECK_STR(o.refused_reason, "unknown node certificate");
	CV_CHECK_INT(strlen(o.refused_id), 16);
	/* The id is obfuscated: no part of the fingerprint in clear. */
	CV_CHECK(strstr(stranger_id.fp, o.refused_id) == NULL);
	CV_CHECK_INT(o.last_down_err, CV_EPROTO);
	CV_CHECK_INT(o.node_up, 0);
	CV_CHECK_INT(o.kd_up, 0);
	CV_CHECK(!cv_tunnel_link_is_up(o.link));
	/* It keeps being refused on every retry. */
	CV_CHECK(run_until(loop, &o.refused, 2, 3000));
	CV_CHECK_INT(o.node_up, 0);
	cv_tunnel_link_destroy(o.link);
	cv_kd_link_destroy(o.kd);
}

static void test_link_wrong_pin(struct cv_loop *loop)
{
	struct obs o = {0};

	/* The node expects another KD certificate. */
	CV_CHECK_INT(make_kd(loop, &o, 0), 0);
	CV_CHECK_INT(make_link(loop, &o, &node_id, stranger_id.fp), 0);
	CV_CHECK(run_until(loop, &o.node_down, 1, 3000));
	CV_CHECK_INT(o.last_down_err, CV_EAUTH);
	CV_CHECK_INT(o.node_up, 0);
	CV_CHECK_INT(o.kd_up, 0);
	cv_tunnel_link_destroy(o.link);
	cv_kd_link_destroy(o.kd);
}

static void test_link_args(struct cv_loop *loop)
{
	struct obs o = {0};
	struct cv_tunnel_link *l = NULL;
	struct cv_tunnel_link_opts lo = {.host = "127.0.0.1",
					 .port = 1,
					 .cert_file = node_id.cert,
					 .key_file = node_id.key,
					 .kd_fingerprint = "sha-256 00"};
	struct cv_tunnel_link_callbacks cb = link_cb_tmpl;
	const char *bad[] = {"md5 00"};
	struct cv_kd_link_opts ko = {.address = "127.0.0.1",
				     .cert_file = kd_id.cert,
				     .key_file = kd_id.key,
				     .allowed_nodes = bad,
				     .n_allowed = 1};
	struct cv_kd_link_callbacks kcb = kd_cb_tmpl;

	cb.arg = &o;
	CV_CHECK_INT(cv_tunnel_link_create(&l, loop, &lo, &cb), CV_EPARSE);
	lo.kd_fingerprint = kd_id.fp;
	lo.host = "localhost"; /* numeric only */
	CV_CHECK_INT(cv_tunnel_link_create(&l, loop, &lo, &cb), -EINVAL);
	lo.host = "127.0.0.1";
	lo.cert_file = "/nonexistent/cert.pem";
	CV_CHECK_INT(cv_tunnel_link_create(&l, loop, &lo, &cb), -ENOENT);
	lo.cert_file = node_id.cert;
	lo.key_file = stranger_id.key; /* does not match the certificate */
	CV_CHECK_INT(cv_tunnel_link_create(&l, loop, &lo, &cb), CV_ECRYPTO);
	CV_CHECK(l == NULL);
	kcb.arg = &o;
	CV_CHECK_INT(cv_kd_link_create(&o.kd, loop, &ko, &kcb), -EINVAL);
	ko.n_allowed = 0;
	CV_CHECK_INT(cv_kd_link_create(&o.kd, loop, &ko, &kcb), -EINVAL);
}

int main(void)
{
	struct cv_loop *loop = NULL;
	char cmd[64];

	signal(SIGPIPE, SIG_IGN);
	test_vectors();
	test_malformed();
	test_no_e2e_key();

	CV_CHECK(mkdtemp(dir) != NULL);
	make_ident(&kd_id, "kd");
	make_ident(&node_id, "node");
	make_ident(&stranger_id, "stranger");
	CV_CHECK_INT(cv_loop_create(&loop), 0);
	test_link_args(loop);
	test_link_roundtrip(loop);
	test_link_refused(loop);
	test_link_wrong_pin(loop);
	cv_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done("test_tunnel");
}
