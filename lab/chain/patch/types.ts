/**
 * What the patch takes and gives (PatchOptions, PatchResult) and what its passes hand each other
 * (lab/chain/patch.ts runs them in order): the checked options, the entry program chosen, the mode's layout decision and the rewrite's remap and marks.
 */
import type { ElfSymbol, Section } from '../../bpf/elf.ts';
import type { BpfFuncInfo, BpfLineInfo } from '../../bpf/btf-ext.ts';
import type { Asm } from '../../bpf/insn.ts';
import type { Hook, PatchMode } from '../constants.ts';
import type { ChainMark } from './epilogue.ts';
import type { Remap } from './remap.ts';

/** The options that need no object to check: a valid index, mode and map names. */
export interface OptionsBase {
  file: string;
  index: number;
  mode: PatchMode;
  chainName: string;
  verdictName: string;
}

/** The patch options once checked against the entry: its hook and that hook's verdict sets. */
export interface CheckedOptions extends OptionsBase {
  hook: Hook;
  success: number[];
  redirect: number[];
}

/**
 * The entry program being patched: its symbol and section. Its offset is read from the symbol when
 * the entry is rewritten: removing the object's other programs may move it within its section.
 */
export interface Entry {
  prog: ElfSymbol;
  section: Section;
}

/** The mode's decision about the patched program's layout, made before anything is changed. */
export type ModePlan =
  | {
      mode: 'subprog';
      /** Notes about the combined stack of the call chain under the entry. */
      notes: string[];
    }
  | {
      mode: 'inline';
      /** Lowest stack offset the body can reach (negative, from r10). */
      deepest: number;
      /** Stack slot that keeps ctx across the body. */
      ctxSlot: number;
      /** Four bytes for the map key: a slot of its own below ctx where the stack has room. */
      keyOff: number;
    };

/** The maps the patch added, by their symbols (relocation targets). */
export interface ChainMapSymbols {
  chain: ElfSymbol;
  verdict: ElfSymbol;
}

/** What the entry rewrite leaves for the passes after it. */
export interface Rewrite {
  /** Where every old offset of the entry's section went. */
  remap: Remap;
  /** Marked instructions to relocate, and the section offset of the Asm's slot 0. */
  marks: { asm: Asm<ChainMark>; base: number };
  /** subprog: the body's static function in .text. */
  body: { symbol: ElfSymbol; text: Section } | null;
  /** The entry's func_info and first line_info record as they were before the rewrite. */
  funcInfo: BpfFuncInfo | undefined;
  firstLine: BpfLineInfo | undefined;
}

export interface PatchOptions {
  /** position in the chain, 0-based */
  index: number;
  /**
   * verdicts that continue the chain, in the hook's vocabulary (default HOOK_VERDICTS[hook].success:
   * XDP [2] XDP_PASS; TC [0, -1] TC_ACT_OK, TC_ACT_UNSPEC)
   */
  success: number[];
  /** verdicts remembered and continued (default: XDP [3, 4] XDP_TX, XDP_REDIRECT; TC [7] TC_ACT_REDIRECT) */
  redirect: number[];
  /**
   * the hook the chain is on; the program's section decides its hook (libbpf's names) and a
   * different one is refused. Only used when the section names neither (default then: xdp).
   */
  hook?: Hook;
  mode: PatchMode;
  /** program (function symbol) to patch when the object has several */
  program?: string;
  /** name of the PROG_ARRAY map added (default CHAIN_MAP, CHAIN_SLOTS entries) */
  chainMap?: string;
  /** name of the PERCPU_ARRAY map added (default VERDICT_MAP, 1 entry, u32 value) */
  verdictMap?: string;
  /** for error messages */
  fileName?: string;
}

export interface PatchResult {
  object: Uint8Array;
  program: string;
  section: string;
  mode: PatchMode;
  /** the hook the program was patched for, and the verdict sets it was patched with */
  hook: Hook;
  success: number[];
  redirect: number[];
  notes: string[];
}
