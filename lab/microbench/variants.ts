/**
 * The per-approach rows that are not one approach's whole trio: a kernel-walked chain's stages
 * added up (its name, and why it exists), and which chains are also test-run from each later stage
 * on (named by lab/results/variants.ts, which the report reads them by).
 */
import type { ApproachName } from '../results/record.ts';

/** The variant of the row that adds up the stages of a chain the kernel walks itself. */
export const sumOfStagesVariant = (approach: ApproachName): string => `${approach}/sum-of-stages`;

/** Why a chain the kernel walks itself has no test-run of the whole chain. */
export function notTestRunnableReason(approach: ApproachName): string {
  return `${approach}: the kernel runs its programs one after another on TC ingress (TC_ACT_UNSPEC: next, by cls_bpf priority or tcx's program list), outside any program, and BPF_PROG_TEST_RUN runs one program: it cannot run the chain; see ${sumOfStagesVariant(approach)} for the sum of its stages each test-run alone`;
}

/** The units whose chains are test-run from each stage on too, when stageSuffixes is asked for. */
export const STAGE_SUFFIX_UNITS: readonly string[] = ['manual', 'patched-inline', 'patched-subprog'];
