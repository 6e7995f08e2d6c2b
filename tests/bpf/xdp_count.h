/* Value of the `counts` map in tests/bpf/xdp_count.bpf.c. */
#ifndef XDP_COUNT_H
#define XDP_COUNT_H
#include <linux/types.h>

struct proto_count {
	__u64 packets;
	__u64 bytes;
};
#endif
