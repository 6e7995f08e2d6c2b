/* connect.h: what the connect tracer (connect.bpf.c) shares with
 * TypeScript (plugins/connect/layout.ts; tests/connect_layout_test.ts
 * checks both against the object's BTF). */
#ifndef BELT_CONNECT_H
#define BELT_CONNECT_H

#include <linux/types.h>

/* Which programs see an attempt begin (the loader loads one set). */
#define CT_HOOK_KPROBE     1
#define CT_HOOK_FENTRY     2
#define CT_HOOK_TRACEPOINT 3

/* ct_event.kind */
#define CT_KIND_CONNECT 1 /* an outbound attempt ended (outcome says how) */
#define CT_KIND_ACCEPT  2 /* a process accepted an inbound connection */
#define CT_KIND_CLOSE   3 /* a connection closed: bytes and lifetime */

/* ct_event.outcome of a connect; bit (1 << outcome) in ct_filter.outcomes */
#define CT_ESTABLISHED 1 /* the handshake completed */
#define CT_REFUSED     2 /* the peer answered the SYN with a RST */
#define CT_TIMEOUT     3 /* no answer after the SYN retries */
#define CT_ERROR       4 /* connect() failed, or an ICMP error ended it: see error */
#define CT_ABORTED     5 /* closed by its owner before the handshake finished */
#define CT_CLOSED      6 /* accept and close events */

#define CT_MAX_NETS  8
#define CT_MAX_PORTS 8

/* One record per event. Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d;
 * src -> dst is the direction the connection was opened in (for an accept,
 * src is the remote client). */
struct ct_event {
	__u64 ts_ns;          /* CLOCK_MONOTONIC when belt saw it */
	__u64 latency_ns;     /* connect: SYN sent to outcome; accept: time in the
	                         accept queue; close: established to closed */
	__u64 cgroup_id;      /* cgroup v2 id of the owner */
	__u64 bytes_sent;     /* close: bytes the peer acknowledged */
	__u64 bytes_received; /* close: bytes received */
	__u32 pid;            /* owner: the process that connected or accepted */
	__u32 tid;
	__u32 uid;
	__u32 netns;          /* inode of the socket's network namespace */
	__u32 context_pid;    /* the task running when the outcome was seen
	                         (softirq runs on whichever task it interrupted) */
	__s32 error;          /* errno, positive; 0 when none */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;         /* AF_INET or AF_INET6 (of the socket) */
	__u8 kind;            /* CT_KIND_* */
	__u8 outcome;         /* CT_* */
	__u8 hook;            /* CT_HOOK_* that saw it begin */
	__u8 pad[7];
	char comm[16];
};

struct ct_net {
	__u8 addr[16];        /* network address, IPv4 mapped */
	__u8 len;             /* prefix length over the 128 bits */
	__u8 pad[3];
};

/* Kernel-side filters; a zero field does not filter. */
struct ct_filter {
	__u32 pid;
	__u32 uid;            /* matched when has_uid is set (uid 0 is a uid) */
	__u8 has_uid;
	__u8 nports;
	__u8 nnets;
	__u8 pad;
	__u32 outcomes;       /* connect events: bit (1 << outcome); 0: all */
	__u16 ports[CT_MAX_PORTS]; /* destination port */
	char comm[16];
	struct ct_net nets[CT_MAX_NETS]; /* destination address */
};

#endif /* BELT_CONNECT_H */
