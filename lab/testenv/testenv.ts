/**
 * The xdp-tutorial-style test environment: a veth pair between two network namespaces, IPv6
 * fc00:dead:cafe:1::1/64 (sender side "a") and ::2/64 (receiver side "b", where the approach under
 * test attaches), nodad, plus IPv4 10.11.1.1/24 and .2/24. Built through a Target, so it is the
 * same on the host and in a guest. Disposal (`await using`) detaches XDP from both ends, stops the
 * iperf3 servers it started and deletes the namespaces, on every path.
 *
 * If XDP_TUTORIAL_DIR points to an xdp-tutorial checkout, its testenv/testenv.sh builds the
 * environment instead (its layout: the namespace holds the sender, the veth in the root namespace
 * receives; the root namespace is given a name with `ip netns attach` so that every command still
 * enters it with `nsenter --net=/run/netns/<name>`).
 *
 * Commands run inside a namespace with `nsenter --net=/run/netns/NAME`, never `ip netns exec`,
 * which remounts /sys and hides bpffs pins from libbpf/libxdp. iperf3's report is read by
 * iperf3.ts.
 */
import type { CommandResult, RunOptions, Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError } from '../errors.ts';
import { netDetachXdp } from '../bpftool/index.ts';
import { parseIperf3, type Iperf3Options, type Iperf3Summary } from './iperf3.ts';
import { parsePingReplies, type PingReplies } from './ping.ts';

export interface Endpoint {
  netns: string;
  ifname: string;
  ip6: string;
  ip4?: string;
}

export interface TestEnvOptions {
  /** Base name (≤ 12 characters, [a-z0-9-]); namespaces and veths are `<name>a` / `<name>b`. */
  name: string;
  /** Also configure IPv4 (default true). */
  ipv4?: boolean;
  /** Delete namespaces left with the same names by a crashed run first (default true). */
  replaceStale?: boolean;
  /** Use this xdp-tutorial checkout's testenv.sh (default: env XDP_TUTORIAL_DIR). Set '' to ignore the env. */
  xdpTutorialDir?: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,11}$/;

export function nsenterArgv(netns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=/run/netns/${netns}`, ...argv];
}

export class TestEnv implements AsyncDisposable {
  readonly target: Target;
  readonly name: string;
  /** Sender side (iperf3 client, ping source). */
  readonly a: Endpoint;
  /** Receiver side: the approach under test attaches to b.ifname inside b.netns. */
  readonly b: Endpoint;
  /** The xdp-tutorial testenv.sh that made this environment (and must tear it down), if any. */
  readonly tutorialScript: string | undefined;
  private disposed = false;
  private readonly servers = new Map<string, Promise<CommandResult>>();
  /** What a crashed earlier run had left under these names and was removed first, one line each. */
  staleCleaned: string[] = [];

  constructor(target: Target, name: string, a: Endpoint, b: Endpoint, tutorialScript?: string) {
    this.target = target;
    this.name = name;
    this.a = a;
    this.b = b;
    this.tutorialScript = tutorialScript;
  }

  get viaTutorial(): boolean {
    return this.tutorialScript !== undefined;
  }

  /** Runs argv inside a namespace (nsenter --net=). */
  exec(netns: string, argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    return this.target.run(nsenterArgv(netns, argv), options);
  }

  /** Runs a shell script inside a namespace. */
  sh(netns: string, script: string, options?: RunOptions): Promise<CommandResult> {
    return this.target.run(nsenterArgv(netns, ['bash', '-c', script]), options);
  }

  /** ping6 from a to b; returns packets transmitted/received as ping reports them. */
  async ping6(count: number, opts: { intervalS?: number; size?: number } = {}): Promise<{ transmitted: number; received: number }> {
    const argv = ['ping', '-6', '-n', '-q', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', '2'];
    if (opts.size !== undefined) argv.push('-s', String(opts.size));
    argv.push(this.b.ip6);
    const r = await this.exec(this.a.netns, argv, { allowFailure: true, timeoutMs: 60_000 + count * 3000 });
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
    if (!m) throw new LabError('COMMAND', `${this.target.name}: ping6 ${this.b.ip6} from ${this.a.netns} gave no summary:\n${(r.stderr || r.stdout).trim()}`);
    return { transmitted: Number(m[1]), received: Number(m[2]) };
  }

  /**
   * ping6 from a to b with every reply's round-trip time: the request/response latency through
   * whatever is attached on b. An interval under 0.2 s needs root (the lab runs as root).
   */
  async pingRtts(count: number, opts: { intervalS?: number; size?: number } = {}): Promise<PingReplies> {
    const argv = ['ping', '-6', '-n', '-c', String(count), '-i', String(opts.intervalS ?? 0.01), '-W', '2'];
    if (opts.size !== undefined) argv.push('-s', String(opts.size));
    argv.push(this.b.ip6);
    const r = await this.exec(this.a.netns, argv, { allowFailure: true, timeoutMs: 60_000 + count * 3000 });
    const replies = parsePingReplies(r.stdout);
    if (!replies) throw new LabError('COMMAND', `${this.target.name}: ping6 ${this.b.ip6} from ${this.a.netns} gave no summary:\n${(r.stderr || r.stdout).trim()}`, { remedy: 'Check that iputils-ping is installed and that the veth pair is up (ip -n <ns> link).' });
    return replies;
  }

  /**
   * One iperf3 run: a one-off server in b (taskset to serverCpu), the client in a (clientCpu);
   * returns the client's -J report summarised.
   */
  async iperf3(o: Iperf3Options): Promise<Iperf3Summary> {
    const port = o.port ?? 5201;
    const dst = o.ipv4 ? this.b.ip4 : this.b.ip6;
    if (!dst) throw new LabError('BAD_INPUT', `testenv ${this.name}: no IPv4 address on the receiver (created with ipv4: false)`);
    const pin = (cpu: number | undefined): string[] => (cpu === undefined ? [] : ['taskset', '-c', String(cpu)]);
    // The server's pid is recorded so that only this server is ever stopped (pkill would match
    // iperf3 processes of other namespaces: process names are not per network namespace).
    const pidFile = `/tmp/xcl-iperf3-${this.name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.pid`;
    // pdeathsig: if the lab is killed outright, the kernel stops iperf3 with it.
    const serverArgv = [...ORPHAN_PROOF, ...nsenterArgv(this.b.netns, [...pin(o.serverCpu ?? 1), 'iperf3', '-s', '-1', '-J', '-B', dst, '-p', String(port)])];
    const server = this.target.sh(`echo $$ > ${pidFile}; exec ${serverArgv.map(shellQuote).join(' ')}`, {
      allowFailure: true,
      timeoutMs: (o.seconds + 60) * 1000,
    });
    this.servers.set(pidFile, server);
    try {
      await this.waitListening(port, server);
      const client = await this.target.run(
        [...ORPHAN_PROOF, ...nsenterArgv(this.a.netns, [...pin(o.clientCpu ?? 0), 'iperf3', '-c', dst, '-p', String(port), '-t', String(o.seconds), '-J', ...(o.clientArgs ?? [])])],
        { allowFailure: true, timeoutMs: (o.seconds + 60) * 1000 },
      );
      return parseIperf3(client.stdout, `${this.target.name}: iperf3 client in ${this.a.netns}`);
    } finally {
      await this.stopServer(pidFile);
    }
  }

  /** Stops a server this environment started (a one-off server has usually exited already). */
  private async stopServer(pidFile: string): Promise<void> {
    const server = this.servers.get(pidFile);
    await this.target.sh(`p=$(cat ${pidFile} 2>/dev/null) && kill -INT "$p" 2>/dev/null; rm -f ${pidFile}`, { allowFailure: true });
    await server?.catch(() => undefined);
    this.servers.delete(pidFile);
  }

  private async waitListening(port: number, server: Promise<CommandResult>): Promise<void> {
    const deadline = Date.now() + 10_000;
    let exited: CommandResult | undefined;
    void server.then((r) => (exited = r), () => undefined);
    while (Date.now() < deadline) {
      if (exited) {
        throw new LabError('COMMAND', `${this.target.name}: iperf3 server in ${this.b.netns} exited before listening:\n${(exited.stderr || exited.stdout).trim().slice(0, 500)}`);
      }
      const r = await this.exec(this.b.netns, ['ss', '-Hltn', `sport = :${port}`], { allowFailure: true });
      if (r.stdout.trim() !== '') return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new LabError('COMMAND', `${this.target.name}: iperf3 server in ${this.b.netns} is not listening on port ${port} after 10 s`, {
      remedy: 'Check that iperf3 is installed on the target and the port is free.',
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const errors: string[] = [];
    for (const ep of [this.b, this.a]) {
      try {
        await netDetachXdp(this.target, ep.ifname, { netns: ep.netns });
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    for (const pidFile of [...this.servers.keys()]) await this.stopServer(pidFile);
    if (this.tutorialScript) {
      await this.target.run([this.tutorialScript, 'teardown', `--name=${this.name}`], { allowFailure: true });
      // The root-namespace handle is ours; the sender's namespace is the script's, removed here
      // too in case its teardown did not.
      for (const ns of [this.b.netns, this.a.netns]) await this.target.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    } else {
      for (const ns of [this.a.netns, this.b.netns]) {
        const r = await this.target.run(['ip', 'netns', 'del', ns], { allowFailure: true });
        if (r.exitCode !== 0 && !/No such file/.test(r.stderr)) errors.push(r.stderr.trim());
      }
    }
    if (errors.length) {
      throw new LabError('COMMAND', `testenv ${this.name}: teardown incomplete:\n${errors.join('\n')}`, {
        remedy: `Remove leftovers by hand: ip netns del ${this.a.netns}; ip netns del ${this.b.netns}`,
      });
    }
  }
}

function tutorialDir(explicit: string | undefined): string | undefined {
  const d = explicit ?? process.env.XDP_TUTORIAL_DIR;
  return d ? d : undefined;
}

/** Fails with NOT_ROOT / MISSING_TOOL in plain words before anything is created. */
async function preflight(target: Target): Promise<void> {
  const id = await target.run(['id', '-u']);
  if (id.stdout.trim() !== '0') {
    throw new LabError('NOT_ROOT', `${target.name}: creating network namespaces needs root (running as uid ${id.stdout.trim()})`, {
      remedy: 'Run the lab as root (sudo).',
    });
  }
  for (const tool of ['ip', 'nsenter']) {
    const r = await target.sh(`command -v ${tool}`, { allowFailure: true });
    if (r.exitCode !== 0) throw new LabError('MISSING_TOOL', `${target.name}: ${tool} is not installed`, { remedy: 'Install iproute2 and util-linux (npm run setup).' });
  }
}

/** Creates the environment; use with `await using env = await createTestEnv(target, {name})`. */
export async function createTestEnv(target: Target, opts: TestEnvOptions): Promise<TestEnv> {
  if (!NAME_RE.test(opts.name)) {
    throw new LabError('BAD_INPUT', `testenv name "${opts.name}" must be 1-12 characters of [a-z0-9-] (interface names are limited to 15)`);
  }
  await preflight(target);
  const dir = opts.xdpTutorialDir === '' ? undefined : tutorialDir(opts.xdpTutorialDir);
  if (dir) return createViaTutorial(target, opts, dir);

  const a: Endpoint = { netns: `${opts.name}a`, ifname: `${opts.name}a`, ip6: 'fc00:dead:cafe:1::1', ip4: '10.11.1.1' };
  const b: Endpoint = { netns: `${opts.name}b`, ifname: `${opts.name}b`, ip6: 'fc00:dead:cafe:1::2', ip4: '10.11.1.2' };
  if (opts.ipv4 === false) {
    delete a.ip4;
    delete b.ip4;
  }
  const env = new TestEnv(target, opts.name, a, b);
  if (opts.replaceStale ?? true) {
    for (const ns of [a.netns, b.netns]) env.staleCleaned.push(...(await removeStaleNamespace(target, ns)));
  }
  try {
    const q = shellQuote;
    const lines = [
      'set -e',
      `ip netns add ${q(a.netns)}`,
      `ip netns add ${q(b.netns)}`,
      `ip link add ${q(a.ifname)} netns ${q(a.netns)} type veth peer name ${q(b.ifname)} netns ${q(b.netns)}`,
    ];
    for (const ep of [a, b]) {
      const ns = `nsenter --net=/run/netns/${q(ep.netns)}`;
      lines.push(`${ns} ip link set lo up`);
      lines.push(`${ns} ip addr add ${ep.ip6}/64 dev ${q(ep.ifname)} nodad`);
      if (ep.ip4) lines.push(`${ns} ip addr add ${ep.ip4}/24 dev ${q(ep.ifname)}`);
      lines.push(`${ns} ip link set ${q(ep.ifname)} up`);
    }
    const r = await target.sh(lines.join('\n'), { allowFailure: true });
    if (r.exitCode !== 0) {
      throw new LabError('COMMAND', `${target.name}: creating testenv ${opts.name} failed:\n${(r.stderr || r.stdout).trim()}`, {
        remedy: 'Check that the kernel has veth and network namespaces (CONFIG_VETH, CONFIG_NET_NS).',
      });
    }
    await waitCarrier(env);
    return env;
  } catch (e) {
    await env[Symbol.asyncDispose]().catch(() => undefined);
    throw e;
  }
}

/** Runs a command so that the kernel kills it when its parent (the lab, or its SSH session) dies. */
const ORPHAN_PROOF = ['setpriv', '--pdeathsig', 'KILL', '--'];

/**
 * Removes a namespace a killed run left behind, and first every process still inside it (an
 * iperf3 server outlives a SIGKILLed lab on a kernel without pdeathsig support in its tools).
 * Returns what it removed, for the caller to say.
 */
export async function removeStaleNamespace(target: Target, netns: string): Promise<string[]> {
  const exists = await target.run(['test', '-e', `/run/netns/${netns}`], { allowFailure: true });
  if (exists.exitCode !== 0) return [];
  const cleaned: string[] = [];
  const pids = (await target.run(['ip', 'netns', 'pids', netns], { allowFailure: true })).stdout.split(/\s+/).filter((p) => /^\d+$/.test(p));
  for (const pid of pids) {
    const comm = (await target.run(['cat', `/proc/${pid}/comm`], { allowFailure: true })).stdout.trim() || '?';
    const k = await target.run(['kill', '-KILL', pid], { allowFailure: true });
    if (k.exitCode === 0) cleaned.push(`killed ${comm} (pid ${pid}) left running in namespace ${netns}`);
  }
  const del = await target.run(['ip', 'netns', 'del', netns], { allowFailure: true });
  if (del.exitCode === 0) cleaned.push(`deleted namespace ${netns} left by an earlier run`);
  return cleaned;
}

/**
 * Deletes a namespace, asking again when `ip` refuses (a refusal with nothing said has left a
 * namespace behind); null once it is gone, else what `ip netns del` said the last time.
 */
export async function deleteNamespace(target: Target, netns: string): Promise<string | null> {
  let said = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    if (attempt > 1) await new Promise((res) => setTimeout(res, 200 * (attempt - 1)));
    const r = await target.run(['ip', 'netns', 'del', netns], { allowFailure: true });
    if (r.exitCode === 0) return null;
    const still = await target.run(['test', '-e', `/run/netns/${netns}`], { allowFailure: true });
    if (still.exitCode !== 0) return null;
    said = (r.stderr || r.stdout).trim() || `exit status ${r.exitCode}, /run/netns/${netns} still there`;
  }
  return said;
}

/** Both ends up with carrier: only then does the first ping get through. */
async function waitCarrier(env: TestEnv): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const ep of [env.a, env.b]) {
    for (;;) {
      // Not /sys/class/net: nsenter --net keeps the root namespace's sysfs mount.
      const r = await env.exec(ep.netns, ['ip', '-j', 'link', 'show', 'dev', ep.ifname], { allowFailure: true });
      let state = 'unknown';
      try {
        state = (JSON.parse(r.stdout) as { operstate?: string }[])[0]?.operstate ?? 'unknown';
      } catch {
        /* not created yet */
      }
      if (state === 'UP') break;
      if (Date.now() > deadline) throw new LabError('COMMAND', `${env.target.name}: ${ep.ifname} in ${ep.netns} did not come up (operstate ${state})`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

async function createViaTutorial(target: Target, opts: TestEnvOptions, dir: string): Promise<TestEnv> {
  const script = `${dir}/testenv/testenv.sh`;
  const has = await target.run(['test', '-x', script], { allowFailure: true });
  if (has.exitCode !== 0) {
    throw new LabError('MISSING_FILE', `XDP_TUTORIAL_DIR=${dir}: ${script} not found or not executable`, {
      remedy: 'Point XDP_TUTORIAL_DIR at an xdp-tutorial checkout, or unset it to use the lab\'s own testenv.',
    });
  }
  const rootName = `${opts.name}root`;
  const args = [script, 'setup', `--name=${opts.name}`, ...(opts.ipv4 === false ? [] : ['--legacy-ip'])];
  const r = await target.run(args, { allowFailure: true });
  if (r.exitCode !== 0) {
    await target.run([script, 'teardown', `--name=${opts.name}`], { allowFailure: true });
    throw new LabError('COMMAND', `${target.name}: ${script} setup failed:\n${(r.stderr || r.stdout).trim()}`);
  }
  await target.run(['ip', 'netns', 'del', rootName], { allowFailure: true });
  try {
    // A named handle on the root namespace: the shell's own (it runs there). Not PID 1, whose
    // namespace link a container may not let us bind.
    await target.sh(`ip netns attach ${shellQuote(rootName)} $$`);
    return await tutorialEnv(target, opts, rootName, script);
  } catch (e) {
    await target.run(['ip', 'netns', 'del', rootName], { allowFailure: true });
    await target.run([script, 'teardown', `--name=${opts.name}`], { allowFailure: true });
    throw e;
  }
}

async function tutorialEnv(target: Target, opts: TestEnvOptions, rootName: string, script: string): Promise<TestEnv> {
  const addrs = async (netns: string, ifname: string): Promise<{ ip6: string; ip4?: string }> => {
    const out = await target.run(nsenterArgv(netns, ['ip', '-j', 'addr', 'show', 'dev', ifname]));
    const j = JSON.parse(out.stdout) as { addr_info?: { family: string; local: string; scope: string }[] }[];
    const info = j[0]?.addr_info ?? [];
    const ip6 = info.find((x) => x.family === 'inet6' && x.scope === 'global')?.local;
    const ip4 = info.find((x) => x.family === 'inet')?.local;
    if (!ip6) throw new LabError('COMMAND', `testenv.sh gave ${ifname} no global IPv6 address`);
    return ip4 ? { ip6, ip4 } : { ip6 };
  };
  // testenv.sh: the namespace <name> holds veth0 (sender); <name> in the root namespace receives.
  const env = new TestEnv(
    target,
    opts.name,
    { netns: opts.name, ifname: 'veth0', ...(await addrs(opts.name, 'veth0')) },
    { netns: rootName, ifname: opts.name, ...(await addrs(rootName, opts.name)) },
    script,
  );
  return env;
}
