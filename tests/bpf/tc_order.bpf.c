/* One link of a test chain: appends its tag to skb->mark (mark * 16 + tag),
 * records the mark it produced, and returns a configurable verdict. Loading
 * it twice with different tags shows which ran first. */
#include "belt.h"
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} runs SEC(".maps");

const volatile __u32 tag = 1;
const volatile int verdict = BELT_NEXT;
/* Only packets with this IP protocol take part (ICMP by default). */
const volatile __u8 only_proto = 1;

SEC("tc")
int tc_order(struct __sk_buff *skb)
{
	__u8 proto = 0;
	/* IPv4 protocol byte: offset 14 (Ethernet) + 9. */
	if (skb->protocol != bpf_htons(0x0800) || bpf_skb_load_bytes(skb, 23, &proto, 1) || proto != only_proto)
		return BELT_NEXT;
	__u32 key = tag & 15;
	skb->mark = skb->mark * 16 + tag;
	__u32 mark = skb->mark;
	bpf_map_update_elem(&seen, &key, &mark, BPF_ANY);
	__u64 *n = bpf_map_lookup_elem(&runs, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
