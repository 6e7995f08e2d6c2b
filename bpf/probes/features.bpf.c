/* Tiny programs `belt probe` loads to learn what this kernel allows: one
 * plain program with a ring buffer (BPF itself, ring buffers), one fentry
 * program (BPF trampolines), loaded one at a time. */
#include "belt.h"
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_ring SEC(".maps");

SEC("socket")
int probe_socket(struct __sk_buff *skb)
{
	__u32 *slot = bpf_ringbuf_reserve(&probe_ring, sizeof(*slot), 0);
	if (slot)
		bpf_ringbuf_discard(slot, 0);
	return 0;
}

SEC("fentry/tcp_v4_connect")
int BPF_PROG(probe_fentry)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
