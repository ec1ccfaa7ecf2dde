/**
 * Builds the native trio (programs/native/xcl_trio.c) for one kernel release with kbuild on the
 * machine running the lab: `make -C <headers> M=<build dir> modules`, the module compiled from the
 * job headers in programs/ themselves. The result is build/native/<release>/xcl_trio.ko.
 */
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';
import { exists, onPath, tool } from '../kernels/exec.ts';
import type { ModuleHeaders } from './headers.ts';

export const NATIVE_SOURCE_DIR = join(REPO_ROOT, 'programs', 'native');
export const NATIVE_BUILD_DIR = join(REPO_ROOT, 'build', 'native');
export const MODULE_NAME = 'xcl_trio';

/** kbuild's command line for these headers (pure: tested alone). */
export function kbuildArgv(headers: ModuleHeaders, buildDir: string): string[] {
  return ['make', '-C', headers.dir, `M=${buildDir}`, `XCL_PROGRAMS=${join(REPO_ROOT, 'programs')}`, ...headers.makeVars, 'modules'];
}

/** Debian's headers name their compiler in .kernelvariables (CC = ... gcc-12). */
async function compilerOf(headers: ModuleHeaders): Promise<string | null> {
  const cc = headers.makeVars.find((v) => v.startsWith('CC='));
  if (cc) return cc.slice(3).split(/\s+/)[0] ?? null;
  const vars = await readFile(join(headers.dir, '.kernelvariables'), 'utf8').catch(() => '');
  return /(gcc-\d+)\s*$/m.exec(vars)?.[1] ?? null;
}

/** Whether apt could install `pkg` from this machine's sources (apt-cache policy names a candidate). */
async function aptCandidate(pkg: string): Promise<boolean> {
  const r = await execa('apt-cache', ['policy', pkg], { reject: false });
  const m = /Candidate:\s*(\S+)/.exec(String(r.stdout));
  return m !== null && m[1] !== '(none)';
}

export async function buildNativeModule(headers: ModuleHeaders): Promise<string> {
  const cc = await compilerOf(headers);
  if (cc && !(await onPath(cc))) {
    const candidate = await aptCandidate(cc);
    const remedy = cc === 'gcc-10'
      ? `bash lab/setup.sh (it adds bullseye, pinned below bookworm, and installs its gcc-10), or apt-get install ${candidate ? '' : '-t bullseye '}gcc-10 yourself. A module must be built with the kernel's compiler.`
      : candidate
      ? `apt-get install ${cc} (a module must be built with the kernel's compiler).`
      : `This machine's apt sources have no ${cc} (Debian 12 has gcc-11 and gcc-12; older ones are in older releases, gcc-10 in Debian 11 bullseye): add a release that has it to the apt sources (e.g. "deb http://deb.debian.org/debian bullseye main" in /etc/apt/sources.list.d/bullseye.list), then apt-get update and apt-get install ${cc}. A module must be built with the kernel's compiler.`;
    throw new LabError('MISSING_TOOL', `kernel ${headers.release}'s modules are built with ${cc}, which is not installed${candidate ? '' : ' and has no installation candidate here'}`, { remedy });
  }
  const dir = join(NATIVE_BUILD_DIR, headers.release);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const f of [`${MODULE_NAME}.c`, 'Kbuild']) await copyFile(join(NATIVE_SOURCE_DIR, f), join(dir, f));
  await tool(kbuildArgv(headers, dir), {
    what: `kbuild of ${MODULE_NAME}.ko for ${headers.release}`,
    code: 'COMPILE',
    timeoutMs: 600_000,
    remedy: 'Read the compiler output above; the job headers (programs/*.h) must stay valid kernel C behind programs/native/shim.',
  });
  const ko = join(dir, `${MODULE_NAME}.ko`);
  if (!(await exists(ko))) throw new LabError('COMPILE', `kbuild for ${headers.release} finished without ${ko}`);
  return ko;
}
