// Who this node trusts, who asked to be trusted (pending, survives restarts) and whom we asked.
// Trust is per node id and pinned to the peer's Ed25519 key as the registry gave it at approval time.
import { ok, type Result } from '../core/result.js';
import { readJsonFile, writeJsonFile } from './json-file.js';

export interface TrustedPeer {
  node_id: number;
  public_key: string; // base64 Ed25519
  hostname: string | null;
  approved_at: string;
  /** true once the peer approved us too (or we approved a request of theirs after ours). */
  mutual: boolean;
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

export class TrustStore {
  private trusted = new Map<number, TrustedPeer>();
  private pending = new Map<number, IncomingRequest>();
  private outgoing = new Map<number, OutgoingRequest>();

  private constructor(private readonly path: string) {}

  /** Loads the store; a corrupt file is kept aside and reported as an error (never emptied silently). */
  static open(path: string, nowMs: number): Result<TrustStore> {
    const empty: TrustFile = { version: 1, trusted: [], pending: [], outgoing: [] };
    const r = readJsonFile(path, empty, isTrustFile, nowMs);
    if (!r.ok) return r;
    const s = new TrustStore(path);
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
  removeTrusted(nodeId: number): Result<boolean> {
    const had = this.trusted.delete(nodeId);
    this.outgoing.delete(nodeId);
    const r = this.save();
    return r.ok ? ok(had) : r;
  }
  addPending(req: IncomingRequest): Result<void> {
    this.pending.set(req.node_id, req);
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
    const f: TrustFile = {
      version: 1,
      trusted: this.listTrusted(),
      pending: this.listPending(),
      outgoing: [...this.outgoing.values()],
    };
    return writeJsonFile(this.path, f);
  }
}
