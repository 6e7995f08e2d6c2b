/* Benchmark object (compiled at bench time by scripts/bench/compile.ts):
 * - `values`: the hash map (u32 key, 16-byte value) both belt and C hammer;
 * - `ring_big`, `ring_small`: ring buffers, filled by the TC programs
 *   `produce_big` / `produce_small`, one event per run, driven through
 *   BPF_PROG_TEST_RUN with repeat; failed reservations land in
 *   belt_events_lost (belt_events.h).
 * The producers are TC (SCHED_CLS), not XDP, on purpose: an XDP test run
 * with repeat > 1 re-points the kernel's XDP dispatcher twice, each time
 * waiting for an RCU grace period (~16 ms per call here), which would cap
 * a paced generator far below 100k events/s.
 *
 * Wakeups are batched: every WAKE_EVERY-th event, and any event whose input
 * packet starts with 1 (the generator's final "flush" run), wakes the reader;
 * the others are submitted with BPF_RB_NO_WAKEUP. With the kernel's default
 * (wake whenever the reader has caught up) a reader that keeps up is woken
 * for nearly every event, and on a VM those wakeups throttle the generator
 * by 10x in some runs and not in others. */
#include "belt.h"
#include "belt_events.h"
#include "bench_event.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct bench_value);
} values SEC(".maps");

/* Big enough to hold a whole burst: the drain-only phase fills it first. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} ring_big SEC(".maps");

/* A realistic size for the loss check: ~10k events, ~100 ms at 100k/s. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} ring_small SEC(".maps");

#define WAKE_EVERY 1024 /* a power of two */

/* One producer at a time (a test run is sequential): no atomics needed. */
__u64 next_seq = 0;

static __always_inline int produce(void *ring, struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	int flush = data + 1 <= end && *(__u8 *)data == 1;
	struct bench_event *e = belt_event_reserve(ring, sizeof(*e));
	if (!e)
		return BELT_PASS;
	e->seq = next_seq++;
	e->stamp = 0;
	if (flush || (e->seq & (WAKE_EVERY - 1)) == WAKE_EVERY - 1)
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return BELT_PASS;
}

SEC("tc")
int produce_big(struct __sk_buff *skb)
{
	return produce(&ring_big, skb);
}

SEC("tc")
int produce_small(struct __sk_buff *skb)
{
	return produce(&ring_small, skb);
}

char LICENSE[] SEC("license") = "GPL";
