// Identity lifecycle in the daemon (issue 14): rotating our own key, and following the rotations of the peers we
// trust. Our side: a fresh key, a statement signed by the old key (or the recovery key) and the new one
// (src/crypto/key-rotation.ts), the new identity file written beside the old before the registry is asked and moved
// over it after, then the daemon answers with the new key (Noise sessions made with the old one are dropped; peers
// re-handshake without a trust handshake). Peers' side: a statement pushed by the registry or found in a lookup moves
// a pin only when it verifies against that pin (or the recovery key learned earlier) — never on the registry's word.
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { err, ok, type Result } from '../core/result.js';
import { pilotError, type PilotError } from '../core/errors.js';
import { generateIdentity, sign, toBase64, type Identity } from '../crypto/identity.js';
import { followChain, signRotation, type RotationStatement } from '../crypto/key-rotation.js';
import { parseRecoveryKey, readRecoveryPublic, saveIdentity, writeRecoveryPublic } from './identity-store.js';
import type { NodeEvents } from './events.js';
import { RegistryClient, type LookupResult } from './registry-client.js';
import type { TrustStore } from './trust/store.js';

export interface KeyRotationResult {
  node_id: number;
  old_public_key: string;
  new_public_key: string;
  by: 'local' | 'recovery';
  identity_file: string;
  statement: RotationStatement;
}

export interface KeyRotationDeps {
  nodeId(): number | null;
  identity(): Identity;
  /** Swap the daemon's identity (tunnels, registry signatures, the IPC proof). */
  setIdentity(next: Identity): void;
  identityPath: string;
  registry: Pick<RegistryClient, 'rotateKey' | 'nowSec'>;
  trust: Pick<TrustStore, 'getTrusted' | 'updateKey' | 'learnRecoveryKey'>;
  dropPeer(nodeId: number, reason: PilotError): void;
  events: NodeEvents;
  logger: Logger;
}

/** The approval time of a pin as unix seconds (0 when unreadable), with a minute of slack for clock skew. */
function pinnedAtSec(approvedAt: string): number {
  const ms = Date.parse(approvedAt);
  return Number.isFinite(ms) ? Math.max(0, Math.floor(ms / 1000) - 60) : 0;
}

export class KeyRotation {
  private isRotating = false;

  constructor(private readonly deps: KeyRotationDeps) {}

  /**
   * Rotate this node's key. `recovery`: sign with the recovery key instead of the current key. Errors: not_running
   * (not registered), already_exists (a rotation in flight), the registry's refusal, internal (identity file).
   * Does file-system and registry I/O.
   */
  async rotate(opts: { recovery?: Identity } = {}): Promise<Result<KeyRotationResult>> {
    const nodeId = this.deps.nodeId();
    if (nodeId === null) return err('not_running', 'not registered with the registry yet: a key rotation needs it', { hint: 'wait for `pilotctl health` to show registered, then retry' });
    if (this.isRotating) return err('already_exists', 'a key rotation is already in progress');
    this.isRotating = true;
    try {
      const old = this.deps.identity();
      const next = generateIdentity();
      const statement = signRotation({
        nodeId,
        next,
        tsSec: this.deps.registry.nowSec(),
        nonce: randomBytes(16).toString('base64'),
        ...(opts.recovery ? { recovery: opts.recovery, oldPublicKeyB64: toBase64(old.publicKey) } : { old }),
      });
      // The new key is on disk before the registry moves to it: a crash between the two cannot lose both.
      const pending = `${this.deps.identityPath}.next`;
      const saved = saveIdentity(pending, next);
      if (!saved.ok) return saved;
      const r = await this.deps.registry.rotateKey(statement);
      if (!r.ok) {
        rmSync(pending, { force: true });
        return r;
      }
      try {
        renameSync(pending, this.deps.identityPath);
      } catch (cause) {
        // The registry holds the new key now; keep it where the operator can find it.
        return err('internal', `the registry moved to the new key but ${pending} could not replace ${this.deps.identityPath}`, {
          hint: `move ${pending} to ${this.deps.identityPath} by hand before the next start`,
          cause,
        });
      }
      this.deps.setIdentity(next);
      const by = opts.recovery ? 'recovery' : 'local';
      this.deps.events.emit({ type: 'key.rotated', data: { node_id: nodeId, old_public_key: statement.old_public_key, new_public_key: statement.new_public_key, by } });
      this.deps.logger.info({ nodeId, old: statement.old_public_key, new: statement.new_public_key, by }, 'identity key rotated');
      return ok({ node_id: nodeId, old_public_key: statement.old_public_key, new_public_key: statement.new_public_key, by, identity_file: this.deps.identityPath, statement });
    } finally {
      this.isRotating = false;
    }
  }

  /**
   * Statements about a trusted peer (a push, or a lookup's chain): move its pin along the ones that verify from
   * it, drop its sessions, emit key.rotated. True when the pin moved. Statements about strangers are ignored.
   */
  handleStatements(nodeId: number, statements: readonly RotationStatement[], via: 'push' | 'lookup'): boolean {
    const t = this.deps.trust.getTrusted(nodeId);
    if (!t) return false;
    const chain = followChain(
      statements.filter((s) => s.node_id === nodeId),
      // Before any rotation the pin's own time bounds what applies: statements older than the approval are history.
      { nodeId, currentKey: t.public_key, recoveryKey: t.recovery_key ?? null, lastTsSec: t.key_ts ?? pinnedAtSec(t.approved_at) },
    );
    if (chain.applied.length === 0) {
      this.deps.logger.warn({ nodeId, via }, 'key rotation statement refused: it does not verify against the pinned key');
      return false;
    }
    const oldKey = t.public_key;
    const saved = this.deps.trust.updateKey(nodeId, chain.key, chain.tsSec);
    if (!saved.ok) {
      this.deps.logger.error({ nodeId, error: saved.error.message }, 'could not persist the rotated key of a peer');
      return false;
    }
    // A pushed rotation: sessions with the old key go (the peer dropped its side). Found by a lookup: we are in the
    // middle of reaching it with the new key, and nothing made with the old one is left to drop.
    if (via === 'push') this.deps.dropPeer(nodeId, pilotError('connection_failed', `node ${nodeId} rotated its key; reconnecting with the new one`));
    this.deps.events.emit({ type: 'key.rotated', data: { node_id: nodeId, old_public_key: oldKey, new_public_key: chain.key, by: 'peer' } });
    this.deps.logger.info({ nodeId, via, old: oldKey, new: chain.key }, 'trusted peer rotated its key');
    return true;
  }

  /** PeerResolver hook: the registry shows another key for a pinned peer; true when its statements lead there. */
  adoptRotation(nodeId: number, lookup: LookupResult): boolean {
    if (!lookup.keyRotations?.length) return false;
    const moved = this.handleStatements(nodeId, lookup.keyRotations, 'lookup');
    return moved && this.deps.trust.getTrusted(nodeId)?.public_key === lookup.publicKey;
  }

  learnRecoveryKey(nodeId: number, recoveryKey: string): void {
    const r = this.deps.trust.learnRecoveryKey(nodeId, recoveryKey);
    if (!r.ok) this.deps.logger.warn({ nodeId, error: r.error.message }, 'could not persist a peer recovery key');
  }
}

/**
 * The lost-key path (`pilotctl rotate-key --recovery-file … --node-id N` with the daemon stopped): talk to the
 * registry directly (plain TCP), rotate node `nodeId` onto a fresh key signed by the recovery key (and the new key),
 * then write the new identity file (an old one there is kept aside as <file>.retired-<ms>) for the next start.
 * Errors: the registry's (invalid_argument: no or another recovery key, stale; key_retired), connection_failed,
 * internal. Does network and file-system I/O.
 */
export async function recoverWithRegistry(p: {
  registryAddr: string;
  nodeId: number;
  recoveryKeyText: string;
  identityPath: string;
  home: string;
  /** Wall clock, ms (the caller's; the statement's ts and the retired file's name). */
  nowMs: number;
  connectTimeoutMs?: number;
}): Promise<Result<Omit<KeyRotationResult, 'statement'>>> {
  const recovery = parseRecoveryKey(p.recoveryKeyText);
  if (!recovery.ok) return recovery;
  const next = generateIdentity();
  const client = new RegistryClient({ registryAddr: p.registryAddr, sign: (m) => sign(next, m), connectTimeoutMs: p.connectTimeoutMs ?? 5_000 });
  let oldKey = '';
  try {
    const conn = await client.connect();
    if (!conn.ok) {
      return err('connection_failed', `${conn.error.message}: the recovery path talks to the registry directly (plain TCP)`, { hint: 'check --registry / `pilotctl config get registry`' });
    }
    let tsSec = Math.floor(p.nowMs / 1000);
    for (let attempt = 0; ; attempt++) {
      const statement = signRotation({ nodeId: p.nodeId, next, recovery: recovery.value, tsSec, nonce: randomBytes(16).toString('base64'), oldPublicKeyB64: '' });
      const r = await client.rotateKey(statement);
      // A clock off by more than the registry's window: its refusal carries its time; once more with that.
      const serverTime = r.ok ? undefined : r.error.detail?.serverTime;
      if (!r.ok && typeof serverTime === 'number' && attempt === 0) {
        tsSec = serverTime;
        continue;
      }
      if (!r.ok) return r;
      oldKey = r.value.oldPublicKey;
      break;
    }
  } finally {
    await client.close();
  }
  if (existsSync(p.identityPath)) {
    try {
      renameSync(p.identityPath, `${p.identityPath}.retired-${p.nowMs}`);
    } catch (cause) {
      return err('internal', `the registry moved to the new key, but ${p.identityPath} could not be moved aside`, { cause, hint: `move ${p.identityPath} away and recover again` });
    }
  }
  const saved = saveIdentity(p.identityPath, next);
  if (!saved.ok) return saved;
  if (readRecoveryPublic(p.home) === null) {
    const pub = writeRecoveryPublic(p.home, recovery.value.publicKey);
    if (!pub.ok) return pub;
  }
  return ok({ node_id: p.nodeId, old_public_key: oldKey, new_public_key: toBase64(next.publicKey), by: 'recovery', identity_file: p.identityPath });
}
