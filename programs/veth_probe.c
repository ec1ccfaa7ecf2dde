// SPDX-License-Identifier: GPL-2.0
/*
 * veth_probe: kprobe + kretprobe on veth_poll (thesis §4.1.2, after Joly & Serman 2020).
 *
 * veth_poll is the NAPI poll of the receiving veth; it runs only while an XDP program is attached,
 * and the XDP programs under test run inside it. Per call we measure
 *   - CPU cycles: hardware cycle counter from a per-CPU perf event (PERF_EVENT_ARRAY filled by
 *     the userspace helper), delta entry -> return;
 *   - nanoseconds: bpf_ktime_get_ns delta;
 *   - packets: veth_poll's return value (packets processed in this poll, <= NAPI budget).
 * Totals accumulate in per-CPU arrays that programs/user/veth_probe_user.c sums at the end, and so
 * do calls and ns per poll size (packets taken by the call): total ns / packets mixes each poll's
 * fixed cost with the per-packet one in proportions that change with how traffic batched, while a
 * least-squares line through the poll sizes separates the two (lab/results/probe-fit.ts).
 *
 * Portable to 4.19: no global data (.data/.bss need 5.2), kprobes attached by section name,
 * per-CPU arrays (4.6), bpf_perf_event_read_value (4.15). BTF-defined maps are parsed by libbpf
 * in userspace and loaded without BTF when the kernel has none.
 */
#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Per-CPU entry state: veth_poll runs in softirq context and does not nest on one CPU. */
struct entry_state {
	__u64 ts;        /* 0 = no entry seen (probe attached mid-call) */
	__u64 cycles;
	__u32 cycles_ok; /* 1 when the cycle counter was readable at entry */
	__u32 pad;
};

/* Keep in sync with struct probe_totals in programs/user/veth_probe_user.c. */
struct probe_totals {
	__u64 calls;         /* completed veth_poll calls with a matching entry */
	__u64 packets;       /* sum of veth_poll return values */
	__u64 ns;            /* sum of ktime deltas */
	__u64 cycles;        /* sum of cycle deltas over calls where both reads succeeded */
	__u64 cycle_calls;   /* calls contributing to `cycles` */
	__u64 orphan_returns;/* returns without an entry (attach raced with a call) */
};

/* NAPI's budget for veth is 64 packets a poll; a larger return (never seen) lands in the last slot. */
#define POLL_SIZES 65

/* Keep in sync with struct poll_size in programs/user/veth_probe_user.c. */
struct poll_size {
	__u64 calls;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, POLL_SIZES);
	__type(key, __u32);
	__type(value, struct poll_size);
} by_size SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	/* max_entries left 0: libbpf sizes it to the number of possible CPUs. */
} cycles_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct entry_state);
} entry SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_totals);
} totals SEC(".maps");

static __always_inline int read_cycles(void *ctx, __u64 *out)
{
	struct bpf_perf_event_value v = {};

	if (bpf_perf_event_read_value(&cycles_events, BPF_F_CURRENT_CPU, &v, sizeof(v)) != 0)
		return 0;
	*out = v.counter;
	return 1;
}

SEC("kprobe/veth_poll")
int veth_poll_entry(struct pt_regs *ctx)
{
	__u32 key = 0;
	struct entry_state *e = bpf_map_lookup_elem(&entry, &key);

	if (!e)
		return 0;
	/* Cycles first and time last so the ns window encloses the cycle window's start. */
	e->cycles_ok = read_cycles(ctx, &e->cycles);
	e->ts = bpf_ktime_get_ns();
	return 0;
}

SEC("kretprobe/veth_poll")
int veth_poll_return(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 cyc = 0;
	int cyc_ok = read_cycles(ctx, &cyc);
	__u32 key = 0;
	struct entry_state *e = bpf_map_lookup_elem(&entry, &key);
	struct probe_totals *t = bpf_map_lookup_elem(&totals, &key);
	struct poll_size *sz;
	__u32 size_key;
	int done;

	if (!e || !t)
		return 0;
	if (e->ts == 0) {
		t->orphan_returns++;
		return 0;
	}
	/* veth_poll returns int: only the low 32 bits of rax are defined. */
	done = (int)PT_REGS_RC(ctx);
	t->calls++;
	if (done > 0)
		t->packets += (__u64)done;
	t->ns += now - e->ts;
	size_key = done <= 0 ? 0 : done >= POLL_SIZES ? POLL_SIZES - 1 : (__u32)done;
	sz = bpf_map_lookup_elem(&by_size, &size_key);
	if (sz) {
		sz->calls++;
		sz->ns += now - e->ts;
	}
	if (cyc_ok && e->cycles_ok && cyc >= e->cycles) {
		t->cycles += cyc - e->cycles;
		t->cycle_calls++;
	}
	e->ts = 0;
	e->cycles_ok = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
