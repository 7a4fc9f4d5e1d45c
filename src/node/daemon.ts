// The daemon core: identity, registry membership, trust, encrypted tunnels, transport connections and
// datagrams over one UDP socket. It implements the parts of NodeApi that need no service protocol, and
// ServiceHost for the built-in services (composed above it, in sdk/local-node.ts).
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { err, errFrom, ok, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { monotonicClock, type Micros } from '../core/clock.js';
import { loadOrCreateIdentity, sign, toBase64, fromBase64, type Identity } from '../crypto/index.js';
import { openDatapath, type Datapath, type RecvBatch } from '../datapath/index.js';
import { NatTraversal } from './nat-traversal.js';
import { formatAddr, parseAddr, isValidPort } from '../wire/address.js';
import { isNoiseFamily } from '../wire/noise-frame.js';
import { isPilp } from '../wire/legacy-frame.js';
import { isBeaconMessage } from '../wire/beacon-message.js';
import { KIND_DATAGRAM, KIND_STREAM, DATAGRAM_HEADER_BYTES, decodeDatagram, encodeDatagram } from '../wire/segment.js';
import { RegistryClient, type LookupResult, type PeerSuite, type RegistryEvent } from './registry-client.js';
import { dialPlan, v05KeyFrom, type DialPlan } from './peer-suite.js';
import { TrustStore } from './trust-store.js';
import { TunnelManager, type TunnelPeer, type UdpEndpoint, type PeerContact } from './tunnel-manager.js';
import { ConnectionTable } from './connection-table.js';
import { LegacyTunnels, LEGACY_CONNECTION_ID_BASE } from './legacy-tunnels.js';
import { DatagramPorts } from './datagram-ports.js';
import { HOSTNAME_RE, parseDaemonAddresses, type DaemonAddresses, type DaemonOptions } from './daemon-options.js';
import { homePaths, prepareHome, type HomePaths } from './home.js';
import type {
  ConnectionEntry,
  DatagramSocket,
  FindResult,
  NodeInfo,
  PeerEntry,
  PeerRef,
  PendingRequest,
  PilotStream,
  PortListener,
  ServiceHost,
  TrustEntry,
} from './api.js';

export const VERSION = '0.1.0';

const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
/** How often path liveness and NAT traversal run (src/node/nat-traversal.ts checkPaths). */
const PATH_CHECK_INTERVAL_MS = 1000;
/** A dial that hears nothing from the peer this long re-handshakes (the peer may have restarted). */
const DIAL_REHANDSHAKE_AFTER_MS = 600;
/** PILA exchange budget when a peer did not answer Noise. */
const LEGACY_CONNECT_TIMEOUT_MS = 3000;
/** PILA exchange budget for a peer our registry marks v0.5 (it replaces the Noise handshake's 5 s). */
const V05_CONNECT_TIMEOUT_MS = 5000;
/** What the registry said a node speaks (lookup_ok `suite`) is reused this long, µs. */
const SUITE_CACHE_US = 30_000_000;
const MAX_SUITE_CACHE = 4096;
export class Daemon implements ServiceHost {
  readonly paths: HomePaths;
  readonly identity: Identity;
  readonly trust: TrustStore;
  readonly registry: RegistryClient;
  private datapath!: Datapath;
  private tunnels!: TunnelManager;
  private conns!: ConnectionTable;
  private dgrams!: DatagramPorts;
  /** The original v0.5 suite (PILA/PILS + its transport), for peers that do not speak Noise. */
  private legacy!: LegacyTunnels;
  /** Suite each looked-up node speaks, per our registry (absent: unknown, e.g. an original registry). */
  private readonly suites = new Map<number, { suite: PeerSuite | undefined; atUs: number }>();
  /** Discovery, NAT classification, punching, birthday probing, path liveness. */
  private nat!: NatTraversal;
  private myNodeId = 0;
  private myAddress = '0:0000.0000.0000';
  private hostname: string | null;
  private isPublic: boolean;
  private tags: string[] = [];
  private isRegistryUp = false;
  private readonly startedAtMs = Date.now();
  private readonly hostnames = new Map<number, string>();
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private beaconTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private isShuttingDown = false;
  /** PeerRef → node id, for the datagram fast path. */
  private readonly refCache = new Map<PeerRef, number>();
  private readonly dgramBuf = new Uint8Array(2048);
  /** The primary beacon; `beaconEndpoint` is the same address when relaying is allowed, else null. */
  private readonly beaconAddr: UdpEndpoint;
  private readonly beaconEndpoint: UdpEndpoint | null;
  private readonly nowUs = (): Micros => monotonicClock.nowUs();

  private constructor(
    readonly opts: DaemonOptions,
    readonly logger: Logger,
    identity: Identity,
    trust: TrustStore,
    private readonly addrs: DaemonAddresses,
  ) {
    this.paths = homePaths(opts.home);
    this.identity = identity;
    this.trust = trust;
    this.hostname = opts.hostname;
    this.isPublic = opts.public;
    this.beaconAddr = { ...addrs.beacon };
    this.beaconEndpoint = opts.relay ? this.beaconAddr : null;
    this.registry = new RegistryClient({
      registryAddr: addrs.registry,
      sign: (msg) => sign(identity, msg),
      logger: logger.child({ component: 'registry' }),
    });
  }

  /** Load identity and state, bind the tunnel socket, register. Registry failure is not fatal (retries). */
  static async start(opts: DaemonOptions, logger: Logger): Promise<Result<Daemon>> {
    const addrs = parseDaemonAddresses(opts);
    if (!addrs.ok) return addrs;
    const paths = homePaths(opts.home);
    const home = prepareHome(paths.home); // 0700, ours, or refused (unsafe_home)
    if (!home.ok) return home;
    const id = loadOrCreateIdentity(opts.identity);
    if (!id.ok) return id;
    if (id.value.created) logger.info({ path: opts.identity }, 'created a new identity');
    const trust = TrustStore.open(paths.trust, Date.now(), {
      onWriteError: (e) => logger.error({ error: e.message }, 'could not persist trust requests'),
    });
    if (!trust.ok) return trust;
    const d = new Daemon(opts, logger, id.value.identity, trust.value, addrs.value);
    const r = await d.bind();
    if (!r.ok) return r;
    return ok(d);
  }

  private async bind(): Promise<Result<void>> {
    const dp = await openDatapath({ host: this.addrs.listen.host, port: this.addrs.listen.port, logger: this.logger });
    if (!dp.ok) return dp;
    this.datapath = dp.value;
    this.logger.info({ datapath: dp.value.kind, listen: dp.value.localAddress }, 'tunnel socket bound');

    this.nat = new NatTraversal({
      logger: this.logger.child({ component: 'nat' }),
      nowUs: this.nowUs,
      opts: this.opts,
      datapath: () => this.datapath,
      tunnels: () => this.tunnels,
      nodeId: () => this.myNodeId,
      beaconAddr: this.beaconAddr,
      beaconEndpoint: this.beaconEndpoint,
      listenHost: this.addrs.listen.host,
      busyPeers: () => this.conns.peersWithConnections(),
      flushConnections: () => this.conns.flush(),
      beaconToken: () => this.registry.beaconToken,
      acceptsPunchFrom: (id) => this.isPublic || this.trust.isTrusted(id),
      legacyRelayed: (frame, sender, now) => this.legacy.handleFrame(frame, this.beaconAddr.ip, this.beaconAddr.port, now, sender),
    });
    this.tunnels = new TunnelManager({
      identity: this.identity,
      nodeId: () => this.myNodeId,
      udp: {
        send: (data, ip, port) => this.nat.sendMain(data, ip, port),
        sendBatch: (batch) => void this.datapath.sendBatch(batch),
      },
      logger: this.logger.child({ component: 'tunnel' }),
      nowUs: this.nowUs,
      resolvePeer: (nodeId) => this.contactOf(nodeId),
      authorize: (nodeId, key) => this.authorizeTunnel(nodeId, key),
      onPlaintext: (peer, plaintext, now) => this.handlePlaintext(peer, plaintext, now),
      relay: () => this.beaconEndpoint,
      onHandshakeStart: (peer) => this.nat.requestPunch(peer.nodeId),
      directOnlyAttempts: this.opts.relayOnly ? 0 : 2,
    });
    this.conns = new ConnectionTable({
      logger: this.logger.child({ component: 'transport' }),
      nowUs: this.nowUs,
      sendTo: (peer, plaintext, now) => this.sendToPeer(peer, plaintext, now),
      flushTx: () => this.tunnels.flushTx(),
      addressOf: (nodeId) => this.addressOf(nodeId),
      connectionOptions: { idleTimeoutUs: this.opts.idleTimeoutMs * 1000 },
    });
    this.dgrams = new DatagramPorts({
      send: (to, fromPort, toPort, data) => this.sendDatagram(to, fromPort, toPort, data),
    });
    this.legacy = new LegacyTunnels({
      identity: this.identity,
      nodeId: () => this.myNodeId,
      logger: this.logger.child({ component: 'legacy' }),
      nowUs: this.nowUs,
      udp: { send: (data, ip, port) => this.nat.sendMain(data, ip, port) },
      relay: () => this.beaconEndpoint,
      relayOnly: this.opts.relayOnly,
      // No downgrade: a PILA in the name of a node our registry marks Noise is refused (v05KeyFrom).
      registryKey: async (id) => {
        const l = await this.lookupNode(id);
        return l.ok ? v05KeyFrom(id, l.value) : l;
      },
      authorize: (id, key) => this.authorizeTunnel(id, key),
      isTrusted: (id) => this.trust.isTrusted(id),
      isPublic: () => this.isPublic,
      contact: (id) => this.contactOf(id),
      deliverInbound: (port, stream) => this.conns.deliverInbound(port, stream),
      deliverDatagram: (from, sp, dp, data) => this.dgrams.deliver(this.addressOf(from), from, sp, dp, data),
      addressOf: (id) => this.addressOf(id),
      allowInsecureLegacy: this.opts.allowInsecureLegacy,
      connectionOptions: { idleTimeoutUs: this.opts.idleTimeoutMs * 1000 },
    });
    this.datapath.onReceive((batch) => this.handleBatch(batch));

    this.registry.on((e) => this.handleRegistryEvent(e));
    const reg = await this.registerWithRegistry();
    if (!reg.ok) {
      // Keep running: the client reconnects with backoff, and tunnels to known peers keep working.
      this.logger.warn({ registry: this.opts.registry, error: reg.error.message }, 'registry unreachable; retrying in the background');
    }
    this.nat.discoverEndpoint();
    this.beaconTimer = setInterval(() => this.nat.discoverEndpoint(), 25_000);
    this.keepaliveTimer = setInterval(() => this.keepalive(), this.opts.keepaliveMs);
    this.probeTimer = setInterval(() => this.nat.checkPaths(), PATH_CHECK_INTERVAL_MS);
    return ok();
  }

  private async registerWithRegistry(): Promise<Result<void>> {
    const c = await this.registry.connect();
    if (!c.ok) return c;
    const r = await this.registry.register(this.advertisedListenAddr(), this.identity.publicKey);
    if (!r.ok) return r;
    this.applyRegistration(r.value.nodeId, r.value.address);
    return this.applyDirectoryState();
  }

  private applyRegistration(nodeId: number, address: string): void {
    if (this.myNodeId !== 0 && this.myNodeId !== nodeId) {
      this.logger.warn({ old: this.myNodeId, new: nodeId }, 'registry assigned a different node id');
    }
    this.myNodeId = nodeId;
    this.myAddress = address;
    this.isRegistryUp = true;
  }

  /** Push hostname, visibility and tags after (re)registration. */
  private async applyDirectoryState(): Promise<Result<void>> {
    if (this.hostname) {
      const h = await this.registry.setHostname(this.hostname);
      if (!h.ok) {
        this.logger.warn({ hostname: this.hostname, error: h.error.message }, 'could not set hostname');
        if (h.error.code === 'already_exists') return h;
      }
    }
    if (this.isPublic) await this.registry.setVisibility(true);
    if (this.tags.length > 0) await this.registry.setTags(this.tags);
    return ok();
  }

  private advertisedListenAddr(): string {
    const a = this.datapath.localAddress;
    // A wildcard bind is advertised with our LAN address (the LAN shortcut for peers behind the same NAT);
    // peers elsewhere use the endpoint the beacon observed.
    const ip = a.ip === '0.0.0.0' ? lanAddress(this.addrs.registry.host) : a.ip;
    return `${ip}:${a.port}`;
  }



  private handleRegistryEvent(e: RegistryEvent): void {
    switch (e.kind) {
      case 'registered':
        this.applyRegistration(e.result.nodeId, e.result.address);
        void this.applyDirectoryState();
        this.nat.discoverEndpoint();
        break;
      case 'connected':
        break;
      case 'disconnected':
        this.isRegistryUp = false;
        this.logger.warn({ error: e.error }, 'registry connection lost');
        break;
      case 'handshake_request':
        void this.handleIncomingHandshake(e.request.fromNodeId, e.request.justification, e.request.fromHostname ?? null, e.request.fromPublicKey ?? null);
        break;
      case 'handshake_response':
        void this.handleHandshakeResponse(e.response.fromNodeId, e.response.accept);
        break;
      case 'trust_revoked':
        this.handleTrustRevoked(e.byNodeId);
        break;
      case 'push_mode':
        this.logger.info({ push: e.isPushing, original_registry: e.isOriginalRegistry }, 'registry trust delivery mode');
        break;
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Packets

  private handleBatch(batch: RecvBatch): void {
    const now = this.nowUs();
    for (let i = 0; i < batch.count; i++) {
      const p = batch.payload(i);
      if (isNoiseFamily(p)) this.tunnels.handleFrame(p, batch.ip(i), batch.port(i), now);
      else if (isBeaconMessage(p)) this.nat.handleBeacon(p, batch.ip(i), batch.port(i), now);
      else if (isPilp(p)) this.nat.handlePunch(batch.ip(i), batch.port(i));
      else this.legacy.handleFrame(p, batch.ip(i), batch.port(i), now);
    }
    this.conns.flush();
    this.tunnels.flushTx();
  }










  private handlePlaintext(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): void {
    const kind = plaintext[0];
    if (kind === KIND_STREAM) {
      this.conns.handleSegment(peer.nodeId, plaintext, now);
    } else if (kind === KIND_DATAGRAM) {
      const d = decodeDatagram(plaintext);
      if (d.ok) this.dgrams.deliver(this.addressOf(peer.nodeId), peer.nodeId, d.value.srcPort, d.value.dstPort, d.value.payload);
    } else {
      this.nat.handleControl(peer, plaintext, now);
    }
  }

  private sendToPeer(nodeId: number, plaintext: Uint8Array, now: Micros): Result<void> {
    const peer = this.tunnels.peers.get(nodeId);
    if (!peer) return err('connection_failed', `no tunnel to node ${nodeId}`);
    return this.tunnels.sendPlaintext(peer, plaintext, now);
  }

  private keepalive(): void {
    const now = this.nowUs();
    for (const nodeId of this.conns.peersWithConnections()) {
      const peer = this.tunnels.peers.get(nodeId);
      if (peer?.isUp && now - peer.lastSendUs >= this.opts.keepaliveMs * 500) this.tunnels.sendKeepalive(peer, now);
    }
    this.tunnels.flushTx();
  }


  // ---------------------------------------------------------------------------------------------------
  // Peers and trust

  /** Where to reach a peer and which key it must prove. Errors: not_found, connection_failed, identity_changed. */
  private async contactOf(nodeId: number): Promise<Result<PeerContact>> {
    const trusted = this.trust.getTrusted(nodeId);
    // A trusted peer's key is the pin: the initiator uses it as the Noise responder static, so only its holder
    // can answer. The registry's key is fetched beside the endpoints only to report a change (identity_changed)
    // at once instead of a handshake that can only time out.
    const [l, r] = await Promise.all([this.lookupNode(nodeId), this.registry.resolve(nodeId)]);
    let key = trusted ? fromBase64(trusted.public_key) : null;
    if (trusted && l.ok && l.value.publicKey && l.value.publicKey !== trusted.public_key) {
      return errFrom(identityChanged(trusted.hostname ?? `node ${nodeId}`, nodeId, 'the registry now holds a different key for it'));
    }
    if (!key) {
      if (!l.ok) return errFrom(withCode(l.error, l.error.code === 'not_found' ? 'not_found' : 'connection_failed'));
      key = fromBase64(l.value.publicKey);
      if (!key) return err('connection_failed', `registry gave a malformed key for node ${nodeId}`);
    }
    const endpoints: UdpEndpoint[] = [];
    if (r.ok) {
      // LAN address first: two nodes behind one NAT reach each other without hairpinning (the LAN shortcut).
      for (const ep of [r.value.lanEndpoint, r.value.realEndpoint, r.value.observedEndpoint]) {
        if (ep && !endpoints.some((x) => x.ip === ep.ip && x.port === ep.port)) endpoints.push({ ...ep });
      }
    }
    const known = this.tunnels.peers.get(nodeId)?.endpoint;
    if (known && !endpoints.some((x) => x.ip === known.ip && x.port === known.port)) endpoints.unshift(known);
    if (this.opts.relayOnly && this.beaconEndpoint) {
      if (!r.ok) return errFrom(r.error);
      return ok({ ed25519: key, endpoints: [] });
    }
    if (endpoints.length === 0) {
      const why = r.ok ? 'no endpoint' : r.error.message;
      return err('connection_failed', `cannot reach node ${nodeId}: ${why}`, {
        hint: 'the peer must be online and trust you: `pilotctl handshake <peer>`, then wait for approval',
      });
    }
    return ok({ ed25519: key, endpoints });
  }

  /** Registry lookup that remembers the suite the node speaks (our registry's extension). */
  private async lookupNode(nodeId: number): Promise<Result<LookupResult>> {
    const l = await this.registry.lookup(nodeId);
    if (l.ok) {
      if (this.suites.size >= MAX_SUITE_CACHE) this.suites.clear();
      this.suites.set(nodeId, { suite: l.value.suite, atUs: this.nowUs() });
    }
    return l;
  }

  /**
   * How to reach a node: Noise, v0.5 at once (our registry marks it v0.5), or Noise then v0.5 (nobody said).
   * A live Noise session, or no v0.5 support here, means Noise without asking the registry.
   */
  private async dialPlanFor(nodeId: number): Promise<DialPlan> {
    if (!this.opts.legacy || this.tunnels.peers.get(nodeId)?.isUp) return 'noise';
    const cached = this.suites.get(nodeId);
    if (cached && this.nowUs() - cached.atUs < SUITE_CACHE_US) return dialPlan(cached.suite, true);
    const l = await this.lookupNode(nodeId);
    return dialPlan(l.ok ? l.value.suite : undefined, true);
  }

  private async authorizeTunnel(nodeId: number, key: Uint8Array): Promise<Result<void>> {
    const t = this.trust.getTrusted(nodeId);
    if (t) {
      return t.public_key === toBase64(key) ? ok() : err('connection_failed', `node ${nodeId} presented a key that differs from the trusted one`);
    }
    if (!this.isPublic) return err('connection_failed', `node ${nodeId} is not trusted`);
    // Public nodes accept anyone whose key the registry binds to the claimed node id.
    const l = await this.lookupNode(nodeId);
    if (!l.ok) return l;
    return l.value.publicKey === toBase64(key) ? ok() : err('connection_failed', `node ${nodeId} key does not match the registry`);
  }

  /** Node id for an address, hostname or numeric id. Errors: invalid_argument, not_found, identity_changed. */
  async resolveRef(ref: PeerRef): Promise<Result<number>> {
    const s = String(ref).trim();
    if (/^\d+$/.test(s)) {
      const n = Number(s);
      if (n > 0xffffffff) return err('invalid_argument', `node id ${s} is out of range`);
      return ok(n);
    }
    if (s.includes(':')) {
      const a = parseAddr(s);
      if (!a.ok) return err('invalid_argument', `invalid address '${s}'`, { hint: 'addresses look like 0:0000.0000.0001' });
      return ok(a.value.node);
    }
    if (!HOSTNAME_RE.test(s)) {
      return err('invalid_argument', `invalid hostname '${s}'`, { hint: 'lowercase letters, digits and hyphens, at most 63 characters' });
    }
    // Keys, not the registry, decide who a peer is: a trusted peer's hostname resolves from its pin. The registry
    // is still asked, only to notice that it now names someone else (a takeover, or a rotated key): that is
    // identity_changed, never a silent redirect. A registry that no longer knows the name (or is down) leaves
    // the pin in charge.
    const pinned = this.trust.listTrusted().find((t) => t.hostname === s);
    const r = await this.registry.resolveHostname(s);
    if (pinned) {
      if (r.ok && r.value.nodeId !== pinned.node_id) return errFrom(identityChanged(s, pinned.node_id, `the registry now maps it to node ${r.value.nodeId}`));
      return ok(pinned.node_id);
    }
    if (!r.ok) {
      // Other names we learned only answer while the registry is unreachable.
      if (r.error.code === 'timeout' || r.error.code === 'connection_failed' || r.error.code === 'not_running') {
        for (const [id, h] of this.hostnames) if (h === s) return ok(id);
      }
      return err('not_found', `no node named '${s}'`, { hint: 'check the hostname with `pilotctl find`; private nodes need a handshake first' });
    }
    for (const [id, h] of this.hostnames) if (h === s && id !== r.value.nodeId) this.hostnames.delete(id);
    this.hostnames.set(r.value.nodeId, s);
    return ok(r.value.nodeId);
  }

  addressOf(nodeId: number): string {
    return formatAddr({ network: 0, node: nodeId });
  }

  hostnameOf(nodeId: number): string | null {
    return this.hostnames.get(nodeId) ?? this.trust.getTrusted(nodeId)?.hostname ?? null;
  }

  private async handleIncomingHandshake(from: number, justification: string, hostname: string | null, publicKey: string | null): Promise<void> {
    if (hostname) this.hostnames.set(from, hostname);
    if (this.trust.isTrusted(from)) {
      // They lost their state or retried: answer again so both sides agree.
      await this.registry.respondHandshake(from, true);
      return;
    }
    // The registry re-delivers queued requests by poll after a restart, without hostname or key: keep what
    // the first delivery told us, and its time.
    const prior = this.trust.getPending(from);
    const r = this.trust.addPending({
      node_id: from,
      justification: justification || prior?.justification || '',
      hostname: hostname ?? prior?.hostname ?? null,
      public_key: publicKey ?? prior?.public_key ?? null,
      received_at: prior?.received_at ?? new Date().toISOString(),
    });
    if (!r.ok) this.logger.error({ error: r.error.message }, 'could not persist a trust request');
    else if (r.value.dropped !== null) this.logger.warn({ dropped: r.value.dropped, from }, 'pending trust requests are full: dropped the oldest');
    this.logger.info({ from, hostname, justification }, 'trust request received');
    // A handshake in both directions, or auto-approve mode, approves at once.
    if (this.trust.getOutgoing(from) || this.opts.trustAutoApprove) await this.approve(from);
  }

  private async handleHandshakeResponse(from: number, accept: boolean): Promise<void> {
    const outgoing = this.trust.getOutgoing(from);
    if (!accept) {
      this.logger.info({ from }, 'trust request rejected');
      this.trust.removeOutgoing(from);
      return;
    }
    if (this.trust.isTrusted(from)) {
      this.trust.setMutual(from, true);
      this.trust.removeOutgoing(from);
      return;
    }
    if (!outgoing) return; // an answer to nothing we asked
    const key = await this.peerKey(from);
    if (!key.ok) {
      this.logger.warn({ from, error: key.error.message }, 'approved by a node we cannot look up');
      return;
    }
    this.trust.addTrusted({
      node_id: from,
      public_key: key.value,
      hostname: this.hostnameOf(from),
      approved_at: new Date().toISOString(),
      mutual: true,
    });
    this.trust.removeOutgoing(from);
    // Let the registry know we trust them too, so they may resolve our endpoint.
    await this.registry.reportTrust(from);
    this.logger.info({ peer: from }, 'mutual trust established');
  }

  private handleTrustRevoked(by: number): void {
    if (!this.trust.isTrusted(by)) return;
    this.trust.removeTrusted(by);
    this.dropPeer(by, pilotError('connection_failed', `node ${by} revoked trust`));
    this.logger.info({ peer: by }, 'peer revoked trust');
  }

  private dropPeer(nodeId: number, reason: PilotError): void {
    this.conns.closePeer(nodeId, reason);
    this.legacy.closePeer(nodeId, reason);
    this.tunnels.closePeer(nodeId, reason);
  }

  private async peerKey(nodeId: number): Promise<Result<string>> {
    const pending = this.trust.getPending(nodeId);
    const l = await this.registry.lookup(nodeId);
    if (l.ok) {
      if (l.value.hostname) this.hostnames.set(nodeId, l.value.hostname);
      return ok(l.value.publicKey);
    }
    if (pending?.public_key) return ok(pending.public_key);
    return l;
  }

  private requireRegistered(): Result<void> {
    if (this.myNodeId === 0) {
      return err('connection_failed', 'not registered with the registry yet', { hint: `check that the rendezvous at ${this.opts.registry} is running` });
    }
    return ok();
  }

  // ---------------------------------------------------------------------------------------------------
  // NodeApi (core part)

  async info(): Promise<Result<NodeInfo>> {
    const a = this.datapath.localAddress;
    return ok({
      node_id: this.myNodeId,
      address: this.myAddress,
      hostname: this.hostname,
      public_key: toBase64(this.identity.publicKey),
      public: this.isPublic,
      tags: this.tags,
      registry: this.opts.registry,
      registry_connected: this.isRegistryUp,
      listen: `${a.ip}:${a.port}`,
      public_endpoint: this.nat.publicEndpoint,
      nat_type: this.nat.natType,
      uptime_s: Math.round((Date.now() - this.startedAtMs) / 1000),
      peers: [...this.tunnels.peers.values()].filter((p) => p.isUp).length,
      connections: this.conns.size,
      datapath: this.datapath.kind,
      version: VERSION,
    });
  }

  async setHostname(hostname: string): Promise<Result<{ hostname: string }>> {
    if (!HOSTNAME_RE.test(hostname)) {
      return err('invalid_argument', `invalid hostname '${hostname}'`, { hint: 'lowercase letters, digits and hyphens, at most 63 characters' });
    }
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.registry.setHostname(hostname);
    if (!r.ok) return r;
    this.hostname = hostname;
    return ok({ hostname });
  }

  async clearHostname(): Promise<Result<{ hostname: null }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.registry.setHostname('');
    if (!r.ok) return r;
    this.hostname = null;
    return ok({ hostname: null });
  }

  async setVisibility(isPublic: boolean): Promise<Result<{ public: boolean }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.registry.setVisibility(isPublic);
    if (!r.ok) return r;
    this.isPublic = isPublic;
    return ok({ public: isPublic });
  }

  async setTags(tags: string[]): Promise<Result<{ tags: string[] }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const r = await this.registry.setTags(tags);
    if (!r.ok) return r;
    this.tags = r.value.tags;
    return ok({ tags: this.tags });
  }

  async find(query: PeerRef): Promise<Result<FindResult>> {
    const id = await this.resolveRef(query);
    if (!id.ok) return id;
    const l = await this.registry.lookup(id.value);
    if (!l.ok) return l;
    if (l.value.hostname) this.hostnames.set(id.value, l.value.hostname);
    return ok({
      node_id: l.value.nodeId,
      address: l.value.address,
      hostname: l.value.hostname ?? null,
      public: l.value.isPublic,
      tags: l.value.tags ?? [],
      public_key: l.value.publicKey,
    });
  }

  async handshake(peer: PeerRef, justification: string): Promise<Result<{ node_id: number; status: string }>> {
    const reg = this.requireRegistered();
    if (!reg.ok) return reg;
    const id = await this.resolveRef(peer);
    if (!id.ok) return id;
    const nodeId = id.value;
    if (nodeId === this.myNodeId) return err('invalid_argument', 'cannot handshake with yourself');
    if (this.trust.isTrusted(nodeId)) return ok({ node_id: nodeId, status: 'already_trusted' });
    if (this.trust.getPending(nodeId)) {
      const a = await this.approve(nodeId);
      return a.ok ? ok({ node_id: nodeId, status: 'approved' }) : a;
    }
    const o = this.trust.addOutgoing({ node_id: nodeId, justification, sent_at: new Date().toISOString() });
    if (!o.ok) return o;
    const r = await this.registry.requestHandshake(nodeId, justification);
    // Asking again while our earlier request still waits is not an error: it is still pending.
    if (!r.ok && r.error.code === 'already_exists') return ok({ node_id: nodeId, status: 'pending' });
    if (!r.ok) {
      this.trust.removeOutgoing(nodeId);
      return r;
    }
    return ok({ node_id: nodeId, status: 'pending' });
  }

  async pending(): Promise<Result<{ pending: PendingRequest[] }>> {
    return ok({
      pending: this.trust.listPending().map((p) => ({
        node_id: p.node_id,
        address: this.addressOf(p.node_id),
        hostname: p.hostname,
        justification: p.justification,
        received_at: p.received_at,
      })),
    });
  }

  async approve(nodeId: number): Promise<Result<{ node_id: number; status: 'approved' }>> {
    const p = this.trust.getPending(nodeId);
    if (!p) return err('not_found', `no pending trust request from node ${nodeId}`, { hint: 'list them with `pilotctl pending`' });
    const key = await this.peerKey(nodeId);
    if (!key.ok) return key;
    const r = await this.registry.respondHandshake(nodeId, true);
    if (!r.ok) return r;
    const t = this.trust.addTrusted({
      node_id: nodeId,
      public_key: key.value,
      hostname: p.hostname ?? this.hostnameOf(nodeId),
      approved_at: new Date().toISOString(),
      mutual: true,
    });
    if (!t.ok) return t;
    this.trust.removeOutgoing(nodeId);
    await this.registry.reportTrust(nodeId);
    return ok({ node_id: nodeId, status: 'approved' });
  }

  async reject(nodeId: number, _reason?: string): Promise<Result<{ node_id: number; status: 'rejected' }>> {
    if (!this.trust.getPending(nodeId)) return err('not_found', `no pending trust request from node ${nodeId}`, { hint: 'list them with `pilotctl pending`' });
    const r = await this.registry.respondHandshake(nodeId, false);
    if (!r.ok) return r;
    const d = this.trust.removePending(nodeId);
    if (!d.ok) return d;
    return ok({ node_id: nodeId, status: 'rejected' });
  }

  async trusted(): Promise<Result<{ trusted: TrustEntry[] }>> {
    return ok({
      trusted: this.trust.listTrusted().map((t) => ({
        node_id: t.node_id,
        address: this.addressOf(t.node_id),
        hostname: t.hostname,
        mutual: t.mutual,
        approved_at: t.approved_at,
        public_key: t.public_key,
      })),
    });
  }

  async untrust(nodeId: number): Promise<Result<{ node_id: number; status: 'untrusted' }>> {
    if (!this.trust.isTrusted(nodeId)) return err('not_found', `node ${nodeId} is not trusted`, { hint: 'list trusted peers with `pilotctl trust`' });
    const r = this.trust.removeTrusted(nodeId);
    if (!r.ok) return r;
    this.dropPeer(nodeId, pilotError('connection_failed', `trust in node ${nodeId} was revoked`));
    const rv = await this.registry.revokeTrust(nodeId);
    if (!rv.ok) this.logger.warn({ peer: nodeId, error: rv.error.message }, 'registry did not record the revocation');
    return ok({ node_id: nodeId, status: 'untrusted' });
  }

  async dial(peer: PeerRef, port: number, opts: { timeoutMs?: number } = {}): Promise<Result<PilotStream>> {
    if (!isValidPort(port) || port === 0) return err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 1–65535' });
    const id = await this.resolveRef(peer);
    if (!id.ok) return id;
    if (id.value === this.myNodeId) return err('invalid_argument', 'cannot dial yourself');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    if (this.legacy.hasSession(id.value)) return this.legacy.dial(id.value, port, timeoutMs);
    const plan = await this.dialPlanFor(id.value);
    if (plan === 'v0.5') {
      // Our registry says an original client registered it: it speaks no Noise, so no Noise attempt first.
      const l = await this.legacy.connect(id.value, Math.min(timeoutMs, V05_CONNECT_TIMEOUT_MS));
      return l.ok ? this.legacy.dial(id.value, port, timeoutMs) : l;
    }
    let t: Result<TunnelPeer>;
    if (plan === 'noise-then-v0.5') {
      // Nobody told us its suite (an original registry): the Noise initiation and a probing PILA go out
      // together. Only an original node answers the probe (a daemon of ours refuses its marker bytes), so a
      // v0.5 session here is never a downgrade of ours, and an original is met without waiting out Noise.
      const noise = this.tunnels.ensureSession(id.value);
      const v05 = this.legacy.connect(id.value, LEGACY_CONNECT_TIMEOUT_MS, { probe: true });
      const first = await Promise.race([noise.then((r) => ({ isNoise: true, r })), v05.then((r) => ({ isNoise: false, r }))]);
      if (!first.isNoise && first.r.ok) return this.legacy.dial(id.value, port, timeoutMs);
      t = first.isNoise ? (first.r as Result<TunnelPeer>) : await noise;
      if (!t.ok) {
        if (t.error.code !== 'connection_failed') return t;
        const l = await v05;
        return l.ok ? this.legacy.dial(id.value, port, timeoutMs) : t;
      }
    } else {
      t = await this.tunnels.ensureSession(id.value);
      if (!t.ok) return t;
    }
    // A peer that restarted within the staleness window still looks up; if nothing at all comes back from it
    // soon after our SYN, re-handshake so the SYN's retransmission travels in a session it has.
    const tunnel = t.value;
    const dialStartUs = this.nowUs();
    const kick = setTimeout(() => {
      if (tunnel.lastRecvUs < dialStartUs) this.tunnels.rehandshake(tunnel);
    }, DIAL_REHANDSHAKE_AFTER_MS);
    const r = await this.conns.dial(id.value, port, timeoutMs);
    clearTimeout(kick);
    return r;
  }

  listen(port: number): Result<PortListener> {
    return this.conns.listen(port);
  }

  openDatagramSocket(port: number): Result<DatagramSocket> {
    return this.dgrams.open(port);
  }

  private sendDatagram(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    // Fast path: a peer we already resolved with a live session is sent to synchronously (no promise chain
    // per datagram: it was 59% of the 64-byte datagram profile).
    const known = this.refCache.get(to);
    const peer = known === undefined ? undefined : this.tunnels.peers.get(known);
    if (peer?.current && !peer.current.isExpired(this.nowUs())) return Promise.resolve(this.sendDatagramNow(peer, fromPort, toPort, data));
    return this.sendDatagramSlow(to, fromPort, toPort, data);
  }

  private async sendDatagramSlow(to: PeerRef, fromPort: number, toPort: number, data: Uint8Array): Promise<Result<void>> {
    const id = await this.resolveRef(to);
    if (!id.ok) return id;
    if (this.legacy.hasSession(id.value)) return this.legacy.sendDatagram(id.value, fromPort, toPort, data);
    if ((await this.dialPlanFor(id.value)) === 'v0.5') {
      const l = await this.legacy.connect(id.value, V05_CONNECT_TIMEOUT_MS);
      return l.ok ? this.legacy.sendDatagram(id.value, fromPort, toPort, data) : l;
    }
    const t = await this.tunnels.ensureSession(id.value);
    if (!t.ok) return t;
    if (this.refCache.size >= 4096) this.refCache.clear();
    this.refCache.set(to, id.value);
    return this.sendDatagramNow(t.value, fromPort, toPort, data);
  }

  private sendDatagramNow(peer: TunnelPeer, fromPort: number, toPort: number, data: Uint8Array): Result<void> {
    if (data.length + DATAGRAM_HEADER_BYTES > (peer.current?.maxPlaintextBytes ?? 0)) {
      return err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: 'datagrams carry at most 1415 bytes; use a stream' });
    }
    const n = encodeDatagram({ srcPort: fromPort, dstPort: toPort, payload: data }, this.dgramBuf);
    if (!n.ok) return n;
    return this.tunnels.sendPlaintext(peer, this.dgramBuf.subarray(0, n.value), this.nowUs());
  }

  async peers(): Promise<Result<{ peers: PeerEntry[] }>> {
    const now = this.nowUs();
    return ok({
      // A node whose Noise attempt failed and that talks v0.5 is listed once, as its v0.5 entry.
      peers: [...this.tunnels.peers.values()].filter((p) => p.isUp || !this.legacy.hasSession(p.nodeId)).map((p): PeerEntry => ({
        node_id: p.nodeId,
        address: this.addressOf(p.nodeId),
        hostname: this.hostnameOf(p.nodeId),
        endpoint: p.endpoint ? `${p.endpoint.ip}:${p.endpoint.port}` : null,
        path: !p.isUp ? 'none' : p.isRelayed ? 'relay' : 'direct',
        encrypted: p.isUp,
        suite: p.isUp ? 'noise' : null,
        trusted: this.trust.isTrusted(p.nodeId),
        last_seen_ms: p.lastRecvUs > 0 ? Math.round((now - p.lastRecvUs) / 1000) : null,
        rtt_ms: p.rttUs !== null ? Math.round(p.rttUs / 10) / 100 : null,
      })).concat(this.legacy.peers().map((p): PeerEntry => ({
        node_id: p.nodeId,
        address: this.addressOf(p.nodeId),
        hostname: this.hostnameOf(p.nodeId),
        endpoint: p.endpoint,
        path: p.isRelayed ? ('relay' as const) : ('direct' as const),
        encrypted: true,
        suite: 'legacy' as const,
        trusted: this.trust.isTrusted(p.nodeId),
        last_seen_ms: Math.round((now - p.lastRecvUs) / 1000),
        rtt_ms: null,
      }))),
    });
  }

  async connections(): Promise<Result<{ connections: ConnectionEntry[] }>> {
    return ok({ connections: [...this.conns.list(), ...this.legacy.list()] });
  }

  async disconnect(connectionId: number): Promise<Result<{ id: number }>> {
    if (connectionId >= LEGACY_CONNECTION_ID_BASE) return this.legacy.disconnect(connectionId);
    return this.conns.disconnect(connectionId);
  }

  // ServiceHost
  get nodeId(): number {
    return this.myNodeId;
  }
  get address(): string {
    return this.myAddress;
  }
  get home(): string {
    return this.paths.home;
  }

  async shutdown(): Promise<void> {
    if (this.isShuttingDown) return;
    this.isShuttingDown = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.beaconTimer) clearInterval(this.beaconTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.conns.close();
    this.dgrams.close();
    this.legacy.close();
    this.nat.close();
    this.tunnels.close();
    const t = this.trust.flush();
    if (!t.ok) this.logger.error({ error: t.error.message }, 'could not persist trust requests');
    await this.registry.close();
    await this.datapath.close();
  }
}

/** The address peers on our network reach us at: loopback for a loopback registry, else our first LAN IPv4. */
function lanAddress(registryHost: string): string {
  if (registryHost === 'localhost' || registryHost.startsWith('127.')) return '127.0.0.1';
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}



/** A trusted peer (pinned to node `pinnedId`) that the registry now names differently. */
function identityChanged(name: string, pinnedId: number, what: string): PilotError {
  return pilotError('identity_changed', `${name} is pinned to node ${pinnedId} and its key, but ${what}; nothing was sent`, {
    hint: `if ${name} really rotated keys or moved, \`pilotctl untrust ${pinnedId}\` and handshake again; otherwise someone else claims its name`,
    detail: { pinned_node_id: pinnedId },
  });
}

function withCode(e: PilotError, code: PilotError['code']): PilotError {
  return e.code === code ? e : { ...e, code };
}
