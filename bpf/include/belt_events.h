/* belt_events.h: events to userspace through a ring buffer, with the
 * reservations that failed counted, so a reader can say what it lost.
 *
 * Declare the ring in your program, then:
 *   struct my_event *e = belt_event_reserve(&events, sizeof(*e));
 *   if (!e) return 0;            // counted in belt_events_lost
 *   ... fill e ...
 *   bpf_ringbuf_submit(e, 0);
 * RingBuffer.open(map, { lostCounter: obj.map("belt_events_lost") }) reads it. */
#ifndef BELT_EVENTS_H
#define BELT_EVENTS_H

#include "belt.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} belt_events_lost SEC(".maps");

static __always_inline void *belt_event_reserve(void *ring, __u64 size)
{
	void *event = bpf_ringbuf_reserve(ring, size, 0);
	if (!event) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&belt_events_lost, &zero);
		if (lost)
			*lost += 1; /* per-CPU slot: no atomic needed */
	}
	return event;
}

#endif /* BELT_EVENTS_H */
