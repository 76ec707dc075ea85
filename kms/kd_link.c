/*
 * Key Distributor end of the RFC 9185 tunnel: TLS 1.3 server accepting
 * media nodes pinned by certificate. See kms/kd_link.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "kms/kd_link.h"

#define KD_MAX_NODES		64
#define KD_HANDSHAKE_TIMEOUT_MS 10000
#define KD_MAX_QUEUE		(1u << 20)

enum node_state {
	NODE_HANDSHAKE, /* TLS handshake */
	NODE_HELLO,	/* waiting for SupportedProfiles */
	NODE_UP,
	NODE_CLOSING, /* flushing UnsupportedVersion, then close */
};

struct cv_kd_node {
	struct cv_kd_link *kd;
	struct cv_kd_node *next;
	SSL *ssl;
	struct cv_io io;
	uint32_t io_events;
	struct cv_timer timer;
	enum node_state state;
	bool refused; /* on_refused already called */
	char peer_id[17];
	char id[17];
	uint16_t profiles[CV_TUNNEL_MAX_PROFILES];
	size_t n_profiles;
	uint8_t *rx;
	size_t rx_len;
	struct cv_tunnel_txq tx; /* cap: the link's max_queue_bytes */
};

struct cv_kd_link {
	struct cv_loop *loop;
	struct cv_kd_link_callbacks cb;
	SSL_CTX *ctx;
	struct cv_io listen_io;
	uint16_t port;
	struct cv_dtls_fingerprint allowed[CV_KD_MAX_ALLOWED];
	size_t n_allowed;
	size_t max_nodes, n_conns, n_up;
	uint32_t handshake_timeout_ms;
	size_t tx_cap;
	struct cv_kd_node *nodes;
	int ssl_idx;
};

/* ---- refusal: audit hook or log ---- */

static void node_refuse(struct cv_kd_node *n, const char *id,
			const char *reason)
{
	struct cv_kd_link *kd = n->kd;

	if (n->refused)
		return;
	n->refused = true;
	cv_log(CV_LOG_WARN, CV_LOG_KMS, "tunnel: node refused: %s (node=%s)",
	       reason, id);
	if (kd->cb.on_refused)
		kd->cb.on_refused(kd->cb.arg, id, reason);
}

/*
 * Pins the node's leaf certificate to the allow list; chain errors are
 * ignored (no PKI: the fingerprint is the identity). A refusal fails the
 * handshake with an alert.
 */
static int kd_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct cv_kd_node *n = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(x);
	char fp[CV_TUNNEL_FP_STRLEN], id[17];

	(void)ok;
	if (!n)
		return 0;
	if (X509_STORE_CTX_get_error_depth(x) > 0)
		return 1;
	if (cv_tunnel_cert_pinned(cert, n->kd->allowed, n->kd->n_allowed)) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 1;
	}
	if (cv_tunnel_cert_fingerprint(cert, fp) == 0)
		cv_log_obfuscate(fp, strlen(fp), id);
	else
		memcpy(id, n->peer_id, sizeof(id));
	node_refuse(n, id, "unknown node certificate");
	X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/* ---- one node ---- */

static void node_set_events(struct cv_kd_node *n)
{
	uint32_t ev = EPOLLIN;

	if (cv_tunnel_txq_pending(&n->tx) || (n->ssl && SSL_want_write(n->ssl)))
		ev |= EPOLLOUT;
	if (ev != n->io_events && cv_loop_mod_io(n->kd->loop, &n->io, ev) == 0)
		n->io_events = ev;
}

static void node_free(struct cv_kd_node *n)
{
	struct cv_kd_link *kd = n->kd;
	struct cv_kd_node **pp;

	for (pp = &kd->nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	kd->n_conns--;
	cv_timer_stop(kd->loop, &n->timer);
	cv_loop_del_io(kd->loop, &n->io);
	if (n->ssl) {
		/* Best effort close_notify; the socket is non-blocking. */
		if (SSL_is_init_finished(n->ssl))
			SSL_shutdown(n->ssl);
		SSL_free(n->ssl);
	}
	close(n->io.fd);
	OPENSSL_cleanse(n->rx, CV_TUNNEL_MAX_MSG);
	OPENSSL_cleanse(n->tx.buf, n->tx.cap);
	free(n->rx);
	free(n->tx.buf);
	free(n);
	ERR_clear_error();
}

/* Ends a node's connection; on_node_down only for a node that was up. */
static void node_close(struct cv_kd_node *n, int err)
{
	struct cv_kd_link *kd = n->kd;
	bool was_up = n->state == NODE_UP;

	if (was_up) {
		kd->n_up--;
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "tunnel: node down: %s (node=%s)", cv_strerror(err),
		       n->id);
	}
	if (was_up)
		kd->cb.on_node_down(kd->cb.arg, n, err);
	node_free(n);
}

static int node_ssl_error(struct cv_kd_node *n, int r)
{
	return cv_tunnel_ssl_error(n->ssl, r, n->refused);
}

static int node_queue(struct cv_kd_node *n, const struct cv_tunnel_msg *m)
{
	return cv_tunnel_txq_push(&n->tx, m);
}

static int node_flush(struct cv_kd_node *n)
{
	return cv_tunnel_txq_flush(&n->tx, n->ssl, n->refused);
}

/* RFC 9185 section 5: the first message is SupportedProfiles. */
static int node_hello(struct cv_kd_node *n, const struct cv_tunnel_msg *m)
{
	struct cv_tunnel_msg uv = {.type = CV_TUNNEL_UNSUPPORTED_VERSION};
	struct cv_kd_link *kd = n->kd;
	int err;

	if (m->type != CV_TUNNEL_SUPPORTED_PROFILES)
		return CV_EPROTO;
	if (m->u.profiles.version != CV_TUNNEL_VERSION) {
		/* Answer with the highest version we speak, then close. */
		uv.u.unsupported.highest_version = CV_TUNNEL_VERSION;
		err = node_queue(n, &uv);
		if (err)
			return err;
		n->state = NODE_CLOSING;
		cv_log(CV_LOG_WARN, CV_LOG_KMS,
		       "tunnel: node speaks an unsupported tunnel version "
		       "(node=%s version=%u)",
		       n->id, m->u.profiles.version);
		return 0;
	}
	n->n_profiles = m->u.profiles.n;
	memcpy(n->profiles, m->u.profiles.ids,
	       n->n_profiles * sizeof(uint16_t));
	n->state = NODE_UP;
	kd->n_up++;
	cv_timer_stop(kd->loop, &n->timer);
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "tunnel: node up (node=%s profiles=%zu)", n->id, n->n_profiles);
	kd->cb.on_node_up(kd->cb.arg, n, n->id);
	return 0;
}

static int node_dispatch(struct cv_kd_node *n, const uint8_t *p, size_t len);

static int node_dispatch_fn(void *arg, const uint8_t *p, size_t len)
{
	return node_dispatch(arg, p, len);
}

static int node_dispatch(struct cv_kd_node *n, const uint8_t *p, size_t len)
{
	struct cv_tunnel_msg m;
	int err;

	if (n->state == NODE_CLOSING)
		return 0;
	if (p[0] < CV_TUNNEL_SUPPORTED_PROFILES ||
	    p[0] > CV_TUNNEL_ENDPOINT_DISCONNECT) {
		cv_log_ratelimited(CV_LOG_DEBUG, CV_LOG_KMS,
				   "tunnel: unknown tunnel message skipped "
				   "(type=%u)",
				   p[0]);
		return 0;
	}
	err = cv_tunnel_msg_parse(&m, p, len);
	if (err)
		return CV_EPROTO;
	if (n->state == NODE_HELLO)
		return node_hello(n, &m);
	switch (m.type) {
	case CV_TUNNEL_SUPPORTED_PROFILES:
		/* A node may restate its profiles; same version only. */
		if (m.u.profiles.version != CV_TUNNEL_VERSION)
			return CV_EPROTO;
		n->n_profiles = m.u.profiles.n;
		memcpy(n->profiles, m.u.profiles.ids,
		       n->n_profiles * sizeof(uint16_t));
		return 0;
	case CV_TUNNEL_TUNNELED_DTLS:
	case CV_TUNNEL_ENDPOINT_DISCONNECT:
		n->kd->cb.on_message(n->kd->cb.arg, n, &m);
		return 0;
	default:
		return CV_EPROTO; /* a node never sends the KD's messages */
	}
}

static int node_read(struct cv_kd_node *n)
{
	int r, err;

	for (;;) {
		r = SSL_read(n->ssl, n->rx + n->rx_len,
			     (int)(CV_TUNNEL_MAX_MSG - n->rx_len));
		if (r <= 0) {
			err = node_ssl_error(n, r);
			return err == -EAGAIN ? 0 : err;
		}
		n->rx_len += (size_t)r;
		err = cv_tunnel_rx_dispatch(n->rx, &n->rx_len, node_dispatch_fn,
					    n);
		if (err)
			return err;
	}
}

static int node_handshake(struct cv_kd_node *n)
{
	char fp[CV_TUNNEL_FP_STRLEN];
	X509 *peer;
	int r, err;

	r = SSL_do_handshake(n->ssl);
	if (r != 1) {
		err = node_ssl_error(n, r);
		if (err == -EAGAIN)
			return 0;
		/* SSL_VERIFY_FAIL_IF_NO_PEER_CERT fails before the verify
		 * callback runs. */
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
			node_refuse(n, n->peer_id, "no node certificate");
		return err;
	}
	peer = SSL_get0_peer_certificate(n->ssl);
	if (!peer ||
	    !cv_tunnel_cert_pinned(peer, n->kd->allowed, n->kd->n_allowed))
		return CV_EAUTH; /* the callback let nothing else through */
	if (cv_tunnel_cert_fingerprint(peer, fp) != 0)
		return CV_ECRYPTO;
	cv_log_obfuscate(fp, strlen(fp), n->id);
	n->state = NODE_HELLO;
	return 0;
}

static int node_step(struct cv_kd_node *n)
{
	int err;

	if (n->state == NODE_HANDSHAKE) {
		err = node_handshake(n);
		if (err || n->state == NODE_HANDSHAKE)
			return err;
	}
	err = node_flush(n);
	if (err)
		return err;
	if (n->state == NODE_CLOSING)
		return cv_tunnel_txq_pending(&n->tx) ? 0 : CV_EUNSUPP;
	return node_read(n);
}

static void node_on_io(void *arg, uint32_t events)
{
	struct cv_kd_node *n = arg;
	int err;

	(void)events;
	err = node_step(n);
	if (err) {
		node_close(n, err);
		return;
	}
	node_set_events(n);
}

static void node_on_timer(void *arg)
{
	struct cv_kd_node *n = arg;

	if (n->state != NODE_UP)
		node_close(n, CV_EEXPIRED);
}

static void peer_obfuscated(const struct sockaddr_storage *ss, char id[17])
{
	char host[INET6_ADDRSTRLEN + 8] = "?";

	getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host,
		    sizeof(host), NULL, 0, NI_NUMERICHOST);
	cv_log_obfuscate(host, strlen(host), id);
}

static void kd_accept_one(struct cv_kd_link *kd, int fd,
			  const struct sockaddr_storage *ss)
{
	static const int one = 1;
	struct cv_kd_node *n;

	if (kd->n_conns >= kd->max_nodes) {
		cv_log_ratelimited(CV_LOG_WARN, CV_LOG_KMS,
				   "tunnel: node refused: too many connections "
				   "(max=%zu)",
				   kd->max_nodes);
		close(fd);
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto fail;
	n->kd = kd;
	n->io.fd = fd;
	n->io.fn = node_on_io;
	n->io.arg = n;
	cv_timer_init(&n->timer, node_on_timer, n);
	peer_obfuscated(ss, n->peer_id);
	n->rx = malloc(CV_TUNNEL_MAX_MSG);
	n->tx.cap = kd->tx_cap;
	n->tx.buf = malloc(n->tx.cap);
	n->ssl = SSL_new(kd->ctx);
	if (!n->rx || !n->tx.buf || !n->ssl || SSL_set_fd(n->ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(n->ssl, n);
	SSL_set_accept_state(n->ssl);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (cv_loop_add_io(kd->loop, &n->io, EPOLLIN) != 0)
		goto fail;
	n->io_events = EPOLLIN;
	n->next = kd->nodes;
	kd->nodes = n;
	kd->n_conns++;
	cv_timer_start(kd->loop, &n->timer,
		       cv_loop_now_ms(kd->loop) + kd->handshake_timeout_ms);
	return;
fail:
	if (n) {
		if (n->ssl)
			SSL_free(n->ssl);
		free(n->rx);
		free(n->tx.buf);
		free(n);
	}
	close(fd);
	ERR_clear_error();
}

static void kd_on_listen(void *arg, uint32_t events)
{
	struct cv_kd_link *kd = arg;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	(void)events;
	for (;;) {
		len = sizeof(ss);
		fd = accept4(kd->listen_io.fd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error: next event */
		kd_accept_one(kd, fd, &ss);
	}
}

static int kd_listen(struct cv_kd_link *kd, const char *address, uint16_t port)
{
	struct addrinfo hints = {0}, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char port_s[8];
	int fd, one = 1, err;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port_s, sizeof(port_s), "%u", port);
	if (getaddrinfo(address, port_s, &hints, &res) != 0 || !res)
		return -EINVAL;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		err = -errno;
		freeaddrinfo(res);
		return err;
	}
	/* A restarted KMS rebinds at once although old connections linger. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		err = -errno;
		freeaddrinfo(res);
		close(fd);
		return err;
	}
	freeaddrinfo(res);
	kd->port = ntohs(ss.ss_family == AF_INET6
				 ? ((struct sockaddr_in6 *)&ss)->sin6_port
				 : ((struct sockaddr_in *)&ss)->sin_port);
	kd->listen_io.fd = fd;
	return 0;
}

int cv_kd_link_create(struct cv_kd_link **out, struct cv_loop *loop,
		      const struct cv_kd_link_opts *opts,
		      const struct cv_kd_link_callbacks *cb)
{
	struct cv_kd_link *kd;
	int err;

	if (!out || !loop || !opts || !cb || !cb->on_node_up ||
	    !cb->on_message || !cb->on_node_down || !opts->address ||
	    !opts->allowed_nodes || opts->n_allowed < 1 ||
	    opts->n_allowed > CV_KD_MAX_ALLOWED)
		return -EINVAL;
	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd->loop = loop;
	kd->cb = *cb;
	kd->listen_io.fd = -1;
	kd->listen_io.fn = kd_on_listen;
	kd->listen_io.arg = kd;
	kd->max_nodes = opts->max_nodes ? opts->max_nodes : KD_MAX_NODES;
	kd->handshake_timeout_ms = opts->handshake_timeout_ms
					   ? opts->handshake_timeout_ms
					   : KD_HANDSHAKE_TIMEOUT_MS;
	kd->tx_cap =
		opts->max_queue_bytes ? opts->max_queue_bytes : KD_MAX_QUEUE;
	if (kd->tx_cap < CV_TUNNEL_MAX_MSG)
		kd->tx_cap = CV_TUNNEL_MAX_MSG;
	for (size_t i = 0; i < opts->n_allowed; i++) {
		const char *s = opts->allowed_nodes[i];
		if (!s || cv_dtls_fingerprint_parse(&kd->allowed[i], s,
						    strlen(s)) != 0) {
			err = -EINVAL;
			goto fail;
		}
	}
	kd->n_allowed = opts->n_allowed;
	err = cv_tunnel_tls_ctx_new(&kd->ctx, true, opts->cert_file,
				    opts->key_file);
	if (err)
		goto fail;
	SSL_CTX_set_verify(kd->ctx,
			   SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   kd_verify_cb);
	/* One ticket after the handshake: the node's sign of acceptance
	 * (tunnel.h). Nothing is resumed with it: no session cache. */
	SSL_CTX_set_session_cache_mode(kd->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(kd->ctx, 1);
	err = kd_listen(kd, opts->address, opts->port);
	if (err)
		goto fail;
	err = cv_loop_add_io(loop, &kd->listen_io, EPOLLIN);
	if (err)
		goto fail;
	*out = kd;
	return 0;
fail:
	if (kd->listen_io.fd >= 0)
		close(kd->listen_io.fd);
	SSL_CTX_free(kd->ctx);
	free(kd);
	return err;
}

uint16_t cv_kd_link_port(const struct cv_kd_link *kd)
{
	return kd ? kd->port : 0;
}

size_t cv_kd_link_nodes(const struct cv_kd_link *kd)
{
	return kd ? kd->n_up : 0;
}

const char *cv_kd_node_id(const struct cv_kd_node *node)
{
	return node->id;
}

const uint16_t *cv_kd_node_profiles(const struct cv_kd_node *node, size_t *n)
{
	if (n)
		*n = node->n_profiles;
	return node->profiles;
}

int cv_kd_link_send(struct cv_kd_link *kd, struct cv_kd_node *node,
		    const struct cv_tunnel_msg *m)
{
	int err;

	if (!kd || !node || !m ||
	    (m->type != CV_TUNNEL_MEDIA_KEYS &&
	     m->type != CV_TUNNEL_TUNNELED_DTLS))
		return -EINVAL;
	if (node->state != NODE_UP)
		return -ENOTCONN;
	err = node_queue(node, m);
	if (err)
		return err;
	node_set_events(node);
	return 0;
}

void cv_kd_link_destroy(struct cv_kd_link *kd)
{
	if (!kd)
		return;
	while (kd->nodes)
		node_free(kd->nodes);
	cv_loop_del_io(kd->loop, &kd->listen_io);
	close(kd->listen_io.fd);
	SSL_CTX_free(kd->ctx);
	free(kd);
}
