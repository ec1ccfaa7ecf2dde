/**
 * XDP attachments through `bpftool net`: attach, detach (every mode) and show, checking first that
 * the interface exists so a wrong name is a NO_INTERFACE error, not bpftool's bare ENODEV; and the
 * programs on tcx ingress (attach appends, show lists them in the order the kernel runs them).
 */
import type { Target } from '../target.ts';
import { LabError } from '../errors.ts';
import { bpftoolJson, nsPrefix, refArgs, refText, type ObjRef } from './run.ts';

export type XdpAttachMode = 'xdp' | 'xdpdrv' | 'xdpgeneric' | 'xdpoffload';

export interface XdpAttachment {
  devname: string;
  ifindex: number;
  /** "driver", "generic", "offload" or bpftool's words for multi-attach. */
  mode: string;
  id: number;
}

async function ifaceExists(target: Target, ifname: string, netns?: string): Promise<boolean> {
  const r = await target.run([...nsPrefix(netns), 'ip', 'link', 'show', 'dev', ifname], { allowFailure: true });
  return r.exitCode === 0;
}

function noInterface(target: Target, ifname: string, netns?: string): LabError {
  return new LabError('NO_INTERFACE', `${target.name}: no interface ${ifname}${netns ? ` in netns ${netns}` : ''}`, {
    remedy: 'Create the test environment first (lab/testenv) or pass an existing interface name.',
  });
}

export interface NetAttachOptions {
  /** Default xdpdrv (native): the lab measures native XDP only. */
  mode?: XdpAttachMode;
  netns?: string;
  /** Replace a program already attached. */
  overwrite?: boolean;
}

/** `bpftool net attach xdpdrv <prog ref> dev IF [overwrite]`. */
export async function netAttachXdp(target: Target, prog: ObjRef, ifname: string, opts: NetAttachOptions = {}): Promise<void> {
  if (!(await ifaceExists(target, ifname, opts.netns))) throw noInterface(target, ifname, opts.netns);
  const args = ['net', 'attach', opts.mode ?? 'xdpdrv', ...refArgs(prog), 'dev', ifname];
  if (opts.overwrite) args.push('overwrite');
  await bpftoolJson(target, args, {
    code: 'ATTACH',
    netns: opts.netns,
    what: `attaching ${refText(prog)} to ${ifname}`,
    remedy: 'Check that the interface supports native XDP and has no other program attached (bpftool net show).',
  });
}

/**
 * `bpftool net detach <mode> dev IF` for every XDP mode, so the interface ends with no XDP program
 * whatever mode it was in. A missing interface is not an error here (nothing can be attached).
 */
export async function netDetachXdp(target: Target, ifname: string, opts: { netns?: string } = {}): Promise<void> {
  if (!(await ifaceExists(target, ifname, opts.netns))) return;
  for (const mode of ['xdpdrv', 'xdpgeneric', 'xdp'] as const) {
    await bpftoolJson(target, ['net', 'detach', mode, 'dev', ifname], {
      code: 'ATTACH',
      netns: opts.netns,
      what: `detaching XDP (${mode}) from ${ifname}`,
    });
  }
}

interface RawNet {
  xdp?: { devname: string; ifindex: number; mode?: string; id?: number; multi_attachments?: { mode: string; id: number }[] }[];
  tc?: { devname: string; ifindex: number; kind?: string; name?: string; prog_id?: number; id?: number }[];
}

/** `bpftool net show [dev IF]`: XDP attachments, one per (interface, mode). */
export async function netShow(target: Target, opts: { netns?: string; dev?: string } = {}): Promise<XdpAttachment[]> {
  if (opts.dev !== undefined && !(await ifaceExists(target, opts.dev, opts.netns))) throw noInterface(target, opts.dev, opts.netns);
  const args = ['net', 'show', ...(opts.dev ? ['dev', opts.dev] : [])];
  const j = await bpftoolJson<RawNet[] | null>(target, args, { netns: opts.netns, what: 'net show' });
  const out: XdpAttachment[] = [];
  for (const block of j ?? []) {
    for (const x of block.xdp ?? []) {
      if (x.multi_attachments) {
        for (const m of x.multi_attachments) out.push({ devname: x.devname, ifindex: x.ifindex, mode: m.mode, id: m.id });
      } else if (x.id !== undefined) {
        out.push({ devname: x.devname, ifindex: x.ifindex, mode: x.mode ?? 'unknown', id: x.id });
      }
    }
  }
  return out;
}

/** The XDP program(s) attached to one interface ([] when none). */
export async function xdpAttached(target: Target, ifname: string, netns?: string): Promise<XdpAttachment[]> {
  return (await netShow(target, { netns, dev: ifname })).filter((x) => x.devname === ifname);
}

/**
 * `bpftool net attach tcx_ingress <prog ref> dev IF` (bpftool 7.4+): the kernel appends the program
 * after those already on tcx ingress. bpftool's own detach takes no program (it removes the last
 * one, whoever attached it), so precise detach is the lab's tcx helper's job.
 */
export async function netAttachTcxIngress(target: Target, prog: ObjRef, ifname: string, opts: { netns?: string } = {}): Promise<void> {
  if (!(await ifaceExists(target, ifname, opts.netns))) throw noInterface(target, ifname, opts.netns);
  await bpftoolJson(target, ['net', 'attach', 'tcx_ingress', ...refArgs(prog), 'dev', ifname], {
    code: 'ATTACH',
    netns: opts.netns,
    what: `attaching ${refText(prog)} to tcx ingress of ${ifname}`,
    remedy: 'tcx needs kernel 6.6+ and bpftool 7.4+ (bash lab/setup.sh installs bookworm-backports\' bpftool).',
  });
}

export interface TcxProgram {
  id: number;
  name: string;
}

/** The programs on tcx ingress of one interface, in the order the kernel runs them ([] when none). */
export async function tcxIngress(target: Target, ifname: string, netns?: string): Promise<TcxProgram[]> {
  if (!(await ifaceExists(target, ifname, netns))) throw noInterface(target, ifname, netns);
  const j = await bpftoolJson<RawNet[] | null>(target, ['net', 'show', 'dev', ifname], { netns, what: 'net show' });
  const out: TcxProgram[] = [];
  for (const block of j ?? []) {
    for (const t of block.tc ?? []) {
      const id = t.prog_id ?? t.id;
      if (t.devname === ifname && t.kind === 'tcx/ingress' && id !== undefined) out.push({ id, name: t.name ?? '' });
    }
  }
  return out;
}
