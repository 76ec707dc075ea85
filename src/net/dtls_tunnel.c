/*
 * The tunnelled implementation of struct cv_dtls (perc rooms): the
 * endpoint's DTLS records are relayed to the Key Distributor over the
 * RFC 9185 tunnel, and the only keys that come back are the hop-by-hop
 * halves in MediaKeys. See include/conclave/dtls.h and docs/perc.md.
 *
 * Nothing here can hold an end-to-end key: there is no SSL object, no
 * exporter output, and struct cv_tunnel_media_keys has no field for one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/tunnel.h"

enum tunnel_state {
	TUNNEL_NEW,	  /* created, not started */
	TUNNEL_HANDSHAKE, /* relaying, waiting for MediaKeys */
	TUNNEL_CONNECTED, /* on_connected done; still relaying */
	TUNNEL_DONE,	  /* failed or closed */
};

struct cv_dtls_tunnel {
	struct cv_dtls base; /* first: the interface */
	struct cv_tunnel_link *link;
	struct cv_tunnel_assoc_id assoc;
	enum tunnel_state state;
	bool relayed;	   /* a record went to the KD */
	bool disconnected; /* EndpointDisconnect sent */
	uint64_t deadline_ms;
	struct cv_dtls_callbacks cb;
};

static const struct cv_dtls_ops tunnel_ops;

static struct cv_dtls_tunnel *tunnel_of(struct cv_dtls *d)
{
	return (struct cv_dtls_tunnel *)d;
}

int cv_dtls_tunnel_new_assoc_id(struct cv_tunnel_assoc_id *out)
{
	if (!out)
		return -EINVAL;
	if (RAND_bytes(out->b, sizeof(out->b)) != 1)
		return CV_ECRYPTO;
	/* RFC 4122 section 4.4: version 4 in time_hi_and_version, variant
	 * 10x in clock_seq_hi_and_reserved. */
	out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40);
	out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
	return 0;
}

const struct cv_tunnel_assoc_id *cv_dtls_tunnel_assoc(const struct cv_dtls *d)
{
	if (!d || d->ops != &tunnel_ops)
		return NULL;
	return &((const struct cv_dtls_tunnel *)d)->assoc;
}

/*
 * RFC 9185 section 6 (EndpointDisconnect): tells the KD to drop its
 * state for this association. Sent once, only while the link is up.
 */
static void tunnel_disconnect(struct cv_dtls_tunnel *d)
{
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_ENDPOINT_DISCONNECT};

	if (d->disconnected || !d->relayed)
		return;
	d->disconnected = true;
	if (!cv_tunnel_link_is_up(d->link))
		return;
	m.u.disconnect.assoc = d->assoc;
	(void)cv_tunnel_link_send(d->link, &m);
}

static void tunnel_fail(struct cv_dtls_tunnel *d, int err)
{
	if (d->state == TUNNEL_DONE)
		return;
	cv_log_ratelimited(CV_LOG_INFO, CV_LOG_DTLS, "tunnelled %s failed: %s",
			   d->state == TUNNEL_CONNECTED ? "association"
							: "handshake",
			   cv_strerror(err));
	d->state = TUNNEL_DONE;
	tunnel_disconnect(d);
	d->cb.on_failed(d->cb.arg, err);
}

static int tunnel_start(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);

	if (d->state == TUNNEL_DONE)
		return -ENOTCONN;
	if (d->state != TUNNEL_NEW)
		return 0;
	d->state = TUNNEL_HANDSHAKE;
	d->deadline_ms = now_ms + CV_DTLS_HANDSHAKE_TIMEOUT_MS;
	return 0;
}

/*
 * The node cannot judge the handshake, but it can refuse what no genuine
 * endpoint sends, so that stray records never open state at the KD: the
 * endpoint is the client, so its first record is a ClientHello.
 */
static int tunnel_screen(const struct cv_dtls_tunnel *d, const uint8_t *p,
			 size_t len)
{
	return cv_dtls_screen_record(p, len, !d->relayed);
}

static int tunnel_handle_datagram(struct cv_dtls *base, const uint8_t *data,
				  size_t len, uint64_t now_ms)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);
	struct cv_tunnel_msg m = {.type = CV_TUNNEL_TUNNELED_DTLS};
	int err;

	if (len > CV_DTLS_MAX_DATAGRAM)
		return CV_ETOOBIG;
	if (d->state == TUNNEL_DONE)
		return -ENOTCONN;
	err = tunnel_screen(d, data, len);
	if (err)
		return err;
	if (d->state == TUNNEL_NEW)
		tunnel_start(base, now_ms);
	m.u.dtls.assoc = d->assoc;
	m.u.dtls.data = data;
	m.u.dtls.len = len;
	err = cv_tunnel_link_send(d->link, &m);
	if (err == -ENOTCONN) {
		/* tunnel.h: nothing is queued while the link is down. */
		tunnel_fail(d, -ENOTCONN);
		return 0;
	}
	if (err)
		return err; /* queue full: a lost datagram, retransmitted */
	d->relayed = true;
	return 0;
}

/* MediaKeys -> on_connected with the outer halves, RFC 5764 4.2 layout. */
static int tunnel_keys(struct cv_dtls_tunnel *d,
		       const struct cv_tunnel_media_keys *k)
{
	uint8_t material[CV_DTLS_MATERIAL_MAX];
	uint16_t profile;
	size_t kl = k->key_len, off = 0;

	if (d->state != TUNNEL_HANDSHAKE || !d->relayed)
		return CV_EPROTO;
	/* RFC 8723 section 5.1: each half of a double profile is the
	 * matching single AEAD profile of RFC 7714. tunnel.c has already
	 * refused any other profile or a key that is not an outer half. */
	if (k->profile == CV_TUNNEL_DOUBLE_AEAD_AES_128_GCM && kl == 16)
		profile = CV_DTLS_SRTP_AEAD_AES_128_GCM;
	else if (k->profile == CV_TUNNEL_DOUBLE_AEAD_AES_256_GCM && kl == 32)
		profile = CV_DTLS_SRTP_AEAD_AES_256_GCM;
	else
		return CV_EPROTO;
	memcpy(material + off, k->client_write_key, kl);
	off += kl;
	memcpy(material + off, k->server_write_key, kl);
	off += kl;
	memcpy(material + off, k->client_write_salt, CV_TUNNEL_HOP_SALT_BYTES);
	off += CV_TUNNEL_HOP_SALT_BYTES;
	memcpy(material + off, k->server_write_salt, CV_TUNNEL_HOP_SALT_BYTES);
	off += CV_TUNNEL_HOP_SALT_BYTES;
	d->state = TUNNEL_CONNECTED;
	cv_log(CV_LOG_DEBUG, CV_LOG_DTLS,
	       "tunnelled association keyed (double_profile=0x%04x)",
	       k->profile);
	d->cb.on_connected(d->cb.arg, profile, material, off, false);
	OPENSSL_cleanse(material, sizeof(material));
	return 0;
}

int cv_dtls_tunnel_handle_message(struct cv_dtls *base,
				  const struct cv_tunnel_msg *m)
{
	struct cv_dtls_tunnel *d;
	const struct cv_tunnel_assoc_id *id;

	if (!base || base->ops != &tunnel_ops || !m)
		return -EINVAL;
	d = tunnel_of(base);
	if (m->type == CV_TUNNEL_TUNNELED_DTLS)
		id = &m->u.dtls.assoc;
	else if (m->type == CV_TUNNEL_MEDIA_KEYS)
		id = &m->u.keys.assoc;
	else
		return -EINVAL;
	if (memcmp(id->b, d->assoc.b, sizeof(id->b)) != 0)
		return -EINVAL;
	if (d->state == TUNNEL_DONE)
		return -ENOTCONN;
	if (m->type == CV_TUNNEL_MEDIA_KEYS)
		return tunnel_keys(d, &m->u.keys);
	if (m->u.dtls.len == 0 || m->u.dtls.len > CV_DTLS_MAX_DATAGRAM)
		return CV_ETOOBIG;
	d->cb.send(d->cb.arg, m->u.dtls.data, m->u.dtls.len);
	return 0;
}

void cv_dtls_tunnel_link_down(struct cv_dtls *base, int err)
{
	struct cv_dtls_tunnel *d;

	if (!base || base->ops != &tunnel_ops)
		return;
	d = tunnel_of(base);
	/* The KD lost its state with the connection. */
	d->disconnected = true;
	if (d->state == TUNNEL_HANDSHAKE || d->state == TUNNEL_NEW)
		tunnel_fail(d, err ? err : -ENOTCONN);
}

static int64_t tunnel_next_timeout_ms(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);

	/* Retransmission is the endpoint's and the KD's business. */
	if (d->state != TUNNEL_HANDSHAKE)
		return -1;
	return d->deadline_ms > now_ms ? (int64_t)(d->deadline_ms - now_ms) : 0;
}

static int tunnel_handle_timer(struct cv_dtls *base, uint64_t now_ms)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);

	if (d->state == TUNNEL_DONE)
		return -ENOTCONN;
	if (d->state == TUNNEL_HANDSHAKE && now_ms >= d->deadline_ms)
		tunnel_fail(d, CV_EEXPIRED);
	return 0;
}

static int tunnel_close(struct cv_dtls *base)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);

	tunnel_disconnect(d);
	d->state = TUNNEL_DONE;
	return 0;
}

static void tunnel_destroy(struct cv_dtls *base)
{
	struct cv_dtls_tunnel *d = tunnel_of(base);

	tunnel_disconnect(d);
	free(d);
}

static const struct cv_dtls_ops tunnel_ops = {
	.name = "tunnel",
	.start = tunnel_start,
	.handle_datagram = tunnel_handle_datagram,
	.handle_timer = tunnel_handle_timer,
	.next_timeout_ms = tunnel_next_timeout_ms,
	.close = tunnel_close,
	.destroy = tunnel_destroy,
};

int cv_dtls_tunnel_create(struct cv_dtls **out, struct cv_tunnel_link *link,
			  const struct cv_tunnel_assoc_id *assoc,
			  enum cv_dtls_role role,
			  const struct cv_dtls_callbacks *cb)
{
	struct cv_dtls_tunnel *d;

	if (!out || !link || !assoc || !cb || !cb->send || !cb->on_connected ||
	    !cb->on_failed)
		return -EINVAL;
	if (role == CV_DTLS_ROLE_CLIENT)
		return CV_EUNSUPP;
	if (role != CV_DTLS_ROLE_SERVER)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->base.ops = &tunnel_ops;
	d->link = link;
	d->assoc = *assoc;
	d->state = TUNNEL_NEW;
	d->cb = *cb;
	*out = &d->base;
	return 0;
}
