#include <time.h>

#include "conclave/clock.h"

static cv_clock_source_fn clock_source;
static void *clock_arg;

uint64_t cv_clock_now_us(void)
{
	if (clock_source)
		return clock_source(clock_arg);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t cv_clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cv_clock_set_source(cv_clock_source_fn fn, void *arg)
{
	clock_source = fn;
	clock_arg = arg;
}
