/* The firewall bench's baseline: the least an XDP program can do per packet
 * (count it in a per-CPU array and return a fixed verdict). The flood's rate
 * with it attached is what the veth path and the sender cost without any
 * filtering; a firewall's own cost per packet is measured against it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} baseline_packets SEC(".maps");

static __always_inline int count(int verdict)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&baseline_packets, &zero);

	if (n)
		*n += 1;
	return verdict;
}

SEC("xdp")
int baseline_drop(struct xdp_md *ctx)
{
	return count(XDP_DROP);
}

SEC("xdp")
int baseline_pass(struct xdp_md *ctx)
{
	return count(XDP_PASS);
}

/* The flood generator (run by native/fw_xdpgen.c with BPF_PROG_TEST_RUN in
 * live-frames mode on the sender's veth): each run rewrites the template
 * frame's IPv4 source to base + (run number mod count), fixes the header
 * checksum, and sends the frame out with XDP_TX, so the receiver's veth gets
 * XDP frames (no socket buffers), as it would from a NIC driver. */
struct gen_state {
	__u32 base;  /* first source address, host order */
	__u32 count; /* distinct sources */
	__u32 next;  /* offset of the next frame's source */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_state SEC(".maps");

SEC("xdp")
int fw_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *ip = data + 14;
	__u32 zero = 0, n, src, sum = 0;
	struct gen_state *g = bpf_map_lookup_elem(&gen_state, &zero);

	if (!g || (void *)(ip + 20) > end)
		return XDP_ABORTED;
	n = g->next;
	g->next = n + 1 >= g->count ? 0 : n + 1;
	src = g->base + n;
	ip[12] = src >> 24;
	ip[13] = src >> 16;
	ip[14] = src >> 8;
	ip[15] = src;
	ip[10] = 0;
	ip[11] = 0;
#pragma unroll
	for (int i = 0; i < 20; i += 2)
		sum += (__u32)ip[i] << 8 | ip[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	ip[10] = sum >> 8;
	ip[11] = sum;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
