/*
 * One short blocking exchange over a fresh TCP connection: connect, send a
 * request, read the answer until the peer closes. What the client-KMS
 * channel's HTTP/1.1 POSTs with "Connection: close" need, on both sides
 * that send them: the client library's KMS client and the node's relay
 * (src/node/relay.c). Blocking by design: call it only from a thread that
 * may wait (the relay's own thread, a client's KMS call), never from an
 * event loop or a media worker.
 */
#ifndef CONCLAVE_TCP_EXCHANGE_H
#define CONCLAVE_TCP_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Connects to host:port (an IPv4 or IPv6 literal: no DNS), sends
 * head[0..head_len) then body[0..body_len) (body may be NULL when
 * body_len is 0), and reads into answer[0..cap) until the peer closes;
 * all of it within timeout_ms. *got: octets read. Returns 0; -EINVAL
 * (host not an IP literal, NULL arguments); -ETIMEDOUT; the connect
 * error (-ECONNREFUSED, ...); -EIO (send or receive failed); -ENOBUFS
 * (the answer does not fit in cap). Thread: any that may block.
 */
int cv_tcp_exchange(const char *host, uint16_t port, uint32_t timeout_ms,
		    const uint8_t *head, size_t head_len, const uint8_t *body,
		    size_t body_len, uint8_t *answer, size_t cap, size_t *got);

#endif
