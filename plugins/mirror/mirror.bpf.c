/* mirror: copies every frame crossing an interface, both directions, from L2,
 * to VXLAN collectors and/or to user space (pcapng). The original frame is
 * never changed: the program only reads it, clones it, and hands it on
 * (BELT_NEXT).
 *
 * Two stages for collectors, because a clone cannot be edited from the
 * program that made it:
 *   1. mirror_ingress / mirror_egress on the mirrored interface clone the
 *      frame to belt's external (collect_md) VXLAN device, with the
 *      collector's index in skb->cb;
 *   2. mirror_tunnel, on that device's egress, owns the clone: it sets the
 *      tunnel key (collector address, VNI), which also replaces the clone's
 *      route (shared with the original) by tunnel metadata, so an oversized
 *      copy can never lower the original flow's path MTU; and it applies
 *      --snaplen. The kernel's VXLAN code then encapsulates, puts a VLAN tag
 *      held in skb metadata back into the frame, picks the outer source port
 *      from the flow hash and fragments the outer packet when it exceeds the
 *      path MTU to the collector.
 * Copies for user space go through the `copies` ring buffer, with a VLAN tag
 * held in skb metadata put back. */
#include "belt_packet.h"
#include "belt_match.h"
#include "mirror.h"

#ifndef TC_ACT_OK
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#endif

const volatile __u32 n_collectors = 0;
const volatile __u32 n_rules = 0;
/* Not const: clang would fold reads through a non-volatile pointer to a
 * const array to its all-zero initializer. */
struct mirror_collector collectors[MIRROR_MAX_COLLECTORS] SEC(".data") = {};
struct belt_rule rules[MIRROR_MAX_RULES] SEC(".data") = {};
const volatile __u32 sample = 0;   /* keep 1 in `sample` frames (0, 1: all) */
const volatile __u32 snaplen = 0;  /* longest copy (0: whole frame) */
const volatile __u32 to_pcap = 0;  /* also copy to the ring buffer */
const volatile __u32 session = 0;  /* tells this run's copies from another's on a shared device */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mirror_stats);
} mirror_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIRROR_MAX_COLLECTORS * 2);
	__type(key, __u32);
	__type(value, struct mirror_collector_stats);
} collector_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* user space may resize before load */
} copies SEC(".maps");

/* Staging area for a copy: bpf_ringbuf_output() takes variable sizes,
 * bpf_ringbuf_reserve() does not. */
struct mirror_copy {
	struct mirror_record rec;
	__u8 data[MIRROR_COPY_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mirror_copy);
} staging SEC(".maps");

/* Queued bytes that make the ring buffer wake its reader (see copy_to_ring). */
#define MIRROR_WAKE_BYTES (256 << 10)

/* Headers the filters and the own-tunnel check read must be linear. */
#define MIRROR_PULL 128

/* belt's own VXLAN packets (to a collector's address and port, or a
 * non-first UDP fragment to a collector's address) are never mirrored:
 * otherwise a collector reached through the mirrored interface would loop. */
static __always_inline int own_tunnel(const struct belt_packet *p)
{
	int non_first = (p->flags & BELT_F_FRAGMENT) && !(p->flags & BELT_F_FIRST_FRAG);

	if (!(p->flags & BELT_F_L3) || p->l4_proto != IPPROTO_UDP)
		return 0;
	if (!non_first && !(p->flags & BELT_F_L4))
		return 0;
	for (__u32 i = 0; i < MIRROR_MAX_COLLECTORS; i++) {
		if (i >= n_collectors)
			break;
		if (!belt_prefix_match(p->dst_addr, collectors[i].addr, 128))
			continue;
		if (non_first || p->dst_port == collectors[i].port)
			return 1;
	}
	return 0;
}

static __always_inline int wanted(const struct belt_packet *p, __u8 dir)
{
	for (__u32 i = 0; i < MIRROR_MAX_RULES; i++) {
		if (i >= n_rules)
			break;
		if (belt_rule_match(&rules[i], p, dir))
			return 1;
	}
	return 0;
}

/* Separate 32-bit stores: the verifier refuses the merged 64-bit store
 * through a computed context pointer that clang would otherwise emit. */
static __always_inline void set_cb(struct __sk_buff *skb, __u32 a, __u32 b, __u32 c, __u32 d)
{
	skb->cb[0] = a;
	asm volatile("" ::: "memory");
	skb->cb[1] = b;
	asm volatile("" ::: "memory");
	skb->cb[2] = c;
	asm volatile("" ::: "memory");
	skb->cb[3] = d;
}

static __always_inline void copy_to_ring(struct __sk_buff *skb, __u8 dir, __u32 wire,
					 struct mirror_stats *st)
{
	__u32 zero = 0;
	struct mirror_copy *buf = bpf_map_lookup_elem(&staging, &zero);
	__u64 cap = wire;
	__u64 wake;
	int tagged = skb->vlan_present;

	if (!buf)
		return;
	if (snaplen && cap > snaplen)
		cap = snaplen;
	if (cap > MIRROR_COPY_MAX)
		cap = MIRROR_COPY_MAX;
	if (cap < 1)
		return;
	if (cap < wire)
		st->cut++;
	buf->rec.ts_ns = bpf_ktime_get_ns();
	buf->rec.wire_len = wire;
	buf->rec.cap_len = cap;
	buf->rec.ifindex = skb->ifindex;
	buf->rec.direction = dir;
	if (tagged && cap > 16) {
		/* The tag the stack keeps in skb metadata goes back after the MACs. */
		__u16 tci = bpf_htons(skb->vlan_tci);
		__u16 tpid = skb->vlan_proto;
		__u64 rest = cap - 16;

		if (bpf_skb_load_bytes(skb, 0, buf->data, 12))
			return;
		__builtin_memcpy(&buf->data[12], &tpid, 2);
		__builtin_memcpy(&buf->data[14], &tci, 2);
		if (rest > MIRROR_COPY_MAX - 16)
			return;
		if (bpf_skb_load_bytes(skb, 12, &buf->data[16], rest))
			return;
	} else {
		if (cap > skb->len)
			cap = skb->len;
		if (!belt_size_ok(&cap, MIRROR_COPY_MAX))
			return;
		buf->rec.cap_len = cap;
		if (bpf_skb_load_bytes(skb, 0, buf->data, cap))
			return;
	}
	/* Waking the reader per copy costs an interrupt each; wake it only once
	 * enough is queued, and let it poll on a short timer for the rest. */
	wake = bpf_ringbuf_query(&copies, BPF_RB_AVAIL_DATA) >= MIRROR_WAKE_BYTES ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&copies, buf, sizeof(buf->rec) + cap, wake)) {
		st->pcap_lost++;
		return;
	}
	st->pcap_copies++;
	st->pcap_bytes += cap;
}

static __always_inline int mirror(struct __sk_buff *skb, __u8 dir)
{
	__u32 zero = 0, d = dir - 1;
	struct mirror_stats *st = bpf_map_lookup_elem(&mirror_stats, &zero);
	__u32 wire = skb->len + (skb->vlan_present ? 4 : 0);

	if (!st || d > 1)
		return BELT_NEXT;
	st->packets[d]++;
	st->bytes[d] += wire;

	if (n_collectors || n_rules) {
		struct belt_cursor c;
		struct belt_packet pkt;
		__u32 want = skb->len < MIRROR_PULL ? skb->len : MIRROR_PULL;

		if (skb->data_end - skb->data < want)
			bpf_skb_pull_data(skb, want); /* makes headers linear; contents unchanged */
		belt_cursor_init_skb(&c, skb);
		belt_parse(&c, &pkt);
		belt_skb_vlan(&pkt, skb); /* the outer tag lives in skb metadata */
		if (own_tunnel(&pkt)) {
			st->own_tunnel++;
			return BELT_NEXT;
		}
		if (n_rules && !wanted(&pkt, dir)) {
			st->filtered++;
			return BELT_NEXT;
		}
	}
	if (sample > 1 && bpf_get_prandom_u32() % sample) {
		st->sampled_out++;
		return BELT_NEXT;
	}
	st->mirrored[d]++;
	st->mirrored_bytes[d] += wire;

	for (__u32 i = 0; i < MIRROR_MAX_COLLECTORS; i++) {
		if (i >= n_collectors)
			break;
		set_cb(skb, MIRROR_CB_MAGIC, session, i, d);
		if (bpf_clone_redirect(skb, collectors[i].ifindex, 0)) {
			__u32 key = i * 2 + d;
			struct mirror_collector_stats *cs = bpf_map_lookup_elem(&collector_stats, &key);

			if (cs)
				cs->clone_failed++;
		}
	}
	if (n_collectors)
		set_cb(skb, 0, 0, 0, 0);
	if (to_pcap)
		copy_to_ring(skb, dir, wire, st);
	return BELT_NEXT;
}

SEC("tc")
int mirror_ingress(struct __sk_buff *skb)
{
	return mirror(skb, BELT_DIR_IN);
}

SEC("tc")
int mirror_egress(struct __sk_buff *skb)
{
	return mirror(skb, BELT_DIR_OUT);
}

/* Egress of belt's VXLAN device: addresses this run's copies. */
SEC("tc")
int mirror_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct mirror_collector_stats *cs;
	__u32 idx = skb->cb[2], d = skb->cb[3], stat_key;
	__u64 flags = 0;
	__u32 limit;

	if (skb->cb[0] != MIRROR_CB_MAGIC || skb->cb[1] != session)
		return BELT_NEXT; /* another run's copy, or not a copy at all */
	if (idx >= MIRROR_MAX_COLLECTORS || d > 1)
		return TC_ACT_SHOT;
	stat_key = idx * 2 + d;
	cs = bpf_map_lookup_elem(&collector_stats, &stat_key);
	skb->cb[0] = 0;

	key.tunnel_id = collectors[idx].vni;
	key.tunnel_ttl = 64;
	if (collectors[idx].ipv6) {
		__builtin_memcpy(key.remote_ipv6, collectors[idx].addr, 16);
		flags = BPF_F_TUNINFO_IPV6;
	} else {
		__u32 v4;

		__builtin_memcpy(&v4, &collectors[idx].addr[12], 4);
		key.remote_ipv4 = bpf_ntohl(v4);
		flags = BPF_F_ZERO_CSUM_TX; /* RFC 7348: zero UDP checksum over IPv4 */
	}
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags)) {
		if (cs)
			cs->tunnel_failed++;
		return TC_ACT_SHOT;
	}
	/* --snaplen counts the VLAN tag the VXLAN code will put back; so does
	 * max_len, the most an IPv6 collector's path takes unfragmented (the
	 * kernel does not fragment locally sent IPv6 tunnel packets: an oversized
	 * copy would be dropped, so it is cut to fit, as AWS does). */
	limit = snaplen;
	if (collectors[idx].max_len && (!limit || collectors[idx].max_len < limit))
		limit = collectors[idx].max_len;
	if (limit && skb->vlan_present)
		limit = limit > 4 ? limit - 4 : 1;
	if (limit && skb->len > limit && limit >= 14) {
		/* On failure the copy goes whole. Trimming a GSO packet makes it one
		 * packet: the first segment's headers and data. */
		if (!bpf_skb_change_tail(skb, limit, 0) && cs)
			cs->cut++;
	}
	if (cs) {
		cs->packets++;
		cs->bytes += skb->len + (skb->vlan_present ? 4 : 0);
	}
	return TC_ACT_OK;
}

/* Ingress of belt's VXLAN device: the device exists only to send; whatever
 * it receives (VXLAN from elsewhere on its UDP port) is dropped so that it
 * cannot enter this host's stack. */
SEC("tc")
int mirror_tunnel_rx(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

/* Keep the shared structs in BTF for the layout test. */
struct mirror_record *unused_mirror_record __attribute__((unused));
struct mirror_collector_stats *unused_mirror_cstats __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
