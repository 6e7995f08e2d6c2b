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

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr___belt skc_v6_daddr;
	struct in6_addr___belt skc_v6_rcv_saddr;
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	int sk_err;
	__u16 sk_protocol; /* a u16 since 5.6; a bitfield before */
	__u16 sk_type;
	__u8 sk_shutdown; /* RCV_SHUTDOWN 1, SEND_SHUTDOWN 2; a bitfield before 4.x: read it probed */
} __attribute__((preserve_access_index));

/* Byte counts tcplife reports at close. */
struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 snd_una;
	__u32 write_seq;
} __attribute__((preserve_access_index));

/* From a file descriptor to its socket (current->files->fdt->fd[n]). */
struct socket {
	enum { BELT_SS_UNCONNECTED = 1 } state; /* socket_state */
	struct file *file;
	struct sock *sk;
} __attribute__((preserve_access_index));

struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

/* The source port as the wire carries it: inet_sport is set when connect()
 * picks the port, while skc_num can read 0 around state changes. */
struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

/* TCP states (include/net/tcp_states.h). */
#define BELT_TCP_ESTABLISHED 1
#define BELT_TCP_SYN_SENT 2
#define BELT_TCP_SYN_RECV 3
#define BELT_TCP_CLOSE 7

#endif /* BELT_KERNEL_H */
