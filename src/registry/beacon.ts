// Beacon: UDP endpoint discovery, punch coordination and relay (pkg/beacon/server.go of the original).
// Differences, none visible to original daemons:
// - relay (0x05) is forwarded only when it comes from the endpoint the beacon last observed for its sender
//   id, so a stranger cannot inject frames under another node's id without first hijacking its mapping;
// - per-source token buckets bound relay bandwidth and discover/punch rates;
// - observed endpoints expire after `endpointTtlMs` without a discover (the original keeps them forever);
// - an optional second socket answers discover too (never records), so a client can compare the two
//   mappings for NAT classification;
// - gossip (0x07) is parsed and ignored: one beacon per rendezvous here.
// Known weakness kept for compatibility: discover is unauthenticated, so anyone can re-point a node id's
// observed endpoint (as in the original). Tunnel frames stay end-to-end authenticated, so this can disrupt or
// divert traffic to a place that cannot read it, not impersonate.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { decodeBeaconMessage, encodeBeaconMessage, writeRelayDeliver } from '../wire/beacon-message.js';

export interface BeaconOptions {
  host: string;
  port: number;
  /** Second listen address answering discover only (NAT mapping comparison). */
  host2?: string;
  port2?: number;
  logger: Logger;
  /** Relay budget per source endpoint. */
  relayBytesPerSec?: number;
  /** Discover + punch budget per source endpoint. */
  controlPacketsPerSec?: number;
  endpointTtlMs?: number;
}

interface Observed {
  ip: string;
  port: number;
  seenMs: number;
}

class TokenBucket {
  private tokens: number;
  private lastMs: number;
  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }
  take(n: number, nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) / 1000) * this.ratePerSec);
    this.lastMs = nowMs;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

interface SourceBudget {
  relay: TokenBucket;
  control: TokenBucket;
  lastMs: number;
}

export class BeaconServer {
  private readonly nodes = new Map<number, Observed>();
  private readonly budgets = new Map<string, SourceBudget>();
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Counters for tests and logs. */
  readonly stats = { discovers: 0, punches: 0, relayed: 0, relayDropped: 0, rateLimited: 0, malformed: 0 };

  private constructor(
    private readonly sock: dgram.Socket,
    private readonly sock2: dgram.Socket | null,
    private readonly opts: BeaconOptions,
  ) {}

  /** Bind the socket(s). connection_failed when a bind fails. */
  static async start(opts: BeaconOptions): Promise<Result<BeaconServer>> {
    const sock = await bindUdp(opts.host, opts.port);
    if (!sock.ok) return sock;
    let sock2: dgram.Socket | null = null;
    if (opts.port2 !== undefined) {
      const s2 = await bindUdp(opts.host2 ?? opts.host, opts.port2);
      if (!s2.ok) {
        sock.value.close();
        return s2;
      }
      sock2 = s2.value;
    }
    const b = new BeaconServer(sock.value, sock2, opts);
    sock.value.on('message', (msg, rinfo) => b.handlePacket(msg, rinfo, false));
    sock2?.on('message', (msg, rinfo) => b.handlePacket(msg, rinfo, true));
    b.sweepTimer = setInterval(() => b.sweep(), 30_000);
    b.sweepTimer.unref();
    return ok(b);
  }

  address(): AddressInfo {
    return this.sock.address();
  }

  address2(): AddressInfo | null {
    return this.sock2 ? this.sock2.address() : null;
  }

  /** Last observed endpoint (`ip:port`) for a node id, or null. */
  observedEndpoint(nodeId: number): string | null {
    const o = this.nodes.get(nodeId);
    if (!o) return null;
    return o.ip.includes(':') ? `[${o.ip}]:${o.port}` : `${o.ip}:${o.port}`;
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([closeUdp(this.sock), this.sock2 ? closeUdp(this.sock2) : Promise.resolve()]);
  }

  private handlePacket(msg: Buffer, rinfo: dgram.RemoteInfo, isSecondary: boolean): void {
    const nowMs = Date.now();
    const decoded = decodeBeaconMessage(msg);
    if (!decoded.ok) {
      this.stats.malformed++;
      return;
    }
    const m = decoded.value;
    const budget = this.budgetFor(rinfo, nowMs);
    const ip = normaliseIp(rinfo.address);
    switch (m.kind) {
      case 'discover': {
        if (!budget.control.take(1, nowMs)) return this.limited(rinfo);
        this.stats.discovers++;
        if (!isSecondary) this.nodes.set(m.nodeId, { ip, port: rinfo.port, seenMs: nowMs });
        this.send(isSecondary ? this.sock2! : this.sock, { kind: 'discover_reply', ip, port: rinfo.port }, rinfo);
        return;
      }
      case 'punch_request': {
        if (isSecondary) return;
        if (!budget.control.take(1, nowMs)) return this.limited(rinfo);
        // As the original: the request refreshes the requester's endpoint (symmetric NATs move it).
        this.nodes.set(m.fromNodeId, { ip, port: rinfo.port, seenMs: nowMs });
        const target = this.nodes.get(m.toNodeId);
        if (!target) {
          this.opts.logger.debug({ target: m.toNodeId }, 'beacon punch: target unknown');
          return;
        }
        this.stats.punches++;
        this.send(this.sock, { kind: 'punch_command', ip: target.ip, port: target.port }, { address: ip, port: rinfo.port });
        this.send(this.sock, { kind: 'punch_command', ip, port: rinfo.port }, { address: target.ip, port: target.port });
        return;
      }
      case 'relay': {
        if (isSecondary) return;
        const sender = this.nodes.get(m.senderNodeId);
        if (!sender || sender.ip !== ip || sender.port !== rinfo.port) {
          this.stats.relayDropped++;
          return;
        }
        if (!budget.relay.take(m.payload.length, nowMs)) return this.limited(rinfo);
        const dest = this.nodes.get(m.destNodeId);
        if (!dest) {
          this.stats.relayDropped++;
          return;
        }
        // dgram owns the buffer until the send callback, so each relayed frame gets its own.
        const out = Buffer.allocUnsafe(5 + m.payload.length);
        writeRelayDeliver(out, m.senderNodeId, m.payload);
        this.sock.send(out, dest.port, dest.ip, (e) => {
          if (e) this.opts.logger.debug({ err: e }, 'beacon relay send failed');
        });
        this.stats.relayed++;
        return;
      }
      case 'sync':
        this.opts.logger.debug({ beaconId: m.beaconId, nodes: m.nodeIds.length }, 'beacon gossip ignored');
        return;
      default:
        // Replies/commands/delivers are beacon → node only.
        this.stats.malformed++;
        return;
    }
  }

  private send(
    sock: dgram.Socket,
    m: Parameters<typeof encodeBeaconMessage>[0],
    to: { address: string; port: number },
  ): void {
    const bytes = encodeBeaconMessage(m);
    if (!bytes.ok) return;
    sock.send(bytes.value, to.port, to.address, (e) => {
      if (e) this.opts.logger.debug({ err: e }, 'beacon send failed');
    });
  }

  private budgetFor(rinfo: dgram.RemoteInfo, nowMs: number): SourceBudget {
    const key = `${rinfo.address}|${rinfo.port}`;
    let b = this.budgets.get(key);
    if (!b) {
      const relayRate = this.opts.relayBytesPerSec ?? 64 * 1024 * 1024;
      const controlRate = this.opts.controlPacketsPerSec ?? 50;
      b = {
        relay: new TokenBucket(relayRate, relayRate, nowMs),
        control: new TokenBucket(controlRate, controlRate * 2, nowMs),
        lastMs: nowMs,
      };
      this.budgets.set(key, b);
    }
    b.lastMs = nowMs;
    return b;
  }

  private limited(rinfo: dgram.RemoteInfo): void {
    this.stats.rateLimited++;
    this.opts.logger.debug({ from: `${rinfo.address}:${rinfo.port}` }, 'beacon rate limited');
  }

  private sweep(): void {
    const nowMs = Date.now();
    const ttl = this.opts.endpointTtlMs ?? 10 * 60_000;
    for (const [id, o] of this.nodes) if (nowMs - o.seenMs > ttl) this.nodes.delete(id);
    for (const [k, b] of this.budgets) if (nowMs - b.lastMs > 60_000) this.budgets.delete(k);
  }
}

/** `::ffff:1.2.3.4` (dual-stack sockets) → `1.2.3.4`, as Go's To4() in the original's replies. */
function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function bindUdp(host: string, port: number): Promise<Result<dgram.Socket>> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    const onError = (e: Error) => {
      sock.close();
      resolve(err('connection_failed', `beacon cannot bind udp ${host}:${port}: ${e.message}`, { cause: e }));
    };
    sock.once('error', onError);
    sock.bind(port, host, () => {
      sock.off('error', onError);
      sock.on('error', () => undefined);
      resolve(ok(sock));
    });
  });
}

function closeUdp(sock: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      sock.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
