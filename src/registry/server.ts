// Registry server: the original's TCP protocol (pkg/registry/server.go; facts in ../shared/interop) with its
// message types, reply shapes and signature challenges, plus our extensions for our own nodes:
//   - push: `subscribe_push` makes the server write `push_handshake_request`, `push_handshake_response` and
//     `push_trust_revoked` frames on that connection the moment they happen (the original polls every 30 s);
//   - replay-safe signatures: requests carrying `ts` + `nonce` are verified over `<challenge>:<ts>:<nonce>`,
//     rejected when |now - ts| > window or the nonce was seen; set_hostname then also covers the hostname;
//   - errors add a stable `code` next to the original's `error` text;
//   - resolve_ok / punch_ok add the beacon-observed endpoint (`observed_addr`) when known.
// Behaviour differences (security), invisible to original daemons' normal flows:
//   - trust is directed: resolve/punch of a private node needs the *target* to trust the requester
//     (report_trust by the target, or its accept of the requester's handshake). The original's single pair
//     can be created by either side alone, which lets any node resolve any private node;
//   - lookup of a private node by an unidentified requester omits hostname and tags (the original hands them
//     to anyone); the public key stays because original daemons verify tunnel auth with it. A lookup carrying
//     requester_id + signature of a trusted requester (or the node itself) gets everything;
//   - owner-based reclaim (a new key taking over a node id by naming its owner) is not honoured: the owner
//     string is unauthenticated. A known public key still re-gets its node id;
//   - a new key cannot be rotated onto another node's key.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';
import type { ErrorCode } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import {
  RegistryFrameDecoder,
  REGISTRY_MAX_FRAME_BYTES,
  challenge,
  encodeRegistryFrame,
  fieldBool,
  fieldString,
  fieldU32,
  registryAddressText,
  withFreshness,
  type RegistryMessage,
} from '../wire/registry-frame.js';
import { decodeBase64Strict, decodePublicKey, verifyChallenge } from './signature.js';
import {
  applyChange,
  trustEdge,
  type Change,
  type HandshakeRequestRecord,
  type NodeRecord,
  type RegistryState,
} from './state.js';
import type { RegistryStore } from './store.js';

export interface RegistryServerOptions {
  host: string;
  port: number;
  store: RegistryStore;
  logger: Logger;
  /** Beacon-observed endpoints, when the beacon runs in the same process. */
  observedEndpoint?: (nodeId: number) => string | null;
  /** Wall clock in ms (tests inject one); used for ts checks, timestamps, staleness. */
  nowMs?: () => number;
  /** Accepted |now - ts| for replay-safe signatures. */
  freshnessWindowSec?: number;
  /** Refuse original-style (replayable) signatures. Off by default: original daemons need them. */
  requireFreshSignatures?: boolean;
  maxFrameBytes?: number;
  /** New-key registrations per source IP per minute (original: 10). Loopback is exempt. 0 = unlimited. */
  registrationsPerMinutePerIp?: number;
  /** Nodes without a heartbeat for this long are removed (original: 3 min). */
  staleNodeMs?: number;
  /** Idle connections are closed after this (original: 5 min read deadline). */
  idleTimeoutMs?: number;
  maxConnections?: number;
}

type Reply = Record<string, unknown>;
interface Outcome {
  reply: Reply;
  /** Runs after the changes are durable and the reply is written (pushes). */
  after?: () => void;
}

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAG_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const RESERVED_HOSTNAMES = new Set(['localhost', 'backbone', 'broadcast']);
const MAX_INBOX = 100; // original maxHandshakeInbox
const MAX_JUSTIFICATION_BYTES = 4096;
const MAX_QUEUED_REQUESTS = 64;
const MAX_UNREAD_OUTPUT_BYTES = 4 * 1024 * 1024;
const NONCE_MIN_BYTES = 8;
const NONCE_MAX_BYTES = 64;

class ClientConn {
  readonly decoder: RegistryFrameDecoder;
  readonly queue: RegistryMessage[] = [];
  isBusy = false;
  isClosed = false;
  subscribedNodeId: number | null = null;
  constructor(
    readonly sock: net.Socket,
    readonly remoteIp: string,
    readonly remotePort: number,
    maxFrameBytes: number,
  ) {
    this.decoder = new RegistryFrameDecoder(maxFrameBytes);
  }
}

export class RegistryServer {
  private readonly conns = new Set<ClientConn>();
  private readonly subscribers = new Map<number, ClientConn>();
  private readonly lastSeenMs = new Map<number, number>();
  private readonly nonces = new Map<string, number>(); // `${nodeId}:${nonce}` → expiry ms
  private readonly registrations = new Map<string, { tokens: number; lastMs: number }>();
  private readonly beacons = new Map<number, { addr: string; seenMs: number }>();
  private timer: NodeJS.Timeout | null = null;
  private readonly nowMs: () => number;
  readonly stats = { requests: 0, errors: 0, pushes: 0, closedForBadFrames: 0 };

  private constructor(
    private readonly server: net.Server,
    private readonly state: RegistryState,
    private readonly opts: RegistryServerOptions,
  ) {
    this.nowMs = opts.nowMs ?? Date.now;
  }

  /** Load the store and listen. internal on a store failure, connection_failed on a bind failure. */
  static async start(opts: RegistryServerOptions): Promise<Result<RegistryServer>> {
    const loaded = await opts.store.load();
    if (!loaded.ok) return loaded;
    const server = net.createServer();
    server.maxConnections = opts.maxConnections ?? 10_000;
    const bound = await new Promise<Result<void>>((resolve) => {
      const onError = (e: Error) =>
        resolve(err('connection_failed', `registry cannot listen on ${opts.host}:${opts.port}: ${e.message}`, { cause: e }));
      server.once('error', onError);
      server.listen(opts.port, opts.host, () => {
        server.off('error', onError);
        resolve(ok());
      });
    });
    if (!bound.ok) return bound;
    const rs = new RegistryServer(server, loaded.value, opts);
    // Loaded nodes get a fresh grace period: the registry, not the nodes, was away.
    const now = rs.nowMs();
    for (const id of loaded.value.nodes.keys()) rs.lastSeenMs.set(id, now);
    server.on('connection', (sock) => rs.accept(sock));
    server.on('error', (e) => opts.logger.error({ err: e }, 'registry listener error'));
    rs.timer = setInterval(() => void rs.housekeeping(), 30_000);
    rs.timer.unref();
    opts.logger.info({ addr: server.address(), nodes: loaded.value.nodes.size }, 'registry listening');
    return ok(rs);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stop accepting, drop connections, flush the store. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const c of this.conns) c.sock.destroy();
    });
    // Let in-flight commits finish before the store closes.
    for (let i = 0; i < 200 && [...this.conns].some((c) => c.isBusy); i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await this.opts.store.close();
  }

  /** Read-only view for tests and tools. */
  get currentState(): Readonly<RegistryState> {
    return this.state;
  }

  // ---- connections ----

  private accept(sock: net.Socket): void {
    const remoteIp = normaliseIp(sock.remoteAddress ?? '');
    const conn = new ClientConn(sock, remoteIp, sock.remotePort ?? 0, this.opts.maxFrameBytes ?? REGISTRY_MAX_FRAME_BYTES);
    this.conns.add(conn);
    sock.setNoDelay(true);
    sock.setTimeout(this.opts.idleTimeoutMs ?? 5 * 60_000, () => sock.destroy());
    sock.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      conn.isClosed = true;
      this.conns.delete(conn);
      if (conn.subscribedNodeId !== null && this.subscribers.get(conn.subscribedNodeId) === conn) {
        this.subscribers.delete(conn.subscribedNodeId);
      }
    });
  }

  private onData(conn: ClientConn, chunk: Buffer): void {
    const msgs = conn.decoder.push(chunk);
    if (!msgs.ok) {
      // Framing is lost for this client only; the original closes the connection too.
      this.stats.closedForBadFrames++;
      this.opts.logger.debug({ remote: conn.remoteIp, err: msgs.error.message }, 'registry: bad frame, closing');
      conn.sock.destroy();
      return;
    }
    conn.queue.push(...msgs.value);
    if (conn.queue.length > MAX_QUEUED_REQUESTS) conn.sock.pause();
    if (!conn.isBusy) void this.drain(conn);
  }

  /** One request at a time per connection: replies go out in request order, as the original's. */
  private async drain(conn: ClientConn): Promise<void> {
    conn.isBusy = true;
    try {
      while (conn.queue.length > 0 && !conn.isClosed) {
        const msg = conn.queue.shift()!;
        const tx: Change[] = [];
        let outcome: Outcome;
        try {
          outcome = this.handle(msg, conn, tx);
        } catch (e) {
          // A bug, not the client's fault: answer like any failure and keep serving.
          this.opts.logger.error({ err: e, type: msg.type }, 'registry handler threw');
          outcome = { reply: errorReply('internal', 'request failed') };
        }
        if (tx.length > 0) {
          const committed = await this.opts.store.commit(tx);
          if (!committed.ok) outcome = { reply: errorReply('internal', 'request failed: store unavailable') };
        }
        this.stats.requests++;
        if (outcome.reply.type === 'error') this.stats.errors++;
        this.write(conn, outcome.reply);
        outcome.after?.();
        if (conn.queue.length <= MAX_QUEUED_REQUESTS / 2) conn.sock.resume();
      }
    } finally {
      conn.isBusy = false;
    }
  }

  private write(conn: ClientConn, msg: Reply): void {
    if (conn.isClosed) return;
    const frame = encodeRegistryFrame(sortKeysDeep(msg) as Reply);
    if (!frame.ok) return;
    if (conn.sock.writableLength > MAX_UNREAD_OUTPUT_BYTES) {
      conn.sock.destroy(); // a client that never reads must not grow our memory
      return;
    }
    conn.sock.write(frame.value);
  }

  private push(nodeId: number, msg: Reply): void {
    const conn = this.subscribers.get(nodeId);
    if (!conn || conn.isClosed) return;
    this.stats.pushes++;
    this.write(conn, msg);
  }

  private put(tx: Change[], c: Change): void {
    applyChange(this.state, c);
    tx.push(c);
  }

  // ---- dispatch ----

  private handle(msg: RegistryMessage, conn: ClientConn, tx: Change[]): Outcome {
    const type = fieldString(msg, 'type');
    switch (type) {
      case 'register':
        return this.register(msg, conn, tx);
      case 'lookup':
        return this.lookup(msg);
      case 'resolve':
        return this.resolve(msg);
      case 'resolve_hostname':
        return this.resolveHostname(msg);
      case 'set_hostname':
        return this.setHostname(msg, tx);
      case 'set_tags':
        return this.setTags(msg, tx);
      case 'set_visibility':
        return this.setVisibility(msg, tx);
      case 'set_task_exec':
        return this.setTaskExec(msg, tx);
      case 'heartbeat':
        return this.heartbeat(msg);
      case 'deregister':
        return this.deregister(msg, tx);
      case 'report_trust':
        return this.reportTrust(msg, tx);
      case 'revoke_trust':
        return this.revokeTrust(msg, tx);
      case 'request_handshake':
        return this.requestHandshake(msg, tx);
      case 'poll_handshakes':
        return this.pollHandshakes(msg, tx);
      case 'respond_handshake':
        return this.respondHandshake(msg, tx);
      case 'punch':
        return this.punch(msg);
      case 'rotate_key':
        return this.rotateKey(msg, tx);
      case 'update_polo_score':
      case 'set_polo_score':
        return this.poloScore(msg, tx, type === 'set_polo_score');
      case 'get_polo_score':
        return this.getPoloScore(msg);
      case 'list_networks':
        return {
          reply: {
            type: 'list_networks_ok',
            networks: [{ id: 0, name: 'backbone', members: this.state.nodes.size, join_rule: 'open' }],
          },
        };
      case 'list_nodes':
        if (fieldU32(msg, 'network_id') === 0) {
          return fail('invalid_argument', 'listing backbone nodes is not permitted (use lookup with a specific node_id)');
        }
        return fail('not_found', `network ${fieldU32(msg, 'network_id')} not found`);
      case 'create_network':
      case 'join_network':
      case 'leave_network':
        return fail('invalid_argument', 'custom networks are WIP — only backbone (network 0) is available');
      case 'beacon_register':
        return this.beaconRegister(msg);
      case 'beacon_list':
        return this.beaconList();
      case 'subscribe_push':
        return this.subscribePush(msg, conn);
      case 'subscribe_replication':
        return fail('invalid_argument', 'replication not configured');
      default:
        return fail('invalid_argument', `unknown message type: ${JSON.stringify(type).slice(0, 80)}`);
    }
  }

  // ---- authentication ----

  /**
   * Verify a node's signature the original's way (`challenge` as is) or, when the request carries ts and
   * nonce, over `<boundChallenge ?? challenge>:<ts>:<nonce>` with freshness and replay checks.
   */
  private authenticate(
    node: NodeRecord,
    msg: RegistryMessage,
    base: string,
    opts: { boundChallenge?: string; requireFresh?: boolean } = {},
  ): Outcome | null {
    const sig = fieldString(msg, 'signature');
    if (!sig) return fail('invalid_argument', 'signature required for authenticated node');
    const publicKey = decodePublicKey(node.publicKey);
    if (!publicKey) return fail('internal', 'node has no usable public key');
    const hasTs = msg.ts !== undefined;
    const hasNonce = msg.nonce !== undefined;
    if (!hasTs && !hasNonce) {
      if (opts.requireFresh || this.opts.requireFreshSignatures) {
        return fail('invalid_argument', 'this request needs ts and nonce (replay-safe signature)');
      }
      if (!verifyChallenge(publicKey, base, sig)) return fail('invalid_argument', 'signature verification failed');
      return null;
    }
    const ts = msg.ts;
    const nonce = fieldString(msg, 'nonce');
    if (typeof ts !== 'number' || !Number.isInteger(ts)) return fail('invalid_argument', 'ts must be unix seconds');
    const nonceBytes = decodeBase64Strict(nonce);
    if (!nonceBytes || nonceBytes.length < NONCE_MIN_BYTES || nonceBytes.length > NONCE_MAX_BYTES) {
      return fail('invalid_argument', `nonce must be base64 of ${NONCE_MIN_BYTES}..${NONCE_MAX_BYTES} bytes`);
    }
    const nowMs = this.nowMs();
    const windowSec = this.opts.freshnessWindowSec ?? 60;
    if (Math.abs(nowMs / 1000 - ts) > windowSec) {
      return fail('invalid_argument', `stale request: ts is more than ${windowSec} s from server time`, {
        server_time: Math.floor(nowMs / 1000),
      });
    }
    const nonceKey = `${node.id}:${nonce}`;
    if (this.nonces.has(nonceKey)) return fail('invalid_argument', 'replayed request (nonce already used)');
    if (!verifyChallenge(publicKey, withFreshness(opts.boundChallenge ?? base, ts, nonce), sig)) {
      return fail('invalid_argument', 'signature verification failed');
    }
    // Kept for two windows: a ts anywhere inside ±window stays refused until it can no longer pass the ts check.
    this.nonces.set(nonceKey, nowMs + 2 * windowSec * 1000);
    return null;
  }

  private nodeOr(id: number): NodeRecord | Outcome {
    const n = this.state.nodes.get(id);
    return n ?? fail('not_found', `node ${id} not found`);
  }

  /** May `requesterId` see `target`'s endpoint? Public nodes: yes; private: the target must trust it. */
  private mayResolve(requesterId: number, target: NodeRecord): boolean {
    return target.isPublic || requesterId === target.id || this.state.trust.has(trustEdge(target.id, requesterId));
  }

  // ---- handlers ----

  private register(msg: RegistryMessage, conn: ClientConn, tx: Change[]): Outcome {
    const pubKeyB64 = fieldString(msg, 'public_key');
    if (!pubKeyB64) return fail('invalid_argument', 'registration requires public_key');
    if (!decodePublicKey(pubKeyB64)) return fail('invalid_argument', 'invalid public key');
    const knownId = this.state.pubKeyIndex.get(pubKeyB64);
    if (knownId === undefined && !this.allowRegistration(conn.remoteIp)) {
      return fail('invalid_argument', `rate limited: too many registrations from ${conn.remoteIp}`);
    }
    const listenAddr = sanitizeListenAddr(conn.remoteIp, conn.remotePort, fieldString(msg, 'listen_addr'));
    const lanAddr = privateListenAddr(fieldString(msg, 'listen_addr'));
    const owner = fieldString(msg, 'owner');
    const hostname = fieldString(msg, 'hostname');
    const hostnameProblem = hostname ? validateHostname(hostname) : null;

    let id: number;
    let base: NodeRecord;
    const existing = knownId !== undefined ? this.state.nodes.get(knownId) : undefined;
    if (knownId !== undefined && existing) {
      id = knownId;
      base = { ...existing, realAddr: listenAddr, owner: existing.owner || owner };
      if (lanAddr) base.lanAddr = lanAddr;
      else delete base.lanAddr;
    } else {
      if (knownId !== undefined) id = knownId; // deregistered or reaped: same id, fresh record
      else {
        id = this.state.nextNodeId;
        if (id > 0xffffffff - 1) return fail('internal', 'node id space exhausted');
        this.put(tx, { k: 'next', v: id + 1 });
        this.put(tx, { k: 'pubkey', key: pubKeyB64, id });
      }
      base = {
        id,
        publicKey: pubKeyB64,
        owner,
        realAddr: listenAddr,
        ...(lanAddr ? { lanAddr } : {}),
        isPublic: false,
        hostname: '',
        tags: [],
        poloScore: 0,
        taskExec: false,
      };
    }
    const reply: Reply = {
      type: 'register_ok',
      node_id: id,
      network_id: 0,
      address: registryAddressText(id),
      public_key: pubKeyB64,
    };
    if (hostname && !hostnameProblem) {
      const holder = this.state.hostnameIndex.get(hostname);
      if (holder === undefined || holder === id) {
        base = { ...base, hostname };
        reply.hostname = hostname;
      }
    } else if (hostnameProblem) {
      reply.hostname_error = hostnameProblem;
    }
    const changed = !existing || JSON.stringify(existing) !== JSON.stringify(base);
    if (changed) this.put(tx, { k: 'node', id, v: base });
    this.lastSeenMs.set(id, this.nowMs());
    this.opts.logger.debug({ nodeId: id, listenAddr, mode: existing ? 'existing' : knownId ? 'reclaimed' : 'new' }, 'registered node');
    return { reply };
  }

  private allowRegistration(ip: string): boolean {
    const perMinute = this.opts.registrationsPerMinutePerIp ?? 10;
    if (perMinute <= 0 || isLoopback(ip)) return true;
    const now = this.nowMs();
    let b = this.registrations.get(ip);
    if (!b) {
      this.registrations.set(ip, { tokens: perMinute - 1, lastMs: now });
      return true;
    }
    b.tokens = Math.min(perMinute, b.tokens + ((now - b.lastMs) / 60_000) * perMinute);
    b.lastMs = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  private lookup(msg: RegistryMessage): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    let isPrivileged = node.isPublic;
    if (msg.requester_id !== undefined) {
      // Extension: an identified lookup; a bad signature is an error, not a silent downgrade.
      const requesterId = fieldU32(msg, 'requester_id');
      const requester = this.nodeOr(requesterId);
      if (!isNode(requester)) return requester;
      const denied = this.authenticate(requester, msg, challenge.lookup(requesterId, id));
      if (denied) return denied;
      isPrivileged ||= this.mayResolve(requesterId, node);
    }
    const reply: Reply = {
      type: 'lookup_ok',
      node_id: node.id,
      address: registryAddressText(node.id),
      networks: [0],
      public_key: node.publicKey,
      public: node.isPublic,
      polo_score: node.poloScore,
    };
    if (isPrivileged) {
      if (node.hostname) reply.hostname = node.hostname;
      if (node.tags.length > 0) reply.tags = node.tags;
    }
    if (node.taskExec) reply.task_exec = true;
    if (node.isPublic) reply.real_addr = node.realAddr;
    return { reply };
  }

  private resolve(msg: RegistryMessage): Outcome {
    const targetId = fieldU32(msg, 'node_id');
    const requesterId = fieldU32(msg, 'requester_id');
    const requester = this.state.nodes.get(requesterId);
    if (!requester) return fail('not_found', `resolve denied: requester node ${requesterId} is not registered`);
    const denied = this.authenticate(requester, msg, challenge.resolve(requesterId, targetId));
    if (denied) return denied;
    const target = this.nodeOr(targetId);
    if (!isNode(target)) return target;
    if (!this.mayResolve(requesterId, target)) {
      return fail('connection_failed', `resolve denied: node ${targetId} is private (establish mutual trust first)`);
    }
    const reply: Reply = { type: 'resolve_ok', node_id: target.id, real_addr: target.realAddr };
    // Our extension: the LAN address a node claimed, for peers behind the same NAT (the LAN shortcut).
    if (target.lanAddr) reply.lan_addr = target.lanAddr;
    const observed = this.opts.observedEndpoint?.(target.id);
    if (observed) reply.observed_addr = observed;
    return { reply };
  }

  private resolveHostname(msg: RegistryMessage): Outcome {
    const hostname = fieldString(msg, 'hostname');
    if (!hostname) return fail('invalid_argument', 'hostname required');
    const id = this.state.hostnameIndex.get(hostname);
    const node = id === undefined ? undefined : this.state.nodes.get(id);
    if (!node) return fail('not_found', `hostname ${JSON.stringify(hostname.slice(0, 64))} not found`);
    return {
      reply: {
        type: 'resolve_hostname_ok',
        node_id: node.id,
        address: registryAddressText(node.id),
        public: node.isPublic,
        hostname: node.hostname,
      },
    };
  }

  private setHostname(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const hostname = fieldString(msg, 'hostname');
    const problem = hostname ? validateHostname(hostname) : null;
    if (problem) return fail('invalid_argument', `invalid hostname: ${problem}`);
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setHostname(id), {
      boundChallenge: challenge.setHostnameBound(id, hostname),
    });
    if (denied) return denied;
    if (hostname) {
      const holder = this.state.hostnameIndex.get(hostname);
      if (holder !== undefined && holder !== id) {
        return fail('already_exists', `hostname "${hostname}" already in use by node ${holder}`);
      }
    }
    if (node.hostname !== hostname) this.put(tx, { k: 'node', id, v: { ...node, hostname } });
    return { reply: { type: 'set_hostname_ok', node_id: id, hostname } };
  }

  private setTags(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const raw = Array.isArray(msg.tags) ? msg.tags : [];
    const tags = raw.filter((t): t is string => typeof t === 'string').map((t) => (t.startsWith('#') ? t.slice(1) : t));
    if (tags.length > 10) return fail('invalid_argument', 'too many tags (max 10)');
    for (const t of tags) {
      if (t.length === 0) return fail('invalid_argument', 'empty tag not allowed');
      if (t.length > 32) return fail('invalid_argument', `tag ${JSON.stringify(t.slice(0, 40))} too long (max 32 chars)`);
      if (!TAG_RE.test(t)) return fail('invalid_argument', `tag ${JSON.stringify(t)} must be lowercase alphanumeric with hyphens`);
    }
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setTags(id));
    if (denied) return denied;
    this.put(tx, { k: 'node', id, v: { ...node, tags } });
    // Go marshals an empty tag slice as null.
    return { reply: { type: 'set_tags_ok', node_id: id, tags: tags.length > 0 ? tags : null } };
  }

  private setVisibility(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const isPublic = fieldBool(msg, 'public');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setVisibility(id));
    if (denied) return denied;
    if (node.isPublic !== isPublic) this.put(tx, { k: 'node', id, v: { ...node, isPublic } });
    return { reply: { type: 'set_visibility_ok', node_id: id, visibility: isPublic ? 'public' : 'private' } };
  }

  private setTaskExec(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const enabled = fieldBool(msg, 'enabled');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setTaskExec(id));
    if (denied) return denied;
    if (node.taskExec !== enabled) this.put(tx, { k: 'node', id, v: { ...node, taskExec: enabled } });
    return { reply: { type: 'set_task_exec_ok', node_id: id, task_exec: enabled } };
  }

  private heartbeat(msg: RegistryMessage): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.heartbeat(id));
    if (denied) return denied;
    const now = this.nowMs();
    this.lastSeenMs.set(id, now); // liveness is not logged: a restart grants a fresh grace period anyway
    return { reply: { type: 'heartbeat_ok', time: Math.floor(now / 1000) } };
  }

  private deregister(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.state.nodes.get(id);
    if (!node) return { reply: { type: 'deregister_ok' } }; // as the original: unknown ids succeed
    const denied = this.authenticate(node, msg, challenge.deregister(id));
    if (denied) return denied;
    // The key index stays, so the same key re-gets this id; trust and inboxes survive too (original).
    this.put(tx, { k: 'node', id, v: null });
    this.lastSeenMs.delete(id);
    return { reply: { type: 'deregister_ok' } };
  }

  private reportTrust(msg: RegistryMessage, tx: Change[]): Outcome {
    const a = fieldU32(msg, 'node_id');
    const b = fieldU32(msg, 'peer_id');
    const nodeA = this.nodeOr(a);
    if (!isNode(nodeA)) return nodeA;
    if (!this.state.nodes.has(b)) return fail('not_found', `node ${b} not found`);
    const denied = this.authenticate(nodeA, msg, challenge.reportTrust(a, b));
    if (denied) return denied;
    if (!this.state.trust.has(trustEdge(a, b))) this.put(tx, { k: 'trust', edge: trustEdge(a, b), v: true });
    return { reply: { type: 'report_trust_ok' } };
  }

  private revokeTrust(msg: RegistryMessage, tx: Change[]): Outcome {
    const a = fieldU32(msg, 'node_id');
    const b = fieldU32(msg, 'peer_id');
    const nodeA = this.nodeOr(a);
    if (!isNode(nodeA)) return nodeA;
    const denied = this.authenticate(nodeA, msg, challenge.revokeTrust(a, b));
    if (denied) return denied;
    const ab = trustEdge(a, b);
    const ba = trustEdge(b, a);
    if (!this.state.trust.has(ab) && !this.state.trust.has(ba)) {
      return fail('not_found', `no trust pair between ${a} and ${b}`);
    }
    // Either side ending trust ends it both ways, as the original's single pair.
    if (this.state.trust.has(ab)) this.put(tx, { k: 'trust', edge: ab, v: false });
    if (this.state.trust.has(ba)) this.put(tx, { k: 'trust', edge: ba, v: false });
    return {
      reply: { type: 'revoke_trust_ok' },
      after: () => this.push(b, { type: 'push_trust_revoked', node_id: a, peer_id: b, timestamp: this.nowSec() }),
    };
  }

  private requestHandshake(msg: RegistryMessage, tx: Change[]): Outcome {
    const from = fieldU32(msg, 'from_node_id');
    const to = fieldU32(msg, 'to_node_id');
    const justification = fieldString(msg, 'justification');
    const fromNode = this.nodeOr(from);
    if (!isNode(fromNode)) return fromNode;
    if (!this.state.nodes.has(to)) return fail('not_found', `node ${to} not found`);
    const denied = this.authenticate(fromNode, msg, challenge.requestHandshake(from, to));
    if (denied) return denied;
    if (Buffer.byteLength(justification) > MAX_JUSTIFICATION_BYTES) {
      return fail('invalid_argument', `justification too long (max ${MAX_JUSTIFICATION_BYTES} bytes)`);
    }
    const inbox = this.state.inbox.get(to) ?? [];
    if (inbox.length >= MAX_INBOX) return fail('invalid_argument', `handshake inbox full for node ${to}`);
    if (inbox.some((r) => r.fromNodeId === from)) {
      return fail('already_exists', `handshake request already pending from node ${from}`);
    }
    const rec: HandshakeRequestRecord = { fromNodeId: from, justification, timestampSec: this.nowSec() };
    this.put(tx, { k: 'inbox', id: to, v: [...inbox, rec] });
    if (!this.state.handshakeIntents.has(trustEdge(from, to))) {
      this.put(tx, { k: 'intent', edge: trustEdge(from, to), v: true });
    }
    return {
      reply: { type: 'request_handshake_ok', status: 'delivered' },
      after: () => {
        const push: Reply = {
          type: 'push_handshake_request',
          from_node_id: from,
          justification,
          timestamp: rec.timestampSec,
          from_public_key: fromNode.publicKey,
        };
        // The requester chose to contact `to`, so its hostname is no secret to it.
        if (fromNode.hostname) push.from_hostname = fromNode.hostname;
        this.push(to, push);
      },
    };
  }

  private pollHandshakes(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.pollHandshakes(id));
    if (denied) return denied;
    const inbox = this.state.inbox.get(id) ?? [];
    const responses = this.state.responses.get(id) ?? [];
    if (inbox.length > 0) this.put(tx, { k: 'inbox', id, v: [] });
    if (responses.length > 0) this.put(tx, { k: 'responses', id, v: [] });
    return {
      reply: {
        type: 'poll_handshakes_ok',
        requests: inbox.map((r) => ({ from_node_id: r.fromNodeId, justification: r.justification, timestamp: r.timestampSec })),
        responses: responses.map((r) => ({ from_node_id: r.fromNodeId, accept: r.accept, timestamp: r.timestampSec })),
      },
    };
  }

  private respondHandshake(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id'); // responder
    const peer = fieldU32(msg, 'peer_id'); // original requester
    const accept = fieldBool(msg, 'accept');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    if (!this.state.nodes.has(peer)) return fail('not_found', `node ${peer} not found`);
    const denied = this.authenticate(node, msg, challenge.respondHandshake(id, peer));
    if (denied) return denied;
    const intent = trustEdge(peer, id);
    const hadIntent = this.state.handshakeIntents.has(intent);
    if (accept) {
      if (!this.state.trust.has(trustEdge(id, peer))) this.put(tx, { k: 'trust', edge: trustEdge(id, peer), v: true });
      // The requester asked for this trust, so the accept closes the pair both ways — only then.
      if (hadIntent && !this.state.trust.has(trustEdge(peer, id))) {
        this.put(tx, { k: 'trust', edge: trustEdge(peer, id), v: true });
      }
    }
    if (hadIntent) this.put(tx, { k: 'intent', edge: intent, v: false });
    // The answer settles the request: drop it from the responder's inbox. A pushed request otherwise stays
    // queued until the next poll, and the requester's next handshake (after a reject or an untrust) is refused
    // as "already pending".
    const answered = this.state.inbox.get(id) ?? [];
    if (answered.some((r) => r.fromNodeId === peer)) {
      this.put(tx, { k: 'inbox', id, v: answered.filter((r) => r.fromNodeId !== peer) });
    }
    const timestampSec = this.nowSec();
    const responses = this.state.responses.get(peer) ?? [];
    if (responses.length < MAX_INBOX) {
      this.put(tx, { k: 'responses', id: peer, v: [...responses, { fromNodeId: id, accept, timestampSec }] });
    }
    return {
      reply: { type: 'respond_handshake_ok', accept, peer_id: peer },
      after: () =>
        this.push(peer, { type: 'push_handshake_response', peer_id: id, from_node_id: id, accept, timestamp: timestampSec }),
    };
  }

  private punch(msg: RegistryMessage): Outcome {
    const requesterId = fieldU32(msg, 'requester_id');
    const a = fieldU32(msg, 'node_a');
    const b = fieldU32(msg, 'node_b');
    const requester = this.nodeOr(requesterId);
    if (!isNode(requester)) return requester;
    if (requesterId !== a && requesterId !== b) return fail('invalid_argument', 'punch denied: requester must be participant');
    const denied = this.authenticate(requester, msg, challenge.punch(a, b));
    if (denied) return denied;
    const nodeA = this.nodeOr(a);
    if (!isNode(nodeA)) return nodeA;
    const nodeB = this.nodeOr(b);
    if (!isNode(nodeB)) return nodeB;
    const other = requesterId === a ? nodeB : nodeA;
    if (!this.mayResolve(requesterId, other)) {
      return fail('connection_failed', `punch denied: node ${other.id} is private (establish mutual trust first)`);
    }
    const reply: Reply = { type: 'punch_ok', node_a: a, node_a_addr: nodeA.realAddr, node_b: b, node_b_addr: nodeB.realAddr };
    const obsA = this.opts.observedEndpoint?.(a);
    const obsB = this.opts.observedEndpoint?.(b);
    if (obsA) reply.node_a_observed_addr = obsA;
    if (obsB) reply.node_b_observed_addr = obsB;
    return { reply };
  }

  private rotateKey(msg: RegistryMessage, tx: Change[]): Outcome {
    const id = fieldU32(msg, 'node_id');
    if (!fieldString(msg, 'signature')) return fail('invalid_argument', 'rotate_key requires a valid signature');
    const newKey = fieldString(msg, 'new_public_key');
    if (!newKey) return fail('invalid_argument', 'rotate_key requires new_public_key');
    if (!decodePublicKey(newKey)) return fail('invalid_argument', 'invalid new_public_key');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.rotateKey(id));
    if (denied) return denied;
    const holder = this.state.pubKeyIndex.get(newKey);
    if (holder !== undefined && holder !== id) return fail('already_exists', 'new_public_key belongs to another node');
    this.put(tx, { k: 'pubkey', key: node.publicKey, id: null });
    this.put(tx, { k: 'pubkey', key: newKey, id });
    this.put(tx, { k: 'node', id, v: { ...node, publicKey: newKey } });
    return { reply: { type: 'rotate_key_ok', node_id: id, address: registryAddressText(id), public_key: newKey } };
  }

  // Polo score: unauthenticated in the original, and original daemons call update_polo_score for peers.
  // Kept for compatibility; a documented weakness (anyone can move anyone's score).
  private poloScore(msg: RegistryMessage, tx: Change[], isSet: boolean): Outcome {
    const id = fieldU32(msg, 'node_id');
    const key = isSet ? 'polo_score' : 'delta';
    const v = msg[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail('invalid_argument', `${isSet ? 'set' : 'update'}_polo_score requires ${key} field`);
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const poloScore = clampInt(isSet ? Math.trunc(v) : node.poloScore + Math.trunc(v));
    this.put(tx, { k: 'node', id, v: { ...node, poloScore } });
    return {
      reply: { type: isSet ? 'set_polo_score_ok' : 'update_polo_score_ok', node_id: id, address: registryAddressText(id), polo_score: poloScore },
    };
  }

  private getPoloScore(msg: RegistryMessage): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    return { reply: { type: 'get_polo_score_ok', node_id: id, address: registryAddressText(id), polo_score: node.poloScore } };
  }

  private beaconRegister(msg: RegistryMessage): Outcome {
    const beaconId = fieldU32(msg, 'beacon_id');
    const addr = fieldString(msg, 'addr');
    if (beaconId === 0) return fail('invalid_argument', 'beacon_id required');
    if (!addr || addr.length > 256) return fail('invalid_argument', 'addr required');
    if (!this.beacons.has(beaconId) && this.beacons.size >= 1024) return fail('invalid_argument', 'too many beacons');
    this.beacons.set(beaconId, { addr, seenMs: this.nowMs() });
    return { reply: { type: 'beacon_register_ok', beacon_id: beaconId } };
  }

  private beaconList(): Outcome {
    const now = this.nowMs();
    const beacons = [...this.beacons.entries()]
      .filter(([, b]) => now - b.seenMs <= 60_000)
      .map(([id, b]) => ({ id, addr: b.addr }));
    return { reply: { type: 'beacon_list_ok', beacons } };
  }

  private subscribePush(msg: RegistryMessage, conn: ClientConn): Outcome {
    const id = fieldU32(msg, 'node_id');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.subscribePush(id), { requireFresh: true });
    if (denied) return denied;
    const previous = this.subscribers.get(id);
    if (previous && previous !== conn) previous.subscribedNodeId = null;
    if (conn.subscribedNodeId !== null && conn.subscribedNodeId !== id) this.subscribers.delete(conn.subscribedNodeId);
    conn.subscribedNodeId = id;
    this.subscribers.set(id, conn);
    return {
      reply: {
        type: 'subscribe_push_ok',
        node_id: id,
        pending_requests: this.state.inbox.get(id)?.length ?? 0,
        pending_responses: this.state.responses.get(id)?.length ?? 0,
      },
    };
  }

  // ---- housekeeping ----

  private async housekeeping(): Promise<void> {
    const now = this.nowMs();
    for (const [k, exp] of this.nonces) if (exp <= now) this.nonces.delete(k);
    for (const [ip, b] of this.registrations) if (now - b.lastMs > 2 * 60_000) this.registrations.delete(ip);
    for (const [id, b] of this.beacons) if (now - b.seenMs > 60_000) this.beacons.delete(id);
    const staleMs = this.opts.staleNodeMs ?? 3 * 60_000;
    const tx: Change[] = [];
    for (const id of this.state.nodes.keys()) {
      const seen = this.lastSeenMs.get(id) ?? 0;
      if (now - seen > staleMs) {
        this.opts.logger.info({ nodeId: id }, 'registry reaping stale node');
        this.put(tx, { k: 'node', id, v: null });
        this.lastSeenMs.delete(id);
      }
    }
    if (tx.length > 0) {
      const r = await this.opts.store.commit(tx);
      if (!r.ok) this.opts.logger.error({ err: r.error }, 'registry reap commit failed');
    }
  }

  /** Run the periodic sweep now (tests). */
  async sweepNow(): Promise<void> {
    await this.housekeeping();
  }

  private nowSec(): number {
    return Math.floor(this.nowMs() / 1000);
  }
}

// ---- helpers ----

function fail(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): Outcome {
  return { reply: { ...errorReply(code, message), ...extra } };
}

function errorReply(code: ErrorCode, message: string): Reply {
  return { type: 'error', error: message, code };
}

function isNode(v: NodeRecord | Outcome): v is NodeRecord {
  return (v as Outcome).reply === undefined;
}

/** Original's validateHostname; null when valid. */
export function validateHostname(name: string): string | null {
  if (name.length > 63) return 'hostname too long (max 63 chars)';
  if (!HOSTNAME_RE.test(name)) return 'hostname must be lowercase alphanumeric with hyphens, start/end with alphanumeric';
  if (RESERVED_HOSTNAMES.has(name)) return `hostname "${name}" is reserved`;
  return null;
}

/** TCP source IP + the client's announced port (the original's sanitizeListenAddr). */
function sanitizeListenAddr(remoteIp: string, remotePort: number, clientAddr: string): string {
  const join = (h: string, p: string | number) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`);
  const m = /^(?:\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(clientAddr);
  if (!clientAddr || !m || Number(m[1]) > 65535) return join(remoteIp, remotePort);
  return join(remoteIp, m[1]!);
}

/** A claimed listen address in RFC 1918 space (`192.168.x.y:port` …), or null. */
function privateListenAddr(clientAddr: string): string | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(clientAddr);
  if (!m || Number(m[5]) > 65535 || Number(m[5]) === 0) return null;
  const [a, b] = [Number(m[1]), Number(m[2])];
  const isPrivate = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  return isPrivate ? clientAddr : null;
}

function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

function clampInt(v: number): number {
  return Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, v));
}

/** Go's encoding/json writes map keys sorted; doing the same makes our frames byte-identical to the original's. */
function sortKeysDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeysDeep);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeysDeep((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
