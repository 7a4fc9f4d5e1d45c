// In-memory NodeApi double for ipc/cli/sdk tests. One node ("self", node 5, hostname test-node) that knows two
// peers. Streams to port 7 echo, port 1000 answers `reply:<request>` after FIN, port 9 resets on first data,
// port 13 sends "hello" and FINs; other ports reach a local listener (loopback) or fail with connection_failed.
import { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { PilotException, pilotError } from '../../../src/core/errors.js';
import { err, ok, type Result } from '../../../src/core/result.js';
import type {
  BenchResult,
  ConnectionEntry,
  Datagram,
  DatagramSocket,
  EventMessage,
  FindResult,
  InboxMessage,
  InboxPageResult,
  InboxQuery,
  MessageType,
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
  SendFileOptions,
  TrustEntry,
} from '../../../src/node/api.js';
import type { PingOptions } from '../../../src/ipc/server.js';
import { dirname } from 'node:path';
import { generateIdentity } from '../../../src/crypto/identity.js';
import type { DaemonTarget } from '../../../src/ipc/client.js';

/** One node key for every test server: servers sharing a directory publish the same identity.pub. */
export const TEST_IDENTITY = generateIdentity();
/** serveIpc's auth options for a test server whose home is `home`. */
export function ipcAuth(home: string): { identity: typeof TEST_IDENTITY; home: string } {
  return { identity: TEST_IDENTITY, home };
}
/** The client target for a test server whose socket lives in its home directory. */
export function daemonAt(socketPath: string): DaemonTarget {
  return { socketPath, home: dirname(socketPath) };
}

export const SELF = { node_id: 5, address: '0:0000.0000.0005', hostname: 'test-node' };
export const PEERS: FindResult[] = [
  { node_id: 7, address: '0:0000.0000.0007', hostname: 'agent-alpha', public: true, tags: ['gpu'], public_key: 'AAAA' },
  { node_id: 9, address: '0:0000.0000.0009', hostname: 'agent-beta', public: false, tags: [], public_key: 'BBBB' },
];

/** One end of an in-memory stream pair. destroy(err) on one side destroys the other with a reset error. */
export class FakeStream extends Duplex implements PilotStream {
  other!: FakeStream;
  constructor(
    readonly remoteAddr: string,
    readonly remoteNodeId: number,
    readonly remotePort: number,
    readonly localPort: number,
  ) {
    super({ allowHalfOpen: true });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.other.destroyed) return cb(new PilotException(pilotError('connection_failed', 'peer gone')));
    this.other.push(chunk);
    cb();
  }
  override _final(cb: (e?: Error | null) => void): void {
    if (!this.other.destroyed) this.other.push(null);
    cb();
  }
  override _read(): void {}
  override _destroy(e: Error | null, cb: (e: Error | null) => void): void {
    // Destroy without finishing both ways = RST to the other side.
    if (!this.other.destroyed && !(this.writableFinished && this.readableEnded)) {
      this.other.destroy(new PilotException(pilotError('connection_failed', 'connection reset by peer')));
    }
    cb(e);
  }
}

export function streamPair(a: { addr: string; node: number; port: number }, b: { addr: string; node: number; port: number }): [FakeStream, FakeStream] {
  const x = new FakeStream(b.addr, b.node, b.port, a.port);
  const y = new FakeStream(a.addr, a.node, a.port, b.port);
  x.other = y;
  y.other = x;
  return [x, y];
}

class FakeListener implements PortListener {
  private queue: PilotStream[] = [];
  private waiters: Array<(s: PilotStream | null) => void> = [];
  isClosed = false;
  constructor(
    readonly port: number,
    private readonly onClose: () => void,
  ) {}
  deliver(s: PilotStream): void {
    const w = this.waiters.shift();
    if (w) w(s);
    else this.queue.push(s);
  }
  accept(): Promise<PilotStream | null> {
    const s = this.queue.shift();
    if (s) return Promise.resolve(s);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((r) => this.waiters.push(r));
  }
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.waiters) w(null);
    this.waiters = [];
    this.onClose();
  }
}

class FakeDatagramSocket implements DatagramSocket {
  private queue: Datagram[] = [];
  private waiters: Array<(d: Datagram | null) => void> = [];
  isClosed = false;
  readonly dropped = 0;
  constructor(
    readonly port: number,
    private readonly node: FakeNode,
  ) {}
  async send(to: PeerRef, port: number, data: Uint8Array): Promise<Result<void>> {
    return this.node.deliverDatagram(to, port, { from: SELF.address, fromNodeId: SELF.node_id, fromPort: this.port, port, data });
  }
  deliver(d: Datagram): void {
    const w = this.waiters.shift();
    if (w) w(d);
    else this.queue.push(d);
  }
  tryRecv(): Datagram | null {
    return this.queue.shift() ?? null;
  }
  recv(timeoutMs?: number): Promise<Datagram | null> {
    const d = this.queue.shift();
    if (d) return Promise.resolve(d);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const w = (x: Datagram | null): void => {
        clearTimeout(t);
        resolve(x);
      };
      const t = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.waiters = this.waiters.filter((y) => y !== w);
        resolve(null);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.waiters) w(null);
    this.waiters = [];
    this.node.datagramSockets.delete(this.port);
  }
}

export class FakeNode implements NodeApi {
  hostname: string | null = SELF.hostname;
  isPublic = false;
  tags: string[] = [];
  pendingList: PendingRequest[] = [
    { node_id: 9, address: PEERS[1]!.address, hostname: 'agent-beta', justification: 'wants to chat', received_at: '2025-01-01T00:00:00.000Z' },
  ];
  trustedList: TrustEntry[] = [
    { node_id: 7, address: PEERS[0]!.address, hostname: 'agent-alpha', mutual: true, approved_at: '2025-01-01T00:00:00.000Z' },
  ];
  inboxList: InboxMessage[] = [];
  receivedList: ReceivedFile[] = [];
  readonly listeners = new Map<number, FakeListener>();
  readonly datagramSockets = new Map<number, FakeDatagramSocket>();
  readonly subscribers = new Set<{ topic: string; onEvent: (e: EventMessage) => void }>();
  readonly serverStreams: FakeStream[] = [];
  readonly calls: string[] = [];
  isShutdown = false;
  onShutdown: () => void = () => {};

  private resolve(peer: PeerRef): FindResult | null {
    if (peer === SELF.hostname || peer === String(SELF.node_id) || peer === SELF.address) {
      return { ...SELF, public: this.isPublic, tags: this.tags, public_key: 'SELF' };
    }
    return PEERS.find((p) => p.hostname === peer || String(p.node_id) === peer || p.address === peer) ?? null;
  }

  async info(): Promise<Result<NodeInfo>> {
    this.calls.push('info');
    return ok({
      ...SELF,
      hostname: this.hostname,
      public_key: 'SELF',
      public: this.isPublic,
      tags: this.tags,
      registry: '127.0.0.1:9000',
      registry_connected: true,
      listen: '0.0.0.0:4000',
      public_endpoint: null,
      nat_type: null,
      uptime_s: 3725,
      peers: 2,
      connections: 1,
      datapath: 'dgram',
      registered: true,
      registry_state: 'registered',
      registry_reason: 'registered as node 5 at 127.0.0.1:9000',
      registry_error: null,
      beacon: '127.0.0.1:9001',
      nat_reason: 'not classified yet',
      datapath_reason: 'node:dgram (fake)',
      transport: 'udp',
      transport_mode: 'auto',
      transport_reason: 'auto: UDP to the beacon answers',
      compat: '127.0.0.1:443',
      proxy: null,
      transport_error: null,
      version: '0.1.0-test',
    });
  }
  async setHostname(hostname: string): Promise<Result<{ hostname: string }>> {
    if (hostname === 'agent-alpha') return err('already_exists', 'hostname agent-alpha is taken');
    this.hostname = hostname;
    return ok({ hostname });
  }
  async clearHostname(): Promise<Result<{ hostname: null }>> {
    this.hostname = null;
    return ok({ hostname: null });
  }
  async setVisibility(isPublic: boolean): Promise<Result<{ public: boolean }>> {
    this.isPublic = isPublic;
    return ok({ public: isPublic });
  }
  async setTags(tags: string[]): Promise<Result<{ tags: string[] }>> {
    this.tags = tags;
    return ok({ tags });
  }
  async find(query: PeerRef): Promise<Result<FindResult>> {
    const p = this.resolve(query);
    return p ? ok(p) : err('not_found', `no node '${query}'`);
  }
  async handshake(peer: PeerRef, justification: string): Promise<Result<{ node_id: number; status: string }>> {
    this.calls.push(`handshake:${peer}:${justification}`);
    const p = this.resolve(peer);
    if (!p) return err('not_found', `no node '${peer}'`);
    return ok({ node_id: p.node_id, status: this.trustedList.some((t) => t.node_id === p.node_id) ? 'already_trusted' : 'sent' });
  }
  async pending(): Promise<Result<{ pending: PendingRequest[] }>> {
    return ok({ pending: this.pendingList });
  }
  async approve(nodeId: number): Promise<Result<{ node_id: number; status: 'approved' }>> {
    const i = this.pendingList.findIndex((p) => p.node_id === nodeId);
    if (i < 0) return err('not_found', `no pending request from node ${nodeId}`);
    const [p] = this.pendingList.splice(i, 1);
    this.trustedList.push({ node_id: nodeId, address: p!.address, hostname: p!.hostname, mutual: true, approved_at: new Date().toISOString() });
    return ok({ node_id: nodeId, status: 'approved' });
  }
  async reject(nodeId: number, reason?: string): Promise<Result<{ node_id: number; status: 'rejected' }>> {
    this.calls.push(`reject:${nodeId}:${reason ?? ''}`);
    const i = this.pendingList.findIndex((p) => p.node_id === nodeId);
    if (i < 0) return err('not_found', `no pending request from node ${nodeId}`);
    this.pendingList.splice(i, 1);
    return ok({ node_id: nodeId, status: 'rejected' });
  }
  async trusted(): Promise<Result<{ trusted: TrustEntry[] }>> {
    return ok({ trusted: this.trustedList });
  }
  async untrust(nodeId: number): Promise<Result<{ node_id: number; status: 'untrusted' }>> {
    const i = this.trustedList.findIndex((t) => t.node_id === nodeId);
    if (i < 0) return err('not_found', `node ${nodeId} is not trusted`);
    this.trustedList.splice(i, 1);
    return ok({ node_id: nodeId, status: 'untrusted' });
  }

  async dial(peer: PeerRef, port: number): Promise<Result<PilotStream>> {
    this.calls.push(`dial:${peer}:${port}`);
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    const [client, server] = streamPair({ addr: SELF.address, node: SELF.node_id, port: 49152 }, { addr: p.address, node: p.node_id, port });
    this.serverStreams.push(server);
    server.on('error', () => {});
    if (p.node_id === SELF.node_id) {
      const l = this.listeners.get(port);
      if (!l) return err('connection_failed', `nothing listens on port ${port}`);
      l.deliver(server);
      return ok(client);
    }
    switch (port) {
      case 7:
        server.on('data', (b: Buffer) => server.write(b));
        server.on('end', () => server.end());
        break;
      case 1000: {
        const chunks: Buffer[] = [];
        server.on('data', (b: Buffer) => chunks.push(b));
        server.on('end', () => server.end('reply:' + Buffer.concat(chunks).toString()));
        break;
      }
      case 9:
        server.once('data', () => server.destroy());
        break;
      case 13:
        server.end('hello');
        server.resume();
        break;
      default:
        return err('connection_failed', `${p.address} port ${port}: connection refused`);
    }
    return ok(client);
  }

  listen(port: number): Result<PortListener> {
    if (this.listeners.has(port)) return err('already_exists', `port ${port} is already bound`);
    const l = new FakeListener(port, () => this.listeners.delete(port));
    this.listeners.set(port, l);
    return ok(l);
  }
  openDatagramSocket(port: number): Result<DatagramSocket> {
    if (this.datagramSockets.has(port)) return err('already_exists', `port ${port} is already bound`);
    const s = new FakeDatagramSocket(port, this);
    this.datagramSockets.set(port, s);
    return ok(s);
  }
  /** Datagrams to self reach our own socket on that port; peers swallow them. */
  async deliverDatagram(to: PeerRef, port: number, d: Datagram): Promise<Result<void>> {
    const p = this.resolve(to);
    if (!p) return err('not_found', `cannot resolve '${to}'`);
    if (p.node_id === SELF.node_id) this.datagramSockets.get(port)?.deliver(d);
    return ok();
  }

  async sendMessage(peer: PeerRef, data: Uint8Array, type: MessageType): Promise<Result<{ bytes: number; ack: boolean }>> {
    if (this.sendError) return { ok: false, error: this.sendError };
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    this.inboxList.push({
      id: String(this.inboxList.length + 1),
      from: SELF.address,
      from_hostname: SELF.hostname,
      type,
      data: type === 'binary' ? Buffer.from(data).toString('base64') : Buffer.from(data).toString('utf8'),
      size: data.length,
      received_at: '2025-01-01T00:00:00.000Z',
    });
    return ok({ bytes: data.length, ack: true });
  }
  /** Paged like the daemon: `since` is the index of the last message seen; calls are recorded in inboxCalls. */
  async inbox(opts: InboxQuery = {}): Promise<Result<InboxPageResult>> {
    this.inboxCalls.push({ ...opts });
    if (opts.clear) {
      const n = this.inboxList.length;
      this.inboxList = [];
      return ok({ messages: [], cleared: n });
    }
    const from = opts.since === undefined ? 0 : Number(opts.since) + 1;
    const page = this.inboxList.slice(from, from + (opts.limit ?? Infinity));
    const last = from + page.length - 1;
    return ok({ messages: page, next_since: page.length ? String(last) : null, has_more: last + 1 < this.inboxList.length });
  }
  inboxCalls: InboxQuery[] = [];
  /** When set, sendMessage/sendFile fail with it (e.g. quota_exceeded from the receiver). */
  sendError: ReturnType<typeof pilotError> | null = null;
  /** The options of the last sendFile call (what came over IPC). */
  lastSendFileOpts: SendFileOptions | undefined;
  async sendFile(peer: PeerRef, path: string, progress?: ProgressFn, opts?: SendFileOptions): Promise<Result<{ bytes: number; sha256: string; name: string }>> {
    this.lastSendFileOpts = opts;
    if (this.sendError) return { ok: false, error: this.sendError };
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      return err('not_found', `file not found: ${path}`);
    }
    const step = Math.max(1, Math.ceil(data.length / 4));
    for (let done = 0; done < data.length; done += step) progress?.(done, data.length);
    progress?.(data.length, data.length);
    const sha256 = createHash('sha256').update(data).digest('hex');
    this.receivedList.push({ name: basename(path), path: `/tmp/received/${basename(path)}`, size: data.length, from: SELF.address, sha256, received_at: '2025-01-01T00:00:00.000Z' });
    return ok({ bytes: data.length, sha256, name: basename(path) });
  }
  async received(opts: { clear?: boolean } = {}): Promise<Result<{ files: ReceivedFile[]; cleared?: number }>> {
    if (opts.clear) {
      const n = this.receivedList.length;
      this.receivedList = [];
      return ok({ files: [], cleared: n });
    }
    return ok({ files: this.receivedList });
  }
  async publish(peer: PeerRef, topic: string, data: Uint8Array): Promise<Result<{ topic: string; bytes: number }>> {
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    for (const s of this.subscribers) {
      if (s.topic === topic || s.topic === '*') s.onEvent({ topic, data: Buffer.from(data).toString('utf8'), from: SELF.address, received_at: '2025-01-01T00:00:00.000Z' });
    }
    return ok({ topic, bytes: data.length });
  }
  async subscribe(peer: PeerRef, topic: string, onEvent: (e: EventMessage) => void): Promise<Result<{ close(): void; done: Promise<void> }>> {
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    const sub = { topic, onEvent };
    this.subscribers.add(sub);
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    return ok({
      close: () => {
        this.subscribers.delete(sub);
        resolveDone();
      },
      done,
    });
  }
  async ping(peer: PeerRef, opts: PingOptions): Promise<Result<{ results: PingResult[] }>> {
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    if (p.node_id === 9) return err('connection_failed', 'agent-beta does not answer');
    const results: PingResult[] = [];
    for (let seq = 0; seq < opts.count; seq++) {
      const r = { seq, bytes: 6, rtt_ms: 0.5 + seq / 10 };
      results.push(r);
      opts.onResult?.(r);
      if (seq < opts.count - 1) await new Promise((res) => setTimeout(res, Math.min(opts.intervalMs, 20)));
    }
    return ok({ results });
  }
  async bench(peer: PeerRef, bytes: number, progress?: ProgressFn): Promise<Result<BenchResult>> {
    const p = this.resolve(peer);
    if (!p) return err('not_found', `cannot resolve '${peer}'`);
    progress?.(0, bytes);
    progress?.(bytes, bytes);
    return ok({ bytes, duration_ms: 100, send_mbps: bytes / 1024 / 1024 / 0.1, throughput_mbps: bytes / 1024 / 1024 / 0.1 });
  }
  // issue 14 (msgs): reply waits and the registry admin commands.
  async waitMessage(q: { replyTo: string; from?: string; timeoutMs: number }): Promise<Result<{ message: InboxMessage }>> {
    const m = this.inboxList.find((x) => x.reply_to === q.replyTo);
    return m ? ok({ message: m }) : err('timeout', `no reply to ${q.replyTo} within ${q.timeoutMs} ms`);
  }
  async register(opts: { listenAddr?: string } = {}): Promise<Result<{ node_id: number; address: string; public_key: string; hostname: string | null; listen_addr: string }>> {
    return ok({ node_id: SELF.node_id, address: SELF.address, public_key: 'SELF', hostname: this.hostname, listen_addr: opts.listenAddr ?? '127.0.0.1:4000' });
  }
  async deregister(): Promise<Result<{ node_id: number; status: 'deregistered' }>> {
    return ok({ node_id: SELF.node_id, status: 'deregistered' });
  }
  async lookup(nodeId: number): Promise<Result<{ node_id: number; address: string; public_key: string; public: boolean; polo_score: number; task_exec: boolean }>> {
    const p = this.resolve(String(nodeId));
    return p ? ok({ node_id: p.node_id, address: p.address, public_key: p.public_key, public: p.public, polo_score: 0, task_exec: false }) : err('not_found', `node ${nodeId} not found`);
  }
  async peers(): Promise<Result<{ peers: PeerEntry[] }>> {
    return ok({
      peers: PEERS.map((p) => ({ node_id: p.node_id, address: p.address, hostname: p.hostname, endpoint: '127.0.0.1:4001', path: 'direct', encrypted: true, suite: 'noise', trusted: p.node_id === 7, last_seen_ms: 10, rtt_ms: 0.7, transport: 'udp' })),
    });
  }
  async connections(): Promise<Result<{ connections: ConnectionEntry[] }>> {
    return ok({
      connections: [{ id: 1, peer: PEERS[0]!.address, peer_node_id: 7, local_port: 49152, remote_port: 7, state: 'ESTABLISHED', cwnd_bytes: 65536, srtt_ms: 0.8, bytes_in_flight: 1200, bytes_sent: 5000, bytes_received: 4000, retransmits: 0, packets_sent: 5, packets_received: 4 }],
    });
  }
  /** Networks: the fake knows none (the real ones are tested in test/integration/networks.test.ts). */
  async network(params: { op: string; name?: string }): Promise<Result<unknown>> {
    if (params.op === 'list') return ok({ networks: [{ network_id: 0, name: 'backbone', join_rule: 'open', members: 1, role: 'member', invited: false, address: null }] });
    return err('not_found', `network "${params.name ?? ''}" not found`);
  }

  async disconnect(connectionId: number): Promise<Result<{ id: number }>> {
    if (connectionId !== 1) return err('not_found', `no connection ${connectionId}`);
    return ok({ id: 1 });
  }
  async shutdown(): Promise<void> {
    this.isShutdown = true;
    this.onShutdown();
  }
}
