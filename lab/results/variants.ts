/**
 * Names of microbenchmark rows that both the bench writing them and the report reading them must
 * agree on: the native baseline's, and a chain test-run from a later stage on.
 */

/** The native baseline (the trio as a kernel module, lab/native). */
export const NATIVE_VARIANT = 'native';
/** The native depth experiment: a "chain/" series, so the report fits its cost per hop like the tail calls'. */
export const NATIVE_CHAIN_VARIANT = 'chain/native-call';
/** The BPF variants set against native, in the order the microbenchmark names them. */
export const NATIVE_COMPARED = ['fused', 'manual', 'patched-inline', 'patched-subprog', 'dispatcher'] as const;

/** The variant of a chain test-run from `stage` on: "manual/from-metrics". */
export const fromStageVariant = (variant: string, stage: string): string => `${variant}/from-${stage}`;
/** Whether a variant is a chain test-run from a later stage on: a part of a trio, not a trio. */
export const isFromStageVariant = (variant: string): boolean => variant.includes('/from-');
