// An in-process node: the daemon core plus the built-in services, as one NodeApi. `pilot-daemon` serves it over
// IPC; agents that want no separate daemon use it directly (`createNode`).
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import { MIN_RATE_LIMIT_BYTES_PER_SEC } from '../node/api.js';
import { silentLogger } from '../core/logger.js';
import { Daemon } from '../node/node.js';
import type { NodeEnv } from '../node/env.js';
import type { NodeEvent } from '../node/events.js';
import { parseAddr } from '../wire/address.js';
import type { InboxEntryMeta } from '../services/inbox.js';
import type { StoredReceivedFile } from '../services/received-files.js';
import type { NetworkOpParams } from '../node/networks/network-ops.js';
import { parseDaemonArgs, type DaemonOptions } from '../node/daemon-options.js';
import type { NodeApi, PeerRef, MessageType, ProgressFn, EventMessage, PingResult, InboxQuery, KeyRotationInfo, ReceivedQuery, SendFileOptions, WaitMessageQuery } from '../node/api.js';
import type { Identity } from '../crypto/identity.js';
import { parseRecoveryKey } from '../node/identity-store.js';
import {
  startServices,
  ping as pingPeer,
  bench as benchPeer,
  sendMessage as sendMessageTo,
  sendFile as sendFileTo,
  publish as publishTo,
  subscribe as subscribeTo,
  Inbox,
  ReceivedFiles,
  inboxLimitsOf,
  receivedLimitsOf,
  type RunningServices,
} from '../services/index.js';

export type NodeOptions = Partial<DaemonOptions> & { logger?: Logger };

/**
 * Starts a node in this process; `env` is the world it runs in (default: the process's — src/node/env.ts).
 * Errors: invalid_argument (options, identity file), internal (state files).
 */
export async function createNode(options: NodeOptions = {}, env?: NodeEnv): Promise<Result<LocalNode>> {
  const base = parseDaemonArgs([], { ...process.env, PILOT_HOME: options.home ?? process.env.PILOT_HOME ?? join(homedir(), '.pilot') });
  if (!base.ok) return base;
  const opts: DaemonOptions = { ...base.value, ...stripUndefined(options) };
  if (options.home && !options.identity) opts.identity = join(options.home, 'identity.json');
  const logger = options.logger ?? silentLogger();
  const d = await Daemon.start(opts, logger, env);
  if (!d.ok) return d;
  const events = d.value.events;
  const inbox = new Inbox(d.value.paths.inbox, { logger, quota: inboxLimitsOf(opts.quotas), onStored: (m) => events.emit(messageReceived(m)) });
  const received = new ReceivedFiles(d.value.paths.received, { logger, quota: receivedLimitsOf(opts.quotas), onStored: (f) => events.emit(fileReceived(f)) });
  const s = startServices(d.value, {
    echo: opts.echo,
    dataExchange: opts.dataExchange,
    eventStream: opts.eventStream,
    logger,
    inbox,
    received,
  });
  if (!s.ok) {
    await d.value.shutdown();
    return s;
  }
  return ok(new LocalNode(d.value, s.value));
}

/** The node event for a stored message (src/node/events.ts). */
function messageReceived(m: InboxEntryMeta): NodeEvent {
  const replyTo = (m as { reply_to?: unknown }).reply_to;
  return {
    type: 'message.received',
    data: { id: m.id, from: nodeIdOf(m.from), from_address: m.from, type: m.type, size: m.size, ...(typeof replyTo === 'string' ? { reply_to: replyTo } : {}) },
  };
}

function fileReceived(f: StoredReceivedFile): NodeEvent {
  return { type: 'file.received', data: { name: f.name, from: nodeIdOf(f.from), size: f.size, sha256: f.sha256, path: f.path } };
}

function nodeIdOf(address: string): number {
  const a = parseAddr(address);
  return a.ok ? a.value.node : 0;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'logger')) as Partial<T>;
}

export class LocalNode implements NodeApi {
  constructor(
    readonly daemon: Daemon,
    private readonly services: RunningServices,
  ) {}

  info = () => this.daemon.info();
  setHostname = (h: string) => this.daemon.setHostname(h);
  clearHostname = () => this.daemon.clearHostname();
  setVisibility = (p: boolean) => this.daemon.setVisibility(p);
  setTags = (t: string[]) => this.daemon.setTags(t);
  find = (q: PeerRef) => this.daemon.find(q);
  handshake = (p: PeerRef, j: string) => this.daemon.handshake(p, j);
  pending = () => this.daemon.pending();
  approve = (id: number) => this.daemon.approve(id);
  reject = (id: number, reason?: string) => this.daemon.reject(id, reason);
  trusted = () => this.daemon.trusted();
  untrust = (id: number) => this.daemon.untrust(id);
  rotateKey = async (opts: { recoveryKey?: string } = {}): Promise<Result<KeyRotationInfo>> => {
    let recovery: Identity | undefined;
    if (opts.recoveryKey !== undefined) {
      const r = parseRecoveryKey(opts.recoveryKey);
      if (!r.ok) return r;
      recovery = r.value;
    }
    const r = await this.daemon.rotateKey(recovery ? { recovery } : {});
    if (!r.ok) return r;
    const { node_id, old_public_key, new_public_key, by, identity_file } = r.value;
    return ok({ node_id, old_public_key, new_public_key, by, identity_file });
  };
  dial = (p: PeerRef, port: number, o?: { timeoutMs?: number }) => this.daemon.dial(p, port, o);
  listen = (port: number) => this.daemon.listen(port);
  openDatagramSocket = (port: number) => this.daemon.openDatagramSocket(port);
  peers = () => this.daemon.peers();
  connections = () => this.daemon.connections();
  disconnect = (id: number) => this.daemon.disconnect(id);
  audit = async (q?: { sinceMs?: number; limit?: number }) => this.daemon.auditList(q);
  auditExport = async () => this.daemon.auditExport();
  register = (o?: { listenAddr?: string }) => this.daemon.register(o);
  deregister = () => this.daemon.deregister();
  lookup = (nodeId: number) => this.daemon.lookup(nodeId);

  async sendMessage(peer: PeerRef, data: Uint8Array, type: MessageType, opts: { replyTo?: string } = {}) {
    return sendMessageTo(this.daemon, peer, data, type, opts.replyTo !== undefined ? { replyTo: opts.replyTo } : {});
  }

  async waitMessage(q: WaitMessageQuery) {
    const from = q.from === undefined ? undefined : await this.fromAddress(q.from);
    const r = await this.services.inbox.waitFor({ replyTo: q.replyTo, ...(from !== undefined ? { from } : {}), ...(q.since !== undefined ? { since: q.since } : {}) }, q.timeoutMs, q.signal);
    return r.ok ? ok({ message: r.value }) : r;
  }

  /** A peer ref as the inbox's `from` compares it: the address when it resolves, else the text (a hostname). */
  private async fromAddress(ref: string): Promise<string> {
    if (/^\d/.test(ref)) return ref;
    const id = await this.daemon.resolveRef(ref);
    return id.ok ? this.daemon.addressOf(id.value) : ref;
  }

  /** Networks; broadcast sends each member one message over the data-exchange service. */
  network = (p: NetworkOpParams) =>
    this.daemon.network(p, async (nodeId, data) => {
      const r = await sendMessageTo(this.daemon, String(nodeId), data, 'text');
      return r.ok ? ok({ bytes: r.value.bytes, ack: r.value.ack }) : r;
    });

  async inbox(opts: InboxQuery = {}) {
    // --clear answers with the count only: echoing a full inbox back made the reply too large for IPC.
    if (opts.clear) {
      const c = await this.services.inbox.clear();
      return c.ok ? ok({ messages: [], cleared: c.value.cleared }) : c;
    }
    const from = opts.from === undefined ? undefined : await this.fromAddress(opts.from);
    const p = await this.services.inbox.page({
      limit: opts.limit,
      maxBytes: opts.maxBytes,
      since: opts.since,
      before: opts.before,
      isLatest: opts.latest === true,
      ...(from !== undefined ? { from } : {}),
      ...(opts.id !== undefined ? { id: opts.id } : {}),
      ...(opts.replyTo !== undefined ? { replyTo: opts.replyTo } : {}),
    });
    return p;
  }

  async sendFile(peer: PeerRef, path: string, progress?: ProgressFn, opts: SendFileOptions = {}) {
    if (opts.rateBytesPerSec !== undefined && !(Number.isSafeInteger(opts.rateBytesPerSec) && opts.rateBytesPerSec >= MIN_RATE_LIMIT_BYTES_PER_SEC)) {
      return err('invalid_argument', `rateBytesPerSec ${opts.rateBytesPerSec}: at least ${MIN_RATE_LIMIT_BYTES_PER_SEC} bytes per second`, { hint: 'leave it out for no cap' });
    }
    return sendFileTo(this.daemon, peer, path, progress, { retryForMs: opts.retryForMs ?? 0, rateBytesPerSec: opts.rateBytesPerSec });
  }

  async received(opts: ReceivedQuery = {}) {
    if (opts.clear) {
      const c = await this.services.received.clear();
      return c.ok ? ok({ files: [], cleared: c.value.cleared }) : c;
    }
    return this.services.received.page({ limit: opts.limit, since: opts.since });
  }

  async publish(peer: PeerRef, topic: string, data: Uint8Array) {
    return publishTo(this.daemon, peer, topic, data);
  }

  async subscribe(peer: PeerRef, topic: string, onEvent: (e: EventMessage) => void) {
    return subscribeTo(this.daemon, peer, topic, onEvent);
  }

  async ping(peer: PeerRef, opts: { count: number; intervalMs: number; size?: number; timeoutMs?: number; onResult?: (r: PingResult) => void }) {
    return pingPeer(this.daemon, peer, opts);
  }

  async bench(peer: PeerRef, bytes: number, progress?: ProgressFn) {
    return benchPeer(this.daemon, peer, bytes, progress);
  }

  setWebhook = (url: string, o?: { secret?: string | null; events?: string[] | string | null }) => this.daemon.setWebhook(url, o);
  clearWebhook = () => this.daemon.clearWebhook();
  webhookStatus = () => this.daemon.webhookStatus();

  async shutdown(reason?: string): Promise<void> {
    await this.services.stop();
    await this.daemon.shutdown(reason);
  }
}

