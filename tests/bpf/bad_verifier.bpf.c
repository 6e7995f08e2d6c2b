/* Reads packet bytes without a bounds check: the verifier must reject it,
 * and belt must report a VerifierError with the log. */
#include "belt.h"

SEC("xdp")
int unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	return data[20] == 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
