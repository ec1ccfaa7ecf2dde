/**
 * Kernel .config handling: parse, merge a fragment, and verify that every requested option
 * survived `olddefconfig` (which silently drops options whose dependencies are not met).
 */
import { readFile } from 'node:fs/promises';

/** Value of one option: "y", "m", a string/number, or "n" for "# CONFIG_X is not set". */
export type KconfigValues = Map<string, string>;

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

export function parseKconfig(text: string): KconfigValues {
  const values: KconfigValues = new Map();
  for (const line of text.split('\n')) {
    const set = SET.exec(line.trim());
    if (set?.[1] !== undefined && set[2] !== undefined) {
      values.set(set[1], set[2]);
      continue;
    }
    const unset = UNSET.exec(line.trim());
    if (unset?.[1] !== undefined) values.set(unset[1], 'n');
  }
  return values;
}

export async function readKconfig(path: string): Promise<KconfigValues> {
  return parseKconfig(await readFile(path, 'utf8'));
}

export interface Fragment {
  /** Requested value per option, in file order ("n" for "is not set"). */
  options: KconfigValues;
  /** Options that may be absent from a version's Kconfig (marked `# xcl-optional: ...`). */
  optional: Set<string>;
}

export function parseFragment(text: string): Fragment {
  const optional = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^#\s*xcl-optional:\s*(.*)$/.exec(line.trim());
    if (m?.[1]) for (const name of m[1].split(/\s+/)) if (name) optional.add(name);
  }
  return { options: parseKconfig(text), optional };
}

/** Writes the fragment's values over a base .config text (what scripts/kconfig/merge_config.sh -m does). */
export function mergeFragment(base: string, fragment: Fragment, skip: ReadonlySet<string> = new Set()): string {
  const lines = base.split('\n');
  const pending = new Map([...fragment.options].filter(([k]) => !skip.has(k)));
  const out = lines.map((line) => {
    const name = SET.exec(line.trim())?.[1] ?? UNSET.exec(line.trim())?.[1];
    if (name === undefined || !pending.has(name)) return line;
    const value = pending.get(name) as string;
    pending.delete(name);
    return renderOption(name, value);
  });
  if (out.length > 0 && out[out.length - 1] === '') out.pop();
  for (const [name, value] of pending) out.push(renderOption(name, value));
  return `${out.join('\n')}\n`;
}

function renderOption(name: string, value: string): string {
  return value === 'n' ? `# ${name} is not set` : `${name}=${value}`;
}

export interface ConfigCheck {
  option: string;
  wanted: string;
  /** What the final .config has ("n" when absent or not set). */
  got: string;
}

/**
 * Options whose final value differs from the request. "=y" requested is satisfied only by "y";
 * "is not set" is satisfied by "n" or absence; `allowModule` lets "m" satisfy "y" (distribution kernels).
 */
export function checkConfig(
  final: KconfigValues,
  wanted: Iterable<[string, string]>,
  opts: { allowModule?: ReadonlySet<string> } = {},
): ConfigCheck[] {
  const bad: ConfigCheck[] = [];
  for (const [option, want] of wanted) {
    const got = final.get(option) ?? 'n';
    const ok = got === want || (want === 'y' && got === 'm' && (opts.allowModule?.has(option) ?? false));
    if (!ok) bad.push({ option, wanted: want, got });
  }
  return bad;
}

export function describeChecks(bad: readonly ConfigCheck[]): string {
  return bad.map((b) => `${b.option} (wanted ${b.wanted}, got ${b.got === 'n' ? 'not set' : b.got})`).join(', ');
}

/**
 * Where a kernel's final .config no longer gives what the fragment asks: a cached image built with
 * an older fragment. An option the kernel does not show at all is left out only where the fragment
 * marks it optional (absent from that version); any other difference counts.
 */
export function fragmentDrift(final: KconfigValues, fragment: Fragment): ConfigCheck[] {
  const wanted = [...fragment.options].filter(([k]) => final.has(k) || !fragment.optional.has(k));
  return checkConfig(final, wanted);
}
