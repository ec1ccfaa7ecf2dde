/**
 * Where a chain lives and what it remembers. The kernel objects are pinned under bpffs
 * (<pinDir>/gen-<n>/...), so they outlive the process that built them. bpffs holds only pins, not
 * files, so the small JSON description another process needs (names, indices, verdict sets, the
 * patch mode) lives in a file whose path is derived from the pin directory; both are gone after a
 * reboot, together.
 */
import { z } from 'zod';
import { LabError, describeIssues } from '../errors.ts';
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { HOOKS, PATCH_MODES } from './constants.ts';

/** Root of the CLI's named chains on bpffs. */
export const CHAINS_PIN_ROOT = '/sys/fs/bpf/xdp-chain-lab/chains';
/** Root of the state files (tmpfs: same lifetime as bpffs). */
export const STATE_ROOT = '/run/xdp-chain-lab/state';

/** A chain name becomes a path component and a netns-safe tag. */
export function checkChainName(name: string): string {
  // bpffs refuses '.' in pin names, and the name becomes a pin directory.
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name)) {
    throw new LabError('BAD_INPUT', `chain name "${name}" is not valid`, {
      remedy: 'Use 1-64 letters, digits, "_" or "-", starting with a letter or digit.',
    });
  }
  return name;
}

export function pinDirForName(name: string): string {
  return `${CHAINS_PIN_ROOT}/${checkChainName(name)}`;
}

/** State file of the chain pinned at `pinDir` (any bpffs directory, e.g. an approach's ctx.pinDir). */
export function statePath(pinDir: string): string {
  const rel = pinDir.replace(/^\/sys\/fs\/bpf\/?/, '').replace(/\/+$/, '');
  if (rel === '' || rel.includes('..')) {
    throw new LabError('BAD_INPUT', `chain pin directory ${pinDir} must be a subdirectory of /sys/fs/bpf`);
  }
  return `${STATE_ROOT}/${rel}/chain.json`;
}

/** Verdicts as each hook reads r0: XDP's u32, TC's int (TC_ACT_UNSPEC is -1). */
export const verdictList = z.array(z.number().int().min(-0x80000000).max(0xffffffff));

export const chainProgramSchema = z.object({
  index: z.number().int().min(0),
  /** The object the user gave (path on the machine running the lab). */
  source: z.string(),
  /** Program (function) name inside the object. */
  program: z.string(),
  section: z.string(),
  success: verdictList,
  redirect: verdictList,
  id: z.number().int(),
  tag: z.string(),
  pin: z.string(),
});
export type ChainProgram = z.infer<typeof chainProgramSchema>;

export const chainStateSchema = z.object({
  version: z.literal(1),
  name: z.string(),
  pinDir: z.string(),
  /** Current generation directory (recreate builds the next one beside it, then swaps). */
  genDir: z.string(),
  generation: z.number().int().min(0),
  target: z.string(),
  kernelRelease: z.string(),
  /**
   * The programs' type, which decides where the head attaches: 'xdp' on the interface's native
   * XDP hook, 'sched_cls' as a cls_bpf filter on its clsact ingress. State files written before
   * chains knew TC have no field and were XDP chains.
   */
  hook: z.enum(HOOKS).default('xdp'),
  mode: z.enum(PATCH_MODES),
  modeReason: z.string(),
  /** Most programs this kernel lets the chain hold (trampoline already accounted for). */
  maxPrograms: z.number().int().min(1),
  trampoline: z.object({ id: z.number().int(), pin: z.string() }).nullable(),
  maps: z.object({
    chain: z.object({ id: z.number().int(), pin: z.string() }),
    verdict: z.object({ id: z.number().int(), pin: z.string() }),
  }),
  programs: z.array(chainProgramSchema).min(1),
  /** Where the head is attached; null while loaded only. */
  attachment: z
    .object({
      ifname: z.string(),
      netns: z.string().nullable(),
      progId: z.number().int(),
      /**
       * How the head was put there last: the first attach (netlink, refused if anything is
       * attached), a recreate's compare-and-swap (XDP_FLAGS_REPLACE with the expected program),
       * or, on kernels without it, a recreate's one-step netlink overwrite between two checks.
       * 'netlink-swap' is the older name of the overwrite, read from state files written before.
       */
      method: z.enum(['netlink-attach', 'xdp-flags-replace', 'netlink-overwrite', 'netlink-swap', 'tc-filter-add', 'tc-filter-replace']),
      /**
       * A TC chain's head filter: its ingress priority (handle 1), and whether the chain added
       * the clsact qdisc (then detach removes it, else it leaves the qdisc to whoever made it).
       * 'tc-filter-add' is the first attach, 'tc-filter-replace' a recreate's in-place swap.
       */
      tc: z.object({ prio: z.number().int().min(1).max(0xffff), createdClsact: z.boolean() }).optional(),
    })
    .nullable(),
  /** Directory on the target with this chain's patched objects. */
  objectDir: z.string(),
  notes: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ChainState = z.infer<typeof chainStateSchema>;

/**
 * Writes the state file. `before` and `after` are shell commands run first and last in the same
 * shell (one process instead of three on the replace path, which the live-traffic test runs a
 * thousand times).
 */
export async function writeState(target: Target, state: ChainState, before?: string, after?: string): Promise<void> {
  const path = statePath(state.pinDir);
  const dir = path.slice(0, path.lastIndexOf('/'));
  // Written to a temporary name then renamed, so a reader never sees half a file.
  await target.sh(`${before ? `${before} && ` : ''}mkdir -p ${shellQuote(dir)} && cat > ${shellQuote(path)}.tmp && mv -f ${shellQuote(path)}.tmp ${shellQuote(path)}${after ? ` && ${after}` : ''}`, {
    input: `${JSON.stringify(state, null, 2)}\n`,
  });
}

/**
 * A JSON file on the target checked against `schema`, or null when it does not exist; `broken` says
 * what to do with one that is not JSON or not valid.
 */
export async function readJsonOn<T>(target: Target, path: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, broken: { what: string; notJson: string; invalid: string }): Promise<T | null> {
  const r = await target.run(['cat', path], { allowFailure: true });
  if (r.exitCode !== 0) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(r.stdout);
  } catch (e) {
    throw new LabError('CHAIN', `${target.name}: ${broken.what} ${path} is not JSON`, { cause: e, remedy: broken.notJson });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new LabError('CHAIN', `${target.name}: ${broken.what} ${path} is malformed: ${describeIssues(parsed.error.issues, { max: 1 })}`, { remedy: broken.invalid });
  }
  return parsed.data;
}

/** The chain's state, or null when no chain is recorded at `pinDir`. */
export async function readState(target: Target, pinDir: string): Promise<ChainState | null> {
  return readJsonOn(target, statePath(pinDir), chainStateSchema, {
    what: 'chain state',
    notJson: `Remove ${statePath(pinDir)} and the pins under ${pinDir} (or run \`npm run chain -- detach\`).`,
    invalid: 'It was written by another version of the lab; detach the chain and build it again.',
  });
}

export async function removeState(target: Target, pinDir: string): Promise<void> {
  const path = statePath(pinDir);
  await target.run(['rm', '-f', path, `${path}.tmp`], { allowFailure: true });
  // Leave no empty parents behind under STATE_ROOT.
  await target.sh(`d=$(dirname ${shellQuote(path)}); while [ "$d" != ${shellQuote(STATE_ROOT)} ] && [ "$d" != / ] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done; true`, {
    allowFailure: true,
  });
}

/** Every chain recorded under STATE_ROOT: their pin directories. */
export async function listStates(target: Target): Promise<string[]> {
  const r = await target.sh(`find ${shellQuote(STATE_ROOT)} -name chain.json 2>/dev/null`, { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((p) => `/sys/fs/bpf/${p.slice(STATE_ROOT.length + 1, -'/chain.json'.length)}`);
}
