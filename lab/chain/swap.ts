/**
 * Swaps the XDP program on an interface with a compare-and-swap where the kernel has one
 * (XDP_FLAGS_REPLACE with the expected program, 5.7+), through the lab's small libbpf helper
 * (programs/user/xdp_swap_user.c): the new program goes in only if the expected one is still
 * attached, so a chain never overwrites another manager's program. Where the kernel has no
 * XDP_FLAGS_REPLACE, the one-step netlink overwrite (bpftool `net attach ... overwrite`) is used
 * between two checks of the attached id, and the caller is told so.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { helperOnTarget, parseHelperLines } from '../programs/user.ts';

export type SwapMethod = 'xdp-flags-replace' | 'netlink-overwrite';

export interface SwapRequest {
  ifname: string;
  netns?: string;
  /** Pin of the program to install. */
  newPin: string;
  /** Id of the program that must be attached for the swap to happen. */
  expectId: number;
}

export interface SwapResult {
  method: SwapMethod;
  newId: number;
}

function mismatch(r: SwapRequest, said: string): LabError {
  return new LabError('ATTACH', `${r.ifname}${r.netns ? ` (netns ${r.netns})` : ''} does not run program ${r.expectId} any more: ${said}; nothing was changed`, {
    remedy: `Something else changed the interface: inspect it with \`bpftool net show dev ${r.ifname}\`, then detach the chain and build it again.`,
  });
}

/**
 * Installs r.newPin on r.ifname if and only if r.expectId is attached there. `casAvailable`: the
 * kernel has XDP_FLAGS_REPLACE (the feature probe's xdpFlagsReplace).
 */
export async function swapXdp(target: Target, r: SwapRequest, casAvailable: boolean): Promise<SwapResult> {
  if (casAvailable) {
    const helper = await helperOnTarget(target, 'xdp_swap');
    const argv = [helper, '--ifname', r.ifname, '--new', r.newPin, '--expect-id', String(r.expectId), ...(r.netns ? ['--netns', r.netns] : [])];
    const out = await target.run(argv, { allowFailure: true });
    const line = parseHelperLines(out.stdout).at(-1);
    if (out.exitCode === 0 && line?.event === 'swapped') return { method: 'xdp-flags-replace', newId: Number(line.newId) };
    if (out.exitCode === 3) throw mismatch(r, String(line?.message ?? 'the kernel refused the compare-and-swap'));
    throw new LabError('ATTACH', `${target.name}: compare-and-swap on ${r.ifname} failed: ${String(line?.message ?? (out.stderr.trim() || `exit ${out.exitCode}`))}`, {
      remedy: 'Check that the interface supports native XDP (bpftool net show) and that the kernel has XDP_FLAGS_REPLACE (5.7+).',
      details: { stage: line?.stage, errno: line?.errno },
    });
  }
  const before = await bpftool.xdpAttached(target, r.ifname, r.netns);
  if (before[0]?.id !== r.expectId) throw mismatch(r, `it runs ${before[0]?.id ?? 'no program'}`);
  await bpftool.netAttachXdp(target, { pinned: r.newPin }, r.ifname, { netns: r.netns, overwrite: true });
  const after = await bpftool.xdpAttached(target, r.ifname, r.netns);
  const newId = (await bpftool.progShow(target, { pinned: r.newPin })).id;
  if (after[0]?.id !== newId) throw new LabError('ATTACH', `after the swap ${r.ifname} runs program ${after[0]?.id ?? 'none'}, not ${newId}`);
  return { method: 'netlink-overwrite', newId };
}
