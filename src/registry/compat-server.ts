// The rendezvous's compat port (issue 13; wire in src/wire/compat-frames.ts): one TLS listener (default :443)
// for nodes whose UDP does not get out. ALPN splits it:
// - `pilot-registry` → the registry protocol, handed to RegistryServer.attach (its per-IP limits apply);
// - anything else → HTTP/1.1: `GET COMPAT_WS_PATH` with subprotocol COMPAT_WS_SUBPROTOCOL upgrades to a beacon
//   channel (a `ws` WebSocket handed to BeaconServer.attachChannel); a wrong subprotocol gets 400, over the
//   channel limits 503, any other request 404 `{"error":"not_found"}`.
// A non-TLS client (plain bytes, HTTP without TLS) fails the handshake and is dropped ('tlsClientError',
// counted). TLS handshake + upgrade must finish within `handshakeTimeoutMs` (10 s) or the socket is destroyed.
// Each channel is pinged every 15 s and terminated when nothing (pong or message) was heard for 30 s.
// Does network I/O; the only timers are the handshake deadline per socket and one ping interval.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { COMPAT_ALPN_REGISTRY, COMPAT_WS_PATH, COMPAT_WS_SUBPROTOCOL, MAX_WS_MESSAGE_BYTES } from '../wire/compat-frames.js';
import type { BeaconChannel, BeaconChannelHandle } from './beacon.js';

/** What the compat port hands connections to: the registry's attach and the beacon's attachChannel. */
export interface CompatTargets {
  registry: { attach(stream: Duplex, remote: { ip: string; port: number }): void };
  beacon: { attachChannel(ch: BeaconChannel): BeaconChannelHandle };
}

export interface CompatServerOptions extends CompatTargets {
  host: string;
  port: number;
  /** PEM certificate chain and private key. */
  cert: string;
  key: string;
  logger: Logger;
  /** Open channels from one IP; further upgrades get 503. Default 256. */
  maxChannelsPerIp?: number;
  /** Open channels in all; further upgrades get 503. Default 65,536. */
  maxChannels?: number;
  /** TCP accept → TLS handshake → registry attach / WebSocket upgrade must finish within this. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Ping period per channel. Default 15 s. */
  pingIntervalMs?: number;
  /** A channel silent (no pong, no message) this long is terminated. Default 30 s. */
  deadAfterMs?: number;
  /** Idle registry connections over TLS are closed after this (the plain port's default). Default 5 min. */
  registryIdleTimeoutMs?: number;
  /** TCP connections open at once (TLS handshakes included). Default 70,000. */
  maxConnections?: number;
}

export const DEFAULT_MAX_CHANNELS_PER_IP = 256;
export const DEFAULT_MAX_CHANNELS = 65_536;
export const COMPAT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const CHANNEL_PING_INTERVAL_MS = 15_000;
export const CHANNEL_DEAD_AFTER_MS = 30_000;

interface OpenChannel {
  ws: WebSocket;
  handle: BeaconChannelHandle;
  ip: string;
  lastHeardMs: number;
}

export class CompatServer {
  private readonly channels = new Set<OpenChannel>();
  private readonly channelsPerIp = new Map<string, number>();
  /** Raw connections not yet attached or upgraded, by `ip|port` of the peer → lifts their deadline. */
  private readonly pending = new Map<string, { sock: Duplex; lift: () => void }>();
  /** Every raw connection open now (close() destroys them: server.close waits for all to end). */
  private readonly sockets = new Set<Duplex>();
  private readonly http: http.Server;
  private readonly wss: WebSocketServer;
  private pingTimer: NodeJS.Timeout | null = null;
  readonly stats = {
    /** TLS connections whose handshake failed (non-TLS clients among them) or timed out. */
    tlsErrors: 0,
    /** Sockets destroyed because handshake + upgrade took longer than handshakeTimeoutMs. */
    handshakeTimeouts: 0,
    registryConnections: 0,
    channelsAccepted: 0,
    /** Upgrades refused: wrong path (404), wrong subprotocol (400), over a limit (503). */
    upgradesRefused: 0,
    channelsOverLimit: 0,
    /** Channels terminated for silence (no pong within deadAfterMs). */
    channelsDead: 0,
    httpNotFound: 0,
  };

  private constructor(
    private readonly server: tls.Server,
    private readonly opts: CompatServerOptions,
  ) {
    this.http = http.createServer();
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_WS_MESSAGE_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(COMPAT_WS_SUBPROTOCOL) ? COMPAT_WS_SUBPROTOCOL : false),
    });
  }

  /** Listen. connection_failed (detail.errno: EACCES, EADDRINUSE, …) when the bind fails. */
  static async start(opts: CompatServerOptions): Promise<Result<CompatServer>> {
    let server: tls.Server;
    try {
      server = tls.createServer({
        cert: opts.cert,
        key: opts.key,
        ALPNProtocols: [COMPAT_ALPN_REGISTRY, 'http/1.1'],
        handshakeTimeout: opts.handshakeTimeoutMs ?? COMPAT_HANDSHAKE_TIMEOUT_MS,
      });
    } catch (e) {
      return err('invalid_argument', `compat TLS: ${(e as Error).message}`, { hint: 'check --tls-cert / --tls-key', cause: e });
    }
    server.maxConnections = opts.maxConnections ?? 70_000;
    const bound = await new Promise<Result<void>>((resolve) => {
      const onError = (e: NodeJS.ErrnoException) =>
        resolve(
          err('connection_failed', `compat port cannot listen on ${opts.host}:${opts.port}: ${e.message}`, {
            hint: 'pick another port with --compat-addr (e.g. --compat-addr :8443), or --compat-addr off',
            detail: { errno: e.code },
            cause: e,
          }),
        );
      server.once('error', onError);
      server.listen(opts.port, opts.host, () => {
        server.off('error', onError);
        resolve(ok());
      });
    });
    if (!bound.ok) return bound;
    const cs = new CompatServer(server, opts);
    cs.begin();
    return ok(cs);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Channels open now. */
  get openChannels(): number {
    return this.channels.size;
  }

  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.channels) c.ws.terminate();
    for (const sock of this.sockets) sock.destroy();
    this.wss.close();
    this.http.close();
    await closed;
  }

  private begin(): void {
    const { logger } = this.opts;
    const deadlineMs = this.opts.handshakeTimeoutMs ?? COMPAT_HANDSHAKE_TIMEOUT_MS;
    this.server.on('error', (e) => logger.error({ err: e }, 'compat listener error'));
    // Every raw connection gets the deadline; registry attach or a finished upgrade lifts it.
    this.server.on('connection', (sock) => {
      sock.on('error', () => undefined);
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      const key = peerKey(sock);
      const t = setTimeout(() => {
        if (this.pending.get(key)?.sock !== sock) return;
        this.pending.delete(key);
        this.stats.handshakeTimeouts++;
        sock.destroy();
      }, deadlineMs);
      t.unref();
      const lift = (): void => {
        clearTimeout(t);
        if (this.pending.get(key)?.sock === sock) this.pending.delete(key);
      };
      this.pending.set(key, { sock, lift });
      sock.once('close', lift);
    });
    this.server.on('tlsClientError', (e, sock) => {
      this.stats.tlsErrors++;
      logger.debug({ remote: sock.remoteAddress, err: e.message }, 'compat: TLS handshake failed, dropped');
      sock.destroy();
    });
    this.server.on('secureConnection', (sock) => this.onSecure(sock));
    this.http.on('request', (_req, res) => {
      this.stats.httpNotFound++;
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    });
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.http.on('clientError', (_e, socket) => socket.destroy());
    const pingMs = this.opts.pingIntervalMs ?? CHANNEL_PING_INTERVAL_MS;
    this.pingTimer = setInterval(() => this.pingAll(), pingMs);
    this.pingTimer.unref();
    logger.info({ addr: this.address() }, 'compat TLS port listening');
  }

  private onSecure(sock: tls.TLSSocket): void {
    sock.on('error', () => undefined);
    const ip = sock.remoteAddress ?? '';
    const port = sock.remotePort ?? 0;
    if (sock.alpnProtocol === COMPAT_ALPN_REGISTRY) {
      this.liftDeadline(sock);
      this.stats.registryConnections++;
      sock.setNoDelay(true);
      sock.setTimeout(this.opts.registryIdleTimeoutMs ?? 5 * 60_000, () => sock.destroy());
      this.opts.registry.attach(sock, { ip, port });
      return;
    }
    // ws sends no ALPN, a browser h2 + http/1.1: HTTP/1.1 either way (no h2 offered).
    this.http.emit('connection', sock);
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, error: string): void => {
      this.stats.upgradesRefused++;
      const body = JSON.stringify({ error });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== COMPAT_WS_PATH || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(404, 'not_found');
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!protocols.includes(COMPAT_WS_SUBPROTOCOL)) return refuse(400, 'bad_subprotocol');
    const ip = normaliseIp(req.socket.remoteAddress ?? '');
    const perIp = this.channelsPerIp.get(ip) ?? 0;
    if (perIp >= (this.opts.maxChannelsPerIp ?? DEFAULT_MAX_CHANNELS_PER_IP) || this.channels.size >= (this.opts.maxChannels ?? DEFAULT_MAX_CHANNELS)) {
      this.stats.channelsOverLimit++;
      return refuse(503, 'too_many_channels');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onChannel(ws, ip, req.socket.remotePort ?? 0, req.socket as tls.TLSSocket));
  }

  private onChannel(ws: WebSocket, ip: string, port: number, sock: tls.TLSSocket): void {
    this.liftDeadline(sock);
    // Limits are checked before the upgrade; a burst of upgrades in one turn may pass it together, so recheck.
    const perIp = this.channelsPerIp.get(ip) ?? 0;
    if (perIp >= (this.opts.maxChannelsPerIp ?? DEFAULT_MAX_CHANNELS_PER_IP) || this.channels.size >= (this.opts.maxChannels ?? DEFAULT_MAX_CHANNELS)) {
      this.stats.channelsOverLimit++;
      ws.close(1013, 'too many channels');
      return;
    }
    this.channelsPerIp.set(ip, perIp + 1);
    this.stats.channelsAccepted++;
    const handle = this.opts.beacon.attachChannel({
      remote: { address: ip, port },
      send: (msg, onSent) => ws.send(msg, { binary: true }, onSent && (() => onSent())),
      bufferedBytes: () => ws.bufferedAmount,
      close: (code, reason) => ws.close(code, reason),
    });
    const c: OpenChannel = { ws, handle, ip, lastHeardMs: Date.now() };
    this.channels.add(c);
    this.opts.logger.debug({ remote: `${ip}:${port}`, open: this.channels.size }, 'compat channel open');
    ws.on('message', (data, isBinary) => {
      c.lastHeardMs = Date.now();
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      handle.receive(buf, isBinary);
    });
    ws.on('pong', () => (c.lastHeardMs = Date.now()));
    ws.on('error', (e) => this.opts.logger.debug({ remote: ip, err: e.message }, 'compat channel error'));
    ws.once('close', (code) => {
      this.channels.delete(c);
      this.opts.logger.debug({ remote: `${ip}:${port}`, code, open: this.channels.size }, 'compat channel closed');
      const left = (this.channelsPerIp.get(ip) ?? 1) - 1;
      if (left > 0) this.channelsPerIp.set(ip, left);
      else this.channelsPerIp.delete(ip);
      handle.closed();
    });
  }

  private liftDeadline(sock: tls.TLSSocket): void {
    this.pending.get(peerKey(sock))?.lift();
  }

  private pingAll(): void {
    const nowMs = Date.now();
    const deadMs = this.opts.deadAfterMs ?? CHANNEL_DEAD_AFTER_MS;
    for (const c of this.channels) {
      if (nowMs - c.lastHeardMs > deadMs) {
        this.stats.channelsDead++;
        c.ws.terminate();
        continue;
      }
      c.ws.ping();
    }
  }
}

/** A TCP connection's peer, the same for the raw socket and the TLSSocket over it. */
function peerKey(sock: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${sock.remoteAddress ?? ''}|${sock.remotePort ?? 0}`;
}

function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
