// SPDX-License-Identifier: GPL-2.0
/*
 * load_stats: loads BPF objects the way libbpf loads them and says where the load time went, from
 * the kernel's own words: each program is loaded with verifier log level 4 (BPF_LOG_STATS), at
 * which the verifier prints only its statistics ("verification time N usec", "processed N insns"),
 * so logging does not slow the verification it measures. The whole bpf_object__load (maps, BTF,
 * verification, JIT) is timed around the call. Nothing stays loaded: each object is closed after.
 *
 *   load_stats OBJECT...
 *
 * stdout, one JSON object per line:
 *   {"event":"program","object":"..","program":"..","verificationUs":N|null,"insnsProcessed":N|null,
 *    "xlatedBytes":N,"jitedBytes":N}                                    per program
 *   {"event":"object","object":"..","loadNs":N,"logStats":true|false}  per object, after its programs
 *   {"event":"error","stage":"open|load","errno":N,"message":".."} then exit 2
 * A kernel older than BPF_LOG_STATS refuses log level 4 (EINVAL): the object is loaded again
 * without a log, its programs' statistics are null and "logStats" is false.
 * Built by lab/programs/user.ts with cc + libbpf.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "helper_common.h"

#define LOG_SIZE (1u << 16)

static long long number_after(const char *log, const char *key)
{
	const char *p = log ? strstr(log, key) : NULL;

	if (!p)
		return -1;
	return strtoll(p + strlen(key), NULL, 10);
}

static void print_nullable(const char *key, long long v)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%lld", key, v);
}

/* libbpf's own errors (e.g. 4001: not an ELF object) have no strerror text. */
static const char *err_text(int err)
{
	static char buf[256];

	if (libbpf_strerror(err, buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "%s", strerror(err));
	return buf;
}

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* Opens path; with stats, gives every program a log buffer at level 4. */
static struct bpf_object *open_object(const char *path, int stats, char **logs, int max)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *prog;
	int i = 0;

	if (!obj)
		return NULL;
	bpf_object__for_each_program(prog, obj) {
		if (!stats || i >= max)
			break;
		logs[i][0] = '\0';
		bpf_program__set_log_buf(prog, logs[i], LOG_SIZE);
		bpf_program__set_log_level(prog, 4);
		i++;
	}
	return obj;
}

static int report_object(const char *path, char **logs, int max)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	double t0, t1;
	int stats, err = 0, i = 0;

	/* With the statistics first; a kernel before BPF_LOG_STATS refuses level 4 (EINVAL): then
	 * load as libbpf normally does. */
	for (stats = 1; stats >= 0; stats--) {
		obj = open_object(path, stats, logs, max);
		if (!obj) {
			emit_error("open", errno, "%s: cannot open: %s", path, err_text(errno));
			return -1;
		}
		t0 = now_s();
		err = bpf_object__load(obj);
		t1 = now_s();
		if (err != -EINVAL || !stats)
			break;
		bpf_object__close(obj);
	}
	if (err) {
		emit_error("load", -err, "%s: load failed: %s", path, err_text(-err));
		bpf_object__close(obj);
		return -1;
	}
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		const char *log = stats && i < max ? logs[i] : NULL;

		memset(&info, 0, sizeof(info));
		bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
		printf("{\"event\":\"program\",\"object\":");
		json_string(stdout, path);
		printf(",\"program\":");
		json_string(stdout, bpf_program__name(prog));
		print_nullable("verificationUs", number_after(log, "verification time "));
		print_nullable("insnsProcessed", number_after(log, "processed "));
		printf(",\"xlatedBytes\":%u,\"jitedBytes\":%u}\n", info.xlated_prog_len, info.jited_prog_len);
		i++;
	}
	printf("{\"event\":\"object\",\"object\":");
	json_string(stdout, path);
	printf(",\"loadNs\":%.0f,\"logStats\":%s}\n", (t1 - t0) * 1e9, stats ? "true" : "false");
	fflush(stdout);
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	enum { MAX_PROGS = 16 };
	char *logs[MAX_PROGS];
	int i;

	if (argc < 2) {
		emit_error("usage", EINVAL, "usage: load_stats OBJECT...");
		return 2;
	}
	libbpf_set_print(silent_print);
	for (i = 0; i < MAX_PROGS; i++) {
		logs[i] = calloc(1, LOG_SIZE);
		if (!logs[i]) {
			emit_error("usage", ENOMEM, "out of memory");
			return 2;
		}
	}
	for (i = 1; i < argc; i++)
		if (report_object(argv[i], logs, MAX_PROGS))
			return 2;
	return 0;
}
