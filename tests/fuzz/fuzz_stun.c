/*
 * libFuzzer target for the STUN parser and the ICE-lite agent.
 *
 * Each input is parsed, its integrity checked with a fixed password, its
 * attributes iterated, and it is handed to an ICE-lite agent whose local
 * credentials are the RFC 5769 ones ("evtj" / "VOkJxbRl1RmTxUk/WvJxBt"),
 * so the seeds reach the authenticated paths. A second pass re-signs the
 * input (fresh MESSAGE-INTEGRITY and FINGERPRINT where the input had them)
 * so that mutated attributes get past authentication too. Every answer the
 * agent writes must parse back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "conclave/ice.h"
#include "conclave/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";

/* Reads of parsed slices land here so ASan sees every byte touched. */
static volatile uint32_t sink;

static void check_answer(const uint8_t *resp, size_t len)
{
	struct cv_stun_msg m;
	if (len == 0)
		return;
	if (cv_stun_parse(&m, resp, len) != 0 ||
	    cv_stun_check_fingerprint(&m) != 0)
		abort();
}

static void run_agent(const uint8_t *msg, size_t len)
{
	static const struct cv_ice_credentials local = {
		"evtj", "VOkJxbRl1RmTxUk/WvJxBt"};
	static const struct cv_ice_credentials remote = {
		"h6vY", "remotepasswordremotepass"};
	struct cv_ice_lite *ice = NULL;
	if (cv_ice_lite_create(&ice, NULL, 0) != 0)
		return;
	cv_ice_lite_set_local(ice, &local);
	cv_ice_lite_set_remote(ice, &remote);

	struct sockaddr_storage from;
	memset(&from, 0, sizeof(from));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&from;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(5000);
	sin6->sin6_addr.s6_addr[15] = 1;

	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t resp_len = 0;
	cv_ice_lite_handle_stun(ice, msg, len, &from, 1000, resp, sizeof(resp),
				&resp_len);
	check_answer(resp, resp_len);
	cv_ice_lite_tick(ice, 50000);
	cv_ice_lite_destroy(ice);
}

/* Rewrites MESSAGE-INTEGRITY and FINGERPRINT of a copy so the agent's
 * post-authentication code sees the fuzzer's attributes. */
static void run_resigned(const uint8_t *data, size_t size,
			 const struct cv_stun_msg *m)
{
	if (!m->integrity_offset || size > 4096)
		return;
	uint8_t *copy = malloc(size);
	if (!copy)
		return;
	memcpy(copy, data, size);
	struct cv_stun_writer w = {
		.buf = copy, .cap = size, .len = m->integrity_offset};
	cv_stun_put_integrity(&w, (const uint8_t *)fuzz_pwd, strlen(fuzz_pwd));
	if (m->fingerprint_offset)
		cv_stun_put_fingerprint(&w);
	size_t len = 0;
	if (cv_stun_writer_finish(&w, &len) == 0)
		run_agent(copy, len);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_stun_msg m;
	(void)cv_stun_is_stun(data, size);
	if (cv_stun_parse(&m, data, size) == 0) {
		cv_stun_check_integrity(&m, (const uint8_t *)fuzz_pwd,
					strlen(fuzz_pwd));
		cv_stun_check_fingerprint(&m);
		struct cv_stun_attr_iter it;
		struct cv_stun_attr a;
		cv_stun_attr_iter_init(&it, &m);
		while (cv_stun_attr_next(&it, &a) == 1)
			for (size_t i = 0; i < a.len; i++)
				sink += a.value[i];
		for (size_t i = 0; i < m.username_len; i++)
			sink += m.username[i];
		for (size_t i = 0; i < m.reason_len; i++)
			sink += m.reason[i];
		const uint8_t *uf;
		size_t uf_len;
		if (cv_stun_local_ufrag(data, size, &uf, &uf_len) == 0)
			for (size_t i = 0; i < uf_len; i++)
				sink += uf[i];
		run_resigned(data, size, &m);
	}
	run_agent(data, size);
	return 0;
}
