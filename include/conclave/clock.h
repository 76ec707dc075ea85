/*
 * The monotonic clock, injectable so that tests can step time.
 *
 * Workers read it once per loop iteration (struct cv_loop caches the value);
 * everything below a loop takes `now_ms` / `now_us` as a parameter instead
 * of reading the clock itself.
 */
#ifndef CONCLAVE_CLOCK_H
#define CONCLAVE_CLOCK_H

#include <stdint.h>

/* Source of monotonic microseconds; `arg` is passed back. */
typedef uint64_t (*cv_clock_source_fn)(void *arg);

/* Monotonic time in microseconds. Thread: any. */
uint64_t cv_clock_now_us(void);

static inline uint64_t cv_clock_now_ms(void)
{
	return cv_clock_now_us() / 1000;
}

/* Wall-clock milliseconds since the epoch (for logs and token expiry). */
uint64_t cv_clock_wall_ms(void);

/*
 * Replaces the monotonic source (NULL restores CLOCK_MONOTONIC). Tests only:
 * call before any thread reads the clock.
 */
void cv_clock_set_source(cv_clock_source_fn fn, void *arg);

#endif
