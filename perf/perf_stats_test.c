/*
 * Unit tests of conclave-perf's pure parts: the delay histogram and the
 * merge of percentile summaries, loss ratios, /proc stat parsing, the
 * summary with its thresholds and the JSON report built from a run made
 * up here (no node, no endpoint).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cv_test.h"
#include "perf/perf_run.h"
#include "perf/perf_stats.h"

/* Within rel (a fraction) of want. */
static int near(uint32_t got, uint32_t want, double rel)
{
	double d = (double)got - (double)want;
	return (d < 0 ? -d : d) <= rel * (double)want + 1;
}

static void test_hist_exact(void)
{
	struct perf_hist h;
	perf_hist_reset(&h);
	CV_CHECK_INT(perf_hist_quantile(&h, 0.5), 0);
	/* 1..100 once each: exact below 64, ~3 % above. */
	for (uint32_t v = 1; v <= 100; v++)
		perf_hist_add(&h, v, 1);
	CV_CHECK_INT(perf_hist_quantile(&h, 0.0), 1);
	CV_CHECK_INT(perf_hist_quantile(&h, 0.5), 50);
	CV_CHECK(near(perf_hist_quantile(&h, 0.99), 99, 0.03));
	CV_CHECK_INT(perf_hist_quantile(&h, 1.0), 100);
	CV_CHECK_INT(h.max_us, 100);
	/* Out-of-range q is clamped, zero weight ignored. */
	CV_CHECK_INT(perf_hist_quantile(&h, 2.0), 100);
	CV_CHECK_INT(perf_hist_quantile(&h, -1.0), 1);
	perf_hist_add(&h, 5000, 0);
	CV_CHECK_INT(h.max_us, 100);
	/* Large values keep ~3 % precision and never exceed the max. */
	perf_hist_reset(&h);
	perf_hist_add(&h, 123456, 10);
	CV_CHECK(near(perf_hist_quantile(&h, 0.5), 123456, 0.03));
	perf_hist_add(&h, UINT32_MAX, 1);
	CV_CHECK_INT(perf_hist_quantile(&h, 1.0), UINT32_MAX);
}

static void test_hist_summary(void)
{
	struct perf_hist h;
	perf_hist_reset(&h);
	/* One summary comes back as itself. */
	perf_hist_add_summary(&h, 1000, 400, 900, 2000, 5000);
	CV_CHECK(h.n > 999.9 && h.n < 1000.1);
	CV_CHECK(near(perf_hist_quantile(&h, 0.5), 400, 0.03));
	CV_CHECK(near(perf_hist_quantile(&h, 0.95), 900, 0.08));
	CV_CHECK(near(perf_hist_quantile(&h, 0.99), 2000, 0.08));
	CV_CHECK_INT(h.max_us, 5000);
	/* Two alike summaries merge into the same percentiles. */
	struct perf_hist g;
	perf_hist_reset(&g);
	perf_hist_add_summary(&g, 1000, 400, 900, 2000, 5000);
	perf_hist_merge(&g, &h);
	CV_CHECK(g.n > 1999.9 && g.n < 2000.1);
	CV_CHECK(near(perf_hist_quantile(&g, 0.5), 400, 0.03));
	CV_CHECK(near(perf_hist_quantile(&g, 0.99), 2000, 0.08));
	/* A slow track with 10 % of the samples moves p99, not p50. */
	perf_hist_reset(&g);
	perf_hist_add_summary(&g, 900, 500, 600, 700, 800);
	perf_hist_add_summary(&g, 100, 20000, 30000, 40000, 50000);
	CV_CHECK(near(perf_hist_quantile(&g, 0.5), 500, 0.03));
	CV_CHECK(perf_hist_quantile(&g, 0.99) > 20000);
	/* Out-of-order percentiles are clamped; n = 0 is nothing. */
	perf_hist_reset(&g);
	perf_hist_add_summary(&g, 0, 1, 2, 3, 4);
	CV_CHECK(g.n == 0);
	perf_hist_add_summary(&g, 10, 300, 100, 50, 0);
	CV_CHECK(near(perf_hist_quantile(&g, 0.99), 300, 0.03));
	CV_CHECK_INT(g.max_us, 300);
}

static void test_loss(void)
{
	CV_CHECK(perf_loss_pct(0, 0) == 0);
	CV_CHECK(perf_loss_pct(0, 100) == 0);
	CV_CHECK(perf_loss_pct(1, 99) == 1.0);
	CV_CHECK(perf_loss_pct(5, 0) == 100.0);
}

static void test_proc_stat(void)
{
	uint64_t t = 0;
	/* proc(5) layout; utime 1234 and stime 56 are fields 14 and 15. */
	const char *line = "4242 (conclave) S 1 4242 4242 0 -1 4194560 1000 0 "
			   "0 0 1234 56 0 0 20 0 3 0 100 1000000 500\n";
	CV_CHECK_INT(perf_proc_stat_ticks(line, &t), 0);
	CV_CHECK_INT(t, 1290);
	/* A command name with spaces and parentheses. */
	const char *odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0\n";
	CV_CHECK_INT(perf_proc_stat_ticks(odd, &t), 0);
	CV_CHECK_INT(t, 30);
	CV_CHECK_INT(perf_proc_stat_ticks("no parenthesis", &t), -EINVAL);
	CV_CHECK_INT(perf_proc_stat_ticks("1 (x) S 1 2 3\n", &t), -EINVAL);
	CV_CHECK_INT(perf_proc_stat_ticks(
			     "1 (x) S 1 1 1 0 -1 0 0 0 0 0 1x 2 0\n", &t),
		     -EINVAL);
	CV_CHECK_INT(perf_proc_stat_ticks(
			     "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -1 2 0\n", &t),
		     -EINVAL);
	/* Our own process is readable; a pid that cannot exist is not. */
	CV_CHECK(perf_proc_cpu_s(getpid()) >= 0);
	CV_CHECK(perf_proc_cpu_s(1 << 30) < 0);
}

/* A 2 + 3 second run: 2 s warm-up, then 3 measured seconds. */
static void fake_run(struct perf_run *run, struct perf_opts *o,
		     struct perf_sec *secs)
{
	*o = (struct perf_opts){.scenario = PERF_MEETING,
				.participants = 2,
				.rooms = 1,
				.threads = 1,
				.duration_s = 3,
				.max_loss_pct = -1,
				.max_p99_ms = -1,
				.min_received = -1};
	memset(run, 0, sizeof(*run));
	memset(secs, 0, 5 * sizeof(*secs));
	run->o = o;
	run->n_eps = 2;
	run->warm_s = 2;
	run->n_secs = 5;
	run->secs = secs;
	for (unsigned i = 0; i < 5; i++) {
		secs[i].packets = i < 2 ? 10 : 1000;
		secs[i].node_cpu_s = 0.1;
		secs[i].self_cpu_s = 0.2;
		/* The warm-up's slow start stays out of the window. */
		perf_hist_add_summary(&secs[i].delay, secs[i].packets,
				      i < 2 ? 90000 : 400, i < 2 ? 90000 : 800,
				      i < 2 ? 90000 : 1000,
				      i < 2 ? 90000 : 3000);
	}
	run->tot.packets = 3020;
	run->tot.expected = 3020;
	run->tot.tracks = 4;
	run->tot.up = 2;
}

static void test_summary(void)
{
	struct perf_run run;
	struct perf_opts o;
	struct perf_sec *secs = calloc(5, sizeof(*secs));
	fake_run(&run, &o, secs);
	struct perf_summary s;
	perf_summarize(&run, &s);
	CV_CHECK_INT(s.n_violations, 0);
	CV_CHECK_INT(s.steady_packets, 3000);
	CV_CHECK(s.steady_s == 3);
	CV_CHECK(near(s.p50_us, 400, 0.03));
	CV_CHECK(s.p99_us < 3000);
	CV_CHECK(s.node_cpu_s > 0.299 && s.node_cpu_s < 0.301);
	CV_CHECK(s.cpu_us_per_packet > 99.9 && s.cpu_us_per_packet < 100.1);
	CV_CHECK(s.loss_pct == 0);

	/* Each threshold, and failures that never pass. */
	o.min_received = 3021;
	o.max_p99_ms = 0.5;
	o.max_loss_pct = 0;
	run.tot.lost = 10;
	perf_summarize(&run, &s);
	CV_CHECK_INT(s.n_violations, 3);
	o.min_received = o.max_loss_pct = o.max_p99_ms = -1;
	run.tot.lost = 0;
	run.tot.failed = 1;
	run.tot.tracks_missing = 2;
	perf_summarize(&run, &s);
	CV_CHECK_INT(s.n_violations, 2);
	run.tot.failed = run.tot.tracks_missing = 0;

	/* Unknown node CPU (not local): null, not a number. */
	secs[3].node_cpu_s = -1;
	perf_summarize(&run, &s);
	CV_CHECK(s.node_cpu_s < 0 && s.cpu_us_per_packet < 0);
	json_t *doc = perf_report_build(&run, &s);
	CV_CHECK(doc != NULL);
	json_t *m = json_object_get(doc, "measured");
	CV_CHECK(json_is_null(json_object_get(m, "cpu_us_per_packet")));
	CV_CHECK_INT(json_integer_value(json_object_get(m, "packets")), 3000);
	CV_CHECK(json_is_true(json_object_get(doc, "passed")));
	json_t *rx =
		json_object_get(json_object_get(doc, "totals"), "received");
	CV_CHECK_INT(json_integer_value(json_object_get(rx, "packets")), 3020);
	json_t *series = json_object_get(doc, "series");
	CV_CHECK_INT(json_array_size(series), 5);
	CV_CHECK(json_is_false(
		json_object_get(json_array_get(series, 1), "measured")));
	CV_CHECK(json_is_true(
		json_object_get(json_array_get(series, 2), "measured")));
	CV_CHECK_STR(json_string_value(json_object_get(
			     json_object_get(doc, "config"), "scenario")),
		     "meeting");
	json_decref(doc);
	free(secs);
}

int main(void)
{
	test_hist_exact();
	test_hist_summary();
	test_loss();
	test_proc_stat();
	test_summary();
	return cv_test_done("perf_stats");
}
