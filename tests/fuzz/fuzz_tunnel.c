/*
 * RFC 9185 TunnelMessage fuzz target: the input is a stream of messages
 * as a Key Distributor or a node would read it from TLS. Every message
 * that frames goes through the parser; one that parses must re-encode to
 * the same octets, and MediaKeys must hold exactly one outer half per
 * key (never a whole double master key).
 */
#include <stdlib.h>
#include <string.h>

#include "conclave/tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok)
{
	if (!ok)
		abort();
}

static void one(const uint8_t *p, size_t n)
{
	static uint8_t out[CV_TUNNEL_MAX_MSG];
	struct cv_tunnel_msg m;
	int w;

	if (cv_tunnel_msg_parse(&m, p, n) != 0)
		return;
	require(m.type == p[0]);
	if (m.type == CV_TUNNEL_MEDIA_KEYS) {
		require(m.u.keys.key_len ==
			cv_tunnel_hop_key_len(m.u.keys.profile));
		require(m.u.keys.key_len == 16 || m.u.keys.key_len == 32);
	}
	if (m.type == CV_TUNNEL_TUNNELED_DTLS)
		require(m.u.dtls.data == p + 21 && m.u.dtls.len + 21 == n);
	w = cv_tunnel_msg_encode(&m, out, sizeof(out));
	require(w == (int)n);
	require(memcmp(out, p, n) == 0);
	cv_tunnel_media_keys_wipe(&m.u.keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t used = 0, need;

	/* The stream framing, as both ends of the link run it. */
	while (cv_tunnel_frame_len(data + used, size - used, &need) == 0) {
		require(need >= CV_TUNNEL_HDR_BYTES &&
			need <= CV_TUNNEL_MAX_MSG);
		if (size - used < need) {
			/* Cut short: must not parse. */
			struct cv_tunnel_msg m;
			require(cv_tunnel_msg_parse(&m, data + used,
						    size - used) != 0);
			break;
		}
		one(data + used, need);
		used += need;
	}
	return 0;
}
