/**
 * Where a chain's head runs, per hook: an XDP chain's head on the interface's native XDP hook
 * (bpftool net), a TC chain's head as a cls_bpf direct-action filter on the interface's clsact
 * ingress (iproute2's tc, lab/tc). What runs there, attaching, the recreate's swap and detaching,
 * so the operations decide from the chain's state alone and never ask which hook they are on.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { ensureClsact, ingressFilters, ingressProgAt, placeExists, removeClsact, removeIngressFilter, setIngressFilter, type TcPlace } from '../tc/clsact.ts';
import type { Hook } from './constants.ts';
import type { ChainState } from './state.ts';
import { swapXdp, type SwapMethod } from './swap.ts';

/** The ingress priority a TC chain's head filter takes unless told otherwise. */
export const DEFAULT_TC_PRIO = 1;

export interface AttachAt {
  ifname: string;
  netns?: string | null;
  /** TC only: the head filter's ingress priority (default DEFAULT_TC_PRIO). */
  prio?: number;
}

export type Attachment = NonNullable<ChainState['attachment']>;

function place(target: Target, at: { ifname: string; netns?: string | null }): TcPlace {
  return { target, ifname: at.ifname, netns: at.netns ?? null };
}

function whereText(at: { ifname: string; netns?: string | null }): string {
  return `${at.ifname}${at.netns ? ` (netns ${at.netns})` : ''}`;
}

/** How the hook's attach point is named in messages. */
export function attachPointText(hook: Hook, at: AttachAt): string {
  return hook === 'xdp' ? `native XDP on ${whereText(at)}` : `TC ingress (clsact, cls_bpf direct-action, prio ${at.prio ?? DEFAULT_TC_PRIO}) on ${whereText(at)}`;
}

/** The program the hook runs at `at` (TC: the filter at its priority), or null. */
export async function runningAt(target: Target, hook: Hook, at: AttachAt): Promise<number | null> {
  if (hook === 'xdp') return (await bpftool.xdpAttached(target, at.ifname, at.netns ?? undefined))[0]?.id ?? null;
  return ingressProgAt(place(target, at), at.prio ?? DEFAULT_TC_PRIO);
}

/** The program a recorded attachment's place runs now. */
export function runningAtAttachment(target: Target, hook: Hook, a: Attachment): Promise<number | null> {
  return runningAt(target, hook, { ifname: a.ifname, netns: a.netns, prio: a.tc?.prio });
}

/** Refuses an attach point that runs something already: a chain never overwrites another program. */
export async function refuseOccupied(target: Target, hook: Hook, at: AttachAt): Promise<void> {
  if (hook === 'sched_cls' && !(await placeExists(place(target, at)))) {
    throw new LabError('NO_INTERFACE', `${target.name}: no interface ${whereText(at)}`, { remedy: 'Create the interface (or the test environment) first, or pass an existing interface name.' });
  }
  const current = await runningAt(target, hook, at);
  if (current === null) return;
  throw new LabError('ATTACH', hook === 'xdp' ? `${whereText(at)} already has XDP program ${current} attached` : `${whereText(at)} already has program ${current} on clsact ingress at priority ${at.prio ?? DEFAULT_TC_PRIO}`, {
    remedy:
      hook === 'xdp'
        ? 'Detach it first (bpftool net detach xdp dev IFACE, or npm run chain -- detach for a chain).'
        : `Remove it first (tc filter del dev ${at.ifname} ingress prio ${at.prio ?? DEFAULT_TC_PRIO}, or npm run chain -- detach for a chain), or attach at another --prio.`,
  });
}

/**
 * Attaches the head pinned at `pin`: XDP through bpftool in native mode; TC as a direct-action
 * filter, adding the clsact qdisc if the interface has none (and removing it again if the filter
 * cannot be added). Returns the attachment to record.
 */
export async function attachHead(target: Target, hook: Hook, at: AttachAt, pin: string, progId: number): Promise<Attachment> {
  const base = { ifname: at.ifname, netns: at.netns ?? null, progId };
  if (hook === 'xdp') {
    await bpftool.netAttachXdp(target, { pinned: pin }, at.ifname, { netns: at.netns ?? undefined });
    return { ...base, method: 'netlink-attach' };
  }
  const p = place(target, at);
  const prio = at.prio ?? DEFAULT_TC_PRIO;
  const createdClsact = await ensureClsact(p);
  try {
    await setIngressFilter(p, prio, pin, 'add');
  } catch (e) {
    if (createdClsact) await removeClsact(p).catch(() => undefined);
    throw e;
  }
  return { ...base, method: 'tc-filter-add', tc: { prio, createdClsact } };
}

/**
 * Removes the head from its attach point: XDP detached; TC's filter removed, and the clsact qdisc
 * too when the chain added it and no other filter is left on it. Returns what was left, as notes.
 */
export async function detachHead(target: Target, hook: Hook, a: Attachment): Promise<string[]> {
  if (hook === 'xdp') {
    await bpftool.netDetachXdp(target, a.ifname, { netns: a.netns ?? undefined });
    return [];
  }
  const p = place(target, a);
  if (!(await placeExists(p))) return [];
  const prio = a.tc?.prio ?? DEFAULT_TC_PRIO;
  await removeIngressFilter(p, prio);
  if (!a.tc?.createdClsact) return [];
  const others = await ingressFilters(p);
  if (others.length > 0) return [`the clsact qdisc on ${whereText(a)} was added by the chain but now holds other filters (${others.map((f) => `prio ${f.prio} id ${f.id}`).join(', ')}): left in place`];
  await removeClsact(p);
  return [];
}

/**
 * Swaps the recorded head for the program pinned at `newPin` in one kernel step, only if the
 * recorded head still runs there. XDP: the compare-and-swap of lab/chain/swap.ts. TC: `tc filter
 * replace` on the same priority and handle (cls_bpf's in-place change: packets meet the old or
 * the new program, never none) between two checks of the filter's program, since tc has no
 * compare-and-swap.
 */
export async function swapHead(target: Target, hook: Hook, a: Attachment, newPin: string, casAvailable: boolean): Promise<{ method: SwapMethod | 'tc-filter-replace'; newId: number }> {
  if (hook === 'xdp') return swapXdp(target, { ifname: a.ifname, netns: a.netns ?? undefined, newPin, expectId: a.progId }, casAvailable);
  const p = place(target, a);
  const prio = a.tc?.prio ?? DEFAULT_TC_PRIO;
  const before = await ingressProgAt(p, prio);
  if (before !== a.progId) {
    throw new LabError('ATTACH', `${whereText(a)} does not run program ${a.progId} at ingress priority ${prio} any more: it runs ${before ?? 'no program'}; nothing was changed`, {
      remedy: `Something else changed the interface: inspect it with \`tc filter show dev ${a.ifname} ingress\`, then detach the chain and build it again.`,
    });
  }
  await setIngressFilter(p, prio, newPin, 'replace');
  const newId = (await bpftool.progShow(target, { pinned: newPin })).id;
  const after = await ingressProgAt(p, prio);
  if (after !== newId) throw new LabError('ATTACH', `after the swap ${whereText(a)} runs program ${after ?? 'none'} at ingress priority ${prio}, not ${newId}`);
  return { method: 'tc-filter-replace', newId };
}
