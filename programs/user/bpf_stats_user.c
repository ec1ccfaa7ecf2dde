// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_stats: turns on the kernel's BPF run-time statistics (run_time_ns, run_cnt of every program)
 * for as long as it runs, and puts the previous state back when it stops (SIGINT, SIGTERM, SIGHUP,
 * a line on stdin, or --max-seconds elapsed). The counters themselves are read with bpftool.
 *
 *   bpf_stats [--mode auto|fd|sysctl] [--max-seconds N]
 *
 * fd:     bpf(BPF_ENABLE_STATS) (5.8+): statistics stay on while this process holds the returned fd,
 *         and the kernel turns them off when it closes, however the process ends (even SIGKILL).
 *         kernel.bpf_stats_enabled is not touched.
 * sysctl: kernel.bpf_stats_enabled (5.1+): saved, set to 1 if it was 0, and written back on exit.
 *         A SIGKILL leaves it at 1: prefer fd.
 * auto:   fd where the kernel has BPF_ENABLE_STATS, else sysctl.
 *
 * stdout, one JSON object per line:
 *   {"event":"ready","mode":"fd|sysctl","sysctlBefore":0|1|null}                 once enabled
 *   {"event":"stopped","mode":"..","sysctlAfter":0|1|null,"restored":true|false}  on exit
 *   {"event":"error","stage":"usage|unsupported|enable|sysctl","errno":N,"message":".."} then exit 2
 * EOF on stdin is not a stop request (stdin may be /dev/null).
 * Built by lab/programs/user.ts with plain `cc` (no libbpf: only the bpf() syscall).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYSCTL_PATH "/proc/sys/kernel/bpf_stats_enabled"

#include "helper_common.h"

/* The sysctl's value (0 or 1), or -1 with errno set. */
static int sysctl_read(void)
{
	char buf[16] = "";
	int fd = open(SYSCTL_PATH, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		errno = n == 0 ? EIO : errno;
		return -1;
	}
	return atoi(buf) != 0;
}

static int sysctl_write(int value)
{
	int fd = open(SYSCTL_PATH, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, value ? "1\n" : "0\n", 2);
	close(fd);
	return n == 2 ? 0 : -1;
}

static int enable_stats_fd(void)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	return (int)syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
}

int main(int argc, char **argv)
{
	const char *mode = "auto";
	double max_seconds = 0;
	int stats_fd = -1, sysctl_before = -1, wrote_sysctl = 0, i;
	const char *used;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
			max_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = argv[++i];
		else {
			emit_error("usage", EINVAL, "usage: %s [--mode auto|fd|sysctl] [--max-seconds N] (bad argument '%s')", argv[0],
				   argv[i]);
			return 2;
		}
	}
	if (strcmp(mode, "auto") != 0 && strcmp(mode, "fd") != 0 && strcmp(mode, "sysctl") != 0) {
		emit_error("usage", EINVAL, "--mode must be auto, fd or sysctl (got '%s')", mode);
		return 2;
	}

	/* Read before anything changes, so both modes can report what the setting was. */
	sysctl_before = sysctl_read();
	if (sysctl_before < 0 && errno != ENOENT) {
		emit_error("sysctl", errno, "cannot read %s: %s", SYSCTL_PATH, strerror(errno));
		return 2;
	}

	if (strcmp(mode, "sysctl") != 0) {
		stats_fd = enable_stats_fd();
		if (stats_fd < 0) {
			int err = errno;
			/* EINVAL: a kernel before 5.8 does not know the command. */
			if (strcmp(mode, "fd") == 0 || err != EINVAL) {
				emit_error(err == EINVAL ? "unsupported" : "enable", err, "bpf(BPF_ENABLE_STATS): %s%s", strerror(err),
					   err == EINVAL ? " (the command exists from Linux 5.8)" : "");
				return 2;
			}
		}
	}
	if (stats_fd >= 0) {
		used = "fd";
	} else {
		used = "sysctl";
		if (sysctl_before < 0) {
			emit_error("unsupported", ENOENT,
				   "no BPF run-time statistics: bpf(BPF_ENABLE_STATS) is not supported (Linux 5.8+) and %s does not exist (Linux 5.1+)",
				   SYSCTL_PATH);
			return 2;
		}
		if (sysctl_before == 0) {
			if (sysctl_write(1) != 0) {
				emit_error("sysctl", errno, "cannot write 1 to %s: %s", SYSCTL_PATH, strerror(errno));
				return 2;
			}
			wrote_sysctl = 1;
		}
	}

	install_stop_handlers();

	printf("{\"event\":\"ready\",\"mode\":\"%s\",\"sysctlBefore\":", used);
	if (sysctl_before < 0)
		printf("null}\n");
	else
		printf("%d}\n", sysctl_before);
	fflush(stdout);

	{
		double deadline = max_seconds > 0 ? now_s() + max_seconds : 0;
		int watch_stdin = 1;

		while (!stop_requested) {
			struct pollfd pfd = { .fd = 0, .events = POLLIN };
			int n;

			if (deadline > 0 && now_s() >= deadline)
				break;
			n = poll(&pfd, watch_stdin ? 1 : 0, 200);
			if (n > 0 && watch_stdin && (pfd.revents & (POLLIN | POLLHUP))) {
				char buf[256];
				ssize_t got = read(0, buf, sizeof(buf));
				if (got > 0 && memchr(buf, '\n', (size_t)got))
					break;
				if (got <= 0)
					watch_stdin = 0;
			}
		}
	}

	{
		int restored = 1, after;

		if (stats_fd >= 0)
			close(stats_fd);
		if (wrote_sysctl && sysctl_write(sysctl_before) != 0)
			restored = 0;
		after = sysctl_read();
		/* Only the sysctl mode writes the setting; in fd mode a change there is someone else's. */
		if (wrote_sysctl && after != sysctl_before)
			restored = 0;
		printf("{\"event\":\"stopped\",\"mode\":\"%s\",\"sysctlAfter\":", used);
		if (after < 0)
			printf("null");
		else
			printf("%d", after);
		printf(",\"restored\":%s}\n", restored ? "true" : "false");
		fflush(stdout);
		return restored ? 0 : 1;
	}
}
