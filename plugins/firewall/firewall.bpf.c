/* firewall: drops unwanted traffic in XDP, before the kernel allocates an
 * skb for it, and on egress from a TC program in belt's chain.
 *
 * Each packet is parsed once (belt_parse: VLAN/QinQ, IPv4 options, IPv6
 * extension headers, fragments), then the indexes of firewall.h give the
 * rules that can match it: the exact-address hash and the LPM trie, walked
 * from the longest containing prefix up to /0, on the source side and on
 * the destination side. The matching rule with the lowest order decides
 * (first match wins); with none, the default of the direction does, except
 * that ARP and IPv6 neighbour discovery are kept when only the default
 * would drop them. */
#include "belt_packet.h"
#include "belt_match.h"
#include "firewall.h"

#ifndef TC_ACT_OK
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#endif

/* Header bytes the TC program needs linear to parse (belt_parse's deepest
 * reach: 2 VLAN tags, IPv6 with extension headers, TCP with options). */
#define FW_PULL 256

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FW_CAPACITY); /* user space may resize before load */
	__type(key, __u32);
	__type(value, struct fw_rule);
} fw_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_CAPACITY);
	__type(key, __u32);
	__type(value, struct fw_counter);
} fw_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_host_key);
	__type(value, struct fw_slots);
} fw_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FW_CAPACITY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fw_net_key);
	__type(value, struct fw_slots);
} fw_nets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_totals);
} fw_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_config);
} fw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fw_bucket_key);
	__type(value, struct fw_bucket);
} fw_buckets SEC(".maps");

/* The best candidate so far, and the index generation the decision uses. */
struct fw_best {
	__u32 order;
	__u32 slot;
	__u32 gen;
};

/* Global (not inlined): verified once, however many call sites. Returns 1
 * when rule r (a fw_rules value) is in use and matches. */
__noinline int fw_rule_matches(const struct fw_rule *r, const struct belt_packet *pkt, __u32 dir)
{
	if (!r || !pkt || !r->in_use)
		return 0;
	return belt_rule_match(&r->match, pkt, dir);
}

/* Global: the first rule of one index entry that matches and comes before
 * best->order replaces best. */
__noinline int fw_check_entry(const struct fw_slots *v, const struct belt_packet *pkt,
			      __u32 dir, struct fw_best *best)
{
	if (!v || !pkt || !best)
		return 0;
	for (__u32 i = 0; i < FW_SLOTS; i++) {
		struct fw_rule *r;
		__u32 slot;

		if (i >= v->count)
			break;
		slot = v->slots[i];
		r = bpf_map_lookup_elem(&fw_rules, &slot);
		if (!r)
			continue;
		if (r->order >= best->order)
			break; /* sorted by order: the rest come later still */
		if (fw_rule_matches(r, pkt, dir)) {
			best->order = r->order;
			best->slot = slot;
			break;
		}
	}
	return 0;
}

/* Global: every index entry on one side whose prefix contains addr. */
__noinline int fw_check_side(const struct belt_packet *pkt, const struct fw_config *cfg,
			     __u32 dir, __u32 side, struct fw_best *best)
{
	struct fw_host_key hkey = {};
	struct fw_net_key nkey = {};
	struct fw_slots *v;
	__u32 present;

	if (!pkt || !cfg || !best || dir < 1 || dir > 2 || side > 1)
		return 0;
	hkey.gen = best->gen;
	hkey.dir = dir;
	hkey.side = side;
	__builtin_memcpy(hkey.addr, side == FW_SIDE_SRC ? pkt->src_addr : pkt->dst_addr, 16);
	/* Masked: the verifier needs to see the index stay inside present[8]. */
	present = FW_PRESENT(dir, side, 0) & 6;
	if (cfg->present[present]) {
		v = bpf_map_lookup_elem(&fw_hosts, &hkey);
		if (v)
			fw_check_entry(v, pkt, dir, best);
	}
	if (!cfg->present[present | 1])
		return 0;

	nkey.prefixlen = FW_NET_KEY_BITS + 128;
	nkey.gen = best->gen;
	nkey.dir = dir;
	nkey.side = side;
	__builtin_memcpy(nkey.addr, hkey.addr, 16);
	/* From the longest containing prefix up to /0: at most 129 entries. */
	for (int i = 0; i < 129; i++) {
		v = bpf_map_lookup_elem(&fw_nets, &nkey);
		if (!v)
			break;
		fw_check_entry(v, pkt, dir, best);
		if (v->len == 0)
			break;
		nkey.prefixlen = FW_NET_KEY_BITS + v->len - 1;
	}
	return 0;
}

/* Rules without any address: the /0 entry of the source side. */
static __always_inline void fw_check_generic(const struct belt_packet *pkt,
					     const struct fw_config *cfg, __u32 dir,
					     struct fw_best *best)
{
	struct fw_net_key nkey = {
		.prefixlen = FW_NET_KEY_BITS, .gen = best->gen, .dir = dir, .side = FW_SIDE_SRC,
	};
	struct fw_slots *v;

	if (!cfg->present[FW_PRESENT(dir, FW_SIDE_SRC, 1)])
		return;
	v = bpf_map_lookup_elem(&fw_nets, &nkey);

	if (v)
		fw_check_entry(v, pkt, dir, best);
}

/* ARP, or IPv6 neighbour discovery (router/neighbour solicitation and
 * advertisement, redirect): what keeps a host reachable. */
static __always_inline int fw_is_nd(const struct belt_packet *pkt)
{
	if (pkt->eth_proto == ETH_P_ARP)
		return 1;
	return (pkt->flags & BELT_F_L4) && pkt->l4_proto == IPPROTO_ICMPV6 &&
	       pkt->icmp_type >= 133 && pkt->icmp_type <= 137;
}

/* Generic cell rate algorithm: a token bucket as one time stamp (the
 * theoretical arrival time of the next packet). Returns 1 when the packet
 * is within the rule's rate for its source. The read-modify-write is not
 * atomic: CPUs racing on one source may each let one extra packet through
 * (bpf_spin_lock is not allowed in LRU maps, and an LRU map is what keeps a
 * flood of spoofed sources from filling the table). */
static __always_inline int fw_within_rate(const struct fw_rule *r, const struct belt_packet *pkt)
{
	struct fw_bucket_key key = { .id = r->id };
	struct fw_bucket *b, fresh = {};
	__u64 now = bpf_ktime_get_ns(), tat;

	__builtin_memcpy(key.addr, pkt->src_addr, 16);
	b = bpf_map_lookup_elem(&fw_buckets, &key);
	if (!b) {
		fresh.tat = now + r->interval_ns;
		bpf_map_update_elem(&fw_buckets, &key, &fresh, BPF_NOEXIST);
		return 1;
	}
	tat = b->tat > now ? b->tat : now;
	if (tat + r->interval_ns - now > r->tolerance_ns)
		return 0;
	b->tat = tat + r->interval_ns;
	return 1;
}

/* The verdict for one parsed packet: FW_ACT_PASS or FW_ACT_DROP. */
static __always_inline int fw_decide(const struct belt_packet *pkt, __u32 dir, __u32 len)
{
	struct fw_best best = { .order = FW_NO_MATCH, .slot = FW_NO_MATCH };
	__u32 zero = 0, d = dir - 1;
	struct fw_totals *t = bpf_map_lookup_elem(&fw_totals, &zero);
	struct fw_config *cfg = bpf_map_lookup_elem(&fw_config, &zero);
	struct fw_counter *c;
	struct fw_rule *r;
	int verdict;

	if (!t || !cfg || d > 1)
		return FW_ACT_PASS;
	best.gen = cfg->gen; /* once: the whole decision uses one generation */
	t->packets[d] += 1;
	t->bytes[d] += len;
	if (pkt->flags & BELT_F_STOPPED)
		t->malformed += 1;
	if ((pkt->flags & BELT_F_FRAGMENT) && !(pkt->flags & BELT_F_FIRST_FRAG))
		t->fragments += 1;

	if (pkt->flags & BELT_F_L3) {
		fw_check_side(pkt, cfg, dir, FW_SIDE_SRC, &best);
		fw_check_side(pkt, cfg, dir, FW_SIDE_DST, &best);
	} else {
		fw_check_generic(pkt, cfg, dir, &best);
	}

	if (best.order == FW_NO_MATCH) {
		verdict = d ? cfg->default_out : cfg->default_in;
		if (verdict == FW_ACT_DROP && cfg->keep_nd && fw_is_nd(pkt)) {
			t->kept_nd += 1;
			verdict = FW_ACT_PASS;
		}
		if (verdict == FW_ACT_DROP) {
			t->default_dropped[d] += 1;
			t->dropped[d] += 1;
			return FW_ACT_DROP;
		}
		t->default_passed[d] += 1;
		return FW_ACT_PASS;
	}

	r = bpf_map_lookup_elem(&fw_rules, &best.slot);
	c = bpf_map_lookup_elem(&fw_counters, &best.slot);
	if (!r || !c)
		return FW_ACT_PASS;
	c->packets += 1;
	c->bytes += len;
	verdict = r->action;
	if (verdict == FW_ACT_LIMIT) {
		if (fw_within_rate(r, pkt)) {
			verdict = FW_ACT_PASS;
		} else {
			c->limited += 1;
			verdict = FW_ACT_DROP;
		}
	}
	if (verdict == FW_ACT_DROP)
		t->dropped[d] += 1;
	return verdict == FW_ACT_DROP ? FW_ACT_DROP : FW_ACT_PASS;
}

SEC("xdp")
int firewall_xdp(struct xdp_md *ctx)
{
	struct belt_cursor c;
	struct belt_packet pkt;

	belt_cursor_init_xdp(&c, ctx);
	belt_parse(&c, &pkt);
	return fw_decide(&pkt, BELT_DIR_IN, ctx->data_end - ctx->data) == FW_ACT_DROP ? XDP_DROP
										 : XDP_PASS;
}

SEC("tc")
int firewall_egress(struct __sk_buff *skb)
{
	struct belt_cursor c;
	struct belt_packet pkt;

	/* Headers may sit in paged data; a failed pull (short frame) is fine:
	 * the parser then stops where the linear part ends. */
	bpf_skb_pull_data(skb, skb->len < FW_PULL ? skb->len : FW_PULL);
	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &pkt);
	belt_skb_vlan(&pkt, skb);
	return fw_decide(&pkt, BELT_DIR_OUT, skb->len) == FW_ACT_DROP ? BELT_DROP : BELT_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
