// Who a peer is and where to reach it: a PeerRef to a node id (numeric id, address, hostname — a trusted
// peer's hostname from its pin), its contact (the key it must prove, endpoints best first), the key a tunnel
// initiator must hold, and the suite it speaks (cached from our registry's lookups). Keys, not the registry,
// decide who a peer is: a pin that the registry contradicts is identity_changed, never a silent redirect.
import { err, errFrom, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import { fromBase64, toBase64 } from '../../crypto/index.js';
import { parseAddr } from '../../wire/address.js';
import { parseHostname } from '../../wire/hostname.js';
import type { LookupResult, PeerSuite, RegistryClient } from '../registry-client.js';
import type { TrustStore } from '../trust/store.js';
import type { PeerRef } from '../api.js';
import type { PeerContact, UdpEndpoint } from './noise-suite.js';
import { dialPlan, v05KeyFrom, type DialPlan } from './peer-suite.js';

/** What the registry said a node speaks (lookup_ok `suite`) is reused this long, µs. */
export const SUITE_CACHE_US = 30_000_000;
const MAX_SUITE_CACHE = 4096;

export interface ResolverDeps {
  registry: Pick<RegistryClient, 'lookup' | 'resolve' | 'resolveHostname'>;
  trust: Pick<TrustStore, 'getTrusted' | 'listTrusted' | 'getPending'>;
  clock: Clock;
  /** Where the Noise suite last heard the peer (tried first). */
  knownEndpoint(nodeId: number): UdpEndpoint | null | undefined;
  /** A Noise session with the peer is up: it speaks Noise, whatever anyone says now. */
  isNoiseUp(nodeId: number): boolean;
  /** This node speaks the v0.5 suite at all (--legacy). */
  isLegacyEnabled: boolean;
  /** Everything goes through the beacon's relay: no endpoints needed. */
  isRelayOnly: boolean;
  /** Public nodes accept a tunnel from anyone whose key the registry binds to the claimed id. */
  isPublic(): boolean;
  /**
   * Issue 14: the registry holds another key for a trusted peer: follow the rotation statements of its lookup
   * from our pin (the node verifies them; never the registry's word alone). True when the pin moved to `lookup.publicKey`.
   */
  adoptRotation?(nodeId: number, lookup: LookupResult): boolean;
  /** Issue 14: a lookup agreed with the pin and named a recovery key: remember it (first one wins). */
  learnRecoveryKey?(nodeId: number, recoveryKey: string): void;
}

export class PeerResolver {
  /** Hostnames we learned (lookups, requests, resolutions); a pin's own hostname is in the trust store. */
  private readonly hostnames = new Map<number, string>();
  /** Suite each looked-up node speaks, per our registry (absent: unknown, e.g. an original registry). */
  private readonly suites = new Map<number, { suite: PeerSuite | undefined; atUs: number }>();

  constructor(private readonly deps: ResolverDeps) {}

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
    const h = parseHostname(s);
    if (!h.ok) return h;
    // A trusted peer's hostname resolves from its pin. The registry is still asked, only to notice that it now
    // names someone else (a takeover, or a rotated key): that is identity_changed. A registry that no longer
    // knows the name (or is down) leaves the pin in charge.
    const pinned = this.deps.trust.listTrusted().find((t) => t.hostname === s);
    const r = await this.deps.registry.resolveHostname(s);
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

  /** Where to reach a peer and which key it must prove. Errors: not_found, connection_failed, identity_changed. */
  async contactOf(nodeId: number): Promise<Result<PeerContact>> {
    const trusted = this.deps.trust.getTrusted(nodeId);
    // A trusted peer's key is the pin: the initiator uses it as the Noise responder static, so only its holder
    // can answer. The registry's key is fetched beside the endpoints only to report a change (identity_changed)
    // at once instead of a handshake that can only time out.
    const [l, r] = await Promise.all([this.lookupNode(nodeId), this.deps.registry.resolve(nodeId)]);
    if (trusted && l.ok && l.value.publicKey && l.value.publicKey !== trusted.public_key && !this.deps.adoptRotation?.(nodeId, l.value)) {
      return errFrom(identityChanged(trusted.hostname ?? `node ${nodeId}`, nodeId, 'the registry now holds a different key for it'));
    }
    const pin = this.deps.trust.getTrusted(nodeId);
    if (pin && l.ok && l.value.recoveryKey && l.value.publicKey === pin.public_key) this.deps.learnRecoveryKey?.(nodeId, l.value.recoveryKey);
    let key = pin ? fromBase64(pin.public_key) : null;
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
    const known = this.deps.knownEndpoint(nodeId);
    if (known && !endpoints.some((x) => x.ip === known.ip && x.port === known.port)) endpoints.unshift(known);
    if (this.deps.isRelayOnly) {
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
  async lookupNode(nodeId: number): Promise<Result<LookupResult>> {
    const l = await this.deps.registry.lookup(nodeId);
    if (l.ok) {
      if (this.suites.size >= MAX_SUITE_CACHE) this.suites.clear();
      this.suites.set(nodeId, { suite: l.value.suite, atUs: this.deps.clock.nowUs() });
    }
    return l;
  }

  /**
   * How to reach a node: Noise, v0.5 at once (our registry marks it v0.5), or Noise then v0.5 (nobody said).
   * A live Noise session, or no v0.5 support here, means Noise without asking the registry.
   */
  async dialPlanFor(nodeId: number): Promise<DialPlan> {
    if (!this.deps.isLegacyEnabled || this.deps.isNoiseUp(nodeId)) return 'noise';
    const cached = this.suites.get(nodeId);
    if (cached && this.deps.clock.nowUs() - cached.atUs < SUITE_CACHE_US) return dialPlan(cached.suite, true);
    const l = await this.lookupNode(nodeId);
    return dialPlan(l.ok ? l.value.suite : undefined, true);
  }

  /** May this initiator open a tunnel to us? Trusted with the same key, or we are public and the registry agrees. */
  async authorize(nodeId: number, key: Uint8Array): Promise<Result<void>> {
    const t = this.deps.trust.getTrusted(nodeId);
    if (t) {
      if (t.public_key === toBase64(key)) return ok();
      // Issue 14: it may have rotated while we were away: its lookup carries the signed statements.
      if (this.deps.adoptRotation) {
        const l = await this.lookupNode(nodeId);
        if (l.ok && l.value.publicKey === toBase64(key) && this.deps.adoptRotation(nodeId, l.value)) return ok();
      }
      return err('connection_failed', `node ${nodeId} presented a key that differs from the trusted one`);
    }
    if (!this.deps.isPublic()) return err('connection_failed', `node ${nodeId} is not trusted`);
    const l = await this.lookupNode(nodeId);
    if (!l.ok) return l;
    return l.value.publicKey === toBase64(key) ? ok() : err('connection_failed', `node ${nodeId} key does not match the registry`);
  }

  /** The key a v0.5 PILA in this node's name must be signed with; none for a node our registry marks Noise. */
  async v05Key(nodeId: number): Promise<Result<Uint8Array>> {
    const l = await this.lookupNode(nodeId);
    return l.ok ? v05KeyFrom(nodeId, l.value) : l;
  }

  /** The key to pin at approval: the registry's, or the request's own when the registry cannot answer. */
  async peerKey(nodeId: number): Promise<Result<string>> {
    const pending = this.deps.trust.getPending(nodeId);
    const l = await this.deps.registry.lookup(nodeId);
    if (l.ok) {
      if (l.value.hostname) this.hostnames.set(nodeId, l.value.hostname);
      return ok(l.value.publicKey);
    }
    if (pending?.public_key) return ok(pending.public_key);
    return l;
  }

  hostnameOf(nodeId: number): string | null {
    return this.hostnames.get(nodeId) ?? this.deps.trust.getTrusted(nodeId)?.hostname ?? null;
  }

  learnHostname(nodeId: number, hostname: string): void {
    this.hostnames.set(nodeId, hostname);
  }
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
