/**
 * Reading a failed kernel build's output: the first error, not the last lines. With make -j the
 * tail is other jobs' warnings and make's "Error 2" cascade; the cause is the first compiler,
 * linker or tool diagnostic that made a recipe fail.
 */

export type BuildErrorKind =
  /** file:line[:col]: error: ... from the compiler (C or assembler). */
  | 'compile'
  /** A symbol defined in two objects (GCC >= 10 defaults to -fno-common). */
  | 'multiple-definition'
  /** Any other linker failure (undefined reference, ...). */
  | 'link'
  /** A build tool (objtool, pahole, resolve_btfids, ...) that made the recipe fail. */
  | 'tool';

export interface BuildError {
  kind: BuildErrorKind;
  /** Source or object file named by the diagnostic, when there is one. */
  file: string | null;
  line: number | null;
  /** The diagnostic's text (after "error: "). */
  message: string;
  /** The whole output line, trimmed. */
  text: string;
  /** The make target that failed first ("scripts/Makefile.build:303: arch/x86/lib/thunk_64.o"), when make said. */
  target: string | null;
}

const COMPILE = /^(\S+?):(\d+)(?::\d+)?: (?:fatal )?error: (.*)$/;
// "ld: a.o:(.bss+0x0): multiple definition of `x'; b.o:(.bss+0x0): first defined here"
const MULTIPLE = /^(?:\S*ld(?:\.bfd)?: )?(?:(\S+?):(?:\([^)]*\))?:? )?(multiple definition of .*)$/;
const LINK = /^(?:\S*ld(?:\.bfd)?: )(?:(\S+?):(?:\([^)]*\))?:? )?(.*(?:undefined reference to|cannot find|error:).*)$/;
const MAKE_FAIL = /^make(?:\[\d+\])?: \*\*\* \[(.+?)\] Error \d+$/;
const MAKE_NOISE = /^(?:make(?:\[\d+\])?: |\s*$|\s+(?:CC|LD|AR|AS|GEN|HOSTCC|HOSTLD|CHK|UPD|DESCEND|CALL|MKELF|OBJCOPY|BUILD|INSTALL|LINK)\b)/;

function target(lines: readonly string[], from: number): string | null {
  for (let i = from; i < lines.length; i++) {
    const m = MAKE_FAIL.exec(lines[i]?.trim() ?? '');
    if (m?.[1]) return m[1];
  }
  return null;
}

/** The first error of a failed build's output (stderr, or stdout and stderr), or null if it has none. */
export function firstBuildError(output: string): BuildError | null {
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const text = (lines[i] ?? '').trim();
    let m = COMPILE.exec(text);
    if (m?.[1] && m[2] && m[3] !== undefined) return { kind: 'compile', file: m[1], line: Number(m[2]), message: m[3], text, target: target(lines, i + 1) };
    m = MULTIPLE.exec(text);
    if (m?.[2]) return { kind: 'multiple-definition', file: m[1] ?? null, line: null, message: m[2], text, target: target(lines, i + 1) };
    m = LINK.exec(text);
    if (m?.[2]) return { kind: 'link', file: m[1] ?? null, line: null, message: m[2], text, target: target(lines, i + 1) };
  }
  // No compiler or linker diagnostic: a tool failed. Its message is the last line before make's
  // first "*** [...] Error" that is not make's own chatter.
  for (let i = 0; i < lines.length; i++) {
    const m = MAKE_FAIL.exec((lines[i] ?? '').trim());
    if (!m?.[1]) continue;
    for (let j = i - 1; j >= 0; j--) {
      const text = (lines[j] ?? '').trim();
      if (MAKE_NOISE.test(lines[j] ?? '')) continue;
      const file = /^(\S+?\.(?:o|ko|c|S|a)|vmlinux\S*):/.exec(text)?.[1] ?? null;
      const message = file ? text.slice(file.length + 1).trim().replace(/^(?:warning|error): /, '') : text;
      return { kind: 'tool', file, line: null, message, text, target: m[1] };
    }
    return { kind: 'tool', file: null, line: null, message: `make failed at ${m[1]}`, text: (lines[i] ?? '').trim(), target: m[1] };
  }
  return null;
}

/** "arch/x86/boot/compressed/pgtable_64.o: multiple definition of `__force_order'..." in one line. */
export function describeBuildError(e: BuildError): string {
  const where = e.file ? `${e.file}${e.line !== null ? `:${e.line}` : ''}: ` : '';
  const kind = e.kind === 'compile' ? 'error: ' : e.kind === 'tool' ? '' : 'link error: ';
  return `${where}${kind}${e.message}`;
}
