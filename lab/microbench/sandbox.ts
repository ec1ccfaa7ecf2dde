/**
 * The bench's disposable resources on a target: a bpffs directory for its pins and, when asked, a
 * network namespace with a veth pair to attach XDP programs to. Everything is named from one prefix
 * so that parallel users of the machine (tests, other benches) never touch each other's resources,
 * and everything is removed by dispose() on every path.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { deleteNamespace } from '../testenv/testenv.ts';

export interface Sandbox extends AsyncDisposable {
  readonly target: Target;
  /** bpffs directory owned by the bench: /sys/fs/bpf/<prefix>-micro-<tag>. */
  readonly pinRoot: string;
  /** Directory on the target for objects and the packet. */
  readonly workDir: string;
  readonly tag: string;
  /** A namespace holding a veth pair with both ends up; created on first use. */
  netns(): Promise<{ netns: string; ifname: string; peer: string }>;
  /** Veth pair number `i` (0..35) in the same namespace, so several approaches can be attached at once. */
  pair(i: number): Promise<{ netns: string; ifname: string; peer: string }>;
  dispose(): Promise<void>;
}

export async function openSandbox(target: Target, prefix: string): Promise<Sandbox> {
  if (!/^[a-z][a-z0-9]{0,5}$/.test(prefix)) {
    throw new LabError('BAD_INPUT', `microbench: resource prefix "${prefix}" must be 1-6 lowercase letters or digits, starting with a letter`, {
      remedy: 'Interface names are limited to 15 characters; use a short prefix such as "xt8".',
    });
  }
  const tag = `${(process.pid % 100000).toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  const pinRoot = `/sys/fs/bpf/${prefix}-micro-${tag}`;
  const workDir = `${target.workDir}/${prefix}-micro-${tag}`;
  await bpftool.ensureBpffs(target);
  await target.run(['mkdir', '-p', pinRoot, workDir]);
  let ns: { netns: string; ifname: string; peer: string } | null = null;
  let disposed = false;

  const sandbox: Sandbox = {
    target,
    pinRoot,
    workDir,
    tag,
    async netns() {
      if (ns) return ns;
      const name = `${prefix}m${tag}`.slice(0, 15);
      const ifname = `${prefix}a${tag}`.slice(0, 15);
      const peer = `${prefix}b${tag}`.slice(0, 15);
      const enter = ['nsenter', `--net=/run/netns/${name}`];
      await target.run(['ip', 'netns', 'add', name]);
      ns = { netns: name, ifname, peer };
      await target.run([...enter, 'ip', 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', peer]);
      await target.run([...enter, 'ip', 'link', 'set', ifname, 'up']);
      await target.run([...enter, 'ip', 'link', 'set', peer, 'up']);
      return ns;
    },
    async pair(i: number) {
      const base = await sandbox.netns();
      if (i === 0) return base;
      // One base-36 character names the pair: up to 36 approaches attached at once.
      if (!Number.isInteger(i) || i < 0 || i > 35) throw new LabError('BAD_INPUT', `microbench: veth pair ${i} is outside 0..35`);
      const ifname = `${base.ifname.slice(0, 14)}${i.toString(36)}`;
      const peer = `${base.peer.slice(0, 14)}${i.toString(36)}`;
      const enter = ['nsenter', `--net=/run/netns/${base.netns}`];
      const exists = await target.run([...enter, 'ip', 'link', 'show', 'dev', ifname], { allowFailure: true });
      if (exists.exitCode !== 0) {
        await target.run([...enter, 'ip', 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', peer]);
        await target.run([...enter, 'ip', 'link', 'set', ifname, 'up']);
        await target.run([...enter, 'ip', 'link', 'set', peer, 'up']);
      }
      return { netns: base.netns, ifname, peer };
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      // Deleting the namespace deletes its veth pair, which detaches whatever XDP program is on it.
      const name = ns?.netns;
      const refused = name ? await deleteNamespace(target, name) : null;
      await bpftool.unpin(target, pinRoot);
      await target.run(['rm', '-rf', '--', workDir], { allowFailure: true });
      if (name && refused) {
        throw new LabError('COMMAND', `${target.name}: microbench namespace ${name} could not be deleted: ${refused}`, {
          remedy: `Delete it by hand: ip netns del ${name}`,
        });
      }
    },
    [Symbol.asyncDispose]() {
      return sandbox.dispose();
    },
  };
  return sandbox;
}
