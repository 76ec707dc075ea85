#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conclave/pool.h"
#include "conclave/udp.h"

static int parse_bind_addr(const char *address, uint16_t port,
			   struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (void *)ss;
	struct sockaddr_in6 *v6 = (void *)ss;
	if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		*len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		*len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

int cv_udp_open(struct cv_udp *u, const char *address, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(u, 0, sizeof(*u));
	u->fd = -1;
	int err = parse_bind_addr(address, port, &ss, &len);
	if (err)
		return err;
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	if (fd < 0)
		return -errno;
	if (ss.ss_family == AF_INET6) {
		int off = 0; /* dual stack: IPv4 arrives as v4-mapped */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	}
	/* Media bursts (a video keyframe to many subscribers) need room. */
	int bufsize = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
		err = -errno;
		close(fd);
		return err;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	getsockname(fd, (struct sockaddr *)&bound, &blen);
	u->port = ntohs(bound.ss_family == AF_INET
				? ((struct sockaddr_in *)&bound)->sin_port
				: ((struct sockaddr_in6 *)&bound)->sin6_port);
	u->fd = fd;
	return 0;
}

void cv_udp_close(struct cv_udp *u)
{
	for (unsigned i = 0; i < u->out_len; i++)
		cv_pkt_free(u->out[i]);
	u->out_len = 0;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

int cv_udp_recv_batch(struct cv_udp *u, struct cv_pool *pool,
		      struct cv_pkt **pkts, unsigned max, uint64_t now_us)
{
	struct mmsghdr msgs[CV_UDP_BATCH];
	struct iovec iov[CV_UDP_BATCH];
	unsigned n = 0;

	if (max > CV_UDP_BATCH)
		max = CV_UDP_BATCH;
	for (; n < max; n++) {
		struct cv_pkt *p = cv_pkt_alloc(pool);
		if (!p)
			break;
		pkts[n] = p;
		iov[n].iov_base = p->data;
		/* One byte more than we accept, to detect truncation. */
		iov[n].iov_len = CV_PKT_MAX_DATAGRAM + 1;
		memset(&msgs[n].msg_hdr, 0, sizeof(msgs[n].msg_hdr));
		msgs[n].msg_hdr.msg_name = &p->addr;
		msgs[n].msg_hdr.msg_namelen = sizeof(p->addr);
		msgs[n].msg_hdr.msg_iov = &iov[n];
		msgs[n].msg_hdr.msg_iovlen = 1;
	}
	if (n == 0) {
		u->stats.rx_no_buffer++;
		return 0;
	}
	int got = recvmmsg(u->fd, msgs, n, MSG_DONTWAIT, NULL);
	int err = got < 0 ? -errno : 0;
	if (got < 0)
		got = 0;
	unsigned kept = 0;
	for (unsigned i = 0; i < n; i++) {
		struct cv_pkt *p = pkts[i];
		if ((int)i >= got) {
			cv_pkt_free(p);
			continue;
		}
		size_t len = msgs[i].msg_len;
		if (len > CV_PKT_MAX_DATAGRAM ||
		    (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
			u->stats.rx_truncated++;
			cv_pkt_free(p);
			continue;
		}
		p->len = len;
		p->addr_len = msgs[i].msg_hdr.msg_namelen;
		p->arrival_us = now_us;
		u->stats.rx_datagrams++;
		u->stats.rx_bytes += len;
		pkts[kept++] = p;
	}
	if (err && err != -EAGAIN && err != -EWOULDBLOCK && kept == 0)
		return err;
	return (int)kept;
}

void cv_udp_flush(struct cv_udp *u)
{
	struct mmsghdr msgs[CV_UDP_BATCH];
	struct iovec iov[CV_UDP_BATCH];
	unsigned n = u->out_len;

	for (unsigned i = 0; i < n; i++) {
		struct cv_pkt *p = u->out[i];
		iov[i].iov_base = p->data;
		iov[i].iov_len = p->len;
		memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
		msgs[i].msg_hdr.msg_name = &p->addr;
		msgs[i].msg_hdr.msg_namelen = p->addr_len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	unsigned sent = 0;
	while (sent < n) {
		int r = sendmmsg(u->fd, msgs + sent, n - sent, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			/* Full socket buffer or unreachable peer: the rest of
			 * the batch is lost, as it would be on the wire. The
			 * failing datagram is skipped so one bad destination
			 * does not block the others. */
			u->stats.tx_errors++;
			sent++;
			continue;
		}
		for (int i = 0; i < r; i++) {
			u->stats.tx_datagrams++;
			u->stats.tx_bytes += msgs[sent + (unsigned)i].msg_len;
		}
		sent += (unsigned)r;
	}
	for (unsigned i = 0; i < n; i++)
		cv_pkt_free(u->out[i]);
	u->out_len = 0;
}

void cv_udp_queue(struct cv_udp *u, struct cv_pkt *pkt)
{
	if (u->out_len == CV_UDP_BATCH)
		cv_udp_flush(u);
	u->out[u->out_len++] = pkt;
}
