/**
 * The clsact approaches on a kernel built without clsact (CONFIG_NET_SCH_INGRESS unset, as the lab's
 * source-built kernels once were): refused up front with the kernel's words and the option that is
 * missing, once per target, instead of failing every run; on the host, which has clsact, supported.
 */
import { describe, expect, it } from 'vitest';
import { tcFilters, tcFused, tcManual } from '../../lab/approaches/tc-chains.ts';
import { tcNone } from '../../lab/approaches/tc-none.ts';
import { tcPatched } from '../../lab/approaches/tc-patched.ts';
import { tcx } from '../../lab/approaches/tcx.ts';
import { clsactSupport } from '../../lab/tc/clsact.ts';
import { HostTarget, type CommandResult, type Target } from '../../lab/target.ts';
import { requirements } from '../support/requirements.ts';

/** A target whose tc knows no clsact, as `tc` says it on such a kernel. */
function noClsactTarget(): Target & { argvs: string[][] } {
  const argvs: string[][] = [];
  return {
    name: 'fake-no-clsact',
    accelerator: 'tcg',
    kernelRelease: '6.6.87',
    workDir: '/nonexistent',
    argvs,
    async run(argv: readonly string[]): Promise<CommandResult> {
      argvs.push([...argv]);
      if (argv.includes('clsact')) return { stdout: '', stderr: 'Error: Specified qdisc kind is unknown.\n', exitCode: 2 } as CommandResult;
      throw new Error(`unexpected command ${argv.join(' ')}`);
    },
  } as unknown as Target & { argvs: string[][] };
}

describe('TC approaches on a kernel without clsact', () => {
  it('are refused with the kernel\'s message and the missing option, probed once per target', async () => {
    const t = noClsactTarget();
    for (const a of [tcNone, tcFused, tcManual, tcFilters, tcPatched]) {
      const s = await a.supports(t);
      expect(s.supported, a.name).toBe(false);
      expect(s.supported ? '' : s.reason).toMatch(/cannot add a clsact qdisc \(Error: Specified qdisc kind is unknown\.\): it needs CONFIG_NET_SCH_INGRESS/);
    }
    // Tried in a throwaway namespace, never on the testbed, and only once.
    expect(t.argvs).toEqual([['unshare', '--net', 'tc', 'qdisc', 'add', 'dev', 'lo', 'clsact']]);
    // tcx does not go through clsact: its refusal (if any) is its own.
    const x = await tcx.supports(t).catch((e: unknown) => ({ supported: false as const, reason: String(e) }));
    expect(x.supported ? '' : x.reason).not.toMatch(/clsact/);
  });
});

const need = requirements('root', 'veth');
describe.skipIf(need.skip)('clsact on the host kernel', () => {
  it('is supported', async () => {
    expect(await clsactSupport(await HostTarget.create('/tmp/xcl-tc-support'))).toEqual({ ok: true });
  });
});
