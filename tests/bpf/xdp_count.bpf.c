/* Counts IPv4 packets by L4 protocol (packets and bytes, per CPU) and passes
 * them all: proves XDP attach, per-CPU maps and read-only globals. */
#include "belt.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include "xdp_count.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct proto_count);
} counts SEC(".maps");

/* Packets from this IPv4 source only (network order; 0: any). */
const volatile __be32 only_saddr = 0;

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (only_saddr && ip->saddr != only_saddr)
		return XDP_PASS;
	__u32 key = ip->protocol;
	struct proto_count *c = bpf_map_lookup_elem(&counts, &key);
	if (!c) {
		struct proto_count zero = {};
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&counts, &key);
		if (!c)
			return XDP_PASS;
	}
	c->packets += 1;
	c->bytes += end - data;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
