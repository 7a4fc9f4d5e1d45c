// A seeded world of whole nodes: the real node core (Daemon: tunnels, trust, connection table, NAT traversal)
// on SimDatapaths of a SimNet, the real registry and beacon as the rendezvous, one virtual clock for all.
// Only the sockets and the clock are simulated (NodeEnv); everything else is the shipped code.
//
// Time: one ManualClock + VirtualTimers. The loop drains `soon` callbacks and lets promise chains settle (a
// few real setImmediate turns: no real I/O is involved, so nothing but promise jobs runs in them), then steps
// to the next virtual deadline, until a condition holds or a simulated time limit passes. The seed is printed
// and PILOT_SEED replays a run.
import { mkdtempSync, rmSync } from 'node:fs';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, type Micros } from '../../../src/core/clock.js';
import { Rng, seedFromEnv } from '../../../src/core/rng.js';
import { err, ok, type Result } from '../../../src/core/result.js';
import { createLogger, silentLogger } from '../../../src/core/logger.js';
import { VirtualTimers } from '../../../src/node/driver.js';
import type { NodeEnv } from '../../../src/node/env.js';
import type { Datapath, OpenDatapathOptions } from '../../../src/datapath/index.js';
import { parseDaemonArgs, type DaemonOptions } from '../../../src/node/daemon-options.js';
import { Daemon } from '../../../src/node/node.js';
import type { PeerEntry } from '../../../src/node/api.js';
import { SimNet, type LinkProfile, type ModelKind, type SimHost, type SimNat } from './net.js';
import { startRendezvous, type Rendezvous } from './rendezvous.js';

export const NODE_PORT = 4000;

export interface SimWorldOptions {
  /** Default: PILOT_SEED or a fresh one (printed). */
  seed?: number;
  link?: Partial<LinkProfile>;
  hairpin?: boolean;
  /** Epoch of the simulated wall clock (ms). Default: the real time when the world is made. */
  wallEpochMs?: number;
  /** Real time one `until` may take before it gives up (a hung simulation, not a slow one). */
  realBudgetMs?: number;
}

export interface NodeSpec {
  /** Behind a new NAT of this kind ('none': a public host). */
  nat?: ModelKind;
  /** Or on the LAN of an existing NAT. */
  behind?: SimNat;
  hostname?: string;
  public?: boolean;
  /** More pilot-daemon flags, e.g. ['--relay-only']. */
  flags?: string[];
  /** Keep the node's log messages (info and up) in SimNode.logs. */
  captureLog?: boolean;
}


export class SimNode {
  constructor(
    readonly world: SimWorld,
    readonly name: string,
    readonly host: SimHost,
    readonly daemon: Daemon,
    readonly env: NodeEnv,
    readonly home: string,
    /** Every socket the node opened (the tunnel socket first, then extra sockets). */
    readonly sockets: Datapath[],
    /** Log records (parsed JSON) when started with captureLog. */
    readonly logs: Array<Record<string, unknown>>,
  ) {}

  get nodeId(): number {
    return this.daemon.nodeId;
  }

  /** This node's entry for `other` in peers(), or undefined. */
  async peer(other: SimNode): Promise<PeerEntry | undefined> {
    const r = await this.daemon.peers();
    if (!r.ok) return undefined;
    return r.value.peers.find((p) => p.node_id === other.nodeId);
  }

  /** The path this node uses to `other` right now ('none' when there is no entry). */
  async pathTo(other: SimNode): Promise<PeerEntry['path']> {
    return (await this.peer(other))?.path ?? 'none';
  }
}

export class SimWorld {
  readonly seed: number;
  readonly rng: Rng;
  readonly clock = new ManualClock(0);
  readonly timers: VirtualTimers;
  readonly net: SimNet;
  readonly nodes: SimNode[] = [];
  rendezvous!: Rendezvous;
  private readonly wallEpochMs: number;
  private readonly realBudgetMs: number;
  private readonly homes: string[] = [];
  private isClosed = false;

  private constructor(opts: SimWorldOptions) {
    this.seed = opts.seed ?? seedFromEnv();
    this.rng = new Rng(this.seed);
    this.timers = new VirtualTimers(this.clock);
    this.wallEpochMs = opts.wallEpochMs ?? Date.now();
    this.realBudgetMs = opts.realBudgetMs ?? 20_000;
    this.net = new SimNet({
      rng: new Rng(this.rng.nextU32()),
      clock: this.clock,
      timers: this.timers,
      ...(opts.link ? { link: opts.link } : {}),
      ...(opts.hairpin !== undefined ? { hairpin: opts.hairpin } : {}),
    });
  }

  static async create(opts: SimWorldOptions = {}): Promise<SimWorld> {
    const w = new SimWorld(opts);
    w.rendezvous = await startRendezvous(w.net, { wallMs: () => w.wallMs() });
    return w;
  }

  /** Simulated wall clock, ms since the epoch. */
  wallMs(): number {
    return this.wallEpochMs + Math.floor(this.clock.nowUs() / 1000);
  }

  get nowMs(): number {
    return this.clock.nowUs() / 1000;
  }

  /** `seed=… t=…ms`: for assertion messages, so a failure can be replayed with PILOT_SEED. */
  tag(): string {
    return `seed=${this.seed} t=${Math.round(this.nowMs)}ms`;
  }

  /** The NodeEnv of a node on `host`: virtual time, seeded randomness, simulated sockets and registry. */
  envFor(host: SimHost, sockets: Datapath[]): NodeEnv {
    const open = async (o: OpenDatapathOptions): Promise<Result<Datapath>> => {
      const ip = o.host === 'localhost' ? '127.0.0.1' : o.host;
      const dp = host.bind(o.port, ip);
      if (dp.ok) sockets.push(dp.value);
      return dp;
    };
    return {
      clock: this.clock,
      wall: { nowMs: () => this.wallMs() },
      timers: this.timers,
      rng: new Rng(this.rng.nextU32()),
      openDatapath: open,
      openExtraSocket: open,
      connectRegistry: (h, p) => this.rendezvous.connect(host, h, p),
    };
  }

  /**
   * Start a node (the real Daemon with this world's env). not_implemented when the Daemon does not take its
   * world from the env yet (it opened no simulated socket).
   */
  async addNode(name: string, spec: NodeSpec = {}): Promise<Result<SimNode>> {
    const host = spec.behind ? this.net.addHostBehind(spec.behind, name) : this.net.addHost(name, spec.nat ?? 'none');
    const home = mkdtempSync(join(tmpdir(), `pilot-sim-${name}-`));
    this.homes.push(home);
    const r = this.rendezvous;
    const argv = [
      '--home', home,
      '--registry', r.registryAddr,
      '--beacon', r.beaconAddr,
      '--beacon2', r.beacon2Addr,
      '--listen', `${host.ip}:${NODE_PORT}`,
      '--log-level', 'silent',
      ...(spec.hostname ? ['--hostname', spec.hostname] : []),
      ...(spec.public ? ['--public'] : []),
      ...(spec.flags ?? []),
    ];
    const opts = parseDaemonArgs(argv, {});
    if (!opts.ok) return opts;
    const sockets: Datapath[] = [];
    const env = this.envFor(host, sockets);
    const level = process.env.PILOT_SIM_LOG;
    const logs: Array<Record<string, unknown>> = [];
    const logger = spec.captureLog
      ? pino({ level: 'info', name }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) })
      : level
        ? createLogger({ level, name })
        : silentLogger();
    const started = await this.wait(Daemon.start(opts.value, logger, env), 10_000, `${name} start`);
    if (sockets.length === 0) {
      if (started.ok) await started.value.shutdown();
      return err('not_running', 'Daemon.start(opts, logger, env) did not open its socket through the env', {
        hint: 'needs the node/ refactor (helper rooms): the Daemon must take clock, timers, sockets and the registry stream from NodeEnv',
      });
    }
    if (!started.ok) return started;
    const node = new SimNode(this, name, host, started.value, env, home, sockets, logs);
    this.nodes.push(node);
    return ok(node);
  }

  /** addNode or throw (with the seed). */
  async node(name: string, spec: NodeSpec = {}): Promise<SimNode> {
    const n = await this.addNode(name, spec);
    if (!n.ok) throw new Error(`${name}: ${n.error.code}: ${n.error.message} (${this.tag()})`);
    return n.value;
  }

  /** Let everything that is due now run: `soon` callbacks and promise jobs, until a few turns stay quiet. */
  async settle(): Promise<void> {
    for (let quiet = 0; quiet < 3; ) {
      const n = this.timers.drainSoon();
      await new Promise<void>((r) => setImmediate(r));
      quiet = n === 0 ? quiet + 1 : 0;
    }
  }

  /** Run until `cond()` holds (true) or `limitMs` of simulated time pass (false). */
  async until(cond: () => boolean | Promise<boolean>, limitMs: number): Promise<boolean> {
    const endUs: Micros = this.clock.nowUs() + limitMs * 1000;
    const realEnd = Date.now() + this.realBudgetMs;
    for (;;) {
      await this.settle();
      if (await cond()) return true;
      if (this.isClosed || Date.now() > realEnd) return false;
      if (!this.timers.step(endUs)) {
        // Nothing due in simulated time before the limit. Components still on real timers (until the node/
        // refactor lands everywhere) may yet add work: give them a few real milliseconds before moving on.
        let woke = false;
        for (let i = 0; i < 20 && !woke; i++) {
          await new Promise<void>((r) => setTimeout(r, 1));
          woke = this.timers.drainSoon() > 0 || (this.timers.nextAtUs() ?? Infinity) <= endUs;
        }
        if (!woke) {
          if (this.clock.nowUs() < endUs) this.clock.set(endUs);
          await this.settle();
          return cond();
        }
      }
    }
  }

  /** until() or throw `what` with the seed. */
  async expect(cond: () => boolean | Promise<boolean>, limitMs: number, what: string): Promise<void> {
    if (!(await this.until(cond, limitMs))) throw new Error(`timed out (${limitMs} ms simulated) waiting for ${what} (${this.tag()})`);
  }

  /** Run `ms` of simulated time. */
  async run(ms: number): Promise<void> {
    await this.until(() => false, ms);
  }

  /** Run the world until `p` settles (throws after `limitMs` simulated). */
  async wait<T>(p: Promise<T>, limitMs = 30_000, what = 'a promise'): Promise<T> {
    let state: { done: false } | { done: true; ok: true; v: T } | { done: true; ok: false; e: unknown } = { done: false };
    p.then(
      (v) => (state = { done: true, ok: true, v }),
      (e: unknown) => (state = { done: true, ok: false, e }),
    );
    await this.expect(() => state.done, limitMs, what);
    const s = state as unknown as { done: true; ok: true; v: T } | { done: true; ok: false; e: unknown };
    if (!s.ok) throw s.e;
    return s.v;
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    for (const n of this.nodes) await this.wait(n.daemon.shutdown(), 5_000, `${n.name} shutdown`).catch(() => undefined);
    await this.rendezvous.close();
    this.isClosed = true;
    for (const h of this.homes) rmSync(h, { recursive: true, force: true });
  }
}

/** Make a world and print its seed (node:test shows it with the test's output). */
export async function world(name: string, opts: SimWorldOptions = {}): Promise<SimWorld> {
  const w = await SimWorld.create(opts);
  process.stdout.write(`# sim ${name}: seed ${w.seed} (replay: PILOT_SEED=${w.seed})\n`);
  return w;
}
