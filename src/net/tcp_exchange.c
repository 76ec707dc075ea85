/*
 * One blocking TCP request/answer (include/conclave/tcp_exchange.h): a
 * non-blocking socket driven by poll() against one monotonic deadline, so
 * that a peer that accepts and then stalls cannot hold the caller longer
 * than timeout_ms.
 */
#include "conclave/tcp_exchange.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t remaining_ms(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int wait_fd(int fd, short events, const struct timespec *deadline)
{
	for (;;) {
		int64_t ms = remaining_ms(deadline);
		struct pollfd p = {.fd = fd, .events = events};
		int n;

		if (ms <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int dial(const char *host, uint16_t port,
		const struct timespec *deadline, int *out)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd, err = 0;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		sl = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		sl = sizeof(*in6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		int so = 0;
		socklen_t l = sizeof(so);

		err = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline)
					   : -errno;
		if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &l) == 0)
			err = -so;
	}
	if (err) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

static int send_all(int fd, const uint8_t *p, size_t len,
		    const struct timespec *deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = wait_fd(fd, POLLOUT, deadline);

			if (err)
				return err;
			continue;
		}
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until the peer closes (the exchanges are Connection: close). */
static int recv_all(int fd, uint8_t *buf, size_t cap, size_t *got,
		    const struct timespec *deadline)
{
	*got = 0;
	for (;;) {
		ssize_t n;

		if (*got == cap)
			return -ENOBUFS;
		n = recv(fd, buf + *got, cap - *got, 0);
		if (n == 0)
			return 0;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = wait_fd(fd, POLLIN, deadline);

			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return -EIO;
		*got += (size_t)n;
	}
}

int cv_tcp_exchange(const char *host, uint16_t port, uint32_t timeout_ms,
		    const uint8_t *head, size_t head_len, const uint8_t *body,
		    size_t body_len, uint8_t *answer, size_t cap, size_t *got)
{
	struct timespec deadline;
	int fd = -1, err;

	if (!host || !head || (!body && body_len) || !answer || !got)
		return -EINVAL;
	*got = 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	err = dial(host, port, &deadline, &fd);
	if (!err)
		err = send_all(fd, head, head_len, &deadline);
	if (!err && body_len)
		err = send_all(fd, body, body_len, &deadline);
	if (!err)
		err = recv_all(fd, answer, cap, got, &deadline);
	if (fd >= 0)
		close(fd);
	return err;
}
