/* fw_xdpgen OBJ IFACE DST_MAC DST_IPV4 SRC_BASE SRC_COUNT RATE_PPS MAX_PACKETS MAX_MS
 * The firewall bench's flood, as XDP frames: runs the program fw_gen of OBJ
 * (fw_baseline.bpf.c) with BPF_PROG_TEST_RUN in live-frames mode on IFACE
 * (a veth of the current network namespace). Each run takes a 60-byte
 * Ethernet/IPv4/UDP template (64 bytes on the wire with the FCS), gives it
 * the next source of SRC_BASE .. SRC_BASE+SRC_COUNT-1, and sends it with
 * XDP_TX to the veth's peer, which receives XDP frames as from a NIC driver
 * (no socket buffers on the sending side). Every address must be inside
 * 198.18.0.0/15: anything else is refused. Frames go in chunks of CHUNK runs,
 * paced to RATE_PPS (0: flat out), until MAX_PACKETS frames or MAX_MS milliseconds (the last
 * chunk may end a little later).
 * Prints one JSON line: frames generated, elapsed ns, own CPU time. Frames the
 * peer's ring had no room for are counted by the veth (ethtool -S), not here. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "common.h"

#define FRAME 60
#define CHUNK 262144
#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

struct gen_state {
	unsigned int base, count, next, pad;
};

static int in_bench_range(unsigned int addr_host_order)
{
	return (addr_host_order & 0xfffe0000u) == 0xc6120000u; /* 198.18.0.0/15 */
}

static int parse_mac(const char *text, unsigned char mac[6])
{
	unsigned int b[6];
	if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: fw_xdpgen OBJ IFACE DST_MAC DST_IPV4 SRC_BASE SRC_COUNT RATE_PPS "
				"MAX_PACKETS MAX_MS\n");
		return 2;
	}
	unsigned int ifindex = if_nametoindex(argv[2]);
	unsigned char frame[FRAME] = { 0 };
	struct in_addr dst, base;
	if (!ifindex) {
		fprintf(stderr, "no interface %s\n", argv[2]);
		return 2;
	}
	if (parse_mac(argv[3], frame) || inet_pton(AF_INET, argv[4], &dst) != 1 ||
	    inet_pton(AF_INET, argv[5], &base) != 1) {
		fprintf(stderr, "bad MAC or address\n");
		return 2;
	}
	unsigned int count = (unsigned int)arg_u64(argv[6], 131072, "SRC_COUNT");
	unsigned long long rate = arg_u64(argv[7], 100000000ull, "RATE_PPS");
	unsigned long long max_packets = arg_u64(argv[8], 1000000000ull, "MAX_PACKETS");
	unsigned long long max_ns = arg_u64(argv[9], 60000, "MAX_MS") * 1000000ull;
	unsigned int first = ntohl(base.s_addr);
	if (!count || !in_bench_range(ntohl(dst.s_addr)) || !in_bench_range(first) ||
	    !in_bench_range(first + count - 1)) {
		fprintf(stderr, "addresses must be inside 198.18.0.0/15\n");
		return 2;
	}
	frame[6] = 0x02; /* locally administered source MAC */
	frame[7] = 0xbe;
	frame[8] = 0x17;
	frame[12] = 0x08; /* IPv4 */
	unsigned char *ip = frame + 14;
	ip[0] = 0x45;
	ip[3] = FRAME - 14; /* total length 46 */
	ip[8] = 64;         /* TTL */
	ip[9] = 17;         /* UDP */
	memcpy(ip + 12, &base.s_addr, 4);
	memcpy(ip + 16, &dst.s_addr, 4);
	unsigned char *udp = ip + 20;
	udp[0] = 0x9c; /* source port 40000 */
	udp[1] = 0x40;
	udp[2] = 0x23; /* destination port 9000 */
	udp[3] = 0x28;
	udp[5] = FRAME - 34; /* UDP length 26; checksum 0: none */

	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || libbpf_get_error(obj)) {
		fprintf(stderr, "cannot open %s\n", argv[1]);
		return 1;
	}
	int err = bpf_object__load(obj);
	if (err) {
		fprintf(stderr, "cannot load %s: %s\n", argv[1], strerror(-err));
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "fw_gen");
	struct bpf_map *state = bpf_object__find_map_by_name(obj, "gen_state");
	if (!prog || !state) {
		fprintf(stderr, "%s has no fw_gen or gen_state\n", argv[1]);
		return 1;
	}
	unsigned int zero = 0;
	struct gen_state g = { .base = first, .count = count };
	if (bpf_map_update_elem(bpf_map__fd(state), &zero, &g, BPF_ANY)) {
		perror("gen_state");
		return 1;
	}
	struct xdp_md ctx = { .data = 0, .data_end = FRAME, .ingress_ifindex = ifindex };
	unsigned long long sent = 0;
	unsigned long long start = now_ns(), now = start, next = start;
	while (sent < max_packets && now - start < max_ns) {
		unsigned long long left = max_packets - sent;
		int n = left < CHUNK ? (int)left : CHUNK;
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = FRAME,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = n,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
		err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
		if (err) {
			fprintf(stderr, "live-frames test run: %s\n", strerror(-err));
			return 1;
		}
		sent += (unsigned long long)n;
		now = now_ns();
		if (rate) {
			next += (unsigned long long)n * 1000000000ull / rate;
			if (next > now) {
				struct timespec ts = { (time_t)(next / 1000000000ull),
						       (long)(next % 1000000000ull) };
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
					;
				now = now_ns();
			} else if (now - next > 10000000ull) {
				next = now - 10000000ull; /* far behind: at most 10 ms of catch-up */
			}
		}
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"sent\":%llu,\"ns\":%llu,\"user_us\":%lld,\"sys_us\":%lld}\n", sent, now - start,
	       (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	bpf_object__close(obj);
	return 0;
}
