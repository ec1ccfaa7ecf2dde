// SPDX-License-Identifier: GPL-2.0
/*
 * Stage 3 of the trio. Built plain (logger.o), with -DMANUAL_NEXT (manual chain), and for the TC hook
 * with -DXCL_HOOK_TC (tc_logger*.o, see hook.h): lab/programs/build.ts lists the variants.
 */
#include "logger.h"
#include "chain.h"

SEC(XCL_SEC)
int XCL_PROG(logger)(XCL_CTX *ctx)
{
	return chain_next(ctx, job_logger(ctx));
}

XCL_RUN_CONFIG(logger, 30);

char _license[] SEC("license") = "GPL";
