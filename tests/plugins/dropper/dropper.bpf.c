/* A user-written test plugin: drops IPv4 packets of one IP protocol (ICMP
 * by default) and hands everything else on: the "dropper" of the chain tests. */
#include "belt_packet.h"

const volatile __u8 drop_proto = 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline int decide(struct __sk_buff *skb)
{
	struct belt_cursor c;
	struct belt_packet pkt;
	__u32 zero = 0;

	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &pkt);
	if (!(pkt.flags & BELT_F_L3) || pkt.ip_version != 4 || pkt.l4_proto != drop_proto)
		return BELT_NEXT;
	__u64 *n = bpf_map_lookup_elem(&dropped, &zero);
	if (n)
		*n += 1;
	return BELT_DROP;
}

SEC("tc")
int drop_ingress(struct __sk_buff *skb)
{
	return decide(skb);
}

SEC("tc")
int drop_egress(struct __sk_buff *skb)
{
	return decide(skb);
}

char LICENSE[] SEC("license") = "GPL";
