// SPDX-License-Identifier: GPL-2.0
/*
 * veth_probe: loads build/bpf/veth_probe.o, opens one hardware cycle counter per CPU into its
 * PERF_EVENT_ARRAY (when the CPU has a PMU), attaches the kprobe/kretprobe pair on veth_poll, and
 * prints the totals as one JSON line when told to stop (SIGINT, SIGTERM, a line on stdin, or
 * --max-seconds elapsed).
 *
 *   veth_probe OBJECT [--max-seconds N] [--no-cycles]
 *
 * stdout, one JSON object per line:
 *   {"event":"ready","cpus":N,"cyclesAvailable":bool,"cyclesNullReason":"..."}   once attached
 *   {"event":"totals","calls":..,"packets":..,"ns":..,"cycles":N|null,"cyclesNullReason":"..",
 *    "pollSizes":[[packets,calls,ns],...],...}   (pollSizes: the sizes seen, ascending)
 *   {"event":"error","stage":"open|load|attach|...","errno":N,"message":"..."}     then exit 2
 * libbpf's own warnings go to stderr. EOF on stdin is not a stop request (stdin may be /dev/null).
 * Built by lab/programs/user.ts with `cc ... -lbpf`; links dynamically against libbpf1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* Keep in sync with struct probe_totals in programs/veth_probe.c. */
struct probe_totals {
	uint64_t calls;
	uint64_t packets;
	uint64_t ns;
	uint64_t cycles;
	uint64_t cycle_calls;
	uint64_t orphan_returns;
};

/* Keep in sync with struct poll_size and POLL_SIZES in programs/veth_probe.c. */
struct poll_size {
	uint64_t calls;
	uint64_t ns;
};
#define POLL_SIZES 65

#include "helper_common.h"

/* Prints ,"pollSizes":[[packets,calls,ns],...] summed over the CPUs, or nothing and -1 (errno set). */
static int print_poll_sizes(struct bpf_object *obj, int ncpus)
{
	size_t stride = (sizeof(struct poll_size) + 7) & ~(size_t)7;
	unsigned char *vals = calloc((size_t)ncpus, stride);
	struct poll_size sums[POLL_SIZES] = { 0 };
	int fd = bpf_object__find_map_fd_by_name(obj, "by_size");
	const char *sep = "";
	__u32 key;

	if (!vals || fd < 0) {
		free(vals);
		errno = fd < 0 ? ENOENT : ENOMEM;
		return -1;
	}
	/* Read every slot before printing, so a failed read prints nothing rather than half a list. */
	for (key = 0; key < POLL_SIZES; key++) {
		int i;

		if (bpf_map_lookup_elem(fd, &key, vals) != 0) {
			free(vals);
			return -1;
		}
		for (i = 0; i < ncpus; i++) {
			struct poll_size *s = (struct poll_size *)(vals + (size_t)i * stride);
			sums[key].calls += s->calls;
			sums[key].ns += s->ns;
		}
	}
	free(vals);
	printf(",\"pollSizes\":[");
	for (key = 0; key < POLL_SIZES; key++) {
		if (sums[key].calls == 0)
			continue;
		printf("%s[%u,%llu,%llu]", sep, key, (unsigned long long)sums[key].calls, (unsigned long long)sums[key].ns);
		sep = ",";
	}
	printf("]");
	return 0;
}

static int libbpf_to_stderr(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group, unsigned long flags)
{
	return syscall(__NR_perf_event_open, attr, pid, cpu, group, flags);
}


int main(int argc, char **argv)
{
	const char *obj_path = NULL;
	double max_seconds = 0;
	int want_cycles = 1;
	char cycles_reason[256] = "";
	int cycles_available = 0;
	struct bpf_object *obj = NULL;
	struct bpf_link *links[2] = { NULL, NULL };
	int *perf_fds = NULL;
	int ncpus, i, rc = 2;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
			max_seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--no-cycles") == 0)
			want_cycles = 0;
		else if (argv[i][0] != '-' && !obj_path)
			obj_path = argv[i];
		else {
			emit_error("usage", EINVAL, "usage: %s OBJECT [--max-seconds N] [--no-cycles] (bad argument '%s')",
				   argv[0], argv[i]);
			return 2;
		}
	}
	if (!obj_path) {
		emit_error("usage", EINVAL, "usage: %s OBJECT [--max-seconds N] [--no-cycles]", argv[0]);
		return 2;
	}

	libbpf_set_print(libbpf_to_stderr);
	/* Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. */
	{
		struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };
		setrlimit(RLIMIT_MEMLOCK, &r);
	}

	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0) {
		emit_error("cpus", -ncpus, "cannot count possible CPUs: %s", strerror(-ncpus));
		return 2;
	}

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj) {
		int err = errno;
		emit_error("open", err, "%s: cannot open BPF object: %s", obj_path, strerror(err));
		return 2;
	}
	{
		struct bpf_map *m = bpf_object__find_map_by_name(obj, "cycles_events");
		if (!m) {
			emit_error("open", ENOENT, "%s: no map cycles_events (not veth_probe.o?)", obj_path);
			goto out;
		}
		bpf_map__set_max_entries(m, (unsigned)ncpus);
	}
	{
		int err = bpf_object__load(obj);
		if (err) {
			emit_error("load", -err, "%s: load failed: %s", obj_path, strerror(-err));
			goto out;
		}
	}

	/* One cycle counter per online CPU; the first failure tells why there is no PMU. */
	perf_fds = calloc((size_t)ncpus, sizeof(int));
	for (i = 0; i < ncpus; i++)
		perf_fds[i] = -1;
	if (!want_cycles) {
		snprintf(cycles_reason, sizeof(cycles_reason), "cycle counting disabled (--no-cycles)");
	} else {
		int map_fd = bpf_object__find_map_fd_by_name(obj, "cycles_events");
		int opened = 0, first_errno = 0, first_cpu = -1;
		const char *first_stage = "";

		for (i = 0; i < ncpus; i++) {
			struct perf_event_attr attr;
			__u32 key = (__u32)i;
			int fd;

			memset(&attr, 0, sizeof(attr));
			attr.type = PERF_TYPE_HARDWARE;
			attr.config = PERF_COUNT_HW_CPU_CYCLES;
			attr.size = sizeof(attr);
			fd = (int)perf_event_open(&attr, -1, i, -1, PERF_FLAG_FD_CLOEXEC);
			if (fd < 0) {
				/* ENODEV on a CPU that is possible but not online is not a PMU verdict. */
				if (errno == ENODEV && opened > 0)
					continue;
				if (!first_errno) {
					first_errno = errno;
					first_cpu = i;
					first_stage = "perf_event_open(PERF_COUNT_HW_CPU_CYCLES)";
				}
				continue;
			}
			if (bpf_map_update_elem(map_fd, &key, &fd, BPF_ANY) != 0) {
				if (!first_errno) {
					first_errno = errno;
					first_cpu = i;
					first_stage = "PERF_EVENT_ARRAY update";
				}
				close(fd);
				continue;
			}
			perf_fds[i] = fd;
			opened++;
		}
		if (first_errno) {
			const char *hint = (first_errno == ENOENT || first_errno == ENODEV || first_errno == EOPNOTSUPP)
						   ? " (no hardware cycle counter: no PMU, e.g. QEMU TCG or a VM without -cpu host)"
						   : "";
			snprintf(cycles_reason, sizeof(cycles_reason), "%s failed on CPU %d: %s (errno %d)%s",
				 first_stage, first_cpu, strerror(first_errno), first_errno, hint);
			/* Partial coverage would mix measured and unmeasured calls: count cycles everywhere or nowhere. */
			cycles_available = 0;
		} else {
			cycles_available = opened > 0;
			if (!cycles_available)
				snprintf(cycles_reason, sizeof(cycles_reason), "no CPU accepted a cycle counter");
		}
	}

	{
		const char *progs[2] = { "veth_poll_entry", "veth_poll_return" };
		for (i = 0; i < 2; i++) {
			struct bpf_program *p = bpf_object__find_program_by_name(obj, progs[i]);
			if (!p) {
				emit_error("attach", ENOENT, "%s: no program %s", obj_path, progs[i]);
				goto out;
			}
			links[i] = bpf_program__attach(p);
			if (!links[i]) {
				int err = errno;
				emit_error("attach", err, "%s on veth_poll: %s%s", bpf_program__section_name(p), strerror(err),
					   err == ENOENT || err == EOPNOTSUPP || err == EINVAL
						   ? " (kernel without kprobe events, or veth_poll not in this kernel: is the veth module loaded?)"
						   : "");
				goto out;
			}
		}
	}

	install_stop_handlers();

	printf("{\"event\":\"ready\",\"cpus\":%d,\"cyclesAvailable\":%s", ncpus, cycles_available ? "true" : "false");
	if (!cycles_available) {
		printf(",\"cyclesNullReason\":");
		json_string(stdout, cycles_reason);
	}
	printf("}\n");
	fflush(stdout);

	{
		double deadline = max_seconds > 0 ? now_s() + max_seconds : 0;
		int watch_stdin = 1;

		while (!stop_requested) {
			struct pollfd pfd = { .fd = 0, .events = POLLIN };
			int timeout_ms = 200;
			int n;

			if (deadline > 0 && now_s() >= deadline)
				break;
			n = poll(&pfd, watch_stdin ? 1 : 0, timeout_ms);
			if (n > 0 && watch_stdin && (pfd.revents & (POLLIN | POLLHUP))) {
				char buf[256];
				ssize_t got = read(0, buf, sizeof(buf));
				if (got > 0 && memchr(buf, '\n', (size_t)got))
					break;
				if (got <= 0)
					watch_stdin = 0; /* EOF: no controller on stdin, wait for a signal */
			}
		}
	}

	/* Detach before reading so the totals are final. */
	for (i = 0; i < 2; i++) {
		bpf_link__destroy(links[i]);
		links[i] = NULL;
	}

	{
		size_t stride = (sizeof(struct probe_totals) + 7) & ~(size_t)7;
		unsigned char *vals = calloc((size_t)ncpus, stride);
		struct probe_totals sum = { 0 };
		__u32 key = 0;
		int fd = bpf_object__find_map_fd_by_name(obj, "totals");

		if (!vals || bpf_map_lookup_elem(fd, &key, vals) != 0) {
			emit_error("read", errno, "cannot read the totals map: %s", strerror(errno));
			free(vals);
			goto out;
		}
		for (i = 0; i < ncpus; i++) {
			struct probe_totals *t = (struct probe_totals *)(vals + (size_t)i * stride);
			sum.calls += t->calls;
			sum.packets += t->packets;
			sum.ns += t->ns;
			sum.cycles += t->cycles;
			sum.cycle_calls += t->cycle_calls;
			sum.orphan_returns += t->orphan_returns;
		}
		free(vals);

		printf("{\"event\":\"totals\",\"calls\":%llu,\"packets\":%llu,\"ns\":%llu,",
		       (unsigned long long)sum.calls, (unsigned long long)sum.packets, (unsigned long long)sum.ns);
		if (cycles_available && sum.cycle_calls == sum.calls) {
			printf("\"cycles\":%llu", (unsigned long long)sum.cycles);
		} else {
			char why[320];
			if (!cycles_available)
				snprintf(why, sizeof(why), "%s", cycles_reason);
			else
				snprintf(why, sizeof(why), "cycle counter unreadable on %llu of %llu veth_poll calls",
					 (unsigned long long)(sum.calls - sum.cycle_calls), (unsigned long long)sum.calls);
			printf("\"cycles\":null,\"cyclesNullReason\":");
			json_string(stdout, why);
		}
		printf(",\"cycleCalls\":%llu,\"orphanReturns\":%llu,\"cpus\":%d", (unsigned long long)sum.cycle_calls,
		       (unsigned long long)sum.orphan_returns, ncpus);
		/* The totals stand without the sizes: a failed read leaves them out rather than the run. */
		if (print_poll_sizes(obj, ncpus) != 0)
			fprintf(stderr, "veth_probe: cannot read the poll-size map: %s\n", strerror(errno));
		printf("}\n");
		fflush(stdout);
		rc = 0;
	}

out:
	for (i = 0; i < 2; i++)
		bpf_link__destroy(links[i]);
	if (perf_fds) {
		for (i = 0; i < ncpus; i++)
			if (perf_fds[i] >= 0)
				close(perf_fds[i]);
		free(perf_fds);
	}
	bpf_object__close(obj);
	return rc;
}
