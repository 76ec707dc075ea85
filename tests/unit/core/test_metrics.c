/* Metrics: registration rules, exposition format, concurrent updates. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "conclave/metrics.h"
#include "cv_test.h"

static double fixed_value(void *arg)
{
	return *(const double *)arg;
}

static char *render(struct cv_metrics *reg)
{
	char *out = NULL;
	size_t len = 0;

	CV_CHECK_INT(cv_metrics_render(reg, &out, &len), 0);
	CV_CHECK(out != NULL);
	CV_CHECK_INT(strlen(out), len);
	return out;
}

static void test_render(void)
{
	struct cv_metrics *reg;
	struct cv_counter *stun, *srtp, *plain;
	struct cv_gauge *rooms;
	struct cv_histogram *rtt;
	static const uint64_t bounds[] = {10, 50, 200};
	double load = 0.25, nan_v = NAN, inf_v = -INFINITY, tenth = 0.1;
	char *out;

	CV_CHECK_INT(cv_metrics_create(&reg), 0);
	/* empty registry renders to "" */
	out = render(reg);
	CV_CHECK_STR(out, "");
	free(out);

	CV_CHECK_INT(cv_metrics_counter(
			     reg, "conclave_drops_total",
			     "Packets dropped, by reason.",
			     CV_LABELS({"reason", "bad_stun"}, {"worker", "0"}),
			     &stun),
		     0);
	CV_CHECK_INT(cv_metrics_gauge(reg, "conclave_rooms", "Open rooms.",
				      NULL, &rooms),
		     0);
	CV_CHECK_INT(cv_metrics_counter(reg, "conclave_drops_total",
					"Packets dropped, by reason.",
					CV_LABELS({"reason", "srtp_auth"},
						  {"worker", "0"}),
					&srtp),
		     0);
	CV_CHECK_INT(cv_metrics_histogram(
			     reg, "conclave_rtt_ms", "Round-trip time.",
			     CV_LABELS({"kind", "video"}), bounds, 3, &rtt),
		     0);
	CV_CHECK_INT(cv_metrics_gauge_fn(reg, "conclave_load",
					 "Help with \\ and\nnewline.",
					 CV_LABELS({"q", "a\"b\\c\nd"}),
					 fixed_value, &load),
		     0);
	CV_CHECK_INT(cv_metrics_gauge_fn(reg, "conclave_odd", "Odd values.",
					 CV_LABELS({"v", "nan"}), fixed_value,
					 &nan_v),
		     0);
	CV_CHECK_INT(cv_metrics_gauge_fn(reg, "conclave_odd", "Odd values.",
					 CV_LABELS({"v", "-inf"}), fixed_value,
					 &inf_v),
		     0);
	CV_CHECK_INT(cv_metrics_gauge_fn(reg, "conclave_odd", "Odd values.",
					 CV_LABELS({"v", "tenth"}), fixed_value,
					 &tenth),
		     0);
	CV_CHECK_INT(cv_metrics_counter(reg, "conclave:up_total", "Plain.",
					CV_LABELS({"a", ""}), &plain),
		     0);

	cv_counter_inc(stun);
	cv_counter_add(stun, 41);
	cv_counter_add(srtp, UINT64_C(18446744073709551615));
	cv_gauge_set(rooms, 5);
	cv_gauge_add(rooms, -7);
	CV_CHECK_INT(cv_gauge_get(rooms), -2);
	cv_histogram_observe(rtt, 0);
	cv_histogram_observe(rtt, 10); /* on the bound: le="10" */
	cv_histogram_observe(rtt, 11);
	cv_histogram_observe(rtt, 200);
	cv_histogram_observe(rtt, 5000);

	out = render(reg);
	CV_CHECK_STR(
		out,
		"# HELP conclave_drops_total Packets dropped, by reason.\n"
		"# TYPE conclave_drops_total counter\n"
		"conclave_drops_total{reason=\"bad_stun\",worker=\"0\"} 42\n"
		"conclave_drops_total{reason=\"srtp_auth\",worker=\"0\"} "
		"18446744073709551615\n"
		"# HELP conclave_rooms Open rooms.\n"
		"# TYPE conclave_rooms gauge\n"
		"conclave_rooms -2\n"
		"# HELP conclave_rtt_ms Round-trip time.\n"
		"# TYPE conclave_rtt_ms histogram\n"
		"conclave_rtt_ms_bucket{kind=\"video\",le=\"10\"} 2\n"
		"conclave_rtt_ms_bucket{kind=\"video\",le=\"50\"} 3\n"
		"conclave_rtt_ms_bucket{kind=\"video\",le=\"200\"} 4\n"
		"conclave_rtt_ms_bucket{kind=\"video\",le=\"+Inf\"} 5\n"
		"conclave_rtt_ms_sum{kind=\"video\"} 5221\n"
		"conclave_rtt_ms_count{kind=\"video\"} 5\n"
		"# HELP conclave_load Help with \\\\ and\\nnewline.\n"
		"# TYPE conclave_load gauge\n"
		"conclave_load{q=\"a\\\"b\\\\c\\nd\"} 0.25\n"
		"# HELP conclave_odd Odd values.\n"
		"# TYPE conclave_odd gauge\n"
		"conclave_odd{v=\"nan\"} NaN\n"
		"conclave_odd{v=\"-inf\"} -Inf\n"
		"conclave_odd{v=\"tenth\"} 0.1\n"
		"# HELP conclave:up_total Plain.\n"
		"# TYPE conclave:up_total counter\n"
		"conclave:up_total{a=\"\"} 0\n");
	free(out);

	/* A callback is read at every render. */
	load = 1e300;
	out = render(reg);
	CV_CHECK(strstr(out, "conclave_load{q=\"a\\\"b\\\\c\\nd\"} 1e+300\n"));
	free(out);
	cv_metrics_destroy(reg);
	cv_metrics_destroy(NULL);
}

static void test_errors(void)
{
	struct cv_metrics *reg;
	struct cv_counter *c = NULL;
	struct cv_gauge *g = NULL;
	struct cv_histogram *h = NULL;
	static const uint64_t ok_b[] = {1, 2}, bad_b[] = {2, 2};
	uint64_t many[CV_METRICS_MAX_BUCKETS + 1];

	CV_CHECK_INT(cv_metrics_create(&reg), 0);
	CV_CHECK_INT(cv_metrics_counter(reg, "x_total", "X.",
					CV_LABELS({"w", "0"}), &c),
		     0);
	CV_CHECK_INT(cv_metrics_counter(reg, "x_total", "X.",
					CV_LABELS({"w", "0"}), &c),
		     -EEXIST);
	/* same name, other help or type */
	CV_CHECK_INT(cv_metrics_counter(reg, "x_total", "Y.",
					CV_LABELS({"w", "1"}), &c),
		     -EINVAL);
	CV_CHECK_INT(cv_metrics_gauge(reg, "x_total", "X.", NULL, &g), -EINVAL);
	static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		CV_CHECK_INT(
			cv_metrics_counter(reg, bad_names[i], "B.", NULL, &c),
			-EINVAL);
	CV_CHECK_INT(cv_metrics_counter(reg, NULL, "B.", NULL, &c), -EINVAL);
	CV_CHECK_INT(cv_metrics_counter(reg, "b", NULL, NULL, &c), -EINVAL);
	CV_CHECK_INT(
		cv_metrics_counter(reg, "b", "B.", CV_LABELS({"a:b", "1"}), &c),
		-EINVAL);
	CV_CHECK_INT(
		cv_metrics_counter(reg, "b", "B.", CV_LABELS({"__a", "1"}), &c),
		-EINVAL);
	CV_CHECK_INT(cv_metrics_counter(reg, "b", "B.",
					CV_LABELS({"a", "1"}, {"a", "2"}), &c),
		     -EINVAL);
	CV_CHECK_INT(
		cv_metrics_counter(reg, "b", "B.", CV_LABELS({"a", NULL}), &c),
		-EINVAL);
	CV_CHECK_INT(cv_metrics_counter(reg, "b", "B.",
					CV_LABELS({"a", "1"}, {"b", "2"},
						  {"c", "3"}, {"d", "4"}),
					&c),
		     -E2BIG);
	CV_CHECK_INT(cv_metrics_histogram(reg, "h", "H.",
					  CV_LABELS({"le", "1"}), ok_b, 2, &h),
		     -EINVAL);
	CV_CHECK_INT(cv_metrics_histogram(reg, "h", "H.", NULL, bad_b, 2, &h),
		     -EINVAL);
	CV_CHECK_INT(cv_metrics_histogram(reg, "h", "H.", NULL, ok_b, 0, &h),
		     -EINVAL);
	for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = i;
	CV_CHECK_INT(cv_metrics_histogram(reg, "h", "H.", NULL, many,
					  CV_METRICS_MAX_BUCKETS + 1, &h),
		     -EINVAL);
	CV_CHECK_INT(cv_metrics_histogram(reg, "h", "H.", NULL, many,
					  CV_METRICS_MAX_BUCKETS, &h),
		     0);
	CV_CHECK_INT(cv_metrics_gauge_fn(reg, "f", "F.", NULL, NULL, NULL),
		     -EINVAL);
	/* Nothing of the failures shows. */
	char *out = render(reg);
	CV_CHECK(strstr(out, "\nb") == NULL);
	CV_CHECK(strstr(out, "x_total{w=\"1\"}") == NULL);
	CV_CHECK(strstr(out, "h_count 0\n") != NULL);
	free(out);
	cv_metrics_destroy(reg);
}

/* Many families: the registry's arrays grow without moving handles. */
static void test_growth(void)
{
	struct cv_metrics *reg;
	struct cv_counter *c[100];
	char name[32], *out;

	CV_CHECK_INT(cv_metrics_create(&reg), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "m%d_total", i);
		CV_CHECK_INT(cv_metrics_counter(reg, name, "M.", NULL, &c[i]),
			     0);
	}
	for (int i = 0; i < 100; i++)
		cv_counter_add(c[i], (uint64_t)i);
	out = render(reg);
	CV_CHECK(strstr(out, "\nm0_total 0\n") != NULL);
	CV_CHECK(strstr(out, "\nm99_total 99\n") != NULL);
	free(out);
	cv_metrics_destroy(reg);
}

struct shared {
	struct cv_metrics *reg;
	struct cv_counter *counter;
	struct cv_histogram *hist;
	struct cv_gauge *gauge;
};

#define PER_THREAD 100000

static void *hammer(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		cv_counter_inc(s->counter);
		cv_histogram_observe(s->hist, (uint64_t)(i % 300));
		cv_gauge_add(s->gauge, (i & 1) ? -1 : 1);
	}
	return NULL;
}

static void test_threads(void)
{
	static const uint64_t bounds[] = {100, 200};
	struct shared s;
	pthread_t t[4];
	char *out;

	CV_CHECK_INT(cv_metrics_create(&s.reg), 0);
	CV_CHECK_INT(
		cv_metrics_counter(s.reg, "pkts_total", "P.", NULL, &s.counter),
		0);
	CV_CHECK_INT(cv_metrics_histogram(s.reg, "sz", "S.", NULL, bounds, 2,
					  &s.hist),
		     0);
	CV_CHECK_INT(cv_metrics_gauge(s.reg, "g", "G.", NULL, &s.gauge), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, &s);
	/* Render while writers run: always well-formed. */
	for (int i = 0; i < 20; i++) {
		out = render(s.reg);
		CV_CHECK(strncmp(out, "# HELP pkts_total P.\n", 21) == 0);
		free(out);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CV_CHECK_INT(cv_counter_get(s.counter), 4 * PER_THREAD);
	CV_CHECK_INT(cv_gauge_get(s.gauge), 0);
	out = render(s.reg);
	CV_CHECK(strstr(out, "pkts_total 400000\n") != NULL);
	CV_CHECK(strstr(out, "sz_bucket{le=\"+Inf\"} 400000\n") != NULL);
	CV_CHECK(strstr(out, "sz_count 400000\n") != NULL);
	/* i % 300 over 100000: 0..100 is 101 of every 300 */
	char want[64];
	uint64_t low = 0;
	for (int i = 0; i < PER_THREAD; i++)
		low += (i % 300) <= 100;
	snprintf(want, sizeof(want), "sz_bucket{le=\"100\"} %llu\n",
		 (unsigned long long)(4 * low));
	CV_CHECK(strstr(out, want) != NULL);
	free(out);
	cv_metrics_destroy(s.reg);
}

int main(void)
{
	test_render();
	test_errors();
	test_growth();
	test_threads();
	return cv_test_done("test_metrics");
}
