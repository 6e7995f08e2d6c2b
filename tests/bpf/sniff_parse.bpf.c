/* sniff_parse.bpf.c: belt_parse() and the L7 parsers as a socket filter
 * (BPF_PROG_TYPE_SOCKET_FILTER, no direct packet access), for
 * tests/sniff_parse_test.ts.
 *
 * Each run writes struct sniff_result for the skb into map `result` (for
 * BPF_PROG_TEST_RUN, which the test poisons before each run) and, when the
 * `emit` global is set, also into ring buffer `events` (for frames really
 * delivered to an AF_PACKET socket). The whole frame is kept: returns
 * skb->len. */
#define BELT_CURSOR_LOAD_BYTES
#include "belt_l7.h"

struct sniff_result {
	struct belt_packet pkt; /*   0: belt_parse() */
	struct belt_l7 l7;      /*  80: belt_l7_parse() */
	__u32 len;              /* 368: skb->len */
	__s32 ret;              /* 372: what belt_l7_parse() returned */
	__u32 vlan_tci;         /* 376: skb->vlan_tci, if vlan_present */
	__u32 vlan_present;     /* 380: skb->vlan_present */
};

_Static_assert(sizeof(struct sniff_result) == 384, "sniff_result layout changed");

const volatile __u8 emit = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sniff_result);
} result SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

SEC("socket")
int sniff_parse(struct __sk_buff *skb)
{
	struct belt_cursor c;
	struct sniff_result *r;
	__u32 key = 0;

	r = bpf_map_lookup_elem(&result, &key);
	if (!r)
		return skb->len;
	belt_cursor_init_skb(&c, skb);
	belt_parse(&c, &r->pkt);
	r->ret = belt_l7_parse(skb, &r->pkt, &r->l7);
	r->len = skb->len;
	r->vlan_present = skb->vlan_present;
	r->vlan_tci = skb->vlan_present ? skb->vlan_tci : 0;
	if (emit)
		bpf_ringbuf_output(&events, r, sizeof(*r), 0);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
