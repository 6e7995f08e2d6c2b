/* mirror.h: structs the mirror shares with user space (plugins/mirror/mod.ts
 * packs and reads them; tests/layout_test.ts checks the layouts). */
#ifndef MIRROR_H
#define MIRROR_H

#include <linux/types.h>

#define MIRROR_MAX_COLLECTORS 8
#define MIRROR_MAX_RULES 16
/* Largest copy handed to user space: the per-CPU staging buffer must stay
 * under the kernel's 32 KiB limit for per-CPU values. */
#define MIRROR_COPY_MAX 32736
/* skb->cb[0] of a copy on its way to belt's VXLAN device. */
#define MIRROR_CB_MAGIC 0xbe17c0deu

/* Where copies go: one VXLAN collector. */
struct mirror_collector {
	__u8  addr[16]; /*  0: IPv6, or IPv4-mapped ::ffff:a.b.c.d */
	__u32 ifindex;  /* 16: belt's external VXLAN device for this UDP port */
	__u32 vni;      /* 20: VXLAN network identifier (24 bits) */
	__u16 port;     /* 24: UDP destination port */
	__u8  ipv6;     /* 26: 1 when addr is IPv6 */
	__u8  pad0;     /* 27 */
	__u16 max_len;  /* 28: longest inner frame that fits the path MTU without
	                 *     fragmentation (IPv6 collectors; 0: no limit) */
	__u8  pad[2];   /* 30 */
};

/* Header of one copy in the `copies` ring buffer; cap_len frame bytes follow. */
struct mirror_record {
	__u64 ts_ns;     /*  0: CLOCK_MONOTONIC when the program saw it */
	__u32 wire_len;  /*  8: frame length, VLAN tag put back included */
	__u32 cap_len;   /* 12: bytes that follow */
	__u32 ifindex;   /* 16: interface the frame crossed */
	__u8  direction; /* 20: 1 in, 2 out (BELT_DIR_*) */
	__u8  pad[3];    /* 21 */
};

/* Per-CPU counters, index [0] ingress, [1] egress. */
struct mirror_stats {
	__u64 packets[2];        /*  0: frames seen */
	__u64 bytes[2];          /* 16 */
	__u64 mirrored[2];       /* 32: frames copied (passed filters and sampling) */
	__u64 mirrored_bytes[2]; /* 48 */
	__u64 filtered;          /* 64: matched no --filter rule */
	__u64 sampled_out;       /* 72: skipped by --sample */
	__u64 own_tunnel;        /* 80: belt's own VXLAN packets, never mirrored */
	__u64 pcap_copies;       /* 88: copies queued for user space */
	__u64 pcap_bytes;        /* 96 */
	__u64 pcap_lost;         /* 104: ring buffer full: copy lost */
	__u64 cut;               /* 112: copies shorter than the frame (snaplen, size limit) */
};

/* Per-CPU counters per collector and direction: index collector*2 + dir-1. */
struct mirror_collector_stats {
	__u64 packets;       /*  0: copies handed to the VXLAN device */
	__u64 bytes;         /*  8: their length before encapsulation */
	__u64 clone_failed;  /* 16: bpf_clone_redirect refused */
	__u64 tunnel_failed; /* 24: tunnel key refused: copy dropped */
	__u64 cut;           /* 32: copies cut to max_len or snaplen */
};

#endif /* MIRROR_H */
