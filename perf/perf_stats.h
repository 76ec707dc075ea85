/*
 * The pure parts of conclave-perf: a delay histogram that merges the
 * percentile summaries the client library reports per track and per
 * interval, loss ratios and the CPU time of a process from /proc.
 * No state outside the structs; any thread (a struct perf_hist belongs to
 * whoever holds it).
 */
#ifndef CONCLAVE_PERF_STATS_H
#define CONCLAVE_PERF_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Log-linear buckets of microseconds: exact below PERF_HIST_SUB, then
 * PERF_HIST_SUB / 2 buckets per power of two (~3 % precision). */
#define PERF_HIST_SUB	  64
#define PERF_HIST_BUCKETS 896

/* Weighted samples (weights are fractions when a summary is spread). */
struct perf_hist {
	double b[PERF_HIST_BUCKETS];
	double n;
	uint32_t max_us;
};

/* Empties *h (borrowed). */
void perf_hist_reset(struct perf_hist *h);

/* Adds weight samples of value us to *h (borrowed). weight <= 0: no-op. */
void perf_hist_add(struct perf_hist *h, uint32_t us, double weight);

/*
 * Adds n samples known only by their percentiles (p50 <= p95 <= p99 <=
 * max, microseconds), as the client library reports them: 50 % of the
 * mass at p50 (the minimum is not known), 45 % spread evenly over
 * [p50, p95], 4 % over [p95, p99] and 1 % over [p99, max]. Percentiles
 * out of order are clamped upwards. The merge of many summaries is an
 * estimate of the pooled distribution: exact when they are all alike,
 * and never below the largest p99 share it is built from.
 */
void perf_hist_add_summary(struct perf_hist *h, uint64_t n, uint32_t p50_us,
			   uint32_t p95_us, uint32_t p99_us, uint32_t max_us);

/* Adds every sample of *src (borrowed) to *dst (borrowed). */
void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src);

/* Value at quantile q (0..1) within the bucket precision; 0 when empty. */
uint32_t perf_hist_quantile(const struct perf_hist *h, double q);

/* lost / (lost + received) in percent; 0 when both are 0. */
double perf_loss_pct(uint64_t lost, uint64_t received);

/*
 * Reads utime + stime (fields 14 and 15 of proc(5) /proc/PID/stat, in
 * clock ticks) from one stat line (borrowed, NUL-terminated; the command
 * name may hold spaces and parentheses). Returns 0 or -EINVAL.
 */
int perf_proc_stat_ticks(const char *line, uint64_t *ticks);

/* CPU seconds (user + system, every thread) used so far by process pid,
 * from /proc; -1 when it cannot be read (not local, exited). */
double perf_proc_cpu_s(pid_t pid);

#endif
