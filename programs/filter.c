// SPDX-License-Identifier: GPL-2.0
/*
 * Stage 1 of the trio. Built plain (filter.o), with -DMANUAL_NEXT (manual chain), and for the TC hook
 * with -DXCL_HOOK_TC (tc_filter*.o, see hook.h): lab/programs/build.ts lists the variants.
 */
#include "filter.h"
#include "chain.h"

SEC(XCL_SEC)
int XCL_PROG(filter)(XCL_CTX *ctx)
{
	return chain_next(ctx, job_filter(ctx));
}

XCL_RUN_CONFIG(filter, 10);

char _license[] SEC("license") = "GPL";
