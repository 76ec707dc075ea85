/*
 * Metrics: a registry of counters, gauges and fixed-bucket histograms,
 * rendered in the Prometheus text exposition format 0.0.4.
 *
 * A series is a metric name plus up to CV_METRICS_MAX_LABELS label pairs
 * whose values are fixed when it is registered, e.g.
 * conclave_drops_total{reason="bad_stun",worker="0"}. Series of one name
 * form a family: same type and help.
 *
 * Threads: registration (may allocate, takes the registry lock) from any
 * thread, before the handle is used; updates from any thread, lock-free
 * (one relaxed atomic add on the packet path); render from any thread.
 * Handles stay valid until cv_metrics_destroy().
 */
#ifndef CONCLAVE_METRICS_H
#define CONCLAVE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CV_METRICS_MAX_LABELS  3
#define CV_METRICS_MAX_BUCKETS 32

struct cv_metrics;

/* One label pair; arrays of them end with {NULL, NULL}. */
struct cv_metric_label {
	const char *name;
	const char *value;
};

/* Builds a terminated label array in place:
 * CV_LABELS({"reason", "bad_stun"}, {"worker", "0"}). */
#define CV_LABELS(...)                                                         \
	((const struct cv_metric_label[]){__VA_ARGS__, {NULL, NULL}})

/* Visible so that updates inline; read and write only through the
 * functions below. One cache line each: no false sharing between hot
 * counters. */
struct cv_counter {
	_Alignas(64) _Atomic uint64_t value;
};
struct cv_gauge {
	_Alignas(64) _Atomic int64_t value;
};
struct cv_histogram;

/* Render-time gauge: called with the registry lock held, must not
 * register metrics; any thread. */
typedef double (*cv_gauge_fn)(void *arg);

/* Creates an empty registry. 0 or -ENOMEM; *out written on success. */
int cv_metrics_create(struct cv_metrics **out);
/* Frees the registry and every handle it gave. NULL is fine. */
void cv_metrics_destroy(struct cv_metrics *reg);

/*
 * Registers a series. name, help and labels are borrowed (copied). labels
 * may be NULL. Errors: -EINVAL (bad name or label name, `le` on a
 * histogram, a family registered with another type or help), -E2BIG (more
 * than 3 labels), -EEXIST (same name and labels already registered),
 * -ENOMEM. *out written on success only.
 */
int cv_metrics_counter(struct cv_metrics *reg, const char *name,
		       const char *help, const struct cv_metric_label *labels,
		       struct cv_counter **out);
int cv_metrics_gauge(struct cv_metrics *reg, const char *name, const char *help,
		     const struct cv_metric_label *labels,
		     struct cv_gauge **out);
/* A gauge whose value is fn(arg) at render time (arg borrowed for the
 * registry's life). */
int cv_metrics_gauge_fn(struct cv_metrics *reg, const char *name,
			const char *help, const struct cv_metric_label *labels,
			cv_gauge_fn fn, void *arg);
/* A counter whose value is fn(arg) at render time: for figures counted
 * elsewhere (e.g. per-worker single-writer counters) and summed here. */
int cv_metrics_counter_fn(struct cv_metrics *reg, const char *name,
			  const char *help,
			  const struct cv_metric_label *labels, cv_gauge_fn fn,
			  void *arg);
/*
 * A histogram with `nbounds` (1..CV_METRICS_MAX_BUCKETS) strictly
 * increasing upper bounds (copied; +Inf is implicit), in the unit its name
 * says (e.g. conclave_rtt_ms). -EINVAL on bad bounds.
 */
int cv_metrics_histogram(struct cv_metrics *reg, const char *name,
			 const char *help, const struct cv_metric_label *labels,
			 const uint64_t *bounds, size_t nbounds,
			 struct cv_histogram **out);

static inline void cv_counter_add(struct cv_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static inline void cv_counter_inc(struct cv_counter *c)
{
	cv_counter_add(c, 1);
}

static inline uint64_t cv_counter_get(const struct cv_counter *c)
{
	return atomic_load_explicit(&c->value, memory_order_relaxed);
}

static inline void cv_gauge_set(struct cv_gauge *g, int64_t v)
{
	atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

static inline void cv_gauge_add(struct cv_gauge *g, int64_t delta)
{
	atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}

static inline int64_t cv_gauge_get(const struct cv_gauge *g)
{
	return atomic_load_explicit(&g->value, memory_order_relaxed);
}

/* Records one observation: a bucket scan and two relaxed adds. */
void cv_histogram_observe(struct cv_histogram *h, uint64_t value);

/*
 * Renders every series (families in registration order) into a new
 * malloc'd, NUL-terminated buffer: *out (caller frees), *len without the
 * NUL. Values are read without stopping writers: a histogram's _count is
 * the sum of its buckets as read. 0 or -ENOMEM (nothing written).
 */
int cv_metrics_render(struct cv_metrics *reg, char **out, size_t *len);

#endif
