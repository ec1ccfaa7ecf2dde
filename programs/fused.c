// SPDX-License-Identifier: GPL-2.0
/*
 * The three jobs in one program, in chain order: the lower bound on what chaining can cost.
 * Built for XDP (fused.o) and for TC with -DXCL_HOOK_TC (tc_fused.o, see hook.h).
 */
#include "filter.h"
#include "metrics.h"
#include "logger.h"

SEC(XCL_SEC)
int XCL_PROG(fused)(XCL_CTX *ctx)
{
	int verdict = job_filter(ctx);

	if (verdict != XCL_PASS)
		return verdict;
	verdict = job_metrics(ctx);
	if (verdict != XCL_PASS)
		return verdict;
	return job_logger(ctx);
}

char _license[] SEC("license") = "GPL";
