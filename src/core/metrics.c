/*
 * Metrics registry. Registration and rendering take `lock`; updates touch
 * only the atomics inside a series, so they never wait.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/metrics.h"

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_GAUGE_FN,
	METRIC_COUNTER_FN,
	METRIC_HISTOGRAM,
};

struct cv_histogram {
	size_t nbounds;
	uint64_t bounds[CV_METRICS_MAX_BUCKETS];
	/* Per bucket, not cumulative; [nbounds] is +Inf. */
	_Atomic uint64_t counts[CV_METRICS_MAX_BUCKETS + 1];
	_Atomic uint64_t sum;
};

struct series {
	/* First: the handles given out point here, 64-byte aligned. */
	union {
		struct cv_counter counter;
		struct cv_gauge gauge;
	};
	struct cv_histogram hist;
	cv_gauge_fn fn;
	void *fn_arg;
	size_t nlabels;
	char *label_names[CV_METRICS_MAX_LABELS];
	char *label_values[CV_METRICS_MAX_LABELS];
	struct series *next;
};

struct family {
	char *name;
	char *help;
	enum metric_type type;
	struct series *head, **tail;
};

struct cv_metrics {
	pthread_mutex_t lock; /* guards families, nfamilies, cap, series */
	struct family **families;
	size_t nfamilies, cap;
};

int cv_metrics_create(struct cv_metrics **out)
{
	struct cv_metrics *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return -ENOMEM;
	pthread_mutex_init(&reg->lock, NULL);
	*out = reg;
	return 0;
}

static void series_free(struct series *s)
{
	for (size_t i = 0; i < s->nlabels; i++) {
		free(s->label_names[i]);
		free(s->label_values[i]);
	}
	free(s);
}

void cv_metrics_destroy(struct cv_metrics *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->nfamilies; i++) {
		struct family *f = reg->families[i];

		for (struct series *s = f->head, *next; s; s = next) {
			next = s->next;
			series_free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	free(reg->families);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' ||
		      (colon && c == ':')))
			return false;
	}
	return true;
}

/* Checks labels; returns their count or a negative errno. */
static int check_labels(const struct cv_metric_label *labels,
			enum metric_type type)
{
	int n = 0;

	for (; labels && labels[n].name; n++) {
		if (n == CV_METRICS_MAX_LABELS)
			return -E2BIG;
		if (!valid_name(labels[n].name, false) || !labels[n].value ||
		    strncmp(labels[n].name, "__", 2) == 0)
			return -EINVAL;
		if (type == METRIC_HISTOGRAM &&
		    strcmp(labels[n].name, "le") == 0)
			return -EINVAL;
		for (int j = 0; j < n; j++) {
			if (strcmp(labels[j].name, labels[n].name) == 0)
				return -EINVAL;
		}
	}
	return n;
}

static bool same_labels(const struct series *s,
			const struct cv_metric_label *labels, size_t n)
{
	if (s->nlabels != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s->label_names[i], labels[i].name) != 0 ||
		    strcmp(s->label_values[i], labels[i].value) != 0)
			return false;
	}
	return true;
}

static struct series *series_new(const struct cv_metric_label *labels, size_t n)
{
	size_t size = (sizeof(struct series) + 63) & ~(size_t)63;
	struct series *s = aligned_alloc(64, size);

	if (!s)
		return NULL;
	memset(s, 0, size);
	for (size_t i = 0; i < n; i++) {
		s->label_names[i] = strdup(labels[i].name);
		s->label_values[i] = strdup(labels[i].value);
		s->nlabels = i + 1;
		if (!s->label_names[i] || !s->label_values[i]) {
			series_free(s);
			return NULL;
		}
	}
	return s;
}

/* Finds or adds the family; lock held. */
static int get_family(struct cv_metrics *reg, const char *name,
		      const char *help, enum metric_type type,
		      struct family **out)
{
	struct family *f;

	for (size_t i = 0; i < reg->nfamilies; i++) {
		f = reg->families[i];
		if (strcmp(f->name, name) != 0)
			continue;
		if (f->type != type || strcmp(f->help, help) != 0)
			return -EINVAL;
		*out = f;
		return 0;
	}
	if (reg->nfamilies == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 16;
		struct family **fs = realloc(reg->families, cap * sizeof(*fs));

		if (!fs)
			return -ENOMEM;
		reg->families = fs;
		reg->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->name = strdup(name);
	f->help = strdup(help);
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		free(f);
		return -ENOMEM;
	}
	f->type = type;
	f->head = NULL;
	f->tail = &f->head;
	reg->families[reg->nfamilies++] = f;
	*out = f;
	return 0;
}

/* What a series starts with, set before any render can see it. */
struct series_init {
	cv_gauge_fn fn;
	void *fn_arg;
	const uint64_t *bounds;
	size_t nbounds;
};

static int add_series(struct cv_metrics *reg, const char *name,
		      const char *help, const struct cv_metric_label *labels,
		      enum metric_type type, const struct series_init *init,
		      struct series **out)
{
	struct family *f;
	struct series *s;
	int n, ret;

	if (!valid_name(name, true) || !help)
		return -EINVAL;
	n = check_labels(labels, type);
	if (n < 0)
		return n;
	pthread_mutex_lock(&reg->lock);
	ret = get_family(reg, name, help, type, &f);
	if (ret < 0)
		goto unlock;
	for (s = f->head; s; s = s->next) {
		if (same_labels(s, labels, (size_t)n)) {
			ret = -EEXIST;
			goto unlock;
		}
	}
	s = series_new(labels, (size_t)n);
	if (!s) {
		ret = -ENOMEM;
		goto unlock;
	}
	if (init) {
		s->fn = init->fn;
		s->fn_arg = init->fn_arg;
		s->hist.nbounds = init->nbounds;
		if (init->nbounds)
			memcpy(s->hist.bounds, init->bounds,
			       init->nbounds * sizeof(init->bounds[0]));
	}
	*f->tail = s;
	f->tail = &s->next;
	*out = s;
unlock:
	pthread_mutex_unlock(&reg->lock);
	return ret;
}

int cv_metrics_counter(struct cv_metrics *reg, const char *name,
		       const char *help, const struct cv_metric_label *labels,
		       struct cv_counter **out)
{
	struct series *s;
	int ret = add_series(reg, name, help, labels, METRIC_COUNTER, NULL, &s);

	if (ret == 0)
		*out = &s->counter;
	return ret;
}

int cv_metrics_gauge(struct cv_metrics *reg, const char *name, const char *help,
		     const struct cv_metric_label *labels,
		     struct cv_gauge **out)
{
	struct series *s;
	int ret = add_series(reg, name, help, labels, METRIC_GAUGE, NULL, &s);

	if (ret == 0)
		*out = &s->gauge;
	return ret;
}

int cv_metrics_gauge_fn(struct cv_metrics *reg, const char *name,
			const char *help, const struct cv_metric_label *labels,
			cv_gauge_fn fn, void *arg)
{
	struct series_init init = {.fn = fn, .fn_arg = arg};
	struct series *s;

	if (!fn)
		return -EINVAL;
	return add_series(reg, name, help, labels, METRIC_GAUGE_FN, &init, &s);
}

int cv_metrics_counter_fn(struct cv_metrics *reg, const char *name,
			  const char *help,
			  const struct cv_metric_label *labels, cv_gauge_fn fn,
			  void *arg)
{
	struct series_init init = {.fn = fn, .fn_arg = arg};
	struct series *s;

	if (!fn)
		return -EINVAL;
	return add_series(reg, name, help, labels, METRIC_COUNTER_FN, &init,
			  &s);
}

int cv_metrics_histogram(struct cv_metrics *reg, const char *name,
			 const char *help, const struct cv_metric_label *labels,
			 const uint64_t *bounds, size_t nbounds,
			 struct cv_histogram **out)
{
	struct series *s;
	int ret;

	if (nbounds == 0 || nbounds > CV_METRICS_MAX_BUCKETS || !bounds)
		return -EINVAL;
	for (size_t i = 1; i < nbounds; i++) {
		if (bounds[i] <= bounds[i - 1])
			return -EINVAL;
	}
	struct series_init init = {.bounds = bounds, .nbounds = nbounds};

	ret = add_series(reg, name, help, labels, METRIC_HISTOGRAM, &init, &s);
	if (ret < 0)
		return ret;
	*out = &s->hist;
	return 0;
}

void cv_histogram_observe(struct cv_histogram *h, uint64_t value)
{
	size_t i = 0;

	while (i < h->nbounds && value > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
}

/* Exposition format 0.0.4: HELP escapes \ and newline; label values also
 * escape the double quote. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* `{a="x",b="y"` plus le when given, then `}`; nothing without labels. */
static void put_labels(FILE *f, const struct series *s, const char *le)
{
	const char *sep = "{";

	for (size_t i = 0; i < s->nlabels; i++) {
		fprintf(f, "%s%s=\"", sep, s->label_names[i]);
		put_escaped(f, s->label_values[i], true);
		fputc('"', f);
		sep = ",";
	}
	if (le)
		fprintf(f, "%sle=\"%s\"", sep, le);
	if (s->nlabels || le)
		fputc('}', f);
}

static void put_double(FILE *f, double v)
{
	char buf[40];

	if (isnan(v)) {
		fputs("NaN", f);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", f);
		return;
	}
	/* The shortest of %.15g / %.17g that reads back exactly. */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, f);
}

static void render_histogram(FILE *f, const struct family *fam,
			     const struct series *s)
{
	const struct cv_histogram *h = &s->hist;
	uint64_t cum = 0;
	char le[24];

	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += atomic_load_explicit(&h->counts[i],
					    memory_order_relaxed);
		if (i < h->nbounds)
			snprintf(le, sizeof(le), "%" PRIu64, h->bounds[i]);
		else
			strcpy(le, "+Inf");
		fprintf(f, "%s_bucket", fam->name);
		put_labels(f, s, le);
		fprintf(f, " %" PRIu64 "\n", cum);
	}
	fprintf(f, "%s_sum", fam->name);
	put_labels(f, s, NULL);
	fprintf(f, " %" PRIu64 "\n", atomic_load(&h->sum));
	fprintf(f, "%s_count", fam->name);
	put_labels(f, s, NULL);
	fprintf(f, " %" PRIu64 "\n", cum);
}

static void render_family(FILE *f, const struct family *fam)
{
	static const char *const types[] = {
		[METRIC_COUNTER] = "counter",
		[METRIC_GAUGE] = "gauge",
		[METRIC_GAUGE_FN] = "gauge",
		[METRIC_COUNTER_FN] = "counter",
		[METRIC_HISTOGRAM] = "histogram",
	};

	fprintf(f, "# HELP %s ", fam->name);
	put_escaped(f, fam->help, false);
	fprintf(f, "\n# TYPE %s %s\n", fam->name, types[fam->type]);
	for (const struct series *s = fam->head; s; s = s->next) {
		if (fam->type == METRIC_HISTOGRAM) {
			render_histogram(f, fam, s);
			continue;
		}
		fputs(fam->name, f);
		put_labels(f, s, NULL);
		fputc(' ', f);
		if (fam->type == METRIC_COUNTER)
			fprintf(f, "%" PRIu64, cv_counter_get(&s->counter));
		else if (fam->type == METRIC_GAUGE)
			fprintf(f, "%" PRId64, cv_gauge_get(&s->gauge));
		else
			put_double(f, s->fn ? s->fn(s->fn_arg) : NAN);
		fputc('\n', f);
	}
}

int cv_metrics_render(struct cv_metrics *reg, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int ret = 0;

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->nfamilies; i++)
		render_family(f, reg->families[i]);
	pthread_mutex_unlock(&reg->lock);
	if (ferror(f))
		ret = -ENOMEM;
	if (fclose(f) != 0)
		ret = -ENOMEM;
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = n;
	return 0;
}
