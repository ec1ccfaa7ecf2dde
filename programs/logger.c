// SPDX-License-Identifier: GPL-2.0
/* Stage 3 of the trio. Built plain (logger.o) and with -DMANUAL_NEXT (manual chain). */
#include "logger.h"
#include "chain.h"

SEC("xdp")
int xdp_logger(struct xdp_md *ctx)
{
	return chain_next(ctx, job_logger(ctx));
}

XCL_RUN_CONFIG(xdp_logger, 30);

char _license[] SEC("license") = "GPL";
