/** listKernels (npm run kernels): every catalog version plus host, with provider availability and cache state. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeManifest } from '../../lab/kernels/cache.ts';
import { listKernels } from '../../lab/commands/kernels.ts';
import { kernelOrgProvider } from '../../lab/kernels/providers/kernel-org.ts';
import { localProvider } from '../../lab/kernels/providers/local.ts';
import { ubuntuMainlineProvider } from '../../lab/kernels/providers/ubuntu-mainline.ts';
import { KERNEL_VERSIONS } from '../../lab/kernels/types.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { deadPort, fakeBzImage, sha256, serveDir, type FakeServer } from './support.ts';

let cacheDir = '';
let server: FakeServer;
let port = 0;
let env: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'xcl-list-'));
  server = await serveDir(cacheDir);
  port = await deadPort();
  const img = join(cacheDir, 'bz-5.4');
  await writeFile(img, fakeBzImage('5.4.293'));
  env = {
    PATH: process.env.PATH,
    XCL_UBUNTU_MAINLINE_URL: `${server.url}/mainline`,
    XCL_KERNEL_ORG_URL: `http://127.0.0.1:${port}/pub`,
    XCL_KERNEL_5_4: img,
  };
  // A cached 6.6 image.
  const root = join(cacheDir, '6.6', 'root', 'boot');
  await mkdir(root, { recursive: true });
  await writeFile(join(root, 'vmlinuz-6.6.89'), fakeBzImage('6.6.89'));
  await writeManifest(join(cacheDir, '6.6'), {
    version: '6.6',
    release: '6.6.89',
    vmlinuz: join(root, 'vmlinuz-6.6.89'),
    modulesRoot: null,
    configPath: null,
    sha256: sha256(fakeBzImage('6.6.89')),
    provider: 'kernel.org',
    bootModules: [],
  }, {});
});
afterAll(async () => {
  await server?.close();
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
});

describe('listKernels', () => {
  it('lists the catalog and host with what each provider can do here', async () => {
    const rows = await listKernels({ cacheDir, env, providers: [localProvider, ubuntuMainlineProvider, kernelOrgProvider] });
    expect(rows.map((r) => r.version)).toEqual([...KERNEL_VERSIONS, 'host']);
    const row = (v: string) => rows.find((r) => r.version === v);
    const status = (v: string, p: string) => row(v)?.providers.find((s) => s.name === p);

    expect(status('5.4', 'local')).toEqual({ name: 'local', available: true, reason: `XCL_KERNEL_5_4=${env.XCL_KERNEL_5_4}` });
    expect(status('5.10', 'local')?.available).toBe(false);
    expect(status('5.10', 'local')?.reason).toContain('XCL_KERNEL_5_10');
    expect(status('6.1', 'ubuntu-mainline')?.available).toBe(true);
    expect(status('6.1', 'kernel.org')).toEqual({ name: 'kernel.org', available: false, reason: `cannot reach 127.0.0.1:${port}: ECONNREFUSED` });

    expect(row('6.6')?.cached).toBe(true);
    expect(row('6.6')?.release).toBe('6.6.89');
    expect(row('6.1')?.cached).toBe(false);

    const host = row('host');
    expect(host?.release).toBe(execFileSync('uname', ['-r']).toString().trim());
    expect(host?.providers).toEqual([expect.objectContaining({ name: 'host', available: true })]);
  });
});
