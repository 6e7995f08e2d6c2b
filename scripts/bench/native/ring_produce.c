/* ring_produce PROG_PIN BATCH INTERVAL_US MAX_RUNS MAX_SECONDS
 * Runs the pinned TC producer through BPF_PROG_TEST_RUN, BATCH runs per
 * call (repeat), one call every INTERVAL_US on an absolute schedule (0: flat
 * out), until MAX_RUNS runs or MAX_SECONDS, then one "flush" run (packet
 * byte 0 = 1: that event wakes the reader, see bench.bpf.c); prints one JSON
 * line. MAX_RUNS counts the flush run. */
#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: ring_produce PROG_PIN BATCH INTERVAL_US MAX_RUNS MAX_SECONDS\n");
		return 2;
	}
	unsigned int batch = (unsigned int)arg_u64(argv[2], 1000000, "BATCH");
	unsigned long long interval_ns = arg_u64(argv[3], 10000000, "INTERVAL_US") * 1000ull;
	unsigned long long max_runs = arg_u64(argv[4], 1000000000ull, "MAX_RUNS");
	unsigned long long max_ns = arg_u64(argv[5], 120, "MAX_SECONDS") * 1000000000ull;
	if (batch == 0) {
		fprintf(stderr, "BATCH must be > 0\n");
		return 2;
	}
	int fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "bpf_obj_get %s: %s\n", argv[1], strerror(-fd));
		return 1;
	}
	unsigned char packet[64] = { 0 };
	unsigned long long runs = 0, calls = 0;
	unsigned long long start = now_ns(), end = start;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	if (max_runs == 0) {
		fprintf(stderr, "MAX_RUNS must be > 0\n");
		return 2;
	}
	max_runs--; /* the flush run */
	while (runs < max_runs && end - start < max_ns) {
		unsigned int n = max_runs - runs < batch ? (unsigned int)(max_runs - runs) : batch;
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet, .data_size_in = sizeof(packet),
			    .repeat = n);
		int rc = bpf_prog_test_run_opts(fd, &opts);
		if (rc) {
			fprintf(stderr, "bpf_prog_test_run_opts: %s\n", strerror(-rc));
			return 1;
		}
		runs += n;
		calls++;
		if (interval_ns) {
			next.tv_nsec += (long)interval_ns;
			while (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
		}
		end = now_ns();
	}
	packet[0] = 1;
	LIBBPF_OPTS(bpf_test_run_opts, flush, .data_in = packet, .data_size_in = sizeof(packet),
		    .repeat = 1);
	int rc = bpf_prog_test_run_opts(fd, &flush);
	if (rc) {
		fprintf(stderr, "bpf_prog_test_run_opts (flush): %s\n", strerror(-rc));
		return 1;
	}
	runs++;
	calls++;
	end = now_ns();
	close(fd);
	printf("{\"runs\":%llu,\"calls\":%llu,\"ns\":%llu}\n", runs, calls, end - start);
	return 0;
}
