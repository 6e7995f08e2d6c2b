/* Shared bits of the bench's C helpers: a monotonic clock and bounded argument parsing. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* A non-negative integer argument no larger than `max`; exits on anything else. */
static inline unsigned long long arg_u64(const char *text, unsigned long long max, const char *what)
{
	char *end = NULL;
	unsigned long long v = strtoull(text, &end, 10);
	if (!end || *end || v > max) {
		fprintf(stderr, "bad %s: %s (0..%llu)\n", what, text, max);
		exit(2);
	}
	return v;
}
#endif /* BENCH_COMMON_H */
