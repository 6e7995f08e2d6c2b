/* A plugin program the verifier rejects at the end of a long path: its log
 * runs past 10,000 characters, and `belt --verbose` must print all of it,
 * down to the instruction that failed. */
#include "belt.h"

SEC("xdp")
int long_then_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	__u64 x = ctx->ingress_ifindex;

#pragma unroll
	for (int i = 0; i < 400; i++) {
		x = x * 31 + i;
		barrier_var(x); /* one step per iteration, not folded into one */
	}
	/* No bounds check against data_end: refused here. */
	return data[20] == (x & 0xff) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
