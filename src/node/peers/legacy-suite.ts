// The v0.5 suite: sessions with ORIGINAL Go Pilot v0.5 nodes — the v0.5 key exchange (PILA), PILS data frames
// (direct or through the beacon relay), the original's ping and its datagram framing. Its session surface is the
// Noise side's (tunnel manager): handleFrame in, sendPlaintext out, peers(). Streams are not here: the one
// connection table (node/streams/connection-table.ts) holds v0.5 connections beside Noise ones and sends
// their inner packets through sendPlaintext; stream packets that arrive are handed to it (onStreamSegment).
// Timers come from the Driver; the key exchange (crypto/legacy-session.ts) below stays sans-IO.
//
// What the original does, and what we do (facts: ../shared/interop/README.md, the original's pkg/daemon/tunnel.go):
// - PILA carries a node id, a static X25519 key and an Ed25519 signature. We verify the signature, then compare
//   the key with the registry's for that node (looked up once and cached; a PILA arriving during the lookup
//   is held, the latest per node), then ask the daemon whether the node may talk to us — unless we asked for
//   the session ourselves (connect), as the Noise initiator does not authorize its responder either.
// - The original answers a PILA from a new or restarted peer with its own; so do we (except the answer to the
//   PILA we just sent). A duplicate PILA is answered at most once a second per peer, so two nodes never bounce
//   PILAs (an answer to an answer is a duplicate).
// - A PILS we cannot open (no session, or a key from before our restart) is answered with our PILA, at most
//   once a second per node and 20 a second overall: that is how a restarted daemon gets its peers to rekey.
// - Inside PILS: the 34-byte header packet, naming both ends (a peer speaks only for itself, only to us).
//   Stream packets go to the connection table (demultiplexed there by peer, local port, remote port). A control
//   packet to port 0 is the original's ping and is answered with its pong. Datagrams go to the datagram ports.
// - PILT (plaintext) and PILK (unauthenticated key exchange) are refused unless allowInsecureLegacy, and even then
//   accepted only from node ids we trust AND only from an endpoint the registry lists for that node: they carry
//   no proof at all, so the claimed node id and the source address are all there is to check. PILP (NAT punch)
//   needs no answer.
// - Unsolicited PILAs cost a signature check and maybe a registry lookup: a PILA from a node we could not accept
//   anyway (not trusted, and we are not public) is dropped before any lookup; lookups are cached (failures too)
//   and budgeted (LOOKUPS_PER_S), so a flood of fresh claimed ids cannot turn into a flood of registry requests.
import type { Logger } from 'pino';
import { err, errFrom, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import type { Micros } from '../../core/clock.js';
import { TokenBuckets } from '../../core/token-bucket.js';
import type { Rng } from '../../core/rng.js';
import type { Identity } from '../../crypto/identity.js';
import { LegacyKeyExchange, verifyPilaFrame, type LegacySession, type VerifiedPila } from '../../crypto/legacy-session.js';
import {
  decodePacket,
  encodePacket,
  FLAG_ACK,
  MAX_PAYLOAD,
  PACKET_HEADER_SIZE,
  PROTO_CONTROL,
  PROTO_DATAGRAM,
  PROTO_STREAM,
  type Packet,
} from '../../wire/header.js';
import { legacyFrameKind, PILS_HEADER_SIZE, GCM_TAG_SIZE, MAGIC_PILT, decodePilt } from '../../wire/legacy-frame.js';
import { legacyPongFor, LEGACY_MSS } from '../../wire/legacy-control.js';
import type { VirtualAddr } from '../../wire/address.js';
import { readU32, writeU32 } from '../../wire/bytes.js';
import { isLegacyPongFor, legacyDatagramPacket, legacyPingPacket } from '../../transport/legacy-connection.js';
import { RELAY_HEADER_BYTES as RELAY_OVERHEAD_BYTES, writeRelayFrame } from '../../wire/beacon-message.js';
import type { Deadline, Driver } from '../driver.js';

export interface LegacySuiteDeps {
  identity: Identity;
  /** Our node id from the registry (0 until registered; the PILA signs it, so it is read on every use). */
  nodeId(): number;
  logger: Logger;
  /** Time and every timer (connect retries and budgets, ping timeouts). */
  driver: Driver;
  /** Ping source ports. */
  rng: Rng;
  /** Send one UDP payload. `data` may be reused once this returns (the datapath copies). */
  udp: { send(data: Uint8Array, ip: string, port: number): void };
  /** The beacon as a relay (0x05 relay / 0x06 relay_deliver); null when relaying is off. */
  relay?(): Endpoint | null;
  /** --relay-only: every frame goes through the relay, none directly. */
  relayOnly?: boolean;
  /** Ed25519 key the registry holds for a node (for PILA verification). */
  registryKey(nodeId: number): Promise<Result<Uint8Array>>;
  /** May this node talk to us (trusted with that key, or we are public)? */
  authorize(nodeId: number, ed25519: Uint8Array): Promise<Result<void>>;
  /** Is this node id trusted (pinned)? The only gate PILT/PILK have, with the registry's endpoint. */
  isTrusted(nodeId: number): boolean;
  /** Do we accept tunnels from any registered node (--public)? */
  isPublic(): boolean;
  /** Where to reach a node (registry resolve), for outgoing PILA. */
  contact(nodeId: number): Promise<Result<{ endpoints: { ip: string; port: number }[] }>>;
  /** One stream packet (34-byte header + payload) from a node (PILS, or PILT where allowed), for the connection
   * table. The view is only valid during the call. */
  onStreamSegment(fromNodeId: number, inner: Uint8Array, now: Micros): void;
  /** A datagram from an original node; `payload` is a copy the callee may keep. */
  deliverDatagram(fromNodeId: number, srcPort: number, dstPort: number, payload: Uint8Array): void;
  allowInsecureLegacy: boolean;
}

/** Least time between two PILAs we send to one node unasked (answers and restart recovery), µs. */
const PILA_REPLY_INTERVAL_US = 1_000_000;
/** PILAs sent to nodes without a session (answers to PILS we cannot open), per second, all nodes together. */
const UNSOLICITED_PILA_PER_S = 20;
/** Outgoing PILA retries while connect() waits: 250 ms doubling to 1 s. */
const CONNECT_RETRY_FIRST_MS = 250;
const CONNECT_RETRY_MAX_MS = 1000;
/** Outgoing PILAs sent only directly before the relay is tried as well (250 + 500 ms). */
const CONNECT_DIRECT_ONLY_ATTEMPTS = 2;
/** Registry keys are cached this long; a PILA with another key refetches once the entry is this old. */
const KEY_CACHE_TTL_US = 300_000_000;
const KEY_REFRESH_AFTER_US = 10_000_000;
const MAX_KEY_CACHE = 4096;
/** A failed key lookup is not repeated for this long (a PILA for that node id is dropped meanwhile). */
const NEGATIVE_CACHE_US = 30_000_000;
/** Registry lookups unsolicited PILAs may cause, per second (burst the same). Our own connect() is not counted. */
const LOOKUPS_PER_S = 20;
/** Registry endpoints of a trusted node, for PILT/PILK, are refreshed after this long. */
const INSECURE_ENDPOINTS_TTL_US = 30_000_000;
/** Concurrent registry lookups for unsolicited PILAs (anyone can sign a PILA claiming any node id). */
const MAX_PENDING_LOOKUPS = 256;
/** Room for PILS header + inner packet (34 + MSS) + tag; the inner packet is written at offset 20. */
const TX_BUF_BYTES = PILS_HEADER_SIZE + PACKET_HEADER_SIZE + LEGACY_MSS + GCM_TAG_SIZE;

interface Endpoint {
  ip: string;
  port: number;
}

/**
 * Bytes after a probing PILA (connect({ probe: true })): the original reads a PILA with `len(data) < 132` as its
 * only check (pkg/daemon/tunnel.go handleAuthKeyExchange), so it answers; our decoder (src/wire/legacy-frame.ts)
 * takes exactly PILA_SIZE bytes, so a daemon of ours never answers one. A dial that does not know a peer's
 * suite can then send it beside the Noise initiation: only an original node can meet it on v0.5.
 */
export const PILA_PROBE_MARKER = new Uint8Array([0x50, 0x4e, 0x30, 0x31]); // "PN01"

interface ConnectWaiter {
  resolve(r: Result<void>): void;
  timer: Deadline;
}

class LegacyPeer {
  session: LegacySession | null = null;
  endpoint: Endpoint | null = null;
  candidates: Endpoint[] = [];
  waiters: ConnectWaiter[] = [];
  retryTimer: Deadline | null = null;
  isResolving = false;
  lastPilaSentUs = -Infinity;
  lastRecvUs: Micros = 0;
  /** Its last authentic frame came through the beacon relay: answer there, as the original does (it marks a
   * peer relayed when one of its frames arrives relayed and from then on sends it everything via the beacon). */
  isRelayed = false;
  /** connect() was asked to probe: our PILAs to it carry PILA_PROBE_MARKER (only originals answer those). */
  isProbe = false;
  constructor(readonly nodeId: number) {}

  get isConnecting(): boolean {
    return this.waiters.length > 0;
  }
}

interface PingWaiter {
  resolve(r: Result<Micros>): void;
  sentAtUs: Micros;
  timer: Deadline;
}

interface HeldPila {
  pila: VerifiedPila;
  ip: string;
  port: number;
  isRelayed: boolean;
}

/** A node with a live v0.5 session, as peers() lists it. */
export interface LegacyPeerInfo {
  nodeId: number;
  /** The UDP endpoint in use (the beacon's when relayed). */
  endpoint: string;
  isRelayed: boolean;
  /** Monotonic µs. */
  lastRecvUs: Micros;
}

export class LegacySuite {
  private readonly kx: LegacyKeyExchange;
  private readonly peersById = new Map<number, LegacyPeer>();
  private readonly keyCache = new Map<number, { key: Uint8Array; atUs: Micros }>();
  private readonly failedLookups = new Map<number, Micros>();
  private readonly lookupBudget = new TokenBuckets(LOOKUPS_PER_S);
  /** Endpoints the registry lists for trusted nodes that speak PILT/PILK, and frames held while they are fetched. */
  private readonly insecureEndpoints = new Map<number, { endpoints: Endpoint[]; atUs: Micros }>();
  private readonly insecureLookups = new Set<number>();
  private readonly heldInsecure = new Map<number, () => void>();
  private readonly lookups = new Map<number, Promise<void>>();
  private readonly held = new Map<number, HeldPila>();
  private readonly pings = new Map<string, PingWaiter>();
  private readonly txBuf = new Uint8Array(TX_BUF_BYTES);
  private readonly txInner = this.txBuf.subarray(PILS_HEADER_SIZE, PILS_HEADER_SIZE + PACKET_HEADER_SIZE + LEGACY_MSS);
  private readonly relayBuf = new Uint8Array(RELAY_OVERHEAD_BYTES + TX_BUF_BYTES);
  private readonly lastUnsolicitedPilaUs = new Map<number, Micros>();
  private unsolicitedWindowStartUs = 0;
  private unsolicitedInWindow = 0;
  private pingSeq = 1;
  private isClosed = false;

  constructor(private readonly deps: LegacySuiteDeps) {
    this.kx = new LegacyKeyExchange({ identity: deps.identity, nodeId: deps.nodeId(), allowInsecureLegacy: deps.allowInsecureLegacy });
  }

  // ───────────────────────────── inbound frames ─────────────────────────────

  /**
   * A PIL* UDP payload (PILA/PILS/PILP/PILT/PILK). Returns false if not a legacy frame (the caller tries other
   * decoders). Never throws; PILS are decrypted in place, so `buf` is clobbered. PILA handling continues
   * asynchronously (registry lookup, authorization). `relayedFrom`: the frame came from the beacon relay
   * (`ip:port` is the beacon's), sent by that node; it must carry the same node id.
   */
  handleFrame(buf: Uint8Array, ip: string, port: number, now: Micros, relayedFrom?: number): boolean {
    const kind = legacyFrameKind(buf);
    if (kind === null) return false;
    if (this.isClosed) return true;
    this.kx.setNodeId(this.deps.nodeId());
    const isRelayed = relayedFrom !== undefined;
    if (isRelayed && kind !== 'PILA' && kind !== 'PILS') return true; // PILT/PILK/PILP have no business on the relay
    if (isRelayed && (buf.length < 8 || readU32(buf, 4) !== relayedFrom)) return true;
    switch (kind) {
      case 'PILS':
        this.handlePils(buf, ip, port, now, isRelayed);
        break;
      case 'PILA':
        this.handlePila(buf, ip, port, now, isRelayed);
        break;
      case 'PILT':
        this.handlePilt(buf, ip, port, now);
        break;
      case 'PILK':
        this.handlePilk(buf, ip, port, now);
        break;
      case 'PILP':
        break; // NAT punch: it opened the path, nothing to answer
    }
    return true;
  }

  private handlePils(buf: Uint8Array, ip: string, port: number, now: Micros, isRelayed: boolean): void {
    if (buf.length < 8) return;
    const from = readU32(buf, 4);
    const peer = this.peersById.get(from);
    const session = peer?.session;
    if (!peer || !session) {
      // We restarted (or never met): our PILA lets the peer rekey.
      this.sendUnsolicitedPila(from, ip, port, now, isRelayed);
      return;
    }
    const r = session.open(buf, now);
    if (!r.ok) {
      const reason = r.error.detail?.reason;
      if (reason === 'auth') this.sendUnsolicitedPila(from, ip, port, now, isRelayed); // the peer may hold a key from our last run
      this.deps.logger.debug({ node_id: from, from: `${ip}:${port}`, relayed: isRelayed, reason }, 'dropped PILS frame');
      return;
    }
    peer.lastRecvUs = now;
    this.notePath(peer, ip, port, isRelayed);
    this.handleInner(peer, r.value, now);
  }

  private handlePilt(buf: Uint8Array, ip: string, port: number, now: Micros): void {
    if (!this.deps.allowInsecureLegacy) {
      this.deps.logger.debug({ from: `${ip}:${port}` }, 'refused PILT (plaintext v0.5 frame): needs --allow-insecure-legacy');
      return;
    }
    const f = decodePilt(buf);
    if (!f.ok) return;
    const from = f.value.packet.src.node;
    if (from === 0 || from === this.deps.nodeId()) return;
    if (!this.isInsecureSourceAllowed('PILT', from, buf, ip, port, now)) return;
    // No plaintext injection into an authenticated session (the original's early PILT SYN comes before one).
    if (this.peersById.get(from)?.session?.isAuthenticated) return;
    const peer = this.peer(from);
    peer.lastRecvUs = now;
    peer.endpoint = { ip, port };
    this.handlePacket(peer, f.value.packet, buf.subarray(4), now);
  }

  private handlePilk(buf: Uint8Array, ip: string, port: number, now: Micros): void {
    if (!this.deps.allowInsecureLegacy) {
      this.deps.logger.debug({ from: `${ip}:${port}` }, 'refused PILK (unauthenticated v0.5 key exchange): needs --allow-insecure-legacy');
      return;
    }
    if (buf.length < 8) return;
    const from = readU32(buf, 4);
    if (from === 0 || from === this.deps.nodeId()) return;
    if (!this.isInsecureSourceAllowed('PILK', from, buf, ip, port, now)) return;
    const current = this.peersById.get(from)?.session ?? null;
    // An authenticated session is never downgraded by an unauthenticated key.
    if (current?.isAuthenticated) return;
    const a = this.kx.acceptInsecure(buf, now, current);
    if (!a.ok) return;
    this.install(this.peer(from), a.value.session, a.value.kind, ip, port, now);
  }

  /**
   * PILT/PILK carry no proof: accept them only for a trusted node id, from an endpoint the registry lists for
   * it. While that list is fetched the newest frame of the node is held (a copy) and replayed after.
   */
  private isInsecureSourceAllowed(kind: 'PILT' | 'PILK', from: number, buf: Uint8Array, ip: string, port: number, now: Micros): boolean {
    if (!this.deps.isTrusted(from)) {
      this.deps.logger.debug({ node_id: from, from: `${ip}:${port}`, kind }, 'refused insecure v0.5 frame: node not trusted');
      return false;
    }
    const known = this.insecureEndpoints.get(from);
    if (known && now - known.atUs < INSECURE_ENDPOINTS_TTL_US) {
      const isListed = known.endpoints.some((e) => e.ip === ip && e.port === port);
      if (!isListed) this.deps.logger.info({ node_id: from, from: `${ip}:${port}`, kind }, 'refused insecure v0.5 frame: not from the endpoint the registry lists');
      return isListed;
    }
    const copy = buf.slice();
    this.heldInsecure.set(from, () => (kind === 'PILT' ? this.handlePilt(copy, ip, port, this.deps.driver.nowUs()) : this.handlePilk(copy, ip, port, this.deps.driver.nowUs())));
    if (this.insecureLookups.has(from)) return false;
    this.insecureLookups.add(from);
    void (async () => {
      const c = await this.deps.contact(from);
      this.insecureLookups.delete(from);
      if (this.isClosed) return;
      this.insecureEndpoints.set(from, { endpoints: c.ok ? c.value.endpoints.map((e) => ({ ip: e.ip, port: e.port })) : [], atUs: this.deps.driver.nowUs() });
      const h = this.heldInsecure.get(from);
      this.heldInsecure.delete(from);
      h?.();
    })();
    return false;
  }

  private handlePila(buf: Uint8Array, ip: string, port: number, now: Micros, isRelayed = false): void {
    const v = verifyPilaFrame(buf);
    if (!v.ok) {
      this.deps.logger.debug({ from: `${ip}:${port}`, error: v.error.message }, 'dropped PILA');
      return;
    }
    const pila = v.value;
    if (pila.nodeId === 0 || pila.nodeId === this.deps.nodeId()) return;
    const cached = this.keyCache.get(pila.nodeId);
    if (cached && now - cached.atUs < KEY_CACHE_TTL_US && (sameBytes(cached.key, pila.ed25519Pub) || now - cached.atUs < KEY_REFRESH_AFTER_US)) {
      void this.acceptPila(pila, cached.key, ip, port, isRelayed);
      return;
    }
    const isAsked = this.peersById.get(pila.nodeId)?.isConnecting === true;
    if (!isAsked && !this.lookups.has(pila.nodeId)) {
      // Unsolicited: no registry lookup for a node we would refuse anyway, for one whose lookup just failed,
      // or beyond the lookup budget.
      if (!this.deps.isTrusted(pila.nodeId) && !this.deps.isPublic()) return;
      const failedAt = this.failedLookups.get(pila.nodeId);
      if (failedAt !== undefined && now - failedAt < NEGATIVE_CACHE_US) return;
      if (!this.lookupBudget.take('pila', now)) {
        this.deps.logger.debug({ node_id: pila.nodeId, from: `${ip}:${port}` }, 'dropped PILA: registry lookup budget spent');
        return;
      }
    }
    // Hold the newest PILA of this node while its key is looked up.
    if (!this.lookups.has(pila.nodeId) && this.lookups.size >= MAX_PENDING_LOOKUPS) return;
    this.held.set(pila.nodeId, { pila, ip, port, isRelayed });
    if (!this.lookups.has(pila.nodeId)) this.startKeyLookup(pila.nodeId);
  }

  private startKeyLookup(nodeId: number): void {
    const p = (async () => {
      const r = await this.deps.registryKey(nodeId);
      this.lookups.delete(nodeId);
      if (this.isClosed) return;
      const h = this.held.get(nodeId);
      this.held.delete(nodeId);
      if (!r.ok) {
        this.keyCache.delete(nodeId);
        if (this.failedLookups.size >= MAX_KEY_CACHE) this.failedLookups.delete(this.failedLookups.keys().next().value!);
        this.failedLookups.set(nodeId, this.deps.driver.nowUs());
        this.deps.logger.info({ node_id: nodeId, error: r.error.message }, 'no registry key for a v0.5 node: PILA refused');
        this.failWaiters(nodeId, err('connection_failed', `cannot authenticate node ${nodeId}: ${r.error.message}`));
        return;
      }
      this.failedLookups.delete(nodeId);
      if (this.keyCache.size >= MAX_KEY_CACHE) this.keyCache.delete(this.keyCache.keys().next().value!);
      this.keyCache.set(nodeId, { key: new Uint8Array(r.value), atUs: this.deps.driver.nowUs() });
      if (h) await this.acceptPila(h.pila, r.value, h.ip, h.port, h.isRelayed);
    })();
    this.lookups.set(nodeId, p);
  }

  private async acceptPila(pila: VerifiedPila, registryKey: Uint8Array, ip: string, port: number, isRelayed = false): Promise<void> {
    const nodeId = pila.nodeId;
    if (!sameBytes(registryKey, pila.ed25519Pub)) {
      // Pending connects are not failed here: anyone can sign a PILA claiming that node id; they time out.
      this.deps.logger.info({ node_id: nodeId, from: `${ip}:${port}` }, 'refused PILA: signed with a key the registry does not hold for that node');
      return;
    }
    let peer = this.peersById.get(nodeId);
    const isDuplicate = !!peer?.session && !peer.session.isDestroyed && sameBytes(peer.session.remoteX25519PublicKey, pila.x25519Pub);
    // Our own connect() asked for this session: the registry key is the proof, as for a Noise initiator —
    // unless we trust the node: then its pinned key is, whatever the registry says.
    if (!isDuplicate && (!peer?.isConnecting || this.deps.isTrusted(nodeId))) {
      const a = await this.deps.authorize(nodeId, pila.ed25519Pub);
      if (this.isClosed) return;
      if (!a.ok) {
        this.deps.logger.info({ node_id: nodeId, from: `${ip}:${port}`, reason: a.error.message }, 'refused v0.5 tunnel from unauthorized node');
        return;
      }
      peer = this.peersById.get(nodeId);
    }
    const now = this.deps.driver.nowUs();
    const r = this.kx.accept(pila, registryKey, now, peer?.session ?? null);
    if (!r.ok) {
      this.deps.logger.info({ node_id: nodeId, error: r.error.message }, 'refused PILA');
      return;
    }
    this.install(peer ?? this.peer(nodeId), r.value.session, r.value.kind, ip, port, now, isRelayed);
  }

  private install(peer: LegacyPeer, session: LegacySession, kind: 'new' | 'rekeyed' | 'duplicate', ip: string, port: number, now: Micros, isRelayed = false): void {
    if (kind !== 'duplicate') {
      if (peer.session && peer.session !== session) peer.session.destroy();
      peer.session = session;
      this.deps.logger.info({ node_id: peer.nodeId, endpoint: `${ip}:${port}`, relayed: isRelayed, kind, authenticated: session.isAuthenticated }, 'v0.5 tunnel up');
    }
    // A duplicate PILA is the same bytes all run long: anyone who saw one can replay it from anywhere, so it
    // does not move a path we have (authentic PILS frames do: those are never accepted twice).
    if (kind !== 'duplicate' || (!peer.endpoint && !peer.isRelayed)) this.notePath(peer, ip, port, isRelayed);
    peer.lastRecvUs = now;
    // A new or changed key is answered as the original does (the peer may have restarted and lack ours) —
    // unless it is the answer to the PILA our connect() just sent. A duplicate means the peer missed our PILA:
    // answered at most once a second, so an answer to an answer ends the exchange.
    const isRecent = now - peer.lastPilaSentUs < PILA_REPLY_INTERVAL_US;
    const shouldReply = kind === 'duplicate' ? !isRecent : !(isRecent && peer.isConnecting);
    if (shouldReply) {
      peer.lastPilaSentUs = now;
      this.sendFrame(peer, this.kx.authFrame());
    }
    this.settleConnect(peer, ok());
  }

  /** Where an authentic frame came from: a direct one is the peer's endpoint (roaming); a relayed one says
   * the peer talks to us through the beacon, and so shall we (the endpoint we knew is kept). */
  private notePath(peer: LegacyPeer, ip: string, port: number, isRelayed: boolean): void {
    if (isRelayed) {
      if (!peer.isRelayed) this.deps.logger.debug({ node_id: peer.nodeId }, 'v0.5 peer talks through the beacon relay');
      peer.isRelayed = true;
      return;
    }
    peer.isRelayed = false;
    if (!peer.endpoint || peer.endpoint.ip !== ip || peer.endpoint.port !== port) peer.endpoint = { ip, port };
  }

  /** One frame to a peer: through the relay when it talks to us there, else to its endpoint. */
  private sendFrame(peer: LegacyPeer, frame: Uint8Array): boolean {
    const relay = peer.isRelayed || this.deps.relayOnly ? this.relay() : null;
    if (relay) return this.sendRelayed(peer.nodeId, frame, relay);
    const ep = peer.endpoint;
    if (!ep) return false;
    this.deps.udp.send(frame, ep.ip, ep.port);
    return true;
  }

  private relay(): Endpoint | null {
    return this.deps.relay?.() ?? null;
  }

  private sendRelayed(nodeId: number, frame: Uint8Array, relay: Endpoint): boolean {
    if (frame.length > this.relayBuf.length - RELAY_OVERHEAD_BYTES) return false;
    const n = writeRelayFrame(this.relayBuf, this.deps.nodeId(), nodeId, frame);
    this.deps.udp.send(this.relayBuf.subarray(0, n), relay.ip, relay.port);
    return true;
  }

  private sendPila(peer: LegacyPeer, ep: Endpoint, now: Micros): void {
    peer.lastPilaSentUs = now;
    this.deps.udp.send(this.connectPila(peer), ep.ip, ep.port);
  }

  /** The PILA our connect() sends: marked when probing (see PILA_PROBE_MARKER). */
  private connectPila(peer: LegacyPeer): Uint8Array {
    const a = this.kx.authFrame();
    if (!peer.isProbe) return a;
    const out = new Uint8Array(a.length + PILA_PROBE_MARKER.length);
    out.set(a);
    out.set(PILA_PROBE_MARKER, a.length);
    return out;
  }

  private sendUnsolicitedPila(nodeId: number, ip: string, port: number, now: Micros, isRelayed = false): void {
    if (nodeId === 0 || nodeId === this.deps.nodeId()) return;
    const last = this.peersById.get(nodeId)?.lastPilaSentUs ?? this.lastUnsolicitedPilaUs.get(nodeId) ?? -Infinity;
    if (now - last < PILA_REPLY_INTERVAL_US) return;
    if (now - this.unsolicitedWindowStartUs >= 1_000_000) {
      this.unsolicitedWindowStartUs = now;
      this.unsolicitedInWindow = 0;
      this.lastUnsolicitedPilaUs.clear();
    }
    if (this.unsolicitedInWindow >= UNSOLICITED_PILA_PER_S) return;
    this.unsolicitedInWindow++;
    const peer = this.peersById.get(nodeId);
    if (peer) peer.lastPilaSentUs = now;
    else this.lastUnsolicitedPilaUs.set(nodeId, now);
    const relay = isRelayed || this.deps.relayOnly ? this.relay() : null;
    if (relay) this.sendRelayed(nodeId, this.kx.authFrame(), relay);
    else if (!isRelayed && !this.deps.relayOnly) this.deps.udp.send(this.kx.authFrame(), ip, port);
  }

  // ───────────────────────────── inner packets ─────────────────────────────

  private handleInner(peer: LegacyPeer, inner: Uint8Array, now: Micros): void {
    const p = decodePacket(inner);
    if (!p.ok) return;
    this.handlePacket(peer, p.value, inner, now);
  }

  private handlePacket(peer: LegacyPeer, p: Packet, inner: Uint8Array, now: Micros): void {
    // The header names both ends: a peer may only speak for itself, and only to us.
    const me = this.deps.nodeId();
    if (p.src.node !== peer.nodeId || (me !== 0 && p.dst.node !== me)) return;
    switch (p.protocol) {
      case PROTO_STREAM:
        this.deps.onStreamSegment(peer.nodeId, inner, now);
        break;
      case PROTO_DATAGRAM:
        this.deps.deliverDatagram(peer.nodeId, p.srcPort, p.dstPort, p.payload.slice());
        break;
      case PROTO_CONTROL:
        this.handleControl(peer, p, now);
        break;
    }
  }

  private handleControl(peer: LegacyPeer, p: Packet, now: Micros): void {
    if ((p.flags & FLAG_ACK) !== 0) {
      // A pong (never answered: two nodes would bounce pongs with port 0 forever).
      const w = this.pings.get(pingKey(peer.nodeId, p.dstPort, p.seq));
      if (w && isLegacyPongFor(p, p.dstPort, p.seq)) {
        this.pings.delete(pingKey(peer.nodeId, p.dstPort, p.seq));
        w.timer.cancel();
        w.resolve(ok(now - w.sentAtUs));
      }
      return;
    }
    const pong = legacyPongFor(p, this.localAddr(p.dst.network));
    if (pong) this.sendPacket(peer, pong, now);
  }

  private localAddr(network = 0): VirtualAddr {
    return { network, node: this.deps.nodeId() };
  }

  /**
   * Seal one inner packet (34-byte header + payload) for a node and send it, direct or relayed: the session
   * surface the connection table sends v0.5 stream segments through. Errors: connection_failed (no session,
   * no way to reach the node).
   */
  sendPlaintext(nodeId: number, inner: Uint8Array, now: Micros): Result<void> {
    const peer = this.peersById.get(nodeId);
    if (!peer) return err('connection_failed', `no v0.5 tunnel to node ${nodeId}`);
    if (inner.length > this.txInner.length) return err('invalid_argument', `inner packet of ${inner.length} bytes is too large`);
    this.txInner.set(inner);
    return this.sendInner(peer, inner.length, now) ? ok() : err('connection_failed', `cannot send to node ${nodeId}`);
  }

  /** Seal one packet for a peer and send it; false when there is no way to (no session, no endpoint). */
  private sendPacket(peer: LegacyPeer, p: Packet, now: Micros): boolean {
    const n = encodePacket(p, this.txInner);
    if (!n.ok) return false;
    return this.sendInner(peer, n.value.length, now);
  }

  /** The inner packet sits in txInner[0, n): seal it in place into txBuf and send. */
  private sendInner(peer: LegacyPeer, n: number, now: Micros): boolean {
    if (!peer.endpoint && !peer.isRelayed && !(this.deps.relayOnly && this.relay())) return false;
    const s = peer.session;
    if (s) {
      const f = s.seal(this.txInner.subarray(0, n), now, this.txBuf);
      if (!f.ok) return false;
      return this.sendFrame(peer, f.value);
    }
    if (!this.deps.allowInsecureLegacy) return false;
    // PILT: "PILT" right before the packet (offset 16 of txBuf).
    const at = PILS_HEADER_SIZE - 4;
    writeU32(this.txBuf, at, MAGIC_PILT);
    return this.sendFrame(peer, this.txBuf.subarray(at, PILS_HEADER_SIZE + n));
  }

  // ───────────────────────────── key exchange, outgoing ─────────────────────────────

  hasSession(nodeId: number): boolean {
    const s = this.peersById.get(nodeId)?.session;
    return !!s && !s.isDestroyed;
  }

  /**
   * PILA exchange with a node: resolve its endpoints, send our PILA (retried 250 ms → 1 s), wait for its PILA.
   * Resolves at once when a session exists. `probe`: mark our PILAs (PILA_PROBE_MARKER) so that only an original
   * node answers — for dials that do not know the peer's suite. Errors: connection_failed (timeout,
   * unreachable, key refused), not_running after close(). Does I/O.
   */
  connect(nodeId: number, timeoutMs: number, opts: { probe?: boolean } = {}): Promise<Result<void>> {
    if (this.isClosed) return Promise.resolve(err('not_running', 'v0.5 tunnels are closed'));
    if (!Number.isInteger(nodeId) || nodeId <= 0 || nodeId > 0xffffffff) return Promise.resolve(err('invalid_argument', `invalid node id ${nodeId}`));
    if (nodeId === this.deps.nodeId()) return Promise.resolve(err('invalid_argument', 'cannot open a tunnel to ourselves'));
    if (this.hasSession(nodeId)) return Promise.resolve(ok());
    this.kx.setNodeId(this.deps.nodeId());
    const peer = this.peer(nodeId);
    if (!peer.isConnecting) peer.isProbe = opts.probe === true;
    return new Promise<Result<void>>((resolve) => {
      const w: ConnectWaiter = {
        resolve,
        timer: this.deps.driver.after(timeoutMs, () => {
          const i = peer.waiters.indexOf(w);
          if (i >= 0) peer.waiters.splice(i, 1);
          if (peer.waiters.length === 0) this.stopRetry(peer);
          resolve(err('connection_failed', `no v0.5 key exchange answer from node ${nodeId} within ${timeoutMs} ms`, {
            hint: 'peer offline, unreachable, or it does not trust us yet: `pilotctl handshake <peer>`',
          }));
        }),
      };
      peer.waiters.push(w);
      if (peer.waiters.length === 1) void this.startConnect(peer);
    });
  }

  private async startConnect(peer: LegacyPeer): Promise<void> {
    if (peer.isResolving) return;
    peer.isResolving = true;
    // Fetch the key now, so the answering PILA is accepted without a second round trip to the registry.
    if (!this.keyCache.has(peer.nodeId) && !this.lookups.has(peer.nodeId)) this.startKeyLookup(peer.nodeId);
    const c = await this.deps.contact(peer.nodeId);
    peer.isResolving = false;
    if (this.isClosed || !peer.isConnecting) return;
    if (!c.ok) {
      this.settleConnect(peer, errFrom(c.error));
      return;
    }
    peer.candidates = c.value.endpoints.map((e) => ({ ip: e.ip, port: e.port }));
    if (peer.candidates.length === 0 && !peer.endpoint && !this.relay()) {
      this.settleConnect(peer, err('connection_failed', `node ${peer.nodeId} has no known endpoint`));
      return;
    }
    this.sendConnectPila(peer, 0);
  }

  private sendConnectPila(peer: LegacyPeer, attempt: number): void {
    if (this.isClosed || !peer.isConnecting || this.hasSession(peer.nodeId)) return;
    const now = this.deps.driver.nowUs();
    const targets = peer.endpoint ? [peer.endpoint, ...peer.candidates.filter((c) => c.ip !== peer.endpoint!.ip || c.port !== peer.endpoint!.port)] : peer.candidates;
    const relay = this.relay();
    if (!this.deps.relayOnly) for (const ep of targets) this.sendPila(peer, ep, now);
    // Through the relay too once direct attempts went unanswered (or there is no direct way); the original
    // answers a relayed PILA through the relay.
    if (relay && (this.deps.relayOnly || targets.length === 0 || attempt >= CONNECT_DIRECT_ONLY_ATTEMPTS)) {
      peer.lastPilaSentUs = now;
      this.sendRelayed(peer.nodeId, this.connectPila(peer), relay);
    }
    const delayMs = Math.min(CONNECT_RETRY_FIRST_MS * 2 ** attempt, CONNECT_RETRY_MAX_MS);
    peer.retryTimer = this.deps.driver.after(delayMs, () => {
      peer.retryTimer = null;
      this.sendConnectPila(peer, attempt + 1);
    });
  }

  private stopRetry(peer: LegacyPeer): void {
    peer.retryTimer?.cancel();
    peer.retryTimer = null;
  }

  private settleConnect(peer: LegacyPeer, r: Result<void>): void {
    this.stopRetry(peer);
    const ws = peer.waiters;
    peer.waiters = [];
    for (const w of ws) {
      w.timer.cancel();
      w.resolve(r);
    }
  }

  private failWaiters(nodeId: number, r: Result<void>): void {
    const peer = this.peersById.get(nodeId);
    if (peer?.isConnecting && !this.hasSession(nodeId)) this.settleConnect(peer, r);
  }

  private peer(nodeId: number): LegacyPeer {
    let p = this.peersById.get(nodeId);
    if (!p) {
      p = new LegacyPeer(nodeId);
      p.lastPilaSentUs = this.lastUnsolicitedPilaUs.get(nodeId) ?? -Infinity;
      this.peersById.set(nodeId, p);
    }
    return p;
  }

  // ───────────────────────────── datagrams and ping ─────────────────────────────

  /** One v0.5 datagram (protocol 2) over an existing session. Errors: connection_failed (no session), invalid_argument. */
  sendDatagram(nodeId: number, srcPort: number, dstPort: number, data: Uint8Array): Result<void> {
    const peer = this.peersById.get(nodeId);
    if (!peer?.session || peer.session.isDestroyed) return err('connection_failed', `no v0.5 tunnel to node ${nodeId}`);
    if (data.length > Math.min(MAX_PAYLOAD, LEGACY_MSS)) {
      return err('invalid_argument', `datagram of ${data.length} bytes is too large`, { hint: `v0.5 datagrams carry at most ${LEGACY_MSS} bytes; use a stream` });
    }
    const p = legacyDatagramPacket(this.localAddr(), { network: 0, node: nodeId }, srcPort, dstPort, data);
    if (!this.sendPacket(peer, p, this.deps.driver.nowUs())) return err('connection_failed', `cannot send to node ${nodeId}`);
    return ok();
  }

  /** The original's ping (control protocol to port 0) over an existing session; resolves with the RTT in µs. */
  ping(nodeId: number, timeoutMs: number, payload: Uint8Array = new Uint8Array(0)): Promise<Result<Micros>> {
    const peer = this.peersById.get(nodeId);
    if (!peer?.session) return Promise.resolve(err('connection_failed', `no v0.5 tunnel to node ${nodeId}`));
    const srcPort = 49152 + this.deps.rng.int(16384);
    const seq = this.pingSeq++ >>> 0;
    const now = this.deps.driver.nowUs();
    const key = pingKey(nodeId, srcPort, seq);
    return new Promise((resolve) => {
      const timer = this.deps.driver.after(timeoutMs, () => {
        this.pings.delete(key);
        resolve(err('timeout', `no pong from node ${nodeId} within ${timeoutMs} ms`));
      });
      this.pings.set(key, { resolve, sentAtUs: now, timer });
      const p = legacyPingPacket(this.localAddr(), { network: 0, node: nodeId }, srcPort, seq, payload);
      if (!this.sendPacket(peer, p, now)) {
        timer.cancel();
        this.pings.delete(key);
        resolve(err('connection_failed', `cannot send to node ${nodeId}`));
      }
    });
  }

  // ───────────────────────────── status and teardown ─────────────────────────────

  /** Nodes with a live v0.5 session, the UDP endpoint in use (the beacon's when relayed), whether frames go
   * through the relay, and when we last heard from them (monotonic µs). */
  peers(): LegacyPeerInfo[] {
    const out: LegacyPeerInfo[] = [];
    for (const p of this.peersById.values()) {
      if (!p.session || p.session.isDestroyed) continue;
      const relay = p.isRelayed || this.deps.relayOnly ? this.relay() : null;
      const ep = relay ?? p.endpoint;
      if (ep) out.push({ nodeId: p.nodeId, endpoint: `${ep.ip}:${ep.port}`, isRelayed: relay !== null, lastRecvUs: p.lastRecvUs });
    }
    return out;
  }

  /** Drop a node: wipe its session, fail its pending connects and pings (untrust, shutdown). Its streams are
   * the connection table's to close (closePeer there first: their RSTs still need the session). */
  closePeer(nodeId: number, reason: PilotError): void {
    for (const [k, w] of this.pings) {
      if (k.startsWith(`${nodeId}:`)) {
        w.timer.cancel();
        this.pings.delete(k);
        w.resolve({ ok: false, error: reason });
      }
    }
    this.keyCache.delete(nodeId); // trust changes often come with key changes: look it up again
    this.held.delete(nodeId);
    const peer = this.peersById.get(nodeId);
    if (!peer) return;
    this.settleConnect(peer, { ok: false, error: reason });
    peer.session?.destroy();
    peer.session = null;
    this.peersById.delete(nodeId);
  }

  close(): void {
    if (this.isClosed) return;
    const reason = pilotError('connection_failed', 'daemon shutting down');
    for (const id of [...this.peersById.keys()]) this.closePeer(id, reason);
    this.isClosed = true;
    this.held.clear();
  }
}

function pingKey(nodeId: number, srcPort: number, seq: number): string {
  return `${nodeId}:${srcPort}:${seq >>> 0}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
