// SPDX-License-Identifier: GPL-2.0
/* Stage 1 of the trio. Built plain (filter.o) and with -DMANUAL_NEXT (manual chain). */
#include "filter.h"
#include "chain.h"

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	return chain_next(ctx, job_filter(ctx));
}

XCL_RUN_CONFIG(xdp_filter, 10);

char _license[] SEC("license") = "GPL";
