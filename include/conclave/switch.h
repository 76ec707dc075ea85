/*
 * The switch: the media plane of one worker. It owns the worker's UDP
 * socket, every transport (ICE-lite + DTLS + SRTP of one peer connection)
 * of the rooms pinned to the worker, and the forwarding tables from
 * publisher tracks to subscriber outputs.
 *
 * The control plane (src/node) drives it only by posting commands
 * (cv_switch_cmd_*, callable from any thread); the switch reports back
 * through struct cv_switch_events, called on the worker's thread.
 * Everything else here runs on the worker's thread and takes no lock.
 */
#ifndef CONCLAVE_SWITCH_H
#define CONCLAVE_SWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/dtls.h"
#include "conclave/ice.h"
#include "conclave/tunnel.h"

struct cv_pkt;
struct cv_switch;
struct cv_worker;

/* Every reason the packet path drops a datagram, each counted. */
#define CV_DROP_REASONS(X)                                                     \
	X(DEMUX_OTHER, "demux_other")                                          \
	X(TRUNCATED, "truncated")                                              \
	X(NO_BUFFER, "no_buffer")                                              \
	X(STUN_MALFORMED, "stun_malformed")                                    \
	X(STUN_UNKNOWN_UFRAG, "stun_unknown_ufrag")                            \
	X(STUN_REJECTED, "stun_rejected")                                      \
	X(UNKNOWN_ADDRESS, "unknown_address")                                  \
	X(ADDRESS_IN_USE, "address_in_use")                                    \
	X(DTLS_REJECTED, "dtls_rejected")                                      \
	X(NOT_CONNECTED, "not_connected")                                      \
	X(SRTP_AUTH, "srtp_auth")                                              \
	X(SRTP_REPLAY, "srtp_replay")                                          \
	X(SRTP_OTHER, "srtp_other")                                            \
	X(SRTP_TOO_MANY_SSRCS, "srtp_too_many_ssrcs")                          \
	X(RTP_MALFORMED, "rtp_malformed")                                      \
	X(RTCP_MALFORMED, "rtcp_malformed")                                    \
	X(UNKNOWN_SSRC, "unknown_ssrc")                                        \
	X(PUBLISHER_RTX, "publisher_rtx")                                      \
	X(DUPLICATE, "duplicate")                                              \
	X(EGRESS_NO_BUFFER, "egress_no_buffer")                                \
	X(EGRESS_PROTECT, "egress_protect")                                    \
	X(SEQ_STALE, "seq_stale")                                              \
	X(PERC_UNANNOUNCED, "perc_unannounced")                                \
	X(PERC_MALFORMED, "perc_malformed")                                    \
	X(PERC_EGRESS, "perc_egress")

#define CV_DROP_ENUM_(id, name) CV_DROP_##id,
enum cv_drop { CV_DROP_REASONS(CV_DROP_ENUM_) CV_DROP_COUNT };
#undef CV_DROP_ENUM_

const char *cv_drop_name(enum cv_drop reason);

/* Counters of one switch; written by its worker, read by any thread. */
struct cv_switch_stats {
	uint64_t drops[CV_DROP_COUNT];
	uint64_t rx_datagrams, rx_bytes;
	uint64_t tx_datagrams, tx_bytes;
	uint64_t rtp_in, rtp_forwarded, rtcp_in;
	uint64_t nack_received, rtx_sent, pli_sent;
	uint64_t rtx_suppressed; /* NACKed packets over the resend budget */
	uint64_t nack_sent, rtx_recovered; /* towards / from publishers */
	uint64_t stun_answered;
	uint64_t transports;
	/* perc rooms: packets through the hop transform (in, out), repair
	 * mode resends (also in rtx_sent), and packets a faulty-node build
	 * tampered with (always 0 in other builds). */
	uint64_t perc_in, perc_forwarded, perc_repairs;
	uint64_t perc_faults_injected;
};

enum cv_transport_state {
	CV_TRANSPORT_CONNECTED,	   /* ICE and DTLS done, SRTP keyed */
	CV_TRANSPORT_FAILED,	   /* DTLS failed */
	CV_TRANSPORT_CLOSED,	   /* DTLS close_notify */
	CV_TRANSPORT_CONSENT_LOST, /* RFC 7675: no valid check for too long */
};

struct cv_switch_events {
	/* Called on the worker thread when a transport changes state. */
	void (*transport_state)(void *arg, uint64_t transport_id,
				enum cv_transport_state state);
	void *arg;
};

/* Takes a datagram ready to send (pkt->addr set); the callee frees it. */
typedef void (*cv_switch_egress_fn)(void *arg, struct cv_pkt *pkt);

struct cv_switch_config {
	/* Bind address ("0.0.0.0", "::"); NULL: no socket (egress required,
	 * datagrams come in through cv_switch_inject). */
	const char *media_address;
	uint16_t port;		  /* the worker's UDP port */
	struct cv_dtls_ctx *dtls; /* borrowed; the switch takes a ref */
	uint32_t consent_timeout_ms;
	uint32_t nack_cache_packets;
	uint32_t pli_min_interval_ms;
	struct cv_switch_events events;
	/* NULL: send on the socket. Else every datagram goes here instead
	 * (benchmarks and tests of the packet path without sockets). */
	cv_switch_egress_fn egress;
	void *egress_arg;
	/*
	 * The Key Distributor (perc rooms): when non-NULL, the switch makes
	 * its own cv_tunnel_link on the worker's loop at create (opts read
	 * then, not kept) and destroys it at destroy. NULL: perc transports
	 * fail at once.
	 */
	const struct cv_tunnel_link_opts *kd;
	/*
	 * Faulty-node builds only (meson -Dperc_faulty_node=true, tests):
	 * "ssrc", "timestamp", "payload", "inner_tag", "ohb" or "ekt_move"
	 * tampers every forwarded perc RTP packet that way; NULL: the
	 * CONCLAVE_PERC_FAULT environment variable, else none. Any other
	 * build refuses a non-empty value (CV_EUNSUPP).
	 */
	const char *perc_fault;
};

/*
 * Creates the switch of worker w and binds its socket. Thread: the
 * worker's (e.g. from its on_start hook). Returns 0 or -errno.
 */
int cv_switch_create(struct cv_switch **out, struct cv_worker *w,
		     const struct cv_switch_config *cfg);
/* Closes everything. Thread: the worker's. */
void cv_switch_destroy(struct cv_switch *sw);

/*
 * Runs one received datagram (taken: freed here) through the packet path
 * as if it had come from the socket; pkt->addr is its source. Then flushes
 * egress. Thread: the worker's.
 */
void cv_switch_inject(struct cv_switch *sw, struct cv_pkt *pkt);

/* Snapshot of the counters. Thread: any (relaxed reads). */
void cv_switch_get_stats(const struct cv_switch *sw,
			 struct cv_switch_stats *out);

/* True while the switch's tunnel link to the Key Distributor is up (perc
 * joins can work). False without one. Thread: any (atomic). */
bool cv_switch_kd_up(const struct cv_switch *sw);

/* ---- Commands: any thread; copied; run later on the worker ---- */

struct cv_transport_spec {
	uint64_t id; /* chosen by the control plane, unique per node */
	struct cv_ice_credentials local, remote; /* secrets: wiped after use */
	enum cv_dtls_role dtls_role;
	struct cv_dtls_fingerprint remote_fp;
	/*
	 * perc rooms: the DTLS is tunnelled to the Key Distributor
	 * (cv_dtls_tunnel_create on the switch's link, role server; dtls_role
	 * and remote_fp are ignored) under the RFC 9185 association id assoc,
	 * and media goes through the hop transform (include/conclave/perc.h):
	 * only announced SSRCs, SSRC and timestamp kept, no RTX.
	 */
	bool perc;
	struct cv_tunnel_assoc_id assoc;
};

struct cv_track_spec {
	uint64_t track_id;
	uint64_t transport_id; /* the publisher's publish transport */
	bool video;
	uint32_t ssrc;	   /* 0: learn from the MID extension */
	uint32_t rtx_ssrc; /* 0: none */
	uint8_t pt, rtx_pt;
	uint32_t clock_rate;
	char mid[33];
	uint8_t mid_ext_id; /* 0: the publisher did not negotiate it */
};

struct cv_sub_spec {
	uint64_t track_id;
	uint64_t transport_id; /* the subscriber's subscribe transport */
	/* What the subscriber sees; perc: ignored, the publisher's SSRC is
	 * kept (announce that one to the subscriber). */
	uint32_t ssrc;
	uint8_t pt; /* payload type in the subscriber's SDP */
	/* RFC 4588 retransmissions, when the subscriber accepted them:
	 * NACKed packets go out on rtx_ssrc with rtx_pt; 0: resent as is.
	 * perc: ignored (repair mode: resent exactly as first sent). */
	uint32_t rtx_ssrc;
	uint8_t rtx_pt;
};

int cv_switch_cmd_add_transport(struct cv_worker *w,
				const struct cv_transport_spec *spec);
/* Updates credentials (ICE restart) of an existing transport. */
int cv_switch_cmd_restart_ice(struct cv_worker *w,
			      const struct cv_transport_spec *spec);
int cv_switch_cmd_remove_transport(struct cv_worker *w, uint64_t id);
int cv_switch_cmd_add_track(struct cv_worker *w,
			    const struct cv_track_spec *spec);
int cv_switch_cmd_remove_track(struct cv_worker *w, uint64_t track_id);
int cv_switch_cmd_subscribe(struct cv_worker *w,
			    const struct cv_sub_spec *spec);
int cv_switch_cmd_unsubscribe(struct cv_worker *w, uint64_t track_id,
			      uint64_t transport_id);
/*
 * Stops (paused) or resumes forwarding track_id to the subscription on
 * transport_id (mute; a paused m-line). On resume the subscriber's SEQ
 * continues from the last one it was sent, so it sees no gap; in perc
 * rooms the original SEQ is recorded in the OHB.
 */
int cv_switch_cmd_pause(struct cv_worker *w, uint64_t track_id,
			uint64_t transport_id, bool paused);

#endif
