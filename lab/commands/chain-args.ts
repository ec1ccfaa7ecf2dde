/**
 * The chain command's arguments: verdict lists in the chain's hook's names, `--hook` and
 * `--prio`, per-program specs (PATH[:success=LIST][:redirect=LIST][:program=NAME]), and the
 * chain's hook read from the objects' sections and checked against `--hook`.
 */
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { LabError } from '../errors.ts';
import { HOOK_VERDICTS, type Hook } from '../chain/constants.ts';
import { parseVerdictList, verdictName } from '../chain/hook.ts';
import { XDP_ACTIONS, XDP_ACTION_NAMES } from '../bpf/uapi.ts';
import { defaultPatcher, hookOfPrograms, type ChainProgramSpec } from '../chain/ops/build.ts';

export const VERDICT_HELP = `verdicts: ${XDP_ACTION_NAMES.join(', ')} or numbers (${XDP_ACTION_NAMES.map((n) => `${n}=${XDP_ACTIONS[n]}`).join(', ')})`;

/** "pass,drop" / "2,1" / "XDP_PASS" / "" → action numbers. */
export function parseVerdicts(text: string, what = 'verdict list'): number[] {
  if (text.trim() === '' || text.trim() === 'none') return [];
  const out: number[] = [];
  for (const raw of text.split(',')) {
    const w = raw.trim().toLowerCase().replace(/^xdp_/, '');
    if (w === '') continue;
    let v: number;
    if (/^\d+$/.test(w)) v = Number(w);
    else if (w in XDP_ACTIONS) v = XDP_ACTIONS[w as keyof typeof XDP_ACTIONS];
    else throw new InvalidArgumentError(`${what}: "${raw.trim()}" is not a verdict (${VERDICT_HELP})`);
    if (v > 0xffffffff) throw new InvalidArgumentError(`${what}: ${v} does not fit in 32 bits`);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

export function defaultsText(hook: Hook): string {
  const h = HOOK_VERDICTS[hook];
  return `${h.success.map((v) => verdictName(hook, v)).join(',')} R=${h.redirect.map((v) => verdictName(hook, v)).join(',')}`;
}

/** A verdict list of the patch command, read once the object's hook is known. */
export function hookVerdicts(text: string | undefined, hook: Hook, flag: string, fallback: readonly number[]): number[] {
  return text === undefined ? [...fallback] : parseVerdictList(text, hook, flag);
}

export function verdictText(vs: readonly number[], hook: Hook = 'xdp'): string {
  return vs.length === 0 ? '-' : vs.map((v) => verdictName(hook, v)).join(',');
}

/** A verdict list in the hook's vocabulary: XDP's names as before, TC's through lab/chain/hook.ts. */
export function verdictsOf(text: string, hook: Hook, what: string): number[] {
  if (hook !== 'xdp') return parseVerdictList(text, hook, what);
  try {
    return parseVerdicts(text, what);
  } catch (e) {
    throw new LabError('BAD_INPUT', (e as Error).message, { remedy: VERDICT_HELP });
  }
}

/** The hooks `--hook` names, as the chain's program types. */
const HOOK_WORDS: Readonly<Record<string, Hook>> = { xdp: 'xdp', tc: 'sched_cls' };

export function hookWord(hook: Hook): string {
  return hook === 'xdp' ? 'xdp' : 'tc';
}

export function parseHook(text: string): Hook {
  const h = HOOK_WORDS[text.toLowerCase()];
  if (h === undefined) throw new InvalidArgumentError(`"${text}" is not a hook (xdp or tc)`);
  return h;
}

export function parsePrio(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 0xffff) throw new InvalidArgumentError(`"${text}" is not a tc filter priority (1-65535)`);
  return Number(text);
}

/**
 * The chain's hook and its default verdict sets: from the objects' sections, checked against
 * `--hook` when given (a contradiction names both); `--success`/`--redirect` then read in that
 * hook's names, their defaults the hook's own.
 */
export async function hookAndDefaults(objects: readonly string[], o: { hook?: Hook; success?: string; redirect?: string }, why?: string): Promise<{ hook: Hook; defaults: { success: number[]; redirect: number[] } }> {
  const bare = objects.map((a) => {
    const [path = '', ...opts] = a.split(':');
    const program = opts.map((x) => /^program=(.*)$/.exec(x)?.[1]).find((x) => x !== undefined);
    return { path: resolve(path), ...(program !== undefined ? { program } : {}) };
  });
  const hook = await hookOfPrograms(bare, await defaultPatcher(), o.hook, why ?? `--hook ${o.hook === undefined ? '' : hookWord(o.hook)} asks for`);
  const h = HOOK_VERDICTS[hook];
  return {
    hook,
    defaults: {
      success: o.success === undefined ? [...h.success] : verdictsOf(o.success, hook, '--success'),
      redirect: o.redirect === undefined ? [...h.redirect] : verdictsOf(o.redirect, hook, '--redirect'),
    },
  };
}

/**
 * `path[:success=LIST][:redirect=LIST][:program=NAME]`, e.g. `build/bpf/filter.o:success=pass,drop`.
 * Options after the path override the command's defaults for that program only; verdicts are in
 * the chain's hook's names (`hook`, default XDP).
 */
export function parseProgramSpec(arg: string, defaults: { success: readonly number[]; redirect: readonly number[] }, hook: Hook = 'xdp'): ChainProgramSpec {
  const [path, ...opts] = arg.split(':');
  if (!path) throw new LabError('BAD_INPUT', `"${arg}": no object path`, { remedy: 'Write PATH.o[:success=LIST][:redirect=LIST].' });
  const spec: ChainProgramSpec = { path: resolve(path), success: [...defaults.success], redirect: [...defaults.redirect] };
  for (const o of opts) {
    const m = /^(success|redirect|program|s|r)=(.*)$/.exec(o);
    if (!m) {
      throw new LabError('BAD_INPUT', `"${arg}": unknown option "${o}"`, {
        remedy: 'Per-program options are success=LIST, redirect=LIST and program=NAME, separated by ":".',
      });
    }
    const [, key, value = ''] = m;
    if (key === 'success' || key === 's') spec.success = verdictsOf(value, hook, `${path}: success`);
    else if (key === 'redirect' || key === 'r') spec.redirect = verdictsOf(value, hook, `${path}: redirect`);
    else spec.program = value;
  }
  return spec;
}
