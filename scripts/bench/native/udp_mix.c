/* udp_mix DST_IPV4 MATCH_PORT OTHER_PORT EVERY RATE_PPS MAX_PACKETS MAX_SECONDS PAYLOAD_BYTES
 * The sniff bench's sender: UDP datagrams to DST where datagram i (from 0)
 * goes to MATCH_PORT when i % EVERY == 0 and to one of 64 other ports
 * (OTHER_PORT + i % 64, none of them MATCH_PORT) otherwise; EVERY 1 sends
 * all of them to MATCH_PORT. Payload: 8-byte big-endian sequence number,
 * zero padding. sendmmsg on an unconnected socket, BATCH datagrams per call,
 * one call every BATCH/RATE seconds on an absolute schedule (RATE 0: flat
 * out), until MAX_PACKETS are sent or MAX_SECONDS have passed; a sender that
 * falls behind catches up with at most CATCH_UP batches back to back.
 * Prints one JSON line: datagrams sent, how many of them to MATCH_PORT, send
 * errors, elapsed ns, and its own CPU time (getrusage: the receive path and
 * the socket filters of the captures run in its context on a veth). */
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
#define CATCH_UP 8
#define OTHER_PORTS 64

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: udp_mix DST_IPV4 MATCH_PORT OTHER_PORT EVERY RATE_PPS "
				"MAX_PACKETS MAX_SECONDS PAYLOAD_BYTES\n");
		return 2;
	}
	struct sockaddr_in base = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[1], &base.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	unsigned int match = (unsigned int)arg_u64(argv[2], 65535, "MATCH_PORT");
	unsigned int other = (unsigned int)arg_u64(argv[3], 65535 - OTHER_PORTS, "OTHER_PORT");
	unsigned long long every = arg_u64(argv[4], 1000000, "EVERY");
	unsigned long long rate = arg_u64(argv[5], 100000000ull, "RATE_PPS");
	unsigned long long max_packets = arg_u64(argv[6], 1000000000ull, "MAX_PACKETS");
	unsigned long long max_ns = arg_u64(argv[7], 60, "MAX_SECONDS") * 1000000000ull;
	unsigned int size = (unsigned int)arg_u64(argv[8], MAX_PAYLOAD, "PAYLOAD_BYTES");
	if (size < 8 || every < 1 || (match >= other && match < other + OTHER_PORTS)) {
		fprintf(stderr, "need PAYLOAD_BYTES >= 8, EVERY >= 1, MATCH_PORT outside the others\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	static unsigned char payload[BATCH][MAX_PAYLOAD];
	static struct sockaddr_in dst[BATCH];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		dst[i] = base;
		iov[i].iov_base = payload[i];
		iov[i].iov_len = size;
		msgs[i].msg_hdr.msg_name = &dst[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(dst[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	unsigned long long interval_ns = rate ? BATCH * 1000000000ull / rate : 0;
	unsigned long long sent = 0, matched = 0, errors = 0;
	unsigned long long start = now_ns(), now = start, next = start;
	while (sent < max_packets && now - start < max_ns) {
		unsigned int n = max_packets - sent < BATCH ? (unsigned int)(max_packets - sent) : BATCH;
		for (unsigned int i = 0; i < n; i++) {
			unsigned long long s = sent + i;
			for (int b = 0; b < 8; b++)
				payload[i][b] = (unsigned char)(s >> (56 - 8 * b));
			unsigned int port = s % every == 0 ? match : other + (unsigned int)(s % OTHER_PORTS);
			dst[i].sin_port = htons((unsigned short)port);
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
				perror("sendmmsg");
				return 1;
			}
			errors++;
		} else {
			for (unsigned int i = 0; i < (unsigned int)r; i++)
				matched += (sent + i) % every == 0;
			sent += (unsigned int)r;
		}
		now = now_ns();
		if (interval_ns) {
			next += interval_ns;
			if (next + CATCH_UP * interval_ns < now)
				next = now - CATCH_UP * interval_ns;
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
	printf("{\"sent\":%llu,\"matched\":%llu,\"errors\":%llu,\"ns\":%llu,\"user_us\":%lld,"
	       "\"sys_us\":%lld}\n",
	       sent, matched, errors, now - start,
	       (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	return 0;
}
