/*
 * The client library's perc test hooks against a real node and a real
 * conclave-kms (started by perc_e2e.py --hooks, which mints the tokens):
 * three endpoints on one loop. A publishes audio and video, creates the
 * room at the KMS and adds B and D; B subscribes and its received
 * datagrams are tapped; D subscribes but drops everything it receives
 * before decryption (rx_loss 1), so its receiver holds only what a member
 * is given: the EKT key.
 *
 * 1. The keys used are there (two inner keys, one EKT key, hop keys of
 *    both connections) and distinct.
 * 2. Before the removal: D's receiver decrypts what B captured (outer
 *    layer removed with B's hop key), B's own receiver refuses the same
 *    packets (inner replay), and D's own hop key does not open them.
 * 3. A removes D through the node: D ends in CV_CLIENT_REMOVED, A and B
 *    rekey. What B captures after that is verified by B and opens for
 *    nobody holding D's state, even with B's hop key.
 *
 * usage: perc_hooks URL ROOM KMS_CERT A_TOKEN A_KMS B_TOKEN B_KMS
 *                   D_TOKEN D_KMS
 * Exit 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/client.h"
#include "conclave/err.h"
#include "cv_test.h"

#define MAX_CAPTURE 4096

struct capture {
	bool on;
	size_t n;
	uint16_t len[MAX_CAPTURE];
	uint8_t *data[MAX_CAPTURE];
};

static void tap(void *arg, const uint8_t *d, size_t len)
{
	struct capture *cap = arg;
	if (!cap->on || cap->n == MAX_CAPTURE || len > 1500)
		return;
	cap->data[cap->n] = malloc(len);
	memcpy(cap->data[cap->n], d, len);
	cap->len[cap->n++] = (uint16_t)len;
}

static void capture_free(struct capture *cap)
{
	for (size_t i = 0; i < cap->n; i++)
		free(cap->data[i]);
	cap->n = 0;
}

static bool key_equal(const struct cv_client_perc_key *a,
		      const struct cv_client_perc_key *b)
{
	return a->len == b->len && !memcmp(a->b, b->b, a->len);
}

/* Runs the loop until every endpoint in c[0..n) reached `state` (or a
 * final state), at most timeout_ms. */
static bool run_until(struct cv_client_loop *loop, struct cv_client **c,
		      size_t n, enum cv_client_state state, uint64_t timeout_ms)
{
	for (uint64_t t = 0; t < timeout_ms; t += 20) {
		size_t ok = 0;
		for (size_t i = 0; i < n; i++)
			ok += cv_client_get_state(c[i]) == state;
		if (ok == n)
			return true;
		cv_client_loop_run(loop, 20, false);
	}
	return false;
}

/* How many of the captured datagrams open with c's receiver; *other
 * counts the errors that are not `expect_err` (0: any error). */
static size_t try_all(struct cv_client *c, const struct cv_client_perc_key *hop,
		      const struct capture *cap, int expect_err, size_t *other)
{
	size_t ok = 0;
	*other = 0;
	for (size_t i = 0; i < cap->n; i++) {
		int rc = cv_client_perc_try_unprotect(c, hop, cap->data[i],
						      cap->len[i]);
		if (!rc)
			ok++;
		else if (expect_err && rc != expect_err)
			(*other)++;
	}
	return ok;
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: perc_hooks URL ROOM KMS_CERT A_TOKEN "
				"A_KMS B_TOKEN B_KMS D_TOKEN D_KMS\n");
		return 2;
	}
	const char *url = argv[1], *room = argv[2], *cert = argv[3];
	struct cv_client_loop *loop = NULL;
	CV_CHECK_INT(cv_client_loop_create(&loop, NULL), 0);
	if (!loop)
		return 1;
	static const char *const add[] = {"sub-b", "sub-d", NULL};
	struct cv_client_opts o = {
		.url = url,
		.room = room,
		.subscribe = true,
		.perc = {.enabled = true, .kms_cert_file = cert},
	};
	struct cv_client *a = NULL, *b = NULL, *d = NULL;
	struct cv_client_opts oa = o;
	oa.token = argv[4];
	oa.perc.kms_token = argv[5];
	oa.perc.create_room = true;
	oa.perc.add_members = add;
	oa.audio = oa.video = true;
	oa.name = "A";
	CV_CHECK_INT(cv_client_create(&a, loop, &oa, NULL), 0);
	CV_CHECK(run_until(loop, &a, 1, CV_CLIENT_PUBLISHING, 10000));

	struct capture *before = calloc(1, sizeof(*before));
	struct capture *after = calloc(1, sizeof(*after));
	struct cv_client_opts ob = o, od = o;
	ob.token = argv[6];
	ob.perc.kms_token = argv[7];
	ob.name = "B";
	od.token = argv[8];
	od.perc.kms_token = argv[9];
	od.rx_loss = 1.0; /* D's receiver never sees a packet */
	od.name = "D";
	CV_CHECK_INT(cv_client_create(&b, loop, &ob, NULL), 0);
	CV_CHECK_INT(cv_client_create(&d, loop, &od, NULL), 0);
	if (!a || !b || !d)
		return cv_test_done("perc_hooks");
	cv_client_set_rx_tap(b, tap, before);
	struct cv_client *bd[2] = {b, d};
	CV_CHECK(run_until(loop, bd, 2, CV_CLIENT_SUBSCRIBED, 10000));
	before->on = true;
	cv_client_loop_run(loop, 2000, false);
	before->on = false;

	/* 1. Keys. */
	struct cv_client_perc_keys ka, kb, kd;
	cv_client_perc_keys(a, &ka);
	cv_client_perc_keys(b, &kb);
	cv_client_perc_keys(d, &kd);
	CV_CHECK_INT(ka.n_inner, 2);
	CV_CHECK_INT(ka.n_ekt, 1);
	CV_CHECK_INT(kb.n_ekt, 1);
	CV_CHECK(ka.n_inner == 2 && ka.inner[0].len == 16 &&
		 !key_equal(&ka.inner[0], &ka.inner[1]));
	CV_CHECK(key_equal(&ka.ekt[0], &kb.ekt[0]) &&
		 key_equal(&ka.ekt[0], &kd.ekt[0]) && ka.ekt[0].len >= 16);
	CV_CHECK_INT(ka.inner_salt[0].len, 12);
	/* A only publishes (nobody else does: no subscribe connection);
	 * B and D only subscribe. */
	CV_CHECK_INT(ka.hop_out[0].len, 28);
	CV_CHECK_INT(ka.hop_in[0].len, 28);
	CV_CHECK(!key_equal(&ka.hop_out[0], &ka.hop_in[0]));
	CV_CHECK_INT(ka.hop_in[1].len, 0);
	CV_CHECK_INT(kb.hop_in[1].len, 28);
	CV_CHECK_INT(kd.hop_in[1].len, 28);
	CV_CHECK(!key_equal(&kb.hop_out[1], &kb.hop_in[1]));
	CV_CHECK(!key_equal(&kb.hop_in[1], &kd.hop_in[1]));

	/* 2. A member's state opens what B captured; B's own refuses a
	 * replay; D's hop key is not B's. */
	printf("captured at B before the removal: %zu\n", before->n);
	CV_CHECK(before->n > 100);
	size_t other = 0;
	size_t ok = try_all(d, &kb.hop_in[1], before, 0, &other);
	printf("D (member) opens %zu of them\n", ok);
	CV_CHECK(ok * 10 >= before->n * 9);
	ok = try_all(b, &kb.hop_in[1], before, CV_EREPLAY, &other);
	CV_CHECK_INT(ok, 0);
	CV_CHECK_INT(other, 0);
	ok = try_all(d, &kd.hop_in[1], before, CV_EINTEGRITY, &other);
	CV_CHECK_INT(ok, 0);
	CV_CHECK_INT(other, 0);

	/* 3. Removal through the node. */
	struct cv_client_perc_stats sa, sb, sd;
	cv_client_perc_stats(b, &sb);
	uint64_t b_verified = sb.verified;
	CV_CHECK_INT(cv_client_perc_remove_member(a, "sub-d"), 0);
	cv_client_set_rx_tap(b, tap, after);
	/* What A sends from now on is under the new keys; skip what was
	 * in flight. */
	cv_client_loop_run(loop, 100, false);
	after->on = true;
	cv_client_loop_run(loop, 2500, false);
	after->on = false;
	CV_CHECK_INT(cv_client_get_state(d), CV_CLIENT_REMOVED);
	cv_client_perc_stats(a, &sa);
	cv_client_perc_stats(b, &sb);
	cv_client_perc_stats(d, &sd);
	CV_CHECK_INT(sa.rekeys, 1);
	CV_CHECK_INT(sb.rekeys, 1);
	CV_CHECK(sa.spi != sd.spi && sb.spi == sa.spi);
	CV_CHECK(sb.verified > b_verified + 100);
	CV_CHECK_INT(sb.payload_mismatch, 0);
	cv_client_perc_keys(a, &ka);
	CV_CHECK_INT(ka.n_inner, 4);
	CV_CHECK_INT(ka.n_ekt, 2);
	printf("captured at B after the removal: %zu\n", after->n);
	CV_CHECK(after->n > 100);
	ok = try_all(d, &kb.hop_in[1], after, 0, &other);
	printf("D (removed) opens %zu of them\n", ok);
	CV_CHECK_INT(ok, 0);

	cv_client_leave(a);
	cv_client_leave(b);
	cv_client_loop_run(loop, 200, false);
	cv_client_destroy(a);
	cv_client_destroy(b);
	cv_client_destroy(d);
	cv_client_loop_run(loop, 100, false);
	cv_client_loop_destroy(loop);
	capture_free(before);
	capture_free(after);
	free(before);
	free(after);
	OPENSSL_cleanse(&ka, sizeof(ka));
	OPENSSL_cleanse(&kb, sizeof(kb));
	OPENSSL_cleanse(&kd, sizeof(kd));
	return cv_test_done("perc_hooks");
}
