/* Types shared by bench.bpf.c and the C helpers in scripts/bench/native/. */
#ifndef BENCH_EVENT_H
#define BENCH_EVENT_H
#include <linux/types.h>

/* Value of the `values` hash map: 16 bytes. */
struct bench_value {
	__u64 packets;
	__u64 bytes;
};

/* One ring buffer event: 16 bytes (24 with the ring's record header). */
struct bench_event {
	__u64 seq;
	__u64 stamp;
};

#endif /* BENCH_EVENT_H */
