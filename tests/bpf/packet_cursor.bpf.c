/* packet_cursor.bpf.c: proves belt_packet.h passes the verifier on both
 * hooks and lets tests read the parse result from the `result` map.
 * parse_xdp parses onto the stack and copies into the map; parse_tc parses
 * straight into the map value, so both usage patterns are covered. */
#include "belt_packet.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct belt_packet);
} result SEC(".maps");

SEC("xdp")
int parse_xdp(struct xdp_md *ctx)
{
	struct belt_cursor c;
	struct belt_packet pkt;
	__u32 key = 0;

	belt_cursor_init_xdp(&c, ctx);
	belt_parse(&c, &pkt);
	bpf_map_update_elem(&result, &key, &pkt, BPF_ANY);
	return XDP_PASS;
}

SEC("tc")
int parse_tc(struct __sk_buff *skb)
{
	struct belt_cursor c;
	struct belt_packet *pkt;
	__u32 key = 0;

	pkt = bpf_map_lookup_elem(&result, &key);
	if (!pkt)
		return BELT_NEXT;
	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, pkt);
	return BELT_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
