/*
 * Issue 4, done-when 4: a removed participant, even given the remaining
 * hops' hop-by-hop keys, cannot decrypt media sent more than 2 s after
 * its removal. Run by perc_removal.py, which starts the real conclave-kms
 * and node, mints the tokens and afterwards checks the KMS audit log.
 *
 * usage: perc_removal URL ROOM KMS_CERT NODE_TOKEN_A KMS_TOKEN_A
 *                     NODE_TOKEN_B KMS_TOKEN_B NODE_TOKEN_C KMS_TOKEN_C
 *
 * Three client-library endpoints on one loop: A creates the perc room at
 * the KMS and adds B and C; all three publish audio and video. Once media
 * is verified everywhere, A removes C through the node (the two-part
 * change: the KMS removes C and rotates the room key, the node closes C
 * and tells A and B to rekey). B taps every datagram it receives. Then,
 * for each datagram B received more than 2 s after the removal, we run
 * C's own perc receiver state (every EKT key and inner key C ever had)
 * with B's inbound hop key (the worst case: C also stole B's hop key):
 * none may decrypt; the outer layer must come off (so the failure is the
 * end-to-end layer's, not a wrong hop key); and B itself keeps verifying
 * media after the rotation.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "conclave/client.h"
#include "conclave/perc_e2e.h"

struct tapped {
	int64_t t_us; /* g_get_monotonic_time() at arrival */
	size_t len;
	uint8_t *b;
};

static struct {
	struct tapped *v;
	size_t n, cap;
} tap;

static int failed;

static void check(bool ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failed++;
}

static void on_tap(void *arg, const uint8_t *d, size_t len)
{
	(void)arg;
	if (tap.n == tap.cap) {
		tap.cap = tap.cap ? 2 * tap.cap : 4096;
		tap.v = realloc(tap.v, tap.cap * sizeof(*tap.v));
		if (!tap.v)
			abort();
	}
	tap.v[tap.n].t_us = g_get_monotonic_time();
	tap.v[tap.n].len = len;
	tap.v[tap.n].b = g_memdup2(d, len);
	tap.n++;
}

static struct cv_client *endpoint(struct cv_client_loop *loop, const char *url,
				  const char *room, const char *cert,
				  const char *ntok, const char *ktok,
				  bool create, const char *const *add)
{
	struct cv_client_opts o = {
		.url = url,
		.token = ntok,
		.room = room,
		.audio = true,
		.video = true,
		.subscribe = true,
		.ice_address = "127.0.0.1",
		.perc = {.enabled = true,
			 .kms_cert_file = cert,
			 .kms_token = ktok,
			 .create_room = create,
			 .add_members = add},
	};
	struct cv_client *c = NULL;
	int rc = cv_client_create(&c, loop, &o, NULL);

	if (rc) {
		fprintf(stderr, "perc_removal: cv_client_create: %d\n", rc);
		exit(1);
	}
	return c;
}

static struct cv_client_perc_stats pstats(struct cv_client *c)
{
	struct cv_client_perc_stats s;

	cv_client_perc_stats(c, &s);
	return s;
}

/* Runs the loop until done(arg) or timeout_ms. */
static bool run_until(struct cv_client_loop *loop, bool (*done)(void *),
		      void *arg, int64_t timeout_ms)
{
	int64_t end = g_get_monotonic_time() + timeout_ms * 1000;

	while (!done(arg)) {
		if (g_get_monotonic_time() >= end)
			return false;
		cv_client_loop_run(loop, 20, false);
	}
	return true;
}

static struct cv_client *ep[3];

static bool all_flowing(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		if (cv_client_get_state(ep[i]) != CV_CLIENT_SUBSCRIBED ||
		    pstats(ep[i]).verified < 200)
			return false;
	return true;
}

static bool joined(void *arg)
{
	enum cv_client_state s = cv_client_get_state(arg);

	return s != CV_CLIENT_CONNECTING;
}

static bool removal_applied(void *arg)
{
	(void)arg;
	return cv_client_get_state(ep[2]) == CV_CLIENT_REMOVED &&
	       pstats(ep[0]).rekeys >= 1 && pstats(ep[1]).rekeys >= 1;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

/* RTCP (RFC 5761 section 4: PT 192-223 after the marker bit) is
 * hop-by-hop only and not part of the claim. */
static bool is_rtp(const uint8_t *b, size_t len)
{
	return len >= 12 && (b[0] >> 6) == 2 &&
	       !((b[1] & 0x7f) >= 64 && (b[1] & 0x7f) <= 95);
}

int main(int argc, char **argv)
{
	const char *const add[] = {"sub-b", "sub-c", NULL};
	struct cv_client_loop *loop = NULL;
	struct cv_client_perc_keys bk;
	struct cv_client_perc_stats before, after, bs0, bs1;
	size_t tested = 0, decrypted = 0, outer_fail = 0, other_rc = 0;
	int64_t t_rm;
	char line[256];

	if (argc != 10) {
		fprintf(stderr, "usage: perc_removal URL ROOM KMS_CERT "
				"NTOK_A KTOK_A NTOK_B KTOK_B NTOK_C KTOK_C\n");
		return 2;
	}
	if (cv_client_loop_create(&loop, NULL)) {
		fprintf(stderr, "perc_removal: no loop\n");
		return 1;
	}
	ep[0] = endpoint(loop, argv[1], argv[2], argv[3], argv[4], argv[5],
			 true, add);
	check(run_until(loop, joined, ep[0], 15000) &&
		      cv_client_get_state(ep[0]) != CV_CLIENT_FAILED,
	      "A created the room at the KMS, added B and C, and joined");
	ep[1] = endpoint(loop, argv[1], argv[2], argv[3], argv[6], argv[7],
			 false, NULL);
	ep[2] = endpoint(loop, argv[1], argv[2], argv[3], argv[8], argv[9],
			 false, NULL);
	cv_client_set_rx_tap(ep[1], on_tap, NULL);
	check(run_until(loop, all_flowing, NULL, 20000),
	      "A, B and C verify each other's media end to end");
	if (failed)
		goto out;

	t_rm = g_get_monotonic_time();
	bs0 = pstats(ep[1]);
	check(cv_client_perc_remove_member(ep[0], "sub-c") == 0,
	      "A removed C (KMS and node, two-part)");
	check(run_until(loop, removal_applied, NULL, 2000),
	      "within 2 s: the node closed C (removed) and A and B rekeyed");
	/* Media for 4 s after the removal (the claim is about > 2 s). */
	run_until(loop, never, NULL,
		  4000 - (g_get_monotonic_time() - t_rm) / 1000);
	bs1 = pstats(ep[1]);
	printf("B's drops over the rotation:");
	for (int r = 0; r < CV_PERC_DROP_COUNT; r++)
		if (bs1.drops[r] != bs0.drops[r])
			printf(" %s=%llu", cv_perc_drop_name(r),
			       (unsigned long long)(bs1.drops[r] -
						    bs0.drops[r]));
	printf("\n");
	snprintf(line, sizeof(line),
		 "B verified %llu packets after the rotation, none dropped "
		 "end to end",
		 (unsigned long long)(bs1.verified - bs0.verified));
	{
		uint64_t dropped = 0;

		for (int r = 0; r < CV_PERC_DROP_COUNT; r++)
			dropped += bs1.drops[r] - bs0.drops[r];
		/* Every remaining endpoint had the new EKT key before any
		 * packet under it reached it: nothing dropped at all. */
		check(bs1.verified - bs0.verified > 200 && dropped == 0 &&
			      bs1.payload_mismatch == 0,
		      line);
	}

	/* C's state (its EKT keys and the inner keys it learnt) against what
	 * B received after removal + 2 s, with B's hop key. */
	cv_client_perc_keys(ep[1], &bk);
	cv_client_perc_stats(ep[2], &before);
	for (size_t i = 0; i < tap.n; i++) {
		struct cv_client_perc_stats s0, s1;
		int rc;

		if (tap.v[i].t_us <= t_rm + 2000000 ||
		    !is_rtp(tap.v[i].b, tap.v[i].len))
			continue;
		cv_client_perc_stats(ep[2], &s0);
		rc = cv_client_perc_try_unprotect(ep[2], &bk.hop_in[1],
						  tap.v[i].b, tap.v[i].len);
		cv_client_perc_stats(ep[2], &s1);
		tested++;
		if (rc == 0)
			decrypted++;
		else if (rc == -EINVAL)
			other_rc++;
		if (s1.drops[CV_PERC_DROP_OUTER] !=
			    s0.drops[CV_PERC_DROP_OUTER] ||
		    s1.drops[CV_PERC_DROP_OUTER_REPLAY] !=
			    s0.drops[CV_PERC_DROP_OUTER_REPLAY])
			outer_fail++;
	}
	cv_client_perc_stats(ep[2], &after);
	memset(&bk, 0, sizeof(bk));
	snprintf(line, sizeof(line),
		 "C, with B's hop key, decrypted %zu of %zu packets sent more "
		 "than 2 s after its removal",
		 decrypted, tested);
	check(tested > 100 && decrypted == 0 && other_rc == 0, line);
	snprintf(line, sizeof(line),
		 "the hop layer came off every one of them (%zu outer "
		 "failures): C lacks only the end-to-end keys",
		 outer_fail);
	check(tested > 0 && outer_fail == 0, line);
	printf("C's rejections:");
	for (int r = 0; r < CV_PERC_DROP_COUNT; r++)
		if (after.drops[r] != before.drops[r])
			printf(" %s=%llu", cv_perc_drop_name(r),
			       (unsigned long long)(after.drops[r] -
						    before.drops[r]));
	printf("\n");
out:
	for (int i = 0; i < 3; i++)
		cv_client_destroy(ep[i]);
	for (size_t i = 0; i < tap.n; i++)
		g_free(tap.v[i].b);
	free(tap.v);
	cv_client_loop_destroy(loop);
	printf("%s: %d failed\n", failed ? "FAIL" : "PASS", failed);
	return failed ? 1 : 0;
}
