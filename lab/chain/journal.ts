/**
 * What a chain operation is about to do, written before it changes anything in the kernel, so that
 * a process killed part way leaves a chain the next operation (or `chain repair`) recognises: the
 * intent file sits beside the state file and names everything the operation makes (the new pin of
 * a replace, the next generation of a recreate, the interface an init attaches to). Repair then
 * completes the operation where the kernel already took its decisive step (the slot update, the
 * attach-point swap) and rolls it back otherwise.
 *
 * Failpoints: XCL_CHAIN_FAILPOINT=<op>:<step> makes the process SIGKILL itself right after that
 * step, the way the kill tests prove each step recoverable. Unset, failpoints do nothing.
 */
import { z } from 'zod';
import { shellQuote, type Target } from '../target.ts';
import { chainStateSchema, readJsonOn, statePath, verdictList } from './state.ts';

export const intentSchema = z.discriminatedUnion('op', [
  z.object({
    op: z.literal('init'),
    /** With `tc` for a TC chain: the head filter's priority, and whether this init adds clsact. */
    attach: z.object({ ifname: z.string(), netns: z.string().nullable(), tc: z.object({ prio: z.number().int(), createdClsact: z.boolean() }).optional() }).nullable(),
    startedAt: z.string(),
    pid: z.number().int(),
  }),
  z.object({
    op: z.literal('replace'),
    index: z.number().int().min(0),
    newPin: z.string(),
    program: z.object({ source: z.string(), program: z.string(), section: z.string(), success: verdictList, redirect: verdictList }),
    startedAt: z.string(),
    pid: z.number().int(),
  }),
  z.object({
    op: z.literal('recreate'),
    genDir: z.string(),
    objectDir: z.string(),
    /** The state once the swap is done; null until the next generation is fully built. */
    next: chainStateSchema.nullable(),
    startedAt: z.string(),
    pid: z.number().int(),
  }),
]);
export type ChainIntent = z.infer<typeof intentSchema>;
export type IntentOf<Op extends ChainIntent['op']> = Extract<ChainIntent, { op: Op }>;

export function intentPath(pinDir: string): string {
  return statePath(pinDir).replace(/chain\.json$/, 'intent.json');
}

export async function writeIntent(target: Target, pinDir: string, intent: ChainIntent): Promise<void> {
  const path = intentPath(pinDir);
  const dir = path.slice(0, path.lastIndexOf('/'));
  await target.sh(`mkdir -p ${shellQuote(dir)} && cat > ${shellQuote(path)}.tmp && mv -f ${shellQuote(path)}.tmp ${shellQuote(path)}`, {
    input: `${JSON.stringify(intent, null, 2)}\n`,
  });
}

export async function readIntent(target: Target, pinDir: string): Promise<ChainIntent | null> {
  const path = intentPath(pinDir);
  return readJsonOn(target, path, intentSchema, {
    what: 'interrupted chain operation',
    notJson: `Remove ${path}, then run \`npm run chain -- status\` and detach the chain if it reports problems.`,
    invalid: `Remove ${path} and detach the chain.`,
  });
}

export async function removeIntent(target: Target, pinDir: string): Promise<void> {
  const path = intentPath(pinDir);
  await target.run(['rm', '-f', path, `${path}.tmp`], { allowFailure: true });
}

/**
 * The steps a kill test may stop a chain operation after. The `…:pin-moved` and `…:state-written`
 * steps lie inside the one shell command that commits an operation (pins moved, state renamed
 * into place, intent removed): there the shell is killed, as a Ctrl-C kills the whole process
 * group, and then this process.
 */
export type Failpoint =
  | 'init:built'
  | 'init:attached'
  | 'init:state-written'
  | 'replace:loaded'
  | 'replace:slot-set'
  | 'replace:pin-moved'
  | 'replace:state-written'
  | 'recreate:built'
  | 'recreate:swapped'
  | 'recreate:state-written';

const armed = (step: Failpoint, env: NodeJS.ProcessEnv): boolean => env.XCL_CHAIN_FAILPOINT === step;

export function failpoint(step: Failpoint, env: NodeJS.ProcessEnv = process.env): void {
  if (armed(step, env)) process.kill(process.pid, 'SIGKILL');
}

/** `command` preceded, when `step` is armed, by the shell killing itself there. */
export function shellFailpoint(step: Failpoint, command: string, env: NodeJS.ProcessEnv = process.env): string {
  return armed(step, env) ? `kill -9 $$ && ${command}` : command;
}

/** Runs a command holding shell failpoints; when one killed the shell, this process dies too. */
export async function withShellFailpoints<T>(steps: readonly Failpoint[], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    for (const s of steps) failpoint(s);
    throw e;
  }
}
