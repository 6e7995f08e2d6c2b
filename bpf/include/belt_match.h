/* belt_match.h: one filter rule over a parsed packet (struct belt_packet),
 * shared by every plugin that filters (mirror, firewall, sniff) so that
 * "tcp dport 80 net 198.18.0.0/15" means the same thing everywhere.
 *
 * A rule is a conjunction: every condition whose BELT_M_* bit is set in
 * `fields` must hold. Plugins keep several rules and OR them. The
 * TypeScript side (plugins/rules.ts) parses the text form and packs this
 * struct; its layout is checked against this file's BTF by a test.
 *
 * Addresses use belt_packet's 16-byte form (IPv4 as ::ffff:a.b.c.d), so an
 * IPv4 prefix /n is stored as a /(96+n) and one compare serves both
 * families. Ports only match packets with a TCP or UDP header, and ICMP
 * type/code only packets with an ICMP or ICMPv6 header, so a non-first
 * fragment never matches either. MAC conditions need a complete Ethernet
 * header. */
#ifndef BELT_MATCH_H
#define BELT_MATCH_H

#include "belt_packet.h"

#define BELT_M_ETH   (1u << 0) /* eth_proto equals (EtherType after VLAN tags) */
#define BELT_M_L4    (1u << 1) /* l4_proto equals (needs a complete L3 header) */
#define BELT_M_DIR   (1u << 2) /* direction equals (BELT_DIR_IN or BELT_DIR_OUT) */
#define BELT_M_VLAN  (1u << 3) /* outer VLAN id equals vlan; 0xffff: any tagged frame */
#define BELT_M_SRC   (1u << 4) /* source address in src/src_len */
#define BELT_M_DST   (1u << 5) /* destination address in dst/dst_len */
#define BELT_M_ANY   (1u << 6) /* source or destination address in any/any_len */
#define BELT_M_SPORT (1u << 7) /* TCP/UDP source port in [sport_lo, sport_hi] */
#define BELT_M_DPORT (1u << 8) /* TCP/UDP destination port in [dport_lo, dport_hi] */
#define BELT_M_PORT  (1u << 9) /* source or destination port in [port_lo, port_hi] */
#define BELT_M_SMAC  (1u << 10) /* Ethernet source address equals src_mac */
#define BELT_M_DMAC  (1u << 11) /* Ethernet destination address equals dst_mac */
#define BELT_M_MAC   (1u << 12) /* Ethernet source or destination address equals any_mac */
#define BELT_M_ICMP_TYPE (1u << 13) /* ICMP/ICMPv6 header read and its type equals icmp_type */
#define BELT_M_ICMP_CODE (1u << 14) /* ICMP/ICMPv6 header read and its code equals icmp_code */

#define BELT_DIR_IN  1
#define BELT_DIR_OUT 2
#define BELT_VLAN_ANY 0xffff

struct belt_rule {
	__u32 fields;      /*  0: BELT_M_* conditions that apply */
	__u16 eth_proto;   /*  4 */
	__u8  l4_proto;    /*  6 */
	__u8  direction;   /*  7 */
	__u16 vlan;        /*  8 */
	__u16 sport_lo;    /* 10 */
	__u16 sport_hi;    /* 12 */
	__u16 dport_lo;    /* 14 */
	__u16 dport_hi;    /* 16 */
	__u16 port_lo;     /* 18 */
	__u16 port_hi;     /* 20 */
	__u8  src_len;     /* 22: prefix lengths in bits of the 128-bit form */
	__u8  dst_len;     /* 23 */
	__u8  any_len;     /* 24 */
	__u8  pad[7];      /* 25: zero */
	__u8  src[16];     /* 32: prefixes, bits past the length zero */
	__u8  dst[16];     /* 48 */
	__u8  any[16];     /* 64 */
	__u8  src_mac[6];  /* 80 */
	__u8  dst_mac[6];  /* 86 */
	__u8  any_mac[6];  /* 92 */
	__u8  icmp_type;   /* 98 */
	__u8  icmp_code;   /* 99 */
	__u8  pad2[4];     /* 100: zero */
};

_Static_assert(sizeof(struct belt_rule) == 104, "belt_rule layout changed");

static __always_inline __u64 belt_load_be64(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, 8);
	return bpf_be64_to_cpu(v);
}

/* The first `len` bits of addr equal prefix (whose other bits are zero). */
static __always_inline int belt_prefix_match(const __u8 *addr, const __u8 *prefix, __u8 len)
{
	__u32 hi_bits = len > 64 ? 64 : len;
	__u32 lo_bits = len > 64 ? len - 64 : 0;
	__u64 hi_mask = hi_bits ? ~0ULL << (64 - hi_bits) : 0;
	__u64 lo_mask = lo_bits ? ~0ULL << (64 - lo_bits) : 0;

	return (belt_load_be64(addr) & hi_mask) == belt_load_be64(prefix) &&
	       (belt_load_be64(addr + 8) & lo_mask) == belt_load_be64(prefix + 8);
}

static __always_inline int belt_mac_equal(const __u8 *a, const __u8 *b)
{
	__u32 a4, b4;
	__u16 a2, b2;

	__builtin_memcpy(&a4, a, 4);
	__builtin_memcpy(&b4, b, 4);
	__builtin_memcpy(&a2, a + 4, 2);
	__builtin_memcpy(&b2, b + 4, 2);
	return a4 == b4 && a2 == b2;
}

static __always_inline int belt_in_range(__u16 v, __u16 lo, __u16 hi)
{
	return v >= lo && v <= hi;
}

/* Does packet p, seen in direction dir, meet every condition of r? */
static __always_inline int belt_rule_match(const struct belt_rule *r,
					   const struct belt_packet *p, __u8 dir)
{
	__u32 f = r->fields;
	int has_ports;

	if ((f & BELT_M_DIR) && r->direction != dir)
		return 0;
	if ((f & BELT_M_ETH) && p->eth_proto != r->eth_proto)
		return 0;
	if ((f & BELT_M_VLAN) &&
	    (!(p->flags & BELT_F_VLAN) || (r->vlan != BELT_VLAN_ANY && p->vlan_outer != r->vlan)))
		return 0;
	if ((f & (BELT_M_SMAC | BELT_M_DMAC | BELT_M_MAC)) && !(p->flags & BELT_F_L2))
		return 0;
	if ((f & BELT_M_SMAC) && !belt_mac_equal(p->src_mac, r->src_mac))
		return 0;
	if ((f & BELT_M_DMAC) && !belt_mac_equal(p->dst_mac, r->dst_mac))
		return 0;
	if ((f & BELT_M_MAC) && !belt_mac_equal(p->src_mac, r->any_mac) &&
	    !belt_mac_equal(p->dst_mac, r->any_mac))
		return 0;
	if (f & (BELT_M_L4 | BELT_M_SRC | BELT_M_DST | BELT_M_ANY)) {
		if (!(p->flags & BELT_F_L3))
			return 0;
		if ((f & BELT_M_L4) && p->l4_proto != r->l4_proto)
			return 0;
		if ((f & BELT_M_SRC) && !belt_prefix_match(p->src_addr, r->src, r->src_len))
			return 0;
		if ((f & BELT_M_DST) && !belt_prefix_match(p->dst_addr, r->dst, r->dst_len))
			return 0;
		if ((f & BELT_M_ANY) && !belt_prefix_match(p->src_addr, r->any, r->any_len) &&
		    !belt_prefix_match(p->dst_addr, r->any, r->any_len))
			return 0;
	}
	if (f & (BELT_M_SPORT | BELT_M_DPORT | BELT_M_PORT)) {
		has_ports = (p->flags & BELT_F_L4) &&
			    (p->l4_proto == IPPROTO_TCP || p->l4_proto == IPPROTO_UDP);
		if (!has_ports)
			return 0;
		if ((f & BELT_M_SPORT) && !belt_in_range(p->src_port, r->sport_lo, r->sport_hi))
			return 0;
		if ((f & BELT_M_DPORT) && !belt_in_range(p->dst_port, r->dport_lo, r->dport_hi))
			return 0;
		if ((f & BELT_M_PORT) && !belt_in_range(p->src_port, r->port_lo, r->port_hi) &&
		    !belt_in_range(p->dst_port, r->port_lo, r->port_hi))
			return 0;
	}
	if (f & (BELT_M_ICMP_TYPE | BELT_M_ICMP_CODE)) {
		if (!(p->flags & BELT_F_L4) ||
		    (p->l4_proto != IPPROTO_ICMP && p->l4_proto != IPPROTO_ICMPV6))
			return 0;
		if ((f & BELT_M_ICMP_TYPE) && p->icmp_type != r->icmp_type)
			return 0;
		if ((f & BELT_M_ICMP_CODE) && p->icmp_code != r->icmp_code)
			return 0;
	}
	return 1;
}

#endif /* BELT_MATCH_H */
