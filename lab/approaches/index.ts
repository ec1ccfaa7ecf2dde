/** The registry of approaches: the one place that knows every way the lab runs the trio. */
import { LabError } from '../errors.ts';
import { APPROACH_NAMES, type ApproachName } from '../results/record.ts';
import type { Approach } from './approach.ts';
import { dispatcher } from './dispatcher.ts';
import { fused } from './fused.ts';
import { manual } from './manual.ts';
import { none } from './none.ts';
import { patched } from './patched.ts';
import { tcFilters, tcFused, tcManual } from './tc-chains.ts';
import { tcNone } from './tc-none.ts';
import { tcx } from './tcx.ts';
import { tcPatched } from './tc-patched.ts';

export const APPROACHES: Readonly<Record<ApproachName, Approach>> = {
  none,
  fused,
  manual,
  dispatcher,
  patched,
  'tc-none': tcNone,
  'tc-fused': tcFused,
  'tc-manual': tcManual,
  'tc-patched': tcPatched,
  'tc-filters': tcFilters,
  tcx,
};

export function getApproach(name: string): Approach {
  if (!(APPROACH_NAMES as readonly string[]).includes(name)) {
    throw new LabError('BAD_INPUT', `unknown approach "${name}"`, { remedy: `use one of: ${APPROACH_NAMES.join(', ')}` });
  }
  return APPROACHES[name as ApproachName];
}
