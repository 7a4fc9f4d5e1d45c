// Daemon side of the control socket: serves a NodeApi to pilotctl and SDK clients (protocol in protocol.ts).
// One misbehaving client (garbage, oversized lines, vanishing mid-call) only ever loses its own connection.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { MIN_RATE_LIMIT_BYTES_PER_SEC, type DatagramSocket, type NodeApi, type PingResult, type PortListener, type SendFileOptions } from '../node/api.js';
import { DaemonProver, publishDaemonKey, type Identity } from '../node/daemon-proof.js';
import { bridgeDatagrams } from './datagram-bridge.js';
import { bridgeStreamChannel } from './stream-channel-bridge.js';
import { MAX_CHANNEL_PAYLOAD_BYTES } from './datagram-frames.js';
import { STREAM_WINDOW_BYTES } from './stream-frames.js';
import { ParamReader } from './params.js';
import {
  encodeLine,
  INBOX_PAGE_MAX_BYTES,
  INBOX_PAGE_MAX_MESSAGES,
  LineSplitter,
  MAX_REQUEST_LINE_BYTES,
  toWireError,
  type IpcEvent,
  type IpcResponse,
  type RequestId,
} from './protocol.js';

/** NodeApi.ping options plus a per-reply callback; a daemon that calls it lets `pilotctl ping` print live. */
export type PingOptions = Parameters<NodeApi['ping']>[1] & { onResult?: (r: PingResult) => void };

export interface IpcServerOptions {
  socketPath: string;
  /** The node identity the `auth` method proves to clients (src/node/daemon-proof.ts). */
  identity: Identity;
  /** The daemon's home: its public key is published there (identity.pub) for clients to verify against. */
  home: string;
  logger?: Logger;
}

export interface IpcServer {
  readonly socketPath: string;
  /** Open client connections (for tests and `info`). */
  readonly connectionCount: number;
  /** Stops accepting, drops every client, closes their listeners/subscriptions and removes the socket file. */
  close(): Promise<void>;
}

/** Write (and read) buffer of each client socket before backpressure (see serveIpc). */
const SOCKET_HIGH_WATER_BYTES = 1024 * 1024;
/** Progress events are throttled to this interval (the last one is always sent). */
const PROGRESS_INTERVAL_MS = 100;
/** Unix socket paths longer than this fail to bind on Linux (sun_path is 108 bytes with the NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Listen on `opts.socketPath` (created 0600; parent directory created 0700) and serve `api` until close().
 * A stale socket file nobody answers on is removed first; a live one → `already_exists`.
 */
export async function serveIpc(api: NodeApi, opts: IpcServerOptions): Promise<Result<IpcServer>> {
  const logger = opts.logger ?? silentLogger();
  const prepared = await prepareSocketPath(opts.socketPath);
  if (!prepared.ok) return prepared;
  // Before the socket exists: a client that can connect can also find the key to check the daemon's proof.
  const published = publishDaemonKey(opts.home, opts.identity.publicKey);
  if (!published.ok) return published;
  const state = new ServerState(api, logger, opts.identity);
  // 1 MiB socket buffers per client: a stream channel writes the transport's chunks (~400 KiB) as DATA frames
  // within each stream's credit, and at the default 16 KiB nearly every such write would report "full".
  const server = createServer({ allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_BYTES }, (socket) => state.accept(socket));
  const listening = await new Promise<Result<void>>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      resolve(err('internal', `cannot listen on ${opts.socketPath}: ${e.message}`, { cause: e })),
    );
    // bind(2) creates the socket file with the umask's mode; the chmod below comes a moment later. A 0177 umask
    // closes that window (a Unix socket is connectable by whoever may write it). Node binds a path synchronously.
    const umask = setUmask(0o177);
    try {
      server.listen(opts.socketPath, () => resolve(ok()));
    } finally {
      if (umask !== null) setUmask(umask);
    }
  });
  if (!listening.ok) return listening;
  server.on('error', (e) => logger.error({ err: e }, 'ipc server error'));
  try {
    chmodSync(opts.socketPath, 0o600);
  } catch (e) {
    server.close();
    return err('internal', `cannot chmod ${opts.socketPath}: ${(e as Error).message}`, { cause: e });
  }
  logger.debug({ socket: opts.socketPath }, 'ipc listening');
  return ok(new IpcServerHandle(server, state, opts.socketPath));
}

class IpcServerHandle implements IpcServer {
  private isClosed = false;
  constructor(
    private readonly server: Server,
    private readonly state: ServerState,
    readonly socketPath: string,
  ) {}
  get connectionCount(): number {
    return this.state.conns.size;
  }
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.state.closeAll();
    await closed;
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone: server.close() unlinks on most platforms */
    }
  }
}

/** process.umask(mask), or null where it cannot be set (worker threads). Returns the previous mask. */
function setUmask(mask: number): number | null {
  try {
    return process.umask(mask);
  } catch {
    return null;
  }
}

async function prepareSocketPath(path: string): Promise<Result<void>> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    return err('invalid_argument', `socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${path}`, {
      hint: 'use a shorter --socket or --home',
    });
  }
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (e) {
    return err('internal', `cannot create ${dirname(path)}: ${(e as Error).message}`, { cause: e });
  }
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return ok(); // nothing there
  }
  if (!isSocket) return err('already_exists', `${path} exists and is not a socket`, { hint: 'remove it or pick another --socket' });
  const isLive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (isLive) {
    return err('already_exists', `a daemon is already listening on ${path}`, { hint: 'stop it first with: pilotctl daemon stop' });
  }
  try {
    unlinkSync(path);
  } catch (e) {
    return err('internal', `cannot remove stale socket ${path}: ${(e as Error).message}`, { cause: e });
  }
  return ok();
}

class ServerState {
  readonly conns = new Set<ClientConn>();
  readonly listeners = new Map<string, PortListener>();
  private nextConnSeq = 1;
  /** Answers `auth`: the node key's signature, and the cheap proof for clients holding a ticket. */
  readonly prover: DaemonProver;

  constructor(
    readonly api: NodeApi,
    readonly logger: Logger,
    identity: Identity,
  ) {
    this.prover = new DaemonProver(identity, process.pid);
  }

  accept(socket: Socket): void {
    const conn = new ClientConn(this, socket, this.nextConnSeq++);
    this.conns.add(conn);
    socket.once('close', () => {
      this.conns.delete(conn);
      conn.releaseResources();
    });
  }

  closeAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }
}

type Handler = (conn: ClientConn, id: RequestId, params: unknown) => Promise<void>;

class ClientConn {
  private readonly splitter = new LineSplitter(MAX_REQUEST_LINE_BYTES);
  /** While a datagram_channel / stream_channel is being answered no further lines are parsed: the bytes may be frames. */
  private isSwitching = false;
  private isRaw = false;
  private inflight = 0;
  /** Open-style resources (subscriptions, listeners, datagram sockets) by request id; closed with the conn. */
  private readonly resources = new Map<string, () => void>();

  constructor(
    private readonly state: ServerState,
    readonly socket: Socket,
    private readonly seq: number,
  ) {
    socket.on('data', this.onData);
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      this.hasClientEnded = true;
      if (!this.isRaw && !this.isSwitching && this.inflight === 0) socket.end();
    });
  }

  private hasClientEnded = false;

  private readonly onData = (chunk: Buffer): void => {
    // Past an oversized line the client has been answered and is being dropped: its further bytes are not kept.
    if (this.splitter.isOverflowed && !this.isRaw) return;
    this.splitter.push(chunk);
    this.drain();
  };

  private drain(): void {
    while (!this.isSwitching && !this.isRaw) {
      const line = this.splitter.next();
      if (line === null) break;
      this.handleLine(line);
    }
    if (this.splitter.isOverflowed && !this.isRaw) {
      this.respond(null, err('invalid_argument', `request line exceeds ${MAX_REQUEST_LINE_BYTES} bytes`));
      this.socket.end();
      this.socket.destroySoon();
      this.socket.pause();
    }
  }

  private handleLine(line: string): void {
    if (line.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.respond(null, err('invalid_argument', 'malformed request: not JSON'));
      return;
    }
    const m = msg as Record<string, unknown>;
    const id = m?.id;
    if (typeof m !== 'object' || m === null || (typeof id !== 'number' && typeof id !== 'string')) {
      this.respond(null, err('invalid_argument', 'malformed request: needs {id, method, params}'));
      return;
    }
    const method = m.method;
    const handler = typeof method === 'string' && Object.prototype.hasOwnProperty.call(HANDLERS, method) ? HANDLERS[method] : undefined;
    if (!handler) {
      this.respond(id, err('invalid_argument', `unknown method ${JSON.stringify(method)}`));
      return;
    }
    if (method === 'datagram_channel' || method === 'stream_channel') {
      if (this.inflight > 0 || this.resources.size > 0) {
        this.respond(id, err('invalid_argument', `${method} needs a fresh connection (it becomes the byte stream)`));
        return;
      }
      this.isSwitching = true;
    }
    this.inflight++;
    handler(this, id, m.params)
      .catch((e: unknown) => {
        // A throw here is a bug in a handler or in the daemon; the client still gets an answer.
        this.state.logger.error({ err: e, method }, 'ipc handler threw');
        this.respond(id, err('internal', `daemon error in ${String(method)}: ${(e as Error)?.message ?? String(e)}`));
      })
      .finally(() => {
        this.inflight--;
        if (this.hasClientEnded && !this.isRaw && !this.isSwitching && this.inflight === 0) this.socket.end();
      });
  }

  get api(): NodeApi {
    return this.state.api;
  }
  get server(): ServerState {
    return this.state;
  }
  get isOpen(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  respond(id: RequestId | null, r: Result<unknown>): void {
    const msg: IpcResponse = r.ok ? { id, ok: true, result: r.value ?? null } : { id, ok: false, error: toWireError(r.error) };
    if (this.isOpen) this.socket.write(encodeLine(msg));
  }

  event(id: RequestId, event: string, data: unknown): void {
    const msg: IpcEvent = { id, event, data };
    if (this.isOpen && !this.isRaw) this.socket.write(encodeLine(msg));
  }

  /** Throttled `progress` events for send_file/bench. */
  progressFn(id: RequestId): (done: number, total: number) => void {
    let lastMs = 0;
    return (done, total) => {
      const now = Date.now();
      if (done < total && now - lastMs < PROGRESS_INTERVAL_MS) return;
      lastMs = now;
      this.event(id, 'progress', { bytes_done: done, bytes_total: total });
    };
  }

  addResource(id: RequestId, close: () => void): void {
    this.resources.set(String(id), close);
  }

  closeResource(id: RequestId): boolean {
    const close = this.resources.get(String(id));
    if (!close) return false;
    this.resources.delete(String(id));
    close();
    return true;
  }

  releaseResources(): void {
    for (const close of this.resources.values()) close();
    this.resources.clear();
  }

  resourceKey(id: RequestId): string {
    return `${this.seq}.${String(id)}`;
  }

  /** datagram_channel failed: the connection stays a control connection; parse what was buffered meanwhile. */
  abortSwitch(): void {
    this.isSwitching = false;
    this.drain();
  }

  /** The socket stops speaking JSON lines: the bytes after the switching request's line go to its new owner. */
  private handOver(): Buffer {
    this.isRaw = true;
    this.isSwitching = false;
    this.socket.removeListener('data', this.onData);
    return this.splitter.takeRest();
  }

  /** datagram_channel succeeded: answer, then this socket carries binary datagram frames (datagram-frames.ts). */
  switchToDatagramChannel(id: RequestId, sock: DatagramSocket): void {
    const key = this.resourceKey(id);
    this.addResource(id, () => sock.close());
    this.respond(id, ok({ port: sock.port, socket: key, max_payload_bytes: MAX_CHANNEL_PAYLOAD_BYTES }));
    bridgeDatagrams(this.socket, sock, this.handOver(), this.hasClientEnded);
  }

  /** stream_channel: answer, then this socket carries many streams in frames (stream-frames.ts). */
  switchToStreamChannel(id: RequestId): void {
    this.respond(id, ok({ window_bytes: STREAM_WINDOW_BYTES }));
    bridgeStreamChannel(this.socket, { api: this.state.api, listeners: this.state.listeners, logger: this.state.logger }, this.handOver(), this.hasClientEnded);
  }
}

// --- handlers -------------------------------------------------------------------------------------------

/** A plain request/response method: validate params, call the api, answer. */
function simple(fn: (api: NodeApi, p: ParamReader) => Promise<Result<unknown>> | null): Handler {
  return async (conn, id, params) => {
    const p = new ParamReader(params);
    const call = fn(conn.api, p);
    if (p.error || call === null) {
      conn.respond(id, { ok: false, error: p.error ?? pilotError('invalid_argument', 'bad params') });
      return;
    }
    conn.respond(id, await call);
  };
}

function invalid(p: ParamReader): PilotError {
  return p.error ?? pilotError('invalid_argument', 'bad params');
}

const U32 = 0xffffffff;

function noWebhooks(): Result<never> {
  return err('invalid_argument', 'this node has no webhooks', { hint: 'update pilot-daemon' });
}
const MAX_TIMEOUT_MS = 24 * 3600 * 1000;

const HANDLERS: Record<string, Handler> = {
  // The client's first request on every connection: prove the node key on its nonce before it sends anything.
  auth: async (conn, id, params) => {
    conn.respond(id, conn.server.prover.answer(params));
  },
  info: simple((api) => api.info()),
  set_hostname: simple((api, p) => {
    const hostname = p.str('hostname');
    return p.error ? null : api.setHostname(hostname);
  }),
  clear_hostname: simple((api) => api.clearHostname()),
  set_visibility: simple((api, p) => {
    const isPublic = p.bool('public', false);
    return p.error ? null : api.setVisibility(isPublic);
  }),
  set_tags: simple((api, p) => {
    const tags = p.strList('tags');
    return p.error ? null : api.setTags(tags);
  }),
  find: simple((api, p) => {
    const q = p.str('query');
    return p.error ? null : api.find(q);
  }),
  handshake: simple((api, p) => {
    const peer = p.str('peer');
    const justification = p.optStr('justification') ?? '';
    return p.error ? null : api.handshake(peer, justification);
  }),
  pending: simple((api) => api.pending()),
  approve: simple((api, p) => {
    const nodeId = p.int('node_id', 0, U32);
    return p.error ? null : api.approve(nodeId);
  }),
  reject: simple((api, p) => {
    const nodeId = p.int('node_id', 0, U32);
    const reason = p.optStr('reason');
    return p.error ? null : api.reject(nodeId, reason);
  }),
  trusted: simple((api) => api.trusted()),
  untrust: simple((api, p) => {
    const nodeId = p.int('node_id', 0, U32);
    return p.error ? null : api.untrust(nodeId);
  }),
  // Issue 14 (src/node/key-rotation.ts).
  rotate_key: simple((api, p) => {
    const recoveryKey = p.optStr('recovery_key');
    if (p.error) return null;
    if (!api.rotateKey) return Promise.resolve(err('invalid_argument', 'this node cannot rotate its key'));
    return api.rotateKey(recoveryKey !== undefined ? { recoveryKey } : {});
  }),
  network: simple((api, p) => {
    const op = p.str('op');
    const params: Record<string, unknown> = { op };
    for (const k of ['name', 'peer', 'token', 'join_rule', 'new_name', 'policy'] as const) {
      const v = p.optStr(k);
      if (v !== undefined) params[k] = v;
    }
    if (op === 'broadcast') {
      params.data = p.bytes('data');
      if (p.optStr('datagram') === 'true') params.datagram = true;
      const port = p.optInt('port', 1, 65535);
      if (port !== undefined) params.port = port;
    }
    if (op === 'tag') params.tags = (p.optStr('tags') ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '');
    return p.error ? null : api.network(params as unknown as Parameters<NodeApi['network']>[0]);
  }),
  send_message: simple((api, p) => {
    const peer = p.str('peer');
    const data = p.bytes('data');
    const type = p.optStr('type') ?? 'text';
    if (!['text', 'json', 'binary', 'file'].includes(type) && !p.error) {
      p.error = pilotError('invalid_argument', `unknown message type '${type}' (text, json or binary)`);
    }
    const replyTo = p.optStr('reply_to');
    return p.error ? null : api.sendMessage(peer, data, type as 'text', replyTo !== undefined ? { replyTo } : {});
  }),
  inbox: simple((api, p) => {
    const clear = p.bool('clear', false);
    // Always one bounded page, so any inbox fits in response lines; clients follow next_since (next_before).
    const limit = Math.min(p.optInt('limit', 1, U32) ?? INBOX_PAGE_MAX_MESSAGES, INBOX_PAGE_MAX_MESSAGES);
    const since = p.optStr('since');
    const before = p.optStr('before');
    const latest = p.bool('latest', false);
    const from = p.optStr('from');
    const id = p.optStr('id');
    const replyTo = p.optStr('reply_to');
    const q = { clear, limit, since, before, latest, maxBytes: INBOX_PAGE_MAX_BYTES, ...(from !== undefined ? { from } : {}), ...(id !== undefined ? { id } : {}), ...(replyTo !== undefined ? { replyTo } : {}) };
    return p.error ? null : api.inbox(q);
  }),
  // issue 14 (msgs): the reply to a message, waited for in the daemon (call-style; answers when it lands).
  inbox_wait: async (conn, id, params) => {
    const p = new ParamReader(params);
    const replyTo = p.str('reply_to');
    const timeoutMs = p.int('timeout_ms', 1, MAX_TIMEOUT_MS);
    const from = p.optStr('from');
    const since = p.optStr('since');
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    // A client that goes away (pilotctl interrupted) ends its wait; nobody is left to answer.
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    conn.socket.once('close', onClose);
    const r = await conn.api.waitMessage({ replyTo, timeoutMs, signal: gone.signal, ...(from !== undefined ? { from } : {}), ...(since !== undefined ? { since } : {}) });
    conn.socket.removeListener('close', onClose);
    conn.respond(id, r);
  },
  register: simple((api, p) => {
    const listenAddr = p.optStr('listen_addr');
    return p.error ? null : api.register(listenAddr !== undefined ? { listenAddr } : {});
  }),
  deregister: simple((api) => api.deregister()),
  lookup: simple((api, p) => {
    const nodeId = p.int('node_id', 0, U32);
    return p.error ? null : api.lookup(nodeId);
  }),
  received: simple((api, p) => {
    const clear = p.bool('clear', false);
    const limit = p.optInt('limit', 0, U32);
    const since = p.optStr('since');
    return p.error ? null : api.received({ clear, limit, since });
  }),
  publish: simple((api, p) => {
    const peer = p.str('peer');
    const topic = p.str('topic');
    const data = p.bytes('data');
    return p.error ? null : api.publish(peer, topic, data);
  }),
  peers: simple((api) => api.peers()),
  connections: simple((api) => api.connections()),
  disconnect: simple((api, p) => {
    const cid = p.int('id', 0, U32);
    return p.error ? null : api.disconnect(cid);
  }),

  audit: simple((api, p) => {
    const sinceMs = p.optInt('since_ms', 0, Number.MAX_SAFE_INTEGER);
    const limit = p.optInt('limit', 1, 1_000_000);
    if (p.error) return null;
    return api.audit ? api.audit({ sinceMs, limit }) : Promise.resolve(err('not_found', 'this node keeps no audit log'));
  }),
  audit_export: simple((api) => (api.auditExport ? api.auditExport() : Promise.resolve(err('not_found', 'this node keeps no audit log')))),
  set_webhook: simple((api, p) => {
    const url = p.str('url');
    const secret = p.optStr('secret') ?? null;
    const events = p.optStr('events') ?? null;
    if (p.error) return null;
    return api.setWebhook ? api.setWebhook(url, { secret, events }) : Promise.resolve(noWebhooks());
  }),
  clear_webhook: simple((api) => (api.clearWebhook ? api.clearWebhook() : Promise.resolve(noWebhooks()))),
  webhook_status: simple((api) => (api.webhookStatus ? api.webhookStatus() : Promise.resolve(noWebhooks()))),

  shutdown: async (conn, id) => {
    conn.respond(id, ok({ status: 'stopping' }));
    // Answer first: shutdown() tears down this very server.
    setImmediate(() => void conn.api.shutdown());
  },

  close: async (conn, id, params) => {
    const p = new ParamReader(params);
    const target = (params as Record<string, unknown> | undefined)?.target;
    if (typeof target !== 'number' && typeof target !== 'string') {
      conn.respond(id, err('invalid_argument', "param 'target' must be the id of an open-style request"));
      return;
    }
    if (p.error) return conn.respond(id, { ok: false, error: p.error });
    conn.respond(id, ok({ closed: conn.closeResource(target) }));
  },

  send_file: async (conn, id, params) => {
    const p = new ParamReader(params);
    const peer = p.str('peer');
    const path = p.str('path');
    const retryForMs = p.optInt('retry_ms', 0, 7 * 24 * 3600 * 1000);
    const rateBytesPerSec = p.optInt('rate_bps', MIN_RATE_LIMIT_BYTES_PER_SEC, Number.MAX_SAFE_INTEGER);
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    const opts: SendFileOptions = {};
    if (retryForMs !== undefined) opts.retryForMs = retryForMs;
    if (rateBytesPerSec !== undefined) opts.rateBytesPerSec = rateBytesPerSec;
    conn.respond(id, await conn.api.sendFile(peer, path, conn.progressFn(id), opts));
  },

  bench: async (conn, id, params) => {
    const p = new ParamReader(params);
    const peer = p.str('peer');
    const bytes = p.int('bytes', 1, Number.MAX_SAFE_INTEGER);
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    conn.respond(id, await conn.api.bench(peer, bytes, conn.progressFn(id)));
  },

  ping: async (conn, id, params) => {
    const p = new ParamReader(params);
    const peer = p.str('peer');
    const opts: PingOptions = {
      count: p.optInt('count', 1, 1_000_000) ?? 4,
      intervalMs: p.optInt('interval_ms', 0, MAX_TIMEOUT_MS) ?? 1000,
      onResult: (r) => conn.event(id, 'result', r),
    };
    const size = p.optInt('size', 0, 65_000);
    const timeoutMs = p.optInt('timeout_ms', 1, MAX_TIMEOUT_MS);
    if (size !== undefined) opts.size = size;
    if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    conn.respond(id, await conn.api.ping(peer, opts));
  },

  subscribe: async (conn, id, params) => {
    const p = new ParamReader(params);
    const peer = p.str('peer');
    const topic = p.str('topic');
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    // Events can fire before subscribe() resolves; hold them until the response is out.
    let queued: unknown[] | null = [];
    const r = await conn.api.subscribe(peer, topic, (e) => {
      if (queued) queued.push(e);
      else conn.event(id, 'event', e);
    });
    if (!r.ok) return conn.respond(id, r);
    if (!conn.isOpen) {
      r.value.close();
      return;
    }
    conn.addResource(id, () => r.value.close());
    conn.respond(id, ok({ topic, subscribed: true }));
    for (const e of queued) conn.event(id, 'event', e);
    queued = null;
    void r.value.done.then(() => {
      conn.closeResource(id);
      conn.event(id, 'end', {});
    });
  },

  listen: async (conn, id, params) => {
    const p = new ParamReader(params);
    const port = p.int('port', 1, 65535);
    if (p.error) return conn.respond(id, { ok: false, error: invalid(p) });
    const r = conn.api.listen(port);
    if (!r.ok) return conn.respond(id, r);
    const key = conn.resourceKey(id);
    conn.server.listeners.set(key, r.value);
    conn.addResource(id, () => {
      conn.server.listeners.delete(key);
      r.value.close();
    });
    conn.respond(id, ok({ port, listener: key }));
  },

  // The SDK's streams: this connection becomes a stream channel (many streams in frames, stream-frames.ts).
  stream_channel: async (conn, id) => {
    conn.switchToStreamChannel(id);
  },

  // The answer turns this connection into a binary datagram channel for the bound port (protocol.ts).
  datagram_channel: async (conn, id, params) => {
    const p = new ParamReader(params);
    const port = p.int('port', 1, 65535);
    if (p.error) {
      conn.respond(id, { ok: false, error: invalid(p) });
      return conn.abortSwitch();
    }
    const r = conn.api.openDatagramSocket(port);
    if (!r.ok) {
      conn.respond(id, r);
      return conn.abortSwitch();
    }
    if (!conn.isOpen) {
      r.value.close();
      return;
    }
    conn.switchToDatagramChannel(id, r.value);
  },

};
