/* Counts TCP state changes seen through a raw tracepoint and a classic
 * tracepoint: proves both attach paths. */
#include "belt.h"

__u64 raw_calls = 0;
__u64 classic_calls = 0;

SEC("raw_tp/inet_sock_set_state")
int count_raw(void *ctx)
{
	__sync_fetch_and_add(&raw_calls, 1);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int count_classic(void *ctx)
{
	__sync_fetch_and_add(&classic_calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
