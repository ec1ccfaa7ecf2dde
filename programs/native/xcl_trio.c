// SPDX-License-Identifier: GPL-2.0
/*
 * The native baseline: the fused trio (filter -> metrics -> logger) as a kernel module, run the
 * way BPF_PROG_TEST_RUN runs a program (one frame copied into a kernel buffer once, the program
 * run `repeat` times on it, ktime_get_ns around the runs).
 *
 * One implementation with the BPF programs: this file includes programs/fused.c itself, so the
 * parser (common.h) and the three jobs (filter.h, metrics.h, logger.h) are the same source. The
 * shim (shim/) maps the little that is BPF-only: the context (hook_native.h), the map macros and
 * three helpers (shim/bpf/bpf_helpers.h). The maps are module arrays holding what the BPF maps
 * hold, and the transliteration is here:
 *   deny_ports     (hash u16 -> u8)      a u8 per port, non-zero = denied (a direct index, not a hash)
 *   metrics_stats  (per-CPU array)       one array of CLASS_MAX counters: the module runs one frame
 *                                        at a time under a mutex, so it is the BPF map's CPU sum
 *   log_config     (array, N)            one u32
 *   log_state      (per-CPU u64)         one u64 (the test run is on one CPU: the same sequence)
 *   log_events     (perf event array)    the number of records output and the last one
 *
 * Interface: /proc/xcl_trio. A write() is a script of whole lines; a read() returns the output of
 * the last script (one line per "run" and "metrics"):
 *   reset                           zero the counters, the logger's state and its records
 *   config N IFINDEX [PORT...]      log 1 packet in N (0 = off); the ingress ifindex frames carry
 *                                   (BPF_PROG_TEST_RUN's is the loopback's, 1); the denied ports
 *   run REPEAT HEX                  run the trio REPEAT times on the frame HEX; prints
 *     run verdict V repeat R ns T records C [seq S ifindex I len L ethertype E sport P dport Q l4proto X klass K]
 *                                   T: ns for all R runs; the record fields are the last record's
 *                                   when this run output one
 *   metrics                         prints "metrics" then packets and bytes of each class 0..9
 *   depth D REPEAT                  runs a chain of D nested native calls (1..64) REPEAT times;
 *                                   prints "depth D repeat R ns T verdict V"
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/preempt.h>
#include <linux/uaccess.h>

#include "fused.c"

#define XCL_MAX_FRAME 4096
#define XCL_MAX_SCRIPT (1 << 20)
#define XCL_MAX_OUTPUT (1 << 16)

static __u8 native_deny[1 << 16];
static struct metrics_ctr native_metrics[CLASS_MAX];
static __u32 native_log_n;
static __u64 native_log_seen;
static __u64 native_records;
static struct log_record native_last;

static DEFINE_MUTEX(native_lock);
static char *native_out;
static size_t native_out_len;

static void *xcl_map_lookup(const void *map, const void *key)
{
	if (map == &deny_ports) {
		__u16 port = *(const __u16 *)key;

		return native_deny[port] ? &native_deny[port] : NULL;
	}
	if (map == &metrics_stats) {
		__u32 k = *(const __u32 *)key;

		return k < CLASS_MAX ? &native_metrics[k] : NULL;
	}
	if (map == &log_config)
		return *(const __u32 *)key == 0 ? &native_log_n : NULL;
	if (map == &log_state)
		return *(const __u32 *)key == 0 ? &native_log_seen : NULL;
	return NULL;
}

static long xcl_perf_event_output(const void *map, const void *data, __u64 size)
{
	if (map != &log_events || size != sizeof(native_last))
		return -EINVAL;
	memcpy(&native_last, data, sizeof(native_last));
	native_records++;
	return 0;
}

static __printf(1, 2) void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	native_out_len += vscnprintf(native_out + native_out_len, XCL_MAX_OUTPUT - native_out_len, fmt, ap);
	va_end(ap);
}

static __u32 native_ifindex = 1;

/*
 * As bpf_test_run: RUN `repeat` times with preemption off, timing only the runs, and give the CPU
 * up when asked (the pause is not timed). A macro, not a function taking a callback: an indirect
 * call per run would be timed with it.
 */
#define TIMED_RUNS(total, repeat, RUN)                                  \
	do {                                                            \
		__u64 __start;                                          \
		u32 __i;                                                \
		preempt_disable();                                      \
		__start = ktime_get_ns();                               \
		for (__i = 0; __i < (repeat); __i++) {                  \
			RUN;                                            \
			if (need_resched()) {                           \
				(total) += ktime_get_ns() - __start;    \
				preempt_enable();                       \
				cond_resched();                         \
				preempt_disable();                      \
				__start = ktime_get_ns();               \
			}                                               \
		}                                                       \
		(total) += ktime_get_ns() - __start;                    \
		preempt_enable();                                       \
	} while (0)

/*
 * One program of the native chain, against the microbenchmark's chain/manual-constant: those
 * programs do nothing but pass the packet on, so this does nothing but call the next one. The
 * barrier after the call keeps it out of tail position, so the compiler cannot turn the nesting
 * into a jump or a loop: DEPTH hops are DEPTH nested calls (the seed study's native recursion).
 */
static noinline int xcl_hop(struct xcl_ctx *ctx, u32 left)
{
	int r;

	if (left <= 1)
		return XDP_PASS;
	r = xcl_hop(ctx, left - 1);
	barrier();
	return r;
}

#define XCL_MAX_DEPTH 64

/* depth D REPEAT: prints "depth D repeat R ns T verdict V", T for all R runs of a D-deep chain. */
static int run_depth(u32 depth, u32 repeat)
{
	struct xcl_ctx ctx = { 0 };
	__u64 total = 0;
	int verdict = 0;

	if (depth == 0 || depth > XCL_MAX_DEPTH || repeat == 0)
		return -EINVAL;
	TIMED_RUNS(total, repeat, verdict = xcl_hop(&ctx, depth));
	out("depth %u repeat %u ns %llu verdict %d\n", depth, repeat, total, verdict);
	return 0;
}

static int run_frame(const char *hex, size_t hex_len, u32 repeat)
{
	struct xcl_ctx ctx;
	__u64 total = 0, records_before = native_records;
	u32 len = hex_len / 2;
	int verdict = 0;
	__u8 *frame;

	if (hex_len % 2 || len > XCL_MAX_FRAME || repeat == 0)
		return -EINVAL;
	frame = kmalloc(len ? len : 1, GFP_KERNEL);
	if (!frame)
		return -ENOMEM;
	if (hex2bin(frame, hex, len)) {
		kfree(frame);
		return -EINVAL;
	}
	ctx.data = (unsigned long)frame;
	ctx.data_end = (unsigned long)frame + len;
	ctx.ingress_ifindex = native_ifindex;

	TIMED_RUNS(total, repeat, verdict = xcl_fused(&ctx));
	kfree(frame);

	out("run verdict %d repeat %u ns %llu records %llu", verdict, repeat, total, native_records - records_before);
	if (native_records != records_before)
		out(" seq %llu ifindex %u len %u ethertype %u sport %u dport %u l4proto %u klass %u",
		    native_last.seq, native_last.ifindex, native_last.len, native_last.ethertype,
		    native_last.sport, native_last.dport, native_last.l4proto, native_last.klass);
	out("\n");
	return 0;
}

static int config(char *args)
{
	char *tok;
	u32 n, ifindex;
	u16 port;

	tok = strsep(&args, " ");
	if (!tok || kstrtou32(tok, 10, &n))
		return -EINVAL;
	tok = strsep(&args, " ");
	if (!tok || kstrtou32(tok, 10, &ifindex))
		return -EINVAL;
	memset(native_deny, 0, sizeof(native_deny));
	while ((tok = strsep(&args, " ")) != NULL) {
		if (!*tok)
			continue;
		if (kstrtou16(tok, 10, &port))
			return -EINVAL;
		native_deny[port] = 1;
	}
	native_log_n = n;
	native_ifindex = ifindex;
	return 0;
}

static int command(char *line)
{
	char *verb = strsep(&line, " ");
	int k;

	if (!strcmp(verb, "reset")) {
		memset(native_metrics, 0, sizeof(native_metrics));
		native_log_seen = 0;
		native_records = 0;
		return 0;
	}
	if (!strcmp(verb, "config") && line)
		return config(line);
	if (!strcmp(verb, "run") && line) {
		char *rep = strsep(&line, " ");
		u32 repeat;

		if (!rep || kstrtou32(rep, 10, &repeat))
			return -EINVAL;
		return run_frame(line ? line : "", line ? strlen(line) : 0, repeat);
	}
	if (!strcmp(verb, "depth") && line) {
		char *d = strsep(&line, " ");
		u32 depth, repeat;

		if (!d || kstrtou32(d, 10, &depth) || !line || kstrtou32(line, 10, &repeat))
			return -EINVAL;
		return run_depth(depth, repeat);
	}
	if (!strcmp(verb, "metrics")) {
		out("metrics");
		for (k = 0; k < CLASS_MAX; k++)
			out(" %llu %llu", native_metrics[k].packets, native_metrics[k].bytes);
		out("\n");
		return 0;
	}
	return -EINVAL;
}

static ssize_t native_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char *script, *cursor, *line;
	int err = 0;

	if (count == 0 || count > XCL_MAX_SCRIPT)
		return -EINVAL;
	script = kvmalloc(count + 1, GFP_KERNEL);
	if (!script)
		return -ENOMEM;
	if (copy_from_user(script, ubuf, count)) {
		kvfree(script);
		return -EFAULT;
	}
	/* A script is whole lines: a write cut short by the caller must not run half a frame. */
	if (script[count - 1] != '\n') {
		kvfree(script);
		return -EINVAL;
	}
	script[count] = '\0';
	mutex_lock(&native_lock);
	native_out_len = 0;
	native_out[0] = '\0';
	cursor = script;
	while (!err && (line = strsep(&cursor, "\n")) != NULL) {
		if (*line)
			err = command(line);
	}
	mutex_unlock(&native_lock);
	kvfree(script);
	return err ? err : count;
}

static ssize_t native_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t r;

	mutex_lock(&native_lock);
	r = simple_read_from_buffer(ubuf, count, ppos, native_out, native_out_len);
	mutex_unlock(&native_lock);
	return r;
}

static const struct proc_ops native_ops = {
	.proc_read = native_read,
	.proc_write = native_write,
	.proc_lseek = default_llseek,
};

static struct proc_dir_entry *native_entry;

static int __init xcl_trio_init(void)
{
	native_out = kzalloc(XCL_MAX_OUTPUT, GFP_KERNEL);
	if (!native_out)
		return -ENOMEM;
	native_entry = proc_create("xcl_trio", 0600, NULL, &native_ops);
	if (!native_entry) {
		kfree(native_out);
		return -ENOMEM;
	}
	return 0;
}

static void __exit xcl_trio_exit(void)
{
	proc_remove(native_entry);
	kfree(native_out);
}

module_init(xcl_trio_init);
module_exit(xcl_trio_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("xdp-chain-lab: the fused trio as native kernel code, run like BPF_PROG_TEST_RUN");
