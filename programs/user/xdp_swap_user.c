// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_swap: a compare-and-swap on an interface's XDP program. The new program is installed only
 * if the expected one is still attached, in one netlink call with XDP_FLAGS_REPLACE and the
 * expected program's fd (IFLA_XDP_EXPECTED_FD, kernel 5.7+); otherwise nothing changes.
 *
 *   xdp_swap --ifname IF [--netns NAME] --new PIN --expect-id ID [--mode native|skb]
 *
 * stdout, one JSON object:
 *   {"event":"swapped","method":"xdp-flags-replace","oldId":N,"newId":N}
 *   {"event":"error","stage":"usage|netns|ifname|new|expected|mismatch|unsupported|attach","errno":N,"message":".."}
 * Exit 0 swapped, 3 the expected program is not attached (stage mismatch: nothing changed),
 * 2 any other error. bpftool and iproute2 (bookworm) expose no XDP_FLAGS_REPLACE: hence this.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "helper_common.h"
#include "netns_ifindex.h"

static unsigned int prog_id(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *netns = NULL, *pin = NULL, *mode = "native";
	long expect = -1;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ifname"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--netns"))
			netns = argv[i + 1];
		else if (!strcmp(argv[i], "--new"))
			pin = argv[i + 1];
		else if (!strcmp(argv[i], "--expect-id"))
			expect = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else
			break;
	}
	if (i != argc || !ifname || !pin || expect <= 0 || (strcmp(mode, "native") && strcmp(mode, "skb"))) {
		emit_error("usage", EINVAL, "usage: xdp_swap --ifname IF [--netns NAME] --new PIN --expect-id ID [--mode native|skb]");
		return 2;
	}
	libbpf_set_print(NULL);
	unsigned int ifindex = netns_ifindex(netns, ifname);
	if (!ifindex)
		return 2;
	int new_fd = bpf_obj_get(pin);
	if (new_fd < 0) {
		emit_error("new", errno, "cannot open pinned program %s: %s", pin, strerror(errno));
		return 2;
	}
	int old_fd = bpf_prog_get_fd_by_id((__u32)expect);
	if (old_fd < 0) {
		/* The expected program no longer exists, so it cannot be attached: a mismatch. */
		emit_error("mismatch", errno, "expected program %ld does not exist any more: %s", expect, strerror(errno));
		return 3;
	}
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
	__u32 flags = XDP_FLAGS_REPLACE | (strcmp(mode, "skb") ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
	int err = bpf_xdp_attach((int)ifindex, new_fd, flags, &opts);
	if (err) {
		/* EEXIST: another program than the expected one is attached (the kernel's word for it). */
		if (err == -EEXIST) {
			emit_error("mismatch", -err, "%s does not run program %ld any more: nothing changed", ifname, expect);
			return 3;
		}
		emit_error(err == -EINVAL || err == -EOPNOTSUPP ? "unsupported" : "attach", -err, "XDP_FLAGS_REPLACE attach on %s failed: %s", ifname, strerror(-err));
		return 2;
	}
	printf("{\"event\":\"swapped\",\"method\":\"xdp-flags-replace\",\"oldId\":%ld,\"newId\":%u}\n", expect, prog_id(new_fd));
	return 0;
}
