// The daemon's registry client: one TCP connection, request/response in FIFO order (the protocol has no
// request ids; the server answers in order), pushed frames (`push_*`) routed to listeners, timeouts as
// Result `timeout`, reconnect with exponential backoff + jitter, and session restore after a reconnect
// (re-register with the same key, hostname, visibility, tags, reported trust, push subscription).
//
// Signatures: the node owns its identity and passes `sign`. `register` is always signed with ts + nonce over
// bound.register (src/wire/registry-frame.ts; an original registry ignores the extra fields). Our registry
// answers a signed register with `extensions` in register_ok: from then on every signed request carries
// `ts` + `nonce` over the field-covering string and the client never falls back to bare signatures, whatever
// later errors say. A register_ok without `extensions` is an original registry: in 'auto' mode the client
// then signs the original bare challenges and polls handshakes every `pollFallbackMs`.
//
// The world comes in (src/node/env.ts): deadlines (heartbeat, handshake poll, reconnect, request timeouts)
// from the Driver, reconnect jitter from the seeded Rng, the byte stream from `connect(host, port)` (net.connect
// by default; a simulated rendezvous in test/sim). Replies are decoded by src/wire/registry-messages.ts, the
// decoders the server's messages are defined by.
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { BEACON_TOKEN_BYTES } from '../wire/beacon-message.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../core/logger.js';
import { pilotError, type ErrorCode, type PilotError } from '../core/errors.js';
import { err, ok, type Result } from '../core/result.js';
import { heldTimers, monotonicClock, realWallClock } from '../core/clock.js';
import { Rng } from '../core/rng.js';
import { parseHostPort, type HostPort } from '../wire/endpoint.js';
import {
  RegistryFrameDecoder,
  EXTENSION_FRESH_SIGNATURES,
  bound,
  challenge,
  encodeRegistryFrame,
  withFreshness,
  type RegistryMessage,
} from '../wire/registry-frame.js';
import {
  decodeErrorReply,
  decodeHeartbeatOk,
  decodeLookupOk,
  decodePollHandshakesOk,
  decodePunchOk,
  decodePush,
  decodeRegisterOk,
  decodeResolveHostnameOk,
  decodeResolveOk,
  decodeSetHostnameOk,
  decodeSetTagsOk,
  decodeSetVisibilityOk,
  isPush,
  messageType,
  type HandshakeRequestItem,
  type HandshakeResponseItem,
  type LookupOk,
  type PeerSuite,
  type PunchOk,
  type ResolveHostnameOk,
  type ResolveOk,
  type ErrorReply,
  type NodeReportWire,
  type RotationStatement,
  decodeRotationStatement,
} from '../wire/registry-messages.js';
import { Driver, type Deadline } from './driver.js';

export type { HandshakeRequestItem, HandshakeResponseItem, PeerSuite };

export type FreshSignatureMode = 'auto' | 'always' | 'never';

export interface RegistryClientOptions {
  /** Registry TCP address: parsed (flags do that), or `host:port` text (parsed here; no host → 127.0.0.1). */
  registryAddr: HostPort | string;
  /**
   * Further registries serving the same directory (replicas over one etcd store, issue 16): when the current one
   * fails (connect refused or timed out, connection lost) the next is tried at once, and the session is restored
   * there (re-register with the same key → the same node id). Backoff grows only after a full round.
   */
  registryAlternates?: HostPort[];
  /** Ed25519 detached signature over `msg` with the node's identity. */
  sign: (msg: Uint8Array) => Uint8Array;
  logger?: Logger;
  /** Per request, including time spent waiting for a connection. */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * 'auto' (default): ts/nonce unless register_ok shows an original registry (no `extensions`). 'always': never
   * bare. 'never': original behaviour (unsigned register, bare signatures) — the registry then treats this node
   * as one of an original client's.
   */
  freshSignatures?: FreshSignatureMode;
  /** Keepalive; 0 disables. Default 30 s (the original's). */
  heartbeatIntervalMs?: number;
  /** Safety poll while push works. Default 60 s. */
  pollWithPushMs?: number;
  /** Poll period without push (original registry). Default 5 s. */
  pollFallbackMs?: number;
  reconnectInitialDelayMs?: number;
  reconnectMaxDelayMs?: number;
  /** Wall clock in ms (tests); signature timestamps and push dedup. Default: the real one. */
  nowMs?: () => number;
  /** Deadlines (NodeEnv's driver). Default: a driver of its own on the real clock and timers. */
  driver?: Driver;
  /** Reconnect jitter (NodeEnv.rng). Default: seeded from the crypto RNG. */
  rng?: Rng;
  /**
   * The byte stream to the registry. Either a Duplex that emits 'connect' once open (NodeEnv.connectRegistry, a
   * net.Socket in the real world; default net.connect), or a promise of an already open one (the compat transport's
   * TLS dial, src/node/compat/dial.ts): its error is the connect failure, logged and retried like a refused connect.
   */
  connect?: (host: string, port: number) => Duplex | Promise<Result<Duplex>>;
  /**
   * What heartbeats tell about this node (our extension, for the rendezvous dashboard: NAT type, peers direct /
   * relayed, transport); null or absent sends none. Figures only: the registry decides nothing on them.
   */
  report?: () => NodeReportWire | null;
  /** Issue 14: this node's recovery public key (base64), sent (and signed) with every register; null: none. */
  recoveryKey?: () => string | null;
}

export interface RegisterResult {
  nodeId: number;
  /** Virtual address text, e.g. `0:0000.0000.0001`. */
  address: string;
  publicKey: string;
  hostname?: string;
  /** Our registry's extension: the secret this node MACs its beacon messages with. */
  beaconToken?: Uint8Array;
}

/**
 * A lookup_ok. `suite` is our registry's extension: the tunnel suite the node speaks — 'v0.5' (registered by an
 * original client) or 'noise' (one of ours); absent from an original registry (or an unknown value).
 */
export type LookupResult = LookupOk;
/** A resolve_ok: the endpoint texts as sent and parsed (`realEndpoint`, `observedEndpoint`, `lanEndpoint`). */
export type ResolveResult = ResolveOk;
export type ResolveHostnameResult = ResolveHostnameOk;
export type PunchResult = PunchOk;

/** What listeners receive. `via` tells whether it was pushed or found by a poll. Each item is delivered once. */
export type RegistryEvent =
  | { kind: 'handshake_request'; via: 'push' | 'poll'; request: HandshakeRequestItem }
  | { kind: 'handshake_response'; via: 'push' | 'poll'; response: HandshakeResponseItem }
  | { kind: 'trust_revoked'; byNodeId: number; timestampSec: number }
  /** Issue 14: a trust neighbour rotated its key (as the registry pushed it: verify before use). */
  | { kind: 'key_rotated'; statement: RotationStatement }
  /** After every (re-)register; nodeId may change if the registry lost its state and the key is new to it. */
  | { kind: 'registered'; result: RegisterResult }
  | { kind: 'connected' }
  | { kind: 'disconnected'; error: string }
  /** Push availability decided after each subscribe attempt. */
  | { kind: 'push_mode'; isPushing: boolean; isOriginalRegistry: boolean };

interface PendingRequest {
  type: string;
  resolve: (r: Result<RegistryMessage>) => void;
  timer: Deadline;
}

interface Conn {
  sock: Duplex;
  decoder: RegistryFrameDecoder;
  pending: PendingRequest[];
  isReady: boolean;
}

type State = 'idle' | 'connecting' | 'restoring' | 'ready' | 'closed';

export class RegistryClient {
  private conn: Conn | null = null;
  private state: State = 'idle';
  private readyWaiters: (() => void)[] = [];
  private listeners = new Set<(e: RegistryEvent) => void>();
  private readonly pushFrameListeners = new Set<(m: RegistryMessage) => void>();
  private reconnectAttempt = 0;
  private reconnectTimer: Deadline | null = null;
  private heartbeatTimer: Deadline | null = null;
  private pollTimer: Deadline | null = null;
  /** register() calls in flight: the first connect's restore leaves registering to them (one register, not two). */
  private registerCalls = 0;
  private target: Result<HostPort>;
  /** registryAddr, then registryAlternates; `target` is targets[targetIndex]. */
  private readonly targets: Result<HostPort>[];
  private targetIndex = 0;
  private readonly driver: Driver;
  private readonly ownsDriver: boolean;
  private readonly rng: Rng;
  private readonly connectStream: (host: string, port: number) => Duplex | Promise<Result<Duplex>>;
  /** The last failed connect's error (async connects only: a TLS or proxy failure has a code worth showing). */
  lastConnectError: PilotError | null = null;
  private heartbeatFailures = 0;
  private clockOffsetSec = 0;
  private isFresh: boolean;
  private isPushing = false;
  private isOriginalRegistry = false;
  /**
   * Handshake items delivered by one source (push or poll) that the other has not yet delivered: the other's
   * copy of the same item is then skipped. Key → the source, how many copies wait, when first seen (ms).
   */
  private readonly unpaired = new Map<string, { via: 'push' | 'poll'; count: number; atMs: number }>();
  private readonly opts: Required<Omit<RegistryClientOptions, 'logger' | 'sign' | 'registryAddr' | 'registryAlternates' | 'driver' | 'rng' | 'connect' | 'report' | 'recoveryKey'>>;

  // Session to restore after a reconnect.
  private registration: { listenAddr: string; publicKeyB64: string } | null = null;
  private current: RegisterResult | null = null;
  private desiredHostname: string | null = null;
  private desiredPublic: boolean | null = null;
  private desiredTags: string[] | null = null;
  private readonly reportedTrust = new Set<number>();

  constructor(private readonly options: RegistryClientOptions) {
    this.opts = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      freshSignatures: options.freshSignatures ?? 'auto',
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 30_000,
      pollWithPushMs: options.pollWithPushMs ?? 60_000,
      pollFallbackMs: options.pollFallbackMs ?? 5_000,
      reconnectInitialDelayMs: options.reconnectInitialDelayMs ?? 200,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? 10_000,
      nowMs: options.nowMs ?? realWallClock.nowMs,
    };
    this.isFresh = this.opts.freshSignatures !== 'never';
    const addr = options.registryAddr;
    this.target = typeof addr === 'string' ? parseHostPort(addr, { minPort: 1, defaultHost: '127.0.0.1' }) : ok(addr);
    this.targets = [this.target, ...(options.registryAlternates ?? []).map((a) => ok(a))];
    this.ownsDriver = options.driver === undefined;
    // Its own driver's timers hold the process (a caller awaiting a reply or a reconnect must not see the event
    // loop run dry, as with the real timers' unref'd ones); close() releases them.
    this.driver = options.driver ?? new Driver(monotonicClock, heldTimers);
    this.rng = options.rng ?? new Rng(randomBytes(4).readUInt32BE(0));
    this.connectStream = options.connect ?? ((host, port) => netConnect({ host, port }));
  }

  /** `host:port` of the registry, for messages. */
  private get addrText(): string {
    const a = this.options.registryAddr;
    if (this.targetIndex === 0 || !this.target.ok) return typeof a === 'string' ? a : `${a.host}:${a.port}`;
    return `${this.target.value.host}:${this.target.value.port}`;
  }

  /** The registry in use now (or being dialled), `host:port`. */
  get currentRegistry(): string {
    return this.addrText;
  }

  // ---- lifecycle ----

  /** Subscribe to events; returns the unsubscribe function. */
  /** Push frames this client has no type for (src/node/networks/ decodes its own); returns the unsubscribe. */
  onPushFrame(listener: (m: RegistryMessage) => void): () => void {
    this.pushFrameListeners.add(listener);
    return () => this.pushFrameListeners.delete(listener);
  }

  /** Fresh signature fields (ts, nonce, signature over `<text>:<ts>:<nonce>`) for requests other rooms build. */
  freshSignatureFields(text: string): Record<string, unknown> {
    return this.freshSignature(text);
  }

  on(listener: (e: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get nodeId(): number | null {
    return this.current?.nodeId ?? null;
  }

  get isConnected(): boolean {
    return this.state === 'ready';
  }

  /**
   * The beacon token our registry handed out in register_ok (`beacon_token`, base64; see
   * src/registry/beacon-authority.ts); null against an original registry or before registration.
   */
  get beaconToken(): Uint8Array | null {
    return this.current?.beaconToken ?? null;
  }

  /** Whether handshake events arrive by push (our registry) rather than polling. */
  get pushActive(): boolean {
    return this.isPushing;
  }

  /**
   * Connect (and keep reconnecting in the background). Resolves ok once connected, or connection_failed
   * after connectTimeoutMs — the client keeps trying either way until close().
   */
  async connect(): Promise<Result<void>> {
    if (this.state === 'closed') return err('not_running', 'registry client is closed');
    if (this.state === 'idle') this.dial();
    const isReady = await this.waitReady(this.opts.connectTimeoutMs);
    return isReady ? ok() : err('connection_failed', `registry ${this.addrText} unreachable`);
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.stopTimers();
    this.reconnectTimer?.cancel();
    this.reconnectTimer = null;
    this.conn?.sock.destroy();
    this.conn = null;
    for (const w of this.readyWaiters.splice(0)) w();
    if (this.ownsDriver) this.driver.close();
  }

  // ---- typed requests ----

  /** Register (or re-register) this node's key; the same key gets the same node id. */
  /**
   * Remember what to register without sending it (the registry is unreachable right now): every (re)connect
   * then registers it, and a `registered` event says when that happened.
   */
  prepareRegistration(listenAddr: string, publicKey: Uint8Array): void {
    this.registration = { listenAddr, publicKeyB64: Buffer.from(publicKey).toString('base64') };
  }

  async register(listenAddr: string, publicKey: Uint8Array): Promise<Result<RegisterResult>> {
    const publicKeyB64 = Buffer.from(publicKey).toString('base64');
    this.registration = { listenAddr, publicKeyB64 };
    this.registerCalls++;
    let r: Result<RegisterResult>;
    try {
      r = await this.doRegister(false);
    } finally {
      this.registerCalls--;
    }
    if (r.ok) {
      this.startTimers();
      // Before returning: it decides how the next requests are signed (original registry or ours).
      await this.subscribePush(false);
    }
    return r;
  }

  /** Unix seconds on the registry's clock as far as we know it (our clock + the offset a stale-ts refusal taught). */
  nowSec(): number {
    return Math.floor(this.opts.nowMs() / 1000) + this.clockOffsetSec;
  }

  /**
   * Issue 14: send a signed rotation statement (src/crypto/key-rotation.ts) as rotate_key. On success the
   * registration moves to the new key (re-registers after a reconnect use it) and the new beacon token is kept.
   * Errors: the registry's (invalid_argument for a refused signature, already_exists, key_retired), timeout.
   */
  async rotateKey(statement: RotationStatement): Promise<Result<{ beaconToken: Uint8Array | null; oldPublicKey: string }>> {
    const msg: RegistryMessage = { type: 'rotate_key', ...statement };
    const r = await this.request(msg);
    if (!r.ok) return r;
    const tokenText = typeof r.value.beacon_token === 'string' ? r.value.beacon_token : '';
    const token = tokenText ? Buffer.from(tokenText, 'base64') : null;
    const beaconToken = token && token.length === BEACON_TOKEN_BYTES ? new Uint8Array(token) : null;
    if (this.registration) this.registration = { ...this.registration, publicKeyB64: statement.new_public_key };
    if (this.current) {
      this.current = { ...this.current, publicKey: statement.new_public_key };
      if (beaconToken) this.current.beaconToken = beaconToken;
    }
    const kept = decodeRotationStatement(r.value.statement);
    return ok({ beaconToken, oldPublicKey: kept?.old_public_key ?? statement.old_public_key });
  }

  async lookup(nodeId: number): Promise<Result<LookupResult>> {
    const msg: RegistryMessage = { type: 'lookup', node_id: nodeId };
    const me = this.nodeId;
    // Identified lookup (our registry): trusted peers see the hostname and tags of private nodes.
    if (me !== null && this.isFresh && !this.isOriginalRegistry) {
      Object.assign(msg, { requester_id: me }, this.signature(challenge.lookup(me, nodeId)));
    }
    const r = await this.request(msg);
    return r.ok ? decodeLookupOk(r.value) : r;
  }

  async resolve(nodeId: number): Promise<Result<ResolveResult>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({
      type: 'resolve',
      node_id: nodeId,
      requester_id: me.value,
      ...this.signature(challenge.resolve(me.value, nodeId)),
    });
    return r.ok ? decodeResolveOk(r.value) : r;
  }

  async resolveHostname(hostname: string): Promise<Result<ResolveHostnameResult>> {
    const msg: RegistryMessage = { type: 'resolve_hostname', hostname };
    const me = this.nodeId;
    // Identified (our registry): a private node of ours does not exist for unauthenticated requests.
    if (me !== null && this.isFresh && !this.isOriginalRegistry) {
      const text = bound.resolveHostname(me, hostname);
      Object.assign(msg, { requester_id: me }, this.signature(text, text));
    }
    const r = await this.request(msg);
    return r.ok ? decodeResolveHostnameOk(r.value) : r;
  }

  /** Set ('' clears) the hostname; restored after reconnects. already_exists when taken. */
  async setHostname(hostname: string): Promise<Result<{ hostname: string }>> {
    const r = await this.sendSetHostname(hostname);
    if (r.ok) this.desiredHostname = hostname;
    return r;
  }

  async setTags(tags: string[]): Promise<Result<{ tags: string[] }>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request(this.setTagsMessage(me.value, tags));
    if (!r.ok) return r;
    this.desiredTags = tags;
    return decodeSetTagsOk(r.value);
  }

  async setVisibility(isPublic: boolean): Promise<Result<{ isPublic: boolean }>> {
    const r = await this.sendSetVisibility(isPublic);
    if (r.ok) this.desiredPublic = isPublic;
    return r;
  }

  /** Keepalive; the client also sends these on its own timer. Returns the registry's clock. */
  async heartbeat(): Promise<Result<{ serverTimeSec: number }>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const report = this.options.report?.() ?? null;
    const r = await this.request({
      type: 'heartbeat',
      node_id: me.value,
      ...(report ? { report } : {}),
      ...this.signature(challenge.heartbeat(me.value)),
    });
    if (!r.ok) return r;
    const hb = decodeHeartbeatOk(r.value);
    if (hb.ok && hb.value.serverTimeSec > 0) this.clockOffsetSec = hb.value.serverTimeSec - Math.floor(this.opts.nowMs() / 1000);
    return hb;
  }

  /** Ask `toNodeId` (via the registry) for a trust handshake. already_exists when one is pending. */
  async requestHandshake(toNodeId: number, justification: string): Promise<Result<void>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({
      type: 'request_handshake',
      from_node_id: me.value,
      to_node_id: toNodeId,
      justification,
      ...this.signature(challenge.requestHandshake(me.value, toNodeId), bound.requestHandshake(me.value, toNodeId, justification)),
    });
    return r.ok ? ok() : r;
  }

  /** Fetch and clear the relayed inbox. Items are also emitted as events (deduplicated against pushes). */
  async pollHandshakes(): Promise<Result<{ requests: HandshakeRequestItem[]; responses: HandshakeResponseItem[] }>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({ type: 'poll_handshakes', node_id: me.value, ...this.signature(challenge.pollHandshakes(me.value)) });
    if (!r.ok) return r;
    const polled = decodePollHandshakesOk(r.value);
    if (!polled.ok) return polled;
    const { requests, responses } = polled.value;
    for (const request of requests) this.deliverOnce({ kind: 'handshake_request', via: 'poll', request });
    for (const response of responses) this.deliverOnce({ kind: 'handshake_response', via: 'poll', response });
    return ok({ requests, responses });
  }

  /** Approve or reject `peerId`'s relayed request. Approval makes the registry record trust. */
  async respondHandshake(peerId: number, accept: boolean): Promise<Result<void>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({
      type: 'respond_handshake',
      node_id: me.value,
      peer_id: peerId,
      accept,
      ...this.signature(challenge.respondHandshake(me.value, peerId), bound.respondHandshake(me.value, peerId, accept)),
    });
    if (r.ok && accept) this.reportedTrust.add(peerId);
    return r.ok ? ok() : r;
  }

  /** Tell the registry this node trusts `peerId` (lets the peer resolve us); re-sent after reconnects. */
  async reportTrust(peerId: number): Promise<Result<void>> {
    const r = await this.sendTrust('report_trust', peerId);
    if (r.ok) this.reportedTrust.add(peerId);
    return r;
  }

  async revokeTrust(peerId: number): Promise<Result<void>> {
    this.reportedTrust.delete(peerId);
    return this.sendTrust('revoke_trust', peerId);
  }

  async punch(peerId: number): Promise<Result<PunchResult>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({
      type: 'punch',
      requester_id: me.value,
      node_a: me.value,
      node_b: peerId,
      ...this.signature(challenge.punch(me.value, peerId)),
    });
    return r.ok ? decodePunchOk(r.value) : r;
  }

  /** Remove this node from the registry and stop restoring the session. */
  async deregister(): Promise<Result<void>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.request({ type: 'deregister', node_id: me.value, ...this.signature(challenge.deregister(me.value)) });
    if (r.ok) {
      this.registration = null;
      this.current = null;
      this.stopTimers();
    }
    return r.ok ? ok() : r;
  }

  /** Escape hatch: any message, reply as is (errors as Result). */
  request(msg: RegistryMessage, timeoutMs = this.opts.requestTimeoutMs): Promise<Result<RegistryMessage>> {
    return this.requestWhenReady(msg, timeoutMs, false);
  }

  // ---- internals: signing ----

  /** Fresh (ts, nonce, over `boundText ?? base`) against our registry; the bare original form otherwise. */
  private signature(base: string, boundText?: string): Record<string, unknown> {
    if (!this.isFresh) return { signature: this.signText(base) };
    return this.freshSignature(boundText ?? base);
  }

  private freshSignature(text: string): Record<string, unknown> {
    const ts = Math.floor(this.opts.nowMs() / 1000) + this.clockOffsetSec;
    const nonce = randomBytes(16).toString('base64');
    return { ts, nonce, signature: this.signText(withFreshness(text, ts, nonce)) };
  }

  private signText(text: string): string {
    return Buffer.from(this.options.sign(Buffer.from(text, 'utf8'))).toString('base64');
  }

  /** set_tags signs the tags as the server normalises them (a leading '#' dropped). */
  private setTagsMessage(nodeId: number, tags: string[]): RegistryMessage {
    const normalised = tags.map((t) => (t.startsWith('#') ? t.slice(1) : t));
    return { type: 'set_tags', node_id: nodeId, tags, ...this.signature(challenge.setTags(nodeId), bound.setTags(nodeId, normalised)) };
  }

  private requireNodeId(): Result<number> {
    const id = this.nodeId;
    return id === null ? err('not_running', 'not registered with the registry yet', { hint: 'call register() first' }) : ok(id);
  }

  private async sendSetHostname(hostname: string, internal = false): Promise<Result<{ hostname: string }>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.requestWhenReady(
      {
        type: 'set_hostname',
        node_id: me.value,
        hostname,
        ...this.signature(challenge.setHostname(me.value), bound.setHostname(me.value, hostname)),
      },
      this.opts.requestTimeoutMs,
      internal,
    );
    return r.ok ? decodeSetHostnameOk(r.value) : r;
  }

  private async sendSetVisibility(isPublic: boolean, internal = false): Promise<Result<{ isPublic: boolean }>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const r = await this.requestWhenReady(
      {
        type: 'set_visibility',
        node_id: me.value,
        public: isPublic,
        ...this.signature(challenge.setVisibility(me.value), bound.setVisibility(me.value, isPublic)),
      },
      this.opts.requestTimeoutMs,
      internal,
    );
    return r.ok ? decodeSetVisibilityOk(r.value) : r;
  }

  private async sendTrust(type: 'report_trust' | 'revoke_trust', peerId: number, internal = false): Promise<Result<void>> {
    const me = this.requireNodeId();
    if (!me.ok) return me;
    const base = type === 'report_trust' ? challenge.reportTrust(me.value, peerId) : challenge.revokeTrust(me.value, peerId);
    const r = await this.requestWhenReady({ type, node_id: me.value, peer_id: peerId, ...this.signature(base) }, this.opts.requestTimeoutMs, internal);
    return r.ok ? ok() : r;
  }

  private async doRegister(internal: boolean): Promise<Result<RegisterResult>> {
    if (!this.registration) return err('invalid_argument', 'nothing to register');
    const { listenAddr, publicKeyB64 } = this.registration;
    const send = () => {
      const msg: RegistryMessage = { type: 'register', listen_addr: listenAddr, public_key: publicKeyB64 };
      // Signed unless told to behave as an original client: proves the key, so nobody else can move our node.
      if (this.opts.freshSignatures !== 'never') {
        const recoveryKey = this.options.recoveryKey?.() ?? '';
        if (recoveryKey !== '') msg.recovery_key = recoveryKey;
        Object.assign(msg, this.freshSignature(bound.register(publicKeyB64, '', listenAddr, recoveryKey)));
      }
      return this.requestWhenReady(msg, this.opts.requestTimeoutMs, internal);
    };
    let r = await send();
    // Our clock is off: the error carried server_time (onData took the offset); once more with it.
    if (!r.ok && r.error.detail?.serverTime !== undefined) r = await send();
    if (!r.ok) return r;
    const reply = decodeRegisterOk(r.value);
    if (!reply.ok) return reply;
    const m = reply.value;
    const result: RegisterResult = { nodeId: m.nodeId, address: m.address, publicKey: m.publicKey };
    if (m.hostname !== undefined) result.hostname = m.hostname;
    const token = m.beaconToken !== undefined ? Buffer.from(m.beaconToken, 'base64') : null;
    if (token && token.length === BEACON_TOKEN_BYTES) result.beaconToken = new Uint8Array(token);
    // Our registry announces its extensions to a signed registration; their absence means an original one.
    if (m.extensions.includes(EXTENSION_FRESH_SIGNATURES)) {
      this.isOriginalRegistry = false;
      if (this.opts.freshSignatures !== 'never') this.isFresh = true;
    } else {
      this.isOriginalRegistry = true;
      if (this.opts.freshSignatures === 'auto') this.isFresh = false;
    }
    if (this.current && this.current.nodeId !== result.nodeId) {
      this.options.logger?.warn({ old: this.current.nodeId, new: result.nodeId }, 'registry gave a new node id');
    }
    this.current = result;
    this.emit({ kind: 'registered', result });
    return ok(result);
  }

  /** Subscribe to pushes (our registry); polling otherwise or when it fails. Never changes how we sign. */
  private async subscribePush(internal: boolean): Promise<void> {
    const me = this.nodeId;
    if (me === null) return;
    if (this.opts.freshSignatures === 'never' || this.isOriginalRegistry) {
      this.setPushMode(false);
      return;
    }
    const r = await this.requestWhenReady(
      { type: 'subscribe_push', node_id: me, ...this.freshSignature(challenge.subscribePush(me)) },
      this.opts.requestTimeoutMs,
      internal,
    );
    if (r.ok) {
      this.setPushMode(true);
    } else {
      // Whatever the error looks like (with or without `code`), the registry announced our extensions: no
      // downgrade to bare signatures, only polling.
      this.setPushMode(false);
      this.options.logger?.warn({ err: r.error.message }, 'registry push subscription failed; polling');
    }
    // Whatever queued while we were away.
    void this.pollHandshakes();
  }

  private setPushMode(isPushing: boolean): void {
    this.isPushing = isPushing;
    this.emit({ kind: 'push_mode', isPushing, isOriginalRegistry: this.isOriginalRegistry });
    this.pollTimer?.cancel();
    this.pollTimer = null;
    const everyMs = isPushing ? this.opts.pollWithPushMs : this.opts.pollFallbackMs;
    if (everyMs > 0 && this.registration) this.pollTimer = this.driver.every(everyMs, () => void this.pollHandshakes());
  }

  private startTimers(): void {
    if (this.heartbeatTimer || this.opts.heartbeatIntervalMs <= 0) return;
    this.heartbeatTimer = this.driver.every(this.opts.heartbeatIntervalMs, () => void this.onHeartbeatTick());
  }

  private stopTimers(): void {
    this.heartbeatTimer?.cancel();
    this.pollTimer?.cancel();
    this.heartbeatTimer = null;
    this.pollTimer = null;
  }

  private async onHeartbeatTick(): Promise<void> {
    if (this.state !== 'ready' || this.nodeId === null) return;
    const r = await this.heartbeat();
    if (r.ok) {
      this.heartbeatFailures = 0;
      return;
    }
    this.heartbeatFailures++;
    // The registry forgot us (restart without store, reaped): re-register; repeated failures: new connection.
    if (r.error.code === 'not_found') void this.restore();
    else if (this.heartbeatFailures >= 3) this.conn?.sock.destroy();
  }

  private emit(e: RegistryEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (ex) {
        this.options.logger?.error({ err: ex }, 'registry event listener threw');
      }
    }
  }

  /**
   * Handshake items may come by push and again by poll (the registry queues what it pushes until the next
   * poll): deliver each once. A copy is skipped only when the *other* source already delivered the same item
   * and that copy is not yet paired: two answers from one peer in the same second (approve, untrust, approve
   * again) are two items of one source, and both are delivered.
   */
  private deliverOnce(e: Extract<RegistryEvent, { kind: 'handshake_request' | 'handshake_response' }>): void {
    const key =
      e.kind === 'handshake_request'
        ? `q:${e.request.fromNodeId}:${e.request.timestampSec}:${e.request.justification}`
        : `r:${e.response.fromNodeId}:${e.response.accept}:${e.response.timestampSec}`;
    const now = this.opts.nowMs();
    const u = this.unpaired.get(key);
    if (u && u.via !== e.via) {
      if (--u.count === 0) this.unpaired.delete(key);
      return;
    }
    if (u) u.count++;
    else this.unpaired.set(key, { via: e.via, count: 1, atMs: now });
    if (this.unpaired.size > 4096) {
      for (const [k, v] of this.unpaired) if (now - v.atMs > 10 * 60_000 || this.unpaired.size > 4096) this.unpaired.delete(k);
    }
    this.emit(e);
  }

  // ---- internals: connection ----

  private waitReady(timeoutMs: number): Promise<boolean> {
    if (this.state === 'ready') return Promise.resolve(true);
    if (this.state === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = this.driver.after(timeoutMs, () => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(false);
      });
      const done = () => {
        t.cancel();
        resolve(this.state === 'ready');
      };
      this.readyWaiters.push(done);
    });
  }

  /** `internal` requests (session restore) go out while the connection is still restoring. */
  private async requestWhenReady(msg: RegistryMessage, timeoutMs: number, internal: boolean): Promise<Result<RegistryMessage>> {
    if (this.state === 'closed') return err('not_running', 'registry client is closed');
    if (this.state === 'idle') this.dial();
    const started = this.opts.nowMs();
    if (!internal && this.state !== 'ready') {
      const isReady = await this.waitReady(timeoutMs);
      if (!isReady) {
        return (this.state as State) === 'closed'
          ? err('not_running', 'registry client is closed')
          : err('timeout', `registry ${this.addrText} not reachable within ${timeoutMs} ms`);
      }
    }
    const conn = this.conn;
    if (!conn || (!internal && this.state !== 'ready')) return err('connection_failed', 'registry connection lost');
    const frame = encodeRegistryFrame(msg);
    if (!frame.ok) return frame;
    const type = messageType(msg);
    const leftMs = Math.max(1, timeoutMs - (this.opts.nowMs() - started));
    return new Promise((resolve) => {
      const entry: PendingRequest = {
        type,
        resolve,
        timer: this.driver.after(leftMs, () => {
          // The reply may still come; with no request ids the only safe way on is a fresh connection.
          resolve(err('timeout', `registry did not answer ${type} within ${timeoutMs} ms`));
          entry.resolve = () => undefined;
          if (this.conn === conn) conn.sock.destroy();
        }),
      };
      conn.pending.push(entry);
      conn.sock.write(frame.value);
    });
  }

  private dial(): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    if (!this.target.ok) {
      this.options.logger?.error({ addr: this.addrText }, 'bad registry address');
      this.scheduleReconnect('bad registry address');
      return;
    }
    const stream = this.connectStream(this.target.value.host, this.target.value.port);
    if (!(stream instanceof Promise)) {
      this.attach(stream, true);
      return;
    }
    let isAbandoned = false;
    const connectTimer = this.driver.after(this.opts.connectTimeoutMs, () => {
      isAbandoned = true;
      this.scheduleReconnect('connect timeout');
    });
    void stream.then((r) => {
      if (isAbandoned || this.state === 'closed') {
        if (r.ok) r.value.destroy();
        return;
      }
      connectTimer.cancel();
      if (!r.ok) {
        const isNew = this.lastConnectError?.message !== r.error.message;
        this.lastConnectError = r.error;
        if (isNew) this.options.logger?.warn({ code: r.error.code, hint: r.error.hint }, `registry connect failed: ${r.error.message}`);
        this.scheduleReconnect(r.error.message);
        return;
      }
      this.lastConnectError = null;
      this.attach(r.value, false);
    });
  }

  /** Use `sock` as the connection: `awaitConnect` waits for its 'connect' event, else it is open already. */
  private attach(sock: Duplex, awaitConnect: boolean): void {
    const conn: Conn = { sock, decoder: new RegistryFrameDecoder(), pending: [], isReady: false };
    this.conn = conn;
    const tcp = sock as Partial<Pick<import('node:net').Socket, 'setNoDelay' | 'setKeepAlive'>>;
    tcp.setNoDelay?.(true);
    const connectTimer = awaitConnect ? this.driver.after(this.opts.connectTimeoutMs, () => sock.destroy(new Error('connect timeout'))) : null;
    const onOpen = (): void => {
      connectTimer?.cancel();
      this.reconnectAttempt = 0;
      tcp.setKeepAlive?.(true, 30_000);
      void this.restore();
    };
    if (awaitConnect) sock.on('connect', onOpen);
    sock.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    let isOpen = !awaitConnect;
    sock.on('connect', () => {
      isOpen = true;
      this.lastConnectError = null;
    });
    // A plain connect that fails (refused, unreachable, timed out) is what `info` shows until one succeeds.
    sock.on('error', (e: Error) => {
      if (!isOpen) this.lastConnectError = pilotError('connection_failed', `cannot connect to the registry at ${this.addrText}: ${e.message}`);
    });
    sock.on('close', () => {
      connectTimer?.cancel();
      for (const p of conn.pending.splice(0)) {
        p.timer.cancel();
        p.resolve(err('connection_failed', 'registry connection lost'));
      }
      if (this.conn !== conn) return;
      this.conn = null;
      this.isPushing = false;
      if (this.state === 'closed') return;
      const wasReady = this.state === 'ready';
      if (wasReady) this.emit({ kind: 'disconnected', error: 'connection closed' });
      this.scheduleReconnect('connection closed');
    });
    if (!awaitConnect) onOpen();
  }

  /** After (re)connecting: re-register and re-apply the session before user requests flow. */
  private async restore(): Promise<void> {
    const conn = this.conn;
    if (!conn || this.state === 'closed') return;
    this.state = 'restoring';
    // The first register() in flight registers itself once ready: restoring too would register twice.
    const isFirstRegisterPending = this.registerCalls > 0 && this.current === null;
    if (this.registration && !isFirstRegisterPending) {
      const r = await this.doRegister(true);
      if (!r.ok) {
        this.options.logger?.warn({ err: r.error.message }, 'registry re-register failed');
        conn.sock.destroy();
        return;
      }
      // Best effort: a failure here (e.g. hostname taken meanwhile) is logged, not fatal.
      const steps: Promise<Result<unknown>>[] = [];
      if (this.desiredHostname) steps.push(this.sendSetHostname(this.desiredHostname, true));
      if (this.desiredPublic !== null) steps.push(this.sendSetVisibility(this.desiredPublic, true));
      if (this.desiredTags) {
        const me = this.nodeId!;
        steps.push(this.requestWhenReady(this.setTagsMessage(me, this.desiredTags), this.opts.requestTimeoutMs, true));
      }
      for (const peer of this.reportedTrust) steps.push(this.sendTrust('report_trust', peer, true));
      for (const s of await Promise.all(steps)) {
        if (!s.ok) this.options.logger?.warn({ err: s.error.message }, 'registry session restore step failed');
      }
      if (this.conn !== conn) return;
      await this.subscribePush(true);
    }
    if (this.conn !== conn || (this.state as State) === 'closed') return;
    this.state = 'ready';
    this.heartbeatFailures = 0;
    this.emit({ kind: 'connected' });
    for (const w of this.readyWaiters.splice(0)) w();
  }

  private scheduleReconnect(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    // With alternates: the next one now (a short jittered pause); the backoff grows once every one failed.
    let isNextRound = true;
    if (this.targets.length > 1) {
      const from = this.addrText;
      this.targetIndex = (this.targetIndex + 1) % this.targets.length;
      this.target = this.targets[this.targetIndex]!;
      isNextRound = this.targetIndex === 0;
      this.options.logger?.info({ from, to: this.addrText, reason }, 'registry failover: trying the next registry');
    }
    const attempt = isNextRound ? this.reconnectAttempt : 0;
    const base = Math.min(this.opts.reconnectMaxDelayMs, this.opts.reconnectInitialDelayMs * 2 ** attempt);
    const delayMs = Math.round(base * (0.5 + this.rng.next() * 0.5)); // jitter: many daemons, one registry restart
    if (isNextRound) this.reconnectAttempt = Math.min(this.reconnectAttempt + 1, 30);
    this.options.logger?.debug({ reason, delayMs }, 'registry reconnect scheduled');
    this.reconnectTimer?.cancel();
    this.reconnectTimer = this.driver.after(delayMs, () => {
      this.reconnectTimer = null;
      this.dial();
    });
  }

  private onData(conn: Conn, chunk: Buffer): void {
    const msgs = conn.decoder.push(chunk);
    if (!msgs.ok) {
      this.options.logger?.warn({ err: msgs.error.message }, 'registry sent a bad frame; reconnecting');
      conn.sock.destroy();
      return;
    }
    for (const m of msgs.value) {
      if (isPush(m)) {
        this.onPush(m);
        continue;
      }
      const p = conn.pending.shift();
      if (!p) continue; // unsolicited non-push frame: ignore
      p.timer.cancel();
      if (messageType(m) !== 'error') {
        p.resolve(ok(m));
        continue;
      }
      const e = decodeErrorReply(m);
      p.resolve(e.ok ? toError(p.type, e.value) : e);
      if (e.ok && e.value.serverTimeSec !== undefined) {
        this.clockOffsetSec = e.value.serverTimeSec - Math.floor(this.opts.nowMs() / 1000);
      }
    }
  }

  private onPush(m: RegistryMessage): void {
    const push = decodePush(m);
    if (!push.ok) {
      // Pushes of other rooms (push_network_change: src/node/networks/) go to their listeners as frames.
      if (this.pushFrameListeners.size > 0) for (const l of this.pushFrameListeners) l(m);
      else this.options.logger?.debug({ type: messageType(m) }, 'unknown registry push ignored');
      return;
    }
    const p = push.value;
    switch (p.kind) {
      case 'handshake_request':
        this.deliverOnce({ kind: 'handshake_request', via: 'push', request: p.request });
        return;
      case 'handshake_response':
        this.deliverOnce({ kind: 'handshake_response', via: 'push', response: p.response });
        return;
      case 'trust_revoked':
        this.reportedTrust.delete(p.byNodeId);
        this.emit({ kind: 'trust_revoked', byNodeId: p.byNodeId, timestampSec: p.timestampSec });
        return;
      case 'key_rotated':
        this.emit({ kind: 'key_rotated', statement: p.statement });
        return;
    }
  }
}

/** Map a registry error reply to a Result. Our registry sends `code`; the original only `error` text. */
function toError(requestType: string, e: ErrorReply): Result<never> {
  const text = e.error || 'registry error';
  let mapped: ErrorCode;
  if (e.code !== undefined) mapped = e.code;
  else if (requestType === 'resolve' || requestType === 'punch') mapped = 'connection_failed';
  else if (requestType === 'lookup' || requestType === 'resolve_hostname') mapped = 'not_found';
  else mapped = 'internal';
  const detail: Record<string, unknown> = { registryError: text, requestType };
  if (e.code !== undefined) detail.registryCode = e.code;
  if (e.serverTimeSec !== undefined) detail.serverTime = e.serverTimeSec;
  return err(mapped, `registry: ${text}`, { detail });
}
