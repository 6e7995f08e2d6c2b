/* TCP state changes to a ring buffer (and a perf buffer), from the BTF
 * tracepoint sock/inet_sock_set_state: proves tp_btf attach, CO-RE reads and
 * both event readers. */
#include "belt.h"
#include "belt_events.h"
#include "belt_kernel.h"
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "connect_event.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

/* Only report connections to this port (0: all). */
const volatile __u16 wanted_dport = 0;

static __always_inline int fill(struct connect_event *e, const struct sock *sk, int oldstate, int newstate)
{
	__u64 id = bpf_get_current_pid_tgid();
	e->timestamp_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->old_state = oldstate;
	e->new_state = newstate;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return wanted_dport == 0 || e->dport == wanted_dport;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state_ring, const struct sock *sk, int oldstate, int newstate)
{
	struct connect_event *e = belt_event_reserve(&events, sizeof(*e));
	if (!e)
		return 0;
	if (!fill(e, sk, oldstate, newstate)) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state_perf, const struct sock *sk, int oldstate, int newstate)
{
	struct connect_event e = {};
	if (fill(&e, sk, oldstate, newstate))
		bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

/* Keeps struct connect_event in BTF (locals are not), for the layout test. */
struct connect_event *unused_connect_event __attribute__((unused));
