/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The native module's "hook" (programs/hook.h's names, defined before it so it is skipped): the
 * context is a frame in a kernel buffer with XDP's view of it (data .. data_end, ingress ifindex),
 * pointers held in unsigned long because struct xdp_md's __u32 fields cannot hold a kernel address;
 * the verdicts are XDP's, so the module answers with the numbers BPF_PROG_TEST_RUN returns.
 */
#ifndef XCL_NATIVE_HOOK_H
#define XCL_NATIVE_HOOK_H

#include <linux/types.h>
#include <uapi/linux/bpf.h>

struct xcl_ctx {
	unsigned long data;
	unsigned long data_end;
	__u32 ingress_ifindex;
};

#define XCL_HOOK_H /* programs/hook.h: these names instead */
#define XCL_CTX struct xcl_ctx
#define XCL_SEC "native"
#define XCL_PROG(job) xcl_##job
#define XCL_PASS XDP_PASS
#define XCL_DROP XDP_DROP
#define XCL_FRAME_LEN(ctx) ((__u32)((ctx)->data_end - (ctx)->data))

#endif
