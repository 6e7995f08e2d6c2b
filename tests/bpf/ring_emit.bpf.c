/* One 16-byte event per run into a ring buffer, numbered: driven by
 * BPF_PROG_TEST_RUN with `repeat`, it makes exact, known event streams for
 * the ring buffer reader's tests (order, loss accounting, close). */
#include "belt.h"
#include "belt_events.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} small_ring SEC(".maps");

__u64 next_seq = 0;

SEC("tc")
int emit(struct __sk_buff *skb)
{
	__u64 *e = belt_event_reserve(&small_ring, 2 * sizeof(__u64));
	if (!e)
		return BELT_NEXT;
	e[0] = __sync_fetch_and_add(&next_seq, 1);
	e[1] = skb->len;
	bpf_ringbuf_submit(e, 0);
	return BELT_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
