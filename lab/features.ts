/**
 * What a kernel can do for the lab, found by trying it on the target rather than by reading version
 * numbers: tiny programs are loaded and run, and the kernel's own tables (kallsyms, BTF, sysfs) are
 * read. Version numbers only fill in when the kernel gives no better evidence, and the detail says so.
 * `npm run kernel` prints the result; the chain uses it to choose the patch mode and its length limit.
 */
import { errorMessage, LabError, wrapError } from './errors.ts';
import type { Target } from './target.ts';
import { Version } from './version.ts';
import { putObject, shellQuote } from './target.ts';
import * as bpftool from './bpftool/index.ts';
import { readU64le, u32le } from './bytes.ts';
import { compileBpfSource } from './toolchain/bpf-source.ts';

export interface Feature {
  ok: boolean;
  detail: string;
}

export type FeatureName =
  | 'bpffs'
  | 'jit'
  | 'btf'
  | 'tailCallsWithBpf2bpf'
  | 'xdpLink'
  | 'xdpFlagsReplace'
  | 'freplace'
  | 'kprobes'
  | 'pmuCycles'
  | 'maxTailCalls';

export const FEATURE_LABELS: Record<FeatureName, string> = {
  bpffs: 'bpffs mounted',
  jit: 'BPF JIT enabled',
  btf: 'kernel BTF (/sys/kernel/btf/vmlinux)',
  tailCallsWithBpf2bpf: 'tail calls mixed with bpf2bpf calls',
  xdpLink: 'bpf_link for XDP (5.9+)',
  xdpFlagsReplace: 'netlink XDP_FLAGS_REPLACE (5.7+)',
  freplace: 'freplace/ext programs (libxdp dispatcher)',
  kprobes: 'kprobes',
  pmuCycles: 'PMU hardware cycles',
  maxTailCalls: 'programs per packet through tail calls',
};

/** Patch modes of lab/chain/patch.ts (repeated here so probing needs no patcher). */
export type ProbedPatchMode = 'subprog' | 'inline';

export interface KernelFeatures {
  target: string;
  kernelRelease: string;
  features: Record<FeatureName, Feature>;
  /**
   * Most programs one packet runs through a tail-call chain (the attached one included): measured
   * by a program that tail-calls itself and counts its runs. null when the probe could not run.
   */
  maxChainPrograms: number | null;
  /** 'subprog' when tail calls and bpf2bpf calls may be mixed, else 'inline'. */
  patchMode: ProbedPatchMode;
  patchModeReason: string;
  probedAt: string;
}

const PROBE_MIX = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } xcl_probe_chain SEC(".maps");
static __attribute__((noinline)) int xcl_probe_sub(struct xdp_md *ctx)
{
  return ctx->ingress_ifindex ? XDP_PASS : XDP_DROP;
}
SEC("xdp")
int xcl_probe_mix(struct xdp_md *ctx)
{
  int v = xcl_probe_sub(ctx);
  bpf_tail_call(ctx, &xcl_probe_chain, 0);
  return v;
}
char LICENSE[] SEC("license") = "GPL";
`;

/** Runs, counts its run, and tail-calls itself: the count after one packet is the kernel's limit. */
const PROBE_LOOP = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } xcl_probe_loop SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } xcl_probe_runs SEC(".maps");
SEC("xdp")
int xcl_probe_count(struct xdp_md *ctx)
{
  __u32 k = 0;
  __u64 *n = bpf_map_lookup_elem(&xcl_probe_runs, &k);
  if (n)
    __sync_fetch_and_add(n, 1);
  bpf_tail_call(ctx, &xcl_probe_loop, 0);
  return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
`;

/** What libxdp's dispatcher runs in the lab: a plain program, no tail call (the trio's own objects). */
const PROBE_PASS = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int xcl_probe_pass(struct xdp_md *ctx)
{
  return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
`;

function atLeast(release: string, major: number, minor: number): boolean {
  return (Version.ofRelease(release) ?? Version.of(0, 0)).atLeast(major, minor);
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').filter(Boolean).slice(-n).join(' | ');
}

export interface ProbeOptions {
  /** Name prefix for the probe's bpffs pins and network namespace (tests pass their own). */
  prefix?: string;
  /** Skip the xdp-loader freplace probe (it needs a network namespace and a veth pair). */
  skipFreplace?: boolean;
  /**
   * Probe only what the chain needs (bpffs, JIT, BTF, attach-point kernel support, tail calls with
   * bpf2bpf, the tail-call limit); freplace, kprobes and cycles are reported as not probed.
   */
  chainOnly?: boolean;
}

/**
 * Probes the target's kernel. Needs root on the target; every probe cleans up after itself.
 * Fails (LabError) only when BPF itself is unusable; each feature otherwise reports ok/detail.
 */
export async function probeFeatures(target: Target, options: ProbeOptions = {}): Promise<KernelFeatures> {
  const prefix = options.prefix ?? 'xclprobe';
  const tag = `${prefix}${process.pid}`;
  const release = target.kernelRelease;
  const f = {} as Record<FeatureName, Feature>;

  try {
    await bpftool.ensureBpffs(target);
    f.bpffs = { ok: true, detail: 'bpf filesystem at /sys/fs/bpf' };
  } catch (e) {
    throw wrapError('UNSUPPORTED', `${target.name}: cannot use bpffs`, e, 'Run as root on a kernel with CONFIG_BPF_SYSCALL=y.');
  }

  const jit = await target.run(['cat', '/proc/sys/net/core/bpf_jit_enable'], { allowFailure: true });
  const jitValue = jit.stdout.trim();
  f.jit = jit.exitCode === 0
    ? { ok: jitValue !== '0', detail: `net.core.bpf_jit_enable = ${jitValue}` }
    : { ok: false, detail: `cannot read /proc/sys/net/core/bpf_jit_enable: ${lastLines(jit.stderr, 1)}` };

  const btf = await target.run(['test', '-r', '/sys/kernel/btf/vmlinux'], { allowFailure: true });
  f.btf = btf.exitCode === 0
    ? { ok: true, detail: '/sys/kernel/btf/vmlinux present' }
    : { ok: false, detail: 'no /sys/kernel/btf/vmlinux (kernel built without CONFIG_DEBUG_INFO_BTF)' };

  // Kernel symbols and BTF enumerators are what the kernel itself compiled in: better evidence than
  // a version number, which distributions backport around.
  const kallsyms = await target.sh('grep -wE "bpf_xdp_link_attach|bpf_xdp_link_update|arch_prepare_bpf_trampoline" /proc/kallsyms | cut -d" " -f3', { allowFailure: true });
  const syms = new Set(kallsyms.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  let btfEnums = new Set<string>();
  if (f.btf.ok) {
    // BPF_PROG_TYPE_XDP is in every kernel BTF: it tells "read, but the others are absent" from "unreadable".
    const dump = await target.sh(
      `bpftool btf dump file /sys/kernel/btf/vmlinux format raw 2>/dev/null | grep -oE "'(BPF_PROG_TYPE_XDP|BPF_XDP|IFLA_XDP_EXPECTED_FD|BPF_PROG_TYPE_EXT)'" | sort -u`,
      { allowFailure: true, timeoutMs: 120_000 },
    );
    btfEnums = new Set(dump.stdout.split('\n').map((s) => s.trim().replace(/'/g, '')).filter(Boolean));
  }
  const btfRead = btfEnums.has('BPF_PROG_TYPE_XDP');
  const btfUnread = f.btf.ok ? 'kernel BTF present but unreadable by bpftool' : 'no kernel BTF';

  if (syms.has('bpf_xdp_link_attach')) f.xdpLink = { ok: true, detail: 'kernel has bpf_xdp_link_attach (BPF_LINK_CREATE for XDP)' };
  else if (btfEnums.has('BPF_XDP')) f.xdpLink = { ok: true, detail: 'kernel BTF has attach type BPF_XDP' };
  else if (syms.size > 0 || btfRead) f.xdpLink = { ok: false, detail: `no bpf_xdp_link_attach in /proc/kallsyms${btfRead ? ' and no BPF_XDP in kernel BTF' : ''}` };
  else f.xdpLink = { ok: atLeast(release, 5, 9), detail: `no kallsyms readable and ${btfUnread}; assumed from kernel version ${release} (5.9+)` };

  if (btfEnums.has('IFLA_XDP_EXPECTED_FD')) f.xdpFlagsReplace = { ok: true, detail: 'kernel BTF has IFLA_XDP_EXPECTED_FD' };
  else if (btfRead) f.xdpFlagsReplace = { ok: false, detail: 'kernel BTF has no IFLA_XDP_EXPECTED_FD' };
  else f.xdpFlagsReplace = { ok: atLeast(release, 5, 7), detail: `${btfUnread}; assumed from kernel version ${release} (5.7+)` };

  const pinDir = `/sys/fs/bpf/${tag}`;
  const workDir = `${target.workDir}/probe`;
  let maxChainPrograms: number | null = null;
  try {
    await target.run(['mkdir', '-p', pinDir, workDir]);

    // Tail calls mixed with bpf2bpf calls: the verifier's answer decides the patch mode.
    const mixObj = await putObject(target, await compileBpfSource(PROBE_MIX, 'probe-mix'), workDir);
    try {
      const p = await bpftool.load(target, mixObj, `${pinDir}/mix`, { type: 'xdp' });
      f.tailCallsWithBpf2bpf = { ok: true, detail: `a program with a bpf2bpf call and a tail call loads (${p.jited ? 'JITed' : 'interpreted'})` };
    } catch (e) {
      const m = /tail_calls are not allowed[^\n]*|mixing of tail_calls[^\n]*/.exec(errorMessage(e));
      f.tailCallsWithBpf2bpf = { ok: false, detail: m ? `verifier: ${m[0]}` : `load failed: ${lastLines(errorMessage(e))}` };
    }

    // The limit, measured: one packet through a self tail-calling counter.
    const loopObj = await putObject(target, await compileBpfSource(PROBE_LOOP, 'probe-loop'), workDir);
    const loopDir = `${pinDir}/loop`;
    await target.run(['mkdir', '-p', loopDir]);
    try {
      await bpftool.load(target, loopObj, `${loopDir}/prog`, { type: 'xdp', pinMaps: loopDir });
      await bpftool.mapUpdate(target, { pinned: `${loopDir}/xcl_probe_loop` }, u32le(0), { prog: { pinned: `${loopDir}/prog` } });
      const pkt = `${workDir}/probe-packet.bin`;
      await target.sh(`head -c 64 /dev/zero > ${shellQuote(pkt)}`);
      await bpftool.progRun(target, { pinned: `${loopDir}/prog` }, { dataIn: pkt });
      const e = await bpftool.mapLookup(target, { pinned: `${loopDir}/xcl_probe_runs` }, u32le(0));
      if (!e?.value) throw new LabError('COMMAND', 'run counter missing');
      maxChainPrograms = Number(readU64le(e.value));
      f.maxTailCalls = {
        ok: true,
        detail: `one packet ran ${maxChainPrograms} programs (${maxChainPrograms - 1} tail calls) before the kernel stopped the chain`,
      };
    } catch (e) {
      f.maxTailCalls = { ok: false, detail: `probe failed: ${lastLines(errorMessage(e))}` };
    }
  } finally {
    await bpftool.unpin(target, pinDir);
    await target.run(['rm', '-rf', workDir], { allowFailure: true });
  }

  const skipped: Feature = { ok: false, detail: 'not probed (chain-only probe)' };
  f.freplace = options.skipFreplace || options.chainOnly
    ? { ok: false, detail: 'not probed (skipped)' }
    : await probeFreplace(target, tag, syms.has('arch_prepare_bpf_trampoline'));
  f.kprobes = options.chainOnly ? skipped : await probeKprobes(target);
  f.pmuCycles = options.chainOnly ? skipped : await probeCycles(target);

  const patchMode: ProbedPatchMode = f.tailCallsWithBpf2bpf.ok ? 'subprog' : 'inline';
  return {
    target: target.name,
    kernelRelease: release,
    features: f,
    maxChainPrograms,
    patchMode,
    patchModeReason: f.tailCallsWithBpf2bpf.ok
      ? `subprog: ${f.tailCallsWithBpf2bpf.detail}`
      : `inline: ${f.tailCallsWithBpf2bpf.detail}`,
    probedAt: new Date().toISOString(),
  };
}

/**
 * freplace is what libxdp's dispatcher needs; the truest probe is libxdp's own compatibility check,
 * which xdp-loader runs (and reports with -v) when it loads a program on an interface.
 */
async function probeFreplace(target: Target, tag: string, hasTrampolines: boolean): Promise<Feature> {
  const which = await target.run(['sh', '-c', 'command -v xdp-loader'], { allowFailure: true });
  if (which.exitCode !== 0) {
    return { ok: false, detail: `xdp-loader not installed, not probed${hasTrampolines ? ' (kernel has BPF trampolines)' : ''}` };
  }
  const ns = `${tag}f`.slice(0, 15);
  const dev = 'xclp0';
  const dir = `${target.workDir}/probe-freplace`;
  const pass = await putObject(target, await compileBpfSource(PROBE_PASS, 'probe-pass'), dir);
  const loop = await putObject(target, await compileBpfSource(PROBE_LOOP, 'probe-loop'), dir);
  const nsenter = `nsenter --net=/run/netns/${ns}`;
  const load = async (obj: string): Promise<string> => {
    const r = await target.sh(
      `${nsenter} xdp-loader load -v -m native ${dev} ${shellQuote(obj)} 2>&1; ${nsenter} xdp-loader status ${dev} 2>&1; ${nsenter} xdp-loader unload --all ${dev} >/dev/null 2>&1`,
      { allowFailure: true, timeoutMs: 60_000 },
    );
    return r.stdout;
  };
  try {
    await target.run(['ip', 'netns', 'add', ns]);
    await target.sh(`${nsenter} ip link add ${dev} type veth peer name ${dev}p && ${nsenter} ip link set ${dev} up && ${nsenter} ip link set ${dev}p up`);
    const out = await load(pass);
    const failed = /Compatibility check for dispatcher program failed:?\s*([^\n]*)/.exec(out);
    if (failed) return { ok: false, detail: `libxdp: dispatcher compatibility check failed: ${failed[1]?.trim() ?? ''}`.trim() };
    if (!/xdp_dispatcher/.test(out)) return { ok: false, detail: `xdp-loader gave no dispatcher: ${lastLines(out)}` };
    // Some kernels (seen on 6.12) refuse to attach an extension that itself tail-calls: worth
    // knowing before putting a manually chained program behind the dispatcher.
    const withTail = await load(loop);
    const tail = /xdp_dispatcher/.test(withTail)
      ? 'a program that tail-calls attaches too'
      : `a program that tail-calls does not attach: ${(/Couldn't [^\n]*|[^\n]*(?:Invalid argument|not supported|denied)[^\n]*/.exec(withTail)?.[0] ?? lastLines(withTail, 1)).trim()}`;
    return { ok: true, detail: `xdp-loader attached the libxdp dispatcher (freplace works); ${tail}` };
  } catch (e) {
    return { ok: false, detail: `probe failed: ${lastLines(errorMessage(e))}` };
  } finally {
    await target.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await target.run(['rm', '-rf', dir], { allowFailure: true });
  }
}

async function probeKprobes(target: Target): Promise<Feature> {
  const r = await target.sh(
    'for p in /sys/bus/event_source/devices/kprobe/type /sys/kernel/tracing/kprobe_events /sys/kernel/debug/tracing/kprobe_events; do [ -e "$p" ] && echo "$p"; done; ' +
      'grep -qw tracefs /proc/filesystems && echo tracefs-known; grep -q " /sys/kernel/tracing " /proc/mounts && echo tracefs-mounted; true',
    { allowFailure: true },
  );
  const lines = r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  const pmu = lines.find((l) => l.includes('/devices/kprobe'));
  const events = lines.find((l) => l.endsWith('kprobe_events'));
  if (pmu) return { ok: true, detail: 'perf kprobe PMU present (/sys/bus/event_source/devices/kprobe)' };
  if (events) return { ok: true, detail: `${events} present` };
  const mounted = lines.includes('tracefs-mounted');
  // The kernel's own config, when it publishes one, says why (CONFIG_KPROBES off is the usual cause).
  const cfg = await target.sh(
    '{ zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null; } | grep -E "^(# )?CONFIG_(KPROBES|KPROBE_EVENTS)[= ]"',
    { allowFailure: true },
  );
  const cfgText = cfg.stdout.trim().split('\n').filter(Boolean).map((l) => l.replace(/^# (\S+) is not set$/, '$1=n')).join(', ');
  return {
    ok: false,
    detail: `no kprobe PMU and no kprobe_events${mounted ? ' (tracefs is mounted)' : lines.includes('tracefs-known') ? ' (tracefs not mounted at /sys/kernel/tracing)' : ''}${cfgText ? `; kernel config: ${cfgText}` : ''}`,
  };
}

async function probeCycles(target: Target): Promise<Feature> {
  const perf = await target.sh('command -v perf >/dev/null && perf stat -x, -e cycles true 2>&1 >/dev/null', { allowFailure: true, timeoutMs: 30_000 });
  const line = perf.stdout.split('\n').find((l) => /cycles/.test(l));
  if (line) {
    const count = line.split(',')[0] ?? '';
    if (/^\d+$/.test(count)) return { ok: true, detail: `perf stat counted ${count} cycles for \`true\`` };
    return { ok: false, detail: `perf stat -e cycles: ${count || line}` };
  }
  const sysfs = await target.sh('ls /sys/bus/event_source/devices/*/events/cpu-cycles 2>/dev/null | head -1', { allowFailure: true });
  if (sysfs.stdout.trim()) return { ok: true, detail: `${sysfs.stdout.trim()} present (perf not installed to confirm)` };
  return { ok: false, detail: 'no PMU exposes cpu-cycles under /sys/bus/event_source/devices (perf not installed)' };
}

/** Plain-text lines for `npm run kernel`. */
export function formatFeatures(k: KernelFeatures): string {
  const lines = [`kernel ${k.kernelRelease} on ${k.target}`];
  const width = Math.max(...Object.values(FEATURE_LABELS).map((l) => l.length));
  for (const name of Object.keys(FEATURE_LABELS) as FeatureName[]) {
    const feat = k.features[name];
    lines.push(`  ${feat.ok ? 'yes' : 'no '}  ${FEATURE_LABELS[name].padEnd(width)}  ${feat.detail}`);
  }
  lines.push(`  chain patch modes: inline (the default) for any body; subprog, for bodies that call other functions, ${k.features.tailCallsWithBpf2bpf.ok ? 'loads' : 'does not load'} here (${k.features.tailCallsWithBpf2bpf.detail})`);
  if (k.maxChainPrograms !== null) {
    lines.push(`  longest chain: ${k.maxChainPrograms} programs, ${k.maxChainPrograms - 1} with the head trampoline`);
  }
  return lines.join('\n');
}

/** Per-target cache (one entry per option set): probing loads programs and takes a second or two. */
const cache = new WeakMap<Target, Map<string, Promise<KernelFeatures>>>();

export function cachedFeatures(target: Target, options: ProbeOptions = {}): Promise<KernelFeatures> {
  const key = JSON.stringify([options.prefix ?? '', !!options.skipFreplace, !!options.chainOnly]);
  let m = cache.get(target);
  if (!m) {
    m = new Map();
    cache.set(target, m);
  }
  let p = m.get(key);
  if (!p) {
    p = probeFeatures(target, options);
    m.set(key, p);
    const entries = m;
    p.catch(() => entries.delete(key));
  }
  return p;
}
