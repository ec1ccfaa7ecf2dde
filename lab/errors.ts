/**
 * One error type for the whole lab. Every failure a user can meet carries a stable code,
 * a message with context ("trio.o: section xdp: insn 42: unknown opcode 0x8f"), and a remedy
 * telling them what to do about it. The CLI prints message + remedy and exits non-zero;
 * stack traces only with --verbose.
 */
export type LabErrorCode =
  | 'NOT_ROOT'
  | 'MISSING_TOOL'
  | 'MISSING_FILE'
  | 'BAD_INPUT'
  | 'BAD_ELF'
  | 'NOT_BPF'
  | 'BTF'
  | 'PATCH'
  | 'CHAIN'
  | 'COMPILE'
  | 'LOAD'
  | 'ATTACH'
  | 'NO_INTERFACE'
  | 'UNSUPPORTED'
  | 'UNKNOWN_KERNEL'
  | 'NO_PROVIDER'
  | 'DOWNLOAD'
  | 'CHECKSUM'
  | 'KERNEL_BUILD'
  | 'IMAGE'
  | 'VM_BOOT'
  | 'VM_PANIC'
  | 'VM_TIMEOUT'
  | 'SSH'
  | 'COMMAND'
  | 'DISK_FULL'
  | 'BENCH'
  | 'RESULTS'
  | 'REPORT'
  | 'INTERRUPTED';

export interface LabErrorOptions {
  /** What the user should do about it, in one or two sentences. */
  remedy?: string;
  cause?: unknown;
  /** Structured context for logs and tests (paths, ids, exit codes...). */
  details?: Record<string, unknown>;
}

export class LabError extends Error {
  readonly code: LabErrorCode;
  readonly remedy: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: LabErrorCode, message: string, options: LabErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LabError';
    this.code = code;
    this.remedy = options.remedy;
    this.details = options.details ?? {};
  }

  /** The text the CLI shows: the message, then the remedy on its own line. */
  describe(): string {
    return this.remedy ? `${this.message}\n  fix: ${this.remedy}` : this.message;
  }
}

export function isLabError(e: unknown, code?: LabErrorCode): e is LabError {
  return e instanceof LabError && (code === undefined || e.code === code);
}

/** The message of anything thrown (an Error's message, else its string form). */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Wraps an unknown failure so it keeps its cause but gains a code and context. */
export function wrapError(code: LabErrorCode, context: string, e: unknown, remedy?: string): LabError {
  if (e instanceof LabError) return e;
  return new LabError(code, `${context}: ${errorMessage(e)}`, { cause: e, remedy });
}

/** One thing a schema check (zod) found wrong: where in the value, and what. */
export interface SchemaIssue {
  path: readonly PropertyKey[];
  message: string;
}

/**
 * What a schema check found, as `path: message` items joined by "; " — the one wording of every
 * "file does not match its schema" error. `whole` names the value itself when the path is empty.
 */
export function describeIssues(issues: readonly SchemaIssue[], o: { max?: number; whole?: string } = {}): string {
  return issues
    .slice(0, o.max ?? issues.length)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join('.') : (o.whole ?? '(root)')}: ${i.message}`)
    .join('; ');
}
