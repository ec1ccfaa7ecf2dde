// SPDX-License-Identifier: GPL-2.0
/* The three jobs in one program, in chain order: the lower bound on what chaining can cost. */
#include "filter.h"
#include "metrics.h"
#include "logger.h"

SEC("xdp")
int xdp_fused(struct xdp_md *ctx)
{
	int verdict = job_filter(ctx);

	if (verdict != XDP_PASS)
		return verdict;
	verdict = job_metrics(ctx);
	if (verdict != XDP_PASS)
		return verdict;
	return job_logger(ctx);
}

char _license[] SEC("license") = "GPL";
