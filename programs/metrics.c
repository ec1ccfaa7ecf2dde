// SPDX-License-Identifier: GPL-2.0
/*
 * Stage 2 of the trio. Built plain (metrics.o), with -DMANUAL_NEXT (manual chain), and for the TC hook
 * with -DXCL_HOOK_TC (tc_metrics*.o, see hook.h): lab/programs/build.ts lists the variants.
 */
#include "metrics.h"
#include "chain.h"

SEC(XCL_SEC)
int XCL_PROG(metrics)(XCL_CTX *ctx)
{
	return chain_next(ctx, job_metrics(ctx));
}

XCL_RUN_CONFIG(metrics, 20);

char _license[] SEC("license") = "GPL";
