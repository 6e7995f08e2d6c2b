/* Socket filter with a snap length: keep IPv4 UDP frames to one destination
 * port, cut to their first `snap` bytes; drop everything else. */
#include "belt.h"
#include <bpf/bpf_endian.h>

const volatile __u16 port = 9;
const volatile __u32 snap = 64;

SEC("socket")
int udp_snap(struct __sk_buff *skb)
{
	__u8 proto;
	__u8 ihl;
	__be16 dport;
	if (skb->protocol != bpf_htons(0x0800))
		return 0;
	if (bpf_skb_load_bytes(skb, 14 + 9, &proto, 1) || proto != 17)
		return 0;
	if (bpf_skb_load_bytes(skb, 14, &ihl, 1))
		return 0;
	if (bpf_skb_load_bytes(skb, 14 + (ihl & 0xf) * 4 + 2, &dport, 2))
		return 0;
	if (bpf_ntohs(dport) != port)
		return 0;
	return skb->len < snap ? skb->len : snap;
}

char LICENSE[] SEC("license") = "GPL";
