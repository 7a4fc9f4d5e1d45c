// A tiny UDP program that runs inside a namespace, driven over stdin/stdout JSON lines: the self-tests' STUN-like
// reflector, unsolicited prober and LAN client all are this one program. Its source is embedded (written to a
// temp file at first use) so it runs the same from tsx and from the compiled dist/ tree, with plain `node`.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { err, ok, type Result } from '../src/core/index.js';
import type { Topology } from './topology.js';

const AGENT_JS = String.raw`
// argv: ip:port ... ; env PN_REFLECT=1 answers "stun <tag>" with "mapped <ip>:<port> <tag>" and echoes "ping…" as "pong…"
import dgram from 'node:dgram';
import readline from 'node:readline';
const reflect = process.env.PN_REFLECT === '1';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const split = (ep) => { const i = ep.lastIndexOf(':'); return [ep.slice(0, i), Number(ep.slice(i + 1))]; };
const socks = [];
const pings = new Map();
let bound = 0;
process.argv.slice(2).forEach((ep, i) => {
  const [ip, port] = split(ep);
  const s = dgram.createSocket('udp4');
  socks.push(s);
  s.on('error', (e) => out({ ev: 'error', sock: i, message: String(e) }));
  s.on('message', (m, r) => {
    const text = m.toString();
    if (reflect && text.startsWith('stun')) { s.send('mapped ' + r.address + ':' + r.port + text.slice(4), r.port, r.address); return; }
    if (reflect && text.startsWith('ping')) { s.send('pong' + text.slice(4), r.port, r.address); return; }
    if (text.startsWith('pong ')) {
      const [, id, seq, t] = text.split(' ');
      const p = pings.get(id);
      if (p) p.rttsMs.push(Number(process.hrtime.bigint() - BigInt(t)) / 1e6);
      return;
    }
    out({ ev: 'recv', sock: i, from: r.address + ':' + r.port, text, atMs: performance.now() });
  });
  s.bind(port, ip, () => { if (++bound === process.argv.length - 2) out({ ev: 'ready', endpoints: socks.map((x) => x.address().address + ':' + x.address().port) }); });
});
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let c; try { c = JSON.parse(line); } catch { return; }
  if (c.op === 'exit') process.exit(0);
  const s = socks[c.sock ?? 0];
  const [ip, port] = split(c.to ?? '0.0.0.0:0');
  if (c.op === 'send') {
    const count = c.count ?? 1, gap = c.intervalMs ?? 0;
    for (let k = 0; k < count; k++) setTimeout(() => s.send(c.text, port, ip), k * gap);
  } else if (c.op === 'burst') {
    // numbered datagrams "<prefix> <seq> [padding]", paced every intervalMs (0 = as fast as possible in chunks)
    let k = 0;
    const pad = c.padBytes ? ' ' + 'x'.repeat(c.padBytes) : '';
    const tick = () => { const end = Math.min(c.count, k + (c.intervalMs ? 1 : 64)); for (; k < end; k++) s.send(c.prefix + ' ' + k + pad, port, ip); if (k < c.count) setTimeout(tick, c.intervalMs ?? 0); else out({ ev: 'burst-done', id: c.id }); };
    tick();
  } else if (c.op === 'ping') {
    const p = { rttsMs: [] }; pings.set(c.id, p);
    let k = 0;
    const tick = () => { s.send('ping ' + c.id + ' ' + k + ' ' + process.hrtime.bigint(), port, ip); if (++k < c.count) setTimeout(tick, c.intervalMs); else setTimeout(() => out({ ev: 'ping', id: c.id, sent: c.count, rttsMs: p.rttsMs }), c.waitMs ?? 1000); };
    tick();
  }
});
rl.on('close', () => process.exit(0));
`;

let agentPath: string | null = null;

function agentFile(): string {
  if (agentPath && existsSync(agentPath)) return agentPath;
  const hash = createHash('sha256').update(AGENT_JS).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'pn-netsim-bin');
  const file = join(dir, `udp-agent-${hash}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, AGENT_JS);
    renameSync(tmp, file);
  }
  return (agentPath = file);
}

export interface RecvEvent {
  ev: 'recv';
  sock: number;
  /** ip:port the datagram came from, as this host sees it */
  from: string;
  text: string;
  atMs: number;
}

export interface PingStats {
  sent: number;
  rttsMs: number[];
}

/** Handle on a running udp-agent. All methods are cheap; waits resolve null on timeout. */
export class UdpAgent {
  readonly received: RecvEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly events: Record<string, unknown>[] = [];
  private nextId = 0;
  private isExited = false;

  private constructor(
    readonly host: string,
    readonly endpoints: string[],
    private readonly child: ChildProcess,
  ) {}

  /** Start the agent in `host`'s namespace bound to `binds` (ip:port each; socket index = position). */
  static async start(topo: Topology, host: string, binds: string[], opts: { reflect?: boolean } = {}): Promise<Result<UdpAgent>> {
    const child = topo.spawn(host, [process.execPath, agentFile(), ...binds], {
      env: { ...process.env, PN_REFLECT: opts.reflect ? '1' : '0' },
    });
    const agent = new UdpAgent(host, binds, child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => agent.handleLine(l));
    child.on('exit', () => {
      agent.isExited = true;
      agent.wake();
    });
    const ready = await agent.waitEvent((e) => e.ev === 'ready' || e.ev === 'error', 10_000);
    if (!ready || ready.ev !== 'ready') {
      agent.stop();
      return err('internal', `udp-agent on ${host} did not start: ${String(ready?.message ?? '')} ${stderr.trim()}`);
    }
    return ok(agent);
  }

  private handleLine(line: string): void {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (e.ev === 'recv') this.received.push(e as unknown as RecvEvent);
    else this.events.push(e);
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private command(c: Record<string, unknown>): void {
    if (!this.isExited) this.child.stdin!.write(JSON.stringify(c) + '\n');
  }

  /** Send `text` from socket `sock` to `to` (ip:port), `count` times every `intervalMs`. */
  send(sock: number, to: string, text: string, count = 1, intervalMs = 0): void {
    this.command({ op: 'send', sock, to, text, count, intervalMs });
  }

  /**
   * Send `count` datagrams "<prefix> <seq>" (plus a space and padBytes 'x'), one every intervalMs (0 = back to
   * back). Resolves when all are sent.
   */
  async burst(sock: number, to: string, prefix: string, count: number, intervalMs = 0, padBytes = 0): Promise<void> {
    const id = `b${this.nextId++}`;
    this.command({ op: 'burst', sock, to, prefix, count, intervalMs, id, padBytes });
    await this.waitEvent((e) => e.ev === 'burst-done' && e.id === id, 60_000);
  }

  /** UDP ping against a reflector: `count` pings every intervalMs; RTTs of the pongs back within waitMs. */
  async ping(sock: number, to: string, count: number, intervalMs: number, waitMs = 1000): Promise<PingStats> {
    const id = `p${this.nextId++}`;
    this.command({ op: 'ping', id, sock, to, count, intervalMs, waitMs });
    const e = await this.waitEvent((x) => x.ev === 'ping' && x.id === id, count * intervalMs + waitMs + 10_000);
    return e ? { sent: Number(e.sent), rttsMs: e.rttsMs as number[] } : { sent: count, rttsMs: [] };
  }

  /** First received datagram (already received or arriving within timeoutMs) matching pred, else null. */
  waitFor(pred: (m: RecvEvent) => boolean, timeoutMs: number): Promise<RecvEvent | null> {
    return this.waitUntil(() => this.received.find(pred) ?? null, timeoutMs);
  }

  /**
   * STUN-like query: send "stun <tag>" to a reflector endpoint (retrying every 100 ms) and return the mapped
   * endpoint ip:port it reports, or null.
   */
  async mappedVia(sock: number, reflector: string, tag: string, timeoutMs = 2000): Promise<string | null> {
    const deadline = performance.now() + timeoutMs;
    const isAnswer = (r: RecvEvent) => r.from === reflector && r.text.startsWith('mapped ') && r.text.endsWith(` ${tag}`);
    // stop sending once answered: stray late requests would keep refreshing the mapping
    while (performance.now() < deadline) {
      this.send(sock, reflector, `stun ${tag}`);
      const m = await this.waitFor(isAnswer, Math.min(100, Math.max(1, deadline - performance.now())));
      if (m) return m.text.split(' ')[1]!;
    }
    return null;
  }

  private waitEvent(pred: (e: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown> | null> {
    return this.waitUntil(() => this.events.find(pred) ?? null, timeoutMs);
  }

  private waitUntil<T>(probe: () => T | null, timeoutMs: number): Promise<T | null> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const v = probe();
        if (v !== null || this.isExited) {
          done(v);
          return true;
        }
        return false;
      };
      const done = (v: T | null) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(v);
      };
      const waiter = () => void check();
      const timer = setTimeout(() => done(null), timeoutMs);
      this.waiters.add(waiter);
      check();
    });
  }

  stop(): void {
    this.command({ op: 'exit' });
    this.child.stdin?.end();
    setTimeout(() => {
      if (!this.isExited) this.child.kill('SIGKILL');
    }, 500).unref();
  }
}
