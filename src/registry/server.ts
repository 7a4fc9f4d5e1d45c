// Registry server: the original's TCP protocol (pkg/registry/server.go; facts in ../shared/interop) with its
// message types, reply shapes and signature challenges, plus our extensions for our own nodes:
//   - push: `subscribe_push` makes the server write `push_handshake_request`, `push_handshake_response` and
//     `push_trust_revoked` frames on that connection the moment they happen (the original polls every 30 s);
//   - fresh signatures: requests carrying `ts` + `nonce` are verified over `<bound>:<ts>:<nonce>` (the
//     field-covering strings of src/wire/registry-frame.ts `bound`, or `challenge` where every field is an id),
//     rejected when |now - ts| > window or the nonce was seen. Our clients sign `register` too;
//   - who may use bare (original, replayable) signatures is decided per node: a node whose registration was
//     freshly signed (NodeRecord.isLegacy false, persisted) is changed only by fresh signatures, and an
//     unsigned register of its key is refused (the hostname-takeover attack). Nodes registered by original
//     clients (unsigned register) keep the original rules. register_ok of a signed registration announces
//     our extensions (`extensions`) and hands out the node's beacon token (`beacon_token`, see
//     beacon-authority.ts); an original client's register_ok stays byte-identical to the original's;
//   - errors add a stable `code` next to the original's `error` text;
//   - resolve_ok / punch_ok add the beacon-observed endpoint (`observed_addr`) when known.
// Behaviour differences (security), invisible to original daemons' normal flows:
//   - trust is directed: resolve/punch of a private node needs the *target* to trust the requester
//     (report_trust by the target, or its accept of the requester's handshake). The original's single pair
//     can be created by either side alone, which lets any node resolve any private node;
//   - a private node of ours (not legacy) is invisible to unauthenticated requests: `lookup`,
//     `resolve_hostname` and `get_polo_score` without a valid identified signature (requester_id + fresh
//     signature of a registered node) answer exactly as for a node that does not exist; identified ones get
//     its id and key, and its hostname and tags only when it trusts the requester (or asked it for a
//     handshake). A private legacy node's lookup omits hostname and tags (the original hands them to
//     anyone); its public key stays because original daemons verify tunnel auth with it. set_polo_score and beacon_register carry no authentication and are refused; update_polo_score
//     (unauthenticated, original daemons send it for peers) changes legacy nodes only;
//   - resources: request frames are capped at 64 KiB (no valid request comes near it; the original: 1 MiB),
//     connections per source IP are capped, partial frames share one byte budget and must complete within a
//     deadline, and a closed connection's buffers are dropped at once;
//   - owner-based reclaim (a new key taking over a node id by naming its owner) is not honoured: the owner
//     string is unauthenticated. A known public key still re-gets its node id;
//   - rotate_key needs a fresh signature over the new key by the old key and by the new key
//     (`new_key_signature`), or (issue 14) by the recovery key the node registered and the new key; a new key
//     cannot be rotated onto another node's key; the old key is retired (refused by register from then on);
//     the statement is kept, handed out in lookup_ok.key_rotations and pushed (`push_key_rotated`) to the
//     node's trust neighbours, who verify it themselves.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from '../core/logger.js';
import type { ErrorCode } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import {
  RegistryFrameDecoder,
  REGISTRY_EXTENSIONS,
  REGISTRY_MAX_REQUEST_BYTES,
  bound,
  challenge,
  encodeRegistryFrame,
  registryAddressText,
  withFreshness,
  type RegistryMessage,
} from '../wire/registry-frame.js';
import { hostnameProblem } from '../wire/hostname.js';
import { formatHostPort, parseHostPort, parseIp } from '../wire/endpoint.js';
import {
  decodeRegistryRequest,
  type ErrorReplyWire,
  type NodeReport,
  type PollHandshakesOkWire,
  type PunchOkWire,
  type PushHandshakeRequestWire,
  type PushHandshakeResponseWire,
  type PushKeyRotatedWire,
  type RotationStatement,
  type PushTrustRevokedWire,
  type RegisterOkWire,
  type RegistryRequest,
  type ResolveOkWire,
} from '../wire/registry-messages.js';
import { decodeBase64Strict, decodePublicKey, verifyChallenge } from './signature.js';
import { recoveryText } from '../crypto/key-rotation.js';
import type { BeaconAuthority, BeaconNodeAuth } from './beacon-authority.js';
import {
  applyChange,
  trustEdge,
  type Change,
  type HandshakeRequestRecord,
  type NodeRecord,
  type RegistryState,
} from './state.js';
import { isStoreConflict, type RegistryStore } from './store.js';
import { NetworkRegistry } from './networks.js';

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
  /** Largest request frame; a bigger announced length closes the connection. Default 64 KiB (the original: 1 MiB). */
  maxFrameBytes?: number;
  /** New-key registrations per source IP per minute (original: 10). Loopback is exempt. 0 = unlimited. */
  registrationsPerMinutePerIp?: number;
  /** Nodes without a heartbeat for this long are removed (original: 3 min). */
  staleNodeMs?: number;
  /** Idle connections are closed after this (original: 5 min read deadline). */
  idleTimeoutMs?: number;
  maxConnections?: number;
  /** Open connections per source IP, loopback included; further ones are closed at once. 0 = unlimited. Default 16. */
  maxConnectionsPerIp?: number;
  /**
   * Bytes of partial frames held across all connections (plus a per-chunk overhead); the connection whose data
   * would exceed it is closed. Default 16 MiB.
   */
  maxPendingFrameBytesTotal?: number;
  /** A started frame must be complete within this, or the connection is closed (slow drip). Default 10 s. */
  partialFrameDeadlineMs?: number;
  /** HMAC key of the beacon tokens (>= 32 bytes). Default: random per process (nodes re-register after a restart). */
  beaconSecret?: Uint8Array;
}

type Reply = Record<string, unknown>;

/** One state change, as the dashboard lists it. */
export interface RegistryEvent {
  time_ms: number;
  /** The request that made it (register, set_hostname, report_trust, request_handshake, …) or `reap`. */
  kind: string;
  node_id: number | null;
  hostname: string | null;
}

export interface RegistryDashboardStats {
  uptime_s: number;
  /** online: heard from (register, heartbeat) within ONLINE_WITHIN_MS. */
  nodes: { registered: number; online: number; public: number; legacy: number };
  trust: { edges: number; pending_handshakes: number; pushes: number };
  registry: { requests: number; errors: number; connections: number };
  /** The latest 50, oldest first. */
  events: RegistryEvent[];
}

const MAX_EVENTS = 200;
/** Runs of one request against a shared store that keeps reporting conflicts, before it is answered `internal`. */
const MAX_STORE_ATTEMPTS = 10;
/** Daemons heartbeat every 30 s (the original's interval): two missed beats and a node no longer counts as online. */
const ONLINE_WITHIN_MS = 75_000;
interface Outcome {
  reply: Reply;
  /** Runs after the changes are durable and the reply is written (pushes). */
  after?: () => void;
}

const TAG_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
const MAX_INBOX = 100; // original maxHandshakeInbox
const MAX_JUSTIFICATION_BYTES = 4096;
const MAX_QUEUED_REQUESTS = 64;
const MAX_UNREAD_OUTPUT_BYTES = 4 * 1024 * 1024;
const NONCE_MIN_BYTES = 8;
const NONCE_MAX_BYTES = 64;
/** Fresh signatures remembered per node (each for two windows); more are refused until some expire. */
const MAX_NONCES_PER_SIGNER = 4096;
const BEACON_TOKEN_LABEL = 'pilot-beacon-token:v1:';
/** Rotation statements kept per node (lookups hand them out; a peer offline longer than that many rotations re-handshakes). */
const MAX_KEPT_ROTATIONS = 16;

class ClientConn {
  readonly decoder: RegistryFrameDecoder;
  readonly queue: RegistryMessage[] = [];
  isBusy = false;
  isClosed = false;
  subscribedNodeId: number | null = null;
  /**
   * The node an original (unsigned) client registered on this connection. Original clients cannot sign a
   * lookup, so this is all that identifies them: it lets a private node that trusts them be looked up (its
   * key, to check their PILA) — as weak as the original's register, which carries no proof either.
   */
  legacyNodeId: number | null = null;
  /** This connection's share of the global partial-frame budget. */
  pendingCost = 0;
  partialTimer: NodeJS.Timeout | null = null;
  constructor(
    readonly sock: Duplex,
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
  /** The latest heartbeat self-report per node (dashboard figures only; forgotten with the node). */
  private readonly reports = new Map<number, NodeReport>();
  private readonly nonces = new Map<string, { signer: string; expiresMs: number }>(); // `${signer}|${nonce}`
  private readonly noncesPerSigner = new Map<string, number>();
  private readonly registrations = new Map<string, { tokens: number; lastMs: number }>();
  private readonly connsPerIp = new Map<string, number>();
  private pendingFrameCostTotal = 0;
  private readonly beaconSecret: Uint8Array;
  private timer: NodeJS.Timeout | null = null;
  private readonly nowMs: () => number;
  /** The latest state changes, newest last (the dashboard's "recent events"); at most MAX_EVENTS. */
  private readonly recentEvents: RegistryEvent[] = [];
  private readonly eventListeners = new Set<(e: RegistryEvent) => void>();
  private readonly startedMs: number;
  /** Custom networks (src/registry/networks.ts): signed membership chains, co-membership for resolve. */
  private readonly networks: NetworkRegistry;
  /** Nonces recorded by the request being handled (forgotten when the store asks for a rerun). */
  private attemptNonces: string[] | null = null;
  private unsubscribeRemotePush: (() => void) | null = null;
  private unsubscribeStateChange: (() => void) | null = null;
  readonly stats = {
    requests: 0,
    errors: 0,
    pushes: 0,
    closedForBadFrames: 0,
    refusedPerIp: 0,
    closedForFrameBudget: 0,
    closedForSlowFrame: 0,
  };

  private constructor(
    private readonly server: net.Server | null,
    private readonly state: RegistryState,
    private readonly opts: RegistryServerOptions,
  ) {
    this.nowMs = opts.nowMs ?? Date.now;
    this.startedMs = this.nowMs();
    this.beaconSecret = opts.beaconSecret ?? new Uint8Array(randomBytes(32));
    this.networks = new NetworkRegistry({
      state,
      put: (tx, c) => this.put(tx, c),
      push: (nodeId, msg) => this.push(nodeId, msg),
      authenticate: (node, msg, text) => this.authenticate(node, msg, text, { requireFresh: true }),
      logger: opts.logger,
    });
  }

  /** Load the store and listen. internal on a store failure, connection_failed on a bind failure. */
  static async start(opts: RegistryServerOptions): Promise<Result<RegistryServer>> {
    const loaded = await opts.store.load();
    if (!loaded.ok) return loaded;
    return RegistryServer.listen(loaded.value, opts);
  }

  /**
   * Load the store, without a listener: connections come only through attach() (a simulated rendezvous,
   * test/sim). `host`/`port` are not used. internal on a store failure.
   */
  static async open(opts: Omit<RegistryServerOptions, 'host' | 'port'>): Promise<Result<RegistryServer>> {
    const loaded = await opts.store.load();
    if (!loaded.ok) return loaded;
    const rs = new RegistryServer(null, loaded.value, { host: '', port: 0, ...opts });
    rs.begin();
    return ok(rs);
  }

  private static async listen(state: RegistryState, opts: RegistryServerOptions): Promise<Result<RegistryServer>> {
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
    const rs = new RegistryServer(server, state, opts);
    rs.begin();
    server.on('connection', (sock) => rs.accept(sock));
    server.on('error', (e) => opts.logger.error({ err: e }, 'registry listener error'));
    opts.logger.info({ addr: server.address(), nodes: state.nodes.size }, 'registry listening');
    return ok(rs);
  }

  private begin(): void {
    // Loaded nodes get a fresh grace period: the registry, not the nodes, was away.
    const now = this.nowMs();
    for (const id of this.state.nodes.keys()) this.lastSeenMs.set(id, now);
    this.unsubscribeRemotePush = this.opts.store.onRemotePush?.((id, msg) => this.pushLocal(id, msg)) ?? null;
    // Another replica's network change (etcd): this replica's verified view of that network follows it.
    this.unsubscribeStateChange = this.opts.store.onStateChange?.((c) => {
      if (c.k === 'network') this.networks.refresh(c.id);
    }) ?? null;
    this.timer = setInterval(() => void this.housekeeping(), 30_000);
    this.timer.unref();
  }

  /** The TCP listener's address; port 0 for a server without one (open()). */
  address(): AddressInfo {
    return (this.server?.address() as AddressInfo | null) ?? { address: '', family: '', port: 0 };
  }

  /**
   * Serve one connection the caller made — the in-memory path of a simulated rendezvous (a Duplex whose other
   * end is a node's RegistryClient `connect`). `remote` is what a TCP socket's peer address would be: it
   * becomes the node's registered IP. The same limits apply as to TCP connections, except the idle timeout
   * (a net.Socket feature).
   */
  attach(stream: Duplex, remote: { ip: string; port: number }): void {
    this.serve(stream, normaliseIp(remote.ip), remote.port);
  }

  /** Stop accepting, drop connections, flush the store. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribeRemotePush?.();
    this.unsubscribeStateChange?.();
    await new Promise<void>((resolve) => {
      if (this.server) this.server.close(() => resolve());
      for (const c of this.conns) c.sock.destroy();
      if (!this.server) resolve();
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

  /** Bytes of partial frames held right now, across connections (with per-chunk overhead). */
  get pendingFrameBytes(): number {
    return this.pendingFrameCostTotal;
  }

  /** What the beacon (same process) asks before a datagram changes anything; see beacon-authority.ts. */
  beaconAuthority(): BeaconAuthority {
    return {
      nodeAuth: (nodeId: number): BeaconNodeAuth | null => {
        const n = this.state.nodes.get(nodeId);
        if (!n) return null;
        return n.isLegacy ? { token: null, isLegacy: true } : { token: this.beaconToken(n), isLegacy: false };
      },
      mayPunch: (fromNodeId: number, toNodeId: number): boolean => {
        const to = this.state.nodes.get(toNodeId);
        if (!to || !this.state.nodes.has(fromNodeId)) return false;
        return to.isPublic || fromNodeId === toNodeId || this.state.trust.has(trustEdge(toNodeId, fromNodeId)) || this.networks.areCoMembers(fromNodeId, toNodeId);
      },
    };
  }

  /** HMAC-SHA256(secret, "pilot-beacon-token:v1:<node id>:<base64 public key>"): a rotated key gets a new token. */
  private beaconToken(node: NodeRecord): Uint8Array {
    const mac = createHmac('sha256', this.beaconSecret).update(`${BEACON_TOKEN_LABEL}${node.id}:${node.publicKey}`, 'utf8');
    return new Uint8Array(mac.digest());
  }

  // ---- connections ----

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    sock.setTimeout(this.opts.idleTimeoutMs ?? 5 * 60_000, () => sock.destroy());
    this.serve(sock, normaliseIp(sock.remoteAddress ?? ''), sock.remotePort ?? 0);
  }

  private serve(sock: Duplex, remoteIp: string, remotePort: number): void {
    const perIp = this.opts.maxConnectionsPerIp ?? 16;
    const open = this.connsPerIp.get(remoteIp) ?? 0;
    if (perIp > 0 && open >= perIp) {
      this.stats.refusedPerIp++;
      sock.on('error', () => undefined);
      sock.destroy();
      return;
    }
    this.connsPerIp.set(remoteIp, open + 1);
    const conn = new ClientConn(sock, remoteIp, remotePort, this.opts.maxFrameBytes ?? REGISTRY_MAX_REQUEST_BYTES);
    this.conns.add(conn);
    sock.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      conn.isClosed = true;
      this.release(conn);
      const left = (this.connsPerIp.get(remoteIp) ?? 1) - 1;
      if (left > 0) this.connsPerIp.set(remoteIp, left);
      else this.connsPerIp.delete(remoteIp);
      this.conns.delete(conn);
      if (conn.subscribedNodeId !== null && this.subscribers.get(conn.subscribedNodeId) === conn) {
        this.subscribers.delete(conn.subscribedNodeId);
      }
    });
  }

  private onData(conn: ClientConn, chunk: Buffer): void {
    if (conn.isClosed) return;
    const msgs = conn.decoder.push(chunk);
    if (!msgs.ok) {
      // Framing is lost for this client only; the original closes the connection too.
      this.stats.closedForBadFrames++;
      this.opts.logger.debug({ remote: conn.remoteIp, err: msgs.error.message }, 'registry: bad frame, closing');
      this.drop(conn);
      return;
    }
    const cost = conn.decoder.pendingCost;
    this.pendingFrameCostTotal += cost - conn.pendingCost;
    conn.pendingCost = cost;
    if (this.pendingFrameCostTotal > (this.opts.maxPendingFrameBytesTotal ?? 16 * 1024 * 1024)) {
      // Many connections each holding a big partial frame: the one that crosses the line goes.
      this.stats.closedForFrameBudget++;
      this.opts.logger.debug({ remote: conn.remoteIp, held: cost }, 'registry: partial-frame budget exceeded, closing');
      this.drop(conn);
      return;
    }
    // A started frame has a deadline; a completed one (this chunk finished a frame) restarts it for the next.
    if (cost === 0 || msgs.value.length > 0) this.clearPartialTimer(conn);
    if (cost > 0 && !conn.partialTimer) {
      conn.partialTimer = setTimeout(() => {
        conn.partialTimer = null;
        if (conn.isClosed || conn.decoder.pendingBytes === 0) return;
        this.stats.closedForSlowFrame++;
        this.opts.logger.debug({ remote: conn.remoteIp }, 'registry: partial frame too slow, closing');
        this.drop(conn);
      }, this.opts.partialFrameDeadlineMs ?? 10_000);
      conn.partialTimer.unref();
    }
    conn.queue.push(...msgs.value);
    if (conn.queue.length > MAX_QUEUED_REQUESTS) conn.sock.pause();
    if (!conn.isBusy) void this.drain(conn);
  }

  /** Close a connection and give its buffers back now (the close event may come later). */
  private drop(conn: ClientConn): void {
    conn.isClosed = true;
    this.release(conn);
    conn.sock.destroy();
  }

  private release(conn: ClientConn): void {
    this.pendingFrameCostTotal -= conn.pendingCost;
    conn.pendingCost = 0;
    conn.decoder.clear();
    conn.queue.length = 0;
    this.clearPartialTimer(conn);
  }

  private clearPartialTimer(conn: ClientConn): void {
    if (conn.partialTimer) clearTimeout(conn.partialTimer);
    conn.partialTimer = null;
  }

  /** One request at a time per connection: replies go out in request order, as the original's. */
  private async drain(conn: ClientConn): Promise<void> {
    conn.isBusy = true;
    try {
      while (conn.queue.length > 0 && !conn.isClosed) {
        const msg = conn.queue.shift()!;
        let tx: Change[] = [];
        let outcome: Outcome;
        // A shared store (etcd) refuses a commit when another replica changed the same keys first; it has put
        // their current values into our state, so the request runs again (its nonces may be used again).
        for (let attempt = 1; ; attempt++) {
          tx = [];
          this.attemptNonces = [];
          try {
            outcome = this.handle(msg, conn, tx);
          } catch (e) {
            // A bug, not the client's fault: answer like any failure and keep serving.
            this.opts.logger.error({ err: e, type: msg.type }, 'registry handler threw');
            outcome = { reply: errorReply('internal', 'request failed') };
          }
          const nonces = this.attemptNonces;
          this.attemptNonces = null;
          if (tx.length === 0) break;
          const committed = await this.opts.store.commit(tx);
          if (committed.ok) break;
          if (isStoreConflict(committed) && attempt < MAX_STORE_ATTEMPTS && !conn.isClosed) {
            this.forgetNonces(nonces);
            continue;
          }
          outcome = { reply: errorReply('internal', 'request failed: store unavailable') };
          break;
        }
        this.stats.requests++;
        if (outcome.reply.type === 'error') this.stats.errors++;
        else if (tx.length > 0) this.event(String(msg.type), outcome.reply.node_id ?? msg.node_id ?? msg.from_node_id, outcome.reply.hostname ?? msg.hostname);
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
    // A shared store hands it to the other replicas too: the node may be subscribed at one of them.
    this.opts.store.publish?.(nodeId, msg);
    this.pushLocal(nodeId, msg);
  }

  private pushLocal(nodeId: number, msg: Reply): void {
    const conn = this.subscribers.get(nodeId);
    if (!conn || conn.isClosed) return;
    this.stats.pushes++;
    this.write(conn, msg);
  }

  /** Nonces recorded by a request attempt the store refused (conflict): the rerun may present them again. */
  private forgetNonces(keys: string[] | null): void {
    for (const k of keys ?? []) {
      const n = this.nonces.get(k);
      if (!n) continue;
      this.nonces.delete(k);
      const left = (this.noncesPerSigner.get(n.signer) ?? 1) - 1;
      if (left > 0) this.noncesPerSigner.set(n.signer, left);
      else this.noncesPerSigner.delete(n.signer);
    }
  }

  private put(tx: Change[], c: Change): void {
    applyChange(this.state, c);
    tx.push(c);
  }

  // ---- dispatch ----

  private handle(raw: RegistryMessage, conn: ClientConn, tx: Change[]): Outcome {
    // Parsed once, here: the handlers read typed fields only (src/wire/registry-messages.ts).
    const decoded = decodeRegistryRequest(raw);
    if (!decoded.ok) return fail('invalid_argument', decoded.error.message);
    const msg = decoded.value;
    const type = msg.type;
    switch (type) {
      case 'register':
        return this.register(msg, conn, tx);
      case 'lookup':
        return this.lookup(msg, conn);
      case 'resolve':
        return this.resolve(msg);
      case 'resolve_hostname':
        return this.resolveHostname(msg, conn);
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
      case 'list_nodes':
      case 'create_network':
      case 'join_network':
      case 'leave_network':
      case 'network_change':
      case 'get_network':
        return this.networks.handle(raw, msg, tx);
      case 'beacon_register':
        return this.beaconRegister();
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
   * Check a node's signature. With ts + nonce: over `<bound ?? base>:<ts>:<nonce>`, fresh and not replayed.
   * Without: the original's bare signature over `base`, accepted only for legacy nodes (registered by an
   * original client) and only when neither the request type nor the server requires fresh signatures.
   */
  private authenticate(
    node: NodeRecord,
    msg: RegistryRequest,
    base: string,
    opts: { bound?: string; requireFresh?: boolean } = {},
  ): Outcome | null {
    const sig = msg.signed.signature;
    if (!sig) return fail('invalid_argument', 'signature required for authenticated node');
    const publicKey = decodePublicKey(node.publicKey);
    if (!publicKey) return fail('internal', 'node has no usable public key');
    if (!msg.signed.hasTs && !msg.signed.hasNonce) {
      if (opts.requireFresh || this.opts.requireFreshSignatures) {
        return fail('invalid_argument', 'this request needs ts and nonce (replay-safe signature)');
      }
      if (!node.isLegacy) {
        return fail('invalid_argument', `node ${node.id} registered with a signed registration: bare signatures are refused (sign with ts and nonce)`);
      }
      if (!verifyChallenge(publicKey, base, sig)) return fail('invalid_argument', 'signature verification failed');
      return null;
    }
    return this.verifyFresh(`n${node.id}`, publicKey, opts.bound ?? base, msg);
  }

  /**
   * A fresh signature by `publicKey` over `<text>:<ts>:<nonce>`. `signer` scopes the nonce cache (a node id,
   * or the key itself for register). The nonce is remembered only once the signature verified.
   */
  private verifyFresh(signer: string, publicKey: Uint8Array, text: string, msg: RegistryRequest, sig = msg.signed.signature): Outcome | null {
    if (!sig) return fail('invalid_argument', 'signature required');
    const ts = msg.signed.ts;
    const nonce = msg.signed.nonce;
    if (ts === null) return fail('invalid_argument', 'ts must be unix seconds');
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
    const nonceKey = `${signer}|${nonce}`;
    if (this.nonces.has(nonceKey)) return fail('invalid_argument', 'replayed request (nonce already used)');
    if (!verifyChallenge(publicKey, withFreshness(text, ts, nonce), sig)) {
      return fail('invalid_argument', 'signature verification failed');
    }
    const held = this.noncesPerSigner.get(signer) ?? 0;
    if (held >= MAX_NONCES_PER_SIGNER) return fail('invalid_argument', 'too many signed requests; slow down');
    // Kept for two windows: a ts anywhere inside ±window stays refused until it can no longer pass the ts check.
    this.nonces.set(nonceKey, { signer, expiresMs: nowMs + 2 * windowSec * 1000 });
    this.attemptNonces?.push(nonceKey);
    this.noncesPerSigner.set(signer, held + 1);
    return null;
  }

  private nodeOr(id: number): NodeRecord | Outcome {
    const n = this.state.nodes.get(id);
    return n ?? fail('not_found', `node ${id} not found`);
  }

  /** May `requesterId` see `target`'s endpoint? Public nodes: yes; private: the target must trust it. */
  private mayResolve(requesterId: number, target: NodeRecord): boolean {
    // Members of one custom network resolve each other (the original's resolve does the same).
    return target.isPublic || requesterId === target.id || this.state.trust.has(trustEdge(target.id, requesterId)) || this.networks.areCoMembers(requesterId, target.id);
  }

  /**
   * May an (authenticated) requester see a private node's name, tags and existence? When the target trusts
   * it, or the target itself asked it for a handshake (the push told it the requester's key and name anyway).
   */
  private mayKnow(requesterId: number | null, target: NodeRecord): boolean {
    if (target.isPublic) return true;
    if (requesterId === null) return false;
    return this.mayResolve(requesterId, target) || this.state.handshakeIntents.has(trustEdge(target.id, requesterId));
  }

  /**
   * A private node of ours is invisible to unauthenticated requests (no valid identified signature): it
   * answers as if it did not exist. An identified requester (a registered node, accountable, its new keys
   * rate-limited) may learn its id and key — handshake by hostname needs that — but its name and tags only
   * per mayKnow.
   */
  private isHiddenFrom(requesterId: number | null, target: NodeRecord): boolean {
    return !target.isLegacy && !target.isPublic && requesterId === null;
  }

  /** The requester of an identified request (`requester_id` + signature over `text`), or null when not proven. */
  private identifiedRequester(msg: RegistryRequest, base: string, opts: { bound?: string; requireFresh?: boolean } = {}): {
    requesterId: number | null;
    failure: Outcome | null;
  } {
    if (!msg.hasRequesterId) return { requesterId: null, failure: null };
    const requesterId = msg.requesterId;
    const requester = this.state.nodes.get(requesterId);
    if (!requester) return { requesterId: null, failure: fail('not_found', `node ${requesterId} not found`) };
    const failure = this.authenticate(requester, msg, base, opts);
    return failure ? { requesterId: null, failure } : { requesterId, failure: null };
  }

  // ---- handlers ----

  /**
   * register. Unsigned (original clients): the original's rules, and the node is legacy. Signed (ours: ts,
   * nonce, signature over bound.register): proves the key; the node is ours from then on, and an unsigned
   * register of its key is refused — it would move its endpoint and name without the key.
   */
  private register(msg: RegistryRequest, conn: ClientConn, tx: Change[]): Outcome {
    const pubKeyB64 = msg.publicKey;
    if (!pubKeyB64) return fail('invalid_argument', 'registration requires public_key');
    const publicKey = decodePublicKey(pubKeyB64);
    if (!publicKey) return fail('invalid_argument', 'invalid public key');
    const claimedListenAddr = msg.listenAddr;
    const hostname = msg.hostname;
    const hostnameProblem = hostname ? validateHostname(hostname) : null;
    const isSigned = msg.signed.hasSignature || msg.signed.hasTs || msg.signed.hasNonce;
    const knownId = this.state.pubKeyIndex.get(pubKeyB64);
    const existing = knownId !== undefined ? this.state.nodes.get(knownId) : undefined;
    if (isSigned) {
      // A valid name cannot hold ':', which keeps the signed string unambiguous.
      if (hostnameProblem) return fail('invalid_argument', `invalid hostname: ${hostnameProblem}`);
      if (msg.recoveryKey !== '' && !decodePublicKey(msg.recoveryKey)) return fail('invalid_argument', 'invalid recovery_key');
      const denied = this.verifyFresh(`k${pubKeyB64}`, publicKey, bound.register(pubKeyB64, hostname, claimedListenAddr, msg.recoveryKey), msg);
      if (denied) return denied;
    } else {
      if (this.opts.requireFreshSignatures) {
        return fail('invalid_argument', 'register must be signed (ts, nonce, signature): this registry requires fresh signatures');
      }
      if ((existing && !existing.isLegacy) || this.state.provenKeys.has(pubKeyB64)) {
        return fail('invalid_argument', `this key registered with a signed registration: register must be signed (ts, nonce, signature)`);
      }
    }
    // Issue 14: a key rotated out of its node works nowhere any more (not even as a new node: it was compromised
    // or replaced), also after the node was reaped.
    const retiredFrom = this.state.retiredKeys.get(pubKeyB64);
    if (retiredFrom !== undefined) {
      return fail('key_retired', `this key was rotated out of node ${retiredFrom}: it cannot register any more`);
    }
    if (knownId === undefined && !this.allowRegistration(conn.remoteIp)) {
      return fail('invalid_argument', `rate limited: too many registrations from ${conn.remoteIp}`);
    }
    const listenAddr = sanitizeListenAddr(conn.remoteIp, conn.remotePort, claimedListenAddr);
    const lanAddr = privateListenAddr(claimedListenAddr);
    // The owner string is not covered by our signature (nor authenticated by the original): only unsigned
    // registrations set it, as the original.
    const owner = isSigned ? '' : msg.owner;

    let id: number;
    let base: NodeRecord;
    if (knownId !== undefined && existing) {
      id = knownId;
      base = { ...existing, realAddr: listenAddr, owner: existing.owner || owner };
      if (lanAddr) base.lanAddr = lanAddr;
      else delete base.lanAddr;
      if (isSigned) base.isLegacy = false;
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
        isLegacy: !isSigned,
      };
    }
    const reply: RegisterOkWire = {
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
    if (isSigned) {
      // Only to a signed registration: an original client's register_ok stays the original's, byte for byte.
      reply.extensions = [...REGISTRY_EXTENSIONS];
      reply.beacon_token = Buffer.from(this.beaconToken(base)).toString('base64');
    }
    const changed = !existing || JSON.stringify(existing) !== JSON.stringify(base);
    if (changed) this.put(tx, { k: 'node', id, v: base });
    if (isSigned && !this.state.provenKeys.has(pubKeyB64)) this.put(tx, { k: 'proven', key: pubKeyB64, v: true });
    if (isSigned && msg.recoveryKey !== '') {
      // The first recovery key a signed registration names is the node's for good: a thief of the node key cannot
      // replace it (issue 14, `rotate-key --recovery-file`).
      const hist = this.state.keyHistory.get(id);
      if (!hist?.recoveryKey) this.put(tx, { k: 'keys', id, v: { recoveryKey: msg.recoveryKey, rotations: hist?.rotations ?? [] } });
      else if (hist.recoveryKey !== msg.recoveryKey) (reply as Reply).recovery_key_error = `node ${id} already has another recovery key; it is kept`;
    }
    conn.legacyNodeId = isSigned ? null : id;
    this.lastSeenMs.set(id, this.nowMs());
    this.opts.store.touch?.(id);
    this.opts.logger.debug(
      { nodeId: id, listenAddr, signed: isSigned, mode: existing ? 'existing' : knownId ? 'reclaimed' : 'new' },
      'registered node',
    );
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

  /**
   * An unidentified request on a connection where an original client registered node L: L counts as the
   * requester when the target trusts L or asked L for a handshake (so a private node of ours can be reached
   * by original peers it trusts), and stays a stranger otherwise.
   */
  private legacyRequester(conn: ClientConn, target: NodeRecord | undefined): number | null {
    const l = conn.legacyNodeId;
    if (l === null || !target || !this.state.nodes.get(l)?.isLegacy) return null;
    const isKnown = this.state.trust.has(trustEdge(target.id, l)) || this.state.handshakeIntents.has(trustEdge(target.id, l));
    return isKnown ? l : null;
  }

  private lookup(msg: RegistryRequest, conn: ClientConn): Outcome {
    const id = msg.nodeId;
    const node = this.state.nodes.get(id);
    // Extension: an identified lookup (requester_id + signature over lookup:<requester>:<target>).
    const identified = this.identifiedRequester(msg, challenge.lookup(msg.requesterId, id));
    const failure = identified.failure;
    const requesterId = identified.requesterId ?? (!msg.hasRequesterId ? this.legacyRequester(conn, node) : null);
    if (!node || this.isHiddenFrom(requesterId, node)) return fail('not_found', `node ${id} not found`);
    // A bad signature for a node anyone may see is an error, not a silent downgrade.
    if (failure) return failure;
    const isPrivileged = this.mayKnow(requesterId, node);
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
    // Extension: which tunnel suite the node speaks. A node registered by an original client speaks only v0.5
    // (PILA), so our daemons skip the Noise attempt; one of ours speaks Noise, so they never accept or offer it
    // v0.5 (no downgrade). Original registries send no such field; original clients ignore it.
    reply.suite = node.isLegacy ? 'v0.5' : 'noise';
    // Issue 14: the node's rotations (signed statements, verified by the peer against its own pin) and its
    // recovery key, so a peer that was offline during a rotation catches up on its next lookup.
    const hist = this.state.keyHistory.get(node.id);
    if (hist?.rotations.length) reply.key_rotations = hist.rotations;
    if (hist?.recoveryKey) reply.recovery_key = hist.recoveryKey;
    return { reply };
  }

  private resolve(msg: RegistryRequest): Outcome {
    const targetId = msg.nodeId;
    const requesterId = msg.requesterId;
    const requester = this.state.nodes.get(requesterId);
    if (!requester) return fail('not_found', `resolve denied: requester node ${requesterId} is not registered`);
    const denied = this.authenticate(requester, msg, challenge.resolve(requesterId, targetId));
    if (denied) return denied;
    const target = this.nodeOr(targetId);
    if (!isNode(target)) return target;
    if (!this.mayResolve(requesterId, target)) {
      return fail('connection_failed', `resolve denied: node ${targetId} is private (establish mutual trust first)`);
    }
    const reply: ResolveOkWire = { type: 'resolve_ok', node_id: target.id, real_addr: target.realAddr };
    // Our extension: the LAN address a node claimed, for peers behind the same NAT (the LAN shortcut).
    if (target.lanAddr) reply.lan_addr = target.lanAddr;
    const observed = this.opts.observedEndpoint?.(target.id);
    if (observed) reply.observed_addr = observed;
    return { reply };
  }

  private resolveHostname(msg: RegistryRequest, conn: ClientConn): Outcome {
    const hostname = msg.hostname;
    if (!hostname) return fail('invalid_argument', 'hostname required');
    const id = this.state.hostnameIndex.get(hostname);
    const node = id === undefined ? undefined : this.state.nodes.get(id);
    // Extension: identified (requester_id + fresh signature over bound.resolveHostname); any failure = stranger.
    const identified = this.identifiedRequester(msg, bound.resolveHostname(msg.requesterId, hostname), {
      requireFresh: true,
    });
    const requesterId = identified.requesterId ?? (!msg.hasRequesterId ? this.legacyRequester(conn, node) : null);
    if (!node || this.isHiddenFrom(requesterId, node)) {
      return fail('not_found', `hostname ${JSON.stringify(hostname.slice(0, 64))} not found`);
    }
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

  private setHostname(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const hostname = msg.hostname;
    const problem = hostname ? validateHostname(hostname) : null;
    if (problem) return fail('invalid_argument', `invalid hostname: ${problem}`);
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setHostname(id), { bound: bound.setHostname(id, hostname) });
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

  private setTags(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const raw = msg.tags;
    const tags = raw.filter((t): t is string => typeof t === 'string').map((t) => (t.startsWith('#') ? t.slice(1) : t));
    if (tags.length > 10) return fail('invalid_argument', 'too many tags (max 10)');
    for (const t of tags) {
      if (t.length === 0) return fail('invalid_argument', 'empty tag not allowed');
      if (t.length > 32) return fail('invalid_argument', `tag ${JSON.stringify(t.slice(0, 40))} too long (max 32 chars)`);
      if (!TAG_RE.test(t)) return fail('invalid_argument', `tag ${JSON.stringify(t)} must be lowercase alphanumeric with hyphens`);
    }
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setTags(id), { bound: bound.setTags(id, tags) });
    if (denied) return denied;
    this.put(tx, { k: 'node', id, v: { ...node, tags } });
    // Go marshals an empty tag slice as null.
    return { reply: { type: 'set_tags_ok', node_id: id, tags: tags.length > 0 ? tags : null } };
  }

  private setVisibility(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const isPublic = msg.isPublic;
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setVisibility(id), { bound: bound.setVisibility(id, isPublic) });
    if (denied) return denied;
    if (node.isPublic !== isPublic) this.put(tx, { k: 'node', id, v: { ...node, isPublic } });
    return { reply: { type: 'set_visibility_ok', node_id: id, visibility: isPublic ? 'public' : 'private' } };
  }

  private setTaskExec(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const enabled = msg.enabled;
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.setTaskExec(id), { bound: bound.setTaskExec(id, enabled) });
    if (denied) return denied;
    if (node.taskExec !== enabled) this.put(tx, { k: 'node', id, v: { ...node, taskExec: enabled } });
    return { reply: { type: 'set_task_exec_ok', node_id: id, task_exec: enabled } };
  }

  private heartbeat(msg: RegistryRequest): Outcome {
    const id = msg.nodeId;
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const denied = this.authenticate(node, msg, challenge.heartbeat(id));
    if (denied) return denied;
    const now = this.nowMs();
    this.lastSeenMs.set(id, now); // liveness is not logged: a restart grants a fresh grace period anyway
    this.opts.store.touch?.(id);
    if (msg.report) this.reports.set(id, msg.report);
    return { reply: { type: 'heartbeat_ok', time: Math.floor(now / 1000) } };
  }

  private deregister(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const node = this.state.nodes.get(id);
    if (!node) return { reply: { type: 'deregister_ok' } }; // as the original: unknown ids succeed
    const denied = this.authenticate(node, msg, challenge.deregister(id));
    if (denied) return denied;
    // The key index stays, so the same key re-gets this id; trust and inboxes survive too (original).
    this.put(tx, { k: 'node', id, v: null });
    this.lastSeenMs.delete(id);
    return { reply: { type: 'deregister_ok' } };
  }

  private reportTrust(msg: RegistryRequest, tx: Change[]): Outcome {
    const a = msg.nodeId;
    const b = msg.peerId;
    const nodeA = this.nodeOr(a);
    if (!isNode(nodeA)) return nodeA;
    if (!this.state.nodes.has(b)) return fail('not_found', `node ${b} not found`);
    const denied = this.authenticate(nodeA, msg, challenge.reportTrust(a, b));
    if (denied) return denied;
    if (!this.state.trust.has(trustEdge(a, b))) this.put(tx, { k: 'trust', edge: trustEdge(a, b), v: true });
    return { reply: { type: 'report_trust_ok' } };
  }

  private revokeTrust(msg: RegistryRequest, tx: Change[]): Outcome {
    const a = msg.nodeId;
    const b = msg.peerId;
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
      after: () => this.push(b, { type: 'push_trust_revoked', node_id: a, peer_id: b, timestamp: this.nowSec() } satisfies PushTrustRevokedWire),
    };
  }

  private requestHandshake(msg: RegistryRequest, tx: Change[]): Outcome {
    const from = msg.fromNodeId;
    const to = msg.toNodeId;
    const justification = msg.justification;
    const fromNode = this.nodeOr(from);
    if (!isNode(fromNode)) return fromNode;
    if (!this.state.nodes.has(to)) return fail('not_found', `node ${to} not found`);
    const denied = this.authenticate(fromNode, msg, challenge.requestHandshake(from, to), {
      bound: bound.requestHandshake(from, to, justification),
    });
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
        const push: PushHandshakeRequestWire = {
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

  private pollHandshakes(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
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
      } satisfies PollHandshakesOkWire,
    };
  }

  private respondHandshake(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId; // responder
    const peer = msg.peerId; // original requester
    const accept = msg.accept;
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    if (!this.state.nodes.has(peer)) return fail('not_found', `node ${peer} not found`);
    const denied = this.authenticate(node, msg, challenge.respondHandshake(id, peer), {
      bound: bound.respondHandshake(id, peer, accept),
    });
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
        this.push(peer, { type: 'push_handshake_response', peer_id: id, from_node_id: id, accept, timestamp: timestampSec } satisfies PushHandshakeResponseWire),
    };
  }

  private punch(msg: RegistryRequest): Outcome {
    const requesterId = msg.requesterId;
    const a = msg.nodeA;
    const b = msg.nodeB;
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
    const reply: PunchOkWire = { type: 'punch_ok', node_a: a, node_a_addr: nodeA.realAddr, node_b: b, node_b_addr: nodeB.realAddr };
    const obsA = this.opts.observedEndpoint?.(a);
    const obsB = this.opts.observedEndpoint?.(b);
    if (obsA) reply.node_a_observed_addr = obsA;
    if (obsB) reply.node_b_observed_addr = obsB;
    return { reply };
  }

  /**
   * rotate_key, two forms (src/crypto/key-rotation.ts). By key: a fresh signature by the current key over
   * bound.rotateKey (the bare `rotate:<id>` of the original replays onto any new key), and `new_key_signature`
   * by the new key over the same string (nobody binds a key they do not hold, which would hand its owner's future
   * registrations this node). By recovery key (issue 14, the key is lost): `recovery_signature` by the recovery
   * key the node registered, and `new_key_signature`, over `recover:<id>:<new>:<ts>:<nonce>`. Either way the node
   * keeps its id, hostname and trust; the old key is retired (refused from then on, also as a new node); the
   * statement is kept (lookups hand the chain out) and pushed to every node with a trust edge to or from it.
   */
  private rotateKey(msg: RegistryRequest, tx: Change[]): Outcome {
    const id = msg.nodeId;
    const isRecovery = !msg.signed.signature && msg.recoverySignature !== '';
    if (!msg.signed.signature && !isRecovery) return fail('invalid_argument', 'rotate_key requires a valid signature');
    const newKey = msg.newPublicKey;
    if (!newKey) return fail('invalid_argument', 'rotate_key requires new_public_key');
    const newKeyBytes = decodePublicKey(newKey);
    if (!newKeyBytes) return fail('invalid_argument', 'invalid new_public_key');
    const node = this.nodeOr(id);
    if (!isNode(node)) return node;
    const text = isRecovery ? recoveryText(id, newKey) : bound.rotateKey(id, newKey);
    const newKeySig = msg.newKeySignature;
    if (!msg.signed.hasTs || !msg.signed.hasNonce) {
      return fail('invalid_argument', 'rotate_key needs ts, nonce and signatures by both keys (replay-safe)');
    }
    if (msg.signed.ts === null) return fail('invalid_argument', 'ts must be unix seconds');
    if (!verifyChallenge(newKeyBytes, withFreshness(text, msg.signed.ts, msg.signed.nonce), newKeySig)) {
      return fail('invalid_argument', 'new_key_signature verification failed');
    }
    const hist = this.state.keyHistory.get(id);
    const last = hist?.rotations[hist.rotations.length - 1];
    if (last && msg.signed.ts <= last.ts) return fail('invalid_argument', `rotate_key ts must be later than the node's last rotation (${last.ts})`);
    if (isRecovery) {
      const recovery = hist?.recoveryKey ? decodePublicKey(hist.recoveryKey) : null;
      if (!recovery) return fail('invalid_argument', `node ${id} registered no recovery key`);
      const denied = this.verifyFresh(`r${id}`, recovery, text, msg, msg.recoverySignature);
      if (denied) return denied;
    } else {
      const denied = this.authenticate(node, msg, challenge.rotateKey(id), { bound: text, requireFresh: true });
      if (denied) return denied;
    }
    const holder = this.state.pubKeyIndex.get(newKey);
    if (holder !== undefined && holder !== id) return fail('already_exists', 'new_public_key belongs to another node');
    if (this.state.retiredKeys.has(newKey)) return fail('key_retired', 'new_public_key was rotated out before: use a fresh key');
    const rotated: NodeRecord = { ...node, publicKey: newKey };
    // The old key keeps pointing at this node in the key index: retiredKeys refuses it, and its id stays taken.
    this.put(tx, { k: 'pubkey', key: newKey, id });
    this.put(tx, { k: 'node', id, v: rotated });
    // Both keys proved possession; the old one is no longer this node's.
    if (this.state.provenKeys.has(node.publicKey)) this.put(tx, { k: 'proven', key: node.publicKey, v: false });
    if (!rotated.isLegacy && !this.state.provenKeys.has(newKey)) this.put(tx, { k: 'proven', key: newKey, v: true });
    const statement: RotationStatement = {
      node_id: id,
      old_public_key: node.publicKey,
      new_public_key: newKey,
      ts: msg.signed.ts,
      nonce: msg.signed.nonce,
      new_key_signature: newKeySig,
      ...(isRecovery ? { recovery_signature: msg.recoverySignature } : { signature: msg.signed.signature }),
    };
    const rotations = [...(hist?.rotations ?? []), statement].slice(-MAX_KEPT_ROTATIONS);
    this.put(tx, { k: 'keys', id, v: { recoveryKey: hist?.recoveryKey ?? null, rotations } });
    const reply: Reply = { type: 'rotate_key_ok', node_id: id, address: registryAddressText(id), public_key: newKey, statement };
    if (!rotated.isLegacy) reply.beacon_token = Buffer.from(this.beaconToken(rotated)).toString('base64');
    return {
      reply,
      after: () => {
        const push: PushKeyRotatedWire = { type: 'push_key_rotated', node_id: id, statement };
        for (const peer of this.trustNeighbours(id)) this.push(peer, push);
      },
    };
  }

  /** Nodes with a trust edge to or from `id` (they pinned its key, or it pinned theirs). */
  private trustNeighbours(id: number): Set<number> {
    const out = new Set<number>();
    for (const edge of this.state.trust) {
      const gt = edge.indexOf('>');
      const a = Number(edge.slice(0, gt));
      const b = Number(edge.slice(gt + 1));
      if (a === id && b !== id) out.add(b);
      else if (b === id && a !== id) out.add(a);
    }
    return out;
  }

  // Polo score: unauthenticated in the original, and original daemons call update_polo_score for peers. It
  // still moves the scores of legacy nodes (a documented weakness of the original); ours it cannot change, and
  // set_polo_score (an absolute write by anyone) is refused.
  private poloScore(msg: RegistryRequest, tx: Change[], isSet: boolean): Outcome {
    const id = msg.nodeId;
    if (isSet) return fail('invalid_argument', 'set_polo_score is not accepted: it carries no authentication');
    const v = msg.delta;
    if (v === null) return fail('invalid_argument', 'update_polo_score requires delta field');
    const node = this.state.nodes.get(id);
    if (!node || this.isHiddenFrom(null, node)) return fail('not_found', `node ${id} not found`);
    if (!node.isLegacy) {
      return fail('invalid_argument', `the polo score of node ${id} cannot be changed by unauthenticated requests`);
    }
    const poloScore = clampInt(node.poloScore + Math.trunc(v));
    this.put(tx, { k: 'node', id, v: { ...node, poloScore } });
    return { reply: { type: 'update_polo_score_ok', node_id: id, address: registryAddressText(id), polo_score: poloScore } };
  }

  private getPoloScore(msg: RegistryRequest): Outcome {
    const id = msg.nodeId;
    const node = this.state.nodes.get(id);
    if (!node || this.isHiddenFrom(null, node)) return fail('not_found', `node ${id} not found`);
    return { reply: { type: 'get_polo_score_ok', node_id: id, address: registryAddressText(id), polo_score: node.poloScore } };
  }

  // beacon_register lets anyone announce a beacon address to every node (the original checks nothing). This
  // rendezvous runs its own beacon, so announcements are refused and the list is empty.
  private beaconRegister(): Outcome {
    return fail('invalid_argument', 'beacon_register is not accepted: it carries no authentication');
  }

  private beaconList(): Outcome {
    return { reply: { type: 'beacon_list_ok', beacons: [] } };
  }

  private subscribePush(msg: RegistryRequest, conn: ClientConn): Outcome {
    const id = msg.nodeId;
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
    for (const [k, n] of this.nonces) {
      if (n.expiresMs > now) continue;
      this.nonces.delete(k);
      const left = (this.noncesPerSigner.get(n.signer) ?? 1) - 1;
      if (left > 0) this.noncesPerSigner.set(n.signer, left);
      else this.noncesPerSigner.delete(n.signer);
    }
    for (const [ip, b] of this.registrations) if (now - b.lastMs > 2 * 60_000) this.registrations.delete(ip);
    const staleMs = this.opts.staleNodeMs ?? 3 * 60_000;
    const tx: Change[] = [];
    for (const id of this.state.nodes.keys()) {
      // Shared store: a node registered at another replica (first seen here now) gets a grace period, and one
      // another replica holds alive is not ours to reap.
      if (!this.lastSeenMs.has(id) || this.opts.store.isAliveElsewhere?.(id)) {
        this.lastSeenMs.set(id, now);
        continue;
      }
      const seen = this.lastSeenMs.get(id) ?? 0;
      if (now - seen > staleMs) {
        this.opts.logger.info({ nodeId: id }, 'registry reaping stale node');
        this.put(tx, { k: 'node', id, v: null });
        this.reports.delete(id);
        this.event('reap', id, undefined);
        this.lastSeenMs.delete(id);
      }
    }
    if (tx.length > 0) {
      // One commit per reaped node: a shared store's transactions hold a bounded number of keys (etcd: 128).
      const perNode = new Map<number, Change[]>();
      for (const c of tx) if (c.k === 'node') perNode.set(c.id, [...(perNode.get(c.id) ?? []), c]);
      const results = await Promise.all([...perNode.values()].map((changes) => this.opts.store.commit(changes)));
      const failed = results.filter((r) => !r.ok);
      if (failed.length > 0 && !failed[0]!.ok) this.opts.logger.error({ err: failed[0]!.error, failed: failed.length }, 'registry reap commit failed');
    }
  }

  private event(kind: string, nodeId: unknown, hostname: unknown): void {
    const e: RegistryEvent = {
      time_ms: this.nowMs(),
      kind,
      node_id: typeof nodeId === 'number' ? nodeId : null,
      hostname: typeof hostname === 'string' && hostname !== '' ? hostname : null,
    };
    this.recentEvents.push(e);
    if (this.recentEvents.length > MAX_EVENTS) this.recentEvents.splice(0, this.recentEvents.length - MAX_EVENTS);
    for (const l of this.eventListeners) l(e);
  }

  /** Every state change from now on (the dashboard's live feed); returns the unsubscribe. */
  onEvent(fn: (e: RegistryEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  /** Online nodes' self-reports, summed: NAT types, peer paths, transports. */
  nodeReports(): { natTypes: Record<string, number>; paths: { direct: number; relayed: number }; transports: Record<string, number> } {
    const now = this.nowMs();
    const natTypes: Record<string, number> = {};
    const transports: Record<string, number> = {};
    const paths = { direct: 0, relayed: 0 };
    for (const [id, r] of this.reports) {
      if (!this.state.nodes.has(id) || now - (this.lastSeenMs.get(id) ?? 0) > ONLINE_WITHIN_MS) continue;
      natTypes[r.natType] = (natTypes[r.natType] ?? 0) + 1;
      if (r.transport) transports[r.transport] = (transports[r.transport] ?? 0) + 1;
      paths.direct += r.peersDirect;
      paths.relayed += r.peersRelayed;
    }
    return { natTypes, paths, transports };
  }

  /** The registry's half of the dashboard's figures (src/registry/dashboard.ts adds the beacon's). */
  dashboardStats(): RegistryDashboardStats {
    const now = this.nowMs();
    let online = 0;
    let isPublic = 0;
    let legacy = 0;
    for (const n of this.state.nodes.values()) {
      if (now - (this.lastSeenMs.get(n.id) ?? 0) <= ONLINE_WITHIN_MS) online++;
      if (n.isPublic) isPublic++;
      if (n.isLegacy) legacy++;
    }
    let pending = 0;
    for (const reqs of this.state.inbox.values()) pending += reqs.length;
    return {
      uptime_s: Math.round((now - this.startedMs) / 1000),
      nodes: { registered: this.state.nodes.size, online, public: isPublic, legacy },
      trust: { edges: this.state.trust.size, pending_handshakes: pending, pushes: this.stats.pushes },
      registry: { requests: this.stats.requests, errors: this.stats.errors, connections: this.conns.size },
      events: this.recentEvents.slice(-50),
    };
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
  return { type: 'error', error: message, code } satisfies ErrorReplyWire;
}

function isNode(v: NodeRecord | Outcome): v is NodeRecord {
  return (v as Outcome).reply === undefined;
}

/** Original's validateHostname; null when valid (the rule lives in src/wire/hostname.ts). */
export const validateHostname = hostnameProblem;

/** TCP source IP + the client's announced port (the original's sanitizeListenAddr). */
function sanitizeListenAddr(remoteIp: string, remotePort: number, clientAddr: string): string {
  const claimed = parseHostPort(clientAddr);
  return formatHostPort(remoteIp, claimed.ok ? claimed.value.port : remotePort);
}

/** A claimed listen address in RFC 1918 space (`192.168.x.y:port` …), or null. */
function privateListenAddr(clientAddr: string): string | null {
  const hp = parseHostPort(clientAddr, { minPort: 1 });
  const ip = hp.ok && /^[\d.]+$/.test(hp.value.host) ? parseIp(hp.value.host) : null;
  if (!ip || ip.length !== 4) return null;
  const [a, b] = [ip[0]!, ip[1]!];
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
