// PilotClient: the NodeApi of a running daemon, over its control socket. pilotctl is built on it, so agents
// get exactly what the CLI gets.
import { resolve as resolvePath } from 'node:path';
import { pilotError, type PilotError } from '../core/errors.js';
import { err, errFrom, ok, type Result } from '../core/result.js';
import { connectIpc, openDatagramChannel, openStreamChannelSocket, type DaemonTarget, type IpcConnection } from '../ipc/client.js';
import { IpcDatagramChannel } from '../ipc/datagram-channel.js';
import { bench as echoBench } from '../services/echo.js';
import type { IpcMethod, RequestId } from '../ipc/protocol.js';
import { resolveDaemonTarget } from '../ipc/paths.js';
import type { PingOptions } from '../ipc/server.js';
import { StreamChannel } from '../ipc/stream-channel.js';
import type {
  AuditExport,
  AuditPage,
  BenchResult,
  ConnectionEntry,
  Datagram,
  DatagramSocket,
  EventMessage,
  FindResult,
  InboxMessage,
  InboxPageResult,
  InboxQuery,
  LookupEntry,
  MessageType,
  RegisterResult,
  SendMessageResult,
  SendFileOptions,
  WaitMessageQuery,
  NodeApi,
  NodeInfo,
  PeerEntry,
  PeerRef,
  PendingRequest,
  PilotStream,
  PingResult,
  PortListener,
  ProgressFn,
  ReceivedFile,
  ReceivedPageResult,
  ReceivedQuery,
  SendFileResult,
  TrustEntry,
  WebhookStatus,
  KeyRotationInfo,
} from '../node/api.js';

export interface PilotClientOptions {
  /** Control socket path; default PILOT_SOCKET, else `<home>/pilot.sock`. */
  socketPath?: string | undefined;
  /** Daemon home; default PILOT_HOME, else ~/.pilot. The daemon must prove the node key published there. */
  home?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export type { PingOptions };

function b64(data: Uint8Array | string): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('base64');
}

export class PilotClient implements NodeApi {
  private conn: IpcConnection | null;

  private constructor(
    readonly target: DaemonTarget,
    conn: IpcConnection,
  ) {
    this.conn = conn;
  }

  get socketPath(): string {
    return this.target.socketPath;
  }

  /**
   * Connect to a running daemon, verified (src/ipc/client.ts) before anything is sent. No daemon → `not_running`
   * (hint: `pilotctl daemon start`); something else on the socket → `daemon_unverified`.
   */
  static async connect(opts: PilotClientOptions = {}): Promise<Result<PilotClient>> {
    const target = resolveDaemonTarget({ socketPath: opts.socketPath, home: opts.home }, opts.env ?? process.env);
    const c = await connectIpc(target);
    if (!c.ok) return c;
    return ok(new PilotClient(target, c.value));
  }

  /** The shared control connection, reopened (and verified again) if the daemon restarted since. */
  private async control(): Promise<Result<IpcConnection>> {
    if (this.conn && !this.conn.isClosed) return ok(this.conn);
    const c = await connectIpc(this.target);
    if (!c.ok) return c;
    this.conn = c.value;
    return c;
  }

  private async call<T>(method: IpcMethod, params: Record<string, unknown> = {}, onEvent?: (event: string, data: unknown) => void): Promise<Result<T>> {
    const c = await this.control();
    if (!c.ok) return c;
    return c.value.call<T>(method, params, onEvent);
  }

  /** Close the control connection. Listeners and subscriptions opened through it close too; open streams run on until they finish. */
  close(): void {
    this.closeCount++;
    this.conn?.close();
    this.conn = null;
    this.channel?.close(); // its open streams live on until they finish
    this.channel = null;
  }

  /** A stream channel that was opening when close() came is closed as it arrives (later calls open a new one). */
  private closeCount = 0;

  info(): Promise<Result<NodeInfo>> {
    return this.call('info');
  }
  setHostname(hostname: string): Promise<Result<{ hostname: string }>> {
    return this.call('set_hostname', { hostname });
  }
  clearHostname(): Promise<Result<{ hostname: null }>> {
    return this.call('clear_hostname');
  }
  setVisibility(isPublic: boolean): Promise<Result<{ public: boolean }>> {
    return this.call('set_visibility', { public: isPublic });
  }
  setTags(tags: string[]): Promise<Result<{ tags: string[] }>> {
    return this.call('set_tags', { tags });
  }
  find(query: PeerRef): Promise<Result<FindResult>> {
    return this.call('find', { query });
  }

  handshake(peer: PeerRef, justification: string): Promise<Result<{ node_id: number; status: string }>> {
    return this.call('handshake', { peer, justification });
  }
  pending(): Promise<Result<{ pending: PendingRequest[] }>> {
    return this.call('pending');
  }
  approve(nodeId: number): Promise<Result<{ node_id: number; status: 'approved' }>> {
    return this.call('approve', { node_id: nodeId });
  }
  reject(nodeId: number, reason?: string): Promise<Result<{ node_id: number; status: 'rejected' }>> {
    return this.call('reject', reason === undefined ? { node_id: nodeId } : { node_id: nodeId, reason });
  }
  trusted(): Promise<Result<{ trusted: TrustEntry[] }>> {
    return this.call('trusted');
  }
  untrust(nodeId: number): Promise<Result<{ node_id: number; status: 'untrusted' }>> {
    return this.call('untrust', { node_id: nodeId });
  }

  /** Issue 14: rotate the daemon's identity key (with `recoveryKey`: signed by the recovery key). */
  rotateKey(opts: { recoveryKey?: string } = {}): Promise<Result<KeyRotationInfo>> {
    return this.call('rotate_key', opts.recoveryKey !== undefined ? { recovery_key: opts.recoveryKey } : {});
  }

  /** Open a stream to `peer:port`. The returned Duplex goes through the daemon: end() = FIN, destroy() = RST. */
  async dial(peer: PeerRef, port: number, opts: { timeoutMs?: number } = {}): Promise<Result<PilotStream>> {
    const params: Record<string, unknown> = { peer, port };
    if (opts.timeoutMs !== undefined) params.timeout_ms = Math.max(1, Math.round(opts.timeoutMs));
    const r = await this.openStream('dial', params);
    if (!r.ok) return r;
    if (r.value === null) return err('internal', 'daemon answered dial without a stream');
    return ok(r.value);
  }

  /**
   * @internal dial/accept on this client's stream channel (src/ipc/stream-channel.ts): one connection carries all
   * its streams, opened on first use and again if the daemon restarted since.
   */
  async openStream(method: 'dial' | 'accept', params: Record<string, unknown>): Promise<Result<PilotStream | null>> {
    const ch = await this.streamChannel();
    if (!ch.ok) return ch;
    return ch.value.open(method, params);
  }

  private channel: StreamChannel | null = null;
  private channelOpening: Promise<Result<StreamChannel>> | null = null;

  private streamChannel(): Promise<Result<StreamChannel>> {
    if (this.channel?.isUsable) return Promise.resolve(ok(this.channel));
    if (this.channelOpening === null) {
      const closeCount = this.closeCount;
      this.channelOpening = openStreamChannelSocket(this.target).then((r) => {
        this.channelOpening = null;
        if (!r.ok) return r;
        const ch = new StreamChannel(r.value.socket, r.value.windowBytes, r.value.rest);
        if (this.closeCount !== closeCount) ch.close();
        else this.channel = ch;
        return ok(ch);
      });
    }
    return this.channelOpening;
  }

  /**
   * Bind a port for inbound streams. NodeApi's listen is synchronous, so registration finishes in the background:
   * a failure (port taken) makes accept() resolve null with `listener.error` set. Use listenAsync to see it at once.
   */
  listen(port: number): Result<PortListener> {
    return ok(new ClientListener(this, port));
  }

  async listenAsync(port: number): Promise<Result<PortListener>> {
    const l = new ClientListener(this, port);
    const r = await l.ready;
    return r.ok ? ok(l) : r;
  }

  /** Same background registration as listen(); see openDatagramSocketAsync. */
  openDatagramSocket(port: number): Result<DatagramSocket> {
    return ok(new ClientDatagramSocket(this, port));
  }

  async openDatagramSocketAsync(port: number): Promise<Result<DatagramSocket>> {
    const s = new ClientDatagramSocket(this, port);
    const r = await s.ready;
    return r.ok ? ok(s) : r;
  }

  /** `opts.replyTo`: the id of the message this answers. The result's `id` is what a reply to this one names. */
  sendMessage(peer: PeerRef, data: Uint8Array | string, type: MessageType, opts: { replyTo?: string } = {}): Promise<Result<SendMessageResult>> {
    return this.call('send_message', { peer, data: b64(data), type, ...(opts.replyTo !== undefined ? { reply_to: opts.replyTo } : {}) });
  }
  /** Wait (in the daemon) for the reply to a message: the first inbox message with reply_to = q.replyTo. Errors: timeout. */
  waitMessage(q: WaitMessageQuery): Promise<Result<{ message: InboxMessage }>> {
    return this.call('inbox_wait', {
      reply_to: q.replyTo,
      timeout_ms: Math.max(1, Math.round(q.timeoutMs)),
      ...(q.from !== undefined ? { from: q.from } : {}),
      ...(q.since !== undefined ? { since: q.since } : {}),
    });
  }
  register(opts: { listenAddr?: string } = {}): Promise<Result<RegisterResult>> {
    return this.call('register', opts.listenAddr !== undefined ? { listen_addr: opts.listenAddr } : {});
  }
  deregister(): Promise<Result<{ node_id: number; status: 'deregistered' }>> {
    return this.call('deregister');
  }
  lookup(nodeId: number): Promise<Result<LookupEntry>> {
    return this.call('lookup', { node_id: nodeId });
  }
  /** Custom networks (issue 15): `op` is create, list, join, leave, members, invite, invites, accept, reject, delete, rename, promote, demote, kick, role or broadcast. */
  network(params: { op: string; name?: string; peer?: PeerRef; token?: string; join_rule?: string; new_name?: string; policy?: string; data?: Uint8Array | string; /** tag: the member's tags (a list, or comma-separated) */ tags?: string[] | string; /** broadcast: datagrams to this port */ datagram?: boolean; port?: number }): Promise<Result<unknown>> {
    const { data, tags, datagram, ...rest } = params;
    const wire: Record<string, unknown> = { ...rest };
    if (datagram) wire.datagram = 'true';
    if (tags !== undefined) wire.tags = Array.isArray(tags) ? tags.join(',') : tags;
    if (data !== undefined) wire.data = b64(data);
    return this.call('network', wire);
  }
  /**
   * Inbox messages, oldest first: all of them, or at most `limit` after `since` (a previous `next_since`, or
   * an RFC 3339 time). The daemon answers in bounded pages; this follows them. `has_more`/`next_since` tell
   * where to go on. With `clear`: deletes every message and returns `cleared`.
   */
  async inbox(opts: Omit<InboxQuery, 'maxBytes'> = {}): Promise<Result<InboxPageResult & { next_since: string | null; has_more: boolean }>> {
    if (opts.clear === true) {
      const c = await this.call<InboxPageResult>('inbox', { clear: true });
      return c.ok ? ok({ ...c.value, next_since: null, has_more: false }) : c;
    }
    const want = opts.limit ?? Infinity;
    const messages: InboxMessage[] = [];
    // Oldest-first pages go on after next_since, --latest pages before next_before.
    const isLatest = opts.latest === true;
    let since = opts.since ?? null;
    let before = opts.before ?? null;
    let hasMore = true;
    while (hasMore && messages.length < want) {
      const params: Record<string, unknown> = {};
      if (Number.isFinite(want)) params.limit = want - messages.length;
      if (since !== null) params.since = since;
      if (before !== null) params.before = before;
      if (isLatest) params.latest = true;
      if (opts.from !== undefined) params.from = opts.from;
      if (opts.id !== undefined) params.id = opts.id;
      if (opts.replyTo !== undefined) params.reply_to = opts.replyTo;
      const page = await this.call<InboxPageResult>('inbox', params);
      if (!page.ok) return page;
      messages.push(...page.value.messages);
      // A daemon without paging sends everything at once and neither field. A filtered page may be empty and
      // still have more (it stopped after looking at many files): go on from its cursor.
      const cursor = isLatest ? (page.value.next_before ?? null) : (page.value.next_since ?? null);
      hasMore = page.value.has_more === true && cursor !== null;
      if (isLatest) before = cursor ?? before;
      else since = cursor ?? since;
    }
    return ok({ messages, next_since: isLatest ? null : since, next_before: isLatest ? before : null, has_more: hasMore });
  }
  /** `path` is resolved against this process's cwd: the daemon reads the file itself. */
  sendFile(peer: PeerRef, path: string, progress?: ProgressFn, opts: SendFileOptions = {}): Promise<Result<SendFileResult>> {
    const params: Record<string, unknown> = { peer, path: resolvePath(path) };
    if (opts.retryForMs !== undefined && opts.retryForMs > 0) params.retry_ms = opts.retryForMs;
    if (opts.rateBytesPerSec !== undefined) params.rate_bps = opts.rateBytesPerSec;
    return this.call('send_file', params, progressHandler(progress));
  }
  received(opts: ReceivedQuery = {}): Promise<Result<ReceivedPageResult>> {
    const params: Record<string, unknown> = { clear: opts.clear === true };
    if (opts.limit !== undefined) params.limit = opts.limit;
    if (opts.since !== undefined) params.since = opts.since;
    return this.call('received', params);
  }
  publish(peer: PeerRef, topic: string, data: Uint8Array | string): Promise<Result<{ topic: string; bytes: number }>> {
    return this.call('publish', { peer, topic, data: b64(data) });
  }

  async subscribe(
    peer: PeerRef,
    topic: string,
    onEvent: (e: EventMessage) => void,
  ): Promise<Result<{ close(): void; done: Promise<void> }>> {
    const c = await this.control();
    if (!c.ok) return c;
    const conn = c.value;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const r = await conn.open('subscribe', { peer, topic }, (event, data) => {
      if (event === 'event') onEvent(data as EventMessage);
      else if (event === 'end') resolveDone();
    });
    if (!r.ok) return r;
    const id = r.value.id;
    return ok({
      close: () => {
        void conn.closeStream(id);
        resolveDone();
      },
      done,
    });
  }

  /** `opts.onResult` is called per reply when the daemon streams results (it may only answer at the end). */
  ping(peer: PeerRef, opts: PingOptions): Promise<Result<{ results: PingResult[] }>> {
    const params: Record<string, unknown> = { peer, count: opts.count, interval_ms: opts.intervalMs };
    if (opts.size !== undefined) params.size = opts.size;
    if (opts.timeoutMs !== undefined) params.timeout_ms = Math.max(1, Math.round(opts.timeoutMs));
    const onResult = opts.onResult;
    return this.call('ping', params, onResult ? (event, data) => event === 'result' && onResult(data as PingResult) : undefined);
  }

  /**
   * Throughput through the peer's echo port, streamed from this process over the IPC stream (the path this
   * client's own streams take; `pilotctl bench` uses it). The daemon's `bench` IPC method (inside the daemon)
   * stays for other clients.
   */
  bench(peer: PeerRef, bytes: number, progress?: ProgressFn, opts: { timeoutMs?: number } = {}): Promise<Result<BenchResult>> {
    return echoBench(this, peer, bytes, progress, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  }

  peers(): Promise<Result<{ peers: PeerEntry[] }>> {
    return this.call('peers');
  }
  connections(): Promise<Result<{ connections: ConnectionEntry[] }>> {
    return this.call('connections');
  }
  disconnect(connectionId: number): Promise<Result<{ id: number }>> {
    return this.call('disconnect', { id: connectionId });
  }

  /** The daemon's audit log (issue 15): records oldest first, at or after `sinceMs`, the newest `limit`. */
  audit(q: { sinceMs?: number; limit?: number } = {}): Promise<Result<AuditPage>> {
    return this.call('audit', { ...(q.sinceMs !== undefined ? { since_ms: q.sinceMs } : {}), ...(q.limit !== undefined ? { limit: q.limit } : {}) });
  }
  /** The whole audit log as a signed export (JSON lines); `pilotctl audit verify` checks it offline. */
  auditExport(): Promise<Result<AuditExport>> {
    return this.call('audit_export');
  }
  /** The webhook the daemon posts its events to (docs/webhooks.md). Errors: invalid_argument, internal. */
  setWebhook(url: string, opts: { secret?: string | null; events?: string[] | string | null } = {}): Promise<Result<WebhookStatus>> {
    const events = Array.isArray(opts.events) ? opts.events.join(',') : opts.events;
    return this.call('set_webhook', { url, ...(opts.secret ? { secret: opts.secret } : {}), ...(events ? { events } : {}) });
  }
  clearWebhook(): Promise<Result<{ cleared: boolean; dropped: number }>> {
    return this.call('clear_webhook');
  }
  webhookStatus(): Promise<Result<WebhookStatus>> {
    return this.call('webhook_status');
  }

  /** Ask the daemon to stop (it answers before it goes). */
  async shutdown(): Promise<void> {
    await this.call('shutdown');
    this.close();
  }

  // --- used by ClientListener / ClientDatagramSocket ---
  /** @internal */
  async openResource<T>(method: IpcMethod, params: Record<string, unknown>, onEvent: (event: string, data: unknown) => void): Promise<Result<{ id: RequestId; result: T; conn: IpcConnection }>> {
    const c = await this.control();
    if (!c.ok) return c;
    const r = await c.value.open<T>(method, params, onEvent);
    if (!r.ok) return r;
    return ok({ ...r.value, conn: c.value });
  }
  /** @internal */
  rawCall<T>(method: IpcMethod, params: Record<string, unknown>): Promise<Result<T>> {
    return this.call<T>(method, params);
  }
}

function progressHandler(progress: ProgressFn | undefined): ((event: string, data: unknown) => void) | undefined {
  if (!progress) return undefined;
  return (event, data) => {
    if (event !== 'progress') return;
    const d = data as { bytes_done: number; bytes_total: number };
    progress(d.bytes_done, d.bytes_total);
  };
}

class ClientListener implements PortListener {
  readonly ready: Promise<Result<void>>;
  /** Why registration failed or the listener ended, if it did. */
  error: PilotError | null = null;
  private key: string | null = null;
  private id: RequestId | null = null;
  private conn: IpcConnection | null = null;
  private isClosed = false;

  constructor(
    private readonly client: PilotClient,
    readonly port: number,
  ) {
    this.ready = this.register();
  }

  private async register(): Promise<Result<void>> {
    const r = await this.client.openResource<{ listener: string }>('listen', { port: this.port }, (event) => {
      if (event === 'end') this.isClosed = true;
    });
    if (!r.ok) {
      this.error = r.error;
      this.isClosed = true;
      return r;
    }
    this.key = r.value.result.listener;
    this.id = r.value.id;
    this.conn = r.value.conn;
    this.conn.onClose(() => (this.isClosed = true));
    if (this.isClosed) void this.conn.closeStream(this.id); // close() raced the registration
    return ok();
  }

  async accept(): Promise<PilotStream | null> {
    const r = await this.ready;
    if (!r.ok || this.isClosed || this.key === null) return null;
    const s = await this.client.openStream('accept', { listener: this.key });
    if (!s.ok) {
      if (!this.isClosed) this.error = s.error;
      return null;
    }
    return s.value;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.conn && this.id !== null) void this.conn.closeStream(this.id);
  }
}

/**
 * A datagram socket over its own binary channel to the daemon (src/ipc/datagram-channel.ts: frames batched per
 * write and per read; send() semantics there). Registration runs in the background like ClientListener's.
 */
class ClientDatagramSocket implements DatagramSocket {
  readonly ready: Promise<Result<void>>;
  error: PilotError | null = null;
  private channel: IpcDatagramChannel | null = null;
  private isClosed = false;

  constructor(
    private readonly client: PilotClient,
    readonly port: number,
  ) {
    this.ready = this.register();
  }

  private async register(): Promise<Result<void>> {
    const r = await openDatagramChannel(this.client.target, this.port);
    if (!r.ok) {
      this.error = r.error;
      this.isClosed = true;
      return r;
    }
    this.channel = new IpcDatagramChannel(r.value.socket, this.port, r.value.rest);
    if (this.isClosed) this.channel.close(); // close() raced the registration
    return ok();
  }

  /** Fire-and-forget sends the daemon reported as failed, and the last such failure (see datagram-channel.ts). */
  get sendErrors(): number {
    return this.channel?.sendErrors ?? 0;
  }
  get lastSendError(): PilotError | null {
    return this.channel?.lastSendError ?? null;
  }
  /** Dropped by this process's receive queue (the daemon's own queue drops count in info().datagrams). */
  get dropped(): number {
    return this.channel?.dropped ?? 0;
  }

  send(to: PeerRef, port: number, data: Uint8Array): Promise<Result<void>> {
    // The hot path stays synchronous up to the channel: no await per datagram once registered.
    if (this.channel !== null) return this.channel.send(to, port, data);
    return this.ready.then((r) => {
      if (!r.ok) return r;
      if (this.channel === null) return errFrom(pilotError('connection_failed', 'datagram socket closed'));
      return this.channel.send(to, port, data);
    });
  }

  recv(timeoutMs?: number): Promise<Datagram | null> {
    // Not async: once registered, the channel's promise is returned as it is (an async wrapper cost two more
    // promises and microtask hops per datagram, 7 % of the receiving SDK's profile in a 64 B flood).
    if (this.channel !== null) return this.channel.recv(timeoutMs);
    return this.ready.then((r) => (!r.ok || this.channel === null ? null : this.channel.recv(timeoutMs)));
  }

  tryRecv(): Datagram | null {
    return this.channel?.tryRecv() ?? null;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.channel?.close();
  }
}
