// The node: wires the rooms of src/node together on one Driver and one NodeEnv, sorts received packets, and
// implements the parts of NodeApi that need no service protocol, and ServiceHost for the built-in services
// (composed above it, in sdk/local-node.ts). Decisions live in the rooms: trust/ (the trust state machine),
// peers/ (who a peer is, the Noise suite), membership.ts (the registry), streams/, the NAT traversal.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import type { Micros } from '../core/clock.js';
import { sign, toBase64, type Identity } from '../crypto/index.js';
import { loadOrCreateIdentity, readRecoveryPublic } from './identity-store.js';
import { KeyRotation, type KeyRotationResult } from './key-rotation.js';
import { publishDaemonKey } from './daemon-proof.js';
import { datapathFallbackReason, RECV_OPENED, type Datapath, type RecvBatch } from '../datapath/index.js';
import { formatAddr, isValidPort } from '../wire/address.js';
import { isNoiseFamily, NOISE_DATA_OVERHEAD_BYTES } from '../wire/noise-frame.js';
import { isPilp } from '../wire/legacy-frame.js';
import { isBeaconMessage } from '../wire/beacon-message.js';
import type { NodeReportWire } from '../wire/registry-messages.js';
import { formatHostPort } from '../wire/endpoint.js';
import { readU16 } from '../wire/bytes.js';
import { COMPAT_TIMING, TransportChoice } from '../nat/index.js';
import { CompatLink } from './compat/link.js';
import { KNOWN_RENDEZVOUS_FILE } from './compat/known-rendezvous.js';
import { proxyFor, type ProxyConfig } from './compat/proxy.js';
import { RegistryRoutes } from './compat/registry-routes.js';
import { NodeEvents, type NodeEvent } from './events.js';
import { PeerEventTracker, type PeerPathView } from './peer-events.js';
import { WebhookDispatcher, type WebhookStatus } from './webhooks/dispatcher.js';
import { makeTarget } from './webhooks/config.js';
import { AUDIT_FILE, AuditLog, type AuditExport, type AuditPage } from './audit/log.js';
import { DATAGRAM_HEADER_BYTES, KIND_DATAGRAM, KIND_NOTICE, KIND_STREAM, MAX_SEGMENT_BYTES, decodePolicyResetReason, encodePolicyResetReason, type PolicyResetReason } from '../wire/segment.js';
import { Driver } from './driver.js';
import { datapathReason, heartbeatReport, natReason, registryStatus, transportReason } from './status.js';
import { realEnv, type NodeEnv } from './env.js';
import { PathDriver } from './paths/path-driver.js';
import { MainSocket } from './paths/main-socket.js';
import { RegistryClient } from './registry-client.js';
import { TrustStore } from './trust/store.js';
import { TrustMachine } from './trust/machine.js';
import { PeerResolver } from './peers/resolver.js';
import { NoiseSuite, type TunnelPeer, type UdpEndpoint } from './peers/noise-suite.js';
import { LegacySuite } from './peers/legacy-suite.js';
import { ensureSuite } from './peers/suite-choice.js';
import { Membership } from './membership.js';
import { NetworkBook } from './networks/network-book.js';
import { networkOp, type BroadcastSend, type NetworkOpParams } from './networks/network-ops.js';
import { ConnectionTable } from './streams/connection-table.js';
import { legacyStreams, loopbackStreams, noiseStreams, type SuiteName } from './streams/stream-suites.js';
import { DatagramPorts } from './streams/datagram-ports.js';
import { DatagramSender } from './streams/datagram-sender.js';
import { parseDaemonAddresses, type DaemonAddresses, type DaemonOptions } from './daemon-options.js';
import { homePaths, prepareHome, type HomePaths } from './home.js';
import type {
  ConnectionEntry,
  DatagramSocket,
  FindResult,
  LookupEntry,
  NodeInfo,
  DatagramCountersInfo,
  RegisterResult,
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
/** A registry connect (plain TCP; the TLS route has the compat dial's own deadline) must open within this. */
const REGISTRY_CONNECT_TIMEOUT_MS = 5_000;
/** A receiver tells a sender of refused datagrams at most this often (issue 15)… */
const DENIAL_NOTICE_GAP_US = 100_000;
/** …and the sender's next sends to that port fail for this long (then go out again: the policy may change). */
const DENIAL_MEMORY_US = 10_000_000;
/** A dial that hears nothing from the peer this long re-handshakes (the peer may have restarted). */
const DIAL_REHANDSHAKE_AFTER_MS = 600;

export class Daemon implements ServiceHost {
  readonly paths: HomePaths;
  readonly registry: RegistryClient;
  private readonly membership: Membership;
  private readonly resolver: PeerResolver;
  private readonly trustMachine: TrustMachine;
  private datapath!: Datapath;
  private tunnels!: NoiseSuite;
  private conns!: ConnectionTable;
  private dgrams!: DatagramPorts;
  private dgramSender!: DatagramSender;
  /** The original v0.5 suite (PILA/PILS sessions), for peers that do not speak Noise. */
  private legacy!: LegacySuite;
  /** Discovery, NAT classification, punching, birthday probing, path liveness. */
  private nat!: PathDriver;
  private readonly startedAtMs: number;
  private isShuttingDown = false;
  /** The heartbeat report last sent (JSON), to send a heartbeat when it changes. */
  private lastReportText = '';
  /** The primary beacon; `beaconEndpoint` is the same address when relaying is allowed, else null. */
  private readonly beaconAddr: UdpEndpoint;
  private readonly beaconEndpoint: UdpEndpoint | null;
  /** Never a direct path: --relay-only, or --transport tcp (no UDP at all). */
  private readonly isRelayOnly: boolean;
  /** UDP or the compat WebSocket for relay frames, plain TCP or TLS for the registry (src/nat/transport-choice.ts). */
  readonly transport: TransportChoice;
  /** The compat WebSocket link; null without a compat transport (--transport udp, simulations). */
  private readonly link: CompatLink | null;
  /** The proxy the compat connections go through (NO_PROXY considered), or null. */
  private readonly compatProxy: ProxyConfig | null;
  /** The last failure of a registry connection over TLS (compat); null after a success. */
  /** How the registry is reached (plain TCP, TLS on the compat port) and the compat port's one TLS dial. */
  private readonly routes: RegistryRoutes;
  private readonly nowUs = (): Micros => this.driver.nowUs();
  /** What happened in this node (src/node/events.ts): webhooks and the audit log listen. */
  readonly events: NodeEvents;
  /** The audit log (src/node/audit/): the security events of `events`, hash-chained and signed. */
  private audit: AuditLog | null = null;
  /** Posts the events to the configured webhook (src/node/webhooks/); null until start() made it. */
  private webhooks: WebhookDispatcher | null = null;
  /** peer.connected / peer.disconnected / path.changed from the peer table (src/node/peer-events.ts). */
  private readonly peerEvents: PeerEventTracker;
  /** Issue 14: the identity key now (rotate-key swaps it); `identityRef` reads through to it. */
  private currentIdentity: Identity;
  /** An Identity whose fields are always the current key's (for holders that keep the object: IPC proof, membership). */
  readonly identityRef: Identity;
  private readonly keys: KeyRotation;
  /** Issue 14: the registry refused our key at start (key_retired); shown by info/daemon start. */
  private registrationRefusal: PilotError | null = null;
  /** Custom networks this node is a member of, verified (src/node/networks/): membership is trust for reachability. */
  readonly networks: NetworkBook;

  private constructor(
    readonly opts: DaemonOptions,
    readonly logger: Logger,
    initialIdentity: Identity,
    readonly trust: TrustStore,
    private readonly env: NodeEnv,
    private readonly driver: Driver,
    private readonly addrs: DaemonAddresses,
  ) {
    this.paths = homePaths(opts.home);
    this.currentIdentity = initialIdentity;
    const current = () => this.currentIdentity;
    this.identityRef = {
      get publicKey() {
        return current().publicKey;
      },
      get secretKey() {
        return current().secretKey;
      },
    };
    this.startedAtMs = env.wall.nowMs();
    this.events = new NodeEvents(() => env.wall.nowMs(), (e, ev) => logger.warn({ err: String(e), event: ev.type }, 'node event listener failed'));
    this.peerEvents = new PeerEventTracker(opts.idleTimeoutMs * 1000);
    this.beaconAddr = { ...addrs.beacon };
    this.beaconEndpoint = opts.relay ? this.beaconAddr : null;
    this.isRelayOnly = opts.relayOnly || opts.transport === 'tcp';
    const hasCompat = env.dialCompat !== undefined && opts.transport !== 'udp' && this.beaconEndpoint !== null;
    this.compatProxy = proxyFor(addrs.proxy, addrs.noProxy, addrs.compat.host, addrs.compat.port);
    this.transport = new TransportChoice({ mode: opts.transport, hasCompat, isRegistryProxied: this.compatProxy !== null });
    this.routes = new RegistryRoutes({
      env,
      driver,
      transport: this.transport,
      isUdpOnly: opts.transport === 'udp' || this.beaconEndpoint === null,
      compat: addrs.compat,
      pinned: addrs.registryFingerprint,
      proxy: this.compatProxy,
      knownFile: join(this.paths.home, KNOWN_RENDEZVOUS_FILE),
      connectTimeoutMs: REGISTRY_CONNECT_TIMEOUT_MS,
      logger: logger.child({ component: 'compat' }),
    });
    this.link = hasCompat
      ? new CompatLink({
          driver,
          rng: env.rng,
          logger: logger.child({ component: 'compat' }),
          target: addrs.compat,
          dial: () => this.routes.dialCompat(['http/1.1'], COMPAT_TIMING.linkDialTimeoutUs / 1000),
          encodeDiscover: () => this.nat.encodeDiscover(),
          onDatagrams: (batch) => this.handleBatch(batch),
          beacon: this.beaconAddr,
        })
      : null;
    this.registry = new RegistryClient({
      registryAddr: addrs.registry,
      registryAlternates: addrs.registryAlternates,
      driver,
      rng: env.rng,
      connect: (host, port) => this.routes.connect(host, port),
      connectTimeoutMs: REGISTRY_CONNECT_TIMEOUT_MS,
      nowMs: () => env.wall.nowMs(),
      sign: (msg) => sign(this.currentIdentity, msg),
      recoveryKey: () => recoveryPublicKey,
      logger: logger.child({ component: 'registry' }),
      report: () => this.heartbeatReport(),
    });
    const recoveryPublicKey = readRecoveryPublic(opts.home);
    this.keys = new KeyRotation({
      nodeId: () => this.membership.nodeId,
      identity: () => this.currentIdentity,
      setIdentity: (next) => this.setIdentity(next),
      identityPath: opts.identity,
      registry: this.registry,
      trust,
      dropPeer: (id, reason) => this.dropPeer(id, reason),
      events: this.events,
      logger: logger.child({ component: 'keys' }),
    });
    this.registry.on((e) => {
      if (e.kind === 'key_rotated') this.keys.handleStatements(e.statement.node_id, [e.statement], 'push');
    });
    this.networks = new NetworkBook({
      registry: this.registry,
      nodeId: () => this.membership.nodeId,
      publicKey: () => this.currentIdentity.publicKey,
      sign: (msg) => sign(this.currentIdentity, msg),
      nowSec: () => Math.floor(env.wall.nowMs() / 1000),
      // Pushed like trust revocation: a node that left or was kicked loses its tunnel now, unless trusted otherwise.
      onMemberGone: (nodeId, name) => {
        if (this.trust.isTrusted(nodeId) || this.networks.isCoMember(nodeId)) return;
        this.logger.info({ node_id: nodeId, network: name }, 'no longer a co-member: dropping its tunnel');
        this.dropPeer(nodeId, { code: 'connection_failed', message: `node ${nodeId} is no longer a member of network ${name}` });
      },
      logger: logger.child({ component: 'networks' }),
      tokenFile: join(this.paths.home, 'network-tokens.json'),
      onChange: (networkId, network, c) => this.events.emit({ type: 'network.changed', data: { network_id: networkId, network, op: c.op, node_id: c.node_id, by: c.by, seq: c.seq } }),
      nowMs: () => env.wall.nowMs(),
    });
    this.resolver = new PeerResolver({
      adoptRotation: (id, lookup) => this.keys.adoptRotation(id, lookup),
      learnRecoveryKey: (id, key) => this.keys.learnRecoveryKey(id, key),
      registry: this.registry,
      trust,
      clock: driver.clock,
      knownEndpoint: (id) => this.tunnels.peers.get(id)?.endpoint,
      isNoiseUp: (id) => this.tunnels.peers.get(id)?.isUp ?? false,
      isLegacyEnabled: opts.legacy,
      isRelayOnly: this.isRelayOnly && this.beaconEndpoint !== null,
      isPublic: () => this.membership.isPublic,
    });
    this.trustMachine = new TrustMachine({
      store: trust,
      registry: this.registry,
      peers: this.resolver,
      dropPeer: (id, reason) => this.dropPeer(id, reason),
      wall: env.wall,
      logger,
      isAutoApprove: opts.trustAutoApprove,
      emit: (e) => this.events.emit(e),
    });
    this.membership = new Membership({
      registry: this.registry,
      identity: this.identityRef,
      logger,
      registryAddr: opts.registry,
      registryHost: addrs.registry.host,
      hostname: opts.hostname,
      isPublic: opts.public,
      listenAddress: () => this.datapath.localAddress,
      trust: this.trustMachine,
      onRegistered: () => this.nat.discoverEndpoint(),
    });
  }

  /** Load identity and state, bind the tunnel socket, register. Registry failure is not fatal (retries). */
  static async start(opts: DaemonOptions, logger: Logger, env: NodeEnv = realEnv()): Promise<Result<Daemon>> {
    const addrs = parseDaemonAddresses(opts);
    if (!addrs.ok) return addrs;
    if (opts.transport === 'tcp' && !opts.relay) {
      return err('invalid_argument', '--transport tcp carries everything through the rendezvous relay; it cannot go with --no-relay', { hint: 'drop --no-relay, or use --transport auto' });
    }
    const paths = homePaths(opts.home);
    const home = prepareHome(paths.home); // 0700, ours, or refused (unsafe_home)
    if (!home.ok) return home;
    const id = loadOrCreateIdentity(opts.identity);
    if (!id.ok) return id;
    if (id.value.created) logger.info({ path: opts.identity }, 'created a new identity');
    const driver = new Driver(env.clock, env.timers);
    const trust = TrustStore.open(paths.trust, env.wall.nowMs(), driver, {
      onWriteError: (e) => logger.error({ error: e.message }, 'could not persist trust requests'),
    });
    if (!trust.ok) return trust;
    const d = new Daemon(opts, logger, id.value.identity, trust.value, env, driver, addrs.value);
    const audit = AuditLog.open({ path: join(paths.home, AUDIT_FILE), identity: () => d.identity, nowMs: () => env.wall.nowMs(), after: (ms, fn) => driver.after(ms, fn), logger: logger.child({ component: 'audit' }), version: VERSION });
    if (!audit.ok) {
      driver.close();
      return audit;
    }
    d.audit = audit.value;
    audit.value.attach(d.events);
    // Before bind: registration may already bring trust events.
    d.startWebhooks();
    const r = await d.bind();
    if (!r.ok) {
      await d.webhooks?.close(0);
      audit.value.close();
      driver.close();
      return r;
    }
    d.events.emit({ type: 'daemon.started', data: { node_id: d.membership.nodeId, address: d.membership.nodeId !== 0 ? d.membership.address : null, version: VERSION } });
    return ok(d);
  }

  private async bind(): Promise<Result<void>> {
    const { host, port } = this.addrs.listen;
    const dp = await this.env.openDatapath({ host, port, logger: this.logger });
    if (!dp.ok) return dp;
    this.datapath = dp.value;
    this.logger.info({ datapath: dp.value.kind, listen: dp.value.localAddress }, 'tunnel socket bound');
    const { driver, opts } = this;
    const idleTimeoutUs = opts.idleTimeoutMs * 1000;

    // The tunnel socket every suite sends on; the path driver listens to its flows.
    // With the compat link, relay frames may take the WebSocket instead (the path driver sets the route).
    const socket = new MainSocket(this.datapath, { beacon: this.beaconEndpoint, link: this.link, requestFlush: () => driver.requestFlush() });
    // Paths to peers: src/nat's engine decides (punching, prediction, birthday probing, liveness), this runs it.
    this.nat = new PathDriver({
      logger: this.logger.child({ component: 'nat' }),
      driver,
      rng: this.env.rng,
      wall: this.env.wall,
      openExtraSocket: this.env.openExtraSocket,
      relayOnly: this.isRelayOnly,
      beaconAddr: this.beaconAddr,
      beacon2Addr: this.addrs.beacon2,
      beaconEndpoint: this.beaconEndpoint,
      socket,
      tunnels: () => this.tunnels,
      nodeId: () => this.membership.nodeId,
      listenHost: host,
      busyPeers: () => this.conns.peersWithConnections('noise'),
      beaconToken: () => this.registry.beaconToken,
      acceptsPunchFrom: (id) => this.membership.isPublic || this.trust.isTrusted(id) || this.networks.isCoMember(id),
      legacyRelayed: (frame, sender, now) => this.legacy.handleFrame(frame, this.beaconAddr.ip, this.beaconAddr.port, now, sender),
      transport: this.transport,
      link: this.link,
    });
    this.tunnels = new NoiseSuite({
      identity: this.identity,
      nodeId: () => this.membership.nodeId,
      udp: {
        send: (data, ip, port) => socket.send(data, ip, port),
        sendBatch: (batch) => socket.sendBatch(batch),
        keys: socket.tunnelKeys,
        routeMtu: (ip, port) => socket.routeMtu(ip, port),
      },
      pmtud: opts.pmtud !== false,
      onPathMtu: (peer, bytes) => this.conns.setPathSegmentBytes(peer.nodeId, 'noise', bytes),
      logger: this.logger.child({ component: 'tunnel' }),
      nowUs: this.nowUs,
      driver,
      wall: this.env.wall,
      rng: this.env.rng,
      resolvePeer: (nodeId) => this.resolver.contactOf(nodeId),
      authorize: (nodeId, key) => this.authorizeInitiator(nodeId, key),
      onPlaintext: (peer, plaintext, now) => this.handlePlaintext(peer, plaintext, now),
      relay: () => this.beaconEndpoint,
      onHandshakeStart: (peer) => this.nat.requestPunch(peer.nodeId),
      onSessionUp: (peer) => {
        this.nat.handleSessionUp(peer);
        this.observePeers();
      },
      directOnlyAttempts: this.isRelayOnly ? 0 : 2,
    });
    this.legacy = new LegacySuite({
      identity: this.identity,
      nodeId: () => this.membership.nodeId,
      logger: this.logger.child({ component: 'legacy' }),
      driver,
      rng: this.env.rng,
      udp: socket,
      relay: () => this.beaconEndpoint,
      relayOnly: this.isRelayOnly,
      // No downgrade: a PILA in the name of a node our registry marks Noise is refused (v05KeyFrom).
      registryKey: (id) => this.resolver.v05Key(id),
      authorize: (id, key) => this.resolver.authorize(id, key),
      isTrusted: (id) => this.trust.isTrusted(id),
      isPublic: () => this.membership.isPublic,
      contact: (id) => this.resolver.contactOf(id),
      onStreamSegment: (from, inner, now) => this.conns.handleSegment(from, 'v0.5', inner, now),
      deliverDatagram: (from, sp, dp, data) => {
        if (this.policyDenial(from, dp)) return;
        this.dgrams.deliver(this.addressOf(from), from, sp, dp, data);
      },
      allowInsecureLegacy: opts.allowInsecureLegacy,
    });
    // One table for both suites; a connection's suite is its peer's. The table registers its own flusher on the
    // driver (first), then the tunnels' batch of sealed frames leaves.
    this.conns = new ConnectionTable({
      logger: this.logger.child({ component: 'transport' }),
      driver,
      rng: this.env.rng,
      addressOf: (nodeId) => this.addressOf(nodeId),
      // Network policies (issue 15): the receiver decides — an RST whose trailer names the rule (the dialer's
      // policy_denied) and a policy.denied event (audit, webhooks) — also when the dialer's copy is stale.
      admit: (peer, port) => {
        const d = this.policyDenial(peer, port);
        return d ? encodePolicyResetReason(d) : null;
      },
      maySendDatagram: (peer, port) => this.datagramDenial(peer, port),
      suites: [
        noiseStreams({
          send: (peer, plaintext, now) => this.sendToPeer(peer, plaintext, now),
          maxPlaintextBytes: (peer) => this.tunnels.peers.get(peer)?.current?.maxPlaintextBytes ?? 0,
          pathSegmentBytes: (peer) => this.tunnels.peers.get(peer)?.pathPlaintextBytes ?? MAX_SEGMENT_BYTES,
          rng: this.env.rng,
          options: { idleTimeoutUs },
        }),
        legacyStreams(
          {
            nodeId: () => this.membership.nodeId,
            sendPlaintext: (id, inner, now) => this.legacy.sendPlaintext(id, inner, now),
            sendDatagram: (id, sp, dp, data) => this.legacy.sendDatagram(id, sp, dp, data),
          },
          { idleTimeoutUs },
        ),
        // Talking to ourselves (connect/send-message/subscribe to our own hostname): no tunnel, like localhost.
        loopbackStreams({
          deliverSegment: (segment) => {
            this.loopbackSegments.push(segment);
            driver.requestFlush();
          },
          deliverDatagram: (srcPort, dstPort, data) => {
            queueMicrotask(() => this.dgrams.deliver(this.addressOf(this.membership.nodeId), this.membership.nodeId, srcPort, dstPort, data));
          },
          rng: this.env.rng,
          options: { idleTimeoutUs },
        }),
      ],
    });
    // After the table's flush: what it sent to ourselves arrives as received segments (driven next turn).
    driver.onFlush(() => this.flushLoopback());
    driver.onFlush(() => this.tunnels.flushTx());
    // Relay frames the turn routed to the WebSocket leave after the tunnels' batch, as one message per ≤ 256 KiB.
    if (this.link) {
      const link = this.link;
      driver.onFlush(() => link.flush());
    }
    this.dgramSender = new DatagramSender({ selfId: () => this.membership.nodeId, resolver: this.resolver, tunnels: this.tunnels, legacy: this.legacy, conns: this.conns, nowUs: this.nowUs });
    this.dgrams = new DatagramPorts({ send: (to, fromPort, toPort, data) => this.dgramSender.send(to, fromPort, toPort, data), driver });
    // --transport tcp sends no UDP and so takes none either: a peer's direct UDP frame would make the tunnel roam
    // to a path we never send on. The link's datagrams enter handleBatch directly.
    this.datapath.onReceive((batch) => {
      if (opts.transport !== 'tcp') this.handleBatch(batch);
    });

    const reg = await this.membership.start();
    if (!reg.ok && reg.error.code === 'key_retired') {
      this.registrationRefusal = pilotError('key_retired', reg.error.message);
      this.logger.error({ error: reg.error.message }, 'the registry refuses this identity key: it was rotated out of its node');
    } else if (!reg.ok) {
      // Keep running: the client reconnects with backoff, and tunnels to known peers keep working.
      this.logger.warn({ registry: opts.registry, error: reg.error.message }, 'registry unreachable; retrying in the background');
    }
    // Networks: re-learn (and re-verify) our chains after every registration; --networks joins at start.
    this.registry.on((e) => {
      if (e.kind === 'registered') void this.networks.refresh();
    });
    if (reg.ok) await this.joinStartNetworks();
    this.nat.start(); // discovery now and every 25 s, path checks every second (src/nat/timing.ts)
    // The driver flushes after every deadline it runs.
    driver.every(opts.keepaliveMs, () => this.keepalive());
    driver.every(1000, () => this.observePeers());
    return ok();
  }

  // ---------------------------------------------------------------------------------------------------
  // Events (src/node/events.ts): the peer table's, and the webhook that posts them

  private startWebhooks(): void {
    const o = this.opts;
    const flag = o.webhook ? makeTarget(o.webhook, o.webhookSecret, o.webhookEvents) : null;
    if (flag && !flag.ok) this.logger.error({ error: flag.error.message }, '--webhook ignored');
    this.webhooks = new WebhookDispatcher({
      home: this.paths.home,
      events: this.events,
      driver: this.driver,
      wall: this.env.wall,
      rng: this.env.rng,
      logger: this.logger.child({ component: 'webhook' }),
      flagTarget: flag?.ok ? flag.value : null,
      node: () => ({ node_id: this.membership.nodeId, address: this.membership.nodeId !== 0 ? this.membership.address : null }),
      userAgent: `pilot-node/${VERSION}`,
      ...(o.webhookQueueLimit ? { queue: { maxEvents: o.webhookQueueLimit } } : {}),
    });
  }

  private emitAll(events: NodeEvent[]): void {
    for (const e of events) this.events.emit(e);
  }

  /** Both suites' peers as the event tracker sees them. */
  private peerViews(): PeerPathView[] {
    const wss = this.transport.carrier === 'wss';
    const rows: PeerPathView[] = [];
    for (const p of this.tunnels.peers.values()) {
      if (p.isUp) rows.push({ nodeId: p.nodeId, isUp: true, path: p.isRelayed ? 'relay' : 'direct', transport: p.isRelayed && wss ? 'wss' : 'udp', lastRecvUs: p.lastRecvUs });
    }
    for (const p of this.legacy.peers()) {
      rows.push({ nodeId: p.nodeId, isUp: true, path: p.isRelayed ? 'relay' : 'direct', transport: p.isRelayed && wss ? 'wss' : 'udp', lastRecvUs: p.lastRecvUs ?? 0 });
    }
    return rows;
  }

  private observePeers(): void {
    if (this.isShuttingDown) return;
    this.emitAll(this.peerEvents.observe(this.peerViews(), this.nowUs()));
  }

  setWebhook = async (url: string, o: { secret?: string | null; events?: string[] | string | null } = {}): Promise<Result<WebhookStatus>> =>
    this.webhooks ? this.webhooks.setWebhook(url, o.secret ?? null, o.events ?? null) : err('not_running', 'webhooks are not running');
  clearWebhook = async (): Promise<Result<{ cleared: boolean; dropped: number }>> =>
    this.webhooks ? this.webhooks.clearWebhook() : err('not_running', 'webhooks are not running');
  webhookStatus = async (): Promise<Result<WebhookStatus>> => (this.webhooks ? ok(this.webhooks.status()) : err('not_running', 'webhooks are not running'));

  // ---------------------------------------------------------------------------------------------------
  // Packets

  private handleBatch(batch: RecvBatch): void {
    const now = this.nowUs();
    const status = batch.status;
    for (let i = 0; i < batch.count; i++) {
      // Opened on the native reader thread (src/datapath tunnelKeys): straight to the tunnel's fast path.
      if (status && status[i] === RECV_OPENED) {
        this.tunnels.handleOpened(batch.buf, batch.offset(i), batch.length(i), batch.ipU32(i), batch.port(i), now);
        continue;
      }
      const p = batch.payload(i);
      if (isNoiseFamily(p)) this.tunnels.handleFrame(p, batch.ip(i), batch.port(i), now, undefined, undefined, status?.[i] ?? 0);
      else if (isBeaconMessage(p)) this.nat.handleBeacon(p, batch.ip(i), batch.port(i), now);
      else if (isPilp(p)) this.nat.handlePunch(batch.ip(i), batch.port(i));
      else this.legacy.handleFrame(p, batch.ip(i), batch.port(i), now);
    }
    this.driver.flush();
  }

  private handlePlaintext(peer: TunnelPeer, plaintext: Uint8Array, now: Micros): void {
    const kind = plaintext[0];
    if (kind === KIND_STREAM) {
      this.conns.handleSegment(peer.nodeId, 'noise', plaintext, now);
    } else if (kind === KIND_DATAGRAM) {
      // The per-datagram receive path: the header read in place (decodeDatagram's checks, without its records).
      if (plaintext.length < DATAGRAM_HEADER_BYTES) return;
      const srcPort = readU16(plaintext, 1);
      const dstPort = readU16(plaintext, 3);
      const denial = this.policyDenial(peer.nodeId, dstPort);
      if (!denial) this.dgrams.deliver(this.addressOf(peer.nodeId), peer.nodeId, srcPort, dstPort, plaintext.subarray(DATAGRAM_HEADER_BYTES));
      else this.noticeDenial(peer.nodeId, denial, now);
    } else if (kind === KIND_NOTICE) {
      const why = decodePolicyResetReason(plaintext.subarray(1));
      if (why) this.handleDenialNotice(peer.nodeId, why, now);
    } else {
      this.nat.handleControl(peer, plaintext, now);
    }
  }

  /** Segments our loopback connections sent this turn, handed back to the table as received from ourselves. */
  private readonly loopbackSegments: Uint8Array[] = [];

  private flushLoopback(): void {
    if (this.loopbackSegments.length === 0) return;
    const now = this.nowUs();
    const self = this.membership.nodeId;
    for (const segment of this.loopbackSegments.splice(0)) this.conns.handleSegment(self, 'self', segment, now);
  }

  private sendToPeer(nodeId: number, plaintext: Uint8Array, now: Micros): Result<void> {
    const peer = this.tunnels.peers.get(nodeId);
    if (!peer) return err('connection_failed', `no tunnel to node ${nodeId}`);
    return this.tunnels.sendPlaintext(peer, plaintext, now);
  }

  /** info's transport_error: the link's last failure, else the TLS registry's. */
  private get transportError(): PilotError | null {
    return this.link?.lastError ?? this.routes.tlsError;
  }

  private keepalive(): void {
    // The dashboard's figures follow changes within a keepalive (heartbeats alone come every 30 s).
    const report = this.heartbeatReport();
    const reportText = report ? JSON.stringify(report) : '';
    if (reportText !== this.lastReportText && this.membership.isRegistryUp) {
      this.lastReportText = reportText;
      void this.registry.heartbeat();
    }
    const now = this.nowUs();
    for (const nodeId of this.conns.peersWithConnections('noise')) {
      const peer = this.tunnels.peers.get(nodeId);
      if (peer?.isUp && now - peer.lastSendUs >= this.opts.keepaliveMs * 500) this.tunnels.sendKeepalive(peer, now);
    }
  }

  get identity(): Identity {
    return this.currentIdentity;
  }

  /**
   * Issue 14: rotate this node's identity key (src/node/key-rotation.ts). `recovery`: sign with the recovery key.
   * Errors: not_running (unregistered), already_exists (one in flight), the registry's refusal, internal.
   */
  async rotateKey(opts: { recovery?: Identity } = {}): Promise<Result<KeyRotationResult>> {
    const old = this.currentIdentity;
    const r = await this.keys.rotate(opts);
    // Our networks' chains still hold the old key: sign the new one in with the old (co-members admit it at once).
    if (r.ok) await this.networks.rekey((m) => sign(old, m), toBase64(this.currentIdentity.publicKey));
    return r;
  }

  /** The new key answers from now on: sessions made with the old one go, peers re-handshake (no trust handshake). */
  private setIdentity(next: Identity): void {
    const reason = pilotError('connection_failed', 'this node rotated its key; reconnecting with the new one');
    for (const id of [...this.tunnels.peers.keys()]) this.conns.closePeer(id, reason);
    this.currentIdentity = next;
    this.tunnels.setIdentity(next);
    const published = publishDaemonKey(this.opts.home, next.publicKey);
    if (!published.ok) this.logger.error({ error: published.error.message }, 'could not publish the rotated key in identity.pub');
  }

  /**
   * May this initiator open a tunnel to us? Trusted with its pinned key, public, or (issue 15) a verified
   * co-member with the key its network's chain records — the refusal of anyone else happens here.
   */
  private async authorizeInitiator(nodeId: number, key: Uint8Array): Promise<Result<void>> {
    const r = await this.resolver.authorize(nodeId, key);
    if (r.ok || this.trust.isTrusted(nodeId)) return r;
    const m = this.networks.authorize(nodeId, key);
    if (m.ok) return ok();
    return this.membership.isPublic ? r : err(m.error.code, m.error.message);
  }

  private async joinStartNetworks(): Promise<void> {
    await this.networks.refresh();
    const held = new Set(this.networks.heldNetworks().map((n) => n.name));
    for (const name of this.opts.networks) {
      if (held.has(name)) continue;
      const r = await this.networks.join(name, undefined);
      const accepted = !r.ok && r.error.code === 'permission_denied' ? await this.networks.accept(name) : r;
      if (!accepted.ok) this.logger.warn({ network: name, error: accepted.error.message }, 'could not join network at start');
      else this.logger.info({ network: name, address: accepted.value.address }, 'joined network');
    }
    await this.networks.publishHostname(this.membership.hostname ?? '');
  }

  /** NodeApi `network`: one entry point for the network subcommands (src/node/networks/network-ops.ts). */
  network(params: NetworkOpParams, send?: BroadcastSend): Promise<Result<unknown>> {
    const reg = this.membership.requireRegistered();
    if (!reg.ok) return Promise.resolve(reg);
    const sendDatagram = (nodeId: number, port: number, data: Uint8Array): Promise<Result<void>> => this.dgramSender.send(String(nodeId), port, port, data);
    return networkOp(this.networks, params, { resolveRef: (ref) => this.resolver.resolveRef(ref), send, sendDatagram }).then(async (r) => {
      // A new membership carries our hostname (policy hostname selectors match it), signed by us.
      if (r.ok && (params.op === 'create' || params.op === 'join' || params.op === 'accept')) await this.networks.publishHostname(this.membership.hostname ?? '');
      return r;
    });
  }

  /**
   * Inbound from `from` to our `port`: does a shared network's policy refuse it? Then a policy.denied event
   * (audit, webhooks) and the reason the sender is told (the RST trailer, a datagram notice).
   */
  private policyDenial(from: number, port: number): PolicyResetReason | null {
    const me = this.membership.nodeId;
    if (from === me) return null;
    const d = this.networks.checkPolicy(from, me, port);
    if (!d) return null;
    this.events.emit({ type: 'policy.denied', data: { node_id: from, port, network: d.network, rule: d.decision.rule, count: 1 } });
    return { network: d.network, network_id: d.networkId, port, rule: d.decision.rule, rule_index: d.decision.rule_index, line: d.decision.line };
  }

  /** Last denial notice sent per peer (µs): at most one per DENIAL_NOTICE_GAP_US, however many datagrams we drop. */
  private readonly noticeSentUs = new Map<number, Micros>();
  /** Datagram destinations a peer told us its policy refuses, until when (µs), and the error its sends then get. */
  private readonly deniedDatagrams = new Map<string, { untilUs: Micros; error: PilotError }>();

  private noticeDenial(peer: number, why: PolicyResetReason, now: Micros): void {
    const last = this.noticeSentUs.get(peer);
    if (last !== undefined && now - last < DENIAL_NOTICE_GAP_US) return;
    if (this.noticeSentUs.size >= 4096) this.noticeSentUs.clear();
    this.noticeSentUs.set(peer, now);
    const reason = encodePolicyResetReason(why);
    const notice = new Uint8Array(1 + reason.length);
    notice[0] = KIND_NOTICE;
    notice.set(reason, 1);
    this.sendToPeer(peer, notice, now);
  }

  /** A peer refused our datagrams to `why.port`: the next sends there fail with policy_denied for a while. */
  private handleDenialNotice(peer: number, why: PolicyResetReason, now: Micros): void {
    const rule = why.rule_index === null ? why.rule : `rule ${why.rule_index + 1} ${why.rule}`;
    const error = pilotError('policy_denied', `node ${peer} refused datagrams to port ${why.port}: network ${why.network}'s policy, ${rule}`, {
      hint: 'the receiving node refused them; `pilotctl policy get NETWORK` shows the policy',
      detail: { ...why, node_id: peer },
    });
    if (this.deniedDatagrams.size >= 4096) this.deniedDatagrams.clear();
    this.deniedDatagrams.set(`${peer}:${why.port}`, { untilUs: now + DENIAL_MEMORY_US, error });
    this.logger.info({ peer, port: why.port, network: why.network, rule: why.rule }, 'peer refused our datagrams (network policy)');
  }

  private datagramDenial(peer: number, port: number): Result<void> {
    if (this.deniedDatagrams.size === 0) return ok(); // the per-datagram fast path: no notices held
    const k = `${peer}:${port}`;
    const d = this.deniedDatagrams.get(k);
    if (!d) return ok();
    if (this.nowUs() >= d.untilUs) {
      this.deniedDatagrams.delete(k);
      return ok();
    }
    return { ok: false, error: d.error };
  }

  private dropPeer(nodeId: number, reason: PilotError): void {
    this.emitAll(this.peerEvents.handleClosed(nodeId, reason.message));
    this.conns.closePeer(nodeId, reason);
    this.legacy.closePeer(nodeId, reason);
    this.tunnels.closePeer(nodeId, reason);
  }

  // ---------------------------------------------------------------------------------------------------
  // NodeApi (core part)

  /** Node id for an address, hostname or numeric id. Errors: invalid_argument, not_found, identity_changed. */
  resolveRef(ref: PeerRef): Promise<Result<number>> {
    return this.resolver.resolveRef(ref);
  }

  /** Formatted addresses by node id (every received datagram names its sender); bounded. */
  private readonly addresses = new Map<number, string>();

  addressOf(nodeId: number): string {
    let a = this.addresses.get(nodeId);
    if (a === undefined) {
      if (this.addresses.size >= 4096) this.addresses.clear();
      a = formatAddr({ network: 0, node: nodeId });
      this.addresses.set(nodeId, a);
    }
    return a;
  }

  hostnameOf(nodeId: number): string | null {
    if (nodeId !== 0 && nodeId === this.membership.nodeId) return this.membership.hostname;
    return this.resolver.hostnameOf(nodeId);
  }

  async info(): Promise<Result<NodeInfo>> {
    const a = this.datapath.localAddress;
    const m = this.membership;
    return ok({
      node_id: m.nodeId,
      address: m.nodeId !== 0 ? m.address : null,
      ...registryStatus({ nodeId: m.nodeId, isRegistryUp: m.isRegistryUp, registry: this.opts.registry, lastConnectError: this.registry.lastConnectError, refusal: this.registrationRefusal }),
      // `pilotctl deregister`: not in the registry (the node keeps its id for `pilotctl register`).
      ...(m.isDeregistered
        ? { registered: false, registry_state: 'deregistered' as const, registry_reason: `deregistered from ${this.opts.registry} (pilotctl deregister); node ${m.nodeId} comes back with: pilotctl register` }
        : {}),
      beacon: this.opts.beacon,
      nat_reason: natReason({
        transportMode: this.opts.transport,
        natType: this.nat.natType,
        beacon: this.opts.beacon,
        hasBeacon2: this.addrs.beacon2 !== null && this.addrs.beacon2 !== undefined,
        isRegistryUp: m.isRegistryUp,
      }),
      datapath_reason: datapathReason(this.datapath.kind, datapathFallbackReason()),
      hostname: m.hostname,
      public_key: toBase64(this.identity.publicKey),
      public: m.isPublic,
      tags: m.tags,
      registry: this.opts.registry,
      registry_connected: m.isRegistryUp,
      // With --registry a,b (replicas of one directory): the one in use now.
      registry_active: this.registry.currentRegistry,
      listen: `${a.ip}:${a.port}`,
      public_endpoint: this.nat.publicEndpoint,
      nat_type: this.nat.natType,
      uptime_s: Math.round((this.env.wall.nowMs() - this.startedAtMs) / 1000),
      peers: [...this.tunnels.peers.values()].filter((p) => p.isUp).length,
      connections: this.conns.size,
      datapath: this.datapath.kind,
      version: VERSION,
      transport: this.transport.carrier,
      transport_mode: this.transport.mode,
      transport_reason: transportReason(this.transport.reason, this.transport.carrier, this.link),
      compat: formatHostPort(this.addrs.compat.host, this.addrs.compat.port),
      proxy: this.compatProxy?.display ?? null,
      transport_error: errorView(this.transportError),
      datagrams: this.datagramCounters(),
    });
  }

  private datagramCounters(): DatagramCountersInfo {
    const c = this.dgrams.counters;
    const st = this.datapath.stats();
    return {
      received: c.received,
      dropped_no_listener: c.droppedNoListener,
      dropped_queue_full: c.droppedQueueFull,
      datapath_rx_dropped: st.rxDropped,
      datapath_rx_packets: st.rxPackets,
    };
  }

  /** What our heartbeats tell the rendezvous's dashboard; null before the NAT is classified. */
  private heartbeatReport(): NodeReportWire | null {
    return heartbeatReport(this.nat?.natKind ?? null, this.tunnels?.peers.values() ?? [], this.transport.carrier);
  }

  setHostname = async (hostname: string): Promise<Result<{ hostname: string }>> => {
    const r = await this.membership.setHostname(hostname);
    if (r.ok) void this.networks.publishHostname(r.value.hostname);
    return r;
  };
  clearHostname = async (): Promise<Result<{ hostname: null }>> => {
    const r = await this.membership.clearHostname();
    if (r.ok) void this.networks.publishHostname('');
    return r;
  };
  setVisibility = (isPublic: boolean): Promise<Result<{ public: boolean }>> => this.membership.setVisibility(isPublic);
  setTags = (tags: string[]): Promise<Result<{ tags: string[] }>> => this.membership.setTags(tags);

  async find(query: PeerRef): Promise<Result<FindResult>> {
    const id = await this.resolver.resolveRef(query);
    if (!id.ok) return id;
    const l = await this.registry.lookup(id.value);
    if (!l.ok) return l;
    if (l.value.hostname) this.resolver.learnHostname(id.value, l.value.hostname);
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
    const reg = this.membership.requireRegistered();
    if (!reg.ok) return reg;
    const id = await this.resolver.resolveRef(peer);
    if (!id.ok) return id;
    if (id.value === this.membership.nodeId) return err('invalid_argument', 'cannot handshake with yourself');
    const r = await this.trustMachine.apply(id.value, 'local_handshake', { justification });
    return r.ok ? ok({ node_id: id.value, status: r.value ?? 'pending' }) : r;
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
    const r = await this.trustMachine.apply(nodeId, 'approve');
    return r.ok ? ok({ node_id: nodeId, status: 'approved' }) : r;
  }

  async reject(nodeId: number, _reason?: string): Promise<Result<{ node_id: number; status: 'rejected' }>> {
    const r = await this.trustMachine.apply(nodeId, 'reject');
    return r.ok ? ok({ node_id: nodeId, status: 'rejected' }) : r;
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
    const r = await this.trustMachine.apply(nodeId, 'untrust');
    return r.ok ? ok({ node_id: nodeId, status: 'untrusted' }) : r;
  }

  async dial(peer: PeerRef, port: number, opts: { timeoutMs?: number } = {}): Promise<Result<PilotStream>> {
    if (!isValidPort(port) || port === 0) return err('invalid_argument', `invalid port ${port}`, { hint: 'ports are 1–65535' });
    const id = await this.resolver.resolveRef(peer);
    if (!id.ok) return id;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    // Our own node, like localhost: no tunnel, no trust needed (the loopback suite).
    if (id.value === this.membership.nodeId) {
      if (id.value === 0) return err('connection_failed', 'not registered with the registry yet', { hint: 'wait for `pilotctl info` to show an address' });
      return this.conns.dial(id.value, port, timeoutMs, 'self');
    }
    const s = await ensureSuite({ resolver: this.resolver, tunnels: this.tunnels, legacy: this.legacy }, id.value, timeoutMs);
    if (!s.ok) return s;
    if (s.value.suite === 'v0.5') return this.conns.dial(id.value, port, timeoutMs, 'v0.5');
    // A peer that restarted within the staleness window still looks up; if nothing at all comes back from it
    // soon after our SYN, re-handshake so the SYN's retransmission travels in a session it has.
    const tunnel = s.value.tunnel;
    const dialStartUs = this.nowUs();
    const kick = this.driver.after(DIAL_REHANDSHAKE_AFTER_MS, () => {
      if (tunnel.lastRecvUs < dialStartUs) this.tunnels.rehandshake(tunnel);
    });
    const r = await this.conns.dial(id.value, port, timeoutMs, 'noise');
    kick.cancel();
    return r;
  }

  listen(port: number): Result<PortListener> {
    return this.conns.listen(port);
  }

  openDatagramSocket(port: number): Result<DatagramSocket> {
    return this.dgrams.open(port);
  }

  async peers(): Promise<Result<{ peers: PeerEntry[] }>> {
    const now = this.nowUs();
    // Each node once, in the suite it talks: a node whose Noise attempt failed and that talks v0.5 is listed
    // as its v0.5 entry.
    const rows: SuitePeerRow[] = [
      ...[...this.tunnels.peers.values()]
        .filter((p) => p.isUp || !this.legacy.hasSession(p.nodeId))
        .map((p): SuitePeerRow => ({
          nodeId: p.nodeId,
          endpoint: p.endpoint ? `${p.endpoint.ip}:${p.endpoint.port}` : null,
          path: !p.isUp ? 'none' : p.isRelayed ? 'relay' : 'direct',
          suite: p.isUp ? 'noise' : null,
          cipher: p.isUp ? (p.current?.cipher ?? null) : null,
          lastRecvUs: p.lastRecvUs > 0 ? p.lastRecvUs : null,
          rttUs: p.rttUs,
          pathMtu: p.isUp ? p.pathPlaintextBytes + NOISE_DATA_OVERHEAD_BYTES : null,
          pmtud: p.isPmtuDeferred ? 'idle' : (p.pmtu?.phase ?? 'off'),
        })),
      ...this.legacy.peers().map((p): SuitePeerRow => ({
        nodeId: p.nodeId,
        endpoint: p.endpoint,
        path: p.isRelayed ? 'relay' : 'direct',
        suite: 'v0.5',
        cipher: 'aes-256-gcm',
        lastRecvUs: p.lastRecvUs,
        rttUs: null,
        pathMtu: null,
        pmtud: 'off',
      })),
    ];
    return ok({
      peers: rows.map((r): PeerEntry => ({
        node_id: r.nodeId,
        address: this.addressOf(r.nodeId),
        hostname: this.hostnameOf(r.nodeId),
        endpoint: r.endpoint,
        path: r.path,
        encrypted: r.suite !== null,
        suite: r.suite === 'v0.5' ? 'legacy' : r.suite,
        cipher: r.cipher,
        trusted: this.trust.isTrusted(r.nodeId),
        last_seen_ms: r.lastRecvUs !== null ? Math.round((now - r.lastRecvUs) / 1000) : null,
        rtt_ms: r.rttUs !== null ? Math.round(r.rttUs / 10) / 100 : null,
        transport: r.path === 'relay' && this.transport.carrier === 'wss' ? 'wss' : 'udp',
        path_mtu: r.pathMtu,
        pmtud: r.pmtud,
      })),
    });
  }

  async register(opts: { listenAddr?: string } = {}): Promise<Result<RegisterResult>> {
    const r = await this.membership.register(opts.listenAddr);
    if (!r.ok) return r;
    return ok({ node_id: r.value.nodeId, address: r.value.address, public_key: toBase64(this.identity.publicKey), hostname: this.membership.hostname, listen_addr: r.value.listenAddr });
  }

  async deregister(): Promise<Result<{ node_id: number; status: 'deregistered' }>> {
    const r = await this.membership.deregister();
    return r.ok ? ok({ node_id: r.value.nodeId, status: 'deregistered' }) : r;
  }

  /** The registry's entry for `nodeId`, in the original's field names. Errors: not_found, connection_failed. */
  async lookup(nodeId: number): Promise<Result<LookupEntry>> {
    const l = await this.registry.lookup(nodeId);
    if (!l.ok) return l;
    const v = l.value;
    return ok({
      node_id: v.nodeId,
      address: v.address,
      public_key: v.publicKey,
      public: v.isPublic,
      ...(v.hostname !== undefined ? { hostname: v.hostname } : {}),
      ...(v.tags !== undefined ? { tags: v.tags } : {}),
      ...(v.realAddr !== undefined ? { real_addr: v.realAddr } : {}),
      polo_score: v.poloScore,
      task_exec: v.taskExec,
    });
  }

  async connections(): Promise<Result<{ connections: ConnectionEntry[] }>> {
    return ok({ connections: this.conns.list() });
  }

  async disconnect(connectionId: number): Promise<Result<{ id: number }>> {
    return this.conns.disconnect(connectionId);
  }

  // ServiceHost
  get nodeId(): number {
    return this.membership.nodeId;
  }
  get address(): string {
    return this.membership.address;
  }
  get home(): string {
    return this.paths.home;
  }

  async shutdown(reason = 'shutdown'): Promise<void> {
    if (this.isShuttingDown) return;
    this.events.emit({ type: 'daemon.stopping', data: { reason } });
    this.isShuttingDown = true;
    // Given a moment to post daemon.stopping (and what else waits); the rest stays queued for the next start.
    await this.webhooks?.close(2000);
    this.conns.close();
    this.dgrams.close();
    this.legacy.close();
    this.nat.close();
    this.tunnels.close();
    const t = this.trust.flush();
    if (!t.ok) this.logger.error({ error: t.error.message }, 'could not persist trust requests');
    this.audit?.close();
    this.driver.close();
    await this.registry.close();
    await this.datapath.close();
  }

  /** `pilotctl audit`: the audit log's records (src/node/audit/log.ts). Errors: not_found (no log), internal. */
  auditList(q: { sinceMs?: number; limit?: number } = {}): Result<AuditPage> {
    return this.audit ? this.audit.list(q) : err('not_found', 'this node keeps no audit log');
  }

  /** `pilotctl audit export`: the whole log with a signed head. Errors: not_found, internal. */
  auditExport(): Result<AuditExport> {
    return this.audit ? this.audit.exportLog(this.membership.nodeId) : err('not_found', 'this node keeps no audit log');
  }
}

/** One row of peers(), whichever suite the node talks (suite null: no session yet). */
interface SuitePeerRow {
  nodeId: number;
  endpoint: string | null;
  path: PeerEntry['path'];
  suite: Exclude<SuiteName, 'self'> | null;
  cipher: PeerEntry['cipher'];
  lastRecvUs: Micros | null;
  rttUs: number | null;
  pathMtu: number | null;
  pmtud: NonNullable<PeerEntry['pmtud']>;
}

/** A PilotError as info shows it: {code, message, hint}. */
function errorView(e: PilotError | null): NodeInfo['transport_error'] {
  return e ? { code: e.code, message: e.message, hint: e.hint ?? null } : null;
}
