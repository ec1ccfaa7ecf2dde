/**
 * The chain's constants, defined once for the patch, the loader and the operations: the names of
 * the two maps every patched program shares, the PROG_ARRAY's size, the highest chain index, the
 * thesis's default verdict sets, and the two patch modes. The XDP verdicts themselves are the
 * kernel's (lab/bpf/uapi.ts).
 */
import { XDP_PASS, XDP_REDIRECT, XDP_TX } from '../bpf/uapi.ts';

/** PROG_ARRAY the patch adds and every program of a chain shares (the edges E of the thesis). */
export const CHAIN_MAP = 'xcl_chain';
/** One-entry per-CPU array holding the remembered verdict C. */
export const VERDICT_MAP = 'xcl_verdict';

/**
 * Slots of the PROG_ARRAY (the patch's map and the trampoline's): more than the 33 tail calls any
 * kernel allows per packet, so only the first maxPrograms are ever used.
 */
export const CHAIN_SLOTS = 64;

/**
 * Highest chain index: every LTS kernel lets a packet make 33 tail calls, so at most 34 programs
 * run (indices 0..33; measured on the host). Which length a given kernel really reaches is the
 * chain operations' business (they probe it); the patch only refuses what no kernel can run.
 */
export const MAX_INDEX = 33;

/** Defaults of the thesis's evaluation: S = {XDP_PASS}, R = {XDP_TX, XDP_REDIRECT}. */
export const DEFAULT_SUCCESS: readonly number[] = [XDP_PASS];
export const DEFAULT_REDIRECT: readonly number[] = [XDP_TX, XDP_REDIRECT];

/**
 * How the patch runs the body: 'subprog' moves it to .text and calls it (kernels that mix tail
 * calls with bpf-to-bpf calls), 'inline' keeps it in place behind a preamble (every kernel).
 */
export const PATCH_MODES = ['subprog', 'inline'] as const;
export type PatchMode = (typeof PATCH_MODES)[number];
