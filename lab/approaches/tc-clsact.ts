/**
 * TC ingress of the receiving veth through iproute2's `tc`, run in the approach's namespace: the
 * clsact qdisc, cls_bpf filters in direct-action mode on its ingress hook (one per priority, each
 * a program pinned under bpffs), what is attached there, and the teardown that removes the qdisc
 * with every filter on it. `tc` reaches bpffs pins because the lab enters namespaces with
 * nsenter --net= (the mount namespace stays the host's).
 */
import type { ApproachContext } from './approach.ts';
import { LabError } from '../errors.ts';
import { nsenterArgv } from '../testenv/testenv.ts';

/** The one handle each priority's filter gets: a priority holds one program. */
const FILTER_HANDLE = '1';

/** A cls_bpf filter on clsact ingress, as `tc -j filter show` reports it. */
export interface IngressFilter {
  prio: number;
  /** Program id, name and whether the filter runs in direct-action mode. */
  id: number;
  name: string;
  directAction: boolean;
}

async function tc(ctx: ApproachContext, args: readonly string[], what: string, allowFailure = false): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await ctx.target.run(nsenterArgv(ctx.netns, ['tc', ...args]), { allowFailure: true });
  if (r.exitCode !== 0 && !allowFailure) {
    throw new LabError('ATTACH', `${ctx.target.name}: ${what} on ${ctx.ifname} in ${ctx.netns} failed: ${(r.stderr || r.stdout).trim()}`, {
      remedy: 'Check that iproute2 (tc) is installed and that the kernel has clsact and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF).',
      details: { argv: ['tc', ...args], exitCode: r.exitCode },
    });
  }
  return r;
}

/** Whether the interface has a clsact qdisc. */
export async function hasClsact(ctx: ApproachContext): Promise<boolean> {
  const r = await tc(ctx, ['-j', 'qdisc', 'show', 'dev', ctx.ifname], 'listing qdiscs');
  const qdiscs = JSON.parse(r.stdout.trim() || '[]') as { kind?: string }[];
  return qdiscs.some((q) => q.kind === 'clsact');
}

/** Adds the clsact qdisc (an existing one, with its filters, is replaced by an empty one). */
export async function freshClsact(ctx: ApproachContext): Promise<void> {
  await removeClsact(ctx);
  await tc(ctx, ['qdisc', 'add', 'dev', ctx.ifname, 'clsact'], 'adding the clsact qdisc');
}

/** Removes the clsact qdisc and so every filter on it; nothing to remove is not an error. */
export async function removeClsact(ctx: ApproachContext): Promise<void> {
  if (!(await hasClsact(ctx))) return;
  await tc(ctx, ['qdisc', 'del', 'dev', ctx.ifname, 'clsact'], 'removing the clsact qdisc');
}

/**
 * Puts the program pinned at `pinned` on clsact ingress at `prio`, in direct-action mode: its
 * return value is the verdict, and TC_ACT_UNSPEC (-1) lets the filter of the next priority run.
 * `replace` swaps the program of an existing filter in place (cls_bpf changes it under RCU, so
 * no packet meets an empty priority).
 */
export async function setIngressFilter(ctx: ApproachContext, prio: number, pinned: string, mode: 'add' | 'replace'): Promise<void> {
  await tc(
    ctx,
    ['filter', mode, 'dev', ctx.ifname, 'ingress', 'prio', String(prio), 'handle', FILTER_HANDLE, 'bpf', 'direct-action', 'object-pinned', pinned],
    `${mode === 'add' ? 'attaching' : 'replacing'} ${pinned} at ingress priority ${prio}`,
  );
}

interface RawFilter {
  pref?: number;
  kind?: string;
  options?: { handle?: string; 'direct-action'?: boolean; bpf_name?: string; prog?: { id?: number; name?: string } };
}

/** The cls_bpf filters on clsact ingress, by priority (none when there is no clsact). */
export async function ingressFilters(ctx: ApproachContext): Promise<IngressFilter[]> {
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode !== 0 || !(await hasClsact(ctx))) return [];
  const r = await tc(ctx, ['-j', 'filter', 'show', 'dev', ctx.ifname, 'ingress'], 'listing ingress filters');
  const raw = JSON.parse(r.stdout.trim() || '[]') as RawFilter[];
  const out: IngressFilter[] = [];
  for (const f of raw) {
    // tc prints one line per priority and one per filter of it; only filters carry options.
    if (f.kind !== 'bpf' || f.options?.prog?.id === undefined || f.pref === undefined) continue;
    out.push({ prio: f.pref, id: f.options.prog.id, name: f.options.prog.name ?? f.options.bpf_name ?? '', directAction: f.options['direct-action'] === true });
  }
  return out.sort((a, b) => a.prio - b.prio);
}
