/* udp_send DST_IPV4 DST_PORT RATE_PPS MAX_PACKETS MAX_SECONDS PAYLOAD_BYTES
 * Sends numbered UDP datagrams (payload: 8-byte big-endian sequence number
 * from 0, zero padding) to DST with sendmmsg, BATCH datagrams per call, one
 * call every BATCH/RATE seconds on an absolute schedule (RATE 0: flat out),
 * until MAX_PACKETS are sent or MAX_SECONDS have passed. A sender that falls
 * behind its schedule catches up with at most CATCH_UP batches back to back.
 * Prints one JSON line: datagrams sent, send errors, elapsed ns, and the
 * sender's own CPU time (getrusage: the kernel work done in its context, such
 * as a mirror's TC or netdev hooks, included). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

#define BATCH 32
#define MAX_PAYLOAD 1472
#define CATCH_UP 8 /* batches a late sender may send back to back */

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr,
			"usage: udp_send DST_IPV4 DST_PORT RATE_PPS MAX_PACKETS MAX_SECONDS PAYLOAD_BYTES\n");
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	dst.sin_port = htons((unsigned short)arg_u64(argv[2], 65535, "DST_PORT"));
	unsigned long long rate = arg_u64(argv[3], 100000000ull, "RATE_PPS");
	unsigned long long max_packets = arg_u64(argv[4], 1000000000ull, "MAX_PACKETS");
	unsigned long long max_ns = arg_u64(argv[5], 60, "MAX_SECONDS") * 1000000000ull;
	unsigned int size = (unsigned int)arg_u64(argv[6], MAX_PAYLOAD, "PAYLOAD_BYTES");
	if (size < 8) {
		fprintf(stderr, "PAYLOAD_BYTES must be >= 8\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst))) {
		perror("socket/connect");
		return 1;
	}
	static unsigned char payload[BATCH][MAX_PAYLOAD];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = payload[i];
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	unsigned long long interval_ns = rate ? BATCH * 1000000000ull / rate : 0;
	unsigned long long sent = 0, errors = 0, seq = 0;
	unsigned long long start = now_ns(), now = start, next = start;
	while (sent < max_packets && now - start < max_ns) {
		unsigned int n = max_packets - sent < BATCH ? (unsigned int)(max_packets - sent) : BATCH;
		for (unsigned int i = 0; i < n; i++) {
			unsigned long long s = seq + i;
			for (int b = 0; b < 8; b++)
				payload[i][b] = (unsigned char)(s >> (56 - 8 * b));
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
				perror("sendmmsg");
				return 1;
			}
			errors++;
		} else {
			sent += (unsigned int)r;
			seq += (unsigned int)r;
		}
		now = now_ns();
		if (interval_ns) {
			next += interval_ns;
			if (next + CATCH_UP * interval_ns < now)
				next = now - CATCH_UP * interval_ns; /* far behind: bounded burst */
			if (next > now) {
				struct timespec ts = { (time_t)(next / 1000000000ull), (long)(next % 1000000000ull) };
				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
					;
				now = now_ns();
			}
		}
	}
	close(fd);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"sent\":%llu,\"errors\":%llu,\"ns\":%llu,\"user_us\":%lld,\"sys_us\":%lld}\n", sent,
	       errors, now - start, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	return 0;
}
