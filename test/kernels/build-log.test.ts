/**
 * Reading failed builds: the first error is found among make -j's interleaved warnings and
 * cascade, for the ways old trees fail under today's toolchain; the fallback each error calls
 * for; which fix-ups apply to which tree and toolchain.
 */
import { describe, expect, it } from 'vitest';
import { describeBuildError, firstBuildError } from '../../lab/kernels/build-log.ts';
import { loadPatches, selectPatches } from '../../lab/kernels/patches.ts';
import { fallbackToolchain, initialToolchain, loadToolchainRules, makeVars, type ResolvedToolchain, type ToolchainRules } from '../../lab/kernels/toolchain.ts';

const GCC12_SUBCMD = [
  '  DESCEND  objtool',
  '  CC       /work/build/tools/objtool/exec-cmd.o',
  'In file included from help.c:12:',
  "help.c: In function 'exclude_cmds':",
  "help.c:112:25: error: pointer 'cmds' used after 'free' [-Werror=use-after-free]",
  '  112 |                         zfree(&cmds->names[j]);',
  'cc1: all warnings being treated as errors',
  'make[4]: *** [/work/build/tools/build/Makefile.build:97: /work/build/tools/objtool/help.o] Error 1',
  'make[3]: *** [Makefile:43: /work/build/tools/objtool/libsubcmd-in.o] Error 2',
  'make[1]: *** [Makefile:1706: tools/objtool] Error 2',
  "drivers/gpu/drm/i915/intel_lrc.c:1234:5: warning: 'x' may be used uninitialized [-Wmaybe-uninitialized]",
  'make: *** [Makefile:1090: __sub-make] Error 2',
].join('\n');

const FNO_COMMON = [
  '  LD      arch/x86/boot/compressed/vmlinux',
  "ld: arch/x86/boot/compressed/pgtable_64.o:(.bss+0x0): multiple definition of `__force_order'; arch/x86/boot/compressed/kaslr_64.o:(.bss+0x0): first defined here",
  'ld: warning: arch/x86/boot/compressed/efi_thunk_64.o: missing .note.GNU-stack section implies executable stack',
  'make[2]: *** [arch/x86/boot/compressed/Makefile:118: arch/x86/boot/compressed/vmlinux] Error 1',
  'make[1]: *** [arch/x86/boot/Makefile:112: arch/x86/boot/compressed/vmlinux] Error 2',
  'make: *** [arch/x86/Makefile:289: bzImage] Error 2',
].join('\n');

const OBJTOOL = [
  "arch/x86/kernel/head_64.o: warning: objtool: .text+0x5: unreachable instruction",
  '  AS      arch/x86/lib/thunk_64.o',
  'arch/x86/lib/thunk_64.o: warning: objtool: missing symbol table',
  'make[2]: *** [scripts/Makefile.build:403: arch/x86/lib/thunk_64.o] Error 1',
  "make[2]: *** Deleting file 'arch/x86/lib/thunk_64.o'",
  'make[1]: *** [scripts/Makefile.build:544: arch/x86/lib] Error 2',
  "net/core/filter.c:99:1: warning: the frame size of 1040 bytes is larger than 1024 bytes [-Wframe-larger-than=]",
  'make: *** [Makefile:1063: arch/x86] Error 2',
].join('\n');

const UNDEFINED = [
  '  LD      vmlinux.o',
  "ld: kernel/bpf/core.o: in function `bpf_prog_select_runtime':",
  "ld: core.c:(.text+0x1a2b): undefined reference to `bpf_int_jit_compile'",
  'make: *** [Makefile:1155: vmlinux] Error 1',
].join('\n');

describe('firstBuildError', () => {
  it('finds the compiler error among later warnings and the make cascade', () => {
    const e = firstBuildError(GCC12_SUBCMD);
    expect(e).toMatchObject({ kind: 'compile', file: 'help.c', line: 112, message: "pointer 'cmds' used after 'free' [-Werror=use-after-free]" });
    expect(e?.target).toBe('/work/build/tools/build/Makefile.build:97: /work/build/tools/objtool/help.o');
    expect(e && describeBuildError(e)).toBe("help.c:112: error: pointer 'cmds' used after 'free' [-Werror=use-after-free]");
  });

  it('names the object and symbol of a multiple definition', () => {
    const e = firstBuildError(FNO_COMMON);
    expect(e).toMatchObject({ kind: 'multiple-definition', file: 'arch/x86/boot/compressed/pgtable_64.o' });
    expect(e?.message).toMatch(/^multiple definition of `__force_order'/);
  });

  it('takes the tool message that made the recipe fail, not earlier or later warnings', () => {
    const e = firstBuildError(OBJTOOL);
    expect(e).toMatchObject({ kind: 'tool', file: 'arch/x86/lib/thunk_64.o', message: 'objtool: missing symbol table' });
    expect(e?.target).toBe('scripts/Makefile.build:403: arch/x86/lib/thunk_64.o');
  });

  it('reports an undefined reference as a link error', () => {
    expect(firstBuildError(UNDEFINED)).toMatchObject({ kind: 'link', message: "undefined reference to `bpf_int_jit_compile'" });
  });

  it('returns null for output with no failure', () => {
    expect(firstBuildError('  CC      init/main.o\n  LD      vmlinux\n')).toBeNull();
  });
});

const gcc12: ResolvedToolchain = { cc: 'gcc', flags: [], ccVersion: '12.2.0', ccMajor: 12, binutils: '2.40', makeVars: [], why: 'default' };

describe('toolchain choice', () => {
  it('starts 4.19 with the known toolchain and every other series with the default', async () => {
    const rules = await loadToolchainRules();
    expect(initialToolchain(rules, '4.19')).toMatchObject({ cc: 'gcc-11', flags: ['-fcommon'] });
    expect(initialToolchain(rules, '6.6')).toMatchObject({ cc: 'gcc', flags: [] });
    expect(makeVars({ cc: 'gcc', flags: [] })).toEqual([]);
    expect(makeVars({ cc: 'gcc-11', flags: ['-fcommon'] })).toEqual(['CC=gcc-11 -fcommon', 'HOSTCC=gcc-11 -fcommon']);
  });

  it('falls back by the kind of the first error, once each', async () => {
    // A fallback compiler that is not installed is never chosen (source.test.ts covers one that is).
    const rules: ToolchainRules = { default: { cc: 'gcc', flags: [] }, fallbackCompilers: ['xcl-no-such-cc'], series: {} };
    expect(await fallbackToolchain(gcc12, firstBuildError(FNO_COMMON), rules, new Set())).toMatchObject({ cc: 'gcc', flags: ['-fcommon'] });
    expect(await fallbackToolchain(gcc12, firstBuildError(FNO_COMMON), rules, new Set(['gcc -fcommon']))).toBeNull();
    // No older compiler installed: nothing to fall back to.
    expect(await fallbackToolchain(gcc12, firstBuildError(GCC12_SUBCMD), rules, new Set())).toBeNull();
    // A tool failure is not the compiler's: no fallback.
    expect(await fallbackToolchain(gcc12, firstBuildError(OBJTOOL), rules, new Set())).toBeNull();
  });
});

describe('fix-ups', () => {
  it('selects the 4.19 fix-ups by toolchain, and none for other series', async () => {
    const all = await loadPatches();
    const files = (t: { ccVersion: string; binutils: string }, series = '4.19') => selectPatches(all, series, t).map((p) => p.file);
    expect(files({ ccVersion: '11.3.0', binutils: '2.40' })).toEqual(['4.19/objtool-empty-symtab.patch', '4.19/smpboot-no-tail-call.patch']);
    expect(files({ ccVersion: '9.4.0', binutils: '2.35.2' })).toEqual([]);
    expect(files({ ccVersion: '12.2.0', binutils: '2.39' })).toEqual(['4.19/smpboot-no-tail-call.patch']);
    expect(files({ ccVersion: '12.2.0', binutils: '2.40' }, '5.4')).toEqual([]);
  });
});
