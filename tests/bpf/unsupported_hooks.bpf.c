/* A kprobe and an fentry program on tcp_v4_connect: on kernels without
 * kprobes or trampolines, belt must say NotSupportedError, not crash. */
#include "belt.h"
#include <bpf/bpf_tracing.h>

__u64 calls = 0;

SEC("kprobe/tcp_v4_connect")
int on_connect_kprobe(void *ctx)
{
	__sync_fetch_and_add(&calls, 1);
	return 0;
}

SEC("fentry/tcp_v4_connect")
int BPF_PROG(on_connect_fentry)
{
	__sync_fetch_and_add(&calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
