// Real etcd members for tests and the registry bench: Debian's /usr/bin/etcd (3.4) on 127.0.0.1, ports from the
// OS, data in a temp dir, every process killed by its PID (also when the test process exits on a failure).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BIN = process.env.PILOT_ETCD_BIN ?? '/usr/bin/etcd';
export const hasEtcd = existsSync(ETCD_BIN);

const livePids = new Set<number>();
const liveDirs = new Set<string>();
let isExitHookSet = false;
function track(pid: number): void {
  livePids.add(pid);
  if (isExitHookSet) return;
  isExitHookSet = true;
  process.on('exit', () => {
    for (const p of livePids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** A free TCP port on 127.0.0.1, from the OS (closed again before etcd binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  child: ChildProcess | null;
  /** `127.0.0.1:PORT` of its client URL. */
  endpoint: string;
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
  ) {}

  /** Start `size` members and wait until every one answers /health. */
  static async start(size: number, opts: { timeoutMs?: number } = {}): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-etcd-'));
    const members: EtcdMember[] = [];
    for (let i = 0; i < size; i++) {
      const clientPort = await freePort();
      const peerPort = await freePort();
      members.push({ name: `m${i}`, clientPort, peerPort, child: null, endpoint: `127.0.0.1:${clientPort}` });
    }
    const c = new EtcdCluster(dir, members);
    liveDirs.add(dir);
    try {
      for (const m of members) c.spawnMember(m);
      await Promise.all(members.map((m) => c.waitHealthy(m, opts.timeoutMs ?? 30_000)));
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** `etcd://a,b,c` for --store, with an optional key prefix. */
  storeUrl(prefix = ''): string {
    return `etcd://${this.members.map((m) => m.endpoint).join(',')}${prefix}`;
  }

  get endpoints(): string[] {
    return this.members.map((m) => `http://${m.endpoint}`);
  }

  private spawnMember(m: EtcdMember): void {
    const initial = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', join(this.dir, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initial,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `pilot-test-${process.pid}`,
      '--logger', 'zap',
      '--log-level', 'error',
    ];
    const child = spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let errText = '';
    child.stderr!.on('data', (d: Buffer) => (errText = (errText + d.toString()).slice(-4000)));
    (child as ChildProcess & { errText?: () => string }).errText = () => errText;
    if (child.pid !== undefined) track(child.pid);
    child.once('exit', () => {
      if (child.pid !== undefined) livePids.delete(child.pid);
    });
    m.child = child;
  }

  private async waitHealthy(m: EtcdMember, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (m.child?.exitCode !== null) {
        const text = (m.child as ChildProcess & { errText?: () => string } | null)?.errText?.() ?? '';
        throw new Error(`etcd member ${m.name} exited: ${text}`);
      }
      try {
        const r = await fetch(`http://${m.endpoint}/health`, { signal: AbortSignal.timeout(2_000) });
        const body = (await r.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms`);
  }

  /** SIGKILL one member (by PID) and wait for it to be gone. */
  async kill(i: number): Promise<void> {
    const m = this.members[i]!;
    const child = m.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await gone;
    m.child = null;
  }

  /** Kill every member and remove the data dir. */
  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    rmSync(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
  }
}
