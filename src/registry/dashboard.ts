// The rendezvous's dashboard (issue 16): one HTTP handler, mounted on `--dashboard-addr` (off by default).
//   GET /             the page (src/registry/dashboard-page.ts): live figures, uPlot charts, recent events
//   GET /api/stats    the same figures as JSON (what the page shows, field for field)
//   GET /api/events   Server-Sent Events: `stats` every second (and at once), `event` per registry change
//   GET /metrics      Prometheus text exposition
//   GET /uplot.js, /uplot.css   the chart library (uPlot, served from node_modules)
// Everything needs the admin token (`--admin-token`): `Authorization: Bearer T`, or the `pilot_admin` cookie
// that `GET /?token=T` sets (HttpOnly, SameSite=Strict) before redirecting to `/` so the token leaves the URL.
// A wrong or missing token is a 401 with a JSON error; tokens are compared in constant time.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import type { RegistryDashboardStats, RegistryEvent } from './server.js';
import { DASHBOARD_PAGE } from './dashboard-page.js';

/** Beacon counters the dashboard shows (BeaconServer.stats; relayedBytes when the beacon counts them). */
export interface BeaconFigures {
  discovers: number;
  punches: number;
  relayed: number;
  relayDropped: number;
  rateLimited: number;
  relayedBytes?: number;
  channelsOpen?: number;
}

/** What nodes report about themselves (heartbeats), when they do. */
export interface NodeReports {
  natTypes: Record<string, number>;
  paths: { direct: number; relayed: number };
  /** Online nodes by the transport they report (udp / wss). */
  transports?: Record<string, number>;
}

export interface DashboardSource {
  registry(): RegistryDashboardStats;
  onEvent(fn: (e: RegistryEvent) => void): () => void;
  beacon(): BeaconFigures | null;
  reports?(): NodeReports;
}

export interface DashboardStats extends RegistryDashboardStats {
  time_ms: number;
  relay: { packets: number; bytes: number | null; dropped: number; channels_open: number | null };
  beacon: { discovers: number; punches: number; rate_limited: number } | null;
  /** Online nodes by the NAT type they report; `{}` until nodes report. */
  nat_types: Record<string, number>;
  /** Peer paths the nodes report (sum over nodes): direct vs relayed, and the relayed share in %. */
  paths: { direct: number; relayed: number; relayed_pct: number | null };
  /** Online nodes by reported transport: udp, or wss (the compat transport). */
  transports: Record<string, number>;
}

export interface DashboardOptions {
  source: DashboardSource;
  adminToken: string;
  logger: Logger;
  nowMs?: () => number;
  /** Live (SSE) clients at once; more get 503. */
  maxLiveClients?: number;
  /** SSE stats interval. */
  liveIntervalMs?: number;
}

const COOKIE = 'pilot_admin';
const MIN_TOKEN_CHARS = 16;

function uplotAsset(file: string): Buffer | null {
  try {
    const req = createRequire(import.meta.url);
    const main = req.resolve('uplot');
    return readFileSync(main.replace(/[^/\\]+$/, file));
  } catch {
    return null;
  }
}

/** The figures at this moment. */
export function collectStats(source: DashboardSource, nowMs: number): DashboardStats {
  const r = source.registry();
  const b = source.beacon();
  const rep = source.reports?.() ?? { natTypes: {}, paths: { direct: 0, relayed: 0 } };
  const total = rep.paths.direct + rep.paths.relayed;
  return {
    time_ms: nowMs,
    ...r,
    relay: {
      packets: b?.relayed ?? 0,
      bytes: b?.relayedBytes ?? null,
      dropped: b?.relayDropped ?? 0,
      channels_open: b?.channelsOpen ?? null,
    },
    beacon: b ? { discovers: b.discovers, punches: b.punches, rate_limited: b.rateLimited } : null,
    nat_types: rep.natTypes,
    transports: rep.transports ?? {},
    paths: { ...rep.paths, relayed_pct: total > 0 ? Math.round((rep.paths.relayed / total) * 1000) / 10 : null },
  };
}

/** Prometheus text format (0.0.4). */
export function prometheusText(s: DashboardStats): string {
  const out: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number | null]>): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) if (v !== null) out.push(`${name}${labels} ${v}`);
  };
  metric('pilot_nodes_registered', 'gauge', 'Nodes in the registry.', [['', s.nodes.registered]]);
  metric('pilot_nodes_online', 'gauge', 'Nodes heard from within the last 75 s.', [['', s.nodes.online]]);
  metric('pilot_nodes_public', 'gauge', 'Public nodes.', [['', s.nodes.public]]);
  metric('pilot_nat_type_nodes', 'gauge', 'Online nodes by reported NAT type.',
    Object.entries(s.nat_types).map(([t, n]) => [`{nat_type="${t.replace(/["\\\n]/g, '_')}"}`, n]));
  metric('pilot_transport_nodes', 'gauge', 'Online nodes by reported transport (udp, wss).',
    Object.entries(s.transports).map(([t, n]) => [`{transport="${t.replace(/["\\\n]/g, '_')}"}`, n]));
  metric('pilot_peer_paths', 'gauge', 'Peer paths reported by nodes.', [['{path="direct"}', s.paths.direct], ['{path="relayed"}', s.paths.relayed]]);
  metric('pilot_relay_packets_total', 'counter', 'Datagrams relayed by the beacon.', [['', s.relay.packets]]);
  metric('pilot_relay_bytes_total', 'counter', 'Bytes relayed by the beacon.', [['', s.relay.bytes]]);
  metric('pilot_relay_dropped_total', 'counter', 'Relay datagrams dropped (budget, unknown destination, full channel).', [['', s.relay.dropped]]);
  metric('pilot_trust_edges', 'gauge', 'Directed trust edges.', [['', s.trust.edges]]);
  metric('pilot_pending_handshakes', 'gauge', 'Handshake requests waiting for an answer.', [['', s.trust.pending_handshakes]]);
  metric('pilot_trust_pushes_total', 'counter', 'Pushes to subscribed nodes (trust requests, answers).', [['', s.trust.pushes]]);
  metric('pilot_registry_requests_total', 'counter', 'Registry requests served.', [['', s.registry.requests]]);
  metric('pilot_registry_errors_total', 'counter', 'Registry requests answered with an error.', [['', s.registry.errors]]);
  metric('pilot_registry_connections', 'gauge', 'Open registry connections.', [['', s.registry.connections]]);
  if (s.beacon) {
    metric('pilot_beacon_discovers_total', 'counter', 'Beacon discover requests answered.', [['', s.beacon.discovers]]);
    metric('pilot_beacon_punches_total', 'counter', 'Punch requests coordinated.', [['', s.beacon.punches]]);
  }
  metric('pilot_uptime_seconds', 'gauge', 'Seconds since the rendezvous started.', [['', s.uptime_s]]);
  return out.join('\n') + '\n';
}

function tokenDigest(t: string): Buffer {
  return createHash('sha256').update(t).digest();
}

export class Dashboard {
  private readonly nowMs: () => number;
  private readonly live = new Set<ServerResponse>();
  private readonly tokenHash: Buffer;
  private server: Server | null = null;
  private readonly assets: { js: Buffer | null; css: Buffer | null };

  private constructor(private readonly opts: DashboardOptions) {
    this.nowMs = opts.nowMs ?? Date.now;
    this.tokenHash = tokenDigest(opts.adminToken);
    this.assets = { js: uplotAsset('uPlot.iife.min.js'), css: uplotAsset('uPlot.min.css') };
  }

  /** invalid_argument for a token shorter than 16 characters. */
  static create(opts: DashboardOptions): Result<Dashboard> {
    if (opts.adminToken.length < MIN_TOKEN_CHARS) {
      return err('invalid_argument', `the dashboard's admin token must be at least ${MIN_TOKEN_CHARS} characters`, {
        hint: 'pass --admin-token (or PILOT_ADMIN_TOKEN) with a long random string, e.g. $(openssl rand -hex 24)',
      });
    }
    return ok(new Dashboard(opts));
  }

  /** Listen on host:port; connection_failed when the bind fails. */
  async listen(host: string, port: number): Promise<Result<AddressInfo>> {
    const server = createServer((req, res) => this.handle(req, res));
    return new Promise((resolve) => {
      server.once('error', (e) => resolve(err('connection_failed', `dashboard cannot listen on ${host}:${port}: ${e.message}`, { cause: e })));
      server.listen(port, host, () => {
        this.server = server;
        server.on('error', (e) => this.opts.logger.error({ err: e }, 'dashboard listener error'));
        resolve(ok(server.address() as AddressInfo));
      });
    });
  }

  /** The listen address once listening. */
  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  async close(): Promise<void> {
    for (const r of this.live) r.end();
    this.live.clear();
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** The request handler (mountable on any node:http server). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.json(res, 405, { error: 'method_not_allowed' });
    if (url.pathname === '/' && url.searchParams.has('token')) {
      if (!this.isToken(url.searchParams.get('token') ?? '')) return this.json(res, 401, unauthorized);
      res.writeHead(303, {
        location: '/',
        'set-cookie': `${COOKIE}=${encodeURIComponent(url.searchParams.get('token')!)}; HttpOnly; SameSite=Strict; Path=/`,
        'cache-control': 'no-store',
      });
      return void res.end();
    }
    if (!this.isAuthorized(req)) return this.json(res, 401, unauthorized);
    switch (url.pathname) {
      case '/':
        return this.send(res, 200, 'text/html; charset=utf-8', DASHBOARD_PAGE);
      case '/uplot.js':
        return this.assets.js ? this.send(res, 200, 'text/javascript; charset=utf-8', this.assets.js) : this.json(res, 404, { error: 'not_found' });
      case '/uplot.css':
        return this.assets.css ? this.send(res, 200, 'text/css; charset=utf-8', this.assets.css) : this.json(res, 404, { error: 'not_found' });
      case '/api/stats':
        return this.json(res, 200, this.stats());
      case '/metrics':
        return this.send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', prometheusText(this.stats()));
      case '/api/events':
        return this.startLive(req, res);
      default:
        return this.json(res, 404, { error: 'not_found' });
    }
  }

  stats(): DashboardStats {
    return collectStats(this.opts.source, this.nowMs());
  }

  private startLive(req: IncomingMessage, res: ServerResponse): void {
    if (this.live.size >= (this.opts.maxLiveClients ?? 32)) return this.json(res, 503, { error: 'too_many_live_clients' });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    this.live.add(res);
    const sendStats = (): void => void res.write(`event: stats\ndata: ${JSON.stringify(this.stats())}\n\n`);
    sendStats();
    const timer = setInterval(sendStats, this.opts.liveIntervalMs ?? 1000);
    const off = this.opts.source.onEvent((e) => {
      // A client that stopped reading gets no more (bounded memory); it still gets the next stats if it drains.
      if (res.writableLength < 1024 * 1024) res.write(`event: event\ndata: ${JSON.stringify(e)}\n\n`);
    });
    const end = (): void => {
      clearInterval(timer);
      off();
      this.live.delete(res);
    };
    req.on('close', end);
    res.on('close', end);
  }

  private isToken(t: string): boolean {
    return timingSafeEqual(tokenDigest(t), this.tokenHash);
  }

  private isAuthorized(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return this.isToken(auth.slice(7).trim());
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === COOKIE) {
        try {
          return this.isToken(decodeURIComponent(v.join('=')));
        } catch {
          return false;
        }
      }
    }
    return false;
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(body));
  }
}

const unauthorized = {
  error: 'unauthorized',
  hint: 'send Authorization: Bearer <admin token>, or open /?token=<admin token> once in a browser',
};
