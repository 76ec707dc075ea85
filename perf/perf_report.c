/*
 * conclave-perf's report: the summary and thresholds, the text and JSON
 * reports and the gnuplot PNG (see perf_run.h). Runs on the main thread
 * after the harness threads are joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf/perf_run.h"

const char *perf_scenario_name(enum perf_scenario s)
{
	switch (s) {
	case PERF_MEETING:
		return "meeting";
	case PERF_WEBINAR:
		return "webinar";
	case PERF_AUDIO:
		return "audio";
	case PERF_PERC:
		return "perc";
	}
	return "?";
}

static void violate(struct perf_summary *s, const char *what)
{
	if (s->n_violations < sizeof(s->violations) / sizeof(s->violations[0]))
		s->violations[s->n_violations++] = what;
}

static void check_thresholds(const struct perf_run *run, struct perf_summary *s)
{
	const struct perf_opts *o = run->o;
	const struct perf_totals *t = &run->tot;
	/* A run where endpoints failed or media never arrived measured
	 * nothing: it never passes, whatever the thresholds. */
	if (t->failed)
		violate(s, "endpoints failed");
	if (t->tracks_missing)
		violate(s, "expected tracks never received");
	if (t->perc_mismatch)
		violate(s, "perc: delivered packets not bit-exact");
	if (o->max_loss_pct >= 0 && s->loss_pct > o->max_loss_pct)
		violate(s, "loss above --max-loss");
	if (o->max_p99_ms >= 0 &&
	    (!(s->delay_samples > 0) || s->p99_us > o->max_p99_ms * 1000))
		violate(s, "p99 delay above --max-p99-ms (or no delay sample)");
	if (o->min_received >= 0 && t->packets < (uint64_t)o->min_received)
		violate(s, "fewer packets received than --min-received");
}

void perf_summarize(const struct perf_run *run, struct perf_summary *s)
{
	memset(s, 0, sizeof(*s));
	const struct perf_totals *t = &run->tot;
	s->loss_pct = perf_loss_pct(t->lost, t->packets);
	struct perf_hist *h = calloc(1, sizeof(*h));
	bool cpu_known = true, self_known = true;
	for (unsigned i = run->warm_s; i < run->n_secs; i++) {
		const struct perf_sec *sec = &run->secs[i];
		s->steady_packets += sec->packets;
		s->steady_lost += sec->lost;
		s->steady_s += 1;
		if (h)
			perf_hist_merge(h, &sec->delay);
		if (sec->node_cpu_s < 0)
			cpu_known = false;
		else
			s->node_cpu_s += sec->node_cpu_s;
		if (sec->self_cpu_s < 0)
			self_known = false;
		else
			s->self_cpu_s += sec->self_cpu_s;
	}
	if (!cpu_known || !(s->steady_s > 0))
		s->node_cpu_s = -1;
	if (!self_known || !(s->steady_s > 0))
		s->self_cpu_s = -1;
	s->cpu_us_per_packet =
		s->node_cpu_s >= 0 && s->steady_packets
			? s->node_cpu_s * 1e6 / (double)s->steady_packets
			: -1;
	if (h) {
		s->delay_samples = h->n;
		s->p50_us = perf_hist_quantile(h, 0.50);
		s->p95_us = perf_hist_quantile(h, 0.95);
		s->p99_us = perf_hist_quantile(h, 0.99);
		s->max_us = h->max_us;
		free(h);
	}
	check_thresholds(run, s);
}

void perf_report_text(const struct perf_run *run, const struct perf_summary *s)
{
	const struct perf_opts *o = run->o;
	const struct perf_totals *t = &run->tot;
	printf("conclave-perf: %s x %u room(s), %zu endpoints on %u "
	       "thread(s), %.0f s measured after %u s of ramp and warm-up\n",
	       perf_scenario_name(o->scenario), o->rooms, run->n_eps,
	       o->threads, s->steady_s, run->warm_s);
	printf("  endpoints: %u with media, %u failed; tracks %llu "
	       "(%llu expected ones missing)\n",
	       t->up, t->failed, (unsigned long long)t->tracks,
	       (unsigned long long)t->tracks_missing);
	printf("  sent:     %llu packets (%llu audio, %llu video), %llu "
	       "bytes, %llu frames, %llu keyframes, %llu retransmits\n",
	       (unsigned long long)(t->sent_audio + t->sent_video),
	       (unsigned long long)t->sent_audio,
	       (unsigned long long)t->sent_video,
	       (unsigned long long)t->sent_bytes,
	       (unsigned long long)t->sent_frames,
	       (unsigned long long)t->sent_keyframes,
	       (unsigned long long)t->retransmits);
	if (o->scenario == PERF_PERC)
		printf("  perc:     %llu packets verified end to end, %llu "
		       "not bit-exact, %llu dropped by perc checks\n",
		       (unsigned long long)t->perc_verified,
		       (unsigned long long)t->perc_mismatch,
		       (unsigned long long)t->perc_drops);
	for (int d = 0; o->scenario == PERF_PERC && d < CV_PERC_DROP_COUNT; d++)
		if (t->perc_drop[d])
			printf("            dropped (%s): %llu\n",
			       cv_perc_drop_name((enum cv_perc_drop)d),
			       (unsigned long long)t->perc_drop[d]);
	printf("  received: %llu packets, %llu bytes, lost %llu of %llu "
	       "(%.3f %%), %llu recovered, %llu video frames, %llu keyframe "
	       "waits\n",
	       (unsigned long long)t->packets, (unsigned long long)t->bytes,
	       (unsigned long long)t->lost, (unsigned long long)t->expected,
	       s->loss_pct, (unsigned long long)t->recovered,
	       (unsigned long long)t->frames,
	       (unsigned long long)t->keyframe_waits);
	printf("  delay (measured window): p50 %.2f ms, p95 %.2f ms, p99 "
	       "%.2f ms, max %.2f ms; jitter (tracks' median) %.2f ms, max "
	       "%.2f ms\n",
	       s->p50_us / 1000.0, s->p95_us / 1000.0, s->p99_us / 1000.0,
	       s->max_us / 1000.0, perf_hist_quantile(&t->jitter, 0.5) / 1000.0,
	       t->jitter.max_us / 1000.0);
	if (s->node_cpu_s >= 0 && s->cpu_us_per_packet < 0)
		printf("  node: %.2f CPU s over %.0f s, no packet forwarded\n",
		       s->node_cpu_s, s->steady_s);
	else if (s->node_cpu_s >= 0)
		printf("  node: %.2f CPU s over %.0f s (%.0f %% of a core), "
		       "%llu packets forwarded, %.2f CPU us per forwarded "
		       "packet\n",
		       s->node_cpu_s, s->steady_s,
		       100 * s->node_cpu_s / s->steady_s,
		       (unsigned long long)s->steady_packets,
		       s->cpu_us_per_packet);
	else
		printf("  node: not local (no CPU figures); %llu packets "
		       "forwarded in the measured window\n",
		       (unsigned long long)s->steady_packets);
	if (s->self_cpu_s >= 0)
		printf("  harness: %.2f CPU s over the measured window\n",
		       s->self_cpu_s);
	if (run->load_start >= 0 && run->load_end >= 0)
		printf("  machine: load average %.2f at the start, %.2f at the "
		       "end (%ld CPUs)\n",
		       run->load_start, run->load_end,
		       sysconf(_SC_NPROCESSORS_ONLN));
	for (size_t i = 0; i < s->n_violations; i++)
		printf("  FAIL: %s\n", s->violations[i]);
	printf("conclave-perf: %s\n", s->n_violations ? "FAIL" : "PASS");
}

static json_t *num_or_null(double v)
{
	return v >= 0 ? json_real(v) : json_null();
}

#define JI(v) json_integer((json_int_t)(v))

static json_t *build_config(const struct perf_opts *o)
{
	return json_pack(
		"{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:I,s:I,s:I,s:f,s:I}",
		"target", o->target == PERF_TARGET_JANUS ? "janus" : "conclave",
		"scenario", perf_scenario_name(o->scenario), "participants",
		(json_int_t)o->participants, "publishers",
		(json_int_t)o->publishers, "subscribers",
		(json_int_t)o->subscribers, "rooms", (json_int_t)o->rooms,
		"ramp_per_sec", o->ramp_per_sec, "warmup_s", o->warmup_s,
		"duration_s", o->duration_s, "threads", (json_int_t)o->threads,
		"video_bitrate_bps", (json_int_t)o->video_bitrate_bps, "fps",
		(json_int_t)o->fps, "loss_pct", o->loss_pct, "loss_burst",
		(json_int_t)o->loss_burst);
}

static json_t *build_totals(const struct perf_totals *t,
			    const struct perf_summary *s)
{
	json_t *sent = json_object();
	json_object_set_new(sent, "packets", JI(t->sent_audio + t->sent_video));
	json_object_set_new(sent, "audio_packets", JI(t->sent_audio));
	json_object_set_new(sent, "video_packets", JI(t->sent_video));
	json_object_set_new(sent, "bytes", JI(t->sent_bytes));
	json_object_set_new(sent, "video_frames", JI(t->sent_frames));
	json_object_set_new(sent, "keyframes", JI(t->sent_keyframes));
	json_object_set_new(sent, "nacks_received", JI(t->nacks_received));
	json_object_set_new(sent, "retransmits", JI(t->retransmits));
	json_object_set_new(sent, "plis_received", JI(t->plis_received));
	json_object_set_new(sent, "impair_dropped", JI(t->impair_dropped));
	json_t *rx = json_object();
	json_object_set_new(rx, "tracks", JI(t->tracks));
	json_object_set_new(rx, "perc_verified", JI(t->perc_verified));
	json_object_set_new(rx, "perc_mismatch", JI(t->perc_mismatch));
	json_object_set_new(rx, "perc_drops", JI(t->perc_drops));
	json_t *why = json_object();
	for (int d = 0; d < CV_PERC_DROP_COUNT; d++)
		json_object_set_new(why,
				    cv_perc_drop_name((enum cv_perc_drop)d),
				    JI(t->perc_drop[d]));
	json_object_set_new(rx, "perc_drop_reasons", why);
	json_object_set_new(rx, "tracks_missing", JI(t->tracks_missing));
	json_object_set_new(rx, "packets", JI(t->packets));
	json_object_set_new(rx, "bytes", JI(t->bytes));
	json_object_set_new(rx, "expected", JI(t->expected));
	json_object_set_new(rx, "lost", JI(t->lost));
	json_object_set_new(rx, "loss_pct", json_real(s->loss_pct));
	json_object_set_new(rx, "out_of_order", JI(t->out_of_order));
	json_object_set_new(rx, "duplicates", JI(t->duplicates));
	json_object_set_new(rx, "recovered", JI(t->recovered));
	json_object_set_new(rx, "video_frames", JI(t->frames));
	json_object_set_new(rx, "keyframes", JI(t->keyframes));
	json_object_set_new(rx, "keyframe_waits", JI(t->keyframe_waits));
	json_object_set_new(rx, "nacks_sent", JI(t->nacks_sent));
	json_object_set_new(rx, "plis_sent", JI(t->plis_sent));
	json_object_set_new(rx, "jitter_median_us",
			    JI(perf_hist_quantile(&t->jitter, 0.5)));
	json_object_set_new(rx, "jitter_max_us", JI(t->jitter.max_us));
	return json_pack("{s:o,s:o}", "sent", sent, "received", rx);
}

static json_t *build_series(const struct perf_run *run)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < run->n_secs; i++) {
		const struct perf_sec *sec = &run->secs[i];
		json_t *o = json_pack(
			"{s:I,s:b,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:o,s:o}", "t_s",
			(json_int_t)i + 1, "measured", i >= run->warm_s,
			"packets", (json_int_t)sec->packets, "lost",
			(json_int_t)sec->lost, "loss_pct",
			perf_loss_pct(sec->lost, sec->packets), "delay_p50_us",
			(json_int_t)perf_hist_quantile(&sec->delay, 0.5),
			"delay_p99_us",
			(json_int_t)perf_hist_quantile(&sec->delay, 0.99),
			"endpoints_up", (json_int_t)sec->up, "endpoints_failed",
			(json_int_t)sec->failed, "node_cpu_s",
			num_or_null(sec->node_cpu_s), "harness_cpu_s",
			num_or_null(sec->self_cpu_s));
		json_array_append_new(a, o);
	}
	return a;
}

/*
 * {"config": {...}, "endpoints": {"total","up","failed"},
 *  "totals": {"sent": {...}, "received": {...}} (cumulative),
 *  "measured": {"seconds","packets","lost","delay_us": {p50,p95,p99,max,
 *  samples}, "node_cpu_s","cpu_us_per_packet","harness_cpu_s"},
 *  "passed": bool, "violations": [...], "series": [per second]}
 * CPU figures are null when the node is not local.
 */
json_t *perf_report_build(const struct perf_run *run,
			  const struct perf_summary *s)
{
	const struct perf_totals *t = &run->tot;
	json_t *viol = json_array();
	for (size_t i = 0; i < s->n_violations; i++)
		json_array_append_new(viol, json_string(s->violations[i]));
	json_t *delay = json_pack(
		"{s:I,s:I,s:I,s:I,s:I}", "p50", (json_int_t)s->p50_us, "p95",
		(json_int_t)s->p95_us, "p99", (json_int_t)s->p99_us, "max",
		(json_int_t)s->max_us, "samples", (json_int_t)s->delay_samples);
	json_t *measured = json_pack(
		"{s:f,s:I,s:I,s:o,s:o,s:o,s:o,s:I}", "seconds", s->steady_s,
		"packets", (json_int_t)s->steady_packets, "lost",
		(json_int_t)s->steady_lost, "delay_us", delay, "node_cpu_s",
		num_or_null(s->node_cpu_s), "cpu_us_per_packet",
		num_or_null(s->cpu_us_per_packet), "harness_cpu_s",
		num_or_null(s->self_cpu_s), "worst_track_p99_us",
		(json_int_t)t->worst_track_p99_us);
	json_t *eps = json_pack("{s:I,s:I,s:I}", "total",
				(json_int_t)run->n_eps, "up", (json_int_t)t->up,
				"failed", (json_int_t)t->failed);
	json_t *machine =
		json_pack("{s:I,s:o,s:o}", "cpus",
			  (json_int_t)sysconf(_SC_NPROCESSORS_ONLN),
			  "loadavg_start", num_or_null(run->load_start),
			  "loadavg_end", num_or_null(run->load_end));
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o}", "config",
			 build_config(run->o), "machine", machine, "endpoints",
			 eps, "totals", build_totals(t, s), "measured",
			 measured, "passed", s->n_violations == 0, "violations",
			 viol, "series", build_series(run));
}

int perf_report_json(const struct perf_run *run, const struct perf_summary *s,
		     const char *path)
{
	json_t *doc = perf_report_build(run, s);
	if (!doc)
		return -ENOMEM;
	int rc = json_dump_file(doc, path, JSON_INDENT(2)) ? -EIO : 0;
	json_decref(doc);
	return rc;
}

static int write_plot_data(const struct perf_run *run, const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "# t_s p50_ms p99_ms loss_pct node_cpu_pct "
		   "harness_cpu_pct rx_pps\n");
	for (unsigned i = 0; i < run->n_secs; i++) {
		const struct perf_sec *sec = &run->secs[i];
		fprintf(f, "%u %.3f %.3f %.3f %.1f %.1f %llu\n", i + 1,
			perf_hist_quantile(&sec->delay, 0.5) / 1000.0,
			perf_hist_quantile(&sec->delay, 0.99) / 1000.0,
			perf_loss_pct(sec->lost, sec->packets),
			sec->node_cpu_s >= 0 ? 100 * sec->node_cpu_s : 0.0,
			sec->self_cpu_s >= 0 ? 100 * sec->self_cpu_s : 0.0,
			(unsigned long long)sec->packets);
	}
	return fclose(f) ? -EIO : 0;
}

static int write_plot_script(const struct perf_run *run, const char *dat,
			     const char *png, const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	const struct perf_opts *o = run->o;
	fprintf(f,
		"set terminal pngcairo size 1000,900 font ',10'\n"
		"set output '%s'\n"
		"set multiplot layout 3,1 title 'conclave-perf: %s, %zu "
		"endpoints, %u room(s)'\n"
		"set grid\nset xlabel 'time (s)'\nset key top left\n"
		"set arrow from %u, graph 0 to %u, graph 1 nohead dt 2\n"
		"set ylabel 'one-way delay (ms)'\n"
		"plot '%s' using 1:2 with lines title 'p50', '' using 1:3 "
		"with lines title 'p99'\n"
		"set ylabel 'loss (%%)'\nset yrange [0:*]\n"
		"plot '%s' using 1:4 with lines title 'loss'\n"
		"set ylabel 'CPU (%% of a core)'\n"
		"plot '%s' using 1:5 with lines title 'node', '' using 1:6 "
		"with lines title 'harness'\n"
		"unset multiplot\n",
		png, perf_scenario_name(o->scenario), run->n_eps, o->rooms,
		run->warm_s, run->warm_s, dat, dat, dat);
	return fclose(f) ? -EIO : 0;
}

int perf_report_plot(const struct perf_run *run, const char *path)
{
	char dir[] = "/tmp/conclave-perf-plot-XXXXXX";
	if (!mkdtemp(dir))
		return -errno;
	char dat[64], gp[64];
	snprintf(dat, sizeof(dat), "%s/series.dat", dir);
	snprintf(gp, sizeof(gp), "%s/plot.gp", dir);
	int rc = write_plot_data(run, dat);
	if (!rc)
		rc = write_plot_script(run, dat, path, gp);
	if (!rc) {
		pid_t pid = fork();
		if (pid == 0) {
			execlp("gnuplot", "gnuplot", gp, (char *)NULL);
			_exit(127);
		}
		int status = 0;
		if (pid < 0 || waitpid(pid, &status, 0) < 0)
			rc = -EIO;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			rc = -ENOENT;
		else if (!WIFEXITED(status) || WEXITSTATUS(status))
			rc = -EIO;
	}
	unlink(dat);
	unlink(gp);
	rmdir(dir);
	return rc;
}
