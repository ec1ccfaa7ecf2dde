/**
 * Real boots under TCG (this machine has QEMU; its nested KVM does not run guests): Debian 6.1 and
 * 5.10 reach SSH, run commands, see isolcpus; a kernel that cannot mount root is a VM_PANIC with
 * the console tail; no QEMU survives a test, a Ctrl-C or a killed lab. Images come from the cache
 * (vm-images/cache); the first run on a machine builds them (~1-2 min).
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LabError } from '../../lab/errors.ts';
import type { KernelImage } from '../../lab/kernels/types.ts';
import { buildVmImage } from '../../lab/vm/image.ts';
import type { VmImage } from '../../lab/vm/image-cache.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { probeKvm } from '../../lab/vm/accel.ts';
import { bootVm } from '../../lab/vm/boot.ts';
import type { VmTarget } from '../../lab/vm/target.ts';
import { agree, requirements } from '../support/requirements.ts';
import { testKernel } from './kernels.ts';

const need = requirements('root', 'qemu', 'debootstrap');
const MARK = `xcl-test-${process.pid}`;
let seq = 0;
const vmName = (): string => `${MARK}-${++seq}`;

/** QEMU processes whose command line carries `marker` (pgrep -f). */
function qemuWith(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', `qemu-system.*-name ${marker}`]).toString().trim().split('\n').filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

async function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return pred();
}

async function expectLabError(p: Promise<unknown>): Promise<LabError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(LabError);
    return e as LabError;
  }
  throw new Error('expected a LabError, got success');
}

describe.skipIf(need.skip)('QEMU runner (TCG)', () => {
  let k61: KernelImage;
  let k510: KernelImage;
  let img61: VmImage;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), `${MARK}-`));
    k61 = await testKernel('6.1');
    k510 = await testKernel('5.10');
    img61 = await buildVmImage(k61);
  });

  afterEach(() => {
    // Every test must leave no QEMU of ours behind, whatever it did.
    expect(qemuWith(MARK)).toEqual([]);
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
    expect(qemuWith(MARK)).toEqual([]);
  });

  it('serves the image from the cache the second time, and the image is a sound ext4 with the modules', async () => {
    const before = await stat(img61.rootImage);
    const again = await buildVmImage(k61);
    expect(again.built).toBe(false);
    expect(again.rootImage).toBe(img61.rootImage);
    expect((await stat(again.rootImage)).mtimeMs).toBe(before.mtimeMs);
    // e2fsck -n exits 0 only for a clean filesystem.
    execFileSync('e2fsck', ['-fn', again.rootImage], { stdio: 'pipe' });
    const depStat = execFileSync('debugfs', ['-R', `stat /usr/lib/modules/${k61.release}/modules.dep`, again.rootImage], { stdio: 'pipe' }).toString();
    expect(depStat).toMatch(/Type: regular/);
    const listing = execFileSync('cpio', ['-it', '--quiet'], { input: await readFile(again.initrd) }).toString().split('\n');
    expect(listing).toContain('init');
    expect(listing).toContain('bin/busybox');
    for (const m of again.initrdModules) expect(listing).toContain(`modules/${m}.ko`);
    expect(again.initrdModules).toContain('virtio_blk');
    expect(again.initrdModules.indexOf('virtio_pci')).toBeGreaterThan(again.initrdModules.indexOf('virtio'));
  }, 600_000);

  it('boots Debian 6.1, runs commands over SSH with exact quoting, sees isolcpus, copies files', async () => {
    const consoleLog = join(work, 'c61.log');
    let vm: VmTarget | null = null;
    try {
      vm = await bootVm({ kernel: k61, image: img61, accel: 'tcg', cpus: 3, isolcpus: '1,2', name: vmName(), consoleLog });
      expect(vm.accelerator).toBe('tcg');
      expect(vm.kernelRelease).toBe(k61.release);
      expect(qemuWith(vm.qemuName)).toHaveLength(1);
      // SSH is forwarded on loopback only: a listening socket on 127.0.0.1:<port>, none on 0.0.0.0.
      const port = vm.sshPort.toString(16).toUpperCase().padStart(4, '0');
      const listening = (await readFile('/proc/net/tcp', 'utf8')).split('\n').filter((l) => / 0A /.test(l)).map((l) => l.trim().split(/\s+/)[1]);
      expect(listening).toContain(`0100007F:${port}`);
      expect(listening).not.toContain(`00000000:${port}`);
      expect((await vm.run(['uname', '-r'])).stdout.trim()).toBe(k61.release);

      const tricky = ["it's", 'a b', '$HOME', '"q"', '*', ''];
      const r = await vm.run(['printf', '[%s]\\n', ...tricky]);
      expect(r.stdout).toBe(tricky.map((t) => `[${t}]\n`).join(''));
      expect((await vm.run(['cat'], { input: 'from stdin\n' })).stdout).toBe('from stdin\n');

      const fail = await vm.sh('echo out; echo err >&2; exit 7', { allowFailure: true });
      expect(fail).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 7 });
      const e = await expectLabError(vm.run(['false']));
      expect(e.code).toBe('COMMAND');
      const slow = await vm.run(['sleep', '30'], { timeoutMs: 1000, allowFailure: true });
      expect(slow.exitCode).toBe(-1);

      expect((await vm.run(['cat', '/sys/devices/system/cpu/isolated'])).stdout.trim()).toBe('1-2');
      expect(vm.tuning.guestIsolated).toBe('1-2');
      expect((await vm.run(['nproc', '--all'])).stdout.trim()).toBe('3');
      // The lab's guest-side needs: bpffs mounted, tools present.
      expect((await vm.sh('stat -f -c %T /sys/fs/bpf')).stdout.trim()).toBe('bpf_fs');
      await vm.run(['bpftool', 'version']);
      await vm.run(['xdp-loader', 'help'], { allowFailure: true }).then((x) => expect(x.stdout + x.stderr).toMatch(/load|Usage/i));

      const local = join(work, 'payload.sh');
      await writeFile(local, '#!/bin/sh\necho payload-ran\n', { mode: 0o755 });
      await vm.putFile(local, `${vm.workDir}/sub dir/payload.sh`);
      expect((await vm.run([`${vm.workDir}/sub dir/payload.sh`])).stdout).toBe('payload-ran\n');

      expect(vm.consoleProblems()).toEqual([]);
      expect(await readFile(consoleLog, 'utf8')).toContain('xcl-guest: sshd started');
      expect(vm.bootTimes.sshReadyMs).toBeGreaterThan(0);
    } finally {
      await vm?.[Symbol.asyncDispose]();
    }
    expect(vm.qemuPid).toBeNull();
    await expectLabError(vm.run(['true']));
  }, 600_000);

  it('boots Debian 5.10, runs a command, and pins its vCPU thread where the host has a CPU to spare', async () => {
    await using vm = await bootVm({ kernel: k510, accel: 'tcg', cpus: 1, name: vmName(), consoleLog: join(work, 'c510.log') });
    expect(vm.accelerator).toBe('tcg');
    expect((await vm.run(['uname', '-r'])).stdout.trim()).toBe(k510.release);
    expect(k510.release).toMatch(/^5\.10\./);
    expect((await vm.run(['cat', '/sys/devices/system/cpu/isolated'])).stdout.trim()).toBe('');
    const hostCpus = availableParallelism();
    if (hostCpus >= 2) {
      expect(vm.tuning.pinning.applied).toBe(true);
      const [pin] = vm.tuning.pinning.map;
      expect(pin?.hostCpu).toBe(hostCpus - 1);
      const status = await readFile(`/proc/${vm.qemuPid}/task/${pin?.threadId}/status`, 'utf8');
      expect(/Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1]).toBe(String(hostCpus - 1));
    } else {
      expect(vm.tuning.pinning.reason).toMatch(/host has 1 CPUs/);
    }
    // Before 5.11 BPF maps are charged to RLIMIT_MEMLOCK: the guest init lifts it.
    expect((await vm.sh('ulimit -l')).stdout.trim()).toBe('unlimited');
  }, 600_000);

  it('reports a kernel booted without its initramfs as VM_PANIC, with the console tail, within the timeout', async () => {
    const started = Date.now();
    const timeoutMs = 240_000;
    const e = await expectLabError(
      bootVm({ kernel: k61, image: img61, accel: 'tcg', cpus: 1, name: vmName(), initramfs: false, timeoutMs, consoleLog: join(work, 'panic1.log') }),
    );
    expect(e.code).toBe('VM_PANIC');
    expect(Date.now() - started).toBeLessThan(timeoutMs);
    expect(e.message).toMatch(/VFS: Unable to mount root/);
    expect(String(e.details.consoleTail)).toMatch(/Kernel panic/);
    expect(e.remedy).toMatch(/root filesystem/);
  }, 600_000);

  it('reports a bogus root= as VM_PANIC naming the initramfs step that failed', async () => {
    const e = await expectLabError(
      bootVm({ kernel: k61, image: img61, accel: 'tcg', cpus: 1, name: vmName(), extraCmdline: ['root=/dev/vdz'], timeoutMs: 240_000 }),
    );
    expect(e.code).toBe('VM_PANIC');
    expect(String(e.details.consoleTail)).toMatch(/xcl-initramfs: root device \/dev\/vdz did not appear/);
    expect(e.message).toMatch(/Kernel panic/);
    // The default console log lives in a runtime dir that is kept for the failure; clean it.
    const log = e.details.consoleLog;
    expect(typeof log).toBe('string');
    expect(await readFile(String(log), 'utf8')).toMatch(/Attempted to kill init/);
    await rm(join(String(log), '..'), { recursive: true, force: true });
  }, 600_000);

  it('with accel "kvm" either boots under KVM or fails with a clear VM_BOOT (never silently emulates)', async () => {
    const verdict = await probeKvm(k61);
    if (agree('kvm', verdict.ok, verdict.ok ? 'the probe booted a guest under KVM' : verdict.reason)) {
      await using vm = await bootVm({ kernel: k61, image: img61, accel: 'kvm', name: vmName() });
      expect(vm.accelerator).toBe('kvm');
    } else {
      const e = await expectLabError(bootVm({ kernel: k61, image: img61, accel: 'kvm', name: vmName() }));
      expect(e.code).toBe('VM_BOOT');
      expect(e.message).toMatch(/KVM/);
      expect(e.remedy).toMatch(/tcg/);
    }
  }, 600_000);

  it('rejects bad options before starting anything', async () => {
    for (const bad of [{ cpus: 0 }, { memoryMb: 16 }, { isolcpus: '1;reboot' }, { name: 'x y' }]) {
      const e = await expectLabError(bootVm({ kernel: k61, image: img61, accel: 'tcg', ...bad }));
      expect(e.code).toBe('BAD_INPUT');
    }
    const e = await expectLabError(bootVm({ kernel: { ...k61, vmlinuz: '/nonexistent/vmlinuz' }, accel: 'tcg' }));
    expect(e.code).toBe('MISSING_FILE');
  });

  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    it(`leaves no QEMU behind when the lab gets ${signal} mid-boot`, async () => {
      const name = vmName();
      const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/vm/fixtures/boot-child.ts'), name], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((r) => child.once('exit', (code, sig) => r(sig ?? code)));
      try {
        const appeared = await waitFor(() => qemuWith(name).length === 1, 120_000);
        expect(appeared, `QEMU never started: ${stderr}`).toBe(true);
        child.kill(signal);
        expect(await exited).toBe(signal);
        expect(await waitFor(() => qemuWith(name).length === 0, 10_000)).toBe(true);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        for (const line of qemuWith(name)) {
          // Only our own marked QEMU, by pid: a failed assertion above must not leak it.
          const pid = Number(line.split(' ')[0]);
          if (pid > 0) process.kill(pid, 'SIGKILL');
        }
        // A SIGKILLed lab cannot clean its runtime directory (QMP socket); SIGINT must have.
        const left = (await readdir(tmpdir())).filter((d) => d.startsWith(`${name}-`));
        for (const d of left) await rm(join(tmpdir(), d), { recursive: true, force: true });
        if (signal === 'SIGINT') expect(left).toEqual([]);
      }
    }, 300_000);
  }
});
