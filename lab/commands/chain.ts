/**
 * `npm run chain -- <command>`: patch one object, or build, inspect, change and remove named chains
 * on the machine's own kernel. Chains are pinned under /sys/fs/bpf/xdp-chain-lab/chains/<name>/
 * with their state in /run/xdp-chain-lab/state/, so each command may run in a different process.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LabError, wrapError } from '../errors.ts';
import { HostTarget, type Target } from '../target.ts';
import type { ProgressSink } from '../progress.ts';
import { cachedFeatures } from '../features.ts';
import { HOOK_VERDICTS, type Hook, type PatchMode } from '../chain/constants.ts';
import { hookOfSection, verdictHelp, verdictName } from '../chain/hook.ts';
import { defaultPatcher } from '../chain/ops/build.ts';
import { DEFAULT_TC_PRIO, attachPointText } from '../chain/attach-point.ts';
import { chainDetach } from '../chain/ops/detach.ts';
import { chainInit } from '../chain/ops/init.ts';
import { chainRecreate } from '../chain/ops/recreate.ts';
import { chainRepair } from '../chain/ops/repair.ts';
import { chainReplace } from '../chain/ops/replace.ts';
import { chainStatus, type ChainStatus } from '../chain/ops/status.ts';
import { CHAINS_PIN_ROOT, checkChainName, listStates, pinDirForName, readState } from '../chain/state.ts';
import { existsOn } from '../chain/loader.ts';
import { choosePatchMode } from '../chain/mode.ts';

import { defaultsText, hookAndDefaults, hookVerdicts, hookWord, parseHook, parsePrio, parseProgramSpec, verdictText, verdictsOf } from './chain-args.ts';

export { parseProgramSpec, parseVerdicts } from './chain-args.ts';

function parseIndex(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`"${text}" is not a slot index (0, 1, 2...)`);
  return Number(text);
}

function parseMode(text: string): PatchMode {
  if (text !== 'subprog' && text !== 'inline') throw new InvalidArgumentError(`"${text}" is not a patch mode (subprog or inline)`);
  return text;
}

/** A verdict list read once the chain's hook is known (its names are the hook's); default: the hook's set. */
function verdictOption(flag: string, desc: string, which: 'success' | 'redirect'): Option {
  const d = (hook: Hook): string => verdictText(HOOK_VERDICTS[hook][which], hook);
  return new Option(flag, `${desc}, in the chain's hook's names or numbers ("none" for empty; default XDP ${d('xdp')}, TC ${d('sched_cls')})`);
}

const hookOption = (what: string): Option => new Option('--hook <hook>', `xdp or tc: ${what}`).argParser(parseHook);

async function hostTarget(): Promise<Target> {
  if (process.getuid?.() !== 0) {
    throw new LabError('NOT_ROOT', 'chains are loaded into the kernel: this command needs root', { remedy: 'Run it with sudo.' });
  }
  return HostTarget.create(join(tmpdir(), 'xdp-chain-lab'));
}

const logSink: ProgressSink = (e) => {
  if (e.kind === 'log' && (e.level !== 'info' || process.env.XCL_VERBOSE)) process.stderr.write(`${e.level}: ${e.message}\n`);
};

function defaultName(dev: string, netns: string | undefined): string {
  return `${netns ? `${netns}-` : ''}${dev}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

export function formatStatus(s: ChainStatus): string {
  const st = s.state;
  const lines = [`chain ${st.name}  (${st.pinDir}, generation ${st.generation})`];
  lines.push(`  hook: ${hookWord(st.hook)} (${HOOK_VERDICTS[st.hook].label} programs, type ${st.hook})`);
  lines.push(
    st.attachment
      ? `  attached: ${attachPointText(st.hook, { ...st.attachment, prio: st.attachment.tc?.prio })}, program ${st.attachment.progId} (${st.attachment.method}${st.attachment.tc ? `; clsact ${st.attachment.tc.createdClsact ? 'added by the chain' : 'was there before'}` : ''})`
      : '  attached: no (loaded only)',
  );
  lines.push(`  patch mode: ${st.modeReason}`);
  lines.push(`  length: ${st.programs.length} of at most ${st.maxPrograms} on ${st.kernelRelease}`);
  if (st.trampoline) lines.push(`  head trampoline: program ${st.trampoline.id} (tail-calls slot 0)`);
  lines.push('  slot  prog id  name              success       redirect      object');
  for (const p of st.programs) {
    lines.push(`  ${String(p.index).padEnd(4)}  ${String(p.id).padEnd(7)}  ${p.program.padEnd(16)}  ${verdictText(p.success, st.hook).padEnd(12)}  ${verdictText(p.redirect, st.hook).padEnd(12)}  ${p.source}`);
  }
  lines.push(`  maps: xcl_chain id ${st.maps.chain.id} (${st.maps.chain.pin}), xcl_verdict id ${st.maps.verdict.id}`);
  for (const n of st.notes) lines.push(`  note: ${n}`);
  lines.push(s.problems.length === 0 ? '  kernel agrees with the state file' : `  PROBLEMS:\n${s.problems.map((p) => `    - ${p}`).join('\n')}`);
  return lines.join('\n');
}

/** What the patcher takes and what it refuses before anything is loaded (each refusal names its fix). */
const PATCHER_ACCEPTS = `
What the patcher accepts:
  XDP programs (SEC("xdp"), "xdp.frags", "xdp/...") and TC programs (sched_cls: SEC("tc"),
  "classifier", "tc/ingress", "tcx/ingress"...): the section says which, and the verdict lists
  take that hook's names or numbers (${verdictHelp('xdp')}; ${verdictHelp('sched_cls')}).
  Defaults: XDP S=${defaultsText('xdp')}; TC S=${defaultsText('sched_cls')}. 0 (XDP_ABORTED,
  TC_ACT_OK) means "nothing remembered" and cannot be in R. A chain is of one hook (a mix is
  refused): an XDP chain's head attaches in native XDP mode, a TC chain's as a cls_bpf
  direct-action filter on the interface's clsact ingress (tc filter ... ingress prio P bpf da;
  the clsact qdisc is added if missing, and removed on detach only if the chain added it).
  On TC, S={ok,unspec} run the next program (a chain whose programs all say unspec returns
  unspec and the hook goes on as without it); R={redirect} runs the rest and returns the
  redirect at the end; shot, stolen, trap and every other verdict leave the chain as they are.
  clang-built BPF objects (-O2 -g, -mcpu=v1..v3; without -g if they define no maps), CO-RE
  relocations, BTF-defined maps, objects linked by bpftool gen object, several programs per object (--program
  picks one; the patched object holds it alone), bodies that call other functions or pass
  callbacks (bpf_loop, timers: subprog mode, kernels that mix tail calls and bpf-to-bpf calls).
It refuses, before loading anything:
  a program that tail-calls already; legacy SEC("maps") definitions (libbpf 1.0+ cannot load
  them); SEC(".maps") maps without BTF (built without -g); inline mode for a body that calls
  functions or whose stack use it cannot bound; subprog mode when the body's deepest call chain
  plus the chain entry passes 512 bytes of stack; empty --success and --redirect sets.
Chain operations on one chain take turns (one lock per chain) and survive being killed: the next
operation, or "chain repair", completes or undoes the interrupted one; recreate swaps the attach point
by compare-and-swap (XDP_FLAGS_REPLACE, 5.7+; on TC, tc filter replace on the head's priority after
checking it still runs the old head) and never overwrites another tool's program.`;

export function chainCommand(): Command {
  const chain = new Command('chain').description(
    `the thesis's BPF program chain: patch objects (Alg. 3.4) and build, replace, inspect and remove chains pinned under ${CHAINS_PIN_ROOT}/<name>`,
  ).addHelpText('after', PATCHER_ACCEPTS);

  chain
    .command('patch')
    .description('patch one BPF object, XDP or TC (sched_cls, read from its section), for slot INDEX of a chain (writes OUT.o; loads nothing)')
    .argument('<in>', 'BPF object (.o) compiled with clang -target bpf')
    .requiredOption('-o, --output <out>', 'patched object to write')
    .requiredOption('--index <i>', 'slot of the program in the chain (0 = first)', parseIndex)
    .option('--success <list>', `verdicts that continue the chain, in the program's hook's names or numbers ("none" for empty; default XDP ${defaultsText('xdp').split(' R=')[0]}, TC ${defaultsText('sched_cls').split(' R=')[0]})`)
    .option('--redirect <list>', `verdicts that continue the chain and are returned at its end (default XDP ${defaultsText('xdp').split(' R=')[1]}, TC ${defaultsText('sched_cls').split(' R=')[1]}; 0 is refused)`)
    .option('--mode <mode>', 'inline (body kept in place) or subprog (body called as a bpf2bpf subprogram); default: inline, subprog only when the body calls other functions', parseMode)
    .option('--program <name>', 'program to patch when the object has several')
    .action(async (input: string, o: { output: string; index: number; success?: string; redirect?: string; mode?: PatchMode; program?: string }) => {
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(await readFile(input));
        } catch (e) {
          throw new LabError('MISSING_FILE', `${input}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
            remedy: 'Give the path of a compiled BPF object (.o).',
          });
        }
        const patcher = await defaultPatcher();
        const listed = patcher.listPrograms(bytes, input).filter((p) => !o.program || p.name === o.program);
        // The verdict names are the hook's, which the program's section says (as the patch reads it).
        const hook = hookOfSection(listed[0]?.section ?? '') ?? 'xdp';
        const success = hookVerdicts(o.success, hook, '--success', HOOK_VERDICTS[hook].success);
        const redirect = hookVerdicts(o.redirect, hook, '--redirect', HOOK_VERDICTS[hook].redirect);
        let mode = o.mode;
        let why = 'given';
        if (!mode) {
          const calls = listed.some((p) => p.hasSubprogCalls);
          if (!calls) {
            mode = 'inline';
            why = 'the body calls no other function, and inline is cheaper per packet';
          } else if (process.getuid?.() === 0) {
            const f = await cachedFeatures(await hostTarget(), { chainOnly: true });
            ({ mode, reason: why } = choosePatchMode(f, listed.map((p) => ({ where: `${input}:${p.name}`, hasSubprogCalls: p.hasSubprogCalls }))));
          } else {
            mode = 'subprog';
            why = 'the body calls other functions (not root: kernel not probed; it needs x86-64 5.10+)';
          }
        }
        const r = patcher.patchObject(bytes, { index: o.index, success, redirect, mode, program: o.program, fileName: input });
        await writeFile(o.output, r.object).catch((e: unknown) => {
          throw wrapError('BAD_INPUT', `cannot write ${o.output}`, e);
        });
        const names = (vs: readonly number[]): string => (vs.length === 0 ? '-' : vs.map((v) => verdictName(r.hook, v)).join(','));
        process.stdout.write(`${o.output}: ${r.program} (section ${r.section}, ${HOOK_VERDICTS[r.hook].label}) patched for slot ${o.index}, mode ${r.mode} (${why}); S=${names(r.success)} R=${names(r.redirect)}\n`);
        for (const n of r.notes) process.stdout.write(`  note: ${n}\n`);
    });

  chain
    .command('attach')
    .description('patch and load the objects as one chain (in order) and attach its head to an interface (Alg. 3.1): XDP programs in native XDP mode, TC programs as a cls_bpf direct-action filter on clsact ingress')
    .argument('<objects...>', 'BPF objects in chain order; each may carry options: PATH[:success=LIST][:redirect=LIST][:program=NAME]')
    .requiredOption('--dev <iface>', 'interface to attach to')
    .option('--netns <name>', 'network namespace (under /run/netns) holding the interface')
    .option('--name <name>', 'chain name (default: [NETNS-]IFACE)')
    .addOption(hookOption("the chain's hook (default: the one the objects' sections say; one that contradicts them is refused)"))
    .option('--prio <n>', `TC only: ingress priority of the head filter (default ${DEFAULT_TC_PRIO}; refused if a filter holds it)`, parsePrio)
    .option('--trampoline', 'put the Annexe I head in front so slot 0 can be replaced too (one program fewer)')
    .option('--mode <mode>', 'patch mode: inline or subprog (default: inline, subprog only when a body calls other functions)', parseMode)
    .addOption(verdictOption('--success <list>', 'default verdicts that continue the chain', 'success'))
    .addOption(verdictOption('--redirect <list>', 'default verdicts that continue and are remembered', 'redirect'))
    .action(async (objects: string[], o: { dev: string; netns?: string; name?: string; hook?: Hook; prio?: number; trampoline?: boolean; mode?: PatchMode; success?: string; redirect?: string }) => {
        const name = checkChainName(o.name ?? defaultName(o.dev, o.netns));
        const { hook, defaults } = await hookAndDefaults(objects, o);
        if (o.prio !== undefined && hook !== 'sched_cls') {
          throw new LabError('BAD_INPUT', `--prio ${o.prio}: a priority is a TC filter's, and this is an XDP chain`, { remedy: 'Drop --prio, or chain TC programs (SEC("tc")).' });
        }
        const programs = objects.map((a) => parseProgramSpec(a, defaults, hook));
        const target = await hostTarget();
        const state = await chainInit(target, {
          pinDir: pinDirForName(name),
          name,
          programs,
          hook,
          trampoline: o.trampoline ?? false,
          mode: o.mode,
          attach: { ifname: o.dev, netns: o.netns, prio: o.prio },
          progress: logSink,
        });
        process.stdout.write(`${formatStatus(await chainStatus(target, state.pinDir))}\n`);
    });

  chain
    .command('replace')
    .description("atomically replace the program at one slot of a chain (Alg. 3.2, one PROG_ARRAY update on either hook); slot 0 only with --trampoline chains")
    .requiredOption('--name <name>', 'chain name')
    .requiredOption('--index <i>', 'slot to replace', parseIndex)
    .argument('<object>', "new BPF object of the chain's hook: PATH[:success=LIST][:redirect=LIST][:program=NAME]")
    .addOption(verdictOption('--success <list>', 'verdicts that continue the chain', 'success'))
    .addOption(verdictOption('--redirect <list>', 'verdicts that continue and are remembered', 'redirect'))
    .option('--fresh-maps', 'give the new program new maps (default: it takes over the replaced program\'s maps of the same name, so counters and configuration survive)')
    .action(async (object: string, o: { name: string; index: number; success?: string; redirect?: string; freshMaps?: boolean }) => {
        const target = await hostTarget();
        const dir = pinDirForName(o.name);
        const current = await readState(target, dir);
        // The verdicts are read in the chain's hook's names; an object of the other hook is refused by the replace.
        const hook = current?.hook ?? 'xdp';
        const h = HOOK_VERDICTS[hook];
        const defaults = { success: o.success === undefined ? [...h.success] : verdictsOf(o.success, hook, '--success'), redirect: o.redirect === undefined ? [...h.redirect] : verdictsOf(o.redirect, hook, '--redirect') };
        const spec = { ...parseProgramSpec(object, defaults, hook), keepMaps: !o.freshMaps };
        const state = await chainReplace(target, dir, o.index, spec, { progress: logSink });
        const p = state.programs[o.index]!;
        process.stdout.write(`chain ${state.name}: slot ${o.index} now runs program ${p.id} (${p.program} from ${p.source})\n`);
    });

  chain
    .command('recreate')
    .description('build a new chain from the objects and swap it onto the attach point in one step (Alg. 3.3); the chain keeps its hook (and, on TC, its head filter\'s priority)')
    .requiredOption('--name <name>', 'chain name')
    .argument('<objects...>', 'BPF objects in chain order (PATH[:success=LIST][:redirect=LIST][:program=NAME])')
    .addOption(hookOption("must be the chain's own hook (default: the chain's; the objects' sections must agree)"))
    .option('--trampoline', 'give the new chain a head trampoline')
    .option('--no-trampoline', 'give the new chain no head trampoline')
    .option('--mode <mode>', 'patch mode: subprog or inline (default: the chain\'s)', parseMode)
    .addOption(verdictOption('--success <list>', 'default verdicts that continue the chain', 'success'))
    .addOption(verdictOption('--redirect <list>', 'default verdicts that continue and are remembered', 'redirect'))
    .action(async (objects: string[], o: { name: string; hook?: Hook; trampoline?: boolean; mode?: PatchMode; success?: string; redirect?: string }) => {
        const target = await hostTarget();
        const dir = pinDirForName(o.name);
        const current = await readState(target, dir);
        if (current && o.hook !== undefined && o.hook !== current.hook) {
          throw new LabError('BAD_INPUT', `--hook ${hookWord(o.hook)}: chain ${o.name} is ${HOOK_VERDICTS[current.hook].article} ${HOOK_VERDICTS[current.hook].label} (${hookWord(current.hook)}) chain, and a recreate keeps the chain's hook`, {
            remedy: `Drop --hook, or detach the chain and attach the new programs as a ${hookWord(o.hook)} chain.`,
          });
        }
        const expected = o.hook ?? current?.hook;
        const { hook, defaults } = await hookAndDefaults(objects, { ...o, hook: expected }, expected === undefined ? undefined : `chain ${o.name} is`);
        const state = await chainRecreate(target, dir, objects.map((a) => parseProgramSpec(a, defaults, hook)), {
          trampoline: o.trampoline,
          mode: o.mode,
          progress: logSink,
        });
        process.stdout.write(`${formatStatus(await chainStatus(target, state.pinDir))}\n`);
    });

  chain
    .command('status')
    .description('show a chain (kernel program ids in order, maps, patch mode), checked against the kernel; without --name, list the chains')
    .option('--name <name>', 'chain name')
    .option('--json', 'machine-readable output')
    .action(async (o: { name?: string; json?: boolean }) => {
        const target = await hostTarget();
        const dirs = o.name ? [pinDirForName(o.name)] : (await listStates(target)).filter((d) => d.startsWith(`${CHAINS_PIN_ROOT}/`));
        const all = [];
        for (const d of dirs) all.push(await chainStatus(target, d));
        if (o.json) {
          process.stdout.write(`${JSON.stringify(o.name ? all[0] : all, null, 2)}\n`);
        } else if (all.length === 0) {
          process.stdout.write('no chains\n');
        } else {
          process.stdout.write(`${all.map(formatStatus).join('\n\n')}\n`);
        }
        if (all.some((s) => s.problems.length > 0)) process.exitCode = 2;
    });

  chain
    .command('detach')
    .description('detach a chain from its interface and remove its programs, maps, pins and state')
    .requiredOption('--name <name>', 'chain name')
    .action(async (o: { name: string }) => {
        const target = await hostTarget();
        const dir = pinDirForName(o.name);
        const had = (await readState(target, dir).catch(() => null)) !== null || (await existsOn(target, dir));
        const r = await chainDetach(target, dir);
        if (!had) {
          throw new LabError('CHAIN', `no chain named ${o.name}`, { remedy: '`npm run chain -- status` lists the chains.' });
        }
        process.stdout.write(`chain ${o.name}: ${r.detached ? 'detached and ' : ''}removed\n`);
        for (const n of r.notes) process.stdout.write(`  note: ${n}\n`);
    });

  chain
    .command('repair')
    .description('finish or undo an operation on a chain that a killed process left half done (every other operation does this first)')
    .requiredOption('--name <name>', 'chain name')
    .action(async (o: { name: string }) => {
        const target = await hostTarget();
        const r = await chainRepair(target, pinDirForName(o.name));
        process.stdout.write(r.op ? `chain ${o.name}: an interrupted ${r.op} was ${r.action}: ${r.detail}\n` : `chain ${o.name}: ${r.detail}\n`);
    });

  return chain;
}
