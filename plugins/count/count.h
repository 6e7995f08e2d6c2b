/* Structs the count plugin shares with TypeScript (plugins/count/mod.ts);
 * tests/layout_test.ts proves the codecs match this layout. */
#ifndef BELT_COUNT_H
#define BELT_COUNT_H

#include <linux/types.h>

#define COUNT_INGRESS 0
#define COUNT_EGRESS 1

/* One counter per EtherType, IP protocol (0 when not IP) and direction. */
struct count_key {
	__u16 eth_proto;
	__u8 ip_proto;
	__u8 direction;
};

struct count_value {
	__u64 packets;
	__u64 bytes;
};

#endif
