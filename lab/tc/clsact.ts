/**
 * TC ingress of an interface through iproute2's `tc`: the clsact qdisc, cls_bpf filters in
 * direct-action mode on its ingress hook (one program per priority, each pinned under bpffs),
 * what is attached there, and removing a filter or the qdisc with every filter on it. Shared by
 * the TC approaches and the chain operations, so it knows neither. `tc` reaches bpffs pins because
 * the lab enters namespaces with nsenter --net= (the mount namespace stays the host's).
 */
import { LabError } from '../errors.ts';
import type { CommandResult, Target } from '../target.ts';

/** Where a filter goes: an interface, inside a network namespace (under /run/netns) or not. */
export interface TcPlace {
  target: Target;
  ifname: string;
  netns?: string | null;
}

/** The one handle each priority's filter gets: a priority holds one program. */
export const FILTER_HANDLE = '1';

/** A cls_bpf filter on clsact ingress, as `tc -j filter show` reports it. */
export interface IngressFilter {
  prio: number;
  /** Program id, name and whether the filter runs in direct-action mode. */
  id: number;
  name: string;
  directAction: boolean;
}

function inNetns(place: TcPlace, argv: readonly string[]): string[] {
  return place.netns ? ['nsenter', `--net=/run/netns/${place.netns}`, ...argv] : [...argv];
}

function where(place: TcPlace): string {
  return `${place.ifname}${place.netns ? ` in ${place.netns}` : ''}`;
}

async function tc(place: TcPlace, args: readonly string[], what: string): Promise<CommandResult> {
  const r = await place.target.run(inNetns(place, ['tc', ...args]), { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new LabError('ATTACH', `${place.target.name}: ${what} on ${where(place)} failed: ${(r.stderr || r.stdout).trim()}`, {
      remedy: 'Check that iproute2 (tc) is installed and that the kernel has clsact and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF).',
      details: { argv: ['tc', ...args], exitCode: r.exitCode },
    });
  }
  return r;
}

const clsactVerdicts = new WeakMap<Target, Promise<{ ok: true } | { ok: false; reason: string }>>();

/**
 * Whether the kernel can add a clsact qdisc at all (CONFIG_NET_SCH_INGRESS; kernels built without it
 * say "Specified qdisc kind is unknown"), tried once per target on the loopback of a throwaway
 * network namespace (unshare), so nothing of the testbed is touched.
 */
export function clsactSupport(target: Target): Promise<{ ok: true } | { ok: false; reason: string }> {
  let v = clsactVerdicts.get(target);
  if (!v) {
    v = (async () => {
      const r = await target.run(['unshare', '--net', 'tc', 'qdisc', 'add', 'dev', 'lo', 'clsact'], { allowFailure: true });
      if (r.exitCode === 0) return { ok: true as const };
      const why = (r.stderr || r.stdout).trim() || `exit ${r.exitCode}`;
      return { ok: false as const, reason: `the kernel cannot add a clsact qdisc (${why}): it needs CONFIG_NET_SCH_INGRESS (and CONFIG_NET_CLS_BPF)` };
    })();
    clsactVerdicts.set(target, v);
  }
  return v;
}

/** Whether the namespace (if any) and the interface exist: where they do not, nothing is attached. */
export async function placeExists(place: TcPlace): Promise<boolean> {
  if (place.netns) {
    const ns = await place.target.run(['test', '-e', `/run/netns/${place.netns}`], { allowFailure: true });
    if (ns.exitCode !== 0) return false;
  }
  return (await place.target.run(inNetns(place, ['ip', 'link', 'show', 'dev', place.ifname]), { allowFailure: true })).exitCode === 0;
}

/** Whether the interface has a clsact qdisc. */
export async function hasClsact(place: TcPlace): Promise<boolean> {
  const r = await tc(place, ['-j', 'qdisc', 'show', 'dev', place.ifname], 'listing qdiscs');
  const qdiscs = JSON.parse(r.stdout.trim() || '[]') as { kind?: string }[];
  return qdiscs.some((q) => q.kind === 'clsact');
}

/** Adds the clsact qdisc (an existing one, with its filters, is replaced by an empty one). */
export async function freshClsact(place: TcPlace): Promise<void> {
  await removeClsact(place);
  await tc(place, ['qdisc', 'add', 'dev', place.ifname, 'clsact'], 'adding the clsact qdisc');
}

/** Adds the clsact qdisc unless there is one; says whether it added it (so it is its to remove). */
export async function ensureClsact(place: TcPlace): Promise<boolean> {
  if (await hasClsact(place)) return false;
  await tc(place, ['qdisc', 'add', 'dev', place.ifname, 'clsact'], 'adding the clsact qdisc');
  return true;
}

/** Removes the clsact qdisc and so every filter on it; nothing to remove is not an error. */
export async function removeClsact(place: TcPlace): Promise<void> {
  if (!(await hasClsact(place))) return;
  await tc(place, ['qdisc', 'del', 'dev', place.ifname, 'clsact'], 'removing the clsact qdisc');
}

/**
 * Puts the program pinned at `pinned` on clsact ingress at `prio`, in direct-action mode: its
 * return value is the verdict, and TC_ACT_UNSPEC (-1) lets the filter of the next priority run.
 * `replace` swaps the program of the existing filter (same priority and handle) in place: cls_bpf
 * links the new program into the filter list under RCU before unlinking the old one, so each
 * packet meets one of the two, never an empty priority.
 */
export async function setIngressFilter(place: TcPlace, prio: number, pinned: string, mode: 'add' | 'replace'): Promise<void> {
  await tc(
    place,
    ['filter', mode, 'dev', place.ifname, 'ingress', 'prio', String(prio), 'handle', FILTER_HANDLE, 'bpf', 'direct-action', 'object-pinned', pinned],
    `${mode === 'add' ? 'attaching' : 'replacing'} ${pinned} at ingress priority ${prio}`,
  );
}

/** Removes the filter at ingress priority `prio` (the qdisc stays). */
export async function removeIngressFilter(place: TcPlace, prio: number): Promise<void> {
  await tc(place, ['filter', 'del', 'dev', place.ifname, 'ingress', 'prio', String(prio)], `removing the ingress filter at priority ${prio}`);
}

interface RawFilter {
  pref?: number;
  kind?: string;
  options?: { handle?: string; 'direct-action'?: boolean; bpf_name?: string; prog?: { id?: number; name?: string } };
}

/** The cls_bpf filters on clsact ingress, by priority (none when there is no clsact, namespace or interface). */
export async function ingressFilters(place: TcPlace): Promise<IngressFilter[]> {
  if (!(await placeExists(place)) || !(await hasClsact(place))) return [];
  const r = await tc(place, ['-j', 'filter', 'show', 'dev', place.ifname, 'ingress'], 'listing ingress filters');
  const raw = JSON.parse(r.stdout.trim() || '[]') as RawFilter[];
  const out: IngressFilter[] = [];
  for (const f of raw) {
    // tc prints one line per priority and one per filter of it; only filters carry options.
    if (f.kind !== 'bpf' || f.options?.prog?.id === undefined || f.pref === undefined) continue;
    out.push({ prio: f.pref, id: f.options.prog.id, name: f.options.prog.name ?? f.options.bpf_name ?? '', directAction: f.options['direct-action'] === true });
  }
  return out.sort((a, b) => a.prio - b.prio);
}

/** The program of the ingress filter at `prio`, or null. */
export async function ingressProgAt(place: TcPlace, prio: number): Promise<number | null> {
  return (await ingressFilters(place)).find((f) => f.prio === prio)?.id ?? null;
}
