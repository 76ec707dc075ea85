/*
 * conclave-perf's run: the options, the endpoints of a scenario, the
 * per-second series and the totals shared by the harness threads, the
 * report (perf_report.c) and the driver (conclave_perf.c).
 *
 * Threads: T harness threads each own one struct cv_client_loop and the
 * endpoints i with i % T == their index; everything of an endpoint is
 * touched only by its thread. What crosses threads (struct perf_sec,
 * struct perf_totals) is guarded by perf_run.mu.
 */
#ifndef CONCLAVE_PERF_RUN_H
#define CONCLAVE_PERF_RUN_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conclave/client.h"
#include "perf/perf_stats.h"

/* PERF_PERC: a meeting in perc rooms (docs/perc.md "The endpoint in a
 * perc room"): the conclave-kms channel is needed (perf_opts.kms_*). */
enum perf_scenario { PERF_MEETING, PERF_WEBINAR, PERF_AUDIO, PERF_PERC };

/* Which media server the endpoints speak to. */
enum perf_target { PERF_TARGET_CONCLAVE, PERF_TARGET_JANUS };

#define PERF_MAX_NODE_ARGS 32

struct perf_opts {
	const char *url;
	const char *token_secret;
	bool dev_token;
	const char *start_node; /* path of the conclave binary */
	unsigned node_workers;	/* with start_node; 0: the node's default */
	const char *node_args[PERF_MAX_NODE_ARGS];
	size_t n_node_args;
	const char *node_log;
	pid_t node_pid; /* 0: not local (no CPU figures) */
	enum perf_target target;
	enum perf_scenario scenario;
	unsigned participants, publishers, subscribers, rooms;
	double ramp_per_sec; /* endpoints started per second; 0: all at once */
	double warmup_s;     /* after the ramp, before the measured window */
	double duration_s;   /* the measured window */
	unsigned threads;
	uint32_t video_bitrate_bps;
	unsigned fps;
	double loss_pct;
	unsigned loss_burst;
	unsigned jitter_ms; /* receive-side hold, 0..jitter_ms */
	double reorder_pct; /* packets held 20 ms more */
	const char *json_path, *plot_path;
	bool quiet;
	/* perc: the KMS channel (kms_host NULL: the node's relay), its
	 * pinned certificate, and the KMS token secret file and issuer to
	 * sign each endpoint's KMS token with. */
	const char *kms_host;
	uint16_t kms_port;
	const char *kms_cert;
	const char *kms_secret_file;
	const char *kms_issuer;
	/* Thresholds (negative: not checked). */
	double max_loss_pct, max_p99_ms;
	int64_t min_received;
};

struct perf_ep {
	char room[40], name[64];
	char *token;	 /* malloc */
	char *kms_token; /* malloc; perc only */
	bool audio, video, subscribe_only;
	unsigned expect_tracks; /* tracks it should receive */
	uint64_t start_us;	/* after the run's t0 */
	struct cv_client *c;
	bool created;
	enum cv_client_state state;
	int err;
	bool published, subscribed;
};

/* One second of the run, summed over threads. */
struct perf_sec {
	uint64_t packets, lost; /* received during the second */
	struct perf_hist delay;
	unsigned reported; /* threads that added their share */
	unsigned up;	   /* endpoints with media flowing in */
	unsigned failed;
	double node_cpu_s, self_cpu_s; /* during the second; < 0: unknown */
};

/* Cumulative figures at the end of the run. */
struct perf_totals {
	uint64_t sent_audio, sent_video, sent_bytes, sent_frames,
		sent_keyframes, nacks_received, retransmits, plis_received,
		impair_dropped;
	uint64_t tracks, tracks_missing;
	uint64_t packets, bytes, expected, lost, out_of_order, duplicates;
	uint64_t frames; /* video frames */
	uint64_t keyframes, keyframe_waits, nacks_sent, plis_sent, recovered;
	struct perf_hist jitter; /* one sample per track */
	uint32_t worst_track_p99_us;
	struct perf_hist delay;
	unsigned failed, up;
	/* perc: packets verified end to end, delivered but not bit-exact,
	 * and dropped by the receivers' perc checks (every reason) */
	uint64_t perc_verified, perc_mismatch, perc_drops;
	uint64_t perc_drop[CV_PERC_DROP_COUNT]; /* by cv_perc_drop_name */
};

struct perf_run {
	const struct perf_opts *o;
	struct perf_ep *eps;
	size_t n_eps;
	uint64_t t0_us;	 /* monotonic */
	unsigned warm_s; /* seconds before the measured window */
	unsigned n_secs; /* warm_s + measured seconds */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct perf_sec *secs; /* n_secs */
	struct perf_totals tot;
	unsigned threads_alive;
	double node_cpu_total_s; /* over the whole run; < 0: unknown */
	double self_cpu_total_s;
	double load_start, load_end; /* 1-minute load average; < 0: unknown */
};

/* The figures a report and the thresholds are made of. */
struct perf_summary {
	double loss_pct; /* cumulative lost / expected, every track */
	uint64_t steady_packets, steady_lost;
	double steady_s;
	uint32_t p50_us, p95_us, p99_us, max_us; /* measured window */
	double delay_samples;
	double node_cpu_s;	   /* measured window; < 0: unknown */
	double cpu_us_per_packet;  /* < 0: unknown */
	double self_cpu_s;	   /* the harness, measured window */
	const char *violations[8]; /* static strings */
	size_t n_violations;
};

/* Fills *s from run (borrowed, threads joined) and checks thresholds. */
void perf_summarize(const struct perf_run *run, struct perf_summary *s);

/* Prints the text report on stdout. */
void perf_report_text(const struct perf_run *run, const struct perf_summary *s);

/* The JSON report (see perf_report.c for its fields); new reference,
 * NULL on allocation failure. */
json_t *perf_report_build(const struct perf_run *run,
			  const struct perf_summary *s);

/* Writes the JSON report to path. Returns 0 or -errno. */
int perf_report_json(const struct perf_run *run, const struct perf_summary *s,
		     const char *path);

/* Writes a PNG (gnuplot) of delay p50/p99, loss and CPU per second to
 * path. Returns 0, -ENOENT (no gnuplot) or -EIO. */
int perf_report_plot(const struct perf_run *run, const char *path);

const char *perf_scenario_name(enum perf_scenario s);

#endif
