/**
 * The patch's first pass: check the options, then the object, before anything is changed. Picks
 * the entry program, reads its hook from its section and checks the verdict sets in that hook's
 * vocabulary, and refuses what cannot be chained (maps libbpf cannot load, names the patch would
 * add twice, programs that tail-call themselves, empty functions).
 */
import { type ElfSymbol, STT_OBJECT, findSection } from '../../bpf/elf.ts';
import { BTF_KIND_FUNC, BTF_KIND_VAR } from '../../bpf/btf.ts';
import { HELPER_TAIL_CALL, isHelperCall } from '../../bpf/insn.ts';
import { type BpfObject, functionInsns, programSymbols, reachableFunctions } from '../../bpf/object.ts';
import { CHAIN_MAP, HOOKS, HOOK_VERDICTS, type Hook, MAX_INDEX, NO_VERDICT, VERDICT_MAP } from '../constants.ts';
import { hookOfSection, verdictHelp, verdictName } from '../hook.ts';
import { badInput, patchError } from './errors.ts';
import type { CheckedOptions, Entry, OptionsBase, PatchOptions } from './types.ts';

function checkVerdicts(file: string, hook: Hook, list: unknown, what: string): number[] {
  const h = HOOK_VERDICTS[hook];
  const example = `Pass e.g. [${h.success.join(', ')}].`;
  if (!Array.isArray(list)) throw badInput(file, `${what} verdicts must be an array of numbers`, example);
  for (const v of list) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < h.min || v > h.max) {
      const range = hook === 'xdp' ? '0..2^31-1' : '-2^31..2^31-1';
      const remedy = hook === 'xdp' ? 'XDP verdicts are 0..4 (ABORTED, DROP, PASS, TX, REDIRECT).' : `${verdictHelp(hook)} (the kernel reads a TC verdict as an int).`;
      throw badInput(file, `${what} verdict ${String(v)} is not an integer in ${range}`, remedy);
    }
  }
  return [...new Set(list as number[])];
}

const MAP_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,14}$/;

export function checkOptions(options: PatchOptions): OptionsBase {
  const file = options.fileName ?? '<object>';
  const { index, mode } = options;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_INDEX) {
    throw badInput(file, `chain index ${String(index)} out of range 0..${MAX_INDEX}`, `A chain holds at most ${MAX_INDEX + 1} programs (the kernel allows 33 tail calls per packet); use an index in 0..${MAX_INDEX}.`);
  }
  if (mode !== 'subprog' && mode !== 'inline') {
    throw badInput(file, `unknown patch mode ${String(mode)}`, "Use 'subprog' (kernels 5.10+) or 'inline' (any kernel).");
  }
  const chainName = options.chainMap ?? CHAIN_MAP;
  const verdictName = options.verdictMap ?? VERDICT_MAP;
  for (const n of [chainName, verdictName]) {
    if (!MAP_NAME.test(n)) throw badInput(file, `map name "${n}" is not a C identifier of at most 15 characters`, 'Choose a short identifier such as xcl_chain.');
  }
  if (chainName === verdictName) throw badInput(file, 'chain and verdict maps need different names', 'Pick two names.');
  if (options.hook !== undefined && !(HOOKS as readonly string[]).includes(options.hook)) {
    throw badInput(file, `unknown hook ${String(options.hook)}`, `Use one of ${HOOKS.join(', ')}.`);
  }
  return { file, index, mode, chainName, verdictName };
}

/**
 * The hook the entry chains on, from its section (libbpf's names), against the one the caller
 * expects; then the verdict sets in that hook's vocabulary (its defaults where none are given).
 */
export function checkVerdictSets(o: OptionsBase, entry: Entry, options: PatchOptions, notes: string[]): CheckedOptions {
  const file = o.file;
  const sec = entry.section.name;
  const where = `program "${entry.prog.name}" (section "${sec}")`;
  const found = hookOfSection(sec);
  const wanted = options.hook;
  if (found !== null && wanted !== undefined && found !== wanted) {
    throw patchError(file, `${where} is ${HOOK_VERDICTS[found].article} ${HOOK_VERDICTS[found].label} (${found}) program and the chain is on ${HOOK_VERDICTS[wanted].label} (${wanted}): the kernel tail-calls only between programs of one type, and the verdicts mean different things`, `Chain it on its own hook, or chain only ${wanted} programs here.`);
  }
  const hook = found ?? wanted ?? 'xdp';
  if (found === null) notes.push(`section "${sec}" is not one libbpf loads as XDP or TC (sched_cls); the verdict semantics assume ${HOOK_VERDICTS[hook].label}`);
  const h = HOOK_VERDICTS[hook];
  const success = checkVerdicts(file, hook, options.success ?? h.success, 'success');
  const redirect = checkVerdicts(file, hook, options.redirect ?? h.redirect, 'redirect');
  if (success.length === 0 && redirect.length === 0) {
    throw badInput(file, 'no verdict continues the chain (success and redirect sets are both empty): every packet would leave at this program', `Give at least one verdict that continues, e.g. --success ${verdictName(hook, h.success[0]!)}; a program that should always end the chain is better attached last with its own verdicts.`);
  }
  if (redirect.includes(NO_VERDICT)) {
    throw badInput(file, `redirect verdicts cannot include ${NO_VERDICT} (${hook === 'xdp' ? 'XDP_ABORTED' : 'TC_ACT_OK'})`, `The remembered verdict uses ${NO_VERDICT} for "none"${hook === 'xdp' ? '' : ', and TC_ACT_OK is 0: the chain could not tell a remembered OK from no verdict'}; remove ${NO_VERDICT} from the redirect set${hook === 'xdp' ? '' : ' (put ok in the success set: it continues the chain and is returned at its end when nothing else is remembered)'}.`);
  }
  return { ...o, hook, success, redirect };
}

/** Picks the program to patch and refuses an object that cannot be chained. */
export function checkInput(obj: BpfObject, o: OptionsBase, program: string | undefined, notes: string[]): Entry {
  const file = o.file;
  const progs = programSymbols(obj);
  if (progs.length === 0) {
    throw patchError(file, 'no BPF program found (no function symbol in a program section)', 'Compile a program with SEC("xdp") and keep its symbol (do not strip).');
  }
  let prog: ElfSymbol | undefined;
  if (program !== undefined) {
    prog = progs.find((p) => p.name === program);
    if (!prog) {
      throw patchError(file, `no program "${program}"; the object has: ${progs.map((p) => `${p.name} (${p.section!.name})`).join(', ')}`, 'Pass one of the listed program names.');
    }
  } else if (progs.length > 1) {
    throw patchError(file, `several programs: ${progs.map((p) => `${p.name} (${p.section!.name})`).join(', ')}; say which one to patch`, 'Pass the program name (option program / --program).');
  } else prog = progs[0]!;
  const sec = prog.section!;
  const where = `program "${prog.name}" (section "${sec.name}")`;

  const btfMaps = findSection(obj.elf, '.maps');
  if (btfMaps && !obj.btf && obj.elf.symbols.some((x) => x.section === btfMaps && x.type === STT_OBJECT)) {
    throw patchError(file, 'maps are defined in SEC(".maps") but the object has no BTF (built without -g): libbpf cannot load it, patched or not ("BTF is required, but is missing or corrupted")', 'Rebuild with clang -g: BTF-defined maps are described by BTF.');
  }
  const legacy = findSection(obj.elf, 'maps');
  if (legacy) {
    const names = obj.elf.symbols.filter((x) => x.section === legacy && x.type === STT_OBJECT).map((x) => x.name);
    throw patchError(file, `legacy map definitions in SEC("maps")${names.length ? ` (${names.join(', ')})` : ''}: libbpf v1.0+, which loads the chain, no longer supports them ("legacy map definitions in 'maps' section are not supported by libbpf v1.0+")`, 'Define the maps the BTF way: struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, N); __type(key, K); __type(value, V); } name SEC(".maps"); and rebuild with clang -g.');
  }
  for (const n of [o.chainName, o.verdictName, `${prog.name}__body`]) {
    if (obj.elf.symbols.some((s) => s.name === n) || (obj.btf && obj.btf.types.some((t) => t.name === n && (t.kind === BTF_KIND_VAR || t.kind === BTF_KIND_FUNC)))) {
      throw patchError(file, `the object already defines "${n}"; was it patched already?`, 'Patch the original object, not a patched one, or choose other map names.');
    }
  }

  for (const fn of reachableFunctions(obj, prog)) {
    const { insns, slots } = functionInsns(obj, fn);
    const k = insns.findIndex((i) => isHelperCall(i, HELPER_TAIL_CALL));
    if (k >= 0) {
      throw patchError(file, `${where}: ${fn === prog ? '' : `function "${fn.name}" called by it: `}insn ${slots[k]}: calls bpf_tail_call already; it chains by itself and cannot be put in a chain`, 'Chain programs that end with a verdict, not ones that tail-call.');
    }
  }
  if (functionInsns(obj, prog).insns.length === 0) {
    throw patchError(file, `${where}: the function symbol has size 0 (no instructions)`, 'Rebuild the object; its symbol table is corrupt or the program was stripped.');
  }
  return { prog, section: sec };
}
