/*
 * The registry of perc endpoints (kms/endpoints.h): registration binds an
 * association id to its room and actor, renewal, refusal of another room
 * or actor, expiry after the time-to-live without use, the ceiling (the
 * least recently used entry goes), forgetting a removed member.
 */
#include <errno.h>
#include <string.h>

#include "cv_test.h"
#include "kms/endpoints.h"

static uint64_t clock_ms;

static uint64_t fake_now(void *arg)
{
	(void)arg;
	return clock_ms;
}

static struct cv_tunnel_assoc_id id_of(int n)
{
	struct cv_tunnel_assoc_id a;
	memset(a.b, 0, sizeof(a.b));
	a.b[0] = (uint8_t)n;
	a.b[15] = (uint8_t)(n >> 8);
	return a;
}

static struct cv_dtls_fingerprint fp_of(int n)
{
	struct cv_dtls_fingerprint f = {.hash = CV_DTLS_HASH_SHA256, .len = 32};
	memset(f.md, n, 32);
	return f;
}

static void test_bind_and_renew(void)
{
	struct cv_kms_endpoints *e = NULL;
	CV_CHECK_INT(cv_kms_endpoints_create(&e, 0, 1000, fake_now, NULL), 0);
	struct cv_tunnel_assoc_id a = id_of(1), b = id_of(2);
	struct cv_dtls_fingerprint f1 = fp_of(1), f2 = fp_of(2);
	struct cv_kms_endpoint ep;
	clock_ms = 5000;
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, &ep), -ENOENT);
	CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f1, "room-1", "alice"),
		     0);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, &ep), 0);
	CV_CHECK_MEM(ep.fp.md, f1.md, 32);
	CV_CHECK_STR(ep.room, "room-1");
	CV_CHECK_STR(ep.actor, "alice");
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &b, NULL), -ENOENT);
	/* The same actor and room: a new certificate replaces the old. */
	CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f2, "room-1", "alice"),
		     0);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, &ep), 0);
	CV_CHECK_MEM(ep.fp.md, f2.md, 32);
	/* Another actor, or another room: refused, nothing changes. */
	CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f1, "room-1", "bob"),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f1, "room-2", "alice"),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, &ep), 0);
	CV_CHECK_MEM(ep.fp.md, f2.md, 32);
	CV_CHECK_STR(ep.actor, "alice");
	/* Only SHA-256. */
	struct cv_dtls_fingerprint sha1 = {.hash = CV_DTLS_HASH_SHA1,
					   .len = 20};
	CV_CHECK_INT(cv_kms_endpoints_register(e, &b, &sha1, "room-1", "bob"),
		     -EINVAL);
	/* Expiry: each use renews; 1000 ms without one ends it. */
	clock_ms += 999;
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, NULL), 0);
	clock_ms += 999;
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, NULL), 0);
	clock_ms += 1000;
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a, NULL), -ENOENT);
	CV_CHECK_INT(cv_kms_endpoints_count(e), 0);
	/* Gone, the id is free for someone else. */
	CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f1, "room-2", "bob"), 0);
	cv_kms_endpoints_destroy(e);
}

static void test_ceiling_and_forget(void)
{
	struct cv_kms_endpoints *e = NULL;
	CV_CHECK_INT(cv_kms_endpoints_create(&e, 100, 0, fake_now, NULL), 0);
	struct cv_dtls_fingerprint f = fp_of(7);
	clock_ms = 1;
	for (int i = 0; i < 100; i++) {
		struct cv_tunnel_assoc_id a = id_of(i);
		CV_CHECK_INT(cv_kms_endpoints_register(e, &a, &f, "room-1",
						       i % 2 ? "odd" : "even"),
			     0);
		clock_ms++;
	}
	CV_CHECK_INT(cv_kms_endpoints_count(e), 100);
	/* Use id 0: id 1 is now the least recently used. */
	struct cv_tunnel_assoc_id a0 = id_of(0), a1 = id_of(1), an = id_of(100);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a0, NULL), 0);
	CV_CHECK_INT(cv_kms_endpoints_register(e, &an, &f, "room-1", "new"), 0);
	CV_CHECK_INT(cv_kms_endpoints_count(e), 100);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a1, NULL), -ENOENT);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a0, NULL), 0);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &an, NULL), 0);
	/* A removed member's registrations go; others stay. */
	CV_CHECK_INT(cv_kms_endpoints_forget(e, "room-2", "even"), 0);
	CV_CHECK_INT(cv_kms_endpoints_forget(e, "room-1", "even"), 50);
	CV_CHECK_INT(cv_kms_endpoints_lookup(e, &a0, NULL), -ENOENT);
	CV_CHECK_INT(cv_kms_endpoints_count(e), 50);
	cv_kms_endpoints_destroy(e);
}

int main(void)
{
	test_bind_and_renew();
	test_ceiling_and_forget();
	return cv_test_done("test_kms_endpoints");
}
