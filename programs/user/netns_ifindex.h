/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface a helper acts on: enter the named network namespace (/run/netns/<name>) when one
 * is given, then find the interface's index there. Shared by the helpers that attach programs
 * (xdp_swap, tcx); the includer defines _GNU_SOURCE (setns) before its first include.
 */
#ifndef XCL_NETNS_IFINDEX_H
#define XCL_NETNS_IFINDEX_H

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helper_common.h"

/* The index of ifname (in netns when not NULL), or 0 after printing the error line (stage netns or ifname). */
static inline unsigned int netns_ifindex(const char *netns, const char *ifname)
{
	unsigned int ifindex;

	if (netns) {
		char path[256];
		int nfd;

		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0) {
			emit_error("netns", errno, "cannot enter network namespace %s: %s", path, strerror(errno));
			return 0;
		}
		close(nfd);
	}
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		emit_error("ifname", errno, "no interface %s%s%s", ifname, netns ? " in netns " : "", netns ? netns : "");
	return ifindex;
}

#endif
