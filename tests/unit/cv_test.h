/*
 * Minimal unit-test helpers: every check that fails prints where and why
 * and is counted; cv_test_done() turns the count into the exit status that
 * meson reads.
 */
#ifndef CV_TEST_H
#define CV_TEST_H

#include <stdio.h>
#include <string.h>
#include <inttypes.h>

static int cv_test_failures;
static int cv_test_checks;

#define CV_CHECK(cond)                                                         \
	do {                                                                   \
		cv_test_checks++;                                              \
		if (!(cond)) {                                                 \
			cv_test_failures++;                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CV_CHECK_INT(a, b)                                                     \
	do {                                                                   \
		long long cv_a_ = (long long)(a), cv_b_ = (long long)(b);      \
		cv_test_checks++;                                              \
		if (cv_a_ != cv_b_) {                                          \
			cv_test_failures++;                                    \
			fprintf(stderr,                                        \
				"%s:%d: %s == %lld, expected %s == %lld\n",    \
				__FILE__, __LINE__, #a, cv_a_, #b, cv_b_);     \
		}                                                              \
	} while (0)

#define CV_CHECK_MEM(a, b, n)                                                  \
	do {                                                                   \
		cv_test_checks++;                                              \
		if (memcmp((a), (b), (n)) != 0) {                              \
			cv_test_failures++;                                    \
			fprintf(stderr, "%s:%d: %s differs from %s\n",         \
				__FILE__, __LINE__, #a, #b);                   \
		}                                                              \
	} while (0)

#define CV_CHECK_STR(a, b)                                                     \
	do {                                                                   \
		const char *cv_a_ = (a), *cv_b_ = (b);                         \
		cv_test_checks++;                                              \
		if (!cv_a_ || !cv_b_ || strcmp(cv_a_, cv_b_) != 0) {           \
			cv_test_failures++;                                    \
			fprintf(stderr,                                        \
				"%s:%d: %s == \"%s\", expected \"%s\"\n",      \
				__FILE__, __LINE__, #a,                        \
				cv_a_ ? cv_a_ : "(null)",                      \
				cv_b_ ? cv_b_ : "(null)");                     \
		}                                                              \
	} while (0)

static inline int cv_test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, cv_test_checks,
	       cv_test_failures);
	return cv_test_failures ? 1 : 0;
}

#endif
