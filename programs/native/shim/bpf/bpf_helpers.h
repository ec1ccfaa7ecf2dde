/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libbpf's <bpf/bpf_helpers.h> as the native module needs it: the job headers (programs/{filter,metrics,logger,common}.h)
 * compile as kernel C when their map definitions become plain (unused) structs and the three
 * helpers they call become calls into the module's own arrays (xcl_trio.c). The BTF map macros
 * expand as libbpf's do, so a map definition is the same declaration it is in the BPF object.
 */
#ifndef XCL_NATIVE_BPF_HELPERS_H
#define XCL_NATIVE_BPF_HELPERS_H

#include <linux/ktime.h>

/* Sections mean nothing to the module: maps are looked up by address (xcl_map_lookup). */
#define SEC(name)
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

/* Defined in xcl_trio.c, after the job headers have declared the maps it compares against. */
static void *xcl_map_lookup(const void *map, const void *key);
static long xcl_perf_event_output(const void *map, const void *data, __u64 size);

#define bpf_map_lookup_elem(map, key) xcl_map_lookup((map), (key))
#define bpf_ktime_get_ns() ktime_get_ns()
#define bpf_perf_event_output(ctx, map, flags, data, size) xcl_perf_event_output((map), (data), (size))

#endif
