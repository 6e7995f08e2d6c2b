/* belt_packet.h: bounds-checked packet cursor and header parser for belt
 * eBPF programs, usable from XDP (struct xdp_md) and TC (struct __sk_buff),
 * and from socket filters with BELT_CURSOR_LOAD_BYTES (see below).
 *
 * Every byte is reached through belt_cursor_take(), which compares against
 * data_end before handing out a pointer; that comparison is what lets the
 * verifier prove each load. Programs without direct packet access define
 * BELT_CURSOR_LOAD_BYTES before including this file: take() then copies
 * each header with bpf_skb_load_bytes(), and belt_parse() is the same code,
 * with the same result for the same frame.
 *
 * belt_parse() walks Ethernet, up to two VLAN tags, IPv4 (with options) or
 * IPv6 (with extension headers), then TCP, UDP, ICMP or ICMPv6, and fills a
 * struct belt_packet. Rules for readers of the result:
 *   - every field starts at zero and is written only once the header that
 *     holds it is wholly inside the packet, so a field is either zero or
 *     right, never a guess from a cut header;
 *   - a layer flag (BELT_F_L2/L3/L4) is set once that layer is complete;
 *     trust a layer's fields only when its flag is set;
 *   - BELT_F_STOPPED bits say why parsing ended early, so a caller can
 *     apply its own policy (e.g. drop truncated or malformed packets).
 *
 * VLAN offload: a tag the NIC or stack has stripped (skb->vlan_tci in TC,
 * hardware stripping before XDP) is not in the packet data, so it is not
 * seen here; in TC, belt_skb_vlan() adds it back to the result.
 */
#ifndef BELT_PACKET_H
#define BELT_PACKET_H

#include "belt.h"
#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>

/* IPv6 extension headers followed before giving up (BELT_F_EXT_LIMIT). */
#define BELT_IPV6_MAX_EXT 6

/* Status bits in belt_packet.flags. */
#define BELT_F_L2         (1u << 0)  /* Ethernet + VLAN tags read: macs, eth_proto, l3_off */
#define BELT_F_VLAN       (1u << 1)  /* at least one 802.1Q/802.1AD tag: vlan_outer */
#define BELT_F_QINQ       (1u << 2)  /* a second tag: vlan_inner */
#define BELT_F_L3         (1u << 3)  /* IPv4 header + options, or IPv6 header + whole extension
                                      * chain, read: ip_version, ttl, ip_len, addrs, l4_proto */
#define BELT_F_L3_EXT     (1u << 4)  /* IPv4 options or IPv6 extension headers present */
#define BELT_F_FRAGMENT   (1u << 5)  /* piece of a fragmented datagram: frag_id, frag_off */
#define BELT_F_FIRST_FRAG (1u << 6)  /* fragment at offset 0; without it a fragment has no L4 header */
#define BELT_F_MORE_FRAGS (1u << 7)  /* more-fragments bit set: not the last piece */
#define BELT_F_L4         (1u << 8)  /* TCP/UDP/ICMP/ICMPv6 header read: l4_hdr_len, ports or type/code */
#define BELT_F_TRUNCATED  (1u << 9)  /* a header runs past data_end: parsing stopped there */
#define BELT_F_MALFORMED  (1u << 10) /* impossible header (wrong IP version, IHL<5, doff<5, ...) */
#define BELT_F_EXT_LIMIT  (1u << 11) /* more than BELT_IPV6_MAX_EXT IPv6 extension headers */
#define BELT_F_SHORT      (1u << 12) /* IP length field reaches past data_end: payload cut in XDP,
                                      * or merely a non-linear skb in TC (see bpf_skb_pull_data) */

/* Parsing ended before the packet's last header. */
#define BELT_F_STOPPED (BELT_F_TRUNCATED | BELT_F_MALFORMED | BELT_F_EXT_LIMIT)

/* Summary of one packet. All fields naturally aligned, no implicit padding
 * (checked below), so user space can read it as plain bytes. Multi-byte
 * numbers are host order; MACs and addresses stay in wire order.
 * Addresses are 16 bytes: IPv6 as is, IPv4 in IPv4-mapped form
 * ::ffff:a.b.c.d (bytes 10-11 = 0xff, bytes 12-15 = the IPv4 address), so
 * one layout (and one LPM key) serves both families. */
struct belt_packet {
	__u32 flags;        /*  0: BELT_F_* status bits */
	__u32 ip_len;       /*  4: length the IP header states: IPv4 total length, IPv6
	                     *     40 + payload length (so 40 for a jumbogram); 32 bits
	                     *     because the IPv6 value can exceed 65535 */
	__u16 eth_proto;    /*  8: EtherType after the VLAN tags (0x0800, 0x86dd, 0x0806...) */
	__u16 vlan_outer;   /* 10: VLAN id (12 bits) of the first (outer) tag */
	__u16 vlan_inner;   /* 12: VLAN id of the second tag (QinQ) */
	__u16 l3_off;       /* 14: offset of the L3 header from the frame start */
	__u16 l4_off;       /* 16: offset of the L4 header (set even for protocols not
	                     *     parsed, e.g. GRE); 0 if not IP, a non-first fragment,
	                     *     or parsing stopped before the L4 start was found */
	__u16 frag_off;     /* 18: fragment offset in bytes */
	__u8  dst_mac[6];   /* 20 */
	__u8  src_mac[6];   /* 26 */
	__u8  src_addr[16]; /* 32: source address, see above */
	__u8  dst_addr[16]; /* 48: destination address */
	__u32 frag_id;      /* 64: IPv4 identification (16 bits) or IPv6 fragment id */
	__u16 src_port;     /* 68: TCP/UDP source port */
	__u16 dst_port;     /* 70: TCP/UDP destination port */
	__u8  ip_version;   /* 72: 4 or 6 */
	__u8  l4_proto;     /* 73: IPPROTO_* after any IPv6 extension headers; for a
	                     *     non-first IPv6 fragment, the fragment header's next header */
	__u8  l4_hdr_len;   /* 74: TCP doff*4, UDP 8, ICMP/ICMPv6 8 */
	__u8  tcp_flags;    /* 75: TCP flag byte (FIN 0x01 ... CWR 0x80) */
	__u8  icmp_type;    /* 76: ICMP or ICMPv6 type */
	__u8  icmp_code;    /* 77: ICMP or ICMPv6 code */
	__u8  ttl;          /* 78: IPv4 TTL or IPv6 hop limit */
	__u8  vlan_count;   /* 79: VLAN tags read (0-2) */
} __attribute__((aligned(8))); /* so the stack copy may be zeroed with 8-byte stores */

/* 80 bytes = the sum of the field sizes: no hidden padding anywhere. */
_Static_assert(sizeof(struct belt_packet) == 80, "belt_packet layout changed");
_Static_assert(__builtin_offsetof(struct belt_packet, src_addr) == 32, "belt_packet layout changed");
_Static_assert(__builtin_offsetof(struct belt_packet, vlan_count) == 79, "belt_packet layout changed");

#ifndef BELT_CURSOR_LOAD_BYTES

/* Direct packet access (XDP, TC): positions are packet pointers. */
typedef void *belt_pos_t;

struct belt_cursor {
	belt_pos_t pos; /* next unread byte */
	belt_pos_t end; /* data_end: first byte past the packet */
};

static __always_inline void belt_cursor_init(struct belt_cursor *c, void *data, void *data_end)
{
	c->pos = data;
	c->end = data_end;
}

static __always_inline void belt_cursor_init_xdp(struct belt_cursor *c, struct xdp_md *ctx)
{
	belt_cursor_init(c, (void *)(long)ctx->data, (void *)(long)ctx->data_end);
}

static __always_inline void belt_cursor_init_skb(struct belt_cursor *c, struct __sk_buff *skb)
{
	belt_cursor_init(c, (void *)(long)skb->data, (void *)(long)skb->data_end);
}

/* Return a pointer to the next len bytes and step past them, or NULL (and
 * no step) if the packet is shorter. len must be a constant: only then does
 * the check against end tell the verifier that p has len readable bytes. */
static __always_inline void *belt_cursor_take(struct belt_cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

/* Step over len bytes (may be variable, but the verifier must see a bound,
 * e.g. from a mask) without reading them. Returns 0, or -1 (and no step)
 * if the packet is shorter. Read what follows with belt_cursor_take(). */
static __always_inline int belt_cursor_skip(struct belt_cursor *c, __u32 len)
{
	return belt_cursor_take(c, len) ? 0 : -1;
}

#else /* BELT_CURSOR_LOAD_BYTES */

/* Load-bytes cursor, for programs without direct packet access (socket
 * filters, BPF_PROG_TYPE_SOCKET_FILTER): define BELT_CURSOR_LOAD_BYTES
 * before including this file and call belt_cursor_init_skb(); belt_parse()
 * and everything above it read the same way. Positions are byte offsets
 * from skb->data (the Ethernet header on an AF_PACKET socket), and take()
 * copies the header with bpf_skb_load_bytes(), which also reads paged
 * (non-linear) skb data, into a scratch slot of the cursor on the stack.
 *
 * Slots rotate, so a header pointer stays valid until BELT_SCRATCH_SLOTS
 * more takes: belt_parse() keeps at most three alive (Ethernet + two VLAN
 * tags). skip() copies nothing, so it never overwrites a slot. */
#define BELT_SCRATCH_SLOTS 4  /* a power of two */
#define BELT_SCRATCH_SIZE  40 /* largest header taken whole: IPv6 */

typedef __u32 belt_pos_t;

struct belt_cursor {
	belt_pos_t pos;          /* offset of the next unread byte */
	belt_pos_t end;          /* skb->len: first offset past the packet */
	struct __sk_buff *skb;
	__u32 slot;              /* scratch slot of the next take */
	__u16 meta_vid;          /* VLAN id of the tag in skb metadata */
	__u8  meta_tags;         /* 1 if skb->vlan_tci holds the outer tag */
	__u8  pad;
	__u8  scratch[BELT_SCRATCH_SLOTS][BELT_SCRATCH_SIZE];
};

/* The stack (AF_PACKET receive, TC) has usually moved the outer VLAN tag of
 * a received frame into skb->vlan_tci: it is not in the data, and the data
 * offsets reported by belt_parse() are those of the frame without it, i.e.
 * the bytes the socket reader gets. belt_parse() counts the metadata tag as
 * the outer one, so the VLAN fields are those of the wire frame. */
static __always_inline void belt_cursor_init_skb(struct belt_cursor *c, struct __sk_buff *skb)
{
	c->pos = 0;
	c->end = skb->len;
	c->skb = skb;
	c->slot = 0;
	c->meta_tags = skb->vlan_present ? 1 : 0;
	c->meta_vid = skb->vlan_tci & 0x0fff;
	c->pad = 0;
}

/* Copy the next len bytes (a constant, at most BELT_SCRATCH_SIZE) into the
 * next scratch slot and step past them; NULL (and no step) if the packet is
 * shorter. */
static __always_inline void *belt_cursor_take(struct belt_cursor *c, __u32 len)
{
	void *p = c->scratch[c->slot & (BELT_SCRATCH_SLOTS - 1)];

	if (len > BELT_SCRATCH_SIZE || c->pos + len > c->end)
		return NULL;
	if (bpf_skb_load_bytes(c->skb, c->pos, p, len))
		return NULL;
	c->slot++;
	c->pos += len;
	return p;
}

/* Step over len bytes without reading them (any len). */
static __always_inline int belt_cursor_skip(struct belt_cursor *c, __u32 len)
{
	if (c->pos + len > c->end)
		return -1;
	c->pos += len;
	return 0;
}

#endif /* BELT_CURSOR_LOAD_BYTES */

/* Wire layouts we need that uapi headers lack or declare with bitfields. */
/* A network-order length in host order, with bounds the verifier keeps: the
 * 6.1 verifier forgets a register's bounds across a byte swap and then
 * refuses pointer arithmetic with it (found by scripts/vm-test.sh). The mask
 * after the swap restores them; barrier_var() keeps clang from dropping it. */
static __always_inline __u32 belt_ntohs_bounded(__be16 v)
{
	__u32 x = bpf_ntohs(v);

	barrier_var(x);
	return x & 0xffff;
}

struct belt_vlan_hdr { __be16 tci; __be16 proto; };
struct belt_ipv4_hdr {
	__u8 ver_ihl, tos; __be16 tot_len, id, frag_off;
	__u8 ttl, protocol; __be16 check; __be32 saddr, daddr;
};
struct belt_ipv6_hdr {
	__be32 ver_tc_flow; __be16 payload_len; __u8 nexthdr, hop_limit;
	__u8 saddr[16], daddr[16];
};
struct belt_ext_hdr { __u8 nexthdr, hdrlen; __u8 data[6]; }; /* hop/routing/dstopts */
struct belt_frag_hdr { __u8 nexthdr, reserved; __be16 frag_off; __be32 id; };
struct belt_tcp_hdr {
	__be16 sport, dport; __be32 seq, ack_seq; __u8 doff_res, flags; __be16 window, check, urg;
};
struct belt_udp_hdr { __be16 sport, dport, len, check; };
struct belt_icmp_hdr { __u8 type, code; __be16 check; __be32 rest; }; /* v4 and v6 */

#ifdef BELT_CURSOR_LOAD_BYTES
/* Every header belt_parse() takes fits a scratch slot (take() would fail). */
_Static_assert(sizeof(struct belt_ipv6_hdr) <= BELT_SCRATCH_SIZE, "scratch slot too small");
_Static_assert(sizeof(struct belt_tcp_hdr) <= BELT_SCRATCH_SIZE, "scratch slot too small");
_Static_assert(sizeof(struct ethhdr) <= BELT_SCRATCH_SIZE, "scratch slot too small");
#endif

static __always_inline void belt_parse_l4(struct belt_cursor *c, struct belt_packet *pkt,
					  __u8 proto, __u8 icmp_proto)
{
	if (proto == IPPROTO_TCP) {
		struct belt_tcp_hdr *th = belt_cursor_take(c, sizeof(*th));
		__u32 hlen;

		if (!th) {
			pkt->flags |= BELT_F_TRUNCATED;
			return;
		}
		hlen = (th->doff_res >> 4) * 4;
		if (hlen < sizeof(*th)) {
			pkt->flags |= BELT_F_MALFORMED;
			return;
		}
		/* Options: hlen - 20 is in [0, 40], a bound the verifier sees. */
		if (belt_cursor_skip(c, hlen - sizeof(*th))) {
			pkt->flags |= BELT_F_TRUNCATED;
			return;
		}
		pkt->src_port = bpf_ntohs(th->sport);
		pkt->dst_port = bpf_ntohs(th->dport);
		pkt->tcp_flags = th->flags;
		pkt->l4_hdr_len = hlen;
	} else if (proto == IPPROTO_UDP) {
		struct belt_udp_hdr *uh = belt_cursor_take(c, sizeof(*uh));

		if (!uh) {
			pkt->flags |= BELT_F_TRUNCATED;
			return;
		}
		pkt->src_port = bpf_ntohs(uh->sport);
		pkt->dst_port = bpf_ntohs(uh->dport);
		pkt->l4_hdr_len = sizeof(*uh);
	} else if (proto == icmp_proto) {
		/* Every ICMP/ICMPv6 message has at least these 8 bytes. */
		struct belt_icmp_hdr *ih = belt_cursor_take(c, sizeof(*ih));

		if (!ih) {
			pkt->flags |= BELT_F_TRUNCATED;
			return;
		}
		pkt->icmp_type = ih->type;
		pkt->icmp_code = ih->code;
		pkt->l4_hdr_len = sizeof(*ih);
	} else {
		return; /* other protocol: l4_off/l4_proto say where and what */
	}
	pkt->flags |= BELT_F_L4;
}

/* belt_parse_ipv4/ipv6 return the L4 protocol to parse next, or -1 to stop. */
static __always_inline int belt_parse_ipv4(struct belt_cursor *c, struct belt_packet *pkt,
					   __u32 off)
{
	belt_pos_t at = c->pos; /* where the header starts, for the length check */
	struct belt_ipv4_hdr *ip = belt_cursor_take(c, sizeof(*ip));
	__u32 hlen, tot_len, frag;

	if (!ip) {
		pkt->flags |= BELT_F_TRUNCATED;
		return -1;
	}
	hlen = (ip->ver_ihl & 0x0f) * 4;
	tot_len = belt_ntohs_bounded(ip->tot_len);
	/* tot_len 0 is let through: IPv4 BIG TCP GSO skbs carry it in TC. */
	if ((ip->ver_ihl >> 4) != 4 || hlen < sizeof(*ip) || (tot_len && tot_len < hlen)) {
		pkt->flags |= BELT_F_MALFORMED;
		return -1;
	}
	if (belt_cursor_skip(c, hlen - sizeof(*ip))) { /* options, [0, 40] bytes */
		pkt->flags |= BELT_F_TRUNCATED;
		return -1;
	}

	pkt->ip_version = 4;
	pkt->ttl = ip->ttl;
	pkt->ip_len = tot_len;
	pkt->l4_proto = ip->protocol;
	pkt->src_addr[10] = pkt->src_addr[11] = 0xff;
	pkt->dst_addr[10] = pkt->dst_addr[11] = 0xff;
	__builtin_memcpy(&pkt->src_addr[12], &ip->saddr, 4);
	__builtin_memcpy(&pkt->dst_addr[12], &ip->daddr, 4);
	pkt->flags |= BELT_F_L3;
	if (hlen > sizeof(*ip))
		pkt->flags |= BELT_F_L3_EXT;
	/* Only compared, never dereferenced, so the large offset is fine. */
	if (at + tot_len > c->end)
		pkt->flags |= BELT_F_SHORT;

	frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x3fff) { /* MF or a non-zero offset */
		pkt->flags |= BELT_F_FRAGMENT;
		pkt->frag_id = bpf_ntohs(ip->id);
		pkt->frag_off = (frag & 0x1fff) * 8;
		if (frag & 0x2000)
			pkt->flags |= BELT_F_MORE_FRAGS;
		if (pkt->frag_off)
			return -1; /* later fragment: payload is not an L4 header */
		pkt->flags |= BELT_F_FIRST_FRAG;
	}
	pkt->l4_off = off + hlen;
	return ip->protocol;
}

static __always_inline int belt_ipv6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT;
}

static __always_inline int belt_parse_ipv6(struct belt_cursor *c, struct belt_packet *pkt,
					   __u32 off)
{
	belt_pos_t at = c->pos;
	struct belt_ipv6_hdr *ip6 = belt_cursor_take(c, sizeof(*ip6));
	__u32 plen;
	__u8 nh, seen_frag = 0;

	if (!ip6) {
		pkt->flags |= BELT_F_TRUNCATED;
		return -1;
	}
	if ((ip6->ver_tc_flow & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000)) {
		pkt->flags |= BELT_F_MALFORMED;
		return -1;
	}
	plen = belt_ntohs_bounded(ip6->payload_len);
	pkt->ip_version = 6;
	pkt->ttl = ip6->hop_limit;
	pkt->ip_len = sizeof(*ip6) + plen;
	__builtin_memcpy(pkt->src_addr, ip6->saddr, 16);
	__builtin_memcpy(pkt->dst_addr, ip6->daddr, 16);
	if (plen && at + sizeof(*ip6) + plen > c->end)
		pkt->flags |= BELT_F_SHORT;

	off += sizeof(*ip6);
	nh = ip6->nexthdr;
#pragma unroll
	for (int i = 0; i < BELT_IPV6_MAX_EXT; i++) {
		if (nh == IPPROTO_FRAGMENT) {
			struct belt_frag_hdr *fh;
			__u32 frag;

			/* RFC 8200: one fragment header at most. A second would
			 * describe another datagram and mix up the frag fields. */
			if (seen_frag) {
				pkt->flags |= BELT_F_MALFORMED;
				return -1;
			}
			seen_frag = 1;
			fh = belt_cursor_take(c, sizeof(*fh));
			if (!fh) {
				pkt->flags |= BELT_F_TRUNCATED;
				return -1;
			}
			off += sizeof(*fh);
			nh = fh->nexthdr;
			frag = bpf_ntohs(fh->frag_off);
			pkt->flags |= BELT_F_L3_EXT;
			/* Offset 0 with M clear is an atomic fragment (RFC 6946):
			 * a whole datagram, so not flagged as a fragment. */
			if (frag & 0xfff9) {
				pkt->flags |= BELT_F_FRAGMENT;
				pkt->frag_id = bpf_ntohl(fh->id);
				pkt->frag_off = frag & 0xfff8; /* 8-byte units << 3 = bytes */
				if (frag & 1)
					pkt->flags |= BELT_F_MORE_FRAGS;
				if (pkt->frag_off) {
					pkt->l4_proto = nh;
					pkt->flags |= BELT_F_L3;
					return -1; /* later fragment: no L4 header */
				}
				pkt->flags |= BELT_F_FIRST_FRAG;
			}
		} else if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			struct belt_ext_hdr *eh;
			__u32 more;

			/* RFC 8200: hop-by-hop may only follow the IPv6 header. */
			if (nh == IPPROTO_HOPOPTS && i) {
				pkt->flags |= BELT_F_MALFORMED;
				return -1;
			}
			eh = belt_cursor_take(c, sizeof(*eh));
			if (!eh) {
				pkt->flags |= BELT_F_TRUNCATED;
				return -1;
			}
			more = eh->hdrlen * 8; /* length is (hdrlen + 1) * 8, first 8 taken */
			if (belt_cursor_skip(c, more)) {
				pkt->flags |= BELT_F_TRUNCATED;
				return -1;
			}
			off += sizeof(*eh) + more;
			nh = eh->nexthdr;
			pkt->flags |= BELT_F_L3_EXT;
		} else {
			break;
		}
	}
	if (belt_ipv6_is_ext(nh)) {
		pkt->flags |= BELT_F_EXT_LIMIT;
		return -1;
	}
	pkt->l4_proto = nh;
	pkt->l4_off = off;
	pkt->flags |= BELT_F_L3;
	return nh;
}

/* Parse the frame starting at c->pos into *pkt (fully overwritten).
 * Offsets are counted from the initial c->pos. On return c->pos is just
 * past the last header read: the L4 payload when BELT_F_L4 is set.
 * Returns pkt->flags. */
static __always_inline __u32 belt_parse(struct belt_cursor *c, struct belt_packet *pkt)
{
	struct ethhdr *eth;
	__u32 off = sizeof(*eth);
	__u16 vid[2] = {};
	__be16 proto;
	__u8 tags = 0;
	int l4 = -1;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	eth = belt_cursor_take(c, sizeof(*eth));
	if (!eth) {
		pkt->flags = BELT_F_TRUNCATED;
		return pkt->flags;
	}
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct belt_vlan_hdr *vh;

#ifdef BELT_CURSOR_LOAD_BYTES
		if (i + c->meta_tags >= 2) /* a metadata tag took one of the two places */
			break;
#endif
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = belt_cursor_take(c, sizeof(*vh));
		if (!vh) {
			pkt->flags = BELT_F_TRUNCATED;
			return pkt->flags;
		}
		vid[i] = bpf_ntohs(vh->tci) & 0x0fff;
		proto = vh->proto;
		off += sizeof(*vh);
		tags++;
	}
#ifdef BELT_CURSOR_LOAD_BYTES
	if (c->meta_tags) { /* the outer tag, moved to skb metadata: in front of the data tags */
		vid[1] = vid[0];
		vid[0] = c->meta_vid;
		tags++;
	}
#endif
	/* A third tag is left as eth_proto 0x8100/0x88a8 with no L3. */
	__builtin_memcpy(pkt->dst_mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(pkt->src_mac, eth->h_source, ETH_ALEN);
	pkt->eth_proto = bpf_ntohs(proto);
	pkt->vlan_outer = vid[0];
	pkt->vlan_inner = vid[1];
	pkt->vlan_count = tags;
	pkt->l3_off = off;
	pkt->flags = BELT_F_L2 | (tags ? BELT_F_VLAN : 0) | (tags > 1 ? BELT_F_QINQ : 0);

	if (proto == bpf_htons(ETH_P_IP))
		l4 = belt_parse_ipv4(c, pkt, off);
	else if (proto == bpf_htons(ETH_P_IPV6))
		l4 = belt_parse_ipv6(c, pkt, off);
	if (l4 >= 0)
		belt_parse_l4(c, pkt, l4, pkt->ip_version == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	return pkt->flags;
}

#ifndef BELT_CURSOR_LOAD_BYTES /* there belt_parse() does this itself */
/* TC only: the stack moves a frame's outer VLAN tag out of the packet data
 * into skb->vlan_tci before TC runs, so belt_parse() does not see it. Call
 * this after belt_parse() to make *pkt describe the frame as it was on the
 * wire: the metadata tag becomes the outer one, a tag parsed from the data
 * the inner one. */
static __always_inline void belt_skb_vlan(struct belt_packet *pkt, const struct __sk_buff *skb)
{
	if (!skb->vlan_present)
		return;
	pkt->vlan_inner = pkt->vlan_outer;
	pkt->vlan_outer = skb->vlan_tci & 0x0fff;
	pkt->flags |= BELT_F_VLAN | (pkt->vlan_count ? BELT_F_QINQ : 0);
	pkt->vlan_count += 1;
}
#endif

#endif /* BELT_PACKET_H */
