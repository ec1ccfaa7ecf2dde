// SPDX-License-Identifier: GPL-2.0
/* Stage 2 of the trio. Built plain (metrics.o) and with -DMANUAL_NEXT (manual chain). */
#include "metrics.h"
#include "chain.h"

SEC("xdp")
int xdp_metrics(struct xdp_md *ctx)
{
	return chain_next(ctx, job_metrics(ctx));
}

XCL_RUN_CONFIG(xdp_metrics, 20);

char _license[] SEC("license") = "GPL";
