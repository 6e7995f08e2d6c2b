/* ring_consume MAP_PIN MODE EXPECTED MAX_SECONDS IDLE_MS
 * A libbpf ring buffer consumer on the pinned ring: MODE "poll" waits with
 * ring_buffer__poll while a producer runs; "drain" empties a ring filled
 * beforehand with ring_buffer__consume. Stops at EXPECTED events (0: no
 * limit), after IDLE_MS without events once some came, or at MAX_SECONDS.
 * Prints "ready" once set up, then one JSON line. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>
#include <unistd.h>
#include "common.h"
#include "bench_event.h"

struct state {
	unsigned long long received;
	unsigned long long disorder;
	unsigned long long last_seq;
	unsigned long long first_ns; /* when the first event was read */
};

static int on_event(void *ctx, void *data, size_t size)
{
	struct state *s = ctx;
	const struct bench_event *e = data;
	if (size < sizeof(*e))
		return 0;
	if (!s->received)
		s->first_ns = now_ns();
	else if (e->seq <= s->last_seq)
		s->disorder++;
	s->last_seq = e->seq;
	s->received++;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: ring_consume MAP_PIN poll|drain EXPECTED MAX_SECONDS IDLE_MS\n");
		return 2;
	}
	int drain = strcmp(argv[2], "drain") == 0;
	if (!drain && strcmp(argv[2], "poll") != 0) {
		fprintf(stderr, "MODE must be poll or drain\n");
		return 2;
	}
	unsigned long long expected = arg_u64(argv[3], 1000000000ull, "EXPECTED");
	unsigned long long max_ns = arg_u64(argv[4], 120, "MAX_SECONDS") * 1000000000ull;
	unsigned long long idle_ns = arg_u64(argv[5], 10000, "IDLE_MS") * 1000000ull;
	int fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "bpf_obj_get %s: %s\n", argv[1], strerror(-fd));
		return 1;
	}
	struct state s = { 0 };
	struct ring_buffer *rb = ring_buffer__new(fd, on_event, &s, NULL);
	if (!rb) {
		fprintf(stderr, "ring_buffer__new failed\n");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	unsigned long long start = now_ns(), last = 0, now = start;
	while (now - start < max_ns && (!expected || s.received < expected)) {
		unsigned long long before = s.received;
		int rc = drain ? ring_buffer__consume(rb) : ring_buffer__poll(rb, 50);
		if (rc < 0) {
			fprintf(stderr, "ring buffer: %s\n", strerror(-rc));
			break;
		}
		now = now_ns();
		if (s.received > before) {
			last = now;
		} else if (s.received && now - last >= idle_ns) {
			break;
		}
	}
	ring_buffer__free(rb);
	close(fd);
	printf("{\"received\":%llu,\"disorder\":%llu,\"firstNs\":%llu,\"lastNs\":%llu,\"startNs\":%llu}\n",
	       s.received, s.disorder, s.first_ns, last, start);
	return 0;
}
