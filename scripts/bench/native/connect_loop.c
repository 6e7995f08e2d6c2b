/* connect_loop ADDR_IPV4 PORT MAX_SECONDS MAX_CONNECTS
 * A tight TCP connect loop: a listener thread accepts and closes; the main
 * thread does socket/connect/close to ADDR:PORT, blocking, until MAX_CONNECTS
 * attempts or MAX_SECONDS. The client closes with SO_LINGER 0 (a RST), so no
 * TIME_WAIT piles up and the ephemeral ports never run out. Each connected
 * socket's local port is folded into a sum of mixed values (order-free), so
 * a tracer's events can be checked to hold every connect exactly once.
 * Prints one JSON line: attempts, connects, errors, elapsed ns, rate, the
 * port hash, the slowest connect, and the loop's own CPU time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

/* splitmix64's finaliser: spreads a port over 64 bits for the multiset hash */
static unsigned long long mix(unsigned long long x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void *accept_loop(void *arg)
{
	int lfd = *(int *)arg;

	pthread_setname_np(pthread_self(), "connect_accept");
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			close(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			return NULL;
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: connect_loop ADDR_IPV4 PORT MAX_SECONDS MAX_CONNECTS\n");
		return 2;
	}
	struct sockaddr_in dst = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	dst.sin_port = htons((unsigned short)arg_u64(argv[2], 65535, "PORT"));
	unsigned long long max_ns = arg_u64(argv[3], 120, "MAX_SECONDS") * 1000000000ull;
	unsigned long long max_connects = arg_u64(argv[4], 100000000ull, "MAX_CONNECTS");

	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&dst, sizeof(dst)) || listen(lfd, 4096)) {
		perror("listener");
		return 1;
	}
	pthread_t listener;
	if (pthread_create(&listener, NULL, accept_loop, &lfd)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	unsigned long long attempts = 0, connects = 0, errors = 0, hash = 0, slowest = 0;
	int last_errno = 0;
	unsigned long long start = now_ns(), now = start;
	while (attempts < max_connects && now - start < max_ns) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			perror("socket");
			return 1;
		}
		attempts++;
		if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0) {
			struct sockaddr_in me;
			socklen_t len = sizeof(me);
			getsockname(fd, (struct sockaddr *)&me, &len);
			hash += mix(ntohs(me.sin_port));
			connects++;
		} else {
			errors++;
			last_errno = errno;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(fd);
		unsigned long long t = now_ns();
		if (t - now > slowest)
			slowest = t - now;
		now = t;
	}
	unsigned long long ns = now - start;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"pid\":%d,\"attempts\":%llu,\"connects\":%llu,\"errors\":%llu,\"last_errno\":%d,"
	       "\"ns\":%llu,\"rate\":%.1f,\"port_hash\":\"%llu\",\"slowest_us\":%llu,"
	       "\"user_us\":%lld,\"sys_us\":%lld}\n",
	       (int)getpid(), attempts, connects, errors, last_errno, ns,
	       ns ? attempts * 1e9 / (double)ns : 0.0, hash, slowest / 1000,
	       (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	fflush(stdout);
	_exit(0); /* the listener thread is still in accept() */
}
