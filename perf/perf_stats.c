/*
 * conclave-perf's pure helpers (see perf_stats.h).
 */
#include "perf/perf_stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Points a segment of a summary is spread over: enough for the 3 %
 * buckets to see a slope, few enough to stay cheap per interval. */
#define SPREAD_POINTS 8

static size_t bucket_of(uint32_t v)
{
	if (v < PERF_HIST_SUB)
		return v;
	unsigned e = 31u - (unsigned)__builtin_clz(v); /* >= 6 */
	unsigned sub = (v >> (e - 5)) & 31u;
	return PERF_HIST_SUB + (size_t)(e - 6) * 32 + sub;
}

/* The middle of bucket i, in microseconds. */
static uint32_t bucket_mid(size_t i)
{
	if (i < PERF_HIST_SUB)
		return (uint32_t)i;
	unsigned e = (unsigned)((i - PERF_HIST_SUB) / 32) + 6;
	uint64_t sub = (i - PERF_HIST_SUB) % 32;
	uint64_t width = 1ull << (e - 5);
	uint64_t lo = (1ull << e) + sub * width;
	uint64_t mid = lo + width / 2;
	return mid > UINT32_MAX ? UINT32_MAX : (uint32_t)mid;
}

void perf_hist_reset(struct perf_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void perf_hist_add(struct perf_hist *h, uint32_t us, double weight)
{
	if (!(weight > 0))
		return;
	h->b[bucket_of(us)] += weight;
	h->n += weight;
	if (us > h->max_us)
		h->max_us = us;
}

static void spread(struct perf_hist *h, uint32_t lo, uint32_t hi, double mass)
{
	if (hi <= lo) {
		perf_hist_add(h, lo, mass);
		return;
	}
	double step = ((double)hi - (double)lo) / SPREAD_POINTS;
	for (int i = 0; i < SPREAD_POINTS; i++)
		perf_hist_add(h, (uint32_t)(lo + step * (i + 0.5)),
			      mass / SPREAD_POINTS);
}

void perf_hist_add_summary(struct perf_hist *h, uint64_t n, uint32_t p50_us,
			   uint32_t p95_us, uint32_t p99_us, uint32_t max_us)
{
	if (!n)
		return;
	if (p95_us < p50_us)
		p95_us = p50_us;
	if (p99_us < p95_us)
		p99_us = p95_us;
	if (max_us < p99_us)
		max_us = p99_us;
	double w = (double)n;
	perf_hist_add(h, p50_us, w * 0.50);
	spread(h, p50_us, p95_us, w * 0.45);
	spread(h, p95_us, p99_us, w * 0.04);
	spread(h, p99_us, max_us, w * 0.01);
	if (max_us > h->max_us)
		h->max_us = max_us;
}

void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src)
{
	for (size_t i = 0; i < PERF_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->n += src->n;
	if (src->max_us > dst->max_us)
		dst->max_us = src->max_us;
}

uint32_t perf_hist_quantile(const struct perf_hist *h, double q)
{
	if (!(h->n > 0))
		return 0;
	if (q < 0)
		q = 0;
	if (q >= 1)
		return h->max_us;
	/* The smallest value with at least q of the mass at or below it
	 * (a small tolerance absorbs the rounding of spread weights). */
	double want = q * h->n * (1 - 1e-9);
	double acc = 0;
	for (size_t i = 0; i < PERF_HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (h->b[i] > 0 && acc >= want) {
			uint32_t v = bucket_mid(i);
			return v > h->max_us ? h->max_us : v;
		}
	}
	return h->max_us;
}

double perf_loss_pct(uint64_t lost, uint64_t received)
{
	uint64_t all = lost + received;
	return all ? 100.0 * (double)lost / (double)all : 0.0;
}

int perf_proc_stat_ticks(const char *line, uint64_t *ticks)
{
	/* proc(5): "pid (comm) state ppid ...": comm may contain ") ", so
	 * the fields start after the last ')'. */
	const char *p = strrchr(line, ')');
	if (!p)
		return -EINVAL;
	p++;
	uint64_t utime = 0, stime = 0;
	/* Field 3 (state) is the first token after ')'; utime is field 14. */
	for (int field = 3; field <= 15; field++) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			return -EINVAL;
		const char *tok = p;
		while (*p && *p != ' ' && *p != '\n')
			p++;
		if (field == 14 || field == 15) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(tok, &end, 10);
			if (end != p || errno || tok[0] == '-')
				return -EINVAL;
			if (field == 14)
				utime = v;
			else
				stime = v;
		}
	}
	*ticks = utime + stime;
	return 0;
}

double perf_proc_cpu_s(pid_t pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *ok = fgets(line, sizeof(line), f);
	fclose(f);
	uint64_t ticks;
	if (!ok || perf_proc_stat_ticks(line, &ticks))
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	return (double)ticks / (double)(hz > 0 ? hz : 100);
}
