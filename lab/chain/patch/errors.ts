/**
 * The patch's two kinds of failure: BAD_INPUT for options no object could be patched with, PATCH
 * for an object the patch refuses (or, with "internal", for a bug in the patch itself).
 */
import { LabError } from '../../errors.ts';

export function badInput(file: string, what: string, remedy: string): LabError {
  return new LabError('BAD_INPUT', `${file}: ${what}`, { remedy });
}

export function patchError(file: string, what: string, remedy: string, details: Record<string, unknown> = {}): LabError {
  return new LabError('PATCH', `${file}: ${what}`, { remedy, details });
}
