/* belt_kernel.h: the few kernel types belt's tracing programs read, declared
 * for CO-RE. libbpf relocates each field by name against the running
 * kernel's BTF, so these declarations need no particular layout and no
 * generated vmlinux.h (which would tie the build to one kernel). */
#ifndef BELT_KERNEL_H
#define BELT_KERNEL_H

#include <linux/types.h>

struct in6_addr___belt {
	__u8 s6_addr[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr___belt skc_v6_daddr;
	struct in6_addr___belt skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

/* The source port as the wire carries it: inet_sport is set when connect()
 * picks the port, while skc_num can read 0 around state changes. */
struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

/* TCP states (include/net/tcp_states.h). */
#define BELT_TCP_ESTABLISHED 1
#define BELT_TCP_SYN_SENT 2
#define BELT_TCP_CLOSE 7

#endif /* BELT_KERNEL_H */
