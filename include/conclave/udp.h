/*
 * The worker's UDP socket, read and written in batches (recvmmsg /
 * sendmmsg), and the RFC 7983 first-byte demultiplexer.
 *
 * One struct cv_udp belongs to one worker thread.
 */
#ifndef CONCLAVE_UDP_H
#define CONCLAVE_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cv_pkt;
struct cv_pool;

#define CV_UDP_BATCH 64

struct cv_udp_stats {
	uint64_t rx_datagrams;
	uint64_t rx_bytes;
	uint64_t rx_truncated; /* larger than a pool buffer: dropped */
	uint64_t rx_no_buffer; /* pool exhausted: left in the kernel */
	uint64_t tx_datagrams;
	uint64_t tx_bytes;
	uint64_t tx_errors;
};

struct cv_udp {
	int fd;
	uint16_t port;
	struct cv_pkt *out[CV_UDP_BATCH];
	unsigned out_len;
	struct cv_udp_stats stats;
};

/*
 * Binds a non-blocking UDP socket to address:port. "::" gives a dual-stack
 * socket (IPv4 and IPv6); any other address a socket of its family. Port 0
 * picks a free port (read back in u->port). Returns 0 or -errno.
 */
int cv_udp_open(struct cv_udp *u, const char *address, uint16_t port);

/* Closes the socket and frees queued packets. */
void cv_udp_close(struct cv_udp *u);

/*
 * Receives up to `max` (<= CV_UDP_BATCH) datagrams into packets from
 * `pool`, stamping arrival_us and the source address. Returns the number
 * received (0 when none is waiting) or -errno. The packets are the caller's.
 */
int cv_udp_recv_batch(struct cv_udp *u, struct cv_pool *pool,
		      struct cv_pkt **pkts, unsigned max, uint64_t now_us);

/*
 * Queues pkt (taken) for sending to pkt->addr; the batch goes out when
 * full or on cv_udp_flush.
 */
void cv_udp_queue(struct cv_udp *u, struct cv_pkt *pkt);

/* Sends every queued packet with sendmmsg and frees them. */
void cv_udp_flush(struct cv_udp *u);

/* RFC 7983 section 7: what the first byte of a datagram says it is. */
enum cv_demux {
	CV_DEMUX_STUN,	/* 0..3 */
	CV_DEMUX_DTLS,	/* 20..63 */
	CV_DEMUX_RTP,	/* 128..191: RTP or RTCP */
	CV_DEMUX_OTHER, /* ZRTP, TURN channels, garbage: dropped */
};

static inline enum cv_demux cv_demux_classify(const uint8_t *buf, size_t len)
{
	if (len == 0)
		return CV_DEMUX_OTHER;
	uint8_t b = buf[0];
	if (b <= 3)
		return CV_DEMUX_STUN;
	if (b >= 20 && b <= 63)
		return CV_DEMUX_DTLS;
	if (b >= 128 && b <= 191)
		return CV_DEMUX_RTP;
	return CV_DEMUX_OTHER;
}

/* Text name of a demux class, for metrics labels. */
const char *cv_demux_name(enum cv_demux d);

/* "ip:port" (IPv6 in brackets) into buf; returns buf. */
const char *cv_sockaddr_str(const struct sockaddr_storage *a, char *buf,
			    size_t cap);

#endif
