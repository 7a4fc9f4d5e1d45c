// Who this node trusts, who asked to be trusted (pending, survives restarts) and whom we asked.
// Trust is per node id and pinned to the peer's Ed25519 key as the registry gave it at approval time: that pin,
// not the registry, is who the peer is from then on (peers/resolver.ts contactOf/authorize/resolveRef). What
// changes the store, and when, is the trust state machine (trust/transitions.ts).
// Incoming requests are the one part strangers can grow: the pending list is bounded (oldest dropped), and their
// writes are coalesced (one rewrite + fsync per PENDING_WRITE_DELAY_MS, not one per request). Decisions the
// operator makes (trust, untrust, reject, our own requests) are written at once.
import { ok, type Result } from '../../core/result.js';
import type { PilotError } from '../../core/errors.js';
import type { Deadline, Driver } from '../driver.js';
import { readJsonFile, writeJsonFile } from '../json-file.js';

export interface TrustedPeer {
  node_id: number;
  public_key: string; // base64 Ed25519
  hostname: string | null;
  approved_at: string;
  /** true once the peer approved us too (or we approved a request of theirs after ours). */
  mutual: boolean;
  /** Issue 14: the peer's recovery public key, learned from a lookup that agreed with the pin (absent: none known). */
  recovery_key?: string;
  /** Issue 14: ts of the last rotation statement applied to the pin (absent: none); later ones only. */
  key_ts?: number;
}

export interface IncomingRequest {
  node_id: number;
  justification: string;
  hostname: string | null;
  public_key: string | null;
  received_at: string;
}

export interface OutgoingRequest {
  node_id: number;
  justification: string;
  sent_at: string;
}

interface TrustFile {
  version: 1;
  trusted: TrustedPeer[];
  pending: IncomingRequest[];
  outgoing: OutgoingRequest[];
}

function isTrustFile(v: unknown): v is TrustFile {
  const f = v as TrustFile;
  return (
    typeof f === 'object' && f !== null && f.version === 1 &&
    Array.isArray(f.trusted) && Array.isArray(f.pending) && Array.isArray(f.outgoing) &&
    f.trusted.every((t) => typeof t?.node_id === 'number' && typeof t.public_key === 'string') &&
    f.pending.every((p) => typeof p?.node_id === 'number' && typeof p.justification === 'string')
  );
}

export const DEFAULT_MAX_PENDING = 256;
export const PENDING_WRITE_DELAY_MS = 250;

export interface TrustStoreOptions {
  /** Incoming requests kept; beyond it the oldest is dropped. */
  maxPending?: number;
  /** Incoming requests are written this long after the first unsaved one (0: at once). */
  pendingWriteDelayMs?: number;
  /** A coalesced write failed (nobody awaits it). */
  onWriteError?(e: PilotError): void;
}

export class TrustStore {
  private trusted = new Map<number, TrustedPeer>();
  private pending = new Map<number, IncomingRequest>();
  private outgoing = new Map<number, OutgoingRequest>();
  private writeTimer: Deadline | null = null;
  private readonly maxPending: number;
  private readonly pendingWriteDelayMs: number;

  private constructor(
    private readonly path: string,
    private readonly driver: Pick<Driver, 'after'>,
    private readonly opts: TrustStoreOptions,
  ) {
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.pendingWriteDelayMs = opts.pendingWriteDelayMs ?? PENDING_WRITE_DELAY_MS;
  }

  /** Loads the store; a corrupt file is kept aside and reported as an error (never emptied silently). */
  /** `driver` times the coalesced writes. */
  static open(path: string, nowMs: number, driver: Pick<Driver, 'after'>, opts: TrustStoreOptions = {}): Result<TrustStore> {
    const empty: TrustFile = { version: 1, trusted: [], pending: [], outgoing: [] };
    const r = readJsonFile(path, empty, isTrustFile, nowMs);
    if (!r.ok) return r;
    const s = new TrustStore(path, driver, opts);
    for (const t of r.value.trusted) s.trusted.set(t.node_id, t);
    for (const p of r.value.pending) s.pending.set(p.node_id, p);
    for (const o of r.value.outgoing) s.outgoing.set(o.node_id, o);
    return ok(s);
  }

  isTrusted(nodeId: number): boolean {
    return this.trusted.has(nodeId);
  }
  getTrusted(nodeId: number): TrustedPeer | undefined {
    return this.trusted.get(nodeId);
  }
  listTrusted(): TrustedPeer[] {
    return [...this.trusted.values()].sort((a, b) => a.node_id - b.node_id);
  }
  listPending(): IncomingRequest[] {
    return [...this.pending.values()].sort((a, b) => a.received_at.localeCompare(b.received_at));
  }
  getPending(nodeId: number): IncomingRequest | undefined {
    return this.pending.get(nodeId);
  }
  getOutgoing(nodeId: number): OutgoingRequest | undefined {
    return this.outgoing.get(nodeId);
  }

  addTrusted(peer: TrustedPeer): Result<void> {
    this.trusted.set(peer.node_id, peer);
    this.pending.delete(peer.node_id);
    return this.save();
  }
  setMutual(nodeId: number, mutual: boolean): Result<void> {
    const t = this.trusted.get(nodeId);
    if (!t || t.mutual === mutual) return ok();
    t.mutual = mutual;
    return this.save();
  }
  /**
   * Issue 14: move a pin to the key a verified rotation statement names (src/crypto/key-rotation.ts checks it
   * first; this only records it). Written at once. False when the peer is not trusted.
   */
  updateKey(nodeId: number, publicKey: string, keyTsSec: number): Result<boolean> {
    const t = this.trusted.get(nodeId);
    if (!t) return ok(false);
    t.public_key = publicKey;
    t.key_ts = keyTsSec;
    const r = this.save();
    return r.ok ? ok(true) : r;
  }
  /** Issue 14: remember a peer's recovery key (first one wins; a later different one is ignored). */
  learnRecoveryKey(nodeId: number, recoveryKey: string): Result<boolean> {
    const t = this.trusted.get(nodeId);
    if (!t || t.recovery_key !== undefined) return ok(false);
    t.recovery_key = recoveryKey;
    const r = this.save();
    return r.ok ? ok(true) : r;
  }
  removeTrusted(nodeId: number): Result<boolean> {
    const had = this.trusted.delete(nodeId);
    this.outgoing.delete(nodeId);
    const r = this.save();
    return r.ok ? ok(had) : r;
  }
  /**
   * Record an incoming request (a repeat from the same node replaces it). Bounded: at maxPending the oldest
   * request is dropped; the write is coalesced with others (flush() forces it).
   */
  addPending(req: IncomingRequest): Result<{ dropped: number | null }> {
    let dropped: number | null = null;
    if (!this.pending.has(req.node_id) && this.pending.size >= this.maxPending) {
      dropped = this.listPending()[0]!.node_id;
      this.pending.delete(dropped);
    }
    this.pending.set(req.node_id, req);
    if (this.pendingWriteDelayMs <= 0) {
      const r = this.save();
      return r.ok ? ok({ dropped }) : r;
    }
    if (this.writeTimer === null) {
      this.writeTimer = this.driver.after(this.pendingWriteDelayMs, () => {
        this.writeTimer = null;
        const r = this.save();
        if (!r.ok) this.opts.onWriteError?.(r.error);
      });
    }
    return ok({ dropped });
  }

  /** Write what is not on disk yet (coalesced pending requests) now; for shutdown. */
  flush(): Result<void> {
    if (this.writeTimer === null) return ok();
    return this.save();
  }
  removePending(nodeId: number): Result<boolean> {
    const had = this.pending.delete(nodeId);
    const r = this.save();
    return r.ok ? ok(had) : r;
  }
  addOutgoing(req: OutgoingRequest): Result<void> {
    this.outgoing.set(req.node_id, req);
    return this.save();
  }
  removeOutgoing(nodeId: number): Result<void> {
    if (!this.outgoing.delete(nodeId)) return ok();
    return this.save();
  }

  private save(): Result<void> {
    // Every write carries the whole state, so an immediate one also lands the coalesced pending requests.
    this.writeTimer?.cancel();
    this.writeTimer = null;
    const f: TrustFile = {
      version: 1,
      trusted: this.listTrusted(),
      pending: this.listPending(),
      outgoing: [...this.outgoing.values()],
    };
    return writeJsonFile(this.path, f);
  }
}
