/*
 * The Key Distributor's end of the RFC 9185 tunnel: a TLS 1.3 server on a
 * cv_loop that accepts media nodes. A node is identified by its client
 * certificate, pinned by fingerprint against the configured allow list;
 * any other certificate (or none) fails the handshake with an alert, and
 * the refusal goes to the on_refused hook (the daemon writes it to the
 * audit log) or, without one, to the log with an obfuscated id.
 *
 * Per node (RFC 9185 section 5): its first message must be
 * SupportedProfiles; a version other than ours is answered with
 * UnsupportedVersion and the connection is closed; after that the node
 * sends TunneledDtls and EndpointDisconnect, and we send TunneledDtls and
 * MediaKeys. After the handshake we send one TLS session ticket: it tells
 * the node that its certificate was accepted (tunnel.h).
 *
 * Thread: everything on the loop's thread.
 */
#ifndef CONCLAVE_KMS_KD_LINK_H
#define CONCLAVE_KMS_KD_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/tunnel.h"

struct cv_loop;
struct cv_kd_link;
/* One connected node; valid from on_node_up until on_node_down returns. */
struct cv_kd_node;

/* Most allowed node certificates. */
#define CV_KD_MAX_ALLOWED 64

struct cv_kd_link_opts {
	/* Listening address (numeric) and port (0 = any free port). */
	const char *address;
	uint16_t port;
	/* The KD's certificate and key (PEM). Borrowed, read at create. */
	const char *cert_file;
	const char *key_file;
	/* Allowed node certificates, "sha-256 AB:CD:..." each (1 to
	 * CV_KD_MAX_ALLOWED). Borrowed, parsed at create. */
	const char *const *allowed_nodes;
	size_t n_allowed;
	/* Ceilings: connected nodes (0 = 64); TLS handshake plus the first
	 * message (0 = 10000 ms); queued octets per node (0 = 1 MiB). */
	size_t max_nodes;
	uint32_t handshake_timeout_ms;
	size_t max_queue_bytes;
};

struct cv_kd_link_callbacks {
	/* A node passed the handshake and sent SupportedProfiles. node_id:
	 * the obfuscated id of its certificate (16 hex digits). */
	void (*on_node_up)(void *arg, struct cv_kd_node *node,
			   const char *node_id);
	/* TUNNELED_DTLS or ENDPOINT_DISCONNECT from an up node (borrowed for
	 * the call). May call cv_kd_link_send(). */
	void (*on_message)(void *arg, struct cv_kd_node *node,
			   const struct cv_tunnel_msg *msg);
	/* The node is gone (after on_node_up only); node is freed after. */
	void (*on_node_down)(void *arg, struct cv_kd_node *node, int err);
	/* May be NULL: a connection was refused. id: obfuscated id of the
	 * certificate, or of the peer address when it sent none; reason:
	 * "unknown node certificate", "no node certificate". */
	void (*on_refused)(void *arg, const char *id, const char *reason);
	void *arg;
};

/*
 * Listens and starts accepting on loop (borrowed, outlives the link).
 * opts, cb: borrowed, copied (on_node_up, on_message, on_node_down
 * required). *out written on success only. Returns 0; -EINVAL (bad option
 * or fingerprint); -ENOMEM; -errno (socket, bind, files); CV_EPARSE;
 * CV_ECRYPTO.
 */
int cv_kd_link_create(struct cv_kd_link **out, struct cv_loop *loop,
		      const struct cv_kd_link_opts *opts,
		      const struct cv_kd_link_callbacks *cb);

/* The bound port (useful with port 0). */
uint16_t cv_kd_link_port(const struct cv_kd_link *kd);

/* Number of nodes that are up. */
size_t cv_kd_link_nodes(const struct cv_kd_link *kd);

/*
 * Queues m (borrowed; MEDIA_KEYS or TUNNELED_DTLS) for an up node.
 * MediaKeys octets are wiped from our buffers once written. Returns 0;
 * -EINVAL; -ENOTCONN (node not up); CV_ETOOBIG (queue full).
 */
int cv_kd_link_send(struct cv_kd_link *kd, struct cv_kd_node *node,
		    const struct cv_tunnel_msg *m);

/* The node's obfuscated certificate id (16 hex digits). */
const char *cv_kd_node_id(const struct cv_kd_node *node);

/* The profiles the node offered; *n gets their count. */
const uint16_t *cv_kd_node_profiles(const struct cv_kd_node *node, size_t *n);

/*
 * Closes every connection (no callbacks) and the listener, frees the
 * link. NULL is fine. Not from inside a callback.
 */
void cv_kd_link_destroy(struct cv_kd_link *kd);

#endif
