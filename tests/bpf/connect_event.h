/* The event tests/bpf/connect_events.bpf.c sends for each TCP state change;
 * tests/bpf_layout_test.ts proves the TypeScript codec matches. */
#ifndef CONNECT_EVENT_H
#define CONNECT_EVENT_H

#include <linux/types.h>

struct connect_event {
	__u64 timestamp_ns;
	__u32 pid;
	__u32 tid;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 old_state;
	__u8 new_state;
	char comm[16];
};

#endif
