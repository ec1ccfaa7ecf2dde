// SPDX-License-Identifier: GPL-2.0
/*
 * tcx: the operations on an interface's tcx ingress programs (bpf_mprog, kernel 6.6+) that
 * bpftool cannot do precisely: `bpftool net detach tcx_ingress` detaches whichever program is
 * last, and bpftool has no in-place replace. Through libbpf's bpf_prog_*_opts (1.3+):
 *
 *   tcx --op query   --ifname IF [--netns NAME]
 *   tcx --op detach  --ifname IF [--netns NAME] --id ID
 *   tcx --op replace --ifname IF [--netns NAME] --new PIN --old-id ID
 *
 * detach removes program ID and no other; replace puts PIN where ID is, in one BPF_PROG_ATTACH
 * with BPF_F_REPLACE (the kernel publishes the new program array at once, so no packet meets the
 * list without that position). query lists the programs in the order the kernel runs them.
 *
 * stdout, one JSON object:
 *   {"event":"query","revision":N,"ids":[N,...]}
 *   {"event":"detached","id":N}
 *   {"event":"replaced","method":"tcx-replace","oldId":N,"newId":N}
 *   {"event":"error","stage":"usage|netns|ifname|new|old|notattached|query|detach|replace","errno":N,"message":".."}
 * Exit 0 done, 3 program ID is not on tcx ingress of IF (nothing changed), 2 any other error.
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
#include <linux/bpf.h>

#include "helper_common.h"
#include "netns_ifindex.h"

/* bpf_mprog holds at most 64 programs per hook (BPF_MPROG_MAX). */
#define MAX_PROGS 64

static unsigned int prog_id(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

static int query(unsigned int ifindex, __u32 *ids, __u32 *count, __u64 *revision)
{
	LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .count = MAX_PROGS);
	int err = bpf_prog_query_opts((int)ifindex, BPF_TCX_INGRESS, &q);

	if (err)
		return err;
	*count = q.count;
	*revision = q.revision;
	return 0;
}

static int attached(unsigned int ifindex, long id)
{
	__u32 ids[MAX_PROGS], n = 0, i;
	__u64 rev = 0;

	if (query(ifindex, ids, &n, &rev))
		return 0;
	for (i = 0; i < n; i++)
		if (ids[i] == (__u32)id)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *op = NULL, *ifname = NULL, *netns = NULL, *pin = NULL;
	long id = -1, old_id = -1;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--op"))
			op = argv[i + 1];
		else if (!strcmp(argv[i], "--ifname"))
			ifname = argv[i + 1];
		else if (!strcmp(argv[i], "--netns"))
			netns = argv[i + 1];
		else if (!strcmp(argv[i], "--new"))
			pin = argv[i + 1];
		else if (!strcmp(argv[i], "--id"))
			id = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--old-id"))
			old_id = strtol(argv[i + 1], NULL, 10);
		else
			break;
	}
	if (i != argc || !op || !ifname || (strcmp(op, "query") && strcmp(op, "detach") && strcmp(op, "replace")) ||
	    (!strcmp(op, "detach") && id <= 0) || (!strcmp(op, "replace") && (!pin || old_id <= 0))) {
		emit_error("usage", EINVAL, "usage: tcx --op query|detach|replace --ifname IF [--netns NAME] [--id ID] [--new PIN --old-id ID]");
		return 2;
	}
	libbpf_set_print(NULL);
	unsigned int ifindex = netns_ifindex(netns, ifname);
	if (!ifindex)
		return 2;

	if (!strcmp(op, "query")) {
		__u32 ids[MAX_PROGS], n = 0, k;
		__u64 rev = 0;
		int err = query(ifindex, ids, &n, &rev);

		if (err) {
			emit_error("query", -err, "BPF_PROG_QUERY of tcx ingress on %s failed: %s", ifname, strerror(-err));
			return 2;
		}
		printf("{\"event\":\"query\",\"revision\":%llu,\"ids\":[", (unsigned long long)rev);
		for (k = 0; k < n; k++)
			printf("%s%u", k ? "," : "", ids[k]);
		printf("]}\n");
		return 0;
	}

	long target_id = !strcmp(op, "detach") ? id : old_id;
	int old_fd = bpf_prog_get_fd_by_id((__u32)target_id);
	if (old_fd < 0) {
		/* A program that no longer exists cannot be attached: nothing to do, and the caller says so. */
		emit_error("notattached", errno, "program %ld does not exist: %s", target_id, strerror(errno));
		return 3;
	}
	if (!attached(ifindex, target_id)) {
		emit_error("notattached", ENOENT, "program %ld is not on tcx ingress of %s: nothing changed", target_id, ifname);
		return 3;
	}

	if (!strcmp(op, "detach")) {
		int err = bpf_prog_detach_opts(old_fd, (int)ifindex, BPF_TCX_INGRESS, NULL);

		if (err) {
			emit_error(err == -ENOENT ? "notattached" : "detach", -err, "detaching program %ld from tcx ingress of %s failed: %s", id, ifname, strerror(-err));
			return err == -ENOENT ? 3 : 2;
		}
		printf("{\"event\":\"detached\",\"id\":%ld}\n", id);
		return 0;
	}

	int new_fd = bpf_obj_get(pin);
	if (new_fd < 0) {
		emit_error("new", errno, "cannot open pinned program %s: %s", pin, strerror(errno));
		return 2;
	}
	LIBBPF_OPTS(bpf_prog_attach_opts, opts, .flags = BPF_F_REPLACE, .replace_prog_fd = old_fd);
	int err = bpf_prog_attach_opts(new_fd, (int)ifindex, BPF_TCX_INGRESS, &opts);
	if (err) {
		emit_error(err == -ENOENT ? "notattached" : "replace", -err, "replacing program %ld on tcx ingress of %s failed: %s", old_id, ifname, strerror(-err));
		return err == -ENOENT ? 3 : 2;
	}
	printf("{\"event\":\"replaced\",\"method\":\"tcx-replace\",\"oldId\":%ld,\"newId\":%u}\n", old_id, prog_id(new_fd));
	return 0;
}
