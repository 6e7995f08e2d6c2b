/* map_ops PIN OPS: BPF_MAP_UPDATE_ELEM then BPF_MAP_LOOKUP_ELEM on keys
 * 0..OPS-1 of the pinned hash map (u32 -> struct bench_value), through
 * libbpf's thin syscall wrappers; prints one JSON line with the timings. */
#include <bpf/bpf.h>
#include <string.h>
#include <unistd.h>
#include "common.h"
#include "bench_event.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: map_ops PIN OPS\n");
		return 2;
	}
	unsigned int ops = (unsigned int)arg_u64(argv[2], 10000000, "OPS");
	int fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "bpf_obj_get %s: %s\n", argv[1], strerror(-fd));
		return 1;
	}
	struct bench_value value = { .packets = 1, .bytes = 2 };
	unsigned long long t0 = now_ns();
	unsigned int failed = 0;
	for (unsigned int key = 0; key < ops; key++) {
		if (bpf_map_update_elem(fd, &key, &value, BPF_ANY))
			failed++;
	}
	unsigned long long t1 = now_ns();
	unsigned int misses = 0;
	unsigned long long sum = 0;
	for (unsigned int key = 0; key < ops; key++) {
		if (bpf_map_lookup_elem(fd, &key, &value))
			misses++;
		else
			sum += value.packets;
	}
	unsigned long long t2 = now_ns();
	close(fd);
	printf("{\"ops\":%u,\"updateNs\":%llu,\"lookupNs\":%llu,"
	       "\"failed\":%u,\"misses\":%u,\"sum\":%llu}\n",
	       ops, t1 - t0, t2 - t1, failed, misses, sum);
	return failed || misses ? 1 : 0;
}
