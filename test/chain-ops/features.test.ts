/**
 * The kernel probe on the host: each answer is checked against independent evidence (files the
 * kernel exposes, the test-support requirement checks, the documented range of the tail-call
 * limit), and the probe must leave no pin or namespace behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { agree, requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import { FEATURE_LABELS, formatFeatures, probeFeatures, type KernelFeatures } from '../../lab/features.ts';
import { RUN_ID, hostTarget } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PREFIX = `xt6f${RUN_ID}`;

describe.skipIf(need.skip)('probeFeatures on the host kernel', () => {
  let target: Target;
  let f: KernelFeatures;

  beforeAll(async () => {
    target = await hostTarget();
    f = await probeFeatures(target, { prefix: PREFIX });
    console.log(`[chain-ops] features:\n${formatFeatures(f)}`);
  }, 120_000);

  it('reports every feature with a detail', () => {
    for (const name of Object.keys(FEATURE_LABELS)) {
      const feat = f.features[name as keyof typeof FEATURE_LABELS];
      expect(feat, name).toBeDefined();
      expect(feat.detail.length, name).toBeGreaterThan(0);
    }
  });

  it('agrees with what the kernel exposes', () => {
    expect(f.features.btf.ok).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(f.features.bpffs.ok).toBe(true);
    // requirements('kprobes') looks at the same sysfs/tracefs files independently.
    expect(f.features.kprobes.ok).toBe(!requirements('kprobes').skip);
    // Only a probe can tell freplace; the machine's declaration checks the probe.
    agree('freplace', f.features.freplace.ok, f.features.freplace.detail);
    expect(f.kernelRelease).toBe(target.kernelRelease);
  });

  it('measures a tail-call limit in the range every kernel since 4.x has (33 or 34 programs)', () => {
    expect(f.features.maxTailCalls.ok).toBe(true);
    expect(f.maxChainPrograms).toBeGreaterThanOrEqual(33);
    expect(f.maxChainPrograms).toBeLessThanOrEqual(34);
  });

  it('chooses the patch mode from the bpf2bpf + tail call probe', () => {
    expect(f.patchMode).toBe(f.features.tailCallsWithBpf2bpf.ok ? 'subprog' : 'inline');
    expect(f.patchModeReason).toMatch(new RegExp(`^${f.patchMode}: `));
  });

  it('leaves nothing behind', async () => {
    const pins = await target.sh(`ls -1 /sys/fs/bpf | grep '^${PREFIX}' ; true`);
    expect(pins.stdout.trim()).toBe('');
    const ns = await target.sh(`ip netns list | grep '^${PREFIX}' ; true`);
    expect(ns.stdout.trim()).toBe('');
  });
});
