/*
 * The node's KMS relay (src/node/relay.c) fuzz target: what the node reads
 * from a client (the two-part headers of a POST) and from conclave-kms (its
 * HTTP answer). The first input octet picks the parser:
 * - even: cv_relay_parse_answer over the rest; an accepted answer's body
 *   lies inside the input and ends it, its status is 100..599 and
 *   Conclave-Status holds only [a-z_];
 * - odd: the rest split at NUL octets into Conclave-Core, -Op and -Member
 *   values (a missing one is absent) for cv_relay_check_core, with a token
 *   key the corpus tokens are signed with; an accepted change must yield
 *   a request head of exactly 9 header lines and the blank line, whatever
 *   the values (no header can be added through a token or a member id).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/node/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of the corpus's tokens ("fuzz-relay-token-key-0123456789ab"). */
static const uint8_t key[] = "fuzz-relay-token-key-0123456789ab";

static void require(bool ok)
{
	if (!ok)
		abort();
}

static void answer(const uint8_t *p, size_t n)
{
	struct cv_relay_answer a;

	if (cv_relay_parse_answer(p, n, &a) != 0)
		return;
	require(a.status >= 100 && a.status <= 599);
	require(a.len <= CV_RELAY_BODY_MAX);
	require(a.body >= p && a.body + a.len == p + n);
	for (const char *s = a.kms_status; *s; s++)
		require((*s >= 'a' && *s <= 'z') || *s == '_');
}

static void core(const uint8_t *p, size_t n)
{
	char *buf = malloc(n + 1), *part[3] = {NULL, NULL, NULL}, *at;
	char head[4 * CV_TOKEN_SUB_MAX + 512];
	struct cv_relay_core c;
	int k = 0, len, lines = 0;

	if (!buf)
		return;
	memcpy(buf, p, n);
	buf[n] = '\0';
	at = buf;
	/* Up to three NUL-separated values; an empty one is "absent". */
	for (k = 0; k < 3 && at <= buf + n; k++) {
		part[k] = *at ? at : NULL;
		at += strlen(at) + 1;
	}
	if (cv_relay_check_core(key, sizeof(key) - 1, part[0], part[1], part[2],
				1700000000, &c) == 0 &&
	    c.op != CV_RELAY_OP_NONE) {
		len = cv_relay_request_head(head, sizeof(head), "127.0.0.1", 42,
					    &c);
		require(len > 0);
		for (int i = 0; i + 1 < len; i++)
			if (head[i] == '\r' && head[i + 1] == '\n')
				lines++;
		/* request line, Host, Content-Type, Content-Length, four
		 * Conclave-* headers, Connection, and the blank line */
		require(lines == 10);
		require(strlen(head) == (size_t)len);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2 * CV_RELAY_BODY_MAX)
		return 0;
	if (data[0] % 2 == 0)
		answer(data + 1, size - 1);
	else
		core(data + 1, size - 1);
	return 0;
}
