/* The connect tracer: every outbound TCP connection attempt, who made it
 * and how it ended; optionally inbound accepts and a summary at close.
 *
 * Three sets of programs can see an attempt begin, and the loader loads
 * one: kprobe/kretprobe or fentry/fexit on tcp_v4_connect/tcp_v6_connect,
 * or the connect syscall's tracepoints. How it ends always comes from the
 * BTF tracepoint sock/inet_sock_set_state, which fires in softirq for a
 * SYN-ACK or RST: the owner is taken from the record made at the start,
 * never from whatever task softirq happened to interrupt. */
/* kprobe arguments are read from x86-64 registers: the committed object is
 * built for x86-64 (fentry and tracepoints do not depend on it) */
#define __TARGET_ARCH_x86
#include "belt.h"
#include "belt_events.h"
#include "belt_kernel.h"
#include "belt_packet.h"
#include "belt_match.h"
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <linux/ptrace.h>
#include <linux/in.h>
#include <linux/in6.h>
#include "connect.h"

#define CT_AF_INET 2
#define CT_AF_INET6 10
#define CT_EINTR 4
#define CT_ETIMEDOUT 110
#define CT_ECONNREFUSED 111
#define CT_EINPROGRESS 115
#define CT_ERESTARTSYS 512 /* seen at sys_exit when a signal interrupts a blocking connect */
#define CT_ERESTARTNOINTR 513
#define CT_ERESTARTNOHAND 514

const volatile __u8 hook = CT_HOOK_TRACEPOINT;
const volatile __u8 want_accept = 0;
const volatile __u8 want_close = 0;
/* Wake the reader only once this much is waiting: one wakeup per event
 * costs the reader far more than the event (it polls every 100 ms anyway). */
const volatile __u32 wakeup_bytes = 32 << 10;

/* Not const: a const array read through a pointer can be folded to zero. */
struct ct_filter filter = {};

/* What belt knows about a socket it follows, keyed by its address. */
struct ct_sock {
	__u64 start_ns;    /* SYN sent (active) or established (passive, and at --close) */
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u8 active;       /* 1: opened by connect(); 0: accepted */
	__u8 owned;        /* the owner fields are filled */
	__u8 established;
	__u8 in_call;      /* its connect call has not returned yet */
	char comm[16];
};

/* A connect call in flight, by thread: the address it asked for. */
struct ct_call {
	__u64 sk;
	__u8 daddr[16];
	__u16 dport;
	__u16 family;
	__u32 depth;       /* tcp_v6_connect calls tcp_v4_connect for mapped addresses */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ct_sock);
} ct_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ct_call);
} ct_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* ---- filters ---------------------------------------------------------- */

static __always_inline int owner_wanted(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	char comm[16] = {};
	__u64 a[2], b[2];

	if (filter.pid && filter.pid != (__u32)(id >> 32))
		return 0;
	if (filter.has_uid && filter.uid != (__u32)bpf_get_current_uid_gid())
		return 0;
	if (!filter.comm[0])
		return 1;
	bpf_get_current_comm(comm, sizeof(comm));
	__builtin_memcpy(a, comm, 16);
	__builtin_memcpy(b, (const void *)filter.comm, 16);
	return a[0] == b[0] && a[1] == b[1];
}

static __always_inline int dst_wanted(const __u8 *daddr, __u16 dport)
{
	int port_ok = filter.nports == 0, net_ok = filter.nnets == 0;

	for (int i = 0; i < CT_MAX_PORTS; i++)
		if (i < filter.nports && filter.ports[i] == dport)
			port_ok = 1;
	for (int i = 0; i < CT_MAX_NETS; i++)
		if (i < filter.nnets && belt_prefix_match(daddr, filter.nets[i].addr, filter.nets[i].len))
			net_ok = 1;
	return port_ok && net_ok;
}

/* ---- reading sockets --------------------------------------------------- */

static __always_inline void mapped4(__u8 *out, __be32 v4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &v4, 4);
}

static __always_inline int is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP &&
	       (family == CT_AF_INET || family == CT_AF_INET6);
}

/* local and remote address and port of sk */
static __always_inline void sk_ends(const struct sock *sk, __u8 *laddr, __u16 *lport,
				    __u8 *raddr, __u16 *rport)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == CT_AF_INET) {
		mapped4(laddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		mapped4(raddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		bpf_core_read(laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	/* inet_sport is the port on the wire; skc_num can read 0 around changes */
	*lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	if (!*lport)
		*lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	*rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* A sockaddr (kernel or user memory) into family, address and port. */
static __always_inline int read_sockaddr(struct ct_call *c, const void *addr, int user)
{
	struct sockaddr_in6 sa = {};
	long err = user ? bpf_probe_read_user(&sa, sizeof(sa), addr)
			: bpf_probe_read_kernel(&sa, sizeof(sa), addr);

	/* a sockaddr_in is shorter: read what fits if the full size faults */
	if (err) {
		err = user ? bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), addr)
			   : bpf_probe_read_kernel(&sa, sizeof(struct sockaddr_in), addr);
		if (err)
			return 0;
	}
	c->family = sa.sin6_family;
	if (sa.sin6_family == CT_AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;
		mapped4(c->daddr, in->sin_addr.s_addr);
		c->dport = bpf_ntohs(in->sin_port);
		return 1;
	}
	if (sa.sin6_family == CT_AF_INET6) {
		__builtin_memcpy(c->daddr, &sa.sin6_addr, 16);
		c->dport = bpf_ntohs(sa.sin6_port);
		return 1;
	}
	return 0; /* AF_UNSPEC disconnects: not an attempt */
}

static __always_inline void fill_owner(struct ct_sock *s)
{
	__u64 id = bpf_get_current_pid_tgid();

	s->pid = id >> 32;
	s->tid = (__u32)id;
	s->uid = (__u32)bpf_get_current_uid_gid();
	s->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(s->comm, sizeof(s->comm));
	s->owned = 1;
}

/* ---- events ------------------------------------------------------------ */

/* Payload bytes of a closing connection. The kernel's counters follow the
 * sequence space, where a SYN and a FIN take one number each: take out our
 * SYN (acked on an active open), our FIN once acked, and the peer's FIN. */
static __always_inline void payload_bytes(const struct sock *sk, int active, __u64 *sent,
					  __u64 *received)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u8 shutdown = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown);
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 got = BPF_CORE_READ(tp, bytes_received);
	int fin_acked = (shutdown & 2) && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq);
	__u64 control = (active ? 1 : 0) + (fin_acked ? 1 : 0);

	*sent = acked > control ? acked - control : 0;
	*received = (shutdown & 1) && got ? got - 1 : got;
}

static __always_inline void emit(const struct sock *sk, const struct ct_sock *s, __u8 kind,
				 __u8 outcome, __s32 error, __u64 latency,
				 const struct ct_call *call)
{
	struct ct_event *e;
	__u8 laddr[16], raddr[16];
	__u16 lport, rport;

	if (kind == CT_KIND_CONNECT && filter.outcomes && !(filter.outcomes & (1u << outcome)))
		return;
	e = belt_event_reserve(&events, sizeof(*e));
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->latency_ns = latency;
	e->cgroup_id = s->cgroup_id;
	e->bytes_sent = 0;
	e->bytes_received = 0;
	if (kind == CT_KIND_CLOSE)
		payload_bytes(sk, s->active, &e->bytes_sent, &e->bytes_received);
	e->pid = s->pid;
	e->tid = s->tid;
	e->uid = s->uid;
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->context_pid = bpf_get_current_pid_tgid() >> 32;
	e->error = error;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	sk_ends(sk, laddr, &lport, raddr, &rport);
	if (call) { /* a failed call: the socket may not hold the address it was asked for */
		__builtin_memcpy(raddr, call->daddr, 16);
		rport = call->dport;
	}
	if (s->active) {
		__builtin_memcpy(e->saddr, laddr, 16);
		__builtin_memcpy(e->daddr, raddr, 16);
		e->sport = lport;
		e->dport = rport;
	} else {
		__builtin_memcpy(e->saddr, raddr, 16);
		__builtin_memcpy(e->daddr, laddr, 16);
		e->sport = rport;
		e->dport = lport;
	}
	e->kind = kind;
	e->outcome = outcome;
	e->hook = hook;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	__builtin_memcpy(e->comm, s->comm, 16);
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
}

/* ---- an attempt begins: the owner and the address asked for ------------ */

static __always_inline void connect_begins(const struct sock *sk, const void *uaddr, int user)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 key = (__u64)sk;
	struct ct_call *held = bpf_map_lookup_elem(&ct_calls, &tid);
	struct ct_call call = {};
	struct ct_sock s = {};

	if (held && held->sk == key) {
		held->depth++; /* tcp_v4_connect called from tcp_v6_connect */
		return;
	}
	if (!owner_wanted() || !read_sockaddr(&call, uaddr, user))
		return;
	if (!dst_wanted(call.daddr, call.dport))
		return;
	call.sk = key;
	fill_owner(&s);
	s.start_ns = bpf_ktime_get_ns();
	s.active = 1;
	s.in_call = 1;
	bpf_map_update_elem(&ct_socks, &key, &s, BPF_ANY);
	bpf_map_update_elem(&ct_calls, &tid, &call, BPF_ANY);
}

/* The connect call returned ret (0 or -errno). */
static __always_inline void connect_returns(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ct_call *held = bpf_map_lookup_elem(&ct_calls, &tid);
	struct ct_call call;
	struct ct_sock *s;
	__u64 key;

	if (!held)
		return;
	if (held->depth) {
		held->depth--;
		return;
	}
	call = *held;
	bpf_map_delete_elem(&ct_calls, &tid);
	key = call.sk;
	s = bpf_map_lookup_elem(&ct_socks, &key);
	if (!s || !s->active || s->established)
		return; /* already reported (a blocking connect that got its answer) */
	s->in_call = 0;
	/* 0 and EINPROGRESS: the handshake goes on; a signal does not stop it either */
	if (ret >= 0 || ret == -CT_EINPROGRESS || ret == -CT_EINTR || ret == -CT_ERESTARTSYS ||
	    ret == -CT_ERESTARTNOINTR || ret == -CT_ERESTARTNOHAND)
		return;
	emit((const struct sock *)key, s, CT_KIND_CONNECT, CT_ERROR, (__s32)-ret,
	     bpf_ktime_get_ns() - s->start_ns, &call);
	bpf_map_delete_elem(&ct_socks, &key);
}

/* ---- how it goes on: TCP state changes --------------------------------- */

static __always_inline __u8 failure_outcome(int err)
{
	if (err == CT_ECONNREFUSED)
		return CT_REFUSED;
	if (err == CT_ETIMEDOUT)
		return CT_TIMEOUT;
	return err ? CT_ERROR : CT_ABORTED;
}

/* A SYN_SENT no start program saw (io_uring, TCP fast open): the task
 * setting it is the one connecting. */
static __always_inline void connect_unseen(const struct sock *sk)
{
	__u8 laddr[16], raddr[16];
	__u16 lport, rport;
	struct ct_sock s = {};
	__u64 key = (__u64)sk;

	if (!owner_wanted())
		return;
	sk_ends(sk, laddr, &lport, raddr, &rport);
	if (!dst_wanted(raddr, rport))
		return;
	fill_owner(&s);
	s.start_ns = bpf_ktime_get_ns();
	s.active = 1;
	bpf_map_update_elem(&ct_socks, &key, &s, BPF_ANY);
}

/* An inbound connection completed its handshake (softirq: no owner yet). */
static __always_inline void accepted_pending(const struct sock *sk)
{
	__u8 laddr[16], raddr[16];
	__u16 lport, rport;
	struct ct_sock s = {};
	__u64 key = (__u64)sk;

	sk_ends(sk, laddr, &lport, raddr, &rport);
	if (!dst_wanted(laddr, lport))
		return;
	s.start_ns = bpf_ktime_get_ns();
	s.established = 1;
	bpf_map_update_elem(&ct_socks, &key, &s, BPF_ANY);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ct_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct ct_sock *s;
	__u64 now;

	if (!is_tcp(sk))
		return 0;
	s = bpf_map_lookup_elem(&ct_socks, &key);
	if (!s && newstate != BELT_TCP_SYN_SENT &&
	    !(newstate == BELT_TCP_ESTABLISHED && oldstate == BELT_TCP_SYN_RECV))
		return 0; /* most state changes: a socket belt does not follow */
	now = bpf_ktime_get_ns();
	if (newstate == BELT_TCP_SYN_SENT) {
		if (s && s->active && !s->established)
			s->start_ns = now; /* latency counts from the SYN */
		else
			connect_unseen(sk);
		return 0;
	}
	if (!s) {
		if (newstate == BELT_TCP_ESTABLISHED && oldstate == BELT_TCP_SYN_RECV &&
		    (want_accept || want_close))
			accepted_pending(sk);
		return 0;
	}
	if (s->active && !s->established) {
		if (newstate == BELT_TCP_ESTABLISHED) {
			emit(sk, s, CT_KIND_CONNECT, CT_ESTABLISHED, 0, now - s->start_ns, 0);
			if (!want_close) {
				bpf_map_delete_elem(&ct_socks, &key);
				return 0;
			}
			s->established = 1;
			s->start_ns = now;
			return 0;
		}
		if (newstate == BELT_TCP_CLOSE) {
			int err = BPF_CORE_READ(sk, sk_err);

			/* closed with no error inside connect(): its return says why */
			if (!err && s->in_call)
				return 0;
			emit(sk, s, CT_KIND_CONNECT, failure_outcome(err), err, now - s->start_ns, 0);
			bpf_map_delete_elem(&ct_socks, &key);
		}
		return 0;
	}
	if (newstate == BELT_TCP_CLOSE) {
		if (want_close && s->owned && s->established)
			emit(sk, s, CT_KIND_CLOSE, CT_CLOSED, 0, now - s->start_ns, 0);
		bpf_map_delete_elem(&ct_socks, &key);
	}
	return 0;
}

/* ---- inbound: the accepting process becomes the owner ------------------ */

static __always_inline void accepted(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct ct_sock *s;

	if (!sk)
		return;
	s = bpf_map_lookup_elem(&ct_socks, &key);
	if (!s || s->active || s->owned)
		return; /* established before belt started, or filtered out */
	if (!owner_wanted()) {
		bpf_map_delete_elem(&ct_socks, &key);
		return;
	}
	fill_owner(s);
	if (want_accept)
		emit(sk, s, CT_KIND_ACCEPT, CT_CLOSED, 0, bpf_ktime_get_ns() - s->start_ns, 0);
}

/* ---- hook set 1: kprobes ----------------------------------------------- */

SEC("kprobe/tcp_v4_connect")
int BPF_KPROBE(ct_kprobe_v4, struct sock *sk, struct sockaddr *uaddr)
{
	connect_begins(sk, uaddr, 0);
	return 0;
}

SEC("kretprobe/tcp_v4_connect")
int BPF_KRETPROBE(ct_kretprobe_v4, int ret)
{
	connect_returns(ret);
	return 0;
}

SEC("kprobe/tcp_v6_connect")
int BPF_KPROBE(ct_kprobe_v6, struct sock *sk, struct sockaddr *uaddr)
{
	connect_begins(sk, uaddr, 0);
	return 0;
}

SEC("kretprobe/tcp_v6_connect")
int BPF_KRETPROBE(ct_kretprobe_v6, int ret)
{
	connect_returns(ret);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(ct_kretprobe_accept, struct sock *sk)
{
	accepted(sk);
	return 0;
}

/* ---- hook set 2: fentry/fexit ------------------------------------------ */

SEC("fentry/tcp_v4_connect")
int BPF_PROG(ct_fentry_v4, struct sock *sk, struct sockaddr *uaddr)
{
	connect_begins(sk, uaddr, 0);
	return 0;
}

/* bpf_get_func_ret reads the return whatever the argument count */
SEC("fexit/tcp_v4_connect")
int BPF_PROG(ct_fexit_v4)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	connect_returns((int)ret);
	return 0;
}

SEC("fentry/tcp_v6_connect")
int BPF_PROG(ct_fentry_v6, struct sock *sk, struct sockaddr *uaddr)
{
	connect_begins(sk, uaddr, 0);
	return 0;
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(ct_fexit_v6)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	connect_returns((int)ret);
	return 0;
}

SEC("fexit/inet_csk_accept")
int BPF_PROG(ct_fexit_accept)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	accepted((const struct sock *)ret);
	return 0;
}

/* ---- hook set 3: the connect and accept syscalls' tracepoints ---------- */

struct ct_sys_enter_connect {
	__u64 common;
	__u64 nr;
	__u64 fd;
	__u64 uservaddr;
	__u64 addrlen;
};

struct ct_sys_exit {
	__u64 common;
	__u64 nr;
	long ret;
};

/* The socket behind the current task's descriptor fd, or NULL. */
static __always_inline struct socket *socket_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0;
	struct socket *sock;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	/* a socket's file points back at it; other files' private data does not */
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return 0;
	return sock;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int ct_sys_enter_connect(struct ct_sys_enter_connect *ctx)
{
	struct socket *sock = socket_of_fd((long)ctx->fd);
	const struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : 0;

	/* only a first connect() on a socket is an attempt; later calls poll it */
	if (sk && is_tcp(sk) && BPF_CORE_READ(sock, state) == BELT_SS_UNCONNECTED)
		connect_begins(sk, (const void *)ctx->uservaddr, 1);
	return 0;
}
SEC("tracepoint/syscalls/sys_exit_connect")
int ct_sys_exit_connect(struct ct_sys_exit *ctx)
{
	connect_returns(ctx->ret);
	return 0;
}

static __always_inline void accept_returns(long fd)
{
	struct socket *sock = socket_of_fd(fd);

	if (sock)
		accepted(BPF_CORE_READ(sock, sk));
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int ct_sys_exit_accept4(struct ct_sys_exit *ctx)
{
	accept_returns(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int ct_sys_exit_accept(struct ct_sys_exit *ctx)
{
	accept_returns(ctx->ret);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

/* Keep the shared structs in BTF for the layout test. */
struct ct_event *unused_ct_event __attribute__((unused));
struct ct_filter *unused_ct_filter __attribute__((unused));
