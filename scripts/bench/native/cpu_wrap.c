/* cpu_wrap OUT_JSON CMD [ARGS...]
 * Runs CMD as a child, forwards SIGTERM and SIGINT to it, and when it exits
 * writes its CPU time to OUT_JSON: {"pid":N,"user_us":N,"sys_us":N,"code":N}
 * (from wait4's rusage, so the child's shutdown work is included). Exits with
 * the child's code. Prints "cpu_wrap pid N" on stderr once the child runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child = 0;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cpu_wrap OUT_JSON CMD [ARGS...]\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = forward };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execvp(argv[2], argv + 2);
		perror("execvp");
		_exit(127);
	}
	child = pid;
	fprintf(stderr, "cpu_wrap pid %d\n", (int)pid);
	int status = 0;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("wait4");
			return 1;
		}
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 1;
	}
	fprintf(out, "{\"pid\":%d,\"user_us\":%lld,\"sys_us\":%lld,\"code\":%d}\n", (int)pid,
		(long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, code);
	fclose(out);
	return code;
}
