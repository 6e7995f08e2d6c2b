/* count: packets and bytes per EtherType, IP protocol and direction. Hands
 * every packet on (BELT_NEXT): it observes a chain and never decides. The
 * plugin of the authoring tutorial (docs/plugins.md). */
#include "belt_packet.h"
#include "count.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct count_key);
	__type(value, struct count_value);
} counts SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u8 direction)
{
	struct belt_cursor c;
	struct belt_packet pkt;
	struct count_key key = { .direction = direction };

	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &pkt);
	key.eth_proto = pkt.eth_proto;
	if (pkt.flags & BELT_F_L3)
		key.ip_proto = pkt.l4_proto;

	struct count_value *v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		struct count_value zero = {};
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return BELT_NEXT;
	}
	v->packets += 1; /* per-CPU value: no atomics needed */
	v->bytes += skb->len;
	return BELT_NEXT;
}

SEC("tc")
int count_ingress(struct __sk_buff *skb)
{
	return count(skb, COUNT_INGRESS);
}

SEC("tc")
int count_egress(struct __sk_buff *skb)
{
	return count(skb, COUNT_EGRESS);
}

/* Keeps the shared structs in BTF for the layout test. */
struct count_key *unused_count_key __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
