/* Loop, timers, queues, pools and workers. */
#include <stdatomic.h>
#include <stdlib.h>

#include "conclave/clock.h"
#include "conclave/loop.h"
#include "conclave/pool.h"
#include "conclave/worker.h"
#include "cv_test.h"

static uint64_t fake_now_us;
static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now_us;
}

struct fired {
	int count;
	int order[8];
	int n;
};
struct tagged {
	struct cv_timer t;
	struct fired *f;
	int tag;
};

static void on_timer(void *arg)
{
	struct tagged *x = arg;
	x->f->count++;
	if (x->f->n < 8)
		x->f->order[x->f->n++] = x->tag;
}

static void test_timers(void)
{
	struct cv_loop *loop;
	cv_clock_set_source(fake_clock, NULL);
	fake_now_us = 1000000;
	CV_CHECK_INT(cv_loop_create(&loop), 0);
	struct fired f = {0};
	struct tagged t[5];
	uint64_t due[5] = {1050, 1010, 1030, 1020, 1040};
	for (int i = 0; i < 5; i++) {
		t[i].f = &f;
		t[i].tag = i;
		cv_timer_init(&t[i].t, on_timer, &t[i]);
		cv_timer_start(loop, &t[i].t, due[i]);
	}
	cv_timer_stop(loop, &t[3].t); /* 1020 never fires */
	CV_CHECK(!cv_timer_armed(&t[3].t));
	cv_loop_run_once(loop, 0);
	CV_CHECK_INT(f.count, 0);
	fake_now_us = 1035000;
	cv_loop_run_once(loop, 0);
	CV_CHECK_INT(f.count, 2);
	CV_CHECK_INT(f.order[0], 1);
	CV_CHECK_INT(f.order[1], 2);
	fake_now_us = 2000000;
	cv_loop_run_once(loop, 0);
	CV_CHECK_INT(f.count, 4);
	CV_CHECK_INT(f.order[2], 4);
	CV_CHECK_INT(f.order[3], 0);
	cv_loop_destroy(loop);
	cv_clock_set_source(NULL, NULL);
}

static void test_pool(void)
{
	struct cv_pool *pool;
	CV_CHECK_INT(cv_pool_create(&pool, 2), 0);
	struct cv_pkt *a = cv_pkt_alloc(pool), *b = cv_pkt_alloc(pool);
	CV_CHECK(a && b && a != b);
	CV_CHECK(cv_pkt_alloc(pool) == NULL);
	CV_CHECK(cv_pkt_tailroom(a) == CV_PKT_STORAGE - CV_PKT_HEADROOM);
	struct cv_pool_stats st;
	cv_pool_stats(pool, &st);
	CV_CHECK_INT(st.in_use, 2);
	CV_CHECK_INT(st.exhausted, 1);
	cv_pkt_free(a);
	cv_pkt_free(b);
	cv_pool_stats(pool, &st);
	CV_CHECK_INT(st.in_use, 0);
	cv_pool_destroy(pool);
}

static atomic_int ran_on_right_worker;
static atomic_int ran_total;

static void count_cmd(void *arg)
{
	struct cv_worker *expected = arg;
	if (cv_worker_current() == expected)
		ran_on_right_worker++;
	ran_total++;
}

static void test_workers(void)
{
	struct cv_workers *ws;
	struct cv_workers_config cfg = {
		.count = 2, .pool_packets = 16, .queue_items = 4096};
	CV_CHECK_INT(cv_workers_create(&ws, &cfg), 0);
	CV_CHECK_INT(cv_workers_count(ws), 2);
	CV_CHECK_INT(cv_workers_start(ws), 0);
	for (int i = 0; i < 1000; i++) {
		struct cv_worker *w = cv_workers_get(ws, (unsigned)i % 2);
		CV_CHECK_INT(cv_worker_post(w, count_cmd, w), 0);
	}
	/* Stop runs after everything already queued. */
	cv_workers_stop(ws);
	CV_CHECK_INT(ran_total, 1000);
	CV_CHECK_INT(ran_on_right_worker, 1000);
	CV_CHECK(cv_worker_current() == NULL);
	cv_workers_destroy(ws);
}

int main(void)
{
	test_timers();
	test_pool();
	test_workers();
	return cv_test_done("test_runtime");
}
