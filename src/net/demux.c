#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conclave/udp.h"

const char *cv_demux_name(enum cv_demux d)
{
	switch (d) {
	case CV_DEMUX_STUN:
		return "stun";
	case CV_DEMUX_DTLS:
		return "dtls";
	case CV_DEMUX_RTP:
		return "rtp";
	default:
		return "other";
	}
}

const char *cv_sockaddr_str(const struct sockaddr_storage *a, char *buf,
			    size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a;
		inet_ntop(AF_INET, &x->sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(x->sin_port));
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a;
		inet_ntop(AF_INET6, &x->sin6_addr, ip, sizeof(ip));
		snprintf(buf, cap, "[%s]:%u", ip, ntohs(x->sin6_port));
	} else {
		snprintf(buf, cap, "?");
	}
	return buf;
}
