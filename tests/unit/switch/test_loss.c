#include "media/switch/loss.h"
#include "cv_test.h"

static void test_gap_nack_recover(void)
{
	struct cv_loss_tracker l;
	uint16_t due[16];
	cv_loss_init(&l);
	CV_CHECK_INT(cv_loss_update(&l, 65534, 1000), CV_LOSS_NEW);
	CV_CHECK_INT(cv_loss_update(&l, 65535, 1000), CV_LOSS_NEW);
	/* 0 and 1 lost across the wrap. */
	CV_CHECK_INT(cv_loss_update(&l, 2, 1000), CV_LOSS_NEW);
	CV_CHECK(cv_loss_is_missing(&l, 0) && cv_loss_is_missing(&l, 1));
	/* Not due before the reorder wait. */
	CV_CHECK_INT(cv_loss_due(&l, 1000, due, 16), 0);
	CV_CHECK_INT(cv_loss_due(&l, 1000 + CV_LOSS_REORDER_MS, due, 16), 2);
	CV_CHECK((due[0] == 0 && due[1] == 1) || (due[0] == 1 && due[1] == 0));
	/* Not again until the retry interval. */
	CV_CHECK_INT(cv_loss_due(&l, 1010, due, 16), 0);
	CV_CHECK_INT(cv_loss_update(&l, 1, 1020), CV_LOSS_RECOVERED);
	CV_CHECK_INT(cv_loss_update(&l, 1, 1021), CV_LOSS_OLD);
	CV_CHECK_INT(cv_loss_update(&l, 2, 1021), CV_LOSS_OLD);
	CV_CHECK(!cv_loss_is_missing(&l, 1) && cv_loss_is_missing(&l, 0));
	/* 0 is retried, then given up after the last try. */
	uint64_t t = 1005;
	for (int i = 1; i < CV_LOSS_MAX_TRIES; i++) {
		t += CV_LOSS_RETRY_MS;
		CV_CHECK_INT(cv_loss_due(&l, t, due, 16), 1);
		CV_CHECK_INT(due[0], 0);
	}
	t += CV_LOSS_RETRY_MS;
	CV_CHECK_INT(cv_loss_due(&l, t, due, 16), 0);
	CV_CHECK(!cv_loss_is_missing(&l, 0));
	CV_CHECK_INT(l.given_up, 1);
}

static void test_big_gap_given_up(void)
{
	struct cv_loss_tracker l;
	uint16_t due[CV_LOSS_MAX_MISSING];
	cv_loss_init(&l);
	cv_loss_update(&l, 100, 0);
	CV_CHECK_INT(cv_loss_update(&l, 100 + CV_LOSS_MAX_MISSING + 2, 0),
		     CV_LOSS_NEW);
	CV_CHECK_INT(l.n, 0);
	CV_CHECK_INT(l.given_up, CV_LOSS_MAX_MISSING + 1);
	/* A gap that fills the list exactly is tracked. */
	cv_loss_init(&l);
	cv_loss_update(&l, 0, 0);
	cv_loss_update(&l, CV_LOSS_MAX_MISSING + 1, 0);
	CV_CHECK_INT(l.n, CV_LOSS_MAX_MISSING);
	CV_CHECK_INT(cv_loss_due(&l, 100, due, CV_LOSS_MAX_MISSING),
		     CV_LOSS_MAX_MISSING);
}

/* RFC 3550 A.1: a sender that restarts its sequence is followed after two
 * packets; one stray old packet is not. */
static void test_restart(void)
{
	struct cv_loss_tracker l;
	cv_loss_init(&l);
	for (uint16_t s = 5000; s < 5010; s++)
		cv_loss_update(&l, s, 0);
	CV_CHECK_INT(cv_loss_update(&l, 5005, 0), CV_LOSS_OLD);
	CV_CHECK_INT(cv_loss_update(&l, 10, 0), CV_LOSS_OLD);
	CV_CHECK_INT(cv_loss_update(&l, 5010, 0), CV_LOSS_NEW);
	CV_CHECK_INT(cv_loss_update(&l, 20, 0), CV_LOSS_OLD);
	CV_CHECK_INT(cv_loss_update(&l, 21, 0), CV_LOSS_NEW);
	CV_CHECK_INT(cv_loss_update(&l, 22, 0), CV_LOSS_NEW);
	CV_CHECK_INT(l.n, 0);
}

int main(void)
{
	test_restart();
	test_gap_nack_recover();
	test_big_gap_given_up();
	return cv_test_done("test_loss");
}
